"""The `occi` CLI against a live occipy server: the README walkthrough and every verb.

Most calls go through click's CliRunner with the settings taken from the environment (the CLI
builds its own client, as in real use); a few run the installed console script in a subprocess
to cover the entry point, exit codes and shell completion end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from occipy.cli.main import cli
from occipy.model.catalogue import NETWORKINTERFACE, STORAGELINK

from .conftest import LiveServer, free_port, start_server

OCCI = Path(sys.executable).parent / "occi"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("cli-live"), driver_options={"delay": "0.2"})
    yield live
    live.stop()


@pytest.fixture(params=["json", "text", "occi"])
def occi(request: pytest.FixtureRequest, server: LiveServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    """`occi(*args, code=0)` runs the CLI with OCCI_ENDPOINT set and the media type forced."""
    env = {"OCCI_ENDPOINT": server.url, "OCCI_MEDIA_TYPE": request.param, "OCCI_CONFIG": "",
           "XDG_CONFIG_HOME": str(tmp_path), "OCCI_OUTPUT": ""}

    def run(*args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(cli, list(args), env=env)
        assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
        return result

    return run


def doc(result: Result) -> dict:  # type: ignore[type-arg]
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


def test_readme_walkthrough(occi) -> None:  # type: ignore[no-untyped-def]
    """The commands of the README's walkthrough, checked one by one."""
    assert "compute" in occi("discover").stdout
    net = occi("create", "network", "-m", "ipnetwork", "-a", "occi.network.address=10.42.0.0/24", "-t", "lan").stdout.strip()
    disk = occi("create", "storage", "-a", "occi.storage.size=2.0", "-t", "data").stdout.strip()
    vm = occi("create", "compute", "-m", "debian-12", "-m", "small", "-t", "web", "--link", net, "--link", disk
              ).stdout.strip()
    waited = occi("wait", vm, "--state", "active", "-o", "json")
    assert doc(waited)["attributes"]["occi.compute.state"] == "active"
    shown = occi("show", vm)
    assert "web" in shown.stdout and "storagelink" in shown.stdout and "networkinterface" in shown.stdout
    stopped = occi("action", "stop", vm, "-a", "method=graceful", "--wait", "-o", "json")
    assert doc(stopped)["attributes"]["occi.compute.state"] == "inactive"
    assert "inactive" in stopped.stderr  # progress and the final state
    started = occi("action", "start", vm, "--wait", "-o", "json")
    assert doc(started)["attributes"]["occi.compute.state"] == "active"
    occi("wait", disk, "--state", "online")
    assert doc(occi("update", disk, "-a", "occi.storage.size=4.0", "-o", "json"))["attributes"][
        "occi.storage.size"] == 4.0
    resized = doc(occi("mixin", "add", vm, "medium", "-o", "json"))
    assert resized["attributes"]["occi.compute.cores"] == 2
    listing = occi("list", "compute")
    assert "web" in listing.stdout
    occi("delete", vm, disk, net)
    assert vm not in occi("list", "compute", "-q").stdout.split()


def test_every_other_verb(occi) -> None:  # type: ignore[no-untyped-def]
    tags = doc(occi("discover", "--depends", "os_tpl", "-o", "json"))
    assert "debian-12" in [m["term"] for m in tags["mixins"]]
    kinds = doc(occi("-o", "json", "discover", "--kinds", "--applies", "compute"))
    assert {k["term"] for k in kinds["kinds"]} == {"entity", "resource", "compute"}
    raw = occi("-o", "occi", "discover", "--actions", "stop").stdout
    assert raw.startswith("Category: stop;")

    created = doc(occi("create", "compute", "-t", "cli-verbs", "-a", "occi.compute.hostname=h1", "--wait",
                       "-o", "json"))
    vm = created["location"]
    assert created["attributes"]["occi.compute.state"] == "active"
    assert occi("list", "compute", "-q", "-f", "occi.core.title=cli-verbs").stdout.split() == [vm]

    unset = doc(occi("update", vm, "--unset", "occi.compute.hostname", "-o", "json"))
    assert "occi.compute.hostname" not in unset["attributes"]
    assert unset["attributes"]["occi.core.title"] == "cli-verbs"

    defined = doc(occi("mixin", "define", "cliverbs", "--title", "CLI", "-o", "json"))
    assert defined["mixins"][0]["location"] == "/cliverbs/"
    occi("mixin", "add", vm, "cliverbs")
    assert occi("list", "cliverbs", "-q").stdout.split() == [vm]
    removed = doc(occi("mixin", "remove", vm, "cliverbs", "-o", "json"))
    assert not any(m.endswith("#cliverbs") for m in removed["mixins"])
    occi("mixin", "undefine", "cliverbs")

    disk = doc(occi("create", "storage", "-a", "occi.storage.size=1", "--wait", "-o", "json"))["location"]
    net = occi("create", "network", "-t", "n").stdout.strip()
    occi("wait", net)
    link = occi("link", vm, disk, "-a", "occi.storagelink.deviceid=/dev/vdc").stdout.strip()
    nic = occi("link", vm, net).stdout.strip()
    links = doc(occi("show", vm, "-o", "json"))["links"]
    assert {l["kind"] for l in links} == {STORAGELINK, NETWORKINTERFACE}
    assert {l["location"] for l in links} == {link, nic}
    raw_entity = occi("-o", "occi", "show", vm).stdout
    assert raw_entity.startswith("Category: compute;") and "Link: </storage/" in raw_entity
    occi("unlink", link, nic)
    assert doc(occi("show", vm, "-o", "json")).get("links") is None
    occi("delete", vm, disk, net)


def test_errors_get_their_own_line_and_code(occi, server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    missing = occi("show", "/compute/nope", code=3)
    assert missing.stderr.startswith("Error: not found: ") and missing.stderr.count("\n") == 1
    vm = occi("create", "compute").stdout.strip()
    occi("wait", vm, "--state", "active")
    conflict = occi("action", "start", vm, code=4)
    assert conflict.stderr.startswith("Error: conflict: ") and "start" in conflict.stderr
    bad = occi("create", "compute", "-a", "occi.compute.cores=many", code=1)
    assert "occi.compute.cores" in bad.stderr
    immutable = occi("update", vm, "-a", "occi.compute.state=inactive", code=1)
    assert "immutable" in immutable.stderr
    unknown = occi("create", "computer", code=1)
    assert "unknown kind 'computer'" in unknown.stderr
    occi("delete", vm)
    for result in (missing, conflict, bad, immutable, unknown):
        assert "Traceback" not in result.output


def test_console_script_end_to_end(server: LiveServer, tmp_path: Path) -> None:
    env = {**os.environ, "OCCI_ENDPOINT": server.url, "XDG_CONFIG_HOME": str(tmp_path), "OCCI_CONFIG": ""}
    created = subprocess.run([str(OCCI), "create", "network", "-t", "script", "-o", "json"], env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    assert created.returncode == 0, created.stderr
    location = json.loads(created.stdout)["location"]
    gone = subprocess.run([str(OCCI), "delete", location], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert gone.returncode == 0 and "deleted" in gone.stderr
    again = subprocess.run([str(OCCI), "show", location], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 3 and again.stderr.startswith("Error: not found:")

    down = subprocess.run([str(OCCI), "-e", f"http://127.0.0.1:{free_port()}", "list", "compute"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 5
    assert down.stderr.startswith("Error: cannot reach the OCCI server") and "Traceback" not in down.stderr


def test_shell_completion_asks_the_server(server: LiveServer, tmp_path: Path) -> None:
    env = {**os.environ, "OCCI_ENDPOINT": server.url, "XDG_CONFIG_HOME": str(tmp_path), "OCCI_CONFIG": "",
           "_OCCI_COMPLETE": "bash_complete", "COMP_WORDS": "occi create compute --mixin deb", "COMP_CWORD": "4"}

    def complete() -> list[str]:
        answer = subprocess.run([str(OCCI)], env=env, capture_output=True, text=True, timeout=60, check=False)
        return [line.partition(",")[2] for line in answer.stdout.splitlines()]  # bash: "type,value"

    assert "debian-12" in complete()
    env.update(COMP_WORDS="occi list netw", COMP_CWORD="2")
    assert {"network", "networkinterface"} <= set(complete())

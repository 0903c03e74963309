"""CLI unit tests: every verb through CliRunner with a Client on the MockTransport fake server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from occipy.cli.config import Settings, load_settings
from occipy.cli.main import cli
from occipy.client import Client
from occipy.errors import BadRequest
from occipy.model.catalogue import COMPUTE, NETWORKINTERFACE, STORAGELINK

from ..client.fake import BASE, DEBIAN, JSON_T, OCCI_T, PLAIN_T, FakeServer


@pytest.fixture(params=[JSON_T, PLAIN_T, OCCI_T], ids=["json", "text-plain", "text-occi"])
def server(request: pytest.FixtureRequest) -> FakeServer:
    return FakeServer(offers=(request.param,))


@pytest.fixture
def occi(server: FakeServer) -> Client:
    return Client(BASE, transport=httpx.MockTransport(server))


def run(client: Client, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), obj=client, env={"OCCI_CONFIG": "", "OCCI_ENDPOINT": ""})
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def as_json(result: Result) -> object:
    return json.loads(result.stdout)


def test_discover_with_filters(occi: Client) -> None:
    everything = as_json(run(occi, "-o", "json", "discover"))
    assert isinstance(everything, dict) and {"kinds", "mixins", "actions"} <= everything.keys()
    kinds = as_json(run(occi, "-o", "json", "discover", "--kinds", "compute"))
    assert isinstance(kinds, dict) and list(kinds) == ["kinds"]
    assert [k["type_id"] for k in kinds["kinds"]] == [COMPUTE]
    templates = as_json(run(occi, "-o", "json", "discover", "--depends", "os_tpl"))
    assert isinstance(templates, dict) and [m["type_id"] for m in templates["mixins"]] == [DEBIAN]
    table = run(occi, "discover", "--actions", "--scheme", "compute/action").stdout
    assert "stop" in table and "network" not in table
    raw = run(occi, "-o", "occi", "discover", "--kinds", "storage").stdout
    assert raw.startswith('Category: storage; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind"')


def test_walkthrough_every_verb(occi: Client, server: FakeServer) -> None:
    """The README walkthrough: network, storage, compute with links; start/stop/resize; list; delete."""
    net = run(occi, "create", "network", "--title", "lan").stdout.strip()
    disk = run(occi, "create", "storage", "-a", "occi.storage.size=10", "-t", "disk").stdout.strip()
    created = as_json(run(occi, "-o", "json", "create", "compute", "--mixin", "os_tpl#debian-12",
                          "--attr", "occi.compute.cores=2", "--attr", "occi.compute.memory=4.0",
                          "--link", net, "--link", f"{disk}:storagelink", "--title", "web1"))
    assert isinstance(created, dict)
    vm = created["location"]
    shown = as_json(run(occi, "-o", "json", "show", vm))
    assert isinstance(shown, dict)
    assert shown["attributes"]["occi.compute.cores"] == 2
    assert shown["attributes"]["occi.compute.memory"] == 4.0
    assert shown["mixins"] == [DEBIAN]
    assert sorted(link["kind"] for link in shown["links"]) == sorted([NETWORKINTERFACE, STORAGELINK])

    stopped = as_json(run(occi, "-o", "json", "action", "stop", vm, "--attr", "method=graceful"))
    assert isinstance(stopped, dict) and stopped["attributes"]["occi.compute.state"] == "inactive"
    resized = as_json(run(occi, "-o", "json", "update", vm, "--attr", "occi.compute.cores=4"))
    assert isinstance(resized, dict) and resized["attributes"]["occi.compute.cores"] == 4
    started = run(occi, "-o", "json", "action", "start", vm, "--wait")
    assert "active" in started.stderr
    assert as_json(started)["attributes"]["occi.compute.state"] == "active"  # type: ignore[index]

    listed = as_json(run(occi, "-o", "json", "list", "compute"))
    assert isinstance(listed, list) and [e["location"] for e in listed] == [vm]
    assert run(occi, "list", "compute", "-q").stdout.split() == [vm]
    assert run(occi, "list", "compute", "-q", "--filter", "occi.core.title=web1").stdout.split() == [vm]
    assert run(occi, "list", "compute", "-q", "--filter", "occi.core.title=nope").stdout.split() == []
    table = run(occi, "list", "compute").stdout
    assert "web1" in table and "active" in table

    run(occi, "delete", vm, net, disk)
    assert run(occi, "list", "compute", "-q").stdout.split() == []


def test_links_mixins_and_user_mixins(occi: Client) -> None:
    vm = run(occi, "create", "compute").stdout.strip()
    disk = run(occi, "create", "storage", "-a", "occi.storage.size=1").stdout.strip()
    link = run(occi, "link", vm, disk, "-a", "occi.storagelink.deviceid=/dev/vdb").stdout.strip()
    assert "/storagelink/" in link
    assert as_json(run(occi, "-o", "json", "show", link))["kind"] == STORAGELINK  # type: ignore[index]
    run(occi, "unlink", link)
    assert as_json(run(occi, "-o", "json", "show", vm)).get("links") is None  # type: ignore[union-attr]

    added = as_json(run(occi, "-o", "json", "mixin", "add", vm, "tiny"))
    assert "http://occi.test/occi/resource_tpl#tiny" in added["mixins"]  # type: ignore[index]
    removed = as_json(run(occi, "-o", "json", "mixin", "remove", vm, "resource_tpl#tiny"))
    assert removed["mixins"] == []  # type: ignore[index]

    defined = as_json(run(occi, "-o", "json", "mixin", "define", "web", "--title", "web servers"))
    assert defined["mixins"][0]["location"] == "/web/"  # type: ignore[index]
    run(occi, "mixin", "add", vm, "web")
    assert run(occi, "list", "web", "-q").stdout.split() == [vm]
    run(occi, "mixin", "undefine", "web")
    assert "unknown mixin 'web'" in run(occi, "list", "web", code=1).stderr


def test_update_replace_and_unset(occi: Client) -> None:
    vm = run(occi, "create", "compute", "-t", "x", "-a", "occi.compute.hostname=h1").stdout.strip()
    after = as_json(run(occi, "-o", "json", "update", vm, "--unset", "occi.compute.hostname"))
    assert isinstance(after, dict)
    assert "occi.compute.hostname" not in after["attributes"] and after["attributes"]["occi.core.title"] == "x"
    assert "nothing to update" in run(occi, "update", vm, code=2).stderr


def test_output_occi_is_the_text_rendering(occi: Client) -> None:
    vm = run(occi, "create", "compute", "-t", "raw").stdout.strip()
    raw = run(occi, "-o", "occi", "show", vm).stdout
    assert raw.splitlines()[0] == 'Category: compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind"'
    assert 'X-OCCI-Attribute: occi.core.title="raw"' in raw


# ---- errors: one line on stderr, an exit code per kind of failure ------------------------------


def test_not_found_is_one_line_with_its_exit_code(occi: Client) -> None:
    result = run(occi, "show", "/compute/none", code=3)
    assert result.stderr.strip().startswith("Error: not found:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_conflict_has_its_own_message_and_code() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/-/":
            return FakeServer()(request)
        return httpx.Response(409, json={"code": 409, "message": "already there"})

    client = Client(BASE, transport=httpx.MockTransport(handler))
    result = run(client, "create", "compute", code=4)
    assert result.stderr.strip() == "Error: conflict: already there"


def test_server_down_has_its_own_message_and_code() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = Client(BASE, transport=httpx.MockTransport(handler))
    result = run(client, "discover", code=5)
    assert result.stderr.strip().startswith("Error: cannot reach the OCCI server at http://occi.test/")
    assert "Traceback" not in result.output


def test_client_side_validation_names_the_attribute(occi: Client) -> None:
    result = run(occi, "create", "compute", "-a", "occi.compute.colour=red", code=1)
    assert "occi.compute.colour" in result.stderr
    assert "Error: " in result.stderr


def test_bad_attr_syntax_is_a_usage_error(occi: Client) -> None:
    assert "expected name=value" in run(occi, "create", "compute", "-a", "cores", code=2).stderr


def test_missing_endpoint_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["discover"], env={"OCCI_ENDPOINT": "", "OCCI_CONFIG": "",
                                                        "XDG_CONFIG_HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert "no endpoint" in result.stderr


def test_unreachable_real_endpoint(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["-e", "http://127.0.0.1:9", "discover"],
                                env={"OCCI_CONFIG": "", "XDG_CONFIG_HOME": str(tmp_path)})
    assert result.exit_code == 5, result.output
    assert "cannot reach the OCCI server at http://127.0.0.1:9/" in result.stderr


# ---- settings ----------------------------------------------------------------------------------


def test_settings_precedence(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('endpoint = "http://file"\noutput = "json"\ntimeout = 5\n'
                      '[profiles.prod]\nendpoint = "https://prod"\ntoken = "t"\n')
    env = {"OCCI_CONFIG": str(config)}
    assert load_settings({}, env) == Settings(endpoint="http://file", output="json", timeout=5.0)
    assert load_settings({}, {**env, "OCCI_ENDPOINT": "http://env"}).endpoint == "http://env"
    assert load_settings({"endpoint": "http://flag"}, {**env, "OCCI_ENDPOINT": "http://env"}).endpoint == "http://flag"
    prod = load_settings({}, env, profile="prod")
    assert (prod.endpoint, prod.token, prod.output) == ("https://prod", "t", "json")
    assert load_settings({}, {**env, "OCCI_PROFILE": "prod"}).endpoint == "https://prod"
    assert load_settings({}, {**env, "OCCI_INSECURE": "yes"}).insecure is True


@pytest.mark.parametrize(("content", "message"), [
    ('colour = "red"', "unknown setting"),
    ('output = "xml"', "output must be one of"),
    ("endpoint = [", "config file"),
    ('timeout = "soon"', "timeout must be a number"),
])
def test_bad_config_files_are_reported(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(content)
    with pytest.raises(BadRequest, match=message):
        load_settings({}, {"OCCI_CONFIG": str(config)})


def test_bad_config_is_a_usage_error_on_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('output = "xml"')
    result = CliRunner().invoke(cli, ["--config", str(config), "discover"])
    assert result.exit_code == 2 and "output must be one of" in result.stderr


def test_config_file_endpoint_and_output_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer()
    config = tmp_path / "occi" / "config.toml"
    config.parent.mkdir()
    config.write_text(f'endpoint = "{BASE}"\noutput = "json"\n')
    # The CLI builds its own client from the settings: check them, then route it to the fake server.
    import occipy.cli.main as main_module

    def make_client(settings: Settings) -> Client:
        assert settings.endpoint == BASE
        return Client(BASE, transport=httpx.MockTransport(server), media_type=settings.media_type)

    monkeypatch.setattr(main_module, "make_client", make_client)
    result = CliRunner().invoke(cli, ["discover", "--kinds", "network"],
                                env={"XDG_CONFIG_HOME": str(tmp_path), "OCCI_ENDPOINT": "", "OCCI_CONFIG": ""})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kinds"][0]["term"] == "network"


# ---- completion ----------------------------------------------------------------------------------


def test_completion_script_and_kind_completion(occi: Client) -> None:
    assert "_OCCI_COMPLETE" in run(occi, "completion", "bash").stdout
    from click.shell_completion import ShellComplete
    completer = ShellComplete(cli, {"obj": occi}, "occi", "_OCCI_COMPLETE")
    kinds = [item.value for item in completer.get_completions(["create"], "comp")]
    assert kinds == ["component", "componentlink", "compute"]  # Platform's kinds too (docs/extensions.md)
    assert [item.value for item in completer.get_completions(["create"], "compu")] == ["compute"]
    mixins = [item.value for item in completer.get_completions(["create", "compute", "--mixin"], "deb")]
    assert mixins == ["debian-12"]
    verbs = [item.value for item in completer.get_completions([], "d")]
    assert verbs == ["delete", "discover"]

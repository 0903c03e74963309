"""Basic authentication through a live occipy server, driven by the SDK and the CLI.

The server runs with --auth basic and Apache htpasswd/group/role files in a temp dir; the
files change while it runs. Bind safety is checked on the real `occipy serve` command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from click.testing import CliRunner

from occipy import errors
from occipy.cli.main import cli
from occipy.client import BasicAuth, Client

from .conftest import LiveServer, free_port, start_server, wait_until_up

CHALLENGE = 'Basic realm="occipy", charset="UTF-8"'


def entry(user: str, password: str) -> str:
    # `htpasswd -B` writes $2y$ hashes; cost 4 keeps the test quick
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode().replace('$2b$', '$2y$')}\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("basic-files")
    paths = {name: directory / name for name in ("htpasswd", "groups", "roles")}
    paths["htpasswd"].write_text(entry("alice", "wonderland") + entry("bob", "builder") + entry("eve", "no-group"))
    paths["groups"].write_text("project-a: alice\nproject-b: bob\n")
    paths["roles"].write_text("admin: alice\n")
    return paths


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, files: dict[str, Path]) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("basic-live"), auth="basic", htpasswd=str(files["htpasswd"]),
                        groups=str(files["groups"]), roles=str(files["roles"]))
    yield live
    live.stop()


@pytest.mark.spec("H-37")
def test_good_credentials_are_accepted(server: LiveServer) -> None:
    with Client(server.url, auth=BasicAuth("alice", "wonderland")) as occi:
        location = occi.create("compute", attributes={"occi.compute.cores": 1})
        assert occi.get(location).kind.endswith("#compute")
        occi.delete(location)


def test_the_principal_is_the_user(server: LiveServer) -> None:
    """A user mixin belongs to the user who defined it: others do not see it (query.py)."""
    with Client(server.url, auth=BasicAuth("alice", "wonderland")) as alice, \
            Client(server.url, auth=BasicAuth("bob", "builder")) as bob:
        alice.define_mixin("alices-tag", "http://example.org/tags#")
        assert "http://example.org/tags#alices-tag" in alice.discover(refresh=True).mixins
        assert "http://example.org/tags#alices-tag" not in bob.discover(refresh=True).mixins
        alice.undefine_mixin("http://example.org/tags#alices-tag")


@pytest.mark.parametrize("auth", [None, BasicAuth("alice", "wrong"), BasicAuth("mallory", "wonderland"),
                                  BasicAuth("eve", "no-group")], ids=["none", "wrong-password", "unknown-user",
                                                                      "in-no-group"])
@pytest.mark.spec("H-37")
def test_missing_or_wrong_credentials_are_401_with_the_challenge(server: LiveServer, auth: BasicAuth | None) -> None:
    with Client(server.url, auth=auth) as occi, pytest.raises(errors.Unauthorized) as caught:
        occi.discover()
    assert caught.value.challenges == (CHALLENGE,)
    expected = "authentication required" if auth is None else "wrong user name or password"
    assert caught.value.message == expected


@pytest.mark.parametrize(("accept", "media"), [("application/occi+json", "application/occi+json"),
                                               ("text/plain", "text/plain"), ("text/occi", "text/occi")])
def test_a_401_is_rendered_in_the_negotiated_type_and_nothing_is_created(
        server: LiveServer, accept: str, media: str) -> None:
    response = httpx.post(server.url + "/compute/", headers={"Accept": accept, "Content-Type": "text/plain"},
                          content=b'Category: compute; scheme="http://schemas.ogf.org/occi/infrastructure#"')
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate") == [CHALLENGE]
    assert response.headers["content-type"].startswith(media)
    with Client(server.url, auth=BasicAuth("alice", "wonderland")) as occi:
        assert occi.list_locations("compute") == []


def test_the_password_file_is_read_again_when_it_changes(server: LiveServer, files: dict[str, Path]) -> None:
    original = files["htpasswd"].read_text()
    try:
        files["htpasswd"].write_text(original + entry("carol", "new-user"))
        files["groups"].write_text("project-a: alice carol\nproject-b: bob\n")
        with Client(server.url, auth=BasicAuth("carol", "new-user")) as occi:
            occi.discover()
        files["htpasswd"].write_text(original.replace("alice:", "alice-gone:"))
        with Client(server.url, auth=BasicAuth("alice", "wonderland")) as occi, pytest.raises(errors.Unauthorized):
            occi.discover()
    finally:
        files["htpasswd"].write_text(original)
        files["groups"].write_text("project-a: alice\nproject-b: bob\n")


def cli_env(server: LiveServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"OCCI_ENDPOINT": server.url, "OCCI_CONFIG": "", "XDG_CONFIG_HOME": str(tmp_path), "OCCI_OUTPUT": "",
            "OCCI_USERNAME": "", "OCCI_PASSWORD": "", "OCCI_AUTH": "", "OCCI_TOKEN": "", **extra}


def test_the_cli_with_basic(server: LiveServer, tmp_path: Path) -> None:
    ok = CliRunner().invoke(cli, ["--auth", "basic", "-u", "alice", "list", "compute"],
                            env=cli_env(server, tmp_path, OCCI_PASSWORD="wonderland"))
    assert ok.exit_code == 0, ok.stderr
    wrong = CliRunner().invoke(cli, ["--auth", "basic", "-u", "alice", "--password", "nope", "list", "compute"],
                               env=cli_env(server, tmp_path))
    assert wrong.exit_code == 1
    assert wrong.stderr.strip() == ("Error: authentication failed: the server refused the password of user alice "
                                    "(wrong user name or password)")
    anonymous = CliRunner().invoke(cli, ["list", "compute"], env=cli_env(server, tmp_path))
    assert anonymous.exit_code == 1
    assert anonymous.stderr.strip() == ("Error: authentication failed: no credentials given (authentication "
                                        "required); the server accepts Basic (see --auth)")


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "occipy", "serve", *args], capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, **(env or {})})


def test_an_anonymous_server_refuses_a_public_address(tmp_path: Path) -> None:
    done = serve("--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip() == ("Error: refusing to serve 0.0.0.0 without authentication: give --auth "
                                   "(docs/security.md), or --allow-anonymous to let anyone in")
    env_anonymous = serve("--host", "0.0.0.0", "--auth", "basic", "--data-dir", str(tmp_path))
    assert env_anonymous.returncode == 1
    assert env_anonymous.stderr.strip() == "Error: --auth basic needs --htpasswd (env OCCIPY_HTPASSWD)"


def test_the_server_starts_with_basic_from_the_environment(tmp_path: Path, files: dict[str, Path]) -> None:
    port = free_port()
    env = {"OCCIPY_AUTH": "basic", "OCCIPY_HTPASSWD": str(files["htpasswd"]), "OCCIPY_GROUPS": str(files["groups"]),
           "OCCIPY_ROLES": str(files["roles"]), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "occipy", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--data-dir", str(tmp_path)], env={**os.environ, **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url)
        assert httpx.get(url + "/-/").status_code == 401
        assert httpx.get(url + "/-/", auth=("alice", "wonderland")).status_code == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert "auth basic" in stderr

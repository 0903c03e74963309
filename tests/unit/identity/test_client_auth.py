"""The SDK's and the CLI's authentication options, against servers faked with httpx.MockTransport.

The live counterparts (real occipy, real Keystone, real glewlwyd) are tests/integration/test_auth_*.py.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

from occipy import errors
from occipy.cli.config import Settings, load_settings
from occipy.cli.main import cli, make_auth
from occipy.client import (
    AsyncClient,
    BasicAuth,
    BearerToken,
    Client,
    CredentialRefused,
    KeystoneAuth,
    KeystoneToken,
)
from occipy.client._auth import keystone_uri

from ..client.fake import BASE, FakeServer

KEYSTONE = "http://keystone.test:5000"


def expires(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat()


class Cloud:
    """An OCCI server that wants a Keystone token, and its Keystone (one MockTransport for both)."""

    def __init__(self, *, projects: tuple[str, ...] = ("demo",), lifetime: float = 3600,
                 challenge: str = f'Keystone uri="{KEYSTONE}"') -> None:
        self.occi = FakeServer()
        self.projects = projects
        self.lifetime = lifetime
        self.challenge = challenge
        self.valid: dict[str, str] = {}  # token -> project
        self.issued = 0
        self.keystone_calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "keystone.test":
            return self.keystone(request)
        token = request.headers.get("x-auth-token")
        if token not in self.valid:
            return httpx.Response(401, json={"code": 401, "message": "authentication required"},
                                  headers={"WWW-Authenticate": self.challenge})
        return self.occi(request)

    def keystone(self, request: httpx.Request) -> httpx.Response:
        self.keystone_calls.append(f"{request.method} {request.url.path}")
        if request.url.path == "/v3/auth/projects":
            return httpx.Response(200, json={"projects": [{"id": p, "name": p} for p in self.projects]})
        body: dict[str, Any] = json.loads(request.content)["auth"]
        user = body["identity"]["password"]["user"]
        if (user["name"], user["password"]) != ("alice", "pw"):
            return httpx.Response(401, json={"error": {"code": 401, "message": "The request you have made requires "
                                                                               "authentication."}})
        project = body.get("scope", {}).get("project", {}).get("name")
        if project is not None and project not in self.projects:
            return httpx.Response(401, json={"error": {"code": 401}})
        self.issued += 1
        token = f"token-{self.issued}"
        if project is not None:
            self.valid[token] = project
        return httpx.Response(201, headers={"X-Subject-Token": token},
                              json={"token": {"expires_at": expires(self.lifetime)}})


def test_keystone_discovery_gets_a_scoped_token_once_and_retries() -> None:
    cloud = Cloud()
    with Client(BASE, auth=KeystoneAuth("alice", "pw", project="demo"), transport=httpx.MockTransport(cloud)) as occi:
        occi.discover()
        occi.list_locations("compute")
        occi.create("compute")
    assert cloud.keystone_calls == ["POST /v3/auth/tokens"]
    assert cloud.occi.requests[-1].headers["x-auth-token"] == "token-1"


def test_keystone_without_a_project_uses_the_only_one_or_asks_for_one() -> None:
    cloud = Cloud()
    with Client(BASE, auth=KeystoneAuth("alice", "pw"), transport=httpx.MockTransport(cloud)) as occi:
        occi.discover()
    assert cloud.keystone_calls == ["POST /v3/auth/tokens", "GET /v3/auth/projects", "POST /v3/auth/tokens"]
    several = Cloud(projects=("demo", "other"))
    with Client(BASE, auth=KeystoneAuth("alice", "pw"), transport=httpx.MockTransport(several)) as occi, \
            pytest.raises(CredentialRefused) as caught:
        occi.discover()
    assert caught.value.message == ("user alice has several Keystone projects (demo, other): name one with --project")


def test_keystone_refusals_say_which_credential_failed() -> None:
    with Client(BASE, auth=KeystoneAuth("alice", "wrong", project="demo"), transport=httpx.MockTransport(Cloud())) \
            as occi, pytest.raises(CredentialRefused) as caught:
        occi.discover()
    assert caught.value.message == f"Keystone at {KEYSTONE}/v3 refused the password of user alice"
    with Client(BASE, auth=KeystoneAuth("alice", "pw", project="nope"), transport=httpx.MockTransport(Cloud())) \
            as occi, pytest.raises(CredentialRefused) as caught:
        occi.discover()
    assert caught.value.message == "user alice has no role in Keystone project nope (or it does not exist in " \
        "domain Default)"


def test_an_expired_keystone_token_is_renewed() -> None:
    cloud = Cloud(lifetime=10)  # inside the 30 s margin: every request needs a new one
    with Client(BASE, auth=KeystoneAuth("alice", "pw", project="demo"), transport=httpx.MockTransport(cloud)) as occi:
        occi.discover()
        cloud.valid.clear()  # Keystone revoked it
        occi.list_locations("compute")
    assert cloud.issued == 2


def test_a_server_without_keystone_leaves_the_401() -> None:
    cloud = Cloud(challenge='Basic realm="occipy"')
    with Client(BASE, auth=KeystoneAuth("alice", "pw"), transport=httpx.MockTransport(cloud)) as occi, \
            pytest.raises(errors.Unauthorized) as caught:
        occi.discover()
    assert cloud.keystone_calls == [] and caught.value.challenges == ('Basic realm="occipy"',)


async def test_the_async_client_follows_keystone_too() -> None:
    cloud = Cloud()
    async with AsyncClient(BASE, auth=KeystoneAuth("alice", "pw", project="demo"),
                           transport=httpx.MockTransport(cloud)) as occi:
        await occi.discover()
        await occi.list_locations("compute")
    assert cloud.keystone_calls == ["POST /v3/auth/tokens"]


def test_keystone_uri_from_challenges() -> None:
    assert keystone_uri(['Basic realm="x"', 'Keystone uri="https://k:5000/v3"']) == "https://k:5000/v3"
    assert keystone_uri(["keystone uri='http://k:5000'"]) == "http://k:5000"
    assert keystone_uri(['Bearer realm="x"']) is None


def test_token_options_send_their_headers(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    server = FakeServer()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return server(request)

    path = tmp_path / "token"
    path.write_text("  file-token\n")
    for auth, name, value in [(BearerToken("abc"), "authorization", "Bearer abc"),
                              (BearerToken.from_file(path), "authorization", "Bearer file-token"),
                              (KeystoneToken("ks"), "x-auth-token", "ks"),
                              (BasicAuth("alice", "pw"), "authorization", "Basic YWxpY2U6cHc=")]:
        with Client(BASE, auth=auth, transport=httpx.MockTransport(handler)) as occi:
            occi.discover(refresh=True)
        assert seen[-1].headers[name] == value
    with pytest.raises(errors.BadRequest, match="cannot read the token file"):
        BearerToken.from_file(tmp_path / "missing")


# ---- CLI -------------------------------------------------------------------------------------------


def settings(**values: Any) -> Settings:
    return Settings(endpoint=BASE, **values)


def test_cli_auth_choices(tmp_path: Path) -> None:
    token_file = tmp_path / "t"
    token_file.write_text("from-file\n")
    assert make_auth(settings(auth="basic", username="alice", password="pw")) == BasicAuth("alice", "pw")
    assert make_auth(settings(auth="oidc", token="t")) == BearerToken("t")
    assert make_auth(settings(auth="oidc", token="t", token_file=str(token_file))) == BearerToken("from-file")
    assert make_auth(settings(auth="token", token="ks")) == KeystoneToken("ks")
    assert make_auth(settings(auth="keystone", username="alice", password="pw", project="demo")) == \
        KeystoneAuth("alice", "pw", project="demo")
    assert make_auth(settings(auth="x509", cert="c.pem")) is None
    assert make_auth(settings(token="t")) == BearerToken("t")  # no --auth: the token given is a bearer
    assert make_auth(settings(username="u")) == BasicAuth("u", "")
    assert make_auth(settings()) is None


@pytest.mark.parametrize(("values", "message"), [
    ({"auth": "basic"}, "--auth basic needs a user name"),
    ({"auth": "keystone", "username": "alice"}, "no password for user alice"),
    ({"auth": "oidc"}, "--auth oidc needs a token: --token, --token-file, OCCI_OIDC_TOKEN or OCCI_TOKEN"),
    ({"auth": "token"}, "--auth token needs a token"),
    ({"auth": "x509"}, "--auth x509 needs a client certificate"),
    ({"auth": "oidc", "token_file": "/nonexistent"}, "cannot read the token file /nonexistent"),
])
def test_cli_missing_credentials_are_usage_errors(values: dict[str, Any], message: str) -> None:
    with pytest.raises(click.UsageError) as caught:
        make_auth(settings(**values))
    assert message in caught.value.message


def test_cli_oidc_token_from_the_environment(tmp_path: Path) -> None:
    env = {"OCCI_OIDC_TOKEN": "oidc-env", "OCCI_TOKEN": "generic", "OCCI_CONFIG": str(tmp_path / "none.toml")}
    config = tmp_path / "none.toml"
    config.write_text("")
    assert load_settings({"auth": "oidc"}, env).token == "oidc-env"
    assert load_settings({"auth": "oidc", "token": "flag"}, env).token == "flag"
    assert load_settings({"auth": "token"}, env).token == "generic"
    assert load_settings({}, {**env, "OCCI_AUTH": "oidc"}).token == "oidc-env"
    with pytest.raises(errors.BadRequest, match="auth must be one of"):
        load_settings({}, {**env, "OCCI_AUTH": "kerberos"})


def run_cli(client: Client, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), obj=client, env={"OCCI_CONFIG": "", "OCCI_ENDPOINT": ""})
    return result.exit_code, result.stderr


def test_cli_401_says_which_credential_failed_or_what_the_server_accepts() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"code": 401, "message": "wrong user name or password"},
                              headers=[("WWW-Authenticate", 'Basic realm="occipy"'),
                                       ("WWW-Authenticate", f'Keystone uri="{KEYSTONE}"')])

    code, err = run_cli(Client(BASE, auth=BasicAuth("alice", "x"), transport=httpx.MockTransport(refuse)), "discover")
    assert code == 1
    assert err.strip() == ("Error: authentication failed: the server refused the password of user alice "
                           "(wrong user name or password)")
    code, err = run_cli(Client(BASE, transport=httpx.MockTransport(refuse)), "discover")
    assert code == 1 and err.strip() == ("Error: authentication failed: no credentials given (wrong user name or "
                                         "password); the server accepts Basic, Keystone (see --auth)")
    code, err = run_cli(Client(BASE, auth=KeystoneAuth("alice", "bad", project="demo"),
                               transport=httpx.MockTransport(Cloud())), "discover")
    assert code == 1 and err.strip() == (f"Error: authentication failed: Keystone at {KEYSTONE}/v3 refused the "
                                         "password of user alice")
    assert "Traceback" not in err
    code, err = run_cli(Client(BASE, auth=KeystoneAuth("alice", "pw"), transport=httpx.MockTransport(
        Cloud(challenge='Basic realm="occipy"'))), "discover")
    assert code == 1 and err.strip() == ("Error: authentication failed: the server names no Keystone to get a "
                                         "token from; the server accepts Basic (see --auth)")


def test_cli_unreachable_keystone_names_it() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "keystone.test":
            raise httpx.ConnectError("connection refused", request=request)
        return Cloud()(request)

    code, err = run_cli(Client(BASE, auth=KeystoneAuth("alice", "pw", project="demo"),
                               transport=httpx.MockTransport(handler)), "discover")
    assert code == 5
    assert err.strip() == (f"Error: cannot reach the identity service at {KEYSTONE}/v3/auth/tokens: "
                           "connection refused")

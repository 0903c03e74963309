"""Keystone tokens through a live occipy server, against a real Keystone the module starts.

Keystone (Debian's python3-keystone, SQLite, keystone-wsgi-public on 127.0.0.1) is set up once for
the module (tests/services/keystone.py; 15-40 s). The SDK discovers it from occipy's 401
(`WWW-Authenticate: Keystone uri=...`), as rOCCI-cli and ooi clients do. The last test enables every
method at once (basic, oidc with glewlwyd, keystone).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from click.testing import CliRunner

from occipy import errors
from occipy.cli.main import cli
from occipy.client import BasicAuth, BearerToken, Client, CredentialRefused, KeystoneAuth, KeystoneToken
from tests.services import glewlwyd, keystone
from tests.services.glewlwyd import Glewlwyd
from tests.services.keystone import Keystone

from .conftest import LiveServer, start_server

pytestmark = [pytest.mark.keystone, pytest.mark.slow]


@pytest.fixture(scope="module")
def ks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keystone]:
    if not keystone.available():
        raise RuntimeError("Keystone is not installed: run scripts/bootstrap.sh keystone (make test does)")
    started = Keystone.start(tmp_path_factory.mktemp("keystone"))
    started.user("occipy", "occipy-service-pw", grants={"service": "service"})
    started.user("alice", "alice-pw", grants={"demo": "member"})
    started.user("bob", "bob-pw", grants={"demo": "reader"})
    started.user("carol", "carol-pw", grants={"demo": "member", "other": "member"})
    started.user("dave", "dave-pw")  # no project at all
    yield started
    started.cleanup()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, ks: Keystone) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("keystone-live"), auth="keystone", keystone_url=ks.url,
                        keystone_user="occipy", keystone_password="occipy-service-pw", keystone_project="service",
                        keystone_cache_ttl=1.0)
    yield live
    live.stop()


def test_keystone_discovery_from_the_401(server: LiveServer, ks: Keystone) -> None:
    response = httpx.get(server.url + "/-/")
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate") == [f'Keystone uri="{ks.url}"']
    with Client(server.url, auth=KeystoneAuth("alice", "alice-pw", project="demo")) as occi:
        location = occi.create("compute")
        occi.delete(location)
        assert occi.list_locations("compute") == []


def test_the_only_project_is_used_when_none_is_named(server: LiveServer) -> None:
    with Client(server.url, auth=KeystoneAuth("bob", "bob-pw")) as occi:
        occi.discover()
    with Client(server.url, auth=KeystoneAuth("carol", "carol-pw")) as occi, \
            pytest.raises(CredentialRefused) as caught:
        occi.discover()
    assert caught.value.message == "user carol has several Keystone projects (demo, other): name one with --project"
    with Client(server.url, auth=KeystoneAuth("dave", "dave-pw")) as occi, pytest.raises(CredentialRefused,
                                                                                       match="has no project"):
        occi.discover()


def test_the_tenant_is_the_keystone_project(server: LiveServer) -> None:
    with Client(server.url, auth=KeystoneAuth("alice", "alice-pw", project="demo")) as alice, \
            Client(server.url, auth=KeystoneAuth("carol", "carol-pw", project="demo")) as carol_demo, \
            Client(server.url, auth=KeystoneAuth("carol", "carol-pw", project="other")) as carol_other:
        alice.define_mixin("ks-tag", "http://example.org/tags#")
        assert "http://example.org/tags#ks-tag" in alice.discover(refresh=True).mixins
        # A user mixin belongs to the tenant (the project): the same project sees it, another does not.
        assert "http://example.org/tags#ks-tag" in carol_demo.discover(refresh=True).mixins
        assert "http://example.org/tags#ks-tag" not in carol_other.discover(refresh=True).mixins
        alice.undefine_mixin("http://example.org/tags#ks-tag")


def test_wrong_passwords_and_projects_say_which_credential_failed(server: LiveServer, ks: Keystone) -> None:
    with Client(server.url, auth=KeystoneAuth("alice", "wrong", project="demo")) as occi, \
            pytest.raises(CredentialRefused) as caught:
        occi.discover()
    assert caught.value.message == f"Keystone at {ks.api} refused the password of user alice"
    with Client(server.url, auth=KeystoneAuth("alice", "alice-pw", project="other")) as occi, \
            pytest.raises(CredentialRefused) as caught:
        occi.discover()
    assert caught.value.message == ("user alice has no role in Keystone project other (or it does not exist in "
                                    "domain Default)")


def test_a_token_from_keystone_is_accepted_until_revoked(server: LiveServer, ks: Keystone) -> None:
    token = ks.password_token("alice", "alice-pw", "demo")
    with Client(server.url, auth=KeystoneToken(token)) as occi:
        occi.discover()
        ks.revoke(token)
        time.sleep(1.2)  # the server's cache TTL in this module
        with pytest.raises(errors.Unauthorized) as caught:
            occi.discover(refresh=True)
    assert caught.value.message == "invalid Keystone token"
    assert caught.value.challenges == (f'Keystone uri="{ks.url}"',)


@pytest.mark.parametrize("value", ["garbage", "gAAAAABpretend-fernet-token", "x" * 300])
def test_unknown_tokens_are_refused(server: LiveServer, value: str) -> None:
    with Client(server.url, auth=KeystoneToken(value)) as occi, pytest.raises(errors.Unauthorized):
        occi.discover()


def test_an_unscoped_token_is_refused(server: LiveServer, ks: Keystone) -> None:
    with Client(server.url, auth=KeystoneToken(ks.password_token("alice", "alice-pw", None))) as occi, \
            pytest.raises(errors.Unauthorized):
        occi.discover()


def test_without_a_service_user_tokens_validate_themselves(tmp_path: Path, ks: Keystone) -> None:
    live = start_server(tmp_path, auth="keystone", keystone_url=ks.api)  # the URL may end in /v3
    try:
        with Client(live.url, auth=KeystoneAuth("bob", "bob-pw", project="demo")) as occi:
            occi.discover()
        with Client(live.url, auth=KeystoneToken("garbage")) as occi, pytest.raises(errors.Unauthorized):
            occi.discover()
    finally:
        live.stop()


def test_the_cli_with_keystone(server: LiveServer, ks: Keystone, tmp_path: Path) -> None:
    env = {"OCCI_ENDPOINT": server.url, "OCCI_CONFIG": "", "XDG_CONFIG_HOME": str(tmp_path), "OCCI_OUTPUT": "",
           "OCCI_AUTH": "", "OCCI_TOKEN": "", "OCCI_USERNAME": "", "OCCI_PASSWORD": "", "OCCI_PROJECT": ""}
    ok = CliRunner().invoke(cli, ["--auth", "keystone", "-u", "alice", "--project", "demo", "list", "compute"],
                            env={**env, "OCCI_PASSWORD": "alice-pw"})
    assert ok.exit_code == 0, ok.stderr
    wrong = CliRunner().invoke(cli, ["--auth", "keystone", "-u", "alice", "--password", "nope", "list", "compute"],
                               env=env)
    assert wrong.exit_code == 1
    assert wrong.stderr.strip() == ("Error: authentication failed: Keystone at "
                                    f"{ks.api} refused the password of user alice")
    token = CliRunner().invoke(cli, ["--auth", "token", "list", "compute"],
                               env={**env, "OCCI_TOKEN": ks.password_token("bob", "bob-pw", "demo")})
    assert token.exit_code == 0, token.stderr


def test_every_method_at_once(tmp_path: Path, ks: Keystone) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"erin:{bcrypt.hashpw(b'erin-pw', bcrypt.gensalt(4)).decode()}\n")
    provider = Glewlwyd.start(tmp_path / "glewlwyd")
    provider.add_client("c", "client-secret-0123456789")
    live = start_server(tmp_path / "occipy", auth="basic,oidc,keystone", htpasswd=str(htpasswd),
                        oidc_issuer=provider.issuer, oidc_audience=glewlwyd.SCOPE, keystone_url=ks.url)
    try:
        response = httpx.get(live.url + "/-/")
        assert response.status_code == 401
        assert response.headers.get_list("www-authenticate") == [
            'Basic realm="occipy", charset="UTF-8"', 'Bearer realm="occipy"', f'Keystone uri="{ks.url}"']
        for auth in (BasicAuth("erin", "erin-pw"), BearerToken(provider.client_token("c", "client-secret-0123456789")),
                     KeystoneAuth("alice", "alice-pw", project="demo")):
            with Client(live.url, auth=auth) as occi:
                occi.discover()
        wrong = httpx.get(live.url + "/-/", headers={
            "Authorization": "Basic " + base64.b64encode(b"erin:wrong").decode()})
        assert wrong.status_code == 401 and len(wrong.headers.get_list("www-authenticate")) == 3
    finally:
        live.stop()
        provider.cleanup()

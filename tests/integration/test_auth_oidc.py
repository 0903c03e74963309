"""OpenID Connect bearer tokens through a live occipy server, from a real provider (glewlwyd).

glewlwyd runs on 127.0.0.1 with a temp SQLite database (tests/services/glewlwyd.py) and issues real
RS256 access tokens by the password and client_credentials grants. Tokens it would never issue
(expired, forged) are signed here: expired ones with its own published key, forged ones with a
key it does not publish.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa

from occipy import errors
from occipy.cli.main import cli
from occipy.client import AsyncClient, BearerToken, Client
from tests.services import glewlwyd
from tests.services.glewlwyd import Glewlwyd

from .conftest import LiveServer, start_server

pytestmark = pytest.mark.oidc

CLIENT, SECRET = "occi-cli", "client-secret-0123456789"
CHALLENGE = 'Bearer realm="occipy"'


def start_provider(directory: Path) -> Glewlwyd:
    if not glewlwyd.available():
        raise RuntimeError("glewlwyd is not installed: run scripts/bootstrap.sh oidc (make test does)")
    provider = Glewlwyd.start(directory)
    provider.add_client(CLIENT, SECRET)
    provider.add_user("alice", "alice-password", groups="vo.example.org", roles=["admin"])
    provider.add_user("bob", "bob-password", groups="vo.other.org")
    provider.add_user("nogroup", "nogroup-password")
    return provider


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Glewlwyd]:
    started = start_provider(tmp_path_factory.mktemp("glewlwyd"))
    yield started
    started.cleanup()


def oidc_server(directory: Path, provider: Glewlwyd, **options: object) -> LiveServer:
    return start_server(directory, auth="oidc", oidc_issuer=provider.issuer, oidc_audience=glewlwyd.SCOPE,
                        **options)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provider: Glewlwyd) -> Iterator[LiveServer]:
    """EGI-like mapping: user from preferred_username, tenant from groups, roles from roles."""
    live = oidc_server(tmp_path_factory.mktemp("oidc-live"), provider, oidc_user_claim="preferred_username",
                       oidc_tenant_claim="groups", oidc_roles_claim="roles")
    yield live
    live.stop()


def token(provider: Glewlwyd, user: str = "alice") -> str:
    return provider.password_token(CLIENT, SECRET, user, f"{user}-password")


def test_a_password_grant_token_is_accepted(server: LiveServer, provider: Glewlwyd) -> None:
    with Client(server.url, auth=BearerToken(token(provider))) as occi:
        location = occi.create("compute")
        assert occi.get(location).attributes["occi.core.id"]
        occi.delete(location)


def test_the_user_comes_from_the_configured_claim(server: LiveServer, provider: Glewlwyd) -> None:
    with Client(server.url, auth=BearerToken(token(provider, "alice"))) as alice, \
            Client(server.url, auth=BearerToken(token(provider, "bob"))) as bob:
        alice.define_mixin("oidc-tag", "http://example.org/tags#")
        assert "http://example.org/tags#oidc-tag" in alice.discover(refresh=True).mixins
        assert "http://example.org/tags#oidc-tag" not in bob.discover(refresh=True).mixins
        alice.undefine_mixin("http://example.org/tags#oidc-tag")


async def test_the_async_client_with_a_token(server: LiveServer, provider: Glewlwyd) -> None:
    async with AsyncClient(server.url, auth=BearerToken(token(provider))) as occi:
        assert "http://schemas.ogf.org/occi/infrastructure#compute" in (await occi.discover()).kinds


def test_client_credentials_tokens(tmp_path: Path, server: LiveServer, provider: Glewlwyd) -> None:
    service_token = provider.client_token(CLIENT, SECRET)
    with Client(server.url, auth=BearerToken(service_token)) as occi, pytest.raises(errors.Unauthorized):
        occi.discover()  # no preferred_username nor groups claim: refused by the EGI-like mapping
    plain = oidc_server(tmp_path / "plain", provider)  # default mapping: user = sub, tenant default
    try:
        with Client(plain.url, auth=BearerToken(service_token)) as occi:
            occi.discover()
    finally:
        plain.stop()


def test_a_user_without_a_tenant_is_refused(server: LiveServer, provider: Glewlwyd) -> None:
    with Client(server.url, auth=BearerToken(token(provider, "nogroup"))) as occi, \
            pytest.raises(errors.Unauthorized):
        occi.discover()


def test_no_token_is_401_with_the_bearer_challenge(server: LiveServer) -> None:
    with Client(server.url) as occi, pytest.raises(errors.Unauthorized) as caught:
        occi.discover()
    assert caught.value.challenges == (CHALLENGE,)


def test_a_token_for_another_audience_is_refused(server: LiveServer, provider: Glewlwyd) -> None:
    other = provider.password_token(CLIENT, SECRET, "alice", "alice-password", scope=glewlwyd.OTHER_SCOPE)
    assert jwt.decode(other, options={"verify_signature": False})["aud"] == glewlwyd.OTHER_SCOPE
    with Client(server.url, auth=BearerToken(other)) as occi, pytest.raises(errors.Unauthorized) as caught:
        occi.discover()
    assert caught.value.message == "invalid bearer token" and caught.value.challenges == (CHALLENGE,)


def signed(provider: Glewlwyd, key: object, kid: str, **changes: object) -> str:
    """The claims of a real token for alice, changed, signed with `key` under `kid`."""
    claims = jwt.decode(token(provider), options={"verify_signature": False})
    claims.update(changes)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"})  # type: ignore[arg-type]


def test_expired_and_forged_tokens_are_refused(server: LiveServer, provider: Glewlwyd) -> None:
    kid = provider.kid()
    published = provider.private_key
    control = signed(provider, published, kid)  # the provider's own key: accepted
    with Client(server.url, auth=BearerToken(control)) as occi:
        occi.discover()
    now = int(time.time())
    refused = {
        "expired": signed(provider, published, kid, exp=now - 120, iat=now - 3720, nbf=now - 3720),
        "not yet valid": signed(provider, published, kid, nbf=now + 3600),
        "other issuer": signed(provider, published, kid, iss="http://127.0.0.1:1/api/oidc"),
        "forged": signed(provider, rsa.generate_private_key(public_exponent=65537, key_size=2048), kid),
        "tampered": ".".join([*token(provider).split(".")[:1], control.split(".")[1],
                              token(provider).split(".")[2]]),
        "garbage": "not-a-jwt",
    }
    for name, value in refused.items():
        with Client(server.url, auth=BearerToken(value)) as occi, pytest.raises(errors.Unauthorized) as caught:
            occi.discover()
        assert caught.value.challenges == (CHALLENGE,), name


async def test_key_rotation(tmp_path: Path) -> None:
    provider = start_provider(tmp_path / "glewlwyd")
    live = oidc_server(tmp_path / "occipy", provider, oidc_jwks_min_interval=0.5)
    try:
        before = token(provider)
        with Client(live.url, auth=BearerToken(before)) as occi:
            occi.discover()
        old_kid = provider.kid()
        provider.rotate_key()
        assert provider.kid() != old_kid
        after = token(provider)
        assert jwt.get_unverified_header(after)["kid"] != old_kid
        await anyio.sleep(0.6)  # the refetch interval since the first fetch
        with Client(live.url, auth=BearerToken(after)) as occi:
            occi.discover()  # an unknown kid: occipy fetched the new JWKS
        with Client(live.url, auth=BearerToken(before)) as occi, pytest.raises(errors.Unauthorized):
            occi.discover()  # the old key is no longer published
    finally:
        live.stop()
        provider.cleanup()


def test_the_cli_with_oidc(server: LiveServer, provider: Glewlwyd, tmp_path: Path) -> None:
    env = {"OCCI_ENDPOINT": server.url, "OCCI_CONFIG": "", "XDG_CONFIG_HOME": str(tmp_path), "OCCI_OUTPUT": "",
           "OCCI_AUTH": "", "OCCI_TOKEN": "", "OCCI_USERNAME": "", "OCCI_TOKEN_FILE": ""}
    from_env = CliRunner().invoke(cli, ["--auth", "oidc", "list", "compute"],
                                  env={**env, "OCCI_OIDC_TOKEN": token(provider), "OCCI_TOKEN": "stale"})
    assert from_env.exit_code == 0, from_env.stderr
    path = tmp_path / "token"
    path.write_text(token(provider) + "\n")
    from_file = CliRunner().invoke(cli, ["--auth", "oidc", "--token-file", str(path), "list", "compute"], env=env)
    assert from_file.exit_code == 0, from_file.stderr
    wrong = CliRunner().invoke(cli, ["--auth", "oidc", "list", "compute"], env={**env, "OCCI_TOKEN": "a.b.c"})
    assert wrong.exit_code == 1
    assert wrong.stderr.strip() == "Error: authentication failed: the server refused the bearer token (invalid bearer token)"

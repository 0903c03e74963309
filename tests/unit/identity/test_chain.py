"""The chain of methods, building it from settings, bind safety, and the service's identity hook."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import bcrypt
import pytest

from occipy import errors
from occipy.backends.simulated import SimulatedDriver
from occipy.config import ConfigError, Settings, load
from occipy.identity import chain
from occipy.identity.base import Anonymous, Authenticator, Credentials, Principal
from occipy.identity.chain import Chain, build_authenticator, check_exposure, is_loopback
from occipy.model.standard import standard_registry
from occipy.service.messages import OcciRequest
from occipy.service.pipeline import Service
from occipy.store.memory import MemoryStore


@dataclass
class Fake:
    """Answers for requests carrying `header`: a principal, a refusal or an outage."""

    name: str
    header: str
    outcome: str = "accept"  # accept | refuse | down
    calls: int = 0

    def challenges(self) -> Sequence[str]:
        return (f"{self.name.title()} realm=\"t\"",)

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        self.calls += 1
        if credentials.header(self.header) is None:
            return None
        if self.outcome == "refuse":
            raise errors.Unauthorized(f"{self.name} says no", self.challenges())
        if self.outcome == "down":
            raise errors.BackendUnavailable(f"{self.name} is down")
        return Principal(user=f"user-of-{self.name}", method=self.name)

    async def close(self) -> None:
        return None


def creds(*names: str) -> Credentials:
    return Credentials(headers=[(name, "x") for name in names])


async def test_the_first_principal_wins_and_later_methods_are_not_asked() -> None:
    a, b = Fake("a", "h-a"), Fake("b", "h-b")
    principal = await Chain([a, b]).authenticate(creds("h-a", "h-b"))
    assert principal is not None and principal.method == "a" and b.calls == 0


async def test_no_credentials_is_none_and_every_challenge_is_offered() -> None:
    c = Chain([Fake("a", "h-a"), Fake("b", "h-b")])
    assert await c.authenticate(creds()) is None
    assert c.challenges() == ('A realm="t"', 'B realm="t"')


async def test_a_refusal_carries_every_challenge_unless_another_method_accepts() -> None:
    c = Chain([Fake("a", "h-a", "refuse"), Fake("b", "h-b")])
    with pytest.raises(errors.Unauthorized) as caught:
        await c.authenticate(creds("h-a"))
    assert caught.value.message == "a says no" and caught.value.challenges == ('A realm="t"', 'B realm="t"')
    principal = await c.authenticate(creds("h-a", "h-b"))
    assert principal is not None and principal.method == "b"


async def test_an_outage_only_decides_when_nothing_else_does() -> None:
    down, refuse, ok = Fake("k", "h-k", "down"), Fake("a", "h-a", "refuse"), Fake("b", "h-b")
    with pytest.raises(errors.BackendUnavailable):
        await Chain([down, ok]).authenticate(creds("h-k"))
    assert (await Chain([down, ok]).authenticate(creds("h-k", "h-b"))) is not None
    with pytest.raises(errors.Unauthorized):
        await Chain([down, refuse]).authenticate(creds("h-k", "h-a"))


def htpasswd(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n")
    return path


def test_settings_come_from_flags_and_environment(tmp_path: Path) -> None:
    path = htpasswd(tmp_path)
    settings = load(environ={"OCCIPY_AUTH": "basic,keystone", "OCCIPY_HTPASSWD": str(path),
                             "OCCIPY_KEYSTONE_URL": "http://k:5000", "OCCIPY_OIDC_AUDIENCE": "occi",
                             "OCCIPY_KEYSTONE_CACHE_TTL": "12", "OCCIPY_ALLOW_ANONYMOUS": "yes"},
                    flags={"groups": "/etc/occipy/groups"})
    assert (settings.auth, settings.htpasswd, settings.groups) == ("basic,keystone", str(path), "/etc/occipy/groups")
    assert (settings.keystone_url, settings.keystone_cache_ttl, settings.allow_anonymous) == ("http://k:5000", 12.0, True)
    assert "secret" not in repr(replace(settings, keystone_password="secret"))


async def test_build_authenticator(tmp_path: Path) -> None:
    assert isinstance(build_authenticator(Settings()), Anonymous)
    assert isinstance(build_authenticator(Settings(auth=" none ")), Anonymous)
    built = build_authenticator(Settings(
        auth="basic, oidc,keystone,basic", htpasswd=str(htpasswd(tmp_path)), oidc_issuer="https://idp.example",
        oidc_audience="occi, other", keystone_url="http://keystone:5000"))
    assert isinstance(built, Chain) and [m.name for m in built.methods] == ["basic", "oidc", "keystone"]
    assert built.challenges() == ('Basic realm="occipy", charset="UTF-8"', 'Bearer realm="occipy"',
                                  'Keystone uri="http://keystone:5000"')
    await built.close()


@pytest.mark.parametrize(("settings", "message"), [
    (Settings(auth="kerberos"), "unknown --auth method kerberos"),
    (Settings(auth="basic"), "--auth basic needs --htpasswd (env OCCIPY_HTPASSWD)"),
    (Settings(auth="basic", htpasswd="/nonexistent/htpasswd"), "cannot read /nonexistent/htpasswd"),
    (Settings(auth="oidc", oidc_issuer="https://idp"), "--auth oidc needs --oidc-audience"),
    (Settings(auth="oidc", oidc_issuer="idp", oidc_audience="a"), "--oidc-issuer must be an https:// URL"),
    (Settings(auth="oidc", oidc_issuer="https://idp", oidc_audience=" , "), "names no audience"),
    (Settings(auth="oidc", oidc_issuer="https://idp", oidc_audience="a", oidc_tenant_prefix="p"),
     "--oidc-tenant-prefix needs --oidc-tenant-claim"),
    (Settings(auth="keystone"), "--auth keystone needs --keystone-url"),
    (Settings(auth="keystone", keystone_url="http://k", keystone_user="occipy"),
     "--auth keystone needs --keystone-password, --keystone-project"),
    (Settings(auth="x509"), "x509 authentication needs a mapping file: --x509-map (OCCIPY_X509_MAP)"),
])
def test_bad_settings_are_one_clear_error(settings: Settings, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_authenticator(settings)
    assert message in str(caught.value)


async def test_another_module_can_register_a_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(chain.FACTORIES, "x509", lambda settings: Fake("x509", "h-cert"))
    built = build_authenticator(Settings(auth="x509"))
    principal = await built.authenticate(creds("h-cert"))
    assert principal is not None and principal.method == "x509"


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.0.2.10", False), ("example.org", False),
])
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_an_anonymous_server_binds_only_loopback_unless_allowed() -> None:
    check_exposure(Settings())  # make run: 127.0.0.1, anonymous
    with pytest.raises(ConfigError) as caught:
        check_exposure(Settings(host="0.0.0.0"))
    assert str(caught.value) == ("refusing to serve 0.0.0.0 without authentication: give --auth "
                                 "(docs/security.md), or --allow-anonymous to let anyone in")
    assert "\n" not in str(caught.value)
    check_exposure(Settings(host="0.0.0.0", allow_anonymous=True))
    check_exposure(Settings(host="0.0.0.0", auth="basic"))


# ---- authentication, the first step of the request pipeline -----------------------------------


@pytest.fixture
async def service(tmp_path: Path) -> Service:
    path = htpasswd(tmp_path)
    authenticator: Authenticator = build_authenticator(Settings(auth="basic", htpasswd=str(path)))
    svc = Service(standard_registry(), MemoryStore(), SimulatedDriver(delay=0.0), authenticator=authenticator)
    await svc.start()
    return svc


@pytest.mark.parametrize(("accept", "media"), [(None, "text/plain"), ("application/occi+json", "application/occi+json"),
                                               ("text/occi", "text/occi"), ("image/png", "text/plain")])
async def test_the_service_answers_401_with_the_challenges(service: Service, accept: str | None, media: str) -> None:
    headers = [("accept", accept)] if accept else []
    answer = await service.handle(OcciRequest("GET", "/-/", headers=headers))
    assert answer.status == 401
    assert [v for k, v in answer.headers if k == "WWW-Authenticate"] == ['Basic realm="occipy", charset="UTF-8"']
    assert ("Content-Type", media) in answer.headers
    assert b"authentication required" in answer.body or any("authentication required" in v for _, v in answer.headers)


async def test_the_service_runs_the_request_as_the_principal(service: Service) -> None:
    good = "Basic " + base64.b64encode(b"alice:pw").decode()
    kind = 'Category: compute; scheme="http://schemas.ogf.org/occi/infrastructure#"; class="kind"'
    request = OcciRequest("PUT", "/compute/mine", headers=[("authorization", good), ("content-type", "text/plain")],
                          body=kind.encode())
    answer = await service.handle(request)
    assert answer.status == 201, answer.body
    created = await service.store.get("/compute/mine")
    assert created is not None and created.owner == "alice"
    wrong = OcciRequest("GET", "/-/", headers=[("authorization", "Basic " + base64.b64encode(b"alice:no").decode())])
    assert (await service.handle(wrong)).status == 401

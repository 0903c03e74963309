"""Keystone token validation against a Keystone faked with httpx.MockTransport.

The real Keystone is in tests/integration/test_auth_keystone.py; here the cases a real one is
hard to put in: occipy's own token expiring, Keystone down or answering nonsense, the cache.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from occipy import errors
from occipy.identity.base import ADMIN, MEMBER, READER, Credentials
from occipy.identity.keystone import KeystoneAuthenticator, KeystoneOptions, api_base, expiry

URL = "https://keystone.example.org:5000"


def later(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


class FakeKeystone:
    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {}
        self.service_tokens: list[str] = []
        self.validations = 0
        self.down = False
        self.reject_service = False

    def add(self, token: str, user: str = "alice", project: str | None = "p-1", roles: tuple[str, ...] = ("member",),
            domain: str = "default", expires_in: float = 3600) -> None:
        body: dict[str, Any] = {
            "user": {"id": "u-" + user, "name": user, "domain": {"id": domain, "name": domain.title()}},
            "roles": [{"id": "r-" + r, "name": r} for r in roles], "expires_at": later(expires_in)}
        if project is not None:
            body["project"] = {"id": project, "name": "project " + project, "domain": {"id": "default"}}
        self.tokens[token] = body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        assert request.url.path == "/v3/auth/tokens"
        if request.method == "POST":
            if self.reject_service:
                return httpx.Response(401, json={"error": {"code": 401}})
            token = f"service-{len(self.service_tokens)}"
            self.service_tokens.append(token)
            return httpx.Response(201, headers={"X-Subject-Token": token},
                                  json={"token": {"expires_at": later(3600)}})
        self.validations += 1
        auth = request.headers["x-auth-token"]
        if auth not in self.service_tokens[-1:] and auth not in self.tokens:
            return httpx.Response(401, json={"error": {"code": 401}})
        subject = request.headers["x-subject-token"]
        if subject not in self.tokens:
            return httpx.Response(404, json={"error": {"code": 404}})
        return httpx.Response(200, json={"token": self.tokens[subject]})


def token(value: str) -> Credentials:
    return Credentials(headers=[("x-auth-token", value)])


def authenticator(fake: FakeKeystone, **options: Any) -> KeystoneAuthenticator:
    return KeystoneAuthenticator(KeystoneOptions(url=URL, **options), transport=httpx.MockTransport(fake))


async def test_the_project_is_the_tenant_and_roles_map() -> None:
    fake = FakeKeystone()
    fake.add("t-admin", user="root", roles=("admin", "member", "reader"))
    fake.add("t-reader", user="bob", roles=("reader",))
    fake.add("t-other", user="carol", roles=("heat_stack_owner",), domain="d-2")
    auth = authenticator(fake)
    admin = await auth.authenticate(token("t-admin"))
    assert admin is not None and (admin.user, admin.tenant, admin.method) == ("root", "p-1", "keystone")
    assert admin.is_admin and ADMIN in admin.roles
    reader = await auth.authenticate(token("t-reader"))
    assert reader is not None and reader.roles == {READER} and not reader.can_write
    other = await auth.authenticate(token("t-other"))
    assert other is not None and other.roles == {MEMBER} and other.user == "carol@D-2"


async def test_unknown_unscoped_and_malformed_tokens_are_refused_with_the_keystone_challenge() -> None:
    fake = FakeKeystone()
    fake.add("t-unscoped", project=None)
    auth = authenticator(fake)
    for value in ("t-unknown", "t-unscoped", "bad token\x01", "x" * 9000):
        with pytest.raises(errors.Unauthorized) as caught:
            await auth.authenticate(token(value))
        assert caught.value.message == "invalid Keystone token"
        assert caught.value.challenges == (f'Keystone uri="{URL}"',)
    assert await auth.authenticate(Credentials(headers=[("authorization", "Basic eDp5")])) is None


async def test_validations_are_cached_until_the_ttl_or_the_token_expiry() -> None:
    fake = FakeKeystone()
    fake.add("t-1")
    fake.add("t-short", expires_in=-1)  # Keystone says it is still valid, but it expires now
    auth = authenticator(fake, cache_ttl=300)
    for _ in range(3):
        assert await auth.authenticate(token("t-1")) is not None
    assert fake.validations == 1
    for _ in range(2):
        assert await auth.authenticate(token("t-short")) is not None
    assert fake.validations == 3
    no_cache = authenticator(fake, cache_ttl=0)
    for _ in range(2):
        assert await no_cache.authenticate(token("t-1")) is not None
    assert fake.validations == 5


async def test_the_service_user_token_is_reused_and_renewed_when_refused() -> None:
    fake = FakeKeystone()
    fake.add("t-1")
    fake.add("t-2")
    auth = authenticator(fake, user="occipy", password="pw", project="service")
    assert await auth.authenticate(token("t-1")) is not None
    assert await auth.authenticate(token("t-2")) is not None
    assert fake.service_tokens == ["service-0"]
    fake.service_tokens.append("service-revoked-elsewhere")  # service-0 is no longer accepted
    fake.add("t-3")
    assert await auth.authenticate(token("t-3")) is not None
    assert fake.service_tokens[-1] == "service-2"


async def test_keystone_down_or_refusing_occipy_is_a_503() -> None:
    fake = FakeKeystone()
    fake.add("t-1")
    fake.down = True
    auth = authenticator(fake)
    with pytest.raises(errors.BackendUnavailable, match="Keystone cannot be reached"):
        await auth.authenticate(token("t-1"))
    fake.down = False
    fake.reject_service = True
    service = authenticator(fake, user="occipy", password="wrong", project="service")
    with pytest.raises(errors.BackendUnavailable, match="refused occipy's service user 'occipy'"):
        await service.authenticate(token("t-1"))


def test_helpers() -> None:
    assert api_base("http://k:5000") == "http://k:5000/v3"
    assert api_base("http://k:5000/v3/") == "http://k:5000/v3"
    assert expiry("2026-12-06T13:15:16.000000Z") == dt.datetime(2026, 12, 6, 13, 15, 16,
                                                                 tzinfo=dt.UTC).timestamp()
    assert expiry("garbage") is None and expiry(None) is None
    with pytest.raises(ValueError):
        KeystoneAuthenticator(KeystoneOptions(url=URL, user="occipy"))

"""OpenID Connect bearer tokens against a provider faked with httpx.MockTransport.

The real provider (glewlwyd) is in tests/integration/test_auth_oidc.py; here the edge cases that
need tokens no provider would issue: other algorithms, missing claims, and provider failures.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import anyio
import httpx
import jwt
import pytest

from occipy import errors
from occipy.identity.base import ADMIN, DEFAULT_TENANT, MEMBER, READER, Credentials
from occipy.identity.oidc import OidcAuthenticator, OidcOptions, claim_values, tenant_from

from .jwks import SigningKey, claims

ISSUER = "https://idp.example.org/realms/egi"


class Provider:
    """Discovery and JWKS endpoints; `keys` may change between requests (rotation)."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.issuer = ISSUER
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path.endswith("/.well-known/openid-configuration"):
            self.discovery_fetches += 1
            return httpx.Response(200, json={"issuer": self.issuer, "jwks_uri": f"{ISSUER}/certs"})
        if request.url.path.endswith("/certs"):
            self.jwks_fetches += 1
            return httpx.Response(200, json={"keys": [key.jwk() for key in self.keys]})
        return httpx.Response(404)


def bearer(token: str) -> Credentials:
    return Credentials(headers=[("authorization", f"Bearer {token}")])


def authenticator(provider: Provider, **options: Any) -> OidcAuthenticator:
    settings: dict[str, Any] = {"issuer": ISSUER, "audiences": ("occipy",), **options}
    return OidcAuthenticator(OidcOptions(**settings), transport=httpx.MockTransport(provider))


async def test_a_good_token_gives_the_principal() -> None:
    key = SigningKey("k1")
    auth = authenticator(Provider(key))
    principal = await auth.authenticate(bearer(key.sign(claims(ISSUER))))
    assert principal is not None
    assert (principal.user, principal.tenant, principal.roles, principal.method) == (
        "user-1", DEFAULT_TENANT, {MEMBER}, "oidc")
    await auth.close()


async def test_keys_are_fetched_once_and_cached() -> None:
    key = SigningKey("k1")
    provider = Provider(key)
    auth = authenticator(provider)
    for _ in range(5):
        assert await auth.authenticate(bearer(key.sign(claims(ISSUER)))) is not None
    assert (provider.discovery_fetches, provider.jwks_fetches) == (1, 1)


async def test_an_unknown_kid_refetches_the_keys_at_most_once_per_interval() -> None:
    old, new, stranger = SigningKey("k1"), SigningKey("k2"), SigningKey("k-unknown")
    provider = Provider(old)
    auth = authenticator(provider, jwks_min_interval=0.2)
    assert await auth.authenticate(bearer(old.sign(claims(ISSUER)))) is not None
    provider.keys = [old, new]  # the provider rotates: a second key appears
    await anyio.sleep(0.25)
    principal = await auth.authenticate(bearer(new.sign(claims(ISSUER))))
    assert principal is not None and provider.jwks_fetches == 2
    auth.options = replace(auth.options, jwks_min_interval=60)  # no timing in what follows
    for _ in range(3):  # random kids do not make occipy hammer the provider
        with pytest.raises(errors.Unauthorized):
            await auth.authenticate(bearer(stranger.sign(claims(ISSUER))))
    assert provider.jwks_fetches == 2
    assert await auth.authenticate(bearer(old.sign(claims(ISSUER)))) is not None


async def test_a_new_key_right_after_a_fetch_waits_for_the_interval() -> None:
    old, new = SigningKey("k1"), SigningKey("k2")
    provider = Provider(old)
    auth = authenticator(provider, jwks_min_interval=60)
    assert await auth.authenticate(bearer(old.sign(claims(ISSUER)))) is not None
    provider.keys = [new]
    with pytest.raises(errors.Unauthorized):
        await auth.authenticate(bearer(new.sign(claims(ISSUER))))
    assert provider.jwks_fetches == 1


def expired(c: dict[str, Any]) -> dict[str, Any]:
    return {**c, "exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200, "nbf": int(time.time()) - 7200}


@pytest.mark.parametrize("change", [
    pytest.param(expired, id="expired"),
    pytest.param(lambda c: {**c, "nbf": int(time.time()) + 3600}, id="not-yet-valid"),
    pytest.param(lambda c: {**c, "aud": "another-service"}, id="wrong-audience"),
    pytest.param(lambda c: {**c, "iss": "https://evil.example.org"}, id="wrong-issuer"),
    pytest.param(lambda c: {k: v for k, v in c.items() if k != "exp"}, id="no-exp"),
    pytest.param(lambda c: {k: v for k, v in c.items() if k != "aud"}, id="no-aud"),
    pytest.param(lambda c: {k: v for k, v in c.items() if k != "sub"}, id="no-user"),
])
async def test_bad_claims_are_refused(change: Any) -> None:
    key = SigningKey("k1")
    auth = authenticator(Provider(key))
    with pytest.raises(errors.Unauthorized) as caught:
        await auth.authenticate(bearer(key.sign(change(claims(ISSUER)))))
    assert caught.value.message == "invalid bearer token"
    assert caught.value.challenges == ('Bearer realm="occipy"',)


async def test_tokens_not_signed_by_the_provider_are_refused() -> None:
    published = SigningKey("k1")
    forger = SigningKey("k1")  # same kid, a key the provider does not publish
    auth = authenticator(Provider(published))
    with pytest.raises(errors.Unauthorized):
        await auth.authenticate(bearer(forger.sign(claims(ISSUER))))
    good = published.sign(claims(ISSUER))
    head, body, signature = good.split(".")
    tampered_body = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(body).replace(b'"user-1"', b'"admin1"')).decode()
    with pytest.raises(errors.Unauthorized):
        await auth.authenticate(bearer(f"{head}.{tampered_body}.{signature}"))
    hmac_token = jwt.encode(claims(ISSUER), "a-shared-secret-of-at-least-32-bytes", algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(errors.Unauthorized):
        await auth.authenticate(bearer(hmac_token))
    unsigned = jwt.encode(claims(ISSUER), None, algorithm="none", headers={"kid": "k1"})
    with pytest.raises(errors.Unauthorized):
        await auth.authenticate(bearer(unsigned))
    for garbage in ("not-a-jwt", "a.b.c", ""):
        with pytest.raises(errors.Unauthorized):
            await auth.authenticate(bearer(garbage))


async def test_the_key_algorithm_must_match_the_token() -> None:
    ec_key = SigningKey("k-ec", alg="ES256")
    auth = authenticator(Provider(ec_key))
    assert await auth.authenticate(bearer(ec_key.sign(claims(ISSUER)))) is not None
    rsa = SigningKey("k-ec", alg="RS256")  # claims the EC key's id
    with pytest.raises(errors.Unauthorized):
        await auth.authenticate(bearer(rsa.sign(claims(ISSUER))))


async def test_a_token_without_kid_uses_the_only_key() -> None:
    key = SigningKey("k1")
    auth = authenticator(Provider(key))
    assert await auth.authenticate(bearer(key.sign(claims(ISSUER), kid=None))) is not None
    auth2 = authenticator(Provider(key, SigningKey("k2")))
    with pytest.raises(errors.Unauthorized):
        await auth2.authenticate(bearer(key.sign(claims(ISSUER), kid=None)))


async def test_claims_map_to_user_tenant_and_roles() -> None:
    key = SigningKey("k1")
    entitlements = ["urn:mace:egi.eu:aai.egi.eu:vm_operator@vo.other.eu",
                    "urn:mace:egi.eu:group:fedcloud.egi.eu:role=member#aai.egi.eu",
                    "urn:mace:egi.eu:group:vo.access.egi.eu:role=vm_operator#aai.egi.eu"]
    auth = authenticator(Provider(key), user_claim="preferred_username", tenant_claim="eduperson_entitlement",
                         tenant_prefix="urn:mace:egi.eu:group:", roles_claim="roles")
    principal = await auth.authenticate(bearer(key.sign(claims(
        ISSUER, preferred_username="alice", eduperson_entitlement=entitlements, roles=["admin", "other"]))))
    assert principal is not None
    assert (principal.user, principal.tenant, principal.roles) == ("alice", "fedcloud.egi.eu", {ADMIN})
    first = authenticator(Provider(key), tenant_claim="groups", roles_claim="roles")
    principal = await first.authenticate(bearer(key.sign(claims(ISSUER, groups=["/vo-a", "/vo-b"], roles="reader"))))
    assert principal is not None and principal.tenant == "/vo-a" and principal.roles == {READER}
    with pytest.raises(errors.Unauthorized):  # a tenant claim is configured and the token has none
        await first.authenticate(bearer(key.sign(claims(ISSUER))))
    with pytest.raises(errors.Unauthorized):  # no value matches the prefix
        await auth.authenticate(bearer(key.sign(claims(
            ISSUER, preferred_username="bob", eduperson_entitlement=["urn:other:x"]))))


def test_claim_values_and_tenant_rules() -> None:
    assert claim_values(["a", 1, None, {"x": 1}, ""]) == ["a", "1"]
    assert claim_values("admin,member reader") == ["admin", "member", "reader"]
    assert claim_values(None) == [] and claim_values(True) == []
    assert tenant_from(["x", "y"], None) == "x"
    assert tenant_from([], None) is None
    assert tenant_from(["pre:", "pre:vo#aai"], "pre:") == "vo"


async def test_requests_without_a_bearer_token_are_not_oidc_ones() -> None:
    auth = authenticator(Provider(SigningKey("k1")))
    assert await auth.authenticate(Credentials()) is None
    assert await auth.authenticate(Credentials(headers=[("authorization", "Basic YTpi")])) is None


async def test_an_unreachable_provider_is_a_503_and_is_not_hammered() -> None:
    key = SigningKey("k1")
    provider = Provider(key)
    provider.down = True
    auth = authenticator(provider, jwks_min_interval=60)
    with pytest.raises(errors.BackendUnavailable, match="cannot be reached"):
        await auth.authenticate(bearer(key.sign(claims(ISSUER))))
    provider.down = False
    with pytest.raises(errors.BackendUnavailable):  # not asked again before the interval
        await auth.authenticate(bearer(key.sign(claims(ISSUER))))
    assert provider.discovery_fetches == 0


async def test_keys_fetched_before_survive_a_provider_outage() -> None:
    old, new = SigningKey("k1"), SigningKey("k2")
    provider = Provider(old)
    auth = authenticator(provider, jwks_min_interval=0)
    assert await auth.authenticate(bearer(old.sign(claims(ISSUER)))) is not None
    provider.down = True
    with pytest.raises(errors.Unauthorized):  # unknown kid, refetch fails: the old keys stay
        await auth.authenticate(bearer(new.sign(claims(ISSUER))))
    assert await auth.authenticate(bearer(old.sign(claims(ISSUER)))) is not None


async def test_a_discovery_document_for_another_issuer_is_refused() -> None:
    key = SigningKey("k1")
    provider = Provider(key)
    provider.issuer = "https://other.example.org"
    auth = authenticator(provider)
    with pytest.raises(errors.BackendUnavailable, match="names the issuer"):
        await auth.authenticate(bearer(key.sign(claims(ISSUER))))

"""OpenID Connect bearer tokens: JWT access tokens checked against the provider's published keys.

`Authorization: Bearer <JWT>` (RFC 6750) is verified offline: the issuer's discovery document
(OpenID Connect Discovery 1.0 §4) names the JWKS, which is cached; a token signed with a key id
the cache does not know makes it fetch the JWKS again, at most once per `jwks_min_interval`
seconds (key rotation). Signature, `iss`, `aud`, `exp` and `nbf` are checked with PyJWT (RFC 7519,
RFC 9068). Imports httpx, PyJWT, `occipy.errors` and this package.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import anyio
import httpx
import jwt

from occipy import errors
from occipy.identity._roles import roles_from
from occipy.identity.base import DEFAULT_TENANT, MEMBER, Credentials, Principal

log = logging.getLogger("occipy.identity.oidc")

REALM: Final = "occipy"
# Public-key algorithms only: "none" and HMAC (a key the provider shares) are never accepted.
ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                               "ES256", "ES384", "ES512", "EdDSA"})
_REFUSED: Final = "invalid bearer token"


@dataclass(frozen=True, slots=True)
class OidcOptions:
    """How tokens are checked and mapped to a principal (settings `oidc_*`, docs/security.md)."""

    issuer: str
    audiences: tuple[str, ...]
    user_claim: str = "sub"
    # The claim naming the tenant; None: every user is in the `default` tenant.
    tenant_claim: str | None = None
    # With a list-valued tenant claim: use the first value starting with this prefix, cut after
    # it at the next ':' or '#' (EGI: prefix "urn:mace:egi.eu:group:" gives the VO name).
    tenant_prefix: str | None = None
    # The claim listing roles; values other than admin, member and reader are ignored.
    roles_claim: str | None = None
    jwks_min_interval: float = 10.0
    jwks_max_age: float = 3600.0
    leeway: float = 30.0
    timeout: float = 10.0


def claim_values(value: object) -> list[str]:
    """A claim as a list of strings: a JSON array as is; a string split at commas and spaces
    (glewlwyd writes multi-valued properties as "a,b"; OAuth's `scope` is space-separated)."""
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value if isinstance(item, (str, int)) and str(item)]
    if isinstance(value, int) and not isinstance(value, bool):
        return [str(value)]
    return []


def tenant_from(values: Sequence[str], prefix: str | None) -> str | None:
    """The tenant a list of claim values names (the first value, or the first prefix match)."""
    if prefix is None:
        return values[0] if values else None
    for value in values:
        if value.startswith(prefix):
            rest = value[len(prefix):]
            for stop in (":", "#"):
                rest = rest.partition(stop)[0]
            if rest:
                return rest
    return None


class _Keys:
    """The provider's signing keys by key id, and when they were fetched."""

    def __init__(self, jwks: Mapping[str, Any], fetched: float) -> None:
        self.fetched = fetched
        self.jwks: dict[str, Mapping[str, Any]] = {}
        for entry in jwks.get("keys", ()) if isinstance(jwks.get("keys"), list) else ():
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            self.jwks[str(entry.get("kid", ""))] = entry
        self._prepared: dict[tuple[str, str], jwt.PyJWK | None] = {}

    def key(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        if kid is None:
            if len(self.jwks) != 1:
                return None
            kid = next(iter(self.jwks))
        entry = self.jwks.get(kid)
        if entry is None:
            return None
        if (kid, alg) not in self._prepared:
            prepared: jwt.PyJWK | None = None
            if entry.get("alg", alg) == alg:
                try:
                    prepared = jwt.PyJWK(dict(entry), algorithm=alg)
                except jwt.PyJWTError as error:
                    log.warning("key %s of the OpenID provider cannot be used with %s: %s", kid, alg, error)
            self._prepared[(kid, alg)] = prepared
        return self._prepared[(kid, alg)]


class OidcAuthenticator:
    """`Authorization: Bearer` JWT access tokens from one OpenID provider."""

    name = "oidc"

    def __init__(self, options: OidcOptions, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not options.audiences:
            raise ValueError("OpenID Connect needs at least one accepted audience")
        self.options = options
        self._issuer = options.issuer.rstrip("/")
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._jwks_uri: str | None = None
        self._keys: _Keys | None = None
        self._last_attempt = float("-inf")
        self._last_error = f"the OpenID provider {self._issuer} cannot be reached"
        self._lock: anyio.Lock | None = None
        self._challenge = f'Bearer realm="{REALM}"'

    def challenges(self) -> Sequence[str]:
        return (self._challenge,)

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        header = credentials.header("authorization")
        if header is None:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = token.strip()
        try:
            unverified = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return self._refuse("not a JWT")
        alg = unverified.get("alg")
        kid = unverified.get("kid")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            return self._refuse(f"algorithm {alg!r} is not accepted")
        if kid is not None and not isinstance(kid, str):
            return self._refuse("malformed kid")
        key = await self._key(kid, alg)
        if key is None:
            return self._refuse(f"no published key {kid!r} for {alg}")
        options = self.options
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=list(options.audiences), issuer=self._issuers(),
                leeway=options.leeway, options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            return self._refuse(str(error))
        return self._principal(claims)

    def _issuers(self) -> list[str]:
        # Providers differ on a trailing slash in `iss`; both spellings name the same issuer.
        return [self._issuer, self._issuer + "/"]

    def _refuse(self, reason: str) -> NoReturn:
        log.info("bearer token refused: %s", reason)
        raise errors.Unauthorized(_REFUSED, self.challenges())

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        options = self.options
        user = claims.get(options.user_claim)
        if isinstance(user, int) and not isinstance(user, bool):
            user = str(user)
        if not isinstance(user, str) or not user:
            self._refuse(f"no user claim {options.user_claim!r}")
        tenant = DEFAULT_TENANT
        if options.tenant_claim is not None:
            found = tenant_from(claim_values(claims.get(options.tenant_claim)), options.tenant_prefix)
            if found is None:
                self._refuse(f"no tenant in claim {options.tenant_claim!r}")
            tenant = found
        roles = frozenset({MEMBER})
        if options.roles_claim is not None:
            roles = roles_from(claim_values(claims.get(options.roles_claim)))
        return Principal(user=user, tenant=tenant, roles=roles, method=self.name)

    # ---- keys ------------------------------------------------------------------------------

    async def _key(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        now = time.monotonic()
        keys = self._keys
        if keys is not None and now - keys.fetched < self.options.jwks_max_age:
            key = keys.key(kid, alg)
            if key is not None or now - self._last_attempt < self.options.jwks_min_interval:
                return key
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            # Another request may have fetched the keys while this one waited.
            if self._keys is not keys and self._keys is not None:
                return self._keys.key(kid, alg)
            if time.monotonic() - self._last_attempt >= self.options.jwks_min_interval:
                try:
                    await self._fetch()
                except errors.BackendUnavailable as error:
                    self._last_error = error.message
                    if self._keys is None:
                        raise
                    log.warning("%s; keeping the keys fetched before", error.message)
            elif self._keys is None:
                # a provider that just failed is not asked again before jwks_min_interval
                raise errors.BackendUnavailable(self._last_error)
            return self._keys.key(kid, alg) if self._keys is not None else None

    async def _fetch(self) -> None:
        """Discovery (once) and the JWKS; a provider that cannot be reached is a 503."""
        self._last_attempt = time.monotonic()
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._transport, timeout=self.options.timeout)
        if self._jwks_uri is None:
            document = await self._get_json(f"{self._issuer}/.well-known/openid-configuration")
            issuer = document.get("issuer")
            if not isinstance(issuer, str) or issuer.rstrip("/") != self._issuer:
                # OpenID Connect Discovery 1.0 §4.3: "The issuer value returned MUST be identical to
                # the Issuer URL that was used as the prefix to /.well-known/openid-configuration".
                raise errors.BackendUnavailable(
                    f"the OpenID provider's discovery document names the issuer {issuer!r}, not {self._issuer!r}")
            jwks_uri = document.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise errors.BackendUnavailable(f"the OpenID provider {self._issuer} publishes no jwks_uri")
            self._jwks_uri = jwks_uri
        jwks = await self._get_json(self._jwks_uri)
        self._keys = _Keys(jwks, time.monotonic())
        log.info("fetched %d signing keys from %s", len(self._keys.jwks), self._jwks_uri)

    async def _get_json(self, url: str) -> Mapping[str, Any]:
        assert self._http is not None
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise errors.BackendUnavailable(
                f"the OpenID provider cannot be reached at {url}: {error or type(error).__name__}") from None
        if response.status_code != 200:
            raise errors.BackendUnavailable(f"the OpenID provider answered {response.status_code} for {url}")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise errors.BackendUnavailable(f"the OpenID provider's {url} is not a JSON object")
        return data

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

"""OpenStack Keystone tokens: `X-Auth-Token` validated against Keystone's v3 API, with a TTL cache.

Validation is `GET /v3/auth/tokens` with the token in `X-Subject-Token` (Identity API v3, "Validate
and show information for token"). occipy authenticates that call with its own service user's
project-scoped token when one is configured, else with the token itself (Keystone's default
policy lets a token's owner validate it). The project is the tenant; the roles `admin` and
`reader` map to ours, anything else is `member`. A 401 carries `WWW-Authenticate: Keystone
uri="<keystone url>"`, which rOCCI-cli, ooi clients and occipy's SDK follow to get a token.
Imports httpx, `occipy.errors` and this package.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NoReturn

import anyio
import httpx

from occipy import errors
from occipy.identity._roles import roles_from
from occipy.identity.base import Credentials, Principal

log = logging.getLogger("occipy.identity.keystone")

_REFUSED: Final = "invalid Keystone token"
_MAX_CACHE: Final = 10_000


@dataclass(frozen=True, slots=True)
class KeystoneOptions:
    """Where Keystone is and how occipy authenticates itself there (settings `keystone_*`)."""

    url: str
    # occipy's own service user; without one, each token is validated with itself.
    user: str | None = None
    password: str | None = None
    project: str | None = None
    user_domain: str = "Default"
    project_domain: str = "Default"
    # How long a validated token is trusted before Keystone is asked again (keystonemiddleware's
    # token_cache_time default); never past the token's own expiry.
    cache_ttl: float = 300.0
    timeout: float = 10.0


def api_base(url: str) -> str:
    """The v3 API root for a Keystone URL given with or without `/v3`."""
    base = url.rstrip("/")
    return base if base.endswith("/v3") else base + "/v3"


def expiry(value: object) -> float | None:
    """A Keystone `expires_at` (ISO 8601, e.g. 2026-12-06T13:15:16.000000Z) as a Unix time."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Cached:
    principal: Principal
    until: float


class KeystoneAuthenticator:
    """`X-Auth-Token` checked by Keystone (Identity API v3)."""

    name = "keystone"

    def __init__(self, options: KeystoneOptions, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if options.user is not None and not (options.password and options.project):
            raise ValueError("a Keystone service user needs a password and a project")
        self.options = options
        self.api = api_base(options.url)
        self._challenge = f'Keystone uri="{options.url.rstrip("/")}"'
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._cache: dict[bytes, _Cached] = {}
        self._service_token: tuple[str, float] | None = None
        self._service_lock: anyio.Lock | None = None

    def challenges(self) -> Sequence[str]:
        return (self._challenge,)

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        token = credentials.header("x-auth-token")
        if token is None:
            return None
        token = token.strip()
        if not token or len(token) > 8192 or not token.isascii():
            self._refuse("malformed token")
        key = hashlib.sha256(token.encode()).digest()
        now = time.time()
        hit = self._cache.get(key)
        if hit is not None:
            if hit.until > now:
                return hit.principal
            del self._cache[key]
        body, expires = await self._validate(token)
        principal = self._principal(body)
        until = now + self.options.cache_ttl
        if expires is not None:
            until = min(until, expires)
        if len(self._cache) >= _MAX_CACHE:
            self._cache = {k: v for k, v in self._cache.items() if v.until > now}
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
        self._cache[key] = _Cached(principal, until)
        return principal

    def _refuse(self, reason: str) -> NoReturn:
        log.info("Keystone token refused: %s", reason)
        raise errors.Unauthorized(_REFUSED, self.challenges())

    def _principal(self, token: Mapping[str, Any]) -> Principal:
        user = token.get("user")
        project = token.get("project")
        if not isinstance(user, dict) or not isinstance(user.get("name"), str):
            self._refuse("the token names no user")
        if not isinstance(project, dict) or not isinstance(project.get("id"), str):
            self._refuse("the token is not scoped to a project")
        name = str(user["name"])
        domain = user.get("domain")
        if isinstance(domain, dict) and domain.get("id") not in (None, "default"):
            # user names are unique within a domain only
            name = f"{name}@{domain.get('name') or domain.get('id')}"
        roles = token.get("roles")
        names = [str(role.get("name")) for role in roles if isinstance(role, dict)] if isinstance(roles, list) else []
        return Principal(user=name, tenant=str(project["id"]), roles=roles_from(names), method=self.name)

    # ---- Keystone calls --------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._transport, timeout=self.options.timeout)
        return self._http

    async def _validate(self, token: str) -> tuple[Mapping[str, Any], float | None]:
        """The token's body from Keystone, and its expiry; Unauthorized if Keystone does not know it."""
        for attempt in (1, 2):
            auth = await self._service(refresh=attempt == 2) if self.options.user else token
            response = await self._call("GET", "/auth/tokens?nocatalog",
                                        headers={"X-Auth-Token": auth, "X-Subject-Token": token})
            if response.status_code == 200:
                body = _json(response)
                payload = body.get("token") if body is not None else None
                if not isinstance(payload, dict):
                    raise errors.BackendUnavailable(f"Keystone at {self.api} answered a token without a body")
                return payload, expiry(payload.get("expires_at"))
            if response.status_code == 404:
                self._refuse("Keystone does not know it (expired, revoked or never issued)")
            if response.status_code == 401 and self.options.user and attempt == 1:
                continue  # occipy's own token expired or was revoked: get a new one once
            if response.status_code in (401, 403) and not self.options.user:
                self._refuse(f"Keystone answered {response.status_code} to its own validation")
            break
        log.error("Keystone at %s answered %s to a token validation: %s", self.api, response.status_code,
                  response.text[:300])
        raise errors.BackendUnavailable(
            f"the identity service cannot validate tokens now (Keystone answered {response.status_code})")

    async def _service(self, *, refresh: bool) -> str:
        """occipy's project-scoped service token, cached until a minute before it expires."""
        if self._service_lock is None:
            self._service_lock = anyio.Lock()
        async with self._service_lock:
            cached = self._service_token
            if cached is not None and not refresh and cached[1] - 60 > time.time():
                return cached[0]
            options = self.options
            body = {"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": options.user, "domain": {"name": options.user_domain}, "password": options.password}}},
                "scope": {"project": {"name": options.project, "domain": {"name": options.project_domain}}},
            }}
            response = await self._call("POST", "/auth/tokens?nocatalog", json=body)
            token: str | None = response.headers.get("x-subject-token")
            if response.status_code != 201 or not token:
                log.error("Keystone at %s refused occipy's service user %s: %s %s", self.api, options.user,
                          response.status_code, response.text[:300])
                raise errors.BackendUnavailable(
                    f"Keystone refused occipy's service user {options.user!r} ({response.status_code})")
            payload = _json(response)
            expires = expiry(payload.get("token", {}).get("expires_at")) if payload else None
            self._service_token = (token, expires if expires is not None else time.time() + 3600)
            return token

    async def _call(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                    json: Any = None) -> httpx.Response:
        try:
            return await self._client().request(method, self.api + path, headers=headers, json=json)
        except httpx.HTTPError as error:
            raise errors.BackendUnavailable(
                f"Keystone cannot be reached at {self.api}: {error or type(error).__name__}") from None

    async def close(self) -> None:
        self._cache.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None

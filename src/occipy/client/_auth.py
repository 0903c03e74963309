"""Authentication options of the SDK: Basic, bearer (OIDC) token, Keystone, X.509 client certificate.

GFD.223 §12: "Authentication SHOULD use HTTP authentication ... Basic as default"; profiles may
add others (tokens, client certificates). Each option is a frozen value turned into an httpx
`Auth` here. `KeystoneAuth` follows a server's `WWW-Authenticate: Keystone uri="..."` challenge:
it gets a project-scoped token from that Keystone with the user's password (Identity API v3),
retries with `X-Auth-Token`, and keeps the token until shortly before it expires. Imports only
httpx, `occipy.errors` and the standard library.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from occipy import errors

__all__ = ["BasicAuth", "BearerToken", "ClientCertificate", "CredentialRefused", "KeystoneAuth", "KeystoneToken"]


class CredentialRefused(errors.Unauthorized):
    """An identity provider (Keystone) refused the client's credential before the OCCI server saw it."""


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """HTTP Basic credentials (RFC 7617), the OCCI default (GFD.223 §12)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class BearerToken:
    """An `Authorization: Bearer <token>` header (RFC 6750), e.g. an OpenID Connect access token."""

    token: str = field(repr=False)

    @classmethod
    def from_file(cls, path: str | Path) -> BearerToken:
        """The token in a file (as oidc-agent or a CI secret writes it), surrounding space removed."""
        return cls(_read_token(path))


@dataclass(frozen=True, slots=True)
class KeystoneToken:
    """An OpenStack Keystone token you already hold (`openstack token issue`), sent as `X-Auth-Token`."""

    token: str = field(repr=False)

    @classmethod
    def from_file(cls, path: str | Path) -> KeystoneToken:
        return cls(_read_token(path))


@dataclass(frozen=True, slots=True)
class KeystoneAuth:
    """A Keystone user and password: the SDK gets (and renews) a project-scoped token itself.

    `url` is the Keystone endpoint; by default it is the one the OCCI server names in its 401
    (`WWW-Authenticate: Keystone uri="..."`). Without `project`, the user's only project is used
    (a user with several must name one).
    """

    username: str
    password: str = field(repr=False)
    project: str | None = None
    user_domain: str = "Default"
    project_domain: str = "Default"
    url: str | None = None


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """An X.509 client certificate for TLS (a PEM file; the key inside it or in `key`)."""

    cert: str | Path
    key: str | Path | None = None
    password: str | None = field(default=None, repr=False)


Auth = BasicAuth | BearerToken | KeystoneToken | KeystoneAuth


def _read_token(path: str | Path) -> str:
    try:
        token = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise errors.BadRequest(f"cannot read the token file {path}: {error}") from None
    if not token:
        raise errors.BadRequest(f"the token file {path} is empty")
    return token


class _HeaderAuth(httpx.Auth):
    def __init__(self, name: str, value: str) -> None:
        self._name = name
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._name] = self._value
        yield request


# `Keystone uri="http://keystone:5000"` (keystonemiddleware), also with single quotes (rOCCI).
_KEYSTONE_CHALLENGE = re.compile(r"""^\s*Keystone\s+uri\s*=\s*["']?([^"',\s]+)""", re.IGNORECASE)


def keystone_uri(challenges: Sequence[str]) -> str | None:
    """The Keystone URL a 401's WWW-Authenticate values name, if any."""
    for challenge in challenges:
        match = _KEYSTONE_CHALLENGE.match(challenge)
        if match:
            return match.group(1)
    return None


def _v3(url: str) -> str:
    base = url.rstrip("/")
    return base if base.endswith("/v3") else base + "/v3"


def _expires(body: Any) -> float:
    try:
        value = body["token"]["expires_at"]
        return datetime.fromisoformat(str(value)).timestamp()
    except (KeyError, TypeError, ValueError):
        return time.time() + 300.0


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None


class _KeystoneFlow(httpx.Auth):
    """`KeystoneAuth` as an httpx auth flow (the same flow serves Client and AsyncClient)."""

    requires_response_body = True

    def __init__(self, options: KeystoneAuth) -> None:
        self.options = options
        self.url = options.url
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def _valid_token(self) -> str | None:
        with self._lock:
            if self._token is not None and self._token[1] - 30 > time.time():
                return self._token[0]
            return None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._valid_token()
        if token is not None:
            request.headers["X-Auth-Token"] = token
        response = yield request
        if response.status_code != 401:
            return
        url = self.url or keystone_uri(response.headers.get_list("www-authenticate"))
        if url is None:
            return  # the server does not use Keystone: the caller sees its 401
        if token is not None:
            with self._lock:
                self._token = None  # refused (revoked, or expired early): get a new one once
        self.url = url
        token = yield from self._new_token(_v3(url))
        request.headers["X-Auth-Token"] = token
        yield request

    def _new_token(self, api: str) -> Generator[httpx.Request, httpx.Response, str]:
        options = self.options
        user = {"name": options.username, "domain": {"name": options.user_domain}, "password": options.password}
        identity = {"methods": ["password"], "password": {"user": user}}
        project = options.project
        if project is None:
            unscoped = yield httpx.Request("POST", f"{api}/auth/tokens?nocatalog", json={"auth": {"identity": identity}})
            self._check(unscoped, api)
            projects = yield httpx.Request("GET", f"{api}/auth/projects",
                                           headers={"X-Auth-Token": unscoped.headers.get("x-subject-token", "")})
            names = [str(p["name"]) for p in (_body(projects) or {}).get("projects", [])
                     if isinstance(p, dict) and p.get("name")]
            if projects.status_code != 200 or not names:
                raise CredentialRefused(
                    f"Keystone at {api} has no project for user {options.username}: name one with --project")
            if len(names) > 1:
                raise CredentialRefused(
                    f"user {options.username} has several Keystone projects ({', '.join(sorted(names))}): "
                    "name one with --project")
            project = str(names[0])
        scope = {"project": {"name": project, "domain": {"name": options.project_domain}}}
        scoped = yield httpx.Request("POST", f"{api}/auth/tokens?nocatalog",
                                     json={"auth": {"identity": identity, "scope": scope}})
        if scoped.status_code == 401:
            # Keystone answers 401 to a wrong password and to a project without a role alike:
            # an unscoped request tells which it was.
            unscoped = yield httpx.Request("POST", f"{api}/auth/tokens?nocatalog", json={"auth": {"identity": identity}})
            self._check(unscoped, api)
            raise CredentialRefused(f"user {options.username} has no role in Keystone project {project} "
                                    f"(or it does not exist in domain {options.project_domain})")
        self._check(scoped, api)
        token = scoped.headers.get("x-subject-token")
        if not token:
            raise errors.BackendUnavailable(f"Keystone at {api} issued no token")
        with self._lock:
            self._token = (str(token), _expires(_body(scoped)))
        return str(token)

    def _check(self, response: httpx.Response, api: str) -> None:
        user = self.options.username
        if response.status_code == 201:
            return
        if response.status_code == 401:
            raise CredentialRefused(f"Keystone at {api} refused the password of user {user}")
        raise errors.BackendUnavailable(f"Keystone at {api} answered {response.status_code} "
                                        f"when asked for a token for user {user}")


def httpx_auth(auth: Auth | None) -> httpx.Auth | None:
    """The httpx auth object for an option (None: no Authorization header)."""
    if isinstance(auth, BasicAuth):
        return httpx.BasicAuth(auth.username, auth.password)
    if isinstance(auth, BearerToken):
        return _HeaderAuth("Authorization", f"Bearer {auth.token}")
    if isinstance(auth, KeystoneToken):
        return _HeaderAuth("X-Auth-Token", auth.token)
    if isinstance(auth, KeystoneAuth):
        return _KeystoneFlow(auth)
    return None


def tls_verify(verify: bool | str | Path, cert: ClientCertificate | None) -> bool | ssl.SSLContext:
    """The `verify=` value for httpx: a CA bundle path, False, or a context holding the client cert."""
    if cert is None and not isinstance(verify, (str, Path)):
        return verify
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, (str, Path)):
        context = ssl.create_default_context(cafile=str(verify))
    else:
        context = ssl.create_default_context()
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key) if cert.key else None, cert.password)
    return context

"""Who is asking: the Principal, the credentials a request carries, and the Authenticator protocol.

The service's request pipeline calls one `Authenticator` (server.py composes it from the enabled
methods) before any handler or cache answers. Concrete methods live beside this module, one each
(`basic.py`, `oidc.py`, `keystone.py`, `x509.py`); only `server.py` names them, as it names drivers.
Imports only `occipy.errors`, the standard library and msgspec (frozen Struct values, D-STRUCTS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import msgspec

# Roles (issue 8): `admin` sees and changes every tenant; `member` reads and writes its own
# tenant; `reader` only reads its own tenant.
ADMIN: Final = "admin"
MEMBER: Final = "member"
READER: Final = "reader"
ROLES: Final = frozenset({ADMIN, MEMBER, READER})

# Data created before tenants existed, and every anonymous caller, belong here.
DEFAULT_TENANT: Final = "default"


class Principal(msgspec.Struct, frozen=True):
    """An authenticated caller: a user, the one tenant they act in, and their roles."""

    user: str
    tenant: str = DEFAULT_TENANT
    roles: frozenset[str] = frozenset({MEMBER})
    # Which method authenticated them: "anonymous", "basic", "oidc", "keystone", "x509".
    method: str = "anonymous"

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    @property
    def can_write(self) -> bool:
        """Whether the principal may change anything (a `reader` alone may not)."""
        return bool(self.roles & {ADMIN, MEMBER})


ANONYMOUS: Final = Principal(user="anonymous")


class Credentials(msgspec.Struct, frozen=True):
    """What a request offers to prove who sent it.

    `headers` are the request's header fields, names in lower case, in arrival order.
    `client_subject` is the RFC 4514 subject DN of a verified TLS client certificate, and
    `client_issuer` its issuer DN (None without a verified certificate).
    """

    headers: Sequence[tuple[str, str]] = ()
    client_subject: str | None = None
    client_issuer: str | None = None
    peer: str | None = None  # the client's address, for rate limits and logs

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Authenticator(Protocol):
    """One authentication method (or a chain of them)."""

    @property
    def name(self) -> str:
        """The method's name ("basic", "oidc", ...); read-only, so frozen dataclasses conform."""

    def challenges(self) -> Sequence[str]:
        """The WWW-Authenticate values a 401 carries for this method (e.g. 'Basic realm="occipy"')."""

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        """The principal, or None when the request carries no credentials of this method.

        Raises `errors.Unauthorized` when it carries credentials of this method that are wrong,
        expired or badly signed; the message must not say which part was wrong.
        """

    async def close(self) -> None:
        """Release connections and caches."""


@dataclass(frozen=True, slots=True)
class Anonymous:
    """No authentication: every request is `principal` (the `make run` default on loopback)."""

    principal: Principal = ANONYMOUS
    name: str = "anonymous"

    def challenges(self) -> Sequence[str]:
        return ()

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        return self.principal

    async def close(self) -> None:
        return None

"""Authentication options of the SDK: HTTP Basic, bearer token, X.509 client certificate.

GFD.223 §12: "Authentication SHOULD use HTTP authentication ... Basic as default"; profiles may
add others (tokens, client certificates). Each option is a frozen value turned into httpx
settings here; imports only httpx and the standard library.
"""

from __future__ import annotations

import ssl
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["BasicAuth", "BearerToken", "ClientCertificate"]


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """HTTP Basic credentials (RFC 7617), the OCCI default (GFD.223 §12)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class BearerToken:
    """An `Authorization: Bearer <token>` header (RFC 6750), e.g. an OpenID Connect access token."""

    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """An X.509 client certificate for TLS (a PEM file; the key inside it or in `key`)."""

    cert: str | Path
    key: str | Path | None = None
    password: str | None = field(default=None, repr=False)


class _BearerAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


def httpx_auth(auth: BasicAuth | BearerToken | None) -> httpx.Auth | None:
    """The httpx auth object for an option (None: no Authorization header)."""
    if isinstance(auth, BasicAuth):
        return httpx.BasicAuth(auth.username, auth.password)
    if isinstance(auth, BearerToken):
        return _BearerAuth(auth.token)
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

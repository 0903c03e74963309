"""The sans-IO request and response the service speaks; `http/adapter.py` converts to and from ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class OcciRequest:
    """One HTTP request as the service sees it: header names lower-case, in arrival order."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    base_url: str = "http://localhost"
    # ---- the edge (issue 8), filled by http/adapter.py ----
    request_id: str = ""  # X-Request-ID from the client when a safe token, else made; echoed back
    client_subject: str | None = None  # RFC 4514 subject DN of a verified TLS client certificate
    client_issuer: str | None = None  # RFC 4514 issuer DN of that certificate

    def header(self, name: str) -> str | None:
        """The first value of a header (name in lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


@dataclass(slots=True)
class OcciResponse:
    """One HTTP response: repeated headers are kept (text/occi repeats fields)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    # ---- for the audit line (issue 8): filled by the request pipeline, None where unknown ----
    principal: str | None = None  # the authenticated user
    tenant: str | None = None  # the tenant the request acted in
    operation: str | None = None  # the id of the operation (job) a write started
    # Scale-out (issue 11): a large body sent in pieces as they are rendered (`body` is then empty).
    stream: AsyncIterator[bytes] | None = None

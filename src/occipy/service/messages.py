"""The sans-IO request and response the service speaks; `http/adapter.py` converts to and from ASGI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from occipy.model.entity import ANONYMOUS


@dataclass(slots=True)
class OcciRequest:
    """One HTTP request as the service sees it: header names lower-case, in arrival order."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    base_url: str = "http://localhost"
    user: str = ANONYMOUS

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

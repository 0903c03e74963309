"""What every handler knows about the request besides its typed message: who asks, where, how.

A `Context` is built once per request by the pipeline, after authentication and before the
handler; it is a value (frozen). `scope` is the tenant key every query, cache and check uses:
adding a dimension to who-sees-what is a change here and nowhere else.
"""

from __future__ import annotations

from typing import Final

import msgspec

from occipy.identity.base import ANONYMOUS, Principal

# The scope of a principal who sees every tenant (the `admin` role).
ALL_TENANTS: Final = "*"


class Context(msgspec.Struct, frozen=True):
    """One request's context: principal, base URL, negotiated media type, preferences."""

    principal: Principal = ANONYMOUS
    base_url: str = "http://localhost"
    media: str = "text/plain"
    request_id: str = ""
    prefer_async: bool = False
    # Conditional request headers (RFC 9110 §13), as sent.
    if_match: str | None = None
    if_none_match: str | None = None

    @property
    def scope(self) -> str:
        """The tenant this request may see, or ALL_TENANTS."""
        return ALL_TENANTS if self.principal.is_admin else self.principal.tenant

    @property
    def tenant_filter(self) -> str | None:
        """The tenant to narrow store queries to (None: every tenant)."""
        return None if self.principal.is_admin else self.principal.tenant

    def sees(self, tenant: str | None) -> bool:
        """Whether something of this tenant is visible to the request (None: the provider's)."""
        return tenant is None or self.principal.is_admin or tenant == self.principal.tenant

    def absolute(self, location: str) -> str:
        """A path made an absolute URL of this server; absolute URIs stay as they are."""
        return self.base_url + location if location.startswith("/") else location

    def local_path(self, value: str) -> str:
        """A location given as an absolute URL of this server becomes a path; others are kept."""
        base = self.base_url
        if value.startswith(base + "/"):
            return value[len(base):]
        for scheme in ("http://", "https://"):
            if value.startswith(scheme):
                rest = value[len(scheme):]
                host = base.split("://", 1)[-1]
                if rest.startswith(host + "/"):
                    return rest[len(host):]
        return value

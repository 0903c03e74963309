"""The authorisation hook: may this principal do this to this target? (issue 8 roles)

Runs in the pipeline after authentication and classification and before parsing, caches and
handlers. Tenancy itself is enforced where objects are found (another tenant's entity, mixin or
operation is not there: 404); this hook decides by role: `reader` may only read, `member` and
`admin` may write; an administrator sees every tenant (`Context.scope`).
"""

from __future__ import annotations

from typing import Final, Protocol

from occipy.errors import Forbidden
from occipy.service.context import Context
from occipy.service.routes import Route

READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class Authoriser(Protocol):
    def authorise(self, ctx: Context, route: Route, method: str) -> None:
        """Raise Forbidden (403) when the principal may not do this."""


class RolePolicy:
    """The default policy: readers read, members and administrators write."""

    def authorise(self, ctx: Context, route: Route, method: str) -> None:
        if method not in READS and not ctx.principal.can_write:
            raise Forbidden(f"{ctx.principal.user} may only read (role reader)")

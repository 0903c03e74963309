"""Role names from an identity provider mapped to occipy's roles (shared by the methods)."""

from __future__ import annotations

from collections.abc import Iterable

from occipy.identity.base import MEMBER, ROLES


def roles_from(names: Iterable[str]) -> frozenset[str]:
    """The occipy roles (admin, member, reader) among some names; `member` when there are none."""
    return frozenset(name for name in names if name in ROLES) or frozenset({MEMBER})

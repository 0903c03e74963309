"""Which OCCI object a request path names, and which methods it allows (GFD.223 §8 Table 1).

Dispatch follows http-protocol.md §1 "Path dispatch algorithm": query interface, Kind or Mixin
location, entity location, unbound path, then (PUT only) creation at a client-chosen path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final

from occipy.model.category import Kind, Mixin
from occipy.model.registry import Registry

QUERY_PATHS: Final = ("/-/", "/.well-known/org/ogf/occi/-/")
OPERATIONS_PREFIX: Final = "/-/operations/"


class Target(str, Enum):
    QUERY = "query"
    KIND = "kind"
    MIXIN = "mixin"
    ENTITY = "entity"
    UNBOUND = "unbound"
    OPERATION = "operation"
    NEW = "new"  # an unused path: only PUT (create at this path) is meaningful


ALLOWED: Final[Mapping[Target, tuple[str, ...]]] = {
    Target.QUERY: ("GET", "HEAD", "POST", "DELETE", "OPTIONS"),
    Target.KIND: ("GET", "HEAD", "POST", "DELETE", "OPTIONS"),
    Target.MIXIN: ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"),
    Target.ENTITY: ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"),
    Target.UNBOUND: ("GET", "HEAD", "DELETE", "OPTIONS"),
    Target.OPERATION: ("GET", "HEAD", "OPTIONS"),
    Target.NEW: ("PUT", "OPTIONS"),
}


@dataclass(frozen=True, slots=True)
class Route:
    target: Target
    path: str
    category: Kind | Mixin | None = None


def classify(path: str, registry: Registry, entity_exists: bool) -> Route:
    """Classify a path; `entity_exists` says whether an entity is stored at exactly `path`."""
    if path in QUERY_PATHS:
        return Route(Target.QUERY, path)
    if path.startswith(OPERATIONS_PREFIX) and len(path) > len(OPERATIONS_PREFIX):
        return Route(Target.OPERATION, path)
    category = registry.by_location(path)
    if category is not None:
        return Route(Target.KIND if isinstance(category, Kind) else Target.MIXIN, path, category)
    if entity_exists:
        return Route(Target.ENTITY, path)
    if path.endswith("/"):
        return Route(Target.UNBOUND, path)
    # Leniency for clients that drop the trailing slash of a collection (http-protocol.md §1, rule 5).
    category = registry.by_location(path + "/")
    if category is not None:
        return Route(Target.KIND if isinstance(category, Kind) else Target.MIXIN, path + "/", category)
    return Route(Target.NEW, path)

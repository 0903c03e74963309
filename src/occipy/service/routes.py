"""Which OCCI object a request path names (GFD.223 §8 Table 1), as a typed `Route`.

Dispatch follows http-protocol.md §1 "Path dispatch algorithm": query interface, operation
records, Kind or Mixin location, entity location, unbound path, then (PUT only) creation at a
client-chosen path. Which methods each target allows is the dispatch table's business
(`service/dispatch.py`); this module only classifies.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

import msgspec

from occipy.model.category import Kind, Mixin
from occipy.model.entity import Entity
from occipy.model.registry import Registry

QUERY_PATHS: Final = ("/-/", "/.well-known/org/ogf/occi/-/")
OPENAPI_PATH: Final = "/-/openapi.json"
OPERATIONS_PREFIX: Final = "/-/operations/"
EVENTS_PATH: Final = "/-/events"  # issue 12: the server-sent event stream of changes
# Server paths below the query interface that are not categories (user mixins may not use them).
RESERVED_PREFIXES: Final = ("/-/", "/.well-known/")


class Target(str, Enum):
    QUERY = "query"
    KIND = "kind"
    MIXIN = "mixin"
    ENTITY = "entity"
    UNBOUND = "unbound"
    ROOT = "root"  # `/` when no category lives there: list everything, create from a full rendering
    OPERATIONS = "operations"  # the operation collection /-/operations/
    OPERATION = "operation"
    OPENAPI = "openapi"  # the OpenAPI 3.1 description of what the server serves
    EVENTS = "events"  # issue 12: the change events, text/event-stream
    NEW = "new"  # an unused path: only PUT (create at this path) is meaningful


class Route(msgspec.Struct, frozen=True):
    """A classified path. `entity` is the stored entity at an ENTITY path (visible to the caller);
    `taken` is True when the path holds an entity the caller may not see."""

    target: Target
    path: str
    category: Kind | Mixin | None = None
    entity: Entity | None = None
    taken: bool = False


def classify(path: str, registry: Registry, entity: Entity | None, *, visible: bool = True) -> Route:
    """Classify a path; `entity` is what is stored at exactly `path` (None: nothing),
    `visible` whether the caller's scope includes it."""
    if path in QUERY_PATHS:
        return Route(Target.QUERY, path)
    if path == OPENAPI_PATH:
        return Route(Target.OPENAPI, path)
    if path == EVENTS_PATH:
        return Route(Target.EVENTS, path)
    if path == OPERATIONS_PREFIX:
        return Route(Target.OPERATIONS, path)
    if path.startswith(OPERATIONS_PREFIX):
        return Route(Target.OPERATION, path)
    category = registry.by_location(path)
    if category is not None:
        return Route(Target.KIND if isinstance(category, Kind) else Target.MIXIN, path, category)
    if entity is not None and visible:
        return Route(Target.ENTITY, path, entity=entity)
    if path == "/":
        return Route(Target.ROOT, path)
    if path.endswith("/"):
        return Route(Target.UNBOUND, path)
    # Leniency for clients that drop the trailing slash of a collection (http-protocol.md §1, rule 5).
    category = registry.by_location(path + "/")
    if category is not None:
        return Route(Target.KIND if isinstance(category, Kind) else Target.MIXIN, path + "/", category)
    return Route(Target.NEW, path, taken=entity is not None)

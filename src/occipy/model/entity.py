"""Entity instances: Resources and Links, told apart by their Kind (GFD.221 §5.4), as immutable values.

Attribute values, including every `occi.core.*` one, live in one mapping keyed by the rendered
name (core.md §11). An entity is never changed in place: `evolve()` and `with_attributes()` make
a new one, so a stored entity can be shared by the store, caches and renderings. `links` and
`actions` are not stored: the service fills them into the view it renders. Imports only
`occipy.model.category` and msgspec (an entity is a frozen `msgspec.Struct`, D-STRUCTS).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from occipy.model.category import AttributeValue

ANONYMOUS = "anonymous"
DEFAULT_TENANT = "default"

_EMPTY: Mapping[str, AttributeValue] = {}


class Entity(msgspec.Struct, frozen=True, gc=False):
    """One Resource or Link instance, with its Kind, Mixins and attribute values.

    Treat `attributes` as read-only (it is typed as a Mapping): make a new entity instead. That
    is also why Python's cycle collector need not track entities (`gc=False`, docs/decisions.md
    D-UNTRACKED): a value built from values that existed before it cannot be in a cycle.
    """

    kind: str
    entity_id: str
    location: str
    mixins: tuple[str, ...] = ()
    attributes: Mapping[str, AttributeValue] = msgspec.field(default_factory=dict)
    # The tenant the entity belongs to, and the user who created it.
    tenant: str = DEFAULT_TENANT
    owner: str = ANONYMOUS
    # The driver's own identifier of the thing behind this entity (a domain UUID, a volume path).
    backend_id: str | None = None
    # Filled by the service for rendering; never persisted.
    links: tuple[Entity, ...] = ()
    actions: tuple[str, ...] = ()

    @property
    def title(self) -> str | None:
        value = self.attributes.get("occi.core.title")
        return value if isinstance(value, str) else None

    @property
    def source(self) -> str | None:
        value = self.attributes.get("occi.core.source")
        return value if isinstance(value, str) else None

    @property
    def target(self) -> str | None:
        value = self.attributes.get("occi.core.target")
        return value if isinstance(value, str) else None

    def evolve(self, **changes: Any) -> Entity:
        """A new entity with these fields replaced (mixins given as any iterable become a tuple);
        TypeError for a name that is not a field."""
        if "mixins" in changes:
            changes["mixins"] = tuple(dict.fromkeys(changes["mixins"]))
        if "attributes" in changes:
            changes["attributes"] = dict(changes["attributes"])
        return msgspec.structs.replace(self, **changes)

    def with_attributes(self, values: Mapping[str, AttributeValue] = _EMPTY, *,
                        drop: Iterable[str] = ()) -> Entity:
        """A new entity with `values` set and the names in `drop` removed."""
        attributes = dict(self.attributes)
        for name in drop:
            attributes.pop(name, None)
        attributes.update(values)
        return msgspec.structs.replace(self, attributes=attributes)

    def persistent(self) -> Entity:
        """The entity without the view-only `links` and `actions`."""
        if not self.links and not self.actions:
            return self
        return msgspec.structs.replace(self, links=(), actions=())


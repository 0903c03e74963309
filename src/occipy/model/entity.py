"""Entity instances: Resources and Links, told apart by their Kind (GFD.221 §5.4).

Attribute values, including every `occi.core.*` one, live in one dict keyed by the rendered
name (core.md §11). `links` and `actions` are not stored: the service fills them before
rendering. Imports only `occi.model.category`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from occipy.model.category import AttributeValue

ANONYMOUS = "anonymous"


@dataclass(slots=True)
class Entity:
    """One Resource or Link instance, with its Kind, Mixins and attribute values."""

    kind: str
    entity_id: str
    location: str
    mixins: list[str] = field(default_factory=list)
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    owner: str = ANONYMOUS
    # The driver's own identifier of the thing behind this entity (a domain UUID, a volume path).
    backend_id: str | None = None
    # Filled by the service for rendering; never persisted.
    links: list[Entity] = field(default_factory=list)
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

    def copy(self) -> Entity:
        """A copy whose mixin list and attribute dict can be changed without touching this one."""
        return Entity(
            kind=self.kind,
            entity_id=self.entity_id,
            location=self.location,
            mixins=list(self.mixins),
            attributes=dict(self.attributes),
            owner=self.owner,
            backend_id=self.backend_id,
        )

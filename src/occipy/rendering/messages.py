"""Typed parser output shared by every rendering (text/plain, text/occi, JSON, uri-list).

Parsers return these values; dicts of raw wire data never cross a layer boundary. Renderers
take model objects (`occipy.model`) instead. Attribute values are Python values of the JSON
types; `lenient=True` marks values read from a text rendering, which the service may coerce
against the attribute definition (a quoted number, a quoted JSON list; text-rendering.md §6.6).
"""

from __future__ import annotations

from typing import Any

import msgspec

from occipy.model.category import Action, AttributeDef, Kind, Mixin, split_type_id


class CategoryRef(msgspec.Struct, frozen=True):
    """A short category reference: `term; scheme="..."; class="..."` (class optional in filters)."""

    scheme: str
    term: str
    cls: str | None = None

    @property
    def type_id(self) -> str:
        return self.scheme + self.term


class CategoryDefinition(msgspec.Struct, frozen=True):
    """A full category rendering: a user mixin sent to `/-/`, or a category read from discovery.

    `rel` holds the text rendering's `rel` list, or JSON's `parent` (kinds) / `depends` (mixins).
    """

    scheme: str
    term: str
    cls: str | None = None
    title: str | None = None
    rel: tuple[str, ...] = ()
    applies: tuple[str, ...] = ()
    location: str | None = None
    attributes: tuple[AttributeDef, ...] = ()
    actions: tuple[str, ...] = ()

    @property
    def type_id(self) -> str:
        return self.scheme + self.term

    def to_category(self) -> Kind | Mixin | Action:
        """The model category this rendering describes (class decides which)."""
        if self.cls == "kind":
            return Kind(scheme=self.scheme, term=self.term, title=self.title, attributes=self.attributes,
                        actions=self.actions, parent=self.rel[0] if self.rel else None,
                        location=self.location)
        if self.cls == "action":
            return Action(scheme=self.scheme, term=self.term, title=self.title, attributes=self.attributes)
        return Mixin(scheme=self.scheme, term=self.term, title=self.title, attributes=self.attributes,
                     actions=self.actions, depends=self.rel, applies=self.applies, location=self.location)

    @classmethod
    def from_type_id(cls, type_id: str, category_class: str | None = None) -> CategoryDefinition:
        scheme, term = split_type_id(type_id)
        return cls(scheme=scheme, term=term, cls=category_class)


class LinkMessage(msgspec.Struct, frozen=True):
    """A Link inside a resource rendering, or a standalone link's source/target (GFD.229 §5.1.2)."""

    target: str | None = None
    target_kind: str | None = None
    kind: str | None = None
    mixins: tuple[str, ...] = ()
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    self_location: str | None = None
    source: str | None = None
    lenient: bool = False


class EntityMessage(msgspec.Struct, frozen=True):
    """An entity rendering as parsed: a create/update request, or an entity a client read.

    `attributes` holds every attribute value under its rendered name, `occi.core.*` included
    (JSON top-level `id`, `title`, `summary`, `source`, `target` are folded in by the parser).
    `location` is set when the rendering names the entity by location (JSON stubs in mixin
    collections, `self`, or a client reading a collection). `action_links` are echoed
    ActionLinks (type ids), which servers ignore. `unclassified` holds the type ids of
    categories sent without `class` (OCCI 1.1 requests): the receiver, which knows the
    registry, decides which is the kind and which are mixins (`occipy.model.rules.classify_categories`).
    """

    kind: str | None = None
    mixins: tuple[str, ...] = ()
    unclassified: tuple[str, ...] = ()
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    links: tuple[LinkMessage, ...] = ()
    location: str | None = None
    action_links: tuple[str, ...] = ()
    lenient: bool = False


class ActionInvocation(msgspec.Struct, frozen=True):
    """An action invocation (GFD.229 §5.1.1.1, GFD.226 §3.1.1.1); `action` is None when not given."""

    action: str | None = None
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    lenient: bool = False


class Filter(msgspec.Struct, frozen=True):
    """Collection or discovery filter: categories and attribute values (GFD.223 §7)."""

    categories: tuple[CategoryRef, ...] = ()
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.categories or self.attributes)

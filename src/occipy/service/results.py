"""What a handler returns: a typed result, rendered once, after, in the negotiated media type.

Exactly one result type per kind of answer (h11's typed events are the model): an entity, a
collection, categories, created locations, an operation record, or nothing. `headers` are extra
response headers; `operation` is the operation the request started or queued (X-OCCI-Operation,
`Prefer: respond-async`, the audit line).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import msgspec

from occipy.model.category import Action, Kind, Mixin
from occipy.model.entity import Entity
from occipy.store.base import Operation


class Outcome(msgspec.Struct, frozen=True):
    """Fields every result carries."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    operation: Operation | None = None
    # Other operations the request started (a collection action, a create with links).
    operations: tuple[Operation, ...] = ()


class EntityResult(msgspec.Struct, frozen=True):
    """One entity view (links and actions filled in)."""

    entity: Entity
    outcome: Outcome = Outcome()


class CollectionResult(msgspec.Struct, frozen=True):
    """An entity collection: the stored members (decorated when rendered) or only their paths.

    `keys` tells the JSON renderer which arrays to emit ("resources", "links", "both").
    """

    members: Sequence[Entity] | None = None
    paths: Sequence[str] | None = None
    keys: str = "both"
    outcome: Outcome = Outcome()


class CategoriesResult(msgspec.Struct, frozen=True):
    """Categories (discovery, user mixins, a saved template); `cacheable` when it depends only on
    the registry version, the request's scope and the media type."""

    categories: Sequence[Kind | Mixin | Action]
    cacheable: bool = False
    outcome: Outcome = Outcome()


class CreatedResult(msgspec.Struct, frozen=True):
    """201 with the location(s) of what was created."""

    locations: Sequence[str]
    outcome: Outcome = Outcome(status=201)


class RecordResult(msgspec.Struct, frozen=True):
    """A plain record (an operation): X-OCCI-Attribute lines in text, an object in JSON."""

    record: Mapping[str, Any]
    outcome: Outcome = Outcome()


class DocumentResult(msgspec.Struct, frozen=True):
    """A document in its own media type, outside the OCCI renderings (the OpenAPI description)."""

    body: bytes
    media: str
    outcome: Outcome = Outcome()


class StreamResult(msgspec.Struct, frozen=True):
    """A body that is sent as it comes, in its own media type (issue 12: the event stream)."""

    stream: AsyncIterator[bytes]
    media: str
    outcome: Outcome = Outcome()


class EmptyResult(msgspec.Struct, frozen=True):
    outcome: Outcome = msgspec.field(default_factory=Outcome)


Result = (EntityResult | CollectionResult | CategoriesResult | CreatedResult | RecordResult | DocumentResult
          | EmptyResult | StreamResult)

"""What a handler answers, before it is rendered in the negotiated media type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from occipy.model.category import Action, Kind, Mixin
from occipy.model.entity import Entity


@dataclass(slots=True)
class Reply:
    """One answer: exactly one of entity / collection / categories / locations, or nothing.

    `collection_keys` tells the JSON renderer which arrays to emit ("resources", "links", "both").
    `locations` are absolute URLs (201 answers); `headers` are extra response headers.
    """

    status: int = 200
    entity: Entity | None = None
    collection: Sequence[Entity] | None = None
    collection_keys: str = "both"
    categories: Sequence[Kind | Mixin | Action] | None = None
    locations: Sequence[str] | None = None
    # A listing given by paths only (text renderings of large collections need nothing more).
    paths: Sequence[str] | None = None
    raw_json: bytes | None = None
    # A plain record (an operation): X-OCCI-Attribute lines in text, an object in JSON.
    record: dict[str, Any] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    # Set when the rendering depends only on this key, the media type and the registry version.
    cache_key: tuple[str, ...] | None = None

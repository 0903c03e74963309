"""Conditional requests on entities (issue 8; RFC 9110 §8.8.3, §13): ETag, If-Match, If-None-Match.

An entity's ETag is a content hash of what its rendering shows (kind, mixins, attributes, links
with theirs), computed from the entity view the same way for every media type, so that it is
stable across restarts and server processes (D-ETAG). The pipeline evaluates the preconditions
with `evaluate` before a handler runs; `Responder.entity` answers 304 for a matching
If-None-Match on GET. Imports the model and errors only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from occipy.errors import PreconditionFailed
from occipy.model.entity import Entity

READS: Final = frozenset({"GET", "HEAD"})


def _document(entity: Entity) -> list[Any]:
    return [entity.location, entity.kind, sorted(entity.mixins), _attributes(entity.attributes)]


def _attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in attributes.items() if value is not None}


def entity_tag(view: Entity) -> str:
    """The strong ETag of an entity view (its links included), quoted as RFC 9110 §8.8.3 writes it.

    The same for every media type of the entity (D-ETAG: a deliberate simplification: the
    renderings carry the same information, and a strong tag is what If-Match compares).
    """
    document = [_document(view), [_document(link) for link in sorted(view.links, key=lambda e: e.location)]]
    encoded = msgspec.json.encode(document, order="sorted", enc_hook=str)
    return '"' + hashlib.sha256(encoded).hexdigest()[:40] + '"'


def _tags(header: str) -> list[str]:
    """The entity-tags of an If-Match / If-None-Match list (RFC 9110 §13.1.1), as sent."""
    tags: list[str] = []
    rest = header.strip()
    while rest:
        weak = rest.startswith("W/")
        body = rest[2:] if weak else rest
        if body.startswith('"'):
            end = body.find('"', 1)
            if end < 0:
                break
            tags.append(("W/" if weak else "") + body[:end + 1])
            rest = body[end + 1:]
        else:
            # not a quoted tag: take it up to the next comma (it will match nothing)
            token, _, rest = body.partition(",")
            tags.append(token.strip())
        rest = rest.lstrip().lstrip(",").lstrip()
    return tags


def matches_strong(header: str, etag: str | None) -> bool:
    """If-Match (strong comparison, RFC 9110 §13.1.1): `*` matches any current entity."""
    if etag is None:
        return False
    if header.strip() == "*":
        return True
    return any(not tag.startswith("W/") and tag == etag for tag in _tags(header))


def matches_weak(header: str, etag: str | None) -> bool:
    """If-None-Match (weak comparison, RFC 9110 §13.1.2): `*` matches any current entity."""
    if etag is None:
        return False
    if header.strip() == "*":
        return True
    return any(tag.removeprefix("W/") == etag for tag in _tags(header))


def evaluate(method: str, if_match: str | None, if_none_match: str | None, etag: str | None) -> bool:
    """RFC 9110 §13.2.2 steps 1-4 for one entity (`etag` None: none exists at the path).

    Raises PreconditionFailed (412) when a precondition fails; returns True when a GET/HEAD is
    answered 304 Not Modified, False when the request goes on.
    """
    if if_match is not None and not matches_strong(if_match, etag):
        if etag is None:
            raise PreconditionFailed("If-Match: there is no entity at this location")
        raise PreconditionFailed(f"If-Match: the entity has changed; its ETag is now {etag}")
    if if_none_match is not None and matches_weak(if_none_match, etag):
        if method in READS:
            return True
        if if_none_match.strip() == "*":
            raise PreconditionFailed("If-None-Match: *: an entity exists at this location")
        raise PreconditionFailed(f"If-None-Match: the entity still has the ETag {etag}")
    return False

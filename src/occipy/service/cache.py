"""Renderings kept for reuse, consulted only after a request has been authorised and handled.

Every key starts with the request's scope (`Context.scope`: the tenant, or every tenant for an
administrator), so that two tenants never share an answer; adding a dimension (the principal, a
role) is a change to `_scope_of` alone. Entries are valid while the (immutable) objects they were
made from are still the stored ones; the `Responder` checks that identity on every hit.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final

from occipy.model.entity import Entity
from occipy.service.context import Context

MAX_DISCOVERY: Final = 64
MAX_ENTITIES: Final = 20000


def _scope_of(ctx: Context) -> Hashable:
    return ctx.scope


@dataclass(frozen=True, slots=True)
class CachedEntity:
    entity: Entity
    version: int
    links: tuple[Entity, ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes
    etag: str = ""  # issue 8: the ETag of the rendered view (conditional.entity_tag)


class RenderCache:
    def __init__(self) -> None:
        self.discovery: dict[Hashable, tuple[list[tuple[str, str]], bytes]] = {}
        self.entities: dict[Hashable, CachedEntity] = {}
        # Per-entity JSON renderings used inside collections (the same for every reader of them).
        self.entity_json: dict[str, tuple[Entity, bytes]] = {}

    def discovery_key(self, ctx: Context, version: int) -> Hashable:
        return (_scope_of(ctx), ctx.media, version, ctx.base_url)

    def keep_discovery(self, key: Hashable, rendered: tuple[list[tuple[str, str]], bytes]) -> None:
        if len(self.discovery) > MAX_DISCOVERY:
            self.discovery.clear()
        self.discovery[key] = rendered

    def entity_key(self, ctx: Context, location: str) -> Hashable:
        return (_scope_of(ctx), location, ctx.media, ctx.base_url)

    def keep_entity(self, key: Hashable, entity: Entity, version: int, links: tuple[Entity, ...],
                    headers: tuple[tuple[str, str], ...], body: bytes, etag: str = "") -> None:
        if len(self.entities) > MAX_ENTITIES:
            self.entities.clear()
        self.entities[key] = CachedEntity(entity, version, links, headers, body, etag)

    def trim_entity_json(self, members: int) -> None:
        if len(self.entity_json) > 4 * max(members, 10000):
            self.entity_json.clear()

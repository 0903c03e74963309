"""The Store protocol: what the service needs from persistence, and nothing more.

Only `server.py` names a concrete store (`sql.SqlStore`, `memory.MemoryStore`). Every write goes
through `commit(Batch)`, which is atomic and durable when it returns: a batch answered with
success survives `kill -9` of the server (DEVELOPERS.md, Durability).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from occipy.model.category import Mixin
from occipy.model.entity import Entity


@dataclass(slots=True)
class Operation:
    """A long operation (a job) on one entity: persisted before the answer (style.md, Long work)."""

    op_id: str
    location: str
    action: str  # "create", "delete", "update" or an action term such as "start"
    state: str = "running"  # running | succeeded | failed
    message: str | None = None
    owner: str = "anonymous"
    created: float = 0.0
    updated: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EntityQuery:
    """Which entities to list; every field narrows the result, in creation order.

    `kinds`: the entity's kind is one of these (None: any). `mixin`: the entity has this mixin.
    `prefix`: the location starts with it. `offset`/`limit`: one page (limit None: all).
    """

    kinds: tuple[str, ...] | None = None
    mixin: str | None = None
    prefix: str | None = None
    owner: str | None = None
    offset: int = 0
    limit: int | None = None


@dataclass(slots=True)
class Batch:
    """One atomic write: entities to upsert, locations to delete, mixins, operations."""

    put: list[Entity] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    put_mixins: list[Mixin] = field(default_factory=list)
    delete_mixins: list[str] = field(default_factory=list)
    put_operations: list[Operation] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.put or self.delete or self.put_mixins or self.delete_mixins or self.put_operations)


class Store(Protocol):
    """Persistence for the service. Reads may be served from memory; writes are durable."""

    async def open(self) -> None:
        """Create the schema if needed and get ready; called once at start-up."""

    async def close(self) -> None:
        """Flush and release every resource."""

    async def get(self, location: str) -> Entity | None:
        """The entity at this location (path), or None."""

    async def get_by_id(self, entity_id: str) -> Entity | None:
        """The entity whose `occi.core.id` is this, or None."""

    async def query(self, query: EntityQuery) -> list[Entity]:
        """Entities matching the query, in creation order."""

    async def query_locations(self, query: EntityQuery) -> list[str]:
        """Locations of the entities matching the query, in creation order (cheaper than query)."""

    async def count(self, query: EntityQuery) -> int:
        """How many entities match (offset/limit ignored)."""

    async def links_from(self, sources: Sequence[str]) -> dict[str, list[Entity]]:
        """Links whose `occi.core.source` is one of these locations, grouped by source."""

    async def links_to(self, target: str) -> list[Entity]:
        """Links whose `occi.core.target` is this location."""

    async def commit(self, batch: Batch) -> None:
        """Apply the batch atomically; when this returns, it is durable."""

    async def user_mixins(self) -> list[Mixin]:
        """Every user-defined mixin, in creation order."""

    async def get_operation(self, op_id: str) -> Operation | None:
        """One operation, or None."""

    async def operations(self, state: str | None = None, location: str | None = None) -> list[Operation]:
        """Operations, optionally only those in `state` or on `location`, oldest first."""

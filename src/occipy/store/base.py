"""The Store protocol: what the service needs from persistence, and nothing more.

Only `server.py` names a concrete store (`sql.SqlStore`, `memory.MemoryStore`). Every write goes
through `commit(Batch)`, which is atomic and durable when it returns: a batch answered with
success survives `kill -9` of the server (DEVELOPERS.md, Durability). Entities and operations
are immutable values, shared freely between the store and its callers. Every entity, user mixin
and operation belongs to a tenant; queries name the tenant they are scoped to (None: every
tenant, for administrators and the server's own work).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

import msgspec

from occipy.model.category import Mixin
from occipy.model.entity import ANONYMOUS, DEFAULT_TENANT, Entity

# Operation states (docs/decisions.md D-QUEUE): an operation waits its turn behind the ones
# before it on the same entity, runs, and ends.
QUEUED: Final = "queued"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
PENDING_STATES: Final = frozenset({QUEUED, RUNNING})


class Operation(msgspec.Struct, frozen=True, gc=False):
    """A unit of cloud work on one entity (create, update, delete or an action), persisted first.

    `params` holds what is needed to run it later (action parameters, the changes of an update),
    so that queued work survives a restart. `seq` orders the operations of one entity.
    Immutable, and untracked by the cycle collector like `Entity` (docs/decisions.md D-UNTRACKED).
    """

    op_id: str
    location: str
    action: str  # "create", "delete", "update" or an action term such as "start"
    state: str = RUNNING
    message: str | None = None
    tenant: str = DEFAULT_TENANT
    owner: str = ANONYMOUS
    created: float = 0.0
    updated: float = 0.0
    seq: int = 0
    params: Mapping[str, Any] = msgspec.field(default_factory=dict)
    result: Mapping[str, Any] = msgspec.field(default_factory=dict)

    @property
    def pending(self) -> bool:
        return self.state in PENDING_STATES

    def ended(self, state: str, message: str | None, now: float, **result: Any) -> Operation:
        """This operation in another state (running, or a final one), at `now`."""
        return Operation(self.op_id, self.location, self.action, state, message, self.tenant, self.owner,
                         self.created, now, self.seq, self.params,
                         {**self.result, **result} if result else self.result)


@dataclass(frozen=True, slots=True)
class EntityQuery:
    """Which entities to list; every field narrows the result, in creation order.

    `kinds`: the entity's kind is one of these (None: any). `mixin`: the entity has this mixin.
    `prefix`: the location starts with it. `tenant`: the entity belongs to it (None: any).
    `offset`/`limit`: one page (limit None: all). `attributes`: (name, text) pairs the entity's
    attribute values equal exactly, as strings (a store answers them from its indexes where it has
    them; the service still applies OCCI's looser matching to what comes back). `backend`: the
    entity's cloud object id is this. `after`: only entities created after the one at this
    location (a keyset page; None: from the start).
    """

    kinds: tuple[str, ...] | None = None
    mixin: str | None = None
    prefix: str | None = None
    tenant: str | None = None
    offset: int = 0
    limit: int | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    backend: str | None = None
    after: str | None = None


# ---- metric history (monitoring; docs/monitoring.md) --------------------------------- [monitoring]


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One measured value: which collector measured which target for which sensor, when, what."""

    collector: str  # the collector link's location
    sensor: str  # its source
    target: str  # the measured resource's location
    channel: str  # where the value flows (monitoring draft §3.6), e.g. "cpu"
    metric: str  # what it is: "cpu", "memory", "availability", ...
    value: float
    taken: float  # epoch seconds
    tenant: str = DEFAULT_TENANT


@dataclass(frozen=True, slots=True)
class SamplePrune:
    """Forget the samples of one collector: all but the newest `keep`, and those older than `before`."""

    collector: str
    keep: int = 0
    before: float | None = None


# ---- writes -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Batch:
    """One atomic write: entities to upsert, locations to delete, mixins, operations (and samples).

    `new` are entities that must not exist yet (their location and id are free): the batch fails
    with Conflict otherwise. It is how two server processes creating one location are told apart
    (the database's unique constraints decide, docs/scaleout.md); `new` is applied after `delete`
    and before `put`.
    """

    put: list[Entity] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    put_mixins: list[Mixin] = field(default_factory=list)
    delete_mixins: list[str] = field(default_factory=list)
    put_operations: list[Operation] = field(default_factory=list)
    # [monitoring] the metric history: new samples, and what to forget (stores with MetricHistory).
    put_samples: list[MetricSample] = field(default_factory=list)
    prune_samples: list[SamplePrune] = field(default_factory=list)
    new: list[Entity] = field(default_factory=list)  # scale-out: insert-only entities

    def __bool__(self) -> bool:
        return bool(self.put or self.delete or self.put_mixins or self.delete_mixins or self.put_operations
                    or self.put_samples or self.prune_samples or self.new)

    def merge(self, other: Batch) -> Batch:
        """Both batches as one (this one first)."""
        return Batch(put=[*self.put, *other.put], delete=[*self.delete, *other.delete],
                     put_mixins=[*self.put_mixins, *other.put_mixins],
                     delete_mixins=[*self.delete_mixins, *other.delete_mixins],
                     put_operations=[*self.put_operations, *other.put_operations],
                     put_samples=[*self.put_samples, *other.put_samples],
                     prune_samples=[*self.prune_samples, *other.prune_samples],
                     new=[*self.new, *other.new])


# ---- change events (issue 12, GET /-/events) ----------------------------------------------------
# Every committed batch yields events, written in the same transaction, numbered by the database
# in commit order (store/events.py derives them; docs/events.md). Kinds of event:
CREATED: Final = "created"  # an entity appeared
UPDATED: Final = "updated"  # an entity changed, its state did not
STATE: Final = "state"  # an entity's lifecycle state changed (and maybe more)
DELETED: Final = "deleted"  # an entity is gone
OPERATION: Final = "operation"  # an operation record was written or changed state (queued ... failed)
EVENT_TYPES: Final = (CREATED, UPDATED, STATE, DELETED, OPERATION)


class ChangeEvent(msgspec.Struct, frozen=True, gc=False):
    """One committed change. `event_id` grows with commit order (0 until the store numbers it).

    `state` is the entity's lifecycle state for entity events and the operation's state for
    operation events; `message` the matching message; `operation` the id of the operation.
    Untracked by the cycle collector, as `Entity` (docs/decisions.md D-UNTRACKED).
    """

    event_id: int
    type: str
    location: str
    tenant: str
    kind: str | None = None
    state: str | None = None
    message: str | None = None
    operation: str | None = None
    action: str | None = None
    created: float = 0.0


@dataclass(frozen=True, slots=True)
class EventPage:
    """Events after some id, oldest first. Events with ids up to `floor` are no longer kept (a
    reader whose last id is below it lost some); `last` is the highest id the store has given."""

    events: list[ChangeEvent]
    floor: int = 0
    last: int = 0


@dataclass(frozen=True, slots=True)
class EventRetention:
    """How many events the store keeps, and for how long (seconds): a reconnect within both
    bounds resumes without loss (settings events_keep, events_max_age)."""

    keep: int = 10_000
    max_age: float = 86_400.0


@dataclass(frozen=True, slots=True)
class OperationRetention:
    """How many operation records the store keeps, and for how long (seconds).

    An operation that ended (succeeded, failed, cancelled) is deleted once `keep` newer ones exist
    or once it was accepted more than `max_age` ago; queued and running ones are always kept
    (settings operations_keep, operations_max_age). Without a bound the table, and the listing
    `GET /-/operations/`, grew with every request a server ever answered.
    """

    keep: int = 100_000
    max_age: float = 7 * 86_400.0

    def cuts(self, now: float, kept_from: int | None) -> tuple[int, int]:
        """(cut, keep_cut) on `seq` (acceptance time in ns): an ended operation goes when its seq
        is below `cut`, and one without a seq (0: made before operations had one, no known age)
        only when also below `keep_cut`. `kept_from` is the seq of the keep-th newest operation
        (None: fewer are held). SqlStore says the same in SQL, MemoryStore in Python."""
        keep_cut = -1 if kept_from is None else kept_from
        return max(int((now - self.max_age) * 1e9), keep_cut), keep_cut


class Store(Protocol):
    """Persistence for the service. Reads may be served from memory; writes are durable."""

    async def open(self) -> None:
        """Create or migrate the schema if needed and get ready; called once at start-up."""

    async def close(self) -> None:
        """Flush and release every resource."""

    async def get(self, location: str) -> Entity | None:
        """The entity at this location (path), whatever its tenant, or None."""

    async def get_by_id(self, entity_id: str) -> Entity | None:
        """The entity whose `occi.core.id` is this, whatever its tenant, or None."""

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
        """Every user-defined mixin (and saved template), in creation order."""

    async def get_operation(self, op_id: str) -> Operation | None:
        """One operation, or None."""

    async def operations(self, state: str | None = None, location: str | None = None,
                         tenant: str | None = None) -> list[Operation]:
        """Operations, optionally only those in `state`, on `location` or of `tenant`, oldest first."""

    async def pending_operations(self, location: str | None = None) -> list[Operation]:
        """Every queued or running operation (of one location), in the order they must run (by `seq`)."""

    # ---- change events (issue 12) -------------------------------------------------------------

    async def events_after(self, after: int, limit: int = 1000) -> EventPage:
        """Up to `limit` committed events with ids above `after`, oldest first."""

    def listen_events(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (on the event loop, no await) after commits of this process that may have
        added events; returns the function that stops it. Other processes' events are only seen
        by reading (`events_after`)."""


@runtime_checkable
class MetricHistory(Protocol):
    """[monitoring] A store that keeps the metric history (written with `Batch.put_samples`)."""

    async def samples(self, *, collector: str | None = None, target: str | None = None,
                      since: float | None = None, limit: int | None = None) -> list[MetricSample]:
        """Samples of one collector and/or of one target, oldest first; `limit`: only the newest."""


@runtime_checkable
class Shared(Protocol):
    """A store that several server processes use at once (PostgreSQL; docs/scaleout.md).

    Claims are held by this process's own database session: when the process dies, the database
    ends the session and every claim it held is free again. `claim` never waits.
    """

    shared: bool  # True: other processes write too (no cached read may be trusted without a check)

    async def claim(self, key: str) -> bool:
        """Take the claim named `key` (an entity's lane, a leader's role) if nobody holds it."""

    async def release(self, key: str) -> None:
        """Give back a claim this process holds."""

    async def pending_locations(self) -> list[str]:
        """Locations with queued or running operations, oldest first."""

    def watch_mixins(self, callback: Any) -> None:
        """Call `callback()` (an async function) whenever another process changed the user mixins."""

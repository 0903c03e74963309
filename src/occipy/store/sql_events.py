"""The change-event log in SQL (issue 12): written by the store's writer, in the batch's transaction.

`record(conn, batches, ...)` reads what the database holds for everything the batches touch,
derives their events in commit order (`store.events.derive`) and inserts them: the database
numbers them, so ids grow with commit order, also across processes on PostgreSQL, where the
writer first takes a transaction-scoped advisory lock (`EVENTS_LOCK`): a transaction that inserts
events later also gets larger ids and commits later, so a reader never sees id n+1 before n.
Now and then it prunes what `EventRetention` no longer covers and remembers the highest pruned
id in `event_floor`. `read(conn, after, limit)` answers `Store.events_after` from one snapshot.
Imports sqlalchemy, msgspec, the model and the store's own modules.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from occipy.model.entity import Entity
from occipy.store._writes import send
from occipy.store.base import Batch, ChangeEvent, EventPage, EventRetention, Operation
from occipy.store.events import Known, derive
from occipy.store.schema import entities, event_floor, events, operations

# pg_advisory_xact_lock key of the event log ("occi" in ASCII): one writer at a time inserts events.
EVENTS_LOCK: Final = 0x6F636369
# Prune after this share of `keep` new events, or this many seconds (and at the first commit).
PRUNE_SHARE: Final = 10
PRUNE_SECONDS: Final = 60.0
_CHUNK: Final = 500  # bound parameters of one IN (...) list
_FLOOR_NAME: Final = "events"

_decode_mixins = msgspec.json.Decoder(list[str]).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


@dataclass(slots=True)
class Pruning:
    """The writer's pruning schedule: events since the last prune, and its time."""

    since: int = 0
    at: float = 0.0


def _chunks(keys: Iterable[str]) -> Iterable[list[str]]:
    items = list(keys)
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


# Built once (building a statement costs more than running it on a small batch).
_ENTITY_ROWS: Final = sa.select(
    entities.c.kind, entities.c.entity_id, entities.c.location, entities.c.mixins, entities.c.attributes,
    entities.c.tenant, entities.c.owner, entities.c.backend_id,
).where(entities.c.location.in_(sa.bindparam("keys", expanding=True)))
_OPERATION_ROWS: Final = sa.select(
    operations.c.op_id, operations.c.location, operations.c.action, operations.c.state, operations.c.message,
).where(operations.c.op_id.in_(sa.bindparam("keys", expanding=True)))
_EVENT_COLUMNS: Final = ("type", "location", "tenant", "kind", "state", "message", "operation", "action", "created")
# Sent as it is (`send`): compiling SQLAlchemy's insert for each commit cost more than
# running it. The placeholder is the driver's (`?` for sqlite3, `%s` for psycopg).
_INSERT_EVENTS: Final = {
    style: f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join([mark] * len(_EVENT_COLUMNS))})"
    for style, mark in (("qmark", "?"), ("format", "%s"), ("pyformat", "%s"))}


def _stored_entities(conn: Connection, locations: set[str]) -> dict[str, Entity]:
    found: dict[str, Entity] = {}
    for chunk in _chunks(locations):
        for row in conn.execute(_ENTITY_ROWS, {"keys": chunk}):
            found[row.location] = Entity(kind=row.kind, entity_id=row.entity_id, location=row.location,
                                         mixins=tuple(_decode_mixins(row.mixins)),
                                         attributes=_decode_object(row.attributes), tenant=row.tenant,
                                         owner=row.owner, backend_id=row.backend_id)
    return found


def _stored_operations(conn: Connection, op_ids: set[str]) -> dict[str, Operation]:
    found: dict[str, Operation] = {}
    for chunk in _chunks(op_ids):
        for row in conn.execute(_OPERATION_ROWS, {"keys": chunk}):
            found[row.op_id] = Operation(op_id=row.op_id, location=row.location, action=row.action,
                                         state=row.state, message=row.message)
    return found


@dataclass(slots=True)
class Remembered:
    """What a database's only writer committed last, so that deriving events needs no reads.

    Only for a database with one writing process (SQLite, D-STORE): every commit goes through that
    process's writer, so what it remembers of a row is what the row holds. Bounded: the least
    recently written are forgotten, and a forgotten row is read again. An operation not remembered
    whose `created` is later than every forgotten operation's (and than the store's opening) was
    never written: it needs no read either (a new operation record).
    """

    size: int
    opened: float
    entities: OrderedDict[str, Entity | None] = field(default_factory=OrderedDict)
    operations: OrderedDict[str, Operation | None] = field(default_factory=OrderedDict)
    forgotten_ops_until: float = 0.0  # the latest `created` of a forgotten operation

    def __post_init__(self) -> None:
        self.forgotten_ops_until = self.opened

    def keep(self, known: Known) -> None:
        """After a commit: what the committed batches left (`known` after `derive`)."""
        entities, operations = self.entities, self.operations
        for location, entity in known.entities.items():
            entities[location] = entity
            entities.move_to_end(location)
        for op_id, op in known.operations.items():
            operations[op_id] = op
            operations.move_to_end(op_id)
        while len(entities) > self.size:
            entities.popitem(last=False)
        while len(operations) > self.size:
            _, forgotten = operations.popitem(last=False)
            if forgotten is not None and forgotten.created > self.forgotten_ops_until:
                self.forgotten_ops_until = forgotten.created


def derive_group(conn: Connection, batches: Sequence[Batch], now: float,
                 remembered: Remembered | None = None) -> tuple[list[ChangeEvent], Known]:
    """The events of these batches, in order, against what the database holds before them, and
    what the database will hold after them (`Known`, for `Remembered.keep` once committed)."""
    locations: set[str] = set()
    absent: set[str] = set()  # insert-only entities: the insert fails (and nothing commits) if one exists
    op_ids: set[str] = set()
    new_ops: set[str] = set()
    for batch in batches:
        locations.update(batch.delete)
        locations.update(entity.location for entity in batch.put)
        absent.update(entity.location for entity in batch.new)
        for op in batch.put_operations:
            op_ids.add(op.op_id)
            locations.add(op.location)
            if remembered is not None and op.op_id not in remembered.operations \
                    and op.created > remembered.forgotten_ops_until:
                new_ops.add(op.op_id)
    locations -= absent
    before: dict[str, Entity | None] = dict.fromkeys(absent)
    before_ops: dict[str, Operation | None] = dict.fromkeys(new_ops)
    if remembered is not None:
        for location in locations:
            if location in remembered.entities:
                before[location] = remembered.entities[location]
        for op_id in op_ids:
            if op_id in remembered.operations:
                before_ops[op_id] = remembered.operations[op_id]
    unknown = locations - before.keys()
    if unknown:
        stored = _stored_entities(conn, unknown)
        for location in unknown:
            before[location] = stored.get(location)
    unknown_ops = op_ids - before_ops.keys()
    if unknown_ops:
        stored_ops = _stored_operations(conn, unknown_ops)
        for op_id in unknown_ops:
            before_ops[op_id] = stored_ops.get(op_id)
    known = Known(before.get, before_ops.get)
    found: list[ChangeEvent] = []
    for batch in batches:
        found.extend(derive(batch, known, now))
    return found, known


def record(conn: Connection, batches: Sequence[Batch], now: float, retention: EventRetention,
           pruning: Pruning, remembered: Remembered | None = None) -> Known:
    """Insert the events of these batches (before their writes, in their transaction).

    Returns what the rows will hold after the batches: once the transaction committed, the
    caller passes it to `remembered.keep` (never before: a rolled-back group left nothing).
    """
    if conn.dialect.name == "postgresql":
        # Held to the end of the transaction: event ids commit in the order they are given.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENTS_LOCK})
    found, known = derive_group(conn, batches, now, remembered)
    if found:
        send(conn, _INSERT_EVENTS[conn.dialect.paramstyle], [
            (e.type, e.location, e.tenant, e.kind, e.state, e.message, e.operation, e.action, e.created)
            for e in found])
    pruning.since += len(found)
    if pruning.since >= max(1, retention.keep // PRUNE_SHARE) or now - pruning.at >= PRUNE_SECONDS:
        prune(conn, retention, now)
        pruning.since, pruning.at = 0, now
    return known


def _floor(conn: Connection) -> int:
    value = conn.scalar(sa.select(event_floor.c.event_id).where(event_floor.c.name == _FLOOR_NAME))
    return int(value or 0)


def prune(conn: Connection, retention: EventRetention, now: float) -> None:
    """Drop events beyond `keep` or older than `max_age`; remember the highest id dropped."""
    last = int(conn.scalar(sa.select(sa.func.max(events.c.event_id))) or 0)
    # The first event young enough to keep, walking from the oldest: this reads only the rows
    # that go (events are numbered in commit order, and stamped with their commit's time), and
    # needs no index on `created`, which cost every commit a page. Should the clock step back,
    # an older event after a younger one stays until a later pass: this prunes less, never more.
    young = conn.scalar(sa.select(events.c.event_id).where(events.c.created >= now - retention.max_age)
                        .order_by(events.c.event_id).limit(1))
    aged = last if young is None else int(young) - 1
    cut = max(last - retention.keep, aged)
    floor = _floor(conn)
    if cut <= floor:
        return
    conn.execute(events.delete().where(events.c.event_id <= cut))
    updated = conn.execute(event_floor.update().where(event_floor.c.name == _FLOOR_NAME).values(event_id=cut))
    if not updated.rowcount:
        conn.execute(event_floor.insert().values(name=_FLOOR_NAME, event_id=cut))


def read(conn: Connection, after: int, limit: int) -> EventPage:
    """Events with ids above `after` (at most `limit`), the floor and the last id.

    The caller runs this in one transaction (REPEATABLE READ on PostgreSQL: one snapshot). SQLite's
    driver reads outside a transaction, each statement its own snapshot: the rows come first, so
    a prune between the statements can only make the floor look higher (a loss reported that the
    rows already cover), never hide a loss.
    """
    rows = conn.execute(sa.select(events).where(events.c.event_id > after)
                        .order_by(events.c.event_id).limit(max(limit, 0))).all()
    floor = _floor(conn)
    last = int(conn.scalar(sa.select(sa.func.max(events.c.event_id))) or 0)
    found = [ChangeEvent(event_id=row.event_id, type=row.type, location=row.location, tenant=row.tenant,
                         kind=row.kind, state=row.state, message=row.message, operation=row.operation,
                         action=row.action, created=row.created) for row in rows]
    return EventPage(found, floor, max(last, floor))

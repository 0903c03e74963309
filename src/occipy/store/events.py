"""Change events (issue 12): what a committed batch changed, derived where batches are committed.

`derive(batch, before)` compares each entity and operation a batch writes with what was stored
before it and yields, in the batch's own order (deletes, then puts, then operations, as the store
applies them): `deleted`, `created`, `state` (the lifecycle state changed) or `updated` (anything
else changed), and `operation` (a record is new or its state or message changed). A put that
changes nothing yields nothing. The store writes the events in the same transaction as the batch,
so a refused batch yields none. `EventLog` keeps them in memory (MemoryStore); `store/sql_events.py`
keeps them in the database. Imports the model, `store.base` and msgspec's `structs.replace` only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field

from msgspec.structs import replace

from occipy.model.entity import Entity
from occipy.model.state import state_attribute
from occipy.store.base import (
    CREATED,
    DELETED,
    OPERATION,
    STATE,
    UPDATED,
    Batch,
    ChangeEvent,
    EventPage,
    EventRetention,
    Operation,
)


@dataclass(slots=True)
class Known:
    """What was stored before a batch (or a group of batches), filled in as batches are derived.

    A missing key is asked of `entity_of` / `operation_of` (the store before the group); a key
    mapped to None is known to be absent.
    """

    entity_of: Callable[[str], Entity | None]
    operation_of: Callable[[str], Operation | None]
    entities: MutableMapping[str, Entity | None] = field(default_factory=dict)
    operations: MutableMapping[str, Operation | None] = field(default_factory=dict)

    def entity(self, location: str) -> Entity | None:
        if location in self.entities:
            return self.entities[location]
        return self.entity_of(location)

    def operation(self, op_id: str) -> Operation | None:
        if op_id in self.operations:
            return self.operations[op_id]
        return self.operation_of(op_id)


def _state(entity: Entity) -> tuple[str | None, str | None]:
    name = state_attribute(entity.kind)
    if name is None:
        return None, None
    state = entity.attributes.get(name)
    message = entity.attributes.get(name + ".message")
    return (state if isinstance(state, str) else None), (message if isinstance(message, str) else None)


def _entity_event(kind: str, entity: Entity, now: float) -> ChangeEvent:
    state, message = _state(entity)
    return ChangeEvent(0, kind, entity.location, entity.tenant, kind=entity.kind, state=state, message=message,
                       created=now)


def derive(batch: Batch, known: Known, now: float | None = None) -> list[ChangeEvent]:
    """The events of one batch (ids 0: the store numbers them), and `known` advanced past it."""
    now = time.time() if now is None else now
    found: list[ChangeEvent] = []
    # The kind of an entity the batch deletes, for its operations' events (a delete's record ends
    # in the batch that removes the entity).
    gone: dict[str, str] = {}
    for location in batch.delete:
        before = known.entity(location)
        if before is None:
            continue
        gone[location] = before.kind
        known.entities[location] = None
        found.append(replace(_entity_event(DELETED, before, now), state=None, message=None))
    for entity in [*batch.new, *batch.put]:  # `new` (insert-only) is applied before `put`
        entity = entity.persistent()
        before = known.entity(entity.location)
        known.entities[entity.location] = entity
        if before is None:
            found.append(_entity_event(CREATED, entity, now))
        elif before != entity:
            changed = _state(before)[0] != _state(entity)[0]
            found.append(_entity_event(STATE if changed else UPDATED, entity, now))
    for op in batch.put_operations:
        before_op = known.operation(op.op_id)
        known.operations[op.op_id] = op
        if before_op is not None and (before_op.state, before_op.message) == (op.state, op.message):
            continue
        on = known.entity(op.location)
        kind = on.kind if on is not None else gone.get(op.location)
        found.append(ChangeEvent(0, OPERATION, op.location, op.tenant, kind=kind, state=op.state,
                                 message=op.message, operation=op.op_id, action=op.action, created=now))
    return found


class EventLog:
    """Events in memory, numbered from 1, kept within an `EventRetention` (the MemoryStore's log)."""

    def __init__(self, retention: EventRetention | None = None) -> None:
        self.retention = retention or EventRetention()
        self._events: deque[ChangeEvent] = deque()
        self._last = 0
        self._floor = 0
        self._listeners: list[Callable[[], None]] = []

    def append(self, drafts: list[ChangeEvent], now: float | None = None) -> None:
        """Number and keep these events; drop what the retention no longer covers."""
        for draft in drafts:
            self._last += 1
            self._events.append(replace(draft, event_id=self._last))
        now = time.time() if now is None else now
        events = self._events
        oldest = now - self.retention.max_age
        while events and (len(events) > self.retention.keep or events[0].created < oldest):
            self._floor = events.popleft().event_id

    def after(self, after: int, limit: int) -> EventPage:
        events = self._events
        if not events or after >= self._last:
            return EventPage([], self._floor, self._last)
        # ids are consecutive here: the first one after `after` sits at a known index.
        start = max(after + 1 - events[0].event_id, 0)
        stop = min(start + max(limit, 0), len(events))
        return EventPage([events[i] for i in range(start, stop)], self._floor, self._last)

    def listen(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(callback)

        def stop() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return stop

    def notify(self) -> None:
        for callback in list(self._listeners):
            callback()

"""MemoryStore: the whole store in process memory, indexed for every read the service makes.

It is the store of the unit tests (`sql.SqlStore` reads from SQL and keeps only a bounded cache).
Entities and operations are immutable values, shared with the indexes; `commit` keeps them
without the non-persistent `links` and `actions`. Imports only the model, errors and `store.base`.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence

from occipy.errors import Conflict
from occipy.model.category import Mixin
from occipy.model.entity import Entity
from occipy.store.base import (
    PENDING_STATES,
    Batch,
    EntityQuery,
    EventPage,
    EventRetention,
    MetricSample,
    Operation,
    OperationRetention,
    SamplePrune,
)
from occipy.store.events import EventLog, Known, derive


def snapshot_batch(batch: Batch) -> Batch:
    """A copy of the batch that later changes by the caller cannot reach (values are immutable)."""
    return Batch(
        # A mixin is associated once: duplicates would also break the entity_mixins primary key.
        put=[entity.persistent() if len(set(entity.mixins)) == len(entity.mixins)
             else entity.persistent().evolve(mixins=entity.mixins) for entity in batch.put],
        delete=list(batch.delete),
        put_mixins=list(batch.put_mixins),
        delete_mixins=list(batch.delete_mixins),
        put_operations=list(batch.put_operations),
        put_samples=list(batch.put_samples),
        prune_samples=list(batch.prune_samples),
        new=[entity.persistent() if len(set(entity.mixins)) == len(entity.mixins)
             else entity.persistent().evolve(mixins=entity.mixins) for entity in batch.new],
    )


def attribute_text(value: object) -> str | None:
    """An attribute value as `EntityQuery.attributes` compares it: strings as they are, numbers and
    booleans in their JSON form; lists and objects never match."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return None


class _OrderedSet:
    """Locations in creation order; sorted lazily when one arrives out of order."""

    __slots__ = ("dirty", "items", "last")

    def __init__(self) -> None:
        self.items: dict[str, None] = {}
        self.last = -1
        self.dirty = False

    def add(self, location: str, seq: int) -> None:
        if location in self.items:
            return
        # An old entity joining the set (a mixin associated later, a changed kind) goes to the
        # end of the dict; remember to sort before the next read rather than on every write.
        if seq < self.last:
            self.dirty = True
        else:
            self.last = seq
        self.items[location] = None

    def discard(self, location: str) -> None:
        self.items.pop(location, None)

    def ordered(self, seqs: dict[str, int]) -> dict[str, None]:
        if self.dirty:
            self.items = dict.fromkeys(sorted(self.items, key=seqs.__getitem__))
            self.dirty = False
        return self.items


def _add(index: dict[str, _OrderedSet], key: str, location: str, seq: int) -> None:
    bucket = index.get(key)
    if bucket is None:
        bucket = index[key] = _OrderedSet()
    bucket.add(location, seq)


def _discard(index: dict[str, _OrderedSet], key: str, location: str) -> None:
    bucket = index.get(key)
    if bucket is not None:
        bucket.discard(location)
        if not bucket.items:
            del index[key]


# [monitoring] Samples kept per collector in memory, whatever the retention asks for.
MAX_SAMPLES = 100_000


class MemoryStore:
    """The Store protocol in memory; commits are atomic, nothing survives the process."""

    def __init__(self, *, events: EventRetention | None = None, operations: OperationRetention | None = None) -> None:
        # issue 12: the change events of this store's commits (SqlStore keeps them in SQL instead
        # and uses the log only for its listeners).
        self._event_log = EventLog(events)
        self._entities: dict[str, Entity] = {}  # location -> entity, in creation order
        self._seqs: dict[str, int] = {}  # location -> creation sequence
        self._counter = itertools.count()
        self._by_id: dict[str, str] = {}  # occi.core.id -> location
        self._by_kind: dict[str, _OrderedSet] = {}
        self._by_mixin: dict[str, _OrderedSet] = {}
        self._by_source: dict[str, _OrderedSet] = {}
        self._by_target: dict[str, _OrderedSet] = {}
        self._mixins: dict[str, Mixin] = {}  # type id -> user mixin, in creation order
        self._mixin_locations: dict[str, str] = {}  # location -> type id
        self._operations: dict[str, Operation] = {}
        self._op_retention = operations or OperationRetention()
        self._op_pruned_at = 0.0
        # [monitoring] collector location -> its samples, oldest first (bounded: MAX_SAMPLES).
        self._samples: dict[str, deque[MetricSample]] = {}

    # ---- lifecycle and writes -------------------------------------------------------------

    async def open(self) -> None:
        """Nothing to prepare in memory."""

    async def close(self) -> None:
        """Nothing to release in memory."""

    async def commit(self, batch: Batch) -> None:
        """Apply the batch atomically: a duplicate entity id or mixin location changes nothing."""
        if not batch:
            return
        batch = snapshot_batch(batch)
        self._check(batch)
        # issue 12: the batch's events, numbered in commit order, kept with it.
        drafts = derive(batch, Known(self._entities.get, self._operations.get))
        self._apply(batch)
        if drafts:
            self._event_log.append(drafts)
            self._event_log.notify()

    def _check(self, batch: Batch) -> None:
        """Raise Conflict when the batch would break a uniqueness rule (the SQL UNIQUE constraints)."""
        # Final state of every location the batch touches: deletes first, then puts in order.
        final: dict[str, Entity | None] = dict.fromkeys(batch.delete)
        for entity in batch.new:
            if final.get(entity.location) is not None or (
                    entity.location in self._entities and entity.location not in batch.delete):
                raise Conflict(f"location {entity.location} is already taken")
            final[entity.location] = entity
        for entity in batch.put:
            final[entity.location] = entity
        holders: dict[str, str] = {}
        for location, after in final.items():
            if after is None:
                continue
            other = holders.setdefault(after.entity_id, location)
            if other != location:
                raise Conflict(f"entity id {after.entity_id} is used by {other} and {location}")
            current = self._by_id.get(after.entity_id)
            if current is not None and current != location and current not in final:
                raise Conflict(f"entity id {after.entity_id} is already used by {current}")
        final_mixins: dict[str, Mixin | None] = dict.fromkeys(batch.delete_mixins)
        for mixin in batch.put_mixins:
            final_mixins[mixin.type_id] = mixin
        bound: dict[str, str] = {}
        for type_id, maybe_mixin in final_mixins.items():
            if maybe_mixin is None or maybe_mixin.location is None:
                continue
            location = maybe_mixin.location
            other = bound.setdefault(location, type_id)
            current = self._mixin_locations.get(location)
            if other != type_id or (
                current is not None and current != type_id and current not in final_mixins
            ):
                raise Conflict(f"mixin location {location} is already bound")

    def _apply(self, batch: Batch) -> None:
        """Apply an already checked (or already committed) batch to the indexes, in batch order."""
        for location in batch.delete:
            self._remove(location)
        for entity in [*batch.new, *batch.put]:
            self._put(entity)
        for type_id in batch.delete_mixins:
            mixin = self._mixins.pop(type_id, None)
            if mixin is not None and mixin.location is not None:
                self._mixin_locations.pop(mixin.location, None)
        for mixin in batch.put_mixins:
            old = self._mixins.get(mixin.type_id)
            if old is not None and old.location is not None:
                self._mixin_locations.pop(old.location, None)
            self._mixins[mixin.type_id] = mixin
            if mixin.location is not None:
                self._mixin_locations[mixin.location] = mixin.type_id
        for operation in batch.put_operations:
            self._operations[operation.op_id] = operation
        if batch.put_operations:
            self._prune_operations(time.time())
        if batch.put_samples or batch.prune_samples:
            self._apply_samples(batch.put_samples, batch.prune_samples)

    def _prune_operations(self, now: float) -> None:
        """Forget the operations that ended beyond `OperationRetention` (as SqlStore prunes them):
        when a tenth more than `keep` are held, or a minute after the last pass."""
        retention = self._op_retention
        if len(self._operations) <= retention.keep + retention.keep // 10 and now - self._op_pruned_at < 60.0:
            return
        self._op_pruned_at = now
        ordered = sorted(self._operations.values(), key=lambda op: op.seq)
        cut, keep_cut = retention.cuts(now, ordered[-retention.keep].seq if len(ordered) >= retention.keep > 0
                                       else None)
        for op in ordered:
            if op.seq >= cut:
                break
            if not op.pending and (op.seq > 0 or op.seq < keep_cut):  # seq 0: no known age
                del self._operations[op.op_id]

    # ---- [monitoring] the metric history ---------------------------------------------------------

    def _apply_samples(self, samples: Sequence[MetricSample], prunes: Sequence[SamplePrune]) -> None:
        for sample in samples:
            history = self._samples.get(sample.collector)
            if history is None:
                history = self._samples[sample.collector] = deque(maxlen=MAX_SAMPLES)
            history.append(sample)
        for prune in prunes:
            history = self._samples.get(prune.collector)
            if history is None:
                continue
            while history and (len(history) > prune.keep
                               or (prune.before is not None and history[0].taken < prune.before)):
                history.popleft()
            if not history:
                del self._samples[prune.collector]

    async def samples(self, *, collector: str | None = None, target: str | None = None,
                      since: float | None = None, limit: int | None = None) -> list[MetricSample]:
        """Samples of one collector and/or target, oldest first (MetricHistory); `limit`: the newest."""
        histories = [self._samples.get(collector, ())] if collector is not None else list(self._samples.values())
        found = [s for history in histories for s in history
                 if (target is None or s.target == target) and (since is None or s.taken >= since)]
        if len(histories) > 1:
            found.sort(key=lambda s: s.taken)
        return found[-limit:] if limit is not None and limit > 0 else found if limit is None else []

    def _put(self, entity: Entity) -> None:
        location = entity.location
        old = self._entities.get(location)
        if old is None:
            seq = self._seqs[location] = next(self._counter)
            old_mixins: set[str] = set()
        else:
            # An update keeps its position; touch only the indexes whose key changed, so that
            # frequent updates (state changes) never make an index resort.
            seq = self._seqs[location]
            old_mixins = set(old.mixins)
            if self._by_id.get(old.entity_id) == location:
                del self._by_id[old.entity_id]
            if old.kind != entity.kind:
                _discard(self._by_kind, old.kind, location)
            for mixin in old_mixins.difference(entity.mixins):
                _discard(self._by_mixin, mixin, location)
            if old.source is not None and old.source != entity.source:
                _discard(self._by_source, old.source, location)
            if old.target is not None and old.target != entity.target:
                _discard(self._by_target, old.target, location)
        self._entities[location] = entity
        self._by_id[entity.entity_id] = location
        _add(self._by_kind, entity.kind, location, seq)
        for mixin in entity.mixins:
            if mixin not in old_mixins:
                _add(self._by_mixin, mixin, location, seq)
        source, target = entity.source, entity.target
        if source is not None:
            _add(self._by_source, source, location, seq)
        if target is not None:
            _add(self._by_target, target, location, seq)

    def _remove(self, location: str) -> None:
        old = self._entities.pop(location, None)
        if old is not None:
            self._unindex(old)
            del self._seqs[location]

    def _unindex(self, entity: Entity) -> None:
        location = entity.location
        if self._by_id.get(entity.entity_id) == location:
            del self._by_id[entity.entity_id]
        _discard(self._by_kind, entity.kind, location)
        for mixin in entity.mixins:
            _discard(self._by_mixin, mixin, location)
        source, target = entity.source, entity.target
        if source is not None:
            _discard(self._by_source, source, location)
        if target is not None:
            _discard(self._by_target, target, location)

    # ---- reads (immutable values, shared with the indexes) ---------------------------------

    def counts(self, state_attribute: Callable[[str], str | None]) -> list[tuple[str, str, int]]:
        """(kind, state, count) of every stored entity, at once (no await: metrics scrapes)."""
        found: Counter[tuple[str, str]] = Counter()
        for entity in self._entities.values():
            name = state_attribute(entity.kind)
            value = entity.attributes.get(name) if name else None
            found[(entity.kind, value if isinstance(value, str) else "")] += 1
        return [(kind, state, count) for (kind, state), count in found.items()]


    async def get(self, location: str) -> Entity | None:
        """The entity at this location, or None."""
        return self._entities.get(location)

    async def get_by_id(self, entity_id: str) -> Entity | None:
        """The entity whose occi.core.id is this, or None."""
        location = self._by_id.get(entity_id)
        return None if location is None else self._entities.get(location)

    async def query(self, query: EntityQuery) -> list[Entity]:
        """Entities matching the query, in creation order, one page."""
        entities = self._entities
        return [entities[location] for location in self._page(query)]

    async def query_locations(self, query: EntityQuery) -> list[str]:
        """Locations of the entities matching the query, in creation order, one page."""
        return list(self._page(query))

    async def count(self, query: EntityQuery) -> int:
        """How many entities match (offset and limit ignored)."""
        candidates, exact = self._candidates(query)
        if exact and isinstance(candidates, dict):
            return len(candidates)
        return sum(1 for _ in self._filtered(query, candidates, exact))

    async def links_from(self, sources: Sequence[str]) -> dict[str, list[Entity]]:
        """Links whose occi.core.source is one of these locations, grouped by source."""
        found: dict[str, list[Entity]] = {}
        for source in sources:
            bucket = self._by_source.get(source)
            if bucket is not None and source not in found:
                found[source] = [self._entities[loc] for loc in bucket.ordered(self._seqs)]
        return found

    async def links_to(self, target: str) -> list[Entity]:
        """Links whose occi.core.target is this location, in creation order."""
        bucket = self._by_target.get(target)
        if bucket is None:
            return []
        return [self._entities[loc] for loc in bucket.ordered(self._seqs)]

    async def user_mixins(self) -> list[Mixin]:
        """Every user-defined mixin, in creation order."""
        return list(self._mixins.values())

    async def get_operation(self, op_id: str) -> Operation | None:
        """One operation, or None (shared: never mutate it)."""
        return self._operations.get(op_id)

    async def operations(self, state: str | None = None, location: str | None = None,
                         tenant: str | None = None) -> list[Operation]:
        """Operations, optionally only those in `state`, on `location` or of `tenant`, oldest first."""
        found = [
            op
            for op in self._operations.values()
            if (state is None or op.state == state) and (location is None or op.location == location)
            and (tenant is None or op.tenant == tenant)
        ]
        found.sort(key=lambda op: op.created)  # stable: equal times keep insertion order
        return found

    async def pending_operations(self, location: str | None = None) -> list[Operation]:
        """Every queued or running operation (of one location), in `seq` order (the order they were accepted)."""
        found = [op for op in self._operations.values()
                 if op.state in PENDING_STATES and (location is None or op.location == location)]
        found.sort(key=lambda op: op.seq)
        return found

    # ---- change events (issue 12) ---------------------------------------------------------

    async def events_after(self, after: int, limit: int = 1000) -> EventPage:
        """Up to `limit` events with ids above `after`, oldest first."""
        return self._event_log.after(after, limit)

    def listen_events(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` after each commit that added events; returns the function that stops it."""
        return self._event_log.listen(callback)

    # ---- query planning -------------------------------------------------------------------

    def _candidates(self, query: EntityQuery) -> tuple[Iterable[str], bool]:
        """The smallest ordered source of locations for the query, and whether it is the answer.

        `exact` is True when no further filter is needed (only the index itself was asked for).
        """
        seqs = self._seqs
        has_filter = (query.prefix is not None or query.tenant is not None or bool(query.attributes)
                      or query.backend is not None or query.after is not None)
        if query.mixin is not None:
            bucket = self._by_mixin.get(query.mixin)
            items = bucket.ordered(seqs) if bucket is not None else {}
            return items, not has_filter and query.kinds is None
        if query.kinds is not None:
            kinds = list(dict.fromkeys(query.kinds))
            buckets = [self._by_kind[kind].ordered(seqs) for kind in kinds if kind in self._by_kind]
            if not buckets:
                return {}, True
            if len(buckets) == 1:
                return buckets[0], not has_filter
            return heapq.merge(*buckets, key=seqs.__getitem__), not has_filter
        return self._entities, not has_filter

    def _filtered(self, query: EntityQuery, candidates: Iterable[str], exact: bool) -> Iterator[str]:
        if exact:
            return iter(candidates)
        entities = self._entities
        kinds = set(query.kinds) if query.kinds is not None and query.mixin is not None else None
        prefix, tenant, wanted, backend = query.prefix, query.tenant, query.attributes, query.backend
        after = -1
        if query.after is not None:
            after = self._seqs.get(query.after, -1)
            if query.after not in self._seqs:
                return iter(())
        seqs = self._seqs

        def keep(location: str) -> bool:
            if prefix is not None and not location.startswith(prefix):
                return False
            if after >= 0 and seqs[location] <= after:
                return False
            if kinds is None and tenant is None and not wanted and backend is None:
                return True
            entity = entities[location]
            if backend is not None and entity.backend_id != backend:
                return False
            if any(attribute_text(entity.attributes.get(name)) != value for name, value in wanted):
                return False
            return (kinds is None or entity.kind in kinds) and (tenant is None or entity.tenant == tenant)

        return filter(keep, candidates)

    def _page(self, query: EntityQuery) -> Iterable[str]:
        candidates, exact = self._candidates(query)
        offset = max(query.offset, 0)
        limit = query.limit
        if exact and isinstance(candidates, dict):
            keys = list(candidates)
            return keys[offset:] if limit is None else keys[offset : offset + max(limit, 0)]
        matching = self._filtered(query, candidates, exact)
        stop = None if limit is None else offset + max(limit, 0)
        return itertools.islice(matching, offset, stop)

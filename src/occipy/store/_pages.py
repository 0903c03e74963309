"""Page anchors: deep pages (`?page=&number=`) without walking every entity before them (issue 11).

`ORDER BY seq LIMIT k OFFSET n` makes the database walk n index entries: 212 ms for the page at
n = 500,000 of 1M computes on PostgreSQL. A store keeps, per scope (a query whose membership only
depends on what an entity never changes: its kinds, tenant and location prefix), the `seq` of
every `step`-th member in creation order; a page at offset n then starts at the anchor of n // step
and skips fewer than `step` rows: `... AND seq >= anchor ORDER BY seq LIMIT k OFFSET n % step`.

Why anchors stay right (docs/scaleout.md, D-PAGE-ANCHORS): a new entity always gets a `seq` above
every visible one (SQLite: one writer, rowid max + 1; PostgreSQL: every write transaction takes
`sql_events.EVENTS_LOCK` before it inserts, so transactions commit in the order of their seqs), so
inserts only append after the last member and move no member's position; an entity keeps its kind,
tenant and location for life (the service refuses a kind change, the location is the row's key).
Only a delete moves positions, and only of the members after it: every write that deletes
entities adds one to `store_state.deletions` and logs the smallest seq it deleted
(`entity_deletions`), in its transaction; the walk and the page statement read both from the
snapshot of their rows. Anchors made under another value keep the part below every seq deleted
since (`repaired`), the rest is walked again and the page asked again. Pure: no I/O here;
`store.sql` runs the statements. Imports `store.base`, `store._reads`, `store.schema` and
sqlalchemy.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from occipy.store._reads import where
from occipy.store.base import EntityQuery
from occipy.store.schema import entities, entity_deletions, store_state

# Every this-many members of a scope, one anchor: a page skips fewer rows than this, and 1M members
# cost 1,000 integers per scope.
ANCHOR_STEP: Final = 1000
# Scopes (kinds x tenant x prefix) whose anchors a process keeps, least recently used first out.
MAX_SCOPES: Final = 64


@dataclass(frozen=True, slots=True)
class Anchors:
    """The seqs of members 0, step, 2*step, ... of one scope, as the database held them when
    `store_state.deletions` was `deletions`. Frozen: a request keeps the list it started with
    while another one replaces it."""

    deletions: int
    seqs: tuple[int, ...]

    def start(self, offset: int, step: int) -> tuple[int | None, int]:
        """Where a page at `offset` starts: (the anchor seq or None for the first row, the rows to skip)."""
        index = min(offset // step, len(self.seqs) - 1)
        if index < 0:
            return None, offset
        return self.seqs[index], offset - index * step


def scope_of(query: EntityQuery) -> EntityQuery | None:
    """The query's membership alone, if it depends only on columns an entity never changes.

    A mixin, an attribute value or a backend id change with updates (an update would move
    positions without a delete), and `after` is already a keyset page: None, such a query pages
    with a plain OFFSET.
    """
    if query.mixin is not None or query.attributes or query.backend is not None or query.after is not None:
        return None
    kinds = None if query.kinds is None else tuple(sorted(set(query.kinds)))
    return dataclasses.replace(query, kinds=kinds, offset=0, limit=None)


def wanted_index(offset: int, step: int) -> int:
    """The index of the anchor a page at `offset` starts from."""
    return offset // step


def walk_statement(scope: EntityQuery, dialect: str, held: Anchors | None, index: int, step: int) -> Any:
    """The anchors from the last one held (or from the first member) up to anchor `index`, with
    the deletion counter of the same snapshot: walks (index - last) * step index entries, once.

    A recursive query: each anchor is the row `step` entries after the one before (`seq >= prev
    ORDER BY seq LIMIT 1 OFFSET step`), which reads only the `(kind, seq)` index (PostgreSQL: an
    index-only scan once the table is vacuumed). Measured on 1M rows in PostgreSQL for the anchors
    of offset 499,000: 231 ms before a VACUUM (what the plain OFFSET page costs), 64 ms after; the
    same walk as `row_number()` over the first rows took 386 and 195 ms.

    Rows: `deletions`, `first_logged`, `lowest_deleted` (`_state_columns`, since `held` was made)
    and `seq`, None when the scope has no member there; seqs in order.
    """
    seq = entities.c.seq
    scope_conditions = where(scope, dialect)
    if held is not None and held.seqs:
        first_index = len(held.seqs) - 1
        first: Any = sa.cast(sa.literal(held.seqs[-1]), seq.type)
    else:
        first_index = 0
        first = sa.select(seq).where(*scope_conditions).order_by(seq).limit(1).scalar_subquery()
    walk = sa.select(sa.literal_column("0").label("n"), first.label("seq")).cte("page_anchors", recursive=True)
    following = (sa.select(seq).where(*scope_conditions, seq >= walk.c.seq)
                 .order_by(seq).limit(1).offset(step).scalar_subquery())
    walk = walk.union_all(sa.select(walk.c.n + sa.literal_column("1"), following)
                          .where(walk.c.n < index - first_index, walk.c.seq.is_not(None)))
    marks = sa.select(walk.c.seq).where(walk.c.seq.is_not(None)).subquery()
    return _with_deletions(marks, marks.c.seq, since=held.deletions if held is not None else None)


def extended(held: Anchors | None, deletions: int, seqs: Sequence[int]) -> Anchors | None:
    """The anchors after a walk from `held` found `seqs` under `deletions`; None when they disagree
    (the caller checked the counter with `repaired` first: the walk did not start at `held`'s last
    anchor, which cannot happen while the counter is the same)."""
    if held is None or not held.seqs:
        return Anchors(deletions, tuple(seqs))
    if deletions != held.deletions or not seqs or seqs[0] != held.seqs[-1]:
        return None
    return Anchors(deletions, held.seqs + tuple(seqs[1:]))


def page_statement(scope: EntityQuery, dialect: str, columns: Sequence[Any], anchored: bool, limited: bool) -> Any:
    """One page of `scope` from an anchor, built once per scope and shape: the values are the
    parameters `start` (the anchor's seq, when `anchored`), `skip`, `size` (when `limited`) and
    `since` (the anchors' counter).

    Each row carries the deletion counter and what the deletion log says since `since`, read in
    the page's own snapshot (uncorrelated subqueries: evaluated once). An empty page needs no
    check: with anchors some deletes behind, the page starts at or before the right position (a
    delete only moves members earlier), so nothing there means nothing at the right one either.
    Rows: the columns, `seq`, `deletions`, `first_logged`, `lowest_deleted`.
    """
    seq = entities.c.seq
    conditions = where(scope, dialect)
    if anchored:
        conditions.append(seq >= sa.bindparam("start", type_=sa.BigInteger))
    statement = (sa.select(*columns, seq, *_state_columns(sa.bindparam("since", type_=sa.BigInteger)))
                 .where(*conditions).order_by(seq).offset(sa.bindparam("skip", type_=sa.Integer)))
    if limited:
        statement = statement.limit(sa.bindparam("size", type_=sa.Integer))
    return statement


def _state_columns(since: Any) -> tuple[Any, ...]:
    """The deletion counter, and from the deletion log the first write logged after `since` and the
    smallest seq deleted since (`repaired`); both NULL when `since` is NULL (nothing to repair)."""
    after = entity_deletions.c.deletion > since
    return (sa.select(store_state.c.deletions).where(store_state.c.id == 1).scalar_subquery().label("deletions"),
            sa.select(sa.func.min(entity_deletions.c.deletion)).where(after).scalar_subquery().label("first_logged"),
            sa.select(sa.func.min(entity_deletions.c.seq)).where(after).scalar_subquery().label("lowest_deleted"))


def _with_deletions(subquery: Any, order: Any, *, since: int | None = None) -> Any:
    """The walk's anchors (a subquery) with the state of `_state_columns`, one row of NULL anchors
    when there is none (the walk must return the counter even then)."""
    state = sa.select(*_state_columns(sa.literal(since, sa.BigInteger))).subquery()
    return (sa.select(state.c.deletions, state.c.first_logged, state.c.lowest_deleted, order)
            .select_from(state.outerjoin(subquery, sa.true()))
            .order_by(order))


def repaired(held: Anchors, deletions: int, first_logged: int | None, lowest_deleted: int | None) -> Anchors | None:
    """The anchors of `held` that are still right under `deletions`, or None (walk from the start).

    A member's position only moves when a member before it is deleted: the anchors below the
    smallest seq deleted since `held` was made keep their positions (inserts append). That needs
    every write since in the log (it is pruned from the oldest: a process too far behind walks
    again). An unchanged counter keeps everything.
    """
    if deletions == held.deletions:
        return held
    if deletions < held.deletions or first_logged != held.deletions + 1 or lowest_deleted is None:
        return None
    return Anchors(deletions, tuple(seq for seq in held.seqs if seq < lowest_deleted))


class AnchorCache:
    """A process's anchors, per scope, at most `size` scopes (least recently used dropped)."""

    def __init__(self, step: int = ANCHOR_STEP, size: int = MAX_SCOPES) -> None:
        if step < 1:
            raise ValueError(f"the anchor step must be at least 1, not {step}")
        self.step = step
        self.size = size
        self._held: OrderedDict[EntityQuery, Anchors] = OrderedDict()

    def get(self, scope: EntityQuery) -> Anchors | None:
        held = self._held.get(scope)
        if held is not None:
            self._held.move_to_end(scope)
        return held

    def keep(self, scope: EntityQuery, anchors: Anchors) -> None:
        """Remember the longer list: two requests may extend the same scope at once."""
        held = self._held.get(scope)
        # The counter only grows: a list made under a larger value is the newer one.
        if held is None or (anchors.deletions, len(anchors.seqs)) >= (held.deletions, len(held.seqs)):
            self._held[scope] = anchors
        self._held.move_to_end(scope)
        while len(self._held) > self.size:
            self._held.popitem(last=False)

    def drop(self, scope: EntityQuery, stale: Anchors) -> None:
        """Forget the anchors of a scope, unless another request already replaced `stale`."""
        if self._held.get(scope) is stale:
            del self._held[scope]

    def __len__(self) -> int:
        return len(self._held)

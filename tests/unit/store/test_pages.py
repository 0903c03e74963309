"""Deep pages through page anchors (issue 11, store/_pages.py) on every SQL engine in TEST_DATABASE_URLS.

The stores here keep an anchor every STEP members (1000 in a server), so that a few dozen entities
have many anchors. Every page, at every depth, must be what a plain OFFSET over the same rows
gives, whatever creates and deletes came before (seeded random sequences), also when another store
on the same PostgreSQL database (another worker) deletes; a database made before the `deletions`
counter existed is migrated.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from occipy.model.catalogue import COMPUTE, STORAGE
from occipy.model.entity import Entity
from occipy.store import _pages as pages
from occipy.store import _reads as reads
from occipy.store.base import Batch, EntityQuery
from occipy.store.schema import entities
from occipy.store.sql import SqlStore, make_engine
from tests.unit.store.conftest import StoreFactory

STEP = 3
PageOpener = Callable[..., Awaitable[SqlStore]]


@pytest.fixture
def page_opener(sql_stores: StoreFactory) -> tuple[str, PageOpener]:
    """Opens SqlStores with a small anchor step; every call opens another store on the same database."""

    async def open_store(step: int = STEP) -> SqlStore:
        store = await sql_stores(page_anchor_step=step)
        assert isinstance(store, SqlStore)
        return store

    return sql_stores.url, open_store


def entity(n: int, kind: str = COMPUTE, tenant: str = "default") -> Entity:
    path = "compute" if kind == COMPUTE else "storage"
    return Entity(kind=kind, entity_id=f"e-{n}", location=f"/{path}/e-{n}", tenant=tenant,
                  attributes={"occi.core.id": f"e-{n}"})


async def plain(store: SqlStore, query: EntityQuery) -> list[str]:
    """The same page with a plain OFFSET (the statement the store sent before anchors)."""
    rows = await store._rows(reads.select_entities(query, store.dialect, (entities.c.location,)), {})
    return [row.location for row in rows]


SCOPES = (
    EntityQuery(kinds=(COMPUTE,)),
    EntityQuery(kinds=(STORAGE, COMPUTE)),
    EntityQuery(kinds=(COMPUTE,), tenant="t-b"),
    EntityQuery(prefix="/storage/"),
    EntityQuery(),
)


async def check_every_page(store: SqlStore, model: dict[str, Entity], limits: tuple[int | None, ...] = (1, 2, 7)) -> int:
    """Every page of every scope against plain OFFSET and against the model; returns the pages checked."""
    checked = 0
    for scope in SCOPES:
        members = [e.location for e in model.values()
                   if (scope.kinds is None or e.kind in scope.kinds)
                   and (scope.tenant is None or e.tenant == scope.tenant)
                   and (scope.prefix is None or e.location.startswith(scope.prefix))]
        for limit in limits:
            for offset in range(len(members) + STEP + 2):
                query = EntityQuery(kinds=scope.kinds, tenant=scope.tenant, prefix=scope.prefix,
                                    offset=offset, limit=limit)
                wanted = members[offset:offset + limit] if limit is not None else members[offset:]
                assert await plain(store, query) == wanted, (scope, offset, limit)
                assert await store.query_locations(query) == wanted, (scope, offset, limit)
                found = await store.query(query)
                assert [e.location for e in found] == wanted, (scope, offset, limit)
                checked += 1
    return checked


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_page_equals_plain_offset_after_random_creates_and_deletes(
        page_opener: tuple[str, PageOpener], seed: int) -> None:
    _, opener = page_opener
    store = await opener()
    rng = random.Random(seed)
    model: dict[str, Entity] = {}  # creation order
    made = 0
    for _ in range(7):
        for _ in range(rng.randint(1, 3)):
            batch = Batch()
            if model and rng.random() < 0.6:  # deletes anywhere: first, last, the middle
                batch.delete = rng.sample(list(model), k=min(len(model), rng.randint(1, 4)))
                for location in batch.delete:
                    model.pop(location)
            for _ in range(rng.randint(1, 12)):
                made += 1
                new = entity(made, rng.choice((COMPUTE, STORAGE)), rng.choice(("default", "t-b")))
                batch.new.append(new)
                model[new.location] = new
            await store.commit(batch)
        await check_every_page(store, model, limits=(2, 5))
    assert len(store._anchors) > 0  # the deep pages went through anchors


async def test_a_delete_before_an_anchor_is_seen_by_the_next_page(page_opener: tuple[str, PageOpener]) -> None:
    _, opener = page_opener
    store = await opener()
    await store.commit(Batch(new=[entity(n) for n in range(20)]))
    deep = EntityQuery(kinds=(COMPUTE,), offset=10, limit=3)
    assert await store.query_locations(deep) == [f"/compute/e-{n}" for n in (10, 11, 12)]
    made = store._anchors.get(pages.scope_of(deep))  # type: ignore[arg-type]
    assert made is not None and len(made.seqs) == 10 // STEP + 1
    await store.commit(Batch(delete=["/compute/e-0", "/compute/e-11"]))
    assert await store.query_locations(deep) == [f"/compute/e-{n}" for n in (12, 13, 14)]
    assert (await store.query(deep))[0].location == "/compute/e-12"


async def test_a_delete_keeps_the_anchors_before_it(page_opener: tuple[str, PageOpener],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The anchors below the smallest seq deleted since they were made keep their positions."""
    _, opener = page_opener
    store = await opener()
    walks: list[int] = []  # how many anchors each walk started from
    walk = pages.walk_statement

    def spy(scope: EntityQuery, dialect: str, held: pages.Anchors | None, index: int, step: int) -> Any:
        walks.append(len(held.seqs) if held is not None else 0)
        return walk(scope, dialect, held, index, step)

    monkeypatch.setattr(pages, "walk_statement", spy)
    await store.commit(Batch(new=[entity(n) for n in range(30)]))
    deep = EntityQuery(kinds=(COMPUTE,), offset=24, limit=2)
    scope = pages.scope_of(deep)
    assert scope is not None
    assert await store.query_locations(deep) == ["/compute/e-24", "/compute/e-25"]
    made = store._anchors.get(scope)
    assert made is not None and len(made.seqs) == 9  # e-0, e-3, ... e-24
    await store.commit(Batch(delete=["/compute/e-16", "/compute/e-26"]))
    assert await store.query_locations(deep) == ["/compute/e-25", "/compute/e-27"]
    now = store._anchors.get(scope)
    assert now is not None and now.deletions == made.deletions + 1
    assert now.seqs[:6] == made.seqs[:6]  # e-0 ... e-15: before e-16
    assert now.seqs[6:] != made.seqs[6:]  # walked again from e-15: e-19, e-22, e-25
    assert walks == [0, 6]
    # Two deletes behind: the smallest of both counts.
    await store.commit(Batch(delete=["/compute/e-20"]))
    await store.commit(Batch(delete=["/compute/e-4"]))
    assert await store.query_locations(deep) == ["/compute/e-28", "/compute/e-29"]
    after = store._anchors.get(scope)
    assert after is not None and after.seqs[:2] == made.seqs[:2]
    assert walks == [0, 6, 2]


async def test_without_the_deletion_log_the_anchors_are_walked_again(page_opener: tuple[str, PageOpener]) -> None:
    url, opener = page_opener
    store = await opener()
    await store.commit(Batch(new=[entity(n) for n in range(20)]))
    deep = EntityQuery(kinds=(COMPUTE,), offset=15, limit=2)
    assert await store.query_locations(deep) == ["/compute/e-15", "/compute/e-16"]
    await store.commit(Batch(delete=["/compute/e-2"]))
    engine = make_engine(url)
    try:
        with engine.begin() as conn:  # pruned (or never written): the log misses that delete
            conn.execute(sa.text("DELETE FROM entity_deletions"))
    finally:
        engine.dispose()
    await store.commit(Batch(delete=["/compute/e-17"]))
    assert await store.query_locations(deep) == ["/compute/e-16", "/compute/e-18"]


def test_a_repair_needs_every_deletion_since() -> None:
    held = pages.Anchors(4, (10, 20, 30, 40))
    assert pages.repaired(held, 4, None, None) is held
    assert pages.repaired(held, 6, 5, 30) == pages.Anchors(6, (10, 20))
    assert pages.repaired(held, 6, 5, 5) == pages.Anchors(6, ())
    assert pages.repaired(held, 6, 6, 35) is None  # deletion 5 is no longer logged
    assert pages.repaired(held, 6, None, None) is None
    assert pages.repaired(held, 3, None, None) is None


async def test_inserts_keep_the_anchors(page_opener: tuple[str, PageOpener]) -> None:
    """Inserts only append: the anchors made before them are kept (no walk again)."""
    _, opener = page_opener
    store = await opener()
    await store.commit(Batch(new=[entity(n) for n in range(12)]))
    deep = EntityQuery(kinds=(COMPUTE,), offset=9, limit=5)
    assert await store.query_locations(deep) == [f"/compute/e-{n}" for n in (9, 10, 11)]
    scope = pages.scope_of(deep)
    assert scope is not None
    made = store._anchors.get(scope)
    await store.commit(Batch(new=[entity(n) for n in range(12, 20)]))
    assert await store.query_locations(deep) == [f"/compute/e-{n}" for n in range(9, 14)]
    assert store._anchors.get(scope) is made
    # A deeper page extends them from the last one.
    deeper = EntityQuery(kinds=(COMPUTE,), offset=16, limit=5)
    assert await store.query_locations(deeper) == [f"/compute/e-{n}" for n in range(16, 20)]
    extended = store._anchors.get(scope)
    assert extended is not None and made is not None and extended.seqs[:len(made.seqs)] == made.seqs
    assert len(extended.seqs) == 16 // STEP + 1


async def test_concurrent_deep_pages_walk_once(page_opener: tuple[str, PageOpener],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _, opener = page_opener
    store = await opener()
    await store.commit(Batch(new=[entity(n) for n in range(40)]))
    walks: list[int] = []
    walk = pages.walk_statement

    def spy(scope: EntityQuery, dialect: str, held: pages.Anchors | None, index: int, step: int) -> Any:
        walks.append(index)
        return walk(scope, dialect, held, index, step)

    monkeypatch.setattr(pages, "walk_statement", spy)
    offsets = [30, 31, 32, 20, 21]  # anchor 10, and below it
    found = await asyncio.gather(*(store.query_locations(EntityQuery(kinds=(COMPUTE,), offset=offset, limit=1))
                                   for offset in offsets))
    assert found == [[f"/compute/e-{offset}"] for offset in offsets]
    assert walks == [10]


async def test_a_page_past_the_end_is_empty(page_opener: tuple[str, PageOpener]) -> None:
    _, opener = page_opener
    store = await opener()
    await store.commit(Batch(new=[entity(n) for n in range(7)]))
    assert await store.query_locations(EntityQuery(kinds=(COMPUTE,), offset=30, limit=2)) == []
    assert await store.query(EntityQuery(kinds=(STORAGE,), offset=30, limit=2)) == []
    await store.commit(Batch(new=[entity(n) for n in range(7, 40)]))
    assert await store.query_locations(EntityQuery(kinds=(COMPUTE,), offset=30, limit=2)) == \
        ["/compute/e-30", "/compute/e-31"]


async def test_queries_whose_members_change_with_updates_use_a_plain_offset() -> None:
    for query in (EntityQuery(mixin="m", offset=5000), EntityQuery(backend="b", offset=5000),
                  EntityQuery(attributes=(("a", "b"),), offset=5000), EntityQuery(after="/x", offset=5000)):
        assert pages.scope_of(query) is None
    assert pages.scope_of(EntityQuery(kinds=("b", "a", "b"), tenant="t", offset=5000, limit=9)) == \
        EntityQuery(kinds=("a", "b"), tenant="t")


def test_the_cache_keeps_the_newest_anchors_and_a_bounded_number_of_scopes() -> None:
    cache = pages.AnchorCache(step=10, size=2)
    a, b, c = EntityQuery(kinds=("a",)), EntityQuery(kinds=("b",)), EntityQuery(kinds=("c",))
    cache.keep(a, pages.Anchors(1, (1, 20)))
    cache.keep(a, pages.Anchors(1, (1,)))  # a shorter list of the same counter: a slower request
    assert cache.get(a) == pages.Anchors(1, (1, 20))
    cache.keep(a, pages.Anchors(0, (1, 20, 30)))  # made before a delete the kept list has seen
    assert cache.get(a) == pages.Anchors(1, (1, 20))
    cache.keep(b, pages.Anchors(1, (2,)))
    cache.keep(c, pages.Anchors(1, (3,)))
    assert len(cache) == 2 and cache.get(a) is None
    assert pages.Anchors(1, (5, 50)).start(25, 10) == (50, 15)  # only two anchors held
    assert pages.Anchors(1, (5, 50, 500)).start(21, 10) == (500, 1)
    assert pages.Anchors(1, ()).start(21, 10) == (None, 21)


@pytest.fixture
async def two(postgres_database: Any) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    first = SqlStore(postgres_database.url, page_anchor_step=STEP)
    second = SqlStore(postgres_database.url, page_anchor_step=STEP)
    await first.open()
    await second.open()
    yield first, second
    await first.close()
    await second.close()


async def test_a_delete_by_another_worker_is_seen_by_the_next_deep_page(two: tuple[SqlStore, SqlStore]) -> None:
    first, second = two
    await second.commit(Batch(new=[entity(n) for n in range(20)]))
    deep = EntityQuery(kinds=(COMPUTE,), offset=12, limit=2)
    assert await first.query_locations(deep) == ["/compute/e-12", "/compute/e-13"]
    await second.commit(Batch(delete=["/compute/e-1"]))
    assert await first.query_locations(deep) == ["/compute/e-13", "/compute/e-14"]
    await second.commit(Batch(new=[entity(n) for n in range(20, 25)]))  # another worker appends
    assert await first.query_locations(EntityQuery(kinds=(COMPUTE,), offset=20, limit=9)) == \
        [f"/compute/e-{n}" for n in range(21, 25)]
    rng = random.Random(7)
    model = {e.location: e for e in [entity(n) for n in range(25)] if e.location != "/compute/e-1"}
    made = 25
    for _ in range(6):  # the other worker writes, this one reads every page
        batch = Batch(new=[entity(made + n, rng.choice((COMPUTE, STORAGE))) for n in range(rng.randint(0, 5))])
        made += len(batch.new)
        batch.delete = rng.sample(sorted(model), k=rng.randint(0, 3))
        for location in batch.delete:
            model.pop(location)
        model.update((e.location, e) for e in batch.new)
        await second.commit(batch)
        await check_every_page(first, model, limits=(3,))


async def test_a_database_without_the_deletions_counter_is_migrated(page_opener: tuple[str, PageOpener]) -> None:
    url, opener = page_opener
    store = await opener()
    await store.commit(Batch(new=[entity(n) for n in range(15)]))
    await store.close()
    engine = make_engine(url)
    try:
        with engine.begin() as conn:  # the store_state of the release before issue 11's anchors
            conn.execute(sa.text("ALTER TABLE store_state DROP COLUMN deletions"))
            conn.execute(sa.text("DROP TABLE entity_deletions"))
        assert "deletions" not in {c["name"] for c in sa.inspect(engine).get_columns("store_state")}
    finally:
        engine.dispose()
    store = await opener()
    deep = EntityQuery(kinds=(COMPUTE,), offset=10, limit=2)
    assert await store.query_locations(deep) == ["/compute/e-10", "/compute/e-11"]
    await store.commit(Batch(delete=["/compute/e-3"]))
    assert await store.query_locations(deep) == ["/compute/e-11", "/compute/e-12"]


async def test_the_deletion_log_keeps_the_latest_writes(page_opener: tuple[str, PageOpener],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from occipy.store import _writes

    monkeypatch.setattr(_writes, "KEEP_DELETIONS", 5)
    monkeypatch.setattr(_writes, "PRUNE_DELETIONS_EVERY", 3)
    url, opener = page_opener
    store = await opener()
    await store.commit(Batch(new=[entity(n) for n in range(30)]))
    deep = EntityQuery(kinds=(COMPUTE,), offset=12, limit=2)
    assert await store.query_locations(deep) == ["/compute/e-12", "/compute/e-13"]
    for n in range(10):
        await store.commit(Batch(delete=[f"/compute/e-{29 - n}", "/compute/nothing"]))
    await store.commit(Batch(delete=["/compute/nothing"]))  # deletes nothing: not counted
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT deletions FROM store_state")).scalar_one() == 10
            logged = conn.execute(sa.text("SELECT deletion FROM entity_deletions ORDER BY deletion")).scalars().all()
    finally:
        engine.dispose()
    assert logged == [5, 6, 7, 8, 9, 10]  # pruned at 9: up to 9 - 5
    assert await store.query_locations(deep) == ["/compute/e-12", "/compute/e-13"]  # walked again

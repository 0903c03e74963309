"""What several processes on one store rely on (docs/scaleout.md): insert-only creates, index-backed
filters and keyset pages, per-location pending work, and on PostgreSQL, two stores on one database
(two server processes): read-your-writes through the cache, claims, the user-mixin generation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from occipy.errors import Conflict
from occipy.model.catalogue import COMPUTE
from occipy.store.base import Batch, EntityQuery, Operation, Shared, Store
from occipy.store.sql import SqlStore
from tests.unit.store.test_store import Opener, compute, opener, user_mixin  # noqa: F401  (fixture)


async def test_new_entities_must_be_new(opener: Opener) -> None:  # noqa: F811  (the fixture)
    store = await opener()
    await store.commit(Batch(new=[compute(1)]))
    with pytest.raises(Conflict):
        await store.commit(Batch(new=[compute(1, **{"occi.core.title": "second"})]))
    with pytest.raises(Conflict):  # another location, the same id
        await store.commit(Batch(new=[compute(1).evolve(location="/compute/other")]))
    got = await store.get("/compute/c-1")
    assert got is not None and "occi.core.title" not in got.attributes
    # A put after a new one updates it; a delete frees the location for a new one.
    await store.commit(Batch(put=[compute(1, **{"occi.core.title": "x"})]))
    await store.commit(Batch(delete=["/compute/c-1"], new=[compute(1, **{"occi.core.title": "y"})]))
    got = await store.get("/compute/c-1")
    assert got is not None and got.attributes["occi.core.title"] == "y"


async def test_attribute_backend_and_keyset_filters(opener: Opener) -> None:  # noqa: F811  (the fixture)
    store = await opener()
    await store.commit(Batch(put=[compute(n, **{"occi.core.title": f"t{n % 3}", "occi.compute.hostname": f"h{n}",
                                                "weird name": "w"}).evolve(backend_id=f"b{n}")
                                  for n in range(9)]))
    titled = EntityQuery(kinds=(COMPUTE,), attributes=(("occi.core.title", "t1"),))
    assert await store.query_locations(titled) == ["/compute/c-1", "/compute/c-4", "/compute/c-7"]
    assert await store.count(titled) == 3
    page = EntityQuery(kinds=(COMPUTE,), attributes=(("occi.core.title", "t1"),), offset=1, limit=1)
    assert await store.query_locations(page) == ["/compute/c-4"]
    both = EntityQuery(attributes=(("occi.core.title", "t1"), ("occi.compute.hostname", "h4")))
    assert await store.query_locations(both) == ["/compute/c-4"]
    # A name no index can have is still answered.
    assert len(await store.query_locations(EntityQuery(attributes=(("weird name", "w"),)))) == 9
    assert await store.query_locations(EntityQuery(backend="b5")) == ["/compute/c-5"]
    assert await store.query_locations(EntityQuery(after="/compute/c-6")) == ["/compute/c-7", "/compute/c-8"]
    assert await store.query_locations(EntityQuery(after="/compute/c-6", limit=1)) == ["/compute/c-7"]


async def test_pending_operations_of_one_location(opener: Opener) -> None:  # noqa: F811  (the fixture)
    store = await opener()
    ops = [Operation(f"op-{n}", f"/compute/c-{n % 2}", "start", state=state, seq=10 - n)
           for n, state in enumerate(["queued", "running", "queued", "succeeded"])]
    await store.commit(Batch(put_operations=ops))
    assert [op.op_id for op in await store.pending_operations("/compute/c-0")] == ["op-2", "op-0"]
    assert [op.op_id for op in await store.pending_operations()] == ["op-2", "op-1", "op-0"]


@pytest.fixture
async def two(postgres_database: Any) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    first, second = SqlStore(postgres_database.url), SqlStore(postgres_database.url)
    await first.open()
    await second.open()
    yield first, second
    await first.close()
    await second.close()


async def test_a_write_by_one_store_is_read_by_the_other(two: tuple[SqlStore, SqlStore]) -> None:
    first, second = two
    assert isinstance(first, Shared) and first.shared
    await first.commit(Batch(put=[compute(1, **{"occi.core.title": "a"})]))
    seen = await second.get("/compute/c-1")
    assert seen is not None and seen.attributes["occi.core.title"] == "a"
    assert await second.get("/compute/c-1") is seen  # unchanged: the same (cached) object
    await first.commit(Batch(put=[compute(1, **{"occi.core.title": "b"})]))
    changed = await second.get("/compute/c-1")
    assert changed is not None and changed.attributes["occi.core.title"] == "b"
    assert [e.attributes["occi.core.title"] for e in await second.query(EntityQuery())] == ["b"]
    await first.commit(Batch(delete=["/compute/c-1"]))
    assert await second.get("/compute/c-1") is None


async def test_claims_are_exclusive_and_end_with_their_store(postgres_database: Any) -> None:
    first, second = SqlStore(postgres_database.url), SqlStore(postgres_database.url)
    await first.open()
    await second.open()
    try:
        assert await first.claim("/compute/c-1")
        assert await first.claim("/compute/c-1")  # held already
        assert not await second.claim("/compute/c-1")
        assert await second.claim("/compute/c-2")
        await first.release("/compute/c-1")
        assert await second.claim("/compute/c-1")
        assert not await first.claim("/compute/c-1")
        await second.close()  # its session ends: every claim with it (once the server saw it end)
        for _ in range(100):
            if await first.claim("/compute/c-1"):
                break
            await asyncio.sleep(0.02)
        assert await first.claim("/compute/c-1") and await first.claim("/compute/c-2")
    finally:
        await first.close()
        await second.close()


async def test_the_other_store_is_told_of_changed_user_mixins(two: tuple[SqlStore, SqlStore]) -> None:
    first, second = two
    calls: list[int] = []

    async def changed() -> None:
        calls.append(len(await second.user_mixins()))

    second.watch_mixins(changed)
    await second.get("/nothing")
    assert calls == []
    await first.commit(Batch(put_mixins=[user_mixin("a")]))
    await second.get("/nothing")  # the first read after the change runs the callback first
    assert calls == [1]
    await second.get("/nothing")
    assert calls == [1]
    await first.commit(Batch(put=[compute(1)], put_operations=[Operation("o", "/compute/c-1", "start", "queued")]))
    assert await second.pending_locations() == ["/compute/c-1"]


def test_memory_store_is_not_shared() -> None:
    from occipy.store.memory import MemoryStore

    store: Store = MemoryStore()
    assert not isinstance(store, Shared)

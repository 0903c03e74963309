"""The stores' change events (issue 12), for MemoryStore, SqlStore on SQLite (and on every URL in
TEST_DATABASE_URLS) and SqlStore on the real PostgreSQL of tests/services/postgres.py: what a batch
yields and in which order, nothing for a refused batch (alone or in a group), ids that grow with
commit order and survive a restart, retention by count and age with its floor, the in-process
wake-up, and two writers on one PostgreSQL database (two workers) whose events a reader sees in
id order without a gap closing behind it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from occipy.errors import Conflict
from occipy.model.catalogue import COMPUTE, NETWORKINTERFACE
from occipy.model.entity import Entity
from occipy.store.base import Batch, EventRetention, Operation, Store
from occipy.store.memory import MemoryStore
from occipy.store.sql import SqlStore
from tests.unit.store.conftest import StoreFactory

Opener = Callable[..., Awaitable[Store]]


@pytest.fixture
def opener(stores: StoreFactory) -> Opener:
    """A store of each kind (tests/unit/store/conftest.py), with the retention a test asks for."""
    return lambda retention=None: stores(events=retention)


def vm(n: int, state: str = "inactive", **attributes: object) -> Entity:
    return Entity(kind=COMPUTE, entity_id=f"vm-{n}", location=f"/compute/vm-{n}", tenant="t1",
                  attributes={"occi.core.id": f"vm-{n}", "occi.compute.state": state, **attributes})


def op(n: int, state: str, action: str, message: str | None = None) -> Operation:
    return Operation(op_id=f"op-{n}", location=f"/compute/vm-{n}", action=action, state=state, message=message,
                     tenant="t1")


def summary(store_events: list[object]) -> list[tuple[object, ...]]:
    return [(e.type, e.location, e.state, e.operation) for e in store_events]  # type: ignore[attr-defined]


async def test_each_change_yields_its_event_in_batch_order(opener: Opener) -> None:
    store = await opener()
    await store.commit(Batch(put=[vm(1)], put_operations=[op(1, "queued", "create")]))
    await store.commit(Batch(put=[vm(1)]))  # the same entity again: nothing changed
    await store.commit(Batch(put_operations=[op(1, "queued", "create")]))  # the same record again
    await store.commit(Batch(put=[vm(1, "active")], put_operations=[op(1, "succeeded", "create")]))
    await store.commit(Batch(put=[vm(1, "active", **{"occi.core.title": "x"})]))
    await store.commit(Batch(put_operations=[op(1, "succeeded", "create", "done")]))  # the message changed
    link = Entity(kind=NETWORKINTERFACE, entity_id="nic", location="/networkinterface/nic", tenant="t1",
                  attributes={"occi.core.source": "/compute/vm-1", "occi.core.target": "/network/n"})
    await store.commit(Batch(put=[link]))
    await store.commit(Batch(delete=["/compute/vm-1", "/networkinterface/nic", "/compute/never"],
                             put_operations=[Operation("op-d", "/compute/vm-1", "delete", "succeeded", tenant="t1")]))
    page = await store.events_after(0)
    assert summary(page.events) == [
        ("created", "/compute/vm-1", "inactive", None),
        ("operation", "/compute/vm-1", "queued", "op-1"),
        ("state", "/compute/vm-1", "active", None),
        ("operation", "/compute/vm-1", "succeeded", "op-1"),
        ("updated", "/compute/vm-1", "active", None),
        ("operation", "/compute/vm-1", "succeeded", "op-1"),
        ("created", "/networkinterface/nic", None, None),  # occi.networkinterface.state not set
        ("deleted", "/compute/vm-1", None, None),
        ("deleted", "/networkinterface/nic", None, None),
        ("operation", "/compute/vm-1", "succeeded", "op-d"),
    ]
    assert [e.event_id for e in page.events] == list(range(1, 11))
    assert {e.tenant for e in page.events} == {"t1"}
    assert page.events[-1].kind == COMPUTE and page.events[-1].action == "delete"  # the deleted entity's kind
    assert page.events[5].message == "done"
    assert (page.floor, page.last) == (0, 10)
    assert summary((await store.events_after(8, limit=1)).events) == [("deleted", "/networkinterface/nic", None, None)]
    assert (await store.events_after(10)).events == []


async def test_a_refused_batch_yields_nothing_and_its_group_commits(opener: Opener) -> None:
    store = await opener()
    await store.commit(Batch(put=[vm(1)]))
    twin = Entity(kind=COMPUTE, entity_id="vm-1", location="/compute/twin", attributes={"occi.core.id": "vm-1"})
    outcomes = await asyncio.gather(
        store.commit(Batch(put=[vm(2)])), store.commit(Batch(put=[twin])), store.commit(Batch(put=[vm(1, "active")])),
        return_exceptions=True)
    assert outcomes[0] is None and isinstance(outcomes[1], Conflict) and outcomes[2] is None
    page = await store.events_after(0)
    assert summary(page.events) == [("created", "/compute/vm-1", "inactive", None),
                                    ("created", "/compute/vm-2", "inactive", None),
                                    ("state", "/compute/vm-1", "active", None)]
    assert "/compute/twin" not in {e.location for e in page.events}


async def test_many_concurrent_commits_number_their_events_in_commit_order(opener: Opener) -> None:
    store = await opener()
    await asyncio.gather(*(store.commit(Batch(put=[vm(n)])) for n in range(200)))
    await asyncio.gather(*(store.commit(Batch(put=[vm(n, "active")])) for n in range(200)))
    page = await store.events_after(0, limit=1000)
    assert [e.event_id for e in page.events] == list(range(1, 401))
    created = [e.location for e in page.events[:200]]
    assert sorted(created) == sorted(f"/compute/vm-{n}" for n in range(200))
    assert {e.type for e in page.events[:200]} == {"created"} and {e.type for e in page.events[200:]} == {"state"}


async def test_retention_keeps_the_newest_and_says_what_was_dropped(opener: Opener) -> None:
    store = await opener(EventRetention(keep=5, max_age=3600))
    for n in range(12):
        await store.commit(Batch(put=[vm(n)]))
    page = await store.events_after(0)
    # The SQL log prunes now and then (every keep/10 events, at least 1): at most `keep` remain.
    assert [e.event_id for e in page.events] == list(range(page.floor + 1, 13))
    assert 12 - len(page.events) == page.floor and page.floor >= 7 and page.last == 12
    assert (await store.events_after(page.floor)).events == page.events


async def test_old_events_go_after_max_age(opener: Opener) -> None:
    store = await opener(EventRetention(keep=1000, max_age=0.2))
    await store.commit(Batch(put=[vm(1)]))
    await asyncio.sleep(0.3)
    await store.commit(Batch(put=[vm(2)]))
    if isinstance(store, SqlStore):
        store._pruning.at = 0.0  # the SQL log prunes by age at most every minute: now
        await store.commit(Batch(put=[vm(3)]))
        page = await store.events_after(0)
        assert [e.location for e in page.events] == ["/compute/vm-2", "/compute/vm-3"] and page.floor == 1
    else:
        page = await store.events_after(0)
        assert [e.location for e in page.events] == ["/compute/vm-2"] and page.floor == 1


async def test_this_processes_commits_wake_listeners(opener: Opener) -> None:
    store = await opener()
    woken: list[float] = []
    stop = store.listen_events(lambda: woken.append(time.monotonic()))
    await store.commit(Batch(put=[vm(1)]))
    assert woken
    stop()
    count = len(woken)
    await store.commit(Batch(put=[vm(2)]))
    assert len(woken) == count


async def test_ids_survive_a_restart_and_are_never_reused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    store = SqlStore(url, events=EventRetention(keep=1))
    await store.open()
    for n in range(3):
        await store.commit(Batch(put=[vm(n)]))
    await store.close()
    again = SqlStore(url, events=EventRetention(keep=1))
    await again.open()
    try:
        before = await again.events_after(0)
        assert [e.event_id for e in before.events] == [3] and before.floor == 2
        again._pruning.at = 0.0
        await again.commit(Batch(delete=["/compute/vm-0", "/compute/vm-1", "/compute/vm-2"]))
        after = await again.events_after(0)
        # Every row but the newest pruned: the next id still follows the last one given.
        assert [e.event_id for e in after.events] == [6] and after.floor == 5 and after.last == 6
    finally:
        await again.close()


async def test_two_writers_on_one_postgresql_database_commit_ids_in_order(postgres_database: Any) -> None:
    """Two SqlStores (two worker processes) commit at once; a reader polling the log meanwhile never
    sees an id before a smaller one commits (the advisory lock), and every event arrives once."""
    first, second, reader = (SqlStore(postgres_database.url) for _ in range(3))
    for store in (first, second, reader):
        await store.open()
    try:
        seen: list[int] = []
        done = asyncio.Event()

        async def follow() -> None:
            cursor = 0
            while True:
                finished = done.is_set()
                page = await reader.events_after(cursor, 1000)
                seen.extend(e.event_id for e in page.events)
                if page.events:
                    cursor = page.events[-1].event_id
                elif finished:
                    return
                await asyncio.sleep(0.005)

        follower = asyncio.get_running_loop().create_task(follow())

        async def write(store: SqlStore, offset: int) -> None:
            for n in range(60):
                await asyncio.gather(*(store.commit(Batch(put=[vm(offset + n * 3 + k)])) for k in range(3)))

        await asyncio.gather(write(first, 0), write(second, 10_000))
        done.set()
        await follower
        assert seen == list(range(1, 361))  # in order, none missing, none twice
    finally:
        for store in (first, second, reader):
            await store.close()


async def _replay(store: Store, start: float) -> list[tuple[object, ...]]:
    """Many entities and operations, updated in turns, with a refused batch inside a group."""
    now = start
    for round_ in range(3):
        records = []
        for n in range(6):
            now += 1.0
            records.append(Operation(op_id=f"op-{n}-{round_}", location=f"/compute/vm-{n}", action="start",
                                     state="queued", tenant="t1", created=now))
            await store.commit(Batch(put=[vm(n, ("inactive", "active")[round_ % 2], round=round_)],
                                     put_operations=[records[-1]]))
        ended = [record.ended("succeeded", None, now) for record in records]
        for record in ended:
            await store.commit(Batch(put_operations=[record]))
        for record in ended:  # the same records again, long forgotten by a small memory: no events
            await store.commit(Batch(put_operations=[record], put=[vm(0, "inactive", round=-1)]))
        twin = Entity(kind=COMPUTE, entity_id="vm-0", location="/compute/twin", attributes={"occi.core.id": "vm-0"})
        outcomes = await asyncio.gather(store.commit(Batch(put=[twin])), store.commit(Batch(put=[vm(1, "error")])),
                                        return_exceptions=True)
        assert isinstance(outcomes[0], Conflict) and outcomes[1] is None
    await store.commit(Batch(delete=[f"/compute/vm-{n}" for n in range(0, 6, 2)]))
    await store.commit(Batch(put=[vm(0)]))  # deleted above: created again
    return summary((await store.events_after(0, limit=10_000)).events)


async def test_the_sqlite_writers_memory_gives_the_events_that_reading_the_rows_gives(tmp_path: Path) -> None:
    """SQLite: the writer derives events from what it remembers committing (no reads), bounded by
    the cache size; a memory of 2 rows forgets most of them and must read them back, a refused
    batch must leave nothing remembered: the events equal those of MemoryStore."""
    start = time.time()
    reference = MemoryStore()
    await reference.open()
    expected = await _replay(reference, start)
    await reference.close()
    for size in (2, 20_000):
        store = SqlStore(f"sqlite:///{tmp_path / f'memory-{size}.db'}", cache_size=size)
        await store.open()
        try:
            assert store._remembered is not None and store._remembered.size == size
            assert await _replay(store, start) == expected
            assert len(store._remembered.entities) <= size and len(store._remembered.operations) <= size
        finally:
            await store.close()
    assert ("state", "/compute/vm-1", "error", None) in expected and ("created", "/compute/vm-0", "inactive", None) \
        in expected[-1:]

"""The SQL store's bulk path: groups of put-only batches written with a few upserts."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from occipy.model.entity import Entity
from occipy.store.base import Batch, EntityQuery, Operation
from occipy.store.sql import SqlStore
from tests.unit.store.conftest import indexes_after_a_restart


def _entity(n: int, title: str = "t", mixins: tuple[str, ...] = ()) -> Entity:
    return Entity(kind="http://schemas.ogf.org/occi/infrastructure#compute", entity_id=f"urn:{n}",
                  location=f"/compute/{n}", mixins=list(mixins), attributes={"occi.core.title": title})


async def test_operation_only_batch_and_concurrent_updates_of_one_entity(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = SqlStore(url)
    await store.open()
    await store.commit(Batch(put_operations=[Operation(op_id="a", location="/compute/1", action="create")]))
    # Many batches in one group, the same location several times: the last value wins, the
    # mixin rows follow the last value, and creation order is kept.
    await asyncio.gather(*(store.commit(Batch(put=[_entity(i % 5, title=str(i), mixins=(f"m#{i}",))]))
                           for i in range(50)))
    await store.close()
    reopened = SqlStore(url)
    await reopened.open()
    try:
        found = await reopened.query(EntityQuery())
        assert [e.location for e in found] == [f"/compute/{i}" for i in range(5)]
        by_location = {e.location: e for e in found}
        for i in range(5):
            last = max(n for n in range(50) if n % 5 == i)
            assert by_location[f"/compute/{i}"].attributes["occi.core.title"] == str(last)
            assert await reopened.query_locations(EntityQuery(mixin=f"m#{last}")) == [f"/compute/{i}"]
        operation = await reopened.get_operation("a")
        assert operation is not None
        assert (operation.location, operation.action, operation.state) == ("/compute/1", "create", "running")
    finally:
        await reopened.close()


def _query_plan(conn: sqlite3.Connection, statement: Any) -> tuple[str, str]:
    """A statement's SQLite text with its values in place, and SQLite's query plan for it, in one line."""
    import sqlalchemy as sa

    sql = str(statement.compile(dialect=sa.create_engine("sqlite://").dialect,
                                compile_kwargs={"literal_binds": True}))
    return sql, " ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))


@contextlib.contextmanager
def _traced(store: SqlStore) -> Iterator[list[str]]:
    """Every statement SQLite runs on the store's write connection meanwhile, values filled in."""
    assert store._conn is not None, "the store has written nothing yet"
    raw = store._conn.connection.driver_connection
    sent: list[str] = []
    raw.set_trace_callback(sent.append)
    try:
        yield sent
    finally:
        raw.set_trace_callback(None)


async def test_a_write_that_keeps_the_indexed_columns_is_an_update_of_the_attributes(tmp_path: Path) -> None:
    """A state change or an attribute edit leaves kind, ids, tenant, owner, backend id and link ends
    as they were: it is a plain UPDATE, and the mixin rows stay (SQLite rewrites the index of every
    column a statement sets, so the upsert wrote about four times the WAL pages)."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = SqlStore(url)
    await store.open()
    try:
        await store.commit(Batch(new=[_entity(1, mixins=("m#a",))]))
        with _traced(store) as sent:
            await store.commit(Batch(put=[_entity(1, title="edited", mixins=("m#a",))]))
        assert any(s.startswith("UPDATE entities SET mixins='[\"m#a\"]', attributes=") for s in sent), sent
        assert not [s for s in sent if "entity_mixins" in s or s.startswith("INSERT INTO entities")], sent
        # The mixins change: the row's update is still light, its mixin rows are written again.
        with _traced(store) as sent:
            await store.commit(Batch(put=[_entity(1, title="edited", mixins=("m#b",))]))
        assert any("entity_mixins" in s for s in sent), sent
        assert not [s for s in sent if s.startswith("INSERT INTO entities")], sent
        # The backend id changes (a create's cloud object): the full upsert.
        realised = Entity(kind=_entity(1).kind, entity_id="urn:1", location="/compute/1", mixins=["m#b"],
                          attributes={"occi.core.title": "edited"}, backend_id="vm-1")
        with _traced(store) as sent:
            await store.commit(Batch(put=[realised]))
        assert any(s.startswith("INSERT INTO entities") for s in sent), sent
    finally:
        await store.close()
    reopened = SqlStore(url)
    await reopened.open()
    try:
        (found,) = await reopened.query(EntityQuery())
        assert (found.attributes["occi.core.title"], found.mixins, found.backend_id) == ("edited", ("m#b",), "vm-1")
        assert await reopened.query_locations(EntityQuery(mixin="m#b")) == ["/compute/1"]
        assert await reopened.query_locations(EntityQuery(mixin="m#a")) == []
        assert await reopened.query_locations(EntityQuery(backend="vm-1")) == ["/compute/1"]
    finally:
        await reopened.close()


async def test_a_put_that_replaces_the_row_with_another_entity_rewrites_every_column(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.open()
    try:
        await store.commit(Batch(new=[_entity(1)]))
        other = Entity(kind="http://schemas.ogf.org/occi/infrastructure#storage", entity_id="urn:other",
                       location="/compute/1", attributes={"occi.core.title": "t"}, tenant="t2", owner="bob")
        await store.commit(Batch(put=[other]))
        found = await store.query(EntityQuery(kinds=("http://schemas.ogf.org/occi/infrastructure#storage",),
                                              tenant="t2"))
        assert [(e.entity_id, e.owner) for e in found] == [("urn:other", "bob")]
        assert await store.query(EntityQuery(kinds=(_entity(1).kind,))) == []
    finally:
        await store.close()


async def test_indexes_a_composite_index_covers_are_dropped_at_start_up(tmp_path: Path) -> None:
    names = await indexes_after_a_restart(tmp_path / "db.sqlite",
                                          "CREATE INDEX ix_entities_kind ON entities (kind)",
                                          "CREATE INDEX ix_operations_location ON operations (location)")
    assert "ix_entities_kind_seq" in names and "ix_operations_location_seq" in names
    assert not names & {"ix_entities_kind", "ix_operations_location"}, names


async def test_only_pending_operations_are_in_the_pending_index_and_its_queries_use_it(tmp_path: Path) -> None:
    """An operation written already ended (most are) adds no entry to any index on its state: the
    state index of older versions is dropped, and the partial index holds queued and running ones."""
    from occipy.store import _reads as reads
    from occipy.store.base import PENDING_STATES
    from occipy.store.schema import PENDING

    assert str(PENDING) == "state IN ({})".format(", ".join(f"'{s}'" for s in sorted(PENDING_STATES)))
    path = tmp_path / "db.sqlite"
    names = await indexes_after_a_restart(path, "CREATE INDEX ix_operations_state ON operations (state)",
                                          "CREATE INDEX ix_events_created ON events (created)")
    assert "ix_operations_pending" in names, names
    assert not names & {"ix_operations_state", "ix_events_created"}, names  # the age prune needs no index
    store = SqlStore(f"sqlite:///{path}")
    await store.open()
    try:
        await store.commit(Batch(put_operations=[
            Operation(op_id="done", location="/compute/1", action="start", state="succeeded", seq=1),
            Operation(op_id="waiting", location="/compute/1", action="stop", state="queued", seq=2)]))
        assert [op.op_id for op in await store.pending_operations("/compute/1")] == ["waiting"]
        assert await store.pending_locations() == ["/compute/1"]
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        # Only the pending operation has an entry in the partial index.
        assert conn.execute("SELECT count(*) FROM operations INDEXED BY ix_operations_pending "
                            "WHERE state IN ('queued', 'running')").fetchone() == (1,)
        for statement, index in ((reads.PENDING_LOCATIONS, "ix_operations_pending"),
                                 (reads.select_pending(None), "ix_operations_pending"),
                                 (reads.PENDING_OF.params(location="/compute/1"), "")):  # or by location
            sql, plan = _query_plan(conn, statement)
            # A scan of the partial index is fine: it holds only pending operations.
            assert f"INDEX {index}" in plan and not re.search(r"SCAN operations(?! USING)", plan), (sql, plan)


async def test_sqlite_commits_run_on_the_loop_and_one_turn_is_one_group(tmp_path: Path) -> None:
    """D-INLINE-WRITES: with synchronous=NORMAL the writes need no thread, and the commits that
    arrive together are one transaction; with FULL (an fsync per commit) the writer thread stays."""
    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.open()
    try:
        assert store.writes_inline
        assert "occipy-store-writer" not in {thread.name for thread in threading.enumerate()}
        await store.commit(Batch(new=[_entity(0)]))
        with _traced(store) as sent:
            await asyncio.gather(*(store.commit(Batch(new=[_entity(n)])) for n in range(1, 41)))
        assert sent.count("COMMIT") == 1, sent
        assert len(await store.query(EntityQuery())) == 41
        # A refused batch fails alone; the others of its turn commit.
        outcomes = await asyncio.gather(store.commit(Batch(new=[_entity(41)])), store.commit(Batch(new=[_entity(1)])),
                                        return_exceptions=True)
        assert outcomes[0] is None and type(outcomes[1]).__name__ == "Conflict", outcomes
    finally:
        await store.close()
    durable = SqlStore(f"sqlite:///{tmp_path / 'full.sqlite'}", synchronous="FULL")
    await durable.open()
    try:
        assert not durable.writes_inline
        assert "occipy-store-writer" in {thread.name for thread in threading.enumerate()}
        await durable.commit(Batch(new=[_entity(1)]))
        assert [e.location for e in await durable.query(EntityQuery())] == ["/compute/1"]
    finally:
        await durable.close()


async def test_resources_add_no_entry_to_the_link_end_indexes_and_link_queries_use_them(tmp_path: Path) -> None:
    """Each index entry of a new row is a WAL page: the owner index (no query uses it) is gone, and
    source and target are indexed for links only; links_from and links_to still use an index."""
    from occipy.store import _reads as reads

    path = tmp_path / "db.sqlite"
    names = await indexes_after_a_restart(path, "CREATE INDEX ix_entities_owner ON entities (owner)",
                                          "CREATE INDEX ix_entities_source ON entities (source)",
                                          "CREATE INDEX ix_entities_target ON entities (target)")
    assert {"ix_entities_link_source", "ix_entities_link_target"} <= names, names
    assert not names & {"ix_entities_owner", "ix_entities_source", "ix_entities_target"}, names
    store = SqlStore(f"sqlite:///{path}")
    await store.open()
    link = Entity(kind="http://schemas.ogf.org/occi/infrastructure#networkinterface", entity_id="urn:l",
                  location="/networkinterface/l", attributes={"occi.core.source": "/compute/1",
                                                              "occi.core.target": "/network/n"})
    try:
        await store.commit(Batch(new=[_entity(1), _entity(2), link]))
        found = await store.links_from(["/compute/1", "/compute/2"])
        assert {source: [e.location for e in links] for source, links in found.items()} == {
            "/compute/1": ["/networkinterface/l"]}
        assert [e.location for e in await store.links_to("/network/n")] == ["/networkinterface/l"]
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        for index, column in (("ix_entities_link_source", "source"), ("ix_entities_link_target", "target")):
            assert conn.execute(f"SELECT count(*) FROM entities INDEXED BY {index} "
                                f"WHERE {column} IS NOT NULL").fetchone() == (1,)
        for statement, index in ((reads.LINKS_TO.params(target="/network/n"), "ix_entities_link_target"),
                                 (reads.LINKS_FROM.params(sources=["/compute/1", "/compute/2"]), "ix_entities_link_source")):
            sql, plan = _query_plan(conn, statement)
            assert f"INDEX {index}" in plan, (sql, plan)


async def test_a_write_reaches_the_database_file_within_a_few_checkpoint_intervals(tmp_path: Path) -> None:
    """The WAL is checkpointed by its own thread, every CHECKPOINT_INTERVAL when something was
    written: the main file alone (without its -wal) soon holds a committed entity."""
    import shutil

    from occipy.store import sql as sqlmod

    path = tmp_path / "db.sqlite"
    store = SqlStore(f"sqlite:///{path}")
    await store.open()
    try:
        await store.commit(Batch(new=[_entity(1)]))
        copy = tmp_path / "copy.sqlite"
        found: list[tuple[str]] = []
        for _ in range(50):
            await asyncio.sleep(sqlmod.CHECKPOINT_INTERVAL)
            shutil.copyfile(path, copy)  # the main file only: what a checkpoint put there
            with contextlib.closing(sqlite3.connect(copy)) as conn:
                try:
                    found = conn.execute("SELECT location FROM entities").fetchall()
                except sqlite3.OperationalError:  # not even the schema is there yet
                    found = []
            if found:
                break
        assert found == [("/compute/1",)]
    finally:
        await store.close()


async def test_the_wal_starts_over_under_a_steady_stream_of_commits(tmp_path: Path, monkeypatch: Any) -> None:
    """A passive checkpoint never catches up with a writer that commits all the time, and SQLite
    starts the WAL over only after one did: past WAL_RESTART_FRAMES the writer checkpoints itself
    between two commits, so the file stays short (it had grown by every page ever written)."""
    from occipy.store import sql as sqlmod

    monkeypatch.setattr(sqlmod, "CHECKPOINT_INTERVAL", 0.005)
    monkeypatch.setattr(sqlmod, "WAL_RESTART_FRAMES", 64)
    path = tmp_path / "db.sqlite"
    store = SqlStore(f"sqlite:///{path}")
    await store.open()
    try:
        await store.commit(Batch(new=[_entity(n) for n in range(200)]))
        wal = path.with_name(path.name + "-wal")
        largest = 0
        for n in range(3000):  # one commit after the other: about 3,000 x 3 pages written
            await store.commit(Batch(put=[_entity(n % 200, title=str(n))]))
            largest = max(largest, wal.stat().st_size)
        # Without the restarts: about 36 MB (3,000 x 3 pages). The restart waits for the
        # checkpointer thread to see the WAL past 64 frames: on a machine loaded by other work it
        # ran late once and the file reached 4.8 MB, so the bound is a fifth of that 36 MB.
        assert largest < 8 * 1024 * 1024, largest
    finally:
        await store.close()


async def test_a_failure_outside_the_transaction_reaches_every_waiting_commit(tmp_path: Path, monkeypatch: Any) -> None:
    """On the loop, a write group runs in a callback: an unexpected error there goes to the
    callers of commit() (who would otherwise wait for ever), and the next commits work."""
    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.open()
    try:
        def broken(*_: Any) -> None:
            raise RuntimeError("settling broke")

        with monkeypatch.context() as patch:
            patch.setattr(store, "_settle", broken)
            outcomes = await asyncio.wait_for(asyncio.gather(
                store.commit(Batch(new=[_entity(1)])), store.commit(Batch(new=[_entity(2)])),
                return_exceptions=True), timeout=5)
        assert [str(outcome) for outcome in outcomes] == ["settling broke", "settling broke"]
        await store.commit(Batch(new=[_entity(3)]))
        assert [e.location for e in await store.query(EntityQuery())][-1] == "/compute/3"
    finally:
        await store.close()


async def test_a_walk_over_every_page_leaves_a_listing_read_all_the_time_kept(tmp_path: Path, monkeypatch: Any) -> None:
    """Kept listings go least recently used first: the reconcile's walk, a page of 100 at a time,
    cleared every listing each MAX_QUERIES pages, and the next GET of a 10,000-member collection
    was read from SQLite again."""
    from occipy.store import sql as sqlmod

    store = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.open()
    try:
        await store.commit(Batch(new=[_entity(n) for n in range(2 * sqlmod.MAX_QUERIES + 1)]))
        reads = 0
        real_rows = store._rows

        async def counted(statement: Any, params: Any) -> Any:
            nonlocal reads
            reads += 1
            return await real_rows(statement, params)

        monkeypatch.setattr(store, "_rows", counted)
        everything = EntityQuery()
        assert len(await store.query(everything)) == 2 * sqlmod.MAX_QUERIES + 1
        after: str | None = None
        for _ in range(2 * sqlmod.MAX_QUERIES):  # the walk, with the listing read between its pages
            page = await store.query(EntityQuery(after=after, limit=1))
            after = page[-1].location
            before = reads
            assert len(await store.query(everything)) == 2 * sqlmod.MAX_QUERIES + 1
            assert reads == before, "the listing was read from the database again"
        assert reads == 1 + 2 * sqlmod.MAX_QUERIES
    finally:
        await store.close()

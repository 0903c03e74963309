"""The SQL store's bulk path: groups of put-only batches written with a few upserts."""

from __future__ import annotations

import asyncio
import contextlib
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


@contextlib.contextmanager
def _traced() -> Iterator[list[str]]:
    """The SQL the store's writer thread sends meanwhile (the start of each statement)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine

    sent: list[str] = []

    def trace(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if threading.current_thread().name == "occipy-store-writer":
            sent.append(statement)

    sa.event.listen(Engine, "before_cursor_execute", trace)
    try:
        yield sent
    finally:
        sa.event.remove(Engine, "before_cursor_execute", trace)


async def test_a_write_that_keeps_the_indexed_columns_is_an_update_of_the_attributes(tmp_path: Path) -> None:
    """A state change or an attribute edit leaves kind, ids, tenant, owner, backend id and link ends
    as they were: it is a plain UPDATE, and the mixin rows stay (SQLite rewrites the index of every
    column a statement sets, so the upsert wrote about four times the WAL pages)."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = SqlStore(url)
    await store.open()
    try:
        await store.commit(Batch(new=[_entity(1, mixins=("m#a",))]))
        with _traced() as sent:
            await store.commit(Batch(put=[_entity(1, title="edited", mixins=("m#a",))]))
        assert any(s.startswith("UPDATE entities SET mixins=?, attributes=?, updated=?, version=") for s in sent), sent
        assert not [s for s in sent if "entity_mixins" in s or s.startswith("INSERT INTO entities")], sent
        # The mixins change: the row's update is still light, its mixin rows are written again.
        with _traced() as sent:
            await store.commit(Batch(put=[_entity(1, title="edited", mixins=("m#b",))]))
        assert any("entity_mixins" in s for s in sent), sent
        assert not [s for s in sent if s.startswith("INSERT INTO entities")], sent
        # The backend id changes (a create's cloud object): the full upsert.
        realised = Entity(kind=_entity(1).kind, entity_id="urn:1", location="/compute/1", mixins=["m#b"],
                          attributes={"occi.core.title": "edited"}, backend_id="vm-1")
        with _traced() as sent:
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

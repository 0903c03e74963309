"""The SQL store's bulk path: groups of put-only batches written with a few upserts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from occipy.model.entity import Entity
from occipy.store.base import Batch, EntityQuery, Operation
from occipy.store.sql import SqlStore


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

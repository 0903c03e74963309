"""Operation records are kept within `OperationRetention` (settings operations_keep, operations_max_age):
ended ones go once `keep` newer exist or once older than `max_age`; queued and running ones stay.

Runs on MemoryStore, SQLite and the suite's PostgreSQL (tests/services/postgres.py), like test_store.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from occipy.config import ConfigError, load
from occipy.store.base import FAILED, QUEUED, RUNNING, SUCCEEDED, Batch, Operation, OperationRetention, Store
from occipy.store.sql import SqlStore
from tests.unit.store.conftest import StoreFactory, indexes_after_a_restart


@pytest.fixture
def opener(stores: StoreFactory) -> Callable[[OperationRetention], Awaitable[Store]]:
    return lambda retention: stores(operations=retention)


Opener = Callable[[OperationRetention], Awaitable[Store]]


def _op(n: int, state: str, age: float = 0.0) -> Operation:
    """Operation n, accepted `age` seconds ago (its seq is its acceptance time in ns, as Lanes makes it)."""
    accepted = time.time() - age
    return Operation(op_id=f"op-{n}", location=f"/compute/c-{n % 3}", action="start", state=state,
                     created=accepted, updated=accepted, seq=int(accepted * 1e9) + n)


async def _ids(store: Store) -> set[str]:
    return {op.op_id for op in await store.operations()}


async def test_ended_operations_beyond_the_newest_keep_are_deleted_and_pending_ones_stay(opener: Opener) -> None:
    store = await opener(OperationRetention(keep=5, max_age=86_400.0))
    # Two old ones still pending: never pruned, whatever their age or rank.
    await store.commit(Batch(put_operations=[_op(0, QUEUED), _op(1, RUNNING)]))
    for n in range(2, 22):
        await store.commit(Batch(put_operations=[_op(n, SUCCEEDED if n % 2 else FAILED)]))
    kept = await _ids(store)
    assert {"op-0", "op-1"} <= kept
    # The newest five are kept; the ended ones before them went (a prune may lag by one commit).
    assert {f"op-{n}" for n in range(17, 22)} <= kept
    assert len(kept - {"op-0", "op-1"}) <= 6, sorted(kept)
    assert await store.get_operation("op-2") is None


async def test_ended_operations_older_than_max_age_are_deleted(opener: Opener) -> None:
    store = await opener(OperationRetention(keep=1_000, max_age=3_600.0))
    await store.commit(Batch(put_operations=[_op(0, SUCCEEDED, age=7_200.0), _op(1, RUNNING, age=7_200.0),
                                             _op(2, FAILED, age=60.0)]))
    # The first write of a store prunes (then a tenth of `keep` new records, or a minute, later).
    assert await _ids(store) == {"op-1", "op-2"}


async def test_an_older_database_gets_the_seq_index_at_start_up(tmp_path: Path) -> None:
    # as an occipy before operation retention left it
    names = await indexes_after_a_restart(tmp_path / "db.sqlite", "DROP INDEX ix_operations_seq")
    assert "ix_operations_seq" in names


def test_the_settings_are_read_from_the_environment_and_checked(tmp_path: Path) -> None:
    settings = load(environ={"OCCIPY_OPERATIONS_KEEP": "500", "OCCIPY_OPERATIONS_MAX_AGE": "3600"})
    assert (settings.operations_keep, settings.operations_max_age) == (500, 3600.0)
    with pytest.raises(ConfigError, match="operations_keep"):
        load(environ={"OCCIPY_OPERATIONS_KEEP": "0"})


async def test_a_record_without_seq_has_no_known_age_and_only_keep_removes_it(opener: Opener) -> None:
    """A record made before operations had a `seq` (0 after the migration) is not "older than max_age"."""
    store = await opener(OperationRetention(keep=3, max_age=3_600.0))
    await store.commit(Batch(put_operations=[Operation(op_id="legacy", location="/compute/c-0", action="start",
                                                       state=SUCCEEDED)]))
    assert await store.get_operation("legacy") is not None
    for n in range(1, 6):
        await store.commit(Batch(put_operations=[_op(n, SUCCEEDED)]))
    assert await store.get_operation("legacy") is None


async def test_a_prune_pass_deletes_a_bounded_number_of_rows_and_the_next_goes_on(tmp_path: Path) -> None:
    """A backlog (here: max_age lowered between two starts) is pruned a slice at a time, oldest
    first, so that no pass holds the store's writer for long."""
    from occipy.store import _writes

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    backlog = _writes.PRUNE_OPERATIONS_AT_ONCE + 500
    store = SqlStore(url, operations=OperationRetention(keep=100_000, max_age=86_400.0))
    await store.open()
    await store.commit(Batch(put_operations=[_op(n, SUCCEEDED, age=7_200.0) for n in range(backlog)]))
    await store.close()
    store = SqlStore(url, operations=OperationRetention(keep=100_000, max_age=3_600.0))
    await store.open()
    try:
        await store.commit(Batch(put_operations=[_op(backlog, SUCCEEDED)]))  # the first write prunes
        left = await _ids(store)
        assert len(left) == backlog + 1 - _writes.PRUNE_OPERATIONS_AT_ONCE
        assert f"op-{backlog - 1}" in left and "op-0" not in left  # the oldest went first
    finally:
        await store.close()

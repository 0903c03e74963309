"""A write answered with success survives `kill -9` of the process that made it (store brief).

A subprocess opens a SqlStore on a SQLite file and commits from several concurrent clients (so
group commits are in flight), printing each location once its commit returned. The test kills it
with SIGKILL mid-stream, reopens the file and checks that every acknowledged write is there and
that the database is consistent.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from occipy.model.catalogue import COMPUTE
from occipy.store.base import EntityQuery
from occipy.store.sql import SqlStore

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from occipy.model.entity import Entity
    from occipy.store.base import Batch, Operation
    from occipy.store.sql import SqlStore

    COMPUTE = "http://schemas.ogf.org/occi/infrastructure#compute"
    MIXIN = "http://example.com/occi/os#ubuntu"

    async def main(url, synchronous):
        store = SqlStore(url, synchronous=synchronous)
        await store.open()

        async def client(c):
            i = 0
            while True:
                location = f"/compute/{c}-{i}"
                entity = Entity(kind=COMPUTE, entity_id=f"{c}-{i}", location=location, mixins=[MIXIN],
                                attributes={"occi.core.id": f"{c}-{i}", "occi.compute.memory": 4.0, "n": i})
                op = Operation(f"op-{c}-{i}", location, "create", "succeeded", created=float(i))
                # Every other write also deletes the client's previous entity.
                gone = [f"/compute/{c}-{i - 1}"] if i % 2 else []
                await store.commit(Batch(put=[entity], delete=gone, put_operations=[op]))
                sys.stdout.write(("D " + gone[0] + "\\n" if gone else "") + "P " + location + "\\n")
                sys.stdout.flush()
                i += 1

        await asyncio.gather(*(client(c) for c in range(8)))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def _write_then_kill(url: str, synchronous: str, wanted: int) -> list[str]:
    """Run the writer until it acknowledged `wanted` writes, SIGKILL it, return every acknowledged line."""
    src = Path(__file__).resolve().parents[3] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, synchronous],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    acknowledged: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(acknowledged) < wanted and time.monotonic() < deadline:
            raw = proc.stdout.readline()
            if not raw:
                break
            acknowledged.append(raw.decode())
        # Mid-stream: the writer is committing as fast as it can.
        os.kill(proc.pid, signal.SIGKILL)
        rest, errors = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, errors.decode()
    # Lines printed before the kill were acknowledged; a last line cut in half was not.
    acknowledged.extend(line + "\n" for line in rest.decode().split("\n")[:-1])
    assert len(acknowledged) >= wanted, errors.decode()
    return acknowledged


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
async def test_acknowledged_writes_survive_kill_9(tmp_path: Path, synchronous: str) -> None:
    db = tmp_path / "occipy.db"
    url = f"sqlite:///{db}"
    acknowledged = await asyncio.to_thread(_write_then_kill, url, synchronous, 600)

    present: set[str] = set()
    deleted: set[str] = set()
    for line in acknowledged:
        verb, location = line.split()
        (present if verb == "P" else deleted).add(location)
    present -= deleted

    # The file is sound and consistent with itself.
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        orphans = conn.execute(
            "SELECT count(*) FROM entity_mixins WHERE location NOT IN (SELECT location FROM entities)"
        ).fetchone()
        missing = conn.execute(
            "SELECT count(*) FROM entities WHERE location NOT IN (SELECT location FROM entity_mixins)"
        ).fetchone()
        assert orphans == (0,) and missing == (0,)
    conn.close()

    store = SqlStore(url)
    await store.open()
    try:
        stored = set(await store.query_locations(EntityQuery(kinds=(COMPUTE,))))
        assert present <= stored, f"acknowledged but lost: {sorted(present - stored)[:5]}"
        assert not (deleted & stored), f"acknowledged deletes undone: {sorted(deleted & stored)[:5]}"
        for location in present:
            entity = await store.get(location)
            assert entity is not None
            assert entity.attributes["occi.compute.memory"] == 4.0
            operation = await store.get_operation("op-" + location.rsplit("/", 1)[1])
            assert operation is not None
            assert (operation.location, operation.action, operation.state) == (location, "create", "succeeded")
        print(
            f"\n{synchronous}: {len(acknowledged)} acknowledged writes survived kill -9; {len(stored)} stored"
        )
    finally:
        await store.close()


async def test_acknowledged_writes_survive_kill_9_on_postgresql(postgres_database: Any) -> None:
    """The same on PostgreSQL (the suite's cluster; a database of this test's own)."""
    import psycopg

    url = postgres_database.url
    acknowledged = await asyncio.to_thread(_write_then_kill, url, "NORMAL", 600)
    present: set[str] = set()
    deleted: set[str] = set()
    for line in acknowledged:
        verb, location = line.split()
        (present if verb == "P" else deleted).add(location)
    present -= deleted
    with psycopg.connect(postgres_database.dsn) as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM entity_mixins WHERE location NOT IN (SELECT location FROM entities)").fetchone()
        missing = conn.execute(
            "SELECT count(*) FROM entities WHERE location NOT IN (SELECT location FROM entity_mixins)").fetchone()
        assert orphans == (0,) and missing == (0,)
    store = SqlStore(url)
    await store.open()
    try:
        stored = set(await store.query_locations(EntityQuery(kinds=(COMPUTE,))))
        assert present <= stored, f"acknowledged but lost: {sorted(present - stored)[:5]}"
        assert not (deleted & stored), f"acknowledged deletes undone: {sorted(deleted & stored)[:5]}"
        for location in sorted(present)[:100]:
            operation = await store.get_operation("op-" + location.rsplit("/", 1)[1])
            assert operation is not None and operation.state == "succeeded"
    finally:
        await store.close()

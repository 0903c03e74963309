"""Which B-trees the WAL pages of one write belong to, on the durable SQLite store
(docs/performance.md, 2026-12-07 23:15). Simulated cloud, delay 0; 3,200 computes created first.

Writes 20 groups of 32 creates (`create`, as `make bench`'s 64 connections make the store group
them) or 20 start/stop actions (`action`) with the periodic checkpoint off, reads the page number
of every frame they appended to the `-wal` file, and names each page's table or index with
SQLite's `dbstat` table (on a copy of the database and its WAL). Prints frames per request, by
B-tree (leaf or internal page).

    .venv/bin/python bench/probes/wal_map.py create|action
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import sqlite3
import struct
import sys
import tempfile
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from service_cpu import create_group, create_one, durable_service, flip_request

import occipy.store.sql as sql_module

sql_module.CHECKPOINT_INTERVAL = 10_000.0  # no checkpoint starts the WAL over while it is read

ROUNDS = 20
FRAME_HEADER = 24
PAGE = 4096


async def main(what: str) -> None:
    async with durable_service() as service:
        store = service.env.store
        assert isinstance(store, sql_module.SqlStore)
        for _ in range(100):
            await create_group(service)
        location = await create_one(service)
        await asyncio.sleep(0.3)
        database = Path(str(store.url.database))
        wal = database.with_name(database.name + "-wal")
        before = wal.stat().st_size
        for turn in range(ROUNDS):
            if what == "create":
                await create_group(service)
            else:
                answer = await service.handle(flip_request(location, turn))
                assert answer.status == 200, answer.body
        await asyncio.sleep(0.2)
        frames = wal.read_bytes()[before:]
        pages = collections.Counter(struct.unpack(">I", frames[at:at + 4])[0]
                                    for at in range(0, len(frames), FRAME_HEADER + PAGE))
        with tempfile.TemporaryDirectory() as directory:
            copy = Path(directory) / "copy.db"
            shutil.copy(database, copy)
            shutil.copy(wal, copy.with_name("copy.db-wal"))
            with sqlite3.connect(copy) as conn:
                names = {page: f"{name} ({kind})" for name, page, kind in
                         conn.execute("SELECT name, pageno, pagetype FROM dbstat")}
    per = ROUNDS * (32 if what == "create" else 1)
    by_tree: collections.Counter[str] = collections.Counter()
    for page, count in pages.items():
        by_tree[names.get(page, f"page {page}")] += count
    print(f"{what}: {sum(pages.values()) / per:.2f} WAL frames per request")
    for tree, count in by_tree.most_common():
        print(f"{count / per:7.2f}  {tree}")


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1] if len(sys.argv) > 1 else "action"))

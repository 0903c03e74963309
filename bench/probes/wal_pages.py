"""WAL pages one start/stop writes on the durable SQLite store (docs/performance.md, 2026-12-06 22:05).

Creates N computes, then 100 start/stop actions on one, with the periodic checkpoint off, and
prints the growth of the `-wal` file per action in bytes and in 4 KiB frames.

    .venv/bin/python bench/probes/wal_pages.py [N]   (default 2000)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))
from inprocess import KIND, one_compute, request

import occipy.store.sql as sqlmod
from occipy.backends.simulated import SimulatedDriver
from occipy.model.standard import standard_registry
from occipy.service.options import ServiceOptions
from occipy.service.pipeline import Service

sqlmod.CHECKPOINT_INTERVAL = 10_000.0  # no checkpoint resets the WAL while it is measured


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = sqlmod.SqlStore(f"sqlite:///{directory}/occipy.db")
        await store.open()
        service = Service(standard_registry(), store, SimulatedDriver(delay=0),
                          ServiceOptions(sync_wait=1.0, reconcile_interval=0))
        await service.start()
        for _ in range(count):
            await service.handle(request("POST", "/compute/", KIND))
        _, action = await one_compute(service)
        await asyncio.sleep(0.3)
        wal = f"{directory}/occipy.db-wal"
        before = os.path.getsize(wal)
        for _ in range(100):
            await service.handle(action())
        await asyncio.sleep(0.2)
        grown = (os.path.getsize(wal) - before) / 100
        print(f"WAL bytes per action {grown:.0f}, frames {grown / 4120:.2f}")
        await service.stop()
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))

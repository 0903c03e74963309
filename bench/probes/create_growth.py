"""CPU of a create as the store grows, on the durable SQLite store (docs/performance.md,
2026-12-07 23:15): groups of 32 creates (as `make bench`'s 64 connections make the store group
them) until 3,200, 10,000, 20,000 and 30,000 computes are stored, each step's last 3,200 creates
measured with the process's CPU clock, and the store's group writes (`SqlStore._write_group`) with
the thread's. Simulated cloud, delay 0; in process, no HTTP.

    .venv/bin/python bench/probes/create_growth.py
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from service_cpu import create_group, durable_service

from occipy.store.sql import SqlStore

STEPS = (3_200, 10_000, 20_000, 30_000)
MEASURED_GROUPS = 100

writing = [0]
_write_group = SqlStore._write_group


def _timed_write_group(self: SqlStore, *args: Any) -> None:
    began = time.thread_time_ns()
    try:
        _write_group(self, *args)
    finally:
        writing[0] += time.thread_time_ns() - began


SqlStore._write_group = _timed_write_group  # type: ignore[method-assign]


async def main() -> None:
    async with durable_service() as service:
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 50)  # as `occipy serve` sets it
        stored = 0
        for step in STEPS:
            while stored < step - 32 * MEASURED_GROUPS:
                await create_group(service)
                stored += 32
            writing[0] = 0
            began = time.process_time()
            for _ in range(MEASURED_GROUPS):
                await create_group(service)
            stored += 32 * MEASURED_GROUPS
            creates = 32 * MEASURED_GROUPS
            print(f"{stored} stored: {(time.process_time() - began) / creates * 1e6:.0f} µs per create, "
                  f"of which the group write {writing[0] / creates / 1e3:.0f} µs")


if __name__ == "__main__":
    uvloop.run(main())

"""Where the CPU of one action goes when the store is the durable SQLite one: the whole action on
the loop thread, and inside it the store's group write (`SqlStore._write_group`) split into the
change-event log (`sql_events.record`), the rows (`write_group`) and the rest (begin, SQLite's
commit, metrics). In process, no HTTP; simulated cloud, delay 0; 3,200 computes created first.
Compare with the service on the memory store: `.venv/bin/python bench/probes/service_cpu.py 3000 action`.

    .venv/bin/python bench/probes/action_store.py [ACTIONS]   (docs/performance.md, 2026-12-07 20:20)
"""

from __future__ import annotations

import collections
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from service_cpu import create_group, create_one, durable_service, flip_request

from occipy.service.pipeline import Service
from occipy.store import sql as sql_module
from occipy.store import sql_events
from occipy.store.sql import SqlStore

spent: collections.Counter[str] = collections.Counter()


def timed(owner: Any, name: str) -> None:
    """Replace `owner.name` by a wrapper adding its thread CPU time to `spent[name]`."""
    inner: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.thread_time_ns()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[name] += time.thread_time_ns() - began

    setattr(owner, name, wrapper)


async def main(actions: int) -> None:
    for owner, name in ((sql_events, "record"), (sql_module, "write_group"), (SqlStore, "_write_group")):
        timed(owner, name)
    async with durable_service() as service:
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 50)  # as `occipy serve` sets it
        for _ in range(100):
            await create_group(service)
        await measure(service, await create_one(service), actions)


async def measure(service: Service, location: str, actions: int) -> None:
    async def act(turn: int) -> None:
        answer = await service.handle(flip_request(location, turn))
        assert answer.status == 200, answer.body

    for turn in range(300):
        await act(turn)
    spent.clear()
    began = time.thread_time_ns()
    for turn in range(actions):
        await act(turn)
    whole = (time.thread_time_ns() - began) / actions / 1e3
    group = spent["_write_group"] / actions / 1e3
    parts = {name: round(spent[name] / actions / 1e3, 1) for name in ("record", "write_group")}
    print({"action (loop thread)": round(whole, 1), "store group write": round(group, 1), **parts,
           "rest of the group write (begin, commit, metrics)": round(group - sum(parts.values()), 1)})


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))

"""The in-process half of bench/probes/write_syscalls.sh: writes while strace counts.

    .venv/bin/python bench/probes/write_syscalls.py create|action MARKS_DIR
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from service_cpu import ACTION, CREATE, json_request

from occipy.backends.simulated import SimulatedDriver
from occipy.model.standard import standard_registry
from occipy.service.options import ServiceOptions
from occipy.service.pipeline import Service
from occipy.store.sql import SqlStore


async def main(what: str, marks: Path) -> None:
    directory = tempfile.TemporaryDirectory(prefix="occipy-probe-")
    store = SqlStore(f"sqlite:///{directory.name}/occipy.db")
    await store.open()
    service = Service(standard_registry(), store, SimulatedDriver(delay=0),
                      ServiceOptions(sync_wait=1.0, reconcile_interval=0))
    await service.start()

    async def group() -> None:
        await asyncio.gather(*(service.handle(json_request("POST", "/compute/", CREATE)) for _ in range(32)))

    for _ in range(300):
        await group()
    created = await service.handle(json_request("POST", "/compute/", CREATE))
    location = dict(created.headers)["Location"][len("http://x"):]
    (marks / "ready").touch()
    await asyncio.sleep(2)  # strace attaches
    if what == "create":
        for _ in range(100):
            await group()
        writes = 3200
    else:
        for turn in range(2000):
            term = ("stop", "start")[turn % 2]
            await service.handle(json_request("POST", location, (ACTION % term).encode(), {"action": term}))
        writes = 2000
    (marks / "writes").write_text(str(writes))
    (marks / "done").touch()
    await asyncio.sleep(1)  # strace detaches
    await service.stop()
    await store.close()
    directory.cleanup()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], Path(sys.argv[2])))

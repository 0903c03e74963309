"""CPU per request of the service alone (no HTTP), JSON bodies as `make bench` sends them.

Store: the memory store, or the durable SQLite store with SQLITE=1 (its writer thread counted);
cloud: simulated, delay 0. TEXT=1 sends text/plain bodies (bench/inprocess.py's) instead of JSON. Used for the A/B figures of docs/performance.md (2026-12-06 22:05):
run it on two commits one after the other (PYTHONPATH=<other checkout>/src for the other).

    .venv/bin/python bench/probes/service_cpu.py ROUNDS create|action
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parent.parent))
from inprocess import ACTION as TEXT_ACTION
from inprocess import JSON, KIND, cpu_per_call, request

from occipy.backends.simulated import SimulatedDriver
from occipy.model.standard import standard_registry
from occipy.service.messages import OcciRequest
from occipy.service.options import ServiceOptions
from occipy.service.pipeline import Service
from occipy.store.memory import MemoryStore
from occipy.store.sql import SqlStore

CREATE = (b'{"kind":"http://schemas.ogf.org/occi/infrastructure#compute","attributes":'
          b'{"occi.core.title":"bench","occi.compute.cores":2,"occi.compute.memory":4.0}}')
ACTION = '{"action":"http://schemas.ogf.org/occi/infrastructure/compute/action#%s"}'


def json_request(method: str, path: str, body: bytes = b"", query: dict[str, str] | None = None) -> OcciRequest:
    if os.environ.get("TEXT"):
        text = KIND if body == CREATE else TEXT_ACTION.format((query or {}).get("action", "")).encode()
        return request(method, path, text, query=query)
    return OcciRequest(method=method, path=path, query=query or {}, body=body, base_url="http://x",
                       headers=[("accept", JSON), ("content-type", JSON)])


@contextlib.asynccontextmanager
async def durable_service() -> AsyncIterator[Service]:
    """A started service on the durable SQLite store in a temp dir (simulated cloud, delay 0),
    stopped and removed afterwards (bench/probes/action_store.py, write_syscalls.py)."""
    with tempfile.TemporaryDirectory(prefix="occipy-probe-") as directory:
        store = SqlStore(f"sqlite:///{directory}/occipy.db")
        await store.open()
        service = Service(standard_registry(), store, SimulatedDriver(delay=0),
                          ServiceOptions(sync_wait=1.0, reconcile_interval=0))
        await service.start()
        try:
            yield service
        finally:
            await service.stop()
            await store.close()


async def create_group(service: Service, size: int = 32) -> None:
    """`size` creates at once, as `make bench`'s 64 connections make the store group them."""
    await asyncio.gather(*(service.handle(json_request("POST", "/compute/", CREATE)) for _ in range(size)))


async def create_one(service: Service) -> str:
    """Create one compute; its path (what the start/stop probes flip)."""
    created = await service.handle(json_request("POST", "/compute/", CREATE))
    return dict(created.headers)["Location"][len("http://x"):]


def flip_request(location: str, turn: int) -> OcciRequest:
    """The `turn`-th start/stop of a compute created active: stop on even turns, start on odd."""
    term = ("stop", "start")[turn % 2]
    return json_request("POST", location, (ACTION % term).encode(), {"action": term})


async def main(rounds: int, what: str) -> None:
    directory = tempfile.TemporaryDirectory(prefix="occipy-probe-")
    store = MemoryStore() if not os.environ.get("SQLITE") else SqlStore(f"sqlite:///{directory.name}/occipy.db")
    await store.open()
    service = Service(standard_registry(), store, SimulatedDriver(delay=0),
                      ServiceOptions(sync_wait=1.0, reconcile_interval=0))
    await service.start()
    location = await create_one(service)
    flips = iter(range(10**9))

    def action() -> OcciRequest:
        return flip_request(location, next(flips))

    if what == "create":
        print(what, await cpu_per_call(lambda: service.handle(json_request("POST", "/compute/", CREATE)), rounds))
    else:
        print(what, await cpu_per_call(lambda: service.handle(action()), rounds))
    await service.stop()
    await store.close()
    directory.cleanup()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), sys.argv[2]))

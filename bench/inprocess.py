"""CPU per request in process, layer by layer: the service alone, the ASGI app, and uvicorn's protocol
with the app (a fake transport: no sockets, no syscalls), against bench/floor.py at the same layers.

`make bench` measures whole requests over loopback; this script says where the CPU of one request
goes, with a figure per layer that moves little on a loaded machine (CPU time, not wall time).
Store: MemoryStore (the service's cost without SQL), then the durable SqlStore on SQLite for the
writes and a 10,000-compute JSON collection (the process's CPU, its writer thread included);
cloud: simulated, delay 0.

Usage: .venv/bin/python bench/inprocess.py [--rounds N]   (prints JSON: microseconds per request)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from occipy.backends.simulated import SimulatedDriver
from occipy.http.app import create_app
from occipy.http.protocol import EdgeLimits, protocol_class
from occipy.model.standard import standard_registry
from occipy.service.messages import OcciRequest
from occipy.service.options import ServiceOptions
from occipy.service.pipeline import Service
from occipy.store.base import EntityQuery
from occipy.store.memory import MemoryStore

sys.path.insert(0, str(Path(__file__).parent))
from floor import app as floor_app  # noqa: E402

INFRA = "http://schemas.ogf.org/occi/infrastructure#"
KIND = f'Category: compute; scheme="{INFRA}"; class="kind"\n'.encode()
ACTION = 'Category: {}; scheme="http://schemas.ogf.org/occi/infrastructure/compute/action#"; class="action"\n'
JSON = "application/occi+json"


def request(method: str, path: str, body: bytes = b"", accept: str = "text/plain",
            query: dict[str, str] | None = None) -> OcciRequest:
    """A service request as the HTTP adapter makes it (base URL http://x)."""
    return OcciRequest(method=method, path=path, query=query or {}, body=body, base_url="http://x",
                       headers=[("accept", accept), ("content-type", "text/plain")])


async def one_compute(service: Service) -> tuple[str, Callable[[], OcciRequest]]:
    """A new compute's location, and requests that stop and start it in turn (each one the state allows)."""
    created = await service.handle(request("POST", "/compute/", KIND))
    location = dict(created.headers)["Location"][len("http://x"):]
    flips = iter(range(10**9))

    def action() -> OcciRequest:
        term = ("stop", "start")[next(flips) % 2]
        return request("POST", location, ACTION.format(term).encode(), query={"action": term})

    return location, action


async def cpu_per_call(call: Callable[[], Awaitable[Any]], n: int) -> float:
    for _ in range(min(n, 300)):
        await call()
    started = time.process_time()
    for _ in range(n):
        await call()
    return round((time.process_time() - started) / n * 1e6, 1)


class _Transport(asyncio.Transport):
    """Enough of a socket transport for uvicorn's protocol: counts what is written."""

    def __init__(self) -> None:
        super().__init__()
        self.written: asyncio.Future[None] | None = None
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.written is not None and not self.written.done():
            self.written.set_result(None)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _protocol(protocol_cls: type, app: Any) -> tuple[Any, _Transport]:
    config = uvicorn.Config(app, http=protocol_cls, ws="none", server_header=False, lifespan="off",
                            log_level="warning", access_log=False)
    config.load()
    protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def over_protocol(protocol_cls: type, app: Any, path: str, n: int) -> float:
    """One keep-alive GET after another through uvicorn's httptools protocol and the app."""
    raw = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: {JSON}\r\n\r\n".encode()
    return await raw_over_protocol(protocol_cls, app, raw, n)


async def raw_over_protocol(protocol_cls: type, app: Any, raw: bytes, n: int) -> float:
    """The same request (`raw`, its bytes on the wire) again and again on one keep-alive connection."""
    protocol, transport = _protocol(protocol_cls, app)
    loop = asyncio.get_running_loop()

    async def one() -> None:
        transport.written = loop.create_future()
        protocol.data_received(raw)
        await transport.written
        for _ in range(3):  # the rest of the response cycle
            await asyncio.sleep(0)

    return await cpu_per_call(one, n)


async def over_asgi(app: Any, path: str, n: int) -> float:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1:8080"), (b"accept", JSON.encode())],
             "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 50000), "extensions": {}}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    return await cpu_per_call(lambda: app(dict(scope), receive, send), n)


async def main(rounds: int) -> dict[str, float]:
    driver = SimulatedDriver.from_options({"delay": "0"}, Path("/tmp"))
    service = Service(standard_registry(), MemoryStore(), driver, ServiceOptions(sync_wait=1.0, reconcile_interval=0))
    await service.start()

    location, action = await one_compute(service)

    out: dict[str, float] = {}
    out["service GET /-/ text"] = await cpu_per_call(lambda: service.handle(request("GET", "/-/")), rounds)
    out["service GET compute json"] = await cpu_per_call(
        lambda: service.handle(request("GET", location, accept=JSON)), rounds)
    out["service POST create"] = await cpu_per_call(lambda: service.handle(request("POST", "/compute/", KIND)),
                                                    rounds // 5)
    out["service POST action"] = await cpu_per_call(lambda: service.handle(action()), rounds // 5)
    out["asgi GET compute json"] = await over_asgi(create_app(service), location, rounds)
    out["asgi GET compute json, no metrics"] = await over_asgi(create_app(service, metrics=False), location, rounds)
    out["asgi floor GET"] = await over_asgi(floor_app, "/compute/x", rounds)
    out["protocol GET compute json (edge)"] = await over_protocol(protocol_class(EdgeLimits()), create_app(service),
                                                                  location, rounds)
    out["protocol floor GET (httptools)"] = await over_protocol(HttpToolsProtocol, floor_app, "/compute/x", rounds)
    await service.stop()
    out.update(await on_sqlite(rounds))
    return out


async def on_sqlite(rounds: int) -> dict[str, float]:
    """Writes and a large JSON collection on the durable SQLite store (one request at a time, and
    20 creates at once: group commit)."""
    import tempfile

    from occipy.store.sql import SqlStore

    with tempfile.TemporaryDirectory() as directory:
        driver = SimulatedDriver.from_options({"delay": "0"}, Path(directory))
        store = SqlStore(f"sqlite:///{directory}/occipy.db")
        service = Service(standard_registry(), store, driver, ServiceOptions(sync_wait=1.0, reconcile_interval=0))
        await store.open()
        await service.start()

        _, action = await one_compute(service)

        async def burst() -> None:
            await asyncio.gather(*(service.handle(request("POST", "/compute/", KIND)) for _ in range(20)))

        out: dict[str, float] = {}
        out["sqlite POST create"] = await cpu_per_call(lambda: service.handle(request("POST", "/compute/", KIND)),
                                                       rounds // 5)
        out["sqlite POST action"] = await cpu_per_call(lambda: service.handle(action()), rounds // 5)
        out["sqlite POST create, 20 at once (per create)"] = round(await cpu_per_call(burst, rounds // 100) / 20, 1)
        while await store.count(EntityQuery(kinds=(INFRA + "compute",))) < 10_000:
            await burst()

        async def collection() -> None:
            answer = await service.handle(request("GET", "/compute/", accept=JSON))
            if answer.stream is not None:
                async for _ in answer.stream:
                    pass

        out["sqlite GET /compute/ (10,000) json, ms"] = round(await cpu_per_call(collection, 20) / 1000, 2)
        await service.stop()
        await store.close()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5000)
    args = parser.parse_args()
    print(json.dumps(uvloop.run(main(args.rounds)), indent=1))

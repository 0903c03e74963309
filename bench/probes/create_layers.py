"""CPU of one JSON create, layer by layer, in process: the service alone; uvicorn's protocol (a fake
transport, no sockets) and the ASGI app around a service that answers a canned 201 (the HTTP layers
alone); the protocol, the app and the service together; and the floor's POST.

Store: the memory store (the service's Python without SQL), a new one for each figure (its cost per
create grows slowly with the entities it holds); cloud: simulated, delay 0; the collector set as
`occipy serve` sets it after start-up (frozen heap, gen-0 threshold 20,000). When the "together"
figure is more than the sum of the first two, the difference is what the layers cost each other
(the CPU's caches: each one alone keeps its working set warm).

    .venv/bin/python bench/probes/create_layers.py [ROUNDS_PER_LAYER]
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import Any

import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

sys.path.insert(0, str(Path(__file__).parent.parent))
from inprocess import JSON, cpu_per_call, floor_app, raw_over_protocol

from occipy.backends.simulated import SimulatedDriver
from occipy.http.app import create_app
from occipy.http.protocol import EdgeLimits, protocol_class
from occipy.model.standard import standard_registry
from occipy.service.messages import OcciRequest, OcciResponse
from occipy.service.options import ServiceOptions
from occipy.service.pipeline import Service
from occipy.store.memory import MemoryStore

BODY = (b'{"kind":"http://schemas.ogf.org/occi/infrastructure#compute","attributes":'
        b'{"occi.core.title":"bench","occi.compute.cores":2,"occi.compute.memory":4.0}}')
RAW = (b"POST /compute/ HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/occi+json\r\n"
       b"Accept: application/occi+json\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY


async def over_protocol(protocol_cls: type, app: Any, n: int) -> float:
    """One keep-alive POST after another through uvicorn's protocol and the app."""
    return await raw_over_protocol(protocol_cls, app, RAW, n)


def service_request() -> OcciRequest:
    return OcciRequest(method="POST", path="/compute/", query={}, body=BODY, base_url="http://x",
                       headers=[("accept", JSON), ("content-type", JSON)])


async def fresh_service() -> Service:
    service = Service(standard_registry(), MemoryStore(), SimulatedDriver(delay=0),
                      ServiceOptions(sync_wait=1.0, reconcile_interval=0))
    await service.start()
    return service


class _Canned:
    """A service that admits every request and answers each with one real create's 201."""

    def __init__(self, service: Service, answer: OcciResponse) -> None:
        self._service = service
        self._answer = answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    async def handle(self, request: OcciRequest, admission: Any = None) -> OcciResponse:
        return self._answer


async def main(n: int) -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    for _ in range(2):
        out: dict[str, float] = {}
        service = await fresh_service()
        out["service create"] = await cpu_per_call(lambda s=service: s.handle(service_request()), n)
        canned = _Canned(service, await service.handle(service_request()))
        out["HTTP layers alone (canned 201)"] = await over_protocol(
            protocol_class(EdgeLimits()), create_app(canned), n)  # type: ignore[arg-type]
        await service.stop()
        service = await fresh_service()
        out["together (edge protocol, app, service)"] = await over_protocol(
            protocol_class(EdgeLimits()), create_app(service), n)
        await service.stop()
        out["floor POST (httptools, Starlette)"] = await over_protocol(HttpToolsProtocol, floor_app, n)
        print(json.dumps(out))


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))

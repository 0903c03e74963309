"""The work of one request in CPU instructions, for `bench/probes/instructions.sh` (which runs this
under valgrind's callgrind and takes the difference of two round counts, so that start-up cancels).

Instructions, unlike CPU seconds, do not move with the host's load: two runs of one commit differ by
a few thousand instructions in ten billion (docs/performance.md, 2026-12-08), so a change of 1 % in
a request's work shows at once, where the served figures of `threads.sh` spread by ±15 %. What they
miss: system calls (SQLite's WAL writes, the sockets) and the CPU's caches.

Every mode runs 30 rounds of 32 requests first, then ROUNDS rounds (the collector set as `occipy
serve` sets it after them: frozen heap, gen-0 threshold 20,000); simulated cloud, delay 0:

    service-create   32 JSON creates at once through `Service.handle`, durable SQLite (one group)
    service-action   32 start/stop actions one after the other on one compute, durable SQLite
    http-create      32 connections through the edge protocol and the app, one create each,
                     durable SQLite (the served path of `make bench`'s creation, without sockets)
    http-canned      the same HTTP layers around a service that answers one real create's 201
    http-floor       bench/floor.py's app on uvicorn's httptools protocol, the same POST

    .venv/bin/python bench/probes/instructions.py MODE ROUNDS
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from create_layers import RAW, _Canned, fresh_service, service_request
from inprocess import _protocol, floor_app
from service_cpu import create_group, create_one, durable_service, flip_request

from occipy.http.app import create_app
from occipy.http.protocol import EdgeLimits, protocol_class

WARM = 30
PER_ROUND = 32


async def _rounds(one_round: Callable[[], Awaitable[None]], rounds: int) -> None:
    for _ in range(WARM):
        await one_round()
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)
    for _ in range(rounds):
        await one_round()


def _over_connections(app: Any, protocol_cls: type) -> Callable[[], Awaitable[None]]:
    """One round: each of PER_ROUND keep-alive connections sends RAW, then all answers are awaited."""
    connections = [_protocol(protocol_cls, app) for _ in range(PER_ROUND)]
    loop = asyncio.get_running_loop()

    async def one_round() -> None:
        for protocol, transport in connections:
            transport.written = loop.create_future()
            protocol.data_received(RAW)
        for _, transport in connections:
            await transport.written
        for _ in range(3):  # the rest of the response cycles
            await asyncio.sleep(0)

    return one_round


async def main(mode: str, rounds: int) -> None:
    if mode == "http-floor":
        await _rounds(_over_connections(floor_app, HttpToolsProtocol), rounds)
        return
    if mode == "http-canned":
        service = await fresh_service()
        canned = _Canned(service, await service.handle(service_request()))
        await _rounds(_over_connections(create_app(canned), protocol_class(EdgeLimits())), rounds)  # type: ignore[arg-type]
        await service.stop()
        return
    async with durable_service() as service:
        if mode == "service-create":
            await _rounds(lambda: create_group(service, PER_ROUND), rounds)
        elif mode == "service-action":
            location = await create_one(service)
            turns = iter(range(10**9))

            async def flips() -> None:
                for _ in range(PER_ROUND):
                    await service.handle(flip_request(location, next(turns)))

            await _rounds(flips, rounds)
        elif mode == "http-create":
            await _rounds(_over_connections(create_app(service), protocol_class(EdgeLimits())), rounds)
        else:
            raise SystemExit(f"unknown mode {mode!r}; see the docstring")


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2])))

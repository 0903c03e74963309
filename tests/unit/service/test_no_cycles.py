"""The hot requests leave no reference cycles behind (docs/performance.md, 2026-12-07 04:10).

A request that leaves a cycle leaves garbage only the cyclic collector frees. At a few thousand
requests a second that garbage set off a young collection every couple of seconds, 20-38 ms
each, and the older generations' collections behind them took 130-140 ms: the pauses that set
the 99th percentile of `make bench`'s one-connection start/stop. One nested recursive function
(Registry.depends_closure's) left six objects a request.

Each case runs its request a number of times with the collector off and counts what
`gc.collect()` then finds unreachable: it must be nothing.
"""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from occipy.backends.simulated import SimulatedDriver
from occipy.store.memory import MemoryStore
from occipy.store.sql import SqlStore
from tests.unit.service.conftest import COMPUTE_KIND, Harness, running

ROUNDS = 50
ACTION = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
JSON = "application/occi+json"


@pytest.fixture(params=["memory", "sqlite"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    store = MemoryStore() if request.param == "memory" else SqlStore(f"sqlite:///{tmp_path}/occipy.db")
    async with running(store, SimulatedDriver.from_options({"delay": "0", "seed": "1"}, tmp_path)) as started:
        yield started


async def unreachable_after(call: Callable[[int], Awaitable[object]]) -> int:
    """What the cyclic collector finds after ROUNDS calls (two calls first, to warm caches)."""
    for turn in range(2):
        await call(turn)
    gc.collect()
    gc.disable()
    try:
        for turn in range(2, 2 + ROUNDS):
            await call(turn)
        return gc.collect()
    finally:
        gc.enable()


async def test_actions_leave_no_cycles(harness: Harness) -> None:
    location = await harness.create_compute()

    async def text(turn: int) -> None:
        term = ("stop", "start")[turn % 2]
        answer = await harness.text("POST", f"{location}?action={term}", f'Category: {term}; scheme="{ACTION}"; class="action"')
        assert answer.status == 200, answer.text

    async def as_json(turn: int) -> None:
        term = ("stop", "start")[turn % 2]
        answer = await harness.json("POST", f"{location}?action={term}", {"action": ACTION + term})
        assert answer.status == 200, answer.text

    assert await unreachable_after(text) == 0
    assert await unreachable_after(as_json) == 0


async def test_creates_leave_no_cycles(harness: Harness) -> None:
    async def text(turn: int) -> None:
        await harness.create_compute("X-OCCI-Attribute: occi.compute.cores=2")

    async def as_json(turn: int) -> None:
        answer = await harness.json("POST", "/compute/", {
            "kind": "http://schemas.ogf.org/occi/infrastructure#compute",
            "attributes": {"occi.core.title": f"c{turn}", "occi.compute.memory": 4.0}})
        assert answer.status == 201, answer.text

    assert await unreachable_after(text) == 0
    assert await unreachable_after(as_json) == 0


@pytest.mark.parametrize("accept", ["text/plain", "text/occi", JSON])
async def test_reads_leave_no_cycles(harness: Harness, accept: str) -> None:
    location = await harness.create_compute()
    await harness.create_compute()

    async def reads(turn: int) -> None:
        for path in (location, "/-/", "/compute/"):
            answer = await harness.call("GET", path, accept=accept)
            assert answer.status == 200, answer.text
        if accept == JSON:
            json.loads(answer.body)

    assert await unreachable_after(reads) == 0


async def test_updates_and_deletes_leave_no_cycles(harness: Harness) -> None:
    locations = [await harness.create_compute() for _ in range(2 + ROUNDS)]

    async def update_then_delete(turn: int) -> None:
        location = locations[turn]
        answer = await harness.text("POST", location, COMPUTE_KIND, "X-OCCI-Attribute: occi.core.title=\"renamed\"")
        assert answer.status == 200, answer.text
        answer = await harness.call("DELETE", location)
        assert answer.status == 200, answer.text

    assert await unreachable_after(update_then_delete) == 0

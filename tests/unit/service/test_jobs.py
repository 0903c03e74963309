"""Long work: quick cloud answers are written once; slow ones show progress and never leak."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from occipy.backends.base import Inventories
from occipy.backends.simulated import SimulatedDriver
from occipy.model.standard import standard_registry
from occipy.service.options import ServiceOptions
from occipy.service.pipeline import Service
from occipy.store.base import Batch
from occipy.store.memory import MemoryStore
from tests.unit.service.conftest import Harness

ACTION = "http://schemas.ogf.org/occi/infrastructure/compute/action#"


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.commits = 0

    async def commit(self, batch: Batch) -> None:
        self.commits += 1
        await super().commit(batch)


async def _harness(tmp_path: Path, delay: str, sync_wait: float) -> tuple[Harness, CountingStore]:
    driver = SimulatedDriver.from_options({"delay": delay, "seed": "2"}, tmp_path)
    store = CountingStore()
    service = Service(standard_registry(), store, driver, ServiceOptions(sync_wait=sync_wait, reconcile_interval=0))
    await store.open()
    await service.start()
    return Harness(service, driver), store


@pytest.fixture
async def quick(tmp_path: Path) -> AsyncIterator[tuple[Harness, CountingStore]]:
    harness, store = await _harness(tmp_path, "0", 1.0)
    yield harness, store
    await harness.service.stop()


@pytest.fixture
async def slow(tmp_path: Path) -> AsyncIterator[tuple[Harness, CountingStore]]:
    harness, store = await _harness(tmp_path, "0.3", 0.02)
    yield harness, store
    await harness.service.stop()


async def test_quick_create_and_action_are_one_write_each(quick: tuple[Harness, CountingStore]) -> None:
    harness, store = quick
    before = store.commits
    location = await harness.create_compute()
    assert store.commits == before + 1
    answer = await harness.json("POST", location + "?action=stop", {"action": ACTION + "stop"})
    assert answer.status == 200 and answer.json()["attributes"]["occi.compute.state"] == "inactive"
    assert store.commits == before + 2
    operation = answer.header("X-OCCI-Operation")
    assert operation is not None
    record = await harness.get_json(operation.split("test.example", 1)[1])
    assert record["state"] == "succeeded"


async def test_slow_create_shows_progress_then_the_result(slow: tuple[Harness, CountingStore]) -> None:
    harness, _ = slow
    location = await harness.create_compute()
    attributes = (await harness.get_json(location))["attributes"]
    assert attributes["occi.compute.state"] == "inactive"
    assert attributes["occi.compute.state.message"] == "creating"
    queued = await harness.json("POST", location + "?action=stop", {"action": ACTION + "stop"})
    assert queued.status == 200  # accepted while the creation runs: it runs after it (D-QUEUE)
    await asyncio.sleep(1.0)
    attributes = (await harness.get_json(location))["attributes"]
    assert attributes["occi.compute.state"] == "inactive"
    assert "occi.compute.state.message" not in attributes


async def test_delete_during_a_slow_create_leaves_nothing_in_the_cloud(slow: tuple[Harness, CountingStore]) -> None:
    harness, _ = slow
    location = await harness.create_compute()
    assert (await harness.call("DELETE", location)).status == 200
    await asyncio.sleep(1.0)  # the creation ends (0.3 s), then the object it made is deleted (0.3 s)
    assert (await harness.call("GET", location)).status == 404
    assert isinstance(harness.driver, Inventories)
    assert [item for item in await harness.driver.inventory() if item.ref.resource == "compute"] == []


async def test_slow_action_is_recorded_running_then_succeeded(slow: tuple[Harness, CountingStore]) -> None:
    harness, _ = slow
    location = await harness.create_compute()
    await asyncio.sleep(0.5)
    answer = await harness.text("POST", location + "?action=stop",
                                f'Category: stop; scheme="{ACTION}"; class="action"')
    assert answer.status == 200
    assert "stop in progress" in answer.text
    operation = answer.header("X-OCCI-Operation")
    assert operation is not None
    path = operation.split("test.example", 1)[1]
    assert (await harness.get_json(path))["state"] == "running"
    await asyncio.sleep(0.5)
    assert (await harness.get_json(path))["state"] == "succeeded"
    assert (await harness.get_json(location))["attributes"]["occi.compute.state"] == "inactive"


async def test_a_reconcile_pass_lets_the_event_loop_run(harness: Harness) -> None:
    # A simulated cloud and a MemoryStore answer without suspending: a pass over every entity
    # must still give other requests turns of the loop (it held the loop 0.37 s at 10,000).
    for _ in range(6):
        await asyncio.gather(*(harness.create_compute() for _ in range(50)))
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = turns
    await harness.service.cloud.default.reconcile_all()
    during = turns - before
    ticking.cancel()
    assert during >= 300 // 50, during


async def test_a_reconcile_pass_works_in_slices_and_rests_between_them(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # A pass over 35,000 computes held every request that met it 5-20 ms for 1-2 s (make bench's
    # start/stop p99): it now runs RECONCILE_SLICE seconds of the loop at most, then rests
    # RECONCILE_REST times as long. Here observing one object "takes" step of a fake clock (a
    # power of two: the differences are exact).
    from occipy.service import cloud as cloud_module

    step = 2.0 ** -10
    await asyncio.gather(*(harness.create_compute() for _ in range(30)))
    now = 0.0
    rests: list[tuple[int, float]] = []  # (objects observed before the rest, its length)
    observed = 0
    cloud = harness.service.cloud.default
    real_observe = cloud.calls.observe

    async def slow_observe(ref: Any) -> Any:
        nonlocal now, observed
        now += step
        observed += 1
        return await real_observe(ref)

    async def rest(seconds: float) -> None:
        rests.append((observed, seconds))

    monkeypatch.setattr(cloud.calls, "observe", slow_observe)
    monkeypatch.setattr(cloud_module, "Slices", functools.partial(
        cloud_module.Slices, clock=lambda: now, sleep=rest))
    worked = await cloud.reconcile_all()
    assert observed == 30
    slice_objects = math.ceil(cloud_module.RECONCILE_SLICE / step)
    assert [count for count, _ in rests] == list(range(slice_objects, 31, slice_objects)), rests
    assert {seconds for _, seconds in rests} == {slice_objects * step * cloud_module.RECONCILE_REST}, rests
    assert worked == 30 * step  # what the pass worked: its slices, the last one included, not its rests


async def test_the_reconcile_takes_a_bounded_share_of_the_loop_however_many_entities(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # A pass costs 19-31 us an entity (SQLite, simulated cloud): at 30 s intervals that was a
    # growing share of the CPU (a tenth of a soak's samples at 130,000 computes; past a million,
    # a pass would never end).
    # D-RECONCILE-SHARE: after a pass that worked W seconds, the next starts reconcile_interval
    # later, or W / RECONCILE_SHARE later when that is longer.
    from occipy.service import cloud as cloud_module

    cloud = harness.service.cloud.default
    interval = 30.0
    monkeypatch.setattr(cloud, "options", dataclasses.replace(cloud.options, reconcile_interval=interval))
    assert cloud_module.reconcile_pause(interval, 0.0) == interval
    long_pass = interval * cloud_module.RECONCILE_SHARE * 4
    assert cloud_module.reconcile_pause(interval, long_pass) == pytest.approx(interval * 4)
    passes = iter([0.01, long_pass, 0.01])

    async def reconcile_all() -> float:
        return next(passes)

    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 4:
            raise asyncio.CancelledError

    monkeypatch.setattr(cloud, "reconcile_all", reconcile_all)
    with pytest.raises(asyncio.CancelledError):
        await cloud._periodic(sleep)
    assert pauses == [interval, interval, pytest.approx(interval * 4), interval]

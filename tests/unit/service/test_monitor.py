"""The monitor (service/monitor.py) on MemoryStore + the simulated cloud: sampling, publishing, retention,
SLA assessment, agreement ends; discovery of what the driver realises (docs/monitoring.md, docs/sla.md).

The background task is stopped; each test drives `Monitor.tick(now)` itself, so time is explicit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from occipy.backends.base import Ref
from occipy.backends.simulated import SimulatedDriver
from occipy.model.extensions import egi, monitoring, sla
from occipy.model.standard import standard_registry
from occipy.service.options import ServiceOptions
from occipy.service.pipeline import Service
from occipy.store.memory import MemoryStore
from tests.unit.service.conftest import Harness

JSON = "application/occi+json"
PROVIDER = "http://occipy.org/occi/"
CPU = PROVIDER + "monitoring/metric#cpu"
AVAILABILITY_METRIC = PROVIDER + "monitoring/metric#availability"
PUBLISHER = PROVIDER + "monitoring/publisher#attributes"
AVAILABILITY_TERM = PROVIDER + "sla/term#availability"


class Unmeasured(SimulatedDriver):
    """A cloud that measures nothing and has no security groups or floating IPs."""

    sampled: ClassVar[frozenset[str]] = frozenset()
    supports: ClassVar[dict[str, Any]] = {k: v for k, v in SimulatedDriver.supports.items() if k not in ("securitygroup", "securitygrouplink",
                                                                               "ipreservation")}


class SlowReader(SimulatedDriver):
    """A cloud that takes 0.3 s to answer each reading (as Docker's stats API takes about 1 s)."""

    async def sample(self, ref: Ref) -> Any:
        await asyncio.sleep(0.3)
        return await super().sample(ref)


async def _harness(tmp_path: Path, driver: SimulatedDriver, **options: Any) -> tuple[Service, Harness, MemoryStore]:
    store = MemoryStore()
    service = Service(standard_registry(), store, driver,
                      ServiceOptions(sync_wait=1.0, reconcile_interval=0, **options))
    await store.open()
    await driver.open()
    await service.start()
    await service.monitor.stop()  # the tests tick it themselves
    return service, Harness(service, driver), store


@pytest.fixture
async def measured(tmp_path: Path) -> AsyncIterator[tuple[Service, Harness, MemoryStore]]:
    driver = SimulatedDriver.from_options({"delay": "0", "seed": "7"}, tmp_path)
    service, harness, store = await _harness(tmp_path, driver, monitoring_retention=3)
    yield service, harness, store
    await service.stop()
    await driver.close()


async def _create(h: Harness, kind: str, attributes: dict[str, Any], mixins: tuple[str, ...] = ()) -> str:
    term = kind.rpartition("#")[2]
    doc: dict[str, Any] = {"kind": kind, "attributes": attributes}
    if mixins:
        doc["mixins"] = list(mixins)
    answer = await h.json("POST", f"/{term}/", doc)
    assert answer.status == 201, answer.text
    return answer.location


def _link(kind: str, source: str, target: str, **attributes: Any) -> dict[str, Any]:
    return {"occi.core.source": source, "occi.core.target": target, **attributes}


async def _attributes(h: Harness, location: str) -> dict[str, Any]:
    return dict((await h.get_json(location))["attributes"])


async def test_discovery_offers_what_the_simulated_cloud_realises(measured: tuple[Service, Harness, MemoryStore]) -> None:
    _, h, _ = measured
    found = {f"{c['scheme']}{c['term']}" for group in ("kinds", "mixins") for c in (await h.get_json("/-/"))[group]}
    for type_id in (monitoring.SENSOR, monitoring.COLLECTOR, egi.SECURITYGROUP, egi.IPRESERVATION,
                    egi.FLOATINGIPPOOL, CPU, PUBLISHER, AVAILABILITY_TERM):
        assert type_id in found, type_id


async def test_a_cloud_that_cannot_realise_them_does_not_offer_them(tmp_path: Path) -> None:
    driver = Unmeasured.from_options({"delay": "0"}, tmp_path)
    service, h, _ = await _harness(tmp_path, driver)
    try:
        document = await h.get_json("/-/")
        found = {f"{c['scheme']}{c['term']}" for group in ("kinds", "mixins") for c in document[group]}
        for type_id in (monitoring.SENSOR, monitoring.COLLECTOR, monitoring.METRIC, egi.SECURITYGROUP,
                        egi.SECURITYGROUPLINK, egi.IPRESERVATION, egi.FLOATINGIPPOOL, CPU):
            assert type_id not in found, type_id
        assert sla.AGREEMENT in found  # SLAs need no feature of the driver
        for kind, attributes in ((monitoring.SENSOR, {"occi.sensor.period": 5}),
                                 (egi.SECURITYGROUP, {egi.RULES: []}), (egi.IPRESERVATION, {})):
            answer = await h.json("POST", f"/{kind.rpartition('#')[2]}/", {"kind": kind, "attributes": attributes})
            assert answer.status == 501, (kind, answer.text)
            assert "cannot realise" in answer.text
        vm = await h.create_compute()
        answer = await h.json("POST", "/networkinterface/", {
            "kind": "http://schemas.ogf.org/occi/infrastructure#networkinterface", "mixins": [egi.FLOATINGIPPOOL],
            "attributes": _link("", vm, "/network/none")})
        assert answer.status in (404, 501), answer.text  # the target does not exist; never a 500
    finally:
        await service.stop()


async def test_a_collector_samples_its_target_and_the_sensor_publishes(
        measured: tuple[Service, Harness, MemoryStore]) -> None:
    service, h, store = measured
    vm = await h.create_compute()
    sensor = await _create(h, monitoring.SENSOR, {"occi.sensor.period": 1})
    collector = await _create(h, monitoring.COLLECTOR, _link("", sensor, vm, **{"occipy.monitoring.cpu.out": "web.cpu"}),
                              mixins=(CPU, AVAILABILITY_METRIC))
    now = time.time()
    await service.monitor.tick(now)
    await asyncio.sleep(0.05)  # the simulated counters move with the wall clock
    await service.monitor.tick(now + 1.0)
    attributes = await _attributes(h, sensor)
    values = attributes["occipy.monitoring.values"]
    assert values["availability"] == 1.0
    assert 20.0 <= values["web.cpu"] <= 30.0  # a quarter of its core (the simulated load)
    assert {entry["channel"] for entry in attributes["occipy.monitoring.history"]} == {"web.cpu", "availability"}
    assert PUBLISHER in (await h.get_json(sensor))["mixins"]
    samples = await store.samples(collector=collector)
    assert {s.metric for s in samples} == {"cpu", "availability"} and all(s.target == vm for s in samples)
    # Not due again before its period: nothing new.
    await service.monitor.tick(now + 1.2)
    assert len(await store.samples(collector=collector)) == len(samples)


async def test_one_pass_reads_its_objects_at_once(tmp_path: Path) -> None:
    driver = SlowReader.from_options({"delay": "0"}, tmp_path)
    service, h, store = await _harness(tmp_path, driver)
    try:
        sensor = await _create(h, monitoring.SENSOR, {"occi.sensor.period": 1})
        collectors = []
        for n in range(3):
            vm = await h.create_compute()
            collectors.append(await _create(h, monitoring.COLLECTOR, _link("", sensor, vm, **{
                "occipy.monitoring.availability.out": f"vm{n}"}), mixins=(AVAILABILITY_METRIC,)))
        started = time.monotonic()
        await service.monitor.tick(time.time())
        elapsed = time.monotonic() - started
        assert elapsed < 0.75, f"three 0.3 s readings took {elapsed:.2f} s: read one after another"
        for collector in collectors:
            assert [s.value for s in await store.samples(collector=collector)] == [1.0]
        assert set((await _attributes(h, sensor))["occipy.monitoring.values"]) == {"vm0", "vm1", "vm2"}
    finally:
        await service.stop()


async def test_a_stopped_compute_is_unavailable_and_history_is_bounded(
        measured: tuple[Service, Harness, MemoryStore]) -> None:
    service, h, store = measured
    vm = await h.create_compute()
    entity = await store.get(vm)
    assert entity is not None and entity.backend_id is not None
    sensor = await _create(h, monitoring.SENSOR, {"occi.sensor.period": 1, "occipy.monitoring.history.length": 2},
                           mixins=(PUBLISHER,))
    collector = await _create(h, monitoring.COLLECTOR, _link("", sensor, vm), mixins=(AVAILABILITY_METRIC,))
    await h.driver.simulate_external(Ref("compute", entity.backend_id), "inactive")
    now = time.time()
    for step in range(5):
        await service.monitor.tick(now + 61 * step)  # a minute apart: each pass prunes
    samples = await store.samples(collector=collector)
    assert [s.value for s in samples] == [0.0, 0.0, 0.0]  # monitoring_retention=3
    history = (await _attributes(h, sensor))["occipy.monitoring.history"]
    assert len(history) == 2  # occipy.monitoring.history.length


async def test_a_suspended_sensor_measures_nothing(measured: tuple[Service, Harness, MemoryStore]) -> None:
    service, h, store = measured
    vm = await h.create_compute()
    sensor = await _create(h, monitoring.SENSOR, {"occi.sensor.period": 1, "occi.sensor.timebase": "-1"})
    collector = await _create(h, monitoring.COLLECTOR, _link("", sensor, vm))
    await service.monitor.tick(time.time())
    assert await store.samples(collector=collector) == []


async def _accepted_agreement(h: Harness, target: str, **attributes: Any) -> str:
    agreement = await _create(h, sla.AGREEMENT, attributes, mixins=(AVAILABILITY_TERM,))
    answer = await h.json("POST", f"{agreement}?action=accept", {"action": sla.ACCEPT})
    assert answer.status == 200, answer.text
    await _create(h, sla.AGREEMENT_LINK, _link("", agreement, target))
    return agreement


async def test_an_availability_term_is_violated_when_the_compute_stops(
        measured: tuple[Service, Harness, MemoryStore]) -> None:
    service, h, store = measured
    vm = await h.create_compute()
    sensor = await _create(h, monitoring.SENSOR, {"occi.sensor.period": 1})
    await _create(h, monitoring.COLLECTOR, _link("", sensor, vm), mixins=(AVAILABILITY_METRIC,))
    agreement = await _accepted_agreement(h, vm, **{"availability.term.uptime": 0.75})
    assert (await _attributes(h, agreement))["availability.term.state"] == "Undefined"
    now = time.time()
    await service.monitor.tick(now)
    attributes = await _attributes(h, agreement)
    assert attributes["availability.term.state"] == "Fulfilled"
    assert attributes["occipy.agreement.violated"] is False
    entity = await store.get(vm)
    assert entity is not None and entity.backend_id is not None
    await h.driver.simulate_external(Ref("compute", entity.backend_id), "inactive")
    for step in range(1, 4):
        await service.monitor.tick(now + 10.0 * step)  # sla_interval is 10 s
    attributes = await _attributes(h, agreement)
    assert attributes["availability.term.state"] == "Violated"  # 1 of 4 samples up: 0.25 < 0.75
    assert attributes["occipy.agreement.violated"] is True
    assert "VIOLATED availability: 0.25 < 0.75" in attributes["occipy.agreement.message"]
    assert attributes["occi.agreement.state"] == "Accepted"  # a violation is not an agreement state


async def test_an_agreement_past_effective_until_is_terminated(measured: tuple[Service, Harness, MemoryStore]) -> None:
    service, h, _ = measured
    vm = await h.create_compute()
    soon = datetime.now(UTC) + timedelta(seconds=30)
    agreement = await _accepted_agreement(h, vm, **{"occi.agreement.effectiveUntil": sla.format_datetime(soon)})
    await service.monitor.tick(time.time())
    assert (await _attributes(h, agreement))["occi.agreement.state"] == "Accepted"
    await service.monitor.tick(time.time() + 60)
    attributes = await _attributes(h, agreement)
    assert attributes["occi.agreement.state"] == "Terminated"
    assert "effectiveUntil" in attributes["occipy.agreement.message"]
    answer = await h.json("POST", f"{agreement}?action=resume", {"action": sla.RESUME})
    assert answer.status == 409


async def test_security_group_rules_change_on_the_live_group(measured: tuple[Service, Harness, MemoryStore]) -> None:
    _, h, store = measured
    rules = [{"type": "inbound", "protocol": "tcp", "port": "22"}]
    group = await _create(h, egi.SECURITYGROUP, {egi.RULES: rules})
    stored = await store.get(group)
    assert stored is not None and stored.backend_id is not None
    assert stored.attributes["occi.securitygroup.state"] == "active"
    answer = await h.json("POST", group, {"kind": egi.SECURITYGROUP, "attributes": {
        egi.RULES: [*rules, {"type": "inbound", "protocol": "icmp", "range": "10.0.0.0/8"}]}})
    assert answer.status == 200, answer.text
    observed = await h.driver.observe(Ref("securitygroup", stored.backend_id))
    assert observed is not None
    assert [(r.protocol, r.ports, r.remote) for r in observed.facts.rules] == [  # type: ignore[union-attr]
        ("tcp", (22, 22), None), ("icmp", None, "10.0.0.0/8")]


async def test_a_floating_ip_is_used_once_attached(measured: tuple[Service, Harness, MemoryStore]) -> None:
    _, h, _ = measured
    reservation = await _create(h, egi.IPRESERVATION, {})
    attributes = await _attributes(h, reservation)
    assert attributes["occi.ipreservation.address"].startswith("192.0.2.")
    assert attributes["occi.ipreservation.used"] is False
    vm = await h.create_compute()
    nic = await _create(h, "http://schemas.ogf.org/occi/infrastructure#networkinterface", _link("", vm, reservation))
    assert (await _attributes(h, nic))["occi.networkinterface.address"] == attributes["occi.ipreservation.address"]
    answer = await h.json("POST", f"{reservation}?action=up", {"action": "http://schemas.ogf.org/occi/infrastructure/network/action#up"})
    assert answer.status == 200, answer.text
    after = await _attributes(h, reservation)
    assert after["occi.ipreservation.used"] is True and after["occi.ipreservation.state"] == "active"


async def test_a_second_interface_to_an_attached_floating_ip_is_409(measured: tuple[Service, Harness, MemoryStore]) -> None:
    # A floating address is attached to one compute at a time: refused before any cloud call.
    _, h, _ = measured
    nic_kind = "http://schemas.ogf.org/occi/infrastructure#networkinterface"
    reservation = await _create(h, egi.IPRESERVATION, {})
    first, second = await h.create_compute(), await h.create_compute()
    nic = await _create(h, nic_kind, _link("", first, reservation))
    again = await h.json("POST", "/networkinterface/", {"kind": nic_kind, "attributes": _link("", second, reservation)})
    assert again.status == 409, again.text
    assert "already associated" in again.text and nic in again.text
    # once the first link is gone, the address can be attached again
    assert (await h.call("DELETE", nic)).status == 200
    await _create(h, nic_kind, _link("", second, reservation))


class _ClaimHeldElsewhere:
    """The lanes' view of a shared store (several server processes) whose claims another process holds."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def claim(self, key: str) -> bool:
        self.asked.append(key)
        return False


async def test_on_a_shared_store_only_the_holder_of_the_monitor_claim_samples(
        measured: tuple[Service, Harness, MemoryStore]) -> None:
    service, h, store = measured
    vm = await h.create_compute()
    sensor = await _create(h, monitoring.SENSOR, {"occi.sensor.period": 1})
    collector = await _create(h, monitoring.COLLECTOR, _link("", sensor, vm), mixins=(CPU, AVAILABILITY_METRIC))
    shared = _ClaimHeldElsewhere()
    lanes = service.monitor.cloud.lanes
    lanes.shared = shared  # type: ignore[assignment]
    try:
        await service.monitor.tick(time.time())
    finally:
        lanes.shared = None
    assert shared.asked == ["occipy:monitor"]
    assert await store.samples(collector=collector) == []  # another process monitors
    await service.monitor.tick(time.time())
    assert await store.samples(collector=collector) != []

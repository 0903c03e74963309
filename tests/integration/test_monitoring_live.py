"""Monitoring realised (docs/monitoring.md): a live server measures through sensors and collectors.

On the simulated cloud (HTTP, the SDK): a collector samples a compute's synthetic counters at its
period; the sensor shows the latest value per channel and a bounded history in every rendering;
stopping the compute makes it unavailable; deleting the sensor stops the measuring. On libvirt
(qemu:///system, marker `libvirt`): the same against a real TCG guest's domain statistics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from occipy import errors
from occipy.client import Client
from tests.integration.conftest import LiveServer, start_server

SENSOR = "http://schemas.ogf.org/occi/monitoring#sensor"
COLLECTOR = "http://schemas.ogf.org/occi/monitoring#collector"
PROVIDER = "http://occipy.org/occi/"
CPU = PROVIDER + "monitoring/metric#cpu"
AVAILABILITY = PROVIDER + "monitoring/metric#availability"
MEMORY = PROVIDER + "monitoring/metric#memory"
PUBLISHER = PROVIDER + "monitoring/publisher#attributes"


def eventually(check: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("monitoring"), monitoring_tick=0.5)
    yield live
    live.stop()


@pytest.mark.spec("MON-01")
@pytest.mark.spec("MON-06")
def test_a_sensor_shows_what_its_collector_measures(server: LiveServer) -> None:
    with Client(server.url, media_type="json", timeout=30) as occi:
        vm = occi.create("compute", title="measured")
        occi.wait_for(vm, state="active", timeout=10, interval=0.05)
        sensor = occi.create(SENSOR, mixins=[PUBLISHER], attributes={"occi.sensor.period": 1.0,
                                                                      "occipy.monitoring.history.length": 4})
        collector = occi.link(sensor, vm, kind=COLLECTOR, mixins=[CPU, AVAILABILITY],
                              attributes={"occipy.monitoring.cpu.out": "vm.cpu"})
        assert occi.get(collector).attributes["occi.collector.period"] == 1.0  # from its sensor

        def measured() -> dict[str, Any] | None:
            values = occi.get(sensor).attributes.get("occipy.monitoring.values")
            return values if isinstance(values, dict) and "vm.cpu" in values else None

        values = eventually(measured, 10, "a cpu value on the sensor")
        assert values["availability"] == 1.0 and 20.0 <= values["vm.cpu"] <= 30.0
        history = eventually(lambda: len(occi.get(sensor).attributes["occipy.monitoring.history"]) == 4
                             and occi.get(sensor).attributes["occipy.monitoring.history"], 10, "a full history")
        assert all(entry["channel"] in ("vm.cpu", "availability") for entry in history)
        # The text rendering carries the same values (objects as JSON text).
        url = sensor if sensor.startswith("http") else server.url + sensor
        text = httpx.get(url, headers={"Accept": "text/plain"}).text
        assert "occipy.monitoring.values=" in text and "vm.cpu" in text

        # A stopped compute is unavailable.
        occi.trigger(vm, "stop", {"method": "poweroff"})
        occi.wait_for(vm, state="inactive", timeout=10, interval=0.05)
        eventually(lambda: occi.get(sensor).attributes["occipy.monitoring.values"]["availability"] == 0.0, 10,
                   "availability 0 after the stop")

        # Deleting the sensor takes its collector with it; nothing is measured any more.
        occi.delete(sensor)
        with pytest.raises(errors.NotFound):
            occi.get(collector)
        occi.delete(vm)


@pytest.mark.spec("MON-03")
def test_timing_is_written_back(server: LiveServer) -> None:
    with Client(server.url, media_type="json", timeout=30) as occi:
        sensor = occi.create(SENSOR, attributes={"occi.sensor.period": 0.1})
        attributes = occi.get(sensor).attributes
        # The tick of this server is 0.5 s: shorter periods are best-fitted, the worst cases filled in.
        assert attributes["occi.sensor.period"] == 0.5
        assert attributes["occi.sensor.granularity"] == 0.5 and attributes["occi.sensor.accuracy"] == 5.5
        occi.delete(sensor)


def test_the_history_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    live = start_server(data, monitoring_tick=0.5)
    try:
        with Client(live.url, media_type="json", timeout=30) as occi:
            vm = occi.create("compute")
            occi.wait_for(vm, state="active", timeout=10, interval=0.05)
            sensor = occi.create(SENSOR, attributes={"occi.sensor.period": 0.5})
            occi.link(sensor, vm, kind=COLLECTOR, mixins=[AVAILABILITY])
            eventually(lambda: occi.get(sensor).attributes.get("occipy.monitoring.values"), 10, "a first value")
    finally:
        live.stop()
    import sqlite3

    with sqlite3.connect(data / "occipy.db") as db:
        rows = db.execute("SELECT metric, value FROM metric_samples").fetchall()
    assert rows and all(metric == "availability" for metric, _ in rows)


# ---- libvirt ------------------------------------------------------------------------------------------


@pytest.mark.libvirt
@pytest.mark.slow
def test_a_libvirt_guest_is_measured(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.integration.test_libvirt_live import libvirt_server

    options = {"network_prefix": "10.215.0.0/16", "shutdown_timeout": "20", "reconcile_interval": "2"}
    with libvirt_server(tmp_path_factory, "mon", options) as live, \
            Client(live.url, media_type="json", timeout=60) as occi:
        vm = occi.create("compute", mixins=["os_tpl#occipy-guest"],
                         attributes={"occi.compute.cores": 1, "occi.compute.memory": 0.25})
        occi.wait_for(vm, state="active", timeout=60, interval=0.1)
        sensor = occi.create(SENSOR, attributes={"occi.sensor.period": 1.0})
        occi.link(sensor, vm, kind=COLLECTOR, mixins=[CPU, AVAILABILITY, MEMORY])

        def measured() -> dict[str, Any] | None:
            values = occi.get(sensor).attributes.get("occipy.monitoring.values")
            return values if isinstance(values, dict) and "cpu" in values else None

        values = eventually(measured, 30, "domain statistics on the sensor")
        assert values["availability"] == 1.0
        assert values["cpu"] > 0.0  # a booting TCG guest burns CPU
        assert 0 < values["memory"] <= 2 * 0.25 * 1024 ** 3  # the QEMU process's resident memory
        dom = live.conn.lookupByName(next(d for d in live.ours()[0]))
        dom.destroy()  # behind occipy's back
        eventually(lambda: occi.get(sensor).attributes["occipy.monitoring.values"]["availability"] == 0.0, 15,
                   "availability 0 after the domain was powered off")
        occi.delete(sensor)
        occi.delete(vm)
        eventually(lambda: live.ours()[0] == [], 30, "the domain to go")
    assert json.dumps(values)  # the values are plain JSON

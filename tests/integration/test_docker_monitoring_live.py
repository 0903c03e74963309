"""Monitoring on a real, private dockerd (docs/monitoring.md, docs/drivers/docker.md "Monitoring"):
`occipy` on `--driver docker` measures a compute's container and a component's container through
a sensor and collectors, driven by the SDK; stopping the compute makes it unavailable; nothing is
left on the engine afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("docker", reason="the docker SDK is the docker extra: uv sync --extra docker")

from occipy.client import Client
from tests.integration.conftest import start_server
from tests.integration.test_docker_live import MANAGED, driver_options, os_tpl
from tests.integration.test_monitoring_live import (
    AVAILABILITY,
    COLLECTOR,
    CPU,
    MEMORY,
    PUBLISHER,
    SENSOR,
    eventually,
)
from tests.services.dockerd import DockerDaemon

pytestmark = pytest.mark.timeout(120)
GIB = 1024**3


def test_containers_are_measured(tmp_path: Path, dockerd: DockerDaemon, busybox_image: str,
                                 docker_client: Any) -> None:
    live = start_server(tmp_path / "data", driver="docker", driver_options=driver_options(dockerd, busybox_image),
                        monitoring_tick=0.5)
    try:
        with Client(live.url, media_type="json", timeout=30) as occi:
            # The driver samples: discovery offers the metric mixins on this Docker cloud.
            offered = set(occi.discover(refresh=True).mixins)
            assert {CPU, MEMORY, AVAILABILITY, PUBLISHER} <= offered
            vm = occi.create("compute", mixins=[os_tpl(occi, busybox_image)], title="measured",
                             attributes={"occi.compute.cores": 1, "occi.compute.memory": 0.25})
            web = occi.create("component", title="web", mixins=["app_tpl#busybox-httpd"])
            occi.wait_for(vm, state="active", timeout=60, interval=0.1)
            eventually(lambda: occi.get(web).attributes.get("occi.component.state") == "active", 60,
                       "the component to run")
            sensor = occi.create(SENSOR, mixins=[PUBLISHER], attributes={"occi.sensor.period": 1.0,
                                                                          "occipy.monitoring.history.length": 12})
            occi.link(sensor, vm, kind=COLLECTOR, mixins=[CPU, MEMORY, AVAILABILITY],
                      attributes={"occipy.monitoring.cpu.out": "vm.cpu", "occipy.monitoring.memory.out": "vm.memory",
                                  "occipy.monitoring.availability.out": "vm.up"})
            occi.link(sensor, web, kind=COLLECTOR, mixins=[MEMORY, AVAILABILITY],
                      attributes={"occipy.monitoring.memory.out": "web.memory",
                                  "occipy.monitoring.availability.out": "web.up"})

            def measured() -> dict[str, Any] | None:
                values = occi.get(sensor).attributes.get("occipy.monitoring.values")
                wanted = {"vm.cpu", "vm.memory", "vm.up", "web.memory", "web.up"}
                return values if isinstance(values, dict) and wanted <= set(values) else None

            # cpu is a rate: it needs two readings of the container, one period apart.
            values = eventually(measured, 20, "the containers' values on the sensor")
            assert values["vm.up"] == 1.0 and values["web.up"] == 1.0
            assert 0 < values["vm.memory"] <= 0.25 * GIB  # within the container's memory limit
            assert 0 < values["web.memory"]
            assert 0.0 <= values["vm.cpu"] <= 100.0  # an idle shell loop on a one-core limit
            history = occi.get(sensor).attributes["occipy.monitoring.history"]
            assert {entry["channel"] for entry in history} <= {"vm.cpu", "vm.memory", "vm.up", "web.memory", "web.up"}
            assert all(isinstance(entry["value"], (int, float)) and entry["time"] for entry in history)

            # A stopped container is unavailable and holds no memory; the component still runs.
            occi.trigger(vm, "stop", {"method": "poweroff"})
            occi.wait_for(vm, state="inactive", timeout=30, interval=0.1)

            def stopped() -> dict[str, Any] | None:
                values = occi.get(sensor).attributes["occipy.monitoring.values"]
                return values if values["vm.up"] == 0.0 else None

            after = eventually(stopped, 10, "vm availability 0 after the stop")
            assert after["vm.memory"] == 0.0
            assert after["web.up"] == 1.0

            occi.delete(sensor)
            occi.delete(vm)
            occi.delete(web)
            eventually(lambda: not docker_client.containers.list(all=True, filters=MANAGED), 30,
                       "occipy's containers to go")
    finally:
        live.stop()

"""Several clouds behind one endpoint (issue 9, docs/decisions.md D-CLOUDS), on simulated clouds.

Each cloud is a mixin `http://occipy.org/occi/cloud#<name>`; a create chooses its cloud by the
mixin or by a template of that cloud, else goes to the default (first) cloud; entities render their
cloud mixin; links across clouds are refused; one unreachable cloud answers 503 and the others keep
answering.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from occipy.backends.base import Inventories, Ref
from occipy.backends.simulated import SimulatedDriver
from occipy.config import ConfigError, Settings, cloud_settings, load
from occipy.errors import BackendUnavailable
from occipy.model.extensions import monitoring
from occipy.model.standard import standard_registry
from occipy.service.options import ServiceOptions
from occipy.service.pipeline import Service
from occipy.store.memory import MemoryStore
from tests.unit.service.conftest import COMPUTE_KIND, INFRA, NETWORK_KIND, Harness

CLOUD = "http://occipy.org/occi/cloud#"
AVAILABILITY = "http://occipy.org/occi/monitoring/metric#availability"


class Flaky(SimulatedDriver):
    """A simulated cloud that cannot be reached until `reachable` is set."""

    reachable = False

    async def open(self) -> None:
        if not self.reachable:
            raise BackendUnavailable("connection refused")
        await super().open()


async def _service(tmp_path: Path, beta: SimulatedDriver | None = None) -> Harness:
    alpha = SimulatedDriver.from_options({"delay": "0", "seed": "5"}, tmp_path / "a")
    second = beta or SimulatedDriver.from_options({"delay": "0", "seed": "6"}, tmp_path / "b")
    options = ServiceOptions(sync_wait=1.0, reconcile_interval=0)
    service = Service(standard_registry(), MemoryStore(), [("alpha", alpha), ("beta", second)], options)
    service.cloud.options = dataclasses.replace(service.cloud.options, retry_interval=0.05)
    await service.start()
    return Harness(service, alpha)


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await _service(tmp_path)
    yield harness
    await harness.service.stop()


async def _objects(driver: object) -> int:
    assert isinstance(driver, Inventories)
    return len(await driver.inventory())


async def test_each_cloud_is_a_mixin_with_its_collection(two: Harness) -> None:
    discovery = await two.get_json("/-/")
    clouds = {m["term"]: m for m in discovery["mixins"] if m["scheme"] == CLOUD}
    assert set(clouds) == {"alpha", "beta"}
    assert clouds["beta"]["location"] == "/mixin/cloud/beta/"
    # The default cloud's templates keep the plain scheme; the others' name their cloud.
    templates = [m for m in discovery["mixins"] if m["scheme"].endswith("os_tpl#")]
    beta_images = [m for m in templates if m["scheme"] == "http://occipy.org/occi/beta/os_tpl#"]
    assert beta_images and all(CLOUD + "beta" in m["depends"] for m in beta_images)
    assert any(m["scheme"] == "http://occipy.org/occi/os_tpl#" and CLOUD + "alpha" in m["depends"]
               for m in templates)


async def test_a_create_goes_to_the_cloud_it_names(two: Harness) -> None:
    default = await two.create_compute()
    assert CLOUD + "alpha" in (await two.get_json(default))["mixins"]
    named = await two.create_compute(f'Category: beta; scheme="{CLOUD}"; class="mixin"')
    assert CLOUD + "beta" in (await two.get_json(named))["mixins"]
    image = f'Category: debian-12; scheme="http://occipy.org/occi/beta/os_tpl#"; class="mixin"'
    by_template = await two.create_compute(image)
    assert CLOUD + "beta" in (await two.get_json(by_template))["mixins"]
    alpha, beta = (cloud.driver for cloud in two.service.cloud.clouds.values())
    assert (await _objects(alpha), await _objects(beta)) == (1, 2)
    # The cloud's mixin collection lists what it holds; the kind collection spans every cloud.
    listing = await two.call("GET", "/mixin/cloud/beta/", accept="text/uri-list")
    assert sorted(listing.text.split()) == sorted("http://test.example" + p for p in (named, by_template))
    everything = await two.call("GET", "/compute/", accept="text/uri-list")
    assert len(everything.text.split()) == 3


async def test_a_cloud_mixin_and_another_clouds_template_are_refused(two: Harness) -> None:
    answer = await two.text("POST", "/compute/", COMPUTE_KIND, f'Category: alpha; scheme="{CLOUD}"; class="mixin"',
                            'Category: debian-12; scheme="http://occipy.org/occi/beta/os_tpl#"; class="mixin"')
    assert answer.status == 400 and "alpha" in answer.text and "beta" in answer.text


async def test_links_across_clouds_are_refused(two: Harness) -> None:
    compute = await two.create_compute()
    network = await two.text("POST", "/network/", NETWORK_KIND, f'Category: beta; scheme="{CLOUD}"; class="mixin"')
    assert network.status == 201
    link = await two.json("POST", "/networkinterface/", {
        "kind": INFRA + "networkinterface", "source": {"location": compute}, "target": {"location": network.location}})
    assert link.status == 400
    assert "cloud alpha" in link.text and "cloud beta" in link.text


async def test_an_unreachable_cloud_answers_503_and_the_others_keep_answering(tmp_path: Path) -> None:
    flaky = Flaky.from_options({"delay": "0"}, tmp_path / "b")
    harness = await _service(tmp_path, flaky)
    try:
        assert await harness.create_compute()  # the default cloud works
        refused = await harness.text("POST", "/compute/", COMPUTE_KIND, f'Category: beta; scheme="{CLOUD}"; class="mixin"')
        assert refused.status == 503 and "beta" in refused.text
        flaky.reachable = True
        for _ in range(100):
            if harness.service.cloud.clouds["beta"].available:
                break
            await asyncio.sleep(0.05)
        created = await harness.text("POST", "/compute/", COMPUTE_KIND, f'Category: beta; scheme="{CLOUD}"; class="mixin"')
        assert created.status == 201, created.text
    finally:
        await harness.service.stop()


async def test_one_unreachable_cloud_alone_stops_start_up(tmp_path: Path) -> None:
    service = Service(standard_registry(), MemoryStore(), Flaky.from_options({}, tmp_path), ServiceOptions())
    with pytest.raises(BackendUnavailable):
        await service.start()


def test_clouds_come_from_the_driver_list_or_cloud_tables(tmp_path: Path) -> None:
    settings = load(environ={}, flags={"driver": "simulated,libvirt"}, driver_opts=["delay=0", "libvirt.uri=test:///default"])
    assert [(c.name, c.driver, dict(c.options)) for c in cloud_settings(settings)] == [
        ("simulated", "simulated", {"delay": "0"}), ("libvirt", "libvirt", {"uri": "test:///default"})]
    config = tmp_path / "occipy.toml"
    config.write_text('[clouds.east]\ndriver = "simulated"\ndelay = 0\n[clouds.west]\ndriver = "simulated"\nseed = 3\n')
    tables = cloud_settings(load(environ={}, config_file=str(config)))
    assert [(c.name, c.driver, dict(c.options)) for c in tables] == [
        ("east", "simulated", {"delay": "0"}), ("west", "simulated", {"seed": "3"})]
    config.write_text('[clouds.East]\ndriver = "simulated"\n')
    with pytest.raises(ConfigError, match="cloud name"):
        load(environ={}, config_file=str(config))
    with pytest.raises(ConfigError, match="twice"):
        cloud_settings(Settings(driver="simulated,simulated"))


async def test_the_monitor_samples_each_cloud_through_its_own_driver(two: Harness) -> None:
    """A collector on a compute of the second cloud is read from that cloud's driver (not skipped)."""
    service = two.service
    await service.monitor.stop()  # the test ticks it itself
    vms = {"alpha": await two.create_compute(),
           "beta": await two.create_compute(f'Category: beta; scheme="{CLOUD}"; class="mixin"')}
    collectors = {}
    for name, vm in vms.items():
        sensor = await two.json("POST", "/sensor/", {"kind": monitoring.SENSOR, "attributes": {"occi.sensor.period": 1}})
        assert sensor.status == 201, sensor.text
        collector = await two.json("POST", "/collector/", {
            "kind": monitoring.COLLECTOR, "mixins": [AVAILABILITY],
            "attributes": {"occi.core.source": sensor.location, "occi.core.target": vm}})
        assert collector.status == 201, collector.text
        collectors[name] = collector.location
    # Stop the beta compute behind occipy's back: its availability must come from beta's driver.
    stored = await service.store.get(vms["beta"])
    assert stored is not None and stored.backend_id is not None
    beta = service.cloud.clouds["beta"].driver
    assert isinstance(beta, SimulatedDriver)
    await beta.simulate_external(Ref("compute", stored.backend_id), "inactive")
    await service.monitor.tick(time.time())
    store = service.store
    assert isinstance(store, MemoryStore)
    values = {name: [s.value for s in await store.samples(collector=location)] for name, location in collectors.items()}
    assert values == {"alpha": [1.0], "beta": [0.0]}

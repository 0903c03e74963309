"""The driver contract suite: what every `backends.base.Driver` must do, written once.

A driver's test module subclasses `DriverContract`, overrides the `driver` fixture (yield an
opened driver, close it after) and, when its cloud needs other names or sizes, the spec helpers
`compute_spec()`, `storage_spec()`, `network_spec()`. Tests skip only for a missing Capability.
Imports pytest, occipy.backends.base and occipy.errors; nothing driver-specific.

Template replacement on an existing compute (REIMAGE, RESIZE_COMPUTE) goes through `update()`
with the keys `os_tpl` / `resource_tpl` and a Template.term as value (Driver.update docstring;
templates are mixins, not attributes).

Example::

    class TestMyDriverContract(DriverContract):
        @pytest.fixture
        async def driver(self):
            drv = MyDriver(...)
            await drv.open()
            yield drv
            await drv.close()
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from occipy.backends.base import (
    SPEC_TYPES,
    Capability,
    ComputeSpec,
    Driver,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    ResourceType,
    Spec,
    StorageLinkSpec,
    StorageSpec,
    Template,
)
from occipy.errors import BackendError

COMPUTE = ResourceType.COMPUTE
STORAGE = ResourceType.STORAGE
NETWORK = ResourceType.NETWORK
STORAGELINK = ResourceType.STORAGELINK
NETWORKINTERFACE = ResourceType.NETWORKINTERFACE

# The OCCI state vocabulary per type (GFD.224 §3.1-§3.4; Observed.state is always one of these).
STATES: Mapping[ResourceType, frozenset[str]] = {
    COMPUTE: frozenset({"active", "inactive", "suspended", "error"}),
    STORAGE: frozenset({"online", "offline", "error"}),
    NETWORK: frozenset({"active", "inactive", "error"}),
    STORAGELINK: frozenset({"active", "inactive", "error"}),
    NETWORKINTERFACE: frozenset({"active", "inactive", "error"}),
}
# GFD.224 §3.1 action attribute enums.
STOP_METHODS = ("graceful", "acpioff", "poweroff")
RESTART_METHODS = ("graceful", "warm", "cold")
SUSPEND_METHODS = ("hibernate", "suspend")
SAVE_METHODS = ("hot", "deferred")
# rOCCI's pattern for occi.networkinterface.mac (infrastructure.md §7).
MAC_RE = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$")
TERM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")  # GFD.229 §5.1 term, "." added in 1.2


def unique(prefix: str) -> str:
    """A name no other test uses (drivers such as libvirt's test:///default share state)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def missing_id() -> str:
    """A backend id that is well formed for most clouds (a UUID) but names nothing."""
    return str(uuid.uuid4())


def require(driver: Driver, *capabilities: Capability) -> None:
    """Skip the test when the driver lacks a capability: the only reason a contract test skips."""
    for capability in capabilities:
        if capability not in driver.capabilities:
            pytest.skip(f"driver lacks {capability.name}")


class Made:
    """Creates objects for one test and deletes what is left, newest first, at teardown."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self._objects: list[tuple[ResourceType, str]] = []

    async def create(self, spec: Spec) -> Observed:
        observed = await self.driver.create(spec)
        self._objects.append((SPEC_TYPES[type(spec)], observed.backend_id))
        return observed

    async def cleanup(self) -> None:
        # Deleting a missing object is not an error (Driver.delete), so tests that already
        # deleted something need not tell us.
        while self._objects:
            resource, backend_id = self._objects.pop()
            await self.driver.delete(resource, backend_id)


class DriverContract:
    """The contract tests; subclass it and override the `driver` fixture."""

    # ---------------------------------------------------------------- to override

    @pytest.fixture
    async def driver(self) -> AsyncIterator[Driver]:
        raise NotImplementedError("a DriverContract subclass must override the `driver` fixture")
        yield  # pragma: no cover  (makes this an async generator like the overrides)

    def compute_spec(self, driver: Driver, **overrides: Any) -> ComputeSpec:
        """A small compute on the driver's first os_tpl; override for clouds that need more."""
        os_templates = [t.term for t in driver.templates() if t.family == "os_tpl"]
        values: dict[str, Any] = {
            "name": unique("ct-vm"),
            "cores": 1,
            "memory_gib": 0.5,
            "os_template": os_templates[0] if os_templates else None,
        }
        values.update(overrides)
        return ComputeSpec(**values)

    def storage_spec(self, driver: Driver, **overrides: Any) -> StorageSpec:
        values: dict[str, Any] = {"name": unique("ct-vol"), "size_gib": 1.0}
        values.update(overrides)
        return StorageSpec(**values)

    def network_spec(self, driver: Driver, **overrides: Any) -> NetworkSpec:
        values: dict[str, Any] = {"name": unique("ct-net")}
        values.update(overrides)
        return NetworkSpec(**values)

    # ---------------------------------------------------------------- shared fixtures

    @pytest.fixture
    async def made(self, driver: Driver) -> AsyncIterator[Made]:
        made = Made(driver)
        yield made
        await made.cleanup()

    @pytest.fixture
    async def compute(self, driver: Driver, made: Made) -> Observed:
        require(driver, Capability.COMPUTE)
        return await made.create(self.compute_spec(driver))

    # ---------------------------------------------------------------- declarations

    def test_declares_name_and_capabilities(self, driver: Driver) -> None:
        assert isinstance(driver.name, str) and driver.name
        assert isinstance(driver.capabilities, frozenset)
        assert all(isinstance(c, Capability) for c in driver.capabilities)

    @pytest.mark.spec("INF-33")
    def test_offers_templates(self, driver: Driver) -> None:
        templates = driver.templates()
        assert all(isinstance(t, Template) for t in templates)
        assert {t.family for t in templates} <= {"os_tpl", "resource_tpl"}
        if Capability.COMPUTE in driver.capabilities:
            assert any(t.family == "os_tpl" for t in templates), "a compute cloud offers >= 1 os_tpl"
        for t in templates:
            # Templates become OCCI mixins: the term must be a valid GFD.229 term, the title text.
            assert TERM_RE.match(t.term), t.term
            assert t.title
        keys = [(t.family, t.term) for t in templates]
        assert len(keys) == len(set(keys)), "template terms are unique per family"

    def test_changes_is_an_async_iterator(self, driver: Driver) -> None:
        stream = driver.changes()
        assert hasattr(stream, "__anext__")

    # ---------------------------------------------------------------- compute

    async def test_create_compute_boots(self, driver: Driver, compute: Observed) -> None:
        # Every real cloud boots what it creates; the service shows the compute active.
        assert compute.backend_id
        assert compute.state == "active"
        observed = await driver.observe(COMPUTE, compute.backend_id)
        assert observed is not None
        assert observed.backend_id == compute.backend_id
        assert observed.state == "active"

    async def test_create_compute_reports_hostname(self, driver: Driver, made: Made) -> None:
        require(driver, Capability.COMPUTE)
        spec = self.compute_spec(driver, hostname="contract-host")
        observed = await made.create(spec)
        hostname = observed.attributes.get("occi.compute.hostname")
        assert hostname in (None, "contract-host")

    async def test_concurrent_creates(self, driver: Driver, made: Made) -> None:
        # The service runs jobs concurrently on one event loop.
        require(driver, Capability.COMPUTE)
        first, second = await asyncio.gather(
            made.create(self.compute_spec(driver)), made.create(self.compute_spec(driver))
        )
        assert first.backend_id != second.backend_id
        assert first.state == second.state == "active"

    @pytest.mark.spec("INF-12")
    async def test_compute_lifecycle(self, driver: Driver, compute: Observed) -> None:
        # GFD.224 §3.1 state diagram, one step at a time.
        backend_id = compute.backend_id
        steps = [
            ("stop", "inactive"),
            ("start", "active"),
            ("suspend", "suspended"),
            ("start", "active"),
            ("restart", "active"),
        ]
        for action, expected in steps:
            observed = await driver.act(COMPUTE, backend_id, action, {})
            assert observed.state == expected, f"{action} -> {observed.state}"
            again = await driver.observe(COMPUTE, backend_id)
            assert again is not None and again.state == expected, f"observe after {action}"

    @pytest.mark.parametrize("method", STOP_METHODS)
    async def test_stop_methods(self, driver: Driver, compute: Observed, method: str) -> None:
        observed = await driver.act(COMPUTE, compute.backend_id, "stop", {"method": method})
        assert observed.state == "inactive"

    @pytest.mark.parametrize("method", RESTART_METHODS)
    async def test_restart_methods(self, driver: Driver, compute: Observed, method: str) -> None:
        observed = await driver.act(COMPUTE, compute.backend_id, "restart", {"method": method})
        assert observed.state == "active"

    @pytest.mark.parametrize("method", SUSPEND_METHODS)
    async def test_suspend_methods(self, driver: Driver, compute: Observed, method: str) -> None:
        observed = await driver.act(COMPUTE, compute.backend_id, "suspend", {"method": method})
        assert observed.state == "suspended"
        resumed = await driver.act(COMPUTE, compute.backend_id, "start", {})
        assert resumed.state == "active"

    async def test_delete_compute(self, driver: Driver, compute: Observed) -> None:
        await driver.delete(COMPUTE, compute.backend_id)
        assert await driver.observe(COMPUTE, compute.backend_id) is None

    async def test_delete_stopped_compute(self, driver: Driver, compute: Observed) -> None:
        await driver.act(COMPUTE, compute.backend_id, "stop", {"method": "poweroff"})
        await driver.delete(COMPUTE, compute.backend_id)
        assert await driver.observe(COMPUTE, compute.backend_id) is None

    async def test_adopt_known_compute(self, driver: Driver, compute: Observed) -> None:
        # The service re-introduces every stored object at start-up; for a live one it is a no-op.
        await driver.adopt(COMPUTE, compute.backend_id, compute)
        observed = await driver.observe(COMPUTE, compute.backend_id)
        assert observed is not None and observed.state == "active"

    async def test_create_compute_with_unknown_image_fails(self, driver: Driver, made: Made) -> None:
        require(driver, Capability.COMPUTE)
        with pytest.raises(BackendError):
            await made.create(self.compute_spec(driver, os_template=unique("no-such-image")))

    async def test_save_makes_an_os_template(self, driver: Driver, compute: Observed) -> None:
        require(driver, Capability.SAVE)
        name = unique("ct-snap")
        template = await driver.save(compute.backend_id, name, "hot")
        assert template.family == "os_tpl"
        assert TERM_RE.match(template.term)
        assert template.title
        assert (template.family, template.term) in {(t.family, t.term) for t in driver.templates()}
        # GFD.224 §3.1: after save the instance is (or returns to) active.
        observed = await driver.observe(COMPUTE, compute.backend_id)
        assert observed is not None and observed.state == "active"

    async def test_save_without_name(self, driver: Driver, compute: Observed) -> None:
        require(driver, Capability.SAVE)
        first = await driver.save(compute.backend_id, None, "deferred")
        second = await driver.save(compute.backend_id, None, "deferred")
        assert first.family == second.family == "os_tpl"
        assert first.term != second.term

    async def test_compute_from_saved_template(self, driver: Driver, compute: Observed, made: Made) -> None:
        require(driver, Capability.SAVE)
        template = await driver.save(compute.backend_id, unique("ct-snap"), "hot")
        clone = await made.create(self.compute_spec(driver, os_template=template.term))
        assert clone.state == "active"

    async def test_resize_compute(self, driver: Driver, compute: Observed) -> None:
        require(driver, Capability.RESIZE_COMPUTE)
        observed = await driver.update(
            COMPUTE, compute.backend_id, {"occi.compute.cores": 2, "occi.compute.memory": 1.0}
        )
        assert observed.state in STATES[COMPUTE] - {"error"}
        assert observed.attributes.get("occi.compute.cores", 2) == 2
        assert observed.attributes.get("occi.compute.memory", 1.0) == pytest.approx(1.0)

    @pytest.mark.spec("INF-41")
    async def test_reimage_compute(self, driver: Driver, compute: Observed) -> None:
        require(driver, Capability.REIMAGE)
        image = [t.term for t in driver.templates() if t.family == "os_tpl"][-1]
        observed = await driver.update(COMPUTE, compute.backend_id, {"os_tpl": image})
        assert observed.state in STATES[COMPUTE] - {"error"}

    # ---------------------------------------------------------------- storage

    async def test_create_storage_online(self, driver: Driver, made: Made) -> None:
        require(driver, Capability.STORAGE)
        spec = self.storage_spec(driver)
        volume = await made.create(spec)
        assert volume.backend_id
        assert volume.state == "online"
        size = volume.attributes.get("occi.storage.size", spec.size_gib)
        assert isinstance(size, (int, float)) and size >= spec.size_gib * 0.99  # clouds may round up
        observed = await driver.observe(STORAGE, volume.backend_id)
        assert observed is not None and observed.state == "online"

    async def test_storage_offline_online(self, driver: Driver, made: Made) -> None:
        require(driver, Capability.STORAGE)
        volume = await made.create(self.storage_spec(driver))
        offline = await driver.act(STORAGE, volume.backend_id, "offline", {})
        assert offline.state == "offline"
        online = await driver.act(STORAGE, volume.backend_id, "online", {})
        assert online.state == "online"

    async def test_resize_storage_grows(self, driver: Driver, made: Made) -> None:
        require(driver, Capability.STORAGE, Capability.RESIZE_STORAGE)
        volume = await made.create(self.storage_spec(driver, size_gib=1.0))
        observed = await driver.update(STORAGE, volume.backend_id, {"occi.storage.size": 2.0})
        assert observed.state in STATES[STORAGE] - {"error"}
        assert observed.attributes.get("occi.storage.size", 2.0) == pytest.approx(2.0)

    async def test_resize_storage_refuses_to_shrink(self, driver: Driver, made: Made) -> None:
        require(driver, Capability.STORAGE, Capability.RESIZE_STORAGE)
        volume = await made.create(self.storage_spec(driver, size_gib=2.0))
        with pytest.raises(BackendError):
            await driver.update(STORAGE, volume.backend_id, {"occi.storage.size": 1.0})

    async def test_delete_storage(self, driver: Driver, made: Made) -> None:
        require(driver, Capability.STORAGE)
        volume = await made.create(self.storage_spec(driver))
        await driver.delete(STORAGE, volume.backend_id)
        assert await driver.observe(STORAGE, volume.backend_id) is None

    # ---------------------------------------------------------------- network

    async def test_create_network_allocates_address(self, driver: Driver, made: Made) -> None:
        require(driver, Capability.NETWORK)
        network = await made.create(self.network_spec(driver))
        assert network.backend_id
        assert network.state == "active"
        address = network.attributes.get("occi.network.address")
        assert isinstance(address, str), "a network reports occi.network.address"
        ipaddress.ip_network(address, strict=False)
        gateway = network.attributes.get("occi.network.gateway")
        if gateway is not None:
            assert ipaddress.ip_address(str(gateway)) in ipaddress.ip_network(address, strict=False)

    async def test_create_network_with_given_range(self, driver: Driver, made: Made) -> None:
        require(driver, Capability.NETWORK)
        octet = uuid.uuid4().int % 200 + 20  # unlikely to collide with other tests' networks
        network = await made.create(
            self.network_spec(driver, address=f"192.168.{octet}.0/24", gateway=f"192.168.{octet}.1")
        )
        assert network.state == "active"
        address = network.attributes.get("occi.network.address", f"192.168.{octet}.0/24")
        assert ipaddress.ip_network(str(address), strict=False) == ipaddress.ip_network(
            f"192.168.{octet}.0/24"
        )
        assert network.attributes.get("occi.network.gateway", f"192.168.{octet}.1") == f"192.168.{octet}.1"

    async def test_networks_get_distinct_ranges(self, driver: Driver, made: Made) -> None:
        require(driver, Capability.NETWORK)
        first = await made.create(self.network_spec(driver))
        second = await made.create(self.network_spec(driver))
        a = ipaddress.ip_network(str(first.attributes["occi.network.address"]), strict=False)
        b = ipaddress.ip_network(str(second.attributes["occi.network.address"]), strict=False)
        assert not a.overlaps(b)

    async def test_network_down_up(self, driver: Driver, made: Made) -> None:
        require(driver, Capability.NETWORK)
        network = await made.create(self.network_spec(driver))
        down = await driver.act(NETWORK, network.backend_id, "down", {})
        assert down.state == "inactive"
        up = await driver.act(NETWORK, network.backend_id, "up", {})
        assert up.state == "active"

    async def test_delete_network(self, driver: Driver, made: Made) -> None:
        require(driver, Capability.NETWORK)
        network = await made.create(self.network_spec(driver))
        await driver.delete(NETWORK, network.backend_id)
        assert await driver.observe(NETWORK, network.backend_id) is None

    # ---------------------------------------------------------------- links

    @pytest.mark.spec("INF-32")
    async def test_storagelink_attach_detach(self, driver: Driver, compute: Observed, made: Made) -> None:
        require(driver, Capability.STORAGE, Capability.STORAGELINK)
        volume = await made.create(self.storage_spec(driver))
        link = await made.create(
            StorageLinkSpec(name=unique("ct-sl"), compute_id=compute.backend_id, storage_id=volume.backend_id)
        )
        assert link.backend_id
        assert link.state == "active"
        deviceid = link.attributes.get("occi.storagelink.deviceid")
        assert isinstance(deviceid, str) and deviceid, "a storagelink reports its deviceid"
        observed = await driver.observe(STORAGELINK, link.backend_id)
        assert observed is not None and observed.state == "active"

        await driver.delete(STORAGELINK, link.backend_id)
        assert await driver.observe(STORAGELINK, link.backend_id) is None
        # Detaching leaves both ends in place.
        assert await driver.observe(STORAGE, volume.backend_id) is not None
        assert await driver.observe(COMPUTE, compute.backend_id) is not None

    async def test_two_storagelinks_get_distinct_devices(
        self, driver: Driver, compute: Observed, made: Made
    ) -> None:
        require(driver, Capability.STORAGE, Capability.STORAGELINK)
        devices = []
        for _ in range(2):
            volume = await made.create(self.storage_spec(driver))
            link = await made.create(
                StorageLinkSpec(
                    name=unique("ct-sl"), compute_id=compute.backend_id, storage_id=volume.backend_id
                )
            )
            devices.append(link.attributes["occi.storagelink.deviceid"])
        assert devices[0] != devices[1]

    @pytest.mark.spec("INF-25")
    async def test_networkinterface_attach_detach(
        self, driver: Driver, compute: Observed, made: Made
    ) -> None:
        require(driver, Capability.NETWORK, Capability.NETWORKINTERFACE)
        network = await made.create(self.network_spec(driver))
        nic = await made.create(
            NetworkInterfaceSpec(
                name=unique("ct-nic"), compute_id=compute.backend_id, network_id=network.backend_id
            )
        )
        assert nic.backend_id
        assert nic.state == "active"
        mac = nic.attributes.get("occi.networkinterface.mac")
        assert isinstance(mac, str) and MAC_RE.match(mac), f"mac {mac!r}"
        interface = nic.attributes.get("occi.networkinterface.interface")
        assert isinstance(interface, str) and interface
        address = nic.attributes.get("occi.networkinterface.address")
        if address is not None:
            # GFD.224 examples write addresses with a prefix ("192.168.0.1/24"): accept both.
            host = ipaddress.ip_interface(str(address)).ip
            net = ipaddress.ip_network(str(network.attributes["occi.network.address"]), strict=False)
            assert host in net

        await driver.delete(NETWORKINTERFACE, nic.backend_id)
        assert await driver.observe(NETWORKINTERFACE, nic.backend_id) is None
        assert await driver.observe(NETWORK, network.backend_id) is not None
        assert await driver.observe(COMPUTE, compute.backend_id) is not None

    async def test_networkinterface_keeps_given_mac(
        self, driver: Driver, compute: Observed, made: Made
    ) -> None:
        require(driver, Capability.NETWORK, Capability.NETWORKINTERFACE)
        network = await made.create(self.network_spec(driver))
        nic = await made.create(
            NetworkInterfaceSpec(
                name=unique("ct-nic"),
                compute_id=compute.backend_id,
                network_id=network.backend_id,
                mac="52:54:00:12:34:56",
            )
        )
        assert str(nic.attributes["occi.networkinterface.mac"]).lower() == "52:54:00:12:34:56"

    async def test_two_networkinterfaces_differ(self, driver: Driver, compute: Observed, made: Made) -> None:
        require(driver, Capability.NETWORK, Capability.NETWORKINTERFACE)
        network = await made.create(self.network_spec(driver))
        nics = [
            await made.create(
                NetworkInterfaceSpec(
                    name=unique("ct-nic"), compute_id=compute.backend_id, network_id=network.backend_id
                )
            )
            for _ in range(2)
        ]
        macs = {str(n.attributes["occi.networkinterface.mac"]).lower() for n in nics}
        interfaces = {n.attributes["occi.networkinterface.interface"] for n in nics}
        assert len(macs) == 2
        assert len(interfaces) == 2
        addresses = [n.attributes.get("occi.networkinterface.address") for n in nics]
        if None not in addresses:
            assert addresses[0] != addresses[1]

    async def test_delete_compute_with_links(self, driver: Driver, compute: Observed, made: Made) -> None:
        # DELETE is accepted in any state and with links attached (infrastructure.md §4.3).
        require(driver, Capability.STORAGE, Capability.STORAGELINK)
        volume = await made.create(self.storage_spec(driver))
        await made.create(
            StorageLinkSpec(name=unique("ct-sl"), compute_id=compute.backend_id, storage_id=volume.backend_id)
        )
        await driver.delete(COMPUTE, compute.backend_id)
        assert await driver.observe(COMPUTE, compute.backend_id) is None
        assert await driver.observe(STORAGE, volume.backend_id) is not None

    # ---------------------------------------------------------------- errors

    async def test_observe_unknown_is_none(self, driver: Driver) -> None:
        for resource in ResourceType:
            assert await driver.observe(resource, missing_id()) is None

    async def test_delete_unknown_is_fine(self, driver: Driver) -> None:
        for resource in ResourceType:
            await driver.delete(resource, missing_id())

    async def test_act_on_unknown_is_backend_error(self, driver: Driver) -> None:
        cases = [
            (Capability.COMPUTE, COMPUTE, "start"),
            (Capability.STORAGE, STORAGE, "online"),
            (Capability.NETWORK, NETWORK, "up"),
        ]
        for capability, resource, action in cases:
            if capability in driver.capabilities:
                with pytest.raises(BackendError):
                    await driver.act(resource, missing_id(), action, {})

    async def test_update_unknown_is_backend_error(self, driver: Driver) -> None:
        require(driver, Capability.STORAGE, Capability.RESIZE_STORAGE)
        with pytest.raises(BackendError):
            await driver.update(STORAGE, missing_id(), {"occi.storage.size": 3.0})

    async def test_save_unknown_is_backend_error(self, driver: Driver) -> None:
        require(driver, Capability.SAVE)
        with pytest.raises(BackendError):
            await driver.save(missing_id(), None, "hot")

    async def test_link_to_unknown_compute_is_backend_error(self, driver: Driver, made: Made) -> None:
        require(driver, Capability.STORAGE, Capability.STORAGELINK)
        volume = await made.create(self.storage_spec(driver))
        with pytest.raises(BackendError):
            await made.create(
                StorageLinkSpec(name=unique("ct-sl"), compute_id=missing_id(), storage_id=volume.backend_id)
            )

    async def test_link_to_unknown_storage_is_backend_error(
        self, driver: Driver, compute: Observed, made: Made
    ) -> None:
        require(driver, Capability.STORAGE, Capability.STORAGELINK)
        with pytest.raises(BackendError):
            await made.create(
                StorageLinkSpec(name=unique("ct-sl"), compute_id=compute.backend_id, storage_id=missing_id())
            )

    async def test_interface_to_unknown_network_is_backend_error(
        self, driver: Driver, compute: Observed, made: Made
    ) -> None:
        require(driver, Capability.NETWORK, Capability.NETWORKINTERFACE)
        with pytest.raises(BackendError):
            await made.create(
                NetworkInterfaceSpec(
                    name=unique("ct-nic"), compute_id=compute.backend_id, network_id=missing_id()
                )
            )

"""The driver contract suite: what every `backends.base.Driver` must do, written once.

Every driver (simulated, libvirt on test:///default, Docker, EC2, OpenStack, OCCI...) runs it. A
driver's test module subclasses `DriverContract` and overrides the `driver` fixture (yield an
opened driver, close it after); where its cloud needs other names or sizes, the spec helpers
`compute_spec()`, `storage_spec()`, `network_spec()`; where it has a way to change the cloud
behind the driver's back, `change_outside()`; where it can point at a cloud that is not there,
`unreachable()`.

A test skips only when `driver.supports` lacks the resource type, action or update it needs, or
when the driver does not implement the optional protocol (`Updates`, `Saves`, `Watches`,
`Adopts`, `Inventories`, `Proposes`, `Samples`) it tests, or when the subclass has no hook for it.
Imports pytest, occipy.backends.base and occipy.errors; nothing driver-specific.

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
import dataclasses
import ipaddress
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from occipy.backends.base import (
    COMPUTE,
    FLAVOUR,
    IMAGE,
    NETWORK,
    NETWORKINTERFACE,
    PLAN,
    POOL,
    RUNTIME,
    STORAGE,
    STORAGELINK,
    Action,
    Adopts,
    Backup,
    Change,
    ComputeFacts,
    ComputeSpec,
    ComputeUpdate,
    Custom,
    Down,
    Driver,
    Inventories,
    NetworkFacts,
    NetworkInterfaceFacts,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    Offline,
    Online,
    Proposes,
    Reading,
    Ref,
    Restart,
    Samples,
    Save,
    Saves,
    Snapshot,
    Start,
    Stop,
    StorageFacts,
    StorageLinkFacts,
    StorageLinkSpec,
    StorageSpec,
    StorageUpdate,
    Support,
    Suspend,
    Template,
    Up,
    Updates,
    Watches,
    resource_of,
    spec_types,
)
from occipy.backends.egi_types import POOL
from occipy.errors import BackendError, BackendUnavailable, NotSupported

# The state words per type (backends.base.Observed: Observed.state is always one of these).
STATES: Mapping[str, frozenset[str]] = {
    COMPUTE: frozenset({"active", "inactive", "suspended", "error"}),
    STORAGE: frozenset({"online", "offline", "error"}),
    NETWORK: frozenset({"active", "inactive", "error"}),
    STORAGELINK: frozenset({"active", "inactive", "error"}),
    NETWORKINTERFACE: frozenset({"active", "inactive", "error"}),
}
FACTS: Mapping[str, type] = {
    COMPUTE: ComputeFacts,
    STORAGE: StorageFacts,
    NETWORK: NetworkFacts,
    STORAGELINK: StorageLinkFacts,
    NETWORKINTERFACE: NetworkInterfaceFacts,
}
UPDATE_FIELDS: Mapping[str, frozenset[str]] = {
    COMPUTE: frozenset(f.name for f in dataclasses.fields(ComputeUpdate)),
    STORAGE: frozenset(f.name for f in dataclasses.fields(StorageUpdate)),
}
BUILTIN_ACTIONS: Mapping[str, frozenset[str]] = {
    COMPUTE: frozenset({"start", "stop", "restart", "suspend", "save"}),
    STORAGE: frozenset({"online", "offline", "backup", "snapshot"}),  # backup, snapshot: D-LEGACY-STORAGE
    NETWORK: frozenset({"up", "down"}),
    STORAGELINK: frozenset(),
    NETWORKINTERFACE: frozenset(),
}
# GFD.224 §3.1 action attribute enums.
STOP_METHODS = ("graceful", "acpioff", "poweroff")
RESTART_METHODS = ("graceful", "warm", "cold")
SUSPEND_METHODS = ("hibernate", "suspend")
# rOCCI's pattern for occi.networkinterface.mac (infrastructure.md §7).
MAC_RE = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$")
OUTSIDE_TIMEOUT = 10.0  # seconds a driver gets to report a change made behind its back


def unique(prefix: str) -> str:
    """A name no other test uses (drivers such as libvirt's test:///default share state)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def missing_id() -> str:
    """A backend id that is well formed for most clouds (a UUID) but names nothing."""
    return str(uuid.uuid4())


def require(driver: Driver, resource: str, *actions: str, updates: tuple[str, ...] = ()) -> None:
    """Skip unless the driver supports the type, these actions and these live updates."""
    support = driver.supports.get(resource)
    if support is None:
        pytest.skip(f"driver {driver.name} has no {resource}")
    missing = [a for a in actions if a not in support.actions]
    if missing:
        pytest.skip(f"driver {driver.name} has no {resource} action {', '.join(missing)}")
    missing = [u for u in updates if u not in support.updates]
    if missing:
        pytest.skip(f"driver {driver.name} cannot update {', '.join(missing)} of a {resource}")
    if updates and not isinstance(driver, Updates):
        pytest.fail(f"driver {driver.name} declares {resource} updates but does not implement Updates")


def require_protocol(driver: Driver, protocol: type) -> None:
    if not isinstance(driver, protocol):
        pytest.skip(f"driver {driver.name} does not implement {protocol.__name__}")


def facts(observed: Observed, resource: str) -> Any:
    """The observed facts, checked to be of the type's facts class (a default one when None)."""
    assert observed.state in STATES[resource], f"{resource} state {observed.state!r}"
    if observed.facts is None:
        return FACTS[resource]()
    assert isinstance(observed.facts, FACTS[resource]), (
        f"{resource} facts are a {type(observed.facts).__name__}, not a {FACTS[resource].__name__}"
    )
    return observed.facts


def templates_of(driver: Driver, family: str) -> list[Template]:
    return [t for t in driver.templates() if t.family == family]


async def next_change(stream: AsyncIterator[Change], ref: Ref) -> Change:
    """The next change the stream reports for `ref` (others are skipped)."""

    async def wait() -> Change:
        async for change in stream:
            if change.ref == ref:
                return change
        raise AssertionError("changes() ended before reporting the change")

    return await asyncio.wait_for(wait(), timeout=OUTSIDE_TIMEOUT)


@dataclasses.dataclass(frozen=True)
class _Unregistered:
    """A creation request for a type no driver knows (not registered with @resource)."""

    name: str


class Made:
    """Creates objects for one test and deletes what is left, newest first, at teardown."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self._refs: list[Ref] = []

    async def create(self, spec: object) -> Observed:
        observed = await self.driver.create(spec)
        resource = resource_of(spec)
        assert observed.backend_id, "a created object has a backend id"
        facts(observed, resource)
        self._refs.append(Ref(resource, observed.backend_id))
        return observed

    async def cleanup(self) -> None:
        # Deleting a missing object is not an error (Driver.delete), so tests that already
        # deleted something need not tell us.
        while self._refs:
            await self.driver.delete(self._refs.pop())


class DriverContract:
    """The contract tests; subclass it and override the `driver` fixture."""

    # ---------------------------------------------------------------- to override

    @pytest.fixture
    async def driver(self) -> AsyncIterator[Driver]:
        raise NotImplementedError("a DriverContract subclass must override the `driver` fixture")
        yield  # pragma: no cover  (makes this an async generator like the overrides)

    def compute_spec(self, driver: Driver, **overrides: Any) -> ComputeSpec:
        """A small compute on the driver's first image; override for clouds that need more."""
        images = templates_of(driver, IMAGE)
        values: dict[str, Any] = {
            "name": unique("ct-vm"),
            "cores": 1,
            "memory_gib": 0.5,
            "image": images[0].name if images else None,
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

    async def change_outside(self, driver: Driver, ref: Ref, state: str | None) -> None:
        """Make the compute `ref` reach `state` ("inactive"), or delete it (None), behind the
        driver's back, as somebody using the cloud directly would. Override where the cloud
        allows it (a test hook, a second connection); the default skips the test."""
        pytest.skip(f"no hook to change driver {driver.name}'s cloud behind its back")

    async def unreachable(self) -> Driver | None:
        """A driver (not opened) that points at a cloud that is not there; None for an in-process
        cloud, which is always reachable (the test then skips)."""
        return None

    # ---------------------------------------------------------------- shared fixtures

    @pytest.fixture
    async def made(self, driver: Driver) -> AsyncIterator[Made]:
        made = Made(driver)
        yield made
        await made.cleanup()

    @pytest.fixture
    async def compute(self, driver: Driver, made: Made) -> Observed:
        require(driver, COMPUTE)
        return await made.create(self.compute_spec(driver))

    async def _storagelink(self, driver: Driver, made: Made, compute: Observed, **kw: Any) -> Observed:
        volume = await made.create(self.storage_spec(driver))
        spec = StorageLinkSpec(
            name=unique("ct-sl"), compute_id=compute.backend_id, storage_id=volume.backend_id, **kw
        )
        return await made.create(spec)

    # ---------------------------------------------------------------- declarations

    def test_declares_name_and_supports(self, driver: Driver) -> None:
        assert isinstance(driver.name, str) and driver.name
        assert isinstance(driver.supports, Mapping)
        known = set(spec_types().values())
        for resource, support in driver.supports.items():
            assert resource in known, f"{resource!r} is not a registered resource type"
            assert isinstance(support, Support)
            assert all(isinstance(a, str) and a for a in support.actions)
            if resource in BUILTIN_ACTIONS:
                # Extension actions (Custom) may have any other name.
                others = frozenset().union(*BUILTIN_ACTIONS.values()) - BUILTIN_ACTIONS[resource]
                assert not support.actions & others, f"{resource} declares another type's action"
            if resource in UPDATE_FIELDS:
                assert support.updates <= UPDATE_FIELDS[resource], (
                    f"{resource} updates {sorted(support.updates - UPDATE_FIELDS[resource])} are not "
                    f"fields of its update value"
                )
            elif resource in FACTS:
                assert not support.updates, f"base.py has no update value for a {resource}"

    def test_optional_protocols_back_what_supports_declares(self, driver: Driver) -> None:
        if any(support.updates for support in driver.supports.values()):
            assert isinstance(driver, Updates), "live updates are declared: the driver must be Updates"
        if "save" in driver.supports.get(COMPUTE, Support()).actions:
            assert isinstance(driver, Saves), "save is declared: the driver must be Saves"
        if isinstance(driver, Samples):
            assert driver.sampled <= set(driver.supports), "a driver samples only types it provides"

    @pytest.mark.spec("INF-33")
    def test_offers_templates(self, driver: Driver) -> None:
        templates = driver.templates()
        assert all(isinstance(t, Template) for t in templates)
        assert {t.family for t in templates} <= {IMAGE, FLAVOUR, RUNTIME, PLAN, POOL}
        if COMPUTE in driver.supports:
            assert templates_of(driver, IMAGE), "a compute cloud offers at least one image"
        for t in templates:
            # The provider's own name (the service derives the OCCI term) and a title to show.
            assert isinstance(t.name, str) and t.name.strip() == t.name and t.name
            assert t.title
            assert t.cores is None or (isinstance(t.cores, int) and t.cores >= 1)
            assert t.memory_gib is None or t.memory_gib > 0
            assert t.disk_gib is None or t.disk_gib > 0
        keys = [(t.family, t.name) for t in templates]
        assert len(keys) == len(set(keys)), "template names are unique per family"

    # ---------------------------------------------------------------- compute

    async def test_create_compute_boots(self, driver: Driver, compute: Observed) -> None:
        # Every real cloud boots what it creates; the service shows the compute active.
        assert compute.state == "active"
        observed = await driver.observe(Ref(COMPUTE, compute.backend_id))
        assert observed is not None
        assert observed.backend_id == compute.backend_id
        assert observed.state == "active"
        facts(observed, COMPUTE)

    async def test_create_compute_reports_what_it_made(self, driver: Driver, made: Made) -> None:
        require(driver, COMPUTE)
        observed = await made.create(self.compute_spec(driver, hostname="contract-host", cores=1))
        reported = facts(observed, COMPUTE)
        assert reported.hostname in (None, "contract-host")
        assert reported.cores in (None, 1)
        assert reported.architecture in (None, "x86", "x64")

    async def test_concurrent_creates(self, driver: Driver, made: Made) -> None:
        # The service runs jobs concurrently on one event loop.
        require(driver, COMPUTE)
        first, second = await asyncio.gather(
            made.create(self.compute_spec(driver)), made.create(self.compute_spec(driver))
        )
        assert first.backend_id != second.backend_id
        assert first.state == second.state == "active"

    @pytest.mark.spec("INF-12")
    async def test_compute_lifecycle(self, driver: Driver, compute: Observed) -> None:
        # GFD.224 §3.1 state diagram, one step at a time.
        require(driver, COMPUTE, "start", "stop", "suspend", "restart")
        ref = Ref(COMPUTE, compute.backend_id)
        steps: list[tuple[Action, str]] = [
            (Stop(method="poweroff"), "inactive"),
            (Start(), "active"),
            (Suspend(), "suspended"),
            (Start(), "active"),
            (Restart(method="cold"), "active"),
        ]
        for action, expected in steps:
            observed = await driver.act(ref, action)
            assert observed.state == expected, f"{action} -> {observed.state}"
            facts(observed, COMPUTE)
            again = await driver.observe(ref)
            assert again is not None and again.state == expected, f"observe after {action}"

    @pytest.mark.parametrize("method", STOP_METHODS)
    async def test_stop_methods(self, driver: Driver, compute: Observed, method: str) -> None:
        require(driver, COMPUTE, "stop")
        observed = await driver.act(Ref(COMPUTE, compute.backend_id), Stop(method=method))
        assert observed.state == "inactive"

    @pytest.mark.parametrize("method", RESTART_METHODS)
    async def test_restart_methods(self, driver: Driver, compute: Observed, method: str) -> None:
        require(driver, COMPUTE, "restart")
        observed = await driver.act(Ref(COMPUTE, compute.backend_id), Restart(method=method))
        assert observed.state == "active"

    @pytest.mark.parametrize("method", SUSPEND_METHODS)
    async def test_suspend_methods(self, driver: Driver, compute: Observed, method: str) -> None:
        require(driver, COMPUTE, "suspend", "start")
        ref = Ref(COMPUTE, compute.backend_id)
        observed = await driver.act(ref, Suspend(method=method))
        assert observed.state == "suspended"
        resumed = await driver.act(ref, Start())
        assert resumed.state == "active"

    async def test_delete_compute(self, driver: Driver, compute: Observed) -> None:
        ref = Ref(COMPUTE, compute.backend_id)
        await driver.delete(ref)
        assert await driver.observe(ref) is None
        await driver.delete(ref)  # a missing object is not an error

    async def test_delete_stopped_compute(self, driver: Driver, compute: Observed) -> None:
        require(driver, COMPUTE, "stop")
        ref = Ref(COMPUTE, compute.backend_id)
        await driver.act(ref, Stop(method="poweroff"))
        await driver.delete(ref)
        assert await driver.observe(ref) is None

    async def test_create_compute_with_unknown_image_fails(self, driver: Driver, made: Made) -> None:
        require(driver, COMPUTE)
        with pytest.raises(BackendError):
            await made.create(self.compute_spec(driver, image=unique("no-such-image")))

    async def test_unsupported_actions_are_not_supported(self, driver: Driver, compute: Observed) -> None:
        ref = Ref(COMPUTE, compute.backend_id)
        others: list[Action] = [Up(), Down(), Online(), Offline(), Custom("contract-no-such-action")]
        for action in others:
            if action.name not in driver.supports[COMPUTE].actions:
                with pytest.raises(NotSupported):
                    await driver.act(ref, action)
        observed = await driver.observe(ref)
        assert observed is not None and observed.state == "active"

    async def test_create_of_an_unknown_type_is_not_supported(self, driver: Driver) -> None:
        with pytest.raises(NotSupported):
            await driver.create(_Unregistered(unique("ct-thing")))

    # ---------------------------------------------------------------- save (Saves)

    async def test_save_makes_an_image(self, driver: Driver, compute: Observed) -> None:
        require(driver, COMPUTE, "save")
        require_protocol(driver, Saves)
        assert isinstance(driver, Saves)
        template = await driver.save(Ref(COMPUTE, compute.backend_id), Save(unique("ct-snap"), "hot"))
        assert template.family == IMAGE
        assert template.name and template.title
        assert (IMAGE, template.name) in {(t.family, t.name) for t in driver.templates()}
        # GFD.224 §3.1: after save the instance is (or returns to) active.
        observed = await driver.observe(Ref(COMPUTE, compute.backend_id))
        assert observed is not None and observed.state == "active"

    async def test_saves_without_a_name_differ(self, driver: Driver, compute: Observed) -> None:
        require(driver, COMPUTE, "save")
        require_protocol(driver, Saves)
        assert isinstance(driver, Saves)
        ref = Ref(COMPUTE, compute.backend_id)
        first = await driver.save(ref, Save(method="deferred"))
        second = await driver.save(ref, Save(method="deferred"))
        assert first.family == second.family == IMAGE
        assert first.name != second.name

    async def test_compute_from_a_saved_image(self, driver: Driver, compute: Observed, made: Made) -> None:
        require(driver, COMPUTE, "save")
        require_protocol(driver, Saves)
        assert isinstance(driver, Saves)
        template = await driver.save(Ref(COMPUTE, compute.backend_id), Save(unique("ct-snap"), "hot"))
        clone = await made.create(self.compute_spec(driver, image=template.name))
        assert clone.state == "active"

    # ---------------------------------------------------------------- live updates (Updates)

    @pytest.mark.spec("INF-40")
    async def test_resize_compute(self, driver: Driver, compute: Observed) -> None:
        require(driver, COMPUTE, updates=("cores", "memory_gib"))
        assert isinstance(driver, Updates)
        observed = await driver.update(
            Ref(COMPUTE, compute.backend_id), ComputeUpdate(cores=2, memory_gib=1.0)
        )
        assert observed.state in STATES[COMPUTE] - {"error"}
        reported = facts(observed, COMPUTE)
        assert reported.cores in (None, 2)
        assert reported.memory_gib is None or reported.memory_gib == pytest.approx(1.0)

    @pytest.mark.spec("INF-41")
    async def test_reimage_compute(self, driver: Driver, compute: Observed) -> None:
        require(driver, COMPUTE, updates=("image",))
        assert isinstance(driver, Updates)
        image = templates_of(driver, IMAGE)[-1].name
        observed = await driver.update(Ref(COMPUTE, compute.backend_id), ComputeUpdate(image=image))
        assert observed.state in STATES[COMPUTE] - {"error"}

    async def test_reimage_with_unknown_image_fails(self, driver: Driver, compute: Observed) -> None:
        require(driver, COMPUTE, updates=("image",))
        assert isinstance(driver, Updates)
        with pytest.raises(BackendError):
            await driver.update(
                Ref(COMPUTE, compute.backend_id), ComputeUpdate(image=unique("no-such-image"))
            )

    @pytest.mark.spec("INF-43")
    async def test_change_flavour(self, driver: Driver, compute: Observed) -> None:
        require(driver, COMPUTE, updates=("flavour",))
        assert isinstance(driver, Updates)
        flavours = templates_of(driver, FLAVOUR)
        if not flavours:
            pytest.skip(f"driver {driver.name} offers no flavour")
        flavour = flavours[-1]
        observed = await driver.update(Ref(COMPUTE, compute.backend_id), ComputeUpdate(flavour=flavour.name))
        reported = facts(observed, COMPUTE)
        # GFD.224 §3.5.2: the resource template's sizes apply.
        if reported.cores is not None and flavour.cores is not None:
            assert reported.cores == flavour.cores
        if reported.memory_gib is not None and flavour.memory_gib is not None:
            assert reported.memory_gib == pytest.approx(flavour.memory_gib)

    async def test_grow_storage(self, driver: Driver, made: Made) -> None:
        require(driver, STORAGE, updates=("size_gib",))
        assert isinstance(driver, Updates)
        volume = await made.create(self.storage_spec(driver, size_gib=1.0))
        observed = await driver.update(Ref(STORAGE, volume.backend_id), StorageUpdate(size_gib=2.0))
        assert observed.state in STATES[STORAGE] - {"error"}
        size = facts(observed, STORAGE).size_gib
        assert size is None or size >= 2.0 * 0.99

    async def test_shrinking_storage_is_refused(self, driver: Driver, made: Made) -> None:
        require(driver, STORAGE, updates=("size_gib",))
        assert isinstance(driver, Updates)
        volume = await made.create(self.storage_spec(driver, size_gib=2.0))
        with pytest.raises(BackendError):
            await driver.update(Ref(STORAGE, volume.backend_id), StorageUpdate(size_gib=1.0))

    async def test_undeclared_update_is_not_supported(self, driver: Driver, made: Made) -> None:
        require(driver, STORAGE)
        require_protocol(driver, Updates)
        assert isinstance(driver, Updates)
        if "size_gib" in driver.supports[STORAGE].updates:
            pytest.skip(f"driver {driver.name} can resize volumes")
        volume = await made.create(self.storage_spec(driver, size_gib=1.0))
        with pytest.raises(NotSupported):
            await driver.update(Ref(STORAGE, volume.backend_id), StorageUpdate(size_gib=2.0))

    # ---------------------------------------------------------------- storage

    async def test_create_storage_online(self, driver: Driver, made: Made) -> None:
        require(driver, STORAGE)
        spec = self.storage_spec(driver)
        volume = await made.create(spec)
        assert volume.state == "online"
        size = facts(volume, STORAGE).size_gib
        assert size is None or size >= spec.size_gib * 0.99  # clouds may round up
        observed = await driver.observe(Ref(STORAGE, volume.backend_id))
        assert observed is not None and observed.state == "online"

    async def test_storage_offline_online(self, driver: Driver, made: Made) -> None:
        require(driver, STORAGE, "offline", "online")
        volume = await made.create(self.storage_spec(driver))
        ref = Ref(STORAGE, volume.backend_id)
        assert (await driver.act(ref, Offline())).state == "offline"
        assert (await driver.act(ref, Online())).state == "online"

    async def test_storage_backup_and_snapshot_keep_the_state(self, driver: Driver, made: Made) -> None:
        # D-LEGACY-STORAGE: the OCCI 1.1 actions run where the cloud can and change no state.
        require(driver, STORAGE, "backup", "snapshot")
        volume = await made.create(self.storage_spec(driver))
        ref = Ref(STORAGE, volume.backend_id)
        assert (await driver.act(ref, Backup())).state == "online"
        assert (await driver.act(ref, Snapshot())).state == "online"

    async def test_delete_storage(self, driver: Driver, made: Made) -> None:
        require(driver, STORAGE)
        volume = await made.create(self.storage_spec(driver))
        await driver.delete(Ref(STORAGE, volume.backend_id))
        assert await driver.observe(Ref(STORAGE, volume.backend_id)) is None

    # ---------------------------------------------------------------- network

    async def test_create_network_allocates_address(self, driver: Driver, made: Made) -> None:
        require(driver, NETWORK)
        network = await made.create(self.network_spec(driver))
        assert network.state == "active"
        reported = facts(network, NETWORK)
        assert isinstance(reported.address, str), "a network reports its address range"
        net = ipaddress.ip_network(reported.address, strict=False)
        if reported.gateway is not None:
            assert ipaddress.ip_address(reported.gateway) in net
        assert reported.allocation in (None, "dynamic", "static")

    async def test_create_network_with_given_range(self, driver: Driver, made: Made) -> None:
        require(driver, NETWORK)
        octet = uuid.uuid4().int % 200 + 20  # unlikely to collide with other tests' networks
        network = await made.create(
            self.network_spec(driver, address=f"192.168.{octet}.0/24", gateway=f"192.168.{octet}.1")
        )
        assert network.state == "active"
        reported = facts(network, NETWORK)
        address = reported.address or f"192.168.{octet}.0/24"
        assert ipaddress.ip_network(address, strict=False) == ipaddress.ip_network(f"192.168.{octet}.0/24")
        assert reported.gateway in (None, f"192.168.{octet}.1")

    async def test_networks_get_distinct_ranges(self, driver: Driver, made: Made) -> None:
        require(driver, NETWORK)
        first = facts(await made.create(self.network_spec(driver)), NETWORK)
        second = facts(await made.create(self.network_spec(driver)), NETWORK)
        a = ipaddress.ip_network(str(first.address), strict=False)
        b = ipaddress.ip_network(str(second.address), strict=False)
        assert not a.overlaps(b)

    async def test_network_down_up(self, driver: Driver, made: Made) -> None:
        require(driver, NETWORK, "down", "up")
        network = await made.create(self.network_spec(driver))
        ref = Ref(NETWORK, network.backend_id)
        assert (await driver.act(ref, Down())).state == "inactive"
        assert (await driver.act(ref, Up())).state == "active"

    async def test_delete_network(self, driver: Driver, made: Made) -> None:
        require(driver, NETWORK)
        network = await made.create(self.network_spec(driver))
        await driver.delete(Ref(NETWORK, network.backend_id))
        assert await driver.observe(Ref(NETWORK, network.backend_id)) is None

    # ---------------------------------------------------------------- storagelinks

    @pytest.mark.spec("INF-32")
    async def test_storagelink_attach_detach(self, driver: Driver, compute: Observed, made: Made) -> None:
        require(driver, STORAGE)
        require(driver, STORAGELINK)
        volume = await made.create(self.storage_spec(driver))
        link = await made.create(
            StorageLinkSpec(name=unique("ct-sl"), compute_id=compute.backend_id, storage_id=volume.backend_id)
        )
        assert link.state == "active"
        device = facts(link, STORAGELINK).device
        assert isinstance(device, str) and device, "a storagelink reports its device"
        ref = Ref(STORAGELINK, link.backend_id)
        observed = await driver.observe(ref)
        assert observed is not None and observed.state == "active"

        await driver.delete(ref)
        assert await driver.observe(ref) is None
        # Detaching leaves both ends in place.
        assert await driver.observe(Ref(STORAGE, volume.backend_id)) is not None
        assert await driver.observe(Ref(COMPUTE, compute.backend_id)) is not None

    async def test_two_storagelinks_get_distinct_devices(
        self, driver: Driver, compute: Observed, made: Made
    ) -> None:
        require(driver, STORAGE)
        require(driver, STORAGELINK)
        links = [await self._storagelink(driver, made, compute) for _ in range(2)]
        devices = [facts(link, STORAGELINK).device for link in links]
        assert devices[0] and devices[1] and devices[0] != devices[1]

    async def test_storagelink_keeps_its_mountpoint(
        self, driver: Driver, compute: Observed, made: Made
    ) -> None:
        require(driver, STORAGE)
        require(driver, STORAGELINK)
        link = await self._storagelink(driver, made, compute, mountpoint="/srv/data")
        assert facts(link, STORAGELINK).mountpoint in (None, "/srv/data")

    async def test_delete_compute_with_links(self, driver: Driver, compute: Observed, made: Made) -> None:
        # DELETE is accepted in any state and with links attached (infrastructure.md §4.3).
        require(driver, STORAGE)
        require(driver, STORAGELINK)
        volume = await made.create(self.storage_spec(driver))
        link = await made.create(
            StorageLinkSpec(name=unique("ct-sl"), compute_id=compute.backend_id, storage_id=volume.backend_id)
        )
        await driver.delete(Ref(COMPUTE, compute.backend_id))
        assert await driver.observe(Ref(COMPUTE, compute.backend_id)) is None
        assert await driver.observe(Ref(STORAGELINK, link.backend_id)) is None
        assert await driver.observe(Ref(STORAGE, volume.backend_id)) is not None

    # ---------------------------------------------------------------- networkinterfaces

    @pytest.mark.spec("INF-25")
    async def test_networkinterface_attach_detach(
        self, driver: Driver, compute: Observed, made: Made
    ) -> None:
        require(driver, NETWORK)
        require(driver, NETWORKINTERFACE)
        network = await made.create(self.network_spec(driver))
        nic = await made.create(
            NetworkInterfaceSpec(
                name=unique("ct-nic"), compute_id=compute.backend_id, network_id=network.backend_id
            )
        )
        assert nic.state == "active"
        reported = facts(nic, NETWORKINTERFACE)
        assert isinstance(reported.mac, str) and MAC_RE.match(reported.mac), f"mac {reported.mac!r}"
        assert isinstance(reported.interface, str) and reported.interface
        if reported.address is not None:
            # GFD.224 examples write addresses with a prefix ("192.168.0.1/24"): accept both.
            host = ipaddress.ip_interface(reported.address).ip
            net = ipaddress.ip_network(str(facts(network, NETWORK).address), strict=False)
            assert host in net

        ref = Ref(NETWORKINTERFACE, nic.backend_id)
        await driver.delete(ref)
        assert await driver.observe(ref) is None
        assert await driver.observe(Ref(NETWORK, network.backend_id)) is not None
        assert await driver.observe(Ref(COMPUTE, compute.backend_id)) is not None

    async def test_networkinterface_keeps_a_given_mac(
        self, driver: Driver, compute: Observed, made: Made
    ) -> None:
        require(driver, NETWORK)
        require(driver, NETWORKINTERFACE)
        network = await made.create(self.network_spec(driver))
        mac = "02:00:00:" + ":".join(f"{octet:02x}" for octet in uuid.uuid4().bytes[:3])
        spec = NetworkInterfaceSpec(
            name=unique("ct-nic"), compute_id=compute.backend_id, network_id=network.backend_id, mac=mac
        )
        try:
            nic = await made.create(spec)
        except NotSupported:
            return  # a cloud that picks MACs itself says so (EC2, OpenStack ports without admin)
        assert str(facts(nic, NETWORKINTERFACE).mac).lower() == mac

    async def test_two_networkinterfaces_differ(self, driver: Driver, compute: Observed, made: Made) -> None:
        require(driver, NETWORK)
        require(driver, NETWORKINTERFACE)
        network = await made.create(self.network_spec(driver))
        nics = [
            facts(
                await made.create(
                    NetworkInterfaceSpec(
                        name=unique("ct-nic"), compute_id=compute.backend_id, network_id=network.backend_id
                    )
                ),
                NETWORKINTERFACE,
            )
            for _ in range(2)
        ]
        assert len({str(n.mac).lower() for n in nics}) == 2
        assert len({n.interface for n in nics}) == 2
        if None not in (nics[0].address, nics[1].address):
            assert nics[0].address != nics[1].address

    # ---------------------------------------------------------------- link names (Proposes)

    def _link_specs(self) -> tuple[StorageLinkSpec, NetworkInterfaceSpec]:
        return (
            StorageLinkSpec(name=unique("ct-sl"), compute_id=missing_id(), storage_id=missing_id()),
            NetworkInterfaceSpec(name=unique("ct-nic"), compute_id=missing_id(), network_id=missing_id()),
        )

    def test_proposals_are_facts_of_the_link_type(self, driver: Driver) -> None:
        require_protocol(driver, Proposes)
        assert isinstance(driver, Proposes)
        storagelink, interface = self._link_specs()
        # A proposal is made before the cloud call, without it: unknown ends do not matter.
        disk = driver.propose(storagelink, [])
        assert disk is None or (isinstance(disk, StorageLinkFacts) and disk.device)
        nic = driver.propose(interface, [])
        assert nic is None or (isinstance(nic, NetworkInterfaceFacts) and nic.interface)
        if isinstance(nic, NetworkInterfaceFacts) and nic.mac is not None:
            assert MAC_RE.match(nic.mac), nic.mac
        assert driver.propose(ComputeSpec(name=unique("ct-vm")), []) is None

    def test_proposals_keep_the_clients_choice_and_avoid_taken_names(self, driver: Driver) -> None:
        require_protocol(driver, Proposes)
        assert isinstance(driver, Proposes)
        storagelink, interface = self._link_specs()
        disk = driver.propose(storagelink, [])
        if isinstance(disk, StorageLinkFacts):
            again = driver.propose(dataclasses.replace(storagelink, device=disk.device), [])
            assert isinstance(again, StorageLinkFacts) and again.device == disk.device
            other = driver.propose(storagelink, [disk])
            assert isinstance(other, StorageLinkFacts) and other.device != disk.device
        nic = driver.propose(interface, [])
        if isinstance(nic, NetworkInterfaceFacts):
            again = driver.propose(dataclasses.replace(interface, interface=nic.interface, mac=nic.mac), [])
            assert isinstance(again, NetworkInterfaceFacts)
            assert (again.interface, again.mac) == (nic.interface, nic.mac)
            other = driver.propose(interface, [nic])
            assert isinstance(other, NetworkInterfaceFacts) and other.interface != nic.interface
            if nic.mac is not None:
                assert other.mac != nic.mac

    async def test_create_uses_the_proposed_device(
        self, driver: Driver, compute: Observed, made: Made
    ) -> None:
        require(driver, STORAGE)
        require(driver, STORAGELINK)
        require_protocol(driver, Proposes)
        assert isinstance(driver, Proposes)
        taken: list[object] = []
        devices = []
        for _ in range(2):  # the second proposal knows the first link: two links, two names
            volume = await made.create(self.storage_spec(driver))
            spec = StorageLinkSpec(
                name=unique("ct-sl"), compute_id=compute.backend_id, storage_id=volume.backend_id
            )
            proposal = driver.propose(spec, taken)
            if not isinstance(proposal, StorageLinkFacts):
                pytest.skip(f"driver {driver.name} proposes no storagelink device")
            link = facts(await made.create(dataclasses.replace(spec, device=proposal.device)), STORAGELINK)
            assert link.device == proposal.device
            taken.append(link)
            devices.append(link.device)
        assert devices[0] != devices[1]

    async def test_create_uses_the_proposed_interface(
        self, driver: Driver, compute: Observed, made: Made
    ) -> None:
        require(driver, NETWORK)
        require(driver, NETWORKINTERFACE)
        require_protocol(driver, Proposes)
        assert isinstance(driver, Proposes)
        network = await made.create(self.network_spec(driver))
        taken: list[object] = []
        for _ in range(2):
            spec = NetworkInterfaceSpec(
                name=unique("ct-nic"), compute_id=compute.backend_id, network_id=network.backend_id
            )
            proposal = driver.propose(spec, taken)
            if not isinstance(proposal, NetworkInterfaceFacts):
                pytest.skip(f"driver {driver.name} proposes no interface names")
            nic = facts(
                await made.create(dataclasses.replace(spec, interface=proposal.interface, mac=proposal.mac)),
                NETWORKINTERFACE,
            )
            assert nic.interface == proposal.interface
            if proposal.mac is not None:
                assert str(nic.mac).lower() == proposal.mac.lower()
            taken.append(nic)
        first, second = taken
        assert isinstance(first, NetworkInterfaceFacts) and isinstance(second, NetworkInterfaceFacts)
        assert first.interface != second.interface and first.mac != second.mac

    # ---------------------------------------------------------------- Inventories

    async def test_inventory_finds_tagged_objects_only(self, driver: Driver, made: Made) -> None:
        require_protocol(driver, Inventories)
        assert isinstance(driver, Inventories)
        tagged: dict[Ref, str] = {}
        untagged: set[Ref] = set()

        async def both(resource: str, spec_of: Any) -> tuple[Observed, Observed]:
            entity_id = f"urn:uuid:{uuid.uuid4()}"
            one = await made.create(spec_of(entity_id))
            other = await made.create(spec_of(""))
            tagged[Ref(resource, one.backend_id)] = entity_id
            untagged.add(Ref(resource, other.backend_id))
            return one, other

        computes: tuple[Observed, Observed] | None = None
        if COMPUTE in driver.supports:
            computes = await both(COMPUTE, lambda e: self.compute_spec(driver, entity_id=e))
        if STORAGE in driver.supports:
            await both(STORAGE, lambda e: self.storage_spec(driver, entity_id=e))
        if NETWORK in driver.supports:
            network, _ = await both(NETWORK, lambda e: self.network_spec(driver, entity_id=e))
            if computes is not None and NETWORKINTERFACE in driver.supports:
                await both(
                    NETWORKINTERFACE,
                    lambda e: NetworkInterfaceSpec(
                        name=unique("ct-nic"),
                        # One interface per compute and network (Docker connects a container once).
                        compute_id=computes[0 if e else 1].backend_id,
                        network_id=network.backend_id,
                        entity_id=e,
                    ),
                )
        if computes is not None and {STORAGE, STORAGELINK} <= set(driver.supports):
            volumes = [await made.create(self.storage_spec(driver)) for _ in range(2)]
            volume_ids = iter(v.backend_id for v in volumes)
            await both(
                STORAGELINK,
                lambda e: StorageLinkSpec(
                    name=unique("ct-sl"),
                    compute_id=computes[0].backend_id,
                    storage_id=next(volume_ids),
                    entity_id=e,
                ),
            )
            untagged.update(Ref(STORAGE, v.backend_id) for v in volumes)
        found = {item.ref: item.entity_id for item in await driver.inventory()}
        for ref, entity_id in tagged.items():
            assert found.get(ref) == entity_id, f"inventory misses {ref}"
        assert not untagged & set(found), f"inventory lists untagged objects {untagged & set(found)}"

        gone = next(iter(tagged))
        await driver.delete(gone)
        assert gone not in {item.ref for item in await driver.inventory()}

    # ---------------------------------------------------------------- Watches

    def test_changes_is_an_async_iterator(self, driver: Driver) -> None:
        require_protocol(driver, Watches)
        assert isinstance(driver, Watches)
        stream = driver.changes()
        assert hasattr(stream, "__anext__")

    async def test_reports_an_outside_change(self, driver: Driver, compute: Observed) -> None:
        require_protocol(driver, Watches)
        assert isinstance(driver, Watches)
        ref = Ref(COMPUTE, compute.backend_id)
        stream = driver.changes()
        await self.change_outside(driver, ref, "inactive")
        change = await next_change(stream, ref)
        assert change.observed is not None
        assert change.observed.state == "inactive"
        facts(change.observed, COMPUTE)
        await self.change_outside(driver, ref, None)
        change = await next_change(stream, ref)
        assert change.observed is None
        assert await driver.observe(ref) is None

    # ---------------------------------------------------------------- readings (Samples)

    def _sampler(self, driver: Driver, resource: str) -> Samples:
        require_protocol(driver, Samples)
        assert isinstance(driver, Samples)
        if resource not in driver.sampled:
            pytest.skip(f"driver {driver.name} does not sample a {resource}")
        return driver

    @staticmethod
    def _plausible(reading: Reading | None, started: float) -> Reading:
        assert isinstance(reading, Reading)
        assert started - 1.0 <= reading.taken <= time.time() + 1.0, "taken is the time of the reading"
        counters = (reading.cpu_seconds, reading.disk_read_bytes, reading.disk_write_bytes,
                    reading.net_rx_bytes, reading.net_tx_bytes, reading.memory_used_bytes)
        assert all(value is None or value >= 0 for value in counters)
        assert reading.cpus is None or reading.cpus >= 1
        if reading.memory_used_bytes is not None and reading.memory_total_bytes:
            assert reading.memory_used_bytes <= reading.memory_total_bytes
        return reading

    async def test_samples_a_running_compute(self, driver: Driver, compute: Observed) -> None:
        sampler = self._sampler(driver, COMPUTE)
        started = time.time()
        reading = self._plausible(await sampler.sample(Ref(COMPUTE, compute.backend_id)), started)
        assert reading.running

    async def test_samples_a_stopped_compute_as_not_running(self, driver: Driver, compute: Observed) -> None:
        sampler = self._sampler(driver, COMPUTE)
        require(driver, COMPUTE, "stop")
        ref = Ref(COMPUTE, compute.backend_id)
        await driver.act(ref, Stop(method="poweroff"))
        started = time.time()
        reading = self._plausible(await sampler.sample(ref), started)
        assert not reading.running

    async def test_sampling_a_missing_object_gives_none(self, driver: Driver) -> None:
        require_protocol(driver, Samples)
        assert isinstance(driver, Samples)
        for resource in driver.sampled:
            assert await driver.sample(Ref(resource, missing_id())) is None

    # ---------------------------------------------------------------- Adopts

    async def test_adopting_a_known_object_changes_nothing(self, driver: Driver, compute: Observed) -> None:
        # The service re-introduces every stored object at start-up; for a live one it is a no-op.
        require_protocol(driver, Adopts)
        assert isinstance(driver, Adopts)
        ref = Ref(COMPUTE, compute.backend_id)
        await driver.adopt(ref, compute)
        observed = await driver.observe(ref)
        assert observed is not None and observed.state == "active"
        assert observed.facts == compute.facts

    # ---------------------------------------------------------------- errors

    async def test_observe_unknown_is_none(self, driver: Driver) -> None:
        for resource in driver.supports:
            assert await driver.observe(Ref(resource, missing_id())) is None

    async def test_delete_unknown_is_fine(self, driver: Driver) -> None:
        for resource in driver.supports:
            await driver.delete(Ref(resource, missing_id()))

    async def test_act_on_unknown_is_backend_error(self, driver: Driver) -> None:
        actions: Mapping[str, Action] = {
            "start": Start(),
            "stop": Stop(method="poweroff"),
            "online": Online(),
            "offline": Offline(),
            "up": Up(),
            "down": Down(),
        }
        for resource, support in driver.supports.items():
            action = next((actions[a] for a in sorted(support.actions) if a in actions), None)
            if action is not None and resource in BUILTIN_ACTIONS:
                with pytest.raises(BackendError):
                    await driver.act(Ref(resource, missing_id()), action)

    async def test_update_unknown_is_backend_error(self, driver: Driver) -> None:
        require_protocol(driver, Updates)
        assert isinstance(driver, Updates)
        tried = False
        if "size_gib" in driver.supports.get(STORAGE, Support()).updates:
            with pytest.raises(BackendError):
                await driver.update(Ref(STORAGE, missing_id()), StorageUpdate(size_gib=3.0))
            tried = True
        if "cores" in driver.supports.get(COMPUTE, Support()).updates:
            with pytest.raises(BackendError):
                await driver.update(Ref(COMPUTE, missing_id()), ComputeUpdate(cores=2))
            tried = True
        if not tried:
            pytest.skip(f"driver {driver.name} resizes neither volumes nor computes")

    async def test_save_unknown_is_backend_error(self, driver: Driver) -> None:
        require(driver, COMPUTE, "save")
        require_protocol(driver, Saves)
        assert isinstance(driver, Saves)
        with pytest.raises(BackendError):
            await driver.save(Ref(COMPUTE, missing_id()), Save(method="hot"))

    async def test_link_to_unknown_compute_is_backend_error(self, driver: Driver, made: Made) -> None:
        require(driver, STORAGE)
        require(driver, STORAGELINK)
        volume = await made.create(self.storage_spec(driver))
        with pytest.raises(BackendError):
            await made.create(
                StorageLinkSpec(name=unique("ct-sl"), compute_id=missing_id(), storage_id=volume.backend_id)
            )

    async def test_link_to_unknown_storage_is_backend_error(
        self, driver: Driver, compute: Observed, made: Made
    ) -> None:
        require(driver, STORAGELINK)
        with pytest.raises(BackendError):
            await made.create(
                StorageLinkSpec(name=unique("ct-sl"), compute_id=compute.backend_id, storage_id=missing_id())
            )

    async def test_interface_to_unknown_network_is_backend_error(
        self, driver: Driver, compute: Observed, made: Made
    ) -> None:
        require(driver, NETWORKINTERFACE)
        with pytest.raises(BackendError):
            await made.create(
                NetworkInterfaceSpec(
                    name=unique("ct-nic"), compute_id=compute.backend_id, network_id=missing_id()
                )
            )

    async def test_unreachable_cloud_is_backend_unavailable(self) -> None:
        driver = await self.unreachable()
        if driver is None:
            pytest.skip("an in-process cloud is always reachable")
        try:
            with pytest.raises(BackendUnavailable):
                await driver.open()
        finally:
            await driver.close()

"""The simulated cloud: the driver contract suite, then what only the simulated cloud does."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from occipy.backends import load_driver_class
from occipy.backends.base import (
    COMPUTE,
    FLAVOUR,
    IMAGE,
    NETWORK,
    NETWORKINTERFACE,
    STORAGE,
    STORAGELINK,
    Action,
    Adopts,
    Backup,
    Change,
    ComputeFacts,
    ComputeSpec,
    ComputeUpdate,
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
    Ref,
    Restart,
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
    Suspend,
    Up,
    Updates,
    Watches,
    resource_of,
)
from occipy.backends.simulated import MAC_PREFIX, SimulatedDriver
from occipy.errors import BackendError, NotSupported, OcciError

from .contract import DriverContract


class TestSimulatedContract(DriverContract):
    @pytest.fixture
    async def driver(self) -> AsyncIterator[SimulatedDriver]:
        drv = SimulatedDriver(delay=0, seed=7)
        await drv.open()
        yield drv
        await drv.close()

    async def change_outside(self, driver: Driver, ref: Ref, state: str | None) -> None:
        assert isinstance(driver, SimulatedDriver)
        await driver.simulate_external(ref, state)


class TestSimulatedContractWithDelay(TestSimulatedContract):
    """The same contract with real (short) sleeps, so awaits interleave as in production."""

    @pytest.fixture
    async def driver(self) -> AsyncIterator[SimulatedDriver]:
        drv = SimulatedDriver(delay=0.001, seed=8)
        await drv.open()
        yield drv
        await drv.close()


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedDriver]:
    drv = SimulatedDriver(delay=0, seed=1)
    await drv.open()
    yield drv
    await drv.close()


async def _compute(sim: SimulatedDriver, name: str = "vm", **kw: Any) -> Observed:
    return await sim.create(ComputeSpec(name=name, **kw))


def _ref(resource: str, observed: Observed) -> Ref:
    return Ref(resource, observed.backend_id)


def _facts(observed: Observed | None) -> Any:
    assert observed is not None
    return observed.facts


# ---------------------------------------------------------------- construction


def test_registered_under_simulated() -> None:
    assert load_driver_class("simulated") is SimulatedDriver
    driver: Driver = SimulatedDriver()  # mypy checks that the class satisfies the protocol
    assert driver.name == "simulated"


def test_implements_every_optional_protocol() -> None:
    drv = SimulatedDriver()
    for protocol in (Updates, Saves, Watches, Adopts, Inventories, Proposes):
        assert isinstance(drv, protocol), protocol.__name__
    # mypy checks the signatures too.
    checked: tuple[Updates, Saves, Watches, Adopts, Inventories, Proposes] = (drv, drv, drv, drv, drv, drv)
    assert all(checked)


def test_supports_every_type_action_and_update() -> None:
    supports = SimulatedDriver().supports
    # the Infrastructure types, the EGI ones and the Platform ones (GFD.227)
    assert set(supports) == {COMPUTE, STORAGE, NETWORK, STORAGELINK, NETWORKINTERFACE,
                             "securitygroup", "securitygrouplink", "ipreservation",
                             "application", "component", "componentlink"}
    assert supports[COMPUTE].actions == {"start", "stop", "restart", "suspend", "save"}
    assert supports[COMPUTE].updates == {f.name for f in dataclasses.fields(ComputeUpdate)}
    assert supports[STORAGE].updates == {"size_gib"}
    assert supports[NETWORK].actions == {"up", "down"}


def test_from_options_defaults(tmp_path: Path) -> None:
    drv = SimulatedDriver.from_options({}, tmp_path)
    assert drv.delay == 1.0
    assert drv.fail == "simulate-failure"
    assert list(tmp_path.iterdir()) == []  # no I/O


def test_from_options_values(tmp_path: Path) -> None:
    drv = SimulatedDriver.from_options({"delay": "0.25", "fail": "boom", "seed": "3"}, tmp_path)
    assert drv.delay == 0.25
    assert drv.fail == "boom"


@pytest.mark.parametrize(
    "options",
    [
        {"delay": "soon"},
        {"delay": "-1"},
        {"delay": "nan"},
        {"delay": "inf"},
        {"seed": "x"},
        {"dealy": "0"},
    ],
)
def test_from_options_refuses_bad_values(tmp_path: Path, options: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        SimulatedDriver.from_options(options, tmp_path)


async def test_seed_makes_it_deterministic() -> None:
    async def run(seed: int) -> list[object]:
        drv = SimulatedDriver(delay=0, seed=seed)
        vm = await _compute(drv)
        net = await drv.create(NetworkSpec(name="n"))
        nic = await drv.create(
            NetworkInterfaceSpec(name="i", compute_id=vm.backend_id, network_id=net.backend_id)
        )
        return [vm.backend_id, net.backend_id, nic.backend_id, nic.facts]

    assert await run(5) == await run(5)
    assert await run(5) != await run(6)


# ---------------------------------------------------------------- templates and computes


@pytest.mark.spec("INF-44")
def test_templates_offered(sim: SimulatedDriver) -> None:
    images = [t for t in sim.templates() if t.family == IMAGE]
    flavours = [t for t in sim.templates() if t.family == FLAVOUR]
    assert len(images) >= 4 and len(flavours) >= 3
    assert "ubuntu-24.04" in {t.name for t in images}  # the provider's own names, not OCCI terms
    assert any("Debian" in t.title for t in images)
    assert all(t.architecture == "x64" for t in images)
    for flavour in flavours:
        assert flavour.cores is not None and flavour.memory_gib is not None
    # CRTP small/medium/large come from the registry: no clash with them.
    assert not {t.name for t in flavours} & {
        "small",
        "medium",
        "large",
        "mem_small",
        "mem_medium",
        "mem_large",
    }


async def test_compute_facts(sim: SimulatedDriver) -> None:
    vm = await _compute(sim, "web", cores=2, memory_gib=4)
    assert vm.facts == ComputeFacts(cores=2, memory_gib=4.0, architecture="x64", hostname="web")
    named = await _compute(sim, "db", hostname="db.example.org")
    assert _facts(named).hostname == "db.example.org"
    assert _facts(named).cores == 1 and _facts(named).memory_gib == 1.0  # the cloud's default size


async def test_idle_objects_hold_no_lock_and_facts_are_untracked(sim: SimulatedDriver) -> None:
    # Each object's lock exists only while a task uses it, and the facts values hold only scalars:
    # tens of thousands of idle objects add nothing for Python's collector to walk.
    vm = await _compute(sim, "idle", cores=2, memory_gib=4)
    await sim.act(_ref(COMPUTE, vm), Stop())
    assert sim._locks._held == {}
    assert not gc.is_tracked(vm.facts)


async def test_bad_sizes_are_backend_errors(sim: SimulatedDriver) -> None:
    with pytest.raises(BackendError, match="cores"):
        await _compute(sim, cores=0)
    with pytest.raises(BackendError, match="memory"):
        await _compute(sim, memory_gib=-1.0)
    with pytest.raises(BackendError, match="arm64"):
        await _compute(sim, architecture="arm64")
    with pytest.raises(BackendError, match="size"):
        await sim.create(StorageSpec(name="v", size_gib=0))
    assert sim._objects == {}


@pytest.mark.spec("INF-43")
async def test_flavour_overrides_sizes(sim: SimulatedDriver) -> None:
    # GFD.224 §3.5.2: the resource template overrides size attributes of the resource.
    vm = await _compute(sim, cores=1, memory_gib=1, flavour="xlarge")
    assert (_facts(vm).cores, _facts(vm).memory_gib) == (8, 32.0)


async def test_unknown_flavour_keeps_the_sizes_given(sim: SimulatedDriver) -> None:
    # The CRTP templates are the registry's: the service sizes the compute from them.
    vm = await _compute(sim, cores=2, memory_gib=4, flavour="medium")
    assert _facts(vm).cores == 2


@pytest.mark.spec("INF-40")
@pytest.mark.spec("INF-48")
async def test_resize_and_reimage(sim: SimulatedDriver) -> None:
    vm = await _compute(sim, image="debian-12")
    ref = _ref(COMPUTE, vm)
    resized = await sim.update(ref, ComputeUpdate(flavour="xxlarge"))
    assert _facts(resized).cores == 16
    assert _facts(await sim.update(ref, ComputeUpdate(cores=3))).cores == 3
    reimaged = await sim.update(ref, ComputeUpdate(image="rocky-9"))
    assert reimaged.state == "active"
    assert sim._objects[vm.backend_id].image == "rocky-9"
    with pytest.raises(BackendError, match="no image"):
        await sim.update(ref, ComputeUpdate(image="windows-95"))
    with pytest.raises(BackendError, match="cores"):
        await sim.update(ref, ComputeUpdate(cores=0, image="alpine-3.20"))
    # A refused update changes nothing (it is checked whole before it is applied).
    assert sim._objects[vm.backend_id].image == "rocky-9"
    unchanged = await sim.update(ref, ComputeUpdate())
    assert unchanged.facts == _facts(await sim.observe(ref))
    with pytest.raises(NotSupported):
        await sim.update(ref, StorageUpdate(size_gib=3))


@pytest.mark.parametrize(
    "action",
    [Stop(method="reboot"), Restart(method="poweroff"), Suspend(method="graceful"), Save(method="cold")],
)
async def test_unknown_method_is_not_supported(sim: SimulatedDriver, action: Action) -> None:
    vm = await _compute(sim)
    with pytest.raises(NotSupported, match="method"):
        await sim.act(_ref(COMPUTE, vm), action)
    observed = await sim.observe(_ref(COMPUTE, vm))
    assert observed is not None and observed.state == "active"


async def test_deffered_is_an_alias(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    template = await sim.save(_ref(COMPUTE, vm), Save(method="deffered"))
    assert template.family == IMAGE


@pytest.mark.spec("INF-09")
@pytest.mark.spec("INF-34")
async def test_save_names(sim: SimulatedDriver) -> None:
    vm = await _compute(sim, "web")
    ref = _ref(COMPUTE, vm)
    first = await sim.save(ref, Save(method="hot"))
    second = await sim.save(ref, Save(method="deferred"))
    assert (first.name, second.name) == ("web-snapshot-1", "web-snapshot-2")
    # The provider's own name: kept as the client gave it, numbered when taken (the service
    # makes the OCCI term).
    named = await sim.save(ref, Save("golden image!", "hot"))
    assert named.name == "golden image!"
    again = await sim.save(ref, Save("golden image!", "hot"))
    assert again.name == "golden image!-2"
    assert "Debian" in named.title and named.architecture == "x64"
    assert {"golden image!", "golden image!-2"} <= {t.name for t in sim.templates()}


async def test_save_as_action(sim: SimulatedDriver) -> None:
    vm = await _compute(sim, "web")
    observed = await sim.act(_ref(COMPUTE, vm), Save("snap", "hot"))
    assert observed.state == "active" and observed.message == "saved as image snap"
    assert "snap" in {t.name for t in sim.templates()}
    clone = await _compute(sim, "clone", image="snap")
    assert clone.state == "active"


async def test_actions_of_other_types_are_not_supported(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    vol = await sim.create(StorageSpec(name="v", size_gib=1))
    cases: list[tuple[Ref, Action]] = [
        (_ref(COMPUTE, vm), Up()),
        (_ref(STORAGE, vol), Start()),
        (_ref(STORAGE, vol), Down()),
    ]
    for ref, action in cases:
        with pytest.raises(NotSupported):
            await sim.act(ref, action)


# ---------------------------------------------------------------- storage, networks, links


async def test_storage_grow_only(sim: SimulatedDriver) -> None:
    vol = await sim.create(StorageSpec(name="data", size_gib=10))
    assert vol.facts == StorageFacts(size_gib=10.0)
    ref = _ref(STORAGE, vol)
    grown = await sim.update(ref, StorageUpdate(size_gib=20))
    assert grown.facts == StorageFacts(size_gib=20.0)
    with pytest.raises(BackendError, match="cannot shrink from 20 GiB to 5 GiB"):
        await sim.update(ref, StorageUpdate(size_gib=5))
    assert _facts(await sim.observe(ref)).size_gib == 20.0
    assert (await sim.act(ref, Offline())).state == "offline"
    assert (await sim.act(ref, Online())).state == "online"


async def test_volume_backup_and_snapshot_are_recorded(sim: SimulatedDriver) -> None:
    # D-LEGACY-STORAGE: no data is kept; the records are what a test observes, the state stays.
    vol = await sim.create(StorageSpec(name="data", size_gib=10))
    ref = _ref(STORAGE, vol)
    assert (await sim.act(ref, Offline())).state == "offline"
    assert (await sim.act(ref, Backup())).state == "offline"
    assert (await sim.act(ref, Snapshot())).state == "offline"
    assert sim.volume_copies == [(vol.backend_id, "backup"), (vol.backend_id, "snapshot")]
    with pytest.raises(BackendError):
        await sim.act(Ref(STORAGE, "vol-missing"), Backup())
    assert len(sim.volume_copies) == 2


async def test_network_pool_skips_every_entry_a_client_range_covers(sim: SimulatedDriver) -> None:
    # A /22 covers four pool entries; an IPv6 range and a bad one overlap none.
    await sim.create(NetworkSpec(name="wide", address="10.10.0.0/22", gateway="10.10.0.1"))
    await sim.create(NetworkSpec(name="six", address="fd00::/64", gateway="fd00::1"))
    fifth = await sim.create(NetworkSpec(name="next"))
    assert _facts(fifth).address == "10.10.4.0/24"
    # A range that covers the pool's start from below (10.8.0.0/14 ends at 10.11.255.255).
    wide = SimulatedDriver(delay=0, seed=2)
    await wide.create(NetworkSpec(name="below", address="10.8.0.0/14", gateway="10.8.0.1"))
    assert _facts(await wide.create(NetworkSpec(name="after"))).address == "10.12.0.0/24"


async def test_network_pool(sim: SimulatedDriver) -> None:
    first = await sim.create(NetworkSpec(name="a"))
    assert first.facts == NetworkFacts(address="10.10.0.0/24", gateway="10.10.0.1", allocation="dynamic")
    # A client range that covers the next pool entry pushes the pool past it.
    await sim.create(
        NetworkSpec(name="b", address="10.10.1.0/24", gateway="10.10.1.254", allocation="static")
    )
    third = await sim.create(NetworkSpec(name="c"))
    assert _facts(third).address == "10.10.2.0/24"
    with pytest.raises(BackendError, match="outside"):
        await sim.create(NetworkSpec(name="d", address="192.168.0.0/24", gateway="10.0.0.1"))
    with pytest.raises(BackendError, match="CIDR"):
        await sim.create(NetworkSpec(name="e", address="not-a-range"))
    with pytest.raises(BackendError, match="allocation"):
        await sim.create(NetworkSpec(name="f", allocation="sometimes"))


@pytest.mark.spec("INF-28")
async def test_interface_addresses(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    net = await sim.create(NetworkSpec(name="lan", address="192.168.7.0/29"))

    async def nic(name: str, **kw: Any) -> NetworkInterfaceFacts:
        spec = NetworkInterfaceSpec(name=name, compute_id=vm.backend_id, network_id=net.backend_id, **kw)
        observed = await sim.create(spec)
        assert isinstance(observed.facts, NetworkInterfaceFacts)
        return observed.facts

    nics = [await nic(f"n{i}") for i in range(3)]
    assert [n.interface for n in nics] == ["eth0", "eth1", "eth2"]
    assert [n.address for n in nics] == ["192.168.7.2", "192.168.7.3", "192.168.7.4"]
    assert all(n.gateway == "192.168.7.1" for n in nics)
    assert all(str(n.mac).startswith(MAC_PREFIX + ":") for n in nics)
    given = await nic("s", address="192.168.7.6/29", allocation="static")
    assert (given.address, given.allocation) == ("192.168.7.6/29", "static")
    with pytest.raises(BackendError, match="already in use"):
        await nic("t", address="192.168.7.6")
    with pytest.raises(BackendError, match="outside"):
        await nic("u", address="10.0.0.9")
    with pytest.raises(BackendError, match="not an IP address"):
        await nic("u", address="ten")
    assert (await nic("v", allocation="static")).address is None
    await nic("w")
    # /29: hosts .1-.6; .1 gateway, .2-.6 taken now.
    with pytest.raises(BackendError, match="no free address"):
        await nic("x")
    # Detaching frees the address and the interface name.
    first = next(o for o in sim._objects.values() if o.name == "n0")
    await sim.delete(Ref(NETWORKINTERFACE, first.backend_id))
    again = await nic("y")
    assert (again.address, again.interface) == ("192.168.7.2", "eth0")


async def test_interface_names_and_macs(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    net = await sim.create(NetworkSpec(name="lan"))
    spec = NetworkInterfaceSpec(name="i", compute_id=vm.backend_id, network_id=net.backend_id)
    named = await sim.create(dataclasses.replace(spec, interface="ens3", mac="02-53-49-00-00-01"))
    assert (_facts(named).interface, _facts(named).mac) == ("ens3", "02:53:49:00:00:01")
    with pytest.raises(BackendError, match="already has an interface ens3"):
        await sim.create(dataclasses.replace(spec, interface="ens3"))
    with pytest.raises(BackendError, match="already in use"):
        await sim.create(dataclasses.replace(spec, mac="02:53:49:00:00:01"))
    with pytest.raises(BackendError, match="not a MAC"):
        await sim.create(dataclasses.replace(spec, mac="zz"))


async def test_proposals_follow_the_cloud(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    vol = await sim.create(StorageSpec(name="v", size_gib=1))
    net = await sim.create(NetworkSpec(name="lan"))
    link_spec = StorageLinkSpec(name="l", compute_id=vm.backend_id, storage_id=vol.backend_id)
    assert sim.propose(link_spec, []) == StorageLinkFacts(device="/dev/xvdb")
    # What the cloud already has on the compute counts even if the service does not pass it.
    await sim.create(link_spec)
    assert sim.propose(link_spec, []) == StorageLinkFacts(device="/dev/xvdc")
    assert sim.propose(link_spec, [StorageLinkFacts(device="/dev/xvdc")]) == StorageLinkFacts(
        device="/dev/xvdd"
    )
    nic_spec = NetworkInterfaceSpec(name="i", compute_id=vm.backend_id, network_id=net.backend_id)
    proposal = sim.propose(nic_spec, [])
    assert isinstance(proposal, NetworkInterfaceFacts)
    assert proposal.interface == "eth0" and str(proposal.mac).startswith(MAC_PREFIX)
    assert sim.propose(ComputeSpec(name="x"), []) is None


async def test_storagelink_devices(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    other = await _compute(sim, "other")
    vols = [await sim.create(StorageSpec(name=f"v{i}", size_gib=1)) for i in range(3)]

    async def link(name: str, compute: Observed, volume: Observed, **kw: Any) -> Observed:
        return await sim.create(
            StorageLinkSpec(name=name, compute_id=compute.backend_id, storage_id=volume.backend_id, **kw)
        )

    links = [await link(f"l{i}", vm, vols[i]) for i in range(2)]
    # The simulated cloud's own names (Xen-style), not libvirt's /dev/vdX.
    assert [_facts(x).device for x in links] == ["/dev/xvdb", "/dev/xvdc"]
    with pytest.raises(BackendError, match="already attached"):
        await link("x", other, vols[0])
    with pytest.raises(BackendError, match="already has a device"):
        await link("y", vm, vols[2], device="/dev/xvdc")
    mounted = await link("z", vm, vols[2], mountpoint="/srv")
    assert mounted.facts == StorageLinkFacts(device="/dev/xvdd", mountpoint="/srv")


async def test_delete_cascades_to_links(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    net = await sim.create(NetworkSpec(name="n"))
    vol = await sim.create(StorageSpec(name="v", size_gib=1))
    nic = await sim.create(
        NetworkInterfaceSpec(name="i", compute_id=vm.backend_id, network_id=net.backend_id)
    )
    att = await sim.create(StorageLinkSpec(name="a", compute_id=vm.backend_id, storage_id=vol.backend_id))
    await sim.delete(_ref(NETWORK, net))
    assert await sim.observe(_ref(NETWORKINTERFACE, nic)) is None
    await sim.delete(_ref(COMPUTE, vm))
    assert await sim.observe(_ref(STORAGELINK, att)) is None
    # The volume is free again.
    vm2 = await _compute(sim)
    await sim.create(StorageLinkSpec(name="b", compute_id=vm2.backend_id, storage_id=vol.backend_id))


async def test_observe_checks_the_type(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    assert await sim.observe(Ref(STORAGE, vm.backend_id)) is None
    with pytest.raises(BackendError):
        await sim.act(Ref(NETWORK, vm.backend_id), Up())


# ---------------------------------------------------------------- inventory


async def test_inventory_lists_entity_ids(sim: SimulatedDriver) -> None:
    vm = await _compute(sim, entity_id="urn:uuid:00000000-0000-0000-0000-000000000001")
    await _compute(sim, "untagged")
    vol = await sim.create(StorageSpec(name="v", size_gib=1, entity_id="/storage/v"))
    found = await sim.inventory()
    assert {(t.ref, t.entity_id) for t in found} == {
        (_ref(COMPUTE, vm), "urn:uuid:00000000-0000-0000-0000-000000000001"),
        (_ref(STORAGE, vol), "/storage/v"),
    }


# ---------------------------------------------------------------- delays and concurrency


async def test_create_takes_delay() -> None:
    drv = SimulatedDriver(delay=0.05, seed=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    vm = await _compute(drv)
    assert loop.time() - started >= 0.045
    task = asyncio.create_task(drv.act(_ref(COMPUTE, vm), Stop()))
    await asyncio.sleep(0.01)
    during = await drv.observe(_ref(COMPUTE, vm))
    assert during is not None and during.state == "active" and during.message == "stop in progress"
    assert (await task).state == "inactive"
    after = await drv.observe(_ref(COMPUTE, vm))
    assert after is not None and after.message is None


async def test_concurrent_creates_do_not_share_allocations() -> None:
    drv = SimulatedDriver(delay=0.01, seed=1)
    vm = await _compute(drv)
    net = await drv.create(NetworkSpec(name="n"))
    vols = await asyncio.gather(*(drv.create(StorageSpec(name=f"v{i}", size_gib=1)) for i in range(4)))
    nics, links = await asyncio.gather(
        asyncio.gather(
            *(
                drv.create(
                    NetworkInterfaceSpec(name=f"i{i}", compute_id=vm.backend_id, network_id=net.backend_id)
                )
                for i in range(4)
            )
        ),
        asyncio.gather(
            *(
                drv.create(StorageLinkSpec(name=f"l{i}", compute_id=vm.backend_id, storage_id=v.backend_id))
                for i, v in enumerate(vols)
            )
        ),
    )
    for key, objs in [("address", nics), ("mac", nics), ("interface", nics), ("device", links)]:
        assert len({getattr(o.facts, key) for o in objs}) == 4, key
    nets = await asyncio.gather(*(drv.create(NetworkSpec(name=f"n{i}")) for i in range(3)))
    ranges = [ipaddress.ip_network(str(_facts(n).address)) for n in nets]
    assert len(set(ranges)) == 3


async def test_actions_on_one_object_run_in_order() -> None:
    drv = SimulatedDriver(delay=0.01, seed=1)
    vm = await _compute(drv)
    stop = asyncio.create_task(drv.act(_ref(COMPUTE, vm), Stop()))
    await asyncio.sleep(0)
    start = asyncio.create_task(drv.act(_ref(COMPUTE, vm), Start()))
    assert (await stop).state == "inactive"
    assert (await start).state == "active"


async def test_delete_during_action_fails_the_action() -> None:
    drv = SimulatedDriver(delay=0.02, seed=1)
    vm = await _compute(drv)
    stop = asyncio.create_task(drv.act(_ref(COMPUTE, vm), Stop()))
    await asyncio.sleep(0)
    delete = asyncio.create_task(drv.delete(_ref(COMPUTE, vm)))
    await stop
    await delete
    with pytest.raises(BackendError):
        await drv.act(_ref(COMPUTE, vm), Start())


async def test_link_create_fails_when_compute_goes_away() -> None:
    drv = SimulatedDriver(delay=0.02, seed=1)
    vm = await _compute(drv)
    vols = [await drv.create(StorageSpec(name=f"v{i}", size_gib=1)) for i in range(2)]
    attach = asyncio.create_task(
        drv.create(StorageLinkSpec(name="a", compute_id=vm.backend_id, storage_id=vols[0].backend_id))
    )
    await asyncio.sleep(0.01)
    delete = asyncio.create_task(drv.delete(_ref(COMPUTE, vm)))
    await asyncio.sleep(0)
    with pytest.raises(BackendError, match="being deleted"):
        await drv.create(StorageLinkSpec(name="b", compute_id=vm.backend_id, storage_id=vols[1].backend_id))
    link = await attach  # it finished before the compute went
    await delete
    assert await drv.observe(_ref(STORAGELINK, link)) is None


async def test_compute_deleted_during_attach() -> None:
    drv = SimulatedDriver(delay=0.04, seed=1)
    vm = await _compute(drv)
    vol = await drv.create(StorageSpec(name="v", size_gib=1))
    attach = asyncio.create_task(
        drv.create(StorageLinkSpec(name="a", compute_id=vm.backend_id, storage_id=vol.backend_id))
    )
    await asyncio.sleep(0)
    drv.delay = 0.005  # the deletion overtakes the slow attach
    await drv.delete(_ref(COMPUTE, vm))
    with pytest.raises(BackendError, match="was deleted while storagelink 'a' was being attached"):
        await attach
    assert [o for o in drv._objects.values() if o.resource == STORAGELINK] == []


# ---------------------------------------------------------------- failures and external changes


@pytest.mark.parametrize(
    "spec",
    [
        ComputeSpec(name="vm-simulate-failure"),
        StorageSpec(name="simulate-failure", size_gib=1),
        NetworkSpec(name="net-simulate-failure-1"),
    ],
)
async def test_failing_create(sim: SimulatedDriver, spec: object) -> None:
    with pytest.raises(BackendError, match="simulated failure"):
        await sim.create(spec)
    assert sim._objects == {}  # nothing half-created is left behind


async def test_fail_option() -> None:
    drv = SimulatedDriver(delay=0, fail="boom")
    await _compute(drv, "simulate-failure")  # the default substring no longer fails
    with pytest.raises(BackendError, match="boom"):
        await _compute(drv, "kaboom")
    never = SimulatedDriver(delay=0, fail="")
    await _compute(never, "anything")


async def test_fail_next(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    ref = _ref(COMPUTE, vm)
    sim.fail_next(vm.backend_id, "hypervisor lost the disk")
    with pytest.raises(BackendError, match="hypervisor lost the disk"):
        await sim.act(ref, Stop())
    observed = await sim.observe(ref)
    assert observed is not None
    assert (observed.state, observed.message) == ("error", "hypervisor lost the disk")
    # Only the next call fails; a start recovers the machine.
    recovered = await sim.act(ref, Start())
    assert recovered.state == "active" and recovered.message is None
    vol = await sim.create(StorageSpec(name="v", size_gib=1))
    sim.fail_next(vol.backend_id, "quota exceeded")
    with pytest.raises(BackendError, match="quota exceeded"):
        await sim.update(_ref(STORAGE, vol), StorageUpdate(size_gib=2))
    sim.fail_next(vm.backend_id, "no space for the image")
    with pytest.raises(BackendError, match="no space"):
        await sim.save(ref, Save())


async def test_external_changes(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    net = await sim.create(NetworkSpec(name="n"))
    nic = await sim.create(
        NetworkInterfaceSpec(name="i", compute_id=vm.backend_id, network_id=net.backend_id)
    )
    stream = sim.changes()
    await sim.simulate_external(_ref(COMPUTE, vm), "inactive")
    change = await asyncio.wait_for(anext(stream), 1)
    assert change.ref == _ref(COMPUTE, vm) and change.observed is not None
    assert change.observed.state == "inactive"
    assert _facts(change.observed) == vm.facts
    assert (await sim.observe(_ref(COMPUTE, vm))).state == "inactive"  # type: ignore[union-attr]

    await sim.simulate_external(_ref(COMPUTE, vm), None)
    gone = [await asyncio.wait_for(anext(stream), 1) for _ in range(2)]
    assert gone == [Change(_ref(NETWORKINTERFACE, nic), None), Change(_ref(COMPUTE, vm), None)]
    assert await sim.observe(_ref(COMPUTE, vm)) is None

    with pytest.raises(ValueError, match="no compute"):
        await sim.simulate_external(_ref(COMPUTE, vm), "active")
    with pytest.raises(ValueError, match="not a network state"):
        await sim.simulate_external(_ref(NETWORK, net), "online")


async def test_close_ends_the_change_stream() -> None:
    drv = SimulatedDriver(delay=0)
    stream = drv.changes()
    await drv.close()
    assert [c async for c in stream] == []


# ---------------------------------------------------------------- adoption after a restart


async def test_adopt_restores_state_and_allocations() -> None:
    before = SimulatedDriver(delay=0, seed=1)
    vm = await _compute(before)
    net = await before.create(NetworkSpec(name="n", address="172.16.0.0/29"))
    vol = await before.create(StorageSpec(name="v", size_gib=1))
    nic = await before.create(
        NetworkInterfaceSpec(name="i", compute_id=vm.backend_id, network_id=net.backend_id)
    )
    att = await before.create(StorageLinkSpec(name="a", compute_id=vm.backend_id, storage_id=vol.backend_id))
    stopped = await before.act(_ref(COMPUTE, vm), Stop())
    pool = await before.create(NetworkSpec(name="p"))

    after = SimulatedDriver(delay=0, seed=1)  # same seed: it would hand out the same ids again
    for resource, observed in [
        (COMPUTE, stopped),
        (NETWORK, net),
        (NETWORK, pool),
        (STORAGE, vol),
        (NETWORKINTERFACE, nic),
        (STORAGELINK, att),
    ]:
        await after.adopt(_ref(resource, observed), observed)
    assert (await after.observe(_ref(COMPUTE, vm))) == stopped
    assert (await after.observe(_ref(NETWORKINTERFACE, nic))) == nic

    vm2 = await _compute(after)
    assert vm2.backend_id != vm.backend_id
    nic2 = await after.create(
        NetworkInterfaceSpec(name="j", compute_id=vm.backend_id, network_id=net.backend_id)
    )
    assert _facts(nic2).address != _facts(nic).address
    assert _facts(nic2).interface == "eth1"
    assert _facts(nic2).mac != _facts(nic).mac
    with pytest.raises(BackendError, match="already attached"):
        await after.create(StorageLinkSpec(name="b", compute_id=vm2.backend_id, storage_id=vol.backend_id))
    fresh = await after.create(NetworkSpec(name="q"))
    assert _facts(fresh).address != _facts(pool).address
    snapshot = await after.save(_ref(COMPUTE, vm), Save(method="hot"))
    assert snapshot.name == "vm-snapshot-1"  # named after the adopted compute's hostname
    # Deleting an adopted compute takes its adopted links with it.
    await after.delete(_ref(COMPUTE, vm))
    assert await after.observe(_ref(STORAGELINK, att)) is None


async def test_adopt_without_facts() -> None:
    drv = SimulatedDriver(delay=0, seed=1)
    await drv.adopt(Ref(COMPUTE, "vm-0000abcd"), Observed("vm-0000abcd", "weird"))
    observed = await drv.observe(Ref(COMPUTE, "vm-0000abcd"))
    assert observed is not None and observed.state == "error" and observed.facts == ComputeFacts()


# ---------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["delay", "fail", "seed", "other", ""]), st.text(max_size=8)))
def test_from_options_gives_a_driver_or_value_error(options: dict[str, str]) -> None:
    try:
        drv = SimulatedDriver.from_options(options, Path("/nonexistent"))
    except ValueError as error:
        assert str(error)
    else:
        assert drv.delay >= 0


_PICK = st.integers(min_value=0, max_value=50)
_ACTIONS: list[Action] = [
    Start(),
    Stop(),
    Stop(method="poweroff"),
    Stop(method="bogus"),
    Restart(method="cold"),
    Suspend(method="hibernate"),
    Save(method="hot"),
    Save(method="bogus"),
    Up(),
    Down(),
    Online(),
    Offline(),
]
_OPERATION = st.one_of(
    st.tuples(
        st.just("compute"),
        st.sampled_from([None, "debian-12", "rocky-9", "no-such-image"]),
        st.sampled_from([None, "tiny", "xlarge", "medium"]),
        st.sampled_from(["vm", "vm-simulate-failure"]),
    ),
    st.tuples(st.just("storage"), st.sampled_from([1, 2.5, 0, -1])),
    st.tuples(st.just("network"), st.sampled_from([None, None, "10.10.0.0/24", "192.168.9.0/30", "bogus"])),
    *[
        st.tuples(
            st.just("nic"),
            _PICK,
            _PICK,
            st.sampled_from([None, None, "192.168.9.2", "10.10.0.7/24", "x"]),
            st.sampled_from([None, None, "02:53:49:00:00:01", "zz"]),
            st.sampled_from([None, None, "eth0", "ens3"]),
        )
    ]
    * 3,
    *[st.tuples(st.just("link"), _PICK, _PICK, st.sampled_from([None, None, "/dev/xvdb", "/dev/vdb"]))] * 2,
    st.tuples(st.just("propose_link"), _PICK, _PICK),
    st.tuples(st.just("delete"), _PICK),
    st.tuples(st.just("act"), _PICK, st.sampled_from(_ACTIONS)),
    st.tuples(
        st.just("update"),
        _PICK,
        st.sampled_from(
            [
                StorageUpdate(size_gib=3),
                StorageUpdate(size_gib=0.5),
                StorageUpdate(),
                ComputeUpdate(cores=4),
                ComputeUpdate(memory_gib=-1),
                ComputeUpdate(image="alpine-3.20"),
                ComputeUpdate(image="nope"),
                ComputeUpdate(flavour="tiny"),
                ComputeUpdate(architecture="sparc"),
            ]
        ),
    ),
    st.tuples(st.just("external"), _PICK, st.sampled_from([None, "active", "inactive", "online", "error"])),
    st.tuples(st.just("fail_next"), _PICK),
)


def _check_invariants(drv: SimulatedDriver) -> None:
    objects = drv._objects
    seen: dict[str, set[object]] = {
        "mac": set(),
        "interface": set(),
        "address": set(),
        "device": set(),
        "volume": set(),
    }

    def claim(kind: str, key: object) -> None:
        assert key not in seen[kind], f"{kind} {key} handed out twice"
        seen[kind].add(key)

    types = {
        COMPUTE: ComputeFacts,
        STORAGE: StorageFacts,
        NETWORK: NetworkFacts,
        STORAGELINK: StorageLinkFacts,
        NETWORKINTERFACE: NetworkInterfaceFacts,
    }
    for obj in objects.values():
        assert obj.state in {"active", "inactive", "suspended", "error", "online", "offline"}
        assert isinstance(obj.facts, types[obj.resource])
        if obj.resource in (STORAGELINK, NETWORKINTERFACE):
            target = STORAGE if obj.resource == STORAGELINK else NETWORK
            assert obj.compute_id in objects and objects[obj.compute_id].resource == COMPUTE
            assert obj.target_id in objects and objects[obj.target_id].resource == target
        if isinstance(obj.facts, NetworkInterfaceFacts):
            claim("mac", obj.facts.mac)
            claim("interface", (obj.compute_id, obj.facts.interface))
            if obj.facts.address is not None:
                claim("address", (obj.target_id, ipaddress.ip_interface(obj.facts.address).ip))
        if isinstance(obj.facts, StorageLinkFacts):
            claim("device", (obj.compute_id, obj.facts.device))
            claim("volume", obj.target_id)
    # The driver's indexes (the objects of each type, the links on each object) say what
    # `_objects` says: deletes and attachments read them instead of walking every object.
    assert {key: obj for of_type in drv._by_resource.values() for key, obj in of_type.items()} == objects
    assert all(obj.resource == resource for resource, of_type in drv._by_resource.items() for obj in of_type.values())
    hanging: dict[str, list[str]] = {}
    for obj in objects.values():
        for end in (obj.compute_id, obj.target_id):
            if end is not None:
                hanging.setdefault(end, []).append(obj.backend_id)
    assert {end: list(links) for end, links in drv._hanging.items()} == hanging
    macs: dict[str, int] = {}
    for obj in objects.values():
        if isinstance(obj.facts, NetworkInterfaceFacts) and obj.facts.mac:
            macs[obj.facts.mac.lower()] = macs.get(obj.facts.mac.lower(), 0) + 1
    assert drv._macs == macs


async def _run(operations: list[tuple[Any, ...]]) -> None:
    drv = SimulatedDriver(delay=0, seed=0)
    made: list[Ref] = []
    # Something to attach to from the start, so that short sequences reach the allocators.
    setup: list[object] = [
        ComputeSpec(name="a"),
        ComputeSpec(name="b"),
        NetworkSpec(name="n"),
        NetworkSpec(name="small", address="192.168.9.0/29"),
        StorageSpec(name="v", size_gib=1),
        StorageSpec(name="w", size_gib=1),
    ]
    for spec in setup:
        observed = await drv.create(spec)
        made.append(Ref(resource_of(spec), observed.backend_id))

    def pick(index: int, *types: str) -> Ref:
        pool = [m for m in made if not types or m.resource in types] or [
            Ref(types[0] if types else COMPUTE, "vm-missing")
        ]
        return pool[index % len(pool)]

    async def create(spec: object) -> None:
        observed = await drv.create(spec)
        made.append(Ref(resource_of(spec), observed.backend_id))

    for op in operations:
        kind, *args = op
        try:
            if kind == "compute":
                await create(ComputeSpec(name=str(args[2]), image=args[0], flavour=args[1]))
            elif kind == "storage":
                await create(StorageSpec(name="v", size_gib=args[0]))
            elif kind == "network":
                await create(NetworkSpec(name="n", address=args[0]))
            elif kind == "nic":
                spec = NetworkInterfaceSpec(
                    name="i",
                    compute_id=pick(args[0], COMPUTE).backend_id,
                    network_id=pick(args[1], NETWORK).backend_id,
                    address=args[2],
                    mac=args[3],
                    interface=args[4],
                )
                await create(spec)
            elif kind == "link":
                await create(
                    StorageLinkSpec(
                        name="l",
                        compute_id=pick(args[0], COMPUTE).backend_id,
                        storage_id=pick(args[1], STORAGE).backend_id,
                        device=args[2],
                    )
                )
            elif kind == "propose_link":
                # What the service does: propose, then create with the proposal.
                spec = StorageLinkSpec(
                    name="p",
                    compute_id=pick(args[0], COMPUTE).backend_id,
                    storage_id=pick(args[1], STORAGE).backend_id,
                )
                proposal = drv.propose(spec, [])
                assert isinstance(proposal, StorageLinkFacts)
                await create(dataclasses.replace(spec, device=proposal.device))
            elif kind == "delete":
                await drv.delete(pick(args[0]))
            elif kind == "act":
                await drv.act(pick(args[0]), args[1])
            elif kind == "update":
                await drv.update(pick(args[0]), args[1])
            elif kind == "external":
                ref = pick(args[0])
                if await drv.observe(ref) is not None:
                    try:
                        await drv.simulate_external(ref, args[1])
                    except ValueError:
                        assert args[1] is not None  # a state outside the type's vocabulary
            elif kind == "fail_next":
                drv.fail_next(pick(args[0]).backend_id, "injected")
        except OcciError as error:
            # Refusals are fine, and only the three kinds the contract names; anything else fails.
            assert isinstance(error, (BackendError, NotSupported)), repr(error)
        _check_invariants(drv)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_OPERATION, min_size=10, max_size=40))
def test_any_sequence_of_calls_keeps_the_cloud_consistent(operations: list[tuple[Any, ...]]) -> None:
    # The driver "may assume valid input, but must never crash": only BackendError/NotSupported,
    # and no address, MAC, interface name, device or volume is ever handed out twice.
    asyncio.run(_run(operations))

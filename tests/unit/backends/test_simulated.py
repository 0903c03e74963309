"""The simulated cloud: the driver contract suite, then what only the simulated cloud does."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from occipy.backends import load_driver_class
from occipy.backends.base import (
    SPEC_TYPES,
    Capability,
    Change,
    ComputeSpec,
    Driver,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    ResourceType,
    Spec,
    StorageLinkSpec,
    StorageSpec,
)
from occipy.backends.simulated import SimulatedDriver
from occipy.errors import BackendError, InvalidAttribute, OcciError

from .contract import DriverContract

COMPUTE = ResourceType.COMPUTE
STORAGE = ResourceType.STORAGE
NETWORK = ResourceType.NETWORK
STORAGELINK = ResourceType.STORAGELINK
NETWORKINTERFACE = ResourceType.NETWORKINTERFACE


class TestSimulatedContract(DriverContract):
    @pytest.fixture
    async def driver(self) -> AsyncIterator[SimulatedDriver]:
        drv = SimulatedDriver(delay=0, seed=7)
        await drv.open()
        yield drv
        await drv.close()


class TestSimulatedContractWithDelay(DriverContract):
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


async def _compute(sim: SimulatedDriver, name: str = "vm", **kw: object) -> Observed:
    return await sim.create(ComputeSpec(name=name, **kw))  # type: ignore[arg-type]


# ---------------------------------------------------------------- construction


def test_registered_under_simulated() -> None:
    assert load_driver_class("simulated") is SimulatedDriver
    driver: Driver = SimulatedDriver()  # mypy checks that the class satisfies the protocol
    assert driver.name == "simulated"


def test_from_options_defaults(tmp_path: Path) -> None:
    drv = SimulatedDriver.from_options({}, tmp_path)
    assert drv.delay == 1.0
    assert drv.fail == "simulate-failure"
    assert drv.capabilities == frozenset(Capability)
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
        return [vm.backend_id, net.backend_id, nic.backend_id, dict(nic.attributes)]

    assert await run(5) == await run(5)
    assert await run(5) != await run(6)


# ---------------------------------------------------------------- templates and computes


@pytest.mark.spec("INF-44")
def test_templates_offered(sim: SimulatedDriver) -> None:
    images = [t for t in sim.templates() if t.family == "os_tpl"]
    flavours = [t for t in sim.templates() if t.family == "resource_tpl"]
    assert len(images) >= 4 and len(flavours) >= 3
    assert any("Debian" in t.title for t in images)
    for flavour in flavours:
        assert {"occi.compute.cores", "occi.compute.memory"} <= set(flavour.defaults)
    # CRTP small/medium/large come from the registry: no clash with them.
    assert not {t.term for t in flavours} & {
        "small",
        "medium",
        "large",
        "mem_small",
        "mem_medium",
        "mem_large",
    }


async def test_compute_attributes(sim: SimulatedDriver) -> None:
    vm = await _compute(sim, "web", cores=2, memory_gib=4)
    assert vm.attributes["occi.compute.hostname"] == "web"
    assert vm.attributes["occi.compute.cores"] == 2
    assert vm.attributes["occi.compute.memory"] == 4.0
    assert vm.attributes["occi.compute.architecture"] == "x64"
    named = await _compute(sim, "db", hostname="db.example.org")
    assert named.attributes["occi.compute.hostname"] == "db.example.org"


@pytest.mark.spec("INF-43")
async def test_flavour_overrides_sizes(sim: SimulatedDriver) -> None:
    # GFD.224 §3.5.2: the resource template overrides size attributes of the resource.
    vm = await _compute(sim, cores=1, memory_gib=1, resource_template="xlarge")
    assert vm.attributes["occi.compute.cores"] == 8
    assert vm.attributes["occi.compute.memory"] == 32.0


async def test_crtp_template_keeps_service_sizes(sim: SimulatedDriver) -> None:
    vm = await _compute(sim, cores=2, memory_gib=4, resource_template="medium")
    assert vm.attributes["occi.compute.cores"] == 2


@pytest.mark.spec("INF-40")
@pytest.mark.spec("INF-48")
async def test_resize_and_reimage(sim: SimulatedDriver) -> None:
    vm = await _compute(sim, os_template="debian-12")
    resized = await sim.update(COMPUTE, vm.backend_id, {"resource_tpl": "xxlarge"})
    assert resized.attributes["occi.compute.cores"] == 16
    reimaged = await sim.update(COMPUTE, vm.backend_id, {"os_tpl": "rocky-9"})
    assert reimaged.state == "active"
    with pytest.raises(BackendError, match="no image"):
        await sim.update(COMPUTE, vm.backend_id, {"os_template": "windows-95"})
    with pytest.raises(InvalidAttribute):
        await sim.update(COMPUTE, vm.backend_id, {"occi.compute.cores": 0})
    ignored = await sim.update(COMPUTE, vm.backend_id, {"occi.core.title": "renamed"})
    assert "occi.core.title" not in ignored.attributes


@pytest.mark.parametrize(
    ("action", "method"),
    [
        ("stop", "reboot"),
        ("restart", "poweroff"),
        ("suspend", "graceful"),
        ("stop", 3),
    ],
)
async def test_bad_method_is_invalid_attribute(sim: SimulatedDriver, action: str, method: object) -> None:
    vm = await _compute(sim)
    with pytest.raises(InvalidAttribute, match="method"):
        await sim.act(COMPUTE, vm.backend_id, action, {"method": method})  # type: ignore[dict-item]
    observed = await sim.observe(COMPUTE, vm.backend_id)
    assert observed is not None and observed.state == "active"


@pytest.mark.spec("INF-09")
@pytest.mark.spec("INF-34")
async def test_save_names(sim: SimulatedDriver) -> None:
    vm = await _compute(sim, "web")
    first = await sim.save(vm.backend_id, None, "hot")
    second = await sim.save(vm.backend_id, None, "deferred")
    assert (first.term, second.term) == ("web-snapshot-1", "web-snapshot-2")
    named = await sim.save(vm.backend_id, "golden image!", "hot")
    assert named.term == "golden-image"
    again = await sim.save(vm.backend_id, "golden image!", "hot")
    assert again.term == "golden-image-2"
    assert "Debian" in named.title


async def test_save_as_action(sim: SimulatedDriver) -> None:
    vm = await _compute(sim, "web")
    observed = await sim.act(COMPUTE, vm.backend_id, "save", {"method": "hot", "name": "snap"})
    assert observed.state == "active"
    assert "snap" in {t.term for t in sim.templates()}


async def test_unknown_action_is_not_a_backend_error(sim: SimulatedDriver) -> None:
    from occipy.errors import NotSupported

    vm = await _compute(sim)
    with pytest.raises(NotSupported):
        await sim.act(COMPUTE, vm.backend_id, "up", {})


# ---------------------------------------------------------------- storage, networks, links


async def test_storage_grow_only(sim: SimulatedDriver) -> None:
    vol = await sim.create(StorageSpec(name="data", size_gib=10))
    assert vol.attributes["occi.storage.size"] == 10.0
    grown = await sim.update(STORAGE, vol.backend_id, {"occi.storage.size": 20})
    assert grown.attributes["occi.storage.size"] == 20.0
    with pytest.raises(BackendError, match="cannot shrink from 20 GiB to 5 GiB"):
        await sim.update(STORAGE, vol.backend_id, {"occi.storage.size": 5})
    observed = await sim.observe(STORAGE, vol.backend_id)
    assert observed is not None and observed.attributes["occi.storage.size"] == 20.0


async def test_network_pool(sim: SimulatedDriver) -> None:
    first = await sim.create(NetworkSpec(name="a"))
    assert first.attributes == {
        "occi.network.address": "10.10.0.0/24",
        "occi.network.gateway": "10.10.0.1",
        "occi.network.allocation": "dynamic",
    }
    # A client range that covers the next pool entry pushes the pool past it.
    await sim.create(
        NetworkSpec(name="b", address="10.10.1.0/24", gateway="10.10.1.254", allocation="static")
    )
    third = await sim.create(NetworkSpec(name="c"))
    assert third.attributes["occi.network.address"] == "10.10.2.0/24"
    with pytest.raises(BackendError, match="outside"):
        await sim.create(NetworkSpec(name="d", address="192.168.0.0/24", gateway="10.0.0.1"))
    with pytest.raises(InvalidAttribute):
        await sim.create(NetworkSpec(name="e", address="not-a-range"))


@pytest.mark.spec("INF-28")
async def test_interface_addresses(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    net = await sim.create(NetworkSpec(name="lan", address="192.168.7.0/29"))
    nics = [
        await sim.create(
            NetworkInterfaceSpec(name=f"n{i}", compute_id=vm.backend_id, network_id=net.backend_id)
        )
        for i in range(3)
    ]
    assert [n.attributes["occi.networkinterface.interface"] for n in nics] == ["eth0", "eth1", "eth2"]
    assert [n.attributes["occi.networkinterface.address"] for n in nics] == [
        "192.168.7.2",
        "192.168.7.3",
        "192.168.7.4",
    ]
    assert all(n.attributes["occi.networkinterface.gateway"] == "192.168.7.1" for n in nics)
    assert all(str(n.attributes["occi.networkinterface.mac"]).startswith("52:54:00:") for n in nics)
    given = await sim.create(
        NetworkInterfaceSpec(
            name="s",
            compute_id=vm.backend_id,
            network_id=net.backend_id,
            address="192.168.7.6/29",
            allocation="static",
        )
    )
    assert given.attributes["occi.networkinterface.address"] == "192.168.7.6/29"
    assert given.attributes["occi.networkinterface.allocation"] == "static"
    with pytest.raises(BackendError, match="already in use"):
        await sim.create(
            NetworkInterfaceSpec(
                name="t", compute_id=vm.backend_id, network_id=net.backend_id, address="192.168.7.6"
            )
        )
    with pytest.raises(BackendError, match="outside"):
        await sim.create(
            NetworkInterfaceSpec(
                name="u", compute_id=vm.backend_id, network_id=net.backend_id, address="10.0.0.9"
            )
        )
    static = await sim.create(
        NetworkInterfaceSpec(
            name="v", compute_id=vm.backend_id, network_id=net.backend_id, allocation="static"
        )
    )
    assert "occi.networkinterface.address" not in static.attributes
    await sim.create(NetworkInterfaceSpec(name="w", compute_id=vm.backend_id, network_id=net.backend_id))
    # /29: hosts .1-.6; .1 gateway, .2-.6 taken now.
    with pytest.raises(BackendError, match="no free address"):
        await sim.create(NetworkInterfaceSpec(name="x", compute_id=vm.backend_id, network_id=net.backend_id))
    # Detaching frees the address and the interface name.
    await sim.delete(NETWORKINTERFACE, nics[0].backend_id)
    again = await sim.create(
        NetworkInterfaceSpec(name="y", compute_id=vm.backend_id, network_id=net.backend_id)
    )
    assert again.attributes["occi.networkinterface.address"] == "192.168.7.2"
    assert again.attributes["occi.networkinterface.interface"] == "eth0"


async def test_storagelink_devices(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    other = await _compute(sim, "other")
    vols = [await sim.create(StorageSpec(name=f"v{i}", size_gib=1)) for i in range(3)]
    links = [
        await sim.create(
            StorageLinkSpec(name=f"l{i}", compute_id=vm.backend_id, storage_id=vols[i].backend_id)
        )
        for i in range(2)
    ]
    assert [link.attributes["occi.storagelink.deviceid"] for link in links] == ["/dev/vdb", "/dev/vdc"]
    with pytest.raises(BackendError, match="already attached"):
        await sim.create(
            StorageLinkSpec(name="x", compute_id=other.backend_id, storage_id=vols[0].backend_id)
        )
    with pytest.raises(BackendError, match="already has a device"):
        await sim.create(
            StorageLinkSpec(
                name="y", compute_id=vm.backend_id, storage_id=vols[2].backend_id, deviceid="/dev/vdc"
            )
        )
    mounted = await sim.create(
        StorageLinkSpec(name="z", compute_id=vm.backend_id, storage_id=vols[2].backend_id, mountpoint="/srv")
    )
    assert mounted.attributes == {
        "occi.storagelink.deviceid": "/dev/vdd",
        "occi.storagelink.mountpoint": "/srv",
    }


async def test_delete_cascades_to_links(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    net = await sim.create(NetworkSpec(name="n"))
    vol = await sim.create(StorageSpec(name="v", size_gib=1))
    nic = await sim.create(
        NetworkInterfaceSpec(name="i", compute_id=vm.backend_id, network_id=net.backend_id)
    )
    att = await sim.create(StorageLinkSpec(name="a", compute_id=vm.backend_id, storage_id=vol.backend_id))
    await sim.delete(NETWORK, net.backend_id)
    assert await sim.observe(NETWORKINTERFACE, nic.backend_id) is None
    await sim.delete(COMPUTE, vm.backend_id)
    assert await sim.observe(STORAGELINK, att.backend_id) is None
    # The volume is free again.
    vm2 = await _compute(sim)
    await sim.create(StorageLinkSpec(name="b", compute_id=vm2.backend_id, storage_id=vol.backend_id))


async def test_observe_checks_the_type(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    assert await sim.observe(STORAGE, vm.backend_id) is None


# ---------------------------------------------------------------- delays and concurrency


async def test_create_takes_delay() -> None:
    drv = SimulatedDriver(delay=0.05, seed=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    vm = await _compute(drv)
    assert loop.time() - started >= 0.045
    task = asyncio.create_task(drv.act(COMPUTE, vm.backend_id, "stop", {}))
    await asyncio.sleep(0.01)
    during = await drv.observe(COMPUTE, vm.backend_id)
    assert during is not None and during.state == "active" and during.message == "stop in progress"
    assert (await task).state == "inactive"
    after = await drv.observe(COMPUTE, vm.backend_id)
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
    for key, objs in [
        ("occi.networkinterface.address", nics),
        ("occi.networkinterface.mac", nics),
        ("occi.networkinterface.interface", nics),
        ("occi.storagelink.deviceid", links),
    ]:
        assert len({o.attributes[key] for o in objs}) == 4, key
    nets = await asyncio.gather(*(drv.create(NetworkSpec(name=f"n{i}")) for i in range(3)))
    ranges = [ipaddress.ip_network(str(n.attributes["occi.network.address"])) for n in nets]
    assert len(set(ranges)) == 3


async def test_actions_on_one_object_run_in_order() -> None:
    drv = SimulatedDriver(delay=0.01, seed=1)
    vm = await _compute(drv)
    stop = asyncio.create_task(drv.act(COMPUTE, vm.backend_id, "stop", {}))
    await asyncio.sleep(0)
    start = asyncio.create_task(drv.act(COMPUTE, vm.backend_id, "start", {}))
    assert (await stop).state == "inactive"
    assert (await start).state == "active"


async def test_delete_during_action_fails_the_action() -> None:
    drv = SimulatedDriver(delay=0.02, seed=1)
    vm = await _compute(drv)
    stop = asyncio.create_task(drv.act(COMPUTE, vm.backend_id, "stop", {}))
    await asyncio.sleep(0)
    delete = asyncio.create_task(drv.delete(COMPUTE, vm.backend_id))
    await stop
    await delete
    with pytest.raises(BackendError):
        await drv.act(COMPUTE, vm.backend_id, "start", {})


async def test_link_create_fails_when_compute_goes_away() -> None:
    drv = SimulatedDriver(delay=0.02, seed=1)
    vm = await _compute(drv)
    vols = [await drv.create(StorageSpec(name=f"v{i}", size_gib=1)) for i in range(2)]
    attach = asyncio.create_task(
        drv.create(StorageLinkSpec(name="a", compute_id=vm.backend_id, storage_id=vols[0].backend_id))
    )
    await asyncio.sleep(0.01)
    delete = asyncio.create_task(drv.delete(COMPUTE, vm.backend_id))
    await asyncio.sleep(0)
    with pytest.raises(BackendError, match="being deleted"):
        await drv.create(StorageLinkSpec(name="b", compute_id=vm.backend_id, storage_id=vols[1].backend_id))
    link = await attach  # it finished before the compute went
    await delete
    assert await drv.observe(STORAGELINK, link.backend_id) is None


async def test_compute_deleted_during_attach() -> None:
    drv = SimulatedDriver(delay=0.04, seed=1)
    vm = await _compute(drv)
    vol = await drv.create(StorageSpec(name="v", size_gib=1))
    attach = asyncio.create_task(
        drv.create(StorageLinkSpec(name="a", compute_id=vm.backend_id, storage_id=vol.backend_id))
    )
    await asyncio.sleep(0)
    drv.delay = 0.005  # the deletion overtakes the slow attach
    await drv.delete(COMPUTE, vm.backend_id)
    with pytest.raises(BackendError, match="was deleted while storagelink 'a' was being attached"):
        await attach
    assert [o for o in drv._objects.values() if o.resource is STORAGELINK] == []


# ---------------------------------------------------------------- failures and external changes


@pytest.mark.parametrize(
    "spec",
    [
        ComputeSpec(name="vm-simulate-failure"),
        StorageSpec(name="simulate-failure", size_gib=1),
        NetworkSpec(name="net-simulate-failure-1"),
    ],
)
async def test_failing_create(sim: SimulatedDriver, spec: ComputeSpec | StorageSpec | NetworkSpec) -> None:
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
    sim.fail_next(vm.backend_id, "hypervisor lost the disk")
    with pytest.raises(BackendError, match="hypervisor lost the disk"):
        await sim.act(COMPUTE, vm.backend_id, "stop", {})
    observed = await sim.observe(COMPUTE, vm.backend_id)
    assert observed is not None
    assert (observed.state, observed.message) == ("error", "hypervisor lost the disk")
    # Only the next call fails; a start recovers the machine.
    recovered = await sim.act(COMPUTE, vm.backend_id, "start", {})
    assert recovered.state == "active" and recovered.message is None
    vol = await sim.create(StorageSpec(name="v", size_gib=1))
    sim.fail_next(vol.backend_id, "quota exceeded")
    with pytest.raises(BackendError, match="quota exceeded"):
        await sim.update(STORAGE, vol.backend_id, {"occi.storage.size": 2})


async def test_external_changes(sim: SimulatedDriver) -> None:
    vm = await _compute(sim)
    net = await sim.create(NetworkSpec(name="n"))
    nic = await sim.create(
        NetworkInterfaceSpec(name="i", compute_id=vm.backend_id, network_id=net.backend_id)
    )
    stream = sim.changes()
    await sim.simulate_external(COMPUTE, vm.backend_id, "inactive")
    change = await asyncio.wait_for(anext(stream), 1)
    assert change.resource is COMPUTE and change.observed is not None
    assert change.observed.state == "inactive"
    assert (await sim.observe(COMPUTE, vm.backend_id)).state == "inactive"  # type: ignore[union-attr]

    await sim.simulate_external(COMPUTE, vm.backend_id, None)
    gone = [await asyncio.wait_for(anext(stream), 1) for _ in range(2)]
    assert gone == [Change(NETWORKINTERFACE, nic.backend_id, None), Change(COMPUTE, vm.backend_id, None)]
    assert await sim.observe(COMPUTE, vm.backend_id) is None

    with pytest.raises(ValueError, match="no compute"):
        await sim.simulate_external(COMPUTE, vm.backend_id, "active")
    with pytest.raises(ValueError, match="not a network state"):
        await sim.simulate_external(NETWORK, net.backend_id, "online")


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
    stopped = await before.act(COMPUTE, vm.backend_id, "stop", {})
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
        await after.adopt(resource, observed.backend_id, observed)
    assert (await after.observe(COMPUTE, vm.backend_id)) == stopped
    assert (await after.observe(NETWORKINTERFACE, nic.backend_id)) == nic

    vm2 = await _compute(after)
    assert vm2.backend_id != vm.backend_id
    nic2 = await after.create(
        NetworkInterfaceSpec(name="j", compute_id=vm.backend_id, network_id=net.backend_id)
    )
    assert nic2.attributes["occi.networkinterface.address"] != nic.attributes["occi.networkinterface.address"]
    assert nic2.attributes["occi.networkinterface.interface"] == "eth1"
    assert nic2.attributes["occi.networkinterface.mac"] != nic.attributes["occi.networkinterface.mac"]
    with pytest.raises(BackendError, match="already attached"):
        await after.create(StorageLinkSpec(name="b", compute_id=vm2.backend_id, storage_id=vol.backend_id))
    fresh = await after.create(NetworkSpec(name="q"))
    assert fresh.attributes["occi.network.address"] != pool.attributes["occi.network.address"]
    snapshot = await after.save(vm.backend_id, None, "hot")
    assert snapshot.term == "vm-snapshot-1"  # named after the adopted compute's hostname
    # Deleting an adopted compute takes its adopted links with it.
    await after.delete(COMPUTE, vm.backend_id)
    assert await after.observe(STORAGELINK, att.backend_id) is None


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
            st.sampled_from([None, None, "52:54:00:00:00:01", "zz"]),
        )
    ]
    * 3,
    *[st.tuples(st.just("link"), _PICK, _PICK, st.sampled_from([None, None, "/dev/vdb"]))] * 2,
    st.tuples(st.just("delete"), _PICK),
    st.tuples(
        st.just("act"),
        _PICK,
        st.sampled_from(["start", "stop", "restart", "suspend", "save", "up", "down", "online", "offline"]),
        st.sampled_from([None, "graceful", "poweroff", "cold", "hibernate", "hot", "bogus", 7]),
    ),
    st.tuples(
        st.just("update"),
        _PICK,
        st.sampled_from(
            [
                {"occi.storage.size": 3},
                {"occi.storage.size": 0.5},
                {"occi.compute.cores": 4},
                {"occi.compute.memory": "lots"},
                {"os_tpl": "alpine-3.20"},
                {"os_template": "nope"},
                {"resource_tpl": "tiny"},
                {"occi.network.address": "10.99.0.0/24"},
                {"occi.storagelink.mountpoint": "/mnt"},
                {},
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

    for obj in objects.values():
        assert obj.state in {"active", "inactive", "suspended", "error", "online", "offline"}
        if obj.resource in (STORAGELINK, NETWORKINTERFACE):
            target = STORAGE if obj.resource is STORAGELINK else NETWORK
            assert obj.compute_id in objects and objects[obj.compute_id].resource is COMPUTE
            assert obj.target_id in objects and objects[obj.target_id].resource is target
        if obj.resource is NETWORKINTERFACE:
            claim("mac", obj.attributes["occi.networkinterface.mac"])
            claim("interface", (obj.compute_id, obj.attributes["occi.networkinterface.interface"]))
            address = obj.attributes.get("occi.networkinterface.address")
            if address is not None:
                claim("address", (obj.target_id, ipaddress.ip_interface(str(address)).ip))
        if obj.resource is STORAGELINK:
            claim("device", (obj.compute_id, obj.attributes["occi.storagelink.deviceid"]))
            claim("volume", obj.target_id)


async def _run(operations: list[tuple[Any, ...]]) -> None:
    drv = SimulatedDriver(delay=0, seed=0)
    made: list[tuple[ResourceType, str]] = []
    # Something to attach to from the start, so that short sequences reach the allocators.
    setup: list[Spec] = [
        ComputeSpec(name="a"),
        ComputeSpec(name="b"),
        NetworkSpec(name="n"),
        NetworkSpec(name="small", address="192.168.9.0/29"),
        StorageSpec(name="v", size_gib=1),
        StorageSpec(name="w", size_gib=1),
    ]
    for spec in setup:
        observed = await drv.create(spec)
        made.append((SPEC_TYPES[type(spec)], observed.backend_id))

    def pick(index: int, *types: ResourceType) -> tuple[ResourceType, str]:
        pool = [m for m in made if not types or m[0] in types] or [
            (types[0] if types else COMPUTE, "vm-missing")
        ]
        return pool[index % len(pool)]

    for op in operations:
        kind, *args = op
        try:
            if kind == "compute":
                vm = await drv.create(
                    ComputeSpec(name=str(args[2]), os_template=args[0], resource_template=args[1])
                )
                made.append((COMPUTE, vm.backend_id))
            elif kind == "storage":
                vol = await drv.create(StorageSpec(name="v", size_gib=args[0]))
                made.append((STORAGE, vol.backend_id))
            elif kind == "network":
                net = await drv.create(NetworkSpec(name="n", address=args[0]))
                made.append((NETWORK, net.backend_id))
            elif kind == "nic":
                nic = await drv.create(
                    NetworkInterfaceSpec(
                        name="i",
                        compute_id=pick(args[0], COMPUTE)[1],
                        network_id=pick(args[1], NETWORK)[1],
                        address=args[2],
                        mac=args[3],
                    )
                )
                made.append((NETWORKINTERFACE, nic.backend_id))
            elif kind == "link":
                link = await drv.create(
                    StorageLinkSpec(
                        name="l",
                        compute_id=pick(args[0], COMPUTE)[1],
                        storage_id=pick(args[1], STORAGE)[1],
                        deviceid=args[2],
                    )
                )
                made.append((STORAGELINK, link.backend_id))
            elif kind == "delete":
                await drv.delete(*pick(args[0]))
            elif kind == "act":
                params = {} if args[2] is None else {"method": args[2]}
                await drv.act(*pick(args[0]), str(args[1]), params)
            elif kind == "update":
                await drv.update(*pick(args[0]), args[1])
            elif kind == "external":
                resource, backend_id = pick(args[0])
                if await drv.observe(resource, backend_id) is not None:
                    try:
                        await drv.simulate_external(resource, backend_id, args[1])
                    except ValueError:
                        assert args[1] is not None  # a state outside the type's vocabulary
            elif kind == "fail_next":
                drv.fail_next(pick(args[0])[1], "injected")
        except OcciError:
            pass  # refusals are fine; any other exception fails the test
        _check_invariants(drv)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_OPERATION, min_size=10, max_size=40))
def test_any_sequence_of_calls_keeps_the_cloud_consistent(operations: list[tuple[Any, ...]]) -> None:
    # The driver "may assume valid input, but must never crash": only OcciErrors, and no
    # address, MAC, interface name, device or volume is ever handed out twice.
    asyncio.run(_run(operations))

"""The EC2 driver's EGI floating addresses: Elastic IPs as ipreservations, associations as networkinterfaces.

First the pure mapping (allocation arguments, facts, the pool template), then the driver against
moto_server (tests/services/moto_ec2.py): tags, up/down as a tag, association with the instance's
primary interface, double attachment refused, deletes, the inventory, polling (docs/drivers/ec2.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3", reason="boto3 is the ec2 extra: uv sync --extra ec2")

from occipy.backends import egi_types as egi
from occipy.backends._ec2_addresses import (
    TAG_LINK_INSTANCE,
    TAG_STATE,
    allocation_params,
    association_observed,
    pool_template,
    reservation_observed,
)
from occipy.backends._ec2_base import TAG_ENTITY, TAG_LINK_ENTITY, tags_of
from occipy.backends._ec2_settings import parse_settings
from occipy.backends.base import (
    ACTIVE,
    COMPUTE,
    INACTIVE,
    NETWORKINTERFACE,
    POOL,
    ComputeSpec,
    Down,
    NetworkInterfaceFacts,
    NetworkInterfaceSpec,
    Ref,
    Up,
)
from occipy.backends.ec2 import EC2Driver
from occipy.errors import BackendError, Conflict
from tests.services.moto_ec2 import MotoServer

from .test_ec2 import options
from .test_ec2_groups import Tracked

# ---------------------------------------------------------------- the pure mapping


def test_allocation_arguments() -> None:
    spec = egi.IpReservationSpec(name="r")
    assert allocation_params(spec, "amazon") == {"Domain": "vpc"}
    assert allocation_params(egi.IpReservationSpec(name="r", pool="amazon"), "amazon") == {"Domain": "vpc"}
    assert allocation_params(egi.IpReservationSpec(name="r", address="198.51.100.7"), "ipv4pool-ec2-0a1b") == {
        "Domain": "vpc", "PublicIpv4Pool": "ipv4pool-ec2-0a1b", "Address": "198.51.100.7"}
    assert allocation_params(egi.IpReservationSpec(name="r", address="198.51.100.7/32"), "amazon")["Address"] \
        == "198.51.100.7"
    with pytest.raises(BackendError, match="no floating IP pool 'public'; it has 'amazon'"):
        allocation_params(egi.IpReservationSpec(name="r", pool="public"), "amazon")
    with pytest.raises(BackendError, match="Elastic IPs are IPv4"):
        allocation_params(egi.IpReservationSpec(name="r", address="2001:db8::1"), "amazon")
    with pytest.raises(BackendError, match="not an IP address"):
        allocation_params(egi.IpReservationSpec(name="r", address="nowhere"), "amazon")


def test_reservation_and_association_facts() -> None:
    free = {"AllocationId": "eipalloc-0123456789abcdef0", "PublicIp": "203.0.113.9", "Tags": []}
    observed = reservation_observed(free, "amazon")
    assert (observed.backend_id, observed.state) == ("eipalloc-0123456789abcdef0", INACTIVE)
    assert observed.facts == egi.IpReservationFacts(address="203.0.113.9", used=False, pool="amazon")
    used = {**free, "AssociationId": "eipassoc-01", "NetworkInterfaceId": "eni-0123456789abcdef0",
            "Tags": [{"Key": TAG_STATE, "Value": "active"}, {"Key": TAG_LINK_INSTANCE, "Value": "i-0123456789abcdef0"}]}
    observed = reservation_observed(used, "amazon")
    assert observed.state == ACTIVE and observed.facts == egi.IpReservationFacts("203.0.113.9", True, "amazon")
    instance = {"InstanceId": "i-0123456789abcdef0", "NetworkInterfaces": [
        {"NetworkInterfaceId": "eni-0123456789abcdef0", "MacAddress": "0a:00:00:00:00:01",
         "Attachment": {"DeviceIndex": 0}}]}
    link = association_observed(instance, used)
    assert link is not None and link.backend_id == "i-0123456789abcdef0/eipalloc-0123456789abcdef0"
    assert link.facts == NetworkInterfaceFacts(interface="eth0", mac="0a:00:00:00:00:01", address="203.0.113.9",
                                               allocation="static")
    # Associated elsewhere, or not at all: no link on this instance.
    assert association_observed(instance, free) is None
    assert association_observed(instance, {**used, "NetworkInterfaceId": "eni-0fffffffffffffff0"}) is None


def test_the_pool_setting_and_template() -> None:
    assert parse_settings({}).address_pool == "amazon"
    assert parse_settings({"address_pool": "ipv4pool-ec2-0a1b2c"}).address_pool == "ipv4pool-ec2-0a1b2c"
    with pytest.raises(ValueError, match="ec2 driver option address_pool"):
        parse_settings({"address_pool": "public"})
    assert (pool_template("amazon").family, pool_template("amazon").name) == (POOL, "amazon")
    assert "BYOIP" in pool_template("ipv4pool-ec2-0a1b2c").title


def test_the_driver_declares_reservations_with_up_and_down() -> None:
    driver = EC2Driver.from_options({"region": "us-east-1"}, Path("/nonexistent"))
    assert driver.supports[egi.IPRESERVATION].actions == {"up", "down"}


# ---------------------------------------------------------------- against moto


@pytest.fixture
async def drv(ec2: MotoServer) -> AsyncIterator[EC2Driver]:
    driver = EC2Driver.from_options(options(ec2), Path("/nonexistent"))
    await driver.open()
    made = Tracked(driver)
    driver.made = made  # type: ignore[attr-defined]
    yield driver
    await made.cleanup()
    left = ec2.client().describe_addresses(Filters=driver.owner_filter())["Addresses"]
    await driver.close()
    assert left == [], f"Elastic IPs left: {left}"


def made(driver: EC2Driver) -> Tracked:
    return driver.made  # type: ignore[attr-defined,no-any-return]


def address(client: Any, allocation_id: str) -> Any:
    return client.describe_addresses(AllocationIds=[allocation_id])["Addresses"][0]


async def test_a_reservation_is_a_tagged_elastic_ip(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    assert [(t.family, t.name) for t in drv.templates() if t.family == POOL] == [(POOL, "amazon")]
    fip = await made(drv).create(egi.IpReservationSpec(name="fip", entity_id="urn:uuid:r1"))
    assert fip.backend_id.startswith("eipalloc-") and fip.state == INACTIVE
    found = address(client, fip.backend_id)
    assert found["Domain"] == "vpc"
    tags = tags_of(found)
    assert tags[TAG_ENTITY] == "urn:uuid:r1" and tags["Name"] == "fip" and tags["occipy:owner"] == drv.settings.owner
    assert fip.facts == egi.IpReservationFacts(address=found["PublicIp"], used=False, pool="amazon")
    ref = Ref(egi.IPRESERVATION, fip.backend_id)
    # up/down: the state is a tag (EC2 has no switch), read back by observe.
    assert (await drv.act(ref, Up())).state == ACTIVE
    assert tags_of(address(client, fip.backend_id))[TAG_STATE] == "active"
    assert (await drv.observe(ref)).state == ACTIVE  # type: ignore[union-attr]
    assert (await drv.act(ref, Down())).state == INACTIVE
    assert [t.entity_id for t in await drv.inventory() if t.ref == ref] == ["urn:uuid:r1"]
    with pytest.raises(BackendError, match="no floating IP pool 'elsewhere'"):
        await made(drv).create(egi.IpReservationSpec(name="x", pool="elsewhere"))
    await drv.delete(ref)
    assert client.describe_addresses(Filters=[{"Name": "allocation-id", "Values": [fip.backend_id]}])["Addresses"] == []
    assert await drv.observe(ref) is None
    await drv.delete(ref)  # a missing one is not an error


async def test_an_interface_to_a_reservation_associates_it(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    vm = await made(drv).create(ComputeSpec(name="vm", flavour="t2.micro"))
    fip = await made(drv).create(egi.IpReservationSpec(name="fip"))
    public_ip = address(client, fip.backend_id)["PublicIp"]
    nic = await made(drv).create(NetworkInterfaceSpec(name="nic", compute_id=vm.backend_id,
                                                      network_id=fip.backend_id, entity_id="urn:uuid:n1",
                                                      interface="eth1"))
    assert nic.backend_id == f"{vm.backend_id}/{fip.backend_id}" and nic.state == ACTIVE
    instance = client.describe_instances(InstanceIds=[vm.backend_id])["Reservations"][0]["Instances"][0]
    primary = next(n for n in instance["NetworkInterfaces"] if n["Attachment"]["DeviceIndex"] == 0)
    found = address(client, fip.backend_id)
    assert found["NetworkInterfaceId"] == primary["NetworkInterfaceId"] and found.get("AssociationId")
    assert tags_of(found)[TAG_LINK_ENTITY] == "urn:uuid:n1"
    assert nic.facts == NetworkInterfaceFacts(interface="eth0", mac=primary["MacAddress"], address=public_ip,
                                              allocation="static")
    reservation = await drv.observe(Ref(egi.IPRESERVATION, fip.backend_id))
    assert reservation is not None and isinstance(reservation.facts, egi.IpReservationFacts)
    assert reservation.facts.used is True
    assert await drv.observe(Ref(NETWORKINTERFACE, nic.backend_id)) == nic
    assert any(t.ref == Ref(NETWORKINTERFACE, nic.backend_id) and t.entity_id == "urn:uuid:n1"
               for t in await drv.inventory())

    # The same reservation twice, or a second one on the instance: refused (409), nothing changes.
    other_vm = await made(drv).create(ComputeSpec(name="other", flavour="t2.micro"))
    with pytest.raises(Conflict, match="already attached"):
        await made(drv).create(NetworkInterfaceSpec(name="again", compute_id=other_vm.backend_id,
                                                    network_id=fip.backend_id))
    second = await made(drv).create(egi.IpReservationSpec(name="second"))
    with pytest.raises(Conflict, match="already has the floating address"):
        await made(drv).create(NetworkInterfaceSpec(name="two", compute_id=vm.backend_id,
                                                    network_id=second.backend_id))
    assert not address(client, second.backend_id).get("AssociationId")

    # Deleting the interface disassociates; the reservation stays.
    await drv.delete(Ref(NETWORKINTERFACE, nic.backend_id))
    found = address(client, fip.backend_id)
    assert not found.get("AssociationId") and TAG_LINK_ENTITY not in tags_of(found)
    assert await drv.observe(Ref(NETWORKINTERFACE, nic.backend_id)) is None

    # Deleting a reservation that is attached disassociates it first; deleting a compute takes its
    # addresses off (they stay reserved).
    again = await made(drv).create(NetworkInterfaceSpec(name="n2", compute_id=other_vm.backend_id,
                                                        network_id=fip.backend_id))
    await made(drv).create(NetworkInterfaceSpec(name="n3", compute_id=vm.backend_id, network_id=second.backend_id))
    await drv.delete(Ref(COMPUTE, vm.backend_id))
    found = address(client, second.backend_id)
    assert not found.get("AssociationId") and TAG_LINK_INSTANCE not in tags_of(found)
    await drv.delete(Ref(egi.IPRESERVATION, fip.backend_id))
    assert await drv.observe(Ref(NETWORKINTERFACE, again.backend_id)) is None
    assert client.describe_addresses(Filters=[{"Name": "allocation-id", "Values": [fip.backend_id]}])["Addresses"] == []


async def test_disassociation_outside_occipy_is_polled(ec2: MotoServer) -> None:
    driver = EC2Driver.from_options(options(ec2, poll_interval="0.1"), Path("/nonexistent"))
    await driver.open()
    tracked = Tracked(driver)
    try:
        vm = await tracked.create(ComputeSpec(name="vm", flavour="t2.micro"))
        fip = await tracked.create(egi.IpReservationSpec(name="p"))
        nic = await tracked.create(NetworkInterfaceSpec(name="n", compute_id=vm.backend_id, network_id=fip.backend_id,
                                                        entity_id="urn:uuid:p1"))
        client = ec2.client()
        seen: list[Any] = []

        async def watch() -> None:
            async for change in driver.changes():
                seen.append(change)
                if change.ref == Ref(NETWORKINTERFACE, nic.backend_id) and change.observed is None:
                    return

        task = asyncio.create_task(watch())
        await asyncio.sleep(0.3)
        association = address(client, fip.backend_id)["AssociationId"]
        await asyncio.to_thread(client.disassociate_address, AssociationId=association)
        await asyncio.wait_for(task, timeout=10)
        used = [c.observed.facts.used for c in seen if c.ref == Ref(egi.IPRESERVATION, fip.backend_id)
                and c.observed is not None and isinstance(c.observed.facts, egi.IpReservationFacts)]
        assert used and used[-1] is False  # the reservation is no longer used
    finally:
        await tracked.cleanup()
        await driver.close()

"""The EC2 driver's EGI security groups against moto_server (tests/services/moto_ec2.py).

securitygroup = a VPC security group whose permissions are the rules (EC2's default egress while
no outbound rule is given); securitygrouplink = the group on every interface of the instance;
the inventory and polling find both (docs/drivers/ec2.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("boto3", reason="boto3 is the ec2 extra: uv sync --extra ec2")

from occipy.backends import egi_types as egi
from occipy.backends._ec2_base import TAG_ENTITY, tags_of
from occipy.backends.base import (
    ACTIVE,
    COMPUTE,
    ComputeSpec,
    FirewallRule,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    Ref,
    SecurityGroupUpdate,
    resource_of,
)
from occipy.backends.ec2 import EC2Driver
from occipy.errors import BackendError
from tests.services.moto_ec2 import MotoServer

from .contract import Made
from .test_ec2 import options

SSH = FirewallRule(direction="inbound", protocol="tcp", ports=(22, 22))
WEB = FirewallRule(direction="inbound", protocol="tcp", ports=(80, 443), remote="10.0.0.0/8")
PING = FirewallRule(direction="inbound", protocol="icmp")
DNS_OUT = FirewallRule(direction="outbound", protocol="udp", ports=(53, 53), remote="10.0.0.2/32")
V6 = FirewallRule(direction="inbound", protocol="tcp", ports=(22, 22), ipversion=6)


class Tracked(Made):
    """`Made` for the EGI types too (the contract's fact checks know only Infrastructure's)."""

    async def create(self, spec: object) -> Observed:
        observed = await self.driver.create(spec)
        assert observed.backend_id
        self._refs.append(Ref(resource_of(spec), observed.backend_id))
        return observed


@pytest.fixture
async def drv(ec2: MotoServer) -> AsyncIterator[EC2Driver]:
    driver = EC2Driver.from_options(options(ec2), Path("/nonexistent"))
    await driver.open()
    made = Tracked(driver)
    driver.made = made  # type: ignore[attr-defined]
    yield driver
    await made.cleanup()
    await driver.close()


def made(driver: EC2Driver) -> Tracked:
    return driver.made  # type: ignore[attr-defined,no-any-return]


def group(client: Any, group_id: str) -> Any:
    found = client.describe_security_groups(Filters=[{"Name": "group-id", "Values": [group_id]}])["SecurityGroups"]
    return found[0] if found else None


def instance_groups(client: Any, instance_id: str) -> list[set[str]]:
    """The groups of each interface of the instance."""
    instance = client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    enis = client.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["NetworkInterfaces"]
    assert enis or instance["NetworkInterfaces"]
    return [{g["GroupId"] for g in n["Groups"]} for n in enis]


def ingress(found: Any) -> set[tuple[str, int | None, int | None, str]]:
    return {(p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), r["CidrIp"])
            for p in found["IpPermissions"] for r in p.get("IpRanges", [])}


def egress(found: Any) -> set[tuple[str, str]]:
    return {(p["IpProtocol"], r["CidrIp"]) for p in found["IpPermissionsEgress"] for r in p.get("IpRanges", [])}


def test_discovery_offers_security_groups() -> None:
    driver = EC2Driver.from_options({"region": "us-east-1"}, Path("/nonexistent"))
    assert egi.SECURITYGROUP in driver.supports and egi.SECURITYGROUPLINK in driver.supports
    assert driver.supports[egi.SECURITYGROUP].updates == {"rules"}
    assert egi.IPRESERVATION in driver.supports  # Elastic IPs: tests/unit/backends/test_ec2_addresses.py


async def test_a_group_is_a_tagged_vpc_security_group_with_the_rules(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    sg = await made(drv).create(egi.SecurityGroupSpec(name="web", entity_id="urn:uuid:g1",
                                                      rules=(SSH, WEB, PING, V6)))
    assert sg.backend_id.startswith("sg-") and sg.state == ACTIVE
    found = group(client, sg.backend_id)
    assert found["VpcId"] == drv.vpc_id
    tags = tags_of(found)
    assert tags[TAG_ENTITY] == "urn:uuid:g1" and tags["Name"] == "web"
    assert ingress(found) == {("tcp", 22, 22, "0.0.0.0/0"), ("tcp", 80, 443, "10.0.0.0/8"),
                              ("icmp", -1, -1, "0.0.0.0/0")}
    assert [r["CidrIpv6"] for p in found["IpPermissions"] for r in p.get("Ipv6Ranges", [])] == ["::/0"]
    # No outbound rule: EC2's default egress stays (outbound traffic is not restricted) and is no rule.
    assert egress(found) == {("-1", "0.0.0.0/0")}
    assert isinstance(sg.facts, egi.SecurityGroupFacts)
    assert set(sg.facts.rules) == {SSH, WEB, PING, V6}
    assert await drv.observe(Ref(egi.SECURITYGROUP, sg.backend_id)) == sg
    assert [t.entity_id for t in await drv.inventory() if t.ref.backend_id == sg.backend_id] == ["urn:uuid:g1"]


async def test_rule_updates_revoke_and_authorize_the_difference(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    sg = await made(drv).create(egi.SecurityGroupSpec(name="upd", rules=(SSH, WEB)))
    # An outbound rule replaces EC2's default egress.
    changed = await drv.update(Ref(egi.SECURITYGROUP, sg.backend_id), SecurityGroupUpdate(rules=(SSH, DNS_OUT)))
    found = group(client, sg.backend_id)
    assert ingress(found) == {("tcp", 22, 22, "0.0.0.0/0")}
    assert egress(found) == {("udp", "10.0.0.2/32")}
    assert isinstance(changed.facts, egi.SecurityGroupFacts) and set(changed.facts.rules) == {SSH, DNS_OUT}
    # Without outbound rules again, the default egress comes back.
    changed = await drv.update(Ref(egi.SECURITYGROUP, sg.backend_id), SecurityGroupUpdate(rules=()))
    found = group(client, sg.backend_id)
    assert ingress(found) == set() and egress(found) == {("-1", "0.0.0.0/0")}
    assert isinstance(changed.facts, egi.SecurityGroupFacts) and changed.facts.rules == ()


@pytest.mark.parametrize(("rule", "message"), [
    (FirewallRule(direction="inbound", protocol="sctp"), "tcp, udp, icmp, icmpv6 or a protocol number"),
    (FirewallRule(direction="inbound", protocol="47", ports=(1, 2)), "port ranges for tcp and udp only"),
    (FirewallRule(direction="sideways", protocol="tcp"), "inbound or outbound"),
])
async def test_rules_ec2_cannot_take_make_nothing(drv: EC2Driver, ec2: MotoServer, rule: FirewallRule,
                                                  message: str) -> None:
    with pytest.raises(BackendError, match=message):
        await made(drv).create(egi.SecurityGroupSpec(name="bad", rules=(rule,)))
    tagged = ec2.client().describe_security_groups(
        Filters=[{"Name": "tag:occipy:owner", "Values": [drv.settings.owner]}])["SecurityGroups"]
    assert tagged == []


async def test_a_link_puts_the_group_on_every_interface(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    vm = await made(drv).create(ComputeSpec(name="vm", flavour="m5.large"))
    net = await made(drv).create(NetworkSpec(name="net", address="172.31.210.0/24"))
    await made(drv).create(NetworkInterfaceSpec(name="nic", compute_id=vm.backend_id, network_id=net.backend_id))
    sg = await made(drv).create(egi.SecurityGroupSpec(name="ssh", rules=(SSH,)))
    link = await made(drv).create(egi.SecurityGroupLinkSpec(name="l", compute_id=vm.backend_id,
                                                            group_id=sg.backend_id, entity_id="urn:uuid:l1"))
    assert link.backend_id == f"{vm.backend_id}/{sg.backend_id}" and link.state == ACTIVE
    groups = instance_groups(client, vm.backend_id)
    assert len(groups) == 2 and all(sg.backend_id in g and set(drv.security_groups) <= g for g in groups)
    # An interface attached later joins the instance's groups too.
    later = await made(drv).create(NetworkInterfaceSpec(name="later", compute_id=vm.backend_id,
                                                        network_id=net.backend_id))
    eni = client.describe_network_interfaces(NetworkInterfaceIds=[later.backend_id])["NetworkInterfaces"][0]
    assert sg.backend_id in {g["GroupId"] for g in eni["Groups"]}
    assert await drv.observe(Ref(egi.SECURITYGROUPLINK, link.backend_id)) == link
    assert any(t.ref == Ref(egi.SECURITYGROUPLINK, link.backend_id) and t.entity_id == "urn:uuid:l1"
               for t in await drv.inventory())
    with pytest.raises(BackendError, match="already in security group"):
        await made(drv).create(egi.SecurityGroupLinkSpec(name="again", compute_id=vm.backend_id,
                                                         group_id=sg.backend_id))
    with pytest.raises(BackendError, match="no security group"):
        await made(drv).create(egi.SecurityGroupLinkSpec(name="x", compute_id=vm.backend_id,
                                                         group_id="sg-0123456789abcdef0"))
    # Removing the link takes the group off every interface; the interfaces keep the default group.
    await drv.delete(Ref(egi.SECURITYGROUPLINK, link.backend_id))
    groups = instance_groups(client, vm.backend_id)
    assert all(sg.backend_id not in g and g for g in groups)
    assert await drv.observe(Ref(egi.SECURITYGROUPLINK, link.backend_id)) is None


async def test_deleting_a_group_or_the_compute_takes_the_links(drv: EC2Driver, ec2: MotoServer) -> None:
    client = ec2.client()
    vm = await made(drv).create(ComputeSpec(name="vm", flavour="m5.large"))
    sg = await made(drv).create(egi.SecurityGroupSpec(name="a", rules=(SSH,)))
    other = await made(drv).create(egi.SecurityGroupSpec(name="b", rules=(WEB,)))
    link = await made(drv).create(egi.SecurityGroupLinkSpec(name="la", compute_id=vm.backend_id,
                                                            group_id=sg.backend_id))
    kept = await made(drv).create(egi.SecurityGroupLinkSpec(name="lb", compute_id=vm.backend_id,
                                                            group_id=other.backend_id))
    await drv.delete(Ref(egi.SECURITYGROUP, sg.backend_id))
    assert group(client, sg.backend_id) is None
    assert await drv.observe(Ref(egi.SECURITYGROUPLINK, link.backend_id)) is None
    assert all(sg.backend_id not in g for g in instance_groups(client, vm.backend_id))
    await drv.delete(Ref(COMPUTE, vm.backend_id))
    assert await drv.observe(Ref(egi.SECURITYGROUPLINK, kept.backend_id)) is None
    assert tags_of(group(client, other.backend_id)).keys() & {f"occipy:link:{vm.backend_id}"} == set()


async def test_changes_outside_occipy_are_polled(ec2: MotoServer) -> None:
    driver = EC2Driver.from_options(options(ec2, poll_interval="0.1"), Path("/nonexistent"))
    await driver.open()
    tracked = Tracked(driver)
    try:
        sg = await tracked.create(egi.SecurityGroupSpec(name="p", rules=(SSH,)))
        client = ec2.client()
        seen: list[Any] = []

        async def watch() -> None:
            async for change in driver.changes():
                seen.append(change)
                if change.ref == Ref(egi.SECURITYGROUP, sg.backend_id):
                    return

        task = asyncio.create_task(watch())
        await asyncio.sleep(0.05)
        await asyncio.to_thread(client.authorize_security_group_ingress, GroupId=sg.backend_id,
                                IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                                "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        await asyncio.wait_for(task, timeout=10)
        observed = seen[-1].observed
        assert observed is not None and isinstance(observed.facts, egi.SecurityGroupFacts)
        assert FirewallRule(direction="inbound", protocol="tcp", ports=(443, 443)) in observed.facts.rules
    finally:
        await tracked.cleanup()
        await driver.close()

"""The OpenStack driver: settings and translations (no cloud), then the shared driver contract
suite and what only this driver does, against the real OpenStack the suite starts
(tests/services/openstack_cloud.py: nova with a fake hypervisor, cinder, neutron, glance, keystone).

The HTTP-level live suite and the kill -9 test are tests/integration/test_openstack_live.py.
"""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("openstack", reason="openstacksdk is the openstack extra: uv sync --extra openstack")

from occipy.backends import _openstack_map as m
from occipy.backends import load_driver_class
from occipy.backends._openstack_settings import parse_settings
from occipy.backends.base import (
    COMPUTE,
    FLAVOUR,
    IMAGE,
    NETWORK,
    NETWORKINTERFACE,
    STORAGE,
    STORAGELINK,
    ComputeSpec,
    ComputeUpdate,
    Driver,
    FirewallRule,
    NetworkInterfaceSpec,
    NetworkSpec,
    Ref,
    Restart,
    SecurityGroupUpdate,
    Stop,
    StorageLinkSpec,
    StorageSpec,
    StorageUpdate,
    Suspend,
)
from occipy.backends.egi_types import (
    IPRESERVATION,
    POOL,
    SECURITYGROUP,
    SECURITYGROUPLINK,
    IpReservationFacts,
    IpReservationSpec,
    SecurityGroupFacts,
    SecurityGroupLinkSpec,
    SecurityGroupSpec,
)
from occipy.backends.openstack import OpenStackDriver
from occipy.errors import BackendError, BackendUnavailable, NotSupported
from tests.services.openstack_cloud import OpenStackCloud
from tests.unit.backends.contract import DriverContract, unique

WAIT = 120


def driver_options(cloud: OpenStackCloud, **extra: str) -> dict[str, str]:
    return {"cloud": "occipy", "clouds_yaml": str(cloud.clouds_yaml), "poll_interval": "1",
            "wait_timeout": str(WAIT), **extra}


# ---------------------------------------------------------------- without a cloud


def test_registered_under_its_name() -> None:
    assert load_driver_class("openstack") is OpenStackDriver


def test_settings_need_a_cloud(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="set `cloud`"):
        parse_settings({}, tmp_path)
    with pytest.raises(ValueError, match="unknown openstack driver option 'clod'"):
        parse_settings({"clod": "x"}, tmp_path)
    with pytest.raises(ValueError, match="clouds_yaml"):
        parse_settings({"cloud": "x", "clouds_yaml": str(tmp_path / "missing.yaml")}, tmp_path)
    with pytest.raises(ValueError, match="label"):
        parse_settings({"cloud": "x", "label": "no spaces"}, tmp_path)
    with pytest.raises(ValueError, match="poll_interval"):
        parse_settings({"cloud": "x", "poll_interval": "soon"}, tmp_path)
    with pytest.raises(ValueError, match="network_prefix"):
        parse_settings({"cloud": "x", "network_range": "10.0.0.0/16", "network_prefix": "8"}, tmp_path)


def test_settings_explicit_auth_and_test_cloud_variables(tmp_path: Path) -> None:
    settings = parse_settings({"auth_url": "http://keystone:5000/v3", "username": "u", "password": "p",
                               "project_name": "pr", "region_name": "R1", "timeout": "300", "cache": "/x"},
                              tmp_path)
    assert settings.auth == {"auth_url": "http://keystone:5000/v3", "username": "u", "password": "p",
                             "project_name": "pr"}
    assert settings.connection == {"region_name": "R1"}
    assert settings.where == "OpenStack at http://keystone:5000/v3"
    assert settings.entity_key == "occipy:entity"
    assert parse_settings({"cloud": "mine", "label": "occi-a"}, tmp_path).entity_key == "occi-a:entity"


def test_tags_carry_any_entity_id() -> None:
    for entity_id in ("urn:uuid:" + str(uuid.uuid4()), "http://example.org/a,b c", "ünï"):
        tag = m.encode_tag("occipy:entity", entity_id)
        assert "," not in tag and len(tag) <= 255
        assert m.decode_tag("occipy:entity", ["other", tag]) == entity_id
    assert m.decode_tag("occipy:entity", ["occipy"]) is None
    with pytest.raises(ValueError, match="too long"):
        m.encode_tag("occipy:entity", "x" * 250)


@pytest.mark.parametrize(
    ("status", "state"),
    [("ACTIVE", "active"), ("SHUTOFF", "inactive"), ("PAUSED", "suspended"), ("SUSPENDED", "suspended"),
     ("SHELVED_OFFLOADED", "inactive"), ("ERROR", "error"), ("SOMETHING_NEW", "error")],
)
def test_server_states(status: str, state: str) -> None:
    server = SimpleNamespace(id="s1", status=status, flavor=SimpleNamespace(vcpus=2, ram=1536),
                             image=SimpleNamespace(id="i1"), hostname="h", fault={"message": "boom"})
    observed = m.server_observed(server, {"i1": "x64"})
    assert observed is not None and observed.state == state
    assert observed.facts == m.ComputeFacts(cores=2, memory_gib=1.5, architecture="x64", hostname="h")
    assert (observed.message is not None) == (state == "error")
    assert m.server_observed(SimpleNamespace(id="s1", status="DELETED"), {}) is None


def test_volume_and_network_states() -> None:
    assert m.volume_observed(SimpleNamespace(id="v", status="in-use", size=3)).state == "online"  # type: ignore[union-attr]
    failed = m.volume_observed(SimpleNamespace(id="v", status="error_extending", size=3))
    assert failed is not None and failed.state == "error" and "error_extending" in str(failed.message)
    assert m.volume_observed(SimpleNamespace(id="v", status="deleting", size=3)) is None
    subnet = SimpleNamespace(cidr="10.1.0.0/24", gateway_ip="10.1.0.1", is_dhcp_enabled=False)
    down = m.network_observed(SimpleNamespace(id="n", status="ACTIVE", is_admin_state_up=False), subnet)
    assert down.state == "inactive"
    assert down.facts == m.NetworkFacts(address="10.1.0.0/24", gateway="10.1.0.1", allocation="static")


def test_floating_ip_states_follow_the_association() -> None:
    reserved = SimpleNamespace(id="f", status="DOWN", port_id=None, floating_ip_address="203.0.113.5")
    observed = m.floating_ip_observed(reserved, "public")
    assert (observed.state, observed.facts) == ("inactive", IpReservationFacts("203.0.113.5", False, "public"))
    # Without an L3 agent Neutron leaves an associated floating IP DOWN: the association decides.
    associated = SimpleNamespace(id="f", status="DOWN", port_id="p", floating_ip_address="203.0.113.5")
    assert m.floating_ip_observed(associated, "public").state == "active"
    assert m.floating_ip_observed(associated, "public").facts.used is True  # type: ignore[union-attr]
    failed = SimpleNamespace(id="f", status="ERROR", port_id=None, floating_ip_address=None)
    assert m.floating_ip_observed(failed, None).state == "error"
    port = SimpleNamespace(id="p", device_id="s", mac_address="FA:16:3E:00:00:01")
    link = m.association_observed("s/f", associated, port)
    assert link is not None and link.state == "active"
    assert link.facts == m.NetworkInterfaceFacts(interface="tapp", mac="fa:16:3e:00:00:01", address="203.0.113.5",
                                                 allocation="static")
    assert m.association_observed("other/f", associated, port) is None  # another server's port
    assert m.association_observed("s/f", reserved, port) is None  # not associated
    assert m.pool_template(SimpleNamespace(name="public", id="n"), "public").family == POOL


def test_firewall_rules_to_neutron_and_back() -> None:
    ssh = FirewallRule("inbound", "tcp", (22, 22), "10.1.2.3/8")
    assert m.neutron_rule(ssh) == ("ingress", "IPv4", 6, 22, 22, "10.0.0.0/8")
    assert m.neutron_rule(FirewallRule("inbound", "6", (22, 22), "10.0.0.0/8")) == m.neutron_rule(ssh)
    assert m.neutron_rule(FirewallRule("outbound", "ipv6-icmp", None, "::/0", 6)) == (
        "egress", "IPv6", 58, None, None, None)
    # No outbound rule: Neutron's default egress stays; one outbound rule replaces it.
    assert m.neutron_rules([ssh]) == {m.neutron_rule(ssh)} | m.DEFAULT_EGRESS
    dns = FirewallRule("outbound", "udp", (53, 53))
    assert m.neutron_rules([ssh, dns]) == {m.neutron_rule(ssh), ("egress", "IPv4", 17, 53, 53, None)}
    for bad, message in ((FirewallRule("inbound", "carrier-pigeon"), "not 'carrier-pigeon'"),
                         (FirewallRule("inbound", "gre", (1, 2)), "port ranges"),
                         (FirewallRule("sideways", "tcp"), "inbound or outbound"),
                         (FirewallRule("inbound", "tcp", None, "::/0", 4), "not an IPv4 prefix")):
        with pytest.raises(ValueError, match=message):
            m.neutron_rule(bad)
    listed = [
        {"id": "r1", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22,
         "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/8"},
        {"id": "r2", "direction": "egress", "ethertype": "IPv4", "protocol": None, "port_range_min": None,
         "port_range_max": None, "remote_ip_prefix": None},
        {"id": "r3", "direction": "egress", "ethertype": "IPv6", "protocol": None, "port_range_min": None,
         "port_range_max": None, "remote_ip_prefix": None},
        {"id": "r4", "direction": "ingress", "ethertype": "IPv4", "protocol": None, "remote_group_id": "g"},
    ]
    group = SimpleNamespace(id="g", security_group_rules=listed)
    assert set(m.group_rules(group)) == {m.neutron_rule(ssh), *m.DEFAULT_EGRESS}  # remote groups are not occipy's
    observed = m.group_observed(group)
    assert observed.facts == SecurityGroupFacts(rules=(FirewallRule("inbound", "tcp", (22, 22), "10.0.0.0/8"),))
    listed[2] = {"id": "r3", "direction": "egress", "ethertype": "IPv4", "protocol": "udp", "port_range_min": 53,
                 "port_range_max": 53, "remote_ip_prefix": "0.0.0.0/0"}
    assert set(m.group_observed(group).facts.rules) == {  # type: ignore[union-attr]
        FirewallRule("inbound", "tcp", (22, 22), "10.0.0.0/8"), FirewallRule("outbound", "udp", (53, 53))}


def test_settings_name_the_default_pool(tmp_path: Path) -> None:
    assert parse_settings({"cloud": "x"}, tmp_path).floating_pool is None
    assert parse_settings({"cloud": "x", "floating_pool": " public "}, tmp_path).floating_pool == "public"


# ---------------------------------------------------------------- the contract, on the real cloud


@pytest.mark.openstack
@pytest.mark.timeout(900)  # the first test also pays for the cloud's start (about a minute)
class TestOpenStackContract(DriverContract):
    @pytest.fixture
    async def driver(self, openstack_cloud: OpenStackCloud, openstack_conn: Any) -> AsyncIterator[Driver]:
        # openstack_conn deletes, as admin, whatever the test left (and fails the test if it cannot),
        # this flavor too: the contract resizes to 2 vCPU and 1 GiB, which the seeded flavors lack.
        admin = openstack_cloud.connect(admin=True)
        try:
            admin.compute.create_flavor(name="ct.medium", vcpus=2, ram=1024, disk=2)
        finally:
            admin.close()
        drv = OpenStackDriver.from_options(driver_options(openstack_cloud), Path("."))
        await drv.open()
        yield drv
        await drv.close()

    def compute_spec(self, driver: Driver, **overrides: Any) -> ComputeSpec:
        # The seeded image (the contract's default, the first image, may be a test's snapshot) and
        # the memory of the seeded 1-vCPU flavor (m1.tiny: 256 MiB).
        values: dict[str, Any] = {"image": self._cloud.image["id"], "memory_gib": 0.25}
        values.update(overrides)
        return super().compute_spec(driver, **values)

    @pytest.fixture(autouse=True)
    def _remember_cloud(self, openstack_cloud: OpenStackCloud, openstack_conn: Any) -> None:
        self._cloud = openstack_cloud
        self._conn = openstack_conn

    async def change_outside(self, driver: Driver, ref: Ref, state: str | None) -> None:
        compute = self._conn.compute
        if state is None:
            compute.delete_server(ref.backend_id)
            compute.wait_for_delete(compute.get_server(ref.backend_id), wait=WAIT, interval=0.3)
        else:
            assert state == "inactive"
            compute.stop_server(ref.backend_id)
            compute.wait_for_server(compute.get_server(ref.backend_id), status="SHUTOFF", wait=WAIT, interval=0.3)

    async def unreachable(self) -> Driver | None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # closed again: nothing listens there
        return OpenStackDriver.from_options(
            {"auth_url": f"http://127.0.0.1:{port}/v3", "username": "u", "password": "p", "project_name": "p",
             "user_domain_name": "Default", "project_domain_name": "Default"}, Path("."))


# ---------------------------------------------------------------- what only this driver does


@pytest.fixture
async def driver(openstack_cloud: OpenStackCloud, openstack_conn: Any) -> AsyncIterator[OpenStackDriver]:
    drv = OpenStackDriver.from_options(driver_options(openstack_cloud), Path("."))
    await drv.open()
    yield drv
    await drv.close()


def spec(cloud: OpenStackCloud, **overrides: Any) -> ComputeSpec:
    values: dict[str, Any] = {"name": unique("os-vm"), "image": cloud.image["id"], "cores": 1, "memory_gib": 0.25}
    values.update(overrides)
    return ComputeSpec(**values)




@pytest.mark.openstack
@pytest.mark.timeout(900)
async def test_templates_are_glance_images_and_nova_flavors(
        driver: OpenStackDriver, openstack_cloud: OpenStackCloud) -> None:
    images = {t.name: t for t in driver.templates() if t.family == IMAGE}
    assert images[openstack_cloud.image["id"]].title == "occipy-tiny"
    flavors = {t.name: t for t in driver.templates() if t.family == FLAVOUR}
    assert (flavors["m1.tiny"].cores, flavors["m1.tiny"].memory_gib, flavors["m1.tiny"].disk_gib) == (1, 0.25, 1.0)
    assert (flavors["m1.small"].cores, flavors["m1.small"].memory_gib) == (2, 0.5)
    assert set(driver.supports) == {COMPUTE, STORAGE, NETWORK, STORAGELINK, NETWORKINTERFACE,
                                    SECURITYGROUP, SECURITYGROUPLINK, IPRESERVATION}
    assert [(t.name, t.title) for t in driver.templates() if t.family == POOL] == [
        ("public", "Floating IP pool public")]


@pytest.mark.openstack
@pytest.mark.timeout(900)
async def test_compute_carries_its_entity_id_flavor_and_hostname(
        driver: OpenStackDriver, openstack_cloud: OpenStackCloud, openstack_conn: Any) -> None:
    entity_id = f"urn:uuid:{uuid.uuid4()}"
    observed = await driver.create(spec(openstack_cloud, entity_id=entity_id, cores=2, memory_gib=None,
                                        hostname="node-1", ssh_public_key=SSH_KEY, user_data=b"#cloud-config\n"))
    server = openstack_conn.compute.get_server(observed.backend_id)
    assert server.metadata == {"occipy:entity": entity_id}
    assert server.flavor.original_name == "m1.small"  # the smallest flavor with 2 vCPUs
    assert server.hostname == "node-1"
    assert server.key_name is not None and list(openstack_conn.compute.keypairs()) == []  # used for the boot only
    assert observed.facts == m.ComputeFacts(cores=2, memory_gib=0.5, architecture=None, hostname="node-1")
    named = await driver.create(spec(openstack_cloud, flavour="m1.tiny", cores=None, memory_gib=None))
    assert openstack_conn.compute.get_server(named.backend_id).flavor.original_name == "m1.tiny"
    with pytest.raises(BackendError, match="no flavor with 64 vCPU"):
        await driver.create(spec(openstack_cloud, cores=64))
    with pytest.raises(BackendError, match="needs an image"):
        await driver.create(spec(openstack_cloud, image=None))


SSH_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ6Vz8mYxQPYTt3X4E8nJ6pt7zNhJrGa8Vn6yxbKpAkQ occipy-test")


@pytest.mark.openstack
@pytest.mark.timeout(900)
async def test_action_methods_map_to_nova(
        driver: OpenStackDriver, openstack_cloud: OpenStackCloud, openstack_conn: Any) -> None:
    ref = Ref(COMPUTE, (await driver.create(spec(openstack_cloud))).backend_id)
    status = lambda: openstack_conn.compute.get_server(ref.backend_id).status
    assert (await driver.act(ref, Suspend(method="suspend"))).state == "suspended"
    assert status() == "PAUSED"  # suspend to RAM
    assert (await driver.act(ref, Stop(method="acpioff"))).state == "inactive"  # unpaused, then stopped
    assert status() == "SHUTOFF"
    assert (await driver.act(ref, Restart(method="graceful"))).state == "active"  # a stopped server: hard reboot
    assert (await driver.act(ref, Suspend(method="hibernate"))).state == "suspended"
    assert status() == "SUSPENDED"  # suspend to disk
    with pytest.raises(NotSupported, match="restart method 'sideways'"):
        await driver.act(ref, Restart(method="sideways"))


@pytest.mark.openstack
@pytest.mark.timeout(900)
async def test_resize_confirms_and_reimage_rebuilds(
        driver: OpenStackDriver, openstack_cloud: OpenStackCloud, openstack_conn: Any) -> None:
    ref = Ref(COMPUTE, (await driver.create(spec(openstack_cloud, flavour="m1.tiny"))).backend_id)
    observed = await driver.update(ref, ComputeUpdate(cores=2))
    server = openstack_conn.compute.get_server(ref.backend_id)
    assert (server.status, server.flavor.original_name) == ("ACTIVE", "m1.small")
    assert observed.facts is not None and observed.facts.cores == 2  # type: ignore[attr-defined]
    await driver.update(ref, ComputeUpdate(image=openstack_cloud.image["id"]))
    assert openstack_conn.compute.get_server(ref.backend_id).status == "ACTIVE"
    with pytest.raises(NotSupported, match="architecture"):
        await driver.update(ref, ComputeUpdate(architecture="x86"))


@pytest.mark.openstack
@pytest.mark.timeout(900)
async def test_attached_volume_is_not_grown(
        driver: OpenStackDriver, openstack_cloud: OpenStackCloud, openstack_conn: Any) -> None:
    compute = await driver.create(spec(openstack_cloud))
    volume = await driver.create(StorageSpec(name=unique("os-vol"), size_gib=1.5, entity_id="urn:x:vol"))
    assert openstack_conn.block_storage.get_volume(volume.backend_id).size == 2  # whole GiB, rounded up
    link = await driver.create(StorageLinkSpec(name=unique("os-sl"), compute_id=compute.backend_id,
                                               storage_id=volume.backend_id, entity_id="urn:x:link",
                                               device="disk0", mountpoint="/srv"))
    assert link.backend_id == f"{compute.backend_id}/{volume.backend_id}"
    metadata = openstack_conn.block_storage.get_volume(volume.backend_id).metadata
    assert metadata == {"occipy:entity": "urn:x:vol", "occipy:storagelink": "urn:x:link", "occipy:mountpoint": "/srv"}
    with pytest.raises(NotSupported, match="attached"):
        await driver.update(Ref(STORAGE, volume.backend_id), StorageUpdate(size_gib=3))
    await driver.delete(Ref(STORAGELINK, link.backend_id))
    assert openstack_conn.block_storage.get_volume(volume.backend_id).metadata == {"occipy:entity": "urn:x:vol"}
    grown = await driver.update(Ref(STORAGE, volume.backend_id), StorageUpdate(size_gib=3))
    assert grown.facts == m.StorageFacts(size_gib=3.0)


@pytest.mark.openstack
@pytest.mark.timeout(900)
async def test_network_and_port_marks(
        driver: OpenStackDriver, openstack_cloud: OpenStackCloud, openstack_conn: Any) -> None:
    compute = await driver.create(spec(openstack_cloud))
    network = await driver.create(NetworkSpec(name=unique("os-net"), entity_id="urn:x:net", allocation="static"))
    neutron = openstack_conn.network.get_network(network.backend_id)
    assert set(neutron.tags) == {"occipy", "occipy:entity=urn:x:net"}
    address = network.facts.address  # type: ignore[attr-defined]
    assert ipaddress.ip_network(address).subnet_of(ipaddress.ip_network("10.128.0.0/9"))
    assert network.facts.allocation == "static"  # type: ignore[attr-defined]
    nic = await driver.create(NetworkInterfaceSpec(name=unique("os-nic"), compute_id=compute.backend_id,
                                                   network_id=network.backend_id, entity_id="urn:x:nic",
                                                   interface="eth1"))
    port = openstack_conn.network.get_port(nic.backend_id)
    assert set(port.tags) == {"occipy", "occipy:entity=urn:x:nic", "occipy:interface=eth1"}
    assert port.device_id == compute.backend_id
    assert nic.facts.interface == "eth1"  # type: ignore[attr-defined]
    assert ipaddress.ip_address(nic.facts.address) in ipaddress.ip_network(address)  # type: ignore[attr-defined]
    # A deleted server unplugs the port; deleting the link then deletes the port.
    await driver.delete(Ref(COMPUTE, compute.backend_id))
    assert await driver.observe(Ref(NETWORKINTERFACE, nic.backend_id)) is None
    assert openstack_conn.network.get_port(nic.backend_id).device_id == ""
    await driver.delete(Ref(NETWORKINTERFACE, nic.backend_id))
    assert openstack_conn.network.find_port(nic.backend_id) is None
    await driver.delete(Ref(NETWORK, network.backend_id))
    assert openstack_conn.network.find_network(network.backend_id) is None


@pytest.mark.openstack
@pytest.mark.timeout(900)
async def test_a_failed_boot_leaves_nothing(
        driver: OpenStackDriver, openstack_cloud: OpenStackCloud, openstack_conn: Any) -> None:
    # A flavor asking for more disk than the fake hypervisor has makes nova put the server in ERROR.
    admin = openstack_cloud.connect(admin=True)
    try:
        admin.compute.create_flavor(name="os-huge", vcpus=1, ram=128, disk=10_000_000)
    finally:
        admin.close()
    before = {s.id for s in openstack_conn.compute.servers()}
    with pytest.raises(BackendError, match="ERROR"):
        await driver.create(spec(openstack_cloud, flavour="os-huge", cores=None, memory_gib=None))
    assert {s.id for s in openstack_conn.compute.servers()} == before


@pytest.mark.openstack
@pytest.mark.timeout(900)
async def test_bad_credentials_are_unavailable(openstack_cloud: OpenStackCloud) -> None:
    drv = OpenStackDriver.from_options({**driver_options(openstack_cloud), "password": "wrong"}, Path("."))
    with pytest.raises(BackendUnavailable, match="OpenStack cloud 'occipy'.*credentials"):
        await drv.open()
    await drv.close()


@pytest.mark.openstack
@pytest.mark.timeout(900)
async def test_egi_objects_carry_their_marks_and_follow_the_server(
        driver: OpenStackDriver, openstack_cloud: OpenStackCloud, openstack_conn: Any) -> None:
    net = openstack_conn.network
    compute = await driver.create(spec(openstack_cloud, entity_id="urn:x:vm"))
    group = await driver.create(SecurityGroupSpec(name=unique("os-sg"), entity_id="urn:x:sg",
                                                  rules=(FirewallRule("inbound", "tcp", (22, 22)),)))
    # A compute without ports can be linked: the ports it gets later carry the group.
    link = await driver.create(SecurityGroupLinkSpec(name=unique("os-sgl"), compute_id=compute.backend_id,
                                                     group_id=group.backend_id, entity_id="urn:x:sgl"))
    assert link.state == "active" and link.backend_id == f"{compute.backend_id}/{group.backend_id}"
    with pytest.raises(BackendError, match="already in security group"):
        await driver.create(SecurityGroupLinkSpec(name=unique("os-sgl"), compute_id=compute.backend_id,
                                                  group_id=group.backend_id))
    reservation = await driver.create(IpReservationSpec(name=unique("os-fip"), entity_id="urn:x:fip"))
    assert reservation.facts.pool == "public"  # type: ignore[attr-defined]
    # No port yet: Neutron has nothing to associate the floating IP with.
    with pytest.raises(BackendError, match="no network interface"):
        await driver.create(NetworkInterfaceSpec(name=unique("os-nic"), compute_id=compute.backend_id,
                                                 network_id=reservation.backend_id))
    nic = await driver.create(NetworkInterfaceSpec(name=unique("os-nic"), compute_id=compute.backend_id,
                                                   network_id=openstack_cloud.network["id"], entity_id="urn:x:nic"))
    assert group.backend_id in net.get_port(nic.backend_id).security_group_ids
    association = await driver.create(NetworkInterfaceSpec(
        name=unique("os-nic"), compute_id=compute.backend_id, network_id=reservation.backend_id,
        entity_id="urn:x:assoc"))  # the seeded network has a router to the pool
    assert association.backend_id == f"{compute.backend_id}/{reservation.backend_id}"
    assert net.get_ip(reservation.backend_id).port_id == nic.backend_id
    found = {(t.ref.resource, t.ref.backend_id): t.entity_id for t in await driver.inventory()}
    assert found[(IPRESERVATION, reservation.backend_id)] == "urn:x:fip"
    assert found[(NETWORKINTERFACE, association.backend_id)] == "urn:x:assoc"
    assert found[(SECURITYGROUP, group.backend_id)] == "urn:x:sg"
    assert found[(SECURITYGROUPLINK, link.backend_id)] == "urn:x:sgl"
    # Replacing the rules twice with the same set changes nothing in Neutron the second time.
    rules = (FirewallRule("inbound", "icmp"), FirewallRule("outbound", "tcp", (443, 443), "192.0.2.0/24"))
    await driver.update(Ref(SECURITYGROUP, group.backend_id), SecurityGroupUpdate(rules=rules))
    ids = {r["id"] for r in net.get_security_group(group.backend_id).security_group_rules}
    updated = await driver.update(Ref(SECURITYGROUP, group.backend_id), SecurityGroupUpdate(rules=rules))
    assert {r["id"] for r in net.get_security_group(group.backend_id).security_group_rules} == ids
    assert set(updated.facts.rules) == set(rules)  # type: ignore[attr-defined]
    # Deleting the group takes it off the ports and the link's mark off the server.
    await driver.delete(Ref(SECURITYGROUP, group.backend_id))
    assert group.backend_id not in net.get_port(nic.backend_id).security_group_ids
    assert await driver.observe(Ref(SECURITYGROUPLINK, link.backend_id)) is None
    # Deleting the port takes the floating IP off it (Neutron): the association is gone, the reservation stays.
    await driver.delete(Ref(NETWORKINTERFACE, nic.backend_id))
    assert await driver.observe(Ref(NETWORKINTERFACE, association.backend_id)) is None
    observed = await driver.observe(Ref(IPRESERVATION, reservation.backend_id))
    assert observed is not None and observed.state == "inactive"
    await driver.delete(Ref(IPRESERVATION, reservation.backend_id))
    assert net.find_ip(reservation.backend_id) is None


@pytest.mark.openstack
@pytest.mark.timeout(900)
async def test_default_pool_setting_and_unknown_pools(openstack_cloud: OpenStackCloud, openstack_conn: Any) -> None:
    drv = OpenStackDriver.from_options(driver_options(openstack_cloud, floating_pool="elsewhere"), Path("."))
    await drv.open()
    try:
        with pytest.raises(BackendError, match="no floating IP pool 'elsewhere' \\(pools: public\\)"):
            await drv.create(IpReservationSpec(name=unique("os-fip")))
        by_id = await drv.create(IpReservationSpec(name=unique("os-fip"), pool=openstack_cloud.external_network["id"]))
        assert by_id.facts.pool == "public"  # type: ignore[attr-defined]
        await drv.delete(Ref(IPRESERVATION, by_id.backend_id))
    finally:
        await drv.close()


def test_a_403_for_a_chosen_value_is_a_501_that_says_what_to_leave_out() -> None:
    """Neutron's policy may keep a MAC or a floating address for the cloud to choose: with a choice
    made, its 403 becomes a 501 naming the choice; without one, the 403 is not ours to explain."""
    import openstack.exceptions as sdk

    from occipy.backends._openstack_ops import choice_refused
    from occipy.errors import NotSupported

    with pytest.raises(NotSupported) as refused:
        with choice_refused("cloud x", "02:00:00:00:00:01", "a MAC address", "leave it unset"):
            raise sdk.ForbiddenException("Policy doesn't allow create_port:mac_address")
    assert str(refused.value.args[0]).startswith("cloud x does not let this project choose a MAC address (")
    assert "create_port:mac_address" in str(refused.value) and str(refused.value).endswith("; leave it unset")
    with pytest.raises(sdk.ForbiddenException):
        with choice_refused("cloud x", None, "a MAC address", "leave it unset"):
            raise sdk.ForbiddenException("quota")

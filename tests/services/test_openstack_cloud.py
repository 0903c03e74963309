"""Smoke test of the real OpenStack with openstacksdk: servers, networks and ports, volumes."""

from __future__ import annotations

import time

from typing import Any

import openstack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.services.openstack_cloud import OpenStackCloud

pytestmark = [
    pytest.mark.openstack,
    pytest.mark.timeout(900),  # the first test also pays for the cloud's start (about a minute)
]
WAIT = 120


def test_the_cloud_is_seeded_for_drivers(openstack_cloud: OpenStackCloud, openstack_conn: Any) -> None:
    assert openstack_cloud.auth_url.startswith("http://127.0.0.1:") and openstack_cloud.auth_url.endswith("/v3")
    assert openstack_cloud.clouds_yaml.read_text().count("auth_url:") == 2
    image = openstack_conn.image.get_image(openstack_cloud.image["id"])
    assert (image.name, image.status, image.disk_format) == ("occipy-tiny", "active", "raw")
    assert image.size is not None and image.size < 16 * 1024
    assert sorted(f.name for f in openstack_conn.compute.flavors()) == ["m1.small", "m1.tiny"]
    network = openstack_conn.network.get_network(openstack_cloud.network["id"])
    assert network.project_id == openstack_cloud.project_id
    subnet = openstack_conn.network.get_subnet(openstack_cloud.subnet["id"])
    assert subnet.cidr == "10.20.0.0/24" and subnet.network_id == network.id
    # The floating IP pool and the router from occipy-net to it.
    public = openstack_conn.network.get_network(openstack_cloud.external_network["id"])
    assert (public.name, public.is_router_external) == ("public", True)
    router = openstack_conn.network.get_router(openstack_cloud.router["id"])
    assert router.external_gateway_info["network_id"] == public.id
    assert [p.fixed_ips[0]["subnet_id"] for p in openstack_conn.network.ports(device_id=router.id)
            if p.device_owner == "network:router_interface"] == [subnet.id]
    hypervisors = list(openstack_cloud.connect(admin=True).compute.hypervisors())
    assert len(hypervisors) == 1


def test_server_lifecycle(openstack_cloud: OpenStackCloud, openstack_conn: Any) -> None:
    compute = openstack_conn.compute
    server = compute.create_server(name="occi-vm", image_id=openstack_cloud.image["id"],
                                   flavor_id=openstack_cloud.flavor["id"],
                                   networks=[{"uuid": openstack_cloud.network["id"]}])
    server = compute.wait_for_server(server, status="ACTIVE", wait=WAIT, interval=0.3)
    addresses = server.addresses["occipy-net"]
    assert addresses[0]["addr"].startswith("10.20.0.")
    compute.stop_server(server)
    assert compute.wait_for_server(server, status="SHUTOFF", wait=WAIT, interval=0.3).power_state == 4
    compute.start_server(server)
    assert compute.wait_for_server(server, status="ACTIVE", wait=WAIT, interval=0.3).power_state == 1
    compute.delete_server(server)
    compute.wait_for_delete(server, wait=WAIT, interval=0.3)
    # On a loaded machine Nova was seen answering for the server once more right after
    # wait_for_delete saw it gone (a clean-clone run): it must be gone for good within WAIT.
    deadline = time.monotonic() + WAIT
    while True:
        try:
            found = compute.get_server(server.id)
        except openstack.exceptions.NotFoundException:
            break
        assert time.monotonic() < deadline, f"the deleted server is still there ({found.status})"
        time.sleep(0.3)


def test_network_subnet_and_port(openstack_conn: Any) -> None:
    net = openstack_conn.network
    network = net.create_network(name="occi-net2")
    subnet = net.create_subnet(network_id=network.id, ip_version=4, cidr="10.21.0.0/24", name="occi-sub2")
    port = net.create_port(network_id=network.id, fixed_ips=[{"subnet_id": subnet.id, "ip_address": "10.21.0.50"}])
    assert port.fixed_ips == [{"subnet_id": subnet.id, "ip_address": "10.21.0.50"}]
    assert port.status == "DOWN"  # unbound until a server uses it
    assert [p.id for p in net.ports(network_id=network.id) if p.device_owner == ""] == [port.id]
    net.delete_port(port)
    net.delete_network(network)
    assert [n.name for n in net.networks(name="occi-net2")] == []


def test_volume_attach_and_detach(openstack_cloud: OpenStackCloud, openstack_conn: Any) -> None:
    compute, storage = openstack_conn.compute, openstack_conn.block_storage
    server = compute.create_server(name="occi-vm-vol", image_id=openstack_cloud.image["id"],
                                   flavor_id=openstack_cloud.flavor["id"], networks="none")
    volume = storage.create_volume(size=1, name="occi-vol")
    server = compute.wait_for_server(server, status="ACTIVE", wait=WAIT, interval=0.3)
    volume = storage.wait_for_status(volume, "available", wait=WAIT, interval=0.3)
    compute.create_volume_attachment(server, volume=volume)
    volume = storage.wait_for_status(volume, "in-use", wait=WAIT, interval=0.3)
    assert [a["server_id"] for a in volume.attachments] == [server.id]
    compute.delete_volume_attachment(server, volume)
    volume = storage.wait_for_status(volume, "available", wait=WAIT, interval=0.3)
    assert volume.attachments == []
    # left for openstack_conn's cleanup: the server and the volume (checked by the next test)


def test_leaves_a_router_key_pair_and_security_group_for_cleanup(
    openstack_cloud: OpenStackCloud, openstack_conn: Any
) -> None:
    net = openstack_conn.network
    router = net.create_router(name="occi-router")
    # The subnet's gateway address is the seeded router's: this router's interface is a port of its own.
    port = net.create_port(network_id=openstack_cloud.network["id"])
    net.add_interface_to_router(router, port_id=port.id)
    group = net.create_security_group(name="occi-sg")
    net.create_security_group_rule(security_group_id=group.id, direction="ingress", protocol="tcp",
                                   port_range_min=22, port_range_max=22, remote_ip_prefix="0.0.0.0/0")
    key = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    openstack_conn.compute.create_keypair(name="occi-key", public_key=key.decode())
    assert [k.name for k in openstack_conn.compute.keypairs()] == ["occi-key"]


def test_cleanup_removed_what_earlier_tests_left(openstack_conn: Any, openstack_cloud: OpenStackCloud) -> None:
    admin = openstack_cloud.connect(admin=True)
    try:
        assert list(admin.compute.servers(all_projects=True)) == []
        assert list(admin.block_storage.volumes(all_projects=True)) == []
        assert sorted(n.name for n in admin.network.networks()) == ["occipy-net", "public"]
        assert [r.id for r in admin.network.routers()] == [openstack_cloud.router["id"]]  # the seeded one
        assert "occi-sg" not in [g.name for g in admin.network.security_groups()]
        # the test router's interface went with its router; the seeded router's gateway and interface stay
        assert [p.id for p in admin.network.ports() if p.device_id != openstack_cloud.router["id"]] == []
    finally:
        admin.close()
    assert list(openstack_conn.compute.keypairs()) == []
    with pytest.raises(openstack.exceptions.ResourceNotFound):
        openstack_conn.compute.get_server("00000000-0000-0000-0000-000000000000")

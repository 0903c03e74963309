"""The EGI extensions on the OpenStack driver end to end: `occipy serve --driver openstack` on the real
OpenStack the suite starts (tests/services/openstack_cloud.py), through the HTTP API and the SDK,
with Neutron queried directly (openstacksdk) to see what occipy did.

Floating IPs: the seeded external network `public` is discovered as a floatingippool child; an
ipreservation reserves an address from it (one the cloud picks, one given); a networkinterface from
a compute to it associates the floating IP with the compute's port (a router connects the compute's
network to `public`); deleting the link disassociates, deleting the reservation releases it. Security
groups: a securitygroup is a Neutron group with the rules, an update replaces them, a
securitygrouplink puts the group on the server's ports, unlinking takes it off, deleting deletes it.
Bad input is a 4xx before anything reaches the cloud; what the cloud refuses ends the entity in error.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import httpx
import pytest

from occipy import errors
from occipy.client import Client
from occipy.model.catalogue import NETWORKINTERFACE
from occipy.model.extensions.egi import FLOATINGIPPOOL, IPRESERVATION, SECURITYGROUP, SECURITYGROUPLINK
from tests.integration.test_openstack_live import WAIT, eventually, serving
from tests.services.openstack_cloud import OpenStackCloud

pytestmark = [pytest.mark.openstack, pytest.mark.slow, pytest.mark.timeout(900)]

JSON = "application/occi+json"
SSH = {"type": "inbound", "protocol": "tcp", "port": "22", "range": "10.0.0.0/8"}
PING = {"type": "inbound", "protocol": "icmp"}
DNS_OUT = {"type": "outbound", "protocol": "udp", "port": "53"}


def url(server_url: str, location: str) -> str:
    return location if location.startswith("http") else server_url + location


def post(server_url: str, collection: str, kind: str, attributes: dict[str, Any],
         mixins: list[str] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"kind": kind, "attributes": attributes}
    if mixins:
        body["mixins"] = mixins
    return httpx.post(server_url + collection, json=body, timeout=WAIT,
                      headers={"Content-Type": JSON, "Accept": JSON})


def pool_child(server_url: str) -> dict[str, Any]:
    """The floatingippool child standing for the seeded external network, from /-/."""
    document = httpx.get(server_url + "/-/", headers={"Accept": JSON}, timeout=30).json()
    children = [m for m in document.get("mixins", []) if FLOATINGIPPOOL in m.get("depends", [])]
    assert [c["title"] for c in children] == ["Floating IP pool public"], children
    return children[0]


def settled(occi: Client, location: str) -> Any:
    """The entity's attributes once its create has ended (in error or not)."""
    try:
        occi.wait_for(location, timeout=WAIT)
    except errors.BackendError:
        pass
    return occi.get(location).attributes


def neutron_ip(conn: Any, address: str) -> Any | None:
    found = list(conn.network.ips(floating_ip_address=address))
    return found[0] if found else None


def neutron_group(conn: Any, entity_id: str) -> Any | None:
    found = [g for g in conn.network.security_groups() if f"occipy:entity={entity_id}" in (g.description or "")]
    return conn.network.get_security_group(found[0].id) if found else None


def rules_of(group: Any) -> set[tuple[Any, ...]]:
    return {(r["direction"], r["ethertype"], r["protocol"], r["port_range_min"], r["port_range_max"],
             r["remote_ip_prefix"]) for r in group.security_group_rules}


def occipy_network(occi: Client, conn: Any) -> tuple[str, Any]:
    """A network made through occipy, and its Neutron subnet."""
    net = occi.create("network", mixins=["ipnetwork"], attributes={"occi.network.allocation": "dynamic"})
    network = occi.wait_for(net, state="active", timeout=WAIT)
    cidr = str(network.attributes["occi.network.address"])
    subnet = next(s for s in conn.network.subnets() if s.cidr == cidr)
    return net, subnet


def test_floating_ips_are_neutron_floating_ips(openstack_cloud: OpenStackCloud, openstack_conn: Any,
                                               tmp_path: Path) -> None:
    conn = openstack_conn
    public = ipaddress.ip_network("203.0.113.0/24")
    with serving(openstack_cloud, tmp_path / "data") as (server, occi):
        # -- the pool is discoverable as a provider child of floatingippool
        child = pool_child(server.url)
        pool = child["scheme"] + child["term"]
        assert IPRESERVATION in child["applies"] and NETWORKINTERFACE in child["applies"]

        # -- reserve: an address the cloud picks (from the pool child) and one given (default pool)
        picked = occi.create(IPRESERVATION, mixins=[pool], title="picked")
        attributes = occi.wait_for(picked, timeout=WAIT).attributes
        address = str(attributes["occi.ipreservation.address"])
        assert ipaddress.ip_address(address) in public
        assert attributes["occi.ipreservation.used"] is False
        assert attributes["occi.ipreservation.state"] == "inactive"
        ip = neutron_ip(conn, address)
        assert ip is not None and ip.floating_network_id == openstack_cloud.external_network["id"]
        assert f"occipy:entity={attributes['occi.core.id']}" in ip.description
        assert ip.port_id is None

        given = occi.create(IPRESERVATION, attributes={"occi.ipreservation.address": "203.0.113.200"})
        assert occi.wait_for(given, timeout=WAIT).attributes["occi.ipreservation.address"] == "203.0.113.200"
        assert neutron_ip(conn, "203.0.113.200") is not None

        # -- the same address again: Neutron refuses, the entity ends in error with its message
        taken = post(server.url, "/ipreservation/", IPRESERVATION, {"occi.ipreservation.address": "203.0.113.200"})
        assert taken.status_code in (201, 502), taken.text
        if taken.status_code == 201:
            location = taken.headers["Location"]
            failed = settled(occi, location)
            assert failed["occi.ipreservation.state"] == "error"
            assert "already allocated" in str(failed["occi.ipreservation.state.message"])
            occi.delete(location)
        assert len([i for i in conn.network.ips() if i.floating_ip_address == "203.0.113.200"]) == 1

        # -- a compute on an occipy network that a router connects to the pool (as the project would)
        net, subnet = occipy_network(occi, conn)
        router = conn.network.create_router(name="egi-test-router", external_gateway_info={
            "network_id": openstack_cloud.external_network["id"]})
        conn.network.add_interface_to_router(router, subnet=subnet.id)
        image = next(m.type_id for m in occi.discover(refresh=True).mixins.values() if m.title == "occipy-tiny")
        vm = occi.create("compute", mixins=[image], links=[net],
                         attributes={"occi.compute.cores": 1, "occi.compute.memory": 0.25})
        compute = occi.wait_for(vm, state="active", timeout=WAIT)
        plugged = next(link.location for link in compute.links if link.kind == NETWORKINTERFACE)
        occi.wait_for(plugged, state="active", timeout=WAIT)
        server_id = next(iter(conn.compute.servers())).id
        port = next(p for p in conn.network.ports(device_id=server_id))

        # -- attach: the floating IP is associated with the compute's port
        nic = occi.link(vm, picked, kind=NETWORKINTERFACE)
        link = occi.wait_for(nic, state="active", timeout=WAIT)
        assert link.attributes["occi.networkinterface.address"] == address
        ip = conn.network.get_ip(ip.id)
        assert ip.port_id == port.id and ip.fixed_ip_address == port.fixed_ips[0]["ip_address"]
        eventually(lambda: occi.get(picked).attributes["occi.ipreservation.used"] is True, 30,
                   "the reservation to show used")
        assert occi.get(picked).attributes["occi.ipreservation.state"] == "active"

        # -- an associated reservation cannot be attached again: 409 before any cloud call
        with pytest.raises(errors.Conflict, match="already associated"):  # 409
            occi.link(vm, picked, kind=NETWORKINTERFACE)
        assert conn.network.get_ip(ip.id).port_id == port.id  # the refusal changed nothing

        # -- detach: disassociated in Neutron, the reservation unused again
        occi.delete(nic)
        assert conn.network.get_ip(ip.id).port_id is None
        eventually(lambda: occi.get(picked).attributes["occi.ipreservation.used"] is False, 30,
                   "the reservation to show unused")

        # -- delete: released in Neutron
        occi.delete(picked)
        occi.delete(given)
        assert conn.network.find_ip(ip.id) is None and neutron_ip(conn, "203.0.113.200") is None

        occi.delete(vm)
        conn.network.remove_interface_from_router(router, subnet=subnet.id)
        occi.delete(net)
        assert occi.list_entities(IPRESERVATION) == []


def test_security_groups_are_neutron_security_groups(openstack_cloud: OpenStackCloud, openstack_conn: Any,
                                                     tmp_path: Path) -> None:
    conn = openstack_conn
    with serving(openstack_cloud, tmp_path / "data") as (server, occi):
        # -- create with rules: the Neutron group, its rules, Neutron's default egress kept
        sg = occi.create(SECURITYGROUP, attributes={"occi.securitygroup.rules": [SSH, PING]}, title="web")
        group_entity = occi.wait_for(sg, timeout=WAIT).attributes
        assert group_entity["occi.securitygroup.state"] == "active"
        group = neutron_group(conn, str(group_entity["occi.core.id"]))
        assert group is not None and group.name.startswith("web-")
        assert rules_of(group) == {
            ("ingress", "IPv4", "tcp", 22, 22, "10.0.0.0/8"), ("ingress", "IPv4", "icmp", None, None, None),
            ("egress", "IPv4", None, None, None, None), ("egress", "IPv6", None, None, None, None)}

        # -- update: the rule set is replaced (an outbound rule replaces the default egress)
        occi.update(sg, attributes={"occi.securitygroup.rules": [PING, DNS_OUT]})
        updated = occi.wait_for(sg, timeout=WAIT)
        assert updated.attributes["occi.securitygroup.state"] == "active"
        assert rules_of(conn.network.get_security_group(group.id)) == {
            ("ingress", "IPv4", "icmp", None, None, None), ("egress", "IPv4", "udp", 53, 53, None)}

        # -- link to a compute (with a port): the server's port carries the group
        net, _subnet = occipy_network(occi, conn)
        image = next(m.type_id for m in occi.discover(refresh=True).mixins.values() if m.title == "occipy-tiny")
        vm = occi.create("compute", mixins=[image], links=[net],
                         attributes={"occi.compute.cores": 1, "occi.compute.memory": 0.25})
        compute = occi.wait_for(vm, state="active", timeout=WAIT)
        occi.wait_for(next(link.location for link in compute.links if link.kind == NETWORKINTERFACE),
                      state="active", timeout=WAIT)
        server_id = next(iter(conn.compute.servers())).id
        link = occi.link(vm, sg, kind=SECURITYGROUPLINK)
        assert occi.wait_for(link, state="active", timeout=WAIT).attributes["occi.securitygrouplink.state"] == "active"
        ports = list(conn.network.ports(device_id=server_id))
        assert ports and all(group.id in p.security_group_ids for p in ports)
        assert group.name in {g["name"] for g in conn.compute.get_server(server_id).security_groups or ()}
        marks = conn.compute.get_server_metadata(server_id).metadata
        assert marks[f"occipy:securitygroup:{group.id}"] == occi.get(link).attributes["occi.core.id"]

        # -- unlink: off the ports again
        occi.delete(link)
        assert all(group.id not in p.security_group_ids for p in conn.network.ports(device_id=server_id))
        assert f"occipy:securitygroup:{group.id}" not in conn.compute.get_server_metadata(server_id).metadata

        # -- bad input: the model refuses it (4xx) before the cloud sees it
        bad_rule = post(server.url, "/securitygroup/", SECURITYGROUP,
                        {"occi.securitygroup.rules": [{"type": "sideways", "protocol": "tcp"}]})
        assert bad_rule.status_code == 400 and "rule 0" in bad_rule.text
        bad_address = post(server.url, "/ipreservation/", IPRESERVATION, {"occi.ipreservation.address": "nowhere"})
        assert 400 <= bad_address.status_code < 500, bad_address.text
        bad_pool = post(server.url, "/ipreservation/", IPRESERVATION, {},
                        mixins=["http://occipy.org/occi/floatingippool#nosuchpool"])
        assert 400 <= bad_pool.status_code < 500, bad_pool.text
        # ... and what only Neutron refuses (a protocol it does not know) ends the entity in error
        refused = post(server.url, "/securitygroup/", SECURITYGROUP,
                       {"occi.securitygroup.rules": [{"type": "inbound", "protocol": "carrier-pigeon"}]})
        assert refused.status_code in (201, 502), refused.text
        if refused.status_code == 201:
            failed = settled(occi, refused.headers["Location"])
            assert failed["occi.securitygroup.state"] == "error"
            assert "carrier-pigeon" in str(failed["occi.securitygroup.state.message"])
            occi.delete(refused.headers["Location"])

        # -- delete: gone from Neutron
        occi.delete(sg)
        assert conn.network.find_security_group(group.id) is None
        occi.delete(vm)
        occi.delete(net)
        assert [g.name for g in conn.network.security_groups(project_id=openstack_cloud.project_id)] == ["default"]


def test_lost_floating_ips_and_groups_are_swept_at_start(openstack_cloud: OpenStackCloud, openstack_conn: Any,
                                                        tmp_path: Path) -> None:
    # What a crash between Neutron's create and occipy's write leaves: objects marked with entity ids
    # that no entity has. occipy's start-up sweep (inventory) deletes them; unmarked objects stay.
    net = openstack_conn.network
    pool = openstack_cloud.external_network["id"]
    lost_ip = net.create_ip(floating_network_id=pool, description="occipy:entity=urn:uuid:lost-ip")
    lost_group = net.create_security_group(name="lost", description="occipy:entity=urn:uuid:lost-group")
    foreign_ip = net.create_ip(floating_network_id=pool, description="not occipy's")
    with serving(openstack_cloud, tmp_path / "data"):
        eventually(lambda: net.find_ip(lost_ip.id) is None and net.find_security_group(lost_group.id) is None,
                   WAIT, "the lost floating IP and security group to be deleted")
        assert net.find_ip(foreign_ip.id) is not None

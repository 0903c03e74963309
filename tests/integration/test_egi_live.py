"""EGI / rOCCI extensions realised (docs/extensions.md "EGI"): security groups, their links, floating IPs.

On the simulated cloud (HTTP, the SDK): a security group's rules reach the cloud and change live,
a securitygrouplink applies it to a compute, an ipreservation reserves an address that a
networkinterface attaches (`used`). On libvirt (qemu:///system, marker `libvirt`): the group is an
nwfilter, the link puts it into the compute's filter that its NIC references, a rule change
redefines the filter; libvirt has no floating IPs, so ipreservation is not offered (501).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from occipy import errors
from occipy.client import Client
from occipy.model.catalogue import NETWORKINTERFACE
from occipy.model.extensions.egi import FLOATINGIPPOOL, IPRESERVATION, SECURITYGROUP, SECURITYGROUPLINK
from tests.integration.conftest import LiveServer, start_server

SSH = [{"type": "inbound", "protocol": "tcp", "port": "22", "range": "10.0.0.0/8"}]
PING = {"type": "inbound", "protocol": "icmp"}


def eventually(check: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("egi"))
    yield live
    live.stop()


def test_security_groups_on_the_simulated_cloud(server: LiveServer) -> None:
    with Client(server.url, media_type="json", timeout=30) as occi:
        group = occi.create(SECURITYGROUP, attributes={"occi.securitygroup.rules": SSH}, title="ssh")
        assert occi.get(group).attributes["occi.securitygroup.state"] == "active"
        vm = occi.create("compute")
        occi.wait_for(vm, state="active", timeout=10, interval=0.05)
        link = occi.link(vm, group, kind=SECURITYGROUPLINK)
        assert occi.get(link).attributes["occi.securitygrouplink.state"] == "active"
        updated = occi.update(group, attributes={"occi.securitygroup.rules": [*SSH, PING]})
        assert updated.attributes["occi.securitygroup.rules"] == [*SSH, PING]
        assert updated.attributes["occi.securitygroup.state"] == "active"
        # A rule the model refuses never reaches the cloud (400 naming the rule and key).
        bad = httpx.post(group if group.startswith("http") else server.url + group, json={"kind": SECURITYGROUP, "attributes": {
            "occi.securitygroup.rules": [{"type": "sideways", "protocol": "tcp"}]}},
            headers={"Content-Type": "application/occi+json"})
        assert bad.status_code == 400 and "rule 0" in bad.text
        occi.delete(group)
        with pytest.raises(errors.NotFound):
            occi.get(link)
        occi.delete(vm)


def test_floating_ips_on_the_simulated_cloud(server: LiveServer) -> None:
    with Client(server.url, media_type="json", timeout=30) as occi:
        # The pool is discoverable as a provider child of floatingippool (rOCCI-server, ooi).
        children = [m for m in occi.discover(refresh=True).mixins.values() if FLOATINGIPPOOL in m.depends]
        assert [(c.term, c.title) for c in children] == [("public", "Floating IP pool public (192.0.2.0/24)")]
        from_child = occi.create(IPRESERVATION, mixins=[children[0].type_id])
        assert str(occi.get(from_child).attributes["occi.ipreservation.address"]).startswith("192.0.2.")
        occi.delete(from_child)
        reservation = occi.create(IPRESERVATION, mixins=[FLOATINGIPPOOL])
        attributes = occi.get(reservation).attributes
        address = attributes["occi.ipreservation.address"]
        assert address.startswith("192.0.2.") and attributes["occi.ipreservation.used"] is False
        taken = httpx.post(server.url + "/ipreservation/", json={"kind": IPRESERVATION, "attributes": {
            "occi.ipreservation.address": address}}, headers={"Content-Type": "application/occi+json"})
        assert taken.status_code in (201, 502)  # the cloud refuses a reserved address ...
        if taken.status_code == 201:  # ... as a failed creation: the entity is in error, with a message
            location = taken.headers["Location"].removeprefix(server.url)
            assert "already reserved" in str(occi.get(location).attributes["occi.ipreservation.state.message"])
            occi.delete(location)
        vm = occi.create("compute")
        occi.wait_for(vm, state="active", timeout=10, interval=0.05)
        nic = occi.link(vm, reservation, kind=NETWORKINTERFACE)
        assert occi.get(nic).attributes["occi.networkinterface.address"] == address
        occi.trigger(reservation, "up")
        after = occi.get(reservation).attributes
        assert after["occi.ipreservation.used"] is True and after["occi.ipreservation.state"] == "active"
        occi.delete(vm)
        occi.delete(reservation)


# ---- libvirt ------------------------------------------------------------------------------------------


@pytest.mark.libvirt
@pytest.mark.slow
def test_security_groups_are_nwfilters_on_libvirt(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.integration.test_libvirt_live import libvirt_server

    options = {"network_prefix": "10.216.0.0/16", "shutdown_timeout": "20", "reconcile_interval": "2"}
    with libvirt_server(tmp_path_factory, "egi", options) as live, \
            Client(live.url, media_type="json", timeout=60) as occi:
        document = httpx.get(live.url + "/-/", headers={"Accept": "application/occi+json"}).json()
        found = {c["scheme"] + c["term"] for group in ("kinds", "mixins") for c in document.get(group, [])}
        assert SECURITYGROUP in found and IPRESERVATION not in found and FLOATINGIPPOOL not in found
        refused = httpx.post(live.url + "/ipreservation/", json={"kind": IPRESERVATION, "attributes": {}},
                             headers={"Content-Type": "application/occi+json"})
        assert refused.status_code == 501

        net = occi.create("network", mixins=["ipnetwork"], attributes={"occi.network.allocation": "dynamic"})
        occi.wait_for(net, state="active", timeout=30)
        vm = occi.create("compute", mixins=["os_tpl#occipy-guest"], links=[net],
                         attributes={"occi.compute.cores": 1, "occi.compute.memory": 0.25})
        occi.wait_for(vm, state="active", timeout=60, interval=0.1)
        group = occi.create(SECURITYGROUP, attributes={"occi.securitygroup.rules": SSH}, title="ssh")
        occi.wait_for(group, state="active", timeout=30, interval=0.1)
        conn = live.conn
        filters = [name for name in conn.listNWFilters() if name.startswith(live.prefix + "sg-")]
        assert len(filters) == 1
        assert "dstportstart='22'" in conn.nwfilterLookupByName(filters[0]).XMLDesc(0)

        link = occi.link(vm, group, kind=SECURITYGROUPLINK)
        occi.wait_for(link, state="active", timeout=30, interval=0.1)
        dom = conn.lookupByName(next(d for d in live.ours()[0]))
        composite = f"{live.prefix}c-{dom.UUIDString()}"
        assert f"filterref filter='{composite}'" in dom.XMLDesc(0)  # the running guest's NIC
        assert f"filter='{filters[0]}'" in conn.nwfilterLookupByName(composite).XMLDesc(0)
        bindings = [b.portDev() for b in conn.listAllNWFilterBindings(0) if b.filterName() == composite]
        assert bindings, "libvirt instantiated the compute's filter on its tap device"

        occi.update(group, attributes={"occi.securitygroup.rules": [*SSH, PING]})
        assert "<icmp" in conn.nwfilterLookupByName(filters[0]).XMLDesc(0)

        occi.delete(link)
        eventually(lambda: "filterref" not in dom.XMLDesc(0), 15, "the NIC to lose the filter")
        assert composite not in conn.listNWFilters()
        occi.delete(group)
        assert not [n for n in conn.listNWFilters() if n.startswith(live.prefix)]
        occi.delete(vm)
        occi.delete(net)
        eventually(lambda: live.ours() == ([], [], []), 60, "libvirt to hold nothing of the test")

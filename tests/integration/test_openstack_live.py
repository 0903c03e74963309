"""The OpenStack driver end to end: `occipy serve --driver openstack` on the real OpenStack that
the suite starts (tests/services/openstack_cloud.py), driven through the HTTP API with the SDK.

A network, a volume and a compute from an image and a flavor with a storagelink and a
networkinterface; stop/start/restart/suspend; save; a stop behind occipy's back; detach; delete
everything, after which the project holds no server, volume, port or network of the test. Then
kill -9 of the server while computes (with ports) and volumes are being created, and again while
they are being deleted: after each restart, counting what nova, cinder and neutron hold, nothing is
left that no entity owns, and at the end nothing at all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from occipy import errors
from occipy.client import Client
from tests.services.openstack_cloud import OpenStackCloud

from .conftest import free_port, wait_until_up

pytestmark = [pytest.mark.openstack, pytest.mark.slow, pytest.mark.timeout(1500)]

T = TypeVar("T")
WAIT = 120.0
JSON = "application/occi+json"


def eventually(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.3) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Occipy:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()


def start_occipy(cloud: OpenStackCloud, data_dir: Path, port: int) -> Occipy:
    """`occipy serve --driver openstack` as a subprocess (so that the test can kill -9 it)."""
    args = [sys.executable, "-m", "occipy", "serve", "--port", str(port), "--data-dir", str(data_dir),
            "--driver", "openstack"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OCCIPY_RECONCILE_INTERVAL="2",
               # the driver's settings through its environment prefix, as an operator would
               OCCIPY_OPENSTACK_CLOUD="occipy", OCCIPY_OPENSTACK_CLOUDS_YAML=str(cloud.clouds_yaml),
               OCCIPY_OPENSTACK_POLL_INTERVAL="1", OCCIPY_OPENSTACK_WAIT_TIMEOUT=str(int(WAIT)))
    log = data_dir.parent / f"server-{port}-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Occipy(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until_up(server.url, timeout=90)
    except RuntimeError:
        server.stop()
        raise RuntimeError(f"occipy serve did not start:\n{log.read_text(errors='replace')[-3000:]}") from None
    return server


@contextmanager
def serving(cloud: OpenStackCloud, data_dir: Path, port: int | None = None) -> Iterator[tuple[Occipy, Client]]:
    server = start_occipy(cloud, data_dir, port or free_port())
    client = Client(server.url, media_type="json", timeout=WAIT)
    try:
        yield server, client
    finally:
        client.close()
        server.stop()


def mixin_titled(occi: Client, parent: str, title: str) -> str:
    """The type id of the template mixin with this title (its term is derived from the cloud's id)."""
    found = [m.type_id for m in occi.discover(refresh=True).mixins.values()
             if m.title == title and any(d.endswith("#" + parent) for d in m.depends)]
    assert len(found) == 1, f"one {parent} titled {title!r}, found {found}"
    return found[0]


@dataclass
class Held:
    """What the test project holds in OpenStack (ids), apart from the seeded network."""

    servers: set[str]
    volumes: set[str]
    ports: set[str]
    networks: set[str]

    @classmethod
    def read(cls, conn: Any, cloud: OpenStackCloud) -> Held:
        return cls(
            servers={s.id for s in conn.compute.servers()},
            volumes={v.id for v in conn.block_storage.volumes()},
            ports={p.id for p in conn.network.ports() if not str(p.device_owner).startswith("network:")},
            networks={n.id for n in conn.network.networks(project_id=cloud.project_id)} - {cloud.network["id"]},
        )

    def count(self) -> dict[str, int]:
        return {"servers": len(self.servers), "volumes": len(self.volumes), "ports": len(self.ports),
                "networks": len(self.networks)}


def entity_ids(conn: Any) -> dict[str, str]:
    """OpenStack object id -> the occipy entity id it carries."""
    marks: dict[str, str] = {}
    for server in conn.compute.servers():
        if server.metadata.get("occipy:entity"):
            marks[server.id] = server.metadata["occipy:entity"]
    for volume in conn.block_storage.volumes():
        if volume.metadata.get("occipy:entity"):
            marks[volume.id] = volume.metadata["occipy:entity"]
    for port in conn.network.ports():
        for word in (port.description or "").split():
            if word.startswith("occipy:entity="):
                marks[port.id] = word.partition("=")[2]
    return marks


def occipy_ids(occi: Client, kind: str) -> dict[str, str]:
    """occi.core.id -> state of every entity of the kind."""
    states = {}
    for entity in occi.list_entities(kind):
        states[str(entity.attributes["occi.core.id"])] = str(
            entity.attributes.get(f"occi.{kind}.state", ""))
    return states


# ---------------------------------------------------------------- the whole lifecycle


def test_full_lifecycle_through_the_http_api(openstack_cloud: OpenStackCloud, openstack_conn: Any,
                                             tmp_path: Path) -> None:
    conn = openstack_conn
    with serving(openstack_cloud, tmp_path / "data") as (server_process, occi):
        image = mixin_titled(occi, "os_tpl", "occipy-tiny")
        flavor = mixin_titled(occi, "resource_tpl", "Flavor m1.tiny: 1 vCPU, 256 MiB RAM, 1 GB disk")

        net = occi.create("network", mixins=["ipnetwork"], attributes={"occi.network.allocation": "dynamic"})
        network = occi.wait_for(net, state="active", timeout=WAIT)
        cidr = str(network.attributes["occi.network.address"])
        assert cidr.startswith("10.128."), cidr
        disk = occi.create("storage", attributes={"occi.storage.size": 1.0})
        occi.wait_for(disk, state="online", timeout=WAIT)

        vm = occi.create("compute", mixins=[image, flavor], links=[disk, net],
                         attributes={"occi.compute.hostname": "occi-vm-1"})
        compute = occi.wait_for(vm, state="active", timeout=WAIT)
        assert (compute.attributes["occi.compute.cores"], compute.attributes["occi.compute.memory"]) == (1, 0.25)
        servers = list(conn.compute.servers())
        assert len(servers) == 1
        server = servers[0]
        assert server.status == "ACTIVE" and server.hostname == "occi-vm-1"
        assert server.metadata["occipy:entity"] == compute.attributes["occi.core.id"]
        assert server.flavor.original_name == "m1.tiny" and server.image.id == openstack_cloud.image["id"]

        links = {link.kind.rpartition("#")[2]: link.location for link in compute.links}
        storagelink = occi.wait_for(links["storagelink"], state="active", timeout=WAIT)
        assert str(storagelink.attributes["occi.storagelink.deviceid"]).startswith("/dev/")
        volume = next(iter(conn.block_storage.volumes()))
        assert volume.status == "in-use" and volume.attachments[0]["server_id"] == server.id
        nic = occi.wait_for(links["networkinterface"], state="active", timeout=WAIT)
        port = conn.network.get_port(next(iter(Held.read(conn, openstack_cloud).ports)))
        assert port.device_id == server.id
        assert nic.attributes["occi.networkinterface.mac"] == port.mac_address
        assert nic.attributes["occi.networkinterface.address"] == port.fixed_ips[0]["ip_address"]

        # -- actions, checked in nova
        def act(action: str, state: str, status: str, method: str | None = None) -> None:
            occi.trigger(vm, action, {"method": method} if method else {})
            occi.wait_for(vm, state=state, timeout=WAIT)
            assert conn.compute.get_server(server.id).status == status, f"{action} {method}"

        act("stop", "inactive", "SHUTOFF", "graceful")
        act("start", "active", "ACTIVE")
        act("restart", "active", "ACTIVE", "cold")
        act("suspend", "suspended", "PAUSED", "suspend")
        act("start", "active", "ACTIVE")

        # -- save: a new image in glance, offered as an os_tpl
        # Raw HTTP: the answer to save renders the new os_tpl mixin, which Client.trigger (expecting
        # the entity) cannot parse.
        saved = httpx.post(vm if vm.startswith("http") else server_process.url + vm, params={"action": "save"},
                           headers={"Content-Type": JSON, "Accept": JSON}, timeout=WAIT,
                           json={"action": "http://schemas.ogf.org/occi/infrastructure/compute/action#save",
                                 "attributes": {"name": "occi-vm-1-saved"}})
        assert saved.status_code == 200, saved.text
        eventually(lambda: [i for i in conn.image.images() if i.name == "occi-vm-1-saved" and i.status == "active"],
                   WAIT, "the saved image in glance")
        eventually(lambda: any(m.title == "occi-vm-1-saved" for m in occi.discover(refresh=True).mixins.values()),
                   WAIT, "the saved image as an os_tpl mixin")
        occi.wait_for(vm, state="active", timeout=WAIT)

        # -- a stop behind occipy's back shows up (the driver polls nova)
        conn.compute.stop_server(server.id)
        eventually(lambda: occi.get(vm).attributes["occi.compute.state"] == "inactive", 30,
                   "the out-of-band stop to show as inactive")
        act("start", "active", "ACTIVE")

        # -- detach the volume
        occi.delete(links["storagelink"])
        with pytest.raises(errors.NotFound):
            occi.get(links["storagelink"])
        assert conn.block_storage.get_volume(volume.id).status == "available"

        # -- delete everything: nothing of the test is left in OpenStack
        occi.delete(vm)
        occi.delete(disk)
        occi.delete(net)
        eventually(lambda: Held.read(conn, openstack_cloud).count() == {
            "servers": 0, "volumes": 0, "ports": 0, "networks": 0}, WAIT, "OpenStack to hold nothing of the test")
        assert occi.list_entities("compute") == []


# ---------------------------------------------------------------- kill -9 during creates and deletes


def test_kill9_during_creates_and_deletes_leaves_no_orphans(openstack_cloud: OpenStackCloud, openstack_conn: Any,
                                                           tmp_path: Path) -> None:
    conn = openstack_conn
    data = tmp_path / "data"
    port = free_port()
    computes, volumes = 4, 4
    with serving(openstack_cloud, data, port) as (server, occi):
        image = mixin_titled(occi, "os_tpl", "occipy-tiny")
        net = occi.create("network", mixins=["ipnetwork"])
        occi.wait_for(net, state="active", timeout=WAIT)
        # -- kill -9 while computes (each with a port) and volumes are being made
        for _ in range(volumes):
            occi.create("storage", attributes={"occi.storage.size": 1.0})
        for _ in range(computes):
            occi.create("compute", mixins=[image], links=[net],
                        attributes={"occi.compute.cores": 1, "occi.compute.memory": 0.25})
        # The first port: the first compute is active and being plugged in, the others are at
        # various steps of their builds.
        eventually(lambda: Held.read(conn, openstack_cloud).ports, 90, "the first port", interval=0.05)
        server.kill9()
    made = Held.read(conn, openstack_cloud)
    print("\nheld in OpenStack at the kill during creates:", made.count())
    assert made.servers and made.ports, "the kill came before servers and ports existed: nothing was tested"

    with serving(openstack_cloud, data, port) as (server, occi):
        # After the restart every object in the cloud belongs to an entity that still has it; the
        # interrupted creates' objects were swept (their entities are in error, without objects).
        def settled() -> bool:
            held = Held.read(conn, openstack_cloud)
            marks = entity_ids(conn)
            alive = {**occipy_ids(occi, "compute"), **occipy_ids(occi, "storage"),
                     **occipy_ids(occi, "networkinterface")}
            orphans = [oid for oid in held.servers | held.volumes | held.ports if marks.get(oid) not in alive]
            busy = [s for s in conn.compute.servers() if s.status not in ("ACTIVE", "ERROR")]
            return not orphans and not busy

        eventually(settled, WAIT, "the cloud to hold only objects that entities own")
        after = Held.read(conn, openstack_cloud)
        computes_listed = occipy_ids(occi, "compute")
        print("held after the restart:", after.count(), "compute states:", sorted(computes_listed.values()))
        assert len(computes_listed) == computes
        active = [e for e, state in computes_listed.items() if state == "active"]
        assert len(after.servers) == len(active), (after.servers, computes_listed)
        marks = entity_ids(conn)
        assert sorted(marks[s] for s in after.servers) == sorted(active)

        # -- kill -9 while everything is being deleted
        locations = [*occi.list_locations("compute"), *occi.list_locations("storage")]
        with httpx.Client(base_url=server.url, timeout=WAIT) as raw:
            for location in locations:  # respond-async: 202 at once, the deletes run in their lanes
                url = location if location.startswith("http") else server.url + location
                response = raw.delete(url, headers={"Prefer": "respond-async", "Accept": JSON})
                assert response.status_code in (200, 202, 204), response.text
        server.kill9()
    during = Held.read(conn, openstack_cloud)
    print("held in OpenStack at the kill during deletes:", during.count())

    with serving(openstack_cloud, data, port) as (_server, occi):
        # D-DELETE-DURABLE: the restarted server finishes every delete it had accepted.
        eventually(lambda: not occi.list_locations("compute") and not occi.list_locations("storage"),
                   WAIT, "the accepted deletes to finish after the restart")
        occi.delete(net)
        eventually(lambda: Held.read(conn, openstack_cloud).count() == {
            "servers": 0, "volumes": 0, "ports": 0, "networks": 0}, WAIT, "OpenStack to hold nothing of the test")

"""The OpenStack driver's listings: what `inventory()` and the polling of `changes()` read.

One listing per resource type (servers, volumes with their attachments, networks with subnets,
ports), turned into marks (`Tagged`) or observations by `_openstack_map.py`. Blocking: the driver
runs these in a worker thread, through `OpenStackOps.guard`. Imports the driver's helpers,
backends.base and the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from occipy.backends import _openstack_map as m
from occipy.backends._openstack_ops import OpenStackOps
from occipy.backends.base import (
    COMPUTE,
    NETWORK,
    NETWORKINTERFACE,
    STORAGE,
    STORAGELINK,
    Observed,
    Ref,
    Tagged,
)

# An observation that says "nova is busy with it": the driver skips such objects this time.
BUSY: Final = Observed(backend_id="", state="busy")


def inventory(ops: OpenStackOps) -> list[Tagged]:
    """Every server, volume, attachment, network and port that carries an entity id."""
    conn = ops.conn()
    key = ops.settings.entity_key
    found: list[Tagged] = []
    for server in conn.compute.servers(details=True):
        entity = (server.metadata or {}).get(key)
        if entity and str(server.status) not in m.GONE_SERVER:
            found.append(Tagged(Ref(COMPUTE, str(server.id)), entity))
    if ops.has_volumes:
        for volume in conn.block_storage.volumes(details=True):
            metadata = volume.metadata or {}
            if str(volume.status) in m.GONE_VOLUME:
                continue
            if metadata.get(key):
                found.append(Tagged(Ref(STORAGE, str(volume.id)), metadata[key]))
            link_entity = metadata.get(ops.mark_key("storagelink"))
            for attachment in volume.attachments or ():
                if link_entity and attachment.get("server_id"):
                    backend_id = f"{attachment['server_id']}/{volume.id}"
                    found.append(Tagged(Ref(STORAGELINK, backend_id), link_entity))
    # Every network and port of the project, not only the tagged ones: the description holds the
    # mark from the start, the tags only from the call after.
    for network in conn.network.networks(project_id=ops.project_id):
        entity = m.decode_tag(key, m.marks_of(network))
        if entity:
            found.append(Tagged(Ref(NETWORK, str(network.id)), entity))
    for port in conn.network.ports(project_id=ops.project_id):
        entity = m.decode_tag(key, m.marks_of(port))
        if entity:
            found.append(Tagged(Ref(NETWORKINTERFACE, str(port.id)), entity))
    return found


def look(ops: OpenStackOps, resources: Sequence[str]) -> dict[Ref, Observed | None]:
    """What the cloud shows now of every object of these types (one listing per type).

    None for objects that are gone (unplugged ports, detached volumes); BUSY for servers nova is
    still working on (their next look decides); objects missing from the result are not listed.
    """
    conn = ops.conn()
    seen: dict[Ref, Observed | None] = {}
    if COMPUTE in resources:
        architectures = ops.architectures()
        for server in conn.compute.servers(details=True):
            ref = Ref(COMPUTE, str(server.id))
            if getattr(server, "task_state", None) or str(server.status) in m.BUSY_SERVER:
                seen[ref] = BUSY
            else:
                seen[ref] = m.server_observed(server, architectures)
    if STORAGE in resources or STORAGELINK in resources:
        for volume in conn.block_storage.volumes(details=True):
            seen[Ref(STORAGE, str(volume.id))] = m.volume_observed(volume)
            for attachment in volume.attachments or ():
                backend_id = f"{attachment.get('server_id')}/{volume.id}"
                seen[Ref(STORAGELINK, backend_id)] = m.storagelink_observed(
                    backend_id, volume, ops.mark_key("mountpoint")
                )
    if NETWORK in resources or NETWORKINTERFACE in resources:
        subnets: list[Any] = list(conn.network.subnets())
        if NETWORK in resources:
            by_network: dict[str, list[Any]] = {}
            for subnet in subnets:
                by_network.setdefault(str(subnet.network_id), []).append(subnet)
            for network in conn.network.networks():
                first = m.first_subnet(by_network.get(str(network.id), []))
                seen[Ref(NETWORK, str(network.id))] = m.network_observed(network, first)
        if NETWORKINTERFACE in resources:
            by_id = {str(s.id): s for s in subnets}
            for port in conn.network.ports():
                seen[Ref(NETWORKINTERFACE, str(port.id))] = m.port_observed(
                    port, by_id, ops.mark_key("interface")
                )
    return seen

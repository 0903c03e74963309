"""The OpenStack driver's listings: what `inventory()` and the polling of `changes()` read.

One listing per resource type (servers, volumes with their attachments, networks with subnets,
ports, floating IPs, security groups), turned into marks (`Tagged`) or observations by `_openstack_map.py`. Blocking: the driver
runs these in a worker thread, through `OpenStackOps.guard`. Imports the driver's helpers,
backends.base and the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from occipy.backends import _openstack_egi as egi
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
from occipy.backends.egi_types import IPRESERVATION, SECURITYGROUP, SECURITYGROUPLINK

# An observation that says "nova is busy with it": the driver skips such objects this time.
BUSY: Final = Observed(backend_id="", state="busy")


def inventory(ops: OpenStackOps) -> list[Tagged]:
    """Every server, volume, attachment, network, port, floating IP (and its association) and
    security group (and its links, in the servers' metadata) that carries an entity id."""
    conn = ops.conn()
    key = ops.settings.entity_key
    found: list[Tagged] = []
    group_prefix = ops.mark_key("securitygroup:")
    for server in conn.compute.servers(details=True):
        metadata = server.metadata or {}
        if str(server.status) in m.GONE_SERVER:
            continue
        if metadata.get(key):
            found.append(Tagged(Ref(COMPUTE, str(server.id)), metadata[key]))
        for name, value in metadata.items():
            if ops.has_security_groups and name.startswith(group_prefix) and value and value != "-":
                found.append(Tagged(Ref(SECURITYGROUPLINK, f"{server.id}/{name[len(group_prefix):]}"), value))
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
    if ops.has_floating_ips:
        for ip in conn.network.ips(project_id=ops.project_id):
            marks = m.marks_of(ip)
            entity = m.decode_tag(key, marks)
            if entity:
                found.append(Tagged(Ref(IPRESERVATION, str(ip.id)), entity))
            link = m.decode_tag(ops.mark_key("link"), marks)
            server_id = (ip.port_details or {}).get("device_id") if ip.port_id else None
            if link and server_id:
                found.append(Tagged(Ref(NETWORKINTERFACE, f"{server_id}/{ip.id}"), link))
    if ops.has_security_groups:
        for group in conn.network.security_groups(project_id=ops.project_id):
            entity = m.decode_tag(key, m.marks_of(group))
            if entity:
                found.append(Tagged(Ref(SECURITYGROUP, str(group.id)), entity))
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
    if IPRESERVATION in resources or NETWORKINTERFACE in resources:
        ips = list(conn.network.ips(project_id=ops.project_id)) if ops.has_floating_ips else []
        ports_by_id = {str(p.id): p for p in conn.network.ports()} if NETWORKINTERFACE in resources and ips else {}
        for ip in ips:
            seen[Ref(IPRESERVATION, str(ip.id))] = egi.ip_observed(ops, ip)
            server_id = (ip.port_details or {}).get("device_id") if ip.port_id else None
            if server_id and NETWORKINTERFACE in resources:
                backend_id = f"{server_id}/{ip.id}"
                seen[Ref(NETWORKINTERFACE, backend_id)] = m.association_observed(
                    backend_id, ip, ports_by_id.get(str(ip.port_id)))
    if SECURITYGROUP in resources and ops.has_security_groups:
        for group in conn.network.security_groups(project_id=ops.project_id):
            seen[Ref(SECURITYGROUP, str(group.id))] = m.group_observed(group)
    return seen

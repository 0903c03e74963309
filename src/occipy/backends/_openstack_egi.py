"""The OpenStack driver's EGI objects on Neutron: floating IPs and security groups (blocking calls).

ipreservation = a floating IP allocated from an external network (the pool); a networkinterface
from a compute to it = the floating IP associated with one of the server's ports (backend id
`SERVER/FLOATINGIP`, the link's mark `<label>:link=ID` in the floating IP's description, written in
the same call as the association). securitygroup = a Neutron security group (rules as in
`_openstack_map.neutron_rules`); securitygrouplink = the group on every port of the server (ports
plugged in later get it too, `OpenStackOps.create_port`), backend id `SERVER/GROUP`, the link's
mark the server metadata `<label>:securitygroup:GROUP`. Each function does what Neutron does at
once; the async driver runs them in worker threads through `OpenStackOps.guard`. Imports
openstacksdk, the driver's helpers, backends.base, egi_types and errors.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Sequence
from typing import Any

import openstack.exceptions as sdk

from occipy.backends import _openstack_map as m
from occipy.backends._openstack_ops import OpenStackOps, _reason, choice_refused
from occipy.backends.base import ACTIVE, INACTIVE, FirewallRule, NetworkInterfaceSpec, Observed
from occipy.backends.egi_types import IpReservationSpec, SecurityGroupLinkSpec, SecurityGroupSpec
from occipy.errors import BackendError

# ---- floating IP pools -------------------------------------------------------------------------------


def pool_of(ops: OpenStackOps, name: str | None) -> Any:
    """The external network of a pool named by a template name (or an id); without a name the
    driver option floating_pool, else the first pool."""
    name = name or ops.settings.floating_pool
    if name is None:
        if not ops.pools:
            raise BackendError(f"{ops.where} has no external network to take floating IPs from")
        return next(iter(ops.pools.values()))
    if name not in ops.pools:
        ops.refresh_pools()
    network = ops.pools.get(name) or next((n for n in ops.pools.values() if str(n.id) == name), None)
    if network is None:
        offered = ", ".join(sorted(ops.pools)) or "none"
        raise BackendError(f"{ops.where} has no floating IP pool {name!r} (pools: {offered})")
    return network


def pool_name(ops: OpenStackOps, network_id: str) -> str | None:
    return next((name for name, n in ops.pools.items() if str(n.id) == network_id), None)


# ---- ipreservation: a floating IP --------------------------------------------------------------------


def floating_ip(ops: OpenStackOps, ip_id: str) -> Any | None:
    try:
        return ops.conn().network.get_ip(ip_id)
    except sdk.NotFoundException:
        return None


def ip_observed(ops: OpenStackOps, ip: Any | None) -> Observed | None:
    return None if ip is None else m.floating_ip_observed(ip, pool_name(ops, str(ip.floating_network_id)))


def create_floating_ip(ops: OpenStackOps, spec: IpReservationSpec) -> str:
    """Allocate a floating IP from the pool (the address asked for, else any), marked with the entity id."""
    pool = pool_of(ops, spec.pool)
    marks = [m.encode_tag(ops.settings.entity_key, spec.entity_id)] if spec.entity_id else []
    attrs: dict[str, Any] = {"floating_network_id": pool.id, "description": m.describe(marks)}
    if spec.address:
        attrs["floating_ip_address"] = str(ipaddress.ip_address(spec.address))
    net = ops.conn().network
    with choice_refused(ops.where, spec.address,
                        "a floating IP's address (Neutron policy create_floatingip:floating_ip_address)",
                        "leave occi.ipreservation.address unset and the cloud picks one"):
        ip = net.create_ip(**attrs)
    try:
        net.set_tags(ip, [ops.settings.label, *marks])
    except BaseException:
        with contextlib.suppress(Exception):
            net.delete_ip(ip.id, ignore_missing=True)
        raise
    return str(ip.id)


def delete_floating_ip(ops: OpenStackOps, ip_id: str) -> None:
    """Release the floating IP (Neutron disassociates it first)."""
    ops.conn().network.delete_ip(ip_id, ignore_missing=True)


# ---- networkinterface to an ipreservation: the association ---------------------------------------------


def server_ports(ops: OpenStackOps, server_id: str) -> list[Any]:
    """The ports plugged into the server, oldest first."""
    ports = [p for p in ops.conn().network.ports(device_id=server_id)
             if str(p.device_owner or "").startswith("compute:")]
    return sorted(ports, key=lambda p: (str(p.created_at or ""), str(p.id)))


def _without_link_mark(ops: OpenStackOps, ip: Any) -> list[str]:
    prefix = ops.mark_key("link") + "="
    return [w for w in str(ip.description or "").split() if not w.startswith(prefix)]


def associate(ops: OpenStackOps, spec: NetworkInterfaceSpec, ip: Any) -> str:
    """Associate the floating IP with the first of the server's ports (IPv4 fixed addresses) that a
    router connects to its pool; the link's mark goes into the description in the same call."""
    if ops.server(spec.compute_id) is None:
        raise BackendError(f"compute {spec.compute_id} does not exist in {ops.where}")
    address = ip.floating_ip_address
    if ip.port_id:
        port = ops.port(str(ip.port_id))
        owner = f" of compute {port.device_id}" if port is not None and port.device_id else ""
        raise BackendError(f"floating IP {address} is already associated with port {ip.port_id}{owner}: "
                           "delete that networkinterface first")
    ports = server_ports(ops, spec.compute_id)
    if not ports:
        raise BackendError(f"compute {spec.compute_id} has no network interface: Neutron associates a "
                           "floating IP with a port, so link the compute to a network first")
    marks = _without_link_mark(ops, ip)
    if spec.entity_id:
        marks.append(m.encode_tag(ops.mark_key("link"), spec.entity_id))
    description = m.describe(marks)
    net = ops.conn().network
    refusals = []
    for port in ports:
        for fixed in port.fixed_ips or ():
            fixed_address = fixed.get("ip_address")
            if not fixed_address or ipaddress.ip_address(fixed_address).version != 4:
                continue
            try:
                net.update_ip(ip, port_id=port.id, fixed_ip_address=fixed_address, description=description)
            except (sdk.NotFoundException, sdk.BadRequestException) as exc:
                # 404 "External network ... is not reachable from subnet ...": no router: the next port
                refusals.append(f"port {port.id}: {_reason(exc)}")
                continue
            return f"{spec.compute_id}/{ip.id}"
    raise BackendError(
        f"no interface of compute {spec.compute_id} can take floating IP {address}: Neutron needs a port "
        f"on a subnet that a router connects to the pool's network ({'; '.join(refusals) or 'no IPv4 port'})")


def association_observed(ops: OpenStackOps, backend_id: str) -> Observed | None:
    ip = floating_ip(ops, backend_id.partition("/")[2])
    port = ops.port(str(ip.port_id)) if ip is not None and ip.port_id else None
    return m.association_observed(backend_id, ip, port)


def disassociate(ops: OpenStackOps, backend_id: str) -> None:
    """Take the floating IP off the server's port (and drop the link's mark); a floating IP that
    another server's port holds now is left alone."""
    server_id, _, ip_id = backend_id.partition("/")
    ip = floating_ip(ops, ip_id)
    if ip is None:
        return
    attrs: dict[str, Any] = {"description": m.describe(_without_link_mark(ops, ip))}
    if ip.port_id:
        port = ops.port(str(ip.port_id))
        if port is not None and port.device_id and str(port.device_id) != server_id:
            return
        attrs["port_id"] = None
    if attrs["description"] != str(ip.description or "") or "port_id" in attrs:
        ops.conn().network.update_ip(ip, **attrs)


# ---- securitygroup: a Neutron security group ------------------------------------------------------------


def security_group(ops: OpenStackOps, group_id: str) -> Any | None:
    try:
        return ops.conn().network.get_security_group(group_id)
    except sdk.NotFoundException:
        return None


def group_observed(ops: OpenStackOps, group_id: str) -> Observed | None:
    group = security_group(ops, group_id)
    return None if group is None else m.group_observed(group)


def create_security_group(ops: OpenStackOps, spec: SecurityGroupSpec) -> str:
    """A group with the entity's mark and the rules (checked before anything is made)."""
    wanted = m.neutron_rules(spec.rules)
    marks = [m.encode_tag(ops.settings.entity_key, spec.entity_id)] if spec.entity_id else []
    net = ops.conn().network
    group = net.create_security_group(name=spec.name, description=m.describe(marks))
    try:
        net.set_tags(group, [ops.settings.label, *marks])
        _set_rules(ops, str(group.id), wanted)
    except BaseException:
        with contextlib.suppress(Exception):
            net.delete_security_group(group.id, ignore_missing=True)
        raise
    return str(group.id)


def update_rules(ops: OpenStackOps, group_id: str, rules: Sequence[FirewallRule]) -> None:
    """Replace the group's rules: delete those not wanted, add those missing (the rest stay)."""
    _set_rules(ops, group_id, m.neutron_rules(rules))


def _set_rules(ops: OpenStackOps, group_id: str, wanted: frozenset[m.NeutronRule]) -> None:
    group = security_group(ops, group_id)
    if group is None:
        raise BackendError(f"security group {group_id} does not exist in {ops.where}")
    have = m.group_rules(group)
    net = ops.conn().network
    for key, rule_ids in have.items():
        if key not in wanted:
            for rule_id in rule_ids:
                net.delete_security_group_rule(rule_id, ignore_missing=True)
    for direction, ethertype, number, first, last, prefix in sorted(wanted - set(have), key=str):
        net.create_security_group_rule(
            security_group_id=group_id, direction=direction, ether_type=ethertype,
            protocol=None if number is None else m.PROTOCOL_NAMES.get(number, str(number)), port_range_min=first, port_range_max=last,
            remote_ip_prefix=prefix)


def delete_security_group(ops: OpenStackOps, group_id: str) -> None:
    """Take the group off every port of the project and the links' marks off the servers, then
    delete it (Neutron refuses to delete a group that a port uses)."""
    if security_group(ops, group_id) is None:
        return
    net = ops.conn().network
    for port in net.ports(project_id=ops.project_id):
        groups = [str(g) for g in port.security_group_ids or ()]
        if group_id in groups:
            net.update_port(port, security_group_ids=[g for g in groups if g != group_id])
    key = link_key(ops, group_id)
    for server in ops.conn().compute.servers(details=True):
        if key in (server.metadata or {}):
            with contextlib.suppress(sdk.NotFoundException):
                ops.conn().compute.delete_server_metadata(server, [key])
    net.delete_security_group(group_id, ignore_missing=True)


# ---- securitygrouplink: the group on the server's ports ---------------------------------------------------


def link_key(ops: OpenStackOps, group_id: str) -> str:
    """The server metadata key that marks a securitygrouplink (its value: the link's entity id)."""
    return ops.mark_key(f"securitygroup:{group_id}")


def linked_groups(ops: OpenStackOps, server: Any) -> list[str]:
    """The groups that securitygrouplinks put on the server (from its metadata)."""
    prefix = ops.mark_key("securitygroup:")
    return [key[len(prefix):] for key in (server.metadata or {}) if key.startswith(prefix)]


def _set_port_group(ops: OpenStackOps, server_id: str, group_id: str, present: bool) -> None:
    net = ops.conn().network
    for port in server_ports(ops, server_id):
        groups = [str(g) for g in port.security_group_ids or ()]
        if present and group_id not in groups:
            net.update_port(port, security_group_ids=[*groups, group_id])
        elif not present and group_id in groups:
            net.update_port(port, security_group_ids=[g for g in groups if g != group_id])


def link_group(ops: OpenStackOps, spec: SecurityGroupLinkSpec) -> str:
    """Mark the server (metadata first: a crash leaves a mark the sweep finds), then put the group
    on each of its ports."""
    server = ops.server(spec.compute_id)
    if server is None or str(server.status) in m.GONE_SERVER:
        raise BackendError(f"compute {spec.compute_id} does not exist in {ops.where}")
    if security_group(ops, spec.group_id) is None:
        raise BackendError(f"security group {spec.group_id} does not exist in {ops.where}")
    key = link_key(ops, spec.group_id)
    if key in (server.metadata or {}):
        raise BackendError(f"compute {spec.compute_id} is already in security group {spec.group_id}")
    compute = ops.conn().compute
    compute.set_server_metadata(server, **{key: m.check_metadata(spec.entity_id or "-")})
    try:
        _set_port_group(ops, spec.compute_id, spec.group_id, True)
    except BaseException:
        with contextlib.suppress(Exception):
            _set_port_group(ops, spec.compute_id, spec.group_id, False)
            compute.delete_server_metadata(server, [key])
        raise
    return f"{spec.compute_id}/{spec.group_id}"


def grouplink_observed(ops: OpenStackOps, backend_id: str) -> Observed | None:
    """`active` while every port of the server carries the group (a server without ports too: the
    ports it gets will); None once the mark, the server or the group is gone."""
    server_id, _, group_id = backend_id.partition("/")
    server = ops.server(server_id) if group_id else None
    if server is None or str(server.status) in m.GONE_SERVER or link_key(ops, group_id) not in (server.metadata or {}):
        return None
    if security_group(ops, group_id) is None:
        return None
    lacking = [str(p.id) for p in server_ports(ops, server_id) if group_id not in (p.security_group_ids or ())]
    if lacking:
        return Observed(backend_id, INACTIVE, f"ports {', '.join(lacking)} do not carry the security group")
    return Observed(backend_id, ACTIVE)


def unlink_group(ops: OpenStackOps, backend_id: str) -> None:
    server_id, _, group_id = backend_id.partition("/")
    server = ops.server(server_id) if group_id else None
    if server is None:
        return
    _set_port_group(ops, server_id, group_id, False)
    if link_key(ops, group_id) in (server.metadata or {}):
        with contextlib.suppress(sdk.NotFoundException):
            ops.conn().compute.delete_server_metadata(server, [link_key(ops, group_id)])

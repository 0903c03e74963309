"""The OpenStack driver's translations: SDK objects to observations, and the entity marks.

Pure functions over the attributes of openstacksdk resources (servers, volumes, networks,
subnets, ports, images, flavors, floating IPs, security groups and their rules), like libcloud's
private `_to_node()` translators. No calls to the cloud. Imports backends.base, egi_types and the
standard library; it reads SDK objects only by their attributes (the objects come from
`_openstack_ops.py` and `_openstack_egi.py`).
"""

from __future__ import annotations

import ipaddress
import math
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Final

from occipy.backends.base import (
    ACTIVE,
    ERROR,
    FLAVOUR,
    IMAGE,
    INACTIVE,
    ONLINE,
    SUSPENDED,
    ComputeFacts,
    FirewallRule,
    NetworkFacts,
    NetworkInterfaceFacts,
    Observed,
    StorageFacts,
    StorageLinkFacts,
    Template,
)
from occipy.backends.egi_types import POOL, IpReservationFacts, SecurityGroupFacts

# Nova server status -> OCCI compute state (GFD.224 §3.1). ooi: ACTIVE active, SUSPENDED
# suspended, everything else inactive; here PAUSED (suspend to RAM) is suspended too, ERROR is
# error, and the transient states map to where the server is while they last.
SERVER_STATES: Final[Mapping[str, str]] = {
    "ACTIVE": ACTIVE,
    "SHUTOFF": INACTIVE,
    "STOPPED": INACTIVE,
    "SUSPENDED": SUSPENDED,
    "PAUSED": SUSPENDED,
    "SHELVED": INACTIVE,
    "SHELVED_OFFLOADED": INACTIVE,
    "BUILD": INACTIVE,
    "REBUILD": INACTIVE,
    "REBOOT": ACTIVE,
    "HARD_REBOOT": ACTIVE,
    "RESIZE": ACTIVE,
    "VERIFY_RESIZE": ACTIVE,
    "REVERT_RESIZE": ACTIVE,
    "MIGRATING": ACTIVE,
    "PASSWORD": ACTIVE,
    "RESCUE": INACTIVE,
    "ERROR": ERROR,
    "UNKNOWN": ERROR,
}
GONE_SERVER: Final = frozenset({"DELETED", "SOFT_DELETED"})
# Statuses in which nova is still working on the server (observations are not final).
BUSY_SERVER: Final = frozenset(
    {"BUILD", "REBUILD", "REBOOT", "HARD_REBOOT", "RESIZE", "REVERT_RESIZE", "MIGRATING", "PASSWORD"}
)
# Cinder volume statuses that are failures (the rest are online: cinder has no offline state).
VOLUME_ERRORS: Final = frozenset(
    {"error", "error_deleting", "error_backing-up", "error_restoring", "error_extending", "error_managing"}
)
GONE_VOLUME: Final = frozenset({"deleting", "deleted"})
ARCHITECTURES: Final[Mapping[str, str]] = {
    "x86_64": "x64",
    "amd64": "x64",
    "x64": "x64",
    "i386": "x86",
    "i686": "x86",
    "x86": "x86",
}
# Nova's own limit for metadata values and Neutron's for tags.
MAX_MARK: Final = 255


# ---- the marks that tie cloud objects to entities ----------------------------------------------


def encode_tag(prefix: str, value: str) -> str:
    """A Neutron tag `<prefix>=<value>`, percent-encoding what a tag filter cannot hold (`,`)."""
    tag = f"{prefix}={urllib.parse.quote(value, safe=':/@!$&()*+;=-._~')}"
    if len(tag) > MAX_MARK:
        raise ValueError(f"{value!r} is too long to be kept in an OpenStack tag ({MAX_MARK} characters)")
    return tag


def decode_tag(prefix: str, tags: Sequence[str]) -> str | None:
    """The value of the first tag `<prefix>=...`, decoded."""
    for tag in tags or ():
        if tag.startswith(prefix + "="):
            return urllib.parse.unquote(tag[len(prefix) + 1 :])
    return None


def marks_of(resource: Any) -> list[str]:
    """A Neutron object's marks: the words of its description (written with the object, so a
    crash cannot separate them) and its tags (added right after, for `--tags` filters)."""
    return [*str(getattr(resource, "description", None) or "").split(), *(getattr(resource, "tags", None) or ())]


def describe(marks: Sequence[str]) -> str:
    """The description that holds these marks (Neutron allows 255 characters)."""
    text = " ".join(marks)
    if len(text) > MAX_MARK:
        raise ValueError(f"the marks {text!r} do not fit an OpenStack description ({MAX_MARK} characters)")
    return text


def check_metadata(value: str) -> str:
    if len(value) > MAX_MARK:
        raise ValueError(f"{value!r} is too long to be kept in OpenStack metadata ({MAX_MARK} characters)")
    return value


# ---- templates ------------------------------------------------------------------------------


def image_template(image: Any) -> Template:
    """A Glance image as an os_tpl template: named by its id (ooi's term), titled by its name."""
    name = str(image.name or image.id)
    architecture = ARCHITECTURES.get(str(getattr(image, "architecture", None) or "").lower())
    return Template(family=IMAGE, name=str(image.id), title=name, architecture=architecture)


def flavor_template(flavor: Any) -> Template:
    """A Nova flavor as a resource_tpl template: named by its (unique) name."""
    vcpus, ram, disk = int(flavor.vcpus or 0), int(flavor.ram or 0), int(flavor.disk or 0)
    return Template(
        family=FLAVOUR,
        name=str(flavor.name),
        title=f"Flavor {flavor.name}: {vcpus} vCPU, {ram} MiB RAM, {disk} GB disk",
        cores=vcpus or None,
        memory_gib=ram / 1024 if ram else None,
        disk_gib=float(disk) if disk else None,
    )


# ---- observations -------------------------------------------------------------------------------


def server_observed(server: Any, architectures: Mapping[str, str]) -> Observed | None:
    """A Nova server as a compute; None when it is being deleted or gone."""
    status = str(server.status or "UNKNOWN").upper()
    if status in GONE_SERVER:
        return None
    state = SERVER_STATES.get(status, ERROR)
    message = None
    if state == ERROR:
        fault = getattr(server, "fault", None) or {}
        detail = fault.get("message") if isinstance(fault, Mapping) else None
        message = f"nova reports {status}" + (f": {detail}" if detail else "")
    flavor = server.flavor
    vcpus = getattr(flavor, "vcpus", None) if flavor is not None else None
    ram = getattr(flavor, "ram", None) if flavor is not None else None
    image = server.image
    image_id = getattr(image, "id", None) if image is not None else None
    return Observed(
        backend_id=str(server.id),
        state=state,
        message=message,
        facts=ComputeFacts(
            cores=int(vcpus) if vcpus else None,
            memory_gib=int(ram) / 1024 if ram else None,
            architecture=architectures.get(str(image_id)) if image_id else None,
            hostname=getattr(server, "hostname", None) or None,
        ),
    )


def volume_observed(volume: Any) -> Observed | None:
    """A Cinder volume as a storage: online unless cinder reports a failure."""
    status = str(volume.status or "")
    if status in GONE_VOLUME:
        return None
    if status in VOLUME_ERRORS:
        return Observed(
            str(volume.id), ERROR, f"cinder reports {status}", StorageFacts(size_gib=float(volume.size or 0))
        )
    return Observed(str(volume.id), ONLINE, None, StorageFacts(size_gib=float(volume.size or 0) or None))


def network_observed(network: Any, subnet: Any | None) -> Observed:
    """A Neutron network and its (first IPv4) subnet; `admin_state_up` false is inactive (down)."""
    status = str(network.status or "")
    if status == "ERROR":
        state = ERROR
    elif not network.is_admin_state_up or status != "ACTIVE":
        state = INACTIVE
    else:
        state = ACTIVE
    facts = NetworkFacts()
    if subnet is not None:
        facts = NetworkFacts(
            address=str(subnet.cidr),
            gateway=subnet.gateway_ip or None,
            allocation="dynamic" if subnet.is_dhcp_enabled else "static",
        )
    return Observed(str(network.id), state, None if state != ERROR else "neutron reports ERROR", facts)


def first_subnet(subnets: Sequence[Any]) -> Any | None:
    """The subnet that stands for a network's address range: the first IPv4 one, else the first."""
    ordered = sorted(subnets, key=lambda s: (int(s.ip_version or 4) != 4, str(s.created_at or ""), str(s.id)))
    return ordered[0] if ordered else None


def attachment_of(volume: Any, server_id: str) -> Mapping[str, Any] | None:
    for attachment in volume.attachments or ():
        if attachment.get("server_id") == server_id:
            return attachment  # type: ignore[no-any-return]
    return None


def storagelink_observed(backend_id: str, volume: Any, mountpoint_key: str) -> Observed | None:
    """An attachment of a volume to a server (`server_id/volume_id`); None when not attached."""
    server_id = backend_id.partition("/")[0]
    attachment = attachment_of(volume, server_id)
    if attachment is None or str(volume.status) in GONE_VOLUME:
        return None
    state = ERROR if str(volume.status) in VOLUME_ERRORS else ACTIVE
    metadata = volume.metadata or {}
    return Observed(
        backend_id,
        state,
        None if state != ERROR else f"cinder reports {volume.status}",
        StorageLinkFacts(device=attachment.get("device") or None, mountpoint=metadata.get(mountpoint_key)),
    )


def port_observed(port: Any, subnets: Mapping[str, Any], interface_key: str) -> Observed | None:
    """A Neutron port plugged into a server as a networkinterface; None once it is unplugged."""
    if not port.device_id or not str(port.device_owner or "").startswith("compute:"):
        return None
    status = str(port.status or "")
    state = ACTIVE if status == "ACTIVE" else ERROR if status == "ERROR" else INACTIVE
    address = gateway = allocation = None
    for fixed in port.fixed_ips or ():
        subnet = subnets.get(fixed.get("subnet_id", ""))
        address = fixed.get("ip_address")
        if subnet is not None:
            gateway = subnet.gateway_ip or None
            allocation = "dynamic" if subnet.is_dhcp_enabled else "static"
        break
    return Observed(
        str(port.id),
        state,
        None if state != ERROR else "neutron reports ERROR",
        NetworkInterfaceFacts(
            interface=decode_tag(interface_key, marks_of(port)) or tap_name(str(port.id)),
            mac=str(port.mac_address).lower() if port.mac_address else None,
            address=address,
            gateway=gateway,
            allocation=allocation,
        ),
    )


def tap_name(port_id: str) -> str:
    """The host-side device nova and neutron give a port (`tap` + 11 characters of its id)."""
    return f"tap{port_id[:11]}"


def gib(size: float) -> int:
    """Cinder sizes are whole GiB: round up."""
    return max(1, math.ceil(size - 1e-9))


# ---- EGI: floating IPs (ipreservation) and security groups -------------------------------------------


def pool_template(network: Any, name: str) -> Template:
    """An external network as a floating IP pool, named by its name (ooi's pool term)."""
    return Template(family=POOL, name=name, title=f"Floating IP pool {network.name or name}")


def floating_ip_observed(ip: Any, pool: str | None) -> Observed:
    """A Neutron floating IP as an ipreservation: `active` while associated with a port (`used`),
    `inactive` while only reserved, `error` when neutron says ERROR. Neutron's own status (DOWN
    until an L3 agent has set the address up, ACTIVE after) is not the reservation's state: a cloud
    without an agent on the path would show every reservation inactive for ever."""
    status = str(ip.status or "")
    used = bool(ip.port_id)
    state = ERROR if status == "ERROR" else ACTIVE if used else INACTIVE
    return Observed(
        str(ip.id),
        state,
        "neutron reports ERROR" if state == ERROR else None,
        IpReservationFacts(address=str(ip.floating_ip_address) if ip.floating_ip_address else None, used=used,
                           pool=pool),
    )


def association_observed(backend_id: str, ip: Any, port: Any | None) -> Observed | None:
    """A networkinterface from a server to a floating IP (`SERVER/FLOATINGIP`): the floating IP
    associated with one of the server's ports; None once it is not."""
    server_id = backend_id.partition("/")[0]
    if ip is None or port is None or not ip.port_id or str(port.id) != str(ip.port_id) \
            or str(port.device_id or "") != server_id:
        return None
    status = str(ip.status or "")
    return Observed(
        backend_id,
        ERROR if status == "ERROR" else ACTIVE,
        "neutron reports ERROR" if status == "ERROR" else None,
        NetworkInterfaceFacts(
            interface=tap_name(str(port.id)),
            mac=str(port.mac_address).lower() if port.mac_address else None,
            address=str(ip.floating_ip_address) if ip.floating_ip_address else None,
            allocation="static",
        ),
    )


# Neutron's protocol names (neutron_lib.constants.IP_PROTOCOL_MAP) and their numbers: rules are
# compared by number, so "tcp" and "6" are one rule, as for Neutron.
PROTOCOL_NUMBERS: Final[Mapping[str, int]] = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2, "ipip": 4,
    "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "icmpv6": 58, "ipv6-nonxt": 59, "ipv6-opts": 60,
    "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136,
    "vrrp": 112,
}
# The name Neutron is given for a protocol number (it lists the rule with the name it was given).
PROTOCOL_NAMES: Final[Mapping[int, str]] = {n: name for name, n in PROTOCOL_NUMBERS.items() if name != "icmpv6"}
# Neutron takes port ranges for these protocols only.
PORTED: Final = frozenset({6, 17, 33, 132, 136})
DIRECTIONS: Final[Mapping[str, str]] = {"inbound": "ingress", "outbound": "egress"}
# One Neutron rule as occipy compares them: (direction, ethertype, protocol number, first port,
# last port, remote prefix); None: any.
NeutronRule = tuple[str, str, int | None, int | None, int | None, str | None]
# Neutron gives every new group these two rules: everything goes out.
DEFAULT_EGRESS: Final[frozenset[NeutronRule]] = frozenset(
    {("egress", "IPv4", None, None, None, None), ("egress", "IPv6", None, None, None, None)})


def _protocol_number(protocol: str) -> int:
    if protocol.isdigit() and 0 <= int(protocol) <= 255:
        return int(protocol)
    number = PROTOCOL_NUMBERS.get(protocol)
    if number is None:
        raise ValueError(f"Neutron security groups take {', '.join(sorted(PROTOCOL_NUMBERS))} or a protocol "
                         f"number 0-255, not {protocol!r}")
    return number


def _prefix(remote: str | None, version: int) -> str | None:
    """A remote prefix as Neutron compares it: the network address form; anywhere is None."""
    if remote is None:
        return None
    network = ipaddress.ip_network(remote, strict=False)
    if network.version != version:
        raise ValueError(f"the range {remote} is not an IPv{version} prefix")
    return None if network.prefixlen == 0 else str(network)


def neutron_rule(rule: FirewallRule) -> NeutronRule:
    """A firewall rule as a Neutron security group rule; ValueError for what Neutron cannot take."""
    direction = DIRECTIONS.get(rule.direction)
    if direction is None:
        raise ValueError(f"a security rule goes inbound or outbound, not {rule.direction!r}")
    if rule.ipversion not in (4, 6):
        raise ValueError(f"IP version {rule.ipversion} is neither 4 nor 6")
    number = _protocol_number(rule.protocol)
    first = last = None
    if rule.ports is not None:
        if number not in PORTED:
            raise ValueError(f"Neutron takes port ranges for tcp, udp, sctp, dccp and udplite only, not for "
                             f"protocol {rule.protocol}")
        first, last = rule.ports
    return direction, f"IPv{rule.ipversion}", number, first, last, _prefix(rule.remote, rule.ipversion)


def neutron_rules(rules: Sequence[FirewallRule]) -> frozenset[NeutronRule]:
    """The Neutron rules of a group with these rules: Neutron's default egress stays while no rule is
    outbound (traffic no rule accepts is then refused inbound only, D-EXT-EGI-REALISE)."""
    wanted = frozenset(neutron_rule(rule) for rule in rules)
    if not any(rule[0] == "egress" for rule in wanted):
        wanted |= DEFAULT_EGRESS
    return wanted


def rule_key(rule: Mapping[str, Any]) -> NeutronRule | None:
    """A rule Neutron lists, as compared; None for rules not made of ranges (remote groups)."""
    if rule.get("remote_group_id") or rule.get("remote_address_group_id"):
        return None
    protocol = rule.get("protocol")
    number = None if protocol in (None, "", "any") else _protocol_number(str(protocol).lower())
    version = 6 if rule.get("ethertype") == "IPv6" else 4
    first, last = rule.get("port_range_min"), rule.get("port_range_max")
    if number not in PORTED:
        first = last = None  # ICMP type and code: occipy's rules have none
    elif first is not None or last is not None:
        first, last = int(first if first is not None else 1), int(last if last is not None else 65535)
    return (str(rule.get("direction")), f"IPv{version}", number, first, last,
            _prefix(rule.get("remote_ip_prefix"), version))


def firewall_rule(key: NeutronRule, names: Mapping[NeutronRule, str]) -> FirewallRule | None:
    """A compared Neutron rule as a firewall rule (named as Neutron lists its protocol); None for
    Neutron's any-protocol rules, which occipy's rule format cannot say."""
    direction, ethertype, number, first, last, prefix = key
    if number is None:
        return None
    ports = (first, last) if first is not None and last is not None else None
    return FirewallRule(direction="inbound" if direction == "ingress" else "outbound",
                        protocol=names.get(key, str(number)), ports=ports, remote=prefix,
                        ipversion=6 if ethertype == "IPv6" else 4)


def group_rules(group: Any) -> dict[NeutronRule, list[str]]:
    """The group's rules as compared -> the Neutron rule ids (skipping remote-group rules)."""
    found: dict[NeutronRule, list[str]] = {}
    for rule in getattr(group, "security_group_rules", None) or ():
        try:
            key = rule_key(rule)
        except ValueError:
            continue  # a protocol name newer than this table: not occipy's rule
        if key is not None:
            found.setdefault(key, []).append(str(rule.get("id")))
    return found


def group_observed(group: Any) -> Observed:
    """A Neutron security group as a securitygroup: its rules (Neutron's default egress hidden while
    the group has no other outbound rule)."""
    keys = set(group_rules(group))
    if {k for k in keys if k[0] == "egress"} == DEFAULT_EGRESS:
        keys -= DEFAULT_EGRESS
    names = {key: str(rule.get("protocol")) for rule in getattr(group, "security_group_rules", None) or ()
             if (key := _safe_key(rule)) is not None}
    rules = [r for key in sorted(keys, key=str) if (r := firewall_rule(key, names)) is not None]
    return Observed(str(group.id), ACTIVE, None, SecurityGroupFacts(rules=tuple(rules)))


def _safe_key(rule: Mapping[str, Any]) -> NeutronRule | None:
    try:
        return rule_key(rule)
    except ValueError:
        return None

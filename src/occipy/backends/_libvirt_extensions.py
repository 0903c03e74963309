"""The libvirt driver's extension types: readings of domains (monitoring) and security groups as nwfilters.

Readings come from `virConnectGetAllDomainStats` (CPU time, balloon, interface and block
counters; docs/monitoring.md). A security group is an nwfilter `<prefix>sg-<name>` holding its
accept rules; linking it to a compute puts it into the compute's own filter `<prefix>c-<uuid>`,
which every NIC of the domain references and which ends with the drops: inbound traffic no rule
accepts is dropped, outbound too once a linked group has outbound rules (docs/drivers/libvirt.md).
libvirt re-instantiates a redefined filter on every running guest that uses it, so a rule change
applies at once. Everything here blocks: run it in a worker thread. Imports libvirt, backends.base,
backends.egi_types and the driver's base.
"""

from __future__ import annotations

import ipaddress
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any, Final

import libvirt

from occipy.backends._libvirt_base import _LibvirtBase
from occipy.backends._libvirt_local import slug
from occipy.backends.base import ACTIVE, FirewallRule, Observed, Reading
from occipy.backends.egi_types import SecurityGroupFacts, SecurityGroupLinkSpec, SecurityGroupSpec
from occipy.errors import BackendError

_NO_FILTER: Final = frozenset({libvirt.VIR_ERR_NO_NWFILTER, libvirt.VIR_ERR_NO_DOMAIN})
# nwfilter protocol elements per IP version (libvirt formatnwfilter: tcp, udp, sctp, icmp, all,
# and their -ipv6 forms); IANA numbers as the model accepts them.
_PROTOCOLS: Final = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "sctp": "sctp", "132": "sctp",
                     "icmp": "icmp", "1": "icmp", "icmpv6": "icmp", "ipv6-icmp": "icmp", "58": "icmp"}
_WITH_PORTS: Final = frozenset({"tcp", "udp", "sctp"})
ACCEPT_PRIORITY: Final = 500
DROP_PRIORITY: Final = 900
STATS: Final = (libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_BALLOON
                | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_INTERFACE | libvirt.VIR_DOMAIN_STATS_BLOCK)


def _gone(exc: libvirt.libvirtError) -> bool:
    return exc.get_error_code() in _NO_FILTER


class _ExtensionOps(_LibvirtBase):
    """Blocking operations for readings and security groups, shared by LibvirtDriver."""

    _nwfilters: bool = True  # open() finds out (LibvirtDriver)

    # ---- readings (Samples) -----------------------------------------------------------------------

    def _sample_compute(self, backend_id: str) -> Reading | None:
        dom = self._dom(backend_id, required=False)
        if dom is None:
            return None
        now = time.time()
        try:
            records = self._conn().domainListGetStats([dom], STATS, 0)
        except libvirt.libvirtError as exc:
            if _gone(exc):
                return None
            records = []
        stats: dict[str, Any] = records[0][1] if records else {}
        state = stats.get("state.state")
        if state is None:
            state = dom.state(0)[0]
        running = state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED)
        info = dom.info()  # [state, max memory KiB, memory KiB, vCPUs, CPU time ns]
        cpu_ns = stats.get("cpu.time", info[4])
        # balloon.rss: what the guest's QEMU process holds; balloon.current: what it was given.
        used_kib = stats.get("balloon.rss") or stats.get("balloon.current")
        total_kib = stats.get("balloon.maximum") or info[1]
        return Reading(
            taken=now, running=running, cpu_seconds=cpu_ns / 1e9, cpus=stats.get("vcpu.current") or info[3],
            memory_used_bytes=used_kib * 1024.0 if used_kib and running else (0.0 if not running else None),
            memory_total_bytes=total_kib * 1024.0 if total_kib else None,
            disk_read_bytes=_total(stats, "block", "rd.bytes"), disk_write_bytes=_total(stats, "block", "wr.bytes"),
            net_rx_bytes=_total(stats, "net", "rx.bytes"), net_tx_bytes=_total(stats, "net", "tx.bytes"))

    def _sample_storage(self, backend_id: str) -> Reading | None:
        vol = self._vol(backend_id, required=False)
        if vol is None:
            return None
        return Reading(taken=time.time(), running=backend_id not in self._offline)

    # ---- security groups (nwfilters) -----------------------------------------------------------------

    def _group_name(self, spec: SecurityGroupSpec) -> str:
        taken = set(self._conn().listNWFilters())
        return self._free_name(taken, f"sg-{slug(spec.name, 30)}")  # "<name_prefix>sg-<name>"

    def _create_securitygroup(self, spec: SecurityGroupSpec) -> str:
        name = self._group_name(spec)
        flt = self._conn().nwfilterDefineXML(group_xml(name, None, spec.rules))
        return str(flt.UUIDString())

    def _filter(self, backend_id: str) -> Any | None:
        try:
            return self._conn().nwfilterLookupByUUIDString(backend_id)
        except libvirt.libvirtError as exc:
            if _gone(exc):
                return None
            raise

    def _observe_securitygroup(self, backend_id: str) -> Observed | None:
        flt = self._filter(backend_id)
        if flt is None:
            return None
        return Observed(backend_id, ACTIVE, None, SecurityGroupFacts(rules=parse_group(flt.XMLDesc(0))))

    def _update_securitygroup(self, backend_id: str, rules: Sequence[FirewallRule]) -> None:
        flt = self._filter(backend_id)
        if flt is None:
            raise BackendError(f"security group {backend_id} does not exist (any more) in libvirt")
        # Redefining a filter re-instantiates it on every running guest that uses it.
        self._conn().nwfilterDefineXML(group_xml(flt.name(), backend_id, rules))
        for composite in self._composites_using(flt.name()):
            self._redefine_composite(composite, None, None)  # outbound drops follow the new rules

    def _delete_securitygroup(self, backend_id: str) -> None:
        flt = self._filter(backend_id)
        if flt is None:
            return
        for composite in self._composites_using(flt.name()):
            self._redefine_composite(composite, None, flt.name())
        try:
            flt.undefine()
        except libvirt.libvirtError as exc:
            if not _gone(exc):
                raise

    # ---- the compute's own filter ---------------------------------------------------------------------

    def _composite_name(self, dom_uuid: str) -> str:
        return f"{self.settings.name_prefix}c-{dom_uuid}"

    def _composites_using(self, group: str) -> list[str]:
        prefix = f"{self.settings.name_prefix}c-"
        found = []
        for name in self._conn().listNWFilters():
            if name.startswith(prefix):
                flt = self._conn().nwfilterLookupByName(name)
                if group in composite_groups(flt.XMLDesc(0)):
                    found.append(name)
        return found

    def _composite_groups(self, name: str) -> list[str]:
        try:
            return composite_groups(self._conn().nwfilterLookupByName(name).XMLDesc(0))
        except libvirt.libvirtError as exc:
            if _gone(exc):
                return []
            raise

    def _redefine_composite(self, name: str, add: str | None, remove: str | None) -> list[str]:
        """Define the compute's filter with its groups (plus `add`, minus `remove`); undefine it when empty."""
        conn = self._conn()
        groups = [g for g in self._composite_groups(name) if g != remove]
        if add is not None and add not in groups:
            groups.append(add)
        outbound = False
        for group in groups:
            try:
                outbound |= any(r.direction == "outbound" for r in parse_group(conn.nwfilterLookupByName(group).XMLDesc(0)))
            except libvirt.libvirtError as exc:
                if not _gone(exc):
                    raise
        if groups:
            conn.nwfilterDefineXML(composite_xml(name, groups, drop_outbound=outbound))
        return groups

    def _create_securitygrouplink(self, spec: SecurityGroupLinkSpec) -> str:
        dom = self._dom(spec.compute_id)
        group = self._filter(spec.group_id)
        if group is None:
            raise BackendError(f"security group {spec.group_id} does not exist in libvirt")
        name = self._composite_name(spec.compute_id)
        if group.name() in self._composite_groups(name):
            raise BackendError(f"compute {spec.compute_id} is already in security group {group.name()}")
        self._redefine_composite(name, group.name(), None)
        self._reference_composite(dom, name)
        return f"{spec.compute_id}/sg-{spec.group_id}"

    def _reference_composite(self, dom: Any, name: str | None) -> None:
        """Every NIC of the domain references the compute's filter (None: no filter)."""
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
        root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        for nic in root.findall("./devices/interface"):
            current = nic.find("filterref")
            if (current.get("filter") if current is not None else None) == name:
                continue
            if current is not None:
                nic.remove(current)
            if name is not None:
                ET.SubElement(nic, "filterref", filter=name)
            dom.updateDeviceFlags(ET.tostring(nic, encoding="unicode"), flags)

    def _has_nwfilters(self) -> bool:
        """Whether the connection has the nwfilter driver (test:/// has not)."""
        try:
            self._conn().listNWFilters()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                return False
            raise
        return True

    def _reference_if_grouped(self, compute_id: str) -> None:
        """A NIC plugged in after a group was linked gets the compute's filter too."""
        if not self._nwfilters:
            return
        name = self._composite_name(compute_id)
        if self._composite_groups(name):
            dom = self._dom(compute_id, required=False)
            if dom is not None:
                self._reference_composite(dom, name)

    def _observe_securitygrouplink(self, backend_id: str) -> Observed | None:
        compute_id, _, group_part = backend_id.partition("/sg-")
        group = self._filter(group_part)
        if group is None or self._dom(compute_id, required=False) is None:
            return None
        if group.name() not in self._composite_groups(self._composite_name(compute_id)):
            return None
        return Observed(backend_id, ACTIVE)

    def _delete_securitygrouplink(self, backend_id: str) -> None:
        compute_id, _, group_part = backend_id.partition("/sg-")
        group = self._filter(group_part)
        name = self._composite_name(compute_id)
        remaining = self._redefine_composite(name, None, group.name() if group is not None else None)
        if remaining:
            return
        dom = self._dom(compute_id, required=False)
        if dom is not None:
            self._reference_composite(dom, None)
        try:
            self._conn().nwfilterLookupByName(name).undefine()
        except libvirt.libvirtError as exc:
            if not _gone(exc):
                raise


# ---- XML -------------------------------------------------------------------------------------------------


def _total(stats: dict[str, Any], family: str, counter: str) -> float | None:
    count = stats.get(f"{family}.count")
    if not isinstance(count, int):
        return None
    return float(sum(stats.get(f"{family}.{n}.{counter}", 0) for n in range(count)))


def _rule_element(rule: FirewallRule) -> ET.Element:
    protocol = _PROTOCOLS.get(rule.protocol)
    if protocol is None:
        raise BackendError(f"libvirt's nwfilter cannot filter protocol {rule.protocol!r}: use tcp, udp, sctp or icmp")
    element_name = protocol if rule.ipversion == 4 else f"{protocol}-ipv6"
    attributes: dict[str, str] = {}
    if rule.ports is not None and protocol in _WITH_PORTS:
        attributes["dstportstart"], attributes["dstportend"] = str(rule.ports[0]), str(rule.ports[1])
    if rule.remote is not None:
        network = ipaddress.ip_network(rule.remote, strict=False)
        side = "src" if rule.direction == "inbound" else "dst"
        attributes[f"{side}ipaddr"] = str(network.network_address)
        attributes[f"{side}ipmask"] = str(network.prefixlen)
    rule_element = ET.Element("rule", action="accept", direction="in" if rule.direction == "inbound" else "out",
                              priority=str(ACCEPT_PRIORITY))
    ET.SubElement(rule_element, element_name, attributes)
    return rule_element


def group_xml(name: str, uuid: str | None, rules: Sequence[FirewallRule]) -> str:
    """A security group's filter: one accept rule per rule (libvirt tracks the connections)."""
    root = ET.Element("filter", name=name, chain="root")
    if uuid is not None:
        ET.SubElement(root, "uuid").text = uuid
    for rule in rules:
        root.append(_rule_element(rule))
    return ET.tostring(root, encoding="unicode")


def parse_group(xml: str) -> tuple[FirewallRule, ...]:
    """The rules of a filter made by `group_xml`."""
    rules = []
    reverse = {v: k for k, v in _PROTOCOLS.items() if not k.isdigit() and k not in ("icmpv6", "ipv6-icmp")}
    for rule in ET.fromstring(xml).findall("rule"):
        for element in rule:
            protocol = element.tag.partition("-ipv6")[0]
            ports = None
            first = element.get("dstportstart")
            if first:
                ports = (int(first), int(element.get("dstportend") or first))
            direction = "inbound" if rule.get("direction") == "in" else "outbound"
            side = "src" if direction == "inbound" else "dst"
            remote = None
            if element.get(f"{side}ipaddr"):
                remote = str(ipaddress.ip_network(f"{element.get(f'{side}ipaddr')}/{element.get(f'{side}ipmask')}",
                                                  strict=False))
            rules.append(FirewallRule(direction=direction, protocol=reverse.get(protocol, protocol), ports=ports,
                                      remote=remote, ipversion=6 if element.tag.endswith("-ipv6") else 4))
    return tuple(rules)


def composite_xml(name: str, groups: Sequence[str], *, drop_outbound: bool) -> str:
    """A compute's filter: its groups' rules, DHCP answers, then the drops (IPv4 and IPv6)."""
    root = ET.Element("filter", name=name, chain="root")
    for group in groups:
        ET.SubElement(root, "filterref", filter=group)
    # The guest's DHCP client must hear the server's answer (udp 67 -> 68).
    dhcp = ET.SubElement(root, "rule", action="accept", direction="in", priority=str(ACCEPT_PRIORITY))
    ET.SubElement(dhcp, "udp", srcportstart="67", dstportstart="68")
    if not drop_outbound:
        # Everything may leave; accepting it also lets the answers back in (connection tracking).
        for family in ("all", "all-ipv6"):
            accept = ET.SubElement(root, "rule", action="accept", direction="out", priority=str(ACCEPT_PRIORITY))
            ET.SubElement(accept, family)
    directions = ["in", "out"] if drop_outbound else ["in"]
    for direction in directions:
        for family in ("all", "all-ipv6"):
            drop = ET.SubElement(root, "rule", action="drop", direction=direction, priority=str(DROP_PRIORITY))
            ET.SubElement(drop, family)
    return ET.tostring(root, encoding="unicode")


def composite_groups(xml: str) -> list[str]:
    return [ref.get("filter", "") for ref in ET.fromstring(xml).findall("filterref")]


__all__ = ["_ExtensionOps", "composite_xml", "group_xml", "parse_group"]

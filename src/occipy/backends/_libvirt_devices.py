"""The libvirt driver's storage, network and link operations: volumes, NAT networks, disks, NICs.

Synchronous: `LibvirtDriver` runs each in a worker thread. Maps GFD.224 §3.2-§3.4 to pool
volumes, libvirt networks (with DHCP reservations) and hot-plugged virtio devices named by user
aliases, and lists what carries an occipy entity id (`_inventory`); docs/drivers/libvirt.md has
the table. Imports libvirt, the driver's base and helpers, backends.base and errors.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import uuid as uuidlib
from collections.abc import Callable, Sequence
from typing import Any

import libvirt

from occipy.backends import _libvirt_xml as lx
from occipy.backends._libvirt_base import (
    ALIAS_PREFIX,
    _address_and_gateway,
    _code,
    _free_mac,
    _is_address,
    _LibvirtBase,
    _missing,
    _network_config,
    _positive_float,
)
from occipy.backends._libvirt_local import TAG_SEPARATOR, decode_tag, encode_tag
from occipy.backends.base import (
    ACTIVE,
    COMPUTE,
    ERROR,
    INACTIVE,
    NETWORK,
    NETWORKINTERFACE,
    OFFLINE,
    ONLINE,
    STORAGE,
    STORAGELINK,
    NetworkFacts,
    NetworkInterfaceFacts,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    Ref,
    StorageFacts,
    StorageLinkFacts,
    StorageLinkSpec,
    StorageSpec,
    Tagged,
)
from occipy.errors import BackendError

_MAC_RE = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}")


class _DeviceOps(_LibvirtBase):
    """Storage, network, storagelink and networkinterface operations."""

    def _create_storage(self, spec: StorageSpec) -> str:
        size = _positive_float("size", spec.size_gib)
        pool = self._pool()
        # The entity id goes into the name: volumes have no metadata (see encode_tag).
        tag = encode_tag(spec.entity_id) if spec.entity_id else None
        suffix = f"{TAG_SEPARATOR}{tag}.qcow2" if tag else ".qcow2"
        name = self._free_name(set(pool.listVolumes()), spec.name, suffix) + suffix
        pool.createXML(lx.volume_xml(name, int(size * lx.BYTES_PER_GIB), "qcow2"), 0)
        return f"{self.settings.pool}/{name}"

    def _observe_storage(self, backend_id: str) -> Observed | None:
        volume = self._vol(backend_id, required=False)
        if volume is None:
            return None
        try:
            info = lx.parse_volume(volume.XMLDesc(0))
        except libvirt.libvirtError as exc:
            if _missing(exc):
                return None
            raise
        state = OFFLINE if backend_id in self._offline else ONLINE
        return Observed(
            backend_id, state, None, StorageFacts(size_gib=round(info.capacity / lx.BYTES_PER_GIB, 6))
        )

    def _storage_action(self, backend_id: str, action: str) -> None:
        volume = self._vol(backend_id)
        if action == "online":
            self._offline.discard(backend_id)
            return
        users = self._attachments(volume.path())
        if users:
            raise BackendError(
                f"storage {backend_id} is attached to compute {users[0][0].name()}; "
                "delete the storagelink before taking it offline"
            )
        self._offline.add(backend_id)  # occipy refuses to attach an offline volume

    def _update_storage(self, backend_id: str, size_gib: float) -> None:
        volume = self._vol(backend_id)
        wanted = int(_positive_float("size", size_gib) * lx.BYTES_PER_GIB)
        current = int(volume.info()[1])
        if wanted < current:
            raise BackendError(
                f"storage {backend_id} cannot shrink from {current / lx.BYTES_PER_GIB:g} GiB "
                f"to {wanted / lx.BYTES_PER_GIB:g} GiB: volumes only grow"
            )
        if wanted == current:
            return
        for dom, disk in self._attachments(volume.path()):
            if dom.isActive() and disk.target in {d.target for d in lx.parse_domain(dom.XMLDesc(0)).disks}:
                # In use by a running guest: QEMU resizes it and tells the guest (virtio capacity change).
                dom.blockResize(disk.target, wanted, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
                return
        volume.resize(wanted, 0)

    def _delete_storage(self, backend_id: str) -> None:
        volume = self._vol(backend_id, required=False)
        if volume is None:
            return
        path = str(volume.path())
        self._unplug_everywhere(lambda info: [d for d in info.disks if d.source == path])
        try:
            volume.delete(0)
        except libvirt.libvirtError as exc:
            if not _missing(exc):
                raise

    def _used_ranges(self, conn: Any) -> list[lx.IPNetwork]:
        used = []
        for net in conn.listAllNetworks(0):
            info = lx.parse_network(net.XMLDesc(0))
            if info.network is not None:
                used.append(info.network)
        return used

    def _create_network(self, spec: NetworkSpec) -> str:
        if spec.vlan is not None:
            raise BackendError("libvirt NAT networks have no 802.1q VLAN tagging: leave the VLAN unset")
        if spec.allocation not in (None, "dynamic", "static"):
            raise BackendError(f"allocation must be dynamic or static, got {spec.allocation!r}")
        conn = self._conn()
        name = self._free_name({n.name() for n in conn.listAllNetworks(0)}, spec.name)
        dhcp = spec.allocation != "static"
        if spec.address:
            network, gateway = _address_and_gateway(spec.address, spec.gateway)
            return self._define_network(conn, name, network, gateway, dhcp, spec.entity_id)
        # No range given: take the next free /24 of network_prefix; a range the host already uses
        # (libvirt: "Network is already in use by interface ...") makes us try the next one.
        used = self._used_ranges(conn)
        tried = 0
        for candidate in self.settings.network_prefix.subnets(
            new_prefix=24 if self.settings.network_prefix.version == 4 else 64
        ):
            if any(candidate.overlaps(u) for u in used):
                continue
            gateway = (
                _address_and_gateway(str(candidate), spec.gateway)[1]
                if spec.gateway
                else candidate.network_address + 1
            )
            try:
                return self._define_network(conn, name, candidate, gateway, dhcp, spec.entity_id)
            except libvirt.libvirtError as exc:
                tried += 1
                if "in use" not in (exc.get_error_message() or "") or tried >= 8:
                    raise
        raise BackendError(f"no free /24 left in network_prefix {self.settings.network_prefix}")

    def _define_network(
        self, conn: Any, name: str, network: lx.IPNetwork, gateway: lx.IPAddress, dhcp: bool, entity_id: str
    ) -> str:
        net = conn.networkDefineXML(lx.network_xml(name, network, gateway, dhcp, entity_id=entity_id))
        try:
            net.create()
        except libvirt.libvirtError:
            with contextlib.suppress(libvirt.libvirtError):
                net.undefine()
            raise
        return str(net.UUIDString())

    def _observe_network(self, backend_id: str) -> Observed | None:
        net = self._net(backend_id, required=False)
        if net is None:
            return None
        try:
            info = lx.parse_network(net.XMLDesc(0))
            active = bool(net.isActive())
        except libvirt.libvirtError as exc:
            if _missing(exc):
                return None
            raise
        facts = NetworkFacts(
            address=str(info.network) if info.network is not None else None,
            gateway=str(info.gateway) if info.gateway is not None else None,
            allocation=("dynamic" if info.dhcp else "static") if info.network is not None else None,
        )
        return Observed(backend_id, ACTIVE if active else INACTIVE, None, facts)

    def _network_action(self, backend_id: str, action: str) -> None:
        net = self._net(backend_id)
        if action == "up" and not net.isActive():
            net.create()
        elif action == "down" and net.isActive():
            net.destroy()

    def _delete_network(self, backend_id: str) -> None:
        net = self._net(backend_id, required=False)
        if net is None:
            return
        name = str(net.name())
        self._unplug_everywhere(lambda info: [i for i in info.interfaces if i.network == name])
        try:
            if net.isActive():
                net.destroy()
            net.undefine()
        except libvirt.libvirtError as exc:
            if not _missing(exc):
                raise

    def _unplug_everywhere(self, select: Callable[[lx.DomainInfo], Sequence[lx.Disk | lx.Interface]]) -> None:
        """Detach the selected devices from every domain, running and defined.

        Deleting a storage or network takes its links along (core.md: a resource's links go with
        it), also when the service deletes both ends at once and our delete runs first.
        """
        for dom in self._conn().listAllDomains(0):
            try:
                config, live = self._definitions(dom)
                plan = [(d, libvirt.VIR_DOMAIN_AFFECT_LIVE) for d in (select(live) if live else ())]
                if dom.isPersistent():
                    plan += [(d, libvirt.VIR_DOMAIN_AFFECT_CONFIG) for d in select(config)]
                for device, flag in plan:
                    try:
                        dom.detachDeviceFlags(device.xml, flag)
                    except libvirt.libvirtError as exc:
                        if _code(exc) == getattr(libvirt, "VIR_ERR_DEVICE_MISSING", 99):
                            continue  # already detached (e.g. by the link's own delete, just now)
                        if _code(exc) != libvirt.VIR_ERR_NO_SUPPORT:
                            raise
                        if flag == libvirt.VIR_DOMAIN_AFFECT_CONFIG and device.alias:  # the test driver
                            self._conn().defineXML(
                                lx.set_domain_xml(
                                    dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), remove_alias=device.alias
                                )
                            )
                    if flag == libvirt.VIR_DOMAIN_AFFECT_CONFIG and device.alias:
                        self._set_link_meta(dom, forget=device.alias)
            except libvirt.libvirtError as exc:
                if not _missing(exc):
                    raise  # a domain deleted meanwhile has nothing left to detach

    def _create_storagelink(self, spec: StorageLinkSpec) -> str:
        dom = self._dom(spec.compute_id, required=False)
        if dom is None:
            raise BackendError(f"compute {spec.compute_id} does not exist (any more) in libvirt")
        volume = self._vol(spec.storage_id)
        if spec.storage_id in self._offline:
            raise BackendError(f"storage {spec.storage_id} is offline: bring it online before attaching it")
        path = str(volume.path())
        users = self._attachments(path)
        if users:
            raise BackendError(
                f"storage {spec.storage_id} is already attached to compute {users[0][0].name()}"
            )
        config, live = self._definitions(dom)
        taken = [d.target for d in (*config.disks, *(live.disks if live else ()))]
        target = lx.free_disk_target(taken, spec.device)
        alias = f"{ALIAS_PREFIX[STORAGELINK]}{uuidlib.uuid4().hex[:12]}"
        fmt = lx.parse_volume(volume.XMLDesc(0)).fmt or "raw"
        meta = lx.LinkMeta(alias, entity_id=spec.entity_id, mountpoint=spec.mountpoint)
        self._attach_link(dom, lx.disk_xml(path, fmt, target, alias), meta)
        return f"{dom.UUIDString()}/{alias}"

    def _attach_link(self, dom: Any, device: str, meta: lx.LinkMeta) -> None:
        """Record the link's metadata, then attach its device (a failed attach drops the record).

        The record comes first so that a crash in between leaves at worst a record without a
        device, which nothing lists, rather than an untagged device.
        """
        recorded = bool(meta.entity_id or meta.interface or meta.mountpoint)
        if recorded:
            self._set_link_meta(dom, add=meta)
        try:
            self._attach(dom, device)
        except BaseException:
            if recorded:
                with contextlib.suppress(libvirt.libvirtError):
                    self._set_link_meta(dom, forget=meta.alias)
            raise

    @staticmethod
    def _placement(in_config: bool, in_live: bool, running: bool) -> str | None:
        if running and in_config and not in_live:
            return "attached to the definition; the guest sees it from its next start"
        if in_live and not in_config:
            return "attached to the running guest only; it goes away at the next stop"
        return None

    def _observe_storagelink(self, backend_id: str) -> Observed | None:
        found = self._link(backend_id)
        if found is None:
            return None
        _dom, alias, config, live = found
        disk = config.disk(alias) or (live.disk(alias) if live else None)
        if disk is None:
            return None
        message = self._placement(
            config.disk(alias) is not None, bool(live and live.disk(alias)), live is not None
        )
        meta = config.link(alias)
        facts = StorageLinkFacts(device=f"/dev/{disk.target}", mountpoint=meta.mountpoint if meta else None)
        return Observed(backend_id, ACTIVE, message, facts)

    def _create_networkinterface(self, spec: NetworkInterfaceSpec) -> str:
        conn = self._conn()
        dom = self._dom(spec.compute_id, required=False)
        if dom is None:
            raise BackendError(f"compute {spec.compute_id} does not exist (any more) in libvirt")
        net = self._net(spec.network_id)
        info = lx.parse_network(net.XMLDesc(0))
        macs = self._macs_in_use(conn)
        if spec.mac:
            mac = spec.mac.lower().replace("-", ":")
            if not _MAC_RE.fullmatch(mac):
                raise BackendError(f"{spec.mac!r} is not a MAC address")
            if mac in macs:
                raise BackendError(f"MAC address {mac} is already in use")
        else:
            mac = _free_mac(set(macs))
        if spec.interface:
            config, live = self._definitions(dom)
            if spec.interface in _interface_names(config, live).values():
                raise BackendError(f"compute {config.name} already has an interface {spec.interface}")
        reserved = False
        if spec.address:
            address = ipaddress.ip_interface(spec.address).ip if _is_address(spec.address) else None
            if address is None:
                raise BackendError(f"interface address {spec.address!r} is not an IP address")
            if info.network is not None and address not in info.network:
                raise BackendError(f"address {address} is outside network {info.name} ({info.network})")
            if address == info.gateway or str(address) in info.hosts.values():
                raise BackendError(f"address {address} is already in use on network {info.name}")
            if info.dhcp:
                # A DHCP reservation: the guest gets exactly this address from libvirt's dnsmasq.
                self._update_hosts(
                    net, libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, lx.dhcp_host_xml(mac, str(address))
                )
                reserved = True
        alias = f"{ALIAS_PREFIX[NETWORKINTERFACE]}{uuidlib.uuid4().hex[:12]}"
        meta = lx.LinkMeta(alias, entity_id=spec.entity_id, interface=spec.interface)
        try:
            self._attach_link(dom, lx.interface_xml(info.name, mac, alias), meta)
        except libvirt.libvirtError:
            if reserved:
                with contextlib.suppress(libvirt.libvirtError):
                    self._update_hosts(
                        net,
                        libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
                        lx.dhcp_host_xml(mac, str(spec.address).partition("/")[0]),
                    )
            raise
        return f"{dom.UUIDString()}/{alias}"

    @staticmethod
    def _macs_in_use(conn: Any) -> set[str]:
        """The MACs of every domain, running and defined (a cold-plugged NIC is only defined)."""
        macs: set[str] = set()
        for dom in conn.listAllDomains(0):
            flags = [0] + ([libvirt.VIR_DOMAIN_XML_INACTIVE] if dom.isPersistent() else [])
            try:
                macs.update(nic.mac for f in flags for nic in lx.parse_domain(dom.XMLDesc(f)).interfaces)
            except libvirt.libvirtError as exc:
                if not _missing(exc):
                    raise
        return macs

    def _observe_networkinterface(self, backend_id: str) -> Observed | None:
        found = self._link(backend_id)
        if found is None:
            return None
        dom, alias, config, live = found
        nic = config.interface(alias) or (live.interface(alias) if live else None)
        if nic is None:
            return None
        interface = _interface_names(config, live)[alias]
        state = ACTIVE
        message = self._placement(
            config.interface(alias) is not None, bool(live and live.interface(alias)), live is not None
        )
        try:
            net = self._conn().networkLookupByName(nic.network or "")
            info = lx.parse_network(net.XMLDesc(0))
        except libvirt.libvirtError as exc:
            if not _missing(exc):
                raise
            facts = NetworkInterfaceFacts(interface=interface, mac=nic.mac)
            return Observed(backend_id, ERROR, f"network {nic.network} no longer exists", facts)
        if not net.isActive():
            state, message = INACTIVE, f"network {info.name} is down"
        address = info.hosts.get(nic.mac)
        allocation = "static" if address or not info.dhcp else "dynamic"
        if address is None and live is not None and live.interface(alias) is not None:
            address = self._leased_address(dom, net, nic.mac)
        facts = NetworkInterfaceFacts(
            interface=interface,
            mac=nic.mac,
            address=address or None,
            gateway=str(info.gateway) if info.gateway is not None else None,
            allocation=allocation,
        )
        return Observed(backend_id, state, message, facts)

    @staticmethod
    def _leased_address(dom: Any, net: Any, mac: str) -> str | None:
        try:
            leases = net.DHCPLeases(mac, 0)
            return next((str(lease["ipaddr"]) for lease in leases if lease.get("ipaddr")), None)
        except libvirt.libvirtError as exc:
            if _code(exc) != libvirt.VIR_ERR_NO_SUPPORT:
                raise
        # The test driver has no lease API but answers interfaceAddresses from its network.
        addresses = dom.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0) or {}
        for entry in addresses.values():
            if str(entry.get("hwaddr", "")).lower() == mac:
                for addr in entry.get("addrs") or ():
                    return str(addr["addr"])
        return None

    def _detach_live_request(self, backend_id: str) -> bool:
        found = self._link(backend_id)
        if found is None:
            return False
        dom, alias, _config, live = found
        device = (live.disk(alias) or live.interface(alias)) if live else None
        if device is None:
            return False
        try:
            dom.detachDeviceFlags(device.xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as exc:
            if _code(exc) == libvirt.VIR_ERR_NO_SUPPORT:
                return False  # no device API (test driver): the definition change below is all
            raise
        return True

    def _live_has(self, backend_id: str) -> bool:
        found = self._link(backend_id)
        if found is None:
            return False
        _dom, alias, _config, live = found
        return live is not None and (live.disk(alias) or live.interface(alias)) is not None

    def _detach_config(self, backend_id: str) -> None:
        found = self._link(backend_id)
        if found is None:
            return
        dom, alias, config, _live = found
        device = config.disk(alias) or config.interface(alias)
        if device is None:
            return
        try:
            dom.detachDeviceFlags(device.xml, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        except libvirt.libvirtError as exc:
            if _code(exc) != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            self._conn().defineXML(
                lx.set_domain_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), remove_alias=alias)
            )
        self._set_link_meta(dom, forget=alias)
        if isinstance(device, lx.Interface):
            self._drop_reservation(self._conn(), device)

    # ------------------------------------------------------------------ inventory

    def _inventory(self) -> list[Tagged]:
        """Every domain, device, network and volume of this driver that carries an entity id."""
        conn = self._conn()
        prefix = self.settings.name_prefix
        found: list[Tagged] = []
        for dom in conn.listAllDomains(0):
            try:
                if not str(dom.name()).startswith(prefix):
                    continue
                config, live = self._definitions(dom)
            except libvirt.libvirtError as exc:
                if _missing(exc):
                    continue  # deleted while we looked
                raise
            uuid = str(dom.UUIDString())
            if config.metadata.get("entity"):
                found.append(Tagged(Ref(COMPUTE, uuid), config.metadata["entity"]))
            for meta in config.links:
                present = config.disk(meta.alias) or config.interface(meta.alias)
                if live is not None:
                    present = present or live.disk(meta.alias) or live.interface(meta.alias)
                resource = next((r for r, p in ALIAS_PREFIX.items() if meta.alias.startswith(p)), None)
                if meta.entity_id and present is not None and resource is not None:
                    found.append(Tagged(Ref(resource, f"{uuid}/{meta.alias}"), meta.entity_id))
        for net in conn.listAllNetworks(0):
            try:
                info = lx.parse_network(_network_config(net))
            except libvirt.libvirtError as exc:
                if _missing(exc):
                    continue
                raise
            if info.entity_id and info.name.startswith(prefix):
                found.append(Tagged(Ref(NETWORK, info.uuid), info.entity_id))
        for volume in self._pool().listVolumes():
            stem, sep, tag = str(volume).removesuffix(".qcow2").rpartition(TAG_SEPARATOR)
            entity_id = decode_tag(tag) if sep and stem.startswith(prefix) else None
            if entity_id:
                found.append(Tagged(Ref(STORAGE, f"{self.settings.pool}/{volume}"), entity_id))
        return found


def _interface_names(config: lx.DomainInfo, live: lx.DomainInfo | None) -> dict[str | None, str]:
    """The name occipy reports for each NIC of a domain, by alias.

    A name given at creation (proposed by the driver or chosen by the client) is recorded in the
    metadata and reported as is; any other NIC is eth<n> by its place in the definition, which is
    the PCI order in which the guest names virtio NICs.
    """
    order = [i.alias for i in config.interfaces]
    order += [i.alias for i in (live.interfaces if live else ()) if i.alias not in order]
    names: dict[str | None, str] = {}
    for index, alias in enumerate(order):
        meta = config.link(alias) if alias else None
        names[alias] = meta.interface if meta is not None and meta.interface else f"eth{index}"
    return names

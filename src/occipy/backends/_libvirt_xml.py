"""libvirt XML for the libvirt driver: builders for domains, devices, networks and volumes, and
parsers that read back what the driver needs from libvirt's XML descriptions.

Pure functions over strings and frozen values (stdlib `xml.etree` and `ipaddress` only): no I/O
and no `libvirt` import, so every mapping here is unit-tested without a hypervisor. The XML we
parse comes from libvirt itself (a trusted, local source). Imports nothing from occipy but errors.
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from occipy.errors import BackendError

# Our domain metadata element lives in its own namespace (libvirt requires one per application).
METADATA_NS: Final = "https://occipy.dev/ns/libvirt/1"
METADATA_PREFIX: Final = "occipy"
# libvirt user aliases must look like this; the driver names the devices it attaches with them,
# so a link's backend id ("<domain uuid>/<alias>") finds its device again after a restart.
ALIAS_RE: Final = re.compile(r"ua-[A-Za-z0-9_-]+\Z")
# OCCI architectures (GFD.224 §3.1 enum {x86, x64}) and libvirt's names for them.
ARCH_TO_LIBVIRT: Final = {"x64": "x86_64", "x86": "i686"}
ARCH_FROM_LIBVIRT: Final = {"x86_64": "x64", "i686": "x86", "i386": "x86"}
KIB_PER_GIB: Final = 1024 * 1024
BYTES_PER_GIB: Final = 1024**3

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(xml: str) -> ET.Element:
    try:
        return ET.fromstring(xml)  # libvirt's own XML descriptions: trusted
    except ET.ParseError as exc:
        raise BackendError(f"libvirt returned XML occipy cannot read: {exc}") from None


def _text(element: ET.Element) -> str:
    return ET.tostring(element, encoding="unicode")


# ---------------------------------------------------------------------------- domains


@dataclass(frozen=True, slots=True)
class DomainPlan:
    """Everything the driver decided about a new compute, in libvirt terms."""

    name: str
    uuid: str
    domain_type: str  # "qemu" (TCG), "kvm", or "test" for the test:/// driver
    arch: str  # libvirt arch, e.g. "x86_64"
    vcpus: int
    memory_kib: int
    hostname: str
    share: int | None = None
    root_path: str | None = None
    root_format: str = "qcow2"
    seed_path: str | None = None
    console_log: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    image: str | None = None  # Template.name of the image (metadata key "os-template")
    flavour: str | None = None  # Template.name of the flavour (metadata key "resource-template")
    entity_id: str = ""  # the occipy entity id, for Inventories (metadata key "entity")


def domain_xml(plan: DomainPlan) -> str:
    """The persistent definition of a compute (libvirt domain XML format)."""
    dom = ET.Element("domain", type=plan.domain_type)
    ET.SubElement(dom, "name").text = plan.name
    ET.SubElement(dom, "uuid").text = plan.uuid
    meta = ET.SubElement(dom, "metadata")
    meta.append(_metadata_element(plan))
    ET.SubElement(dom, "memory", unit="KiB").text = str(plan.memory_kib)
    ET.SubElement(dom, "vcpu", placement="static").text = str(plan.vcpus)
    if plan.share is not None:
        ET.SubElement(ET.SubElement(dom, "cputune"), "shares").text = str(plan.share)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch=plan.arch).text = "hvm"
    if plan.kernel:
        # Direct kernel boot: the image's sidecar names a kernel (and initrd, cmdline).
        ET.SubElement(os_el, "kernel").text = plan.kernel
        if plan.initrd:
            ET.SubElement(os_el, "initrd").text = plan.initrd
        if plan.cmdline:
            ET.SubElement(os_el, "cmdline").text = plan.cmdline
    ET.SubElement(os_el, "boot", dev="hd")
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")  # the ACPI power button is how graceful/acpioff stops work
    ET.SubElement(features, "apic")
    ET.SubElement(dom, "clock", offset="utc")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"
    devices = ET.SubElement(dom, "devices")
    if plan.root_path:
        devices.append(ET.fromstring(disk_xml(plan.root_path, plan.root_format, "vda", "ua-root")))
    if plan.seed_path:
        cdrom = ET.SubElement(devices, "disk", type="file", device="cdrom")
        ET.SubElement(cdrom, "driver", name="qemu", type="raw")
        ET.SubElement(cdrom, "source", file=plan.seed_path)
        ET.SubElement(cdrom, "target", dev="hdc", bus="ide")
        ET.SubElement(cdrom, "readonly")
        ET.SubElement(cdrom, "alias", name="ua-seed")
    serial = ET.SubElement(devices, "serial", type="pty")
    if plan.console_log:
        # virtlogd writes the guest's serial console here: operators (and the live test) read it.
        ET.SubElement(serial, "log", file=plan.console_log, append="on")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    return _text(dom)


def _metadata_element(plan: DomainPlan) -> ET.Element:
    root = ET.Element(f"{{{METADATA_NS}}}compute")
    # The key names predate the OCCI-free driver contract; domains made before keep working.
    values = {
        "entity": plan.entity_id,
        "hostname": plan.hostname,
        "os-template": plan.image,
        "resource-template": plan.flavour,
        "root-volume": plan.root_path,
        "seed": plan.seed_path,
    }
    for key, value in values.items():
        if value:
            ET.SubElement(root, f"{{{METADATA_NS}}}{key}").text = value
    return root


def disk_xml(path: str, fmt: str, target: str, alias: str) -> str:
    """A virtio disk backed by a file (a pool volume's path)."""
    disk = ET.Element("disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type=fmt)
    ET.SubElement(disk, "source", file=path)
    ET.SubElement(disk, "target", dev=target, bus="virtio")
    ET.SubElement(disk, "alias", name=alias)
    return _text(disk)


def interface_xml(network: str, mac: str, alias: str) -> str:
    """A virtio NIC on a libvirt network."""
    nic = ET.Element("interface", type="network")
    ET.SubElement(nic, "mac", address=mac)
    ET.SubElement(nic, "source", network=network)
    ET.SubElement(nic, "model", type="virtio")
    ET.SubElement(nic, "alias", name=alias)
    return _text(nic)


@dataclass(frozen=True, slots=True)
class Disk:
    alias: str | None
    device: str  # "disk" | "cdrom"
    target: str
    source: str | None
    xml: str


@dataclass(frozen=True, slots=True)
class Interface:
    alias: str | None
    mac: str
    network: str | None
    xml: str


@dataclass(frozen=True, slots=True)
class LinkMeta:
    """What occipy records about one of its devices in the domain metadata (by device alias)."""

    alias: str
    entity_id: str = ""
    interface: str | None = None  # networkinterface: the name occipy gave it
    mountpoint: str | None = None  # storagelink: where the client wants it mounted


@dataclass(frozen=True, slots=True)
class DomainInfo:
    """What the driver reads from a domain's XML description."""

    name: str
    uuid: str
    domain_type: str
    vcpus: int
    memory_kib: int
    arch: str | None
    share: int | None
    kernel: str | None
    initrd: str | None
    cmdline: str | None
    metadata: dict[str, str]
    disks: tuple[Disk, ...] = ()
    interfaces: tuple[Interface, ...] = ()
    links: tuple[LinkMeta, ...] = ()

    def link(self, alias: str) -> LinkMeta | None:
        return next((m for m in self.links if m.alias == alias), None)

    def disk(self, alias: str) -> Disk | None:
        return next((d for d in self.disks if d.alias == alias), None)

    def interface(self, alias: str) -> Interface | None:
        return next((i for i in self.interfaces if i.alias == alias), None)

    @property
    def managed(self) -> bool:
        """True when occipy created this domain (it carries our metadata element)."""
        return bool(self.metadata) or any(d.alias == "ua-root" for d in self.disks)


def parse_domain(xml: str) -> DomainInfo:
    """Read a domain XML description (live or inactive)."""
    dom = _parse(xml)
    os_el = dom.find("os")
    type_el = os_el.find("type") if os_el is not None else None
    shares = dom.findtext("cputune/shares")
    metadata: dict[str, str] = {}
    links: list[LinkMeta] = []
    compute = dom.find(f"metadata/{{{METADATA_NS}}}compute")
    if compute is not None:
        for child in compute:
            tag = child.tag.rpartition("}")[2]
            if tag == "link":
                links.append(_link_meta(child))
            else:
                metadata[tag] = (child.text or "").strip()
    disks = []
    for disk in dom.iterfind("devices/disk"):
        target = disk.find("target")
        source = disk.find("source")
        alias = disk.find("alias")
        disks.append(
            Disk(
                alias=alias.get("name") if alias is not None else None,
                device=disk.get("device", "disk"),
                target=target.get("dev", "") if target is not None else "",
                source=(source.get("file") or source.get("dev") or source.get("volume"))
                if source is not None
                else None,
                xml=_text(disk),
            )
        )
    interfaces = []
    for nic in dom.iterfind("devices/interface"):
        mac = nic.find("mac")
        source = nic.find("source")
        alias = nic.find("alias")
        interfaces.append(
            Interface(
                alias=alias.get("name") if alias is not None else None,
                mac=(mac.get("address", "") if mac is not None else "").lower(),
                network=source.get("network") if source is not None else None,
                xml=_text(nic),
            )
        )
    memory = dom.find("memory")
    return DomainInfo(
        name=dom.findtext("name", ""),
        uuid=dom.findtext("uuid", ""),
        domain_type=dom.get("type", ""),
        vcpus=int(dom.findtext("vcpu", "1") or 1),
        memory_kib=_kib(memory),
        arch=type_el.get("arch") if type_el is not None else None,
        share=int(shares) if shares and shares.strip().isdigit() else None,
        kernel=os_el.findtext("kernel") if os_el is not None else None,
        initrd=os_el.findtext("initrd") if os_el is not None else None,
        cmdline=os_el.findtext("cmdline") if os_el is not None else None,
        metadata=metadata,
        disks=tuple(disks),
        interfaces=tuple(interfaces),
        links=tuple(links),
    )


def _link_meta(element: ET.Element) -> LinkMeta:
    return LinkMeta(
        alias=element.get("alias", ""),
        entity_id=element.get("entity", ""),
        interface=element.get("interface") or None,
        mountpoint=element.get("mountpoint") or None,
    )


def _link_element(meta: LinkMeta) -> ET.Element:
    element = ET.Element(f"{{{METADATA_NS}}}link", alias=meta.alias)
    for key, value in (
        ("entity", meta.entity_id),
        ("interface", meta.interface),
        ("mountpoint", meta.mountpoint),
    ):
        if value:
            element.set(key, value)
    return element


_UNIT_FACTOR: Final = {
    "b": 1,
    "bytes": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
    "t": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
}


def _kib(element: ET.Element | None) -> int:
    if element is None or not (element.text or "").strip():
        return 0
    factor = _UNIT_FACTOR.get(element.get("unit", "KiB").lower(), 1024)
    return int(element.text or "0") * factor // 1024


def set_domain_xml(
    xml: str,
    *,
    vcpus: int | None = None,
    memory_kib: int | None = None,
    kernel: str | None = None,
    initrd: str | None = None,
    cmdline: str | None = None,
    metadata: dict[str, str | None] | None = None,
    arch: str | None = None,
    add_device: str | None = None,
    remove_alias: str | None = None,
    add_link: LinkMeta | None = None,
    forget_link: str | None = None,
) -> str:
    """A changed copy of an inactive domain definition (resize, reimage, cold-plug, unplug).

    `add_link` records (or replaces) occipy's metadata of a device, `forget_link` drops the
    metadata of the device with that alias; `remove_alias` removes the device and its metadata.
    """
    dom = _parse(xml)
    if vcpus is not None:
        vcpu = dom.find("vcpu")
        if vcpu is None:
            vcpu = ET.SubElement(dom, "vcpu")
        vcpu.text = str(vcpus)
        vcpu.attrib.pop("current", None)
    if memory_kib is not None:
        for tag in ("memory", "currentMemory"):
            element = dom.find(tag)
            if element is not None:
                element.text = str(memory_kib)
                element.set("unit", "KiB")
    os_el = dom.find("os")
    if os_el is not None and (kernel is not None or arch is not None):
        if arch is not None:
            type_el = os_el.find("type")
            if type_el is not None:
                type_el.set("arch", arch)
                type_el.attrib.pop("machine", None)
        if kernel is not None:
            for tag in ("kernel", "initrd", "cmdline"):
                for element in os_el.findall(tag):
                    os_el.remove(element)
            # An empty kernel means "boot from the disk": the reimaged image has no sidecar kernel.
            index = 1
            for tag, value in (("kernel", kernel), ("initrd", initrd), ("cmdline", cmdline)):
                if value:
                    element = ET.Element(tag)
                    element.text = value
                    os_el.insert(index, element)
                    index += 1
    if metadata or add_link is not None or remove_alias is not None or forget_link is not None:
        meta = dom.find("metadata")
        if meta is None:
            meta = ET.SubElement(dom, "metadata")
        compute = meta.find(f"{{{METADATA_NS}}}compute")
        if compute is None:
            compute = ET.SubElement(meta, f"{{{METADATA_NS}}}compute")
        dropped = {remove_alias, forget_link, add_link.alias if add_link else None} - {None}
        for old in compute.findall(f"{{{METADATA_NS}}}link"):
            if old.get("alias") in dropped:
                compute.remove(old)
        if add_link is not None:
            compute.append(_link_element(add_link))
        for key, value in (metadata or {}).items():
            for old in compute.findall(f"{{{METADATA_NS}}}{key}"):
                compute.remove(old)
            if value:
                ET.SubElement(compute, f"{{{METADATA_NS}}}{key}").text = value
    devices = dom.find("devices")
    if devices is None:
        devices = ET.SubElement(dom, "devices")
    if remove_alias is not None:
        for device in list(devices):
            alias = device.find("alias")
            if alias is not None and alias.get("name") == remove_alias:
                devices.remove(device)
    if add_device is not None:
        devices.append(_parse(add_device))
    return _text(dom)


def set_disk_source(disk_xml_text: str, path: str) -> str:
    """The same disk element pointing at another file (a reimaged root overlay)."""
    disk = _parse(disk_xml_text)
    source = disk.find("source")
    if source is None:
        source = ET.SubElement(disk, "source")
    source.attrib.clear()
    source.set("file", path)
    return _text(disk)


def free_disk_target(taken: Sequence[str], wanted: str | None = None) -> str:
    """A virtio target name (vdb, vdc, ...; vda is the root disk) not in `taken`.

    `wanted` is the device the client (or the driver's proposal) gave ("/dev/vdc" or "vdc").
    """
    if wanted:
        target = wanted.rpartition("/")[2]
        if not re.fullmatch(r"vd[a-z]{1,2}", target):
            raise BackendError(
                f"device {wanted!r} is not a virtio disk name such as /dev/vdb "
                "(libvirt attaches volumes as virtio disks)"
            )
        if target in taken:
            raise BackendError(f"the compute already has a disk {target}; choose another device")
        return target
    for letter in "bcdefghijklmnopqrstuvwxyz":
        if f"vd{letter}" not in taken:
            return f"vd{letter}"
    raise BackendError("the compute has no free virtio disk name left (vdb..vdz are taken)")


# ---------------------------------------------------------------------------- networks


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    name: str
    uuid: str
    bridge: str | None
    network: IPNetwork | None
    gateway: IPAddress | None
    dhcp: bool
    hosts: dict[str, str] = field(default_factory=dict)  # MAC -> reserved address
    entity_id: str = ""


def network_xml(
    name: str,
    network: IPNetwork,
    gateway: IPAddress,
    dhcp: bool,
    uuid: str | None = None,
    entity_id: str = "",
) -> str:
    """A NAT network: libvirt makes the bridge, runs dnsmasq (DHCP/DNS) and masquerades."""
    root = ET.Element("network")
    ET.SubElement(root, "name").text = name
    if uuid:
        ET.SubElement(root, "uuid").text = uuid
    if entity_id:
        element = ET.SubElement(ET.SubElement(root, "metadata"), f"{{{METADATA_NS}}}network")
        ET.SubElement(element, f"{{{METADATA_NS}}}entity").text = entity_id
    ET.SubElement(root, "forward", mode="nat")
    ip = ET.SubElement(root, "ip", address=str(gateway), prefix=str(network.prefixlen))
    if network.version == 6:
        ip.set("family", "ipv6")
    if dhcp:
        start, end = dhcp_range(network, gateway)
        dhcp_el = ET.SubElement(ip, "dhcp")
        ET.SubElement(dhcp_el, "range", start=str(start), end=str(end))
    return _text(root)


def dhcp_range(network: IPNetwork, gateway: IPAddress) -> tuple[IPAddress, IPAddress]:
    """The DHCP pool: every host address of the network except the gateway's end."""
    if network.num_addresses < 4:
        raise BackendError(f"network {network} is too small for DHCP (use a /30 or larger)")
    first = network.network_address + 1
    last = network.broadcast_address - (1 if network.version == 4 else 0)
    if gateway == first:
        first += 1
    elif gateway == last:
        last -= 1
    return first, last


def parse_network(xml: str) -> NetworkInfo:
    root = _parse(xml)
    bridge = root.find("bridge")
    net: IPNetwork | None = None
    gateway: IPAddress | None = None
    dhcp = False
    hosts: dict[str, str] = {}
    ip = root.find("ip")
    if ip is not None and ip.get("address"):
        gateway = ipaddress.ip_address(ip.get("address", ""))
        prefix = ip.get("prefix")
        netmask = ip.get("netmask")
        mask = prefix if prefix else netmask if netmask else ("64" if gateway.version == 6 else "24")
        net = ipaddress.ip_network(f"{gateway}/{mask}", strict=False)
        dhcp_el = ip.find("dhcp")
        if dhcp_el is not None:
            dhcp = dhcp_el.find("range") is not None
            for host in dhcp_el.iterfind("host"):
                if host.get("mac") and host.get("ip"):
                    hosts[host.get("mac", "").lower()] = host.get("ip", "")
    return NetworkInfo(
        name=root.findtext("name", ""),
        uuid=root.findtext("uuid", ""),
        bridge=bridge.get("name") if bridge is not None else None,
        network=net,
        gateway=gateway,
        dhcp=dhcp,
        hosts=hosts,
        entity_id=(root.findtext(f"metadata/{{{METADATA_NS}}}network/{{{METADATA_NS}}}entity") or "").strip(),
    )


def dhcp_host_xml(mac: str, address: str) -> str:
    return _text(ET.Element("host", mac=mac, ip=address))


# ---------------------------------------------------------------------------- volumes


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    name: str
    path: str
    capacity: int  # bytes
    fmt: str | None
    backing: str | None


def volume_xml(
    name: str, capacity: int, fmt: str, backing: str | None = None, backing_format: str | None = None
) -> str:
    """A pool volume; with `backing`, a copy-on-write qcow2 overlay of that image."""
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "capacity", unit="bytes").text = str(capacity)
    ET.SubElement(root, "allocation", unit="bytes").text = "0"
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "format", type=fmt)
    if backing:
        store = ET.SubElement(root, "backingStore")
        ET.SubElement(store, "path").text = backing
        ET.SubElement(store, "format", type=backing_format or "qcow2")
    return _text(root)


def parse_volume(xml: str) -> VolumeInfo:
    root = _parse(xml)
    capacity = root.find("capacity")
    size = 0
    if capacity is not None and (capacity.text or "").strip():
        size = int(capacity.text or "0") * _UNIT_FACTOR.get(capacity.get("unit", "bytes").lower(), 1)
    fmt = root.find("target/format")
    return VolumeInfo(
        name=root.findtext("name", ""),
        path=root.findtext("target/path", ""),
        capacity=size,
        fmt=fmt.get("type") if fmt is not None else None,
        backing=root.findtext("backingStore/path"),
    )


def dir_pool_xml(name: str, path: str) -> str:
    root = ET.Element("pool", type="dir")
    ET.SubElement(root, "name").text = name
    ET.SubElement(ET.SubElement(root, "target"), "path").text = path
    return _text(root)


ET.register_namespace(METADATA_PREFIX, METADATA_NS)

"""The OpenStack driver's translations: SDK objects to observations, and the entity marks.

Pure functions over the attributes of openstacksdk resources (servers, volumes, networks,
subnets, ports, images, flavors), like libcloud's private `_to_node()` translators. No calls to
the cloud. Imports backends.base and the standard library; it reads SDK objects only by their
attributes (the objects come from `_openstack_ops.py`).
"""

from __future__ import annotations

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
    NetworkFacts,
    NetworkInterfaceFacts,
    Observed,
    StorageFacts,
    StorageLinkFacts,
    Template,
)

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

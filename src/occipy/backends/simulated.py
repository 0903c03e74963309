"""The simulated cloud: an in-process, in-memory Driver that behaves like a small real cloud.

It is the default driver and the one every service test runs on: computes boot, actions take
`delay` seconds, networks hand out address ranges, interfaces get MACs and addresses, volumes
attach as /dev/vdb..., snapshots become os_tpl templates, and a test can make things fail or
change behind occipy's back. No I/O; with a `seed` every id, MAC and range is deterministic.
Imports only backends.base, errors and the model's value type.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import random
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from occipy.backends.base import (
    Capability,
    Change,
    ComputeSpec,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    ResourceType,
    Spec,
    StorageLinkSpec,
    StorageSpec,
    Template,
)
from occipy.errors import BackendError, InvalidAttribute, NotSupported
from occipy.model.category import AttributeValue

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Update keys that replace a compute's templates (Driver.update: they are mixins, not attributes, so the
# service passes them under these names with a Template.term as value; GFD.224 §3.5.1/§3.5.2 say the
# replacement "MUST immediately remove the old template ... and change the execution environment").
OS_TEMPLATE_KEYS: Final = ("os_tpl", "os_template")
RESOURCE_TEMPLATE_KEYS: Final = ("resource_tpl", "resource_template")

# The images and flavours of the simulated cloud. The CRTP small/medium/large... templates come
# from the registry, so the flavours here use other terms.
_IMAGES: Final[tuple[Template, ...]] = (
    Template("os_tpl", "debian-12", "Debian GNU/Linux 12 (bookworm)", {"occi.compute.architecture": "x64"}),
    Template(
        "os_tpl", "ubuntu-24.04", "Ubuntu 24.04 LTS (Noble Numbat)", {"occi.compute.architecture": "x64"}
    ),
    Template("os_tpl", "alpine-3.20", "Alpine Linux 3.20", {"occi.compute.architecture": "x64"}),
    Template("os_tpl", "rocky-9", "Rocky Linux 9", {"occi.compute.architecture": "x64"}),
)
_FLAVOURS: Final[tuple[Template, ...]] = (
    Template(
        "resource_tpl", "tiny", "Tiny: 1 core, 0.5 GiB", {"occi.compute.cores": 1, "occi.compute.memory": 0.5}
    ),
    Template(
        "resource_tpl",
        "xlarge",
        "Extra large: 8 cores, 32 GiB",
        {"occi.compute.cores": 8, "occi.compute.memory": 32.0},
    ),
    Template(
        "resource_tpl",
        "xxlarge",
        "Double extra large: 16 cores, 64 GiB",
        {"occi.compute.cores": 16, "occi.compute.memory": 64.0},
    ),
)
_DEFAULT_IMAGE: Final = "debian-12"
# "With no resource template the provider picks a default configuration" (GFD.224 §3.5.2).
_DEFAULT_CORES: Final = 1
_DEFAULT_MEMORY_GIB: Final = 1.0

# GFD.224 §3.1 action attribute enums; rOCCI's misspelling "deffered" is an accepted alias.
_METHODS: Final[Mapping[str, frozenset[str]]] = {
    "stop": frozenset({"graceful", "acpioff", "poweroff"}),
    "restart": frozenset({"graceful", "warm", "cold"}),
    "suspend": frozenset({"hibernate", "suspend"}),
    "save": frozenset({"hot", "deferred", "deffered"}),
}
# Target states of the actions (GFD.224 §3.1-§3.3). The simulated cloud applies an action in any
# state: the service enforces the state diagrams before it calls a driver.
_ACTIONS: Final[Mapping[tuple[ResourceType, str], str]] = {
    (ResourceType.COMPUTE, "start"): "active",
    (ResourceType.COMPUTE, "stop"): "inactive",
    (ResourceType.COMPUTE, "restart"): "active",
    (ResourceType.COMPUTE, "suspend"): "suspended",
    (ResourceType.NETWORK, "up"): "active",
    (ResourceType.NETWORK, "down"): "inactive",
    (ResourceType.STORAGE, "online"): "online",
    (ResourceType.STORAGE, "offline"): "offline",
}
_STATES: Final[Mapping[ResourceType, frozenset[str]]] = {
    ResourceType.COMPUTE: frozenset({"active", "inactive", "suspended", "error"}),
    ResourceType.STORAGE: frozenset({"online", "offline", "error"}),
    ResourceType.NETWORK: frozenset({"active", "inactive", "error"}),
    ResourceType.STORAGELINK: frozenset({"active", "inactive", "error"}),
    ResourceType.NETWORKINTERFACE: frozenset({"active", "inactive", "error"}),
}
_CREATED_STATE: Final[Mapping[ResourceType, str]] = {
    ResourceType.COMPUTE: "active",  # a created compute boots, as on every real cloud
    ResourceType.STORAGE: "online",
    ResourceType.NETWORK: "active",
    ResourceType.STORAGELINK: "active",
    ResourceType.NETWORKINTERFACE: "active",
}
_ID_PREFIX: Final[Mapping[ResourceType, str]] = {
    ResourceType.COMPUTE: "vm",
    ResourceType.STORAGE: "vol",
    ResourceType.NETWORK: "net",
    ResourceType.STORAGELINK: "att",
    ResourceType.NETWORKINTERFACE: "nic",
}
# Link ids carry their ends ("nic-1a2b3c4d:vm-...:net-...") so that `adopt` can rebuild the
# attachments from a backend id alone after a restart.
_LINK_ID_RE: Final = re.compile(r"^(att|nic)-[0-9a-f]+:(vm-[0-9a-f]+):((?:vol|net)-[0-9a-f]+)$")
_TERM_BAD_CHARS: Final = re.compile(r"[^A-Za-z0-9._-]+")
_OPTIONS: Final = frozenset({"delay", "fail", "seed"})


@dataclass(slots=True)
class _Object:
    """One object of the simulated cloud."""

    resource: ResourceType
    backend_id: str
    name: str
    state: str
    attributes: dict[str, AttributeValue]
    message: str | None = None
    compute_id: str | None = None  # links: the compute (source)
    target_id: str | None = None  # links: the storage or network (target)
    image: str | None = None  # computes: os_tpl term
    flavour: str | None = None  # computes: resource_tpl term
    snapshots: int = 0  # computes: snapshots taken, for "<name>-snapshot-N"
    deleting: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def observed(self) -> Observed:
        return Observed(self.backend_id, self.state, self.message, dict(self.attributes))


class SimulatedDriver:
    """An in-memory cloud with every Capability; see the module docstring.

    Test hooks beyond the Driver protocol: `fail_next()` and `simulate_external()`.
    """

    name = "simulated"
    capabilities: frozenset[Capability] = frozenset(Capability)

    def __init__(
        self, *, delay: float = 1.0, fail: str = "simulate-failure", seed: int | None = None
    ) -> None:
        if delay < 0:
            raise ValueError(f"delay must be 0 or more seconds, got {delay}")
        self.delay = delay
        self.fail = fail
        self._rng = random.Random(seed)
        self._objects: dict[str, _Object] = {}
        self._snapshots: dict[str, Template] = {}
        self._fail_next: dict[str, str] = {}
        self._changes: asyncio.Queue[Change | None] = asyncio.Queue()
        self._next_range = 0

    @classmethod
    def from_options(cls, options: Mapping[str, str], data_dir: Path) -> SimulatedDriver:
        """Build from string options (`--driver-opt`, OCCIPY_SIMULATED_*): delay, fail, seed.

        `data_dir` is unused: the simulated cloud keeps its state in memory and re-learns it
        through `adopt()`. Raises ValueError naming the bad option.
        """
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown simulated driver option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_OPTIONS))}"
            )
        try:
            delay = float(options.get("delay", "1.0"))
        except ValueError:
            raise ValueError(
                f"simulated driver option delay: expected seconds, got {options['delay']!r}"
            ) from None
        if not (math.isfinite(delay) and delay >= 0):
            raise ValueError(f"simulated driver option delay: must be 0 or more, got {options['delay']!r}")
        seed: int | None = None
        if options.get("seed", "") != "":
            try:
                seed = int(options["seed"])
            except ValueError:
                raise ValueError(
                    f"simulated driver option seed: expected an integer, got {options['seed']!r}"
                ) from None
        return cls(delay=delay, fail=options.get("fail", "simulate-failure"), seed=seed)

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """End the `changes()` stream."""
        self._changes.put_nowait(None)

    def templates(self) -> Sequence[Template]:
        """Four images, three flavours, and every snapshot taken since start-up."""
        return (*_IMAGES, *_FLAVOURS, *self._snapshots.values())

    def changes(self) -> AsyncIterator[Change]:
        """Out-of-band changes made with `simulate_external()`, until `close()`."""
        return self._stream()

    async def _stream(self) -> AsyncIterator[Change]:
        while True:
            change = await self._changes.get()
            if change is None:
                return
            yield change

    # ------------------------------------------------------------------ create / delete

    async def create(self, spec: Spec) -> Observed:
        """Create the object after `delay`; names containing `fail` fail (test hook)."""
        # Allocation happens before the first await, so concurrent creates never share an
        # address, MAC or device (one event loop: nothing interleaves until we sleep).
        if isinstance(spec, ComputeSpec):
            obj = self._new_compute(spec)
        elif isinstance(spec, StorageSpec):
            obj = self._new_storage(spec)
        elif isinstance(spec, NetworkSpec):
            obj = self._new_network(spec)
        elif isinstance(spec, StorageLinkSpec):
            obj = self._new_storagelink(spec)
        elif isinstance(spec, NetworkInterfaceSpec):
            obj = self._new_networkinterface(spec)
        else:
            raise NotSupported(f"the simulated cloud cannot create a {type(spec).__name__}")
        target_state = _CREATED_STATE[obj.resource]
        obj.message = "creating"
        self._objects[obj.backend_id] = obj
        async with obj.lock:
            await self._sleep()
            for end in (obj.compute_id, obj.target_id):
                if end is not None and end not in self._objects:
                    self._remove(obj.backend_id)
                    raise BackendError(
                        f"{end} was deleted while {obj.resource.value} {obj.name!r} was being attached to it"
                    )
            if self._objects.get(obj.backend_id) is not obj:
                raise BackendError(
                    f"{obj.resource.value} {obj.name!r} was deleted while it was being created"
                )
            if self.fail and self.fail in spec.name:
                self._remove(obj.backend_id)
                raise BackendError(
                    f"simulated failure: creating {obj.resource.value} {spec.name!r} failed "
                    f"(its name contains {self.fail!r})"
                )
            obj.state = target_state
            obj.message = None
            return obj.observed()

    async def delete(self, resource: ResourceType, backend_id: str) -> None:
        """Delete (stopping and detaching first); links of a deleted resource go with it."""
        obj = self._find(resource, backend_id)
        if obj is None:
            return
        async with obj.lock:
            if self._objects.get(backend_id) is not obj:
                return
            obj.message = "deleting"
            obj.deleting = True  # nothing new attaches to it from now on
            await self._sleep()
            self._remove(backend_id)

    def _remove(self, backend_id: str) -> list[_Object]:
        """Forget an object and every link that hangs on it; returns what went (links first)."""
        gone = [link for link in self._objects.values() if backend_id in (link.compute_id, link.target_id)]
        obj = self._objects.get(backend_id)
        if obj is not None:
            gone.append(obj)
        for item in gone:
            self._objects.pop(item.backend_id, None)
            self._fail_next.pop(item.backend_id, None)
        return gone

    # ------------------------------------------------------------------ computes

    def _new_compute(self, spec: ComputeSpec) -> _Object:
        image_term = spec.os_template or _DEFAULT_IMAGE
        image = self._template("os_tpl", image_term)
        if image is None:
            raise BackendError(
                f"the simulated cloud has no image {image_term!r}; it offers "
                f"{', '.join(t.term for t in self.templates() if t.family == 'os_tpl')}"
            )
        attributes: dict[str, AttributeValue] = {
            "occi.compute.hostname": spec.hostname or spec.name,
            "occi.compute.architecture": spec.architecture
            or str(image.defaults.get("occi.compute.architecture", "x64")),
            "occi.compute.cores": spec.cores if spec.cores is not None else _DEFAULT_CORES,
            "occi.compute.memory": float(spec.memory_gib)
            if spec.memory_gib is not None
            else _DEFAULT_MEMORY_GIB,
        }
        if spec.share is not None:
            attributes["occi.compute.share"] = spec.share
        obj = _Object(
            ResourceType.COMPUTE,
            self._new_id(ResourceType.COMPUTE),
            spec.name,
            "inactive",
            attributes,
            image=image.term,
        )
        self._apply_flavour(obj, spec.resource_template)
        return obj

    def _apply_flavour(self, obj: _Object, term: str | None) -> None:
        # "If the resource itself carries size-related attributes, the assigned resource template
        #  overrides them where applicable" (GFD.224 §3.5.2). Unknown terms (the CRTP templates
        # of the registry) leave the sizes the service computed from their defaults.
        obj.flavour = term
        flavour = self._template("resource_tpl", term) if term else None
        if flavour is not None:
            obj.attributes.update(flavour.defaults)

    async def save(self, backend_id: str, name: str | None, method: str) -> Template:
        """Snapshot a compute into a new os_tpl (GFD.224 §3.1 save); it joins `templates()`."""
        self._check_method("save", method)
        obj = self._require(ResourceType.COMPUTE, backend_id)
        async with obj.lock:
            self._require(ResourceType.COMPUTE, backend_id)
            self._consume_failure(obj)
            obj.message = f"saving ({method})"
            await self._sleep()
            if self._objects.get(backend_id) is not obj:
                raise BackendError(f"compute {obj.name!r} was deleted while it was being saved")
            obj.message = None
            obj.snapshots += 1
            base = name if name else f"{obj.name}-snapshot-{obj.snapshots}"
            term = self._free_term(base)
            image = self._template("os_tpl", obj.image or "")
            source = image.title if image is not None else "an adopted image"
            template = Template(
                "os_tpl",
                term,
                f"Snapshot {term} of compute {obj.name} ({source})",
                {"occi.compute.architecture": obj.attributes.get("occi.compute.architecture", "x64")},
            )
            self._snapshots[term] = template
            return template

    def _free_term(self, wanted: str) -> str:
        # The provider "MAY honour the client's name or replace it by policy" (GFD.224 §3.1):
        # we keep it, made a valid term and unique among the templates.
        term = _TERM_BAD_CHARS.sub("-", wanted).strip("-._") or "snapshot"
        taken = {t.term for t in self.templates() if t.family == "os_tpl"}
        candidate, n = term, 1
        while candidate in taken:
            n += 1
            candidate = f"{term}-{n}"
        return candidate

    # ------------------------------------------------------------------ storage

    def _new_storage(self, spec: StorageSpec) -> _Object:
        size = _positive_float("occi.storage.size", spec.size_gib)
        return _Object(
            ResourceType.STORAGE,
            self._new_id(ResourceType.STORAGE),
            spec.name,
            "offline",
            {"occi.storage.size": size},
        )

    # ------------------------------------------------------------------ networks

    def _new_network(self, spec: NetworkSpec) -> _Object:
        if spec.address:
            net = _parse_network(spec.address)
            address = spec.address
        else:
            net = self._free_range()
            address = str(net)
        if spec.gateway:
            gateway = _parse_address("occi.network.gateway", spec.gateway)
            if gateway not in net:
                raise BackendError(f"gateway {spec.gateway} is outside the network range {address}")
        else:
            gateway = next(net.hosts(), net.network_address)
        attributes: dict[str, AttributeValue] = {
            "occi.network.address": address,
            "occi.network.gateway": str(gateway),
            "occi.network.allocation": spec.allocation or "dynamic",
        }
        if spec.vlan is not None:
            attributes["occi.network.vlan"] = spec.vlan
        if spec.label is not None:
            attributes["occi.network.label"] = spec.label
        return _Object(
            ResourceType.NETWORK, self._new_id(ResourceType.NETWORK), spec.name, "inactive", attributes
        )

    def _free_range(self) -> IPNetwork:
        """The next 10.<n>.<m>.0/24 of the pool that overlaps no existing network."""
        used = [net for obj in self._all(ResourceType.NETWORK) if (net := _range_of(obj)) is not None]
        while self._next_range < 246 * 256:
            n, m = divmod(self._next_range, 256)
            self._next_range += 1
            candidate = ipaddress.ip_network(f"10.{10 + n}.{m}.0/24")
            if not any(candidate.overlaps(net) for net in used):
                return candidate
        raise BackendError("the simulated cloud's address pool 10.10.0.0-10.255.255.0 is exhausted")

    # ------------------------------------------------------------------ links

    def _new_storagelink(self, spec: StorageLinkSpec) -> _Object:
        compute = self._require(ResourceType.COMPUTE, spec.compute_id)
        volume = self._require(ResourceType.STORAGE, spec.storage_id)
        for link in self._all(ResourceType.STORAGELINK):
            if link.target_id == volume.backend_id:
                raise BackendError(f"volume {volume.name!r} is already attached to {link.compute_id}")
        devices = {
            link.attributes.get("occi.storagelink.deviceid")
            for link in self._all(ResourceType.STORAGELINK)
            if link.compute_id == compute.backend_id
        }
        if spec.deviceid:
            if spec.deviceid in devices:
                raise BackendError(f"compute {compute.name!r} already has a device {spec.deviceid}")
            deviceid = spec.deviceid
        else:
            # /dev/vda is the root disk of the image; data volumes follow.
            deviceid = next(d for d in _device_names() if d not in devices)
        attributes: dict[str, AttributeValue] = {"occi.storagelink.deviceid": deviceid}
        if spec.mountpoint:
            attributes["occi.storagelink.mountpoint"] = spec.mountpoint
        backend_id = self._new_id(ResourceType.STORAGELINK, f":{compute.backend_id}:{volume.backend_id}")
        return _Object(
            ResourceType.STORAGELINK,
            backend_id,
            spec.name,
            "inactive",
            attributes,
            compute_id=compute.backend_id,
            target_id=volume.backend_id,
        )

    def _new_networkinterface(self, spec: NetworkInterfaceSpec) -> _Object:
        compute = self._require(ResourceType.COMPUTE, spec.compute_id)
        network = self._require(ResourceType.NETWORK, spec.network_id)
        nics = self._all(ResourceType.NETWORKINTERFACE)
        macs = {str(nic.attributes.get("occi.networkinterface.mac", "")).lower() for nic in nics}
        if spec.mac:
            mac = spec.mac.lower().replace("-", ":")
            if not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac):
                raise InvalidAttribute(f"occi.networkinterface.mac: {spec.mac!r} is not a MAC address")
            if mac in macs:
                raise BackendError(f"MAC address {mac} is already in use")
        else:
            mac = self._free_mac(macs)
        names = {
            nic.attributes.get("occi.networkinterface.interface")
            for nic in nics
            if nic.compute_id == compute.backend_id
        }
        interface = next(f"eth{n}" for n in range(len(names) + 1) if f"eth{n}" not in names)
        allocation = spec.allocation or str(network.attributes.get("occi.network.allocation", "dynamic"))
        attributes: dict[str, AttributeValue] = {
            "occi.networkinterface.mac": mac,
            "occi.networkinterface.interface": interface,
            "occi.networkinterface.allocation": allocation,
        }
        net = _range_of(network)
        used = self._addresses_on(network.backend_id)
        if spec.address:
            host = _parse_interface_address(spec.address)
            if net is not None and host not in net:
                raise BackendError(f"address {spec.address} is outside network {network.name!r} ({net})")
            if host in used:
                raise BackendError(f"address {host} is already in use on network {network.name!r}")
            attributes["occi.networkinterface.address"] = spec.address
        elif allocation != "static" and net is not None:
            # A static interface carries only the address its owner configures (GFD.224 §3.4.1.1).
            attributes["occi.networkinterface.address"] = str(self._free_address(network, net, used))
        gateway = network.attributes.get("occi.network.gateway")
        if gateway is not None:
            attributes["occi.networkinterface.gateway"] = gateway
        backend_id = self._new_id(
            ResourceType.NETWORKINTERFACE, f":{compute.backend_id}:{network.backend_id}"
        )
        return _Object(
            ResourceType.NETWORKINTERFACE,
            backend_id,
            spec.name,
            "inactive",
            attributes,
            compute_id=compute.backend_id,
            target_id=network.backend_id,
        )

    def _free_mac(self, taken: set[str]) -> str:
        while True:
            # 52:54:00 is the locally administered prefix QEMU/libvirt use.
            mac = "52:54:00:" + ":".join(f"{self._rng.randrange(256):02x}" for _ in range(3))
            if mac not in taken:
                return mac

    def _addresses_on(self, network_id: str) -> set[IPAddress]:
        used: set[IPAddress] = set()
        for nic in self._all(ResourceType.NETWORKINTERFACE):
            address = nic.attributes.get("occi.networkinterface.address")
            if nic.target_id == network_id and isinstance(address, str):
                try:
                    used.add(ipaddress.ip_interface(address).ip)
                except ValueError:  # an adopted value we did not write: it holds nothing
                    pass
        return used

    def _free_address(self, network: _Object, net: IPNetwork, used: set[IPAddress]) -> IPAddress:
        gateway = network.attributes.get("occi.network.gateway")
        for host in net.hosts():
            if str(host) != gateway and host not in used:
                return host
        raise BackendError(f"network {network.name!r} ({net}) has no free address left")

    # ------------------------------------------------------------------ actions and updates

    async def act(
        self, resource: ResourceType, backend_id: str, action: str, params: Mapping[str, AttributeValue]
    ) -> Observed:
        """Run an action after `delay`; the new state follows GFD.224 §3 (start -> active, ...)."""
        if resource is ResourceType.COMPUTE and action == "save":
            method = params.get("method", "deferred")
            name = params.get("name")
            template = await self.save(
                backend_id, name if isinstance(name, str) and name else None, str(method)
            )
            observed = await self.observe(resource, backend_id)
            if observed is None:
                raise BackendError(f"compute {backend_id} disappeared after it was saved")
            return Observed(
                observed.backend_id, observed.state, f"saved as os_tpl {template.term}", observed.attributes
            )
        target = _ACTIONS.get((resource, action))
        if target is None:
            raise NotSupported(f"the simulated cloud has no action {action!r} on a {resource.value}")
        if action in _METHODS:
            self._check_method(action, params.get("method"))
        obj = self._require(resource, backend_id)
        async with obj.lock:
            self._require(resource, backend_id)
            self._consume_failure(obj)
            obj.message = f"{action} in progress"
            await self._sleep()
            if self._objects.get(backend_id) is not obj:
                raise BackendError(f"{resource.value} {obj.name!r} was deleted during {action}")
            obj.state = target
            obj.message = None
            return obj.observed()

    async def update(
        self, resource: ResourceType, backend_id: str, changes: Mapping[str, AttributeValue]
    ) -> Observed:
        """Apply attribute changes: volume grow, compute resize and reimage, network settings.

        Template replacement uses the keys `os_tpl` / `resource_tpl` (Driver.update; aliases
        `os_template` / `resource_template`) with a Template.term as value. Unknown attributes
        (title, summary, ...) concern only the service and are ignored.
        """
        obj = self._require(resource, backend_id)
        async with obj.lock:
            self._require(resource, backend_id)
            self._consume_failure(obj)
            apply = self._plan_update(obj, changes)  # validate everything before touching anything
            obj.message = "updating"
            await self._sleep()
            if self._objects.get(backend_id) is not obj:
                raise BackendError(f"{resource.value} {obj.name!r} was deleted during the update")
            apply()
            obj.message = None
            return obj.observed()

    def _plan_update(self, obj: _Object, changes: Mapping[str, AttributeValue]) -> Callable[[], None]:
        new: dict[str, AttributeValue] = {}
        image: str | None = None
        flavour: str | None = None
        flavour_given = False
        if obj.resource is ResourceType.STORAGE and "occi.storage.size" in changes:
            size = _positive_float("occi.storage.size", changes["occi.storage.size"])
            current = obj.attributes.get("occi.storage.size", 0.0)
            old = float(current) if isinstance(current, (int, float)) else 0.0
            if size < old:
                raise BackendError(
                    f"volume {obj.name!r} cannot shrink from {old:g} GiB to {size:g} GiB: "
                    "volumes only grow (create a smaller one and copy the data)"
                )
            new["occi.storage.size"] = size
        elif obj.resource is ResourceType.COMPUTE:
            for key, value in changes.items():
                if key == "occi.compute.cores" or key == "occi.compute.share":
                    new[key] = _count(key, value, minimum=1 if key.endswith("cores") else 0)
                elif key == "occi.compute.memory":
                    new[key] = _positive_float(key, value)
                elif key in ("occi.compute.hostname", "occi.compute.architecture"):
                    new[key] = _text(key, value)
                elif key in OS_TEMPLATE_KEYS:
                    image = _term(key, value)
                    if self._template("os_tpl", image) is None:
                        raise BackendError(f"cannot reimage compute {obj.name!r}: no image {image!r}")
                elif key in RESOURCE_TEMPLATE_KEYS:
                    flavour, flavour_given = _term(key, value), True
        elif obj.resource is ResourceType.NETWORK:
            for key in (
                "occi.network.vlan",
                "occi.network.label",
                "occi.network.allocation",
                "occi.network.gateway",
                "occi.network.address",
            ):
                if key in changes:
                    new[key] = changes[key]
            if "occi.network.address" in new:
                _parse_network(_text("occi.network.address", new["occi.network.address"]))
                if any(nic.target_id == obj.backend_id for nic in self._all(ResourceType.NETWORKINTERFACE)):
                    raise BackendError(
                        f"network {obj.name!r} has interfaces attached: detach them "
                        "before changing its address range"
                    )
        else:
            prefix = f"occi.{obj.resource.value}."
            new.update(
                {
                    k: v
                    for k, v in changes.items()
                    if k.startswith(prefix) and not k.startswith(prefix + "state")
                }
            )

        def apply() -> None:
            obj.attributes.update(new)
            if image is not None:
                obj.image = image
            if flavour_given:
                self._apply_flavour(obj, flavour)

        return apply

    def _check_method(self, action: str, method: object) -> None:
        # The service validates action attributes against the Action's enums first; this only
        # keeps a bad call from doing something undefined.
        if method is None:
            return
        allowed = _METHODS[action]
        if not isinstance(method, str) or method not in allowed:
            raise InvalidAttribute(
                f"action {action}: method must be one of "
                f"{', '.join(sorted(allowed - {'deffered'}))}, got {method!r}"
            )

    # ------------------------------------------------------------------ observation, adoption

    async def observe(self, resource: ResourceType, backend_id: str) -> Observed | None:
        """The object's current state, or None when it does not exist."""
        obj = self._find(resource, backend_id)
        return obj.observed() if obj is not None else None

    async def adopt(self, resource: ResourceType, backend_id: str, observed: Observed) -> None:
        """Record an object occipy stored before a restart, with its allocations.

        Link ids carry their ends, so attachments, device names, MACs and addresses are all
        taken again and never handed out twice. An id already known is left as it is.
        """
        if backend_id in self._objects:
            return
        compute_id = target_id = None
        if resource in (ResourceType.STORAGELINK, ResourceType.NETWORKINTERFACE):
            match = _LINK_ID_RE.match(backend_id)
            if match is not None:
                compute_id, target_id = match.group(2), match.group(3)
        state = observed.state if observed.state in _STATES[resource] else "error"
        hostname = observed.attributes.get("occi.compute.hostname")
        name = hostname.partition(".")[0] if isinstance(hostname, str) and hostname else backend_id
        self._objects[backend_id] = _Object(
            resource,
            backend_id,
            name,
            state,
            dict(observed.attributes),
            observed.message,
            compute_id=compute_id,
            target_id=target_id,
        )

    # ------------------------------------------------------------------ test hooks

    def fail_next(self, backend_id: str, message: str) -> None:
        """Make the next act/update/save on `backend_id` fail with BackendError(message).

        Like a real failed operation, it leaves the object in state `error` with the message.
        """
        self._fail_next[backend_id] = message

    async def simulate_external(self, resource: ResourceType, backend_id: str, state: str | None) -> None:
        """Change an object as if someone used the cloud directly; None deletes it.

        Each affected object (a deleted resource's links first) is reported by `changes()`.
        Raises ValueError for an unknown object or a state outside the type's vocabulary.
        """
        obj = self._find(resource, backend_id)
        if obj is None:
            raise ValueError(f"the simulated cloud has no {resource.value} {backend_id}")
        if state is None:
            for gone in self._remove(backend_id):
                self._changes.put_nowait(Change(gone.resource, gone.backend_id, None))
            return
        if state not in _STATES[resource]:
            raise ValueError(
                f"{state!r} is not a {resource.value} state; "
                f"use one of {', '.join(sorted(_STATES[resource]))}"
            )
        obj.state = state
        obj.message = None
        self._changes.put_nowait(Change(resource, backend_id, obj.observed()))

    # ------------------------------------------------------------------ helpers

    def _consume_failure(self, obj: _Object) -> None:
        message = self._fail_next.pop(obj.backend_id, None)
        if message is not None:
            obj.state = "error"
            obj.message = message
            raise BackendError(message)

    async def _sleep(self) -> None:
        if self.delay > 0:
            await asyncio.sleep(self.delay)

    def _new_id(self, resource: ResourceType, suffix: str = "") -> str:
        while True:
            backend_id = f"{_ID_PREFIX[resource]}-{self._rng.getrandbits(32):08x}{suffix}"
            if backend_id not in self._objects:
                return backend_id

    def _find(self, resource: ResourceType, backend_id: str) -> _Object | None:
        obj = self._objects.get(backend_id)
        return obj if obj is not None and obj.resource is resource else None

    def _require(self, resource: ResourceType, backend_id: str) -> _Object:
        obj = self._find(resource, backend_id)
        if obj is None:
            raise BackendError(f"the simulated cloud has no {resource.value} {backend_id}")
        if obj.deleting:
            raise BackendError(f"{resource.value} {obj.name!r} is being deleted")
        return obj

    def _all(self, resource: ResourceType) -> list[_Object]:
        return [obj for obj in self._objects.values() if obj.resource is resource]

    def _template(self, family: str, term: str) -> Template | None:
        return next((t for t in self.templates() if t.family == family and t.term == term), None)


def _device_names() -> Iterator[str]:
    # /dev/vdb ... /dev/vdz, then /dev/vdaa ... like the Linux virtio-blk naming.
    letters = "abcdefghijklmnopqrstuvwxyz"
    for second in letters[1:]:
        yield f"/dev/vd{second}"
    for first in letters:
        for second in letters:
            yield f"/dev/vd{first}{second}"


def _range_of(network: _Object) -> IPNetwork | None:
    address = network.attributes.get("occi.network.address")
    if not isinstance(address, str):
        return None
    try:
        return ipaddress.ip_network(address, strict=False)
    except ValueError:
        return None


def _parse_network(value: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise InvalidAttribute(f"occi.network.address: {value!r} is not an address range (CIDR)") from None


def _parse_address(name: str, value: str) -> IPAddress:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise InvalidAttribute(f"{name}: {value!r} is not an IP address") from None


def _parse_interface_address(value: str) -> IPAddress:
    # GFD.224's examples write "192.168.0.1/24": accept a prefix (infrastructure.md §7).
    try:
        return ipaddress.ip_interface(value).ip
    except ValueError:
        raise InvalidAttribute(f"occi.networkinterface.address: {value!r} is not an IP address") from None


def _positive_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidAttribute(f"{name}: expected a number above 0, got {value!r}")
    return float(value)


def _count(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidAttribute(f"{name}: expected an integer of at least {minimum}, got {value!r}")
    return value


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidAttribute(f"{name}: expected a string, got {value!r}")
    return value


def _term(name: str, value: object) -> str:
    # A full type identifier ("http://.../os#debian-12") names the same template as its term.
    return _text(name, value).rpartition("#")[2]

"""The simulated cloud: an in-process, in-memory Driver that behaves like a small real cloud.

It is the default driver and the one every service test runs on: computes boot, actions take
`delay` seconds, networks hand out address ranges, interfaces get MACs and addresses, volumes
attach as /dev/xvdb..., snapshots become images, and a test can make things fail (`fail`,
`fail_next`) or change behind occipy's back (`simulate_external`). No I/O; with a `seed` every
id, MAC and range is deterministic. docs/drivers/simulated.md has the settings and the mapping.
Imports only backends.base, errors and locks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ipaddress
import math
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec

from occipy.backends import _simulated_platform as platform
from occipy.backends import base as b
from occipy.backends import egi_types as egi
from occipy.backends import platform_types as pt
from occipy.backends.base import (
    Action,
    Backup,
    Change,
    ComputeFacts,
    ComputeSpec,
    ComputeUpdate,
    Down,
    FirewallRule,
    NetworkFacts,
    NetworkInterfaceFacts,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    Offline,
    Online,
    Reading,
    Ref,
    Restart,
    Save,
    SecurityGroupUpdate,
    Snapshot,
    Start,
    Stop,
    StorageFacts,
    StorageLinkFacts,
    StorageLinkSpec,
    StorageSpec,
    StorageUpdate,
    Support,
    Suspend,
    Tagged,
    Template,
    Up,
    Update,
)
from occipy.backends.platform_types import (
    APPLICATION,
    COMPONENT,
    COMPONENTLINK,
    ApplicationFacts,
    ApplicationSpec,
    ComponentFacts,
    ComponentLinkFacts,
    ComponentLinkSpec,
    ComponentSpec,
)
from occipy.errors import BackendError, NotSupported
from occipy.locks import KeyedLocks

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The images and flavours of the simulated cloud. The CRTP small/medium/large... templates come
# from the registry, so the flavours here use other names.
_IMAGES: Final[tuple[Template, ...]] = (
    Template(b.IMAGE, "debian-12", "Debian GNU/Linux 12 (bookworm)", architecture="x64"),
    Template(b.IMAGE, "ubuntu-24.04", "Ubuntu 24.04 LTS (Noble Numbat)", architecture="x64"),
    Template(b.IMAGE, "alpine-3.20", "Alpine Linux 3.20", architecture="x64"),
    Template(b.IMAGE, "rocky-9", "Rocky Linux 9", architecture="x64"),
)
_FLAVOURS: Final[tuple[Template, ...]] = (
    Template(b.FLAVOUR, "tiny", "Tiny: 1 core, 0.5 GiB", cores=1, memory_gib=0.5),
    Template(b.FLAVOUR, "xlarge", "Extra large: 8 cores, 32 GiB", cores=8, memory_gib=32.0),
    Template(b.FLAVOUR, "xxlarge", "Double extra large: 16 cores, 64 GiB", cores=16, memory_gib=64.0),
)
_DEFAULT_IMAGE: Final = "debian-12"
# "With no resource template the provider picks a default configuration" (GFD.224 §3.5.2).
_DEFAULT_CORES: Final = 1
_DEFAULT_MEMORY_GIB: Final = 1.0
_ARCHITECTURES: Final = frozenset({"x86", "x64"})

# GFD.224 §3.1 action attribute enums; rOCCI's misspelling "deffered" is an accepted alias.
_METHODS: Final[Mapping[str, frozenset[str]]] = {
    "stop": frozenset({"graceful", "acpioff", "poweroff"}),
    "restart": frozenset({"graceful", "warm", "cold"}),
    "suspend": frozenset({"hibernate", "suspend"}),
    "save": frozenset({"hot", "deferred", "deffered"}),
}
# What the simulated cloud can do: every Infrastructure type, action and live update.
SUPPORTS: Final[Mapping[str, Support]] = {
    b.COMPUTE: Support(
        actions=frozenset({"start", "stop", "restart", "suspend", "save"}),
        updates=frozenset({"cores", "memory_gib", "architecture", "image", "flavour"}),
    ),
    b.STORAGE: Support(actions=frozenset({"online", "offline", "backup", "snapshot"}), updates=frozenset({"size_gib"})),
    b.NETWORK: Support(actions=frozenset({"up", "down"})),
    b.STORAGELINK: Support(),
    b.NETWORKINTERFACE: Support(),
    # [monitoring] the EGI types (docs/drivers/simulated.md): rules change live, reservations go up/down.
    egi.SECURITYGROUP: Support(updates=frozenset({"rules"})),
    egi.SECURITYGROUPLINK: Support(),
    egi.IPRESERVATION: Support(actions=frozenset({"up", "down"})),
    # GFD.227 Platform (docs/platform.md): applications, components, component links.
    APPLICATION: Support(actions=frozenset({"start", "stop"})),
    COMPONENT: Support(actions=frozenset({"start", "stop"})),
    COMPONENTLINK: Support(),
}
_STATES: Final[Mapping[str, frozenset[str]]] = {
    b.COMPUTE: frozenset({b.ACTIVE, b.INACTIVE, b.SUSPENDED, b.ERROR}),
    b.STORAGE: frozenset({b.ONLINE, b.OFFLINE, b.ERROR}),
    b.NETWORK: frozenset({b.ACTIVE, b.INACTIVE, b.ERROR}),
    b.STORAGELINK: frozenset({b.ACTIVE, b.INACTIVE, b.ERROR}),
    b.NETWORKINTERFACE: frozenset({b.ACTIVE, b.INACTIVE, b.ERROR}),
    egi.SECURITYGROUP: frozenset({b.ACTIVE, b.INACTIVE, b.ERROR}),
    egi.SECURITYGROUPLINK: frozenset({b.ACTIVE, b.INACTIVE, b.ERROR}),
    egi.IPRESERVATION: frozenset({b.ACTIVE, b.INACTIVE, b.ERROR}),
    APPLICATION: frozenset({b.ACTIVE, b.INACTIVE, b.ERROR}),
    COMPONENT: frozenset({b.ACTIVE, b.INACTIVE, b.ERROR}),
    COMPONENTLINK: frozenset({b.ACTIVE, b.INACTIVE, b.ERROR}),
}
_CREATED_STATE: Final[Mapping[str, str]] = {
    b.COMPUTE: b.ACTIVE,  # a created compute boots, as on every real cloud
    b.STORAGE: b.ONLINE,
    b.NETWORK: b.ACTIVE,
    b.STORAGELINK: b.ACTIVE,
    b.NETWORKINTERFACE: b.ACTIVE,
    egi.SECURITYGROUP: b.ACTIVE,
    egi.SECURITYGROUPLINK: b.ACTIVE,
    egi.IPRESERVATION: b.INACTIVE,  # reserved; `up` makes it active (rOCCI's ipreservation diagram)
    APPLICATION: b.ACTIVE,  # GFD.227 §4: created applications and components run
    COMPONENT: b.ACTIVE,
    COMPONENTLINK: b.ACTIVE,
}
_FACTS: Final[Mapping[str, type]] = {
    b.COMPUTE: ComputeFacts,
    b.STORAGE: StorageFacts,
    b.NETWORK: NetworkFacts,
    b.STORAGELINK: StorageLinkFacts,
    b.NETWORKINTERFACE: NetworkInterfaceFacts,
    egi.SECURITYGROUP: egi.SecurityGroupFacts,
    egi.SECURITYGROUPLINK: type(None),
    egi.IPRESERVATION: egi.IpReservationFacts,
    APPLICATION: ApplicationFacts,
    COMPONENT: ComponentFacts,
    COMPONENTLINK: ComponentLinkFacts,
}
_ID_PREFIX: Final[Mapping[str, str]] = {
    b.COMPUTE: "vm",
    b.STORAGE: "vol",
    b.NETWORK: "net",
    b.STORAGELINK: "att",
    b.NETWORKINTERFACE: "nic",
    egi.SECURITYGROUP: "sg",
    egi.SECURITYGROUPLINK: "sgl",
    egi.IPRESERVATION: "fip",
    APPLICATION: "app",
    COMPONENT: "cmp",
    COMPONENTLINK: "cl",
}
# Link ids carry their ends ("nic-1a2b3c4d:vm-...:net-...") so that `adopt` can rebuild the
# attachments from a backend id alone after a restart.
_LINK_ID_RE: Final = re.compile(
    r"^(att|nic|sgl|cl)-[0-9a-f]+:((?:vm|app|cmp)-[0-9a-f]+):((?:vol|net|fip|sg|cmp)-[0-9a-f]+)$"
)
# [monitoring] Floating addresses come from TEST-NET-1 (RFC 5737): never routed anywhere.
FLOATING_POOL: Final = ipaddress.ip_network("192.0.2.0/24")
FLOATING_POOL_NAME: Final = "public"
# Offered as a floatingippool child, as a real cloud offers its external networks (OpenStack).
_POOLS: Final[tuple[Template, ...]] = (
    Template(egi.POOL, FLOATING_POOL_NAME, f"Floating IP pool {FLOATING_POOL_NAME} ({FLOATING_POOL})"),)
_MAC_RE: Final = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}")
# The simulated cloud's own MAC block: locally administered (bit 1 of the first octet), unicast.
MAC_PREFIX: Final = "02:53:49"
_OPTIONS: Final = frozenset({"delay", "fail", "seed"})


@dataclass(slots=True)
class _Object:
    """One object of the simulated cloud; `facts` is the type's facts value (replaced, never mutated)."""

    resource: str
    backend_id: str
    name: str
    state: str
    facts: object
    entity_id: str = ""
    message: str | None = None
    compute_id: str | None = None  # links: the compute (source)
    target_id: str | None = None  # links: the storage or network (target)
    image: str | None = None  # computes: Template.name of the image; components: of the runtime
    flavour: str | None = None  # computes: Template.name of the flavour
    snapshots: int = 0  # computes: snapshots taken, for "<name>-snapshot-N"
    deleting: bool = False
    # [monitoring] synthetic counters (Samples): cpu_seconds, disk/net bytes, and when they last moved.
    counters: dict[str, float] = field(default_factory=dict)
    counted: float = 0.0

    def observed(self) -> Observed:
        return Observed(self.backend_id, self.state, self.message, self.facts)


class SimulatedDriver:
    """An in-memory cloud that supports every type, action and optional protocol; see the module docstring.

    Test hooks beyond the protocols: `fail_next()` and `simulate_external()`.
    """

    name = "simulated"
    supports: Mapping[str, Support] = SUPPORTS
    # [monitoring] Samples: computes and volumes have synthetic counters (docs/monitoring.md).
    sampled: frozenset[str] = frozenset({b.COMPUTE, b.STORAGE})

    def __init__(
        self, *, delay: float = 1.0, fail: str = "simulate-failure", seed: int | None = None
    ) -> None:
        if not (math.isfinite(delay) and delay >= 0):
            raise ValueError(f"delay must be 0 or more seconds, got {delay}")
        self.delay = delay
        self.fail = fail
        self._rng = random.Random(seed)
        self._objects: dict[str, _Object] = {}
        # One lock per object, kept only while it is used (most objects sit idle).
        self._locks = KeyedLocks()
        # Indexes of `_objects`, kept by `_add` and `_remove` (a cloud of a million objects must
        # not walk them all to delete one or to attach a disk): each resource type's objects, and
        # the links that hang on each object (as their compute or their target), in creation order.
        self._by_resource: dict[str, dict[str, _Object]] = {}
        self._hanging: dict[str, dict[str, None]] = {}
        self._macs: dict[str, int] = {}  # the interfaces' MAC addresses (lower case): how many hold each
        self._snapshots: dict[str, Template] = {}
        # Volume backups and snapshots taken (backend id, "backup" | "snapshot"), oldest first: the
        # simulated cloud keeps no data, so these records are what they leave (tests observe them).
        self.volume_copies: list[tuple[str, str]] = []
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
        """Four images, three flavours, every snapshot taken since start-up, the Platform runtimes
        and plans, and the floating IP pool."""
        return (*_IMAGES, *_FLAVOURS, *self._snapshots.values(), *platform.TEMPLATES, *_POOLS)

    def changes(self) -> AsyncIterator[Change]:
        """Out-of-band changes made with `simulate_external()`, until `close()` (Watches)."""
        return self._stream()

    async def _stream(self) -> AsyncIterator[Change]:
        while True:
            change = await self._changes.get()
            if change is None:
                return
            yield change

    # ------------------------------------------------------------------ create / delete

    async def create(self, spec: object) -> Observed:
        """Create the object after `delay`; names containing `fail` fail (test hook)."""
        # Allocation happens before the first await, so concurrent creates never share an
        # address, MAC or device (one event loop: nothing interleaves until we sleep).
        match spec:
            case ComputeSpec():
                obj = self._new_compute(spec)
            case StorageSpec():
                obj = self._new_storage(spec)
            case NetworkSpec():
                obj = self._new_network(spec)
            case StorageLinkSpec():
                obj = self._new_storagelink(spec)
            case NetworkInterfaceSpec():
                obj = self._new_networkinterface(spec)
            case egi.SecurityGroupSpec():
                obj = self._new_securitygroup(spec)
            case egi.SecurityGroupLinkSpec():
                obj = self._new_securitygrouplink(spec)
            case egi.IpReservationSpec():
                obj = self._new_ipreservation(spec)
            case ApplicationSpec() | ComponentSpec() | ComponentLinkSpec():
                obj = self._new_platform(spec)
            case _:
                raise NotSupported(f"the simulated cloud cannot create a {type(spec).__name__}")
        obj.message = "creating"
        self._add(obj)
        async with self._locks.hold(obj.backend_id):
            await self._sleep()
            for end in (obj.compute_id, obj.target_id):
                if end is not None and end not in self._objects:
                    self._remove(obj.backend_id)
                    raise BackendError(
                        f"{end} was deleted while {obj.resource} {obj.name!r} was being attached to it"
                    )
            if self._objects.get(obj.backend_id) is not obj:
                raise BackendError(f"{obj.resource} {obj.name!r} was deleted while it was being created")
            if self.fail and self.fail in obj.name:
                self._remove(obj.backend_id)
                raise BackendError(
                    f"simulated failure: creating {obj.resource} {obj.name!r} failed "
                    f"(its name contains {self.fail!r})"
                )
            obj.state = _CREATED_STATE[obj.resource]
            obj.message = None
            return self._observed(obj)

    async def delete(self, ref: Ref) -> None:
        """Delete (stopping and detaching first); links of a deleted resource go with it."""
        obj = self._find(ref)
        if obj is None:
            return
        async with self._locks.hold(obj.backend_id):
            if self._objects.get(ref.backend_id) is not obj:
                return
            obj.message = "deleting"
            obj.deleting = True  # nothing new attaches to it from now on
            await self._sleep()
            self._remove(ref.backend_id)

    def _add(self, obj: _Object) -> None:
        self._objects[obj.backend_id] = obj
        self._by_resource.setdefault(obj.resource, {})[obj.backend_id] = obj
        for end in (obj.compute_id, obj.target_id):
            if end is not None:
                self._hanging.setdefault(end, {})[obj.backend_id] = None
        mac = _mac_of(obj)
        if mac is not None:
            self._macs[mac] = self._macs.get(mac, 0) + 1

    def _remove(self, backend_id: str) -> list[_Object]:
        """Forget an object and every link that hangs on it; returns what went (links first)."""
        gone = [self._objects[link_id] for link_id in self._hanging.get(backend_id, ())]
        obj = self._objects.get(backend_id)
        if obj is not None:
            gone.append(obj)
        for item in gone:
            del self._objects[item.backend_id]
            del self._by_resource[item.resource][item.backend_id]
            for end in (item.compute_id, item.target_id):
                if end is None or end not in self._hanging:
                    continue
                links = self._hanging[end]
                links.pop(item.backend_id, None)
                if not links:
                    del self._hanging[end]
            mac = _mac_of(item)
            if mac is not None:
                if self._macs[mac] > 1:
                    self._macs[mac] -= 1
                else:
                    del self._macs[mac]
            self._fail_next.pop(item.backend_id, None)
        return gone

    def _links_on(self, backend_id: str, resource: str) -> list[_Object]:
        """The links of this type that hang on an object, oldest first."""
        links = (self._objects[link_id] for link_id in self._hanging.get(backend_id, ()))
        return [link for link in links if link.resource == resource]

    # ------------------------------------------------------------------ computes

    def _new_compute(self, spec: ComputeSpec) -> _Object:
        image_name = spec.image or _DEFAULT_IMAGE
        image = self._template(b.IMAGE, image_name)
        if image is None:
            raise BackendError(
                f"the simulated cloud has no image {image_name!r}; it offers "
                f"{', '.join(t.name for t in self.templates() if t.family == b.IMAGE)}"
            )
        architecture = spec.architecture or image.architecture or "x64"
        if architecture not in _ARCHITECTURES:
            raise BackendError(f"the simulated cloud runs x64 and x86 machines, not {architecture!r}")
        facts = ComputeFacts(
            cores=_count("cores", spec.cores) if spec.cores is not None else _DEFAULT_CORES,
            memory_gib=_positive("memory", spec.memory_gib)
            if spec.memory_gib is not None
            else _DEFAULT_MEMORY_GIB,
            architecture=architecture,
            hostname=spec.hostname or spec.name,
        )
        obj = _Object(
            b.COMPUTE,
            self._new_id(b.COMPUTE),
            spec.name,
            b.INACTIVE,
            facts,
            spec.entity_id,
            image=image.name,
        )
        self._apply_flavour(obj, spec.flavour)
        return obj

    def _apply_flavour(self, obj: _Object, name: str | None) -> None:
        # "If the resource itself carries size-related attributes, the assigned resource template
        #  overrides them where applicable" (GFD.224 §3.5.2). An unknown name (a CRTP template of
        # the registry, which the service sizes itself) leaves the sizes as given.
        obj.flavour = name
        flavour = self._template(b.FLAVOUR, name) if name else None
        if flavour is not None:
            facts = _compute_facts(obj)
            obj.facts = msgspec.structs.replace(
                facts,
                cores=flavour.cores if flavour.cores is not None else facts.cores,
                memory_gib=flavour.memory_gib if flavour.memory_gib is not None else facts.memory_gib,
            )

    async def save(self, ref: Ref, request: Save) -> Template:
        """Snapshot a compute into a new image (GFD.224 §3.1 save); it joins `templates()` (Saves)."""
        _check_method("save", request.method)
        obj = self._require(ref, b.COMPUTE)
        async with self._locks.hold(obj.backend_id):
            self._require(ref, b.COMPUTE)
            self._consume_failure(obj)
            obj.message = f"saving ({request.method})"
            await self._sleep()
            if self._objects.get(ref.backend_id) is not obj:
                raise BackendError(f"compute {obj.name!r} was deleted while it was being saved")
            obj.message = None
            obj.snapshots += 1
            # The provider "MAY honour the client's name or replace it by policy" (GFD.224 §3.1):
            # the name is kept as given, numbered when another image already has it.
            wanted = request.image_name or f"{obj.name}-snapshot-{obj.snapshots}"
            taken = {t.name for t in self.templates() if t.family == b.IMAGE}
            name = next(c for c in _numbered(wanted) if c not in taken)
            image = self._template(b.IMAGE, obj.image or "")
            source = image.title if image is not None else "an adopted image"
            template = Template(
                b.IMAGE,
                name,
                f"Snapshot {name} of compute {obj.name} ({source})",
                architecture=_compute_facts(obj).architecture,
            )
            self._snapshots[name] = template
            return template

    # ------------------------------------------------------------------ storage and networks

    def _new_storage(self, spec: StorageSpec) -> _Object:
        facts = StorageFacts(size_gib=_positive("size", spec.size_gib))
        return _Object(b.STORAGE, self._new_id(b.STORAGE), spec.name, b.OFFLINE, facts, spec.entity_id)

    def _new_network(self, spec: NetworkSpec) -> _Object:
        if spec.address:
            net = _parse_network(spec.address)
            address = spec.address
        else:
            net = self._free_range()
            address = str(net)
        if spec.gateway:
            gateway = _parse_address("gateway", spec.gateway)
            if gateway not in net:
                raise BackendError(f"gateway {spec.gateway} is outside the network range {address}")
        else:
            gateway = next(net.hosts(), net.network_address)
        if spec.allocation not in (None, "dynamic", "static"):
            raise BackendError(f"allocation must be dynamic or static, got {spec.allocation!r}")
        facts = NetworkFacts(address=address, gateway=str(gateway), allocation=spec.allocation or "dynamic")
        return _Object(b.NETWORK, self._new_id(b.NETWORK), spec.name, b.INACTIVE, facts, spec.entity_id)

    def _free_range(self) -> IPNetwork:
        """The next 10.<n>.<m>.0/24 of the pool that overlaps no existing network.

        Compared as integer spans, each network's parsed once (`_span`): parsing them all again
        and comparing `ip_network`s cost 7 us per existing network for every new one."""
        used = [span for obj in self._by_resource.get(b.NETWORK, {}).values()
                if (span := _span(_net_facts(obj).address)) is not None]
        while self._next_range < 246 * 256:
            first = _POOL_FIRST + (self._next_range << 8)
            self._next_range += 1
            last = first + 255
            if not any(low <= last and first <= high for low, high in used):
                return ipaddress.ip_network((first, 24))
        raise BackendError("the simulated cloud's address pool 10.10.0.0-10.255.255.0 is exhausted")

    # ------------------------------------------------------------------ links

    def propose(self, spec: object, taken: Sequence[object]) -> object | None:
        """The device (storagelinks) or interface name and MAC (interfaces) `create` will use (Proposes).

        The client's own choices are kept; the rest is the next free name of this cloud's scheme
        (/dev/xvdb..., eth0..., 02:53:49:xx:xx:xx), free among `taken` and the links it knows.
        """
        match spec:
            case StorageLinkSpec():
                devices = self._devices_of(spec.compute_id) | {
                    f.device for f in taken if isinstance(f, StorageLinkFacts)
                }
                device = spec.device or next(d for d in _device_names() if d not in devices)
                return StorageLinkFacts(device=device, mountpoint=spec.mountpoint)
            case NetworkInterfaceSpec():
                names = self._interfaces_of(spec.compute_id) | {
                    f.interface for f in taken if isinstance(f, NetworkInterfaceFacts)
                }
                proposed = {f.mac.lower() for f in taken if isinstance(f, NetworkInterfaceFacts) and f.mac}
                return NetworkInterfaceFacts(
                    interface=spec.interface or _free_interface(names),
                    mac=spec.mac or self._free_mac(proposed),
                    address=spec.address,
                    allocation=spec.allocation,
                )
        return None

    def _devices_of(self, compute_id: str) -> set[str | None]:
        return {
            _link_facts(link).device for link in self._links_on(compute_id, b.STORAGELINK)
            if link.compute_id == compute_id
        }

    def _interfaces_of(self, compute_id: str) -> set[str | None]:
        return {
            _nic_facts(nic).interface for nic in self._links_on(compute_id, b.NETWORKINTERFACE)
            if nic.compute_id == compute_id
        }

    def _new_storagelink(self, spec: StorageLinkSpec) -> _Object:
        compute = self._require(Ref(b.COMPUTE, spec.compute_id), b.COMPUTE)
        volume = self._require(Ref(b.STORAGE, spec.storage_id), b.STORAGE)
        for link in self._links_on(volume.backend_id, b.STORAGELINK):
            if link.target_id == volume.backend_id:
                raise BackendError(f"volume {volume.name!r} is already attached to {link.compute_id}")
        devices = self._devices_of(compute.backend_id)
        if spec.device:
            if spec.device in devices:
                raise BackendError(f"compute {compute.name!r} already has a device {spec.device}")
            device = spec.device
        else:
            # /dev/xvda is the root disk of the image; data volumes follow.
            device = next(d for d in _device_names() if d not in devices)
        facts = StorageLinkFacts(device=device, mountpoint=spec.mountpoint)
        backend_id = self._new_id(b.STORAGELINK, f":{compute.backend_id}:{volume.backend_id}")
        return _Object(
            b.STORAGELINK,
            backend_id,
            spec.name,
            b.INACTIVE,
            facts,
            spec.entity_id,
            compute_id=compute.backend_id,
            target_id=volume.backend_id,
        )

    def _new_networkinterface(self, spec: NetworkInterfaceSpec) -> _Object:
        compute = self._require(Ref(b.COMPUTE, spec.compute_id), b.COMPUTE)
        reservation = self._objects.get(spec.network_id)
        if reservation is not None and reservation.resource == egi.IPRESERVATION:
            return self._nic_to_reservation(spec, compute, reservation)  # [monitoring] a floating IP
        network = self._require(Ref(b.NETWORK, spec.network_id), b.NETWORK)
        if spec.mac:
            mac = spec.mac.lower().replace("-", ":")
            if not _MAC_RE.fullmatch(mac):
                raise BackendError(f"{spec.mac!r} is not a MAC address")
            if mac in self._macs:
                raise BackendError(f"MAC address {mac} is already in use")
        else:
            mac = self._free_mac()
        names = self._interfaces_of(compute.backend_id)
        if spec.interface:
            if spec.interface in names:
                raise BackendError(f"compute {compute.name!r} already has an interface {spec.interface}")
            interface = spec.interface
        else:
            interface = _free_interface(names)
        net_facts = _net_facts(network)
        allocation = spec.allocation or net_facts.allocation or "dynamic"
        net = _range_of(network)
        used = self._addresses_on(network.backend_id)
        address: str | None = None
        if spec.address:
            host = _parse_interface_address(spec.address)
            if net is not None and host not in net:
                raise BackendError(f"address {spec.address} is outside network {network.name!r} ({net})")
            if host in used:
                raise BackendError(f"address {host} is already in use on network {network.name!r}")
            address = spec.address
        elif allocation != "static" and net is not None:
            # A static interface carries only the address its owner configures (GFD.224 §3.4.1.1).
            address = str(self._free_address(network, net, used))
        facts = NetworkInterfaceFacts(
            interface=interface,
            mac=mac,
            address=address,
            gateway=net_facts.gateway,
            allocation=allocation,
        )
        backend_id = self._new_id(b.NETWORKINTERFACE, f":{compute.backend_id}:{network.backend_id}")
        return _Object(
            b.NETWORKINTERFACE,
            backend_id,
            spec.name,
            b.INACTIVE,
            facts,
            spec.entity_id,
            compute_id=compute.backend_id,
            target_id=network.backend_id,
        )

    def _free_mac(self, also: Collection[str] = ()) -> str:
        """A MAC address no interface of this cloud holds, nor any of `also`."""
        while True:
            mac = MAC_PREFIX + ":" + ":".join(f"{self._rng.randrange(256):02x}" for _ in range(3))
            if mac not in self._macs and mac not in also:
                return mac

    def _addresses_on(self, network_id: str) -> set[IPAddress]:
        used: set[IPAddress] = set()
        for nic in self._links_on(network_id, b.NETWORKINTERFACE):
            address = _nic_facts(nic).address
            if nic.target_id == network_id and address:
                host = _host_of(address)
                if host is not None:  # else an adopted value we did not write: it holds nothing
                    used.add(host)
        return used

    def _free_address(self, network: _Object, net: IPNetwork, used: set[IPAddress]) -> IPAddress:
        gateway = _net_facts(network).gateway
        gateway_host = _host_of(gateway) if gateway else None
        for host in net.hosts():
            if host != gateway_host and host not in used:
                return host
        raise BackendError(f"network {network.name!r} ({net}) has no free address left")

    # ------------------------------------------------------------------ Platform (GFD.227)

    def _new_platform(self, spec: ApplicationSpec | ComponentSpec | ComponentLinkSpec) -> _Object:
        if isinstance(spec, ApplicationSpec):
            if not platform.plan_known(spec.plan):
                raise BackendError(f"the simulated cloud has no plan {spec.plan!r}")
            backend_id = self._new_id(APPLICATION)
            return _Object(APPLICATION, backend_id, spec.name, b.INACTIVE,
                           platform.application_facts(spec.name), spec.entity_id, image=spec.runtime)
        if isinstance(spec, ComponentSpec):
            chosen = platform.runtime(spec.runtime, spec.database)
            if chosen is None:
                raise BackendError(f"the simulated cloud has no runtime {spec.runtime!r}; it offers "
                                   f"{', '.join(r.name for r in platform.RUNTIMES)}")
            if not platform.plan_known(spec.plan):
                raise BackendError(f"the simulated cloud has no plan {spec.plan!r}")
            if spec.database and chosen.database is None:
                raise BackendError(f"runtime {chosen.name!r} is not a database")
            return _Object(COMPONENT, self._new_id(COMPONENT), spec.name, b.INACTIVE,
                           platform.component_facts(spec.name, chosen), spec.entity_id, image=chosen.name)
        source = self._find(Ref(APPLICATION, spec.source_id)) or self._find(Ref(COMPONENT, spec.source_id))
        target = self._find(Ref(COMPONENT, spec.target_id))
        if source is None or source.deleting:
            raise BackendError(f"the simulated cloud has no application or component {spec.source_id}")
        if target is None or target.deleting:
            raise BackendError(f"the simulated cloud has no component {spec.target_id}")
        target_facts = target.facts if isinstance(target.facts, ComponentFacts) else ComponentFacts()
        chosen = platform.runtime(target.image)
        if spec.database and (chosen is None or chosen.database is None):
            raise BackendError(f"component {target.name!r} is not a database: a database link needs one")
        facts = platform.link_facts(target_facts, chosen, self._rng)
        backend_id = self._new_id(COMPONENTLINK, f":{source.backend_id}:{target.backend_id}")
        return _Object(COMPONENTLINK, backend_id, spec.name, b.INACTIVE, facts, spec.entity_id,
                       compute_id=source.backend_id, target_id=target.backend_id)

    def _hosted_by(self, application_id: str) -> list[_Object]:
        targets = {link.target_id for link in self._links_on(application_id, COMPONENTLINK)
                   if link.compute_id == application_id}
        return [obj for obj in self._all(COMPONENT) if obj.backend_id in targets]

    # ------------------------------------------------------------------ actions and updates

    async def act(self, ref: Ref, action: Action) -> Observed:
        """Run an action after `delay`; the new state follows GFD.224 §3 (start -> active, ...).

        The simulated cloud applies an action in any state: the service enforces the state
        diagrams before it calls a driver. A volume backup or snapshot keeps the volume's state and
        is recorded in `volume_copies`.
        """
        target: str | None
        match (ref.resource, action):
            case (b.COMPUTE, Save()):
                template = await self.save(ref, action)
                observed = self._require(ref, b.COMPUTE).observed()
                return dataclasses.replace(observed, message=f"saved as image {template.name}")
            case (b.COMPUTE, Start()):
                target = b.ACTIVE
            case (b.COMPUTE, Stop(method=method)):
                _check_method("stop", method)
                target = b.INACTIVE
            case (b.COMPUTE, Restart(method=method)):
                _check_method("restart", method)
                target = b.ACTIVE
            case (b.COMPUTE, Suspend(method=method)):
                _check_method("suspend", method)
                target = b.SUSPENDED
            case (b.NETWORK, Up()):
                target = b.ACTIVE
            case (b.NETWORK, Down()):
                target = b.INACTIVE
            case (b.STORAGE, Online()):
                target = b.ONLINE
            case (b.STORAGE, Offline()):
                target = b.OFFLINE
            case (b.STORAGE, Backup() | Snapshot()):
                target = None  # recorded; the volume keeps its state (D-LEGACY-STORAGE)
            case (egi.IPRESERVATION, Up()):
                target = b.ACTIVE
            case (egi.IPRESERVATION, Down()):
                target = b.INACTIVE
            case (pt.APPLICATION | pt.COMPONENT, Start()):
                target = b.ACTIVE
            case (pt.APPLICATION | pt.COMPONENT, Stop()):
                target = b.INACTIVE
            case _:
                raise NotSupported(f"the simulated cloud has no action {action.name!r} on a {ref.resource}")
        obj = self._require(ref)
        async with self._locks.hold(obj.backend_id):
            self._require(ref)
            self._consume_failure(obj)
            obj.message = f"{action.name} in progress"
            await self._sleep()
            if self._objects.get(ref.backend_id) is not obj:
                raise BackendError(f"{ref.resource} {obj.name!r} was deleted during {action.name}")
            if target is None:
                self.volume_copies.append((ref.backend_id, action.name))
            else:
                obj.state = target
            obj.message = None
            if ref.resource == APPLICATION:
                # An application starts and stops with the components it hosts.
                for hosted in self._hosted_by(obj.backend_id):
                    hosted.state = obj.state
                    self._changes.put_nowait(Change(Ref(COMPONENT, hosted.backend_id), hosted.observed()))
            return self._observed(obj)

    async def update(self, ref: Ref, change: Update) -> Observed:
        """Grow a volume, resize or re-image a compute (Updates); None fields stay as they are."""
        obj = self._require(ref)
        async with self._locks.hold(obj.backend_id):
            self._require(ref)
            self._consume_failure(obj)
            apply = self._plan_update(obj, change)  # validate everything before touching anything
            obj.message = "updating"
            await self._sleep()
            if self._objects.get(ref.backend_id) is not obj:
                raise BackendError(f"{ref.resource} {obj.name!r} was deleted during the update")
            apply()
            obj.message = None
            return obj.observed()

    def _plan_update(self, obj: _Object, change: Update) -> Callable[[], None]:
        match (obj.resource, change):
            case (b.STORAGE, StorageUpdate(size_gib=size)):
                facts = _storage_facts(obj)
                if size is None:
                    return lambda: None
                size = _positive("size", size)
                old = facts.size_gib or 0.0
                if size < old:
                    raise BackendError(
                        f"volume {obj.name!r} cannot shrink from {old:g} GiB to {size:g} GiB: "
                        "volumes only grow (create a smaller one and copy the data)"
                    )
                new_size = size
                return lambda: setattr(obj, "facts", msgspec.structs.replace(facts, size_gib=new_size))
            case (b.COMPUTE, ComputeUpdate()):
                return self._plan_compute_update(obj, change)
            case (egi.SECURITYGROUP, SecurityGroupUpdate(rules=rules)):
                checked = _rules(rules)
                return lambda: setattr(obj, "facts", egi.SecurityGroupFacts(rules=checked))
        raise NotSupported(f"the simulated cloud cannot apply a {type(change).__name__} to a {obj.resource}")

    def _plan_compute_update(self, obj: _Object, change: ComputeUpdate) -> Callable[[], None]:
        facts = _compute_facts(obj)
        new = msgspec.structs.replace(
            facts,
            cores=_count("cores", change.cores) if change.cores is not None else facts.cores,
            memory_gib=_positive("memory", change.memory_gib)
            if change.memory_gib is not None
            else facts.memory_gib,
            architecture=change.architecture or facts.architecture,
        )
        if new.architecture not in _ARCHITECTURES:
            raise BackendError(f"the simulated cloud runs x64 and x86 machines, not {new.architecture!r}")
        if change.image is not None and self._template(b.IMAGE, change.image) is None:
            raise BackendError(f"cannot re-image compute {obj.name!r}: no image {change.image!r}")

        def apply() -> None:
            # GFD.224 §3.5.1/§3.5.2: replacing a template "MUST immediately remove the old template
            # ... and change the execution environment".
            obj.facts = new
            if change.image is not None:
                obj.image = change.image
            if change.flavour is not None:
                self._apply_flavour(obj, change.flavour)

        return apply

    # ------------------------------------------------------------------ observation, adoption, inventory

    async def observe(self, ref: Ref) -> Observed | None:
        """The object's current state, or None when it does not exist."""
        obj = self._find(ref)
        return self._observed(obj) if obj is not None else None

    async def adopt(self, ref: Ref, observed: Observed) -> None:
        """Record an object occipy stored before a restart, with its allocations (Adopts).

        Link ids carry their ends, so attachments, device names, MACs and addresses are all
        taken again and never handed out twice. An id already known is left as it is.
        """
        if ref.backend_id in self._objects or ref.resource not in _FACTS:
            return
        compute_id = target_id = None
        if ref.resource in (b.STORAGELINK, b.NETWORKINTERFACE, egi.SECURITYGROUPLINK, COMPONENTLINK):
            match = _LINK_ID_RE.match(ref.backend_id)
            if match is not None:
                compute_id, target_id = match.group(2), match.group(3)
        state = observed.state if observed.state in _STATES[ref.resource] else b.ERROR
        facts_type = _FACTS[ref.resource]
        facts = observed.facts if isinstance(observed.facts, facts_type) else facts_type()
        hostname = facts.hostname if isinstance(facts, ComputeFacts) else None
        name = hostname.partition(".")[0] if hostname else ref.backend_id
        self._add(_Object(
            ref.resource,
            ref.backend_id,
            name,
            state,
            facts,
            message=observed.message,
            compute_id=compute_id,
            target_id=target_id,
        ))

    async def inventory(self) -> Sequence[Tagged]:
        """Every object created with an entity id (Inventories)."""
        return [
            Tagged(Ref(obj.resource, obj.backend_id), obj.entity_id)
            for obj in self._objects.values()
            if obj.entity_id
        ]

    # ------------------------------------------------------------------ [monitoring] Samples and EGI types

    async def sample(self, ref: Ref) -> Reading | None:
        """Synthetic counters of a compute or volume (Samples; docs/monitoring.md).

        While a compute is active it uses a quarter of each core, reads 1 MiB/s and writes
        0.5 MiB/s, receives 20 KiB/s and sends 10 KiB/s, and holds 40 % of its memory; a volume
        online is read at 1 MiB/s and written at 0.5 MiB/s. Anything else stands still.
        """
        obj = self._find(ref)
        if obj is None or ref.resource not in self.sampled:
            return None
        now = time.time()
        running = obj.state == (b.ACTIVE if ref.resource == b.COMPUTE else b.ONLINE)
        elapsed = max(now - obj.counted, 0.0) if obj.counted else 0.0
        obj.counted = now
        counters = obj.counters
        if ref.resource == b.COMPUTE:
            facts = _compute_facts(obj)
            cpus = facts.cores or _DEFAULT_CORES
            rates = {"cpu": 0.25 * cpus, "read": 1 << 20, "write": 1 << 19, "rx": 20 << 10, "tx": 10 << 10}
            for name, rate in rates.items():
                counters[name] = counters.get(name, 0.0) + (rate * elapsed if running else 0.0)
            total = (facts.memory_gib or _DEFAULT_MEMORY_GIB) * (1 << 30)
            return Reading(taken=now, running=running, cpu_seconds=counters["cpu"], cpus=cpus,
                           memory_used_bytes=0.4 * total if running else 0.0, memory_total_bytes=total,
                           disk_read_bytes=counters["read"], disk_write_bytes=counters["write"],
                           net_rx_bytes=counters["rx"], net_tx_bytes=counters["tx"])
        for name, rate in {"read": 1 << 20, "write": 1 << 19}.items():
            counters[name] = counters.get(name, 0.0) + (rate * elapsed if running else 0.0)
        return Reading(taken=now, running=running, disk_read_bytes=counters["read"],
                       disk_write_bytes=counters["write"])

    def _observed(self, obj: _Object) -> Observed:
        if obj.resource == egi.IPRESERVATION:
            # "whether the address is currently attached" (rOCCI-core occi.ipreservation.used)
            facts = obj.facts if isinstance(obj.facts, egi.IpReservationFacts) else egi.IpReservationFacts()
            used = any(nic.target_id == obj.backend_id for nic in self._all(b.NETWORKINTERFACE))
            obj.facts = dataclasses.replace(facts, used=used)
        return obj.observed()

    def _new_securitygroup(self, spec: egi.SecurityGroupSpec) -> _Object:
        facts = egi.SecurityGroupFacts(rules=_rules(spec.rules))
        return _Object(egi.SECURITYGROUP, self._new_id(egi.SECURITYGROUP), spec.name, b.INACTIVE, facts,
                       spec.entity_id)

    def _new_securitygrouplink(self, spec: egi.SecurityGroupLinkSpec) -> _Object:
        compute = self._require(Ref(b.COMPUTE, spec.compute_id), b.COMPUTE)
        group = self._require(Ref(egi.SECURITYGROUP, spec.group_id), egi.SECURITYGROUP)
        for link in self._all(egi.SECURITYGROUPLINK):
            if link.compute_id == compute.backend_id and link.target_id == group.backend_id:
                raise BackendError(f"compute {compute.name!r} is already in security group {group.name!r}")
        backend_id = self._new_id(egi.SECURITYGROUPLINK, f":{compute.backend_id}:{group.backend_id}")
        return _Object(egi.SECURITYGROUPLINK, backend_id, spec.name, b.INACTIVE, None, spec.entity_id,
                       compute_id=compute.backend_id, target_id=group.backend_id)

    def _reserved(self) -> set[str]:
        return {f.address for obj in self._all(egi.IPRESERVATION)
                if isinstance(f := obj.facts, egi.IpReservationFacts) and f.address}

    def _new_ipreservation(self, spec: egi.IpReservationSpec) -> _Object:
        if spec.pool not in (None, FLOATING_POOL_NAME):
            raise BackendError(f"the simulated cloud has no floating IP pool {spec.pool!r}; it has "
                               f"{FLOATING_POOL_NAME!r} ({FLOATING_POOL})")
        taken = self._reserved()
        if spec.address:
            host = _parse_address("address", spec.address)
            if host not in FLOATING_POOL:
                raise BackendError(f"address {host} is not in the floating IP pool {FLOATING_POOL}")
            if str(host) in taken:
                raise BackendError(f"address {host} is already reserved")
            address = str(host)
        else:
            address = next((str(h) for h in FLOATING_POOL.hosts() if str(h) not in taken), "")
            if not address:
                raise BackendError(f"the floating IP pool {FLOATING_POOL} has no free address left")
        facts = egi.IpReservationFacts(address=address, used=False, pool=FLOATING_POOL_NAME)
        return _Object(egi.IPRESERVATION, self._new_id(egi.IPRESERVATION), spec.name, b.INACTIVE, facts,
                       spec.entity_id)

    def _nic_to_reservation(self, spec: NetworkInterfaceSpec, compute: _Object, reservation: _Object) -> _Object:
        """An interface whose target is a floating IP: the compute gets the reserved address."""
        if reservation.deleting:
            raise BackendError(f"ipreservation {reservation.name!r} is being deleted")
        if any(nic.target_id == reservation.backend_id
               for nic in self._links_on(reservation.backend_id, b.NETWORKINTERFACE)):
            raise BackendError(f"the floating address of {reservation.name!r} is already attached")
        facts = reservation.facts if isinstance(reservation.facts, egi.IpReservationFacts) else None
        names = self._interfaces_of(compute.backend_id)
        nic_facts = NetworkInterfaceFacts(
            interface=spec.interface if spec.interface and spec.interface not in names else _free_interface(names),
            mac=spec.mac or self._free_mac(), address=facts.address if facts else None,
            allocation="static")
        backend_id = self._new_id(b.NETWORKINTERFACE, f":{compute.backend_id}:{reservation.backend_id}")
        return _Object(b.NETWORKINTERFACE, backend_id, spec.name, b.INACTIVE, nic_facts, spec.entity_id,
                       compute_id=compute.backend_id, target_id=reservation.backend_id)

    # ------------------------------------------------------------------ test hooks

    def fail_next(self, backend_id: str, message: str) -> None:
        """Make the next act/update/save on `backend_id` fail with BackendError(message).

        Like a real failed operation, it leaves the object in state `error` with the message.
        """
        self._fail_next[backend_id] = message

    async def simulate_external(self, ref: Ref, state: str | None) -> None:
        """Change an object as if someone used the cloud directly; None deletes it.

        Each affected object (a deleted resource's links first) is reported by `changes()`.
        Raises ValueError for an unknown object or a state outside the type's vocabulary.
        """
        obj = self._find(ref)
        if obj is None:
            raise ValueError(f"the simulated cloud has no {ref.resource} {ref.backend_id}")
        if state is None:
            for gone in self._remove(ref.backend_id):
                self._changes.put_nowait(Change(Ref(gone.resource, gone.backend_id), None))
            return
        if state not in _STATES[ref.resource]:
            raise ValueError(
                f"{state!r} is not a {ref.resource} state; use one of {', '.join(sorted(_STATES[ref.resource]))}"
            )
        obj.state = state
        obj.message = None
        self._changes.put_nowait(Change(ref, obj.observed()))

    # ------------------------------------------------------------------ helpers

    def _consume_failure(self, obj: _Object) -> None:
        message = self._fail_next.pop(obj.backend_id, None)
        if message is not None:
            obj.state = b.ERROR
            obj.message = message
            raise BackendError(message)

    async def _sleep(self) -> None:
        if self.delay > 0:
            await asyncio.sleep(self.delay)

    def _new_id(self, resource: str, suffix: str = "") -> str:
        while True:
            backend_id = f"{_ID_PREFIX[resource]}-{self._rng.getrandbits(32):08x}{suffix}"
            if backend_id not in self._objects:
                return backend_id

    def _find(self, ref: Ref) -> _Object | None:
        obj = self._objects.get(ref.backend_id)
        return obj if obj is not None and obj.resource == ref.resource else None

    def _require(self, ref: Ref, resource: str | None = None) -> _Object:
        obj = self._find(ref)
        if obj is None or (resource is not None and ref.resource != resource):
            raise BackendError(f"the simulated cloud has no {resource or ref.resource} {ref.backend_id}")
        if obj.deleting:
            raise BackendError(f"{ref.resource} {obj.name!r} is being deleted")
        return obj

    def _all(self, resource: str) -> list[_Object]:
        return list(self._by_resource.get(resource, {}).values())

    def _template(self, family: str, name: str) -> Template | None:
        return next((t for t in self.templates() if t.family == family and t.name == name), None)


# ---------------------------------------------------------------------------- pure helpers


def _compute_facts(obj: _Object) -> ComputeFacts:
    return obj.facts if isinstance(obj.facts, ComputeFacts) else ComputeFacts()


def _storage_facts(obj: _Object) -> StorageFacts:
    return obj.facts if isinstance(obj.facts, StorageFacts) else StorageFacts()


def _net_facts(obj: _Object) -> NetworkFacts:
    return obj.facts if isinstance(obj.facts, NetworkFacts) else NetworkFacts()


def _mac_of(obj: _Object) -> str | None:
    """An interface's MAC address in lower case (None: not an interface, or it has none)."""
    facts = obj.facts
    return facts.mac.lower() if isinstance(facts, NetworkInterfaceFacts) and facts.mac else None


def _link_facts(obj: _Object) -> StorageLinkFacts:
    return obj.facts if isinstance(obj.facts, StorageLinkFacts) else StorageLinkFacts()


def _nic_facts(obj: _Object) -> NetworkInterfaceFacts:
    return obj.facts if isinstance(obj.facts, NetworkInterfaceFacts) else NetworkInterfaceFacts()


def _check_method(action: str, method: str) -> None:
    # The service checks action attributes against the Action's enums first; this only keeps a
    # bad call from doing something undefined.
    allowed = _METHODS[action]
    if method not in allowed:
        raise NotSupported(
            f"the simulated cloud has no {action} method {method!r}; "
            f"it has {', '.join(sorted(allowed - {'deffered'}))}"
        )


def _device_names() -> Iterator[str]:
    # /dev/xvdb ... /dev/xvdz, then /dev/xvdaa ...: Xen-style block device names.
    letters = "abcdefghijklmnopqrstuvwxyz"
    for second in letters[1:]:
        yield f"/dev/xvd{second}"
    for first in letters:
        for second in letters:
            yield f"/dev/xvd{first}{second}"


def _free_interface(taken: set[str | None]) -> str:
    return next(f"eth{n}" for n in range(len(taken) + 1) if f"eth{n}" not in taken)


def _numbered(wanted: str) -> Iterator[str]:
    yield wanted
    n = 2
    while True:
        yield f"{wanted}-{n}"
        n += 1


_POOL_FIRST: Final = int(ipaddress.IPv4Address("10.10.0.0"))  # the first /24 `_free_range` offers


@functools.lru_cache(maxsize=65_536)
def _network_of(address: str | None) -> IPNetwork | None:
    """A network's range, parsed once per address string; None when it has none (no address, or
    not a network). `ip_network` objects are immutable, so the cached one can be shared."""
    if not address:
        return None
    try:
        return ipaddress.ip_network(address, strict=False)
    except ValueError:
        return None


@functools.lru_cache(maxsize=65_536)
def _span(address: str | None) -> tuple[int, int] | None:
    """The first and last IPv4 address of a network's range as integers; None when it has none
    (no address, not a network, IPv6: no IPv4 /24 overlaps it)."""
    net = _network_of(address)
    if net is None or net.version != 4:
        return None
    return int(net.network_address), int(net.broadcast_address)


@functools.lru_cache(maxsize=65_536)
def _host_of(address: str) -> IPAddress | None:
    """The host address of an interface's address ("10.10.0.2/24" or "10.10.0.2"), parsed once
    (a network's used addresses are read at every new interface on it); None when it is none."""
    try:
        return ipaddress.ip_interface(address).ip
    except ValueError:
        return None


def _range_of(network: _Object) -> IPNetwork | None:
    return _network_of(_net_facts(network).address)


def _parse_network(value: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise BackendError(f"network address {value!r} is not an address range (CIDR)") from None


def _parse_address(name: str, value: str) -> IPAddress:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise BackendError(f"{name} {value!r} is not an IP address") from None


def _parse_interface_address(value: str) -> IPAddress:
    # GFD.224's examples write "192.168.0.1/24": accept a prefix (infrastructure.md §7).
    try:
        return ipaddress.ip_interface(value).ip
    except ValueError:
        raise BackendError(f"interface address {value!r} is not an IP address") from None


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise BackendError(f"{name} must be a number above 0, got {value!r}")
    return float(value)


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BackendError(f"{name} must be a whole number of 1 or more, got {value!r}")
    return value


def _rules(rules: Sequence[FirewallRule]) -> tuple[FirewallRule, ...]:
    """[monitoring] The rules, checked as a cloud would (ports in range, a known direction)."""
    for rule in rules:
        if rule.direction not in ("inbound", "outbound"):
            raise BackendError(f"a security rule goes inbound or outbound, not {rule.direction!r}")
        if rule.ports is not None and not 1 <= rule.ports[0] <= rule.ports[1] <= 65535:
            raise BackendError(f"port range {rule.ports[0]}-{rule.ports[1]} is not within 1-65535")
    return tuple(rules)

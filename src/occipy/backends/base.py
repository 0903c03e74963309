"""The driver contract: one small core protocol, optional capability protocols, OCCI-free values.

A driver fronts one cloud. It never sees an OCCI entity, attribute name or category: the service
turns entities into the typed specs, updates and actions below (`service/bindings/`), and turns
the typed facts a driver reports back into OCCI attributes. Resource types are open: a new type
is a spec class registered with `@resource("name")`, its facts class and (in the service) a
binding; nothing here lists them all.

Every driver implements `Driver`. Where its cloud can, it also implements the small
`@runtime_checkable` protocols `Updates`, `Saves`, `Watches`, `Adopts`, `Inventories`,
`Proposes`, `Samples`; the service asks `isinstance(driver, Saves)` once, at start-up, to decide what to
offer. `Driver.supports` says which resource types, actions and live updates the cloud has.

Errors: raise `errors.BackendError` when the cloud refused or failed (502; the entity goes to
`error`), `errors.BackendUnavailable` when it cannot be reached (503), `errors.NotSupported`
for something it cannot do (501). Blocking SDKs run under `anyio.to_thread.run_sync`.
Imports only the standard library and msgspec (`Ref` is a frozen Struct, D-STRUCTS; the core
facts values are frozen Structs of scalars, which Python's collector does not track,
D-UNTRACKED: change one with `msgspec.structs.replace`); drivers also import `errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Final, Protocol, Self, TypeVar, runtime_checkable

import msgspec

# ---- resource types ----------------------------------------------------------------------------

# The Infrastructure types (GFD.224 §3); extensions register more with @resource.
COMPUTE: Final = "compute"
STORAGE: Final = "storage"
NETWORK: Final = "network"
STORAGELINK: Final = "storagelink"
NETWORKINTERFACE: Final = "networkinterface"

# Lifecycle words a driver reports in `Observed.state` (the service maps them per type).
ACTIVE: Final = "active"
INACTIVE: Final = "inactive"
SUSPENDED: Final = "suspended"
ONLINE: Final = "online"
OFFLINE: Final = "offline"
ERROR: Final = "error"

_SPEC_TYPES: dict[type, str] = {}
S = TypeVar("S", bound=type)


def resource(name: str) -> Callable[[S], S]:
    """Register a spec class as the creation request of the resource type `name`."""

    def register(cls: S) -> S:
        if cls in _SPEC_TYPES:
            raise ValueError(f"{cls.__name__} is already registered")
        _SPEC_TYPES[cls] = name
        cls.resource = name  # type: ignore[attr-defined]
        return cls

    return register


def resource_of(spec: object) -> str:
    """The resource type a spec creates."""
    try:
        return _SPEC_TYPES[type(spec)]
    except KeyError:
        raise TypeError(f"{type(spec).__name__} is not a registered spec") from None


def spec_types() -> Mapping[type, str]:
    """Every registered spec class and its resource type."""
    return dict(_SPEC_TYPES)


class Ref(msgspec.Struct, frozen=True):
    """One object in a cloud: its resource type and the cloud's own identifier."""

    resource: str
    backend_id: str


# ---- templates ------------------------------------------------------------------------------------

# Template families: the service offers IMAGE ones as os_tpl and FLAVOUR ones as resource_tpl mixins.
IMAGE: Final = "image"
FLAVOUR: Final = "flavour"
# Platform template families (GFD.227 §3.4): RUNTIME ones (what a component runs: a framework, a
# database) are offered as app_tpl mixins, PLAN ones (a size preset for applications and
# components) as res_tpl mixins.
RUNTIME: Final = "runtime"
PLAN: Final = "plan"
# EGI floating addresses: a POOL template is a pool an ipreservation can take its address from,
# offered as a child of the `floatingippool` mixin (monitoring-and-extensions.md §4.2).
POOL: Final = "pool"


@dataclass(frozen=True, slots=True)
class Template:
    """Something the cloud offers to create from: an image, a flavour, a runtime, a plan or an
    address pool (provider names, not terms).

    `name` is the cloud's own identifier (the service derives a strict OCCI term from it); the
    sizes are what a flavour gives (None: it does not say).
    """

    family: str
    name: str
    title: str
    cores: int | None = None
    memory_gib: float | None = None
    architecture: str | None = None
    disk_gib: float | None = None


# ---- creation requests (specs) -------------------------------------------------------------------


@resource(COMPUTE)
@dataclass(frozen=True, slots=True)
class ComputeSpec:
    name: str
    entity_id: str = ""  # recorded on the object where the cloud has labels, tags or metadata
    cores: int | None = None
    memory_gib: float | None = None
    architecture: str | None = None
    hostname: str | None = None
    share: int | None = None
    image: str | None = None  # a Template.name of family IMAGE (None: the cloud's default)
    flavour: str | None = None  # a Template.name of family FLAVOUR
    ssh_public_key: str | None = None
    user_data: bytes | None = None


@resource(STORAGE)
@dataclass(frozen=True, slots=True)
class StorageSpec:
    name: str
    size_gib: float
    entity_id: str = ""


@resource(NETWORK)
@dataclass(frozen=True, slots=True)
class NetworkSpec:
    name: str
    entity_id: str = ""
    address: str | None = None  # CIDR, e.g. "10.20.0.0/24" (None: the cloud picks a free range)
    gateway: str | None = None
    allocation: str | None = None  # "dynamic" | "static"
    vlan: int | None = None
    label: str | None = None


@resource(STORAGELINK)
@dataclass(frozen=True, slots=True)
class StorageLinkSpec:
    name: str
    compute_id: str  # backend ids of the ends
    storage_id: str
    entity_id: str = ""
    device: str | None = None  # the device the client asked for (None: the driver picks)
    mountpoint: str | None = None


@resource(NETWORKINTERFACE)
@dataclass(frozen=True, slots=True)
class NetworkInterfaceSpec:
    name: str
    compute_id: str
    network_id: str
    entity_id: str = ""
    interface: str | None = None  # the name the client asked for (None: the driver picks)
    mac: str | None = None
    address: str | None = None
    allocation: str | None = None


# ---- what the cloud reports (facts) ----------------------------------------------------------------


class ComputeFacts(msgspec.Struct, frozen=True):
    cores: int | None = None
    memory_gib: float | None = None
    architecture: str | None = None
    hostname: str | None = None


class StorageFacts(msgspec.Struct, frozen=True):
    size_gib: float | None = None


class NetworkFacts(msgspec.Struct, frozen=True):
    address: str | None = None  # CIDR
    gateway: str | None = None
    allocation: str | None = None


class StorageLinkFacts(msgspec.Struct, frozen=True):
    device: str | None = None
    mountpoint: str | None = None


class NetworkInterfaceFacts(msgspec.Struct, frozen=True):
    interface: str | None = None
    mac: str | None = None
    address: str | None = None
    gateway: str | None = None
    allocation: str | None = None


@dataclass(frozen=True, slots=True)
class Observed:
    """What the cloud reports about one object: its state word, a message, and typed facts.

    `state` is one of the lifecycle words above that fits the type (compute: active, inactive,
    suspended, error; storage: online, offline, error; network and links: active, inactive,
    error). `facts` is the type's facts value, or None when the cloud says nothing more.
    """

    backend_id: str
    state: str
    message: str | None = None
    facts: object | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A change made outside occipy; `observed` None means the object is gone."""

    ref: Ref
    observed: Observed | None


@dataclass(frozen=True, slots=True)
class Tagged:
    """An object that carries an occipy entity id (found by `Inventories.inventory`)."""

    ref: Ref
    entity_id: str


# ---- actions ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    name: ClassVar[str] = "start"


@dataclass(frozen=True, slots=True)
class Stop:
    name: ClassVar[str] = "stop"
    method: str = "graceful"  # graceful | acpioff | poweroff


@dataclass(frozen=True, slots=True)
class Restart:
    name: ClassVar[str] = "restart"
    method: str = "graceful"  # graceful | warm | cold


@dataclass(frozen=True, slots=True)
class Suspend:
    name: ClassVar[str] = "suspend"
    method: str = "suspend"  # hibernate | suspend


@dataclass(frozen=True, slots=True)
class Save:
    """Snapshot a compute into a new image (run through `Saves.save`, which returns the template)."""

    name: ClassVar[str] = "save"
    image_name: str | None = None
    method: str = "hot"  # hot | deferred


@dataclass(frozen=True, slots=True)
class Up:
    name: ClassVar[str] = "up"


@dataclass(frozen=True, slots=True)
class Down:
    name: ClassVar[str] = "down"


@dataclass(frozen=True, slots=True)
class Online:
    name: ClassVar[str] = "online"


@dataclass(frozen=True, slots=True)
class Offline:
    name: ClassVar[str] = "offline"


@dataclass(frozen=True, slots=True)
class Backup:
    """Back a volume up (OCCI 1.1 storage `backup`, docs/decisions.md D-LEGACY-STORAGE); its state stays."""

    name: ClassVar[str] = "backup"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Snapshot a volume (OCCI 1.1 storage `snapshot`, D-LEGACY-STORAGE); its state stays."""

    name: ClassVar[str] = "snapshot"


@dataclass(frozen=True, slots=True)
class Custom:
    """An action of an extension type that has no class of its own: its name and plain parameters."""

    name: str
    params: Mapping[str, str | int | float | bool] = field(default_factory=dict)


Action = Start | Stop | Restart | Suspend | Save | Up | Down | Online | Offline | Backup | Snapshot | Custom


# ---- live updates ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComputeUpdate:
    """Changes to a running compute; None fields stay as they are (GFD.224 §3.5 template replacement)."""

    cores: int | None = None
    memory_gib: float | None = None
    architecture: str | None = None
    image: str | None = None  # replace the OS (a Template.name of family IMAGE)
    flavour: str | None = None  # replace the flavour (a Template.name of family FLAVOUR)


@dataclass(frozen=True, slots=True)
class StorageUpdate:
    size_gib: float | None = None


@dataclass(frozen=True, slots=True)
class FirewallRule:
    """One rule of a security group, OCCI-free (the EGI/rOCCI rule format, docs/extensions.md D-EXT-EGI-RULES).

    `direction` is "inbound" or "outbound"; `protocol` a lower-case IANA keyword or a number as
    text ("tcp", "udp", "icmp", "6"); `ports` the first and last port (None: every port);
    `remote` a CIDR prefix (None: anywhere); `ipversion` 4 or 6.
    """

    direction: str
    protocol: str
    ports: tuple[int, int] | None = None
    remote: str | None = None
    ipversion: int = 4


@dataclass(frozen=True, slots=True)
class SecurityGroupUpdate:
    """Replace the rules of a live security group (every object that uses it follows)."""

    rules: tuple[FirewallRule, ...] = ()


Update = ComputeUpdate | StorageUpdate | SecurityGroupUpdate


@dataclass(frozen=True, slots=True)
class Support:
    """What a cloud can do with one resource type.

    `actions` are `Action.name` values it runs; `updates` are the field names of the type's update
    value it can apply to a live object (e.g. {"size_gib"} for storage).
    """

    actions: frozenset[str] = frozenset()
    updates: frozenset[str] = frozenset()


# ---- the protocols ------------------------------------------------------------------------------------


class Driver(Protocol):
    """One cloud. server.py builds it from settings, then `open()`s it once."""

    name: str
    # The resource types this cloud provides, with the actions and updates it supports for each.
    supports: Mapping[str, Support]

    @classmethod
    def from_options(cls, options: Mapping[str, str], data_dir: Path) -> Self:
        """Build from string settings (--driver-opt, OCCIPY_<DRIVER>_<KEY>, config); ValueError if bad."""

    async def open(self) -> None:
        """Connect; raise BackendUnavailable with a clear message when the cloud is unreachable."""

    async def close(self) -> None:
        """Disconnect and stop background work."""

    def templates(self) -> Sequence[Template]:
        """The images and flavours this cloud offers (read after open(), and again after a save)."""

    async def create(self, spec: object) -> Observed:
        """Create (and for computes, boot) the object a registered spec describes; return it when done."""

    async def delete(self, ref: Ref) -> None:
        """Delete the object (stopping or detaching it first if needed); a missing one is not an error."""

    async def observe(self, ref: Ref) -> Observed | None:
        """The current state of the object, or None when it no longer exists."""

    async def act(self, ref: Ref, action: Action) -> Observed:
        """Run an action listed in `supports[ref.resource].actions`; return the object afterwards."""


@runtime_checkable
class Updates(Protocol):
    """The cloud can change live objects (resize, replace the image or flavour)."""

    async def update(self, ref: Ref, change: Update) -> Observed:
        """Apply the change (only fields listed in `supports[ref.resource].updates` are set)."""


@runtime_checkable
class Saves(Protocol):
    """The cloud can snapshot a compute into a new image."""

    async def save(self, ref: Ref, request: Save) -> Template:
        """Make the image and return it as a template (also listed by `templates()` afterwards)."""


@runtime_checkable
class Watches(Protocol):
    """Objects can change outside occipy: the service follows the stream and reconciles periodically."""

    def changes(self) -> AsyncIterator[Change]:
        """Changes as they happen (lifecycle events); may never yield."""


@runtime_checkable
class Adopts(Protocol):
    """The driver must be told, at start-up, about every object occipy manages (in-memory clouds)."""

    async def adopt(self, ref: Ref, observed: Observed) -> None:
        """Learn about an object occipy already manages."""


@runtime_checkable
class Inventories(Protocol):
    """The cloud labels objects with the entity id: after a crash, lost objects can be found."""

    async def inventory(self) -> Sequence[Tagged]:
        """Every object of this cloud that carries an occipy entity id."""


# ---- monitoring (occipy monitoring, docs/monitoring.md) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """What a cloud reports about one object at one moment: counters and gauges, OCCI-free.

    Counters (`cpu_seconds`, the byte counters) only grow while the object lives; the service
    turns two readings into rates. None: the cloud does not know this value for this object.
    `running` is whether the object is up (a compute running, a volume online, a container
    running); `taken` is the time of the reading (epoch seconds).
    """

    taken: float
    running: bool
    cpu_seconds: float | None = None  # CPU time used since the object started
    cpus: int | None = None
    memory_used_bytes: float | None = None
    memory_total_bytes: float | None = None
    disk_read_bytes: float | None = None
    disk_write_bytes: float | None = None
    net_rx_bytes: float | None = None
    net_tx_bytes: float | None = None


@runtime_checkable
class Samples(Protocol):
    """The cloud can report counters of its objects (monitoring: sensors and collectors measure).

    `sampled` lists the resource types it can measure (e.g. {"compute", "storage"}).
    """

    sampled: frozenset[str]

    async def sample(self, ref: Ref) -> Reading | None:
        """One reading of the object now, or None when it does not exist."""


@runtime_checkable
class Proposes(Protocol):
    """The driver names link devices before the cloud call (GFD.224 §3.4: multiplicity-1 attributes)."""

    def propose(self, spec: object, taken: Sequence[object]) -> object | None:
        """The facts (device, interface, MAC) the driver will use for this link spec.

        `taken` are the facts of the compute's other links of the same type.
        """

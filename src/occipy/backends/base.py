"""The Driver protocol every cloud driver implements, and the OCCI-free values it exchanges.

Drivers never see an Entity: the service turns OCCI attributes into specs, and drivers answer
with `Observed` values in OCCI state vocabulary. Long calls are awaited by the service's job
worker (`service/jobs.py`), which records progress; blocking SDKs run under
`anyio.to_thread.run_sync`. Errors: raise `errors.BackendError` (the cloud refused or failed:
502, entity goes to `error`) or `errors.BackendUnavailable` (cloud unreachable: 503).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol, Self, Union

from occipy.model.category import AttributeValue


class ResourceType(str, Enum):
    """The Infrastructure types a driver can provide (GFD.224 §3)."""

    COMPUTE = "compute"
    STORAGE = "storage"
    NETWORK = "network"
    STORAGELINK = "storagelink"
    NETWORKINTERFACE = "networkinterface"


class Capability(str, Enum):
    """What a driver can do; read at start-up to decide which kinds and actions are offered."""

    COMPUTE = "compute"
    STORAGE = "storage"
    NETWORK = "network"
    STORAGELINK = "storagelink"
    NETWORKINTERFACE = "networkinterface"
    SAVE = "save"  # compute save action: snapshot into a new os_tpl
    RESIZE_STORAGE = "resize_storage"  # occi.storage.size update on an existing volume
    RESIZE_COMPUTE = "resize_compute"  # cores/memory/resource_tpl change on an existing compute
    REIMAGE = "reimage"  # os_tpl replacement on an existing compute
    EXTERNAL_CHANGES = "external_changes"  # state can change outside occipy: reconcile it


@dataclass(frozen=True, slots=True)
class Template:
    """A provider template offered as a mixin: an OS image (os_tpl) or a flavour (resource_tpl).

    `defaults` are OCCI attribute defaults the template supplies (e.g. occi.compute.cores).
    """

    family: str  # "os_tpl" or "resource_tpl"
    term: str
    title: str
    defaults: Mapping[str, AttributeValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ComputeSpec:
    name: str
    cores: int | None = None
    memory_gib: float | None = None
    architecture: str | None = None
    hostname: str | None = None
    share: int | None = None
    os_template: str | None = None  # a Template.term of family os_tpl
    resource_template: str | None = None  # a Template.term of family resource_tpl
    ssh_public_key: str | None = None
    user_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class StorageSpec:
    name: str
    size_gib: float


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    name: str
    address: str | None = None  # CIDR, e.g. "10.20.0.0/24"
    gateway: str | None = None
    allocation: str | None = None  # "dynamic" | "static"
    vlan: int | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class StorageLinkSpec:
    name: str
    compute_id: str  # backend ids
    storage_id: str
    deviceid: str | None = None
    mountpoint: str | None = None


@dataclass(frozen=True, slots=True)
class NetworkInterfaceSpec:
    name: str
    compute_id: str
    network_id: str
    mac: str | None = None
    address: str | None = None
    allocation: str | None = None


Spec = Union[ComputeSpec, StorageSpec, NetworkSpec, StorageLinkSpec, NetworkInterfaceSpec]

SPEC_TYPES: Mapping[type, ResourceType] = {
    ComputeSpec: ResourceType.COMPUTE,
    StorageSpec: ResourceType.STORAGE,
    NetworkSpec: ResourceType.NETWORK,
    StorageLinkSpec: ResourceType.STORAGELINK,
    NetworkInterfaceSpec: ResourceType.NETWORKINTERFACE,
}


@dataclass(frozen=True, slots=True)
class Observed:
    """What the cloud reports about one object, in OCCI terms.

    `state` is the OCCI state value (compute: active/inactive/suspended/error; storage:
    online/offline/error; network and links: active/inactive/error). `attributes` are OCCI
    attribute values the cloud decided (occi.networkinterface.mac, .address, occi.storagelink.deviceid, ...).
    """

    backend_id: str
    state: str
    message: str | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    """A change that happened outside occipy; `observed` None means the object is gone."""

    resource: ResourceType
    backend_id: str
    observed: Observed | None


class Driver(Protocol):
    """One cloud. Instances are created by server.py from settings, then `open()`ed once."""

    name: str
    capabilities: frozenset[Capability]

    @classmethod
    def from_options(cls, options: Mapping[str, str], data_dir: Path) -> Self:
        """Build from string settings (--driver-opt, OCCIPY_<DRIVER>_<KEY>, config); ValueError if bad."""

    async def open(self) -> None:
        """Connect; raise BackendUnavailable with a clear message when the cloud is unreachable."""

    async def close(self) -> None:
        """Disconnect and stop background work."""

    def templates(self) -> Sequence[Template]:
        """The os_tpl and resource_tpl templates this cloud offers (read after open())."""

    async def adopt(self, resource: ResourceType, backend_id: str, observed: Observed) -> None:
        """Learn about an object occipy already manages (called at start-up for every stored entity)."""

    async def create(self, spec: Spec) -> Observed:
        """Create (and for computes, boot) the object; return what the cloud reports when done."""

    async def delete(self, resource: ResourceType, backend_id: str) -> None:
        """Delete the object (stopping it first if needed); deleting a missing object is not an error."""

    async def act(self, resource: ResourceType, backend_id: str, action: str,
                  params: Mapping[str, AttributeValue]) -> Observed:
        """Run an OCCI action by term ("start", "stop", "up", "online", ...) with its parameters."""

    async def update(self, resource: ResourceType, backend_id: str,
                     changes: Mapping[str, AttributeValue]) -> Observed:
        """Apply changed OCCI attributes to an existing object (e.g. occi.storage.size resize).

        Template replacement on a compute arrives as the keys "os_tpl" / "resource_tpl" whose value
        is the new Template.term (GFD.224 §3.5.1-§3.5.2: replace and change the environment).
        """

    async def save(self, backend_id: str, name: str | None, method: str) -> Template:
        """Snapshot a compute into a new os_tpl template (compute save action)."""

    async def observe(self, resource: ResourceType, backend_id: str) -> Observed | None:
        """The current state of the object, or None when it no longer exists."""

    def changes(self) -> AsyncIterator[Change]:
        """Changes made outside occipy, as they happen (lifecycle events); may never yield."""

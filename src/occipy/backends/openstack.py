"""OpenStackDriver: OCCI Infrastructure on OpenStack (Nova, Cinder, Neutron, Glance, Keystone).

compute = Nova server (Glance images as os_tpl, flavors as resource_tpl), storage = Cinder volume,
storagelink = a volume attachment, network = Neutron network with one subnet, networkinterface =
a Neutron port plugged into the server; the EGI types on Neutron: ipreservation = a floating IP
(external networks as floatingippool children), a networkinterface to it = the association,
securitygroup = a security group, securitygrouplink = the group on the server's ports
(`_openstack_egi.py`). Keystone credentials come from a clouds.yaml entry or
explicit settings (`_openstack_settings.py`). Every object carries its entity id (Nova and
Cinder metadata, Neutron tags), so `inventory()` finds what a crash left behind; nova has no
event stream for users, so `changes()` polls (one listing per resource type). The mapping, the
differences from ooi and the limits are in docs/drivers/openstack.md. openstacksdk blocks: its
calls run in worker threads (`_openstack_ops.py`, `_openstack_listing.py`), the waits for
nova/cinder/neutron here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio.to_thread

from occipy.backends import _openstack_egi as egi
from occipy.backends import _openstack_map as m
from occipy.backends._openstack_listing import BUSY, inventory, look
from occipy.backends._openstack_ops import OpenStackOps
from occipy.backends._openstack_settings import Settings, parse_settings
from occipy.backends.base import (
    COMPUTE,
    NETWORK,
    NETWORKINTERFACE,
    STORAGE,
    STORAGELINK,
    Action,
    Change,
    ComputeSpec,
    ComputeUpdate,
    Down,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    Ref,
    Restart,
    Save,
    SecurityGroupUpdate,
    Start,
    Stop,
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
from occipy.backends.egi_types import (
    IPRESERVATION,
    SECURITYGROUP,
    SECURITYGROUPLINK,
    IpReservationSpec,
    SecurityGroupLinkSpec,
    SecurityGroupSpec,
)
from occipy.errors import BackendError, BackendUnavailable, NotSupported, OcciError
from occipy.locks import Holding, KeyedLocks

T = TypeVar("T")

# What the driver can do; open() keeps the types the project's catalogue has (no cinder: no storage).
SUPPORTS: Final[Mapping[str, Support]] = {
    COMPUTE: Support(
        actions=frozenset({"start", "stop", "restart", "suspend", "save"}),
        updates=frozenset({"cores", "memory_gib", "flavour", "image"}),
    ),
    STORAGE: Support(updates=frozenset({"size_gib"})),
    NETWORK: Support(actions=frozenset({"up", "down"})),
    STORAGELINK: Support(),
    NETWORKINTERFACE: Support(),
    # EGI (docs/drivers/openstack.md): Neutron security groups, rules changed live; floating IPs
    # (no actions: the state follows the association).
    SECURITYGROUP: Support(updates=frozenset({"rules"})),
    SECURITYGROUPLINK: Support(),
    IPRESERVATION: Support(),
}
# GFD.224 §3.1 action methods -> nova: restart graceful/warm is a soft reboot, cold a hard one;
# suspend (to RAM) is nova's pause, hibernate (to disk) nova's suspend.
REBOOT: Final[Mapping[str, str]] = {"graceful": "SOFT", "warm": "SOFT", "cold": "HARD"}
SUSPEND: Final[Mapping[str, tuple[str, str]]] = {"suspend": ("pause", "PAUSED"), "hibernate": ("suspend", "SUSPENDED")}
STOP_METHODS: Final = frozenset({"graceful", "acpioff", "poweroff"})
POLL_FIRST: Final = 0.2  # seconds between two reads while waiting; doubles up to POLL_MAX
POLL_MAX: Final = 2.0


class OpenStackDriver:
    """One OpenStack project behind the driver contract (backends.base).

    Implements Driver, Updates, Saves, Watches (polling), Adopts and Inventories.
    """

    name = "openstack"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ops = OpenStackOps(settings)
        self.supports: Mapping[str, Support] = dict(SUPPORTS)
        self._last: dict[Ref, Observed] = {}  # objects followed by changes(), as last seen
        self._locks = KeyedLocks()  # per cloud object, kept while held (occipy.locks)
        self._closed = asyncio.Event()

    @classmethod
    def from_options(cls, options: Mapping[str, str], data_dir: Path) -> OpenStackDriver:
        """Build from string options (docs/drivers/openstack.md); ValueError names the bad one."""
        return cls(parse_settings(options, data_dir))

    # ------------------------------------------------------------------ plumbing

    async def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """One blocking SDK step in a worker thread; SDK errors become OcciErrors."""
        return await anyio.to_thread.run_sync(functools.partial(self.ops.guard, what, fn, *args))

    def _lock(self, backend_id: str) -> Holding:
        return self._locks.hold(backend_id)

    def _busy(self, ref: Ref) -> bool:
        ids = {ref.backend_id, ref.backend_id.partition("/")[0]}
        return any(self._locks.held(i) for i in ids)

    def _remember(self, ref: Ref, observed: Observed) -> Observed:
        self._last[ref] = observed
        return observed

    def _forget(self, ref: Ref) -> None:
        self._last.pop(ref, None)

    async def _wait(self, what: str, read: Callable[[], Any], done: Callable[[Any], bool],
                    failed: Callable[[Any], str | None] = lambda _: None) -> Any:
        """Read until `done(value)`; BackendError when `failed(value)` names a failure or after
        wait_timeout seconds."""
        deadline = time.monotonic() + self.settings.wait_timeout
        delay = POLL_FIRST
        while True:
            value = await self._run(what, read)
            if done(value):
                return value
            problem = failed(value)
            if problem:
                raise BackendError(f"{what}: {problem}")
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"{what}: {self.settings.where} did not finish within {self.settings.wait_timeout:g} s "
                    "(driver option wait_timeout)"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    async def _wait_server(self, what: str, server_id: str, statuses: frozenset[str],
                           gone_ok: bool = False) -> Any:
        """Wait until nova has finished with the server and it is in one of `statuses`."""

        def done(server: Any) -> bool:
            # DELETED shows for a moment before nova answers 404; SOFT_DELETED stays (a cloud with
            # reclaim_instance_interval) and is gone for its user.
            if server is None or str(server.status) == "SOFT_DELETED":
                return gone_ok
            return str(server.status) in statuses and not getattr(server, "task_state", None)

        def failed(server: Any) -> str | None:
            if server is None or str(server.status) in m.GONE_SERVER:
                return None if gone_ok else f"compute {server_id} disappeared"
            if str(server.status) == "ERROR" and "ERROR" not in statuses:
                fault = getattr(server, "fault", None) or {}
                return f"nova put the server in ERROR ({fault.get('message', 'no reason given')})"
            return None

        return await self._wait(what, functools.partial(self.ops.server, server_id), done, failed)

    async def _require(self, ref: Ref) -> Observed:
        observed = await self.observe(ref)
        if observed is None:
            raise BackendError(f"{ref.resource} {ref.backend_id} does not exist (any more) in {self.settings.where}")
        return observed

    async def _server(self, server_id: str) -> Any:
        server = await self._run(f"reading compute {server_id}", self.ops.server, server_id)
        if server is None:
            raise BackendError(f"compute {server_id} does not exist in {self.settings.where}")
        return server

    async def _discard(self, ref: Ref) -> None:
        """Delete what a failed create left (best effort: the orphan sweep finds the rest)."""
        with contextlib.suppress(OcciError):
            await self.delete(ref)

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Authenticate, read the catalogue, images and flavors; BackendUnavailable naming the cloud."""
        self._closed = asyncio.Event()
        try:
            types = await self._run(f"connecting to {self.settings.where}", self.ops.check)
        except BackendUnavailable:
            raise
        except OcciError as error:
            raise BackendUnavailable(f"cannot use {self.settings.where}: {error.message}") from None
        self.ops.has_volumes = STORAGE in types
        self.supports = {resource: support for resource, support in SUPPORTS.items() if resource in types}

    async def close(self) -> None:
        """End `changes()` and drop the connection."""
        self._closed.set()
        await anyio.to_thread.run_sync(self.ops.close)

    def templates(self) -> Sequence[Template]:
        """Active Glance images (os_tpl, named by id) and enabled flavors (resource_tpl, by name)."""
        return self.ops.templates()

    # ------------------------------------------------------------------ the core protocol

    async def create(self, spec: object) -> Observed:
        """Create the object and wait until OpenStack has it (a server ACTIVE, a volume available,
        an attachment in-use, a port ACTIVE); on a failure, what was made is deleted again."""
        match spec:
            case ComputeSpec():
                ref = Ref(COMPUTE, await self._run(f"creating compute {spec.name!r}", self.ops.create_server, spec))
                try:
                    await self._wait_server(f"booting compute {spec.name!r}", ref.backend_id, frozenset({"ACTIVE"}))
                except OcciError:
                    await self._discard(ref)
                    raise
            case StorageSpec():
                ref = Ref(STORAGE, await self._run(f"creating storage {spec.name!r}", self.ops.create_volume, spec))
                try:
                    await self._wait(
                        f"creating storage {spec.name!r}",
                        functools.partial(self.ops.volume, ref.backend_id),
                        lambda v: v is not None and str(v.status) == "available",
                        lambda v: "the volume disappeared" if v is None else
                        f"cinder reports {v.status}" if str(v.status).startswith("error") else None,
                    )
                except OcciError:
                    await self._discard(ref)
                    raise
            case NetworkSpec():
                ref = Ref(NETWORK, await self._run(f"creating network {spec.name!r}", self.ops.create_network, spec))
            case StorageLinkSpec():
                ref = await self._create_storagelink(spec)
            case NetworkInterfaceSpec():
                ref = await self._create_networkinterface(spec)
            case IpReservationSpec():
                ref = Ref(IPRESERVATION, await self._run(
                    f"reserving a floating IP {spec.name!r}", egi.create_floating_ip, self.ops, spec))
            case SecurityGroupSpec():
                ref = Ref(SECURITYGROUP, await self._run(
                    f"creating security group {spec.name!r}", egi.create_security_group, self.ops, spec))
            case SecurityGroupLinkSpec():
                async with self._lock(spec.compute_id):
                    ref = Ref(SECURITYGROUPLINK, await self._run(
                        f"putting compute {spec.compute_id} in security group {spec.group_id}", egi.link_group,
                        self.ops, spec))
            case _:
                raise NotSupported(f"the openstack driver cannot create a {type(spec).__name__}")
        observed = await self.observe(ref)
        if observed is None:
            raise BackendError(f"{ref.resource} {spec.name!r} disappeared right after it was created")
        return observed

    async def _create_storagelink(self, spec: StorageLinkSpec) -> Ref:
        async with self._lock(spec.compute_id):
            what = f"attaching storage {spec.storage_id} to compute {spec.compute_id}"
            ref = Ref(STORAGELINK, await self._run(what, self.ops.attach, spec))

            def attached(volume: Any) -> bool:
                return volume is not None and str(volume.status) == "in-use" and any(
                    a.get("server_id") == spec.compute_id for a in volume.attachments or ())

            def failed(volume: Any) -> str | None:
                if volume is None:
                    return "the volume disappeared"
                if str(volume.status).startswith("error"):
                    return f"cinder reports {volume.status}"
                return None

            try:
                await self._wait(what, functools.partial(self.ops.volume, spec.storage_id), attached, failed)
            except OcciError:
                with contextlib.suppress(OcciError):
                    await self._run(what, self.ops.detach, ref.backend_id)
                    await self._run(what, self.ops.unmark_volume, ref.backend_id)
                raise
        return ref

    async def _create_networkinterface(self, spec: NetworkInterfaceSpec) -> Ref:
        if IPRESERVATION in self.supports:
            # The target may be an ipreservation: associate its floating IP with the server's port.
            what = f"giving compute {spec.compute_id} floating IP {spec.network_id}"
            ip = await self._run(what, egi.floating_ip, self.ops, spec.network_id)
            if ip is not None:
                async with self._lock(spec.compute_id), self._lock(spec.network_id):
                    ip = await self._run(what, egi.floating_ip, self.ops, spec.network_id)
                    if ip is None:
                        raise BackendError(f"{what}: the floating IP disappeared")
                    return Ref(NETWORKINTERFACE, await self._run(what, egi.associate, self.ops, spec, ip))
        async with self._lock(spec.compute_id):
            what = f"plugging compute {spec.compute_id} into network {spec.network_id}"
            ref = Ref(NETWORKINTERFACE, await self._run(what, self.ops.create_port, spec))
            try:
                await self._run(what, self.ops.plug, spec.compute_id, ref.backend_id)
                await self._wait(
                    what,
                    functools.partial(self.ops.port, ref.backend_id),
                    lambda p: p is not None and p.device_id == spec.compute_id and str(p.status) == "ACTIVE",
                    lambda p: "the port disappeared" if p is None else
                    "neutron reports ERROR" if str(p.status) == "ERROR" else None,
                )
            except OcciError:
                with contextlib.suppress(OcciError):
                    await self._run(what, self.ops.unplug, ref.backend_id)
                    await self._run(what, self.ops.delete_port, ref.backend_id)
                raise
        return ref

    async def observe(self, ref: Ref) -> Observed | None:
        """What OpenStack reports now, or None when the object does not exist (any more)."""
        what = f"reading {ref.resource} {ref.backend_id}"
        observed: Observed | None
        match ref.resource:
            case "compute":
                observed = self.ops.server_observed(await self._run(what, self.ops.server, ref.backend_id))
            case "storage":
                volume = await self._run(what, self.ops.volume, ref.backend_id)
                observed = None if volume is None else m.volume_observed(volume)
            case "network":
                observed = await self._run(what, self.ops.network_observed, ref.backend_id)
            case "storagelink":
                observed = await self._run(what, self.ops.storagelink_observed, ref.backend_id)
            case "networkinterface" if "/" in ref.backend_id:
                observed = await self._run(what, egi.association_observed, self.ops, ref.backend_id)
            case "networkinterface":
                port = await self._run(what, self.ops.port, ref.backend_id)
                observed = await self._run(what, self.ops.port_observed, port)
            case "ipreservation":
                ip = await self._run(what, egi.floating_ip, self.ops, ref.backend_id)
                observed = egi.ip_observed(self.ops, ip)
            case "securitygroup":
                observed = await self._run(what, egi.group_observed, self.ops, ref.backend_id)
            case "securitygrouplink":
                observed = await self._run(what, egi.grouplink_observed, self.ops, ref.backend_id)
            case _:
                return None
        if observed is None:
            self._forget(ref)
            return None
        return self._remember(ref, observed)

    async def delete(self, ref: Ref) -> None:
        """Delete the object and wait until it is gone; a missing object is fine. A server goes
        with its attachments (nova detaches volumes; ports stay until their links are deleted)."""
        what = f"deleting {ref.resource} {ref.backend_id}"
        match ref.resource:
            case "compute":
                async with self._lock(ref.backend_id):
                    if await self._run(what, self.ops.delete_server, ref.backend_id):
                        await self._wait_server(what, ref.backend_id, frozenset(), gone_ok=True)
            case "storage":
                async with self._lock(ref.backend_id):
                    await self._delete_volume(what, ref.backend_id)
            case "network":
                async with self._lock(ref.backend_id):
                    await self._run(what, self.ops.delete_network, ref.backend_id)
            case "storagelink":
                server_id, _, volume_id = ref.backend_id.partition("/")
                if volume_id:
                    async with self._lock(server_id):
                        await self._detach(what, ref.backend_id)
                        await self._run(what, self.ops.unmark_volume, ref.backend_id)
            case "networkinterface" if "/" in ref.backend_id:
                server_id, _, ip_id = ref.backend_id.partition("/")
                async with self._lock(server_id), self._lock(ip_id):
                    await self._run(what, egi.disassociate, self.ops, ref.backend_id)
            case "ipreservation":
                async with self._lock(ref.backend_id):
                    await self._run(what, egi.delete_floating_ip, self.ops, ref.backend_id)
            case "securitygroup":
                async with self._lock(ref.backend_id):
                    await self._run(what, egi.delete_security_group, self.ops, ref.backend_id)
            case "securitygrouplink":
                async with self._lock(ref.backend_id.partition("/")[0]):
                    await self._run(what, egi.unlink_group, self.ops, ref.backend_id)
            case "networkinterface":
                async with self._lock(ref.backend_id):
                    if await self._run(what, self.ops.unplug, ref.backend_id):
                        await self._wait(
                            what,
                            functools.partial(self.ops.port, ref.backend_id),
                            lambda p: p is None or not p.device_id,
                        )
                    await self._run(what, self.ops.delete_port, ref.backend_id)
            case _:
                return
        self._forget(ref)

    async def _detach(self, what: str, backend_id: str) -> None:
        server_id, _, volume_id = backend_id.partition("/")
        if await self._run(what, self.ops.detach, backend_id):
            await self._wait(
                what,
                functools.partial(self.ops.volume, volume_id),
                lambda v: v is None or (
                    all(a.get("server_id") != server_id for a in v.attachments or ())
                    and str(v.status) != "detaching"),
                lambda v: f"cinder reports {v.status}" if v is not None and str(v.status).startswith("error") else None,
            )

    async def _delete_volume(self, what: str, volume_id: str) -> None:
        volume = await self._run(what, self.ops.volume, volume_id)
        if volume is None:
            return
        for attachment in volume.attachments or ():
            server_id = attachment.get("server_id")
            if server_id:
                await self._detach(what, f"{server_id}/{volume_id}")
        if await self._run(what, self.ops.delete_volume, volume_id):
            await self._wait(
                what,
                functools.partial(self.ops.volume, volume_id),
                lambda v: v is None or str(v.status) == "deleted",
                lambda v: f"cinder reports {v.status}" if v is not None and str(v.status).startswith("error") else None,
            )

    async def act(self, ref: Ref, action: Action) -> Observed:
        """Run an action (GFD.224 §3.1-§3.2); the methods map as in docs/drivers/openstack.md."""
        if ref.resource == COMPUTE and isinstance(action, Save):
            template = await self.save(ref, action)
            observed = await self._require(ref)
            return self._remember(ref, dataclasses.replace(observed, message=f"saved as image {template.title}"))
        match (ref.resource, action):
            case ("compute", Start() | Stop() | Restart() | Suspend()):
                async with self._lock(ref.backend_id):
                    await self._compute_action(ref.backend_id, action)
            case ("network", Up() | Down()):
                async with self._lock(ref.backend_id):
                    what = f"{action.name} of network {ref.backend_id}"
                    if await self._run(what, self.ops.network_observed, ref.backend_id) is None:
                        raise BackendError(f"network {ref.backend_id} does not exist in {self.settings.where}")
                    await self._run(what, self.ops.set_network_up, ref.backend_id, isinstance(action, Up))
            case _:
                raise NotSupported(f"the openstack driver has no action {action.name!r} on a {ref.resource}")
        return await self._require(ref)

    async def _compute_action(self, server_id: str, action: Action) -> None:
        what = f"{action.name} of compute {server_id}"
        server = await self._server(server_id)
        status = str(server.status)
        run = functools.partial(self._run, what, self.ops.server_action, server_id)
        active, shutoff = frozenset({"ACTIVE"}), frozenset({"SHUTOFF"})
        match action:
            case Start():
                verb = {"SHUTOFF": "start", "SUSPENDED": "resume", "PAUSED": "unpause", "SHELVED": "unshelve",
                        "SHELVED_OFFLOADED": "unshelve", "ERROR": "reboot"}.get(status)
                if verb == "reboot":
                    await run("reboot", "HARD")
                elif verb is not None:
                    await run(verb)
                await self._wait_server(what, server_id, active)
            case Stop(method=method):
                if method not in STOP_METHODS:
                    raise NotSupported(f"stop method {method!r} is not one of {', '.join(sorted(STOP_METHODS))}")
                # nova's stop is one call whatever the method: the hypervisor asks the guest to
                # shut down and powers it off after its shutdown timeout (docs/drivers/openstack.md).
                if status in ("PAUSED", "SUSPENDED"):
                    await run("unpause" if status == "PAUSED" else "resume")
                    await self._wait_server(what, server_id, active)
                if status != "SHUTOFF":
                    await run("stop")
                await self._wait_server(what, server_id, shutoff)
            case Restart(method=method):
                kind = REBOOT.get(method)
                if kind is None:
                    raise NotSupported(f"restart method {method!r} is not one of {', '.join(REBOOT)}")
                await run("reboot", kind if status == "ACTIVE" else "HARD")
                await self._wait_server(what, server_id, active)
            case Suspend(method=method):
                verb_status = SUSPEND.get(method)
                if verb_status is None:
                    raise NotSupported(f"suspend method {method!r} is not one of {', '.join(SUSPEND)}")
                verb, target = verb_status
                if status != target:
                    if status != "ACTIVE":
                        raise BackendError(f"{what}: nova can only suspend an ACTIVE server, this one is {status}")
                    await run(verb)
                await self._wait_server(what, server_id, frozenset({target}))

    # ------------------------------------------------------------------ Updates, Saves

    async def update(self, ref: Ref, change: Update) -> Observed:
        """Rebuild a server on another image, resize it to another flavor (confirmed at once), grow
        a detached volume, or replace a security group's rules."""
        match (ref.resource, change):
            case ("compute", ComputeUpdate()):
                if change.architecture is not None:
                    raise NotSupported("OpenStack cannot change a server's architecture (it comes with the image)")
                async with self._lock(ref.backend_id):
                    await self._update_server(ref.backend_id, change)
            case ("storage", StorageUpdate(size_gib=size)):
                async with self._lock(ref.backend_id):
                    if size is not None:
                        what = f"growing storage {ref.backend_id}"
                        if await self._run(what, self.ops.extend_volume, ref.backend_id, size):
                            await self._wait(
                                what,
                                functools.partial(self.ops.volume, ref.backend_id),
                                lambda v: v is not None and str(v.status) == "available",
                                lambda v: "the volume disappeared" if v is None else
                                f"cinder reports {v.status}" if str(v.status).startswith("error") else None,
                            )
            case ("securitygroup", SecurityGroupUpdate(rules=rules)):
                async with self._lock(ref.backend_id):
                    await self._run(f"changing the rules of security group {ref.backend_id}", egi.update_rules,
                                    self.ops, ref.backend_id, rules)
            case _:
                raise NotSupported(f"the openstack driver cannot apply a {type(change).__name__} to a {ref.resource}")
        return await self._require(ref)

    async def _update_server(self, server_id: str, change: ComputeUpdate) -> None:
        await self._server(server_id)
        settled = frozenset({"ACTIVE", "SHUTOFF"})
        if change.image is not None:
            what = f"rebuilding compute {server_id} on image {change.image}"
            await self._run(what, self.ops.rebuild, server_id, change.image)
            await self._wait_server(what, server_id, settled)
        flavour = change.flavour
        if flavour is None and (change.cores is not None or change.memory_gib is not None):
            flavour = await self._run(
                f"choosing a flavor for compute {server_id}", self.ops.target_flavor, server_id,
                change.cores, change.memory_gib,
            )
        if flavour is not None:
            what = f"resizing compute {server_id} to flavor {flavour}"
            if await self._run(what, self.ops.resize, server_id, flavour):
                await self._wait_server(what, server_id, frozenset({"VERIFY_RESIZE"}))
                # GFD.224 §3.5 replaces the template at once: no window to revert the resize.
                await self._run(what, self.ops.server_action, server_id, "confirm")
                await self._wait_server(what, server_id, settled)

    async def save(self, ref: Ref, request: Save) -> Template:
        """createImage (GFD.224 §3.1 save): hot snapshots the server as it runs; deferred stops it
        first and starts it again afterwards. Waits until the image is active in Glance."""
        server_id = ref.backend_id
        if request.method not in ("hot", "deferred"):
            raise NotSupported(f"save method {request.method!r} is not hot or deferred")
        async with self._lock(server_id):
            server = await self._server(server_id)
            name = request.image_name or f"{server.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
            what = f"saving compute {server_id} as image {name!r}"
            restart = request.method == "deferred" and str(server.status) == "ACTIVE"
            if restart:
                await self._run(what, self.ops.server_action, server_id, "stop")
                await self._wait_server(what, server_id, frozenset({"SHUTOFF"}))
            try:
                image_id = await self._run(what, self.ops.create_image, server_id, name)
                _, image = await self._wait(
                    what,
                    functools.partial(self.ops.image_status, image_id),
                    lambda si: si[0] == "active",
                    lambda si: f"glance reports the image {si[0]}" if si[0] in ("killed", "deleted") else None,
                )
                await self._wait_server(what, server_id, frozenset({"ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"}))
            finally:
                if restart:
                    with contextlib.suppress(OcciError):
                        await self._run(what, self.ops.server_action, server_id, "start")
                    await self._wait_server(what, server_id, frozenset({"ACTIVE"}))
        return self.ops.adopt_image(image)

    # ------------------------------------------------------------------ Watches, Adopts, Inventories

    async def adopt(self, ref: Ref, observed: Observed) -> None:
        """Follow an object occipy made before a restart (changes() looks only at known objects)."""
        self._last.setdefault(ref, observed)

    async def inventory(self) -> Sequence[Tagged]:
        """Every server, volume, attachment, network, port, floating IP (and association), security
        group (and link) that carries an entity id."""
        return await self._run(f"listing occipy's objects in {self.settings.where}", inventory, self.ops)

    def changes(self) -> AsyncIterator[Change]:
        """Changes made outside occipy, found by looking at the cloud every poll_interval seconds
        (nova has no event stream for users); ends at close()."""
        return self._changes()

    async def _changes(self) -> AsyncIterator[Change]:
        closed = self._closed
        interval = self.settings.poll_interval
        while not closed.is_set():
            if interval <= 0:
                await closed.wait()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), timeout=interval)
                return
            known = dict(self._last)
            if not known:
                continue
            try:
                seen = await self._run("looking for changes", look, self.ops, sorted({r.resource for r in known}))
            except OcciError:
                continue  # unreachable now: the next look tries again
            for ref, before in known.items():
                if self._busy(ref) or self._last.get(ref) is not before:
                    continue  # our own operation is running (or ran meanwhile): its result is the truth
                now = seen.get(ref)
                if now is BUSY:
                    continue
                if now is None:
                    try:  # a listing can lag behind: ask for the object itself before calling it gone
                        now = await self.observe(ref)
                    except OcciError:
                        continue
                    if now is None:
                        yield Change(ref, None)
                        continue
                if (now.state, now.message, now.facts) != (before.state, before.message, before.facts):
                    self._last[ref] = now
                    yield Change(ref, now)


__all__ = ["OpenStackDriver"]

"""LibvirtDriver: OCCI Infrastructure on libvirt (QEMU/TCG, KVM on request, or test:///).

compute = domain, storage = volume in one pool, network = NAT network, storagelink = virtio
disk, networkinterface = virtio NIC; images = base images (qcow2 overlays) and saved snapshots,
flavours from the settings; ssh_public_key/user_data = a cloud-init NoCloud seed CD-ROM. The
mapping, settings and limits are in docs/drivers/libvirt.md. libvirt-python blocks, so every call
runs in a worker thread (`anyio.to_thread`); libvirt connections are thread-safe, so the threads
share one. Lifecycle events come from libvirt's default event loop, run in one daemon thread per
process. The blocking operations live in `_libvirt_compute.py` and `_libvirt_devices.py` on the
shared `_libvirt_base.py`; with `_libvirt_xml.py` and `_libvirt_local.py` they are the only
modules of occipy that import `libvirt`. Imports backends.base, errors and those helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio.to_thread
import libvirt

from occipy.backends import _libvirt_xml as lx
from occipy.backends import base as b
from occipy.backends import egi_types as egi
from occipy.backends._libvirt_base import (
    DETACH_TIMEOUT,
    LINKS,
    POLL,
    _check_method,
    _free_mac,
    _missing,
    _start_event_loop,
)
from occipy.backends._libvirt_compute import _ComputeOps
from occipy.backends._libvirt_devices import _DeviceOps
from occipy.backends._libvirt_extensions import _ExtensionOps
from occipy.backends._libvirt_local import DEFAULT_POOL, Settings, parse_settings
from occipy.backends.base import (
    COMPUTE,
    NETWORK,
    NETWORKINTERFACE,
    OFFLINE,
    STORAGE,
    STORAGELINK,
    Action,
    Change,
    ComputeSpec,
    ComputeUpdate,
    Down,
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
    Start,
    Stop,
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
from occipy.errors import BackendError, NotSupported, OcciError

T = TypeVar("T")

# What libvirt can do; open() drops what the connection lacks (test:/// has no volume resize).
SUPPORTS: Final[Mapping[str, Support]] = {
    COMPUTE: Support(
        actions=frozenset({"start", "stop", "restart", "suspend", "save"}),
        updates=frozenset({"cores", "memory_gib", "architecture", "image", "flavour"}),
    ),
    STORAGE: Support(actions=frozenset({"online", "offline"}), updates=frozenset({"size_gib"})),
    NETWORK: Support(actions=frozenset({"up", "down"})),
    STORAGELINK: Support(),
    NETWORKINTERFACE: Support(),
    # [monitoring] security groups are nwfilters (docs/drivers/libvirt.md); libvirt has no floating IPs.
    egi.SECURITYGROUP: Support(updates=frozenset({"rules"})),
    egi.SECURITYGROUPLINK: Support(),
}


class LibvirtDriver(_ComputeOps, _DeviceOps, _ExtensionOps):
    """One libvirt connection behind the driver contract (backends.base).

    Implements Driver, Updates, Saves, Watches, Adopts, Inventories and Proposes. The blocking
    operations come from `_ComputeOps` and `_DeviceOps`; this class runs them in worker
    threads, serialises them per object and turns libvirt events into `changes()`.
    """

    name = "libvirt"
    # [monitoring] Samples: domain statistics of computes, presence of volumes.
    sampled: frozenset[str] = frozenset({COMPUTE, STORAGE})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.supports: Mapping[str, Support] = dict(SUPPORTS)
        self._callbacks: list[int] = []
        self._network_callbacks: list[int] = []
        self._known: dict[str, str] = {}  # backend id -> resource type, for changes()
        self._last: dict[str, Observed] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hints: asyncio.Queue[tuple[str, str] | None] | None = None
        self._pending: set[str] = set()
        self._reconciler: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def from_options(cls, options: Mapping[str, str], data_dir: Path) -> LibvirtDriver:
        """Build from string options (docs/drivers/libvirt.md): uri, pool, image_dir, domain_type,
        name_prefix, network_prefix, flavors, shutdown_timeout, reconcile_interval, default_os_tpl.

        Raises ValueError naming the bad option.
        """
        return cls(parse_settings(options, data_dir))

    # ------------------------------------------------------------------ plumbing

    async def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking libvirt call in a worker thread; libvirt errors become OcciErrors."""
        return await anyio.to_thread.run_sync(functools.partial(self._guard, what, fn, *args))

    def _lock(self, backend_id: str) -> asyncio.Lock:
        return self._locks.setdefault(backend_id, asyncio.Lock())

    def _busy(self, backend_id: str) -> bool:
        ids = [backend_id, backend_id.partition("/")[0]]
        return any(self._locks[i].locked() for i in ids if i in self._locks)

    def _remember(self, resource: str, observed: Observed) -> Observed:
        self._known[observed.backend_id] = resource
        self._last[observed.backend_id] = observed
        return observed

    def _forget(self, backend_id: str) -> None:
        for key in [k for k in self._known if k == backend_id or k.startswith(backend_id + "/")]:
            self._known.pop(key, None)
            self._last.pop(key, None)
            self._locks.pop(key, None)
        self._offline.discard(backend_id)

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect, make sure the pool exists, read the images; BackendUnavailable if unreachable."""
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._hints = asyncio.Queue()
        await anyio.to_thread.run_sync(_start_event_loop)
        await self._run("preparing libvirt", self._prepare)
        if self._domain_type == "test":
            # The test driver has no virStorageVolResize (ecosystem.md §1a): do not offer it.
            storage = self.supports[STORAGE]
            self.supports = {
                **self.supports,
                STORAGE: dataclasses.replace(storage, updates=storage.updates - {"size_gib"}),
            }
        # [monitoring] security groups need libvirt's nwfilter driver (test:/// has none).
        self._nwfilters = await self._run("looking for nwfilters", self._has_nwfilters)
        if not self._nwfilters:
            self.supports = {k: v for k, v in self.supports.items()
                             if k not in (egi.SECURITYGROUP, egi.SECURITYGROUPLINK)}
        if self.settings.reconcile_interval > 0:
            self._reconciler = asyncio.create_task(self._reconcile_forever())

    def _prepare(self) -> None:
        conn = self._conn()
        settings = self.settings
        for directory in (settings.state_dir, settings.seed_dir, settings.console_dir, settings.template_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if not settings.image_dir.exists() and settings.image_dir == settings.state_dir / "images":
            settings.image_dir.mkdir(parents=True, exist_ok=True)
        if not settings.image_dir.is_dir():
            raise BackendError(
                f"image_dir {settings.image_dir} does not exist; build one with "
                "scripts/build-guest.sh DIR or point image_dir at your base images"
            )
        try:
            pool = conn.storagePoolLookupByName(settings.pool)
        except libvirt.libvirtError as exc:
            if not _missing(exc):
                raise
            if settings.pool != DEFAULT_POOL:
                raise BackendError(
                    f"storage pool {settings.pool!r} does not exist on {settings.uri}; create it "
                    f"(virsh pool-define-as {settings.pool} dir --target DIR && virsh pool-build "
                    f"{settings.pool} && virsh pool-start {settings.pool}) or leave `pool` unset so "
                    f"occipy creates {DEFAULT_POOL!r} under {settings.pool_dir}"
                ) from None
            settings.pool_dir.mkdir(parents=True, exist_ok=True)
            pool = conn.storagePoolDefineXML(lx.dir_pool_xml(settings.pool, str(settings.pool_dir)), 0)
            with contextlib.suppress(libvirt.libvirtError):
                pool.setAutostart(1)
        if not pool.isActive():
            with contextlib.suppress(libvirt.libvirtError):
                pool.build(0)  # a dir pool whose directory went away (a cleaned data dir)
            pool.create(0)
        self._rescan_images()

    async def close(self) -> None:
        """Stop the reconcile task, end `changes()`, drop the event callbacks and the connection."""
        self._closed = True
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
            self._reconciler = None
        if self._hints is not None:
            self._hints.put_nowait(None)
        conn, self._connection = self._connection, None
        if conn is not None:
            await anyio.to_thread.run_sync(self._close_connection, conn)

    def _close_connection(self, conn: Any) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            for callback in self._callbacks:
                conn.domainEventDeregisterAny(callback)
            for callback in self._network_callbacks:
                conn.networkEventDeregisterAny(callback)
            conn.close()
        self._callbacks.clear()
        self._network_callbacks.clear()

    def templates(self) -> Sequence[Template]:
        """One image per file of image_dir and per saved snapshot, plus the configured flavours.

        The CRTP small/medium/large... come from the registry; the driver sizes computes that
        name them (including their root disk) but does not offer them twice.
        """
        images = {**self._images, **self._saved}
        return (
            *(image.template() for image in images.values()),
            *(flavour.template() for flavour in self.settings.flavours),
        )

    # ------------------------------------------------------------------ events and reconcile (Watches)

    def _register_events(self, conn: Any) -> None:
        self._callbacks = []
        self._network_callbacks = []
        try:
            self._callbacks.append(
                conn.domainEventRegisterAny(
                    None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_domain_event, None
                )
            )
            self._callbacks.append(
                conn.domainEventRegisterAny(
                    None, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, self._on_device_removed, None
                )
            )
            self._network_callbacks.append(
                conn.networkEventRegisterAny(
                    None, libvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE, self._on_network_event, None
                )
            )
        except libvirt.libvirtError:
            pass  # no events on this connection: the periodic reconcile still notices changes
        with contextlib.suppress(libvirt.libvirtError):
            conn.registerCloseCallback(self._on_close, None)

    # Event callbacks run in the libvirt-events thread: they only hand a hint to the event loop.
    def _on_domain_event(self, _conn: Any, dom: Any, _event: int, _detail: int, _opaque: Any) -> None:
        self._hint(COMPUTE, dom.UUIDString())

    def _on_device_removed(self, _conn: Any, dom: Any, alias: str, _opaque: Any) -> None:
        link_id = f"{dom.UUIDString()}/{alias}"
        resource = self._known.get(link_id)
        if resource is not None:
            self._hint(resource, link_id)

    def _on_network_event(self, _conn: Any, net: Any, _event: int, _detail: int, _opaque: Any) -> None:
        self._hint(NETWORK, net.UUIDString())

    def _on_close(self, _conn: Any, _reason: int, _opaque: Any) -> None:
        self._connection = None  # libvirtd went away: reconnect on the next call

    def _hint(self, resource: str, backend_id: str) -> None:
        loop, hints = self._loop, self._hints
        if loop is None or hints is None or self._closed:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._enqueue, resource, backend_id)

    def _enqueue(self, resource: str, backend_id: str) -> None:
        if self._hints is None or backend_id not in self._known or backend_id in self._pending:
            return
        self._pending.add(backend_id)
        self._hints.put_nowait((resource, backend_id))

    async def _reconcile_forever(self) -> None:
        """Every `reconcile_interval` s, look at every known object (events can be missed)."""
        while True:
            await asyncio.sleep(self.settings.reconcile_interval)
            with contextlib.suppress(OcciError):
                await self._run("refreshing", self._refresh)
            for backend_id, resource in list(self._known.items()):
                self._enqueue(resource, backend_id)

    def _refresh(self) -> None:
        self._rescan_images()
        conn = self._conn()
        with contextlib.suppress(libvirt.libvirtError):
            conn.storagePoolLookupByName(self.settings.pool).refresh(0)  # volumes removed by hand

    def changes(self) -> AsyncIterator[Change]:
        """States that changed outside occipy (lifecycle events and the reconcile), until close()."""
        return self._changes()

    async def _changes(self) -> AsyncIterator[Change]:
        hints = self._hints
        if hints is None:
            return
        while True:
            item = await hints.get()
            if item is None:
                return
            resource, backend_id = item
            self._pending.discard(backend_id)
            if backend_id not in self._known or self._busy(backend_id):
                continue  # our own operation is running: its result is the truth
            try:
                observed = await self.observe(Ref(resource, backend_id))
            except OcciError:
                continue  # unreachable right now: the next reconcile tries again
            before = self._last.get(backend_id)
            if observed is None:
                gone = [(k, r) for k, r in self._known.items() if k.startswith(backend_id + "/")]
                self._forget(backend_id)
                for link_id, link_type in gone:  # a deleted domain takes its devices with it
                    yield Change(Ref(link_type, link_id), None)
                yield Change(Ref(resource, backend_id), None)
            elif before is None or (before.state, before.message, before.facts) != (
                observed.state,
                observed.message,
                observed.facts,
            ):
                self._last[backend_id] = observed
                yield Change(Ref(resource, backend_id), observed)

    # ------------------------------------------------------------------ Adopts, Inventories, Proposes

    async def adopt(self, ref: Ref, observed: Observed) -> None:
        """Follow an object occipy made before a restart; its offline flag comes back from `observed`."""
        self._known[ref.backend_id] = ref.resource
        self._last.setdefault(ref.backend_id, observed)
        if ref.resource == STORAGE and observed.state == OFFLINE:
            self._offline.add(ref.backend_id)

    async def inventory(self) -> Sequence[Tagged]:
        """Every domain, device, network and volume with this driver's name_prefix and an entity id.

        Domains, their devices and networks carry the id in occipy's metadata element; volumes,
        which have no metadata in libvirt, in their name (see `_libvirt_local.encode_tag`).
        """
        return await self._run("listing occipy's objects", self._inventory)

    def propose(self, spec: object, taken: Sequence[object]) -> object | None:
        """The virtio device (/dev/vdb...) of a storagelink, the name (eth0...) and MAC
        (52:54:00:...) of an interface, free among `taken`; the client's own choices are kept."""
        match spec:
            case StorageLinkSpec():
                devices = {f.device for f in taken if isinstance(f, StorageLinkFacts)}
                targets = [d.rpartition("/")[2] for d in devices if d]
                device = spec.device or f"/dev/{lx.free_disk_target(['vda', *targets])}"
                return StorageLinkFacts(device=device, mountpoint=spec.mountpoint)
            case NetworkInterfaceSpec():
                nics = [f for f in taken if isinstance(f, NetworkInterfaceFacts)]
                names = {f.interface for f in nics}
                interface = spec.interface or next(
                    f"eth{n}" for n in range(len(names) + 1) if f"eth{n}" not in names
                )
                mac = spec.mac or _free_mac({(f.mac or "").lower() for f in nics})
                return NetworkInterfaceFacts(
                    interface=interface, mac=mac, address=spec.address, allocation=spec.allocation
                )
        return None

    # ------------------------------------------------------------------ the core protocol

    async def create(self, spec: object) -> Observed:
        """Create the object; a compute is defined and booted, a link's device plugged in."""
        match spec:
            case ComputeSpec():
                backend_id = await self._run(f"creating compute {spec.name!r}", self._create_compute, spec)
                resource = COMPUTE
            case StorageSpec():
                backend_id = await self._run(f"creating storage {spec.name!r}", self._create_storage, spec)
                resource = STORAGE
            case NetworkSpec():
                backend_id = await self._run(f"creating network {spec.name!r}", self._create_network, spec)
                resource = NETWORK
            case StorageLinkSpec():
                async with self._lock(spec.compute_id):
                    backend_id = await self._run(
                        f"attaching storage {spec.storage_id}", self._create_storagelink, spec
                    )
                resource = STORAGELINK
            case NetworkInterfaceSpec():
                async with self._lock(spec.compute_id):
                    backend_id = await self._run(
                        f"attaching a NIC on {spec.network_id}", self._create_networkinterface, spec
                    )
                    # [monitoring] the compute's security groups cover the new NIC too
                    await self._run("applying security groups", self._reference_if_grouped, spec.compute_id)
                resource = NETWORKINTERFACE
            case egi.SecurityGroupSpec():  # [monitoring]
                backend_id = await self._run(f"creating security group {spec.name!r}", self._create_securitygroup,
                                             spec)
                resource = egi.SECURITYGROUP
            case egi.SecurityGroupLinkSpec():  # [monitoring]
                async with self._lock(spec.compute_id):
                    backend_id = await self._run(f"applying security group {spec.group_id}",
                                                 self._create_securitygrouplink, spec)
                resource = egi.SECURITYGROUPLINK
            case _:
                raise NotSupported(f"the libvirt driver cannot create a {type(spec).__name__}")
        self._known[backend_id] = resource
        observed = await self.observe(Ref(resource, backend_id))
        if observed is None:
            raise BackendError(f"{resource} {spec.name!r} disappeared right after it was created")
        return self._remember(resource, observed)

    async def observe(self, ref: Ref) -> Observed | None:
        """What libvirt reports now, or None when the object does not exist."""
        fn: Callable[[str], Observed | None] | None = {
            COMPUTE: self._observe_compute,
            STORAGE: self._observe_storage,
            NETWORK: self._observe_network,
            STORAGELINK: self._observe_storagelink,
            NETWORKINTERFACE: self._observe_networkinterface,
            egi.SECURITYGROUP: self._observe_securitygroup,  # [monitoring]
            egi.SECURITYGROUPLINK: self._observe_securitygrouplink,
        }.get(ref.resource)
        if fn is None:
            return None  # a type this driver never creates
        return await self._run(f"reading {ref.resource} {ref.backend_id}", fn, ref.backend_id)

    async def delete(self, ref: Ref) -> None:
        """Delete the object (a compute is powered off first); a missing object is fine."""
        fn: Callable[[str], None] | None = {
            COMPUTE: self._delete_compute,
            STORAGE: self._delete_storage,
            NETWORK: self._delete_network,
            STORAGELINK: self._detach_config,
            NETWORKINTERFACE: self._detach_config,
            egi.SECURITYGROUP: self._delete_securitygroup,  # [monitoring]
            egi.SECURITYGROUPLINK: self._delete_securitygrouplink,
        }.get(ref.resource)
        if fn is None:
            return
        lock_id = ref.backend_id.partition("/")[0] if ref.resource in (*LINKS, egi.SECURITYGROUPLINK) else ref.backend_id
        async with self._lock(lock_id):
            await self._run(f"deleting {ref.resource} {ref.backend_id}", fn, ref.backend_id)
            if ref.resource in LINKS:
                await self._detach_live(ref)
        self._forget(ref.backend_id)

    async def act(self, ref: Ref, action: Action) -> Observed:
        """Run an action on the real object (GFD.224 §3.1-§3.3); the methods map as in the docs."""
        backend_id = ref.backend_id
        what = f"{action.name} of {ref.resource} {backend_id}"
        if isinstance(action, Save) and ref.resource == COMPUTE:
            template = await self.save(ref, action)
            observed = await self._require(ref)
            return self._remember(
                COMPUTE, dataclasses.replace(observed, message=f"saved as image {template.name}")
            )
        async with self._lock(backend_id):
            match (ref.resource, action):
                case (b.COMPUTE, Stop(method=method)):
                    if _check_method("stop", method) == "poweroff":
                        await self._run(what, self._compute_action, backend_id, "stop", "poweroff")
                    else:
                        await self._graceful_stop(backend_id, acpi=method == "acpioff")
                case (b.COMPUTE, Start()):
                    await self._run(what, self._compute_action, backend_id, "start", None)
                case (b.COMPUTE, Restart(method=method)):
                    await self._run(
                        what, self._compute_action, backend_id, "restart", _check_method("restart", method)
                    )
                case (b.COMPUTE, Suspend(method=method)):
                    await self._run(
                        what, self._compute_action, backend_id, "suspend", _check_method("suspend", method)
                    )
                case (b.NETWORK, Up() | Down()):
                    await self._run(what, self._network_action, backend_id, action.name)
                case (b.STORAGE, Online() | Offline()):
                    await self._run(what, self._storage_action, backend_id, action.name)
                case _:
                    raise NotSupported(
                        f"the libvirt driver has no action {action.name!r} on a {ref.resource}"
                    )
            observed = await self._require(ref)
        return self._remember(ref.resource, observed)

    # ------------------------------------------------------------------ Updates, Saves

    async def update(self, ref: Ref, change: Update) -> Observed:
        """Resize or re-image a compute (the definition; a running guest sees it at its next start),
        or grow a volume."""
        async with self._lock(ref.backend_id):
            match (ref.resource, change):
                case (b.COMPUTE, ComputeUpdate()):
                    await self._run(
                        f"updating compute {ref.backend_id}", self._update_compute, ref.backend_id, change
                    )
                case (b.STORAGE, StorageUpdate(size_gib=size)) if size is not None:
                    if "size_gib" not in self.supports[STORAGE].updates:
                        await self._require(ref)  # a missing volume is a BackendError first
                        raise NotSupported(
                            f"the libvirt connection {self.settings.uri} cannot resize volumes"
                        )
                    await self._run(
                        f"resizing storage {ref.backend_id}", self._update_storage, ref.backend_id, size
                    )
                case (b.STORAGE, StorageUpdate()):
                    pass
                case (egi.SECURITYGROUP, SecurityGroupUpdate(rules=rules)):  # [monitoring]
                    await self._run(f"changing the rules of security group {ref.backend_id}",
                                    self._update_securitygroup, ref.backend_id, rules)
                case _:
                    raise NotSupported(
                        f"the libvirt driver cannot apply a {type(change).__name__} to a {ref.resource}"
                    )
            observed = await self._require(ref)
        return self._remember(ref.resource, observed)

    async def save(self, ref: Ref, request: Save) -> Template:
        """Copy the compute's root disk into a new image (GFD.224 §3.1 save).

        hot: the memory is saved (managed save), the disk copied, the domain resumed where it was;
        deferred: the guest is shut down (ACPI, then powered off after shutdown_timeout), copied,
        and started again. Either way the compute ends as it was before.
        """
        method = _check_method("save", request.method)
        backend_id = ref.backend_id
        async with self._lock(backend_id):
            was = await self._run(f"reading compute {backend_id}", self._domain_state, backend_id)
            if was is None or ref.resource != COMPUTE:
                raise BackendError(f"compute {backend_id} does not exist")
            running = was in (
                libvirt.VIR_DOMAIN_RUNNING,
                libvirt.VIR_DOMAIN_BLOCKED,
                libvirt.VIR_DOMAIN_PAUSED,
            )
            if running:
                if method == "hot":
                    await self._run(
                        f"saving the memory of compute {backend_id}", self._managed_save, backend_id
                    )
                else:
                    await self._graceful_stop(backend_id, acpi=True, force_after_timeout=True)
            try:
                image = await self._run(
                    f"copying the disk of compute {backend_id}",
                    self._copy_root,
                    backend_id,
                    request.image_name,
                )
            finally:
                if running:
                    await self._run(f"restarting compute {backend_id}", self._start, backend_id)
        return image.template()

    # ------------------------------------------------------------------ [monitoring] Samples

    async def sample(self, ref: Ref) -> Reading | None:
        """One reading of a domain (virConnectGetAllDomainStats) or a volume; None when it is gone."""
        if ref.resource == COMPUTE:
            return await self._run(f"reading the statistics of compute {ref.backend_id}", self._sample_compute,
                                   ref.backend_id)
        if ref.resource == STORAGE:
            return await self._run(f"reading storage {ref.backend_id}", self._sample_storage, ref.backend_id)
        return None

    # ------------------------------------------------------------------ waits

    async def _graceful_stop(self, backend_id: str, acpi: bool, force_after_timeout: bool = False) -> None:
        what = f"stopping compute {backend_id}"
        if not await self._run(what, self._request_shutdown, backend_id, acpi):
            await self._run(what, self._compute_action, backend_id, "stop", "poweroff")
            return
        deadline = time.monotonic() + self.settings.shutdown_timeout
        while await self._run(what, self._is_active, backend_id):
            if time.monotonic() >= deadline:
                if force_after_timeout:
                    await self._run(what, self._compute_action, backend_id, "stop", "poweroff")
                    return
                raise BackendError(
                    f"the guest did not power off within {self.settings.shutdown_timeout:g} s of the "
                    f"{'ACPI power button' if acpi else 'shutdown request'} (does it run acpid or a guest "
                    "agent?); it is still running: stop it with method=poweroff"
                )
            await asyncio.sleep(POLL)

    async def _detach_live(self, ref: Ref) -> None:
        """Hot-unplug a link's device from the running guest and wait until the guest lets go."""
        backend_id = ref.backend_id
        if not await self._run(f"detaching {backend_id}", self._detach_live_request, backend_id):
            return
        deadline = time.monotonic() + DETACH_TIMEOUT
        while await self._run(f"detaching {backend_id}", self._live_has, backend_id):
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"the guest has not released the {ref.resource} device after {DETACH_TIMEOUT:g} s "
                    "(the guest OS must acknowledge PCI hot-unplug); it is already gone from the "
                    "definition, so it goes away at the next stop; delete the link again to retry"
                )
            await asyncio.sleep(POLL)

    async def _require(self, ref: Ref) -> Observed:
        observed = await self.observe(ref)
        if observed is None:
            raise BackendError(f"{ref.resource} {ref.backend_id} does not exist (any more) in libvirt")
        return observed


__all__ = ["LibvirtDriver"]

"""LibvirtDriver: OCCI Infrastructure on libvirt (QEMU/TCG, KVM on request, or test:///).

compute = domain, storage = volume in one pool, network = NAT network, storagelink = virtio
disk, networkinterface = virtio NIC; os_tpl = base images (qcow2 overlays), resource_tpl =
flavours; ssh_key/user_data = a cloud-init NoCloud seed CD-ROM. The mapping, settings and limits
are in docs/drivers/libvirt.md. libvirt-python blocks, so every call runs in a worker thread
(`anyio.to_thread`); libvirt connections are thread-safe, so the threads share one. Lifecycle
events come from libvirt's default event loop, run in one daemon thread per process.
The only module that imports `libvirt`; also imports backends.base, errors and its helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import random
import re
import threading
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio.to_thread
import libvirt

from occipy.backends import _libvirt_xml as lx
from occipy.backends._libvirt_local import (
    DEFAULT_POOL,
    Flavour,
    Image,
    Seed,
    Settings,
    load_saved,
    parse_settings,
    scan_images,
    seed_iso,
    slug,
    store_saved,
    write_file,
)
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
from occipy.errors import BackendError, BackendUnavailable, InvalidAttribute, NotSupported, OcciError
from occipy.model.category import AttributeValue

T = TypeVar("T")
COMPUTE, STORAGE, NETWORK = ResourceType.COMPUTE, ResourceType.STORAGE, ResourceType.NETWORK
STORAGELINK, NETWORKINTERFACE = ResourceType.STORAGELINK, ResourceType.NETWORKINTERFACE
LINKS: Final = (STORAGELINK, NETWORKINTERFACE)

# Same update keys as the simulated cloud: the service passes template replacements under these
# names with a Template.term as value (GFD.224 §3.5.1/§3.5.2).
OS_TEMPLATE_KEYS: Final = ("os_template", "os_tpl")
RESOURCE_TEMPLATE_KEYS: Final = ("resource_template", "resource_tpl")
# Action attribute defaults when the client gives none (infrastructure.md §4.2, rOCCI's choices).
DEFAULT_METHOD: Final = {"stop": "poweroff", "restart": "cold", "suspend": "suspend", "save": "deferred"}
METHODS: Final = {
    "stop": ("graceful", "acpioff", "poweroff"),
    "restart": ("graceful", "warm", "cold"),
    "suspend": ("hibernate", "suspend"),
    "save": ("hot", "deferred", "deffered"),  # rOCCI's misspelling is an input alias
}
DETACH_TIMEOUT: Final = 15.0  # seconds a guest gets to release a hot-unplugged device
POLL: Final = 0.2
_NOT_FOUND: Final = frozenset({
    libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_NETWORK, libvirt.VIR_ERR_NO_STORAGE_VOL,
    libvirt.VIR_ERR_NO_STORAGE_POOL,
})
_UNREACHABLE_CODES: Final = frozenset({
    libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_AUTH_FAILED,
    libvirt.VIR_ERR_AUTH_UNAVAILABLE, libvirt.VIR_ERR_AUTH_CANCELLED,
})
_REMOTE_DOMAINS: Final = frozenset({libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE})


# ---------------------------------------------------------------------------- process-wide events

_events_lock = threading.Lock()
_events_started = False


def _start_event_loop() -> None:
    """libvirt's default event loop in a daemon thread, once per process.

    It must be registered before the first connection is opened (keepalives and events of
    remote connections need it). A thread, not libvirtaio: libvirtaio binds the process to one
    asyncio loop for good, which breaks every later loop (tests, restarts of the server's loop).
    """
    global _events_started
    with _events_lock:
        if _events_started:
            return
        # libvirt prints every error on stderr by default; we report them as OcciErrors instead.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _events_started = True


def _code(exc: libvirt.libvirtError) -> int:
    return int(exc.get_error_code() or 0)


def _missing(exc: libvirt.libvirtError) -> bool:
    return _code(exc) in _NOT_FOUND


class LibvirtDriver:
    """One libvirt connection behind the Driver protocol (backends.base)."""

    name = "libvirt"
    capabilities: frozenset[Capability] = frozenset(Capability)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._connection: Any = None
        self._connect_lock = threading.Lock()
        self._callbacks: list[int] = []
        self._network_callbacks: list[int] = []
        self._domain_type = settings.domain_type
        self._images: dict[str, Image] = {}
        self._saved: dict[str, Image] = {}
        self._image_problems: list[str] = []
        self._known: dict[str, ResourceType] = {}
        self._last: dict[str, Observed] = {}
        self._offline: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hints: asyncio.Queue[tuple[ResourceType, str] | None] | None = None
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

    def _guard(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except libvirt.libvirtError as exc:
            raise self._translate(exc, what) from None
        except OSError as exc:
            raise BackendError(f"{what}: {exc.strerror or exc} ({exc.filename or 'local file'})") from None

    def _translate(self, exc: libvirt.libvirtError, what: str) -> OcciError:
        message = exc.get_error_message() or str(exc)
        code = _code(exc)
        if code in _UNREACHABLE_CODES or (exc.get_error_domain() in _REMOTE_DOMAINS
                                          and code in (libvirt.VIR_ERR_SYSTEM_ERROR,
                                                       libvirt.VIR_ERR_INTERNAL_ERROR)):
            self._connection = None  # reconnect on the next call
            return BackendUnavailable(f"libvirt at {self.settings.uri} is unreachable ({message}); "
                                      "is libvirtd running? (scripts/libvirt-setup.sh starts it)")
        if code == libvirt.VIR_ERR_NO_SUPPORT:
            return BackendError(f"{what}: the libvirt connection {self.settings.uri} cannot do this "
                                f"({message})")
        return BackendError(f"{what} failed: {message}")

    def _conn(self) -> Any:
        """The connection, reopened if libvirtd went away (called in worker threads)."""
        conn = self._connection
        if conn is not None:
            try:
                if conn.isAlive():
                    return conn
            except libvirt.libvirtError:
                pass
        with self._connect_lock:
            if self._connection is not None and self._connection is not conn:
                return self._connection
            self._connection = self._open_connection()
            return self._connection

    def _open_connection(self) -> Any:
        try:
            conn = libvirt.open(self.settings.uri)
        except libvirt.libvirtError as exc:
            raise BackendUnavailable(
                f"cannot connect to libvirt at {self.settings.uri}: {exc.get_error_message() or exc}. "
                "Is libvirtd running? (scripts/libvirt-setup.sh installs and starts it)") from None
        if conn is None:
            raise BackendUnavailable(f"cannot connect to libvirt at {self.settings.uri}")
        if str(conn.getType()).lower() == "test":
            self._domain_type = "test"
        else:
            with contextlib.suppress(libvirt.libvirtError):
                conn.setKeepAlive(5, 3)  # notice a dead libvirtd within ~20 s
        self._register_events(conn)
        return conn

    def _lock(self, backend_id: str) -> asyncio.Lock:
        return self._locks.setdefault(backend_id, asyncio.Lock())

    def _busy(self, backend_id: str) -> bool:
        ids = [backend_id, backend_id.partition("/")[0]]
        return any(self._locks[i].locked() for i in ids if i in self._locks)

    def _remember(self, resource: ResourceType, observed: Observed) -> Observed:
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
        if Capability.RESIZE_STORAGE in self.capabilities and self._domain_type == "test":
            # The test driver has no virStorageVolResize (ecosystem.md §1a): do not offer it.
            self.capabilities = self.capabilities - {Capability.RESIZE_STORAGE}
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
            raise BackendError(f"image_dir {settings.image_dir} does not exist; build one with "
                               "scripts/build-guest.sh DIR or point image_dir at your base images")
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
                    f"occipy creates {DEFAULT_POOL!r} under {settings.pool_dir}") from None
            settings.pool_dir.mkdir(parents=True, exist_ok=True)
            pool = conn.storagePoolDefineXML(lx.dir_pool_xml(settings.pool, str(settings.pool_dir)), 0)
            with contextlib.suppress(libvirt.libvirtError):
                pool.setAutostart(1)
        if not pool.isActive():
            with contextlib.suppress(libvirt.libvirtError):
                pool.build(0)  # a dir pool whose directory went away (a cleaned data dir)
            pool.create(0)
        self._rescan_images()

    def _rescan_images(self) -> None:
        self._images, self._image_problems = scan_images(self.settings.image_dir)
        self._saved = load_saved(self.settings.template_dir)

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
        """One os_tpl per base image and saved snapshot, plus the configured flavours.

        The CRTP small/medium/large... come from the registry; the driver sizes computes that
        carry them (including their root disk) but does not offer them twice.
        """
        images = {**self._images, **self._saved}
        return (*(image.template() for image in images.values()),
                *(flavour.template() for flavour in self.settings.flavours))

    # ------------------------------------------------------------------ events and reconcile

    def _register_events(self, conn: Any) -> None:
        self._callbacks = []
        self._network_callbacks = []
        try:
            self._callbacks.append(conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_domain_event, None))
            self._callbacks.append(conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, self._on_device_removed, None))
            self._network_callbacks.append(conn.networkEventRegisterAny(
                None, libvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE, self._on_network_event, None))
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

    def _hint(self, resource: ResourceType, backend_id: str) -> None:
        loop, hints = self._loop, self._hints
        if loop is None or hints is None or self._closed:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._enqueue, resource, backend_id)

    def _enqueue(self, resource: ResourceType, backend_id: str) -> None:
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
                observed = await self.observe(resource, backend_id)
            except OcciError:
                continue  # unreachable right now: the next reconcile tries again
            before = self._last.get(backend_id)
            if observed is None:
                gone = [(k, r) for k, r in self._known.items() if k.startswith(backend_id + "/")]
                self._forget(backend_id)
                for link_id, link_type in gone:  # a deleted domain takes its devices with it
                    yield Change(link_type, link_id, None)
                yield Change(resource, backend_id, None)
            elif before is None or (before.state, before.message, dict(before.attributes)) != (
                    observed.state, observed.message, dict(observed.attributes)):
                self._last[backend_id] = observed
                yield Change(resource, backend_id, observed)

    # ------------------------------------------------------------------ the protocol

    async def adopt(self, resource: ResourceType, backend_id: str, observed: Observed) -> None:
        """Track an object occipy made before a restart (its offline flag comes back from `observed`)."""
        self._known[backend_id] = resource
        self._last.setdefault(backend_id, observed)
        if resource is STORAGE and observed.state == "offline":
            self._offline.add(backend_id)

    async def create(self, spec: Spec) -> Observed:
        """Create the object; a compute is defined and booted."""
        if isinstance(spec, ComputeSpec):
            backend_id = await self._run(f"creating compute {spec.name!r}", self._create_compute, spec)
            resource = COMPUTE
        elif isinstance(spec, StorageSpec):
            backend_id = await self._run(f"creating storage {spec.name!r}", self._create_storage, spec)
            resource = STORAGE
        elif isinstance(spec, NetworkSpec):
            backend_id = await self._run(f"creating network {spec.name!r}", self._create_network, spec)
            resource = NETWORK
        elif isinstance(spec, StorageLinkSpec):
            async with self._lock(spec.compute_id):
                backend_id = await self._run(f"attaching storage {spec.storage_id}", self._create_storagelink,
                                             spec)
            resource = STORAGELINK
        elif isinstance(spec, NetworkInterfaceSpec):
            async with self._lock(spec.compute_id):
                backend_id = await self._run(f"attaching a NIC on {spec.network_id}",
                                             self._create_networkinterface, spec)
            resource = NETWORKINTERFACE
        else:
            raise NotSupported(f"the libvirt driver cannot create a {type(spec).__name__}")
        self._known[backend_id] = resource
        observed = await self.observe(resource, backend_id)
        if observed is None:
            raise BackendError(f"{resource.value} {spec.name!r} disappeared right after it was created")
        return self._remember(resource, observed)

    async def observe(self, resource: ResourceType, backend_id: str) -> Observed | None:
        """What libvirt reports now, or None when the object does not exist."""
        fn: Callable[[str], Observed | None] = {
            COMPUTE: self._observe_compute,
            STORAGE: self._observe_storage,
            NETWORK: self._observe_network,
            STORAGELINK: self._observe_storagelink,
            NETWORKINTERFACE: self._observe_networkinterface,
        }[resource]
        return await self._run(f"reading {resource.value} {backend_id}", fn, backend_id)

    async def delete(self, resource: ResourceType, backend_id: str) -> None:
        """Delete the object (a compute is powered off first); a missing object is fine."""
        fn: Callable[[str], None] = {
            COMPUTE: self._delete_compute,
            STORAGE: self._delete_storage,
            NETWORK: self._delete_network,
            STORAGELINK: self._detach_config,
            NETWORKINTERFACE: self._detach_config,
        }[resource]
        lock_id = backend_id.partition("/")[0] if resource in LINKS else backend_id
        async with self._lock(lock_id):
            await self._run(f"deleting {resource.value} {backend_id}", fn, backend_id)
            if resource in LINKS:
                await self._detach_live(resource, backend_id)
        self._forget(backend_id)

    async def act(self, resource: ResourceType, backend_id: str, action: str,
                  params: Mapping[str, AttributeValue]) -> Observed:
        """Run an OCCI action on the real object (GFD.224 §3.1-§3.3)."""
        if resource is COMPUTE and action == "save":
            name = params.get("name")
            template = await self.save(backend_id, name if isinstance(name, str) and name else None,
                                       str(params.get("method") or DEFAULT_METHOD["save"]))
            observed = await self._require(COMPUTE, backend_id)
            return self._remember(COMPUTE, Observed(observed.backend_id, observed.state,
                                                    f"saved as os_tpl {template.term}", observed.attributes))
        method = self._method(action, params) if resource is COMPUTE else None
        async with self._lock(backend_id):
            if resource is COMPUTE and action == "stop" and method in ("graceful", "acpioff"):
                await self._graceful_stop(backend_id, acpi=method == "acpioff")
            elif resource is COMPUTE and action in ("start", "stop", "restart", "suspend"):
                await self._run(f"{action} ({method}) of compute {backend_id}", self._compute_action,
                                backend_id, action, method)
            elif resource is NETWORK and action in ("up", "down"):
                await self._run(f"{action} of network {backend_id}", self._network_action, backend_id, action)
            elif resource is STORAGE and action in ("online", "offline"):
                await self._run(f"{action} of storage {backend_id}", self._storage_action, backend_id, action)
            else:
                raise NotSupported(f"the libvirt driver has no action {action!r} on a {resource.value}")
            observed = await self._require(resource, backend_id)
        return self._remember(resource, observed)

    async def update(self, resource: ResourceType, backend_id: str,
                     changes: Mapping[str, AttributeValue]) -> Observed:
        """Apply changed attributes: volume grow, compute resize/reimage, network addressing."""
        async with self._lock(backend_id.partition("/")[0] if resource in LINKS else backend_id):
            if resource is COMPUTE:
                await self._run(f"updating compute {backend_id}", self._update_compute, backend_id, changes)
            elif resource is STORAGE:
                await self._run(f"resizing storage {backend_id}", self._update_storage, backend_id, changes)
            elif resource is NETWORK:
                await self._run(f"updating network {backend_id}", self._update_network, backend_id, changes)
            else:
                await self._run(f"updating {resource.value} {backend_id}", self._update_link, resource,
                                backend_id, changes)
            observed = await self._require(resource, backend_id)
        return self._remember(resource, observed)

    async def save(self, backend_id: str, name: str | None, method: str) -> Template:
        """Copy the compute's root disk into a new os_tpl (GFD.224 §3.1 save).

        hot: the memory is saved (managed save), the disk copied, the domain resumed where it was;
        deferred: the guest is shut down (ACPI, then powered off after shutdown_timeout), copied,
        and started again. Either way the compute ends as it was before.
        """
        if method not in METHODS["save"]:
            raise InvalidAttribute(f"action save: method must be hot or deferred, got {method!r}")
        async with self._lock(backend_id):
            was = await self._run(f"reading compute {backend_id}", self._domain_state, backend_id)
            if was is None:
                raise BackendError(f"compute {backend_id} does not exist")
            running = was in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED, libvirt.VIR_DOMAIN_PAUSED)
            if running:
                if method == "hot":
                    await self._run(f"saving the memory of compute {backend_id}", self._managed_save, backend_id)
                else:
                    await self._graceful_stop(backend_id, acpi=True, force_after_timeout=True)
            try:
                image = await self._run(f"copying the disk of compute {backend_id}", self._copy_root,
                                        backend_id, name)
            finally:
                if running:
                    await self._run(f"restarting compute {backend_id}", self._start, backend_id)
        return image.template()

    # ------------------------------------------------------------------ compute: create, observe

    def _dom(self, backend_id: str, required: bool = True) -> Any:
        try:
            uuidlib.UUID(backend_id)
            return self._conn().lookupByUUIDString(backend_id)
        except ValueError:
            pass
        except libvirt.libvirtError as exc:
            if not _missing(exc):
                raise
        if required:
            raise BackendError(f"compute {backend_id} does not exist (any more) in libvirt")
        return None

    def _free_name(self, taken: set[str], name: str, suffix: str = "") -> str:
        base = self.settings.name_prefix + slug(name)
        candidate, n = base, 1
        while candidate + suffix in taken:
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    def _image(self, term: str) -> Image:
        image = self._saved.get(term) or self._images.get(term)
        if image is None:
            self._rescan_images()  # a file dropped into image_dir since the last scan
            image = self._saved.get(term) or self._images.get(term)
        if image is None:
            offered = ", ".join(sorted({*self._images, *self._saved})) or "none"
            raise BackendError(f"no os_tpl {term!r} in {self.settings.image_dir} (offered: {offered})")
        return image

    def _sizes(self, spec: ComputeSpec) -> tuple[int, float, Flavour | None]:
        flavour = self.settings.flavour(spec.resource_template) if spec.resource_template else None
        # "If the resource itself carries size-related attributes, the assigned resource template
        #  overrides them where applicable" (GFD.224 §3.5.2).
        cores = flavour.cores if flavour else spec.cores if spec.cores is not None else 1
        memory = flavour.memory_gib if flavour else spec.memory_gib if spec.memory_gib is not None else 1.0
        if cores < 1:
            raise InvalidAttribute(f"occi.compute.cores must be 1 or more, got {cores}")
        if not memory > 0:
            raise InvalidAttribute(f"occi.compute.memory must be more than 0 GiB, got {memory}")
        return cores, float(memory), flavour

    def _create_compute(self, spec: ComputeSpec) -> str:
        conn = self._conn()
        term = spec.os_template or self.settings.default_os_tpl
        image = self._image(term) if term else None
        cores, memory, flavour = self._sizes(spec)
        arch = spec.architecture or (image.architecture if image else "x64")
        if arch not in lx.ARCH_TO_LIBVIRT:
            raise InvalidAttribute(f"occi.compute.architecture must be x64 or x86, got {arch!r}")
        name = self._free_name({d.name() for d in conn.listAllDomains(0)}, spec.name)
        domain_uuid = str(uuidlib.uuid4())
        hostname = spec.hostname or slug(spec.name, 63)
        pool = conn.storagePoolLookupByName(self.settings.pool)
        undo: list[Callable[[], object]] = []
        try:
            root_path = seed_path = None
            if image is not None:
                disk = int((flavour.disk_gib if flavour and flavour.disk_gib else 0) * lx.BYTES_PER_GIB)
                volume = pool.createXML(lx.volume_xml(
                    f"{name}-root.qcow2", max(image.virtual_size, disk), "qcow2", image.path, image.fmt), 0)
                undo.append(functools.partial(volume.delete, 0))
                root_path = volume.path()
                keys = (spec.ssh_public_key,) if spec.ssh_public_key else ()
                seed = Seed(domain_uuid, hostname, keys, spec.user_data)
                seed_file = self.settings.seed_dir / f"{name}.iso"
                write_file(seed_file, seed_iso(seed))
                undo.append(functools.partial(seed_file.unlink, missing_ok=True))
                seed_path = str(seed_file)
            plan = lx.DomainPlan(
                name=name, uuid=domain_uuid, domain_type=self._domain_type, arch=lx.ARCH_TO_LIBVIRT[arch], vcpus=cores,
                memory_kib=int(memory * lx.KIB_PER_GIB), hostname=hostname, share=spec.share,
                root_path=root_path, seed_path=seed_path,
                console_log=str(self.settings.console_dir / f"{name}.log"),
                kernel=image.kernel if image else None, initrd=image.initrd if image else None,
                cmdline=image.cmdline if image else None, os_template=image.term if image else None,
                resource_template=spec.resource_template,
            )
            dom = conn.defineXML(lx.domain_xml(plan))
            undo.append(dom.undefine)
            dom.create()
            return str(dom.UUIDString())
        except BaseException:
            for step in reversed(undo):
                with contextlib.suppress(libvirt.libvirtError, OSError):
                    step()
            raise

    def _domain_state(self, backend_id: str) -> int | None:
        dom = self._dom(backend_id, required=False)
        return None if dom is None else int(dom.state(0)[0])

    def _observe_compute(self, backend_id: str) -> Observed | None:
        dom = self._dom(backend_id, required=False)
        if dom is None:
            return None
        try:
            state, reason = dom.state(0)
            config = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            live = lx.parse_domain(dom.XMLDesc(0)) if dom.isActive() else config
            saved = state == libvirt.VIR_DOMAIN_SHUTOFF and bool(dom.hasManagedSaveImage(0))
        except libvirt.libvirtError as exc:
            if _missing(exc):
                return None  # deleted while we looked
            raise
        occi_state, message = _compute_state(state, reason, saved)
        if occi_state == "active" and (live.vcpus, live.memory_kib) != (config.vcpus, config.memory_kib):
            message = "new cores/memory apply at the next start (stop and start, or restart method=cold)"
        attributes: dict[str, AttributeValue] = {
            "occi.compute.cores": config.vcpus,
            "occi.compute.memory": round(config.memory_kib / lx.KIB_PER_GIB, 6),
        }
        arch = lx.ARCH_FROM_LIBVIRT.get(config.arch or "")
        if arch:
            attributes["occi.compute.architecture"] = arch
        if config.metadata.get("hostname"):
            attributes["occi.compute.hostname"] = config.metadata["hostname"]
        if config.share is not None:
            attributes["occi.compute.share"] = config.share
        return Observed(backend_id, occi_state, message, attributes)

    # ------------------------------------------------------------------ compute: actions

    def _method(self, action: str, params: Mapping[str, AttributeValue]) -> str | None:
        if action not in METHODS:
            return None
        method = params.get("method") or DEFAULT_METHOD[action]
        if not isinstance(method, str) or method not in METHODS[action]:
            raise InvalidAttribute(f"action {action}: method must be one of {', '.join(METHODS[action])}, "
                                   f"got {method!r}")
        return method

    def _start(self, backend_id: str) -> None:
        dom = self._dom(backend_id)
        state = dom.state(0)[0]
        if state == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()
        elif state == libvirt.VIR_DOMAIN_PMSUSPENDED:
            dom.pMWakeup(0)
        elif state in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED, libvirt.VIR_DOMAIN_NOSTATE):
            if state == libvirt.VIR_DOMAIN_CRASHED:
                dom.destroy()
            dom.create()  # restores a managed save (hibernate) when there is one

    def _compute_action(self, backend_id: str, action: str, method: str | None) -> None:
        dom = self._dom(backend_id)
        active = bool(dom.isActive())
        if action == "start":
            self._start(backend_id)
        elif action == "stop":  # poweroff; graceful/acpioff go through _graceful_stop
            if active:
                dom.destroy()
            elif dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)  # a hibernated compute stopped: forget its memory
        elif action == "restart":
            if not active:
                self._start(backend_id)
            elif method == "graceful":
                dom.reboot(0)  # ACPI (or guest agent) reboot request: the guest OS restarts
            elif method == "warm":
                dom.reset(0)  # reset button: no power cycle
            else:
                dom.destroy()  # cold: power cycle; picks up a new definition (resize, reimage)
                dom.create()
        elif action == "suspend":
            if method == "hibernate":
                dom.managedSave(0)  # memory to disk, qemu exits; start restores it
            elif dom.state(0)[0] != libvirt.VIR_DOMAIN_PAUSED:
                dom.suspend()  # vCPUs paused, memory kept

    def _managed_save(self, backend_id: str) -> None:
        self._dom(backend_id).managedSave(0)

    def _request_shutdown(self, backend_id: str, acpi: bool) -> bool:
        """Ask the guest to power off; False when it is not running."""
        dom = self._dom(backend_id)
        if not dom.isActive():
            return False
        if dom.state(0)[0] == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()  # a paused guest cannot react to the power button
        if acpi:
            try:
                dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
                return True
            except libvirt.libvirtError as exc:
                if _code(exc) not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG,
                                      libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED):
                    raise
                # The hypervisor cannot pick the method (test driver): let it choose.
        dom.shutdown()
        return True

    def _is_active(self, backend_id: str) -> bool:
        dom = self._dom(backend_id, required=False)
        return bool(dom is not None and dom.isActive())

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
                    "agent?); it is still running: stop it with method=poweroff")
            await asyncio.sleep(POLL)

    def _copy_root(self, backend_id: str, name: str | None) -> Image:
        conn = self._conn()
        dom = self._dom(backend_id)
        config = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        root = config.disk("ua-root")
        if root is None or not root.source:
            raise BackendError(f"compute {config.name} has no root disk to save (it was created "
                               "without an os_tpl)")
        source = conn.storageVolLookupByPath(root.source)
        info = lx.parse_volume(source.XMLDesc(0))
        # The provider "MAY honour the client's name or replace it by policy" (GFD.224 §3.1): we
        # keep it, made a valid term, and number it when another template has it.
        taken = {*self._images, *self._saved}
        base = slug(name) if name else f"{config.name.removeprefix(self.settings.name_prefix)}-snapshot"
        numbers = iter(range(1 if name is None else 2, 1_000_000))
        term = base if name is not None else f"{base}-{next(numbers)}"
        while term in taken:
            term = f"{base}-{next(numbers)}"
        pool = conn.storagePoolLookupByName(self.settings.pool)
        volume_name = f"{self.settings.name_prefix}tpl-{term}.qcow2"
        # createXMLFrom copies through `qemu-img convert`: the new image has no backing file.
        copy = pool.createXMLFrom(lx.volume_xml(volume_name, info.capacity, "qcow2"), source, 0)
        origin = config.metadata.get("os-template")
        title = f"Snapshot {term} of compute {config.name}" + (f" (from {origin})" if origin else "")
        image = Image(term=term, title=title, path=str(copy.path()), fmt="qcow2", virtual_size=info.capacity,
                      architecture=lx.ARCH_FROM_LIBVIRT.get(config.arch or "", "x64"), kernel=config.kernel,
                      initrd=config.initrd, cmdline=config.cmdline, saved_from=config.name,
                      volume=f"{self.settings.pool}/{volume_name}")
        store_saved(self.settings.template_dir, image)
        self._saved[term] = image
        return image

    # ------------------------------------------------------------------ compute: update, delete

    def _update_compute(self, backend_id: str, changes: Mapping[str, AttributeValue]) -> None:
        conn = self._conn()
        dom = self._dom(backend_id)
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        config = lx.parse_domain(xml)
        vcpus: int | None = None
        memory: int | None = None
        metadata: dict[str, str | None] = {}
        arch: str | None = None
        for key, value in changes.items():
            if key == "occi.compute.cores":
                vcpus = _positive_int(key, value)
            elif key == "occi.compute.memory":
                memory = int(_positive_float(key, value) * lx.KIB_PER_GIB)
            elif key == "occi.compute.hostname":
                metadata["hostname"] = str(value)  # recorded; the guest keeps its name until reinstalled
            elif key == "occi.compute.architecture":
                if value not in lx.ARCH_TO_LIBVIRT:
                    raise InvalidAttribute(f"occi.compute.architecture must be x64 or x86, got {value!r}")
                arch = lx.ARCH_TO_LIBVIRT[str(value)]
            elif key in RESOURCE_TEMPLATE_KEYS:
                flavour = self.settings.flavour(str(value)) if value else None
                metadata["resource-template"] = str(value) if value else None
                if flavour is not None:  # CRTP R0305: applying a template resizes the compute
                    vcpus, memory = flavour.cores, int(flavour.memory_gib * lx.KIB_PER_GIB)
        new_xml = lx.set_domain_xml(xml, vcpus=vcpus, memory_kib=memory, metadata=metadata or None, arch=arch)
        term = next((str(changes[k]) for k in OS_TEMPLATE_KEYS if changes.get(k)), None)
        if term is not None and term != config.metadata.get("os-template"):
            new_xml = self._reimage(conn, dom, new_xml, config, self._image(term))
            return
        if new_xml != xml:
            conn.defineXML(new_xml)

    def _reimage(self, conn: Any, dom: Any, xml: str, config: lx.DomainInfo, image: Image) -> str:
        """Replace the root overlay by one of `image` (GFD.224 §3.5.1: "MUST immediately remove the
        old template, associate the new one and change the execution environment")."""
        running = bool(dom.isActive())
        if running:
            dom.destroy()
        elif dom.hasManagedSaveImage(0):
            dom.managedSaveRemove(0)  # the saved memory belongs to the old disk
        pool = conn.storagePoolLookupByName(self.settings.pool)
        old = config.disk("ua-root")
        taken = set(pool.listVolumes())
        volume_name = next(f"{config.name}-root{'' if n == 0 else f'-{n}'}.qcow2" for n in range(1000)
                           if f"{config.name}-root{'' if n == 0 else f'-{n}'}.qcow2" not in taken)
        volume = pool.createXML(lx.volume_xml(volume_name, image.virtual_size, "qcow2", image.path, image.fmt), 0)
        path = str(volume.path())
        disk = lx.set_disk_source(old.xml, path) if old else lx.disk_xml(path, "qcow2", "vda", "ua-root")
        new_xml = lx.set_domain_xml(
            xml, kernel=image.kernel or "", initrd=image.initrd, cmdline=image.cmdline,
            metadata={"os-template": image.term, "root-volume": path},
            remove_alias="ua-root", add_device=disk)
        try:
            conn.defineXML(new_xml)
        except libvirt.libvirtError:
            volume.delete(0)
            raise
        if old is not None and old.source:
            with contextlib.suppress(libvirt.libvirtError):
                conn.storageVolLookupByPath(old.source).delete(0)
        if running:
            dom.create()
        return new_xml

    def _delete_compute(self, backend_id: str) -> None:
        conn = self._conn()
        dom = self._dom(backend_id, required=False)
        if dom is None:
            return
        config = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if dom.isActive():
            dom.destroy()
        flags = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                 | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        try:
            dom.undefineFlags(flags)
        except libvirt.libvirtError as exc:
            if _missing(exc):
                return
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
            dom.undefine()
        for nic in config.interfaces:
            self._drop_reservation(conn, nic)
        root = config.metadata.get("root-volume") or (d.source if (d := config.disk("ua-root")) else None)
        if root:
            with contextlib.suppress(libvirt.libvirtError):
                conn.storageVolLookupByPath(root).delete(0)
        for path in (config.metadata.get("seed"), str(self.settings.console_dir / f"{config.name}.log")):
            if path:
                Path(path).unlink(missing_ok=True)

    # ------------------------------------------------------------------ storage

    def _pool(self) -> Any:
        return self._conn().storagePoolLookupByName(self.settings.pool)

    def _vol(self, backend_id: str, required: bool = True) -> Any:
        pool_name, sep, volume = backend_id.partition("/")
        if sep and volume:
            try:
                return self._conn().storagePoolLookupByName(pool_name).storageVolLookupByName(volume)
            except libvirt.libvirtError as exc:
                if not _missing(exc):
                    raise
        if required:
            raise BackendError(f"storage {backend_id} does not exist (any more) in libvirt")
        return None

    def _create_storage(self, spec: StorageSpec) -> str:
        size = _positive_float("occi.storage.size", spec.size_gib)
        pool = self._pool()
        suffix = ".qcow2"
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
        state = "offline" if backend_id in self._offline else "online"
        return Observed(backend_id, state, None, {"occi.storage.size": round(info.capacity / lx.BYTES_PER_GIB, 6)})

    def _attachments(self, path: str) -> list[tuple[Any, lx.Disk]]:
        """Every (domain, disk) that uses the file, in a live or a persistent definition."""
        found = []
        for dom in self._conn().listAllDomains(0):
            xmls = [dom.XMLDesc(0)]
            if dom.isActive() and dom.isPersistent():
                xmls.append(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            for xml in xmls:
                disk = next((d for d in lx.parse_domain(xml).disks if d.source == path), None)
                if disk is not None:
                    found.append((dom, disk))
                    break
        return found

    def _storage_action(self, backend_id: str, action: str) -> None:
        volume = self._vol(backend_id)
        if action == "online":
            self._offline.discard(backend_id)
            return
        users = self._attachments(volume.path())
        if users:
            raise BackendError(f"storage {backend_id} is attached to compute {users[0][0].name()}; "
                               "delete the storagelink before taking it offline")
        self._offline.add(backend_id)  # occipy refuses to attach an offline volume

    def _update_storage(self, backend_id: str, changes: Mapping[str, AttributeValue]) -> None:
        if "occi.storage.size" not in changes:
            return
        volume = self._vol(backend_id)
        wanted = int(_positive_float("occi.storage.size", changes["occi.storage.size"]) * lx.BYTES_PER_GIB)
        current = int(volume.info()[1])
        if wanted < current:
            raise BackendError(f"storage {backend_id} cannot shrink from {current / lx.BYTES_PER_GIB:g} GiB "
                               f"to {wanted / lx.BYTES_PER_GIB:g} GiB: volumes only grow")
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

    # ------------------------------------------------------------------ networks

    def _net(self, backend_id: str, required: bool = True) -> Any:
        try:
            uuidlib.UUID(backend_id)
            return self._conn().networkLookupByUUIDString(backend_id)
        except ValueError:
            pass
        except libvirt.libvirtError as exc:
            if not _missing(exc):
                raise
        if required:
            raise BackendError(f"network {backend_id} does not exist (any more) in libvirt")
        return None

    def _used_ranges(self, conn: Any) -> list[lx.IPNetwork]:
        used = []
        for net in conn.listAllNetworks(0):
            info = lx.parse_network(net.XMLDesc(0))
            if info.network is not None:
                used.append(info.network)
        return used

    def _create_network(self, spec: NetworkSpec) -> str:
        if spec.vlan is not None:
            raise BackendError("libvirt NAT networks have no 802.1q VLAN tagging: leave occi.network.vlan unset")
        conn = self._conn()
        name = self._free_name({n.name() for n in conn.listAllNetworks(0)}, spec.name)
        dhcp = spec.allocation != "static"
        if spec.address:
            network, gateway = _address_and_gateway(spec.address, spec.gateway)
            return self._define_network(conn, name, network, gateway, dhcp)
        # No range given: take the next free /24 of network_prefix; a range the host already uses
        # (libvirt: "Network is already in use by interface ...") makes us try the next one.
        used = self._used_ranges(conn)
        tried = 0
        for candidate in self.settings.network_prefix.subnets(new_prefix=24 if self.settings.network_prefix.version == 4
                                                              else 64):
            if any(candidate.overlaps(u) for u in used):
                continue
            gateway = _address_and_gateway(str(candidate), spec.gateway)[1] if spec.gateway else candidate.network_address + 1
            try:
                return self._define_network(conn, name, candidate, gateway, dhcp)
            except libvirt.libvirtError as exc:
                tried += 1
                if "in use" not in (exc.get_error_message() or "") or tried >= 8:
                    raise
        raise BackendError(f"no free /24 left in network_prefix {self.settings.network_prefix}")

    def _define_network(self, conn: Any, name: str, network: lx.IPNetwork, gateway: lx.IPAddress, dhcp: bool) -> str:
        net = conn.networkDefineXML(lx.network_xml(name, network, gateway, dhcp))
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
        attributes: dict[str, AttributeValue] = {}
        if info.network is not None:
            attributes["occi.network.address"] = str(info.network)
            attributes["occi.network.allocation"] = "dynamic" if info.dhcp else "static"
        if info.gateway is not None:
            attributes["occi.network.gateway"] = str(info.gateway)
        return Observed(backend_id, "active" if active else "inactive", None, attributes)

    def _network_action(self, backend_id: str, action: str) -> None:
        net = self._net(backend_id)
        if action == "up" and not net.isActive():
            net.create()
        elif action == "down" and net.isActive():
            net.destroy()

    def _users_of_network(self, name: str) -> list[str]:
        users = []
        for dom in self._conn().listAllDomains(0):
            flags = [0] + ([libvirt.VIR_DOMAIN_XML_INACTIVE] if dom.isPersistent() else [])
            if any(nic.network == name for f in flags for nic in lx.parse_domain(dom.XMLDesc(f)).interfaces):
                users.append(str(dom.name()))
        return users

    def _update_network(self, backend_id: str, changes: Mapping[str, AttributeValue]) -> None:
        if changes.get("occi.network.vlan") is not None:
            raise BackendError("libvirt NAT networks have no 802.1q VLAN tagging: leave occi.network.vlan unset")
        keys = ("occi.network.address", "occi.network.gateway", "occi.network.allocation")
        if not any(k in changes for k in keys):
            return  # label and the Core attributes concern only the service
        conn = self._conn()
        net = self._net(backend_id)
        info = lx.parse_network(_network_config(net))
        users = self._users_of_network(info.name)
        if users:
            raise BackendError(f"network {info.name} has interfaces on compute(s) {', '.join(users)}: delete "
                               "those networkinterfaces before changing its addressing")
        address = str(changes.get("occi.network.address") or info.network or "")
        gateway = changes.get("occi.network.gateway")
        if gateway is None and "occi.network.address" not in changes and info.gateway is not None:
            gateway = str(info.gateway)
        network, gw = _address_and_gateway(address, str(gateway) if gateway else None)
        allocation = changes.get("occi.network.allocation") or ("dynamic" if info.dhcp else "static")
        xml = lx.network_xml(info.name, network, gw, allocation != "static", uuid=info.uuid)
        active = bool(net.isActive())
        if active:
            net.destroy()
        conn.networkDefineXML(xml)
        if active:
            conn.networkLookupByUUIDString(backend_id).create()

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

    # ------------------------------------------------------------------ links

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
                        if _code(exc) != libvirt.VIR_ERR_NO_SUPPORT:
                            raise
                        if flag == libvirt.VIR_DOMAIN_AFFECT_CONFIG and device.alias:  # the test driver
                            self._conn().defineXML(lx.set_domain_xml(
                                dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), remove_alias=device.alias))
            except libvirt.libvirtError as exc:
                if not _missing(exc):
                    raise  # a domain deleted meanwhile has nothing left to detach

    def _definitions(self, dom: Any) -> tuple[lx.DomainInfo, lx.DomainInfo | None]:
        """(persistent definition, live definition or None when the domain is not running)."""
        config = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        live = lx.parse_domain(dom.XMLDesc(0)) if dom.isActive() else None
        return config, live

    def _attach(self, dom: Any, device: str) -> None:
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE  # hot-plug: the running guest sees it now
        try:
            dom.attachDeviceFlags(device, flags)
        except libvirt.libvirtError as exc:
            if _code(exc) != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            # No device API on this connection (the test driver): change the definition; a running
            # guest sees the device from its next start, and observe() says so.
            self._conn().defineXML(lx.set_domain_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE),
                                                     add_device=device))

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
            raise BackendError(f"storage {spec.storage_id} is already attached to compute {users[0][0].name()}")
        config, live = self._definitions(dom)
        taken = [d.target for d in (*config.disks, *(live.disks if live else ()))]
        target = lx.free_disk_target(taken, spec.deviceid)
        alias = f"ua-sl-{uuidlib.uuid4().hex[:12]}"
        fmt = lx.parse_volume(volume.XMLDesc(0)).fmt or "raw"
        self._attach(dom, lx.disk_xml(path, fmt, target, alias))
        return f"{dom.UUIDString()}/{alias}"

    def _link(self, backend_id: str) -> tuple[Any, str, lx.DomainInfo, lx.DomainInfo | None] | None:
        domain_id, _, alias = backend_id.partition("/")
        if not lx.ALIAS_RE.match(alias):
            return None
        dom = self._dom(domain_id, required=False)
        if dom is None:
            return None
        try:
            config, live = self._definitions(dom)
        except libvirt.libvirtError as exc:
            if _missing(exc):
                return None
            raise
        return dom, alias, config, live

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
        message = self._placement(config.disk(alias) is not None, bool(live and live.disk(alias)), live is not None)
        return Observed(backend_id, "active", message, {"occi.storagelink.deviceid": f"/dev/{disk.target}"})

    def _create_networkinterface(self, spec: NetworkInterfaceSpec) -> str:
        conn = self._conn()
        dom = self._dom(spec.compute_id, required=False)
        if dom is None:
            raise BackendError(f"compute {spec.compute_id} does not exist (any more) in libvirt")
        net = self._net(spec.network_id)
        info = lx.parse_network(net.XMLDesc(0))
        macs = {nic.mac for d in conn.listAllDomains(0) for nic in lx.parse_domain(d.XMLDesc(0)).interfaces}
        if spec.mac:
            mac = spec.mac.lower().replace("-", ":")
            if not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac):
                raise InvalidAttribute(f"occi.networkinterface.mac: {spec.mac!r} is not a MAC address")
            if mac in macs:
                raise BackendError(f"MAC address {mac} is already in use")
        else:
            mac = _free_mac(macs)
        reserved = False
        if spec.address:
            address = ipaddress.ip_interface(spec.address).ip if _is_address(spec.address) else None
            if address is None:
                raise InvalidAttribute(f"occi.networkinterface.address: {spec.address!r} is not an IP address")
            if info.network is not None and address not in info.network:
                raise BackendError(f"address {address} is outside network {info.name} ({info.network})")
            if address == info.gateway or str(address) in info.hosts.values():
                raise BackendError(f"address {address} is already in use on network {info.name}")
            if info.dhcp:
                # A DHCP reservation: the guest gets exactly this address from libvirt's dnsmasq.
                self._update_hosts(net, libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, lx.dhcp_host_xml(mac, str(address)))
                reserved = True
        alias = f"ua-nic-{uuidlib.uuid4().hex[:12]}"
        try:
            self._attach(dom, lx.interface_xml(info.name, mac, alias))
        except libvirt.libvirtError:
            if reserved:
                with contextlib.suppress(libvirt.libvirtError):
                    self._update_hosts(net, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
                                       lx.dhcp_host_xml(mac, str(spec.address).partition("/")[0]))
            raise
        return f"{dom.UUIDString()}/{alias}"

    @staticmethod
    def _update_hosts(net: Any, command: int, host_xml: str) -> None:
        flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
        if net.isActive():
            flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
        net.update(command, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, host_xml, flags)

    def _drop_reservation(self, conn: Any, nic: lx.Interface) -> None:
        if not nic.network:
            return
        with contextlib.suppress(libvirt.libvirtError):
            net = conn.networkLookupByName(nic.network)
            hosts = lx.parse_network(_network_config(net)).hosts
            if nic.mac in hosts:
                self._update_hosts(net, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
                                   lx.dhcp_host_xml(nic.mac, hosts[nic.mac]))

    def _observe_networkinterface(self, backend_id: str) -> Observed | None:
        found = self._link(backend_id)
        if found is None:
            return None
        dom, alias, config, live = found
        nic = config.interface(alias) or (live.interface(alias) if live else None)
        if nic is None:
            return None
        order = [i.alias for i in config.interfaces] + [i.alias for i in (live.interfaces if live else ())
                                                        if i.alias not in [c.alias for c in config.interfaces]]
        attributes: dict[str, AttributeValue] = {
            "occi.networkinterface.mac": nic.mac,
            # Guests name virtio NICs in PCI order, which is the definition's order.
            "occi.networkinterface.interface": f"eth{order.index(alias)}",
        }
        state = "active"
        message = self._placement(config.interface(alias) is not None, bool(live and live.interface(alias)),
                                  live is not None)
        try:
            net = self._conn().networkLookupByName(nic.network or "")
            info = lx.parse_network(net.XMLDesc(0))
        except libvirt.libvirtError as exc:
            if not _missing(exc):
                raise
            return Observed(backend_id, "error", f"network {nic.network} no longer exists", attributes)
        if not net.isActive():
            state, message = "inactive", f"network {info.name} is down"
        if info.gateway is not None:
            attributes["occi.networkinterface.gateway"] = str(info.gateway)
        address = info.hosts.get(nic.mac)
        attributes["occi.networkinterface.allocation"] = "static" if address or not info.dhcp else "dynamic"
        if address is None and live is not None and live.interface(alias) is not None:
            address = self._leased_address(dom, net, nic.mac)
        if address:
            attributes["occi.networkinterface.address"] = address
        return Observed(backend_id, state, message, attributes)

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

    async def _detach_live(self, resource: ResourceType, backend_id: str) -> None:
        """Hot-unplug a link's device from the running guest and wait until the guest lets go."""
        if not await self._run(f"detaching {backend_id}", self._detach_live_request, backend_id):
            return
        deadline = time.monotonic() + DETACH_TIMEOUT
        while await self._run(f"detaching {backend_id}", self._live_has, backend_id):
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"the guest has not released the {resource.value} device after {DETACH_TIMEOUT:g} s "
                    "(the guest OS must acknowledge PCI hot-unplug); it is already gone from the "
                    "definition, so it goes away at the next stop; delete the link again to retry")
            await asyncio.sleep(POLL)

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
            self._conn().defineXML(lx.set_domain_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE),
                                                     remove_alias=alias))
        if isinstance(device, lx.Interface):
            self._drop_reservation(self._conn(), device)

    def _update_link(self, resource: ResourceType, backend_id: str, changes: Mapping[str, AttributeValue]) -> None:
        if self._link(backend_id) is None:
            raise BackendError(f"{resource.value} {backend_id} does not exist (any more) in libvirt")
        fixed = {"occi.storagelink.deviceid", "occi.networkinterface.mac", "occi.networkinterface.address",
                 "occi.networkinterface.allocation"}
        changed = sorted(k for k in changes if k in fixed)
        if changed:
            raise BackendError(f"{', '.join(changed)} cannot change on an attached device: delete the "
                               f"{resource.value} and create it again")

    async def _require(self, resource: ResourceType, backend_id: str) -> Observed:
        observed = await self.observe(resource, backend_id)
        if observed is None:
            raise BackendError(f"{resource.value} {backend_id} does not exist (any more) in libvirt")
        return observed


# ---------------------------------------------------------------------------- pure helpers

def _network_config(net: Any) -> str:
    """A network's persistent definition (the test driver has only the one definition)."""
    try:
        return str(net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE))
    except libvirt.libvirtError as exc:
        if _code(exc) not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        return str(net.XMLDesc(0))


def _compute_state(state: int, reason: int, managed_save: bool) -> tuple[str, str | None]:
    """libvirt domain state -> OCCI compute state and message (GFD.224 §3.1 states)."""
    if state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED):
        return "active", None
    if state == libvirt.VIR_DOMAIN_SHUTDOWN:
        return "active", "shutting down"
    if state == libvirt.VIR_DOMAIN_PAUSED:
        if reason == libvirt.VIR_DOMAIN_PAUSED_IOERROR:
            return "error", "paused by a disk I/O error (is the pool full?)"
        if reason == libvirt.VIR_DOMAIN_PAUSED_CRASHED:
            return "error", "the guest crashed"
        return "suspended", None
    if state == libvirt.VIR_DOMAIN_PMSUSPENDED:
        return "suspended", "suspended by the guest (ACPI S3)"
    if state == libvirt.VIR_DOMAIN_SHUTOFF:
        if managed_save:
            return "suspended", "hibernated: memory saved to disk, start resumes it"
        if reason == libvirt.VIR_DOMAIN_SHUTOFF_CRASHED:
            return "error", "the guest crashed"
        if reason == libvirt.VIR_DOMAIN_SHUTOFF_FAILED:
            return "error", "the domain failed to start"
        return "inactive", None
    if state == libvirt.VIR_DOMAIN_CRASHED:
        return "error", "the guest crashed"
    return "error", f"libvirt reports no state for this domain (state {state})"


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 1:
        raise InvalidAttribute(f"{name} must be a whole number of 1 or more, got {value!r}")
    return int(value)


def _positive_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidAttribute(f"{name} must be a number above 0, got {value!r}")
    return float(value)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        return False
    return True


def _address_and_gateway(address: str, gateway: str | None) -> tuple[lx.IPNetwork, lx.IPAddress]:
    """occi.network.address (CIDR; "192.168.0.1/24" also names the gateway) and .gateway."""
    try:
        interface = ipaddress.ip_interface(address)
    except ValueError:
        raise InvalidAttribute(f"occi.network.address: {address!r} is not a CIDR range") from None
    network = interface.network
    if gateway:
        try:
            gw = ipaddress.ip_address(gateway)
        except ValueError:
            raise InvalidAttribute(f"occi.network.gateway: {gateway!r} is not an IP address") from None
    elif interface.ip != network.network_address:
        gw = interface.ip
    else:
        gw = network.network_address + 1
    if gw not in network or gw in (network.network_address, network.broadcast_address):
        raise BackendError(f"gateway {gw} is not a host address of {network}")
    return network, gw


def _free_mac(taken: set[str]) -> str:
    rng = random.SystemRandom()
    while True:
        # 52:54:00 is the prefix QEMU/libvirt use for generated MACs.
        mac = "52:54:00:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))
        if mac not in taken:
            return mac

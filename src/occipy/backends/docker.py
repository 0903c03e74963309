"""The Docker driver: computes are containers, storage named volumes, networks user-defined
bridges, and the Platform kinds (GFD.227) run as containers too (docs/drivers/docker.md).

Every object occipy makes carries the entity id in Docker labels (`Inventories`), lifecycle
changes come from Docker's event stream (`Watches`), `save` commits a container into an image
(`Saves`), CPU and memory limits change live (`Updates`), and containers (computes, components)
are measured from the stats API (`Samples`, `_docker_stats`). The blocking SDK runs in worker
threads (`_docker_engine`, `_docker_platform`). The only importer of the `docker` SDK besides its
helper modules.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import platform as host_platform
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio.to_thread
import docker.errors
import docker.types

from occipy.backends import _docker_objects as objects
from occipy.backends import _docker_platform as plat
from occipy.backends import _docker_stats as readings
from occipy.backends import base as b
from occipy.backends._docker_engine import (
    BUSYBOX_IMAGE,
    CPU_PERIOD,
    GIB,
    KIND,
    MANAGED,
    SAVED,
    SIZE,
    Desired,
    Engine,
    Gone,
    Mount,
    state_of,
    translate,
)
from occipy.backends.platform_types import (
    APPLICATION,
    COMPONENT,
    COMPONENTLINK,
    ApplicationSpec,
    ComponentLinkSpec,
    ComponentSpec,
)
from occipy.errors import BackendError, NotSupported
from occipy.locks import Holding, KeyedLocks

log = logging.getLogger("occipy.docker")
T = TypeVar("T")

SUPPORTS: Final[Mapping[str, b.Support]] = {
    b.COMPUTE: b.Support(actions=frozenset({"start", "stop", "restart", "suspend", "save"}),
                         updates=frozenset({"cores", "memory_gib", "flavour", "image"})),
    b.STORAGE: b.Support(),
    b.NETWORK: b.Support(),
    b.STORAGELINK: b.Support(),
    b.NETWORKINTERFACE: b.Support(),
    APPLICATION: b.Support(actions=frozenset({"start", "stop"})),
    COMPONENT: b.Support(actions=frozenset({"start", "stop"})),
    COMPONENTLINK: b.Support(),
}
_OPTIONS: Final = frozenset({"base_url", "images", "default_image", "flavours", "network", "stop_timeout", "timeout"})
_DEFAULT_FLAVOURS: Final = "tiny=1:0.5,standard=2:2,xlarge=4:8"
_NAME_RE: Final = re.compile(r"[^a-zA-Z0-9_.-]+")
_WATCHED: Final = frozenset({"start", "die", "pause", "unpause", "destroy", "oom", "restart"})
_CONTAINERS: Final = (b.COMPUTE, COMPONENT)
_DEFAULT_URL: Final = "unix:///var/run/docker.sock"


@dataclass(frozen=True, slots=True)
class DockerSettings:
    """The driver's settings (docs/drivers/docker.md)."""

    base_url: str = _DEFAULT_URL
    images: tuple[str, ...] = ()  # images to offer (empty: every tagged local image)
    default_image: str | None = None
    flavours: tuple[b.Template, ...] = ()
    network: str = "bridge"  # the network a container starts on
    stop_timeout: int = 10  # seconds between SIGTERM and SIGKILL on a graceful stop
    timeout: int = 60  # seconds for one Docker API call


def _flavours(text: str) -> tuple[b.Template, ...]:
    found = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, sizes = item.partition("=")
        cores, colon, memory = sizes.partition(":")
        try:
            if not sep or not colon or not name.strip():
                raise ValueError
            count, gib = int(cores), float(memory)
            if count < 1 or gib <= 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"docker driver option flavours: {item!r} is not name=cores:memory_gib") from None
        found.append(b.Template(b.FLAVOUR, name.strip(), f"{name.strip()}: {count} core(s), {gib:g} GiB",
                                cores=count, memory_gib=gib))
    return tuple(found)


class DockerDriver:
    """A Docker engine as an OCCI cloud; see the module docstring and docs/drivers/docker.md."""

    name = "docker"
    supports: Mapping[str, b.Support] = SUPPORTS
    sampled: frozenset[str] = frozenset(_CONTAINERS)  # Samples: what runs as a container

    def __init__(self, settings: DockerSettings) -> None:
        self.settings = settings
        self._engine = Engine(settings.base_url, settings.timeout, settings.network, settings.stop_timeout)
        self._templates: tuple[b.Template, ...] = ()
        self._images: dict[str, str] = {}  # template name -> image reference or id
        self._runtimes: dict[str, plat.Runtime] = {}
        self._default_image: str | None = None
        self._architecture: str | None = None
        self._locks = KeyedLocks()  # per Docker object, kept while held (occipy.locks)
        self._quiet: set[str] = set()  # containers occipy is re-creating or deleting (events ignored)
        # Each subscriber gets the changes of events that happened after it subscribed (ns).
        self._subscribers: list[tuple[int, asyncio.Queue[b.Change | None]]] = []
        self._events: Any = None
        self._events_client: Any = None
        self._watcher: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, str], data_dir: Path) -> DockerDriver:
        """Settings from --driver-opt / OCCIPY_DOCKER_* / [drivers.docker]; `data_dir` is unused
        (Docker keeps everything, labels included)."""
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ValueError(f"unknown docker driver option(s) {', '.join(unknown)}; known: {', '.join(sorted(_OPTIONS))}")
        base_url = options.get("base_url") or os.environ.get("DOCKER_HOST") or _DEFAULT_URL
        values: dict[str, Any] = {"base_url": base_url}
        values["images"] = tuple(filter(None, (i.strip() for i in options.get("images", "").split(","))))
        values["default_image"] = options.get("default_image") or None
        values["flavours"] = _flavours(options.get("flavours", _DEFAULT_FLAVOURS))
        values["network"] = options.get("network") or "bridge"
        for key in ("stop_timeout", "timeout"):
            if options.get(key):
                try:
                    values[key] = int(options[key])
                    if values[key] < 0:
                        raise ValueError
                except ValueError:
                    raise ValueError(f"docker driver option {key}: expected whole seconds, got {options[key]!r}") from None
        return cls(DockerSettings(**values))

    # ---- plumbing --------------------------------------------------------------------------------

    async def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking SDK work in a thread, with Docker's errors as the contract's."""
        def call() -> T:
            try:
                return fn(*args)
            except (Gone, BackendError, NotSupported):
                raise
            except Exception as exc:
                translated = translate(exc, what)
                if translated is exc:
                    raise
                raise translated from None
        return await anyio.to_thread.run_sync(call)

    def _lock(self, name: str) -> Holding:
        return self._locks.hold(name)

    @contextlib.asynccontextmanager
    async def _locked(self, *names: str) -> AsyncIterator[None]:
        """The locks of several Docker objects, taken in one order (two callers cannot deadlock).

        A component link touches both its ends: a use link re-creates its source and reads its
        target, a host link connects its target to the application's network. Holding one end's lock
        only let a host link connect a container that a use link was replacing."""
        async with contextlib.AsyncExitStack() as stack:
            for name in sorted(set(names)):
                await stack.enter_async_context(self._lock(name))
            yield

    def _publish(self, change: b.Change | None, at: int | None = None) -> None:
        for since, queue in list(self._subscribers):
            if at is None or at >= since:
                queue.put_nowait(change)

    # ---- lifecycle --------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, list (or build) the images, and follow Docker's event stream."""
        await anyio.to_thread.run_sync(self._engine.connect)
        await self._run("list images", self._refresh_templates)
        self._loop = asyncio.get_running_loop()
        self._events = await self._run("follow events", self._start_events)
        self._watcher = threading.Thread(target=self._watch, args=(self._events,), name="occipy-docker-events",
                                         daemon=True)
        self._watcher.start()

    async def close(self) -> None:
        events, self._events = self._events, None
        if events is not None:
            try:
                events.close()
            except Exception:  # noqa: BLE001, S110 - the stream may already be closed
                pass
        if self._watcher is not None:
            await anyio.to_thread.run_sync(self._watcher.join, 5.0)
            self._watcher = None
        if self._events_client is not None:
            await anyio.to_thread.run_sync(self._events_client.close)
            self._events_client = None
        self._publish(None)
        await anyio.to_thread.run_sync(self._engine.close)

    def templates(self) -> Sequence[b.Template]:
        return self._templates

    def _refresh_templates(self) -> None:
        client = self._engine.client
        info = client.info()
        machine = info.get("Architecture") or host_platform.machine()
        self._architecture = {"x86_64": "x64", "amd64": "x64", "i386": "x86", "i686": "x86"}.get(machine)
        images: dict[str, str] = {}
        titles: dict[str, str] = {}
        local = client.images.list()
        for image in local:
            saved = image.labels.get(SAVED)
            if saved:
                images[saved] = image.id
                titles[saved] = f"Saved image {saved} ({image.labels.get('org.occipy.saved-from', 'a container')})"
        if self.settings.images:
            for ref in self.settings.images:
                try:
                    client.images.get(ref)
                except docker.errors.ImageNotFound:
                    log.warning("docker: image %s is not on the engine: not offered", ref)
                    continue
                images[ref] = ref
        else:
            for image in local:
                if image.labels.get(SAVED):
                    continue
                for tag in image.tags:
                    images.setdefault(tag, tag)
        if not images:
            images[BUSYBOX_IMAGE] = self._engine.build_busybox()
        for name, ref in images.items():
            titles.setdefault(name, f"Docker image {name}")
        default = self.settings.default_image
        if default is not None and default not in images:
            raise BackendError(f"docker driver option default_image: no image {default!r} on the engine; "
                               f"offered: {', '.join(sorted(images))}")
        self._default_image = default or (BUSYBOX_IMAGE if BUSYBOX_IMAGE in images else min(images))
        self._images = images
        runtimes = {r.name: r for r in plat.BUILTIN}
        for name, ref in images.items():
            runtimes.setdefault(name, plat.image_runtime(name, ref, client))
        self._runtimes = runtimes
        self._templates = (
            *(b.Template(b.IMAGE, name, titles[name], architecture=self._architecture) for name in sorted(images)),
            *self.settings.flavours,
            *(b.Template(b.RUNTIME, r.name, r.title) for r in runtimes.values()),
            *(replace(f, family=b.PLAN) for f in self.settings.flavours),
        )

    # ---- events (Watches) -------------------------------------------------------------------------

    def _start_events(self) -> Any:
        self._events_client = self._engine.events_client()
        return self._events_client.events(decode=True, filters={"type": "container", "label": f"{MANAGED}=1"})

    def _watch(self, stream: Any) -> None:
        loop = self._loop
        assert loop is not None
        try:
            for event in stream:
                if event.get("Action") not in _WATCHED:
                    continue
                try:
                    changes = self._changes_for(event)
                except Exception:
                    log.exception("docker: cannot follow event %s", event.get("Action"))
                    continue
                at = int(event.get("timeNano") or time.time_ns())
                for change in changes:
                    loop.call_soon_threadsafe(self._publish, change, at)
        except Exception:  # noqa: BLE001, S110 - the stream ends when close() closes it
            pass

    def _changes_for(self, event: Mapping[str, Any]) -> list[b.Change]:
        attributes = event.get("Actor", {}).get("Attributes", {})
        name, kind = attributes.get("name", ""), attributes.get(KIND, "")
        if kind not in _CONTAINERS or name in self._quiet:
            return []
        ref = b.Ref(kind, name)
        try:
            container = self._engine.container(name)
        except Gone:
            return [b.Change(ref, None)]
        changes = [b.Change(ref, self._container_observed(container))]
        if kind == COMPONENT:
            for network in plat.applications_of(container):
                try:
                    changes.append(b.Change(b.Ref(APPLICATION, network), plat.application_observed(self._engine, network)))
                except Gone:
                    continue
        return changes

    def changes(self) -> AsyncIterator[b.Change]:
        queue: asyncio.Queue[b.Change | None] = asyncio.Queue()
        entry = (time.time_ns(), queue)
        self._subscribers.append(entry)
        return self._stream(entry)

    async def _stream(self, entry: tuple[int, asyncio.Queue[b.Change | None]]) -> AsyncIterator[b.Change]:
        queue = entry[1]
        try:
            while True:
                change = await queue.get()
                if change is None:
                    return
                yield change
        finally:
            if entry in self._subscribers:
                self._subscribers.remove(entry)

    # ---- create -----------------------------------------------------------------------------------

    async def create(self, spec: object) -> b.Observed:
        match spec:
            case b.ComputeSpec():
                return await self._run("create a container", self._create_compute, spec)
            case b.StorageSpec():
                return await self._run("create a volume", objects.create_volume, self._engine, spec)
            case b.NetworkSpec():
                return await self._run("create a network", objects.create_network, self._engine, spec)
            case b.StorageLinkSpec():
                async with self._lock(spec.compute_id):
                    return await self._quietly(spec.compute_id, "mount a volume", self._create_storagelink, spec)
            case b.NetworkInterfaceSpec():
                async with self._lock(spec.compute_id):
                    return await self._run("connect a container", objects.create_interface, self._engine, spec)
            case ApplicationSpec():
                return await self._run("create an application network", self._create_application, spec)
            case ComponentSpec():
                return await self._run("create a component container", self._create_component, spec)
            case ComponentLinkSpec():
                async with self._locked(spec.source_id, spec.target_id):
                    return await self._quietly(spec.source_id, "link components", self._create_componentlink, spec)
        raise NotSupported(f"the Docker cloud cannot create a {type(spec).__name__}")

    async def _quietly(self, name: str, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Work that removes and re-creates container `name`: its events are occipy's own."""
        self._quiet.add(name)
        try:
            return await self._run(what, fn, *args)
        finally:
            self._quiet.discard(name)

    def _container_name(self, wanted: str) -> str:
        base = _NAME_RE.sub("-", wanted).strip("-._")[:60] or "occipy"
        if not base[0].isalnum():
            base = "o" + base
        name, n = base, 1
        while True:
            try:
                self._engine.client.containers.get(name)
            except docker.errors.NotFound:
                return name
            n += 1
            name = f"{base}-{n}"

    def _create_compute(self, spec: b.ComputeSpec) -> b.Observed:
        image = spec.image or self._default_image
        ref = self._images.get(image or "")
        if ref is None:
            raise BackendError(f"the Docker cloud has no image {image!r}; it offers {', '.join(sorted(self._images))}")
        if spec.architecture is not None and spec.architecture != self._architecture:
            raise BackendError(f"the Docker engine runs {self._architecture or 'another'} containers, "
                               f"not {spec.architecture}")
        cores, memory = self._sizes(spec.flavour, spec.cores, spec.memory_gib)
        hostname = _NAME_RE.sub("-", spec.hostname or spec.name).strip("-.")[:63] or None
        desired = Desired(kind=b.COMPUTE, entity=spec.entity_id, image=ref, cores=cores, memory_gib=memory,
                          hostname=hostname, ssh_key=spec.ssh_public_key,
                          user_data=base64.b64encode(spec.user_data).decode() if spec.user_data else None)
        container = self._engine.run(self._container_name(spec.name), desired, [], b.ACTIVE)
        return self._container_observed(container)

    def _sizes(self, flavour: str | None, cores: int | None, memory: float | None) -> tuple[int, float]:
        chosen = next((f for f in self.settings.flavours if f.name == flavour), None) if flavour else None
        if chosen is not None:
            cores, memory = chosen.cores, chosen.memory_gib
        if cores is not None and (isinstance(cores, bool) or cores < 1):
            raise BackendError(f"cores must be 1 or more, got {cores}")
        if memory is not None and not memory > 0:
            raise BackendError(f"memory must be above 0 GiB, got {memory}")
        return cores or 1, memory or 0.5

    def _container_observed(self, container: Any) -> b.Observed:
        if container.labels.get(KIND) == COMPONENT:
            return b.Observed(container.name, state_of(container), None, plat.component_facts(container))
        host = container.attrs.get("HostConfig", {})
        quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or CPU_PERIOD
        memory = host.get("Memory") or 0
        facts = b.ComputeFacts(cores=max(1, quota // period) if quota > 0 else None,
                               memory_gib=round(memory / GIB, 3) if memory else None,
                               architecture=self._architecture,
                               hostname=container.attrs.get("Config", {}).get("Hostname"))
        status = container.attrs.get("State", {})
        message = status.get("Error") or None
        return b.Observed(container.name, state_of(container), message, facts)

    def _create_storagelink(self, spec: b.StorageLinkSpec) -> b.Observed:
        try:
            container = self._engine.managed_container(spec.compute_id, (b.COMPUTE,))
        except Gone:
            raise BackendError(f"the Docker cloud has no container {spec.compute_id}") from None
        volume = objects.volume_of(self._engine, spec.storage_id)
        if volume is None:
            raise BackendError(f"the Docker cloud has no volume {spec.storage_id}")
        desired = Desired.from_labels(container.labels)
        path = spec.mountpoint or f"/mnt/{volume.name}"
        if not path.startswith("/"):
            raise BackendError(f"mountpoint {path!r} is not an absolute path")
        if any(m.volume == volume.name for m in desired.mounts):
            raise BackendError(f"volume {volume.name} is already mounted in {container.name}")
        if any(m.path == path for m in desired.mounts):
            raise BackendError(f"{container.name} has a volume at {path} already")
        device = spec.device or volume.name
        if any(m.device == device for m in desired.mounts):
            raise BackendError(f"{container.name} has a device {device} already")
        mount = Mount(volume.name, path, device, spec.entity_id)
        self._engine.recreate(container.name, lambda d: replace(d, mounts=(*d.mounts, mount)))
        return b.Observed(f"{container.name}:{volume.name}", b.ACTIVE, None,
                          b.StorageLinkFacts(device=device, mountpoint=path))

    def _create_application(self, spec: ApplicationSpec) -> b.Observed:
        network = plat.create_application(self._engine, _NAME_RE.sub("-", spec.name), spec.entity_id,
                                          {"app_name": spec.app_name, "runtime": spec.runtime, "plan": spec.plan})
        return plat.application_observed(self._engine, network.id)

    def _create_component(self, spec: ComponentSpec) -> b.Observed:
        name = spec.runtime or (plat.DEFAULT_DATABASE if spec.database else plat.DEFAULT_RUNTIME)
        runtime = self._runtimes.get(name)
        if runtime is None:
            raise BackendError(f"the Docker cloud has no runtime {name!r}; it offers {', '.join(self._runtimes)}")
        if runtime.image == BUSYBOX_IMAGE:
            self._engine.build_busybox()
        cores, memory = self._sizes(spec.plan, None, None)
        desired = plat.component_desired(spec.entity_id, runtime, cores, memory, spec.database)
        container = self._engine.run(self._container_name(spec.name), desired, [], b.ACTIVE)
        return self._container_observed(container)

    def _create_componentlink(self, spec: ComponentLinkSpec) -> b.Observed:
        backend_id, facts, application = plat.create_link(self._engine, spec)
        if application is not None:
            self._announce_application(application)
        else:  # the source was re-created: its address on its applications' networks may be new
            self._announce_applications_of(spec.source_id)
        return b.Observed(backend_id, b.ACTIVE, None, facts)

    def _announce_applications_of(self, name: str) -> None:
        try:
            container = self._engine.container(name)
        except Gone:
            return
        for network in plat.applications_of(container):
            self._announce_application(network)

    def _announce_application(self, backend_id: str) -> None:
        """The application's URL follows its members: report it as a change (from a worker thread)."""
        loop = self._loop
        try:
            observed = plat.application_observed(self._engine, backend_id)
        except Gone:
            return
        if loop is not None:
            loop.call_soon_threadsafe(self._publish, b.Change(b.Ref(APPLICATION, backend_id), observed))

    # ---- delete -----------------------------------------------------------------------------------

    async def delete(self, ref: b.Ref) -> None:
        if ref.resource in _CONTAINERS:
            async with self._lock(ref.backend_id):
                await self._quietly(ref.backend_id, "remove a container", self._delete_container, ref)
        elif ref.resource == b.STORAGE:
            await self._run("remove a volume", self._delete_volume, ref.backend_id)
        elif ref.resource == b.NETWORK:
            await self._run("remove a network", objects.delete_network, self._engine, ref.backend_id)
        elif ref.resource == b.STORAGELINK:
            compute, _, volume = ref.backend_id.partition(":")
            if volume:
                async with self._lock(compute):
                    await self._quietly(compute, "unmount a volume", self._unmount, compute, volume)
        elif ref.resource == b.NETWORKINTERFACE:
            compute, _, network = ref.backend_id.partition(":")
            if network:
                async with self._lock(compute):
                    await self._run("disconnect a container", objects.disconnect, self._engine, compute, network)
        elif ref.resource == APPLICATION:
            await self._run("remove an application network", plat.delete_application, self._engine, ref.backend_id)
        elif ref.resource == COMPONENTLINK:
            parsed = plat.parse_link(ref.backend_id)
            if parsed is not None:
                async with self._locked(parsed[1], parsed[2]):
                    application = await self._quietly(parsed[1], "unlink components", plat.delete_link,
                                                      self._engine, ref.backend_id)
                if application is not None:
                    await self._run("observe an application", self._announce_application, application)
                else:
                    await self._run("observe applications", self._announce_applications_of, parsed[1])

    def _delete_container(self, ref: b.Ref) -> None:
        try:
            container = self._engine.managed_container(ref.backend_id, (ref.resource,))
        except Gone:
            return
        container.remove(force=True)
        self._engine.wait_gone(ref.backend_id)

    def _delete_volume(self, name: str) -> None:
        volume = objects.volume_of(self._engine, name)
        if volume is None:
            return
        # Detach it first (infrastructure.md §4.3: DELETE is accepted with links attached).
        for container in self._engine.client.containers.list(all=True, filters={"label": f"{MANAGED}=1"}):
            if any(m.volume == name for m in Desired.from_labels(container.labels).mounts):
                self._unmount(container.name, name)
        volume.remove(force=True)

    def _unmount(self, compute: str, volume: str) -> None:
        self._quiet.add(compute)
        try:
            container = self._engine.managed_container(compute, (b.COMPUTE,))
            if any(m.volume == volume for m in Desired.from_labels(container.labels).mounts):
                self._engine.recreate(compute, lambda d: replace(d, mounts=tuple(m for m in d.mounts if m.volume != volume)))
        except Gone:
            return
        finally:
            self._quiet.discard(compute)

    # ---- observe ----------------------------------------------------------------------------------

    async def observe(self, ref: b.Ref) -> b.Observed | None:
        try:
            return await self._run("inspect an object", self._observe, ref)
        except Gone:
            return None

    def _observe(self, ref: b.Ref) -> b.Observed | None:
        if ref.resource in _CONTAINERS:
            return self._container_observed(self._engine.managed_container(ref.backend_id, (ref.resource,)))
        if ref.resource == b.STORAGE:
            volume = objects.volume_of(self._engine, ref.backend_id)
            if volume is None:
                return None
            size = (volume.attrs.get("Labels") or {}).get(SIZE)
            return b.Observed(volume.name, b.ONLINE, None, b.StorageFacts(size_gib=float(size) if size else None))
        if ref.resource == b.NETWORK:
            network = objects.network_of(self._engine, ref.backend_id, b.NETWORK)
            return objects.network_observed(self._engine, network) if network is not None else None
        if ref.resource == b.STORAGELINK:
            compute, _, volume = ref.backend_id.partition(":")
            container = self._engine.managed_container(compute, (b.COMPUTE,))
            mount = next((m for m in Desired.from_labels(container.labels).mounts if m.volume == volume), None)
            if mount is None:
                return None
            return b.Observed(ref.backend_id, b.ACTIVE, None, b.StorageLinkFacts(device=mount.device, mountpoint=mount.path))
        if ref.resource == b.NETWORKINTERFACE:
            compute, _, network = ref.backend_id.partition(":")
            return objects.interface_observed(self._engine, self._engine.managed_container(compute, (b.COMPUTE,)), network)
        if ref.resource == APPLICATION:
            return plat.application_observed(self._engine, ref.backend_id)
        if ref.resource == COMPONENTLINK:
            return plat.link_observed(self._engine, ref.backend_id)
        return None

    # ---- monitoring (Samples) ---------------------------------------------------------------------

    async def sample(self, ref: b.Ref) -> b.Reading | None:
        """One reading of a container from the stats API (docs/drivers/docker.md "Monitoring");
        None when it does not exist."""
        if ref.resource not in self.sampled:
            return None
        if ref.backend_id in self._quiet:
            # occipy is re-creating it (a mount, a component link): read the new container, not
            # the moment between removal and creation (which would look like an outage).
            async with self._lock(ref.backend_id):
                pass
        try:
            return await self._run("read a container's statistics", self._sample, ref)
        except Gone:
            return None

    def _sample(self, ref: b.Ref) -> b.Reading:
        container = self._engine.managed_container(ref.backend_id, (ref.resource,))
        # A container that is not running has no cgroup to read: its state is the whole reading.
        document = self._engine.stats(container) if container.status in ("running", "paused") else None
        return readings.reading(document, container.attrs, time.time())

    # ---- actions, updates, save -------------------------------------------------------------------

    async def act(self, ref: b.Ref, action: b.Action) -> b.Observed:
        if ref.resource == b.COMPUTE and isinstance(action, b.Save):
            template = await self.save(ref, action)
            observed = await self.observe(ref)
            if observed is None:
                raise BackendError(f"container {ref.backend_id} is gone")
            return replace(observed, message=f"saved as image {template.name}")
        allowed = self.supports.get(ref.resource, b.Support()).actions
        if action.name not in allowed or isinstance(action, b.Custom):
            raise NotSupported(f"the Docker cloud has no action {action.name!r} on a {ref.resource}")
        if ref.resource == APPLICATION:
            async with self._lock(ref.backend_id):  # not while a host link joins or leaves it
                return await self._run(f"{action.name} an application", self._act_application, ref.backend_id,
                                       action)
        async with self._lock(ref.backend_id):
            return await self._run(f"{action.name} a container", self._act_container, ref, action)

    def _act_container(self, ref: b.Ref, action: b.Action) -> b.Observed:
        try:
            container = self._engine.managed_container(ref.backend_id, (ref.resource,))
        except Gone:
            raise BackendError(f"the Docker cloud has no {ref.resource} {ref.backend_id}") from None
        status = container.status
        match action:
            case b.Start():
                if status == "paused":
                    container.unpause()
                elif status != "running":
                    container.start()
            case b.Stop(method=method):
                self._engine.stop(container, method)
            case b.Restart(method=method):
                if status == "paused":
                    container.unpause()
                if method == "cold":
                    self._engine.stop(container, "poweroff")
                    container.start()
                else:
                    container.restart(timeout=self.settings.stop_timeout)
            case b.Suspend():
                # Both methods pause: the processes are frozen in memory (hibernation to disk
                # would need CRIU checkpoints, which the engine does not offer by default).
                if status != "running":
                    raise BackendError(f"only a running container can be suspended; {container.name} is {status}")
                container.pause()
        container.reload()
        return self._container_observed(container)

    def _act_application(self, backend_id: str, action: b.Action) -> b.Observed:
        try:
            network = plat.application_network(self._engine, backend_id)
        except Gone:
            raise BackendError(f"the Docker cloud has no application {backend_id}") from None
        plat.start_stop(self._engine, plat.hosted(self._engine, network), isinstance(action, b.Start))
        observed = plat.application_observed(self._engine, backend_id)
        # An application without components keeps the state the action asked for.
        target = b.ACTIVE if isinstance(action, b.Start) else b.INACTIVE
        return replace(observed, state=target) if not plat.hosted(self._engine, network) else observed

    async def update(self, ref: b.Ref, change: b.Update) -> b.Observed:
        if ref.resource != b.COMPUTE or not isinstance(change, b.ComputeUpdate):
            raise NotSupported(f"the Docker cloud cannot change a {ref.resource} while it exists")
        async with self._lock(ref.backend_id):
            return await self._quietly(ref.backend_id, "update a container", self._update, ref.backend_id, change)

    def _update(self, name: str, change: b.ComputeUpdate) -> b.Observed:
        try:
            container = self._engine.managed_container(name, (b.COMPUTE,))
        except Gone:
            raise BackendError(f"the Docker cloud has no container {name}") from None
        if change.architecture is not None and change.architecture != self._architecture:
            raise BackendError(f"the Docker engine runs {self._architecture} containers, not {change.architecture}")
        desired = Desired.from_labels(container.labels)
        cores, memory = self._sizes(change.flavour, change.cores or desired.cores, change.memory_gib or desired.memory_gib)
        if change.image is not None:
            ref = self._images.get(change.image)
            if ref is None:
                raise BackendError(f"the Docker cloud has no image {change.image!r}")
            # A new image means a new container (same name, networks, mounts; a new root filesystem).
            container = self._engine.recreate(name, lambda d: replace(d, image=ref, cores=cores, memory_gib=memory))
            return self._container_observed(container)
        # Limits change live (docker update); labels cannot change, so a re-creation reads the
        # limits from the container's HostConfig (Engine.recreate).
        container.update(cpu_period=CPU_PERIOD, cpu_quota=cores * CPU_PERIOD, mem_limit=int(memory * GIB),
                         memswap_limit=int(memory * GIB))
        container.reload()
        return self._container_observed(container)

    async def save(self, ref: b.Ref, request: b.Save) -> b.Template:
        if request.method not in ("hot", "deferred", "deffered"):
            raise NotSupported(f"the Docker cloud has no save method {request.method!r}")
        async with self._lock(ref.backend_id):
            template = await self._run("commit a container", self._save, ref.backend_id, request)
        await self._run("list images", self._refresh_templates)
        return template

    def _save(self, name: str, request: b.Save) -> b.Template:
        try:
            container = self._engine.managed_container(name, (b.COMPUTE,))
        except Gone:
            raise BackendError(f"the Docker cloud has no container {name}") from None
        wanted = request.image_name or f"{name}-snapshot"
        base = re.sub(r"[^a-z0-9_.-]+", "-", wanted.lower()).strip("-._") or "snapshot"
        taken = set(self._images)
        template_name = base if base not in taken and request.image_name else next(
            f"{base}-{n}" for n in range(1, 10_000) if f"{base}-{n}" not in taken)
        # "hot" and "deferred" both commit now; Docker pauses the container while it commits.
        image = container.commit(repository=f"occipy-saved/{template_name}", tag="latest",
                                 conf={"Labels": {SAVED: template_name, "org.occipy.saved-from": name}})
        log.info("docker: saved %s as %s (%s)", name, template_name, image.id)
        return b.Template(b.IMAGE, template_name, f"Saved image {template_name} (from {name})",
                          architecture=self._architecture)

    # ---- inventory --------------------------------------------------------------------------------

    async def inventory(self) -> Sequence[b.Tagged]:
        return await self._run("list occipy's objects", objects.inventory, self._engine)


__all__ = ["DockerDriver", "DockerSettings"]

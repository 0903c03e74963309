"""The Docker driver's blocking half: containers, volumes, networks through the `docker` SDK.

Everything here is synchronous and runs in a worker thread (`docker.py` calls it through
`anyio.to_thread.run_sync`). A container is described entirely by its labels (`Desired`): the
image, command, sizes, contextualisation, mounts and the environment its component links give
it, so that it can be re-created with the same name, networks and addresses when a mount or an
environment variable must change (Docker cannot add either to a container that exists).
Only the Docker driver's modules import this one.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import docker
import docker.errors
import docker.types
import docker.utils
import requests.exceptions

from occipy.backends import base as b
from occipy.errors import BackendError, BackendUnavailable

log = logging.getLogger("occipy.docker")

# ---- labels ------------------------------------------------------------------------------------

MANAGED: Final = "org.occipy.managed"  # "1" on every object occipy made
KIND: Final = "org.occipy.kind"  # the resource type the object realises
ENTITY: Final = "org.occipy.entity"  # the OCCI entity id ("" when none was given)
CONFIG: Final = "org.occipy.config"  # containers: JSON of Desired (without mounts and uses)
MOUNTS: Final = "org.occipy.mounts"  # containers: JSON {volume: {path, device, entity}}
USES: Final = "org.occipy.uses"  # containers: JSON {target container: {entity, env}}
SIZE: Final = "org.occipy.size-gib"  # volumes: the size asked for (recorded, not enforced)
ALLOCATION: Final = "org.occipy.allocation"  # networks: dynamic | static
APP: Final = "org.occipy.app"  # application networks: JSON {app_name, runtime, plan}
SAVED: Final = "org.occipy.saved"  # images made by save: the template name
# Endpoint driver options (a network connection carries the entity of the link it realises).
EP_ENTITY: Final = "org.occipy.entity"
EP_KIND: Final = "org.occipy.kind"
EP_INTERFACE: Final = "org.occipy.interface"

GIB: Final = 1024**3
CPU_PERIOD: Final = 100_000
BUSYBOX: Final = Path("/bin/busybox")
BUSYBOX_IMAGE: Final = "occipy/busybox:latest"
# The image's command waits until SIGTERM (Docker's init forwards it; a shell as PID 1 would not).
BUSYBOX_DOCKERFILE: Final = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
LABEL org.occipy.image=busybox
CMD ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
"""
USER_DATA_FILE: Final = "/etc/occi/user-data"
SSH_KEY_FILE: Final = "/etc/occi/ssh-authorized-keys"


class Gone(Exception):
    """The object does not exist (a NotFound from Docker)."""


def translate(exc: BaseException, what: str) -> BaseException:
    """A Docker SDK error as the driver contract's error."""
    if isinstance(exc, docker.errors.NotFound):
        return Gone(what)
    if isinstance(exc, (requests.exceptions.ConnectionError, docker.errors.DockerException)) and not isinstance(
            exc, docker.errors.APIError):
        return BackendUnavailable(f"the Docker engine cannot be reached ({what}): {exc}")
    if isinstance(exc, docker.errors.APIError):
        return BackendError(f"Docker refused to {what}: {exc.explanation or exc}")
    return exc


@dataclass(frozen=True, slots=True)
class Mount:
    volume: str
    path: str
    device: str
    entity: str = ""


@dataclass(frozen=True, slots=True)
class Use:
    """A component link from this container: the environment it hands over."""

    target: str
    entity: str
    env: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Desired:
    """Everything needed to (re-)create a container; kept in its labels."""

    kind: str
    entity: str
    image: str
    command: tuple[str, ...] | None = None
    cores: int = 1
    memory_gib: float = 1.0
    hostname: str | None = None
    user_data: str | None = None  # Base64
    ssh_key: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)  # path -> text written before start
    runtime: str | None = None
    port: int | None = None
    database: Mapping[str, str] | None = None  # scheme, user, password, version
    mounts: tuple[Mount, ...] = ()
    uses: tuple[Use, ...] = ()

    def labels(self) -> dict[str, str]:
        config = {
            "image": self.image, "command": list(self.command) if self.command is not None else None,
            "cores": self.cores, "memory_gib": self.memory_gib, "hostname": self.hostname,
            "user_data": self.user_data, "ssh_key": self.ssh_key, "env": dict(self.env), "files": dict(self.files),
            "runtime": self.runtime, "port": self.port, "database": dict(self.database) if self.database else None,
        }
        # Every occipy label is set explicitly: an image made by save carries its container's
        # labels, and a container inherits its image's labels unless it sets them itself.
        return {
            MANAGED: "1", KIND: self.kind, ENTITY: self.entity, CONFIG: json.dumps(config, sort_keys=True),
            MOUNTS: json.dumps({m.volume: {"path": m.path, "device": m.device, "entity": m.entity}
                                for m in self.mounts}, sort_keys=True),
            USES: json.dumps({u.target: {"entity": u.entity, "env": dict(u.env)} for u in self.uses}, sort_keys=True),
        }

    @staticmethod
    def from_labels(labels: Mapping[str, str]) -> Desired:
        try:
            config = json.loads(labels.get(CONFIG, "{}"))
            mounts = json.loads(labels.get(MOUNTS, "{}"))
            uses = json.loads(labels.get(USES, "{}"))
            command = config.get("command")
            return Desired(
                kind=labels.get(KIND, b.COMPUTE), entity=labels.get(ENTITY, ""), image=str(config["image"]),
                command=tuple(command) if command is not None else None, cores=int(config.get("cores") or 1),
                memory_gib=float(config.get("memory_gib") or 1.0), hostname=config.get("hostname"),
                user_data=config.get("user_data"), ssh_key=config.get("ssh_key"), env=dict(config.get("env") or {}),
                files=dict(config.get("files") or {}), runtime=config.get("runtime"), port=config.get("port"),
                database=config.get("database"),
                mounts=tuple(Mount(volume, m["path"], m["device"], m.get("entity", "")) for volume, m in mounts.items()),
                uses=tuple(Use(target, u.get("entity", ""), dict(u.get("env") or {})) for target, u in uses.items()),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"the container's occipy labels are damaged: {exc}") from None

    def environment(self) -> dict[str, str]:
        env = dict(self.env)
        for use in self.uses:
            env.update(use.env)
        if self.user_data:
            env["OCCI_USER_DATA_FILE"] = USER_DATA_FILE
        if self.ssh_key:
            env["OCCI_SSH_KEY_FILE"] = SSH_KEY_FILE
        return env


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One network connection of a container, as needed to connect it again."""

    network: str  # network id
    name: str  # network name
    address: str | None  # a fixed IPv4 address (IPAMConfig), None when Docker picked it
    aliases: tuple[str, ...]
    options: Mapping[str, str]


def state_of(container: Any) -> str:
    """The contract's state word for a container (compute and component vocabulary)."""
    status = container.attrs.get("State", {}).get("Status", container.status)
    if status in ("running", "restarting"):
        return b.ACTIVE
    if status == "paused":
        return b.SUSPENDED
    if status == "dead":
        return b.ERROR
    return b.INACTIVE  # created, exited, removing


def endpoints_of(container: Any) -> list[Endpoint]:
    found = []
    short = container.id[:12]
    for name, settings in (container.attrs.get("NetworkSettings", {}).get("Networks") or {}).items():
        ipam = settings.get("IPAMConfig") or {}
        aliases = tuple(a for a in settings.get("Aliases") or () if a not in (short, container.name))
        found.append(Endpoint(settings.get("NetworkID", ""), name, ipam.get("IPv4Address") or None, aliases,
                              dict(settings.get("DriverOpts") or {})))
    return found


class Engine:
    """One connection to a Docker engine and the container mechanics the driver needs."""

    def __init__(self, base_url: str, timeout: int, default_network: str, stop_timeout: int) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.default_network = default_network
        self.stop_timeout = stop_timeout
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            raise BackendUnavailable("the Docker driver is not open")
        return self._client

    def connect(self) -> None:
        try:
            self._client = docker.DockerClient(base_url=self.base_url, timeout=self.timeout, version="auto")
            self._client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure to reach the engine is "unavailable"
            self.close()
            raise BackendUnavailable(f"the Docker engine at {self.base_url} cannot be reached: {exc}") from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def events_client(self) -> Any:
        """A second client for the event stream (it blocks a connection); no read timeout."""
        return docker.DockerClient(base_url=self.base_url, timeout=None, version="auto")

    # ---- containers --------------------------------------------------------------------------

    def container(self, name: str) -> Any:
        try:
            return self.client.containers.get(name)
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, f"find container {name}") from None

    def managed_container(self, name: str, kinds: Sequence[str]) -> Any:
        container = self.container(name)
        if container.labels.get(MANAGED) != "1" or container.labels.get(KIND) not in kinds:
            raise Gone(name)
        return container

    def stats(self, container: Any) -> dict[str, Any]:
        """One statistics document of a container (`GET /containers/{id}/stats?stream=false`).

        `one-shot` (API 1.41+): without it the engine waits for a second sample (about a second)
        to fill `precpu_stats`, which occipy does not use: it computes rates from two readings.
        """
        api = self.client.api
        one_shot = None if docker.utils.version_lt(api.api_version, "1.41") else True
        try:
            return dict(api.stats(container.id, stream=False, one_shot=one_shot))
        except Exception as exc:  # noqa: BLE001 - translated
            raise translate(exc, f"read the statistics of container {container.name}") from None

    def run(self, name: str, desired: Desired, endpoints: Sequence[Endpoint], state: str) -> Any:
        """Create the container, connect it, write its files, and bring it to `state`."""
        client = self.client
        first = endpoints[0] if endpoints else None
        kwargs: dict[str, Any] = {}
        if first is not None:
            kwargs["networking_config"] = {first.name: client.api.create_endpoint_config(
                ipv4_address=first.address, aliases=list(first.aliases) or None, driver_opt=dict(first.options) or None)}
        container = client.containers.create(
            desired.image, list(desired.command) if desired.command is not None else None, name=name,
            labels=desired.labels(), hostname=desired.hostname, environment=desired.environment(),
            init=True, detach=True, cpu_period=CPU_PERIOD, cpu_quota=desired.cores * CPU_PERIOD,
            mem_limit=int(desired.memory_gib * GIB), memswap_limit=int(desired.memory_gib * GIB),
            mounts=[docker.types.Mount(target=m.path, source=m.volume, type="volume") for m in desired.mounts],
            network=first.name if first is not None else self.default_network, **kwargs)
        try:
            for endpoint in endpoints[1:]:
                client.api.connect_container_to_network(
                    container.id, endpoint.network, ipv4_address=endpoint.address,
                    aliases=list(endpoint.aliases) or None, driver_opt=dict(endpoint.options) or None)
            files = dict(desired.files)
            if desired.user_data:
                files[USER_DATA_FILE] = base64.b64decode(desired.user_data).decode("latin-1")
            if desired.ssh_key:
                files[SSH_KEY_FILE] = desired.ssh_key + "\n"
                files["/root/.ssh/authorized_keys"] = desired.ssh_key + "\n"
            if files:
                container.put_archive("/", _archive(files))
            if state in (b.ACTIVE, b.SUSPENDED):
                container.start()
            if state == b.SUSPENDED:
                container.pause()
            container.reload()
        except BaseException:
            container.remove(force=True)
            raise
        return container

    def recreate(self, name: str, change: Any) -> Any:
        """Re-create the container with `change(desired) -> desired`, keeping name, networks and state."""
        old = self.container(name)
        current = Desired.from_labels(old.labels)
        host = old.attrs.get("HostConfig", {})
        quota, period, memory = host.get("CpuQuota") or 0, host.get("CpuPeriod") or CPU_PERIOD, host.get("Memory") or 0
        if quota > 0 and memory > 0:  # limits changed live (docker update) are not in the labels
            current = replace(current, cores=max(1, quota // period), memory_gib=memory / GIB)
        desired = change(current)
        endpoints = endpoints_of(old)
        mode = old.attrs.get("HostConfig", {}).get("NetworkMode", "")
        endpoints.sort(key=lambda e: e.name != mode)  # the network it was created on comes first
        state = state_of(old)
        if state == b.SUSPENDED:
            old.unpause()
        old.stop(timeout=self.stop_timeout)
        old.remove(force=True)
        return self.run(name, desired, endpoints, state)

    def stop(self, container: Any, method: str) -> None:
        if container.status == "paused":
            container.unpause()
        if method == "poweroff":
            if container.status in ("running", "paused", "restarting"):
                container.kill()
                container.wait(timeout=self.stop_timeout + 10)
        else:
            container.stop(timeout=self.stop_timeout)  # SIGTERM, then SIGKILL after the timeout

    # ---- images -------------------------------------------------------------------------------

    def build_busybox(self) -> str:
        """The minimal image from Debian's busybox-static, built locally (no registry)."""
        try:
            self.client.images.get(BUSYBOX_IMAGE)
            return BUSYBOX_IMAGE
        except docker.errors.ImageNotFound:
            pass
        if not BUSYBOX.exists() or not _is_static(BUSYBOX):
            raise BackendError(f"no image to run and no static {BUSYBOX} to build one from: "
                               "install busybox-static, or name an image with the driver option `images`")
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            tar.add(BUSYBOX, arcname="busybox")
            dockerfile = BUSYBOX_DOCKERFILE.encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(dockerfile)
            tar.addfile(info, io.BytesIO(dockerfile))
        context.seek(0)
        self.client.images.build(fileobj=context, custom_context=True, tag=BUSYBOX_IMAGE, rm=True, forcerm=True,
                                 pull=False)
        log.info("built %s from %s", BUSYBOX_IMAGE, BUSYBOX)
        return BUSYBOX_IMAGE

    def wait_gone(self, name: str, deadline: float = 10.0) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                self.client.containers.get(name)
            except docker.errors.NotFound:
                return
            time.sleep(0.05)


def _archive(files: Mapping[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        made: set[str] = set()
        for path, text in sorted(files.items()):
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in made:
                    made.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o700 if directory.endswith(".ssh") else 0o755
                    tar.addfile(info)
            data = text.encode("latin-1", "replace")
            info = tarfile.TarInfo("/".join(parts))
            info.size = len(data)
            info.mode = 0o755 if "/cgi-bin/" in path or path.endswith(".sh") else 0o600 if ".ssh" in path else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _is_static(path: Path) -> bool:
    """True when an ELF file has no PT_INTERP segment (Debian's plain `busybox` is dynamic)."""
    import struct

    data = path.read_bytes()[:65536]
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


def with_mounts(desired: Desired, mounts: Sequence[Mount]) -> Desired:
    return replace(desired, mounts=tuple(mounts))


def with_uses(desired: Desired, uses: Sequence[Use]) -> Desired:
    return replace(desired, uses=tuple(uses))

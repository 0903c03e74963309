"""pytest plugin: a private Docker engine for the test session.

`dockerd` installs docker.io through the bootstrap profile `docker` when it is missing, then starts a
dockerd of its own: socket, data-root, exec-root, pidfile and config in a temp dir, its own bridge
(`occd` + 6 hex digits) on a free 10.N.0.0/16, its own containerd namespace, and no iptables rules
(`--iptables=false`), so it never clashes with another dockerd on the machine. `docker_client`
gives a test an SDK client and removes the containers, networks, volumes and images the test made;
`busybox_image` builds the 2 MB `FROM scratch` busybox image once, with no registry. Needs the
`docker` extra (the `docker` SDK). Env: OCCIPY_DOCKERD (the dockerd binary).
"""

from __future__ import annotations

import io
import ipaddress
import os
import random
import shutil
import struct
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.services._process import (
    REPO,
    ServiceError,
    die_with_parent,
    pids_mentioning,
    run,
    stop_pid,
    stop_process,
    wait_for,
)

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
INSTALL_TIMEOUT = 900.0
BUSYBOX = Path("/bin/busybox")
BUSYBOX_TAG = "occipy/busybox:test"
TEST_LABEL = "org.occipy.test"
# The image's default command: a shell that waits and ends on SIGTERM (run it with init=True).
BUSYBOX_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
LABEL org.occipy.test=busybox
CMD ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
"""


def dockerd_binary() -> str:
    """The dockerd to run; installs docker.io (bootstrap profile `docker`) when there is none."""
    configured = os.environ.get("OCCIPY_DOCKERD")
    if configured:
        return configured
    found = shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/bin")
    if found and BUSYBOX.exists():
        return found
    run(["bash", str(REPO / "scripts" / "bootstrap.sh"), "docker"], what="installing docker.io (bootstrap docker)",
        timeout=INSTALL_TIMEOUT)
    found = shutil.which("dockerd", path="/usr/sbin:/usr/bin")
    if not found:
        raise ServiceError("dockerd: still missing after `bash scripts/bootstrap.sh docker`")
    return found


def _used_networks() -> list[ipaddress.IPv4Network]:
    text = run(["ip", "-4", "-o", "addr", "show"], what="ip addr", timeout=10).stdout
    text += run(["ip", "-4", "route", "show", "table", "all"], what="ip route", timeout=10).stdout
    used = []
    for word in text.split():
        if "/" in word and word[0].isdigit():
            try:
                used.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    return [net for net in used if isinstance(net, ipaddress.IPv4Network)]


def _pick_subnet() -> ipaddress.IPv4Network:
    """A 10.N.0.0/16 (N in 200..254) that no interface or route on this machine touches."""
    used = _used_networks()
    candidates = list(range(200, 255))
    random.shuffle(candidates)
    for n in candidates:
        net = ipaddress.ip_network(f"10.{n}.0.0/16")
        if not any(net.overlaps(other) for other in used if other.prefixlen > 0):
            return net
    raise ServiceError("dockerd: no free 10.N.0.0/16 (N in 200..254) for a private bridge")


def _is_static(path: Path) -> bool:
    """True when an ELF file has no PT_INTERP segment (Debian's `busybox` package is dynamic)."""
    data = path.read_bytes()[:65536]
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


@dataclass
class DockerDaemon:
    """A running private dockerd: `base_url` for any Docker client, `client()` for the SDK."""

    directory: Path
    bridge: str
    subnet: ipaddress.IPv4Network
    process: subprocess.Popen[bytes]
    kept_images: set[str] = field(default_factory=set)

    @property
    def socket(self) -> Path:
        return self.directory / "docker.sock"

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.directory / "dockerd.log"

    def fixed_subnet(self, index: int = 0) -> ipaddress.IPv4Network:
        """A /24 of this daemon's own range for a user network with fixed IPs (10.N.64+index.0/24).

        Outside the bridge (10.N.0.0/24) and the pool dockerd picks from (10.N.128.0/17), so two
        daemons, or a test and dockerd, never pick the same subnet.
        """
        if not 0 <= index < 64:
            raise ValueError("index must be in 0..63")
        return list(self.subnet.subnets(new_prefix=24))[64 + index]

    def client(self, timeout: int = 60) -> Any:
        """A `docker.DockerClient` on this daemon (close it when done)."""
        import docker

        return docker.DockerClient(base_url=self.base_url, timeout=timeout, version="auto")

    def build_busybox_image(self, tag: str = BUSYBOX_TAG) -> str:
        """Build (once) the 2 MB image `FROM scratch` + Debian's static busybox; no registry needed."""
        client = self.client()
        try:
            try:
                image = client.images.get(tag)
            except Exception:  # noqa: BLE001 - docker.errors.NotFound: build it below
                image = None
            if image is None:
                if not BUSYBOX.exists() or not _is_static(BUSYBOX):
                    raise ServiceError(f"{BUSYBOX} is not a static busybox: `apt-get install busybox-static`")
                context = io.BytesIO()
                with tarfile.open(fileobj=context, mode="w") as tar:
                    tar.add(BUSYBOX, arcname="busybox")
                    dockerfile = BUSYBOX_DOCKERFILE.encode()
                    info = tarfile.TarInfo("Dockerfile")
                    info.size = len(dockerfile)
                    tar.addfile(info, io.BytesIO(dockerfile))
                context.seek(0)
                image, _ = client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True,
                                               forcerm=True, pull=False, timeout=120)
            self.kept_images.add(image.id)
            return tag
        finally:
            client.close()

    def remove_everything(self) -> None:
        """Remove every container, user network, volume and (unless `kept_images`) image."""
        client = self.client()
        try:
            remove_new(client, containers=set(), networks=set(), volumes=set(), images=self.kept_images)
        finally:
            client.close()

    def stop(self) -> None:
        """Empty the engine, stop dockerd (then any containerd/shim left), remove bridge and files."""
        try:
            if self.process.poll() is None and self.socket.exists():
                self.remove_everything()
        except Exception:  # noqa: BLE001, S110 - dockerd goes anyway; teardown must not raise here
            pass
        finally:
            stop_process(self.process, timeout=STOP_TIMEOUT)
            for pid in pids_mentioning(str(self.directory)):
                stop_pid(pid, timeout=5)
            _unmount_under(self.directory)
            _remove_links(self.subnet, self.bridge)
            shutil.rmtree(self.directory, ignore_errors=True)


def remove_new(client: Any, *, containers: set[str], networks: set[str], volumes: set[str],
               images: set[str]) -> None:
    """Remove containers, user networks, volumes and images whose ids are not in the given sets."""
    for container in client.containers.list(all=True):
        if container.id not in containers:
            container.remove(force=True, v=True)
    for network in client.networks.list():
        if network.id not in networks and network.name not in ("bridge", "host", "none"):
            network.remove()
    for volume in client.volumes.list():
        if volume.name not in volumes:
            volume.remove(force=True)
    for image in client.images.list(all=True):
        if image.id not in images:
            try:
                client.images.remove(image.id, force=True, noprune=False)
            except Exception:  # noqa: BLE001, S110 - an intermediate layer goes with its child
                pass


def _unmount_under(directory: Path) -> None:
    """Lazily unmount overlay/netns/shm mounts a killed dockerd left under `directory`."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[4] for line in lines if line.split()[4].startswith(str(directory))]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=10, check=False)


def _remove_links(subnet: ipaddress.IPv4Network, bridge: str) -> None:
    """Delete our bridge, bridges of our user networks (addresses in `subnet`) and rules naming them."""
    names = {bridge}
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=10,
                         check=False).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[2] == "inet" and ipaddress.ip_interface(parts[3]).ip in subnet:
            names.add(parts[1])
    for name in names:
        subprocess.run(["ip", "link", "delete", name], capture_output=True, timeout=10, check=False)
    # dockerd runs with --iptables=false, so there should be none; remove any that name our links.
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables", "-w", "5", "-t", table, "-S"], capture_output=True, text=True,
                               timeout=15, check=False).stdout
        for rule in rules.splitlines():
            words = rule.split()
            if words[:1] == ["-A"] and names.intersection(words):
                subprocess.run(["iptables", "-w", "5", "-t", table, "-D", *words[1:]], capture_output=True,
                               timeout=15, check=False)


def start_dockerd() -> DockerDaemon:
    """A private dockerd on a new temp dir and bridge; raises ServiceError with the log tail."""
    try:
        import docker
    except ImportError:
        raise ServiceError("dockerd fixture needs the Docker SDK: `uv sync --extra docker`") from None
    if os.geteuid() != 0:
        raise ServiceError("dockerd fixture: dockerd needs root (run the tests as root, as CI does)")
    binary = dockerd_binary()
    suffix = uuid.uuid4().hex[:6]
    directory = Path(tempfile.mkdtemp(prefix=f"occipy-dockerd-{suffix}-"))
    bridge = f"occd{suffix}"
    subnet = _pick_subnet()
    hosts = list(subnet.subnets(new_prefix=24))
    gateway = next(hosts[0].hosts())
    pool = list(subnet.subnets(new_prefix=17))[1]  # user networks: 10.N.128.0/24, 10.N.129.0/24, ...
    (directory / "daemon.json").write_text("{}\n")
    log = directory / "dockerd.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        run(["ip", "link", "add", "name", bridge, "type", "bridge"], what="dockerd bridge", timeout=10)
        run(["ip", "addr", "add", f"{gateway}/24", "dev", bridge], what="dockerd bridge", timeout=10)
        run(["ip", "link", "set", bridge, "up"], what="dockerd bridge", timeout=10)
        args = [
            binary, "--host", f"unix://{directory}/docker.sock", "--data-root", str(directory / "data"),
            "--exec-root", str(directory / "exec"), "--pidfile", str(directory / "dockerd.pid"),
            "--config-file", str(directory / "daemon.json"), "--bridge", bridge,
            "--default-address-pool", f"base={pool},size=24", "--iptables=false", "--ip-forward=false",
            "--ip-masq=false", "--storage-driver", "overlay2", "--containerd-namespace", f"occipy-{suffix}",
            "--containerd-plugins-namespace", f"occipy-{suffix}-plugins", "--cgroup-parent",
            f"/occipy-{suffix}",
        ]
        with open(log, "wb") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       preexec_fn=die_with_parent())  # noqa: PLW1509
        daemon = DockerDaemon(directory, bridge, subnet, process)

        def ready() -> bool:
            client = docker.DockerClient(base_url=daemon.base_url, timeout=5)
            try:
                return bool(client.ping())
            finally:
                client.close()

        wait_for(ready, what=f"dockerd on {daemon.socket}", timeout=START_TIMEOUT, process=process, log=log)
    except BaseException:
        if process is not None:
            DockerDaemon(directory, bridge, subnet, process).stop()
        else:
            _remove_links(subnet, bridge)
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return daemon


@pytest.fixture(scope="session")
def dockerd() -> Iterator[DockerDaemon]:
    """A private dockerd for the session; emptied, stopped and removed (bridge included) at the end."""
    daemon = start_dockerd()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def busybox_image(dockerd: DockerDaemon) -> str:
    """The tag of the 2 MB busybox image (`sh` waits until SIGTERM; run it with init=True)."""
    return dockerd.build_busybox_image()


@pytest.fixture
def docker_client(dockerd: DockerDaemon) -> Iterator[Any]:
    """An SDK client; whatever containers, networks, volumes and images the test adds are removed."""
    client = dockerd.client()
    before = (
        {c.id for c in client.containers.list(all=True)},
        {n.id for n in client.networks.list()},
        {v.name for v in client.volumes.list()},
        {i.id for i in client.images.list(all=True)} | dockerd.kept_images,
    )
    try:
        yield client
    finally:
        try:
            remove_new(client, containers=before[0], networks=before[1], volumes=before[2],
                       images=before[3] | dockerd.kept_images)
        finally:
            client.close()

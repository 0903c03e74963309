"""pytest plugin: a real OpenStack (Zed) for the test session, started by scripts/openstack/cloud.py.

`openstack_cloud` installs the packages through the bootstrap profile `openstack` when they are
missing, runs `cloud.py run DIR` (keystone, placement, glance, nova with fake.FakeDriver, neutron with
a bind-everything ML2 driver, cinder with a fake volume driver, on PostgreSQL and rabbitmq; about a
minute from empty dirs) and yields an `OpenStackCloud`: the clouds.yaml-style settings of a member
user (and of the admin), the seeded image, flavors, network and subnet, external network (the
floating IP pool) and router, and `connect()` for an
openstacksdk connection. At the end the supervisor stops every process (SIGTERM, wait, SIGKILL).
`openstack_conn` gives one test a connection as the member user and afterwards deletes, as admin,
every server, volume, port, router, network, image, flavor and key pair the test added.
Needs the `openstack` extra (openstacksdk). Env: OCCIPY_OPENSTACK_TIMEOUT (set-up deadline, s),
OCCIPY_OPENSTACK_RUNNING (the directory of a cloud started by hand, reused and left running).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.services._process import (
    REPO,
    ServiceError,
    die_with_parent,
    run,
    start_retrying_port_clash,
    stop_process,
    wait_for,
)

SCRIPT = REPO / "scripts" / "openstack" / "cloud.py"
INSTALL_TIMEOUT = 900.0
NEEDED = ("/usr/bin/keystone-manage", "/usr/bin/uwsgi", "/usr/lib/rabbitmq/bin/rabbitmq-server",
          "/usr/lib/python3/dist-packages/nova/virt/fake.py", "/usr/lib/python3/dist-packages/neutron",
          "/usr/lib/python3/dist-packages/cinder/tests/fake_driver.py", "/usr/lib/python3/dist-packages/glance",
          "/usr/lib/python3/dist-packages/placement")
CLEANUP_TIMEOUT = 60.0


def setup_timeout() -> float:
    return float(os.environ.get("OCCIPY_OPENSTACK_TIMEOUT", "300"))


@dataclass(frozen=True)
class OpenStackCloud:
    """A running cloud: what a clouds.yaml entry holds, plus the seeded resources' ids."""

    auth_url: str
    region_name: str
    project_name: str
    project_id: str
    username: str
    password: str
    user_domain_name: str
    project_domain_name: str
    admin: dict[str, str]
    image: dict[str, Any]
    flavors: list[dict[str, Any]]
    network: dict[str, str]
    subnet: dict[str, str]
    endpoints: dict[str, str]
    directory: Path
    timings: dict[str, float] = field(default_factory=dict)
    # The floating IP pool (an external network with a subnet) and the project's router from
    # `network` to it (absent in a cloud.json written before they were seeded).
    external_network: dict[str, str] = field(default_factory=dict)
    router: dict[str, str] = field(default_factory=dict)

    @property
    def clouds_yaml(self) -> Path:
        """clouds.yaml with clouds `occipy` (member) and `occipy-admin` (OS_CLIENT_CONFIG_FILE)."""
        return self.directory / "clouds.yaml"

    def auth(self, admin: bool = False) -> dict[str, str]:
        """The `auth` mapping of a clouds.yaml entry (password auth, Keystone v3)."""
        who = self.admin if admin else {"username": self.username, "password": self.password,
                                        "project_name": self.project_name}
        return {"auth_url": self.auth_url, **who, "user_domain_name": self.user_domain_name,
                "project_domain_name": self.project_domain_name}

    def config(self, admin: bool = False) -> dict[str, Any]:
        """One clouds.yaml entry as a dict (what openstack.connect(**config) accepts)."""
        return {"auth": self.auth(admin), "region_name": self.region_name, "identity_api_version": "3",
                "interface": "public", "api_timeout": 60}

    def connect(self, admin: bool = False) -> Any:
        """A new openstacksdk Connection as the member user (or the admin)."""
        import openstack

        return openstack.connect(**self.config(admin))

    @property
    def flavor(self) -> dict[str, Any]:
        """The smallest seeded flavor (m1.tiny)."""
        return self.flavors[0]


@dataclass
class CloudSupervisor:
    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def log(self) -> Path:
        return self.directory / "supervisor.log"

    def stop(self) -> None:
        """SIGTERM the supervisor (it stops every service), wait; fall back to `cloud.py down`."""
        killed = stop_process(self.process, sig=signal.SIGTERM, timeout=60)
        if killed:
            subprocess.run([sys.executable, str(SCRIPT), "down", str(self.directory / "cloud")],
                           capture_output=True, timeout=30, check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


def ensure_installed() -> None:
    if all(Path(path).exists() for path in NEEDED):
        return
    run(["bash", str(REPO / "scripts" / "bootstrap.sh"), "openstack"], what="installing OpenStack (bootstrap openstack)",
        timeout=INSTALL_TIMEOUT)
    missing = [path for path in NEEDED if not Path(path).exists()]
    if missing:
        raise ServiceError(f"OpenStack: still missing after `bash scripts/bootstrap.sh openstack`: {missing}")


def start_openstack() -> tuple[OpenStackCloud, CloudSupervisor]:
    """Run scripts/openstack/cloud.py until it prints READY; raise with its log tail if it cannot."""
    try:
        import openstack  # noqa: F401
    except ImportError:
        raise ServiceError("OpenStack fixture needs openstacksdk: `uv sync --extra openstack`") from None
    ensure_installed()
    directory = Path(tempfile.mkdtemp(prefix="occipy-openstack-"))
    directory.chmod(0o755)  # PostgreSQL runs as `postgres` and must reach its data dir inside
    timeout = setup_timeout()
    log = directory / "supervisor.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "run", str(directory / "cloud"), "--timeout", str(timeout)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent())  # noqa: PLW1509
    supervisor = CloudSupervisor(process, directory)

    def ready() -> bool:
        return any(line.startswith("READY") for line in log.read_text(errors="replace").splitlines())

    try:
        wait_for(ready, what="OpenStack (scripts/openstack/cloud.py)", timeout=timeout + 30, process=process,
                 log=log, interval=0.5)
        cloud = running_openstack(directory / "cloud")
    except BaseException:
        supervisor.stop()
        raise
    return cloud, supervisor


def running_openstack(directory: Path) -> OpenStackCloud:
    """A cloud that `cloud.py run DIR` started by hand and still serves (OCCIPY_OPENSTACK_RUNNING)."""
    try:
        described = json.loads((directory / "cloud.json").read_text())
    except (OSError, ValueError) as exc:
        raise ServiceError(f"OpenStack in {directory}: no readable cloud.json ({exc})") from None
    return OpenStackCloud(
        auth_url=described["auth_url"], region_name=described["region_name"],
        project_name=described["project_name"], project_id=described["project_id"],
        username=described["username"], password=described["password"],
        user_domain_name=described["user_domain_name"], project_domain_name=described["project_domain_name"],
        admin=described["admin"], image=described["image"], flavors=described["flavors"],
        network=described["network"], subnet=described["subnet"], endpoints=described["endpoints"],
        directory=directory, timings=described["timings"],
        external_network=described.get("external_network", {}), router=described.get("router", {}),
    )


@pytest.fixture(scope="session")
def openstack_cloud() -> Iterator[OpenStackCloud]:
    """A real OpenStack for the whole session (give tests using it @pytest.mark.openstack).

    With OCCIPY_OPENSTACK_RUNNING=DIR, the cloud that `scripts/openstack/cloud.py run DIR` serves is
    used instead, and left running (one start for many test runs while developing).
    """
    running = os.environ.get("OCCIPY_OPENSTACK_RUNNING")
    if running:
        yield running_openstack(Path(running))
        return
    cloud, supervisor = start_retrying_port_clash(start_openstack)
    try:
        yield cloud
    finally:
        supervisor.stop()


# --- per-test cleanup -------------------------------------------------------------------------
@dataclass
class Snapshot:
    """Ids of everything that exists, taken as admin across all projects."""

    ids: dict[str, set[str]]

    @classmethod
    def take(cls, admin: Any, user: Any) -> Snapshot:
        return cls({kind: {item.id for item in lister()} for kind, lister in _listers(admin, user).items()})


def _listers(admin: Any, user: Any) -> dict[str, Callable[[], Any]]:
    return {
        "servers": lambda: admin.compute.servers(all_projects=True),
        "volumes": lambda: admin.block_storage.volumes(all_projects=True),
        "routers": lambda: admin.network.routers(),
        "floating_ips": lambda: admin.network.ips(),
        "ports": lambda: admin.network.ports(),
        "networks": lambda: admin.network.networks(),
        "security_groups": lambda: admin.network.security_groups(),
        "images": lambda: admin.image.images(),
        "flavors": lambda: admin.compute.flavors(),
        "keypairs": lambda: user.compute.keypairs(),
    }


def _wait_gone(get: Callable[[], Any], what: str) -> None:
    """Poll `get()` until it raises NotFound (a deleted server/volume), at most CLEANUP_TIMEOUT s."""
    from openstack.exceptions import NotFoundException

    deadline = time.monotonic() + CLEANUP_TIMEOUT
    while True:
        try:
            get()
        except NotFoundException:
            return
        if time.monotonic() > deadline:
            raise ServiceError(f"OpenStack cleanup: {what} still there after {CLEANUP_TIMEOUT:.0f} s")
        time.sleep(0.3)


def clean_up(admin: Any, user: Any, before: Snapshot) -> list[str]:
    """Delete what is not in `before`, in dependency order; returns what could not be deleted."""
    problems: list[str] = []

    def attempt(what: str, action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            action(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - go on with the rest, report at the end
            problems.append(f"{what}: {exc}")

    def new(kind: str) -> list[Any]:
        return [item for item in _listers(admin, user)[kind]() if item.id not in before.ids[kind]]

    def drop_volume(volume: Any) -> None:
        if volume.status not in ("available", "error"):
            admin.block_storage.reset_volume_status(volume, status="available", attach_status="detached",
                                                    migration_status=None)
        admin.block_storage.delete_volume(volume, force=True)
        _wait_gone(functools.partial(admin.block_storage.get_volume, volume.id), f"volume {volume.id}")

    def drop_router(router: Any) -> None:
        for port in admin.network.ports(device_id=router.id):
            if port.device_owner == "network:router_interface":
                admin.network.remove_interface_from_router(router, port_id=port.id)
        if router.external_gateway_info:
            admin.network.update_router(router, external_gateway_info={})
        admin.network.delete_router(router)

    def drop_server(server: Any) -> None:
        from openstack.exceptions import NotFoundException

        try:
            admin.compute.delete_server(server, force=True)
        except NotFoundException:
            pass  # listed while nova was finishing a delete the test made

    servers = new("servers")
    for server in servers:
        attempt(f"server {server.id}", drop_server, server)
    for server in servers:
        attempt(f"server {server.id}", _wait_gone, functools.partial(admin.compute.get_server, server.id),
                f"server {server.id}")
    for volume in new("volumes"):
        attempt(f"volume {volume.id}", drop_volume, volume)
    for router in new("routers"):
        attempt(f"router {router.id}", drop_router, router)
    for ip in new("floating_ips"):
        attempt(f"floating ip {ip.id}", admin.network.delete_ip, ip)
    for port in new("ports"):
        if not port.device_owner.startswith("network:"):  # dhcp/router ports go with their owner
            attempt(f"port {port.id}", admin.network.delete_port, port)
    for network in new("networks"):
        attempt(f"network {network.id}", admin.network.delete_network, network)
    for group in new("security_groups"):
        if group.name != "default":  # neutron makes a project's default group itself; it holds nothing
            attempt(f"security group {group.id}", admin.network.delete_security_group, group)
    for image in new("images"):
        attempt(f"image {image.id}", admin.image.delete_image, image)
    for flavor in new("flavors"):
        attempt(f"flavor {flavor.id}", admin.compute.delete_flavor, flavor)
    for keypair in new("keypairs"):
        attempt(f"key pair {keypair.id}", user.compute.delete_keypair, keypair)
    return problems


@pytest.fixture
def openstack_conn(openstack_cloud: OpenStackCloud) -> Iterator[Any]:
    """A connection as the member user; whatever the test adds is deleted afterwards (as admin)."""
    user = openstack_cloud.connect()
    admin = openstack_cloud.connect(admin=True)
    before = Snapshot.take(admin, user)
    try:
        yield user
    finally:
        try:
            problems = clean_up(admin, user, before)
        finally:
            user.close()
            admin.close()
        if problems:
            raise ServiceError("OpenStack cleanup left resources behind:\n" + "\n".join(problems))


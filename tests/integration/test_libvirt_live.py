"""The libvirt driver on a real qemu:///system, end to end through the HTTP API (TCG guests).

The module prepares the host itself: scripts/libvirt-setup.sh (Debian packages, qemu.conf,
virtlogd and libvirtd), the libvirt-python binding in the venv, and scripts/build-guest.sh (a
Debian cloud kernel with a busybox initramfs whose /init prints OCCIPY-GUEST-UP on the serial
console). Then `occipy serve --driver libvirt` runs as a subprocess and the SDK drives it with
application/occi+json: a network, a volume and a compute with a storagelink and a
networkinterface; the guest's console proves it booted, saw its seed, disk and NIC; stop, start,
suspend, restart, hibernate, an out-of-band power-off, a volume resize, a detach, and deletion
of everything, after which libvirt holds no domain, volume or network of the test. The measured
figures go to .bench/libvirt-live.json (docs/performance-libvirt.md).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from occipy import errors
from occipy.client import Client

from .conftest import free_port, wait_until_up

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
URI = "qemu:///system"
GUEST_CACHE = Path(os.environ.get("OCCIPY_GUEST_CACHE", Path.home() / ".cache" / "occipy" / "guest"))
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOccipyLiveTestKey occipy@live"
GIB = 1024 ** 3
T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll until `check` returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def prepare_host() -> Any:
    """Install and start what the test needs; the `libvirt` module, importable."""
    setup = subprocess.run(["bash", str(REPO / "scripts" / "libvirt-setup.sh")], check=False, capture_output=True, text=True)
    assert setup.returncode == 0, f"scripts/libvirt-setup.sh failed:\n{setup.stderr}"
    try:
        return importlib.import_module("libvirt")
    except ImportError:
        # The binding is the `libvirt` extra; it compiles against libvirt-dev, which setup installed.
        uv = subprocess.run(["uv", "sync", "-p", "python3.11", "--frozen", "--extra", "libvirt", "--inexact"],
                            cwd=REPO, check=False, capture_output=True, text=True)
        assert uv.returncode == 0, f"uv sync --extra libvirt failed:\n{uv.stderr}"
        importlib.invalidate_caches()
        return importlib.import_module("libvirt")


@dataclass
class Live:
    url: str
    data_dir: Path
    prefix: str
    pool: str
    conn: Any  # a libvirt connection of our own: to check, and to act behind occipy's back
    libvirt: Any
    figures: dict[str, list[float]] = field(default_factory=dict)

    def record(self, name: str, seconds: float) -> None:
        self.figures.setdefault(name, []).append(round(seconds, 3))

    def console(self) -> str:
        logs = sorted((self.data_dir / "libvirt" / "console").glob(f"{self.prefix}*.log"))
        return logs[0].read_text(errors="replace") if logs else ""

    def boots(self) -> int:
        return self.console().count("OCCIPY-GUEST-UP")

    def heartbeat(self) -> str:
        beats = [line for line in self.console().splitlines() if "OCCIPY-GUEST-ALIVE" in line]
        return beats[-1] if beats else ""

    def ours(self) -> tuple[list[str], list[str], list[str]]:
        """Domains, volumes and networks of this test still in libvirt."""
        domains = [d.name() for d in self.conn.listAllDomains(0) if d.name().startswith(self.prefix)]
        pool = self.conn.storagePoolLookupByName(self.pool)
        pool.refresh(0)
        volumes = list(pool.listVolumes())
        networks = [n.name() for n in self.conn.listAllNetworks(0) if n.name().startswith(self.prefix)]
        return domains, volumes, networks


def remove_leftovers(live: Live) -> None:
    """Whatever a failed run left behind, so that the next run starts clean."""
    lv = live.libvirt
    for dom in live.conn.listAllDomains(0):
        if dom.name().startswith(live.prefix):
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    for net in live.conn.listAllNetworks(0):
        if net.name().startswith(live.prefix):
            if net.isActive():
                net.destroy()
            net.undefine()
    pool = live.conn.storagePoolLookupByName(live.pool)
    pool.refresh(0)
    for volume in pool.listAllVolumes(0):
        volume.delete(0)
    pool.destroy()
    pool.undefine()


@contextmanager
def libvirt_server(tmp_path_factory: pytest.TempPathFactory, name: str,
                   options: dict[str, str]) -> Iterator[Live]:
    """`occipy serve --driver libvirt` on a pool and name prefix of its own; everything removed after."""
    libvirt = prepare_host()
    build = subprocess.run(["bash", str(REPO / "scripts" / "build-guest.sh"), str(GUEST_CACHE)],
                           check=False, capture_output=True, text=True)
    assert build.returncode == 0, f"scripts/build-guest.sh failed:\n{build.stderr}"
    root = tmp_path_factory.mktemp(f"libvirt-{name}")
    tag = uuid.uuid4().hex[:6]
    prefix, pool_name = f"{name}{tag}-", f"occipy-{name}-{tag}"
    conn = libvirt.open(URI)
    # A pool of its own (a named pool must exist: the driver creates only its default one), so
    # "no volume left" means exactly that.
    pool_dir = root / "pool"
    pool_dir.mkdir()
    pool = conn.storagePoolDefineXML(
        f"<pool type='dir'><name>{pool_name}</name><target><path>{pool_dir}</path></target></pool>", 0)
    pool.create(0)
    port = free_port()
    data_dir = root / "data"
    args = [sys.executable, "-m", "occipy", "serve", "--port", str(port), "--data-dir", str(data_dir),
            "--driver", "libvirt"]
    for key, value in {"uri": URI, "image_dir": str(GUEST_CACHE), "pool": pool_name, "name_prefix": prefix,
                       **options}.items():
        args += ["--driver-opt", f"{key}={value}"]
    log = (root / "server.log").open("wb")
    server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    state = Live(f"http://127.0.0.1:{port}", data_dir, prefix, pool_name, conn, libvirt)
    try:
        wait_until_up(state.url, timeout=60)
        yield state
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        remove_leftovers(state)
        conn.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    options = {"network_prefix": "10.214.0.0/16", "shutdown_timeout": "30", "reconcile_interval": "2"}
    with libvirt_server(tmp_path_factory, "live", options) as state:
        yield state
        if state.figures:
            out = REPO / ".bench" / "libvirt-live.json"
            out.parent.mkdir(exist_ok=True)
            out.write_text(json.dumps(state.figures, indent=2) + "\n")
            print("\nlibvirt live figures (s):", json.dumps(state.figures, indent=2))


def timed(live: Live, name: str, action: Callable[[], T]) -> T:
    start = time.monotonic()
    result = action()
    live.record(name, time.monotonic() - start)
    return result


def test_full_lifecycle_through_the_http_api(live: Live) -> None:
    lv = live.libvirt
    with Client(live.url, media_type="json", timeout=60) as occi:
        assert occi.model.mixin("os_tpl#occipy-guest").title.startswith("occipy test guest")

        net = occi.create("network", mixins=["ipnetwork"], attributes={"occi.network.allocation": "dynamic"})
        network = occi.wait_for(net, state="active", timeout=30)
        address = network.attributes["occi.network.address"]
        assert str(address).startswith("10.214.")
        disk = occi.create("storage", attributes={"occi.storage.size": 0.5})
        occi.wait_for(disk, state="online", timeout=30)

        # -- create: the guest boots from an overlay of the image, with its seed, disk and NIC
        started = time.monotonic()
        vm = occi.create("compute", mixins=["os_tpl#occipy-guest", "ssh_key", "user_data"], links=[disk, net],
                         attributes={"occi.compute.cores": 1, "occi.compute.memory": 0.25,
                                     "occi.compute.hostname": "guest1", "occi.credentials.ssh.publickey": SSH_KEY,
                                     "occi.compute.userdata": "#cloud-config\n{}\n"})
        compute = occi.wait_for(vm, state="active", timeout=60, interval=0.05)
        live.record("create_to_active", time.monotonic() - started)
        eventually(live.boots, 60, "the guest's OCCIPY-GUEST-UP marker on its serial console")
        live.record("create_to_guest_marker", time.monotonic() - started)
        seed = eventually(lambda: next((l for l in live.console().splitlines() if "OCCIPY-GUEST-SEED" in l), None),
                          30, "the NoCloud seed line")
        assert SSH_KEY in seed and '"local-hostname": "guest1"' in seed
        dom = live.conn.lookupByName(next(d for d in live.ours()[0]))
        assert dom.XMLDesc(0).count("type='qemu'") >= 1  # TCG, never kvm on its own
        assert compute.attributes["occi.compute.architecture"] == "x64"

        links = {link.kind.rpartition("#")[2]: link for link in compute.links}
        storagelink, nic = links["storagelink"].location, links["networkinterface"].location
        assert occi.wait_for(storagelink, state="active", timeout=30).attributes["occi.storagelink.deviceid"] == "/dev/vdb"
        mac = str(occi.wait_for(nic, state="active", timeout=30).attributes["occi.networkinterface.mac"])
        eventually(lambda: "vdb" in live.heartbeat() and "eth0" in live.heartbeat(), 40,
                   "the guest to see its data disk and NIC")
        leased = eventually(lambda: re.search(r"OCCIPY-GUEST-DHCP eth0 (\S+)", live.console()), 60,
                            "a DHCP lease in the guest").group(1)
        assert eventually(lambda: occi.get(nic).attributes.get("occi.networkinterface.address"), 30,
                          "occi.networkinterface.address from the leases") == leased
        assert mac in dom.XMLDesc(0)

        # -- actions on the real domain
        def act(action: str, state: str, method: str | None = None, boot: bool = False) -> None:
            boots = live.boots()
            name = f"{action}_{method}" if method else action

            def run() -> None:
                occi.trigger(vm, action, {"method": method} if method else {})
                occi.wait_for(vm, state=state, timeout=60, interval=0.05)
                if boot:
                    eventually(lambda: live.boots() > boots, 60, f"the guest to boot again after {name}")
            timed(live, name, run)

        eventually(lambda: "nics=eth0" in live.heartbeat(), 30, "the guest's init to be up (acpid runs)")
        act("stop", "inactive", "graceful")  # ACPI power button: the guest powers itself off
        assert "OCCIPY-GUEST-POWEROFF" in live.console()
        assert dom.state()[0] == lv.VIR_DOMAIN_SHUTOFF
        act("start", "active", boot=True)
        act("suspend", "suspended", "suspend")
        assert dom.state()[0] == lv.VIR_DOMAIN_PAUSED
        act("start", "active")
        act("restart", "active", "warm", boot=True)
        act("restart", "active", "cold", boot=True)
        act("suspend", "suspended", "hibernate")
        assert dom.hasManagedSaveImage(0)
        act("start", "active")
        act("stop", "inactive", "poweroff")
        act("start", "active", boot=True)

        # -- a power-off behind occipy's back shows up (lifecycle event)
        dom.destroy()
        started = time.monotonic()
        eventually(lambda: occi.get(vm).attributes["occi.compute.state"] == "inactive", 15,
                   "the out-of-band power-off to show as inactive")
        live.record("out_of_band_poweroff_seen", time.monotonic() - started)
        act("start", "active", boot=True)

        # -- storage: grow the attached volume; then detach it
        volume = live.conn.storagePoolLookupByName(live.pool).storageVolLookupByName(
            next(v for v in live.ours()[1] if "root" not in v))
        timed(live, "resize_storage", lambda: occi.update(disk, attributes={"occi.storage.size": 1.0}))
        assert occi.get(disk).attributes["occi.storage.size"] == 1.0
        assert volume.info()[1] == 1 * GIB
        eventually(lambda: "vdb" in live.heartbeat(), 30, "the guest to be up before the hot-unplug")
        timed(live, "detach_storagelink", lambda: occi.delete(storagelink))
        with pytest.raises(errors.NotFound):
            occi.get(storagelink)
        eventually(lambda: "vdb" not in dom.XMLDesc(0), 30, "the disk to leave the running domain")
        eventually(lambda: "disks=" in live.heartbeat() and "vdb" not in live.heartbeat(), 30,
                   "the guest to lose /dev/vdb")

        # -- delete everything: nothing of ours is left in libvirt
        timed(live, "delete_compute", lambda: occi.delete(vm))
        occi.delete(disk)
        occi.delete(net)
        started = time.monotonic()
        eventually(lambda: live.ours() == ([], [], []), 60, "libvirt to hold no domain, volume or network")
        live.record("cleanup_in_libvirt", time.monotonic() - started)
        assert httpx.get(f"{live.url}/compute/", headers={"Accept": "text/uri-list"}).text.strip() == ""

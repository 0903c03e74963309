"""How much occipy adds on top of libvirt: the same operations three ways.

1. plain libvirt-python calls (the least work that does the job),
2. the LibvirtDriver (worker threads, XML building and parsing, observe after each step),
3. the HTTP API (`occipy serve --driver libvirt` as a subprocess, driven with httpx and
   application/occi+json; each operation is timed until the entity reaches its state).

Operations: volume create/delete, NAT network create/delete, and a compute's create (boot),
suspend, start (resume), stop (poweroff), delete. Prints a table of medians and writes
.bench/libvirt-overhead.json. Usage (the host needs scripts/libvirt-setup.sh first):

    .venv/bin/python bench/libvirt_bench.py [--uri qemu:///system] [--images DIR] [--rounds 5]

With --uri test:///default no hypervisor is involved: that isolates occipy's own cost.
"""

# The timed lambdas are called at once, inside their loop iteration: B023 does not apply.
# ruff: noqa: B023

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import libvirt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from occipy.backends.base import ComputeSpec, NetworkSpec, ResourceType, StorageSpec
from occipy.backends.libvirt import LibvirtDriver

JSON = "application/occi+json"
GIB = 1024 ** 3
Timings = dict[str, list[float]]


def clock(timings: Timings, name: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = fn()
    timings.setdefault(name, []).append(time.perf_counter() - start)
    return result


async def aclock(timings: Timings, name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
    start = time.perf_counter()
    result = await fn()
    timings.setdefault(name, []).append(time.perf_counter() - start)
    return result


def wait(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("operation did not finish")
        time.sleep(0.005)


# ---------------------------------------------------------------------------- 1. plain libvirt


def plain(uri: str, pool_name: str, image: Path, rounds: int, tag: str) -> Timings:
    conn = libvirt.open(uri)
    test = conn.getType().lower() == "test"
    pool = conn.storagePoolLookupByName(pool_name)
    t: Timings = {}
    kernel = image.with_suffix(".vmlinuz")
    initrd = image.with_suffix(".initrd.gz")
    for n in range(rounds):
        name = f"bench{tag}-plain-{n}"
        vol = clock(t, "storage create", lambda: pool.createXML(
            f"<volume><name>{name}.qcow2</name><capacity>{GIB}</capacity>"
            "<target><format type='qcow2'/></target></volume>", 0))
        clock(t, "storage delete", lambda: vol.delete(0))
        net = clock(t, "network create", lambda: _plain_network(conn, name, n))
        clock(t, "network delete", lambda: (net.destroy(), net.undefine()))

        def boot() -> Any:
            root = pool.createXML(
                f"<volume><name>{name}-root.qcow2</name><capacity>{image.stat().st_size}</capacity>"
                f"<target><format type='qcow2'/></target><backingStore><path>{image}</path>"
                "<format type='qcow2'/></backingStore></volume>", 0)
            boot_xml = "" if test else f"<kernel>{kernel}</kernel><initrd>{initrd}</initrd><cmdline>console=ttyS0</cmdline>"
            dom = conn.defineXML(
                f"<domain type='{'test' if test else 'qemu'}'><name>{name}</name><memory unit='MiB'>256</memory>"
                f"<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type>{boot_xml}</os><devices>"
                f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{root.path()}'/>"
                "<target dev='vda' bus='virtio'/></disk></devices></domain>")
            dom.create()
            return dom, root

        dom, root = clock(t, "compute create", boot)
        clock(t, "compute suspend", dom.suspend)
        clock(t, "compute start", dom.resume)
        clock(t, "compute stop", dom.destroy)
        clock(t, "compute delete", lambda: (dom.undefine(), root.delete(0)))
    conn.close()
    return t


def _plain_network(conn: Any, name: str, n: int) -> Any:
    net = conn.networkDefineXML(
        f"<network><name>{name}</name><forward mode='nat'/><ip address='10.215.{n}.1' prefix='24'>"
        f"<dhcp><range start='10.215.{n}.2' end='10.215.{n}.254'/></dhcp></ip></network>")
    net.create()
    return net


# ---------------------------------------------------------------------------- 2. the driver


def driver_options(uri: str, pool: str, images: Path, prefix: str) -> dict[str, str]:
    return {"uri": uri, "pool": pool, "image_dir": str(images), "name_prefix": prefix,
            "network_prefix": "10.216.0.0/16", "reconcile_interval": "0"}


async def through_driver(uri: str, pool: str, images: Path, rounds: int, tag: str, data: Path) -> Timings:
    drv = LibvirtDriver.from_options(driver_options(uri, pool, images, f"bench{tag}-drv-"), data)
    await drv.open()
    t: Timings = {}
    compute = ResourceType.COMPUTE
    for n in range(rounds):
        vol = await aclock(t, "storage create", lambda: drv.create(StorageSpec(name=f"v{n}", size_gib=1.0)))
        await aclock(t, "storage delete", lambda: drv.delete(ResourceType.STORAGE, vol.backend_id))
        net = await aclock(t, "network create", lambda: drv.create(NetworkSpec(name=f"n{n}")))
        await aclock(t, "network delete", lambda: drv.delete(ResourceType.NETWORK, net.backend_id))
        vm = await aclock(t, "compute create", lambda: drv.create(ComputeSpec(
            name=f"c{n}", cores=1, memory_gib=0.25, os_template="occipy-guest")))
        await aclock(t, "compute suspend", lambda: drv.act(compute, vm.backend_id, "suspend", {"method": "suspend"}))
        await aclock(t, "compute start", lambda: drv.act(compute, vm.backend_id, "start", {}))
        await aclock(t, "compute stop", lambda: drv.act(compute, vm.backend_id, "stop", {"method": "poweroff"}))
        await aclock(t, "compute delete", lambda: drv.delete(compute, vm.backend_id))
    await drv.close()
    return t


# ---------------------------------------------------------------------------- 3. the HTTP API


def through_http(uri: str, pool: str, images: Path, rounds: int, tag: str, data: Path) -> Timings:
    port = _free_port()
    args = [sys.executable, "-m", "occipy", "serve", "--port", str(port), "--data-dir", str(data),
            "--driver", "libvirt", "--log-level", "warning"]
    options = driver_options(uri, pool, images, f"bench{tag}-http-")
    if uri.startswith("test:"):
        del options["pool"]  # a test:/// state lives in one process: the server makes its own pool
    for key, value in options.items():
        args += ["--driver-opt", f"{key}={value}"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    url = f"http://127.0.0.1:{port}"
    t: Timings = {}
    try:
        with httpx.Client(base_url=url, headers={"Accept": JSON, "Content-Type": JSON}, timeout=60) as http:
            wait(lambda: _up(http), 60)
            os_tpl = next(m for m in http.get("/-/").json()["mixins"] if m["term"] == "occipy-guest")
            for _ in range(rounds):
                vol = clock(t, "storage create", lambda: _create(http, "storage", "online", {
                    "kind": "http://schemas.ogf.org/occi/infrastructure#storage",
                    "attributes": {"occi.storage.size": 1.0}}))
                clock(t, "storage delete", lambda: _delete(http, vol))
                net = clock(t, "network create", lambda: _create(http, "network", "active", {
                    "kind": "http://schemas.ogf.org/occi/infrastructure#network", "attributes": {}}))
                clock(t, "network delete", lambda: _delete(http, net))
                vm = clock(t, "compute create", lambda: _create(http, "compute", "active", {
                    "kind": "http://schemas.ogf.org/occi/infrastructure#compute",
                    "mixins": [os_tpl["scheme"] + os_tpl["term"]],
                    "attributes": {"occi.compute.cores": 1, "occi.compute.memory": 0.25}}))
                clock(t, "compute suspend", lambda: _act(http, vm, "suspend", "suspended", {"method": "suspend"}))
                clock(t, "compute start", lambda: _act(http, vm, "start", "active", {}))
                clock(t, "compute stop", lambda: _act(http, vm, "stop", "inactive", {"method": "poweroff"}))
                clock(t, "compute delete", lambda: _delete(http, vm))
    finally:
        server.terminate()
        server.wait(timeout=15)
    return t


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _up(http: httpx.Client) -> bool:
    try:
        return http.get("/-/").status_code == 200
    except httpx.HTTPError:
        return False


def _state(http: httpx.Client, location: str, kind: str) -> str | None:
    response = http.get(location)
    return None if response.status_code == 404 else response.json()["attributes"].get(f"occi.{kind}.state")


def _create(http: httpx.Client, kind: str, state: str, body: dict[str, Any]) -> str:
    response = http.post(f"/{kind}/", json=body)
    response.raise_for_status()
    location = response.headers["Location"]
    wait(lambda: _state(http, location, kind) == state)
    return location


def _act(http: httpx.Client, location: str, action: str, state: str, attributes: dict[str, str]) -> None:
    scheme = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
    http.post(location, params={"action": action},
              json={"action": scheme + action, "attributes": attributes}).raise_for_status()
    wait(lambda: _state(http, location, "compute") == state)


def _delete(http: httpx.Client, location: str) -> None:
    # The entity goes at once; the cloud object goes in a background job: wait for the job too.
    operation = http.delete(location).headers.get("X-OCCI-Operation")
    if operation:
        wait(lambda: http.get(operation).json().get("state") not in ("queued", "running", "pending"))


# ---------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--images", type=Path, default=Path.home() / ".cache" / "occipy" / "guest",
                        help="image directory holding occipy-guest (scripts/build-guest.sh DIR)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    image = args.images / "occipy-guest.qcow2"
    if not image.exists():
        subprocess.run(["bash", str(REPO / "scripts" / "build-guest.sh"), str(args.images)], check=True)
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    tag = uuid.uuid4().hex[:4]
    with tempfile.TemporaryDirectory(prefix="occipy-bench-") as tmp:
        root = Path(tmp)
        conn = libvirt.open(args.uri)
        pool_name = f"occipy-bench-{tag}"
        (root / "pool").mkdir()
        pool = conn.storagePoolDefineXML(f"<pool type='dir'><name>{pool_name}</name><target>"
                                         f"<path>{root / 'pool'}</path></target></pool>", 0)
        pool.create(0)
        try:
            results = {
                "plain libvirt-python": plain(args.uri, pool_name, image, args.rounds, tag),
                "LibvirtDriver": asyncio.run(through_driver(args.uri, pool_name, args.images, args.rounds, tag,
                                                            root / "drv")),
                "HTTP API": through_http(args.uri, pool_name, args.images, args.rounds, tag, root / "http"),
            }
        finally:
            pool.refresh(0)
            for volume in pool.listAllVolumes(0):
                volume.delete(0)
            pool.destroy()
            pool.undefine()
            conn.close()
    medians = {layer: {op: statistics.median(v) * 1000 for op, v in t.items()} for layer, t in results.items()}
    ops = list(medians["plain libvirt-python"])
    print(f"{args.uri}, {args.rounds} rounds, median ms")
    print(f"{'operation':18} {'plain':>9} {'driver':>9} {'HTTP':>9} {'driver-plain':>13} {'HTTP-plain':>11}")
    for op in ops:
        p, d, h = (medians[layer][op] for layer in medians)
        print(f"{op:18} {p:9.1f} {d:9.1f} {h:9.1f} {d - p:13.1f} {h - p:11.1f}")
    out = REPO / ".bench" / f"libvirt-overhead-{args.uri.split(':')[0]}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"uri": args.uri, "rounds": args.rounds, "median_ms": medians}, indent=2) + "\n")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()

"""Time each test service's start and stop, as the fixtures do them (the figures in docs/testing.md).

    uv run --frozen -p python3.11 python -m tests.services.timing [postgres] [docker] [moto] [openstack]

Prints one line per service: start (ready to use), first use, stop; for OpenStack also the set-up
steps that cloud.py records. Runs each service in turn, never two at once.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable


def timed(label: str, action: Callable[[], object]) -> tuple[float, object]:
    started = time.monotonic()
    result = action()
    elapsed = time.monotonic() - started
    print(f"  {label}: {elapsed:.2f} s", flush=True)
    return elapsed, result


def postgres() -> None:
    from tests.services.postgres import start_postgres

    _, server = timed("initdb + start", start_postgres)
    timed("create database", server.create_database)  # type: ignore[attr-defined]
    timed("stop + remove", server.stop)  # type: ignore[attr-defined]


def docker() -> None:
    from tests.services.dockerd import start_dockerd

    _, daemon = timed("dockerd start", start_dockerd)
    timed("busybox image build", daemon.build_busybox_image)  # type: ignore[attr-defined]
    client = daemon.client()  # type: ignore[attr-defined]
    timed("run + remove a container", lambda: client.containers.run(
        "occipy/busybox:test", ["true"], remove=True, network_mode="none", init=True))
    client.close()
    timed("stop + clean up", daemon.stop)  # type: ignore[attr-defined]


def moto() -> None:
    from tests.services.moto_ec2 import start_moto

    _, server = timed("moto_server start", start_moto)
    ec2 = server.client("ec2")  # type: ignore[attr-defined]
    timed("first describe_images", lambda: ec2.describe_images(Owners=["amazon"], MaxResults=5))
    timed("reset", server.reset)  # type: ignore[attr-defined]
    timed("stop", server.stop)  # type: ignore[attr-defined]


def openstack() -> None:
    from tests.services._process import start_retrying_port_clash
    from tests.services.openstack_cloud import start_openstack

    started = time.monotonic()
    cloud, supervisor = start_retrying_port_clash(start_openstack)
    print(f"  cloud.py run until READY: {time.monotonic() - started:.2f} s", flush=True)
    for step, at in cloud.timings.items():
        print(f"    {step}: at {at} s")
    conn = cloud.connect()
    _, server = timed("server create -> ACTIVE", lambda: conn.compute.wait_for_server(
        conn.compute.create_server(name="t", image_id=cloud.image["id"], flavor_id=cloud.flavor["id"],
                                   networks="none"), wait=120, interval=0.2))
    timed("server delete", lambda: conn.compute.wait_for_delete(
        conn.compute.delete_server(server) or server, wait=120, interval=0.2))
    conn.close()
    timed("stop (SIGTERM, wait, SIGKILL)", supervisor.stop)


SERVICES = {"postgres": postgres, "docker": docker, "moto": moto, "openstack": openstack}


def main(names: list[str]) -> int:
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for name in names or list(SERVICES):
        print(f"{name}:", flush=True)
        SERVICES[name]()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Smoke test of the private dockerd with the Docker SDK: limits, networks, volumes, pause, commit."""

from __future__ import annotations

import ipaddress
import subprocess
import time
import urllib.request
from typing import Any

import docker
import pytest

from tests.services._process import free_port
from tests.services.dockerd import DockerDaemon


def test_busybox_image_is_small_and_built_without_a_registry(docker_client: Any, busybox_image: str) -> None:
    image = docker_client.images.get(busybox_image)
    assert image.attrs["Size"] < 3_000_000
    assert image.labels["org.occipy.test"] == "busybox"
    output = docker_client.containers.run(busybox_image, ["sh", "-c", "echo hello from $(uname -s)"],
                                          remove=True, network_mode="none")
    assert output == b"hello from Linux\n"


def test_container_lifecycle_with_limits_network_volume_pause_commit(
    docker_client: Any, busybox_image: str, dockerd: DockerDaemon
) -> None:
    subnet = dockerd.fixed_subnet(0)
    fixed_ip = str(subnet.network_address + 10)
    network = docker_client.networks.create(
        "occi-net", driver="bridge",
        ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet))]),
    )
    volume = docker_client.volumes.create("occi-data")
    container = docker_client.containers.create(
        busybox_image, name="occi-vm", init=True, nano_cpus=500_000_000, mem_limit="64m",
        network=network.name, volumes={volume.name: {"bind": "/data", "mode": "rw"}},
    )
    network.disconnect(container)
    network.connect(container, ipv4_address=fixed_ip)
    container.start()
    container.reload()
    assert container.status == "running"
    assert container.attrs["HostConfig"]["NanoCpus"] == 500_000_000
    assert container.attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert container.attrs["NetworkSettings"]["Networks"]["occi-net"]["IPAddress"] == fixed_ip
    exit_code, out = container.exec_run(["sh", "-c", "echo kept > /data/file; ip -4 addr show eth0"])
    assert exit_code == 0 and f"{fixed_ip}/24".encode() in out

    container.pause()
    container.reload()
    assert container.status == "paused"
    container.unpause()
    container.reload()
    assert container.status == "running"

    snapshot = container.commit(repository="occipy/snapshot", tag="t1")
    assert "occipy/snapshot:t1" in snapshot.tags

    container.stop(timeout=5)
    container.reload()
    assert container.status == "exited"
    other = docker_client.containers.run(busybox_image, ["cat", "/data/file"], remove=True, network_mode="none",
                                         volumes={volume.name: {"bind": "/data", "mode": "ro"}})
    assert other == b"kept\n"
    # The user network's bridge holds the gateway address of the fixed subnet on the host.
    addresses = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert f"{subnet.network_address + 1}/24" in addresses


def test_docker_client_removes_what_the_previous_test_made(docker_client: Any, busybox_image: str) -> None:
    assert [c.name for c in docker_client.containers.list(all=True)] == []
    assert sorted(n.name for n in docker_client.networks.list()) == ["bridge", "host", "none"]
    assert docker_client.volumes.list() == []
    assert [t for i in docker_client.images.list() for t in i.tags] == ["occipy/busybox:test"]


def test_daemon_has_its_own_bridge_and_no_iptables_rules(dockerd: DockerDaemon, docker_client: Any) -> None:
    bridge = docker_client.networks.get("bridge")
    assert bridge.attrs["Options"]["com.docker.network.bridge.name"] == dockerd.bridge
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout
    assert "DOCKER" not in rules and dockerd.bridge not in rules
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get("occi-vm")


def test_default_bridge_and_a_port_published_on_loopback(docker_client: Any, busybox_image: str,
                                                         dockerd: DockerDaemon) -> None:
    port = free_port()
    container = docker_client.containers.run(
        busybox_image, ["sh", "-c", "mkdir /www && echo hello > /www/index.html && httpd -f -p 8080 -h /www"],
        detach=True, init=True, ports={"8080/tcp": ("127.0.0.1", port)})
    container.reload()
    assert ipaddress.ip_address(container.attrs["NetworkSettings"]["IPAddress"]) in dockerd.subnet
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2) as reply:
                assert reply.read() == b"hello\n"
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)

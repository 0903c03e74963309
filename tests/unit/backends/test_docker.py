"""The Docker driver against a real, private dockerd (tests/services/dockerd.py): the shared driver
contract, then what is Docker's own (labels, mounts, user data, limits, events, save, Platform).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

docker = pytest.importorskip("docker", reason="the docker SDK is the docker extra: uv sync --extra docker")

from occipy.backends import load_driver_class
from occipy.backends.base import (
    COMPUTE,
    IMAGE,
    NETWORK,
    NETWORKINTERFACE,
    PLAN,
    RUNTIME,
    STORAGE,
    STORAGELINK,
    ComputeSpec,
    ComputeUpdate,
    Driver,
    NetworkInterfaceFacts,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    Ref,
    Save,
    Start,
    Stop,
    StorageLinkSpec,
    StorageSpec,
    Suspend,
)
from occipy.backends.docker import DockerDriver
from occipy.backends.platform_types import (
    APPLICATION,
    COMPONENT,
    COMPONENTLINK,
    ApplicationFacts,
    ApplicationSpec,
    ComponentFacts,
    ComponentLinkFacts,
    ComponentLinkSpec,
    ComponentSpec,
)
from occipy.errors import BackendError, NotSupported
from tests.services.dockerd import DockerDaemon
from tests.unit.backends.contract import DriverContract, Made, facts, next_change, unique

pytestmark = pytest.mark.timeout(120)


def options(dockerd: DockerDaemon, busybox_image: str, **more: str) -> dict[str, str]:
    return {"base_url": dockerd.base_url, "images": busybox_image, "stop_timeout": "2", **more}


@pytest.fixture
async def drv(dockerd: DockerDaemon, busybox_image: str, docker_client: Any) -> AsyncIterator[DockerDriver]:
    driver = DockerDriver.from_options(options(dockerd, busybox_image), Path("."))
    await driver.open()
    yield driver
    await driver.close()


class TestDockerContract(DriverContract):
    @pytest.fixture
    async def driver(self, dockerd: DockerDaemon, busybox_image: str, docker_client: Any) -> AsyncIterator[Driver]:
        driver = DockerDriver.from_options(options(dockerd, busybox_image), Path("."))
        await driver.open()
        self.client = docker_client
        yield driver
        await driver.close()

    def network_spec(self, driver: Driver, **overrides: Any) -> NetworkSpec:
        return super().network_spec(driver, **overrides)

    async def change_outside(self, driver: Driver, ref: Ref, state: str | None) -> None:
        container = await asyncio.to_thread(self.client.containers.get, ref.backend_id)
        if state is None:
            await asyncio.to_thread(container.remove, force=True)
        else:
            assert state == "inactive"
            await asyncio.to_thread(container.kill)

    async def unreachable(self) -> Driver | None:
        return DockerDriver.from_options({"base_url": "unix:///nonexistent/docker.sock"}, Path("."))

    async def test_two_networkinterfaces_differ(self, driver: Driver, compute: Any, made: Made) -> None:
        # Docker connects a container to a network once: two interfaces need two networks, and a
        # second one on the same network is refused as not supported (docs/drivers/docker.md).
        networks = [await made.create(self.network_spec(driver)) for _ in range(2)]
        nics = [facts(await made.create(NetworkInterfaceSpec(name=unique("ct-nic"), compute_id=compute.backend_id,
                                                             network_id=n.backend_id)), NETWORKINTERFACE)
                for n in networks]
        assert len({n.mac for n in nics}) == 2 and len({n.interface for n in nics}) == 2
        with pytest.raises(NotSupported, match="once"):
            await made.create(NetworkInterfaceSpec(name=unique("ct-nic"), compute_id=compute.backend_id,
                                                   network_id=networks[0].backend_id))


# ---------------------------------------------------------------------------- settings


def test_registered_and_options() -> None:
    assert load_driver_class("docker") is DockerDriver
    drv = DockerDriver.from_options({"base_url": "unix:///x.sock", "images": "a:1, b:2", "flavours": "s=1:0.25",
                                     "stop_timeout": "3"}, Path("."))
    assert drv.settings.images == ("a:1", "b:2")
    assert [(f.name, f.cores, f.memory_gib) for f in drv.settings.flavours] == [("s", 1, 0.25)]
    assert drv.settings.stop_timeout == 3


@pytest.mark.parametrize(("key", "value", "message"), [
    ("colour", "blue", "unknown docker driver option"),
    ("flavours", "s=one:1", "not name=cores:memory_gib"),
    ("stop_timeout", "soon", "expected whole seconds"),
])
def test_bad_options(key: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DockerDriver.from_options({key: value}, Path("."))


async def test_templates_offer_images_flavours_runtimes_and_plans(drv: DockerDriver, busybox_image: str) -> None:
    families = {(t.family, t.name) for t in drv.templates()}
    assert (IMAGE, busybox_image) in families
    assert {(RUNTIME, "busybox-httpd"), (RUNTIME, "busybox-toydb"), (RUNTIME, busybox_image)} <= families
    assert {(PLAN, "tiny"), (PLAN, "standard")} <= families


async def test_fresh_engine_gets_a_built_busybox_image(dockerd: DockerDaemon, docker_client: Any) -> None:
    # No image configured and none on the engine (the test busybox image is hidden by `images`
    # naming one that does not exist): the driver builds occipy/busybox:latest itself.
    driver = DockerDriver.from_options({"base_url": dockerd.base_url, "images": "no-such-image:1"}, Path("."))
    await driver.open()
    try:
        assert [t.name for t in driver.templates() if t.family == IMAGE] == ["occipy/busybox:latest"]
        observed = await driver.create(ComputeSpec(name=unique("fresh")))
        assert observed.state == "active"
        await driver.delete(Ref(COMPUTE, observed.backend_id))
    finally:
        await driver.close()


# ---------------------------------------------------------------------------- what Docker gets


async def test_container_carries_labels_limits_and_init(drv: DockerDriver, docker_client: Any) -> None:
    entity = f"urn:uuid:{uuid.uuid4()}"
    observed = await drv.create(ComputeSpec(name=unique("lab"), entity_id=entity, cores=2, memory_gib=0.25,
                                            hostname="web-1"))
    container = docker_client.containers.get(observed.backend_id)
    assert container.labels["org.occipy.entity"] == entity
    assert container.labels["org.occipy.kind"] == "compute"
    host = container.attrs["HostConfig"]
    assert host["Init"] is True
    assert host["CpuQuota"] == 2 * host["CpuPeriod"]
    assert host["Memory"] == 256 * 1024 * 1024
    assert container.attrs["Config"]["Hostname"] == "web-1"
    assert facts(observed, COMPUTE).cores == 2


async def test_user_data_and_ssh_key_are_files_and_environment(drv: DockerDriver, docker_client: Any) -> None:
    observed = await drv.create(ComputeSpec(name=unique("ctx"), user_data=b"#cloud-config\nhello: 1\n",
                                            ssh_public_key="ssh-ed25519 AAAA test@occipy"))
    container = docker_client.containers.get(observed.backend_id)
    script = "cat $OCCI_USER_DATA_FILE; cat /root/.ssh/authorized_keys; cat $OCCI_SSH_KEY_FILE"
    out = container.exec_run(["sh", "-c", script]).output.decode()
    assert out == "#cloud-config\nhello: 1\nssh-ed25519 AAAA test@occipy\nssh-ed25519 AAAA test@occipy\n"


def _in_its_loop(docker_client: Any, backend_id: str) -> None:
    """Wait until the image's shell runs its loop (a `sleep` child): it has set its TERM trap.
    A TERM that comes before kills the shell (exit 143), the race this test once lost."""
    deadline = time.monotonic() + 15
    while True:
        processes = docker_client.containers.get(backend_id).top().get("Processes") or []
        if any("sleep" in " ".join(map(str, row)) for row in processes):
            return
        assert time.monotonic() < deadline, processes
        time.sleep(0.05)


async def test_stop_methods_send_term_or_kill(drv: DockerDriver, docker_client: Any) -> None:
    ref = Ref(COMPUTE, (await drv.create(ComputeSpec(name=unique("sig")))).backend_id)
    _in_its_loop(docker_client, ref.backend_id)
    await drv.act(ref, Stop(method="graceful"))
    state = docker_client.containers.get(ref.backend_id).attrs["State"]
    assert state["ExitCode"] == 0  # the image's shell traps TERM and exits 0 (init forwards it)
    await drv.act(ref, Start())
    await drv.act(ref, Stop(method="poweroff"))
    assert docker_client.containers.get(ref.backend_id).attrs["State"]["ExitCode"] == 137  # SIGKILL


async def test_suspend_is_pause(drv: DockerDriver, docker_client: Any) -> None:
    ref = Ref(COMPUTE, (await drv.create(ComputeSpec(name=unique("pause")))).backend_id)
    assert (await drv.act(ref, Suspend())).state == "suspended"
    assert docker_client.containers.get(ref.backend_id).status == "paused"


async def test_sample_reads_the_stats_api(drv: DockerDriver, docker_client: Any) -> None:
    # Samples: a running container's counters; paused is not running but still read; stopped has
    # no counters; another type's container, a volume and a deleted container give no reading.
    assert drv.sampled == {COMPUTE, COMPONENT}
    ref = Ref(COMPUTE, (await drv.create(ComputeSpec(name=unique("mon"), cores=1, memory_gib=0.25))).backend_id)
    container = docker_client.containers.get(ref.backend_id)
    busy = "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; dd if=/dev/zero of=/f bs=64k count=64 conv=fsync"
    assert container.exec_run(["sh", "-c", busy]).exit_code == 0
    first = await drv.sample(ref)
    assert first is not None and first.running
    assert first.cpus == 1 and first.memory_total_bytes == 0.25 * 1024**3
    assert first.cpu_seconds is not None and first.cpu_seconds > 0.01  # the loop above burnt CPU
    assert first.memory_used_bytes is not None and 0 < first.memory_used_bytes < first.memory_total_bytes
    assert first.net_rx_bytes is not None and first.net_tx_bytes is not None  # eth0 on the bridge
    assert first.disk_read_bytes is not None and first.disk_write_bytes is not None
    second = await drv.sample(ref)
    assert second is not None and second.taken > first.taken
    assert second.cpu_seconds is not None and second.cpu_seconds >= first.cpu_seconds
    await drv.act(ref, Suspend())
    paused = await drv.sample(ref)
    assert paused is not None and not paused.running and paused.cpu_seconds is not None
    await drv.act(ref, Start())
    await drv.act(ref, Stop(method="poweroff"))
    stopped = await drv.sample(ref)
    assert stopped is not None and not stopped.running
    assert stopped.cpu_seconds is None and stopped.memory_used_bytes == 0.0
    assert stopped.memory_total_bytes == 0.25 * 1024**3 and stopped.cpus == 1
    component = await drv.create(ComponentSpec(name=unique("mon-web"), runtime="busybox-httpd"))
    reading = await drv.sample(Ref(COMPONENT, component.backend_id))
    assert reading is not None and reading.running and (reading.memory_used_bytes or 0) > 0
    assert await drv.sample(Ref(COMPUTE, component.backend_id)) is None  # not a compute's container
    volume = await drv.create(StorageSpec(name=unique("mon-vol"), size_gib=1.0))
    assert await drv.sample(Ref(STORAGE, volume.backend_id)) is None
    await drv.delete(ref)
    assert await drv.sample(ref) is None


async def test_a_reading_waits_while_occipy_recreates_the_container(drv: DockerDriver, docker_client: Any) -> None:
    # A mount re-creates the container under its lock with its events quiet (_quietly): a reading
    # then waits for the new container rather than reporting the gap as "gone".
    ref = Ref(COMPUTE, (await drv.create(ComputeSpec(name=unique("mon-re")))).backend_id)
    async with drv._lock(ref.backend_id):
        drv._quiet.add(ref.backend_id)
        reading = asyncio.create_task(drv.sample(ref))
        await asyncio.sleep(2.0)  # a reading takes about 1 s (the engine's stats collection)
        assert not reading.done()
        drv._quiet.discard(ref.backend_id)
    got = await asyncio.wait_for(reading, 10)
    assert got is not None and got.running


async def test_storagelink_mounts_and_keeps_identity(drv: DockerDriver, docker_client: Any) -> None:
    compute = await drv.create(ComputeSpec(name=unique("mnt")))
    network = await drv.create(NetworkSpec(name=unique("mnt-net")))
    nic = await drv.create(NetworkInterfaceSpec(name=unique("nic"), compute_id=compute.backend_id,
                                                network_id=network.backend_id))
    volume = await drv.create(StorageSpec(name=unique("vol"), size_gib=1.0))
    before = docker_client.containers.get(compute.backend_id)
    before.exec_run(["sh", "-c", "echo kept > /tmp/not-on-a-volume"])
    link = await drv.create(StorageLinkSpec(name=unique("sl"), compute_id=compute.backend_id,
                                            storage_id=volume.backend_id, mountpoint="/srv/data"))
    after = docker_client.containers.get(compute.backend_id)
    # Docker cannot add a mount to a container: it is re-created with the same name (the backend
    # id), networks, state and entity label; its root filesystem is new (docs/drivers/docker.md).
    assert after.id != before.id and after.name == before.name and after.status == "running"
    assert after.labels["org.occipy.entity"] == before.labels["org.occipy.entity"]
    assert network.backend_id in {n["NetworkID"] for n in after.attrs["NetworkSettings"]["Networks"].values()}
    assert await drv.observe(Ref(NETWORKINTERFACE, nic.backend_id)) is not None
    assert after.exec_run(["sh", "-c", "echo data > /srv/data/f && cat /srv/data/f"]).output == b"data\n"
    assert facts(link, STORAGELINK).mountpoint == "/srv/data"
    await drv.delete(Ref(STORAGELINK, link.backend_id))
    assert await drv.observe(Ref(STORAGELINK, link.backend_id)) is None
    assert docker_client.containers.get(compute.backend_id).exec_run(["ls", "/srv/data"]).exit_code != 0
    # The data stays on the volume.
    out = docker_client.containers.run(drv.templates()[0].name, ["cat", "/d/f"], remove=True,
                                       volumes={volume.backend_id: {"bind": "/d", "mode": "ro"}})
    assert out == b"data\n"


async def test_static_address_and_network_range(drv: DockerDriver, dockerd: DockerDaemon, docker_client: Any) -> None:
    subnet = dockerd.fixed_subnet(3)
    gateway = str(subnet.network_address + 1)
    network = await drv.create(NetworkSpec(name=unique("fixed"), address=str(subnet), gateway=gateway,
                                           allocation="static"))
    reported = facts(network, NETWORK)
    assert (reported.address, reported.gateway, reported.allocation) == (str(subnet), gateway, "static")
    compute = await drv.create(ComputeSpec(name=unique("ip")))
    wanted = str(subnet.network_address + 10)
    nic = await drv.create(NetworkInterfaceSpec(name=unique("nic"), compute_id=compute.backend_id,
                                                network_id=network.backend_id, address=f"{wanted}/24"))
    got = facts(nic, NETWORKINTERFACE)
    assert isinstance(got, NetworkInterfaceFacts)
    assert got.address == wanted and got.gateway == gateway and got.allocation == "static"
    with pytest.raises(NotSupported, match="MAC"):
        await drv.create(NetworkInterfaceSpec(name=unique("nic"), compute_id=compute.backend_id,
                                              network_id=network.backend_id, mac="02:00:00:00:00:01"))


async def test_resize_live_survives_a_recreation(drv: DockerDriver, docker_client: Any) -> None:
    compute = await drv.create(ComputeSpec(name=unique("rs"), cores=1, memory_gib=0.5))
    ref = Ref(COMPUTE, compute.backend_id)
    first_id = docker_client.containers.get(ref.backend_id).id
    resized = await drv.update(ref, ComputeUpdate(cores=2, memory_gib=1.0))
    assert docker_client.containers.get(ref.backend_id).id == first_id  # live: same container
    assert (facts(resized, COMPUTE).cores, facts(resized, COMPUTE).memory_gib) == (2, 1.0)
    volume = await drv.create(StorageSpec(name=unique("rs-vol"), size_gib=1.0))
    await drv.create(StorageLinkSpec(name=unique("sl"), compute_id=ref.backend_id, storage_id=volume.backend_id))
    again = await drv.observe(ref)
    assert again is not None and (facts(again, COMPUTE).cores, facts(again, COMPUTE).memory_gib) == (2, 1.0)


async def test_save_commits_an_image_offered_as_os_tpl(drv: DockerDriver, docker_client: Any) -> None:
    compute = await drv.create(ComputeSpec(name=unique("sv"), entity_id="urn:uuid:x"))
    docker_client.containers.get(compute.backend_id).exec_run(["sh", "-c", "echo saved > /marker"])
    template = await drv.save(Ref(COMPUTE, compute.backend_id), Save(image_name="My Snap"))
    assert template.name == "my-snap" and (IMAGE, "my-snap") in {(t.family, t.name) for t in drv.templates()}
    clone = await drv.create(ComputeSpec(name=unique("clone"), image="my-snap"))
    container = docker_client.containers.get(clone.backend_id)
    assert container.exec_run(["cat", "/marker"]).output == b"saved\n"
    # The clone carries its own labels, not the saved container's entity.
    assert container.labels["org.occipy.entity"] == ""
    assert {t.entity_id for t in await drv.inventory()} == {"urn:uuid:x"}


async def test_events_report_changes_without_polling(drv: DockerDriver, docker_client: Any) -> None:
    compute = await drv.create(ComputeSpec(name=unique("ev")))
    ref = Ref(COMPUTE, compute.backend_id)
    stream = drv.changes()
    docker_client.containers.get(ref.backend_id).pause()
    change = await next_change(stream, ref)
    assert change.observed is not None and change.observed.state == "suspended"


async def test_volume_in_use_is_detached_before_delete(drv: DockerDriver, docker_client: Any) -> None:
    compute = await drv.create(ComputeSpec(name=unique("vd")))
    volume = await drv.create(StorageSpec(name=unique("vd-vol"), size_gib=1.0))
    link = await drv.create(StorageLinkSpec(name=unique("sl"), compute_id=compute.backend_id,
                                            storage_id=volume.backend_id))
    await drv.delete(Ref(STORAGE, volume.backend_id))
    assert await drv.observe(Ref(STORAGE, volume.backend_id)) is None
    assert await drv.observe(Ref(STORAGELINK, link.backend_id)) is None
    assert docker_client.containers.get(compute.backend_id).status == "running"


# ---------------------------------------------------------------------------- Platform


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


async def _until(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            value = await asyncio.to_thread(predicate)
            if value:
                return value
        except OSError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.2)


async def test_platform_application_web_and_database(drv: DockerDriver, docker_client: Any) -> None:
    app = await drv.create(ApplicationSpec(name=unique("shop"), entity_id="urn:uuid:app", app_name="shop"))
    assert app.state == "active" and isinstance(app.facts, ApplicationFacts) and app.facts.url is None
    web = await drv.create(ComponentSpec(name=unique("web"), runtime="busybox-httpd", entity_id="urn:uuid:web"))
    db = await drv.create(ComponentSpec(name=unique("db"), runtime="busybox-toydb", database=True))
    assert isinstance(db.facts, ComponentFacts) and db.facts.version == "1.0" and db.facts.port == 5432
    stream = drv.changes()
    for target in (web, db):
        await drv.create(ComponentLinkSpec(name=unique("host"), source_id=app.backend_id,
                                           target_id=target.backend_id))
    change = await next_change(stream, Ref(APPLICATION, app.backend_id))
    assert change.observed is not None and isinstance(change.observed.facts, ApplicationFacts)
    link = await drv.create(ComponentLinkSpec(name=unique("uses"), source_id=web.backend_id,
                                              target_id=db.backend_id, database=True, entity_id="urn:uuid:l"))
    assert isinstance(link.facts, ComponentLinkFacts) and link.facts.uri == f"toydb://{db.backend_id}:5432/"
    observed = await drv.observe(Ref(APPLICATION, app.backend_id))
    assert observed is not None and isinstance(observed.facts, ApplicationFacts)
    url = observed.facts.url
    assert url is not None and url.endswith(":8080/")
    assert "Hello from an occipy web component" in await _until(lambda: _get(url))
    answer = await _until(lambda: _get(url + "cgi-bin/db"))
    assert "OK toydb 1.0" in answer, answer
    assert {(t.ref.resource, t.entity_id) for t in await drv.inventory()} >= {
        (APPLICATION, "urn:uuid:app"), (COMPONENT, "urn:uuid:web"), (COMPONENTLINK, "urn:uuid:l")}
    # Stopping the application stops its components.
    stopped = await drv.act(Ref(APPLICATION, app.backend_id), Stop())
    assert stopped.state == "inactive"
    assert docker_client.containers.get(web.backend_id).status == "exited"
    assert (await drv.act(Ref(APPLICATION, app.backend_id), Start())).state == "active"
    with pytest.raises(BackendError, match="not a database"):
        await drv.create(ComponentLinkSpec(name=unique("bad"), source_id=db.backend_id, target_id=web.backend_id,
                                           database=True))
    await drv.delete(Ref(COMPONENTLINK, link.backend_id))
    assert await drv.observe(Ref(COMPONENTLINK, link.backend_id)) is None
    env = docker_client.containers.get(web.backend_id).attrs["Config"]["Env"]
    assert not any(e.startswith("DATABASE_") for e in env)
    for ref in (Ref(COMPONENT, web.backend_id), Ref(COMPONENT, db.backend_id), Ref(APPLICATION, app.backend_id)):
        await drv.delete(ref)
        assert await drv.observe(ref) is None
    assert [c.name for c in docker_client.containers.list(all=True)] == []


async def test_component_links_on_one_container_take_turns(drv: DockerDriver, docker_client: Any) -> None:
    """A use link re-creates its source container; a host link made at the same time connects that
    container to the application's network. They touch one container, so they take turns: before,
    the connect hit the container being replaced (or the replacement was made from its settings
    read before the connect), and the web component ended off its application's network (the
    occasional failure of the platform worked example)."""
    app = await drv.create(ApplicationSpec(name=unique("shop"), entity_id="urn:uuid:app", app_name="shop"))
    web = await drv.create(ComponentSpec(name=unique("web"), runtime="busybox-httpd"))
    db = await drv.create(ComponentSpec(name=unique("db"), runtime="busybox-toydb", database=True))
    await drv.create(ComponentLinkSpec(name=unique("host"), source_id=app.backend_id, target_id=db.backend_id))

    async def host_web() -> Observed:
        await asyncio.sleep(0.05)  # the re-creation has read the container's settings
        return await drv.create(ComponentLinkSpec(name=unique("host"), source_id=app.backend_id,
                                                  target_id=web.backend_id))

    uses, hosts = await asyncio.gather(
        drv.create(ComponentLinkSpec(name=unique("uses"), source_id=web.backend_id, target_id=db.backend_id,
                                     database=True)),
        host_web())
    assert uses.state == hosts.state == "active"
    container = docker_client.containers.get(web.backend_id)
    network = docker_client.networks.get(app.backend_id)
    assert network.name in container.attrs["NetworkSettings"]["Networks"], container.attrs["NetworkSettings"]
    assert any(e.startswith("DATABASE_HOST=") for e in container.attrs["Config"]["Env"])
    observed = await drv.observe(Ref(APPLICATION, app.backend_id))
    assert observed is not None and isinstance(observed.facts, ApplicationFacts) and observed.facts.url
    for ref in (Ref(COMPONENT, web.backend_id), Ref(COMPONENT, db.backend_id), Ref(APPLICATION, app.backend_id)):
        await drv.delete(ref)


async def test_host_link_to_a_component_removed_meanwhile_is_a_backend_error(
        drv: DockerDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's NotFound from the connect (the component or the network removed outside occipy
    between the lookup and the connect) fails the link with a message, not as an internal error."""
    app = await drv.create(ApplicationSpec(name=unique("shop"), entity_id="urn:uuid:app", app_name="shop"))
    web = await drv.create(ComponentSpec(name=unique("web"), runtime="busybox-httpd"))

    def removed(*args: Any, **kwargs: Any) -> None:
        raise docker.errors.NotFound("No such container")

    monkeypatch.setattr(drv._engine.client.api, "connect_container_to_network", removed)
    with pytest.raises(BackendError, match=f"no longer has component container {web.backend_id}"):
        await drv.create(ComponentLinkSpec(name=unique("host"), source_id=app.backend_id, target_id=web.backend_id))
    monkeypatch.undo()
    for ref in (Ref(COMPONENT, web.backend_id), Ref(APPLICATION, app.backend_id)):
        await drv.delete(ref)


def test_missing_sdk_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # `occipy serve --driver docker` without the docker extra.
    import sys

    for module in [m for m in sys.modules if m == "docker" or m.startswith(("docker.", "occipy.backends.docker",
                                                                              "occipy.backends._docker"))]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "docker", None)
    with pytest.raises(ValueError) as caught:
        load_driver_class("docker")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the docker driver needs the docker extra: pip install 'occipy[docker]'")

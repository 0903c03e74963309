"""The libvirt driver against libvirt's in-process test:///default driver (no daemon).

First the shared driver contract suite, then what only this driver does: the domain, volume and
network definitions it writes, the NoCloud seed, template handling, state mapping, out-of-band
changes and the start-up errors. The real qemu:///system run is tests/integration/test_libvirt_live.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import struct
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is the libvirt extra: uv sync --extra libvirt")

from occipy.backends import _libvirt_xml as lx
from occipy.backends import load_driver_class
from occipy.backends._libvirt_compute import _compute_state
from occipy.backends._libvirt_local import (
    CRTP_FLAVOURS,
    Flavour,
    Seed,
    parse_flavours,
    parse_settings,
    read_seed_iso,
    scan_images,
    seed_iso,
)
from occipy.backends.base import (
    Capability,
    Change,
    ComputeSpec,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    ResourceType,
    StorageLinkSpec,
    StorageSpec,
)
from occipy.backends.libvirt import LibvirtDriver
from occipy.errors import BackendError, BackendUnavailable, InvalidAttribute

from .contract import DriverContract, Made

COMPUTE = ResourceType.COMPUTE
STORAGE = ResourceType.STORAGE
NETWORK = ResourceType.NETWORK
STORAGELINK = ResourceType.STORAGELINK
NETWORKINTERFACE = ResourceType.NETWORKINTERFACE
URI = "test:///default"
GIB = 1024 ** 3


def fake_qcow2(path: Path, size: int) -> None:
    """A file with a valid qcow2 header (the test driver never reads the image itself)."""
    header = b"QFI\xfb" + struct.pack(">IQIIQ", 3, 0, 0, 16, size)
    path.write_bytes(header + b"\0" * 64)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    fake_qcow2(images / "tiny-linux.qcow2", 2 * GIB)
    (images / "tiny-linux.vmlinuz").write_bytes(b"kernel")
    (images / "tiny-linux.initrd.gz").write_bytes(b"initrd")
    (images / "tiny-linux.json").write_text(json.dumps({
        "title": "Tiny Linux 1.0", "architecture": "x64", "kernel": "tiny-linux.vmlinuz",
        "initrd": "tiny-linux.initrd.gz", "cmdline": "console=ttyS0"}))
    fake_qcow2(images / "plain.qcow2", 1 * GIB)  # no sidecar: boots from its disk
    (images / "notes.txt").write_text("not an image")
    return images


def options(image_dir: Path, **extra: str) -> dict[str, str]:
    values = {"uri": URI, "image_dir": str(image_dir), "name_prefix": f"t{uuid.uuid4().hex[:6]}-",
              "reconcile_interval": "0"}
    values.update(extra)
    return values


@pytest.fixture
async def drv(image_dir: Path, tmp_path: Path) -> AsyncIterator[LibvirtDriver]:
    driver = LibvirtDriver.from_options(options(image_dir, flavors="tiny=1:0.25,big=4:8:30"), tmp_path / "data")
    await driver.open()
    yield driver
    await driver.close()


@pytest.fixture
async def made(drv: LibvirtDriver) -> AsyncIterator[Made]:
    made = Made(drv)
    yield made
    await made.cleanup()


@pytest.fixture
def virt() -> Any:
    """A second connection: somebody using libvirt behind occipy's back."""
    conn = libvirt.open(URI)
    yield conn
    conn.close()


# ---------------------------------------------------------------------------- the contract


class TestLibvirtContract(DriverContract):
    @pytest.fixture
    async def driver(self, image_dir: Path, tmp_path: Path) -> AsyncIterator[LibvirtDriver]:
        driver = LibvirtDriver.from_options(options(image_dir), tmp_path / "data")
        await driver.open()
        yield driver
        await driver.close()


# ---------------------------------------------------------------------------- settings


def test_registered_under_its_name() -> None:
    assert load_driver_class("libvirt") is LibvirtDriver


def test_defaults(tmp_path: Path) -> None:
    settings = parse_settings({}, tmp_path)
    assert settings.uri == "qemu:///system"
    assert settings.pool == "occipy"
    assert settings.domain_type == "qemu"  # never kvm unless asked (ecosystem.md §1a)
    assert settings.image_dir == (tmp_path / "libvirt" / "images").resolve()
    assert settings.flavours == ()
    assert settings.flavour("medium") == CRTP_FLAVOURS["medium"]


@pytest.mark.parametrize(("key", "value", "words"), [
    ("colour", "blue", "unknown libvirt driver option"),
    ("domain_type", "xen", "qemu or kvm"),
    ("network_prefix", "10.0.0.0/28", "at least one /24"),
    ("network_prefix", "nonsense", "network_prefix"),
    ("flavors", "tiny=0:1", "flavors"),
    ("flavors", "small=1:1", "CRTP"),
    ("shutdown_timeout", "soon", "shutdown_timeout"),
    ("name_prefix", "bad prefix!", "name_prefix"),
])
def test_bad_options_name_the_option(tmp_path: Path, key: str, value: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_settings({key: value}, tmp_path)


def test_kvm_only_when_configured(tmp_path: Path) -> None:
    assert parse_settings({"domain_type": "kvm"}, tmp_path).domain_type == "kvm"


def test_flavours_parse() -> None:
    assert parse_flavours("tiny=1:0.5, xl=8:32:80") == (Flavour("tiny", 1, 0.5), Flavour("xl", 8, 32.0, 80.0))


@given(st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True), st.integers(1, 64),
                          st.floats(0.125, 512), st.one_of(st.none(), st.floats(1, 1000))),
                unique_by=lambda item: item[0], max_size=4))
def test_flavours_round_trip(items: list[tuple[str, int, float, float | None]]) -> None:
    items = [item for item in items if item[0] not in CRTP_FLAVOURS]
    flavours = tuple(Flavour(term, cores, memory, disk) for term, cores, memory, disk in items)
    text = ",".join(f"{f.term}={f.cores}:{f.memory_gib!r}" + (f":{f.disk_gib!r}" if f.disk_gib else "")
                    for f in flavours)
    assert parse_flavours(text) == flavours


@given(st.text(max_size=40))
def test_flavours_arbitrary_text_gives_only_value_error(text: str) -> None:
    try:
        parse_flavours(text)
    except ValueError:
        pass


# ---------------------------------------------------------------------------- XML helpers


@given(st.integers(1, 64), st.integers(1, 1 << 24), st.sampled_from(["x86_64", "i686"]),
       st.one_of(st.none(), st.integers(0, 1 << 16)), st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True))
def test_domain_xml_round_trip(vcpus: int, memory_kib: int, arch: str, share: int | None, hostname: str) -> None:
    plan = lx.DomainPlan(name="vm1", uuid=str(uuid.uuid4()), domain_type="qemu", arch=arch, vcpus=vcpus,
                         memory_kib=memory_kib, hostname=hostname, share=share, root_path="/p/root.qcow2",
                         seed_path="/p/seed.iso", kernel="/k", initrd="/i", cmdline="console=ttyS0",
                         os_template="img")
    info = lx.parse_domain(lx.domain_xml(plan))
    assert (info.name, info.uuid, info.vcpus, info.memory_kib, info.arch, info.share) == (
        plan.name, plan.uuid, vcpus, memory_kib, arch, share)
    assert info.metadata["hostname"] == hostname and info.metadata["os-template"] == "img"
    assert (info.kernel, info.initrd, info.cmdline) == ("/k", "/i", "console=ttyS0")
    root = info.disk("ua-root")
    assert root is not None and root.target == "vda" and root.source == "/p/root.qcow2"
    seed = info.disk("ua-seed")
    assert seed is not None and seed.device == "cdrom"


def test_set_domain_xml_adds_and_removes_devices() -> None:
    plan = lx.DomainPlan(name="vm", uuid=str(uuid.uuid4()), domain_type="qemu", arch="x86_64", vcpus=1,
                         memory_kib=1024, hostname="h")
    xml = lx.set_domain_xml(lx.domain_xml(plan), add_device=lx.disk_xml("/v.qcow2", "qcow2", "vdb", "ua-sl-1"),
                            vcpus=3, memory_kib=4096, metadata={"hostname": "other"})
    info = lx.parse_domain(xml)
    assert info.disk("ua-sl-1") is not None and (info.vcpus, info.memory_kib) == (3, 4096)
    assert info.metadata["hostname"] == "other"
    assert lx.parse_domain(lx.set_domain_xml(xml, remove_alias="ua-sl-1")).disk("ua-sl-1") is None


def test_free_disk_target() -> None:
    assert lx.free_disk_target(["vda"]) == "vdb"
    assert lx.free_disk_target(["vda", "vdb", "hdc"]) == "vdc"
    assert lx.free_disk_target(["vda"], "/dev/vdk") == "vdk"
    with pytest.raises(BackendError, match="already has a disk"):
        lx.free_disk_target(["vda", "vdb"], "/dev/vdb")
    with pytest.raises(BackendError, match="virtio"):
        lx.free_disk_target(["vda"], "/dev/sdb")


@given(st.integers(8, 30), st.integers(0, (1 << 24) - 1))
def test_dhcp_range_stays_inside_and_skips_gateway(prefix: int, seed: int) -> None:
    net = ipaddress.ip_network((seed << 8, prefix), strict=False)
    gateway = net.network_address + 1
    first, last = lx.dhcp_range(net, gateway)
    assert first in net and last in net and first <= last
    assert gateway < first and last < net.broadcast_address


@pytest.mark.parametrize(("state", "reason", "saved", "expected"), [
    (libvirt.VIR_DOMAIN_RUNNING, 1, False, "active"),
    (libvirt.VIR_DOMAIN_BLOCKED, 0, False, "active"),
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_USER, False, "suspended"),
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_IOERROR, False, "error"),
    (libvirt.VIR_DOMAIN_PMSUSPENDED, 0, False, "suspended"),
    (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN, False, "inactive"),
    (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SAVED, True, "suspended"),
    (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED, False, "error"),
    (libvirt.VIR_DOMAIN_CRASHED, 0, False, "error"),
    (libvirt.VIR_DOMAIN_NOSTATE, 0, False, "error"),
])
def test_domain_states_map_to_occi(state: int, reason: int, saved: bool, expected: str) -> None:
    occi_state, message = _compute_state(state, reason, saved)
    assert occi_state == expected
    if expected == "error":
        assert message


# ---------------------------------------------------------------------------- images and seeds


def test_image_directory_convention(image_dir: Path) -> None:
    (image_dir / "bad name.qcow2").write_bytes(b"x")
    (image_dir / "broken.qcow2").write_bytes(b"not qcow2")
    images, problems = scan_images(image_dir)
    assert set(images) == {"tiny-linux", "plain"}
    tiny = images["tiny-linux"]
    assert tiny.title == "Tiny Linux 1.0" and tiny.virtual_size == 2 * GIB and tiny.fmt == "qcow2"
    assert tiny.kernel == str(image_dir / "tiny-linux.vmlinuz") and tiny.cmdline == "console=ttyS0"
    assert images["plain"].kernel is None
    assert len(problems) == 2 and any("broken.qcow2" in p for p in problems)


def test_sidecar_typos_are_refused(image_dir: Path) -> None:
    (image_dir / "plain.json").write_text(json.dumps({"titel": "oops"}))
    images, problems = scan_images(image_dir)
    assert "plain" not in images and any("titel" in p for p in problems)


def test_seed_iso_carries_key_and_user_data() -> None:
    seed = Seed("id-1", "web-1", ("ssh-ed25519 AAAAC3 me@host",), b"#cloud-config\nruncmd: [ls]\n")
    files = read_seed_iso(seed_iso(seed))
    meta = json.loads(files["meta-data"])
    assert meta == {"instance-id": "id-1", "local-hostname": "web-1", "public-keys": ["ssh-ed25519 AAAAC3 me@host"]}
    assert files["user-data"] == b"#cloud-config\nruncmd: [ls]\n"


@given(st.binary(max_size=2048), st.text(min_size=1, max_size=200))
def test_seed_iso_round_trip(user_data: bytes, key: str) -> None:
    files = read_seed_iso(seed_iso(Seed("i", "h", (key,), user_data)))
    assert files["user-data"] == user_data
    assert json.loads(files["meta-data"])["public-keys"] == [key]


# ---------------------------------------------------------------------------- what libvirt gets


def templates_by(drv: LibvirtDriver, family: str) -> dict[str, Any]:
    return {t.term: t for t in drv.templates() if t.family == family}


async def test_templates(drv: LibvirtDriver) -> None:
    os_tpl = templates_by(drv, "os_tpl")
    assert set(os_tpl) == {"tiny-linux", "plain"}
    assert os_tpl["tiny-linux"].title == "Tiny Linux 1.0"
    assert os_tpl["tiny-linux"].defaults == {"occi.compute.architecture": "x64"}
    flavours = templates_by(drv, "resource_tpl")
    assert set(flavours) == {"tiny", "big"}  # the CRTP sizes come from the registry
    assert flavours["big"].defaults == {"occi.compute.cores": 4, "occi.compute.memory": 8.0}


async def test_compute_definition(drv: LibvirtDriver, made: Made, virt: Any, image_dir: Path) -> None:
    observed = await made.create(ComputeSpec(
        name="web 1", cores=2, memory_gib=0.5, os_template="tiny-linux", hostname="web1.example",
        ssh_public_key="ssh-ed25519 AAAA me@host", user_data=b"#!/bin/sh\necho hi\n", share=512))
    assert observed.state == "active"
    assert observed.attributes == {"occi.compute.cores": 2, "occi.compute.memory": 0.5,
                                   "occi.compute.architecture": "x64", "occi.compute.hostname": "web1.example",
                                   "occi.compute.share": 512}
    dom = virt.lookupByUUIDString(observed.backend_id)
    assert dom.name() == drv.settings.name_prefix + "web-1"
    info = lx.parse_domain(dom.XMLDesc(0))
    assert info.kernel == str(image_dir / "tiny-linux.vmlinuz") and info.cmdline == "console=ttyS0"
    root = info.disk("ua-root")
    assert root is not None and root.target == "vda"
    volume = lx.parse_volume(virt.storageVolLookupByPath(root.source).XMLDesc(0))
    # The root disk is a copy-on-write overlay of the image, as large as the image.
    assert volume.backing == str(image_dir / "tiny-linux.qcow2") and volume.capacity == 2 * GIB
    seed = info.disk("ua-seed")
    assert seed is not None and seed.device == "cdrom"
    files = read_seed_iso(Path(seed.source).read_bytes())
    assert json.loads(files["meta-data"])["public-keys"] == ["ssh-ed25519 AAAA me@host"]
    assert json.loads(files["meta-data"])["local-hostname"] == "web1.example"
    assert files["user-data"] == b"#!/bin/sh\necho hi\n"

    await drv.delete(COMPUTE, observed.backend_id)
    assert not Path(seed.source).exists()
    with pytest.raises(libvirt.libvirtError):
        virt.storageVolLookupByPath(root.source)


async def test_flavour_sizes_the_compute_and_its_disk(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    observed = await made.create(ComputeSpec(name="sized", cores=7, memory_gib=9.0, os_template="plain",
                                             resource_template="medium"))
    # GFD.224 §3.5.2: the resource template overrides the resource's own sizes.
    assert observed.attributes["occi.compute.cores"] == 2
    assert observed.attributes["occi.compute.memory"] == 2.0
    root = lx.parse_domain(virt.lookupByUUIDString(observed.backend_id).XMLDesc(0)).disk("ua-root")
    assert root is not None
    # CRTP medium promises 20 GiB of disk: the overlay is grown past the 1 GiB image.
    assert virt.storageVolLookupByPath(root.source).info()[1] == 20 * GIB


async def test_compute_without_image_has_no_disk(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    observed = await made.create(ComputeSpec(name="bare", cores=1, memory_gib=0.25))
    assert observed.state == "active"
    assert lx.parse_domain(virt.lookupByUUIDString(observed.backend_id).XMLDesc(0)).disks == ()


async def test_hibernate_is_suspended_with_a_message(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    compute = await made.create(ComputeSpec(name="sleepy", os_template="plain"))
    observed = await drv.act(COMPUTE, compute.backend_id, "suspend", {"method": "hibernate"})
    assert observed.state == "suspended" and observed.message and "hibernated" in observed.message
    assert virt.lookupByUUIDString(compute.backend_id).hasManagedSaveImage(0)
    assert (await drv.act(COMPUTE, compute.backend_id, "start", {})).state == "active"


async def test_bad_method_is_invalid_attribute(drv: LibvirtDriver, made: Made) -> None:
    compute = await made.create(ComputeSpec(name="m", os_template="plain"))
    with pytest.raises(InvalidAttribute):
        await drv.act(COMPUTE, compute.backend_id, "stop", {"method": "yank"})


async def test_reimage_replaces_the_root_overlay(drv: LibvirtDriver, made: Made, virt: Any, image_dir: Path) -> None:
    compute = await made.create(ComputeSpec(name="re", os_template="tiny-linux"))
    dom = virt.lookupByUUIDString(compute.backend_id)
    old = lx.parse_domain(dom.XMLDesc(0)).disk("ua-root")
    assert old is not None
    observed = await drv.update(COMPUTE, compute.backend_id, {"os_template": "plain"})
    assert observed.state == "active"
    info = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    new = info.disk("ua-root")
    assert new is not None and new.source != old.source and info.kernel is None
    assert info.metadata["os-template"] == "plain"
    backing = lx.parse_volume(virt.storageVolLookupByPath(new.source).XMLDesc(0)).backing
    assert backing == str(image_dir / "plain.qcow2")
    with pytest.raises(libvirt.libvirtError):
        virt.storageVolLookupByPath(old.source)


async def test_resize_by_flavour(drv: LibvirtDriver, made: Made) -> None:
    compute = await made.create(ComputeSpec(name="grow", os_template="plain", cores=1, memory_gib=0.25))
    observed = await drv.update(COMPUTE, compute.backend_id, {"resource_template": "big"})
    assert observed.attributes["occi.compute.cores"] == 4 and observed.attributes["occi.compute.memory"] == 8.0
    # A running test domain keeps its live size: the message tells when the new one applies.
    assert observed.message and "next start" in observed.message


async def test_saved_template_survives_a_restart(drv: LibvirtDriver, made: Made, image_dir: Path,
                                                 tmp_path: Path) -> None:
    compute = await made.create(ComputeSpec(name="golden", os_template="tiny-linux"))
    template = await drv.save(compute.backend_id, "golden image!", "hot")
    assert template.term == "golden-image"
    again = LibvirtDriver.from_options(options(image_dir), tmp_path / "data")
    await again.open()
    try:
        assert "golden-image" in templates_by(again, "os_tpl")
    finally:
        await again.close()
    clone = await made.create(ComputeSpec(name="clone", os_template="golden-image"))
    assert clone.state == "active"


async def test_storage_offline_cannot_be_attached(drv: LibvirtDriver, made: Made) -> None:
    compute = await made.create(ComputeSpec(name="c", os_template="plain"))
    volume = await made.create(StorageSpec(name="v", size_gib=1.0))
    await drv.act(STORAGE, volume.backend_id, "offline", {})
    with pytest.raises(BackendError, match="offline"):
        await drv.create(StorageLinkSpec(name="l", compute_id=compute.backend_id, storage_id=volume.backend_id))


async def test_deleting_attached_storage_detaches_it(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    compute = await made.create(ComputeSpec(name="c", os_template="plain"))
    volume = await made.create(StorageSpec(name="data", size_gib=1.5))
    assert volume.attributes == {"occi.storage.size": 1.5}
    link = await made.create(StorageLinkSpec(name="l", compute_id=compute.backend_id,
                                             storage_id=volume.backend_id, deviceid="/dev/vdd"))
    assert link.attributes == {"occi.storagelink.deviceid": "/dev/vdd"}
    # test:/// cannot hot-plug: the disk is in the definition and the message says when it applies.
    assert link.message and "next start" in link.message
    with pytest.raises(BackendError, match="offline"):
        await drv.act(STORAGE, volume.backend_id, "offline", {})
    with pytest.raises(BackendError, match="already attached"):
        other = await made.create(ComputeSpec(name="c2", os_template="plain"))
        await drv.create(StorageLinkSpec(name="l2", compute_id=other.backend_id, storage_id=volume.backend_id))
    await drv.act(COMPUTE, compute.backend_id, "stop", {"method": "poweroff"})
    observed = await drv.observe(STORAGELINK, link.backend_id)
    assert observed is not None and observed.message is None
    # Deleting the storage takes its link along (the service may delete both ends at once).
    await drv.delete(STORAGE, volume.backend_id)
    assert await drv.observe(STORAGE, volume.backend_id) is None
    assert await drv.observe(STORAGELINK, link.backend_id) is None
    info = lx.parse_domain(virt.lookupByUUIDString(compute.backend_id).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert info.disk(link.backend_id.partition("/")[2]) is None


async def test_resize_is_refused_by_the_test_driver(drv: LibvirtDriver, made: Made) -> None:
    assert Capability.RESIZE_STORAGE not in drv.capabilities
    volume = await made.create(StorageSpec(name="v", size_gib=1.0))
    with pytest.raises(BackendError, match="cannot"):
        await drv.update(STORAGE, volume.backend_id, {"occi.storage.size": 2.0})
    with pytest.raises(BackendError, match="shrink"):
        await drv.update(STORAGE, volume.backend_id, {"occi.storage.size": 0.5})


async def test_network_definition(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    network = await made.create(NetworkSpec(name="lan", address="10.231.7.1/24", allocation="dynamic"))
    assert network.attributes == {"occi.network.address": "10.231.7.0/24", "occi.network.gateway": "10.231.7.1",
                                  "occi.network.allocation": "dynamic"}
    info = lx.parse_network(virt.networkLookupByUUIDString(network.backend_id).XMLDesc(0))
    assert info.dhcp and info.gateway == ipaddress.ip_address("10.231.7.1")
    static = await made.create(NetworkSpec(name="lan2", address="10.231.8.0/24", gateway="10.231.8.254",
                                           allocation="static"))
    assert static.attributes["occi.network.allocation"] == "static"
    assert static.attributes["occi.network.gateway"] == "10.231.8.254"
    with pytest.raises(BackendError, match="VLAN"):
        await drv.create(NetworkSpec(name="tagged", vlan=12))
    with pytest.raises(InvalidAttribute):
        await drv.create(NetworkSpec(name="bad", address="ten.zero"))


async def test_update_network_addressing(drv: LibvirtDriver, made: Made) -> None:
    network = await made.create(NetworkSpec(name="n"))
    observed = await drv.update(NETWORK, network.backend_id, {"occi.network.address": "10.232.1.0/24",
                                                             "occi.network.allocation": "static"})
    assert observed.state == "active"
    assert observed.attributes["occi.network.address"] == "10.232.1.0/24"
    assert observed.attributes["occi.network.allocation"] == "static"


async def test_static_address_is_a_dhcp_reservation(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    compute = await made.create(ComputeSpec(name="c", os_template="plain"))
    network = await made.create(NetworkSpec(name="n", address="10.233.0.0/24"))
    nic = await made.create(NetworkInterfaceSpec(name="nic", compute_id=compute.backend_id,
                                                 network_id=network.backend_id, address="10.233.0.50",
                                                 allocation="static"))
    assert nic.attributes["occi.networkinterface.address"] == "10.233.0.50"
    assert nic.attributes["occi.networkinterface.allocation"] == "static"
    assert nic.attributes["occi.networkinterface.gateway"] == "10.233.0.1"
    assert nic.attributes["occi.networkinterface.interface"] == "eth0"
    net = virt.networkLookupByUUIDString(network.backend_id)
    mac = str(nic.attributes["occi.networkinterface.mac"])
    assert lx.parse_network(net.XMLDesc(0)).hosts == {mac: "10.233.0.50"}
    with pytest.raises(BackendError, match="in use"):
        await drv.create(NetworkInterfaceSpec(name="nic2", compute_id=compute.backend_id,
                                              network_id=network.backend_id, address="10.233.0.50"))
    await drv.delete(NETWORKINTERFACE, nic.backend_id)
    assert lx.parse_network(net.XMLDesc(0)).hosts == {}


async def test_deleting_a_network_detaches_its_interfaces(drv: LibvirtDriver, made: Made) -> None:
    compute = await made.create(ComputeSpec(name="c", os_template="plain"))
    network = await made.create(NetworkSpec(name="n"))
    nic = await made.create(NetworkInterfaceSpec(name="nic", compute_id=compute.backend_id,
                                                 network_id=network.backend_id))
    await drv.delete(NETWORK, network.backend_id)
    assert await drv.observe(NETWORK, network.backend_id) is None
    assert await drv.observe(NETWORKINTERFACE, nic.backend_id) is None
    assert (await drv.act(COMPUTE, compute.backend_id, "restart", {"method": "cold"})).state == "active"


async def test_link_ids_survive_a_restart(drv: LibvirtDriver, made: Made, image_dir: Path, tmp_path: Path) -> None:
    compute = await made.create(ComputeSpec(name="c", os_template="plain"))
    volume = await made.create(StorageSpec(name="v", size_gib=1.0))
    link = await made.create(StorageLinkSpec(name="l", compute_id=compute.backend_id, storage_id=volume.backend_id))
    again = LibvirtDriver.from_options(options(image_dir), tmp_path / "data")
    await again.open()
    try:
        await again.adopt(STORAGELINK, link.backend_id, link)
        observed = await again.observe(STORAGELINK, link.backend_id)
        assert observed is not None and observed.attributes == link.attributes
    finally:
        await again.close()


async def test_malformed_ids_are_missing(drv: LibvirtDriver) -> None:
    for resource in ResourceType:
        assert await drv.observe(resource, "not-an-id") is None
        await drv.delete(resource, "not/an/id")


# ---------------------------------------------------------------------------- out-of-band changes


async def next_change(stream: Any, backend_id: str) -> Change:
    async def wait() -> Change:
        async for change in stream:
            if change.backend_id == backend_id:
                return change  # type: ignore[no-any-return]
        raise AssertionError("changes() ended")
    return await asyncio.wait_for(wait(), timeout=5)


async def test_lifecycle_events_become_changes(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    compute = await made.create(ComputeSpec(name="watched", os_template="plain"))
    stream = drv.changes()
    dom = virt.lookupByUUIDString(compute.backend_id)
    dom.suspend()
    change = await next_change(stream, compute.backend_id)
    assert change.resource is COMPUTE and change.observed is not None and change.observed.state == "suspended"
    dom.destroy()
    change = await next_change(stream, compute.backend_id)
    assert change.observed is not None and change.observed.state == "inactive"
    dom.undefine()
    change = await next_change(stream, compute.backend_id)
    assert change.observed is None


async def test_network_events_become_changes(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    network = await made.create(NetworkSpec(name="watched"))
    stream = drv.changes()
    virt.networkLookupByUUIDString(network.backend_id).destroy()
    change = await next_change(stream, network.backend_id)
    assert change.resource is NETWORK and change.observed is not None and change.observed.state == "inactive"


async def test_reconcile_notices_what_events_miss(image_dir: Path, tmp_path: Path, virt: Any) -> None:
    drv = LibvirtDriver.from_options(options(image_dir, reconcile_interval="0.05"), tmp_path / "data")
    await drv.open()
    try:
        volume = await drv.create(StorageSpec(name="gone", size_gib=1.0))
        stream = drv.changes()
        pool_name, _, name = volume.backend_id.partition("/")
        virt.storagePoolLookupByName(pool_name).storageVolLookupByName(name).delete(0)  # no event for this
        change = await next_change(stream, volume.backend_id)
        assert change.resource is STORAGE and change.observed is None
    finally:
        await drv.close()


async def test_adopt_restores_offline(drv: LibvirtDriver, made: Made) -> None:
    volume = await made.create(StorageSpec(name="v", size_gib=1.0))
    await drv.adopt(STORAGE, volume.backend_id, Observed(volume.backend_id, "offline"))
    observed = await drv.observe(STORAGE, volume.backend_id)
    assert observed is not None and observed.state == "offline"


async def test_close_ends_changes(drv: LibvirtDriver) -> None:
    stream = drv.changes()
    await drv.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(stream.__anext__(), timeout=2)


# ---------------------------------------------------------------------------- start-up errors


async def test_unreachable_hypervisor_is_backend_unavailable(image_dir: Path, tmp_path: Path) -> None:
    drv = LibvirtDriver.from_options(options(image_dir, uri="qemu+tcp://127.0.0.1:9/system"), tmp_path)
    with pytest.raises(BackendUnavailable, match="cannot connect to libvirt at qemu\\+tcp"):
        await drv.open()


async def test_missing_named_pool_is_a_clear_error(image_dir: Path, tmp_path: Path) -> None:
    drv = LibvirtDriver.from_options(options(image_dir, pool="no-such-pool"), tmp_path)
    with pytest.raises(BackendError, match="storage pool 'no-such-pool' does not exist.*virsh pool-define-as"):
        await drv.open()
    await drv.close()


async def test_missing_image_dir_is_a_clear_error(tmp_path: Path) -> None:
    drv = LibvirtDriver.from_options(options(tmp_path / "nowhere"), tmp_path)
    with pytest.raises(BackendError, match="build-guest.sh"):
        await drv.open()
    await drv.close()


async def test_unknown_image_names_the_offered_ones(drv: LibvirtDriver) -> None:
    with pytest.raises(BackendError, match="offered: plain, tiny-linux"):
        await drv.create(ComputeSpec(name="x", os_template="windows-95"))


async def test_failed_create_leaves_nothing(drv: LibvirtDriver, virt: Any) -> None:
    pool = virt.storagePoolLookupByName(drv.settings.pool)
    before = set(pool.listVolumes())
    with pytest.raises(InvalidAttribute):
        await drv.create(ComputeSpec(name="x", os_template="plain", architecture="arm64"))
    with pytest.raises(BackendError, match="Memory size"):
        # 1e-9 GiB rounds to 0 KiB, which libvirt refuses after the overlay and seed exist.
        await drv.create(ComputeSpec(name="x", os_template="plain", memory_gib=1e-9))
    assert set(pool.listVolumes()) == before
    assert not [d for d in virt.listAllDomains(0) if d.name().startswith(drv.settings.name_prefix)]

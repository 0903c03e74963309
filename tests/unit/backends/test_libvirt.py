"""The libvirt driver against libvirt's in-process test:///default driver (no daemon).

First the shared driver contract suite, then what only this driver does: the domain, volume and
network definitions it writes, the metadata that carries entity ids and link names, the NoCloud
seed, image handling, state mapping, out-of-band changes and the start-up errors. The real
qemu:///system run is tests/integration/test_libvirt_live.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import struct
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

libvirt = pytest.importorskip(
    "libvirt", reason="libvirt-python is the libvirt extra: uv sync --extra libvirt"
)

from occipy.backends import _libvirt_xml as lx
from occipy.backends import load_driver_class
from occipy.backends._libvirt_compute import _compute_state
from occipy.backends._libvirt_local import (
    CRTP_FLAVOURS,
    MAX_TAG,
    Flavour,
    Seed,
    decode_tag,
    encode_tag,
    parse_flavours,
    parse_settings,
    read_seed_iso,
    scan_images,
    seed_iso,
)
from occipy.backends.base import (
    COMPUTE,
    FLAVOUR,
    IMAGE,
    NETWORK,
    NETWORKINTERFACE,
    STORAGE,
    STORAGELINK,
    Adopts,
    Change,
    ComputeFacts,
    ComputeSpec,
    ComputeUpdate,
    Driver,
    Inventories,
    NetworkFacts,
    NetworkInterfaceFacts,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    Offline,
    Proposes,
    Ref,
    Restart,
    Save,
    Saves,
    Start,
    Stop,
    StorageFacts,
    StorageLinkFacts,
    StorageLinkSpec,
    StorageSpec,
    StorageUpdate,
    Suspend,
    Template,
    Updates,
    Watches,
)
from occipy.backends.libvirt import LibvirtDriver
from occipy.errors import BackendError, BackendUnavailable, NotSupported

from .contract import DriverContract, Made

URI = "test:///default"
GIB = 1024**3


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
    sidecar = {
        "title": "Tiny Linux 1.0",
        "architecture": "x64",
        "kernel": "tiny-linux.vmlinuz",
        "initrd": "tiny-linux.initrd.gz",
        "cmdline": "console=ttyS0",
    }
    (images / "tiny-linux.json").write_text(json.dumps(sidecar))
    fake_qcow2(images / "plain.qcow2", 1 * GIB)  # no sidecar: boots from its disk
    (images / "notes.txt").write_text("not an image")
    return images


def options(image_dir: Path, **extra: str) -> dict[str, str]:
    values = {
        "uri": URI,
        "image_dir": str(image_dir),
        "name_prefix": f"t{uuid.uuid4().hex[:6]}-",
        "reconcile_interval": "0",
    }
    values.update(extra)
    return values


@pytest.fixture
async def drv(image_dir: Path, tmp_path: Path) -> AsyncIterator[LibvirtDriver]:
    driver = LibvirtDriver.from_options(
        options(image_dir, flavors="tiny=1:0.25,big=4:8:30"), tmp_path / "data"
    )
    await driver.open()
    yield driver
    await driver.close()


@pytest.fixture
async def made(drv: LibvirtDriver) -> AsyncIterator[Made]:
    made = Made(drv)
    yield made
    await made.cleanup()


@pytest.fixture
def virt() -> Iterator[Any]:
    """A second connection: somebody using libvirt behind occipy's back."""
    conn = libvirt.open(URI)
    yield conn
    conn.close()


def ref(resource: str, observed: Observed) -> Ref:
    return Ref(resource, observed.backend_id)


def facts(observed: Observed | None) -> Any:
    assert observed is not None
    return observed.facts


# ---------------------------------------------------------------------------- the contract


class TestLibvirtContract(DriverContract):
    @pytest.fixture
    async def driver(self, image_dir: Path, tmp_path: Path) -> AsyncIterator[LibvirtDriver]:
        driver = LibvirtDriver.from_options(options(image_dir, flavors="small2=2:0.75"), tmp_path / "data")
        await driver.open()
        yield driver
        await driver.close()

    async def change_outside(self, driver: Driver, ref: Ref, state: str | None) -> None:
        conn = libvirt.open(URI)  # test:///default: one state per process, seen by every connection
        try:
            dom = conn.lookupByUUIDString(ref.backend_id)
            assert state in ("inactive", None)
            if dom.isActive():
                dom.destroy()
            if state is None:
                dom.undefine()
        finally:
            conn.close()

    async def unreachable(self) -> Driver | None:
        # Port 9 (discard) on the loopback: nothing answers libvirt's protocol there.
        data_dir = Path(tempfile.gettempdir()) / "occipy-unreachable"
        return LibvirtDriver.from_options(
            {"uri": "qemu+tcp://127.0.0.1:9/system", "image_dir": str(data_dir)}, data_dir
        )


# ---------------------------------------------------------------------------- settings


def test_registered_under_its_name() -> None:
    assert load_driver_class("libvirt") is LibvirtDriver


def test_implements_the_optional_protocols(tmp_path: Path) -> None:
    drv = LibvirtDriver.from_options({"uri": URI}, tmp_path)
    for protocol in (Updates, Saves, Watches, Adopts, Inventories, Proposes):
        assert isinstance(drv, protocol), protocol.__name__
    checked: tuple[Driver, Updates, Saves, Watches, Adopts, Inventories, Proposes] = (
        drv,
        drv,
        drv,
        drv,
        drv,
        drv,
        drv,
    )  # mypy checks the signatures
    assert all(checked)


def test_defaults(tmp_path: Path) -> None:
    settings = parse_settings({}, tmp_path)
    assert settings.uri == "qemu:///system"
    assert settings.pool == "occipy"
    assert settings.domain_type == "qemu"  # never kvm unless asked (ecosystem.md §1a)
    assert settings.image_dir == (tmp_path / "libvirt" / "images").resolve()
    assert settings.flavours == ()
    assert settings.flavour("medium") == CRTP_FLAVOURS["medium"]


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("colour", "blue", "unknown libvirt driver option"),
        ("domain_type", "xen", "qemu or kvm"),
        ("network_prefix", "10.0.0.0/28", "at least one /24"),
        ("network_prefix", "nonsense", "network_prefix"),
        ("flavors", "tiny=0:1", "flavors"),
        ("flavors", "small=1:1", "CRTP"),
        ("shutdown_timeout", "soon", "shutdown_timeout"),
        ("name_prefix", "bad prefix!", "name_prefix"),
        ("name_prefix", "a+b", "name_prefix"),  # "+" separates a volume's entity tag
    ],
)
def test_bad_options_name_the_option(tmp_path: Path, key: str, value: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_settings({key: value}, tmp_path)


def test_kvm_only_when_configured(tmp_path: Path) -> None:
    assert parse_settings({"domain_type": "kvm"}, tmp_path).domain_type == "kvm"


def test_flavours_parse() -> None:
    assert parse_flavours("tiny=1:0.5, xl=8:32:80") == (Flavour("tiny", 1, 0.5), Flavour("xl", 8, 32.0, 80.0))


@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True),
            st.integers(1, 64),
            st.floats(0.125, 512),
            st.one_of(st.none(), st.floats(1, 1000)),
        ),
        unique_by=lambda item: item[0],
        max_size=4,
    )
)
def test_flavours_round_trip(items: list[tuple[str, int, float, float | None]]) -> None:
    items = [item for item in items if item[0] not in CRTP_FLAVOURS]
    flavours = tuple(Flavour(name, cores, memory, disk) for name, cores, memory, disk in items)
    text = ",".join(
        f"{f.name}={f.cores}:{f.memory_gib!r}" + (f":{f.disk_gib!r}" if f.disk_gib else "") for f in flavours
    )
    assert parse_flavours(text) == flavours


@given(st.text(max_size=40))
def test_flavours_arbitrary_text_gives_only_value_error(text: str) -> None:
    try:
        parse_flavours(text)
    except ValueError:
        pass


# ---------------------------------------------------------------------------- XML and name helpers


@given(
    st.integers(1, 64),
    st.integers(1, 1 << 24),
    st.sampled_from(["x86_64", "i686"]),
    st.one_of(st.none(), st.integers(0, 1 << 16)),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    st.text(max_size=60),
)
def test_domain_xml_round_trip(
    vcpus: int, memory_kib: int, arch: str, share: int | None, hostname: str, entity_id: str
) -> None:
    entity_id = "".join(c for c in entity_id if c.isprintable()).strip()
    plan = lx.DomainPlan(
        name="vm1",
        uuid=str(uuid.uuid4()),
        domain_type="qemu",
        arch=arch,
        vcpus=vcpus,
        memory_kib=memory_kib,
        hostname=hostname,
        share=share,
        root_path="/p/root.qcow2",
        seed_path="/p/seed.iso",
        kernel="/k",
        initrd="/i",
        cmdline="console=ttyS0",
        image="img",
        flavour="big",
        entity_id=entity_id,
    )
    info = lx.parse_domain(lx.domain_xml(plan))
    assert (info.name, info.uuid, info.vcpus, info.memory_kib, info.arch, info.share) == (
        plan.name,
        plan.uuid,
        vcpus,
        memory_kib,
        arch,
        share,
    )
    assert info.metadata["hostname"] == hostname
    assert (info.metadata["os-template"], info.metadata["resource-template"]) == ("img", "big")
    assert info.metadata.get("entity", "") == entity_id
    assert (info.kernel, info.initrd, info.cmdline) == ("/k", "/i", "console=ttyS0")
    root = info.disk("ua-root")
    assert root is not None and root.target == "vda" and root.source == "/p/root.qcow2"
    seed = info.disk("ua-seed")
    assert seed is not None and seed.device == "cdrom"


def _plain_domain() -> str:
    plan = lx.DomainPlan(
        name="vm",
        uuid=str(uuid.uuid4()),
        domain_type="qemu",
        arch="x86_64",
        vcpus=1,
        memory_kib=1024,
        hostname="h",
    )
    return lx.domain_xml(plan)


def test_set_domain_xml_adds_and_removes_devices() -> None:
    xml = lx.set_domain_xml(
        _plain_domain(),
        add_device=lx.disk_xml("/v.qcow2", "qcow2", "vdb", "ua-sl-1"),
        vcpus=3,
        memory_kib=4096,
        metadata={"hostname": "other"},
    )
    info = lx.parse_domain(xml)
    assert info.disk("ua-sl-1") is not None and (info.vcpus, info.memory_kib) == (3, 4096)
    assert info.metadata["hostname"] == "other"
    assert lx.parse_domain(lx.set_domain_xml(xml, remove_alias="ua-sl-1")).disk("ua-sl-1") is None


def test_link_metadata() -> None:
    nic = lx.LinkMeta("ua-nic-1", entity_id="urn:uuid:1", interface="eth3")
    disk = lx.LinkMeta("ua-sl-1", entity_id="/storagelink/x", mountpoint="/srv")
    xml = lx.set_domain_xml(lx.set_domain_xml(_plain_domain(), add_link=nic), add_link=disk)
    info = lx.parse_domain(xml)
    assert info.links == (nic, disk) and info.link("ua-sl-1") == disk
    assert "link" not in info.metadata  # link records are not plain metadata keys
    replaced = lx.parse_domain(lx.set_domain_xml(xml, add_link=dataclasses.replace(nic, interface="eth4")))
    assert (
        replaced.link("ua-nic-1") == dataclasses.replace(nic, interface="eth4") and len(replaced.links) == 2
    )
    assert lx.parse_domain(lx.set_domain_xml(xml, forget_link="ua-nic-1")).links == (disk,)
    assert lx.parse_domain(lx.set_domain_xml(xml, remove_alias="ua-sl-1")).links == (nic,)


def test_network_xml_carries_the_entity_id() -> None:
    net = ipaddress.ip_network("10.9.0.0/24")
    xml = lx.network_xml("n", net, ipaddress.ip_address("10.9.0.1"), True, entity_id="urn:uuid:7")
    assert lx.parse_network(xml).entity_id == "urn:uuid:7"
    assert lx.parse_network(lx.network_xml("n", net, ipaddress.ip_address("10.9.0.1"), True)).entity_id == ""


@given(st.text(max_size=50))
def test_volume_tags_round_trip(entity_id: str) -> None:
    tag = encode_tag(entity_id)
    if tag is None:
        assert entity_id == "" or len(entity_id.encode()) * 3 > MAX_TAG
        return
    assert decode_tag(tag) == entity_id
    assert set(tag) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


def test_volume_tags_are_readable() -> None:
    assert encode_tag("urn:uuid:0e9c") == "urn_3auuid_3a0e9c"
    assert encode_tag("x" * (MAX_TAG + 1)) is None
    assert decode_tag("not+a tag") is None


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
    net = ipaddress.IPv4Network((seed << 8, prefix), strict=False)
    gateway = net.network_address + 1
    first, last = lx.dhcp_range(net, gateway)
    assert isinstance(first, ipaddress.IPv4Address) and isinstance(last, ipaddress.IPv4Address)
    assert first in net and last in net and first <= last
    assert gateway < first and last < net.broadcast_address


@pytest.mark.parametrize(
    ("state", "reason", "saved", "expected"),
    [
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
    ],
)
def test_domain_states_map_to_state_words(state: int, reason: int, saved: bool, expected: str) -> None:
    word, message = _compute_state(state, reason, saved)
    assert word == expected
    if expected == "error":
        assert message


# ---------------------------------------------------------------------------- images and seeds


def test_image_directory_convention(image_dir: Path) -> None:
    fake_qcow2(image_dir / "Ubuntu 24.04.qcow2", GIB)  # a provider name, not an OCCI term: fine
    (image_dir / ".hidden.qcow2").write_bytes(b"x")
    (image_dir / "broken.qcow2").write_bytes(b"not qcow2")
    images, problems = scan_images(image_dir)
    assert set(images) == {"tiny-linux", "plain", "Ubuntu 24.04"}
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
    assert meta == {
        "instance-id": "id-1",
        "local-hostname": "web-1",
        "public-keys": ["ssh-ed25519 AAAAC3 me@host"],
    }
    assert files["user-data"] == b"#cloud-config\nruncmd: [ls]\n"


@given(st.binary(max_size=2048), st.text(min_size=1, max_size=200))
def test_seed_iso_round_trip(user_data: bytes, key: str) -> None:
    files = read_seed_iso(seed_iso(Seed("i", "h", (key,), user_data)))
    assert files["user-data"] == user_data
    assert json.loads(files["meta-data"])["public-keys"] == [key]


# ---------------------------------------------------------------------------- what libvirt gets


def templates_by(drv: LibvirtDriver, family: str) -> dict[str, Template]:
    return {t.name: t for t in drv.templates() if t.family == family}


async def test_templates(drv: LibvirtDriver) -> None:
    images = templates_by(drv, IMAGE)
    assert set(images) == {"tiny-linux", "plain"}
    assert images["tiny-linux"] == Template(IMAGE, "tiny-linux", "Tiny Linux 1.0", architecture="x64")
    flavours = templates_by(drv, FLAVOUR)
    assert set(flavours) == {"tiny", "big"}  # the CRTP sizes come from the registry
    assert (flavours["big"].cores, flavours["big"].memory_gib, flavours["big"].disk_gib) == (4, 8.0, 30.0)


async def test_supports(drv: LibvirtDriver) -> None:
    assert drv.supports[COMPUTE].actions == {"start", "stop", "restart", "suspend", "save"}
    assert drv.supports[COMPUTE].updates == {"cores", "memory_gib", "architecture", "image", "flavour"}
    assert drv.supports[STORAGE].updates == frozenset()  # test:/// has no volume resize
    assert drv.supports[NETWORK].actions == {"up", "down"}


async def test_compute_definition(drv: LibvirtDriver, made: Made, virt: Any, image_dir: Path) -> None:
    observed = await made.create(
        ComputeSpec(
            name="web 1",
            cores=2,
            memory_gib=0.5,
            image="tiny-linux",
            hostname="web1.example",
            ssh_public_key="ssh-ed25519 AAAA me@host",
            user_data=b"#!/bin/sh\necho hi\n",
            share=512,
            entity_id="urn:uuid:0e9c0000-0000-4000-8000-000000000001",
        )
    )
    assert observed.state == "active"
    assert observed.facts == ComputeFacts(
        cores=2, memory_gib=0.5, architecture="x64", hostname="web1.example"
    )
    dom = virt.lookupByUUIDString(observed.backend_id)
    assert dom.name() == drv.settings.name_prefix + "web-1"
    info = lx.parse_domain(dom.XMLDesc(0))
    assert info.share == 512
    assert info.metadata["entity"] == "urn:uuid:0e9c0000-0000-4000-8000-000000000001"
    assert info.metadata["os-template"] == "tiny-linux"
    assert info.kernel == str(image_dir / "tiny-linux.vmlinuz") and info.cmdline == "console=ttyS0"
    root = info.disk("ua-root")
    assert root is not None and root.target == "vda" and root.source is not None
    volume = lx.parse_volume(virt.storageVolLookupByPath(root.source).XMLDesc(0))
    # The root disk is a copy-on-write overlay of the image, as large as the image.
    assert volume.backing == str(image_dir / "tiny-linux.qcow2") and volume.capacity == 2 * GIB
    seed = info.disk("ua-seed")
    assert seed is not None and seed.device == "cdrom" and seed.source is not None
    files = read_seed_iso(Path(seed.source).read_bytes())
    assert json.loads(files["meta-data"])["public-keys"] == ["ssh-ed25519 AAAA me@host"]
    assert json.loads(files["meta-data"])["local-hostname"] == "web1.example"
    assert files["user-data"] == b"#!/bin/sh\necho hi\n"

    await drv.delete(ref(COMPUTE, observed))
    assert not Path(seed.source).exists()
    with pytest.raises(libvirt.libvirtError):
        virt.storageVolLookupByPath(root.source)


async def test_flavour_sizes_the_compute_and_its_disk(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    observed = await made.create(
        ComputeSpec(name="sized", cores=7, memory_gib=9.0, image="plain", flavour="medium")
    )
    # GFD.224 §3.5.2: the resource template overrides the resource's own sizes.
    assert (facts(observed).cores, facts(observed).memory_gib) == (2, 2.0)
    root = lx.parse_domain(virt.lookupByUUIDString(observed.backend_id).XMLDesc(0)).disk("ua-root")
    assert root is not None
    # CRTP medium promises 20 GiB of disk: the overlay is grown past the 1 GiB image.
    assert virt.storageVolLookupByPath(root.source).info()[1] == 20 * GIB


async def test_unknown_flavour_is_refused(drv: LibvirtDriver, made: Made) -> None:
    with pytest.raises(BackendError, match="no flavour 'huge' .offered: tiny, big"):
        await made.create(ComputeSpec(name="x", image="plain", flavour="huge"))
    compute = await made.create(ComputeSpec(name="x", image="plain"))
    with pytest.raises(BackendError, match="no flavour"):
        await drv.update(ref(COMPUTE, compute), ComputeUpdate(flavour="huge"))


async def test_compute_without_image_has_no_disk(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    observed = await made.create(ComputeSpec(name="bare", cores=1, memory_gib=0.25))
    assert observed.state == "active"
    assert lx.parse_domain(virt.lookupByUUIDString(observed.backend_id).XMLDesc(0)).disks == ()


async def test_hibernate_is_suspended_with_a_message(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    compute = await made.create(ComputeSpec(name="sleepy", image="plain"))
    observed = await drv.act(ref(COMPUTE, compute), Suspend(method="hibernate"))
    assert observed.state == "suspended" and observed.message and "hibernated" in observed.message
    assert virt.lookupByUUIDString(compute.backend_id).hasManagedSaveImage(0)
    assert (await drv.act(ref(COMPUTE, compute), Start())).state == "active"


async def test_unknown_method_is_not_supported(drv: LibvirtDriver, made: Made) -> None:
    compute = await made.create(ComputeSpec(name="m", image="plain"))
    for action in (Stop(method="yank"), Restart(method="kick"), Suspend(method="nap")):
        with pytest.raises(NotSupported, match="method"):
            await drv.act(ref(COMPUTE, compute), action)
    with pytest.raises(NotSupported, match="method"):
        await drv.save(ref(COMPUTE, compute), Save(method="lukewarm"))
    assert facts(await drv.observe(ref(COMPUTE, compute))) == compute.facts


async def test_reimage_replaces_the_root_overlay(
    drv: LibvirtDriver, made: Made, virt: Any, image_dir: Path
) -> None:
    compute = await made.create(ComputeSpec(name="re", image="tiny-linux"))
    dom = virt.lookupByUUIDString(compute.backend_id)
    old = lx.parse_domain(dom.XMLDesc(0)).disk("ua-root")
    assert old is not None
    observed = await drv.update(ref(COMPUTE, compute), ComputeUpdate(image="plain"))
    assert observed.state == "active"
    info = lx.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    new = info.disk("ua-root")
    assert new is not None and new.source != old.source and info.kernel is None
    assert info.metadata["os-template"] == "plain"
    backing = lx.parse_volume(virt.storageVolLookupByPath(new.source).XMLDesc(0)).backing
    assert backing == str(image_dir / "plain.qcow2")
    with pytest.raises(libvirt.libvirtError):
        virt.storageVolLookupByPath(old.source)


async def test_resize_by_flavour_and_sizes(drv: LibvirtDriver, made: Made) -> None:
    compute = await made.create(ComputeSpec(name="grow", image="plain", cores=1, memory_gib=0.25))
    observed = await drv.update(ref(COMPUTE, compute), ComputeUpdate(flavour="big"))
    assert (facts(observed).cores, facts(observed).memory_gib) == (4, 8.0)
    # A running test domain keeps its live size: the message tells when the new one applies.
    assert observed.message and "next start" in observed.message
    observed = await drv.update(ref(COMPUTE, compute), ComputeUpdate(cores=3, architecture="x86"))
    assert (facts(observed).cores, facts(observed).architecture) == (3, "x86")
    with pytest.raises(BackendError, match="sparc"):
        await drv.update(ref(COMPUTE, compute), ComputeUpdate(architecture="sparc"))
    with pytest.raises(BackendError, match="cores"):
        await drv.update(ref(COMPUTE, compute), ComputeUpdate(cores=0))


async def test_saved_image_survives_a_restart(
    drv: LibvirtDriver, made: Made, image_dir: Path, tmp_path: Path
) -> None:
    compute = await made.create(ComputeSpec(name="golden", image="tiny-linux"))
    template = await drv.save(ref(COMPUTE, compute), Save("golden image!", "hot"))
    # The provider's own name, as the client gave it (the service makes the OCCI term).
    assert template == Template(
        IMAGE,
        "golden image!",
        f"Snapshot golden image! of compute {drv.settings.name_prefix}golden (from tiny-linux)",
        architecture="x64",
    )
    again = await drv.save(ref(COMPUTE, compute), Save("golden image!", "deferred"))
    assert again.name == "golden image!-2"
    unnamed = await drv.save(ref(COMPUTE, compute), Save())
    assert unnamed.name == "golden-snapshot-1"
    restarted = LibvirtDriver.from_options(options(image_dir), tmp_path / "data")
    await restarted.open()
    try:
        assert {"golden image!", "golden image!-2", "golden-snapshot-1"} <= set(
            templates_by(restarted, IMAGE)
        )
    finally:
        await restarted.close()
    clone = await made.create(ComputeSpec(name="clone", image="golden image!"))
    assert clone.state == "active"


async def test_save_as_an_action(drv: LibvirtDriver, made: Made) -> None:
    compute = await made.create(ComputeSpec(name="snap", image="plain"))
    observed = await drv.act(ref(COMPUTE, compute), Save("via-act"))
    assert observed.state == "active" and observed.message == "saved as image via-act"
    assert "via-act" in templates_by(drv, IMAGE)


async def test_saved_records_from_before_names_still_load(drv: LibvirtDriver, tmp_path: Path) -> None:
    # A record written when images had "term"s.
    record = {
        "term": "old-snap",
        "title": "Snapshot old-snap",
        "path": str(tmp_path / "old.qcow2"),
        "fmt": "qcow2",
        "virtual_size": GIB,
    }
    (drv.settings.template_dir / "old-snap.json").write_text(json.dumps(record))
    await drv._run("rescanning", drv._rescan_images)
    assert templates_by(drv, IMAGE)["old-snap"].title == "Snapshot old-snap"


async def test_storage_offline_cannot_be_attached(drv: LibvirtDriver, made: Made) -> None:
    compute = await made.create(ComputeSpec(name="c", image="plain"))
    volume = await made.create(StorageSpec(name="v", size_gib=1.0))
    await drv.act(ref(STORAGE, volume), Offline())
    with pytest.raises(BackendError, match="offline"):
        await drv.create(
            StorageLinkSpec(name="l", compute_id=compute.backend_id, storage_id=volume.backend_id)
        )


async def test_deleting_attached_storage_detaches_it(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    compute = await made.create(ComputeSpec(name="c", image="plain"))
    volume = await made.create(StorageSpec(name="data", size_gib=1.5))
    assert volume.facts == StorageFacts(size_gib=1.5)
    link = await made.create(
        StorageLinkSpec(
            name="l",
            compute_id=compute.backend_id,
            storage_id=volume.backend_id,
            device="/dev/vdd",
            entity_id="urn:uuid:5",
        )
    )
    assert link.facts == StorageLinkFacts(device="/dev/vdd")
    # test:/// cannot hot-plug: the disk is in the definition and the message says when it applies.
    assert link.message and "next start" in link.message
    with pytest.raises(BackendError, match="offline"):
        await drv.act(ref(STORAGE, volume), Offline())
    other = await made.create(ComputeSpec(name="c2", image="plain"))
    with pytest.raises(BackendError, match="already attached"):
        await drv.create(
            StorageLinkSpec(name="l2", compute_id=other.backend_id, storage_id=volume.backend_id)
        )
    await drv.act(ref(COMPUTE, compute), Stop(method="poweroff"))
    observed = await drv.observe(ref(STORAGELINK, link))
    assert observed is not None and observed.message is None
    # Deleting the storage takes its link along (the service may delete both ends at once).
    await drv.delete(ref(STORAGE, volume))
    assert await drv.observe(ref(STORAGE, volume)) is None
    assert await drv.observe(ref(STORAGELINK, link)) is None
    info = lx.parse_domain(
        virt.lookupByUUIDString(compute.backend_id).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    )
    alias = link.backend_id.partition("/")[2]
    assert info.disk(alias) is None and info.link(alias) is None  # the metadata went with the device


async def test_resize_is_not_supported_by_the_test_driver(drv: LibvirtDriver, made: Made) -> None:
    assert "size_gib" not in drv.supports[STORAGE].updates
    volume = await made.create(StorageSpec(name="v", size_gib=1.0))
    with pytest.raises(NotSupported, match="cannot resize"):
        await drv.update(ref(STORAGE, volume), StorageUpdate(size_gib=2.0))
    with pytest.raises(BackendError, match="does not exist"):
        await drv.update(Ref(STORAGE, f"{drv.settings.pool}/missing.qcow2"), StorageUpdate(size_gib=2.0))


async def test_network_definition(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    network = await made.create(NetworkSpec(name="lan", address="10.231.7.1/24", allocation="dynamic"))
    assert network.facts == NetworkFacts(address="10.231.7.0/24", gateway="10.231.7.1", allocation="dynamic")
    info = lx.parse_network(virt.networkLookupByUUIDString(network.backend_id).XMLDesc(0))
    assert info.dhcp and info.gateway == ipaddress.ip_address("10.231.7.1")
    static = await made.create(
        NetworkSpec(name="lan2", address="10.231.8.0/24", gateway="10.231.8.254", allocation="static")
    )
    assert static.facts == NetworkFacts(address="10.231.8.0/24", gateway="10.231.8.254", allocation="static")
    with pytest.raises(BackendError, match="VLAN"):
        await drv.create(NetworkSpec(name="tagged", vlan=12))
    with pytest.raises(BackendError, match="CIDR"):
        await drv.create(NetworkSpec(name="bad", address="ten.zero"))
    with pytest.raises(BackendError, match="allocation"):
        await drv.create(NetworkSpec(name="bad", allocation="sometimes"))


async def test_networks_cannot_be_updated(drv: LibvirtDriver, made: Made) -> None:
    # base.py has no network update value: re-addressing a network is not offered.
    network = await made.create(NetworkSpec(name="n"))
    assert drv.supports[NETWORK].updates == frozenset()
    with pytest.raises(NotSupported):
        await drv.update(ref(NETWORK, network), StorageUpdate(size_gib=1))


async def test_static_address_is_a_dhcp_reservation(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    compute = await made.create(ComputeSpec(name="c", image="plain"))
    network = await made.create(NetworkSpec(name="n", address="10.233.0.0/24"))
    nic = await made.create(
        NetworkInterfaceSpec(
            name="nic",
            compute_id=compute.backend_id,
            network_id=network.backend_id,
            address="10.233.0.50",
            allocation="static",
        )
    )
    reported = facts(nic)
    assert (reported.address, reported.allocation, reported.gateway) == (
        "10.233.0.50",
        "static",
        "10.233.0.1",
    )
    assert reported.interface == "eth0"
    net = virt.networkLookupByUUIDString(network.backend_id)
    assert lx.parse_network(net.XMLDesc(0)).hosts == {reported.mac: "10.233.0.50"}
    with pytest.raises(BackendError, match="in use"):
        await drv.create(
            NetworkInterfaceSpec(
                name="nic2",
                compute_id=compute.backend_id,
                network_id=network.backend_id,
                address="10.233.0.50",
            )
        )
    await drv.delete(ref(NETWORKINTERFACE, nic))
    assert lx.parse_network(net.XMLDesc(0)).hosts == {}


async def test_interface_names_and_macs(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    compute = await made.create(ComputeSpec(name="c", image="plain"))
    network = await made.create(NetworkSpec(name="n"))
    spec = NetworkInterfaceSpec(name="nic", compute_id=compute.backend_id, network_id=network.backend_id)
    unnamed = facts(await made.create(spec))
    assert unnamed.interface == "eth0" and unnamed.mac.startswith("52:54:00:")  # by PCI order
    # A proposed (or client-given) name is recorded in the metadata and reported as is.
    named = await made.create(dataclasses.replace(spec, interface="eth7", mac="52:54:00:AB:CD:EF"))
    assert (facts(named).interface, facts(named).mac) == ("eth7", "52:54:00:ab:cd:ef")
    info = lx.parse_domain(
        virt.lookupByUUIDString(compute.backend_id).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    )
    assert info.link(named.backend_id.partition("/")[2]) == lx.LinkMeta(
        named.backend_id.partition("/")[2], interface="eth7"
    )
    with pytest.raises(BackendError, match="already has an interface eth7"):
        await drv.create(dataclasses.replace(spec, interface="eth7"))
    with pytest.raises(BackendError, match="already has an interface eth0"):  # the unnamed one's
        await drv.create(dataclasses.replace(spec, interface="eth0"))
    with pytest.raises(BackendError, match="already in use"):
        await drv.create(dataclasses.replace(spec, mac="52:54:00:ab:cd:ef"))
    with pytest.raises(BackendError, match="not a MAC"):
        await drv.create(dataclasses.replace(spec, mac="52:54"))
    await drv.delete(ref(NETWORKINTERFACE, named))
    info = lx.parse_domain(
        virt.lookupByUUIDString(compute.backend_id).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    )
    assert info.links == ()


async def test_proposals(drv: LibvirtDriver) -> None:
    link = StorageLinkSpec(name="l", compute_id="c", storage_id="s", mountpoint="/srv")
    assert drv.propose(link, []) == StorageLinkFacts(device="/dev/vdb", mountpoint="/srv")
    taken = [StorageLinkFacts(device="/dev/vdb"), StorageLinkFacts(device="/dev/vdd")]
    assert drv.propose(link, taken) == StorageLinkFacts(device="/dev/vdc", mountpoint="/srv")
    nic = NetworkInterfaceSpec(name="n", compute_id="c", network_id="n")
    proposal = drv.propose(nic, [NetworkInterfaceFacts(interface="eth0", mac="52:54:00:00:00:01")])
    assert isinstance(proposal, NetworkInterfaceFacts)
    assert proposal.interface == "eth1" and str(proposal.mac).startswith("52:54:00:")
    assert proposal.mac != "52:54:00:00:00:01"
    assert drv.propose(NetworkSpec(name="n"), []) is None


async def test_deleting_a_network_detaches_its_interfaces(drv: LibvirtDriver, made: Made) -> None:
    compute = await made.create(ComputeSpec(name="c", image="plain"))
    network = await made.create(NetworkSpec(name="n"))
    nic = await made.create(
        NetworkInterfaceSpec(name="nic", compute_id=compute.backend_id, network_id=network.backend_id)
    )
    await drv.delete(ref(NETWORK, network))
    assert await drv.observe(ref(NETWORK, network)) is None
    assert await drv.observe(ref(NETWORKINTERFACE, nic)) is None
    assert (await drv.act(ref(COMPUTE, compute), Restart(method="cold"))).state == "active"


async def test_link_ids_survive_a_restart(
    drv: LibvirtDriver, made: Made, image_dir: Path, tmp_path: Path
) -> None:
    compute = await made.create(ComputeSpec(name="c", image="plain"))
    volume = await made.create(StorageSpec(name="v", size_gib=1.0))
    link = await made.create(
        StorageLinkSpec(
            name="l", compute_id=compute.backend_id, storage_id=volume.backend_id, mountpoint="/m"
        )
    )
    assert facts(link).mountpoint == "/m"
    again = LibvirtDriver.from_options(options(image_dir), tmp_path / "data")
    await again.open()
    try:
        await again.adopt(ref(STORAGELINK, link), link)
        observed = await again.observe(ref(STORAGELINK, link))
        assert observed is not None and observed.facts == link.facts
    finally:
        await again.close()


async def test_malformed_ids_are_missing(drv: LibvirtDriver) -> None:
    for resource in drv.supports:
        assert await drv.observe(Ref(resource, "not-an-id")) is None
        await drv.delete(Ref(resource, "not/an/id"))
    assert await drv.observe(Ref("ipreservation", "x")) is None  # a type this driver never makes


# ---------------------------------------------------------------------------- inventory


async def test_inventory_reads_what_libvirt_keeps(
    drv: LibvirtDriver, made: Made, virt: Any, image_dir: Path, tmp_path: Path
) -> None:
    compute = await made.create(ComputeSpec(name="c", image="plain", entity_id="urn:uuid:c"))
    volume = await made.create(StorageSpec(name="data", size_gib=1, entity_id="urn:uuid:v"))
    plain_volume = await made.create(StorageSpec(name="data", size_gib=1))
    network = await made.create(NetworkSpec(name="n", entity_id="urn:uuid:n"))
    link = await made.create(
        StorageLinkSpec(
            name="l",
            compute_id=compute.backend_id,
            storage_id=plain_volume.backend_id,
            entity_id="urn:uuid:l",
        )
    )
    nic = await made.create(
        NetworkInterfaceSpec(
            name="i", compute_id=compute.backend_id, network_id=network.backend_id, entity_id="urn:uuid:i"
        )
    )
    # The volume's name carries the id; everything else carries it in occipy's metadata element.
    assert volume.backend_id == f"{drv.settings.pool}/{drv.settings.name_prefix}data+urn_3auuid_3av.qcow2"
    assert plain_volume.backend_id == f"{drv.settings.pool}/{drv.settings.name_prefix}data.qcow2"
    net_xml = virt.networkLookupByUUIDString(network.backend_id).XMLDesc(0)
    assert lx.parse_network(net_xml).entity_id == "urn:uuid:n"
    expected = {
        ref(COMPUTE, compute): "urn:uuid:c",
        ref(STORAGE, volume): "urn:uuid:v",
        ref(NETWORK, network): "urn:uuid:n",
        ref(STORAGELINK, link): "urn:uuid:l",
        ref(NETWORKINTERFACE, nic): "urn:uuid:i",
    }
    # A driver that knows nothing yet (after a crash) finds them all in libvirt; another
    # name_prefix (another occipy on the same libvirt) sees none of them.
    restarted = LibvirtDriver.from_options(
        options(image_dir, name_prefix=drv.settings.name_prefix), tmp_path / "data"
    )
    other = LibvirtDriver.from_options(options(image_dir), tmp_path / "data")
    for driver in (restarted, other):
        await driver.open()
    try:
        assert {t.ref: t.entity_id for t in await restarted.inventory()} == expected
        assert await other.inventory() == []
    finally:
        for driver in (restarted, other):
            await driver.close()


async def test_entity_ids_too_long_for_a_volume_name_are_not_recorded(drv: LibvirtDriver, made: Made) -> None:
    volume = await made.create(StorageSpec(name="v", size_gib=1, entity_id="urn:x:" + "y" * MAX_TAG))
    assert "+" not in volume.backend_id
    assert await drv.inventory() == []


# ---------------------------------------------------------------------------- out-of-band changes


async def next_change(stream: Any, backend_id: str) -> Change:
    async def wait() -> Change:
        async for change in stream:
            if change.ref.backend_id == backend_id:
                return change  # type: ignore[no-any-return]
        raise AssertionError("changes() ended")

    return await asyncio.wait_for(wait(), timeout=5)


async def test_lifecycle_events_become_changes(drv: LibvirtDriver, made: Made, virt: Any) -> None:
    compute = await made.create(ComputeSpec(name="watched", image="plain"))
    stream = drv.changes()
    dom = virt.lookupByUUIDString(compute.backend_id)
    dom.suspend()
    change = await next_change(stream, compute.backend_id)
    assert change.ref == ref(COMPUTE, compute) and change.observed is not None
    assert change.observed.state == "suspended" and change.observed.facts == compute.facts
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
    assert change.ref == ref(NETWORK, network) and change.observed is not None
    assert change.observed.state == "inactive"


async def test_reconcile_notices_what_events_miss(image_dir: Path, tmp_path: Path, virt: Any) -> None:
    drv = LibvirtDriver.from_options(options(image_dir, reconcile_interval="0.05"), tmp_path / "data")
    await drv.open()
    try:
        volume = await drv.create(StorageSpec(name="gone", size_gib=1.0))
        stream = drv.changes()
        pool_name, _, name = volume.backend_id.partition("/")
        virt.storagePoolLookupByName(pool_name).storageVolLookupByName(name).delete(0)  # no event for this
        change = await next_change(stream, volume.backend_id)
        assert change.ref == ref(STORAGE, volume) and change.observed is None
    finally:
        await drv.close()


async def test_adopt_restores_offline(drv: LibvirtDriver, made: Made) -> None:
    volume = await made.create(StorageSpec(name="v", size_gib=1.0))
    await drv.adopt(ref(STORAGE, volume), Observed(volume.backend_id, "offline"))
    observed = await drv.observe(ref(STORAGE, volume))
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
    with pytest.raises(
        BackendError, match="storage pool 'no-such-pool' does not exist.*virsh pool-define-as"
    ):
        await drv.open()
    await drv.close()


async def test_missing_image_dir_is_a_clear_error(tmp_path: Path) -> None:
    drv = LibvirtDriver.from_options(options(tmp_path / "nowhere"), tmp_path)
    with pytest.raises(BackendError, match="build-guest.sh"):
        await drv.open()
    await drv.close()


async def test_unknown_image_names_the_offered_ones(drv: LibvirtDriver) -> None:
    with pytest.raises(BackendError, match="no image 'windows-95'.*offered: plain, tiny-linux"):
        await drv.create(ComputeSpec(name="x", image="windows-95"))


async def test_failed_create_leaves_nothing(drv: LibvirtDriver, virt: Any) -> None:
    pool = virt.storagePoolLookupByName(drv.settings.pool)
    before = set(pool.listVolumes())
    with pytest.raises(BackendError, match="arm64"):
        await drv.create(ComputeSpec(name="x", image="plain", architecture="arm64"))
    with pytest.raises(BackendError, match="Memory size"):
        # 1e-9 GiB rounds to 0 KiB, which libvirt refuses after the overlay and seed exist.
        await drv.create(ComputeSpec(name="x", image="plain", memory_gib=1e-9))
    assert set(pool.listVolumes()) == before
    assert not [d for d in virt.listAllDomains(0) if d.name().startswith(drv.settings.name_prefix)]

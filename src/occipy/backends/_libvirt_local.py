"""Local-side helpers of the libvirt driver: settings, the image directory, saved templates and
cloud-init NoCloud seed ISOs.

Settings come from string options (`--driver-opt`, OCCIPY_LIBVIRT_*, `[drivers.libvirt]`);
images are files on this host (docs/drivers/libvirt.md, "Image directory"). Blocking file I/O
here is small and runs in the driver's worker threads. No `libvirt` import; imports errors,
backends.base and pycdlib (for the ISO).
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from occipy.backends.base import Template
from occipy.errors import BackendError

DEFAULT_URI: Final = "qemu:///system"
DEFAULT_POOL: Final = "occipy"
DEFAULT_NETWORK_PREFIX: Final = "10.213.0.0/16"
_DEFAULT_RANGE: Final = ipaddress.ip_network(DEFAULT_NETWORK_PREFIX)
_TERM_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")  # model.category.TERM_RE
_SLUG_BAD: Final = re.compile(r"[^A-Za-z0-9_.-]+")
IMAGE_FORMATS: Final = {".qcow2": "qcow2", ".img": "raw", ".raw": "raw"}
# Sidecar keys an image may carry (anything else is refused, so a typo does not go unnoticed).
SIDECAR_KEYS: Final = frozenset({"title", "architecture", "kernel", "initrd", "cmdline"})

OPTIONS: Final = frozenset(
    {
        "uri",
        "pool",
        "image_dir",
        "domain_type",
        "name_prefix",
        "network_prefix",
        "flavors",
        "shutdown_timeout",
        "reconcile_interval",
        "default_os_tpl",
    }
)


@dataclass(frozen=True, slots=True)
class Flavour:
    """A resource_tpl: sizes a compute; `disk_gib` is the minimum root disk (CRTP ephemeral storage)."""

    term: str
    cores: int
    memory_gib: float
    disk_gib: float | None = None

    def template(self) -> Template:
        disk = f", {self.disk_gib:g} GiB disk" if self.disk_gib else ""
        return Template(
            "resource_tpl",
            self.term,
            f"{self.term}: {self.cores} core{'s' if self.cores > 1 else ''}, {self.memory_gib:g} GiB{disk}",
            {"occi.compute.cores": self.cores, "occi.compute.memory": self.memory_gib},
        )


# GFD.222 §7.3-§7.8 (monitoring-and-extensions.md §3.4). The registry already offers these as
# mixins, so the driver recognises their terms (for the root disk size) without re-offering them.
CRTP_FLAVOURS: Final[Mapping[str, Flavour]] = {
    f.term: f
    for f in (
        Flavour("small", 1, 1.0, 10.0),
        Flavour("medium", 2, 2.0, 20.0),
        Flavour("large", 4, 4.0, 40.0),
        Flavour("mem_small", 1, 4.0, 10.0),
        Flavour("mem_medium", 2, 8.0, 20.0),
        Flavour("mem_large", 4, 16.0, 40.0),
    )
}


@dataclass(frozen=True, slots=True)
class Settings:
    """The libvirt driver's configuration (docs/drivers/libvirt.md, "Settings")."""

    uri: str
    pool: str
    state_dir: Path  # <data_dir>/libvirt: default pool, seeds, console logs, saved templates
    image_dir: Path
    domain_type: str = "qemu"
    name_prefix: str = "occipy-"
    network_prefix: ipaddress.IPv4Network | ipaddress.IPv6Network = _DEFAULT_RANGE
    flavours: tuple[Flavour, ...] = ()
    shutdown_timeout: float = 60.0
    reconcile_interval: float = 30.0
    default_os_tpl: str | None = None

    @property
    def pool_dir(self) -> Path:
        return self.state_dir / "pool"

    @property
    def seed_dir(self) -> Path:
        return self.state_dir / "seeds"

    @property
    def console_dir(self) -> Path:
        return self.state_dir / "console"

    @property
    def template_dir(self) -> Path:
        return self.state_dir / "templates"

    def flavour(self, term: str) -> Flavour | None:
        for flavour in self.flavours:
            if flavour.term == term:
                return flavour
        return CRTP_FLAVOURS.get(term)


def parse_settings(options: Mapping[str, str], data_dir: Path) -> Settings:
    """Settings from string options; ValueError naming the option when one is wrong."""
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ValueError(
            f"unknown libvirt driver option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}"
        )
    state_dir = Path(data_dir).resolve() / "libvirt"
    domain_type = options.get("domain_type", "qemu")
    # Never auto-pick kvm: libvirt advertises it here though KVM guests hang (ecosystem.md §1a).
    if domain_type not in ("qemu", "kvm"):
        raise ValueError(f"libvirt driver option domain_type: expected qemu or kvm, got {domain_type!r}")
    prefix = options.get("name_prefix", "occipy-")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{0,32}", prefix):
        raise ValueError(
            f"libvirt driver option name_prefix: use at most 32 of A-Z a-z 0-9 _ . -, got {prefix!r}"
        )
    try:
        network_prefix = ipaddress.ip_network(options.get("network_prefix", DEFAULT_NETWORK_PREFIX))
    except ValueError as exc:
        raise ValueError(f"libvirt driver option network_prefix: {exc}") from None
    if network_prefix.prefixlen > (24 if network_prefix.version == 4 else 64):
        raise ValueError("libvirt driver option network_prefix: must hold at least one /24 (IPv4) or /64")
    default_os = options.get("default_os_tpl") or None
    return Settings(
        uri=options.get("uri", DEFAULT_URI) or DEFAULT_URI,
        pool=options.get("pool", DEFAULT_POOL) or DEFAULT_POOL,
        state_dir=state_dir,
        image_dir=Path(options["image_dir"]).resolve() if options.get("image_dir") else state_dir / "images",
        domain_type=domain_type,
        name_prefix=prefix,
        network_prefix=network_prefix,
        flavours=parse_flavours(options.get("flavors", "")),
        shutdown_timeout=_seconds(options, "shutdown_timeout", 60.0),
        reconcile_interval=_seconds(options, "reconcile_interval", 30.0),
        default_os_tpl=default_os,
    )


def _seconds(options: Mapping[str, str], key: str, default: float) -> float:
    raw = options.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"libvirt driver option {key}: expected seconds, got {raw!r}") from None
    if not value >= 0:
        raise ValueError(f"libvirt driver option {key}: must be 0 or more, got {raw!r}")
    return value


def parse_flavours(spec: str) -> tuple[Flavour, ...]:
    """`term=cores:memory_gib[:disk_gib]` items separated by commas, e.g. "tiny=1:0.5,xl=8:32:80"."""
    flavours: list[Flavour] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        term, sep, sizes = item.partition("=")
        parts = sizes.split(":")
        try:
            if not sep or not _TERM_RE.match(term) or len(parts) not in (2, 3):
                raise ValueError
            cores, memory = int(parts[0]), float(parts[1])
            disk = float(parts[2]) if len(parts) == 3 else None
            if cores < 1 or not memory > 0 or (disk is not None and not disk > 0):
                raise ValueError
        except ValueError:
            raise ValueError(
                f"libvirt driver option flavors: {item!r} is not term=cores:memory_gib[:disk_gib] "
                "with positive sizes"
            ) from None
        if term in CRTP_FLAVOURS:
            raise ValueError(
                f"libvirt driver option flavors: {term!r} is a CRTP template the server "
                "already offers; choose another term"
            )
        if any(f.term == term for f in flavours):
            raise ValueError(f"libvirt driver option flavors: {term!r} is given twice")
        flavours.append(Flavour(term, cores, memory, disk))
    return tuple(flavours)


def slug(name: str, limit: int = 40) -> str:
    """A name libvirt accepts for domains, volumes and networks, derived from an OCCI name."""
    cleaned = _SLUG_BAD.sub("-", name).strip("-.") or "x"
    return cleaned[:limit].rstrip("-.") or "x"


# ---------------------------------------------------------------------------- images


@dataclass(frozen=True, slots=True)
class Image:
    """A base image behind an os_tpl: a file in the image directory or a saved snapshot volume."""

    term: str
    title: str
    path: str
    fmt: str
    virtual_size: int  # bytes
    architecture: str = "x64"
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    saved_from: str | None = None  # the compute a saved template was taken from
    volume: str | None = None  # "pool/volume" of a saved template

    def template(self) -> Template:
        return Template("os_tpl", self.term, self.title, {"occi.compute.architecture": self.architecture})

    def record(self) -> dict[str, object]:
        return {
            k: getattr(self, k)
            for k in (
                "term",
                "title",
                "path",
                "fmt",
                "virtual_size",
                "architecture",
                "kernel",
                "initrd",
                "cmdline",
                "saved_from",
                "volume",
            )
        }


def virtual_size(path: Path, fmt: str) -> int:
    """The guest-visible size of an image: the qcow2 header's `size` field, or a raw file's length."""
    if fmt == "qcow2":
        with path.open("rb") as handle:
            header = handle.read(32)
        # QCOW2 header: magic "QFI\xfb", version u32, backing offset u64, backing size u32,
        # cluster_bits u32, size u64 (big-endian) at offset 24.
        if len(header) < 32 or header[:4] != b"QFI\xfb":
            raise ValueError(f"{path} is not a qcow2 image")
        return int(struct.unpack(">Q", header[24:32])[0])
    return path.stat().st_size


def scan_images(image_dir: Path) -> tuple[dict[str, Image], list[str]]:
    """Every image of the directory by term, and a problem line for each file skipped."""
    images: dict[str, Image] = {}
    problems: list[str] = []
    if not image_dir.is_dir():
        return images, [f"image directory {image_dir} does not exist"]
    for entry in sorted(image_dir.iterdir()):
        fmt = IMAGE_FORMATS.get(entry.suffix)
        if fmt is None or not entry.is_file():
            continue
        term = entry.stem
        if not _TERM_RE.match(term):
            problems.append(f"{entry.name}: {term!r} is not a valid OCCI term")
            continue
        if term in images:
            problems.append(f"{entry.name}: another image already uses the term {term!r}")
            continue
        try:
            images[term] = _image(entry, term, fmt)
        except (OSError, ValueError) as exc:
            problems.append(f"{entry.name}: {exc}")
    return images, problems


def _image(path: Path, term: str, fmt: str) -> Image:
    sidecar: dict[str, object] = {}
    meta = path.with_suffix(".json")
    if meta.is_file():
        loaded = json.loads(meta.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise ValueError(f"{meta.name} must hold a JSON object")
        extra = set(loaded) - SIDECAR_KEYS
        if extra:
            raise ValueError(
                f"{meta.name}: unknown key(s) {', '.join(sorted(extra))}; "
                f"known: {', '.join(sorted(SIDECAR_KEYS))}"
            )
        sidecar = loaded
    arch = str(sidecar.get("architecture", "x64"))
    if arch not in ("x64", "x86"):
        raise ValueError(f"architecture must be x64 or x86, got {arch!r}")

    def local(key: str) -> str | None:
        value = sidecar.get(key)
        if value is None:
            return None
        file = (path.parent / str(value)).resolve()
        if not file.is_file():
            raise ValueError(f"{key} file {file} does not exist")
        return str(file)

    cmdline = sidecar.get("cmdline")
    return Image(
        term=term,
        title=str(sidecar.get("title") or f"{term} ({path.name})"),
        path=str(path.resolve()),
        fmt=fmt,
        virtual_size=virtual_size(path, fmt),
        architecture=arch,
        kernel=local("kernel"),
        initrd=local("initrd"),
        cmdline=str(cmdline) if cmdline is not None else None,
    )


def load_saved(template_dir: Path) -> dict[str, Image]:
    """Templates made by `save`, recorded as JSON next to the driver's state."""
    saved: dict[str, Image] = {}
    if not template_dir.is_dir():
        return saved
    for entry in sorted(template_dir.glob("*.json")):
        try:
            record = json.loads(entry.read_text(encoding="utf-8"))
            image = Image(**record)
        except (OSError, ValueError, TypeError):
            continue  # a half-written record of a crashed save: the volume is cleaned by hand
        saved[image.term] = image
    return saved


def store_saved(template_dir: Path, image: Image) -> None:
    template_dir.mkdir(parents=True, exist_ok=True)
    target = template_dir / f"{image.term}.json"
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(image.record(), indent=2), encoding="utf-8")
    os.replace(temporary, target)  # atomic: a reader never sees half a record


# ---------------------------------------------------------------------------- NoCloud seed


@dataclass(frozen=True, slots=True)
class Seed:
    """What cloud-init's NoCloud datasource reads from the `cidata` CD-ROM."""

    instance_id: str
    hostname: str
    ssh_keys: tuple[str, ...] = ()
    user_data: bytes | None = None
    extra_meta: Mapping[str, str] = field(default_factory=dict)

    def meta_data(self) -> bytes:
        # JSON is valid YAML, and quoting every value keeps keys with ':' or '#' intact.
        meta: dict[str, object] = {"instance-id": self.instance_id, "local-hostname": self.hostname}
        if self.ssh_keys:
            meta["public-keys"] = list(self.ssh_keys)
        meta.update(self.extra_meta)
        return (json.dumps(meta, indent=1) + "\n").encode()

    def user_data_bytes(self) -> bytes:
        # GFD.224 §3.5.2.2: the data is handed to the instance as given (cloud-config, script, ...).
        return self.user_data if self.user_data is not None else b"#cloud-config\n{}\n"


def seed_iso(seed: Seed) -> bytes:
    """A NoCloud seed image: ISO 9660 with Joliet and Rock Ridge names, volume label `cidata`."""
    import pycdlib  # imported on use: only computes with an image need it

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for iso_name, name, data in (
        ("/METADATA.;1", "meta-data", seed.meta_data()),
        ("/USERDATA.;1", "user-data", seed.user_data_bytes()),
    ):
        iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path=f"/{name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def read_seed_iso(data: bytes) -> dict[str, bytes]:
    """The files of a seed image by name (for tests and for `observe` diagnostics)."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    files: dict[str, bytes] = {}
    for name in ("meta-data", "user-data"):
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
        files[name] = out.getvalue()
    iso.close()
    return files


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def require_image_dir(image_dir: Path) -> None:
    if image_dir.exists() and not image_dir.is_dir():
        raise BackendError(f"image_dir {image_dir} is not a directory")

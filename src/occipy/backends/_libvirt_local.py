"""Local-side helpers of the libvirt driver: settings, the image directory, saved templates,
the entity tags of volume names and cloud-init NoCloud seed ISOs.

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

from occipy.backends.base import FLAVOUR, IMAGE, Template
from occipy.errors import BackendError

DEFAULT_URI: Final = "qemu:///system"
DEFAULT_POOL: Final = "occipy"
DEFAULT_NETWORK_PREFIX: Final = "10.213.0.0/16"
_DEFAULT_RANGE: Final = ipaddress.ip_network(DEFAULT_NETWORK_PREFIX)
# Flavour names in the `flavors` setting (the service derives OCCI terms from them).
_FLAVOUR_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
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
    """A flavour: sizes a compute; `disk_gib` is the minimum root disk (CRTP ephemeral storage)."""

    name: str
    cores: int
    memory_gib: float
    disk_gib: float | None = None

    def template(self) -> Template:
        disk = f", {self.disk_gib:g} GiB disk" if self.disk_gib else ""
        return Template(
            FLAVOUR,
            self.name,
            f"{self.name}: {self.cores} core{'s' if self.cores > 1 else ''}, {self.memory_gib:g} GiB{disk}",
            cores=self.cores,
            memory_gib=self.memory_gib,
            disk_gib=self.disk_gib,
        )


# GFD.222 §7.3-§7.8 (monitoring-and-extensions.md §3.4). The registry already offers these as
# mixins, so the driver recognises their names (for the root disk size) without re-offering them.
CRTP_FLAVOURS: Final[Mapping[str, Flavour]] = {
    f.name: f
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

    def flavour(self, name: str) -> Flavour | None:
        for flavour in self.flavours:
            if flavour.name == name:
                return flavour
        return CRTP_FLAVOURS.get(name)


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
    """`name=cores:memory_gib[:disk_gib]` items separated by commas, e.g. "tiny=1:0.5,xl=8:32:80"."""
    flavours: list[Flavour] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, sizes = item.partition("=")
        parts = sizes.split(":")
        try:
            if not sep or not _FLAVOUR_NAME_RE.match(name) or len(parts) not in (2, 3):
                raise ValueError
            cores, memory = int(parts[0]), float(parts[1])
            disk = float(parts[2]) if len(parts) == 3 else None
            if cores < 1 or not memory > 0 or (disk is not None and not disk > 0):
                raise ValueError
        except ValueError:
            raise ValueError(
                f"libvirt driver option flavors: {item!r} is not name=cores:memory_gib[:disk_gib] "
                "with positive sizes (a name is letters, digits, '.', '_' and '-')"
            ) from None
        if name in CRTP_FLAVOURS:
            raise ValueError(
                f"libvirt driver option flavors: {name!r} is a CRTP template the server "
                "already offers; choose another name"
            )
        if any(f.name == name for f in flavours):
            raise ValueError(f"libvirt driver option flavors: {name!r} is given twice")
        flavours.append(Flavour(name, cores, memory, disk))
    return tuple(flavours)


def slug(name: str, limit: int = 40) -> str:
    """A name libvirt accepts for domains, volumes and networks, derived from an OCCI name."""
    cleaned = _SLUG_BAD.sub("-", name).strip("-.") or "x"
    return cleaned[:limit].rstrip("-.") or "x"


# ---------------------------------------------------------------------------- entity tags of volumes

# Volumes have no metadata in libvirt, so a volume made for an entity carries the entity id in its
# name: "<prefix><slug>+<tag>.qcow2". The tag is the id with every byte outside [A-Za-z0-9.-]
# written as _XX (hex), so it is reversible and file-system safe; slug() and name_prefix never
# produce "+", which makes the split unambiguous.
TAG_SEPARATOR: Final = "+"
MAX_TAG: Final = 160  # keeps a volume name well under the 255 bytes of a file name
_TAG_SAFE: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")
_TAG_RE: Final = re.compile(r"(?:[A-Za-z0-9.-]|_[0-9a-f]{2})+\Z")


def encode_tag(entity_id: str) -> str | None:
    """The volume-name tag of an entity id; None when the id is too long to fit a file name."""
    tag = "".join(chr(c) if c in _TAG_SAFE else f"_{c:02x}" for c in entity_id.encode())
    return tag if tag and len(tag) <= MAX_TAG else None


def decode_tag(tag: str) -> str | None:
    """The entity id a volume-name tag carries; None when it is not a tag."""
    if not _TAG_RE.match(tag):
        return None
    out = bytearray()
    i = 0
    while i < len(tag):
        if tag[i] == "_":
            out.append(int(tag[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(ord(tag[i]))
            i += 1
    try:
        return out.decode()
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------------------- images


@dataclass(frozen=True, slots=True)
class Image:
    """A base image: a file in the image directory or a saved snapshot volume."""

    name: str
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
        return Template(IMAGE, self.name, self.title, architecture=self.architecture)

    def record(self) -> dict[str, object]:
        return {
            k: getattr(self, k)
            for k in (
                "name",
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
    """Every image of the directory by name (the file name without its extension), and a problem
    line for each file skipped."""
    images: dict[str, Image] = {}
    problems: list[str] = []
    if not image_dir.is_dir():
        return images, [f"image directory {image_dir} does not exist"]
    for entry in sorted(image_dir.iterdir()):
        fmt = IMAGE_FORMATS.get(entry.suffix)
        if fmt is None or not entry.is_file():
            continue
        name = entry.stem
        if name.startswith(".") or not name.isprintable():
            problems.append(f"{entry.name}: a hidden file or a name with control characters")
            continue
        if name in images:
            problems.append(f"{entry.name}: another image already has the name {name!r}")
            continue
        try:
            images[name] = _image(entry, name, fmt)
        except (OSError, ValueError) as exc:
            problems.append(f"{entry.name}: {exc}")
    return images, problems


def _image(path: Path, name: str, fmt: str) -> Image:
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
        name=name,
        title=str(sidecar.get("title") or f"{name} ({path.name})"),
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
            if isinstance(record, dict) and "term" in record:  # written before names replaced terms
                record["name"] = record.pop("term")
            image = Image(**record)
        except (OSError, ValueError, TypeError):
            continue  # a half-written record of a crashed save: the volume is cleaned by hand
        saved[image.name] = image
    return saved


def store_saved(template_dir: Path, image: Image, file_stem: str) -> None:
    """Record a saved image as `<file_stem>.json` (the stem is file-system safe and unique)."""
    template_dir.mkdir(parents=True, exist_ok=True)
    target = template_dir / f"{file_stem}.json"
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

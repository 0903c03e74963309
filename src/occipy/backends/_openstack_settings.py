"""Settings of the OpenStack driver, parsed from string options (docs/drivers/openstack.md).

Where the cloud is: a `clouds.yaml` entry (`cloud`, optionally `clouds_yaml`), or explicit
Keystone settings (`auth_url`, `username`, `password`, ...), which also override the entry's
fields. Everything else has a default. Pure: no SDK, no I/O. Imports the standard library only.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

# Settings passed to Keystone as they are (the names of a clouds.yaml `auth` section).
AUTH_KEYS: Final = (
    "auth_url",
    "username",
    "password",
    "project_name",
    "project_id",
    "user_domain_name",
    "user_domain_id",
    "project_domain_name",
    "project_domain_id",
    "application_credential_id",
    "application_credential_secret",
    "token",
)
# Settings of the connection besides `auth` (clouds.yaml top-level keys).
CONNECTION_KEYS: Final = ("region_name", "interface", "auth_type", "cacert")
OTHER_KEYS: Final = (
    "cloud",
    "clouds_yaml",
    "insecure",
    "label",
    "poll_interval",
    "wait_timeout",
    "default_image",
    "default_flavor",
    "network_range",
    "network_prefix",
    "subnet_pool",
    "volume_type",
    "availability_zone",
    "floating_pool",
)
# OCCIPY_OPENSTACK_TIMEOUT, _CACHE and _RUNNING belong to the test cloud (docs/testing.md);
# the environment prefix of this driver's options is the same, so they are accepted and ignored.
IGNORED: Final = frozenset({"timeout", "cache", "running"})
KNOWN: Final = frozenset((*AUTH_KEYS, *CONNECTION_KEYS, *OTHER_KEYS))
_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class Settings:
    """The driver's settings, checked."""

    cloud: str | None = None  # a clouds.yaml entry
    clouds_yaml: Path | None = None  # None: openstacksdk's own search (OS_CLIENT_CONFIG_FILE, ...)
    auth: Mapping[str, str] = field(default_factory=dict)  # explicit Keystone settings
    connection: Mapping[str, str] = field(default_factory=dict)  # region_name, interface, ...
    insecure: bool = False
    # The marker on every object occipy makes: metadata key / tag `<label>:entity`.
    label: str = "occipy"
    poll_interval: float = 10.0  # seconds between two looks at the cloud (Watches); 0: never
    wait_timeout: float = 600.0  # seconds a build, stop, snapshot... may take
    default_image: str | None = None  # image name or id for a compute without os_tpl
    default_flavor: str | None = None  # flavor name for a compute without size or resource_tpl
    network_range: ipaddress.IPv4Network = field(default_factory=lambda: ipaddress.IPv4Network("10.128.0.0/9"))
    network_prefix: int = 24
    subnet_pool: str | None = None  # a Neutron subnet pool (name or id) to take ranges from
    volume_type: str | None = None
    availability_zone: str | None = None
    floating_pool: str | None = None  # the default floating IP pool (external network name or id)

    @property
    def where(self) -> str:
        """How messages name the cloud: the clouds.yaml entry, else the Keystone URL."""
        if self.cloud:
            return f"OpenStack cloud {self.cloud!r}"
        return f"OpenStack at {self.auth.get('auth_url', '?')}"

    @property
    def entity_key(self) -> str:
        """Metadata key (Nova, Cinder) and tag prefix (Neutron) that holds the entity id."""
        return f"{self.label}:entity"


def _number(options: Mapping[str, str], key: str, default: float, minimum: float) -> float:
    text = options.get(key)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"openstack driver option {key}: {text!r} is not a number") from None
    if not value >= minimum:
        raise ValueError(f"openstack driver option {key}: must be at least {minimum:g}, not {text}")
    return value


def _flag(options: Mapping[str, str], key: str) -> bool:
    text = options.get(key, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"openstack driver option {key}: {options[key]!r} is not true or false")


def _text(options: Mapping[str, str], key: str) -> str | None:
    value = options.get(key)
    return value.strip() or None if value is not None else None


def parse_settings(options: Mapping[str, str], data_dir: Path) -> Settings:
    """Settings from string options; ValueError names the bad option."""
    unknown = sorted(set(options) - KNOWN - IGNORED)
    if unknown:
        raise ValueError(
            f"unknown openstack driver option {unknown[0]!r}; known: {', '.join(sorted(KNOWN))}"
        )
    cloud = _text(options, "cloud")
    auth = {key: value for key in AUTH_KEYS if (value := _text(options, key)) is not None}
    if cloud is None and "auth_url" not in auth:
        raise ValueError(
            "the openstack driver needs a cloud: set `cloud` (an entry of clouds.yaml, with "
            "`clouds_yaml` for its path) or `auth_url` with username, password and project_name"
        )
    clouds_yaml = _text(options, "clouds_yaml")
    path = Path(clouds_yaml).expanduser() if clouds_yaml else None
    if path is not None and not path.is_file():
        raise ValueError(f"openstack driver option clouds_yaml: {path} is not a file")
    label = _text(options, "label") or "occipy"
    if not _LABEL.fullmatch(label):
        raise ValueError(
            f"openstack driver option label: {label!r} must be 1-40 letters, digits, '_', '.' or '-'"
        )
    text = _text(options, "network_range") or "10.128.0.0/9"
    try:
        network_range = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"openstack driver option network_range: {text!r} is not an IPv4 prefix ({exc})") from None
    prefix = int(_number(options, "network_prefix", 24, 1))
    if not network_range.prefixlen <= prefix <= 29:
        raise ValueError(
            f"openstack driver option network_prefix: {prefix} must be between the range's "
            f"/{network_range.prefixlen} and /29"
        )
    return Settings(
        cloud=cloud,
        clouds_yaml=path,
        auth=auth,
        connection={key: value for key in CONNECTION_KEYS if (value := _text(options, key)) is not None},
        insecure=_flag(options, "insecure"),
        label=label,
        poll_interval=_number(options, "poll_interval", 10.0, 0.0),
        wait_timeout=_number(options, "wait_timeout", 600.0, 1.0),
        default_image=_text(options, "default_image"),
        default_flavor=_text(options, "default_flavor"),
        network_range=network_range,
        network_prefix=prefix,
        subnet_pool=_text(options, "subnet_pool"),
        volume_type=_text(options, "volume_type"),
        availability_zone=_text(options, "availability_zone"),
        floating_pool=_text(options, "floating_pool"),
    )

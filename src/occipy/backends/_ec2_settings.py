"""The EC2 driver's settings: parsed from the string options of --driver-opt, OCCIPY_EC2_<KEY> and
`[drivers.ec2]` (docs/drivers/ec2.md has the table). No I/O and no boto3 here: a bad option is a
ValueError naming it, before anything talks to AWS. Imports only the standard library.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

N = TypeVar("N", int, float)

# A small, current default set: the newest Amazon Linux 2023 and Amazon Linux 2 x86_64 AMIs owned
# by Amazon. A whole region lists thousands of public AMIs (a moto cloud 1,366); offering them all
# would flood the query interface with os_tpl mixins.
DEFAULT_IMAGE_OWNERS: Final = ("amazon",)
DEFAULT_IMAGE_NAMES: Final = ("al2023-ami-2023.*-x86_64", "amzn2-ami-hvm-*-x86_64-gp2")
# Burstable and general purpose x86_64 types; the t2 family has 1-vCPU types, so a request for
# one core gets one. All of them support hibernation.
DEFAULT_INSTANCE_TYPES: Final = (
    "t2.nano", "t2.micro", "t2.small", "t2.medium", "t3.micro", "t3.small", "t3.medium", "t3.large",
    "m5.large", "m5.xlarge", "c5.large", "r5.large",
)
DEFAULT_INSTANCE_TYPE: Final = "t3.micro"
DEFAULT_OWNER: Final = "occipy"
# Elastic IPs come from Amazon's own pool unless a BYOIP pool (ipv4pool-...) is named.
DEFAULT_ADDRESS_POOL: Final = "amazon"
_ADDRESS_POOL_RE: Final = re.compile(r"^(amazon|ipv4pool-[a-z0-9-]{1,64})$")

_INSTANCE_TYPE_RE: Final = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_AMI_RE: Final = re.compile(r"^ami-[0-9a-f]{8,17}$")
_OWNER_RE: Final = re.compile(r"^[A-Za-z0-9_.:/=+@-]{1,64}$")
_VOLUME_TYPES: Final = frozenset({"gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"})

OPTIONS: Final = frozenset({
    "region", "endpoint_url", "profile", "access_key_id", "secret_access_key", "session_token",
    "vpc_id", "subnet_id", "availability_zone", "security_group_ids",
    "images", "image_owners", "image_names", "images_per_name", "default_image",
    "instance_types", "default_instance_type", "volume_type", "subnet_prefix", "hibernation", "owner",
    "poll_interval", "wait_timeout", "wait_interval", "connect_timeout", "read_timeout", "max_attempts",
    "address_pool",
})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the EC2 driver is configured with (docs/drivers/ec2.md §Settings)."""

    region: str | None = None  # None: boto3's chain (AWS_REGION, AWS_DEFAULT_REGION, the profile)
    endpoint_url: str | None = None  # an EC2-compatible endpoint (moto in the tests)
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    vpc_id: str | None = None  # None: the region's default VPC
    subnet_id: str | None = None  # every instance's primary interface; None: the AZ's default subnet
    availability_zone: str | None = None
    security_group_ids: tuple[str, ...] = ()  # empty: the VPC's "default" group
    images: tuple[str, ...] = ()  # AMI ids; empty: the newest per name pattern below
    image_owners: tuple[str, ...] = DEFAULT_IMAGE_OWNERS
    image_names: tuple[str, ...] = DEFAULT_IMAGE_NAMES
    images_per_name: int = 1
    default_image: str | None = None
    instance_types: tuple[str, ...] = DEFAULT_INSTANCE_TYPES
    default_instance_type: str = DEFAULT_INSTANCE_TYPE
    volume_type: str = "gp3"
    subnet_prefix: int = 24
    hibernation: bool = False
    owner: str = DEFAULT_OWNER
    poll_interval: float = 30.0
    wait_timeout: float = 600.0
    wait_interval: float = 2.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 5
    address_pool: str = DEFAULT_ADDRESS_POOL  # ipreservation: "amazon" or a BYOIP pool id (ipv4pool-...)


def parse_settings(options: Mapping[str, str]) -> Settings:
    """Settings from string options; ValueError naming the option when one is wrong."""
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ValueError(f"unknown ec2 driver option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}")

    def text(key: str) -> str | None:
        value = options.get(key, "").strip()
        return value or None

    def listed(key: str, default: tuple[str, ...], check: Callable[[str], bool], what: str) -> tuple[str, ...]:
        raw = options.get(key)
        if raw is None or not raw.strip():
            return default
        items = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
        bad = [item for item in items if not check(item)]
        if bad:
            raise ValueError(f"ec2 driver option {key}: {', '.join(map(repr, bad))} is not {what}")
        return items

    access, secret = text("access_key_id"), text("secret_access_key")
    if (access is None) != (secret is None):
        raise ValueError("ec2 driver options access_key_id and secret_access_key go together: give both or "
                         "neither (then boto3's credential chain is used)")
    if text("session_token") and access is None:
        raise ValueError("ec2 driver option session_token needs access_key_id and secret_access_key")
    endpoint = text("endpoint_url")
    if endpoint is not None and not re.match(r"^https?://[^/\s]+", endpoint):
        raise ValueError(f"ec2 driver option endpoint_url: expected http(s)://host[:port], got {endpoint!r}")

    instance_types = listed("instance_types", DEFAULT_INSTANCE_TYPES, lambda v: bool(_INSTANCE_TYPE_RE.match(v)),
                            "an instance type such as t3.micro")
    default_type = text("default_instance_type")
    if default_type is None:
        default_type = DEFAULT_INSTANCE_TYPE if DEFAULT_INSTANCE_TYPE in instance_types else instance_types[0]
    elif default_type not in instance_types:
        raise ValueError(f"ec2 driver option default_instance_type: {default_type!r} is not one of "
                         f"instance_types ({', '.join(instance_types)})")
    images = listed("images", (), lambda v: bool(_AMI_RE.match(v)), "an AMI id (ami-...)")
    default_image = text("default_image")
    if default_image is not None and not _AMI_RE.match(default_image):
        raise ValueError(f"ec2 driver option default_image: expected an AMI id (ami-...), got {default_image!r}")
    volume_type = text("volume_type") or "gp3"
    if volume_type not in _VOLUME_TYPES:
        raise ValueError(f"ec2 driver option volume_type: expected one of {', '.join(sorted(_VOLUME_TYPES))}, "
                         f"got {volume_type!r}")
    owner = text("owner") or DEFAULT_OWNER
    if not _OWNER_RE.match(owner) or owner.lower().startswith("aws:"):
        raise ValueError(f"ec2 driver option owner: use 1-64 of A-Z a-z 0-9 _ . : / = + @ -, got {owner!r}")
    wait_interval = _number(options, "wait_interval", 2.0, float, minimum=0.01)
    address_pool = text("address_pool") or DEFAULT_ADDRESS_POOL
    if not _ADDRESS_POOL_RE.match(address_pool):
        raise ValueError(f"ec2 driver option address_pool: expected amazon or a BYOIP pool id (ipv4pool-...), "
                         f"got {address_pool!r}")
    return Settings(
        region=text("region"),
        endpoint_url=endpoint,
        profile=text("profile"),
        access_key_id=access,
        secret_access_key=secret,
        session_token=text("session_token"),
        vpc_id=_id(text("vpc_id"), "vpc_id", "vpc"),
        subnet_id=_id(text("subnet_id"), "subnet_id", "subnet"),
        availability_zone=text("availability_zone"),
        security_group_ids=listed("security_group_ids", (), lambda v: bool(re.match(r"^sg-[0-9a-f]+$", v)),
                                  "a security group id (sg-...)"),
        images=images,
        image_owners=listed("image_owners", DEFAULT_IMAGE_OWNERS, lambda v: bool(re.match(r"^[\w.-]+$", v)),
                            "an account id or alias (amazon, self, aws-marketplace, 123456789012)"),
        image_names=listed("image_names", DEFAULT_IMAGE_NAMES, lambda v: 0 < len(v) <= 128,
                           "an AMI name pattern (* and ? are wildcards)"),
        images_per_name=_number(options, "images_per_name", 1, int, minimum=1),
        default_image=default_image,
        instance_types=instance_types,
        default_instance_type=default_type,
        volume_type=volume_type,
        subnet_prefix=_number(options, "subnet_prefix", 24, int, minimum=16, maximum=28),
        hibernation=_flag(options, "hibernation"),
        owner=owner,
        poll_interval=_number(options, "poll_interval", 30.0, float, minimum=0.0),
        wait_timeout=_number(options, "wait_timeout", 600.0, float, minimum=wait_interval),
        wait_interval=wait_interval,
        connect_timeout=_number(options, "connect_timeout", 10.0, float, minimum=0.1),
        read_timeout=_number(options, "read_timeout", 60.0, float, minimum=0.1),
        max_attempts=_number(options, "max_attempts", 5, int, minimum=1, maximum=20),
        address_pool=address_pool,
    )


def _id(value: str | None, key: str, prefix: str) -> str | None:
    if value is not None and not re.match(rf"^{prefix}-[0-9a-f]+$", value):
        raise ValueError(f"ec2 driver option {key}: expected an id like {prefix}-0123abcd, got {value!r}")
    return value


def _flag(options: Mapping[str, str], key: str) -> bool:
    raw = options.get(key, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"ec2 driver option {key}: expected true or false, got {options[key]!r}")


def _number(options: Mapping[str, str], key: str, default: N, kind: Callable[[str], N], *,
            minimum: float, maximum: float = math.inf) -> N:
    raw = options.get(key, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"ec2 driver option {key}: expected {what}, got {options[key]!r}") from None
    if not minimum <= value <= maximum:  # also refuses NaN
        bounds = f"at least {minimum:g}" if maximum == math.inf else f"between {minimum:g} and {maximum:g}"
        raise ValueError(f"ec2 driver option {key}: must be {bounds}, got {options[key]!r}")
    return value

"""OCCI-free values of the EGI / rOCCI resource types: security groups, their links, IP reservations.

A driver that realises them lists the resource types below in `supports` and accepts these specs
in `create` (and `SecurityGroupUpdate` in `update`, listing "rules" in the securitygroup's
`Support.updates`); its floating IP pools are `POOL` templates. The service's binding
(`service/bindings/egi.py`) is the only place that maps them to OCCI attributes (docs/extensions.md,
"EGI"). Imports only backends.base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from occipy.backends.base import POOL as _POOL
from occipy.backends.base import FirewallRule, resource

SECURITYGROUP: Final = "securitygroup"
SECURITYGROUPLINK: Final = "securitygrouplink"
IPRESERVATION: Final = "ipreservation"
# Template family of a floating IP pool (`Template.name` is what `IpReservationSpec.pool` takes): the
# service offers each as a provider child of the `floatingippool` parent mixin (`backends.base.POOL`).
POOL: Final = _POOL


@resource(SECURITYGROUP)
@dataclass(frozen=True, slots=True)
class SecurityGroupSpec:
    """A named set of firewall rules; traffic a rule does not allow is refused inbound."""

    name: str
    entity_id: str = ""
    rules: tuple[FirewallRule, ...] = ()


@dataclass(frozen=True, slots=True)
class SecurityGroupFacts:
    rules: tuple[FirewallRule, ...] = ()


@resource(SECURITYGROUPLINK)
@dataclass(frozen=True, slots=True)
class SecurityGroupLinkSpec:
    """Apply a security group to every network interface of a compute (backend ids of the ends)."""

    name: str
    compute_id: str
    group_id: str
    entity_id: str = ""


@resource(IPRESERVATION)
@dataclass(frozen=True, slots=True)
class IpReservationSpec:
    """Reserve a public (floating) address, from `pool` (None: the cloud's default pool)."""

    name: str
    entity_id: str = ""
    address: str | None = None  # the address wanted (None: the cloud picks one)
    pool: str | None = None


@dataclass(frozen=True, slots=True)
class IpReservationFacts:
    address: str | None = None
    used: bool = False  # attached to a compute's interface
    pool: str | None = None


__all__ = [
    "IPRESERVATION",
    "POOL",
    "SECURITYGROUP",
    "SECURITYGROUPLINK",
    "IpReservationFacts",
    "IpReservationSpec",
    "SecurityGroupFacts",
    "SecurityGroupLinkSpec",
    "SecurityGroupSpec",
]

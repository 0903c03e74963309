"""EGI / rOCCI infrastructure extensions: security groups, IP reservations, zones, regions, pools.

Kinds `securitygroup`, `securitygrouplink` (compute -> securitygroup) and `ipreservation` (a
sub-kind of network: a floating IP); parent mixins `availability_zone`, `region` and
`floatingippool` whose provider children clients discover; the OpenStack contextualisation
mixins as input aliases of `ssh_key`/`user_data` (monitoring-and-extensions.md §4-§6).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from occipy.errors import InvalidAttribute
from occipy.model._catalogue_data import CATALOGUE, EXTENSIONS
from occipy.model.catalogue import COMPUTE, DRAFT_04, NETWORK_ACTION, NETWORKINTERFACE
from occipy.model.category import AttributeDef, AttributeValue, Category, Mixin
from occipy.model.extensions import _build
from occipy.model.extensions.base import Extension, Feature, LinkEnds, StateMachine, frozen, with_pattern
from occipy.model.registry import Registry

INFRA = "http://schemas.ogf.org/occi/infrastructure#"
SECURITYGROUP = INFRA + "securitygroup"
SECURITYGROUPLINK = INFRA + "securitygrouplink"
IPRESERVATION = INFRA + "ipreservation"
AVAILABILITY_ZONE = INFRA + "availability_zone"
REGION = INFRA + "region"
FLOATINGIPPOOL = "http://schemas.openstack.org/network#floatingippool"
# rOCCI-core's own action scheme for ipreservation; ooi sends the inherited network actions.
IPRESERVATION_ACTION = "http://schemas.ogf.org/occi/infrastructure/ipreservation/action#"
RULES = "occi.securitygroup.rules"
ADDRESS = "occi.ipreservation.address"

_DATA = EXTENSIONS["egi"]

# ---- the security-group rule format ---------------------------------------------------------

RULE_KEYS = ("type", "protocol", "port", "range", "ipversion")
DIRECTIONS = ("inbound", "outbound")
IP_VERSIONS = {"IPv4": 4, "IPv6": 6}
# IANA protocol keywords are lower case (tcp, udp, icmp, ipv6-icmp, ...); numbers 0-255 also name one.
_PROTOCOL = re.compile(r"[a-z][a-z0-9.+-]{0,31}")
_PORTS = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?")
_NO_PORTS = frozenset({"icmp", "icmpv6", "ipv6-icmp", "1", "58"})


@dataclass(frozen=True, slots=True)
class SecurityRule:
    """One rule of a security group (monitoring-and-extensions.md §4.1, union of ooi and rOCCI)."""

    direction: str  # "inbound" | "outbound" (ooi: Neutron ingress | egress)
    protocol: str  # lower-case IANA keyword or protocol number, as text
    ports: tuple[int, int] | None = None  # first, last (a single port: both the same)
    remote: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None  # the `range`
    ipversion: str | None = None  # "IPv4" | "IPv6" (ooi)

    def to_json(self) -> dict[str, str]:
        """The canonical wire form of the rule."""
        result = {"type": self.direction, "protocol": self.protocol}
        if self.ports is not None:
            first, last = self.ports
            result["port"] = str(first) if first == last else f"{first}-{last}"
        if self.remote is not None:
            result["range"] = str(self.remote)
        if self.ipversion is not None:
            result["ipversion"] = self.ipversion
        return result


def _rule_error(index: int, problem: str) -> InvalidAttribute:
    return InvalidAttribute(f"attribute {RULES}: rule {index}: {problem}")


def parse_rule(value: object, index: int = 0) -> SecurityRule:
    """One rule object, checked; InvalidAttribute names the attribute, the rule and the key."""
    if not isinstance(value, dict):
        raise _rule_error(index, "a rule is a JSON object with type, protocol, port, range, ipversion")
    unknown = sorted(str(key) for key in value if key not in RULE_KEYS)
    if unknown:
        raise _rule_error(index, f"unknown key {unknown[0]!r} (known: {', '.join(RULE_KEYS)})")
    direction = value.get("type")
    if direction not in DIRECTIONS:
        raise _rule_error(index, f"type must be inbound or outbound, not {direction!r}")
    protocol = value.get("protocol")
    if isinstance(protocol, int) and not isinstance(protocol, bool):
        protocol = str(protocol)
    if not isinstance(protocol, str) or not (_PROTOCOL.fullmatch(protocol) or protocol.isdigit()):
        raise _rule_error(index, f"protocol must be a lower-case protocol name (tcp, udp, icmp, ...) or number, "
                                 f"not {protocol!r}")
    if protocol.isdigit():
        if not protocol.isascii() or int(protocol) > 255:
            raise _rule_error(index, f"protocol number {protocol} is not between 0 and 255")
        protocol = str(int(protocol))
    ports = _ports(value.get("port"), protocol, index) if "port" in value else None
    remote = None
    if "range" in value:
        text = value["range"]
        try:
            remote = ipaddress.ip_network(text if isinstance(text, str) and text.isascii() else "", strict=False)
        except ValueError:
            raise _rule_error(index, f"range must be a CIDR prefix such as 10.0.0.0/24, not {text!r}") from None
    ipversion = value.get("ipversion")
    if ipversion is not None:
        if ipversion not in IP_VERSIONS:
            raise _rule_error(index, f"ipversion must be IPv4 or IPv6, not {ipversion!r}")
        if remote is not None and remote.version != IP_VERSIONS[ipversion]:
            raise _rule_error(index, f"range {remote} is not an {ipversion} prefix")
    return SecurityRule(direction=direction, protocol=protocol, ports=ports, remote=remote, ipversion=ipversion)


def _ports(value: object, protocol: str, index: int) -> tuple[int, int]:
    if protocol in _NO_PORTS:
        raise _rule_error(index, f"protocol {protocol} has no ports")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    match = _PORTS.fullmatch(value) if isinstance(value, str) and value.isascii() else None
    if match is None:
        raise _rule_error(index, f"port must be a port such as \"22\" or a range such as \"1000-2000\", not {value!r}")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else first
    if not 1 <= first <= 65535 or not 1 <= last <= 65535:
        raise _rule_error(index, f"port {value} is not between 1 and 65535")
    if last < first:
        raise _rule_error(index, f"port range {value} ends before it starts")
    return first, last


def parse_rules(value: object) -> tuple[SecurityRule, ...]:
    """The value of occi.securitygroup.rules: an array of rule objects (possibly empty)."""
    if not isinstance(value, list):
        raise InvalidAttribute(f"attribute {RULES}: expected an array of rule objects")
    return tuple(parse_rule(rule, index) for index, rule in enumerate(value))


# ---- entity checks ---------------------------------------------------------------------------

def validate(kind_id: str, mixin_ids: Sequence[str], attributes: Mapping[str, AttributeValue],
             registry: Registry) -> None:
    """Security-group rules follow the rule format; a reserved address is one address."""
    if not registry.is_kind(kind_id):
        return
    ancestors = registry.ancestors(kind_id)
    if SECURITYGROUP in ancestors and RULES in attributes:
        parse_rules(attributes[RULES])
    if IPRESERVATION in ancestors and ADDRESS in attributes:
        text = attributes[ADDRESS]
        try:
            interface = ipaddress.ip_interface(text if isinstance(text, str) else "")
        except ValueError:
            raise InvalidAttribute(f"attribute {ADDRESS}: {text!r} is not an IP address") from None
        if interface.network.prefixlen != interface.max_prefixlen:
            raise InvalidAttribute(f"attribute {ADDRESS}: a reservation is one address, not the prefix {text}")


# ---- categories ------------------------------------------------------------------------------

def _rules(adef: AttributeDef) -> AttributeDef:
    # The `items` schema documents the rule format in discovery; the hook above enforces it.
    items = {"type": "object", "additionalProperties": False, "required": ["type", "protocol"],
             "properties": {"type": {"enum": list(DIRECTIONS)}, "protocol": {"type": "string"},
                            "port": {"type": "string", "pattern": "^[0-9]+(-[0-9]+)?$"},
                            "range": {"type": "string", "description": "CIDR prefix"},
                            "ipversion": {"enum": list(IP_VERSIONS)}}}
    return with_pattern(adef, {"$schema": DRAFT_04, "type": "array", "items": items})


def _optional(adef: AttributeDef) -> AttributeDef:
    # rOCCI requires the address; ooi allocates one from the pool when none is given. Optional,
    # so that both work (docs/extensions.md D-EXT-EGI-ADDRESS).
    return AttributeDef(name=adef.name, type=adef.type, mutable=adef.mutable, required=False, pattern=adef.pattern,
                        default=adef.default, description=adef.description, write_once=adef.write_once)


def _pool_applies(category: Category) -> Category:
    # ooi puts pools on networkinterfaces, rOCCI-server on ipreservations: accept both.
    assert isinstance(category, Mixin)
    return _build.replace(category, applies=(NETWORKINTERFACE, IPRESERVATION))


CATEGORIES = _build.categories(
    _DATA,
    attribute_fixes={RULES: _rules, ADDRESS: _optional},
    category_fixes={FLOATINGIPPOOL: _pool_applies},
    # Served as aliases of the inherited network actions (D-EXT-EGI-IPRESERVATION-ACTIONS).
    skip={IPRESERVATION_ACTION + "up", IPRESERVATION_ACTION + "down"},
)

_ACTIVITY = ("inactive", "active", "error")
MACHINES = (
    # rOCCI-core: every EGI kind starts `inactive`; the backend reports `active` (no actions).
    StateMachine(kind=SECURITYGROUP, attribute="occi.securitygroup.state", initial="inactive", states=_ACTIVITY,
                 error="error"),
    StateMachine(kind=SECURITYGROUPLINK, attribute="occi.securitygrouplink.state", initial="inactive",
                 states=_ACTIVITY, error="error"),
    # ipreservation is a network: up/down as the network diagram (GFD.224 §3.2), on its own state.
    StateMachine(kind=IPRESERVATION, attribute="occi.ipreservation.state", initial="inactive", states=_ACTIVITY,
                 transitions=(("inactive", NETWORK_ACTION + "up", "active"),
                              ("active", NETWORK_ACTION + "down", "inactive")),
                 error="error"),
)

_ALIASES = CATALOGUE["aliases"]

EXTENSION = Extension(
    name="egi",
    title="EGI / rOCCI infrastructure extensions",
    document="gwdg/rOCCI-core 5, gwdg/rOCCI-server 2, openstack/ooi",
    status="vendor",
    categories=CATEGORIES,
    requires=("infrastructure",),
    machines=MACHINES,
    category_aliases=frozen({
        **_build.aliases(_ALIASES, "egi", "category"),
        # rOCCI clients send rOCCI-core's scheme, ooi clients the network one: both run the same action.
        IPRESERVATION_ACTION + "up": NETWORK_ACTION + "up",
        IPRESERVATION_ACTION + "down": NETWORK_ACTION + "down",
    }),
    attribute_aliases=frozen(_build.aliases(_ALIASES, "egi", "attribute")),
    # ooi's public_key mixin names the key pair too; ssh_key has nothing to hold it.
    ignored_attributes=frozenset({"org.openstack.credentials.publickey.name"}),
    link_ends=frozen({
        # rOCCI-core securitygrouplink: "link compute (source) -> securitygroup (target)"
        SECURITYGROUPLINK: LinkEnds(sources=(COMPUTE,), targets=(SECURITYGROUP,)),
    }),
    # A floating address is attached to one compute at a time (Neutron, EC2): a second interface
    # to it is 409 before any cloud is asked.
    single_links=frozen({IPRESERVATION: NETWORKINTERFACE}),
    needs=frozen({
        SECURITYGROUP: Feature.SECURITY_GROUPS,
        SECURITYGROUPLINK: Feature.SECURITY_GROUPS,
        IPRESERVATION: Feature.FLOATING_IPS,
        FLOATINGIPPOOL: Feature.FLOATING_IPS,
    }),
    validate=validate,
)

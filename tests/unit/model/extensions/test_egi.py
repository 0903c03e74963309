"""occipy.model.extensions.egi: security groups and their rule format, IP reservations, parent mixins."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from occipy.errors import ActionNotAllowed, InvalidAttribute
from occipy.model import state
from occipy.model.catalogue import (
    COMPUTE,
    NETWORK,
    NETWORK_ACTION,
    NETWORKINTERFACE,
    SSH_KEY,
    STORAGE,
    USER_DATA,
)
from occipy.model.extensions import ExtensionSet, egi
from occipy.model.standard import standard_registry

REGISTRY = standard_registry()
EGI = ExtensionSet((egi.EXTENSION,))


# ---- categories ------------------------------------------------------------------------------

def test_kinds() -> None:
    group = REGISTRY.kind(egi.SECURITYGROUP)
    link = REGISTRY.kind(egi.SECURITYGROUPLINK)
    reservation = REGISTRY.kind(egi.IPRESERVATION)
    assert (group.location, link.location, reservation.location) == (
        "/securitygroup/", "/securitygrouplink/", "/ipreservation/")
    assert reservation.parent == NETWORK
    assert REGISTRY.is_link_kind(egi.SECURITYGROUPLINK)
    defs = REGISTRY.kind_attribute_defs(egi.IPRESERVATION)
    assert not defs["occi.ipreservation.used"].mutable and defs["occi.ipreservation.used"].default is False
    assert not defs[egi.ADDRESS].required  # D-EXT-EGI-ADDRESS: ooi allocates from the pool
    assert "occi.network.vlan" in defs  # an ipreservation is a network
    assert REGISTRY.kind_attribute_defs(egi.SECURITYGROUP)[egi.RULES].required


def test_parent_mixins() -> None:
    for mixin_id in (egi.AVAILABILITY_ZONE, egi.REGION):
        mixin = REGISTRY.mixin(mixin_id)
        assert mixin.attributes == () and mixin.applies == () and mixin.depends == ()
    assert REGISTRY.mixin(egi.FLOATINGIPPOOL).applies == (NETWORKINTERFACE, egi.IPRESERVATION)
    assert REGISTRY.by_location("/mixin/availability_zone/") == REGISTRY.mixin(egi.AVAILABILITY_ZONE)


def test_both_ipreservation_action_schemes_run_the_network_actions() -> None:
    for term in ("up", "down"):
        assert REGISTRY.canonical(egi.IPRESERVATION_ACTION + term) == NETWORK_ACTION + term
        assert REGISTRY.is_action(egi.IPRESERVATION_ACTION + term)
    assert REGISTRY.action_ids(egi.IPRESERVATION) == [NETWORK_ACTION + "up", NETWORK_ACTION + "down"]
    assert state.INITIAL_STATE[egi.IPRESERVATION] == "inactive"
    assert state.state_attribute(egi.IPRESERVATION) == "occi.ipreservation.state"
    assert state.next_state(egi.IPRESERVATION, "inactive", NETWORK_ACTION + "up") == "active"
    assert state.next_state(egi.IPRESERVATION, "active", NETWORK_ACTION + "down") == "inactive"
    with pytest.raises(ActionNotAllowed):
        state.next_state(egi.IPRESERVATION, "active", NETWORK_ACTION + "up")


def test_openstack_contextualisation_aliases() -> None:
    assert REGISTRY.canonical("http://schemas.openstack.org/instance/credentials#public_key") == SSH_KEY
    assert REGISTRY.canonical("http://schemas.openstack.org/compute/instance#user_data") == USER_DATA
    assert REGISTRY.canonical_attribute("org.openstack.credentials.publickey.data") == "occi.credentials.ssh.publickey"
    assert REGISTRY.canonical_attribute("org.openstack.compute.user_data") == "occi.compute.userdata"
    assert "org.openstack.credentials.publickey.name" in egi.EXTENSION.ignored_attributes
    # they are aliases, not categories of their own: discovery shows only the OGF mixins
    assert REGISTRY.find("http://schemas.openstack.org/instance/credentials#public_key") == REGISTRY.mixin(SSH_KEY)


def test_securitygrouplink_ends() -> None:
    EGI.check_link(REGISTRY, egi.SECURITYGROUPLINK, COMPUTE, egi.SECURITYGROUP)
    with pytest.raises(InvalidAttribute, match="occi.core.source"):
        EGI.check_link(REGISTRY, egi.SECURITYGROUPLINK, STORAGE, egi.SECURITYGROUP)
    with pytest.raises(InvalidAttribute, match="occi.core.target"):
        EGI.check_link(REGISTRY, egi.SECURITYGROUPLINK, COMPUTE, NETWORK)


# ---- the rule format ------------------------------------------------------------------------

GOOD_RULES: list[dict[str, Any]] = [
    {"type": "inbound", "protocol": "tcp", "port": "22", "range": "0.0.0.0/0"},
    {"type": "outbound", "protocol": "udp", "port": "1000-2000", "range": "10.0.0.0/24", "ipversion": "IPv4"},
    {"type": "inbound", "protocol": "icmp"},
    {"type": "inbound", "protocol": "tcp", "port": 443, "range": "2001:db8::/32", "ipversion": "IPv6"},
    {"type": "inbound", "protocol": "6", "port": "80-80"},
    {"type": "inbound", "protocol": "ipv6-icmp", "range": "::/0"},
]


@pytest.mark.parametrize("rule", GOOD_RULES)
def test_good_rules(rule: dict[str, Any]) -> None:
    parsed = egi.parse_rule(rule)
    assert egi.parse_rule(parsed.to_json()) == parsed


def test_parsed_values() -> None:
    rule = egi.parse_rule(GOOD_RULES[1])
    assert (rule.direction, rule.protocol, rule.ports, rule.ipversion) == ("outbound", "udp", (1000, 2000), "IPv4")
    assert rule.remote == ipaddress.ip_network("10.0.0.0/24")
    assert egi.parse_rule({"type": "inbound", "protocol": 17, "port": "53"}).protocol == "17"


BAD_RULES: list[tuple[Any, str]] = [
    ("tcp/22", "a rule is a JSON object"),
    ({"protocol": "tcp"}, "type must be inbound or outbound"),
    ({"type": "ingress", "protocol": "tcp"}, "type must be inbound or outbound"),
    ({"type": "inbound"}, "protocol must be"),
    ({"type": "inbound", "protocol": "TCP"}, "protocol must be"),
    ({"type": "inbound", "protocol": "256"}, "between 0 and 255"),
    ({"type": "inbound", "protocol": True}, "protocol must be"),
    ({"type": "inbound", "protocol": "tcp", "port": "0"}, "between 1 and 65535"),
    ({"type": "inbound", "protocol": "tcp", "port": "65536"}, "between 1 and 65535"),
    ({"type": "inbound", "protocol": "tcp", "port": "2000-1000"}, "ends before it starts"),
    ({"type": "inbound", "protocol": "tcp", "port": "ssh"}, "port must be"),
    ({"type": "inbound", "protocol": "tcp", "port": "22,80"}, "port must be"),
    ({"type": "inbound", "protocol": "icmp", "port": "22"}, "has no ports"),
    ({"type": "inbound", "protocol": "tcp", "range": "10.0.0.0/33"}, "range must be a CIDR"),
    ({"type": "inbound", "protocol": "tcp", "range": "anywhere"}, "range must be a CIDR"),
    ({"type": "inbound", "protocol": "tcp", "range": "10.0.0.0/8", "ipversion": "IPv6"}, "not an IPv6 prefix"),
    ({"type": "inbound", "protocol": "tcp", "ipversion": "4"}, "ipversion must be"),
    ({"type": "inbound", "protocol": "tcp", "ports": "22"}, "unknown key 'ports'"),
]


@pytest.mark.parametrize(("rule", "problem"), BAD_RULES)
def test_bad_rules(rule: Any, problem: str) -> None:
    with pytest.raises(InvalidAttribute, match=f"attribute occi.securitygroup.rules: rule 3: .*{problem}"):
        egi.parse_rule(rule, 3)


def test_rules_value() -> None:
    assert egi.parse_rules([]) == ()
    assert len(egi.parse_rules(GOOD_RULES)) == len(GOOD_RULES)
    with pytest.raises(InvalidAttribute, match="rule 1"):
        egi.parse_rules([GOOD_RULES[0], {"type": "sideways", "protocol": "tcp"}])
    with pytest.raises(InvalidAttribute, match="expected an array"):
        egi.parse_rules({"type": "inbound"})


RULES = st.builds(
    egi.SecurityRule,
    direction=st.sampled_from(egi.DIRECTIONS),
    protocol=st.sampled_from(["tcp", "udp", "sctp", "6", "17"]),
    ports=st.one_of(st.none(), st.tuples(st.integers(1, 65535), st.integers(1, 65535)).map(
        lambda p: (min(p), max(p)))),
    remote=st.one_of(st.none(), st.ip_addresses(v=4).map(lambda a: ipaddress.ip_network(f"{a}/24", strict=False)),
                     st.ip_addresses(v=6).map(lambda a: ipaddress.ip_network(f"{a}/64", strict=False))),
    ipversion=st.none(),
)


@given(RULES)
def test_rule_round_trip(rule: egi.SecurityRule) -> None:
    assert egi.parse_rule(rule.to_json()) == rule


@given(st.dictionaries(st.sampled_from([*egi.RULE_KEYS, "x"]),
                       st.one_of(st.text(max_size=20), st.integers(-5, 70000), st.booleans(), st.none()),
                       max_size=6))
def test_any_object_parses_or_raises_invalid_attribute(value: dict[str, Any]) -> None:
    try:
        egi.parse_rule(value)
    except InvalidAttribute as exc:
        assert exc.message.startswith("attribute occi.securitygroup.rules: rule 0: ")


@given(st.text(max_size=15))
def test_any_port_text_parses_or_raises_invalid_attribute(port: str) -> None:
    try:
        rule = egi.parse_rule({"type": "inbound", "protocol": "tcp", "port": port})
    except InvalidAttribute:
        return
    assert rule.ports is not None and 1 <= rule.ports[0] <= rule.ports[1] <= 65535


# ---- entity checks ---------------------------------------------------------------------------

def test_validate_checks_rules_and_addresses() -> None:
    EGI.validate(egi.SECURITYGROUP, (), {egi.RULES: GOOD_RULES}, REGISTRY)
    with pytest.raises(InvalidAttribute, match="rule 0"):
        EGI.validate(egi.SECURITYGROUP, (), {egi.RULES: [{"type": "inbound", "protocol": "tcp", "port": "x"}]},
                     REGISTRY)
    EGI.validate(egi.IPRESERVATION, (), {egi.ADDRESS: "192.0.2.10"}, REGISTRY)
    EGI.validate(egi.IPRESERVATION, (), {egi.ADDRESS: "2001:db8::10/128"}, REGISTRY)
    with pytest.raises(InvalidAttribute, match="one address"):
        EGI.validate(egi.IPRESERVATION, (), {egi.ADDRESS: "192.0.2.0/24"}, REGISTRY)
    with pytest.raises(InvalidAttribute, match="not an IP address"):
        EGI.validate(egi.IPRESERVATION, (), {egi.ADDRESS: "example.org"}, REGISTRY)
    EGI.validate(COMPUTE, (), {egi.RULES: "anything"}, REGISTRY)


def test_rules_attribute_documents_the_format_in_discovery() -> None:
    pattern = REGISTRY.kind_attribute_defs(egi.SECURITYGROUP)[egi.RULES].pattern
    assert pattern is not None and pattern["type"] == "array"
    assert set(pattern["items"]["properties"]) == set(egi.RULE_KEYS)


def test_needs() -> None:
    assert egi.EXTENSION.needs == {
        egi.SECURITYGROUP: egi.Feature.SECURITY_GROUPS, egi.SECURITYGROUPLINK: egi.Feature.SECURITY_GROUPS,
        egi.IPRESERVATION: egi.Feature.FLOATING_IPS, egi.FLOATINGIPPOOL: egi.Feature.FLOATING_IPS}

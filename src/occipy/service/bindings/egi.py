"""The EGI / rOCCI kinds realised by driver resource types: securitygroup, securitygrouplink,
ipreservation (monitoring-and-extensions.md §4; docs/extensions.md "EGI").

The only place where the EGI OCCI attribute names meet the driver's values
(`backends/egi_types.py`). A driver realises a kind by listing its resource type in `supports`;
one that does not leaves the kind out of discovery (service/cloud.py `unrealisable`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from occipy.backends import base as driver
from occipy.backends import egi_types as t
from occipy.errors import InvalidAttribute, NotSupported
from occipy.model.category import AttributeValue
from occipy.model.entity import Entity
from occipy.model.extensions import egi
from occipy.service.bindings import Binding, Reported, SpecInput, register

RULES: Final = egi.RULES
ADDRESS: Final = egi.ADDRESS
USED: Final = "occi.ipreservation.used"
# The pool chosen by a floatingippool child mixin is the mixin's term (ooi, rOCCI).
_EMPTY: Final[Mapping[str, str]] = {}


def firewall_rules(value: object) -> tuple[driver.FirewallRule, ...]:
    """occi.securitygroup.rules as driver rules (the model has checked the format already)."""
    if value is None:
        return ()
    rules = []
    for rule in egi.parse_rules(value):
        version = rule.remote.version if rule.remote is not None else egi.IP_VERSIONS.get(rule.ipversion or "", 4)
        rules.append(driver.FirewallRule(direction=rule.direction, protocol=rule.protocol, ports=rule.ports,
                                         remote=str(rule.remote) if rule.remote is not None else None,
                                         ipversion=version))
    return tuple(rules)


def rules_json(rules: Sequence[driver.FirewallRule]) -> list[dict[str, str]]:
    """Driver rules in the canonical wire form of occi.securitygroup.rules."""
    result = []
    for rule in rules:
        item = {"type": rule.direction, "protocol": rule.protocol}
        if rule.ports is not None:
            first, last = rule.ports
            item["port"] = str(first) if first == last else f"{first}-{last}"
        if rule.remote is not None:
            item["range"] = rule.remote
        item["ipversion"] = f"IPv{rule.ipversion}"
        result.append(item)
    return result


class _Base:
    live: Mapping[str, str] = _EMPTY
    reported: frozenset[str] = frozenset()

    def action(self, term: str, params: Mapping[str, AttributeValue]) -> driver.Action:
        plain = {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool))}
        return driver.Custom(name=term, params=plain)

    def update(self, fields: Mapping[str, object]) -> driver.Update:
        raise NotSupported("this resource cannot be changed while it exists")

    def proposal(self, siblings: Sequence[Entity]) -> Mapping[str, AttributeValue]:
        return {}

    def facts(self, entity: Entity) -> object | None:
        return None

    def report(self, facts: object | None) -> Reported:
        return Reported()


class SecurityGroupBinding(_Base):
    kind: str = egi.SECURITYGROUP
    resource: str = t.SECURITYGROUP
    created_state: str = "active"
    # The rules can change on a live group: every compute that uses it follows.
    live: Mapping[str, str] = {RULES: "rules"}

    def spec(self, entity: Entity, given: SpecInput) -> object:
        return t.SecurityGroupSpec(name=given.name, entity_id=entity.entity_id,
                                   rules=firewall_rules(entity.attributes.get(RULES)))

    def update(self, fields: Mapping[str, object]) -> driver.Update:
        try:
            return driver.SecurityGroupUpdate(rules=firewall_rules(fields.get("rules", [])))
        except InvalidAttribute:
            raise
        except (TypeError, ValueError) as error:  # pragma: no cover - the model checked the rules
            raise InvalidAttribute(f"attribute {RULES}: {error}") from None

    def facts(self, entity: Entity) -> object | None:
        try:
            return t.SecurityGroupFacts(rules=firewall_rules(entity.attributes.get(RULES)))
        except InvalidAttribute:
            return t.SecurityGroupFacts()


class SecurityGroupLinkBinding(_Base):
    kind: str = egi.SECURITYGROUPLINK
    resource: str = t.SECURITYGROUPLINK
    created_state: str = "active"

    def spec(self, entity: Entity, given: SpecInput) -> object:
        assert given.ends is not None
        return t.SecurityGroupLinkSpec(name=given.name, entity_id=entity.entity_id, compute_id=given.ends[0],
                                       group_id=given.ends[1])


class IpReservationBinding(_Base):
    kind: str = egi.IPRESERVATION
    resource: str = t.IPRESERVATION
    created_state: str = "inactive"  # reserved; `up` activates it (rOCCI-core's ipreservation diagram)
    reported: frozenset[str] = frozenset({ADDRESS})

    def spec(self, entity: Entity, given: SpecInput) -> object:
        address = entity.attributes.get(ADDRESS)
        # The driver's name of the pool child the cloud offers, else the term of a floatingippool child.
        pool = given.templates.get(t.POOL) or next((m.rpartition("#")[2] for m in entity.mixins
                                                    if m.rpartition("#")[0].endswith("floatingippool")), None)
        return t.IpReservationSpec(name=given.name, entity_id=entity.entity_id,
                                   address=address.partition("/")[0] if isinstance(address, str) else None,
                                   pool=pool)

    def report(self, facts: object | None) -> Reported:
        if not isinstance(facts, t.IpReservationFacts):
            return Reported()
        values: dict[str, AttributeValue] = {USED: facts.used}
        if facts.address is not None:
            values[ADDRESS] = facts.address
        return Reported(values)

    def facts(self, entity: Entity) -> object | None:
        address = entity.attributes.get(ADDRESS)
        return t.IpReservationFacts(address=address if isinstance(address, str) else None,
                                    used=bool(entity.attributes.get(USED)))

    def action(self, term: str, params: Mapping[str, AttributeValue]) -> driver.Action:
        # An ipreservation is a network: the inherited up/down (D-EXT-EGI-IPRESERVATION-ACTIONS).
        if term == "up":
            return driver.Up()
        if term == "down":
            return driver.Down()
        return super().action(term, params)


EGI: tuple[Binding, ...] = (SecurityGroupBinding(), SecurityGroupLinkBinding(), IpReservationBinding())
for _binding in EGI:
    register(_binding)

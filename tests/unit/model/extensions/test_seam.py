"""The extension seam: selection, registry building, the state table, link ends, features, claims."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from occipy.errors import ActionNotAllowed, Conflict, InvalidAttribute
from occipy.model import state
from occipy.model.catalogue import (
    COMPUTE,
    NETWORK,
    NETWORKINTERFACE,
    SSH_KEY,
    STORAGE,
    STORAGELINK,
    USER_DATA,
)
from occipy.model.category import Kind
from occipy.model.extensions import (
    ALL,
    BY_NAME,
    Extension,
    ExtensionSet,
    Feature,
    LinkEnds,
    StateMachine,
    creates_cycle,
    crtp,
    egi,
    infrastructure,
    monitoring,
    ordered,
    platform,
    select,
    sla,
)
from occipy.model.registry import LINK, RESOURCE
from occipy.model.standard import standard_registry

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
EVERYTHING = ExtensionSet(ALL)
REGISTRY = standard_registry()


# ---- selection and registration -----------------------------------------------------------------

def test_all_lists_one_extension_per_module_in_registration_order() -> None:
    assert [ext.name for ext in ALL] == ["infrastructure", "crtp", "platform", "sla", "monitoring", "egi"]
    assert ALL == (infrastructure.EXTENSION, crtp.EXTENSION, platform.EXTENSION, sla.EXTENSION,
                   monitoring.EXTENSION, egi.EXTENSION)


def test_select_adds_what_an_extension_requires() -> None:
    assert [ext.name for ext in select(["egi"])] == ["infrastructure", "egi"]
    assert [ext.name for ext in select(["sla", "crtp", "platform"])] == ["infrastructure", "crtp", "platform", "sla"]
    assert [ext.name for ext in select(["platform"])] == ["platform"]


def test_select_names_an_unknown_extension() -> None:
    with pytest.raises(ValueError, match="unknown OCCI extension 'modmacao'"):
        select(["platform", "modmacao"])


def test_ordered_refuses_a_missing_requirement() -> None:
    with pytest.raises(ValueError, match="egi requires infrastructure"):
        ordered([egi.EXTENSION])
    assert ordered([egi.EXTENSION, infrastructure.EXTENSION]) == (infrastructure.EXTENSION, egi.EXTENSION)


def test_default_registry_serves_every_extension() -> None:
    for ext in ALL:
        for category in ext.categories:
            assert REGISTRY.find(category.type_id) == category, category.type_id


def test_registry_of_a_selection_serves_only_that() -> None:
    registry = standard_registry(select(["platform"]))
    assert registry.is_kind(platform.APPLICATION)
    assert not registry.is_kind(COMPUTE)
    assert not registry.is_kind(sla.AGREEMENT)
    assert {k.type_id for k in registry.kinds()} == {
        "http://schemas.ogf.org/occi/core#entity", RESOURCE, LINK,
        platform.APPLICATION, platform.COMPONENT, platform.COMPONENTLINK}


def test_registry_of_infrastructure_alone_has_no_crtp_templates() -> None:
    registry = standard_registry(select(["infrastructure"]))
    assert registry.is_kind(COMPUTE)
    assert not registry.is_mixin("http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#small")
    # the CRTP 1.0 scheme is an alias only when its canonical template is served
    assert registry.find("http://schemas.ogf.org/occi/infrastructure/compute/template/1.0#small") is None


def test_registry_refuses_a_selection_without_its_requirements() -> None:
    with pytest.raises(ValueError):
        standard_registry([egi.EXTENSION])


def test_aliases_come_with_their_extension() -> None:
    assert REGISTRY.canonical("http://schemas.openstack.org/instance/credentials#public_key") == SSH_KEY
    assert REGISTRY.canonical("http://schemas.openstack.org/compute/instance#user_data") == USER_DATA
    assert REGISTRY.canonical_attribute("org.openstack.compute.user_data") == "occi.compute.userdata"
    assert REGISTRY.canonical("http://schemas.ogf.org/occi/sla/agreement/action#accept") == sla.ACCEPT
    assert REGISTRY.canonical_value("deffered") == "deferred"
    # per-attribute aliases never become global: a compute stays "suspended"
    assert REGISTRY.canonical_value("suspended") == "suspended"
    without_egi = standard_registry(select(["infrastructure", "crtp"]))
    public_key = "http://schemas.openstack.org/instance/credentials#public_key"
    assert without_egi.canonical(public_key) == public_key
    assert without_egi.canonical_attribute("org.openstack.compute.user_data") == "org.openstack.compute.user_data"


def test_default_registry_still_has_every_alias_it_had_before() -> None:
    """The old standard_registry() added every catalogue alias but the SLA enum values."""
    from occipy.model._catalogue_data import CATALOGUE

    for alias in CATALOGUE["aliases"]:
        if alias["kind"] == "category" and REGISTRY.find(alias["canonical"]) is not None:
            assert REGISTRY.canonical(alias["alias"]) == alias["canonical"]
        elif alias["kind"] == "attribute":
            assert REGISTRY.canonical_attribute(alias["alias"]) == alias["canonical"]


# ---- the state table -----------------------------------------------------------------------------

def test_state_table_holds_every_extension_machine() -> None:
    kinds = {machine.kind for ext in ALL for machine in ext.machines}
    assert set(state.MACHINES) == kinds
    assert state.INITIAL_STATE[platform.APPLICATION] == "active"
    assert state.INITIAL_STATE[sla.AGREEMENT] == "Pending"
    assert state.INITIAL_STATE[egi.SECURITYGROUP] == "inactive"
    assert state.STATE_ATTRIBUTE[sla.AGREEMENT] == "occi.agreement.state"
    assert sla.AGREEMENT not in state.ERROR_STATE
    assert state.ERROR_STATE[platform.COMPONENT] == "error"


def test_infrastructure_table_is_unchanged() -> None:
    start = "http://schemas.ogf.org/occi/infrastructure/compute/action#start"
    backup = "http://schemas.ogf.org/occi/infrastructure/storage/action#backup"
    assert state.next_state(COMPUTE, "inactive", start) == "active"
    with pytest.raises(ActionNotAllowed):
        state.next_state(COMPUTE, "active", start)
    # the OCCI 1.1 storage diagram is not served: backup is allowed online and offline and keeps
    # the state (D-LEGACY-STORAGE), there is no `backup` state
    assert state.next_state(STORAGE, "online", backup) == "online"
    assert "backup" not in state.MACHINES[STORAGE].states


def test_already_there_is_where_the_action_leads_without_a_row_from_there() -> None:
    # D-COLLECTION-NOOP: a collection action leaves these members alone.
    action = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
    assert state.already_there(COMPUTE, "active", action + "start")
    assert state.already_there(COMPUTE, "inactive", action + "stop")
    assert state.already_there(COMPUTE, "suspended", action + "suspend")
    assert not state.already_there(COMPUTE, "inactive", action + "start")  # a real transition
    assert not state.already_there(COMPUTE, "active", action + "restart")  # has a row from active
    assert not state.already_there(COMPUTE, "suspended", action + "stop")  # not where stop leads
    assert not state.already_there(COMPUTE, "error", action + "start")
    assert not state.already_there(COMPUTE, None, action + "start")
    assert not state.already_there(STORAGE, "online", "http://schemas.ogf.org/occi/infrastructure/storage/action#backup")


def test_state_machine_refuses_unknown_states() -> None:
    with pytest.raises(ValueError, match="unknown state"):
        StateMachine(kind="k", attribute="a", initial="x", states=("x",), transitions=(("x", "act", "y"),))
    with pytest.raises(ValueError, match="initial"):
        StateMachine(kind="k", attribute="a", initial="z", states=("x",))


def test_every_machine_action_is_an_action_of_its_kind() -> None:
    for machine in state.MACHINES.values():
        actions = REGISTRY.action_ids(machine.kind)
        for _, action, _ in machine.transitions:
            assert action in actions, (machine.kind, action)
        assert machine.initial in machine.states
        adef = REGISTRY.kind_attribute_defs(machine.kind)[machine.attribute]
        assert not adef.mutable, machine.attribute


# ---- link ends -------------------------------------------------------------------------------

INFRA_LINKS = [
    (NETWORKINTERFACE, COMPUTE, NETWORK, None),
    (NETWORKINTERFACE, STORAGE, NETWORK, "occi.core.source"),
    (NETWORKINTERFACE, COMPUTE, STORAGE, "occi.core.target"),
    (NETWORKINTERFACE, COMPUTE, COMPUTE, "occi.core.target"),
    (NETWORKINTERFACE, COMPUTE, egi.IPRESERVATION, None),  # a floating IP is a network
    (STORAGELINK, COMPUTE, STORAGE, None),
    (STORAGELINK, COMPUTE, COMPUTE, "occi.core.target"),
    (STORAGELINK, COMPUTE, NETWORK, "occi.core.target"),
    (STORAGELINK, NETWORK, STORAGE, "occi.core.source"),
]


@pytest.mark.parametrize(("link", "source", "target", "refused"), INFRA_LINKS)
def test_infrastructure_link_ends(link: str, source: str, target: str, refused: str | None) -> None:
    if refused is None:
        EVERYTHING.check_link(REGISTRY, link, source, target)
        return
    with pytest.raises(InvalidAttribute, match=refused):
        EVERYTHING.check_link(REGISTRY, link, source, target)


def test_infrastructure_links_need_an_occi_target() -> None:
    with pytest.raises(InvalidAttribute, match="external URI"):
        EVERYTHING.check_link(REGISTRY, STORAGELINK, COMPUTE, None)


def test_message_names_the_kinds() -> None:
    with pytest.raises(InvalidAttribute) as info:
        EVERYTHING.check_link(REGISTRY, NETWORKINTERFACE, STORAGE, NETWORK)
    assert info.value.message == ("attribute occi.core.source: a networkinterface starts at a compute, "
                                  "not at a storage")


def test_a_link_kind_without_a_rule_is_not_checked() -> None:
    EVERYTHING.check_link(REGISTRY, LINK, STORAGE, None)
    assert EVERYTHING.link_ends(REGISTRY, LINK) is None


def test_sub_kinds_inherit_the_rule_of_their_link_kind() -> None:
    registry = standard_registry()
    registry.add(Kind(scheme="http://example.com/occi#", term="fastnic", parent=NETWORKINTERFACE,
                      location="/fastnic/"))
    assert EVERYTHING.link_ends(registry, "http://example.com/occi#fastnic") == LinkEnds((COMPUTE,), (NETWORK,))
    with pytest.raises(InvalidAttribute):
        EVERYTHING.check_link(registry, "http://example.com/occi#fastnic", STORAGE, NETWORK)


def test_only_the_chosen_extensions_rules_apply() -> None:
    infra_only = ExtensionSet(select(["infrastructure"]))
    assert infra_only.link_ends(REGISTRY, sla.AGREEMENT_LINK) is None
    infra_only.check_link(REGISTRY, sla.AGREEMENT_LINK, COMPUTE, COMPUTE)


def test_source_state_refusal_is_a_conflict() -> None:
    with pytest.raises(Conflict, match="Accepted"):
        EVERYTHING.check_link(REGISTRY, sla.AGREEMENT_LINK, sla.AGREEMENT, COMPUTE,
                              source_attributes={"occi.agreement.state": "Pending"})


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from("abcdef")), max_size=12),
       st.sampled_from("abcdef"), st.sampled_from("abcdef"))
def test_creates_cycle_agrees_with_reachability(edges: list[tuple[str, str]], source: str, target: str) -> None:
    reach = {target}
    changed = True
    while changed:
        changed = False
        for start, end in edges:
            if start in reach and end not in reach:
                reach.add(end)
                changed = True
    assert creates_cycle(edges, source, target) == (source in reach)


# ---- hooks, features, claims -------------------------------------------------------------------

def test_hooks_run_for_every_member() -> None:
    with pytest.raises(InvalidAttribute, match="occi.agreement.effectiveFrom"):
        EVERYTHING.validate(sla.AGREEMENT, (), {"occi.agreement.effectiveFrom": "P1D"}, REGISTRY)
    with pytest.raises(InvalidAttribute, match="occi.securitygroup.rules"):
        EVERYTHING.validate(egi.SECURITYGROUP, (), {"occi.securitygroup.rules": [{}]}, REGISTRY)
    EVERYTHING.validate(COMPUTE, (), {"occi.compute.cores": 2}, REGISTRY)
    assert EVERYTHING.on_action(sla.AGREEMENT, sla.ACCEPT, {}, NOW) == {
        "occi.agreement.agreedAt": "2030-01-01T12:00:00+00:00"}
    assert EVERYTHING.on_action(COMPUTE, "http://schemas.ogf.org/occi/infrastructure/compute/action#start",
                                {}, NOW) == {}
    assert EVERYTHING.on_create(COMPUTE, (), {}, REGISTRY, NOW) == {}


def test_a_set_without_the_extension_skips_its_hooks() -> None:
    ExtensionSet(select(["infrastructure"])).validate(sla.AGREEMENT, (), {"occi.agreement.effectiveFrom": "P1D"},
                                                      REGISTRY)


def test_unrealisable_names_what_the_backend_cannot_do() -> None:
    hidden = EVERYTHING.unrealisable(set())
    assert platform.APPLICATION in hidden and platform.DATABASE in hidden
    assert egi.SECURITYGROUP in hidden and egi.IPRESERVATION in hidden and egi.FLOATINGIPPOOL in hidden
    assert monitoring.SENSOR in hidden and monitoring.METRIC in hidden
    assert sla.AGREEMENT not in hidden and COMPUTE not in hidden
    assert egi.AVAILABILITY_ZONE not in hidden
    # a driver's capability values work as well as the Feature members
    assert platform.APPLICATION not in EVERYTHING.unrealisable({"platform"})
    assert EVERYTHING.unrealisable(set(Feature)) == frozenset()


def test_every_needed_category_is_one_of_the_extension() -> None:
    for ext in ALL:
        ids = {c.type_id for c in ext.categories}
        assert set(ext.needs) <= ids, ext.name


def test_claims_come_from_crtp() -> None:
    assert EVERYTHING.claims() == ("OCCI-CRTP/1.1", "OCCI-CRTP-EP/1.1")
    assert ExtensionSet(select(["platform", "sla"])).claims() == ()


def test_provider_only_parents_and_ignored_attributes() -> None:
    assert EVERYTHING.provider_only_parents() == {monitoring.METRIC, monitoring.AGGREGATOR, monitoring.PUBLISHER}
    # occi.compute.speed is declared (D-SPEED), not ignored.
    assert EVERYTHING.ignored_attributes() == {"org.openstack.credentials.publickey.name"}


def test_scoped_value_aliases() -> None:
    assert EVERYTHING.canonical_value("occi.agreement.state", "accepted") == "Accepted"
    assert EVERYTHING.canonical_value("availability.term.state", "violated") == "Violated"
    assert EVERYTHING.canonical_value("occi.compute.state", "suspended") == "suspended"
    assert EVERYTHING.canonical_value("occi.agreement.state", "Accepted") == "Accepted"


def test_extension_lookup_helpers() -> None:
    assert BY_NAME["sla"] is sla.EXTENSION
    assert sla.EXTENSION.category(sla.AGREEMENT).type_id == sla.AGREEMENT
    with pytest.raises(KeyError):
        sla.EXTENSION.category(COMPUTE)
    assert {k.term for k in platform.EXTENSION.kinds} == {"application", "component", "componentlink"}
    assert {m.term for m in monitoring.EXTENSION.mixins} == {"metric", "aggregator", "publisher"}
    assert isinstance(ALL[0], Extension)

"""Checklist SLA-* (OCCI Service Level Agreements, GFD.228; conformance-extensions.md part C, SLA-R1).

Model level, rendering level (every SLA category and the agreement/agreement_link entities in
text/plain, text/occi and JSON, parsed back, JSON against the schema) and a live server: an
agreement is created, read, listed, taken through its state machine with all five actions
(409 where the matrix says no) and deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from occipy.errors import InvalidAttribute
from occipy.model.catalogue import COMPUTE
from occipy.model.category import AttributeDef
from occipy.model.entity import Entity
from occipy.model.extensions import ExtensionSet, sla
from occipy.model.registry import LINK, RESOURCE
from occipy.model.standard import standard_registry
from tests.conformance.conftest import JSON, PLAIN, Occi, discovered
from tests.conformance.extension_helpers import (
    MEDIA,
    attributes_of,
    check_categories,
    check_entity,
    ext_server,  # noqa: F401
)

REGISTRY = standard_registry()
ACTIONS = {term: sla.SLA + term for term in ("accept", "reject", "suspend", "resume", "terminate")}
OCCIWARE = "http://schemas.ogf.org/occi/sla/agreement/action#"
STATES = ["Pending", "Accepted", "Rejected", "Suspended", "Terminated"]


# --- model level ------------------------------------------------------------------------------
@pytest.mark.spec("SLA-01")
@pytest.mark.spec("SLA-02")
@pytest.mark.spec("SLA-07")
@pytest.mark.spec("SLA-17")
@pytest.mark.spec("SLA-18")
def test_kinds_and_parents() -> None:
    assert REGISTRY.kind(sla.AGREEMENT).parent == RESOURCE
    assert REGISTRY.kind(sla.AGREEMENT_LINK).parent == LINK


@pytest.mark.spec("SLA-03")
@pytest.mark.spec("SLA-04")
def test_agreement_attributes_and_states() -> None:
    defs = REGISTRY.kind_attribute_defs(sla.AGREEMENT)
    assert {sla.STATE, sla.AGREED_AT, sla.EFFECTIVE_FROM, sla.EFFECTIVE_UNTIL} <= set(defs)
    assert defs[sla.STATE].pattern is not None and defs[sla.STATE].pattern["enum"] == STATES


@pytest.mark.spec("SLA-05")
@pytest.mark.parametrize("value", ["P1D", "2015-01-01/2015-02-01", "2015-01-01T00:00:00Z/P1M", "2015"])
def test_durations_and_intervals_are_refused(value: str) -> None:
    for name in sla.DATETIME_ATTRIBUTES:
        with pytest.raises(InvalidAttribute, match=name):
            ExtensionSet((sla.EXTENSION,)).validate(sla.AGREEMENT, (), {name: value}, REGISTRY)


@pytest.mark.spec("SLA-06")
@pytest.mark.spec("SLA-R1")
def test_actions_under_the_normative_scheme_with_the_occiware_alias() -> None:
    assert REGISTRY.kind(sla.AGREEMENT).actions == tuple(ACTIONS.values())
    for term, action in ACTIONS.items():
        assert REGISTRY.canonical(OCCIWARE + term) == action


@pytest.mark.spec("SLA-08")
@pytest.mark.spec("SLA-09")
@pytest.mark.spec("SLA-10")
@pytest.mark.spec("SLA-11")
@pytest.mark.spec("SLA-12")
@pytest.mark.spec("SLA-13")
@pytest.mark.spec("SLA-14")
def test_template_and_term_mixins() -> None:
    assert (REGISTRY.mixin(sla.AGREEMENT_TPL).scheme, REGISTRY.mixin(sla.AGREEMENT_TPL).term) == (
        "http://schemas.ogf.org/occi/sla#", "agreement_tpl")
    assert (REGISTRY.mixin(sla.AGREEMENT_TERM).scheme, REGISTRY.mixin(sla.AGREEMENT_TERM).term) == (
        "http://schemas.ogf.org/occi/sla#", "agreement_term")
    registry = standard_registry()
    silver = sla.template_mixin("http://someprovider.com/templates#", "silver",
                                attributes=[AttributeDef("someprovider.occi.incountries", default="EMEA")])
    availability = sla.term_mixin("http://someprovider.com/terms#", "availability",
                                  attributes=[AttributeDef("availability.term.uptime", type="number", default=0.998)])
    registry.add(silver)
    registry.add(availability)
    defs = registry.attribute_defs(sla.AGREEMENT, [silver.type_id, availability.type_id])
    assert defs["someprovider.occi.incountries"].default == "EMEA"
    assert {"availability.term.type", "availability.term.state", "availability.term.desc",
            "availability.term.remedy", "availability.term.uptime"} <= set(defs)


@pytest.mark.spec("SLA-15")
@pytest.mark.spec("SLA-16")
def test_terms_start_undefined() -> None:
    term = sla.term_mixin("http://someprovider.com/terms#", "compute_service")
    state = {a.name: a for a in term.attributes}["compute_service.term.state"]
    assert state.default == "Undefined" and not state.mutable
    assert state.pattern is not None and state.pattern["enum"] == list(sla.TERM_STATES)


@pytest.mark.spec("SLA-19")
def test_provider_agreement_link_sub_kinds_keep_the_ends_rule() -> None:
    from occipy.model.category import Kind

    registry = standard_registry()
    registry.add(Kind(scheme="http://someprovider.com/occi#", term="billed_link", parent=sla.AGREEMENT_LINK,
                      location="/billed_link/", attributes=(AttributeDef("com.someprovider.cost"),)))
    rule = ExtensionSet((sla.EXTENSION,)).link_ends(registry, "http://someprovider.com/occi#billed_link")
    assert rule is not None and rule.sources == (sla.AGREEMENT,)


# --- rendering level --------------------------------------------------------------------------
@pytest.mark.spec("SLA-02")
@pytest.mark.spec("SLA-08")
@pytest.mark.spec("SLA-11")
@pytest.mark.parametrize("media", MEDIA)
def test_every_sla_category_renders_and_parses_back(media: str) -> None:
    check_categories(sla.CATEGORIES, REGISTRY, media)


@pytest.mark.spec("SLA-03")
@pytest.mark.spec("SLA-18")
@pytest.mark.parametrize("media", MEDIA)
def test_agreement_entities_render_and_parse_back(media: str) -> None:
    agreement = Entity(kind=sla.AGREEMENT, entity_id="Demo1SLA", location="/agreement/Demo1SLA",
                       mixins=[sla.AGREEMENT_TPL],
                       attributes={sla.STATE: "Accepted", sla.AGREED_AT: "2015-01-05T02:05:17+00:00",
                                   sla.EFFECTIVE_FROM: "2015-02-01T00:00:00+00:00",
                                   sla.EFFECTIVE_UNTIL: "2015-02-25T00:00:00+00:00"},
                       actions=(ACTIONS["suspend"], ACTIONS["terminate"]))
    link = Entity(kind=sla.AGREEMENT_LINK, entity_id="Demo1SLALink", location="/agreement_link/Demo1SLALink",
                  attributes={"occi.core.source": "/agreement/Demo1SLA", "occi.core.source.kind": sla.AGREEMENT,
                              "occi.core.target": "/compute/vm1", "occi.core.target.kind": COMPUTE})
    agreement = agreement.evolve(links=(link,))
    check_entity(agreement, REGISTRY, media)
    check_entity(link, REGISTRY, media)


# --- live server --------------------------------------------------------------------------------
@pytest.mark.spec("SLA-02")
@pytest.mark.spec("SLA-06")
@pytest.mark.spec("SLA-08")
@pytest.mark.spec("SLA-11")
@pytest.mark.spec("SLA-17")
@pytest.mark.parametrize("media", MEDIA)
def test_discovery_lists_the_sla_categories(ext_server: Occi, media: str) -> None:  # noqa: F811
    found = discovered(ext_server.get("/-/", accept=media))
    assert found[sla.AGREEMENT] == "kind" and found[sla.AGREEMENT_LINK] == "kind"
    assert found[sla.AGREEMENT_TPL] == "mixin" and found[sla.AGREEMENT_TERM] == "mixin"
    for action in ACTIONS.values():
        assert found[action] == "action"
    assert ext_server.discover().category(sla.AGREEMENT)["actions"] == list(ACTIONS.values())


def agreement(occi: Occi, media: str = JSON, **attributes: object) -> str:
    return occi.create(sla.AGREEMENT, media, mixins=[sla.AGREEMENT_TPL], attributes=attributes)


@pytest.mark.spec("SLA-01")
@pytest.mark.spec("SLA-03")
@pytest.mark.spec("SLA-04")
@pytest.mark.spec("SLA-06")
@pytest.mark.parametrize("media", MEDIA)
def test_agreement_lifecycle(ext_server: Occi, media: str) -> None:  # noqa: F811
    occi = ext_server
    location = agreement(occi, media, **{sla.EFFECTIVE_FROM: "2015-02-01T00:00:00+00:00",
                                         sla.EFFECTIVE_UNTIL: "2015-02-25T00:00:00+00:00"})
    view = occi.view(location, media)
    assert view.kind == sla.AGREEMENT and view.mixins == [sla.AGREEMENT_TPL]
    assert view.attributes[sla.STATE] == "Pending"
    assert view.attributes[sla.EFFECTIVE_FROM] == "2015-02-01T00:00:00+00:00"
    assert sorted(view.actions) == sorted([ACTIONS["accept"], ACTIONS["reject"]])
    assert location in occi.locations("/agreement/", accept=JSON)
    # walk the diagram: every step allowed once, refused (409) when the matrix says no
    path = [("suspend", 409), ("accept", 200), ("accept", 409), ("suspend", 200), ("resume", 200),
            ("suspend", 200), ("reject", 409), ("terminate", 200), ("resume", 409), ("terminate", 409)]
    expected_states = {"accept": "Accepted", "suspend": "Suspended", "resume": "Accepted", "terminate": "Terminated"}
    for term, status in path:
        before = attributes_of(occi, location)[sla.STATE]
        response = occi.invoke(location, ACTIONS[term], media)
        assert response.status_code == status, (term, before, response.text)
        after = attributes_of(occi, location)[sla.STATE]
        assert after == (expected_states[term] if status == 200 else before)
    assert occi.view(location, media).actions == []
    assert occi.delete(location).status_code == 200
    assert occi.get(location).status_code == 404


@pytest.mark.spec("SLA-04")
def test_pending_agreement_can_be_rejected_and_stays_rejected(ext_server: Occi) -> None:  # noqa: F811
    location = agreement(ext_server)
    assert ext_server.invoke(location, ACTIONS["reject"]).status_code == 200
    assert attributes_of(ext_server, location)[sla.STATE] == "Rejected"
    for term, action in ACTIONS.items():
        assert ext_server.invoke(location, action).status_code == 409, term


@pytest.mark.spec("SLA-R1")
@pytest.mark.parametrize("media", [PLAIN, JSON])
def test_occiware_action_scheme_is_accepted(ext_server: Occi, media: str) -> None:  # noqa: F811
    location = agreement(ext_server)
    response = ext_server.invoke(location, OCCIWARE + "accept", media)
    assert response.status_code == 200, response.text
    assert attributes_of(ext_server, location)[sla.STATE] == "Accepted"


@pytest.mark.spec("SLA-05")
@pytest.mark.parametrize("value", ["P1D", "2015-01-01/2015-02-01", "2015-02-05", "2015-02-30T00:00:00Z"])
@pytest.mark.parametrize("media", MEDIA)
def test_durations_and_intervals_are_refused_live(ext_server: Occi, value: str, media: str) -> None:  # noqa: F811
    response = ext_server.create_response(sla.AGREEMENT, media, attributes={sla.EFFECTIVE_FROM: value})
    assert response.status_code == 400, response.text
    assert sla.EFFECTIVE_FROM in response.text


@pytest.mark.spec("SLA-05")
def test_effective_until_before_effective_from_is_refused(ext_server: Occi) -> None:  # noqa: F811
    response = ext_server.create_response(sla.AGREEMENT, attributes={
        sla.EFFECTIVE_FROM: "2015-02-25T00:00:00Z", sla.EFFECTIVE_UNTIL: "2015-02-01T00:00:00Z"})
    assert response.status_code == 400


@pytest.mark.spec("SLA-R1")
def test_accept_sets_agreed_at(ext_server: Occi) -> None:  # noqa: F811
    location = agreement(ext_server)
    before = datetime.now(UTC).replace(microsecond=0)
    assert ext_server.invoke(location, ACTIONS["accept"]).status_code == 200
    agreed = sla.parse_datetime(sla.AGREED_AT, attributes_of(ext_server, location).get(sla.AGREED_AT))
    assert before <= agreed <= datetime.now(UTC)


@pytest.mark.spec("SLA-01")
def test_agreed_at_is_managed_by_the_server(ext_server: Occi) -> None:  # noqa: F811
    location = agreement(ext_server, **{sla.AGREED_AT: "2015-01-05T02:05:17+00:00"})
    assert sla.AGREED_AT not in attributes_of(ext_server, location)  # ignored at creation (D-IMMUTABLE)


@pytest.mark.spec("SLA-17")
@pytest.mark.spec("SLA-18")
@pytest.mark.parametrize("media", MEDIA)
def test_agreement_link_to_a_resource(ext_server: Occi, media: str) -> None:  # noqa: F811
    occi = ext_server
    location = agreement(occi)
    assert occi.invoke(location, ACTIONS["accept"]).status_code == 200
    vm = occi.compute()
    link = occi.link(sla.AGREEMENT_LINK, location, vm, media)
    assert occi.view(link, media).kind == sla.AGREEMENT_LINK
    assert any(entry["kind"] == sla.AGREEMENT_LINK for entry in occi.view(location, media).links)
    assert occi.delete(link).status_code == 200
    assert occi.delete(vm).status_code == 200


@pytest.mark.spec("SLA-18")
def test_agreement_link_from_a_pending_agreement_or_a_compute_is_refused(ext_server: Occi) -> None:  # noqa: F811
    pending = agreement(ext_server)
    vm = ext_server.compute()
    assert ext_server.create_response(sla.AGREEMENT_LINK, attributes={
        "occi.core.source": pending, "occi.core.target": vm}).status_code == 409
    assert ext_server.create_response(sla.AGREEMENT_LINK, attributes={
        "occi.core.source": vm, "occi.core.target": vm}).status_code == 400


@pytest.mark.spec("SLA-20")
def test_required_template_values_must_be_filled_in() -> None:
    """SLA-20 at the model level: a provider template's required attribute is required on the agreement."""
    registry = standard_registry()
    gold = sla.template_mixin("http://someprovider.com/templates#", "gold",
                              attributes=[AttributeDef("com.someprovider.region", required=True)])
    registry.add(gold)
    assert registry.attribute_defs(sla.AGREEMENT, [gold.type_id])["com.someprovider.region"].required

"""occipy.model.extensions.sla: GFD.228 categories, RFC 3339 date-times, the agreement machine, accept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from occipy.errors import ActionNotAllowed, Conflict, InvalidAttribute
from occipy.model import state
from occipy.model.catalogue import COMPUTE
from occipy.model.category import AttributeDef
from occipy.model.extensions import ExtensionSet, sla
from occipy.model.registry import LINK, RESOURCE
from occipy.model.standard import standard_registry

REGISTRY = standard_registry()
SLA = ExtensionSet((sla.EXTENSION,))
ACTIONS = (sla.ACCEPT, sla.REJECT, sla.SUSPEND, sla.RESUME, sla.TERMINATE)
# sla.md §2.2 applicability matrix
MATRIX = {
    "Pending": {sla.ACCEPT: "Accepted", sla.REJECT: "Rejected"},
    "Accepted": {sla.SUSPEND: "Suspended", sla.TERMINATE: "Terminated"},
    "Suspended": {sla.RESUME: "Accepted", sla.TERMINATE: "Terminated"},
    "Rejected": {},
    "Terminated": {},
}


# ---- categories ------------------------------------------------------------------------------

def test_kinds_and_mixins() -> None:
    agreement = REGISTRY.kind(sla.AGREEMENT)
    link = REGISTRY.kind(sla.AGREEMENT_LINK)
    assert (agreement.parent, agreement.location, agreement.actions) == (RESOURCE, "/agreement/", ACTIONS)
    assert (link.parent, link.location) == (LINK, "/agreement_link/")
    for mixin_id in (sla.AGREEMENT_TPL, sla.AGREEMENT_TERM):
        mixin = REGISTRY.mixin(mixin_id)
        assert mixin.attributes == () and mixin.applies == (sla.AGREEMENT,)
    # the normative action scheme is sla#, the OCCIware one an input alias
    assert all(a.startswith("http://schemas.ogf.org/occi/sla#") for a in ACTIONS)
    for term in ("accept", "reject", "suspend", "resume", "terminate"):
        assert REGISTRY.canonical(f"http://schemas.ogf.org/occi/sla/agreement/action#{term}") == sla.SLA + term


def test_agreement_attributes() -> None:
    defs = REGISTRY.kind_attribute_defs(sla.AGREEMENT)
    assert not defs[sla.STATE].mutable and defs[sla.STATE].default == "Pending"
    assert not defs[sla.AGREED_AT].mutable
    assert defs[sla.EFFECTIVE_FROM].mutable and defs[sla.EFFECTIVE_UNTIL].mutable
    for name in sla.DATETIME_ATTRIBUTES:
        assert defs[name].pattern is not None and defs[name].pattern["format"] == "date-time"
        # the generic attribute check already refuses what is not RFC 3339
        with pytest.raises(InvalidAttribute):
            defs[name].check("2015")
        assert defs[name].check("2015-02-05T02:05:17+00:00") == "2015-02-05T02:05:17+00:00"


# ---- the state machine -----------------------------------------------------------------------

@pytest.mark.parametrize("current", list(MATRIX))
def test_applicability_matrix(current: str) -> None:
    allowed = MATRIX[current]
    assert set(state.available_actions(sla.AGREEMENT, current, ACTIONS)) == set(allowed)
    for action in ACTIONS:
        if action in allowed:
            assert state.next_state(sla.AGREEMENT, current, action) == allowed[action]
        else:
            with pytest.raises(ActionNotAllowed):
                state.next_state(sla.AGREEMENT, current, action)


def test_initial_state_is_pending() -> None:
    assert state.INITIAL_STATE[sla.AGREEMENT] == "Pending"
    assert state.state_attribute(sla.AGREEMENT) == sla.STATE


# ---- date-times ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "2015-02-05T02:05:17+00:00", "2015-02-05T02:05:17Z", "2015-02-05T02:05:17.5-03:30",
    "2016-02-29T23:59:59.123456789+14:00",
])
def test_parse_accepts_rfc3339(text: str) -> None:
    assert sla.parse_datetime("a", text).tzinfo is not None


@pytest.mark.parametrize(("text", "reason"), [
    ("P1D", "duration"), ("PT5M", "duration"), ("-P1Y", "duration"),
    ("2015-01-01T00:00:00Z/2015-02-01T00:00:00Z", "interval"), ("2015-01-01/P1D", "interval"),
    ("R5/2015-01-01T00:00:00Z/PT1H", "interval"),
    ("2015", "not an RFC 3339"), ("2015-02-05", "not an RFC 3339"), ("2015-02-05T02:05:17", "not an RFC 3339"),
    ("20150205T020517Z", "not an RFC 3339"), ("2015-02-05 02:05:17Z", "not an RFC 3339"),
    ("2015-02-05t02:05:17z", "not an RFC 3339"), ("2015-02-05T24:00:00Z", "not an RFC 3339"),
    ("2015-02-05T23:59:60Z", "not an RFC 3339"), ("2015-02-05T02:05:17+24:00", "not an RFC 3339"),
    ("2015-02-30T00:00:00Z", "not a date that exists"), ("2015-02-05T02:05:17Z\n", "not an RFC 3339"),
])
def test_parse_refuses(text: str, reason: str) -> None:
    with pytest.raises(InvalidAttribute, match=f"attribute occi.agreement.effectiveFrom: .*{reason}"):
        sla.parse_datetime("occi.agreement.effectiveFrom", text)


def test_parse_refuses_non_strings() -> None:
    with pytest.raises(InvalidAttribute, match="string"):
        sla.parse_datetime("x", 1423101917)


AWARE = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                                timezone(timedelta(hours=-11))]))


@given(AWARE)
def test_format_then_parse_is_the_same_moment(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    text = sla.format_datetime(moment)
    assert text.endswith("+00:00")
    assert sla.parse_datetime("x", text) == moment


@given(AWARE)
def test_isoformat_of_an_aware_datetime_is_accepted(moment: datetime) -> None:
    assert sla.parse_datetime("x", moment.isoformat()) == moment


@given(st.text(max_size=40))
def test_parse_raises_only_invalid_attribute(text: str) -> None:
    try:
        result = sla.parse_datetime("x", text)
    except InvalidAttribute as exc:
        assert exc.message.startswith("attribute x: ")
    else:
        assert result.tzinfo is not None


@given(st.from_regex(r"[+-]?P(\d+Y)?(\d+M)?(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?", fullmatch=True))
def test_durations_are_never_date_times(text: str) -> None:
    with pytest.raises(InvalidAttribute):
        sla.parse_datetime("x", text)


@given(AWARE, AWARE)
def test_intervals_are_never_date_times(a: datetime, b: datetime) -> None:
    with pytest.raises(InvalidAttribute, match="interval"):
        sla.parse_datetime("x", f"{a.isoformat()}/{b.isoformat()}")


def test_format_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError):
        sla.format_datetime(datetime(2020, 1, 1))


# ---- validate and accept --------------------------------------------------------------------

def test_effective_from_must_not_follow_effective_until() -> None:
    SLA.validate(sla.AGREEMENT, (), {sla.EFFECTIVE_FROM: "2015-02-01T00:00:00Z",
                                     sla.EFFECTIVE_UNTIL: "2015-02-25T00:00:00Z"}, REGISTRY)
    SLA.validate(sla.AGREEMENT, (), {sla.EFFECTIVE_FROM: "2015-02-01T00:00:00Z",
                                     sla.EFFECTIVE_UNTIL: "2015-02-01T01:00:00+01:00"}, REGISTRY)
    with pytest.raises(InvalidAttribute, match=sla.EFFECTIVE_UNTIL):
        SLA.validate(sla.AGREEMENT, (), {sla.EFFECTIVE_FROM: "2015-02-25T00:00:00Z",
                                         sla.EFFECTIVE_UNTIL: "2015-02-01T00:00:00Z"}, REGISTRY)


@given(AWARE, AWARE)
def test_order_check_agrees_with_the_moments(a: datetime, b: datetime) -> None:
    values = {sla.EFFECTIVE_FROM: a.isoformat(), sla.EFFECTIVE_UNTIL: b.isoformat()}
    if b < a:
        with pytest.raises(InvalidAttribute):
            SLA.validate(sla.AGREEMENT, (), values, REGISTRY)
    else:
        SLA.validate(sla.AGREEMENT, (), values, REGISTRY)


def test_validate_leaves_other_kinds_alone() -> None:
    SLA.validate(COMPUTE, (), {sla.EFFECTIVE_FROM: "P1D"}, REGISTRY)


def test_accept_sets_agreed_at() -> None:
    now = datetime(2015, 1, 5, 3, 5, 17, 999, tzinfo=timezone(timedelta(hours=1)))
    assert sla.accepted(now) == {sla.AGREED_AT: "2015-01-05T02:05:17+00:00"}
    assert SLA.on_action(sla.AGREEMENT, sla.ACCEPT, {}, now) == {sla.AGREED_AT: "2015-01-05T02:05:17+00:00"}
    for action in (sla.REJECT, sla.SUSPEND, sla.RESUME, sla.TERMINATE):
        assert SLA.on_action(sla.AGREEMENT, action, {}, now) == {}
    # what accept writes passes the attribute's own check
    REGISTRY.kind_attribute_defs(sla.AGREEMENT)[sla.AGREED_AT].check(sla.accepted(now)[sla.AGREED_AT])


# ---- links and provider mixins ---------------------------------------------------------------

def test_agreement_link_ends() -> None:
    accepted = {sla.STATE: "Accepted"}
    SLA.check_link(REGISTRY, sla.AGREEMENT_LINK, sla.AGREEMENT, COMPUTE, source_attributes=accepted)
    with pytest.raises(InvalidAttribute, match="occi.core.source"):
        SLA.check_link(REGISTRY, sla.AGREEMENT_LINK, COMPUTE, COMPUTE, source_attributes=accepted)
    with pytest.raises(InvalidAttribute, match="external"):
        SLA.check_link(REGISTRY, sla.AGREEMENT_LINK, sla.AGREEMENT, None, source_attributes=accepted)
    for current in ("Pending", "Suspended", "Rejected", "Terminated"):
        with pytest.raises(Conflict):
            SLA.check_link(REGISTRY, sla.AGREEMENT_LINK, sla.AGREEMENT, COMPUTE,
                           source_attributes={sla.STATE: current})


def test_provider_term_and_template_mixins() -> None:
    registry = standard_registry()
    uptime = AttributeDef("availability.term.uptime", type="number")
    term = sla.term_mixin("http://someprovider.com/terms#", "availability", attributes=[uptime])
    gold = sla.template_mixin("http://someprovider.com/templates#", "gold",
                              attributes=[AttributeDef("someprovider.occi.incountries", default="EMEA")])
    registry.add(term)
    registry.add(gold)
    assert registry.depends_on(term.type_id, sla.AGREEMENT_TERM)
    assert registry.depends_on(gold.type_id, sla.AGREEMENT_TPL)
    defs = registry.attribute_defs(sla.AGREEMENT, [term.type_id, gold.type_id])
    assert defs["availability.term.state"].default == "Undefined"
    assert defs["availability.term.type"].pattern is not None
    assert defs["availability.term.type"].pattern["enum"] == ["SERVICE-TERM", "SLO-TERM", "n/a"]
    assert {"availability.term.desc", "availability.term.remedy", "availability.term.uptime",
            "someprovider.occi.incountries"} <= set(defs)
    assert term.location == "/mixin/agreement_term/availability/"
    bare = sla.term_mixin("http://someprovider.com/terms#", "compute_service", suggested=False)
    assert bare.attributes == ()


def test_lower_case_states_are_accepted_for_agreements_only() -> None:
    assert SLA.canonical_value(sla.STATE, "pending") == "Pending"
    assert SLA.canonical_value("availability.term.state", "fulfilled") == "Fulfilled"
    assert SLA.canonical_value("occi.compute.state", "suspended") == "suspended"

"""Categories, type identifiers, terms, attribute definitions and value coercion (GFD.221 §5.3).

Covers `occipy.model.category`: `split_type_id`, the term grammars (GFD.229 on input, the strict
OCCI 1.1 one on output, `strict_term`), `AttributeDef.check` and the JSON-Schema subset of
attribute patterns (GFD.226 §3.5.1), with Hypothesis properties.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from occipy.errors import InvalidAttribute, ParseError
from occipy.model.category import (
    MAX_SAFE_INTEGER,
    STRICT_TERM_RE,
    TERM_RE,
    Action,
    AttributeDef,
    Kind,
    Mixin,
    category_class,
    split_type_id,
    strict_term,
)
from tests.unit.rendering.strategies import schemes, strings, terms

INFRA = "http://schemas.ogf.org/occi/infrastructure#"
DRAFT_04 = "http://json-schema.org/draft-04/schema#"


# ---- type identifiers and terms ---------------------------------------------------------------

@pytest.mark.spec("C-06")
def test_type_id_is_scheme_plus_term() -> None:
    kind = Kind(scheme=INFRA, term="compute")
    assert kind.type_id == "http://schemas.ogf.org/occi/infrastructure#compute"
    assert Mixin(scheme="http://t#", term="tag").type_id == "http://t#tag"
    assert Action(scheme=INFRA + "x/action#", term="go").type_id == INFRA + "x/action#go"
    assert [category_class(c) for c in (kind, Mixin(scheme="a#", term="b"), Action(scheme="a#", term="c"))] \
        == ["kind", "mixin", "action"]


@given(scheme=schemes, term=terms)
def test_split_type_id_inverts_concatenation(scheme: str, term: str) -> None:
    assert split_type_id(scheme + term) == (scheme, term)


def test_split_type_id_cuts_at_the_last_hash() -> None:
    assert split_type_id("http://a#b#term") == ("http://a#b#", "term")


@pytest.mark.parametrize("bad", ["no-hash", "http://x#", "", "#"])
def test_split_type_id_rejects_what_is_not_a_type_id(bad: str) -> None:
    with pytest.raises(ParseError):
        split_type_id(bad)


@pytest.mark.parametrize(("term", "gfd229", "strict"), [
    ("compute", True, True),
    ("os_tpl", True, True),
    ("ubuntu-24.04", True, False),  # "." is GFD.229, not OCCI 1.1
    ("Debian", True, False),  # upper case
    ("9lives", True, False),  # starts with a digit
    ("-x", False, False),
    ("a b", False, False),
    ("", False, False),
])
def test_term_grammars(term: str, gfd229: bool, strict: bool) -> None:
    assert bool(TERM_RE.match(term)) is gfd229
    assert bool(STRICT_TERM_RE.match(term)) is strict


def test_strict_term_keeps_strict_names_and_converts_the_others() -> None:
    assert strict_term("debian-12") == "debian-12"
    assert strict_term("mem_small") == "mem_small"
    converted = strict_term("ubuntu-24.04")
    assert re.fullmatch(r"ubuntu-24_04-[0-9a-f]{8}", converted)
    # the provider's own "ubuntu-24_04" is a different name and keeps a different term
    assert strict_term("ubuntu-24_04") == "ubuntu-24_04" != converted
    assert strict_term("Ubuntu-24.04") != converted
    assert re.fullmatch(r"t24_04-[0-9a-f]{8}", strict_term("24.04"))


@given(st.text(max_size=30))
def test_strict_term_always_matches_the_strict_grammar(name: str) -> None:
    term = strict_term(name)
    assert STRICT_TERM_RE.match(term)
    assert strict_term(name) == term  # deterministic
    assert strict_term(term) == term  # idempotent


@given(st.lists(st.text(max_size=12), min_size=2, max_size=6, unique=True))
def test_strict_term_is_collision_free(names: list[str]) -> None:
    assert len({strict_term(name) for name in names}) == len(names)


# ---- attribute definitions ------------------------------------------------------------------

def test_attribute_def_rejects_an_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown type"):
        AttributeDef("a.b", type="integer")


@pytest.mark.spec("C-08")
def test_attribute_def_defaults() -> None:
    adef = AttributeDef("occi.core.title")
    assert (adef.type, adef.mutable, adef.required, adef.pattern, adef.default, adef.write_once) == (
        "string", True, False, None, None, False)
    assert not adef.is_integer
    assert AttributeDef("n", type="number", pattern={"type": "integer"}).is_integer


def test_action_finds_its_parameter() -> None:
    method = AttributeDef("method", pattern={"enum": ["graceful", "poweroff"]})
    stop = Action(scheme=INFRA + "compute/action#", term="stop", attributes=(method,))
    assert stop.attribute("method") is method
    assert stop.attribute("other") is None


# ---- coercion ---------------------------------------------------------------------------------

NUMBER = AttributeDef("x.number", type="number")
INTEGER = AttributeDef("x.integer", type="number", pattern={"$schema": DRAFT_04, "type": "integer"})
BOOLEAN = AttributeDef("x.boolean", type="boolean")
ARRAY = AttributeDef("x.array", type="array")
OBJECT = AttributeDef("x.object", type="object")
STRING = AttributeDef("x.string")


@pytest.mark.parametrize(("adef", "value", "lenient", "expected"), [
    (STRING, "abc", False, "abc"),
    (STRING, 2, True, "2"),  # a text rendering may send an unquoted number for a string
    (NUMBER, 2, False, 2),
    (NUMBER, 2.5, False, 2.5),
    (NUMBER, "2.5", True, 2.5),
    (NUMBER, "7", True, 7),
    (INTEGER, 4.0, False, 4),
    (BOOLEAN, True, False, True),
    (BOOLEAN, "false", True, False),
    (ARRAY, '["a", 1]', True, ["a", 1]),
    (OBJECT, '{"k": 1}', True, {"k": 1}),
    (ARRAY, [1], False, [1]),
])
def test_check_coerces_to_the_definition(adef: AttributeDef, value: object, lenient: bool, expected: object) -> None:
    checked = adef.check(value, lenient=lenient)
    assert checked == expected
    assert type(checked) is type(expected)


@pytest.mark.parametrize(("adef", "value", "lenient", "message"), [
    (STRING, None, False, "null is not allowed"),
    (STRING, 2, False, "expected a string, got a number"),
    (STRING, "a\x01b", False, "control character U\\+0001"),
    (NUMBER, True, False, "got a boolean"),
    (NUMBER, "2", False, "expected a number, got a string"),
    (NUMBER, "two", True, "expected a number"),
    (NUMBER, math.inf, False, "finite"),
    (NUMBER, 1e308, False, "out of range"),
    (NUMBER, -(10**309), False, "out of range"),
    (INTEGER, 2.5, False, "expected an integer"),
    (INTEGER, 1e308, False, "out of range"),  # was stored as a 309-digit integer
    (BOOLEAN, "true", False, "expected true or false"),
    (BOOLEAN, 1, True, "expected true or false"),
    (ARRAY, "[1", True, "expected a JSON array"),
    (ARRAY, {"a": 1}, False, "expected an array"),
    (OBJECT, [1], False, "expected an object"),
])
def test_check_refuses_and_names_the_attribute(adef: AttributeDef, value: object, lenient: bool,
                                                message: str) -> None:
    with pytest.raises(InvalidAttribute, match=f"attribute {re.escape(adef.name)}: .*{message}"):
        adef.check(value, lenient=lenient)


@given(st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER))
def test_safe_integers_pass_unchanged(value: int) -> None:
    assert NUMBER.check(value) == value
    assert INTEGER.check(value) == value
    assert INTEGER.check(float(value)) == int(float(value))


@given(st.integers(min_value=MAX_SAFE_INTEGER + 1), st.sampled_from([1, -1]))
def test_integers_beyond_two_to_the_53_are_refused(magnitude: int, sign: int) -> None:
    value = sign * magnitude
    with pytest.raises(InvalidAttribute, match="out of range"):
        NUMBER.check(value)


@given(strings)
def test_check_of_a_string_either_returns_it_or_names_the_attribute(value: str) -> None:
    try:
        assert STRING.check(value) == value
    except InvalidAttribute as error:
        assert "x.string" in error.message


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)),
       st.sampled_from([STRING, NUMBER, INTEGER, BOOLEAN, ARRAY, OBJECT]), st.booleans())
def test_check_raises_only_invalid_attribute(value: Any, adef: AttributeDef, lenient: bool) -> None:
    try:
        adef.check(value, lenient=lenient)
    except InvalidAttribute as error:
        assert adef.name in error.message


# ---- the JSON-Schema subset of patterns (GFD.226 §3.5.1) ---------------------------------------

def _schema(name: str, type_: str = "number", **keywords: Any) -> AttributeDef:
    return AttributeDef(name, type=type_, pattern={"$schema": DRAFT_04, **keywords})


@pytest.mark.parametrize(("adef", "good", "bad", "message"), [
    (_schema("a", minimum=1, maximum=3), [1, 2.5, 3], [0, 3.5], r"below the minimum 1|above the maximum 3"),
    (_schema("a", minimum=0, exclusiveMinimum=True), [0.001, 5], [0, -0.0, -1], "must be greater than 0"),
    (_schema("a", maximum=10, exclusiveMaximum=True), [9.99], [10, 11], "must be less than 10"),
    (_schema("a", exclusiveMinimum=5), [6], [5, 4], "must be greater than 5"),  # draft-06 number form
    (_schema("a", exclusiveMaximum=5), [4], [5], "must be less than 5"),
    (_schema("a", type="integer"), [3], [3.5], "expected an integer"),
    (_schema("s", "string", enum=["x", "y"]), ["x"], ["z"], "is not one of x, y"),
    (_schema("s", "string", minLength=2, maxLength=3), ["ab", "abc"], ["a", "abcd"], "shorter|longer"),
    (_schema("s", "string", pattern="^[a-f]+$"), ["abc"], ["xyz"], "does not match the pattern"),
    (_schema("s", "string", format="ipv4"), ["10.0.0.1"], ["10.0.0.256", "::1"], "not a valid ipv4"),
    (_schema("s", "string", format="ipv6"), ["::1"], ["10.0.0.1"], "not a valid ipv6"),
    (_schema("s", "string", format="ip-address"), ["10.0.0.1/24", "fe80::1"], ["10.0.0"], "ip-address"),
    (_schema("s", "string", format="ip-network"), ["10.0.0.0/24"], ["10.0.0.0/33"], "ip-network"),
    (_schema("s", "string", format="date-time"), ["2024-01-02T03:04:05Z"], ["yesterday"], "date-time"),
    (_schema("s", "string", format="uri"), ["http://x/y", "urn:a"], ["no scheme"], "not a valid uri"),
    (_schema("s", "string", anyOf=[{"format": "ipv4"}, {"format": "ipv6"}]), ["::1", "1.2.3.4"], ["x"], "valid ipv4"),
])
def test_schema_subset(adef: AttributeDef, good: list[Any], bad: list[Any], message: str) -> None:
    for value in good:
        assert adef.check(value) == value
    for value in bad:
        with pytest.raises(InvalidAttribute, match=message):
            adef.check(value)


def test_unknown_schema_keywords_are_annotations() -> None:
    assert _schema("a", title="ignored", multipleOf=7).check(3) == 3


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
       st.integers(-100, 100), st.integers(0, 100))
def test_range_keywords_agree_with_arithmetic(value: float, low: int, width: int) -> None:
    adef = _schema("a", minimum=low, maximum=low + width)
    inside = low <= value <= low + width
    try:
        adef.check(value)
        assert inside
    except InvalidAttribute:
        assert not inside

"""Unit and property tests of occipy.rendering.text (GFD.229 text/plain, text/occi)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from occipy.errors import ParseError
from occipy.model.catalogue import COMPUTE, OS_TPL, STORAGE, STORAGELINK
from occipy.model.category import Action, AttributeDef, Kind, Mixin
from occipy.model.entity import Entity
from occipy.model.registry import RESOURCE, Registry
from occipy.model.standard import standard_registry
from occipy.rendering import text
from occipy.rendering.messages import (
    ActionInvocation,
    CategoryDefinition,
    CategoryRef,
    EntityMessage,
    LinkMessage,
)

from . import strategies as s

INFRA = "http://schemas.ogf.org/occi/infrastructure#"
START = "http://schemas.ogf.org/occi/infrastructure/compute/action#start"
STOP = "http://schemas.ogf.org/occi/infrastructure/compute/action#stop"
ACTIONS = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
KIND_LINE = f'compute; scheme="{INFRA}"; class="kind"'


def body(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def entity_of(*lines: str) -> EntityMessage:
    return text.parse_entity(text.fields_from_body(body(*lines)))


def _wire(value: Any) -> Any:
    """What a value looks like after a text round trip: List/Hash values travel as JSON text."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


# =============================================================================================
# carriers
# =============================================================================================


class TestFieldsFromBody:
    def test_lines_crlf_and_lf(self) -> None:
        data = b'Category: a; scheme="http://x#"; class="kind"\r\nX-OCCI-Attribute: a.b=1\nX-OCCI-Location: /c/1\n'
        assert text.fields_from_body(data) == [
            ("Category", 'a; scheme="http://x#"; class="kind"'),
            ("X-OCCI-Attribute", "a.b=1"),
            ("X-OCCI-Location", "/c/1"),
        ]

    def test_blank_lines_and_ok_ignored(self) -> None:
        assert text.fields_from_body(b"\r\n\r\nOK\r\n  \r\nX-OCCI-Location: /a\r\n\r\n") == [
            ("X-OCCI-Location", "/a")]
        assert text.fields_from_body(b"") == []
        assert text.fields_from_body(b"OK") == []

    @pytest.mark.spec("T-02")
    @pytest.mark.parametrize("name", ["category", "CATEGORY", "CaTeGoRy", "X-OCCI-Category", "x-occi-category"])
    def test_names_case_insensitive_and_aliases(self, name: str) -> None:
        assert text.fields_from_body(f'{name}: a; scheme="http://x#"'.encode()) == [
            ("Category", 'a; scheme="http://x#"')]

    def test_link_alias(self) -> None:
        assert text.fields_from_body(b'x-occi-link: </a>; rel="http://x#y"') == [("Link", '</a>; rel="http://x#y"')]

    @pytest.mark.parametrize("line", [b"Nocategory: a", b"Category2: a", b"Location: /a", b"Test",
                                      b"https://example.com/compute/1", b": value", b"Cate gory: a"])
    def test_other_names_rejected(self, line: bytes) -> None:
        with pytest.raises(ParseError):
            text.fields_from_body(line)

    def test_bad_utf8_rejected(self) -> None:
        with pytest.raises(ParseError):
            text.fields_from_body(b'X-OCCI-Attribute: a.b="\xff\xfe"')

    def test_utf8_and_bom(self) -> None:
        assert text.fields_from_body('\ufeffX-OCCI-Attribute: a.b="é€"'.encode()) == [
            ("X-OCCI-Attribute", 'a.b="é€"')]

    def test_obsolete_folding(self) -> None:
        data = b'Category: compute;\r\n    scheme="http://x#";\r\n\tclass="kind"\r\n'
        assert text.fields_from_body(data) == [("Category", 'compute; scheme="http://x#"; class="kind"')]

    def test_continuation_without_a_field_rejected(self) -> None:
        with pytest.raises(ParseError):
            text.fields_from_body(b"  scheme=x\r\n")

    @pytest.mark.spec("T-16")
    def test_comma_joined_values_split(self) -> None:
        assert text.fields_from_body(b"X-OCCI-Location: /compute/123, /compute/456") == [
            ("X-OCCI-Location", "/compute/123"), ("X-OCCI-Location", "/compute/456")]

    @pytest.mark.spec("T-17")
    def test_split_respects_quotes_and_angle_brackets(self) -> None:
        data = b'Link: </a,b;c>; rel="http://x#y"; t.t="1,2", </d>; rel="http://x#z"'
        assert text.fields_from_body(data) == [
            ("Link", '</a,b;c>; rel="http://x#y"; t.t="1,2"'), ("Link", '</d>; rel="http://x#z"')]

    def test_unterminated_quote_rejected(self) -> None:
        with pytest.raises(ParseError):
            text.fields_from_body(b'X-OCCI-Attribute: occi.core.id="103')

    def test_raw_vertical_tab_inside_a_value_is_not_a_line_break(self) -> None:
        assert text.fields_from_body('X-OCCI-Attribute: a.b="x\x0by\u2028z"'.encode()) == [
            ("X-OCCI-Attribute", 'a.b="x\x0by\u2028z"')]


class TestFieldsFromHeaders:
    def test_picks_occi_headers_and_splits(self) -> None:
        headers = [
            ("Host", "example.com"),
            ("category", f"{KIND_LINE}, os; scheme=\"http://t#\"; class=\"mixin\""),
            ("X-OCCI-Attribute", 'a.b=1, a.c="x, y"'),
            ("X-OCCI-Attribute", "a.d=true"),
            ("Content-Type", "text/occi"),
        ]
        assert text.fields_from_headers(headers) == [
            ("Category", KIND_LINE),
            ("Category", 'os; scheme="http://t#"; class="mixin"'),
            ("X-OCCI-Attribute", "a.b=1"),
            ("X-OCCI-Attribute", 'a.c="x, y"'),
            ("X-OCCI-Attribute", "a.d=true"),
        ]

    def test_location_alias_only_when_asked(self) -> None:
        headers = [("Location", "http://h/c/1, http://h/c/2"), ("X-OCCI-LOCATION", "http://h/c/3")]
        assert text.fields_from_headers(headers) == [("X-OCCI-Location", "http://h/c/3")]
        assert [v for _, v in text.fields_from_headers(headers, location_alias=True)] == [
            "http://h/c/1", "http://h/c/2", "http://h/c/3"]

    def test_aliases(self) -> None:
        headers = [("X-OCCI-Category", "a; scheme=\"http://x#\""), ("X-OCCI-Link", "</a>; rel=\"http://x#y\"")]
        assert [n for n, _ in text.fields_from_headers(headers)] == ["Category", "Link"]

    def test_bytes_utf8_then_latin1(self) -> None:
        headers = [(b"X-OCCI-Attribute", 'a.b="é"'.encode()), (b"X-OCCI-Attribute", b'a.c="\xe9"')]
        assert text.fields_from_headers(headers) == [
            ("X-OCCI-Attribute", 'a.b="é"'), ("X-OCCI-Attribute", 'a.c="é"')]

    def test_folded_value(self) -> None:
        assert text.fields_from_headers([("Category", 'a;\r\n scheme="http://x#"')]) == [
            ("Category", 'a; scheme="http://x#"')]

    def test_unterminated_quote_rejected(self) -> None:
        with pytest.raises(ParseError):
            text.fields_from_headers([("X-OCCI-Attribute", 'a.b="x')])


class TestWriters:
    def test_body_from_fields(self) -> None:
        fields = [("Category", KIND_LINE), ("X-OCCI-Attribute", 'a.b="é"')]
        assert text.body_from_fields(fields) == f'Category: {KIND_LINE}\r\nX-OCCI-Attribute: a.b="é"\r\n'.encode()
        assert text.body_from_fields([]) == b""

    @pytest.mark.spec("T-16")
    def test_headers_from_fields_comma_joined_in_first_order(self) -> None:
        fields = [("X-OCCI-Attribute", "a.b=1"), ("Category", KIND_LINE), ("X-OCCI-Attribute", "a.c=2")]
        assert text.headers_from_fields(fields) == [
            ("X-OCCI-Attribute", "a.b=1, a.c=2"), ("Category", KIND_LINE)]

    @pytest.mark.parametrize("value", ["a\r\nX-OCCI-Attribute: x=1", "a\nb"])
    def test_line_breaks_never_written(self, value: str) -> None:
        with pytest.raises(ValueError):
            text.body_from_fields([("X-OCCI-Location", value)])
        with pytest.raises(ValueError):
            text.headers_from_fields([("X-OCCI-Location", value)])


# =============================================================================================
# values
# =============================================================================================


class TestValues:
    @pytest.mark.spec("P-16")
    @pytest.mark.parametrize(("value", "rendered"), [
        ("x86", '"x86"'),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
        ("a\r\nb\tc", '"a\\r\\nb\\tc"'),
        ("", '""'),
        (True, "true"),
        (False, "false"),
        (2, "2"),
        (-5, "-5"),
        (2.0, "2.0"),
        (1.33, "1.33"),
        (0.125, "0.125"),
        (1e16, "10000000000000000.0"),
        (1e-7, "0.0000001"),
        (-2.5e20, "-250000000000000000000.0"),
        (["a", "b"], '"[\\"a\\",\\"b\\"]"'),
        ({"k": 1}, '"{\\"k\\":1}"'),
    ])
    def test_render_value(self, value: Any, rendered: str) -> None:
        assert text.render_value(value) == rendered
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", rendered)  # never an exponent

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), [float("nan")]])
    def test_render_non_finite_refused(self, value: Any) -> None:
        with pytest.raises(ValueError):
            text.render_value(value)

    @pytest.mark.parametrize(("raw", "value"), [
        ('"x86"', "x86"),
        ('  "a\\"b\\\\c\\n\\q"  ', 'a"b\\c\nq'),
        ('"3.6"', "3.6"),
        ('"true"', "true"),
        ("true", True),
        ("false", False),
        ("2", 2),
        ("-5", -5),
        ("007", 7),
        ("3.6", 3.6),
        ("1.", 1.0),
        (".5", 0.5),
        ("-1.5e3", -1500.0),
        ("inactive", "inactive"),
        ("/compute/1", "/compute/1"),
        ('"[\\"a\\"]"', '["a"]'),
        ("1e5", "1e5"),  # float = *DIGIT "." *DIGIT: not a number here, the definition decides
        ("\u0663", "\u0663"),  # ARABIC-INDIC DIGIT THREE is not a DIGIT
    ])
    def test_parse_value(self, raw: str, value: Any) -> None:
        parsed = text.parse_value(raw)
        assert parsed == value
        assert type(parsed) is type(value)

    @pytest.mark.parametrize("raw", ["", "   ", '"abc', '"a"b"', "[a, b]", "{k: v}", '["a"]', "1.0e999",
                                     "a b", "1" * 5000])
    def test_parse_value_rejects(self, raw: str) -> None:
        with pytest.raises(ParseError):
            text.parse_value(raw)

    @given(s.scalar_values)
    def test_scalar_round_trip(self, value: Any) -> None:
        parsed = text.parse_value(text.render_value(value))
        assert parsed == value
        assert type(parsed) is type(value)

    @given(s.complex_values)
    def test_complex_round_trip_through_the_definition(self, value: Any) -> None:
        """A List/Hash travels as quoted JSON; the attribute definition turns it back (§6.6)."""
        parsed = text.parse_value(text.render_value(value))
        assert isinstance(parsed, str)
        adef = AttributeDef("a.b", type="array" if isinstance(value, list) else "object")
        assert adef.check(parsed, lenient=True) == value

    @given(s.strings)
    def test_parse_value_arbitrary_text_only_parse_error(self, raw: str) -> None:
        try:
            text.parse_value(raw)
        except ParseError:
            pass


# =============================================================================================
# parse requests
# =============================================================================================


class TestParseEntity:
    @pytest.mark.spec("T-17")
    def test_ogf_quotes_escaping_case(self) -> None:
        # OGF 1.1 test script (test_syntax): memory must stay 3.6, the title keeps quote and comma.
        header = ('occi.compute.memory=3.6, occi.core.title="How\'s your quotes escaping? \\", '
                  'occi.compute.memory=1.0"')
        for fields in (text.fields_from_headers([("Category", KIND_LINE), ("X-OCCI-Attribute", header)]),
                       text.fields_from_body(body(f"Category: {KIND_LINE}", f"X-OCCI-Attribute: {header}"))):
            message = text.parse_entity(fields)
            assert message.attributes == {
                "occi.compute.memory": 3.6,
                "occi.core.title": 'How\'s your quotes escaping? ", occi.compute.memory=1.0',
            }

    @pytest.mark.spec("T-03")
    def test_spec_example(self) -> None:
        message = entity_of(
            f"Category: {KIND_LINE}",
            'Category: ubuntu; scheme="http://example.com/occi/os_tpl#"; class="mixin"',
            f"Link: </compute/b9ff?action=start>; rel=\"{START}\"",
            f'Link: </storage/disk1>; rel="{INFRA}storage"; self="/storagelink/sl1"; category="{INFRA}storagelink";'
            ' occi.core.id="sl1"; occi.core.source="/compute/b9ff"; occi.core.target="/storage/disk1";'
            ' occi.storagelink.deviceid="/dev/vdb"; occi.storagelink.state="active"',
            'X-OCCI-Attribute: occi.core.id="urn:uuid:b9ff"',
            "X-OCCI-Attribute: occi.compute.speed=1.33",
            "X-OCCI-Attribute: occi.compute.cores=2",
        )
        assert message == EntityMessage(
            kind=COMPUTE,
            mixins=("http://example.com/occi/os_tpl#ubuntu",),
            attributes={"occi.core.id": "urn:uuid:b9ff", "occi.compute.speed": 1.33, "occi.compute.cores": 2},
            links=(LinkMessage(
                target="/storage/disk1", target_kind=STORAGE, kind=STORAGELINK, mixins=(),
                attributes={"occi.core.id": "sl1", "occi.core.source": "/compute/b9ff",
                            "occi.core.target": "/storage/disk1", "occi.storagelink.deviceid": "/dev/vdb",
                            "occi.storagelink.state": "active"},
                self_location="/storagelink/sl1", source="/compute/b9ff", lenient=True),),
            action_links=(START,),
            lenient=True,
        )

    def test_tolerated_syntax(self) -> None:
        # Trailing ';', unquoted class and category, whitespace around '=' and ';', 1.2 terms.
        message = entity_of(
            f'Category: compute ;scheme = "{INFRA}" ;  class=kind;',
            'Category: My.Tpl-1; scheme="http://t#"; class="mixin"; title="x"; location="/t/"',
            f"Link: </n/1>;rel=\"{INFRA}network\";category={INFRA}networkinterface http://i#ip ;a.b = 2",
        )
        assert message.kind == COMPUTE
        assert message.mixins == ("http://t#My.Tpl-1",)
        link = message.links[0]
        assert (link.kind, link.mixins, link.attributes) == (f"{INFRA}networkinterface", ("http://i#ip",), {"a.b": 2})
        assert link.self_location is None

    def test_category_without_class_is_kept_for_the_receiver(self) -> None:
        # OCCI 1.1 clients send `Category: compute; scheme=...` in requests: the parser keeps the
        # reference; only the registry can tell a kind from a mixin (model.rules.classify_categories).
        message = entity_of(f'Category: compute;scheme="{INFRA}"',
                            'Category: tag; scheme="http://t#"; class="mixin"')
        assert (message.kind, message.mixins, message.unclassified) == (None, ("http://t#tag",), (COMPUTE,))

    def test_no_kind_is_allowed(self) -> None:
        # A partial update may omit the Kind: the service decides.
        assert entity_of("X-OCCI-Attribute: occi.core.title=\"x\"").kind is None

    @pytest.mark.parametrize("lines", [
        [f"Category: {KIND_LINE}", f'Category: storage; scheme="{INFRA}"; class="kind"'],  # two kinds
        [f'Category: start; scheme="{ACTIONS}"; class="action"'],  # action in an entity
        ['Category: compute; class="kind"'],  # missing scheme
        ['Category: compute; scheme="http://x"; class="kind"'],  # scheme without '#'
        ['Category: compute; scheme="http://x#"; class="myClass"'],
        ['Category: -compute; scheme="http://x#"; class="kind"'],  # bad term
        ['Category: com pute; scheme="http://x#"; class="kind"'],
        ['Category: compute; scheme="http://x#" class="kind"'],  # missing ';'
        ['Category: compute; scheme="http://x#"; scheme="http://y#"; class="kind"'],
        ['Category: compute; scheme; class="kind"'],
        ["Link: /storage/1; rel=\"http://x#y\""],  # no <...>
        ["Link: </storage/1>"],  # no rel
        ["Link: </storage/1>; rel=\"not-a-type-id\""],
        ["Link: </storage/1>; rel=\"http://x#y\"; self=\"a b\""],
        ["Link: </storage/1>; rel=\"http://x#y\"; a.b"],
        ["Link: <>; rel=\"http://x#y\""],
        ["X-OCCI-Attribute: occi.core.title"],  # attribute without '='
        ["X-OCCI-Attribute: occi.core.title="],  # empty value
        ["X-OCCI-Attribute: .bad=1"],  # name grammar
        ["X-OCCI-Attribute: occi core=1"],
        ["X-OCCI-Attribute: a.b=1, a.b=2"],  # duplicate
        ["X-OCCI-Attribute: a.b=[x, y]"],  # unquoted complex value
        ["X-OCCI-Attribute: a.b={k: v}"],
    ])
    def test_rejected(self, lines: list[str]) -> None:
        with pytest.raises(ParseError):
            entity_of(*lines)

    @pytest.mark.spec("T-02")
    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    @given(s.entities())
    def test_round_trip_body(self, entity: Entity) -> None:
        fields = text.render_entity(entity)
        self._check(entity, text.parse_entity(text.fields_from_body(text.body_from_fields(fields))))

    @pytest.mark.spec("T-16")
    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    @given(s.entities())
    def test_round_trip_headers(self, entity: Entity) -> None:
        fields = text.render_entity(entity)
        self._check(entity, text.parse_entity(text.fields_from_headers(text.headers_from_fields(fields))))

    @staticmethod
    def _check(entity: Entity, message: EntityMessage) -> None:
        assert message.kind == entity.kind
        assert message.mixins == tuple(entity.mixins)
        expected = {"occi.core.id": entity.entity_id, **{k: _wire(v) for k, v in entity.attributes.items()}}
        assert message.attributes == expected
        assert message.action_links == entity.actions
        assert len(message.links) == len(entity.links)
        for link, original in zip(message.links, entity.links):
            assert link.target == original.target
            assert link.target_kind == original.attributes.get("occi.core.target.kind", RESOURCE)
            assert link.self_location == original.location
            assert (link.kind, link.mixins) == (original.kind, tuple(original.mixins))
            assert link.attributes == {k: _wire(v) for k, v in original.attributes.items()}

    @settings(max_examples=200)
    @given(s.hostile_fields)
    def test_arbitrary_fields_only_parse_error(self, fields: list[tuple[str, str]]) -> None:
        for parse in (text.parse_entity, text.parse_action, text.parse_categories, text.parse_filter,
                      text.parse_locations):
            try:
                parse(fields)
            except ParseError:
                pass


class TestParseAction:
    @pytest.mark.spec("T-05")
    def test_short_category_and_parameters(self) -> None:
        fields = text.fields_from_body(body(
            f'Category: stop; scheme="{ACTIONS}"; class="action"',
            'X-OCCI-Attribute: method="graceful"'))
        assert text.parse_action(fields) == ActionInvocation(action=STOP, attributes={"method": "graceful"},
                                                              lenient=True)

    @pytest.mark.spec("P-10")
    def test_full_category_accepted(self) -> None:
        fields = text.fields_from_body(body(
            f'Category: start; scheme="{ACTIONS}"; class="action"; title="Start"; '
            'attributes="method{required}"'))
        assert text.parse_action(fields).action == START

    def test_no_category(self) -> None:
        assert text.parse_action(text.fields_from_body(b"X-OCCI-Attribute: method=\"cold\"")) == ActionInvocation(
            action=None, attributes={"method": "cold"}, lenient=True)

    def test_class_may_be_omitted(self) -> None:
        assert text.parse_action([("Category", f'stop; scheme="{ACTIONS}"')]).action == STOP

    @pytest.mark.parametrize("categories", [
        [f'stop; scheme="{ACTIONS}"; class="action"'] * 2,
        [KIND_LINE],
        ['stop; class="action"'],
    ])
    def test_rejected(self, categories: list[str]) -> None:
        with pytest.raises(ParseError):
            text.parse_action([("Category", c) for c in categories])

    @given(st.none() | s.type_ids, s.attribute_dicts)
    def test_round_trip(self, action: str | None, attributes: dict[str, Any]) -> None:
        invocation = ActionInvocation(action=action, attributes=attributes)
        parsed = text.parse_action(text.render_action_invocation(invocation))
        assert parsed.action == action
        assert parsed.attributes == {k: _wire(v) for k, v in attributes.items()}


class TestParseCategories:
    def test_full_category(self) -> None:
        [category] = text.parse_categories([("Category",
            (f'compute; scheme="{INFRA}"; class="kind"; title="Compute Resource"; '
            'rel="http://schemas.ogf.org/occi/core#resource"; location="/compute/"; '
            'attributes="occi.core.id{immutable required} occi.compute.cores occi.compute.state{immutable} '
            'occi.x.y{required} occi.x.z{required immutable}"; '
            f'actions="{START} {STOP}"; future="ignored"'))])
        assert category == CategoryDefinition(
            scheme=INFRA, term="compute", cls="kind", title="Compute Resource",
            rel=("http://schemas.ogf.org/occi/core#resource",), location="/compute/",
            attributes=(AttributeDef("occi.core.id", mutable=False, required=True),
                        AttributeDef("occi.compute.cores"),
                        AttributeDef("occi.compute.state", mutable=False),
                        AttributeDef("occi.x.y", required=True),
                        AttributeDef("occi.x.z", mutable=False, required=True)),
            actions=(START, STOP))

    def test_user_mixin_example(self) -> None:
        # text-rendering.md §11: a user-defined mixin sent to POST /-/.
        [mixin] = text.parse_categories(text.fields_from_body(
            b'Category: my_stuff; scheme="http://example.com/occi/my_stuff#"; class="mixin"; '
            b'rel="http://example.com/occi/something_else#mixin"; location="/my_stuff/"'))
        assert mixin.to_category() == Mixin(
            scheme="http://example.com/occi/my_stuff#", term="my_stuff",
            depends=("http://example.com/occi/something_else#mixin",), location="/my_stuff/")

    def test_rel_list_and_ignored_core_properties(self) -> None:
        [mixin] = text.parse_categories([("Category",
            'm; scheme="http://x#"; class="mixin"; rel="http://a#b http://c#d"; attributes="a.b{type mutable}"')])
        assert mixin.rel == ("http://a#b", "http://c#d")
        assert mixin.attributes == (AttributeDef("a.b"),)

    def test_class_optional_when_not_required(self) -> None:
        [category] = text.parse_categories([("Category", 'my_stuff; scheme="http://x#"')], require_class=False)
        assert category.cls is None
        with pytest.raises(ParseError):
            text.parse_categories([("Category", 'my_stuff; scheme="http://x#"')])

    def test_other_fields_ignored(self) -> None:
        assert text.parse_categories([("X-OCCI-Location", "/a")]) == []

    @pytest.mark.parametrize("value", [
        'a; class="kind"',
        'a; scheme="http://x#"; class="kind"; attributes="a.b{bogus}"',
        'a; scheme="http://x#"; class="kind"; attributes="a.b{immutable"',
        'a; scheme="http://x#"; class="kind"; attributes="a.b{immutable}a.c"',
        'a; scheme="http://x#"; class="kind"; attributes="a.b a.b"',
        'a; scheme="http://x#"; class="kind"; attributes="-a"',
        'a; scheme="http://x#"; class="kind"; actions="http://x#"',
        'a; scheme="http://x#"; class="kind"; rel="http://x"',
        'a; scheme="http://x#"; class="kind"; location="/a b/"',
        'a; scheme="http://x#"; class="kind"; title="unterminated',
    ])
    def test_rejected(self, value: str) -> None:
        with pytest.raises(ParseError):
            text.parse_categories([("Category", value)])

    @pytest.mark.spec("P-15")
    def test_duplicates_rejected(self) -> None:
        with pytest.raises(ParseError):
            text.parse_categories([("Category", 'a; scheme="http://x#"; class="kind"')] * 2)


class TestParseFilterAndLocations:
    def test_filter(self) -> None:
        fields = text.fields_from_headers([
            ("Category", f'compute; scheme="{INFRA}"'),
            ("Category", 'my_stuff; scheme="http://x#"; class="mixin"'),
            ("X-OCCI-Attribute", 'occi.compute.state="active"'),
            ("Accept", "text/plain"),
        ])
        result = text.parse_filter(fields)
        assert result.categories == (CategoryRef(INFRA, "compute", None), CategoryRef("http://x#", "my_stuff", "mixin"))
        assert result.attributes == {"occi.compute.state": "active"}
        assert result
        assert not text.parse_filter([])

    @pytest.mark.spec("T-09")
    def test_locations(self) -> None:
        fields = text.fields_from_body(b"X-OCCI-Location: http://example.com/compute/1, /compute/2\r\n"
                                       b"X-OCCI-Location: urn:uuid:1\r\n")
        assert text.parse_locations(fields) == ["http://example.com/compute/1", "/compute/2", "urn:uuid:1"]
        with pytest.raises(ParseError):
            text.parse_locations(fields, absolute=True)

    @pytest.mark.parametrize("value", ["/a b", "<x>", "/a%zz", '"/a"'])
    def test_bad_locations(self, value: str) -> None:
        with pytest.raises(ParseError):
            text.parse_locations([("X-OCCI-Location", value)])


# =============================================================================================
# render answers
# =============================================================================================


def _compute() -> Entity:
    # A None value (an unset attribute) is never rendered (text-rendering.md §6.6).
    attributes: dict[str, Any] = {"occi.core.title": "My Dummy VM", "occi.compute.cores": 2,
                                  "occi.compute.memory": 2.0, "occi.compute.speed": None}
    link = Entity(kind=STORAGELINK, entity_id="sl1", location="/storagelink/sl1",
                  attributes={"occi.core.source": "/compute/b9ff", "occi.core.target": "/storage/disk1",
                              "occi.core.target.kind": STORAGE, "occi.storagelink.deviceid": "/dev/vdb"})
    return Entity(kind=COMPUTE, entity_id="b9ff", location="/compute/b9ff",
                  mixins=("http://example.com/occi/os_tpl#ubuntu",), attributes=attributes,
                  actions=(START,), links=(link,))


class TestRenderEntity:
    @pytest.mark.spec("T-03")
    def test_resource(self) -> None:
        assert text.render_entity(_compute()) == [
            ("Category", KIND_LINE),
            ("Category", 'ubuntu; scheme="http://example.com/occi/os_tpl#"; class="mixin"'),
            ("Link", f'</compute/b9ff?action=start>; rel="{START}"'),
            ("Link", (f'</storage/disk1>; rel="{STORAGE}"; self="/storagelink/sl1"; category="{STORAGELINK}"; '
                      'occi.core.id="sl1"; occi.core.source="/compute/b9ff"; occi.core.target="/storage/disk1"; '
                      f'occi.core.target.kind="{STORAGE}"; occi.storagelink.deviceid="/dev/vdb"')),
            ("X-OCCI-Attribute", 'occi.core.id="b9ff"'),
            ("X-OCCI-Attribute", 'occi.core.title="My Dummy VM"'),
            ("X-OCCI-Attribute", "occi.compute.cores=2"),
            ("X-OCCI-Attribute", "occi.compute.memory=2.0"),
        ]

    @pytest.mark.spec("T-04")
    def test_action_links_follow_the_grammar(self) -> None:
        link = text.render_entity(_compute())[2][1]
        assert re.fullmatch(r'<(/[^>]*)\?action=[A-Za-z0-9][A-Za-z0-9._-]*>; rel="[^"]+#[^"]+"', link)

    @pytest.mark.spec("P-17")
    def test_core_id_always_first(self) -> None:
        entity = Entity(kind=COMPUTE, entity_id="x1", location="/compute/x1",
                        attributes={"occi.core.title": "t", "occi.core.id": "x1"})
        assert text.render_entity(entity)[1:] == [
            ("X-OCCI-Attribute", 'occi.core.id="x1"'), ("X-OCCI-Attribute", 'occi.core.title="t"')]

    def test_link_without_target_kind_uses_resource(self) -> None:
        compute = _compute()
        compute = compute.evolve(links=(compute.links[0].with_attributes(drop=("occi.core.target.kind",)),))
        assert f'rel="{RESOURCE}"' in text.render_entity(compute)[3][1]

    @pytest.mark.spec("T-06")
    def test_link_entity(self) -> None:
        link = Entity(kind="http://schemas.ogf.org/occi/infrastructure#networkinterface", entity_id="456",
                      location="/networkinterface/456",
                      mixins=("http://schemas.ogf.org/occi/infrastructure/networkinterface#ipnetworkinterface",),
                      attributes={"occi.core.source": "/compute/1", "occi.core.target": "/network/123",
                                  "occi.networkinterface.mac": "00:11:22:33:44:55"},
                      actions=("http://schemas.ogf.org/occi/infrastructure/networkinterface/action#down",))
        fields = text.render_entity(link)
        assert [name for name, _ in fields] == ["Category", "Category", "Link"] + ["X-OCCI-Attribute"] * 4
        message = text.parse_entity(fields)
        assert message.action_links == link.actions
        assert message.attributes["occi.core.target"] == "/network/123"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return standard_registry()


class TestRenderCategories:
    @pytest.mark.spec("T-07")
    def test_compute_kind(self, registry: Registry) -> None:
        [(name, value)] = text.render_categories([registry.kind(COMPUTE)], registry)
        assert name == "Category"
        assert value.startswith(f'compute; scheme="{INFRA}"; class="kind"; title="')
        assert '; rel="http://schemas.ogf.org/occi/core#resource"; location="/compute/"; attributes="' in value
        assert "occi.core.id{immutable required}" in value  # inherited from core#entity
        assert f'; actions="{START} ' in value

    @pytest.mark.spec("T-02")
    def test_ogf11_syntax_regex(self, registry: Registry) -> None:
        # OGF 1.1 test_syntax: the first Category must match this (quoted class, "; " separators).
        fields = text.render_categories(registry.categories(), registry)
        assert re.match(r'\w+; \bscheme=[a-z:./#"]*; \bclass="(?:action|kind|mixin)"', fields[0][1])
        header = text.headers_from_fields(fields)
        assert header[0][0] == "Category"

    @pytest.mark.spec("T-12")
    def test_mixin_rel_is_first_depends_only(self) -> None:
        registry = Registry()
        registry.add(Mixin(scheme=INFRA, term="os_tpl", location="/mixin/os_tpl/"))
        registry.add(Mixin(scheme="http://x#", term="other", location="/mixin/other/"))
        tpl = Mixin(scheme="http://provider/os_tpl#", term="debian", title="Debian 12",
                    depends=(OS_TPL, "http://x#other"), location="/mixin/os_tpl/debian/")
        [(_, value)] = text.render_categories([tpl], registry)
        assert value == (f'debian; scheme="http://provider/os_tpl#"; class="mixin"; title="Debian 12"; '
                         f'rel="{OS_TPL}"; location="/mixin/os_tpl/debian/"')

    @pytest.mark.spec("T-08")
    def test_action_has_no_rel_location_actions(self, registry: Registry) -> None:
        [(_, value)] = text.render_categories([registry.action(STOP)], registry)
        assert value.startswith(f'stop; scheme="{ACTIONS}"; class="action"; title="')
        assert "rel=" not in value and "location=" not in value and "actions=" not in value
        assert 'attributes="method"' in value

    @pytest.mark.spec("P-15")
    def test_pocci_parameter_rules(self, registry: Registry) -> None:
        allowed = {"scheme", "class", "title", "rel", "location", "attributes", "actions"}
        for _, value in text.render_categories(registry.categories(), registry):
            parts = value.split("; ")
            for part in parts[1:]:
                name, _, raw = part.partition("=")
                assert name in allowed
                assert raw.startswith('"') and raw.endswith('"'), part
            flags = re.findall(r"\{([^}]*)\}", value)
            assert all(set(f.split()) <= {"immutable", "required"} for f in flags)

    def test_standard_registry_round_trip(self, registry: Registry) -> None:
        categories = registry.categories()
        parsed = text.parse_categories(text.fields_from_body(text.body_from_fields(
            text.render_categories(categories, registry))))
        assert [p.type_id for p in parsed] == [c.type_id for c in categories]
        _check_categories(registry, categories, parsed)

    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    @given(s.category_sets())
    def test_round_trip(self, category_set: tuple[Registry, list[Kind | Mixin | Action]]) -> None:
        registry, categories = category_set
        fields = text.render_categories(categories, registry)
        _check_categories(registry, categories, text.parse_categories(fields))
        headers = text.headers_from_fields(fields)
        _check_categories(registry, categories, text.parse_categories(text.fields_from_headers(headers)))


def _check_categories(registry: Registry, categories: list[Kind | Mixin | Action],
                      parsed: list[CategoryDefinition]) -> None:
    assert len(parsed) == len(categories)
    for category, definition in zip(categories, parsed):
        assert (definition.scheme, definition.term, definition.title) == (
            category.scheme, category.term, category.title or None)
        if isinstance(category, Kind):
            assert definition.cls == "kind"
            assert definition.rel == ((category.parent,) if category.parent else ())
            assert definition.location == category.location
            defs = list(registry.kind_attribute_defs(category.type_id).values())
            assert definition.actions == category.actions
        elif isinstance(category, Mixin):
            assert definition.cls == "mixin"
            assert definition.rel == category.depends[:1]
            assert definition.location == category.location
            defs = list(category.attributes)
            assert definition.actions == category.actions
        else:
            assert definition.cls == "action"
            assert (definition.rel, definition.location, definition.actions) == ((), None, ())
            defs = list(category.attributes)
        assert [(a.name, a.mutable, a.required) for a in definition.attributes] == [
            (a.name, a.mutable, a.required) for a in defs]


class TestRenderLocations:
    @pytest.mark.spec("T-09")
    def test_locations(self) -> None:
        urls = ["http://example.com/compute/1", "http://example.com/compute/2"]
        fields = text.render_locations(urls)
        assert fields == [("X-OCCI-Location", url) for url in urls]
        assert text.parse_locations(text.fields_from_body(text.body_from_fields(fields)), absolute=True) == urls
        assert text.headers_from_fields(fields) == [("X-OCCI-Location", ", ".join(urls))]
        assert text.render_locations([]) == []


# =============================================================================================
# client side
# =============================================================================================


class TestClientRenderers:
    def test_entity_message(self) -> None:
        message = EntityMessage(
            kind=COMPUTE, mixins=("http://t#small",), attributes={"occi.core.title": "vm", "occi.compute.cores": 2},
            links=(LinkMessage(target="/storage/1", target_kind=STORAGE, kind=STORAGELINK,
                               attributes={"occi.storagelink.deviceid": "/dev/vdb"}),
                   LinkMessage(target="/network/1")),
            action_links=(START,))
        fields = text.render_entity_message(message)
        assert fields == [
            ("Category", KIND_LINE),
            ("Category", 'small; scheme="http://t#"; class="mixin"'),
            ("Link", f'</storage/1>; rel="{STORAGE}"; category="{STORAGELINK}"; occi.storagelink.deviceid="/dev/vdb"'),
            ("Link", f'</network/1>; rel="{RESOURCE}"'),
            ("X-OCCI-Attribute", 'occi.core.title="vm"'),
            ("X-OCCI-Attribute", "occi.compute.cores=2"),
        ]
        parsed = text.parse_entity(fields)
        assert (parsed.kind, parsed.mixins, parsed.attributes) == (message.kind, message.mixins, message.attributes)
        assert parsed.links[0].kind == STORAGELINK and parsed.links[1].target_kind == RESOURCE

    @given(st.none() | s.type_ids, st.lists(s.type_ids, unique=True, max_size=3), s.attribute_dicts)
    def test_entity_message_round_trip(self, kind: str | None, mixins: list[str], attributes: dict[str, Any]) -> None:
        message = EntityMessage(kind=kind, mixins=tuple(mixins), attributes=attributes)
        parsed = text.parse_entity(text.fields_from_body(text.body_from_fields(text.render_entity_message(message))))
        assert (parsed.kind, parsed.mixins) == (kind, tuple(mixins))
        assert parsed.attributes == {k: _wire(v) for k, v in attributes.items()}

    def test_action_invocation(self) -> None:
        fields = text.render_action_invocation(ActionInvocation(action=STOP, attributes={"method": "graceful"}))
        assert fields == [("Category", f'stop; scheme="{ACTIONS}"; class="action"'),
                          ("X-OCCI-Attribute", 'method="graceful"')]

    def test_category_definitions(self) -> None:
        definitions = [
            CategoryDefinition(scheme="http://example.com/occi/my_stuff#", term="my_stuff", cls="mixin",
                               title="My, stuff", rel=("http://a#b", "http://c#d"), location="/my_stuff/",
                               attributes=(AttributeDef("a.b", mutable=False),)),
            CategoryDefinition(scheme="http://x#", term="gone"),
        ]
        fields = text.render_category_definitions(definitions)
        assert fields[1] == ("Category", 'gone; scheme="http://x#"')
        assert text.parse_categories(fields, require_class=False) == definitions


# =============================================================================================
# hostile input
# =============================================================================================


class TestArbitraryInput:
    @given(st.binary(max_size=300))
    def test_body_bytes(self, data: bytes) -> None:
        try:
            fields = text.fields_from_body(data)
        except ParseError:
            return
        for parse in (text.parse_entity, text.parse_categories, text.parse_locations):
            try:
                parse(fields)
            except ParseError:
                pass

    @settings(max_examples=200)
    @given(st.lists(st.tuples(st.sampled_from(["Category", "category", "X-OCCI-Attribute", "Link", "Location",
                                               "X-OCCI-Location", "Bogus"]), s.grammar_soup), max_size=6))
    def test_body_lines(self, lines: list[tuple[str, str]]) -> None:
        data = "\n".join(f"{n}: {v}" for n, v in lines).encode()
        try:
            fields = text.fields_from_body(data)
            text.parse_entity(fields)
        except ParseError:
            pass

    @given(st.lists(st.tuples(st.text(max_size=20) | st.binary(max_size=20),
                              s.grammar_soup | st.text(max_size=40) | st.binary(max_size=40)), max_size=6),
           st.booleans())
    def test_headers(self, headers: list[tuple[Any, Any]], alias: bool) -> None:
        try:
            fields = text.fields_from_headers(headers, location_alias=alias)
            text.parse_filter(fields)
        except ParseError:
            pass


def test_a_short_category_value_is_parsed_once_and_a_bad_one_fails_every_time() -> None:
    """The memo of short Category values (text._parse_category): the same frozen definition comes
    back, a long value is parsed in full, and an error is never remembered as a result."""
    from occipy.errors import ParseError
    from occipy.rendering import text

    value = 'start; scheme="http://schemas.ogf.org/occi/infrastructure/compute/action#"; class="action"'
    first = text._parse_category(value, require_class=False)
    assert text._parse_category(value, require_class=False) is first
    assert (first.term, first.scheme, first.cls) == ("start", "http://schemas.ogf.org/occi/infrastructure/compute/action#",
                                                     "action")
    long_title = "x" * 600
    long = text._parse_category(f'my; scheme="http://example.com/occi#"; class="mixin"; title="{long_title}"',
                                require_class=True)
    assert long.title == long_title
    for _ in range(2):
        with pytest.raises(ParseError, match="missing class"):
            text._parse_category('compute; scheme="http://schemas.ogf.org/occi/infrastructure#"', require_class=True)

"""Unit tests of occipy.rendering.json (application/occi+json, GFD.226, json-rendering.md)."""

from __future__ import annotations

import json as stdjson
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from occipy.errors import InvalidAttribute, ParseError
from occipy.model.catalogue import COMPUTE, CORE_KINDS, NETWORK, NETWORKINTERFACE
from occipy.model.category import Action, AttributeDef, Kind, Mixin
from occipy.model.entity import Entity
from occipy.model.registry import ENTITY, LINK, RESOURCE, Registry
from occipy.model.standard import standard_registry
from occipy.rendering import json as oj
from occipy.rendering.messages import ActionInvocation, CategoryDefinition, EntityMessage, LinkMessage

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
SPEC_MD = SHARED / "spec" / "json-rendering.md"

INFRA = "http://schemas.ogf.org/occi/infrastructure#"
STOP = "http://schemas.ogf.org/occi/infrastructure/compute/action#stop"
START = "http://schemas.ogf.org/occi/infrastructure/compute/action#start"
DRAFT_04 = "http://json-schema.org/draft-04/schema#"


def spec_examples() -> list[str]:
    return re.findall(r"```json\n(.*?)```", SPEC_MD.read_text(encoding="utf-8"), re.DOTALL)


def body(value: Any) -> bytes:
    return stdjson.dumps(value).encode()


def parse_error(parser: Any, value: Any) -> ParseError:
    with pytest.raises(ParseError) as info:
        parser(value if isinstance(value, bytes) else body(value))
    return info.value


# ---- every example of json-rendering.md parses with its parser --------------------------------

# (block index in json-rendering.md, parsers that must accept it); blocks are in document order.
EXAMPLE_PARSERS: list[tuple[str, list[Any]]] = [
    ("§2 resource", [oj.parse_entity, oj.parse_entities]),
    ("§3 link", [oj.parse_entity, oj.parse_entities]),
    ("§4 action invocation", [oj.parse_action]),
    ("§5.1 kind", [lambda b: oj.parse_query_interface(b'{"kinds": [' + b + b"]}")]),
    ("§5.2 mixin", [oj.parse_mixin_definitions, lambda b: oj.parse_query_interface(b'{"mixins": [' + b + b"]}")]),
    ("§5.3 action", [lambda b: oj.parse_query_interface(b'{"actions": [' + b + b"]}")]),
    ("§8 mixin collection", [oj.parse_entity_collection, oj.parse_entities, oj.parse_locations]),
    ("§8 query interface", [oj.parse_query_interface]),
    ("§9 create request", [oj.parse_entity, oj.parse_entities]),
    ("§9 link creation", [oj.parse_entity, oj.parse_entities]),
    ("§9 user mixin", [oj.parse_mixin_definitions]),
    ("§9 location stubs", [oj.parse_locations]),
]


@pytest.mark.spec("J-02")
def test_spec_digest_has_the_expected_examples() -> None:
    assert len(spec_examples()) == len(EXAMPLE_PARSERS)


@pytest.mark.spec("J-02")
@pytest.mark.parametrize("index", range(len(EXAMPLE_PARSERS)), ids=[name for name, _ in EXAMPLE_PARSERS])
def test_every_spec_example_parses(index: int) -> None:
    text = spec_examples()[index].encode()
    document = stdjson.loads(text)
    for parser in EXAMPLE_PARSERS[index][1]:
        result = parser(text)
        assert _summary(result) == _expected_summary(document, result), EXAMPLE_PARSERS[index][0]


def _summary(result: Any) -> Any:
    """What a parser gave, reduced to what the example document states (kinds, ids, actions)."""
    if isinstance(result, list):
        return [_summary(item) for item in result]
    if isinstance(result, EntityMessage):
        return ("entity", result.kind, tuple(result.mixins))
    if isinstance(result, ActionInvocation):
        return ("action", result.action, dict(result.attributes))
    if isinstance(result, CategoryDefinition):
        return result.type_id
    return result


def _expected_summary(document: dict[str, Any], result: Any) -> Any:
    """The same, read from the example document with the standard json module."""
    def entity(e: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
        return ("entity", e["kind"], tuple(e.get("mixins", ())))

    members = [*document.get("resources", []), *document.get("links", [])]
    if "action" in document:
        return ("action", document["action"], document.get("attributes", {}))
    if "kind" in document:  # one entity
        return [entity(document)] if isinstance(result, list) else entity(document)
    if members and all(isinstance(item, str) for item in result):  # locations
        return [e.get("location", e.get("id")) for e in members]
    if members:
        return [entity(e) for e in members]
    if "term" in document:  # one category, wrapped by the lambda
        return [document["scheme"] + document["term"]]
    return [c["scheme"] + c["term"] for key in ("kinds", "mixins", "actions") for c in document.get(key, [])]


# ---- parse_entity ------------------------------------------------------------------------------


@pytest.mark.spec("P-18")
def test_resource_example_folds_top_level_members_and_links() -> None:
    message = oj.parse_entity(spec_examples()[0].encode())
    assert message.kind == COMPUTE
    assert message.attributes["occi.core.id"] == "urn:uuid:996ad860-2a9a-504f-8861-aeafd0b2ae29"
    assert message.attributes["occi.core.title"] == "web1"
    assert message.attributes["occi.core.summary"] == "Front-end web server"
    assert message.attributes["occi.compute.memory"] == 4.0
    assert isinstance(message.attributes["occi.compute.memory"], float)
    assert message.attributes["com.example.labels"] == {"tier": "web"}
    assert message.action_links[0].endswith("#stop")
    assert message.lenient is False
    (link,) = message.links
    assert link.kind == NETWORKINTERFACE
    assert link.target == "/network/b7d55bf4-7057-5113-85c8-141871bf7635"
    assert link.target_kind == NETWORK
    assert link.source == "/compute/996ad860-2a9a-504f-8861-aeafd0b2ae29"
    assert link.attributes["occi.networkinterface.mac"] == "00:80:41:ae:fd:7e"
    assert link.attributes["occi.core.id"] == "urn:uuid:22fe83ae-a20f-54fc-b436-cec85c94c5e8"


def test_link_example_folds_source_and_target() -> None:
    message = oj.parse_entity(spec_examples()[1].encode())
    assert message.kind == NETWORKINTERFACE
    assert message.attributes["occi.core.source"] == "/compute/996ad860-2a9a-504f-8861-aeafd0b2ae29"
    assert message.attributes["occi.core.target"] == "/network/b7d55bf4-7057-5113-85c8-141871bf7635"
    assert message.attributes["occi.core.target.kind"] == NETWORK
    assert "occi.core.source.kind" not in message.attributes
    assert message.links == ()


def test_top_level_only_and_attributes_only_read_the_same() -> None:
    """json-rendering.md §2 decision: accept either place (the spec's form and rOCCI-core's)."""
    top = oj.parse_entity(body({
        "kind": "http://schemas.ogf.org/occi/infrastructure#storagelink", "id": "sl1", "title": "t",
        "source": {"location": "/compute/1", "kind": COMPUTE},
        "target": {"location": "/storage/2", "kind": INFRA + "storage"},
    }))
    inner = oj.parse_entity(body({
        "kind": "http://schemas.ogf.org/occi/infrastructure#storagelink",
        "attributes": {"occi.core.id": "sl1", "occi.core.title": "t", "occi.core.source": "/compute/1",
                       "occi.core.target": "/storage/2", "occi.core.target.kind": INFRA + "storage"},
    }))
    assert top == inner


def test_create_request_with_inline_link_without_source() -> None:
    message = oj.parse_entity(spec_examples()[8].encode())
    assert "occi.core.id" not in message.attributes
    assert message.attributes["occi.core.title"] == "web2"
    (link,) = message.links
    assert link.source is None and "occi.core.source" not in link.attributes
    assert link.target == "/network/b7d55bf4-7057-5113-85c8-141871bf7635"
    assert link.attributes["occi.networkinterface.interface"] == "eth0"


def test_partial_update_needs_no_kind() -> None:
    assert oj.parse_entity(b'{"attributes": {"occi.compute.cores": 4}}') == EntityMessage(
        attributes={"occi.compute.cores": 4})
    assert oj.parse_entity(b"{}") == EntityMessage()


def test_location_and_rel_are_ignored_members() -> None:
    message = oj.parse_entity(body({"kind": COMPUTE, "location": "/compute/1", "rel": COMPUTE,
                                    "links": [{"target": {"location": "/n/1"}, "location": "/l/1",
                                               "rel": "x"}]}))
    assert message.location == "/compute/1"
    assert message.links[0].self_location == "/l/1"


@pytest.mark.spec("J-07")
def test_attribute_names_stay_flat() -> None:
    message = oj.parse_entity(b'{"attributes": {"occi.compute.cores": 2, "com.example.tags": {"a": [1]}}}')
    assert message.attributes == {"occi.compute.cores": 2, "com.example.tags": {"a": [1]}}


@pytest.mark.parametrize("member, value, attribute", [
    ("id", "a", "occi.core.id"),
    ("title", "a", "occi.core.title"),
    ("summary", "a", "occi.core.summary"),
])
def test_conflicting_top_level_member_and_attribute(member: str, value: str, attribute: str) -> None:
    error = parse_error(oj.parse_entity, {"kind": COMPUTE, member: value, "attributes": {attribute: "b"}})
    assert attribute in error.message
    # Equal values in both places are fine.
    assert oj.parse_entity(body({member: value, "attributes": {attribute: value}})).attributes[attribute] == value


@pytest.mark.parametrize("member, attributes", [
    ({"source": {"location": "/c/1"}, "target": {"location": "/s/1"}}, {"occi.core.source": "/c/2"}),
    ({"source": {"location": "/c/1"}, "target": {"location": "/s/1"}}, {"occi.core.target": "/s/2"}),
    ({"target": {"location": "/s/1", "kind": INFRA + "storage"}}, {"occi.core.target.kind": COMPUTE}),
])
def test_conflicting_source_or_target(member: dict[str, Any], attributes: dict[str, Any]) -> None:
    parse_error(oj.parse_entity, {**member, "attributes": attributes})
    # The same conflict inside an inline link.
    parse_error(oj.parse_entity, {"kind": COMPUTE, "links": [{**member, "attributes": attributes}]})


@pytest.mark.spec("J-01")
@pytest.mark.parametrize("raw", [
    b"", b"{", b"[]", b"null", b"42", b'"x"', b"\xff\xfe", b"{'kind': 'a#b'}", b'{"kind": "a#b",}',
])
def test_malformed_json(raw: bytes) -> None:
    parse_error(oj.parse_entity, raw)


@pytest.mark.parametrize("value", [
    {"kind": None},
    {"mixins": None},
    {"mixins": [None]},
    {"attributes": None},
    {"attributes": {"occi.compute.cores": None}},
    {"attributes": {"com.example.x": {"a": [1, None]}}},
    {"title": None},
    {"id": None},
    {"rel": None},
    {"links": [{"target": {"location": "/n/1", "kind": None}}]},
    {"links": [{"target": {"location": "/n/1"}, "attributes": {"a.b": None}}]},
])
def test_null_is_rejected(value: dict[str, Any]) -> None:
    parse_error(oj.parse_entity, value)


@pytest.mark.parametrize("value", [
    {"kind": 1},
    {"kind": "compute"},                       # not a type identifier
    {"kind": "http://x#compute\n"},
    {"mixins": "http://x#a"},
    {"mixins": ["no-hash"]},
    {"attributes": []},
    {"attributes": {"": 1}},
    {"attributes": {"bad name": 1}},
    {"attributes": {"a": 1e400}},              # out of range: would render as null
    {"title": 3},
    {"id": ""},
    {"actions": "x"},
    {"links": {}},
    {"links": [{"kind": NETWORKINTERFACE}]},   # an inline link needs a target
    {"links": [{"target": "/n/1"}]},
    {"links": [{"target": {}}]},
    {"links": [{"target": {"location": "/n/1"}, "links": []}]},
    {"links": [{"target": {"location": "/n/1"}, "summary": "s"}]},
    {"source": {"location": "/c/1"}, "links": []},
    {"target": {"location": "/c/1"}, "summary": "s"},
    {"source": {"location": "/c/1", "rel": "x"}},
])
def test_wrong_types_and_shapes(value: dict[str, Any]) -> None:
    parse_error(oj.parse_entity, value)


@pytest.mark.spec("J-02")
@pytest.mark.parametrize("member", ["foo", "Kind", "occi.core.id", "resources", "term", "self"])
def test_unknown_member_is_rejected(member: str) -> None:
    error = parse_error(oj.parse_entity, {"kind": COMPUTE, member: "x"})
    assert member in error.message


def test_error_names_the_json_path() -> None:
    error = parse_error(oj.parse_entity, {"links": [{"target": {"location": "/n"}, "mixins": [3]}]})
    assert "$.links[0].mixins[0]" in error.message


def test_bom_and_deep_nesting() -> None:
    assert oj.parse_entity(b'\xef\xbb\xbf{"kind": "a#b"}').kind == "a#b"
    parse_error(oj.parse_entity, b'{"attributes": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}")


# ---- parse_entities / parse_entity_collection ------------------------------------------------


def test_parse_entities_single_and_collections() -> None:
    single = oj.parse_entities(spec_examples()[8].encode())
    assert len(single) == 1 and single[0].kind == COMPUTE
    mixed = oj.parse_entities(spec_examples()[6].encode())
    assert [m.kind for m in mixed] == [COMPUTE, INFRA + "storagelink"]
    links = oj.parse_entities(body({"links": [{"kind": INFRA + "storagelink", "source": {"location": "/c/1"},
                                               "target": {"location": "/s/1"}}]}))
    assert links[0].attributes["occi.core.source"] == "/c/1"
    assert len(oj.parse_entities(body({"resources": [{"kind": COMPUTE}], "rel": "x"}))) == 1


@pytest.mark.parametrize("value", [
    {}, {"resources": []}, {"links": []}, {"resources": [], "links": []},
    {"kind": COMPUTE, "resources": []},
    {"resources": [{"kind": COMPUTE, "source": {"location": "/c/1"}}]},
    {"links": [{"kind": NETWORKINTERFACE, "links": []}]},
    {"resources": {}},
])
def test_parse_entities_refuses(value: dict[str, Any]) -> None:
    parse_error(oj.parse_entities, value)


@pytest.mark.spec("J-04")
def test_parse_entity_collection() -> None:
    assert oj.parse_entity_collection(b'{"resources": []}') == []
    assert oj.parse_entity_collection(b'{"links": []}') == []
    messages = oj.parse_entity_collection(spec_examples()[6].encode())
    assert messages[0].attributes["occi.core.title"] == "web2"
    assert messages[1].attributes["occi.core.target"] == "/storage/disk1"
    with_location = oj.parse_entity_collection(body({"resources": [{"kind": COMPUTE, "location": "/c/1"}]}))
    assert with_location[0].location == "/c/1"
    parse_error(oj.parse_entity_collection, {"kinds": []})
    parse_error(oj.parse_entity_collection, {"kind": COMPUTE})


# ---- parse_locations ---------------------------------------------------------------------------


def test_parse_locations_forms() -> None:
    assert oj.parse_locations(spec_examples()[11].encode()) == [
        "http://example.com/compute/996ad860-2a9a-504f-8861-aeafd0b2ae29"]
    assert oj.parse_locations(b'["/compute/1", "/storage/2"]') == ["/compute/1", "/storage/2"]
    assert oj.parse_locations(b"[]") == []
    assert oj.parse_locations(body({"resources": [{"id": "c1"}, {"location": "/c/2", "id": "c2"}],
                                    "links": [{"location": "/l/1"}]})) == ["c1", "/c/2", "/l/1"]
    full = oj.parse_locations(spec_examples()[6].encode())
    assert full == ["urn:uuid:c1d2e3f4-0000-4000-8000-000000000001", "sl1"]


@pytest.mark.parametrize("value", [
    {"resources": [{}]}, {"resources": [{"kind": COMPUTE}]}, [1], [None], ["/c/1", ""], {"resources": [None]},
    {"resources": [{"location": None}]}, {"links": [{"location": "/l", "attributes": {"a": None}}]},
    {"mixins": []}, "x",
])
def test_parse_locations_refuses(value: Any) -> None:
    parse_error(oj.parse_locations, value)


# ---- parse_action ------------------------------------------------------------------------------


def test_parse_action() -> None:
    assert oj.parse_action(spec_examples()[2].encode()) == ActionInvocation(action=STOP,
                                                                             attributes={"method": "graceful"})
    assert oj.parse_action(body({"action": START})) == ActionInvocation(action=START)
    assert oj.parse_action(b"{}") == ActionInvocation()
    assert oj.parse_action(body({"action": START, "location": "/c/1", "rel": "x"})).action == START


@pytest.mark.parametrize("value", [
    {"action": None}, {"action": "stop"}, {"action": STOP, "attributes": {"method": None}},
    {"action": STOP, "term": "stop"}, {"action": STOP, "attributes": []}, [STOP],
])
def test_parse_action_refuses(value: Any) -> None:
    parse_error(oj.parse_action, value)


# ---- parse_mixin_definitions -------------------------------------------------------------------


def test_parse_mixin_definitions_forms() -> None:
    (user,) = oj.parse_mixin_definitions(spec_examples()[10].encode())
    assert user == CategoryDefinition(scheme="http://example.com/occi/users/alice#", term="my_stuff",
                                      cls="mixin", title="Alice's VMs", location="/my_stuff/")
    (bare,) = oj.parse_mixin_definitions(spec_examples()[4].encode())
    assert bare.rel == (INFRA + "resource_tpl",) and bare.applies == (COMPUTE,)
    assert [a.name for a in bare.attributes] == ["occi.compute.cores", "occi.compute.memory"]
    assert bare.attributes[1].default == 4.0 and bare.attributes[1].mutable is False
    ids = oj.parse_mixin_definitions(body({"mixins": ["http://example.com/u#a", {"term": "b", "scheme": "u#"}]}))
    assert ids == [CategoryDefinition(scheme="http://example.com/u#", term="a", cls="mixin"),
                   CategoryDefinition(scheme="u#", term="b", cls="mixin")]
    kept = oj.parse_mixin_definitions(body({"term": "t", "scheme": "s#", "actions": [STOP],
                                            "attributes": {"a.b": {}}}))
    assert kept[0].actions == (STOP,) and kept[0].attributes == (AttributeDef("a.b", mutable=False),)
    assert oj.parse_mixin_definitions(b'{"mixins": []}') == []


@pytest.mark.parametrize("value", [
    {}, {"term": "t"}, {"scheme": "s#"}, {"term": "t", "scheme": "s"}, {"term": "t t", "scheme": "s#"},
    {"term": "t", "scheme": "s#", "location": None}, {"mixins": ["nohash"]}, {"mixins": [1]},
    {"mixins": [{"term": "t"}]}, {"mixins": [], "term": "t", "scheme": "s#"}, {"mixins": None},
    {"term": "t", "scheme": "s#", "parent": COMPUTE}, {"term": "t", "scheme": "s#", "rel": "x"},
    {"term": "t", "scheme": "s#", "attributes": {"a": {"type": "int"}}},
])
def test_parse_mixin_definitions_refuses(value: Any) -> None:
    parse_error(oj.parse_mixin_definitions, value)


# ---- parse_query_interface ---------------------------------------------------------------------


def test_parse_query_interface_example() -> None:
    definitions = oj.parse_query_interface(spec_examples()[7].encode())
    by_id = {d.type_id: d for d in definitions}
    assert [d.cls for d in definitions] == ["kind"] * 4 + ["mixin"] * 2 + ["action"] * 2
    assert by_id[ENTITY].rel == () and by_id[ENTITY].location is None
    assert by_id[COMPUTE].rel == (RESOURCE,) and by_id[COMPUTE].location == "/compute/"
    medium = by_id["http://example.com/occi/resource_tpl#medium"]
    assert medium.rel == (INFRA + "resource_tpl",) and medium.applies == (COMPUTE,)
    stop = by_id[STOP]
    assert stop.attributes[0].default == "poweroff"
    kind = by_id[COMPUTE].to_category()
    assert isinstance(kind, Kind) and kind.parent == RESOURCE
    assert oj.parse_query_interface(b"{}") == []
    assert oj.parse_query_interface(b'{"kinds": [], "mixins": [], "actions": []}') == []


@pytest.mark.spec("J-06")
def test_attribute_description_defaults() -> None:
    """GFD.226 §3.5.1: absent members take mutable=false, required=false, type=string."""
    (action,) = oj.parse_query_interface(body({"actions": [
        {"term": "a", "scheme": "s#", "attributes": {"x": {}, "y": {"type": "number", "default": 2.8}}}]}))
    x, y = action.attributes
    assert (x.mutable, x.required, x.type, x.pattern, x.default, x.description) == (
        False, False, "string", None, None, None)
    assert (y.mutable, y.type, y.default) == (False, "number", 2.8)


@pytest.mark.spec("J-06")
@pytest.mark.parametrize("description", [
    {"type": "integer"}, {"type": "String"}, {"type": None}, {"mutable": "true"}, {"required": 1},
    {"default": None}, {"type": "number", "default": "2"}, {"type": "number", "default": True},
    {"default": 2}, {"type": "boolean", "default": "true"}, {"type": "array", "default": {}},
    {"type": "object", "default": []}, {"pattern": 5}, {"pattern": None}, {"description": 1},
    {"unit": "GiB"},
])
def test_bad_attribute_description(description: dict[str, Any]) -> None:
    parse_error(oj.parse_query_interface,
                {"kinds": [{"term": "k", "scheme": "s#", "attributes": {"a.b": description}}]})


@pytest.mark.spec("J-06")
@pytest.mark.parametrize("value_type, default", [
    ("string", "x"), ("number", 2), ("number", 2.5), ("boolean", False), ("array", [1, "a"]),
    ("object", {"k": [1]}),
])
def test_default_of_each_type(value_type: str, default: Any) -> None:
    (kind,) = oj.parse_query_interface(body({"kinds": [
        {"term": "k", "scheme": "s#", "attributes": {"a.b": {"type": value_type, "default": default}}}]}))
    assert kind.attributes[0].default == default


@pytest.mark.spec("J-08")
def test_pattern_is_a_json_schema_and_values_are_checked_with_it() -> None:
    (kind,) = oj.parse_query_interface(body({"kinds": [{"term": "k", "scheme": "s#", "attributes": {
        "a.arch": {"mutable": True, "pattern": {"type": "string", "enum": ["x86", "x64"]}},
        "a.host": {"pattern": "^[a-z]+$"},
        "a.size": {"type": "number", "pattern": "^[0-9]+$"},
        "a.none": {"pattern": {}},
    }}]}))
    arch, host, size, none = kind.attributes
    assert arch.pattern == {"type": "string", "enum": ["x86", "x64"]}
    assert arch.check("x64") == "x64"
    with pytest.raises(InvalidAttribute):
        arch.check("arm")
    # Erratum 16: a regex string becomes {"type": "string", "pattern": s}.
    assert host.pattern == {"type": "string", "pattern": "^[a-z]+$"}
    with pytest.raises(InvalidAttribute):
        host.check("Web1")
    # ...but does not forbid the numbers of a number attribute.
    assert size.pattern == {"pattern": "^[0-9]+$"} and size.check(4) == 4
    assert none.pattern is None


@pytest.mark.spec("J-07")
def test_nested_attribute_descriptions_are_refused() -> None:
    """Appendix B's recursive namespaced form contradicts §3.5 (erratum 9)."""
    parse_error(oj.parse_query_interface, {"kinds": [{"term": "k", "scheme": "s#", "attributes": {
        "occi": {"compute": {"cores": {"type": "number"}}}}}]})


@pytest.mark.parametrize("value", [
    {"kinds": [{"term": "k"}]}, {"kinds": [{"scheme": "s#"}]}, {"kinds": [{"term": "k", "scheme": "s#",
                                                                           "depends": []}]},
    {"kinds": [{"term": "k", "scheme": "s#", "parent": "p"}]}, {"kinds": None},
    {"mixins": [{"term": "m", "scheme": "s#", "parent": COMPUTE}]},
    {"actions": [{"term": "a", "scheme": "s#", "location": "/a/"}]}, {"resources": []}, [],
    {"kinds": [{"term": "k", "scheme": "s#", "actions": ["stop"]}]},
])
def test_parse_query_interface_refuses(value: Any) -> None:
    parse_error(oj.parse_query_interface, value)


# ---- renderers ---------------------------------------------------------------------------------

NIC_ATTRS: dict[str, Any] = {
    "occi.core.id": "nic1", "occi.core.source": "/compute/1", "occi.core.target": "/network/1",
    "occi.core.target.kind": NETWORK, "occi.core.source.kind": COMPUTE, "occi.networkinterface.interface": "eth0",
}


def compute_entity() -> Entity:
    nic = Entity(kind=NETWORKINTERFACE, entity_id="nic1", location="/networkinterface/nic1",
                 attributes=dict(NIC_ATTRS), actions=("http://x/networkinterface/action#down",))
    return Entity(
        kind=COMPUTE, entity_id="1", location="/compute/1", mixins=["http://example.com/os_tpl#ubuntu"],
        attributes={"occi.core.title": "web1", "occi.core.summary": "front", "occi.compute.cores": 2,
                    "occi.compute.memory": 4.0, "occi.compute.state": "active"},
        links=[nic], actions=(STOP,),
    )


@pytest.mark.spec("P-18")
def test_render_resource() -> None:
    raw = oj.render_entity(compute_entity())
    assert b"null" not in raw
    assert b'"occi.compute.memory":4.0' in raw  # floats stay floats
    rendered = stdjson.loads(raw)
    assert list(rendered) == ["kind", "mixins", "attributes", "actions", "id", "links", "summary", "title"]
    assert rendered["id"] == "1" and rendered["title"] == "web1" and rendered["summary"] == "front"
    assert list(rendered["attributes"])[:3] == ["occi.core.id", "occi.core.title", "occi.core.summary"]
    assert rendered["attributes"]["occi.core.id"] == "1"
    (link,) = rendered["links"]
    assert list(link) == ["kind", "attributes", "actions", "id", "source", "target"]
    assert link["source"] == {"location": "/compute/1", "kind": COMPUTE}
    assert link["target"] == {"location": "/network/1", "kind": NETWORK}
    assert "occi.core.source.kind" not in link["attributes"]
    assert link["attributes"]["occi.core.target"] == "/network/1"


def test_render_minimal_entities_omit_empty_members() -> None:
    rendered = stdjson.loads(oj.render_entity(Entity(kind=COMPUTE, entity_id="1", location="/compute/1")))
    assert rendered == {"kind": COMPUTE, "attributes": {"occi.core.id": "1"}, "id": "1"}
    link = Entity(kind=LINK, entity_id="l", location="/link/l",
                  attributes={"occi.core.source": "/c/1", "occi.core.target": "http://x/y", "occi.core.title": "t"})
    assert stdjson.loads(oj.render_entity(link)) == {
        "kind": LINK, "attributes": {"occi.core.id": "l", "occi.core.title": "t", "occi.core.source": "/c/1",
                                     "occi.core.target": "http://x/y"},
        "id": "l", "source": {"location": "/c/1"}, "target": {"location": "http://x/y"}, "title": "t"}


@pytest.mark.spec("J-04")
def test_render_entities() -> None:
    assert oj.render_entities([], [], keys="resources") == b'{"resources":[]}'
    assert oj.render_entities([], [], keys="links") == b'{"links":[]}'
    assert oj.render_entities([], [], keys="both") == b'{"resources":[],"links":[]}'
    resource = compute_entity()
    both = stdjson.loads(oj.render_entities([resource], resource.links, keys="both"))
    assert both["resources"][0]["id"] == "1" and both["links"][0]["id"] == "nic1"
    with pytest.raises(ValueError):
        oj.render_entities([], [], keys="kinds")


@pytest.mark.spec("J-03")
@pytest.mark.spec("J-05")
def test_render_categories_of_the_standard_registry() -> None:
    registry = standard_registry()
    rendered = stdjson.loads(oj.render_categories(registry.categories(), registry))
    assert list(rendered) == ["kinds", "mixins", "actions"]
    kinds = {k["scheme"] + k["term"]: k for k in rendered["kinds"]}
    assert "location" not in kinds[ENTITY]
    assert all("location" in k for type_id, k in kinds.items() if type_id != ENTITY)
    compute = kinds[COMPUTE]
    assert list(compute)[:3] == ["term", "scheme", "title"]
    assert compute["parent"] == RESOURCE
    # The full effective set, inherited attributes included (json-rendering.md §5.1).
    assert {"occi.core.id", "occi.core.title", "occi.core.summary", "occi.compute.cores"} <= set(
        compute["attributes"])
    for category in rendered["kinds"] + rendered["mixins"] + rendered["actions"]:
        for description in category.get("attributes", {}).values():
            assert list(description)[:3] == ["mutable", "required", "type"]
            assert not isinstance(description.get("pattern", {}), str)
    assert all("location" in m for m in rendered["mixins"])
    assert all(set(a) <= {"term", "scheme", "title", "attributes"} for a in rendered["actions"])


def test_render_categories_omits_empty_arrays() -> None:
    registry = standard_registry()
    assert oj.render_categories([], registry) == b"{}"
    only = stdjson.loads(oj.render_categories([registry.action(STOP)], registry))
    assert list(only) == ["actions"]
    stop = only["actions"][0]
    assert stop["attributes"]["method"]["type"] == "string"


def test_render_locations_and_error() -> None:
    assert oj.render_locations(["http://h/compute/1", "http://h/compute/2"]) == (
        b'["http://h/compute/1","http://h/compute/2"]')
    assert oj.render_locations([]) == b"[]"
    assert stdjson.loads(oj.render_error(404, 'no "x"')) == {"code": 404, "message": 'no "x"'}


def test_client_request_renderings_parse_back() -> None:
    message = EntityMessage(
        kind=COMPUTE, mixins=("http://example.com/os_tpl#ubuntu",),
        attributes={"occi.core.title": "web2", "occi.compute.cores": 2},
        links=(LinkMessage(target="/network/1", target_kind=NETWORK, kind=NETWORKINTERFACE,
                           attributes={"occi.networkinterface.interface": "eth0"}),),
    )
    raw = oj.render_entity_message(message)
    rendered = stdjson.loads(raw)
    assert rendered["title"] == "web2" and list(rendered)[-2:] == ["links", "title"]
    parsed = oj.parse_entity(raw)
    assert parsed.kind == message.kind and parsed.mixins == message.mixins
    assert parsed.attributes == message.attributes
    assert parsed.links[0].target == "/network/1" and parsed.links[0].target_kind == NETWORK
    assert parsed.links[0].attributes == {"occi.networkinterface.interface": "eth0",
                                          "occi.core.target": "/network/1", "occi.core.target.kind": NETWORK}
    link = EntityMessage(kind=INFRA + "storagelink", attributes={"occi.core.source": "/c/1",
                                                                 "occi.core.target": "/s/1"})
    assert stdjson.loads(oj.render_entity_message(link))["source"] == {"location": "/c/1"}
    assert oj.parse_entity(oj.render_entity_message(link)) == link
    invocation = ActionInvocation(action=STOP, attributes={"method": "graceful"})
    assert oj.parse_action(oj.render_action_invocation(invocation)) == invocation
    assert oj.render_action_invocation(ActionInvocation(action=START)) == body({"action": START}).replace(b" ", b"")
    definitions = [
        CategoryDefinition(scheme="http://example.com/u#", term="mine", cls="mixin", title="Mine",
                           rel=(INFRA + "os_tpl",), applies=(COMPUTE,), location="/mine/"),
        CategoryDefinition(scheme="http://example.com/u#", term="other", cls="mixin",
                           attributes=(AttributeDef("a.b", type="number", mutable=False, default=1),)),
    ]
    assert oj.parse_mixin_definitions(oj.render_mixin_definitions(definitions)) == definitions


# ---- properties --------------------------------------------------------------------------------

TERMS = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
SCHEMES = st.sampled_from(["http://schemas.ogf.org/occi/infrastructure#", "http://example.com/occi/t#", "urn:x#"])
TYPE_IDS = st.builds(lambda scheme, term: scheme + term, SCHEMES, TERMS)
LOCATIONS = st.from_regex(r"/[a-z]{1,6}/[a-z0-9-]{1,8}", fullmatch=True)
ATTRIBUTE_NAMES = st.from_regex(r"[a-z][a-z0-9]{0,4}(\.[a-z0-9][a-z0-9_-]{0,4}){0,3}", fullmatch=True).filter(
    lambda name: not name.startswith("occi.core"))
SCALARS = st.one_of(st.text(max_size=10), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.booleans())
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=6)
ATTRIBUTE_VALUES = st.dictionaries(ATTRIBUTE_NAMES, JSON_VALUES, max_size=4)
OPTIONAL_TEXT = st.none() | st.text(max_size=10)


@st.composite
def link_entities(draw: st.DrawFn) -> Entity:
    attributes = draw(ATTRIBUTE_VALUES)
    attributes["occi.core.source"] = draw(LOCATIONS)
    attributes["occi.core.target"] = draw(LOCATIONS)
    for name, strategy in (("occi.core.target.kind", TYPE_IDS), ("occi.core.source.kind", TYPE_IDS),
                           ("occi.core.title", st.text(max_size=8))):
        if draw(st.booleans()):
            attributes[name] = draw(strategy)
    entity_id = draw(st.text(min_size=1, max_size=12))
    if draw(st.booleans()):
        attributes["occi.core.id"] = entity_id
    return Entity(kind=draw(TYPE_IDS), entity_id=entity_id, location=draw(LOCATIONS),
                  mixins=draw(st.lists(TYPE_IDS, max_size=2)), attributes=attributes,
                  actions=tuple(draw(st.lists(TYPE_IDS, max_size=2))))


@st.composite
def resource_entities(draw: st.DrawFn) -> Entity:
    attributes = draw(ATTRIBUTE_VALUES)
    for name in ("occi.core.title", "occi.core.summary"):
        if draw(st.booleans()):
            attributes[name] = draw(st.text(max_size=8))
    entity_id = draw(st.text(min_size=1, max_size=12))
    return Entity(kind=draw(TYPE_IDS), entity_id=entity_id, location=draw(LOCATIONS),
                  mixins=draw(st.lists(TYPE_IDS, max_size=2)), attributes=attributes,
                  links=draw(st.lists(link_entities(), max_size=2)),
                  actions=tuple(draw(st.lists(TYPE_IDS, max_size=2))))


def expected_attributes(entity: Entity) -> dict[str, Any]:
    values = {name: value for name, value in entity.attributes.items() if name != "occi.core.source.kind"}
    values["occi.core.id"] = entity.entity_id
    return values


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(resource_entities(), link_entities()))
def test_render_entity_parse_entity_round_trip(entity: Entity) -> None:
    message = oj.parse_entity(oj.render_entity(entity))
    assert message.kind == entity.kind
    assert message.mixins == tuple(entity.mixins)
    assert message.attributes == expected_attributes(entity)
    assert message.action_links == entity.actions
    assert len(message.links) == len(entity.links)
    for parsed, link in zip(message.links, entity.links):
        assert parsed.kind == link.kind and parsed.mixins == tuple(link.mixins)
        assert parsed.attributes == expected_attributes(link)
        assert parsed.target == link.attributes["occi.core.target"]
        assert parsed.source == link.attributes["occi.core.source"]
        assert parsed.target_kind == link.attributes.get("occi.core.target.kind")


@settings(max_examples=40)
@given(st.lists(resource_entities(), max_size=2), st.lists(link_entities(), max_size=2))
def test_render_entities_parse_entity_collection_round_trip(resources: list[Entity], links: list[Entity]) -> None:
    messages = oj.parse_entity_collection(oj.render_entities(resources, links, keys="both"))
    assert [m.attributes for m in messages] == [expected_attributes(e) for e in [*resources, *links]]


@settings(max_examples=40)
@given(resource_entities())
def test_render_entity_message_round_trip(entity: Entity) -> None:
    parsed = oj.parse_entity(oj.render_entity(entity))
    request = EntityMessage(kind=parsed.kind, mixins=parsed.mixins, attributes=parsed.attributes,
                            links=parsed.links)
    assert oj.parse_entity(oj.render_entity_message(request)) == request


def values_of(value_type: str) -> st.SearchStrategy[Any]:
    return {
        "string": st.text(max_size=8), "number": st.integers() | st.floats(allow_nan=False, allow_infinity=False),
        "boolean": st.booleans(), "array": st.lists(SCALARS, max_size=3),
        "object": st.dictionaries(st.text(max_size=4), SCALARS, max_size=3),
    }[value_type]


@st.composite
def attribute_defs(draw: st.DrawFn, name: str) -> AttributeDef:
    value_type = draw(st.sampled_from(["string", "number", "boolean", "array", "object"]))
    patterns: list[dict[str, Any] | None] = [
        None, {"type": "integer", "minimum": 1}, {"$schema": DRAFT_04, "type": "string", "pattern": "\\S+"},
        {"enum": ["a", "b"]}]
    pattern = draw(st.sampled_from(patterns))
    return AttributeDef(name=name, type=value_type, mutable=draw(st.booleans()), required=draw(st.booleans()),
                        pattern=pattern, default=draw(st.none() | values_of(value_type)),
                        description=draw(OPTIONAL_TEXT))


def attribute_tuples(draw: st.DrawFn) -> tuple[AttributeDef, ...]:
    names = draw(st.lists(ATTRIBUTE_NAMES, unique=True, max_size=3))
    return tuple(draw(attribute_defs(name)) for name in names)


@st.composite
def registries(draw: st.DrawFn) -> tuple[Registry, list[Kind | Mixin | Action]]:
    registry = Registry()
    registry.add_all(CORE_KINDS)
    created: list[Kind | Mixin | Action] = []
    actions = [Action(scheme=scheme, term=term, title=draw(OPTIONAL_TEXT), attributes=attribute_tuples(draw))
               for scheme, term in draw(st.lists(st.tuples(SCHEMES, TERMS), unique=True, max_size=3))]
    action_ids = [a.type_id for a in actions]
    kinds = [Kind(scheme=scheme, term=term, title=draw(OPTIONAL_TEXT), attributes=attribute_tuples(draw),
                  actions=tuple(draw(st.lists(st.sampled_from(action_ids), unique=True))) if action_ids else (),
                  parent=draw(st.sampled_from([RESOURCE, LINK])), location=f"/k{i}-{term}/")
             for i, (scheme, term) in enumerate(draw(st.lists(st.tuples(SCHEMES, TERMS), unique=True, max_size=3)))]
    # One type id names one category: drop kinds that collide with an action (a mixin applying to
    # such a dropped kind could not be registered).
    kinds = [k for k in kinds if k.type_id not in action_ids]
    mixins: list[Mixin] = []
    for i, (scheme, term) in enumerate(draw(st.lists(st.tuples(SCHEMES, TERMS), unique=True, max_size=3))):
        if scheme + term in {k.type_id for k in kinds} | set(action_ids):
            continue
        earlier = [m.type_id for m in mixins]
        kind_ids = [k.type_id for k in kinds] + [RESOURCE]
        mixins.append(Mixin(
            scheme=scheme, term=term, title=draw(OPTIONAL_TEXT), attributes=attribute_tuples(draw),
            actions=tuple(draw(st.lists(st.sampled_from(action_ids), unique=True))) if action_ids else (),
            depends=tuple(draw(st.lists(st.sampled_from(earlier), unique=True))) if earlier else (),
            applies=tuple(draw(st.lists(st.sampled_from(kind_ids), unique=True, max_size=2))),
            location=f"/m{i}-{term}/"))
    everything: list[Kind | Mixin | Action] = [*actions, *kinds, *mixins]
    for category in everything:
        if registry.find(category.type_id) is None:
            registry.add(category)
            created.append(category)
    return registry, created


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(registries())
def test_render_categories_parse_query_interface_round_trip(
    generated: tuple[Registry, list[Kind | Mixin | Action]],
) -> None:
    registry, categories = generated
    definitions = oj.parse_query_interface(oj.render_categories(categories, registry))
    order = {"kind": 0, "mixin": 1, "action": 2}
    expected = sorted(categories, key=lambda c: order[type(c).__name__.lower()])
    assert len(definitions) == len(expected)
    for definition, category in zip(definitions, expected):
        parsed = definition.to_category()
        if isinstance(category, Kind):
            effective = tuple(registry.kind_attribute_defs(category.type_id).values())
            category = Kind(scheme=category.scheme, term=category.term, title=category.title,
                            attributes=effective, actions=category.actions, parent=category.parent,
                            location=category.location)
        assert parsed == category


PARSERS = [oj.parse_entity, oj.parse_entities, oj.parse_entity_collection, oj.parse_locations, oj.parse_action,
           oj.parse_mixin_definitions, oj.parse_query_interface]
MEMBERS = ["kind", "mixins", "attributes", "actions", "id", "links", "summary", "title", "source", "target",
           "location", "rel", "resources", "kinds", "action", "term", "scheme", "parent", "depends", "applies",
           "type", "mutable", "required", "pattern", "default", "description", "occi.core.id", "a.b"]
JSONISH = st.recursive(
    st.none() | SCALARS | TYPE_IDS | st.sampled_from(["string", "number", "/c/1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(MEMBERS), inner, max_size=4),
    max_leaves=12)


def only_parse_errors(raw: bytes) -> None:
    for parser in PARSERS:
        try:
            parser(raw)
        except ParseError:
            pass


@settings(max_examples=150)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_give_only_parse_error(raw: bytes) -> None:
    only_parse_errors(raw)


@settings(max_examples=300)
@given(JSONISH)
def test_arbitrary_json_gives_only_parse_error(value: Any) -> None:
    only_parse_errors(stdjson.dumps(value).encode())

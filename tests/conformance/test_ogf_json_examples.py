"""The example blocks of GFD.226 (OGF OCCI 1.2 JSON Rendering) against occipy.rendering.json.

Every `.json` example parses with the parser for its message, or is the documented Appendix B
schema (errata 6-10). `.txt` examples are member templates with type placeholders (their member
names must be accepted) or examples with a typo of the spec (json-rendering.md §10 errata 1-3):
those are xfail with the erratum as reason, and their corrected text must parse.
"""

from __future__ import annotations

import json as stdjson
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from occipy.errors import ParseError
from occipy.model.catalogue import COMPUTE, NETWORK, NETWORKINTERFACE
from occipy.rendering import json as oj

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
EXAMPLES = SHARED / "conformance" / "ogf-occi-1.2-spec-examples" / "json_rendering"
INFRA = "http://schemas.ogf.org/occi/infrastructure#"


def read(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def wrap(key: str) -> Callable[[bytes], Any]:
    """A parser for a single category: the query interface with one array of one item."""
    return lambda raw: oj.parse_query_interface(b'{"' + key.encode() + b'": [' + raw + b"]}")


# ---- .json examples ------------------------------------------------------------------------------

JSON_EXAMPLES: dict[str, list[Callable[[bytes], Any]]] = {
    "08-line433.json": [oj.parse_entity_collection, oj.parse_locations],   # {"resources": []}
    "09-line443.json": [oj.parse_entity_collection, oj.parse_locations],   # {"links": []}
    "10-line461.json": [oj.parse_query_interface],                         # {"kinds": []}
    "11-line471.json": [oj.parse_query_interface, oj.parse_mixin_definitions],  # {"mixins": []}
    "12-line481.json": [oj.parse_query_interface],                         # {"actions": []}
    "16-line650.json": [oj.parse_action],
    "19-line740.json": [oj.parse_mixin_definitions, wrap("mixins")],
    "20-line767.json": [wrap("actions")],
}
# Appendix B, the normative JSON schema: not a message (errata 6-10, handled in test below).
SCHEMA_EXAMPLE = "21-line793.json"


def test_every_json_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.json")) == sorted([*JSON_EXAMPLES, SCHEMA_EXAMPLE])


@pytest.mark.spec("J-02")
@pytest.mark.parametrize("name", sorted(JSON_EXAMPLES))
def test_json_example_parses(name: str) -> None:
    raw = read(name)
    for parser in JSON_EXAMPLES[name]:
        parser(raw)


@pytest.mark.spec("J-04")
@pytest.mark.spec("J-05")
def test_empty_collections() -> None:
    assert oj.parse_entity_collection(read("08-line433.json")) == []
    assert oj.parse_entity_collection(read("09-line443.json")) == []
    for name in ("10-line461.json", "11-line471.json", "12-line481.json"):
        assert oj.parse_query_interface(read(name)) == []


def test_action_invocation_example() -> None:
    invocation = oj.parse_action(read("16-line650.json"))
    assert invocation.action == "http://schemas.ogf.org/occi/infrastructure/compute/action#stop"
    assert invocation.attributes == {"method": "graceful"}


@pytest.mark.spec("J-06")
def test_mixin_example_without_mutable_is_immutable() -> None:
    """Erratum 5: `{"type": "number", "default": 2.8}` omits `mutable`, so §3.5.1 makes it immutable.

    Erratum 4 (`#resourcetpl` for GFD.224's `#resource_tpl`) is a reference the registry
    resolves, not a syntax problem: the parser keeps it as written.
    """
    (mixin,) = oj.parse_mixin_definitions(read("19-line740.json"))
    assert mixin.type_id == "http://example.com/template/resource#medium"
    assert mixin.rel == (INFRA + "resourcetpl",) and mixin.applies == (COMPUTE,)
    assert mixin.location == "/template/resource/medium/"
    (speed,) = mixin.attributes
    assert (speed.name, speed.type, speed.mutable, speed.required, speed.default) == (
        "occi.compute.speed", "number", False, False, 2.8)


def test_action_category_example() -> None:
    (action,) = wrap("actions")(read("20-line767.json"))
    assert action.cls == "action" and action.term == "stop"
    (method,) = action.attributes
    assert method.mutable is True and method.default == "poweroff"


def test_appendix_b_schema_is_the_documented_erratum() -> None:
    """Erratum 6: `"$ref": "#definitions/..."` lacks the `/`; erratum 10: a `rel` member on links.

    It is not a message (no parser applies); our schema fixes these errata.
    """
    text = read(SCHEMA_EXAMPLE).decode()
    schema = stdjson.loads(text)
    assert schema["title"] == "OCCI v. 1.2 JSON Rendering Schema"
    assert '"#definitions/link"' in text
    assert "rel" in schema["definitions"]["link"]["properties"]
    ours = (SHARED / "spec" / "occi-1.2.schema.json").read_text(encoding="utf-8")
    assert '"#definitions/' not in ours
    assert "rel" not in stdjson.loads(ours)["definitions"]["link"]["properties"]
    with pytest.raises(ParseError):
        oj.parse_query_interface(read(SCHEMA_EXAMPLE))


# ---- .txt member templates (type placeholders, not JSON) ------------------------------------------

# A valid value for each member a template names.
SAMPLE: dict[str, Any] = {
    "kind": COMPUTE, "mixins": [INFRA + "os_tpl"], "attributes": {}, "actions": [INFRA + "x"], "id": "e1",
    "links": [], "summary": "s", "title": "t", "source": {"location": "/compute/1"},
    "target": {"location": "/network/1", "kind": NETWORK}, "action": "http://x/action#stop",
    "location": "/x/", "term": "t", "scheme": "http://example.com/s#", "parent": INFRA + "compute",
    "depends": [INFRA + "os_tpl"], "applies": [COMPUTE], "mutable": True, "required": False,
    "type": "string", "pattern": {"type": "string"}, "default": "d", "description": "d",
}
TEMPLATES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "01-line139.txt": lambda o: oj.parse_entity(stdjson.dumps(o).encode()),               # resource
    "02-line191.txt": lambda o: oj.parse_action(stdjson.dumps(o).encode()),               # action invocation
    "03-line220.txt": lambda o: oj.parse_entity(stdjson.dumps(o).encode()),               # link
    "04-line269.txt": lambda o: oj.parse_entity(stdjson.dumps({"target": o}).encode()),  # source/target
    "05-line327.txt": lambda o: oj.parse_query_interface(stdjson.dumps({"kinds": [o]}).encode()),
    "06-line346.txt": lambda o: oj.parse_mixin_definitions(stdjson.dumps(o).encode()),
    "07-line412.txt": lambda o: oj.parse_query_interface(stdjson.dumps({"actions": [o]}).encode()),
    "13-line498.txt": lambda o: oj.parse_entity(stdjson.dumps({"attributes": o}).encode()),
    "14-line538.txt": lambda o: oj.parse_query_interface(stdjson.dumps(
        {"kinds": [{"term": "k", "scheme": "s#", "attributes": {"a.b": o}}]}).encode()),
}
# 13: attribute values, "Number|String|Boolean|Array|Object": one name per JSON type.
ATTRIBUTE_VALUES: list[Any] = [2, "x", True, [1, "a"], {"k": "v"}]


def template_members(name: str) -> list[str]:
    return re.findall(r'"([^"]+)"\s*:', read(name).decode())


@pytest.mark.spec("J-02")
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_members_are_accepted(name: str) -> None:
    members = template_members(name)
    assert members, name
    if name == "13-line498.txt":
        for value in ATTRIBUTE_VALUES:
            parsed = TEMPLATES[name]({member: value for member in members})
            assert parsed.attributes == {member: value for member in members}
        return
    TEMPLATES[name]({member: SAMPLE[member] for member in members})
    # Each named member is one the parser knows: an unknown one next to them is refused.
    with pytest.raises(ParseError):
        TEMPLATES[name]({**{member: SAMPLE[member] for member in members}, "unknown": "x"})


# ---- .txt examples with a typo of the spec --------------------------------------------------------

ERRATA = {
    "15-line595.txt": 'erratum 1: `"location:"/network/..."` (misplaced quote) is invalid JSON',
    "17-line665.txt": 'erratum 1: `"location:"/network/..."` (misplaced quote) is invalid JSON',
    "18-line699.txt": 'erratum 2: missing comma after "description" and invalid escape "\\S+"',
}
ERRATA_PARSERS: dict[str, Callable[[bytes], Any]] = {
    "15-line595.txt": oj.parse_entity,
    "17-line665.txt": oj.parse_entity,
    "18-line699.txt": wrap("kinds"),
}


def test_every_txt_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.txt")) == sorted([*TEMPLATES, *ERRATA])


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(raises=ParseError, strict=True, reason=reason))
    for name, reason in sorted(ERRATA.items())
])
def test_erratum_example_as_printed(name: str) -> None:
    ERRATA_PARSERS[name](read(name))


def corrected(name: str) -> bytes:
    """The example with the corrections of json-rendering.md §10 applied."""
    text = read(name).decode()
    # Erratum 1: read as "location": "/network/...".
    text = text.replace('"location:"', '"location":"')
    # Erratum 3: GFD.224 names the attributes occi.networkinterface.*.
    text = text.replace("occi.infrastructure.networkinterface.", "occi.networkinterface.")
    # Erratum 2: the missing comma and the JSON escape of the regex backslash.
    text = text.replace('"description":"Hostname of the compute resource"\n',
                        '"description":"Hostname of the compute resource",\n')
    text = text.replace('"\\S+"', '"\\\\S+"')
    return text.encode()


@pytest.mark.parametrize("name", sorted(ERRATA))
def test_erratum_example_corrected(name: str) -> None:
    parsed = ERRATA_PARSERS[name](corrected(name))
    if name == "18-line699.txt":
        (kind,) = parsed
        hostname, state = kind.attributes
        assert hostname.pattern == {"$schema": "http://json-schema.org/draft-04/schema#", "type": "string",
                                    "pattern": "\\S+"}
        assert hostname.mutable is True and state.mutable is False and state.default == "inactive"
        assert kind.location == "/compute/" and kind.rel == ("http://schemas.ogf.org/occi/core#resource",)
        return
    link = parsed.links[0] if name == "15-line595.txt" else parsed
    attributes = link.attributes
    assert attributes["occi.core.target"] == "/network/b7d55bf4-7057-5113-85c8-141871bf7635"
    assert attributes["occi.core.target.kind"] == NETWORK
    assert attributes["occi.networkinterface.mac"] == "00:80:41:ae:fd:7e"
    if name == "15-line595.txt":
        assert parsed.kind == COMPUTE and link.kind == NETWORKINTERFACE
        assert link.source == "/compute/996ad860-2a9a-504f-8861-aeafd0b2ae29"
        assert parsed.attributes["com.example.occi.templates.myosmixin"] == {"mykey": "myvalue"}

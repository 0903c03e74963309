"""Every render_* output of occipy.rendering.json validates against occi-1.2.schema.json (J-02..J-05).

Each message is checked against the schema definition expected for it, never the root `anyOf`
(json-rendering.md §10 erratum 7), with the `jsonschema` package (draft-04).
"""

from __future__ import annotations

import json as stdjson
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from referencing import Registry as SchemaRegistry
from referencing import Resource
from referencing.jsonschema import DRAFT4

from occipy.model.catalogue import COMPUTE, NETWORK, NETWORKINTERFACE, STORAGE, STORAGELINK
from occipy.model.category import AttributeDef, Mixin
from occipy.model.entity import Entity
from occipy.model.registry import LINK
from occipy.model.standard import standard_registry
from occipy.rendering import json as oj
from occipy.rendering.messages import ActionInvocation, CategoryDefinition, EntityMessage, LinkMessage

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
SCHEMA_PATH = SHARED / "spec" / "occi-1.2.schema.json"
SCHEMA: dict[str, Any] = stdjson.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
SCHEMAS = SchemaRegistry().with_resource(SCHEMA["id"], Resource.from_contents(SCHEMA, default_specification=DRAFT4))
STOP = "http://schemas.ogf.org/occi/infrastructure/compute/action#stop"


def validate(raw: bytes, definition: str) -> Any:
    """Validate `raw` against one definition of the schema; return the decoded value."""
    value = stdjson.loads(raw)
    validator = jsonschema.Draft4Validator({"$ref": f"{SCHEMA['id']}#/definitions/{definition}"},
                                           registry=SCHEMAS)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]
    assert not errors, errors
    return value


def test_the_validator_can_fail() -> None:
    with pytest.raises(AssertionError):
        validate(b'{"kind": "compute", "id": "1"}', "resource")
    with pytest.raises(AssertionError):
        validate(b'{"foo": 1}', "query_interface")


def compute() -> Entity:
    nic = Entity(kind=NETWORKINTERFACE, entity_id="nic1", location="/networkinterface/nic1",
                 mixins=["http://schemas.ogf.org/occi/infrastructure/networkinterface#ipnetworkinterface"],
                 attributes={"occi.core.source": "/compute/1", "occi.core.source.kind": COMPUTE,
                             "occi.core.target": "/network/1", "occi.core.target.kind": NETWORK,
                             "occi.networkinterface.interface": "eth0", "occi.networkinterface.state": "active"},
                 actions=("http://schemas.ogf.org/occi/infrastructure/networkinterface/action#down",))
    return Entity(kind=COMPUTE, entity_id="1", location="/compute/1",
                  mixins=["http://example.com/occi/os_tpl#ubuntu"],
                  attributes={"occi.core.title": "web1", "occi.core.summary": "front", "occi.compute.cores": 2,
                              "occi.compute.memory": 4.0, "occi.compute.state": "active",
                              "com.example.labels": {"tier": "web"}, "com.example.list": [1, "a"]},
                  links=[nic], actions=(STOP,))


def storagelink() -> Entity:
    return Entity(kind=STORAGELINK, entity_id="sl1", location="/storagelink/sl1",
                  attributes={"occi.core.source": "/compute/1", "occi.core.target": "/storage/2",
                              "occi.core.target.kind": STORAGE, "occi.storagelink.deviceid": "/dev/vdb"})


@pytest.mark.spec("J-02")
def test_resource_rendering() -> None:
    rendered = validate(oj.render_entity(compute()), "resource")
    assert rendered["links"][0]["source"]["kind"] == COMPUTE
    validate(oj.render_entity(Entity(kind=COMPUTE, entity_id="2", location="/compute/2")), "resource")


@pytest.mark.spec("J-02")
def test_link_rendering() -> None:
    validate(oj.render_entity(storagelink()), "link")
    validate(oj.render_entity(compute().links[0]), "link")
    validate(oj.render_entity(Entity(kind=LINK, entity_id="l", location="/link/l", attributes={
        "occi.core.source": "/compute/1", "occi.core.target": "http://elsewhere/x", "occi.core.title": "t"})), "link")


@pytest.mark.spec("J-04")
def test_entity_collections() -> None:
    resources = [compute(), Entity(kind=COMPUTE, entity_id="2", location="/compute/2")]
    links = [storagelink(), *compute().links]
    assert validate(oj.render_entities(resources, [], keys="resources"), "resource_collection")["resources"]
    assert validate(oj.render_entities([], links, keys="links"), "link_collection")["links"]
    both = validate(oj.render_entities(resources, links, keys="both"), "entity_collection")
    assert len(both["resources"]) == 2 and len(both["links"]) == 2
    # Empty collections are still collections (json-rendering.md §8).
    validate(oj.render_entities([], [], keys="resources"), "resource_collection")
    validate(oj.render_entities([], [], keys="links"), "link_collection")
    validate(oj.render_entities([], [], keys="both"), "entity_collection")


@pytest.mark.spec("J-02")
@pytest.mark.spec("J-03")
@pytest.mark.spec("J-05")
def test_category_collections_of_the_standard_registry() -> None:
    registry = standard_registry()
    user = Mixin(scheme="http://example.com/occi/users/alice#", term="my_stuff", title="Alice's VMs",
                 location="/my_stuff/", user_defined=True)
    registry.add(user)
    whole = validate(oj.render_categories(registry.categories(), registry), "query_interface")
    assert whole["kinds"] and whole["mixins"] and whole["actions"]
    kinds = validate(oj.render_categories(registry.kinds(), registry), "kind_collection")
    # GFD.226 §3.2.1: location "MUST be supplied for every Kind except Entity's".
    assert all("location" in kind for kind in kinds["kinds"] if kind["term"] != "entity")
    validate(oj.render_categories(registry.mixins(), registry), "mixin_collection")
    validate(oj.render_categories(registry.actions(), registry), "action_collection")
    validate(oj.render_categories([], registry), "query_interface")
    for kind in registry.kinds():
        validate(oj.render_categories([kind], registry), "kind_collection")


@pytest.mark.spec("J-02")
def test_client_requests() -> None:
    create = EntityMessage(
        kind=COMPUTE, mixins=("http://example.com/occi/os_tpl#ubuntu",),
        attributes={"occi.core.title": "web2", "occi.compute.cores": 2},
        links=(LinkMessage(target="/network/1", target_kind=NETWORK, kind=NETWORKINTERFACE,
                           attributes={"occi.networkinterface.interface": "eth0"}),
               LinkMessage(target="/storage/1", kind=STORAGELINK, source="/compute/9")),
        location="/compute/9", action_links=(STOP,),
    )
    validate(oj.render_entity_message(create), "resource_request")
    validate(oj.render_entity_message(EntityMessage(attributes={"occi.compute.cores": 4})), "resource_request")
    link = EntityMessage(kind=STORAGELINK, attributes={"occi.core.source": "/compute/1",
                                                       "occi.core.target": "/storage/1",
                                                       "occi.storagelink.deviceid": "/dev/vdb"})
    validate(oj.render_entity_message(link), "link_request")
    validate(oj.render_action_invocation(ActionInvocation(action=STOP, attributes={"method": "graceful"})),
             "action_invocation")
    validate(oj.render_action_invocation(ActionInvocation(action=STOP)), "action_invocation")
    definitions = [
        CategoryDefinition(scheme="http://example.com/occi/users/alice#", term="my_stuff", cls="mixin",
                           title="Alice's VMs", location="/my_stuff/"),
        CategoryDefinition(scheme="http://example.com/occi/users/alice#", term="big", cls="mixin",
                           rel=("http://schemas.ogf.org/occi/infrastructure#resource_tpl",),
                           applies=(COMPUTE,), location="/big/",
                           attributes=(AttributeDef("occi.compute.cores", type="number", mutable=False,
                                                    pattern={"type": "integer"}, default=8),)),
    ]
    validate(oj.render_mixin_definitions(definitions), "mixin_collection")


def test_locations_and_errors() -> None:
    locations = stdjson.loads(oj.render_locations(["http://localhost/compute/1", "http://localhost/compute/2"]))
    jsonschema.Draft4Validator({"type": "array", "items": SCHEMA["definitions"]["uri_reference"]}).validate(
        locations)
    error = stdjson.loads(oj.render_error(409, "taken"))
    assert error == {"code": 409, "message": "taken"}


# ---- generated entities -------------------------------------------------------------------------

TYPE_IDS = st.builds(lambda scheme, term: scheme + term,
                     st.sampled_from(["http://schemas.ogf.org/occi/infrastructure#", "urn:x#"]),
                     st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True))
LOCATIONS = st.from_regex(r"/[a-z]{1,5}/[a-z0-9-]{1,6}", fullmatch=True)
NAMES = st.from_regex(r"[a-z][a-z0-9]{0,4}(\.[a-z][a-z0-9_]{0,4}){1,3}", fullmatch=True)
VALUES = st.recursive(
    st.text(max_size=6) | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.booleans(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=5)


@st.composite
def entities(draw: st.DrawFn, link: bool) -> Entity:
    attributes = draw(st.dictionaries(NAMES, VALUES, max_size=3))
    if link:
        attributes["occi.core.source"] = draw(LOCATIONS)
        attributes["occi.core.target"] = draw(LOCATIONS)
        if draw(st.booleans()):
            attributes["occi.core.target.kind"] = draw(TYPE_IDS)
    if draw(st.booleans()):
        attributes["occi.core.title"] = draw(st.text(max_size=6))
    return Entity(kind=draw(TYPE_IDS), entity_id=draw(st.text(min_size=1, max_size=8)), location=draw(LOCATIONS),
                  mixins=draw(st.lists(TYPE_IDS, max_size=2)), attributes=attributes,
                  links=draw(st.lists(entities(True), max_size=2)) if not link else [],
                  actions=tuple(draw(st.lists(TYPE_IDS, max_size=2))))


@pytest.mark.spec("J-02")
@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entities(False), max_size=2), st.lists(entities(True), max_size=2))
def test_generated_entities_validate(resources: list[Entity], links: list[Entity]) -> None:
    for resource in resources:
        validate(oj.render_entity(resource), "resource")
    for link in links:
        validate(oj.render_entity(link), "link")
    validate(oj.render_entities(resources, links, keys="both"), "entity_collection")

"""Unit tests of occipy.rendering.openapi: OpenAPI 3.1 generated from the registry (a pure function)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from occipy.model.catalogue import COMPUTE, NETWORK
from occipy.model.category import Action, AttributeDef, Kind, Mixin
from occipy.model.entity import Entity
from occipy.model.registry import RESOURCE, Registry
from occipy.model.standard import standard_registry
from occipy.rendering import json as oj
from occipy.rendering import openapi

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
BASE = "http://occi.example.org:8080"
GFD223_CODES = {"200", "201", "400", "401", "403", "404", "405", "406", "409", "413", "500", "501", "503"}
MEDIA = {"text/plain", "text/occi+plain", "text/occi", "application/occi+json", "application/json", "text/uri-list"}
PLATFORM = "http://example.org/occi/demo#"
DEPLOY = "http://example.org/occi/demo/application/action#deploy"


def extended_registry() -> Registry:
    """The standard registry plus an extension kind with an action, a provider and a user mixin."""
    registry = standard_registry()
    registry.add(Action(scheme=DEPLOY.split("#")[0] + "#", term="deploy", title="Deploy", attributes=(
        AttributeDef("revision", type="number", required=True, pattern={"type": "integer", "minimum": 1}),)))
    registry.add(Kind(scheme=PLATFORM, term="demoapp", title="Demo application", parent=RESOURCE,
                      location="/demo-application/", actions=(DEPLOY,), attributes=(
                          AttributeDef("occi.app.state", mutable=False,
                                       pattern={"type": "string", "enum": ["active", "inactive", "error"]}),
                          AttributeDef("occi.app.url", pattern={"type": "string", "format": "uri"}),
                          AttributeDef("occi.app.share", type="number",
                                       pattern={"type": "number", "minimum": 0, "exclusiveMinimum": True}))))
    registry.add(Mixin(scheme="http://example.org/users/alice#", term="team", title="Team",
                       location="/team/", user_defined=True))
    return registry


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.render(extended_registry(), BASE)


def schema_validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": document["components"]})


def operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for item in document["paths"].values() for method, op in item.items() if method != "parameters"]


def test_the_document_validates_as_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises on any error
    json.dumps(document)  # plain JSON values only


def test_every_kind_mixin_and_action_is_served(document: dict[str, Any]) -> None:
    registry = extended_registry()
    paths = document["paths"]
    for kind in registry.kinds():
        if kind.location is None:
            continue
        assert {"get", "post", "delete"} <= set(paths[kind.location]), kind.type_id
        assert {"get", "put", "post", "delete"} <= set(paths[kind.location + "{id}"]), kind.type_id
    for mixin in registry.mixins():
        assert {"get", "post", "put", "delete"} <= set(paths[mixin.location or ""]), mixin.type_id
    action_terms = {value for op in operations(document) for p in op.get("parameters", ())
                    if p["name"] == "action" for value in p["schema"].get("enum", ())}
    assert {action.term for action in registry.actions()} <= action_terms
    invocations = [s for s in document["components"]["schemas"].values()
                   if isinstance(s, dict) and any(part.get("properties", {}).get("action", {}).get("const")
                                                  for part in s.get("allOf", ()))]
    assert len(invocations) == len(registry.actions())
    assert "/-/" in paths and "/-/operations/{id}" in paths and openapi.OPENAPI_PATH in paths
    assert document["servers"] == [{"url": BASE}]


def test_action_parameters_follow_their_definitions(document: dict[str, Any]) -> None:
    validator = schema_validator(document, "deploy_invocation")
    assert validator.is_valid({"action": DEPLOY, "attributes": {"revision": 3}})
    assert not validator.is_valid({"action": DEPLOY, "attributes": {"revision": 0}})
    assert not validator.is_valid({"action": DEPLOY, "attributes": {}})
    assert not validator.is_valid({"action": DEPLOY, "attributes": {"revision": 2, "other": 1}})
    stop = schema_validator(document, "stop_invocation")
    assert stop.is_valid({"action": "http://schemas.ogf.org/occi/infrastructure/compute/action#stop",
                          "attributes": {"method": "graceful"}})
    assert not stop.is_valid({"action": "http://schemas.ogf.org/occi/infrastructure/compute/action#stop",
                              "attributes": {"method": "yank"}})


def test_renderings_and_status_codes(document: dict[str, Any]) -> None:
    listing = document["paths"]["/compute/"]["get"]["responses"]
    assert set(listing["200"]["content"]) == MEDIA
    entity = document["paths"]["/compute/{id}"]["get"]["responses"]
    assert set(entity["200"]["content"]) == MEDIA - {"text/uri-list"}  # uri-list renders listings only
    codes = {code for op in operations(document) for code in op["responses"]}
    assert GFD223_CODES <= codes
    errors = document["components"]["responses"]
    assert errors["e405"]["headers"]["Allow"] and errors["e401"]["headers"]["WWW-Authenticate"]
    create = document["paths"]["/compute/"]["post"]["responses"]["201"]
    assert "Location" in create["headers"] and "X-OCCI-Operation" in create["headers"]


def test_the_occi_schema_is_reused_and_converted(document: dict[str, Any]) -> None:
    shared = json.loads((SHARED / "spec" / "occi-1.2.schema.json").read_text(encoding="utf-8"))
    packaged = json.loads((Path(openapi.__file__).parent / "occi-1.2.schema.json").read_text(encoding="utf-8"))
    assert packaged == shared, "src/occipy/rendering/occi-1.2.schema.json must be a copy of shared/spec's"
    schemas = document["components"]["schemas"]
    assert set(shared["definitions"]) <= set(schemas)
    text = json.dumps(schemas)
    assert "#/definitions/" not in text and "draft-04" not in text
    # draft-04's boolean exclusiveMinimum became the 2020-12 number form
    share = schemas["demoapp_attributes"]["properties"]["occi.app.share"]
    assert share["allOf"][1] == {"type": "number", "exclusiveMinimum": 0}


def test_real_renderings_validate_against_their_kind_schemas(document: dict[str, Any]) -> None:
    registry = extended_registry()
    network = Entity(kind=NETWORK, entity_id="urn:uuid:n1", location="/network/n1",
                     attributes={"occi.core.id": "urn:uuid:n1", "occi.network.state": "active"})
    compute = Entity(kind=COMPUTE, entity_id="urn:uuid:c1", location="/compute/c1",
                     mixins=["http://schemas.ogf.org/occi/infrastructure#os_tpl"],
                     attributes={"occi.core.id": "urn:uuid:c1", "occi.core.title": "web", "occi.compute.cores": 2,
                                 "occi.compute.state": "active"},
                     actions=("http://schemas.ogf.org/occi/infrastructure/compute/action#stop",))
    compute_schema = schema_validator(document, "compute")
    rendered = json.loads(oj.render_entity(compute))
    assert list(compute_schema.iter_errors(rendered)) == []
    bad = copy.deepcopy(rendered)
    bad["attributes"]["occi.compute.cores"] = 0
    assert not compute_schema.is_valid(bad)
    assert schema_validator(document, "network").is_valid(json.loads(oj.render_entity(network)))
    collection = json.loads(oj.render_entities([compute], [], keys="resources"))
    assert schema_validator(document, "resource_collection").is_valid(collection)
    query = json.loads(oj.render_categories(registry.categories(), registry))
    assert list(schema_validator(document, "query_interface").iter_errors(query)) == []


def test_it_follows_the_registry_and_is_pure() -> None:
    registry = standard_registry()
    before = openapi.render(registry, BASE)
    assert openapi.render(registry, BASE) == before
    assert "/my_stuff/" not in before["paths"]
    registry.add(Mixin(scheme="http://example.org/u#", term="my_stuff", location="/my_stuff/", user_defined=True))
    after = openapi.render(registry, BASE)
    assert "/my_stuff/" in after["paths"] and after["info"]["version"] != before["info"]["version"]
    registry.remove_mixin("http://example.org/u#my_stuff")
    assert "/my_stuff/" not in openapi.render(registry, BASE)["paths"]
    assert json.loads(openapi.render_bytes(registry, BASE)) == openapi.render(registry, BASE)


def test_clashing_terms_get_distinct_names() -> None:
    registry = standard_registry()
    registry.add(Mixin(scheme="http://a.example/tpl#", term="small", location="/a/small/"))
    registry.add(Mixin(scheme="http://b.example/tpl#", term="small", location="/b/small/"))
    document = openapi.render(registry, BASE)
    ids = [op["operationId"] for op in operations(document)]
    assert len(ids) == len(set(ids))
    validate(document)


def test_the_event_stream_and_the_operation_collection_are_described(document: dict[str, Any]) -> None:
    """issue 12: GET /-/events (text/event-stream, its filters, Last-Event-ID) and GET /-/operations/."""
    events = document["paths"]["/-/events"]["get"]
    assert set(events["responses"]["200"]["content"]) == {"text/event-stream"}
    names = {p["name"] for p in events["parameters"]}
    assert {"kind", "location", "operation", "type", "Last-Event-ID"} <= names
    event = schema_validator(document, "event")
    assert event.is_valid({"id": 3, "type": "state", "location": BASE + "/compute/x", "operation": None,
                           "state": "active", "kind": COMPUTE})
    assert not event.is_valid({"id": 3, "type": "renamed", "location": None, "operation": None, "state": None})
    listing = document["paths"]["/-/operations/"]["get"]
    assert "text/uri-list" in listing["responses"]["200"]["content"]
    assert {"page", "number", "attribute", "value"} == {p["name"] for p in listing["parameters"]}

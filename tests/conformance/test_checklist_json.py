"""Checklist J-* (OCCI JSON Rendering, GFD.226) against the live server, plus P-18.

Every JSON response is validated against one definition of `occi-1.2.schema.json` (the GFD.226
Appendix B schema with its errata fixed), and attribute values against the `pattern` JSON
Schemas the server publishes.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tests.conformance.conftest import (
    COMPUTE,
    DEBIAN,
    ENTITY,
    JSON,
    NETWORK,
    NETWORKINTERFACE,
    STORAGE,
    STORAGELINK,
    TINY,
    Occi,
    media_type,
    path_of,
    validate,
)

JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "number": (int, float), "boolean": bool, "array": list, "object": dict}


@pytest.fixture(scope="module")
def world(occi: Occi) -> dict[str, str]:
    network, storage = occi.network(), occi.storage(attributes={"occi.core.title": "json disk"})
    compute = occi.compute(mixins=[DEBIAN, TINY], attributes={"occi.core.title": "json vm",
                                                            "occi.core.summary": "for J-*"})
    nic = occi.link(NETWORKINTERFACE, compute, network, attributes={"occi.core.title": "json nic"})
    disk = occi.link(STORAGELINK, compute, storage)
    tag = occi.user_mixin()
    where = occi.model.category(tag)["location"]
    assert occi.associate(where, compute, disk).status_code == 200
    occi.wait_state(compute, "active")
    return {"compute": compute, "network": network, "storage": storage, "nic": nic, "disk": disk,
            "tag": tag, "tag_location": where}


def get_json(occi: Occi, path: str) -> Any:
    response = occi.get(path, accept=JSON)
    assert response.status_code == 200, response.text
    assert media_type(response) == JSON
    return response.json()


# --- J-01: the media type -------------------------------------------------------------------------
@pytest.mark.spec("J-01")
@pytest.mark.parametrize("media", [JSON, "application/json"])
def test_json_media_type_in_requests_and_responses(occi: Occi, media: str) -> None:
    response = occi.create_response(COMPUTE, media, attributes={"occi.core.title": "j01"})
    assert response.status_code == 201, response.text
    assert media_type(response) == media
    entity = occi.get(response.headers["location"], accept=media)
    assert media_type(entity) == media and entity.json()["kind"] == COMPUTE


@pytest.mark.spec("J-01")
@pytest.mark.parametrize("status", [400, 403, 404, 405, 409, 413])
def test_json_errors(occi: Occi, world: dict[str, str], status: int) -> None:
    request = {
        400: lambda: occi.create_response(STORAGE, JSON),
        403: lambda: occi.request("POST", world["storage"], document={"mixins": [
            "http://schemas.ogf.org/occi/infrastructure/credentials#ssh_key"],
            "attributes": {"occi.credentials.ssh.publickey": "ssh-ed25519 AAAA j@x"}}),
        404: lambda: occi.get("/compute/nothing-here", accept=JSON),
        405: lambda: occi.request("PUT", "/compute/", document={"resources": []}),
        409: lambda: occi.act(world["compute"], "start", JSON),
        413: lambda: occi.get("/compute/", accept=JSON, params={"page": "1", "number": "5000"}),
    }[status]
    response = request()
    assert response.status_code == status, response.text
    assert media_type(response) == JSON
    body = response.json()
    assert body["code"] == status and isinstance(body["message"], str) and body["message"]


# --- J-02 .. J-05: structures -----------------------------------------------------------------
@pytest.mark.spec("J-02")
@pytest.mark.spec("J-05")
def test_query_interface_validates(occi: Occi, world: dict[str, str]) -> None:
    document = get_json(occi, "/-/")
    validate(document, "query_interface")
    assert set(document) <= {"kinds", "mixins", "actions"}
    assert all(isinstance(document[key], list) and document[key] for key in ("kinds", "mixins", "actions"))
    for kind in document["kinds"]:
        validate(kind, "kind")
    for mixin in document["mixins"]:
        validate(mixin, "mixin")
    for action in document["actions"]:
        validate(action, "action")


@pytest.mark.spec("J-02")
@pytest.mark.parametrize("what,definition", [("compute", "resource"), ("network", "resource"),
                                             ("storage", "resource"), ("nic", "link"), ("disk", "link")])
def test_entities_validate(occi: Occi, world: dict[str, str], what: str, definition: str) -> None:
    document = get_json(occi, world[what])
    validate(document, definition)
    for link in document.get("links", []):
        validate(link, "link")


@pytest.mark.spec("J-02")
@pytest.mark.spec("J-04")
def test_collections_validate(occi: Occi, world: dict[str, str]) -> None:
    resources = get_json(occi, "/compute/")
    validate(resources, "resource_collection")
    assert set(resources) == {"resources"}
    links = get_json(occi, "/link/")
    validate(links, "link_collection")
    assert set(links) == {"links"}
    mixed = get_json(occi, world["tag_location"])
    validate(mixed, "entity_collection")
    assert len(mixed["resources"]) == 1 and len(mixed["links"]) == 1
    assert path_of(occi.url + occi.location_from_json(mixed["links"][0])) == path_of(world["disk"])


@pytest.mark.spec("J-04")
def test_empty_collection_is_an_empty_array(occi: Occi) -> None:
    tag = occi.user_mixin()
    document = get_json(occi, occi.model.category(tag)["location"])
    validate(document, "entity_collection")
    assert all(value == [] for value in document.values())


@pytest.mark.spec("J-02")
def test_operation_answers_validate(occi: Occi, world: dict[str, str]) -> None:
    compute = occi.compute()
    occi.wait_state(compute, "active")
    validate(occi.act(compute, "restart", JSON).json(), "resource")
    validate(occi.request("POST", compute, document={"attributes": {"occi.core.title": "j02"}}).json(), "resource")
    saved = occi.act(compute, "save", JSON, attributes={"name": "j02snap"})
    assert saved.status_code == 200, saved.text
    validate(saved.json(), "mixin_collection")
    created = occi.request("POST", "/-/", document={"mixins": [{
        "term": "j02" + compute[-8:], "scheme": "http://example.com/occi/j02#", "location": f"/j02/{compute[-8:]}/"}]})
    assert created.status_code == 200, created.text
    validate(created.json(), "mixin_collection")


@pytest.mark.spec("J-03")
def test_kind_location_present_except_for_entity(occi: Occi) -> None:
    for kind in get_json(occi, "/-/")["kinds"]:
        if kind["scheme"] + kind["term"] == ENTITY:
            assert "location" not in kind
        else:
            assert kind["location"].startswith("/") and kind["location"].endswith("/"), kind["term"]
    for mixin in get_json(occi, "/-/")["mixins"]:
        assert mixin["location"].endswith("/")


# --- J-06 .. J-08: attributes -------------------------------------------------------------------
def definitions(occi: Occi) -> list[tuple[str, str, dict[str, Any]]]:
    document = get_json(occi, "/-/")
    return [(c["scheme"] + c["term"], name, d) for key in ("kinds", "mixins", "actions")
            for c in document[key] for name, d in c.get("attributes", {}).items()]


@pytest.mark.spec("J-06")
def test_attribute_descriptions(occi: Occi) -> None:
    for owner, name, description in definitions(occi):
        assert description.get("type", "string") in JSON_TYPES, (owner, name)
        # Absent members mean mutable=false / required=false / type=string: always say them.
        assert {"mutable", "required", "type"} <= set(description), (owner, name)
        if "default" in description:
            expected = JSON_TYPES[description["type"]]
            assert isinstance(description["default"], expected), (owner, name)
            assert not (description["type"] == "number" and isinstance(description["default"], bool))
            if "pattern" in description:
                jsonschema.Draft4Validator(description["pattern"]).validate(description["default"])


@pytest.mark.spec("J-06")
def test_kind_default_used_at_instantiation(occi: Occi) -> None:
    # occi.storage.state has the Kind default "offline"; with the cloud's answer it may move on,
    # but the value is always set (the default is used when the client gives none).
    state = occi.model.category(STORAGE)["attributes"]["occi.storage.state"]
    assert state["default"] == "offline"
    seen = occi.view(occi.storage())
    assert seen.attributes["occi.storage.state"] in ("offline", "online")


@pytest.mark.spec("J-07")
def test_attribute_names_are_flat(occi: Occi, world: dict[str, str]) -> None:
    model = occi.discover()
    for what in ("compute", "nic"):
        document = get_json(occi, world[what])
        for name, value in document["attributes"].items():
            assert "." in name
            if isinstance(value, dict):
                kinds = [document["kind"], *document.get("mixins", [])]
                declared = [model.category(k).get("attributes", {}).get(name, {}).get("type") for k in kinds]
                assert "object" in declared, name
    nested = {"kind": COMPUTE, "attributes": {"occi": {"compute": {"cores": 2}}}}
    response = occi.request("POST", "/compute/", document=nested)
    assert response.status_code == 400, response.text


@pytest.mark.spec("J-08")
def test_patterns_are_json_schemas(occi: Occi) -> None:
    patterns = [(owner, name, d["pattern"]) for owner, name, d in definitions(occi) if "pattern" in d]
    assert patterns
    for owner, name, pattern in patterns:
        assert isinstance(pattern, dict), (owner, name)
        jsonschema.Draft4Validator.check_schema(pattern)


@pytest.mark.spec("J-08")
def test_rendered_values_satisfy_their_patterns(occi: Occi, world: dict[str, str]) -> None:
    model = occi.discover()
    for what in ("compute", "network", "storage", "nic", "disk"):
        document = get_json(occi, world[what])
        for category in [document["kind"], *document.get("mixins", [])]:
            for name, description in model.category(category).get("attributes", {}).items():
                if name in document["attributes"] and "pattern" in description:
                    jsonschema.Draft4Validator(description["pattern"]).validate(document["attributes"][name])


@pytest.mark.spec("J-08")
@pytest.mark.parametrize("kind,attributes", [
    (COMPUTE, {"occi.compute.cores": 0}),
    (COMPUTE, {"occi.compute.cores": 1.5}),
    (COMPUTE, {"occi.compute.cores": "2"}),
    (COMPUTE, {"occi.compute.share": -1}),
    (COMPUTE, {"occi.compute.hostname": 7}),
    (NETWORK, {"occi.network.vlan": 5000}),
    (NETWORK, {"occi.network.label": "has space"}),
    (STORAGE, {"occi.storage.size": "big"}),
], ids=lambda v: str(v).rsplit("#", 1)[-1][:40])
def test_values_violating_the_pattern_are_refused(occi: Occi, kind: str, attributes: dict[str, Any]) -> None:
    if kind == STORAGE:
        attributes = {"occi.storage.size": 1.0, **attributes}
    response = occi.create_response(kind, JSON, attributes=attributes)
    assert response.status_code == 400, response.text


@pytest.mark.spec("J-08")
def test_mac_pattern_is_enforced_on_links(occi: Occi, world: dict[str, str]) -> None:
    response = occi.create_response(NETWORKINTERFACE, JSON, attributes={
        "occi.core.source": world["compute"], "occi.core.target": world["network"],
        "occi.networkinterface.mac": "not-a-mac"})
    assert response.status_code == 400, response.text


# --- JSON input rules (json-rendering.md §1, §2 [decision]) and P-18 -----------------------------
@pytest.mark.spec("J-02")
@pytest.mark.parametrize("document", [
    {"kind": COMPUTE, "attributes": {"occi.core.title": None}},
    {"kind": COMPUTE, "title": "a", "attributes": {"occi.core.title": "b"}},
    {"kind": COMPUTE, "colour": "blue"},
    {"kind": COMPUTE, "mixins": "not-a-list"},
    [],
    "compute",
], ids=["null", "title-twice-different", "unknown-member", "mixins-not-array", "array", "string"])
def test_malformed_json_entities_are_refused(occi: Occi, document: Any) -> None:
    before = occi.locations("/compute/")
    response = occi.request("POST", "/compute/", document=document)
    assert response.status_code == 400, response.text
    assert occi.locations("/compute/") == before


@pytest.mark.spec("J-02")
def test_top_level_members_are_read(occi: Occi) -> None:
    location = occi.create(COMPUTE, JSON, title="top-level title", summary="top-level summary")
    seen = occi.view(location)
    assert seen.attributes["occi.core.title"] == "top-level title"
    assert seen.attributes["occi.core.summary"] == "top-level summary"


@pytest.mark.spec("P-18")
def test_core_values_are_mirrored_in_attributes(occi: Occi, world: dict[str, str]) -> None:
    compute = get_json(occi, world["compute"])
    assert compute["attributes"]["occi.core.id"] == compute["id"]
    assert compute["attributes"]["occi.core.title"] == compute["title"] == "json vm"
    assert compute["attributes"]["occi.core.summary"] == compute["summary"] == "for J-*"
    link = get_json(occi, world["nic"])
    assert link["attributes"]["occi.core.id"] == link["id"]
    assert link["attributes"]["occi.core.title"] == link["title"] == "json nic"
    assert path_of(link["attributes"]["occi.core.source"]) == path_of(link["source"]["location"])
    assert path_of(link["attributes"]["occi.core.target"]) == path_of(link["target"]["location"])
    assert link["source"]["kind"] == COMPUTE and link["target"]["kind"] == NETWORK

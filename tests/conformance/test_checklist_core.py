"""Checklist C-* (OCCI Core, GFD.221) against the live server, in text/plain, text/occi and JSON.

Each test names the checklist ids it covers (conformance-core.md §1). Items that are design
reviews (C-21, C-41) or features the server does not have (C-45 authorisation) are explained in
docs/conformance.md instead.
"""

from __future__ import annotations

import re
import uuid

import pytest

from tests.conformance.conftest import (
    ALL_MEDIA,
    COMPUTE,
    COMPUTE_ACTION,
    CORE,
    DEBIAN,
    ENTITY,
    INFRA,
    IPNETWORK,
    IPNETWORKINTERFACE,
    JSON,
    LINK,
    MEDIUM,
    NETWORK,
    NETWORKINTERFACE,
    OCCI,
    OGF_BASE,
    OS_TPL,
    PLAIN,
    RESOURCE,
    RESOURCE_TPL,
    SSH_KEY,
    STORAGE,
    STORAGELINK,
    TEXT_MEDIA,
    TINY,
    USER_DATA,
    XLARGE,
    Occi,
    TextMessage,
    category_value,
    define_mixin,
    discovered,
    echo_json,
    echo_message,
    path_of,
    send_entity,
    text_categories,
)

MUTABLE_COMPUTE = {
    "occi.core.title": "c-02 machine",
    "occi.core.summary": "created by the C-02 test",
    "occi.compute.architecture": "x86",
    "occi.compute.cores": 2,
    "occi.compute.hostname": "c02.example.org",
    "occi.compute.share": 10,
    "occi.compute.memory": 2.0,
}
UPDATED_COMPUTE = {
    "occi.core.title": "c-02 renamed",
    "occi.core.summary": "updated",
    "occi.compute.architecture": "x64",
    "occi.compute.cores": 4,
    "occi.compute.hostname": "c02b.example.org",
    "occi.compute.share": 20,
    "occi.compute.memory": 4.0,
}
OGF_SCHEMES = re.compile(r"^http://schemas\.ogf\.org/occi/")
PROVIDER_SCHEME = "http://occipy.org/"


def standard(category: dict[str, object]) -> bool:
    """Categories the provider publishes (OGF and occipy schemes), not user mixins of other tests."""
    scheme = str(category["scheme"])
    return scheme.startswith((OGF_BASE, PROVIDER_SCHEME))


# --- C-01, C-34: the Core types -------------------------------------------------------------------
@pytest.mark.spec("C-01")
@pytest.mark.spec("C-34")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_core_types_are_implemented(occi: Occi, media: str) -> None:
    found = discovered(occi.get("/-/", accept=media))
    assert found[ENTITY] == found[RESOURCE] == found[LINK] == "kind"
    assert "mixin" in found.values() and "action" in found.values()


@pytest.mark.spec("C-34")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_plain_resource_and_link_can_be_instantiated(occi: Occi, media: str) -> None:
    resource = occi.create(RESOURCE, media, attributes={"occi.core.title": "plain resource"})
    assert occi.view(resource).kind == RESOURCE
    link = occi.link(LINK, resource, "http://elsewhere.example.org/things/1", media)
    seen = occi.view(link)
    assert seen.kind == LINK
    assert path_of(seen.attributes["occi.core.source"]) == path_of(resource)


# --- C-02, C-03, C-04: mutability ----------------------------------------------------------------
@pytest.mark.spec("C-02")
@pytest.mark.parametrize("media", ALL_MEDIA)
@pytest.mark.parametrize("names", [("occi.core.title", "occi.core.summary", "occi.compute.hostname",
                                    "occi.compute.share"),
                                   ("occi.compute.architecture", "occi.compute.cores", "occi.compute.memory")],
                         ids=["bookkeeping", "resize"])
def test_mutable_attributes_updated_one_group_at_a_time(occi: Occi, media: str, names: tuple[str, ...]) -> None:
    location = occi.compute(media=media, attributes=MUTABLE_COMPUTE)
    changes = {name: UPDATED_COMPUTE[name] for name in names}
    response = send_entity(occi, "POST", location, media, None, attributes=changes)
    assert response.status_code == 200, response.text
    updated = occi.view(location, media)
    assert {k: updated.attributes.get(k) for k in MUTABLE_COMPUTE} == {**MUTABLE_COMPUTE, **changes}


@pytest.mark.spec("C-02")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_mutable_attributes_set_at_creation_and_updated(occi: Occi, media: str) -> None:
    location = occi.compute(media=media, attributes=MUTABLE_COMPUTE)
    created = occi.view(location, media)
    assert {k: created.attributes.get(k) for k in MUTABLE_COMPUTE} == MUTABLE_COMPUTE
    # Partial update (POST): each mutable attribute replaced.
    response = send_entity(occi, "POST", location, media, None, attributes=UPDATED_COMPUTE)
    assert response.status_code == 200, response.text
    updated = occi.view(location, media)
    assert {k: updated.attributes.get(k) for k in UPDATED_COMPUTE} == UPDATED_COMPUTE
    # Full update (PUT): the client's values again.
    body = {**updated.attributes, **MUTABLE_COMPUTE}
    response = send_entity(occi, "PUT", location, media, COMPUTE, attributes=body)
    assert response.status_code == 200, response.text
    replaced = occi.view(location, media)
    assert {k: replaced.attributes.get(k) for k in MUTABLE_COMPUTE} == MUTABLE_COMPUTE


@pytest.mark.spec("C-03")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_server_manages_immutable_attributes(occi: Occi, media: str) -> None:
    # core.md §2.1 [decision]: immutable attributes sent at creation are ignored (except the id).
    location = occi.compute(media=media, attributes={"occi.compute.state": "suspended",
                                                     "occi.compute.state.message": "client says so"})
    seen = occi.view(location, media)
    assert seen.attributes["occi.compute.state"] in ("inactive", "active")
    assert seen.attributes.get("occi.compute.state.message") != "client says so"


@pytest.mark.spec("C-04")
@pytest.mark.parametrize("media", ALL_MEDIA)
@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("name,value", [("occi.core.id", "urn:uuid:00000000-0000-4000-8000-000000000001"),
                                        ("occi.compute.state", "suspended")])
def test_changing_an_immutable_attribute_is_forbidden(occi: Occi, media: str, method: str, name: str,
                                                      value: str) -> None:
    location = occi.compute()
    before = occi.view(location, media)
    kind = COMPUTE if method == "PUT" else None
    attributes = {**before.attributes, name: value} if method == "PUT" else {name: value}
    response = send_entity(occi, method, location, media, kind, attributes=attributes)
    assert response.status_code == 403, response.text
    after = occi.view(location, media)
    assert after.attributes[name] == before.attributes[name]


@pytest.mark.spec("C-04")
@pytest.mark.spec("P-09")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_unchanged_immutable_attributes_may_be_resent(occi: Occi, media: str) -> None:
    location = occi.compute(attributes={"occi.core.title": "echo"})
    current = occi.view(location, media)
    for method in ("PUT", "POST"):
        if media == JSON:
            response = occi.request(method, location, media=media, document=echo_json(current))
        else:
            response = occi.request(method, location, media=media, message=echo_message(current))
        assert response.status_code == 200, (method, response.text)


# --- C-05 .. C-10: categories and attribute definitions -----------------------------------------
@pytest.mark.spec("C-05")
def test_categories_have_term_scheme_title(occi: Occi) -> None:
    for category in occi.discover().kinds + occi.discover().mixins + occi.discover().actions:
        assert category["term"] and category["scheme"].endswith("#")
        if standard(category):
            assert category.get("title"), category
    for rendered in text_categories(occi.get("/-/")):
        assert rendered.term and rendered.scheme and rendered.cls in ("kind", "mixin", "action")
        if rendered.scheme.startswith((OGF_BASE, PROVIDER_SCHEME)):
            assert rendered.params.get("title"), rendered.raw


@pytest.mark.spec("C-06")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_renderings_use_scheme_plus_term(occi: Occi, media: str) -> None:
    compute = occi.compute(media=media, mixins=[DEBIAN, TINY])
    network = occi.network()
    occi.link(NETWORKINTERFACE, compute, network)
    seen = occi.view(compute, media)
    model = occi.discover()
    assert seen.kind == COMPUTE
    assert set(seen.mixins) == {DEBIAN, TINY}
    assert seen.actions and all(model.cls.get(a) == "action" for a in seen.actions)
    assert all(a.startswith(COMPUTE_ACTION) for a in seen.actions)
    (link,) = seen.links
    assert link["kind"] == NETWORKINTERFACE


@pytest.mark.spec("C-07")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_user_mixin_in_the_ogf_scheme_is_refused(occi: Occi, media: str) -> None:
    term = "c07" + uuid.uuid4().hex[:6]
    response = define_mixin(occi, media, f"http://schemas.ogf.org/occi/mine#{term}", f"/c07/{term}/")
    assert response.status_code == 400, response.text
    assert f"http://schemas.ogf.org/occi/mine#{term}" not in occi.discover().by_id


@pytest.mark.spec("C-08")
@pytest.mark.spec("C-10")
def test_attribute_properties_are_discoverable_in_json(occi: Occi) -> None:
    used: set[str] = set()
    for category in occi.discover().kinds + occi.discover().mixins + occi.discover().actions:
        for name, definition in category.get("attributes", {}).items():
            # GFD.226 §3.5.1: an absent `mutable` means false, so a server must say it explicitly.
            assert {"mutable", "required", "type"} <= definition.keys(), (category["term"], name)
            assert definition["type"] in ("string", "number", "boolean", "array", "object")
            used.update(definition)
    assert {"pattern", "default", "description"} <= used


@pytest.mark.spec("C-09")
@pytest.mark.spec("C-42")
def test_provider_attributes_do_not_use_the_occi_prefix(occi: Occi) -> None:
    model = occi.discover()
    ogf_names = {name for c in model.kinds + model.mixins if OGF_SCHEMES.match(c["scheme"])
                 for name in c.get("attributes", {})}
    for category in model.kinds + model.mixins:
        if OGF_SCHEMES.match(category["scheme"]):
            continue
        for name in category.get("attributes", {}):
            # A provider template may give defaults to OGF attributes; it must not invent occi.* names.
            assert not name.startswith("occi.") or name in ogf_names, (category["term"], name)


@pytest.mark.spec("C-10")
@pytest.mark.parametrize("media", TEXT_MEDIA)
def test_text_attribute_flags_match_json_definitions(occi: Occi, media: str) -> None:
    model = occi.discover()
    for category in text_categories(occi.get("/-/", accept=media)):
        definitions = model.category(category.type_id).get("attributes", {})
        flags = category.attribute_flags()
        assert set(flags) == set(definitions), category.type_id
        for name, definition in definitions.items():
            assert ("immutable" in flags[name]) == (not definition["mutable"]), (category.type_id, name)
            assert ("required" in flags[name]) == definition["required"], (category.type_id, name)


@pytest.mark.spec("C-11")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_missing_required_attribute_is_a_bad_request(occi: Occi, media: str) -> None:
    before = occi.locations("/storage/")
    response = occi.create_response(STORAGE, media, attributes={"occi.core.title": "no size"})
    assert response.status_code == 400, response.text
    response = occi.create_response(COMPUTE, media, mixins=[SSH_KEY])
    assert response.status_code == 400, response.text
    response = occi.create_response(COMPUTE, media, mixins=[USER_DATA])
    assert response.status_code == 400, response.text
    assert occi.locations("/storage/") == before


@pytest.mark.spec("C-11")
def test_occi_core_id_is_never_demanded(occi: Occi) -> None:
    # core.md §3.4: occi.core.id is flagged required, but the server generates it.
    assert occi.model.category(ENTITY)["attributes"]["occi.core.id"]["required"] is True
    assert occi.create_response(COMPUTE).status_code == 201


# --- C-12 .. C-16: Kinds ------------------------------------------------------------------------
@pytest.mark.spec("C-12")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_one_unique_kind_per_type(occi: Occi, media: str) -> None:
    response = occi.get("/-/", accept=media)
    if media == JSON:
        ids = [k["scheme"] + k["term"] for k in response.json()["kinds"]]
        everything = [c["scheme"] + c["term"] for key in ("kinds", "mixins", "actions") for c in response.json()[key]]
    else:
        ids = [c.type_id for c in text_categories(response) if c.cls == "kind"]
        everything = [c.type_id for c in text_categories(response)]
    assert len(ids) == len(set(ids))
    assert len(everything) == len(set(everything))
    for type_id in (ENTITY, RESOURCE, LINK, COMPUTE, STORAGE, NETWORK, STORAGELINK, NETWORKINTERFACE):
        assert ids.count(type_id) == 1


@pytest.mark.spec("C-13")
@pytest.mark.spec("L-10")
@pytest.mark.spec("INF-03")
@pytest.mark.parametrize("media", ALL_MEDIA)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_the_kind_of_an_entity_never_changes(occi: Occi, media: str, method: str) -> None:
    location = occi.compute()
    response = send_entity(occi, method, location, media, STORAGE, attributes={"occi.storage.size": 1.0})
    assert response.status_code == 400, response.text
    assert occi.view(location).kind == COMPUTE


@pytest.mark.spec("C-14")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_kind_exposes_attributes_and_actions(occi: Occi, media: str) -> None:
    response = occi.get("/-/", accept=media)
    wanted_attributes = {"occi.compute.architecture", "occi.compute.cores", "occi.compute.hostname",
                         "occi.compute.share", "occi.compute.memory", "occi.compute.state",
                         "occi.compute.state.message"}
    wanted_actions = {COMPUTE_ACTION + t for t in ("start", "stop", "restart", "suspend", "save")}
    if media == JSON:
        compute = next(k for k in response.json()["kinds"] if k["scheme"] + k["term"] == COMPUTE)
        attributes, actions = set(compute["attributes"]), set(compute["actions"])
    else:
        compute_text = next(c for c in text_categories(response) if c.type_id == COMPUTE)
        attributes = set(compute_text.attribute_flags())
        actions = set(str(compute_text.params["actions"]).split())
    assert wanted_attributes <= attributes
    assert actions == wanted_actions


@pytest.mark.spec("C-15")
@pytest.mark.spec("INF-02")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_kind_parents_end_at_entity(occi: Occi, media: str) -> None:
    response = occi.get("/-/", accept=media)
    if media == JSON:
        parents = {k["scheme"] + k["term"]: k.get("parent") for k in response.json()["kinds"]}
    else:
        parents = {c.type_id: c.params.get("rel") for c in text_categories(response) if c.cls == "kind"}
    assert parents[ENTITY] is None
    for kind in parents:
        seen, current = set(), kind
        while parents[current] is not None:
            assert current not in seen, f"parent cycle at {current}"
            seen.add(current)
            current = parents[current]
            assert current in parents, f"{kind}: parent {current} is not a Kind"
        assert current == ENTITY
    assert parents[RESOURCE] == parents[LINK] == ENTITY
    assert parents[COMPUTE] == parents[STORAGE] == parents[NETWORK] == RESOURCE
    assert parents[STORAGELINK] == parents[NETWORKINTERFACE] == LINK


@pytest.mark.spec("C-16")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_parent_capabilities_are_inherited(occi: Occi, media: str) -> None:
    model = occi.discover()
    for kind in model.kinds:
        parent = kind.get("parent")
        if parent:
            assert set(model.category(parent).get("attributes", {})) <= set(kind.get("attributes", {}))
    location = occi.compute(media=media, attributes={"occi.core.title": "inherits", "occi.core.summary": "core attrs"})
    seen = occi.view(location, media)
    assert seen.attributes["occi.core.title"] == "inherits"
    assert seen.attributes["occi.core.summary"] == "core attrs"


# --- C-17 .. C-24: Mixins -----------------------------------------------------------------------
@pytest.mark.spec("C-17")
def test_mixins_are_not_subtyped(occi: Occi) -> None:
    model = occi.discover()
    for mixin in model.mixins:
        assert "parent" not in mixin, mixin["term"]
        assert all(model.cls.get(d) == "mixin" for d in mixin.get("depends", [])), mixin["term"]
        assert all(model.cls.get(a) == "kind" for a in mixin.get("applies", [])), mixin["term"]


@pytest.mark.spec("C-18")
def test_applicability_is_advertised(occi: Occi) -> None:
    model = occi.discover()
    assert model.category(SSH_KEY)["applies"] == [COMPUTE]
    assert model.category(USER_DATA)["applies"] == [COMPUTE]
    assert model.category(IPNETWORK)["applies"] == [NETWORK]
    assert model.category(IPNETWORKINTERFACE)["applies"] == [NETWORKINTERFACE]


@pytest.mark.spec("C-19")
@pytest.mark.parametrize("media", ALL_MEDIA)
@pytest.mark.parametrize("mixin,attribute", [(SSH_KEY, "occi.credentials.ssh.publickey"),
                                             (USER_DATA, "occi.compute.userdata")])
def test_mixin_at_an_unsupported_stage_is_a_bad_request(occi: Occi, media: str, mixin: str, attribute: str) -> None:
    # occipy applies credentials and contextualization only at creation (GFD.224 §3.5.2.1-2).
    location = occi.compute()
    response = send_entity(occi, "POST", location, media, None, mixins=[mixin],
                           attributes={attribute: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB c19@example"})
    assert response.status_code == 400, response.text
    assert mixin not in occi.view(location).mixins


@pytest.mark.spec("C-20")
def test_mixins_associate_with_entity_instances_only(occi: Occi) -> None:
    mixin = occi.user_mixin()
    location = occi.model.category(mixin)["location"]
    # A Kind location is a type's collection, not an entity instance.
    response = occi.associate(location, occi.url + "/compute/")
    assert response.status_code == 404, response.text  # no entity instance there
    # A user mixin cannot depend on a Kind either.
    response = define_mixin(occi, PLAIN, "http://example.com/occi/tests#c20" + uuid.uuid4().hex[:6],
                            "/c20/" + uuid.uuid4().hex[:6] + "/", rel=COMPUTE)
    assert response.status_code == 400, response.text


@pytest.mark.spec("C-21")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_mixins_hold_no_attribute_values(occi: Occi, media: str) -> None:
    # Values live on each entity: two computes of one template keep their own values.
    first = occi.compute(media=media, mixins=[DEBIAN], attributes={"occi.compute.architecture": "x86"})
    second = occi.compute(media=media, mixins=[DEBIAN])
    assert occi.view(first).attributes["occi.compute.architecture"] == "x86"
    assert occi.view(second).attributes["occi.compute.architecture"] == "x64"
    mixin = occi.discover().category(DEBIAN)
    assert set(mixin) <= {"term", "scheme", "title", "attributes", "depends", "applies", "actions", "location"}


@pytest.mark.spec("C-22")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_mixin_attributes_are_exposed(occi: Occi, media: str) -> None:
    response = occi.get("/-/", accept=media)
    if media == JSON:
        attrs = {m["scheme"] + m["term"]: set(m.get("attributes", {})) for m in response.json()["mixins"]}
    else:
        attrs = {c.type_id: set(c.attribute_flags()) for c in text_categories(response) if c.cls == "mixin"}
    assert attrs[IPNETWORK] == {"occi.network.address", "occi.network.gateway", "occi.network.allocation"}
    assert attrs[IPNETWORKINTERFACE] == {"occi.networkinterface.address", "occi.networkinterface.gateway",
                                         "occi.networkinterface.allocation"}
    assert attrs[SSH_KEY] == {"occi.credentials.ssh.publickey"}
    assert attrs[USER_DATA] == {"occi.compute.userdata"}
    assert {"occi.compute.cores", "occi.compute.memory"} <= attrs[MEDIUM]


@pytest.mark.spec("C-23")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_depends_brings_the_capabilities_of_the_depended_mixin(occi: Occi, media: str) -> None:
    sized = occi.user_mixin(rel=MEDIUM)
    location = occi.compute(media=media, mixins=[sized])
    seen = occi.view(location)
    defaults = occi.model.category(MEDIUM)["attributes"]
    assert seen.attributes["occi.compute.cores"] == defaults["occi.compute.cores"]["default"]
    assert seen.attributes["occi.compute.memory"] == defaults["occi.compute.memory"]["default"]
    # ...and the attributes of the depended mixin are accepted on the entity.
    addressed = occi.user_mixin(rel=IPNETWORK)
    network = occi.network(media=media, mixins=[addressed], attributes={"occi.network.address": "10.99.0.0/24"})
    assert occi.view(network).attributes["occi.network.address"] == "10.99.0.0/24"


@pytest.mark.spec("C-24")
@pytest.mark.parametrize("media", TEXT_MEDIA)
def test_mixin_without_applies_applies_to_every_entity(occi: Occi, media: str) -> None:
    tag = occi.user_mixin()
    assert not occi.model.category(tag).get("applies")
    compute, storage, network = occi.compute(), occi.storage(), occi.network()
    link = occi.link(NETWORKINTERFACE, compute, network)
    response = occi.associate(occi.model.category(tag)["location"], compute, storage, network, link, media=media)
    assert response.status_code == 200, response.text
    for location in (compute, storage, network, link):
        assert tag in occi.view(location).mixins


# --- C-25 .. C-28: Actions ----------------------------------------------------------------------
@pytest.mark.spec("C-25")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_actions_have_term_scheme_title_attributes(occi: Occi, media: str) -> None:
    response = occi.get("/-/", accept=media)
    if media == JSON:
        actions = {a["scheme"] + a["term"]: (a.get("title"), set(a.get("attributes", {})))
                   for a in response.json()["actions"]}
    else:
        actions = {c.type_id: (c.params.get("title"), set(c.attribute_flags()))
                   for c in text_categories(response) if c.cls == "action"}
    for type_id, (title, _) in actions.items():
        if type_id.startswith(OGF_BASE):
            assert title, type_id
    assert actions[COMPUTE_ACTION + "stop"][1] == {"method"}
    assert actions[COMPUTE_ACTION + "save"][1] == {"method", "name"}


@pytest.mark.spec("C-26")
def test_every_action_is_bound_to_exactly_one_category(occi: Occi) -> None:
    model = occi.discover()
    owners: dict[str, int] = {}
    for category in model.kinds + model.mixins:
        for action in category.get("actions", []):
            owners[action] = owners.get(action, 0) + 1
    assert {a["scheme"] + a["term"] for a in model.actions} == set(owners)
    assert all(count == 1 for count in owners.values()), owners


@pytest.mark.spec("C-27")
@pytest.mark.spec("INF-R1")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_action_not_applicable_now_is_a_conflict(occi: Occi, media: str) -> None:
    location = occi.compute()
    assert occi.wait_state(location, "active").state == "active"
    response = occi.act(location, "start", media)
    assert response.status_code == 409, response.text
    assert occi.view(location).state == "active"


@pytest.mark.spec("C-28")
@pytest.mark.spec("H-33")
def test_collection_action_applies_to_every_member(fresh: Occi) -> None:
    computes = [fresh.compute() for _ in range(2)]
    for location in computes:
        fresh.wait_state(location, "active")
    response = fresh.invoke("/compute/", COMPUTE_ACTION + "stop", media=PLAIN)
    assert response.status_code == 200, response.text
    assert [fresh.wait_state(c, "inactive").state for c in computes] == ["inactive", "inactive"]


@pytest.mark.spec("H-33")
def test_collection_action_leaves_members_already_in_its_target_state_alone(fresh: Occi) -> None:
    # D-COLLECTION-NOOP: the OGF 1.1 script starts /compute/ with computes already active.
    computes = [fresh.compute() for _ in range(3)]
    for location in computes:
        fresh.wait_state(location, "active")
    assert fresh.act(computes[0], "stop").status_code == 200
    fresh.wait_state(computes[0], "inactive")
    response = fresh.invoke("/compute/", COMPUTE_ACTION + "start", media=PLAIN)
    assert response.status_code == 200, response.text
    assert [fresh.wait_state(c, "active").state for c in computes] == ["active"] * 3
    assert fresh.act(computes[1], "start").status_code == 409  # one entity: still INF-R1


@pytest.mark.spec("H-33")
@pytest.mark.spec("L-17")
def test_collection_action_invalid_for_one_member_changes_nothing(fresh: Occi) -> None:
    computes = [fresh.compute() for _ in range(2)]
    for location in computes:
        fresh.wait_state(location, "active")
    assert fresh.act(computes[0], "suspend").status_code == 200
    fresh.wait_state(computes[0], "suspended")
    response = fresh.invoke("/compute/", COMPUTE_ACTION + "stop", media=PLAIN)
    assert response.status_code == 409, response.text  # suspended -> stop is not in the diagram
    assert [fresh.view(c).state for c in computes] == ["suspended", "active"]


@pytest.mark.spec("C-28")
@pytest.mark.spec("L-06")
def test_collection_action_not_defined_for_every_member_is_refused(occi: Occi) -> None:
    tag = occi.user_mixin()
    compute, storage = occi.compute(), occi.storage()
    occi.wait_state(compute, "active")
    assert occi.associate(occi.model.category(tag)["location"], compute, storage).status_code == 200
    response = occi.invoke(occi.model.category(tag)["location"], COMPUTE_ACTION + "stop", media=PLAIN)
    assert response.status_code == 400, response.text
    assert occi.view(compute).state == "active"


# --- C-29 .. C-33: instantiation, templates, collections, discovery ------------------------------
@pytest.mark.spec("C-29")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_create_by_kind_and_mixins(occi: Occi, media: str) -> None:
    location = occi.compute(media=media, mixins=[DEBIAN, MEDIUM])
    seen = occi.view(location, media)
    assert seen.kind == COMPUTE
    assert set(seen.mixins) == {DEBIAN, MEDIUM}


@pytest.mark.spec("C-30")
@pytest.mark.spec("J-06")
@pytest.mark.spec("INF-36")
@pytest.mark.parametrize("media", ALL_MEDIA)
@pytest.mark.parametrize("template", [MEDIUM, TINY, XLARGE])
def test_template_defaults_are_applied_at_creation(occi: Occi, media: str, template: str) -> None:
    location = occi.compute(media=media, mixins=[template])
    seen = occi.view(location)
    for name, definition in occi.model.category(template)["attributes"].items():
        if "default" in definition:
            assert seen.attributes[name] == definition["default"], name
    os_default = occi.model.category(DEBIAN)["attributes"]["occi.compute.architecture"]["default"]
    with_os = occi.view(occi.compute(media=media, mixins=[DEBIAN]))
    assert with_os.attributes["occi.compute.architecture"] == os_default


@pytest.mark.spec("C-31")
@pytest.mark.parametrize("media", TEXT_MEDIA)
def test_collections_are_navigable(occi: Occi, media: str) -> None:
    hostname = f"c31-{uuid.uuid4().hex[:8]}.example.org"
    location = occi.compute(attributes={"occi.compute.hostname": hostname})
    assert location in occi.locations("/compute/", accept=media)                 # the whole collection
    assert occi.get(location, accept=media).status_code == 200                   # one item
    subset = occi.locations("/compute/", accept=media,                            # a filtered subset
                            headers={"X-OCCI-Attribute": f'occi.compute.hostname="{hostname}"'})
    assert subset == [location]
    page = occi.locations("/compute/", accept=media, params={"page": "1", "number": "1"})
    assert len(page) == 1                                                        # a page


@pytest.mark.spec("C-32")
@pytest.mark.spec("L-08")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_collection_membership(occi: Occi, media: str) -> None:
    location = occi.compute(media=media, mixins=[DEBIAN])
    assert location in occi.locations("/compute/")
    assert location in occi.locations("/resource/")  # core.md §2.9 [decision]: sub-types included
    assert location in occi.locations(occi.model.category(DEBIAN)["location"])
    tag = occi.user_mixin()
    tag_location = occi.model.category(tag)["location"]
    assert occi.associate(tag_location, location, media=PLAIN).status_code == 200
    assert occi.locations(tag_location) == [location]
    assert occi.associate(tag_location, location, method="DELETE").status_code == 200
    assert occi.locations(tag_location) == []
    assert tag not in occi.view(location).mixins


@pytest.mark.spec("C-33")
@pytest.mark.parametrize("media", TEXT_MEDIA)
def test_discovery_is_complete(occi: Occi, media: str) -> None:
    model = occi.discover()
    for category in model.kinds + model.mixins:
        for ref in category.get("actions", []):
            assert model.cls.get(ref) == "action", ref
        for ref in category.get("depends", []) + category.get("applies", []):
            assert ref in model.by_id, ref
        if category.get("parent"):
            assert model.cls.get(category["parent"]) == "kind"
    text = discovered(occi.get("/-/", accept=media))
    assert text == model.cls


# --- C-35 .. C-40: entities and links -----------------------------------------------------------
@pytest.mark.spec("C-35")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_ids_are_unique(occi: Occi, media: str) -> None:
    ids = [occi.view(occi.compute(media=media)).attributes["occi.core.id"] for _ in range(4)]
    assert len(set(ids)) == 4
    chosen = f"urn:x-test:c35-{uuid.uuid4().hex}"
    first = occi.create_response(COMPUTE, media, attributes={"occi.core.id": chosen})
    assert first.status_code == 201, first.text
    second = occi.create_response(COMPUTE, media, attributes={"occi.core.id": chosen})
    assert second.status_code == 409, second.text


UUID_URN = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.mark.spec("C-36")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_ids_are_uris(occi: Occi, media: str) -> None:
    generated = occi.view(occi.compute(media=media), media).attributes["occi.core.id"]
    assert UUID_URN.match(generated), generated
    chosen = f"urn:x-test:c36-{uuid.uuid4().hex}"
    location = occi.compute(media=media, attributes={"occi.core.id": chosen})
    assert occi.view(location, media).attributes["occi.core.id"] == chosen
    bad = occi.create_response(COMPUTE, media, attributes={"occi.core.id": "not a uri"})
    assert bad.status_code == 400, bad.text


@pytest.mark.spec("C-37")
@pytest.mark.spec("L-09")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_entity_exposes_kind_mixins_attributes_actions(occi: Occi, media: str) -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC37 c37@example"
    location = occi.compute(mixins=[SSH_KEY, DEBIAN, TINY], attributes={"occi.credentials.ssh.publickey": key})
    occi.wait_state(location, "active")
    seen = occi.view(location, media)
    assert seen.kind == COMPUTE
    assert set(seen.mixins) == {SSH_KEY, DEBIAN, TINY}
    assert seen.attributes["occi.credentials.ssh.publickey"] == key
    assert seen.attributes["occi.compute.state"] == "active"
    assert COMPUTE_ACTION + "stop" in seen.actions


@pytest.mark.spec("C-38")
@pytest.mark.spec("L-12")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_removing_a_link_deletes_it(occi: Occi, media: str) -> None:
    compute, storage = occi.compute(), occi.storage()
    link = occi.link(STORAGELINK, compute, storage)
    assert len(occi.view(compute, media).links) == 1
    response = occi.request("DELETE", link, media=media)
    assert response.status_code == 200, response.text
    assert occi.get(link).status_code == 404
    assert occi.view(compute, media).links == []
    assert link not in occi.locations("/link/")


@pytest.mark.spec("C-38")
def test_deleting_the_source_deletes_its_links(occi: Occi) -> None:
    compute, network = occi.compute(), occi.network()
    link = occi.link(NETWORKINTERFACE, compute, network)
    assert occi.delete(compute).status_code == 200
    assert occi.get(link).status_code == 404
    assert link not in occi.locations("/networkinterface/")


@pytest.mark.spec("C-39")
@pytest.mark.spec("T-11")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_link_renders_source_and_target(occi: Occi, media: str) -> None:
    compute, network = occi.compute(), occi.network()
    link = occi.link(NETWORKINTERFACE, compute, network, attributes={"occi.core.title": "eth-c39"})
    response = occi.get(link, accept=media)
    seen = occi.view(link, media)
    assert path_of(seen.attributes["occi.core.source"]) == path_of(compute)
    assert path_of(seen.attributes["occi.core.target"]) == path_of(network)
    assert seen.attributes["occi.core.target.kind"] == NETWORK
    assert seen.attributes["occi.core.title"] == "eth-c39"
    assert seen.attributes["occi.core.id"]
    if media == JSON:
        document = response.json()
        assert path_of(document["source"]["location"]) == path_of(compute)
        assert path_of(document["target"]["location"]) == path_of(network)
        assert document["target"]["kind"] == NETWORK


@pytest.mark.spec("C-40")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_link_source_is_a_local_resource(occi: Occi, media: str) -> None:
    compute, network = occi.compute(), occi.network()
    link = occi.link(NETWORKINTERFACE, compute, network)
    # A Link is not a Resource: it cannot be a source.
    response = occi.create_response(LINK, media, attributes={"occi.core.source": link,
                                                             "occi.core.target": compute})
    assert response.status_code == 400, response.text
    response = occi.create_response(LINK, media, attributes={"occi.core.source": "/compute/does-not-exist",
                                                             "occi.core.target": compute})
    assert response.status_code == 404, response.text
    response = occi.create_response(LINK, media, attributes={"occi.core.source": "http://elsewhere.example.org/vm/1",
                                                             "occi.core.target": compute})
    assert response.status_code == 404, response.text  # no such resource here
    # The target may be outside the provider's namespace.
    external = "http://elsewhere.example.org/storage/c40"
    location = occi.link(LINK, compute, external, media)
    assert occi.view(location).attributes["occi.core.target"] == external


@pytest.mark.spec("C-43")
def test_provider_kinds_extend_resource_or_link(occi: Occi) -> None:
    for kind in occi.discover().kinds:
        if not OGF_SCHEMES.match(kind["scheme"]):
            assert kind.get("parent") not in (None, ENTITY), kind["term"]


# --- C-44: user mixins --------------------------------------------------------------------------
@pytest.mark.spec("C-44")
@pytest.mark.spec("H-20")
@pytest.mark.spec("H-21")
@pytest.mark.parametrize("media", ALL_MEDIA)
def test_clients_create_and_delete_user_mixins(occi: Occi, media: str) -> None:
    term = "c44" + uuid.uuid4().hex[:8]
    type_id = f"http://example.com/occi/users/tester#{term}"
    response = define_mixin(occi, media, type_id, f"/users/tester/{term}/")
    assert response.status_code == 200, response.text
    assert occi.discover().cls.get(type_id) == "mixin"
    assert occi.discover().category(type_id)["location"] == f"/users/tester/{term}/"
    response = define_mixin(occi, media, type_id, f"/users/tester/{term}/", method="DELETE")
    assert response.status_code == 200, response.text
    assert type_id not in occi.discover().by_id
    assert occi.get(f"/users/tester/{term}/").status_code == 404


@pytest.mark.spec("C-44")
def test_user_mixin_title_and_depends_are_kept(occi: Occi) -> None:
    term = "c44t" + uuid.uuid4().hex[:6]
    type_id = "http://example.com/occi/users/tester#" + term
    message = TextMessage().add("Category", category_value(type_id, "mixin", title="Tester's big VMs",
                                                           rel=RESOURCE_TPL, location=f"/users/tester/{term}/"))
    assert occi.request("POST", "/-/", media=OCCI, message=message).status_code == 200
    mixin = occi.discover().category(type_id)
    assert mixin["title"] == "Tester's big VMs"
    assert mixin["depends"] == [RESOURCE_TPL]
    assert OS_TPL not in mixin.get("depends", [])
    assert CORE not in mixin["scheme"] and INFRA not in mixin["scheme"]

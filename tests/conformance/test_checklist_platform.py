"""Checklist PLT-* (OCCI Platform, GFD.227; conformance-extensions.md part B).

Model level (the registry the server serves), rendering level (every Platform category and an
entity of each kind in text/plain, text/occi and JSON, parsed back, JSON against the schema), and
a live server: applications and components are created, read, listed, started and stopped
through their state machine, and deleted. No backend runs them yet: the server stores them
(docs/extensions.md).
"""

from __future__ import annotations

import uuid

import pytest

from occipy.model.entity import Entity
from occipy.model.extensions import platform
from occipy.model.registry import LINK, RESOURCE
from occipy.model.standard import standard_registry
from tests.conformance.conftest import JSON, Occi, discovered
from tests.conformance.extension_helpers import (
    MEDIA,
    attributes_of,
    check_categories,
    check_entity,
    ext_server,  # noqa: F401
)

REGISTRY = standard_registry()
APPLICATION, COMPONENT, COMPONENTLINK = platform.APPLICATION, platform.COMPONENT, platform.COMPONENTLINK
START_APP, STOP_APP = platform.APPLICATION_ACTION + "start", platform.APPLICATION_ACTION + "stop"
START_COMP, STOP_COMP = platform.COMPONENT_ACTION + "start", platform.COMPONENT_ACTION + "stop"
STATES = {"active", "inactive", "error"}


# --- model level ------------------------------------------------------------------------------
@pytest.mark.spec("PLT-01")
@pytest.mark.spec("PLT-02")
@pytest.mark.spec("PLT-03")
@pytest.mark.spec("PLT-06")
@pytest.mark.spec("PLT-07")
@pytest.mark.spec("PLT-10")
def test_kinds_are_present_with_their_parents() -> None:
    assert REGISTRY.kind(APPLICATION).parent == RESOURCE
    assert REGISTRY.kind(COMPONENT).parent == RESOURCE
    assert REGISTRY.kind(COMPONENTLINK).parent == LINK


@pytest.mark.spec("PLT-04")
@pytest.mark.spec("PLT-08")
def test_state_and_multiplicity_one_attributes_are_defined() -> None:
    app = REGISTRY.kind_attribute_defs(APPLICATION)
    assert {"occi.app.name", "occi.app.context", "occi.app.url", "occi.app.state", "occi.app.state.message"} <= set(app)
    assert app["occi.app.state"].pattern is not None and set(app["occi.app.state"].pattern["enum"]) == STATES
    comp = REGISTRY.kind_attribute_defs(COMPONENT)
    assert set(comp["occi.component.state"].pattern["enum"]) == STATES  # type: ignore[index]


@pytest.mark.spec("PLT-05")
@pytest.mark.spec("PLT-09")
def test_actions_and_their_schemes() -> None:
    assert REGISTRY.kind(APPLICATION).actions == (START_APP, STOP_APP)
    assert REGISTRY.kind(COMPONENT).actions == (START_COMP, STOP_COMP)
    for action in (START_APP, STOP_APP, START_COMP, STOP_COMP):
        assert REGISTRY.action(action).attributes == ()


@pytest.mark.spec("PLT-12")
@pytest.mark.spec("PLT-13")
@pytest.mark.spec("PLT-14")
@pytest.mark.spec("PLT-15")
def test_template_parents_take_provider_templates() -> None:
    from occipy.model.category import AttributeDef, Mixin

    registry = standard_registry()
    python = Mixin(scheme="http://example.com/templates/platform#", term="python", depends=(platform.APP_TPL,),
                   applies=(APPLICATION,), location="/mixin/app_tpl/python/",
                   attributes=(AttributeDef("com.example.runtime", default="3.11"),))
    small = Mixin(scheme="http://example.com/templates/platform#", term="small", depends=(platform.RES_TPL,),
                  location="/mixin/res_tpl/small/")
    registry.add(python)
    registry.add(small)
    assert registry.depends_on(python.type_id, platform.APP_TPL)
    assert registry.depends_on(small.type_id, platform.RES_TPL)
    assert registry.applies_to(platform.APP_TPL, APPLICATION) and not registry.applies_to(platform.APP_TPL, COMPONENT)
    assert registry.applies_to(platform.RES_TPL, COMPONENT)
    # the figure's myapp: both templates on one application, the template's attribute among its defaults
    assert registry.attribute_defs(APPLICATION, [small.type_id, python.type_id])["com.example.runtime"].default == "3.11"


@pytest.mark.spec("PLT-11")
@pytest.mark.spec("PLT-16")
@pytest.mark.spec("PLT-17")
@pytest.mark.spec("PLT-18")
def test_database_mixins() -> None:
    database = REGISTRY.mixin(platform.DATABASE)
    assert database.applies == (COMPONENT,)
    (version,) = database.attributes
    assert (version.name, version.type, version.mutable) == ("occi.database.version", "string", False)
    link = REGISTRY.mixin(platform.DATABASELINK)
    assert link.applies == (COMPONENTLINK,)
    assert [(a.name, a.mutable) for a in link.attributes] == [
        ("occi.database.uri", False), ("occi.database.username", False), ("occi.database.token", False)]


@pytest.mark.spec("PLT-10")
def test_componentlink_ends_are_declared() -> None:
    rule = platform.EXTENSION.link_ends[COMPONENTLINK]
    assert (rule.sources, rule.targets, rule.acyclic) == ((APPLICATION, COMPONENT), (COMPONENT,), True)


# --- rendering level --------------------------------------------------------------------------
@pytest.mark.spec("PLT-02")
@pytest.mark.spec("PLT-06")
@pytest.mark.parametrize("media", MEDIA)
def test_every_platform_category_renders_and_parses_back(media: str) -> None:
    check_categories(platform.CATEGORIES, REGISTRY, media)


def platform_entities() -> list[Entity]:
    app = Entity(kind=APPLICATION, entity_id="urn:uuid:" + str(uuid.uuid4()), location="/application/a1",
                 mixins=[],
                 attributes={"occi.app.name": "myapp", "occi.app.context": "git@git.example.com",
                             "occi.app.url": "myapp.example.com", "occi.app.state": "active",
                             "occi.core.title": "my app"},
                 actions=(STOP_APP,))
    db = Entity(kind=COMPONENT, entity_id="db1", location="/component/db1", mixins=[platform.DATABASE],
                attributes={"occi.component.state": "inactive", "occi.database.version": "16.2",
                            "occi.component.state.message": "stopped by the owner"},
                actions=(START_COMP,))
    link = Entity(kind=COMPONENTLINK, entity_id="cl1", location="/componentlink/cl1", mixins=[platform.DATABASELINK],
                  attributes={"occi.core.source": "/application/a1", "occi.core.source.kind": APPLICATION,
                              "occi.core.target": "/component/db1", "occi.core.target.kind": COMPONENT,
                              "occi.database.uri": "postgresql://db1.example.com/app",
                              "occi.database.username": "app", "occi.database.token": "s3cr3t"})
    app = app.evolve(links=(link,))
    return [app, db, link]


@pytest.mark.spec("PLT-03")
@pytest.mark.spec("PLT-04")
@pytest.mark.spec("PLT-07")
@pytest.mark.spec("PLT-18")
@pytest.mark.parametrize("media", MEDIA)
def test_platform_entities_render_and_parse_back(media: str) -> None:
    for entity in platform_entities():
        check_entity(entity, REGISTRY, media)


# --- live server --------------------------------------------------------------------------------
@pytest.mark.spec("PLT-02")
@pytest.mark.spec("PLT-06")
@pytest.mark.spec("PLT-10")
@pytest.mark.parametrize("media", MEDIA)
def test_discovery_lists_the_platform(ext_server: Occi, media: str) -> None:  # noqa: F811
    found = discovered(ext_server.get("/-/", accept=media))
    for category in platform.CATEGORIES:
        assert found.get(category.type_id) == ("kind" if category in platform.EXTENSION.kinds else
                                               "mixin" if category in platform.EXTENSION.mixins else "action")
    model = ext_server.discover()
    assert model.category(APPLICATION)["parent"] == RESOURCE
    assert model.category(COMPONENTLINK)["parent"] == LINK
    assert model.category(platform.DATABASELINK)["applies"] == [COMPONENTLINK]


@pytest.mark.spec("PLT-01")
@pytest.mark.spec("PLT-03")
@pytest.mark.spec("PLT-04")
@pytest.mark.spec("PLT-05")
@pytest.mark.parametrize("media", MEDIA)
def test_application_lifecycle(ext_server: Occi, media: str) -> None:  # noqa: F811
    occi = ext_server
    location = occi.create(APPLICATION, media, attributes={"occi.app.name": f"app-{media.split('/')[1]}"})
    view = occi.view(location, media)
    assert view.kind == APPLICATION
    assert view.attributes["occi.app.state"] == "active"  # GFD.227 diagram: created active (INF-R3)
    assert view.attributes["occi.app.name"].startswith("app-")
    assert view.actions == [STOP_APP]
    assert location in occi.locations("/application/", accept=JSON)
    stopped = occi.invoke(location, STOP_APP, media)
    assert stopped.status_code == 200, stopped.text
    assert attributes_of(occi, location)["occi.app.state"] == "inactive"
    assert occi.view(location, media).actions == [START_APP]
    # stop on an inactive application: not allowed in this state (INF-R1)
    again = occi.invoke(location, STOP_APP, media)
    assert again.status_code == 409, again.text
    assert occi.invoke(location, START_APP, media).status_code == 200
    assert attributes_of(occi, location)["occi.app.state"] == "active"
    assert occi.delete(location).status_code == 200
    assert occi.get(location).status_code == 404


@pytest.mark.spec("PLT-01")
def test_kind_cannot_change(ext_server: Occi) -> None:  # noqa: F811
    location = ext_server.create(APPLICATION, attributes={"occi.app.name": "fixed"})
    response = ext_server.request("POST", location, document={"kind": COMPONENT, "attributes": {}})
    assert response.status_code == 400, response.text


@pytest.mark.spec("PLT-04")
def test_application_needs_a_name(ext_server: Occi) -> None:  # noqa: F811
    response = ext_server.create_response(APPLICATION, attributes={"occi.core.title": "nameless"})
    assert response.status_code == 400
    assert "occi.app.name" in response.text


@pytest.mark.spec("PLT-04")
def test_blank_application_name_is_refused(ext_server: Occi) -> None:  # noqa: F811
    assert ext_server.create_response(APPLICATION, attributes={"occi.app.name": "  "}).status_code == 400


@pytest.mark.spec("PLT-04")
def test_server_sets_context_and_url(ext_server: Occi) -> None:  # noqa: F811
    location = ext_server.create(APPLICATION, attributes={"occi.app.name": "web"})
    attributes = attributes_of(ext_server, location)
    assert "occi.app.context" in attributes and "occi.app.url" in attributes


@pytest.mark.spec("PLT-07")
@pytest.mark.spec("PLT-08")
@pytest.mark.spec("PLT-09")
@pytest.mark.spec("PLT-11")
@pytest.mark.spec("PLT-17")
@pytest.mark.parametrize("media", MEDIA)
def test_component_lifecycle_and_database_link(ext_server: Occi, media: str) -> None:  # noqa: F811
    occi = ext_server
    app = occi.create(APPLICATION, attributes={"occi.app.name": "shop"})
    db = occi.create(COMPONENT, media, mixins=[platform.DATABASE])
    view = occi.view(db, media)
    assert view.kind == COMPONENT and view.mixins == [platform.DATABASE]
    assert view.attributes["occi.component.state"] == "active"
    link = occi.link(COMPONENTLINK, app, db, media, mixins=[platform.DATABASELINK])
    assert occi.view(link, media).kind == COMPONENTLINK
    assert any(entry["kind"] == COMPONENTLINK for entry in occi.view(app, media).links)
    assert occi.invoke(db, START_COMP, media).status_code == 409  # already active
    assert occi.invoke(db, STOP_COMP, media).status_code == 200
    assert attributes_of(occi, db)["occi.component.state"] == "inactive"
    assert link in occi.locations("/componentlink/", accept=JSON)
    assert occi.delete(db).status_code == 200
    assert occi.get(link).status_code == 404  # links to a deleted resource go with it
    assert occi.delete(app).status_code == 200


@pytest.mark.spec("PLT-01")
def test_state_is_managed_by_the_server(ext_server: Occi) -> None:  # noqa: F811
    location = ext_server.create(COMPONENT, attributes={"occi.component.state": "error"})
    assert attributes_of(ext_server, location)["occi.component.state"] == "active"
    response = ext_server.request("POST", location, document={"kind": COMPONENT,
                                                              "attributes": {"occi.component.state": "inactive"}})
    assert response.status_code == 403, response.text  # D-IMMUTABLE


@pytest.mark.spec("PLT-10")
def test_componentlink_to_an_application_is_refused(ext_server: Occi) -> None:  # noqa: F811
    a = ext_server.create(APPLICATION, attributes={"occi.app.name": "a"})
    b = ext_server.create(APPLICATION, attributes={"occi.app.name": "b"})
    response = ext_server.create_response(COMPONENTLINK, attributes={"occi.core.source": a, "occi.core.target": b})
    assert response.status_code == 400


@pytest.mark.spec("PLT-10")
def test_componentlink_cycle_is_refused(ext_server: Occi) -> None:  # noqa: F811
    a = ext_server.create(COMPONENT)
    b = ext_server.create(COMPONENT)
    ext_server.link(COMPONENTLINK, a, b)
    response = ext_server.create_response(COMPONENTLINK, attributes={"occi.core.source": b, "occi.core.target": a})
    assert response.status_code == 400

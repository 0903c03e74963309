"""occipy.model.extensions.platform: GFD.227 categories, state model, checks and link ends."""

from __future__ import annotations

import pytest

from occipy.errors import ActionNotAllowed, InvalidAttribute
from occipy.model import state
from occipy.model.catalogue import COMPUTE
from occipy.model.extensions import ExtensionSet, platform
from occipy.model.registry import LINK, RESOURCE
from occipy.model.standard import standard_registry

REGISTRY = standard_registry()
PLATFORM = ExtensionSet((platform.EXTENSION,))
START_APP = platform.APPLICATION_ACTION + "start"
STOP_APP = platform.APPLICATION_ACTION + "stop"
START_COMPONENT = platform.COMPONENT_ACTION + "start"
STOP_COMPONENT = platform.COMPONENT_ACTION + "stop"


def test_kinds_parents_locations_and_actions() -> None:
    application = REGISTRY.kind(platform.APPLICATION)
    component = REGISTRY.kind(platform.COMPONENT)
    link = REGISTRY.kind(platform.COMPONENTLINK)
    assert (application.parent, application.location) == (RESOURCE, "/application/")
    assert (component.parent, component.location) == (RESOURCE, "/component/")
    assert (link.parent, link.location) == (LINK, "/componentlink/")
    assert application.actions == (START_APP, STOP_APP)
    assert component.actions == (START_COMPONENT, STOP_COMPONENT)
    assert link.actions == () and link.attributes == ()


def test_application_attributes_follow_the_digest() -> None:
    defs = REGISTRY.kind_attribute_defs(platform.APPLICATION)
    assert defs["occi.app.name"].required and defs["occi.app.name"].mutable
    for name in ("occi.app.context", "occi.app.url", "occi.app.state", "occi.app.state.message"):
        assert not defs[name].mutable, name
        assert not defs[name].required, name
    assert defs["occi.app.state"].pattern is not None
    assert defs["occi.app.state"].pattern["enum"] == ["active", "inactive", "error"]
    # platform.md §2: scheme-less URLs of the spec's own figure are accepted
    assert defs["occi.app.context"].check("git@git.example.com") == "git@git.example.com"
    assert defs["occi.app.url"].check("myapp.example.com") == "myapp.example.com"


def test_mixins_apply_where_the_digest_says() -> None:
    assert REGISTRY.mixin(platform.APP_TPL).applies == (platform.APPLICATION,)
    assert REGISTRY.mixin(platform.RES_TPL).applies == (platform.APPLICATION, platform.COMPONENT)
    assert REGISTRY.mixin(platform.DATABASE).applies == (platform.COMPONENT,)
    # spec, not MoDMaCAO's bug: databaselink applies to componentlink
    assert REGISTRY.mixin(platform.DATABASELINK).applies == (platform.COMPONENTLINK,)
    assert [a.name for a in REGISTRY.mixin(platform.DATABASE).attributes] == ["occi.database.version"]
    link_attrs = {a.name: a for a in REGISTRY.mixin(platform.DATABASELINK).attributes}
    assert set(link_attrs) == {"occi.database.uri", "occi.database.username", "occi.database.token"}
    assert all(not a.mutable for a in link_attrs.values())
    # "URI (sic)" on username/token is a copy error: plain strings
    assert link_attrs["occi.database.username"].check("admin") == "admin"


@pytest.mark.parametrize(("kind", "start", "stop"), [
    (platform.APPLICATION, START_APP, STOP_APP),
    (platform.COMPONENT, START_COMPONENT, STOP_COMPONENT),
])
def test_state_model(kind: str, start: str, stop: str) -> None:
    assert state.INITIAL_STATE[kind] == "active"
    assert state.next_state(kind, "active", stop) == "inactive"
    assert state.next_state(kind, "inactive", start) == "active"
    for current, action in (("active", start), ("inactive", stop), ("error", start), ("error", stop)):
        with pytest.raises(ActionNotAllowed):
            state.next_state(kind, current, action)
    assert state.available_actions(kind, "active", (start, stop)) == (stop,)
    assert state.available_actions(kind, "inactive", (start, stop)) == (start,)
    assert state.available_actions(kind, "error", (start, stop)) == ()


def test_blank_application_name_is_refused() -> None:
    with pytest.raises(InvalidAttribute, match="occi.app.name"):
        PLATFORM.validate(platform.APPLICATION, (), {"occi.app.name": "   "}, REGISTRY)
    PLATFORM.validate(platform.APPLICATION, (), {"occi.app.name": "myapp"}, REGISTRY)
    PLATFORM.validate(platform.COMPONENT, (), {}, REGISTRY)
    PLATFORM.validate("http://example.com/unknown#kind", (), {}, REGISTRY)


@pytest.mark.parametrize(("source", "target", "ok"), [
    (platform.APPLICATION, platform.COMPONENT, True),
    (platform.COMPONENT, platform.COMPONENT, True),
    (platform.COMPONENT, platform.APPLICATION, False),
    (COMPUTE, platform.COMPONENT, False),
    (platform.APPLICATION, COMPUTE, False),
])
def test_componentlink_ends(source: str, target: str, ok: bool) -> None:
    if ok:
        PLATFORM.check_link(REGISTRY, platform.COMPONENTLINK, source, target)
    else:
        with pytest.raises(InvalidAttribute):
            PLATFORM.check_link(REGISTRY, platform.COMPONENTLINK, source, target)


def test_componentlinks_stay_acyclic() -> None:
    edges = [("/application/a", "/component/web"), ("/component/web", "/component/db")]
    PLATFORM.check_link(REGISTRY, platform.COMPONENTLINK, platform.COMPONENT, platform.COMPONENT,
                        edges=edges, source="/component/web", target="/component/cache")
    with pytest.raises(InvalidAttribute, match="cycle"):
        PLATFORM.check_link(REGISTRY, platform.COMPONENTLINK, platform.COMPONENT, platform.COMPONENT,
                            edges=edges, source="/component/db", target="/component/web")
    with pytest.raises(InvalidAttribute, match="cycle"):
        PLATFORM.check_link(REGISTRY, platform.COMPONENTLINK, platform.COMPONENT, platform.COMPONENT,
                            edges=edges, source="/component/db", target="/component/db")


def test_every_platform_category_needs_a_platform_backend() -> None:
    assert set(platform.EXTENSION.needs) == {c.type_id for c in platform.CATEGORIES if c.scheme == platform.PLATFORM}
    assert all(f.value == "platform" for f in platform.EXTENSION.needs.values())

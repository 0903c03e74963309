"""Shared checks of the extension checklists (PLT-*, SLA-*, MON-*, EGI): rendering round trips, a server.

Every category an extension adds is rendered by the project's renderers in text/plain, text/occi
and JSON and parsed back; JSON is validated against occi-1.2.schema.json. Entities of the new
kinds go the same way. `ext_server` is a module-scoped live server (the simulated cloud), so the
entities these suites create never show up in the other suites' listings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from occipy.model.category import Action, AttributeValue, Category, Kind, Mixin
from occipy.model.entity import Entity
from occipy.model.registry import Registry
from occipy.rendering import json as oj
from occipy.rendering import text
from occipy.rendering.messages import CategoryDefinition, EntityMessage
from tests.conformance.conftest import JSON, OCCI, PLAIN, Occi, validate
from tests.integration.conftest import start_server

MEDIA = (PLAIN, OCCI, JSON)


def render_and_parse_categories(categories: Sequence[Category], registry: Registry,
                                media: str) -> list[CategoryDefinition]:
    """The query-interface rendering of `categories` in `media`, parsed back by the project's parser."""
    if media == JSON:
        body = oj.render_categories(categories, registry)
        validate(json.loads(body), "query_interface")
        return oj.parse_query_interface(body)
    fields = text.render_categories(categories, registry)
    if media == PLAIN:
        parsed = text.fields_from_body(text.body_from_fields(fields))
    else:
        parsed = text.fields_from_headers(text.headers_from_fields(fields))
    return text.parse_categories(parsed)


def assert_category_survives(category: Category, parsed: CategoryDefinition, registry: Registry, media: str) -> None:
    """What the rendering carries of a category came back unchanged."""
    assert parsed.type_id == category.type_id
    assert parsed.title == category.title
    if isinstance(category, Action):
        assert parsed.cls == "action"
        assert [a.name for a in parsed.attributes] == [a.name for a in category.attributes]
        return
    assert parsed.location == category.location
    assert parsed.actions == category.actions
    if isinstance(category, Kind):
        assert parsed.cls == "kind"
        assert parsed.rel == ((category.parent,) if category.parent else ())
        expected = list(registry.kind_attribute_defs(category.type_id).values())
    else:
        assert isinstance(category, Mixin)
        assert parsed.cls == "mixin"
        # text carries only the first `depends` (GFD.229 §5.5.2) and no `applies`
        assert parsed.rel == (category.depends if media == JSON else category.depends[:1])
        if media == JSON:
            assert parsed.applies == category.applies
        expected = list(category.attributes)
    got = {a.name: a for a in parsed.attributes}
    assert list(got) == [a.name for a in expected]
    for adef in expected:
        assert (got[adef.name].mutable, got[adef.name].required) == (adef.mutable, adef.required), adef.name
        if media == JSON:
            # JSON carries the whole definition
            assert got[adef.name].type == adef.type, adef.name
            assert got[adef.name].default == adef.default, adef.name
            assert dict(got[adef.name].pattern or {}) == dict(adef.pattern or {}), adef.name


def check_categories(categories: Sequence[Category], registry: Registry, media: str) -> None:
    parsed = render_and_parse_categories(categories, registry, media)
    by_id = {p.type_id: p for p in parsed}
    assert len(by_id) == len(categories)
    for category in categories:
        assert_category_survives(category, by_id[category.type_id], registry, media)


def render_and_parse_entity(entity: Entity, registry: Registry, media: str) -> EntityMessage:
    """An entity rendering in `media`, parsed back; JSON validated as a resource or a link."""
    if media == JSON:
        body = oj.render_entity(entity)
        validate(json.loads(body), "link" if registry.is_link_kind(entity.kind) else "resource")
        return oj.parse_entity(body)
    fields = text.render_entity(entity)
    if media == PLAIN:
        parsed = text.fields_from_body(text.body_from_fields(fields))
    else:
        parsed = text.fields_from_headers(text.headers_from_fields(fields))
    return text.parse_entity(parsed)


def check_entity(entity: Entity, registry: Registry, media: str) -> None:
    message = render_and_parse_entity(entity, registry, media)
    assert message.kind == entity.kind
    assert tuple(message.mixins) == tuple(entity.mixins)
    defs = registry.attribute_defs(entity.kind, entity.mixins)
    got: dict[str, AttributeValue] = {}
    for name, value in message.attributes.items():
        adef = defs.get(name)
        got[name] = adef.check(value, lenient=message.lenient) if adef is not None else value
    # The kinds of a link's ends are rendered for the reader; parsers keep what a request can say.
    expected = {k: v for k, v in entity.attributes.items() if k not in ("occi.core.source.kind", "occi.core.target.kind")}
    expected["occi.core.id"] = entity.entity_id
    for name, value in expected.items():
        assert got.get(name) == value, (name, got.get(name), value)
    extra = set(got) - {"occi.core.source.kind", "occi.core.target.kind"} - set(expected)
    assert not extra, extra


@pytest.fixture(scope="module")
def ext_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Occi]:
    """A live server of the module's own (simulated cloud, no delay)."""
    server = start_server(Path(tmp_path_factory.mktemp("extensions")))
    client = Occi(server.url)
    yield client
    client.close()
    server.stop()


def attributes_of(occi: Occi, location: str, media: str = JSON) -> dict[str, Any]:
    return occi.view(location, media).attributes

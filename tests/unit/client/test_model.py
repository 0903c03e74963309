"""The SDK's model: a `Registry` built from discovery and the same rules as the server.

The regression at the heart of issue 7: the SDK used to re-implement attribute resolution and
disagreed with the server on flag precedence; now both call `Registry.attribute_defs` and
`occipy.model.rules`."""

from __future__ import annotations

import httpx
import pytest

from occipy import errors
from occipy.client import Client
from occipy.client._model import Model
from occipy.model.catalogue import COMPUTE, RESOURCE
from occipy.model.category import AttributeDef, strict_term
from occipy.model.standard import standard_registry
from occipy.rendering.messages import CategoryDefinition

from .fake import BASE, JSON_T, PLAIN_T, FakeServer
from .test_recorded_occi11 import BASE as OLD_BASE
from .test_recorded_occi11 import CATEGORIES_OK, recorded_response

EX = "http://example.com/occi#"
THING = EX + "thing"
BASE_MIXIN, TOP = EX + "base", EX + "top"


def _definitions() -> list[CategoryDefinition]:
    """A provider whose mixin `top` depends on `base`; both define com.example.mode."""
    return [
        CategoryDefinition(EX, "thing", "kind", rel=(RESOURCE,), location="/thing/"),
        CategoryDefinition(EX, "base", "mixin", location="/base/", attributes=(
            AttributeDef("com.example.mode", mutable=False, required=True),)),
        CategoryDefinition(EX, "top", "mixin", location="/top/", rel=(BASE_MIXIN,), attributes=(
            AttributeDef("com.example.mode", mutable=True, required=False),)),
    ]


@pytest.mark.parametrize("typed", [True, False])
def test_sdk_and_server_agree_on_flag_precedence(typed: bool) -> None:
    """A mixin's definition beats that of the mixin it depends on (core.md §2.8, §8 order).

    The SDK's old copy walked the depends closure backwards and took `base`'s flags, so it
    refused `com.example.mode` on an entity with `top` (ImmutableAttribute) while the server
    accepted it; here the SDK model over discovery and the server's own registry agree.
    """
    definitions = _definitions()
    model = Model.from_definitions(definitions, typed=typed)
    server = standard_registry()
    for definition in definitions:
        server.add(definition.to_category())
    # the discovery here lists no Core kinds, so compare the provider's own attribute
    assert model.attribute_defs(THING, [TOP])["com.example.mode"] == server.attribute_defs(THING, [TOP])[
        "com.example.mode"]
    mode = model.attribute_defs(THING, [TOP])["com.example.mode"]
    assert (mode.mutable, mode.required) == (True, False)
    assert model.check_attributes(THING, [TOP], {"com.example.mode": "x"}, creating=True) == {"com.example.mode": "x"}
    with pytest.raises(errors.ImmutableAttribute):
        model.check_attributes(THING, [BASE_MIXIN], {"com.example.mode": "x"}, creating=True)


def test_discovery_with_dangling_references_still_works() -> None:
    # The provider never lists core#resource or core#entity, lists `thing` twice and names a rel
    # it never defines: the SDK copes (Registry.from_discovery) instead of failing.
    definitions = [*_definitions(), CategoryDefinition(EX, "thing", "kind", location="/again/"),
                   CategoryDefinition(EX, "tag", "mixin", rel=(EX + "nowhere",), location="/tag/")]
    model = Model.from_definitions(definitions, typed=False)
    assert model.ancestors(THING) == (THING, RESOURCE)
    assert model.kinds[THING].location == "/thing/"
    assert model.depends_closure([EX + "tag"]) == [EX + "tag", EX + "nowhere"]
    assert model.attribute_defs(EX + "unknown") == {}
    assert model.registry.discovery_notes


def test_the_sdk_refuses_out_of_range_values_before_sending() -> None:
    server = FakeServer(offers=(JSON_T,))
    with Client(BASE, transport=httpx.MockTransport(server)) as occi:
        occi.discover()
        sent = len(server.requests)
        with pytest.raises(errors.InvalidAttribute, match="occi.compute.memory"):
            occi.create("compute", attributes={"occi.compute.memory": -1})
        with pytest.raises(errors.InvalidAttribute, match="occi.compute.cores"):
            occi.create("compute", attributes={"occi.compute.cores": 1e308})
        assert len(server.requests) == sent  # nothing went to the server
        assert occi.model.check_attributes(COMPUTE, [], {"occi.compute.speed": 2.4}, creating=True) == {
            "occi.compute.speed": 2.4}


def test_text_discovery_checks_names_and_mutability_only() -> None:
    server = FakeServer(offers=(PLAIN_T,))
    with Client(BASE, transport=httpx.MockTransport(server)) as occi:
        model = occi.model
        assert not model.typed
        # no types in text discovery: a value of any JSON type passes, the name must exist
        assert model.check_attributes(COMPUTE, [], {"occi.compute.memory": "2"}, creating=True) == {
            "occi.compute.memory": "2"}
        with pytest.raises(errors.InvalidAttribute, match="not defined"):
            model.check_attributes(COMPUTE, [], {"occi.compute.colour": "red"}, creating=True)


def test_a_provider_name_finds_its_strict_term() -> None:
    term = strict_term("ubuntu-24.04")
    model = Model.from_definitions([
        CategoryDefinition(EX, "thing", "kind", rel=(RESOURCE,), location="/thing/"),
        CategoryDefinition("http://p/os_tpl#", term, "mixin", title="Ubuntu 24.04", location="/u/"),
    ], typed=True)
    assert model.mixin("ubuntu-24.04").term == term
    assert model.mixin("os_tpl#ubuntu-24.04").term == term
    assert model.mixin(term).term == term


def test_an_entity_rendered_without_class_is_read_with_the_model() -> None:
    """A 1.1 server may render `Category: compute; scheme=...` without class: the SDK's model tells
    the kind from the mixins (`rules.classify_categories`); an unknown category is a ParseError."""
    body = {"/compute/1": 'Category: compute; scheme="http://schemas.ogf.org/occi/infrastructure#"\n'
                          'X-OCCI-Attribute: occi.core.id="1"\n',
            "/compute/2": 'Category: nothing; scheme="http://example.com/x#"\n'}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/-/":
            return recorded_response(CATEGORIES_OK, "text/plain")
        return httpx.Response(200, text=body[request.url.path], headers={"Content-Type": "text/plain"})

    with Client(OLD_BASE, transport=httpx.MockTransport(handler)) as occi:
        entity = occi.get("/compute/1")
        assert (entity.kind, entity.mixins, entity.entity_id) == (COMPUTE, (), "1")
        with pytest.raises(errors.ParseError, match="unknown category"):
            occi.get("/compute/2")

"""Reading request payloads by Content-Type (http-protocol.md §2 "Request payloads").

text/occi reads the OCCI headers; text/plain the body (or, for 1.1 clients that send headers
with an empty body, the headers); JSON the body. No Content-Type, or the form type curl sends by
default: OCCI headers if there are any, else the body as text/plain.
"""

from __future__ import annotations

from dataclasses import replace

from occipy.errors import BadRequest
from occipy.model import rules
from occipy.model.registry import Registry
from occipy.rendering import json as json_rendering
from occipy.rendering import negotiate, text, urilist
from occipy.rendering.messages import ActionInvocation, CategoryDefinition, EntityMessage, Filter
from occipy.service.messages import OcciRequest

OCCI_HEADERS = frozenset({"category", "link", "x-occi-attribute", "x-occi-location", "x-occi-category", "x-occi-link"})


def _has_occi_headers(request: OcciRequest) -> bool:
    return any(name in OCCI_HEADERS for name, _ in request.headers)


def media_type(request: OcciRequest) -> str:
    """The rendering to parse the payload with: a negotiate.* constant (415 if unsupported)."""
    declared = negotiate.request_type(request.header("content-type"))
    if declared is not None:
        return declared
    if _has_occi_headers(request):
        return negotiate.TEXT_OCCI
    return negotiate.TEXT_PLAIN


def text_fields(request: OcciRequest, media: str) -> list[tuple[str, str]]:
    if media == negotiate.TEXT_OCCI:
        return text.fields_from_headers(request.headers)
    if not request.body.strip() and _has_occi_headers(request):
        return text.fields_from_headers(request.headers)
    return text.fields_from_body(request.body)


def _no_uri_list(media: str, what: str) -> None:
    if media == negotiate.URI_LIST:
        raise BadRequest(f"text/uri-list can only carry locations, not {what}")


def classified(message: EntityMessage, registry: Registry) -> EntityMessage:
    """The message with its class-less categories (OCCI 1.1 requests) resolved against the
    registry into its kind and mixins (`rules.classify_categories`)."""
    if not message.unclassified:
        return message
    kind, mixins = rules.classify_categories(registry, message.kind, message.mixins, message.unclassified)
    return replace(message, kind=kind, mixins=mixins, unclassified=())


def entities(request: OcciRequest, registry: Registry) -> list[EntityMessage]:
    """One or more entity renderings (create requests)."""
    media = media_type(request)
    _no_uri_list(media, "an entity rendering")
    if negotiate.is_json(media):
        return json_rendering.parse_entities(request.body)
    return [classified(text.parse_entity(text_fields(request, media)), registry)]


def entity(request: OcciRequest, registry: Registry) -> EntityMessage:
    """Exactly one entity rendering (updates, PUT)."""
    media = media_type(request)
    _no_uri_list(media, "an entity rendering")
    if negotiate.is_json(media):
        return json_rendering.parse_entity(request.body)
    return classified(text.parse_entity(text_fields(request, media)), registry)


def action(request: OcciRequest) -> ActionInvocation:
    media = media_type(request)
    _no_uri_list(media, "an action invocation")
    if negotiate.is_json(media):
        if not request.body.strip():
            return ActionInvocation()
        return json_rendering.parse_action(request.body)
    return text.parse_action(text_fields(request, media))


def mixin_definitions(request: OcciRequest, *, require_class: bool) -> list[CategoryDefinition]:
    media = media_type(request)
    _no_uri_list(media, "category renderings")
    if negotiate.is_json(media):
        return json_rendering.parse_mixin_definitions(request.body)
    return text.parse_categories(text_fields(request, media), require_class=require_class)


def locations(request: OcciRequest) -> list[str]:
    """An entity collection naming entities (mixin association bodies)."""
    media = media_type(request)
    if media == negotiate.URI_LIST:
        return urilist.parse(request.body)
    if negotiate.is_json(media):
        if not request.body.strip():
            return []
        return json_rendering.parse_locations(request.body)
    return text.parse_locations(text_fields(request, media))


def filters(request: OcciRequest) -> Filter:
    """GET filters: `Category` and `X-OCCI-Attribute` request headers (GFD.223 §7), any Content-Type."""
    if not _has_occi_headers(request):
        return Filter()
    return text.parse_filter(text.fields_from_headers(request.headers))

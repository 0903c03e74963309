"""Request bodies and query strings parsed once, into the typed message of their endpoint.

The body is read by Content-Type (http-protocol.md §2 "Request payloads"): text/occi reads the
OCCI headers; text/plain the body (or, for 1.1 clients that send headers with an empty body, the
headers); JSON the body. No Content-Type, or the form type curl sends by default: OCCI headers if
there are any, else the body as text/plain. Every parser here returns a frozen message or raises
a 4xx OcciError; handlers never see the raw request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote

import msgspec

from occipy.errors import BadRequest
from occipy.model import rules
from occipy.model.registry import Registry
from occipy.rendering import json as json_rendering
from occipy.rendering import negotiate, text, urilist
from occipy.rendering.messages import ActionInvocation, CategoryDefinition, EntityMessage, Filter
from occipy.service.messages import OcciRequest

OCCI_HEADERS: Final = frozenset(
    {"category", "link", "x-occi-attribute", "x-occi-location", "x-occi-category", "x-occi-link"})
_DIGITS = re.compile(r"[0-9]{1,4000}\Z")
_HUGE: Final = 10**18


# ---- messages ---------------------------------------------------------------------------------------


class NoBody(msgspec.Struct, frozen=True):
    """Endpoints that read nothing from the request (GET of an entity, DELETE of an entity)."""


class Entities(msgspec.Struct, frozen=True):
    """One or more entity renderings to create (POST to a Kind collection or to `/`)."""

    items: tuple[EntityMessage, ...]


class OneEntity(msgspec.Struct, frozen=True):
    """Exactly one entity rendering (PUT, partial update by POST)."""

    item: EntityMessage


class Invocation(msgspec.Struct, frozen=True):
    """`?action=term` with its invocation rendering."""

    term: str
    invocation: ActionInvocation


class Locations(msgspec.Struct, frozen=True):
    """Entities named by location (mixin-collection membership); `given` False without a payload."""

    items: tuple[str, ...]
    given: bool = True


class Definitions(msgspec.Struct, frozen=True):
    """Category renderings sent to the query interface (define or remove user mixins)."""

    items: tuple[CategoryDefinition, ...]


class Page(msgspec.Struct, frozen=True):
    """GFD.223 §6: `page` and `number`, 1-based; `number` None means no pagination."""

    page: int = 1
    number: int | None = None


class Listing(msgspec.Struct, frozen=True):
    """A GET on a collection or the query interface: filters and the page asked for."""

    filter: Filter = msgspec.field(default_factory=Filter)
    attributes: Mapping[str, Any] = msgspec.field(default_factory=dict)
    category: str | None = None  # `?category=` (a type id or a bare term)
    page: Page = Page()


Message = NoBody | Entities | OneEntity | Invocation | Locations | Definitions | Listing


# ---- helpers ------------------------------------------------------------------------------------------


def has_occi_headers(request: OcciRequest) -> bool:
    return any(name in OCCI_HEADERS for name, _ in request.headers)


def has_payload(request: OcciRequest) -> bool:
    return bool(request.body.strip()) or has_occi_headers(request)


def media_type(request: OcciRequest) -> str:
    """The rendering to parse the payload with: a negotiate.* constant (415 if unsupported)."""
    declared = negotiate.request_type(request.header("content-type"))
    if declared is not None:
        return declared
    if has_occi_headers(request):
        return negotiate.TEXT_OCCI
    return negotiate.TEXT_PLAIN


def _text_fields(request: OcciRequest, media: str) -> list[tuple[str, str]]:
    if media == negotiate.TEXT_OCCI:
        return text.fields_from_headers(request.headers)
    if not request.body.strip() and has_occi_headers(request):
        return text.fields_from_headers(request.headers)
    return text.fields_from_body(request.body)


def _no_uri_list(media: str, what: str) -> None:
    if media == negotiate.URI_LIST:
        raise BadRequest(f"text/uri-list can only carry locations, not {what}")


def classified(message: EntityMessage, registry: Registry) -> EntityMessage:
    """The message with its class-less categories (OCCI 1.1 requests, D-CLASSLESS) resolved
    against the registry into its kind and mixins (`rules.classify_categories`)."""
    if not message.unclassified:
        return message
    kind, mixins = rules.classify_categories(registry, message.kind, message.mixins, message.unclassified)
    return msgspec.structs.replace(message, kind=kind, mixins=mixins, unclassified=())


# ---- parsers, one per endpoint shape ----------------------------------------------------------------


def no_body(request: OcciRequest, registry: Registry) -> NoBody:
    return NoBody()


def entities(request: OcciRequest, registry: Registry) -> Entities:
    media = media_type(request)
    _no_uri_list(media, "an entity rendering")
    if negotiate.is_json(media):
        return Entities(tuple(json_rendering.parse_entities(request.body)))
    return Entities((classified(text.parse_entity(_text_fields(request, media)), registry),))


def one_entity(request: OcciRequest, registry: Registry) -> OneEntity:
    media = media_type(request)
    _no_uri_list(media, "an entity rendering")
    if negotiate.is_json(media):
        return OneEntity(json_rendering.parse_entity(request.body))
    return OneEntity(classified(text.parse_entity(_text_fields(request, media)), registry))


def invocation(request: OcciRequest, registry: Registry) -> Invocation:
    term = request.query.get("action", "")
    if not term:
        raise BadRequest("?action= needs the term of an action")
    media = media_type(request)
    _no_uri_list(media, "an action invocation")
    if negotiate.is_json(media):
        if not request.body.strip():
            return Invocation(term, ActionInvocation())
        return Invocation(term, json_rendering.parse_action(request.body))
    return Invocation(term, text.parse_action(_text_fields(request, media)))


def locations(request: OcciRequest, registry: Registry) -> Locations:
    """An entity collection naming entities (mixin association bodies); empty without a payload."""
    if not has_payload(request):
        return Locations((), given=False)
    media = media_type(request)
    if media == negotiate.URI_LIST:
        return Locations(tuple(urilist.parse(request.body)))
    if negotiate.is_json(media):
        if not request.body.strip():
            return Locations(())
        return Locations(tuple(json_rendering.parse_locations(request.body)))
    return Locations(tuple(text.parse_locations(_text_fields(request, media))))


def definitions(request: OcciRequest, registry: Registry) -> Definitions:
    """User mixin definitions (POST /-/): class is required in text, as GFD.229 renders it."""
    media = media_type(request)
    _no_uri_list(media, "category renderings")
    if negotiate.is_json(media):
        return Definitions(tuple(json_rendering.parse_mixin_definitions(request.body)))
    return Definitions(tuple(text.parse_categories(_text_fields(request, media), require_class=False)))


def removals(request: OcciRequest, registry: Registry) -> Definitions:
    """Mixins to remove (DELETE /-/): a Category rendering or `?category=`."""
    found: list[CategoryDefinition] = []
    if has_payload(request):
        found.extend(definitions(request, registry).items)
    raw = request.query.get("category")
    if raw:
        try:
            found.append(CategoryDefinition.from_type_id(unquote(raw)))
        except BadRequest:
            raise BadRequest(f"?category= needs a type identifier (scheme#term), not {raw!r}") from None
    return Definitions(tuple(found))


def page_of(query: Mapping[str, str]) -> Page:
    """GFD.223 §6: `page` and `number` together, positive integers (any number of digits)."""
    page, number = query.get("page"), query.get("number")
    if page is None and number is None:
        return Page()
    if page is None or number is None:
        raise BadRequest("pagination needs both page and number")
    if not _DIGITS.match(page) or not _DIGITS.match(number) or int(page) < 1 or int(number) < 1:
        raise BadRequest("page and number must be positive integers")
    # Past any collection is an empty page (style.md), and a page size past the limit is 413
    # (the handler knows the limit): clamp what no store can hold anyway.
    return Page(page=min(int(page), _HUGE), number=min(int(number), _HUGE))


def filters(request: OcciRequest) -> Filter:
    """GET filters: `Category` and `X-OCCI-Attribute` request headers (GFD.223 §7), any Content-Type."""
    if not has_occi_headers(request):
        return Filter()
    return text.parse_filter(text.fields_from_headers(request.headers))


def listing(request: OcciRequest, registry: Registry) -> Listing:
    """A collection GET: header filters, `?attribute=&value=`, `?category=` and the page."""
    wanted = filters(request)
    values: dict[str, Any] = dict(wanted.attributes)
    name, value = request.query.get("attribute"), request.query.get("value")
    if name is not None:
        if value is None:
            raise BadRequest("the attribute filter needs a value")
        values[unquote(name)] = unquote(value)
    raw = request.query.get("category")
    return Listing(filter=wanted, attributes=values, category=unquote(raw) if raw else None,
                   page=page_of(request.query))


def discovery(request: OcciRequest, registry: Registry) -> Listing:
    """GET /-/: category filters by header or `?category=`."""
    raw = request.query.get("category")
    return Listing(filter=filters(request), category=unquote(raw) if raw else None)

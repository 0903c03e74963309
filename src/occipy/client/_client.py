"""`Client` and `AsyncClient`: the OCCI operations of GFD.223 over httpx, sync and async.

The protocol logic lives once, in `_Operations`, as generators that yield requests (sans-IO,
see `_wait.py`); the two clients only run them on `httpx.Client` / `httpx.AsyncClient`. The
model comes from the query interface on first use; requests and answers go through the
project's own renderings (`occipy.rendering.json`, `.text`, `.urilist`). Imports httpx, anyio,
`occipy.model`, `occipy.rendering` and `occipy.errors`; never the server side.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import anyio
import httpx
import msgspec

from occipy import __version__, errors
from occipy.client import _events, _stream
from occipy.client._auth import Auth, ClientCertificate, httpx_auth, tls_verify
from occipy.client._events import EventQuery, ServerEvent, SSEDecoder
from occipy.client._model import Model
from occipy.client._wait import Op, OperationStatus, Progress, Request, Sleep, follow
from occipy.model import rules
from occipy.model.category import TERM_RE, AttributeValue, Kind, Mixin
from occipy.model.entity import Entity
from occipy.model.registry import LINK
from occipy.rendering import json as occi_json
from occipy.rendering import text, urilist
from occipy.rendering.messages import ActionInvocation, CategoryDefinition, EntityMessage, LinkMessage
from occipy.rendering.negotiate import JSON, OCCI_JSON, TEXT_OCCI, TEXT_OCCI_PLAIN, TEXT_PLAIN, URI_LIST

__all__ = ["AsyncClient", "Client", "LinkSpec", "ServerUnreachable"]

T = TypeVar("T")

USER_AGENT = f"occipy/{__version__} OCCI/1.2"
OPERATION_HEADER = "X-OCCI-Operation"
_MEDIA_ALIASES = {
    "json": OCCI_JSON, OCCI_JSON: OCCI_JSON, JSON: OCCI_JSON,
    "text": TEXT_PLAIN, "plain": TEXT_PLAIN, TEXT_PLAIN: TEXT_PLAIN, TEXT_OCCI_PLAIN: TEXT_PLAIN,
    "occi": TEXT_OCCI, "header": TEXT_OCCI, TEXT_OCCI: TEXT_OCCI,
}
_TEXT_TYPES = frozenset({TEXT_PLAIN, TEXT_OCCI_PLAIN, TEXT_OCCI, ""})
_JSON_TYPES = frozenset({OCCI_JSON, JSON})
_KIND_CLASS = re.compile(r';\s*class\s*=\s*"?kind"?\s*(;|$)')


class ServerUnreachable(errors.BackendUnavailable):
    """The server could not be reached at all (connection refused, DNS, TLS, timeout); client side."""


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """A link to create together with its source resource (GFD.185 §3.4.5 inline creation).

    `kind` defaults from the target's kind (storage -> storagelink, network -> networkinterface,
    anything else -> core link); `target_kind` is found from the target's location when local.
    """

    target: str
    kind: str | None = None
    target_kind: str | None = None
    mixins: Sequence[str] = ()
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)


def _media_of(response: httpx.Response) -> str:
    value: str = response.headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower()


def _error_message(response: httpx.Response) -> str:
    """The server's message: JSON `{"code", "message"}` (or rOCCI's `{"status", "error"}`),
    the text/occi `X-OCCI-Error` header, or the text body (http-protocol.md §5.3)."""
    header: str | None = response.headers.get("x-occi-error")
    if header:
        return header.strip()
    body = response.content
    if _media_of(response) in _JSON_TYPES or body[:1] == b"{":
        try:
            data = msgspec.json.decode(body)
        except msgspec.DecodeError:
            data = None
        if isinstance(data, dict):
            for key in ("message", "error", "description"):
                if isinstance(data.get(key), str) and data[key]:
                    return str(data[key])
    textual = body.decode("utf-8", "replace").strip()
    if textual and textual != "OK" and not textual.lstrip().startswith("<"):
        return " ".join(textual.split())[:500]
    return f"{response.status_code} {response.reason_phrase}".strip()


def _raise_for_status(response: httpx.Response) -> None:
    """Map an error status back to the OcciError class the server raised (errors.HTTP_STATUS)."""
    status = response.status_code
    if status < 400:
        return
    message = _error_message(response)
    cls = errors.error_for_status(status)
    if cls is errors.MethodNotAllowed:
        allowed = [m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()]
        raise errors.MethodNotAllowed(message, allowed)
    if cls is errors.Unauthorized:
        raise errors.Unauthorized(message, response.headers.get_list("www-authenticate"))
    raise cls(message)


class _Operations:
    """Every SDK operation as a generator of requests: the protocol, once, for both clients."""

    def __init__(self, endpoint: str, *, media_type: str | None, validate: bool, page_size: int) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise errors.BadRequest(f"the endpoint must be an http:// or https:// URL, not {endpoint!r}")
        self.endpoint = endpoint if endpoint.endswith("/") else endpoint + "/"
        parts = urlsplit(self.endpoint)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        if media_type is not None and media_type.lower() not in _MEDIA_ALIASES:
            raise errors.BadRequest(f"unknown media type {media_type!r}: use json, text or occi")
        self.forced = _MEDIA_ALIASES[media_type.lower()] if media_type else None
        self.media: str | None = self.forced
        self.validate = validate
        self.page_size = page_size
        self.model: Model | None = None
        self.operations: dict[str, str] = {}

    # ---- URLs -----------------------------------------------------------------------------

    def url(self, location: str) -> str:
        """An absolute URL for a location given as URL or path (paths are relative to the endpoint host)."""
        return urljoin(self.endpoint, location)

    def path(self, location: str) -> str:
        """The path of a location on this server (what payloads carry, http-protocol.md §7); external URLs stay."""
        url = self.url(location)
        if url.startswith(self.origin + "/"):
            return url[len(self.origin):]
        return url

    # ---- wire helpers ---------------------------------------------------------------------

    def _accept(self) -> list[tuple[str, str]]:
        return [("Accept", self.media or TEXT_PLAIN)]

    def _body(self, fields: Callable[[], list[text.Field]], json_body: Callable[[], bytes]) -> tuple[
            list[tuple[str, str]], bytes]:
        """Headers and body of a request in the negotiated rendering (GFD.223 §5.1: Content-Type MUST)."""
        media = self.media or TEXT_PLAIN
        if media == OCCI_JSON:
            return [("Content-Type", OCCI_JSON)], json_body()
        if media == TEXT_OCCI:
            # GFD.229 §7: the data travels in headers; the body carries nothing.
            return [("Content-Type", TEXT_OCCI), *text.headers_from_fields(fields())], b""
        return [("Content-Type", TEXT_PLAIN)], text.body_from_fields(fields())

    def _exchange(self, request: Request) -> Op[httpx.Response]:
        response = yield request
        if not isinstance(response, httpx.Response):  # pragma: no cover - runners always answer
            raise TypeError("an operation's request was answered without a response")
        _raise_for_status(response)
        return response

    def _fields(self, response: httpx.Response, *, locations: bool = False) -> list[text.Field]:
        """OCCI text fields of an answer: headers for text/occi, the body for text/plain.

        A 1.1 server may answer text/plain with the data in headers and an empty body (GFD.185).
        """
        headers = list(response.headers.multi_items())
        body = response.content.strip()
        if _media_of(response) == TEXT_OCCI or body in (b"", b"OK"):
            return text.fields_from_headers(headers, location_alias=locations)
        return text.fields_from_body(response.content)

    def _read_entity(self, response: httpx.Response, url: str, model: Model) -> Entity:
        media = _media_of(response)
        if media in _JSON_TYPES:
            message = occi_json.parse_entity(response.content)
        elif media in _TEXT_TYPES:
            fields = [f for f in self._fields(response) if f[0] != "X-OCCI-Location"]
            message = text.parse_entity(fields)
        else:
            raise errors.ParseError(f"{url}: the server answered {media}, which is not an OCCI entity rendering")
        return self._to_entity(message, url, model)

    def _has_entity(self, response: httpx.Response) -> bool:
        """Whether an answer (to an update or an action) carries an entity rendering."""
        if response.status_code == 204:
            return False
        media = _media_of(response)
        # An answer may render something else: occipy answers `save` with the new OS template's
        # definition (a query-interface rendering), which is read back with the entity's GET.
        if media in _JSON_TYPES:
            if response.content.strip()[:1] != b"{":
                return False
            try:
                data = msgspec.json.decode(response.content)
            except msgspec.DecodeError:
                return True  # let the entity parser name the problem
            return isinstance(data, dict) and "kind" in data
        if media in _TEXT_TYPES:
            fields = self._fields(response)
            # An entity has attributes (occi.core.id at least) or a kind; category definitions
            # carry their attribute names inside the Category field.
            return any(name == "X-OCCI-Attribute" or (name == "Category" and _KIND_CLASS.search(value))
                       for name, value in fields)
        return False

    def _read_locations(self, response: httpx.Response) -> list[str]:
        if response.status_code == 204:  # GFD.185: an empty collection may be a 204
            return []
        media = _media_of(response)
        if media == URI_LIST:
            return [self.url(u) for u in urilist.parse(response.content)]
        if media in _JSON_TYPES:
            body = response.content.strip()
            if body[:1] == b"[":
                return [self.url(u) for u in occi_json.parse_locations(body)]
            raise errors.ParseError("expected a JSON array of locations")
        if media in _TEXT_TYPES:
            return [self.url(u) for u in text.parse_locations(
                [f for f in self._fields(response, locations=True) if f[0] == "X-OCCI-Location"])]
        raise errors.ParseError(f"the server answered {media}, which is not an OCCI listing")

    def _created_location(self, response: httpx.Response) -> str:
        """Where a create put the entity: the `Location` header (GFD.185 §3.6.8: 201 MUST carry it),
        else the locations in the body."""
        header = response.headers.get("location")
        if header:
            return self.url(header)
        try:
            found = self._read_locations(response)
        except errors.ParseError:
            found = []
        if found:
            return found[0]
        raise errors.ParseError("the server did not say where it created the entity (no Location)")

    def _to_entity(self, message: EntityMessage, url: str, model: Model) -> Entity:
        if message.unclassified:
            # An OCCI 1.1 server may render categories without `class`: the model tells them apart.
            try:
                kind, mixins = rules.classify_categories(model.registry, message.kind, message.mixins,
                                                         message.unclassified)
            except errors.OcciError as error:
                raise errors.ParseError(f"{url}: {error.message}") from None
            message = msgspec.structs.replace(message, kind=kind, mixins=mixins, unclassified=())
        if message.kind is None:
            raise errors.ParseError(f"{url}: the rendering has no kind")
        attributes = self._typed_values(message.kind, message.mixins, message.attributes, message.lenient, model)
        location = self.url(message.location) if message.location else url
        entity_id = attributes.get("occi.core.id")
        entity = Entity(
            kind=message.kind,
            entity_id=entity_id if isinstance(entity_id, str) else location.rstrip("/").rsplit("/", 1)[-1],
            location=location,
            mixins=tuple(message.mixins),
            attributes=attributes,
            actions=tuple(message.action_links),
        )
        source_path = self.path(location)
        links = tuple(self._link_entity(link, source_path, model) for link in message.links)
        return entity.evolve(links=links) if links else entity

    def _link_entity(self, link: LinkMessage, source: str, model: Model) -> Entity:
        kind = link.kind or LINK
        values = dict(link.attributes)
        if link.target is not None:
            values.setdefault("occi.core.target", link.target)
        if link.target_kind is not None:
            values.setdefault("occi.core.target.kind", link.target_kind)
        values.setdefault("occi.core.source", link.source or source)
        values = self._typed_values(kind, link.mixins, values, link.lenient, model)
        link_id = values.get("occi.core.id")
        entity_id = link_id if isinstance(link_id, str) else ""
        if link.self_location:
            location = self.url(link.self_location)
        else:
            location = self._guess_location(kind, entity_id, model)
        return Entity(kind=kind, entity_id=entity_id or location.rsplit("/", 1)[-1], location=location,
                      mixins=tuple(link.mixins), attributes=values)

    def _guess_location(self, kind: str, entity_id: str, model: Model) -> str:
        """A location for an entity rendered without one (JSON has no member for it, GFD.226):
        the kind's collection plus the id, which is how servers lay paths out (http-protocol.md §1)."""
        collection = model.kinds[kind].location if kind in model.kinds else None
        if not collection or not entity_id:
            return ""
        segment = entity_id.removeprefix("urn:uuid:")
        return self.url(collection + quote(segment, safe=""))

    @staticmethod
    def _typed_values(kind: str, mixins: Sequence[str], values: Mapping[str, Any], lenient: bool,
                      model: Model) -> dict[str, AttributeValue]:
        """Attribute values read from a text rendering, coerced to their definition when known
        (a quoted number from a 1.1 server, a JSON list in a quoted string: text-rendering.md §6.6)."""
        result: dict[str, AttributeValue] = dict(values)
        if not (lenient and model.typed):
            return result
        defs = model.attribute_defs(kind, mixins)
        for name, value in values.items():
            adef = defs.get(name)
            if adef is not None:
                try:
                    result[name] = adef.check(value, lenient=True)
                except errors.InvalidAttribute:
                    pass  # show what the server said rather than fail a read
        return result

    # ---- discovery (GFD.223 §9) -----------------------------------------------------------

    def discover(self, refresh: bool = False) -> Op[Model]:
        """GET /-/: JSON where offered, else text/plain, else text/occi (OCCI 1.1 servers)."""
        if self.model is not None and not refresh:
            return self.model
        url = self.url("-/")
        candidates = [self.forced] if self.forced else [OCCI_JSON, TEXT_PLAIN, TEXT_OCCI]
        for i, media in enumerate(candidates):
            last = i == len(candidates) - 1
            response = yield Request("GET", url, [("Accept", media)])
            if not isinstance(response, httpx.Response):  # pragma: no cover
                raise TypeError("no response")
            if response.status_code in (400, 406, 415, 501) and not last:
                continue  # this server does not render that media type: try the next one
            _raise_for_status(response)
            answered = _media_of(response)
            try:
                if answered in _JSON_TYPES:
                    definitions = occi_json.parse_query_interface(response.content)
                    speak, typed = OCCI_JSON, True
                elif answered in _TEXT_TYPES:
                    definitions = text.parse_categories(self._fields(response))
                    speak, typed = (TEXT_OCCI if answered == TEXT_OCCI else TEXT_PLAIN), False
                else:
                    raise errors.ParseError(f"the query interface answered {answered or 'no media type'}")
            except errors.ParseError:
                if last:
                    raise
                continue
            self.media = self.forced or speak
            self.model = Model.from_definitions(definitions, typed=typed)
            return self.model
        raise errors.NotAcceptable("the server offers none of application/occi+json, text/plain, text/occi")

    # ---- reading --------------------------------------------------------------------------

    def get(self, location: str) -> Op[Entity]:
        """GET an entity (GFD.223 §10.1)."""
        model = yield from self.discover()
        url = self.url(location)
        response = yield from self._exchange(Request("GET", url, self._accept()))
        return self._read_entity(response, url, model)

    def _filter_headers(self, model: Model, categories: Sequence[str],
                        attributes: Mapping[str, AttributeValue] | None) -> list[tuple[str, str]]:
        """A collection filter as `Category` / `X-OCCI-Attribute` headers (GFD.223 §7)."""
        fields: list[text.Field] = []
        for name in categories:
            category = model.category(name)
            cls = "kind" if isinstance(category, Kind) else "mixin"
            fields.append(("Category", f'{category.term}; scheme="{category.scheme}"; class="{cls}"'))
        for attr_name, value in (attributes or {}).items():
            fields.append(("X-OCCI-Attribute", f"{attr_name}={text.render_value(value)}"))
        return text.headers_from_fields(fields) if fields else []

    def _collection_url(self, model: Model, category: str) -> str:
        found = model.category(category)
        if found.location is None:
            raise errors.BadRequest(f"{found.type_id} has no collection (no location)")
        return self.url(found.location)

    def _pages(self, url: str, headers: list[tuple[str, str]], page_size: int | None,
               read: Callable[[httpx.Response], list[T]], key: Callable[[T], str]) -> Op[list[T]]:
        """Every item of a collection, page by page (GFD.223 §6 `page`/`number`).

        A server that ignores the parameters (OCCI 1.1) answers everything every time: a page
        longer than asked for, or with nothing new, ends the loop. 413 (number above the
        provider's limit, GFD.223 §6 MUST) halves the page size and starts again.
        """
        size = self.page_size if page_size is None else page_size
        results: list[T] = []
        seen: set[str] = set()
        page = 1
        while True:
            params = [("page", str(page)), ("number", str(size))] if size > 0 else []
            response = yield Request("GET", url, headers, params=params)
            if not isinstance(response, httpx.Response):  # pragma: no cover
                raise TypeError("no response")
            if response.status_code == 413 and size > 1:
                size, page, results, seen = size // 2, 1, [], set()
                continue
            _raise_for_status(response)
            items = read(response)
            fresh = [item for item in items if key(item) not in seen]
            seen.update(key(item) for item in fresh)
            results.extend(fresh)
            if size <= 0 or len(items) != size or not fresh:
                return results
            page += 1

    def list_locations(self, category: str, *, categories: Sequence[str] = (),
                       attributes: Mapping[str, AttributeValue] | None = None,
                       page_size: int | None = None) -> Op[list[str]]:
        """Locations of the entities in a kind or mixin collection (GFD.223 §6, §7 filters)."""
        model = yield from self.discover()
        url = self._collection_url(model, category)
        headers = self._filter_headers(model, categories, attributes)
        if self.media == OCCI_JSON:
            # JSON entities carry no location (GFD.226): ask for the uri-list, MUST for listings (GFD.229 §8).
            headers.append(("Accept", f"{URI_LIST}, {TEXT_PLAIN};q=0.5"))
        else:
            headers.extend(self._accept())
        return (yield from self._pages(url, headers, page_size, self._read_locations, lambda u: u))

    def list_entities(self, category: str, *, categories: Sequence[str] = (),
                      attributes: Mapping[str, AttributeValue] | None = None,
                      page_size: int | None = None) -> Op[list[Entity]]:
        """The entities of a collection, in full: JSON collections carry them; with the text
        renderings (locations only, GFD.229 §5.3) each entity is fetched."""
        model = yield from self.discover()
        if self.media != OCCI_JSON:
            entities: list[Entity] = []
            for location in (yield from self.list_locations(
                    category, categories=categories, attributes=attributes, page_size=page_size)):
                try:
                    entities.append((yield from self.get(location)))
                except errors.NotFound:
                    continue  # deleted between the listing and now
            return entities
        url = self._collection_url(model, category)
        headers = [*self._filter_headers(model, categories, attributes), *self._accept()]

        def read(response: httpx.Response) -> list[Entity]:
            if response.status_code == 204:
                return []
            messages = occi_json.parse_entity_collection(response.content)
            found: list[Entity] = []
            for message in messages:
                entity_id = message.attributes.get("occi.core.id")
                guess = self._guess_location(message.kind or "", entity_id if isinstance(entity_id, str) else "",
                                             model)
                found.append(self._to_entity(message, guess, model))
            return found

        return (yield from self._pages(url, headers, page_size, read,
                                       lambda e: e.location or e.entity_id))

    # ---- writing --------------------------------------------------------------------------

    def _record(self, location: str, response: httpx.Response) -> None:
        operation = response.headers.get(OPERATION_HEADER)
        if operation:
            self.operations[self.url(location)] = self.url(operation)

    def _link_message(self, model: Model, spec: LinkSpec) -> LinkMessage:
        target = self.path(spec.target)
        target_kind = spec.target_kind
        if target_kind is None and target.startswith("/"):
            found = model.kind_for_location(target)
            target_kind = found.type_id if found is not None else None
        kind = model.kind(spec.kind).type_id if spec.kind else model.link_kind_for(target_kind)
        mixins = tuple(model.mixin(m).type_id for m in spec.mixins)
        values: dict[str, AttributeValue] = dict(spec.attributes)
        if self.validate:
            values = model.check_attributes(kind, mixins, values, creating=True)
        return LinkMessage(target=target, target_kind=target_kind, kind=kind, mixins=mixins, attributes=values)

    def _entity_body(self, message: EntityMessage) -> tuple[list[tuple[str, str]], bytes]:
        return self._body(lambda: text.render_entity_message(message),
                          lambda: occi_json.render_entity_message(message))

    def create(self, kind: str, *, attributes: Mapping[str, AttributeValue] | None = None,
               mixins: Sequence[str] = (), links: Sequence[LinkSpec | str] = (),
               title: str | None = None) -> Op[str]:
        """POST to the kind's collection (GFD.223 §11.1): 201 and the new entity's location."""
        model = yield from self.discover()
        found = model.kind(kind)
        if found.location is None:
            raise errors.BadRequest(f"kind {found.type_id} cannot be instantiated (no location)")
        mixin_ids = tuple(model.mixin(m).type_id for m in mixins)
        values: dict[str, AttributeValue] = dict(attributes or {})
        if title is not None:
            values["occi.core.title"] = title
        if self.validate:
            values = model.check_attributes(found.type_id, mixin_ids, values, creating=True)
        link_messages = tuple(
            self._link_message(model, spec if isinstance(spec, LinkSpec) else LinkSpec(spec)) for spec in links)
        message = EntityMessage(kind=found.type_id, mixins=mixin_ids, attributes=values, links=link_messages)
        headers, body = self._entity_body(message)
        response = yield from self._exchange(
            Request("POST", self.url(found.location), [*headers, *self._accept()], body))
        location = self._created_location(response)
        self._record(location, response)
        return location

    def _after_write(self, response: httpx.Response, url: str, model: Model) -> Op[Entity]:
        if self._has_entity(response):
            return self._read_entity(response, url, model)
        return (yield from self.get(url))

    def update(self, location: str, *, attributes: Mapping[str, AttributeValue] | None = None,
               mixins: Sequence[str] = ()) -> Op[Entity]:
        """Partial update, POST on the entity (GFD.223 §10.3.1): attributes sent replace theirs,
        mixins sent are added. Reads the entity first (GFD.185 §3.4.4 RECOMMENDED) to check."""
        model = yield from self.discover()
        current = yield from self.get(location)
        mixin_ids = tuple(model.mixin(m).type_id for m in mixins)
        values: dict[str, AttributeValue] = dict(attributes or {})
        if self.validate:
            values = model.check_attributes(current.kind, [*current.mixins, *mixin_ids], values,
                                            creating=False, current=current.attributes)
        message = EntityMessage(kind=current.kind, mixins=mixin_ids, attributes=values)
        headers, body = self._entity_body(message)
        url = self.url(location)
        response = yield from self._exchange(Request("POST", url, [*headers, *self._accept()], body))
        self._record(url, response)
        return (yield from self._after_write(response, url, model))

    def replace(self, location: str, *, attributes: Mapping[str, AttributeValue],
                mixins: Sequence[str] | None = None) -> Op[Entity]:
        """Full update, PUT on the entity (GFD.223 §10.2.2): what is not sent is unset.

        `mixins=None` keeps the current mixins. Immutable attributes equal to their current
        value are dropped (the server keeps them); links are left intact by the server.
        """
        model = yield from self.discover()
        current = yield from self.get(location)
        mixin_ids = tuple(current.mixins) if mixins is None else tuple(model.mixin(m).type_id for m in mixins)
        values: dict[str, AttributeValue] = dict(attributes)
        if self.validate:
            values = model.check_attributes(current.kind, mixin_ids, values, creating=False,
                                            current=current.attributes)
        message = EntityMessage(kind=current.kind, mixins=mixin_ids, attributes=values)
        headers, body = self._entity_body(message)
        url = self.url(location)
        response = yield from self._exchange(Request("PUT", url, [*headers, *self._accept()], body))
        self._record(url, response)
        return (yield from self._after_write(response, url, model))

    def delete(self, location: str) -> Op[None]:
        """DELETE an entity (GFD.223 §10.4)."""
        yield from self.discover()
        url = self.url(location)
        yield from self._exchange(Request("DELETE", url, self._accept()))
        self.operations.pop(url, None)

    def _locations_body(self, urls: Sequence[str]) -> tuple[list[tuple[str, str]], bytes]:
        return self._body(lambda: text.render_locations(urls), lambda: occi_json.render_locations(urls))

    def add_mixin(self, location: str, mixin: str) -> Op[Entity]:
        """Associate an entity with a mixin: a partial update carrying the mixin (GFD.223 §10.3.1,
        "Mixin categories sent are added"). Servers may refuse the other way, a POST to the mixin
        collection, for templates that change the cloud object; a new template replaces the old
        one of its kind (GFD.221 §5.3.4)."""
        return (yield from self.update(location, mixins=[mixin]))

    def remove_mixin(self, location: str, mixin: str) -> Op[Entity]:
        """Disassociate an entity from a mixin: DELETE on the mixin collection naming the entity
        (GFD.223 §11.4.2); the entity after."""
        model = yield from self.discover()
        found = model.mixin(mixin)
        if found.location is None:
            raise errors.BadRequest(f"mixin {found.type_id} has no collection (no location)")
        headers, body = self._locations_body([self.url(location)])
        yield from self._exchange(Request("DELETE", self.url(found.location), [*headers, *self._accept()], body))
        return (yield from self.get(location))

    def link(self, source: str, target: str, *, kind: str | None = None, mixins: Sequence[str] = (),
             attributes: Mapping[str, AttributeValue] | None = None, target_kind: str | None = None) -> Op[str]:
        """Create a link directly, POST to the link kind's collection (GFD.185 §3.4.5): its location."""
        model = yield from self.discover()
        spec = LinkSpec(target, kind=kind, target_kind=target_kind, mixins=mixins, attributes=attributes or {})
        message = self._link_message(model, spec)
        assert message.kind is not None
        found = model.kind(message.kind)
        if found.location is None:
            raise errors.BadRequest(f"kind {found.type_id} cannot be instantiated (no location)")
        values = dict(message.attributes)
        # GFD.185 §3.4.5: "occi.core.source and occi.core.target MUST be provided".
        values["occi.core.source"] = self.path(source)
        values["occi.core.target"] = message.target or self.path(target)
        if message.target_kind:
            values["occi.core.target.kind"] = message.target_kind
        entity = EntityMessage(kind=found.type_id, mixins=message.mixins, attributes=values)
        headers, body = self._entity_body(entity)
        response = yield from self._exchange(
            Request("POST", self.url(found.location), [*headers, *self._accept()], body))
        location = self._created_location(response)
        self._record(location, response)
        return location

    def trigger(self, location: str, action: str,
                attributes: Mapping[str, AttributeValue] | None = None) -> Op[Entity]:
        """Invoke an action, POST `<entity>?action=<term>` (GFD.223 §10.3.2); the entity after it."""
        model = yield from self.discover()
        current = yield from self.get(location)
        found = model.action(action, current.kind, current.mixins)
        values: dict[str, AttributeValue] = dict(attributes or {})
        if self.validate:
            values = model.check_parameters(found, values)
        invocation = ActionInvocation(action=found.type_id, attributes=values)
        headers, body = self._body(lambda: text.render_action_invocation(invocation),
                                   lambda: occi_json.render_action_invocation(invocation))
        url = self.url(location)
        response = yield from self._exchange(
            Request("POST", url, [*headers, *self._accept()], body, params=[("action", found.term)]))
        self._record(url, response)
        return (yield from self._after_write(response, url, model))

    # ---- user mixins (GFD.223 §9.3, §9.4) -------------------------------------------------

    def define_mixin(self, term: str, scheme: str, *, location: str | None = None, title: str | None = None,
                     depends: Sequence[str] = ()) -> Op[Mixin]:
        """POST a user-defined mixin (a tag) to the query interface; the mixin as discovered after."""
        model = yield from self.discover()
        if not TERM_RE.match(term):
            raise errors.BadRequest(f"invalid mixin term {term!r} (letters, digits, '.', '_', '-')")
        if not scheme.endswith("#"):
            raise errors.BadRequest(f"a scheme must end with '#': {scheme!r}")
        path = self.path(location) if location else f"/{term}/"
        if not (path.startswith("/") and path.endswith("/")):
            raise errors.BadRequest(f"a mixin location is a path ending with '/': {path!r}")
        rel = tuple(model.mixin(m).type_id for m in depends)
        definition = CategoryDefinition(scheme=scheme, term=term, cls="mixin", title=title, rel=rel, location=path)
        headers, body = self._body(lambda: text.render_category_definitions([definition]),
                                   lambda: occi_json.render_mixin_definitions([definition]))
        yield from self._exchange(Request("POST", self.url("-/"), [*headers, *self._accept()], body))
        refreshed = yield from self.discover(refresh=True)
        return refreshed.mixin(definition.type_id)

    def undefine_mixin(self, mixin: str) -> Op[None]:
        """DELETE a user-defined mixin from the query interface (the server refuses provider ones: 403)."""
        model = yield from self.discover()
        found = model.mixin(mixin)
        definition = CategoryDefinition(scheme=found.scheme, term=found.term, cls="mixin")
        headers, body = self._body(lambda: text.render_category_definitions([definition]),
                                   lambda: occi_json.render_mixin_definitions([definition]))
        yield from self._exchange(Request("DELETE", self.url("-/"), [*headers, *self._accept()], body))
        yield from self.discover(refresh=True)

    # ---- long operations ------------------------------------------------------------------

    def operation(self, url: str) -> Op[OperationStatus | None]:
        """The server's operation record; None when it does not know it (any more)."""
        response = yield Request("GET", url, [("Accept", OCCI_JSON + ", " + JSON)])
        if not isinstance(response, httpx.Response):  # pragma: no cover
            raise TypeError("no response")
        if response.status_code in (404, 410):
            return None
        _raise_for_status(response)
        try:
            data = msgspec.json.decode(response.content)
        except msgspec.DecodeError as exc:
            raise errors.ParseError(f"operation {url}: not JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("state"), str):
            raise errors.ParseError(f"operation {url}: no state in the answer")

        def opt(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        return OperationStatus(location=opt("location") or url, state=data["state"], action=opt("action"),
                               message=opt("message"), operation_id=opt("id"))

    def wait_for(self, entity: Entity | str, *, state: str | None, timeout: float, interval: float,
                 progress: Callable[[Progress], None] | None) -> Op[Entity]:
        model = yield from self.discover()
        url = self.url(entity.location if isinstance(entity, Entity) else entity)
        return (yield from follow(
            url, state=state, timeout=timeout, interval=interval,
            operation=self.operations.pop(url, None),
            fetch_entity=lambda: self.get(url),
            fetch_operation=self.operation,
            state_of=model.state_of,
            progress=progress,
        ))


def _http_options(auth: Auth | None, cert: ClientCertificate | None,
                  verify: bool | str | Path, headers: Mapping[str, str] | None,
                  timeout: float) -> dict[str, Any]:
    return {
        "auth": httpx_auth(auth),
        "verify": tls_verify(verify, cert),
        "headers": {"User-Agent": USER_AGENT, **(headers or {})},
        "timeout": timeout,
        "follow_redirects": True,
    }


def _transport_error(exc: httpx.HTTPError, endpoint: str) -> errors.OcciError:
    if isinstance(exc, httpx.UnsupportedProtocol):
        return errors.BadRequest(f"not an http(s) URL: {exc}")
    what = f"the OCCI server at {endpoint}"
    try:
        url = str(exc.request.url)
    except RuntimeError:  # no request attached
        url = endpoint
    if not url.startswith(endpoint.rstrip("/")):
        # a request of the authentication flow (Keystone) to another host
        what = f"the identity service at {url.split('?', 1)[0]}"
    if isinstance(exc, httpx.TimeoutException):
        return ServerUnreachable(f"{what} did not answer in time")
    reason = str(exc) or type(exc).__name__
    return ServerUnreachable(f"cannot reach {what}: {reason}")


# ---- the event stream (issue 12, docs/events.md; client/_stream.py runs wait_for's) ---------------


class _Reconnect:
    """When to try the stream again, and when to give up (`reconnect` seconds without a stream)."""

    def __init__(self, reconnect: float, endpoint: str) -> None:
        self.reconnect = reconnect
        self.endpoint = endpoint
        self.broken_since: float | None = None
        self.delay = 1.0

    def connected(self) -> None:
        self.broken_since = None

    def next_delay(self, decoder: SSEDecoder, error: errors.OcciError | None) -> float | None:
        """Seconds to wait before reconnecting; None: the stream is over (no reconnect wanted)."""
        if decoder.retry is not None:
            self.delay = decoder.retry
        if self.reconnect <= 0:
            if error is not None:
                raise error
            return None
        now = time.monotonic()
        if self.broken_since is None:
            self.broken_since = now
        elif now - self.broken_since > self.reconnect:
            raise error or ServerUnreachable(
                f"the event stream of {self.endpoint} did not come back within {self.reconnect:g} s")
        return self.delay


class Client:
    """A synchronous OCCI client. Discovers the server's model on first use (GFD.223 §9).

    >>> with Client("http://127.0.0.1:8080") as occi:                 # doctest: +SKIP
    ...     vm = occi.create("compute", mixins=["os_tpl#debian-12"], attributes={"occi.compute.cores": 2})
    ...     occi.wait_for(vm, state="active")
    """

    def __init__(
        self,
        endpoint: str,
        *,
        auth: Auth | None = None,
        cert: ClientCertificate | None = None,
        verify: bool | str | Path = True,
        media_type: str | None = None,
        timeout: float = 30.0,
        validate: bool = True,
        page_size: int = 100,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._ops = _Operations(endpoint, media_type=media_type, validate=validate, page_size=page_size)
        self.endpoint = self._ops.endpoint
        self.auth = auth
        self._http = httpx.Client(transport=transport, **_http_options(auth, cert, verify, headers, timeout))

    def _run(self, op: Op[T], sleep: Callable[[Sleep], None] | None = None) -> T:
        try:
            step = next(op)
            while True:
                if isinstance(step, Sleep):
                    if sleep is None:
                        time.sleep(step.seconds)
                    else:
                        sleep(step)
                    step = op.send(None)
                else:
                    step = op.send(self._send(step))
        except StopIteration as stop:
            result: T = stop.value
            return result

    def _send(self, step: Request) -> httpx.Response:
        request = self._http.build_request(step.method, step.url, headers=list(step.headers),
                                           content=step.content or None, params=list(step.params) or None)
        try:
            return self._http.send(request)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.endpoint) from exc

    # -- lifecycle
    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- discovery
    @property
    def media_type(self) -> str | None:
        """The media type this client speaks (after discovery): application/occi+json, text/plain or text/occi."""
        return self._ops.media

    @property
    def model(self) -> Model:
        """The server's kinds, mixins and actions (discovered on first use)."""
        return self.discover()

    def discover(self, *, refresh: bool = False) -> Model:
        """Read the query interface (GFD.223 §9); cached until `refresh=True`."""
        return self._run(self._ops.discover(refresh))

    # -- reading
    def get(self, location: str) -> Entity:
        """One entity, by URL or path."""
        return self._run(self._ops.get(location))

    def list_locations(self, category: str, *, categories: Sequence[str] = (),
                       attributes: Mapping[str, AttributeValue] | None = None,
                       page_size: int | None = None) -> list[str]:
        """Absolute locations in a kind or mixin collection, every page, filtered by category/attributes."""
        return self._run(self._ops.list_locations(category, categories=categories, attributes=attributes,
                                                  page_size=page_size))

    def list_entities(self, category: str, *, categories: Sequence[str] = (),
                      attributes: Mapping[str, AttributeValue] | None = None,
                      page_size: int | None = None) -> list[Entity]:
        """The entities of a kind or mixin collection, every page, filtered by category/attributes."""
        return self._run(self._ops.list_entities(category, categories=categories, attributes=attributes,
                                                 page_size=page_size))

    # -- writing
    def create(self, kind: str, *, attributes: Mapping[str, AttributeValue] | None = None,
               mixins: Sequence[str] = (), links: Sequence[LinkSpec | str] = (),
               title: str | None = None) -> str:
        """Create a resource (mixins, attributes, inline links); its absolute location."""
        return self._run(self._ops.create(kind, attributes=attributes, mixins=mixins, links=links, title=title))

    def update(self, location: str, *, attributes: Mapping[str, AttributeValue] | None = None,
               mixins: Sequence[str] = ()) -> Entity:
        """Partial update: change these attributes, add these mixins; the entity after."""
        return self._run(self._ops.update(location, attributes=attributes, mixins=mixins))

    def replace(self, location: str, *, attributes: Mapping[str, AttributeValue],
                mixins: Sequence[str] | None = None) -> Entity:
        """Full update: attributes (and mixins, when given) not listed are removed; the entity after."""
        return self._run(self._ops.replace(location, attributes=attributes, mixins=mixins))

    def delete(self, location: str) -> None:
        """Delete an entity."""
        self._run(self._ops.delete(location))

    def add_mixin(self, location: str, mixin: str) -> Entity:
        """Associate an entity with a mixin (a template replaces its predecessor); the entity after."""
        return self._run(self._ops.add_mixin(location, mixin))

    def remove_mixin(self, location: str, mixin: str) -> Entity:
        """Disassociate an entity from a mixin; the entity after."""
        return self._run(self._ops.remove_mixin(location, mixin))

    def link(self, source: str, target: str, *, kind: str | None = None, mixins: Sequence[str] = (),
             attributes: Mapping[str, AttributeValue] | None = None, target_kind: str | None = None) -> str:
        """Create a link from `source` to `target`; its absolute location."""
        return self._run(self._ops.link(source, target, kind=kind, mixins=mixins, attributes=attributes,
                                        target_kind=target_kind))

    def unlink(self, location: str) -> None:
        """Delete a link."""
        self._run(self._ops.delete(location))

    def trigger(self, location: str, action: str,
                attributes: Mapping[str, AttributeValue] | None = None) -> Entity:
        """Invoke an action (by term or type id) with parameters; the entity after it."""
        return self._run(self._ops.trigger(location, action, attributes))

    def define_mixin(self, term: str, scheme: str, *, location: str | None = None, title: str | None = None,
                     depends: Sequence[str] = ()) -> Mixin:
        """Define a user mixin (a tag); location defaults to `/<term>/`."""
        return self._run(self._ops.define_mixin(term, scheme, location=location, title=title, depends=depends))

    def undefine_mixin(self, mixin: str) -> None:
        """Delete a user mixin."""
        self._run(self._ops.undefine_mixin(mixin))

    def wait_for(self, entity: Entity | str, *, state: str | None = None, timeout: float = 300.0,
                 interval: float = 1.0, progress: Callable[[Progress], None] | None = None,
                 events: bool = True) -> Entity:
        """Follow the entity's last long operation until it ends (and reaches `state`, if given).

        With `events` and a server that offers `GET /-/events`, it re-reads when an event about
        the entity arrives (and every few seconds regardless) instead of every `interval`;
        otherwise it polls every `interval` seconds.
        """
        op = self._ops.wait_for(entity, state=state, timeout=timeout, interval=interval, progress=progress)
        if not events:
            return self._run(op)
        deadline = time.monotonic() + timeout
        location = entity.location if isinstance(entity, Entity) else entity
        watcher = _stream.Watcher(lambda **options: self._events(EventQuery(locations=(location,)), None, **options))
        try:
            return self._run(op, lambda step: watcher.sleep(step, deadline))
        finally:
            watcher.close()

    # -- the event stream (issue 12)
    def events(self, *, kinds: Sequence[str] = (), locations: Sequence[str] = (), operations: Sequence[str] = (),
               types: Sequence[str] = (), last_event_id: str | int | None = None, reconnect: float = 60.0,
               idle_timeout: float = 60.0) -> Iterator[ServerEvent]:
        """The server's committed changes as they happen (`GET /-/events`), for ever.

        Filters: kinds (type ids or terms), locations (URLs or paths; "/compute/" for all below),
        operations (ids or URLs), types (created, updated, state, deleted, operation). Starts with
        what happens from now on, or after `last_event_id`. When the stream breaks (the server
        restarts, the network fails), it reconnects with the last id it saw, so nothing is
        missed, for up to `reconnect` seconds (0: end instead); an event of type `lost` says the
        server no longer had some events. `idle_timeout`: seconds without a byte (the server sends
        keep-alives) before the connection counts as broken. NotSupported when the server offers
        no event stream.
        """
        query = EventQuery(tuple(kinds), tuple(locations), tuple(operations), tuple(types))
        return self._events(query, None if last_event_id is None else str(last_event_id), reconnect=reconnect,
                            idle_timeout=idle_timeout)

    def _events(self, query: EventQuery, last_id: str | None, *, reconnect: float, idle_timeout: float,
                on_ready: Callable[[], None] | None = None, connection: _stream.Connection | None = None,
                stopping: Callable[[], bool] | None = None) -> Iterator[ServerEvent]:
        url = self._ops.url(_events.EVENTS_PATH)
        params = query.params(self._ops.path)
        decoder = SSEDecoder(last_id)
        schedule = _Reconnect(reconnect, self.endpoint)
        timeout = _stream.stream_timeout(self._http.timeout, idle_timeout)
        while not (stopping is not None and stopping()):
            error: errors.OcciError | None = None
            request = self._http.build_request("GET", url, params=params, headers=_events.headers(decoder.last_id),
                                               timeout=timeout)
            try:
                response = self._http.send(request, stream=True)
                if connection is not None:
                    connection.response = response
                try:
                    if not (response.status_code < 300 and _events.is_stream(response)):
                        response.read()
                        refusal = _stream.refusal(response, self.endpoint, _raise_for_status)
                        if refusal is not None:
                            raise refusal
                    else:
                        schedule.connected()
                        opened = decoder.blocks
                        for line in response.iter_lines():
                            event = decoder.feed(line)
                            if on_ready is not None and decoder.blocks == opened + 1 and line == "":
                                on_ready()
                            if event is not None:
                                yield event
                            if stopping is not None and stopping():
                                return
                finally:
                    response.close()
            except httpx.HTTPError as exc:
                error = _transport_error(exc, self.endpoint)
            if stopping is not None and stopping():
                return
            delay = schedule.next_delay(decoder, error)
            if delay is None:
                return
            time.sleep(delay)


class AsyncClient:
    """The asynchronous twin of `Client`: same methods, awaited; `aclose()` and `async with`."""

    def __init__(
        self,
        endpoint: str,
        *,
        auth: Auth | None = None,
        cert: ClientCertificate | None = None,
        verify: bool | str | Path = True,
        media_type: str | None = None,
        timeout: float = 30.0,
        validate: bool = True,
        page_size: int = 100,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._ops = _Operations(endpoint, media_type=media_type, validate=validate, page_size=page_size)
        self.endpoint = self._ops.endpoint
        self.auth = auth
        self._http = httpx.AsyncClient(transport=transport, **_http_options(auth, cert, verify, headers, timeout))

    async def _run(self, op: Op[T], sleep: Callable[[Sleep], Awaitable[None]] | None = None) -> T:
        try:
            step = next(op)
            while True:
                if isinstance(step, Sleep):
                    if sleep is None:
                        await anyio.sleep(step.seconds)
                    else:
                        await sleep(step)
                    step = op.send(None)
                else:
                    step = op.send(await self._send(step))
        except StopIteration as stop:
            result: T = stop.value
            return result

    async def _send(self, step: Request) -> httpx.Response:
        request = self._http.build_request(step.method, step.url, headers=list(step.headers),
                                           content=step.content or None, params=list(step.params) or None)
        try:
            return await self._http.send(request)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.endpoint) from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    @property
    def media_type(self) -> str | None:
        """The media type this client speaks (after discovery)."""
        return self._ops.media

    async def discover(self, *, refresh: bool = False) -> Model:
        """Read the query interface (GFD.223 §9); cached until `refresh=True`."""
        return await self._run(self._ops.discover(refresh))

    async def get(self, location: str) -> Entity:
        """One entity, by URL or path."""
        return await self._run(self._ops.get(location))

    async def list_locations(self, category: str, *, categories: Sequence[str] = (),
                             attributes: Mapping[str, AttributeValue] | None = None,
                             page_size: int | None = None) -> list[str]:
        """Absolute locations in a kind or mixin collection, every page."""
        return await self._run(self._ops.list_locations(category, categories=categories, attributes=attributes,
                                                        page_size=page_size))

    async def list_entities(self, category: str, *, categories: Sequence[str] = (),
                            attributes: Mapping[str, AttributeValue] | None = None,
                            page_size: int | None = None) -> list[Entity]:
        """The entities of a kind or mixin collection, every page."""
        return await self._run(self._ops.list_entities(category, categories=categories, attributes=attributes,
                                                       page_size=page_size))

    async def create(self, kind: str, *, attributes: Mapping[str, AttributeValue] | None = None,
                     mixins: Sequence[str] = (), links: Sequence[LinkSpec | str] = (),
                     title: str | None = None) -> str:
        """Create a resource; its absolute location."""
        return await self._run(self._ops.create(kind, attributes=attributes, mixins=mixins, links=links,
                                                title=title))

    async def update(self, location: str, *, attributes: Mapping[str, AttributeValue] | None = None,
                     mixins: Sequence[str] = ()) -> Entity:
        """Partial update; the entity after."""
        return await self._run(self._ops.update(location, attributes=attributes, mixins=mixins))

    async def replace(self, location: str, *, attributes: Mapping[str, AttributeValue],
                      mixins: Sequence[str] | None = None) -> Entity:
        """Full update; the entity after."""
        return await self._run(self._ops.replace(location, attributes=attributes, mixins=mixins))

    async def delete(self, location: str) -> None:
        """Delete an entity."""
        await self._run(self._ops.delete(location))

    async def add_mixin(self, location: str, mixin: str) -> Entity:
        """Associate an entity with a mixin; the entity after."""
        return await self._run(self._ops.add_mixin(location, mixin))

    async def remove_mixin(self, location: str, mixin: str) -> Entity:
        """Disassociate an entity from a mixin; the entity after."""
        return await self._run(self._ops.remove_mixin(location, mixin))

    async def link(self, source: str, target: str, *, kind: str | None = None, mixins: Sequence[str] = (),
                   attributes: Mapping[str, AttributeValue] | None = None,
                   target_kind: str | None = None) -> str:
        """Create a link; its absolute location."""
        return await self._run(self._ops.link(source, target, kind=kind, mixins=mixins, attributes=attributes,
                                              target_kind=target_kind))

    async def unlink(self, location: str) -> None:
        """Delete a link."""
        await self._run(self._ops.delete(location))

    async def trigger(self, location: str, action: str,
                      attributes: Mapping[str, AttributeValue] | None = None) -> Entity:
        """Invoke an action; the entity after it."""
        return await self._run(self._ops.trigger(location, action, attributes))

    async def define_mixin(self, term: str, scheme: str, *, location: str | None = None,
                           title: str | None = None, depends: Sequence[str] = ()) -> Mixin:
        """Define a user mixin."""
        return await self._run(self._ops.define_mixin(term, scheme, location=location, title=title,
                                                      depends=depends))

    async def undefine_mixin(self, mixin: str) -> None:
        """Delete a user mixin."""
        await self._run(self._ops.undefine_mixin(mixin))

    async def wait_for(self, entity: Entity | str, *, state: str | None = None, timeout: float = 300.0,
                       interval: float = 1.0, progress: Callable[[Progress], None] | None = None,
                       events: bool = True) -> Entity:
        """Follow the entity's last long operation until it ends (and reaches `state`, if given);
        woken by the server's event stream when it offers one (see `Client.wait_for`)."""
        op = self._ops.wait_for(entity, state=state, timeout=timeout, interval=interval, progress=progress)
        if not events:
            return await self._run(op)
        deadline = time.monotonic() + timeout
        location = entity.location if isinstance(entity, Entity) else entity
        watcher = _stream.AsyncWatcher()
        await watcher.start(lambda **options: self._events(EventQuery(locations=(location,)), None, **options))
        try:
            return await self._run(op, lambda step: watcher.sleep(step, deadline))
        finally:
            await watcher.close()

    # -- the event stream (issue 12)
    def events(self, *, kinds: Sequence[str] = (), locations: Sequence[str] = (), operations: Sequence[str] = (),
               types: Sequence[str] = (), last_event_id: str | int | None = None, reconnect: float = 60.0,
               idle_timeout: float = 60.0) -> AsyncIterator[ServerEvent]:
        """The server's committed changes as they happen, an async iterator (see `Client.events`)."""
        query = EventQuery(tuple(kinds), tuple(locations), tuple(operations), tuple(types))
        return self._events(query, None if last_event_id is None else str(last_event_id), reconnect=reconnect,
                            idle_timeout=idle_timeout)

    async def _events(self, query: EventQuery, last_id: str | None, *, reconnect: float, idle_timeout: float,
                      on_ready: Callable[[], None] | None = None) -> AsyncIterator[ServerEvent]:
        url = self._ops.url(_events.EVENTS_PATH)
        params = query.params(self._ops.path)
        decoder = SSEDecoder(last_id)
        schedule = _Reconnect(reconnect, self.endpoint)
        timeout = _stream.stream_timeout(self._http.timeout, idle_timeout)
        while True:
            error: errors.OcciError | None = None
            request = self._http.build_request("GET", url, params=params, headers=_events.headers(decoder.last_id),
                                               timeout=timeout)
            try:
                response = await self._http.send(request, stream=True)
                try:
                    if not (response.status_code < 300 and _events.is_stream(response)):
                        await response.aread()
                        refusal = _stream.refusal(response, self.endpoint, _raise_for_status)
                        if refusal is not None:
                            raise refusal
                    else:
                        schedule.connected()
                        opened = decoder.blocks
                        async for line in response.aiter_lines():
                            event = decoder.feed(line)
                            if on_ready is not None and decoder.blocks == opened + 1 and line == "":
                                on_ready()
                            if event is not None:
                                yield event
                finally:
                    await response.aclose()
            except httpx.HTTPError as exc:
                error = _transport_error(exc, self.endpoint)
            delay = schedule.next_delay(decoder, error)
            if delay is None:
                return
            await anyio.sleep(delay)

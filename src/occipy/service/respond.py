"""Results rendered once, in the negotiated media type: the service's only rendering step.

Handlers return `results.*` values; `Responder.render` turns one into an `OcciResponse` with the
rendering modules (`rendering.text`, `rendering.json`, `rendering.urilist`), reusing what
`cache.RenderCache` holds. Errors are rendered here too (`render_error`). The caches are consulted
only here, after the pipeline has authenticated, authorised and run the handler.
"""

from __future__ import annotations

import json
import operator
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final

from occipy import errors
from occipy.errors import MethodNotAllowed, OcciError
from occipy.model.entity import Entity
from occipy.model.registry import Registry
from occipy.rendering import json as json_rendering
from occipy.rendering import negotiate, text, urilist
from occipy.service.cache import RenderCache
from occipy.service.conditional import entity_tag, evaluate
from occipy.service.context import Context
from occipy.service.messages import OcciResponse
from occipy.service.results import (
    CategoriesResult,
    CollectionResult,
    CreatedResult,
    DocumentResult,
    EmptyResult,
    EntityResult,
    Outcome,
    RecordResult,
    Result,
    StreamResult,
)
from occipy.service.views import Views

OPERATIONS_PREFIX: Final = "/-/operations/"
# Scale-out (issue 11): JSON collections of more members than this are streamed, in pieces of
# about STREAM_CHUNK bytes.
STREAM_MEMBERS: Final = 1000
STREAM_CHUNK: Final = 256 * 1024


_NO_OUTCOME: Final = Outcome()


class Responder:
    def __init__(self, registry: Registry, views: Views, cache: RenderCache, *, max_header_value: int) -> None:
        self.registry = registry
        self.views = views
        self.cache = cache
        self.max_header_value = max_header_value
        # The last streamed JSON collection body: its members, keys, registry version and bytes.
        self._last_collection: tuple[list[Entity], str, int, bytes] | None = None

    async def render(self, result: Result, ctx: Context) -> OcciResponse:
        if isinstance(result, DocumentResult):
            return OcciResponse(status=result.outcome.status, headers=[("Content-Type", result.media)],
                                body=result.body)
        if isinstance(result, StreamResult):  # issue 12: the event stream, sent as it comes
            return OcciResponse(status=result.outcome.status,
                                headers=[("Content-Type", result.media), *result.outcome.headers],
                                stream=result.stream)
        outcome: Outcome = result.outcome
        media = ctx.media
        headers: list[tuple[str, str]] = list(outcome.headers)
        if outcome.operation is not None:
            headers.append(("X-OCCI-Operation", ctx.absolute(OPERATIONS_PREFIX + outcome.operation.op_id)))
        headers.append(("Content-Type", media))
        if isinstance(result, CreatedResult) and result.locations:
            headers.append(("Location", ctx.absolute(result.locations[0])))
        if isinstance(result, EntityResult):
            # issue 8: every entity rendering carries its ETag (conditional.py, D-ETAG)
            headers.append(("ETag", entity_tag(result.entity)))
        if (isinstance(result, CollectionResult) and result.members is not None and negotiate.is_json(media)
                and len(result.members) > STREAM_MEMBERS):
            # Scale-out (issue 11): thousands of members are sent as they are rendered, unless the
            # whole document is the one kept from last time: then it goes at once, with its length
            # (no pieces to cut out of it, no chunk framing).
            kept = self._kept_collection(result.members, result.keys)
            if kept is not None:
                return OcciResponse(status=outcome.status, headers=headers, body=kept)
            return OcciResponse(status=outcome.status, headers=headers,
                                stream=self._json_collection_stream(result.members, result.keys))
        occi_headers, body = await self._render(result, ctx)
        return OcciResponse(status=outcome.status, headers=headers + occi_headers, body=body)

    async def _render(self, result: Result, ctx: Context) -> tuple[list[tuple[str, str]], bytes]:
        media = ctx.media
        if isinstance(result, CategoriesResult) and result.cacheable:
            key = self.cache.discovery_key(ctx, self.registry.version)
            hit = self.cache.discovery.get(key)
            if hit is not None:
                return hit
            rendered = self._render_categories(result, ctx)
            self.cache.keep_discovery(key, rendered)
            return rendered
        if isinstance(result, CategoriesResult):
            return self._render_categories(result, ctx)
        if isinstance(result, EmptyResult):
            return [], b"OK" if media == negotiate.TEXT_OCCI else b""
        if negotiate.is_json(media):
            return [], await self._json(result, ctx)
        if isinstance(result, CollectionResult) and media != negotiate.TEXT_OCCI:
            # large collections: one pass, no intermediate fields (text-rendering.md §6.5)
            paths = result.paths if result.paths is not None else [e.location for e in result.members or ()]
            if media == negotiate.URI_LIST:
                base = ctx.base_url
                return [], "".join([base + path + "\r\n" for path in paths]).encode("utf-8")
            return [], text.body_from_locations(paths, ctx.base_url)
        if media == negotiate.URI_LIST:
            urls = self._urls(result, ctx)
            return [], urilist.render(urls) if urls else b""
        fields = self._text_fields(result, ctx)
        return self._text(fields, media)

    def _text(self, fields: Sequence[tuple[str, str]], media: str) -> tuple[list[tuple[str, str]], bytes]:
        if media == negotiate.TEXT_OCCI:
            occi_headers = text.headers_from_fields(fields)
            if any(len(value) > self.max_header_value for _, value in occi_headers):
                raise errors.NotAcceptable(
                    "the text/occi rendering is too large for HTTP headers; ask for text/plain or application/occi+json")
            return occi_headers, b"OK"
        return [], text.body_from_fields(fields)

    def _render_categories(self, result: CategoriesResult, ctx: Context) -> tuple[list[tuple[str, str]], bytes]:
        if negotiate.is_json(ctx.media):
            return [], json_rendering.render_categories(result.categories, self.registry)
        if ctx.media == negotiate.URI_LIST:
            raise errors.UriListNotListing("text/uri-list can only render entity collections")
        return self._text(text.render_categories(result.categories, self.registry), ctx.media)

    def _urls(self, result: Result, ctx: Context) -> list[str]:
        if isinstance(result, CreatedResult):
            return [ctx.absolute(location) for location in result.locations]
        if isinstance(result, CollectionResult):
            paths = result.paths if result.paths is not None else [e.location for e in result.members or ()]
            return [ctx.absolute(path) for path in paths]
        return []

    def _text_fields(self, result: Result, ctx: Context) -> Sequence[tuple[str, str]]:
        if isinstance(result, RecordResult):
            return [("X-OCCI-Attribute", f"{name}={text.render_value(value)}")
                    for name, value in result.record.items() if value is not None]
        if isinstance(result, EntityResult):
            return text.render_entity(result.entity)
        if isinstance(result, (CreatedResult, CollectionResult)):
            return text.render_locations(self._urls(result, ctx))
        return []

    async def _json(self, result: Result, ctx: Context) -> bytes:
        if isinstance(result, RecordResult):
            return json.dumps({k: v for k, v in result.record.items() if v is not None}).encode()
        if isinstance(result, EntityResult):
            return json_rendering.render_entity(result.entity)
        if isinstance(result, CreatedResult):
            return json_rendering.render_locations([ctx.absolute(location) for location in result.locations])
        if isinstance(result, CollectionResult):
            if result.members is None:
                return json_rendering.render_locations([ctx.absolute(path) for path in result.paths or ()])
            return await self._json_collection(result.members, result.keys)
        return b""

    async def _json_collection_stream(self, members: Sequence[Entity], keys: str) -> AsyncIterator[bytes]:
        """`_json_collection`, sent in pieces of about STREAM_CHUNK bytes: resources first, then links.

        The members' renderings are those the entity cache keeps (or made now, and kept). The whole
        document is kept too, for `render` to send again while it is right (`_kept_collection`):
        a stream is made only when it is not.
        """
        lanes = self.views.cloud.lanes
        busy = lanes.busy if lanes.any_lane() else None
        version = self.registry.version
        resources, links = await self._member_renderings(members, keys, busy)
        sections = [(name, items) for name, items in ((b"resources", resources), (b"links", links))
                    if keys in (name.decode(), "both")]
        sent: list[bytes] = []
        piece = b"{"
        for number, (section, items) in enumerate(sections):
            head = piece + (b"," if number else b"") + b'"' + section + b'":['
            piece = b""
            start, size = 0, 0
            for index, rendered in enumerate(items):
                size += len(rendered) + 1
                if size >= STREAM_CHUNK:
                    sent.append(head + (b"," if start else b"") + b",".join(items[start:index + 1]))
                    yield sent[-1]
                    head, start, size = b"", index + 1, 0
            piece = head + (b"," if start and start < len(items) else b"") + b",".join(items[start:]) + b"]"
        sent.append(piece + b"}")
        yield sent[-1]
        self.cache.trim_entity_json(len(members))
        if busy is None and not lanes.any_lane() and self.registry.version == version:
            self._last_collection = (list(members), keys, version, b"".join(sent))

    def _kept_collection(self, members: Sequence[Entity], keys: str) -> bytes | None:
        """The JSON collection document sent last time, if it is still right for these members: the
        same (immutable) entity objects, no entity with work running or queued, the same registry."""
        last = self._last_collection
        if last is None or self.views.cloud.lanes.any_lane() or last[1] != keys \
                or last[2] != self.registry.version or len(last[0]) != len(members):
            return None
        return last[3] if all(map(operator.is_, last[0], members)) else None

    async def _member_renderings(self, members: Sequence[Entity], keys: str,
                                 busy: Callable[[str], bool] | None) -> tuple[list[bytes], list[bytes]]:
        """The JSON renderings of the members `keys` asks for, resources and links apart, in order:
        each entity's kept rendering while the store holds the same (immutable) entity and no work
        is pending on it (`busy` None: no entity has work), else made now and kept. One pass; an
        await only for a rendering not kept."""
        resources: list[bytes] = []
        links: list[bytes] = []
        cache = self.cache.entity_json
        link_kinds: dict[str, bool] = {}
        want_resources, want_links = keys in ("resources", "both"), keys in ("links", "both")
        for entity in members:
            kind = entity.kind
            is_link = link_kinds.get(kind)
            if is_link is None:
                is_link = link_kinds[kind] = self.registry.is_link_kind(kind)
            if not (want_links if is_link else want_resources):
                continue
            location = entity.location
            hit = cache.get(location)
            if hit is not None and hit[0] is entity and (busy is None or not busy(location)):
                rendered = hit[1]
            else:
                rendered = json_rendering.render_entity(await self.views.decorate(entity))
                cache[location] = (entity, rendered)
            (links if is_link else resources).append(rendered)
        return resources, links

    async def _json_collection(self, members: Sequence[Entity], keys: str) -> bytes:
        """`json.render_entities` of the decorated members, reusing each entity's rendering while the
        store holds the same (immutable) entity and no operation is pending on it."""
        lanes = self.views.cloud.lanes
        resources, links = await self._member_renderings(members, keys, lanes.busy if lanes.any_lane() else None)
        self.cache.trim_entity_json(len(members))
        parts = []
        if keys in ("resources", "both"):
            parts.append(b'"resources":[' + b",".join(resources) + b"]")
        if keys in ("links", "both"):
            parts.append(b'"links":[' + b",".join(links) + b"]")
        return b"{" + b",".join(parts) + b"}"

    # ---- one entity, reused while nothing it shows has changed -------------------------------------

    async def entity(self, stored: Entity, ctx: Context, outcome: Outcome = _NO_OUTCOME) -> OcciResponse:
        """GET of one entity. The rendering is reused while the same entity and link objects are
        stored, no operation is pending on them and the registry is unchanged (entities are
        immutable: an update stores a new object). A matching If-None-Match is 304 (issue 8)."""
        links: tuple[Entity, ...] = ()
        if self.registry.is_resource_kind(stored.kind):
            links = tuple((await self.views.store.links_from([stored.location])).get(stored.location, ()))
        key = self.cache.entity_key(ctx, stored.location)
        hit = self.cache.entities.get(key)
        lanes = self.views.cloud.lanes
        quiet = not lanes.busy(stored.location) and not any(lanes.busy(link.location) for link in links)
        if (hit is not None and quiet and hit.entity is stored and hit.version == self.registry.version
                and len(hit.links) == len(links) and all(a is b for a, b in zip(hit.links, links))):
            if ctx.if_none_match is not None and evaluate("GET", None, ctx.if_none_match, hit.etag):
                return OcciResponse(status=304, headers=[("ETag", hit.etag)])
            return OcciResponse(status=200, headers=[("Content-Type", ctx.media), *hit.headers], body=hit.body)
        view = await self.views.decorate(stored)
        decorated = tuple([await self.views.decorate(link) for link in links])
        shown = view.evolve(links=decorated) if decorated else view
        if ctx.if_none_match is not None:
            etag = entity_tag(shown)
            if evaluate("GET", None, ctx.if_none_match, etag):
                return OcciResponse(status=304, headers=[("ETag", etag)])
        response = await self.render(EntityResult(shown, outcome), ctx)
        if quiet and not outcome.headers and outcome.operation is None:
            extra = tuple(header for header in response.headers if header[0] != "Content-Type")
            etag = next((value for name, value in extra if name == "ETag"), "")
            self.cache.keep_entity(key, stored, self.registry.version, links, extra, response.body, etag)
        return response

    async def current_etag(self, stored: Entity) -> str:
        """The ETag a GET of this stored entity shows now (conditional requests, issue 8)."""
        links: tuple[Entity, ...] = ()
        if self.registry.is_resource_kind(stored.kind):
            found = (await self.views.store.links_from([stored.location])).get(stored.location, ())
            links = tuple([await self.views.decorate(link) for link in found])
        view = await self.views.decorate(stored)
        return entity_tag(view.evolve(links=links) if links else view)

    # ---- errors --------------------------------------------------------------------------------------

    def render_error(self, error: OcciError, media: str) -> OcciResponse:
        """An error in the negotiated media type, with a message that says what was wrong."""
        status = error.status
        message = error.message
        headers: list[tuple[str, str]] = []
        if isinstance(error, MethodNotAllowed) and error.allowed:
            headers.append(("Allow", ", ".join(error.allowed)))
        if isinstance(error, errors.Unauthorized):
            headers.extend(("WWW-Authenticate", challenge) for challenge in error.challenges)
        if isinstance(error, errors.TooManyRequests):
            headers.append(("Retry-After", str(error.retry_after)))
        if negotiate.is_json(media):
            body = json_rendering.render_error(status, message)
        elif media == negotiate.TEXT_OCCI:
            headers.append(("X-OCCI-Error", _one_line(message)))
            body = message.encode() + b"\n"
        else:
            if media == negotiate.URI_LIST:
                media = negotiate.TEXT_PLAIN
            body = message.encode() + b"\n"
        headers.append(("Content-Type", media))
        return OcciResponse(status=status, headers=headers, body=body)


def _one_line(message: str) -> str:
    return " ".join(message.split())[:1000]

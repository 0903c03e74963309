"""The Service: GFD.223 semantics behind one `handle(OcciRequest) -> OcciResponse` call (sans-IO).

It knows no web framework. It negotiates the media type (GFD.223 §5, GFD.185 §3.6.6), checks the
client's OCCI version (GFD.223 §5.3), dispatches by path and method (routes.py) to the handler
modules, and renders their `Reply` in the negotiated rendering. Storage and the cloud are reached
only through `store.base.Store` and `backends.base.Driver`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from occipy import errors
from occipy.backends.base import Capability, Driver
from occipy.errors import MethodNotAllowed, NotSupported, OcciError
from occipy.identity.base import Anonymous, Authenticator, Credentials
from occipy.model import state as fsm
from occipy.model.entity import Entity
from occipy.model.registry import Registry
from occipy.rendering import json as json_rendering
from occipy.rendering import negotiate, text, urilist
from occipy.service import actions, collections, entities, jobs, provisioning, query
from occipy.service.messages import OcciRequest, OcciResponse
from occipy.service.reply import Reply
from occipy.service.routes import ALLOWED, Route, Target, classify
from occipy.store.base import Store

log = logging.getLogger("occipy.service")

_VERSION_RE: Final = re.compile(r"OCCI/(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """Behaviour switches of the service (settable from the server configuration)."""

    # How long a request waits for a long operation before answering with the in-flight state.
    sync_wait: float = 0.2
    # Largest page size a client may ask for (GFD.223 §6: larger -> 413).
    max_page: int = 1000
    # DELETE on the root `/` deletes everything: refused unless enabled (http-protocol.md §6.9).
    allow_delete_root: bool = False
    # Scheme of provider templates offered by the driver.
    provider_scheme: str = "http://occipy.org/occi/"
    # A text/occi answer whose largest header would exceed this is refused with 406 (GFD.185 §3.6.6).
    max_header_value: int = 65536
    # Seconds between two reconcile passes for drivers whose cloud can change on its own.
    reconcile_interval: float = 30.0
    # How long a `save` action may take before the answer (it must render the new template).
    save_timeout: float = 300.0


class Service:
    """OCCI over any store and driver; `start()` before the first request, `stop()` at the end."""

    def __init__(self, registry: Registry, store: Store, driver: Driver,
                 options: ServiceOptions | None = None, authenticator: Authenticator | None = None) -> None:
        self.registry = registry
        self.authenticator: Authenticator = authenticator or Anonymous()  # identity hook (issue 8)
        self.store = store
        self.driver = driver
        self.options = options or ServiceOptions()
        self.jobs = jobs.Jobs(self)
        self.provisioning = provisioning.Provisioning(self)
        # Renderings that depend only on the registry (discovery), and per-entity JSON renderings.
        self._rendered: dict[tuple[str, ...], tuple[list[tuple[str, str]], bytes]] = {}
        self._entity_json: dict[str, tuple[Entity, bytes]] = {}
        self._entity_responses: dict[
            tuple[str, str], tuple[Entity, int, tuple[Entity, ...], list[tuple[str, str]], bytes]] = {}

    # ---- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load user mixins and templates into the registry, recover operations, start reconciling."""
        await query.load_stored_mixins(self)
        self.provisioning.register_templates()
        await self.provisioning.recover()
        if Capability.EXTERNAL_CHANGES in self.driver.capabilities:
            self.provisioning.start_reconcile()

    async def stop(self) -> None:
        await self.provisioning.stop()
        await self.jobs.drain()

    # ---- the one entry point -----------------------------------------------------------------

    async def handle(self, request: OcciRequest) -> OcciResponse:
        """Answer one request. OcciErrors become 4xx/5xx renderings; anything else is a bug (500)."""
        media = negotiate.TEXT_PLAIN
        try:
            # identity hook (issue 8), temporary: the new request pipeline authenticates first.
            principal = await self.authenticator.authenticate(Credentials(headers=request.headers))
            if principal is None:
                raise errors.Unauthorized("authentication required", self.authenticator.challenges())
            request.user = principal.user
        except OcciError as error:
            try:
                media = negotiate.response_type(request.header("accept"), listing=False)
            except OcciError:
                pass
            return self.render_error(error, media)
        try:
            stored = await self.store.get(request.path)
            route = classify(request.path, self.registry, stored is not None)
            media = negotiate.response_type(request.header("accept"), listing=_is_listing(route, request))
            self._check_version(request)
            method = request.method
            allowed = ALLOWED[route.target]
            if route.target is Target.UNBOUND and request.path == "/":
                allowed = (*allowed, "POST")  # P-19: a full rendering POSTed to the root creates it
            if method == "OPTIONS":
                return self._finish(Reply(headers=[("Allow", ", ".join(allowed))]), media, request)
            if route.target is Target.NEW and method not in ("PUT", "OPTIONS"):
                raise errors.NotFound(f"nothing at {request.path}")
            if method not in allowed:
                raise MethodNotAllowed(f"{method} is not defined for {request.path}", allowed)
            if stored is not None and route.target is Target.ENTITY and method in ("GET", "HEAD"):
                response = await self._entity_response(stored, media, request)
            else:
                reply = await self._dispatch(request, route, stored)
                response = self._finish(reply, media, request)
            if method == "HEAD":
                response.body = b""
            return response
        except OcciError as error:
            if isinstance(error, (errors.NotAcceptable, errors.UriListNotListing)):
                media = negotiate.TEXT_PLAIN
            return self.render_error(error, media)

    def _check_version(self, request: OcciRequest) -> None:
        # "If an OCCI implementation receives a request from a client that supplies a version number
        #  higher than the server supports ... The HTTP 501 Not Implemented status code MUST be used."
        #  -- GFD.223 §5.3
        agent = request.header("user-agent") or ""
        for major, minor in _VERSION_RE.findall(agent):
            if (int(major), int(minor)) > (1, 2):
                raise NotSupported(f"OCCI/{major}.{minor} is not supported; this server speaks OCCI/1.2 and OCCI/1.1")

    async def _dispatch(self, request: OcciRequest, route: Route, stored: Entity | None) -> Reply:
        method = "GET" if request.method == "HEAD" else request.method
        target = route.target
        if target is Target.QUERY:
            if method == "GET":
                return query.discover(self, request)
            if method == "POST":
                return await query.add_mixins(self, request)
            return await query.remove_mixins(self, request)
        if target is Target.OPERATION:
            return await jobs.get_operation(self, request)
        action = request.query.get("action")
        if target is Target.ENTITY:
            assert stored is not None
            if method == "GET":
                return Reply(entity=await self.view(stored))
            if method == "POST" and action is not None:
                return await actions.invoke(self, request, stored, action)
            if method == "POST":
                return await entities.partial_update(self, request, stored)
            if method == "PUT":
                return await entities.replace(self, request, stored)
            return await entities.delete(self, request, stored)
        if target is Target.NEW:
            return await entities.create_at(self, request)
        if target is Target.UNBOUND:
            if method == "GET":
                return await collections.list_collection(self, request, route)
            if request.path == "/" and method == "POST":
                return await entities.create_in_root(self, request)
            return await collections.delete_unbound(self, request, route)
        # Kind and Mixin collections
        if method == "GET":
            return await collections.list_collection(self, request, route)
        if method == "POST" and action is not None:
            return await actions.invoke_on_collection(self, request, route, action)
        if target is Target.KIND:
            if method == "POST":
                return await entities.create_in_kind(self, request, route)
            return await collections.delete_kind_members(self, request, route)
        if method == "POST":
            return await collections.associate(self, request, route)
        if method == "PUT":
            return await collections.replace_members(self, request, route)
        return await collections.dissociate(self, request, route)

    async def _entity_response(self, stored: Entity, media: str, request: OcciRequest) -> OcciResponse:
        """GET of one entity, reusing the last rendering while nothing it shows has changed.

        Stored entities are never mutated (an update stores a new object), so the rendering is
        valid while the same entity and link objects are stored, no operation runs on them and the
        registry is unchanged.
        """
        location = stored.location
        links: tuple[Entity, ...] = ()
        if self.registry.is_resource_kind(stored.kind):
            links = tuple((await self.store.links_from([location])).get(location, ()))
        key = (location, media)
        hit = self._entity_responses.get(key)
        busy = self.jobs.busy_locations
        quiet = location not in busy and not any(link.location in busy for link in links)
        if (hit is not None and quiet and hit[0] is stored and hit[1] == self.registry.version
                and len(hit[2]) == len(links) and all(a is b for a, b in zip(hit[2], links))):
            return OcciResponse(status=200, headers=[("Content-Type", media), *hit[3]], body=hit[4])
        view = self.decorate(stored)
        view.links = [self.decorate(link) for link in links]
        response = self._finish(Reply(entity=view), media, request)
        if quiet:
            if len(self._entity_responses) > 20000:
                self._entity_responses.clear()
            extra = [header for header in response.headers if header[0] != "Content-Type"]
            self._entity_responses[key] = (stored, self.registry.version, links, extra, response.body)
        return response

    # ---- entity views --------------------------------------------------------------------------

    async def view(self, entity: Entity) -> Entity:
        """A copy of a stored entity with its links and currently applicable actions filled in."""
        result = self.decorate(entity)
        if self.registry.is_resource_kind(entity.kind):
            found = await self.store.links_from([entity.location])
            result.links = [self.decorate(link) for link in found.get(entity.location, [])]
        return result

    def decorate(self, entity: Entity) -> Entity:
        """A copy with `actions` (applicable now, INF-R2) and link source kinds for rendering."""
        result = entity.copy()
        registry = self.registry
        state_name = fsm.state_attribute(entity.kind)
        current = entity.attributes.get(state_name) if state_name else None
        if self.jobs.busy(entity.location):
            result.actions = ()
        else:
            result.actions = fsm.available_actions(
                entity.kind, current if isinstance(current, str) else None,
                registry.action_ids(entity.kind, entity.mixins),
            )
        if registry.is_link_kind(entity.kind) and entity.source:
            source_kind = self.provisioning.kind_of(entity.source)
            if source_kind is not None:
                result.attributes["occi.core.source.kind"] = source_kind
        return result

    # ---- rendering ---------------------------------------------------------------------------

    def absolute(self, request: OcciRequest, location: str) -> str:
        return request.base_url + location if location.startswith("/") else location

    def _finish(self, reply: Reply, media: str, request: OcciRequest) -> OcciResponse:
        headers = list(reply.headers)
        headers.append(("Content-Type", media))
        if reply.locations:
            headers.append(("Location", reply.locations[0]))
        key = None
        if reply.cache_key is not None:
            key = (*reply.cache_key, media, str(self.registry.version), request.base_url)
            cached = self._rendered.get(key)
            if cached is not None:
                return OcciResponse(status=reply.status, headers=headers + cached[0], body=cached[1])
        occi_headers, body = self._render(reply, media, request)
        if key is not None:
            if len(self._rendered) > 64:
                self._rendered.clear()
            self._rendered[key] = (occi_headers, body)
        return OcciResponse(status=reply.status, headers=headers + occi_headers, body=body)

    def _render(self, reply: Reply, media: str, request: OcciRequest) -> tuple[list[tuple[str, str]], bytes]:
        """The OCCI headers (text/occi) and the body of a reply in one media type."""
        if negotiate.is_json(media):
            return [], self._render_json(reply)
        only_listing = reply.entity is None and reply.categories is None and reply.record is None
        if only_listing and (reply.collection is not None or reply.paths is not None) \
                and media != negotiate.TEXT_OCCI:
            # large collections: one pass, no intermediate fields (text-rendering.md §6.5);
            # stored entities always have path locations, made absolute with the base URL
            paths = reply.paths if reply.paths is not None else [e.location for e in reply.collection or ()]
            if media == negotiate.URI_LIST:
                base = request.base_url
                return [], ("".join([base + path + "\r\n" for path in paths])).encode("utf-8")
            return [], text.body_from_locations(paths, request.base_url)
        if media == negotiate.URI_LIST:
            urls = self._listing_urls(reply, request)
            return [], urilist.render(urls) if urls else b""
        fields = self._text_fields(reply, request)
        if media == negotiate.TEXT_OCCI:
            occi_headers = text.headers_from_fields(fields)
            if any(len(value) > self.options.max_header_value for _, value in occi_headers):
                raise errors.NotAcceptable(
                    "the text/occi rendering is too large for HTTP headers; ask for text/plain or application/occi+json"
                )
            return occi_headers, b"OK"
        return [], text.body_from_fields(fields)

    def _listing_urls(self, reply: Reply, request: OcciRequest) -> list[str]:
        if reply.locations is not None:
            return list(reply.locations)
        if reply.paths is not None:
            return [request.base_url + path for path in reply.paths]
        if reply.collection is not None:
            return [self.absolute(request, entity.location) for entity in reply.collection]
        return []

    def _text_fields(self, reply: Reply, request: OcciRequest) -> Sequence[tuple[str, str]]:
        if reply.record is not None:
            return [("X-OCCI-Attribute", f"{name}={text.render_value(value)}")
                    for name, value in reply.record.items() if value is not None]
        if reply.entity is not None:
            return text.render_entity(reply.entity)
        if reply.categories is not None:
            return text.render_categories(reply.categories, self.registry)
        if reply.locations is not None or reply.collection is not None or reply.paths is not None:
            return text.render_locations(self._listing_urls(reply, request))
        return []

    def _render_json(self, reply: Reply) -> bytes:
        if reply.raw_json is not None:
            return reply.raw_json
        if reply.record is not None:
            return json.dumps({k: v for k, v in reply.record.items() if v is not None}).encode()
        if reply.entity is not None:
            return json_rendering.render_entity(reply.entity)
        if reply.categories is not None:
            return json_rendering.render_categories(reply.categories, self.registry)
        if reply.locations is not None:
            return json_rendering.render_locations(reply.locations)
        if reply.collection is not None:
            return self._render_json_collection(reply.collection, reply.collection_keys)
        return b""

    def _render_json_collection(self, members: Sequence[Entity], keys: str) -> bytes:
        """`json.render_entities` of the decorated members, reusing each entity's rendering.

        Stored entities are never mutated (an update stores a new object), so a rendering stays
        valid while the store holds the same object and no operation runs on it.
        """
        resources: list[bytes] = []
        links: list[bytes] = []
        cache = self._entity_json
        cached = cache.get
        busy = self.jobs.busy_locations
        link_kinds: dict[str, bool] = {}
        for entity in members:
            location = entity.location
            hit = cached(location)
            if hit is not None and hit[0] is entity and location not in busy:
                rendered = hit[1]
            else:
                rendered = json_rendering.render_entity(self.decorate(entity))
                cache[location] = (entity, rendered)
            kind = entity.kind
            is_link = link_kinds.get(kind)
            if is_link is None:
                is_link = link_kinds[kind] = self.registry.is_link_kind(kind)
            (links if is_link else resources).append(rendered)
        if len(cache) > 4 * max(len(members), 10000):
            cache.clear()
        parts = []
        if keys in ("resources", "both"):
            parts.append(b'"resources":[' + b",".join(resources) + b"]")
        if keys in ("links", "both"):
            parts.append(b'"links":[' + b",".join(links) + b"]")
        return b"{" + b",".join(parts) + b"}"

    def render_error(self, error: OcciError, media: str) -> OcciResponse:
        """An error in the negotiated media type, with a message that says what was wrong."""
        status = error.status
        message = error.message
        headers: list[tuple[str, str]] = []
        if isinstance(error, MethodNotAllowed) and error.allowed:
            headers.append(("Allow", ", ".join(error.allowed)))
        if isinstance(error, errors.Unauthorized):  # identity hook (issue 8): RFC 7235 §4.1
            headers.extend(("WWW-Authenticate", challenge) for challenge in error.challenges)
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


def _is_listing(route: Route, request: OcciRequest) -> bool:
    if route.target in (Target.KIND, Target.MIXIN, Target.UNBOUND):
        return True
    return False

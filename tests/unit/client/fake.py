"""A small in-memory OCCI server behind `httpx.MockTransport`, for the SDK and CLI unit tests.

It speaks the media types it is told to offer through the project's own renderings, keeps
entities in a dict, follows the GFD.224 state tables for actions and records every request.
It is deliberately simple (no filters beyond kind/attribute equality, no auth); the live
tests run the real server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import msgspec

from occipy.errors import MethodNotAllowed, NotAcceptable, NotFound, OcciError, PageTooLarge, ParseError
from occipy.model.catalogue import COMPUTE, NETWORK, OS_TPL, RESOURCE_TPL, STORAGE
from occipy.model.category import Mixin
from occipy.model.entity import Entity
from occipy.model.registry import Registry
from occipy.model.standard import standard_registry
from occipy.model.state import INITIAL_STATE, STATE_ATTRIBUTE, available_actions, next_state
from occipy.rendering import json as occi_json
from occipy.rendering import text, urilist
from occipy.rendering.messages import EntityMessage

BASE = "http://occi.test"
DEBIAN = "http://occi.test/occi/os_tpl#debian-12"
SMALL = "http://occi.test/occi/resource_tpl#tiny"
JSON_T, PLAIN_T, OCCI_T, URI_T = "application/occi+json", "text/plain", "text/occi", "text/uri-list"


def provider_registry() -> Registry:
    registry = standard_registry()
    registry.add(Mixin(scheme="http://occi.test/occi/os_tpl#", term="debian-12", title="Debian 12",
                       depends=(OS_TPL,), applies=(COMPUTE,), location="/mixin/os_tpl/debian-12/"))
    registry.add(Mixin(scheme="http://occi.test/occi/resource_tpl#", term="tiny", title="Tiny",
                       depends=(RESOURCE_TPL,), applies=(COMPUTE,), location="/mixin/resource_tpl/tiny/"))
    return registry


@dataclass
class FakeServer:
    """Call it with a request (it is the MockTransport handler)."""

    offers: tuple[str, ...] = (JSON_T, PLAIN_T, OCCI_T)
    operations: bool = True          # answer X-OCCI-Operation headers
    page_limit: int = 1000           # larger `number` -> 413
    registry: Registry = field(default_factory=provider_registry)
    entities: dict[str, Entity] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)   # mixin id -> entity paths
    ops: dict[str, dict[str, str]] = field(default_factory=dict)
    op_polls: int = 1                # how many GETs an operation stays "running"
    requests: list[httpx.Request] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        try:
            return self._handle(request)
        except OcciError as exc:
            return httpx.Response(exc.status, json={"code": exc.status, "message": exc.message},
                                  headers={"Content-Type": "application/json"})

    # ---- helpers ----------------------------------------------------------------------------

    def _accept(self, request: httpx.Request, listing: bool = False) -> str:
        accept = request.headers.get("accept", PLAIN_T)
        for media in [m.split(";")[0].strip() for m in accept.split(",")]:
            if media in self.offers or (listing and media == URI_T):
                return media
            if media == "application/json" and JSON_T in self.offers:
                return JSON_T
        raise NotAcceptable("nothing acceptable")

    def _fields(self, request: httpx.Request) -> list[text.Field]:
        if request.headers.get("content-type", "").startswith(OCCI_T):
            return text.fields_from_headers(list(request.headers.multi_items()))
        return text.fields_from_body(request.content)

    def _message(self, request: httpx.Request) -> EntityMessage:
        if request.headers.get("content-type", "").startswith(JSON_T):
            return occi_json.parse_entity(request.content)
        return text.parse_entity(self._fields(request))

    def _locations(self, request: httpx.Request) -> list[str]:
        if request.headers.get("content-type", "").startswith(JSON_T):
            return occi_json.parse_locations(request.content)
        return text.parse_locations(self._fields(request))

    def _render(self, entity: Entity, media: str) -> httpx.Response:
        view = entity.evolve(
            actions=available_actions(entity.kind, self._state(entity),
                                      self.registry.action_ids(entity.kind, entity.mixins)),
            links=tuple(e for e in self.entities.values() if e.source == entity.location))
        if media == JSON_T:
            return httpx.Response(200, content=occi_json.render_entity(view), headers={"Content-Type": JSON_T})
        fields = text.render_entity(view)
        if media == OCCI_T:
            return httpx.Response(200, content=b"OK", headers=[("Content-Type", OCCI_T),
                                                             *text.headers_from_fields(fields)])
        return httpx.Response(200, content=text.body_from_fields(fields), headers={"Content-Type": PLAIN_T})

    def _listing(self, urls: list[str], media: str, status: int = 200, extra: Iterable[tuple[str, str]] = ()
                 ) -> httpx.Response:
        absolute = [BASE + u if u.startswith("/") else u for u in urls]
        if media == URI_T:
            return httpx.Response(status, content=urilist.render(absolute), headers=[("Content-Type", URI_T), *extra])
        if media == JSON_T:
            return httpx.Response(status, content=occi_json.render_locations(absolute),
                                  headers=[("Content-Type", JSON_T), *extra])
        fields = text.render_locations(absolute)
        if media == OCCI_T:
            return httpx.Response(status, content=b"OK",
                                  headers=[("Content-Type", OCCI_T), *text.headers_from_fields(fields), *extra])
        return httpx.Response(status, content=text.body_from_fields(fields), headers=[("Content-Type", PLAIN_T), *extra])

    def _state(self, entity: Entity) -> str | None:
        name = STATE_ATTRIBUTE.get(entity.kind)
        value = entity.attributes.get(name) if name else None
        return value if isinstance(value, str) else None

    def _new_operation(self, path: str, action: str) -> list[tuple[str, str]]:
        if not self.operations:
            return []
        op_id = str(next(self._ids))
        self.ops[op_id] = {"id": op_id, "location": BASE + path, "action": action, "state": "running",
                           "polls": str(self.op_polls)}
        return [("X-OCCI-Operation", f"{BASE}/-/operations/{op_id}")]

    # ---- dispatch ---------------------------------------------------------------------------

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = urlsplit(str(request.url)).path
        method = request.method
        if path == "/-/":
            return self._query(request)
        if path.startswith("/-/operations/"):
            op = self.ops.get(path.rsplit("/", 1)[1])
            if op is None:
                raise NotFound("no such operation")
            polls = int(op["polls"])
            if polls <= 0 and op["state"] == "running":
                op["state"] = "failed" if "fail" in op["location"] else "succeeded"
            op["polls"] = str(polls - 1)
            data = {k: v for k, v in op.items() if k != "polls"}
            if op["state"] == "failed":
                data["message"] = "simulated failure"
            return httpx.Response(200, content=msgspec.json.encode(data), headers={"Content-Type": "application/json"})
        category = self.registry.by_location(path)
        if category is not None:
            return self._collection(request, category.type_id)
        entity = self.entities.get(path)
        if entity is None:
            raise NotFound(f"nothing at {path}")
        action = request.url.params.get("action")
        if method == "GET":
            return self._render(entity, self._accept(request))
        if method == "DELETE":
            del self.entities[path]
            return httpx.Response(200, headers={"Content-Type": PLAIN_T})
        if method == "POST" and action:
            return self._act(request, entity, action)
        message = self._message(request)
        if message.kind is not None and message.kind != entity.kind:
            raise ParseError("kind differs")
        if method == "POST":
            entity = entity.evolve(mixins=[*entity.mixins, *(m for m in message.mixins if m not in entity.mixins)],
                                   attributes={**entity.attributes, **message.attributes})
        elif method == "PUT":
            kept = {k: v for k, v in entity.attributes.items()
                    if not self.registry.attribute_defs(entity.kind, entity.mixins)[k].mutable}
            entity = entity.evolve(mixins=message.mixins, attributes={**kept, **message.attributes})
        self.entities[path] = entity
        return self._render(entity, self._accept(request))

    def _query(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            media = self._accept(request)
            categories = self.registry.categories()
            if media == JSON_T:
                return httpx.Response(200, content=occi_json.render_categories(categories, self.registry),
                                      headers={"Content-Type": JSON_T})
            fields = text.render_categories(categories, self.registry)
            if media == OCCI_T:
                return httpx.Response(200, content=b"OK", headers=[("Content-Type", OCCI_T),
                                                                 *text.headers_from_fields(fields)])
            return httpx.Response(200, content=text.body_from_fields(fields), headers={"Content-Type": PLAIN_T})
        if request.headers.get("content-type", "").startswith(JSON_T):
            definitions = occi_json.parse_mixin_definitions(request.content)
        else:
            definitions = text.parse_categories(self._fields(request), require_class=False)
        for definition in definitions:
            if request.method == "POST":
                self.registry.add(Mixin(scheme=definition.scheme, term=definition.term, title=definition.title,
                                        depends=definition.rel, location=definition.location, user_defined=True))
            else:
                self.registry.remove_mixin(definition.type_id)
        return httpx.Response(200, headers={"Content-Type": PLAIN_T})

    def _collection(self, request: httpx.Request, type_id: str) -> httpx.Response:
        if request.method == "GET":
            media = self._accept(request, listing=True)
            members = [e for p, e in self.entities.items()
                       if e.kind == type_id or type_id in e.mixins or type_id in self.registry.ancestors(e.kind)]
            fields = text.fields_from_headers(list(request.headers.multi_items()))
            wanted = text.parse_filter(fields) if fields else None
            if wanted is not None:
                members = [e for e in members if all(e.attributes.get(k) == v for k, v in wanted.attributes.items())
                           and all(c.type_id in (e.kind, *e.mixins) for c in wanted.categories)]
            if "page" in request.url.params:
                page, number = int(request.url.params["page"]), int(request.url.params["number"])
                if number > self.page_limit:
                    raise PageTooLarge("page too large")
                members = members[(page - 1) * number: page * number]
            if media == JSON_T:
                views = []
                for e in members:
                    views.append(e.evolve(actions=()))
                return httpx.Response(200, content=occi_json.render_entities(views, [], keys="resources"),
                                      headers={"Content-Type": JSON_T})
            return self._listing([e.location for e in members], media)
        if request.method in ("POST", "DELETE") and self.registry.is_mixin(type_id):
            for location in self._locations(request):
                target = self.entities.get(urlsplit(location).path)
                if target is None:
                    raise NotFound(location)
                if request.method == "POST" and type_id not in target.mixins:
                    self.entities[target.location] = target.evolve(mixins=[*target.mixins, type_id])
                elif request.method == "DELETE" and type_id in target.mixins:
                    self.entities[target.location] = target.evolve(
                        mixins=[m for m in target.mixins if m != type_id])
            return self._listing([e.location for e in self.entities.values() if type_id in e.mixins],
                                 self._accept(request, listing=True))
        if request.method == "POST":
            return self._create(request, type_id)
        raise MethodNotAllowed("method not allowed")

    def _create(self, request: httpx.Request, type_id: str) -> httpx.Response:
        message = self._message(request)
        if message.kind != type_id:
            raise ParseError(f"kind {message.kind} does not match the collection")
        entity_id = f"{next(self._ids):04d}"
        path = self.registry.kind(type_id).location + entity_id  # type: ignore[operator]
        values = dict(message.attributes)
        values["occi.core.id"] = entity_id
        state_name = STATE_ATTRIBUTE.get(type_id)
        if state_name:
            values[state_name] = "online" if type_id == STORAGE else INITIAL_STATE.get(type_id, "active")
            if type_id in (COMPUTE, NETWORK):
                values[state_name] = "active"
        entity = Entity(kind=type_id, entity_id=entity_id, location=path, mixins=tuple(message.mixins),
                        attributes=values)
        self.entities[path] = entity
        for n, link in enumerate(message.links):
            assert link.kind is not None and link.target is not None
            link_path = self.registry.kind(link.kind).location + f"{entity_id}-{n}"  # type: ignore[operator]
            attrs = {**link.attributes, "occi.core.id": f"{entity_id}-{n}", "occi.core.source": path,
                     "occi.core.target": link.target}
            if link.target_kind:
                attrs["occi.core.target.kind"] = link.target_kind
            self.entities[link_path] = Entity(kind=link.kind, entity_id=f"{entity_id}-{n}", location=link_path,
                                              mixins=tuple(link.mixins), attributes=attrs)
        media = self._accept(request, listing=True)
        headers = [("Location", BASE + path), *self._new_operation(path, "create")]
        response = self._listing([path], media, status=201, extra=headers)
        return response

    def _act(self, request: httpx.Request, entity: Entity, term: str) -> httpx.Response:
        if request.headers.get("content-type", "").startswith(JSON_T):
            invocation = occi_json.parse_action(request.content)
        else:
            invocation = text.parse_action(self._fields(request))
        assert invocation.action is not None and invocation.action.endswith("#" + term)
        target = next_state(entity.kind, self._state(entity), invocation.action)
        name = STATE_ATTRIBUTE.get(entity.kind)
        if target is not None and name:
            entity = entity.with_attributes({name: target})
            self.entities[entity.location] = entity
        response = self._render(entity, self._accept(request))
        for header in self._new_operation(entity.location, term):
            response.headers[header[0]] = header[1]
        return response

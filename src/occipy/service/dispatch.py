"""The one dispatch table: (target, verb) -> how to parse the request, which handler answers.

GFD.223 §8 Table 1 as data (starlette's routing table is the model): which methods a target
allows is read from the keys, so 405 and `Allow` never disagree with what is dispatched. The verb
is the HTTP method, except that a POST with `?action=` is the verb ACTION, and HEAD is GET.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from occipy.model.registry import Registry
from occipy.service import events, parse
from occipy.service.handlers import actions, collections, entities, operations, query
from occipy.service.handlers import events as event_stream
from occipy.service.messages import OcciRequest
from occipy.service.results import Result
from occipy.service.routes import Target

ACTION: Final = "ACTION"

Handler = Callable[..., Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    parse: Callable[[OcciRequest, Registry], Any]
    handle: Handler


_LIST = Endpoint(parse.listing, collections.list_collection)
_COLLECTION_ACTION = Endpoint(parse.invocation, actions.invoke_on_collection)

ENDPOINTS: Final[Mapping[tuple[Target, str], Endpoint]] = {
    (Target.QUERY, "GET"): Endpoint(parse.discovery, query.discover),
    (Target.QUERY, "POST"): Endpoint(parse.definitions, query.add_mixins),
    (Target.QUERY, "DELETE"): Endpoint(parse.removals, query.remove_mixins),
    (Target.OPENAPI, "GET"): Endpoint(parse.no_body, query.openapi_document),
    (Target.OPERATIONS, "GET"): Endpoint(parse.listing, operations.list_operations),
    (Target.OPERATION, "GET"): Endpoint(parse.no_body, operations.get_operation),
    (Target.EVENTS, "GET"): Endpoint(events.parse_request, event_stream.stream),  # issue 12
    (Target.ENTITY, "GET"): Endpoint(parse.no_body, entities.get),
    (Target.ENTITY, ACTION): Endpoint(parse.invocation, actions.invoke),
    (Target.ENTITY, "POST"): Endpoint(parse.one_entity, entities.partial_update),
    (Target.ENTITY, "PUT"): Endpoint(parse.one_entity, entities.replace),
    (Target.ENTITY, "DELETE"): Endpoint(parse.no_body, entities.delete),
    (Target.NEW, "PUT"): Endpoint(parse.one_entity, entities.create_at),
    (Target.ROOT, "GET"): _LIST,
    # P-19: a full rendering POSTed to the root creates the entity in its Kind's collection.
    (Target.ROOT, "POST"): Endpoint(parse.entities, entities.create_in_root),
    (Target.ROOT, "DELETE"): Endpoint(parse.no_body, collections.delete_unbound),
    (Target.UNBOUND, "GET"): _LIST,
    (Target.UNBOUND, "DELETE"): Endpoint(parse.no_body, collections.delete_unbound),
    (Target.KIND, "GET"): _LIST,
    (Target.KIND, ACTION): _COLLECTION_ACTION,
    (Target.KIND, "POST"): Endpoint(parse.entities, entities.create_in_kind),
    (Target.KIND, "DELETE"): Endpoint(parse.no_body, collections.delete_kind_members),
    (Target.MIXIN, "GET"): _LIST,
    (Target.MIXIN, ACTION): _COLLECTION_ACTION,
    (Target.MIXIN, "POST"): Endpoint(parse.locations, collections.associate),
    (Target.MIXIN, "PUT"): Endpoint(parse.locations, collections.replace_members),
    (Target.MIXIN, "DELETE"): Endpoint(parse.locations, collections.dissociate),
}

_ORDER: Final = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS")


def _allowed(target: Target) -> tuple[str, ...]:
    verbs = {verb for key_target, verb in ENDPOINTS if key_target is target}
    methods = {"OPTIONS"} | {"POST" if verb == ACTION else verb for verb in verbs}
    if "GET" in methods:
        methods.add("HEAD")
    return tuple(method for method in _ORDER if method in methods)


_ALLOWED: Final[Mapping[Target, tuple[str, ...]]] = {target: _allowed(target) for target in Target}


def allowed(target: Target) -> tuple[str, ...]:
    """The HTTP methods a target allows (the `Allow` header of 405 and OPTIONS), from the table."""
    return _ALLOWED[target]


def verb_of(method: str, query: Mapping[str, str]) -> str:
    if method == "HEAD":
        return "GET"
    if method == "POST" and "action" in query:
        return ACTION
    return method

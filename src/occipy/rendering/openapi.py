"""OpenAPI 3.1 description of the OCCI interface a registry serves: `render(registry, base_url)`.

A pure function of the registry: every Kind and Mixin location becomes a collection path, every
instantiable Kind an entity path (`<location>{id}`), every Action a value of the `action` query
parameter and a request body; each rendering of GFD.223 §5 (text/plain, text/occi+plain,
text/occi, application/occi+json and its alias application/json, text/uri-list for listings) is a
media type, with the JSON structures from `occi-1.2.schema.json` (GFD.226, errata fixed) under
`components/schemas`, and the status codes GFD.223 §5.4 lists (http-protocol.md §5). Category
attribute definitions become JSON Schemas of the attribute values (`<Kind>Attributes`).

Imports the model and the packaged schema only; no I/O after import.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any, Final

from occipy.model.category import Action, AttributeDef, Kind, Mixin
from occipy.model.registry import ENTITY, Registry

_SCHEMA_FILE: Final = "occi-1.2.schema.json"
# The OCCI JSON schema (draft-04), shipped in this package; converted to OpenAPI 3.1 (2020-12).
_OCCI_SCHEMA: Final[Mapping[str, Any]] = json.loads(
    resources.files(__package__).joinpath(_SCHEMA_FILE).read_text(encoding="utf-8"))

OPENAPI_PATH: Final = "/-/openapi.json"
EVENTS_PATH: Final = "/-/events"
OPERATIONS_PATH: Final = "/-/operations/"
EVENT_STREAM: Final = "text/event-stream"
OCCI_JSON: Final = "application/occi+json"
_TEXT_TYPES: Final = ("text/plain", "text/occi+plain")
_JSON_TYPES: Final = (OCCI_JSON, "application/json")
_URI_LIST: Final = "text/uri-list"
_TEXT_OCCI: Final = "text/occi"

# GFD.223 §5.4: the codes a client MUST understand, with what they mean here (http-protocol.md §5).
_STATUS: Final[Mapping[str, str]] = {
    "400": "Bad request: a parse error, a missing or invalid attribute, a bad filter or page.",
    "401": "Missing or invalid credentials.",
    "403": "Forbidden: an immutable attribute, a mixin that does not apply, a provider mixin.",
    "404": "Not found: an unknown location, kind, mixin, action or attribute.",
    "405": "The method is not defined for this path (see the Allow header).",
    "406": "Not acceptable: no rendering of the answer in the media types of Accept.",
    "409": "Conflict: the action is not allowed in the entity's state, an ambiguous action, a taken id.",
    "413": "Too large: the body, the header section, or the page size (`number`).",
    "415": "Unsupported media type (Content-Type).",
    "500": "Internal error: the server's bug; partial changes are rolled back.",
    "501": "Not implemented: a client OCCI version above 1.2, or a feature the cloud lacks.",
    "503": "The cloud (driver) is unavailable.",
}
_COMMON_ERRORS: Final = ("400", "401", "404", "405", "406", "500", "501", "503")

_DRAFT4_BOOL_EXCLUSIVE: Final = (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum"))


def render(registry: Registry, base_url: str, visible: Callable[[Mixin], bool] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of everything `registry` serves, with `base_url` as its server.

    `visible` leaves out mixins the reader may not see (other tenants' user mixins).
    """
    builder = _Builder(registry, visible)
    return builder.document(base_url)


def render_bytes(registry: Registry, base_url: str, visible: Callable[[Mixin], bool] | None = None) -> bytes:
    """`render` as UTF-8 JSON (what `GET /-/openapi.json` answers)."""
    return json.dumps(render(registry, base_url, visible), ensure_ascii=False, sort_keys=False).encode("utf-8")


# ---- JSON Schema conversion ------------------------------------------------------------------


def _convert(schema: Any) -> Any:
    """Draft-04 -> JSON Schema 2020-12 (OpenAPI 3.1): refs into components, boolean exclusives."""
    if isinstance(schema, list):
        return [_convert(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("$schema", "id"):
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith("#/definitions/"):
            out[key] = "#/components/schemas/" + value[len("#/definitions/"):]
        elif key in ("properties", "definitions", "patternProperties") and isinstance(value, dict):
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        else:
            out[key] = _convert(value)
    for exclusive, bound in _DRAFT4_BOOL_EXCLUSIVE:
        # draft-04 `exclusiveMinimum: true` qualifies `minimum`; 2020-12 carries the bound itself.
        flag = out.get(exclusive)
        if isinstance(flag, bool):
            del out[exclusive]
            if flag and bound in out:
                out[exclusive] = out.pop(bound)
    return out


def _value_schema(adef: AttributeDef) -> dict[str, Any]:
    """The JSON Schema of one attribute's values (GFD.226 §3.5.1: `type` plus its `pattern`)."""
    json_type = {"string": "string", "number": "number", "boolean": "boolean", "array": "array",
                 "object": "object"}[adef.type]
    schema: dict[str, Any] = {"type": json_type}
    if adef.pattern:
        pattern = _convert(dict(adef.pattern))
        if pattern.get("type") == "integer" and json_type == "number":
            schema["type"] = "integer"
            pattern = {k: v for k, v in pattern.items() if k != "type"}
        if pattern:
            schema = {"allOf": [schema, pattern]} if "type" in pattern else {**pattern, **schema}
    if adef.description:
        schema["description"] = adef.description
    if adef.default is not None:
        schema["default"] = adef.default
    # OCCI's own flags, kept as extensions: `mutable: false` still allows a value at creation,
    # which OpenAPI's readOnly would forbid.
    schema["x-occi-mutable"] = adef.mutable
    schema["x-occi-required"] = adef.required
    return schema


def _attributes_schema(defs: Sequence[AttributeDef], open_: bool) -> dict[str, Any]:
    properties = {adef.name: _value_schema(adef) for adef in defs}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    # Mixins add attributes of their own: an entity's attribute object stays open.
    schema["additionalProperties"] = {"$ref": "#/components/schemas/attribute_value"} if open_ else False
    return schema


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "x"


# ---- the document ----------------------------------------------------------------------------


class _Builder:
    def __init__(self, registry: Registry, visible: Callable[[Mixin], bool] | None = None) -> None:
        self.registry = registry
        self.visible = visible
        self.schemas: dict[str, Any] = {
            name: _convert(copy.deepcopy(dict(schema))) for name, schema in _OCCI_SCHEMA["definitions"].items()
        }
        self.schemas["error"] = {
            "description": "An error, as the server wrote it (json-rendering.md; occipy)",
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
        }
        self.schemas["locations"] = {
            "description": "Absolute locations of created entities (json-rendering.md §9, erratum 15)",
            "type": "array", "items": {"type": "string"},
        }
        self.schemas["operation"] = {
            "description": "A long operation on one entity (GET /-/operations/{id}); the answers that start "
                           "one carry its URL in X-OCCI-Operation",
            "type": "object", "required": ["id", "location", "action", "state"],
            "properties": {
                "id": {"type": "string"},
                "location": {"type": "string", "description": "absolute URL of the entity"},
                "action": {"type": "string", "description": "create, delete, update or an action term"},
                "state": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
                "message": {"type": "string"},
                "created": {"type": "number", "description": "seconds since the epoch"},
                "updated": {"type": "number", "description": "seconds since the epoch"},
            },
        }
        # issue 12: what one server-sent event of GET /-/events carries (its `data:` line).
        self.schemas["event"] = {
            "description": "One change, the JSON `data:` line of a server-sent event of GET /-/events; the "
                           "event's `id:` field is `id` (send it back as Last-Event-ID to resume)",
            "type": "object", "required": ["id", "type", "location", "operation", "state"],
            "properties": {
                "id": {"type": "integer", "description": "grows with commit order"},
                "type": {"type": "string", "enum": ["created", "updated", "state", "deleted", "operation", "lost"],
                         "description": "state: the entity's lifecycle state changed; updated: anything else "
                                        "changed; operation: an operation record was written or changed state; "
                                        "lost: events after the Last-Event-ID sent are no longer kept"},
                "location": {"type": ["string", "null"], "description": "absolute URL of the entity"},
                "operation": {"type": ["string", "null"],
                              "description": "absolute URL of the operation record (/-/operations/{id}) of an "
                                             "operation event; null otherwise"},
                "state": {"type": ["string", "null"],
                          "description": "the entity's state (entity events) or the operation's state "
                                         "(queued, running, succeeded, failed)"},
                "message": {"type": "string"},
                "kind": {"type": "string", "description": "the entity's kind (type id)"},
                "action": {"type": "string", "description": "operation events: create, update, delete or an "
                                                           "action term"},
                "tenant": {"type": "string"},
                "time": {"type": "number", "description": "seconds since the epoch, when committed"},
            },
        }
        self.operation_ids: set[str] = set()
        self.names: dict[str, str] = {}

    # -- names ----------------------------------------------------------------------------------

    def name(self, type_id: str) -> str:
        """A components/schemas name for a category, unique in this document."""
        found = self.names.get(type_id)
        if found is not None:
            return found
        scheme, _, term = type_id.rpartition("#")
        base = _slug(term)
        candidate = base
        taken = set(self.names.values()) | set(self.schemas)
        if candidate in taken:
            candidate = f"{base}_{_slug(scheme.split('//', 1)[-1])}"
        counter = 2
        while candidate in taken:
            candidate = f"{base}_{counter}"
            counter += 1
        self.names[type_id] = candidate
        return candidate

    def operation_id(self, verb: str, category: str) -> str:
        base = f"{verb}_{self.name(category)}"
        candidate, counter = base, 2
        while candidate in self.operation_ids:
            candidate = f"{base}_{counter}"
            counter += 1
        self.operation_ids.add(candidate)
        return candidate

    # -- pieces ---------------------------------------------------------------------------------

    def entity_schema(self, kind: Kind) -> str:
        """`<Kind>`: the kind's resource or link rendering, with typed attributes."""
        name = self.name(kind.type_id)
        if name in self.schemas:
            return name
        attrs = f"{name}_attributes"
        defs = list(self.registry.kind_attribute_defs(kind.type_id).values())
        self.schemas[attrs] = _attributes_schema(defs, open_=True)
        base = "link" if self.registry.is_link_kind(kind.type_id) else "resource"
        self.schemas[name] = {
            "description": f"{kind.title or kind.term} ({kind.type_id}): the {base} rendering",
            "allOf": [{"$ref": f"#/components/schemas/{base}"},
                      {"properties": {"attributes": {"$ref": f"#/components/schemas/{attrs}"}}}],
        }
        request = "link_request" if base == "link" else "resource_request"
        self.schemas[f"{name}_request"] = {
            "description": f"A {kind.term} in a create or update request",
            "allOf": [{"$ref": f"#/components/schemas/{request}"},
                      {"properties": {"kind": {"const": kind.type_id},
                                      "attributes": {"$ref": f"#/components/schemas/{attrs}"}}}],
        }
        return name

    def action_schema(self, action: Action) -> str:
        name = f"{self.name(action.type_id)}_invocation"
        if name not in self.schemas:
            params = _attributes_schema(action.attributes, open_=False)
            required = [adef.name for adef in action.attributes if adef.required]
            if required:
                params["required"] = required
            self.schemas[name] = {
                "description": f"Invocation of {action.title or action.term} ({action.type_id})",
                "allOf": [{"$ref": "#/components/schemas/action_invocation"},
                          {"properties": {"action": {"const": action.type_id}, "attributes": params}}],
            }
        return name

    def actions_for(self, category: Kind | Mixin) -> list[Action]:
        """The actions an entity of this kind (or a member of this mixin) may be offered."""
        ids: list[str] = []
        if isinstance(category, Kind):
            ids = self.registry.action_ids(category.type_id)
            for mixin in self._mixins():
                if mixin.actions and self.registry.applies_to(mixin.type_id, category.type_id):
                    ids.extend(a for a in mixin.actions if a not in ids)
        else:
            ids = self.registry.action_ids(ENTITY, [category.type_id])
        return [self.registry.action(action_id) for action_id in ids]

    @staticmethod
    def errors(*codes: str) -> dict[str, Any]:
        return {code: {"$ref": f"#/components/responses/e{code}"} for code in codes}

    @staticmethod
    def listing(schema: str) -> dict[str, Any]:
        return {
            "description": "The collection (an exhausted page is an empty collection, GFD.223 §6)",
            "headers": _OCCI_HEADERS,
            "content": {
                **{media: {"schema": {"$ref": f"#/components/schemas/{schema}"}} for media in _JSON_TYPES},
                **{media: {"schema": {"type": "string", "description": "X-OCCI-Location lines"}}
                   for media in _TEXT_TYPES},
                _TEXT_OCCI: {"schema": {"type": "string", "description": "OK; the locations are in X-OCCI-Location"}},
                _URI_LIST: {"schema": {"type": "string", "description": "one absolute URL a line"}},
            },
        }

    @staticmethod
    def rendering(schema: str, description: str) -> dict[str, Any]:
        return {
            "description": description,
            "headers": _OCCI_HEADERS,
            "content": {
                **{media: {"schema": {"$ref": f"#/components/schemas/{schema}"}} for media in _JSON_TYPES},
                **{media: {"schema": {"type": "string", "description": "GFD.229 text rendering"}}
                   for media in _TEXT_TYPES},
                _TEXT_OCCI: {"schema": {"type": "string", "description": "OK; the rendering is in the headers"}},
            },
        }

    @staticmethod
    def body(schema: dict[str, Any], description: str, required: bool = True) -> dict[str, Any]:
        text = {"type": "string", "description": "GFD.229 text rendering (Category, Link, X-OCCI-Attribute, "
                                                  "X-OCCI-Location lines)"}
        return {
            "description": description,
            "required": required,
            "content": {
                **{media: {"schema": schema} for media in _JSON_TYPES},
                **{media: {"schema": text} for media in _TEXT_TYPES},
                _TEXT_OCCI: {"schema": {"type": "string", "description": "ignored; the data is in the headers"}},
            },
        }

    def action_param(self, actions: Sequence[Action]) -> dict[str, Any]:
        terms = sorted({action.term for action in actions})
        schema: dict[str, Any] = {"type": "string"}
        if terms:
            schema["enum"] = terms
        return {"name": "action", "in": "query", "required": False, "schema": schema,
                "description": "Invoke this action (GFD.223 §10.3.2); the body is an action invocation"}

    # -- paths ----------------------------------------------------------------------------------

    def query_paths(self) -> dict[str, Any]:
        get = {
            "tags": ["query interface"], "summary": "The categories this server serves (GFD.223 §9.1)",
            "parameters": [_CATEGORY_QUERY, _CATEGORY_HEADER],
            "responses": {"200": self.rendering("query_interface", "Kinds, mixins and actions"),
                          **self.errors(*_COMMON_ERRORS)},
        }
        post = {
            "tags": ["query interface"], "summary": "Define user mixins (GFD.223 §9.3)",
            "requestBody": self.body({"$ref": "#/components/schemas/mixin_collection"}, "The new mixins"),
            "responses": {"200": self.rendering("mixin_collection", "The mixins defined"),
                          **self.errors(*_COMMON_ERRORS, "403", "409", "413", "415")},
        }
        delete = {
            "tags": ["query interface"], "summary": "Remove user mixins (GFD.223 §9.4)",
            "requestBody": self.body({"$ref": "#/components/schemas/mixin_collection"}, "The mixins to remove"),
            "responses": {"200": {"description": "Removed"}, **self.errors(*_COMMON_ERRORS, "403", "409", "415")},
        }
        paths: dict[str, Any] = {}
        for path, suffix in (("/-/", ""), ("/.well-known/org/ogf/occi/-/", "_well_known")):
            paths[path] = {
                "get": {**get, "operationId": "query" + suffix},
                "post": {**post, "operationId": "add_mixins" + suffix},
                "delete": {**delete, "operationId": "remove_mixins" + suffix},
            }
        paths["/-/operations/{id}"] = {"get": {
            "tags": ["operations"], "operationId": "get_operation",
            "summary": "One long operation: its state and message (occipy)",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": self.rendering("operation", "The operation record"),
                          **self.errors(*_COMMON_ERRORS)},
        }}
        paths[OPERATIONS_PATH] = {"get": {
            "tags": ["operations"], "operationId": "list_operations",
            "summary": "The caller's operations, oldest first (their records' URLs; occipy)",
            "parameters": [
                *_LIST_PARAMETERS[:2],
                {"name": "attribute", "in": "query", "required": False, "schema": {"const": "state"},
                 "description": "with `value`: only operations in this state"},
                {"name": "value", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]}},
            ],
            "responses": {"200": self.listing("locations"), **self.errors(*_COMMON_ERRORS, "413")},
        }}
        paths[EVENTS_PATH] = {"get": {
            "tags": ["operations"], "operationId": "events",
            "summary": "Committed changes the caller may see, as a server-sent event stream (occipy)",
            "description": "A text/event-stream that stays open: one event per change (an entity created, "
                           "updated, changing state or deleted; an operation record written), each with an `id:` "
                           "and one JSON `data:` line (schema `event`); a keep-alive comment after a quiet "
                           "interval; the stream ends when the server shuts down. A principal sees their "
                           "tenant's changes, an administrator every tenant's. Reconnect with Last-Event-ID to "
                           "resume without losing events; an id older than what the server keeps gets an "
                           "event of type `lost` first. Each filter is a comma-separated list; an event passes "
                           "when it matches every filter given.",
            "x-occipy-stream": True,
            "parameters": [
                {"name": "kind", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": "only entities of these kinds (type ids or unambiguous terms; sub-kinds match)"},
                {"name": "location", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": "only these entities (paths or URLs); one ending in `/` matches every location "
                                "below it"},
                {"name": "operation", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": "only these operations (ids or /-/operations/{id} URLs)"},
                {"name": "type", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": "only these event types: created, updated, state, deleted, operation"},
                {"name": "Last-Event-ID", "in": "header", "required": False,
                 "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                 "description": "resume after this event id (what the last event received carried)"},
                {"name": "last_event_id", "in": "query", "required": False,
                 "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                 "description": "the same as Last-Event-ID, for clients that cannot set headers"},
            ],
            "responses": {
                "200": {"description": "The stream (`retry:` and `id:` first, then events as they are committed)",
                        "content": {EVENT_STREAM: {"schema": {"type": "string"},
                                                   "x-occipy-event": {"$ref": "#/components/schemas/event"}}}},
                **self.errors(*_COMMON_ERRORS),
            },
        }}
        paths[OPENAPI_PATH] = {"get": {
            "tags": ["query interface"], "operationId": "openapi",
            "summary": "This description (regenerated when kinds, mixins or actions change)",
            "responses": {"200": {"description": "OpenAPI 3.1",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}},
        }}
        paths["/"] = {
            "get": {
                "tags": ["collections"], "operationId": "list_all",
                "summary": "Every entity (the unbound root path, GFD.223 §4.1)",
                "parameters": _LIST_PARAMETERS,
                "responses": {"200": self.listing("entity_collection"), **self.errors(*_COMMON_ERRORS, "413")},
            },
        }
        return paths

    def kind_paths(self, kind: Kind) -> dict[str, Any]:
        location = kind.location
        assert location is not None
        name = self.entity_schema(kind)
        is_link = self.registry.is_link_kind(kind.type_id)
        collection = "link_collection" if is_link else "resource_collection"
        actions = self.actions_for(kind)
        invocations = [{"$ref": f"#/components/schemas/{self.action_schema(a)}"} for a in actions]
        create_or_act: dict[str, Any] = {"$ref": f"#/components/schemas/{name}_request"}
        if invocations:
            create_or_act = {"oneOf": [create_or_act, *invocations]}
        title = kind.title or kind.term
        tags = [f"kind {kind.term}"]
        created = {
            "description": "Created: Location and X-OCCI-Location name the new entity; X-OCCI-Operation its "
                           "operation",
            "headers": {"Location": {"schema": {"type": "string"}}, **_OCCI_HEADERS},
            "content": {
                **{media: {"schema": {"$ref": "#/components/schemas/locations"}} for media in _JSON_TYPES},
                **{media: {"schema": {"type": "string"}} for media in (*_TEXT_TYPES, _TEXT_OCCI)},
            },
        }
        entity_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
                     "description": "the last segment of the entity's location"}
        return {
            location: {
                "get": {"tags": tags, "operationId": self.operation_id("list", kind.type_id),
                        "summary": f"List {title} entities (GFD.223 §11.1)", "parameters": _LIST_PARAMETERS,
                        "responses": {"200": self.listing(collection), **self.errors(*_COMMON_ERRORS, "413")}},
                "post": {"tags": tags, "operationId": self.operation_id("create", kind.type_id),
                         "summary": f"Create a {title} (GFD.223 §11.2), or with ?action= run an action on "
                                    "every member",
                         "parameters": [self.action_param(actions)],
                         "requestBody": self.body(create_or_act, "The new entity, or an action invocation"),
                         "responses": {"201": created,
                                       "200": self.listing(collection),
                                       **self.errors(*_COMMON_ERRORS, "403", "409", "413", "415")}},
                "delete": {"tags": tags, "operationId": self.operation_id("delete_all", kind.type_id),
                           "summary": f"Delete every {title} (GFD.223 §11.4.1)",
                           "responses": {"200": {"description": "Deleted", "headers": _OCCI_HEADERS},
                                         **self.errors(*_COMMON_ERRORS, "403", "409")}},
            },
            location + "{id}": {
                "parameters": [entity_id],
                "get": {"tags": tags, "operationId": self.operation_id("get", kind.type_id),
                        "summary": f"One {title}, with its links and the actions its state allows (GFD.223 §10.1)",
                        "responses": {"200": self.rendering(name, "The entity"), **self.errors(*_COMMON_ERRORS)}},
                "put": {"tags": tags, "operationId": self.operation_id("replace", kind.type_id),
                        "summary": f"Create a {title} at this path, or replace it (GFD.223 §10.2)",
                        "requestBody": self.body({"$ref": f"#/components/schemas/{name}_request"},
                                                 "The full entity"),
                        "responses": {"200": self.rendering(name, "Replaced"), "201": created,
                                      **self.errors(*_COMMON_ERRORS, "403", "409", "413", "415")}},
                "post": {"tags": tags, "operationId": self.operation_id("update", kind.type_id),
                         "summary": "Update some attributes or add mixins, or with ?action= run an action "
                                    "(GFD.223 §10.3)",
                         "parameters": [self.action_param(actions)],
                         "requestBody": self.body(create_or_act, "A partial entity, or an action invocation"),
                         "responses": {"200": self.rendering(name, "The entity after the change"),
                                       **self.errors(*_COMMON_ERRORS, "403", "409", "413", "415")}},
                "delete": {"tags": tags, "operationId": self.operation_id("delete", kind.type_id),
                           "summary": f"Delete this {title} (GFD.223 §10.4)",
                           "responses": {"200": {"description": "Deleted", "headers": _OCCI_HEADERS},
                                         **self.errors(*_COMMON_ERRORS, "409")}},
            },
        }

    def mixin_paths(self, mixin: Mixin) -> dict[str, Any]:
        location = mixin.location
        assert location is not None
        actions = self.actions_for(mixin)
        members: dict[str, Any] = {"$ref": "#/components/schemas/entity_collection"}
        invocations = [{"$ref": f"#/components/schemas/{self.action_schema(a)}"} for a in actions]
        post_body = {"oneOf": [members, *invocations]} if invocations else members
        title = mixin.title or mixin.term
        origin = "a user mixin" if mixin.user_defined else "a provider mixin"
        tags = ["user mixins" if mixin.user_defined else "mixins"]
        return {location: {
            "get": {"tags": tags, "operationId": self.operation_id("list", mixin.type_id),
                    "summary": f"Entities associated with {title} ({origin}, {mixin.type_id})",
                    "parameters": _LIST_PARAMETERS,
                    "responses": {"200": self.listing("entity_collection"), **self.errors(*_COMMON_ERRORS, "413")}},
            "post": {"tags": tags, "operationId": self.operation_id("associate", mixin.type_id),
                     "summary": f"Associate entities with {title} (GFD.223 §11.2.2), or with ?action= run an "
                                "action on every member",
                     "parameters": [self.action_param(actions)],
                     "requestBody": self.body(post_body, "The entities (full renderings or {location} stubs)"),
                     "responses": {"200": self.listing("entity_collection"),
                                   **self.errors(*_COMMON_ERRORS, "403", "409", "413", "415")}},
            "put": {"tags": tags, "operationId": self.operation_id("replace_members", mixin.type_id),
                    "summary": f"Make these entities the only members of {title} (GFD.223 §11.3)",
                    "requestBody": self.body(members, "Every member"),
                    "responses": {"200": self.listing("entity_collection"),
                                  **self.errors(*_COMMON_ERRORS, "403", "409", "413", "415")}},
            "delete": {"tags": tags, "operationId": self.operation_id("dissociate", mixin.type_id),
                       "summary": f"Dissociate entities (all without a body) from {title} (GFD.223 §11.4.2)",
                       "requestBody": self.body(members, "The entities to dissociate", required=False),
                       "responses": {"200": self.listing("entity_collection"),
                                     **self.errors(*_COMMON_ERRORS, "403", "409", "415")}},
        }}

    def _mixins(self) -> list[Mixin]:
        return [m for m in self.registry.mixins() if self.visible is None or self.visible(m)]

    def document(self, base_url: str) -> dict[str, Any]:
        paths = self.query_paths()
        for kind in self.registry.kinds():
            if kind.location is not None:
                paths.update(self.kind_paths(kind))
        for mixin in self._mixins():
            if mixin.location is not None:
                paths.update(self.mixin_paths(mixin))
        responses = {
            f"e{code}": {
                "description": text,
                "content": {
                    **{media: {"schema": {"$ref": "#/components/schemas/error"}} for media in _JSON_TYPES},
                    **{media: {"schema": {"type": "string"}} for media in (*_TEXT_TYPES, _TEXT_OCCI)},
                },
            }
            for code, text in _STATUS.items()
        }
        responses["e401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        responses["e405"]["headers"] = {"Allow": {"schema": {"type": "string"}}}
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "OCCI 1.2 (occipy)",
                "version": f"1.2+registry.{self.registry.version}",
                "description": "The Open Cloud Computing Interface as this server serves it now: every kind, "
                               "mixin and action of its query interface (GFD.221, GFD.223, GFD.224, GFD.226, "
                               "GFD.229). Requests SHOULD carry `User-Agent: ... OCCI/1.2`; answers carry "
                               "`Server: ... OCCI/1.2`.",
            },
            "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
            "servers": [{"url": base_url}],
            "security": [{}, {"basic": []}, {"bearer": []}],
            "paths": paths,
            "components": {
                "schemas": self.schemas,
                "responses": responses,
                "securitySchemes": {
                    "basic": {"type": "http", "scheme": "basic", "description": "GFD.223 §12: HTTP Basic"},
                    "bearer": {"type": "http", "scheme": "bearer"},
                },
            },
        }


_OCCI_HEADERS: Final[dict[str, Any]] = {
    "X-OCCI-Operation": {"description": "URL of the operation record (/-/operations/{id}) when the request "
                                        "started cloud work", "schema": {"type": "string"}},
    "Server": {"description": "contains OCCI/1.2 (GFD.223 §5.3)", "schema": {"type": "string"}},
}
_CATEGORY_QUERY: Final[dict[str, Any]] = {
    "name": "category", "in": "query", "required": False, "schema": {"type": "string"},
    "description": "Only this category: a type id (scheme#term) or a term (http-protocol.md §8.3)",
}
_CATEGORY_HEADER: Final[dict[str, Any]] = {
    "name": "Category", "in": "header", "required": False, "schema": {"type": "string"},
    "description": "GFD.223 §7 filter: a Category rendering (GFD.229)",
}
_LIST_PARAMETERS: Final[list[dict[str, Any]]] = [
    {"name": "page", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1},
     "description": "1-based page index; needs `number` (GFD.223 §6)"},
    {"name": "number", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1},
     "description": "entities a page; too many is 413 (GFD.223 §6)"},
    _CATEGORY_QUERY,
    {"name": "attribute", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "with `value`: only entities whose attribute has this value (http-protocol.md §8.3)"},
    {"name": "value", "in": "query", "required": False, "schema": {"type": "string"}},
    _CATEGORY_HEADER,
    {"name": "X-OCCI-Attribute", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "GFD.223 §7 filter: name=value pairs the entities must have"},
]

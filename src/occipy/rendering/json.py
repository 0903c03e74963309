"""application/occi+json (GFD.226): parse_* turns bodies into `messages` values, render_* turns model objects into bytes.

The wire shapes are private msgspec Structs with `forbid_unknown_fields=True` that mirror the
member tables of GFD.226 §3 (json-rendering.md §2-§9); one Decoder per body type is built at
import. Imports `occipy.model`, `occipy.rendering.messages`, `occipy.errors` and msgspec; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType, field

from occipy.errors import ParseError
from occipy.model.category import Action, AttributeDef, Kind, Mixin
from occipy.model.entity import Entity
from occipy.model.registry import ENTITY, Registry
from occipy.rendering.messages import ActionInvocation, CategoryDefinition, EntityMessage, LinkMessage

__all__ = [
    "MEDIA_TYPE",
    "parse_action",
    "parse_entities",
    "parse_entity",
    "parse_entity_collection",
    "parse_locations",
    "parse_mixin_definitions",
    "parse_query_interface",
    "render_action_invocation",
    "render_categories",
    "render_entities",
    "render_entity",
    "render_entity_message",
    "render_error",
    "render_locations",
    "render_mixin_definitions",
]

# GFD.226 §3: "the media type application/occi+json MUST be used".
MEDIA_TYPE = "application/occi+json"

# Value constraints of occi-1.2.schema.json, checked by msgspec while decoding so that the error
# names the JSON path. `\A...\Z` rather than `^...$`: `$` would accept a trailing newline.
_TypeId = Annotated[str, Meta(pattern=r"\A[^\s#]+#[A-Za-z0-9][A-Za-z0-9._-]*\Z")]
_Term = Annotated[str, Meta(pattern=r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z")]
_Scheme = Annotated[str, Meta(pattern=r"\A[^\s#]+#\Z")]
# GFD.229 §4 attribute-name; GFD.226 §3.5: "This hierarchy is NOT reflected in JSON objects",
# so a name is one flat key.
_AttributeName = Annotated[str, Meta(pattern=r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z")]
_Uri = Annotated[str, Meta(min_length=1)]

# Entity attribute names that the tables render as top-level members too (P-18).
_ID, _TITLE, _SUMMARY = "occi.core.id", "occi.core.title", "occi.core.summary"
_SOURCE, _TARGET, _TARGET_KIND = "occi.core.source", "occi.core.target", "occi.core.target.kind"
# Set by the service so that `source.kind` can be rendered; it is not an attribute of Link
# (GFD.221 §5.4.3), so it is never rendered inside `attributes`.
_SOURCE_KIND = "occi.core.source.kind"
_MIRRORED = (_ID, _TITLE, _SUMMARY, _SOURCE, _TARGET, _TARGET_KIND)


# ---- wire shapes --------------------------------------------------------------------------


class _KindedUri(Struct, forbid_unknown_fields=True):
    """Link `source` / `target` (GFD.226 §3.1.2.1)."""

    location: _Uri
    kind: _TypeId | UnsetType = UNSET


class _Entity(Struct, forbid_unknown_fields=True):
    """A Resource (§3.1.1) or Link (§3.1.2) object; every member optional, the parser checks the shape.

    `location` and `rel` are not in the tables, but erocci and MartServer emit them
    (json-rendering.md §1 decision: ignore them, reject any other unknown member).
    """

    kind: _TypeId | UnsetType = UNSET
    mixins: list[_TypeId] | UnsetType = UNSET
    attributes: dict[_AttributeName, Any] | UnsetType = UNSET
    # Server-computed; echoed by clients and ignored (erratum 17).
    actions: list[str] | UnsetType = UNSET
    entity_id: _Uri | UnsetType = field(default=UNSET, name="id")
    links: list[_Entity] | UnsetType = UNSET
    summary: str | UnsetType = UNSET
    title: str | UnsetType = UNSET
    source: _KindedUri | UnsetType = UNSET
    target: _KindedUri | UnsetType = UNSET
    location: _Uri | UnsetType = UNSET
    rel: Any = UNSET


class _EntityOrCollection(_Entity, forbid_unknown_fields=True):
    """parse_entities: one entity, or `{"resources": [...], "links": [...]}`."""

    resources: list[_Entity] | UnsetType = UNSET


class _EntityCollection(Struct, forbid_unknown_fields=True):
    """GFD.226 §3.3 entity collections; both keys optional (mixin collections hold both)."""

    resources: list[_Entity] | UnsetType = UNSET
    links: list[_Entity] | UnsetType = UNSET


class _ActionInvocation(Struct, forbid_unknown_fields=True):
    """GFD.226 §3.1.1.1."""

    action: _TypeId | UnsetType = UNSET
    attributes: dict[_AttributeName, Any] | UnsetType = UNSET
    location: _Uri | UnsetType = UNSET
    rel: Any = UNSET


class _AttributeDescription(Struct, forbid_unknown_fields=True):
    """GFD.226 §3.5.1: "If [a member] is not specified, the following default values MUST be used"."""

    mutable: bool = False
    required: bool = False
    value_type: Literal["string", "number", "boolean", "array", "object"] = field(default="string", name="type")
    # A JSON Schema; rOCCI-core sends a regular-expression string instead (erratum 16).
    pattern: dict[str, Any] | str | UnsetType = UNSET
    default: Any = UNSET
    description: str | UnsetType = UNSET


_AttributeDescriptions = dict[_AttributeName, _AttributeDescription]


class _Kind(Struct, forbid_unknown_fields=True):
    """GFD.226 §3.2.1."""

    term: _Term
    scheme: _Scheme
    title: str | UnsetType = UNSET
    attributes: _AttributeDescriptions | UnsetType = UNSET
    actions: list[_TypeId] | UnsetType = UNSET
    parent: _TypeId | UnsetType = UNSET
    location: _Uri | UnsetType = UNSET


class _Mixin(Struct, forbid_unknown_fields=True):
    """GFD.226 §3.2.2; `location` optional here because DELETE /-/ names a mixin without it."""

    term: _Term
    scheme: _Scheme
    title: str | UnsetType = UNSET
    attributes: _AttributeDescriptions | UnsetType = UNSET
    actions: list[_TypeId] | UnsetType = UNSET
    depends: list[_TypeId] | UnsetType = UNSET
    applies: list[_TypeId] | UnsetType = UNSET
    location: _Uri | UnsetType = UNSET


class _Action(Struct, forbid_unknown_fields=True):
    """GFD.226 §3.2.3."""

    term: _Term
    scheme: _Scheme
    title: str | UnsetType = UNSET
    attributes: _AttributeDescriptions | UnsetType = UNSET


class _QueryInterface(Struct, forbid_unknown_fields=True):
    """GET /-/ (GFD.226 §3.4 collections in one object, json-rendering.md §8)."""

    kinds: list[_Kind] | UnsetType = UNSET
    mixins: list[_Mixin] | UnsetType = UNSET
    actions: list[_Action] | UnsetType = UNSET


class _MixinBody(Struct, forbid_unknown_fields=True):
    """POST/DELETE /-/: `{"mixins": [...]}` (objects or rOCCI type ids), or one bare mixin object."""

    mixins: list[_Mixin | _TypeId] | UnsetType = UNSET
    term: _Term | UnsetType = UNSET
    scheme: _Scheme | UnsetType = UNSET
    title: str | UnsetType = UNSET
    attributes: _AttributeDescriptions | UnsetType = UNSET
    actions: list[_TypeId] | UnsetType = UNSET
    depends: list[_TypeId] | UnsetType = UNSET
    applies: list[_TypeId] | UnsetType = UNSET
    location: _Uri | UnsetType = UNSET


_T = TypeVar("_T")

_ENTITY = msgspec.json.Decoder(_Entity)
_ENTITIES = msgspec.json.Decoder(_EntityOrCollection)
_COLLECTION = msgspec.json.Decoder(_EntityCollection)
_LOCATIONS = msgspec.json.Decoder(list[_Uri] | _EntityCollection)
_ACTION = msgspec.json.Decoder(_ActionInvocation)
_QUERY = msgspec.json.Decoder(_QueryInterface)
_MIXINS = msgspec.json.Decoder(_MixinBody)
_ENCODER = msgspec.json.Encoder()

_BOM = b"\xef\xbb\xbf"


def _decode(decoder: msgspec.json.Decoder[_T], body: bytes) -> _T:
    """Decode with msgspec; its errors (which name the JSON path) become ParseError (400)."""
    if body[:3] == _BOM:
        # RFC 8259 §8.1: parsers "MAY ignore the presence of a byte order mark".
        body = body[3:]
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise ParseError(f"invalid application/occi+json body: {exc}") from None
    except RecursionError:
        raise ParseError("invalid application/occi+json body: nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ParseError(f"invalid application/occi+json body: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _has_null(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None:
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _reject_null(value: Any, path: str) -> None:
    """json-rendering.md §1 [decision]: "reject `null` values with 400" (iterative: any depth).

    The path of the null is only worked out when there is one (most bodies have none)."""
    if not _has_null(value):
        return
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if item is None:
            raise ParseError(f"invalid application/occi+json body: null is not allowed - at `{where}`")
        if isinstance(item, dict):
            stack.extend((v, f"{where}[{k!r}]") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))


def _values(attributes: dict[str, Any] | UnsetType, path: str) -> dict[str, Any]:
    if attributes is UNSET:
        return {}
    _reject_null(attributes, f"{path}.attributes")
    return dict(attributes)


def _ignored(rel: Any, path: str) -> None:
    if rel is None:
        _reject_null(rel, f"{path}.rel")


def _fold(attributes: dict[str, Any], name: str, value: str | UnsetType, member: str) -> None:
    """Put a top-level member into `attributes`; json-rendering.md §2: "if both ... differ → 400"."""
    if value is UNSET:
        return
    if name in attributes and attributes[name] != value:
        raise ParseError(
            f"`{member}` is {value!r} but attribute {name} is {attributes[name]!r}; they must agree"
        )
    attributes[name] = value


def _fold_members(entity: _Entity, path: str) -> dict[str, Any]:
    """The entity's attribute values with `id`, `title`, `summary`, `source`, `target` folded in."""
    attributes = _values(entity.attributes, path)
    _fold(attributes, _ID, entity.entity_id, f"{path}.id")
    _fold(attributes, _TITLE, entity.title, f"{path}.title")
    _fold(attributes, _SUMMARY, entity.summary, f"{path}.summary")
    if entity.source is not UNSET:
        # `source.kind` is "implied by the source resource" (GFD.226 §3.1.2.1): nothing to keep.
        _fold(attributes, _SOURCE, entity.source.location, f"{path}.source.location")
    if entity.target is not UNSET:
        _fold(attributes, _TARGET, entity.target.location, f"{path}.target.location")
        _fold(attributes, _TARGET_KIND, entity.target.kind, f"{path}.target.kind")
    _ignored(entity.rel, path)
    return attributes


def _is_link_shape(entity: _Entity) -> bool:
    return entity.source is not UNSET or entity.target is not UNSET


def _check_link_shape(entity: _Entity, path: str) -> None:
    if entity.links is not UNSET or entity.summary is not UNSET:
        member = "links" if entity.links is not UNSET else "summary"
        raise ParseError(f"a link has no `{member}` member (GFD.226 §3.1.2) - at `{path}`")


def _check_resource_shape(entity: _Entity, path: str) -> None:
    if _is_link_shape(entity):
        member = "source" if entity.source is not UNSET else "target"
        raise ParseError(f"a resource has no `{member}` member (GFD.226 §3.1.1) - at `{path}`")


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _unset_none(value: str | UnsetType) -> str | None:
    return None if value is UNSET else value


def _inline_link(link: _Entity, path: str) -> LinkMessage:
    """A Link inside a resource's `links`; `source` may be omitted (implied by the resource)."""
    _check_link_shape(link, path)
    attributes = _fold_members(link, path)
    target = attributes.get(_TARGET)
    if not isinstance(target, str):
        # json-rendering.md §9: "`target.location` required".
        raise ParseError(f"a link needs `target` {{\"location\": ...}} - at `{path}`")
    return LinkMessage(
        target=target,
        target_kind=_str_or_none(attributes.get(_TARGET_KIND)),
        kind=_unset_none(link.kind),
        mixins=tuple(link.mixins or ()),
        attributes=attributes,
        self_location=_unset_none(link.location),
        source=_str_or_none(attributes.get(_SOURCE)),
    )


def _entity_message(entity: _Entity, path: str) -> EntityMessage:
    if _is_link_shape(entity):
        _check_link_shape(entity, path)
    attributes = _fold_members(entity, path)
    links = tuple(_inline_link(link, f"{path}.links[{i}]") for i, link in enumerate(entity.links or ()))
    return EntityMessage(
        kind=_unset_none(entity.kind),
        mixins=tuple(entity.mixins or ()),
        attributes=attributes,
        links=links,
        location=_unset_none(entity.location),
        action_links=tuple(entity.actions or ()),
    )


def _collection_messages(
    resources: list[_Entity] | UnsetType, links: list[_Entity] | UnsetType
) -> list[EntityMessage]:
    result: list[EntityMessage] = []
    for i, resource in enumerate(resources or ()):
        path = f"$.resources[{i}]"
        _check_resource_shape(resource, path)
        result.append(_entity_message(resource, path))
    for i, link in enumerate(links or ()):
        path = f"$.links[{i}]"
        _check_link_shape(link, path)
        result.append(_entity_message(link, path))
    return result


# ---- parsers: entities --------------------------------------------------------------------


def parse_entity(body: bytes) -> EntityMessage:
    """One Resource or Link object (GFD.226 §3.1): create, full or partial update, or a client read.

    Top-level `id`, `title`, `summary`, `source.location`, `target.location`, `target.kind` are
    folded into `attributes` as `occi.core.*` (P-18); inline `links` become LinkMessages whose
    attributes hold the same folded values. `actions` is kept as `action_links` only.
    """
    return _entity_message(_decode(_ENTITY, body), "$")


def parse_entities(body: bytes) -> list[EntityMessage]:
    """A create body: one entity, or `{"resources": [...], "links": [...]}` with at least one entity.

    An object whose only members are `resources` and/or `links` is a collection: a resource
    create always names its `kind`, so `{"links": [...]}` alone is never a single resource.
    """
    decoded = _decode(_ENTITIES, body)
    # `location` and `rel` are ignored members (§1), so they decide nothing here.
    members = set(decoded.__struct_fields__) - {"resources", "links", "location", "rel"}
    if any(getattr(decoded, name) is not UNSET for name in members):
        if decoded.resources is not UNSET:
            raise ParseError("`resources` is not a member of an entity (GFD.226 §3.1)")
        return [_entity_message(decoded, "$")]
    result = _collection_messages(decoded.resources, decoded.links)
    if not result:
        raise ParseError("the body names no entity: give an entity or a non-empty `resources`/`links`")
    return result


def parse_entity_collection(body: bytes) -> list[EntityMessage]:
    """`{"resources": [...], "links": [...]}` as a client reads it (GFD.226 §3.3); may be empty."""
    decoded = _decode(_COLLECTION, body)
    return _collection_messages(decoded.resources, decoded.links)


def parse_locations(body: bytes) -> list[str]:
    """The entities named by a mixin-collection association body (json-rendering.md §9), in order.

    Items of `resources`/`links` are full renderings (their `location`, else their `id`) or
    stubs `{"location": ...}` / `{"id": ...}`; a bare JSON array of location strings also works.
    """
    decoded = _decode(_LOCATIONS, body)
    if isinstance(decoded, list):
        return list(decoded)
    result: list[str] = []
    for key, items in (("resources", decoded.resources), ("links", decoded.links)):
        for i, item in enumerate(items or ()):
            path = f"$.{key}[{i}]"
            _ignored(item.rel, path)
            if item.attributes is not UNSET:
                _reject_null(item.attributes, f"{path}.attributes")
            if item.location is not UNSET:
                result.append(item.location)
            elif item.entity_id is not UNSET:
                result.append(item.entity_id)
            else:
                raise ParseError(f"an entity in a collection needs `location` or `id` - at `{path}`")
    return result


def parse_action(body: bytes) -> ActionInvocation:
    """`{"action": type id, "attributes": {...}}` (GFD.226 §3.1.1.1); `action` None when absent."""
    decoded = _decode(_ACTION, body)
    _ignored(decoded.rel, "$")
    return ActionInvocation(action=_unset_none(decoded.action), attributes=_values(decoded.attributes, "$"))


# ---- parsers: categories ------------------------------------------------------------------

_JSON_TYPE_CHECKS: Mapping[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _attribute_def(name: str, description: _AttributeDescription, path: str) -> AttributeDef:
    value_type = description.value_type
    pattern: dict[str, Any] | None
    if isinstance(description.pattern, str):
        # Erratum 16: rOCCI-core sends a regex; "treat as {"type": "string", "pattern": <string>}".
        # A regex constrains strings only, so for other types it must not add "type": "string"
        # (that would reject every value of a number attribute).
        pattern = {"pattern": description.pattern}
        if value_type == "string":
            pattern = {"type": "string", "pattern": description.pattern}
    elif description.pattern is UNSET or not description.pattern:
        pattern = None  # §3.5.1 default `{}`: no constraint
    else:
        pattern = description.pattern
    default = description.default
    if default is UNSET:
        default = None
    else:
        _reject_null(default, f"{path}.default")
        # GFD.226 §3.5.1: the default is "of the type defined by the type property".
        if not _JSON_TYPE_CHECKS[value_type](default):
            raise ParseError(f"default of attribute {name} is not of type {value_type} - at `{path}.default`")
    return AttributeDef(
        name=name,
        type=value_type,
        mutable=description.mutable,
        required=description.required,
        pattern=pattern,
        default=default,
        description=_unset_none(description.description),
    )


def _attribute_defs(descriptions: _AttributeDescriptions | UnsetType, path: str) -> tuple[AttributeDef, ...]:
    if descriptions is UNSET:
        return ()
    return tuple(
        _attribute_def(name, description, f"{path}.attributes[{name!r}]")
        for name, description in descriptions.items()
    )


def _kind_definition(kind: _Kind, path: str) -> CategoryDefinition:
    return CategoryDefinition(
        scheme=kind.scheme, term=kind.term, cls="kind", title=_unset_none(kind.title),
        rel=() if kind.parent is UNSET else (kind.parent,), location=_unset_none(kind.location),
        attributes=_attribute_defs(kind.attributes, path), actions=tuple(kind.actions or ()),
    )


def _mixin_definition(mixin: _Mixin | _MixinBody, path: str) -> CategoryDefinition:
    if mixin.term is UNSET or mixin.scheme is UNSET:
        member = "term" if mixin.term is UNSET else "scheme"
        raise ParseError(f"a mixin needs `{member}` (GFD.226 §3.2.2) - at `{path}`")
    return CategoryDefinition(
        scheme=mixin.scheme, term=mixin.term, cls="mixin", title=_unset_none(mixin.title),
        rel=tuple(mixin.depends or ()), applies=tuple(mixin.applies or ()),
        location=_unset_none(mixin.location), attributes=_attribute_defs(mixin.attributes, path),
        actions=tuple(mixin.actions or ()),
    )


def _action_definition(action: _Action, path: str) -> CategoryDefinition:
    return CategoryDefinition(
        scheme=action.scheme, term=action.term, cls="action", title=_unset_none(action.title),
        attributes=_attribute_defs(action.attributes, path),
    )


def parse_query_interface(body: bytes) -> list[CategoryDefinition]:
    """`{"kinds": [...], "mixins": [...], "actions": [...]}` from GET /-/, kinds first.

    Kind `parent` -> `rel=(parent,)`, mixin `depends` -> `rel`; absent attribute-description
    members take the GFD.226 §3.5.1 defaults (`mutable` false, `required` false, `type` string).
    """
    decoded = _decode(_QUERY, body)
    return [
        *(_kind_definition(k, f"$.kinds[{i}]") for i, k in enumerate(decoded.kinds or ())),
        *(_mixin_definition(m, f"$.mixins[{i}]") for i, m in enumerate(decoded.mixins or ())),
        *(_action_definition(a, f"$.actions[{i}]") for i, a in enumerate(decoded.actions or ())),
    ]


def parse_mixin_definitions(body: bytes) -> list[CategoryDefinition]:
    """User mixins for POST/DELETE /-/ (json-rendering.md §9), each with `cls="mixin"`.

    Accepts `{"mixins": [mixin, ...]}`, one bare mixin object (erocci), or rOCCI-core's
    identifier form `{"mixins": ["<type id>", ...]}` (term and scheme only). `attributes` and
    `actions`, if sent, are kept; refusing them is the service's business.
    """
    decoded = _decode(_MIXINS, body)
    if decoded.mixins is UNSET:
        return [_mixin_definition(decoded, "$")]
    if any(getattr(decoded, name) is not UNSET for name in decoded.__struct_fields__ if name != "mixins"):
        raise ParseError("give either `mixins` or one mixin object, not both")
    result: list[CategoryDefinition] = []
    for i, item in enumerate(decoded.mixins):
        if isinstance(item, str):
            result.append(CategoryDefinition.from_type_id(item, "mixin"))
        else:
            result.append(_mixin_definition(item, f"$.mixins[{i}]"))
    return result


# ---- renderers ----------------------------------------------------------------------------


def _kinded(location: Any, kind: Any) -> dict[str, str]:
    result = {"location": location}
    if isinstance(kind, str):
        result["kind"] = kind
    return result


def _entity_object(entity: Entity) -> dict[str, Any]:
    """json-rendering.md §2 / §3: table order, empty members omitted, occi.core.* mirrored (P-18)."""
    values = entity.attributes
    # Entity has no registry at hand: a Link is the entity that has a source or a target
    # (both are required attributes of core#link, GFD.221 §5.4.3).
    is_link = _SOURCE in values or _TARGET in values
    attributes: dict[str, Any] = {_ID: entity.entity_id}
    for name in _MIRRORED[1:]:
        if name in values:
            attributes[name] = values[name]
    for name, value in values.items():
        if name not in attributes and name != _SOURCE_KIND:
            attributes[name] = value
    result: dict[str, Any] = {"kind": entity.kind}
    if entity.mixins:
        result["mixins"] = list(entity.mixins)
    result["attributes"] = attributes
    if entity.actions:
        result["actions"] = list(entity.actions)
    result["id"] = entity.entity_id
    title = values.get(_TITLE)
    if is_link:
        if _SOURCE in values:
            result["source"] = _kinded(values[_SOURCE], values.get(_SOURCE_KIND))
        if _TARGET in values:
            result["target"] = _kinded(values[_TARGET], values.get(_TARGET_KIND))
    else:
        if entity.links:
            result["links"] = [_entity_object(link) for link in entity.links]
        summary = values.get(_SUMMARY)
        if isinstance(summary, str):
            result["summary"] = summary
    if isinstance(title, str):
        result["title"] = title
    return result


def render_entity(entity: Entity) -> bytes:
    """A Resource (GFD.226 §3.1.1, with full renderings of its links) or a Link (§3.1.2)."""
    return _ENCODER.encode(_entity_object(entity))


def render_entities(resources: Sequence[Entity], links: Sequence[Entity], *, keys: str) -> bytes:
    """An entity collection (GFD.226 §3.3); `keys` is "resources", "links" or "both".

    The chosen keys are always present: an empty collection is `{"resources": []}`, never 204
    (json-rendering.md §8).
    """
    if keys not in ("resources", "links", "both"):
        raise ValueError(f"keys must be 'resources', 'links' or 'both', not {keys!r}")
    result: dict[str, Any] = {}
    if keys in ("resources", "both"):
        result["resources"] = [_entity_object(entity) for entity in resources]
    if keys in ("links", "both"):
        result["links"] = [_entity_object(entity) for entity in links]
    return _ENCODER.encode(result)


def _attribute_description(adef: AttributeDef) -> dict[str, Any]:
    # json-rendering.md §6 [decision]: `mutable` defaults to false on input, so always render
    # `mutable`, `required` and `type` (erratum 5).
    result: dict[str, Any] = {"mutable": adef.mutable, "required": adef.required, "type": adef.type}
    if adef.pattern:
        result["pattern"] = dict(adef.pattern)
    if adef.default is not None:
        result["default"] = adef.default
    if adef.description is not None:
        result["description"] = adef.description
    return result


def _descriptions(attributes: Sequence[AttributeDef] | Mapping[str, AttributeDef]) -> dict[str, Any]:
    defs = attributes.values() if isinstance(attributes, Mapping) else attributes
    return {adef.name: _attribute_description(adef) for adef in defs}


def _kind_object(kind: Kind, registry: Registry) -> dict[str, Any]:
    result: dict[str, Any] = {"term": kind.term, "scheme": kind.scheme}
    if kind.title is not None:
        result["title"] = kind.title
    if kind.parent is not None:
        result["parent"] = kind.parent
    # json-rendering.md §5.1 [decision]: the full effective set, inherited attributes included.
    if registry.is_kind(kind.type_id):
        attributes = _descriptions(registry.kind_attribute_defs(kind.type_id))
    else:
        attributes = _descriptions(kind.attributes)
    if attributes:
        result["attributes"] = attributes
    if kind.actions:
        result["actions"] = list(kind.actions)
    # GFD.226 §3.2.1: location "MUST be supplied for every Kind except Entity's" (the registry
    # refuses an instantiable Kind without one).
    if kind.location is not None and kind.type_id != ENTITY:
        result["location"] = kind.location
    return result


def _mixin_object(
    scheme: str, term: str, title: str | None, depends: Sequence[str], applies: Sequence[str],
    attributes: Sequence[AttributeDef], actions: Sequence[str], location: str | None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"term": term, "scheme": scheme}
    if title is not None:
        result["title"] = title
    if depends:
        result["depends"] = list(depends)
    if applies:
        result["applies"] = list(applies)
    if attributes:
        result["attributes"] = _descriptions(attributes)
    if actions:
        result["actions"] = list(actions)
    if location is not None:
        result["location"] = location
    return result


def _action_object(action: Action) -> dict[str, Any]:
    result: dict[str, Any] = {"term": action.term, "scheme": action.scheme}
    if action.title is not None:
        result["title"] = action.title
    if action.attributes:
        result["attributes"] = _descriptions(action.attributes)
    return result


def render_categories(categories: Sequence[Kind | Mixin | Action], registry: Registry) -> bytes:
    """`{"kinds": [...], "mixins": [...], "actions": [...]}` (GFD.226 §3.4), empty arrays omitted."""
    kinds: list[dict[str, Any]] = []
    mixins: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    for category in categories:
        if isinstance(category, Kind):
            kinds.append(_kind_object(category, registry))
        elif isinstance(category, Mixin):
            mixins.append(_mixin_object(
                category.scheme, category.term, category.title, category.depends, category.applies,
                category.attributes, category.actions, category.location,
            ))
        else:
            actions.append(_action_object(category))
    result: dict[str, Any] = {}
    if kinds:
        result["kinds"] = kinds
    if mixins:
        result["mixins"] = mixins
    if actions:
        result["actions"] = actions
    return _ENCODER.encode(result)


def render_locations(urls: Sequence[str]) -> bytes:
    """A JSON array of location strings (201 bodies; rOCCI-server convention, erratum 15)."""
    return _ENCODER.encode(list(urls))


def render_error(status: int, message: str) -> bytes:
    """An error body: `{"code": status, "message": message}`."""
    return _ENCODER.encode({"code": status, "message": message})


# ---- renderers: client requests -----------------------------------------------------------


def _request_object(
    kind: str | None, mixins: Sequence[str], values: Mapping[str, Any], is_link: bool,
    source: str | None, target: str | None, target_kind: str | None,
) -> dict[str, Any]:
    """A resource_request / link_request object: top-level members and the `attributes` mirror."""
    attributes = dict(values)
    if source is not None:
        attributes[_SOURCE] = source
    if target is not None:
        attributes[_TARGET] = target
    if target_kind is not None:
        attributes[_TARGET_KIND] = target_kind
    attributes.pop(_SOURCE_KIND, None)
    result: dict[str, Any] = {}
    if kind is not None:
        result["kind"] = kind
    if mixins:
        result["mixins"] = list(mixins)
    if attributes:
        result["attributes"] = attributes
    entity_id = attributes.get(_ID)
    if isinstance(entity_id, str) and entity_id:
        result["id"] = entity_id
    if is_link:
        source = _str_or_none(attributes.get(_SOURCE))
        target = _str_or_none(attributes.get(_TARGET))
        if source:
            result["source"] = {"location": source}
        if target:
            result["target"] = _kinded(target, attributes.get(_TARGET_KIND))
    else:
        summary = attributes.get(_SUMMARY)
        if isinstance(summary, str):
            result["summary"] = summary
    title = attributes.get(_TITLE)
    if isinstance(title, str):
        result["title"] = title
    return result


def render_entity_message(message: EntityMessage) -> bytes:
    """A create/update request body (json-rendering.md §9) for the SDK.

    `location` and `action_links` are not rendered: the URL names the entity and servers ignore
    echoed actions. Inline links keep their `source` when given, else the server implies it.
    """
    values = message.attributes
    is_link = _SOURCE in values or _TARGET in values
    result = _request_object(message.kind, message.mixins, values, is_link, None, None, None)
    if message.links and not is_link:
        result["links"] = [
            _request_object(link.kind, link.mixins, link.attributes, True, link.source, link.target,
                            link.target_kind)
            for link in message.links
        ]
        # Keep the table order: `links` goes after `id`, before `summary` and `title`.
        for member in ("summary", "title"):
            if member in result:
                result[member] = result.pop(member)
    return _ENCODER.encode(result)


def render_action_invocation(invocation: ActionInvocation) -> bytes:
    """`{"action": type id, "attributes": {...}}` (GFD.226 §3.1.1.1)."""
    result: dict[str, Any] = {}
    if invocation.action is not None:
        result["action"] = invocation.action
    if invocation.attributes:
        result["attributes"] = dict(invocation.attributes)
    return _ENCODER.encode(result)


def render_mixin_definitions(definitions: Sequence[CategoryDefinition]) -> bytes:
    """`{"mixins": [...]}` for POST/DELETE /-/; `rel` is rendered as `depends`."""
    return _ENCODER.encode({"mixins": [
        _mixin_object(d.scheme, d.term, d.title, d.rel, d.applies, d.attributes, d.actions, d.location)
        for d in definitions
    ]})

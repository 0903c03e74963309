"""The domain rules over a Registry, in one copy: attribute and parameter checks, defaults,
required attributes, mixin association and action resolution (GFD.221 §5.3, core.md §2.8, §7, §8).

Pure functions of a `Registry` and plain values: no I/O, no service. The server
(`service/entities.py`, `service/actions.py`) and the SDK (`client/_model.py`) call the same
ones, so a request the SDK lets through is judged by the same rules on the server. The merge
precedence of attribute definitions is `Registry.attribute_defs` (core.md §2.8). Imports only
`occipy.model`, `occipy.errors` and msgspec (for its frozen Struct values, D-STRUCTS).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec

from occipy.errors import (
    BadRequest,
    Conflict,
    ImmutableAttribute,
    InvalidAttribute,
    MixinNotApplicable,
    UnknownCategory,
)
from occipy.model.catalogue import LEGACY_IGNORED_ATTRIBUTES, OS_TPL, RESOURCE_TPL, SSH_KEY, USER_DATA
from occipy.model.category import AttributeDef, AttributeValue
from occipy.model.registry import Registry

__all__ = [
    "CREATION_ONLY",
    "ECHOED",
    "CheckedAttributes",
    "check_attributes",
    "check_parameters",
    "check_required",
    "classify_categories",
    "defaults_to_fill",
    "resolve_action",
    "resolve_mixins",
    "same_value",
    "template_family",
]

# Attributes the server renders and a client may echo back; never values a client sets.
ECHOED = frozenset({"occi.core.source.kind"})
# Mixins that can only be given when the entity is created (GFD.221 §5.3.4: other stage -> 400).
CREATION_ONLY = frozenset({SSH_KEY, USER_DATA})


def _term(type_id: str) -> str:
    return type_id.rpartition("#")[2] or type_id


def _describe(kind_id: str, mixin_ids: Sequence[str]) -> str:
    text = _term(kind_id)
    if mixin_ids:
        text += " with " + ", ".join(_term(m) for m in mixin_ids)
    return text


def same_value(a: object, b: object) -> bool:
    """Whether two attribute values are equal as OCCI values (2 == 2.0; True is not 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def _check_value(adef: AttributeDef, value: object, *, lenient: bool, typed: bool) -> AttributeValue:
    if typed:
        return adef.check(value, lenient=lenient)
    # Text discovery carries no attribute types (GFD.229 §5.2): names and mutability only.
    if value is None or not isinstance(value, (str, int, float, bool, list, dict)):
        raise InvalidAttribute(f"attribute {adef.name}: not a JSON value: {value!r}")
    return value


# ---- attributes ---------------------------------------------------------------------------------

class CheckedAttributes(msgspec.Struct, frozen=True):
    """Attribute values after `check_attributes`.

    `values` are coerced to their definitions (canonical names). `ignored` names the immutable
    attributes sent at creation, which are dropped (docs/decisions.md D-IMMUTABLE); a server
    ignores them, an SDK may tell its user instead.
    """

    values: dict[str, AttributeValue]
    ignored: tuple[str, ...] = ()


def check_attributes(
    registry: Registry, kind_id: str, mixin_ids: Sequence[str], values: Mapping[str, object], *,
    current: Mapping[str, object] | None, lenient: bool = False, typed: bool = True,
) -> CheckedAttributes:
    """Values a client sends, checked against the merged definitions (core.md §8).

    `current` is None at creation, else the entity's current values. Rules, in order:
    aliases become canonical names and values; legacy and echoed names are dropped; an unknown
    name -> InvalidAttribute (400); the value is checked against its definition (type, pattern,
    ranges -> InvalidAttribute naming the attribute; skipped but for "is a JSON value" when
    `typed` is False); an immutable attribute is ignored at creation (except `occi.core.id`, a
    proposed id, core.md §2.1) and on update is dropped when unchanged, ImmutableAttribute (403)
    when changed (D-IMMUTABLE); a write-once one changed after creation -> Conflict (409).
    """
    defs = registry.attribute_defs(kind_id, mixin_ids)
    result: dict[str, AttributeValue] = {}
    ignored: list[str] = []
    for raw_name, value in values.items():
        name = registry.canonical_attribute(raw_name)
        if name in LEGACY_IGNORED_ATTRIBUTES or name in ECHOED:
            continue
        adef = defs.get(name)
        if adef is None:
            raise InvalidAttribute(f"attribute {name}: not defined for {_describe(kind_id, mixin_ids)}")
        if isinstance(value, str):
            value = registry.canonical_value(value)
        checked = _check_value(adef, value, lenient=lenient, typed=typed)
        if not adef.mutable:
            if current is None:
                if name == "occi.core.id":
                    result[name] = checked
                else:
                    ignored.append(name)
                continue
            if not same_value(current.get(name), checked):
                raise ImmutableAttribute(f"attribute {name} is immutable: it is managed by the server "
                                         "and cannot be changed")
            continue
        if adef.write_once and current is not None and name in current \
                and not same_value(current[name], checked):
            raise Conflict(f"attribute {name} can only be supplied once, at creation")
        result[name] = checked
    return CheckedAttributes(result, tuple(ignored))


def defaults_to_fill(registry: Registry, kind_id: str, mixin_ids: Sequence[str],
                     attributes: Mapping[str, object]) -> dict[str, AttributeValue]:
    """Template and kind defaults for attributes without a value (GFD.221 §5.3.7, core.md §2.8)."""
    return {name: adef.default for name, adef in registry.attribute_defs(kind_id, mixin_ids).items()
            if name not in attributes and adef.default is not None}


def check_required(registry: Registry, kind_id: str, mixin_ids: Sequence[str],
                   attributes: Mapping[str, object], *, server_set: Iterable[str] = ()) -> None:
    """InvalidAttribute (400, C-11) for a {required} client-set attribute with no value nor default.

    Immutable required attributes (`occi.core.id`) are the server's to set; `server_set` names
    more that the receiving server fills in (a link's source when it is created inline).
    """
    skip = frozenset(server_set)
    for name, adef in registry.attribute_defs(kind_id, mixin_ids).items():
        if adef.required and adef.mutable and adef.default is None and name not in attributes \
                and name not in skip:
            raise InvalidAttribute(f"attribute {name}: required by {_describe(kind_id, mixin_ids)} and not given")


# ---- mixins ---------------------------------------------------------------------------------------

def template_family(registry: Registry, mixin_id: str) -> str | None:
    """OS_TPL or RESOURCE_TPL when the mixin is a template of that family, else None (GFD.224 §3.5)."""
    for family in (OS_TPL, RESOURCE_TPL):
        if mixin_id != family and registry.depends_on(mixin_id, family):
            return family
    return None


def resolve_mixins(registry: Registry, kind_id: str, mixin_ids: Iterable[str], *, existing: Sequence[str] = (),
                   creating: bool) -> list[str]:
    """Canonical, de-duplicated mixins after the applies, stage and template rules (core.md §7).

    Unknown -> UnknownCategory (400); `applies` excluding the kind -> MixinNotApplicable (403,
    D-APPLIES); a creation-only mixin later -> BadRequest. A new template of a family replaces
    the entity's old one (GFD.224 §3.5.1-3.5.2); two templates of one family at once -> 400.
    """
    result = list(existing)
    seen_families: set[str] = set()
    for raw in mixin_ids:
        mixin_id = registry.canonical(raw)
        if not registry.is_mixin(mixin_id):
            raise UnknownCategory(f"unknown mixin {raw}")
        if not registry.applies_to(mixin_id, kind_id):
            raise MixinNotApplicable(f"mixin {mixin_id} cannot be applied to a {_term(kind_id)}")
        if not creating and mixin_id in CREATION_ONLY and mixin_id not in existing:
            raise BadRequest(f"mixin {mixin_id} can only be associated when the compute is created")
        if mixin_id in result:
            continue
        family = template_family(registry, mixin_id)
        if family is not None:
            if family in seen_families:
                raise BadRequest(f"only one {_term(family)} template may be given")
            seen_families.add(family)
            result = [m for m in result if template_family(registry, m) != family]
        result.append(mixin_id)
    return result


def classify_categories(registry: Registry, kind: str | None, mixins: Sequence[str],
                        unclassified: Sequence[str]) -> tuple[str | None, tuple[str, ...]]:
    """The Kind and Mixins of a request whose categories came partly without `class`.

    OCCI 1.1 clients send `Category: compute; scheme="..."` (GFD.185 allows it in requests); a
    term and scheme that name exactly one known category are unambiguous. A known kind becomes
    the kind (a second, different one -> BadRequest), a known mixin is added; an action ->
    BadRequest; an unknown type id -> UnknownCategory (400).
    """
    found_mixins = list(mixins)
    for type_id in unclassified:
        canonical = registry.canonical(type_id)
        if registry.is_kind(canonical):
            if kind is not None and registry.canonical(kind) != canonical:
                raise BadRequest(f"more than one Kind: {kind} and {type_id}")
            kind = canonical
        elif registry.is_mixin(canonical):
            if canonical not in found_mixins:
                found_mixins.append(canonical)
        elif registry.is_action(canonical):
            raise BadRequest(f"an entity rendering cannot carry the action category {type_id}")
        else:
            raise UnknownCategory(f"unknown category {type_id}")
    return kind, tuple(found_mixins)


# ---- actions --------------------------------------------------------------------------------------

def resolve_action(registry: Registry, available: Sequence[str], term: str, action: str | None) -> str:
    """The action type id of `?action=term`: the body's category (must match the term), else the
    unique action of that term among `available` (GFD.223 §10.3.2; GFD.185 §3.6.8: 409 when ambiguous)."""
    if action is not None:
        action_id = registry.canonical(action)
        if not registry.is_action(action_id):
            raise BadRequest(f"unknown action {action}")
        if _term(action_id) != term:
            raise BadRequest(f"the action in the body ({action_id}) does not match ?action={term}")
        if action_id not in available:
            raise BadRequest(f"action {action_id} is not defined for this entity")
        return action_id
    matches = [action_id for action_id in available if _term(action_id) == term]
    if not matches:
        raise BadRequest(f"no action {term} is defined for this entity")
    if len(matches) > 1:
        raise Conflict(f"action {term} is ambiguous ({', '.join(matches)}); send its category")
    return matches[0]


def check_parameters(registry: Registry, action_id: str, values: Mapping[str, object], *,
                     lenient: bool = False, typed: bool = True) -> dict[str, AttributeValue]:
    """Action parameters checked against the action's attribute definitions (GFD.221 §5.3.5, INF-08).

    Unknown name -> InvalidAttribute; each value against its definition; defaults fill what is
    not given; a required parameter still missing -> InvalidAttribute.
    """
    action = registry.action(action_id)
    result: dict[str, AttributeValue] = {}
    for name, value in values.items():
        adef = action.attribute(name)
        if adef is None:
            known = ", ".join(a.name for a in action.attributes) or "none"
            raise InvalidAttribute(f"parameter {name}: not defined for action {action.term} (known: {known})")
        if isinstance(value, str):
            value = registry.canonical_value(value)
        result[name] = _check_value(adef, value, lenient=lenient, typed=typed)
    for adef in action.attributes:
        if adef.name not in result and adef.default is not None:
            result[adef.name] = adef.default
        if adef.required and adef.name not in result:
            raise InvalidAttribute(f"parameter {adef.name}: required by action {action.term} and not given")
    return result

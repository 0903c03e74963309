"""The server model as a client discovered it from the query interface (GFD.223 §9, GFD.221 §5.3.9).

The categories live in an `occipy.model.Registry` built tolerantly from discovery
(`Registry.from_discovery`), and every domain rule (merged attribute definitions, attribute and
parameter checks, required attributes) is the one in `occipy.model.rules` that the server runs
too. `Model` adds only client concerns: lookups by type id or by term (`debian-12`,
`os_tpl#debian-12`) and command-line value parsing. Imports only `occipy.model`,
`occipy.rendering.messages` and `occipy.errors`: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from occipy.errors import BadRequest, ImmutableAttribute, InvalidAttribute, UnknownCategory
from occipy.model import rules
from occipy.model.category import (
    Action,
    AttributeDef,
    AttributeValue,
    Kind,
    Mixin,
    split_type_id,
    strict_term,
)
from occipy.model.entity import Entity
from occipy.model.registry import LINK, RESOURCE, Registry
from occipy.model.state import state_attribute
from occipy.rendering.messages import CategoryDefinition

__all__ = ["AmbiguousCategory", "Model"]

_INFRA = "http://schemas.ogf.org/occi/infrastructure#"
# The link kind a client means when it links a resource to a target of this kind (GFD.224 §3.4).
_LINK_KIND_FOR_TARGET = {
    _INFRA + "storage": _INFRA + "storagelink",
    _INFRA + "network": _INFRA + "networkinterface",
}
# Attributes the receiving server fills in itself: never "missing" on create even when {required}.
_SERVER_SET = frozenset({"occi.core.source", "occi.core.target"})
_NUMBER_RE = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")

C = TypeVar("C", Kind, Mixin, Action)


class AmbiguousCategory(BadRequest):
    """A term names more than one category; the message lists the candidates (client side)."""


class Model:
    """Kinds, mixins and actions of one server, with lookups; checks go to `occipy.model.rules`.

    `typed` is True when discovery came from the JSON rendering, which carries attribute types
    and patterns; the text renderings only carry names and the {immutable required} flags
    (GFD.229 §5.2), so values are then checked by name and mutability only.
    """

    __slots__ = ("_actions", "_kinds", "_mixins", "definitions", "registry", "typed")

    def __init__(self, registry: Registry, *, typed: bool = True,
                 definitions: Sequence[CategoryDefinition] = ()) -> None:
        self.registry = registry
        self.typed = typed
        self.definitions = tuple(definitions)
        self._kinds = {kind.type_id: kind for kind in registry.kinds()}
        self._mixins = {mixin.type_id: mixin for mixin in registry.mixins()}
        self._actions = {action.type_id: action for action in registry.actions()}

    @classmethod
    def from_definitions(cls, definitions: Iterable[CategoryDefinition], *, typed: bool) -> Model:
        """Build the model from parsed discovery renderings (either rendering), tolerantly:
        duplicates keep their first definition, dangling references stay (`Registry.from_discovery`)."""
        kept = list(definitions)
        registry = Registry.from_discovery(definition.to_category() for definition in kept)
        return cls(registry, typed=typed, definitions=kept)

    @property
    def kinds(self) -> Mapping[str, Kind]:
        return self._kinds

    @property
    def mixins(self) -> Mapping[str, Mixin]:
        return self._mixins

    @property
    def actions(self) -> Mapping[str, Action]:
        return self._actions

    # ---- lookups --------------------------------------------------------------------------

    def kind(self, name: str) -> Kind:
        """The kind named by type id, `scheme-tag#term` or bare term."""
        return _resolve(name, self.kinds, "kind", self)

    def mixin(self, name: str) -> Mixin:
        """The mixin named by type id, `parent#term` (e.g. `os_tpl#debian-12`) or bare term."""
        return _resolve(name, self.mixins, "mixin", self)

    def category(self, name: str) -> Kind | Mixin:
        """A kind or a mixin (for `list KIND|MIXIN`); kinds win when a bare term names both."""
        try:
            return self.kind(name)
        except UnknownCategory:
            return self.mixin(name)

    def action(self, name: str, kind: str | None = None, mixins: Sequence[str] = ()) -> Action:
        """An action by type id or term; with `kind`, only the actions this entity offers count."""
        pool: Mapping[str, Action] = self.actions
        if kind is not None and kind in self.kinds:
            offered = self.action_ids(kind, mixins)
            pool = {type_id: self.actions[type_id] for type_id in offered if type_id in self.actions}
            if name in self.actions and name not in pool:
                raise BadRequest(f"action {name} is not defined for {_term(kind)}")
        return _resolve(name, pool, "action", self)

    def kind_for_location(self, path: str) -> Kind | None:
        """The kind whose collection `path` lies in (longest location prefix), if any."""
        best: Kind | None = None
        for kind in self.kinds.values():
            loc = kind.location
            inside = bool(loc) and path.startswith(loc or "") and path != loc
            if inside and kind.type_id not in (RESOURCE, LINK) and (
                    best is None or len(loc or "") > len(best.location or "")):
                best = kind
        return best

    def link_kind_for(self, target_kind: str | None) -> str:
        """The link kind to use towards a target of `target_kind` (storagelink, networkinterface, link)."""
        for ancestor in self.ancestors(target_kind) if target_kind else ():
            link_kind = _LINK_KIND_FOR_TARGET.get(ancestor)
            if link_kind is not None and link_kind in self.kinds:
                return link_kind
        return LINK

    def ancestors(self, kind_id: str) -> tuple[str, ...]:
        """The kind and its parents, own kind first (GFD.221 §5.3.3); unknown parents end the chain."""
        if not self.registry.is_kind(kind_id):
            return (kind_id,)
        return self.registry.ancestors(kind_id)

    def is_link_kind(self, kind_id: str) -> bool:
        return LINK in self.ancestors(kind_id)

    def depends_closure(self, mixin_ids: Sequence[str]) -> list[str]:
        """The mixins and everything they depend on, depth first (core.md §8)."""
        return self.registry.depends_closure(mixin_ids)

    def attribute_defs(self, kind_id: str, mixin_ids: Sequence[str] = ()) -> dict[str, AttributeDef]:
        """Effective attribute definitions (`Registry.attribute_defs`, core.md §2.8); {} for an
        unknown kind."""
        if not self.registry.is_kind(kind_id):
            return {}
        return self.registry.attribute_defs(kind_id, mixin_ids)

    def action_ids(self, kind_id: str, mixin_ids: Sequence[str] = ()) -> list[str]:
        """Every action an entity of this kind with these mixins offers (core.md §8)."""
        if not self.registry.is_kind(kind_id):
            return []
        return self.registry.action_ids(kind_id, mixin_ids)

    def state_attribute(self, kind_id: str) -> str | None:
        """The attribute holding the lifecycle state of this kind (`occi.compute.state`), if any."""
        for type_id in self.ancestors(kind_id):
            known = state_attribute(type_id)
            if known is not None:
                return known
        term = _term(kind_id)
        candidate = f"occi.{term}.state"
        if candidate in self.attribute_defs(kind_id):
            return candidate
        return None

    def state_of(self, entity: Entity) -> tuple[str | None, str | None]:
        """The entity's lifecycle state and its `.state.message` (infrastructure.md §2, item 6)."""
        name = self.state_attribute(entity.kind) or f"occi.{_term(entity.kind)}.state"
        state = entity.attributes.get(name)
        message = entity.attributes.get(name + ".message")
        return (state if isinstance(state, str) else None,
                message if isinstance(message, str) and message else None)

    # ---- checks (the server's rules, `occipy.model.rules`) ------------------------------------

    def check_attributes(
        self,
        kind_id: str,
        mixin_ids: Sequence[str],
        values: Mapping[str, object],
        *,
        creating: bool,
        current: Mapping[str, object] | None = None,
    ) -> dict[str, AttributeValue]:
        """Values checked by `rules.check_attributes` before anything is sent; errors name the attribute.

        The client is stricter than the server in one place: an immutable attribute given at
        creation, which a server ignores (D-IMMUTABLE), is refused with ImmutableAttribute so
        that the user learns it has no effect. On create, a {required} attribute without value
        or default -> InvalidAttribute (C-11; `rules.check_required`).
        """
        checked = rules.check_attributes(self.registry, kind_id, mixin_ids, values, typed=self.typed,
                                         current=None if creating else (current or {}))
        if checked.ignored:
            name = checked.ignored[0]
            raise ImmutableAttribute(f"attribute {name} is immutable: only the server sets it")
        if creating:
            rules.check_required(self.registry, kind_id, mixin_ids, checked.values, server_set=_SERVER_SET)
        return checked.values

    def check_parameters(self, action: Action, values: Mapping[str, object]) -> dict[str, AttributeValue]:
        """Action parameters checked by `rules.check_parameters` (GFD.221 §5.3.5); only the values
        given are sent (the server fills the defaults)."""
        checked = rules.check_parameters(self.registry, action.type_id, values, typed=self.typed)
        return {name: value for name, value in checked.items() if name in values}

    def value_from_text(self, adef: AttributeDef | None, text: str) -> AttributeValue:
        """A command-line value as the attribute's type: `cores=2` -> 2, `tags=["a"]` -> list.

        Without a typed definition (text discovery, unknown name), numbers, booleans and JSON
        arrays/objects are recognised and anything else stays a string; `"2"` forces a string.
        """
        if adef is not None and self.typed:
            if adef.type == "string":
                return text
            if adef.type == "number":
                if not _NUMBER_RE.match(text.strip()):
                    raise InvalidAttribute(f"attribute {adef.name}: expected a number, got {text!r}")
                number = json.loads(text.strip())
                return number if isinstance(number, (int, float)) else text
            if adef.type == "boolean":
                if text not in ("true", "false"):
                    raise InvalidAttribute(f"attribute {adef.name}: expected true or false, got {text!r}")
                return text == "true"
            try:
                value = json.loads(text)
            except ValueError:
                raise InvalidAttribute(f"attribute {adef.name}: expected a JSON {adef.type}, got {text!r}") from None
            if not isinstance(value, (list, dict)):
                raise InvalidAttribute(f"attribute {adef.name}: expected a JSON {adef.type}, got {text!r}")
            return value
        if len(text) >= 2 and text[0] == text[-1] == '"':
            return text[1:-1]
        if text in ("true", "false"):
            return text == "true"
        if _NUMBER_RE.match(text):
            number = json.loads(text)
            if isinstance(number, (int, float)):
                return number
        if text[:1] in ("[", "{"):
            try:
                value = json.loads(text)
            except ValueError:
                return text
            if isinstance(value, (list, dict)):
                return value
        return text


def _term(type_id: str) -> str:
    return type_id.rpartition("#")[2] or type_id


def _terms(name: str) -> tuple[str, ...]:
    """The terms a user's name may stand for: itself, and the strict term a server minted from a
    provider name (`ubuntu-24.04` -> `strict_term("ubuntu-24.04")`, docs/decisions.md D-STRICT-TERMS)."""
    strict = strict_term(name)
    return (name,) if strict == name else (name, strict)


def _scheme_tag(scheme: str) -> str:
    """The last word of a scheme: `.../occi/infrastructure/os_tpl#` -> `os_tpl`."""
    return re.split(r"[/:]", scheme.rstrip("#"))[-1]


def _resolve(name: str, pool: Mapping[str, C], what: str, model: Model) -> C:
    """Find a category by type id, `tag#term` or term; UnknownCategory / AmbiguousCategory otherwise."""
    found = pool.get(name)
    if found is not None:
        return found
    if "#" in name:
        if "://" in name:
            raise UnknownCategory(f"unknown {what} {name}")
        try:
            tag, term = split_type_id(name)
        except BadRequest:
            raise UnknownCategory(f"unknown {what} {name!r}") from None
        tag = tag.rstrip("#")
        candidates = [c for c in pool.values() if c.term in _terms(term) and _tagged(c, tag, model)]
    else:
        candidates = [c for c in pool.values() if c.term in _terms(name)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UnknownCategory(f"unknown {what} {name!r}")
    names = ", ".join(sorted(c.type_id for c in candidates))
    raise AmbiguousCategory(f"{what} {name!r} is ambiguous: give one of {names}")


def _tagged(category: Kind | Mixin | Action, tag: str, model: Model) -> bool:
    if _scheme_tag(category.scheme) == tag:
        return True
    if isinstance(category, Mixin):
        # `os_tpl#debian-12`: a template is tagged by the mixin it depends on.
        return any(_term(dep) == tag for dep in model.depends_closure(category.depends))
    if isinstance(category, Kind) and category.parent is not None:
        return _term(category.parent) == tag
    return False

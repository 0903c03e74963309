"""The server model as a client discovered it from the query interface (GFD.223 §9, GFD.221 §5.3.9).

`Model` answers lookups by type id or by term (`debian-12`, `os_tpl#debian-12`), merges the
attribute definitions of a kind and its mixins, and checks attribute values before anything is
sent. Imports only `occipy.model`, `occipy.rendering.messages` and `occipy.errors`: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from occipy.errors import BadRequest, ImmutableAttribute, InvalidAttribute, UnknownCategory
from occipy.model.category import Action, AttributeDef, AttributeValue, Kind, Mixin, split_type_id
from occipy.model.entity import Entity
from occipy.model.state import state_attribute
from occipy.rendering.messages import CategoryDefinition

__all__ = ["AmbiguousCategory", "Model"]

CORE = "http://schemas.ogf.org/occi/core#"
LINK = CORE + "link"
RESOURCE = CORE + "resource"
_INFRA = "http://schemas.ogf.org/occi/infrastructure#"
# The link kind a client means when it links a resource to a target of this kind (GFD.224 §3.4).
_LINK_KIND_FOR_TARGET = {
    _INFRA + "storage": _INFRA + "storagelink",
    _INFRA + "network": _INFRA + "networkinterface",
}
# Attributes the server fills in itself: never "missing" on create even when {required}.
_SERVER_SET = frozenset({"occi.core.id", "occi.core.source", "occi.core.target"})
_NUMBER_RE = re.compile(r"-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")

C = TypeVar("C", Kind, Mixin, Action)


class AmbiguousCategory(BadRequest):
    """A term names more than one category; the message lists the candidates (client side)."""


@dataclass(frozen=True, slots=True)
class Model:
    """Kinds, mixins and actions of one server, with lookups and attribute checks.

    `typed` is True when discovery came from the JSON rendering, which carries attribute types
    and patterns; the text renderings only carry names and the {immutable required} flags
    (GFD.229 §5.2), so values are then checked by name and mutability only.
    """

    kinds: Mapping[str, Kind]
    mixins: Mapping[str, Mixin]
    actions: Mapping[str, Action]
    typed: bool = True
    definitions: tuple[CategoryDefinition, ...] = field(default=(), compare=False)

    @classmethod
    def from_definitions(cls, definitions: Iterable[CategoryDefinition], *, typed: bool) -> Model:
        """Build the model from parsed discovery renderings (either rendering)."""
        kinds: dict[str, Kind] = {}
        mixins: dict[str, Mixin] = {}
        actions: dict[str, Action] = {}
        kept: list[CategoryDefinition] = []
        for definition in definitions:
            category = definition.to_category()
            # First one wins: some 1.1 servers list a category twice (pOCCI rejects that; we cope).
            if isinstance(category, Kind):
                kinds.setdefault(category.type_id, category)
            elif isinstance(category, Mixin):
                mixins.setdefault(category.type_id, category)
            else:
                actions.setdefault(category.type_id, category)
            kept.append(definition)
        return cls(kinds=kinds, mixins=mixins, actions=actions, typed=typed, definitions=tuple(kept))

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
        chain: list[str] = []
        current: str | None = kind_id
        while current is not None and current not in chain:
            chain.append(current)
            kind = self.kinds.get(current)
            current = kind.parent if kind is not None else None
        return tuple(chain)

    def is_link_kind(self, kind_id: str) -> bool:
        return LINK in self.ancestors(kind_id)

    def depends_closure(self, mixin_ids: Sequence[str]) -> list[str]:
        """The mixins and everything they depend on, depth first (core.md §8)."""
        seen: list[str] = []

        def walk(type_id: str) -> None:
            if type_id in seen:
                return
            seen.append(type_id)
            mixin = self.mixins.get(type_id)
            if mixin is not None:
                for dep in mixin.depends:
                    walk(dep)

        for type_id in mixin_ids:
            walk(type_id)
        return seen

    def attribute_defs(self, kind_id: str, mixin_ids: Sequence[str] = ()) -> dict[str, AttributeDef]:
        """Effective attribute definitions: the kind chain, then the mixins (core.md §2.8).

        The first category that defines a name gives its flags; the most specific default wins.
        """
        merged: dict[str, AttributeDef] = {}
        defaults: dict[str, AttributeValue] = {}
        chain = self.ancestors(kind_id)
        for type_id in chain:
            kind = self.kinds.get(type_id)
            for adef in kind.attributes if kind is not None else ():
                merged.setdefault(adef.name, adef)
        for type_id in reversed(chain):
            kind = self.kinds.get(type_id)
            for adef in kind.attributes if kind is not None else ():
                if adef.default is not None:
                    defaults[adef.name] = adef.default
        for mixin_id in mixin_ids:
            # A later mixin beats an earlier one; a mixin beats what it depends on (core.md §2.8).
            for type_id in reversed(self.depends_closure([mixin_id])):
                mixin = self.mixins.get(type_id)
                for adef in mixin.attributes if mixin is not None else ():
                    merged.setdefault(adef.name, adef)
                    if adef.default is not None:
                        defaults[adef.name] = adef.default
        result: dict[str, AttributeDef] = {}
        for name, adef in merged.items():
            default = defaults.get(name)
            result[name] = adef if default is None or default == adef.default else _with_default(adef, default)
        return result

    def action_ids(self, kind_id: str, mixin_ids: Sequence[str] = ()) -> list[str]:
        """Every action an entity of this kind with these mixins offers (core.md §8)."""
        result: list[str] = []
        for type_id in self.ancestors(kind_id):
            kind = self.kinds.get(type_id)
            for action_id in kind.actions if kind is not None else ():
                if action_id not in result:
                    result.append(action_id)
        for type_id in self.depends_closure(mixin_ids):
            mixin = self.mixins.get(type_id)
            for action_id in mixin.actions if mixin is not None else ():
                if action_id not in result:
                    result.append(action_id)
        return result

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

    # ---- checks ---------------------------------------------------------------------------

    def check_attributes(
        self,
        kind_id: str,
        mixin_ids: Sequence[str],
        values: Mapping[str, object],
        *,
        creating: bool,
        current: Mapping[str, object] | None = None,
    ) -> dict[str, AttributeValue]:
        """Values checked against the effective definitions; errors name the attribute.

        Unknown names -> InvalidAttribute; immutable ones -> ImmutableAttribute (GFD.221 §5.2:
        immutable attributes "MUST NOT be modifiable by clients"), except `occi.core.id` on create
        (a proposed id, core.md §2.1) and a value equal to `current` (dropped: unchanged);
        wrong type or pattern -> InvalidAttribute (JSON discovery only). On create, a {required}
        attribute without value or default -> InvalidAttribute (C-11).
        """
        defs = self.attribute_defs(kind_id, mixin_ids)
        checked: dict[str, AttributeValue] = {}
        for name, value in values.items():
            adef = defs.get(name)
            if adef is None:
                raise InvalidAttribute(f"attribute {name}: not defined for {self._describe(kind_id, mixin_ids)}")
            if not adef.mutable and not (creating and name == "occi.core.id"):
                if current is not None and current.get(name) == value:
                    continue
                raise ImmutableAttribute(f"attribute {name} is immutable: only the server sets it")
            checked[name] = self._check_value(adef, value)
        if creating:
            for name, adef in defs.items():
                if adef.required and name not in checked and adef.default is None and name not in _SERVER_SET:
                    raise InvalidAttribute(
                        f"attribute {name}: required by {self._describe(kind_id, mixin_ids)} and not given")
        return checked

    def check_parameters(self, action: Action, values: Mapping[str, object]) -> dict[str, AttributeValue]:
        """Action parameters checked against the action's attribute definitions (GFD.221 §5.3.5)."""
        defs = {adef.name: adef for adef in action.attributes}
        checked: dict[str, AttributeValue] = {}
        for name, value in values.items():
            adef = defs.get(name)
            if adef is None:
                known = ", ".join(defs) or "none"
                raise InvalidAttribute(f"parameter {name}: not defined for action {action.term} (known: {known})")
            checked[name] = self._check_value(adef, value)
        for name, adef in defs.items():
            if adef.required and name not in checked and adef.default is None:
                raise InvalidAttribute(f"parameter {name}: required by action {action.term} and not given")
        return checked

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

    def _check_value(self, adef: AttributeDef, value: object) -> AttributeValue:
        if self.typed:
            return adef.check(value)
        if value is None or not isinstance(value, (str, int, float, bool, list, dict)):
            raise InvalidAttribute(f"attribute {adef.name}: not a JSON value: {value!r}")
        return value

    def _describe(self, kind_id: str, mixin_ids: Sequence[str]) -> str:
        text = _term(kind_id)
        if mixin_ids:
            text += " with " + ", ".join(_term(m) for m in mixin_ids)
        return text


def _with_default(adef: AttributeDef, default: AttributeValue) -> AttributeDef:
    return AttributeDef(name=adef.name, type=adef.type, mutable=adef.mutable, required=adef.required,
                        pattern=adef.pattern, default=default, description=adef.description,
                        write_once=adef.write_once)


def _term(type_id: str) -> str:
    return type_id.rpartition("#")[2] or type_id


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
        candidates = [c for c in pool.values() if c.term == term and _tagged(c, tag, model)]
    else:
        candidates = [c for c in pool.values() if c.term == name]
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

"""The one registry of every Kind, Mixin and Action (GFD.221 §5.3.9 discovery, core.md §8).

It rejects duplicates and inconsistent definitions, resolves type ids and locations, and
computes effective capabilities (Kind chain plus mixins and their `depends` closure). A server
builds it strictly with `add()`; a client builds it from another server's discovery with the
tolerant `Registry.from_discovery()`. The rules that use it live in `occipy.model.rules`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from occipy.errors import BadRequest, Conflict, Forbidden, NotFound, UnknownCategory
from occipy.model.category import TERM_RE, Action, AttributeDef, Category, Kind, Mixin

CORE = "http://schemas.ogf.org/occi/core#"
ENTITY = CORE + "entity"
RESOURCE = CORE + "resource"
LINK = CORE + "link"
OGF_BASE = "http://schemas.ogf.org/occi/"


class Registry:
    """Every category the server knows, by type identifier and by location."""

    def __init__(self) -> None:
        self._kinds: dict[str, Kind] = {}
        self._mixins: dict[str, Mixin] = {}
        self._actions: dict[str, Action] = {}
        self._locations: dict[str, Kind | Mixin] = {}
        self._aliases: dict[str, str] = {}
        self._attribute_aliases: dict[str, str] = {}
        self._value_aliases: dict[str, str] = {}
        self._cache: dict[tuple[str, tuple[str, ...]], dict[str, AttributeDef]] = {}
        self._ancestors: dict[str, tuple[str, ...]] = {}
        # Bumped by every change: lets callers cache what they derive from the registry.
        self.version = 0
        # What `from_discovery` tolerated (duplicates, dangling references), one sentence each.
        self.discovery_notes: list[str] = []

    @classmethod
    def from_discovery(cls, categories: Iterable[Category]) -> Registry:
        """A registry of the categories another server listed, built tolerantly (GFD.221 §5.3.9).

        Discovery renderings of real servers are not always consistent, and a client must still
        work with them. So, unlike `add()`: categories may come in any order; a `parent`, `rel`,
        `applies` or action the server never listed is kept as a dangling reference (the kind
        chain ends there, a missing mixin contributes nothing); a type id listed twice keeps its
        first definition; a kind or mixin may lack a location, and a location bound twice stays
        with the first. What was tolerated is listed in `discovery_notes`.
        """
        registry = cls()
        for category in categories:
            registry._admit(category)
        return registry

    def _admit(self, category: Category) -> None:
        type_id = category.type_id
        if self.find(type_id) is not None:
            self.discovery_notes.append(f"{type_id} is listed twice: the first definition is kept")
            return
        if isinstance(category, Action):
            self._actions[type_id] = category
        else:
            if isinstance(category, Kind):
                self._kinds[type_id] = category
            else:
                self._mixins[type_id] = category
            location = category.location
            if location is not None and location in self._locations:
                self.discovery_notes.append(f"{type_id}: location {location} is already bound")
            elif location is not None:
                self._locations[location] = category
        self._cache.clear()
        self._ancestors.clear()
        self.version += 1

    def dangling_references(self) -> list[str]:
        """Type ids that categories name (parent, depends, applies, actions) but nobody defines."""
        missing: list[str] = []
        for kind in self._kinds.values():
            refs = [*kind.actions, *([kind.parent] if kind.parent else [])]
            missing += [ref for ref in refs if self.find(ref) is None]
        for mixin in self._mixins.values():
            missing += [ref for ref in (*mixin.depends, *mixin.applies, *mixin.actions) if self.find(ref) is None]
        return list(dict.fromkeys(missing))

    # ---- building -------------------------------------------------------------------------

    def add(self, category: Category) -> None:
        """Register one category; raise Conflict on a duplicate, BadRequest when inconsistent."""
        type_id = category.type_id
        if not category.scheme.endswith("#"):
            raise BadRequest(f"scheme must end with '#': {category.scheme!r}")
        if not TERM_RE.match(category.term):
            raise BadRequest(f"invalid term {category.term!r}")
        if self.find(type_id) is not None:
            raise Conflict(f"category {type_id} is already defined")
        if isinstance(category, Action):
            self._actions[type_id] = category
            self.version += 1
            return
        location = category.location
        if location is not None:
            if not (location.startswith("/") and location.endswith("/")) or location == "/":
                raise BadRequest(f"location must be a path that starts and ends with '/': {location!r}")
            if location in self._locations or location == "/-/":
                raise Conflict(f"location {location} is already bound")
        for action_id in category.actions:
            if action_id not in self._actions:
                raise BadRequest(f"{type_id}: unknown action {action_id}")
        if isinstance(category, Kind):
            if category.parent is not None and category.parent not in self._kinds:
                raise BadRequest(f"{type_id}: unknown parent kind {category.parent}")
            if type_id != ENTITY and category.parent is None:
                raise BadRequest(f"{type_id}: every kind but entity needs a parent")
            if type_id != ENTITY and location is None:
                raise BadRequest(f"{type_id}: an instantiable kind needs a location")
            self._kinds[type_id] = category
        else:
            for dep in category.depends:
                # docs/decisions.md D-DANGLING-REL: a user mixin may name a mixin this server does
                # not know (OCCI 1.1 clients do); the reference is kept and rendered, and adds nothing.
                if dep not in self._mixins and not category.user_defined:
                    raise BadRequest(f"{type_id}: depends on unknown mixin {dep}")
            for kind_id in category.applies:
                if kind_id not in self._kinds:
                    raise BadRequest(f"{type_id}: applies to unknown kind {kind_id}")
            if location is None:
                raise BadRequest(f"{type_id}: a mixin needs a location")
            self._mixins[type_id] = category
        if location is not None:
            self._locations[location] = category
        self._cache.clear()
        self.version += 1

    def add_all(self, categories: Iterable[Category]) -> None:
        for category in categories:
            self.add(category)

    def remove_mixin(self, type_id: str) -> Mixin:
        """Remove a user-defined mixin; provider mixins are refused with 403 (GFD.185 §3.4.1)."""
        mixin = self._mixins.get(self.canonical(type_id))
        if mixin is None:
            raise NotFound(f"no mixin {type_id}")
        if not mixin.user_defined:
            raise Forbidden(f"{type_id} is defined by the provider and cannot be removed")
        for other in self._mixins.values():
            if mixin.type_id in other.depends:
                raise Conflict(f"{other.type_id} depends on {type_id}")
        del self._mixins[mixin.type_id]
        if mixin.location is not None:
            self._locations.pop(mixin.location, None)
        self._cache.clear()
        self.version += 1
        return mixin

    def add_alias(self, alias: str, canonical: str) -> None:
        """Accept `alias` on input as the category `canonical` (catalogue aliases)."""
        self._aliases[alias] = canonical

    def add_attribute_alias(self, alias: str, canonical: str) -> None:
        self._attribute_aliases[alias] = canonical

    def add_value_alias(self, alias: str, canonical: str) -> None:
        self._value_aliases[alias] = canonical

    # ---- lookup ---------------------------------------------------------------------------

    def canonical(self, type_id: str) -> str:
        return self._aliases.get(type_id, type_id)

    def canonical_attribute(self, name: str) -> str:
        return self._attribute_aliases.get(name, name)

    def canonical_value(self, value: str) -> str:
        return self._value_aliases.get(value, value)

    def find(self, type_id: str) -> Category | None:
        type_id = self.canonical(type_id)
        return self._kinds.get(type_id) or self._mixins.get(type_id) or self._actions.get(type_id)

    def kind(self, type_id: str) -> Kind:
        kind = self._kinds.get(self.canonical(type_id))
        if kind is None:
            raise UnknownCategory(f"unknown kind {type_id}")
        return kind

    def mixin(self, type_id: str) -> Mixin:
        mixin = self._mixins.get(self.canonical(type_id))
        if mixin is None:
            raise UnknownCategory(f"unknown mixin {type_id}")
        return mixin

    def action(self, type_id: str) -> Action:
        action = self._actions.get(self.canonical(type_id))
        if action is None:
            raise UnknownCategory(f"unknown action {type_id}")
        return action

    def is_kind(self, type_id: str) -> bool:
        return self.canonical(type_id) in self._kinds

    def is_mixin(self, type_id: str) -> bool:
        return self.canonical(type_id) in self._mixins

    def is_action(self, type_id: str) -> bool:
        return self.canonical(type_id) in self._actions

    def by_location(self, path: str) -> Kind | Mixin | None:
        return self._locations.get(path)

    def locations(self) -> Mapping[str, Kind | Mixin]:
        return self._locations

    def kinds(self) -> list[Kind]:
        return list(self._kinds.values())

    def mixins(self) -> list[Mixin]:
        return list(self._mixins.values())

    def actions(self) -> list[Action]:
        return list(self._actions.values())

    def categories(self) -> list[Category]:
        return [*self._kinds.values(), *self._mixins.values(), *self._actions.values()]

    # ---- kinds ----------------------------------------------------------------------------

    def ancestors(self, kind_id: str) -> tuple[str, ...]:
        """The kind and its parents, own kind first and `core#entity` last (GFD.221 §5.3.3).

        In a registry built `from_discovery`, a parent the server never listed ends the chain
        (it is included, so `is_link_kind` still sees `core#link`).
        """
        cached = self._ancestors.get(kind_id)
        if cached is not None:
            return cached
        chain: list[str] = []
        current: str | None = self.kind(kind_id).type_id
        while current is not None and current not in chain:
            chain.append(current)
            parent_kind = self._kinds.get(current)
            current = parent_kind.parent if parent_kind is not None else None
        result = tuple(chain)
        self._ancestors[kind_id] = result
        return result

    def is_link_kind(self, kind_id: str) -> bool:
        return LINK in self.ancestors(kind_id)

    def is_resource_kind(self, kind_id: str) -> bool:
        return RESOURCE in self.ancestors(kind_id)

    # ---- mixins ---------------------------------------------------------------------------

    def depends_closure(self, mixin_ids: Sequence[str]) -> list[str]:
        """The mixins and, depth first, everything they depend on (core.md §8).

        Walked with a stack, not a nested recursive function: such a function refers to itself
        through its closure, a reference cycle that only the cyclic collector frees, and this
        runs for every action request (docs/performance.md, 2026-12-07 04:10)."""
        seen: list[str] = []
        mixins = self._mixins
        pending = [self.canonical(type_id) for type_id in reversed(mixin_ids)]
        while pending:
            type_id = pending.pop()
            if type_id in seen:
                continue
            seen.append(type_id)
            mixin = mixins.get(type_id)
            if mixin is not None and mixin.depends:
                pending.extend(reversed(mixin.depends))
        return seen

    def applies_to(self, mixin_id: str, kind_id: str) -> bool:
        """Whether the mixin may be associated with an entity of this kind (core.md §2.5)."""
        applies = self.mixin(mixin_id).applies
        if not applies:
            return True
        ancestors = self.ancestors(kind_id)
        return any(kind in ancestors for kind in applies)

    def depends_on(self, mixin_id: str, parent_id: str) -> bool:
        """Whether `mixin_id` depends on `parent_id`, directly or through other mixins."""
        closure = self.depends_closure([mixin_id])
        return parent_id in closure[1:]

    # ---- effective capabilities -----------------------------------------------------------

    def attribute_defs(self, kind_id: str, mixin_ids: Sequence[str] = ()) -> dict[str, AttributeDef]:
        """Merged attribute definitions of a kind and its mixins (core.md §2.8 decision).

        The one precedence, used by the server and the SDK alike:

        * `type`, `required`, `mutable`, `pattern` (the definition itself) come from the first
          category that defines the name, in the order of core.md §8 `effective_categories`: the
          kind, then its parents up to `core#entity`, then each mixin in the given order, each
          followed depth first by the mixins it depends on. So the kind chain beats any mixin, a
          kind beats its parents, and a mixin beats the mixins it depends on.
        * `default` comes from the most specific category that gives one: a later mixin beats an
          earlier one, a mixin beats what it depends on, any mixin beats the kind, and a kind
          beats its parents.
        """
        key = (kind_id, tuple(mixin_ids))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        merged: dict[str, AttributeDef] = {}
        defaults: dict[str, AttributeDef] = {}
        kinds = [kind for kind in map(self._kinds.get, self.ancestors(kind_id)) if kind is not None]
        for kind in kinds:
            for adef in kind.attributes:
                merged.setdefault(adef.name, adef)
        # Render order: entity's attributes first, then each sub-type's, then the mixins'.
        merged = {adef.name: merged[adef.name] for kind in reversed(kinds) for adef in kind.attributes}
        for kind in reversed(kinds):
            for adef in kind.attributes:
                if adef.default is not None:
                    defaults[adef.name] = adef
        for mixin_id in mixin_ids:
            closure = self.depends_closure([mixin_id])
            for type_id in closure:
                mixin = self._mixins.get(type_id)
                if mixin is not None:
                    for adef in mixin.attributes:
                        merged.setdefault(adef.name, adef)
            for type_id in reversed(closure):
                mixin = self._mixins.get(type_id)
                if mixin is not None:
                    for adef in mixin.attributes:
                        if adef.default is not None:
                            defaults[adef.name] = adef
        result: dict[str, AttributeDef] = {}
        for name, adef in merged.items():
            source = defaults.get(name)
            if source is not None and source is not adef:
                adef = AttributeDef(
                    name=adef.name, type=adef.type, mutable=adef.mutable, required=adef.required,
                    pattern=adef.pattern, default=source.default, description=adef.description,
                    write_once=adef.write_once,
                )
            result[name] = adef
        self._cache[key] = result
        return result

    def kind_attribute_defs(self, kind_id: str) -> dict[str, AttributeDef]:
        """The full effective attribute set of a kind, inherited ones included (core.md §2.4)."""
        return self.attribute_defs(kind_id, ())

    def action_ids(self, kind_id: str, mixin_ids: Sequence[str] = ()) -> list[str]:
        """Every action defined for an entity of this kind with these mixins (core.md §8)."""
        result: list[str] = []
        for kind in map(self._kinds.get, self.ancestors(kind_id)):
            for action_id in kind.actions if kind is not None else ():
                if action_id not in result:
                    result.append(action_id)
        for type_id in self.depends_closure(mixin_ids):
            mixin = self._mixins.get(type_id)
            if mixin is not None:
                for action_id in mixin.actions:
                    if action_id not in result:
                        result.append(action_id)
        return result

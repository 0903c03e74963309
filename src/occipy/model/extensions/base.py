"""The extension seam: what one OCCI extension adds to the model, as data plus small pure hooks.

Each module of this package exposes one frozen `Extension`; `ExtensionSet` runs the hooks of the
chosen ones for the service (docs/extensions.md). Pure: no I/O, no clock (the service passes
`now`). Imports only `occipy.errors` and `occipy.model`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Any

from occipy.errors import Conflict, InvalidAttribute
from occipy.model.category import AttributeDef, AttributeValue, Category, Kind, Mixin
from occipy.model.registry import Registry


class Feature(str, Enum):
    """What a backend must be able to do to realise a category.

    The values are meant to become members of `backends.base.Capability` with the same value, so
    the service can compare them without the model importing the backends.
    """

    PLATFORM = "platform"  # applications and components (e.g. on containers), GFD.227
    MONITORING = "monitoring"  # sensors and collectors that really measure (monitoring draft)
    SECURITY_GROUPS = "security_groups"  # EGI/rOCCI securitygroup, securitygrouplink
    FLOATING_IPS = "floating_ips"  # EGI/rOCCI ipreservation, OpenStack floating IP pools


@dataclass(frozen=True, slots=True)
class StateMachine:
    """One kind's lifecycle: `transitions` rows are (from state, action id, to state).

    Only action-triggered rows are listed; server-driven changes (failures, attach/detach) are not
    transitions a client can ask for. `error` is the state a failed operation leaves, if any.
    """

    kind: str
    attribute: str
    initial: str
    states: tuple[str, ...]
    transitions: tuple[tuple[str, str, str], ...] = ()
    error: str | None = None

    def __post_init__(self) -> None:
        for source, _, target in self.transitions:
            if source not in self.states or target not in self.states:
                raise ValueError(f"{self.kind}: transition {source} -> {target} uses an unknown state")
        if self.initial not in self.states:
            raise ValueError(f"{self.kind}: unknown initial state {self.initial}")


def machine_from_catalogue(spec: Mapping[str, Any]) -> StateMachine:
    """A catalogue state machine (catalogue.json `state_machines`) as a StateMachine value."""
    states = tuple(spec["states"])
    rows = tuple(
        (row["from"], row["action"], row["to"]) for row in spec["transitions"]
        if row["trigger"] == "action" and row["action"]
    )
    return StateMachine(kind=spec["entity"], attribute=spec["attribute"], initial=spec["initial"],
                        states=states, transitions=rows, error="error" if "error" in states else None)


@dataclass(frozen=True, slots=True)
class SourceState:
    """A link may only start at a source whose `attribute` holds one of `allowed`."""

    attribute: str
    allowed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LinkEnds:
    """Which resources a link kind may join.

    `sources`/`targets` are kind ids; a sub-kind of a listed kind matches too (ipreservation is a
    network). `targets=None` accepts any target, an external URI included; a tuple demands an OCCI
    resource of one of those kinds. `acyclic` links must not close a cycle (GFD.227 §3.3).
    """

    sources: tuple[str, ...]
    targets: tuple[str, ...] | None
    source_state: SourceState | None = None
    acyclic: bool = False


# validate(kind_id, mixin_ids, attributes, registry): raise InvalidAttribute naming the attribute.
Validator = Callable[[str, Sequence[str], Mapping[str, AttributeValue], Registry], None]
# on_create(kind_id, mixin_ids, attributes, registry, now, source_attributes) -> values the server
# sets. `source_attributes` are the link source's values (None for a resource). May raise like
# validate, for checks that depend on the time (a monitoring window in the past).
CreateHook = Callable[
    [str, Sequence[str], Mapping[str, AttributeValue], Registry, datetime, Mapping[str, AttributeValue] | None],
    Mapping[str, AttributeValue],
]
# on_action(kind_id, action_id, attributes, now) -> attribute changes of a successful action.
ActionHook = Callable[[str, str, Mapping[str, AttributeValue], datetime], Mapping[str, AttributeValue]]


def frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only copy, for the mapping fields of frozen values."""
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True, eq=False)
class Extension:
    """One OCCI extension as the model serves it (docs/extensions.md, "The seam").

    Data: the categories to register (actions first, then kinds, then mixins, parents first), the
    state machines, the input aliases, the link-ends table, the backend features the categories
    need, the conformance claims for the `Server` header. Hooks: pure functions the service calls
    generically; None when the extension needs none.
    """

    name: str
    title: str
    document: str
    status: str  # normative | profile | draft | vendor (catalogue.json status_values)
    categories: tuple[Category, ...]
    requires: tuple[str, ...] = ()
    machines: tuple[StateMachine, ...] = ()
    # Accepted on input, never rendered (the registry canonicalises them).
    category_aliases: Mapping[str, str] = field(default_factory=frozen)
    attribute_aliases: Mapping[str, str] = field(default_factory=frozen)
    value_aliases: Mapping[str, str] = field(default_factory=frozen)
    # attribute name -> {alias: canonical}; "{term_name}" in a name matches any one term.
    scoped_value_aliases: Mapping[str, Mapping[str, str]] = field(default_factory=frozen)
    # Attributes accepted on input and dropped (they have no canonical equivalent).
    ignored_attributes: frozenset[str] = frozenset()
    link_ends: Mapping[str, LinkEnds] = field(default_factory=frozen)
    # target kind id -> the link kind of which such a target has at most one (a floating address
    # is on one compute at a time): a second one is 409 (ExtensionSet.check_link).
    single_links: Mapping[str, str] = field(default_factory=frozen)
    # category type id -> what a backend needs to realise it.
    needs: Mapping[str, Feature] = field(default_factory=frozen)
    # Profile tokens for the Server header (GFD.222 §5.1: "OCCI-CRTP/1.1").
    claims: tuple[str, ...] = ()
    # Mixins users may not make their own mixins depend on (monitoring draft §4 profile 1).
    provider_only_parents: frozenset[str] = frozenset()
    validate: Validator | None = None
    on_create: CreateHook | None = None
    on_action: ActionHook | None = None

    def category(self, type_id: str) -> Category:
        for category in self.categories:
            if category.type_id == type_id:
                return category
        raise KeyError(type_id)

    @property
    def kinds(self) -> tuple[Kind, ...]:
        return tuple(c for c in self.categories if isinstance(c, Kind))

    @property
    def mixins(self) -> tuple[Mixin, ...]:
        return tuple(c for c in self.categories if isinstance(c, Mixin))


def creates_cycle(edges: Iterable[tuple[str, str]], source: str, target: str) -> bool:
    """Whether adding the edge source -> target to `edges` (source, target pairs) closes a cycle."""
    following: dict[str, list[str]] = {}
    for start, end in edges:
        following.setdefault(start, []).append(end)
    seen: set[str] = set()
    pending = [target]
    while pending:
        node = pending.pop()
        if node == source:
            return True
        if node in seen:
            continue
        seen.add(node)
        pending.extend(following.get(node, ()))
    return False


def _term(type_id: str) -> str:
    return type_id.rpartition("#")[2]


def _matches(registry: Registry, kind_id: str, allowed: Sequence[str]) -> bool:
    ancestors = registry.ancestors(kind_id)
    return any(kind in ancestors for kind in allowed)


def _names(kinds: Sequence[str]) -> str:
    terms = [_term(kind) for kind in kinds]
    return terms[0] if len(terms) == 1 else ", ".join(terms[:-1]) + " or " + terms[-1]


@dataclass(frozen=True, slots=True, eq=False)
class ExtensionSet:
    """The extensions a server serves, and the generic calls the service makes into them."""

    members: tuple[Extension, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(ext.name for ext in self.members)

    def categories(self) -> list[Category]:
        return [category for ext in self.members for category in ext.categories]

    # ---- creation and update --------------------------------------------------------------

    def validate(self, kind_id: str, mixin_ids: Sequence[str], attributes: Mapping[str, AttributeValue],
                 registry: Registry) -> None:
        """Every extension's entity checks (create and update); InvalidAttribute names the attribute."""
        for ext in self.members:
            if ext.validate is not None:
                ext.validate(kind_id, mixin_ids, attributes, registry)

    def on_create(self, kind_id: str, mixin_ids: Sequence[str], attributes: Mapping[str, AttributeValue],
                  registry: Registry, now: datetime,
                  source_attributes: Mapping[str, AttributeValue] | None = None) -> dict[str, AttributeValue]:
        """Server-set values for a new entity (and time-dependent creation checks)."""
        result: dict[str, AttributeValue] = {}
        for ext in self.members:
            if ext.on_create is not None:
                result.update(ext.on_create(kind_id, mixin_ids, attributes, registry, now, source_attributes))
        return result

    def on_action(self, kind_id: str, action_id: str, attributes: Mapping[str, AttributeValue],
                  now: datetime) -> dict[str, AttributeValue]:
        """Attribute changes a successful action makes besides its state (SLA accept: agreedAt)."""
        result: dict[str, AttributeValue] = {}
        for ext in self.members:
            if ext.on_action is not None:
                result.update(ext.on_action(kind_id, action_id, attributes, now))
        return result

    # ---- links ----------------------------------------------------------------------------

    def link_ends(self, registry: Registry, link_kind: str) -> LinkEnds | None:
        """The ends rule of a link kind, or of its nearest ancestor that has one."""
        for kind_id in registry.ancestors(link_kind):
            for ext in self.members:
                rule = ext.link_ends.get(kind_id)
                if rule is not None:
                    return rule
        return None

    def single_link(self, link_kind: str, target_kind: str | None) -> bool:
        """Whether a target of this kind has at most one link of this kind (`Extension.single_links`)."""
        return target_kind is not None and any(ext.single_links.get(target_kind) == link_kind for ext in self.members)

    def check_link(self, registry: Registry, link_kind: str, source_kind: str, target_kind: str | None,
                   *, source_attributes: Mapping[str, AttributeValue] | None = None,
                   edges: Iterable[tuple[str, str]] = (), source: str | None = None,
                   target: str | None = None, target_links: Iterable[tuple[str, str, str | None]] = ()) -> None:
        """Refuse a link whose ends its kind does not allow (GFD.224 §3.4, GFD.227 §3.3, ...).

        `target_kind` is None when the target is not an OCCI entity. For acyclic link kinds,
        `edges` are the existing links of that kind as (source, target) locations and `source`,
        `target` the new link's locations (no cycle check without them). For a target that has at
        most one link of this kind (`single_link`), `target_links` are the links it has as (kind,
        location, source). Raises InvalidAttribute naming occi.core.source or occi.core.target
        (400), or Conflict (409) when the source is not in an allowed state or the target is taken.
        """
        if self.single_link(link_kind, target_kind):
            for kind, location, linked in target_links:
                if kind == link_kind:
                    raise Conflict(f"{_term(target_kind or '')} {target} is already associated with {linked} "
                                   f"({_term(link_kind)} {location}): delete that link first")
        rule = self.link_ends(registry, link_kind)
        if rule is None:
            return
        link = _term(link_kind)
        if not _matches(registry, source_kind, rule.sources):
            raise InvalidAttribute(f"attribute occi.core.source: a {link} starts at a {_names(rule.sources)}, "
                                   f"not at a {_term(source_kind)}")
        if rule.targets is not None:
            if target_kind is None:
                raise InvalidAttribute(f"attribute occi.core.target: a {link} ends at a {_names(rule.targets)} "
                                       "of this server, not at an external URI")
            if not _matches(registry, target_kind, rule.targets):
                raise InvalidAttribute(f"attribute occi.core.target: a {link} ends at a {_names(rule.targets)}, "
                                       f"not at a {_term(target_kind)}")
        if rule.source_state is not None:
            current = (source_attributes or {}).get(rule.source_state.attribute)
            if current not in rule.source_state.allowed:
                raise Conflict(f"a {link} can only start at a {_term(source_kind)} whose "
                               f"{rule.source_state.attribute} is {' or '.join(rule.source_state.allowed)}, "
                               f"not {current}")
        if rule.acyclic and source is not None and target is not None and creates_cycle(edges, source, target):
            raise InvalidAttribute(f"attribute occi.core.target: this {link} would close a cycle "
                                   f"(GFD.227 §3.3: {link}s form acyclic graphs)")

    # ---- discovery, headers, input --------------------------------------------------------

    def needs(self) -> dict[str, Feature]:
        return {type_id: feature for ext in self.members for type_id, feature in ext.needs.items()}

    def unrealisable(self, features: Collection[str]) -> frozenset[str]:
        """Type ids of the categories a backend with these features cannot realise.

        `features` are Feature members or their values (a driver's Capability values).
        """
        have = {str(getattr(f, "value", f)) for f in features}
        return frozenset(type_id for type_id, feature in self.needs().items() if feature.value not in have)

    def claims(self) -> tuple[str, ...]:
        return tuple(claim for ext in self.members for claim in ext.claims)

    def provider_only_parents(self) -> frozenset[str]:
        return frozenset().union(*(ext.provider_only_parents for ext in self.members))

    def ignored_attributes(self) -> frozenset[str]:
        return _IGNORED.get(self.members) or _IGNORED.setdefault(
            self.members, frozenset().union(*(ext.ignored_attributes for ext in self.members)))

    def canonical_value(self, attribute: str, value: str) -> str:
        """The canonical spelling of an enum value for one attribute (SLA states in lower case)."""
        for ext in self.members:
            for name, aliases in ext.scoped_value_aliases.items():
                if name == attribute or (name.startswith("{term_name}.")
                                         and attribute.endswith(name.removeprefix("{term_name}"))):
                    canonical = aliases.get(value)
                    if canonical is not None:
                        return canonical
        return value


# What each set of members ignores, computed once (the service asks on every request).
_IGNORED: dict[tuple[Extension, ...], frozenset[str]] = {}


def with_pattern(adef: AttributeDef, pattern: Mapping[str, Any] | None, *,
                 description: str | None = None) -> AttributeDef:
    """The definition with another JSON-Schema `pattern` (and description)."""
    return AttributeDef(name=adef.name, type=adef.type, mutable=adef.mutable, required=adef.required,
                        pattern=pattern, default=adef.default,
                        description=description if description is not None else adef.description,
                        write_once=adef.write_once)

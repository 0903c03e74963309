"""How an entity's mixins and attributes change, as pure functions over the registry (core.md §7, §8).

Checks every attribute against the merged definitions of the Kind and mixins, applies template
defaults and replacement rules (GFD.224 §3.5), and derives the updated entity of a partial update
(POST), a full replacement (PUT) or a mixin (dis)association. An `Edit` is a value: the same edit
is applied when a queued update's turn comes, to the entity as it is then, and again after a
restart (its fields are the operation's persisted parameters). No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from occipy.errors import BadRequest, Conflict, ImmutableAttribute, InvalidAttribute, MixinNotApplicable, UnknownCategory
from occipy.model import state as fsm
from occipy.model.catalogue import IPNETWORK, IPNETWORKINTERFACE, LEGACY_IGNORED_ATTRIBUTES, OS_TPL, RESOURCE_TPL, SSH_KEY, USER_DATA
from occipy.model.category import AttributeValue, Mixin
from occipy.model.entity import Entity
from occipy.model.registry import Registry
from occipy.rendering.messages import ActionInvocation

# Attributes the server renders and a client may echo back; never values a client sets.
ECHOED: Final = frozenset({"occi.core.source.kind"})
# Mixins that can only be given when the entity is created (GFD.221 §5.3.4: other stage -> 400).
CREATION_ONLY: Final = frozenset({SSH_KEY, USER_DATA})
LINK_ENDS: Final = ("occi.core.source", "occi.core.target")

# Edit modes.
MERGE: Final = "merge"  # POST on an entity: change what is sent, add mixins
REPLACE: Final = "replace"  # PUT on an entity: what is not sent is unset (links and templates stay)
ASSOCIATE: Final = "associate"  # a mixin collection gains the entity
DISSOCIATE: Final = "dissociate"  # a mixin collection loses the entity


def template_family(registry: Registry, mixin_id: str) -> str | None:
    """OS_TPL or RESOURCE_TPL when the mixin is a template of that family, else None."""
    for family in (OS_TPL, RESOURCE_TPL):
        if mixin_id != family and registry.is_mixin(mixin_id) and registry.depends_on(mixin_id, family):
            return family
    return None


def _same(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return a == b


def check_attributes(
    registry: Registry, kind_id: str, mixin_ids: Sequence[str], values: Mapping[str, Any], *,
    lenient: bool, current: Entity | None,
) -> dict[str, AttributeValue]:
    """Values a client sent, checked against the merged definitions (core.md §8).

    Unknown names -> 400; immutable ones: ignored at creation (except occi.core.id), 403 on update
    when the value differs (core.md §2.1 decision); write-once ones changed later -> 409.
    """
    defs = registry.attribute_defs(kind_id, mixin_ids)
    result: dict[str, AttributeValue] = {}
    for raw_name, value in values.items():
        name = registry.canonical_attribute(raw_name)
        if name in LEGACY_IGNORED_ATTRIBUTES or name in ECHOED:
            continue
        adef = defs.get(name)
        if adef is None:
            term = kind_id.rpartition("#")[2]
            raise InvalidAttribute(f"unknown attribute {name} for a {term}" +
                                   ("" if not mixin_ids else " with the given mixins"))
        if isinstance(value, str):
            value = registry.canonical_value(value)
        checked = adef.check(value, lenient=lenient)
        if not adef.mutable:
            if current is None:
                if name == "occi.core.id":
                    result[name] = checked
                continue
            if not _same(current.attributes.get(name), checked):
                raise ImmutableAttribute(f"attribute {name} is managed by the server and cannot be changed")
            continue
        if adef.write_once and current is not None and name in current.attributes \
                and not _same(current.attributes[name], checked):
            raise Conflict(f"attribute {name} can only be supplied once, at creation")
        result[name] = checked
    return result


def with_defaults(registry: Registry, kind_id: str, mixins: Sequence[str],
                  attributes: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
    """Template and kind defaults for attributes without a value (GFD.221 §5.3.7)."""
    result = dict(attributes)
    for name, adef in registry.attribute_defs(kind_id, mixins).items():
        if name not in result and adef.default is not None:
            result[name] = adef.default
    return result


def check_required(registry: Registry, entity: Entity) -> None:
    for name, adef in registry.attribute_defs(entity.kind, entity.mixins).items():
        if adef.required and adef.mutable and name not in entity.attributes:
            raise InvalidAttribute(f"attribute {name} is required")


def resolve_mixins(registry: Registry, kind_id: str, mixin_ids: Iterable[str], *, existing: Sequence[str] = (),
                   creating: bool, visible: Any = None) -> list[str]:
    """Canonical, de-duplicated mixins after the applies, stage and template rules (core.md §7).

    A new template of a family replaces the entity's old one (GFD.224 §3.5.1-3.5.2); two
    templates of one family in a single request -> 400. `visible(mixin) -> bool` hides user mixins
    of other tenants (they are unknown to the caller).
    """
    result = list(existing)
    seen_families: set[str] = set()
    for raw in mixin_ids:
        mixin_id = registry.canonical(raw)
        if not registry.is_mixin(mixin_id) or (visible is not None and not visible(registry.mixin(mixin_id))):
            raise UnknownCategory(f"unknown mixin {raw}")
        if not registry.applies_to(mixin_id, kind_id):
            raise MixinNotApplicable(f"mixin {mixin_id} cannot be applied to a {kind_id.rpartition('#')[2]}")
        if not creating and mixin_id in CREATION_ONLY and mixin_id not in existing:
            raise BadRequest(f"mixin {mixin_id} can only be associated when the compute is created")
        if mixin_id in result:
            continue
        family = template_family(registry, mixin_id)
        if family is not None:
            if family in seen_families:
                raise BadRequest(f"only one {family.rpartition('#')[2]} template may be given")
            seen_families.add(family)
            result = [m for m in result if template_family(registry, m) != family]
        result.append(mixin_id)
    return result


def _template_defaults(registry: Registry, before: Sequence[str], after: Sequence[str],
                       attributes: dict[str, AttributeValue]) -> None:
    """A newly associated template overrides the attributes it sets (GFD.224 §3.5.2, INF-48)."""
    for mixin_id in after:
        if mixin_id in before or template_family(registry, mixin_id) is None:
            continue
        for mixin_ref in registry.depends_closure([mixin_id]):
            for adef in registry.mixin(mixin_ref).attributes:
                if adef.default is not None:
                    attributes[adef.name] = adef.default


def resolve_action(registry: Registry, available: Sequence[str], term: str, invocation: ActionInvocation) -> str:
    """The action type id: the body's category (must match the query term) or the unique term match."""
    if invocation.action is not None:
        action_id = registry.canonical(invocation.action)
        if not registry.is_action(action_id):
            raise BadRequest(f"unknown action {invocation.action}")
        if action_id.rpartition("#")[2] != term:
            raise BadRequest(f"the action in the body ({action_id}) does not match ?action={term}")
        if action_id not in available:
            raise BadRequest(f"action {action_id} is not defined for this entity")
        return action_id
    matches = [action_id for action_id in available if action_id.rpartition("#")[2] == term]
    if not matches:
        raise BadRequest(f"no action {term} is defined for this entity")
    if len(matches) > 1:
        # GFD.185 §3.6.8: 409 when the request yields a non-unique result; send the full category.
        raise Conflict(f"action {term} is ambiguous ({', '.join(matches)}); send its category")
    return matches[0]


def check_parameters(registry: Registry, action_id: str, invocation: ActionInvocation) -> dict[str, AttributeValue]:
    """Parameters checked against the action's attribute definitions (INF-08: method enums)."""
    action = registry.action(action_id)
    result: dict[str, AttributeValue] = {}
    for name, value in invocation.attributes.items():
        adef = action.attribute(name)
        if adef is None:
            raise InvalidAttribute(f"action {action.term} has no parameter {name}")
        if isinstance(value, str):
            value = registry.canonical_value(value)
        result[name] = adef.check(value, lenient=invocation.lenient)
    for adef in action.attributes:
        if adef.name not in result and adef.default is not None:
            result[adef.name] = adef.default
        if adef.required and adef.name not in result:
            raise InvalidAttribute(f"action {action.term} needs the parameter {adef.name}")
    return result


def set_state(entity: Entity, state: str | None, message: str | None) -> Entity:
    """The entity with its lifecycle state (when given) and its state message (None: none)."""
    name = fsm.state_attribute(entity.kind)
    if name is None:
        return entity
    values: dict[str, AttributeValue] = {}
    if state is not None:
        values[name] = state
    if message:
        values[name + ".message"] = message
        return entity.with_attributes(values)
    return entity.with_attributes(values, drop=(name + ".message",))


def state_of(entity: Entity) -> str | None:
    name = fsm.state_attribute(entity.kind)
    value = entity.attributes.get(name) if name else None
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Edit:
    """A change a client asked for, applied to the entity as it is at the edit's turn."""

    mode: str
    mixins: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    lenient: bool = False
    # Attributes a live cloud object reports and a PUT keeps (binding.reported), when backed.
    reported: frozenset[str] = frozenset()

    def params(self) -> dict[str, Any]:
        """The edit as an operation's persisted parameters."""
        return {"mode": self.mode, "mixins": list(self.mixins), "attributes": dict(self.attributes),
                "lenient": self.lenient, "reported": sorted(self.reported)}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Edit:
        return cls(mode=str(params.get("mode", MERGE)), mixins=tuple(params.get("mixins", ())),
                   attributes=dict(params.get("attributes", {})), lenient=bool(params.get("lenient")),
                   reported=frozenset(params.get("reported", ())))


def apply_edit(registry: Registry, stored: Entity, edit: Edit, *, visible: Any = None) -> Entity:
    """The entity after the edit; raises the 4xx error the edit deserves (core.md §7, §8)."""
    if edit.mode == DISSOCIATE:
        return _without_mixins(registry, stored, edit.mixins)
    if edit.mode == REPLACE:
        # Templates cannot be taken away from a running compute, only replaced: keep them unless
        # replaced (D-TEMPLATES), as the creation-only mixins and a live network's ip mixins.
        live = stored.backend_id is not None
        kept = [m for m in stored.mixins if template_family(registry, m) is not None or m in CREATION_ONLY
                or (live and m in (IPNETWORK, IPNETWORKINTERFACE))]
        mixins = resolve_mixins(registry, stored.kind, edit.mixins, existing=kept, creating=False, visible=visible)
    else:
        mixins = resolve_mixins(registry, stored.kind, edit.mixins, existing=stored.mixins, creating=False,
                                visible=visible)
    values = check_attributes(registry, stored.kind, mixins, edit.attributes, lenient=edit.lenient, current=stored)
    values.pop("occi.core.id", None)
    if edit.mode == REPLACE:
        defs = registry.attribute_defs(stored.kind, mixins)
        # "missing information will result in the deletion of the same" (GFD.185 §3.4.4): mutable
        # attributes not sent are unset; server-managed and write-once ones keep their values.
        attributes: dict[str, AttributeValue] = {
            name: value for name, value in stored.attributes.items()
            if name in defs and (not defs[name].mutable or defs[name].write_once or name in LINK_ENDS
                                 or (stored.backend_id is not None and name in edit.reported))
        }
    else:
        attributes = dict(stored.attributes)
    attributes.update(values)
    _template_defaults(registry, stored.mixins, mixins, attributes)
    updated = stored.evolve(mixins=mixins, attributes=with_defaults(registry, stored.kind, mixins, attributes))
    check_required(registry, updated)
    return updated


def _without_mixins(registry: Registry, entity: Entity, mixin_ids: Sequence[str]) -> Entity:
    """The entity without these mixins; attribute values only they defined are dropped (core.md §7)."""
    mixins = [m for m in entity.mixins if m not in mixin_ids]
    defs = registry.attribute_defs(entity.kind, mixins)
    return entity.evolve(mixins=mixins, attributes={k: v for k, v in entity.attributes.items() if k in defs})


def check_dissociation(registry: Registry, mixin: Mixin) -> None:
    """Whether a mixin may be taken away from entities (D-TEMPLATES, D-CREATION-ONLY)."""
    if template_family(registry, mixin.type_id) is not None and not mixin.user_defined:
        raise BadRequest(f"the template {mixin.type_id} cannot be taken away; associate another one to replace it")
    if mixin.type_id in CREATION_ONLY:
        raise BadRequest(f"mixin {mixin.type_id} cannot be removed after creation")

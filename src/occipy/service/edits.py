"""How an entity's mixins and attributes change, as pure functions over the registry (core.md §7, §8).

Checks every attribute against the merged definitions of the Kind and mixins, applies template
defaults and replacement rules (GFD.224 §3.5), and derives the updated entity of a partial update
(POST), a full replacement (PUT) or a mixin (dis)association. An `Edit` is a value: the same edit
is applied when a queued update's turn comes, to the entity as it is then, and again after a
restart (its fields are the operation's persisted parameters). No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from occipy.errors import BadRequest, UnknownCategory
from occipy.model import rules
from occipy.model import state as fsm
from occipy.model.catalogue import IPNETWORK, IPNETWORKINTERFACE
from occipy.model.category import AttributeValue, Mixin
from occipy.model.entity import Entity
from occipy.model.registry import Registry
from occipy.model.rules import CREATION_ONLY

LINK_ENDS: Final = ("occi.core.source", "occi.core.target")

# Edit modes.
MERGE: Final = "merge"  # POST on an entity: change what is sent, add mixins
REPLACE: Final = "replace"  # PUT on an entity: what is not sent is unset (links and templates stay)
ASSOCIATE: Final = "associate"  # a mixin collection gains the entity
DISSOCIATE: Final = "dissociate"  # a mixin collection loses the entity


def with_defaults(registry: Registry, kind_id: str, mixins: Sequence[str],
                  attributes: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
    """The attributes with template and kind defaults where they have no value (GFD.221 §5.3.7)."""
    return {**attributes, **rules.defaults_to_fill(registry, kind_id, mixins, attributes)}


def resolve_mixins(registry: Registry, kind_id: str, mixin_ids: Iterable[str], *, existing: Sequence[str] = (),
                   creating: bool, visible: Callable[[Mixin], bool] | None = None) -> list[str]:
    """`rules.resolve_mixins`, where user mixins of other tenants are unknown (404-like: 400 unknown)."""
    wanted = list(mixin_ids)
    if visible is not None:
        for raw in wanted:
            found = registry.find(registry.canonical(raw))
            if isinstance(found, Mixin) and not visible(found):
                raise UnknownCategory(f"unknown mixin {raw}")
    return rules.resolve_mixins(registry, kind_id, wanted, existing=existing, creating=creating)


def check_attributes(registry: Registry, kind_id: str, mixin_ids: Sequence[str], values: Mapping[str, Any], *,
                     lenient: bool, current: Entity | None) -> dict[str, AttributeValue]:
    """`rules.check_attributes` against an entity's current values (None: at creation)."""
    return rules.check_attributes(registry, kind_id, mixin_ids, values, lenient=lenient,
                                  current=current.attributes if current is not None else None).values


def check_required(registry: Registry, entity: Entity) -> None:
    rules.check_required(registry, entity.kind, entity.mixins, entity.attributes)


def template_family(registry: Registry, mixin_id: str) -> str | None:
    return rules.template_family(registry, mixin_id) if registry.is_mixin(mixin_id) else None


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
        """The edit persisted by `params()` (a queued update, after a restart)."""
        return cls(mode=str(params.get("mode", MERGE)), mixins=tuple(params.get("mixins", ())),
                   attributes=dict(params.get("attributes", {})), lenient=bool(params.get("lenient")),
                   reported=frozenset(params.get("reported", ())))


def apply_edit(registry: Registry, stored: Entity, edit: Edit, *,
               visible: Callable[[Mixin], bool] | None = None) -> Entity:
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

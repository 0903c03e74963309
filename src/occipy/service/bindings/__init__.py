"""Bindings: how an OCCI kind is realised by a driver resource type (the only OCCI <-> cloud mapping).

A binding turns an entity into the driver's typed spec, the facts a driver reports into OCCI
attributes, an action invocation into the driver's action value, and an attribute change into a
live update. `BINDINGS` maps kind type ids to bindings; a new kind is one module with a binding
and one `register()` call (see `docs/extending.md`). Imports the model and the driver contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec

from occipy.backends.base import Action, Observed, Update
from occipy.model.category import AttributeValue
from occipy.model.entity import Entity


class SpecInput(msgspec.Struct, frozen=True):
    """What the service knows besides the entity when it builds a spec."""

    name: str  # a cloud-friendly name (slug of the title + the location's last segment)
    image: str | None = None  # the driver name of the entity's os_tpl, if any
    flavour: str | None = None  # the driver name of the entity's resource_tpl, if any
    ends: tuple[str, str] | None = None  # links: backend ids of source and target
    # Every template family the entity has a template of -> its driver name (Platform: RUNTIME, PLAN).
    templates: Mapping[str, str] = msgspec.field(default_factory=dict)


class Reported(msgspec.Struct, frozen=True):
    """OCCI attributes from a driver's facts, and the mixins they need (e.g. ipnetwork)."""

    attributes: Mapping[str, AttributeValue] = msgspec.field(default_factory=dict)
    mixins: tuple[str, ...] = ()


class Binding(Protocol):
    """The realisation of one OCCI kind by one driver resource type."""

    kind: str  # OCCI kind type id
    resource: str  # driver resource type
    created_state: str  # the entity's state once created (every real cloud boots what it creates)
    # Attributes the cloud reports about a live object: a PUT without them keeps them, reconciling
    # fills them in when missing.
    reported: frozenset[str]
    # Attributes whose change must be applied to the live object, with the update field each becomes.
    live: Mapping[str, str]

    def spec(self, entity: Entity, given: SpecInput) -> object:
        """The driver spec that creates the entity's object."""

    def report(self, facts: object | None) -> Reported:
        """OCCI attributes for the facts the driver reported."""

    def facts(self, entity: Entity) -> object | None:
        """The facts an entity records (to re-introduce a stored object to a driver that `Adopts`)."""

    def action(self, term: str, params: Mapping[str, AttributeValue]) -> Action:
        """The driver action for an OCCI action invocation (parameters already checked)."""

    def update(self, fields: Mapping[str, object]) -> Update:
        """The driver update value for changed live fields (field name -> new value)."""

    def proposal(self, siblings: Sequence[Entity]) -> Mapping[str, AttributeValue]:
        """Neutral values for multiplicity-1 attributes when no driver names them (links only)."""


BINDINGS: dict[str, Binding] = {}


def register(binding: Binding) -> Binding:
    """Make a kind realisable by drivers that support the binding's resource type."""
    if binding.kind in BINDINGS:
        raise ValueError(f"{binding.kind} is already bound")
    BINDINGS[binding.kind] = binding
    return binding


def observed_of(binding: Binding, entity: Entity, state_attribute: str | None) -> Observed:
    """The object as the entity records it (its state and facts)."""
    state = entity.attributes.get(state_attribute) if state_attribute else None
    return Observed(backend_id=entity.backend_id or "", state=str(state or ""), facts=binding.facts(entity))

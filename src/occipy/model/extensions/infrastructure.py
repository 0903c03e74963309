"""OCCI Infrastructure 1.2 (GFD.224) as an extension: its categories, diagrams and link ends.

The categories are `catalogue.infrastructure_categories()` without the CRTP templates (module
`crtp`); the state machines are the catalogue's GFD.224 diagrams. GFD.224 §3.4 fixes the link
ends: a NetworkInterface joins a Compute to a Network, a StorageLink a Compute to a Storage.
"""

from __future__ import annotations

import dataclasses

from occipy.model._catalogue_data import CATALOGUE
from occipy.model.catalogue import (
    COMPUTE,
    LEGACY_IGNORED_ATTRIBUTES,
    LEGACY_STORAGE_ACTIONS,
    NETWORK,
    NETWORKINTERFACE,
    STORAGE,
    STORAGELINK,
    infrastructure_categories,
)
from occipy.model.category import Category
from occipy.model.extensions import _build
from occipy.model.extensions.base import Extension, LinkEnds, StateMachine, frozen, machine_from_catalogue

CRTP_SCHEME = "http://schemas.ogf.org/occi/infrastructure/compute/template/1.1#"

_ALL: tuple[Category, ...] = tuple(infrastructure_categories())
_ALIASES = CATALOGUE["aliases"]


def _with_legacy(machine: StateMachine) -> StateMachine:
    """docs/decisions.md D-LEGACY-STORAGE: the 1.1 storage actions are allowed in `online` and
    `offline` and lead back to the same state (the 1.1 transient states are not served)."""
    if machine.kind != STORAGE:
        return machine
    rows = tuple((state, action_id, state) for action_id in LEGACY_STORAGE_ACTIONS for state in ("online", "offline"))
    return dataclasses.replace(machine, transitions=(*machine.transitions, *rows))


EXTENSION = Extension(
    name="infrastructure",
    title="OCCI Infrastructure 1.2",
    document="GFD.224",
    status="normative",
    categories=tuple(c for c in _ALL if c.scheme != CRTP_SCHEME),
    machines=tuple(_with_legacy(machine_from_catalogue(spec)) for spec in CATALOGUE["state_machines"]),
    category_aliases=frozen(_build.aliases(_ALIASES, "infrastructure", "category")),
    attribute_aliases=frozen(_build.aliases(_ALIASES, "infrastructure", "attribute")),
    value_aliases=frozen(_build.aliases(_ALIASES, "infrastructure", "enum_value")),
    ignored_attributes=frozenset(LEGACY_IGNORED_ATTRIBUTES),
    link_ends=frozen({
        # GFD.224 §3.4.1: "NetworkInterface connects a Compute instance to a Network instance"
        NETWORKINTERFACE: LinkEnds(sources=(COMPUTE,), targets=(NETWORK,)),
        # GFD.224 §3.4.2: "StorageLink ... connects a Compute instance to a Storage instance"
        STORAGELINK: LinkEnds(sources=(COMPUTE,), targets=(STORAGE,)),
    }),
)

# The CRTP templates, for the `crtp` module.
CRTP_CATEGORIES: tuple[Category, ...] = tuple(c for c in _ALL if c.scheme == CRTP_SCHEME)

"""The registry a server starts from: Core and the chosen extensions, with their state machines.

Apart from `catalogue` because it assembles what is built with `catalogue`'s helpers (the
extension modules import those): keeping both in one module made an import circle.
"""

from __future__ import annotations

from collections.abc import Sequence

from occipy.model import state
from occipy.model.catalogue import CORE_KINDS
from occipy.model.extensions import ALL, ordered
from occipy.model.extensions.base import Extension
from occipy.model.registry import Registry

__all__ = ["standard_registry"]


def standard_registry(extensions: Sequence[Extension] | None = None) -> Registry:
    """A registry holding Core and the chosen extensions (default: every one, docs/extensions.md).

    Each extension adds its categories and its input aliases (category aliases only when the
    canonical category is registered). Extensions come after the ones they require; a missing
    requirement is a ValueError.
    """
    chosen = ordered(ALL if extensions is None else extensions)
    for ext in chosen:
        state.register(ext.machines)
    registry = Registry()
    registry.add_all(CORE_KINDS)
    for ext in chosen:
        registry.add_all(ext.categories)
    for ext in chosen:
        for alias, canonical in ext.category_aliases.items():
            if registry.find(canonical) is not None:
                registry.add_alias(alias, canonical)
        for alias, canonical in ext.attribute_aliases.items():
            registry.add_attribute_alias(alias, canonical)
        # Only aliases that hold for every attribute: the per-attribute ones (SLA states in lower
        # case) would turn a compute's "suspended" into "Suspended" (Extension.scoped_value_aliases).
        for alias, canonical in ext.value_aliases.items():
            registry.add_value_alias(alias, canonical)
    return registry

"""The OCCI extensions the model serves, one module each, behind one seam (docs/extensions.md).

`ALL` lists every extension in registration order: Infrastructure (GFD.224), the CRTP profile
(GFD.222), Platform (GFD.227), SLAs (GFD.228), the Monitoring draft and the EGI/rOCCI
infrastructure extensions. `select()` picks some by name, with what they require.
Imports only `occipy.errors` and `occipy.model`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from occipy.model.extensions import crtp, egi, infrastructure, monitoring, platform, sla
from occipy.model.extensions.base import (
    ActionHook,
    CreateHook,
    Extension,
    ExtensionSet,
    Feature,
    LinkEnds,
    SourceState,
    StateMachine,
    Validator,
    creates_cycle,
)

ALL: tuple[Extension, ...] = (
    infrastructure.EXTENSION,
    crtp.EXTENSION,
    platform.EXTENSION,
    sla.EXTENSION,
    monitoring.EXTENSION,
    egi.EXTENSION,
)
BY_NAME = {ext.name: ext for ext in ALL}


def ordered(extensions: Iterable[Extension]) -> tuple[Extension, ...]:
    """The extensions, each after those it requires; ValueError if a required one is missing."""
    chosen = list(dict.fromkeys(extensions))
    names = {ext.name for ext in chosen}
    for ext in chosen:
        missing = [name for name in ext.requires if name not in names]
        if missing:
            raise ValueError(f"extension {ext.name} requires {', '.join(missing)}")
    # Stable: each step places the first extension (in the given order) whose requirements are placed.
    result: list[Extension] = []
    while len(result) < len(chosen):
        placed = {ext.name for ext in result}
        ready = next((ext for ext in chosen if ext not in result and set(ext.requires) <= placed), None)
        if ready is None:
            raise ValueError("extensions require each other in a cycle: "
                             + ", ".join(ext.name for ext in chosen if ext not in result))
        result.append(ready)
    return tuple(result)


def select(names: Sequence[str]) -> tuple[Extension, ...]:
    """The named extensions and the ones they require, in registration order.

    ValueError names an unknown extension (a configuration mistake, reported at start-up).
    """
    wanted: list[str] = []

    def add(name: str) -> None:
        if name not in BY_NAME:
            raise ValueError(f"unknown OCCI extension {name!r}; known: {', '.join(BY_NAME)}")
        for required in BY_NAME[name].requires:
            add(required)
        if name not in wanted:
            wanted.append(name)

    for name in names:
        add(name)
    return ordered(ext for ext in ALL if ext.name in wanted)


__all__ = [
    "ALL",
    "BY_NAME",
    "ActionHook",
    "CreateHook",
    "Extension",
    "ExtensionSet",
    "Feature",
    "LinkEnds",
    "SourceState",
    "StateMachine",
    "Validator",
    "creates_cycle",
    "crtp",
    "egi",
    "infrastructure",
    "monitoring",
    "ordered",
    "platform",
    "select",
    "sla",
]

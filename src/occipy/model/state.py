"""Every kind's state machine in one table (GFD.224 §3, GFD.227 §3.1-3.2, GFD.228 §3.1 diagrams).

`TRANSITIONS[(kind, state, action)] -> state` is built from the state machines of every
extension in `occipy.model.extensions.ALL` (keyed by kind: a kind a registry does not serve is
never looked up). An action that has no row for the current state is refused with
ActionNotAllowed (409, conformance INF-R1); `available_actions()` picks the action links to
render (INF-R2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from occipy.errors import ActionNotAllowed
from occipy.model.extensions import ALL
from occipy.model.extensions.base import StateMachine


def _build(machines: Iterable[StateMachine]) -> tuple[
        dict[str, StateMachine], dict[tuple[str, str, str], str], dict[str, str], dict[str, str], dict[str, str]]:
    by_kind: dict[str, StateMachine] = {}
    transitions: dict[tuple[str, str, str], str] = {}
    attributes: dict[str, str] = {}
    initial: dict[str, str] = {}
    failure: dict[str, str] = {}
    for machine in machines:
        kind = machine.kind
        if kind in by_kind:
            raise ValueError(f"two state machines for {kind}")
        by_kind[kind] = machine
        attributes[kind] = machine.attribute
        initial[kind] = machine.initial
        if machine.error is not None:
            failure[kind] = machine.error
        for source, action, target in machine.transitions:
            transitions[(kind, source, action)] = target
    return by_kind, transitions, attributes, initial, failure


_TABLES = _build(machine for ext in ALL for machine in ext.machines)
MACHINES: Final[Mapping[str, StateMachine]] = _TABLES[0]
TRANSITIONS: Final[Mapping[tuple[str, str, str], str]] = _TABLES[1]
STATE_ATTRIBUTE: Final[Mapping[str, str]] = _TABLES[2]
INITIAL_STATE: Final[Mapping[str, str]] = _TABLES[3]
ERROR_STATE: Final[Mapping[str, str]] = _TABLES[4]


def state_attribute(kind_id: str) -> str | None:
    """The name of the attribute that holds the lifecycle state of this kind, if it has one."""
    return STATE_ATTRIBUTE.get(kind_id)


_GOVERNED: Final[set[tuple[str, str]]] = {(kind, action) for kind, _, action in TRANSITIONS}


def _targets(transitions: Mapping[tuple[str, str, str], str]) -> dict[tuple[str, str], set[str]]:
    result: dict[tuple[str, str], set[str]] = {}
    for (kind, _, action), target in transitions.items():
        result.setdefault((kind, action), set()).add(target)
    return result


# (kind, action) -> the states the action leads to.
_TARGETS: Final[dict[tuple[str, str], set[str]]] = _targets(TRANSITIONS)


def register(machines: Iterable[StateMachine]) -> None:
    """Add the state machines of an extension that is not in `ALL` (docs/extending.md).

    Registering the same machine again changes nothing; another machine for a kind that has one
    is a ValueError.
    """
    for machine in machines:
        known = _TABLES[0].get(machine.kind)
        if known is machine or known == machine:
            continue
        if known is not None:
            raise ValueError(f"two state machines for {machine.kind}")
        tables = _build([machine])
        for own, more in zip(_TABLES, tables):
            own.update(more)  # type: ignore[attr-defined]
        _GOVERNED.update((machine.kind, action) for _, action, _ in machine.transitions)
        for _, action, target in machine.transitions:
            _TARGETS.setdefault((machine.kind, action), set()).add(target)


def governed(kind_id: str, action_id: str) -> bool:
    """Whether the kind's state machine says anything about this action."""
    return (kind_id, action_id) in _GOVERNED


def next_state(kind_id: str, state: str | None, action_id: str) -> str | None:
    """The state an action leads to, or ActionNotAllowed (409) when the diagram forbids it here.

    Actions the kind's diagram does not govern (mixin actions) return None: no state change.
    """
    if not governed(kind_id, action_id):
        return None
    target = TRANSITIONS.get((kind_id, state or "", action_id))
    if target is None:
        term = action_id.rpartition("#")[2]
        raise ActionNotAllowed(f"action {term} is not allowed while the state is {state}")
    return target


def already_there(kind_id: str, state: str | None, action_id: str) -> bool:
    """Whether an entity in `state` is already where the action leads, and the action has no row
    from there: start on an active compute, stop on an inactive one (a no-op on a collection,
    docs/decisions.md D-COLLECTION-NOOP). An action with a row from `state` (restart on an active
    compute) is never a no-op; an ungoverned action neither.
    """
    if state is None or not governed(kind_id, action_id) or (kind_id, state, action_id) in TRANSITIONS:
        return False
    return state in _TARGETS.get((kind_id, action_id), ())


def available_actions(kind_id: str, state: str | None, action_ids: Sequence[str]) -> tuple[str, ...]:
    """The subset of `action_ids` that may be invoked in `state` (the ones to render)."""
    return tuple(
        action_id for action_id in action_ids
        if not governed(kind_id, action_id) or (kind_id, state or "", action_id) in TRANSITIONS
    )

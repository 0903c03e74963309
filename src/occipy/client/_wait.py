"""Steps of the sans-IO client operations, and `wait_for`: following a long operation to its end.

Every client operation is a generator that yields `Request`s (and `Sleep`s) and receives the
`httpx.Response`s; `Client` and `AsyncClient` only run them (python-hyper/h11 style: the logic
knows no socket). The wait logic reads the server's operation resource (`X-OCCI-Operation`)
when there is one and polls the entity's `occi.<kind>.state` otherwise. Imports httpx (types
only), `occipy.model` and `occipy.errors`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from occipy.errors import BackendError, OcciError
from occipy.model.entity import Entity

__all__ = ["OperationStatus", "Progress", "WaitTimeout"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request an operation wants sent (the runner adds auth and default headers)."""

    method: str
    url: str
    headers: Sequence[tuple[str, str]] = ()
    content: bytes = b""
    params: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True, slots=True)
class Sleep:
    """A pause an operation asks for between two polls.

    `until_change`: the pause waits for a change (a runner with the server's event stream may wait
    for an event about the entity instead, and longer); False: the next poll must come after
    `seconds` (a state must be seen unchanged for some time).
    """

    seconds: float
    until_change: bool = True


Step = Request | Sleep
# An operation: yields steps, receives the response to each Request (None after a Sleep).
Op = Generator[Step, httpx.Response | None, T]


class WaitTimeout(OcciError):
    """`wait_for` gave up: the operation had not ended when the timeout ran out (client side)."""


@dataclass(frozen=True, slots=True)
class OperationStatus:
    """The server's record of a long operation (GET on the `X-OCCI-Operation` URL)."""

    location: str
    state: str
    action: str | None = None
    message: str | None = None
    operation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """What `wait_for` reports to its `progress` callback after each poll."""

    location: str
    state: str | None
    message: str | None = None
    operation: OperationStatus | None = None
    elapsed: float = 0.0


@dataclass(slots=True)
class _Stability:
    """Polling without operation tracking: a state with a transition message is settled only
    when nothing changed for `needed` polls (servers may keep a message after a transition)."""

    needed: int = 3
    last: tuple[str | None, str | None] | None = None
    seen: int = field(default=0)

    def settled(self, state: str | None, message: str | None) -> bool:
        if message is None:
            return True
        if (state, message) == self.last:
            self.seen += 1
        else:
            self.last, self.seen = (state, message), 1
        return self.seen >= self.needed


def follow(
    location: str,
    *,
    state: str | None,
    timeout: float,
    interval: float,
    operation: str | None,
    fetch_entity: Callable[[], Op[Entity]],
    fetch_operation: Callable[[str], Op[OperationStatus | None]],
    state_of: Callable[[Entity], tuple[str | None, str | None]],
    progress: Callable[[Progress], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Op[Entity]:
    """Wait until the entity's operation ends (and its state is `state`, when given).

    1. With an operation URL: poll it until `succeeded` (go on) or `failed` (BackendError with
       the server's message); a 404 means the server forgot it: fall back to 2.
    2. Poll the entity: done when its state equals `state` (or, with no `state`, when no
       transition message is shown) and the transition has settled; state `error` while
       waiting for another state -> BackendError carrying `occi.<kind>.state.message`.
    Raises WaitTimeout when `timeout` seconds pass first.
    """
    start = clock()

    def elapsed() -> float:
        return clock() - start

    def give_up(what: str) -> WaitTimeout:
        return WaitTimeout(f"{location}: {what} after {timeout:g} s")

    if operation is not None:
        while True:
            status = yield from fetch_operation(operation)
            if status is None:
                break
            if progress is not None:
                progress(Progress(location, status.state, status.message, status, elapsed()))
            if status.state == "failed":
                raise BackendError(status.message or f"operation {status.action or operation} failed")
            if status.state != "running":
                break
            if elapsed() >= timeout:
                raise give_up(f"operation {status.action or operation} still running")
            yield Sleep(interval)
    stability = _Stability()
    while True:
        entity = yield from fetch_entity()
        current, message = state_of(entity)
        if progress is not None:
            progress(Progress(location, current, message, None, elapsed()))
        if current == "error" and state != "error":
            raise BackendError(f"{location} is in state error: {message or 'no reason given'}")
        # With an operation record that said it ended, trust the state we see now.
        if (state is None or current == state) and (
                operation is not None or current == "error" or stability.settled(current, message)):
            return entity
        if elapsed() >= timeout:
            wanted = f"state {state}" if state else "a stable state"
            raise give_up(f"still {current or 'without a state'} (waiting for {wanted})")
        # Settling is seen by polls over time; anything else ends with a change.
        yield Sleep(interval, until_change=stability.seen == 0 or state not in (None, current))

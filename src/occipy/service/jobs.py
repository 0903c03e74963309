"""Long work is a resource: operations (jobs) persisted before the answer, run as tracked tasks.

Every driver call that can take time runs here, never from a bare `create_task` elsewhere. The
operation row is written in the same batch as the entity change that starts it; when the work
ends, its result and the operation's final state are written together. `GET /-/operations/<id>`
shows an operation; `Prefer: respond-async` (RFC 7240) answers 202 with its location.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from occipy.errors import Conflict, NotFound, OcciError
from occipy.service.messages import OcciRequest
from occipy.service.reply import Reply
from occipy.service.routes import OPERATIONS_PREFIX
from occipy.store.base import Batch, Operation

if TYPE_CHECKING:
    from occipy.service.core import Service

log = logging.getLogger("occipy.jobs")

Work = Callable[[], Awaitable[Batch]]
OnError = Callable[[OcciError], Awaitable[Batch]]
Refresh = Callable[[Batch], Awaitable[Batch]]


@dataclass(slots=True)
class _Handoff:
    """Between `Jobs.run` and its task: who writes the result of work that ended quickly."""

    ended: asyncio.Future[Batch]
    decided: asyncio.Event
    refresh: Refresh | None
    caller_commits: bool = False


class Jobs:
    """Runs operations, one task each, and knows which entities have work in flight."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ops: dict[str, Operation] = {}
        self._busy: dict[str, int] = {}

    def new(self, location: str, action: str, owner: str, message: str | None = None) -> Operation:
        now = time.time()
        return Operation(op_id=str(uuid.uuid4()), location=location, action=action, state="running",
                         message=message, owner=owner, created=now, updated=now)

    @staticmethod
    def location(op: Operation) -> str:
        return OPERATIONS_PREFIX + op.op_id

    def busy(self, location: str) -> bool:
        return self._busy.get(location, 0) > 0

    @property
    def busy_locations(self) -> Mapping[str, int]:
        """Locations with work in flight (a location is present only while its count is > 0)."""
        return self._busy

    def ensure_idle(self, location: str) -> None:
        """Refuse a change while an operation on the entity is in flight (409)."""
        if self.busy(location):
            raise Conflict(f"an operation on {location} is in progress; retry when it has finished")

    def in_flight(self, action: str) -> list[str]:
        """Locations with an operation of this action running (e.g. earlier deletes)."""
        return [op.location for op in self._ops.values() if op.action == action]

    def task_for(self, location: str) -> list[asyncio.Task[None]]:
        return [task for op_id, task in self._tasks.items() if getattr(task, "occi_location", None) == location]

    def spawn(self, op: Operation, work: Work, on_error: OnError, after: Sequence[str] = ()) -> None:
        """Run `work` for `op` once the operations on the `after` locations have ended."""
        waits = [task for location in after for task in self.task_for(location)]
        self._busy[op.location] = self._busy.get(op.location, 0) + 1
        task = asyncio.get_running_loop().create_task(self._run(op, work, on_error, waits))
        task.occi_location = op.location  # type: ignore[attr-defined]
        self._tasks[op.op_id] = task
        self._ops[op.op_id] = op

    async def run(self, op: Operation, work: Work, on_error: OnError, start: Batch, wait: float,
                  refresh: Refresh | None = None) -> None:
        """Run `work` now; persist `start` (the operation as running) only if it outlasts `wait`.

        Work that ends within `wait` is written once, with its result and the operation as ended,
        by this call (so a failed write fails the request): the answer never reports what is not
        durable, and the operation row exists before the answer either way (style.md, "Long work
        is a resource"). Work that outlasts `wait` is written by its task after `start`;
        `refresh` then adjusts its result to what happened meanwhile (e.g. a delete).
        """
        loop = asyncio.get_running_loop()
        handoff = _Handoff(loop.create_future(), asyncio.Event(), refresh)
        self._busy[op.location] = self._busy.get(op.location, 0) + 1
        task = loop.create_task(self._run(op, work, on_error, [], handoff))
        task.occi_location = op.location  # type: ignore[attr-defined]
        self._tasks[op.op_id] = task
        self._ops[op.op_id] = op
        try:
            batch = await asyncio.wait_for(asyncio.shield(handoff.ended), timeout=wait)
        except asyncio.TimeoutError:
            if not handoff.ended.done():
                try:
                    await self.svc.store.commit(start)
                finally:
                    handoff.decided.set()
                return
            # ended while the timer fired (the loop was paused, e.g. by a GC pass): still quick;
            # result() re-raises a failure of the task itself
            batch = handoff.ended.result()
        handoff.caller_commits = True
        handoff.decided.set()
        try:
            await self.svc.store.commit(batch)
        finally:
            await asyncio.wait([task])
            self._release(op)

    def _release(self, op: Operation) -> None:
        count = self._busy.get(op.location, 1) - 1
        if count <= 0:
            self._busy.pop(op.location, None)
        else:
            self._busy[op.location] = count
        self._tasks.pop(op.op_id, None)
        self._ops.pop(op.op_id, None)

    async def _run(self, op: Operation, work: Work, on_error: OnError,
                   waits: list[asyncio.Task[None]], handoff: _Handoff | None = None) -> None:
        try:
            if waits:
                await asyncio.wait(waits)
            try:
                batch = await work()
                op.state, op.message = "succeeded", None
            except OcciError as error:
                op.state, op.message = "failed", error.message
                batch = await on_error(error)
            except Exception as error:  # a driver bug must not leave the entity "in progress" forever
                log.exception("operation %s (%s on %s) failed unexpectedly", op.op_id, op.action, op.location)
                op.state, op.message = "failed", f"internal error: {type(error).__name__}: {error}"
                batch = await on_error(_Internal(op.message))
            op.updated = time.time()
            batch.put_operations.append(op)
            if handoff is not None:
                handoff.ended.set_result(batch)
                await handoff.decided.wait()  # the start batch, if any, is written first
                if handoff.caller_commits:
                    return
                if handoff.refresh is not None:
                    batch = await handoff.refresh(batch)
            await self.svc.store.commit(batch)
        except Exception as error:
            if handoff is not None and not handoff.ended.done():
                handoff.ended.set_exception(error)
                return
            log.exception("could not record the end of operation %s", op.op_id)
        finally:
            if handoff is None or not handoff.caller_commits:
                self._release(op)

    async def wait(self, ops: Sequence[Operation], timeout: float) -> None:
        """Wait up to `timeout` seconds for these operations to end (the answer shows the result)."""
        tasks = [self._tasks[op.op_id] for op in ops if op.op_id in self._tasks]
        if tasks and timeout > 0:
            await asyncio.wait(tasks, timeout=timeout)

    def running(self, ops: Sequence[Operation]) -> bool:
        return any(op.op_id in self._tasks for op in ops)

    def maybe_async(self, request: OcciRequest, ops: Sequence[Operation], reply: Reply) -> Reply:
        """`Prefer: respond-async` with work still running: 202 + the operation's Location."""
        prefer = request.header("prefer") or ""
        if "respond-async" in prefer and self.running(ops):
            op = next(op for op in ops if op.op_id in self._tasks)
            url = self.svc.absolute(request, self.location(op))
            return Reply(status=202, headers=[("Location", url), ("X-OCCI-Operation", url),
                                              ("Preference-Applied", "respond-async")])
        return reply

    async def drain(self, timeout: float = 10.0) -> None:
        tasks = list(self._tasks.values())
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()


class _Internal(OcciError):
    """An unexpected failure inside a job, reported on the entity as a message."""


async def get_operation(svc: Service, request: OcciRequest) -> Reply:
    """GET /-/operations/<id>: one operation as a record."""
    op_id = request.path[len(OPERATIONS_PREFIX):]
    op = await svc.store.get_operation(op_id)
    if op is None:
        raise NotFound(f"no operation {op_id}")
    return Reply(record={
        "id": op.op_id,
        "location": svc.absolute(request, op.location),
        "action": op.action,
        "state": op.state,
        "message": op.message,
        "created": op.created,
        "updated": op.updated,
    })

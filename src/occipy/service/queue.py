"""One FIFO lane of operations per entity: accepted in order, persisted, run one at a time.

Every write to an existing entity goes through its lane, so a cloud operation's result, a client's
update and a reconcile never overwrite each other. A lane runs its jobs one after the other:

- a job that arrives while another runs is *queued*: its operation record is written (state
  `queued`, with the parameters needed to run it after a restart) before the request is answered;
- at its turn, `Job.prepare` checks it against the entity as it is then (a transition no longer
  allowed ends the operation `failed`, the entity unchanged);
- cloud work that ends within `quick` seconds is written once, with its result and the operation
  as ended; work that outlasts it is written as running first (D-SYNCWAIT);
- the final batch is built from the entity as it is at write time (`Finish`), never from a stale
  copy.

A delete empties the lane's queue (the queued operations end `failed`, "cancelled") and runs after
the job already running. Nothing here knows OCCI: `service/cloud.py` builds the jobs. Imports the
store protocol and errors only.

A change with no cloud effect (a user mixin's membership, D-TAGS-AT-ONCE) may be applied at once,
ahead of the lane (`apply_now`, one process only): the jobs pending in the entity's lane then
re-apply it to every entity they write (`Job.overlays`), and the reads and writes of the entity
by jobs and by `apply_now` are serialised by a per-location write lock, so that no write built
from an older copy of the entity loses it.

Several server processes on one shared store (`store.base.Shared`, PostgreSQL; docs/scaleout.md):
a process runs an entity's lane only while it holds the entity's claim (an advisory lock of its
database session). Work accepted by a process that cannot take the claim is recorded `queued`;
the holder runs every queued operation of the entity in `seq` order (the store is the queue),
looks again after it gave the claim back, and a process that dies loses its claims with its
session, so that another one adopts the entity (`adopt`, from `Cloud`'s recovery pass) and ends
or resumes what was left (D-RESTART). A create writes its entity first (`Batch.new`): of two
processes creating one location, the store's unique constraint lets exactly one win.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from occipy.errors import NotFound, OcciError
from occipy.locks import Holding, KeyedLocks
from occipy.model.entity import Entity
from occipy.model.ids import uuid7_text
from occipy.store.base import (
    FAILED,
    PENDING_STATES,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Batch,
    Operation,
    Shared,
    Store,
)

log = logging.getLogger("occipy.queue")

# What a job's cloud work returns: given the entity as it is when the result is written (None if it
# is gone), the batch to write. The operation's final record is added by the lane.
Finish = Callable[[Entity | None], Batch]
# A change applied at once (`Lanes.apply_now`): the entity with the change. Must not raise.
Change = Callable[[Entity], Entity]


class Observer(Protocol):
    def started(self, op: Operation, spec: object) -> None:
        """Cloud work of the operation started."""

    def ended(self, op: Operation, kind: str | None, spec: object, cloud: bool) -> None:
        """The operation ended (its final record is written): `kind` of its entity, if known."""


class JobSpec(Protocol):
    """What one operation does; built by `service/cloud.py`."""

    action: str  # "create", "update", "delete" or an action term
    params: dict[str, Any]  # persisted with a queued operation, to rebuild the job after a restart

    @property
    def cloud(self) -> bool:
        """Whether `run` calls the cloud (else it is instant and needs no record when idle);
        known once `prepare` has seen the entity."""

    def prepare(self, entity: Entity | None) -> Entity | None:
        """Check the job against the entity at its turn (raise OcciError to refuse it); return the
        entity to show while the work runs, or None to show nothing new."""

    async def run(self, entity: Entity | None) -> Finish:
        """Do the work (the cloud call); return how to write its result."""

    def fail(self, entity: Entity | None, error: OcciError) -> Batch:
        """The batch that records a failure of `run` (e.g. the entity in `error` with a message)."""

    async def undo(self) -> None:
        """Called when the result could not be written: remove what `run` made in the cloud."""


# Seconds after cloud work on an entity during which a change reported by a watching driver is
# checked by observing the object again (a poll may have read it before the work ended).
RECENT_WORK: Final = 30.0
WORKED_KEPT: Final = 100_000  # entities remembered as recently worked on, at most


@dataclass(eq=False)
class Job:
    """One operation in a lane: its record, what it does, and who waits for it."""

    op: Operation
    spec: JobSpec
    recorded: bool = False  # a record of it is in the store (queued or running)
    done: asyncio.Future[Operation] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    # Set once something durable says the job exists (its first write, or its end).
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    # True when its work (the cloud call) has ended: what is left is writing the result.
    worked: bool = False
    # Changes applied at once while it was pending (`Lanes.apply_now`), re-applied, in order, to
    # the entity of its location in every batch it writes.
    overlays: list[Change] = field(default_factory=list)
    # The bounded wait of the request that brought it (`wait`), woken by `wake_waiter` at once: a
    # callback on `done` would wake it a turn of the loop later, through one more callback.
    waiting: asyncio.Future[None] | None = None

    def wake_waiter(self) -> None:
        """`done` is set: wake the bounded wait of `wait`, if one is on."""
        if self.waiting is not None:
            _wake(self.waiting)

    def overlaid(self, batch: Batch) -> Batch:
        """The batch with the job's overlays applied to its entity (unchanged when it has none)."""
        if not self.overlays:
            return batch
        location = self.op.location

        def apply(entity: Entity) -> Entity:
            if entity.location != location:
                return entity
            for change in self.overlays:
                entity = change(entity)
            return entity

        return replace(batch, put=[apply(e) for e in batch.put], new=[apply(e) for e in batch.new])

    async def wait(self, timeout: float) -> Operation:
        """The operation after up to `timeout` seconds of work (it may still be pending), once settled.

        The timeout bounds the wait for the cloud, not for the store: work that ended in time is
        answered with its result even when writing it takes longer (a loaded machine). Raises the
        error of a write that failed (the request must not report what is not durable).
        """
        done = self.done
        if timeout > 0 and not done.done():
            if self.waiting is None:
                loop = asyncio.get_running_loop()
                waiting = self.waiting = loop.create_future()
                timer = loop.call_later(timeout, _wake, waiting)
                try:
                    await waiting
                finally:
                    timer.cancel()
                    self.waiting = None
            else:  # a second waiter (none of the handlers has one)
                await _done_or_timeout(done, timeout)
        if self.worked and not done.done():
            await asyncio.wait([done])
        if done.done():
            return done.result()
        await self.settled.wait()
        if done.done():
            return done.result()
        return self.op


def _wake(waiting: asyncio.Future[None]) -> None:
    if not waiting.done():
        waiting.set_result(None)


async def _done_or_timeout(future: asyncio.Future[Any], timeout: float) -> None:
    """Wait until `future` is done or `timeout` seconds passed, whichever is first; never cancels
    it (`asyncio.wait([future], timeout=...)` with one future, without its sets and counters)."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_later(timeout, wake)
    future.add_done_callback(wake)
    try:
        await waiter
    finally:
        timer.cancel()
        future.remove_done_callback(wake)


@dataclass
class _Lane:
    jobs: deque[Job] = field(default_factory=deque)
    running: Job | None = None
    task: asyncio.Task[None] | None = None
    deleting: bool = False
    projected: str | None = None  # the entity's state once the accepted work is done
    claimed: bool = False  # shared store: this process holds the entity's claim (runs its lane)


class Lanes:
    """The lanes of every entity with work accepted and not ended."""

    def __init__(self, store: Store, quick: float, observer: Observer | None = None) -> None:
        self.store = store
        self.quick = quick
        # Told when cloud work starts and when an operation ends (metrics).
        self.observer = observer
        self._lanes: dict[str, _Lane] = {}
        # When cloud work on an entity last ended (monotonic), kept RECENT_WORK seconds: a change a
        # watching driver reports soon after may have been seen before that work (`worked_recently`).
        # Oldest first, and emptied from the front: an OrderedDict, whose first item is found at
        # once (a plain dict's iteration walks over the slots of every item deleted before it).
        self._worked: OrderedDict[str, float] = OrderedDict()
        self._last_seq = 0
        self._closed = False
        # ---- several processes on one store (docs/scaleout.md) ----
        self.shared: Shared | None = store if isinstance(store, Shared) and store.shared else None
        # Set by `Cloud`: the job of an operation another process recorded (None: it was ended).
        self.rebuild: Callable[[Operation], Awaitable[JobSpec | None]] | None = None
        # Set by `Cloud`: called with the entity before each job's turn (a driver re-learns it).
        self.before_turn: Callable[[Entity | None], Awaitable[None]] | None = None
        self._claim_locks: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()
        # Per location: serialises jobs' reads and writes of the entity with `apply_now`.
        self._write_locks = KeyedLocks()

    # ---- what handlers ask ------------------------------------------------------------------------

    def busy(self, location: str) -> bool:
        lane = self._lanes.get(location)
        return lane is not None and (lane.running is not None or bool(lane.jobs))

    def worked_recently(self, location: str) -> bool:
        """Whether cloud work on this entity ended less than RECENT_WORK seconds ago."""
        ended = self._worked.get(location)
        return ended is not None and time.monotonic() - ended < RECENT_WORK

    def any_lane(self) -> bool:
        """Whether some entity has a lane (else no entity is busy: a quick answer for a long listing)."""
        return bool(self._lanes)

    def deleting(self, location: str) -> bool:
        lane = self._lanes.get(location)
        return lane is not None and lane.deleting

    def projected(self, location: str) -> str | None:
        """The state the entity will be in when its accepted work is done (None: no such work)."""
        lane = self._lanes.get(location)
        return lane.projected if lane is not None and (lane.running or lane.jobs) else None

    def project(self, location: str, state: str | None) -> None:
        """Record the state an accepted operation leads to."""
        if state is not None:
            self._lane(location).projected = state

    def pending(self, location: str) -> list[Job]:
        """The running job and the queued ones, in order."""
        lane = self._lanes.get(location)
        if lane is None:
            return []
        return ([lane.running] if lane.running else []) + list(lane.jobs)

    def busy_locations(self) -> Iterator[str]:
        return (location for location in self._lanes if self.busy(location))

    def new_operation(self, location: str, action: str, tenant: str, owner: str,
                      params: dict[str, Any] | None = None, message: str | None = None) -> Operation:
        now = time.time()
        # Acceptance order across processes: the clock, made strictly increasing in this one.
        seq = self._last_seq = max(time.time_ns(), self._last_seq + 1)
        return Operation(op_id=uuid7_text(), location=location, action=action, state=QUEUED,
                         message=message, tenant=tenant, owner=owner, created=now, updated=now,
                         seq=seq, params=params or {})

    # ---- changes applied at once (D-TAGS-AT-ONCE) --------------------------------------------------

    @property
    def immediate(self) -> bool:
        """Whether `apply_now` may be used: one process runs every lane (not a shared store, where
        another process may be running the entity's jobs)."""
        return self.shared is None

    async def apply_now(self, changes: Mapping[str, Change]) -> list[Entity]:
        """Apply changes with no cloud effect to stored entities at once, in one batch, ahead of
        the work pending in their lanes; the pending jobs re-apply them to what they write.

        Returns the changed entities (an entity gone meanwhile is left out). Only when `immediate`.
        """
        assert self.immediate, "apply_now needs one process running every lane"
        locations = sorted(changes)  # one order for every caller: no deadlock between two
        async with contextlib.AsyncExitStack() as stack:
            for location in locations:
                await stack.enter_async_context(self._writing(location))
            batch = Batch()
            for location in locations:
                current = await self.store.get(location)
                if current is None:
                    continue
                batch.put.append(changes[location](current))
            if batch:
                await self.store.commit(batch)
            # Registered once written: a pending job writes after this (it needs the lock).
            for location in locations:
                for job in self.pending(location):
                    job.overlays.append(changes[location])
            return batch.put

    def _writing(self, location: str) -> Holding:
        """The write lock of a location (dropped when nobody holds or waits for it)."""
        return self._write_locks.hold(location)

    # ---- accepting work ---------------------------------------------------------------------------

    async def submit(self, op: Operation, spec: JobSpec, *, extra: Batch | None = None) -> Job:
        """Accept a job: run it now if the lane is idle, else record it as queued first.

        `extra` is written with the queued record (or with the job's first write when idle).
        """
        if self._closed:
            raise NotFound("the server is shutting down")
        lane = self._lane(op.location)
        if lane.deleting:
            raise NotFound(f"{op.location} is being deleted")
        job = Job(op=op, spec=spec)
        if self.shared is not None:
            return await self._submit_shared(job, extra)
        if lane.running is not None or lane.jobs:
            job.recorded = True
            await self.store.commit(Batch(put_operations=[op]).merge(extra or Batch()))
            job.settled.set()
        elif extra:
            await self.store.commit(extra)
        lane = self._lane(op.location)  # the lane may have ended (and been forgotten) meanwhile
        lane.jobs.append(job)
        self._kick(op.location, lane)
        return job

    def claim_delete(self, location: str) -> bool:
        """Mark an entity as being deleted, at once (no await): False if it already is.

        The first of several concurrent deletes wins; the others see the claim (404).
        """
        lane = self._lane(location)
        if lane.deleting:
            return False
        lane.deleting = True
        return True

    def unclaim_delete(self, location: str) -> None:
        lane = self._lanes.get(location)
        if lane is not None:
            lane.deleting = False
            self._forget_if_idle(location, lane)

    async def submit_delete(self, op: Operation, spec: JobSpec, *, extra: Batch | None = None,
                            record: bool = True, claimed: bool = False) -> Job:
        """Accept a delete: cancel what is queued, run after the running job, refuse later work.

        The delete's record (and the cancelled ones) are written before this returns, so that a
        crash cannot lose an accepted delete. `record` False: nothing to resume (no cloud object).
        `claimed`: `claim_delete` was called for it already.
        """
        lane = self._lane(op.location)
        if not claimed and not self.claim_delete(op.location):
            raise NotFound(f"{op.location} is being deleted")
        if self.shared is not None:
            return await self._submit_delete_shared(op, spec, extra, record)
        now = time.time()
        cancelled = list(lane.jobs)
        lane.jobs.clear()
        batch = Batch(put_operations=[op] if record else [])
        for job in cancelled:
            ended = job.op.ended(FAILED, "cancelled: the entity is being deleted", now)
            if job.recorded:
                batch.put_operations.append(ended)
            _resolve(job, ended)
        job = Job(op=op, spec=spec, recorded=record)
        try:
            if batch or extra:
                await self.store.commit(batch.merge(extra or Batch()))
        except BaseException:
            self.unclaim_delete(op.location)
            raise
        job.settled.set()
        lane = self._lane(op.location)
        lane.deleting = True
        lane.jobs.append(job)
        self._kick(op.location, lane)
        return job

    async def _submit_delete_shared(self, op: Operation, spec: JobSpec, extra: Batch | None, record: bool) -> Job:
        """`submit_delete` on a shared store: cancel what is queued (here and in the store) when this
        process holds the claim; else record the delete for the holder, which runs it in turn."""
        location = op.location
        now = time.time()
        async with self._claim_lock(location):
            lane = self._lane(location)
            try:
                held = await self._hold(location, lane)
                batch = Batch(put_operations=[op] if record or not held or lane.running else [])
                cancelled: list[Job] = []
                if held:
                    cancelled = list(lane.jobs)
                    lane.jobs.clear()
                    local = {job.op.op_id for job in cancelled}
                    for other in await self.store.pending_operations(location):
                        if other.state == QUEUED and other.op_id not in local:
                            batch.put_operations.append(other.ended(FAILED, "cancelled: the entity is being deleted", now))
                for job in cancelled:
                    ended = job.op.ended(FAILED, "cancelled: the entity is being deleted", now)
                    if job.recorded:
                        batch.put_operations.append(ended)
                    _resolve(job, ended)
                if batch or extra:
                    await self.store.commit(batch.merge(extra or Batch()))
            except BaseException:
                self.unclaim_delete(location)
                raise
            job = Job(op=op, spec=spec, recorded=bool(batch.put_operations) and batch.put_operations[0] is op)
            job.settled.set()
            if not held:
                self.unclaim_delete(location)
                self._follow_remote(job)
                return job
            lane.deleting = True
            lane.jobs.append(job)
            self._kick(location, lane)
        return job

    async def resume(self, op: Operation, spec: JobSpec) -> Job:
        """Re-queue an operation found pending at start-up (its record exists already)."""
        job = Job(op=op, spec=spec, recorded=True)
        job.settled.set()
        if self.shared is not None:
            async with self._claim_lock(op.location):
                lane = self._lane(op.location)
                if not await self._hold(op.location, lane):
                    self._forget_if_idle(op.location, lane)
                    self._follow_remote(job)
                    return job
                if op.action == "delete":
                    lane.deleting = True
                lane.jobs.append(job)
                self._kick(op.location, lane)
            return job
        lane = self._lane(op.location)
        if op.action == "delete":
            lane.deleting = True
        lane.jobs.append(job)
        self._kick(op.location, lane)
        return job

    # ---- several processes on one store -----------------------------------------------------------

    def _claim_lock(self, location: str) -> asyncio.Lock:
        lock = self._claim_locks.get(location)
        if lock is None:
            lock = self._claim_locks[location] = asyncio.Lock()
        return lock

    async def _hold(self, location: str, lane: _Lane) -> bool:
        """Take the entity's claim for this process (under its claim lock); False: another holds it."""
        if lane.claimed:
            return True
        assert self.shared is not None
        if await self.shared.claim(location):
            lane.claimed = True
            return True
        return False

    async def _submit_shared(self, job: Job, extra: Batch | None) -> Job:
        """`submit` on a shared store: run here while holding the claim, else record it for the holder."""
        op = job.op
        location = op.location
        spec = job.spec
        first = Batch()
        if op.action == "create":
            # Written first, insert-only: of two processes creating one location, one wins (409).
            showing = spec.prepare(None)
            if showing is not None:
                first.new.append(showing)
        async with self._claim_lock(location):
            lane = self._lane(location)
            if lane.deleting:
                raise NotFound(f"{location} is being deleted")
            held = await self._hold(location, lane)
            queued = lane.running is not None or bool(lane.jobs) or not held
            if held and not queued:
                # Idle here: anything another process queued for the entity runs first.
                queued = bool(await self.store.pending_operations(location))
            if queued or first:
                job.recorded = True
                if not queued:
                    # It runs now, here: recorded as running, so that if this process dies while
                    # the cloud works, the process that adopts the entity ends it (D-RESTART)
                    # instead of running the create again (a second cloud object).
                    op = job.op = op.ended(RUNNING, op.message, time.time())
                first.put_operations.append(op)
            try:
                if first or extra:
                    await self.store.commit(first.merge(extra or Batch()))
            except BaseException:
                if not lane.jobs and lane.running is None and lane.task is None:
                    await self._let_go(location, lane)
                raise
            if job.recorded:
                job.settled.set()
            if not held:
                self._forget_if_idle(location, lane)
                self._follow_remote(job)
                return job
            lane.jobs.append(job)
            self._kick(location, lane)
        return job

    async def adopt(self, location: str) -> bool:
        """Run the entity's recorded work here if no process holds its claim (recovery, D-RESTART)."""
        if self.shared is None or self._closed:
            return False
        async with self._claim_lock(location):
            lane = self._lane(location)
            if not await self._hold(location, lane):
                self._forget_if_idle(location, lane)
                return False
            self._kick(location, lane)
        return True

    async def _let_go(self, location: str, lane: _Lane) -> None:
        """Give the claim back (under the claim lock), unless work arrived meanwhile."""
        assert self.shared is not None
        if lane.claimed and not lane.jobs and lane.running is None and lane.task is None:
            lane.claimed = False
            await self.shared.release(location)
        self._forget_if_idle(location, lane)

    async def _release_later(self, location: str, lane: _Lane) -> None:
        async with self._claim_lock(location):
            await self._let_go(location, lane)
            if lane.claimed:
                return
        # Look again once the claim is free: work recorded by a process that found it taken.
        if await self.store.pending_operations(location):
            await self.adopt(location)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _follow_remote(self, job: Job) -> None:
        """Resolve a job another process runs when its record ends (polled; D-SYNCWAIT bounds waits)."""

        async def follow() -> None:
            delay = 0.005
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.5)
                try:
                    current = await self.store.get_operation(job.op.op_id)
                except OcciError:
                    continue
                if current is None or current.state not in PENDING_STATES:
                    _resolve(job, current or job.op.ended(FAILED, "the operation record is gone", time.time()))
                    return
                job.op = current

        self._spawn(follow())

    async def _next_recorded(self, location: str, lane: _Lane) -> Job | None:
        """The next job of a claimed lane: by `seq` among what the store holds queued or running for the
        entity (this process's recorded jobs and other processes' records), else a local job."""
        if lane.jobs and not lane.jobs[0].recorded:
            return lane.jobs.popleft()
        for op in await self.store.pending_operations(location):
            local = next((job for job in lane.jobs if job.op.op_id == op.op_id), None)
            if local is not None:
                lane.jobs.remove(local)
                return local
            if self.rebuild is None:
                continue
            spec = await self.rebuild(op)  # a running record nobody runs any more is ended there
            if spec is None:
                continue
            job = Job(op=op, spec=spec, recorded=True)
            job.settled.set()
            if op.action == "delete":
                lane.deleting = True
            return job
        return lane.jobs.popleft() if lane.jobs else None

    def waits_for(self, location: str) -> list[asyncio.Future[Operation]]:
        """The jobs accepted so far on `location` (a link's creation waits for its ends' work)."""
        return [job.done for job in self.pending(location)]

    async def drain(self, timeout: float) -> None:
        """Stop accepting work; let running jobs end (up to `timeout`), then cancel the rest."""
        self._closed = True
        for task in list(self._background):
            task.cancel()
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)

    # ---- running ----------------------------------------------------------------------------------

    def _lane(self, location: str) -> _Lane:
        lane = self._lanes.get(location)
        if lane is None:
            lane = self._lanes[location] = _Lane()
        return lane

    def _kick(self, location: str, lane: _Lane) -> None:
        if lane.task is None:
            lane.task = asyncio.get_running_loop().create_task(self._drive(location, lane))

    async def _drive(self, location: str, lane: _Lane) -> None:
        try:
            while lane.jobs or (self.shared is not None and lane.claimed):
                if self.shared is not None:
                    next_job = await self._next_recorded(location, lane)
                    if next_job is None:
                        break
                    job = next_job
                else:
                    job = lane.jobs.popleft()
                lane.running = job
                try:
                    await self._execute(job)
                except asyncio.CancelledError:
                    _resolve(job, job.op.ended(FAILED, "interrupted by a shutdown of the server", time.time()))
                    raise
                except BaseException as error:  # noqa: BLE001  (a write failed: the job's waiter gets it)
                    if not job.done.done():
                        job.done.set_exception(error)
                        job.done.exception()  # mark retrieved: the waiter may be gone
                        job.wake_waiter()
                    job.settled.set()
                finally:
                    lane.running = None
                    if job.op.action == "delete":
                        # Done (the entity is gone) or refused by the cloud (the entity stays, in
                        # error, and may be deleted again).
                        lane.deleting = False
        finally:
            lane.task = None
            lane.projected = None
            if lane.claimed and not self._closed:
                self._spawn(self._release_later(location, lane))
            self._forget_if_idle(location, lane)

    def _forget_if_idle(self, location: str, lane: _Lane) -> None:
        if (not lane.jobs and lane.running is None and lane.task is None and not lane.deleting
                and not lane.claimed and self._lanes.get(location) is lane):
            del self._lanes[location]
            lock = self._claim_locks.get(location)
            if lock is not None and not lock.locked():
                del self._claim_locks[location]

    async def _execute(self, job: Job) -> None:
        spec = job.spec
        op = job.op
        if _unwritten_create(job):
            current = None
        else:
            async with self._writing(op.location):
                current = await self.store.get(op.location)
        if self.before_turn is not None:
            await self.before_turn(current)
        try:
            showing = spec.prepare(current)
        except OcciError as error:
            if not job.recorded:
                raise  # the request that brought it is waiting: it gets the error itself
            ended = op.ended(FAILED, error.message, time.time())
            await self.store.commit(Batch(put_operations=[ended]))
            _resolve(job, ended)
            return
        running = op.ended(RUNNING, op.message, time.time())
        if not spec.cloud:
            instant = await spec.run(current)
            job.worked = True
            await self._finish(job, running, instant, None)
            return
        start = Batch(put=[showing] if showing is not None else [], put_operations=[running])
        started = job.recorded and op.action != "delete"
        if started and op.state == QUEUED:
            # D-RESTART runs a record that says queued again after a crash: once the cloud is
            # asked, the work is running (a half-made object is not trusted, only a delete is
            # resumed), and the record must say so first. (Recorded running already: a create
            # on a shared store, `_submit_shared`.)
            await self._write_start(job, start)
        if self.observer is not None:
            self.observer.started(running, spec)
        # The work runs in this task; if it outlasts `quick`, a timer writes the running record
        # meanwhile (in its own task), and the result is written after it.
        loop = asyncio.get_running_loop()
        starting: list[asyncio.Task[None]] = []

        def outlasted() -> None:
            starting.append(loop.create_task(self._write_start(job, start)))

        timer = None if started else loop.call_later(self.quick, outlasted)
        finish: Finish | None = None
        failure: OcciError | None = None
        try:
            finish = await spec.run(current)
        except OcciError as error:
            failure = error
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a driver bug must not leave the entity "in progress" forever
            log.exception("operation %s (%s on %s) failed unexpectedly", op.op_id, op.action, op.location)
            failure = _Internal(f"internal error: {type(error).__name__}: {error}")
        finally:
            if timer is not None:
                timer.cancel()
            job.worked = True
        if starting:
            await starting[0]  # the running record is written before the result
        await self._finish(job, running, finish, failure)

    async def _write_start(self, job: Job, start: Batch) -> None:
        async with self._writing(job.op.location):
            await self.store.commit(job.overlaid(start))
        job.recorded = True
        job.settled.set()

    async def _finish(self, job: Job, running: Operation, finish: Finish | None, error: OcciError | None) -> None:
        async with self._writing(running.location):
            latest = None if _unwritten_create(job) else await self.store.get(running.location)
            now = time.time()
            if error is None and finish is not None:
                batch = finish(latest)
                ended = running.ended(SUCCEEDED, None, now)
            else:
                assert error is not None
                batch = job.spec.fail(latest, error)
                ended = running.ended(FAILED, error.message, now)
            batch = job.overlaid(batch)
            if job.recorded or job.spec.cloud:
                batch.put_operations.append(ended)
                job.recorded = True
            try:
                await self.store.commit(batch)
            except OcciError:
                if error is None:
                    await job.spec.undo()
                raise
        if self.observer is not None:
            base = latest or next(iter(batch.put), None)
            self.observer.ended(ended, base.kind if base is not None else None, job.spec, job.spec.cloud)
        if job.spec.cloud:
            self._note_work(running.location)
        _resolve(job, ended)

    def _note_work(self, location: str) -> None:
        now = time.monotonic()
        worked = self._worked
        worked[location] = now
        worked.move_to_end(location)  # in the order work ended: the oldest first
        while worked:  # forget what is no longer recent, and past WORKED_KEPT the oldest anyway
            ended = next(iter(worked.values()))
            if now - ended < RECENT_WORK and len(worked) <= WORKED_KEPT:
                break
            worked.popitem(last=False)


def _resolve(job: Job, op: Operation) -> None:
    job.op = op
    if not job.done.done():
        job.done.set_result(op)
        job.wake_waiter()
    job.settled.set()


class _Internal(OcciError):
    """An unexpected failure inside a job, reported on the entity as a message."""



def _unwritten_create(job: Job) -> bool:
    """A create nothing was written for yet: its entity is in no store, so nothing needs reading
    (its insert-only write refuses a location another process took meanwhile, docs/scaleout.md)."""
    return job.op.action == "create" and not job.recorded

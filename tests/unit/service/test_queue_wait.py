"""The lanes' bounded wait for a job (service/queue.py; their write lock is `occipy.locks`,
tests/unit/test_locks.py).

`_done_or_timeout` replaced `asyncio.wait([future], timeout=...)`: it returns at the first of the
two and never cancels the future. `Job.wait` is woken by the job's end directly (`Job.waiting`),
without a callback on `done` in between; a second waiter of one job uses `_done_or_timeout`.
"""

from __future__ import annotations

import asyncio

import pytest

from occipy.service.queue import Job, _done_or_timeout, _resolve
from occipy.store.base import QUEUED, SUCCEEDED, Operation


async def test_done_or_timeout_returns_at_the_first_and_never_cancels_the_future() -> None:
    loop = asyncio.get_running_loop()
    slow: asyncio.Future[int] = loop.create_future()
    began = loop.time()
    await _done_or_timeout(slow, 0.05)
    assert loop.time() - began >= 0.04
    assert not slow.done(), "the timeout cancelled the future"
    quick: asyncio.Future[int] = loop.create_future()
    loop.call_later(0.01, quick.set_result, 7)
    began = loop.time()
    await _done_or_timeout(quick, 10)
    assert quick.result() == 7 and loop.time() - began < 5


def _job() -> Job:
    return Job(op=Operation(op_id="o", location="/compute/x", action="start", state=QUEUED), spec=None)  # type: ignore[arg-type]


async def test_a_job_wait_returns_at_its_end_not_at_the_timeout() -> None:
    """`Job.wait` is woken by the job's end itself (`_resolve`), and by the failure of its write."""
    loop = asyncio.get_running_loop()
    job = _job()
    ended = job.op.ended(SUCCEEDED, None, 1.0)
    loop.call_later(0.01, _resolve, job, ended)
    began = loop.time()
    assert await job.wait(10) == ended
    assert loop.time() - began < 5 and job.waiting is None
    failing = _job()

    def fail() -> None:
        failing.done.set_exception(RuntimeError("write failed"))
        failing.wake_waiter()

    loop.call_later(0.01, fail)
    began = loop.time()
    with pytest.raises(RuntimeError, match="write failed"):
        await failing.wait(10)
    assert loop.time() - began < 5


async def test_a_job_wait_gives_the_pending_operation_at_the_timeout_and_leaves_the_job_alone() -> None:
    loop = asyncio.get_running_loop()
    job = _job()
    job.settled.set()  # its queued record is written
    began = loop.time()
    assert (await job.wait(0.05)).state == QUEUED
    assert loop.time() - began >= 0.04 and not job.done.done() and job.waiting is None
    # A second waiter at once (no handler has one) waits on its own, and both see the end.
    first = asyncio.ensure_future(job.wait(10))
    second = asyncio.ensure_future(job.wait(10))
    await asyncio.sleep(0)
    ended = job.op.ended(SUCCEEDED, None, 2.0)
    _resolve(job, ended)
    assert await asyncio.wait_for(asyncio.gather(first, second), 5) == [ended, ended]


async def test_a_cancelled_wait_does_not_cancel_the_job() -> None:
    job = _job()
    waiter = asyncio.ensure_future(job.wait(10))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not job.done.done() and job.waiting is None
    _resolve(job, job.op.ended(SUCCEEDED, None, 1.0))
    assert job.done.result().state == SUCCEEDED

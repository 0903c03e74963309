"""The lanes' per-location write lock and their bounded wait for a job (service/queue.py).

`_KeyedLocks` replaced an `asyncio.Lock` per location behind an async context manager (less CPU per
write); these tests pin what the lanes rely on: one holder per key, FIFO hand-over, no entry left
behind, and a cancelled waiter that neither keeps nor loses the lock. `_done_or_timeout` replaced
`asyncio.wait([future], timeout=...)`: it returns at the first of the two and never cancels the future.
"""

from __future__ import annotations

import asyncio

import pytest

from occipy.service.queue import _done_or_timeout, _KeyedLocks


async def test_one_holder_per_key_and_waiters_served_in_arrival_order() -> None:
    locks = _KeyedLocks()
    order: list[str] = []
    inside = 0

    async def user(name: str) -> None:
        nonlocal inside
        async with locks.hold("/compute/a"):
            inside += 1
            assert inside == 1, "two holders of one key"
            order.append(name)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(user(f"u{i}") for i in range(6)))
    assert order == [f"u{i}" for i in range(6)]
    assert not locks.held("/compute/a"), "an idle key keeps an entry"


async def test_other_keys_are_not_held_up() -> None:
    locks = _KeyedLocks()
    await locks.acquire("/compute/a")
    async with asyncio.timeout(1):
        async with locks.hold("/compute/b"):
            assert locks.held("/compute/b")
    assert locks.held("/compute/a") and not locks.held("/compute/b")
    locks.release("/compute/a")
    assert not locks.held("/compute/a")


async def test_a_waiter_cancelled_while_waiting_leaves_the_queue() -> None:
    locks = _KeyedLocks()
    await locks.acquire("k")
    cancelled = asyncio.create_task(locks.acquire("k"))
    after: list[str] = []

    async def later() -> None:
        async with locks.hold("k"):
            after.append("later")

    second = asyncio.create_task(later())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    locks.release("k")
    await asyncio.wait_for(second, 1)
    assert after == ["later"]
    assert not locks.held("k")


async def test_a_waiter_cancelled_after_the_hand_over_passes_the_lock_on() -> None:
    locks = _KeyedLocks()
    await locks.acquire("k")
    first = asyncio.create_task(locks.acquire("k"))
    second = asyncio.create_task(locks.acquire("k"))
    await asyncio.sleep(0)
    locks.release("k")  # hands the lock to `first` ...
    first.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)  # `first` passed the lock on
    locks.release("k")
    assert not locks.held("k")


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


async def test_a_release_between_a_waiters_cancel_and_its_wake_up_skips_it() -> None:
    locks = _KeyedLocks()
    await locks.acquire("k")
    cancelled = asyncio.create_task(locks.acquire("k"))
    second = asyncio.create_task(locks.acquire("k"))
    await asyncio.sleep(0)
    cancelled.cancel()  # its waiter is cancelled now, its task runs later
    locks.release("k")  # skips the cancelled waiter, hands the lock to `second`
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.wait_for(second, 1)
    locks.release("k")
    assert not locks.held("k")


async def test_a_release_with_only_a_cancelled_waiter_frees_the_key() -> None:
    locks = _KeyedLocks()
    await locks.acquire("k")
    cancelled = asyncio.create_task(locks.acquire("k"))
    await asyncio.sleep(0)
    cancelled.cancel()
    locks.release("k")
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert not locks.held("k")
    async with asyncio.timeout(1):
        async with locks.hold("k"):
            pass

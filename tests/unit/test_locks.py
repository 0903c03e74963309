"""`occipy.locks.KeyedLocks`: the lanes' per-location write lock (service/queue.py) and the
simulated cloud's per-object lock (backends/simulated.py).

What both rely on: one holder per key, FIFO hand-over, other keys not held up, no entry left
behind, and a cancelled waiter that neither keeps nor loses the lock, whatever the order of its
cancel, its wake-up and the holder's release.
"""

from __future__ import annotations

import asyncio

import pytest

from occipy.locks import KeyedLocks


async def _held_with_waiters(locks: KeyedLocks, waiters: int) -> list[asyncio.Task[None]]:
    """Key "k" held, and `waiters` tasks queued for it in order (each has started waiting)."""
    await locks.acquire("k")
    queued = [asyncio.create_task(locks.acquire("k")) for _ in range(waiters)]
    await asyncio.sleep(0)
    return queued


async def test_one_holder_per_key_and_waiters_served_in_arrival_order() -> None:
    locks = KeyedLocks()
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


async def test_an_object_lock_orders_its_users_and_goes_when_free() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def use(key: str, name: str, pause: float) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(pause)
            order.append(f"{name}-")

    await asyncio.gather(use("a", "first", 0.02), use("a", "second", 0), use("b", "other", 0.01))
    assert order.index("first-") < order.index("second+")  # one key: one at a time, in order
    assert order.index("other+") < order.index("first-")  # another key does not wait
    assert locks._held == {}


async def test_other_keys_are_not_held_up() -> None:
    locks = KeyedLocks()
    await locks.acquire("/compute/a")
    async with asyncio.timeout(1):
        async with locks.hold("/compute/b"):
            assert locks.held("/compute/b")
    assert locks.held("/compute/a") and not locks.held("/compute/b")
    locks.release("/compute/a")
    assert not locks.held("/compute/a")


async def test_a_waiter_cancelled_while_waiting_leaves_the_queue() -> None:
    locks = KeyedLocks()
    [cancelled] = await _held_with_waiters(locks, 1)
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
    locks = KeyedLocks()
    first, second = await _held_with_waiters(locks, 2)
    locks.release("k")  # hands the lock to `first` ...
    first.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)  # `first` passed the lock on
    locks.release("k")
    assert not locks.held("k")


async def test_a_release_between_a_waiters_cancel_and_its_wake_up_skips_it() -> None:
    locks = KeyedLocks()
    cancelled, second = await _held_with_waiters(locks, 2)
    cancelled.cancel()  # its waiter is cancelled now, its task runs later
    locks.release("k")  # skips the cancelled waiter, hands the lock to `second`
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.wait_for(second, 1)
    locks.release("k")
    assert not locks.held("k")


async def test_a_release_with_only_a_cancelled_waiter_frees_the_key() -> None:
    locks = KeyedLocks()
    [cancelled] = await _held_with_waiters(locks, 1)
    cancelled.cancel()
    locks.release("k")
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert not locks.held("k")
    async with asyncio.timeout(1):
        async with locks.hold("k"):
            pass

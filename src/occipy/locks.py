"""A FIFO lock per key, kept only while a task holds or waits for it (`KeyedLocks`).

Shared by the lanes' per-location write lock (service/queue.py) and the drivers' per-object locks
(backends/simulated.py, docker.py, openstack.py): a lock object per key for every entity or cloud object
was tens of thousands of objects more for Python's collector (docs/decisions.md D-UNTRACKED), and
an `asyncio.Lock` behind an `asynccontextmanager` cost each write more CPU than the rest of its
locking. Imports only the standard library, so every layer may use it.
"""

from __future__ import annotations

import asyncio
from collections import deque


class KeyedLocks:
    """A FIFO lock per key (a location), kept only while a task holds or waits for it.

    `async with locks.hold(key):` costs a dict entry and no lock object when nobody else holds the
    key (most writes); the holder hands the lock to the first waiter on release.
    """

    def __init__(self) -> None:
        # key -> the futures of the tasks waiting for it; the key is held while it is present
        self._held: dict[str, deque[asyncio.Future[None]]] = {}

    def hold(self, key: str) -> Holding:
        return Holding(self, key)

    def held(self, key: str) -> bool:
        return key in self._held

    async def acquire(self, key: str) -> None:
        waiters = self._held.get(key)
        if waiters is None:
            self._held[key] = deque()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(key)  # handed the lock as it was cancelled: pass it on
            elif waiter in waiters:  # (a release since the cancel skipped it and took it out)
                waiters.remove(waiter)
            raise

    def release(self, key: str) -> None:
        waiters = self._held[key]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the lock is the waiter's now
                return
        del self._held[key]


class Holding:
    """`async with` of one key of a `KeyedLocks`."""

    __slots__ = ("_key", "_locks")

    def __init__(self, locks: KeyedLocks, key: str) -> None:
        self._locks = locks
        self._key = key

    async def __aenter__(self) -> None:
        await self._locks.acquire(self._key)

    async def __aexit__(self, *_: object) -> None:
        self._locks.release(self._key)

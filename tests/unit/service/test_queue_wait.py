"""The lanes' bounded wait for a job (service/queue.py; their write lock is `occipy.locks`,
tests/unit/test_locks.py).

`_done_or_timeout` replaced `asyncio.wait([future], timeout=...)`: it returns at the first of the
two and never cancels the future.
"""

from __future__ import annotations

import asyncio

from occipy.service.queue import _done_or_timeout


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

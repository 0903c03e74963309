"""`wait_for` woken by the server's event stream (issue 12): what runs the stream beside the polls.

A `Watcher` (a thread, for `Client`) or `AsyncWatcher` (a task, for `AsyncClient`) follows
`GET /-/events` on the entity being waited for and says when something about it changed; the
wait's pauses end then (`Sleep.until_change`), or after `EVENT_SAFETY` seconds at the latest.
Without a stream (a server that has none, or refuses it) the pauses are the plain `interval`.
Also the helpers both clients use to open a stream. Imports httpx, anyio and the client's own
modules.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import anyio
import httpx

from occipy import errors
from occipy.client._events import NOT_OFFERED, ServerEvent, is_stream, not_offered
from occipy.client._wait import Sleep

# With the event stream open, `wait_for` re-reads the operation or entity when an event about it
# arrives, and at the latest after this many seconds (a safety net), instead of every `interval`.
EVENT_SAFETY = 5.0
# How long `wait_for` waits for the stream to be open before its first poll (events after that
# moment are seen; a slower stream only delays the wake-ups).
READY_WAIT = 5.0


@dataclass
class Connection:
    """The current response of an event stream (so that another thread can cut it)."""

    response: httpx.Response | None = None


def stream_timeout(http_timeout: httpx.Timeout, idle_timeout: float) -> httpx.Timeout:
    connect = http_timeout.connect if http_timeout.connect is not None else 30.0
    return httpx.Timeout(connect, read=idle_timeout)


def refusal(response: httpx.Response, endpoint: str,
            raise_for_status: Callable[[httpx.Response], None]) -> errors.OcciError | None:
    """Why an answer to GET /-/events is not a stream: None when it is one, or when trying again
    later may help (503: the server is shutting down)."""
    if response.status_code == 503:
        return None
    if response.status_code in NOT_OFFERED:
        return not_offered(endpoint)
    if response.status_code >= 400:
        try:
            raise_for_status(response)
        except errors.OcciError as error:
            return error
    if not is_stream(response):
        return not_offered(endpoint)
    return None


class Watcher:
    """`wait_for`'s wake-up calls: an event stream on one location, read by a thread."""

    def __init__(self, open_stream: Callable[..., Iterator[ServerEvent]]) -> None:
        self.changed = threading.Event()
        self.ready = threading.Event()
        self.live = False
        self.error: Exception | None = None  # why there is no stream, if there is none
        self._stopping = False
        self._connection = Connection()
        self._thread = threading.Thread(target=self._run, args=(open_stream,), daemon=True,
                                        name="occipy-wait-events")
        self._thread.start()
        self.ready.wait(READY_WAIT)

    def _run(self, open_stream: Callable[..., Iterator[ServerEvent]]) -> None:
        def opened() -> None:
            self.live = True
            self.ready.set()

        try:
            for _ in open_stream(reconnect=30.0, idle_timeout=60.0, on_ready=opened, connection=self._connection,
                                 stopping=lambda: self._stopping):
                self.changed.set()
        except Exception as error:  # noqa: BLE001  (whatever it was, wait_for goes on polling)
            self.error = error  # no stream (or it broke for good): wait_for polls as before
        finally:
            self.live = False
            self.ready.set()
            self.changed.set()

    def sleep(self, step: Sleep, deadline: float) -> None:
        seconds = step.seconds
        if not self.live:
            time.sleep(seconds)
            return
        left = deadline - time.monotonic()
        self.changed.wait(max(seconds, min(EVENT_SAFETY, left)) if step.until_change else seconds)
        self.changed.clear()

    def close(self) -> None:
        self._stopping = True
        response = self._connection.response
        if response is not None:
            # Wake the thread out of its read at once (closing alone does not interrupt a recv).
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(timeout=2.0)


class AsyncWatcher:
    """`AsyncClient.wait_for`'s wake-up calls: an event stream on one location, read by a task."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.live = False
        self.error: Exception | None = None  # why there is no stream, if there is none
        self._task: asyncio.Task[None] | None = None

    async def start(self, open_stream: Callable[..., AsyncIterator[ServerEvent]]) -> None:
        ready = asyncio.Event()

        def opened() -> None:
            self.live = True
            ready.set()

        async def run() -> None:
            try:
                async for _ in open_stream(reconnect=30.0, idle_timeout=60.0, on_ready=opened):
                    self.changed.set()
            except Exception as error:  # noqa: BLE001  (whatever it was, wait_for goes on polling)
                self.error = error  # no stream (or it broke for good): wait_for polls as before
            finally:
                self.live = False
                ready.set()
                self.changed.set()

        self._task = asyncio.get_running_loop().create_task(run())
        try:
            await asyncio.wait_for(ready.wait(), READY_WAIT)
        except TimeoutError:
            pass

    async def sleep(self, step: Sleep, deadline: float) -> None:
        seconds = step.seconds
        if not self.live:
            await anyio.sleep(seconds)
            return
        left = deadline - time.monotonic()
        try:
            await asyncio.wait_for(self.changed.wait(),
                                   max(seconds, min(EVENT_SAFETY, left)) if step.until_change else seconds)
        except TimeoutError:
            pass
        self.changed.clear()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

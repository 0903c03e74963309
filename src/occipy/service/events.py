"""`GET /-/events`: committed changes as a server-sent event stream (issue 12, docs/events.md).

The store numbers every committed change (`store.base.ChangeEvent`, written in the batch's own
transaction). One `EventHub` per service follows the store while someone listens: woken at once
by this process's commits (`Store.listen_events`) and reading every `poll` seconds for other
processes' commits (PostgreSQL with several workers; no LISTEN/NOTIFY yet). It keeps the latest
events in a ring; a stream reads the ring, or the store when it resumes from an older id
(`Last-Event-ID`). Every stream is scoped by the request's `Context` (a principal sees their
tenant's events, an administrator all) and its filters (`EventsRequest`); it sends a keep-alive
(with the id it has examined up to) after `keepalive` seconds of silence, an explicit `lost` event
when it resumes from an id older than what the store keeps, and it ends at server shutdown.
Sans-IO like the rest of the service: the stream is an async iterator of bytes.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from occipy.errors import BadRequest, NotAcceptable, OcciError
from occipy.model.registry import Registry
from occipy.rendering import negotiate
from occipy.service.context import Context
from occipy.service.messages import OcciRequest
from occipy.store.base import EVENT_TYPES, OPERATION, ChangeEvent, EventPage, Store

log = logging.getLogger("occipy.events")

EVENT_STREAM: Final = "text/event-stream"
OPERATIONS_PREFIX: Final = "/-/operations/"
LOST: Final = "lost"  # the event that says events after the reader's id are no longer kept
# What a client waits before it reconnects (the SSE `retry` field), in milliseconds.
RETRY_MS: Final = 2000
# Events read from the store at once; events kept in the hub's ring for streams that follow.
PAGE: Final = 500
RING: Final = 4096
_ACCEPTED: Final = frozenset({EVENT_STREAM, "text/*", "*/*"})


# ---- the request -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventsRequest:
    """`GET /-/events` parsed: the filters as given, the id to resume after, the shutdown signal.

    Every filter is a comma-separated list in one query parameter; an event passes when it
    matches each filter given (and any value of it).
    """

    kinds: tuple[str, ...] = ()  # kind type ids (a kind's sub-kinds match too)
    locations: tuple[str, ...] = ()  # paths or URLs; one ending in "/" matches everything below it
    operations: tuple[str, ...] = ()  # operation ids or their /-/operations/<id> URLs
    types: tuple[str, ...] = ()  # created, updated, state, deleted, operation
    last_event_id: int | None = None
    shutdown: asyncio.Event | None = None  # set when the server shuts down (http/protocol.py)


def _values(query: dict[str, str] | Any, name: str) -> tuple[str, ...]:
    raw = query.get(name)
    if raw is None:
        return ()
    values = tuple(value.strip() for value in raw.split(",") if value.strip())
    if not values:
        raise BadRequest(f"the filter {name} is empty: give one or more values separated by commas")
    return values


def parse_request(request: OcciRequest, registry: Registry) -> EventsRequest:
    """The filters and resume point of `GET /-/events` (400 naming what is wrong)."""
    query = request.query
    unknown = sorted(set(query) - {"kind", "location", "operation", "type", "last_event_id"})
    if unknown:
        raise BadRequest(f"unknown query parameter {unknown[0]!r} for /-/events; the filters are kind, location, "
                         "operation and type (and last_event_id to resume)")
    kinds = []
    for value in _values(query, "kind"):
        kinds.append(_kind(registry, value))
    types = _values(query, "type")
    for value in types:
        if value not in EVENT_TYPES:
            raise BadRequest(f"unknown event type {value!r}; the types are {', '.join(EVENT_TYPES)}")
    operations = tuple(value.rsplit(OPERATIONS_PREFIX, 1)[-1] for value in _values(query, "operation"))
    raw_id = request.header("last-event-id") or query.get("last_event_id")
    last_event_id = None
    if raw_id is not None and raw_id.strip():
        text = raw_id.strip()
        if not text.isdigit() or len(text) > 18:
            raise BadRequest(f"Last-Event-ID must be an event id this server sent (a number), not {text[:40]!r}")
        last_event_id = int(text)
    return EventsRequest(kinds=tuple(kinds), locations=_values(query, "location"), operations=operations,
                         types=types, last_event_id=last_event_id, shutdown=request.shutdown)


def _kind(registry: Registry, value: str) -> str:
    if registry.is_kind(value):
        return value
    found = [kind.type_id for kind in registry.kinds() if kind.term == value]
    if len(found) == 1:
        return found[0]
    if found:
        raise BadRequest(f"the kind {value!r} is ambiguous: give one of {', '.join(sorted(found))}")
    raise BadRequest(f"unknown kind {value!r} in the filter kind (give a kind's type id, scheme#term)")


def error_media(accept: str | None) -> str:
    """The media type of an error answer to `GET /-/events` (the stream itself is text/event-stream):
    406 when Accept allows neither text/event-stream nor a wildcard."""
    if accept is None or not accept.strip():
        return negotiate.TEXT_PLAIN
    allowed = False
    for item in accept.split(","):
        parts = item.split(";")
        media = parts[0].strip().lower()
        q = 1.0
        for param in parts[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if media in _ACCEPTED and q > 0:
            allowed = True
    if not allowed:
        raise NotAcceptable(f"/-/events answers {EVENT_STREAM} only (Accept: {accept[:200]})")
    try:
        return negotiate.response_type(accept, listing=False)
    except OcciError:
        return negotiate.TEXT_PLAIN


# ---- filters ------------------------------------------------------------------------------------


@dataclass(slots=True)
class EventFilter:
    """Which events one stream sends: the caller's scope and the request's filters."""

    ctx: Context
    registry: Registry
    kinds: frozenset[str] = frozenset()
    locations: tuple[str, ...] = ()
    operations: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    _kind_cache: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def of(cls, request: EventsRequest, ctx: Context, registry: Registry) -> EventFilter:
        return cls(ctx=ctx, registry=registry, kinds=frozenset(request.kinds),
                   locations=tuple(ctx.local_path(value) for value in request.locations),
                   operations=frozenset(request.operations), types=frozenset(request.types))

    def passes(self, event: ChangeEvent) -> bool:
        # Tenancy first: another tenant's changes are not there (Context.sees).
        if not self.ctx.sees(event.tenant):
            return False
        if self.types and event.type not in self.types:
            return False
        if self.operations and event.operation not in self.operations:
            return False
        if self.locations and not any(event.location == wanted or (wanted.endswith("/")
                                                                   and event.location.startswith(wanted))
                                      for wanted in self.locations):
            return False
        return not self.kinds or self._kind_matches(event.kind)

    def _kind_matches(self, kind: str | None) -> bool:
        if kind is None:
            return False
        hit = self._kind_cache.get(kind)
        if hit is None:
            ancestors = self.registry.ancestors(kind) if self.registry.is_kind(kind) else (kind,)
            hit = self._kind_cache[kind] = any(a in self.kinds for a in ancestors)
        return hit


# ---- the wire format ----------------------------------------------------------------------------


def event_document(event: ChangeEvent, ctx: Context) -> dict[str, Any]:
    """The JSON of one event (the `data:` line): {id, type, location, operation, state, ...}.

    `location` and `operation` are absolute URLs of this server (the operation's record).
    """
    document: dict[str, Any] = {
        "id": event.event_id,
        "type": event.type,
        "location": ctx.absolute(event.location),
        "operation": ctx.absolute(OPERATIONS_PREFIX + event.operation) if event.operation else None,
        "state": event.state,
    }
    if event.message is not None:
        document["message"] = event.message
    if event.kind is not None:
        document["kind"] = event.kind
    if event.type == OPERATION and event.action is not None:
        document["action"] = event.action
    document["tenant"] = event.tenant
    document["time"] = event.created
    return document


def sse(event_id: int, document: dict[str, Any]) -> bytes:
    """One server-sent event (HTML Living Standard §9.2.6): its id and one JSON data line."""
    data = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event_id}\ndata: {data}\n\n".encode()


def _lost(after: int, page: EventPage) -> bytes:
    """The `lost` event: the reader's id is older than what the store keeps, or newer than any id
    the store has given (its log was reset); the stream goes on from the id it carries."""
    if after > page.last:
        resume = page.last
        why = f"this server's events end at id {page.last}, before id {after} (its event log was reset)"
    else:
        resume = page.floor
        why = f"events after id {after} are no longer kept (the oldest kept follows id {page.floor})"
    return sse(resume, {
        "id": resume, "type": LOST, "location": None, "operation": None, "state": None,
        "message": f"{why}: what happened meanwhile is not in this stream; read the current state again",
    })


# ---- the hub --------------------------------------------------------------------------------------


class EventHub:
    """Follows the store's event log while streams listen; each stream reads from it."""

    def __init__(self, store: Store, registry: Registry, *, keepalive: float = 15.0, poll: float = 1.0) -> None:
        self.store = store
        self.registry = registry
        self.keepalive = keepalive
        self.poll = poll
        self._ring: deque[ChangeEvent] = deque()
        self._ids: deque[int] = deque()  # the ring's ids, for bisect
        self._base = 0  # the ring holds every event with an id in (_base, _cursor]
        self._cursor = 0
        self._started = False  # _base/_cursor were read from the store
        self._streams: set[asyncio.Event] = set()  # each stream's wake-up call
        self._wake = asyncio.Event()  # the follower's
        self._follower: asyncio.Task[None] | None = None
        self._stop_listening: Callable[[], None] | None = None
        self._closed = False
        self._lock = asyncio.Lock()

    @property
    def closed(self) -> bool:
        """The hub has ended its streams (the service is stopping)."""
        return self._closed

    @property
    def streams(self) -> int:
        """How many streams are open."""
        return len(self._streams)

    async def close(self) -> None:
        """End every stream (they send a last keep-alive with their id) and stop following."""
        self._closed = True
        for wake in list(self._streams):
            wake.set()
        await self._stop_following()

    async def check(self) -> None:
        """Raise the store's error (BackendUnavailable) if the event log cannot be read now."""
        if not self._started or self._follower is None:
            await self.store.events_after(sys.maxsize, 0)

    # ---- following the store --------------------------------------------------------------------

    async def _ensure_following(self) -> None:
        async with self._lock:
            if self._follower is not None:
                return
            if not self._started:
                page = await self.store.events_after(sys.maxsize, 0)
                self._base = self._cursor = page.last
                self._started = True
            self._stop_listening = self.store.listen_events(self._wake.set)
            self._follower = asyncio.get_running_loop().create_task(self._follow(), name="occipy-events")

    async def _stop_following(self) -> None:
        async with self._lock:
            if self._streams and not self._closed:
                return  # a stream arrived meanwhile
            await self._stop_follower()

    async def _stop_follower(self) -> None:
        follower, self._follower = self._follower, None
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        if follower is not None:
            follower.cancel()
            try:
                await follower
            except asyncio.CancelledError:
                pass
        # What the ring holds is complete only while followed: start afresh next time.
        self._ring.clear()
        self._ids.clear()
        self._started = False

    async def _follow(self) -> None:
        while not self._closed:
            self._wake.clear()
            try:
                page = await self.store.events_after(self._cursor, PAGE)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cannot read the event log; retrying in %.3g s", max(self.poll, 1.0))
                await asyncio.sleep(max(self.poll, 1.0))
                continue
            if page.last < self._cursor:
                # The log restarted below what we saw (a new database): follow it from there.
                log.warning("the event log went back from id %d to %d", self._cursor, page.last)
                self._ring.clear()
                self._ids.clear()
                self._base = self._cursor = page.last
                self._tell_streams()
            if page.events:
                self._take(page.events)
                if len(page.events) >= PAGE:
                    continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll)
            except TimeoutError:
                pass

    def _take(self, events: list[ChangeEvent]) -> None:
        for event in events:
            self._ring.append(event)
            self._ids.append(event.event_id)
        self._cursor = events[-1].event_id
        while len(self._ring) > RING:
            self._ring.popleft()
            self._base = self._ids.popleft()
        self._tell_streams()

    def _tell_streams(self) -> None:
        for wake in self._streams:
            wake.set()

    async def _after(self, cursor: int) -> tuple[list[ChangeEvent], int, EventPage | None]:
        """Events after `cursor`, the cursor after them, and the store's page when it was read
        (which says whether events were lost)."""
        if self._base <= cursor <= self._cursor:
            start = bisect.bisect_right(self._ids, cursor)
            found = [self._ring[i] for i in range(start, len(self._ring))]
            return found, (found[-1].event_id if found else cursor), None
        # Older than the ring (a resume), or newer than this process has seen (another worker's
        # id, or an id of a log that was reset): the store says.
        page = await self.store.events_after(cursor, PAGE)
        if page.events:
            return page.events, page.events[-1].event_id, page
        if cursor > page.last or cursor < page.floor:
            return [], page.last if cursor > page.last else page.floor, page
        return [], cursor, page

    # ---- one stream -------------------------------------------------------------------------------

    async def stream(self, request: EventsRequest, ctx: Context) -> AsyncIterator[bytes]:
        """The bytes of one event stream, until the server shuts down or the client goes away."""
        wake = asyncio.Event()
        self._streams.add(wake)
        shutdown_watch: asyncio.Task[None] | None = None
        try:
            if self._closed:
                return
            try:
                await self._ensure_following()
            except OcciError as error:
                log.warning("an event stream cannot start: %s", error.message)
                return
            shutdown = request.shutdown
            if shutdown is not None:
                shutdown_watch = asyncio.get_running_loop().create_task(self._watch(shutdown, wake))
            passes = EventFilter.of(request, ctx, self.registry).passes
            cursor = self._cursor if request.last_event_id is None else request.last_event_id
            # The reconnection delay and, at once, an id to resume from (no data: no event fires).
            yield f"retry: {RETRY_MS}\nid: {cursor}\n\n".encode()
            loop = asyncio.get_running_loop()
            quiet_since = loop.time()
            why = "the server is shutting down"
            while not self._closed and not (shutdown is not None and shutdown.is_set()):
                wake.clear()
                try:
                    found, after, page = await self._after(cursor)
                except OcciError as error:
                    # The store cannot be read now: end this stream; the client comes back later
                    # with its last id and loses nothing.
                    log.warning("an event stream ends: %s", error.message)
                    why = "the event log cannot be read now"
                    break
                chunks: list[bytes] = []
                if page is not None and (cursor < page.floor or cursor > page.last):
                    chunks.append(_lost(cursor, page))
                for event in found:
                    if passes(event):
                        chunks.append(sse(event.event_id, event_document(event, ctx)))
                moved = after != cursor
                cursor = after
                if chunks:
                    yield b"".join(chunks)
                    quiet_since = loop.time()
                if moved and (found or page is not None):
                    continue  # there may be more (a page at a time)
                left = self.keepalive - (loop.time() - quiet_since)
                if left <= 0:
                    # A comment keeps proxies from closing a quiet stream; the id lets a reconnect
                    # skip what this stream has already looked at (filtered out or not).
                    yield f"id: {cursor}\n: keep-alive\n\n".encode()
                    quiet_since = loop.time()
                    continue
                try:
                    await asyncio.wait_for(wake.wait(), left)
                except TimeoutError:
                    pass
            yield f"id: {cursor}\n: {why}; reconnect with Last-Event-ID {cursor}\n\n".encode()
        finally:
            self._streams.discard(wake)
            if shutdown_watch is not None:
                shutdown_watch.cancel()
            if not self._streams and not self._closed:
                await self._stop_following()

    @staticmethod
    async def _watch(shutdown: asyncio.Event, wake: asyncio.Event) -> None:
        await shutdown.wait()
        wake.set()

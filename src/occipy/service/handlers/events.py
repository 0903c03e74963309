"""`GET /-/events` (issue 12): the stream of committed changes the caller may see, as server-sent events.

The pipeline has authenticated and authorised the request and negotiated how errors are
written; the body is `EventHub.stream`, scoped by the request's `Context` and filtered by the
query parameters (`service.events.EventsRequest`). docs/events.md describes the stream.
"""

from __future__ import annotations

from occipy.errors import BackendUnavailable
from occipy.service.context import Context
from occipy.service.events import EVENT_STREAM, EventsRequest
from occipy.service.handlers.base import Env
from occipy.service.results import Outcome, Result, StreamResult
from occipy.service.routes import Route

# No cache may keep the stream; nginx must not buffer it (it would hold events back).
_HEADERS = (("Cache-Control", "no-store"), ("X-Accel-Buffering", "no"))


async def stream(env: Env, ctx: Context, route: Route, message: EventsRequest) -> Result:
    """GET /-/events: the event stream (text/event-stream), until the server shuts down."""
    hub = env.events
    if hub is None or hub.closed:
        raise BackendUnavailable("the server is shutting down: no event stream now")
    await hub.check()  # a store that cannot be read is a 503 now, not a stream that breaks at once
    return StreamResult(hub.stream(message, ctx), EVENT_STREAM, Outcome(headers=_HEADERS))

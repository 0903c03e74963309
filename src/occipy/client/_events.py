"""The server's change events (`GET /-/events`, occipy's server-sent event stream): sans-IO parts.

`SSEDecoder` reads the text/event-stream format line by line as a browser's EventSource does
(HTML Living Standard §9.2.6: `data:`, `id:`, `retry:`, comments, a blank line dispatches) and
keeps the last event id to resume with (`Last-Event-ID`); `ServerEvent` is one change as the
server describes it; `EventQuery` holds the filters and builds the request. `Client.events()` and
`AsyncClient.events()` (in `_client.py`) run the connection and reconnect. Imports httpx (types),
msgspec and `occipy.errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import msgspec

from occipy import errors

__all__ = ["EventQuery", "SSEDecoder", "ServerEvent"]

EVENT_STREAM: Final = "text/event-stream"
EVENTS_PATH: Final = "-/events"
# An answer that says the server offers no event stream (then `wait_for` polls).
NOT_OFFERED: Final = frozenset({404, 405, 406, 501})


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One committed change on the server (docs/events.md).

    `type`: created, updated, state, deleted, operation, or lost (events after the id this client
    resumed from are no longer kept: read the current state again). `location` and `operation`
    are absolute URLs; `state` is the entity's state, or the operation's (queued, running,
    succeeded, failed) for operation events. `data` is the whole JSON the server sent.
    """

    id: str
    type: str
    location: str | None = None
    operation: str | None = None
    state: str | None = None
    message: str | None = None
    kind: str | None = None
    action: str | None = None
    tenant: str | None = None
    time: float | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> bool:
        """The server dropped events this client has not seen (see `type` lost)."""
        return self.type == "lost"

    @property
    def ended(self) -> bool:
        """An operation event of an operation that has ended (succeeded or failed)."""
        return self.type == "operation" and self.state in ("succeeded", "failed")


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def event_of(data: str, event_id: str) -> ServerEvent:
    """The ServerEvent of one `data:` payload (ParseError when it is not the JSON occipy sends)."""
    try:
        document = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise errors.ParseError(f"an event of the stream is not JSON ({exc}): {data[:200]}") from None
    if not isinstance(document, dict) or not isinstance(document.get("type"), str):
        raise errors.ParseError(f"an event of the stream has no type: {data[:200]}")
    when = document.get("time")
    return ServerEvent(id=event_id, type=document["type"], location=_text(document, "location"),
                       operation=_text(document, "operation"), state=_text(document, "state"),
                       message=_text(document, "message"), kind=_text(document, "kind"),
                       action=_text(document, "action"), tenant=_text(document, "tenant"),
                       time=float(when) if isinstance(when, (int, float)) else None, data=document)


class SSEDecoder:
    """text/event-stream, one line at a time (without its line break); HTML §9.2.6 "Interpreting
    an event stream". `last_id` survives reconnects; `retry` is the server's reconnection delay in
    seconds (None until it sends one); `blocks` counts dispatched blocks (events or not)."""

    def __init__(self, last_id: str | None = None) -> None:
        self.last_id = last_id
        self.retry: float | None = None
        self.blocks = 0
        self._data: list[str] = []
        self._id: str | None = last_id

    def feed(self, line: str) -> ServerEvent | None:
        """The event a blank line dispatches, if it carried data."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (the server's keep-alive)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value) / 1000
        return None

    def _dispatch(self) -> ServerEvent | None:
        # "Set the last event ID string of the event source to the value of the last event ID
        #  buffer" -- before the data check, so that an id-only block moves it too (HTML §9.2.6).
        self.last_id = self._id
        self.blocks += 1
        data, self._data = self._data, []
        text = "\n".join(data)
        if not text.strip():
            return None  # no data, or an empty message (occipy never sends one)
        return event_of(text, self.last_id or "")


@dataclass(frozen=True, slots=True)
class EventQuery:
    """The filters of `GET /-/events` (each a list; an event passes when it matches every filter
    given): kinds (type ids or terms; sub-kinds match), locations (URLs or paths; one ending in "/"
    matches everything below it), operation ids or URLs, and event types."""

    kinds: Sequence[str] = ()
    locations: Sequence[str] = ()
    operations: Sequence[str] = ()
    types: Sequence[str] = ()

    def params(self, path_of: Callable[[str], str]) -> dict[str, str]:
        """Query parameters; `path_of` turns a location into this server's path."""
        params: dict[str, str] = {}
        for name, values in (("kind", self.kinds), ("location", [path_of(v) for v in self.locations]),
                             ("operation", self.operations), ("type", self.types)):
            if values:
                params[name] = ",".join(values)
        return params


def headers(last_id: str | None) -> list[tuple[str, str]]:
    found = [("Accept", EVENT_STREAM), ("Cache-Control", "no-cache")]
    if last_id:
        found.append(("Last-Event-ID", last_id))
    return found


def is_stream(response: httpx.Response) -> bool:
    media: str = response.headers.get("content-type", "")
    return media.split(";", 1)[0].strip().lower() == EVENT_STREAM


def not_offered(endpoint: str) -> errors.NotSupported:
    return errors.NotSupported(f"the server at {endpoint} offers no event stream (GET /-/events)")

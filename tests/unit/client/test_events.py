"""The SDK's event stream (issue 12) on httpx.MockTransport: the text/event-stream decoder, filters,
automatic resume with Last-Event-ID, the server's retry delay, the reconnect budget, servers
without a stream, the async iterator, `wait_for` falling back to polling, and `occi events`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from occipy.cli.main import cli
from occipy.client import AsyncClient, Client, ServerEvent, ServerUnreachable
from occipy.client._events import SSEDecoder
from occipy.errors import NotSupported, ParseError, Unauthorized

from .fake import BASE, JSON_T, FakeServer

STREAM = "text/event-stream"


def block(event_id: int, **data: Any) -> str:
    document = {"id": event_id, "location": None, "operation": None, "state": None, **data}
    return f"id: {event_id}\ndata: {json.dumps(document)}\n\n"


def stream_response(*blocks: str, retry_ms: int = 10) -> httpx.Response:
    body = f"retry: {retry_ms}\n\n" + "".join(blocks)
    return httpx.Response(200, headers={"Content-Type": STREAM}, content=body.encode())


class Connections:
    """A MockTransport handler answering GET /-/events with one prepared answer per connection."""

    def __init__(self, *answers: httpx.Response | Callable[[httpx.Request], httpx.Response] | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/-/events", request.url
        self.requests.append(request)
        if not self.answers:
            raise httpx.ConnectError("no more answers", request=request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer


# ---- the format ---------------------------------------------------------------------------------


def test_the_decoder_follows_the_event_source_rules() -> None:
    decoder = SSEDecoder()
    lines = ["retry: 2500", "id: 7", "", ": keep-alive", "id: 8", 'data: {"type": "created",', 'data: "state": null}',
             "", "id: bad\0id", "data:{\"type\":\"deleted\"}", "", "event: ignored", "data", ""]
    found = [event for line in lines if (event := decoder.feed(line)) is not None]
    assert decoder.retry == 2.5
    # An id-only block moves the id without an event; two data lines join with a newline; an id
    # with NUL is ignored; `data` without a colon is an empty data line (an empty message: skipped).
    assert [(e.id, e.type) for e in found[:2]] == [("8", "created"), ("8", "deleted")]
    assert decoder.last_id == "8" and decoder.blocks == 4
    garbled = SSEDecoder()
    garbled.feed("data: not json")
    with pytest.raises(ParseError):
        garbled.feed("")
    broken = SSEDecoder()
    broken.feed("data: [1, 2]")
    with pytest.raises(ParseError, match="no type"):
        broken.feed("")


# ---- following and resuming ----------------------------------------------------------------------


def test_events_resume_with_the_last_id_after_the_stream_breaks() -> None:
    handler = Connections(
        stream_response("id: 5\n\n", block(6, type="created", location=BASE + "/compute/1", state="inactive",
                                             kind="http://schemas.ogf.org/occi/infrastructure#compute")),
        httpx.ReadError("connection reset"),
        stream_response(block(7, type="operation", location=BASE + "/compute/1",
                              operation=BASE + "/-/operations/op", state="succeeded", action="create"),
                        block(8, type="lost", message="gone")),
    )
    with Client(BASE, transport=httpx.MockTransport(handler)) as occi:
        events = occi.events(kinds=["compute"], locations=["/compute/"], operations=["op"], types=["created"])
        first, second, third = [next(events) for _ in range(3)]
        events.close()
    assert isinstance(first, ServerEvent) and (first.id, first.type, first.state) == ("6", "created", "inactive")
    assert first.kind == "http://schemas.ogf.org/occi/infrastructure#compute" and not first.lost
    assert second.ended and second.action == "create" and second.operation == BASE + "/-/operations/op"
    assert third.lost and third.message == "gone"
    first_request, second_request, third_request = handler.requests
    assert first_request.headers["accept"] == STREAM and "last-event-id" not in first_request.headers
    assert dict(first_request.url.params) == {"kind": "compute", "location": "/compute/", "operation": "op",
                                              "type": "created"}
    # After the end of the first stream and after the failed attempt: resume after 6.
    assert second_request.headers["last-event-id"] == "6"
    assert third_request.headers["last-event-id"] == "6"


def test_events_start_after_the_given_id_and_end_without_reconnect() -> None:
    handler = Connections(stream_response(block(11, type="deleted")))
    with Client(BASE, transport=httpx.MockTransport(handler)) as occi:
        found = list(occi.events(last_event_id=10, reconnect=0))
    assert [e.id for e in found] == ["11"]
    assert handler.requests[0].headers["last-event-id"] == "10"


def test_the_reconnect_budget_runs_out() -> None:
    handler = Connections(*[httpx.ConnectError("refused") for _ in range(200)])
    started = time.monotonic()
    with Client(BASE, transport=httpx.MockTransport(handler)) as occi, pytest.raises(ServerUnreachable):
        for _ in occi.events(reconnect=0.3):
            pass
    assert 0.3 <= time.monotonic() - started < 5
    # Without a budget the first failure is the answer.
    refused = Connections(httpx.ConnectError("refused"))
    with Client(BASE, transport=httpx.MockTransport(refused)) as occi, pytest.raises(ServerUnreachable):
        list(occi.events(reconnect=0))


def test_the_servers_retry_delay_is_used() -> None:
    handler = Connections(stream_response(retry_ms=300), stream_response(block(1, type="created")))
    started = time.monotonic()
    with Client(BASE, transport=httpx.MockTransport(handler)) as occi:
        event = next(occi.events())
    assert event.type == "created"
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize(("answer", "error"), [
    (httpx.Response(404, text="nothing at /-/events"), NotSupported),
    (httpx.Response(501, text="no"), NotSupported),
    (httpx.Response(200, headers={"Content-Type": "text/plain"}, text="X-OCCI-Location: x"), NotSupported),
    (httpx.Response(401, text="who?", headers={"WWW-Authenticate": "Basic"}), Unauthorized),
])
def test_a_server_without_a_stream_or_a_refusal_is_an_error_at_once(answer: httpx.Response,
                                                                   error: type[Exception]) -> None:
    handler = Connections(answer, stream_response(block(1, type="created")))
    with Client(BASE, transport=httpx.MockTransport(handler)) as occi, pytest.raises(error):
        next(occi.events())
    assert len(handler.requests) == 1  # no reconnect after a refusal


def test_503_while_the_server_shuts_down_is_retried() -> None:
    handler = Connections(httpx.Response(503, text="shutting down"), stream_response(block(3, type="state")))
    with Client(BASE, transport=httpx.MockTransport(handler)) as occi:
        assert next(occi.events()).id == "3"


async def test_the_async_iterator_resumes_too() -> None:
    handler = Connections(stream_response(block(1, type="created")), stream_response(block(2, type="deleted")))

    async def transport(request: httpx.Request) -> httpx.Response:
        return handler(request)

    async with AsyncClient(BASE, transport=httpx.MockTransport(transport)) as occi:
        found = []
        async for event in occi.events(types=["created", "deleted"]):
            found.append(event)
            if len(found) == 2:
                break
    assert [(e.id, e.type) for e in found] == [("1", "created"), ("2", "deleted")]
    assert handler.requests[1].headers["last-event-id"] == "1"
    assert handler.requests[0].url.params["type"] == "created,deleted"


# ---- wait_for without a stream --------------------------------------------------------------------


def test_wait_for_polls_when_the_server_offers_no_stream() -> None:
    server = FakeServer(offers=(JSON_T,), op_polls=3)
    with Client(BASE, transport=httpx.MockTransport(server)) as occi:
        vm = occi.create("compute")
        started = time.monotonic()
        occi.wait_for(vm, interval=0.05)
        took = time.monotonic() - started
    paths = [request.url.path for request in server.requests]
    assert "/-/events" in paths  # it asked for the stream first
    assert sum(path.startswith("/-/operations/") for path in paths) >= 3  # then polled the operation
    assert took < 2


# ---- occi events ------------------------------------------------------------------------------------


@pytest.fixture
def stream_client() -> Iterator[tuple[Client, Connections]]:
    handler = Connections(stream_response(
        block(4, type="created", location=BASE + "/compute/1", state="inactive", time=0,
              kind="http://schemas.ogf.org/occi/infrastructure#compute"),
        block(5, type="operation", location=BASE + "/compute/1", operation=BASE + "/-/operations/x",
              state="running", action="create", message="booting"),
        block(6, type="state", location=BASE + "/compute/1", state="active")))
    with Client(BASE, transport=httpx.MockTransport(handler)) as occi:
        yield occi, handler


def test_occi_events_prints_one_json_object_a_line(stream_client: tuple[Client, Connections]) -> None:
    occi, handler = stream_client
    result = CliRunner().invoke(cli, ["events", "-o", "json", "--count", "2", "--type", "created",
                                      "--type", "operation", "--last-event-id", "3", "-l", "/compute/1"],
                                obj=occi, env={"OCCI_CONFIG": "", "OCCI_ENDPOINT": ""})
    assert result.exit_code == 0, (result.stdout, result.stderr)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["id"], e["type"]) for e in lines] == [(4, "created"), (5, "operation")]
    request = handler.requests[0]
    assert request.headers["last-event-id"] == "3"
    assert request.url.params["type"] == "created,operation" and request.url.params["location"] == "/compute/1"


def test_occi_events_prints_readable_lines(stream_client: tuple[Client, Connections]) -> None:
    occi, _ = stream_client
    result = CliRunner().invoke(cli, ["events", "--count", "3"], obj=occi,
                                env={"OCCI_CONFIG": "", "OCCI_ENDPOINT": "", "COLUMNS": "200"})
    assert result.exit_code == 0, (result.stdout, result.stderr)
    first, second, third = result.stdout.splitlines()
    assert "#4" in first and "created inactive" in first and "/compute/1" in first and "compute" in first
    assert "create running" in second and "(booting)" in second
    assert "-> active" in third


def test_occi_events_says_when_the_server_has_no_stream() -> None:
    occi = Client(BASE, transport=httpx.MockTransport(Connections(httpx.Response(404, text="no"))))
    result = CliRunner().invoke(cli, ["events"], obj=occi, env={"OCCI_CONFIG": "", "OCCI_ENDPOINT": ""})
    assert result.exit_code == 1
    assert "offers no event stream" in result.stderr


def test_wait_steps_say_which_pauses_an_event_may_end() -> None:
    """With the stream, a pause that waits for a change may end at an event (and last longer); the
    polls that see a state settle over time stay timed."""
    from occipy.client._wait import Sleep, follow
    from occipy.model.entity import Entity

    states = iter([("inactive", None), ("active", "booting"), ("active", "booting"), ("active", "booting")])

    def fetch_entity():  # type: ignore[no-untyped-def]
        state, message = next(states)
        return Entity(kind="k", entity_id="e", location="/e",
                      attributes={"s": state, **({"m": message} if message else {})})
        yield  # pragma: no cover - a generator that sends nothing

    def fetch_operation(url):  # type: ignore[no-untyped-def]
        return None
        yield  # pragma: no cover

    steps = follow("/e", state="active", timeout=60, interval=0.5, operation=None, fetch_entity=fetch_entity,
                   fetch_operation=fetch_operation,
                   state_of=lambda e: (e.attributes.get("s"), e.attributes.get("m")))  # type: ignore[arg-type,return-value]
    pauses = []
    try:
        step = next(steps)
        while True:
            assert isinstance(step, Sleep)
            pauses.append(step.until_change)
            step = steps.send(None)
    except StopIteration:
        pass
    # inactive (waiting for a change), then "active (booting)" seen settle over two timed polls.
    assert pauses == [True, False, False]

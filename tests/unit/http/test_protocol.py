"""http/protocol.py: EdgeProtocol driven byte by byte through a fake transport (no sockets).

The live-server versions of these cases, with memory and CPU measured, are in
tests/integration/test_edge_limits.py; these pin the counting at chunk boundaries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from occipy.http.protocol import RAW_SLACK, EdgeLimits, EdgeProtocol, first_pem_certificate, protocol_class

LIMIT = 1000


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.eof = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def responses(self) -> list[int]:
        return [int(part[:3]) for part in bytes(self.written).split(b"HTTP/1.1 ")[1:] if part[:3].isdigit()]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, answers 200 with its length."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Harness:
    def __init__(self, limits: EdgeLimits) -> None:
        self.config = Config(app, http=protocol_class(limits), ws="none", lifespan="off", log_config=None)
        self.config.load()
        self.state = ServerState()

    def connect(self) -> tuple[EdgeProtocol, FakeTransport]:
        cls = self.config.http_protocol_class
        protocol = cls(config=self.config, server_state=self.state, app_state={})  # type: ignore[call-arg]
        assert isinstance(protocol, EdgeProtocol)
        transport = FakeTransport()
        protocol.connection_made(transport)
        return protocol, transport


def limits(**changes: Any) -> EdgeLimits:
    values: dict[str, Any] = {"max_header_bytes": LIMIT, "header_timeout": 5.0, "body_timeout": 5.0,
                              "body_total_timeout": 5.0, "max_connections": 10, "linger": 0.05}
    values.update(changes)
    return EdgeLimits(**values)


@pytest.fixture
def harness() -> Iterator[Harness]:
    yield Harness(limits())


def head_of(size: int) -> bytes:
    """A GET whose counted head (target + fields with ': ' and CRLF) is exactly `size` bytes."""
    target = b"/x"
    fixed = len(target) + len(b"host") + len(b"h") + 4 + len(b"x-pad") + 4
    return b"GET " + target + b" HTTP/1.1\r\nhost: h\r\nx-pad: " + b"p" * (size - fixed) + b"\r\n\r\n"


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def until(condition: Any, timeout: float = 3.0) -> bool:
    """Poll (the loop may be slow on a loaded machine): whether `condition()` held within `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@pytest.mark.parametrize("piece", [1, 7, 4096], ids=["byte-by-byte", "7-bytes", "one-chunk"])
async def test_a_head_of_exactly_the_limit_is_served(harness: Harness, piece: int) -> None:
    protocol, transport = harness.connect()
    data = head_of(LIMIT)
    for start in range(0, len(data), piece):
        protocol.data_received(data[start:start + piece])
    await settle()
    assert transport.responses() == [200]
    protocol.connection_lost(None)


@pytest.mark.parametrize("piece", [1, 7, 4096], ids=["byte-by-byte", "7-bytes", "one-chunk"])
async def test_one_byte_more_is_431(harness: Harness, piece: int) -> None:
    protocol, transport = harness.connect()
    data = head_of(LIMIT + 1)
    for start in range(0, len(data), piece):
        protocol.data_received(data[start:start + piece])
    await settle()
    assert transport.responses() == [431]
    assert b"connection: close" in transport.written and transport.eof
    assert await until(lambda: transport.closed)  # after the linger
    protocol.connection_lost(None)


async def test_a_value_without_its_end_is_cut_off_by_its_raw_size(harness: Harness) -> None:
    """httptools keeps an unfinished value itself: the raw bound stops it before the callbacks see it."""
    protocol, transport = harness.connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nx-big: ")
    for _ in range(10):
        protocol.data_received(b"a" * 10_000)  # 100 kB, never a CRLF
    assert transport.responses() == [431]
    assert protocol._head_raw <= LIMIT + RAW_SLACK
    protocol.connection_lost(None)


async def test_pipelined_requests_in_one_chunk_are_not_mistaken_for_one_head(harness: Harness) -> None:
    protocol, transport = harness.connect()
    protocol.data_received(head_of(900) * 4)  # 3.6 kB in one chunk, each head under the limit
    assert await until(lambda: len(transport.responses()) == 4)
    assert transport.responses() == [200, 200, 200, 200]
    protocol.connection_lost(None)


async def test_keep_alive_heads_are_counted_each_on_their_own(harness: Harness) -> None:
    protocol, transport = harness.connect()
    for _ in range(5):
        protocol.data_received(head_of(LIMIT))
        await settle()
    assert transport.responses() == [200] * 5
    protocol.connection_lost(None)


async def test_an_idle_body_is_408_and_the_app_sees_a_disconnect() -> None:
    protocol, transport = Harness(limits(body_timeout=0.05, body_total_timeout=1.0)).connect()
    protocol.data_received(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 10\r\n\r\nabc")
    assert await until(lambda: transport.closed)  # the 408, then the linger
    assert transport.responses() == [408]
    assert b"no body data for 0.05 seconds" in transport.written
    assert protocol.cycle.disconnected
    protocol.connection_lost(None)


async def test_a_trickled_body_is_408_at_the_total() -> None:
    protocol, transport = Harness(limits(body_timeout=5.0, body_total_timeout=0.3)).connect()
    protocol.data_received(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 100\r\n\r\n")
    for _ in range(500):
        if transport.written:
            break
        protocol.data_received(b"a")
        await asyncio.sleep(0.02)
    assert transport.responses() == [408]
    assert b"longer than 0.3 seconds" in transport.written
    protocol.connection_lost(None)


async def test_a_complete_body_is_not_timed_out() -> None:
    protocol, transport = Harness(limits(body_timeout=0.05, body_total_timeout=0.05)).connect()
    protocol.data_received(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\nabc")
    await asyncio.sleep(0.15)
    assert transport.responses() == [200] and not transport.closed
    protocol.connection_lost(None)


async def test_no_bytes_at_all_is_closed_without_an_answer() -> None:
    protocol, transport = Harness(limits(header_timeout=0.05)).connect()
    assert await until(lambda: transport.closed)
    assert transport.written == b""
    protocol.connection_lost(None)


async def test_a_partial_head_is_408() -> None:
    protocol, transport = Harness(limits(header_timeout=0.05)).connect()
    protocol.data_received(b"GET / HTTP/1.1\r\nhost")
    assert await until(lambda: transport.written != b"")
    assert transport.responses() == [408]
    protocol.connection_lost(None)


async def test_the_header_timeout_restarts_with_each_request() -> None:
    protocol, transport = Harness(limits(header_timeout=1.0)).connect()
    await asyncio.sleep(0.6)
    protocol.data_received(head_of(100))
    await asyncio.sleep(0.6)  # 1.2 s after the connection, 0.6 s into no new request
    protocol.data_received(head_of(100))
    await settle()
    assert transport.responses() == [200, 200] and not transport.closed
    protocol.connection_lost(None)


async def test_the_connection_cap() -> None:
    harness = Harness(limits(max_connections=2))
    first, second = harness.connect(), harness.connect()
    third_protocol, third = harness.connect()
    assert third.responses() == [503] and b"retry-after: 1" in third.written
    assert len(harness.state.connections) == 2
    third_protocol.data_received(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")  # dropped while it lingers
    assert third.responses() == [503]
    third_protocol.connection_lost(None)
    first[0].connection_lost(None)
    _, fourth = harness.connect()
    assert fourth.written == b""  # a place is free again
    second[0].connection_lost(None)


async def test_an_early_answer_does_not_read_the_rest_of_the_body() -> None:
    """When the app answers before the body is in (413, 415), the connection lingers and closes."""

    async def refuse(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    harness = Harness(limits())
    harness.config.loaded_app = refuse
    protocol, transport = harness.connect()
    protocol.data_received(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 1000000\r\n\r\nabc")
    await settle()
    assert transport.responses() == [413] and transport.eof
    # the client is told not to reuse the connection, and the close lingers
    assert b"\r\nconnection: close\r\n\r\n" in transport.written
    protocol.data_received(b"x" * 100_000)  # dropped
    assert await until(lambda: transport.closed)
    protocol.connection_lost(None)


async def test_an_answer_after_the_whole_body_keeps_the_connection() -> None:
    protocol, transport = Harness(limits()).connect()
    protocol.data_received(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 6\r\n\r\nabc")
    protocol.data_received(b"def")
    assert await until(lambda: transport.responses() == [200])
    assert b"connection: close" not in transport.written
    protocol.data_received(head_of(100))  # the next request on the same connection
    assert await until(lambda: transport.responses() == [200, 200])
    assert not transport.closed and not transport.eof
    protocol.connection_lost(None)


def test_first_pem_certificate() -> None:
    one = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----"
    two = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n"
    assert first_pem_certificate("junk\n" + one + "\n" + two) == one + "\n"
    assert first_pem_certificate("no certificate") is None

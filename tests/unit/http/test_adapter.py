"""The ASGI adapter (`occipy.http.adapter`): query parsing, header decoding, limits, base URL and
Host handling, and the response side. Requests are built as raw ASGI scopes, as uvicorn hands them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from occipy.errors import BadRequest, PayloadTooLarge
from occipy.http import adapter
from occipy.service.messages import OcciRequest, OcciResponse


def _request(method: str = "GET", path: str = "/compute/", *, query: bytes = b"",
             headers: Sequence[tuple[bytes, bytes]] = ((b"host", b"occi.example:8080"),),
             chunks: Sequence[bytes] = (), scheme: str = "http",
             server: tuple[str, int | None] | None = ("10.0.0.1", 8080)) -> Request:
    scope: dict[str, Any] = {
        "type": "http", "method": method, "path": path, "query_string": query, "headers": list(headers),
        "scheme": scheme, "server": server, "http_version": "1.1",
    }
    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                for i, chunk in enumerate(chunks)] or [{"type": "http.request", "body": b"", "more_body": False}]
    received: list[int] = []

    async def receive() -> dict[str, Any]:
        received.append(1)
        if len(received) > len(messages):
            raise AssertionError("the adapter read past the end of the body")
        return messages[len(received) - 1]

    return Request(scope, receive)


async def _occi(request: Request, *, max_body: int = 1000, max_headers: int = 10) -> OcciRequest:
    return await adapter.to_occi(request, max_body=max_body, max_headers=max_headers)


# ---- query strings (http-protocol.md §9) ---------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    (b"", {}),
    (b"action=start", {"action": "start"}),
    (b"a=1&b=2", {"a": "1", "b": "2"}),
    (b"a=1;b=2", {"a": "1", "b": "2"}),  # both separators
    (b"a=1&a=2", {"a": "2"}),  # last value wins
    (b"&&a=1&", {"a": "1"}),
    (b"flag", {"flag": ""}),
    (b"category=http%3A%2F%2Fx%23y&q=a+b", {"category": "http://x#y", "q": "a b"}),
    (b"caf%C3%A9=%E9", {"café": "\ufffd"}),
])
def test_parse_query(raw: bytes, expected: dict[str, str]) -> None:
    assert adapter.parse_query(raw) == expected


@given(st.binary(max_size=60))
def test_parse_query_never_fails(raw: bytes) -> None:
    result = adapter.parse_query(raw)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.items())


# ---- header decoding (text-rendering.md §3) --------------------------------------------------------

def test_decode_header_utf8_then_latin1() -> None:
    assert adapter.decode_header("occi.core.title=\"café\"".encode()) == "occi.core.title=\"café\""
    assert adapter.decode_header(b"caf\xe9") == "café"


@given(st.binary(max_size=40))
def test_decode_header_accepts_any_bytes(raw: bytes) -> None:
    assert isinstance(adapter.decode_header(raw), str)


async def test_headers_are_lower_cased_and_kept_in_order() -> None:
    occi = await _occi(_request(headers=[(b"Host", b"h"), (b"Category", b"a"), (b"X-OCCI-Attribute", b"x=1"),
                                         (b"category", b"b")]))
    assert occi.headers == [("host", "h"), ("category", "a"), ("x-occi-attribute", "x=1"), ("category", "b")]
    assert occi.header_values("category") == ["a", "b"]


# ---- limits -----------------------------------------------------------------------------------------

async def test_too_many_header_fields_is_400() -> None:
    headers = [(b"x-h", b"v")] * 11
    with pytest.raises(BadRequest, match="too many header fields \\(11; at most 10\\)"):
        await _occi(_request(headers=headers))


async def test_a_header_section_larger_than_the_body_limit_is_413() -> None:
    with pytest.raises(PayloadTooLarge, match="header section"):
        await _occi(_request(headers=[(b"category", b"x" * 1000)]))


async def test_a_declared_body_larger_than_the_limit_is_413_before_reading() -> None:
    request = _request("POST", headers=[(b"content-length", b"5000")], chunks=[b"never read"])
    with pytest.raises(PayloadTooLarge, match="larger than 1000 bytes"):
        await _occi(request)


async def test_a_streamed_body_larger_than_the_limit_is_413() -> None:
    request = _request("POST", headers=[(b"transfer-encoding", b"chunked")], chunks=[b"a" * 600, b"b" * 600])
    with pytest.raises(PayloadTooLarge):
        await _occi(request)


async def test_a_body_is_read_whole() -> None:
    occi = await _occi(_request("PUT", chunks=[b"Category: a", b"; b"]))
    assert occi.body == b"Category: a; b"
    assert occi.method == "PUT"


async def test_a_get_without_a_body_does_not_read_one() -> None:
    # the receive callable would fail if called past its one message; a GET must not call it at all
    occi = await _occi(_request("GET", chunks=[b"ignored"]))
    assert occi.body == b""


# ---- base URL and Host ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "scheme", "server", "expected"), [
    ([(b"host", b"occi.example:8080")], "http", ("10.0.0.1", 8080), "http://occi.example:8080"),
    ([(b"host", b"occi.example")], "https", ("10.0.0.1", 443), "https://occi.example"),
    ([], "http", ("10.0.0.1", 8080), "http://10.0.0.1:8080"),  # no Host: the socket address
    ([], "http", ("10.0.0.1", 80), "http://10.0.0.1"),  # default ports are left out
    ([], "https", ("10.0.0.1", 443), "https://10.0.0.1"),
    ([], "http", None, "http://localhost"),
    # a Host that would change the path or authority of every rendered URL is not trusted
    ([(b"host", b"evil.example/path")], "http", ("10.0.0.1", 8080), "http://10.0.0.1:8080"),
    ([(b"host", b"user@evil.example")], "http", ("10.0.0.1", 8080), "http://10.0.0.1:8080"),
    ([(b"host", b"a b")], "http", ("10.0.0.1", 8080), "http://10.0.0.1:8080"),
    ([(b"host", b"")], "http", ("10.0.0.1", 8080), "http://10.0.0.1:8080"),
])
async def test_base_url(headers: list[tuple[bytes, bytes]], scheme: str, server: tuple[str, int | None] | None,
                        expected: str) -> None:
    occi = await _occi(_request(headers=headers, scheme=scheme, server=server))
    assert occi.base_url == expected


async def test_path_and_query_reach_the_service() -> None:
    occi = await _occi(_request("POST", "/compute/1", query=b"action=stop"))
    assert (occi.path, occi.query) == ("/compute/1", {"action": "stop"})
    assert (await _occi(_request(path=""))).path == "/"


# ---- responses -------------------------------------------------------------------------------------------

def test_to_response_appends_repeated_headers_and_names_the_server() -> None:
    result = OcciResponse(status=201, headers=[("Content-Type", "text/occi"), ("Category", "a"), ("Category", "b"),
                                               ("Location", "http://h/compute/1")], body=b"OK")
    response = adapter.to_response(result)
    raw = response.raw_headers
    assert response.status_code == 201
    assert response.body == b"OK"
    assert [v for k, v in raw if k == b"category"] == [b"a", b"b"]
    assert [v for k, v in raw if k == b"content-type"] == [b"text/occi"]
    assert (b"server", adapter.SERVER.encode()) in raw
    assert b"OCCI/1.1" in adapter.SERVER.encode() and b"OCCI/1.2" in adapter.SERVER.encode()
    assert (b"accept", adapter.ACCEPT) in raw
    assert [v for k, v in raw if k == b"content-length"] == [b"2"]


def test_to_response_encodes_values_as_utf8() -> None:
    response = adapter.to_response(OcciResponse(status=200, headers=[("X-OCCI-Attribute", 'a="café"')]))
    assert (b"x-occi-attribute", 'a="café"'.encode()) in response.raw_headers


def test_plain_error() -> None:
    response = adapter.plain_error(503, "busy", {"Retry-After": "5"})
    assert (response.status_code, response.body) == (503, b"busy\n")
    assert (b"retry-after", b"5") in response.raw_headers
    assert (b"server", adapter.SERVER.encode()) in response.raw_headers
    assert response.headers["content-type"].startswith("text/plain")

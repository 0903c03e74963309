"""http/adapter.py at the edge: content codings, strict UTF-8 in OCCI fields, request ids."""

from __future__ import annotations

import gzip
import re
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from occipy.errors import BadRequest, OcciError, PayloadTooLarge, UnsupportedMediaType
from occipy.http.adapter import (
    UnsupportedContentEncoding,
    content_codings,
    decode_body,
    decode_header,
    request_id,
)

LIMIT = 1 << 20


@pytest.mark.parametrize("coding", ["gzip", "x-gzip"])
def test_gzip_round_trips(coding: str) -> None:
    data = b"Category: compute\n" * 100
    assert decode_body(gzip.compress(data), [coding], LIMIT) == data


@pytest.mark.parametrize("encode", [zlib.compress, lambda d: zlib.compress(d)[2:-4]], ids=["zlib", "raw"])
def test_deflate_accepts_zlib_and_raw(encode: object) -> None:
    assert callable(encode)
    data = b"x" * 5000 + b"end"
    assert decode_body(encode(data), ["deflate"], LIMIT) == data


def test_codings_are_undone_last_first() -> None:
    data = b"two layers"
    assert decode_body(gzip.compress(zlib.compress(data)), ["deflate", "gzip"], LIMIT) == data


def test_gzip_members_are_concatenated() -> None:
    assert decode_body(gzip.compress(b"ab") + gzip.compress(b"cd"), ["gzip"], LIMIT) == b"abcd"


def test_exactly_the_limit_is_accepted_and_one_more_byte_is_413() -> None:
    assert len(decode_body(gzip.compress(b"a" * LIMIT), ["gzip"], LIMIT)) == LIMIT
    with pytest.raises(PayloadTooLarge, match="once its gzip coding is decoded"):
        decode_body(gzip.compress(b"a" * (LIMIT + 1)), ["gzip"], LIMIT)


def test_a_bomb_is_413_without_decoding_it_all() -> None:
    bomb = gzip.compress(b"\0" * (64 * LIMIT))
    with pytest.raises(PayloadTooLarge):
        decode_body(bomb, ["gzip"], LIMIT)


@pytest.mark.parametrize(("body", "coding", "message"), [
    (b"not compressed at all", "gzip", "cannot be decoded"),
    (gzip.compress(b"hello world")[:-10], "gzip", "truncated"),
    (zlib.compress(b"hello") + b"junk", "deflate", "data after its end"),
    (b"\x00\x01garbage", "deflate", "cannot be decoded"),
])
def test_broken_bodies_are_400(body: bytes, coding: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        decode_body(body, [coding], LIMIT)


@settings(deadline=None)  # a loaded machine is not a failure
@given(st.binary(max_size=2000), st.sampled_from(["gzip", "deflate"]))
def test_arbitrary_bytes_raise_only_occi_errors(body: bytes, coding: str) -> None:
    try:
        decode_body(body, [coding], 4096)
    except OcciError as error:
        assert error.status in (400, 413)


def test_content_codings() -> None:
    assert content_codings([("content-encoding", "gzip")]) == ["gzip"]
    assert content_codings([("content-encoding", "GZip, identity"), ("content-encoding", "deflate")]) == [
        "gzip", "deflate"]
    assert content_codings([("content-type", "text/plain")]) == []
    assert content_codings([("content-encoding", "identity")]) == []


@pytest.mark.parametrize("value", ["br", "zstd", "gzip, compress"])
def test_an_unknown_coding_is_415(value: str) -> None:
    with pytest.raises(UnsupportedContentEncoding) as raised:
        content_codings([("content-encoding", value)])
    assert isinstance(raised.value, UnsupportedMediaType) and raised.value.status == 415
    assert "is not supported" in raised.value.message


@pytest.mark.parametrize(("name", "field"), [
    ("category", "Category"), ("link", "Link"), ("x-occi-attribute", "X-OCCI-Attribute"),
    ("x-occi-location", "X-OCCI-Location"),
])
def test_occi_fields_must_be_utf8(name: str, field: str) -> None:
    with pytest.raises(BadRequest, match=f"the {field} header field is not valid UTF-8: abc\\\\xff"):
        decode_header(b"abc\xff", name)
    assert decode_header("café".encode(), name) == "café"


def test_other_fields_fall_back_to_latin1() -> None:
    assert decode_header(b"caf\xe9", "user-agent") == "café"


def test_the_shown_value_is_bounded() -> None:
    with pytest.raises(BadRequest) as raised:
        decode_header(b"\xff" + b"a" * 10_000, "category")
    assert len(raised.value.message) < 300


@pytest.mark.parametrize("given_id", ["a", "A-z_0.9", "x" * 128])
def test_a_safe_request_id_is_kept(given_id: str) -> None:
    assert request_id([(b"host", b"x"), (b"x-request-id", given_id.encode())]) == given_id


@pytest.mark.parametrize("given_id", [b"", b"x" * 129, b"a b", b"a\tb", b"caf\xc3\xa9", b"{json}", b"a/b"])
def test_an_unsafe_request_id_is_replaced(given_id: bytes) -> None:
    made = request_id([(b"x-request-id", given_id)])
    assert re.fullmatch(r"[0-9a-f]{32}", made)


def test_a_missing_request_id_is_made_fresh_each_time() -> None:
    assert request_id([]) != request_id([])

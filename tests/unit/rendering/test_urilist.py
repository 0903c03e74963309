"""Unit and property tests of occipy.rendering.urilist (text/uri-list, RFC 2483; GFD.229 §8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from occipy.errors import ParseError
from occipy.rendering import urilist

from . import strategies as s

URLS = ["http://example.com/compute/b9ff813e", "http://example.com/compute/c1d2e3f4"]


@pytest.mark.spec("T-19")
def test_render_one_per_line_crlf() -> None:
    assert urilist.render(URLS) == b"http://example.com/compute/b9ff813e\r\nhttp://example.com/compute/c1d2e3f4\r\n"
    assert urilist.render([]) == b""


def test_render_refuses_line_breaks() -> None:
    with pytest.raises(ValueError):
        urilist.render(["http://a/\r\nhttp://b/"])


@pytest.mark.spec("T-19")
def test_parse_skips_comments_and_blanks() -> None:
    data = b"# a comment\r\n\r\nhttp://example.com/compute/b9ff813e\r\n  \nhttp://example.com/compute/c1d2e3f4\n#x\n"
    assert urilist.parse(data) == URLS
    assert urilist.parse(b"") == []


def test_parse_urn_and_utf8() -> None:
    assert urilist.parse("urn:uuid:1\nhttp://example.com/é\n".encode()) == ["urn:uuid:1", "http://example.com/é"]


@pytest.mark.parametrize("data", [
    b"/compute/1\r\n",  # RFC 2483: "the remaining non-comment lines shall be URIs" (absolute)
    b"http://example.com/a b\r\n",
    b"Category: compute\r\n",
    b"http://example.com/\xff\r\n",
])
def test_parse_rejects(data: bytes) -> None:
    with pytest.raises(ParseError):
        urilist.parse(data)


@given(st.lists(s.urls, max_size=6))
def test_round_trip(urls: list[str]) -> None:
    assert urilist.parse(urilist.render(urls)) == urls


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_parse_error(data: bytes) -> None:
    try:
        urilist.parse(data)
    except ParseError:
        pass

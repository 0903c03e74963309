"""Unit and property tests of occipy.rendering.negotiate (http-protocol.md §2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from occipy.errors import NotAcceptable, OcciError, UnsupportedMediaType, UriListNotListing
from occipy.rendering import negotiate
from occipy.rendering.negotiate import JSON, OCCI_JSON, TEXT_OCCI, TEXT_OCCI_PLAIN, TEXT_PLAIN, URI_LIST


@pytest.mark.spec("T-01")
@pytest.mark.parametrize(("accept", "expected"), [
    (None, TEXT_PLAIN),  # GFD.185 §3.6.6: no Accept -> text/plain
    ("", TEXT_PLAIN),
    ("*/*", TEXT_PLAIN),
    ("text/*", TEXT_PLAIN),
    ("text/plain", TEXT_PLAIN),
    ("text/occi", TEXT_OCCI),
    ("TEXT/OCCI", TEXT_OCCI),
    ("application/occi+json", OCCI_JSON),
    ("application/*", OCCI_JSON),
    ("application/json", JSON),  # answered with the alias the client asked for
    ("text/occi+plain", TEXT_OCCI_PLAIN),
    ("text/plain, text/occi+plain", TEXT_PLAIN),
    ("application/json, application/occi+json", OCCI_JSON),
    ("text/occi, text/plain", TEXT_PLAIN),  # equal q: preference order
    ("application/occi+json, text/occi", TEXT_OCCI),
    ("text/plain;q=0.5, application/occi+json", OCCI_JSON),
    ("text/plain; charset=utf-8; q=0.2, text/occi;q=0.3", TEXT_OCCI),
    ("text/plain;q=0, */*", TEXT_OCCI),  # the most specific range decides text/plain's q
    ("text/*;q=0.1, text/occi;q=0.9", TEXT_OCCI),
    ("text/html, */*;q=0.1", TEXT_PLAIN),
    ("garbage, text/occi", TEXT_OCCI),  # unparsable parts are ignored
    ("text/plain;q=abc, text/occi", TEXT_OCCI),
    ("text/plain;q=2, text/occi", TEXT_OCCI),
    ("garbage", TEXT_PLAIN),
    (",,", TEXT_PLAIN),
])
def test_response_type(accept: str | None, expected: str) -> None:
    assert negotiate.response_type(accept, listing=False) == expected
    assert negotiate.response_type(accept, listing=True) == expected


@pytest.mark.spec("T-14")
def test_text_occi_plain_is_a_text_plain_alias() -> None:
    assert negotiate.response_type("text/occi+plain", listing=False) == TEXT_OCCI_PLAIN
    assert negotiate.is_plain(TEXT_OCCI_PLAIN) and negotiate.is_plain(TEXT_PLAIN)
    assert negotiate.is_text(TEXT_OCCI_PLAIN) and not negotiate.is_header(TEXT_OCCI_PLAIN)
    assert negotiate.request_type("text/occi+plain; charset=utf-8") == TEXT_OCCI_PLAIN


@pytest.mark.spec("T-19")
def test_uri_list_only_for_listings() -> None:
    assert negotiate.response_type("text/uri-list", listing=True) == URI_LIST
    assert negotiate.response_type("text/uri-list;q=0.9, text/plain;q=0.1", listing=True) == URI_LIST
    # GFD.229 §8: uri-list as the only acceptable type of a non-listing MUST be 400.
    with pytest.raises(UriListNotListing) as info:
        negotiate.response_type("text/uri-list", listing=False)
    assert info.value.status == 400
    assert negotiate.response_type("text/uri-list;q=0.9, text/plain;q=0.1", listing=False) == TEXT_PLAIN
    assert negotiate.response_type("text/uri-list, */*;q=0.1", listing=True) == URI_LIST
    assert negotiate.response_type("text/uri-list, */*;q=0.1", listing=False) == TEXT_PLAIN


@pytest.mark.parametrize("accept", ["text/html", "image/png, application/xml", "*/*;q=0", "text/plain;q=0"])
def test_nothing_acceptable_is_406(accept: str) -> None:
    with pytest.raises(NotAcceptable) as info:
        negotiate.response_type(accept, listing=True)
    assert info.value.status == 406


@pytest.mark.parametrize(("content_type", "expected"), [
    (None, None),
    ("", None),
    ("application/x-www-form-urlencoded", None),  # curl's default: fall back to headers, then body
    ("text/plain", TEXT_PLAIN),
    ("text/plain; charset=ISO-8859-1", TEXT_PLAIN),
    ("Text/Plain", TEXT_PLAIN),
    ("text/occi+plain", TEXT_OCCI_PLAIN),
    ("text/occi; charset=utf-8", TEXT_OCCI),
    ("application/occi+json", OCCI_JSON),
    ("application/json", JSON),
    ("text/uri-list", URI_LIST),
])
def test_request_type(content_type: str | None, expected: str | None) -> None:
    assert negotiate.request_type(content_type) == expected


@pytest.mark.parametrize("content_type", ["text/html", "application/xml", "multipart/form-data; boundary=x",
                                          "garbage", "text/"])
def test_unknown_request_type_is_415(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        negotiate.request_type(content_type)
    assert info.value.status == 415


def test_helpers() -> None:
    assert negotiate.is_json(OCCI_JSON) and negotiate.is_json(JSON) and not negotiate.is_json(TEXT_PLAIN)
    assert negotiate.is_header(TEXT_OCCI) and negotiate.is_uri_list(URI_LIST)
    assert not negotiate.is_text(None)
    assert set(negotiate.SUPPORTED) == {TEXT_PLAIN, TEXT_OCCI_PLAIN, TEXT_OCCI, OCCI_JSON, JSON, URI_LIST}
    assert all(t in negotiate.ACCEPT_VALUE for t in negotiate.SUPPORTED)


@given(st.text(max_size=80), st.booleans())
def test_arbitrary_accept_only_occi_errors(accept: str, listing: bool) -> None:
    try:
        assert negotiate.response_type(accept, listing=listing) in negotiate.SUPPORTED
    except (NotAcceptable, UriListNotListing):
        pass


@given(st.text(max_size=80))
def test_arbitrary_content_type_only_415(content_type: str) -> None:
    try:
        result = negotiate.request_type(content_type)
    except OcciError as error:
        assert isinstance(error, UnsupportedMediaType)
    else:
        assert result is None or result in negotiate.SUPPORTED

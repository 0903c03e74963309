"""Content negotiation: Accept -> response media type, Content-Type -> request parser (GFD.223 §5).

Implements http-protocol.md §2: q-values (RFC 7231 §5.3.2), text/plain as the default, aliases
answered as asked, text/uri-list for listings only. Pure functions over header strings; imports
only `occipy.errors`.
"""

from __future__ import annotations

import functools
from typing import Final

from occipy.errors import NotAcceptable, UnsupportedMediaType, UriListNotListing

TEXT_PLAIN: Final = "text/plain"
TEXT_OCCI_PLAIN: Final = "text/occi+plain"
TEXT_OCCI: Final = "text/occi"
URI_LIST: Final = "text/uri-list"
OCCI_JSON: Final = "application/occi+json"
JSON: Final = "application/json"
FORM: Final = "application/x-www-form-urlencoded"

# Every media type we produce and parse, in the order of preference among equal q-values
# (http-protocol.md §2 [decision]: text/plain, text/occi, application/occi+json, text/uri-list).
SUPPORTED: Final = (TEXT_PLAIN, TEXT_OCCI_PLAIN, TEXT_OCCI, OCCI_JSON, JSON, URI_LIST)
# The value of the response `Accept` header (GFD.223 §5.2: the server SHOULD list them).
ACCEPT_VALUE: Final = f"{TEXT_PLAIN}, {TEXT_OCCI}, {TEXT_OCCI_PLAIN}, {OCCI_JSON}, {JSON}, {URI_LIST}"

# Aliases are only answered when the client names them (never chosen through a wildcard).
_ALIASES: Final = {TEXT_OCCI_PLAIN: TEXT_PLAIN, JSON: OCCI_JSON}
_RANK: Final = {TEXT_PLAIN: 0, TEXT_OCCI_PLAIN: 0, TEXT_OCCI: 1, OCCI_JSON: 2, JSON: 2, URI_LIST: 3}


def is_text(media_type: str | None) -> bool:
    """text/plain, text/occi+plain or text/occi: the GFD.229 field grammar."""
    return media_type in (TEXT_PLAIN, TEXT_OCCI_PLAIN, TEXT_OCCI)


def is_header(media_type: str | None) -> bool:
    """text/occi: the fields travel in HTTP headers and the body is `OK` (GFD.229 §7)."""
    return media_type == TEXT_OCCI


def is_plain(media_type: str | None) -> bool:
    """text/plain or text/occi+plain: the fields are body lines (GFD.229 §6)."""
    return media_type in (TEXT_PLAIN, TEXT_OCCI_PLAIN)


def is_json(media_type: str | None) -> bool:
    """application/occi+json or its alias application/json (GFD.226 §3)."""
    return media_type in (OCCI_JSON, JSON)


def is_uri_list(media_type: str | None) -> bool:
    return media_type == URI_LIST


def _media_type(text: str) -> tuple[str, str] | None:
    """`type/subtype` of a media type or range, lower-cased; None when malformed."""
    main = text.split(";", 1)[0].strip().lower()
    kind, slash, sub = main.partition("/")
    if not slash or not kind or not sub or any(ch.isspace() for ch in main) or "/" in sub:
        return None
    return kind, sub


def _accept_ranges(accept: str) -> list[tuple[str, str, float]]:
    """(type, subtype, q) per parsable media range; unparsable ranges are dropped (leniency)."""
    ranges: list[tuple[str, str, float]] = []
    for item in accept.split(","):
        if not item.strip():
            continue
        media = _media_type(item)
        if media is None or (media[0] == "*" and media[1] != "*"):
            continue
        q = 1.0
        bad = False
        for param in item.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() != "q":
                continue
            try:
                q = float(value.strip())
            except ValueError:
                bad = True
                break
            # RFC 7231 §5.3.1: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
            if not 0.0 <= q <= 1.0:
                bad = True
            break  # parameters after q are accept-ext (RFC 7231 §5.3.2)
        if not bad:
            ranges.append((media[0], media[1], q))
    return ranges


def _quality(candidate: str, ranges: list[tuple[str, str, float]]) -> float:
    """The q of `candidate` from its most specific matching range (RFC 7231 §5.3.2); 0 if none."""
    kind, sub = candidate.split("/")
    best_specificity, q = -1, 0.0
    for range_kind, range_sub, range_q in ranges:
        if range_kind == kind and range_sub == sub:
            specificity = 2
        elif candidate in _ALIASES:
            continue  # an alias is only chosen when named exactly
        elif range_kind == kind and range_sub == "*":
            specificity = 1
        elif range_kind == "*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, q = specificity, range_q
        elif specificity == best_specificity:
            q = max(q, range_q)
    return q


def response_type(accept: str | None, *, listing: bool) -> str:
    """The media type of the response (http-protocol.md §2).

    No Accept, `*/*` or an Accept with nothing parsable -> text/plain ("the server MUST use
    text/plain", GFD.185 §3.6.6). text/uri-list only for listings: when it is the only acceptable
    type of a non-listing -> UriListNotListing (400, GFD.229 §8). Nothing acceptable -> NotAcceptable.
    """
    if accept is None or not accept.strip():
        return TEXT_PLAIN
    ranges = _accept_ranges(accept)
    if not ranges:
        return TEXT_PLAIN
    scored = [(candidate, _quality(candidate, ranges)) for candidate in SUPPORTED]
    acceptable = [(candidate, q) for candidate, q in scored if q > 0]
    usable = [(candidate, q) for candidate, q in acceptable if listing or candidate != URI_LIST]
    if not usable:
        if acceptable:
            # GFD.229 §8: requests asking only for text/uri-list that are not listings "MUST" get 400.
            raise UriListNotListing("text/uri-list can only render listings of locations")
        raise NotAcceptable(f"none of the acceptable media types can be produced (Accept: {accept[:200]}); "
                            f"supported: {ACCEPT_VALUE}")
    # Highest q first; among equal q the preference order; an exactly named alias before its
    # canonical type only if the canonical one was not named as well (it scores lower then).
    best_q = max(q for _, q in usable)
    top = [candidate for candidate, q in usable if q == best_q]
    top.sort(key=lambda candidate: (_RANK[candidate], candidate in _ALIASES))
    return top[0]


@functools.lru_cache(maxsize=256)  # a few Content-Type values, sent again and again
def request_type(content_type: str | None) -> str | None:
    """The media type to parse a request payload with (http-protocol.md §2, "Request payloads").

    Parameters such as charset are ignored. Absent, empty or application/x-www-form-urlencoded
    (curl's default) -> None: the caller reads OCCI headers, then the body as text/plain.
    Anything else unknown -> UnsupportedMediaType (415).
    """
    if content_type is None or not content_type.strip():
        return None
    media = _media_type(content_type)
    if media is None:
        raise UnsupportedMediaType(f"malformed Content-Type {content_type[:200]!r}")
    media_type = f"{media[0]}/{media[1]}"
    if media_type == FORM:
        return None
    if media_type not in SUPPORTED:
        raise UnsupportedMediaType(f"cannot parse {media_type}; supported: {ACCEPT_VALUE}")
    return media_type


__all__ = [
    "ACCEPT_VALUE", "FORM", "JSON", "OCCI_JSON", "SUPPORTED", "TEXT_OCCI", "TEXT_OCCI_PLAIN", "TEXT_PLAIN",
    "URI_LIST", "is_header", "is_json", "is_plain", "is_text", "is_uri_list", "request_type", "response_type",
]

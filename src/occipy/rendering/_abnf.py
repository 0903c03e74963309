"""Pieces of the GFD.229 grammar (OCCI 1.2 text rendering) as regexes and small lexers.

Each regex quotes the ABNF rule it implements; deliberate deviations sit beside their code and
follow the errata table of text-rendering.md §4.1. `split_outside_quotes`, `quote` and `unquote`
are the tokeniser of text-rendering.md §3. Imports only `occipy.errors`; no I/O.
"""

from __future__ import annotations

import re
from typing import Final

from occipy.errors import ParseError

# ---- RFC 7230 building blocks --------------------------------------------------------------

# RFC 7230 §3.2.6: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#                          "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA ;  token = 1*tchar
# Written with explicit ASCII classes: Python's `\d` and `\w` also match non-ASCII digits/letters.
TOKEN_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")

# RFC 7230 §3.2.6: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
#                  quoted-pair   = "\" ( HTAB / SP / VCHAR / obs-text )
# Deviation: any character may follow "\" (the escape policy of text-rendering.md §3 decodes
# \n, \r and \t to control characters, everything else to itself).
QUOTED_STRING_RE: Final = re.compile(r'"(?:[^"\\]|\\.)*"\Z', re.DOTALL)

# RFC 7230 §3.2: field-name = token  (header names and text/plain line names).
FIELD_NAME_RE: Final = TOKEN_RE

# ---- GFD.229 §4 ----------------------------------------------------------------------------

# term = ( ALPHA | DIGIT ) *( ALPHA | DIGIT | "-" | "_" | "." )
TERM_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")

# attribute-name = ( ALPHA | DIGIT ) *( ALPHA | DIGIT | "-" | "_" | "." )   (X-OCCI-Attribute)
# attribute-name = term                                                      (Category, Link)
ATTRIBUTE_NAME_RE: Final = TERM_RE
# link-attribute = attribute-name "=" ( token | quoted-string )
# Link attribute values are read like X-OCCI-Attribute values (numbers and booleans are tokens).

# class = "action" | "mixin" | "kind"
CLASSES: Final = frozenset({"action", "mixin", "kind"})

# attribute-def      = attribute-name
#                    | attribute-name "{" attribute-property *( 1*SP attribute-property ) "}"
# attribute-list     = attribute-def | attribute-def *( 1*SP attribute-def )
# Matched repeatedly from the current position (text-rendering.md §10 step 3).
ATTRIBUTE_DEF_RE: Final = re.compile(r"\s*([^\s{}]+)(?:\{([^{}]*)\})?")

# attribute-property = "immutable" | "required"
ATTRIBUTE_PROPERTIES: Final = frozenset({"immutable", "required"})
# Deviation (text-rendering.md §4.1: "Ignore unknown properties on input"): the property names of
# OCCI 1.2 Core attribute definitions are ignored, since text has no slot for them. Any other word
# is refused, because the pOCCI parser rejects it (fixture text-error-attrdef.txt).
IGNORED_ATTRIBUTE_PROPERTIES: Final = frozenset({"mutable", "type", "pattern", "default", "description"})

# int   = *DIGIT            float = *DIGIT "." *DIGIT
# Deviation (text-rendering.md §4.1): a sign is accepted, at least one digit is required, and a
# float may carry an exponent on input.
INT_RE: Final = re.compile(r"-?[0-9]+\Z")
FLOAT_RE: Final = re.compile(r"-?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")

# bool = ("true" | "false")
BOOLEANS: Final = {"true": True, "false": False}

# action-uri = URI "?" "action=" term   (an ActionLink is recognised by this marker)
ACTION_MARKER: Final = "?action="

# ---- RFC 3986 ------------------------------------------------------------------------------

# URI-reference = URI / relative-ref, built from
#   unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
#   reserved   = gen-delims / sub-delims = ":" / "/" / "?" / "#" / "[" / "]" / "@" /
#                "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="
#   pct-encoded = "%" HEXDIG HEXDIG
# GFD.229: location-value = URI-reference ; link-instance = URI-reference ; "<" URI-reference ">"
# Deviation: non-ASCII characters (RFC 3987 IRIs) are accepted; whitespace never is.
URI_REFERENCE_RE: Final = re.compile(
    r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2}|[^\x00-\x7f\s])+\Z"
)
# URI = scheme ":" hier-part [ "?" query ] [ "#" fragment ];  scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
URI_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def is_uri_reference(text: str) -> bool:
    """Whether `text` is a non-empty RFC 3986 URI-reference (IRIs tolerated)."""
    return bool(URI_REFERENCE_RE.match(text))


def is_absolute_uri(text: str) -> bool:
    """Whether `text` is a URI-reference that starts with a scheme (RFC 3986 §4.3)."""
    return is_uri_reference(text) and bool(URI_SCHEME_RE.match(text))


def check_type_id(type_id: str) -> str:
    """Return `type_id` if it is `scheme term` (GFD.229: type-identifier = scheme term), else raise."""
    cut = type_id.rfind("#")
    if cut <= 0 or not TERM_RE.match(type_id[cut + 1 :]) or not is_uri_reference(type_id[: cut + 1]):
        raise ParseError(f"not a type identifier (scheme#term): {type_id!r}")
    return type_id


def split_type_ids(text: str) -> list[str]:
    """A space-separated list of type identifiers (resource-type, link-type, action-list, rel).

    Deviation: RFC 3986 Appendix C says whitespace inserted into a URI "should be ignored when the
    URI is extracted". Servers captured by pOCCI send `rel="http: //schemas.ogf.org/...#os_tpl"`
    (accepted by pOCCI), so a piece without a term after its '#' is joined to the next piece.
    """
    ids: list[str] = []
    pending = ""
    for piece in text.split():
        pending += piece
        cut = pending.rfind("#")
        if cut >= 0 and cut < len(pending) - 1:
            ids.append(check_type_id(pending))
            pending = ""
    if pending:
        raise ParseError(f"not a type identifier (scheme#term): {pending[:200]!r}")
    return ids


def check_scheme(scheme: str) -> str:
    """Return `scheme`, a URI ending in '#' (text-rendering.md §10 step 2), else raise.

    Whitespace inside is dropped (RFC 3986 Appendix C; see `split_type_ids`).
    """
    scheme = "".join(scheme.split())
    if len(scheme) < 2 or not scheme.endswith("#") or not is_uri_reference(scheme):
        raise ParseError(f"scheme must be a URI ending with '#': {scheme!r}")
    return scheme


# ---- text-rendering.md §3: the tokeniser ---------------------------------------------------


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split `text` at `sep` outside quoted-strings and outside a leading `<...>`; drop empty parts.

    RFC 7230 §7 allows empty list elements, so `a,,b` gives two parts. An unterminated
    quoted-string is a ParseError: a naive split on ',' or ';' would silently cut a title such as
    "How's your quotes escaping? \\", occi.compute.memory=1.0" (OGF 1.1 test script).
    """
    if "<" not in text:
        return _split_plain(text, sep)
    return _split_scanning(text, sep)


def _split_plain(text: str, sep: str) -> list[str]:
    """`split_outside_quotes` for text without '<' (most header values): jumps between quotes and
    separators with str.find instead of looking at every character."""
    out: list[str] = []
    start = pos = 0
    while True:
        quote = text.find('"', pos)
        cut = text.find(sep, pos)
        if cut != -1 and (quote == -1 or cut < quote):
            out.append(text[start:cut].strip())
            start = pos = cut + 1
            continue
        if quote == -1:
            break
        pos = quote + 1
        while True:  # the closing quote: one not preceded by an odd run of backslashes
            end = text.find('"', pos)
            if end == -1:
                raise ParseError(f"unterminated quoted-string in {text[:200]!r}")
            run = end
            while run > pos and text[run - 1] == "\\":
                run -= 1
            pos = end + 1
            if (end - run) % 2 == 0:
                break
    out.append(text[start:].strip())
    return [part for part in out if part]


def _split_scanning(text: str, sep: str) -> list[str]:
    """`split_outside_quotes`, one character at a time (a '<' may open a Link URI)."""
    out: list[str] = []
    buf: list[str] = []
    in_quote = escaped = in_angle = started = False
    for ch in text:
        if in_quote:
            buf.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = started = True
            buf.append(ch)
        elif ch == "<" and not started:
            # '<' opening a Link URI: ',' and ';' are legal inside a URI-reference.
            in_angle = started = True
            buf.append(ch)
        elif ch == ">" and in_angle:
            in_angle = False
            buf.append(ch)
        elif ch == sep and not in_angle:
            out.append("".join(buf).strip())
            buf = []
            started = False
        else:
            buf.append(ch)
            if not started and not ch.isspace():
                started = True
    if in_quote:
        raise ParseError(f"unterminated quoted-string in {text[:200]!r}")
    out.append("".join(buf).strip())
    return [part for part in out if part]


_UNESCAPES: Final = {"n": "\n", "r": "\r", "t": "\t"}


def unquote(text: str) -> str:
    """Decode a complete quoted-string (quotes included); ParseError if it is not one."""
    if not QUOTED_STRING_RE.match(text):
        raise ParseError(f"not a quoted-string: {text[:200]!r}")
    body = text[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_UNESCAPES.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def quote(text: str) -> str:
    """Encode `text` as a quoted-string: escape `\\` and `"`; CR, LF, TAB as `\\r`, `\\n`, `\\t`.

    CR, LF and TAB cannot appear raw in a header or on a text/plain line (text-rendering.md §3).
    """
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    text = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return '"' + text + '"'

"""ASGI request <-> OcciRequest, OcciResponse -> Starlette Response: the only place that sees both.

Limits are enforced here, before the service sees anything: body size (413, after decoding a
gzip or deflate Content-Encoding too), number and size of header fields (400). Header values are
decoded as UTF-8, falling back to ISO-8859-1 (text-rendering.md §3), except the OCCI fields, which
must be UTF-8 (400 naming the field). `http/protocol.py` bounds what arrives before this runs.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Final
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from occipy.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from occipy.model.ids import random_bytes
from occipy.rendering import negotiate
from occipy.service.messages import OcciRequest, OcciResponse

SERVER = "occipy/0.1.0 OCCI/1.2 OCCI/1.1"
# GFD.223 §5.2: the server SHOULD list the media types it supports in `Accept`.
ACCEPT = negotiate.ACCEPT_VALUE.encode()


# The OCCI fields carry the payload of text/occi (GFD.229 §5): a value that is not UTF-8 there is
# refused, where the ISO-8859-1 fallback would read it silently as other characters (issue 8).
OCCI_FIELDS: Final = {"category": "Category", "link": "Link", "x-occi-attribute": "X-OCCI-Attribute",
                      "x-occi-location": "X-OCCI-Location"}
# X-Request-ID from the client is kept when it is a bounded token of safe characters (it goes into
# log lines and back into the response); otherwise the server makes one.
REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
# A Host header with one of these is not used for the base URL (the server's address is).
_ODD_HOST: Final = re.compile(r'[/\\@ \t"<>]')
# Content codings of request bodies that are decoded (RFC 9110 §8.4.1); "identity" is none.
CODINGS: Final = ("gzip", "x-gzip", "deflate")


class UnsupportedContentEncoding(UnsupportedMediaType):
    """415 for a Content-Encoding we do not decode (RFC 9110 §15.5.16); answered with Accept-Encoding."""


def decode_header(raw: bytes, name: str = "") -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        field = OCCI_FIELDS.get(name)
        if field is not None:
            shown = raw[:200].decode("utf-8", "backslashreplace")
            raise BadRequest(f"the {field} header field is not valid UTF-8: {shown}") from None
        return raw.decode("latin-1")


def request_id(raw_headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID when it is a safe token, else a new one (128 random bits, hex: the
    shape of a uuid4's hex, from the pool of `model.ids`)."""
    for name, value in raw_headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if REQUEST_ID.fullmatch(text):
                return text
            break
    return random_bytes(16).hex()


def content_codings(headers: Sequence[tuple[str, str]]) -> list[str]:
    """The codings of Content-Encoding in the order applied (415 for one we do not decode)."""
    codings: list[str] = []
    for name, value in headers:
        if name != "content-encoding":
            continue
        for item in value.split(","):
            coding = item.strip().lower()
            if coding in ("", "identity"):
                continue
            if coding not in CODINGS:
                raise UnsupportedContentEncoding(
                    f"Content-Encoding {item.strip()[:40]} is not supported: send the body as it is, or with "
                    "gzip or deflate")
            codings.append(coding)
    return codings


def decode_body(body: bytes, codings: Sequence[str], max_body: int) -> bytes:
    """Undo the content codings, last applied first; the decoded size counts against `max_body` (413)."""
    for coding in reversed(codings):
        body = _inflate(body, coding, max_body)
    return body


def _inflate(data: bytes, coding: str, limit: int) -> bytes:
    gzip = coding != "deflate"
    # RFC 9110 §8.4.1.2: "deflate" is the zlib format; some clients send raw deflate, accepted too.
    wbits = 31 if gzip else 15
    decoder = zlib.decompressobj(wbits)
    out = bytearray()
    pending = data
    while True:
        try:
            # Never more than the limit (and one byte to notice it) out of a bomb.
            piece = decoder.decompress(pending, limit + 1 - len(out))
        except zlib.error as error:
            if wbits == 15 and not out:
                wbits = -15
                decoder, pending = zlib.decompressobj(wbits), data
                continue
            raise BadRequest(f"the {coding} request body cannot be decoded: {error}") from None
        out += piece
        if len(out) > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes once its {coding} coding is decoded")
        if decoder.eof:
            rest = decoder.unused_data
            if not rest:
                return bytes(out)
            if not gzip:
                raise BadRequest(f"the {coding} request body has data after its end")
            decoder, pending = zlib.decompressobj(wbits), rest  # gzip: another member follows
            continue
        pending = decoder.unconsumed_tail
        if not pending and not piece:
            raise BadRequest(f"the {coding} request body is truncated")


def parse_query(raw: bytes) -> dict[str, str]:
    """`a=1&b=2` or `a=1;b=2` (http-protocol.md §9 accepts both separators); last value wins."""
    result: dict[str, str] = {}
    text = raw.decode("latin-1")
    for part in text.replace(";", "&").split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        result[unquote_plus(key)] = unquote_plus(value)
    return result


async def to_occi(request: Request, *, max_body: int, max_headers: int, request_id: str = "") -> OcciRequest:
    """The whole request: its head (`to_occi_head`), then its body (`read_body`)."""
    occi_request = to_occi_head(request, max_body=max_body, max_headers=max_headers, request_id=request_id)
    await read_body(request, occi_request, max_body=max_body)
    return occi_request


def to_occi_head(request: Request, *, max_body: int, max_headers: int, request_id: str = "") -> OcciRequest:
    """The request without its body (`body` is b""): everything the service needs to authenticate it.

    The header limits are checked here (400, 413 on a declared size, 415 on a content coding we
    do not decode): none of them needs the body, so none of them reads it (issue 8: the body is
    read only once the service has admitted the request, `Service.admit`).
    """
    scope = request.scope
    raw_headers = scope["headers"]
    if len(raw_headers) > max_headers:
        raise BadRequest(f"too many header fields ({len(raw_headers)}; at most {max_headers})")
    # One pass: the decoded fields, their size, and the first Content-Length and Host (what the
    # checks need).
    headers: list[tuple[str, str]] = []
    declared = host = None
    chunked = False
    header_bytes = 0
    for raw_name, raw_value in raw_headers:
        header_bytes += len(raw_name) + len(raw_value) + 4
        key = raw_name.decode("latin-1").lower()
        try:  # `decode_header`'s first step inline (every field of every request); it does the rest
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            value = decode_header(raw_value, key)
        headers.append((key, value))
        if key == "content-length":
            declared = value if declared is None else declared
        elif key == "host":
            host = value if host is None else host
        elif key == "transfer-encoding":
            chunked = True
    # text/occi carries the payload in headers: they count against the same limit as a body.
    if header_bytes > max_body:
        raise PayloadTooLarge(f"the header section is larger than {max_body} bytes")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise PayloadTooLarge(f"the body is larger than {max_body} bytes")
    if _announces_body(scope["method"], declared, chunked):
        content_codings(headers)  # 415 now, before anything is read
    scheme = scope.get("scheme", "http")
    if not host or _ODD_HOST.search(host):
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] in (None, 80, 443) else f"{server[0]}:{server[1]}"
    path = scope["path"] or "/"
    extensions = scope.get("extensions") or {}
    tls = extensions.get("tls") or {}
    ours = extensions.get("occipy") or {}
    client = scope.get("client")
    shutdown = ours.get("shutdown")  # issue 12: set by http/protocol.py when the server shuts down
    return OcciRequest(
        method=scope["method"],
        path=path,
        query=parse_query(scope.get("query_string", b"")),
        headers=headers,
        body=b"",
        base_url=f"{scheme}://{host}",
        request_id=request_id,
        client_subject=tls.get("client_cert_name"),
        client_issuer=ours.get("client_cert_issuer"),
        # uvicorn puts X-Forwarded-For here only from forwarded_allow_ips (server.uvicorn_config)
        peer=str(client[0]) if client else None,
        shutdown=shutdown if isinstance(shutdown, asyncio.Event) else None,
    )


def _has_body(method: str, headers: Sequence[tuple[str, str]]) -> bool:
    if method in _BODY_METHODS:
        return True  # before the header scans below: every write is one of these
    declared = next((v for k, v in headers if k == "content-length"), None)
    return _announces_body(method, declared, any(k == "transfer-encoding" for k, _ in headers))


_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


def _announces_body(method: str, declared: str | None, chunked: bool) -> bool:
    # GETs (most requests) skip the receive loop unless they announce a body.
    return method in _BODY_METHODS or declared not in (None, "0") or chunked


async def read_body(request: Request, occi_request: OcciRequest, *, max_body: int) -> None:
    """Read the body of an admitted request into `occi_request.body`, decoded, within `max_body` (413)."""
    headers = occi_request.headers
    if not _has_body(occi_request.method, headers):
        return
    codings = content_codings(headers)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise PayloadTooLarge(f"the body is larger than {max_body} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if codings and body:
        body = decode_body(body, codings, max_body)
    occi_request.body = body


def to_response(result: OcciResponse, request_id: str = "", server: str | bytes = SERVER) -> Response:
    """`server` is the Server header: occipy's product tokens and the profiles it claims.

    A result with a `stream` (issue 12: the event stream) is sent as it comes, chunked.
    """
    raw = [(b"server", server if isinstance(server, bytes) else server.encode()), (b"accept", ACCEPT)]
    if request_id:
        raw.append((b"x-request-id", request_id.encode()))
    # text/occi repeats fields: a list, never a dict.
    for name, value in result.headers:
        raw.append((name.lower().encode("latin-1"), value.encode("utf-8")))
    if result.stream is not None:
        response: Response = StreamingResponse(_streamed(result.body, result.stream), status_code=result.status)
        response.raw_headers = raw
        return response
    return _Answer(result.body, result.status, raw)


class _Answer(Response):
    """A Starlette Response made from a body and header fields as they are sent: `Response`'s
    constructor renders the body and builds its fields from a mapping, which then had to be
    filtered and extended (the body here is bytes already, with no Content-Type of its own)."""

    def __init__(self, body: bytes, status: int, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        if not (status < 200 or status in (204, 304)):  # as Starlette's Response does
            raw_headers.insert(0, (b"content-length", str(len(body)).encode()))
        self.raw_headers = raw_headers


async def _streamed(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`first`, then every piece of `rest`; `rest` is closed however the response ends (its cleanup
    runs when the client goes away, too)."""
    try:
        if first:
            yield first
        async for piece in rest:
            yield piece
    finally:
        closer = getattr(rest, "aclose", None)
        if closer is not None:
            await closer()


def plain_error(status: int, message: str, headers: Mapping[str, str] | None = None,
                request_id: str = "", server: str = SERVER) -> Response:
    response = Response(message + "\n", status_code=status, media_type="text/plain")
    response.raw_headers.append((b"server", server.encode()))
    if request_id:
        response.raw_headers.append((b"x-request-id", request_id.encode()))
    for name, value in (headers or {}).items():
        response.raw_headers.append((name.lower().encode(), value.encode()))
    return response

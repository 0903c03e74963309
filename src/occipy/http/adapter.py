"""ASGI request <-> OcciRequest, OcciResponse -> Starlette Response: the only place that sees both.

Limits are enforced here, before the service sees anything: body size (413), number and size of
header fields (400). Header values are decoded as UTF-8, falling back to ISO-8859-1
(text-rendering.md §3).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import Response

from occipy.errors import BadRequest, PayloadTooLarge
from occipy.rendering import negotiate
from occipy.service.messages import OcciRequest, OcciResponse

SERVER = "occipy/0.1.0 OCCI/1.2 OCCI/1.1"
# GFD.223 §5.2: the server SHOULD list the media types it supports in `Accept`.
ACCEPT = negotiate.ACCEPT_VALUE.encode()


def decode_header(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


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


async def to_occi(request: Request, *, max_body: int, max_headers: int) -> OcciRequest:
    scope = request.scope
    raw_headers = scope["headers"]
    if len(raw_headers) > max_headers:
        raise BadRequest(f"too many header fields ({len(raw_headers)}; at most {max_headers})")
    # text/occi carries the payload in headers: they count against the same limit as a body.
    header_bytes = sum(len(name) + len(value) + 4 for name, value in raw_headers)
    if header_bytes > max_body:
        raise PayloadTooLarge(f"the header section is larger than {max_body} bytes")
    headers = [(name.decode("latin-1").lower(), decode_header(value)) for name, value in raw_headers]
    declared = next((v for k, v in headers if k == "content-length"), None)
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise PayloadTooLarge(f"the body is larger than {max_body} bytes")
    chunks: list[bytes] = []
    size = 0
    # GETs (most requests) skip the receive loop unless they announce a body.
    has_body = (scope["method"] in ("POST", "PUT", "PATCH") or declared not in (None, "0")
                or any(k == "transfer-encoding" for k, _ in headers))
    if has_body:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise PayloadTooLarge(f"the body is larger than {max_body} bytes")
            chunks.append(chunk)
    host = next((v for k, v in headers if k == "host"), None)
    scheme = scope.get("scheme", "http")
    if not host or any(c in host for c in "/\\@ \t\"<>"):
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] in (None, 80, 443) else f"{server[0]}:{server[1]}"
    path = scope["path"] or "/"
    return OcciRequest(
        method=scope["method"],
        path=path,
        query=parse_query(scope.get("query_string", b"")),
        headers=headers,
        body=b"".join(chunks),
        base_url=f"{scheme}://{host}",
    )


def to_response(result: OcciResponse) -> Response:
    response = Response(result.body, status_code=result.status)
    raw = response.raw_headers
    # text/occi repeats fields: append, never dict(); Starlette set content-length already.
    raw[:] = [(k, v) for k, v in raw if k != b"content-type"]
    raw.append((b"server", SERVER.encode()))
    raw.append((b"accept", ACCEPT))
    for name, value in result.headers:
        raw.append((name.lower().encode("latin-1"), value.encode("utf-8")))
    return response


def plain_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    response = Response(message + "\n", status_code=status, media_type="text/plain")
    response.raw_headers.append((b"server", SERVER.encode()))
    for name, value in (headers or {}).items():
        response.raw_headers.append((name.lower().encode(), value.encode()))
    return response

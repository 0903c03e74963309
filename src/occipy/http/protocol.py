"""The edge: uvicorn's httptools protocol, bounded in what a client can make the server hold.

`EdgeProtocol` subclasses uvicorn's `HttpToolsProtocol` (passed to `uvicorn.Config(http=...)` by
`server.py`) and answers before anything reaches the app: 431 when the header section grows past
`max_header_bytes` while it is read, 408 when the headers or a body arrive too slowly, 503 beyond
`max_connections`. It also puts the TLS client certificate into the ASGI scope (the ASGI TLS
extension). Imports uvicorn, httptools, cryptography and the standard library.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import httptools
from cryptography import x509
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.server import ServerState

from occipy.http import adapter
from occipy.model.ids import random_bytes

log = logging.getLogger("occipy.http.edge")

SERVER: Final = adapter.SERVER.encode()
# The request line's method, spaces and version, and the blank line, are not in the callbacks'
# counts; optional whitespace around header values is not either. Raw bytes fed to the parser
# while the head is incomplete may exceed the counted size by this much before a 431.
RAW_SLACK: Final = 1024
# After an answer the edge gives (or an app answer sent before the body was read), the edge reads
# and drops what the client still sends for this long before it closes, so that the client reads
# the answer instead of a connection reset (nginx's "lingering close").
LINGER: Final = 2.0
# ssl.SSLObject.version() -> the 16-bit protocol version the ASGI TLS extension wants.
TLS_VERSIONS: Final = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """What one connection may cost (docs/security.md, "The edge: limits and timeouts")."""

    max_header_bytes: int = 64 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    body_total_timeout: float = 120.0
    max_connections: int = 1000
    linger: float = LINGER
    server_cert_pem: str | None = None  # the ASGI TLS extension's `server_cert`


class _HeadTooLarge(Exception):
    """Raised inside a parser callback; httptools turns it into HttpParserCallbackError."""


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """A verified TLS client certificate, as RFC 4514 DNs and PEM."""

    subject: str
    issuer: str
    pem: str


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> PeerCertificate | None:
    """The client certificate the TLS handshake verified, or None.

    With `CERT_OPTIONAL` or `CERT_REQUIRED` a certificate that does not verify against the CA
    bundle fails the handshake, so a certificate present here is a verified one; with `CERT_NONE`
    the server never asks for one and this is None.
    """
    if ssl_object is None or ssl_object.context.verify_mode == ssl.CERT_NONE:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    certificate = x509.load_der_x509_certificate(der)
    return PeerCertificate(subject=certificate.subject.rfc4514_string(),
                           issuer=certificate.issuer.rfc4514_string(),
                           pem=ssl.DER_cert_to_PEM_cert(der))


class _Throttle:
    """At most one log line a second for an event that a flood repeats; the line counts the rest."""

    def __init__(self) -> None:
        self.last = 0.0
        self.hidden = 0

    def allow(self) -> int | None:
        now = time.monotonic()
        if now - self.last < 1.0:
            self.hidden += 1
            return None
        hidden, self.hidden, self.last = self.hidden, 0, now
        return hidden


_REFUSED_CONNECTIONS = _Throttle()


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded head, read timeouts, a connection cap and TLS info.

    States of one connection: reading a head (`_in_head`: request line and header fields, bounded
    by `max_header_bytes` and `header_timeout`), reading a body (`_in_body`: bounded by
    `body_timeout` between pieces and `body_total_timeout` in all), waiting for the app or for
    the next request (uvicorn's keep-alive timeout), and lingering (`_lingering`: an answer was
    given, what arrives is dropped, the connection closes after `linger` seconds).

    It uses the base class's internals (parser callbacks, `cycle`, `flow`, `pipeline`,
    `_unset_keepalive_if_required`) as uvicorn 0.54 has them; tests/unit/http/test_protocol.py
    drives them and is the check to run after a uvicorn upgrade.
    """

    limits: ClassVar[EdgeLimits] = EdgeLimits()

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._in_head = True
        self._head_began: float | None = None  # None between requests: no byte of the next one yet
        self._head_raw = 0  # bytes fed to the parser while this head was incomplete (a lower bound)
        self._head_size = 0  # request target + header fields as the callbacks saw them (exact)
        self._head_timer: TimerHandle | None = None
        self._in_body = False
        self._body_began = 0.0
        self._body_last = 0.0
        self._body_timer: TimerHandle | None = None
        self._lingering = False
        self._linger_timer: TimerHandle | None = None
        self._extensions: dict[str, dict[object, object]] | None = None
        # issue 12: set when the server shuts down, so that a streaming answer (GET /-/events)
        # ends cleanly instead of holding the shutdown (uvicorn waits for open responses first).
        self._shutdown: asyncio.Event | None = None

    # ---- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            # Not added to the server's connections: the cap counts served connections only.
            self.transport = transport
            self.client = get_remote_addr(transport)
            hidden = _REFUSED_CONNECTIONS.allow()
            if hidden is not None:
                more = f" ({hidden} more since the last line)" if hidden else ""
                log.warning("connection from %s refused with 503: %d connections open (max_connections)%s",
                            self._peer(), len(self.connections), more)
            self._answer(503, "too many open connections; try again later", (b"retry-after", b"1"))
            return
        super().connection_made(transport)
        self._head_began = self.loop.time()
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_expired)
        if self.scheme == "https":
            certificate = peer_certificate(transport.get_extra_info("ssl_object"))
            self._extensions = self._tls_extensions(transport, certificate)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        if self.flow is None:  # refused at connection_made: uvicorn's state was never set up
            self.connections.discard(self)
            self.parser = None
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the answer is given: read and drop until the linger timer closes
        self._unset_keepalive_if_required()
        try:
            self._feed_bounded(data)
        except _HeadTooLarge:
            self._head_too_large()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, _HeadTooLarge):
                self._head_too_large()
            else:
                log.info("invalid HTTP request from %s: %s", self._peer(), error)
                self._answer(400, "invalid HTTP request")
            return
        if self._in_head and self._head_began is not None and self._head_timer is None:
            remaining = self._head_began + self.limits.header_timeout - self.loop.time()
            self._head_timer = self.loop.call_later(max(remaining, 0.0), self._head_expired)
        elif self._in_body and self._body_timer is None:
            # A body is on its way (requests whose body came with their head never get here).
            # First check at whichever bound comes first; _body_check re-arms for the next one.
            limits = self.limits
            first = min(limits.body_timeout, self._body_began + limits.body_total_timeout - self.loop.time())
            self._body_timer = self.loop.call_later(max(first, 0.0), self._body_check)
            cycle = self.cycle
            if cycle is not None and not cycle.response_started and not isinstance(cycle.transport,
                                                                                   _BodyPendingTransport):
                cycle.transport = _BodyPendingTransport(self, cycle)

    def _feed_bounded(self, data: bytes) -> None:
        """Feed the parser, never more raw bytes of one head than the limit (and its slack).

        httptools keeps a header value it has not seen the end of in one growing bytes object,
        so a head is cut off here, by its raw size, before the callbacks could count it.
        """
        limit = self.limits.max_header_bytes + RAW_SLACK
        while data:
            if self._in_head and self._head_raw + len(data) > limit:
                room = limit - self._head_raw
                if room <= 0:
                    raise _HeadTooLarge()
                piece, data = data[:room], data[room:]
            else:
                piece, data = data, b""
            if self._in_head:
                self._head_raw += len(piece)
            self.parser.feed_data(piece)

    # ---- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_size = 0
        if self._head_began is None:
            self._head_began = self.loop.time()
        if self._extensions is not None:
            self.scope["extensions"] = {name: dict(value) for name, value in self._extensions.items()}
        if self._shutdown is None:
            self._shutdown = asyncio.Event()
        extensions = self.scope.setdefault("extensions", {})
        extensions.setdefault("occipy", {})["shutdown"] = self._shutdown  # issue 12

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # `_count_head` inline: this runs for every header field of every request.
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        if self._head_size > self.limits.max_header_bytes:
            raise _HeadTooLarge()
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.limits.max_header_bytes:
            raise _HeadTooLarge()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_began = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        now = self.loop.time()
        self._in_body = True  # until on_message_complete, which comes at once for a request without one
        self._body_began = self._body_last = now
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_last = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._in_head = True
        self._head_raw = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._lingering:
            # Answered before its body was read (_BodyPendingTransport): nothing more is served here.
            self.server_state.total_requests += 1
            return
        super().on_response_complete()

    def shutdown(self) -> None:
        """The server shuts down: a response under way that streams (the event stream) is told
        to end (http/adapter.py passes the signal to the service); uvicorn does the rest."""
        if self._shutdown is not None:
            self._shutdown.set()
        super().shutdown()

    # ---- answers the edge gives itself -------------------------------------------------------

    def _head_too_large(self) -> None:
        log.info("%s: request header section over %d bytes: 431", self._peer(), self.limits.max_header_bytes)
        self._answer(431, f"the request header section is larger than {self.limits.max_header_bytes} bytes")

    def _head_expired(self) -> None:
        self._head_timer = None
        if not self._in_head or self._lingering or self.transport.is_closing():
            return
        if self._head_raw == 0:
            log.debug("%s: no request within %.3g s: closed", self._peer(), self.limits.header_timeout)
            self.transport.close()
            return
        log.info("%s: request headers incomplete after %.3g s: 408", self._peer(), self.limits.header_timeout)
        self._answer(408, f"the request headers did not arrive within {self.limits.header_timeout:g} seconds")

    def _body_check(self) -> None:
        self._body_timer = None
        if not self._in_body or self._lingering or self.transport.is_closing():
            return
        limits = self.limits
        now = self.loop.time()
        if self.flow.read_paused:
            # The app has not taken what arrived yet: the client is not the slow one.
            self._body_last = now
            self._body_timer = self.loop.call_later(limits.body_timeout, self._body_check)
            return
        idle_left = self._body_last + limits.body_timeout - now
        total_left = self._body_began + limits.body_total_timeout - now
        if idle_left > 0 and total_left > 0:
            self._body_timer = self.loop.call_later(min(idle_left, total_left), self._body_check)
            return
        why = (f"no body data for {limits.body_timeout:g} seconds" if idle_left <= 0
               else f"the body took longer than {limits.body_total_timeout:g} seconds")
        log.info("%s: request body incomplete, %s: 408", self._peer(), why)
        # The app waiting for the body sees a disconnect; the client sees the 408.
        self._answer(408, f"the request body did not arrive: {why}")

    def _answer(self, status: int, message: str, *headers: tuple[bytes, bytes]) -> None:
        """Write a plain-text answer that closes the connection, then linger."""
        body = message.encode() + b"\n"
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            # A response of the app is under way on this connection: it is cut short.
            self._cancel_timers()
            self.transport.close()
            return
        if cycle is not None and not cycle.response_complete:
            # The app has not answered yet: it sees a disconnect, and its answer goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        lines = [STATUS_LINE[status], b"server: ", SERVER, b"\r\n",
                 b"content-type: text/plain; charset=utf-8\r\n",
                 b"content-length: ", str(len(body)).encode(), b"\r\n",
                 b"x-request-id: ", random_bytes(16).hex().encode(), b"\r\n",
                 b"connection: close\r\n"]
        for name, value in headers:
            lines += [name, b": ", value, b"\r\n"]
        lines += [b"\r\n", body]
        self.transport.write(b"".join(lines))
        self._linger()

    def _linger(self) -> None:
        self._lingering = True
        self._cancel_timers()
        if self.flow is not None:
            self.flow.resume_reading()
        if self.transport.is_closing():
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger_timer = self.loop.call_later(self.limits.linger, self.transport.close)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"

    def _tls_extensions(self, transport: asyncio.Transport,
                        certificate: PeerCertificate | None) -> dict[str, dict[object, object]]:
        ssl_object = transport.get_extra_info("ssl_object")
        version = ssl_object.version() if ssl_object is not None else None
        # https://asgi.readthedocs.io/en/latest/specs/tls.html; the issuer is not in it, so it
        # travels in an extension of ours (http/adapter.py reads both).
        tls: dict[object, object] = {
            "server_cert": self.limits.server_cert_pem,
            "client_cert_chain": [certificate.pem] if certificate else [],
            "client_cert_name": certificate.subject if certificate else None,
            "client_cert_error": None,
            "tls_version": TLS_VERSIONS.get(version) if version else None,
            "cipher_suite": None,  # the ssl module names the suite but does not give its number
        }
        ours: dict[object, object] = {"client_cert_issuer": certificate.issuer if certificate else None}
        return {"tls": tls, "occipy": ours}


class _BodyPendingTransport(asyncio.Transport):
    """What a request's cycle writes through while the request body is still arriving.

    When the app answers before the body is in (413 on a declared size, 415, a 400 about the
    headers), the rest of the body will not be read: the answer gets `Connection: close` (so the
    client does not reuse the connection) and the close after it lingers (so the client reads the
    answer, not a reset). Otherwise it passes everything to the connection's transport.
    """

    def __init__(self, protocol: EdgeProtocol, cycle: RequestResponseCycle) -> None:
        super().__init__()
        self._protocol = protocol
        self._cycle = cycle
        self._inner = protocol.transport
        self._head_seen = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._head_seen and bytes(data[:13]) != b"HTTP/1.1 100 ":
            self._head_seen = True
            # uvicorn writes the status line and header fields in one piece, ending in a blank
            # line, and adds `connection: close` itself when keep_alive is already false.
            if self._protocol._in_body and self._cycle.keep_alive:
                self._cycle.keep_alive = False
                data = bytes(data)[:-2] + b"connection: close\r\n\r\n"
        self._inner.write(data)

    def close(self) -> None:
        if self._protocol._in_body:
            self._protocol._linger()
        else:
            self._inner.close()

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)


def protocol_class(limits: EdgeLimits) -> type[EdgeProtocol]:
    """An EdgeProtocol class bound to these limits (uvicorn makes one instance per connection)."""

    class ConfiguredEdgeProtocol(EdgeProtocol):
        pass

    ConfiguredEdgeProtocol.limits = limits
    return ConfiguredEdgeProtocol


def tls_context(cert: str, key: str, client_ca: str | None, client_cert: str) -> ssl.SSLContext:
    """The server's TLS context: TLS 1.2 or later; client certificates per `client_cert`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.verify_mode = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
                           "required": ssl.CERT_REQUIRED}[client_cert]
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
    return context


def first_pem_certificate(text: str) -> str | None:
    """The first certificate of a PEM file (the server's own, before its chain)."""
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        return None
    return text[start:stop + len(end)] + "\n"

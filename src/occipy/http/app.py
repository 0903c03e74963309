"""create_app(): the Starlette application around a Service (routes, error handler, lifespan).

One catch-all route hands every request to `Service.handle`; OCCI paths are the service's
business (routes.py). Errors raised by the adapter's limits are rendered by the service's error
renderer; anything unexpected is logged and answered 500 with the Server header. Every request
gets a request id (echoed as X-Request-ID, on its log lines); every write gets an audit line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from occipy.errors import OcciError
from occipy.http import adapter, logs
from occipy.rendering import negotiate
from occipy.service.messages import OcciResponse
from occipy.service.pipeline import Service

log = logging.getLogger("occipy.http")

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"]
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})  # each gets one line on logger occipy.audit


def create_app(
    service: Service,
    *,
    max_body: int = 1 << 20,
    max_headers: int = 100,
    on_startup: Callable[[], Awaitable[None]] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> Starlette:
    """The ASGI app. `on_startup`/`on_shutdown` open and close the store and the driver."""
    # GFD.222 §5.1: the profiles the server implements are claimed in every Server header.
    server = " ".join([adapter.SERVER, *service.claims])

    async def answer(request: Request, request_id: str) -> tuple[Response, OcciResponse]:
        try:
            occi_request = await adapter.to_occi(request, max_body=max_body, max_headers=max_headers,
                                                 request_id=request_id)
        except OcciError as error:
            try:
                media = negotiate.response_type(request.headers.get("accept"), listing=False)
            except OcciError:
                media = negotiate.TEXT_PLAIN
            refusal = service.render_error(error, media)
            if isinstance(error, adapter.UnsupportedContentEncoding):
                refusal.headers.append(("Accept-Encoding", ", ".join(adapter.CODINGS)))
            return adapter.to_response(refusal, request_id, server), refusal
        try:
            result = await service.handle(occi_request)
        except Exception:
            log.exception("internal error on %s %s", occi_request.method, occi_request.path)
            return adapter.plain_error(500, "internal server error: the failure has been logged",
                                       request_id=request_id, server=server), OcciResponse(500)
        return adapter.to_response(result, request_id, server), result

    async def endpoint(request: Request) -> Response:
        request_id = adapter.request_id(request.scope["headers"])
        token = logs.REQUEST_ID.set(request_id)
        try:
            try:
                response, result = await answer(request, request_id)
            except ClientDisconnect:
                # Not a failure of ours: one line, and nothing is answered (nobody is listening).
                log.info("%s %s: the client went away before its request body was complete",
                         request.method, request.scope["path"])
                return Response(status_code=400)
            if request.method in WRITES:
                logs.audit(request_id=request_id, principal=result.principal, tenant=result.tenant,
                           method=request.method, path=request.scope["path"], status=result.status,
                           operation=result.operation)
            return response
        finally:
            logs.REQUEST_ID.reset(token)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if on_startup is not None:
            await on_startup()
        try:
            yield
        finally:
            if on_shutdown is not None:
                await on_shutdown()

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=METHODS)], lifespan=lifespan)

"""create_app(): the Starlette application around a Service (routes, error handler, lifespan).

One catch-all route hands every request to `Service.handle`; OCCI paths are the service's
business (routes.py). Errors raised by the adapter's limits are rendered by the service's error
renderer; anything unexpected is logged and answered 500 with the Server header.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from occipy.errors import OcciError
from occipy.http import adapter
from occipy.rendering import negotiate
from occipy.service.pipeline import Service

log = logging.getLogger("occipy.http")

METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"]


def create_app(
    service: Service,
    *,
    max_body: int = 1 << 20,
    max_headers: int = 100,
    on_startup: Callable[[], Awaitable[None]] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> Starlette:
    """The ASGI app. `on_startup`/`on_shutdown` open and close the store and the driver."""

    async def endpoint(request: Request) -> Response:
        try:
            occi_request = await adapter.to_occi(request, max_body=max_body, max_headers=max_headers)
        except OcciError as error:
            try:
                media = negotiate.response_type(request.headers.get("accept"), listing=False)
            except OcciError:
                media = negotiate.TEXT_PLAIN
            return adapter.to_response(service.render_error(error, media))
        try:
            result = await service.handle(occi_request)
        except Exception:
            log.exception("internal error on %s %s", occi_request.method, occi_request.path)
            return adapter.plain_error(500, "internal server error: the failure has been logged")
        return adapter.to_response(result)

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

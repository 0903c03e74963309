"""create_app(): the Starlette application around a Service (routes, error handler, lifespan).

One catch-all route hands every request to `Service.handle`; OCCI paths are the service's
business (routes.py). Errors raised by the adapter's limits are rendered by the service's error
renderer; anything unexpected is logged and answered 500 with the Server header. Every request
gets a request id (echoed as X-Request-ID, on its log lines); every write gets an audit line.

Before the catch-all: the web dashboard's static files at /dashboard/ and the Prometheus metrics at
/metrics; `RequestMetrics` counts every request. The OpenAPI description (/-/openapi.json) is the
service's, behind its authentication like every OCCI path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from occipy import dashboard
from occipy.errors import OcciError
from occipy.http import adapter, logs
from occipy.model.category import Kind
from occipy.model.registry import Registry
from occipy.observability import metrics as obs
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
    metrics: bool = True,
) -> Starlette:
    """The ASGI app. `on_startup`/`on_shutdown` open and close the store and the driver.

    `metrics`: serve /metrics and count requests (the setting `metrics`, OCCIPY_METRICS).
    """
    # GFD.222 §5.1: the profiles the server implements are claimed in every Server header.
    server = " ".join([adapter.SERVER, *getattr(service, "claims", ())])
    server_field = server.encode()

    async def answer(request: Request, request_id: str) -> tuple[Response, OcciResponse]:
        def refuse(error: OcciError) -> OcciResponse:
            try:
                media = negotiate.response_type(request.headers.get("accept"), listing=False)
            except OcciError:
                media = negotiate.TEXT_PLAIN
            refusal = service.render_error(error, media)
            if isinstance(error, adapter.UnsupportedContentEncoding):
                refusal.headers.append(("Accept-Encoding", ", ".join(adapter.CODINGS)))
            return refusal

        try:
            occi_request = adapter.to_occi_head(request, max_body=max_body, max_headers=max_headers,
                                                request_id=request_id)
        except OcciError as error:
            refusal = refuse(error)
            return adapter.to_response(refusal, request_id, server_field), refusal
        try:
            # issue 8: authenticate (and rate-limit) on the head; the body is read only after that,
            # so an anonymous client cannot make the server receive max_body bytes.
            admission = await service.admit(occi_request)
            if admission.refusal is None:
                try:
                    await adapter.read_body(request, occi_request, max_body=max_body)
                except OcciError as error:
                    refusal = refuse(error)
                    if admission.principal is not None:
                        refusal.principal = admission.principal.user
                        refusal.tenant = admission.principal.tenant
                    return adapter.to_response(refusal, request_id, server_field), refusal
            result = await service.handle(occi_request, admission)
        except ClientDisconnect:
            raise
        except Exception:
            log.exception("internal error on %s %s", occi_request.method, occi_request.path)
            return adapter.plain_error(500, "internal server error: the failure has been logged",
                                       request_id=request_id, server=server), OcciResponse(500)
        return adapter.to_response(result, request_id, server_field), result

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

    async def metrics_endpoint(request: Request) -> Response:
        body = obs.exposition()
        return _with_server(Response(b"" if request.method == "HEAD" else body,
                                     headers={"Content-Type": obs.CONTENT_TYPE, "Cache-Control": "no-store"}))

    routes = [
        Route("/dashboard", _to_dashboard, methods=["GET", "HEAD"]),
        Route("/dashboard/{name:path}", dashboard_endpoint, methods=["GET", "HEAD"]),
    ]
    middleware = []
    route_of: Callable[[str], str] | None = None
    if metrics:
        routes.append(Route("/metrics", metrics_endpoint, methods=["GET", "HEAD"]))
        route_of = _RouteTemplates(service)
        middleware.append(Middleware(obs.RequestMetrics, route_of=route_of))
    routes.append(Route("/{path:path}", endpoint, methods=METHODS))
    return _OcciStarlette(endpoint, route_of, routes=routes, middleware=middleware, lifespan=lifespan)


class _OcciStarlette(Starlette):
    """Starlette, with OCCI requests (every path but /metrics and /dashboard) handed straight to
    the OCCI endpoint: Starlette's router, exception middleware and per-route wrappers cost more CPU
    than a GET of one entity does in the service (docs/performance.md, D-FASTPATH). What the router
    adds (path parameters, 404/405 of its own) is of no use there: the service routes OCCI paths.
    The other routes, the lifespan and the middleware (request metrics) are as Starlette makes them.
    """

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]], route_of: Callable[[str], str] | None,
                 **options: Any) -> None:
        super().__init__(**options)
        self._occi_endpoint = endpoint
        self._route_of = route_of  # the request metrics' labels (None: no metrics)

    def build_middleware_stack(self) -> ASGIApp:
        full = super().build_middleware_stack()
        endpoint = self._occi_endpoint

        async def occi(scope: Scope, receive: Receive, send: Send) -> None:
            response = await endpoint(Request(scope, receive, send))
            await response(scope, receive, send)

        fast: ASGIApp = occi
        if self._route_of is not None:
            # The request metrics inline: the status is the response's, no wrapper around `send`.
            recorder = obs.RequestMetrics(occi, route_of=self._route_of)

            async def measured(scope: Scope, receive: Receive, send: Send) -> None:
                started = time.perf_counter()
                status = 500  # unless the endpoint answers (it renders every error it sees)
                recorder.begin()
                try:
                    response = await endpoint(Request(scope, receive, send))
                    status = response.status_code
                    await response(scope, receive, send)
                finally:
                    recorder.record(scope["method"], scope["path"], status, time.perf_counter() - started,
                                    ended=True)

            fast = measured

        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                path = scope["path"]
                if path != "/metrics" and path != "/dashboard" and not path.startswith("/dashboard/"):
                    scope["app"] = self
                    await fast(scope, receive, send)
                    return
            await full(scope, receive, send)

        return dispatch


# ---- dashboard ----------------------------------------------------------------------------------

# The dashboard talks only to this origin; no inline script or style, no framing.
DASHBOARD_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                 "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
                 "form-action 'self'; frame-ancestors 'none'")
_DASHBOARD_HEADERS = {
    "Content-Security-Policy": DASHBOARD_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


async def _to_dashboard(request: Request) -> Response:
    return _with_server(RedirectResponse("/dashboard/", status_code=308))


async def dashboard_endpoint(request: Request) -> Response:
    """GET /dashboard/<file>: a static file of occipy.dashboard, with its type and a strict CSP."""
    found = dashboard.asset(request.path_params["name"])
    if found is None:
        response = Response("no such dashboard file\n", status_code=404, media_type="text/plain",
                            headers=_DASHBOARD_HEADERS)
        return _with_server(response)
    headers = {**_DASHBOARD_HEADERS, "ETag": found.etag, "Content-Type": found.media_type}
    if found.etag in request.headers.get("if-none-match", ""):
        return _with_server(Response(status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Type"}))
    body = b"" if request.method == "HEAD" else found.body
    response = Response(body, headers=headers)
    if request.method == "HEAD":
        response.headers["content-length"] = str(len(found.body))
    return _with_server(response)


# ---- helpers ------------------------------------------------------------------------------------


def _with_server(response: Response) -> Response:
    response.raw_headers.append((b"server", adapter.SERVER.encode()))
    return response


def _base_url(request: Request) -> str:
    """scheme://host as the OCCI adapter computes it (a Host header with odd characters is ignored)."""
    host = request.headers.get("host")
    if not host or any(c in host for c in "/\\@ \t\"<>{}"):
        server = request.scope.get("server") or ("localhost", None)
        host = server[0] if server[1] in (None, 80, 443) else f"{server[0]}:{server[1]}"
    return f"{request.scope.get('scheme', 'http')}://{host}"


_FIXED_ROUTES = frozenset({"/", "/-/", "/.well-known/org/ogf/occi/-/", "/-/openapi.json", "/metrics",
                           "/dashboard", "/dashboard/", "/-/events"})


class _RouteTemplates:
    """`route_template` remembered per path while the registry is unchanged (at most ROUTES_KEPT
    paths: a GET of one entity again and again is the common case)."""

    def __init__(self, service: Any) -> None:
        self.service = service  # its `registry`, read at each request (as the service's own is)
        self.version = -1
        self.known: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        registry: Registry = self.service.registry
        known = self.known
        if registry.version != self.version:
            known.clear()
            self.version = registry.version
        route = known.get(path)
        if route is None:
            if len(known) >= ROUTES_KEPT:
                known.clear()
            route = known[path] = route_template(registry, path)
        return route


ROUTES_KEPT: Final = 4096


def route_template(registry: Registry, path: str) -> str:
    """The metrics label of a path: a bounded set of values, entity ids collapsed (`/compute/{id}`).

    Kind collections keep their location; every mixin collection is `/{mixin}/` (providers may
    offer thousands of templates, users choose their own locations); anything else is
    `/{unbound}/` or `/{other}`.
    """
    if path in _FIXED_ROUTES:
        return path
    if path.startswith("/-/operations/"):
        return "/-/operations/{id}"
    if path.startswith("/dashboard/"):
        return "/dashboard/{file}"
    category = registry.by_location(path)
    if category is not None:
        return path if isinstance(category, Kind) else "/{mixin}/"
    cut = path.rfind("/")
    if 0 <= cut < len(path) - 1:
        parent = registry.by_location(path[: cut + 1])
        if isinstance(parent, Kind):
            return parent.location + "{id}" if parent.location else "/{other}"
        category = registry.by_location(path + "/")
        if category is not None:
            if isinstance(category, Kind):
                return category.location or "/{other}"
            return "/{mixin}/"
    return "/{unbound}/" if path.endswith("/") else "/{other}"

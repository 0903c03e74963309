"""The Service: GFD.223 semantics behind one `handle(OcciRequest) -> OcciResponse` call (sans-IO).

One request pipeline, in this order (docs/architecture.md draws it):

1. authenticate: the `Authenticator` turns credentials into a `Principal` (401 otherwise);
2. check the client's OCCI version (GFD.223 §5.3: 501 above 1.2);
3. classify the path (`routes.classify`; another tenant's entity is not there) and negotiate the
   response media type (GFD.223 §5, GFD.185 §3.6.6);
4. look the (target, verb) up in the one dispatch table (`dispatch.ENDPOINTS`; 405 otherwise);
5. authorise (`authz`: 403 for a reader's write);
6. parse the body once into the endpoint's typed message (`parse`);
7. run the handler with the message and the request `Context`; it returns a typed result;
8. render the result once (`respond.Responder`, which alone consults the render caches).

Storage and the cloud are reached only through `store.base.Store` and `backends.base.Driver`.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from occipy.backends.base import Driver
from occipy.errors import (
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    NotSupported,
    OcciError,
    Unauthorized,
    UriListNotListing,
)
from occipy.identity.base import Anonymous, Authenticator, Credentials, Principal
from occipy.model.extensions import ExtensionSet
from occipy.model.registry import Registry
from occipy.rendering import negotiate
from occipy.service import dispatch
from occipy.service.authz import Authoriser, RolePolicy
from occipy.service.cache import RenderCache
from occipy.service.cloud import Cloud, CloudOptions
from occipy.service.context import Context
from occipy.service.handlers.base import Env
from occipy.service.handlers.query import load_stored_mixins
from occipy.service.messages import OcciRequest, OcciResponse
from occipy.service.options import ServiceOptions
from occipy.service.respond import OPERATIONS_PREFIX, Responder
from occipy.service.results import EmptyResult, Outcome, Result
from occipy.service.routes import Route, Target, classify
from occipy.service.views import Views
from occipy.store.base import PENDING_STATES, Store

log = logging.getLogger("occipy.service")

_VERSION_RE: Final = re.compile(r"OCCI/(\d+)\.(\d+)")
_LISTINGS: Final = frozenset({Target.KIND, Target.MIXIN, Target.UNBOUND, Target.ROOT, Target.OPERATIONS})


class Service:
    """OCCI over any store, driver and authenticator; `start()` before the first request, `stop()` at the end."""

    def __init__(self, registry: Registry, store: Store, driver: Driver, options: ServiceOptions | None = None,
                 *, authenticator: Authenticator | None = None, authoriser: Authoriser | None = None,
                 extensions: ExtensionSet | None = None) -> None:
        self.registry = registry
        self.store = store
        self.driver = driver
        self.options = options or ServiceOptions()
        self.authenticator: Authenticator = authenticator or Anonymous()
        self.authoriser: Authoriser = authoriser or RolePolicy()
        self.cloud = Cloud(registry, store, driver, CloudOptions(
            provider_scheme=self.options.provider_scheme, sync_wait=self.options.sync_wait,
            reconcile_interval=self.options.reconcile_interval, name=driver.name), extensions)
        # GFD.222 §5.1 claims (e.g. OCCI-CRTP/1.1) for the Server header.
        self.claims: tuple[str, ...] = self.cloud.extensions.claims()
        views = Views(registry, store, self.cloud)
        self.env = Env(registry=registry, store=store, cloud=self.cloud, views=views, options=self.options)
        self.responder = Responder(registry, views, RenderCache(), max_header_value=self.options.max_header_value)

    # ---- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load user mixins and templates into the registry, resume interrupted work, follow the cloud."""
        saved = await load_stored_mixins(self.env)
        await self.cloud.start(saved)

    async def stop(self) -> None:
        """Let running work end; the authenticator belongs to whoever made it (server.py closes it)."""
        await self.cloud.stop()

    # ---- the one entry point -----------------------------------------------------------------------

    async def handle(self, request: OcciRequest) -> OcciResponse:
        """Answer one request. OcciErrors become 4xx/5xx renderings; anything else is a bug (500)."""
        accept = request.header("accept")
        try:
            media = negotiate.response_type(accept, listing=False)
        except OcciError:
            media = negotiate.TEXT_PLAIN
        principal: Principal | None = None
        try:
            principal = await self._authenticate(request)
            self._check_version(request)
            path = request.path
            stored = await self.store.get(path)
            visible = stored is None or principal.is_admin or stored.tenant == principal.tenant
            route = classify(path, self.registry, stored, visible=visible)
            media = negotiate.response_type(accept, listing=route.target in _LISTINGS)
            ctx = Context(principal=principal, base_url=request.base_url, media=media,
                          request_id=request.request_id,
                          prefer_async="respond-async" in (request.header("prefer") or ""),
                          if_match=request.header("if-match"), if_none_match=request.header("if-none-match"))
            response = await self._dispatch(request, route, ctx)
            if request.method == "HEAD":
                response.body = b""
                response.stream = None  # scale-out: a streamed collection is not sent either
        except OcciError as error:
            response = self._error(error, media)
        if principal is not None:
            # for the audit line (http/adapter.py writes it)
            response.principal = principal.user
            response.tenant = principal.tenant
        return response

    def _error(self, error: OcciError, media: str) -> OcciResponse:
        if isinstance(error, (NotAcceptable, UriListNotListing)):
            media = negotiate.TEXT_PLAIN
        if isinstance(error, Unauthorized) and not error.challenges:
            error = Unauthorized(error.message, self.authenticator.challenges())
        return self.responder.render_error(error, media)

    async def _authenticate(self, request: OcciRequest) -> Principal:
        credentials = Credentials(headers=request.headers, client_subject=request.client_subject,
                                  client_issuer=request.client_issuer)
        principal = await self.authenticator.authenticate(credentials)
        if principal is None:
            raise Unauthorized("authentication required", self.authenticator.challenges())
        return principal

    def _check_version(self, request: OcciRequest) -> None:
        # "If an OCCI implementation receives a request from a client that supplies a version number
        #  higher than the server supports ... The HTTP 501 Not Implemented status code MUST be used."
        #  -- GFD.223 §5.3
        agent = request.header("user-agent") or ""
        for major, minor in _VERSION_RE.findall(agent):
            if (int(major), int(minor)) > (1, 2):
                raise NotSupported(f"OCCI/{major}.{minor} is not supported; this server speaks OCCI/1.2 and OCCI/1.1")

    async def _dispatch(self, request: OcciRequest, route: Route, ctx: Context) -> OcciResponse:
        allowed = dispatch.allowed(route.target)
        if request.method == "OPTIONS":
            return await self.responder.render(EmptyResult(Outcome(headers=(("Allow", ", ".join(allowed)),))), ctx)
        if route.target is Target.NEW and request.method != "PUT":
            raise NotFound(f"nothing at {request.path}")
        verb = dispatch.verb_of(request.method, request.query)
        endpoint = dispatch.ENDPOINTS.get((route.target, verb))
        if endpoint is None or request.method not in allowed:
            raise MethodNotAllowed(f"{request.method} is not defined for {request.path}", allowed)
        self.authoriser.authorise(ctx, route, request.method)
        message = endpoint.parse(request, self.registry)
        if route.target is Target.ENTITY and verb == "GET":
            assert route.entity is not None
            return await self.responder.entity(route.entity, ctx)
        result = await endpoint.handle(self.env, ctx, route, message)
        return await self._respond(result, ctx)

    async def _respond(self, result: Result, ctx: Context) -> OcciResponse:
        op = result.outcome.operation
        if ctx.prefer_async and op is not None and op.state in PENDING_STATES:
            # RFC 7240: the client asked not to wait; the operation's record says how it goes.
            url = ctx.absolute(OPERATIONS_PREFIX + op.op_id)
            return OcciResponse(status=202, headers=[("Location", url), ("X-OCCI-Operation", url),
                                                     ("Preference-Applied", "respond-async"),
                                                     ("Content-Type", ctx.media)],
                                body=b"OK" if ctx.media == negotiate.TEXT_OCCI else b"", operation=op.op_id)
        response = await self.responder.render(result, ctx)
        if op is not None:
            response.operation = op.op_id
        return response

    def render_error(self, error: OcciError, media: str) -> OcciResponse:
        """Errors found before the pipeline (by the HTTP adapter's limits)."""
        return self.responder.render_error(error, media)

"""The Service: GFD.223 semantics behind one `handle(OcciRequest) -> OcciResponse` call (sans-IO).

One request pipeline, in this order (docs/architecture.md draws it):

1. authenticate: the `Authenticator` turns credentials into a `Principal` (401 otherwise), and
   count the request against the principal's rate limits (`ratelimit`: 429). This step needs the
   request head only: the HTTP layer calls `admit` before it reads the body and hands the
   `Admission` to `handle`, which authenticates a request that comes without one;
2. check the client's OCCI version (GFD.223 §5.3: 501 above 1.2);
3. classify the path (`routes.classify`; another tenant's entity is not there) and negotiate the
   response media type (GFD.223 §5, GFD.185 §3.6.6);
4. look the (target, verb) up in the one dispatch table (`dispatch.ENDPOINTS`; 405 otherwise);
5. authorise (`authz`: 403 for a reader's write);
6. parse the body once into the endpoint's typed message (`parse`), then evaluate If-Match /
   If-None-Match on an entity (`conditional`: 412);
7. run the handler with the message and the request `Context`; it returns a typed result;
8. render the result once (`respond.Responder`, which alone consults the render caches).

Storage and the cloud are reached only through `store.base.Store` and `backends.base.Driver`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Final

import msgspec

from occipy.backends.base import Driver
from occipy.errors import (
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    NotSupported,
    OcciError,
    PreconditionFailed,
    Unauthorized,
    UriListNotListing,
)
from occipy.identity.base import Anonymous, Authenticator, Credentials, Principal
from occipy.model.category import Mixin
from occipy.model.entity import Entity
from occipy.model.extensions import ExtensionSet
from occipy.model.ids import random_bytes
from occipy.model.registry import Registry
from occipy.rendering import negotiate
from occipy.service import dispatch, events
from occipy.service.authz import Authoriser, RolePolicy
from occipy.service.cache import RenderCache
from occipy.service.cloud import CloudOptions, Clouds
from occipy.service.conditional import evaluate
from occipy.service.context import Context
from occipy.service.handlers.base import Env
from occipy.service.handlers.query import load_stored_mixins
from occipy.service.messages import OcciRequest, OcciResponse
from occipy.service.monitor import Monitor, MonitorOptions
from occipy.service.options import ServiceOptions
from occipy.service.ratelimit import RateLimits
from occipy.service.respond import OPERATIONS_PREFIX, Responder
from occipy.service.results import EmptyResult, Outcome, Result
from occipy.service.routes import Route, Target, classify
from occipy.service.views import Views
from occipy.store.base import PENDING_STATES, Store

log = logging.getLogger("occipy.service")

_VERSION_RE: Final = re.compile(r"OCCI/(\d+)\.(\d+)")
_LISTINGS: Final = frozenset({Target.KIND, Target.MIXIN, Target.UNBOUND, Target.ROOT, Target.OPERATIONS})
_CONDITIONAL_WRITES: Final = frozenset({"PUT", "POST", "DELETE"})


class Admission(msgspec.Struct, frozen=True, eq=False):
    """Step 1 of the pipeline done on a request's head (`Service.admit`): who it is, or the refusal
    to answer (401, 429). Valid for the one request object it was made for."""

    request: OcciRequest
    principal: Principal | None
    refusal: OcciResponse | None = None


class Service:
    """OCCI over any store, driver and authenticator; `start()` before the first request, `stop()` at the end."""

    def __init__(self, registry: Registry, store: Store, driver: Driver | Sequence[tuple[str, Driver]],
                 options: ServiceOptions | None = None,
                 *, authenticator: Authenticator | None = None, authoriser: Authoriser | None = None,
                 extensions: ExtensionSet | None = None) -> None:
        self.registry = registry
        self.store = store
        # One driver, or several (name, driver) pairs: one cloud each, the first the default.
        drivers = [(driver.name, driver)] if not isinstance(driver, Sequence) else list(driver)
        self.driver = drivers[0][1]
        self.options = options or ServiceOptions()
        self.authenticator: Authenticator = authenticator or Anonymous()
        self._negotiated: dict[tuple[str | None, bool], str] = {}
        self.authoriser: Authoriser = authoriser or RolePolicy()
        self.cloud = Clouds(registry, store, drivers, CloudOptions(
            provider_scheme=self.options.provider_scheme, sync_wait=self.options.sync_wait,
            reconcile_interval=self.options.reconcile_interval), extensions)
        # GFD.222 §5.1 claims (e.g. OCCI-CRTP/1.1) for the Server header.
        self.claims: tuple[str, ...] = self.cloud.extensions.claims()
        # [monitoring] sampling, SLA assessment and agreement ends, in the background (service/monitor.py).
        # With several clouds it samples each cloud's objects through that cloud's driver.
        self.monitor = Monitor(list(self.cloud.clouds.values()), MonitorOptions(
            tick=self.options.monitoring_tick, retention=self.options.monitoring_retention,
            max_age=self.options.monitoring_max_age, assess_interval=self.options.sla_interval,
            provider_scheme=self.options.provider_scheme))
        views = Views(registry, store, self.cloud)
        # issue 12: GET /-/events streams follow the store's event log through one hub.
        self.events = events.EventHub(store, registry, keepalive=self.options.events_keepalive,
                                      poll=self.options.events_poll)
        self.env = Env(registry=registry, store=store, cloud=self.cloud, views=views, options=self.options,
                       events=self.events)
        self.responder = Responder(registry, views, RenderCache(), max_header_value=self.options.max_header_value)
        # ---- issue 8 (tenancy branch): rate limits; entities with a conditional write in flight ----
        self.rate_limits = RateLimits(self.options.rate_limits)
        self._guarded: set[str] = set()

    # ---- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the clouds; load user mixins and templates into the registry; resume interrupted work;
        follow the clouds."""
        saved = await load_stored_mixins(self.env)
        await self.cloud.start(saved)
        await self.monitor.start()  # [monitoring]

    async def stop(self) -> None:
        """Let running work end; the authenticator belongs to whoever made it (server.py closes it)."""
        await self.events.close()  # issue 12: event streams end first
        await self.monitor.stop()  # [monitoring]
        await self.cloud.stop()

    # ---- the one entry point -----------------------------------------------------------------------

    async def admit(self, request: OcciRequest) -> Admission:
        """Step 1 on the request head alone: authenticate and count it against the rate limits.

        The HTTP layer calls this before it reads the request body (issue 8: an anonymous client
        cannot make the server read `max_body`), then `handle(request, admission)`.
        """
        principal: Principal | None = None
        limits = self.rate_limits
        try:
            limits.check_peer(request.peer)
            try:
                principal = await self._authenticate(request)
            except Unauthorized:
                if _carries_credentials(request):
                    limits.refused(request.peer)
                raise
            limits.admit(principal, request.method, request.peer)
        except OcciError as error:
            response = self._error(error, self._media_for_error(request))
            self._audit(response, principal)
            return Admission(request, principal, response)
        return Admission(request, principal)

    async def handle(self, request: OcciRequest, admission: Admission | None = None) -> OcciResponse:
        """Answer one request. OcciErrors become 4xx/5xx renderings; anything else is a bug (500).

        `admission`: step 1 already done for this request by `admit` (else it is done here, so
        that authentication runs exactly once per request either way).
        """
        if admission is None or admission.request is not request:
            admission = await self.admit(request)
        if admission.refusal is not None:
            return admission.refusal
        principal = admission.principal
        assert principal is not None
        accept = request.header("accept")
        media = ""  # negotiated below; an error before that negotiates for itself
        try:
            self._check_version(request)
            path = request.path
            stored = await self.store.get(path)
            visible = stored is None or principal.is_admin or stored.tenant == principal.tenant
            route = _without_hidden_mixin(classify(path, self.registry, stored, visible=visible), path, principal,
                                          stored, visible)
            if route.target is Target.EVENTS:  # issue 12: text/event-stream; errors as Accept allows
                media = events.error_media(accept)
            else:
                media = self._media(accept, route.target in _LISTINGS)
            ctx = Context(principal=principal, base_url=request.base_url, media=media,
                          request_id=request.request_id,
                          prefer_async="respond-async" in (request.header("prefer") or ""),
                          if_match=request.header("if-match"), if_none_match=request.header("if-none-match"))
            response = await self._dispatch(request, route, ctx)
            if request.method == "HEAD":
                response.body = b""
                response.stream = None  # HEAD starts neither an event stream (issue 12) nor a streamed collection
        except OcciError as error:
            response = self._error(error, media or self._media_for_error(request))
        self._audit(response, principal)
        return response

    def _media(self, accept: str | None, listing: bool) -> str:
        """`negotiate.response_type`, remembered per Accept value (clients send a handful)."""
        key = (accept, listing)
        media = self._negotiated.get(key)
        if media is None:
            media = negotiate.response_type(accept, listing=listing)  # 406 is not remembered
            if len(self._negotiated) > 256:
                self._negotiated.clear()
            self._negotiated[key] = media
        return media

    @staticmethod
    def _media_for_error(request: OcciRequest) -> str:
        try:
            return negotiate.response_type(request.header("accept"), listing=False)
        except OcciError:
            return negotiate.TEXT_PLAIN

    @staticmethod
    def _audit(response: OcciResponse, principal: Principal | None) -> None:
        if principal is not None:
            # for the audit line (http/app.py writes it)
            response.principal = principal.user
            response.tenant = principal.tenant

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
        guarded = await self._preconditions(request.method, route, ctx)
        try:
            result = await endpoint.handle(self.env, ctx, route, message)
        finally:
            if guarded is not None:
                self._guarded.discard(guarded)
        return await self._respond(result, ctx)

    async def _preconditions(self, method: str, route: Route, ctx: Context) -> str | None:
        """If-Match / If-None-Match on a write to one entity (RFC 9110 §13.2.2; 412).

        A write that names an ETag claims its entity until its handler has queued its work: a
        second conditional write, or one while other work on the entity is still pending, is 412
        (the ETag it names is about to change), so two writers holding one ETag cannot both win.
        Returns the claimed location, to be released when the handler returns.
        """
        if ctx.if_match is None and ctx.if_none_match is None or method not in _CONDITIONAL_WRITES:
            return None
        if route.target is Target.NEW and method == "PUT":
            # Another tenant's entity (route.taken) is treated as the caller's own (D-TENANT-PATHS).
            taken = f'"{random_bytes(16).hex()}"' if route.taken else None  # an ETag no client holds
            evaluate(method, ctx.if_match, ctx.if_none_match, taken)
            return None
        if route.target is not Target.ENTITY or route.entity is None:
            return None  # collections have no ETag: the headers are ignored
        location = route.entity.location
        etag = await self.responder.current_etag(route.entity)
        evaluate(method, ctx.if_match, ctx.if_none_match, etag)
        if ctx.if_match is None:
            return None
        if location in self._guarded or self.cloud.lanes.busy(location):
            raise PreconditionFailed(f"If-Match: {location} is being changed by another request; "
                                     "GET it again for its new ETag")
        self._guarded.add(location)
        return location

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


def _carries_credentials(request: OcciRequest) -> bool:
    """Whether a 401 refused credentials the request carried (not merely their absence)."""
    return any(name in ("authorization", "x-auth-token") for name, _ in request.headers) \
        or request.client_subject is not None


def _without_hidden_mixin(route: Route, path: str, principal: Principal, stored: Entity | None,
                          visible: bool) -> Route:
    """issue 8: another tenant's user mixin collection is classified as if the mixin did not exist
    (an unbound path, or a new one), so that every answer is the one for a path nobody uses."""
    mixin = route.category
    if route.target is not Target.MIXIN or not isinstance(mixin, Mixin) or not mixin.user_defined \
            or principal.is_admin or mixin.tenant == principal.tenant:
        return route
    if stored is not None and visible:
        return Route(Target.ENTITY, path, entity=stored)
    if path.endswith("/"):
        return Route(Target.UNBOUND, path)
    return Route(Target.NEW, path, taken=stored is not None)

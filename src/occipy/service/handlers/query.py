"""The query interface `/-/`: discovery with filters, and user-defined mixins (GFD.223 §9; GFD.185 §3.4.1).

Users may define their own mixins (tags) with POST and remove them with DELETE; kinds and
provider mixins cannot be removed (403). A user mixin belongs to its definer's tenant: other
tenants neither see it nor can use it. Deleting one removes its associations (one update
operation per entity that carries it).
"""

from __future__ import annotations

import logging
import re
from typing import Final

from occipy.errors import BadRequest, Conflict, Forbidden, NotFound, OcciError
from occipy.model.category import TERM_RE, Action, Kind, Mixin, category_class
from occipy.model.registry import OGF_BASE
from occipy.rendering import openapi
from occipy.rendering.messages import CategoryDefinition
from occipy.service.cloud import EditSpec
from occipy.service.context import Context
from occipy.service.edits import DISSOCIATE, Edit
from occipy.service.handlers.base import Env, settle, visible_categories, visible_mixin
from occipy.service.parse import Definitions, Listing, NoBody
from occipy.service.results import CategoriesResult, DocumentResult, EmptyResult, Result
from occipy.service.routes import QUERY_PATHS, RESERVED_PREFIXES, Route
from occipy.store.base import Batch, EntityQuery

log = logging.getLogger("occipy.query")

# A user mixin's location: a plain path of safe segments, bounded (issue 8: no "/../", no 60 KB paths).
_LOCATION: Final = re.compile(r"/(?:[A-Za-z0-9._~-]+/){1,8}\Z")
MAX_LOCATION: Final = 256
MAX_TERM: Final = 128
MAX_TITLE: Final = 4096


async def discover(env: Env, ctx: Context, route: Route, message: Listing) -> Result:
    """GET /-/: the category collection, filtered by Category headers or `?category=` (GFD.223 §7.1)."""
    registry = env.registry
    categories = visible_categories(env, ctx)
    wanted: set[str] = set()
    classes: dict[str, str | None] = {}
    for ref in message.filter.categories:
        type_id = registry.canonical(ref.type_id)
        wanted.add(type_id)
        classes[type_id] = ref.cls
    raw = message.category
    if raw:
        if "#" in raw:
            wanted.add(registry.canonical(raw))
        else:
            wanted.update(c.type_id for c in categories if c.term == raw)
    if not (message.filter.categories or raw):
        return CategoriesResult(categories, cacheable=True)
    chosen = [c for c in categories if c.type_id in wanted and classes.get(c.type_id) in (None, category_class(c))]
    return CategoriesResult(chosen)


def _check_definition(env: Env, ctx: Context, definition: CategoryDefinition) -> Mixin:
    """A user mixin definition, validated (http-protocol.md §6.1 POST /-/ decisions)."""
    registry = env.registry
    if definition.cls not in (None, "mixin"):
        raise BadRequest(f"only mixins can be defined by users, not a {definition.cls}")
    if not definition.scheme.endswith("#"):
        raise BadRequest(f"scheme must end with '#': {definition.scheme}")
    if len(definition.scheme) > MAX_LOCATION:
        raise BadRequest(f"the scheme of a mixin may have at most {MAX_LOCATION} characters")
    # GFD.221 §5.3.1: provider extensions MUST NOT use the OGF base URL (C-07)
    if definition.scheme.startswith(OGF_BASE):
        raise BadRequest(f"the scheme {OGF_BASE} is reserved for OGF specifications")
    if not TERM_RE.match(definition.term) or len(definition.term) > MAX_TERM:
        raise BadRequest(f"invalid term {definition.term[:MAX_TERM]!r} (at most {MAX_TERM} characters)")
    if definition.title is not None and (any(ord(c) < 32 or ord(c) == 127 for c in definition.title)
                                         or len(definition.title) > MAX_TITLE):
        raise BadRequest(f"the title of a mixin must be at most {MAX_TITLE} characters, without control characters")
    if definition.attributes or definition.actions:
        raise BadRequest("user-defined mixins cannot define attributes or actions (GFD.185 §3.4.1)")
    if not definition.location:
        raise BadRequest("a user-defined mixin needs a location")
    location = ctx.local_path(definition.location)
    if len(location) > MAX_LOCATION or not _LOCATION.match(location) or "/../" in location or "/./" in location:
        raise BadRequest(f"the location of a mixin must be a plain path of at most {MAX_LOCATION} characters "
                         f"ending with '/': {definition.location[:MAX_LOCATION]!r}")
    if location in QUERY_PATHS or location.startswith((*RESERVED_PREFIXES, "/mixin/cloud/", "/dashboard/", "/metrics/")):
        raise BadRequest(f"the location {location} is reserved by the server")
    depends: list[str] = []
    for rel in definition.rel:
        rel_id = registry.canonical(rel)
        found = registry.find(rel_id)
        if isinstance(found, Mixin) and found.user_defined and not ctx.sees(found.tenant):
            found = None
        if found is not None and not isinstance(found, Mixin):
            raise BadRequest(f"rel must name mixins, not {rel}")
        if rel_id in env.cloud.extensions.provider_only_parents():
            # Monitoring profile 1 (MON-08): only the provider defines these mixins' children.
            raise Forbidden(f"only the provider may define mixins depending on {rel_id}")
        depends.append(rel_id)
    applies: list[str] = []
    for kind_id in definition.applies:
        if not registry.is_kind(kind_id):
            raise BadRequest(f"applies names an unknown kind: {kind_id}")
        applies.append(registry.canonical(kind_id))
    return Mixin(scheme=definition.scheme, term=definition.term, title=definition.title,
                 depends=tuple(depends), applies=tuple(applies), location=location,
                 user_defined=True, owner=ctx.principal.user, tenant=ctx.principal.tenant)


async def add_mixins(env: Env, ctx: Context, route: Route, message: Definitions) -> Result:
    """POST /-/: define one or more user mixins; 200 + their renderings (GFD.223 §9.3)."""
    registry = env.registry
    if not message.items:
        raise BadRequest("the request defines no mixin")
    mixins = [_check_definition(env, ctx, d) for d in message.items]
    existing = [m for m in mixins if registry.find(m.type_id) == m]
    if existing and len(existing) == len(mixins):
        # D-MIXIN-IDEMPOTENT: defining exactly the same mixin again changes nothing.
        return CategoriesResult(mixins)
    seen: set[str] = set()
    for mixin in mixins:
        if mixin.type_id in seen or registry.find(mixin.type_id) is not None:
            raise Conflict(f"category {mixin.type_id} already exists")
        assert mixin.location is not None
        if registry.by_location(mixin.location) is not None or await env.store.get(mixin.location.rstrip("/")):
            raise Conflict(f"location {mixin.location} is already in use")
        seen.add(mixin.type_id)
    await env.store.commit(Batch(put_mixins=mixins))
    added: list[Mixin] = []
    try:
        for mixin in mixins:
            registry.add(mixin)
            added.append(mixin)
    except OcciError:
        for mixin in added:
            registry.remove_mixin(mixin.type_id)
        await env.store.commit(Batch(delete_mixins=[m.type_id for m in mixins]))
        raise
    return CategoriesResult(mixins)


async def remove_mixins(env: Env, ctx: Context, route: Route, message: Definitions) -> Result:
    """DELETE /-/: remove user mixins and all their associations (GFD.223 §9.4; GFD.185 §3.4.1)."""
    registry = env.registry
    if not message.items:
        raise BadRequest("name the mixin to remove with a Category rendering")
    doomed: list[Mixin] = []
    for definition in message.items:
        category = registry.find(definition.type_id)
        if isinstance(category, Mixin) and category.user_defined and not ctx.sees(category.tenant):
            category = None  # another tenant's mixin is not there for this caller
        if category is None:
            raise NotFound(f"no mixin {definition.type_id}")
        if not isinstance(category, Mixin) or not category.user_defined:
            # GFD.185 §3.4.1: removing a provider-defined mixin MUST be refused (403)
            raise Forbidden(f"{definition.type_id} is defined by the provider and cannot be removed")
        for other in registry.mixins():
            if category.type_id in other.depends and other not in doomed and other.type_id not in \
                    {d.type_id for d in message.items}:
                raise Conflict(f"{other.type_id} depends on {category.type_id}")
        doomed.append(category)
    await env.store.commit(Batch(delete_mixins=[m.type_id for m in doomed]))
    for mixin in doomed:
        registry.remove_mixin(mixin.type_id)
    # The associations go, one update per entity, in each entity's lane (after its pending work).
    cloud = env.cloud
    visible = visible_mixin(ctx)
    jobs = []
    for mixin in doomed:
        for entity in await env.store.query(EntityQuery(mixin=mixin.type_id)):
            edit = Edit(mode=DISSOCIATE, mixins=(mixin.type_id,))
            op = cloud.lanes.new_operation(entity.location, "update", entity.tenant, ctx.principal.user,
                                           params=edit.params())
            try:
                jobs.append(await cloud.lanes.submit(op, EditSpec(cloud.of(entity), entity.location, edit, visible)))
            except NotFound:
                pass  # being deleted
    await settle(jobs, env.options.sync_wait)
    return EmptyResult()


async def openapi_document(env: Env, ctx: Context, route: Route, message: NoBody) -> Result:
    """GET /-/openapi.json: the OpenAPI 3.1 description of what this caller can use, made from the
    live registry (it follows user mixins and extensions as they change)."""
    key = ("openapi", ctx.scope, env.registry.version, ctx.base_url)
    body = env.documents.get(key)
    if body is None:
        if len(env.documents) > 64:
            env.documents.clear()
        body = env.documents[key] = openapi.render_bytes(env.registry, ctx.base_url, visible_mixin(ctx))
    return DocumentResult(body, "application/json")


async def load_stored_mixins(env: Env) -> list[Mixin]:
    """Register user mixins from the store (those depending on others last); return saved templates.

    A user mixin whose `rel` names a mixin nobody defines keeps it (D-DANGLING-REL).
    """
    registry = env.registry
    saved: list[Mixin] = []
    pending = list(await env.store.user_mixins())
    while pending:
        progressed = False
        for mixin in list(pending):
            if all(registry.is_mixin(dep) or not any(dep == m.type_id for m in pending) for dep in mixin.depends):
                try:
                    registry.add(mixin)
                    if not mixin.user_defined:
                        saved.append(mixin)
                except OcciError as error:
                    log.error("stored mixin %s is not valid any more: %s", mixin.type_id, error.message)
                pending.remove(mixin)
                progressed = True
        if not progressed:
            for mixin in pending:
                log.error("stored mixin %s depends on mixins in a cycle: %s", mixin.type_id, mixin.depends)
            break
    return saved


__all__ = ["Action", "Kind", "add_mixins", "discover", "load_stored_mixins", "remove_mixins"]

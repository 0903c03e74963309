"""Collections: listing with filters and pagination, and mixin-collection membership (GFD.223 §6, §7, §11).

Kind collections list their members (the `resource` and `link` kinds include sub-type instances,
core.md §2.9); mixin collections list the entities carrying the mixin; unbound paths list
everything below them. Every listing is scoped to the caller's tenant. PUT/POST/DELETE on a mixin
collection change its membership, one update operation per entity that changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from occipy.errors import BadRequest, Forbidden, NotFound, PageTooLarge
from occipy.model.category import Kind, Mixin
from occipy.model.entity import Entity
from occipy.rendering import negotiate
from occipy.rendering.messages import CategoryRef, Filter
from occipy.service.cloud import EditSpec
from occipy.service.context import Context
from occipy.service.edits import ASSOCIATE, DISSOCIATE, Edit, apply_edit, check_dissociation, template_family
from occipy.service.handlers.base import (
    Env,
    delete_wait,
    find_entity,
    outcome_of,
    settle,
    visible_categories,
    visible_mixin,
)
from occipy.service.handlers.entities import delete_entities
from occipy.service.parse import Listing, Locations, Page
from occipy.service.queue import Change, Job
from occipy.service.quotas import Reservation, release_all, release_when_done
from occipy.service.results import CollectionResult, EmptyResult, Result
from occipy.service.routes import Route, Target
from occipy.store.base import EntityQuery


def page_bounds(env: Env, page: Page) -> tuple[int, int | None]:
    """GFD.223 §6: "If the number of entities requested is too large for the provider, 413 MUST be returned"."""
    if page.number is None:
        return 0, None
    if page.number > env.options.max_page:
        raise PageTooLarge(f"number {page.number} is larger than the largest page this server gives "
                           f"({env.options.max_page})")
    return (page.page - 1) * page.number, page.number


def _kinds_below(env: Env, kind_id: str) -> tuple[str, ...]:
    """The kind and every kind that has it as an ancestor (core.md §2.9 decision)."""
    return tuple(k.type_id for k in env.registry.kinds() if kind_id in env.registry.ancestors(k.type_id))


def _matches(env: Env, entity: Entity, wanted: Filter, values: Mapping[str, Any]) -> bool:
    """http-protocol.md §8.2: at least one filter category (kind chain or mixins with depends) and
    every filter attribute present with an equal value."""
    registry = env.registry
    if wanted.categories:
        related = set(registry.ancestors(entity.kind)) | set(registry.depends_closure(entity.mixins))
        if not any(registry.canonical(ref.type_id) in related for ref in wanted.categories):
            return False
    for name, value in values.items():
        current = entity.attributes.get(name)
        if current is None:
            return False
        if isinstance(current, bool) or isinstance(value, bool):
            if current is not value and str(current).lower() != str(value).lower():
                return False
        elif isinstance(current, (int, float)) and isinstance(value, (int, float)):
            if float(current) != float(value):
                return False
        elif isinstance(current, (int, float)) and isinstance(value, str):
            try:
                if float(current) != float(value):
                    return False
            except ValueError:
                return False
        elif current != value:
            return False
    return True


def _query_for(env: Env, ctx: Context, route: Route) -> EntityQuery:
    category = route.category
    tenant = ctx.tenant_filter
    if isinstance(category, Kind):
        return EntityQuery(kinds=_kinds_below(env, category.type_id), tenant=tenant)
    if isinstance(category, Mixin):
        return EntityQuery(mixin=category.type_id, tenant=tenant)
    return EntityQuery(prefix=route.path, tenant=tenant)


def _collection_keys(env: Env, route: Route) -> str:
    category = route.category
    if isinstance(category, Kind):
        if category.type_id == "http://schemas.ogf.org/occi/core#entity":
            return "both"
        return "links" if env.registry.is_link_kind(category.type_id) else "resources"
    return "both"


def _check_mixin_visible(ctx: Context, route: Route) -> None:
    category = route.category
    if isinstance(category, Mixin) and category.user_defined and not ctx.sees(category.tenant):
        raise NotFound(f"nothing at {route.path}")


async def list_collection(env: Env, ctx: Context, route: Route, message: Listing) -> Result:
    """GET on a collection or unbound path: 200 and the (filtered, paged) entity collection."""
    _check_mixin_visible(ctx, route)
    registry = env.registry
    offset, limit = page_bounds(env, message.page)
    wanted = message.filter
    values = {registry.canonical_attribute(k): v for k, v in message.attributes.items()}
    if message.category:
        type_id = message.category
        if "#" not in type_id:
            # issue 8: another tenant's user mixin is as unknown here as anywhere
            found = [c.type_id for c in visible_categories(env, ctx) if c.term == type_id]
            if not found:
                raise BadRequest(f"unknown category {type_id}")
            type_id = found[0]
        scheme, _, term = type_id.rpartition("#")
        wanted = Filter(categories=(*wanted.categories, CategoryRef(scheme + "#", term)), attributes=wanted.attributes)
    base = _query_for(env, ctx, route)
    if route.target is Target.UNBOUND and route.path != "/" and not await env.store.count(base) \
            and not any((getattr(c, "location", None) or "").startswith(route.path)
                        for c in visible_categories(env, ctx)):
        raise NotFound(f"nothing is stored below {route.path}")
    keys = _collection_keys(env, route)
    if not wanted and not values:
        query = EntityQuery(kinds=base.kinds, mixin=base.mixin, prefix=base.prefix, tenant=base.tenant,
                            offset=offset, limit=limit)
        if not negotiate.is_json(ctx.media):
            # text renderings of a collection are locations only (GFD.229 §5.3)
            return CollectionResult(paths=await env.store.query_locations(query), keys=keys)
        return CollectionResult(members=await env.store.query(query), keys=keys)
    # Scale-out (docs/scaleout.md): string filters go to the store, which answers them from its
    # attribute indexes; what the store cannot decide (categories, numbers) is matched here.
    pushed = _pushed_down(env, values)
    exact = not wanted and len(pushed) == len(values)
    query = EntityQuery(kinds=base.kinds, mixin=base.mixin, prefix=base.prefix, tenant=base.tenant,
                        attributes=pushed, offset=offset if exact else 0, limit=limit if exact else None)
    members = [e for e in await env.store.query(query) if _matches(env, e, wanted, values)]
    page = members if exact else members[offset:offset + limit] if limit is not None else members[offset:]
    return CollectionResult(members=page, keys=keys)


_NOT_STRINGS: dict[tuple[int, int], frozenset[str]] = {}


def _pushed_down(env: Env, values: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The filters the store can decide exactly: string values of attributes no category types otherwise."""
    key = (id(env.registry), env.registry.version)
    not_strings = _NOT_STRINGS.get(key)
    if not_strings is None:
        _NOT_STRINGS.clear()
        not_strings = _NOT_STRINGS[key] = frozenset(
            adef.name for category in env.registry.categories() for adef in getattr(category, "attributes", ())
            if adef.type != "string")
    return tuple((name, value) for name, value in values.items() if isinstance(value, str) and name not in not_strings)


async def delete_kind_members(env: Env, ctx: Context, route: Route, message: object) -> Result:
    """DELETE on a Kind collection: delete every member the caller can see (GFD.223 §11.4.1)."""
    members = await env.store.query(_query_for(env, ctx, route))
    jobs = await delete_entities(env, ctx, members)
    await settle([job for job, _ in jobs], delete_wait(env, ctx))
    return EmptyResult()


async def delete_unbound(env: Env, ctx: Context, route: Route, message: object) -> Result:
    """DELETE on an unbound path: delete everything below it (GFD.185 §3.4.2); `/` only if enabled."""
    if route.path == "/" and not env.options.allow_delete_root:
        raise Forbidden("deleting every entity (DELETE /) is disabled on this server")
    members = await env.store.query(EntityQuery(prefix=route.path, tenant=ctx.tenant_filter))
    if not members:
        raise NotFound(f"nothing is stored below {route.path}")
    jobs = await delete_entities(env, ctx, members)
    await settle([job for job, _ in jobs], delete_wait(env, ctx))
    return EmptyResult()


# ---- mixin-collection membership ------------------------------------------------------------------


async def _named_entities(env: Env, ctx: Context, message: Locations) -> list[Entity]:
    """The entities a mixin-collection request names; an unknown one is 404 (http-protocol.md §5.3)."""
    result: list[Entity] = []
    for raw in message.items:
        path = ctx.local_path(raw)
        if "://" in path:
            raise BadRequest(f"{raw} is not a location on this server")
        entity = await find_entity(env, ctx, path)
        if entity is None or env.cloud.lanes.deleting(entity.location):
            raise NotFound(f"no entity at {raw}")
        if entity.location not in {e.location for e in result}:
            result.append(entity)
    return result


def _mixin_of(ctx: Context, route: Route) -> Mixin:
    if not isinstance(route.category, Mixin):
        raise BadRequest("only mixin collections have members to associate")
    _check_mixin_visible(ctx, route)
    return route.category


def _tag_only(env: Env, mixin: Mixin, entity: Entity, updated: Entity) -> bool:
    """Whether (dis)associating the mixin changes nothing but the entity's membership of a user
    mixin: no template, no attribute, nothing the cloud applies (D-TAGS-AT-ONCE)."""
    if not mixin.user_defined or template_family(env.registry, mixin.type_id) is not None:
        return False
    if updated.attributes != entity.attributes:
        return False
    if (set(updated.mixins) ^ set(entity.mixins)) - {mixin.type_id}:
        return False
    return not env.cloud.live_changes(entity, updated)[0]


def _tag(mixin_id: str, mode: str) -> Change:
    """The membership change, applied to the entity as it is when written (idempotent)."""

    def change(entity: Entity) -> Entity:
        if mode == ASSOCIATE:
            return entity if mixin_id in entity.mixins else entity.evolve(mixins=[*entity.mixins, mixin_id])
        return entity.evolve(mixins=[m for m in entity.mixins if m != mixin_id]) if mixin_id in entity.mixins \
            else entity

    return change


async def _membership(env: Env, ctx: Context, mixin: Mixin, changes: Sequence[tuple[Entity, str]]) -> Result:
    """Queue one membership edit per changed entity (checked first: all or none), then answer with
    the collection (GFD.223 §11.2-§11.4).

    D-TAGS-AT-ONCE: a user mixin's membership (a tag: no cloud effect) of an entity whose lane has
    work pending (a create still running, queued actions) is written at once, ahead of that work,
    which keeps it; all such changes of the request in one batch.
    """
    clouds = env.cloud
    lanes = clouds.lanes
    visible = visible_mixin(ctx)
    planned = []
    at_once: dict[str, Change] = {}
    grown: dict[str, list[Entity]] = {}
    for entity, mode in changes:
        edit = Edit(mode=mode, mixins=(mixin.type_id,))
        updated = apply_edit(env.registry, entity, edit, visible=visible)  # 4xx now, for every member
        if lanes.immediate and lanes.busy(entity.location) and _tag_only(env, mixin, entity, updated):
            at_once[entity.location] = _tag(mixin.type_id, mode)
            continue
        if clouds.live_changes(entity, updated)[0]:
            clouds.of(entity).check()
        planned.append((entity, edit))
        grown.setdefault(entity.tenant, []).append(updated)
    # issue 8: a template mixin that grows cores or memory counts against the owners' quotas
    held: list[Reservation | None] = []
    try:
        for tenant, entities in grown.items():
            held.append(await env.quotas.reserve(env.registry, env.store, env.options.quotas, tenant, entities))
    except BaseException:
        release_all(held)
        raise
    jobs: list[Job] = []
    try:
        if at_once:
            await lanes.apply_now(at_once)
        for entity, edit in planned:
            op = clouds.lanes.new_operation(entity.location, "update", entity.tenant, ctx.principal.user,
                                            params=edit.params())
            jobs.append(await clouds.lanes.submit(op, EditSpec(clouds.of(entity), entity.location, edit, visible)))
    finally:
        for reservation in held:
            release_when_done(reservation, [job.done for job in jobs])
    ops = await settle(jobs, env.options.sync_wait)
    members = await env.store.query(EntityQuery(mixin=mixin.type_id, tenant=ctx.tenant_filter))
    recorded = [op for job, op in zip(jobs, ops) if job.recorded]
    return CollectionResult(members=members, keys="both",
                            outcome=outcome_of(jobs[0] if recorded else None, recorded[0] if recorded else None,
                                               others=recorded))


async def associate(env: Env, ctx: Context, route: Route, message: Locations) -> Result:
    """POST to a mixin collection: associate the named entities, all or none (GFD.223 §11.3.2)."""
    mixin = _mixin_of(ctx, route)
    named = await _named_entities(env, ctx, message)
    if not named:
        raise BadRequest("name at least one entity (X-OCCI-Location) to associate")
    return await _membership(env, ctx, mixin, [(e, ASSOCIATE) for e in named if mixin.type_id not in e.mixins])


async def replace_members(env: Env, ctx: Context, route: Route, message: Locations) -> Result:
    """PUT to a mixin collection: the membership becomes exactly the named entities (GFD.223 §11.2)."""
    mixin = _mixin_of(ctx, route)
    named = await _named_entities(env, ctx, message)
    keep = {e.location for e in named}
    changes = [(e, ASSOCIATE) for e in named if mixin.type_id not in e.mixins]
    current = await env.store.query(EntityQuery(mixin=mixin.type_id, tenant=ctx.tenant_filter))
    leaving = [e for e in current if e.location not in keep]
    if leaving:
        check_dissociation(env.registry, mixin)
    changes.extend((e, DISSOCIATE) for e in leaving)
    return await _membership(env, ctx, mixin, changes)


async def dissociate(env: Env, ctx: Context, route: Route, message: Locations) -> Result:
    """DELETE on a mixin collection: remove the named entities (all, without a payload) (GFD.223 §11.4.2)."""
    mixin = _mixin_of(ctx, route)
    if message.given:
        named = await _named_entities(env, ctx, message)
    else:
        named = await env.store.query(EntityQuery(mixin=mixin.type_id, tenant=ctx.tenant_filter))
    leaving = [e for e in named if mixin.type_id in e.mixins]
    if leaving:
        check_dissociation(env.registry, mixin)
    return await _membership(env, ctx, mixin, [(e, DISSOCIATE) for e in leaving])


__all__ = ["associate", "delete_kind_members", "delete_unbound", "dissociate", "list_collection", "outcome_of",
           "replace_members"]

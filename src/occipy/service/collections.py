"""Collections: listing with filters and pagination, and mixin-collection membership (GFD.223 §6, §7, §11).

Kind collections list their members (the `resource` and `link` kinds include sub-type
instances, core.md §2.9); mixin collections list the entities carrying the mixin; unbound paths
list everything below them. PUT/POST/DELETE on a mixin collection change its membership.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from occipy.errors import BadRequest, Forbidden, NotFound, PageTooLarge
from occipy.model.category import Kind, Mixin
from occipy.model.entity import Entity
from occipy.rendering import negotiate
from occipy.rendering.messages import Filter
from occipy.service import entities as entity_ops
from occipy.service import payload
from occipy.service.messages import OcciRequest
from occipy.service.reply import Reply
from occipy.service.routes import Route, Target
from occipy.store.base import Batch, EntityQuery

if TYPE_CHECKING:
    from occipy.service.core import Service

_INT = re.compile(r"[0-9]{1,4000}\Z")


def page_bounds(svc: Service, request: OcciRequest) -> tuple[int, int | None]:
    """GFD.223 §6: `page` and `number` together; number too large -> 413; pages are 1-based."""
    query = request.query
    page, number = query.get("page"), query.get("number")
    if page is None and number is None:
        return 0, None
    if page is None or number is None:
        raise BadRequest("pagination needs both page and number")
    if not _INT.match(page) or not _INT.match(number) or int(page) < 1 or int(number) < 1:
        raise BadRequest("page and number must be positive integers")
    size = int(number)
    if size > svc.options.max_page:
        # "If the number of entities requested is too large for the provider, 413 MUST be returned"
        raise PageTooLarge(f"number {size} is larger than the largest page this server gives ({svc.options.max_page})")
    return (int(page) - 1) * size, size


def _kinds_below(svc: Service, kind_id: str) -> tuple[str, ...]:
    """The kind and every kind that has it as an ancestor (core.md §2.9 decision)."""
    return tuple(k.type_id for k in svc.registry.kinds() if kind_id in svc.registry.ancestors(k.type_id))


def _matches(svc: Service, entity: Entity, wanted: Filter, values: Mapping[str, Any]) -> bool:
    """http-protocol.md §8.2: at least one filter category (kind chain or mixins with depends) and
    every filter attribute present with an equal value."""
    registry = svc.registry
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


def _filter_values(svc: Service, request: OcciRequest, wanted: Filter) -> dict[str, Any]:
    values = {svc.registry.canonical_attribute(k): v for k, v in wanted.attributes.items()}
    name, value = request.query.get("attribute"), request.query.get("value")
    if name is not None:
        if value is None:
            raise BadRequest("the attribute filter needs a value")
        values[unquote(name)] = unquote(value)
    return values


def _query_for(svc: Service, route: Route) -> EntityQuery:
    category = route.category
    if isinstance(category, Kind):
        return EntityQuery(kinds=_kinds_below(svc, category.type_id))
    if isinstance(category, Mixin):
        return EntityQuery(mixin=category.type_id)
    return EntityQuery(prefix=route.path)


def _collection_keys(svc: Service, route: Route) -> str:
    category = route.category
    if isinstance(category, Kind):
        if category.type_id == "http://schemas.ogf.org/occi/core#entity":
            return "both"
        return "links" if svc.registry.is_link_kind(category.type_id) else "resources"
    return "both"


async def list_collection(svc: Service, request: OcciRequest, route: Route) -> Reply:
    """GET on a collection or unbound path: 200 and the (filtered, paged) entity collection."""
    offset, limit = page_bounds(svc, request)
    wanted = payload.filters(request)
    values = _filter_values(svc, request, wanted)
    raw_category = request.query.get("category")
    if raw_category:
        from occipy.rendering.messages import CategoryRef

        type_id = unquote(raw_category)
        if "#" not in type_id:
            found = [c.type_id for c in svc.registry.categories() if c.term == type_id]
            if not found:
                raise BadRequest(f"unknown category {type_id}")
            type_id = found[0]
        scheme, _, term = type_id.rpartition("#")
        wanted = Filter(categories=(*wanted.categories, CategoryRef(scheme + "#", term)), attributes=wanted.attributes)
    base = _query_for(svc, route)
    if route.target is Target.UNBOUND and route.path != "/" and not await svc.store.count(base) \
            and not any(location.startswith(route.path) for location in svc.registry.locations()):
        raise NotFound(f"nothing is stored below {route.path}")
    keys = _collection_keys(svc, route)
    if not wanted and not values:
        query = EntityQuery(kinds=base.kinds, mixin=base.mixin, prefix=base.prefix, offset=offset, limit=limit)
        if not negotiate.is_json(negotiate.response_type(request.header("accept"), listing=True)):
            # text renderings of a collection are locations only (GFD.229 §5.3)
            return Reply(paths=await svc.store.query_locations(query), collection_keys=keys)
        members = await svc.store.query(query)
        return Reply(collection=_decorated(svc, request, members), collection_keys=keys)
    members = [e for e in await svc.store.query(base) if _matches(svc, e, wanted, values)]
    page = members[offset:offset + limit] if limit is not None else members
    return Reply(collection=_decorated(svc, request, page), collection_keys=keys)


def _decorated(svc: Service, request: OcciRequest, members: Sequence[Entity]) -> Sequence[Entity]:
    """The stored entities themselves: the renderer decorates (and caches) JSON renderings."""
    return members


async def delete_kind_members(svc: Service, request: OcciRequest, route: Route) -> Reply:
    """DELETE on a Kind collection: delete every member (GFD.223 §11.4.1)."""
    members = await svc.store.query(_query_for(svc, route))
    await entity_ops.delete_entities(svc, request, members)
    return Reply()


async def delete_unbound(svc: Service, request: OcciRequest, route: Route) -> Reply:
    """DELETE on an unbound path: delete everything below it (GFD.185 §3.4.2); `/` only if enabled."""
    if route.path == "/" and not svc.options.allow_delete_root:
        raise Forbidden("deleting every entity (DELETE /) is disabled on this server")
    members = await svc.store.query(EntityQuery(prefix=route.path))
    if not members:
        raise NotFound(f"nothing is stored below {route.path}")
    await entity_ops.delete_entities(svc, request, members)
    return Reply()


async def _named_entities(svc: Service, request: OcciRequest) -> list[Entity]:
    """The entities a mixin-collection request names; an unknown one is 404 (http-protocol.md §5.3)."""
    result: list[Entity] = []
    for raw in payload.locations(request):
        path = entity_ops.local_path(request, raw)
        if "://" in path:
            raise BadRequest(f"{raw} is not a location on this server")
        entity = await svc.store.get(path) if path.startswith("/") else await svc.store.get_by_id(path)
        if entity is None:
            raise NotFound(f"no entity at {raw}")
        if entity.location not in {e.location for e in result}:
            result.append(entity)
    return result


async def _membership_reply(svc: Service, request: OcciRequest, mixin_id: str) -> Reply:
    members = await svc.store.query(EntityQuery(mixin=mixin_id))
    return Reply(collection=_decorated(svc, request, members), collection_keys="both")


def _mixin_of(route: Route) -> Mixin:
    if not isinstance(route.category, Mixin):
        raise BadRequest("only mixin collections have members to associate")
    return route.category


async def _write_memberships(svc: Service, request: OcciRequest, changes: Sequence[tuple[Entity, Entity]],
                             extra: Sequence[Entity] = ()) -> None:
    """Write changed memberships atomically; template changes start cloud updates (GFD.224 §3.5)."""
    batch = Batch(put=[*(updated for _, updated in changes), *extra])
    launches = []
    for stored, updated in changes:
        op = svc.provisioning.plan_update(stored, updated, request.user)
        if op is not None:
            batch.put_operations.append(op)
            launches.append((stored, updated, op))
    if not batch:
        return
    await svc.store.commit(batch)
    for stored, updated, op in launches:
        svc.provisioning.launch_update(stored, updated, op)
    await svc.jobs.wait(batch.put_operations, svc.options.sync_wait)


async def associate(svc: Service, request: OcciRequest, route: Route) -> Reply:
    """POST to a mixin collection: associate the named entities, all or none (GFD.223 §11.3.2)."""
    mixin = _mixin_of(route)
    named = await _named_entities(svc, request)
    if not named:
        raise BadRequest("name at least one entity (X-OCCI-Location) to associate")
    changes = []
    for entity in named:
        if mixin.type_id in entity.mixins:
            continue
        svc.jobs.ensure_idle(entity.location)
        changes.append((entity, entity_ops.with_mixin(svc, entity, mixin.type_id)))
    await _write_memberships(svc, request, changes)
    return await _membership_reply(svc, request, mixin.type_id)


async def replace_members(svc: Service, request: OcciRequest, route: Route) -> Reply:
    """PUT to a mixin collection: the membership becomes exactly the named entities (GFD.223 §11.2)."""
    mixin = _mixin_of(route)
    named = await _named_entities(svc, request)
    keep = {e.location for e in named}
    changes = []
    for entity in named:
        if mixin.type_id not in entity.mixins:
            svc.jobs.ensure_idle(entity.location)
            changes.append((entity, entity_ops.with_mixin(svc, entity, mixin.type_id)))
    removed = [_dissociated(svc, entity, mixin) for entity in await svc.store.query(EntityQuery(mixin=mixin.type_id))
               if entity.location not in keep]
    await _write_memberships(svc, request, changes, removed)
    return await _membership_reply(svc, request, mixin.type_id)


async def dissociate(svc: Service, request: OcciRequest, route: Route) -> Reply:
    """DELETE on a mixin collection: remove the named entities (all, without a payload) (GFD.223 §11.4.2)."""
    mixin = _mixin_of(route)
    has_payload = bool(request.body.strip()) or any(n in payload.OCCI_HEADERS for n, _ in request.headers)
    if has_payload:
        named = await _named_entities(svc, request)
    else:
        named = await svc.store.query(EntityQuery(mixin=mixin.type_id))
    batch = Batch(put=[_dissociated(svc, e, mixin) for e in named if mixin.type_id in e.mixins])
    if batch:
        await svc.store.commit(batch)
    return await _membership_reply(svc, request, mixin.type_id)


def _dissociated(svc: Service, entity: Entity, mixin: Mixin) -> Entity:
    if entity_ops.template_family(svc, mixin.type_id) is not None and not mixin.user_defined:
        raise BadRequest(f"the template {mixin.type_id} cannot be taken away; associate another one to replace it")
    if mixin.type_id in entity_ops.CREATION_ONLY:
        raise BadRequest(f"mixin {mixin.type_id} cannot be removed after creation")
    return entity_ops.without_mixin(svc, entity, mixin.type_id)

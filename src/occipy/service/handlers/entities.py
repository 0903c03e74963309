"""Entity CRUD (GFD.223 §10, §11.3.1; GFD.185 §3.4.4, §3.4.5; core.md §7, §8).

Builds entities from parsed renderings, checks every attribute against the merged definitions of
the Kind and mixins (`service/edits.py`), and hands every write to the entity's lane
(`service/queue.py`): creates, updates and deletes become operations, run in order.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from occipy.errors import BadRequest, Conflict, InvalidAttribute, NotFound
from occipy.model import state as fsm
from occipy.model.category import Kind
from occipy.model.entity import Entity
from occipy.model.ids import uuid4_text
from occipy.model.registry import LINK, RESOURCE
from occipy.rendering.messages import EntityMessage, LinkMessage
from occipy.service.cloud import CreateSpec, DeleteSpec, EditSpec
from occipy.service.context import Context
from occipy.service.edits import (
    MERGE,
    REPLACE,
    Edit,
    apply_edit,
    check_attributes,
    check_required,
    resolve_mixins,
    with_defaults,
)
from occipy.service.handlers.base import Env, delete_wait, find_entity, outcome_of, settle, visible_mixin
from occipy.service.parse import Entities, NoBody, OneEntity
from occipy.service.queue import Job
from occipy.service.quotas import Reservation
from occipy.service.results import CreatedResult, EmptyResult, EntityResult, Result
from occipy.service.routes import Route
from occipy.store.base import QUEUED, Batch, EntityQuery, Operation

SAFE_SEGMENT: Final = re.compile(r"[A-Za-z0-9._~-]+\Z")
URN_UUID: Final = re.compile(r"urn:uuid:([0-9a-fA-F-]{36})\Z")


# ---- building new entities -----------------------------------------------------------------------


class Creation:
    """Entities being created by one request: they see each other (ids, locations) before commit.

    Ids and locations are reserved in `env` before the store is asked, and released when the
    request's work is written (or refused): two concurrent creates of one location cannot both win.
    """

    def __init__(self, env: Env, ctx: Context) -> None:
        self.env = env
        self.ctx = ctx
        self.entities: list[Entity] = []
        self.ids: list[str] = []
        self.locations: list[str] = []
        self.quota: Reservation | None = None
        # Ids made here from a fresh uuid4: their location needs no read to know it is free (the
        # insert-only write refuses a taken one anyway, docs/scaleout.md).
        self.generated: set[str] = set()

    def release(self) -> None:
        self.env.creating_ids.difference_update(self.ids)
        self.env.creating_locations.difference_update(self.locations)
        if self.quota is not None:
            self.quota.release()  # the entities are stored now, or were never written

    async def _reserve_id(self, proposed: object) -> str:
        if proposed is None:
            entity_id = f"urn:uuid:{uuid4_text()}"
            self.ids.append(entity_id)
            self.env.creating_ids.add(entity_id)
            self.generated.add(entity_id)
            return entity_id
        if not isinstance(proposed, str) or not proposed or any(c.isspace() or ord(c) < 32 for c in proposed):
            raise InvalidAttribute("occi.core.id must be a URI without white space")
        if proposed in self.env.creating_ids:
            raise Conflict(f"an entity with occi.core.id {proposed} already exists")
        self.env.creating_ids.add(proposed)
        self.ids.append(proposed)
        if await self.env.store.get_by_id(proposed) is not None:
            raise Conflict(f"an entity with occi.core.id {proposed} already exists")
        return proposed

    async def _reserve_location(self, location: str, *, fallback: Kind | None = None, fresh: bool = False) -> str:
        env = self.env
        taken = location in env.creating_locations
        if not taken:
            env.creating_locations.add(location)
            self.locations.append(location)
            if fresh:
                return location
            taken = await env.store.get(location) is not None or env.cloud.lanes.deleting(location)
            if taken:
                env.creating_locations.discard(location)
                self.locations.remove(location)
        if taken:
            if fallback is None:
                raise Conflict(f"location {location} is already taken")
            assert fallback.location is not None
            return await self._reserve_location(fallback.location + uuid4_text())
        return location

    async def new_location(self, kind: Kind, entity_id: str) -> str:
        assert kind.location is not None
        match = URN_UUID.match(entity_id)
        segment = match.group(1) if match else entity_id if SAFE_SEGMENT.match(entity_id) else uuid4_text()
        exact = bool(match) or segment == entity_id
        return await self._reserve_location(kind.location + segment, fallback=None if exact else kind,
                                            fresh=entity_id in self.generated)

    async def build(self, message: EntityMessage, kind: Kind, *, location: str | None = None,
                    source: str | None = None) -> Entity:
        """One new entity (and its inline links) from a create request; raises on any bad value."""
        env = self.env
        registry = env.registry
        if kind.location is None or kind.type_id in (RESOURCE, LINK) and kind.location is None:
            raise BadRequest(f"kind {kind.type_id} cannot be instantiated")
        exts = env.cloud.extensions
        mixins = resolve_mixins(registry, kind.type_id, message.mixins, creating=True, visible=visible_mixin(self.ctx))
        cloud = env.cloud.for_new(mixins)
        cloud.check_realisable(kind.type_id, mixins)  # [monitoring] 501: not offered in discovery
        values = check_attributes(registry, kind.type_id, mixins, _input(env, message.attributes),
                                  lenient=message.lenient, current=None)
        entity_id = await self._reserve_id(values.pop("occi.core.id", None))
        if location is None:
            location = await self.new_location(kind, entity_id)
        else:
            location = await self._reserve_location(location)
        attributes: dict[str, Any] = {"occi.core.id": entity_id, **values}
        is_link = registry.is_link_kind(kind.type_id)
        source_attributes = None
        if is_link:
            ends = await self._link_ends(kind, attributes, source)
            attributes.update(ends.attributes)
            source_attributes = ends.source.attributes
            cloud = env.cloud.of(ends.source)  # a link lives in its source's cloud
        if cloud.binding(kind.type_id) is not None:
            # D-CLOUDS: with several clouds, every entity a cloud realises shows that cloud's mixin.
            mixins = env.cloud.mixins_for(cloud, mixins)
        state_name = fsm.state_attribute(kind.type_id)
        attributes = with_defaults(registry, kind.type_id, mixins, attributes)
        if state_name is not None:
            attributes[state_name] = fsm.INITIAL_STATE[kind.type_id]
            attributes.pop(state_name + ".message", None)
        # The extensions' checks and server-set values (docs/extensions.md: SLA dates, monitoring).
        exts.validate(kind.type_id, mixins, attributes, registry)
        attributes.update(exts.on_create(kind.type_id, mixins, attributes, registry, datetime.now(UTC),
                                         source_attributes))
        # [monitoring] what the realising backend writes back (MON-03/04 best-fit timing).
        attributes.update(cloud.creation_values(kind.type_id, attributes))
        principal = self.ctx.principal
        entity = Entity(kind=kind.type_id, entity_id=entity_id, location=location, mixins=tuple(mixins),
                        attributes=attributes, tenant=principal.tenant, owner=principal.user)
        if is_link:
            entity = await self._names(entity)
        check_required(registry, entity)
        self.entities.append(entity)
        if not is_link:
            for link_message in message.links:
                await self.build_inline_link(entity, link_message)
        elif message.links:
            # GFD.185 §3.4.4: "for an entity of the Link type, Link renderings MUST NOT be allowed"
            raise BadRequest("a link cannot carry links")
        return entity

    async def build_inline_link(self, resource: Entity, link: LinkMessage) -> Entity:
        """A link created with its source resource (GFD.185 §3.4.5 inline creation)."""
        registry = self.env.registry
        if link.kind is None:
            raise BadRequest("an inline link needs a category naming its kind")
        kind = registry.kind(link.kind)
        if not registry.is_link_kind(kind.type_id):
            raise BadRequest(f"{link.kind} is not a link kind")
        if link.target is None:
            raise BadRequest("an inline link needs a target")
        attributes = dict(link.attributes)
        attributes["occi.core.target"] = link.target
        attributes.pop("occi.core.source", None)
        if link.target_kind and "occi.core.target.kind" not in attributes:
            attributes["occi.core.target.kind"] = link.target_kind
        message = EntityMessage(kind=kind.type_id, mixins=link.mixins, attributes=attributes, lenient=link.lenient)
        location = None
        if link.self_location:
            candidate = self.ctx.local_path(link.self_location)
            if kind.location and candidate.startswith(kind.location) and SAFE_SEGMENT.match(
                    candidate[len(kind.location):]):
                location = candidate
        return await self.build(message, kind, location=location, source=resource.location)

    async def find(self, location: str) -> Entity | None:
        for entity in self.entities:
            if entity.location == location:
                return entity
        return await find_entity(self.env, self.ctx, location)

    async def _link_ends(self, kind: Kind, attributes: dict[str, Any], source: str | None) -> Ends:
        """Source and target of a new link (http-protocol.md §6.7 rules): both must exist in the
        caller's tenant (a link cannot join two tenants' resources)."""
        raw_source = source or attributes.get("occi.core.source")
        raw_target = attributes.get("occi.core.target")
        if not isinstance(raw_source, str) or not raw_source:
            raise InvalidAttribute("attribute occi.core.source is required")
        if not isinstance(raw_target, str) or not raw_target:
            raise InvalidAttribute("attribute occi.core.target is required")
        return await link_ends(self.env, self.ctx, kind.type_id, raw_source, raw_target, self.find)

    async def _names(self, link: Entity) -> Entity:
        """Multiplicity-1 link attributes (GFD.224 §3.4): the driver names them, or neutral names."""
        cloud = self.env.cloud.of(link)
        source = link.source
        existing = (await self.env.store.links_from([source])).get(source, []) if source else []
        siblings = [e for e in [*existing, *self.entities] if e.kind == link.kind and e.source == source]
        kinds = {}
        for end in (link.source, link.target):
            found = await self.find(end) if end and end.startswith("/") else None
            if found is not None:
                kinds[found.location] = found.kind
        return cloud.propose(link, siblings, cloud.provisions_link(link, kinds))

    async def commit(self) -> tuple[list[Job], list[Operation]]:
        """Start creating every entity: one durable batch for several, the lane for one.

        Returns the jobs (whose operations the answer names) and, when several entities were
        written at once, their operation records.
        """
        env = self.env
        clouds = env.cloud
        lanes = clouds.lanes
        # issue 8: quotas are checked, and the new entities' usage held, before anything is written
        # (403 QuotaExceeded: nothing is created); `release()` lets go once they are stored.
        self.quota = await env.quotas.reserve(env.registry, env.store, env.options.quotas,
                                              self.ctx.principal.tenant, self.entities)
        kinds = {e.location: e.kind for e in self.entities}
        for entity in self.entities:
            for end in (entity.source, entity.target):
                if end and end.startswith("/") and end not in kinds:
                    found = await env.store.get(end)
                    if found is not None:
                        kinds[end] = found.kind
        provisioned = [clouds.of(e).binding(e.kind) is not None
                       and (not e.source or clouds.of(e).provisions_link(e, kinds)) for e in self.entities]
        for entity, backed in zip(self.entities, provisioned):
            if backed:
                clouds.of(entity).check()  # 503 naming the cloud when it cannot be reached
        ctx = self.ctx
        if len(self.entities) == 1:
            entity = self.entities[0]
            cloud = clouds.of(entity)
            binding = cloud.binding(entity.kind)
            waits = [f for end in (entity.source, entity.target) if end for f in lanes.waits_for(end)]
            op = lanes.new_operation(entity.location, "create", entity.tenant, ctx.principal.user)
            if binding is not None and provisioned[0]:
                lanes.project(entity.location, binding.created_state)
            job = await lanes.submit(op, CreateSpec(cloud, entity, provisioned[0], waits))
            return [job], []
        # Several entities (inline links, collection creates): written first, then provisioned.
        # Insert-only (`new`, scale-out): a location another server process created meanwhile is 409.
        batch = Batch()
        specs: list[tuple[Operation, CreateSpec]] = []
        for entity, backed in zip(self.entities, provisioned):
            if not backed:
                batch.new.append(entity)
                continue
            op = lanes.new_operation(entity.location, "create", entity.tenant, ctx.principal.user)
            specs.append((op, CreateSpec(clouds.of(entity), entity, True)))
            batch.new.append(specs[-1][1].prepare(None) or entity)
            batch.put_operations.append(op)
        await env.store.commit(batch)
        jobs = []
        for op, spec in specs:
            entity = spec.entity
            spec.waits = [f for end in (entity.source, entity.target) if end for f in lanes.waits_for(end)]
            binding = clouds.of(entity).binding(entity.kind)
            if binding is not None:
                lanes.project(entity.location, binding.created_state)
            jobs.append(await lanes.resume(op, spec))
        return jobs, [op for op, _ in specs]


@dataclass(frozen=True, slots=True)
class Ends:
    """A link's checked ends: its normalised attributes and the source entity."""

    attributes: dict[str, Any]
    source: Entity


async def link_ends(env: Env, ctx: Context, kind_id: str, raw_source: str, raw_target: str,
                    find: Callable[[str], Awaitable[Entity | None]] | None = None) -> Ends:
    """Checked, normalised `occi.core.source`/`target` (+ `target.kind`) of a link (http-protocol.md
    §6.7), with the ends its kind allows (GFD.224 §3.4: a networkinterface from a compute to a
    network, ...; the extensions' link-ends tables)."""
    async def by_scope(path: str) -> Entity | None:
        return await find_entity(env, ctx, path)

    lookup = find if find is not None else by_scope
    source_path = ctx.local_path(raw_source)
    source_entity = await lookup(source_path)
    if source_entity is None:
        raise NotFound(f"link source {raw_source} does not exist")
    if not env.registry.is_resource_kind(source_entity.kind):
        raise BadRequest(f"link source {raw_source} is not a resource")
    result: dict[str, Any] = {"occi.core.source": source_path}
    target_path = ctx.local_path(raw_target)
    result["occi.core.target"] = target_path
    target_kind: str | None = None
    target_entity: Entity | None = None
    if target_path.startswith("/"):
        target_entity = await lookup(target_path)
        if target_entity is None:
            raise NotFound(f"link target {raw_target} does not exist")
        target_kind = result["occi.core.target.kind"] = target_entity.kind
    elif "://" not in target_path and ":" not in target_path:
        raise InvalidAttribute(f"link target {raw_target} is neither a location nor an absolute URI")
    if target_kind is not None:
        crossing = env.cloud.cross_cloud(source_entity, target_entity)
        if crossing is not None:
            # D-CLOUDS: no driver declares links across clouds.
            raise BadRequest(f"a {kind_id.rpartition('#')[2]} cannot join {source_path} in cloud {crossing[0].name} "
                             f"and {target_path} in cloud {crossing[1].name}")
    exts = env.cloud.extensions
    rule = exts.link_ends(env.registry, kind_id)
    edges: list[tuple[str, str]] = []
    if rule is not None and rule.acyclic:
        for other in await env.store.query(EntityQuery(kinds=(kind_id,))):
            if other.source and other.target:
                edges.append((other.source, other.target))
    target_links: list[tuple[str, str, str | None]] = []
    if exts.single_link(kind_id, target_kind):
        target_links = [(link.kind, link.location, link.source) for link in await env.store.links_to(target_path)]
    exts.check_link(env.registry, kind_id, source_entity.kind, target_kind, source_attributes=source_entity.attributes,
                    edges=edges, source=source_path, target=target_path, target_links=target_links)
    return Ends(result, source_entity)


def _input(env: Env, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """A client's attribute values without those the served extensions accept and drop."""
    ignored = env.cloud.extensions.ignored_attributes()
    return {name: value for name, value in attributes.items() if name not in ignored}


def _kind_of(env: Env, message: EntityMessage) -> Kind:
    if message.kind is None:
        raise BadRequest("the request has no Kind category")
    return env.registry.kind(message.kind)


async def _create(env: Env, ctx: Context, creation: Creation, roots: Sequence[Entity]) -> Result:
    try:
        jobs, _ = await creation.commit()
        ops = await settle(jobs, env.options.sync_wait)
    finally:
        creation.release()
    first = roots[0].location
    named = [(job, op) for job, op in zip(jobs, ops) if op.location == first]
    job, op = named[0] if named else (None, None)
    outcome = outcome_of(job, op, status=201, others=ops)
    return CreatedResult(locations=[entity.location for entity in roots], outcome=outcome)


async def create_in_kind(env: Env, ctx: Context, route: Route, message: Entities) -> Result:
    """POST to a Kind location: create one or more entities (GFD.223 §11.3.1)."""
    assert isinstance(route.category, Kind)
    kind = route.category
    creation = Creation(env, ctx)
    try:
        roots = []
        for item in message.items:
            given = _kind_of(env, item)
            if given.type_id != kind.type_id:
                raise BadRequest(f"kind {given.type_id} does not match the collection {route.path}")
            roots.append(await creation.build(item, kind))
    except BaseException:
        creation.release()
        raise
    return await _create(env, ctx, creation, roots)


async def create_in_root(env: Env, ctx: Context, route: Route, message: Entities) -> Result:
    """POST to `/` with a full rendering: create in the entity's Kind collection (P-19)."""
    creation = Creation(env, ctx)
    try:
        roots = [await creation.build(item, _kind_of(env, item)) for item in message.items]
    except BaseException:
        creation.release()
        raise
    return await _create(env, ctx, creation, roots)


async def create_at(env: Env, ctx: Context, route: Route, message: OneEntity) -> Result:
    """PUT to an unused path: create the entity there (GFD.223 §10.2.1; http-protocol.md §6.3)."""
    item = message.item
    kind = _kind_of(env, item)
    path = route.path
    if route.taken:
        # The path holds another tenant's entity: as taken as one of the caller's own.
        raise Conflict(f"location {path} is already taken")
    if kind.location is None or not path.startswith(kind.location) \
            or not SAFE_SEGMENT.match(path[len(kind.location):]):
        # GFD.185 §3.4.4: a provider that does not let clients choose this path answers 400.
        raise BadRequest(f"entities of kind {kind.term} can only be created below {kind.location}<name>")
    segment = path[len(kind.location):]
    proposed = item.attributes.get("occi.core.id")
    if isinstance(proposed, str):
        match = URN_UUID.match(proposed)
        expected = match.group(1) if match else proposed if SAFE_SEGMENT.match(proposed) else None
        if expected is not None and expected.lower() != segment.lower():
            raise BadRequest(f"occi.core.id {proposed} does not match the path {path}")
    if proposed is None:
        attributes = dict(item.attributes)
        try:
            attributes["occi.core.id"] = f"urn:uuid:{uuid.UUID(segment)}"
        except ValueError:
            attributes["occi.core.id"] = segment
        item = EntityMessage(kind=item.kind, mixins=item.mixins, attributes=attributes, links=item.links,
                             lenient=item.lenient)
    creation = Creation(env, ctx)
    try:
        entity = await creation.build(item, kind, location=path)
    except BaseException:
        creation.release()
        raise
    return await _create(env, ctx, creation, [entity])


# ---- reading --------------------------------------------------------------------------------------


async def get(env: Env, ctx: Context, route: Route, message: NoBody) -> Result:
    """GET an entity (the pipeline answers from `Responder.entity`, which may reuse a rendering)."""
    assert route.entity is not None
    return EntityResult(await env.views.view(route.entity))


# ---- updates ----------------------------------------------------------------------------------------


def _check_kind(entity: Entity, message: EntityMessage, env: Env) -> None:
    if message.kind is not None and env.registry.canonical(message.kind) != entity.kind:
        # GFD.185 §3.4.4: "changing the type ... MUST NOT be possible"
        raise BadRequest(f"the kind of {entity.location} is {entity.kind} and cannot change")


async def _edit(env: Env, ctx: Context, stored: Entity, item: EntityMessage, mode: str) -> Result:
    _check_kind(stored, item, env)
    cloud = env.cloud.of(stored)
    registry = env.registry
    binding = cloud.binding(stored.kind)
    attributes = dict(item.attributes)
    if registry.is_link_kind(stored.kind) and ("occi.core.source" in attributes or "occi.core.target" in attributes):
        raw_source = attributes.get("occi.core.source", stored.source)
        raw_target = attributes.get("occi.core.target", stored.target)
        if isinstance(raw_source, str) and isinstance(raw_target, str):
            attributes.update((await link_ends(env, ctx, stored.kind, raw_source, raw_target)).attributes)
    edit = Edit(mode=mode, mixins=item.mixins, attributes=_input(env, attributes), lenient=item.lenient,
                reported=binding.reported if binding is not None else frozenset())
    visible = visible_mixin(ctx)
    # Invalid on its own terms: refused now (4xx), against the entity as it is now.
    updated = apply_edit(registry, stored, edit, visible=visible)
    cloud.extensions.validate(updated.kind, updated.mixins, updated.attributes, registry)
    if cloud.live_changes(stored, updated)[0]:
        cloud.check()
    # issue 8: growing cores, memory or size counts against the quotas from now until the update
    # has run (its job is done), when the stored entity shows it.
    grown = await env.quotas.reserve(registry, env.store, env.options.quotas, stored.tenant, [updated])
    creation = Creation(env, ctx)
    job: Job | None = None
    try:
        if item.links:
            if registry.is_link_kind(stored.kind):
                raise BadRequest("a link cannot carry links")
            for link in item.links:
                await creation.build_inline_link(stored, link)
        op = cloud.lanes.new_operation(stored.location, "update", stored.tenant, ctx.principal.user,
                                       params=edit.params())
        job = await cloud.lanes.submit(op, EditSpec(cloud, stored.location, edit, visible))
        if grown is not None:
            job.done.add_done_callback(lambda _: grown.release())
        jobs = [job]
        if creation.entities:
            link_jobs, _ = await creation.commit()
            jobs.extend(link_jobs)
        ops = await settle(jobs, env.options.sync_wait)
    finally:
        creation.release()
        if grown is not None and job is None:
            grown.release()  # refused before it was queued
    current = await env.store.get(stored.location) or updated
    return EntityResult(await env.views.view(current), outcome_of(job, ops[0], others=ops))


async def partial_update(env: Env, ctx: Context, route: Route, message: OneEntity) -> Result:
    """POST on an entity: change what is sent, add mixins, create links (GFD.223 §10.3.1)."""
    assert route.entity is not None
    return await _edit(env, ctx, route.entity, message.item, MERGE)


async def replace(env: Env, ctx: Context, route: Route, message: OneEntity) -> Result:
    """PUT on an existing entity: full replacement; links stay intact (GFD.223 §10.2.2)."""
    assert route.entity is not None
    # Links stay intact: links echoed in the rendering are not created again (GFD.223 §10.2.2).
    item = message.item
    if item.links:
        item = EntityMessage(kind=item.kind, mixins=item.mixins, attributes=item.attributes, lenient=item.lenient)
    return await _edit(env, ctx, route.entity, item, REPLACE)


# ---- deletion -------------------------------------------------------------------------------------------


async def delete_entities(env: Env, ctx: Context, targets: Sequence[Entity]) -> list[tuple[Job, Entity]]:
    """Delete entities with their links: outgoing (composition, GFD.221 §5.4.2) and incoming ones.

    Each deletion is an operation in its entity's lane, recorded before the cloud is asked
    (D-DELETE-DURABLE). Links that point at a resource are detached before it goes (a volume is
    detached before it is deleted); a resource's own links go after it (deleting a compute takes
    its devices with it, so nothing waits for a guest to release them one by one).
    """
    lanes = env.cloud.lanes
    registry = env.registry
    jobs: list[tuple[Job, Entity]] = []
    claimed = [entity for entity in targets if lanes.claim_delete(entity.location)]
    for entity in claimed:
        before: list[asyncio.Future[Operation]] = []
        after: list[Entity] = []
        if registry.is_resource_kind(entity.kind):
            outgoing = {link.location: link
                        for link in (await env.store.links_from([entity.location])).get(entity.location, [])}
            for link in await env.store.links_to(entity.location):
                if link.location in outgoing:
                    continue
                if lanes.claim_delete(link.location):
                    job = await _delete_one(env, ctx, link, [])
                    jobs.append((job, link))
                    before.append(job.done)
                else:
                    before.extend(lanes.waits_for(link.location))
            after = [link for link in outgoing.values() if lanes.claim_delete(link.location)]
        job = await _delete_one(env, ctx, entity, before)
        jobs.append((job, entity))
        for link in after:
            jobs.append((await _delete_one(env, ctx, link, [job.done]), link))
    return jobs


async def _delete_one(env: Env, ctx: Context, entity: Entity, waits: list[asyncio.Future[Operation]]) -> Job:
    cloud = env.cloud.of(entity)
    spec = DeleteSpec(cloud, entity, waits)
    if spec.cloud:
        cloud.check()
    op = cloud.lanes.new_operation(entity.location, "delete", entity.tenant, ctx.principal.user,
                                   message="deleting")
    # Recorded (resumable after a crash) when it has cloud work, or may have once its turn comes.
    record = spec.cloud or cloud.lanes.busy(entity.location)
    return await cloud.lanes.submit_delete(op, spec, record=record, claimed=True)


async def delete(env: Env, ctx: Context, route: Route, message: NoBody) -> Result:
    """DELETE an entity: 200; a GET afterwards is 404 (GFD.223 §10.4). A second DELETE of an entity
    being deleted is 404."""
    stored = route.entity
    assert stored is not None
    if env.cloud.lanes.deleting(stored.location):
        raise NotFound(f"{stored.location} is being deleted")
    jobs = await delete_entities(env, ctx, [stored])
    if not any(entity.location == stored.location for _, entity in jobs):
        raise NotFound(f"{stored.location} is being deleted")
    ops = await settle([job for job, _ in jobs], delete_wait(env, ctx))
    mine = [(job, op) for (job, entity), op in zip(jobs, ops) if entity.location == stored.location]
    job, op = mine[0]
    return EmptyResult(outcome_of(job, op, others=ops))


__all__ = [
    "QUEUED",
    "Creation",
    "create_at",
    "create_in_kind",
    "create_in_root",
    "delete",
    "delete_entities",
    "get",
    "link_ends",
    "partial_update",
    "replace",
]

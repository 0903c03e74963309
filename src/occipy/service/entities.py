"""Entity CRUD and mixin association (GFD.223 §10, §11.3; GFD.185 §3.4.4, §3.4.5; core.md §7, §8).

Builds entities from parsed renderings, checks every attribute against the merged definitions
of the Kind and mixins, applies template defaults and replacement rules, and writes each request
as one atomic batch. Cloud work is planned by `provisioning` and runs as tracked jobs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from occipy.errors import BadRequest, Conflict, InvalidAttribute, NotFound
from occipy.model import rules
from occipy.model import state as fsm
from occipy.model.catalogue import IPNETWORK, IPNETWORKINTERFACE, NETWORKINTERFACE, STORAGELINK
from occipy.model.category import AttributeValue, Kind
from occipy.model.entity import Entity
from occipy.model.registry import LINK, RESOURCE
from occipy.rendering.messages import EntityMessage, LinkMessage
from occipy.service import payload
from occipy.service.messages import OcciRequest
from occipy.service.provisioning import CLOUD_REPORTED
from occipy.service.reply import Reply
from occipy.service.routes import Route
from occipy.store.base import Batch, Operation

if TYPE_CHECKING:
    from occipy.service.core import Service

SAFE_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+\Z")
URN_UUID = re.compile(r"urn:uuid:([0-9a-fA-F-]{36})\Z")
ECHOED = rules.ECHOED
CREATION_ONLY = rules.CREATION_ONLY


# ---- helpers shared with the other handler modules ------------------------------------------

def local_path(request: OcciRequest, value: str) -> str:
    """A location given as an absolute URL of this server becomes a path; others are kept."""
    base = request.base_url
    if value.startswith(base + "/"):
        return value[len(base):]
    for scheme in ("http://", "https://"):
        if value.startswith(scheme):
            rest = value[len(scheme):]
            host = base.split("://", 1)[-1]
            if rest.startswith(host + "/"):
                return rest[len(host):]
    return value


# ---- the domain rules: one copy in occipy.model.rules (the SDK calls the same functions) --------
# These wrappers keep the handlers' call sites; the new request pipeline can call the model
# functions directly with `svc.registry`.

def template_family(svc: Service, mixin_id: str) -> str | None:
    """OS_TPL or RESOURCE_TPL when the mixin is a template of that family, else None."""
    return rules.template_family(svc.registry, mixin_id)


def check_attributes(
    svc: Service, kind_id: str, mixin_ids: Sequence[str], values: Mapping[str, Any], *,
    lenient: bool, current: Entity | None,
) -> dict[str, AttributeValue]:
    """Values a client sent, checked against the merged definitions (`rules.check_attributes`)."""
    return rules.check_attributes(svc.registry, kind_id, mixin_ids, values, lenient=lenient,
                                  current=None if current is None else current.attributes).values


def fill_defaults(svc: Service, entity: Entity) -> None:
    """Template and kind defaults for attributes without a value (GFD.221 §5.3.7)."""
    entity.attributes.update(rules.defaults_to_fill(svc.registry, entity.kind, entity.mixins, entity.attributes))


def check_required(svc: Service, entity: Entity) -> None:
    rules.check_required(svc.registry, entity.kind, entity.mixins, entity.attributes)


def resolve_mixins(svc: Service, kind_id: str, mixin_ids: Iterable[str], *, existing: Sequence[str] = (),
                   creating: bool) -> list[str]:
    """Canonical, de-duplicated mixins after the applies, stage and template rules (core.md §7)."""
    return rules.resolve_mixins(svc.registry, kind_id, mixin_ids, existing=existing, creating=creating)


# ---- building new entities ------------------------------------------------------------------

class Creation:
    """Entities being created by one request: they see each other (ids, locations) before commit."""

    def __init__(self, svc: Service, request: OcciRequest) -> None:
        self.svc = svc
        self.request = request
        self.entities: list[Entity] = []
        self.ids: set[str] = set()
        self.locations: set[str] = set()
        self.operations: list[Operation] = []

    async def new_id(self, proposed: object) -> str:
        if proposed is None:
            return f"urn:uuid:{uuid.uuid4()}"
        if not isinstance(proposed, str) or not proposed or any(c.isspace() or ord(c) < 32 for c in proposed):
            raise InvalidAttribute("occi.core.id must be a URI without white space")
        if proposed in self.ids or await self.svc.store.get_by_id(proposed) is not None:
            raise Conflict(f"an entity with occi.core.id {proposed} already exists")
        return proposed

    async def new_location(self, kind: Kind, entity_id: str) -> str:
        assert kind.location is not None
        match = URN_UUID.match(entity_id)
        segment = match.group(1) if match else entity_id if SAFE_SEGMENT.match(entity_id) else str(uuid.uuid4())
        location = kind.location + segment
        if location in self.locations or await self.svc.store.get(location) is not None:
            if match or segment == entity_id:
                raise Conflict(f"location {location} is already taken")
            location = kind.location + str(uuid.uuid4())
        return location

    async def build(self, message: EntityMessage, kind: Kind, *, location: str | None = None,
                    source: str | None = None) -> Entity:
        """One new entity (and its inline links) from a create request; raises on any bad value."""
        svc = self.svc
        registry = svc.registry
        if kind.type_id in (RESOURCE, LINK) or kind.location is None:
            if kind.location is None:
                raise BadRequest(f"kind {kind.type_id} cannot be instantiated")
        mixins = resolve_mixins(svc, kind.type_id, message.mixins, creating=True)
        values = check_attributes(svc, kind.type_id, mixins, message.attributes, lenient=message.lenient,
                                  current=None)
        entity_id = await self.new_id(values.pop("occi.core.id", None))
        if location is None:
            location = await self.new_location(kind, entity_id)
        elif location in self.locations:
            raise Conflict(f"location {location} is used twice in this request")
        entity = Entity(kind=kind.type_id, entity_id=entity_id, location=location, mixins=mixins,
                        owner=self.request.user)
        entity.attributes["occi.core.id"] = entity_id
        entity.attributes.update(values)
        is_link = registry.is_link_kind(kind.type_id)
        if is_link:
            await self._link_ends(entity, message, source)
            await self._provisional(entity)
        fill_defaults(svc, entity)
        state_name = fsm.state_attribute(kind.type_id)
        if state_name is not None:
            entity.attributes[state_name] = fsm.INITIAL_STATE[kind.type_id]
            entity.attributes.pop(state_name + ".message", None)
        check_required(svc, entity)
        self.ids.add(entity_id)
        self.locations.add(location)
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
        if link.kind is None:
            raise BadRequest("an inline link needs a category naming its kind")
        kind = self.svc.registry.kind(link.kind)
        if not self.svc.registry.is_link_kind(kind.type_id):
            raise BadRequest(f"{link.kind} is not a link kind")
        if link.target is None:
            raise BadRequest("an inline link needs a target")
        attributes = dict(link.attributes)
        attributes["occi.core.target"] = link.target
        attributes.pop("occi.core.source", None)
        if link.target_kind and "occi.core.target.kind" not in attributes:
            attributes["occi.core.target.kind"] = link.target_kind
        message = EntityMessage(kind=kind.type_id, mixins=link.mixins, attributes=attributes,
                                lenient=link.lenient)
        location = None
        if link.self_location:
            candidate = local_path(self.request, link.self_location)
            if kind.location and candidate.startswith(kind.location) and SAFE_SEGMENT.match(
                    candidate[len(kind.location):]):
                if candidate in self.locations or await self.svc.store.get(candidate) is not None:
                    raise Conflict(f"link location {candidate} is already taken")
                location = candidate
        return await self.build(message, kind, location=location, source=resource.location)

    async def _link_ends(self, entity: Entity, message: EntityMessage, source: str | None) -> None:
        """Source and target of a new link (http-protocol.md §6.7 rules)."""
        attributes = entity.attributes
        raw_source = source or attributes.get("occi.core.source")
        raw_target = attributes.get("occi.core.target")
        if not isinstance(raw_source, str) or not raw_source:
            raise InvalidAttribute("attribute occi.core.source is required")
        if not isinstance(raw_target, str) or not raw_target:
            raise InvalidAttribute("attribute occi.core.target is required")
        source_path = local_path(self.request, raw_source)
        source_entity = await self.find(source_path)
        if source_entity is None:
            raise NotFound(f"link source {raw_source} does not exist")
        if not self.svc.registry.is_resource_kind(source_entity.kind):
            raise BadRequest(f"link source {raw_source} is not a resource")
        attributes["occi.core.source"] = source_path
        target_path = local_path(self.request, raw_target)
        attributes["occi.core.target"] = target_path
        if target_path.startswith("/"):
            target_entity = await self.find(target_path)
            if target_entity is None:
                raise NotFound(f"link target {raw_target} does not exist")
            attributes["occi.core.target.kind"] = target_entity.kind
        elif "://" not in target_path and ":" not in target_path:
            raise InvalidAttribute(f"link target {raw_target} is neither a location nor an absolute URI")

    async def _provisional(self, link: Entity) -> None:
        """Multiplicity-1 link attributes get a value at once (GFD.224 §3.4: they MUST be exposed).

        The server picks the interface name, MAC and device id when the client gave none; the
        driver is asked for exactly these, and what the cloud reports later replaces them.
        """
        attributes = link.attributes
        if link.kind not in (NETWORKINTERFACE, STORAGELINK) or not link.source:
            return
        existing = (await self.svc.store.links_from([link.source])).get(link.source, [])
        siblings = [e for e in [*existing, *self.entities] if e.kind == link.kind and e.source == link.source]
        if link.kind == NETWORKINTERFACE:
            if "occi.networkinterface.interface" not in attributes:
                used = {e.attributes.get("occi.networkinterface.interface") for e in siblings}
                attributes["occi.networkinterface.interface"] = next(
                    f"eth{n}" for n in range(len(used) + 1) if f"eth{n}" not in used)
            if "occi.networkinterface.mac" not in attributes:
                attributes["occi.networkinterface.mac"] = "52:54:00:%02x:%02x:%02x" % tuple(uuid.uuid4().bytes[:3])
        elif "occi.storagelink.deviceid" not in attributes:
            used = {e.attributes.get("occi.storagelink.deviceid") for e in siblings}
            attributes["occi.storagelink.deviceid"] = next(
                (f"/dev/vd{letter}" for letter in "bcdefghijklmnopqrstuvwxyz" if f"/dev/vd{letter}" not in used),
                f"/dev/disk/occipy-{uuid.uuid4().hex[:8]}")

    async def find(self, location: str) -> Entity | None:
        for entity in self.entities:
            if entity.location == location:
                return entity
        return await self.svc.store.get(location)

    async def commit(self) -> None:
        """Write every new entity (and its creation jobs) in one batch, then start the jobs."""
        svc = self.svc
        batch = Batch(put=self.entities)
        svc.provisioning.index(self.entities)  # links are planned against the resources created with them
        try:
            planned = [svc.provisioning.plan_create(entity, self.request.user) for entity in self.entities]
            batch.put_operations = [op for op in planned if op is not None]
            only = self.entities[0]
            waiting = any(svc.jobs.busy(end) for end in (only.source, only.target) if end)
            if len(self.entities) == 1 and planned[0] is not None and not waiting:
                # one entity: the cloud works before the first write; a quick answer is one write
                self.operations = batch.put_operations
                await svc.provisioning.run_create(self.entities[0], planned[0])
                return
            await svc.store.commit(batch)
        except BaseException:
            for entity in self.entities:
                svc.provisioning.unindex(entity)
            raise
        self.operations = batch.put_operations
        for entity, op in zip(self.entities, planned):
            if op is not None:
                svc.provisioning.launch_create(entity, op)
        await svc.jobs.wait(self.operations, svc.options.sync_wait)


def _kind_of(svc: Service, message: EntityMessage) -> Kind:
    if message.kind is None:
        raise BadRequest("the request has no Kind category")
    return svc.registry.kind(message.kind)


async def _created_reply(svc: Service, request: OcciRequest, creation: Creation, roots: Sequence[Entity]) -> Reply:
    reply = Reply(status=201, locations=[svc.absolute(request, entity.location) for entity in roots])
    ops = [op for op in creation.operations if op.location == roots[0].location]
    if ops:
        reply.headers.append(("X-OCCI-Operation", svc.absolute(request, svc.jobs.location(ops[0]))))
    return svc.jobs.maybe_async(request, creation.operations, reply)


async def create_in_kind(svc: Service, request: OcciRequest, route: Route) -> Reply:
    """POST to a Kind location: create one or more entities (GFD.223 §11.3.1)."""
    assert isinstance(route.category, Kind)
    kind = route.category
    messages = payload.entities(request, svc.registry)
    creation = Creation(svc, request)
    roots = []
    for message in messages:
        given = _kind_of(svc, message)
        if given.type_id != kind.type_id:
            raise BadRequest(f"kind {given.type_id} does not match the collection {route.path}")
        roots.append(await creation.build(message, kind))
    await creation.commit()
    return await _created_reply(svc, request, creation, roots)


async def create_in_root(svc: Service, request: OcciRequest) -> Reply:
    """POST to `/` with a full rendering: create in the entity's Kind collection (P-19)."""
    messages = payload.entities(request, svc.registry)
    creation = Creation(svc, request)
    roots = [await creation.build(message, _kind_of(svc, message)) for message in messages]
    await creation.commit()
    return await _created_reply(svc, request, creation, roots)


async def create_at(svc: Service, request: OcciRequest) -> Reply:
    """PUT to an unused path: create the entity there (GFD.223 §10.2.1; http-protocol.md §6.3)."""
    message = payload.entity(request, svc.registry)
    kind = _kind_of(svc, message)
    path = request.path
    if kind.location is None or not path.startswith(kind.location) \
            or not SAFE_SEGMENT.match(path[len(kind.location):]):
        # GFD.185 §3.4.4: a provider that does not let clients choose this path answers 400.
        raise BadRequest(f"entities of kind {kind.term} can only be created below {kind.location}<name>")
    segment = path[len(kind.location):]
    proposed = message.attributes.get("occi.core.id")
    if isinstance(proposed, str):
        match = URN_UUID.match(proposed)
        expected = match.group(1) if match else proposed if SAFE_SEGMENT.match(proposed) else None
        if expected is not None and expected.lower() != segment.lower():
            raise BadRequest(f"occi.core.id {proposed} does not match the path {path}")
    if proposed is None:
        attributes = dict(message.attributes)
        try:
            attributes["occi.core.id"] = f"urn:uuid:{uuid.UUID(segment)}"
        except ValueError:
            attributes["occi.core.id"] = segment
        message = EntityMessage(kind=message.kind, mixins=message.mixins, attributes=attributes,
                                links=message.links, lenient=message.lenient)
    creation = Creation(svc, request)
    entity = await creation.build(message, kind, location=path)
    await creation.commit()
    return await _created_reply(svc, request, creation, [entity])


# ---- updates ----------------------------------------------------------------------------------

def _check_kind(entity: Entity, message: EntityMessage, svc: Service) -> None:
    if message.kind is not None and svc.registry.canonical(message.kind) != entity.kind:
        # GFD.185 §3.4.4: "changing the type ... MUST NOT be possible"
        raise BadRequest(f"the kind of {entity.location} is {entity.kind} and cannot change")


async def _normalise_link_ends(svc: Service, request: OcciRequest, entity: Entity) -> None:
    """After an update of a link's source or target, check and normalise them like at creation."""
    if not svc.registry.is_link_kind(entity.kind):
        return
    creation = Creation(svc, request)
    await creation._link_ends(entity, EntityMessage(), None)


async def partial_update(svc: Service, request: OcciRequest, stored: Entity) -> Reply:
    """POST on an entity: change what is sent, add mixins, create links (GFD.223 §10.3.1)."""
    message = payload.entity(request, svc.registry)
    _check_kind(stored, message, svc)
    updated = stored.copy()
    updated.mixins = resolve_mixins(svc, stored.kind, message.mixins, existing=stored.mixins, creating=False)
    values = check_attributes(svc, stored.kind, updated.mixins, message.attributes, lenient=message.lenient,
                              current=stored)
    values.pop("occi.core.id", None)
    updated.attributes.update(values)
    _apply_template_defaults(svc, stored, updated)
    fill_defaults(svc, updated)
    check_required(svc, updated)
    await _normalise_link_ends(svc, request, updated)
    creation = Creation(svc, request)
    if message.links:
        if svc.registry.is_link_kind(stored.kind):
            raise BadRequest("a link cannot carry links")
        for link in message.links:
            await creation.build_inline_link(updated, link)
    return await _write_update(svc, request, stored, updated, creation)


async def replace(svc: Service, request: OcciRequest, stored: Entity) -> Reply:
    """PUT on an existing entity: full replacement; links stay intact (GFD.223 §10.2.2)."""
    message = payload.entity(request, svc.registry)
    _check_kind(stored, message, svc)
    # Templates cannot be taken away from a running compute, only replaced: keep them unless replaced.
    kept = [m for m in stored.mixins if template_family(svc, m) is not None or m in CREATION_ONLY
            or (stored.backend_id is not None and m in (IPNETWORK, IPNETWORKINTERFACE))]
    mixins = resolve_mixins(svc, stored.kind, message.mixins, existing=kept, creating=False)
    values = check_attributes(svc, stored.kind, mixins, message.attributes, lenient=message.lenient,
                              current=stored)
    values.pop("occi.core.id", None)
    defs = svc.registry.attribute_defs(stored.kind, mixins)
    updated = stored.copy()
    updated.mixins = mixins
    # "missing information will result in the deletion of the same" (GFD.185 §3.4.4): mutable
    # attributes not sent are unset; server-managed and write-once ones keep their values.
    live = stored.backend_id is not None
    updated.attributes = {
        name: value for name, value in stored.attributes.items()
        if name in defs and (not defs[name].mutable or defs[name].write_once
                             or name in ("occi.core.source", "occi.core.target")
                             or (live and name in CLOUD_REPORTED))
    }
    updated.attributes.update(values)
    _apply_template_defaults(svc, stored, updated)
    fill_defaults(svc, updated)
    check_required(svc, updated)
    await _normalise_link_ends(svc, request, updated)
    return await _write_update(svc, request, stored, updated, Creation(svc, request))


def _apply_template_defaults(svc: Service, stored: Entity, updated: Entity) -> None:
    """A newly associated template overrides the attributes it sets (GFD.224 §3.5.2, INF-48)."""
    registry = svc.registry
    for mixin_id in updated.mixins:
        if mixin_id in stored.mixins or template_family(svc, mixin_id) is None:
            continue
        for mixin_ref in registry.depends_closure([mixin_id]):
            for adef in registry.mixin(mixin_ref).attributes:
                if adef.default is not None:
                    updated.attributes[adef.name] = adef.default


async def _write_update(svc: Service, request: OcciRequest, stored: Entity, updated: Entity,
                        creation: Creation) -> Reply:
    svc.jobs.ensure_idle(stored.location)
    op = svc.provisioning.plan_update(stored, updated, request.user)
    svc.provisioning.index(creation.entities)
    batch = Batch(put=[updated, *creation.entities])
    link_ops = [svc.provisioning.plan_create(link, request.user) for link in creation.entities]
    batch.put_operations = [o for o in [op, *link_ops] if o is not None]
    await svc.store.commit(batch)
    if op is not None:
        svc.provisioning.launch_update(stored, updated, op)
    for link, link_op in zip(creation.entities, link_ops):
        if link_op is not None:
            svc.provisioning.launch_create(link, link_op)
    await svc.jobs.wait(batch.put_operations, svc.options.sync_wait)
    current = await svc.store.get(stored.location) or updated
    reply = Reply(entity=await svc.view(current))
    if op is not None:
        reply.headers.append(("X-OCCI-Operation", svc.absolute(request, svc.jobs.location(op))))
    return svc.jobs.maybe_async(request, batch.put_operations, reply)


# ---- deletion -----------------------------------------------------------------------------------

async def deletion_batch(svc: Service, targets: Sequence[Entity], user: str) -> tuple[Batch, list[tuple[Entity, Operation]]]:
    """Delete entities with their links: outgoing (composition, GFD.221 §5.4.2) and incoming ones."""
    doomed: dict[str, Entity] = {}
    for entity in targets:
        doomed[entity.location] = entity
        if svc.registry.is_resource_kind(entity.kind):
            outgoing = await svc.store.links_from([entity.location])
            for link in outgoing.get(entity.location, []):
                doomed[link.location] = link
            for link in await svc.store.links_to(entity.location):
                doomed[link.location] = link
    # No ensure_idle here: a delete may come while a job runs; the job sees the entity gone and
    # removes what it created, and delete jobs wait for running ones (jobs.spawn `after`).
    # Links go first so that the cloud detaches before it deletes what they point at.
    ordered = sorted(doomed.values(), key=lambda e: not svc.registry.is_link_kind(e.kind))
    jobs: list[tuple[Entity, Operation]] = []
    for entity in ordered:
        op = svc.provisioning.plan_delete(entity, user)
        if op is not None:
            jobs.append((entity, op))
    batch = Batch(delete=[e.location for e in ordered], put_operations=[op for _, op in jobs])
    return batch, jobs


async def delete_entities(svc: Service, request: OcciRequest, targets: Sequence[Entity]) -> list[Operation]:
    batch, jobs = await deletion_batch(svc, targets, request.user)
    if not batch:
        return []
    await svc.store.commit(batch)
    svc.provisioning.launch_deletes(jobs)
    ops = [op for _, op in jobs]
    await svc.jobs.wait(ops, svc.options.sync_wait)
    return ops


async def delete(svc: Service, request: OcciRequest, stored: Entity) -> Reply:
    """DELETE an entity: 200; a GET afterwards is 404 (GFD.223 §10.4)."""
    ops = await delete_entities(svc, request, [stored])
    reply = Reply()
    mine = [op for op in ops if op.location == stored.location]
    if mine:
        reply.headers.append(("X-OCCI-Operation", svc.absolute(request, svc.jobs.location(mine[0]))))
    return svc.jobs.maybe_async(request, ops, reply)


# ---- mixin association (used by mixin collections) -------------------------------------------

def with_mixin(svc: Service, entity: Entity, mixin_id: str) -> Entity:
    """A copy of the entity with one more mixin, after the association rules."""
    updated = entity.copy()
    updated.mixins = resolve_mixins(svc, entity.kind, [mixin_id], existing=entity.mixins, creating=False)
    _apply_template_defaults(svc, entity, updated)
    fill_defaults(svc, updated)
    check_required(svc, updated)
    return updated


def without_mixin(svc: Service, entity: Entity, mixin_id: str) -> Entity:
    """A copy without the mixin; attribute values only it defined are dropped (core.md §7)."""
    updated = entity.copy()
    updated.mixins = [m for m in entity.mixins if m != mixin_id]
    defs = svc.registry.attribute_defs(entity.kind, updated.mixins)
    updated.attributes = {k: v for k, v in entity.attributes.items() if k in defs}
    return updated

"""The bridge between OCCI entities and the driver: specs, jobs, observed state, reconciling.

Drivers never see an Entity. This module turns entities into OCCI-free specs, plans and launches
the jobs that call the driver (`jobs.Jobs`), writes back what the cloud reports (`Observed`), and
keeps OCCI in step with changes made outside occipy (lifecycle events plus a periodic reconcile).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from occipy.backends.base import (
    Capability,
    ComputeSpec,
    NetworkInterfaceSpec,
    NetworkSpec,
    Observed,
    ResourceType,
    Spec,
    StorageLinkSpec,
    StorageSpec,
    Template,
)
from occipy.errors import BackendError, Conflict, NotSupported, OcciError
from occipy.model import state as fsm
from occipy.model.catalogue import (
    COMPUTE,
    IPNETWORK,
    IPNETWORKINTERFACE,
    NETWORK,
    NETWORKINTERFACE,
    OS_TPL,
    RESOURCE_TPL,
    SSH_KEY,
    STORAGE,
    STORAGELINK,
    USER_DATA,
)
from occipy.model.category import AttributeDef, AttributeValue, Mixin, strict_term
from occipy.model.entity import Entity
from occipy.service import jobs
from occipy.store.base import Batch, EntityQuery, Operation

if TYPE_CHECKING:
    from occipy.service.core import Service

log = logging.getLogger("occipy.provisioning")

RESOURCE_TYPES: Mapping[str, ResourceType] = {
    COMPUTE: ResourceType.COMPUTE,
    STORAGE: ResourceType.STORAGE,
    NETWORK: ResourceType.NETWORK,
    STORAGELINK: ResourceType.STORAGELINK,
    NETWORKINTERFACE: ResourceType.NETWORKINTERFACE,
}
# Attributes whose change on an existing object the cloud must apply, and the capability needed.
LIVE_ATTRIBUTES: Mapping[str, tuple[str, ...]] = {
    STORAGE: ("occi.storage.size",),
    COMPUTE: ("occi.compute.cores", "occi.compute.memory", "occi.compute.architecture"),
}
# Attributes a driver may report that belong to a mixin the entity may not have yet.
MIXIN_OF_ATTRIBUTE: Mapping[str, str] = {
    "occi.network.address": IPNETWORK,
    "occi.network.gateway": IPNETWORK,
    "occi.network.allocation": IPNETWORK,
    "occi.networkinterface.address": IPNETWORKINTERFACE,
    "occi.networkinterface.gateway": IPNETWORKINTERFACE,
    "occi.networkinterface.allocation": IPNETWORKINTERFACE,
}
# Facts of a live cloud object the cloud reports: a PUT without them keeps them (they cannot be
# unset in the cloud), and reconciling fills them in when missing. Other mutable attributes are
# the client's alone and are never written back from the cloud after creation.
CLOUD_REPORTED = frozenset({
    "occi.compute.architecture", "occi.compute.cores", "occi.compute.memory",
    "occi.network.address", "occi.network.gateway", "occi.network.allocation",
    "occi.networkinterface.mac", "occi.networkinterface.address", "occi.networkinterface.gateway",
    "occi.networkinterface.allocation", "occi.storagelink.deviceid",
})
_SLUG = re.compile(r"[^a-z0-9-]+")


class Provisioning:
    """Driver-facing half of the service."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.templates: dict[str, Template] = {}
        self._kinds_by_location: dict[str, str] = {}
        self._backend_index: dict[tuple[ResourceType, str], str] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # ---- start-up -----------------------------------------------------------------------------

    def template_mixin(self, template: Template) -> Mixin:
        """The mixin that offers a driver template (GFD.224 §3.5: depends on os_tpl / resource_tpl)."""
        registry = self.svc.registry
        parent = OS_TPL if template.family == "os_tpl" else RESOURCE_TPL
        compute_defs = registry.kind_attribute_defs(COMPUTE)
        attributes = []
        for name, value in template.defaults.items():
            base = compute_defs.get(name)
            if base is not None:
                attributes.append(AttributeDef(name=name, type=base.type, mutable=base.mutable,
                                               required=False, pattern=base.pattern, default=value,
                                               description=base.description))
        # docs/decisions.md D-STRICT-TERMS: provider names (`ubuntu-24.04`, libvirt flavours with
        # ".") become terms that OCCI 1.1 and rOCCI-core 5 parsers accept; the title keeps the name.
        term = strict_term(template.term)
        location = f"/mixin/{template.family}/{term}/"
        if registry.by_location(location) is not None:
            location = f"/mixin/{template.family}/{self.svc.driver.name}/{term}/"
        return Mixin(
            scheme=f"{self.svc.options.provider_scheme}{template.family}#", term=term,
            title=template.title, attributes=tuple(attributes), depends=(parent,), applies=(COMPUTE,),
            location=location,
        )

    def register_templates(self) -> None:
        """Offer every driver template as a mixin (skipping ones already registered, e.g. saved ones)."""
        for template in self.svc.driver.templates():
            self.add_template(template)

    def add_template(self, template: Template) -> Mixin:
        mixin = self.template_mixin(template)
        existing = self.svc.registry.find(mixin.type_id)
        if isinstance(existing, Mixin):
            self.templates[existing.type_id] = template
            return existing
        self.svc.registry.add(mixin)
        self.templates[mixin.type_id] = template
        return mixin

    def adopt_saved(self, mixin: Mixin) -> None:
        """A template made by a `save` action, loaded back from the store at start-up."""
        family = "os_tpl" if OS_TPL in mixin.depends else "resource_tpl"
        self.templates[mixin.type_id] = Template(family=family, term=mixin.term, title=mixin.title or mixin.term)

    async def recover(self) -> None:
        """Index every stored entity, re-introduce it to the driver, and close interrupted operations."""
        svc = self.svc
        entities = await svc.store.query(EntityQuery())
        for entity in entities:
            self._kinds_by_location[entity.location] = entity.kind
            resource = self.backed(entity.kind)
            if resource is not None and entity.backend_id:
                self._backend_index[(resource, entity.backend_id)] = entity.location
                await svc.driver.adopt(resource, entity.backend_id, self._observed_of(entity))
        interrupted = await svc.store.operations(state="running")
        batch = Batch()
        for op in interrupted:
            op.state = "failed"
            op.message = "interrupted by a restart of the server"
            batch.put_operations.append(op)
            interrupted_entity = await svc.store.get(op.location)
            if interrupted_entity is not None:
                updated = interrupted_entity.copy()
                self._set_state(updated, fsm.ERROR_STATE.get(interrupted_entity.kind),
                                f"{op.action} was interrupted by a restart of the server")
                batch.put.append(updated)
        if batch:
            await svc.store.commit(batch)

    def _observed_of(self, entity: Entity) -> Observed:
        state_name = fsm.state_attribute(entity.kind)
        current = entity.attributes.get(state_name) if state_name else None
        return Observed(backend_id=entity.backend_id or "", state=str(current or ""),
                        attributes=dict(entity.attributes))

    # ---- indexes -------------------------------------------------------------------------------

    def backed(self, kind_id: str) -> ResourceType | None:
        """The driver resource type behind a kind, if the driver offers it."""
        resource = RESOURCE_TYPES.get(kind_id)
        if resource is None or Capability(resource.value) not in self.svc.driver.capabilities:
            return None
        return resource

    def kind_of(self, location: str) -> str | None:
        return self._kinds_by_location.get(location)

    def index(self, entities: Sequence[Entity]) -> None:
        for entity in entities:
            self._kinds_by_location[entity.location] = entity.kind

    def unindex(self, entity: Entity) -> None:
        self._kinds_by_location.pop(entity.location, None)
        resource = self.backed(entity.kind)
        if resource is not None and entity.backend_id:
            self._backend_index.pop((resource, entity.backend_id), None)

    # ---- specs ---------------------------------------------------------------------------------

    def _name(self, entity: Entity) -> str:
        segment = entity.location.rstrip("/").rpartition("/")[2]
        title = entity.title
        if title:
            slug = _SLUG.sub("-", title.lower()).strip("-")[:40]
            if slug:
                return f"{slug}-{segment}"
        return segment

    async def spec_for(self, entity: Entity) -> Spec:
        a = entity.attributes
        kind = entity.kind
        name = self._name(entity)
        if kind == COMPUTE:
            os_template = resource_template = None
            for mixin_id in entity.mixins:
                template = self.templates.get(mixin_id)
                if template is not None and template.family == "os_tpl":
                    os_template = template.term
                elif template is not None:
                    resource_template = template.term
            return ComputeSpec(
                name=name, cores=_int(a.get("occi.compute.cores")), memory_gib=_float(a.get("occi.compute.memory")),
                architecture=_str(a.get("occi.compute.architecture")), hostname=_str(a.get("occi.compute.hostname")),
                share=_int(a.get("occi.compute.share")), os_template=os_template,
                resource_template=resource_template,
                ssh_public_key=_str(a.get("occi.credentials.ssh.publickey")) if SSH_KEY in entity.mixins else None,
                user_data=_user_data(a.get("occi.compute.userdata")) if USER_DATA in entity.mixins else None,
            )
        if kind == STORAGE:
            return StorageSpec(name=name, size_gib=float(_float(a.get("occi.storage.size")) or 1.0))
        if kind == NETWORK:
            return NetworkSpec(name=name, address=_str(a.get("occi.network.address")),
                               gateway=_str(a.get("occi.network.gateway")),
                               allocation=_str(a.get("occi.network.allocation")),
                               vlan=_int(a.get("occi.network.vlan")), label=_str(a.get("occi.network.label")))
        source, target = await self._ends(entity)
        if kind == STORAGELINK:
            return StorageLinkSpec(name=name, compute_id=source, storage_id=target,
                                   deviceid=_str(a.get("occi.storagelink.deviceid")),
                                   mountpoint=_str(a.get("occi.storagelink.mountpoint")))
        return NetworkInterfaceSpec(name=name, compute_id=source, network_id=target,
                                    mac=_str(a.get("occi.networkinterface.mac")),
                                    address=_str(a.get("occi.networkinterface.address")),
                                    allocation=_str(a.get("occi.networkinterface.allocation")))

    async def _ends(self, link: Entity) -> tuple[str, str]:
        ids = []
        for end in (link.source, link.target):
            other = await self.svc.store.get(end) if end else None
            if other is None or not other.backend_id:
                raise BackendError(f"{end} has no object in the cloud (was its creation successful?)")
            ids.append(other.backend_id)
        return ids[0], ids[1]

    def _link_can_provision(self, link: Entity) -> bool:
        """A link is provisioned when both ends are local resources of kinds the driver provides."""
        for end in (link.source, link.target):
            if not end or not end.startswith("/"):
                return False
            kind = self._kinds_by_location.get(end)
            if kind is None or self.backed(kind) is None:
                return False
        return True

    # ---- observed state ------------------------------------------------------------------------

    def _set_state(self, entity: Entity, state: str | None, message: str | None) -> None:
        state_name = fsm.state_attribute(entity.kind)
        if state_name is None:
            return
        if state is not None:
            entity.attributes[state_name] = state
        if message:
            entity.attributes[state_name + ".message"] = message
        else:
            entity.attributes.pop(state_name + ".message", None)

    def apply_observed(self, entity: Entity, observed: Observed, *, overwrite: bool = True) -> None:
        """Write what the cloud reports into an entity (state, message, attributes it decided).

        With `overwrite` False (after an update or an action, and when reconciling), values the
        client controls (mutable attributes that have a value) are kept: the cloud only fills in
        what is missing and what the server manages.
        """
        registry = self.svc.registry
        self._set_state(entity, observed.state, observed.message)
        for name, value in observed.attributes.items():
            defs = registry.attribute_defs(entity.kind, entity.mixins)
            if not overwrite:
                # after creation the cloud only updates what the server manages and fills in its
                # own facts that are missing; the client's values stay
                server_managed = name in defs and not defs[name].mutable
                if not server_managed and (name in entity.attributes or name not in CLOUD_REPORTED):
                    continue
            if name not in defs:
                mixin = MIXIN_OF_ATTRIBUTE.get(name)
                if mixin is None or not registry.is_mixin(mixin) or not registry.applies_to(mixin, entity.kind):
                    continue
                entity.mixins.append(mixin)
            entity.attributes[name] = value
        if observed.backend_id:
            entity.backend_id = observed.backend_id
            resource = self.backed(entity.kind)
            if resource is not None:
                self._backend_index[(resource, observed.backend_id)] = entity.location

    async def _fail(self, location: str, error: OcciError, restore: Mapping[str, AttributeValue] | None = None) -> Batch:
        entity = await self.svc.store.get(location)
        if entity is None:
            return Batch()
        updated = entity.copy()
        if restore:
            updated.attributes.update(restore)
        self._set_state(updated, fsm.ERROR_STATE.get(entity.kind), error.message)
        return Batch(put=[updated])

    # ---- create ---------------------------------------------------------------------------------

    def plan_create(self, entity: Entity, owner: str) -> Operation | None:
        """Mark a new entity as being provisioned and return its creation operation (None: nothing to do)."""
        resource = self.backed(entity.kind)
        if resource is None:
            return None
        if resource in (ResourceType.STORAGELINK, ResourceType.NETWORKINTERFACE) and not self._link_can_provision(entity):
            return None
        self._set_state(entity, None, "creating")
        return self.svc.jobs.new(entity.location, "create", owner, "creating")

    def launch_create(self, entity: Entity, op: Operation) -> None:
        location = entity.location
        after = [end for end in (entity.source, entity.target) if end] if entity.source else []

        async def work() -> Batch:
            current = await self.svc.store.get(location)
            if current is None:
                return Batch()
            spec = await self.spec_for(current)
            observed = await self.svc.driver.create(spec)
            current = await self.svc.store.get(location)
            if current is None:  # deleted while the cloud was creating it: do not leak the object
                await self.svc.driver.delete(self.backed(entity.kind) or ResourceType.COMPUTE, observed.backend_id)
                return Batch()
            updated = current.copy()
            self.apply_observed(updated, observed)
            return Batch(put=[updated])

        self.svc.jobs.spawn(op, work, lambda error: self._fail(location, error), after=after)

    async def run_create(self, entity: Entity, op: Operation) -> None:
        """Create one entity in the cloud: one write when the cloud answers within `sync_wait`.

        Until the answer, the entity exists only here, so the work starts from this object; if
        the cloud takes longer, the entity is written as "creating" first and the result after.
        """
        location = entity.location
        resource = self.backed(entity.kind) or ResourceType.COMPUTE

        made: list[str] = []

        async def work() -> Batch:
            observed = await self.svc.driver.create(await self.spec_for(entity))
            made.append(observed.backend_id)
            updated = entity.copy()
            self.apply_observed(updated, observed)
            return Batch(put=[updated])

        async def on_error(error: OcciError) -> Batch:
            failed = entity.copy()
            self._set_state(failed, fsm.ERROR_STATE.get(entity.kind), error.message)
            return Batch(put=[failed])

        async def refresh(batch: Batch) -> Batch:
            if await self.svc.store.get(location) is None:
                # deleted while the cloud was creating it: do not leak the object
                for made in batch.put:
                    if made.backend_id:
                        await self.svc.driver.delete(resource, made.backend_id)
                return Batch(put_operations=batch.put_operations)
            return batch

        start = Batch(put=[entity], put_operations=[op])
        try:
            await self.svc.jobs.run(op, work, on_error, start, self.svc.options.sync_wait, refresh)
        except OcciError:
            # the write was refused (e.g. a concurrent create took the id): nothing may stay behind
            for backend_id in made:
                await self.svc.driver.delete(resource, backend_id)
            raise

    async def keep_existing(self, batch: Batch) -> Batch:
        """The batch without puts of entities deleted meanwhile (a late result must not resurrect them)."""
        kept = [entity for entity in batch.put if await self.svc.store.get(entity.location) is not None]
        return Batch(put=kept, put_operations=batch.put_operations)

    # ---- update ----------------------------------------------------------------------------------

    def _live_changes(self, stored: Entity, updated: Entity) -> dict[str, AttributeValue]:
        changes: dict[str, AttributeValue] = {}
        for name in LIVE_ATTRIBUTES.get(stored.kind, ()):
            if name in updated.attributes and stored.attributes.get(name) != updated.attributes[name]:
                changes[name] = updated.attributes[name]
        for mixin_id in updated.mixins:
            if mixin_id not in stored.mixins and mixin_id in self.templates:
                template = self.templates[mixin_id]
                changes[template.family] = template.term
        return changes

    def plan_update(self, stored: Entity, updated: Entity, owner: str) -> Operation | None:
        """An update operation when the cloud must apply the change, or None for bookkeeping-only changes."""
        resource = self.backed(stored.kind)
        if resource is None or not stored.backend_id:
            return None
        changes = self._live_changes(stored, updated)
        if not changes:
            return None
        capabilities = self.svc.driver.capabilities
        if resource is ResourceType.STORAGE and Capability.RESIZE_STORAGE not in capabilities:
            raise NotSupported(f"the {self.svc.driver.name} cloud cannot resize storage")
        if resource is ResourceType.COMPUTE:
            if "os_tpl" in changes and Capability.REIMAGE not in capabilities:
                raise NotSupported(f"the {self.svc.driver.name} cloud cannot replace the OS template of a compute")
            if set(changes) - {"os_tpl"} and Capability.RESIZE_COMPUTE not in capabilities:
                raise NotSupported(f"the {self.svc.driver.name} cloud cannot resize a compute")
        self._set_state(updated, None, "updating")
        return self.svc.jobs.new(stored.location, "update", owner, "updating")

    def launch_update(self, stored: Entity, updated: Entity, op: Operation) -> None:
        location = stored.location
        resource = self.backed(stored.kind)
        assert resource is not None and stored.backend_id
        backend_id = stored.backend_id
        changes = self._live_changes(stored, updated)
        restore = {name: stored.attributes[name] for name in changes if name in stored.attributes}

        async def work() -> Batch:
            observed = await self.svc.driver.update(resource, backend_id, changes)
            current = await self.svc.store.get(location)
            if current is None:
                return Batch()
            fresh = current.copy()
            self.apply_observed(fresh, observed, overwrite=False)
            return Batch(put=[fresh])

        self.svc.jobs.spawn(op, work, lambda error: self._fail(location, error, restore))

    # ---- actions ----------------------------------------------------------------------------------

    def plan_action(self, entity: Entity, term: str, owner: str) -> tuple[Entity, Operation] | None:
        resource = self.backed(entity.kind)
        if resource is None or not entity.backend_id:
            return None
        updated = entity.copy()
        self._set_state(updated, None, f"{term} in progress")
        return updated, self.svc.jobs.new(entity.location, term, owner, f"{term} in progress")

    def _action_work(self, entity: Entity, term: str, params: Mapping[str, AttributeValue]) -> jobs.Work:
        location = entity.location
        resource = self.backed(entity.kind)
        assert resource is not None and entity.backend_id
        backend_id = entity.backend_id

        async def work() -> Batch:
            observed = await self.svc.driver.act(resource, backend_id, term, params)
            current = await self.svc.store.get(location)
            if current is None:
                return Batch()
            fresh = current.copy()
            self.apply_observed(fresh, observed, overwrite=False)
            return Batch(put=[fresh])

        return work

    def launch_action(self, entity: Entity, term: str, params: Mapping[str, AttributeValue], op: Operation) -> None:
        location = entity.location
        self.svc.jobs.spawn(op, self._action_work(entity, term, params), lambda error: self._fail(location, error))

    async def run_action(self, entity: Entity, term: str, params: Mapping[str, AttributeValue],
                         planned: tuple[Entity, Operation]) -> None:
        """One action on one entity: one write when the cloud answers within `sync_wait`."""
        updated, op = planned
        location = entity.location
        await self.svc.jobs.run(op, self._action_work(entity, term, params), lambda error: self._fail(location, error),
                                Batch(put=[updated], put_operations=[op]), self.svc.options.sync_wait,
                                self.keep_existing)

    # ---- delete ------------------------------------------------------------------------------------

    def plan_delete(self, entity: Entity, owner: str) -> Operation | None:
        if self.backed(entity.kind) is None or not entity.backend_id:
            self.unindex(entity)
            return None
        return self.svc.jobs.new(entity.location, "delete", owner, "deleting")

    def launch_deletes(self, jobs: Sequence[tuple[Entity, Operation]]) -> None:
        """Delete cloud objects; links first, so resources wait for their links' jobs."""
        link_locations = [entity.location for entity, _ in jobs if entity.source]
        # A resource is deleted after every delete already running: one of them may be a link
        # that still attaches something to it (deleted from the store, not yet from the cloud).
        earlier = self.svc.jobs.in_flight("delete")
        for entity, op in jobs:
            resource = self.backed(entity.kind)
            assert resource is not None and entity.backend_id
            backend_id = entity.backend_id
            doomed = entity

            async def work(resource: ResourceType = resource, backend_id: str = backend_id,
                           doomed: Entity = doomed) -> Batch:
                await self.svc.driver.delete(resource, backend_id)
                self.unindex(doomed)
                return Batch()

            async def on_error(error: OcciError, doomed: Entity = doomed) -> Batch:
                log.warning("cloud object of deleted entity %s was not deleted: %s", doomed.location, error.message)
                self.unindex(doomed)
                return Batch()

            after = [doomed.location] + ([] if entity.source else [*link_locations, *earlier])
            self.svc.jobs.spawn(op, work, on_error, after=after)

    # ---- save ------------------------------------------------------------------------------------

    async def save(self, entity: Entity, name: str | None, method: str) -> Mixin:
        if Capability.SAVE not in self.svc.driver.capabilities or not entity.backend_id:
            raise NotSupported(f"the {self.svc.driver.name} cloud cannot save a compute")
        template = await self.svc.driver.save(entity.backend_id, name, method)
        mixin = self.template_mixin(template)
        if self.svc.registry.find(mixin.type_id) is not None:
            raise Conflict(f"a template {mixin.type_id} already exists")
        await self.svc.store.commit(Batch(put_mixins=[mixin]))
        self.svc.registry.add(mixin)
        self.templates[mixin.type_id] = template
        return mixin

    # ---- reconcile ---------------------------------------------------------------------------------

    def start_reconcile(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._follow_changes()))
        if self.svc.options.reconcile_interval > 0:
            self._tasks.append(loop.create_task(self._periodic()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()

    async def _follow_changes(self) -> None:
        async for change in self.svc.driver.changes():
            try:
                location = self._backend_index.get((change.resource, change.backend_id))
                if location is not None:
                    await self.reconcile_one(location, change.observed)
            except Exception:
                log.exception("could not apply an outside change to %s", change.backend_id)

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.svc.options.reconcile_interval)
            await self.reconcile_all()

    async def reconcile_all(self) -> None:
        """Observe every cloud object once and write back what changed outside occipy."""
        for (resource, backend_id), location in list(self._backend_index.items()):
            try:
                observed = await self.svc.driver.observe(resource, backend_id)
                await self.reconcile_one(location, observed)
            except OcciError as error:
                log.warning("reconcile of %s failed: %s", location, error.message)

    async def reconcile_one(self, location: str, observed: Observed | None) -> None:
        svc = self.svc
        if svc.jobs.busy(location):
            return  # the running operation will write the state
        entity = await svc.store.get(location)
        if entity is None:
            return
        updated = entity.copy()
        if observed is None:
            self._set_state(updated, fsm.ERROR_STATE.get(entity.kind), "the object was deleted outside occipy")
        else:
            self.apply_observed(updated, observed, overwrite=False)
        if updated.attributes != entity.attributes or updated.mixins != entity.mixins:
            await svc.store.commit(Batch(put=[updated]))


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _user_data(value: object) -> bytes | None:
    """Contextualisation data: Base64 when it decodes cleanly, else the text itself (infrastructure.md §9.4)."""
    if not isinstance(value, str):
        return None
    compact = "".join(value.split())
    if compact and len(compact) % 4 == 0 and re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", compact):
        try:
            return base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            pass
    return value.encode()

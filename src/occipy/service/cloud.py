"""The cloud-facing half of the service: entities to driver calls, as jobs in the entities' lanes.

`Cloud` holds one driver, its templates (as mixins), the bindings of the kinds it realises and the
lanes (`queue.Lanes`). Handlers ask it for jobs (create, edit, action, save, delete) and submit
them; it writes back what the cloud reports, follows changes made outside occipy (lifecycle
events and a periodic reconcile, through the same lanes), and at start-up resumes or closes the
work a crash interrupted (D-RESTART, D-DELETE-DURABLE) and removes cloud objects no entity owns.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast

from occipy.backends.base import (
    FLAVOUR,
    IMAGE,
    Action,
    Adopts,
    Driver,
    Inventories,
    Observed,
    Proposes,
    Ref,
    Samples,
    Save,
    Saves,
    Support,
    Template,
    Update,
    Updates,
    Watches,
)
from occipy.errors import (
    BackendError,
    BackendUnavailable,
    BadRequest,
    Conflict,
    NotFound,
    NotSupported,
    OcciError,
)
from occipy.model import state as fsm
from occipy.model.catalogue import ACTION_UPDATES, STORAGE_BACKUP, STORAGE_SNAPSHOT
from occipy.model.category import AttributeValue, Mixin
from occipy.model.entity import Entity
from occipy.model.extensions import ALL as ALL_EXTENSIONS
from occipy.model.extensions import ExtensionSet, Feature
from occipy.model.registry import Registry
from occipy.observability import metrics
from occipy.service import bindings as bindings_module
from occipy.service.bindings import Binding, SpecInput, observed_of
from occipy.service.bindings import egi as _egi  # noqa: F401  (registers the EGI kinds) [monitoring]
from occipy.service.bindings import infrastructure as _infrastructure  # noqa: F401  (registers the kinds)
from occipy.service.bindings import platform as _platform  # noqa: F401  (registers the Platform kinds)
from occipy.service.edits import Edit, apply_edit, set_state, state_of, template_family
from occipy.service.queue import Finish, Job, Lanes
from occipy.service.templates import FAMILIES, TemplateIndex
from occipy.store.base import FAILED, QUEUED, RUNNING, SUCCEEDED, Batch, EntityQuery, Operation, Store

log = logging.getLogger("occipy.cloud")
T = TypeVar("T")

_SLUG: Final = re.compile(r"[^a-z0-9-]+")
SAVE_ACTION: Final = "http://schemas.ogf.org/occi/infrastructure/compute/action#save"
# Actions that mean nothing without a cloud object (D-LEGACY-STORAGE): where no cloud runs them
# they are 501, never a success nothing backs.
CLOUD_ONLY_ACTIONS: Final = frozenset({STORAGE_BACKUP, STORAGE_SNAPSHOT})


CLOUD_SCHEME: Final = "http://occipy.org/occi/cloud#"

# Scale-out (docs/scaleout.md): the claim of the process that runs the work that must run once
# (the default cloud's; another cloud's is "occipy:leader:<name>").
LEADER_CLAIM: Final = "occipy:leader"
# The periodic reconcile shares the event loop with the requests, so it works in slices: at most
# RECONCILE_SLICE seconds of the loop, then a rest of RECONCILE_REST times what the slice took
# (a request that comes meanwhile has the loop to itself). A page is read in one go, so it stays
# small. Before (500-entity pages, a turn of the loop every 50 entities, no rest) a pass over
# 35,000 computes made every one-connection start/stop that met it wait 5-20 ms for 1-2 s, the
# pauses behind `make bench`'s p99 (docs/performance.md, 2026-12-07 04:10).
RECONCILE_PAGE: Final = 100
RECONCILE_SLICE: Final = 0.001
RECONCILE_REST: Final = 2.0
# Over a whole cycle (a pass and the pause after it) the reconcile works at most this share of
# the loop: a pass that worked W seconds is followed by a pause of at least W / RECONCILE_SHARE
# (D-RECONCILE-SHARE). Up to about 50,000 entities (SQLite, simulated cloud) the pause stays
# `reconcile_interval`; beyond, the passes space out instead of taking ever more of the CPU.
RECONCILE_SHARE: Final = 0.05
ADOPTED_KEPT: Final = 100_000  # refs remembered as told to an `Adopts` driver (Cloud.adopt_one)


# [monitoring] The driver resource types that realise each extension feature (Feature.MONITORING
# comes from the `Samples` protocol instead).
FEATURE_RESOURCES: Final[Mapping[Feature, frozenset[str]]] = {
    Feature.SECURITY_GROUPS: frozenset({"securitygroup", "securitygrouplink"}),
    Feature.FLOATING_IPS: frozenset({"ipreservation"}),
    Feature.PLATFORM: frozenset({"application", "component"}),
}


@dataclass(frozen=True, slots=True)
class CloudOptions:
    provider_scheme: str = "http://occipy.org/occi/"
    sync_wait: float = 0.2
    reconcile_interval: float = 30.0
    name: str = "default"
    # Seconds between two attempts to reach a cloud that was unreachable at start-up (several clouds).
    retry_interval: float = 10.0
    # Scale-out: how often a process looks for recorded work nobody runs, and for a free leader claim.
    recovery_interval: float = 1.0


def cloud_name(entity: Entity) -> str:
    """A cloud-friendly object name: a slug of the title and the location's last segment."""
    segment = entity.location.rstrip("/").rpartition("/")[2]
    title = entity.title
    if title:
        slug = _SLUG.sub("-", title.lower()).strip("-")[:40]
        if slug:
            return f"{slug}-{segment}"
    return segment


def reconcile_pause(interval: float, worked: float) -> float:
    """Seconds from the end of a reconcile pass that worked `worked` seconds to the next one:
    `interval`, or longer so that the reconcile works at most RECONCILE_SHARE of the loop."""
    return max(interval, worked / RECONCILE_SHARE)


class Slices:
    """Background work on the event loop that gives way to requests: it runs for `work` seconds
    at most, then rests `rest` times as long as it ran (the loop is free for requests meanwhile).
    A cloud and a store that answer without suspending (simulated, cached SQLite) would
    otherwise hold the loop for a whole pass: 0.37 s for 10,000 entities."""

    def __init__(self, work: float, rest: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.work = work
        self.rest = rest
        self.clock = clock
        self.sleep = sleep
        self.started = clock()
        self.worked = 0.0  # seconds of slices ended so far (rests not counted)

    async def give_way(self) -> None:
        """Rest if this slice has run its time (call it between two steps of the work)."""
        spent = self.clock() - self.started
        if spent >= self.work:
            self.worked += spent
            await self.sleep(spent * self.rest)
            self.started = self.clock()

    def end(self) -> float:
        """The work is done: the seconds it worked in all, its last slice included."""
        self.worked += self.clock() - self.started
        self.started = self.clock()
        return self.worked


class Cloud:
    """One driver behind OCCI: templates, bindings, reconciling, recovery.

    With several clouds (`Clouds`), each is a mixin `http://occipy.org/occi/cloud#<name>` that its
    entities carry, and its templates depend on it; the default cloud's templates keep the plain
    provider scheme, the others' are `<provider scheme><name>/os_tpl#...`.
    """

    def __init__(self, registry: Registry, store: Store, driver: Driver, options: CloudOptions,
                 extensions: ExtensionSet | None = None, *, lanes: Lanes | None = None,
                 default: bool = True, several: bool = False,
                 resolve: Callable[[Entity], Cloud] | None = None) -> None:
        self.registry = registry
        # The OCCI extensions served (their hooks run on every create, update, link and action).
        self.extensions = extensions if extensions is not None else ExtensionSet(ALL_EXTENSIONS)
        self.store = store
        self.driver = driver
        self.options = options
        self.name = options.name
        self.default = default
        self.lanes = lanes if lanes is not None else Lanes(store, options.sync_wait, _Meter(driver.name))
        # The cloud's mixin, when the server fronts several clouds (None: one cloud, no mixin).
        self.mixin: Mixin | None = Mixin(
            scheme=CLOUD_SCHEME, term=options.name, title=f"Cloud {options.name} ({driver.name})",
            location=f"/mixin/cloud/{options.name}/") if several else None
        scheme_base = options.provider_scheme if default else f"{options.provider_scheme}{options.name}/"
        self.templates = TemplateIndex(registry, scheme_base, options.name,
                                       depends=(self.mixin.type_id,) if self.mixin is not None else ())
        self.calls = Metered(driver)
        # The optional protocols it implements, asked once (isinstance on a Protocol is slow).
        self.saves = isinstance(driver, Saves)
        self.updates = isinstance(driver, Updates)
        self.adopts = isinstance(driver, Adopts)
        # Whether the driver is open; why not, when it could not be reached.
        self.available = False
        self.unavailable_reason = "not opened yet"
        self._resolve = resolve or (lambda entity: self)
        self._index: dict[Ref, str] = {}
        # Refs this process told an `Adopts` driver about (bounded: the oldest are forgotten, and
        # telling the driver again is harmless, `Adopts.adopt` leaves a known object as it is).
        self._adopted: OrderedDict[Ref, None] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        # [monitoring] categories this driver cannot realise (set by start()), and the values the
        # realising backend fits into a new entity (the monitor's best-fit timing, MON-03/04).
        self.unrealisable: frozenset[str] = frozenset()
        self.creation_hooks: list[Callable[[str, Mapping[str, AttributeValue]], Mapping[str, AttributeValue]]] = []

    # ---- what the driver can do ---------------------------------------------------------------------

    def check(self) -> None:
        """503 naming the cloud when it cannot be reached (the others keep answering)."""
        if not self.available:
            raise BackendUnavailable(f"the cloud {self.name} cannot be reached: {self.unavailable_reason}")

    def owns(self, entity: Entity) -> bool:
        return self._resolve(entity) is self

    def binding(self, kind_id: str) -> Binding | None:
        """The binding of a kind, if this driver realises its resource type."""
        binding = bindings_module.BINDINGS.get(kind_id)
        if binding is None or binding.resource not in self.driver.supports:
            return None
        return binding

    def support(self, kind_id: str) -> Support | None:
        binding = self.binding(kind_id)
        return self.driver.supports[binding.resource] if binding is not None else None

    def backed(self, entity: Entity) -> Binding | None:
        """The binding when the entity has an object in the cloud."""
        return self.binding(entity.kind) if entity.backend_id else None

    def can_save(self) -> bool:
        return self.saves

    # ---- [monitoring] what the driver can realise (docs/extensions.md "Plugging into the service" 7) ----

    def features(self) -> frozenset[str]:
        """The extension features this driver realises (`model.extensions.Feature` values).

        A feature whose resource types no binding realises yet (platform, until a driver brings
        its binding) is not held against any driver: its categories stay served and stored.
        """
        have = set()
        bound = {binding.resource for binding in bindings_module.BINDINGS.values()}
        for feature, resources in FEATURE_RESOURCES.items():
            if not bound & resources or resources <= set(self.driver.supports):
                have.add(feature.value)
        if isinstance(self.driver, Samples) and self.driver.sampled:
            have.add(Feature.MONITORING.value)
        return frozenset(have)

    def check_realisable(self, kind_id: str, mixin_ids: Sequence[str] = ()) -> None:
        """NotSupported (501) for a kind or mixin this driver cannot realise (left out of discovery)."""
        for type_id in (kind_id, *mixin_ids):
            if type_id in self.unrealisable:
                raise NotSupported(f"the {self.driver.name} cloud cannot realise {type_id}")

    def creation_values(self, kind_id: str, attributes: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
        """Values the realising backend sets in a new entity (written back: monitoring draft §3.1)."""
        values: dict[str, AttributeValue] = {}
        for hook in self.creation_hooks:
            values.update(hook(kind_id, {**attributes, **values}))
        return values

    def offers_action(self, entity: Entity, action_id: str) -> bool:
        """Whether the action may be invoked on the entity (the cloud runs it, or nothing runs it)."""
        binding = self.binding(entity.kind)
        if binding is None:
            return action_id not in CLOUD_ONLY_ACTIONS
        support = self.driver.supports[binding.resource]
        updates = ACTION_UPDATES.get(action_id)
        if updates is not None:
            # An action that is an update (resize): offered when the cloud can apply that update.
            fields = {binding.live[name] for name in updates.values() if name in binding.live}
            return not fields or (self.updates and fields <= support.updates)
        term = action_id.rpartition("#")[2]
        if action_id == SAVE_ACTION:
            return self.can_save()
        return term in support.actions

    # ---- start and stop ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the driver (BackendUnavailable when the cloud cannot be reached)."""
        try:
            await self.driver.open()
        except OcciError as error:
            self.available = False
            self.unavailable_reason = error.message
            raise
        self.available = True

    async def start(self, saved: Sequence[Mixin], *, recover: bool = True, lead: bool = True) -> None:
        """Offer templates, resume or close interrupted work (`recover`), follow changes (`lead`).

        Nothing is scanned at start-up: a driver re-learns a stored object when a job's turn comes
        (`Adopts`, via `lanes.before_turn`, set by `Clouds`) or when the reconcile reaches it. On a
        store that several processes share, interrupted work is adopted entity by entity (whoever
        takes the entity's claim first, now and every `recovery_interval`), and the work that must
        run once per cloud (its change stream, the periodic reconcile, removing lost cloud objects)
        runs in the one process that holds the cloud's leader claim, taken over by another when
        that process dies (docs/scaleout.md).
        """
        if self.mixin is not None and self.registry.find(self.mixin.type_id) is None:
            self.registry.add(self.mixin)
        self.unrealisable = self.extensions.unrealisable(self.features())  # [monitoring]
        listed = list(self.driver.templates())
        for template in listed:
            # docker branch: Platform families (RUNTIME, PLAN) too; EGI pools (POOL) when the
            # floatingippool parent is served and realisable.
            parent = FAMILIES[template.family][0] if template.family in FAMILIES else None
            if parent is not None and self.registry.find(parent) is not None and parent not in self.unrealisable:
                self.templates.offer(template)
        for mixin in saved:
            if self.templates.owns(mixin):
                self.templates.adopt_saved(mixin, listed)
        if recover:
            await self.recover()
        if lead:
            await self.lead()

    async def lead(self) -> None:
        """Start the work that runs once per cloud: here and now with one process; on a shared store
        wherever the cloud's leader claim is (D-LEADER). After `recover`: the sweep must see the
        interrupted creates closed."""
        if self.lanes.shared is None:
            await self._lead_now()
            return
        self._tasks.append(asyncio.get_running_loop().create_task(self._lead(), name=f"occipy-leader-{self.name}"))

    async def recover(self) -> None:
        """D-RESTART for every cloud (the lanes are shared): resume or close the work a crash
        interrupted. On a shared store, the work of dead processes is adopted now and every
        `recovery_interval` (`lanes.rebuild` rebuilds each job)."""
        if self.lanes.shared is None:
            await self._recover()
            return
        self.lanes.rebuild = self._rebuild
        await self._recovery_pass()
        self._tasks.append(asyncio.get_running_loop().create_task(self._recovery(), name="occipy-recovery"))

    @property
    def leader_claim(self) -> str:
        return LEADER_CLAIM if self.default else f"{LEADER_CLAIM}:{self.name}"

    async def adopt_one(self, entity: Entity | None) -> None:
        """Tell the driver about a stored object it may not know (Adopts), before a job uses it."""
        if not self.adopts or entity is None:
            return
        binding = self.backed(entity)
        if binding is None:
            return
        assert entity.backend_id is not None
        # Not added to `_index`: a reconcile pass touches every entity, and memory must stay
        # bounded by what requests touch (`_follow` asks the store for refs it does not know).
        ref = Ref(binding.resource, entity.backend_id)
        if ref in self._index or ref in self._adopted:
            return  # made, followed or adopted by this process: the driver knows it
        await cast(Adopts, self.driver).adopt(ref, observed_of(binding, entity, fsm.state_attribute(entity.kind)))
        self._adopted[ref] = None
        if len(self._adopted) > ADOPTED_KEPT:
            self._adopted.popitem(last=False)

    async def _lead_now(self) -> None:
        """The work that runs in one process: cleaning lost objects, following the cloud."""
        loop = asyncio.get_running_loop()
        if isinstance(self.driver, Inventories):
            await self._sweep(self.driver)
        if isinstance(self.driver, Watches):
            self._tasks.append(loop.create_task(self._follow(self.driver)))
            if self.options.reconcile_interval > 0:
                self._tasks.append(loop.create_task(self._periodic()))
        elif isinstance(self.driver, Inventories) and self.lanes.shared is not None \
                and self.options.reconcile_interval > 0:
            self._tasks.append(loop.create_task(self._periodic()))

    async def _lead(self) -> None:
        """Shared store: take the leader claim when it is free (at once, then every recovery_interval)."""
        assert self.lanes.shared is not None
        while True:
            try:
                if await self.lanes.shared.claim(self.leader_claim):
                    log.info("this process leads cloud %s: its reconcile, change stream and lost-object cleaning run here",
                             self.name)
                    await self._lead_now()
                    return  # the claim is held by the database session until this process ends
            except OcciError as error:
                log.warning("cannot take the leader claim: %s", error.message)
            await asyncio.sleep(self.options.recovery_interval)

    async def _recovery(self) -> None:
        while True:
            await asyncio.sleep(self.options.recovery_interval)
            try:
                await self._recovery_pass()
            except OcciError as error:
                log.warning("recovery pass failed: %s", error.message)

    async def _recovery_pass(self) -> None:
        """Adopt every entity with recorded work whose claim nobody holds (its process died, or the
        process that recorded it found the claim taken and its holder let go)."""
        assert self.lanes.shared is not None
        for location in await self.lanes.shared.pending_locations():
            if not self.lanes.busy(location):
                await self.lanes.adopt(location)

    async def _rebuild(self, op: Operation) -> Any:
        """The job of an operation another process recorded, or None once it is ended (D-RESTART):
        queued work and deletes run; running work whose process is gone ends failed."""
        now = time.time()
        entity = await self.store.get(op.location)
        if entity is None:
            ended = op.ended("succeeded" if op.action == "delete" else FAILED,
                             None if op.action == "delete" else "the entity is gone", now)
            await self.store.commit(Batch(put_operations=[ended]))
            return None
        if op.action == "delete" or op.state == QUEUED:
            try:
                return self._resumed(op, entity)
            except OcciError as error:
                await self.store.commit(Batch(put_operations=[op.ended(FAILED, error.message, now)]))
                return None
        message = "interrupted: the server process running it stopped"
        closing = Batch(put_operations=[op.ended(FAILED, message, now)],
                        put=[set_state(entity, fsm.ERROR_STATE.get(entity.kind), f"{op.action} was {message}")])
        await self.store.commit(closing)
        log.warning("operation %s (%s on %s) ended: %s", op.op_id, op.action, op.location, message)
        return None

    async def stop(self, timeout: float = 10.0) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("background task %s ended with an error", task.get_name())
        self._tasks.clear()
        await self.lanes.drain(timeout)
        if self.available:
            self.available = False
            self.unavailable_reason = "closed"
            await self.driver.close()

    async def _recover(self) -> None:
        """D-RESTART: resume deletes and queued work; running work that cannot be resumed fails."""
        now = time.time()
        closing = Batch()
        resumable: list[tuple[Operation, Entity]] = []
        for op in await self.store.pending_operations():
            entity = await self.store.get(op.location)
            if entity is None:
                closing.put_operations.append(op.ended(FAILED if op.action != "delete" else "succeeded",
                                                       None if op.action == "delete" else "the entity is gone", now))
                continue
            if op.action == "delete" or op.state == QUEUED:
                resumable.append((op, entity))
                continue
            closing.put_operations.append(op.ended(FAILED, "interrupted by a restart of the server", now))
            closing.put.append(set_state(entity, fsm.ERROR_STATE.get(entity.kind),
                                         f"{op.action} was interrupted by a restart of the server"))
        if closing:
            await self.store.commit(closing)
        for op, entity in resumable:
            try:
                spec = self._resumed(op, entity)
            except OcciError as error:
                await self.store.commit(Batch(put_operations=[op.ended(FAILED, error.message, time.time())]))
                continue
            await self.lanes.resume(op, spec)

    def _resumed(self, op: Operation, entity: Entity) -> Any:
        cloud = self._resolve(entity)
        if op.action == "delete":
            return DeleteSpec(cloud, entity)
        if op.action == "create":
            # Queued creates (written with their request's other entities) never reached the cloud.
            return CreateSpec(cloud, entity, True)
        if op.action == "update":
            return EditSpec(cloud, entity.location, Edit.from_params(op.params))
        action_id = str(op.params.get("action_id", ""))
        params = op.params.get("params", {})
        if action_id == SAVE_ACTION:
            return SaveSpec(cloud, entity.location, params)
        return ActionSpec(cloud, entity.location, action_id, params)

    async def _sweep(self, driver: Inventories) -> None:
        """D-RESTART: delete cloud objects occipy made and lost track of (a crash between the cloud's
        answer and the write). An interrupted create's entity is in `error` by now (`_recover`); the
        half-made object it waited for is not trusted and goes too. An object whose entity has work
        recorded is left alone: a create in flight (in this or another process) has made it and not
        written it yet."""
        try:
            tagged = await driver.inventory()
        except OcciError as error:
            log.warning("cannot list the cloud's objects to find lost ones: %s", error.message)
            return
        for item in tagged:
            owner = await self.store.get_by_id(item.entity_id)
            if owner is not None and owner.backend_id == item.ref.backend_id:
                continue
            if owner is not None and (self.lanes.busy(owner.location)
                                      or await self.store.pending_operations(owner.location)):
                continue
            log.warning("deleting %s %s: no entity owns it (entity id %s)", item.ref.resource,
                        item.ref.backend_id, item.entity_id)
            try:
                await self.driver.delete(item.ref)
            except OcciError as error:
                log.warning("could not delete lost object %s: %s", item.ref.backend_id, error.message)

    # ---- indexes -----------------------------------------------------------------------------------

    def index(self, entity: Entity) -> None:
        binding = self.backed(entity)
        if binding is not None and entity.backend_id:
            self._index[Ref(binding.resource, entity.backend_id)] = entity.location

    def unindex_ref(self, ref: Ref) -> None:
        self._index.pop(ref, None)

    def live_changes(self, stored: Entity, updated: Entity) -> tuple[dict[str, object], dict[str, AttributeValue]]:
        """The update fields a change needs applied to the live object, and the values to restore if
        it fails; NotSupported (501) when the cloud cannot apply them (GFD.224 §3.5)."""
        binding = self.backed(stored)
        if binding is None:
            return {}, {}
        fields: dict[str, object] = {}
        restore: dict[str, AttributeValue] = {}
        for name, field_name in binding.live.items():
            if name in updated.attributes and stored.attributes.get(name) != updated.attributes[name]:
                fields[field_name] = updated.attributes[name]
                if name in stored.attributes:
                    restore[name] = stored.attributes[name]
        for mixin_id in updated.mixins:
            template = self.templates.template(mixin_id) if mixin_id not in stored.mixins else None
            if template is not None:
                fields[{IMAGE: "image", FLAVOUR: "flavour"}.get(template.family, template.family)] = template.name
        if fields:
            support = self.driver.supports[binding.resource]
            missing = sorted(set(fields) - support.updates) if self.updates else sorted(fields)
            if missing:
                what = {"image": "replace the OS template of", "flavour": "replace the resource template of",
                        "size_gib": "resize", "pool": "move to another pool"}.get(missing[0], "resize")
                raise NotSupported(f"the {self.driver.name} cloud cannot {what} a {binding.resource} "
                                   f"({', '.join(missing)})")
        return fields, restore

    def unindex(self, entity: Entity) -> None:
        binding = self.binding(entity.kind)
        if binding is not None and entity.backend_id:
            self._index.pop(Ref(binding.resource, entity.backend_id), None)

    # ---- writing back what the cloud reports -----------------------------------------------------------

    def apply_observed(self, entity: Entity, binding: Binding, observed: Observed, *,
                       overwrite: bool = True) -> Entity:
        """The entity with what the cloud reports (state, message, facts it decided).

        With `overwrite` False (after an update or an action, and when reconciling), values the
        client controls are kept: the cloud only fills in what is missing and what the server manages.
        """
        reported = binding.report(observed.facts)
        mixins = list(entity.mixins)
        defs = self.registry.attribute_defs(entity.kind, mixins)
        values: dict[str, AttributeValue] = {}
        for mixin_id in reported.mixins:
            if mixin_id not in mixins and self.registry.is_mixin(mixin_id) \
                    and self.registry.applies_to(mixin_id, entity.kind):
                mixins.append(mixin_id)
        if mixins != list(entity.mixins):
            defs = self.registry.attribute_defs(entity.kind, mixins)
        for name, value in reported.attributes.items():
            adef = defs.get(name)
            if adef is None:
                continue
            if not overwrite:
                server_managed = not adef.mutable
                if not server_managed and (name in entity.attributes or name not in binding.reported):
                    continue
            values[name] = value
        updated = entity.evolve(mixins=mixins, attributes={**entity.attributes, **values},
                                backend_id=observed.backend_id or entity.backend_id)
        return set_state(updated, observed.state or None, observed.message)

    def spec_input(self, entity: Entity, ends: tuple[str, str] | None = None) -> SpecInput:
        return SpecInput(name=cloud_name(entity), image=self.templates.chosen(entity.mixins, IMAGE),
                         flavour=self.templates.chosen(entity.mixins, FLAVOUR), ends=ends,
                         templates=self.templates.chosen_all(entity.mixins))  # docker branch: Platform templates

    async def link_ends(self, link: Entity) -> tuple[str, str]:
        ids = []
        for end in (link.source, link.target):
            other = await self.store.get(end) if end else None
            if other is None or not other.backend_id:
                raise BackendError(f"{end} has no object in the cloud (was its creation successful?)")
            ids.append(other.backend_id)
        return ids[0], ids[1]

    def provisions_link(self, link: Entity, kinds: Mapping[str, str]) -> bool:
        """A link is provisioned when both ends are local resources of kinds the driver realises."""
        if self.binding(link.kind) is None:
            return False
        for end in (link.source, link.target):
            kind = kinds.get(end or "")
            if not end or not end.startswith("/") or kind is None or self.binding(kind) is None:
                return False
        return True

    def propose(self, link: Entity, siblings: Sequence[Entity], provisioned: bool) -> Entity:
        """Names for a new link's multiplicity-1 attributes (GFD.224 §3.4): the driver's, if it names
        them, else neutral ones; values the client gave stay."""
        binding = bindings_module.BINDINGS.get(link.kind)
        if binding is None:
            return link
        values: Mapping[str, AttributeValue] = {}
        if provisioned and isinstance(self.driver, Proposes):
            spec = binding.spec(link, self.spec_input(link, ends=("", "")))
            taken = [binding.facts(sibling) for sibling in siblings]
            facts = self.driver.propose(spec, taken)
            values = binding.report(facts).attributes
        elif not provisioned:
            values = binding.proposal(siblings)
        missing = {name: value for name, value in values.items() if name not in link.attributes}
        return link.with_attributes(missing) if missing else link

    # ---- following the cloud ---------------------------------------------------------------------------

    async def _follow(self, driver: Watches) -> None:
        async for change in driver.changes():
            location = self._index.get(change.ref)
            if location is None:
                # Not touched here yet (nothing is scanned at start-up): ask the store.
                for entity in await self.store.query(EntityQuery(backend=change.ref.backend_id, limit=4)):
                    binding = self.backed(entity)
                    if binding is not None and binding.resource == change.ref.resource and self.owns(entity):
                        location = entity.location
                        self._index[change.ref] = location
            if location is None:
                continue
            observed = change.observed
            if self.lanes.worked_recently(location):
                # A polling driver may have read the object before our own work on it ended (a
                # stop seen half-way through a cold restart): a stale state would overwrite the
                # work's result until the next poll. Ask the cloud again, now.
                try:
                    observed = await self.calls.observe(change.ref)
                except OcciError as error:
                    log.warning("checking a change of %s failed: %s", location, error.message)
                    continue
            await self.reconcile_one(location, observed)

    async def _periodic(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        pause = self.options.reconcile_interval
        while True:
            await sleep(pause)
            worked = await self.reconcile_all()
            if self.lanes.shared is not None and isinstance(self.driver, Inventories):
                await self._sweep(self.driver)  # objects of creates whose process died
            pause = reconcile_pause(self.options.reconcile_interval, worked)

    async def reconcile_all(self) -> float:
        """Observe every cloud object once and write back what changed outside occipy; the
        seconds the pass worked (its slices, not its rests).

        The store is read a page at a time (memory stays bounded, whatever the number of entities),
        and the pass gives way to requests (`Slices`).
        """
        slices = Slices(RECONCILE_SLICE, RECONCILE_REST)
        after: str | None = None
        while True:
            await slices.give_way()
            page = await self.store.query(EntityQuery(after=after, limit=RECONCILE_PAGE))
            if not page:
                return slices.end()
            after = page[-1].location
            for entity in page:
                await slices.give_way()
                binding = self.backed(entity)
                if binding is None or entity.backend_id is None or not self.owns(entity):
                    continue
                ref = Ref(binding.resource, entity.backend_id)
                try:
                    await self.adopt_one(entity)
                    observed = await self.calls.observe(ref)
                except OcciError as error:
                    log.warning("reconcile of %s failed: %s", entity.location, error.message)
                    continue
                await self.reconcile_one(entity.location, observed)

    async def reconcile_one(self, location: str, observed: Observed | None) -> None:
        if self.lanes.busy(location):
            return  # the running operation will write the state
        entity = await self.store.get(location)
        if entity is None:
            return
        binding = self.backed(entity)
        if binding is None:
            return

        def change(current: Entity) -> Entity:
            if observed is None:
                # D-OUTSIDE: the entity stays, in error, with a message.
                return set_state(current, fsm.ERROR_STATE.get(current.kind), "the object was deleted outside occipy")
            assert binding is not None
            return self.apply_observed(current, binding, observed, overwrite=False)

        updated = change(entity)
        if updated.attributes != entity.attributes or updated.mixins != entity.mixins:
            op = self.lanes.new_operation(location, "reconcile", entity.tenant, "occipy")
            try:
                job = await self.lanes.submit(op, ReconcileSpec(change))
                await asyncio.shield(job.done)
            except NotFound:
                pass  # being deleted, or deleted meanwhile


class Clouds:
    """Every cloud the server fronts (docs/decisions.md D-CLOUDS): one `Cloud` per driver, the
    default first, sharing one set of lanes and one extension set.

    An entity belongs to the cloud whose mixin it carries (the default cloud's when none, as with a
    single cloud); a new entity to the cloud of its cloud mixin or of its template.
    """

    def __init__(self, registry: Registry, store: Store, drivers: Sequence[tuple[str, Driver]],
                 options: CloudOptions, extensions: ExtensionSet | None = None) -> None:
        if not drivers:
            raise ValueError("a server fronts at least one cloud")
        self.registry = registry
        self.store = store
        self.options = options
        self.extensions = extensions if extensions is not None else ExtensionSet(ALL_EXTENSIONS)
        self.lanes = Lanes(store, options.sync_wait, _Meter(self))
        several = len(drivers) > 1
        self.clouds: dict[str, Cloud] = {}
        for position, (name, driver) in enumerate(drivers):
            if name in self.clouds:
                raise ValueError(f"two clouds are named {name}")
            self.clouds[name] = Cloud(registry, store, driver, replace(options, name=name), self.extensions,
                                      lanes=self.lanes, default=position == 0, several=several, resolve=self.of)
        self.default = next(iter(self.clouds.values()))
        self._by_mixin = {cloud.mixin.type_id: cloud for cloud in self.clouds.values() if cloud.mixin is not None}
        self._retries: list[asyncio.Task[None]] = []

    @property
    def several(self) -> bool:
        return len(self.clouds) > 1

    # ---- which cloud -----------------------------------------------------------------------------

    def of(self, entity: Entity) -> Cloud:
        """The cloud an entity belongs to."""
        for mixin_id in entity.mixins:
            cloud = self._by_mixin.get(mixin_id)
            if cloud is not None:
                return cloud
        return self.default

    def for_new(self, mixin_ids: Sequence[str]) -> Cloud:
        """The cloud a new entity goes to: its cloud mixin's, else its templates', else the default.

        A cloud mixin and a template of another cloud (or templates of two clouds) are a 400.
        """
        chosen: dict[str, Cloud] = {}
        for mixin_id in mixin_ids:
            cloud = self._by_mixin.get(mixin_id)
            if cloud is not None:
                chosen[cloud.name] = cloud
                continue
            for candidate in self.clouds.values():
                if mixin_id in candidate.templates:
                    chosen[candidate.name] = candidate
        if len(chosen) > 1:
            raise BadRequest(f"the mixins name more than one cloud: {', '.join(sorted(chosen))}")
        return next(iter(chosen.values())) if chosen else self.default

    def mixins_for(self, cloud: Cloud, mixin_ids: Sequence[str]) -> list[str]:
        """The mixins of a new entity with its cloud's mixin (several clouds: every entity shows it)."""
        result = list(mixin_ids)
        if cloud.mixin is not None and cloud.mixin.type_id not in result:
            result.append(cloud.mixin.type_id)
        return result

    # ---- the same questions as a Cloud's, answered by the entity's cloud ---------------------------

    def backed(self, entity: Entity) -> Binding | None:
        return self.of(entity).backed(entity)

    def offers_action(self, entity: Entity, action_id: str) -> bool:
        return self.of(entity).offers_action(entity, action_id)

    def live_changes(self, stored: Entity, updated: Entity) -> tuple[dict[str, object], dict[str, AttributeValue]]:
        return self.of(stored).live_changes(stored, updated)

    @property
    def unrealisable(self) -> frozenset[str]:
        """Categories no cloud can realise (left out of discovery; creating them is 501)."""
        sets = [cloud.unrealisable for cloud in self.clouds.values()]
        return frozenset.intersection(*sets) if sets else frozenset()

    def cross_cloud(self, source: Entity, target: Entity | None) -> tuple[Cloud, Cloud] | None:
        """The two clouds of a link's ends when they differ and both are realised (else None)."""
        if target is None or not self.several:
            return None
        first, second = self.of(source), self.of(target)
        if first is second or first.binding(source.kind) is None or second.binding(target.kind) is None:
            return None
        return first, second

    # ---- life cycle ----------------------------------------------------------------------------------

    async def start(self, saved: Sequence[Mixin]) -> None:
        """Open and start every cloud. With one cloud, an unreachable one stops start-up (one clear
        line); with several, it is a warning, it answers 503, and it is tried again in the background."""
        reached: list[Cloud] = []
        for cloud in self.clouds.values():
            if cloud.mixin is not None and self.registry.find(cloud.mixin.type_id) is None:
                self.registry.add(cloud.mixin)
            try:
                await cloud.open()
            except OcciError as error:
                if not self.several:
                    raise
                log.warning("cloud %s (%s) cannot be reached: %s; trying again every %g s", cloud.name,
                            cloud.driver.name, error.message, self.options.retry_interval)
                self._retries.append(asyncio.get_running_loop().create_task(self._retry(cloud, saved)))
                continue
            reached.append(cloud)
        if self.lanes.before_turn is None:
            self.lanes.before_turn = self._adopt_one
        if self.lanes.shared is not None:
            self.lanes.shared.watch_mixins(self.reload_mixins)
        for cloud in reached:
            await cloud.start(saved, recover=False, lead=False)
        await self.default.recover()
        for cloud in reached:
            await cloud.lead()

    async def _adopt_one(self, entity: Entity | None) -> None:
        """Before a job's turn: its cloud's driver learns the stored object (Adopts), if it may not
        know it (nothing is scanned at start-up)."""
        if entity is not None:
            await self.of(entity).adopt_one(entity)

    async def reload_mixins(self) -> None:
        """Another process changed the user mixins (or saved templates): bring the registry in line.

        Called by the shared store before it answers the first read that sees the change, so the
        next request on this process sees a mixin another process defined (read-your-writes).
        """
        stored = {mixin.type_id: mixin for mixin in await self.store.user_mixins()}
        registry = self.registry
        for category in list(registry.categories()):
            if isinstance(category, Mixin) and category.user_defined and stored.get(category.type_id) != category:
                registry.remove_mixin(category.type_id)
        pending = [mixin for mixin in stored.values() if registry.find(mixin.type_id) is None]
        while pending:
            left = []
            for mixin in pending:
                try:
                    registry.add(mixin)
                    for cloud in self.clouds.values():
                        if not mixin.user_defined and cloud.available and cloud.templates.owns(mixin):
                            cloud.templates.adopt_saved(mixin, list(cloud.driver.templates()))
                except OcciError:
                    left.append(mixin)  # it depends on one not added yet
            if len(left) == len(pending):
                for mixin in left:
                    log.error("stored mixin %s cannot be registered (its dependencies are missing)", mixin.type_id)
                break
            pending = left


    async def _retry(self, cloud: Cloud, saved: Sequence[Mixin]) -> None:
        while True:
            await asyncio.sleep(self.options.retry_interval)
            try:
                await cloud.open()
            except OcciError as error:
                log.info("cloud %s still cannot be reached: %s", cloud.name, error.message)
                continue
            log.warning("cloud %s (%s) is reachable again", cloud.name, cloud.driver.name)
            await cloud.start(saved, recover=False)
            return

    async def stop(self, timeout: float = 10.0) -> None:
        for task in self._retries:
            task.cancel()
        for task in self._retries:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._retries.clear()
        for cloud in self.clouds.values():
            await cloud.stop(timeout)

    def claims(self) -> tuple[str, ...]:
        return self.extensions.claims()


class _Meter:
    """Operations into the Prometheus metrics (occipy_operations*, docs/metrics.md), labelled with
    the driver of the cloud that ran them."""

    def __init__(self, clouds: Clouds | str) -> None:
        self.clouds = clouds

    def _driver(self, spec: object) -> str:
        if isinstance(self.clouds, str):
            return self.clouds
        cloud = getattr(spec, "cloud_", None)
        return cloud.driver.name if isinstance(cloud, Cloud) else self.clouds.default.driver.name

    def started(self, op: Operation, spec: object) -> None:
        metrics.OPERATIONS_IN_PROGRESS.inc((self._driver(spec), "", op.action))

    def ended(self, op: Operation, kind: str | None, spec: object, cloud: bool) -> None:
        driver = self._driver(spec)
        if cloud:
            metrics.OPERATIONS_IN_PROGRESS.inc((driver, "", op.action), -1)
        metrics.operation_ended(driver, kind or "", op.action, op.state == SUCCEEDED,
                                max(op.updated - op.created, 0.0))


class Metered:
    """The driver with every call timed (occipy_driver_call_seconds, occipy_driver_errors)."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self._timers = {call: metrics.DriverCallTimer(driver.name, call)
                        for call in ("create", "delete", "observe", "act", "update", "save")}

    async def _timed(self, call: str, work: Awaitable[T]) -> T:
        timer = self._timers[call]
        started = timer.start()
        try:
            result = await work
        except BaseException as error:
            timer.stop(started, error)
            raise
        timer.stop(started)
        return result

    # Each call hands back `_timed`'s coroutine (no coroutine of its own around it: one frame less
    # per driver call).
    def create(self, spec: object) -> Coroutine[Any, Any, Observed]:
        return self._timed("create", self.driver.create(spec))

    def delete(self, ref: Ref) -> Coroutine[Any, Any, None]:
        return self._timed("delete", self.driver.delete(ref))

    def observe(self, ref: Ref) -> Coroutine[Any, Any, Observed | None]:
        return self._timed("observe", self.driver.observe(ref))

    def act(self, ref: Ref, action: Action) -> Coroutine[Any, Any, Observed]:
        return self._timed("act", self.driver.act(ref, action))

    def update(self, ref: Ref, change: Update) -> Coroutine[Any, Any, Observed]:
        driver = self.driver
        assert isinstance(driver, Updates)
        return self._timed("update", driver.update(ref, change))

    def save(self, ref: Ref, request: Save) -> Coroutine[Any, Any, Template]:
        driver = self.driver
        assert isinstance(driver, Saves)
        return self._timed("save", driver.save(ref, request))


# ---- the jobs ----------------------------------------------------------------------------------------


@dataclass
class CreateSpec:
    """Create an entity's cloud object (or only store it, when nothing in the cloud backs it)."""

    cloud_: Cloud
    entity: Entity
    provisioned: bool
    waits: list[asyncio.Future[Operation]] = field(default_factory=list)
    action: str = "create"
    params: dict[str, Any] = field(default_factory=dict)
    made: Ref | None = None

    @property
    def cloud(self) -> bool:
        return self.provisioned

    def prepare(self, entity: Entity | None) -> Entity | None:
        # The stored entity when there is one (written with other entities of its request, or after
        # a restart): it may carry changes applied since (D-TAGS-AT-ONCE).
        return set_state(entity or self.entity, None, "creating")

    async def run(self, entity: Entity | None) -> Finish:
        cloud = self.cloud_
        if not self.provisioned:
            return lambda latest: Batch(put=[latest]) if latest is not None else Batch(new=[self.entity])
        for waiting in self.waits:
            try:
                await asyncio.shield(waiting)
            except Exception:  # noqa: BLE001, S110  (the end's own failure is reported on the end)
                pass
        binding = cloud.binding(self.entity.kind)
        assert binding is not None
        ends = await cloud.link_ends(self.entity) if self.entity.source else None
        observed = await cloud.calls.create(binding.spec(self.entity, cloud.spec_input(self.entity, ends)))
        self.made = Ref(binding.resource, observed.backend_id)

        def finish(latest: Entity | None) -> Batch:
            created = cloud.apply_observed(latest or self.entity, binding, observed)
            cloud.index(created)
            # Never stored yet (work that ended within sync_wait is written once, D-SYNCWAIT):
            # insert-only, so that a location taken meanwhile is a Conflict, not an overwrite.
            return Batch(put=[created]) if latest is not None else Batch(new=[created])

        return finish

    def fail(self, entity: Entity | None, error: OcciError) -> Batch:
        base = entity or self.entity
        return Batch(put=[set_state(base, fsm.ERROR_STATE.get(base.kind), error.message)])

    async def undo(self) -> None:
        if self.made is not None:
            self.cloud_.unindex_ref(self.made)
            await self.cloud_.calls.delete(self.made)


@dataclass
class ActionSpec:
    """An action on an entity: the cloud runs it, or (nothing behind it) the state machine alone."""

    cloud_: Cloud
    location: str
    action_id: str
    args: Mapping[str, AttributeValue]
    action: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    cloud: bool = False
    _target: str | None = None

    def __post_init__(self) -> None:
        self.action = self.action_id.rpartition("#")[2]
        self.params = {"action_id": self.action_id, "params": dict(self.args)}

    def prepare(self, entity: Entity | None) -> Entity | None:
        if entity is None:
            raise NotFound(f"{self.location} no longer exists")
        # Checked again at its turn: an earlier operation may have failed (INF-R1).
        self._target = fsm.next_state(entity.kind, state_of(entity), self.action_id)
        self.cloud = self.cloud_.backed(entity) is not None
        if not self.cloud and self.action_id in CLOUD_ONLY_ACTIONS:
            raise NotSupported(f"the {self.cloud_.driver.name} cloud cannot {self.action} this "
                               f"{entity.kind.rpartition('#')[2]}: it has no object in the cloud")
        return set_state(entity, None, f"{self.action} in progress")

    async def run(self, entity: Entity | None) -> Finish:
        assert entity is not None
        cloud = self.cloud_
        binding = cloud.backed(entity)
        if binding is None:
            target = self._target
            return lambda latest: Batch(put=[self._effects(set_state(latest, target, None))]
                                        if latest is not None else [])
        assert entity.backend_id is not None
        observed = await cloud.calls.act(Ref(binding.resource, entity.backend_id),
                                          binding.action(self.action, self.args))

        def finish(latest: Entity | None) -> Batch:
            if latest is None:
                return Batch()
            return Batch(put=[self._effects(cloud.apply_observed(latest, binding, observed, overwrite=False))])

        return finish

    def _effects(self, entity: Entity) -> Entity:
        """What the action changes besides the state (an extension's hook, e.g. SLA accept: agreedAt)."""
        values = self.cloud_.extensions.on_action(entity.kind, self.action_id, entity.attributes,
                                                  datetime.now(UTC))
        return entity.with_attributes(values) if values else entity

    def fail(self, entity: Entity | None, error: OcciError) -> Batch:
        if entity is None:
            return Batch()
        return Batch(put=[set_state(entity, fsm.ERROR_STATE.get(entity.kind), error.message)])

    async def undo(self) -> None:
        return None


@dataclass
class SaveSpec:
    """The compute `save` action: snapshot into a new OS template (GFD.224 §3.1), as an operation."""

    cloud_: Cloud
    location: str
    args: Mapping[str, AttributeValue]
    action: str = "save"
    params: dict[str, Any] = field(default_factory=dict)
    cloud: bool = True

    def __post_init__(self) -> None:
        self.params = {"action_id": SAVE_ACTION, "params": dict(self.args)}

    def prepare(self, entity: Entity | None) -> Entity | None:
        if entity is None:
            raise NotFound(f"{self.location} no longer exists")
        fsm.next_state(entity.kind, state_of(entity), SAVE_ACTION)
        if not self.cloud_.can_save() or not entity.backend_id:
            raise NotSupported(f"the {self.cloud_.driver.name} cloud cannot save a compute")
        return set_state(entity, None, "save in progress")

    async def run(self, entity: Entity | None) -> Finish:
        assert entity is not None and entity.backend_id is not None
        cloud = self.cloud_
        driver = cloud.driver
        assert isinstance(driver, Saves)
        name = self.args.get("name")
        method = self.args.get("method")
        template = await cloud.calls.save(Ref(cloud.binding(entity.kind).resource, entity.backend_id),  # type: ignore[union-attr]
                                     Save(image_name=name if isinstance(name, str) else None,
                                          method=method if isinstance(method, str) else "hot"))
        mixin = cloud.templates.mixin_for(template)
        if cloud.registry.find(mixin.type_id) is not None:
            raise Conflict(f"a template {mixin.type_id} already exists")
        observed = await cloud.calls.observe(Ref(cloud.binding(entity.kind).resource, entity.backend_id))  # type: ignore[union-attr]

        def finish(latest: Entity | None) -> Batch:
            cloud.templates.offer(template)
            batch = Batch(put_mixins=[mixin])
            if latest is not None:
                binding = cloud.backed(latest)
                shown = set_state(latest, None, None)
                if observed is not None and binding is not None:
                    shown = cloud.apply_observed(shown, binding, observed, overwrite=False)
                batch.put.append(shown)
            self.params["template"] = mixin.type_id
            return batch

        return finish

    def fail(self, entity: Entity | None, error: OcciError) -> Batch:
        if entity is None:
            return Batch()
        # A failed snapshot leaves the compute as it was, with the reason as its message.
        return Batch(put=[set_state(entity, None, f"save failed: {error.message}")])

    async def undo(self) -> None:
        return None


@dataclass
class EditSpec:
    """A client's update (POST/PUT on the entity, a mixin association), with the cloud's part."""

    cloud_: Cloud
    location: str
    edit: Edit
    visible: Callable[[Mixin], bool] | None = None
    action: str = "update"
    params: dict[str, Any] = field(default_factory=dict)
    cloud: bool = False
    _updated: Entity | None = None
    _fields: dict[str, object] = field(default_factory=dict)
    _restore: dict[str, AttributeValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.params = self.edit.params()

    def prepare(self, entity: Entity | None) -> Entity | None:
        if entity is None:
            raise NotFound(f"{self.location} no longer exists")
        cloud = self.cloud_
        updated = apply_edit(cloud.registry, entity, self.edit, visible=self.visible)
        cloud.extensions.validate(updated.kind, updated.mixins, updated.attributes, cloud.registry)
        cloud.check_realisable(updated.kind, [m for m in updated.mixins if m not in entity.mixins])  # [monitoring]
        self._updated = updated
        self._fields, self._restore = cloud.live_changes(entity, updated)
        self.cloud = bool(self._fields)
        return set_state(updated, None, "updating") if self.cloud else None

    async def run(self, entity: Entity | None) -> Finish:
        assert entity is not None and self._updated is not None
        cloud = self.cloud_
        updated = self._updated
        if not self._fields:
            return lambda latest: Batch(put=[updated])
        binding = cloud.backed(entity)
        assert binding is not None and entity.backend_id is not None and isinstance(cloud.driver, Updates)
        observed = await cloud.calls.update(Ref(binding.resource, entity.backend_id), binding.update(self._fields))

        def finish(latest: Entity | None) -> Batch:
            # `updated` is the entity as the edit made it at its turn: nothing else wrote it since.
            return Batch(put=[cloud.apply_observed(updated, binding, observed, overwrite=False)])

        return finish

    def fail(self, entity: Entity | None, error: OcciError) -> Batch:
        if entity is None:
            return Batch()
        restored = entity.with_attributes(self._restore)
        return Batch(put=[set_state(restored, fsm.ERROR_STATE.get(entity.kind), error.message)])

    async def undo(self) -> None:
        return None


@dataclass
class DeleteSpec:
    """Delete an entity and its cloud object; durable: its record is written before the cloud call."""

    cloud_: Cloud
    entity: Entity
    waits: list[asyncio.Future[Operation]] = field(default_factory=list)
    action: str = "delete"
    params: dict[str, Any] = field(default_factory=dict)
    cloud: bool = False

    def __post_init__(self) -> None:
        self.cloud = self.cloud_.backed(self.entity) is not None

    def prepare(self, entity: Entity | None) -> Entity | None:
        # At its turn the entity may have gained its cloud object (a delete queued behind a create).
        self.cloud = self.cloud_.backed(entity or self.entity) is not None
        return None

    async def run(self, entity: Entity | None) -> Finish:
        cloud = self.cloud_
        for waiting in self.waits:
            try:
                await asyncio.shield(waiting)
            except Exception:  # noqa: BLE001, S110  (another delete's failure is its own)
                pass
        current = entity or self.entity
        binding = cloud.backed(current)
        if binding is not None:
            assert current.backend_id is not None
            await cloud.calls.delete(Ref(binding.resource, current.backend_id))
        location = current.location

        def finish(latest: Entity | None) -> Batch:
            cloud.unindex(latest or current)
            return Batch(delete=[location])

        return finish

    def fail(self, entity: Entity | None, error: OcciError) -> Batch:
        # The cloud refused to delete: the entity stays, in error, with the reason (the client may retry).
        if entity is None:
            return Batch()
        log.warning("cloud object of %s was not deleted: %s", entity.location, error.message)
        return Batch(put=[set_state(entity, fsm.ERROR_STATE.get(entity.kind), f"delete failed: {error.message}")])

    async def undo(self) -> None:
        return None


@dataclass
class ReconcileSpec:
    """Write what the cloud reported outside any operation (no cloud call), onto the entity as it
    is when written (a change applied meanwhile stays, D-TAGS-AT-ONCE)."""

    change: Callable[[Entity], Entity]
    action: str = "reconcile"
    params: dict[str, Any] = field(default_factory=dict)
    cloud: bool = False

    def prepare(self, entity: Entity | None) -> Entity | None:
        if entity is None:
            raise NotFound("gone")
        return None

    async def run(self, entity: Entity | None) -> Finish:
        change = self.change
        return lambda latest: Batch(put=[change(latest)] if latest is not None else [])

    def fail(self, entity: Entity | None, error: OcciError) -> Batch:
        return Batch()

    async def undo(self) -> None:
        return None


__all__ = [
    "RUNNING",
    "ActionSpec",
    "Cloud",
    "CloudOptions",
    "CreateSpec",
    "DeleteSpec",
    "EditSpec",
    "Job",
    "ReconcileSpec",
    "SaveSpec",
    "template_family",
]

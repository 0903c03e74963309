"""Action invocation on an entity or a collection (GFD.223 §10.3.2, §11.3.3; GFD.221 §5.3.5).

Resolve the action from `?action=term` and the invocation rendering, check its parameters, check
the state machine against the state the entity will be in when the action's turn comes (409 when
not allowed, INF-R1), then queue it as an operation in the entity's lane. `save` is an operation
like every other action; its answer renders the new OS template (GFD.224 §3.1). An action that is
an update (the OCCI 1.1 storage `resize`, D-LEGACY-STORAGE) runs as that update: same checks,
same operation, same 501 from a cloud that cannot apply it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from occipy.errors import BadRequest, NotSupported
from occipy.model import rules
from occipy.model import state as fsm
from occipy.model.catalogue import ACTION_UPDATES
from occipy.model.category import AttributeValue, Kind, Mixin
from occipy.model.entity import Entity
from occipy.service.cloud import SAVE_ACTION, ActionSpec, EditSpec, SaveSpec
from occipy.service.context import Context
from occipy.service.edits import MERGE, Edit, apply_edit, state_of
from occipy.service.handlers.base import Env, outcome_of, settle, visible_mixin
from occipy.service.parse import Invocation
from occipy.service.queue import Job
from occipy.service.quotas import Reservation, release_all, release_when_done
from occipy.service.results import CategoriesResult, CollectionResult, EntityResult, Result
from occipy.service.routes import Route
from occipy.store.base import SUCCEEDED, EntityQuery


class _Plan(msgspec.Struct, frozen=True):
    """One entity's part of an invocation, checked: the state it leads to and, for an action that
    is an update, the edit it runs and the entity as the edit leaves it."""

    entity: Entity
    target: str | None
    edit: Edit | None = None
    updated: Entity | None = None


def _parameters(env: Env, action_id: str, message: Invocation) -> dict[str, AttributeValue]:
    return rules.check_parameters(env.registry, action_id, message.invocation.attributes,
                                  lenient=message.invocation.lenient)


def _now(env: Env, entity: Entity) -> str | None:
    """The state the entity will be in when a new operation's turn comes."""
    return env.cloud.lanes.projected(entity.location) or state_of(entity)


def _check(env: Env, ctx: Context, entity: Entity, action_id: str,
           params: Mapping[str, AttributeValue]) -> _Plan:
    """The action checked against the entity (4xx/501 now): the state it leads to, checked against
    the state the entity will then be in."""
    updates = ACTION_UPDATES.get(action_id)
    if updates is not None:
        return _check_update(env, ctx, entity, action_id, updates, params)
    if not env.cloud.offers_action(entity, action_id):
        raise NotSupported(f"the {env.cloud.of(entity).driver.name} cloud cannot {action_id.rpartition('#')[2]} a "
                           f"{entity.kind.rpartition('#')[2]}")
    return _Plan(entity, fsm.next_state(entity.kind, _now(env, entity), action_id))


def _check_update(env: Env, ctx: Context, entity: Entity, action_id: str, updates: Mapping[str, str],
                  params: Mapping[str, AttributeValue]) -> _Plan:
    """D-LEGACY-STORAGE: `resize` "maps to an update of occi.storage.size" (infrastructure.md §6),
    checked as a POST of that attribute would be (400 on a bad value, 501 when the cloud cannot
    apply it), after the state machine (online or offline)."""
    target = fsm.next_state(entity.kind, _now(env, entity), action_id)
    edit = Edit(mode=MERGE, attributes={name: params[param] for param, name in updates.items() if param in params})
    cloud = env.cloud.of(entity)
    updated = apply_edit(env.registry, entity, edit, visible=visible_mixin(ctx))
    cloud.extensions.validate(updated.kind, updated.mixins, updated.attributes, env.registry)
    if cloud.live_changes(entity, updated)[0]:
        cloud.check()
    return _Plan(entity, target, edit, updated)


async def _reserve(env: Env, plans: Sequence[_Plan]) -> list[Reservation | None]:
    """issue 8: what an update grows (a resize's size) counts against the owners' quotas."""
    grown: dict[str, list[Entity]] = {}
    for plan in plans:
        if plan.updated is not None:
            grown.setdefault(plan.entity.tenant, []).append(plan.updated)
    held: list[Reservation | None] = []
    try:
        for tenant, entities in grown.items():
            held.append(await env.quotas.reserve(env.registry, env.store, env.options.quotas, tenant, entities))
    except BaseException:
        release_all(held)
        raise
    return held


async def _submit(env: Env, ctx: Context, plan: _Plan, action_id: str, params: Mapping[str, AttributeValue]) -> Job:
    entity = plan.entity
    cloud = env.cloud.of(entity)
    lanes = cloud.lanes
    if plan.edit is not None:
        # The operation of the update the action is (an "update", resumed as one after a restart).
        op = lanes.new_operation(entity.location, "update", entity.tenant, ctx.principal.user,
                                 params=plan.edit.params())
        lanes.project(entity.location, plan.target)
        return await lanes.submit(op, EditSpec(cloud, entity.location, plan.edit, visible_mixin(ctx)))
    if cloud.backed(entity) is not None:
        cloud.check()  # 503 naming the cloud when it cannot be reached
    term = action_id.rpartition("#")[2]
    spec: ActionSpec | SaveSpec
    if action_id == SAVE_ACTION:
        spec = SaveSpec(cloud, entity.location, params)
    else:
        spec = ActionSpec(cloud, entity.location, action_id, params)
    lanes.project(entity.location, plan.target)
    op = lanes.new_operation(entity.location, term, entity.tenant, ctx.principal.user, params=spec.params)
    return await lanes.submit(op, spec)


async def _submit_all(env: Env, ctx: Context, plans: Sequence[_Plan], action_id: str,
                      params: Mapping[str, AttributeValue]) -> list[Job]:
    held = await _reserve(env, plans)
    jobs: list[Job] = []
    try:
        for plan in plans:
            jobs.append(await _submit(env, ctx, plan, action_id, params))
    finally:
        for reservation in held:
            release_when_done(reservation, [job.done for job in jobs])
    return jobs


async def invoke(env: Env, ctx: Context, route: Route, message: Invocation) -> Result:
    """POST <entity>?action=term: 200 + the entity rendering (save: the new OS template)."""
    stored = route.entity
    assert stored is not None
    registry = env.registry
    action_id = rules.resolve_action(registry, registry.action_ids(stored.kind, stored.mixins), message.term,
                                     message.invocation.action)
    params = _parameters(env, action_id, message)
    plan = _check(env, ctx, stored, action_id, params)
    (job,) = await _submit_all(env, ctx, [plan], action_id, params)
    wait = env.options.save_timeout if action_id == SAVE_ACTION else env.options.sync_wait
    (op,) = await settle([job], wait)
    if action_id == SAVE_ACTION and op.state == SUCCEEDED:
        template = registry.find(str(job.spec.params.get("template", "")))
        if isinstance(template, Mixin):
            # GFD.224 §3.1: "the response MUST contain the rendering of the newly created OS Template"
            return CategoriesResult([template], outcome=outcome_of(job, op))
    current = await env.store.get(stored.location) or stored
    return EntityResult(await env.views.view(current), outcome_of(job, op))


async def invoke_on_collection(env: Env, ctx: Context, route: Route, message: Invocation) -> Result:
    """POST <collection>?action=term: valid only if every member has the action (GFD.221 §5.3.5).

    Every member is checked first (state included), then the action is queued on each: a member
    for which the action is not allowed makes the whole request fail (409) with nothing queued
    (the batch rule, http-protocol.md §6.6). A member already in the state the action leads to,
    with no transition for it from there (start on an active compute), is left alone: a no-op,
    not a refusal (docs/decisions.md D-COLLECTION-NOOP; H-33 expects 200).
    """
    category = route.category
    assert category is not None
    registry = env.registry
    tenant = ctx.tenant_filter
    own_actions = list(category.actions)
    if isinstance(category, Kind):
        own_actions = registry.action_ids(category.type_id)
        members = await env.store.query(EntityQuery(kinds=(category.type_id,), tenant=tenant))
    else:
        members = await env.store.query(EntityQuery(mixin=category.type_id, tenant=tenant))
    # GFD.185 §3.4.3: the action must belong to the Kind or Mixin owning the location.
    action_id = rules.resolve_action(registry, own_actions, message.term, message.invocation.action)
    params = _parameters(env, action_id, message)
    if action_id == SAVE_ACTION:
        raise BadRequest("save cannot be invoked on a collection")
    plans = []
    for entity in members:
        if action_id not in registry.action_ids(entity.kind, entity.mixins):
            raise BadRequest(f"{entity.location} does not have the action {message.term}")
        if fsm.already_there(entity.kind, _now(env, entity), action_id):
            continue  # D-COLLECTION-NOOP
        plans.append(_check(env, ctx, entity, action_id, params))
    jobs = await _submit_all(env, ctx, plans, action_id, params)
    ops = await settle(jobs, env.options.sync_wait)
    refreshed: list[Entity] = []
    for entity in members:
        current = await env.store.get(entity.location)
        if current is not None:
            refreshed.append(current)
    keys = "links" if isinstance(category, Kind) and registry.is_link_kind(category.type_id) else "resources"
    recorded = [op for job, op in zip(jobs, ops) if job.recorded]
    return CollectionResult(members=refreshed, keys=keys if isinstance(category, Kind) else "both",
                            outcome=outcome_of(jobs[0] if jobs else None, recorded[0] if recorded else None,
                                               others=recorded))

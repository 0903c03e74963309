"""Action invocation on an entity or a collection (GFD.223 §10.3.2, §11.3.3; GFD.221 §5.3.5).

Resolve the action from `?action=term` and the invocation rendering, check its parameters, check
the state machine against the state the entity will be in when the action's turn comes (409 when
not allowed, INF-R1), then queue it as an operation in the entity's lane. `save` is an operation
like every other action; its answer renders the new OS template (GFD.224 §3.1).
"""

from __future__ import annotations

from collections.abc import Mapping

from occipy.errors import BadRequest, NotSupported
from occipy.model import rules
from occipy.model import state as fsm
from occipy.model.category import AttributeValue, Kind, Mixin
from occipy.model.entity import Entity
from occipy.service.cloud import SAVE_ACTION, ActionSpec, SaveSpec
from occipy.service.context import Context
from occipy.service.edits import state_of
from occipy.service.handlers.base import Env, outcome_of, settle
from occipy.service.parse import Invocation
from occipy.service.queue import Job
from occipy.service.results import CategoriesResult, CollectionResult, EntityResult, Result
from occipy.service.routes import Route
from occipy.store.base import SUCCEEDED, EntityQuery


def _parameters(env: Env, action_id: str, message: Invocation) -> dict[str, AttributeValue]:
    return rules.check_parameters(env.registry, action_id, message.invocation.attributes,
                                  lenient=message.invocation.lenient)


def _check(env: Env, entity: Entity, action_id: str) -> str | None:
    """The state the action leads to, checked against the state the entity will then be in."""
    if not env.cloud.offers_action(entity, action_id):
        raise NotSupported(f"the {env.cloud.of(entity).driver.name} cloud cannot {action_id.rpartition('#')[2]} a "
                           f"{entity.kind.rpartition('#')[2]}")
    now = env.cloud.lanes.projected(entity.location) or state_of(entity)
    return fsm.next_state(entity.kind, now, action_id)


async def _submit(env: Env, ctx: Context, entity: Entity, action_id: str,
                  params: Mapping[str, AttributeValue], target: str | None) -> Job:
    cloud = env.cloud.of(entity)
    if cloud.backed(entity) is not None:
        cloud.check()  # 503 naming the cloud when it cannot be reached
    term = action_id.rpartition("#")[2]
    spec: ActionSpec | SaveSpec
    if action_id == SAVE_ACTION:
        spec = SaveSpec(cloud, entity.location, params)
    else:
        spec = ActionSpec(cloud, entity.location, action_id, params)
    cloud.lanes.project(entity.location, target)
    op = cloud.lanes.new_operation(entity.location, term, entity.tenant, ctx.principal.user, params=spec.params)
    return await cloud.lanes.submit(op, spec)


async def invoke(env: Env, ctx: Context, route: Route, message: Invocation) -> Result:
    """POST <entity>?action=term: 200 + the entity rendering (save: the new OS template)."""
    stored = route.entity
    assert stored is not None
    registry = env.registry
    action_id = rules.resolve_action(registry, registry.action_ids(stored.kind, stored.mixins), message.term,
                                     message.invocation.action)
    params = _parameters(env, action_id, message)
    target = _check(env, stored, action_id)
    job = await _submit(env, ctx, stored, action_id, params, target)
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

    Every member is checked first (state included); then the action is queued on each.
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
        plans.append((entity, _check(env, entity, action_id)))
    jobs = [await _submit(env, ctx, entity, action_id, params, target) for entity, target in plans]
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

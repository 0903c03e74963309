"""Action invocation on an entity or a collection (GFD.223 §10.3.2, §11.3.3; GFD.221 §5.3.5).

Resolve the action from `?action=term` and the invocation rendering, check its parameters, check
the state machine (409 when not allowed now, INF-R1), then run it as an operation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from occipy.errors import BadRequest
from occipy.model import rules
from occipy.model import state as fsm
from occipy.model.category import AttributeValue, Kind
from occipy.model.entity import Entity
from occipy.rendering.messages import ActionInvocation
from occipy.service import payload
from occipy.service.messages import OcciRequest
from occipy.service.reply import Reply
from occipy.service.routes import Route
from occipy.store.base import Batch, EntityQuery, Operation

if TYPE_CHECKING:
    from occipy.service.core import Service

SAVE = "http://schemas.ogf.org/occi/infrastructure/compute/action#save"


# ---- the domain rules: one copy in occipy.model.rules (the SDK calls the same functions) --------

def resolve_action(svc: Service, available: Sequence[str], term: str, invocation: ActionInvocation) -> str:
    """The action type id: the body's category (must match the query term) or the unique term match."""
    return rules.resolve_action(svc.registry, available, term, invocation.action)


def check_parameters(svc: Service, action_id: str, invocation: ActionInvocation) -> dict[str, AttributeValue]:
    """Parameters checked against the action's attribute definitions (INF-08: method enums)."""
    return rules.check_parameters(svc.registry, action_id, invocation.attributes, lenient=invocation.lenient)


def _state(entity: Entity) -> str | None:
    name = fsm.state_attribute(entity.kind)
    value = entity.attributes.get(name) if name else None
    return value if isinstance(value, str) else None


async def invoke(svc: Service, request: OcciRequest, stored: Entity, term: str) -> Reply:
    """POST <entity>?action=term: 200 + the entity rendering (save: the new OS template)."""
    invocation = payload.action(request)
    action_id = resolve_action(svc, svc.registry.action_ids(stored.kind, stored.mixins), term, invocation)
    params = check_parameters(svc, action_id, invocation)
    svc.jobs.ensure_idle(stored.location)
    target_state = fsm.next_state(stored.kind, _state(stored), action_id)
    if action_id == SAVE:
        name = params.get("name")
        method = params.get("method", "deferred")
        mixin = await svc.provisioning.save(stored, name if isinstance(name, str) else None, str(method))
        # GFD.224 §3.1: "the response MUST contain the rendering of the newly created OS Template"
        return Reply(categories=[mixin])
    planned = svc.provisioning.plan_action(stored, action_id.rpartition("#")[2], request.user)
    if planned is None:
        ops = await _run(svc, request, [(stored, action_id, params, target_state)])
    else:
        await svc.provisioning.run_action(stored, action_id.rpartition("#")[2], params, planned)
        ops = [planned[1]]
    current = await svc.store.get(stored.location) or stored
    reply = Reply(entity=await svc.view(current))
    if ops:
        reply.headers.append(("X-OCCI-Operation", svc.absolute(request, svc.jobs.location(ops[0]))))
    return svc.jobs.maybe_async(request, ops, reply)


async def _run(svc: Service, request: OcciRequest,
               plans: Sequence[tuple[Entity, str, Mapping[str, AttributeValue], str | None]]) -> list[Operation]:
    """Write every action's start (or, without a cloud object, its result) in one batch, then run."""
    batch = Batch()
    launches: list[tuple[Entity, str, Mapping[str, AttributeValue], Operation]] = []
    for entity, action_id, params, target_state in plans:
        term = action_id.rpartition("#")[2]
        planned = svc.provisioning.plan_action(entity, term, request.user)
        if planned is None:
            # Nothing in the cloud behind it (a plain resource, or a failed creation): the state
            # machine alone decides.
            updated = entity.copy()
            state_name = fsm.state_attribute(entity.kind)
            if state_name and target_state is not None:
                updated.attributes[state_name] = target_state
                updated.attributes.pop(state_name + ".message", None)
            batch.put.append(updated)
            continue
        updated, op = planned
        batch.put.append(updated)
        batch.put_operations.append(op)
        launches.append((entity, term, params, op))
    await svc.store.commit(batch)
    for entity, term, params, op in launches:
        svc.provisioning.launch_action(entity, term, params, op)
    ops = [op for *_, op in launches]
    await svc.jobs.wait(ops, svc.options.sync_wait)
    return ops


async def invoke_on_collection(svc: Service, request: OcciRequest, route: Route, term: str) -> Reply:
    """POST <collection>?action=term: valid only if every member has the action (GFD.221 §5.3.5).

    All members are checked first (state included); then the action runs on each (batch rule).
    """
    category = route.category
    assert category is not None
    invocation = payload.action(request)
    own_actions = list(category.actions)
    if isinstance(category, Kind):
        own_actions = svc.registry.action_ids(category.type_id)
        members = await svc.store.query(EntityQuery(kinds=(category.type_id,)))
    else:
        members = await svc.store.query(EntityQuery(mixin=category.type_id))
    # GFD.185 §3.4.3: the action must belong to the Kind or Mixin owning the location.
    action_id = resolve_action(svc, own_actions, term, invocation)
    params = check_parameters(svc, action_id, invocation)
    plans: list[tuple[Entity, str, Mapping[str, AttributeValue], str | None]] = []
    for entity in members:
        if action_id not in svc.registry.action_ids(entity.kind, entity.mixins):
            raise BadRequest(f"{entity.location} does not have the action {term}")
        svc.jobs.ensure_idle(entity.location)
        plans.append((entity, action_id, params, fsm.next_state(entity.kind, _state(entity), action_id)))
    if action_id == SAVE:
        raise BadRequest("save cannot be invoked on a collection")
    ops = await _run(svc, request, plans)
    refreshed: list[Entity] = []
    for entity in members:
        current = await svc.store.get(entity.location)
        if current is not None:
            refreshed.append(svc.decorate(current))
    keys = "links" if isinstance(category, Kind) and svc.registry.is_link_kind(category.type_id) else "resources"
    reply = Reply(collection=refreshed, collection_keys=keys if isinstance(category, Kind) else "both")
    return svc.jobs.maybe_async(request, ops, reply)



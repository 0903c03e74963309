"""What every handler gets besides its typed message and context: the `Env` of components, and the
helpers handlers share (visibility of categories and entities, waiting for an operation).

A handler is `async def handler(env, ctx, route, message) -> Result`. It never renders and never
sees the raw request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from occipy.errors import NotFound
from occipy.model.category import Category, Mixin
from occipy.model.entity import Entity
from occipy.model.registry import Registry
from occipy.service.cloud import Clouds
from occipy.service.context import Context
from occipy.service.events import EventHub
from occipy.service.options import ServiceOptions
from occipy.service.queue import Job
from occipy.service.quotas import Ledger
from occipy.service.results import Outcome
from occipy.service.views import Views
from occipy.store.base import Operation, Store


@dataclass
class Env:
    """The service's components, as handlers reach them."""

    registry: Registry
    store: Store
    cloud: Clouds  # every cloud the server fronts (one per driver), with the shared lanes
    views: Views
    options: ServiceOptions
    # Locations and entity ids being created by requests in flight (a create reserves both before
    # it looks at the store, so two concurrent creates of one location cannot both win).
    creating_locations: set[str] = field(default_factory=set)
    creating_ids: set[str] = field(default_factory=set)
    # Rendered documents that depend on the registry version and the request's scope (OpenAPI).
    documents: dict[tuple[object, ...], bytes] = field(default_factory=dict)
    # visible_categories() per (registry version, scope, what the clouds cannot realise).
    visible: dict[tuple[object, ...], list[Category]] = field(default_factory=dict)
    # issue 8 (tenancy branch): quota usage reserved by requests in flight (limits: options.quotas)
    quotas: Ledger = field(default_factory=Ledger)
    # issue 12: the event streams' hub (GET /-/events); the pipeline makes one per service.
    events: EventHub | None = None


def visible_mixin(ctx: Context) -> Callable[[Mixin], bool]:
    """A predicate for `edits.resolve_mixins`: user mixins of other tenants are unknown."""

    def visible(mixin: Mixin) -> bool:
        return not mixin.user_defined or ctx.sees(mixin.tenant)

    return visible


def visible_categories(env: Env, ctx: Context) -> list[Category]:
    """Every provider category plus the caller's tenant's user mixins (http-protocol.md §6.1 decision)."""
    unrealisable = env.cloud.unrealisable  # [monitoring] what the driver cannot realise is not offered
    key = (env.registry.version, ctx.scope, unrealisable)
    found = env.visible.get(key)
    if found is None:
        if len(env.visible) > 256:
            env.visible.clear()
        found = env.visible[key] = [
            c for c in env.registry.categories()
            if not (isinstance(c, Mixin) and c.user_defined and not ctx.sees(c.tenant))
            and c.type_id not in unrealisable]
    return found


async def find_entity(env: Env, ctx: Context, path: str) -> Entity | None:
    """The entity at a path or with an id, if the caller may see it (another tenant's is not there)."""
    entity = await env.store.get(path) if path.startswith("/") else await env.store.get_by_id(path)
    if entity is None or not ctx.sees(entity.tenant):
        return None
    return entity


async def settle(jobs: Sequence[Job], timeout: float) -> list[Operation]:
    """Wait up to `timeout` for the jobs (D-SYNCWAIT); the operations as they are then."""
    if not jobs:
        return []
    if len(jobs) == 1:
        return [await jobs[0].wait(timeout)]
    results = await asyncio.gather(*(job.wait(timeout) for job in jobs))
    return list(results)


def delete_wait(env: Env, ctx: Context) -> float:
    """How long a DELETE waits for the cloud: `delete_wait`, or `sync_wait` for a client that asked
    not to wait (RFC 7240 respond-async)."""
    return env.options.sync_wait if ctx.prefer_async else env.options.delete_wait


def outcome_of(job: Job | None, op: Operation | None, *, status: int = 200,
               others: Sequence[Operation] = ()) -> Outcome:
    """The outcome naming the operation, when there is a record of it (X-OCCI-Operation)."""
    named = op if job is not None and job.recorded and op is not None else None
    return Outcome(status=status, operation=named, operations=tuple(others))


def require_entity(entity: Entity | None, path: str) -> Entity:
    if entity is None:
        raise NotFound(f"nothing at {path}")
    return entity

"""Operation records: `/-/operations/<id>` and the collection `/-/operations/` (D-SYNCWAIT, D-QUEUE).

An operation is visible to its tenant (and to administrators); another tenant's is 404.
"""

from __future__ import annotations

from typing import Any

from occipy.errors import NotFound
from occipy.service.context import Context
from occipy.service.handlers.base import Env
from occipy.service.parse import Listing, NoBody
from occipy.service.results import CollectionResult, RecordResult, Result
from occipy.service.routes import OPERATIONS_PREFIX, Route
from occipy.store.base import Operation


def record(ctx: Context, op: Operation) -> dict[str, Any]:
    return {
        "id": op.op_id,
        "location": ctx.absolute(op.location),
        "action": op.action,
        "state": op.state,
        "message": op.message,
        "created": op.created,
        "updated": op.updated,
    }


async def get_operation(env: Env, ctx: Context, route: Route, message: NoBody) -> Result:
    """GET /-/operations/<id>: one operation as a record."""
    op_id = route.path[len(OPERATIONS_PREFIX):]
    op = await env.store.get_operation(op_id)
    if op is None or not ctx.sees(op.tenant):
        raise NotFound(f"no operation {op_id}")
    return RecordResult(record(ctx, op))


async def list_operations(env: Env, ctx: Context, route: Route, message: Listing) -> Result:
    """GET /-/operations/: the locations of the caller's operations, oldest first (pending ones with
    `?state=queued` or `?state=running` through the attribute filter `state`)."""
    state = message.attributes.get("state")
    ops = await env.store.operations(state=state if isinstance(state, str) else None, tenant=ctx.tenant_filter)
    paths = [OPERATIONS_PREFIX + op.op_id for op in ops]
    if message.page.number is not None:
        start = (message.page.page - 1) * message.page.number
        paths = paths[start:start + message.page.number]
    return CollectionResult(paths=paths, keys="both")

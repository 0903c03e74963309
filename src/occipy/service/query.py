"""The query interface `/-/`: discovery with filters, and user-defined mixins (GFD.223 §9; GFD.185 §3.4.1).

Users may define their own mixins (tags) with POST and remove them with DELETE; kinds and
provider mixins cannot be removed (403). Deleting a user mixin removes all its associations.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import unquote

from occipy.errors import BadRequest, Conflict, Forbidden, NotFound, OcciError
from occipy.model.category import TERM_RE, Action, Kind, Mixin, category_class, split_type_id
from occipy.model.registry import OGF_BASE
from occipy.rendering.messages import CategoryDefinition
from occipy.service import payload
from occipy.service.entities import local_path, without_mixin
from occipy.service.messages import OcciRequest
from occipy.service.reply import Reply
from occipy.service.routes import QUERY_PATHS
from occipy.store.base import Batch, EntityQuery

if TYPE_CHECKING:
    from occipy.service.core import Service

log = logging.getLogger("occipy.query")


def _visible(svc: Service, request: OcciRequest) -> list[Kind | Mixin | Action]:
    """Every provider category plus the caller's user mixins (http-protocol.md §6.1 decision)."""
    result: list[Kind | Mixin | Action] = []
    for category in svc.registry.categories():
        if isinstance(category, Mixin) and category.user_defined and category.owner not in (None, request.user):
            continue
        result.append(category)
    return result


def discover(svc: Service, request: OcciRequest) -> Reply:
    """GET /-/: the category collection, filtered by Category headers or `?category=` (GFD.223 §7.1)."""
    categories = _visible(svc, request)
    wanted: set[str] = set()
    classes: dict[str, str | None] = {}
    filters = payload.filters(request)
    for ref in filters.categories:
        type_id = svc.registry.canonical(ref.type_id)
        wanted.add(type_id)
        classes[type_id] = ref.cls
    raw = request.query.get("category")
    if raw:
        value = unquote(raw)
        if "#" in value:
            wanted.add(svc.registry.canonical(value))
        else:
            wanted.update(c.type_id for c in categories if c.term == value)
    if not (filters.categories or raw):
        return Reply(categories=categories, cache_key=("discover", request.user))
    if filters.categories or raw:
        categories = [
            c for c in categories
            if c.type_id in wanted and classes.get(c.type_id) in (None, category_class(c))
        ]
    return Reply(categories=categories)


def _check_definition(svc: Service, request: OcciRequest, definition: CategoryDefinition) -> Mixin:
    """A user mixin definition, validated (http-protocol.md §6.1 POST /-/ decisions)."""
    if definition.cls not in (None, "mixin"):
        raise BadRequest(f"only mixins can be defined by users, not a {definition.cls}")
    if not definition.scheme.endswith("#"):
        raise BadRequest(f"scheme must end with '#': {definition.scheme}")
    # GFD.221 §5.3.1: provider extensions MUST NOT use the OGF base URL (C-07)
    if definition.scheme.startswith(OGF_BASE):
        raise BadRequest(f"the scheme {OGF_BASE} is reserved for OGF specifications")
    if not TERM_RE.match(definition.term):
        raise BadRequest(f"invalid term {definition.term!r}")
    if definition.title is not None and any(ord(c) < 32 or ord(c) == 127 for c in definition.title):
        raise BadRequest("the title of a mixin cannot contain control characters")
    if definition.attributes or definition.actions:
        raise BadRequest("user-defined mixins cannot define attributes or actions (GFD.185 §3.4.1)")
    if not definition.location:
        raise BadRequest("a user-defined mixin needs a location")
    location = local_path(request, definition.location)
    if any(ord(c) <= 32 or ord(c) == 127 or c in '"<>\\^`{|}' for c in location):
        raise BadRequest(f"the location of a mixin must be a plain path: {definition.location!r}")
    if not (location.startswith("/") and location.endswith("/")) or location in QUERY_PATHS or location == "/":
        raise BadRequest(f"the location of a mixin must be a path ending with '/': {definition.location}")
    depends: list[str] = []
    for rel in definition.rel:
        rel_id = svc.registry.canonical(rel)
        # docs/decisions.md D-DANGLING-REL: a rel naming a mixin this server does not know is
        # kept and rendered, and contributes nothing (OCCI 1.1 clients send one); kinds and
        # actions are still refused.
        if svc.registry.is_kind(rel_id) or svc.registry.is_action(rel_id):
            raise BadRequest(f"rel must name mixins, not the {'kind' if svc.registry.is_kind(rel_id) else 'action'} {rel}")
        depends.append(rel_id)
    applies: list[str] = []
    for kind_id in definition.applies:
        if not svc.registry.is_kind(kind_id):
            raise BadRequest(f"applies names an unknown kind: {kind_id}")
        applies.append(svc.registry.canonical(kind_id))
    return Mixin(scheme=definition.scheme, term=definition.term, title=definition.title,
                 depends=tuple(depends), applies=tuple(applies), location=location,
                 user_defined=True, owner=request.user)


async def add_mixins(svc: Service, request: OcciRequest) -> Reply:
    """POST /-/: define one or more user mixins; 200 + their renderings (GFD.223 §9.3)."""
    definitions = payload.mixin_definitions(request, require_class=True)
    if not definitions:
        raise BadRequest("the request defines no mixin")
    mixins = [_check_definition(svc, request, d) for d in definitions]
    seen: set[str] = set()
    existing = [m for m in mixins if svc.registry.find(m.type_id) == m]
    if existing and len(existing) == len(mixins):
        # Defining exactly the same mixin again changes nothing: answer as if created (idempotent).
        return Reply(categories=mixins)
    for mixin in mixins:
        if mixin.type_id in seen or svc.registry.find(mixin.type_id) is not None:
            raise Conflict(f"category {mixin.type_id} already exists")
        assert mixin.location is not None
        if svc.registry.by_location(mixin.location) is not None or await svc.store.get(mixin.location.rstrip("/")):
            raise Conflict(f"location {mixin.location} is already in use")
        seen.add(mixin.type_id)
    await svc.store.commit(Batch(put_mixins=mixins))
    added: list[Mixin] = []
    try:
        for mixin in mixins:
            svc.registry.add(mixin)
            added.append(mixin)
    except OcciError:
        for mixin in added:
            svc.registry.remove_mixin(mixin.type_id)
        await svc.store.commit(Batch(delete_mixins=[m.type_id for m in mixins]))
        raise
    return Reply(categories=mixins)


async def remove_mixins(svc: Service, request: OcciRequest) -> Reply:
    """DELETE /-/: remove user mixins and all their associations (GFD.223 §9.4; GFD.185 §3.4.1)."""
    definitions = payload.mixin_definitions(request, require_class=False) if _has_payload(request) else []
    raw = request.query.get("category")
    if raw:
        scheme, term = split_type_id(unquote(raw))
        definitions.append(CategoryDefinition(scheme=scheme, term=term))
    if not definitions:
        raise BadRequest("name the mixin to remove with a Category rendering")
    batch = Batch()
    doomed: list[Mixin] = []
    for definition in definitions:
        category = svc.registry.find(definition.type_id)
        if category is None:
            raise NotFound(f"no mixin {definition.type_id}")
        if not isinstance(category, Mixin) or not category.user_defined:
            # GFD.185 §3.4.1: removing a provider-defined mixin MUST be refused (403)
            raise Forbidden(f"{definition.type_id} is defined by the provider and cannot be removed")
        if category.owner not in (None, request.user):
            raise Forbidden(f"{definition.type_id} belongs to another user")
        for other in svc.registry.mixins():
            if category.type_id in other.depends and other not in doomed:
                raise Conflict(f"{other.type_id} depends on {category.type_id}")
        doomed.append(category)
        for entity in await svc.store.query(EntityQuery(mixin=category.type_id)):
            batch.put.append(without_mixin(svc, entity, category.type_id))
        batch.delete_mixins.append(category.type_id)
    await svc.store.commit(batch)
    for mixin in doomed:
        svc.registry.remove_mixin(mixin.type_id)
    return Reply()


def _has_payload(request: OcciRequest) -> bool:
    return bool(request.body.strip()) or any(name in payload.OCCI_HEADERS for name, _ in request.headers)


async def load_stored_mixins(svc: Service) -> None:
    """Register user mixins and saved templates from the store (those depending on others last)."""
    pending = list(await svc.store.user_mixins())
    while pending:
        progressed = False
        waiting = {m.type_id for m in pending}
        for mixin in list(pending):
            # Wait only for mixins still to load: a user mixin may keep a dangling rel (D-DANGLING-REL).
            if all(svc.registry.is_mixin(dep) or (mixin.user_defined and dep not in waiting)
                   for dep in mixin.depends):
                try:
                    svc.registry.add(mixin)
                    if not mixin.user_defined:
                        svc.provisioning.adopt_saved(mixin)
                except OcciError as error:
                    log.error("stored mixin %s is not valid any more: %s", mixin.type_id, error.message)
                pending.remove(mixin)
                progressed = True
        if not progressed:
            for mixin in pending:
                log.error("stored mixin %s depends on unknown mixins %s", mixin.type_id, mixin.depends)
            break

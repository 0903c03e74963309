"""SELECT statements of the SQL store, built from `EntityQuery` values (SQLAlchemy Core).

Pages are in creation order (`seq`); a kind page walks `ix_entities_kind_seq`, an attribute
filter on an indexed attribute walks its expression index (`schema.attribute_index_ddl`); a deep
page of a kind collection starts from a page anchor (`store._pages`).
Imports `store.base`, `store.schema` and sqlalchemy.
"""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from occipy.store.base import EntityQuery
from occipy.store.schema import (
    PENDING,
    attribute_expression,
    entities,
    entity_mixins,
    operations,
    safe_attribute,
    store_state,
)

ENTITY_COLUMNS = (entities.c.location, entities.c.entity_id, entities.c.kind, entities.c.owner, entities.c.tenant,
                  entities.c.backend_id, entities.c.mixins, entities.c.attributes, entities.c.version)

# One entity by location, with the user-mixin generation (read-your-writes of user mixins across
# processes at no extra round trip: the one-row state table joined to the entity, if any).
GET_WITH_STATE = (
    sa.select(store_state.c.mixins.label("generation"), *ENTITY_COLUMNS)
    .select_from(store_state.outerjoin(entities, entities.c.location == sa.bindparam("location")))
    .where(store_state.c.id == 1)
)
# The entity and its outgoing links in one round trip (a GET of a resource renders its links).
GET_WITH_LINKS = (
    sa.select(store_state.c.mixins.label("generation"), *ENTITY_COLUMNS)
    .select_from(store_state.outerjoin(entities, sa.or_(entities.c.location == sa.bindparam("location"),
                                                        entities.c.source == sa.bindparam("location"))))
    .where(store_state.c.id == 1)
    .order_by(entities.c.seq)
)
GET = sa.select(*ENTITY_COLUMNS).where(entities.c.location == sa.bindparam("location"))
GET_BY_ID = sa.select(*ENTITY_COLUMNS).where(entities.c.entity_id == sa.bindparam("entity_id"))
LINKS_TO = sa.select(*ENTITY_COLUMNS).where(entities.c.target == sa.bindparam("target")).order_by(entities.c.seq)
GENERATION = sa.select(store_state.c.mixins).where(store_state.c.id == 1)
GET_OPERATION = sa.select(operations).where(operations.c.op_id == sa.bindparam("op_id"))
PENDING_LOCATIONS = (
    sa.select(operations.c.location, sa.func.min(operations.c.seq).label("first"))
    .where(PENDING)
    .group_by(operations.c.location)
    .order_by(sa.text("first"))
)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def where(query: EntityQuery, dialect: str) -> list[Any]:
    """The conditions of a query (every field ANDs)."""
    conditions: list[Any] = []
    if query.kinds is not None:
        kinds = sorted(set(query.kinds))
        conditions.append(entities.c.kind == kinds[0] if len(kinds) == 1 else entities.c.kind.in_(kinds))
    if query.mixin is not None:
        conditions.append(entities.c.location.in_(
            sa.select(entity_mixins.c.location).where(entity_mixins.c.mixin == query.mixin)))
    if query.prefix is not None:
        conditions.append(entities.c.location.like(_escape_like(query.prefix) + "%", escape="\\"))
    if query.tenant is not None:
        conditions.append(entities.c.tenant == query.tenant)
    if query.backend is not None:
        conditions.append(entities.c.backend_id == query.backend)
    if query.after is not None:
        conditions.append(entities.c.seq > sa.select(entities.c.seq).where(
            entities.c.location == query.after).scalar_subquery())
    for name, value in query.attributes:
        if safe_attribute(name):
            # The literal expression of the expression index, so that the planner uses it.
            conditions.append(sa.literal_column(attribute_expression(dialect, name)) == value)
        elif dialect == "postgresql":
            conditions.append(sa.func.jsonb_extract_path_text(sa.cast(entities.c.attributes, JSONB), name) == value)
        else:
            conditions.append(sa.func.json_extract(entities.c.attributes, "$." + _json_path(name)) == value)
    return conditions


def _json_path(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def select_entities(query: EntityQuery, dialect: str, columns: Any = ENTITY_COLUMNS) -> Any:
    """The page of entities (or of some columns) a query asks for, in creation order."""
    statement = sa.select(*columns).where(*where(query, dialect)).order_by(entities.c.seq)
    if query.limit is not None:
        statement = statement.limit(max(query.limit, 0))
    if query.offset > 0:
        statement = statement.offset(query.offset)
    return statement


def count_entities(query: EntityQuery, dialect: str) -> Any:
    return sa.select(sa.func.count()).select_from(entities).where(*where(query, dialect))


# Built once, with an expanding parameter ("sources"): a statement built per call with its values
# leaves reference cycles among its bind parameters (tests/unit/service/test_no_cycles.py).
LINKS_FROM: Final = (sa.select(*ENTITY_COLUMNS).where(entities.c.source.in_(sa.bindparam("sources", expanding=True)))
                     .order_by(entities.c.seq))


def select_operations(state: str | None, location: str | None, tenant: str | None) -> Any:
    statement = sa.select(operations)
    if state is not None:
        statement = statement.where(operations.c.state == state)
    if location is not None:
        statement = statement.where(operations.c.location == location)
    if tenant is not None:
        statement = statement.where(operations.c.tenant == tenant)
    return statement.order_by(operations.c.created, operations.c.op_id)


PENDING_OF = (sa.select(operations).where(PENDING)
              .where(operations.c.location == sa.bindparam("location")).order_by(operations.c.seq))


def select_pending(location: str | None) -> Any:
    """The pending operations (of one location), unordered: the caller sorts them by `seq`. In
    SQL order SQLite would walk `ix_operations_seq` through every operation kept rather than read
    the few in `ix_operations_pending`."""
    statement = sa.select(operations).where(PENDING)
    if location is not None:
        statement = statement.where(operations.c.location == location)
    return statement

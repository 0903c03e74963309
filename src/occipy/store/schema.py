"""Every table of the durable store, in one SQLAlchemy Core `MetaData` (style.md §SQL).

Portable types only (Text, BigInteger, Float): the same tables serve SQLite (the embedded default)
and PostgreSQL. JSON lives in Text columns, encoded by `store.sql` (msgspec keeps 4.0 as "4.0").
Every row carries its `tenant` and the `owner` (user) who made it. `MIGRATIONS` lists the columns
added since the first release, so that `store.sql` can bring an older database up to date at
start-up (rows written before tenants existed land in the default tenant). `version` counts the
changes of an entity row: a process that caches an entity checks it against the row (several
processes write one PostgreSQL database, docs/scaleout.md). `ATTRIBUTE_INDEXES` are expression
indexes on single attribute values, for filters (`?attribute=`). Imports only sqlalchemy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Final

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite only aliases the rowid (and so autoincrements) for a column declared exactly INTEGER
# PRIMARY KEY; PostgreSQL gets a BIGSERIAL.
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

entities = sa.Table(
    "entities",
    metadata,
    # Stable creation order for pages (GFD.223 §6); an update keeps the row, hence its position.
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("location", sa.Text, nullable=False, unique=True),
    sa.Column("entity_id", sa.Text, nullable=False, unique=True),
    sa.Column("kind", sa.Text, nullable=False),  # indexed by ix_entities_kind_seq
    sa.Column("owner", sa.Text, nullable=False),  # no query selects by owner alone: no index
    sa.Column("tenant", sa.Text, nullable=False, index=True, server_default="default"),
    sa.Column("backend_id", sa.Text, nullable=True),
    # Links only: occi.core.source / occi.core.target, for links_from / links_to.
    sa.Column("source", sa.Text, nullable=True),  # indexed for links only (ix_entities_link_*)
    sa.Column("target", sa.Text, nullable=True),
    sa.Column("mixins", sa.Text, nullable=False),  # JSON array of type ids
    sa.Column("attributes", sa.Text, nullable=False),  # JSON object, rendered name -> value
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    # 1 when written, +1 for every change: a cached copy with the same version is current.
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    # Pages of one kind (tenant) in creation order without a sort: GFD.223 §6 pages of 1M computes.
    sa.Index("ix_entities_kind_seq", "kind", "seq"),
    sa.Index("ix_entities_backend_id", "backend_id"),
    # Only links have ends: a resource adds no entry. `source = ?` (or IN) implies IS NOT NULL, so
    # SQLite and PostgreSQL use these for links_from / links_to.
    sa.Index("ix_entities_link_source", "source", sqlite_where=sa.text("source IS NOT NULL"),
             postgresql_where=sa.text("source IS NOT NULL")),
    sa.Index("ix_entities_link_target", "target", sqlite_where=sa.text("target IS NOT NULL"),
             postgresql_where=sa.text("target IS NOT NULL")),
)

# One row per (entity, mixin): mixin-collection queries without scanning the JSON.
entity_mixins = sa.Table(
    "entity_mixins",
    metadata,
    sa.Column("location", sa.Text, primary_key=True),
    sa.Column("mixin", sa.Text, primary_key=True, index=True),
)

user_mixins = sa.Table(
    "user_mixins",
    metadata,
    sa.Column("type_id", sa.Text, primary_key=True),
    # Creation order, assigned by the single writer (max + 1): a plain column, portable everywhere.
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("location", sa.Text, nullable=True, unique=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("tenant", sa.Text, nullable=True),
    sa.Column("definition", sa.Text, nullable=False),  # JSON object, see sql.mixin_to_json
)

# The condition of a pending (queued or running) operation, as a literal: SQLite and PostgreSQL use
# a partial index only for a query whose condition is the index's own, which a bound parameter is not.
PENDING: Final = sa.text("state IN ('queued', 'running')")

operations = sa.Table(
    "operations",
    metadata,
    sa.Column("op_id", sa.Text, primary_key=True),
    sa.Column("location", sa.Text, nullable=False),  # indexed by ix_operations_location_seq
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # pending ones: ix_operations_pending
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("tenant", sa.Text, nullable=False, index=True, server_default="default"),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    # The order operations were accepted in (per entity they run in this order).
    sa.Column("seq", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("params", sa.Text, nullable=False, server_default="{}"),  # JSON object
    sa.Column("result", sa.Text, nullable=False),  # JSON object
    sa.Index("ix_operations_location_seq", "location", "seq"),
    sa.Index("ix_operations_seq", "seq"),  # pruning: the newest `keep` (OperationRetention)
    # Only the operations still to run: most are written once, already ended, and then add no page
    # to this index. A query uses it when it carries the same literal condition (`PENDING`).
    sa.Index("ix_operations_pending", "location", "seq", sqlite_where=PENDING, postgresql_where=PENDING),
)

# [monitoring] The metric history (docs/monitoring.md): one row per measured value, pruned by the
# monitor to its retention (per collector: a count and an age).
metric_samples = sa.Table(
    "metric_samples",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("collector", sa.Text, nullable=False, index=True),
    sa.Column("sensor", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False, index=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("metric", sa.Text, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("taken", sa.Float, nullable=False),
    sa.Column("tenant", sa.Text, nullable=False, server_default="default"),
)

# ---- change events (issue 12, store/sql_events.py) -------------------------------------------
# One row per committed change, numbered by the database in commit order: SQLite AUTOINCREMENT
# never reuses an id (not even after every row was pruned), PostgreSQL a BIGSERIAL (writers take a
# transaction lock before inserting, so ids also commit in order across workers).
events = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("tenant", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=True),
    sa.Column("state", sa.Text, nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("operation", sa.Text, nullable=True),
    sa.Column("action", sa.Text, nullable=True),
    sa.Column("created", sa.Float, nullable=False),  # no index: see sql_events.prune
    sqlite_autoincrement=True,
)

# The highest event id pruned so far (one row, name "events"): a reader whose last id is below it
# lost events (the stream says so).
event_floor = sa.Table(
    "event_floor",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("event_id", sa.BigInteger, nullable=False),
)
# One row: counters every process reads with its first query of a request. `mixins` changes with
# every write to user_mixins, so another process knows to reload them (read-your-writes, D-SCALEOUT).
# `deletions` changes with every write that deletes entities: the only write that moves an entity's
# position in a page, so a process's page anchors (store/_pages.py) are right while it is unchanged.
store_state = sa.Table(
    "store_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("mixins", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("deletions", sa.BigInteger, nullable=False, server_default="0"),
)
# One row per write that deleted entities, numbered by the `deletions` value it made, with the
# smallest seq it deleted: a process whose anchors are some deletions behind keeps the anchors
# below every seq deleted since (store/_pages.py). Only the latest rows are kept (store/_writes.py).
entity_deletions = sa.Table(
    "entity_deletions",
    metadata,
    sa.Column("deletion", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
)

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}\Z")


def safe_attribute(name: str) -> bool:
    """Whether an attribute name may be written into SQL as a literal (expression indexes need one)."""
    return bool(_SAFE_NAME.match(name))


def attribute_expression(dialect: str, name: str) -> str:
    """The SQL text of one attribute's value as text, the same in the index and the query.

    PostgreSQL: `attributes::jsonb ->> 'name'` (numbers and booleans in their JSON form); SQLite:
    `json_extract`, whose numbers compare as numbers. `name` must pass `safe_attribute`.
    """
    assert safe_attribute(name), name
    if dialect == "postgresql":
        return f"((attributes)::jsonb ->> '{name}')"
    return f"json_extract(attributes, '$.\"{name}\"')"


def attribute_index_ddl(dialect: str, names: Sequence[str]) -> list[str]:
    """CREATE INDEX statements for the indexed attributes (idempotent)."""
    statements = []
    for name in names:
        if not safe_attribute(name):
            raise ValueError(f"attribute name {name!r} cannot be indexed")
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        statements.append(f"CREATE INDEX IF NOT EXISTS ix_attr_{digest} ON entities "
                          f"({attribute_expression(dialect, name)}, seq)")
    return statements

# Indexes an older occipy made that a composite or partial index now covers, or that no query
# needs any more (each one cost a WAL page per write): dropped at start-up.
DROPPED_INDEXES: tuple[str, ...] = ("ix_entities_kind", "ix_operations_location", "ix_operations_state",
                                     "ix_events_created", "ix_entities_owner", "ix_entities_source",
                                     "ix_entities_target")

# Columns added after the first schema: (table, column) -> the SQL type and default of the ALTER.
MIGRATIONS: tuple[tuple[sa.Table, str], ...] = (
    (entities, "tenant"),
    (user_mixins, "tenant"),
    (operations, "tenant"),
    (operations, "seq"),
    (operations, "params"),
    (entities, "version"),
    (store_state, "deletions"),
)

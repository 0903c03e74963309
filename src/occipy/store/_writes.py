"""Writing batches with SQLAlchemy Core (the writer of `store.sql`), the schema's set-up and
migration, and the engines (SQLite pragmas; the PostgreSQL driver occipy uses).

Imports the model, errors, `store.base`, `store._codec`, `store.schema` and sqlalchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from occipy.errors import BackendUnavailable, Conflict
from occipy.model.entity import ANONYMOUS, Entity
from occipy.store._codec import entity_row, json_text, mixin_to_json, operation_row
from occipy.store.base import PENDING_STATES, Batch, MetricSample, Operation, OperationRetention, SamplePrune
from occipy.store.schema import (
    DROPPED_INDEXES,
    MIGRATIONS,
    attribute_index_ddl,
    entities,
    entity_deletions,
    entity_mixins,
    metadata,
    metric_samples,
    operations,
    store_state,
    user_mixins,
)

# ---- statements (built once; compiled once by SQLAlchemy's cache) ---------------------------

_UPDATE_ENTITY = entities.update().where(entities.c.location == sa.bindparam("b_location")).values(
    attributes=sa.bindparam("attributes"), mixins=sa.bindparam("mixins"), updated=sa.bindparam("updated"),
    version=entities.c.version + 1)
# The seq of the keep-th newest operation (OFFSET keep - 1), and the pruning below it.
_KEEP_FROM = sa.select(operations.c.seq).order_by(operations.c.seq.desc()).limit(1).offset(sa.bindparam("keep"))
# At most PRUNE_OPERATIONS_AT_ONCE rows a pass, the oldest first: a pass holds the writer (about
# 2.6 ms per 1,000 rows on SQLite), and the next one goes on where it stopped.
PRUNE_OPERATIONS_AT_ONCE: Final = 2_000
_PRUNE_OPERATIONS = operations.delete().where(operations.c.op_id.in_(
    sa.select(operations.c.op_id).where(
        operations.c.seq < sa.bindparam("cut"), operations.c.state.not_in(sorted(PENDING_STATES)),
        sa.or_(operations.c.seq > 0, operations.c.seq < sa.bindparam("keep_cut")))
    .order_by(operations.c.seq).limit(PRUNE_OPERATIONS_AT_ONCE)))
# What an operation's upsert leaves alone: its creation time, and the columns its row never changes
# (it is about one entity, asked by one principal): SQLite rewrites the index of every column an
# UPDATE sets, equal or not, and each rewritten index page is one more page in the WAL.
OPERATION_KEPT: Final = ("created", "location", "action", "owner", "tenant", "seq")
# The deletes of a batch's locations and mixins, with expanding parameters: built per batch with
# their values, a statement leaves reference cycles among its bind parameters for the cyclic
# collector (tests/unit/service/test_no_cycles.py).
_DELETE_ENTITIES = (entities.delete().where(entities.c.location.in_(sa.bindparam("locations", expanding=True)))
                    .returning(entities.c.seq))
_DELETE_MIXINS_OF = entity_mixins.delete().where(
    entity_mixins.c.location.in_(sa.bindparam("locations", expanding=True)))
_DELETE_USER_MIXINS = user_mixins.delete().where(user_mixins.c.type_id.in_(sa.bindparam("type_ids", expanding=True)))
_DELETE_ENTITY_MIXINS = entity_mixins.delete().where(entity_mixins.c.location == sa.bindparam("b_location"))
_UPDATE_MIXIN = user_mixins.update().where(user_mixins.c.type_id == sa.bindparam("b_type_id"))
_NEXT_MIXIN_SEQ = sa.select(sa.func.coalesce(sa.func.max(user_mixins.c.seq), 0) + 1).scalar_subquery()
_INSERT_MIXIN = user_mixins.insert().values(seq=_NEXT_MIXIN_SEQ)
_BUMP_MIXINS = store_state.update().where(store_state.c.id == 1).values(mixins=store_state.c.mixins + 1)
# issue 11: a delete moves the position of every later member of its pages (store/_pages.py).
_BUMP_DELETIONS = store_state.update().where(store_state.c.id == 1).values(
    deletions=store_state.c.deletions + 1).returning(store_state.c.deletions)
# The deletion log keeps this many writes (a process further behind walks its anchors again),
# pruned every PRUNE_DELETIONS_EVERY writes.
KEEP_DELETIONS: Final = 10_000
PRUNE_DELETIONS_EVERY: Final = 1_000


def write_batch(conn: Connection, batch: Batch, now: float) -> None:
    """Every statement of one batch, in the order MemoryStore applies it (deletes, new, then puts)."""
    if batch.delete:
        gone = conn.execute(_DELETE_ENTITIES, {"locations": list(batch.delete)}).scalars().all()
        if gone:
            note_deletion(conn, min(gone))
        # "Deleting an entity removes its entity_mixins rows" (store brief).
        conn.execute(_DELETE_MIXINS_OF, {"locations": list(batch.delete)})
    mixin_rows: list[dict[str, str]] = []
    if batch.new:
        # A plain INSERT: a taken location or id is an IntegrityError (Conflict), whoever took it.
        _insert(conn, entities, [{**entity_row(entity), "location": entity.location, "created": now, "updated": now}
                                 for entity in batch.new])
        mixin_rows.extend({"location": entity.location, "mixin": mixin} for entity in batch.new
                          for mixin in entity.mixins)
    # The same location twice in one batch: the last value wins. An upsert keeps an updated row's
    # `seq`, hence its place in every page.
    puts = {entity.location: entity for entity in batch.put}
    if puts:
        _upsert(conn, entities, "location",
                [{**entity_row(entity), "location": location, "created": now, "updated": now}
                 for location, entity in puts.items()], keep=("seq", "created"))
        conn.execute(_DELETE_ENTITY_MIXINS, [{"b_location": location} for location in puts])
        mixin_rows = [m for m in mixin_rows if m["location"] not in puts]
        mixin_rows.extend({"location": location, "mixin": mixin} for location, entity in puts.items()
                          for mixin in entity.mixins)
    if mixin_rows:
        _insert(conn, entity_mixins, mixin_rows)
    if batch.delete_mixins:
        conn.execute(_DELETE_USER_MIXINS, {"type_ids": list(batch.delete_mixins)})
    for mixin in batch.put_mixins:
        values = {
            "location": mixin.location,
            "owner": mixin.owner or ANONYMOUS,
            "tenant": mixin.tenant,
            "definition": mixin_to_json(mixin),
        }
        if not conn.execute(_UPDATE_MIXIN, {**values, "b_type_id": mixin.type_id}).rowcount:
            conn.execute(_INSERT_MIXIN, {**values, "type_id": mixin.type_id})
    if batch.delete_mixins or batch.put_mixins:
        conn.execute(_BUMP_MIXINS)
    if batch.put_operations:
        ops = {op.op_id: op for op in batch.put_operations}  # the last record of one id wins
        _upsert(conn, operations, "op_id", [{**operation_row(op), "op_id": op_id} for op_id, op in ops.items()],
                keep=OPERATION_KEPT)
    if batch.put_samples or batch.prune_samples:  # [monitoring]
        write_samples(conn, batch.put_samples, batch.prune_samples)


def note_deletion(conn: Connection, lowest: int) -> None:
    """Count a write that deleted entities, and log the smallest seq it deleted (issue 11).

    In the delete's transaction: a reader sees the counter, the log and the rows of one snapshot,
    and the log's numbers have no gap (each write adds the row of the value it made).
    """
    number = int(conn.execute(_BUMP_DELETIONS).scalar_one())
    conn.execute(entity_deletions.insert().values(deletion=number, seq=lowest))
    if number % PRUNE_DELETIONS_EVERY == 0:
        conn.execute(entity_deletions.delete().where(entity_deletions.c.deletion <= number - KEEP_DELETIONS))


# ---- [monitoring] the metric history -----------------------------------------------------------


def _sample_row(sample: MetricSample) -> dict[str, Any]:
    return {"collector": sample.collector, "sensor": sample.sensor, "target": sample.target,
            "channel": sample.channel, "metric": sample.metric, "value": sample.value, "taken": sample.taken,
            "tenant": sample.tenant}


def write_samples(conn: Connection, samples: Sequence[MetricSample], prunes: Sequence[SamplePrune]) -> None:
    """Insert samples, then forget what the prunes say (all but the newest `keep`, older than `before`)."""
    if samples:
        conn.execute(metric_samples.insert(), [_sample_row(sample) for sample in samples])
    for prune in prunes:
        table = metric_samples
        mine = table.c.collector == prune.collector
        if prune.before is not None:
            conn.execute(table.delete().where(mine, table.c.taken < prune.before))
        if prune.keep <= 0:
            conn.execute(table.delete().where(mine))
            continue
        # The seq of the oldest row to keep: the keep-th newest (portable: no DELETE ... LIMIT).
        oldest_kept = (sa.select(table.c.seq).where(mine).order_by(table.c.seq.desc())
                       .offset(prune.keep - 1).limit(1).scalar_subquery())
        conn.execute(table.delete().where(mine, table.c.seq < oldest_kept))


def sample_from_row(row: Any) -> MetricSample:
    return MetricSample(collector=row.collector, sensor=row.sensor, target=row.target, channel=row.channel,
                        metric=row.metric, value=row.value, taken=row.taken, tenant=row.tenant)


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A statement compiled once for a dialect and the rows' columns, sent to the driver as it is:
    its SQL, the values of the binds the rows do not carry (an entity's `version + 1`), and for a
    positional parameter style `pick`, which makes a row's tuple in the statement's order in C
    (`operator.itemgetter`; a generator per row was a tenth of a create's Python calls); None:
    named parameters, the row as it is."""

    sql: str
    extra: dict[str, Any]
    pick: Callable[[dict[str, Any]], tuple[Any, ...]] | None

    @classmethod
    def of(cls, statement: Any, conn: Connection, given: tuple[str, ...]) -> _Compiled:
        form = statement.compile(dialect=conn.dialect, column_keys=list(given))
        extra = {name: bind.effective_value for name, bind in form.binds.items() if name not in given}
        order = tuple(form.positiontup) if form.positional and form.positiontup is not None else None
        pick: Callable[[dict[str, Any]], tuple[Any, ...]] | None = None
        if order is not None:
            # itemgetter of one name gives the value itself, not a 1-tuple
            pick = itemgetter(*order) if len(order) > 1 else (lambda row, name=order[0]: (row[name],))
        return cls(str(form), extra, pick)

    def run(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        pick, extra = self.pick, self.extra
        if pick is not None:
            send(conn, self.sql, [pick({**extra, **row}) for row in rows] if extra else [pick(row) for row in rows])
        else:
            send(conn, self.sql, [{**extra, **row} for row in rows] if extra else rows)


def send(conn: Connection, sql: str, rows: Sequence[Any]) -> None:
    """Run one statement, in the driver's own parameter style, once per row, in the transaction of
    `conn`. SQLite: straight on the sqlite3 connection, which begins the transaction itself before
    its first write (SQLAlchemy's execution layer cost more CPU than SQLite's own work for one
    small write). PostgreSQL: through SQLAlchemy, which already passes the SQL as it is."""
    if conn.dialect.name == "sqlite":
        driver = conn.dialect.dbapi
        try:
            conn.connection.driver_connection.executemany(sql, rows)  # type: ignore[union-attr]
        except driver.Error as error:  # type: ignore[union-attr]
            # As SQLAlchemy would have raised it (sa.exc.IntegrityError, OperationalError, ...).
            raise sa.exc.DBAPIError.instance(sql, rows, error, driver.Error) from error  # type: ignore[union-attr]
    else:
        conn.exec_driver_sql(sql, rows)


# (dialect, table, what: "insert", "update" or the upsert's key, the rows' columns, the columns an
# upsert keeps) -> the compiled statement
_COMPILED: dict[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], _Compiled] = {}


def _run_compiled(conn: Connection, table: sa.Table, what: str, rows: list[dict[str, Any]],
                  build: Callable[[tuple[str, ...]], Any], keep: tuple[str, ...] = ()) -> None:
    """Run `build(columns)`'s statement for the rows, compiled the first time only (per dialect,
    table, kind of statement, the rows' columns and `keep`)."""
    given = tuple(rows[0])
    cache_key = (conn.dialect.name, table.name, what, given, keep)
    compiled = _COMPILED.get(cache_key)
    if compiled is None:
        compiled = _COMPILED[cache_key] = _Compiled.of(build(given), conn, given)
    compiled.run(conn, rows)


def _upsert(conn: Connection, table: sa.Table, key: str, rows: list[dict[str, Any]], keep: Sequence[str]) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE for many rows in one statement (SQLite, PostgreSQL).

    `keep` are columns an update must not touch (the creation sequence and time, and columns a row
    never changes: `OPERATION_KEPT`); an entity's `version` goes up by one.
    """
    if not rows:
        return

    def build(given: tuple[str, ...]) -> Any:
        # Built and compiled once: building `excluded` proxies every column and costs far more than
        # running it, and so did compiling it for each commit.
        from sqlalchemy.dialects import postgresql, sqlite

        columns = tuple(name for name in given if name != key and name not in keep)
        insert = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
        changes: dict[str, Any] = {n: insert.excluded[n] for n in columns}
        if "version" in table.c:
            changes["version"] = table.c.version + 1
        return insert.on_conflict_do_update(index_elements=[key], set_=changes)

    _run_compiled(conn, table, key, rows, build, tuple(keep))


def _insert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """A plain INSERT of many rows, compiled once per table and columns."""
    _run_compiled(conn, table, "insert", rows, lambda _: table.insert())


def bulk_writable(batch: Batch) -> bool:
    """Whether a batch only inserts and upserts (a group of them can then be written with one statement
    per table, `bulk_group_writable`). Deletes go through `write_batch`, which counts them
    (`store_state.deletions`, the page anchors' check)."""
    return not (batch.delete or batch.delete_mixins or batch.put_mixins)


def bulk_group_writable(batches: Sequence[Batch]) -> bool:
    """Whether `write_group` writes these batches as applying them one after the other would: each
    is `bulk_writable`, and no location is inserted (`new`) twice or both inserted and upserted
    (then the order of inserts and upserts between batches does not matter)."""
    inserted: set[str] = set()
    upserted: set[str] = set()
    for batch in batches:
        if not bulk_writable(batch):
            return False
        for entity in batch.new:
            if entity.location in inserted:
                return False
            inserted.add(entity.location)
        upserted.update(entity.location for entity in batch.put)
    return not inserted & upserted


def write_group(conn: Connection, batches: Sequence[Batch], now: float,
                stored: Callable[[str], Entity | None] | None = None) -> None:
    """The batches of a `bulk_group_writable` group: their inserts, then their upserts (`write_puts`).
    `stored` is what the rows held before the group, where the caller knows it (`write_puts`)."""
    new = [entity for batch in batches for entity in batch.new]
    if new:
        # A plain INSERT: a taken location or id fails the group (its batches are retried alone).
        _insert(conn, entities, [{**entity_row(entity), "location": entity.location, "created": now, "updated": now}
                                 for entity in new])
        mixin_rows = [{"location": entity.location, "mixin": mixin} for entity in new for mixin in entity.mixins]
        if mixin_rows:
            _insert(conn, entity_mixins, mixin_rows)
    write_puts(conn, [entity for batch in batches for entity in batch.put],
               [op for batch in batches for op in batch.put_operations], now, stored)


def _same_row(before: Entity | None, after: Entity) -> bool:
    """Whether `after` changes only the mutable columns of the row that holds `before`."""
    return (before is not None and before.entity_id == after.entity_id and before.kind == after.kind
            and before.owner == after.owner and before.tenant == after.tenant
            and before.backend_id == after.backend_id and before.source == after.source
            and before.target == after.target)


def write_puts(conn: Connection, puts: list[Entity], operations_: list[Operation], now: float,
               stored: Callable[[str], Entity | None] | None = None) -> None:
    """Upsert entities (with their mixin rows) and operations: a few statements for many rows.

    Only for groups of `bulk_writable` batches: then applying every put in order, last value
    winning, is the same as applying the batches one after the other.

    `stored` says what each row held before the group (the event log's derivation read or
    remembered it, in the same transaction). An entity whose indexed columns stay as they were (a
    state change, an attribute edit: most writes) is a plain UPDATE of its attributes, and its
    mixin rows are kept when its mixins are: SQLite rewrites every index of every column a
    statement sets, so the full upsert wrote about four times the pages to the WAL.
    """
    latest = {entity.location: entity for entity in puts}
    light: list[dict[str, Any]] = []
    upserted: list[dict[str, Any]] = []
    remixed: list[str] = []  # whose mixin rows are written again
    for location, entity in latest.items():
        before = stored(location) if stored is not None else None
        if before is not None and _same_row(before, entity):
            light.append({"b_location": location, "attributes": json_text(entity.attributes),
                          "mixins": json_text(entity.mixins), "updated": now})
            if set(before.mixins) == set(entity.mixins):
                continue
        else:
            upserted.append({**entity_row(entity), "location": location, "created": now, "updated": now})
        remixed.append(location)
    if light:
        _run_compiled(conn, entities, "update", light, lambda _: _UPDATE_ENTITY)
    if upserted:
        _upsert(conn, entities, "location", upserted, keep=("seq", "created"))
    if remixed:
        conn.execute(_DELETE_ENTITY_MIXINS, [{"b_location": location} for location in remixed])
    mixin_rows = [{"location": loc, "mixin": m} for loc in remixed for m in latest[loc].mixins]
    if mixin_rows:
        _insert(conn, entity_mixins, mixin_rows)
    ops = {op.op_id: op for op in operations_}
    _upsert(conn, operations, "op_id", [{**operation_row(op), "op_id": op_id} for op_id, op in ops.items()],
            keep=OPERATION_KEPT)


def prune_operations(conn: Connection, retention: OperationRetention, now: float) -> int:
    """Delete the operations that ended and that `retention` no longer covers; how many went.

    An operation's `seq` is its acceptance time in nanoseconds (`Lanes.new_operation`), so one
    bound on `seq` says both "older than max_age" and "not among the newest keep"; the index on
    `seq` makes both a walk over what goes, not over the table. A record without a `seq` (0: made
    before operations had one) has no known age: only the `keep` bound removes it.
    """
    newest = conn.execute(_KEEP_FROM, {"keep": max(retention.keep - 1, 0)}).scalar()
    cut, keep_cut = retention.cuts(now, None if newest is None else int(newest))
    return conn.execute(_PRUNE_OPERATIONS, {"cut": cut, "keep_cut": keep_cut}).rowcount or 0


def store_error(exc: Exception) -> Exception:
    """What the caller of commit() sees: an OcciError for what the database refused."""
    if isinstance(exc, sa.exc.IntegrityError):
        return Conflict(f"the store refused the write (duplicate id or location): {exc.orig}")
    if isinstance(exc, sa.exc.OperationalError):
        return BackendUnavailable(f"the store cannot write: {exc.orig}")
    return exc


# ---- schema -----------------------------------------------------------------------------------


def prepare(engine: Engine, indexed_attributes: Sequence[str]) -> None:
    """Create the tables (or add what an older occipy lacks), the indexes and the state row.

    Several processes may start at once on one PostgreSQL database: a transaction-scoped advisory
    lock makes them take turns.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(8388607001)"))
        metadata.create_all(conn)
    migrate(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(8388607001)"))
        for name in DROPPED_INDEXES:
            conn.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
        for table in (entities, operations):  # create_all() leaves an existing table's indexes alone
            for index in table.indexes:
                conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
        for ddl in attribute_index_ddl(conn.dialect.name, indexed_attributes):
            conn.execute(sa.text(ddl))
        if conn.execute(sa.select(store_state.c.id)).first() is None:
            conn.execute(store_state.insert().values(id=1, mixins=0))


def migrate(engine: Engine) -> None:
    """Add the columns that a database made by an older occipy lacks (`prepare` then creates
    every index the tables define, theirs included).

    Additive only, with the column's server default, so existing rows get `tenant = 'default'`:
    data created before tenants existed is migrated into the default tenant on first start.
    """
    try:
        with engine.connect() as conn:  # up to date: every migrated column is there (one query)
            for table in {table for table, _ in MIGRATIONS}:
                names = [table.c[name] for t, name in MIGRATIONS if t is table]
                conn.execute(sa.select(*names).limit(0))
        return
    except sa.exc.DBAPIError:
        pass
    inspector = sa.inspect(engine)
    with engine.begin() as conn:
        for table, name in MIGRATIONS:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            if name in present:
                continue
            column = table.c[name]
            ddl = f"ALTER TABLE {table.name} ADD COLUMN {name} {column.type.compile(engine.dialect)}"
            if column.server_default is not None:
                ddl += f" DEFAULT '{column.server_default.arg}'"  # type: ignore[attr-defined]
            if not column.nullable:
                ddl += " NOT NULL"
            conn.execute(sa.text(ddl))


def database_url(url: str | sa.URL) -> sa.URL:
    """The URL users write, with the driver occipy uses: `postgresql://` and `postgres://` mean
    psycopg 3 (`postgresql+psycopg://`); SQLite URLs are kept."""
    parsed = sa.make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database URL {parsed.render_as_string()}: use sqlite:/// or postgresql://")
    return parsed


def make_engine(url: str | sa.URL, synchronous: str = "NORMAL") -> Engine:
    """A synchronous engine for the writer; SQLite gets WAL and the `synchronous` level."""
    url = database_url(url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)

    def set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Connection settings, not queries: these only exist on SQLite.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a committed transaction is in the WAL before commit returns, so it
        # survives a process crash; FULL also fsyncs it, for power-loss safety.
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=5000")
        # The writer checkpoints when it is idle (store.sql), never inside a commit: the
        # automatic checkpoint made one commit in a hundred wait about 200 ms.
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    sa.event.listen(engine, "connect", set_pragmas)
    return engine

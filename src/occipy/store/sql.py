"""SqlStore: the durable store on SQLAlchemy Core; SQLite (WAL) embedded by default, PostgreSQL-ready.

Writes: one writer thread owns the write connection and does group commit. `commit()` queues the
batch with an asyncio future; the writer drains every queued batch into ONE transaction, commits,
then applies each batch to the read cache and resolves its future on the event loop thread, in
commit order. A batch that fails (a unique violation) fails alone: the group is rolled back and
its batches retried one by one. When `commit()` returns, the batch is durable: SQLite runs with
`journal_mode=WAL`, and in WAL mode `synchronous=NORMAL` loses nothing on a process crash
(`kill -9`): the commit is in the WAL file, in the OS page cache, before it returns; only a power
loss or OS crash can drop the last transactions. `synchronous="FULL"` fsyncs every commit too.

Reads: `open()` loads every entity, user mixin and operation into the `MemoryStore` indexes this
class inherits, so no read touches SQL. This single-process cache is the SQLite embedded mode; a
multi-worker PostgreSQL deployment (a later issue) needs cache invalidation (LISTEN/NOTIFY or
reads from SQL). The SQL itself is portable Core (no SQLite-only syntax): a `postgresql+psycopg://`
URL works unchanged. Entities returned are shared with the cache: never mutate, call `.copy()`.
Imports the model, errors, `store.base`, `store.memory`, `store.schema`, sqlalchemy and msgspec.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from occipy.errors import BackendUnavailable, Conflict
from occipy.model.category import AttributeDef, Mixin
from occipy.model.entity import ANONYMOUS, DEFAULT_TENANT, Entity
from occipy.observability import metrics
from occipy.store import sql_events
from occipy.store.base import Batch, EventPage, EventRetention, MetricSample, Operation, SamplePrune
from occipy.store.memory import MemoryStore, snapshot_batch
from occipy.store.schema import MIGRATIONS, entities, entity_mixins, metadata, metric_samples, operations, user_mixins

SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")

# At most this many batches share one transaction: bounds the work redone when one fails.
MAX_GROUP = 512

_encode = msgspec.json.Encoder().encode
_decode_mixins = msgspec.json.Decoder(list[str]).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


# ---- JSON codecs -----------------------------------------------------------------------------


def _json(value: Any) -> str:
    # msgspec writes floats with their ".0" (4.0 -> "4.0"), so a float comes back a float.
    return _encode(value).decode()


def mixin_to_json(mixin: Mixin) -> str:
    """The stored definition of a user mixin (every field, attribute definitions included)."""
    return _json(
        {
            "scheme": mixin.scheme,
            "term": mixin.term,
            "title": mixin.title,
            "attributes": [
                {
                    "name": adef.name,
                    "type": adef.type,
                    "mutable": adef.mutable,
                    "required": adef.required,
                    "pattern": dict(adef.pattern) if adef.pattern is not None else None,
                    "default": adef.default,
                    "description": adef.description,
                    "write_once": adef.write_once,
                }
                for adef in mixin.attributes
            ],
            "actions": list(mixin.actions),
            "depends": list(mixin.depends),
            "applies": list(mixin.applies),
            "location": mixin.location,
            "user_defined": mixin.user_defined,
            "owner": mixin.owner,
            "tenant": mixin.tenant,
        }
    )


def mixin_from_json(text: str) -> Mixin:
    """The Mixin stored by `mixin_to_json`."""
    data = _decode_object(text)
    return Mixin(
        scheme=data["scheme"],
        term=data["term"],
        title=data.get("title"),
        attributes=tuple(
            AttributeDef(
                name=adef["name"],
                type=adef.get("type", "string"),
                mutable=adef.get("mutable", True),
                required=adef.get("required", False),
                pattern=adef.get("pattern"),
                default=adef.get("default"),
                description=adef.get("description"),
                write_once=adef.get("write_once", False),
            )
            for adef in data.get("attributes", ())
        ),
        actions=tuple(data.get("actions", ())),
        depends=tuple(data.get("depends", ())),
        applies=tuple(data.get("applies", ())),
        location=data.get("location"),
        user_defined=data.get("user_defined", True),
        owner=data.get("owner"),
        # User mixins defined before tenants existed belong to the default tenant.
        tenant=data.get("tenant") or (DEFAULT_TENANT if data.get("user_defined", True) else None),
    )


# ---- statements (built once; compiled once by SQLAlchemy's cache) ---------------------------

_UPDATE_ENTITY = entities.update().where(entities.c.location == sa.bindparam("b_location"))
_DELETE_ENTITY_MIXINS = entity_mixins.delete().where(entity_mixins.c.location == sa.bindparam("b_location"))
_UPDATE_MIXIN = user_mixins.update().where(user_mixins.c.type_id == sa.bindparam("b_type_id"))
_NEXT_MIXIN_SEQ = sa.select(sa.func.coalesce(sa.func.max(user_mixins.c.seq), 0) + 1).scalar_subquery()
_INSERT_MIXIN = user_mixins.insert().values(seq=_NEXT_MIXIN_SEQ)
_UPDATE_OPERATION = operations.update().where(operations.c.op_id == sa.bindparam("b_op_id"))


def _entity_row(entity: Entity) -> dict[str, Any]:
    return {
        "entity_id": entity.entity_id,
        "kind": entity.kind,
        "owner": entity.owner,
        "tenant": entity.tenant,
        "backend_id": entity.backend_id,
        "source": entity.source,
        "target": entity.target,
        "mixins": _json(entity.mixins),
        "attributes": _json(entity.attributes),
    }


def _operation_row(op: Operation) -> dict[str, Any]:
    return {
        "location": op.location,
        "action": op.action,
        "state": op.state,
        "message": op.message,
        "owner": op.owner,
        "tenant": op.tenant,
        "created": op.created,
        "updated": op.updated,
        "seq": op.seq,
        "params": _json(op.params),
        "result": _json(op.result),
    }


def _write_batch(conn: Connection, batch: Batch, now: float) -> None:
    """Every statement of one batch, in the order MemoryStore applies it (deletes, then puts)."""
    if batch.delete:
        conn.execute(entities.delete().where(entities.c.location.in_(batch.delete)))
        # "Deleting an entity removes its entity_mixins rows" (store brief).
        conn.execute(entity_mixins.delete().where(entity_mixins.c.location.in_(batch.delete)))
    # The same location twice in one batch: the last value wins, at the first one's position.
    puts = {entity.location: entity for entity in batch.put}
    new_rows: list[dict[str, Any]] = []
    mixin_rows: list[dict[str, str]] = []
    for location, entity in puts.items():
        row = _entity_row(entity)
        # Update first, insert when nothing matched: portable (no dialect upsert), and the
        # updated row keeps its `seq`, hence its place in every page.
        if conn.execute(_UPDATE_ENTITY, {**row, "b_location": location, "updated": now}).rowcount:
            conn.execute(_DELETE_ENTITY_MIXINS, {"b_location": location})
        else:
            new_rows.append({**row, "location": location, "created": now, "updated": now})
        mixin_rows.extend({"location": location, "mixin": mixin} for mixin in entity.mixins)
    if new_rows:
        conn.execute(entities.insert(), new_rows)
    if mixin_rows:
        conn.execute(entity_mixins.insert(), mixin_rows)
    if batch.delete_mixins:
        conn.execute(user_mixins.delete().where(user_mixins.c.type_id.in_(batch.delete_mixins)))
    for mixin in batch.put_mixins:
        values = {
            "location": mixin.location,
            "owner": mixin.owner or ANONYMOUS,
            "tenant": mixin.tenant,
            "definition": mixin_to_json(mixin),
        }
        if not conn.execute(_UPDATE_MIXIN, {**values, "b_type_id": mixin.type_id}).rowcount:
            conn.execute(_INSERT_MIXIN, {**values, "type_id": mixin.type_id})
    for op in batch.put_operations:
        values = _operation_row(op)
        if not conn.execute(_UPDATE_OPERATION, {**values, "b_op_id": op.op_id}).rowcount:
            conn.execute(operations.insert(), {**values, "op_id": op.op_id})
    if batch.put_samples or batch.prune_samples:  # [monitoring]
        _write_samples(conn, batch.put_samples, batch.prune_samples)


# ---- [monitoring] the metric history -----------------------------------------------------------


def _sample_row(sample: MetricSample) -> dict[str, Any]:
    return {"collector": sample.collector, "sensor": sample.sensor, "target": sample.target,
            "channel": sample.channel, "metric": sample.metric, "value": sample.value, "taken": sample.taken,
            "tenant": sample.tenant}


def _write_samples(conn: Connection, samples: Sequence[MetricSample], prunes: Sequence[SamplePrune]) -> None:
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


def _load_samples(conn: Connection) -> list[MetricSample]:
    return [MetricSample(collector=row.collector, sensor=row.sensor, target=row.target, channel=row.channel,
                         metric=row.metric, value=row.value, taken=row.taken, tenant=row.tenant)
            for row in conn.execute(sa.select(metric_samples).order_by(metric_samples.c.seq))]


_UPSERTS: dict[tuple[str, str, str, tuple[str, ...]], Any] = {}


def _upsert(conn: Connection, table: sa.Table, key: str, rows: list[dict[str, Any]], keep: Sequence[str]) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE for many rows in one statement (SQLite, PostgreSQL).

    `keep` are columns an update must not touch (the creation sequence and time).
    """
    if not rows:
        return
    columns = tuple(name for name in rows[0] if name != key and name not in keep)
    cache_key = (conn.dialect.name, table.name, key, columns)
    statement = _UPSERTS.get(cache_key)
    if statement is None:
        # Built once: building `excluded` proxies every column and costs far more than running it.
        from sqlalchemy.dialects import postgresql, sqlite

        if conn.dialect.name == "postgresql":
            pg = postgresql.insert(table)
            statement = pg.on_conflict_do_update(index_elements=[key], set_={n: pg.excluded[n] for n in columns})
        else:
            lite = sqlite.insert(table)
            statement = lite.on_conflict_do_update(index_elements=[key], set_={n: lite.excluded[n] for n in columns})
        _UPSERTS[cache_key] = statement
    conn.execute(statement, rows)


def _write_puts(conn: Connection, puts: list[Entity], operations_: list[Operation], now: float) -> None:
    """Upsert entities (with their mixin rows) and operations: a few statements for many rows.

    Only for groups without deletes: then applying every put in order, last value winning, is
    the same as applying the batches one after the other.
    """
    latest = {entity.location: entity for entity in puts}
    _upsert(conn, entities, "location",
            [{**_entity_row(e), "location": loc, "created": now, "updated": now} for loc, e in latest.items()],
            keep=("seq", "created"))
    if latest:
        conn.execute(_DELETE_ENTITY_MIXINS, [{"b_location": location} for location in latest])
    mixin_rows = [{"location": loc, "mixin": m} for loc, e in latest.items() for m in e.mixins]
    if mixin_rows:
        conn.execute(entity_mixins.insert(), mixin_rows)
    ops = {op.op_id: op for op in operations_}
    _upsert(conn, operations, "op_id", [{**_operation_row(op), "op_id": op_id} for op_id, op in ops.items()],
            keep=("created",))


def _store_error(exc: Exception) -> Exception:
    """What the caller of commit() sees: an OcciError for what the database refused."""
    if isinstance(exc, sa.exc.IntegrityError):
        return Conflict(f"the store refused the write (duplicate id or location): {exc.orig}")
    if isinstance(exc, sa.exc.OperationalError):
        return BackendUnavailable(f"the store cannot write: {exc.orig}")
    return exc


# ---- loading --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Loaded:
    entities: list[Entity] = field(default_factory=list)
    mixins: list[Mixin] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    samples: list[MetricSample] = field(default_factory=list)  # [monitoring]


def _load(conn: Connection) -> _Loaded:
    loaded = _Loaded()
    for row in conn.execute(sa.select(entities).order_by(entities.c.seq)):
        loaded.entities.append(
            Entity(
                kind=row.kind,
                entity_id=row.entity_id,
                location=row.location,
                mixins=tuple(_decode_mixins(row.mixins)),
                attributes=_decode_object(row.attributes),
                tenant=row.tenant,
                owner=row.owner,
                backend_id=row.backend_id,
            )
        )
    for row in conn.execute(sa.select(user_mixins.c.definition).order_by(user_mixins.c.seq)):
        loaded.mixins.append(mixin_from_json(row.definition))
    # Every operation, finished ones too: get_operation must answer after a restart.
    for row in conn.execute(sa.select(operations).order_by(operations.c.created, operations.c.op_id)):
        loaded.operations.append(
            Operation(
                op_id=row.op_id,
                location=row.location,
                action=row.action,
                state=row.state,
                message=row.message,
                tenant=row.tenant,
                owner=row.owner,
                created=row.created,
                updated=row.updated,
                seq=row.seq,
                params=_decode_object(row.params),
                result=_decode_object(row.result),
            )
        )
    loaded.samples = _load_samples(conn)  # [monitoring]
    return loaded


def migrate(engine: Engine) -> None:
    """Add the columns (and their indexes) that a database made by an older occipy lacks.

    Additive only, with the column's server default, so existing rows get `tenant = 'default'`:
    data created before tenants existed is migrated into the default tenant on first start.
    """
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
            for index in table.indexes:
                if [c.name for c in index.columns] == [name]:
                    index.create(conn, checkfirst=True)


def make_engine(url: str | sa.URL, synchronous: str = "NORMAL") -> Engine:
    """A synchronous engine for the writer thread; SQLite gets WAL and the `synchronous` level."""
    url = sa.make_url(url)
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
        cursor.close()

    sa.event.listen(engine, "connect", set_pragmas)
    return engine


# ---- the store ------------------------------------------------------------------------------

_Pending = tuple[Batch, "asyncio.Future[None]", asyncio.AbstractEventLoop]


class SqlStore(MemoryStore):
    """The durable Store: SQL for writes (group commit), the inherited memory indexes for reads."""

    def __init__(self, url: str = "sqlite:///data/occipy.db", *, synchronous: str = "NORMAL",
                 events: EventRetention | None = None) -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, not {synchronous!r}"
            )
        super().__init__(events=events)
        # issue 12: the event log lives in SQL; the writer records it, readers use their own engine.
        self._retention = events or EventRetention()
        self._pruning = sql_events.Pruning()
        self._reader: Engine | None = None
        self.url = sa.make_url(url)
        self.synchronous = mode
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._opened = False
        self._conn: Connection | None = None  # the writer thread's own connection

    async def open(self) -> None:
        """Create the schema if needed, load everything into memory, start the writer thread."""
        if self._opened:
            raise RuntimeError("SqlStore.open() called twice")
        self._opened = True
        engine = make_engine(self.url, self.synchronous)
        loaded: concurrent.futures.Future[_Loaded] = concurrent.futures.Future()
        thread = threading.Thread(
            target=self._run, args=(engine, loaded), name="occipy-store-writer", daemon=True
        )
        thread.start()
        data = await asyncio.wrap_future(loaded)
        self._thread = thread
        self._reader = make_engine(self.url, self.synchronous)  # issue 12: events_after reads here
        self._apply(Batch(put=data.entities, put_mixins=data.mixins, put_operations=data.operations,
                          put_samples=data.samples))

    async def close(self) -> None:
        """Commit everything already queued, then stop the writer and release the database."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        await asyncio.to_thread(thread.join)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.dispose()

    async def commit(self, batch: Batch) -> None:
        """Apply the batch atomically; when this returns it is durable and visible to reads.

        Raises Conflict when the database refuses it (duplicate entity id, location or mixin
        location); the other batches of the same group commit regardless.
        """
        if not batch:
            return
        if self._thread is None:
            raise RuntimeError("SqlStore is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        # Our own copy: the caller may change its objects as soon as we return (or even before).
        self._queue.put((snapshot_batch(batch), future, loop))
        await future

    # ---- the writer thread --------------------------------------------------------------------

    def _run(self, engine: Engine, loaded: concurrent.futures.Future[_Loaded]) -> None:
        try:
            metadata.create_all(engine)
            migrate(engine)
            with engine.connect() as conn:
                data = _load(conn)
        except BaseException as exc:  # noqa: BLE001  (re-raised by open())
            engine.dispose()
            loaded.set_exception(exc)
            return
        loaded.set_result(data)
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                if first is None:
                    break
                group = [first]
                while len(group) < MAX_GROUP:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                        break
                    group.append(item)
                self._write_group(engine, group)
        finally:
            if self._conn is not None:
                self._conn.close()
            engine.dispose()

    def _connection(self, engine: Engine) -> Connection:
        """The writer's one connection, kept for its life (a pool checkout per group costs a third)."""
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = engine.connect()
        return self._conn

    def _drop_connection(self) -> None:
        """After a failure the connection may be broken: the next group opens a fresh one."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001  (closing a broken connection may fail too)
                pass
            self._conn = None

    def _write_group(self, engine: Engine, group: Sequence[_Pending]) -> None:
        outcomes: list[Exception | None]
        now = time.time()
        bulk = engine.dialect.name in ("sqlite", "postgresql") and not any(
            batch.delete or batch.delete_mixins or batch.put_mixins for batch, _, _ in group)
        dialect = engine.dialect.name
        started = time.perf_counter()  # metrics: store commit latency (docs/metrics.md)
        try:
            conn = self._connection(engine)
            with conn.begin():
                # issue 12: the group's change events, derived and written in its transaction.
                sql_events.record(conn, [batch for batch, _, _ in group], now, self._retention, self._pruning)
                if bulk:
                    _write_puts(conn, [e for batch, _, _ in group for e in batch.put],
                                [op for batch, _, _ in group for op in batch.put_operations], now)
                    # [monitoring] samples touch no other table: their order among entities is free.
                    _write_samples(conn, [x for batch, _, _ in group for x in batch.put_samples],
                                   [x for batch, _, _ in group for x in batch.prune_samples])
                else:
                    for batch, _, _ in group:
                        _write_batch(conn, batch, now)
            outcomes = [None] * len(group)
            metrics.STORE_COMMIT_DURATION.labels(dialect).observe(time.perf_counter() - started)
            metrics.STORE_COMMIT_BATCHES.labels(dialect).inc(len(group))
        # Any failure goes back to the caller of commit(), never kills the writer: a dead writer
        # would leave every later commit() waiting for ever.
        except Exception as exc:  # noqa: BLE001
            metrics.STORE_COMMIT_ERRORS.labels(dialect).inc()
            self._drop_connection()
            if len(group) == 1:
                outcomes = [_store_error(exc)]
            else:
                # The group was rolled back: retry one by one so only the faulty batch fails.
                outcomes = [self._write_alone(engine, batch, now) for batch, _, _ in group]
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[Batch, asyncio.Future[None], Exception | None]]
        ] = {}
        for (batch, future, loop), outcome in zip(group, outcomes):
            by_loop.setdefault(loop, []).append((batch, future, outcome))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._settle, settled)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _write_alone(self, engine: Engine, batch: Batch, now: float) -> Exception | None:
        try:
            with engine.begin() as conn:
                sql_events.record(conn, [batch], now, self._retention, self._pruning)  # issue 12
                _write_batch(conn, batch, now)
        except Exception as exc:  # noqa: BLE001  (goes to this batch's caller, see _write_group)
            return _store_error(exc)
        return None

    def _settle(self, settled: Sequence[tuple[Batch, asyncio.Future[None], Exception | None]]) -> None:
        """On the event loop: apply committed batches to the cache in commit order, wake callers."""
        committed = False
        for batch, future, error in settled:
            if error is None:
                # Applied even when the caller gave up waiting: the write is committed.
                self._apply(batch)
                committed = True
                if not future.done():
                    future.set_result(None)
            elif not future.done():
                future.set_exception(error)
        if committed:
            self._event_log.notify()  # issue 12: wake the event streams of this process

    # ---- change events (issue 12) ---------------------------------------------------------------

    async def events_after(self, after: int, limit: int = 1000) -> EventPage:
        """Up to `limit` events above `after`, read from the database (every process's events)."""
        reader = self._reader
        if reader is None:
            raise RuntimeError("SqlStore is not open")
        return await asyncio.to_thread(self._read_events, reader, after, limit)

    @staticmethod
    def _read_events(reader: Engine, after: int, limit: int) -> EventPage:
        try:
            with reader.connect() as conn:
                if conn.dialect.name == "postgresql":
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    return sql_events.read(conn, after, limit)
        except sa.exc.SQLAlchemyError as exc:
            raise BackendUnavailable(f"the store cannot read the event log: {exc}") from exc

"""SqlStore: the durable store on SQLAlchemy Core: SQLite (WAL, one process) or PostgreSQL (several).

Writes are group-committed by whoever owns the write connection. `commit()` queues the batch with
an asyncio future; the writer drains every queued batch into ONE transaction, commits, then
resolves the futures on the event loop thread, in commit order. On SQLite with
`synchronous=NORMAL` (no fsync per commit) the writer is the event loop itself: the batches of
one turn of the loop (and of the next few, while more keep coming) are written at the start of
the next (D-INLINE-WRITES); with `FULL` or `EXTRA`, and on PostgreSQL, a writer thread does it.
A batch that fails (a unique violation) fails alone: the group is rolled back and its batches
retried one by one. When `commit()` returns, the batch is durable: SQLite runs with
`journal_mode=WAL`, and in WAL mode `synchronous=NORMAL` loses nothing on a process crash
(`kill -9`); `FULL` fsyncs every commit too. SQLite's WAL is checkpointed by a thread of its own,
never inside a commit; when it has grown long, the writer checkpoints once between two commits so
that it starts over (`_checkpoints`). PostgreSQL commits are durable as the server is configured
(`synchronous_commit`).

Reads go to SQL; nothing is loaded at start-up, so memory and start-up time do not grow with the
number of entities (docs/scaleout.md). A deep page (offset 1000 and more) starts from the page
anchors this process keeps (`store._pages`, checked against `store_state.deletions` in the page's
own statement). A bounded cache keeps recently read entities so that an
unchanged entity is the same (immutable) object from one read to the next, which the render
caches rely on:
- SQLite (`shared` False): this process is the only writer (D-STORE), so a cached entity is
  current: a hit answers without SQL. Reads run on the event loop thread (WAL readers never wait).
- PostgreSQL (`shared` True): other processes write too. Every read asks the database; a cached
  entity is reused only when its row's `version` is the one cached (read-your-writes across
  workers). Reads use a pool of asyncio connections (psycopg 3). The first read of a request also
  returns the user-mixin generation: when another process changed them, `watch_mixins`'s callback
  runs before the read returns. Claims (`store.base.Shared`) are PostgreSQL advisory locks held by
  one session of this process: they end with it.
Imports the model, errors, observability, `store.*` and sqlalchemy (and psycopg for PostgreSQL).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from occipy.errors import BackendUnavailable
from occipy.model.category import Mixin
from occipy.model.entity import Entity
from occipy.observability import metrics
from occipy.store import _pages as pages
from occipy.store import _reads as reads
from occipy.store._codec import entity_from_row, mixin_from_json, mixin_to_json, operation_from_row
from occipy.store._writes import (
    bulk_group_writable,
    database_url,
    make_engine,
    migrate,
    prepare,
    prune_operations,
    sample_from_row,
    store_error,
    write_batch,
    write_group,
    write_samples,
)
from occipy.store import sql_events
from occipy.store._pages import Anchors
from occipy.store.base import (
    Batch,
    EntityQuery,
    EventPage,
    EventRetention,
    MetricSample,
    Operation,
    OperationRetention,
)
from occipy.store.events import EventLog
from occipy.store.memory import snapshot_batch
from occipy.store.schema import entities, metric_samples, user_mixins

__all__ = ["DEFAULT_INDEXED_ATTRIBUTES", "SYNCHRONOUS_MODES", "SqlStore", "database_url", "make_engine",
           "migrate", "mixin_from_json", "mixin_to_json"]

log = logging.getLogger("occipy.store")

SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")
# Attributes with an expression index (filters on them page without a scan); `indexed_attributes`.
DEFAULT_INDEXED_ATTRIBUTES: Final = ("occi.core.title", "occi.compute.hostname", "occi.compute.state")

# At most this many batches share one transaction: bounds the work redone when one fails.
MAX_GROUP = 512
# SQLite, writes on the loop: how many turns of the loop a group may wait for more batches.
INLINE_WAITS = 4
# SQLite: seconds between two passive WAL checkpoints (by their own thread and connection), when
# something was written meanwhile. A checkpoint's CPU grows with the WAL written since the last
# one, and on a busy core it is time the event loop waits: a second's worth (about 16 ms at 1,500
# writes a second) made the 99th percentile of one-connection start/stop 5-10 ms, a tenth of a
# second's 2-2.6 ms (docs/performance.md, 2026-12-07).
CHECKPOINT_INTERVAL = 0.1
# SQLite: a WAL longer than this (4 KiB frames: 32 MiB) is checkpointed by the writer itself, so that
# it starts over (see SqlStore._checkpoints).
WAL_RESTART_FRAMES = 8192
# Operation records written between two prunes at most (each prune holds the writer a few ms).
PRUNE_OPERATIONS_EVERY: Final = 1_000
# Above this many entities, the metrics' entity counts leave out the state (a GROUP BY over JSON).
COUNT_STATES_UP_TO = 100_000
COUNTS_TTL = 10.0
# SQLite: listings kept until the next write that changes an entity.
MAX_QUERIES = 64
# A deep page whose anchors a delete made stale is asked again this many times at most (a
# repair, a walk, the page).
PAGE_TRIES = 4

_Pending = tuple[Batch, "asyncio.Future[None]", asyncio.AbstractEventLoop]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def claim_key(name: str) -> int:
    """The 64-bit advisory-lock key of a claim name (a location, a role)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class SqlStore:
    """The durable Store: SQL for writes (group commit) and reads, a bounded cache of entities."""

    def __init__(self, url: str | sa.URL = "sqlite:///data/occipy.db", *, synchronous: str = "NORMAL",
                 cache_size: int = 20_000, indexed_attributes: Sequence[str] = DEFAULT_INDEXED_ATTRIBUTES,
                 pool_size: int = 8, events: EventRetention | None = None,
                 operations: OperationRetention | None = None,
                 page_anchor_step: int = pages.ANCHOR_STEP) -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, not {synchronous!r}"
            )
        self.url = database_url(url)
        self.dialect = self.url.get_backend_name()
        # Other processes write too: cached reads must be checked (see the module docstring).
        self.shared = self.dialect == "postgresql"
        self.synchronous = mode
        self.indexed_attributes = tuple(indexed_attributes)
        self.cache_size = cache_size
        self.pool_size = pool_size
        self._cache: OrderedDict[str, tuple[int, Entity]] = OrderedDict()
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # SQLite without an fsync per commit: the writes run on the event loop thread (see commit()).
        self._inline: Engine | None = None
        self._inline_pending: list[_Pending] = []
        self._inline_waits = 0
        self._commits = 0  # groups committed so far
        self._wal_restart = False  # SQLite: the WAL is long, the writer checkpoints (_checkpoints)
        # The commit metrics of this dialect (a labelled child looked up once: `labels()` takes a lock).
        self._commit_metrics = (metrics.STORE_COMMIT_DURATION.labels(self.dialect),
                                metrics.STORE_COMMIT_BATCHES.labels(self.dialect))
        self._opened = False
        self._conn: Connection | None = None  # the writer's own connection (the loop's or the writer thread's)
        self._reader: Connection | None = None  # SQLite: the loop thread's read connection
        self._read_engine: Engine | None = None
        self._aengine: Any = None  # PostgreSQL: sqlalchemy AsyncEngine
        self._session: Any = None  # PostgreSQL: psycopg.AsyncConnection holding the claims
        self._claims: set[str] = set()
        self._generation: int | None = None
        self._on_mixins: Callable[[], Awaitable[None]] | None = None
        self._reloading: asyncio.Lock | None = None
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()
        self._counts: tuple[float, list[tuple[str, str, int]]] = (0.0, [])
        self._links_hint: tuple[str, list[Entity]] | None = None
        # PostgreSQL: id(statement) -> its SQL (psycopg's %(name)s) and the values it carries.
        self._fast: dict[int, tuple[str, dict[str, Any]]] = {}
        self._pool: set[Any] = set()  # PostgreSQL: psycopg connections for the hot point reads
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        self._dsn = ""
        self._links: dict[str, list[Entity]] = {}  # SQLite: source -> its links
        self._absent: set[str] = set()  # SQLite: locations known to hold nothing
        self._queries: dict[tuple[str, EntityQuery], tuple[Any, ...]] = {}  # SQLite: listings until a write
        # issue 11: per scope, the seq of every step-th member, so that a deep page skips < step rows.
        self._anchors = pages.AnchorCache(page_anchor_step)
        self._page_statements: dict[tuple[EntityQuery, tuple[str, ...], bool, bool], Any] = {}
        self._walks: dict[EntityQuery, asyncio.Lock] = {}  # one walk per scope at a time
        # issue 12: the event log lives in SQL (written in each commit's transaction); this
        # process's listeners are woken after its commits, other processes' events are read.
        self._retention = events or EventRetention()
        self._pruning = sql_events.Pruning()
        self._op_retention = operations or OperationRetention()
        self._op_pruning = sql_events.Pruning()
        self._event_listeners = EventLog(self._retention)
        self._events_engine: Engine | None = None
        # SQLite: the writer remembers what it committed last, so that deriving a commit's events
        # reads nothing back (PostgreSQL: other processes write too, the rows are read).
        self._remembered: sql_events.Remembered | None = None

    # ---- life cycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Create or migrate the schema, start the writer (a thread, unless `writes_inline`) and the
        readers (nothing is loaded)."""
        if self._opened:
            raise RuntimeError("SqlStore.open() called twice")
        self._opened = True
        if not self.shared:
            self._remembered = sql_events.Remembered(size=max(self.cache_size, 1), opened=time.time())
        engine = make_engine(self.url, self.synchronous)
        if self.writes_inline:
            try:
                prepare(engine, self.indexed_attributes)
            except BaseException:
                engine.dispose()
                raise
            self._inline = engine
        else:
            ready: concurrent.futures.Future[None] = concurrent.futures.Future()
            thread = threading.Thread(target=self._run, args=(engine, ready), name="occipy-store-writer",
                                      daemon=True)
            thread.start()
            await asyncio.wrap_future(ready)
            self._thread = thread
        try:
            if self.shared:
                await self._open_postgres()
            else:
                self._read_engine = make_engine(self.url, self.synchronous)
                self._reader = self._read_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self._checkpointer = threading.Thread(target=self._checkpoints, name="occipy-store-checkpoint",
                                                      daemon=True)
                self._checkpointer.start()
            self._generation = await self._scalar(reads.GENERATION, {})
            self._events_engine = make_engine(self.url, self.synchronous)  # issue 12: events_after reads here
        except BaseException:
            await self.close()
            raise

    async def _open_postgres(self) -> None:
        import psycopg
        from sqlalchemy.ext.asyncio import create_async_engine

        self._aengine = create_async_engine(self.url, pool_size=self.pool_size, max_overflow=self.pool_size,
                                            pool_pre_ping=False, isolation_level="AUTOCOMMIT")
        dsn = self._dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        dialect = self._aengine.sync_engine.dialect
        for statement in (reads.GET_WITH_LINKS, reads.GET_BY_ID, reads.GET_OPERATION, reads.GENERATION,
                          reads.LINKS_TO, reads.PENDING_OF):
            placeholders = statement.params(location="", entity_id="", op_id="", target="")
            compiled = placeholders.compile(dialect=dialect)
            defaults = dict(compiled.params)
            self._fast[id(statement)] = (str(compiled), defaults)
        # The session that holds this process's claims; named so that an operator (and the tests)
        # can see in pg_stat_activity / pg_locks which process holds what.
        self._session = await psycopg.AsyncConnection.connect(dsn, autocommit=True,
                                                              application_name=f"occipy-{os.getpid()}")

    async def close(self) -> None:
        """Commit everything already queued, then stop the writer and release the database."""
        self._stop.set()
        if self._inline is not None:
            self._flush_inline()
            engine, self._inline = self._inline, None
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            engine.dispose()
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(thread.join)
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._read_engine is not None:
            self._read_engine.dispose()
            self._read_engine = None
        if self._events_engine is not None:
            self._events_engine.dispose()
            self._events_engine = None
        if self._session is not None:
            session, self._session = self._session, None
            self._claims.clear()
            try:
                await session.close()
            except Exception:  # noqa: BLE001  (closing a broken session may fail too)
                pass
        if self._aengine is not None:
            engine, self._aengine = self._aengine, None
            await engine.dispose()
        for connection in list(self._pool):
            try:
                await connection.close()
            except Exception as error:  # noqa: BLE001  (a broken connection may not close cleanly)
                log.debug("closing a read connection: %s", error)
        self._pool.clear()

    # ---- writes -------------------------------------------------------------------------------

    async def commit(self, batch: Batch) -> None:
        """Apply the batch atomically; when this returns it is durable and visible to reads.

        Raises Conflict when the database refuses it (duplicate entity id, location or mixin
        location, or a `new` entity that exists); the other batches of the same group commit
        regardless.
        """
        if not batch:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        # Our own copy: the caller may change its objects as soon as we return (or even before).
        pending = (snapshot_batch(batch), future, loop)
        if self._inline is not None:
            # The batches of one turn of the loop are one group, written at the start of the next.
            if not self._inline_pending:
                self._inline_waits = 0
                loop.call_soon(self._flush_inline, len(self._inline_pending) + 1)
            self._inline_pending.append(pending)
        elif self._thread is not None:
            self._queue.put(pending)
        else:
            raise RuntimeError("SqlStore is not open")
        await future

    @property
    def writes_inline(self) -> bool:
        """Whether commits run on the event loop thread rather than on a writer thread.

        SQLite in WAL mode with `synchronous=NORMAL`: a commit appends its pages to the
        WAL and calls no fsync, so it takes about as long as the thread handoffs it would
        otherwise need, and the server's one process gains nothing from a second thread holding
        the GIL (D-INLINE-WRITES). FULL and EXTRA fsync each commit, and PostgreSQL waits for
        the network: they keep the writer thread.
        """
        return not self.shared and self.synchronous == "NORMAL"

    def _flush_inline(self, seen: int = 0) -> None:
        """Write the batches queued since the last flush, as groups of at most MAX_GROUP.

        While each turn of the loop brings more batches (concurrent requests on their way to
        their commit), the flush waits one more turn, at most INLINE_WAITS turns: one commit for
        many writes, as the writer thread's groups are (a turn with nothing else ready is a poll
        of the sockets, a few microseconds).
        """
        engine = self._inline
        waiting = len(self._inline_pending)
        if (engine is not None and seen < waiting < MAX_GROUP and self._inline_waits < INLINE_WAITS
                and not self._stop.is_set()):
            self._inline_waits += 1
            asyncio.get_running_loop().call_soon(self._flush_inline, waiting)
            return
        while self._inline_pending:
            group, self._inline_pending = self._inline_pending[:MAX_GROUP], self._inline_pending[MAX_GROUP:]
            try:
                if engine is None:
                    raise RuntimeError("SqlStore is closed")
                self._write_group(engine, group)
            except Exception as error:  # a bug here must not leave a commit() waiting for ever
                if engine is not None:
                    log.exception("writing a group of %d batches failed", len(group))
                for _, future, _ in group:
                    if not future.done():
                        future.set_exception(error)

    # ---- reads --------------------------------------------------------------------------------

    async def _rows(self, statement: Any, params: Mapping[str, Any]) -> Sequence[Any]:
        if self._reader is not None:
            return self._reader.execute(statement, params).all()
        if self._aengine is None:
            raise RuntimeError("SqlStore is not open")
        fast = self._fast.get(id(statement))
        if fast is not None:
            return await self._fast_rows(fast[0], {**fast[1], **params})
        try:
            async with self._aengine.connect() as conn:
                return (await conn.execute(statement, params)).all()  # type: ignore[no-any-return]
        except sa.exc.OperationalError as error:
            raise BackendUnavailable(f"the store cannot be read: {error.orig}") from None

    async def _fast_rows(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any]:
        """The hot point reads on PostgreSQL: compiled once, sent on a pooled psycopg connection as a
        prepared statement (SQLAlchemy's asyncio layer costs more CPU than the query itself)."""
        connection = await self._idle.get() if self._idle.qsize() or len(self._pool) >= self.pool_size \
            else await self._new_fast_connection()
        try:
            cursor = await connection.execute(sql, params, prepare=True)
            rows = await cursor.fetchall()
        except Exception as error:  # noqa: BLE001  (psycopg.Error: this connection is not reused)
            self._pool.discard(connection)
            try:
                await connection.close()
            finally:
                raise BackendUnavailable(f"the store cannot be read: {error}") from None
        self._idle.put_nowait(connection)
        return rows  # type: ignore[no-any-return]

    async def _new_fast_connection(self) -> Any:
        import psycopg
        from psycopg.rows import namedtuple_row

        connection = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True, row_factory=namedtuple_row)
        self._pool.add(connection)
        return connection

    async def _scalar(self, statement: Any, params: Mapping[str, Any]) -> Any:
        rows = await self._rows(statement, params)
        return rows[0][0] if rows else None

    def _entity(self, row: Any) -> Entity:
        """The entity of a row: the cached object while it is current (same version, or SQLite's own)."""
        location = row.location
        hit = self._cache.get(location)
        if hit is not None and (not self.shared or hit[0] == row.version):
            self._cache.move_to_end(location)
            return hit[1]
        entity = entity_from_row(row)
        self._keep(location, row.version, entity)
        return entity

    def _keep(self, location: str, version: int, entity: Entity) -> None:
        cache = self._cache
        cache[location] = (version, entity)
        cache.move_to_end(location)
        if len(cache) > self.cache_size:
            cache.popitem(last=False)

    async def get(self, location: str) -> Entity | None:
        """The entity at this location (path), whatever its tenant, or None."""
        if not self.shared:
            hit = self._cache.get(location)
            if hit is not None:
                self._cache.move_to_end(location)
                return hit[1]
            if location in self._absent:
                return None
            rows = await self._rows(reads.GET, {"location": location})
            if not rows:
                # Collection paths and new locations are asked for at every request.
                if len(self._absent) > self.cache_size:
                    self._absent.clear()
                self._absent.add(location)
                return None
            return self._entity(rows[0])
        rows = await self._rows(reads.GET_WITH_LINKS, {"location": location})
        if not rows:
            return None
        generation = rows[0].generation
        if generation != self._generation:
            await self._mixins_changed(generation)
        found: Entity | None = None
        links: list[Entity] = []
        for row in rows:
            if row.location is None:
                continue
            entity = self._entity(row)
            if row.location == location:
                found = entity
            else:
                links.append(entity)
        if found is None:
            self._cache.pop(location, None)
            return None
        # Read with the entity, for the `links_from` of the same request (a fresher read replaces it).
        self._links_hint = (location, links)
        return found

    async def get_by_id(self, entity_id: str) -> Entity | None:
        rows = await self._rows(reads.GET_BY_ID, {"entity_id": entity_id})
        return self._entity(rows[0]) if rows else None

    async def query(self, query: EntityQuery) -> list[Entity]:
        """Entities matching the query, in creation order, one page."""
        if not self.shared:
            hit = self._kept_query(("entities", query))
            if hit is not None:
                return list(hit)
        rows = await self._page_rows(query, reads.ENTITY_COLUMNS)
        if rows is None:
            rows = await self._rows(reads.select_entities(query, self.dialect), {})
        entity = self._entity
        found = [entity(row) for row in rows]
        self._keep_query(("entities", query), found)
        return found

    async def query_locations(self, query: EntityQuery) -> list[str]:
        if not self.shared:
            hit = self._kept_query(("locations", query))
            if hit is not None:
                return list(hit)
        columns = (entities.c.location,)
        rows = await self._page_rows(query, columns)
        if rows is None:
            rows = await self._rows(reads.select_entities(query, self.dialect, columns), {})
        found = [row.location for row in rows]
        self._keep_query(("locations", query), found)
        return found

    async def _page_rows(self, query: EntityQuery, columns: Sequence[Any]) -> Sequence[Any] | None:
        """A deep page through the scope's anchors (`store._pages`), or None: a plain OFFSET will do
        (a shallow page, or a query whose members may change without a delete).

        Each statement reads `store_state.deletions` (and the deletion log since the anchors'
        value) from its own snapshot. Anchors made under the value the page reads are right for
        that page's snapshot (since they were made, only inserts committed, and inserts append);
        otherwise the anchors below every seq deleted since are kept (`pages.repaired`), the rest
        is walked again and the page asked again. A delete that commits between the walk and the
        page is seen by the page's counter; one that commits after the page is a delete after
        this request: either way the answer is one snapshot's.
        """
        anchors = self._anchors
        step = anchors.step
        scope = pages.scope_of(query)
        if scope is None or query.offset < step:
            return None
        index = pages.wanted_index(query.offset, step)
        for _ in range(PAGE_TRIES):
            held = anchors.get(scope)
            if held is None or len(held.seqs) <= index:
                held = await self._walk(scope, index)
                if held is None:
                    continue  # repaired or dropped: walk from what is left
            start, skip = held.start(query.offset, step)
            statement = self._page_statement(scope, columns, start is not None, query.limit is not None)
            rows = await self._rows(statement, {"start": start, "skip": skip, "since": held.deletions,
                                                "size": max(query.limit or 0, 0)})
            if not rows or self._still_right(scope, held, rows[0]):
                return rows  # an empty page is right whatever the counter (pages.page_statement)
        return None  # deletes kept coming: the plain OFFSET answers

    def _page_statement(self, scope: EntityQuery, columns: Sequence[Any], anchored: bool, limited: bool) -> Any:
        """The anchored page statement of a scope and shape, built once (building it cost more
        than running it)."""
        key = (scope, tuple(column.key for column in columns), anchored, limited)
        statement = self._page_statements.get(key)
        if statement is None:
            if len(self._page_statements) >= 4 * pages.MAX_SCOPES:
                self._page_statements.clear()
            statement = self._page_statements[key] = pages.page_statement(scope, self.dialect, columns, anchored,
                                                                          limited)
        return statement

    async def _walk(self, scope: EntityQuery, index: int) -> Anchors | None:
        """The scope's anchors up to `index` (or to its last member), walked by one request at a
        time: the requests that arrive meanwhile use its walk instead of each walking as deep.
        None when a delete since the held anchors was found (repaired or dropped: walk again)."""
        anchors = self._anchors
        lock = self._walks.get(scope)
        if lock is None:
            if len(self._walks) >= 4 * pages.MAX_SCOPES:
                self._walks = {key: held for key, held in self._walks.items() if held.locked()}
            lock = self._walks[scope] = asyncio.Lock()
        async with lock:
            held = anchors.get(scope)
            if held is not None and len(held.seqs) > index:
                return held  # walked by the request this one waited for
            walked = await self._rows(pages.walk_statement(scope, self.dialect, held, index, anchors.step), {})
            state = walked[0]
            if held is not None and not self._still_right(scope, held, state):
                return None
            made = pages.extended(held, int(state.deletions), [row.seq for row in walked if row.seq is not None])
            if made is not None:
                anchors.keep(scope, made)
            return made

    def _still_right(self, scope: EntityQuery, held: Anchors, state: Any) -> bool:
        """Whether `held` is right in the snapshot `state` was read in; if not, keep what a repair
        saves of it (`pages.repaired`) or drop it."""
        now = pages.repaired(held, int(state.deletions), state.first_logged, state.lowest_deleted)
        if now is held:
            return True
        if now is None:
            self._anchors.drop(scope, held)
        else:
            self._anchors.keep(scope, now)
        return False

    def _kept_query(self, key: tuple[str, EntityQuery]) -> tuple[Any, ...] | None:
        """A kept listing, moved to the end of the line (the least recently used goes first)."""
        queries = self._queries
        hit = queries.pop(key, None)
        if hit is not None:
            queries[key] = hit
        return hit

    def _keep_query(self, key: tuple[str, EntityQuery], found: list[Any]) -> None:
        """SQLite: keep a listing until the next write (this process is the only writer). Past
        MAX_QUERIES the least recently used goes: a walk over every page (the reconcile's, 100 at
        a time) passes through without pushing out a listing read all the time."""
        if self.shared or len(found) > self.cache_size:
            return
        queries = self._queries
        if len(queries) >= MAX_QUERIES:
            del queries[next(iter(queries))]
        queries[key] = tuple(found)

    async def count(self, query: EntityQuery) -> int:
        """How many entities match (offset and limit ignored)."""
        return int(await self._scalar(reads.count_entities(query, self.dialect), {}) or 0)

    async def links_from(self, sources: Sequence[str]) -> dict[str, list[Entity]]:
        """Links whose occi.core.source is one of these locations, grouped by source."""
        hint, self._links_hint = self._links_hint, None
        if hint is not None and len(sources) == 1 and sources[0] == hint[0]:
            # Read by `get` of the same location, after every write acknowledged before that read:
            # one round trip for a GET of a resource (shared store).
            return {hint[0]: hint[1]} if hint[1] else {}
        if not self.shared and len(sources) == 1:
            # SQLite: this process is the only writer; `_settle` drops what a write may change.
            cached = self._links.get(sources[0])
            if cached is None:
                found_one = await self._links_from(sources)
                cached = self._links[sources[0]] = found_one.get(sources[0], [])
                if len(self._links) > self.cache_size:
                    self._links.clear()
            return {sources[0]: list(cached)} if cached else {}
        return await self._links_from(sources)

    async def _links_from(self, sources: Sequence[str]) -> dict[str, list[Entity]]:
        found: dict[str, list[Entity]] = {}
        wanted = list(dict.fromkeys(sources))
        for start in range(0, len(wanted), 500):
            for row in await self._rows(reads.LINKS_FROM, {"sources": wanted[start:start + 500]}):
                link = self._entity(row)
                source = link.source
                if source is not None:
                    found.setdefault(source, []).append(link)
        return found

    async def links_to(self, target: str) -> list[Entity]:
        return [self._entity(row) for row in await self._rows(reads.LINKS_TO, {"target": target})]

    async def user_mixins(self) -> list[Mixin]:
        rows = await self._rows(sa.select(user_mixins.c.definition).order_by(user_mixins.c.seq), {})
        return [mixin_from_json(row.definition) for row in rows]

    async def get_operation(self, op_id: str) -> Operation | None:
        rows = await self._rows(reads.GET_OPERATION, {"op_id": op_id})
        return operation_from_row(rows[0]) if rows else None

    async def operations(self, state: str | None = None, location: str | None = None,
                         tenant: str | None = None) -> list[Operation]:
        rows = await self._rows(reads.select_operations(state, location, tenant), {})
        return [operation_from_row(row) for row in rows]

    async def pending_operations(self, location: str | None = None) -> list[Operation]:
        if location is not None:
            rows = await self._rows(reads.PENDING_OF, {"location": location})
        else:
            rows = sorted(await self._rows(reads.select_pending(None), {}), key=lambda row: row.seq)
        return [operation_from_row(row) for row in rows]

    def counts(self, state_attribute: Callable[[str], str | None]) -> list[tuple[str, str, int]]:
        """(kind, state, count) of the stored entities for the metrics (no await; cached 10 s).

        The state is left out (`""`) above COUNT_STATES_UP_TO entities: it is inside the JSON.
        """
        at, cached = self._counts
        if time.monotonic() - at < COUNTS_TTL:
            return cached
        engine = self._read_engine or make_engine(self.url)
        found: list[tuple[str, str, int]] = []
        try:
            with engine.connect() as conn:
                by_kind = conn.execute(sa.select(entities.c.kind, sa.func.count()).group_by(entities.c.kind)).all()
                total = sum(n for _, n in by_kind)
                for kind, number in by_kind:
                    name = state_attribute(kind)
                    if name is None or total > COUNT_STATES_UP_TO:
                        found.append((kind, "", number))
                        continue
                    for row in conn.execute(sa.select(entities.c.attributes).where(entities.c.kind == kind)):
                        value = msgspec_state(row.attributes, name)
                        found.append((kind, value, 1))
        finally:
            if engine is not self._read_engine:
                engine.dispose()
        merged: dict[tuple[str, str], int] = {}
        for kind, state, number in found:
            merged[(kind, state)] = merged.get((kind, state), 0) + number
        result = [(kind, state, number) for (kind, state), number in merged.items()]
        self._counts = (time.monotonic(), result)
        return result

    @staticmethod
    def links_may_change(entity: Entity) -> bool:
        """Whether writing this entity (not in the cache) may change some source's links: a link may."""
        return entity.source is not None

    # ---- [monitoring] the metric history (store.base.MetricHistory) -------------------------------

    async def samples(self, *, collector: str | None = None, target: str | None = None,
                      since: float | None = None, limit: int | None = None) -> list[MetricSample]:
        """Samples of one collector and/or target, oldest first; `limit`: only the newest."""
        if limit is not None and limit <= 0:
            return []
        table = metric_samples
        statement = sa.select(table)
        if collector is not None:
            statement = statement.where(table.c.collector == collector)
        if target is not None:
            statement = statement.where(table.c.target == target)
        if since is not None:
            statement = statement.where(table.c.taken >= since)
        if limit is not None:
            rows = await self._rows(statement.order_by(table.c.seq.desc()).limit(limit), {})
            found = [sample_from_row(row) for row in reversed(rows)]
        else:
            found = [sample_from_row(row) for row in await self._rows(statement.order_by(table.c.seq), {})]
        if collector is None:
            found.sort(key=lambda sample: sample.taken)
        return found

    # ---- change events (issue 12) ---------------------------------------------------------------

    async def events_after(self, after: int, limit: int = 1000) -> EventPage:
        """Up to `limit` events above `after`, read from the database (every process's events)."""
        engine = self._events_engine
        if engine is None:
            raise RuntimeError("SqlStore is not open")
        return await asyncio.to_thread(self._read_events, engine, after, limit)

    @staticmethod
    def _read_events(engine: Engine, after: int, limit: int) -> EventPage:
        try:
            with engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    return sql_events.read(conn, after, limit)
        except sa.exc.SQLAlchemyError as exc:
            raise BackendUnavailable(f"the store cannot read the event log: {exc}") from exc

    def listen_events(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (on the event loop) after commits of this process; returns the stopper."""
        return self._event_listeners.listen(callback)

    # ---- several processes (store.base.Shared) -----------------------------------------------------

    async def claim(self, key: str) -> bool:
        """Take the advisory lock named `key` on this process's session, if nobody holds it."""
        if key in self._claims:
            return True
        if self._session is None:
            raise RuntimeError("claims need a PostgreSQL store")
        try:
            cursor = await self._session.execute("SELECT pg_try_advisory_lock(%s)", (claim_key(key),))
            row = await cursor.fetchone()
        except Exception as error:  # noqa: BLE001  (psycopg.Error: the session is gone, with every claim)
            raise BackendUnavailable(f"the store's claim session failed: {error}") from None
        if row is not None and row[0]:
            self._claims.add(key)
            return True
        return False

    async def release(self, key: str) -> None:
        if key not in self._claims or self._session is None:
            return
        self._claims.discard(key)
        try:
            await self._session.execute("SELECT pg_advisory_unlock(%s)", (claim_key(key),))
        except Exception as error:  # noqa: BLE001  (a broken session has released everything anyway)
            log.warning("releasing claim %s: %s", key, error)

    async def pending_locations(self) -> list[str]:
        return [row.location for row in await self._rows(reads.PENDING_LOCATIONS, {})]

    def watch_mixins(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Call `callback()` when a read finds that another process changed the user mixins."""
        self._on_mixins = callback

    async def _mixins_changed(self, generation: int) -> None:
        if self._reloading is None:
            self._reloading = asyncio.Lock()
        async with self._reloading:
            if generation == self._generation:
                return
            self._generation = generation
            if self._on_mixins is not None:
                await self._on_mixins()

    # ---- the writer thread --------------------------------------------------------------------

    def _run(self, engine: Engine, ready: concurrent.futures.Future[None]) -> None:
        try:
            prepare(engine, self.indexed_attributes)
        except BaseException as exc:  # noqa: BLE001  (re-raised by open())
            engine.dispose()
            ready.set_exception(exc)
            return
        ready.set_result(None)
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

    def _checkpoints(self) -> None:
        """SQLite: passive WAL checkpoints off the commit path (writers and readers never wait).

        Under a steady stream of commits such a checkpoint never catches up with the last frame
        (a commit lands while it copies), and SQLite starts the WAL over only after one did: the
        file grew by every page ever written (850 MB in 12 s of one-connection start/stop). Past
        WAL_RESTART_FRAMES frames the writer is asked to checkpoint once itself, between two of its
        commits (`_restart_wal`): nothing is written meanwhile, so it completes, and the next
        commit starts the WAL over.
        """
        assert self._read_engine is not None
        conn = self._read_engine.raw_connection()
        checkpointed = -1
        try:
            while not self._stop.wait(CHECKPOINT_INTERVAL):
                if self._commits == checkpointed:
                    continue  # nothing written since the last one
                checkpointed = self._commits
                try:
                    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except Exception as error:  # noqa: BLE001  (a busy database: next time)
                    log.debug("WAL checkpoint: %s", error)
                    continue
                if row is not None and row[1] > WAL_RESTART_FRAMES:
                    self._wal_restart = True  # the writer finishes the next one (_restart_wal)
        finally:
            conn.close()

    def _restart_wal(self, conn: Connection) -> None:
        """SQLite: a checkpoint by the writer between two of its commits (see `_checkpoints`); the
        periodic ones copied most of the WAL already. Tried again after the next commit if the
        checkpointer thread holds the checkpoint lock or a reader holds back a frame."""
        try:
            busy, frames, copied = conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except Exception as error:  # noqa: BLE001  (a busy database: after the next commit)
            log.debug("WAL checkpoint by the writer: %s", error)
            return
        if not busy and copied == frames:
            self._wal_restart = False

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
        bulk = bulk_group_writable([batch for batch, _, _ in group])
        dialect = engine.dialect.name
        started = time.perf_counter()  # metrics: store commit latency (docs/metrics.md)
        try:
            conn = self._connection(engine)
            with conn.begin():
                # issue 12: the group's change events, derived and written in its transaction.
                known = sql_events.record(conn, [batch for batch, _, _ in group], now, self._retention,
                                          self._pruning, self._remembered)
                if bulk:
                    write_group(conn, [batch for batch, _, _ in group], now, known.entity_of)
                    # [monitoring] samples touch no other table: their order among entities is free.
                    write_samples(conn, [x for batch, _, _ in group for x in batch.put_samples],
                                  [x for batch, _, _ in group for x in batch.prune_samples])
                else:
                    for batch, _, _ in group:
                        write_batch(conn, batch, now)
            if self._remembered is not None:
                self._remembered.keep(known)  # committed: the rows hold this now
            outcomes = [None] * len(group)
            self._commits += 1  # read by the checkpointer (an int: no lock needed)
            duration, batches = self._commit_metrics
            duration.observe(time.perf_counter() - started)
            batches.inc(len(group))
            self._prune_operations(conn, now, sum(len(batch.put_operations) for batch, _, _ in group))
            if self._wal_restart:
                self._restart_wal(conn)
        # Any failure goes back to the caller of commit(), never kills the writer: a dead writer
        # would leave every later commit() waiting for ever.
        except Exception as exc:  # noqa: BLE001
            metrics.STORE_COMMIT_ERRORS.labels(dialect).inc()
            self._drop_connection()
            if len(group) == 1:
                outcomes = [store_error(exc)]
            else:
                # The group was rolled back: retry one by one so only the faulty batch fails.
                outcomes = [self._write_alone(engine, batch, now) for batch, _, _ in group]
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[Batch, asyncio.Future[None], Exception | None]]
        ] = {}
        for (batch, future, loop), outcome in zip(group, outcomes):
            by_loop.setdefault(loop, []).append((batch, future, outcome))
        for loop, settled in by_loop.items():
            if self._inline is not None and loop is _running_loop():
                self._settle(settled)  # written on this loop's thread: no wake-up needed
                continue
            try:
                loop.call_soon_threadsafe(self._settle, settled)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _prune_operations(self, conn: Connection, now: float, written: int) -> None:
        """Delete the operation records `OperationRetention` no longer covers, now and then (after a
        tenth of `keep` new records but at most PRUNE_OPERATIONS_EVERY, or a minute), in a
        transaction of its own: a failure is logged and tried again later, and never fails the
        writes of a group. Each pass deletes a bounded number of rows (`prune_operations`)."""
        pruning, retention = self._op_pruning, self._op_retention
        pruning.since += written
        every = max(1, min(retention.keep // sql_events.PRUNE_SHARE, PRUNE_OPERATIONS_EVERY))
        if pruning.since < every and now - pruning.at < sql_events.PRUNE_SECONDS:
            return
        pruning.since, pruning.at = 0, now
        try:
            with conn.begin():
                prune_operations(conn, retention, now)
        except Exception as error:  # noqa: BLE001  (see the docstring)
            log.warning("pruning operation records failed (tried again later): %s", error)
            self._drop_connection()

    def _write_alone(self, engine: Engine, batch: Batch, now: float) -> Exception | None:
        try:
            with engine.begin() as conn:
                known = sql_events.record(conn, [batch], now, self._retention, self._pruning,  # issue 12
                                          self._remembered)
                write_batch(conn, batch, now)
        except Exception as exc:  # noqa: BLE001  (goes to this batch's caller, see _write_group)
            return store_error(exc)
        self._commits += 1
        if self._remembered is not None:
            self._remembered.keep(known)
        return None

    def _settle(self, settled: Sequence[tuple[Batch, asyncio.Future[None], Exception | None]]) -> None:
        """On the event loop: bring the cache up to date in commit order, wake the callers."""
        cache = self._cache
        links = self._links
        committed = False
        for batch, future, error in settled:
            if error is None:
                committed = True
                if batch.put or batch.new or batch.delete:
                    self._queries.clear()
                # Applied even when the caller gave up waiting: the write is committed.
                for location in batch.delete:
                    old = cache.pop(location, None)
                    links.pop(location, None)
                    if old is None:
                        links.clear()  # an unknown link may have gone
                    elif old[1].source is not None:
                        links.pop(old[1].source, None)
                for entity in [*batch.new, *batch.put]:
                    self._absent.discard(entity.location)
                    old = cache.get(entity.location)
                    if entity.source is not None:
                        links.pop(entity.source, None)
                    if old is None and self.links_may_change(entity):
                        links.clear()  # it may have been a link of another source
                    elif old is not None and old[1].source is not None:
                        links.pop(old[1].source, None)
                    if self.shared:
                        cache.pop(entity.location, None)  # the next read brings the new version
                    else:
                        self._keep(entity.location, 0, entity)  # this process is the only writer
                if not future.done():
                    future.set_result(None)
            elif not future.done():
                future.set_exception(error)
        if committed:
            self._event_listeners.notify()  # issue 12: wake the event streams of this process


def msgspec_state(attributes: str, name: str) -> str:
    """The state attribute's value in a stored JSON object, or ""."""
    from occipy.store._codec import _decode_object

    value = _decode_object(attributes).get(name)
    return value if isinstance(value, str) else ""


def _load_entities(conn: Connection) -> list[Entity]:
    """Every entity, in creation order (tests and tools; the server never loads everything)."""
    return [entity_from_row(row) for row in conn.execute(sa.select(*reads.ENTITY_COLUMNS).order_by(entities.c.seq))]

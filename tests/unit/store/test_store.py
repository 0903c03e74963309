"""One suite for every Store: MemoryStore, and SqlStore on every engine in TEST_DATABASE_URLS.

TEST_DATABASE_URLS is a comma-separated list of engines, "sqlite,postgresql" by default: "sqlite"
is a fresh SQLite file under the test's tmp_path, "postgresql" a fresh database of its own on the
suite's PostgreSQL cluster (the `postgres_database` fixture, tests/services/postgres.py); any
other entry is used as a URL as it is (its tables are dropped before each test).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings

from occipy.errors import Conflict
from occipy.model.catalogue import COMPUTE, NETWORK, NETWORKINTERFACE, OS_TPL, STORAGE, STORAGELINK
from occipy.model.category import AttributeDef, Mixin
from occipy.model.entity import Entity
from occipy.store.base import Batch, EntityQuery, Operation, Store
from occipy.store.memory import MemoryStore
from occipy.store.schema import entities as entities_table
from occipy.store.schema import entity_mixins, metadata
from occipy.store.sql import SqlStore, make_engine, mixin_from_json, mixin_to_json
from tests.unit.store.conftest import URLS, StoreFactory, database_url

USER = "http://example.com/occi/my_stuff#"
UBUNTU = "http://example.com/occi/os#ubuntu"

Opener = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["memory", *URLS])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens a store; for SqlStore, every call opens a new store on the same database (a restart)."""
    param: str = request.param
    opened: list[Store] = []
    memory = MemoryStore()  # the same one at every call: a restart keeps what memory holds
    url = "" if param == "memory" else database_url(param, tmp_path, request)

    async def open_store() -> Store:
        store: Store = memory if param == "memory" else SqlStore(url)
        await store.open()
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        await store.close()


@pytest.fixture
async def store(opener: Opener) -> Store:
    return await opener()


@pytest.fixture
def sql_opener(sql_stores: StoreFactory) -> Callable[[], Any]:
    """SqlStore only: for what memory cannot do (restart) or what needs the tables."""
    return sql_stores


def compute(n: int | str, **attributes: Any) -> Entity:
    return Entity(
        kind=COMPUTE,
        entity_id=f"c-{n}",
        location=f"/compute/c-{n}",
        attributes={"occi.core.id": f"c-{n}", **attributes},
    )


def storage(n: int) -> Entity:
    return Entity(
        kind=STORAGE, entity_id=f"s-{n}", location=f"/storage/s-{n}", attributes={"occi.core.id": f"s-{n}"}
    )


def link(n: int, source: str, target: str, kind: str = STORAGELINK) -> Entity:
    return Entity(
        kind=kind,
        entity_id=f"l-{n}",
        location=f"/link/l-{n}",
        attributes={"occi.core.id": f"l-{n}", "occi.core.source": source, "occi.core.target": target},
    )


def user_mixin(term: str, location: str | None = None) -> Mixin:
    return Mixin(
        scheme=USER,
        term=term,
        title=f"my {term}",
        attributes=(
            AttributeDef(
                "com.example.size", type="number", pattern={"type": "integer", "minimum": 1}, default=4
            ),
            AttributeDef("com.example.note", required=True, description="a note"),
        ),
        depends=(OS_TPL,),
        applies=(COMPUTE,),
        location=location or f"/mixins/{term}/",
        user_defined=True,
        owner="anonymous",
        tenant="default",
    )


def locations(found: list[Entity]) -> list[str]:
    return [entity.location for entity in found]


# ---- entities -----------------------------------------------------------------------------------


async def test_put_get_and_get_by_id(store: Store) -> None:
    entity = compute(1, **{"occi.compute.cores": 2, "occi.compute.memory": 4.0, "x.list": [1, {"a": 2.5}]})
    entity = entity.evolve(mixins=[UBUNTU])
    entity = entity.evolve(backend_id="dom-1")
    await store.commit(Batch(put=[entity]))
    got = await store.get("/compute/c-1")
    assert got == entity
    assert got is not None
    assert await store.get_by_id("c-1") == entity
    assert await store.get("/compute/nothing") is None
    assert await store.get_by_id("nothing") is None


async def test_float_stays_float_and_int_stays_int(opener: Opener) -> None:
    store = await opener()
    await store.commit(Batch(put=[compute(1, **{"occi.compute.memory": 4.0, "occi.compute.cores": 4})]))
    for reader in (store, await opener()):  # for SqlStore, the second one reads the database
        got = await reader.get("/compute/c-1")
        assert got is not None
        memory, cores = got.attributes["occi.compute.memory"], got.attributes["occi.compute.cores"]
        assert isinstance(memory, float) and memory == 4.0
        assert isinstance(cores, int) and cores == 4


async def test_links_and_actions_are_not_stored(store: Store) -> None:
    entity = compute(1).evolve(links=(link(1, "/compute/c-1", "/storage/s-1"),), actions=("start",))
    await store.commit(Batch(put=[entity]))
    got = await store.get("/compute/c-1")
    assert got is not None and got.links == () and got.actions == ()


async def test_stored_values_are_immutable(store: Store) -> None:
    entity = compute(1, **{"x.list": [1, 2]}).evolve(mixins=[UBUNTU])
    op = Operation("op-1", "/compute/c-1", "create", result={"a": [1]})
    await store.commit(Batch(put=[entity], put_operations=[op]))
    got = await store.get("/compute/c-1")
    assert got is not None and got.mixins == (UBUNTU,)
    with pytest.raises(AttributeError, match="immutable"):
        got.kind = STORAGE  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        got.mixins = ()  # type: ignore[misc]
    stored_op = await store.get_operation("op-1")
    assert stored_op is not None
    with pytest.raises(AttributeError, match="immutable"):
        stored_op.state = "failed"  # type: ignore[misc]
    # A change is a new value; the stored one is untouched.
    changed = got.with_attributes({"occi.compute.cores": 8})
    assert "occi.compute.cores" not in got.attributes and changed.attributes["occi.compute.cores"] == 8


async def test_empty_batch_is_a_no_op(store: Store) -> None:
    await store.commit(Batch())
    assert await store.count(EntityQuery()) == 0


@pytest.mark.spec("H-12")
async def test_query_by_kind_mixin_prefix_owner_with_pages(store: Store) -> None:
    batch = Batch()
    for n in range(10):
        entity = compute(n)
        if n % 2 == 0:
            entity = entity.evolve(mixins=[UBUNTU])
        if n % 3 == 0:
            entity = entity.evolve(tenant="alice")
        batch.put.append(entity)
        batch.put.append(storage(n))
    await store.commit(batch)

    everything = await store.query(EntityQuery())
    assert len(everything) == 20 and await store.count(EntityQuery()) == 20
    # Creation order: c-0, s-0, c-1, s-1, ...
    assert locations(everything)[:4] == ["/compute/c-0", "/storage/s-0", "/compute/c-1", "/storage/s-1"]

    computes = EntityQuery(kinds=(COMPUTE,))
    assert locations(await store.query(computes)) == [f"/compute/c-{n}" for n in range(10)]
    assert await store.query_locations(computes) == [f"/compute/c-{n}" for n in range(10)]
    both = await store.query_locations(EntityQuery(kinds=(STORAGE, COMPUTE)))
    assert both == await store.query_locations(EntityQuery())
    assert await store.query_locations(EntityQuery(kinds=(NETWORK,))) == []
    assert await store.count(EntityQuery(kinds=(NETWORK,))) == 0

    ubuntu = EntityQuery(mixin=UBUNTU)
    assert await store.query_locations(ubuntu) == [f"/compute/c-{n}" for n in (0, 2, 4, 6, 8)]
    assert await store.query_locations(EntityQuery(mixin=UBUNTU, kinds=(STORAGE,))) == []
    assert await store.query_locations(EntityQuery(mixin="http://nothing#here")) == []

    assert await store.query_locations(EntityQuery(prefix="/storage/")) == [
        f"/storage/s-{n}" for n in range(10)
    ]
    assert await store.query_locations(EntityQuery(prefix="/storage/s-1")) == ["/storage/s-1"]

    alice = EntityQuery(tenant="alice")
    assert await store.query_locations(alice) == [f"/compute/c-{n}" for n in (0, 3, 6, 9)]
    # Every given field ANDs.
    narrow = EntityQuery(kinds=(COMPUTE,), mixin=UBUNTU, tenant="alice", prefix="/compute/")
    assert await store.query_locations(narrow) == ["/compute/c-0", "/compute/c-6"]
    assert await store.count(narrow) == 2

    # Pages.
    page = await store.query_locations(EntityQuery(kinds=(COMPUTE,), offset=3, limit=4))
    assert page == [f"/compute/c-{n}" for n in (3, 4, 5, 6)]
    page = await store.query_locations(EntityQuery(mixin=UBUNTU, offset=4, limit=4))
    assert page == ["/compute/c-8"]
    page = await store.query_locations(EntityQuery(tenant="alice", offset=1, limit=2))
    assert page == ["/compute/c-3", "/compute/c-6"]
    assert await store.count(EntityQuery(kinds=(COMPUTE,), offset=3, limit=4)) == 10
    # Past the end: an empty page (GFD.223 §6: "200 + empty collection").
    assert await store.query(EntityQuery(kinds=(COMPUTE,), offset=10, limit=5)) == []
    assert await store.query(EntityQuery(offset=100)) == []
    assert await store.query(EntityQuery(prefix="/storage/", offset=50, limit=5)) == []
    assert await store.query(EntityQuery(limit=0)) == []


async def test_update_keeps_the_original_position(opener: Opener) -> None:
    store = await opener()
    await store.commit(Batch(put=[compute(n) for n in range(5)]))
    changed = compute(1, **{"occi.compute.cores": 8})
    changed = changed.evolve(mixins=[UBUNTU])
    await store.commit(Batch(put=[changed]))
    await store.commit(Batch(put=[compute(5)]))
    expected = [f"/compute/c-{n}" for n in range(6)]
    assert await store.query_locations(EntityQuery()) == expected
    assert await store.query_locations(EntityQuery(kinds=(COMPUTE,))) == expected
    assert await store.query_locations(EntityQuery(mixin=UBUNTU)) == ["/compute/c-1"]
    # An older entity joining a mixin later still sorts by creation.
    late = compute(0)
    late = late.evolve(mixins=[UBUNTU])
    await store.commit(Batch(put=[late]))
    assert await store.query_locations(EntityQuery(mixin=UBUNTU)) == ["/compute/c-0", "/compute/c-1"]
    got = await store.get("/compute/c-1")
    assert got is not None and got.attributes["occi.compute.cores"] == 8
    # A new kind for an old entity keeps its place too.
    retyped = Entity(kind=STORAGE, entity_id="c-2", location="/compute/c-2")
    await store.commit(Batch(put=[retyped]))
    assert await store.query_locations(EntityQuery(kinds=(COMPUTE,))) == [
        f"/compute/c-{n}" for n in (0, 1, 3, 4, 5)
    ]
    assert await store.query_locations(EntityQuery(kinds=(COMPUTE, STORAGE))) == expected
    reopened = await opener()
    assert await reopened.query_locations(EntityQuery()) == expected
    assert await reopened.query_locations(EntityQuery(mixin=UBUNTU)) == ["/compute/c-0", "/compute/c-1"]


async def test_delete(store: Store) -> None:
    first = compute(1)
    first = first.evolve(mixins=[UBUNTU])
    await store.commit(Batch(put=[first, compute(2)]))
    await store.commit(Batch(delete=["/compute/c-1", "/compute/never-was"]))
    assert await store.get("/compute/c-1") is None
    assert await store.get_by_id("c-1") is None
    assert await store.query_locations(EntityQuery()) == ["/compute/c-2"]
    assert await store.query_locations(EntityQuery(mixin=UBUNTU)) == []
    # The id is free again, and the location comes back at the end.
    await store.commit(Batch(put=[compute(1)]))
    assert await store.query_locations(EntityQuery()) == ["/compute/c-2", "/compute/c-1"]


async def test_delete_removes_the_entity_mixin_rows(sql_opener: Callable[[], Any]) -> None:
    store: SqlStore = await sql_opener()
    entity = compute(1)
    entity = entity.evolve(mixins=[UBUNTU, USER + "a"])
    await store.commit(Batch(put=[entity, compute(2)]))
    engine = make_engine(store.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(entity_mixins.c.mixin).order_by(entity_mixins.c.mixin)).scalars()
            assert list(rows) == sorted([UBUNTU, USER + "a"])
        entity = entity.evolve(mixins=[USER + "a"])
        await store.commit(Batch(put=[entity]))
        with engine.connect() as conn:
            assert list(conn.execute(sa.select(entity_mixins.c.mixin)).scalars()) == [USER + "a"]
        await store.commit(Batch(delete=["/compute/c-1"]))
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(entity_mixins)).scalar() == 0
            assert list(conn.execute(sa.select(entities_table.c.location)).scalars()) == ["/compute/c-2"]
    finally:
        engine.dispose()


async def test_links_from_and_links_to(store: Store) -> None:
    await store.commit(
        Batch(
            put=[
                compute(1),
                compute(2),
                storage(1),
                link(1, "/compute/c-1", "/storage/s-1"),
                link(2, "/compute/c-1", "/network/n-1", NETWORKINTERFACE),
                link(3, "/compute/c-2", "/storage/s-1"),
            ]
        )
    )
    found = await store.links_from(["/compute/c-1", "/compute/c-2", "/storage/s-1"])
    assert {source: locations(links) for source, links in found.items() if links} == {
        "/compute/c-1": ["/link/l-1", "/link/l-2"],
        "/compute/c-2": ["/link/l-3"],
    }
    assert await store.links_from([]) == {}
    assert locations(await store.links_to("/storage/s-1")) == ["/link/l-1", "/link/l-3"]
    assert await store.links_to("/compute/c-1") == []
    # A changed target moves the link; a deleted link disappears.
    await store.commit(Batch(put=[link(3, "/compute/c-2", "/storage/s-2")], delete=["/link/l-1"]))
    assert await store.links_to("/storage/s-1") == []
    assert locations(await store.links_to("/storage/s-2")) == ["/link/l-3"]
    found = await store.links_from(["/compute/c-1"])
    assert locations(found["/compute/c-1"]) == ["/link/l-2"]


async def test_user_mixins(opener: Opener) -> None:
    store = await opener()
    assert await store.user_mixins() == []
    a, b, c = user_mixin("a"), user_mixin("b"), user_mixin("c")
    await store.commit(Batch(put_mixins=[b, a]))
    await store.commit(Batch(put_mixins=[c]))
    assert await store.user_mixins() == [b, a, c]
    retitled = Mixin(scheme=USER, term="b", title="renamed", location="/mixins/b/", user_defined=True,
                     tenant="default")
    await store.commit(Batch(put_mixins=[retitled], delete_mixins=[a.type_id]))
    assert await store.user_mixins() == [retitled, c]
    # A mixin location is unique.
    with pytest.raises(Conflict):
        await store.commit(Batch(put_mixins=[user_mixin("d", "/mixins/c/")]))
    # The freed location of a deleted mixin can be reused.
    await store.commit(Batch(put_mixins=[user_mixin("e", "/mixins/a/")]))
    reopened = await opener()
    assert await reopened.user_mixins() == [retitled, c, user_mixin("e", "/mixins/a/")]


async def test_operations(opener: Opener) -> None:
    store = await opener()
    first = Operation("op-1", "/compute/c-1", "create", created=1.0, updated=1.0)
    second = Operation("op-2", "/compute/c-2", "start", created=2.0, updated=2.0, owner="alice")
    third = Operation("op-3", "/compute/c-1", "stop", created=3.0, updated=3.0)
    await store.commit(Batch(put_operations=[second, first]))
    await store.commit(Batch(put_operations=[third]))
    assert [op.op_id for op in await store.operations()] == ["op-1", "op-2", "op-3"]
    done = Operation(
        "op-1", "/compute/c-1", "create", "succeeded", "ok", created=1.0, updated=5.0, result={"x": 1.0}
    )
    await store.commit(Batch(put_operations=[done]))
    assert await store.get_operation("op-1") == done
    assert await store.get_operation("op-9") is None
    assert [op.op_id for op in await store.operations(state="running")] == ["op-2", "op-3"]
    assert [op.op_id for op in await store.operations(location="/compute/c-1")] == ["op-1", "op-3"]
    assert [op.op_id for op in await store.operations("running", "/compute/c-1")] == ["op-3"]
    reopened = await opener()
    # Finished operations survive a restart too.
    assert await reopened.get_operation("op-1") == done
    assert await reopened.get_operation("op-2") == second
    assert [op.op_id for op in await reopened.operations()] == ["op-1", "op-2", "op-3"]


async def test_a_batch_with_a_duplicate_id_changes_nothing(opener: Opener) -> None:
    store = await opener()
    await store.commit(Batch(put=[compute(1)]))
    clash = Entity(kind=COMPUTE, entity_id="c-1", location="/compute/other")
    bad = Batch(
        put=[compute(2), clash],
        delete=["/compute/c-1"],
        put_mixins=[user_mixin("a")],
        put_operations=[Operation("op-1", "/compute/c-2", "create")],
    )
    # The delete frees c-1 within the batch: legal. Without it, the batch must fail whole.
    bad.delete = []
    with pytest.raises(Conflict):
        await store.commit(bad)
    for reader in (store, await opener()):
        assert await reader.query_locations(EntityQuery()) == ["/compute/c-1"]
        assert await reader.user_mixins() == []
        assert await reader.operations() == []
    # Two entities of one batch with the same id.
    with pytest.raises(Conflict):
        await store.commit(Batch(put=[compute(3), Entity(kind=COMPUTE, entity_id="c-3", location="/x/3")]))
    assert await store.query_locations(EntityQuery()) == ["/compute/c-1"]


async def test_delete_then_reuse_the_id_in_one_batch(store: Store) -> None:
    await store.commit(Batch(put=[compute(1)]))
    moved = Entity(kind=COMPUTE, entity_id="c-1", location="/compute/moved")
    await store.commit(Batch(delete=["/compute/c-1"], put=[moved]))
    assert await store.get_by_id("c-1") == moved
    assert await store.query_locations(EntityQuery()) == ["/compute/moved"]


async def test_restart_sees_everything(sql_opener: Callable[[], Any]) -> None:
    store: SqlStore = await sql_opener()
    net_link = link(1, "/compute/c-0", "/network/n-1", NETWORKINTERFACE)
    batch = Batch(put=[compute(n, **{"occi.compute.memory": 1.5 * n}) for n in range(50)] + [net_link])
    batch.put[7] = batch.put[7].evolve(mixins=[UBUNTU, USER + "a"], tenant="alice", backend_id="uuid-7")
    await store.commit(batch)
    await store.commit(Batch(delete=["/compute/c-3"], put_mixins=[user_mixin("a")]))
    before = await store.query(EntityQuery())
    await store.close()
    reopened: SqlStore = await sql_opener()
    after = await reopened.query(EntityQuery())
    assert after == before and len(after) == 50
    assert await reopened.get_by_id("c-7") == batch.put[7]
    assert await reopened.query_locations(EntityQuery(mixin=USER + "a")) == ["/compute/c-7"]
    assert await reopened.query_locations(EntityQuery(tenant="alice")) == ["/compute/c-7"]
    assert locations(await reopened.links_to("/network/n-1")) == ["/link/l-1"]
    assert await reopened.user_mixins() == [user_mixin("a")]
    # And it keeps writing after the restart, after everything that was there.
    await reopened.commit(Batch(put=[compute(99)]))
    assert (await reopened.query_locations(EntityQuery()))[-1] == "/compute/c-99"


async def test_commit_after_close_or_before_open_is_refused(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(RuntimeError):
        await store.commit(Batch(put=[compute(1)]))
    await store.open()
    await store.close()
    with pytest.raises(RuntimeError):
        await store.commit(Batch(put=[compute(1)]))


def test_bad_synchronous_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        SqlStore("sqlite:///x.db", synchronous="OFF")


async def test_full_synchronous_mode_works(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'deep' / 'er' / 'x.db'}", synchronous="full")
    await store.open()
    try:
        await store.commit(Batch(put=[compute(1)]))
        engine = make_engine(store.url)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        engine.dispose()
    finally:
        await store.close()
    assert (tmp_path / "deep" / "er" / "x.db").exists()


# ---- concurrency --------------------------------------------------------------------------------


async def test_200_concurrent_commits_are_all_present(opener: Opener) -> None:
    store = await opener()
    await asyncio.gather(*(store.commit(Batch(put=[compute(n)])) for n in range(200)))
    assert await store.count(EntityQuery(kinds=(COMPUTE,))) == 200
    reopened = await opener()
    assert sorted(await reopened.query_locations(EntityQuery())) == sorted(
        f"/compute/c-{n}" for n in range(200)
    )


async def test_a_failing_batch_fails_alone_among_concurrent_ones(opener: Opener) -> None:
    store = await opener()
    await store.commit(Batch(put=[compute("taken")]))
    clash = Entity(kind=COMPUTE, entity_id="c-taken", location="/compute/clash")
    batches = [Batch(put=[compute(n)]) for n in range(40)]
    batches.insert(20, Batch(put=[clash]))
    results = await asyncio.gather(*(store.commit(batch) for batch in batches), return_exceptions=True)
    assert [type(result) for result in results].count(Conflict) == 1
    assert isinstance(results[20], Conflict)
    for reader in (store, await opener()):
        assert await reader.count(EntityQuery()) == 41
        assert await reader.get("/compute/clash") is None


async def test_throughput_of_64_concurrent_clients(opener: Opener) -> None:
    store = await opener()
    clients, per_client = 64, 20

    async def client(c: int) -> None:
        for i in range(per_client):
            await store.commit(Batch(put=[compute(f"{c}-{i}", **{"occi.compute.cores": 2})]))

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    elapsed = time.perf_counter() - started
    total = clients * per_client
    print(
        f"\n{type(store).__name__}: {total} single-entity commits, 64 clients: {total / elapsed:,.0f} writes/s"
    )
    assert await store.count(EntityQuery()) == total

    started = time.perf_counter()
    page = await store.query(EntityQuery(kinds=(COMPUTE,)))
    print(
        f"{type(store).__name__}: query of {len(page)} entities: {(time.perf_counter() - started) * 1e3:.2f} ms"
    )


# ---- codecs -------------------------------------------------------------------------------------

_json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_terms = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    term=_terms,
    title=st.none() | st.text(),
    default=st.none() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    pattern=st.none() | st.dictionaries(st.text(max_size=5), _json_values, max_size=3),
    location=st.none() | _terms.map(lambda t: f"/{t}/"),
)
def test_mixin_definition_round_trip(
    term: str, title: str | None, default: Any, pattern: dict[str, Any] | None, location: str | None
) -> None:
    mixin = Mixin(
        scheme=USER,
        term=term,
        title=title,
        attributes=(AttributeDef("a.b", type="number", pattern=pattern, default=default), AttributeDef("c")),
        actions=(USER + "act",),
        depends=(OS_TPL,),
        applies=(COMPUTE, STORAGE),
        location=location,
        user_defined=True,
        owner="bob",
        tenant="t-bob",
    )
    back = mixin_from_json(mixin_to_json(mixin))
    assert back == mixin
    assert [a.default for a in back.attributes] == [default, None]
    assert [type(a.default) for a in back.attributes] == [type(default), type(None)]
    assert back.attributes[0].pattern == pattern


@settings(suppress_health_check=[HealthCheck.too_slow])  # a loaded shared machine draws slowly
@given(st.dictionaries(st.text(min_size=1), _json_values.filter(lambda v: v is not None), max_size=5))
def test_attribute_values_round_trip_through_the_database(attributes: dict[str, Any]) -> None:
    # Memory-only SQLite: the codec and the columns, without the writer thread.
    from occipy.store._writes import write_batch
    from occipy.store.sql import _load_entities

    engine = make_engine("sqlite://")
    try:
        metadata.create_all(engine)
        entity = Entity(kind=COMPUTE, entity_id="e", location="/compute/e", attributes=attributes)
        with engine.begin() as conn:
            write_batch(conn, Batch(put=[entity]), 0.0)
        with engine.connect() as conn:
            loaded = _load_entities(conn)
        assert loaded == [entity]
        assert repr(loaded[0].attributes) == repr(attributes)  # 4.0 stays 4.0, 4 stays 4
    finally:
        engine.dispose()


async def test_inserts_in_one_group_keep_their_one_by_one_meaning(store: Store) -> None:
    """Insert-only entities (`Batch.new`) committed together: each batch means what it means alone
    (a location inserted twice, or upserted by an earlier batch, is a Conflict for the later one)."""
    await store.commit(Batch(new=[compute(1)]))
    outcomes = await asyncio.gather(
        store.commit(Batch(new=[compute(2)])),
        store.commit(Batch(new=[compute(2, **{"occi.core.title": "twin"})])),  # the same location, inserted again
        store.commit(Batch(put=[compute(3)])),
        store.commit(Batch(new=[compute(3, **{"occi.core.title": "late"})])),  # upserted by the batch before
        store.commit(Batch(new=[compute(4)], put_operations=[Operation(op_id="op-4", location="/compute/c-4",
                                                                      action="create", state="succeeded")])),
        store.commit(Batch(new=[compute(1)])),  # stored before the group
        return_exceptions=True)
    assert [type(outcome).__name__ for outcome in outcomes] == ["NoneType", "Conflict", "NoneType", "Conflict",
                                                               "NoneType", "Conflict"]
    assert (await store.get("/compute/c-2")).attributes.get("occi.core.title") is None  # type: ignore[union-attr]
    assert (await store.get("/compute/c-3")).attributes.get("occi.core.title") is None  # type: ignore[union-attr]
    assert await store.get("/compute/c-4") is not None and (await store.get_operation("op-4")) is not None
    assert sorted(locations(await store.query(EntityQuery()))) == ["/compute/c-1", "/compute/c-2", "/compute/c-3",
                                                                   "/compute/c-4"]
    # Alone in a group (nothing else fails it): upserted, then inserted by a later batch.
    outcomes = await asyncio.gather(store.commit(Batch(put=[compute(5)])),
                                    store.commit(Batch(new=[compute(5, **{"occi.core.title": "late"})])),
                                    return_exceptions=True)
    assert outcomes[0] is None and isinstance(outcomes[1], Conflict), outcomes
    assert (await store.get("/compute/c-5")).attributes.get("occi.core.title") is None  # type: ignore[union-attr]

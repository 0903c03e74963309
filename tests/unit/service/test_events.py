"""GET /-/events (issue 12): the service on MemoryStore (and SqlStore where several processes matter)
and the simulated cloud, no HTTP: what each committed change yields, in commit order; nothing for
refused writes; tenancy, filters, resume with Last-Event-ID, the `lost` marker, keep-alives and the
end of the stream at shutdown.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from occipy.backends.simulated import SimulatedDriver
from occipy.errors import BackendUnavailable
from occipy.identity.base import ADMIN, MEMBER, READER, Credentials, Principal
from occipy.model.catalogue import COMPUTE
from occipy.model.entity import Entity
from occipy.model.standard import standard_registry
from occipy.service.messages import OcciRequest, OcciResponse
from occipy.service.options import ServiceOptions
from occipy.service.pipeline import Service
from occipy.store.base import Batch, EventPage, EventRetention, Store
from occipy.store.memory import MemoryStore
from occipy.store.sql import SqlStore
from tests.unit.service.conftest import BASE, COMPUTE_KIND, Harness

ACTION = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
STREAM = "text/event-stream"


# ---- a small authenticator: `Bearer <user>`; alice and bob in tenant a, carol in b, root admin ----

PEOPLE = {
    "alice": Principal("alice", "a", frozenset({MEMBER})),
    "bob": Principal("bob", "a", frozenset({READER})),
    "carol": Principal("carol", "b", frozenset({MEMBER})),
    "root": Principal("root", "ops", frozenset({ADMIN})),
}


@dataclass(frozen=True, slots=True)
class Tokens:
    @property
    def name(self) -> str:
        return "tokens"

    def challenges(self) -> Sequence[str]:
        return ['Bearer realm="test"']

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        value = credentials.header("authorization") or ""
        return PEOPLE.get(value.removeprefix("Bearer "))

    async def close(self) -> None:
        return None


# ---- reading a stream -------------------------------------------------------------------------------


@dataclass
class Stream:
    """An open GET /-/events answer, parsed as a browser's EventSource would (HTML §9.2.6)."""

    response: OcciResponse
    buffer: str = ""
    last_id: str | None = None
    comments: list[str] = field(default_factory=list)
    ended: bool = False

    def __post_init__(self) -> None:
        assert self.response.stream is not None, (self.response.status, self.response.body)
        # As the HTTP server does: one task iterates the body (a timeout here must not cancel it).
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._pump = asyncio.get_running_loop().create_task(self._read(self.response.stream))

    async def _read(self, body: AsyncIterator[bytes]) -> None:
        try:
            async for chunk in body:
                self._chunks.put_nowait(chunk)
        finally:
            self._chunks.put_nowait(None)

    async def _block(self, timeout: float) -> str | None:
        while "\n\n" not in self.buffer:
            if self.ended:
                return None
            chunk = await asyncio.wait_for(self._chunks.get(), timeout)
            if chunk is None:
                self.ended = True
                return None
            self.buffer += chunk.decode()
        block, self.buffer = self.buffer.split("\n\n", 1)
        return block

    async def next(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """The next event's data within `timeout` (None when the stream ended; TimeoutError when
        nothing came); comments and id-only blocks on the way are noted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError()
            block = await self._block(left)
            if block is None:
                return None
            data = []
            for line in block.split("\n"):
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    self.comments.append(value)
                elif name == "id":
                    self.last_id = value
                elif name == "data":
                    data.append(value)
            if data:
                document: dict[str, Any] = json.loads("\n".join(data))
                return document

    async def take(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        found = []
        for _ in range(count):
            event = await self.next(timeout)
            assert event is not None, f"the stream ended after {found}"
            found.append(event)
        return found

    async def quiet(self, seconds: float = 0.3) -> None:
        """Nothing more arrives within `seconds`."""
        try:
            event = await self.next(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event {event}")

    async def until(self, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Events up to and including the first that satisfies `predicate`."""
        found = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self.next(max(deadline - loop.time(), 0.01))
            assert event is not None, f"the stream ended after {found}"
            found.append(event)
            if predicate(event):
                return found

    async def close(self) -> None:
        """The client goes away: the server cancels the body's task (Starlette does so on disconnect)."""
        self._pump.cancel()
        try:
            await self._pump
        except asyncio.CancelledError:
            pass


async def open_stream(harness: Harness, query: str = "", *, user: str | None = None,
                      last_id: str | None = None, shutdown: asyncio.Event | None = None) -> Stream:
    headers = [("accept", STREAM)]
    if user is not None:
        headers.append(("authorization", f"Bearer {user}"))
    if last_id is not None:
        headers.append(("last-event-id", last_id))
    params = dict(part.split("=", 1) for part in query.split("&") if part)
    response = await harness.service.handle(OcciRequest(method="GET", path="/-/events", query=params,
                                                        headers=headers, base_url=BASE, shutdown=shutdown))
    assert response.status == 200, response.body
    assert ("Content-Type", STREAM) in response.headers
    stream = Stream(response)
    # The first block says how long to wait before reconnecting and the id to resume from.
    first = await stream._block(5.0)
    assert first is not None and first.startswith("retry: "), first
    stream.last_id = first.split("id: ", 1)[1]
    return stream


def path(url: str | None) -> str:
    assert url is not None
    return url.removeprefix(BASE)


def brief(events: Sequence[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(event["type"], event["state"]) for event in events]


async def make(tmp_path: Path, *, delay: float = 0.0, sync_wait: float = 1.0, store: Store | None = None,
               auth: bool = False, **options: Any) -> Harness:
    driver = SimulatedDriver.from_options({"delay": str(delay), "seed": "1"}, tmp_path)
    store = store if store is not None else MemoryStore()
    service = Service(standard_registry(), store, driver,
                      ServiceOptions(sync_wait=sync_wait, delete_wait=max(sync_wait, 5.0), reconcile_interval=0,
                                     **options),
                      authenticator=Tokens() if auth else None)
    await store.open()
    await driver.open()
    await service.start()
    return Harness(service, driver)


async def stop(harness: Harness) -> None:
    await harness.service.stop()
    await harness.driver.close()
    await harness.service.store.close()


@pytest.fixture
async def quick(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await make(tmp_path)
    yield harness
    await stop(harness)


@pytest.fixture
async def slow(tmp_path: Path) -> AsyncIterator[Harness]:
    """Cloud work takes 0.3 s and requests wait 0.02 s: operations are recorded running, then end."""
    harness = await make(tmp_path, delay=0.3, sync_wait=0.02)
    yield harness
    await stop(harness)


@pytest.fixture
async def tenants(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await make(tmp_path, auth=True)
    yield harness
    await stop(harness)


async def create(harness: Harness, user: str | None = None, title: str = "vm") -> str:
    headers = [("authorization", f"Bearer {user}")] if user else []
    answer = await harness.call("POST", "/compute/", f"{COMPUTE_KIND}\nX-OCCI-Attribute: occi.core.title=\"{title}\"",
                                ctype="text/plain", headers=headers)
    assert answer.status == 201, answer.text
    return answer.location


# ---- what each change yields ----------------------------------------------------------------------


async def test_every_kind_of_change_yields_its_event_in_commit_order(quick: Harness) -> None:
    stream = await open_stream(quick)
    location = await create(quick)
    created = await stream.until(lambda e: e["type"] == "operation")
    assert brief(created) == [("created", "active"), ("operation", "succeeded")]
    assert path(created[0]["location"]) == location and created[0]["kind"] == COMPUTE
    assert created[0]["operation"] is None
    operation = created[1]
    assert operation["action"] == "create" and path(operation["location"]) == location
    assert path(operation["operation"]).startswith("/-/operations/")
    # The operation URL is the record's (the dashboard follows it).
    record = await quick.get_json(path(operation["operation"]))
    assert record["state"] == "succeeded"

    answer = await quick.call("POST", location + "?action=stop", f'Category: stop; scheme="{ACTION}"; class="action"',
                              ctype="text/plain")
    assert answer.status == 200, answer.text
    stopped = await stream.until(lambda e: e["type"] == "operation")
    assert brief(stopped) == [("state", "inactive"), ("operation", "succeeded")]
    assert stopped[1]["action"] == "stop"

    answer = await quick.call("POST", location, f'{COMPUTE_KIND}\nX-OCCI-Attribute: occi.core.title="renamed"',
                              ctype="text/plain")
    assert answer.status == 200, answer.text
    updated = await stream.until(lambda e: e["type"] == "updated")
    assert [e["type"] for e in updated][-1] == "updated" and updated[-1]["state"] == "inactive"

    answer = await quick.call("DELETE", location)
    assert answer.status == 200, answer.text
    deleted = await stream.until(lambda e: e["type"] == "operation" and e["state"] == "succeeded")
    # The delete's record is written (queued) before the cloud is asked, so that it survives a crash.
    assert brief(deleted) == [("operation", "queued"), ("deleted", None), ("operation", "succeeded")]
    assert path(deleted[1]["location"]) == location and deleted[1]["kind"] == COMPUTE
    assert {e["action"] for e in (deleted[0], deleted[2])} == {"delete"} and deleted[2]["kind"] == COMPUTE
    await stream.quiet()
    ids = [e["id"] for e in created + stopped + updated + deleted]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    await stream.close()


async def test_operation_progress_running_then_ended(slow: Harness) -> None:
    stream = await open_stream(slow)
    location = await create(slow)
    events = await stream.until(lambda e: e["type"] == "operation" and e["state"] == "succeeded")
    # The entity appears at once; the cloud work is recorded running (the request stopped waiting),
    # then the entity becomes active and the operation ends.
    assert brief(events)[0][0] == "created"
    assert ("operation", "running") in brief(events)
    assert brief(events)[-2:] == [("state", "active"), ("operation", "succeeded")]
    assert {path(e["location"]) for e in events} == {location}
    running = next(e for e in events if e["state"] == "running")
    assert running["operation"] == events[-1]["operation"]
    await stream.close()


async def test_refused_writes_yield_nothing(quick: Harness) -> None:
    stream = await open_stream(quick)
    bad = await quick.call("POST", "/compute/", f"{COMPUTE_KIND}\nX-OCCI-Attribute: occi.compute.cores=\"many\"",
                           ctype="text/plain")
    assert bad.status == 400, bad.text
    location = await create(quick)
    await stream.until(lambda e: e["type"] == "operation")
    immutable = await quick.call("POST", location, f'{COMPUTE_KIND}\nX-OCCI-Attribute: occi.core.id="other"',
                                 ctype="text/plain")
    assert immutable.status in (400, 403), immutable.text
    not_allowed = await quick.call("POST", location + "?action=start",
                                   f'Category: start; scheme="{ACTION}"; class="action"', ctype="text/plain")
    assert not_allowed.status == 409, not_allowed.text  # already active
    await stream.quiet()
    # A batch the store refuses (a duplicate entity id) writes nothing, events included.
    store = quick.service.store
    stored = await store.get(location)
    assert stored is not None
    twin = Entity(kind=COMPUTE, entity_id=stored.entity_id, location="/compute/twin",
                  attributes={"occi.core.id": stored.entity_id})
    with pytest.raises(Exception, match="already used"):
        await store.commit(Batch(put=[twin]))
    await stream.quiet()
    await stream.close()


async def test_an_unchanged_write_yields_nothing(quick: Harness) -> None:
    location = await create(quick)
    stream = await open_stream(quick)
    store = quick.service.store
    stored = await store.get(location)
    assert stored is not None
    await store.commit(Batch(put=[stored]))  # e.g. a reconcile that finds nothing new
    await stream.quiet()
    await store.commit(Batch(put=[stored.with_attributes({"occi.core.summary": "new"})]))
    (event,) = await stream.take(1)
    assert event["type"] == "updated"
    await stream.close()


# ---- tenancy --------------------------------------------------------------------------------------


async def test_a_principal_sees_their_tenants_events_and_an_admin_all(tenants: Harness) -> None:
    alice = await open_stream(tenants, user="alice")
    bob = await open_stream(tenants, user="bob")  # a reader of tenant a: reading is allowed
    carol = await open_stream(tenants, user="carol")
    root = await open_stream(tenants, user="root")
    in_a = await create(tenants, "alice", "a-vm")
    in_b = await create(tenants, "carol", "b-vm")
    for stream, wanted in ((alice, {in_a}), (bob, {in_a}), (carol, {in_b})):
        events = await stream.take(2)
        assert {path(e["location"]) for e in events} == wanted
        await stream.quiet()
        assert all(e["tenant"] == events[0]["tenant"] for e in events)
    everything = await root.take(4)
    assert {path(e["location"]) for e in everything} == {in_a, in_b}
    for stream in (alice, bob, carol, root):
        await stream.close()


async def test_authentication_comes_first(tenants: Harness) -> None:
    answer = await tenants.call("GET", "/-/events", accept=STREAM)
    assert answer.status == 401
    assert ("WWW-Authenticate", 'Bearer realm="test"') in answer.headers
    assert tenants.service.events.streams == 0


# ---- filters --------------------------------------------------------------------------------------


async def test_filters_by_kind_location_operation_and_type(quick: Harness) -> None:
    by_kind = await open_stream(quick, "kind=" + COMPUTE)
    by_term = await open_stream(quick, "kind=storage")
    by_type = await open_stream(quick, "type=operation")
    first = await create(quick, title="one")
    second = await create(quick, title="two")
    by_location = await open_stream(quick, f"location={BASE}{second}")
    by_prefix = await open_stream(quick, "location=/compute/&type=deleted,state")
    assert brief(await by_kind.take(4)) == [("created", "active"), ("operation", "succeeded")] * 2
    storage = await quick.call("POST", "/storage/", 'Category: storage; scheme="http://schemas.ogf.org/occi/'
                               'infrastructure#"; class="kind"\nX-OCCI-Attribute: occi.storage.size=1.0',
                               ctype="text/plain")
    assert storage.status == 201, storage.text
    assert {e["kind"] for e in await by_term.take(2)} == {"http://schemas.ogf.org/occi/infrastructure#storage"}
    await by_term.quiet()
    operations = await by_type.take(3)
    assert {e["type"] for e in operations} == {"operation"}
    by_operation = await open_stream(quick, "operation=" + operations[0]["operation"].replace(BASE, ""))
    await quick.call("DELETE", first)
    await quick.call("DELETE", second)
    assert [(e["type"], path(e["location"])) for e in await by_location.until(lambda e: e["type"] == "deleted")] == [
        ("operation", second), ("deleted", second)]
    assert [(e["type"], path(e["location"])) for e in await by_prefix.take(2)] == [
        ("deleted", first), ("deleted", second)]
    await by_operation.quiet()  # that operation ended before: nothing new of it
    assert [e["type"] for e in await by_kind.take(6)] == ["operation", "deleted", "operation"] * 2
    await by_kind.quiet()
    for stream in (by_kind, by_term, by_type, by_location, by_prefix, by_operation):
        await stream.close()


@pytest.mark.parametrize(("query", "headers", "status", "says"), [
    ({"kind": "nothing"}, [], 400, "unknown kind"),
    ({"type": "renamed"}, [], 400, "unknown event type"),
    ({"colour": "red"}, [], 400, "unknown query parameter"),
    ({"kind": ""}, [], 400, "is empty"),
    ({}, [("last-event-id", "yesterday")], 400, "Last-Event-ID"),
    ({}, [("accept", "application/occi+json")], 406, "text/event-stream"),
])
async def test_bad_requests_are_refused_with_a_message(quick: Harness, query: dict[str, str],
                                                       headers: list[tuple[str, str]], status: int,
                                                       says: str) -> None:
    answer = await quick.call("GET", "/-/events", query=query, headers=headers or [("accept", STREAM)])
    assert answer.status == status
    assert says in answer.text
    assert quick.service.events.streams == 0


async def test_errors_follow_accept_and_other_methods_are_405(quick: Harness) -> None:
    answer = await quick.call("GET", "/-/events", query={"type": "x"}, accept=f"{STREAM}, application/json")
    assert answer.status == 400 and answer.json()["code"] == 400
    answer = await quick.call("POST", "/-/events", accept=STREAM)
    assert answer.status == 405 and answer.header("Allow") == "GET, HEAD, OPTIONS"
    head = await quick.service.handle(OcciRequest(method="HEAD", path="/-/events", headers=[("accept", STREAM)],
                                                  base_url=BASE))
    assert head.status == 200 and head.stream is None and head.body == b""


# ---- resuming -------------------------------------------------------------------------------------


async def test_resume_with_last_event_id_loses_nothing(quick: Harness) -> None:
    stream = await open_stream(quick)
    first = await create(quick, title="first")
    seen = await stream.take(2)
    resume_from = stream.last_id
    assert resume_from == str(seen[-1]["id"])
    await stream.close()
    # Disconnected: changes happen meanwhile.
    second = await create(quick, title="second")
    await quick.call("DELETE", first)
    again = await open_stream(quick, last_id=resume_from)
    missed = await again.until(lambda e: e.get("action") == "delete" and e["state"] == "succeeded")
    assert [(e["type"], path(e["location"])) for e in missed] == [
        ("created", second), ("operation", second), ("operation", first), ("deleted", first), ("operation", first)]
    assert missed[0]["id"] == seen[-1]["id"] + 1
    # ... and the stream goes on live.
    third = await create(quick, title="third")
    assert path((await again.next())["location"]) == third
    await again.close()


async def test_resume_from_the_query_parameter_and_beyond_the_ring(quick: Harness, monkeypatch: Any) -> None:
    from occipy.service import events

    monkeypatch.setattr(events, "RING", 3)
    monkeypatch.setattr(events, "PAGE", 2)
    follower = await open_stream(quick)  # keeps the hub following while the others come and go
    first = await create(quick, title="first")
    await follower.take(2)
    mark = follower.last_id
    for n in range(4):
        await create(quick, title=f"more-{n}")
    await follower.take(8)
    # The ring holds 3 events now: this resume reads the store, two events at a time.
    resumed = await open_stream(quick, f"last_event_id={mark}")
    events_after = await resumed.take(8)
    assert [e["id"] for e in events_after] == list(range(int(mark) + 1, int(mark) + 9))
    assert path(events_after[0]["location"]) != first
    await resumed.quiet()
    for stream in (follower, resumed):
        await stream.close()


async def test_a_resume_older_than_what_is_kept_gets_the_lost_event(tmp_path: Path) -> None:
    harness = await make(tmp_path, store=MemoryStore(events=EventRetention(keep=3)))
    try:
        stream = await open_stream(harness)
        await create(harness, title="first")
        (created, _) = await stream.take(2)
        await stream.close()
        for n in range(3):
            await create(harness, title=f"more-{n}")
        again = await open_stream(harness, last_id=str(created["id"]))
        lost = await again.next()
        assert lost is not None and lost["type"] == "lost"
        assert f"after id {created['id']}" in lost["message"]
        kept = await again.take(3)
        assert [e["id"] for e in kept] == [lost["id"] + 1, lost["id"] + 2, lost["id"] + 3]
        await again.quiet()
        await again.close()
        # An id the server never gave (its log was reset): lost too, then the stream goes on.
        future = await open_stream(harness, last_id="999")
        reset = await future.next()
        assert reset is not None and reset["type"] == "lost" and "reset" in reset["message"]
        await create(harness, title="after-reset")
        assert (await future.next())["type"] == "created"
        await future.close()
    finally:
        await stop(harness)


async def test_events_from_another_process_arrive_by_polling(tmp_path: Path) -> None:
    """Two stores on one database, as two worker processes: the other's commits are read every poll."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    harness = await make(tmp_path, store=SqlStore(url), events_poll=0.1)
    other = SqlStore(url)
    await other.open()
    try:
        stream = await open_stream(harness)
        await other.commit(Batch(put=[Entity(kind=COMPUTE, entity_id="w2", location="/compute/w2",
                                             attributes={"occi.core.id": "w2", "occi.compute.state": "inactive"})]))
        event = await stream.next(timeout=5)
        assert event is not None and (event["type"], path(event["location"])) == ("created", "/compute/w2")
        location = await create(harness)
        mine = await stream.take(2)
        assert path(mine[0]["location"]) == location and mine[0]["id"] > event["id"]
        await stream.close()
    finally:
        await other.close()
        await stop(harness)


# ---- keep-alive and shutdown ----------------------------------------------------------------------


async def test_a_quiet_stream_sends_keep_alives_with_its_id(tmp_path: Path) -> None:
    harness = await make(tmp_path, events_keepalive=0.1)
    try:
        await create(harness)  # events before the stream: its id starts after them
        stream = await open_stream(harness, "type=deleted")
        start = stream.last_id
        with pytest.raises(asyncio.TimeoutError):
            await stream.next(0.5)
        assert "keep-alive" in stream.comments and stream.last_id == start
        await create(harness, title="filtered out")  # not a deletion: the stream's id moves on regardless
        with pytest.raises(asyncio.TimeoutError):
            await stream.next(0.5)
        assert stream.last_id is not None and start is not None and int(stream.last_id) == int(start) + 2
        await stream.close()
    finally:
        await stop(harness)


async def test_the_stream_ends_when_the_service_stops(tmp_path: Path) -> None:
    harness = await make(tmp_path)
    stream = await open_stream(harness)
    await create(harness)
    await stream.take(2)
    await harness.service.stop()
    assert await stream.next() is None and stream.ended
    assert any("shutting down" in comment for comment in stream.comments)
    assert harness.service.events.streams == 0
    answer = await harness.call("GET", "/-/events", accept=STREAM)
    assert answer.status == 503
    await harness.driver.close()


async def test_the_stream_ends_when_the_http_server_shuts_down(quick: Harness) -> None:
    shutdown = asyncio.Event()
    stream = await open_stream(quick, shutdown=shutdown)
    other = await open_stream(quick)
    shutdown.set()
    assert await stream.next() is None and stream.ended
    assert quick.service.events.streams == 1  # the other connection's stream goes on
    location = await create(quick)
    assert path((await other.next())["location"]) == location
    await other.close()
    assert quick.service.events.streams == 0


class BrokenLog(MemoryStore):
    """A store whose event log cannot be read (the database is gone): every read, or reads of
    events older than `old` (a resume)."""

    broken = False
    old: int | None = None

    async def events_after(self, after: int, limit: int = 1000) -> EventPage:
        if self.broken or (self.old is not None and after < self.old):
            raise BackendUnavailable("the store cannot read the event log: disk I/O error")
        return await super().events_after(after, limit)


async def test_a_store_that_cannot_be_read_is_503_or_ends_the_stream(tmp_path: Path) -> None:
    store = BrokenLog()
    harness = await make(tmp_path, store=store)
    try:
        store.broken = True
        answer = await harness.call("GET", "/-/events", accept=STREAM)
        assert answer.status == 503 and "disk I/O error" in answer.text
        assert harness.service.events.streams == 0
        store.broken = False
        await create(harness)
        store.old = 1
        # A resume from id 0 must read the store, which fails: the stream ends (the client comes
        # back later with its id) instead of breaking the connection.
        stream = await open_stream(harness, last_id="0")
        assert await stream.next() is None and stream.ended
        assert any("cannot be read now; reconnect with Last-Event-ID 0" in c for c in stream.comments)
        assert harness.service.events.streams == 0
    finally:
        store.broken = False
        store.old = None
        await stop(harness)

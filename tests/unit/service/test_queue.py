"""Operations on one entity are a FIFO queue (issue 7 regression tests, docs/decisions.md D-QUEUE).

A valid request that arrives while another operation runs is accepted, recorded as queued, answered
as D-SYNCWAIT says and run after the one before it; it is checked against the state the entity will
be in, and again at its turn. DELETE cancels what is queued and runs last. Concurrent creates of
one location and concurrent deletes of one entity have exactly one winner.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from occipy.backends.base import Action, Inventories, Observed, Ref
from occipy.backends.simulated import SimulatedDriver
from occipy.errors import OcciError
from occipy.model.catalogue import COMPUTE
from occipy.model.entity import Entity
from occipy.model.standard import standard_registry
from occipy.service.options import ServiceOptions
from occipy.service.pipeline import Service
from occipy.service.queue import Lanes
from occipy.store.base import FAILED, QUEUED, RUNNING, SUCCEEDED, Batch, Operation
from occipy.store.memory import MemoryStore
from tests.unit.service.conftest import BASE, COMPUTE_KIND, Harness

ACTION = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
DELAY = 0.3


async def _harness(tmp_path: Path, delay: float, sync_wait: float) -> Harness:
    driver = SimulatedDriver.from_options({"delay": str(delay), "seed": "3"}, tmp_path)
    store = MemoryStore()
    # A short delete wait: these tests look at entities while they are being deleted.
    options = ServiceOptions(sync_wait=sync_wait, delete_wait=sync_wait, reconcile_interval=0)
    service = Service(standard_registry(), store, driver, options)
    await store.open()
    await service.start()
    return Harness(service, driver)


@pytest.fixture
async def slow(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await _harness(tmp_path, DELAY, 0.02)
    yield harness
    await harness.service.stop()


@pytest.fixture
async def quick(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await _harness(tmp_path, 0.0, 1.0)
    yield harness
    await harness.service.stop()


def _path(url: str | None) -> str:
    assert url is not None
    return url.removeprefix(BASE)


async def _operation(harness: Harness, url: str | None) -> dict[str, object]:
    record = await harness.get_json(_path(url))
    assert isinstance(record, dict)
    return record


async def _settle(harness: Harness, location: str, timeout: float = 5.0) -> None:
    """Wait until no operation is pending on the entity."""
    lanes = harness.service.cloud.lanes
    deadline = asyncio.get_running_loop().time() + timeout
    while lanes.busy(location) or lanes.deleting(location):
        assert asyncio.get_running_loop().time() < deadline, f"{location} still busy"
        await asyncio.sleep(0.02)


async def _cloud_objects(harness: Harness, resource: str = "compute") -> int:
    driver = harness.driver
    assert isinstance(driver, Inventories)
    return sum(1 for item in await driver.inventory() if item.ref.resource == resource)


async def _stop(harness: Harness, location: str) -> tuple[int, str | None, str]:
    answer = await harness.json("POST", location + "?action=stop", {"action": ACTION + "stop"})
    return answer.status, answer.header("X-OCCI-Operation"), answer.text


async def test_an_action_on_a_compute_being_created_is_queued_and_runs_after_it(slow: Harness) -> None:
    location = await slow.create_compute()
    # The compute is being created: its rendering offers the actions of the state it will be in.
    document = await slow.get_json(location)
    assert document["attributes"]["occi.compute.state.message"] == "creating"
    assert ACTION + "stop" in document.get("actions", [])
    status, operation, text = await _stop(slow, location)
    assert status == 200, text
    record = await _operation(slow, operation)
    assert record["state"] == QUEUED and record["action"] == "stop"
    # Visible in the operation collection.
    listing = await slow.call("GET", "/-/operations/", accept="text/uri-list")
    assert _path(operation) in listing.text
    await _settle(slow, location)
    assert (await _operation(slow, operation))["state"] == SUCCEEDED
    assert (await slow.get_json(location))["attributes"]["occi.compute.state"] == "inactive"


async def test_two_actions_in_a_row_run_in_order(slow: Harness) -> None:
    location = await slow.create_compute()
    await _settle(slow, location)
    stop = await slow.json("POST", location + "?action=stop", {"action": ACTION + "stop"})
    start = await slow.json("POST", location + "?action=start", {"action": ACTION + "start"})
    assert (stop.status, start.status) == (200, 200), (stop.text, start.text)
    first = await _operation(slow, stop.header("X-OCCI-Operation"))
    second = await _operation(slow, start.header("X-OCCI-Operation"))
    assert first["state"] == RUNNING and second["state"] == QUEUED
    # After stop and start, the future state is active again: stop is offered, start is not.
    actions = (await slow.get_json(location)).get("actions", [])
    assert ACTION + "stop" in actions and ACTION + "start" not in actions
    await _settle(slow, location)
    assert (await _operation(slow, stop.header("X-OCCI-Operation")))["state"] == SUCCEEDED
    assert (await _operation(slow, start.header("X-OCCI-Operation")))["state"] == SUCCEEDED
    assert (await slow.get_json(location))["attributes"]["occi.compute.state"] == "active"


async def test_a_request_invalid_against_the_future_state_is_409(slow: Harness) -> None:
    location = await slow.create_compute()
    await _settle(slow, location)
    assert (await _stop(slow, location))[0] == 200
    # stop is queued or running: a second stop is invalid on its own terms (inactive -> stop).
    status, _, text = await _stop(slow, location)
    assert status == 409, text
    await _settle(slow, location)


async def test_a_queued_action_whose_turn_finds_it_not_allowed_fails_and_changes_nothing(slow: Harness) -> None:
    location = await slow.create_compute()
    await _settle(slow, location)
    restart = await slow.json("POST", location + "?action=restart", {"action": ACTION + "restart"})
    assert restart.status == 200
    # While the restart runs, the cloud is told to refuse the next action: the queued stop fails;
    # the start queued after it (valid after a stop) then finds the compute in error, where start
    # is not allowed: it fails too, and changes nothing.
    entity = await slow.service.store.get(location)
    assert entity is not None and entity.backend_id
    slow.driver.fail_next(entity.backend_id, "the hypervisor refused")
    stop = await slow.json("POST", location + "?action=stop", {"action": ACTION + "stop"})
    start = await slow.json("POST", location + "?action=start", {"action": ACTION + "start"})
    assert (stop.status, start.status) == (200, 200), (stop.text, start.text)
    await _settle(slow, location)
    failed_stop = await _operation(slow, stop.header("X-OCCI-Operation"))
    failed_start = await _operation(slow, start.header("X-OCCI-Operation"))
    assert failed_stop["state"] == FAILED and "refused" in str(failed_stop["message"])
    assert failed_start["state"] == FAILED and "not allowed" in str(failed_start["message"])
    before = await slow.get_json(location)
    assert before["attributes"]["occi.compute.state"] == "error"
    assert before["attributes"]["occi.compute.state.message"] == "the hypervisor refused"


async def test_an_update_of_a_busy_entity_is_queued_not_refused(slow: Harness) -> None:
    location = await slow.create_compute()
    answer = await slow.json("POST", location, {"kind": "http://schemas.ogf.org/occi/infrastructure#compute",
                                                "attributes": {"occi.core.title": "renamed"}})
    assert answer.status == 200, answer.text
    await _settle(slow, location)
    attributes = (await slow.get_json(location))["attributes"]
    assert attributes["occi.core.title"] == "renamed"
    assert attributes["occi.compute.state"] == "active"  # the create's result was not lost


async def test_a_mixin_collection_put_with_a_busy_member_is_accepted(slow: Harness) -> None:
    tag = ('Category: tag; scheme="http://example.com/tags#"; class="mixin"; location="/tags/t1/"')
    assert (await slow.text("POST", "/-/", tag)).status == 200
    location = await slow.create_compute()
    answer = await slow.call("PUT", "/tags/t1/", f"X-OCCI-Location: {BASE}{location}", ctype="text/plain")
    assert answer.status == 200, answer.text
    await _settle(slow, location)
    assert "http://example.com/tags#tag" in (await slow.get_json(location))["mixins"]


# ---- a user mixin's membership applies at once (D-TAGS-AT-ONCE) ------------------------------------

TAG = "http://example.com/tags#tag"


async def _tag(harness: Harness) -> None:
    definition = 'Category: tag; scheme="http://example.com/tags#"; class="mixin"; location="/tags/t1/"'
    assert (await harness.text("POST", "/-/", definition)).status == 200


async def _members(harness: Harness) -> list[str]:
    answer = await harness.call("GET", "/tags/t1/", accept="text/uri-list")
    assert answer.status == 200, answer.text
    return [_path(line) for line in answer.text.split() if line]


async def test_a_user_mixin_is_associated_at_once_with_a_compute_being_created(slow: Harness) -> None:
    await _tag(slow)
    location = await slow.create_compute()
    assert slow.service.cloud.lanes.busy(location)
    answer = await slow.text("POST", "/tags/t1/", f"X-OCCI-Location: {BASE}{location}")
    assert answer.status == 200, answer.text
    assert answer.header("X-OCCI-Operation") is None  # nothing queued
    # Shown at once, with the compute still being created.
    document = await slow.get_json(location)
    assert TAG in document["mixins"]
    assert document["attributes"]["occi.compute.state.message"] == "creating"
    assert await _members(slow) == [location]
    # The create's write-back keeps it.
    await _settle(slow, location)
    document = await slow.get_json(location)
    assert TAG in document["mixins"] and document["attributes"]["occi.compute.state"] == "active"


async def test_put_and_delete_on_the_collection_apply_at_once_and_survive_the_creates(slow: Harness) -> None:
    await _tag(slow)
    first, second = await slow.create_compute(), await slow.create_compute()
    assert (await slow.text("POST", "/tags/t1/", f"X-OCCI-Location: {first}")).status == 200
    assert (await slow.text("PUT", "/tags/t1/", f"X-OCCI-Location: {second}")).status == 200
    assert await _members(slow) == [second]
    filtered = await slow.call("GET", "/compute/", accept="text/uri-list",
                               headers=[("Category", 'tag; scheme="http://example.com/tags#"')],
                               ctype="text/occi")
    assert [_path(line) for line in filtered.text.split()] == [second]
    await _settle(slow, first)
    await _settle(slow, second)
    assert await _members(slow) == [second]
    assert TAG not in (await slow.get_json(first)).get("mixins", [])
    # A stop runs for 0.3 s: removing the tag meanwhile is seen at once and kept by the stop's write.
    assert (await _stop(slow, second))[0] == 200
    assert (await slow.text("DELETE", "/tags/t1/", f"X-OCCI-Location: {second}")).status == 200
    assert await _members(slow) == []
    await _settle(slow, second)
    document = await slow.get_json(second)
    assert TAG not in document.get("mixins", []) and document["attributes"]["occi.compute.state"] == "inactive"


async def test_an_update_queued_before_the_tag_keeps_it_one_queued_after_does_not(slow: Harness) -> None:
    await _tag(slow)
    location = await slow.create_compute()
    await _settle(slow, location)
    assert (await _stop(slow, location))[0] == 200  # runs for 0.3 s: what follows is queued behind it
    before = await slow.text("PUT", location, COMPUTE_KIND, 'X-OCCI-Attribute: occi.core.title="before"')
    assert before.status == 200, before.text
    assert (await slow.text("POST", "/tags/t1/", f"X-OCCI-Location: {location}")).status == 200
    await _settle(slow, location)
    document = await slow.get_json(location)
    # The full update was accepted before the tag: it does not take the tag away.
    assert TAG in document["mixins"] and document["attributes"]["occi.core.title"] == "before"
    assert (await _stop(slow, location))[0] == 409  # inactive now; start it to be busy again
    start = await slow.json("POST", location + "?action=start", {"action": ACTION + "start"})
    assert start.status == 200
    after = await slow.text("PUT", location, COMPUTE_KIND, 'X-OCCI-Attribute: occi.core.title="after"')
    assert after.status == 200, after.text
    await _settle(slow, location)
    document = await slow.get_json(location)
    # Accepted after the tag, the full update (without it) removes it, as a PUT does.
    assert TAG not in document.get("mixins", []) and document["attributes"]["occi.core.title"] == "after"


async def test_a_failed_create_keeps_the_tag_with_its_error(slow: Harness) -> None:
    await _tag(slow)
    answer = await slow.text("POST", "/compute/", COMPUTE_KIND, 'X-OCCI-Attribute: occi.core.title="simulate-failure"')
    assert answer.status == 201, answer.text
    location = answer.location
    assert (await slow.text("POST", "/tags/t1/", f"X-OCCI-Location: {location}")).status == 200
    await _settle(slow, location)
    document = await slow.get_json(location)
    assert TAG in document["mixins"] and document["attributes"]["occi.compute.state"] == "error"


async def test_delete_cancels_what_is_queued_and_runs_last(slow: Harness) -> None:
    location = await slow.create_compute()
    stop = await slow.json("POST", location + "?action=stop", {"action": ACTION + "stop"})
    assert stop.status == 200
    deleted = await slow.call("DELETE", location)
    assert deleted.status == 200, deleted.text
    cancelled = await _operation(slow, stop.header("X-OCCI-Operation"))
    assert cancelled["state"] == FAILED and "cancelled" in str(cancelled["message"])
    # Being deleted: still visible, with no actions; a second delete is 404.
    shown = await slow.get_json(location)
    assert shown.get("actions", []) == []
    assert (await slow.call("DELETE", location)).status == 404
    await _settle(slow, location)
    assert (await slow.call("GET", location)).status == 404
    assert await _cloud_objects(slow) == 0
    assert (await _operation(slow, deleted.header("X-OCCI-Operation")))["state"] == SUCCEEDED


async def test_save_is_an_operation(quick: Harness) -> None:
    location = await quick.create_compute()
    answer = await quick.text("POST", location + "?action=save", f'Category: save; scheme="{ACTION}"; class="action"',
                              'X-OCCI-Attribute: name="golden"')
    assert answer.status == 200, answer.text
    # GFD.224 §3.1: the answer renders the new OS template.
    assert "os_tpl" in answer.text and "class=\"mixin\"" in answer.text
    record = await _operation(quick, answer.header("X-OCCI-Operation"))
    assert record["action"] == "save" and record["state"] == SUCCEEDED


@pytest.mark.parametrize("how", ["put", "post-id"])
async def test_concurrent_creates_at_one_location_have_one_winner(slow: Harness, how: str) -> None:
    async def create() -> int:
        if how == "put":
            return (await slow.text("PUT", "/compute/same", COMPUTE_KIND)).status
        answer = await slow.text("POST", "/compute/", COMPUTE_KIND, 'X-OCCI-Attribute: occi.core.id="same-id"')
        return answer.status

    statuses = await asyncio.gather(*(create() for _ in range(20)))
    assert sorted(statuses) == [201] + [409] * 19
    await asyncio.sleep(DELAY * 3)
    assert await _cloud_objects(slow) == 1
    location = "/compute/same" if how == "put" else "/compute/same-id"
    assert (await slow.call("DELETE", location)).status == 200
    await _settle(slow, location)
    assert await _cloud_objects(slow) == 0


async def test_concurrent_deletes_have_one_winner(slow: Harness) -> None:
    location = await slow.create_compute()
    await _settle(slow, location)
    statuses = await asyncio.gather(*(slow.call("DELETE", location) for _ in range(20)))
    assert sorted(answer.status for answer in statuses) == [200] + [404] * 19
    await _settle(slow, location)
    assert await _cloud_objects(slow) == 0


async def test_an_interrupted_delete_is_finished_after_a_restart(tmp_path: Path) -> None:
    """D-DELETE-DURABLE: the delete's record is written first; a new server finishes it."""
    driver = SimulatedDriver.from_options({"delay": "0", "seed": "4"}, tmp_path)
    store = MemoryStore()
    first = Service(standard_registry(), store, driver, ServiceOptions(sync_wait=1.0, reconcile_interval=0))
    await store.open()
    await first.start()
    harness = Harness(first, driver)
    location = await harness.create_compute()
    entity = await store.get(location)
    assert entity is not None
    await first.stop()
    # What a crash right after the delete's record leaves: the entity, its cloud object and a
    # running delete operation.
    op = Operation(op_id="crashed-delete", location=location, action="delete", state=RUNNING,
                   tenant=entity.tenant, seq=1)
    await store.commit(Batch(put_operations=[op]))
    assert await _cloud_objects(harness) == 1
    second = Service(standard_registry(), store, driver, ServiceOptions(sync_wait=1.0, reconcile_interval=0))
    await second.start()
    again = Harness(second, driver)
    await _settle(again, location)
    assert await store.get(location) is None
    assert await _cloud_objects(again) == 0
    finished = await store.get_operation("crashed-delete")
    assert finished is not None and finished.state == SUCCEEDED
    await second.stop()


class _GatedDriver(SimulatedDriver):
    """A simulated cloud whose every action waits at a gate of its own until the test opens it."""

    def __init__(self) -> None:
        super().__init__(delay=0.0, seed=8)
        self.gates: asyncio.Queue[asyncio.Event] = asyncio.Queue()

    async def act(self, ref: Ref, action: Action) -> Observed:
        gate = asyncio.Event()
        self.gates.put_nowait(gate)
        await gate.wait()
        return await super().act(ref, action)


async def test_queued_work_is_recorded_running_before_the_cloud_is_asked() -> None:
    """D-RESTART resumes a record that says queued after a crash, and ends one that says running.
    A queued operation whose turn came says running before its cloud call, so that a crash during
    the call does not run it twice (for a create: a second cloud object)."""
    driver = _GatedDriver()
    store = MemoryStore()
    await store.open()
    # A long sync_wait: the running record is not written by the `quick` timer meanwhile.
    service = Service(standard_registry(), store, driver, ServiceOptions(sync_wait=30.0, reconcile_interval=0))
    await service.start()
    harness = Harness(service, driver)
    location = await harness.create_compute()
    stopping = asyncio.create_task(_stop(harness, location))
    first = await asyncio.wait_for(driver.gates.get(), 5)  # the stop is in the cloud
    starting = asyncio.create_task(harness.json("POST", location + "?action=start", {"action": ACTION + "start"}))

    async def starts() -> list[Operation]:
        return [op for op in await store.pending_operations(location) if op.action == "start"]

    while not (recorded := await starts()):
        await asyncio.sleep(0.01)
    [queued] = recorded
    assert queued.state == QUEUED
    first.set()
    second = await asyncio.wait_for(driver.gates.get(), 5)  # the start's turn: it is in the cloud
    record = await store.get_operation(queued.op_id)
    assert record is not None and record.state == RUNNING, record
    second.set()
    assert (await stopping)[0] == 200 and (await starting).status == 200
    record = await store.get_operation(queued.op_id)
    assert record is not None and record.state == SUCCEEDED
    await service.stop()


# ---- the lanes themselves: a write built from an older copy keeps a change applied at once -------------


class _StaleWriter:
    """A job whose records are built from the entity as it was at its turn (as an update's are):
    an "in progress" record once it outlasts `quick`, then the same copy with a new title."""

    action = "update"
    cloud = True

    def __init__(self) -> None:
        self.params: dict[str, object] = {}
        self.turn = asyncio.Event()
        self.release = asyncio.Event()
        self.copy: Entity | None = None

    def prepare(self, entity: Entity | None) -> Entity | None:
        assert entity is not None
        self.copy = entity
        self.turn.set()
        return entity.with_attributes({"occi.core.summary": "in progress"})

    async def run(self, entity: Entity | None) -> Callable[[Entity | None], Batch]:
        await self.release.wait()
        copy = self.copy
        assert copy is not None
        return lambda latest: Batch(put=[copy.with_attributes({"occi.core.title": "done"})])

    def fail(self, entity: Entity | None, error: OcciError) -> Batch:
        return Batch()

    async def undo(self) -> None:
        return None


async def test_a_change_applied_at_once_survives_the_writes_of_the_running_job() -> None:
    store = MemoryStore()
    await store.open()
    lanes = Lanes(store, quick=0.05)
    location = "/compute/c-1"
    await store.commit(Batch(put=[Entity(kind=COMPUTE, entity_id="c-1", location=location)]))
    spec = _StaleWriter()
    job = await lanes.submit(lanes.new_operation(location, "update", "t", "u"), spec)
    await spec.turn.wait()  # the job has read the entity: its copy has no tag

    def tag(entity: Entity) -> Entity:
        return entity if TAG in entity.mixins else entity.evolve(mixins=[*entity.mixins, TAG])

    [tagged] = await lanes.apply_now({location: tag})
    assert TAG in tagged.mixins
    await asyncio.sleep(0.15)  # the "in progress" record is written, from the copy
    showing = await store.get(location)
    assert showing is not None and showing.attributes.get("occi.core.summary") == "in progress"
    assert TAG in showing.mixins
    spec.release.set()
    assert (await job.wait(5.0)).state == SUCCEEDED
    final = await store.get(location)
    assert final is not None and final.attributes.get("occi.core.title") == "done" and TAG in final.mixins
    await store.close()


def test_recent_work_is_forgotten_oldest_first_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each cloud job notes when it ended (a watching driver's change soon after is checked again);
    # noting is O(1) and the memory bounded, whatever the number of entities worked on.
    from occipy.service import queue as queue_module

    monkeypatch.setattr(queue_module, "WORKED_KEPT", 3)
    now = [1000.0]
    monkeypatch.setattr(queue_module.time, "monotonic", lambda: now[0])
    lanes = Lanes(MemoryStore(), 0.2)
    for location in ("/a", "/b", "/c", "/d"):
        lanes._note_work(location)
    assert list(lanes._worked) == ["/b", "/c", "/d"]  # past the cap, the oldest went
    assert lanes.worked_recently("/d") and not lanes.worked_recently("/a")
    now[0] += queue_module.RECENT_WORK + 1
    lanes._note_work("/e")
    assert list(lanes._worked) == ["/e"]  # the others are no longer recent
    lanes._note_work("/b")
    lanes._note_work("/e")
    assert list(lanes._worked) == ["/b", "/e"]  # noted again: moved to the end
    # Emptied from the front, a plain dict makes every later look at its first item walk over
    # the slots of the items deleted before it (19 us a note after 34,000 went, against 0.6 us:
    # bench/probes/recent_work.py); an OrderedDict finds it at once.
    assert isinstance(lanes._worked, OrderedDict)

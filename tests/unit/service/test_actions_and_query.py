"""Actions, the query interface, collections and operations through the service."""

from __future__ import annotations

import asyncio

import pytest

from occipy.backends.base import Change, Observed, Ref
from tests.unit.service.conftest import COMPUTE_KIND, INFRA, Harness

ACTION = "http://schemas.ogf.org/occi/infrastructure/compute/action#"


@pytest.mark.spec("H-27")
async def test_stop_start_with_state_machine(harness: Harness) -> None:
    compute = await harness.create_compute()
    stop = await harness.text("POST", compute + "?action=stop", f'Category: stop; scheme="{ACTION}"; class="action"',
                              'X-OCCI-Attribute: method="graceful"')
    assert stop.status == 200, stop.text
    assert 'occi.compute.state="inactive"' in stop.text
    again = await harness.text("POST", compute + "?action=stop", f'Category: stop; scheme="{ACTION}"; class="action"')
    assert again.status == 409
    bad = await harness.json("POST", compute + "?action=start", {"action": ACTION + "start",
                                                                 "attributes": {"method": "x"}})
    assert bad.status == 400
    start = await harness.json("POST", compute + "?action=start", {"action": ACTION + "start"})
    assert start.status == 200
    assert start.json()["attributes"]["occi.compute.state"] == "active"


@pytest.mark.spec("INF-08")
async def test_invalid_method_is_400_and_changes_nothing(harness: Harness) -> None:
    compute = await harness.create_compute()
    answer = await harness.json("POST", compute + "?action=stop", {"action": ACTION + "stop",
                                                                   "attributes": {"method": "explode"}})
    assert answer.status == 400
    assert "method" in answer.json()["message"]
    assert (await harness.get_json(compute))["attributes"]["occi.compute.state"] == "active"


@pytest.mark.spec("INF-10")
async def test_save_returns_the_new_os_template(harness: Harness) -> None:
    compute = await harness.create_compute()
    answer = await harness.json("POST", compute + "?action=save", {"action": ACTION + "save",
                                                                   "attributes": {"name": "golden"}})
    assert answer.status == 200, answer.text
    (mixin,) = answer.json()["mixins"]
    assert mixin["depends"] == [INFRA + "os_tpl"]
    discovery = await harness.get_json("/-/")
    assert any(m["term"] == mixin["term"] for m in discovery["mixins"])


async def _states(harness: Harness) -> list[str]:
    return [r["attributes"]["occi.compute.state"] for r in (await harness.get_json("/compute/"))["resources"]]


@pytest.mark.spec("H-33")
@pytest.mark.spec("L-17")
async def test_collection_action_checks_everything_first(harness: Harness) -> None:
    first = await harness.create_compute()
    await harness.create_compute()
    await harness.json("POST", first + "?action=suspend", {"action": ACTION + "suspend"})
    answer = await harness.json("POST", "/compute/?action=stop", {"action": ACTION + "stop"})
    assert answer.status == 409  # a suspended compute cannot be stopped: nothing happens
    assert "suspended" in answer.json()["message"]
    assert await _states(harness) == ["suspended", "active"]  # the cloud answers at once: nothing ran


@pytest.mark.spec("H-33")
async def test_collection_action_leaves_members_already_there_alone(harness: Harness) -> None:
    # D-COLLECTION-NOOP: start on an active member is a no-op, not a 409 (the OGF 1.1 script).
    first = await harness.create_compute()
    second = await harness.create_compute()
    await harness.json("POST", first + "?action=stop", {"action": ACTION + "stop"})
    answer = await harness.text("POST", "/compute/?action=start", f'Category: start; scheme="{ACTION}"')
    assert answer.status == 200, answer.text
    assert await _states(harness) == ["active", "active"]
    # on one entity, the same action stays a 409 (INF-R1)
    assert (await harness.json("POST", second + "?action=start", {"action": ACTION + "start"})).status == 409
    stop = await harness.json("POST", "/compute/?action=stop", {"action": ACTION + "stop"})
    assert stop.status == 200 and await _states(harness) == ["inactive", "inactive"]
    again = await harness.json("POST", "/compute/?action=stop", {"action": ACTION + "stop"})
    assert again.status == 200 and await _states(harness) == ["inactive", "inactive"]


@pytest.mark.spec("H-20")
@pytest.mark.spec("L-04")
async def test_user_mixin_lifecycle(harness: Harness) -> None:
    tag = 'Category: tag; scheme="http://example.com/occi/my#"; class="mixin"; location="/tag/"'
    assert (await harness.text("POST", "/-/", tag)).status == 200
    compute = await harness.create_compute()
    assert (await harness.text("POST", "/tag/", f"X-OCCI-Location: {compute}")).status == 200
    assert "http://example.com/occi/my#tag" in (await harness.get_json(compute))["mixins"]
    assert (await harness.text("DELETE", "/-/", 'Category: tag; scheme="http://example.com/occi/my#"')).status == 200
    assert "mixins" not in (await harness.get_json(compute))


@pytest.mark.spec("L-03")
async def test_provider_mixin_cannot_be_removed(harness: Harness) -> None:
    answer = await harness.text("DELETE", "/-/", f'Category: os_tpl; scheme="{INFRA}"; class="mixin"')
    assert answer.status == 403


@pytest.mark.spec("H-12")
async def test_pagination(harness: Harness) -> None:
    for _ in range(5):
        await harness.create_compute()
    page = await harness.get_json("/compute/?page=2&number=2")
    assert len(page["resources"]) == 2
    assert (await harness.get_json("/compute/?page=9&number=2")) == {"resources": []}
    assert (await harness.call("GET", "/compute/?page=1&number=100000")).status == 413
    assert (await harness.call("GET", "/compute/?page=1")).status == 400


@pytest.mark.spec("H-10")
async def test_newer_client_version_is_501(harness: Harness) -> None:
    answer = await harness.call("GET", "/-/", headers=[("User-Agent", "client/1 OCCI/1.3")])
    assert answer.status == 501


async def test_operation_is_recorded(harness: Harness) -> None:
    answer = await harness.text("POST", "/compute/", COMPUTE_KIND)
    operation = answer.header("X-OCCI-Operation")
    assert operation is not None
    record = await harness.get_json(operation.split("test.example", 1)[1])
    assert record["action"] == "create" and record["state"] == "succeeded"


async def test_outside_change_is_reconciled(harness: Harness) -> None:
    compute = await harness.create_compute()
    entity = await harness.service.store.get(compute)
    assert entity is not None and entity.backend_id
    await harness.service.cloud.default.reconcile_one(compute, None)
    attributes = (await harness.get_json(compute))["attributes"]
    assert attributes["occi.compute.state"] == "error"
    assert "outside" in attributes["occi.compute.state.message"]


async def test_a_change_read_before_our_own_work_ended_is_checked_again(harness: Harness) -> None:
    # A polling driver may report what it read half-way through our own action (EC2: a stop seen
    # during a cold restart, in a clean-clone run): the cloud is asked again, its answer wins.
    compute = await harness.create_compute()
    entity = await harness.service.store.get(compute)
    assert entity is not None and entity.backend_id
    stop = 'Category: stop; scheme="http://schemas.ogf.org/occi/infrastructure/compute/action#"; class="action"'
    assert (await harness.text("POST", compute + "?action=stop", stop)).status == 200
    assert (await harness.get_json(compute))["attributes"]["occi.compute.state"] == "inactive"
    stale = Change(Ref("compute", entity.backend_id), Observed(entity.backend_id, "active"))
    harness.driver._changes.put_nowait(stale)  # as read before the stop
    for _ in range(20):
        await asyncio.sleep(0)
    assert (await harness.get_json(compute))["attributes"]["occi.compute.state"] == "inactive"
    # a real change made outside occipy still shows
    await harness.driver.simulate_external(Ref("compute", entity.backend_id), "active")
    for _ in range(20):
        await asyncio.sleep(0)
    assert (await harness.get_json(compute))["attributes"]["occi.compute.state"] == "active"

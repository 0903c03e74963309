"""Restarts: a clean stop keeps everything; work in flight at a crash ends `failed`, never stuck.

`occipy serve` runs as a subprocess (conftest.process_server). The in-flight cases use the
simulated driver with `delay=5`, so an action or a creation is still running when the server is
killed -9; after the restart the operation must read `failed` with a message, and the entity must
show its error state with a message and accept requests again (no "in progress" left behind).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_bad_input import (
    INFRA,
    JSON,
    USER_MIXIN_LOCATION,
    locations,
    path_of,
    seed,
    settle,
    snapshot,
)
from tests.integration.test_durability import relative, serving

SLOW = ("--driver-opt", "delay=5")  # later --driver-opt values win over conftest's delay=0
JSON_HEADERS = {"Content-Type": JSON, "Accept": JSON}


def test_clean_restart_keeps_everything(tmp_path: Path) -> None:
    """SIGTERM, then a restart on the same data: entities, links, mixins and the operation are the same."""
    data = tmp_path / "data"
    with serving(data) as (server, client):
        world = seed(client)
        before = settle(client)
        operation = relative(client, client.get(world.operation, headers={"Accept": JSON}))
        server.stop()  # terminate: the clean path (lifespan shutdown drains jobs, closes the store)
        # It stopped by itself within stop()'s 10 s (not by its SIGKILL fallback); uvicorn re-raises
        # SIGTERM after a graceful shutdown, hence -15 rather than 0.
        assert server.process.returncode in (0, -signal.SIGTERM), server.process.returncode

    with serving(data) as (server, client):
        assert snapshot(client) == before
        assert locations(client, USER_MIXIN_LOCATION) == [world.compute]
        assert relative(client, client.get(world.operation, headers={"Accept": JSON})) == operation
        # and the restarted server works on the old data
        response = client.post(f"{world.compute}?action=stop", headers=JSON_HEADERS,
                               json={"action": "http://schemas.ogf.org/occi/infrastructure/compute/action#stop"})
        assert response.status_code == 200, response.text


def _state(rendering: dict[str, Any], kind: str) -> tuple[str | None, str | None]:
    attributes = rendering["attributes"]
    return attributes.get(f"occi.{kind}.state"), attributes.get(f"occi.{kind}.state.message")


def _wait_running(client: httpx.Client, operation: str) -> dict[str, Any]:
    record = relative(client, client.get(operation, headers={"Accept": JSON}))
    assert record["state"] == "running", f"the operation is not in flight: {record}"
    return dict(record)


def _check_failed_after_restart(client: httpx.Client, operation: str, location: str, kind: str,
                                before: dict[str, Any]) -> None:
    record = relative(client, client.get(operation, headers={"Accept": JSON}))
    assert record["state"] == "failed", record
    assert record.get("message"), f"the failed operation has no message: {record}"
    assert (record["id"], record["action"], record["location"]) == (before["id"], before["action"], before["location"])
    rendering = relative(client, client.get(location, headers={"Accept": JSON}))
    state, message = _state(rendering, kind)
    assert state == "error", rendering
    assert message, f"the error state has no message: {rendering}"
    assert "in progress" not in message and message not in ("creating", "updating", "deleting"), message
    # nothing is left busy: the entity takes a change again (a running operation would give 409)
    response = client.post(location, headers=JSON_HEADERS, json={"title": "after the crash"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("kind", ["compute", "storage", "network"])
def test_creation_in_flight_at_kill9_fails_with_a_message(tmp_path: Path, kind: str) -> None:
    data = tmp_path / "data"
    attributes: dict[str, Any] = {"occi.storage.size": 1.0} if kind == "storage" else {}
    with serving(data, SLOW) as (server, client):
        response = client.post(f"/{kind}/", headers=JSON_HEADERS,
                               json={"kind": INFRA + kind, "title": "slow", "attributes": attributes})
        assert response.status_code == 201, response.text
        location = path_of(client, response.headers["location"])
        operation = path_of(client, response.headers["x-occi-operation"])
        before = _wait_running(client, operation)
        server.kill9()

    with serving(data) as (server, client):
        _check_failed_after_restart(client, operation, location, kind, before)


def test_a_collection_create_in_flight_at_kill9_fails_and_is_not_run_again(tmp_path: Path) -> None:
    """The entities of a request that creates several are written first with their operations;
    after a kill -9 while the cloud makes them, the restarted server ends each `failed`, its
    entity in `error`, rather than creating them again (D-RESTART). (That a queued record says
    running before its cloud call, whatever `sync_wait`, is pinned by
    tests/unit/service/test_queue.py::test_queued_work_is_recorded_running_before_the_cloud_is_asked.)"""
    data = tmp_path / "data"
    with serving(data, SLOW) as (server, client):
        response = client.post("/compute/", headers=JSON_HEADERS, json={"resources": [
            {"kind": INFRA + "compute", "title": f"slow-{n}"} for n in range(2)]})
        assert response.status_code == 201, response.text
        created = [path_of(client, url) for url in response.json()]
        assert len(created) == 2
        operation = path_of(client, response.headers["x-occi-operation"])
        before = _wait_running(client, operation)
        server.kill9()

    with serving(data) as (server, client):
        _check_failed_after_restart(client, operation, path_of(client, before["location"]), "compute", before)
        for location in created:
            rendering = relative(client, client.get(location, headers={"Accept": JSON}))
            assert _state(rendering, "compute")[0] == "error", rendering
            assert "interrupted" in str(_state(rendering, "compute")[1]), rendering


def test_action_in_flight_at_kill9_fails_with_a_message(tmp_path: Path) -> None:
    """A `start` still running (delay=5) when the server is killed: `failed` + message, compute in error."""
    data = tmp_path / "data"
    with serving(data) as (server, client):  # fast: create a compute and stop it
        response = client.post("/compute/", headers=JSON_HEADERS, json={"kind": INFRA + "compute"})
        assert response.status_code == 201, response.text
        compute = path_of(client, response.headers["location"])
        settle(client)
        response = client.post(f"{compute}?action=stop", headers=JSON_HEADERS, json={})
        assert response.status_code == 200, response.text
        settle(client)
        assert _state(relative(client, client.get(compute, headers={"Accept": JSON})), "compute")[0] == "inactive"

    with serving(data, SLOW) as (server, client):
        started = time.monotonic()
        response = client.post(f"{compute}?action=start", headers=JSON_HEADERS,
                               json={"action": "http://schemas.ogf.org/occi/infrastructure/compute/action#start"})
        assert response.status_code == 200, response.text
        operation = path_of(client, response.headers["x-occi-operation"])
        before = _wait_running(client, operation)
        # while it runs, the entity says so
        busy = relative(client, client.get(compute, headers={"Accept": JSON}))
        assert "in progress" in str(_state(busy, "compute")[1]), busy
        assert time.monotonic() - started < 4, "too slow to kill the server while the action runs"
        server.kill9()

    with serving(data) as (server, client):
        _check_failed_after_restart(client, operation, compute, "compute", before)
        listed = json.loads(client.get(operation, headers={"Accept": JSON}).text)
        assert "restart" in listed["message"] or "interrupt" in listed["message"], listed

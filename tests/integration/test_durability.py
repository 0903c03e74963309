"""Durability: what the server answered with success survives `kill -9` and a restart on the same data.

`occipy serve` runs as a subprocess (conftest.process_server) so that it can be killed with SIGKILL;
it restarts on the same data directory and a new port (snapshots compare paths, not URLs).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.conftest import ProcessServer, process_server, start_server
from tests.integration.test_bad_input import (
    INFRA,
    IPNETWORK,
    JSON,
    KIND_COMPUTE,
    OS_TPL,
    RESOURCE_TPL,
    TEXT_OCCI,
    TEXT_PLAIN,
    USER_MIXIN,
    USER_MIXIN_LOCATION,
    locations,
    path_of,
    restart_action,
    seed,
    settle,
    snapshot,
    text_request,
    wire,
)

JSON_HEADERS = {"Content-Type": JSON, "Accept": JSON}


@pytest.fixture(autouse=True, params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """Every test on both stores: the embedded SQLite file, and a fresh PostgreSQL database of the
    suite's cluster (`occipy serve` subprocesses find it in OCCIPY_DATABASE_URL)."""
    if request.param == "sqlite":
        monkeypatch.delenv("OCCIPY_DATABASE_URL", raising=False)
        return None
    dsn = str(request.getfixturevalue("postgres_database").dsn)
    monkeypatch.setenv("OCCIPY_DATABASE_URL", dsn)
    return dsn


@contextmanager
def serving(data_dir: Path, extra: tuple[str, ...] = ()) -> Iterator[tuple[ProcessServer, httpx.Client]]:
    server = process_server(data_dir, extra)
    client = httpx.Client(base_url=server.url, timeout=10)
    try:
        yield server, client
    finally:
        client.close()
        server.stop()


def relative(client: httpx.Client, response: httpx.Response) -> Any:
    """A JSON answer with this server's absolute URLs turned into paths."""
    return json.loads(response.text.replace(str(client.base_url).rstrip("/"), ""))


def _operation(client: httpx.Client, location: str) -> dict[str, Any]:
    response = client.get(location, headers={"Accept": JSON})
    assert response.status_code == 200, response.text
    record = relative(client, response)
    assert isinstance(record, dict)
    return record


def test_everything_survives_kill9(tmp_path: Path) -> None:
    """Entities of every kind, links, a mixin association, a user mixin and an operation survive kill -9.

    The last request is the action; the server is killed right after its 200.
    """
    data = tmp_path / "data"
    with serving(data) as (server, client):
        world = seed(client, run_action=False)
        before = settle(client)
        response = restart_action(client, world.compute)
        server.kill9()
        answered = relative(client, response)
        operation = path_of(client, response.headers["x-occi-operation"])

    with serving(data) as (server, client):
        after = snapshot(client)
        assert sorted(after["entities"]) == sorted(world.entities)
        # The compute is what the action's 200 rendered (restart leaves it active: as before).
        assert after["entities"][world.compute] == answered
        # Everything the same: attributes, mixins (os_tpl, resource_tpl, ipnetwork, the user mixin),
        # links rendered in their source, actions, and the user mixin's definition in /-/.
        assert after == before
        compute = after["entities"][world.compute]
        assert {OS_TPL, RESOURCE_TPL, USER_MIXIN} <= set(compute["mixins"])
        assert {link["id"] for link in compute["links"]} == {
            after["entities"][world.storagelink]["id"], after["entities"][world.networkinterface]["id"]}
        assert IPNETWORK in after["entities"][world.network]["mixins"]
        assert any(m["scheme"] + m["term"] == USER_MIXIN and m["location"] == USER_MIXIN_LOCATION
                   for m in after["mixins"])
        assert locations(client, USER_MIXIN_LOCATION) == [world.compute]
        record = _operation(client, operation)
        assert (record["action"], record["state"], record["location"]) == ("restart", "succeeded", world.compute)


def test_last_writes_survive_kill9_right_after_their_answer(tmp_path: Path) -> None:
    """Two rounds of writes, each killed -9 right after its last 2xx; the restarted server shows what it answered."""
    data = tmp_path / "data"
    with serving(data) as (server, client):
        world = seed(client)
        server.kill9()

    rounds: list[list[tuple[str, str, Any]]] = [[
        # (what, method + path, JSON body)
        ("partial update", f"POST {world.storage}", {"title": "renamed before the crash",
                                                      "attributes": {"occi.core.summary": "written last"}}),
        ("association", f"POST {USER_MIXIN_LOCATION}", {"resources": [{"location": world.network}]}),
        ("user mixin", "POST /-/", {"mixins": [{"term": "late_tag", "scheme": "http://example.com/occi/late#",
                                                "location": "/late_tag/"}]}),
    ], [
        ("create", "POST /storage/", {"kind": INFRA + "storage", "title": "last disk",
                                      "attributes": {"occi.storage.size": 3.0}}),
        ("delete", f"DELETE {world.storagelink}", None),
        ("dissociation", f"DELETE {USER_MIXIN_LOCATION}", {"resources": [{"location": world.compute}]}),
    ]]
    for writes in rounds:
        answers: dict[str, tuple[httpx.Response, Any]] = {}
        with serving(data) as (server, client):
            for what, request, body in writes:
                method, path = request.split(" ", 1)
                response = client.request(method, path, headers=JSON_HEADERS,
                                          content=None if body is None else json.dumps(body).encode())
                assert 200 <= response.status_code < 300, (what, response.status_code, response.text)
                answers[what] = (response, relative(client, response) if response.content else None)
            server.kill9()  # right after the last 2xx: nothing else happens in between
        with serving(data) as (server, client):
            for what, (response, answered) in answers.items():
                _check_write(client, world.storage, world.storagelink, world.network, world.compute,
                             what, response, answered)


def _check_write(client: httpx.Client, storage: str, storagelink: str, network: str, compute: str,
                 what: str, response: httpx.Response, answered: Any) -> None:
    if what == "partial update":
        current = relative(client, client.get(storage, headers={"Accept": JSON}))
        assert current == answered, "the storage differs from the 200 rendering of its update"
        assert current["title"] == "renamed before the crash"
    elif what == "association":
        assert network in locations(client, USER_MIXIN_LOCATION)
    elif what == "dissociation":
        listed = relative(client, client.get(USER_MIXIN_LOCATION, headers={"Accept": JSON}))
        assert listed == answered, "the membership differs from the 200 answer of the dissociation"
        assert locations(client, USER_MIXIN_LOCATION) == [network]
    elif what == "user mixin":
        mixins = relative(client, client.get("/-/", headers={"Accept": JSON}))["mixins"]
        assert any(m["term"] == "late_tag" and m["location"] == "/late_tag/" for m in mixins)
    elif what == "create":
        # the Location of the killed server (another port): keep its path
        created = client.get(urlsplit(response.headers["location"]).path, headers={"Accept": JSON})
        assert created.status_code == 200, created.text
        assert created.json()["title"] == "last disk"
    else:
        assert client.get(storagelink, headers={"Accept": JSON}).status_code == 404
        rendering = relative(client, client.get(compute, headers={"Accept": JSON}))
        assert all(link["target"]["location"] != storage for link in rendering.get("links", []))


def _create_request(index: int) -> tuple[str, list[tuple[str, str | bytes]], bytes]:
    """The index-th create of the concurrent loop: kinds and media types in turn."""
    media = (TEXT_PLAIN, TEXT_OCCI, JSON)[index % 3]
    kind = ("compute", "storage", "network")[(index // 3) % 3]
    attributes: dict[str, Any] = {"occi.core.title": f"concurrent {index}"}
    if kind == "storage":
        attributes["occi.storage.size"] = 1.0
    if media == JSON:
        body = json.dumps({"kind": INFRA + kind, "attributes": attributes}).encode()
        return f"/{kind}/", [("Content-Type", JSON), ("Accept", JSON)], body
    values = ", ".join(f"{name}={json.dumps(value)}" for name, value in attributes.items())
    fields = [("Category", KIND_COMPUTE.replace("compute", kind, 1)), ("X-OCCI-Attribute", values)]
    headers, body = text_request(media, fields)
    return f"/{kind}/", [("Content-Type", media), ("Accept", media), *headers], body


@pytest.mark.parametrize("kill_after", [3, 12, 30])
def test_acknowledged_concurrent_creates_survive_kill9(tmp_path: Path, kill_after: int) -> None:
    """8 clients create entities as fast as they can; kill -9 after `kill_after` 201s: all of those exist."""
    data = tmp_path / "data"
    server = process_server(data)
    acknowledged: list[str] = []
    interrupted: list[int] = []  # creates that were in flight when the server died
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(1_000_000))

    def work() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                with lock:
                    index = next(counter)
                path, headers, body = _create_request(index)
                try:
                    response = client.post(path, headers=wire(headers), content=body)
                except httpx.HTTPError:
                    with lock:
                        interrupted.append(index)
                    return  # the server is gone
                if response.status_code == 201:
                    with lock:
                        acknowledged.append(path_of(client, response.headers["location"]))
                else:
                    assert response.status_code < 500, response.text

    workers = [threading.Thread(target=work, daemon=True) for _ in range(8)]
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < kill_after and time.monotonic() < deadline:
            time.sleep(0.005)
        server.kill9()  # the creates are still running
        with lock:
            answered = list(acknowledged)
        stop.set()
        for worker in workers:
            worker.join(timeout=15)
    finally:
        stop.set()
        server.stop()
    assert len(answered) >= kill_after, f"only {len(answered)} creates answered 201 in 30 s"
    assert interrupted, "no create was in flight at the kill"

    with serving(data) as (server, client):
        stored = set(locations(client))
        missing = [location for location in answered if location not in stored]
        assert not missing, f"{len(missing)} of {len(answered)} acknowledged creates were lost: {missing[:5]}"
        for location in answered[:10]:
            assert client.get(location, headers={"Accept": JSON}).status_code == 200


def test_successful_update_is_not_undone_by_reconcile(tmp_path: Path) -> None:
    """A 200 update of a client attribute stays after the periodic reconcile with the cloud has run."""
    server = start_server(tmp_path / "data", reconcile_interval=0.2)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            world = seed(client)
            response = client.post(world.compute, headers=JSON_HEADERS,
                                   json={"attributes": {"occi.compute.hostname": "changed-by-client"}})
            assert response.status_code == 200, response.text
            time.sleep(1.0)  # several reconcile passes
            current = client.get(world.compute, headers={"Accept": JSON}).json()
            assert current["attributes"]["occi.compute.hostname"] == "changed-by-client"
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["network", "compute"])
def test_successful_replace_is_not_undone_by_reconcile(tmp_path: Path, kind: str, engine: str | None) -> None:
    server = start_server(tmp_path / "data", reconcile_interval=0.2, database_url=engine)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            world = seed(client)
            location = getattr(world, kind)
            response = client.put(location, headers=JSON_HEADERS, json={"kind": INFRA + kind})
            assert response.status_code == 200, response.text
            answered = relative(client, response)
            time.sleep(1.0)  # several reconcile passes
            assert relative(client, client.get(location, headers={"Accept": JSON})) == answered
    finally:
        server.stop()

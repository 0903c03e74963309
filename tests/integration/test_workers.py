"""Several server processes on one PostgreSQL database (docs/scaleout.md, issue 11).

Each test runs real `occipy serve` processes (subprocesses, so they can be killed -9) on a fresh
database of the suite's PostgreSQL cluster: two independent servers on two ports (the "N servers
behind any load balancer" deployment, which lets a test choose the process a request goes to),
or one `--workers 2`. The cloud is the simulated one, shared by the processes through a journal
(tests/integration/journal_driver.py), so lost or doubled cloud objects can be counted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import REPO, free_port
from tests.integration.journal_driver import JOURNAL_ENV, live_objects
from tests.services.postgres import PostgresDatabase

INFRA = "http://schemas.ogf.org/occi/infrastructure#"
ACTION = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
JSON = "application/occi+json"
HEADERS = {"Content-Type": JSON, "Accept": JSON}


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20, headers=HEADERS)


Start = Callable[..., Server]


@pytest.fixture
def start(postgres_database: PostgresDatabase, tmp_path: Path) -> Iterator[Start]:
    """Starts `occipy serve` processes on this test's database; all stopped at the end."""
    started: list[Server] = []
    journal = tmp_path / "cloud.journal"

    def launch(*extra: str, delay: float = 0.0, reconcile: float = 0.0, workers: int = 1) -> Server:
        port = free_port()
        log = tmp_path / f"server-{port}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO), **{JOURNAL_ENV: str(journal)},
                   OCCIPY_RECONCILE_INTERVAL=str(reconcile))
        args = [sys.executable, "-m", "tests.integration.journal_driver", "serve", "--port", str(port),
                "--data-dir", str(tmp_path / f"data-{port}"), "--driver", "journal",
                "--driver-opt", f"delay={delay}", "--database-url",
                postgres_database.dsn, "--workers", str(workers), *extra]
        with open(log, "wb") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        server = Server(f"http://127.0.0.1:{port}", process, log)
        started.append(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"occipy serve exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(server.url + "/-/", timeout=2).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"occipy serve did not come up:\n{log.read_text()[-3000:]}")

    launch.journal = journal  # type: ignore[attr-defined]
    yield launch
    for server in started:
        server.stop()


def _create(client: httpx.Client, title: str, **attributes: Any) -> str:
    response = client.post("/compute/", json={"kind": INFRA + "compute", "title": title, "attributes": attributes})
    assert response.status_code == 201, response.text
    return httpx.URL(response.headers["location"]).path


def _get(client: httpx.Client, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.text)
    data = response.json()
    assert isinstance(data, dict)
    return data


def _state(client: httpx.Client, path: str) -> str:
    return str(_get(client, path)["attributes"]["occi.compute.state"])


def _act(client: httpx.Client, path: str, action: str) -> httpx.Response:
    return client.post(f"{path}?action={action}", json={"action": ACTION + action})


def _operation(client: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    return _get(client, httpx.URL(response.headers["x-occi-operation"]).path)


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_a_write_on_one_server_is_read_by_the_next_request_on_the_other(start: Start) -> None:
    a, b = start(), start()
    with a.client() as on_a, b.client() as on_b:
        for n in range(15):
            path = _create(on_a, f"ryw-{n}")
            assert _get(on_b, path)["title"] == f"ryw-{n}"  # created on A, read on B at once
            response = on_b.post(path, json={"kind": INFRA + "compute", "attributes": {"occi.core.summary": f"s{n}"}})
            assert response.status_code == 200, response.text
            assert _get(on_a, path)["summary"] == f"s{n}"  # updated on B, read on A
            assert _act(on_a, path, "stop").status_code == 200
            assert _state(on_b, path) == "inactive"
            assert _act(on_b, path, "start").status_code == 200
            assert _state(on_a, path) == "active"
            # The same object (A's render cache) answers the new version, not the cached one.
            assert _get(on_a, path)["attributes"]["occi.compute.state"] == "active"
        # A user mixin defined on A is usable on B by the next request.
        mixin = {"mixins": [{"term": "tagged", "scheme": "http://example.com/occi/tags#", "location": "/tagged/"}]}
        assert on_a.post("/-/", json=mixin).status_code == 200
        assert on_b.post("/tagged/", json={"resources": [{"location": path}]}).status_code == 200, \
            on_b.post("/tagged/", json={"resources": [{"location": path}]}).text
        listed = on_a.get("/tagged/", headers={"Accept": "text/uri-list"}).text.split()
        assert [httpx.URL(url).path for url in listed] == [path]
        # Deleted on B: gone on A.
        assert on_b.delete(path).status_code == 200
        assert on_a.get(path).status_code == 404
        assert on_a.delete(path).status_code == 404


def test_operations_on_one_entity_run_in_acceptance_order_across_servers(start: Start) -> None:
    """A slow stop runs on A; updates accepted on A and B while it runs queue behind it, in the order
    they were accepted, whichever process accepted them (D-QUEUE across processes)."""
    a, b = start(delay=0.4), start(delay=0.4)
    with a.client() as on_a, b.client() as on_b:
        path = _create(on_a, "ordered")
        _wait(lambda: _state(on_b, path) == "active", 10, "the compute is active")
        answers = [(on_a, _act(on_a, path, "stop"))]
        for n, client in enumerate([on_b, on_a, on_b, on_b, on_a]):
            answers.append((client, client.post(path, json={"kind": INFRA + "compute",
                                                            "attributes": {"occi.core.summary": f"v{n}"}})))
        for _, response in answers:
            assert response.status_code == 200, response.text
        # Work that ended within sync_wait has no record (D-SYNCWAIT); the queued ones have one.
        recorded = [response for _, response in answers if "x-occi-operation" in response.headers]
        assert len(recorded) >= 2
        records: list[dict[str, Any]] = []

        def ended() -> bool:
            records[:] = [_operation(on_a, response) for response in recorded]
            return all(record["state"] not in ("queued", "running") for record in records)

        _wait(ended, 20, "every operation ended")
        assert [record["state"] for record in records] == ["succeeded"] * len(records), records
        finished = [record["updated"] for record in records]
        assert finished == sorted(finished), records  # they ran one after the other, in order
        assert _state(on_a, path) == _state(on_b, path) == "inactive"
        assert _get(on_a, path)["summary"] == _get(on_b, path)["summary"] == "v4"


def test_a_job_outlives_the_server_that_accepted_it(start: Start) -> None:
    """kill -9 the process running a create with an update queued behind it: the other process ends
    the create `failed` (D-RESTART: not resumable), runs the queued update, within seconds."""
    a = start(delay=3)
    b = start(delay=0)
    with a.client() as on_a, b.client() as on_b:
        response = on_a.post("/compute/", json={"kind": INFRA + "compute", "title": "doomed"})
        assert response.status_code == 201, response.text
        path = httpx.URL(response.headers["location"]).path
        create = httpx.URL(response.headers["x-occi-operation"]).path
        _wait(lambda: _get(on_b, create)["state"] == "running", 2, "the create runs on A")
        update = on_a.post(path, json={"kind": INFRA + "compute", "attributes": {"occi.core.summary": "after"}})
        assert update.status_code == 200, update.text
        queued = httpx.URL(update.headers["x-occi-operation"]).path
        assert _get(on_b, queued)["state"] == "queued"
        a.kill9()
        killed = time.monotonic()
        _wait(lambda: _get(on_b, queued)["state"] == "succeeded", 10, "the queued update ran on B")
        took = time.monotonic() - killed
        record = _get(on_b, create)
        assert record["state"] == "failed" and "server process running it stopped" in record["message"], record
        entity = _get(on_b, path)
        assert entity["summary"] == "after"
        assert entity["attributes"]["occi.compute.state"] == "error"
        assert took < 5, took
        # The entity takes new work on B.
        assert on_b.delete(path).status_code == 200
        assert on_b.get(path).status_code == 404


def _leader_pids(dsn: str) -> list[int]:
    import psycopg

    from occipy.store.sql import claim_key

    key = claim_key("occipy:leader") & 0xFFFFFFFFFFFFFFFF
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::text::bigint = %s "
            "AND l.objid::text::bigint = %s", (key >> 32, key & 0xFFFFFFFF)).fetchall()
    return [int(name.rpartition("-")[2]) for (name,) in rows]


def test_one_leader_and_another_takes_over_when_it_dies(start: Start, postgres_database: PostgresDatabase) -> None:
    servers = [start(), start(), start()]
    _wait(lambda: len(_leader_pids(postgres_database.dsn)) == 1, 10, "a leader")
    leaders = _leader_pids(postgres_database.dsn)
    assert len(leaders) == 1
    leader = next(server for server in servers if server.process.pid == leaders[0])
    leader.kill9()
    _wait(lambda: len(_leader_pids(postgres_database.dsn)) == 1
          and _leader_pids(postgres_database.dsn)[0] != leaders[0], 5, "a new leader")
    new = _leader_pids(postgres_database.dsn)[0]
    assert new in {server.process.pid for server in servers if server is not leader}


def test_kill9_under_write_load_loses_and_doubles_no_cloud_object(start: Start) -> None:
    """Clients create and delete on two servers; one is killed -9 mid-load, then started again. Every
    compute that exists has exactly one object in the cloud, and no object outlives its entity."""
    a = start(delay=0.05, reconcile=1.0)
    b = start(delay=0.05, reconcile=1.0)
    stop = threading.Event()
    killed = threading.Event()
    errors: list[str] = []

    def client_loop(server: Server, n: int) -> None:
        with server.client() as client:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    response = client.post("/compute/", json={"kind": INFRA + "compute", "title": f"load-{n}-{i}"})
                    if response.status_code == 201 and i % 3 == 0:
                        client.delete(httpx.URL(response.headers["location"]).path)
                except httpx.HTTPError:
                    if not (server is a and killed.is_set()):
                        errors.append(f"client {n} on a live server")
                    time.sleep(0.05)

    threads = [threading.Thread(target=client_loop, args=(server, n))
               for n, server in enumerate([a, b, a, b])]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    killed.set()
    a.kill9()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    journal: Path = start.journal  # type: ignore[attr-defined]
    with b.client() as on_b:
        def settled() -> bool:
            listed = on_b.get("/compute/").json().get("resources", [])
            busy = [e for e in listed
                    if e["attributes"].get("occi.compute.state.message") in ("creating", "deleting")]
            if busy:
                return False
            owned = {e["attributes"].get("occi.core.id"): e for e in listed}
            live = live_objects(journal)
            backed = {obj for obj, (resource, entity_id, _) in live.items() if resource == "compute"}
            # every live object belongs to a stored compute, and every active compute has one
            for backend_id in backed:
                entity_id = live[backend_id][1]
                if entity_id not in owned:
                    return False
            return True

        _wait(settled, 30, "the cloud and the store agree (lost objects cleaned)")
        listed = on_b.get("/compute/").json().get("resources", [])
        live = live_objects(journal)
        per_entity: dict[str, int] = {}
        for backend_id, (resource, entity_id, created) in live.items():
            assert created == 1, f"object {backend_id} was created {created} times"
            per_entity[entity_id] = per_entity.get(entity_id, 0) + 1
        assert all(count == 1 for count in per_entity.values()), per_entity
        for entity in listed:
            if entity["attributes"]["occi.compute.state"] == "active":
                assert per_entity.get(entity["attributes"]["occi.core.id"]) == 1, entity
        assert len(listed) > 10


def _operations(client: httpx.Client, action: str) -> list[dict[str, Any]]:
    """The operation records of this action (GET /-/operations/ lists their URLs)."""
    listed = client.get("/-/operations/")
    assert listed.status_code == 200, listed.text
    records = [_get(client, httpx.URL(url).path) for url in listed.json()]
    return [record for record in records if record.get("action") == action]


def test_a_create_cut_by_kill9_is_ended_not_run_again(start: Start, postgres_database: PostgresDatabase) -> None:
    """D-RESTART across workers: a create whose worker dies while the cloud works ends `failed`
    (its entity in `error`), and the object it made goes; it is not run a second time (which made
    a second cloud object for the entity). Here the cloud answers 3 s after it made the object:
    the create is recorded, and running, for those 3 s, and a sweep meanwhile leaves it alone."""
    a = start(reconcile=1.0)
    b = start("--sync-wait", "10", "--driver-opt", "answer_delay=3", reconcile=1.0)
    journal: Path = start.journal  # type: ignore[attr-defined]
    _wait(lambda: len(_leader_pids(postgres_database.dsn)) == 1, 10, "a leader")

    def create() -> None:
        with b.client() as on_b, contextlib.suppress(httpx.HTTPError):  # b is killed under it
            on_b.post("/compute/", json={"kind": INFRA + "compute", "title": "cut"})

    creating = threading.Thread(target=create)
    creating.start()
    _wait(lambda: bool(live_objects(journal)), 10, "the cloud made the object")
    [(backend_id, (_, entity_id, _))] = live_objects(journal).items()
    with a.client() as on_a:
        time.sleep(1.5)  # a sweep or two while the create runs: the object stays
        assert backend_id in live_objects(journal)
        record = _operations(on_a, "create")
        assert [op["state"] for op in record] == ["running"], record
        b.kill9()
        creating.join(timeout=10)

        def ended() -> bool:
            listed = on_a.get("/compute/").json().get("resources", [])
            states = [e["attributes"]["occi.compute.state"] for e in listed
                      if e["attributes"]["occi.core.id"] == entity_id]
            return states == ["error"] and not live_objects(journal)

        _wait(ended, 30, "the create ended failed and its object went")
        [op] = _operations(on_a, "create")
        assert op["state"] == "failed" and "interrupted" in op["message"], op
    creates = [line for line in journal.read_text().splitlines() if line.startswith("create ")]
    assert len(creates) == 1, creates  # not run again


def test_workers_flag_serves_and_replaces_a_killed_worker(start: Start) -> None:
    server = start(workers=2)
    children = _children(server.process.pid)
    assert len(children) == 2, children
    with server.client() as client:
        paths = [_create(client, f"w-{n}") for n in range(10)]
        os.kill(children[0], signal.SIGKILL)
        _wait(lambda: len(_children(server.process.pid)) == 2 and children[0] not in _children(server.process.pid),
              15, "the supervisor started another worker")
        for path in paths:  # every worker sees every entity
            for _ in range(3):
                assert _state(client, path) == "active"
        assert _act(client, paths[0], "stop").status_code == 200
        assert _state(client, paths[0]) == "inactive"


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    alive = []
    for child in found:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(child)
    return alive


def test_several_workers_need_postgresql(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "occipy", "serve", "--workers", "2", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert done.returncode == 1
    assert "PostgreSQL database_url" in done.stderr


def test_a_large_json_collection_is_streamed_and_pages_and_filters_come_from_the_store(start: Start) -> None:
    server = start()
    with server.client() as client:
        resources = [{"kind": INFRA + "compute", "title": f"bulk-{n}", "attributes": {"occi.compute.hostname": f"h{n}"}}
                     for n in range(1200)]
        client.timeout = httpx.Timeout(120)
        for first in range(0, 1200, 100):
            response = client.post("/compute/", json={"resources": resources[first:first + 100]})
            assert response.status_code == 201, response.text
        with client.stream("GET", "/compute/") as streamed:
            assert streamed.status_code == 200
            assert streamed.headers.get("transfer-encoding") == "chunked"
            assert "content-length" not in streamed.headers
            body = b"".join(streamed.iter_bytes())
        listed = json.loads(body)["resources"]
        assert [r["title"] for r in listed] == [f"bulk-{n}" for n in range(1200)]
        head = client.head("/compute/")
        assert head.status_code == 200 and head.content == b""
        page = client.get("/compute/?page=3&number=100").json()["resources"]
        assert [r["title"] for r in page] == [f"bulk-{n}" for n in range(200, 300)]
        found = client.get("/compute/?attribute=occi.core.title&value=bulk-777").json()["resources"]
        assert [r["attributes"]["occi.compute.hostname"] for r in found] == ["h777"]
        found = client.get("/compute/?attribute=occi.compute.hostname&value=h5&page=1&number=5").json()
        assert [r["title"] for r in found["resources"]] == ["bulk-5"]

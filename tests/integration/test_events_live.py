"""GET /-/events on a live server (issue 12), through the SDK and the CLI: changes as they happen,
tenancy with Basic authentication, `wait_for` woken by events, resume without loss across a
server restart, and a clean end of the stream when the server shuts down (SIGTERM).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from occipy.client import AsyncClient, BasicAuth, Client, ServerEvent

from .conftest import LiveServer, free_port, process_server, start_server

STREAM = "text/event-stream"
OCCI = Path(sys.executable).parent / "occi"


def current_id(url: str, auth: tuple[str, str] | None = None) -> str:
    """The id a stream opened now starts after (its first block): following from it misses nothing."""
    with httpx.stream("GET", url + "/-/events", headers={"Accept": STREAM}, auth=auth, timeout=10) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("id: "):
                return line[4:]
    raise AssertionError("the stream did not start with an id")


class Follower:
    """`client.events(...)` read by a thread into a queue (what an application's loop would do)."""

    def __init__(self, client: Client, **filters: object) -> None:
        self.events: queue.Queue[ServerEvent | BaseException] = queue.Queue()
        auth = client.auth
        start = current_id(client.endpoint.rstrip("/"), (auth.username, auth.password)
                           if isinstance(auth, BasicAuth) else None)
        self._stream = client.events(last_event_id=start, **filters)  # type: ignore[arg-type]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._stream:
                self.events.put(event)
        except BaseException as error:  # noqa: BLE001  (handed to the test)
            self.events.put(error)

    def next(self, timeout: float = 15.0) -> ServerEvent:
        item = self.events.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    def until(self, predicate: object, timeout: float = 20.0) -> list[ServerEvent]:
        found = []
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(deadline - time.monotonic(), 0.01))
            found.append(event)
            if predicate(event):  # type: ignore[operator]
                return found

    def nothing(self, seconds: float = 0.5) -> None:
        try:
            item = self.events.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected {item}")


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Cloud work takes 1 s: creates are answered while their operation runs."""
    server = start_server(tmp_path_factory.mktemp("events-live"), driver_options={"delay": "1.0"})
    yield server
    server.stop()


def test_the_sdk_follows_changes_as_they_happen(slow_server: LiveServer) -> None:
    with Client(slow_server.url) as occi:
        follower = Follower(occi, kinds=["compute"])
        location = occi.create("compute", title="followed")
        created = follower.until(lambda e: e.ended)
        assert [(e.type, e.state) for e in created] == [
            ("created", "inactive"), ("operation", "running"), ("state", "active"), ("operation", "succeeded")]
        assert {e.location for e in created} == {location}
        assert created[1].operation == created[3].operation and created[3].action == "create"
        record = httpx.get(created[3].operation or "", headers={"Accept": "application/occi+json"}).json()
        assert (record["state"], record["location"]) == ("succeeded", location)
        occi.trigger(location, "stop")
        stopped = follower.until(lambda e: e.ended)
        assert ("state", "inactive") in [(e.type, e.state) for e in stopped]
        occi.delete(location)
        deleted = follower.until(lambda e: e.type == "deleted")
        assert deleted[-1].location == location
        ids = [int(e.id) for e in created + stopped + deleted]
        assert ids == sorted(ids)


def test_wait_for_is_woken_by_events(slow_server: LiveServer) -> None:
    with Client(slow_server.url) as occi:
        location = occi.create("compute")
        started = time.monotonic()
        # Polling every 30 s would take 30 s; the event stream wakes it when the work ends (~1 s).
        entity = occi.wait_for(location, state="active", interval=30.0)
        took = time.monotonic() - started
        assert entity.attributes["occi.compute.state"] == "active"
        assert took < 10, took
        started = time.monotonic()
        occi.trigger(location, "stop")
        occi.wait_for(location, state="inactive", interval=30.0)
        assert time.monotonic() - started < 10
        occi.delete(location)


async def test_the_async_sdk_follows_and_waits(slow_server: LiveServer) -> None:
    async with AsyncClient(slow_server.url) as occi:
        stream = occi.events(types=["state"], last_event_id=current_id(slow_server.url))
        location = await occi.create("compute")
        started = time.monotonic()
        await occi.wait_for(location, state="active", interval=30.0)
        assert time.monotonic() - started < 10
        event = await anext(stream)
        assert (event.type, event.state, event.location) == ("state", "active", location)
        await stream.aclose()  # type: ignore[attr-defined]
        await occi.delete(location)


def test_the_cli_follows_changes_one_json_object_a_line(slow_server: LiveServer) -> None:
    env = dict(os.environ, OCCI_ENDPOINT=slow_server.url, OCCI_CONFIG="")
    process = subprocess.Popen([str(OCCI), "events", "-o", "json", "--count", "2", "--last-event-id",
                                current_id(slow_server.url), "--type", "created", "--type", "deleted",
                                "--kind", "storage"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        with Client(slow_server.url) as occi:
            occi.create("compute")  # another kind: filtered out
            disk = occi.create("storage", attributes={"occi.storage.size": 1.0})
            occi.wait_for(disk)
            occi.delete(disk)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(e["type"], e["location"]) for e in lines] == [("created", disk), ("deleted", disk)]
    assert lines[0]["kind"].endswith("#storage") and lines[0]["id"] < lines[1]["id"]


# ---- tenancy ----------------------------------------------------------------------------------------


def entry(user: str, password: str) -> str:
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode().replace('$2b$', '$2y$')}\n"


@pytest.fixture(scope="module")
def tenant_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("events-auth")
    (directory / "htpasswd").write_text(entry("alice", "a-pass") + entry("bob", "b-pass") + entry("root", "r-pass"))
    (directory / "groups").write_text("project-a: alice\nproject-b: bob\nops: root\n")
    (directory / "roles").write_text("admin: root\n")
    server = start_server(directory / "data", auth="basic", htpasswd=str(directory / "htpasswd"),
                          groups=str(directory / "groups"), roles=str(directory / "roles"))
    yield server
    server.stop()


def test_each_principal_sees_their_tenant_and_an_admin_all(tenant_server: LiveServer) -> None:
    url = tenant_server.url
    assert httpx.get(url + "/-/events", headers={"Accept": STREAM}).status_code == 401
    with Client(url, auth=BasicAuth("alice", "a-pass")) as alice, \
            Client(url, auth=BasicAuth("bob", "b-pass")) as bob, \
            Client(url, auth=BasicAuth("root", "r-pass")) as root:
        followers = {name: Follower(client) for name, client in (("alice", alice), ("bob", bob), ("root", root))}
        in_a = alice.create("compute", title="a")
        in_b = bob.create("compute", title="b")
        assert {e.location for e in followers["alice"].until(lambda e: e.ended)} == {in_a}
        assert {e.location for e in followers["bob"].until(lambda e: e.ended)} == {in_b}
        seen = followers["root"].until(lambda e: e.ended and e.location == in_b)
        seen += [] if any(e.ended and e.location == in_a for e in seen) else \
            followers["root"].until(lambda e: e.ended and e.location == in_a)
        assert {e.location for e in seen} == {in_a, in_b}
        assert {e.tenant for e in seen} == {"project-a", "project-b"}
        followers["alice"].nothing()
        followers["bob"].nothing()


# ---- restart and shutdown ------------------------------------------------------------------------


def test_resume_across_a_restart_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    server = process_server(tmp_path / "data", port=port)
    occi = Client(server.url)
    try:
        follower = Follower(occi, reconnect=60.0)
        first = occi.create("compute", title="before")
        assert follower.until(lambda e: e.ended)[0].location == first
        # SIGTERM: the stream ends cleanly and the server stops; it comes back on the same port.
        server.stop()
        server = process_server(tmp_path / "data", port=port)
        # Changes right away, before the client's reconnect (it waits the server's retry delay).
        second = occi.create("compute", title="after")
        occi.delete(first)
        resumed = follower.until(lambda e: e.type == "deleted")
        assert [(e.type, e.location) for e in resumed][:2] == [("created", second), ("operation", second)]
        assert ("deleted", first) in [(e.type, e.location) for e in resumed]
        assert not any(e.lost for e in resumed)
    finally:
        occi.close()
        server.stop()


def test_the_stream_ends_cleanly_when_the_server_shuts_down(tmp_path: Path) -> None:
    server = process_server(tmp_path / "data")
    lines: list[str] = []
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            with httpx.stream("GET", server.url + "/-/events", headers={"Accept": STREAM}, timeout=30) as response:
                assert response.status_code == 200 and response.headers["content-type"] == STREAM
                lines.extend(response.iter_lines())
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(1.0)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=15)
    reader.join(timeout=5)
    assert time.monotonic() - started < 10
    # uvicorn ends by raising the signal it caught again, once it has shut down.
    assert server.process.returncode == -signal.SIGTERM
    # The body ended properly (a chunked body cut short is an httpx error) with a last comment.
    assert outcome == [None]
    assert lines[0].startswith("retry: ") and any("shutting down" in line for line in lines)

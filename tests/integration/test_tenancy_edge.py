"""Authentication before the body, and the audit line of refused writes (issue 8).

Against `occipy serve` in a subprocess with Basic authentication, a small `max_body`, a write
rate limit and a quota, whose log file is read.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from occipy.identity.base import Credentials, Principal
from occipy.service.messages import OcciRequest

from .conftest import free_port
from .tenancy_helpers import COMPUTE, PASSWORDS, entity_body, write_identity_files

JSON = "application/occi+json"
CONFIG = """
max_body = 4096
rate_limit_writes = "20/minute"

[quotas.tenants.default]
computes = 0
"""


@dataclass
class Served:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def audit(self, request_id: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.lines() if "occipy.audit:" in line and f"request_id={request_id} " in line]
            if found or time.monotonic() > deadline:
                assert len(found) == 1, (request_id, found)
                return found[0]
            time.sleep(0.05)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("tenancy-edge")
    files = write_identity_files(directory / "id")
    (directory / "occipy.toml").write_text(CONFIG)
    port = free_port()
    log_path = directory / "server.log"
    args = [sys.executable, "-m", "occipy", "serve", "--port", str(port), "--data-dir", str(directory / "data"),
            "--driver-opt", "delay=0", "--config", str(directory / "occipy.toml"), "--auth", "basic",
            "--htpasswd", files["htpasswd"], "--groups", files["groups"], "--roles", files["roles"]]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log_file,
                                   env=dict(os.environ, PYTHONUNBUFFERED="1"))
    server = Served(f"http://127.0.0.1:{port}", port, process, log_path)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(server.url + "/-/", timeout=2).status_code == 401:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(log_path.read_text())
        time.sleep(0.05)
    yield server
    process.terminate()
    process.wait(timeout=10)


def as_user(server: Served, user: str | None) -> httpx.Client:
    auth = (user, PASSWORDS[user]) if user else None
    return httpx.Client(base_url=server.url, auth=auth, timeout=20)


# ---- the body is read only once the request is authenticated ------------------------------------------


def test_an_anonymous_upload_is_refused_before_its_body_is_read(served: Served) -> None:
    """The head announces 4000 bytes and none follow: the 401 comes at once (not after the body
    timeout), closes the connection, and the server never waited for the body."""
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(b"POST /compute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/occi+json\r\n"
                     b"Content-Length: 4000\r\nX-Request-ID: anonymous-upload\r\n\r\n")
        sock.settimeout(3)
        started = time.monotonic()
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        elapsed = time.monotonic() - started
    head = data.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 401 ")
    assert b"connection: close" in head
    assert b'www-authenticate: basic realm="occipy"' in head
    assert elapsed < 2
    assert re.search(r"POST /compute/ 401 request_id=anonymous-upload principal=- tenant=- operation=-$",
                     served.audit("anonymous-upload"))


def test_expect_100_continue_gets_no_continue_without_credentials(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(b"PUT /compute/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/occi+json\r\n"
                     b"Content-Length: 100\r\nExpect: 100-continue\r\n\r\n")
        sock.settimeout(3)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
    assert data.lower().startswith(b"http/1.1 401 ")


def test_an_authenticated_body_too_large_is_413_and_audited_with_the_principal(served: Served) -> None:
    with as_user(served, "alice") as alice:
        chunks = iter([b"x" * 3000, b"x" * 3000])  # chunked: no Content-Length to refuse early
        response = alice.post("/compute/", content=chunks, headers={"Content-Type": JSON,
                                                                    "X-Request-ID": "too-large-1"})
    assert response.status_code == 413
    assert re.search(r"POST /compute/ 413 request_id=too-large-1 principal=alice tenant=tenant-a operation=-$",
                     served.audit("too-large-1"))


def test_a_good_upload_still_works(served: Served) -> None:
    with as_user(served, "alice") as alice:
        response = alice.request(**entity_body(JSON, COMPUTE).request("POST", "/compute/", media=JSON,
                                                                    ))
        assert response.status_code == 201, response.text


# ---- the audit line of every refused write ------------------------------------------------------------


def write(served: Served, user: str | None, request_id: str, method: str, path: str,
          headers: dict[str, str] | None = None, json_body: object = None) -> httpx.Response:
    with as_user(served, user) as occi:
        extra = {"X-Request-ID": request_id, "Accept": JSON, **(headers or {})}
        if json_body is not None:
            return occi.request(method, path, json=json_body, headers={**extra, "Content-Type": JSON})
        return occi.request(method, path, headers=extra)


def test_refused_writes_are_audited_with_the_principal(served: Served) -> None:
    with as_user(served, "alice") as alice:
        made = alice.request(**entity_body(JSON, COMPUTE).request("POST", "/compute/", media=JSON))
        location = made.headers["location"][len(served.url):]
    compute = {"kind": COMPUTE, "attributes": {"occi.core.title": "x"}}
    cases = [
        # (request id, user, method, path, headers, body, status, principal, tenant)
        ("refused-401", None, "DELETE", location, None, None, 401, "-", "-"),
        ("refused-403-reader", "rita", "POST", location, None, compute, 403, "rita", "tenant-a"),
        ("refused-404-tenant", "bob", "DELETE", location, None, None, 404, "bob", "tenant-b"),
        ("refused-409-taken", "bob", "PUT", location, None, compute, 409, "bob", "tenant-b"),
        ("refused-412", "alice", "DELETE", location, {"If-Match": '"stale"'}, None, 412, "alice", "tenant-a"),
        ("refused-403-quota", "dora", "POST", "/compute/", None, compute, 403, "dora", "default"),
    ]
    for request_id, user, method, path, headers, body, status, principal, tenant in cases:
        response = write(served, user, request_id, method, path, headers, body)
        assert response.status_code == status, (request_id, response.text)
        line = served.audit(request_id)
        assert re.search(rf"{method} {re.escape(path)} {status} request_id={request_id} principal={principal} "
                         rf"tenant={tenant} operation=-$", line), line


def test_a_rate_limited_write_is_audited_with_the_principal(served: Served) -> None:
    # dora may write 20 times a minute (other tests may have used some of them)
    statuses = [write(served, "dora", f"limited-{i}", "DELETE", "/compute/nothing-here").status_code
                for i in range(21)]
    first = statuses.index(429)
    assert set(statuses[:first]) == {404} and set(statuses[first:]) == {429}
    assert re.search(rf"DELETE /compute/nothing-here 429 request_id=limited-{first} principal=dora tenant=default "
                     r"operation=-$", served.audit(f"limited-{first}"))


def test_writes_that_start_an_operation_name_it(served: Served) -> None:
    with as_user(served, "bob") as bob:
        made = bob.post("/compute/", json={"kind": COMPUTE}, headers={
            "Content-Type": JSON, "X-Request-ID": "op-create", "Prefer": "respond-async"})
        assert made.status_code in (201, 202), made.text
        operation = made.headers["x-occi-operation"].rpartition("/")[2]
        line = served.audit("op-create")
        assert line.endswith(f"principal=bob tenant=tenant-b operation={operation}"), line
        location = made.headers["location"]
        if "/-/operations/" in location:
            location = bob.get(location, headers={"Accept": JSON}).json()["location"]
        deleted = bob.delete(location, headers={"X-Request-ID": "op-delete"})
        assert deleted.status_code == 200
        gone = deleted.headers["x-occi-operation"].rpartition("/")[2]
        assert served.audit("op-delete").endswith(f"operation={gone}")


# ---- authentication runs once, before any handler or cache ---------------------------------------------


class Counting:
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def challenges(self) -> tuple[str, ...]:
        return ('Basic realm="occipy"',)

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        self.calls += 1
        return Principal("alice", "tenant-a", method="counting") if credentials.header("authorization") else None

    async def close(self) -> None:
        return None


async def test_authentication_runs_once_per_request_and_before_the_render_cache(tmp_path: Path) -> None:
    from occipy.backends.simulated import SimulatedDriver
    from occipy.http.app import create_app
    from occipy.model.standard import standard_registry
    from occipy.service.options import ServiceOptions
    from occipy.service.pipeline import Service
    from occipy.store.memory import MemoryStore

    counting = Counting()
    driver = SimulatedDriver.from_options({"delay": "0"}, tmp_path)
    store = MemoryStore()
    service = Service(standard_registry(), store, driver, ServiceOptions(reconcile_interval=0),
                      authenticator=counting)
    await store.open()
    await driver.open()
    await service.start()
    try:
        app = create_app(service, metrics=False)
        auth = {"Authorization": "Basic x"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as occi:
            made = await occi.post("/compute/", json={"kind": COMPUTE}, headers={**auth, "Content-Type": JSON})
            assert made.status_code == 201
            assert counting.calls == 1
            location = made.headers["location"][len("http://test"):]
            first = await occi.get(location, headers=auth)
            second = await occi.get(location, headers=auth)  # from the render cache
            assert (first.status_code, second.status_code, counting.calls) == (200, 200, 3)
            # no cache answers before authentication: not the rendering, not a 304
            assert (await occi.get(location)).status_code == 401
            assert (await occi.get(location, headers={"If-None-Match": first.headers["etag"]})).status_code == 401
            assert counting.calls == 5
        # the sans-IO entry point alone authenticates too (exactly once)
        request = OcciRequest("GET", location, headers=[("authorization", "Basic x")])
        assert (await service.handle(request)).status == 200
        assert counting.calls == 6
        admitted = await service.admit(request)
        assert (await service.handle(request, admitted)).status == 200
        assert counting.calls == 7
    finally:
        await service.stop()
        await driver.close()
        await store.close()

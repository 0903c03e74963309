"""Live-server fixtures: the real app under uvicorn on 127.0.0.1 and a free port.

`live_server` (one per session) and `fresh_server` (one per test) run the app in a thread, as
python-hyper/h11's tests do; `process_server()` runs `occipy serve` as a subprocess for tests
that must kill it (durability).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from occipy.config import Settings
from occipy.server import build_app, uvicorn_config
from tests.services._process import free_port

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def wait_until_up(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # 401: up, with authentication configured (tests/integration/test_auth_*.py)
            if httpx.get(url + "/-/", timeout=2).status_code in (200, 401):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server at {url} did not come up")


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    server: uvicorn.Server
    thread: threading.Thread
    settings: Settings

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_server(data_dir: Path, **overrides: Any) -> LiveServer:
    """The app for these settings, served in a background thread until `stop()`."""
    # The simulated cloud answers at once in tests; other drivers get only the options given.
    options = {"delay": "0"} if overrides.get("driver", "simulated") == "simulated" else {}
    options.update(overrides.pop("driver_options", {}))
    settings = replace(Settings(), port=free_port(), data_dir=data_dir, driver_options=options, **overrides)
    app = build_app(settings)
    # The server's own edge (http/protocol.py: header limit, timeouts, connection cap), as `occipy serve`.
    config = uvicorn_config(settings, app, loop="asyncio", log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{settings.port}"
    wait_until_up(url)
    return LiveServer(url=url, data_dir=data_dir, server=server, thread=thread, settings=settings)


def _store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """OCCIPY_TEST_LIVE_STORE=postgresql runs the live-server suites on a PostgreSQL database of the
    suite's cluster (tests/services/postgres.py) instead of SQLite (docs/testing.md)."""
    if os.environ.get("OCCIPY_TEST_LIVE_STORE", "sqlite") != "postgresql":
        return {}
    server = request.getfixturevalue("postgres_server")
    return {"database_url": server.create_database().dsn}


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("live"), **_store(request))
    yield server
    server.stop()


@pytest.fixture
def fresh_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    server = start_server(tmp_path / "data", **_store(request))
    yield server
    server.stop()


@dataclass
class ProcessServer:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    args: list[str] = field(default_factory=list)

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()


def process_server(data_dir: Path, extra: Sequence[str] = (), port: int | None = None) -> ProcessServer:
    """`occipy serve` as a subprocess (so a test can kill -9 it)."""
    port = port or free_port()
    # docker branch: `delay` is a simulated driver option only.
    simulated = "--driver" not in extra or list(extra)[list(extra).index("--driver") + 1] == "simulated"
    args = [sys.executable, "-m", "occipy", "serve", "--port", str(port), "--data-dir", str(data_dir),
            *(["--driver-opt", "delay=0"] if simulated else []), *extra]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
    except RuntimeError:
        process.kill()
        raise RuntimeError(f"occipy serve did not start: {process.stderr.read().decode() if process.stderr else ''}")
    return ProcessServer(url=url, data_dir=data_dir, process=process, args=args)


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)

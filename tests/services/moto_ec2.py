"""pytest plugin: an Amazon EC2 emulator (moto_server) for the test session.

`moto_server` starts moto's HTTP server on 127.0.0.1 and a free port and yields a `MotoServer`:
the endpoint URL, a boto3 session factory with dummy credentials and `reset()`. `moto` is the same
server for one test, reset afterwards so nothing leaks into the next test. Needs moto[server]
(dev group) and boto3 (the `ec2` extra).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.services._process import (
    ServiceError,
    die_with_parent,
    free_port,
    start_retrying_port_clash,
    stop_process,
    wait_for,
)

START_TIMEOUT = 30.0
REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


@dataclass
class MotoServer:
    """A running moto_server; everything it holds is in memory and goes with `reset()`."""

    endpoint_url: str
    region: str
    process: subprocess.Popen[bytes]
    directory: Path

    def session(self, region: str | None = None) -> Any:
        """A boto3 Session with dummy credentials (pass `endpoint_url` to its clients)."""
        import boto3

        return boto3.session.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                                     region_name=region or self.region)

    def client(self, service: str = "ec2", region: str | None = None) -> Any:
        """A boto3 client for `service` bound to this server."""
        return self.session(region).client(service, endpoint_url=self.endpoint_url)

    def reset(self) -> None:
        """Forget every resource in every region (moto's `POST /moto-api/reset`)."""
        request = urllib.request.Request(self.endpoint_url + "/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=30) as reply:
            if reply.status != 200:
                raise ServiceError(f"moto reset answered {reply.status}")

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_moto(region: str = REGION) -> MotoServer:
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
    except ImportError as exc:
        raise ServiceError(f"moto fixture needs moto[server] (dev group) and boto3 (`uv sync --extra ec2`): "
                           f"{exc}") from None
    moto_bin = Path(sys.executable).with_name("moto_server")
    if not moto_bin.exists():
        raise ServiceError(f"moto fixture: {moto_bin} is missing (is moto[server] installed?)")
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="occipy-moto-"))
    log = directory / "moto.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(moto_bin), "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   preexec_fn=die_with_parent())  # noqa: PLW1509
    server = MotoServer(f"http://127.0.0.1:{port}", region, process, directory)

    def ready() -> bool:
        with urllib.request.urlopen(server.endpoint_url + "/moto-api/data.json", timeout=2) as reply:
            return bool(reply.status == 200)

    try:
        wait_for(ready, what=f"moto_server on 127.0.0.1:{port}", timeout=START_TIMEOUT, process=process, log=log)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto_server for the whole session (shared: use `moto` for a clean slate per test)."""
    server = start_retrying_port_clash(start_moto)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto(moto_server: MotoServer) -> Iterator[MotoServer]:
    """The session's moto_server, reset after this test so nothing leaks into the next one."""
    try:
        yield moto_server
    finally:
        moto_server.reset()

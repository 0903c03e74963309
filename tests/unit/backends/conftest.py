"""Fixtures shared by the driver tests of this directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services.moto_ec2 import MotoServer


@pytest.fixture(scope="module")
def ec2(moto_server: MotoServer) -> Iterator[MotoServer]:
    """The session's moto_server, shared by a module's tests (each uses its own owner tag) and
    reset at the module's start and end. A reset per test would cost moto's 2 s AMI load every time."""
    moto_server.reset()
    yield moto_server
    moto_server.reset()

"""A service that cannot start fails its fixture at once, says why (its log's tail) and leaves nothing."""

from __future__ import annotations

import glob
import subprocess
from pathlib import Path

import pytest

from tests.services._process import ServiceError
from tests.services.dockerd import start_dockerd
from tests.services.openstack_cloud import start_openstack
from tests.services.postgres import start_postgres


def links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def test_postgres_that_cannot_start_shows_its_log() -> None:
    before = set(glob.glob("/tmp/occipy-pg-*"))
    with pytest.raises(ServiceError) as caught:
        start_postgres(settings={"shared_buffers": "lots"})
    message = str(caught.value)
    assert "PostgreSQL on 127.0.0.1:" in message and "exited with status" in message
    assert 'invalid value for parameter "shared_buffers": "lots"' in message
    assert set(glob.glob("/tmp/occipy-pg-*")) == before


def test_dockerd_that_cannot_start_shows_its_log_and_removes_its_bridge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "dockerd"
    fake.write_text("#!/bin/sh\necho 'failed to start daemon: simulated for the test' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("OCCIPY_DOCKERD", str(fake))
    before_links, before_dirs = links(), set(glob.glob("/tmp/occipy-dockerd-*"))
    with pytest.raises(ServiceError, match="(?s)exited with status 1.*simulated for the test"):
        start_dockerd()
    assert links() == before_links
    assert set(glob.glob("/tmp/occipy-dockerd-*")) == before_dirs


@pytest.mark.openstack
def test_openstack_that_cannot_start_says_which_step_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCCIPY_OPENSTACK_CACHE", str(tmp_path / "empty"))
    before = set(glob.glob("/tmp/occipy-openstack-*"))
    with pytest.raises(ServiceError) as caught:
        start_openstack()
    message = str(caught.value)
    assert "scripts/openstack/cloud.py" in message and "exited with status 1" in message
    assert "FAILED: api-paste files missing" in message
    assert set(glob.glob("/tmp/occipy-openstack-*")) == before

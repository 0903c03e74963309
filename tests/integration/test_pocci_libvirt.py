"""pOCCI 17/17 against a live server on the libvirt driver (qemu:///system, TCG), text/plain and text/occi.

The server boots real (tiny) guests for every compute pOCCI creates; afterwards every entity is
deleted through the API and libvirt must hold no domain, volume or network of the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import free_port, wait_until_up
from tests.integration.test_libvirt_live import GUEST_CACHE, REPO, URI, Live, eventually, prepare_host, remove_leftovers
from tests.integration.test_pocci import POCCI, VENV

pytestmark = [pytest.mark.libvirt, pytest.mark.pocci, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    libvirt = prepare_host()
    build = subprocess.run(["bash", str(REPO / "scripts" / "build-guest.sh"), str(GUEST_CACHE)],
                           check=False, capture_output=True, text=True)
    assert build.returncode == 0, f"scripts/build-guest.sh failed:\n{build.stderr}"
    root = tmp_path_factory.mktemp("pocci-libvirt")
    tag = uuid.uuid4().hex[:6]
    prefix, pool_name = f"pocci{tag}-", f"occipy-pocci-{tag}"
    conn = libvirt.open(URI)
    pool_dir = root / "pool"
    pool_dir.mkdir()
    pool = conn.storagePoolDefineXML(
        f"<pool type='dir'><name>{pool_name}</name><target><path>{pool_dir}</path></target></pool>", 0)
    pool.create(0)
    port = free_port()
    args = [sys.executable, "-m", "occipy", "serve", "--port", str(port), "--data-dir", str(root / "data"),
            "--driver", "libvirt"]
    for key, value in {"uri": URI, "image_dir": str(GUEST_CACHE), "pool": pool_name, "name_prefix": prefix,
                       "network_prefix": "10.215.0.0/16", "shutdown_timeout": "10",
                       "default_os_tpl": "occipy-guest"}.items():
        args += ["--driver-opt", f"{key}={value}"]
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    live = Live(f"http://127.0.0.1:{port}", root / "data", prefix, pool_name, conn, libvirt)
    try:
        wait_until_up(live.url, timeout=60)
        yield live
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        remove_leftovers(live)
        conn.close()


def _run_pocci(url: str, media: str) -> str:
    if not (VENV / "bin" / "pOCCI").exists():
        pytest.fail(f"pOCCI is not installed in {VENV}: run scripts/run-tests.sh (make test), which installs it")
    args = ["bash", str(POCCI), url] + (["-m", media] if media != "text/plain" else [])
    result = subprocess.run(args, capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, POCCI_VENV=str(VENV)))
    return result.stdout + result.stderr


def _settled(url: str) -> bool:
    """No entity has an operation in flight (a state message) any more."""
    listing = httpx.get(url + "/", headers={"Accept": "application/occi+json"}, timeout=30).json()
    for entity in [*listing.get("resources", []), *listing.get("links", [])]:
        if any(name.endswith(".state.message") and value in ("creating", "updating")
               or (name.endswith(".state.message") and str(value).endswith("in progress"))
               for name, value in entity.get("attributes", {}).items()):
            return False
    return True


@pytest.mark.parametrize("media", ["text/plain", "text/occi"])
def test_pocci_on_libvirt(server: Live, media: str) -> None:
    eventually(lambda: _settled(server.url), 120, "earlier operations to end")
    output = _run_pocci(server.url, media)
    print(output)
    assert "17 passed, 0 failed" in output, output


def test_everything_deleted_leaves_nothing_in_libvirt(server: Live) -> None:
    eventually(lambda: _settled(server.url), 120, "operations to end")
    for kind in ("compute", "storage", "network"):
        response = httpx.delete(f"{server.url}/{kind}/", timeout=120)
        assert response.status_code == 200, response.text
    eventually(lambda: server.ours() == ([], [], []), 120, "libvirt to hold no domain, volume or network")
    assert httpx.get(server.url + "/compute/", timeout=30).text.strip() == ""

"""pOCCI 17/17 against a live server on the libvirt driver (qemu:///system, TCG), text/plain and text/occi.

The server boots real (tiny) guests for every compute pOCCI creates; afterwards every entity is
deleted through the API and libvirt must hold no domain, volume or network of the run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.test_libvirt_live import Live, eventually, libvirt_server
from tests.integration.test_pocci import POCCI, VENV

pytestmark = [pytest.mark.libvirt, pytest.mark.pocci, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    options = {"network_prefix": "10.215.0.0/16", "shutdown_timeout": "10", "default_os_tpl": "occipy-guest"}
    with libvirt_server(tmp_path_factory, "pocci", options) as live:
        yield live


def _run_pocci(url: str, media: str) -> str:
    if not (VENV / "bin" / "pOCCI").exists():
        pytest.fail(f"pOCCI is not installed in {VENV}: run scripts/run-tests.sh (make test), which installs it")
    args = ["bash", str(POCCI), url] + (["-m", media] if media != "text/plain" else [])
    result = subprocess.run(args, check=False, capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, POCCI_VENV=str(VENV)))
    return result.stdout + result.stderr


def _settled(url: str) -> bool:
    """No entity has an operation in flight (a state message) any more."""
    listing = httpx.get(url + "/", headers={"Accept": "application/occi+json"}, timeout=30).json()
    for entity in [*listing.get("resources", []), *listing.get("links", [])]:
        if any(name.endswith(".state.message") and value in ("creating", "updating", "deleting")
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

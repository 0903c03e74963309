"""pOCCI, the third-party OCCI compliance suite (CESNET/pOCCI 1.0.3), against a live server.

All 17 tests, in text/plain and in text/occi, each against a fresh server (pOCCI creates the
same user mixin in every run).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import SHARED, start_server

POCCI = SHARED / "tools" / "pocci" / "pocci.sh"
VENV = Path(os.environ.get("POCCI_VENV", Path.home() / ".cache" / "occipy" / "pocci-venv"))

pytestmark = pytest.mark.pocci


@pytest.mark.parametrize("media", ["text/plain", "text/occi"])
def test_pocci_passes_every_test(tmp_path: Path, media: str) -> None:
    if not (VENV / "bin" / "pOCCI").exists():
        pytest.fail(f"pOCCI is not installed in {VENV}: run scripts/run-tests.sh (make test), which installs it")
    server = start_server(tmp_path / "data")
    try:
        args = ["bash", str(POCCI), server.url] + (["-m", media] if media != "text/plain" else [])
        result = subprocess.run(args, capture_output=True, text=True, timeout=600,
                                env=dict(os.environ, POCCI_VENV=str(VENV)))
    finally:
        server.stop()
    print(result.stdout)
    assert "17 passed, 0 failed" in result.stdout, result.stdout + result.stderr

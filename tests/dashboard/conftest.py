"""Dashboard fixtures: a live server with a slow simulated cloud, and Debian's Chromium under Playwright.

Playwright comes from PyPI without `playwright install`: it drives /usr/bin/chromium, which
`scripts/bootstrap.sh browser` installs (test-services.md, Headless Chromium). Screenshots go to
build/screenshots/dashboard/ (gitignored).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, LiveServer, start_server

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "build" / "screenshots" / "dashboard"


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app with cloud work taking 1.5 s, so progress can be watched."""
    server = start_server(tmp_path_factory.mktemp("dashboard"), driver_options={"delay": "1.5"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # Module scope, not session: Playwright's sync API keeps an asyncio loop running in the main
    # thread while it is open, and every async test that ran after it would find that loop.
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/bootstrap.sh browser` (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS

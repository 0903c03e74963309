"""Every pOCCI fixture its parser rejects is a 400 when sent to the server (issue 2, Renderings).

Categories go to `POST /-/` (user mixin definitions), entity collections to a mixin collection
(association), resources to `POST /compute/` (creation); `text-` files are text/plain bodies,
`http-` files text/occi headers, `uri-` files text/uri-list bodies. The server must answer 400 with
a message, and store nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import SHARED, LiveServer, start_server

FIXTURES = SHARED / "conformance" / "pocci-tests"
ROWS = list(csv.DictReader((FIXTURES / "expectations.tsv").open(), delimiter="\t"))
REJECTED = [row for row in ROWS if row["pOCCI_1.0.3_parser"] == "reject"]
TAG = 'Category: bucket; scheme="http://example.com/occi/pocci#"; class="mixin"; location="/bucket/"'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("pocci-live"))
    answer = httpx.post(live.url + "/-/", content=TAG, headers={"Content-Type": "text/plain"})
    assert answer.status_code == 200, answer.text
    yield live
    live.stop()


def _request(server: LiveServer, row: dict[str, str]) -> httpx.Response:
    content = (FIXTURES / row["file"]).read_bytes()
    path = {"categories": "/-/", "entities": "/bucket/", "resource": "/compute/"}[row["message"]]
    media = row["media_type"]
    if media == "text/occi":
        headers = [("Content-Type", "text/occi")]
        for line in content.decode("utf-8", "replace").splitlines():
            if ":" in line:
                name, _, value = line.partition(":")
                headers.append((name.strip(), value.strip()))
        return httpx.post(server.url + path, headers=headers, content=b"OK")
    return httpx.post(server.url + path, headers={"Content-Type": media, "Accept": "text/plain"}, content=content)


@pytest.mark.spec("T-02")
@pytest.mark.parametrize("row", REJECTED, ids=[row["file"] for row in REJECTED])
def test_rejected_fixture_is_400(server: LiveServer, row: dict[str, str]) -> None:
    before = httpx.get(server.url + "/", headers={"Accept": "text/uri-list"}).text
    answer = _request(server, row)
    assert answer.status_code == 400, answer.text
    assert answer.text.strip(), "a 400 carries a message"
    assert "OCCI/1.2" in answer.headers["server"]
    assert httpx.get(server.url + "/", headers={"Accept": "text/uri-list"}).text == before


def test_every_rejected_fixture_is_covered() -> None:
    assert len(REJECTED) == 16
    assert all(Path(FIXTURES / row["file"]).exists() for row in REJECTED)

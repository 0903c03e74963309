"""Conditional requests on entities (issue 8; RFC 9110 §13): ETag, If-Match, If-None-Match.

A live server (anonymous, loopback). The ETag is a content hash of what the entity rendering
shows: the same in every media type, the same after a restart, changed by any change.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import LiveServer, start_server
from .tenancy_helpers import (
    COMPUTE,
    MEDIA,
    NETWORK,
    NETWORKINTERFACE,
    STOP,
    action_body,
    created_location,
    entity_body,
)

JSON = "application/occi+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("conditional"), reconcile_interval=0.0)
    yield live
    live.stop()


@pytest.fixture
def occi(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def create(occi: httpx.Client, title: str = "conditional") -> str:
    return created_location(occi.request(**entity_body(JSON, COMPUTE, {"occi.core.title": title}).request(
        "POST", "/compute/", media=JSON)))


def etag(occi: httpx.Client, location: str, media: str = JSON) -> str:
    response = occi.get(location, headers={"Accept": media})
    assert response.status_code == 200
    value = response.headers["etag"]
    assert value.startswith('"') and value.endswith('"') and len(value) > 10
    return value


def test_the_etag_is_the_same_in_every_rendering_and_changes_with_the_entity(occi: httpx.Client) -> None:
    location = create(occi)
    tags = {media: etag(occi, location, media) for media in MEDIA}
    assert len(set(tags.values())) == 1
    head = occi.head(location)
    assert head.headers["etag"] == tags[JSON]
    # a change of an attribute, of the mixins, of the links changes it
    changed = occi.request(**entity_body(JSON, COMPUTE, {"occi.core.title": "renamed"}).request(
        "POST", location, media=JSON))
    assert changed.status_code == 200
    assert changed.headers["etag"] != tags[JSON]
    assert changed.headers["etag"] == etag(occi, location)
    after_title = etag(occi, location)
    network = created_location(occi.request(**entity_body(JSON, NETWORK).request("POST", "/network/", media=JSON)))
    linked = occi.request(**entity_body(JSON, NETWORKINTERFACE, {"occi.core.source": location,
                                                                 "occi.core.target": network}).request(
        "POST", "/networkinterface/", media=JSON))
    assert linked.status_code == 201
    assert etag(occi, location) != after_title


def test_if_none_match_on_get_is_304(occi: httpx.Client) -> None:
    location = create(occi)
    tag = etag(occi, location)
    for media in MEDIA:
        # twice: the second answer comes from the render cache
        for _ in range(2):
            answer = occi.get(location, headers={"Accept": media, "If-None-Match": tag})
            assert answer.status_code == 304
            assert answer.headers["etag"] == tag
            assert answer.content == b""
    assert occi.get(location, headers={"If-None-Match": f'"other", W/{tag}'}).status_code == 304
    assert occi.get(location, headers={"If-None-Match": "*"}).status_code == 304
    assert occi.get(location, headers={"If-None-Match": '"other"'}).status_code == 200
    assert occi.head(location, headers={"If-None-Match": tag}).status_code == 304


@pytest.mark.parametrize("media", MEDIA)
def test_if_match_on_writes(occi: httpx.Client, media: str) -> None:
    location = create(occi)
    tag = etag(occi, location)
    stale = '"0000000000000000000000000000000000000000"'
    writes = {
        "POST": entity_body(media, COMPUTE, {"occi.core.title": "if-match"}).request("POST", location, media=media),
        "PUT": entity_body(media, COMPUTE, {"occi.core.title": "replaced"}).request("PUT", location, media=media),
        "action": action_body(media, STOP).request("POST", location, media=media, params={"action": "stop"}),
    }
    for name, write in writes.items():
        before = occi.get(location, headers={"Accept": JSON}).json()
        refused = occi.request(**{**write, "headers": [*write["headers"], ("If-Match", stale)]})
        assert refused.status_code == 412, (name, refused.text)
        text = refused.text + refused.headers.get("x-occi-error", "")
        assert "If-Match: the entity has changed; its ETag is now" in text
        assert occi.get(location, headers={"Accept": JSON}).json() == before
        weak = occi.request(**{**write, "headers": [*write["headers"], ("If-Match", "W/" + tag)]})
        assert weak.status_code == 412, "If-Match compares strongly: a weak tag never matches"
        done = occi.request(**{**write, "headers": [*write["headers"], ("If-Match", tag)]})
        assert done.status_code == 200, (name, done.text)
        assert occi.get(location, headers={"Accept": JSON}).json() != before or name == "action"
        tag = etag(occi, location)
    assert occi.delete(location, headers={"If-Match": stale}).status_code == 412
    assert occi.get(location).status_code == 200
    assert occi.delete(location, headers={"If-Match": tag}).status_code == 200
    assert occi.get(location).status_code == 404


def test_if_match_star_and_paths_without_an_entity(occi: httpx.Client) -> None:
    location = create(occi)
    assert occi.delete(location, headers={"If-Match": "*"}).status_code == 200
    missing = "/compute/does-not-exist"
    put = entity_body(JSON, COMPUTE).request("PUT", missing, media=JSON)
    refused = occi.request(**{**put, "headers": [*put["headers"], ("If-Match", "*")]})
    assert refused.status_code == 412
    assert json.loads(refused.text)["message"] == "If-Match: there is no entity at this location"
    assert occi.get(missing).status_code == 404


def test_if_none_match_star_on_a_put_that_creates(occi: httpx.Client) -> None:
    path = "/compute/conditional-create"
    put = entity_body(JSON, COMPUTE, {"occi.core.title": "first"}).request("PUT", path, media=JSON)
    guarded = {**put, "headers": [*put["headers"], ("If-None-Match", "*")]}
    assert occi.request(**guarded).status_code == 201
    again = occi.request(**{**guarded, "content": json.dumps({"kind": COMPUTE,
                                                              "attributes": {"occi.core.title": "second"}})})
    assert again.status_code == 412
    assert json.loads(again.text)["message"] == "If-None-Match: *: an entity exists at this location"
    assert occi.get(path, headers={"Accept": JSON}).json()["attributes"]["occi.core.title"] == "first"


def test_two_writers_with_one_etag_cannot_both_win(tmp_path: Path) -> None:
    """Eight writers hold one ETag and change the cores (a cloud call of 0.3 s each): one wins, the
    others are 412, whether they arrive while the winner's change is queued or still running."""
    slow = start_server(tmp_path / "data", reconcile_interval=0.0, driver_options={"delay": "0.3"})
    try:
        with httpx.Client(base_url=slow.url, timeout=30) as occi:
            location = create(occi)
            deadline = time.monotonic() + 10
            while occi.get(location, headers={"Accept": JSON}).json()["attributes"].get(
                    "occi.compute.state") != "active" and time.monotonic() < deadline:
                time.sleep(0.05)
            tag = etag(occi, location)
        results: list[int] = []
        barrier = threading.Barrier(8)

        def write(i: int) -> None:
            with httpx.Client(base_url=slow.url, timeout=30) as own:
                request = entity_body(JSON, COMPUTE, {"occi.compute.cores": i + 2}).request(
                    "POST", location, media=JSON)
                barrier.wait()
                response = own.request(**{**request, "headers": [*request["headers"], ("If-Match", tag)]})
                results.append(response.status_code)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [200] + [412] * 7
    finally:
        slow.stop()


def test_the_etag_survives_a_restart(tmp_path: Path) -> None:
    first = start_server(tmp_path / "data", reconcile_interval=0.0)
    try:
        with httpx.Client(base_url=first.url, timeout=30) as occi:
            location = create(occi, "restart")
            tags = {media: etag(occi, location, media) for media in MEDIA}
    finally:
        first.stop()
    second = start_server(tmp_path / "data", reconcile_interval=0.0)
    try:
        with httpx.Client(base_url=second.url, timeout=30) as occi:
            assert {media: etag(occi, location, media) for media in MEDIA} == tags
            assert occi.get(location, headers={"If-None-Match": tags[JSON]}).status_code == 304
    finally:
        second.stop()

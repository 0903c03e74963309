"""Roles across tenants (issue 8): an admin sees and changes every tenant, a reader only reads its own.

A live server with Basic authentication; rita is a reader of tenant-a, root an admin (tenant ops).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import LiveServer
from .tenancy_helpers import (
    COMPUTE,
    MEDIA,
    STOP,
    action_body,
    basic_server,
    client,
    created_location,
    entity_body,
    listed,
    locations_body,
    mixin_body,
)

JSON = "application/occi+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = basic_server(tmp_path_factory.mktemp("roles"))
    yield live
    live.stop()


def make_compute(server: LiveServer, user: str, title: str) -> str:
    with client(server, user) as occi:
        return created_location(occi.request(**entity_body(JSON, COMPUTE, {"occi.core.title": title}).request(
            "POST", "/compute/", media=JSON)))


def test_an_admin_sees_and_changes_every_tenant(server: LiveServer) -> None:
    alices = make_compute(server, "alice", "alice-admin-test")
    bobs = make_compute(server, "bob", "bob-admin-test")
    with client(server, "root") as root:
        listing = listed(root.get("/compute/", headers={"Accept": "text/plain"}))
        assert {alices, bobs} <= set(listing)
        assert root.get(alices, headers={"Accept": JSON}).json()["attributes"]["occi.core.title"] == "alice-admin-test"
        changed = root.request(**entity_body(JSON, COMPUTE, {"occi.core.title": "renamed by root"}).request(
            "POST", bobs, media=JSON))
        assert changed.status_code == 200, changed.text
        operations = root.get("/-/operations/", headers={"Accept": "text/uri-list"}).text
    with client(server, "bob") as bob:
        assert bob.get(bobs, headers={"Accept": JSON}).json()["attributes"]["occi.core.title"] == "renamed by root"
        own_operations = bob.get("/-/operations/", headers={"Accept": "text/uri-list"}).text.split()
    assert set(own_operations) <= set(operations.split())
    with client(server, "root") as root:
        assert root.delete(alices).status_code == 200
    with client(server, "alice") as alice:
        assert alice.get(alices).status_code == 404


@pytest.mark.parametrize("media", MEDIA)
@pytest.mark.spec("C-45")
@pytest.mark.spec("H-38")
def test_a_reader_reads_its_tenant_and_writes_nothing(server: LiveServer, media: str) -> None:
    alices = make_compute(server, "alice", f"read-only-{media}")
    bobs = make_compute(server, "bob", f"not-for-rita-{media}")
    with client(server, "alice") as alice:
        before = alice.get(alices, headers={"Accept": JSON}).json()
    with client(server, "rita") as rita:
        assert rita.get(alices, headers={"Accept": media}).status_code == 200
        assert alices in listed(rita.get("/compute/", headers={"Accept": media}))
        assert bobs not in listed(rita.get("/compute/", headers={"Accept": media}))
        assert rita.get(bobs, headers={"Accept": media}).status_code == 404
        writes = [
            entity_body(media, COMPUTE).request("POST", "/compute/", media=media),
            entity_body(media, COMPUTE, {"occi.core.title": "x"}).request("POST", alices, media=media),
            entity_body(media, COMPUTE, {"occi.core.title": "x"}).request("PUT", alices, media=media),
            action_body(media, STOP).request("POST", alices, media=media, params={"action": "stop"}),
            action_body(media, STOP).request("POST", "/compute/", media=media, params={"action": "stop"}),
            {"method": "DELETE", "url": alices, "headers": {"Accept": media}},
            {"method": "DELETE", "url": "/compute/", "headers": {"Accept": media}},
            mixin_body(media, "http://example.org/rita#", "tag", "/rita/").request("POST", "/-/", media=media),
            locations_body(media, [alices]).request("POST", "/-/", media=media),
        ]
        for write in writes:
            answer = rita.request(**write)
            assert answer.status_code == 403, (write["method"], write["url"], answer.text)
            assert "rita may only read (role reader)" in answer.text + answer.headers.get("x-occi-error", "")
    with client(server, "alice") as alice:
        assert alice.get(alices, headers={"Accept": JSON}).json() == before


def test_a_reader_gets_404_not_403_for_another_tenants_entity(server: LiveServer) -> None:
    """Visibility is decided before the role: a reader's write to a hidden entity is 404, like a read."""
    bobs = make_compute(server, "bob", "hidden-from-rita")
    with client(server, "rita") as rita:
        assert rita.delete(bobs).status_code == 404


def test_reader_and_admin_in_one_file(tmp_path: Path) -> None:
    """The roles file decides: without it, rita is a member and may write."""
    live = basic_server(tmp_path)
    try:
        (Path(live.settings.roles or "")).write_text("admin: root\n")
        with client(live, "rita") as rita:
            created = rita.request(**entity_body(JSON, COMPUTE).request("POST", "/compute/", media=JSON))
        assert created.status_code == 201, created.text
    finally:
        live.stop()

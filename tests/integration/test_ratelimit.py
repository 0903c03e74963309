"""Rate limits (issue 8): per principal, per client address for refused credentials, 429 + Retry-After.

Live servers with Basic authentication (or none), limits from the settings; and X-Forwarded-For,
believed only from `forwarded_allow_ips`.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from occipy.config import Settings
from occipy.server import Components

from .conftest import start_server
from .tenancy_helpers import COMPUTE, MEDIA, basic_server, client, entity_body

JSON = "application/occi+json"


def retry_after(response: httpx.Response) -> int:
    value = int(response.headers["retry-after"])
    assert 1 <= value <= 60
    return value


@pytest.mark.parametrize("media", MEDIA)
def test_a_principal_over_its_limit_gets_429_with_retry_after(tmp_path: Path, media: str) -> None:
    server = basic_server(tmp_path, rate_limit="5/minute")
    try:
        with client(server, "alice") as alice, client(server, "bob") as bob:
            assert [alice.get("/-/", headers={"Accept": "text/plain"}).status_code for _ in range(5)] == [200] * 5
            refused = alice.get("/compute/", headers={"Accept": media})
            assert refused.status_code == 429
            retry_after(refused)
            assert refused.headers["content-type"].startswith(media)
            text = refused.text + refused.headers.get("x-occi-error", "")
            assert "alice has made too many requests: at most 5 per 1 minute; try again later" in text
            # another principal has its own counter
            assert bob.get("/-/").status_code == 200
    finally:
        server.stop()


def test_writes_have_their_own_limit(tmp_path: Path) -> None:
    server = basic_server(tmp_path, rate_limit="100/minute", rate_limit_writes="2/minute")
    try:
        with client(server, "alice") as alice:
            create = entity_body(JSON, COMPUTE).request("POST", "/compute/", media=JSON)
            assert [alice.request(**create).status_code for _ in range(2)] == [201, 201]
            refused = alice.request(**create)
            assert refused.status_code == 429
            retry_after(refused)
            assert refused.json()["message"].startswith("alice has made too many requests: at most 2 per 1 minute")
            assert alice.get("/compute/", headers={"Accept": "text/uri-list"}).text.count("/compute/") == 2
            assert alice.get("/-/").status_code == 200  # reads still go
    finally:
        server.stop()


def test_refused_credentials_are_limited_per_address_before_authentication(tmp_path: Path) -> None:
    server = basic_server(tmp_path, rate_limit_auth_failures="3/minute")
    try:
        with httpx.Client(base_url=server.url, auth=("alice", "wrong"), timeout=30) as guesser:
            assert [guesser.get("/-/").status_code for _ in range(3)] == [401] * 3
            blocked = guesser.get("/-/")
            assert blocked.status_code == 429
            retry_after(blocked)
            assert "too many refused credentials from this address" in blocked.text
        # the address is blocked whatever it sends now, good passwords included
        with client(server, "alice") as alice:
            assert alice.get("/-/").status_code == 429
        # requests without credentials are not failures (the 401 asks for them)
    finally:
        server.stop()


def test_missing_credentials_do_not_count_as_failures(tmp_path: Path) -> None:
    server = basic_server(tmp_path, rate_limit_auth_failures="2/minute")
    try:
        assert [httpx.get(server.url + "/-/").status_code for _ in range(5)] == [401] * 5
        with client(server, "alice") as alice:
            assert alice.get("/-/").status_code == 200
    finally:
        server.stop()


def test_anonymous_callers_are_counted_by_address_and_x_forwarded_for_is_not_believed(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", rate_limit="3/minute")
    try:
        # (the start-up check made one request already) four forwarded "clients" share one counter
        statuses = [httpx.get(server.url + "/-/", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
                    for i in range(4)]
        assert statuses[0] == 200 and statuses[-1] == 429
        created = httpx.get(server.url + "/compute/", headers={"X-Forwarded-Proto": "https"})
        assert created.status_code == 429
    finally:
        server.stop()


def test_behind_a_configured_proxy_x_forwarded_for_and_proto_are_believed(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", rate_limit="3/minute", forwarded_allow_ips="127.0.0.1")
    try:
        # each forwarded client has its own counter
        statuses = [httpx.get(server.url + "/-/", headers={"X-Forwarded-For": f"192.0.2.{i}"}).status_code
                    for i in range(6)]
        assert statuses == [200] * 6
        for _ in range(3):
            httpx.get(server.url + "/-/", headers={"X-Forwarded-For": "198.51.100.7"})
        assert httpx.get(server.url + "/-/", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 429
        create = entity_body(JSON, COMPUTE).request("POST", "/compute/", media=JSON)
        created = httpx.request(**{**create, "url": server.url + "/compute/",
                                   "headers": [*create["headers"], ("X-Forwarded-For", "203.0.113.9"),
                                               ("X-Forwarded-Proto", "https")]})
        assert created.status_code == 201
        assert created.headers["location"].startswith("https://")
    finally:
        server.stop()


def test_without_a_proxy_setting_x_forwarded_proto_is_ignored(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        create = entity_body(JSON, COMPUTE).request("POST", "/compute/", media=JSON)
        created = httpx.request(**{**create, "url": server.url + "/compute/",
                                   "headers": [*create["headers"], ("X-Forwarded-Proto", "https")]})
        assert created.status_code == 201
        assert created.headers["location"].startswith("http://127.0.0.1:")
    finally:
        server.stop()


def test_a_rate_limit_that_cannot_be_read_is_refused_at_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, rate_limit="lots")
    with pytest.raises(ValueError) as caught:
        Components(settings)
    assert str(caught.value) == "setting rate_limit: 'lots' is not a rate limit such as '20/second;600/minute'"

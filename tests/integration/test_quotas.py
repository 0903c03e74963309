"""Per-tenant quotas through a live server (issue 8): the config file's tables, 403s, concurrency.

`[quotas]` holds every tenant's limits and `[quotas.tenants.<name>]` a tenant's overrides
(docs/security.md, "Quotas and rate limits").
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from occipy import config

from .conftest import process_server
from .tenancy_helpers import COMPUTE, MEDIA, NETWORK, STORAGE, basic_server, client, entity_body

JSON = "application/occi+json"
CONFIG = """
[quotas]
computes = 5
cores = 8
memory = 16
storage = 100
networks = 1

[quotas.tenants.tenant-b]
computes = 1
networks = -1
"""


def test_quotas_from_the_config_file_per_tenant(tmp_path: Path) -> None:
    path = tmp_path / "occipy.toml"
    path.write_text(CONFIG)
    settings = config.load(config_file=str(path), environ={})
    server = basic_server(tmp_path, quotas=settings.quotas, tenant_quotas=settings.tenant_quotas)
    try:
        with client(server, "alice") as alice, client(server, "bob") as bob:
            def create(occi: httpx.Client, kind: str, path: str, media: str = JSON,
                       **attributes: object) -> httpx.Response:
                return occi.request(**entity_body(media, kind, attributes).request("POST", path, media=media))

            # tenant-b: one compute, networks unlimited; the defaults for the rest
            assert create(bob, COMPUTE, "/compute/").status_code == 201
            refused = create(bob, COMPUTE, "/compute/")
            assert refused.status_code == 403
            assert refused.json()["message"] == ("Quota exceeded for computes: requested 1, but already used 1 of 1 "
                                                 "computes (tenant tenant-b)")
            assert [create(bob, NETWORK, "/network/").status_code for _ in range(3)] == [201] * 3
            # tenant-a: the defaults
            assert create(alice, NETWORK, "/network/").status_code == 201
            assert create(alice, NETWORK, "/network/").status_code == 403
            assert create(alice, STORAGE, "/storage/", **{"occi.storage.size": 90.0}).status_code == 201
            for media in MEDIA:
                over = create(alice, STORAGE, "/storage/", media, **{"occi.storage.size": 20.0})
                assert over.status_code == 403
                text = over.text + over.headers.get("x-occi-error", "")
                assert ("Quota exceeded for storage: requested 20 GiB, but already used 90 GiB of 100 GiB storage"
                        in text)
            assert create(alice, COMPUTE, "/compute/", **{"occi.compute.cores": 6}).status_code == 201
            cores = create(alice, COMPUTE, "/compute/", **{"occi.compute.cores": 4})
            assert cores.status_code == 403
            assert cores.json()["message"].startswith("Quota exceeded for cores: requested 4, but already used 6 of 8")
            assert alice.get("/compute/", headers={"Accept": "text/uri-list"}).text.count("/compute/") == 1
    finally:
        server.stop()


def test_twenty_concurrent_creates_against_a_quota_of_five(tmp_path: Path) -> None:
    server = basic_server(tmp_path, quotas={"computes": 5.0}, driver_options={"delay": "0.1"})
    try:
        statuses: list[int] = []
        barrier = threading.Barrier(20)

        def create() -> None:
            with client(server, "alice") as alice:
                request = entity_body(JSON, COMPUTE).request("POST", "/compute/", media=JSON)
                barrier.wait()
                statuses.append(alice.request(**request).status_code)

        threads = [threading.Thread(target=create) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [201] * 5 + [403] * 15
        with client(server, "alice") as alice:
            assert alice.get("/compute/", headers={"Accept": "text/uri-list"}).text.count("/compute/") == 5
    finally:
        server.stop()


def test_occipy_serve_reads_the_quota_tables(tmp_path: Path) -> None:
    path = tmp_path / "occipy.toml"
    path.write_text("[quotas]\ncomputes = 1\n")
    server = process_server(tmp_path / "data", ["--config", str(path)])
    try:
        body = entity_body(JSON, COMPUTE).request("POST", "/compute/", media=JSON)
        first = httpx.request(**{**body, "url": server.url + "/compute/"})
        second = httpx.request(**{**body, "url": server.url + "/compute/"})
        assert (first.status_code, second.status_code) == (201, 403)
        assert second.json()["message"] == ("Quota exceeded for computes: requested 1, but already used 1 of 1 "
                                            "computes (tenant default)")
    finally:
        server.stop()

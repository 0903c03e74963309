"""GET /metrics on a live server: Prometheus text, requests by route template, method and status
with latency, store commit latency; bounded label values under hostile paths; safe to scrape
while the server is under load; off with the setting `metrics = false`."""

from __future__ import annotations

import re
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from occipy.model.standard import standard_registry
from occipy.observability import metrics
from tests.integration.conftest import LiveServer, start_server

JSON = "application/occi+json"
INFRA = "http://schemas.ogf.org/occi/infrastructure#"


def scrape(server: LiveServer) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    answer = httpx.get(server.url + "/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def test_requests_are_counted_by_route_template(fresh_server: LiveServer) -> None:
    before = scrape(fresh_server)
    created = httpx.post(fresh_server.url + "/compute/", headers={"Content-Type": JSON, "Accept": JSON},
                         json={"kind": INFRA + "compute", "title": "m"})
    assert created.status_code == 201
    path = httpx.URL(created.headers["Location"]).path
    for _ in range(3):
        assert httpx.get(fresh_server.url + path).status_code == 200
    assert httpx.get(fresh_server.url + "/compute/" + str(uuid.uuid4())).status_code == 404
    httpx.get(fresh_server.url + "/mixin/os_tpl/debian-12/")
    after = scrape(fresh_server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    total = "occipy_http_requests_total"
    assert delta(total, method="POST", route="/compute/", status="201") == 1
    # entity ids collapse into one template, whatever the status
    assert delta(total, method="GET", route="/compute/{id}", status="200") == 3
    assert delta(total, method="GET", route="/compute/{id}", status="404") == 1
    assert delta(total, method="GET", route="/{mixin}/", status="200") == 1
    assert delta("occipy_http_request_duration_seconds_count", method="GET", route="/compute/{id}") == 4
    assert delta("occipy_http_request_duration_seconds_sum", method="GET", route="/compute/{id}") > 0
    assert not any(path in str(labels) for labels in after[total])
    # the store committed the create (and the operation's end): its latency is recorded
    assert value(after, "occipy_store_commit_duration_seconds_count", dialect="sqlite") >= 1
    assert value(after, "occipy_store_committed_batches_total", dialect="sqlite") >= 1
    # the definitions the service pipeline will feed are exposed already
    text = httpx.get(fresh_server.url + "/metrics").text
    for name in ("occipy_operations_total", "occipy_operation_duration_seconds", "occipy_driver_call_duration_seconds",
                 "occipy_driver_errors_total", "occipy_entities", "occipy_operations_in_progress",
                 "process_cpu_seconds_total", "occipy_http_requests_in_progress"):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name


def test_hostile_requests_cannot_grow_the_label_set(fresh_server: LiveServer) -> None:
    webdav = ["PROPFIND", "MKCOL", "LOCK", "UNLOCK", "SEARCH", "PURGE", "REPORT", "MOVE", "COPY"]
    with httpx.Client(base_url=fresh_server.url) as client:
        for i in range(60):
            client.get(f"/random-{i}/deep/{uuid.uuid4()}")
            client.get(f"/unbound-{i}/")
            client.request(webdav[i % len(webdav)], "/compute/")
    samples = scrape(fresh_server)
    routes = {dict(labels)["route"] for labels in samples["occipy_http_requests_total"]}
    methods = {dict(labels)["method"] for labels in samples["occipy_http_requests_total"]}
    assert "/{other}" in routes and "/{unbound}/" in routes
    assert not any("random" in route or "unbound-" in route for route in routes)
    assert "other" in methods and not set(webdav) & methods


def test_scrapes_under_load_are_complete(fresh_server: LiveServer) -> None:
    stop = threading.Event()
    failures: list[str] = []

    def load() -> None:
        with httpx.Client(base_url=fresh_server.url) as client:
            while not stop.is_set():
                status = client.get("/compute/", headers={"Accept": JSON}).status_code
                if status != 200:
                    failures.append(str(status))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        counts = []
        for _ in range(20):
            samples = scrape(fresh_server)  # parses: every scrape is well-formed
            counts.append(value(samples, "occipy_http_requests_total", method="GET", route="/compute/", status="200"))
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)
    assert not failures
    assert counts == sorted(counts) and counts[-1] > counts[0]  # counters only grow


def test_metrics_can_be_switched_off(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", metrics=False)
    try:
        assert httpx.get(server.url + "/metrics").status_code == 404
        assert httpx.get(server.url + "/-/").status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize(("path", "template"), [
    ("/", "/"), ("/-/", "/-/"), ("/-/operations/abc", "/-/operations/{id}"), ("/compute/", "/compute/"),
    ("/compute", "/compute/"), ("/compute/1234", "/compute/{id}"), ("/compute/a/b", "/{other}"),
    ("/mixin/os_tpl/", "/{mixin}/"), ("/storagelink/x", "/storagelink/{id}"), ("/whatever/", "/{unbound}/"),
    ("/dashboard/js/app.js", "/dashboard/{file}"), ("/metrics", "/metrics"), ("/-/openapi.json", "/-/openapi.json"),
])
def test_route_templates(path: str, template: str) -> None:
    from occipy.http.app import route_template

    assert route_template(standard_registry(), path) == template


def test_driver_call_and_operation_helpers() -> None:
    before = metrics.REGISTRY.get_sample_value(
        "occipy_driver_errors_total", {"driver": "t", "call": "act", "error": "RuntimeError"}) or 0
    with pytest.raises(RuntimeError), metrics.driver_call("t", "act"):
        raise RuntimeError("cloud down")
    with metrics.driver_call("t", "act"):
        pass
    assert metrics.REGISTRY.get_sample_value(
        "occipy_driver_errors_total", {"driver": "t", "call": "act", "error": "RuntimeError"}) == before + 1
    assert (metrics.REGISTRY.get_sample_value(
        "occipy_driver_call_duration_seconds_count", {"driver": "t", "call": "act"}) or 0) >= 2
    metrics.operation_ended("t", INFRA + "compute", "start", True, 1.5)
    assert metrics.REGISTRY.get_sample_value("occipy_operation_duration_seconds_sum", {
        "driver": "t", "kind": INFRA + "compute", "action": "start", "result": "succeeded"}) >= 1.5
    metrics.set_entity_source(lambda: [(INFRA + "compute", "active", 3)])
    try:
        assert metrics.REGISTRY.get_sample_value(
            "occipy_entities", {"kind": INFRA + "compute", "state": "active"}) == 3
    finally:
        metrics.set_entity_source(None)
    assert re.search(rb"occipy_entities", metrics.exposition())

"""The request metrics' plain-dict tally (observability/metrics.py) exposes what prometheus_client's own
Counter and Histogram expose for the same requests (docs/metrics.md): same names, labels, buckets
(a value on a bound counts in that bucket), counts and sums."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client import generate_latest

from occipy.observability.metrics import _REQUEST_BUCKETS, _RequestTally

ROUTES = st.sampled_from(["/compute/{id}", "/-/", "/compute/"])
REQUESTS = st.lists(st.tuples(st.sampled_from(["GET", "POST"]), ROUTES, st.sampled_from(["200", "404"]),
                              st.one_of(st.sampled_from(list(_REQUEST_BUCKETS)),
                                        st.floats(min_value=0, max_value=30, allow_nan=False))),
                    max_size=40)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@settings(max_examples=60, deadline=None)
@given(REQUESTS)
def test_the_tally_exposes_what_prometheus_client_would(requests: list[tuple[str, str, str, float]]) -> None:
    reference = CollectorRegistry()
    counter = Counter("occipy_http_requests", "h", ["method", "route", "status"], registry=reference)
    histogram = Histogram("occipy_http_request_duration_seconds", "h", ["method", "route"],
                          buckets=_REQUEST_BUCKETS, registry=reference)
    ours = CollectorRegistry()
    tally = _RequestTally(_REQUEST_BUCKETS)
    ours.register(tally)
    for method, route, status, seconds in requests:
        counter.labels(method, route, status).inc()
        histogram.labels(method, route).observe(seconds)
        tally.add(method, route, status, seconds)
    expected, got = _samples(reference), _samples(ours)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) <= 1e-9 * max(1.0, abs(value)), key

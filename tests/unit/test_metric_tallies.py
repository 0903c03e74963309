"""The plain-dict tallies of observability/metrics.py (the request and operation metrics, the
driver call times) expose what prometheus_client's own Counter, Gauge and Histogram expose for the
same events (docs/metrics.md): same names, labels, buckets (a value on a bound counts in that
bucket), counts and sums."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from occipy.observability.metrics import (
    _OPERATION_BUCKETS,
    _REQUEST_BUCKETS,
    _CounterTally,
    _GaugeTally,
    _HistogramTally,
)

ROUTES = st.sampled_from(["/compute/{id}", "/-/", "/compute/"])
REQUESTS = st.lists(st.tuples(st.sampled_from(["GET", "POST"]), ROUTES, st.sampled_from(["200", "404"]),
                              st.one_of(st.sampled_from(list(_REQUEST_BUCKETS)),
                                        st.floats(min_value=0, max_value=30, allow_nan=False))),
                    max_size=40)
# (action, +1 started / -1 ended): what the operations gauge sees.
MOVES = st.lists(st.tuples(st.sampled_from(["create", "start", "delete"]), st.sampled_from([1, -1])), max_size=40)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _same(reference: CollectorRegistry, ours: CollectorRegistry) -> None:
    expected, got = _samples(reference), _samples(ours)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) <= 1e-9 * max(1.0, abs(value)), key


@settings(max_examples=60, deadline=None)
@given(REQUESTS)
def test_counter_and_histogram_tallies_expose_what_prometheus_client_would(
        requests: list[tuple[str, str, str, float]]) -> None:
    reference = CollectorRegistry()
    counter = Counter("occipy_http_requests", "h", ["method", "route", "status"], registry=reference)
    histogram = Histogram("occipy_http_request_duration_seconds", "h", ["method", "route"],
                          buckets=_REQUEST_BUCKETS, registry=reference)
    ours = CollectorRegistry()
    counts = _CounterTally("occipy_http_requests", "h", ["method", "route", "status"])
    durations = _HistogramTally("occipy_http_request_duration_seconds", "h", ["method", "route"], _REQUEST_BUCKETS)
    ours.register(counts)
    ours.register(durations)
    for method, route, status, seconds in requests:
        counter.labels(method, route, status).inc()
        histogram.labels(method, route).observe(seconds)
        counts.inc((method, route, status))
        durations.observe((method, route), seconds)
    _same(reference, ours)


@settings(max_examples=60, deadline=None)
@given(MOVES, st.lists(st.floats(min_value=0, max_value=4000, allow_nan=False), max_size=20))
def test_gauge_tally_and_operation_buckets(moves: list[tuple[str, int]], durations: list[float]) -> None:
    reference = CollectorRegistry()
    gauge = Gauge("occipy_operations_in_progress", "h", ["driver", "kind", "action"], registry=reference)
    histogram = Histogram("occipy_operation_duration_seconds", "h", ["driver"], buckets=_OPERATION_BUCKETS,
                          registry=reference)
    ours = CollectorRegistry()
    in_progress = _GaugeTally("occipy_operations_in_progress", "h", ["driver", "kind", "action"])
    times = _HistogramTally("occipy_operation_duration_seconds", "h", ["driver"], _OPERATION_BUCKETS)
    ours.register(in_progress)
    ours.register(times)
    for action, step in moves:
        gauge.labels("simulated", "", action).inc(step)
        in_progress.inc(("simulated", "", action), step)
    for seconds in durations:
        histogram.labels("simulated").observe(seconds)
        times.observe(("simulated",), seconds)
    _same(reference, ours)

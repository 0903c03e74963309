"""Prometheus metrics of the server: one registry, every metric defined here, fed by any layer.

Imports only prometheus_client, so the model, the service, the store and the drivers may all
import it without breaking the layer contracts. `http/app.py` serves `REGISTRY` at `/metrics`
and wraps the app in `RequestMetrics` (a plain ASGI middleware, no web framework needed here).

Which layer feeds what (docs/metrics.md has the full table):
  http      occipy_http_requests_total, occipy_http_request_duration_seconds, ..._in_progress
  store     occipy_store_commit_duration_seconds, occipy_store_commit_errors_total
  service   occipy_operations_total, occipy_operation_duration_seconds, occipy_operations_in_progress,
            occipy_entities (through `set_entity_source`)
  drivers   occipy_driver_call_duration_seconds, occipy_driver_errors_total (`driver_call`)
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

_go_float: Callable[[float], str] = floatToGoString  # (untyped in prometheus_client)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

_C = TypeVar("_C", bound=Collector)

# `*_created` series double the exposition and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Our own registry (not prometheus_client's global one): what /metrics shows is exactly this.
REGISTRY: Final = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

# Request latencies: a cached GET answers in well under a millisecond, a create waits up to
# sync_wait (0.2 s by default), a slow driver call a few seconds.
_REQUEST_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                           5.0, 10.0)
# Cloud work: seconds to many minutes (an image copy, a slow boot).
_OPERATION_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                             600.0, 1800.0)
_COMMIT_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                          0.5, 1.0)

# ---- HTTP (fed by RequestMetrics) -------------------------------------------------------------

_HTTP_REQUESTS_HELP: Final = "HTTP requests answered, by method, route template and status code."
_HTTP_DURATION_HELP: Final = "Time from the request's arrival to the end of its answer, by method and route template."


class _CounterTally(Collector):
    """A labelled counter counted in a plain dictionary and made into its metric family at scrape
    time. Fed on the event loop thread, where the scrape runs too: a prometheus_client child's
    `inc()` takes a lock and checks its state, a large part of what a request or an operation pays
    for its metrics (docs/metrics.md). The exposition is prometheus_client's `Counter`'s."""

    family: type[CounterMetricFamily | GaugeMetricFamily] = CounterMetricFamily

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.counts: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...], amount: float = 1) -> None:
        counts = self.counts
        counts[key] = counts.get(key, 0) + amount

    def describe(self) -> Iterable[Metric]:
        return [self.family(self.name, self.documentation, labels=self.labels)]

    def collect(self) -> Iterable[Metric]:
        family = self.family(self.name, self.documentation, labels=self.labels)
        for key, count in list(self.counts.items()):
            family.add_metric(list(key), count)
        yield family


class _GaugeTally(_CounterTally):
    """A labelled gauge counted as `_CounterTally` counts (`inc` with a negative amount lowers it);
    exposed as prometheus_client's `Gauge` exposes it."""

    family = GaugeMetricFamily


class _HistogramTally(Collector):
    """A labelled histogram counted as `_CounterTally` counts; exposed as prometheus_client's
    `Histogram` exposes it (a value on a bound counts in that bucket)."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str], buckets: tuple[float, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.buckets = buckets
        self.bucket_labels: tuple[str, ...] = tuple(_go_float(bound) for bound in buckets)  # as Histogram writes them
        # key -> a count per bucket (the last one: above every bound), then the sum
        self.tallies: dict[tuple[str, ...], list[float]] = {}

    def observe(self, key: tuple[str, ...], seconds: float) -> None:
        tally = self.tallies.get(key)
        if tally is None:
            tally = self.tallies[key] = [0.0] * (len(self.buckets) + 2)
        tally[bisect.bisect_left(self.buckets, seconds)] += 1  # a value on a bound counts in it (le)
        tally[-1] += seconds

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labels)]

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, tally in list(self.tallies.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for label, n in zip(self.bucket_labels, tally):
                cumulative += n
                buckets.append((label, cumulative))
            cumulative += tally[len(self.buckets)]
            buckets.append(("+Inf", cumulative))
            family.add_metric(list(key), buckets, tally[-1])
        yield family


def _registered(collector: _C) -> _C:
    REGISTRY.register(collector)
    return collector


HTTP_REQUESTS: Final = _registered(_CounterTally("occipy_http_requests", _HTTP_REQUESTS_HELP,
                                                 ["method", "route", "status"]))
HTTP_DURATION: Final = _registered(_HistogramTally("occipy_http_request_duration_seconds", _HTTP_DURATION_HELP,
                                                   ["method", "route"], _REQUEST_BUCKETS))
HTTP_IN_PROGRESS: Final = Gauge(
    "occipy_http_requests_in_progress", "HTTP requests being answered now.", registry=REGISTRY)
# Counted in a plain int by the middleware (one event loop thread) and read at scrape time: a
# Gauge's inc()/dec() take a lock each, a third of the middleware's cost.
_in_progress = [0]
HTTP_IN_PROGRESS.set_function(lambda: _in_progress[0])

# ---- operations (fed by the service pipeline) -------------------------------------------------

OPERATIONS: Final = _registered(_CounterTally(
    "occipy_operations",
    "Operations (cloud work) that ended, by driver, entity kind, action (create, delete, update or the "
    "action term) and result (succeeded, failed).",
    ["driver", "kind", "action", "result"]))
OPERATION_DURATION: Final = _registered(_HistogramTally(
    "occipy_operation_duration_seconds",
    "Time from an operation's start to its end, by driver, kind, action and result.",
    ["driver", "kind", "action", "result"], _OPERATION_BUCKETS))
OPERATIONS_IN_PROGRESS: Final = _registered(_GaugeTally(
    "occipy_operations_in_progress", "Operations queued or running now, by driver, kind and action.",
    ["driver", "kind", "action"]))

# ---- drivers (fed by the service pipeline around each driver call) ----------------------------

DRIVER_CALL_DURATION: Final = _registered(_HistogramTally(
    "occipy_driver_call_duration_seconds", "Time of one call into the cloud driver, by driver and call.",
    ["driver", "call"], _OPERATION_BUCKETS))
DRIVER_ERRORS: Final = Counter(
    "occipy_driver_errors", "Driver calls that raised, by driver, call and exception class.",
    ["driver", "call", "error"], registry=REGISTRY)

# ---- store (fed by store/sql.py's writer) ----------------------------------------------

STORE_COMMIT_DURATION: Final = Histogram(
    "occipy_store_commit_duration_seconds",
    "Time of one store transaction (a group of batches committed together), by database dialect.",
    ["dialect"], buckets=_COMMIT_BUCKETS, registry=REGISTRY)
STORE_COMMIT_BATCHES: Final = Counter(
    "occipy_store_committed_batches", "Batches committed, by database dialect.", ["dialect"],
    registry=REGISTRY)
STORE_COMMIT_ERRORS: Final = Counter(
    "occipy_store_commit_errors", "Store transactions that failed (and were retried batch by batch).",
    ["dialect"], registry=REGISTRY)


# ---- entities by kind and state: a callback read at scrape time -------------------------------

EntityCounts = Callable[[], Iterable[tuple[str, str, int]]]


class _EntityCollector(Collector):
    """`occipy_entities{kind, state}` from a callback, so nothing is counted between scrapes."""

    def __init__(self) -> None:
        self.source: EntityCounts | None = None

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("occipy_entities", _ENTITIES_HELP, labels=["kind", "state"])]

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("occipy_entities", _ENTITIES_HELP, labels=["kind", "state"])
        source = self.source
        if source is not None:
            for kind, state, count in source():
                family.add_metric([kind, state], count)
        yield family


_ENTITIES_HELP: Final = "Entities stored now, by kind (type id) and state ('' for kinds without a state)."
_ENTITIES: Final = _EntityCollector()
REGISTRY.register(_ENTITIES)


def set_entity_source(source: EntityCounts | None) -> None:
    """Where `occipy_entities` comes from: a cheap callback of (kind, state, count) triples.

    It runs in the scraping request, on the event loop: it must not block (count from memory).
    """
    _ENTITIES.source = source


# ---- helpers ----------------------------------------------------------------------------------


@contextmanager
def driver_call(driver: str, call: str) -> Iterator[None]:
    """Time one driver call; an exception is counted in occipy_driver_errors and re-raised."""
    start = time.perf_counter()
    try:
        yield
    except BaseException as error:
        DRIVER_ERRORS.labels(driver, call, type(error).__name__).inc()
        raise
    finally:
        DRIVER_CALL_DURATION.observe((driver, call), time.perf_counter() - start)


class DriverCallTimer:
    """`driver_call` for one (driver, call), with its labels made once (hot paths):
    `started = timer.start()` before the call, `timer.stop(started, error)` after it."""

    __slots__ = ("call", "driver", "key")

    def __init__(self, driver: str, call: str) -> None:
        self.driver = driver
        self.call = call
        self.key = (driver, call)

    @staticmethod
    def start() -> float:
        return time.perf_counter()

    def stop(self, started: float, error: BaseException | None = None) -> None:
        DRIVER_CALL_DURATION.observe(self.key, time.perf_counter() - started)
        if error is not None:
            DRIVER_ERRORS.labels(self.driver, self.call, type(error).__name__).inc()


def operation_ended(driver: str, kind: str, action: str, succeeded: bool, seconds: float) -> None:
    """Record one operation that ended (the service calls this when it writes the final state)."""
    key = (driver, kind, action, "succeeded" if succeeded else "failed")
    OPERATIONS.inc(key)
    OPERATION_DURATION.observe(key, seconds)


def exposition() -> bytes:
    """The text exposition of every metric (what /metrics answers)."""
    return generate_latest(REGISTRY)


# ---- the request middleware -------------------------------------------------------------------

# Status codes as label values, made once.
_STATUS: Final = {code: str(code) for code in range(100, 600)}
# Any other method token counts as "other": a client cannot grow the label set.
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by method, route template and status.

    `route_of(path)` turns a path into a template with a bounded set of values (entity ids
    collapsed: `/compute/{id}`); it is the caller's, since only the caller knows the URL layout.
    A request that ends without a response start (the client went away) counts as status 499,
    one whose app raised before answering as 500.
    """

    def __init__(self, app: ASGIApp, route_of: Callable[[str], str]) -> None:
        self.app = app
        self.route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 499
        _in_progress[0] += 1

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException:
            if status == 499:
                status = 500
            raise
        finally:
            _in_progress[0] -= 1
            self.record(scope["method"], scope["path"], status, time.perf_counter() - start)

    @staticmethod
    def begin() -> None:
        """A request is in progress (`occipy_http_requests_in_progress`); `record` ends it."""
        _in_progress[0] += 1

    def record(self, method: str, path: str, status: int, seconds: float, *, ended: bool = False) -> None:
        """Count and time one request (`ended`: it was counted in progress by `begin`)."""
        if ended:
            _in_progress[0] -= 1
        if method not in _METHODS:
            method = "other"
        route = self.route_of(path)
        HTTP_REQUESTS.inc((method, route, _STATUS.get(status) or str(status)))
        HTTP_DURATION.observe((method, route), seconds)

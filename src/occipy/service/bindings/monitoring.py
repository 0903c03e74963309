"""The Monitoring draft realised on clouds that measure (`backends.base.Samples`): provider metric
and publisher mixins, values from readings, best-fit timing (docs/monitoring.md).

A collector (sensor -> measured resource) samples its target's cloud object every period; each
metric goes to a channel (monitoring draft §3.6): the value of the metric mixin's `.out`
attribute, by default the metric's name. The sensor publishes the channels' latest values and a
bounded history as attributes (the `publisher#attributes` mixin). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from occipy.backends.base import Reading
from occipy.model.catalogue import DRAFT_04
from occipy.model.category import AttributeDef, AttributeValue, Mixin
from occipy.model.entity import Entity
from occipy.model.extensions import monitoring as mon
from occipy.model.extensions.sla import format_datetime
from occipy.model.registry import Registry

PERIOD_NAMES: Final = {mon.SENSOR: "occi.sensor.period", mon.COLLECTOR: "occi.collector.period"}
GRANULARITY_NAMES: Final = {mon.SENSOR: "occi.sensor.granularity", mon.COLLECTOR: "occi.collector.granularity"}
ACCURACY_NAMES: Final = {mon.SENSOR: "occi.sensor.accuracy", mon.COLLECTOR: "occi.collector.accuracy"}

VALUES: Final = "occipy.monitoring.values"
SAMPLED: Final = "occipy.monitoring.sampled"
HISTORY: Final = "occipy.monitoring.history"
HISTORY_LENGTH: Final = "occipy.monitoring.history.length"
DEFAULT_HISTORY: Final = 20
MAX_HISTORY: Final = 500


@dataclass(frozen=True, slots=True)
class Metric:
    """One thing a collector measures: its term, unit and what it means."""

    term: str
    unit: str
    title: str


# What every sampling cloud can give (those it cannot are left out of a sample).
METRICS: Final[tuple[Metric, ...]] = (
    Metric("availability", "1", "Availability: 1 while the resource runs, 0 otherwise"),
    Metric("response_time", "s", "Response time of the cloud to a reading of the resource"),
    Metric("cpu", "%", "CPU use, percent of the resource's CPUs"),
    Metric("memory", "B", "Memory in use, bytes"),
    Metric("memory_percent", "%", "Memory in use, percent of the resource's memory"),
    Metric("disk_read", "B/s", "Bytes read from disks per second"),
    Metric("disk_write", "B/s", "Bytes written to disks per second"),
    Metric("net_rx", "B/s", "Bytes received per second"),
    Metric("net_tx", "B/s", "Bytes sent per second"),
)
BY_TERM: Final = {metric.term: metric for metric in METRICS}


def channel_attribute(term: str) -> str:
    """The metric mixin attribute naming the channel a metric is written to."""
    return f"occipy.monitoring.{term}.out"


def metric_scheme(provider_scheme: str) -> str:
    return f"{provider_scheme}monitoring/metric#"


def publisher_id(provider_scheme: str) -> str:
    return f"{provider_scheme}monitoring/publisher#attributes"


def provider_mixins(provider_scheme: str) -> list[Mixin]:
    """The metric mixins (collectors) and the attributes publisher (sensors) this server offers.

    Monitoring draft §3.3-§3.5: provider mixins depend on the three tags; profile 1 keeps users
    from defining their own (MON-08).
    """
    mixins = [
        Mixin(scheme=metric_scheme(provider_scheme), term=metric.term, title=metric.title,
              depends=(mon.METRIC,), applies=(mon.COLLECTOR,), location=f"/mixin/metric/{metric.term}/",
              attributes=(AttributeDef(channel_attribute(metric.term), default=metric.term,
                                       description=f"The channel the {metric.term} values ({metric.unit}) "
                                                   "are written to"),))
        for metric in METRICS
    ]
    scheme, _, term = publisher_id(provider_scheme).rpartition("#")
    length_schema = {"$schema": DRAFT_04, "type": "integer", "minimum": 0, "maximum": MAX_HISTORY}
    mixins.append(Mixin(
        scheme=scheme + "#", term=term, title="Publish the measurements as attributes of the sensor",
        depends=(mon.PUBLISHER,), applies=(mon.SENSOR,), location="/mixin/publisher/attributes/",
        attributes=(
            AttributeDef(VALUES, type="object", mutable=False,
                         description="The latest value of each channel"),
            AttributeDef(SAMPLED, mutable=False, description="When the latest value was measured (RFC 3339)"),
            AttributeDef(HISTORY, type="array", mutable=False,
                         description="The latest values, oldest first: {time, channel, value}"),
            AttributeDef(HISTORY_LENGTH, type="number", default=DEFAULT_HISTORY, pattern=length_schema,
                         description=f"How many values the history keeps (0-{MAX_HISTORY})"),
        )))
    return mixins


# ---- what a collector measures -------------------------------------------------------------------


def channels(collector: Entity, registry: Registry, provider_scheme: str) -> dict[str, str]:
    """metric term -> channel of a collector: its metric mixins, or every metric on default channels."""
    scheme = metric_scheme(provider_scheme)
    chosen = [m.rpartition("#")[2] for m in collector.mixins if m.startswith(scheme) and m[len(scheme):] in BY_TERM]
    terms = chosen or [metric.term for metric in METRICS]
    result = {}
    for term in terms:
        value = collector.attributes.get(channel_attribute(term))
        result[term] = value if isinstance(value, str) and value else term
    return result


def values(previous: Reading | None, current: Reading | None, response_time: float) -> dict[str, float]:
    """Metric values from a reading (rates against the previous reading of the same object).

    A missing object (None) is unavailable. Counters that went down (a restart) give no rate.
    """
    if current is None:
        return {"availability": 0.0, "response_time": response_time}
    result = {"availability": 1.0 if current.running else 0.0, "response_time": response_time}
    if current.memory_used_bytes is not None:
        result["memory"] = current.memory_used_bytes
        if current.memory_total_bytes:
            result["memory_percent"] = 100.0 * current.memory_used_bytes / current.memory_total_bytes
    if previous is None or current.taken <= previous.taken:
        return result
    elapsed = current.taken - previous.taken
    pairs = (("cpu", previous.cpu_seconds, current.cpu_seconds), ("disk_read", previous.disk_read_bytes,
             current.disk_read_bytes), ("disk_write", previous.disk_write_bytes, current.disk_write_bytes),
             ("net_rx", previous.net_rx_bytes, current.net_rx_bytes),
             ("net_tx", previous.net_tx_bytes, current.net_tx_bytes))
    for term, before, after in pairs:
        if before is None or after is None or after < before:
            continue
        rate = (after - before) / elapsed
        if term == "cpu":
            rate = 100.0 * rate / max(current.cpus or 1, 1)
        result[term] = round(rate, 6)
    return result


# ---- the sensor's window ------------------------------------------------------------------------


def window(sensor: Entity) -> tuple[float, float] | None:
    """The sensor's operating period as epoch seconds (start, end); None while suspended.

    Monitoring draft §3.1: from timebase + timestart to timebase + timestop; undefined: the
    sensor's lifetime; a negative time base suspends monitoring (MON-06).
    """
    a = sensor.attributes
    start, stop = _seconds(a.get(mon.TIMESTART)), _seconds(a.get(mon.TIMESTOP))
    if mon.TIMEBASE in a:
        try:
            base = mon.parse_timebase(a[mon.TIMEBASE])
        except ValueError:
            return None
        if base is None:
            return None
        origin = base.timestamp()
    else:
        origin = 0.0
    begin = origin + start if start is not None else float("-inf")
    end = origin + stop if stop is not None else float("inf")
    return begin, end


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def period(entity: Entity) -> float | None:
    return _seconds(entity.attributes.get(PERIOD_NAMES.get(entity.kind, "")))


# ---- best fit (MON-03, MON-04) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    """What this server can do: the shortest period, the granularity and the worst accuracy (s)."""

    min_period: float
    granularity: float
    accuracy: float

    def fit(self, kind_id: str, attributes: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
        """The values to write back for a new sensor or collector (monitoring draft §3.1, §3.2).

        "If period, granularity or accuracy cannot be met the server SHOULD NOT fail but SHOULD
        best-fit and write back the values it will actually use; it SHOULD fill undefined
        granularity/accuracy with worst-case values."
        """
        if kind_id not in PERIOD_NAMES:
            return {}
        written: dict[str, AttributeValue] = {}
        period_name = PERIOD_NAMES[kind_id]
        given = _seconds(attributes.get(period_name))
        if given is not None and given < self.min_period:
            written[period_name] = self.min_period
        granularity_name, accuracy_name = GRANULARITY_NAMES[kind_id], ACCURACY_NAMES[kind_id]
        granularity = _seconds(attributes.get(granularity_name))
        if granularity is None or granularity < self.granularity:
            written[granularity_name] = self.granularity
        accuracy = _seconds(attributes.get(accuracy_name))
        if accuracy is None or accuracy < self.accuracy:
            written[accuracy_name] = self.accuracy
        return written


# ---- what the sensor shows -------------------------------------------------------------------------


def published(sensor: Entity, new: Iterable[tuple[float, str, float]], history_source: Sequence[Any] = ()
              ) -> dict[str, AttributeValue]:
    """The publisher's attributes after new (time, channel, value) samples.

    `history_source` are the previous history entries (the attribute's value); the result keeps
    the newest `occipy.monitoring.history.length` of them.
    """
    a = sensor.attributes
    current = a.get(VALUES)
    latest: dict[str, Any] = dict(current) if isinstance(current, dict) else {}
    history = [entry for entry in history_source if isinstance(entry, dict)]
    newest = None
    for taken, channel, value in sorted(new):
        moment = format_datetime_float(taken)
        latest[channel] = value
        history.append({"time": moment, "channel": channel, "value": value})
        newest = moment
    length = _seconds(a.get(HISTORY_LENGTH))
    keep = DEFAULT_HISTORY if length is None else max(0, min(int(length), MAX_HISTORY))
    result: dict[str, AttributeValue] = {VALUES: latest, HISTORY: history[-keep:] if keep else []}
    if newest is not None:
        result[SAMPLED] = newest
    return result


def format_datetime_float(epoch: float) -> str:
    """Epoch seconds as RFC 3339 in UTC, to the second."""
    return format_datetime(datetime.fromtimestamp(epoch, tz=UTC))


__all__ = ["BY_TERM", "METRICS", "Metric", "Timing", "channel_attribute", "channels", "provider_mixins",
           "published", "publisher_id", "values", "window"]

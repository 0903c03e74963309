"""OGF Monitoring extension draft: sensors, collectors and the metric/aggregator/publisher tags.

Kinds `sensor` (a resource) and `collector` (a link from a sensor to the monitored resource);
tag mixins that provider mixins depend on (monitoring-and-extensions.md §1). Profile 1 (§1.5):
users may not define their own mixins under the three tags. Validation: numeric timing values,
the sensor's time window, a collector's source is a sensor (MON-02, MON-05, MON-06).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from occipy.errors import InvalidAttribute
from occipy.model._catalogue_data import EXTENSIONS
from occipy.model.catalogue import DRAFT_04
from occipy.model.category import AttributeDef, AttributeValue
from occipy.model.extensions import _build
from occipy.model.extensions.base import Extension, Feature, LinkEnds, frozen, with_pattern
from occipy.model.extensions.sla import format_datetime, parse_datetime
from occipy.model.registry import Registry

MONITORING = "http://schemas.ogf.org/occi/monitoring#"
SENSOR = MONITORING + "sensor"
COLLECTOR = MONITORING + "collector"
METRIC = MONITORING + "metric"
AGGREGATOR = MONITORING + "aggregator"
PUBLISHER = MONITORING + "publisher"
TIMEBASE = "occi.sensor.timebase"
TIMESTART = "occi.sensor.timestart"
TIMESTOP = "occi.sensor.timestop"
SENSOR_PERIOD = "occi.sensor.period"
COLLECTOR_PERIOD = "occi.collector.period"
# A window that starts this long before the request is still "now": clocks of client and server
# differ, and a client that sends its current time must not be refused (MON-02 is a SHOULD).
GRACE = timedelta(seconds=60)

_DATA = EXTENSIONS["monitoring"]
_EPOCH = re.compile(r"-?\d+(\.\d+)?")
# monitoring-and-extensions.md §1.2: "the demo uses a Unix epoch ... accept both ISO 8601 and epoch
# seconds"; a negative epoch suspends monitoring. Text renderings carry numbers unquoted, so an
# epoch may arrive as a number: the attribute stays a string and takes its decimal text.
_TIMEBASE: Mapping[str, Any] = {"$schema": DRAFT_04, "type": "string",
                                "anyOf": [dict(_build.DATE_TIME_SCHEMA),
                                          {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$"}]}
# name -> (lowest value, whether the lowest value itself is excluded)
_BOUNDS: Mapping[str, tuple[float, bool]] = {
    SENSOR_PERIOD: (0, True), "occi.sensor.granularity": (0, False), "occi.sensor.accuracy": (0, False),
    COLLECTOR_PERIOD: (0, True), "occi.collector.granularity": (0, False), "occi.collector.accuracy": (0, False),
}


def _bounded(adef: AttributeDef) -> AttributeDef:
    low, exclusive = _BOUNDS[adef.name]
    schema: dict[str, Any] = {"$schema": DRAFT_04, "minimum": low}
    if exclusive:
        schema["exclusiveMinimum"] = True  # draft-04 form, as GFD.226 uses draft-04
    return with_pattern(adef, schema)


def _timebase(adef: AttributeDef) -> AttributeDef:
    return with_pattern(adef, _TIMEBASE, description="Base time reference: an RFC 3339 date-time, or epoch "
                        "seconds (negative: monitoring suspended)")


CATEGORIES = _build.categories(_DATA, attribute_fixes={TIMEBASE: _timebase, **{n: _bounded for n in _BOUNDS}})


def parse_timebase(value: object) -> datetime | None:
    """The sensor's time base as an aware datetime; None when it suspends monitoring (negative)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and _EPOCH.fullmatch(value):
        seconds = float(value)
        if seconds < 0:
            return None
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidAttribute(f"attribute {TIMEBASE}: {value} seconds is out of range") from None
    try:
        return parse_datetime(TIMEBASE, value)
    except InvalidAttribute:
        raise InvalidAttribute(f"attribute {TIMEBASE}: {value!r} is neither an RFC 3339 date-time nor "
                               "epoch seconds") from None


def _number(name: str, attributes: Mapping[str, AttributeValue]) -> float | None:
    value = attributes.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidAttribute(f"attribute {name}: expected a number of seconds, got {value!r}")
    return float(value)


def _is(registry: Registry, kind_id: str, wanted: str) -> bool:
    return registry.is_kind(kind_id) and wanted in registry.ancestors(kind_id)


def validate(kind_id: str, mixin_ids: Sequence[str], attributes: Mapping[str, AttributeValue],
             registry: Registry) -> None:
    """Timing values are non-negative seconds, periods positive; a sensor's stop is not before its start."""
    if not (_is(registry, kind_id, SENSOR) or _is(registry, kind_id, COLLECTOR)):
        return
    for name, (low, exclusive) in _BOUNDS.items():
        value = _number(name, attributes)
        if value is not None and (value < low or (exclusive and value == low)):
            raise InvalidAttribute(f"attribute {name}: {value:g} must be {'greater than' if exclusive else 'at least'}"
                                   f" {low} seconds")
    if TIMEBASE in attributes:
        parse_timebase(attributes[TIMEBASE])
    start, stop = _number(TIMESTART, attributes), _number(TIMESTOP, attributes)
    if start is not None and stop is not None and stop < start:
        # monitoring draft §3.1: the server SHOULD reject a sensor "if ... stop precedes start"
        raise InvalidAttribute(f"attribute {TIMESTOP}: {stop:g} precedes {TIMESTART} {start:g}")


def on_create(kind_id: str, mixin_ids: Sequence[str], attributes: Mapping[str, AttributeValue],
              registry: Registry, now: datetime,
              source_attributes: Mapping[str, AttributeValue] | None) -> dict[str, AttributeValue]:
    """A sensor's window must not lie in the past (MON-02); a collector inherits its sensor's period.

    Offsets without a time base count from the creation time, which is written back as the time
    base (the draft: the server writes back the values it will actually use).
    """
    if _is(registry, kind_id, SENSOR):
        return _sensor_window(attributes, now)
    if _is(registry, kind_id, COLLECTOR) and COLLECTOR_PERIOD not in attributes and source_attributes is not None:
        # monitoring-and-extensions.md §1.3: "if absent, inherit the source sensor's occi.sensor.period"
        period = source_attributes.get(SENSOR_PERIOD)
        if isinstance(period, (int, float)) and not isinstance(period, bool):
            return {COLLECTOR_PERIOD: period}
    return {}


def _at(base: datetime, seconds: float, name: str) -> datetime:
    try:
        return base + timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        raise InvalidAttribute(f"attribute {name}: {seconds:g} seconds from the time base is out of range") from None


def _sensor_window(attributes: Mapping[str, AttributeValue], now: datetime) -> dict[str, AttributeValue]:
    start, stop = _number(TIMESTART, attributes), _number(TIMESTOP, attributes)
    written: dict[str, AttributeValue] = {}
    if TIMEBASE in attributes:
        base = parse_timebase(attributes[TIMEBASE])
        if base is None:  # negative time base: suspended, no window to check
            return written
    elif start is None and stop is None:
        return written  # no window: monitoring lasts the sensor's lifetime
    else:
        base = now
        written[TIMEBASE] = format_datetime(now)
    # monitoring draft §3.1: reject "if the operating period lies partly in the past"
    if stop is not None:
        end = _at(base, stop, TIMESTOP)
        if end <= now:
            raise InvalidAttribute(f"attribute {TIMESTOP}: the monitoring window ends at {format_datetime(end)}, "
                                   "which is past")
    begin = _at(base, start or 0, TIMESTART)
    if begin < now - GRACE:
        raise InvalidAttribute(f"attribute {TIMESTART if start is not None else TIMEBASE}: the monitoring window "
                               f"starts at {format_datetime(begin)}, which is past")
    return written


EXTENSION = Extension(
    name="monitoring",
    title="OCCI Monitoring Extension (OGF draft)",
    document="OCCI-WG monitoring draft 2014-2015",
    status="draft",
    categories=CATEGORIES,
    link_ends=frozen({
        # monitoring draft §3.2: "the server MUST reject creation of a collector whose source is
        # not a sensor"; the target is the monitored resource, of any kind.
        COLLECTOR: LinkEnds(sources=(SENSOR,), targets=None),
    }),
    needs=frozen({c.type_id: Feature.MONITORING for c in CATEGORIES}),
    provider_only_parents=frozenset({METRIC, AGGREGATOR, PUBLISHER}),
    validate=validate,
    on_create=on_create,
)

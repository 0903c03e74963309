"""occipy.model.extensions.monitoring: sensor/collector, tag mixins, timing checks and the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from occipy.errors import InvalidAttribute
from occipy.model.catalogue import COMPUTE
from occipy.model.extensions import ExtensionSet, monitoring
from occipy.model.extensions.sla import format_datetime
from occipy.model.registry import LINK, RESOURCE
from occipy.model.standard import standard_registry

REGISTRY = standard_registry()
MON = ExtensionSet((monitoring.EXTENSION,))
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def create(kind: str, attributes: dict[str, object], source: dict[str, object] | None = None) -> dict[str, object]:
    return MON.on_create(kind, (), attributes, REGISTRY, NOW, source)  # type: ignore[arg-type]


def test_kinds_and_tag_mixins() -> None:
    sensor = REGISTRY.kind(monitoring.SENSOR)
    collector = REGISTRY.kind(monitoring.COLLECTOR)
    assert (sensor.parent, sensor.location, sensor.actions) == (RESOURCE, "/sensor/", ())
    assert (collector.parent, collector.location) == (LINK, "/collector/")
    assert REGISTRY.mixin(monitoring.METRIC).applies == (monitoring.COLLECTOR,)
    assert REGISTRY.mixin(monitoring.AGGREGATOR).applies == (monitoring.SENSOR,)
    assert REGISTRY.mixin(monitoring.PUBLISHER).applies == (monitoring.SENSOR,)
    defs = REGISTRY.kind_attribute_defs(monitoring.SENSOR)
    assert defs[monitoring.SENSOR_PERIOD].required
    assert {"occi.sensor.timebase", "occi.sensor.timestart", "occi.sensor.timestop", "occi.sensor.granularity",
            "occi.sensor.accuracy"} <= set(defs)
    assert set(REGISTRY.kind_attribute_defs(monitoring.COLLECTOR)) >= {
        "occi.collector.period", "occi.collector.granularity", "occi.collector.accuracy"}


def test_attribute_patterns_carry_the_bounds() -> None:
    defs = REGISTRY.kind_attribute_defs(monitoring.SENSOR)
    with pytest.raises(InvalidAttribute, match="greater than 0"):
        defs[monitoring.SENSOR_PERIOD].check(0)
    with pytest.raises(InvalidAttribute, match="below the minimum"):
        defs["occi.sensor.accuracy"].check(-1)
    assert defs["occi.sensor.accuracy"].check(0) == 0
    timebase = defs[monitoring.TIMEBASE]
    assert timebase.check("2030-06-01T12:00:00Z") == "2030-06-01T12:00:00Z"
    assert timebase.check("1386925386") == "1386925386"
    assert timebase.check(-1, lenient=True) == "-1"
    with pytest.raises(InvalidAttribute):
        timebase.check("yesterday")


@pytest.mark.parametrize(("kind", "name", "value"), [
    (monitoring.SENSOR, "occi.sensor.period", 0),
    (monitoring.SENSOR, "occi.sensor.period", -5),
    (monitoring.SENSOR, "occi.sensor.granularity", -0.5),
    (monitoring.SENSOR, "occi.sensor.accuracy", -1),
    (monitoring.COLLECTOR, "occi.collector.period", 0),
    (monitoring.COLLECTOR, "occi.collector.granularity", -1),
    (monitoring.SENSOR, "occi.sensor.period", "5"),
])
def test_bad_timing_values_are_refused(kind: str, name: str, value: object) -> None:
    with pytest.raises(InvalidAttribute, match=name):
        MON.validate(kind, (), {name: value}, REGISTRY)  # type: ignore[dict-item]


def test_stop_must_not_precede_start() -> None:
    MON.validate(monitoring.SENSOR, (), {"occi.sensor.period": 5, "occi.sensor.timestart": 10,
                                         "occi.sensor.timestop": 10}, REGISTRY)
    with pytest.raises(InvalidAttribute, match="occi.sensor.timestop: 5 precedes occi.sensor.timestart 10"):
        MON.validate(monitoring.SENSOR, (), {"occi.sensor.timestart": 10, "occi.sensor.timestop": 5}, REGISTRY)


def test_timebase_forms() -> None:
    assert monitoring.parse_timebase("2030-06-01T12:00:00Z") == NOW
    assert monitoring.parse_timebase("1386925386") == datetime(2013, 12, 13, 9, 3, 6, tzinfo=UTC)
    assert monitoring.parse_timebase(1386925386) == datetime(2013, 12, 13, 9, 3, 6, tzinfo=UTC)
    assert monitoring.parse_timebase("-1") is None  # negative: suspended
    for bad in ("P1D", "tomorrow", "1e400", "99999999999999999999"):
        with pytest.raises(InvalidAttribute, match="occi.sensor.timebase"):
            monitoring.parse_timebase(bad)


@given(st.one_of(st.text(max_size=30), st.integers(), st.floats(allow_nan=False)))
def test_timebase_raises_only_invalid_attribute(value: object) -> None:
    try:
        monitoring.parse_timebase(value)
    except InvalidAttribute as exc:
        assert exc.message.startswith("attribute occi.sensor.timebase: ")


def test_validate_leaves_other_kinds_alone() -> None:
    MON.validate(COMPUTE, (), {"occi.sensor.period": -1}, REGISTRY)


# ---- the window at creation -----------------------------------------------------------------

def test_no_window_means_the_sensor_lifetime() -> None:
    assert create(monitoring.SENSOR, {"occi.sensor.period": 5}) == {}


def test_offsets_without_timebase_count_from_now() -> None:
    assert create(monitoring.SENSOR, {"occi.sensor.timestart": 0, "occi.sensor.timestop": 3600}) == {
        monitoring.TIMEBASE: format_datetime(NOW)}


def test_window_in_the_future_is_fine() -> None:
    tomorrow = format_datetime(NOW + timedelta(days=1))
    assert create(monitoring.SENSOR, {monitoring.TIMEBASE: tomorrow, "occi.sensor.timestop": 60}) == {}


def test_window_starting_in_the_past_is_refused() -> None:
    an_hour_ago = format_datetime(NOW - timedelta(hours=1))
    with pytest.raises(InvalidAttribute, match="occi.sensor.timebase: the monitoring window starts"):
        create(monitoring.SENSOR, {monitoring.TIMEBASE: an_hour_ago})
    with pytest.raises(InvalidAttribute, match="occi.sensor.timestart"):
        create(monitoring.SENSOR, {monitoring.TIMEBASE: an_hour_ago, "occi.sensor.timestart": 60})
    # starting late enough is fine even with an old time base
    assert create(monitoring.SENSOR, {monitoring.TIMEBASE: an_hour_ago, "occi.sensor.timestart": 3600}) == {}


def test_window_that_already_ended_is_refused() -> None:
    an_hour_ago = format_datetime(NOW - timedelta(hours=1))
    with pytest.raises(InvalidAttribute, match="occi.sensor.timestop: the monitoring window ends"):
        create(monitoring.SENSOR, {monitoring.TIMEBASE: an_hour_ago, "occi.sensor.timestart": 3600,
                                   "occi.sensor.timestop": 3600})


def test_a_client_clock_a_little_behind_is_not_refused() -> None:
    just_now = format_datetime(NOW - timedelta(seconds=30))
    assert create(monitoring.SENSOR, {monitoring.TIMEBASE: just_now}) == {}


def test_a_suspended_sensor_has_no_window() -> None:
    assert create(monitoring.SENSOR, {monitoring.TIMEBASE: "-1", "occi.sensor.timestop": 1}) == {}


def test_a_window_out_of_range_is_refused_cleanly() -> None:
    with pytest.raises(InvalidAttribute, match="out of range"):
        create(monitoring.SENSOR, {monitoring.TIMEBASE: "9999-12-31T23:59:59Z", "occi.sensor.timestop": 1e12})


# ---- collectors ------------------------------------------------------------------------------

def test_collector_source_must_be_a_sensor() -> None:
    MON.check_link(REGISTRY, monitoring.COLLECTOR, monitoring.SENSOR, COMPUTE)
    MON.check_link(REGISTRY, monitoring.COLLECTOR, monitoring.SENSOR, None)  # an external monitored thing
    with pytest.raises(InvalidAttribute, match="occi.core.source: a collector starts at a sensor, not at a compute"):
        MON.check_link(REGISTRY, monitoring.COLLECTOR, COMPUTE, monitoring.SENSOR)


def test_collector_inherits_the_sensor_period() -> None:
    assert create(monitoring.COLLECTOR, {}, {"occi.sensor.period": 30}) == {monitoring.COLLECTOR_PERIOD: 30}
    assert create(monitoring.COLLECTOR, {monitoring.COLLECTOR_PERIOD: 5}, {"occi.sensor.period": 30}) == {}
    assert create(monitoring.COLLECTOR, {}, {}) == {}


def test_profile_one_keeps_the_tags_for_the_provider() -> None:
    assert monitoring.EXTENSION.provider_only_parents == {monitoring.METRIC, monitoring.AGGREGATOR,
                                                          monitoring.PUBLISHER}

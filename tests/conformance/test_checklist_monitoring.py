"""Checklist MON-* (OGF Monitoring extension draft; conformance-extensions.md part E).

occipy claims profile 1 of the draft (§4): both kinds instantiable, the three tag mixins
discoverable, users may not create mixins under them (docs/extensions.md). Model level,
rendering level (every Monitoring category, a sensor and a collector in text/plain, text/occi
and JSON, parsed back, JSON against the schema) and a live server: a sensor and a collector are
created, read, listed and deleted. What they measure is tested in
tests/integration/test_monitoring_live.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from occipy.errors import InvalidAttribute
from occipy.model.catalogue import COMPUTE
from occipy.model.category import AttributeDef, Mixin
from occipy.model.entity import Entity
from occipy.model.extensions import ExtensionSet, monitoring
from occipy.model.extensions.sla import format_datetime
from occipy.model.registry import LINK, RESOURCE
from occipy.model.standard import standard_registry
from tests.conformance.conftest import JSON, Occi, discovered
from tests.conformance.extension_helpers import (
    MEDIA,
    attributes_of,
    check_categories,
    check_entity,
    ext_server,  # noqa: F401
)

REGISTRY = standard_registry()
MON = ExtensionSet((monitoring.EXTENSION,))
SENSOR, COLLECTOR = monitoring.SENSOR, monitoring.COLLECTOR
TAGS = (monitoring.METRIC, monitoring.AGGREGATOR, monitoring.PUBLISHER)


# --- model level ------------------------------------------------------------------------------
@pytest.mark.spec("MON-01")
def test_kinds_and_mixins() -> None:
    assert REGISTRY.kind(SENSOR).parent == RESOURCE
    assert REGISTRY.kind(COLLECTOR).parent == LINK
    assert REGISTRY.mixin(monitoring.METRIC).applies == (COLLECTOR,)
    assert REGISTRY.mixin(monitoring.AGGREGATOR).applies == (SENSOR,)
    assert REGISTRY.mixin(monitoring.PUBLISHER).applies == (SENSOR,)


@pytest.mark.spec("MON-02")
def test_window_in_the_past_or_reversed_is_refused() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidAttribute, match="occi.sensor.timestop"):
        MON.validate(SENSOR, (), {"occi.sensor.timestart": 60, "occi.sensor.timestop": 30}, REGISTRY)
    with pytest.raises(InvalidAttribute, match="past"):
        MON.on_create(SENSOR, (), {"occi.sensor.timebase": format_datetime(now - timedelta(days=1))}, REGISTRY, now)
    assert MON.on_create(SENSOR, (), {"occi.sensor.timebase": format_datetime(now + timedelta(days=1)),
                                      "occi.sensor.timestop": 3600}, REGISTRY, now) == {}


@pytest.mark.spec("MON-05")
def test_collector_source_must_be_a_sensor() -> None:
    MON.check_link(REGISTRY, COLLECTOR, SENSOR, COMPUTE)
    with pytest.raises(InvalidAttribute, match="occi.core.source"):
        MON.check_link(REGISTRY, COLLECTOR, COMPUTE, COMPUTE)


@pytest.mark.spec("MON-06")
def test_period_is_required_and_a_negative_timebase_suspends() -> None:
    assert REGISTRY.kind_attribute_defs(SENSOR)["occi.sensor.period"].required
    assert monitoring.parse_timebase("-1") is None
    assert MON.on_create(SENSOR, (), {"occi.sensor.period": 5}, REGISTRY, datetime(2030, 1, 1, tzinfo=UTC)) == {}


@pytest.mark.spec("MON-07")
def test_provider_mixins_carry_channels() -> None:
    registry = standard_registry()
    cpu = Mixin(scheme="http://example.com/occi/monitoring/metric#", term="CPUPercent", depends=(monitoring.METRIC,),
                applies=(COLLECTOR,), location="/mixin/metric/cpupercent/",
                attributes=(AttributeDef("com.example.occi.monitoring.CPUPercent.out"),))
    registry.add(cpu)
    defs = registry.attribute_defs(COLLECTOR, [cpu.type_id])
    assert "com.example.occi.monitoring.CPUPercent.out" in defs
    assert registry.depends_on(cpu.type_id, monitoring.METRIC)


@pytest.mark.spec("MON-08")
def test_profile_one() -> None:
    assert monitoring.EXTENSION.provider_only_parents == frozenset(TAGS)
    for tag in TAGS:
        assert REGISTRY.is_mixin(tag)


# --- rendering level --------------------------------------------------------------------------
@pytest.mark.spec("MON-01")
@pytest.mark.parametrize("media", MEDIA)
def test_every_monitoring_category_renders_and_parses_back(media: str) -> None:
    check_categories(monitoring.CATEGORIES, REGISTRY, media)


@pytest.mark.spec("MON-01")
@pytest.mark.parametrize("media", MEDIA)
def test_sensor_and_collector_render_and_parse_back(media: str) -> None:
    sensor = Entity(kind=SENSOR, entity_id="s1111", location="/sensor/s1111",
                    attributes={"occi.sensor.period": 5.0, "occi.sensor.timebase": "1386925386",
                                "occi.sensor.timestart": 0.0, "occi.sensor.timestop": 3600.0})
    collector = Entity(kind=COLLECTOR, entity_id="c1", location="/collector/c1",
                       attributes={"occi.core.source": "/sensor/s1111", "occi.core.source.kind": SENSOR,
                                   "occi.core.target": "/compute/vm1", "occi.core.target.kind": COMPUTE,
                                   "occi.collector.period": 5.0, "occi.collector.accuracy": 0.5})
    sensor = sensor.evolve(links=(collector,))
    check_entity(sensor, REGISTRY, media)
    check_entity(collector, REGISTRY, media)


# --- live server --------------------------------------------------------------------------------
@pytest.mark.spec("MON-01")
@pytest.mark.spec("MON-08")
@pytest.mark.parametrize("media", MEDIA)
def test_discovery_lists_the_kinds_and_the_tags(ext_server: Occi, media: str) -> None:  # noqa: F811
    found = discovered(ext_server.get("/-/", accept=media))
    assert found[SENSOR] == "kind" and found[COLLECTOR] == "kind"
    for tag in TAGS:
        assert found[tag] == "mixin"


@pytest.mark.spec("MON-01")
@pytest.mark.spec("MON-06")
@pytest.mark.parametrize("media", MEDIA)
def test_sensor_and_collector_lifecycle(ext_server: Occi, media: str) -> None:  # noqa: F811
    occi = ext_server
    sensor = occi.create(SENSOR, media, attributes={"occi.sensor.period": 5, "occi.sensor.granularity": 1})
    view = occi.view(sensor, media)
    assert view.kind == SENSOR and view.attributes["occi.sensor.period"] == 5
    vm = occi.compute()
    collector = occi.link(COLLECTOR, sensor, vm, media, attributes={"occi.collector.period": 10})
    assert occi.view(collector, media).attributes["occi.collector.period"] == 10
    assert any(entry["kind"] == COLLECTOR for entry in occi.view(sensor, media).links)
    assert sensor in occi.locations("/sensor/", accept=JSON)
    assert collector in occi.locations("/collector/", accept=JSON)
    # MON-07: deleting a sensor deletes the collectors in its scope
    assert occi.delete(sensor).status_code == 200
    assert occi.get(collector).status_code == 404
    assert occi.delete(vm).status_code == 200


@pytest.mark.spec("MON-06")
def test_sensor_needs_a_period(ext_server: Occi) -> None:  # noqa: F811
    response = ext_server.create_response(SENSOR, attributes={"occi.sensor.granularity": 1})
    assert response.status_code == 400 and "occi.sensor.period" in response.text


@pytest.mark.spec("MON-03")
@pytest.mark.parametrize(("name", "value"), [("occi.sensor.period", 0), ("occi.sensor.accuracy", -1),
                                             ("occi.sensor.timebase", "yesterday")])
def test_bad_timing_values_are_refused_live(ext_server: Occi, name: str, value: object) -> None:  # noqa: F811
    response = ext_server.create_response(SENSOR, attributes={"occi.sensor.period": 5, name: value})
    assert response.status_code == 400, response.text
    assert name in response.text


@pytest.mark.spec("MON-01")
def test_tag_mixins_apply_only_to_their_kind(ext_server: Occi) -> None:  # noqa: F811
    ok = ext_server.create_response(SENSOR, mixins=[monitoring.AGGREGATOR], attributes={"occi.sensor.period": 5})
    assert ok.status_code == 201, ok.text
    refused = ext_server.create_response(SENSOR, mixins=[monitoring.METRIC], attributes={"occi.sensor.period": 5})
    assert refused.status_code == 403  # D-APPLIES


@pytest.mark.spec("MON-05")
def test_collector_from_a_compute_is_refused(ext_server: Occi) -> None:  # noqa: F811
    vm = ext_server.compute()
    other = ext_server.compute()
    response = ext_server.create_response(COLLECTOR, attributes={"occi.core.source": vm, "occi.core.target": other})
    assert response.status_code == 400


@pytest.mark.spec("MON-02")
def test_sensor_window_in_the_past_is_refused(ext_server: Occi) -> None:  # noqa: F811
    yesterday = format_datetime(datetime.now(UTC) - timedelta(days=1))
    response = ext_server.create_response(SENSOR, attributes={"occi.sensor.period": 5,
                                                              "occi.sensor.timebase": yesterday})
    assert response.status_code == 400


@pytest.mark.spec("MON-08")
def test_users_cannot_define_mixins_under_the_tags(ext_server: Occi) -> None:  # noqa: F811
    from tests.conformance.conftest import define_mixin

    response = define_mixin(ext_server, JSON, "http://example.com/occi/tests#mymetric", "/tests/mymetric/",
                            rel=monitoring.METRIC)
    assert response.status_code == 403


@pytest.mark.spec("MON-03")
def test_collector_without_a_period_takes_the_sensor_one(ext_server: Occi) -> None:  # noqa: F811
    sensor = ext_server.create(SENSOR, attributes={"occi.sensor.period": 30})
    vm = ext_server.compute()
    collector = ext_server.link(COLLECTOR, sensor, vm)
    assert attributes_of(ext_server, collector).get("occi.collector.period") == 30


@pytest.mark.spec("MON-04")
def test_undefined_granularity_and_accuracy_get_worst_case_values(ext_server: Occi) -> None:  # noqa: F811
    # The worst case of this server (docs/monitoring.md): granularity = the sampling tick (1 s),
    # accuracy = the tick + the reading timeout (5 s).
    sensor = ext_server.create(SENSOR, attributes={"occi.sensor.period": 5})
    attributes = attributes_of(ext_server, sensor)
    assert attributes["occi.sensor.granularity"] == 1.0 and attributes["occi.sensor.accuracy"] == 6.0
    vm = ext_server.compute()
    collector = ext_server.link(COLLECTOR, sensor, vm, attributes={"occi.collector.accuracy": 30})
    attributes = attributes_of(ext_server, collector)
    assert attributes["occi.collector.granularity"] == 1.0 and attributes["occi.collector.accuracy"] == 30


@pytest.mark.spec("MON-03")
def test_a_period_below_what_the_server_can_do_is_best_fitted(ext_server: Occi) -> None:  # noqa: F811
    sensor = ext_server.create(SENSOR, attributes={"occi.sensor.period": 0.25, "occi.sensor.granularity": 0.1})
    attributes = attributes_of(ext_server, sensor)
    assert attributes["occi.sensor.period"] == 1.0 and attributes["occi.sensor.granularity"] == 1.0

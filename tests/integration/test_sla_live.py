"""SLA terms enforced on a live server (docs/sla.md), on the simulated cloud through HTTP and the SDK.

An accepted agreement with the provider's `availability` term, linked to a compute that a
collector measures, is assessed from the monitoring history: Fulfilled while the compute runs,
Violated (with a message on the agreement) once it is stopped. An agreement whose effectiveUntil
passes is terminated by the server. Enforced terms are discoverable as provider mixins that depend
on `sla#agreement_term`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from occipy.client import Client
from tests.integration.conftest import LiveServer, start_server

AGREEMENT = "http://schemas.ogf.org/occi/sla#agreement"
AGREEMENT_LINK = "http://schemas.ogf.org/occi/sla#agreement_link"
AGREEMENT_TERM = "http://schemas.ogf.org/occi/sla#agreement_term"
SENSOR = "http://schemas.ogf.org/occi/monitoring#sensor"
COLLECTOR = "http://schemas.ogf.org/occi/monitoring#collector"
PROVIDER = "http://occipy.org/occi/"
AVAILABILITY_TERM = PROVIDER + "sla/term#availability"
RESPONSE_TERM = PROVIDER + "sla/term#response_time"
AVAILABILITY_METRIC = PROVIDER + "monitoring/metric#availability"


def eventually(check: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("sla"), monitoring_tick=0.5, sla_interval=0.5)
    yield live
    live.stop()


@pytest.mark.spec("SLA-13")
@pytest.mark.spec("SLA-14")
def test_enforced_terms_are_provider_terms(server: LiveServer) -> None:
    with Client(server.url, media_type="json", timeout=30) as occi:
        model = occi.discover(refresh=True)
        for term in (AVAILABILITY_TERM, RESPONSE_TERM):
            mixin = model.mixin(term)
            assert AGREEMENT_TERM in mixin.depends
            names = [a.name for a in mixin.attributes]
            short = term.rpartition("#")[2]
            assert f"{short}.term.state" in names and f"{short}.term.type" in names


@pytest.mark.spec("SLA-15")
@pytest.mark.spec("SLA-16")
def test_an_availability_term_is_assessed_from_the_monitoring_data(server: LiveServer) -> None:
    with Client(server.url, media_type="json", timeout=30) as occi:
        vm = occi.create("compute", title="under-sla")
        occi.wait_for(vm, state="active", timeout=10, interval=0.05)
        sensor = occi.create(SENSOR, attributes={"occi.sensor.period": 0.5})
        occi.link(sensor, vm, kind=COLLECTOR, mixins=[AVAILABILITY_METRIC])
        agreement = occi.create(AGREEMENT, mixins=[AVAILABILITY_TERM],
                                attributes={"availability.term.uptime": 0.8, "availability.term.window": 4})
        assert occi.get(agreement).attributes["availability.term.state"] == "Undefined"
        occi.trigger(agreement, "accept")
        occi.link(agreement, vm, kind=AGREEMENT_LINK)

        def state() -> str:
            return str(occi.get(agreement).attributes.get("availability.term.state"))

        eventually(lambda: state() == "Fulfilled", 10, "the term to be Fulfilled")
        assert occi.get(agreement).attributes["occipy.agreement.violated"] is False
        occi.trigger(vm, "stop", {"method": "poweroff"})
        eventually(lambda: state() == "Violated", 15, "the term to be Violated after the stop")
        attributes = occi.get(agreement).attributes
        assert attributes["occipy.agreement.violated"] is True
        assert attributes["occipy.agreement.message"].startswith("VIOLATED availability:")
        assert attributes["occi.agreement.state"] == "Accepted"  # GFD.228 §3.1.2: not an agreement state
        occi.trigger(vm, "start")
        eventually(lambda: state() == "Fulfilled", 15, "the term to be Fulfilled again (window of 4 s)")
        occi.delete(agreement)
        occi.delete(sensor)
        occi.delete(vm)


@pytest.mark.spec("SLA-04")
def test_an_agreement_ends_when_effective_until_passes(server: LiveServer) -> None:
    with Client(server.url, media_type="json", timeout=30) as occi:
        until = datetime.now(UTC) + timedelta(seconds=2)
        agreement = occi.create(AGREEMENT, mixins=[AVAILABILITY_TERM],
                                attributes={"occi.agreement.effectiveUntil": rfc3339(until)})
        occi.trigger(agreement, "accept")
        eventually(lambda: occi.get(agreement).attributes["occi.agreement.state"] == "Terminated", 10,
                   "the server to terminate the agreement")
        attributes = occi.get(agreement).attributes
        assert "effectiveUntil" in attributes["occipy.agreement.message"]
        entity = occi.get(agreement)
        assert entity.actions == () or not entity.actions  # a Terminated agreement accepts nothing
        occi.delete(agreement)


def test_a_bad_threshold_is_refused(server: LiveServer) -> None:
    import httpx

    body = {"kind": AGREEMENT, "mixins": [AVAILABILITY_TERM], "attributes": {"availability.term.uptime": 2}}
    response = httpx.post(server.url + "/agreement/", json=body,
                          headers={"Content-Type": "application/occi+json", "Accept": "application/occi+json"})
    assert response.status_code == 400 and "availability.term.uptime" in response.text

"""Background evaluation: collectors sample their targets, SLA terms are assessed, agreements end.

`Monitor` is one start/stop pair the service calls (like the reconcile of `service/cloud.py`),
running one tracked task on this worker. Every `tick` seconds it

- samples each collector whose period has come (monitoring draft §3.2), within its sensor's
  window (§3.1), from the driver's `Samples` protocol; writes the values to the metric history
  (`Batch.put_samples`, pruned to the retention) and publishes them on the sensor (its
  `publisher#attributes` mixin) through the sensor's lane (docs/monitoring.md);
- every `assess_interval` seconds, assesses the enforced terms of accepted agreements from that
  history (GFD.228 §3.1.2; docs/sla.md) and ends (`terminate`) agreements whose effectiveUntil
  has passed; every write goes through the entity's lane, so it never races a client's write.

Nothing here knows a cloud: readings come through `backends.base.Samples`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from occipy.backends.base import Reading, Ref, Samples
from occipy.errors import NotFound, OcciError
from occipy.model.category import AttributeValue
from occipy.model.entity import Entity
from occipy.model.extensions import monitoring as mon
from occipy.model.extensions import sla
from occipy.service.bindings import monitoring as mb
from occipy.service.bindings import sla as sb
from occipy.service.cloud import ActionSpec, Cloud
from occipy.service.queue import Finish
from occipy.store.base import Batch, EntityQuery, MetricHistory, MetricSample, SamplePrune

log = logging.getLogger("occipy.monitor")

# A sampled cloud object: (cloud name, its reference); backend ids are unique only within a cloud.
_Object = tuple[str, Ref]

OWNER = "occipy"


@dataclass(frozen=True, slots=True)
class MonitorOptions:
    tick: float = 1.0  # the sampling resolution: the shortest period and the worst granularity (s)
    sample_timeout: float = 5.0  # a reading that takes longer counts as unavailable
    retention: int = 1000  # samples kept per collector
    max_age: float = 86400.0  # seconds a sample is kept
    assess_interval: float = 10.0  # seconds between two assessments of the SLA terms
    provider_scheme: str = "http://occipy.org/occi/"


@dataclass
class _Collected:
    """What one tick measured for one sensor."""

    sensor: str
    tenant: str
    samples: list[MetricSample] = field(default_factory=list)


# Scale-out: the claim of the one process that samples and assesses (several share a store).
MONITOR_CLAIM: Final = "occipy:monitor"


class Monitor:
    """Sampling, publishing and SLA assessment for every cloud the server fronts; `start()` after the
    clouds, `stop()` before them.

    `clouds[0]` (the default cloud) gives the shared store, lanes and registry; each cloud whose
    driver `Samples` is read for the resources it owns.
    """

    def __init__(self, clouds: Sequence[Cloud], options: MonitorOptions | None = None) -> None:
        if not clouds:
            raise ValueError("a monitor needs at least one cloud")
        self.cloud = clouds[0]
        self.options = options or MonitorOptions()
        # cloud name -> (cloud, its driver as a sampler), for the clouds that can be sampled
        self.samplers: dict[str, tuple[Cloud, Samples]] = {
            cloud.name: (cloud, cloud.driver) for cloud in clouds
            if isinstance(cloud.driver, Samples) and cloud.driver.sampled}
        opts = self.options
        self.timing = mb.Timing(min_period=opts.tick, granularity=opts.tick, accuracy=opts.tick + opts.sample_timeout)
        self._task: asyncio.Task[None] | None = None
        self._sampled: dict[str, float] = {}  # collector location -> when it was last sampled
        self._readings: dict[_Object, Reading] = {}  # the previous reading of each object (for rates)
        self._pruned: dict[str, float] = {}
        self._assessed = 0.0

    # ---- start and stop ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Offer the provider mixins, fit new sensors' timing, start the background task."""
        registry = self.cloud.registry
        mixins = list(sb.provider_mixins(self.options.provider_scheme))
        if self.samplers:
            mixins = mb.provider_mixins(self.options.provider_scheme) + mixins
            for cloud, _ in self.samplers.values():
                cloud.creation_hooks.append(self.timing.fit)
        for mixin in mixins:
            if registry.find(mixin.type_id) is None:
                registry.add(mixin)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="occipy-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def _run(self) -> None:
        while True:
            try:
                await self.tick(time.time())
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad pass is logged; the next tick tries again
                log.exception("monitoring pass failed")
            await asyncio.sleep(self.options.tick)

    async def tick(self, now: float) -> None:
        """One pass: sample what is due, then (every assess_interval) assess the agreements.

        On a store several server processes share, one of them monitors: the one holding the
        monitor claim (taken over by another when it dies; docs/scaleout.md).
        """
        shared = self.cloud.lanes.shared
        if shared is not None and not await shared.claim(MONITOR_CLAIM):
            return
        if self.samplers:
            await self.sample_due(now)
        if now - self._assessed >= self.options.assess_interval:
            self._assessed = now
            await self.assess(now)

    # ---- sampling -----------------------------------------------------------------------------------

    async def sample_due(self, now: float) -> None:
        """Sample every collector whose period has come (within its sensor's window)."""
        store = self.cloud.store
        collected: dict[str, _Collected] = {}
        live: set[str] = set()
        due: list[tuple[Entity, Entity, Entity, _Object]] = []
        for collector in await store.query(EntityQuery(kinds=(mon.COLLECTOR,))):
            live.add(collector.location)
            sensor = await store.get(collector.source or "")
            target = await store.get(collector.target or "")
            if sensor is None or target is None or not self._due(collector, sensor, now):
                continue
            ref = self._ref(target)
            if ref is not None:
                due.append((collector, sensor, target, ref))
        # Each object is read once per pass, all of them at once: a cloud may take its time to
        # answer (Docker's stats API answers at its next one-second collection, docs/drivers/docker.md).
        refs = list(dict.fromkeys(ref for *_, ref in due))
        async with asyncio.TaskGroup() as reads:
            tasks = [reads.create_task(self._read(*ref)) for ref in refs]
        readings = {ref: task.result() for ref, task in zip(refs, tasks, strict=True)}
        for collector, sensor, target, ref in due:
            measured = readings[ref]
            if measured is None:
                continue
            reading, response_time = measured
            self._sampled[collector.location] = now
            values = mb.values(self._readings.get(ref), reading, response_time)
            group = collected.setdefault(sensor.location, _Collected(sensor.location, sensor.tenant))
            taken = reading.taken if reading is not None else now
            for term, channel in mb.channels(collector, self.cloud.registry, self.options.provider_scheme).items():
                if term in values:
                    group.samples.append(MetricSample(
                        collector=collector.location, sensor=sensor.location, target=target.location,
                        channel=channel, metric=term, value=values[term], taken=taken, tenant=collector.tenant))
        for ref, measured in readings.items():
            if measured is not None and measured[0] is not None:
                self._readings[ref] = measured[0]
        for location in list(self._sampled):
            if location not in live:
                del self._sampled[location]
        batch = Batch(put_samples=[s for group in collected.values() for s in group.samples],
                      prune_samples=self._prunes(live, now))
        if batch and isinstance(store, MetricHistory):
            await store.commit(batch)
        for group in collected.values():
            if group.samples:
                await self._publish(group)

    def _due(self, collector: Entity, sensor: Entity, now: float) -> bool:
        span = mb.window(sensor)
        if span is None or not span[0] <= now <= span[1]:
            return False  # suspended (negative time base) or outside the operating period
        period = mb.period(collector) or mb.period(sensor) or self.options.tick
        last = self._sampled.get(collector.location)
        # Half a tick of slack: a period that is a multiple of the tick is kept, not stretched.
        return last is None or now - last >= period - self.options.tick / 2

    def _ref(self, target: Entity) -> _Object | None:
        """The cloud object behind a measured resource, when its cloud's driver can sample its type."""
        for cloud, sampler in self.samplers.values():
            if not cloud.owns(target):
                continue
            binding = cloud.backed(target)
            if binding is None or binding.resource not in sampler.sampled:
                return None
            assert target.backend_id is not None
            return cloud.name, Ref(binding.resource, target.backend_id)
        return None  # a cloud that cannot be sampled

    async def _read(self, cloud: str, ref: Ref) -> tuple[Reading | None, float] | None:
        """(reading, seconds it took); a reading that times out is an unavailable object."""
        sampler = self.samplers[cloud][1]
        started = time.monotonic()
        try:
            reading = await asyncio.wait_for(sampler.sample(ref), self.options.sample_timeout)
        except TimeoutError:
            return None, self.options.sample_timeout
        except OcciError as error:
            log.warning("cannot read %s %s: %s", ref.resource, ref.backend_id, error.message)
            return None
        return reading, time.monotonic() - started

    def _prunes(self, live: set[str], now: float) -> list[SamplePrune]:
        """Each collector's history is pruned once a minute; a deleted collector's history goes."""
        prunes = []
        for location in list(self._pruned):
            if location not in live:
                prunes.append(SamplePrune(location, keep=0))
                del self._pruned[location]
        for location in live:
            if now - self._pruned.get(location, 0.0) >= 60.0:
                self._pruned[location] = now
                prunes.append(SamplePrune(location, keep=self.options.retention, before=now - self.options.max_age))
        return prunes

    async def _publish(self, group: _Collected) -> None:
        """The sensor shows the new values (in its lane; skipped while a client's work runs there)."""
        lanes = self.cloud.lanes
        if lanes.busy(group.sensor):
            return
        spec = PublishSpec(self.cloud, group.samples)
        op = lanes.new_operation(group.sensor, "monitor", group.tenant, OWNER)
        try:
            job = await lanes.submit(op, spec)
            await asyncio.shield(job.done)
        except NotFound:
            pass  # deleted meanwhile

    # ---- SLA assessment --------------------------------------------------------------------------------

    async def assess(self, now: float) -> None:
        """End agreements past effectiveUntil; assess the enforced terms of effective ones."""
        store = self.cloud.store
        moment = datetime.fromtimestamp(now, tz=UTC)
        for agreement in await store.query(EntityQuery(kinds=(sla.AGREEMENT,))):
            state = agreement.attributes.get(sla.STATE)
            try:
                start = _moment(agreement, sla.EFFECTIVE_FROM)
                end = _moment(agreement, sla.EFFECTIVE_UNTIL)
            except OcciError:
                continue
            if end is not None and end < moment and state in ("Accepted", "Suspended"):
                await self._terminate(agreement, end)
                continue
            if state != "Accepted" or (start is not None and start > moment):
                continue
            rules = sb.terms_of(agreement, self.options.provider_scheme)
            if rules:
                await self._assess_terms(agreement, rules, now, moment)

    async def _terminate(self, agreement: Entity, end: datetime) -> None:
        """GFD.228: the agreement's effectiveness ended: `terminate` through its lane."""
        lanes = self.cloud.lanes
        if lanes.busy(agreement.location):
            return
        op = lanes.new_operation(agreement.location, "terminate", agreement.tenant, OWNER)
        message = f"terminated: occi.agreement.effectiveUntil {sla.format_datetime(end)} has passed"
        try:
            job = await lanes.submit(op, ActionSpec(self.cloud, agreement.location, sla.TERMINATE, {}))
            ended = await asyncio.shield(job.done)
            if ended.state == "succeeded":
                await self._write(agreement, {sb.MESSAGE: message}, "assess")
        except NotFound:
            pass
        except OcciError as error:  # e.g. a client moved it meanwhile (409)
            log.info("agreement %s was not terminated: %s", agreement.location, error.message)

    async def _assess_terms(self, agreement: Entity, rules: list[sb.TermRule], now: float, moment: datetime) -> None:
        store = self.cloud.store
        if not isinstance(store, MetricHistory):
            return
        links = (await store.links_from([agreement.location])).get(agreement.location, [])
        targets = [link.target for link in links if link.kind == sla.AGREEMENT_LINK and link.target]
        findings = []
        for rule in rules:
            window = agreement.attributes.get(sb.window_attribute(rule.term))
            seconds = float(window) if isinstance(window, (int, float)) else sb.DEFAULT_WINDOW
            values: list[float] = []
            for target in targets:
                values.extend(s.value for s in await store.samples(target=target, since=now - seconds)
                              if s.metric == rule.metric and s.tenant == agreement.tenant)
            findings.append(sb.assess(agreement, rule, values))
        changes = sb.outcome(agreement, findings, sla.format_datetime(moment), self.options.provider_scheme)
        if sb.changed(agreement, changes):
            await self._write(agreement, changes, "assess")

    async def _write(self, entity: Entity, changes: Mapping[str, AttributeValue], action: str) -> None:
        lanes = self.cloud.lanes
        if lanes.busy(entity.location):
            return
        op = lanes.new_operation(entity.location, action, entity.tenant, OWNER)
        try:
            job = await lanes.submit(op, AttributesSpec(self.cloud, dict(changes)))
            await asyncio.shield(job.done)
        except NotFound:
            pass


def _moment(entity: Entity, name: str) -> datetime | None:
    value = entity.attributes.get(name)
    return sla.parse_datetime(name, value) if value is not None else None


# ---- the jobs (written in the entity's lane, on the entity as it is then) -----------------------------


@dataclass
class AttributesSpec:
    """Set server-managed attributes on an entity, where its kind and mixins define them."""

    cloud_: Cloud
    changes: dict[str, AttributeValue]
    action: str = "assess"
    params: dict[str, Any] = field(default_factory=dict)
    cloud: bool = False

    def prepare(self, entity: Entity | None) -> Entity | None:
        if entity is None:
            raise NotFound("gone")
        return None

    async def run(self, entity: Entity | None) -> Finish:
        registry = self.cloud_.registry

        def finish(latest: Entity | None) -> Batch:
            if latest is None:
                return Batch()
            defs = registry.attribute_defs(latest.kind, latest.mixins)
            values = {name: value for name, value in self.changes.items() if name in defs}
            return Batch(put=[latest.with_attributes(values)]) if values else Batch()

        return finish

    def fail(self, entity: Entity | None, error: OcciError) -> Batch:
        return Batch()

    async def undo(self) -> None:
        return None


@dataclass
class PublishSpec:
    """Publish new samples on their sensor: the latest value per channel and the bounded history."""

    cloud_: Cloud
    samples: list[MetricSample]
    action: str = "monitor"
    params: dict[str, Any] = field(default_factory=dict)
    cloud: bool = False

    def prepare(self, entity: Entity | None) -> Entity | None:
        if entity is None:
            raise NotFound("gone")
        return None

    async def run(self, entity: Entity | None) -> Finish:
        registry = self.cloud_.registry
        publisher = mb.publisher_id(self.cloud_.options.provider_scheme)

        def finish(latest: Entity | None) -> Batch:
            if latest is None:
                return Batch()
            mixins = list(latest.mixins)
            if publisher not in mixins and registry.is_mixin(publisher):
                # The server publishes on every sensor it measures for (docs/monitoring.md).
                mixins.append(publisher)
            sensor = latest.evolve(mixins=mixins)
            defaults = {name: adef.default for name, adef in registry.attribute_defs(sensor.kind, mixins).items()
                        if adef.default is not None and name not in sensor.attributes}
            sensor = sensor.with_attributes(defaults)
            previous = sensor.attributes.get(mb.HISTORY)
            values = mb.published(sensor, [(s.taken, s.channel, s.value) for s in self.samples],
                                  previous if isinstance(previous, list) else [])
            return Batch(put=[sensor.with_attributes(values)])

        return finish

    def fail(self, entity: Entity | None, error: OcciError) -> Batch:
        return Batch()

    async def undo(self) -> None:
        return None


__all__ = ["AttributesSpec", "Monitor", "MonitorOptions", "PublishSpec"]

"""Per-tenant quotas (issue 8): computes, cores, memory, storage size and networks.

A tenant's usage is what its stored entities hold (every compute and network counts, whatever
its state, until it is deleted; `occi.compute.cores`, `occi.compute.memory` and
`occi.storage.size` are summed) plus what requests in flight have reserved. `Ledger.reserve`
checks a request's entities against the tenant's limits and reserves them in one synchronous
step after reading the stored usage, so that concurrent creates cannot together exceed a quota:

- usage is counted per location (an entity both stored and reserved counts once, at the larger
  of its two values: an update that grows a compute counts from the moment it is accepted);
- a reservation released while another request was reading the stored usage still counts for
  that request (its entity may have been written after the read began).

Exceeding a quota is `errors.QuotaExceeded` (403), naming the quota, its limit and the usage,
as Nova does. Imports the model, the store protocol, errors and `options`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from occipy.errors import QuotaExceeded
from occipy.model.entity import Entity
from occipy.model.registry import Registry
from occipy.service.options import QUOTA_NAMES, QuotaSettings
from occipy.store.base import EntityQuery, Store

INFRA: Final = "http://schemas.ogf.org/occi/infrastructure#"
COMPUTE: Final = INFRA + "compute"
STORAGE: Final = INFRA + "storage"
NETWORK: Final = INFRA + "network"
# The unit each quota is counted in (for messages).
UNITS: Final = {"computes": "", "cores": "", "memory": " GiB", "storage": " GiB", "networks": ""}

Usage = dict[str, float]


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value)


def demand_of(registry: Registry, entity: Entity) -> Usage:
    """What one entity counts against its tenant's quotas (empty: nothing)."""
    try:
        ancestors = registry.ancestors(entity.kind)
    except Exception:  # noqa: BLE001  (a kind the registry no longer knows counts for nothing)
        return {}
    attributes = entity.attributes
    if COMPUTE in ancestors:
        return {"computes": 1.0, "cores": _number(attributes.get("occi.compute.cores")),
                "memory": _number(attributes.get("occi.compute.memory"))}
    if STORAGE in ancestors:
        return {"storage": _number(attributes.get("occi.storage.size"))}
    if NETWORK in ancestors:
        return {"networks": 1.0}
    return {}


def release_when_done(reservation: Reservation | None, futures: Iterable[asyncio.Future[Any]]) -> None:
    """Release the reservation once every future (the jobs' `done`) has ended."""
    if reservation is None:
        return
    remaining = set(futures)
    if not remaining:
        reservation.release()
        return

    def ended(future: asyncio.Future[Any]) -> None:
        remaining.discard(future)
        if not remaining:
            reservation.release()

    for future in list(remaining):
        future.add_done_callback(ended)


def _larger(a: Usage | None, b: Usage) -> Usage:
    if a is None:
        return b
    return {name: max(a.get(name, 0.0), b.get(name, 0.0)) for name in {*a, *b}}


def _total(usages: Iterable[Usage]) -> Usage:
    total = dict.fromkeys(QUOTA_NAMES, 0.0)
    for usage in usages:
        for name, value in usage.items():
            total[name] += value
    return total


def _show(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


@dataclass(eq=False)
class Reservation:
    """Usage held by one request until its entities are stored (or it fails): `release()`."""

    ledger: Ledger
    tenant: str
    usage: Mapping[str, Usage]  # location -> what the entity there will count
    released: int | None = None  # the ledger's tick when released

    def release(self) -> None:
        if self.released is None:
            self.ledger._release(self)


@dataclass
class Ledger:
    """The reservations of requests in flight, per tenant (the service runs on one event loop)."""

    _held: dict[str, list[Reservation]] = field(default_factory=dict)
    _ticks: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _reading: dict[int, int] = field(default_factory=dict)  # tick a usage read began -> how many

    async def reserve(self, registry: Registry, store: Store, settings: QuotaSettings, tenant: str,
                      entities: Sequence[Entity]) -> Reservation | None:
        """Check `entities` (new, or the new values of existing ones) against the tenant's quotas
        and hold their usage; None when no quota applies. Raises QuotaExceeded (403)."""
        limits = settings.limits_for(tenant)
        if not limits:
            return None
        wanted = {entity.location: demand_of(registry, entity) for entity in entities}
        wanted = {location: usage for location, usage in wanted.items()
                  if any(usage.get(name, 0.0) for name in limits)}
        if not wanted:
            return None
        began = next(self._ticks)
        self._reading[began] = self._reading.get(began, 0) + 1
        try:
            stored = await store.query(EntityQuery(kinds=_kinds(registry), tenant=tenant))
        finally:
            self._reading[began] -= 1
            if not self._reading[began]:
                del self._reading[began]
            self._prune(tenant)
        # ---- from here to the end: synchronous (no await), so check and reservation are one step ----
        counted: dict[str, Usage] = {entity.location: demand_of(registry, entity) for entity in stored}
        for held in self._held.get(tenant, ()):
            if held.released is not None and held.released <= began:
                continue  # released before the read began: its entities are in `stored` (or gone)
            for location, usage in held.usage.items():
                counted[location] = _larger(counted.get(location), usage)
        before = _total(counted.values())
        for location, usage in wanted.items():
            counted[location] = _larger(counted.get(location), usage)
        after = _total(counted.values())
        for name, limit in limits.items():
            if after[name] > limit and after[name] > before[name]:
                unit = UNITS[name]
                # Nova: "Quota exceeded for cores: Requested 4, but already used 18 of 20 cores"
                raise QuotaExceeded(f"Quota exceeded for {name}: requested {_show(after[name] - before[name])}{unit}, "
                                    f"but already used {_show(before[name])}{unit} of {_show(limit)}{unit} {name} "
                                    f"(tenant {tenant})")
        reservation = Reservation(self, tenant, wanted)
        self._held.setdefault(tenant, []).append(reservation)
        return reservation

    def _release(self, reservation: Reservation) -> None:
        reservation.released = next(self._ticks)
        self._prune(reservation.tenant)

    def _prune(self, tenant: str) -> None:
        # A released reservation is kept while a read that began before its release is running.
        oldest = min(self._reading, default=None)
        kept = [r for r in self._held.get(tenant, ())
                if r.released is None or (oldest is not None and r.released > oldest)]
        if kept:
            self._held[tenant] = kept
        else:
            self._held.pop(tenant, None)

    def held(self, tenant: str) -> int:
        """How many reservations of the tenant are kept (for tests)."""
        return len(self._held.get(tenant, ()))


def _kinds(registry: Registry) -> tuple[str, ...]:
    roots = (COMPUTE, STORAGE, NETWORK)
    return tuple(kind.type_id for kind in registry.kinds()
                 if any(root in registry.ancestors(kind.type_id) for root in roots))


def release_all(reservations: Iterable[Reservation | None]) -> None:
    for reservation in reservations:
        if reservation is not None:
            reservation.release()


__all__ = ["Ledger", "Reservation", "demand_of", "release_all", "release_when_done"]

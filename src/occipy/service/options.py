"""Behaviour switches of the service, settable from the server configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final


# ---- issue 8 (tenancy branch): quotas and rate limits ------------------------------------------------

# The quotas a tenant can have (docs/security.md, "Quotas and rate limits"): how many compute and
# network resources, and the sums of occi.compute.cores, occi.compute.memory (GiB) and
# occi.storage.size (GiB) over its resources.
QUOTA_NAMES: Final = ("computes", "cores", "memory", "storage", "networks")


@dataclass(frozen=True, slots=True)
class QuotaSettings:
    """Per-tenant limits: `defaults` for every tenant, `tenants[name]` overrides (a quota missing
    from both, or negative, is unlimited)."""

    defaults: Mapping[str, float] = field(default_factory=dict)
    tenants: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def limits_for(self, tenant: str) -> dict[str, float]:
        """The limited quotas of one tenant: name -> limit."""
        merged = {**self.defaults, **self.tenants.get(tenant, {})}
        return {name: limit for name, limit in merged.items() if limit >= 0}


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Limits in the `limits` notation, `;`-separated: "20/second;600/minute" ("": none).

    `requests`: every request of one principal; `writes`: its POST, PUT, PATCH and DELETE requests
    (on top of `requests`); `auth_failures`: requests with refused credentials from one client
    address (then 429 before authentication is tried).
    """

    requests: str = ""
    writes: str = ""
    auth_failures: str = ""


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    # How long a request waits for a long operation before answering with the in-flight state.
    sync_wait: float = 0.2
    # How long a DELETE waits for the cloud to delete (D-DELETE-DURABLE): GFD.223 clients expect a
    # GET after a 200 to be 404; a slower cloud's entity stays visible as being deleted.
    delete_wait: float = 30.0
    # Largest page size a client may ask for (GFD.223 §6: larger -> 413).
    max_page: int = 1000
    # DELETE on the root `/` deletes everything: refused unless enabled (http-protocol.md §6.9).
    allow_delete_root: bool = False
    # Scheme of provider templates offered by the driver.
    provider_scheme: str = "http://occipy.org/occi/"
    # A text/occi answer whose largest header would exceed this is refused with 406 (GFD.185 §3.6.6).
    max_header_value: int = 65536
    # Seconds between two reconcile passes for drivers whose cloud can change on its own.
    reconcile_interval: float = 30.0
    # How long a `save` action waits for the new template: its answer must render it (GFD.224 §3.1).
    save_timeout: float = 300.0
    # [monitoring] docs/monitoring.md, docs/sla.md: the sampling resolution (s; the shortest period),
    # samples kept per collector, their maximum age (s), seconds between two SLA assessments.
    monitoring_tick: float = 1.0
    monitoring_retention: int = 1000
    monitoring_max_age: float = 86400.0
    sla_interval: float = 10.0
    # issue 8 (tenancy branch): per-tenant quotas, per-principal rate limits
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    # ---- issue 12: the event stream (GET /-/events) ----
    # Seconds of silence after which a stream sends a keep-alive comment (proxies close idle streams).
    events_keepalive: float = 15.0
    # Seconds between two reads of the event log for other processes' events (this process's
    # commits wake the streams at once).
    events_poll: float = 1.0

"""Docker's container statistics as a monitoring reading (the Docker driver's `Samples`).

`reading()` maps one document of `GET /containers/{id}/stats?stream=false` (the engine's
`ContainerStats`, cgroup v1 or v2) and the container's inspect data to a `base.Reading`. Pure:
no SDK, no I/O, no clock; `docker.py` makes the call. Imports only `backends.base`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from occipy.backends.base import Reading

# The engine's answer for a container that is not running: the zero time, empty sections.
_NO_READ: Final = "0001-01-01T00:00:00Z"


def reading(stats: Mapping[str, Any] | None, attrs: Mapping[str, Any], taken: float) -> Reading:
    """One reading of a container: `stats` is its stats document (None: not asked, the container
    is not running), `attrs` its inspect data (state and limits), `taken` the time of the call.

    cgroup v1 and v2 differ in the memory and block I/O sections (moby `daemon/stats*_unix.go`
    `statsV1`/`statsV2`); both are handled here. A container that is paused is not running but
    still reports its counters.
    """
    state = attrs.get("State") or {}
    running = state.get("Status") == "running"
    host = attrs.get("HostConfig") or {}
    # Not asked (not running), or it stopped between the inspect and the stats call: the engine
    # then answers with the zero time and empty sections.
    if not stats or stats.get("read") == _NO_READ:
        # A stopped container holds no memory and reports no counters (the next start begins at 0).
        return Reading(taken=taken, running=running, cpus=_limit_cpus(host),
                       memory_used_bytes=0.0 if not running else None,
                       memory_total_bytes=float(host["Memory"]) if host.get("Memory") else None)
    cpu = stats.get("cpu_stats") or {}
    usage = cpu.get("cpu_usage") or {}
    total_ns = usage.get("total_usage")
    memory = stats.get("memory_stats") or {}
    blkio = stats.get("blkio_stats")
    return Reading(
        taken=taken, running=running,
        cpu_seconds=total_ns / 1e9 if isinstance(total_ns, (int, float)) else None,
        cpus=_cpus(cpu, host),
        memory_used_bytes=_memory_used(memory),
        memory_total_bytes=float(memory["limit"]) if memory.get("limit") else None,
        disk_read_bytes=_blkio(blkio, "read"), disk_write_bytes=_blkio(blkio, "write"),
        net_rx_bytes=_network(stats.get("networks"), "rx_bytes"),
        net_tx_bytes=_network(stats.get("networks"), "tx_bytes"))


def _limit_cpus(host: Mapping[str, Any]) -> int | None:
    """The CPUs a container may use by its limit (`--cpus` or a CFS quota), rounded up; None: no limit."""
    nano = host.get("NanoCpus") or 0
    if nano > 0:
        return max(1, math.ceil(nano / 1e9))
    quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 100_000
    if quota > 0:
        return max(1, math.ceil(quota / period))
    return None


def _cpus(cpu: Mapping[str, Any], host: Mapping[str, Any]) -> int | None:
    """The container's CPUs: its limit, at most the CPUs online (the metric is a percent of them)."""
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or ()) or None
    limit = _limit_cpus(host)
    if limit is not None and online is not None:
        return min(limit, int(online))
    return limit if limit is not None else (int(online) if online is not None else None)


def _memory_used(memory: Mapping[str, Any]) -> float | None:
    """Usage without the page cache that can be dropped, as the `docker stats` CLI shows it.

    docs.docker.com, `docker container stats`: "the cache usage is defined as the value of
    total_inactive_file field in the memory.stat file on cgroup v1 hosts. On Docker 19.03 and
    older, the cache usage was defined as the value of cache field. On cgroup v2 hosts, the
    cache usage is defined as the value of inactive_file field."
    """
    usage = memory.get("usage")
    if not isinstance(usage, (int, float)):
        return None
    stats = memory.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):  # v1 first: v1 also has inactive_file
        cache = stats.get(key)
        if isinstance(cache, (int, float)):
            return float(usage - cache) if cache < usage else float(usage)
    return float(usage)


def _blkio(blkio: Mapping[str, Any] | None, op: str) -> float | None:
    """Bytes read or written, summed over the devices.

    cgroup v1 lists ops "Read", "Write", "Sync", "Async", "Discard", "Total" per device; v2 only
    "read" and "write". A section without entries (null: no I/O yet) counts 0.
    """
    if blkio is None:
        return None
    entries: Sequence[Mapping[str, Any]] = blkio.get("io_service_bytes_recursive") or ()
    return float(sum(e.get("value") or 0 for e in entries if str(e.get("op", "")).lower() == op))


def _network(networks: Mapping[str, Mapping[str, Any]] | None, field: str) -> float | None:
    """Summed over the container's interfaces; None without a network (`--network none`)."""
    if not networks:
        return None
    return float(sum(interface.get(field) or 0 for interface in networks.values()))


__all__ = ["reading"]

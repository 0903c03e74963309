"""The Docker driver's stats document -> reading mapping (`backends/_docker_stats.py`), without an engine.

`V1` was recorded from the test dockerd of this repository (tests/services/dockerd.py: Docker
20.10.24, API 1.41, on a cgroup v1 host) for a busybox compute of one core and 0.25 GiB after a
shell loop and a 4 MiB `dd` with fsync (the page cache it left is `total_inactive_file`; this
host's kernel accounts no block I/O, so the blkio lists are empty). `STOPPED` is the same
engine's answer for that container once stopped. `V2` has the shape a cgroup v2 host's engine answers with (moby `daemon/stats_unix.go`
`statsV2`: lower-case block I/O ops, no `percpu_usage`, v2 `memory.stat` keys such as
`inactive_file` and no `total_*`, the other block I/O lists null); its values are made up.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from occipy.backends._docker_stats import reading
from occipy.backends.base import Reading
from occipy.service.bindings.monitoring import values

GIB = 1024**3
TAKEN = 1_765_000_000.0

# docker inspect: the parts the mapping reads.
RUNNING_1CPU: dict[str, Any] = {
    "State": {"Status": "running", "Running": True, "Paused": False},
    "HostConfig": {"CpuPeriod": 100000, "CpuQuota": 100000, "NanoCpus": 0, "Memory": 268435456},
}

# GET /containers/{id}/stats?stream=false&one-shot=true, as recorded (cgroup v1).
V1: dict[str, Any] = json.loads("""
{"read": "2026-12-06T16:41:24.939866686Z", "preread": "0001-01-01T00:00:00Z", "pids_stats": {"current": 3},
"blkio_stats": {"io_service_bytes_recursive": [], "io_serviced_recursive": [], "io_queue_recursive": [],
"io_service_time_recursive": [], "io_wait_time_recursive": [], "io_merged_recursive": [], "io_time_recursive":
[], "sectors_recursive": []}, "num_procs": 0, "storage_stats": {}, "cpu_stats": {"cpu_usage": {"total_usage":
108718275, "percpu_usage": [17154211, 91564064], "usage_in_kernelmode": 0, "usage_in_usermode": 100000000},
"system_cpu_usage": 32600240000000, "online_cpus": 2, "throttling_data": {"periods": 3, "throttled_periods":
0, "throttled_time": 0}}, "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
"usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
"memory_stats": {"usage": 5222400, "max_usage": 5451776, "stats": {"active_anon": 12288, "active_file": 0,
"cache": 4194304, "dirty": 0, "hierarchical_memory_limit": 268435456, "hierarchical_memsw_limit": 268435456,
"inactive_anon": 151552, "inactive_file": 4194304, "mapped_file": 0, "pgfault": 1830, "pgmajfault": 0,
"pgpgin": 1384, "pgpgout": 1280, "rss": 163840, "rss_huge": 0, "total_active_anon": 12288,
"total_active_file": 0, "total_cache": 4194304, "total_dirty": 0, "total_inactive_anon": 151552,
"total_inactive_file": 4194304, "total_mapped_file": 0, "total_pgfault": 1830, "total_pgmajfault": 0,
"total_pgpgin": 1384, "total_pgpgout": 1280, "total_rss": 163840, "total_rss_huge": 0, "total_unevictable": 0,
"total_writeback": 0, "unevictable": 0, "writeback": 0}, "limit": 268435456}, "name": "/mon-v1", "id":
"0bfce96b33fd3d5a817091e9986ecececd60507fefad995f5c9a1bda35c2824e", "networks": {"eth0": {"rx_bytes": 200,
"rx_packets": 2, "rx_errors": 0, "rx_dropped": 0, "tx_bytes": 0, "tx_packets": 0, "tx_errors": 0,
"tx_dropped": 0}}}
""")

V2: dict[str, Any] = {
    "read": "2026-12-06T16:45:01.123456789Z",
    "preread": "0001-01-01T00:00:00Z",
    "pids_stats": {"current": 3, "limit": 4915},
    "blkio_stats": {
        "io_service_bytes_recursive": [
            {"major": 8, "minor": 0, "op": "read", "value": 1048576},
            {"major": 8, "minor": 0, "op": "write", "value": 4096},
            {"major": 253, "minor": 0, "op": "read", "value": 524288},
            {"major": 253, "minor": 0, "op": "write", "value": 0},
        ],
        "io_serviced_recursive": None,
        "io_queue_recursive": None,
        "io_service_time_recursive": None,
        "io_wait_time_recursive": None,
        "io_merged_recursive": None,
        "io_time_recursive": None,
        "sectors_recursive": None,
    },
    "num_procs": 0,
    "storage_stats": {},
    "cpu_stats": {
        "cpu_usage": {"total_usage": 1234567000, "usage_in_kernelmode": 234567000, "usage_in_usermode": 1000000000},
        "system_cpu_usage": 98765430000000,
        "online_cpus": 4,
        "throttling_data": {"periods": 120, "throttled_periods": 3, "throttled_time": 45000000},
    },
    "precpu_stats": {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    },
    "memory_stats": {
        "usage": 9437184,
        "stats": {
            "active_anon": 4096, "active_file": 1048576, "anon": 5242880, "anon_thp": 0, "file": 3145728,
            "file_dirty": 0, "file_mapped": 1048576, "file_writeback": 0, "inactive_anon": 5234688,
            "inactive_file": 2097152, "kernel_stack": 49152, "pgactivate": 0, "pgdeactivate": 0, "pgfault": 2310,
            "pglazyfree": 0, "pglazyfreed": 0, "pgmajfault": 0, "pgrefill": 0, "pgscan": 0, "pgsteal": 0,
            "shmem": 0, "slab": 409600, "slab_reclaimable": 204800, "slab_unreclaimable": 204800, "sock": 0,
            "thp_collapse_alloc": 0, "thp_fault_alloc": 0, "unevictable": 0, "workingset_activate": 0,
            "workingset_nodereclaim": 0, "workingset_refault": 0,
        },
        "limit": 268435456,
    },
    "name": "/mon-v2",
    "id": "5d0c2e4a9b1f",
    "networks": {
        "eth0": {"rx_bytes": 1296, "rx_packets": 16, "rx_errors": 0, "rx_dropped": 0,
                 "tx_bytes": 0, "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0},
        "eth1": {"rx_bytes": 200, "rx_packets": 2, "rx_errors": 0, "rx_dropped": 0,
                 "tx_bytes": 100, "tx_packets": 1, "tx_errors": 0, "tx_dropped": 0},
    },
}

STOPPED: dict[str, Any] = json.loads("""
{"read": "0001-01-01T00:00:00Z", "preread": "0001-01-01T00:00:00Z", "pids_stats": {}, "blkio_stats":
{"io_service_bytes_recursive": null, "io_serviced_recursive": null, "io_queue_recursive": null,
"io_service_time_recursive": null, "io_wait_time_recursive": null, "io_merged_recursive": null,
"io_time_recursive": null, "sectors_recursive": null}, "num_procs": 0, "storage_stats": {}, "cpu_stats":
{"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data":
{"periods": 0, "throttled_periods": 0, "throttled_time": 0}}, "precpu_stats": {"cpu_usage": {"total_usage": 0,
"usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0,
"throttled_time": 0}}, "memory_stats": {}, "name": "/mon-v1", "id":
"0bfce96b33fd3d5a817091e9986ecececd60507fefad995f5c9a1bda35c2824e"}
""")


def test_cgroup_v1_document() -> None:
    assert reading(V1, RUNNING_1CPU, TAKEN) == Reading(
        taken=TAKEN, running=True,
        cpu_seconds=0.108718275,
        cpus=1,  # the one-core quota; 2 online
        memory_used_bytes=5222400.0 - 4194304.0,  # usage - total_inactive_file (the 4 MiB dd wrote)
        memory_total_bytes=268435456.0,
        disk_read_bytes=0.0, disk_write_bytes=0.0,  # an empty list: nothing accounted
        net_rx_bytes=200.0, net_tx_bytes=0.0)


def test_cgroup_v2_document() -> None:
    got = reading(V2, {"State": {"Status": "running"}, "HostConfig": {"NanoCpus": 1_500_000_000}}, TAKEN)
    assert got == Reading(
        taken=TAKEN, running=True,
        cpu_seconds=1.234567,  # usage_usec x 1000 in ns
        cpus=2,  # --cpus 1.5 rounds up; 4 online
        memory_used_bytes=9437184.0 - 2097152.0,  # usage - inactive_file
        memory_total_bytes=268435456.0,
        disk_read_bytes=1048576.0 + 524288.0, disk_write_bytes=4096.0,
        net_rx_bytes=1496.0, net_tx_bytes=100.0)


def test_v2_without_block_io_counts_zero_and_without_network_none() -> None:
    document = copy.deepcopy(V2)
    document["blkio_stats"]["io_service_bytes_recursive"] = None  # no io.stat entries yet
    del document["networks"]  # --network none
    got = reading(document, {"State": {"Status": "running"}, "HostConfig": {}}, TAKEN)
    assert got.disk_read_bytes == 0.0 and got.disk_write_bytes == 0.0
    assert got.net_rx_bytes is None and got.net_tx_bytes is None
    assert got.cpus == 4  # no limit: the CPUs online


def test_v1_prefers_total_inactive_file_and_ignores_other_ops() -> None:
    document = {
        "read": "2026-12-06T16:45:01Z",
        "cpu_stats": {"cpu_usage": {"total_usage": 5_000_000_000, "percpu_usage": [3_000_000_000, 2_000_000_000]}},
        "memory_stats": {"usage": 10_000, "limit": 20_000,
                         "stats": {"cache": 4_000, "inactive_file": 1_000, "total_inactive_file": 3_000}},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 8, "minor": 0, "op": "Read", "value": 10}, {"major": 8, "minor": 0, "op": "Write", "value": 20},
            {"major": 8, "minor": 0, "op": "Sync", "value": 30}, {"major": 8, "minor": 0, "op": "Async", "value": 0},
            {"major": 8, "minor": 0, "op": "Discard", "value": 0}, {"major": 8, "minor": 0, "op": "Total", "value": 30}]},
        "networks": {"eth0": {"rx_bytes": 7, "tx_bytes": 9}},
    }
    got = reading(document, {"State": {"Status": "running"}, "HostConfig": {"CpuQuota": 300000, "CpuPeriod": 100000}},
                  TAKEN)
    assert got.memory_used_bytes == 7_000.0  # usage - total_inactive_file (not cache, not inactive_file)
    assert got.disk_read_bytes == 10.0 and got.disk_write_bytes == 20.0  # Sync/Total are not added
    assert got.cpu_seconds == 5.0
    assert got.cpus == 2  # a 3-core quota on 2 CPUs (no online_cpus: the percpu list)


def test_inactive_file_above_usage_leaves_usage() -> None:
    got = reading({"read": "x", "memory_stats": {"usage": 100, "stats": {"inactive_file": 500}}},
                  {"State": {"Status": "running"}}, TAKEN)
    assert got.memory_used_bytes == 100.0


def test_a_paused_container_is_not_running_but_read() -> None:
    got = reading(V2, {"State": {"Status": "paused"}, "HostConfig": {}}, TAKEN)
    assert not got.running and got.cpu_seconds == 1.234567 and got.memory_used_bytes == 7340032.0


def test_a_container_that_is_not_running_has_no_counters() -> None:
    attrs = {"State": {"Status": "exited"}, "HostConfig": RUNNING_1CPU["HostConfig"]}
    expected = Reading(taken=TAKEN, running=False, cpus=1, memory_used_bytes=0.0, memory_total_bytes=268435456.0)
    assert reading(None, attrs, TAKEN) == expected
    # Stopped between the inspect and the stats call: the engine's empty answer.
    assert reading(STOPPED, attrs, TAKEN) == expected


def test_two_readings_give_the_service_its_rates() -> None:
    # What a collector publishes from two v2 readings 2 s apart (service/bindings/monitoring.py).
    later = copy.deepcopy(V2)
    later["cpu_stats"]["cpu_usage"]["total_usage"] += 1_000_000_000  # 1 s of CPU in 2 s
    later["networks"]["eth0"]["rx_bytes"] += 4096
    attrs = {"State": {"Status": "running"}, "HostConfig": {"NanoCpus": 1_000_000_000}}
    got = values(reading(V2, attrs, TAKEN), reading(later, attrs, TAKEN + 2.0), 0.01)
    assert got["cpu"] == pytest.approx(50.0)  # of the container's one CPU
    assert got["net_rx"] == pytest.approx(2048.0)
    assert got["availability"] == 1.0 and got["memory_percent"] == pytest.approx(100 * 7340032 / 268435456)

"""CPU of one reconcile pass per entity (docs/performance.md, 2026-12-07 08:30; D-RECONCILE-SHARE):
N computes created on the durable SQLite store with the simulated cloud (delay 0), then one
`Cloud.reconcile_all()` without its rests (RECONCILE_REST = 0), timed with the process's CPU clock.

    .venv/bin/python bench/probes/reconcile_cost.py [N]      (N: 20000 by default)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from service_cpu import create_group, durable_service

from occipy.service import cloud as cloud_module


async def main(count: int) -> None:
    async with durable_service() as service:
        for _ in range(count // 50):
            await create_group(service, 50)
        cloud_module.RECONCILE_REST = 0.0  # type: ignore[misc]
        cloud = service.env.cloud.default
        started, wall = time.process_time(), time.perf_counter()
        worked = await cloud.reconcile_all()
        cpu = time.process_time() - started
        print(f"reconcile over {count} computes: {cpu:.2f} s CPU ({cpu / count * 1e6:.1f} us each), "
              f"{time.perf_counter() - wall:.2f} s wall, {worked:.2f} s worked; the next pass "
              f"{cloud_module.reconcile_pause(30.0, worked):.0f} s later at reconcile_interval 30")

if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))

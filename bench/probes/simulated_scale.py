"""What one delete and one disk attachment cost the simulated cloud (the default driver) as it
holds more objects (docs/performance.md, 2026-12-07 09:00): N computes, N volumes, N disk
attachments and N network interfaces (200 a network) made, then 500 disk attachments, 500
interfaces (each needs a MAC address no other holds) and 500 deletes (a compute with its disk and
its interface) timed with the process's CPU clock, microseconds each.

    .venv/bin/python bench/probes/simulated_scale.py [N ...]      (N: 1000 10000 100000 by default)
Run it with PYTHONPATH=<other checkout>/src for an A/B.
"""

from __future__ import annotations

import sys
import time

import uvloop

from occipy.backends.base import (
    COMPUTE,
    ComputeSpec,
    NetworkInterfaceSpec,
    NetworkSpec,
    Ref,
    StorageLinkSpec,
    StorageSpec,
)
from occipy.backends.simulated import SimulatedDriver

TIMED = 500


async def main(sizes: list[int]) -> None:
    for count in sizes:
        driver = SimulatedDriver(delay=0, seed=1)
        computes = [(await driver.create(ComputeSpec(name=f"vm{i}"))).backend_id for i in range(count + TIMED)]
        volumes = [(await driver.create(StorageSpec(name=f"v{i}", size_gib=1))).backend_id
                   for i in range(count + TIMED)]
        for i in range(count):
            await driver.create(StorageLinkSpec(name=f"l{i}", compute_id=computes[i], storage_id=volumes[i]))
        networks = [(await driver.create(NetworkSpec(name=f"n{i}"))).backend_id
                    for i in range((count + TIMED) // 200 + 1)]
        for i in range(count):
            await driver.create(NetworkInterfaceSpec(name=f"i{i}", compute_id=computes[i], network_id=networks[i // 200]))
        started = time.process_time()
        for i in range(count, count + TIMED):
            await driver.create(StorageLinkSpec(name=f"l{i}", compute_id=computes[i], storage_id=volumes[i]))
        attach = (time.process_time() - started) / TIMED * 1e6
        started = time.process_time()
        for i in range(count, count + TIMED):
            await driver.create(NetworkInterfaceSpec(name=f"i{i}", compute_id=computes[i], network_id=networks[i // 200]))
        interface = (time.process_time() - started) / TIMED * 1e6
        started = time.process_time()
        for i in range(TIMED):
            await driver.delete(Ref(COMPUTE, computes[i]))
        delete = (time.process_time() - started) / TIMED * 1e6
        print(f"{count:>8,} of each: attach a disk {attach:8.1f} us, an interface {interface:8.1f} us, "
              f"delete a compute {delete:8.1f} us")


if __name__ == "__main__":
    uvloop.run(main([int(a) for a in sys.argv[1:]] or [1_000, 10_000, 100_000]))

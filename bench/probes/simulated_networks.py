"""What creating one network costs the simulated cloud (the default driver) as it holds more: N
networks made from its address pool, then 100 more timed with the process's CPU clock,
microseconds each (each new one takes the next /24 of 10.10.0.0-10.255.255.0 that overlaps no
existing network).

    .venv/bin/python bench/probes/simulated_networks.py [N ...]      (N: 1000 5000 10000 by default)
Run it with PYTHONPATH=<other checkout>/src for an A/B.
"""

from __future__ import annotations

import sys
import time

import uvloop

from occipy.backends.base import NetworkSpec
from occipy.backends.simulated import SimulatedDriver

TIMED = 100


async def main(sizes: list[int]) -> None:
    for count in sizes:
        driver = SimulatedDriver(delay=0, seed=1)
        for i in range(count):
            await driver.create(NetworkSpec(name=f"n{i}", entity_id=f"e{i}"))
        started = time.process_time()
        for i in range(TIMED):
            await driver.create(NetworkSpec(name=f"m{i}", entity_id=f"f{i}"))
        each = (time.process_time() - started) / TIMED * 1e6
        print(f"{count:>8,} networks: create one more {each:10.1f} us")


if __name__ == "__main__":
    uvloop.run(main([int(a) for a in sys.argv[1:]] or [1_000, 5_000, 10_000]))

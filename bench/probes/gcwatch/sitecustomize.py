"""Loaded by a server started with this directory on PYTHONPATH (bench/probes/gc_objects.sh): counts
Python's garbage collections per generation, their CPU time and their longest pause, and how many
objects the collector tracks. Every 2 s it appends one line to $GCWATCH_OUT, and every 20 s the
types it tracks most."""

import collections
import gc
import os
import threading
import time

_OUT = os.environ.get("GCWATCH_OUT", f"/tmp/gcwatch.{os.getpid()}")
_stats = {generation: [0, 0.0, 0.0] for generation in (0, 1, 2)}  # count, CPU s, longest s
_began = [0.0]


def _callback(phase: str, info: dict) -> None:
    if phase == "start":
        _began[0] = time.thread_time()
        return
    took = time.thread_time() - _began[0]
    stats = _stats[info["generation"]]
    stats[0] += 1
    stats[1] += took
    stats[2] = max(stats[2], took)


def _report() -> None:
    turn = 0
    while True:
        time.sleep(2)
        turn += 1
        line = " ".join(f"gen{g}: {n} in {cpu * 1e3:.0f} ms, longest {longest * 1e3:.1f} ms"
                        for g, (n, cpu, longest) in _stats.items())
        with open(_OUT, "a", encoding="utf-8") as out:
            out.write(f"{time.time():.0f} {line}; tracked {len(gc.get_objects())}\n")
            if turn % 10 == 0:
                common = collections.Counter(type(o).__name__ for o in gc.get_objects()).most_common(8)
                out.write(f"  most tracked: {common}\n")


gc.callbacks.append(_callback)
threading.Thread(target=_report, name="gcwatch", daemon=True).start()

"""CPU of `Lanes._note_work` (every cloud job notes when it ended) once many entries have expired
(docs/performance.md, 2026-12-07 08:00): 34,000 entities worked on (make bench's 10,000 seeded
computes and its creates), 30 s later all of them expired at once, then one note per request.
A fake clock; the microseconds per note of the 2,000 notes after the expiry.

    .venv/bin/python bench/probes/recent_work.py
Run it with PYTHONPATH=<other checkout>/src for an A/B.
"""

from __future__ import annotations

import time

from occipy.service import queue
from occipy.service.queue import Lanes
from occipy.store.memory import MemoryStore

now = [1000.0]
queue.time.monotonic = lambda: now[0]  # type: ignore[attr-defined]
lanes = Lanes(MemoryStore(), 0.2)
for i in range(34_000):
    lanes._note_work(f"/compute/{i:032x}")
now[0] += queue.RECENT_WORK + 1
started = time.perf_counter()
lanes._note_work("/compute/expiry")
expiry = time.perf_counter() - started
started = time.perf_counter()
for i in range(2_000):
    lanes._note_work(f"/compute/after-{i}")
    now[0] += 0.001
print(f"the note that forgot 34,000: {expiry * 1000:.1f} ms; then {(time.perf_counter() - started) / 2000 * 1e6:.2f} us a note")

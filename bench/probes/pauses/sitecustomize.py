"""Loaded by `bench/probes/pauses.sh` (PYTHONPATH) into the server: records every request the
service took more than 3 ms to answer and every cyclic-collector pass over 2 ms, with their times,
and writes them to $PAUSES_OUT.<pid> on SIGUSR2. Costs a perf_counter pair per request."""

from __future__ import annotations

import gc
import os
import signal
import time
from typing import Any

_T0 = time.perf_counter()
_LOG: list[tuple[float, str, float, str]] = []
_started: list[float] = [0.0]


def _record(kind: str, start: float, seconds: float, what: str) -> None:
    _LOG.append((start - _T0, kind, seconds * 1000, what))


def _collector(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    seconds = time.perf_counter() - _started[0]
    if seconds > 0.002:
        _record(f"gc{info['generation']}", _started[0], seconds, f"collected={info.get('collected')}")


def _timed_handle() -> None:
    from occipy.service import pipeline

    handle = pipeline.Service.handle

    async def timed(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await handle(self, request, *args, **kwargs)
        finally:
            seconds = time.perf_counter() - start
            if seconds > 0.003:
                _record("request", start, seconds, f"{request.method} {request.path}")

    pipeline.Service.handle = timed  # type: ignore[method-assign]


def _dump(*_: Any) -> None:
    _record("dump", time.perf_counter(), 0.0, "")
    with open(f"{os.environ['PAUSES_OUT']}.{os.getpid()}", "w") as out:
        for at, kind, ms, what in _LOG:
            out.write(f"{at:.4f} {kind} {ms:.2f} {what}\n")


if os.environ.get("PAUSES_OUT"):
    gc.callbacks.append(_collector)
    _timed_handle()
    signal.signal(signal.SIGUSR2, _dump)

"""CPU time of the app (Starlette + service) per single-entity JSON GET, metrics on and off.

Calls the ASGI app in-process (no sockets, no uvicorn), so other load on the machine barely moves
the figure: `process_time` counts this process's CPU only. Run by bench/metrics_cost.sh.

    .venv/bin/python bench/metrics_inprocess.py [requests-per-run]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from occipy.config import Settings
from occipy.http.app import create_app
from occipy.server import Components

JSON = b"application/occi+json"


async def call(app: Any, method: str, path: str, body: bytes = b"", headers: tuple[tuple[bytes, bytes], ...] = ()) -> list[Any]:
    messages: list[Any] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1:8080"), (b"accept", JSON), *headers],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8080)}
    await app(scope, receive, send)
    return messages


async def main(count: int) -> None:
    settings = replace(Settings(), data_dir=Path(tempfile.mkdtemp()), driver_options={"delay": "0"})
    components = Components(settings)
    await components.open()
    try:
        apps = {True: create_app(components.service, metrics=True), False: create_app(components.service, metrics=False)}
        body = json.dumps({"kind": "http://schemas.ogf.org/occi/infrastructure#compute", "title": "x"}).encode()
        answer = await call(apps[False], "POST", "/compute/", body,
                            ((b"content-type", JSON), (b"content-length", str(len(body)).encode())))
        location = dict(answer[0]["headers"])[b"location"].decode().split("8080", 1)[1]
        totals = {True: 0.0, False: 0.0}
        for _ in range(3):
            for metrics in (True, False):
                app = apps[metrics]
                for _ in range(count // 10):
                    await call(app, "GET", location)
                start = time.process_time()
                for _ in range(count):
                    await call(app, "GET", location)
                totals[metrics] += time.process_time() - start
        on, off = (totals[m] / (3 * count) * 1e6 for m in (True, False))
        print(f"in-process app, metrics on : {on:6.1f} us CPU/request")
        print(f"in-process app, metrics off: {off:6.1f} us CPU/request")
        print(f"in-process ratio on/off: {on / off:.3f} (+{on - off:.1f} us)")
    finally:
        await components.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))

"""Seed an occipy server with N Compute resources for `make bench`, fast, and say which to use.

Creates them with JSON collection creates (`POST /compute/` with `{"resources": [...]}`, one
store transaction per batch) over a few concurrent connections, then checks the server lists
exactly N computes. Prints one JSON object on stdout: count, seconds, and the paths of two seeded
computes: `get_path` (read by the single-entity GET scenario) and `action_path` (the start/stop
scenario changes its state). Uses httpx only: nothing of occipy.

    python bench/seed.py --url http://127.0.0.1:8080 --count 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

import httpx

COMPUTE = "http://schemas.ogf.org/occi/infrastructure#compute"
JSON = "application/occi+json"


def batch_body(start: int, size: int) -> bytes:
    resources = [
        {"kind": COMPUTE, "attributes": {"occi.core.title": f"seed-{i}", "occi.compute.cores": 1 + i % 4,
                                          "occi.compute.memory": float(1 + i % 8)}}
        for i in range(start, start + size)
    ]
    return json.dumps({"resources": resources}).encode()


async def seed(url: str, count: int, batch: int, connections: int) -> dict[str, object]:
    starts = list(range(0, count, batch))
    locations: dict[int, list[str]] = {}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for start in starts:
            queue.put_nowait(start)

        async def worker() -> None:
            while not queue.empty():
                start = queue.get_nowait()
                size = min(batch, count - start)
                reply = await client.post("/compute/", content=batch_body(start, size),
                                          headers={"Content-Type": JSON, "Accept": JSON})
                if reply.status_code != 201:
                    raise SystemExit(f"seed: POST /compute/ gave {reply.status_code}: {reply.text[:300]}")
                created = reply.json()
                if len(created) != size:
                    raise SystemExit(f"seed: asked for {size} computes, the server reported {len(created)}")
                locations[start] = created

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        seconds = time.perf_counter() - began
        listing = await client.get("/compute/", headers={"Accept": "text/uri-list"})
        listed = [line for line in listing.text.splitlines() if line and not line.startswith("#")]
    if len(listed) != count:
        raise SystemExit(f"seed: the server lists {len(listed)} computes, expected exactly {count} "
                         "(seed an empty data dir)")
    first = locations[starts[0]]
    return {"count": count, "seconds": round(seconds, 2), "get_path": urlsplit(first[0]).path,
            "action_path": urlsplit(first[1]).path}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="base URL of the occipy server")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=250, help="computes per collection create")
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    if args.count < 2:
        parser.error("--count must be at least 2")
    result = asyncio.run(seed(args.url.rstrip("/"), args.count, args.batch, args.connections))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

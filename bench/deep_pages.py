"""Deep pages in the store alone (issue 11, store/_pages.py): page anchors against a plain OFFSET.

Seeds N computes into a fresh SQLite file (or the PostgreSQL database of --url, whose entities
are replaced), then times `SqlStore.query` (a page of 100 entities, what a JSON listing reads) at
several depths, with page anchors (the default) and with a plain OFFSET (an anchor step larger
than any offset), in the same process; also the first request (the walk that makes the anchors)
and a page right after a delete (late, at 25 %, near the start: what is walked again).

    .venv/bin/python bench/deep_pages.py --count 1000000
Prints a JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from occipy.model.catalogue import COMPUTE
from occipy.store.base import Batch, EntityQuery
from occipy.store.sql import SqlStore, make_engine

ATTRIBUTES = json.dumps({"occi.compute.state": "active", "occi.compute.cores": 2, "occi.compute.memory": 4.0})


def seed(url: str, count: int) -> None:
    """`count` computes straight into the entities table (the store made the schema)."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM entity_mixins"))
            conn.execute(sa.text("DELETE FROM entities"))
            insert = sa.text("INSERT INTO entities (location, entity_id, kind, owner, tenant, mixins, attributes, "
                             "created, updated, version) VALUES (:l, :i, :k, 'anonymous', 'default', '[]', :a, 1, 1, 1)")
            for start in range(0, count, 50_000):
                conn.execute(insert, [{"l": f"/compute/c-{n:08d}", "i": f"c-{n:08d}", "k": COMPUTE, "a": ATTRIBUTES}
                                      for n in range(start, min(start + 50_000, count))])
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("ANALYZE entities"))
    finally:
        engine.dispose()


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"p50_ms": round(statistics.median(ordered) * 1e3, 3),
            "p99_ms": round(ordered[max(int(len(ordered) * 0.99) - 1, 0)] * 1e3, 3)}


async def timed(store: SqlStore, query: EntityQuery, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        store._queries.clear()  # SQLite keeps listings until a write: measure the read, not that cache
        started = time.perf_counter()
        found = await store.query(query)
        times.append(time.perf_counter() - started)
        assert len(found) == query.limit, (query, len(found))
    return times


async def measure(url: str, count: int, rounds: int) -> dict[str, Any]:
    anchored, plain = SqlStore(url), SqlStore(url, page_anchor_step=10**12)
    await anchored.open()
    await plain.open()
    try:
        seed(url, count)
        result: dict[str, Any] = {"entities": count, "url": url.split("@")[-1]}
        for name, fraction in (("page_1", 0.0), ("middle", 0.5), ("90pct", 0.9)):
            # The page before the round offset, as `bench/scale.py` asks (page=5000: OFFSET 499,900):
            # 900 rows past the anchor, the most a page of 100 skips.
            query = EntityQuery(kinds=(COMPUTE,), offset=max(int(count * fraction) // 100 * 100 - 100, 0), limit=100)
            first = (await timed(anchored, query, 1))[0]
            row: dict[str, Any] = {"offset": query.offset, "anchors_first_ms": round(first * 1e3, 2)}
            await timed(plain, query, max(rounds // 10, 2))
            row["plain_offset"] = summary(await timed(plain, query, rounds))
            row["anchors"] = summary(await timed(anchored, query, rounds))
            result[name] = row
        deep = EntityQuery(kinds=(COMPUTE,), offset=count // 2 // 100 * 100 - 100, limit=100)
        # A delete after the page keeps its anchors (the deletion log says where it was) ...
        await anchored.commit(Batch(delete=[f"/compute/c-{count * 95 // 100:08d}"]))
        result["middle_after_a_late_delete_ms"] = round((await timed(anchored, deep, 1))[0] * 1e3, 2)
        # ... one before the page keeps the anchors before it, and walks again from there.
        await anchored.commit(Batch(delete=[f"/compute/c-{count // 4:08d}"]))
        result["middle_after_a_delete_at_25pct_ms"] = round((await timed(anchored, deep, 1))[0] * 1e3, 2)
        await anchored.commit(Batch(delete=["/compute/c-00000001"]))
        result["middle_after_a_delete_of_the_second_ms"] = round((await timed(anchored, deep, 1))[0] * 1e3, 2)
        return result
    finally:
        await anchored.close()
        await plain.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000, help="computes to seed")
    parser.add_argument("--rounds", type=int, default=200, help="timed requests per page and mode")
    parser.add_argument("--url", default=None, help="a PostgreSQL URL (default: a fresh SQLite file)")
    options = parser.parse_args()
    url = options.url or f"sqlite:///{tempfile.mkdtemp(prefix='occipy-pages-')}/occipy.db"
    report = {"loadavg_start": open("/proc/loadavg").read().split()[:3]}  # noqa: SIM115
    report.update(asyncio.run(measure(url, options.count, options.rounds)))
    report["loadavg_end"] = open("/proc/loadavg").read().split()[:3]  # noqa: SIM115
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Scale-out benchmark (docs/performance.md, "Cost as the store grows" and "Several workers").

Starts a private PostgreSQL (tests/services/postgres.py), and for each size N in --sizes:
seeds N computes straight into the store's tables (COPY of rows shaped like the ones the server
writes, from one compute the server created), starts `occipy serve` on that database, and
measures: start-up time (process start to the first answer), resident memory after start-up and
after the measured requests, and for a single GET, a page of 100 (first, middle and 90 %-deep page; the first request of each apart) and an
attribute filter on an indexed attribute (a page of 100): p50/p99 latency from one client and the
server's CPU time per request. With --workers it then runs wrk against 1 and 2 workers (GET of one
compute and durable creation; in the order 1, 2, 2, 1, each run on a fresh database) and reports
the server CPU per request of each, and against two servers of which wrk loads one (the CPU of
both counted: what coordination costs, without the contention of two busy servers on two cores).

    .venv/bin/python bench/scale.py --sizes 1,1000,100000,1000000 --workers
Prints a JSON document (also written to --out).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.services.postgres import PostgresServer, start_postgres

COMPUTE = "http://schemas.ogf.org/occi/infrastructure#compute"
JSON = "application/occi+json"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def preemptions(pids: list[int]) -> int:
    """Times the processes' threads were taken off a CPU while they could still run (involuntary
    context switches): how much they had to wait for a core."""
    total = 0
    for pid in pids:
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            try:
                text = status.read_text()
            except OSError:
                continue
            total += int(text.rpartition("nonvoluntary_ctxt_switches:")[2].split()[0])
    return total


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(c) for c in (task / "children").read_text().split())
    return found


class Occipy:
    def __init__(self, dsn: str, workdir: Path, workers: int = 1, cpu: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [str(REPO / ".venv/bin/occipy"), "serve", "--port", str(self.port), "--data-dir", str(workdir),
                "--database-url", dsn, "--driver-opt", "delay=0", "--log-level", "warning",
                "--workers", str(workers)]
        if cpu is not None:
            args = ["taskset", "-c", cpu, *args]
        env = dict(os.environ, OCCIPY_RECONCILE_INTERVAL="0")
        started = time.monotonic()
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(self.process.stderr.read().decode() if self.process.stderr else "exited")
            try:
                if httpx.get(self.url + "/-/", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        self.startup = time.monotonic() - started
        self.workers = workers
        # CPU the process used to import, open the store and the driver and answer once: what
        # start-up costs whatever the machine's other load (wall time moves with the load).
        self.startup_cpu = cpu_seconds(self.pids)

    @property
    def pids(self) -> list[int]:
        return [self.process.pid, *children(self.process.pid)] if self.workers > 1 else [self.process.pid]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def seed(server: PostgresServer, dbname: str, count: int, template: dict[str, Any]) -> float:
    """COPY `count` computes shaped like `template` (a row of the entities table) into the database."""
    import psycopg

    started = time.monotonic()
    attributes = json.loads(template["attributes"])
    with psycopg.connect(server.database(dbname).dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM entity_mixins")
        conn.execute("DELETE FROM entities")
        columns = ("location", "entity_id", "kind", "owner", "tenant", "backend_id", "mixins", "attributes",
                   "created", "updated", "version")
        with conn.cursor() as cur, cur.copy(f"COPY entities ({', '.join(columns)}) FROM STDIN") as copy:
            for i in range(count):
                uid = f"00000000-0000-4000-8000-{i:012d}"
                values = dict(attributes, **{"occi.core.id": f"urn:uuid:{uid}", "occi.core.title": f"seed-{i}",
                                             "occi.compute.hostname": f"seed-{i}"})
                copy.write_row((f"/compute/{uid}", f"urn:uuid:{uid}", COMPUTE, "anonymous", "default",
                                f"cmp-{i:08x}", template["mixins"], json.dumps(values), 1.0, 1.0, 1))
        with conn.cursor() as cur, cur.copy("COPY entity_mixins (location, mixin) FROM STDIN") as copy:
            mixins = json.loads(template["mixins"])
            for i in range(count):
                for mixin in mixins:
                    copy.write_row((f"/compute/00000000-0000-4000-8000-{i:012d}", mixin))
        conn.execute("ANALYZE entities")
        conn.execute("ANALYZE entity_mixins")
    return time.monotonic() - started


def timed(client: httpx.Client, path: str, number: int, headers: dict[str, str]) -> list[float]:
    times = []
    for _ in range(number):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"p50_ms": round(statistics.median(ordered) * 1e3, 2),
            "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1e3, 2)}


def measure_size(server: PostgresServer, count: int, workdir: Path, rounds: int) -> dict[str, Any]:
    import psycopg

    dbname = f"scale_{count}"
    server.create_database(dbname)
    dsn = server.database(dbname).dsn
    # One compute made by the server: the shape every seeded row copies.
    first = Occipy(dsn, workdir / f"{count}-0")
    with httpx.Client(base_url=first.url, timeout=60) as client:
        response = client.post("/compute/", headers={"Content-Type": JSON},
                               json={"kind": COMPUTE, "title": "template",
                                     "mixins": ["http://occipy.org/occi/os_tpl#debian-12"]})
        assert response.status_code == 201, response.text
    first.stop()
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT mixins, attributes FROM entities LIMIT 1").fetchone()
    assert row is not None
    seeded = seed(server, dbname, count, {"mixins": row[0], "attributes": row[1]})
    occipy = Occipy(dsn, workdir / f"{count}-1")
    result: dict[str, Any] = {"entities": count, "seed_s": round(seeded, 1), "startup_s": round(occipy.startup, 2),
                              "startup_cpu_s": round(occipy.startup_cpu, 2),
                              "rss_after_start_mib": round(rss_mib(occipy.pids), 1)}
    middle = max(count // 200, 1)
    deep = max(count * 9 // 1000, 1)  # 90 % through
    target = f"/compute/00000000-0000-4000-8000-{count // 2:012d}"
    scenarios = {
        "get_one": (target, {"Accept": JSON}),
        "page_1_of_100": ("/compute/?page=1&number=100", {"Accept": JSON}),
        "page_middle_of_100": (f"/compute/?page={middle}&number=100", {"Accept": JSON}),
        "page_90pct_of_100": (f"/compute/?page={deep}&number=100", {"Accept": JSON}),
        "filter_title_page_100": (f"/compute/?attribute=occi.core.title&value=seed-{count // 3}&page=1&number=100",
                                  {"Accept": JSON}),
        "filter_state_page_100": ("/compute/?attribute=occi.compute.state&value=active&page=1&number=100",
                                  {"Accept": JSON}),
    }
    with httpx.Client(base_url=occipy.url, timeout=60) as client:
        for name, (path, headers) in scenarios.items():
            # The first request apart: what a cold process pays (a deep page's first walk).
            first_ms = round(timed(client, path, 1, headers)[0] * 1e3, 2)
            timed(client, path, max(rounds // 10, 5), headers)  # warm-up
            before = cpu_seconds(occipy.pids)
            times = timed(client, path, rounds, headers)
            used = cpu_seconds(occipy.pids) - before
            result[name] = {**summary(times), "first_ms": first_ms,
                            "server_cpu_us_per_req": round(used / rounds * 1e6)}
    result["rss_after_requests_mib"] = round(rss_mib(occipy.pids), 1)
    occipy.stop()
    result["database_ms"] = explain(dsn, count)
    return result


def explain(dsn: str, count: int) -> dict[str, float]:
    """PostgreSQL's own execution time (EXPLAIN ANALYZE) of the queries the scenarios send."""
    import psycopg

    location = f"/compute/00000000-0000-4000-8000-{count // 2:012d}"
    columns = "location, entity_id, kind, owner, tenant, backend_id, mixins, attributes, version"
    queries = {
        "get_one_with_links": (f"SELECT s.mixins, {', '.join('entities.' + c for c in columns.split(', '))} "
                               f"FROM store_state s LEFT OUTER JOIN entities "
                               f"ON entities.location = %(l)s OR entities.source = %(l)s WHERE s.id = 1 "
                               f"ORDER BY entities.seq"),
        "page_1_of_100": f"SELECT {columns} FROM entities WHERE kind = %(k)s ORDER BY seq LIMIT 100",
        "page_middle_of_100": (f"SELECT {columns} FROM entities WHERE kind = %(k)s ORDER BY seq LIMIT 100 "
                               f"OFFSET {max(count // 2 - 100, 0)}"),
        "filter_title_page_100": (f"SELECT {columns} FROM entities WHERE kind = %(k)s AND "
                                  f"((attributes)::jsonb ->> 'occi.core.title') = %(t)s ORDER BY seq LIMIT 100"),
        "filter_state_page_100": (f"SELECT {columns} FROM entities WHERE kind = %(k)s AND "
                                  f"((attributes)::jsonb ->> 'occi.compute.state') = 'active' ORDER BY seq LIMIT 100"),
    }
    found: dict[str, float] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        queries.update(anchored(conn, count))
        for name, sql in queries.items():
            best = None
            for _ in range(5):
                plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql,
                                    {"l": location, "k": COMPUTE, "t": f"seed-{count // 3}"}).fetchone()[0]
                elapsed = plan[0]["Execution Time"]
                best = elapsed if best is None else min(best, elapsed)
            found[name] = round(best or 0.0, 3)
    return found


def anchored(conn: Any, count: int) -> dict[str, str]:
    """The statements the store sends for the middle and 90 % pages since page anchors (issue 11,
    store/_pages.py): the walk that makes the anchors (once per process, and after a delete), and
    the page from its anchor. SQL of the store's own builders, with the values written in."""
    from sqlalchemy.dialects import postgresql

    from occipy.store import _pages as pages
    from occipy.store._reads import ENTITY_COLUMNS
    from occipy.store.base import EntityQuery

    def sql(statement: Any) -> str:
        return str(statement.compile(dialect=postgresql.psycopg.dialect(), compile_kwargs={"literal_binds": True}))

    found: dict[str, str] = {}
    scope = EntityQuery(kinds=(COMPUTE,))
    for name, page in (("middle", max(count // 200, 1)), ("90pct", max(count * 9 // 1000, 1))):
        offset = (page - 1) * 100
        if offset < pages.ANCHOR_STEP:
            continue
        index = pages.wanted_index(offset, pages.ANCHOR_STEP)
        found[f"anchor_walk_{name}"] = sql(pages.walk_statement(scope, "postgresql", None, index, pages.ANCHOR_STEP))
        row = conn.execute("SELECT seq FROM entities WHERE kind = %s ORDER BY seq OFFSET %s LIMIT 1",
                           (COMPUTE, index * pages.ANCHOR_STEP)).fetchone()
        statement = pages.page_statement(scope, "postgresql", ENTITY_COLUMNS, anchored=True, limited=True)
        found[f"page_{name}_of_100_anchored"] = sql(statement.params(
            start=row[0], skip=offset - index * pages.ANCHOR_STEP, size=100, since=0))
    return found


def wrk(url: str, duration: int, connections: int, script: str, cpu: str) -> dict[str, Any]:
    out = subprocess.run(["taskset", "-c", cpu, "wrk", f"-d{duration}s", "-t1", f"-c{connections}", "--timeout", "10s",
                          "-s", script, url], capture_output=True, text=True, cwd=REPO, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("BENCH_JSON "))
    return json.loads(line[len("BENCH_JSON "):])


def measure_workers(server: PostgresServer, workdir: Path, duration: int) -> dict[str, Any]:
    """1 and 2 workers in the order 1, 2, 2, 1 (a drift of the machine's load over the runs weighs
    on both alike), then two servers of which one is loaded (`_coordination`), each run on a
    database of its own: a create costs more as the tables grow, and on one database a later run
    pays for the rows the earlier ones wrote (the first runs of this did: 2 workers created into a
    table the 1-worker run had filled). Each configuration's row is the mean of its two runs."""
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for turn, workers in enumerate((1, 2, 2, 1)):
        dsn = _fresh_database(server, f"scale_workers_{turn}")
        occipy = Occipy(dsn, workdir / f"w{turn}", workers=workers)
        with httpx.Client(base_url=occipy.url, timeout=60) as client:
            response = client.post("/compute/", headers={"Content-Type": JSON}, json={"kind": COMPUTE, "title": "w"})
            path = httpx.URL(response.headers["location"]).path
        row: dict[str, Any] = {}
        os.environ["BENCH_WANT_RESPONSE"] = "0"
        for name, script, target in (("get_one", "bench/get.lua", occipy.url + path),
                                     ("create", "bench/create.lua", occipy.url + "/compute/")):
            row[name] = _loaded(occipy, target, script, duration)
        occipy.stop()
        runs[workers].append(row)
    results: dict[str, Any] = {f"workers_{workers}": _mean_row(rows) | {"runs": rows} for workers, rows in runs.items()}
    results["two_servers_one_loaded"] = _coordination(_fresh_database(server, "scale_coordination"), workdir, duration)
    return results


def _mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per scenario, the mean of each figure over the runs."""
    return {name: {figure: round(statistics.fmean(row[name][figure] for row in rows), 2) for figure in rows[0][name]}
            for name in rows[0]}


def _fresh_database(server: PostgresServer, name: str) -> str:
    return server.create_database(name).dsn


def _loaded(occipy: Occipy, target: str, script: str, duration: int) -> dict[str, Any]:
    """wrk (32 connections) against `target`, 2 s of warm-up then `duration` s: rate, p99, the
    server's CPU per request and how often per request its threads were preempted."""
    wrk(target, 2, 32, script, "0-1")
    before, switched = cpu_seconds(occipy.pids), preemptions(occipy.pids)
    stats = wrk(target, duration, 32, script, "0-1")
    used, switched = cpu_seconds(occipy.pids) - before, preemptions(occipy.pids) - switched
    ok = max(stats["requests"] - stats["errors"]["status"], 1)
    return {"req_s": round(ok / (stats["duration_us"] / 1e6)), "p99_ms": round(stats["latency_us"]["p99"] / 1e3, 2),
            "server_cpu_us_per_req": round(used / ok * 1e6), "preempted_per_req": round(switched / ok, 3)}


def _coordination(dsn: str, workdir: Path, duration: int) -> dict[str, Any]:
    """What a second process adds to the cost of each request, apart from CPU contention.

    Two `occipy serve` on the database (the N-servers deployment), wrk sends every request to the
    first, and the CPU of both processes counts: the second one's background work (claims,
    recovery passes, event polls) and any cost its presence adds to the first. On this 2-core
    machine the 2-worker figure above also carries two busy servers, PostgreSQL and wrk
    competing for two cores; this one does not.
    """
    loaded = Occipy(dsn, workdir / "c1")
    idle = Occipy(dsn, workdir / "c2")
    with httpx.Client(base_url=loaded.url, timeout=60) as client:
        response = client.post("/compute/", headers={"Content-Type": JSON}, json={"kind": COMPUTE, "title": "c"})
        path = httpx.URL(response.headers["location"]).path
    row: dict[str, Any] = {}
    for name, script, target in (("get_one", "bench/get.lua", loaded.url + path),
                                 ("create", "bench/create.lua", loaded.url + "/compute/")):
        wrk(target, 2, 32, script, "0-1")
        before, before_idle = cpu_seconds(loaded.pids + idle.pids), cpu_seconds(idle.pids)
        stats = wrk(target, duration, 32, script, "0-1")
        used, used_idle = cpu_seconds(loaded.pids + idle.pids) - before, cpu_seconds(idle.pids) - before_idle
        ok = stats["requests"] - stats["errors"]["status"]
        seconds = stats["duration_us"] / 1e6
        row[name] = {"req_s": round(ok / seconds), "p99_ms": round(stats["latency_us"]["p99"] / 1e3, 2),
                     "server_cpu_us_per_req": round(used / max(ok, 1) * 1e6),
                     "idle_server_cpu_ms_per_s": round(used_idle / seconds * 1e3, 1)}
    loaded.stop()
    idle.stop()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,1000,100000,1000000")
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--workers", action="store_true", help="also compare 1 and 2 workers under wrk")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--out", default=str(REPO / "bench/results/scale.json"))
    options = parser.parse_args()
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="occipy-scale-"))
    server = start_postgres(settings={"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on",
                                      "shared_buffers": "256MB"})
    report: dict[str, Any] = {"loadavg_start": Path("/proc/loadavg").read_text().split()[:3], "sizes": []}
    try:
        for size in (int(s) for s in options.sizes.split(",")):
            print(f"scale: {size} entities", file=sys.stderr)
            report["sizes"].append(measure_size(server, size, workdir, options.rounds))
            print(json.dumps(report["sizes"][-1]), file=sys.stderr)
        if options.workers:
            report["workers"] = measure_workers(server, workdir, options.duration)
            print(json.dumps(report["workers"]), file=sys.stderr)
    finally:
        server.stop()
    report["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    Path(options.out).parent.mkdir(parents=True, exist_ok=True)
    Path(options.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Turn the raw wrk results of one `make bench` run into a table, ratios to the floor and targets.

bench/run.sh leaves, in a raw directory, one `<run>.json` per wrk run (the BENCH_JSON line of
stats.lua), its `<run>.args`, its `<run>.cpu` (server CPU ticks used during the run, ticks per
second), a `<scenario>.floors` per occipy scenario naming the floor runs measured just before and
just after it, and a `meta.json`. Each scenario is divided by the mean of those two floor runs.
The ratio that counts is the one of requests per second (the issue's targets); the ratio of CPU
time per request is printed beside it because other load on a shared machine moves it far less. Prints the table and writes the combined JSON (bench/results/latest.json);
`--markdown` prints the table as Markdown (for docs/performance.md). Standard library only.

    python bench/report.py RAW_DIR [--out bench/results/latest.json] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    target: float | None = None  # required ratio to the floor (the targets)


# Order of the table. Targets, as ratios to the floor measured in the same run, from the issues:
# GET /-/ text/plain and a single-entity GET >= 0.5x; the 10,000-compute text collection >= 0.02x;
# issue 11 for the JSON collection, durable creation and start/stop (below).
SCENARIOS = (
    Scenario("query_text", "GET /-/ text/plain", 0.5),
    Scenario("query_json", "GET /-/ application/occi+json"),
    Scenario("entity_text", "GET one compute, text/plain", 0.5),
    Scenario("entity_json", "GET one compute, occi+json", 0.5),
    Scenario("collection_text", "GET /compute/ (10,000), text/plain", 0.02),
    # Issue 11 (scale-out) targets: streamed JSON collection 0.01x, creation 0.25x, start/stop
    # 0.35x with a p99 under 5 ms (docs/performance.md).
    Scenario("collection_json", "GET /compute/ (10,000), occi+json", 0.01),
    Scenario("create", "POST /compute/ create (durable SQLite)", 0.25),
    Scenario("actions", "POST ?action= stop/start, one connection", 0.35),
)
FLOOR_LABELS = {
    "get": "floor GET 1 KiB, -c64",
    "post": "floor POST, -c64",
    "post1": "floor POST, one connection",
}


def rate(raw: dict[str, Any]) -> float:
    """Successful responses per second: wrk counts non-2xx/3xx answers in `requests` too."""
    ok = raw["requests"] - raw["errors"]["status"]
    return ok / (raw["duration_us"] / 1e6) if raw["duration_us"] else 0.0


def _load(raw_dir: Path, name: str) -> dict[str, Any] | None:
    path = raw_dir / f"{name}.json"
    if not path.exists():
        return None
    raw: dict[str, Any] = json.loads(path.read_text())
    args = raw_dir / f"{name}.args"
    raw["args"] = args.read_text() if args.exists() else ""
    cpu = raw_dir / f"{name}.cpu"
    raw["cpu_s"] = None
    if cpu.exists():
        ticks, per_second = cpu.read_text().split()
        raw["cpu_s"] = int(ticks) / int(per_second)
    return raw


def cpu_per_request_us(raw: dict[str, Any]) -> float | None:
    ok = raw["requests"] - raw["errors"]["status"]
    return raw["cpu_s"] * 1e6 / ok if raw["cpu_s"] is not None and ok > 0 else None


def _row(name: str, label: str, raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "scenario": name, "label": label, "rps": round(rate(raw), 1), "requests": raw["requests"],
        "errors": raw["errors"], "error_total": sum(raw["errors"].values()),
        "latency_ms": {k: round(v / 1000, 2) for k, v in raw["latency_us"].items()}, "wrk": raw["args"],
        "cpu_s": raw["cpu_s"], "cpu_us_per_request": _round(cpu_per_request_us(raw)),
    }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def build(raw_dir: Path) -> dict[str, Any]:
    meta = json.loads((raw_dir / "meta.json").read_text()) if (raw_dir / "meta.json").exists() else {}
    count = meta.get("seed", {}).get("count", 10_000)
    rows = []
    for scenario in SCENARIOS:
        raw = _load(raw_dir, scenario.name)
        if raw is None:
            continue
        row = _row(scenario.name, scenario.label.replace("10,000", f"{count:,}"), raw)
        floors_file = raw_dir / f"{scenario.name}.floors"
        names = floors_file.read_text().split() if floors_file.exists() else []
        loaded = [(n, f) for n in names if (f := _load(raw_dir, n)) is not None]
        floors = [(n, rate(f)) for n, f in loaded]
        row.update(floor_runs={n: round(r, 1) for n, r in floors}, floor_rps=None, floor_spread=None,
                   ratio=None, target=scenario.target, met=None, floor_cpu_us_per_request=None, cpu_ratio=None)
        floor_cpus = [c for _, f in loaded if (c := cpu_per_request_us(f)) is not None]
        if floor_cpus and row["cpu_us_per_request"]:
            floor_cpu = sum(floor_cpus) / len(floor_cpus)
            row["floor_cpu_us_per_request"] = round(floor_cpu, 1)
            row["cpu_ratio"] = round(floor_cpu / row["cpu_us_per_request"], 4)
        if floors:
            floor_rps = sum(r for _, r in floors) / len(floors)
            row["floor_rps"] = round(floor_rps, 1)
            # How far apart the floor runs before and after the scenario are: the machine's drift.
            row["floor_spread"] = round((max(r for _, r in floors) - min(r for _, r in floors)) / floor_rps, 3)
            row["ratio"] = round(row["rps"] / floor_rps, 4) if floor_rps else None
            if scenario.target is not None and row["ratio"] is not None:
                # A run with failed requests does not meet its target, whatever the rate.
                row["met"] = row["ratio"] >= scenario.target and row["error_total"] == 0
        rows.append(row)
    floor_rows = []
    for path in sorted(raw_dir.glob("floor-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        raw = _load(raw_dir, path.stem)
        if raw is not None:
            floor_rows.append(_row(path.stem, FLOOR_LABELS.get(path.stem.split("-")[2], path.stem), raw))
    return {"meta": meta, "results": rows, "floor_runs": floor_rows}


def _cells(row: dict[str, Any]) -> tuple[str, str, str, str]:
    floor = "" if row["floor_rps"] is None else f"{row['floor_rps']:.0f} ±{100 * row['floor_spread'] / 2:.0f}%"
    ratio = "" if row["ratio"] is None else f"{row['ratio']:.3f}x"
    target = "" if row["target"] is None else f">= {row['target']}x"
    met = "" if row["met"] is None else ("met" if row["met"] else "MISSED")
    return floor, ratio, target, met


def _cpu_cells(row: dict[str, Any]) -> tuple[str, str]:
    if row["cpu_us_per_request"] is None or row["floor_cpu_us_per_request"] is None:
        return "", ""
    return (f"{row['cpu_us_per_request']:.0f} / {row['floor_cpu_us_per_request']:.0f}",
            f"{row['cpu_ratio']:.3f}x")


def table(report: dict[str, Any]) -> str:
    lines = [(f"{'scenario':42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errs':>4} {'floor req/s':>13} "
             f"{'ratio':>7} {'target':>8}  {'result':6}  {'CPU us/req (floor)':>18} {'CPU ratio':>9}")]
    for row in report["results"]:
        floor, ratio, target, met = _cells(row)
        cpu, cpu_ratio = _cpu_cells(row)
        lines.append(f"{row['label']:42} {row['rps']:8.1f} {row['latency_ms']['p50']:8.2f} "
                     f"{row['latency_ms']['p99']:8.2f} {row['error_total']:4d} {floor:>13} {ratio:>7} "
                     f"{target:>8}  {met:6}  {cpu:>18} {cpu_ratio:>9}")
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    lines = [("| scenario | req/s | p50 ms | p99 ms | errors | floor req/s (mean of before/after) | ratio | target "
             "| result | server CPU µs/req (floor) | CPU ratio |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for row in report["results"]:
        floor, ratio, target, met = _cells(row)
        cpu, cpu_ratio = _cpu_cells(row)
        lines.append(f"| {row['label']} | {row['rps']:.0f} | {row['latency_ms']['p50']:.2f} | "
                     f"{row['latency_ms']['p99']:.2f} | {row['error_total']} | {floor} | {ratio} | {target} | "
                     f"{'**MISSED**' if met == 'MISSED' else met} | {cpu} | {cpu_ratio} |")
    lines += ["", "| run | wrk command | req/s | p50 ms | p99 ms | server CPU µs/req |",
              "|---|---|---:|---:|---:|---:|"]
    for row in [*report["results"], *report["floor_runs"]]:
        cpu = "" if row["cpu_us_per_request"] is None else f"{row['cpu_us_per_request']:.0f}"
        lines.append(f"| {row['scenario']} | `{row['wrk']}` | {row['rps']:.0f} | {row['latency_ms']['p50']:.2f} | "
                     f"{row['latency_ms']['p99']:.2f} | {cpu} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("--out", type=Path, help="write the combined JSON here")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables instead")
    args = parser.parse_args()
    report = build(args.raw_dir)
    if not report["results"]:
        sys.exit(f"report: no results in {args.raw_dir}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report) if args.markdown else table(report))


if __name__ == "__main__":
    main()

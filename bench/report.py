"""Turn the raw wrk results of one `make bench` run into a table, ratios to the floor and targets.

bench/run.sh leaves one `<scenario>.json` per wrk run (the BENCH_JSON line of stats.lua) and a
`meta.json` in a raw directory; this script pairs each occipy scenario with the floor scenario
measured in the same run, prints the table and writes the combined JSON (bench/results/latest.json).
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
    floor: str | None = None  # the floor scenario this one is divided by; None for a floor itself
    target: float | None = None  # required ratio to the floor (the targets)


# Order of the table. Targets (as ratios to the floor measured in the same run), from the issue:
# GET /-/ text/plain and a single-entity GET >= 0.5x; the 10,000-compute collection >= 0.02x;
# durable compute creation >= 0.2x the floor's POST rate; start/stop on one connection >= 0.4x.
SCENARIOS = (
    Scenario("floor_get", "floor: GET 1 KiB (-c64)"),
    Scenario("query_text", "GET /-/ text/plain", "floor_get", 0.5),
    Scenario("query_json", "GET /-/ application/occi+json", "floor_get"),
    Scenario("entity_text", "GET one compute, text/plain", "floor_get", 0.5),
    Scenario("entity_json", "GET one compute, occi+json", "floor_get", 0.5),
    Scenario("collection_text", "GET /compute/ (10,000), text/plain", "floor_get", 0.02),
    Scenario("collection_json", "GET /compute/ (10,000), occi+json", "floor_get", 0.02),
    Scenario("floor_post", "floor: POST (-c64)"),
    Scenario("create", "POST /compute/ create, durable SQLite", "floor_post", 0.2),
    Scenario("floor_post_1", "floor: POST, one connection (-c1)"),
    Scenario("actions", "POST ?action=stop/start, one connection", "floor_post_1", 0.4),
    Scenario("floor_get_end", "floor: GET 1 KiB again, at the end (drift)"),
)


def rate(raw: dict[str, Any]) -> float:
    """Successful responses per second: wrk counts non-2xx/3xx answers in `requests` too."""
    ok = raw["requests"] - raw["errors"]["status"]
    return ok / (raw["duration_us"] / 1e6) if raw["duration_us"] else 0.0


def build(raw_dir: Path) -> dict[str, Any]:
    meta = json.loads((raw_dir / "meta.json").read_text()) if (raw_dir / "meta.json").exists() else {}
    raws: dict[str, dict[str, Any]] = {}
    for scenario in SCENARIOS:
        path = raw_dir / f"{scenario.name}.json"
        if path.exists():
            raws[scenario.name] = json.loads(path.read_text())
    rows = []
    for scenario in SCENARIOS:
        raw = raws.get(scenario.name)
        if raw is None:
            continue
        rps = rate(raw)
        errors = sum(raw["errors"].values())
        label = scenario.label.replace("10,000", f"{meta.get('seed', {}).get('count', 10_000):,}")
        row: dict[str, Any] = {
            "scenario": scenario.name, "label": label, "rps": round(rps, 1),
            "requests": raw["requests"], "errors": raw["errors"], "error_total": errors,
            "latency_ms": {k: round(v / 1000, 2) for k, v in raw["latency_us"].items()},
            "wrk": raw.get("wrk", {}),
            "floor": scenario.floor, "ratio": None, "target": scenario.target, "met": None,
        }
        floor = raws.get(scenario.floor) if scenario.floor else None
        if floor is not None and rate(floor) > 0:
            row["ratio"] = round(rps / rate(floor), 4)
            if scenario.target is not None:
                # A run with failed requests does not meet its target, whatever the rate.
                row["met"] = row["ratio"] >= scenario.target and errors == 0
        rows.append(row)
    return {"meta": meta, "results": rows}


def _fmt_ratio(row: dict[str, Any]) -> tuple[str, str, str]:
    ratio = "" if row["ratio"] is None else f"{row['ratio']:.3f}x"
    target = "" if row["target"] is None else f">= {row['target']}x"
    met = "" if row["met"] is None else ("met" if row["met"] else "MISSED")
    return ratio, target, met


def table(report: dict[str, Any]) -> str:
    lines = [f"{'scenario':44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'ratio':>8} "
             f"{'target':>8}  result"]
    for row in report["results"]:
        ratio, target, met = _fmt_ratio(row)
        lines.append(f"{row['label']:44} {row['rps']:9.1f} {row['latency_ms']['p50']:8.2f} "
                     f"{row['latency_ms']['p99']:8.2f} {row['error_total']:6d} {ratio:>8} {target:>8}  {met}")
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    lines = ["| scenario | wrk | req/s | p50 ms | p99 ms | errors | ratio to floor | target | result |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in report["results"]:
        ratio, target, met = _fmt_ratio(row)
        wrk = row["wrk"].get("args", "")
        lines.append(f"| {row['label']} | `{wrk}` | {row['rps']:.0f} | {row['latency_ms']['p50']:.2f} | "
                     f"{row['latency_ms']['p99']:.2f} | {row['error_total']} | {ratio} | {target} | "
                     f"{'**MISSED**' if met == 'MISSED' else met} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("--out", type=Path, help="write the combined JSON here")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table instead")
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

#!/usr/bin/env bash
# What sets the one-connection start/stop p99 (docs/performance.md, 2026-12-07 04:10): the
# `make bench` order in short (10,000 computes seeded, the two 10,000-member listings for 5 s
# each, 12 s of creation under 64 connections, then start/stop on one connection, 2 s of warm-up
# and 10 s measured with wrk --latency), and inside the server (bench/probes/pauses/
# sitecustomize.py) every request over 3 ms and every collector pass over 2 ms of the measured
# run, counted per half second. The reconcile pass (every 30 s) lands in the run or not: run it
# a few times.
#
#   bash bench/probes/pauses.sh [SRC]
# SRC: another checkout's src/ to measure instead of this one (PYTHONPATH), for an A/B.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/probes/served.sh
export PAUSES_OUT="$DATA/pauses"
serve "$PWD/bench/probes/pauses:${1:-}"
for media in text/plain application/occi+json; do
    taskset -c 0 wrk -d5s -t1 -c4 -H "Accept: $media" "$URL/compute/" >/dev/null
done
taskset -c 0 wrk -d12s -t1 -c64 -s bench/create.lua "$URL/compute/" >/dev/null
first() {  # the action the compute's state allows, once the creates' last writes are in
    sleep 0.5
    first_action
}
BENCH_FIRST="$(first)" taskset -c 0 wrk -d2s -t1 -c1 -s bench/actions.lua "$TARGET" >/dev/null
BENCH_FIRST="$(first)" taskset -c 0 wrk -d10s -t1 -c1 --latency -s bench/actions.lua "$TARGET" \
    | grep -E 'Requests/sec|Latency  |99%'
# The server runs in a child of the `occipy serve` process: signal both, read the one with data.
for pid in $PID $(pgrep -P $PID || true); do kill -USR2 "$pid" 2>/dev/null || true; done
sleep 0.5
LOG="$(ls -S "$PAUSES_OUT".* | head -1)"
"$PY" - "$LOG" <<'PYEOF'
import collections, sys
rows = [line.split(" ", 3) for line in open(sys.argv[1])]
end = float(rows[-1][0])
window = [(float(at), kind, float(ms)) for at, kind, ms, *_ in rows if float(at) > end - 10.0]
by_half = collections.defaultdict(lambda: [0, 0.0, 0.0])
for at, kind, ms in window:
    if kind == "request":
        cell = by_half[int((at - end + 10.0) * 2) / 2]
        cell[0] += 1; cell[1] += ms; cell[2] = max(cell[2], ms)
print("measured run, requests over 3 ms per half second (from its start): count, sum ms, longest ms")
for second, (count, total, longest) in sorted(by_half.items()):
    print(f"  {second:5.1f} s  {count:4d}  {total:8.1f}  {longest:6.1f}")
collector = [(kind, ms) for at, kind, ms in window if kind.startswith("gc")]
print(f"collector passes over 2 ms: {len(collector)}, longest {max((ms for _, ms in collector), default=0):.1f} ms")
PYEOF

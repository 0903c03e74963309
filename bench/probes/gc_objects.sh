#!/usr/bin/env bash
# What Python's collector does in `occipy serve` under the create scenario of `make bench`:
# the server (simulated cloud, delay 0, durable SQLite, 10,000 computes seeded; served.sh) runs
# with bench/probes/gcwatch on its PYTHONPATH, wrk creates on 64 connections three times for 8 s,
# then the collections per generation, their CPU time, the longest one and the number of tracked
# objects are printed (docs/performance.md, 2026-12-07 20:20).
#
#   bash bench/probes/gc_objects.sh [SRC]   (SRC: another checkout's src/, for an A/B)
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/probes/served.sh
export GCWATCH_OUT="$DATA/gcwatch"
serve "${1:+$1:}$PWD/bench/probes/gcwatch"
for run in 1 2 3; do
    taskset -c 0 wrk -d8s -t1 -c64 -s bench/create.lua "$URL/compute/" | grep Requests/sec | sed "s/^/run $run: /"
done
sleep 2.5
tail -n 1 "$GCWATCH_OUT"
grep "most tracked" "$GCWATCH_OUT" | tail -n 1

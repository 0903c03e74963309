#!/usr/bin/env bash
# Does the cost of a request grow with the time a server runs and the entities it holds?
# (docs/performance.md, 2026-12-07 08:30.) `occipy serve` pinned to CPU 1 (simulated cloud, delay
# 0, durable SQLite in a temp dir), 10,000 computes seeded, then wrk pinned to CPU 0: durable
# creation on 64 connections in CREATES windows of 15 s (about 30,000 more computes each), then
# one-connection start/stop in ACTIONS windows of 10 s, then GETs of one compute in GETS windows of
# 5 s. Per window: requests a second, p99, and the server's CPU per request (every thread, from
# /proc/PID/stat), with the time of day. make bench runs each scenario once, 10 s, on at most
# 45,000 computes; this shows what comes later (the reconcile's passes over every entity, the
# cyclic collector's full passes over a growing heap, operation records past their retention).
#
#   bash bench/probes/soak.sh [SRC]        CREATES=4 ACTIONS=3 GETS=1 by default
# SRC: another checkout's src/ to measure instead of this one (PYTHONPATH), for an A/B.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/probes/served.sh
serve "${1:-}"
HZ="$(getconf CLK_TCK)"
ticks() {  # user + system ticks of the server and its children
    local total=0 pid
    for pid in $PID $(pgrep -P $PID || true); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}
window() {  # label, wrk arguments
    local label=$1 before after out requests
    shift
    before="$(ticks)"
    out="$(taskset -c 0 wrk -t1 --latency "$@")"
    after="$(ticks)"
    requests="$(echo "$out" | awk '/requests in/ {print $1}')"
    printf '%-10s %9s req/s  p99 %9s  CPU %5d us/req  %s\n' "$label" \
        "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" "$(echo "$out" | awk '/ 99%/ {print $2}')" \
        $(( (after - before) * 1000000 / HZ / requests )) "$(date +%T)"
}
for i in $(seq "${CREATES:-4}"); do window "create $i" -d15s -c64 -s bench/create.lua "$URL/compute/"; done
for i in $(seq "${ACTIONS:-3}"); do
    BENCH_FIRST="$(first_action)" window "actions $i" -d10s -c1 -s bench/actions.lua "$TARGET"
done
for i in $(seq "${GETS:-1}"); do
    window "get $i" -d5s -c64 -s bench/get.lua -H "Accept: application/occi+json" "$TARGET"
done

#!/usr/bin/env bash
# Server CPU per request, per thread, for one `make bench` write scenario run alone
# (docs/performance.md, 2026-12-06 22:05): `occipy serve` pinned to CPU 1 (simulated cloud,
# delay 0, durable SQLite in a temp dir), 10,000 computes seeded, wrk pinned to CPU 0 for 8 s,
# then user and system CPU of each thread from /proc/PID/task/*/stat, per request (one row per
# thread in creation order: the event loop, then the store's writer and its WAL checkpointer).
#
#   bash bench/probes/threads.sh actions|create|query [SRC]
# (query: GET /-/ in application/occi+json on 64 connections.)
# SRC: another checkout's src/ to measure instead of this one (PYTHONPATH), for an A/B.
set -euo pipefail
cd "$(dirname "$0")/../.."
SCENARIO="${1:?actions, create or query}"
source bench/probes/served.sh
serve "${2:-}"
if [ "$SCENARIO" = actions ]; then
    export BENCH_FIRST; BENCH_FIRST="$(first_action)"
    ARGS=(-c1 -s bench/actions.lua "$TARGET")
elif [ "$SCENARIO" = query ]; then
    ARGS=(-c64 -H "Accept: application/occi+json" "$URL/-/")
else
    ARGS=(-c64 -s bench/create.lua "$URL/compute/")
fi
snap() { for t in /proc/$PID/task/*; do echo "$(cat "$t/comm") $(awk '{print $14, $15}' "$t/stat")"; done; }
taskset -c 0 wrk -d2s -t1 "${ARGS[@]}" >/dev/null
BEFORE="$(snap)"
OUT="$(taskset -c 0 wrk -d8s -t1 "${ARGS[@]}")"
AFTER="$(snap)"
REQUESTS="$(echo "$OUT" | awk '/requests in/ {print $1}')"
echo "$OUT" | grep -E "Requests/sec"
HZ="$(getconf CLK_TCK)"
paste <(echo "$BEFORE") <(echo "$AFTER") | awk -v req="$REQUESTS" -v hz="$HZ" '{u = $5 - $2; s = $6 - $3;
    if (u + s > 0) printf "%-24s user %6.0f us/req  system %6.0f us/req\n", $1, u * 1e6 / hz / req, s * 1e6 / hz / req}'

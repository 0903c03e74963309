#!/usr/bin/env bash
# The cost of the Prometheus request middleware (docs/metrics.md): the single-entity JSON GET
# scenario of `make bench` against two servers, metrics on and off (OCCIPY_METRICS), alternating
# runs (A B B A ...) so that other load on the machine hits both alike. Servers pinned to one CPU,
# wrk to the other; reports requests/s and server CPU time per request for each, and the ratios.
#
# Knobs: BENCH_DURATION (5), BENCH_WARMUP (1), BENCH_ROUNDS (3), BENCH_CONNECTIONS (64),
# BENCH_COUNT (1000), BENCH_SERVER_CPU (1), BENCH_WRK_CPU (0).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${BENCH_DURATION:-5}"; WARMUP="${BENCH_WARMUP:-1}"; ROUNDS="${BENCH_ROUNDS:-3}"
CONNS="${BENCH_CONNECTIONS:-64}"; COUNT="${BENCH_COUNT:-1000}"
SERVER_CPU="${BENCH_SERVER_CPU:-1}"; WRK_CPU="${BENCH_WRK_CPU:-0}"
PY=.venv/bin/python
command -v wrk >/dev/null || bash scripts/bootstrap.sh bench
WORK="$(mktemp -d -t occipy-metrics-bench.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
TICKS="$(getconf CLK_TCK)"
cpu_ticks() { local s; s="$(cat "/proc/$1/stat")"; s="${s##*) }"; set -- $s; echo $(( ${12} + ${13} )); }

declare -A URL PID GETP
for mode in on off; do
    port="$(free_port)"
    flag=1; [ "$mode" = off ] && flag=0
    OCCIPY_METRICS="$flag" taskset -c "$SERVER_CPU" .venv/bin/occipy serve --host 127.0.0.1 --port "$port" \
        --data-dir "$WORK/$mode" --driver-opt delay=0 --log-level warning &
    PID[$mode]="$!"; PIDS+=("$!")
    URL[$mode]="http://127.0.0.1:$port"
    for _ in $(seq 1 200); do curl -fs -o /dev/null "${URL[$mode]}/-/" && break; sleep 0.1; done
    seed="$("$PY" bench/seed.py --url "${URL[$mode]}" --count "$COUNT")"
    GETP[$mode]="$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["get_path"])' "$seed")"
done
curl -fs -o /dev/null "${URL[on]}/metrics"
if curl -fs -o /dev/null "${URL[off]}/metrics"; then echo "metrics should be off" >&2; exit 1; fi

declare -A REQS SECS TICKSUM
for mode in on off; do REQS[$mode]=0; SECS[$mode]=0; TICKSUM[$mode]=0; done
for round in $(seq 1 "$ROUNDS"); do
    order="on off"; [ $(( round % 2 )) -eq 0 ] && order="off on"  # A B B A ...: neither goes first always
    for mode in $order; do
        args=(-t1 -c"$CONNS" --timeout 10s -H 'Accept: application/occi+json' "${URL[$mode]}${GETP[$mode]}")
        taskset -c "$WRK_CPU" wrk -d"${WARMUP}s" "${args[@]}" >/dev/null
        before="$(cpu_ticks "${PID[$mode]}")"
        out="$(taskset -c "$WRK_CPU" wrk -d"${DURATION}s" "${args[@]}")"
        after="$(cpu_ticks "${PID[$mode]}")"
        n="$(awk '/requests in/ {print $1}' <<<"$out")"
        rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
        echo "round $round metrics $mode: $rps req/s, $n requests, $(( after - before )) CPU ticks" >&2
        REQS[$mode]=$(( ${REQS[$mode]} + n )); TICKSUM[$mode]=$(( ${TICKSUM[$mode]} + after - before ))
    done
done
"$PY" - "$DURATION" "$ROUNDS" "$TICKS" "${REQS[on]}" "${TICKSUM[on]}" "${REQS[off]}" "${TICKSUM[off]}" <<'PYEOF'
import sys
duration, rounds, ticks = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
on_n, on_t, off_n, off_t = (int(x) for x in sys.argv[4:8])
seconds = duration * rounds
on_rps, off_rps = on_n / seconds, off_n / seconds
on_cpu, off_cpu = on_t / ticks / on_n * 1e6, off_t / ticks / off_n * 1e6
print(f"metrics on : {on_rps:8.0f} req/s  {on_cpu:6.1f} us CPU/request")
print(f"metrics off: {off_rps:8.0f} req/s  {off_cpu:6.1f} us CPU/request")
print(f"ratio on/off: throughput {on_rps / off_rps:.3f}, CPU per request {on_cpu / off_cpu:.3f}")
PYEOF
"$PY" bench/metrics_inprocess.py

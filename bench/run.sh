#!/usr/bin/env bash
# `make bench`: occipy against a bare Starlette floor, same uvicorn settings, same run, one table.
#
# Starts bench/floor.py (fixed 1 KiB body) and `occipy serve` (simulated cloud with delay=0, the
# default durable SQLite store in a temp data dir), both one uvicorn worker asking for uvloop and
# httptools and no access log, pinned to the same CPU; wrk runs pinned to the other CPU. Seeds
# 10,000 computes, runs every scenario (2 s warm-up, then a 10 s measured run), prints the table
# (bench/report.py) and writes bench/results/latest.json.
#
# Each occipy scenario runs between two runs of its floor (5 s after a 1 s warm-up each).
#
# Knobs (environment): BENCH_DURATION (10), BENCH_WARMUP (2), BENCH_FLOOR_DURATION (5),
# BENCH_FLOOR_WARMUP (1), BENCH_CONNECTIONS (64), BENCH_COLLECTION_CONNECTIONS (8),
# BENCH_COUNT (10000), BENCH_SERVER_CPU (1), BENCH_WRK_CPU (0).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-2}"
FLOOR_DURATION="${BENCH_FLOOR_DURATION:-5}"
FLOOR_WARMUP="${BENCH_FLOOR_WARMUP:-1}"
CONNS="${BENCH_CONNECTIONS:-64}"
COLL_CONNS="${BENCH_COLLECTION_CONNECTIONS:-8}"
COUNT="${BENCH_COUNT:-10000}"
SERVER_CPU="${BENCH_SERVER_CPU:-1}"
WRK_CPU="${BENCH_WRK_CPU:-0}"
PY=.venv/bin/python

if [ "$(nproc)" -lt 2 ]; then
    echo "bench: only one CPU: the servers and wrk share it, figures are not comparable" >&2
    SERVER_CPU=0 WRK_CPU=0
fi

if ! command -v wrk >/dev/null 2>&1; then
    echo "bench: installing wrk (Debian package)" >&2
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi

WORK="$(mktemp -d -t occipy-bench.XXXXXX)"
RAW="$WORK/raw"
mkdir -p "$RAW" "$WORK/data"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_up() {  # url path
    for _ in $(seq 1 200); do
        if curl -fs -o /dev/null "$1$2"; then return 0; fi
        sleep 0.1
    done
    echo "bench: $1 did not come up" >&2
    exit 1
}

FLOOR_PORT="$(free_port)"
OCCI_PORT="$(free_port)"
FLOOR="http://127.0.0.1:$FLOOR_PORT"
OCCI="http://127.0.0.1:$OCCI_PORT"

# Same uvicorn settings as `occipy serve` (src/occipy/server.py): one worker, uvloop, httptools,
# no access log, no Server header (`occipy serve` runs its server under uvloop.run).
taskset -c "$SERVER_CPU" "$PY" -m uvicorn bench.floor:app --host 127.0.0.1 --port "$FLOOR_PORT" \
    --workers 1 --loop uvloop --http httptools --no-access-log --no-server-header --log-level warning &
FLOOR_PID="$!"
PIDS+=("$FLOOR_PID")
taskset -c "$SERVER_CPU" .venv/bin/occipy serve --host 127.0.0.1 --port "$OCCI_PORT" \
    --data-dir "$WORK/data" --driver-opt delay=0 --log-level warning &
OCCI_PID="$!"
PIDS+=("$OCCI_PID")
wait_up "$FLOOR" /
wait_up "$OCCI" /-/

echo "bench: seeding $COUNT computes" >&2
SEED="$("$PY" bench/seed.py --url "$OCCI" --count "$COUNT")"
echo "bench: seeded: $SEED" >&2
GET_PATH="$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["get_path"])' "$SEED")"
ACTION_PATH="$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["action_path"])' "$SEED")"

# The action the compute's current state allows (stop when active, start otherwise). The pause
# lets an action that wrk left in flight when it stopped finish first.
first_action() {
    sleep 0.5
    curl -fs -H 'Accept: application/occi+json' "$OCCI$ACTION_PATH" | "$PY" -c \
        'import json, sys; s = json.load(sys.stdin)["attributes"].get("occi.compute.state"); print("stop" if s == "active" else "start")'
}

TICKS_PER_S="$(getconf CLK_TCK)"
# CPU time (user + system, every thread) a process has used so far, in clock ticks.
cpu_ticks() {
    local stat
    stat="$(cat "/proc/$1/stat")"
    stat="${stat##*) }"  # fields from 3 (state) on: utime and stime are fields 14 and 15
    set -- $stat
    echo $(( ${12} + ${13} ))
}

# measure NAME SERVER-PID WARMUP DURATION WRK-ARGS...: a warm-up run (discarded), then the
# measured run; keeps the BENCH_JSON line (stats.lua), the wrk arguments, and the CPU time the
# server used during the measured run (a figure other load on the machine barely moves).
measure() {
    local name="$1" pid="$2" warmup="$3" duration="$4"; shift 4
    if [ "$name" = actions ]; then export BENCH_FIRST="$(first_action)"; fi
    taskset -c "$WRK_CPU" wrk -d"${warmup}s" "$@" >/dev/null
    if [ "$name" = actions ]; then export BENCH_FIRST="$(first_action)"; fi
    echo "bench: $name: wrk -d${duration}s $*" >&2
    local out before after
    before="$(cpu_ticks "$pid")"
    out="$(taskset -c "$WRK_CPU" wrk -d"${duration}s" "$@")"
    after="$(cpu_ticks "$pid")"
    echo "$(( after - before )) $TICKS_PER_S" > "$RAW/$name.cpu"
    grep '^BENCH_JSON ' <<<"$out" | sed 's/^BENCH_JSON //' > "$RAW/$name.json"
    { printf 'wrk -d%ss' "$duration"; printf ' %q' "$@"; } > "$RAW/$name.args"
    if [ ! -s "$RAW/$name.json" ]; then echo "$out" >&2; echo "bench: $name gave no result" >&2; exit 1; fi
}

# The machine is shared, so every occipy scenario is sandwiched between two runs of its floor
# (the one after it is also the one before the next): report.py divides by their mean, and the
# gap between the two shows how much the machine moved during the scenario.
FLOOR_RUNS=0
PENDING=""
floor() {  # floor KIND WRK-ARGS...
    local kind="$1"; shift
    FLOOR_RUNS=$((FLOOR_RUNS + 1))
    local name="floor-$FLOOR_RUNS-$kind"
    measure "$name" "$FLOOR_PID" "$FLOOR_WARMUP" "$FLOOR_DURATION" "$@"
    if [ -n "$PENDING" ]; then echo "$name" >> "$RAW/$PENDING.floors"; PENDING=""; fi
    LAST_FLOOR="$name"
}
scenario() {  # scenario NAME WRK-ARGS...: after a floor run, before the next one
    local name="$1"; shift
    measure "$name" "$OCCI_PID" "$WARMUP" "$DURATION" "$@"
    echo "$LAST_FLOOR" > "$RAW/$name.floors"
    PENDING="$name"
}

TEXT=(-H 'Accept: text/plain')
JSONH=(-H 'Accept: application/occi+json')
GETS=(-t1 -c"$CONNS" --timeout 10s -s bench/get.lua)
COLL=(-t1 -c"$COLL_CONNS" --timeout 60s -s bench/get.lua)
FLOOR_GET=(get "${GETS[@]}" "$FLOOR/")
FLOOR_POST=(post -t1 -c"$CONNS" --timeout 10s -s bench/floor_post.lua "$FLOOR/")
# -c1 floor with the same per-response wrk work as actions.lua (see floor_post.lua).
FLOOR_POST_1=(post1 -t1 -c1 --timeout 10s -s bench/floor_post.lua "$FLOOR/")
export BENCH_WANT_RESPONSE=0

floor "${FLOOR_GET[@]}"
scenario query_text      "${GETS[@]}" "${TEXT[@]}" "$OCCI/-/"
floor "${FLOOR_GET[@]}"
scenario query_json      "${GETS[@]}" "${JSONH[@]}" "$OCCI/-/"
floor "${FLOOR_GET[@]}"
scenario entity_text     "${GETS[@]}" "${TEXT[@]}" "$OCCI$GET_PATH"
floor "${FLOOR_GET[@]}"
scenario entity_json     "${GETS[@]}" "${JSONH[@]}" "$OCCI$GET_PATH"
floor "${FLOOR_GET[@]}"
scenario collection_text "${COLL[@]}" "${TEXT[@]}" "$OCCI/compute/"
floor "${FLOOR_GET[@]}"
scenario collection_json "${COLL[@]}" "${JSONH[@]}" "$OCCI/compute/"
floor "${FLOOR_GET[@]}"
# Creation after the collection runs: it adds computes, and those need exactly $COUNT stored.
floor "${FLOOR_POST[@]}"
scenario create          -t1 -c"$CONNS" --timeout 10s -s bench/create.lua "$OCCI/compute/"
floor "${FLOOR_POST[@]}"
export BENCH_WANT_RESPONSE=1
floor "${FLOOR_POST_1[@]}"
scenario actions         -t1 -c1 --timeout 10s -s bench/actions.lua "$OCCI$ACTION_PATH"
floor "${FLOOR_POST_1[@]}"

"$PY" - "$RAW/meta.json" "$SEED" "$DURATION" "$WARMUP" "$FLOOR_DURATION" "$FLOOR_WARMUP" "$SERVER_CPU" "$WRK_CPU" <<'PYEOF'
import json, os, platform, subprocess, sys, time
out, seed, duration, warmup, floor_duration, floor_warmup, server_cpu, wrk_cpu = sys.argv[1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""
meta = {
    "command": "make bench", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    "commit": run("git", "rev-parse", "--short", "HEAD"), "cpu": cpu, "cpus": os.cpu_count(),
    "kernel": platform.release(), "python": platform.python_version(),
    "wrk": run("wrk", "--version").splitlines()[0] if run("wrk", "--version") else "",
    "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
    "duration_s": int(duration), "warmup_s": int(warmup),
    "floor_duration_s": int(floor_duration), "floor_warmup_s": int(floor_warmup), "server_cpu": server_cpu, "wrk_cpu": wrk_cpu,
    "seed": json.loads(seed),
}
open(out, "w").write(json.dumps(meta, indent=2))
PYEOF
"$PY" bench/report.py "$RAW" --out bench/results/latest.json
"$PY" bench/report.py "$RAW" --markdown > bench/results/latest.md
echo "bench: wrote bench/results/latest.json and bench/results/latest.md" >&2

#!/usr/bin/env bash
# System calls per write on the durable SQLite store, counted with strace (counts, not times: strace
# slows every call). In process, no HTTP (bench/probes/write_syscalls.py): 9,600 computes created
# in groups of 32, then strace attaches for either 3,200 more creates in groups of 32 or 2,000
# stop/start actions on one compute, one at a time (docs/performance.md, 2026-12-07 20:20).
#
#   bash bench/probes/write_syscalls.sh create|action
set -euo pipefail
cd "$(dirname "$0")/../.."
WHAT="${1:?create or action}"
command -v strace >/dev/null || { echo "write_syscalls: needs strace (apt-get install strace)" >&2; exit 1; }
MARKS="$(mktemp -d)"
trap 'rm -rf "$MARKS"' EXIT
.venv/bin/python bench/probes/write_syscalls.py "$WHAT" "$MARKS" &
PROBE=$!
while [ ! -f "$MARKS/ready" ]; do sleep 0.1; done
strace -f -c -p "$PROBE" -o "$MARKS/counts" 2>/dev/null &
TRACER=$!
while [ ! -f "$MARKS/done" ]; do sleep 0.1; done
kill -INT "$TRACER"
wait "$TRACER" || true
wait "$PROBE"
WRITES="$(cat "$MARKS/writes")"
awk -v n="$WRITES" -v what="$WHAT" 'BEGIN { printf "system calls per %s (%d measured):\n", what, n }
    $NF ~ /^(pwrite64|pread64|fcntl|getpid|fdatasync|write|read)$/ { printf "  %-10s %6.2f\n", $NF, $4 / n }' "$MARKS/counts"

#!/usr/bin/env bash
# CPU instructions per request of one mode of bench/probes/instructions.py (docs/performance.md,
# 2026-12-08), counted by valgrind's callgrind: a run of 10 rounds and a run of 40, the
# difference divided by the 30 rounds of 32 requests between them (start-up and warm-up cancel).
# The runs are deterministic (PYTHONHASHSEED=0): a change of a thousand instructions per request
# shows. Each run takes one to three minutes; the two run at once, one per CPU.
#
#   bash bench/probes/instructions.sh MODE [SRC]
# MODE: service-create, service-action, http-create, http-canned or http-floor.
# SRC: another checkout's src/ to count instead of this one (PYTHONPATH), for an A/B.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE="${1:?service-create, service-action, http-create, http-canned or http-floor}"
SRC="${2:-$PWD/src}"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
count() {
    PYTHONHASHSEED=0 PYTHONPATH="$SRC" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python bench/probes/instructions.py "$MODE" "$1" 2>&1 | awk '/Collected/ {print $4}'
}
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
count 10 > "$OUT/10" &
count 40 > "$OUT/40"
wait
FEW="$(cat "$OUT/10")" MANY="$(cat "$OUT/40")"
[ -n "$FEW" ] && [ -n "$MANY" ] || { echo "a callgrind run failed" >&2; exit 1; }
echo "$MODE ($SRC): $(( (MANY - FEW) / (30 * 32) )) instructions per request"

# Sourced by the probes (threads.sh, pauses.sh, soak.sh), from the repository's root:
#
#   source bench/probes/served.sh
#   serve PYTHONPATH_FOR_THE_SERVER
#
# `serve` starts `occipy serve` pinned to CPU 1 (simulated cloud, delay 0, durable SQLite in
# $DATA/db), waits for it, and seeds 10,000 computes from CPU 0 (bench/seed.py). It sets PID and
# TARGET (the URL of a seeded compute the action scenarios flip). The server is stopped and
# $DATA removed on exit. `first_action` prints the action TARGET's state allows (stop or start).
PY=.venv/bin/python
DATA="$(mktemp -d)"
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
PID=
trap '[ -z "$PID" ] || { kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; }; rm -rf "$DATA"' EXIT

serve() {  # PYTHONPATH for the server ("" for this checkout)
    PYTHONPATH="$1" taskset -c 1 .venv/bin/occipy serve --host 127.0.0.1 --port "$PORT" --data-dir "$DATA/db" \
        --driver-opt delay=0 --log-level warning >/dev/null 2>&1 &
    PID=$!
    for _ in $(seq 100); do curl -fs -o /dev/null "$URL/-/" && break; sleep 0.1; done
    local seed
    seed="$(taskset -c 0 "$PY" bench/seed.py --url "$URL" --count 10000)"
    TARGET="$URL$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["action_path"])' "$seed")"
}

first_action() {
    curl -fs -H 'Accept: application/occi+json' "$TARGET" | "$PY" -c \
        'import json, sys; print("stop" if json.load(sys.stdin)["attributes"]["occi.compute.state"] == "active" else "start")'
}

#!/usr/bin/env bash
# `make test`: install what the tests need, then run every test (unit, conformance, live server,
# pOCCI). Exit 5 from pytest (no tests collected) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
UV="$(command -v uv || echo "$HOME/.local/bin/uv")"
SHARED="$(cd .. && pwd)/shared"

# test: pOCCI's build deps; libvirt: daemons, QEMU and the headers the libvirt-python binding needs;
# browser: Chromium for the dashboard tests; docker-image: dockerd and debootstrap for the image test
bash scripts/bootstrap.sh test libvirt browser docker-image
"$UV" sync --frozen -p "$PYTHON" --quiet --extra libvirt

export POCCI_VENV="${POCCI_VENV:-$HOME/.cache/occipy/pocci-venv}"
if [ ! -x "$POCCI_VENV/bin/pOCCI" ]; then
    echo "installing pOCCI into $POCCI_VENV" >&2
    PYTHON="$PYTHON" bash "$SHARED/tools/pocci/install_pocci.sh" "$POCCI_VENV" >&2
fi

echo "== import layers (import-linter)"
"$UV" run --frozen -p "$PYTHON" lint-imports

echo "== types (mypy --strict)"
"$UV" run --frozen -p "$PYTHON" mypy src

echo "== tests"
set +e
"$UV" run --frozen -p "$PYTHON" pytest -q -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"

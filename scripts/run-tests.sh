#!/usr/bin/env bash
# `make test`: install what the tests need, then run every test (unit, conformance, live server,
# pOCCI). Exit 5 from pytest (no tests collected) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
UV="$(command -v uv || echo "$HOME/.local/bin/uv")"
SHARED="$(cd .. && pwd)/shared"

# test: pOCCI's build deps; libvirt: daemons, QEMU and the headers the libvirt-python binding needs;
# keystone, oidc: the identity services the authentication tests start (test-services.md);
# postgres, docker, openstack: what tests/services/ starts (docs/testing.md); browser: Chromium for
# the dashboard tests; docker-image: debootstrap for the image test. OCCIPY_TEST_PROFILES
# overrides the list (e.g. to leave out openstack on a machine where it cannot be installed).
PROFILES="${OCCIPY_TEST_PROFILES:-test libvirt keystone oidc postgres docker openstack browser docker-image}"
# shellcheck disable=SC2086
bash scripts/bootstrap.sh $PROFILES
"$UV" sync --frozen -p "$PYTHON" --quiet --extra libvirt --extra postgres --extra docker --extra ec2 \
    --extra openstack

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

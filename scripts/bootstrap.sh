#!/usr/bin/env bash
# Make sure uv and the Debian packages every run needs are present, then sync the venv.
# Usage: scripts/bootstrap.sh [extra apt profile...]
#   profiles: test, bench, libvirt, keystone, oidc, postgres, docker, openstack, browser, docker-image
#   (docs/testing.md says what each brings)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}" >&2
        if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
        # Wait for another apt/dpkg run (another checkout's bootstrap) instead of failing at once.
        $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
            --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

for profile in "$@"; do
    case "$profile" in
        base) ;;
        # pOCCI builds pycurl from source
        test) apt_install gcc python3-dev libcurl4-openssl-dev libssl-dev ;;
        bench) apt_install wrk ;;
        libvirt) bash scripts/libvirt-setup.sh ;;
        # the identity tests start a real Keystone (SQLite) and a real OpenID provider (glewlwyd)
        keystone) apt_install python3-keystone ;;
        oidc) apt_install glewlwyd ;;
        # tests/services/postgres.py: initdb/pg_ctl of PostgreSQL 15 (preinstalled on our image)
        postgres) apt_install postgresql-15 ;;
        # tests/services/docker.py: a private dockerd; busybox-static for the 2 MB test image
        docker) apt_install docker.io busybox-static iproute2 ;;
        # tests/services/openstack.py: nova, neutron, cinder, glance, keystone, placement (Zed)
        openstack) bash scripts/openstack/install.sh ;;
        # tests/dashboard: Playwright (PyPI) drives Debian's Chromium, no `playwright install`
        browser) apt_install chromium ;;
        # tests/integration/test_packaging.py: a private dockerd; debootstrap makes the image's base
        docker-image) apt_install docker.io debootstrap ;;
        *) echo "unknown profile $profile" >&2; exit 2 ;;
    esac
done

if ! command -v uv >/dev/null 2>&1 && [ ! -x "$HOME/.local/bin/uv" ]; then
    if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then apt_install python3-pip python3-venv; fi
    "$PYTHON" -m pip install --quiet --user uv 2>/dev/null \
        || "$PYTHON" -m pip install --quiet --user --break-system-packages uv
fi

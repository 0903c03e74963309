#!/usr/bin/env bash
# Bootstrap profile `openstack`: the Debian (Zed) packages that scripts/openstack/cloud.py runs, and
# the api-paste files of the daemon packages, which we do not install (nova-compute pulls in KVM and
# libvirt; the *-common packages ask dbconfig questions). Idempotent; about 3 minutes on a fresh
# Debian 12, a second or two when everything is there.
# Env: OCCIPY_OPENSTACK_CACHE (default ~/.cache/occipy/openstack) receives etc/<service>/*.ini.
set -euo pipefail

PACKAGES=(
    python3-nova python3-keystone python3-glance python3-placement python3-neutron python3-cinder
    python3-psycopg2 rabbitmq-server uwsgi-core uwsgi-plugin-python3 postgresql-15
)
PASTE_PACKAGES=(nova-common glance-common neutron-common cinder-common)
CACHE="${OCCIPY_OPENSTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/occipy/openstack}"

die() { echo "openstack install: $*" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
APT=(apt-get -o DPkg::Lock::Timeout=600)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
updated=
if [ ${#missing[@]} -gt 0 ]; then
    echo "openstack install: installing ${missing[*]} (a few minutes)" >&2
    $SUDO "${APT[@]}" update -qq >/dev/null || die "apt-get update failed"
    updated=1
    # rabbitmq's and the python3-* post-install scripts start no daemon here (policy-rc.d, no systemd)
    DEBIAN_FRONTEND=noninteractive $SUDO "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null || die "apt-get install ${missing[*]} failed"
fi

# The api-paste.ini files live in the daemon packages' *-common: unpack them, do not install them.
# Unpacked again when the installed nova version changes.
version="$(dpkg-query -W -f='${Version}' python3-nova)"
if [ "$(cat "$CACHE/etc/.version" 2>/dev/null)" != "$version" ] || [ ! -f "$CACHE/etc/nova/api-paste.ini" ]; then
    [ -n "$updated" ] || $SUDO "${APT[@]}" update -qq >/dev/null || die "apt-get update failed"
    work="$(mktemp -d)"
    chmod 755 "$work"  # apt downloads as _apt
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && "${APT[@]}" download -qq "${PASTE_PACKAGES[@]}" >/dev/null) \
        || die "apt-get download ${PASTE_PACKAGES[*]} failed"
    for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
    rm -rf "$CACHE/etc"
    mkdir -p "$CACHE/etc"
    for svc in nova glance neutron cinder; do
        mkdir -p "$CACHE/etc/$svc"
        find "$work/root/etc/$svc" "$work/root/usr/share/$svc-common" -maxdepth 2 -name '*paste*.ini' \
            -exec cp {} "$CACHE/etc/$svc/" \; 2>/dev/null || true
    done
    for f in nova/api-paste.ini glance/glance-api-paste.ini neutron/api-paste.ini cinder/api-paste.ini; do
        [ -f "$CACHE/etc/$f" ] || die "$f not found in ${PASTE_PACKAGES[*]}"
    done
    echo "$version" > "$CACHE/etc/.version"
fi

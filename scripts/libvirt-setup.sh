#!/usr/bin/env bash
# Prepare this machine for the libvirt driver's live tests: Debian packages, qemu.conf, daemons.
# Idempotent: installs only what is missing, edits qemu.conf only when user/group are unset, starts
# virtlogd/libvirtd only when they are not running, then waits until qemu:///system answers.
# Exit status is non-zero, with one clear line on stderr, when any step fails.
set -euo pipefail

PACKAGES=(
    libvirt-daemon-system libvirt-clients libvirt-dev pkg-config gcc python3-dev
    qemu-system-x86 qemu-utils dnsmasq-base iptables xorriso busybox-static cpio
)
QEMU_CONF=/etc/libvirt/qemu.conf
URI=qemu:///system
WAIT_SECONDS=${LIBVIRT_SETUP_WAIT:-60}

die() { echo "libvirt-setup: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "libvirt-setup: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null || die "apt-get install ${missing[*]} failed"
fi

# QEMU as root: /dev/kvm is 0600 here, and as libvirt-qemu every libvirtd start re-probes the QEMU
# capabilities (~12 s); as root a warm start takes ~0.1 s (shared/design/ecosystem.md §1a).
[ -f "$QEMU_CONF" ] || die "$QEMU_CONF is missing: is libvirt-daemon-system installed?"
if ! grep -Eq '^[[:space:]]*user[[:space:]]*=' "$QEMU_CONF"; then
    echo 'user = "root"' | $SUDO tee -a "$QEMU_CONF" >/dev/null
fi
if ! grep -Eq '^[[:space:]]*group[[:space:]]*=' "$QEMU_CONF"; then
    echo 'group = "root"' | $SUDO tee -a "$QEMU_CONF" >/dev/null
fi

# No systemd here (PID 1 is not an init system): start the daemons ourselves, in the background.
running() { pgrep -x "$1" >/dev/null 2>&1 && [ "$(ps -o stat= -C "$1" | grep -vc Z)" -gt 0 ]; }
if ! running virtlogd; then
    $SUDO virtlogd -d || die "could not start virtlogd"
fi
if ! running libvirtd; then
    $SUDO libvirtd -d || die "could not start libvirtd"
fi

deadline=$((SECONDS + WAIT_SECONDS))
until virsh -c "$URI" version >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
        die "libvirtd did not answer on $URI within ${WAIT_SECONDS}s (see /var/log/libvirt/libvirtd.log)"
    fi
    sleep 0.5
done
echo "libvirt-setup: $URI is ready ($(virsh -c "$URI" version 2>/dev/null | sed -n 's/^Running hypervisor: //p'))" >&2

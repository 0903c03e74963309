#!/usr/bin/env bash
# Build the tiny bootable test guest into an image directory for the libvirt driver.
# Usage: scripts/build-guest.sh CACHE_DIR
#
# Downloads only Debian packages (the cloud kernel and busybox-static) and produces, in CACHE_DIR,
# one os_tpl named `occipy-guest` following the image-directory convention of
# docs/drivers/libvirt.md:
#   occipy-guest.qcow2         base disk image (small, empty; computes boot a qcow2 overlay of it)
#   occipy-guest.json          sidecar: title, architecture, direct-kernel-boot files and cmdline
#   occipy-guest.vmlinuz       Debian cloud kernel
#   occipy-guest.initrd.gz     busybox initramfs; its /init prints OCCIPY-GUEST-UP on the serial
#                              console, loads virtio/cdrom/acpi modules, prints the NoCloud seed,
#                              runs DHCP on every NIC (hot-plugged ones too), powers off on the
#                              ACPI power button and prints a heartbeat with its disks and NICs every 2 s.
# Idempotent: a complete build of the same VERSION is kept (delete CACHE_DIR/occipy-guest.* to rebuild).
set -euo pipefail

OUT=${1:?usage: build-guest.sh CACHE_DIR}
NAME=occipy-guest
VERSION=2  # bump when the guest's behaviour changes: cached builds of another version are rebuilt
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -s "$OUT/$NAME.qcow2" ] && [ -s "$OUT/$NAME.json" ] && [ -s "$OUT/$NAME.vmlinuz" ] \
        && [ -s "$OUT/$NAME.initrd.gz" ] && [ "$(cat "$OUT/.$NAME.version" 2>/dev/null)" = "$VERSION" ]; then
    echo "build-guest: $OUT already holds $NAME" >&2
    exit 0
fi
for tool in apt-get apt-cache dpkg-deb cpio gzip qemu-img strings; do
    command -v "$tool" >/dev/null || { echo "build-guest: $tool is missing (run scripts/libvirt-setup.sh)" >&2; exit 1; }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# The versioned kernel package behind the cloud metapackage (apt-get download needs a real package).
kernel_pkg() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -1; }
KPKG=$(kernel_pkg)
if [ -z "$KPKG" ]; then
    apt-get update -qq >/dev/null
    KPKG=$(kernel_pkg)
fi
[ -n "$KPKG" ] || { echo "build-guest: no linux-image-cloud-amd64 in the apt lists" >&2; exit 1; }
# apt-get download drops privileges to _apt, which cannot write a root-only mktemp dir.
chmod 0777 "$WORK"
apt-get download -qq "$KPKG" busybox-static 2>/dev/null
dpkg-deb -x linux-image-*.deb kernel
dpkg-deb -x busybox-static_*.deb bb
KVER=$(ls kernel/lib/modules)
MODDIR=kernel/lib/modules/$KVER/kernel

# initramfs tree
R=root
mkdir -p $R/bin $R/proc $R/sys $R/dev $R/seed $R/etc/acpi/PWRF $R/lib/modules $R/tmp $R/run
cp bb/bin/busybox $R/bin/busybox
# Load order follows each module's depends= (read from its .modinfo section below).
MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk failover
net_failover virtio_net scsi_common scsi_mod libata ata_piix cdrom sr_mod isofs evdev button"
for m in $MODULES; do
    f=$(find "$MODDIR" -name "$m.ko" | head -1)
    [ -n "$f" ] || { echo "build-guest: module $m.ko not in $KPKG" >&2; exit 1; }
    for dep in $(strings "$f" | sed -n 's/^depends=//p' | tr ',' ' '); do
        [ -e "$R/lib/modules/$dep.ko" ] || { echo "build-guest: $m needs $dep loaded first" >&2; exit 1; }
    done
    cp "$f" "$R/lib/modules/$m.ko"
done
echo "$MODULES" | tr '\n' ' ' > $R/etc/modules

cat > $R/etc/acpi/PWRF/00000080 <<'SH'
#!/bin/sh
echo "OCCIPY-GUEST-POWEROFF" > /dev/console
poweroff -f
SH
chmod +x $R/etc/acpi/PWRF/00000080

cat > $R/bin/dhcp-event <<'SH'
#!/bin/sh
# udhcpc hook: configure the leased address and say so on the console.
[ "$1" = bound ] || [ "$1" = renew ] || exit 0
ip addr flush dev "$interface"
ip addr add "$ip/${mask:-24}" dev "$interface"
echo "OCCIPY-GUEST-DHCP $interface $ip" > /dev/console
SH
chmod +x $R/bin/dhcp-event

cat > $R/init <<'SH'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "OCCIPY-GUEST-UP kernel=$(uname -r)" > /dev/console
for m in $(cat /etc/modules); do insmod /lib/modules/$m.ko 2>/dev/null; done
sleep 1
if mount -t iso9660 -o ro /dev/sr0 /seed 2>/dev/null; then
    echo "OCCIPY-GUEST-SEED $(tr '\n' ' ' < /seed/meta-data)" > /dev/console
fi
acpid -c /etc/acpi -l /tmp/acpid.log
# DHCP on every NIC, including NICs hot-plugged later: udhcpc runs in the background and retries
# forever, so a slow or missing DHCP server never holds up the heartbeat.
dhcp_new_nics() {
    for dev in /sys/class/net/eth*; do
        [ -e "$dev" ] || continue
        nic=${dev##*/}
        [ -e "/run/dhcp.$nic" ] && continue
        touch "/run/dhcp.$nic"
        ip link set "$nic" up
        udhcpc -f -i "$nic" -s /bin/dhcp-event -t 5 -T 1 -A 2 >/dev/null 2>&1 &
    done
}
while true; do
    dhcp_new_nics
    echo "OCCIPY-GUEST-ALIVE disks=$(ls /sys/block | tr '\n' ,) nics=$(ls /sys/class/net | tr '\n' ,)" > /dev/console
    sleep 2
done
SH
chmod +x $R/init

(cd $R && find . | cpio -o -H newc --quiet | gzip -9) > "$OUT/$NAME.initrd.gz"
cp kernel/boot/vmlinuz-"$KVER" "$OUT/$NAME.vmlinuz"
qemu-img create -q -f qcow2 "$OUT/$NAME.qcow2" 64M
cat > "$OUT/$NAME.json" <<JSON
{
  "title": "occipy test guest (busybox initramfs, Debian kernel $KVER)",
  "architecture": "x64",
  "kernel": "$NAME.vmlinuz",
  "initrd": "$NAME.initrd.gz",
  "cmdline": "console=ttyS0 panic=-1 quiet"
}
JSON
echo "$VERSION" > "$OUT/.$NAME.version"
echo "build-guest: built $NAME in $OUT (kernel $KVER)" >&2

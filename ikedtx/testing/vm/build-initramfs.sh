#!/bin/bash
# (ikedtx test suite: ikedtx/testing/lab/vm.py runs this; adapted from the lab reference scripts.)
# Build a tiny initramfs (busybox + virtio/9p/overlay modules) for booting a
# Debian distro kernel under qemu with the HOST root filesystem shared
# read-only over virtio-9p and a tmpfs overlay on top of it.
#
# Usage: build-initramfs.sh [KDIR] [KVER] [OUT]
#   KDIR  tree where linux-image-*.deb was extracted (dpkg-deb -x), default $VM_DIR/k-amd64
#   KVER  kernel release, default: the only one under $KDIR/lib/modules
#   OUT   output, default $VM_DIR/initramfs-$KVER.cpio.gz
set -euo pipefail
VM_DIR=${VM_DIR:-/var/cache/ikedtx-vm}
KDIR=${1:-$VM_DIR/k-amd64}
KVER=${2:-$(ls "$KDIR/lib/modules" | head -n1)}
OUT=${3:-$VM_DIR/initramfs-$KVER.cpio.gz}
MODDIR=$KDIR/lib/modules/$KVER
BUSYBOX=${BUSYBOX:-/bin/busybox}            # Debian package busybox-static

[ -f "$MODDIR/modules.dep" ] || depmod -b "$KDIR" "$KVER"   # package ships no modules.dep

WORK=$(mktemp -d "$VM_DIR/initramfs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK"/{bin,dev,proc,sys,mods,newroot,lower,rw}
cp "$BUSYBOX" "$WORK/bin/busybox"

# modules needed before the root fs can be mounted, in dependency order
: > "$WORK/mods/order"
for m in virtio_pci 9pnet_virtio 9p overlay; do
    modprobe -d "$KDIR" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
    cp "$ko" "$WORK/mods/"
    basename "$ko" >> "$WORK/mods/order"
done

cat > "$WORK/init" <<'EOF'
#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t devtmpfs dev /dev
for m in $($B cat /mods/order); do $B insmod /mods/$m || echo "kvmlab-init: insmod $m failed"; done
KVER=$($B uname -r)
O9P=trans=virtio,version=9p2000.L,msize=524288
# host / read-only, page cache allowed (host files must not change during the run)
$B mount -t 9p -o $O9P,ro,cache=loose hostroot /lower || { echo "kvmlab-init: 9p root mount failed"; $B reboot -f; }
$B mount -t tmpfs -o mode=755,size=50% rw /rw
$B mkdir -p /rw/upper /rw/work
$B mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot || { echo "kvmlab-init: overlay failed"; $B reboot -f; }
N=/newroot
$B mkdir -p $N/lib/modules/$KVER $N/kvmlab
$B mount -t 9p -o $O9P,ro,cache=loose kmods $N/lib/modules/$KVER
$B mount -t 9p -o $O9P,cache=none kvmlab $N/kvmlab       # per-run rw dir: cmd.sh in, rc/out files out
$B mount -t proc proc $N/proc
$B mount -t sysfs sys $N/sys
$B mount -t devtmpfs dev $N/dev
$B mkdir -p $N/dev/pts $N/dev/shm
$B mount -t devpts -o ptmxmode=666 devpts $N/dev/pts
$B mount -t tmpfs tmpfs $N/dev/shm
$B mount -t tmpfs -o mode=755 tmpfs $N/run            # hide the host's /run (its netns files etc.)
$B mount -t tmpfs -o mode=1777 tmpfs $N/var/tmp
$B mount -t debugfs debugfs $N/sys/kernel/debug 2>/dev/null
$B cp /stage2 $N/kvmlab-stage2
$B mkdir -p $N/.kvmlab-bin; $B cp $B $N/.kvmlab-bin/busybox   # lives in the tmpfs upper layer: usable after 9p is gone
$B umount /proc
exec $B switch_root $N /kvmlab-stage2
EOF
chmod 755 "$WORK/init"

# stage 2 runs as PID 1 inside the new root, with the host's /bin/sh and tools.
# /.kvmlab-bin/busybox (copied from the initramfs into tmpfs) does the final power-off.
cat > "$WORK/stage2" <<'EOF'
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8
hostname kvmlab 2>/dev/null
ip link set lo up 2>/dev/null
# the kernel calls modprobe for crypto-/xfrm-/netdev- aliases; make sure the path is right
[ -x /sbin/modprobe ] && echo /sbin/modprobe > /proc/sys/kernel/modprobe
echo kvmlab-stage2 > /dev/kmsg
# ttyS1 = the command's output channel (host: vmrun's stdout); ttyS0 = kernel console
OUT=/dev/ttyS1; [ -c $OUT ] || OUT=/dev/console
stty -F $OUT raw -echo 2>/dev/null
if [ -f /kvmlab/cmd.sh ]; then
    sh /kvmlab/cmd.sh < /dev/null > $OUT 2>&1
    echo $? > /kvmlab/rc
else
    echo "kvmlab: no /kvmlab/cmd.sh" > $OUT; echo 127 > /kvmlab/rc
fi
sync
exec /.kvmlab-bin/busybox reboot -f     # reboot(2); qemu -no-reboot exits (works with acpi=off too)
EOF
chmod 755 "$WORK/stage2"

(cd "$WORK" && find . -print | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1 > "$OUT.tmp")
mv "$OUT.tmp" "$OUT"
echo "built $OUT ($(stat -c %s "$OUT") bytes) modules: $(tr '\n' ' ' < "$WORK/mods/order")"

#!/bin/bash
# (ikedtx test suite: ikedtx/testing/lab/vm.py runs this; adapted from the lab reference scripts.)
# One-time setup (idempotent) for $VM_DIR: qemu + a Debian 6.1 kernel with
# ESP/AH/XFRM modules, WITHOUT installing that kernel into the host's /boot or
# /lib/modules (the .deb is only unpacked under $VM_DIR).
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
LAB=${VM_DIR:-/var/cache/ikedtx-vm}
mkdir -p "$LAB"
cd "$LAB"
export DEBIAN_FRONTEND=noninteractive

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)      # initramfs + final reboot(2)
command -v depmod >/dev/null || need+=(kmod)        # depmod/modprobe, also used inside the guest
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# kernel: newest linux-image-<abi>-amd64 that linux-image-amd64 depends on
PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
KVER=${PKG#linux-image-}
if [ ! -f "k-amd64/boot/vmlinuz-$KVER" ]; then
    mkdir -p debs k-amd64
    (cd debs && apt-get download "$PKG")
    dpkg-deb -x debs/"$PKG"_*.deb k-amd64
fi
[ -f "k-amd64/lib/modules/$KVER/modules.dep" ] || depmod -b "$LAB/k-amd64" "$KVER"

# uncompressed ELF vmlinux: qemu boots it through its PVH entry point, which
# skips the in-guest xz decompression (~2 s under TCG)
if [ ! -f "vmlinux-$KVER" ]; then
    python3 - "$LAB/k-amd64/boot/vmlinuz-$KVER" "$LAB/vmlinux-$KVER" <<'EOF'
import lzma, sys
d = open(sys.argv[1], 'rb').read()
i = d.find(b'\xfd7zXZ\x00')                       # Debian bzImages are xz-compressed
out = lzma.LZMADecompressor().decompress(d[i:])
assert out[:4] == b'\x7fELF', 'not an ELF vmlinux'
open(sys.argv[2], 'wb').write(out)
EOF
fi

[ -f "initramfs-$KVER.cpio.gz" ] || VM_DIR="$LAB" "$HERE/build-initramfs.sh" "$LAB/k-amd64" "$KVER" "$LAB/initramfs-$KVER.cpio.gz"

echo "setup done: KVER=$KVER  (run: VM_DIR=$LAB $HERE/vmrun.sh -- uname -r)"

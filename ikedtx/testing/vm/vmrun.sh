#!/bin/bash
# (ikedtx test suite: ikedtx/testing/lab/vm.py runs this; adapted from the lab reference scripts.)
# Boot a Debian distro kernel (with ESP/XFRM modules) under qemu, with the host
# root filesystem visible read-only (9p + tmpfs overlay: writes are allowed but
# vanish), run ONE command inside it as root, power off, and exit with the
# command's exit status.  The command's stdout+stderr come out on our stdout.
#
#   vmrun.sh [-m MEM_MB] [-s CPUS] [-t TIMEOUT_S] [-a kvm|tcg] [-k KERNEL] [-i INITRD] [-K] -- command [args...]
#   -K   keep the per-run directory ($RUN/console.log = kernel console)
#   env: KVER, KAPPEND (extra kernel cmdline), QEMU_EXTRA, TCG_CPU (default max)
#
# Inside the guest: cwd = the caller's cwd, /kvmlab = the per-run host directory
# (read-write; files written there survive the run), no network devices at all.
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
LAB=${VM_DIR:-/var/cache/ikedtx-vm}
KVER=${KVER:-$(cd "$LAB" && ls -1 vmlinux-* 2>/dev/null | head -n1 | sed 's/^vmlinux-//')}
[ -n "$KVER" ] || { echo "vmrun: no $LAB/vmlinux-*; run $HERE/setup.sh" >&2; exit 2; }
# uncompressed ELF vmlinux, booted via its PVH entry: ~2 s faster under TCG than
# the bzImage (no xz decompression inside the guest)
KERNEL=${KERNEL:-$LAB/vmlinux-$KVER}
INITRD=${INITRD:-$LAB/initramfs-$KVER.cpio.gz}
KMODS=${KMODS:-$LAB/k-amd64/lib/modules/$KVER}
MEM=${MEM:-1024}
SMP=${SMP:-1}
TIMEOUT=${TIMEOUT:-300}
KEEP=0
# KVM only helps with real VT-x/AMD-V.  On this host /dev/kvm is "kvm_pvm"
# (pagetable-based paravirtual KVM): an unmodified kernel hangs in early boot.
if [ -z "${ACCEL:-}" ]; then
    if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && [ ! -d /sys/module/kvm_pvm ]; then
        ACCEL=kvm
    else
        ACCEL=tcg
    fi
fi
while getopts "m:s:t:a:k:i:K" o; do
    case $o in
        m) MEM=$OPTARG;; s) SMP=$OPTARG;; t) TIMEOUT=$OPTARG;; a) ACCEL=$OPTARG;;
        k) KERNEL=$OPTARG;; i) INITRD=$OPTARG;; K) KEEP=1;;
        *) sed -n '2,13p' "$0" >&2; exit 2;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [opts] -- command [args...]" >&2; exit 2; }
[ -f "$INITRD" ] || VM_DIR="$LAB" "$HERE/build-initramfs.sh" "$LAB/k-amd64" "$KVER" "$INITRD" >&2

RUN=$(mktemp -d "$LAB/run.XXXXXX")
cleanup() { if [ "$KEEP" = 1 ]; then echo "vmrun: run dir kept: $RUN" >&2; else rm -rf "$RUN"; fi; }
trap cleanup EXIT
{
    printf 'cd %q 2>/dev/null || cd /\n' "$PWD"
    printf 'exec'; printf ' %q' "$@"; printf '\n'
} > "$RUN/cmd.sh"

if [ "$ACCEL" = kvm ]; then CPU="-cpu host"; else CPU="-cpu ${TCG_CPU:-max}"; fi
FS="security_model=none,multidevs=remap"
set +e
# ttyS0 -> console.log (kernel messages), ttyS1 -> our stdout (the command's output)
# shellcheck disable=SC2086
timeout --foreground -k 5 "$TIMEOUT" qemu-system-x86_64 \
    -accel "$ACCEL" $CPU -m "$MEM" -smp "$SMP" \
    -nodefaults -no-user-config -display none -no-reboot -nic none \
    -kernel "$KERNEL" -initrd "$INITRD" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 oops=panic cryptomgr.notests acpi=off ${KAPPEND:-}" \
    -serial "file:$RUN/console.log" \
    -chardev stdio,id=out,signal=off -device isa-serial,chardev=out \
    -fsdev "local,id=hostroot,path=/,$FS,readonly=on" -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    -fsdev "local,id=kmods,path=$KMODS,$FS,readonly=on" -device virtio-9p-pci,fsdev=kmods,mount_tag=kmods \
    -fsdev "local,id=kvmlab,path=$RUN,$FS" -device virtio-9p-pci,fsdev=kvmlab,mount_tag=kvmlab \
    ${QEMU_EXTRA:-} < /dev/null
qrc=$?
set -e
if [ -s "$RUN/rc" ]; then
    exit "$(cat "$RUN/rc")"
fi
echo "vmrun: no exit status from guest (qemu rc=$qrc); kernel console tail:" >&2
tail -n 40 "$RUN/console.log" >&2 || true
exit 255

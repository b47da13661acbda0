#!/bin/bash
# (ikedtx test suite: tests.test_systemd_unit runs this.)
# Boot systemd as PID 1 of a throw-away container on this host, the way
# systemd-nspawn would (which Debian ships separately): new mount, PID,
# network, UTS, IPC and cgroup namespaces, the host's root filesystem under a
# tmpfs overlay (every write vanishes), its own /run, /tmp and cgroup
# subtree.  systemd starts check.service and exits when it ends.
#
#   sdcontainer.sh DIR [TIMEOUT_S]
#   DIR/units/*    copied to /etc/systemd/system (check.service among them;
#                  give it SuccessAction=exit-force and FailureAction=exit-force)
#   DIR/etc/*      copied to /etc
#   DIR/results    bind-mounted read-write at /results: what the check writes
#   SDCONTAINER_SHARE=PATH[:PATH...]  host directories bound read-only at the
#                  same paths (a checkout or a virtualenv under /tmp, which the
#                  container's own /tmp would hide)
# Exit status: 0 when systemd exited by itself, 124 on timeout.
set -u
DIR=$(readlink -f "$1")
TIMEOUT=${2:-120}
if [ "${SDCONTAINER_INNER:-}" = 1 ]; then
    set -e
    mount -t tmpfs tmpfs "$DIR/mnt"
    mkdir -p "$DIR/mnt/upper" "$DIR/mnt/work" "$DIR/mnt/root"
    R=$DIR/mnt/root
    mount -t overlay overlay -o "lowerdir=/,upperdir=$DIR/mnt/upper,workdir=$DIR/mnt/work" "$R"
    mount -t proc proc "$R/proc"
    mount -t sysfs -o ro sysfs "$R/sys"
    mount -t tmpfs -o mode=755 tmpfs "$R/sys/fs/cgroup"
    if [ -d /sys/fs/cgroup/systemd ]; then
        mkdir -p "$R/sys/fs/cgroup/systemd" "$R/sys/fs/cgroup/unified"
        mount -t cgroup -o none,name=systemd cgroup "$R/sys/fs/cgroup/systemd"
        mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup/unified"
    else
        mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
    fi
    mount --rbind /dev "$R/dev"
    mount -t tmpfs -o mode=755 tmpfs "$R/run"
    mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
    IFS=: read -r -a shared <<< "${SDCONTAINER_SHARE:-}"
    for p in "${shared[@]}"; do
        [ -n "$p" ] || continue
        mkdir -p "$R$p"
        mount --rbind "$p" "$R$p"
        mount -o remount,bind,ro "$R$p"
    done
    cp -a "$DIR/units/." "$R/etc/systemd/system/"
    [ -d "$DIR/etc" ] && cp -a "$DIR/etc/." "$R/etc/"
    echo ikx-sdcontainer > "$R/etc/hostname"
    mkdir -p "$R/results"
    mount --bind "$DIR/results" "$R/results"
    cd "$R"
    exec chroot . env container=ikedtx-test /lib/systemd/systemd --unit=check.service
fi
mkdir -p "$DIR/mnt"
CG=ikx-sd-$$
if [ -d /sys/fs/cgroup/systemd ]; then HIER="systemd unified"; else HIER=.; fi
for h in $HIER; do
    mkdir -p "/sys/fs/cgroup/$h/$CG"
    echo $$ > "/sys/fs/cgroup/$h/$CG/cgroup.procs"
done
SDCONTAINER_INNER=1 unshare --mount --pid --fork --kill-child --net --uts --ipc --cgroup --propagation private \
    "$0" "$DIR" &
U=$!
status=0
for _ in $(seq "$TIMEOUT"); do
    kill -0 $U 2>/dev/null || break
    sleep 1
done
if kill -0 $U 2>/dev/null; then
    echo "sdcontainer: timed out after ${TIMEOUT}s" >&2
    pkill -9 -P $U; kill -9 $U; status=124
fi
wait $U
for h in $HIER; do
    echo $$ > "/sys/fs/cgroup/$h/cgroup.procs"
    find "/sys/fs/cgroup/$h/$CG" -depth -type d -exec rmdir {} \; 2>/dev/null
done
exit $status

#!/bin/bash
# (ikedtx test suite: .ci/setup runs this; ikedtx/testing/lab/chroot.py uses the result.)
# One-time setup (idempotent, cached) of $TRIXIE_DIR: a Debian 13 (trixie) tree
# made with debootstrap, holding the peers that Debian 12 lacks:
#  - openiked 7.4 (trixie's);
#  - strongSwan 6 with ML-KEM: trixie's 6.0.1 has neither the `ml` plugin nor
#    an openssl plugin with ML-KEM, unstable's 6.1 has the latter (OpenSSL >= 3.5
#    does the ML-KEM), so charon, swanctl and their plugins come from sid
#    (pinned low: nothing else moves to sid but what they depend on, e.g. libc6).
# The tree is only ever run from (chroot, read-only below an overlay); nothing is
# installed on the host but debootstrap. The versions it got: $TRIXIE_DIR/VERSIONS.
set -euo pipefail
ROOT=${TRIXIE_DIR:-/var/cache/ikedtx-trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Bump when the recipe below changes: a tree with another stamp is rebuilt.
STAMP="ikedtx-trixie 1"
export DEBIAN_FRONTEND=noninteractive

if [ -f "$ROOT/STAMP" ] && [ "$(cat "$ROOT/STAMP")" = "$STAMP" ]; then
    echo "trixie chroot ready: $ROOT"
    exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -qq; apt-get install -y -qq --no-install-recommends debootstrap; }

# Built beside the target and renamed into place: an interrupted run leaves no half tree.
tmp="$ROOT.new.$$"
trap 'rm -rf "$tmp"' EXIT
debootstrap --variant=minbase --include=openiked,iproute2 trixie "$tmp" "$MIRROR" >"$tmp.log" 2>&1 \
    || { tail -30 "$tmp.log"; rm -f "$tmp.log"; exit 1; }
rm -f "$tmp.log"
# Daemons must not start inside the tree while packages install.
printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
chmod 755 "$tmp/usr/sbin/policy-rc.d"
# sid is a moving target and a mirror's copy may be older than its Valid-Until.
echo "deb [check-valid-until=no] $MIRROR sid main" >"$tmp/etc/apt/sources.list.d/sid.list"
printf 'Package: *\nPin: release n=sid\nPin-Priority: 100\n' >"$tmp/etc/apt/preferences.d/sid"
chroot "$tmp" apt-get update -qq
chroot "$tmp" apt-get install -y -qq --no-install-recommends -t sid \
    strongswan-charon strongswan-swanctl libstrongswan libstrongswan-standard-plugins \
    libstrongswan-extra-plugins libcharon-extra-plugins >/dev/null
chroot "$tmp" apt-get clean
rm -rf "$tmp"/var/lib/apt/lists/*
chroot "$tmp" dpkg-query -W openiked strongswan-charon libstrongswan libcharon-extra-plugins libc6 libssl3t64 \
    iproute2 >"$tmp/VERSIONS"
# The openssl plugin must offer ML-KEM, else the tree is useless for the tests.
grep -q openssl_kem_create "$tmp/usr/lib/ipsec/plugins/libstrongswan-openssl.so" \
    || { echo "strongSwan's openssl plugin has no ML-KEM" >&2; exit 1; }
echo "$STAMP" >"$tmp/STAMP"
rm -rf "$ROOT"
mv "$tmp" "$ROOT"
trap - EXIT
echo "trixie chroot ready: $ROOT"
cat "$ROOT/VERSIONS"

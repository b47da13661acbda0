# -*- test-case-name: tests.test_lab_chroot -*-
"""
Peers from another Debian release: a tree made with debootstrap
(C{ikedtx/testing/trixie/setup.sh}: Debian 13 with openiked 7.4 and
strongSwan 6) whose programs run chrooted into it.

Each program gets its own mount namespace (C{unshare -m}) in which the tree
is the lower layer of an overlay on a tmpfs (so nothing a daemon writes
reaches the cached tree, and two daemons never share /run), with the host's
/proc, /dev and /sys, a private /run, and the host directories the peer
needs bound at the same paths inside (its configuration, sockets, logs), so
that the peer classes keep writing their files where they always do::

    root = trixieRoot()                       # skips, or fails under IKEDTX_REQUIRE_LAB=1
    argv = root.command(["/usr/lib/ipsec/charon"], binds=[directory])
    namespace.popen(argv, ...)                # the PID is charon's own: everything execs

L{CharonPeer} and L{OpenIkedPeer} take such a tree as C{root=}.
"""

import os
import shlex

from ._util import run

#: where .ci/setup puts the Debian 13 tree
TRIXIE_DIR = os.environ.get("IKEDTX_TRIXIE_DIR", "/var/cache/ikedtx-trixie")
TRIXIE_SETUP = "ikedtx/testing/trixie/setup.sh (run by .ci/setup)"


class Chroot:
    """
    A Debian tree to run programs from.

    @ivar root: its directory on the host.
    @ivar name: for messages (C{"trixie"}).
    """

    def __init__(self, root, name=None):
        self.root = os.path.abspath(root)
        self.name = name or os.path.basename(self.root)

    def __repr__(self):
        return "<Chroot %s>" % (self.root,)

    def path(self, inside):
        """
        The host path of C{inside} (an absolute path in the tree).
        """
        return os.path.join(self.root, inside.lstrip("/"))

    def exists(self, inside):
        return os.path.exists(self.path(inside))

    def require(self, inside, install):
        """
        Return C{inside} if the tree has it, else give up on the test
        (L{support.missing}) naming C{install}.
        """
        from .. import support

        if not os.path.exists(self.path(inside)):
            support.missing("%s not found in %s (%s)" % (inside, self.root, install))
        return inside

    def versions(self):
        """
        {package: version} of the tree's peers, as setup.sh recorded them.
        """
        versions = {}
        try:
            with open(self.path("VERSIONS")) as f:
                for line in f:
                    if "\t" in line:
                        package, version = line.rstrip("\n").split("\t", 1)
                        versions[package.split(":")[0]] = version
        except FileNotFoundError:
            pass
        return versions

    def script(self, argv, binds=(), mounts=None, env=None):
        """
        The shell script that sets up the mount namespace and execs
        C{argv} chrooted; see L{command}.
        """
        q = shlex.quote
        lines = [
            "set -e",
            # /mnt, hidden in this namespace only, holds the overlay's
            # layers and mount point; nothing is left on the host.
            "T=/mnt",
            'mount -t tmpfs -o mode=0755 ikx-chroot "$T"',
            'mkdir "$T/upper" "$T/work" "$T/root"',
            'mount -t overlay ikx-chroot -o lowerdir=%s,upperdir="$T/upper",workdir="$T/work" "$T/root"' % (
                q(self.root),),
            'mount --bind /proc "$T/root/proc"',
            'mount --rbind /dev "$T/root/dev"',
            'mount --bind /sys "$T/root/sys"',
            'mount -t tmpfs -o mode=0755 tmpfs "$T/root/run"',
        ]
        pairs = [(b, b) for b in binds] + sorted((mounts or {}).items())
        for host, inside in pairs:
            target = '"$T/root"%s' % (q(inside),)
            if os.path.isdir(host):
                lines.append("mkdir -p %s" % (target,))
            else:
                lines.append("mkdir -p %s && touch %s" % ('"$(dirname %s)"' % (target,), target))
            lines.append("mount --bind %s %s" % (q(host), target))
        assignments = ["%s=%s" % (k, q(v)) for k, v in sorted((env or {}).items())]
        lines.append('exec chroot "$T/root" /usr/bin/env %s' % (" ".join(assignments + [q(a) for a in argv]),))
        return "\n".join(lines)

    def command(self, argv, binds=(), mounts=None, env=None):
        """
        The argv that runs C{argv} chrooted into a private overlay of the
        tree, in a new mount namespace; it execs all the way, so the PID
        of a process started with it is C{argv}'s.

        @param binds: host directories (or files) bound at the same path
            inside.
        @param mounts: {host path: path inside} bound elsewhere (a peer's
            C{etc/} over C{/etc/iked}).
        @param env: variables set for C{argv} only (not for the set-up
            commands, which run the host's binaries).
        """
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", self.script(argv, binds, mounts, env)]

    def run(self, argv, binds=(), mounts=None, env=None, check=True, timeout=30, input=None):
        """
        Run C{argv} in the tree (in the host's network namespace) and wait
        for it; see L{_util.run}.
        """
        return run(self.command(argv, binds, mounts, env), check=check, timeout=timeout, input=input)


def trixieRoot():
    """
    The Debian 13 tree (openiked 7.4, strongSwan 6 with ML-KEM), or give up
    on the test: a skip on a developer's machine, a failure under
    C{IKEDTX_REQUIRE_LAB=1}.
    """
    from .. import support

    support.requireRoot()
    if not os.path.exists(os.path.join(TRIXIE_DIR, "STAMP")):
        support.missing("no Debian 13 chroot at %s (%s)" % (TRIXIE_DIR, TRIXIE_SETUP))
    return Chroot(TRIXIE_DIR, name="trixie")

# -*- test-case-name: tests.test_lab_chroot -*-
"""
The lab's chrooted peers (L{ikedtx.testing.lab.chroot}): programs of the
Debian 13 tree run in it, with the host directories they are given at the
same paths, writes elsewhere kept out of the cached tree, and their own
PID; a missing tree is a skip, or a failure under C{IKEDTX_REQUIRE_LAB=1}.
"""

import os

from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from ikedtx.testing import support
from ikedtx.testing.lab import LabMixin, poll
from ikedtx.testing.lab import chroot
from ikedtx.testing.lab.chroot import Chroot, trixieRoot


class MissingTreeTests(SynchronousTestCase):
    def test_missingTreeFailsUnderRequireLab(self):
        """
        Without the tree, L{trixieRoot} fails the test when every
        prerequisite is required, naming the script that makes it.
        """
        self.patch(support, "REQUIRE_LAB", True)
        self.patch(support, "requireRoot", lambda: None)
        self.patch(chroot, "TRIXIE_DIR", self.mktemp())
        error = self.assertRaises(support.MissingPrerequisite, trixieRoot)
        self.assertIn("ikedtx/testing/trixie/setup.sh", str(error))

    def test_missingTreeSkipsOtherwise(self):
        self.patch(support, "REQUIRE_LAB", False)
        self.patch(support, "requireRoot", lambda: None)
        self.patch(chroot, "TRIXIE_DIR", self.mktemp())
        self.assertRaises(SkipTest, trixieRoot)

    def test_script(self):
        """
        The set-up script binds each host path at the same path inside,
        C{mounts} at their own, and sets C{env} only for the program.
        """
        script = Chroot("/srv/tree").script(["/usr/sbin/iked", "-d"], binds=["/srv/lab dir"],
                                            mounts={"/srv/lab dir/etc": "/etc/iked"}, env={"LD_PRELOAD": "/x.so"})
        self.assertIn("lowerdir=/srv/tree,", script)
        self.assertIn("""mount --bind '/srv/lab dir' "$T/root"'/srv/lab dir'""", script)
        self.assertIn("""mount --bind '/srv/lab dir/etc' "$T/root"/etc/iked""", script)
        self.assertTrue(script.endswith('exec chroot "$T/root" /usr/bin/env LD_PRELOAD=/x.so /usr/sbin/iked -d'),
                        script)


class TreeTests(LabMixin, TestCase):
    def setUp(self):
        self.root = trixieRoot()

    def test_debian13(self):
        """
        Programs run from the tree: its /etc/debian_version says 13, and it
        holds openiked 7.4 and strongSwan 6.
        """
        result = self.root.run(["cat", "/etc/debian_version"])
        self.assertTrue(result.stdout.startswith("13."), result.stdout)
        versions = self.root.versions()
        self.assertTrue(versions["openiked"].startswith("7.4"), versions)
        self.assertTrue(versions["strongswan-charon"].startswith("6."), versions)

    def test_bindsAndOverlay(self):
        """
        A bound host directory is written through at the same path; a write
        anywhere else stays in the program's overlay, not in the tree.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        probe = "/usr/ikx-chroot-probe-%d" % (os.getpid(),)
        self.root.run(["sh", "-c", 'echo inside > "$0/out" && touch "$1"', directory, probe], binds=[directory])
        with open(os.path.join(directory, "out")) as f:
            self.assertEqual(f.read(), "inside\n")
        self.assertFalse(os.path.exists(self.root.path(probe)))

    def test_pidIsTheProgram(self):
        """
        Started in a namespace, the process is the program itself (every
        step execs), chrooted into the tree, so the lab stops it by its PID.
        """
        namespace = self.network().namespace("c")
        process = namespace.popen(self.root.command(["sleep", "30"]))
        self.addCleanup(process.kill)

        def comm():
            with open("/proc/%d/comm" % (process.pid,)) as f:
                return f.read().strip() == "sleep"

        poll(comm, 5.0, what="sleep as the process's own program")
        # Its root directory is the tree's (seen through /proc).
        with open("/proc/%d/root/etc/debian_version" % (process.pid,)) as f:
            self.assertTrue(f.read().startswith("13."))
        process.terminate()
        process.wait(5)

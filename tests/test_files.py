# -*- test-case-name: tests.test_files -*-
"""
Tests for L{ikedtx.files}: the one secrecy check of files holding secrets,
in its two strengths (the configuration and the private key).
"""

import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.files import CONFIG_FILE, PRIVATE_KEY, SecrecyRule, secrecyProblem
from tests.support import requireRoot


class FakeStat:
    """
    The two fields L{secrecyProblem} reads, for owners no test can chown to
    without root.
    """

    def __init__(self, uid, mode):
        self.st_uid = uid
        self.st_mode = mode


def _otherUid():
    return 4243 if os.geteuid() == 4242 else 4242


class SecrecyProblemTests(SynchronousTestCase):
    """
    L{secrecyProblem} on real files and on stat results.
    """

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "secret")
        with open(self.path, "w") as f:
            f.write("secret\n")
        os.chmod(self.path, 0o600)

    def check(self, rule, path=None):
        return secrecyProblem(os.stat(path or self.path), rule)

    def test_ownerOnly(self):
        """
        A regular file of ours that only we can read or write is safe under
        both rules.
        """
        for mode in (0o600, 0o400):
            os.chmod(self.path, mode)
            self.assertIsNone(self.check(CONFIG_FILE), oct(mode))
            self.assertIsNone(self.check(PRIVATE_KEY), oct(mode))

    def test_defaultRule(self):
        """
        Without a rule the configuration's is used (iked's
        check_file_secrecy()).
        """
        os.chmod(self.path, 0o640)
        self.assertIsNone(secrecyProblem(os.stat(self.path)))
        os.chmod(self.path, 0o604)
        self.assertEqual(secrecyProblem(os.stat(self.path)), "group writable or world read/writable")

    def test_configGroupAndOthers(self):
        """
        The configuration may be read by its group, nothing more: group write
        or execute, or any bit for others, is refused.
        """
        for mode in (0o640, 0o600, 0o440):
            os.chmod(self.path, mode)
            self.assertIsNone(self.check(CONFIG_FILE), oct(mode))
        for mode in (0o660, 0o610, 0o604, 0o602, 0o601, 0o666):
            os.chmod(self.path, mode)
            self.assertEqual(
                self.check(CONFIG_FILE), "group writable or world read/writable", oct(mode)
            )

    def test_privateKeyGroupAndOthers(self):
        """
        The private key may not be touched by group or others at all; the
        message names the mode and the fix.
        """
        for mode in (0o640, 0o610, 0o604, 0o620, 0o601, 0o644):
            os.chmod(self.path, mode)
            self.assertEqual(
                self.check(PRIVATE_KEY),
                "private key is accessible by group or others (mode %04o); chmod 600 it" % (mode,),
            )

    def test_owner(self):
        """
        A file owned by neither root nor the running user is refused, under
        each rule with its own message.
        """
        uid = _otherUid()
        regular = stat.S_IFREG | 0o600
        self.assertEqual(secrecyProblem(FakeStat(uid, regular), CONFIG_FILE), "owner not root or current user")
        self.assertEqual(
            secrecyProblem(FakeStat(uid, regular), PRIVATE_KEY),
            "private key is owned by uid %d, neither root nor us" % (uid,),
        )
        self.assertIsNone(secrecyProblem(FakeStat(0, regular), PRIVATE_KEY))
        self.assertIsNone(secrecyProblem(FakeStat(os.geteuid(), regular), PRIVATE_KEY))

    def test_ownerBeforeMode(self):
        """
        A file both foreign and open to others is reported for its owner
        first, as iked does.
        """
        uid = _otherUid()
        self.assertEqual(
            secrecyProblem(FakeStat(uid, stat.S_IFREG | 0o666), CONFIG_FILE),
            "owner not root or current user",
        )

    def test_realOwner(self):
        """
        A file really chowned to someone else is refused.
        """
        requireRoot()
        os.chown(self.path, 4242, -1)
        self.assertEqual(self.check(CONFIG_FILE), "owner not root or current user")
        self.assertEqual(self.check(PRIVATE_KEY), "private key is owned by uid 4242, neither root nor us")

    def test_symlinkJudgedByTarget(self):
        """
        A symbolic link is judged by the file it points at (stat follows it):
        a link to a safe file is safe, a link to an open file is not.
        """
        link = os.path.join(self.dir, "link")
        os.symlink(self.path, link)
        self.assertIsNone(self.check(PRIVATE_KEY, link))
        os.chmod(self.path, 0o644)
        self.assertIn("accessible by group or others", self.check(PRIVATE_KEY, link))
        self.assertEqual(self.check(CONFIG_FILE, link), "group writable or world read/writable")

    def test_notRegular(self):
        """
        The private key must be a regular file: a directory or a FIFO (also
        behind a link) is refused before its mode is looked at; the
        configuration rule does not ask for one.
        """
        directory = os.path.join(self.dir, "d")
        os.mkdir(directory, 0o700)
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo, 0o600)
        link = os.path.join(self.dir, "dlink")
        os.symlink(directory, link)
        for path in (directory, fifo, link):
            self.assertEqual(self.check(PRIVATE_KEY, path), "not a regular file", path)
            self.assertIsNone(self.check(CONFIG_FILE, path), path)

    def test_rule(self):
        """
        A rule of one's own says which bits are forbidden and how problems
        read.
        """
        rule = SecrecyRule(0o002, True, "uid {uid}", "mode {mode:o}")
        os.chmod(self.path, 0o664)
        self.assertIsNone(self.check(rule))
        os.chmod(self.path, 0o666)
        self.assertEqual(self.check(rule), "mode 666")
        self.assertEqual(secrecyProblem(FakeStat(_otherUid(), stat.S_IFREG), rule), "uid %d" % (_otherUid(),))

# -*- test-case-name: tests.test_config_errors -*-
"""
Tests for L{ikedtx.config.loadConfig}'s file handling and
L{ikedtx.config.errors}: missing files, unsafe permissions, the error text.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.config import ConfigError, ConfigProblem, loadConfig
from ikedtx.config.parser import secrecyProblem


class ProblemTests(SynchronousTestCase):
    def test_str(self):
        self.assertEqual(str(ConfigProblem("conf/x.conf", 3, "syntax error")), "conf/x.conf: 3: syntax error")
        self.assertEqual(str(ConfigProblem("x.conf", None, "No such file or directory")), "x.conf: No such file or directory")

    def test_errorText(self):
        e = ConfigError([ConfigProblem("a", 1, "m1"), ConfigProblem("a", 2, "m2")])
        self.assertEqual(str(e), "a: 1: m1\na: 2: m2")
        self.assertEqual(len(e.errors), 2)


class LoadTests(SynchronousTestCase):
    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "iked.conf")
        with open(self.path, "w") as f:
            f.write('ikev2 esp from 10.0.0.1 to 10.0.0.2 psk "secret"\n')
        os.chmod(self.path, 0o600)

    def test_load(self):
        config = loadConfig(self.path)
        self.assertEqual(config.policies[0].filename, self.path)

    def test_missing(self):
        path = os.path.join(self.dir, "none.conf")
        e = self.assertRaises(ConfigError, loadConfig, path)
        self.assertEqual(str(e), "%s: No such file or directory" % (path,))

    def test_worldReadable(self):
        """
        Like iked, a configuration others can read, or the group can write,
        is refused: it may hold secrets.  Group read is allowed.
        """
        for mode in (0o644, 0o604, 0o620, 0o610, 0o601):
            os.chmod(self.path, mode)
            e = self.assertRaises(ConfigError, loadConfig, self.path)
            self.assertEqual(str(e), "%s: group writable or world read/writable" % (self.path,), oct(mode))
        os.chmod(self.path, 0o640)
        loadConfig(self.path)

    def test_skipCheck(self):
        os.chmod(self.path, 0o666)
        self.assertEqual(len(loadConfig(self.path, checkPermissions=False).policies), 1)

    def test_owner(self):
        """
        A file owned by another user than root or the running user is refused.
        """

        class Stat:
            st_uid = os.getuid() + 4242
            st_mode = 0o100600

        if os.getuid() == 0:
            Stat.st_uid = 4242
        self.assertEqual(secrecyProblem(Stat()), "owner not root or current user")
        if os.getuid() == 0:
            os.chown(self.path, 4242, -1)
            e = self.assertRaises(ConfigError, loadConfig, self.path)
            self.assertEqual(str(e), "%s: owner not root or current user" % (self.path,))

    def test_defines(self):
        with open(self.path, "w") as f:
            f.write("ikev2 esp from 10.0.0.1 to $peer\n")
        config = loadConfig(self.path, defines=["peer=10.0.0.9"])
        self.assertEqual(str(config.policies[0].peerAddress.address), "10.0.0.9")
        self.assertRaises(ValueError, loadConfig, self.path, defines=["peer"])

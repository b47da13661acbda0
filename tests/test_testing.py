# -*- test-case-name: tests.test_testing -*-
"""
L{ikedtx.testing}: test support shipped in the package (like
L{twisted.internet.testing}), which the daemon never imports, with the
lab's C source as package data; and L{tests.support}, which re-exports its
prerequisite checks.
"""

import configparser
import os
import shutil
import subprocess
import sys

from twisted.trial.unittest import SkipTest, SynchronousTestCase

import ikedtx
from ikedtx.testing import support as shipped
from ikedtx.testing.lab import openiked
from tests import support

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(ikedtx.__file__)))

# Import every module of ikedtx but those under ikedtx/testing/ (walking the
# files: pkgutil would import the packages it walks), and the twistd plugin,
# and print the ikedtx.testing and tests modules that came along.
_IMPORT_ALL = """
import importlib, os, sys
import ikedtx
top = os.path.dirname(ikedtx.__path__[0])
names = []
for directory, subdirectories, files in os.walk(ikedtx.__path__[0]):
    subdirectories[:] = sorted(d for d in subdirectories if d not in ("testing", "__pycache__"))
    for name in sorted(files):
        if name.endswith(".py"):
            path = os.path.relpath(os.path.join(directory, name), top)[:-3]
            names.append(path.replace(os.sep, ".").replace(".__init__", ""))
for name in names:
    importlib.import_module(name)
importlib.import_module("twisted.plugins.ikedtx_plugin")
print(len(names))
print(" ".join(sorted(m for m in sys.modules if m.startswith(("ikedtx.testing", "tests.")) or m == "tests")))
"""


class SeparationTests(SynchronousTestCase):
    """
    The daemon's modules do not depend on the test support.
    """

    def test_daemonImportsNoTestSupport(self):
        """
        Importing every ikedtx module outside ikedtx.testing, and the twistd
        plugin, imports neither ikedtx.testing nor the tests package (in a
        fresh interpreter, so that this test's own imports do not count).
        """
        result = subprocess.run(
            [sys.executable, "-c", _IMPORT_ALL],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=ROOT),
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        count, imported = (result.stdout.splitlines() + ["", ""])[:2]
        self.assertGreater(int(count), 50, result.stdout)
        self.assertEqual(imported, "", result.stdout)


class PackageDataTests(SynchronousTestCase):
    """
    What the lab reads at run time is installed with the package.
    """

    def test_shimSource(self):
        """
        The PF_KEY shim's source sits next to the module that compiles it,
        and setup.cfg declares it as package data of ikedtx.testing.lab.
        """
        self.assertEqual(os.path.dirname(openiked.SHIM_SOURCE), os.path.dirname(os.path.abspath(openiked.__file__)))
        self.assertTrue(os.path.isfile(openiked.SHIM_SOURCE), openiked.SHIM_SOURCE)
        parser = configparser.ConfigParser()
        self.assertEqual(parser.read(os.path.join(ROOT, "setup.cfg")), [os.path.join(ROOT, "setup.cfg")])
        declared = parser.get("options.package_data", "ikedtx.testing.lab").split()
        self.assertIn(os.path.basename(openiked.SHIM_SOURCE), declared)


class SupportTests(SynchronousTestCase):
    """
    L{tests.support} is L{ikedtx.testing.support}.
    """

    def test_reexported(self):
        for name in ("REQUIRE_LAB", "MissingPrerequisite", "missing", "requireExecutable", "requireRoot"):
            self.assertIs(getattr(support, name), getattr(shipped, name), name)

    def test_missing(self):
        """
        A missing prerequisite skips, or fails under C{IKEDTX_REQUIRE_LAB=1}.
        """
        expected = shipped.MissingPrerequisite if shipped.REQUIRE_LAB else SkipTest
        e = self.assertRaises(expected, shipped.missing, "no frobnicator")
        self.assertIn("no frobnicator", str(e))
        self.assertRaises(expected, shipped.requireExecutable, "ikedtx-no-such-tool", "apt-get install nothing")
        self.assertEqual(shipped.requireExecutable("sh", "apt-get install dash"), shutil.which("sh"))

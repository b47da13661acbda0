"""
Tests for bench/startrss.py and bench/importrss.py (the start-up memory
benchmark): the command lines of its modes, and the import hook's records.
"""

import json
import os
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from bench import ROOT, importrss, introspect, startrss


class ArgvTests(SynchronousTestCase):
    def test_bench(self):
        """
        The bench mode runs this checkout's ikebench launcher with ikebench's
        arguments, in one process.
        """
        argv = startrss.argvFor("bench", ROOT, "c.conf", "etc", "s.sock")
        self.assertEqual(argv[:3], [sys.executable, "-c", introspect.TWISTD])
        self.assertEqual(argv[3:7], ["--pidfile=", "--nodaemon", "--logger=ikedtx.cli.stderrObserver", "iked"])
        self.assertIn("--no-privsep", argv)
        self.assertEqual(argv[argv.index("--kernel") + 1], "decoupled")

    def test_privsepAndIked(self):
        self.assertNotIn("--no-privsep", startrss.argvFor("privsep", ROOT, "c", "e", "s"))
        iked = startrss.argvFor("iked", ROOT, "c", "e", "s")
        self.assertEqual(iked[2], startrss.IKED)
        self.assertEqual(iked[3:5], ["-d", "-f"])
        self.assertIn("--no-privsep", iked)
        self.assertNotIn("--no-privsep", startrss.argvFor("iked-privsep", ROOT, "c", "e", "s"))

    def test_prelude(self):
        argv = startrss.argvFor("bench", ROOT, "c", "e", "s", prelude="PRELUDE\n")
        self.assertEqual(argv[2], "PRELUDE\n" + introspect.TWISTD)

    def test_launcherOfTree(self):
        """
        Each checkout is started with its own launcher (a baseline's may be
        plain twistd).
        """
        self.assertEqual(startrss.twistdLauncher(ROOT), introspect.TWISTD)
        tree = tempfile.mkdtemp()
        os.mkdir(os.path.join(tree, "bench"))
        with open(os.path.join(tree, "bench", "introspect.py"), "w") as f:
            f.write('TWISTD = "old"\n')
        self.assertEqual(startrss.twistdLauncher(tree), "old")


class ImportHookTests(SynchronousTestCase):
    def test_records(self):
        """
        The hook records each first import with its depth; the inclusive
        figure covers the imports it made, the exclusive one does not.
        """
        path = os.path.join(tempfile.mkdtemp(), "imports.json")
        code = importrss.PRELUDE + "import colorsys\nimport email.parser\nimport colorsys\n"
        subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, IKEBENCH_IMPORT_RSS=path))
        with open(path) as f:
            dump = json.load(f)
        self.assertGreater(dump["rssKb"], 0)
        names = [name for name, depth, inclusive, exclusive in dump["imports"]]
        self.assertEqual(names.count("colorsys"), 1)
        byName = {r[0]: r for r in dump["imports"]}
        self.assertEqual(byName["colorsys"][1], 0)
        self.assertEqual(byName["email.parser"][1], 0)
        self.assertGreater(byName["email.feedparser"][1], 0)
        for name, depth, inclusive, exclusive in dump["imports"]:
            self.assertLessEqual(exclusive, inclusive)
        # the package is imported by its first submodule's import, inside it
        self.assertEqual(byName["email"][1], 1)
        groups = importrss.groups(dump["imports"], ["email"])
        self.assertEqual(groups["email"], byName["email.parser"][2])
        self.assertEqual(len(importrss.heaviest(dump["imports"], 3)), 3)

# -*- test-case-name: tests.test_headers -*-
"""
Every module of the ikedtx package names the tests that exercise it in an
Emacs-style C{# -*- test-case-name: tests.test_x -*-} header, as Twisted's
modules do, so that C{trial --testmodule ikedtx/x.py} (and an editor) runs
them.  The header is read with trial's own parser.
"""

import importlib
import os

from twisted.scripts.trial import getTestModules
from twisted.trial.unittest import SynchronousTestCase

import ikedtx

PACKAGE = os.path.dirname(os.path.abspath(ikedtx.__file__))


def pythonFiles(top):
    """
    Every C{.py} file below C{top}, sorted.
    """
    found = []
    for directory, subdirectories, files in os.walk(top):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        found.extend(os.path.join(directory, name) for name in sorted(files) if name.endswith(".py"))
    return sorted(found)


def headerProblems(paths, importModule=importlib.import_module):
    """
    What is wrong with the test-case-name headers of C{paths}: a file
    without one, or one that names something that is not an importable
    test module (a module whose name starts with C{test_}).

    @return: L{list} of C{"path: problem"} texts; empty when all is well.
    """
    problems = []
    for path in paths:
        names = [name.strip() for name in getTestModules(path)]
        if not names:
            problems.append("%s: no test-case-name header" % (path,))
            continue
        for name in names:
            if not name.rpartition(".")[2].startswith("test_"):
                problems.append("%s: %r is not a test module" % (path, name))
                continue
            try:
                importModule(name)
            except ImportError as e:
                problems.append("%s: %r cannot be imported (%s)" % (path, name, e))
    return problems


class HeaderTests(SynchronousTestCase):
    """
    The headers of the ikedtx package.
    """

    def test_everyModule(self):
        """
        Each module of ikedtx, none left out, has a header naming test
        modules that exist.
        """
        paths = pythonFiles(PACKAGE)
        self.assertIn(os.path.join(PACKAGE, "wire", "payloads", "notify.py"), paths)
        self.assertEqual(headerProblems(paths), [])


class CheckerTests(SynchronousTestCase):
    """
    L{headerProblems} finds each kind of problem.
    """

    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.directory, "sub"))

    def write(self, name, text):
        path = os.path.join(self.directory, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_problems(self):
        """
        A file without a header, one naming a missing module and one naming a
        module that is not a test module are reported; a good header, also
        after a C{#!} line and with two names, is not.
        """
        good = self.write("good.py", '# -*- test-case-name: tests.test_headers -*-\n"""x"""\n')
        script = self.write("sub/script.py", "#!/usr/bin/env python3\n# -*- test-case-name: tests.test_headers,tests.test_files -*-\n")
        bare = self.write("bare.py", '"""No header."""\n')
        missing = self.write("missing.py", "# -*- test-case-name: tests.test_no_such_module -*-\n")
        notTest = self.write("sub/nottest.py", "# -*- test-case-name: tests.support -*-\n")
        late = self.write("late.py", '"""\nDocstring first.\n"""\n# -*- test-case-name: tests.test_headers -*-\n')
        self.assertEqual(pythonFiles(self.directory), sorted([good, script, bare, missing, notTest, late]))
        problems = headerProblems(pythonFiles(self.directory))
        self.assertEqual(
            problems,
            [
                "%s: no test-case-name header" % (bare,),
                "%s: no test-case-name header" % (late,),
                "%s: 'tests.test_no_such_module' cannot be imported (No module named 'tests.test_no_such_module')"
                % (missing,),
                "%s: 'tests.support' is not a test module" % (notTest,),
            ],
        )

    def test_importsEachName(self):
        """
        Every name of a header is imported, in order.
        """
        path = self.write("two.py", "# -*- test-case-name: tests.test_a,tests.test_b -*-\n")
        imported = []
        self.assertEqual(headerProblems([path], imported.append), [])
        self.assertEqual(imported, ["tests.test_a", "tests.test_b"])

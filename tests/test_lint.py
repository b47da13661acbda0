"""
The source stays free of what pyflakes reports (unused imports and
variables, undefined names, shadowed imports): a name imported only for
other modules to import it belongs in its module's C{__all__}.
"""

import io
import os

from pyflakes.api import checkRecursive
from pyflakes.reporter import Reporter

from twisted.trial.unittest import SynchronousTestCase

import ikedtx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(ikedtx.__file__)))
CHECKED = ["ikedtx", "tests", "bench"]


class PyflakesTests(SynchronousTestCase):
    def test_clean(self):
        """
        pyflakes finds nothing in the package, its tests or bench/; each
        message it prints makes this test fail with the message.
        """
        paths = [os.path.join(ROOT, name) for name in CHECKED]
        for path in paths:
            self.assertTrue(os.path.isdir(path), path)
        warnings, errors = io.StringIO(), io.StringIO()
        count = checkRecursive(paths, Reporter(warnings, errors))
        self.assertEqual(
            (count, warnings.getvalue(), errors.getvalue()), (0, "", ""))

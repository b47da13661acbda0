# -*- test-case-name: tests.test_testing -*-
"""
Helpers shared by the test modules.

L{requireExecutable}, L{requireRoot} and L{missing} (skip a test for want of
a prerequisite, or fail it under C{IKEDTX_REQUIRE_LAB=1}) are those of
L{ikedtx.testing.support}, which the lab harness uses as well.
"""

from ikedtx.testing.support import REQUIRE_LAB, MissingPrerequisite, missing, requireExecutable, requireRoot

__all__ = ["REQUIRE_LAB", "MissingPrerequisite", "missing", "requireExecutable", "requireRoot"]

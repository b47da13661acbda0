# -*- test-case-name: tests.test_testing -*-
"""
Prerequisites of the tests that need something outside the project.

Tests that need something outside the project (root, a network namespace,
strongSwan's charon, openiked, tshark, qemu) ask for it through
L{requireExecutable}, L{requireRoot} or L{missing}: on a developer's machine a
missing prerequisite skips the test with the command that installs it, but
when C{IKEDTX_REQUIRE_LAB=1} (set by .ci/run) it fails the test instead, so
that CI never passes by skipping.

The lab (L{ikedtx.testing.lab}) asks through these too, so they live here;
C{tests.support} re-exports them for the test modules.
"""

import os
import shutil

from twisted.trial.unittest import SkipTest

REQUIRE_LAB = os.environ.get("IKEDTX_REQUIRE_LAB") == "1"


class MissingPrerequisite(AssertionError):
    """
    A test's outside prerequisite is missing while C{IKEDTX_REQUIRE_LAB=1}.
    """


def missing(reason):
    """
    Give up on the current test for want of C{reason}: skip it, or fail it
    when the environment requires every prerequisite.
    """
    if REQUIRE_LAB:
        raise MissingPrerequisite(reason + " (IKEDTX_REQUIRE_LAB=1: a prerequisite may not be skipped)")
    raise SkipTest(reason)


def requireExecutable(name, install):
    """
    Return the path of executable C{name}; if it is missing, call
    L{missing} naming the command C{install} that provides it.
    """
    path = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
    if path is None:
        missing("%s not found (%s)" % (name, install))
    return path


def requireRoot():
    """
    Network namespaces, veth links and XFRM need root.
    """
    if os.geteuid() != 0:
        missing("needs root (network namespaces)")

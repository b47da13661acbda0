# -*- test-case-name: tests.test_config_errors -*-
"""
What goes wrong in a configuration file, and where.
"""

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class ConfigProblem:
    """
    One error (or warning) in a configuration file.

    @ivar filename: the file, as it was named (the path given, or the
        C{include} argument).
    @ivar line: the line number from 1, or L{None} for a problem with the
        whole file (it cannot be opened, its permissions are unsafe).
    @ivar message: what is wrong, naming the offending token where there is
        one (in iked's words where iked has words for it).
    """

    filename: str
    line: Optional[int]
    message: str

    def __str__(self):
        if self.line is None:
            return "%s: %s" % (self.filename, self.message)
        return "%s: %d: %s" % (self.filename, self.line, self.message)


class ConfigError(Exception):
    """
    A configuration file is invalid.

    @ivar errors: every L{ConfigProblem} found, in the order found.
    """

    def __init__(self, errors):
        self.errors = list(errors)
        Exception.__init__(self, str(self))

    def __str__(self):
        return "\n".join(str(e) for e in self.errors)


class UnsafeFileError(Exception):
    """
    A file that may hold secrets is not owned by root or the running user,
    or is group writable or accessible by others; the message says which.
    """

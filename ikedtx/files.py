# -*- test-case-name: tests.test_files -*-
"""
Whether a file that holds secrets is safe to use: one check, in two
strengths, for the configuration file with its included and PSK files
(iked's check_file_secrecy(): "bad file permissions") and for the private
key C{private/local.key} of the credential store.

A file is safe when it belongs to root or to the user running the daemon
and no forbidden permission bit is set; a rule may also demand a regular
file.  Symbolic links are judged by what they point at (the caller's
C{stat} or C{fstat} follows them).
"""

import os
import stat


class SecrecyRule:
    """
    What makes a file holding secrets unsafe, and how to say so.

    @ivar forbiddenModes: permission bits the file must not have.
    @ivar regularOnly: whether anything but a regular file is refused.
    @ivar ownerMessage: the problem when the owner is neither root nor us; a
        format string that may use C{{uid}}.
    @ivar modeMessage: the problem when a forbidden bit is set; a format
        string that may use C{{mode}} (the permission bits).
    """

    def __init__(self, forbiddenModes, regularOnly, ownerMessage, modeMessage):
        self.forbiddenModes = forbiddenModes
        self.regularOnly = regularOnly
        self.ownerMessage = ownerMessage
        self.modeMessage = modeMessage


CONFIG_FILE = SecrecyRule(
    forbiddenModes=stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO,
    regularOnly=False,
    ownerMessage="owner not root or current user",
    modeMessage="group writable or world read/writable",
)
"""
iked.conf, its included files and PSK files, like iked: the group may read
but not write; others get nothing.  Anything that can be opened and read
(a pipe too) is accepted.
"""

PRIVATE_KEY = SecrecyRule(
    forbiddenModes=0o077,
    regularOnly=True,
    ownerMessage="private key is owned by uid {uid}, neither root nor us",
    modeMessage="private key is accessible by group or others (mode {mode:04o}); chmod 600 it",
)
"""
C{private/local.key}: a regular file that only its owner may touch.
"""


def secrecyProblem(st, rule=CONFIG_FILE):
    """
    Why a file holding secrets is unsafe under C{rule}, or L{None}.

    The checks come in iked's order: the file type, the owner, the mode.

    @param st: the file's L{os.stat_result} (anything with C{st_uid} and
        C{st_mode}).
    @param rule: a L{SecrecyRule}.
    @return: the problem as text, or L{None} when the file is safe.
    """
    if rule.regularOnly and not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_uid not in (0, os.geteuid()):
        return rule.ownerMessage.format(uid=st.st_uid)
    if st.st_mode & rule.forbiddenModes:
        return rule.modeMessage.format(mode=stat.S_IMODE(st.st_mode))
    return None

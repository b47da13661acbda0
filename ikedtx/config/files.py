# -*- test-case-name: tests.test_config_errors,tests.test_config_lexer -*-
"""
The files an iked.conf(5) configuration is read from: the main file, the
files it includes and the key files of C{psk file STRING}, each refused
when its permissions are unsafe (L{ikedtx.files.CONFIG_FILE}, iked's
check_file_secrecy()).  L{ikedtx.config.grammar} reports a L{FileProblem}
as an error on the line that named the file.
"""

import os

from ikedtx.config.errors import UnsafeFileError
from ikedtx.config.lexer import fileIdentity
from ikedtx.files import CONFIG_FILE, secrecyProblem


KEYFILE_LIMIT = 1024


class FileProblem(Exception):
    """
    A file the configuration names cannot be used; the message is iked's,
    for the line that named it.
    """


def readConfigFile(path, checkPermissions):
    """
    Read a configuration (or key) file, refusing it when its permissions are
    unsafe (L{ikedtx.files.CONFIG_FILE}).

    @return: (bytes, identity)
    @raise OSError: it cannot be read.
    @raise UnsafeFileError: its permissions are unsafe (the message says
        which).
    """
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if checkPermissions:
            problem = secrecyProblem(st, CONFIG_FILE)
            if problem is not None:
                raise UnsafeFileError(problem)
        return f.read(), (st.st_dev, st.st_ino)


def readIncludedFile(name, checkPermissions, including):
    """
    Read the file of an C{include} statement (opened as named, relative to
    the current directory, as iked does).

    @param including: a callable: whether the file of a
        L{fileIdentity} is being read already (an include loop).
    @return: (bytes, identity)
    @raise FileProblem: it would loop, cannot be read or is unsafe.
    """
    identity = fileIdentity(name)
    if identity is not None and including(identity):
        raise FileProblem("failed to include file %s (include loop)" % (name,))
    try:
        return readConfigFile(name, checkPermissions)
    except UnsafeFileError as e:
        raise FileProblem("failed to include file %s (%s)" % (name, e))
    except OSError as e:
        raise FileProblem("failed to include file %s (%s)" % (name, e.strerror or e))


def readKeyFile(path, checkPermissions):
    """
    Read the key of C{psk file STRING}.

    @return: the text of the file without its trailing line ends (hex digits
        if it is valid; the grammar checks them).
    @raise FileProblem: it cannot be read, is unsafe, empty or larger than
        L{KEYFILE_LIMIT}.
    """
    try:
        data, _ = readConfigFile(path, checkPermissions)
    except UnsafeFileError as e:
        raise FileProblem("%s: %s" % (path, e))
    except OSError as e:
        raise FileProblem("open %s: %s" % (path, e.strerror or e))
    if not data:
        raise FileProblem("%s: key too small" % (path,))
    if len(data) > KEYFILE_LIMIT:
        raise FileProblem("%s: key too large" % (path,))
    return data.decode("latin-1").rstrip("\r\n")

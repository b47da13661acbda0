# -*- test-case-name: tests.test_config_parser -*-
"""
ikedtx.config: iked.conf(5), read byte for byte.

    >>> config = loadConfig("/etc/iked.conf")
    >>> for policy in config.policies: ...
    >>> print(renderConfig(config), end="")      # what iked -n -v prints

L{loadConfig} and L{parseConfig} return an immutable
L{ikedtx.config.model.Config} with every default applied, or raise
L{ConfigError} listing every error of the file.
"""

from ikedtx.config.errors import ConfigError, ConfigProblem, UnsafeFileError
from ikedtx.config.model import (
    Auth,
    Config,
    ConfigOption,
    Flow,
    HostAddress,
    Identity,
    Policy,
    Proposal,
    Selector,
    Settings,
    TransformSpec,
    User,
)
from ikedtx.config.parser import Parser, readConfigFile, splitDefine
from ikedtx.config.printer import renderConfig

__all__ = [
    "Auth",
    "Config",
    "ConfigError",
    "ConfigOption",
    "ConfigProblem",
    "Flow",
    "HostAddress",
    "Identity",
    "Policy",
    "Proposal",
    "Selector",
    "Settings",
    "TransformSpec",
    "User",
    "loadConfig",
    "parseConfig",
    "renderConfig",
]


def _checkDefines(defines):
    for define in defines:
        splitDefine(define)


def loadConfig(path, defines=(), checkPermissions=True):
    """
    Read and parse the configuration file C{path}.

    @param defines: C{"macro=value"} strings (iked's C{-D}); they override
        the file's definitions of the same macros.
    @param checkPermissions: refuse, like iked, a file (or an included file
        or key file) that is not owned by root or the running user, or that
        is group writable or accessible by others: it may hold secrets.
    @raise ConfigError: the file is missing, unsafe or invalid.
    @raise ValueError: a define is not C{macro=value}.
    """
    _checkDefines(defines)
    try:
        data, identity = readConfigFile(path, checkPermissions)
    except UnsafeFileError as e:
        raise ConfigError([ConfigProblem(path, None, str(e))])
    except OSError as e:
        raise ConfigError([ConfigProblem(path, None, e.strerror or str(e))])
    return Parser(defines, checkPermissions).parse(path, data, identity)


def parseConfig(text, filename="<string>", defines=(), checkPermissions=False):
    """
    Parse configuration C{text} (str or bytes), reported as C{filename}.

    @param checkPermissions: check the permissions of included files and
        key files (see L{loadConfig}).
    @raise ConfigError: it is invalid.
    @raise ValueError: a define is not C{macro=value}.
    """
    _checkDefines(defines)
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    return Parser(defines, checkPermissions).parse(filename, text)

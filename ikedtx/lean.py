# -*- test-case-name: tests.test_lean -*-
"""
The daemon's start-up, without the modules it does not use.

Twisted imports, at start, two things the daemon never uses:

  - C{http.cookiejar}: L{twisted.python.compat} keeps it as the deprecated
    alias C{compat.cookielib}; importing it pulls C{urllib.request},
    C{http.client}, C{email}, C{ssl} and C{tempfile} (about 4 MB of RSS).
    L{prepare} registers it as a lazy module (L{importlib.util.LazyLoader},
    the standard library's recipe): the module is made at once and its
    code runs on the first attribute anyone reads from it.
  - TLS: C{twisted.internet.tcp}, C{posixbase} and C{twisted.protocols.amp}
    each try to import pyOpenSSL and, when it is missing, go without TLS
    (no C{startTLS}, no C{IReactorSSL}, no AMP C{StartTLS}), as Twisted does
    on any host without pyOpenSSL.  The daemon speaks no TLS (its control
    socket is a Unix socket, OCSP and the metrics are plain HTTP), so
    L{prepare} imports those modules while pyOpenSSL is made unimportable,
    then makes it importable again: what needs pyOpenSSL later (the
    certificate store's chain verification, L{ikedtx.auth.store}) imports
    it then.  About 3 MB of RSS (C{twisted.internet._sslverify},
    C{service_identity}, pyOpenSSL).
  - C{asyncio}, which L{twisted.internet.defer} imports (for
    C{Deferred.fromFuture}), imports the standard C{ssl} module and goes
    without it (no TLS for asyncio streams) where Python has none.  The
    daemon runs no asyncio code: L{prepare} imports C{asyncio} while C{ssl}
    cannot be imported (about 1.2 MB: C{_ssl} and libssl).

L{prepare} must run before Twisted is imported (the C{iked} command calls
it first thing); in a process where Twisted is already imported it
changes nothing.

L{trimHeap} gives back to the kernel the free memory the C library's
allocator kept after start-up (the configuration's parse trees and the
modules' compilation are gone by then).
"""

import importlib.util
import sys

#: Modules made lazy by L{prepare}.
LAZY = ("http.cookiejar",)

#: (modules, the optional dependency they go without): L{prepare} imports
#: the modules while the dependency cannot be imported.
WITHOUT = (
    # asyncio first: Twisted imports it
    (("asyncio",), "ssl"),
    (("twisted.internet.posixbase", "twisted.protocols.amp"), "OpenSSL"),
)

#: What L{prepare} did: C{"lazy"} (the modules made lazy), C{"without"}
#: ({dependency: the modules imported without it}).
prepared = {"lazy": [], "without": {}}


def lazyModule(name):
    """
    Register module C{name} in C{sys.modules} (and as its parent's
    attribute) as a lazy module: its code runs on first attribute access.
    Nothing is done if it is imported already or cannot be found.

    @return: whether it was made lazy.
    """
    if name in sys.modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return False
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return True


def importWithout(names, dependency):
    """
    Import the modules C{names} while module C{dependency} cannot be
    imported (C{None} in C{sys.modules}: importing it raises
    C{ImportError}), then make it importable again.  Nothing is done if
    C{dependency} is imported already (the modules would use it).

    @return: the names imported here (not imported before).
    """
    if dependency in sys.modules:
        return []
    todo = [name for name in names if name not in sys.modules]
    sys.modules[dependency] = None
    try:
        for name in todo:
            importlib.import_module(name)
    finally:
        if dependency in sys.modules and sys.modules[dependency] is None:
            del sys.modules[dependency]
    return todo


def prepare():
    """
    Make L{LAZY} lazy and import the modules of L{WITHOUT} without their
    optional dependencies; the first thing the daemon does.
    """
    for name in LAZY:
        if lazyModule(name):
            prepared["lazy"].append(name)
    for names, dependency in WITHOUT:
        done = importWithout(names, dependency)
        if done:
            prepared["without"].setdefault(dependency, []).extend(done)


def trimHeap():
    """
    Return the C library allocator's free memory to the kernel
    (C{malloc_trim(0)}, glibc); nothing elsewhere.

    @return: whether it was done.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True

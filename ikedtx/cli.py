# -*- test-case-name: tests.test_cli -*-
"""
Console entry points: C{iked} (with iked(8)'s flags) and C{ikectl}.

C{iked -n [-v]} checks the configuration in this process (no root
needed) and prints what iked prints, on standard error as iked does: the
configuration (with C{-v}) and C{configuration OK}, or the errors.  Without
C{-n}, C{iked} runs the daemon through twistd: in the foreground logging to
standard error with C{-d}, else daemonized logging to syslog (facility
daemon); at info level, debug with C{-v} (see L{ikedtx.tap.logObserver}).
twistd's copy of the options reads the file and checks the ports and the
control socket before it forks, so start-up errors reach the terminal as
one line and status 1.
"""

import os
import sys

from ikedtx import lean

# Before Twisted is imported: see ikedtx.lean.
lean.prepare()

from twisted.python import usage  # noqa: E402

from ikedtx.config import ConfigError, loadConfig  # noqa: E402
from ikedtx.tap import Options, versionString  # noqa: E402


def runIked(argv, stdout=None, stderr=None, runDaemon=None):
    """
    Run C{iked} with arguments C{argv} (without the program name).

    @param runDaemon: called with the twistd argument list to run the
        daemon (default: twistd's C{run()}).
    @return: the exit status.
    """
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    options = Options()
    # The file is read by _configtest here, or by twistd's own copy of the
    # options (whose errors it prints as iked does, status 1).
    options.loadConfiguration = False
    options.checkStartup = False
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        stderr.write("iked: %s\n" % (e,))
        stderr.write("usage: iked %s\n" % (Options.synopsis,))
        return 1
    if options["version"]:
        stderr.write("%s\n" % (versionString(),))
        return 0
    if options["configtest"]:
        return _configtest(options, stderr)
    return _daemon(argv, options, runDaemon)


def _configtest(options, stderr):
    try:
        config = loadConfig(options["config"], options["defines"])
    except ConfigError as e:
        stderr.write("%s\n" % (e,))
        return 1
    for warning in config.warnings:
        stderr.write("%s\n" % (warning,))
    if options["verbose"]:
        from ikedtx.config.printer import renderConfig

        stderr.write(renderConfig(config))
    stderr.write("configuration OK\n")
    return 0


# The level iked -d logs at on stderr: info, or debug with -v.
_stderrLevel = None


def stderrObserver():
    """
    twistd's C{--logger} for C{iked -d}: log to standard error (as iked -d
    does), at info level, or debug with C{-v}.
    """
    from twisted.logger import LogLevel, textFileLogObserver

    from ikedtx.tap import levelFiltered

    return levelFiltered(textFileLogObserver(sys.stderr), _stderrLevel or LogLevel.info)


def pidfileFor(socketPath):
    """
    Where a detached C{iked} writes its pid: C{iked.pid} beside its control
    socket (C{/var/run/iked.pid} for the default C{/var/run/iked.sock}), so
    that daemons with their own sockets do not share one.  twistd removes
    it at exit and refuses to start while it names a live process.
    """
    return os.path.join(os.path.dirname(os.path.abspath(socketPath)), "iked.pid")


def _daemon(argv, options, runDaemon):
    global _stderrLevel
    from twisted.logger import LogLevel

    if options["debug"]:
        # In the foreground (and under systemd, Type=notify): no pidfile.
        _stderrLevel = LogLevel.debug if options["verbose"] else LogLevel.info
        twistdArgv = ["twistd", "--pidfile=", "--nodaemon", "--logger=ikedtx.cli.stderrObserver"]
    else:
        twistdArgv = ["twistd", "--pidfile=" + pidfileFor(options["socket"]), "--syslog", "--prefix=iked"]
    twistdArgv += ["iked"] + list(argv)
    if runDaemon is None:

        def runDaemon(args):
            from ikedtx import service

            sys.argv = args
            runTwistd()
            return service.exitStatus

    return runDaemon(twistdArgv)


def ikedServiceMaker():
    """
    The C{iked} twistd plugin (as twisted/plugins/ikedtx_plugin.py makes it).
    """
    from twisted.application.service import ServiceMaker

    return ServiceMaker("ikedtx", "ikedtx.tap", "An IKEv2 daemon (OpenBSD iked on Twisted).", "iked")


def runTwistd():
    """
    Run twistd with C{sys.argv}, as C{twistd} does, with C{iked} as its
    only subcommand: twistd's plugin discovery would import every
    C{twisted.plugins} module installed (trial's pulls C{unittest}) to find
    the one it runs.
    """
    from twisted.application import app
    from twisted.scripts.twistd import ServerOptions, runApp

    class IkedServerOptions(ServerOptions):
        # twistd's seam for the plugins it offers (twisted.application.app)
        _getPlugins = staticmethod(lambda interface: [ikedServiceMaker()])

    app.run(runApp, IkedServerOptions)


def iked():
    """
    The C{iked} console script.
    """
    sys.exit(runIked(sys.argv[1:]))


def runIkectl(argv, stdout, stderr, client=None, **caOptions):
    """
    Run one C{ikectl} command line (the words after C{ikectl}):
    C{[-q] [-s socket] [--json] command [arg ...]}.  The certificate
    authority commands (C{ca ...}, C{show ca ...}) run here, in this
    process, as ikectl(8) runs them; the others are requests to the daemon
    over its control socket (L{ikedtx.control.ikectl}).

    @param client: the blocking control client (default
        L{ikedtx.control.sync}; tests give a fake).
    @param caOptions: passed to L{ikedtx.pki.command.runCa} (directories,
        for tests).
    @return: the exit status.
    """
    from ikedtx.control.ikectl import DAEMON_USAGE, IkectlUsage, parseOptions, runDaemonCommand
    from ikedtx.pki.command import USAGE, runCa

    try:
        options, words = parseOptions(argv)
    except IkectlUsage as e:
        stderr.write("ikectl: %s\n" % (e,))
        stderr.write(DAEMON_USAGE)
        return 1
    if not words:
        stderr.write(DAEMON_USAGE)
        stderr.write(USAGE)
        return 1
    if words[0] == "ca" or words[:2] == ["show", "ca"]:
        return runCa(words, stdout, stderr, **caOptions)
    if client is None:
        from ikedtx.control import sync as client
    return runDaemonCommand(words, options, stdout, stderr, client=client)


def ikectl():
    """
    The C{ikectl} console script.
    """
    sys.exit(runIkectl(sys.argv[1:], sys.stdout, sys.stderr))

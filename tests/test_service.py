"""
Tests for L{ikedtx.service}: the daemon binds its UDP ports and control
socket, two daemons negotiate over real loopback sockets in one reactor,
C{reload} re-reads the file (in memory, with a fake name resolver, and on
SIGHUP in a real daemon), C{twistd -n iked -c FILE} runs and stops cleanly
on SIGTERM; the ports, the control socket and the SIGHUP handler are child
services, and what cannot start is a one-line L{StartupError}.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from ipaddress import ip_address
from types import SimpleNamespace

from twisted.internet import defer, reactor, task
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ikedtx.config import parseConfig
from ikedtx.control.client import connectControl
from ikedtx.core.errors import AuthenticationFailed
from ikedtx.service import IkedService

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def freePorts(n, host="127.0.0.1"):
    """
    C{n} UDP port numbers that are free on C{host} right now.
    """
    sockets, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def options(address, ikePort, nattPort, socketPath=None, **extra):
    o = {"listen": [address], "ike-port": ikePort, "natt-port": nattPort, "kernel": "decoupled",
         "socket": socketPath, "config": None, "defines": []}
    o.update(extra)
    return o


class DaemonPairTests(TestCase):
    """
    Two L{IkedService}s in the test's reactor, on 127.0.0.1 and 127.0.0.2.
    """

    def startDaemon(self, config, address, ports, socketPath=None, configPath=None):
        service = IkedService(config, options(address, ports[0], ports[1], socketPath, config=configPath))
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def configs(self, psk='"secret"', natt=False):
        natt = "natt " if natt else ""
        a = parseConfig('ikev2 "ab" ' + natt + 'esp from 10.1.0.0/24 to 10.2.0.0/24 local 127.0.0.1 peer 127.0.0.2 '
                        'srcid a.example dstid b.example psk "secret"')
        b = parseConfig('ikev2 "ba" ' + natt + 'esp from 10.2.0.0/24 to 10.1.0.0/24 local 127.0.0.2 peer 127.0.0.1 '
                        'srcid b.example dstid a.example psk %s' % (psk,))
        return a, b

    @defer.inlineCallbacks
    def test_negotiate(self):
        """
        The daemons establish an IKE SA and a Child SA over real sockets;
        both hold the same SAs, and the control socket shows them.
        """
        ports = freePorts(2)
        configA, configB = self.configs()
        sock = os.path.join(self.mktemp() + ".d")
        os.makedirs(sock)
        a = self.startDaemon(configA, "127.0.0.1", ports, os.path.join(sock, "a.sock"))
        b = self.startDaemon(configB, "127.0.0.2", ports)
        ikesa = yield a.initiate("ab")
        (peer,) = b.core.ikeSAs.values()
        self.assertEqual((ikesa.spiI, ikesa.spiR), (peer.spiI, peer.spiR))
        self.assertEqual(ikesa.children[0].spiOut, peer.children[0].spiIn)
        self.assertEqual(len(a.kernel.sas), 2)
        self.assertEqual(len(b.kernel.sas), 2)
        client = yield connectControl(a.reactor, os.path.join(sock, "a.sock"))
        sas = yield client.showSA()
        client.close()
        self.assertEqual([(sa["spiI"], sa["state"], sa["peerId"]) for sa in sas],
                         [(ikesa.spiI.hex(), "VALID", "FQDN/b.example")])

    @defer.inlineCallbacks
    def test_userspaceKernel(self):
        """
        With C{--kernel userspace} the Child SA goes into the user-space
        datapath, and ESP in UDP travels between the daemons' NAT-T sockets
        (RFC 3948; C{natt} forces it): a packet routed into one daemon's
        device comes out of the other's. The devices and route tables are
        in memory.
        """
        from ikedtx import service as serviceModule
        from ikedtx.kernel.userspace import UserspaceKernel

        from tests.test_kernel_userspace import FakeRoutes, FakeTun, udp
        from tests.test_kernel_xfrm import RecordingChannel

        made = []

        def userspace():
            # The IPv6 block's XFRM policies are recorded, not installed.
            made.append(UserspaceKernel(device=FakeTun(), routes=FakeRoutes(["10.1.0.1", "10.2.0.1"]), rawEsp=False,
                                        policyChannel=RecordingChannel()))
            return made[-1]

        self.patch(serviceModule, "KERNEL_PROVIDERS", dict(serviceModule.KERNEL_PROVIDERS, userspace=userspace))
        ports = freePorts(2)
        configA, configB = self.configs(natt=True)
        a = IkedService(configA, options("127.0.0.1", ports[0], ports[1], kernel="userspace"))
        b = IkedService(configB, options("127.0.0.2", ports[0], ports[1], kernel="userspace"))
        for service in (a, b):
            service.startService()
            self.addCleanup(service.stopService)
        self.assertEqual([a.kernel, b.kernel], made)
        ikesa = yield a.initiate("ab")
        packet = udp("10.1.0.1", "10.2.0.1")
        a.kernel.packetFromTun(packet)
        deadline = time.time() + 5
        while not b.kernel.device.written and time.time() < deadline:
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(b.kernel.device.written, [packet])
        (outbound,) = [sa for sa in ikesa.children[0].kernelSAs(ikesa) if not sa.inbound]
        usage = yield a.kernel.querySA(outbound)
        self.assertEqual((usage.packets, usage.bytes), (1, len(packet)))
        self.assertEqual(outbound.encapsulation, (ports[1], ports[1]))

    @defer.inlineCallbacks
    def test_authenticationFailure(self):
        """
        A wrong PSK fails the initiate Deferred with AuthenticationFailed.
        """
        ports = freePorts(2)
        configA, configB = self.configs(psk='"other"')
        a = self.startDaemon(configA, "127.0.0.1", ports)
        self.startDaemon(configB, "127.0.0.2", ports)
        yield self.assertFailure(a.initiate("ab"), AuthenticationFailed)
        self.assertEqual(a.core.ikeSAs, {})

    @defer.inlineCallbacks
    def test_reload(self):
        """
        ikectl reload: a new file replaces the policies; a broken file
        changes nothing.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "iked.conf")
        with open(path, "w") as f:
            f.write('ikev2 "one" esp from 10.0.0.1 to 10.0.0.2\n')
        os.chmod(path, 0o600)
        service = self.startDaemon(parseConfig(open(path).read()), "127.0.0.1", freePorts(2), configPath=path)
        with open(path, "w") as f:
            f.write('ikev2 "two" esp from 10.0.0.1 to 10.0.0.2\n')
        # reload() parses in a thread and resolves through the reactor: a
        # Deferred.
        yield service.reload()
        self.assertEqual([p.name for p in service.core.policies.policies], ["two"])
        with open(path, "w") as f:
            f.write("ikev2 bogus\n")
        yield self.assertFailure(service.reload(), Exception)
        self.assertEqual([p.name for p in service.core.policies.policies], ["two"])

    def test_portsAndStop(self):
        """
        The service listens for IKE and NAT-T on each address and closes
        everything when it stops.
        """
        ports = freePorts(2)
        sockPath = os.path.join(self.mktemp() + ".sock")
        service = IkedService(parseConfig('ikev2 esp from 10.0.0.1 to 10.0.0.2'),
                              options("127.0.0.1", ports[0], ports[1], sockPath))
        service.startService()
        bound = sorted(p.getHost().port for p in service._ports)
        self.assertEqual(bound, sorted(ports))
        self.assertTrue(os.path.exists(sockPath))
        d = service.stopService()

        def stopped(_):
            self.assertEqual(service._ports, [])
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind(("127.0.0.1", ports[0]))
            probe.close()

        return d.addCallback(stopped)


class NattOptionTests(TestCase):
    """
    iked(8)'s -T, -t and -p decide which ports are bound and how the core
    treats NAT-T.
    """

    def boundPorts(self, **extra):
        from ikedtx.core.settings import NATT_DISABLED, NATT_NORMAL, NATT_ONLY

        ports = freePorts(2)
        service = IkedService(parseConfig('ikev2 esp from 10.0.0.1 to 10.0.0.2'),
                              options("127.0.0.1", ports[0], ports[1], **extra))
        service.startService()
        self.addCleanup(service.stopService)
        modes = {NATT_DISABLED: "disabled", NATT_NORMAL: "normal", NATT_ONLY: "only"}
        bound = sorted(p.getHost().port for p in service._ports)
        return ports, bound, modes[service.core.settings.nattMode], service

    def test_default(self):
        ports, bound, mode, service = self.boundPorts()
        self.assertEqual((bound, mode), (sorted(ports), "normal"))

    def test_noNatt(self):
        """
        -T: no NAT-T port, no NAT-D payloads.
        """
        ports, bound, mode, service = self.boundPorts(**{"no-natt": True})
        self.assertEqual((bound, mode), ([ports[0]], "disabled"))

    def test_nattOnly(self):
        """
        -t: only the NAT-T port.
        """
        ports, bound, mode, service = self.boundPorts(**{"natt-only": True})
        self.assertEqual((bound, mode), ([ports[1]], "only"))

    def test_udpencapPort(self):
        """
        -p PORT: NAT-T on PORT, and nothing else (it implies -t).
        """
        other = freePorts(1)[0]
        ports, bound, mode, service = self.boundPorts(**{"udpencap-port": other})
        self.assertEqual((bound, mode, service.core.settings.nattPort), ([other], "only", other))

    def test_retransmitOptions(self):
        """
        --retransmit-timeout and --retransmit-tries make the core's
        retransmission schedule (RFC 7296 2.1); by default 2 s and 5 tries.
        """
        schedule = self.boundPorts()[3].core.settings.retransmit
        self.assertEqual((schedule.initial, schedule.tries), (2.0, 5))
        service = self.boundPorts(**{"retransmit-timeout": 0.5, "retransmit-tries": 3})[3]
        schedule = service.core.settings.retransmit
        self.assertEqual((schedule.initial, schedule.tries, schedule.jitter), (0.5, 3, 0.1))


class TwistdTests(TestCase):
    def test_twistdRunsAndStops(self):
        """
        C{twistd -n iked -c FILE} loads the file, listens, and stops
        cleanly on SIGTERM.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        config = os.path.join(directory, "iked.conf")
        shutil.copy(os.path.join(ROOT, "conf", "iked.conf"), config)
        os.chmod(config, 0o600)
        sock = os.path.join("/tmp", "ikedtx-test-%d.sock" % (os.getpid(),))
        ike, natt = freePorts(2)
        log = os.path.join(directory, "twistd.log")
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-c",
                 "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()",
                 "-n", "--pidfile=", "iked", "-c", config, "--listen", "127.0.0.1",
                 "--ike-port", str(ike), "--natt-port", str(natt), "-s", sock, "-D", "local_gw=127.0.0.1",
                 "-D", "remote_gw=127.0.0.9"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

        def output():
            with open(log, "rb") as f:
                return f.read().decode()

        try:
            # Started as root, the daemon is privilege-separated: the
            # parent binds the control socket at once, the worker serves
            # (and logs through the parent) once it has started.
            deadline = time.time() + 30
            while ("site-to-site: initiating" not in output() and time.time() < deadline
                   and process.poll() is None):
                time.sleep(0.05)
            started = os.path.exists(sock)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        output = output()
        self.assertTrue(started, "no control socket:\n" + output)
        # twistd ends by re-raising the signal that stopped the reactor, so
        # a clean SIGTERM shutdown exits "killed by SIGTERM".
        self.assertIn(process.returncode, (0, -signal.SIGTERM), output)
        self.assertIn("loaded 1 policies", output)
        self.assertIn("listening on 127.0.0.1 port %d" % (ike,), output)
        self.assertIn("listening on 127.0.0.1 port %d (NAT-T)" % (natt,), output)
        self.assertIn("site-to-site: initiating IKE SA to 127.0.0.9", output)
        self.assertIn("Server Shut Down.", output)
        self.assertNotIn("Traceback", output)
        self.assertFalse(os.path.exists(sock))


class ChildServiceTests(TestCase):
    """
    The UDP ports and the control socket are child services of
    L{IkedService}, started in order after the core and stopped in
    reverse order.
    """

    def test_children(self):
        """
        One child per address and port, IKE before NAT-T, then the control
        socket and the SIGHUP handler; all run after start and none after
        stop.
        """
        from ikedtx.service import ControlSocketService, IKEPortService, ReloadOnHangup, StopOnTerm

        ike, natt = freePorts(2)
        sockPath = self.mktemp() + ".sock"
        service = IkedService(parseConfig('ikev2 esp from 10.0.0.1 to 10.0.0.2'),
                              options("127.0.0.1", ike, natt, sockPath))
        self.assertEqual([s.name for s in service],
                         ["IKE port 127.0.0.1:%d" % (ike,), "NAT-T port 127.0.0.1:%d" % (natt,), "control socket",
                          "SIGHUP", "SIGTERM"])
        self.assertEqual([type(s) for s in service],
                         [IKEPortService, IKEPortService, ControlSocketService, ReloadOnHangup, StopOnTerm])
        service.startService()
        self.assertEqual([s.running for s in service], [1, 1, 1, 1, 1])
        self.assertEqual(sorted(service.runner.ports), sorted([(socket.AF_INET, ike), (socket.AF_INET, natt)]))
        d = service.stopService()

        def stopped(_):
            self.assertEqual([s.running for s in service], [0, 0, 0, 0, 0])
            self.assertFalse(os.path.exists(sockPath))

        return d.addCallback(stopped)

    def test_busyPortStopsStart(self):
        """
        A port another socket holds fails the start with a one-line
        L{StartupError}; what had started is stopped again.
        """
        from ikedtx.service import StartupError

        ike, natt = freePorts(2)
        busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        busy.bind(("127.0.0.1", natt))
        self.addCleanup(busy.close)
        service = IkedService(parseConfig('ikev2 esp from 10.0.0.1 to 10.0.0.2'), options("127.0.0.1", ike, natt))
        self.assertEqual(str(self.assertRaises(StartupError, service.check)),
                         "cannot bind 127.0.0.1:%d: Address already in use" % (natt,))
        error = self.assertRaises(StartupError, service.startService)
        self.assertEqual(str(error), "cannot bind 127.0.0.1:%d: Address already in use" % (natt,))
        self.assertFalse(service.running)
        self.assertEqual(service._ports, [])

        def released():
            # A UDP port closes its socket on the reactor's next turn.
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind(("127.0.0.1", ike))
            probe.close()

        return task.deferLater(reactor, 0.01, released)


class ControlSocketTests(TestCase):
    """
    The control socket: mode 0600; a live daemon's socket is never taken
    over; a stale one is replaced; a bad path is a one-line error.
    """

    def directory(self):
        # Short enough for a sockaddr_un wherever trial runs.
        path = os.path.join("/tmp", "ikx-sock-%d-%d" % (os.getpid(), id(self)))
        os.makedirs(path)
        self.addCleanup(shutil.rmtree, path, True)
        return path

    def service(self, path):
        from ikedtx.service import ControlSocketService

        parent = IkedService(parseConfig('ikev2 esp from 10.0.0.1 to 10.0.0.2'),
                             options("127.0.0.1", 1, 2, None, **{"no-natt": True}))
        child = ControlSocketService(path, reactor)
        child.parent = parent
        return child

    def test_mode(self):
        """
        The socket is created mode 0600: only root (its owner) may drive
        the daemon.
        """
        import stat

        path = os.path.join(self.directory(), "iked.sock")
        child = self.service(path)
        child.startService()
        self.addCleanup(child.stopService)
        self.assertTrue(stat.S_ISSOCK(os.stat(path).st_mode))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_liveSocketInUse(self):
        """
        A socket some process accepts on is another iked's: start-up fails
        and the socket file stays.
        """
        from ikedtx.service import StartupError

        path = os.path.join(self.directory(), "iked.sock")
        live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        live.bind(path)
        live.listen(5)
        self.addCleanup(live.close)
        child = self.service(path)
        for attempt in (child.check, child.startService):
            error = self.assertRaises(StartupError, attempt)
            self.assertEqual(str(error), "control socket %s is in use by another iked" % (path,))
            self.assertTrue(os.path.exists(path))
        self.assertFalse(child.running)

    def test_staleSocketReplaced(self):
        """
        A socket file nobody accepts on (a daemon died) is removed and
        bound again.
        """
        path = os.path.join(self.directory(), "iked.sock")
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(path)
        dead.close()
        child = self.service(path)
        child.startService()
        self.addCleanup(child.stopService)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(probe.close)
        probe.connect(path)

    def test_badPaths(self):
        """
        A missing directory, a path too long for a socket and a file that
        is not a socket are each one line, and nothing is removed.
        """
        from ikedtx.service import StartupError

        directory = self.directory()
        plain = os.path.join(directory, "file")
        open(plain, "w").close()
        long = os.path.join(directory, "x" * 120)
        for path, message in [
            (os.path.join(directory, "missing", "iked.sock"),
             "control socket %s/missing/iked.sock: no directory %s/missing" % (directory, directory)),
            (long, "control socket %s: path too long (at most 107 bytes)" % (long,)),
            (plain, "control socket %s: exists and is not a socket" % (plain,)),
        ]:
            error = self.assertRaises(StartupError, self.service(path).startService)
            self.assertEqual(str(error), message)
            self.assertNotIn("\n", str(error))
        self.assertTrue(os.path.exists(plain))


class MemoryServiceMixin:
    """
    An L{IkedService} in memory for reload tests: its core and runner
    record what they are given, its thread runs the call at once, and its
    reactor's name resolver answers when the test says.
    """

    def setUp(self):
        from tests.test_config_hosts import FakeResolver

        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "iked.conf")
        self.write('ikev2 "one" esp from 10.0.0.1 to 10.0.0.2\n')
        self.resolver = FakeResolver()
        self.reactor = SimpleNamespace(nameResolver=self.resolver)
        self.service = IkedService(parseConfig('ikev2 "one" esp from 10.0.0.1 to 10.0.0.2\n'),
                                   options("127.0.0.1", 1, 2, config=self.path), reactor=self.reactor)
        self.inThread, self.reloaded, self.executed = [], [], []
        self.service.runInThread = lambda f, *args: self.inThread.append(f) or defer.maybeDeferred(f, *args)
        self.service.core = SimpleNamespace(reload=lambda config, resolved: self.reloaded.append((config, resolved))
                                            or ["actions"])
        self.service.runner = SimpleNamespace(
            execute=self.executed.append,
            reload=lambda config, resolved: self.executed.append(self.service.core.reload(config, resolved)))

    def write(self, text):
        with open(self.path, "w") as f:
            f.write(text)
        os.chmod(self.path, 0o600)


class InMemoryReloadTests(MemoryServiceMixin, SynchronousTestCase):
    """
    L{IkedService.reload} while the daemon runs: the file is parsed off the
    reactor thread and the policies' names are resolved through the
    reactor's resolver; nothing is applied until both are done.
    """

    def test_reload(self):
        """
        The new file's policies are in force once its names resolve.
        """
        from ikedtx.config import loadConfig

        self.write('ikev2 "two" esp from 10.0.0.1 to 10.0.0.2 peer localhost\n')
        d = self.service.reload()
        self.assertEqual(self.inThread, [loadConfig])
        self.assertEqual([asked[0] for asked in self.resolver.asked], ["localhost"])
        self.assertNoResult(d)
        self.assertEqual((self.reloaded, [p.name for p in self.service.config.policies]), ([], ["one"]))
        self.resolver.answer("localhost", "192.0.2.7")
        config = self.successResultOf(d)
        self.assertEqual([p.name for p in config.policies], ["two"])
        self.assertIs(self.service.config, config)
        self.assertEqual(self.reloaded, [(config, {"localhost": [ip_address("192.0.2.7")]})])
        self.assertEqual(self.executed, [["actions"]])

    def test_broken(self):
        """
        A broken file fails the Deferred with its errors and changes
        nothing.
        """
        from ikedtx.config import ConfigError

        self.write("ikev2 bogus\n")
        failure = self.failureResultOf(self.service.reload(), ConfigError)
        self.assertIn("%s: 1: syntax error" % (self.path,), str(failure.value))
        self.assertEqual((self.reloaded, self.executed, [p.name for p in self.service.config.policies]),
                         ([], [], ["one"]))

    def test_warnings(self):
        """
        The new file's warnings (here a variable-time group) are logged as
        warnings when it comes into force.
        """
        from twisted.logger import LogLevel, Logger, formatEvent

        events = []
        self.service._log = Logger(observer=events.append)
        self.write('ikev2 "two" esp from 10.0.0.1 to 10.0.0.2 ikesa enc aes-128 prf hmac-sha2-256 '
                   'auth hmac-sha2-256 group brainpool224\n')
        self.successResultOf(self.service.reload())
        warned = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(warned, ["%s: 1: group brainpool224 is computed in pure Python, not in "
                                  "constant time: its timing may leak the private value" % (self.path,)])

    def test_oneAtATime(self):
        """
        A reload asked for while one is resolving waits for it.
        """
        self.write('ikev2 "two" esp from 10.0.0.1 to 10.0.0.2 peer localhost\n')
        first = self.service.reload()
        second = self.service.reload()
        self.assertEqual(len(self.inThread), 1)
        self.resolver.answer("localhost", "192.0.2.7")
        self.successResultOf(first)
        self.assertEqual(len(self.inThread), 2)
        self.resolver.answer("localhost", "192.0.2.8")
        self.successResultOf(second)
        self.assertEqual([resolved["localhost"] for _, resolved in self.reloaded],
                         [[ip_address("192.0.2.7")], [ip_address("192.0.2.8")]])


class ReloadLocalKeyTests(MemoryServiceMixin, SynchronousTestCase):
    def test_unusableKeyKept(self):
        """
        A private/local.key that became unusable (here: others may read it)
        while a policy signs: one error line naming it, and the key loaded
        before stays.
        """
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from twisted.logger import LogLevel, formatEvent, globalLogPublisher

        from ikedtx.auth.store import CredentialStore

        key = ec.generate_private_key(ec.SECP256R1())
        path = os.path.join(self.dir, "private", "local.key")
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        os.chmod(path, 0o600)
        self.service.credentials = CredentialStore(self.dir)
        loaded = self.service.credentials.privateKey
        self.assertIsNotNone(loaded)
        os.chmod(path, 0o644)
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.successResultOf(self.service.reload())
        self.assertIs(self.service.credentials.privateKey, loaded)
        errors = [formatEvent(e) for e in events if e.get("log_level") == LogLevel.error
                  and e.get("log_namespace", "").startswith("ikedtx.service")]
        self.assertEqual(len(errors), 1)
        self.assertIn(path, errors[0])
        self.assertIn("policy one needs it; keeping the key loaded before", errors[0])


class HangupTests(SynchronousTestCase):
    """
    SIGHUP reloads the configuration, as it does iked's.
    """

    def test_handler(self):
        """
        While the service runs, SIGHUP hands C{reloadOnSignal} to the
        reactor; once stopped, the previous handler is back.
        """
        from ikedtx.service import ReloadOnHangup

        calls, received = [], []
        previous = signal.signal(signal.SIGHUP, lambda *a: received.append("previous"))
        self.addCleanup(signal.signal, signal.SIGHUP, previous)
        child = ReloadOnHangup(SimpleNamespace(callFromThread=calls.append))
        child.parent = SimpleNamespace(reloadOnSignal="reload")
        child.startService()
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual((calls, received), (["reload"], []))
        child.stopService()
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual((calls, received), (["reload"], ["previous"]))

class StopOnTermTests(SynchronousTestCase):
    def test_handler(self):
        """
        Once the reactor runs, SIGTERM hands a clean stop to the reactor
        (so that twistd does not end the process with the signal, status
        143); once stopped, the previous handler is back.
        """
        from ikedtx.service import StopOnTerm

        calls, received, stopped, whenRunning = [], [], [], []
        previous = signal.signal(signal.SIGTERM, lambda *a: received.append("previous"))
        self.addCleanup(signal.signal, signal.SIGTERM, previous)
        fakeReactor = SimpleNamespace(callFromThread=calls.append, callWhenRunning=whenRunning.append, running=True,
                                      stop=lambda: stopped.append(1))
        child = StopOnTerm(fakeReactor)
        child.startService()
        os.kill(os.getpid(), signal.SIGTERM)
        self.assertEqual((calls, received), ([], ["previous"]))
        whenRunning[0]()
        os.kill(os.getpid(), signal.SIGTERM)
        self.assertEqual(len(calls), 1)
        calls[0]()
        self.assertEqual(stopped, [1])
        child.stopService()
        os.kill(os.getpid(), signal.SIGTERM)
        self.assertEqual(received, ["previous", "previous"])


class HangupReloadTests(MemoryServiceMixin, SynchronousTestCase):
    def test_brokenFileLogged(self):
        """
        A broken file on SIGHUP is logged, each error on its own line, and
        the configuration in force stays.
        """
        from twisted.logger import formatEvent, globalLogPublisher

        self.service.running = 1
        self.write("ikev2 bogus\n\nbogus\n")
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.successResultOf(self.service.reloadOnSignal())
        errors = [formatEvent(e) for e in events if e["log_level"].name == "error"]
        self.assertEqual(errors, ["%s: 1: syntax error at end of line" % (self.path,),
                                  "%s: 3: syntax error at end of line" % (self.path,),
                                  "reload failed: keeping the configuration in force"])
        self.assertEqual([p.name for p in self.service.config.policies], ["one"])

    def test_notRunning(self):
        """
        A SIGHUP that arrives as the daemon stops does nothing.
        """
        self.write('ikev2 "two" esp from 10.0.0.1 to 10.0.0.2\n')
        self.assertIsNone(self.service.reloadOnSignal())
        self.assertEqual(self.inThread, [])


class HangupDaemonTests(TestCase):
    def test_sighup(self):
        """
        A real daemon (C{twistd -n iked -d}) whose file changed reloads it
        on SIGHUP; a broken file is reported and the daemon goes on.
        """
        directory = tempfile.mkdtemp(prefix="ikx-hup-")
        self.addCleanup(shutil.rmtree, directory, True)
        config = os.path.join(directory, "iked.conf")
        log = os.path.join(directory, "log")

        def write(text):
            with open(config, "w") as f:
                f.write(text)
            os.chmod(config, 0o600)

        def waitFor(text, timeout=30):
            deadline = time.time() + timeout
            while time.time() < deadline and process.poll() is None:
                with open(log) as f:
                    if text in f.read():
                        return True
                time.sleep(0.05)
            return False

        write('ikev2 "one" passive esp from 10.0.0.1 to 10.0.0.2\n')
        sock = os.path.join(directory, "s")
        ike, natt = freePorts(2)
        with open(log, "w") as output:
            process = subprocess.Popen(
                [sys.executable, "-c",
                 "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()",
                 "-n", "--pidfile=", "iked", "-d", "-f", config, "--listen", "127.0.0.1", "--ike-port", str(ike),
                 "--natt-port", str(natt), "-s", sock, "--etc-dir", directory, "--kernel", "decoupled"],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        try:
            self.assertTrue(waitFor("loaded 1 policies"), open(log).read())
            write('ikev2 "one" passive esp from 10.0.0.1 to 10.0.0.2\n'
                  'ikev2 "two" passive esp from 10.0.0.3 to 10.0.0.4\n')
            process.send_signal(signal.SIGHUP)
            self.assertTrue(waitFor("reloaded %s: loaded 2 policies" % (config,)), open(log).read())
            write("bogus\n")
            process.send_signal(signal.SIGHUP)
            self.assertTrue(waitFor("reload failed: keeping the configuration in force"), open(log).read())
            self.assertIn("%s: 1: syntax error at end of line" % (config,), open(log).read())
            self.assertIsNone(process.poll())
            from ikedtx.control import sync

            self.assertEqual(sync.showSA(sock), [])
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        output = open(log).read()
        self.assertNotIn("Traceback", output)
        self.assertIn("Server Shut Down.", output)


class StartupCheckTests(SynchronousTestCase):
    def test_unusableKernel(self):
        """
        A kernel provider that cannot be made (no netlink, no rights) is a
        one-line L{StartupError} before anything starts.
        """
        import errno

        from ikedtx import service as S

        def broken():
            raise PermissionError(errno.EPERM, "Operation not permitted")

        self.patch(S, "KERNEL_PROVIDERS", dict(S.KERNEL_PROVIDERS, broken=broken))
        service = IkedService(parseConfig('ikev2 esp from 10.0.0.1 to 10.0.0.2'),
                              options("127.0.0.1", 1, 2, kernel="broken"), reactor=SimpleNamespace())
        error = self.assertRaises(S.StartupError, service.check)
        self.assertEqual(str(error), "the broken kernel provider cannot be used: Operation not permitted")

    def test_providerCheck(self):
        """
        The xfrm and userspace providers are tried for real before start-up
        (an ESP SA installed and deleted, the TUN device made): what they
        say is the one line.
        """
        from ikedtx import service as S
        from ikedtx.kernel.probe import DatapathUnusable

        def noEsp():
            raise DatapathUnusable("the kernel cannot install an ESP SA: Protocol not supported (EPROTONOSUPPORT)")

        self.patch(S, "KERNEL_CHECKS", dict(S.KERNEL_CHECKS, xfrm=noEsp))
        service = IkedService(parseConfig('ikev2 esp from 10.0.0.1 to 10.0.0.2'),
                              options("127.0.0.1", 1, 2, kernel="xfrm"), reactor=SimpleNamespace())
        error = self.assertRaises(S.StartupError, service.check)
        self.assertEqual(str(error), "the xfrm kernel provider cannot be used: the kernel cannot install an ESP SA: "
                                     "Protocol not supported (EPROTONOSUPPORT)")

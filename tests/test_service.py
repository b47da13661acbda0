"""
Tests for L{ikedtx.service}: the daemon binds its UDP ports and control
socket, two daemons negotiate over real loopback sockets in one reactor,
C{reload} re-reads the file, and C{twistd -n iked -c FILE} runs and stops
cleanly on SIGTERM.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

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

        made = []

        def userspace():
            made.append(UserspaceKernel(device=FakeTun(), routes=FakeRoutes(["10.1.0.1", "10.2.0.1"]), rawEsp=False))
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
        service.reload()
        self.assertEqual([p.name for p in service.core.policies.policies], ["two"])
        with open(path, "w") as f:
            f.write("ikev2 bogus\n")
        self.assertRaises(Exception, service.reload)
        self.assertEqual([p.name for p in service.core.policies.policies], ["two"])
        yield defer.succeed(None)

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
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()",
             "-n", "--pidfile=", "iked", "-c", config, "--listen", "127.0.0.1",
             "--ike-port", str(ike), "--natt-port", str(natt), "-s", sock, "-D", "local_gw=127.0.0.1",
             "-D", "remote_gw=127.0.0.9"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 30
            while not os.path.exists(sock) and time.time() < deadline and process.poll() is None:
                time.sleep(0.05)
            started = os.path.exists(sock)
            time.sleep(0.5)
        finally:
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=30)[0].decode()
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

"""
RADIUS Dynamic Authorization (C{radius dae listen on ADDRESS port N}, RFC
5176) under privilege separation, live: a port below 1024 only root binds;
the parent binds it (at start, and at a reload that adds one) and the
unprivileged worker serves it. FreeRADIUS's radclient sends the
Disconnect-Requests; the daemon is L{tests.hostile.LiveDaemon} (started as
root: separated).
"""

import random
import signal
import socket
import subprocess

from twisted.trial.unittest import TestCase

from ikedtx.testing.support import requireExecutable, requireRoot
from ikedtx.wire.constants import ExchangeType
from tests import hostile
from tests.test_privsep_daemon import childrenOf, openFiles, status

DAE_SECRET = "dae-s3cret"


def freePrivilegedPorts(n):
    """
    C{n} UDP ports below 1024 that nothing binds on 127.0.0.1 now.
    """
    found = []
    # In a random order: two tests run at once (trial -j2) took the same
    # first free port, and one's radclient then got no reply.
    candidates = list(range(600, 991))
    random.shuffle(candidates)
    for port in candidates:
        skt = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            skt.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            skt.close()
        found.append(port)
        if len(found) == n:
            return found
    raise AssertionError("no free UDP port below 1024")


def daeLines(*ports):
    return "".join("radius dae listen on 127.0.0.1 port %d\n" % (port,) for port in ports) + (
        'radius dae client 127.0.0.1 secret "%s"\n' % (DAE_SECRET,))


def udpInode(port):
    """
    The inode of the UDP socket bound to 127.0.0.1:C{port}.
    """
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == "0100007F:%04X" % (port,):
                return fields[9]
    raise AssertionError("nothing is bound to UDP 127.0.0.1:%d" % (port,))


class PrivilegedDAEPortTests(TestCase):
    def setUp(self):
        requireRoot()
        self.radclientPath = requireExecutable("radclient", "apt-get install freeradius-utils")

    def radclient(self, port, attributes, secret=DAE_SECRET):
        result = subprocess.run([self.radclientPath, "-x", "-r", "1", "-t", "3", "127.0.0.1:%d" % (port,),
                                 "disconnect", secret], input="\n".join(attributes) + "\n", capture_output=True,
                                text=True, timeout=60)
        return result.stdout + result.stderr

    def workerOf(self, daemon):
        (worker,) = childrenOf(daemon.process.pid)
        return worker

    def test_privilegedPortServedByWorker(self):
        """
        C{radius dae listen on 127.0.0.1 port N}, N below 1024: the worker,
        with no capability, holds the socket and answers a Disconnect-Request
        for an unknown session with Disconnect-NAK (Session-Context-Not-
        Found), and one naming a legitimate peer's IKE SA (Acct-Session-Id
        SPIi-SPIr) with Disconnect-ACK, after which the daemon sends the
        peer its Delete (RFC 5176 3, RFC 7296 1.4.1).
        """
        (port,) = freePrivilegedPorts(1)
        daemon = hostile.LiveDaemon(self, daeLines(port) + hostile.RESPONDER)
        peer = hostile.HostilePeer(self, daemon)
        ikeSA = peer.establish()
        worker = self.workerOf(daemon)
        self.assertEqual(int(status(worker)["CapEff"], 16), 0)
        self.assertNotEqual(status(worker)["Uid"].split()[0], "0")
        self.assertIn("socket:[%s]" % (udpInode(port),), openFiles(worker))
        answer = self.radclient(port, ['User-Name = "nobody"'])
        self.assertIn("Disconnect-NAK", answer)
        self.assertIn("Error-Cause = Session-Context-Not-Found", answer)
        answer = self.radclient(port, ['Acct-Session-Id = "%s-%s"' % (ikeSA.spiI.hex(), ikeSA.spiR.hex())])
        self.assertIn("Disconnect-ACK", answer)
        message, payloads = peer.receiveProtected(ikeSA)
        self.assertEqual(message.exchangeType, ExchangeType.INFORMATIONAL)
        self.assertIn("RADIUS DAE: disconnecting IKE SA %s-%s" % (ikeSA.spiI.hex(), ikeSA.spiR.hex()),
                      daemon.logWith("disconnecting IKE SA"))
        self.assertNotIn("Permission denied", daemon.log())
        daemon.assertCleanLog(self)

    def test_reloadAddsPrivilegedPort(self):
        """
        A reload (SIGHUP) whose configuration adds a second privileged DAE
        port: the parent binds it and hands it to the running worker, which
        serves both.
        """
        first, second = freePrivilegedPorts(2)
        daemon = hostile.LiveDaemon(self, daeLines(first) + hostile.RESPONDER)
        daemon.logWith("RADIUS DAE listening on 127.0.0.1 port %d" % (first,))
        self.assertIn("Disconnect-NAK", self.radclient(first, ['User-Name = "nobody"']))
        with open(daemon.configPath, "w") as f:
            f.write(daeLines(first, second) + hostile.RESPONDER)
        daemon.process.send_signal(signal.SIGHUP)
        daemon.logWith("RADIUS DAE listening on 127.0.0.1 port %d" % (second,))
        for port in (first, second):
            self.assertIn("Disconnect-NAK", self.radclient(port, ['User-Name = "nobody"']))
        self.assertIn("socket:[%s]" % (udpInode(second),), openFiles(self.workerOf(daemon)))
        log = daemon.settledLog()
        self.assertNotIn("Permission denied", log)
        daemon.assertCleanLog(self)

"""
Privilege separation seen from outside (issue 11): a daemon started as root
in a namespace runs its peer-facing worker as the unprivileged user, with no
capabilities, no new privileges and an empty root; the worker cannot read
the private key directory; killed, it is replaced and what it had put in the
datapath is flushed; the daemon interoperates with charon and openiked
through the worker, signing in the parent.
"""

import errno
import os
import pwd
import signal
import subprocess
import sys

from twisted.trial.unittest import TestCase

from ikedtx.testing.lab import Auth, Child, Connection, Secret, poll
from ikedtx.testing.support import requireRoot
from tests.interop import A, A_INNER, B, B_INNER, PSK, Credentials, InteropMixin, ikedtxPolicy

WORKER_USER = "_iked"


def childrenOf(pid):
    """
    The pids whose parent is C{pid}.
    """
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % (name,)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(name))
    return found


def status(pid):
    """
    /proc/PID/status as a dict of its fields.
    """
    with open("/proc/%d/status" % (pid,)) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


class PrivsepMixin(InteropMixin):
    def setUp(self):
        requireRoot()
        self.user = pwd.getpwnam(WORKER_USER)

    def workerOf(self, ours, other=None, timeout=20.0):
        """
        The pid of C{ours}'s worker (another than C{other}) once it serves.
        """
        found = []

        def ready():
            kids = [p for p in childrenOf(ours.process.pid) if p != other]
            for pid in kids:
                try:
                    if status(pid)["Uid"].split()[0] == str(self.user.pw_uid):
                        found.append(pid)
                        return True
                except (OSError, KeyError):
                    pass
            return False

        poll(ready, timeout, interval=0.05, what=lambda: "a worker of %r\n%s" % (ours, ours.report()))
        return found[0]

    def startCharon(self, credentials):
        charon = self.charon(self.b, libipsec=True)
        if credentials.kind == "psk":
            local, remote = Auth("psk", id=credentials.idB), Auth("psk", id=credentials.idA)
            charon.addSecret(Secret(PSK, ids=[credentials.idA, credentials.idB]))
        else:
            charon.addCA(credentials.ca.cert)
            local = Auth("pubkey", id=credentials.idB, certs=[credentials.certB])
            remote = Auth("pubkey", id=credentials.idA, cacerts=[credentials.ca.cert])
        children = [Child("net", local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"],
                          esp_proposals=["aes128gcm16"])]
        charon.addConnection(Connection("peer", local_addrs=[B], remote_addrs=[A],
                                        proposals=["aes128gcm16-prfsha256-x25519"], local=local, remote=remote,
                                        children=children))
        charon.start()
        return charon


class WorkerPrivilegesTests(PrivsepMixin, TestCase):
    def test_workerIsUnprivileged(self):
        """
        The worker runs as _iked (real, effective, saved and file system
        ids), with no capability (effective, permitted, bounding), with
        NoNewPrivs and the seccomp filter, chrooted into an empty directory;
        the parent stays root and unfiltered.
        """
        self.hosts()
        credentials = Credentials("ecdsa")
        ours = self.startIkedtx(ikedtxPolicy(credentials, child="childsa enc aes-128-gcm"))
        credentials.installIkedtx(ours)
        ours.start()
        worker = self.workerOf(ours)
        fields = status(worker)
        uid, gid = str(self.user.pw_uid), str(self.user.pw_gid)
        self.assertEqual(fields["Uid"].split(), [uid] * 4)
        self.assertEqual(fields["Gid"].split(), [gid] * 4)
        self.assertEqual(fields["Groups"].split(), [gid])
        self.assertEqual(int(fields["CapEff"], 16), 0)
        self.assertEqual(int(fields["CapPrm"], 16), 0)
        self.assertEqual(int(fields["CapBnd"], 16), 0)
        self.assertEqual(fields["NoNewPrivs"], "1")
        # A seccomp filter (mode 2), one: ikedtx.privsep.seccomp's.
        self.assertEqual((fields["Seccomp"], fields["Seccomp_filters"]), ("2", "1"))
        self.assertEqual(status(ours.process.pid)["Seccomp"], "0")
        root = os.readlink("/proc/%d/root" % (worker,))
        self.assertEqual(root, os.path.realpath(self.user.pw_dir))
        self.assertEqual(os.listdir(root), [])
        self.assertEqual(status(ours.process.pid)["Uid"].split()[0], "0")

    def test_workerCannotReadPrivateKeys(self):
        """
        The private key directory is out of the worker's reach twice over:
        it is not in the worker's root, and its ids cannot open it where it
        is (EACCES, tried with exactly the worker's uid, gid and groups).
        """
        self.hosts()
        credentials = Credentials("ecdsa")
        ours = self.startIkedtx(ikedtxPolicy(credentials, child="childsa enc aes-128-gcm"))
        credentials.installIkedtx(ours)
        ours.start()
        worker = self.workerOf(ours)
        private = os.path.join(ours.etc, "private")
        root = os.readlink("/proc/%d/root" % (worker,))
        self.assertFalse(os.path.exists(os.path.join(root, private.lstrip("/"))))
        fields = status(worker)
        uid, gid = int(fields["Uid"].split()[1]), int(fields["Gid"].split()[1])
        probe = ("import os, errno\n"
                 "os.setgroups([%d]); os.setgid(%d); os.setuid(%d)\n"
                 "try:\n    open(%r, 'rb')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n"
                 "else:\n    print('READ')\n" % (gid, gid, uid, os.path.join(private, "local.key")))
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.stdout.strip(), errno.errorcode[errno.EACCES], out.stderr)


class WorkerRestartTests(PrivsepMixin, TestCase):
    def test_killedWorkerIsReplacedAndFlushed(self):
        """
        SIGKILL of the worker: the parent logs it, flushes the SAs the dead
        worker installed, and starts another, which serves peers again.
        """
        self.hosts()
        credentials = Credentials("psk")
        self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child="childsa enc aes-128-gcm"))
        ours.start()
        ours.initiate("peer")
        self.assertEqual(len(ours.showSa()), 1)
        first = self.workerOf(ours)
        os.kill(first, signal.SIGKILL)
        second = self.workerOf(ours, other=first)
        self.assertNotEqual(first, second)
        poll(lambda: "worker %d serves peers" % (second,) in ours.log(), 20.0, interval=0.1,
             what=lambda: "the new worker\n" + ours.report())
        log = ours.log()
        self.assertIn("worker %d died (signal KILL); flushing the datapath (2 SAs it installed)" % (first,), log)
        self.assertEqual(ours.showSa(), [])
        # The new worker negotiates again (charon's stale IKE SA aside).
        ours.initiate("peer")
        self.assertEqual(len(ours.showSa()), 1)


class ControlBeforeReadyTests(PrivsepMixin, TestCase):
    def answeredOrRefused(self, ours, why):
        """
        C{ikectl show sa} now: the SAs, or the clear refusal C{why}.
        """
        from ikedtx.control.sync import ControlError, showSA

        try:
            return showSA(ours.socketPath, timeout=25.0)
        except ControlError as e:
            self.assertIn(why, str(e))
            self.assertIn("try again in a moment", str(e))
            return None

    def test_commandsBeforeReadyAndDuringRestart(self):
        """
        A command sent as soon as the control socket exists (the worker
        not ready yet), and one sent right after the worker was killed
        (the parent restarting it), each get an answer or the clear
        error, within the parent's bounded wait: never a drop or a hang.
        """
        self.hosts()
        credentials = Credentials("psk")
        ours = self.startIkedtx(ikedtxPolicy(credentials, child="childsa enc aes-128-gcm"))
        ours.start(wait=False)
        poll(lambda: os.path.exists(ours.socketPath), 20.0, interval=0.01,
             what=lambda: "the control socket\n" + ours.report())
        self.assertIn(self.answeredOrRefused(ours, "the daemon is starting"), ([], None))
        first = self.workerOf(ours)
        poll(lambda: "worker %d serves peers" % (first,) in ours.log(), 20.0, interval=0.1,
             what=lambda: "the worker\n" + ours.report())
        self.assertEqual(ours.showSa(), [])
        os.kill(first, signal.SIGKILL)
        self.assertIn(self.answeredOrRefused(ours, "the worker is restarting"), ([], None))
        second = self.workerOf(ours, other=first)
        poll(lambda: "worker %d serves peers" % (second,) in ours.log(), 20.0, interval=0.1,
             what=lambda: "the new worker\n" + ours.report())
        self.assertEqual(ours.showSa(), [])

    def servingWorker(self, ours, other=None):
        worker = self.workerOf(ours, other=other)
        poll(lambda: "worker %d serves peers" % (worker,) in ours.log(), 20.0, interval=0.1,
             what=lambda: "the worker\n" + ours.report())
        return worker

    def acceptedThenKilled(self, ours, worker):
        """
        A control connection the (ready) C{worker} accepted, then the
        worker killed; the client end, to which no command was sent yet.
        """
        import socket

        def sockets():
            return {f for f in openFiles(worker) if f.startswith("socket:")}

        before = sockets()
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(client.close)
        client.settimeout(25.0)
        client.connect(ours.socketPath)
        poll(lambda: sockets() - before, 20.0, interval=0.01, what=lambda: "the worker's accept\n" + ours.report())
        os.kill(worker, signal.SIGKILL)
        return client

    def test_commandOfKilledWorker(self):
        """
        A command on a connection the worker accepted just before it was
        killed: a read-only one (C{ikectl show sa}) is sent again, held by
        the parent until the next worker serves it, and answered; another
        (C{ikectl reset sa}) gets a clear error that says it may not have
        run. Neither hangs nor ends in a traceback.
        """
        from ikedtx.control import sync

        self.hosts()
        ours = self.startIkedtx(ikedtxPolicy(Credentials("psk"), child="childsa enc aes-128-gcm"))
        ours.start()
        first = self.servingWorker(ours)
        connect = sync._connect
        pending = [self.acceptedThenKilled(ours, first)]
        self.patch(sync, "_connect", lambda path, timeout: pending.pop() if pending else connect(path, timeout))
        self.assertEqual(sync.showSA(ours.socketPath, timeout=25.0), [])
        second = self.servingWorker(ours, other=first)
        self.assertEqual(pending, [])
        pending.append(self.acceptedThenKilled(ours, second))
        error = self.assertRaises(sync.ControlError, sync.reset, ours.socketPath, "sa", timeout=25.0)
        self.assertIn("the command may not have run", str(error))
        self.assertEqual(pending, [])
        self.servingWorker(ours, other=second)
        self.assertEqual(ours.showSa(), [])
        self.assertNotIn("Traceback", ours.log())


class PrivsepSigningTests(PrivsepMixin, TestCase):
    def test_certificateSignedInParent(self):
        """
        IKE_AUTH with a certificate under privsep: the AUTH signature comes
        from the parent (the worker holds no private key), and charon
        accepts it.
        """
        self.hosts()
        credentials = Credentials("rsa")
        charon = self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child="childsa enc aes-128-gcm"))
        credentials.installIkedtx(ours)
        ours.start()
        worker = self.workerOf(ours)
        self.assertEqual(status(worker)["Seccomp"], "2")
        ours.initiate("peer")
        sas = [sa for sa in charon.listSas() if sa["state"] == "ESTABLISHED"]
        self.assertEqual(len(sas), 1)
        self.assertTrue(sas[0]["child-sas"])



from tests.test_interop_openiked import OpenIkedAuthTests, OpenIkedMixin  # noqa: E402


class PrivsepOpenIkedTests(PrivsepMixin, OpenIkedMixin, TestCase):
    """
    IKE SA and Child SA with openiked through the unprivileged worker, both
    roles, raw public keys signed by the parent.
    """

    def assertSeparated(self, ours):
        worker = self.workerOf(ours)
        self.assertEqual(int(status(worker)["CapEff"], 16), 0)
        self.assertEqual(status(worker)["Seccomp"], "2")

    def test_rawKeysInitiator(self):
        ours, iked, mine = OpenIkedAuthTests._initiator(self, "raw")
        self.assertSeparated(ours)

    def test_rawKeysResponder(self):
        ours, iked, mine = OpenIkedAuthTests._responder(self, "raw")
        self.assertSeparated(ours)

    def test_pskResponder(self):
        ours, iked, mine = OpenIkedAuthTests._responder(self, "psk")
        self.assertSeparated(ours)


def openFiles(pid):
    """
    What the file descriptors of C{pid} point at.
    """
    directory = "/proc/%d/fd" % (pid,)
    found = []
    for name in os.listdir(directory):
        try:
            found.append(os.readlink(os.path.join(directory, name)))
        except OSError:
            pass
    return found


class PrivsepUserspaceTests(PrivsepMixin, TestCase):
    """
    The user-space datapath under privilege separation: the parent holds
    the TUN device, the raw ESP sockets and its own end of each NAT-T port
    (the kernel steers ESP in UDP there, IKE to the worker's); the worker
    negotiates and never holds the TUN device.
    """

    def startUserspace(self, namespace, config, listen, extra=()):
        ours = self.ikedtx(namespace, config, extraArgs=["--kernel", "userspace", "--listen", listen] + list(extra))
        ours.start()
        return ours

    def assertWorkerUnprivileged(self, ours):
        """
        C{ours}'s worker: the unprivileged user, no capabilities, no new
        privileges, no TUN device; its parent (root) holds the device.
        """
        worker = self.workerOf(ours)
        fields = status(worker)
        self.assertEqual(fields["Uid"].split(), [str(self.user.pw_uid)] * 4)
        self.assertEqual((int(fields["CapEff"], 16), int(fields["CapPrm"], 16), int(fields["CapBnd"], 16)),
                         (0, 0, 0))
        self.assertEqual(fields["NoNewPrivs"], "1")
        self.assertNotIn("/dev/net/tun", openFiles(worker))
        self.assertIn("/dev/net/tun", openFiles(ours.process.pid))
        log = ours.log()
        self.assertIn("datapath: userspace (--kernel userspace); privilege separation: worker as %s" % (WORKER_USER,),
                      log)
        self.assertNotIn("privilege separation off", log)
        return worker

    def test_charonPing(self):
        """
        ikedtx (user-space datapath, privilege-separated) and charon
        (kernel-libipsec, which fakes a NAT: IKE and ESP share UDP 4500):
        the Child SA comes up, three pings pass each way, the parent's
        datapath counts the six packets of each SA and drops nothing (no
        IKE reached it, no ESP the worker), and the worker is unprivileged
        without the TUN device.
        """
        from tests.test_interop_userspace import pingsBothWays

        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials)
        ours = self.startUserspace(self.a, ikedtxPolicy(credentials, child="childsa enc aes-128-gcm"), A)
        ours.initiate("peer")
        pingsBothWays(self, ours, self.a, self.b)
        self.assertWorkerUnprivileged(ours)
        sas = [sa for sa in charon.listSas() if sa["state"] == "ESTABLISHED"]
        self.assertEqual(len(sas), 1)

    def test_ikedtxPairPing(self):
        """
        Two privilege-separated ikedtx daemons with the user-space datapath
        and C{natt} (ESP in UDP on the port IKE uses): pings pass both ways
        and both workers are unprivileged.
        """
        from tests.test_interop_userspace import ping

        self.hosts()
        policy = 'ikev2 "peer" passive natt esp from %s to %s local %s peer %s %s srcid %s dstid %s psk "%s"\n'
        child = "childsa enc aes-128-gcm"
        ours = self.startUserspace(self.a, policy % (A_INNER, B_INNER, A, B, child, A, B, PSK), A)
        theirs = self.startUserspace(self.b, policy % (B_INNER, A_INNER, B, A, child, B, A, PSK), B)
        ours.initiate("peer")
        self.assertEqual(ping(self.a, A_INNER, B_INNER, 3), 3)
        self.assertEqual(ping(self.b, B_INNER, A_INNER, 3), 3)
        self.assertWorkerUnprivileged(ours)
        self.assertWorkerUnprivileged(theirs)

    def test_virtualAddressClient(self):
        """
        ikedtx as road-warrior client (C{request address any}, C{iface})
        under privilege separation: charon lends 10.88.0.1, the parent puts
        it on the policy's interface for the worker (which has no
        CAP_NET_ADMIN), a ping from it is answered through the tunnel, and
        it is gone from the interface once the IKE SA is deleted.
        """
        from tests.test_interop_userspace import ping

        self.hosts()
        iface = self.link.interface(self.a)
        charon = self.charon(self.b, libipsec=True)
        charon.addSecret(Secret(PSK, ids=[A, B]))
        charon.addPool("rw", "10.88.0.0/29", dns=["10.2.0.53"])
        charon.addConnection(Connection(
            "rw", local_addrs=[B], remote_addrs=[A], proposals=["aes128gcm16-prfsha256-x25519"],
            local=Auth("psk", id=B), remote=Auth("psk", id=A), pools=["rw"],
            children=[Child("net", local_ts=[B_INNER + "/32"], remote_ts=["dynamic"], esp_proposals=["aes128gcm16"])]))
        charon.start()
        ours = self.startUserspace(
            self.a, 'ikev2 "peer" passive esp from dynamic to %s local %s peer %s childsa enc aes-128-gcm '
                    'srcid %s dstid %s psk "%s" request address any iface "%s"\n' % (B_INNER, A, B, A, B, PSK, iface), A)
        ours.initiate("peer")

        def addresses():
            return self.a.run(["ip", "-o", "addr", "show", "dev", iface], check=False).stdout

        self.assertIn("10.88.0.1/32", addresses())
        poll(lambda: "virtual address 10.88.0.1 on %s (for the worker)" % (iface,) in ours.log(), 10.0, interval=0.1,
             what=lambda: "the parent's line\n" + ours.report())
        self.assertEqual(ping(self.a, "10.88.0.1", B_INNER, 3), 3)
        self.assertWorkerUnprivileged(ours)
        (sa,) = ours.showSa()
        ours.deleteIkeSA(sa["spiI"])
        poll(lambda: "10.88.0.1" not in addresses(), 10.0, interval=0.1,
             what=lambda: "10.88.0.1 off %s\n%s" % (iface, ours.report()))


_FETCH = ("import sys, urllib.request\n"
          "with urllib.request.urlopen(sys.argv[1], timeout=20) as r:\n"
          "    sys.stdout.write(r.read().decode('utf-8'))\n")


class PrivsepMetricsTests(PrivsepMixin, TestCase):
    def test_privilegedPort(self):
        """
        C{--metrics 127.0.0.1:900}: a port only root binds; the parent binds
        it and the unprivileged worker serves it (GET /metrics answers with
        the daemon's figures); the worker holds the listening socket.
        """
        self.hosts()
        credentials = Credentials("psk")
        ours = self.startIkedtx(ikedtxPolicy(credentials, child="childsa enc aes-128-gcm"),
                                extraArgs=["--metrics", "127.0.0.1:900"])
        ours.start()
        worker = self.workerOf(ours)
        poll(lambda: "metrics on http://127.0.0.1:900/metrics" in ours.log(), 10.0, interval=0.1,
             what=lambda: "the worker's metrics line\n" + ours.report())
        result = self.a.run([sys.executable, "-c", _FETCH, "http://127.0.0.1:900/metrics"], timeout=60)
        self.assertIn("ikedtx_half_open_ike_sas 0.0", result.stdout)
        self.assertEqual(int(status(worker)["CapEff"], 16), 0)
        self.assertIn("socket:[%s]" % (listening(worker, 900),), openFiles(worker))


def listening(pid, port):
    """
    The inode of the TCP socket listening on C{port} in the network
    namespace of C{pid} (/proc/PID/net/tcp).
    """
    with open("/proc/%d/net/tcp" % (pid,)) as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(":%04X" % (port,)) and fields[3] == "0A":
                return fields[9]
    raise AssertionError("nothing listens on TCP port %d" % (port,))


class SteeringTests(TestCase):
    """
    The NAT-T port of the user-space datapath under privilege separation:
    the kernel splits its datagrams between the worker's socket and the
    parent's by the non-ESP marker (RFC 3948 2.2).
    """

    def test_markerSteers(self):
        """
        IKE (a zero marker) and NAT keepalives (one byte 0xff) reach the
        first socket, the worker's; ESP in UDP (a non-zero SPI) the second,
        the parent's; none reaches both.
        """
        import socket

        from ikedtx.privsep.parent import bindEspSocket, bindPortSocket

        worker = bindPortSocket("127.0.0.1", 0, True, "userspace")
        self.addCleanup(worker.close)
        port = worker.getsockname()[1]
        parent = bindEspSocket("127.0.0.1", port)
        self.addCleanup(parent.close)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        ike, keepalive = b"\0\0\0\0" + b"i" * 28, b"\xff"
        esp = [b"\x00\x00\x01\x00" + b"e" * 28, b"\xc0\xff\xee\x01" + b"e" * 28]
        for datagram in [ike, esp[0], keepalive, esp[1], ike]:
            sender.sendto(datagram, ("127.0.0.1", port))
        got = {worker: [], parent: []}

        def drained():
            for skt, datagrams in got.items():
                try:
                    while True:
                        datagrams.append(skt.recv(100))
                except BlockingIOError:
                    pass
            return sum(map(len, got.values())) >= 5

        poll(drained, 5.0, interval=0.01, what=lambda: "five datagrams: %r" % (got,))
        self.assertEqual(got[worker], [ike, keepalive, ike])
        self.assertEqual(got[parent], esp)

    def test_espReceiveBuffer(self):
        """
        The parent's ESP socket has room for a bulk transfer's bursts
        (SO_RCVBUFFORCE: the kernel reports twice what was set).
        """
        import socket

        from ikedtx.privsep.parent import ESP_RECEIVE_BUFFER, bindEspSocket

        parent = bindEspSocket("127.0.0.1", 0)
        self.addCleanup(parent.close)
        self.assertGreaterEqual(parent.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), ESP_RECEIVE_BUFFER)

    def test_inboundThreadReads(self):
        """
        A datapath that reads the parent's ESP socket in its inbound thread
        gets the socket, and the reactor stops reading it (the port only
        sends); one without an inbound thread leaves it to the reactor.
        """
        from types import SimpleNamespace

        from twisted.internet import reactor

        from ikedtx.privsep.parent import PrivsepService, bindEspSocket

        class Datapath:
            def __init__(self, threaded):
                self.threaded = threaded
                self.sockets = []

            def receiveEspOn(self, sock):
                self.sockets.append(sock)
                return self.threaded

            def espReceived(self, data, remote, local):
                pass

        for threaded in (True, False):
            service = SimpleNamespace(reactor=reactor, kernel=Datapath(threaded), espPorts={})
            PrivsepService._listenEsp(service, bindEspSocket("127.0.0.1", 0), "127.0.0.1")
            (port,) = service.espPorts.values()
            self.addCleanup(port.stopListening)
            self.assertEqual(service.kernel.sockets, [port.socket])
            self.assertEqual(port in reactor.getReaders(), not threaded)

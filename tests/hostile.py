"""
Hostile peers for a live daemon: a real ikedtx process (the C{iked}
console script) on loopback ports, and a client that speaks IKEv2 through
an in-process L{IKECore} over a real UDP socket, so that it holds real
keys and can send hand-made messages (in the clear or protected with the
IKE SA's keys) at any point of an exchange.

    daemon = LiveDaemon(testCase, RESPONDER)        # started, stopped at cleanup
    peer = HostilePeer(testCase, daemon)
    ikeSA = peer.establish()                        # a legitimate IKE SA (Message IDs 0, 1 used)
    peer.sendProtected(ikeSA, ExchangeType.CREATE_CHILD_SA, [...], 2)
    message, payloads = peer.receiveProtected(ikeSA)
    daemon.assertCleanLog(testCase)

C{initOnly} stops after IKE_SA_INIT with the IKE_AUTH request held back
(C{finishAuth} sends it); C{tamper} changes the payloads of the client
core's next message of an exchange before they are protected.

Silence is never waited for: after a message that must be dropped, a
probe the daemon must answer is sent, and the first datagram that comes
back must be the probe's answer (loopback keeps the order).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from ikedtx.config import parseConfig
from ikedtx.core.actions import AllocateSpi, InstallChildSA, RequestDone, SendDatagram
from ikedtx.core.engine import IKECore
from ikedtx.core.settings import NATT_DISABLED, CoreSettings
from ikedtx.wire.constants import ExchangeType, HeaderFlag
from ikedtx.wire.message import Message

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IKED = "import sys; from ikedtx.cli import iked; sys.argv[0] = 'iked'; iked()"
PSK = "hostile-secret"
# How long a test waits for the daemon before it fails (a guard, never
# an assertion about speed).
GUARD = float(os.environ.get("IKEDTX_HOSTILE_GUARD", "20"))

# The daemon's policy: a responder for the client at 127.0.0.1.
RESPONDER = ('ikev2 "victim" passive esp from 10.2.0.0/24 to 10.1.0.0/24 local 127.0.0.1 peer 127.0.0.1 '
             'srcid b.example dstid a.example psk "%s"\n' % (PSK,))
# The client's policy.
INITIATOR = ('ikev2 "attacker" active esp from 10.1.0.0/24 to 10.2.0.0/24 local 127.0.0.1 peer 127.0.0.1 '
             'srcid a.example dstid b.example psk "%s"\n' % (PSK,))


def freePorts(n):
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class LiveDaemon:
    """
    One ikedtx daemon (C{iked -d}) on 127.0.0.1, in a process of its own,
    with the decoupled datapath; its log is a file.

    @ivar address: C{("127.0.0.1", ikePort)}.
    """

    def __init__(self, testCase, config=RESPONDER, extraArgs=(), files=None, start=True, env=None):
        self.env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
        self.dir = tempfile.mkdtemp(prefix="ikx-hostile-")
        testCase.addCleanup(shutil.rmtree, self.dir, True)
        self.configPath = os.path.join(self.dir, "iked.conf")
        with open(self.configPath, "w") as f:
            f.write(config)
        os.chmod(self.configPath, 0o600)
        for name, (content, mode) in (files or {}).items():
            path = os.path.join(self.dir, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
            os.chmod(path, mode)
        self.socketPath = os.path.join(self.dir, "iked.sock")
        self.logPath = os.path.join(self.dir, "iked.log")
        self.ikePort, self.nattPort = freePorts(2)
        self.address = ("127.0.0.1", self.ikePort)
        self.extraArgs = list(extraArgs)
        self.process = None
        testCase.addCleanup(self.stop)
        if start:
            self.start()

    def argv(self):
        return [sys.executable, "-c", IKED, "-d", "-f", self.configPath, "-s", self.socketPath,
                "--listen", "127.0.0.1", "--ike-port", str(self.ikePort), "--natt-port", str(self.nattPort),
                "--etc-dir", self.dir, "--kernel", "decoupled"] + self.extraArgs

    def run(self, timeout=60):
        """
        Run the daemon to its end (for start-up errors): C{(status, log)}.
        """
        process = subprocess.run(self.argv(), cwd=ROOT, env=self.env,
                                 stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        return process.returncode, (process.stdout + process.stderr).decode()

    def start(self):
        out = open(self.logPath, "wb")
        self.process = subprocess.Popen(self.argv(), cwd=ROOT, env=self.env,
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        out.close()
        deadline = time.monotonic() + GUARD
        while not os.path.exists(self.socketPath):
            if self.process.poll() is not None:
                raise AssertionError("the daemon exited with %s:\n%s" % (self.process.returncode, self.log()))
            if time.monotonic() > deadline:
                raise AssertionError("the daemon did not start:\n%s" % (self.log(),))
            time.sleep(0.05)

    def log(self):
        with open(self.logPath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def settledLog(self, quiet=0.5, timeout=10):
        """
        The log once no line came for C{quiet} seconds (or after
        C{timeout}): a privilege-separated worker's lines reach it through
        the parent, a moment after what caused them.
        """
        deadline = time.monotonic() + timeout
        log = self.log()
        stable = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - stable < quiet:
            time.sleep(0.05)
            now = self.log()
            if now != log:
                log, stable = now, time.monotonic()
        return log

    def logWith(self, text, timeout=10):
        """
        The log once it holds C{text}, or as it is after C{timeout}
        seconds: a privilege-separated worker's lines reach the log through
        the parent, a moment after the datagram that caused them was
        answered.
        """
        deadline = time.monotonic() + timeout
        log = self.log()
        while text not in log and time.monotonic() < deadline:
            time.sleep(0.05)
            log = self.log()
        return log

    def assertCleanLog(self, testCase):
        """
        The daemon is alive and its log has no traceback and no internal
        error.
        """
        testCase.assertIsNone(self.process.poll(), self.log())
        text = self.log()
        for bad in ("Traceback", "internal error", "#critical"):
            testCase.assertNotIn(bad, text)

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class NoAnswer(AssertionError):
    pass


class HostilePeer:
    """
    An IKEv2 client of a L{LiveDaemon}: an L{IKECore} (for legitimate
    exchanges and the keys) behind a real UDP socket, plus raw sending.

    @ivar core: the client's core.
    @ivar sock: its UDP socket on 127.0.0.1.
    """

    def __init__(self, testCase, daemon, config=INITIATOR, credentials=None, fragmentSize=1232):
        self.daemon = daemon
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(GUARD)
        testCase.addCleanup(self.sock.close)
        self.local = self.sock.getsockname()
        settings = CoreSettings(ikePort=self.local[1], nattPort=self.local[1], peerIkePort=daemon.ikePort,
                                peerNattPort=daemon.nattPort, nattMode=NATT_DISABLED,
                                fragmentSize=fragmentSize)
        self.core = IKECore(parseConfig(config), credentials, settings=settings)
        self.results = {}
        self._held = None

    # The core, driven by hand

    def execute(self, actions):
        for action in actions:
            if isinstance(action, SendDatagram):
                if self._held is not None:
                    self._held.append(action)
                else:
                    self.sock.sendto(action.data, tuple(action.remote))
            elif isinstance(action, AllocateSpi):
                self.execute(self.core.spiAllocated(action.token, int.from_bytes(os.urandom(4), "big") | 0x100))
            elif isinstance(action, InstallChildSA):
                self.execute(self.core.childInstalled(action.reqid))
            elif isinstance(action, RequestDone):
                self.results[action.requestId] = action

    def runUntil(self, requestId, error=None):
        """
        Feed the core what the daemon sends until C{requestId} is done;
        its result, or its error if it must fail with C{error} (a type).
        """
        while requestId not in self.results:
            data, remote = self.recv()
            self.execute(self.core.datagramReceived(data, self.local, remote))
        done = self.results[requestId]
        if error is not None:
            if not isinstance(done.error, error):
                raise AssertionError("expected %s, got %r\n%s" % (error.__name__, done, self.daemon.log()))
            return done.error
        if done.error is not None:
            raise AssertionError("negotiation failed: %r\n%s" % (done.error, self.daemon.log()))
        return done.result

    def tamper(self, exchangeType, change):
        """
        From now on, the payloads of the client core's next message of
        C{exchangeType} pass through C{change(payloads)} (which returns the
        payloads to send, or a list of datagrams already made) before they
        are protected.
        """
        original = self.core.encode

        def encode(ikeSA, kind, payloads, messageId, response):
            if kind == exchangeType and not response:
                self.core.encode = original
                changed = change(list(payloads))
                if changed and isinstance(changed[0], bytes):
                    return changed
                payloads = changed
            return original(ikeSA, kind, payloads, messageId, response)

        self.core.encode = encode

    def establish(self, policy="attacker"):
        """
        A legitimate IKE SA with its Child SA; the client's L{IKESA}.
        """
        requestId, actions = self.core.initiate(policy)
        self.execute(actions)
        return self.runUntil(requestId)

    def initOnly(self, policy="attacker"):
        """
        Run IKE_SA_INIT only: the half-open client L{IKESA}, with keys, whose
        IKE_AUTH request was built but not sent (its Message ID is 1);
        L{finishAuth} sends it.
        """
        requestId, actions = self.core.initiate(policy)
        self.execute(actions)
        (ikeSA,) = [sa for sa in self.core.ikeSAs.values() if sa.established is None]
        data, remote = self.recv()
        self._held = []
        self.execute(self.core.datagramReceived(data, self.local, remote))
        self._authRequest = requestId
        if not self._held:
            raise AssertionError("no IKE_AUTH request was built:\n%s" % (self.daemon.log(),))
        return ikeSA

    def finishAuth(self, error=None):
        """
        Send the IKE_AUTH request L{initOnly} held back and run the exchange
        to its end.
        """
        held, self._held = self._held, None
        self.execute(held)
        return self.runUntil(self._authRequest, error)

    def initRequest(self, policy="attacker"):
        """
        A genuine IKE_SA_INIT request of a new client IKE SA, as a decoded
        L{Message} (not sent).
        """
        requestId, actions = self.core.initiate(policy)
        (send,) = [a for a in actions if isinstance(a, SendDatagram)]
        return Message.decode(send.data)

    # Raw messages

    def recv(self):
        try:
            return self.sock.recvfrom(65536)
        except socket.timeout:
            raise NoAnswer("no answer from the daemon within %s s\n%s" % (GUARD, self.daemon.log()))

    def send(self, data, port=None):
        self.sock.sendto(data, ("127.0.0.1", port or self.daemon.ikePort))

    def protect(self, ikeSA, exchangeType, payloads, messageId, response=False, flags=None):
        if flags is None:
            flags = (HeaderFlag.INITIATOR if ikeSA.initiator else 0) | (HeaderFlag.RESPONSE if response else 0)
        message = Message(ikeSA.spiI, ikeSA.spiR, exchangeType, flags, messageId, encrypted=payloads)
        return message.encode(ikeSA.cipherOut)

    def sendProtected(self, ikeSA, exchangeType, payloads, messageId):
        self.send(self.protect(ikeSA, exchangeType, payloads, messageId))

    def receiveMessage(self):
        data, remote = self.recv()
        return Message.decode(data)

    def receiveProtected(self, ikeSA):
        """
        The next datagram, decoded and opened: C{(message, payloads)}.
        """
        message = self.receiveMessage()
        return message, message.decrypt(ikeSA.cipherIn)

    def probe(self, ikeSA, messageId):
        """
        An empty INFORMATIONAL request (RFC 7296 1.4) with C{messageId};
        returns the answer's Message ID, which proves that nothing was
        sent before it.
        """
        self.sendProtected(ikeSA, ExchangeType.INFORMATIONAL, [], messageId)
        message, payloads = self.receiveProtected(ikeSA)
        return message.exchangeType, message.messageId, message.isResponse, payloads


class SmallPKI:
    """
    A CA and the certificates it issues, valid around the real time (the
    daemon checks validity by the wall clock), written into iked trees.
    """

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = self._name("Hostile Test CA")
        self.certificate = self._build(self.name, self.key.public_key(), ca=True)

    @staticmethod
    def _name(cn):
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def _build(self, subject, publicKey, ca=False, dns=(), keyUsage=None, extendedKeyUsage=None):
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.name).public_key(publicKey)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if dns:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
        if keyUsage is not None:
            flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                         encipher_only=False, decipher_only=False)
            flags.update(keyUsage)
            builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
        if extendedKeyUsage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(extendedKeyUsage), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue(self, fqdn, key, **extensions):
        return self._build(self._name(fqdn), key.public_key(), dns=[fqdn], **extensions)

    def tree(self, root, certificate, key):
        """
        Write an /etc/iked tree trusting this CA, with C{certificate} and its
        private C{key} as ours.
        """
        from cryptography.hazmat.primitives import serialization

        def write(relative, data, mode=0o644):
            path = os.path.join(root, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, mode)

        write("ca/ca.crt", self.certificate.public_bytes(serialization.Encoding.PEM))
        write("certs/local.crt", certificate.public_bytes(serialization.Encoding.PEM))
        write("private/local.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()), 0o600)

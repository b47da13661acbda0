# -*- test-case-name: tests.test_lab_harness -*-
"""
openiked (OpenBSD's iked, the original) as a peer in a namespace.

The host kernel has no PF_KEY (AF_KEY), which iked needs even with C{set
decouple}: L{buildShim} compiles C{pfkey_shim.c} (next to this module), an
C{LD_PRELOAD} library that emulates PF_KEY inside the iked process (it
answers GETSPI and accepts everything else, so no SA ever reaches the
kernel: IKE works, ESP does not).

Each iked runs in its own mount namespace where a private C{/etc/iked}
tree (ca, certs, crls, private/local.key, local.pub, pubkeys/...) is bind
mounted over the real one, with its config file (mode 0600, owned by root)
and control socket in the peer's directory.

Quirks measured with openiked 7.2 on Linux: as an initiator iked waits about
2 s before its first attempt; it cannot install HMAC-SHA2-256 ESP SAs and
then silently drops the Child SA (use GCM or SHA2-384 in child proposals);
it needs private/local.key even for PSK.
"""

import hashlib
import ipaddress
import os
import re
import tempfile

from ._util import LabError, makeIkedTree, poll, readText, run, socketPath, stopProcess, writeFile
from .pki import KeyPair

IKED = "/usr/sbin/iked"
IKECTL = "/usr/sbin/ikectl"
SHIM_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pfkey_shim.c")


def buildShim(cacheDir=None):
    """
    Compile the PF_KEY shim (once per source version) and return the path
    of the shared object. Concurrent trial workers may race: each compiles
    to a private name and renames into place.

    @param cacheDir: where to keep it; default C{$IKEDTX_LAB_CACHE} or
        C{<tmp>/ikedtx-lab-<uid>}.
    """
    from .. import support

    gcc = support.requireExecutable("gcc", "apt-get install gcc libc6-dev")
    with open(SHIM_SOURCE, "rb") as f:
        source = f.read()
    digest = hashlib.sha256(source).hexdigest()[:16]
    cacheDir = cacheDir or os.environ.get("IKEDTX_LAB_CACHE") or os.path.join(
        tempfile.gettempdir(), "ikedtx-lab-%d" % (os.getuid(),))
    os.makedirs(cacheDir, mode=0o700, exist_ok=True)
    target = os.path.join(cacheDir, "pfkey_shim-%s.so" % (digest,))
    if os.path.exists(target):
        return target
    tmp = "%s.%d.tmp" % (target, os.getpid())
    result = run([gcc, "-shared", "-fPIC", "-O2", "-pthread", "-o", tmp, SHIM_SOURCE, "-ldl"], check=False, timeout=120)
    if result.returncode != 0:
        raise LabError("building the PF_KEY shim failed (gcc, libc6-dev):\n%s%s" % (result.stdout, result.stderr))
    os.rename(tmp, target)
    return target


def pubkeyPath(identity):
    """
    Where iked looks for a peer's raw public key: C{pubkeys/ipv4/ADDR},
    C{pubkeys/ipv6/ADDR}, C{pubkeys/ufqdn/USER@HOST} or C{pubkeys/fqdn/NAME}.
    """
    try:
        address = ipaddress.ip_address(identity)
        return os.path.join("pubkeys", "ipv%d" % (address.version,), str(address))
    except ValueError:
        return os.path.join("pubkeys", "ufqdn" if "@" in identity else "fqdn", identity)


class OpenIkedPeer:
    """
    One openiked in a L{netns.Namespace}.

    @ivar namespace: where it runs.
    @ivar directory: its files: C{iked.conf}, C{iked.sock}, C{iked.log}
        (stderr, with C{-d -v}), C{pfkey.log} (the shim's), and C{etc/}
        (mounted over /etc/iked).
    @ivar localKey: the L{pki.KeyPair} in private/local.key and local.pub.
    @ivar config: the iked.conf text.
    @ivar process: the L{subprocess.Popen} once started.
    """

    def __init__(self, namespace, directory, config=None, name="iked", localKey=None, verbose=2,
                 extraArgs=(), decouple=True, testCase=None, root=None):
        """
        @param config: iked.conf text (L{setConfig}); may be set later.
        @param localKey: the key for private/local.key; by default a new
            ECDSA P-256 key (iked loads it even for PSK).
        @param verbose: how many C{-v}; at least 2, since L{start} waits
            for iked's debug messages to know that start-up is complete.
        @param decouple: prepend C{set decouple} when the config lacks it
            (the shim cannot install SAs anyway).
        @param testCase: registers L{stop} as a cleanup.
        @param root: a L{chroot.Chroot} to run the tree's iked and ikectl
            from (openiked 7.4 from Debian 13's tree), instead of the
            host's; the host-built shim is preloaded there too.
        """
        from .. import support

        self.root = root
        if root is None:
            support.requireExecutable(IKED, "apt-get install openiked")
            support.requireExecutable(IKECTL, "apt-get install openiked")
        else:
            root.require(IKED, "openiked in the tree")
            root.require(IKECTL, "openiked in the tree")
        if verbose < 2:
            raise ValueError("OpenIkedPeer needs verbose >= 2 to see when iked has started")
        self.namespace = namespace
        self.directory = os.path.abspath(directory)
        self.name = name
        self.verbose = verbose
        self.extraArgs = list(extraArgs)
        self.decouple = decouple
        self.process = None
        self.config = None
        self.etc = os.path.join(self.directory, "etc")
        self.socketPath = socketPath(self.directory, "iked.sock")
        makeIkedTree(self.etc)
        self.setLocalKey(localKey or KeyPair.generate("ecdsa-p256"))
        self._files = 0
        if config is not None:
            self.setConfig(config)
        if testCase is not None:
            testCase.addCleanup(self.stop)

    def __repr__(self):
        return "<OpenIkedPeer %s in %s>" % (self.name, self.namespace.netns)

    @property
    def configPath(self):
        return os.path.join(self.directory, "iked.conf")

    @property
    def logPath(self):
        return os.path.join(self.directory, "iked.log")

    @property
    def shimLogPath(self):
        return os.path.join(self.directory, "pfkey.log")

    # ---- files ----

    def setConfig(self, text):
        """
        Write iked.conf (0600, root), with C{set decouple} first unless
        present or L{decouple} is false.
        """
        if self.decouple and not re.search(r"^\s*set\s+decouple\b", text, re.M):
            text = "set decouple\n" + text
        self.config = text
        writeFile(self.configPath, text, 0o600)
        os.chown(self.configPath, 0, 0)

    def setLocalKey(self, keyPair):
        """
        Install C{keyPair} as private/local.key and local.pub.
        """
        self.localKey = keyPair
        writeFile(os.path.join(self.etc, "private", "local.key"), keyPair.traditionalPEM, 0o600)
        writeFile(os.path.join(self.etc, "local.pub"), keyPair.publicPEM)

    def addCA(self, certificate, name=None):
        """
        Trust C{certificate} as a CA (C{ca/NAME.crt}, PEM).
        """
        self._files += 1
        path = os.path.join(self.etc, "ca", name or "ca%d.crt" % (self._files,))
        writeFile(path, certificate.certPEM)
        return path

    def addCertificate(self, certificate, name=None, withKey=True):
        """
        Install C{certificate} as one of this host's certificates
        (C{certs/NAME.crt}, PEM) and, if C{withKey}, its key as
        private/local.key (iked signs with local.key).
        """
        self._files += 1
        path = os.path.join(self.etc, "certs", name or "cert%d.crt" % (self._files,))
        writeFile(path, certificate.certPEM)
        if withKey:
            self.setLocalKey(certificate.key)
        return path

    def addCRL(self, crl, name=None):
        self._files += 1
        path = os.path.join(self.etc, "crls", name or "crl%d.crl" % (self._files,))
        writeFile(path, crl.pem)
        return path

    def addPeerPublicKey(self, identity, keyPair):
        """
        Trust C{keyPair}'s public key for a peer whose ID is C{identity}
        (an address, FQDN or user@FQDN) for raw public key authentication.
        """
        path = os.path.join(self.etc, pubkeyPath(identity))
        writeFile(path, keyPair.publicPEM)
        return path

    # ---- running ----

    def check(self):
        """
        Parse the config with C{iked -n} (the reference parser) and return
        its output; raise L{LabError} if it rejects it.
        """
        argv = [IKED, "-n", "-f", self.configPath]
        if self.root is not None:
            argv = self.root.command(argv, binds=[self.directory])
        result = self.namespace.run(argv, check=False)
        if result.returncode != 0:
            raise LabError("iked -n rejected %s:\n%s%s\n%s" % (self.configPath, result.stdout, result.stderr, self.config))
        return result.stdout + result.stderr

    def start(self, timeout=30.0):
        """
        Check the config, then start C{iked -d -v... -f FILE -s SOCKET} with
        the shim preloaded and wait for the control socket.
        """
        if self.config is None:
            raise LabError("OpenIkedPeer.start: no config")
        shim = buildShim()
        self.check()
        for f in (self.socketPath, self.logPath, self.shimLogPath):
            if os.path.exists(f):
                os.unlink(f)
        preload = {"LD_PRELOAD": shim, "PFKEY_SHIM_LOG": self.shimLogPath}
        argv = [IKED, "-d"] + ["-v"] * self.verbose + ["-f", self.configPath, "-s", self.socketPath] + self.extraArgs
        if self.root is None:
            env = dict(os.environ, **preload)
            argv = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/iked && shift && exec "$@"', self.etc,
                    "iked"] + argv
        else:
            # The shim, built with the host's libc, is loaded by the tree's
            # (newer) one: glibc runs what older versions built.
            env = None
            argv = self.root.command(argv, binds=self._binds() + [shim], mounts={self.etc: "/etc/iked"}, env=preload)
        out = open(self.logPath, "wb")
        try:
            self.process = self.namespace.popen(argv, stdout=out, stderr=out, env=env)
        finally:
            out.close()

        # The control socket appears before the ikev2 process has its whole
        # configuration; an exchange that starts earlier is answered with
        # empty traffic selectors or dropped ("sa_free: reload") when the
        # rest arrives. The last message of start-up is the coupling mode
        # (with set decouple) or the last "static" setting.
        if re.search(r"^\s*set\s+decouple\b", self.config, re.M):
            lastLine = "pfkey_couple: kernel coupled -> decoupled"
        else:
            lastLine = "config_getstatic: no stickyaddress" if "stickyaddress" not in self.config else "config_getstatic: stickyaddress"

        # Independently, the ca process loads ca/ and certs/ and then tells the
        # ikev2 process which CAs to ask for; a peer that starts before that
        # gets no CERTREQ, and charon then sends no certificate.
        needCaHashes = bool(os.listdir(os.path.join(self.etc, "ca")))

        def certreqReady(log):
            for kind, length in re.findall(r"ikev2_dispatch_cert: updated local CERTREQ type (\S+) length (\d+)", log):
                if not needCaHashes or int(length) > 0:
                    return True
            return False

        def ready():
            if self.process.poll() is not None:
                raise LabError("iked %s exited with %s\n%s" % (self.name, self.process.returncode, self.report()))
            log = self.log()
            return os.path.exists(self.socketPath) and lastLine in log and certreqReady(log)

        poll(ready, timeout, what=lambda: "iked %s to start (%r and a CERTREQ update in its log)\n%s" % (
            self.name, lastLine, self.report()))
        return self

    def _binds(self):
        """
        The host directories a chrooted iked or ikectl needs: this peer's
        files and its control socket's directory.
        """
        return sorted({self.directory, os.path.dirname(self.socketPath)})

    def ikectl(self, *args, check=True):
        """
        Run C{ikectl -s SOCKET ARGS...}; returns the
        L{subprocess.CompletedProcess}.
        """
        argv = [IKECTL, "-s", self.socketPath] + list(args)
        if self.root is not None:
            return self.root.run(argv, binds=self._binds(), check=check)
        return run(argv, check=check)

    def showSaText(self):
        """
        The raw output of C{ikectl show sa}.
        """
        return self.ikectl("show", "sa").stdout

    def showSa(self):
        """
        C{ikectl show sa}, parsed by L{parseShowSa}.
        """
        return parseShowSa(self.showSaText())

    def waitForIkeSa(self, state="ESTABLISHED", timeout=10.0, child=False):
        """
        Poll C{ikectl show sa} until an IKE SA in C{state} exists (and, if
        C{child}, has a Child SA); return it.
        """

        def found():
            for sa in self.showSa():
                if sa["state"] == state and (not child or sa["childSas"]):
                    return sa
            return None

        return poll(found, timeout, interval=0.1, what=lambda: "an IKE SA %s on iked %s\n%s\n%s" % (
            state, self.name, self.showSaText() if self.process and self.process.poll() is None else "", self.report()))

    def log(self):
        """
        iked's stderr so far.
        """
        return readText(self.logPath)

    def report(self, tail=200):
        lines = self.log().splitlines()
        return "---- iked %s (%s) log, last %d lines ----\n%s\n---- pfkey shim ----\n%s\n---- iked.conf ----\n%s" % (
            self.name, self.directory, tail, "\n".join(lines[-tail:]), readText(self.shimLogPath)[-3000:], self.config)

    def stop(self, timeout=3.0):
        """
        SIGTERM, then SIGKILL; its privsep children are reaped by
        L{netns.Network.cleanup} if they linger.
        """
        if self.process is None:
            return None
        status = stopProcess(self.process, timeout)
        if os.path.exists(self.socketPath):
            os.unlink(self.socketPath)
        return status


_IKESA = re.compile(
    r"^iked_sas: (?P<ptr>\S+) rspi 0x(?P<rspi>[0-9a-f]+) ispi 0x(?P<ispi>[0-9a-f]+) "
    r"(?P<local>\S+)->(?P<peer>[^<\s]+)<(?P<peerId>[^>]*)>\[(?P<eapId>[^\]]*)\] "
    r"(?P<state>\S+) (?P<role>[ir])(?P<flags>.*?) nexti (?P<nexti>\S+) pol (?P<pol>\S+)"
)
_CHILDSA = re.compile(
    r"^\s+sa_childsas: (?P<ptr>\S+) (?P<protocol>\S+) 0x(?P<spi>[0-9a-f]+) (?P<direction>in|out) "
    r"(?P<source>\S+) -> (?P<destination>\S+) \((?P<flags>[^)]*)\) B=(?P<bundle>\S+) P=(?P<peerSa>\S+) @(?P<ikeSa>\S+)"
)
_FLOW = re.compile(
    r"^\s+sa_flows: (?P<ptr>\S+) (?P<protocol>\S+) (?P<direction>in|out) (?P<source>\S+) -> (?P<destination>\S+) "
    r"\[(?P<ipproto>\d+)\]@(?P<rdomain>-?\d+) \((?P<flags>[^)]*)\) @(?P<ikeSa>\S+)"
)


def _splitPort(endpoint):
    address, _, port = endpoint.rpartition(":")
    return address.strip("[]"), int(port) if port.isdigit() else port


def parseShowSa(text):
    """
    Parse C{ikectl show sa} (openiked 7.2), whose IKE SA lines look like::

        iked_sas: 0x55.. rspi 0x5734fcd86cfa0ab6 ispi 0xf6f62133610847a6 192.0.2.2:4500->192.0.2.1:4500<IPV4/192.0.2.1>[] ESTABLISHED r natt udpecap nexti (nil) pol 0x55..
          sa_childsas: 0x55.. ESP 0x26887312 in 192.0.2.1:4500 -> 192.0.2.2:4500 (LA) B=(nil) P=0x55.. @0x55..
          sa_flows: 0x55.. ESP out 10.1.0.1/32 -> 10.2.0.1/32 [0]@-1 (L) @0x55..
        iked_activesas: ... / iked_flows: ... / iked_dstid_sas: ... (repeats)

    Only the C{iked_sas} blocks are returned: a list of dicts with C{ispi},
    C{rspi} (hex, no 0x), C{local}/C{peer} (C{"addr:port"}),
    C{localAddress}, C{localPort}, C{peerAddress}, C{peerPort}, C{peerId}
    (C{"IPV4/192.0.2.1"}, C{"FQDN/moon.example"}, C{"ASN1_DN//O=.../CN=..."}),
    C{eapId}, C{state} (C{ESTABLISHED}, ...), C{initiator} (bool), C{flags}
    (e.g. C{["natt", "udpecap"]}), C{childSas} (dicts with C{protocol},
    C{spi}, C{direction}, C{source}, C{destination}, C{flags}) and C{flows}
    (dicts with C{protocol}, C{direction}, C{source}, C{destination},
    C{ipproto}, C{rdomain}, C{flags}).
    """
    sas = []
    current = None
    for line in text.splitlines():
        m = _IKESA.match(line)
        if m:
            current = m.groupdict()
            current["initiator"] = current.pop("role") == "i"
            current["flags"] = current["flags"].split()
            current["localAddress"], current["localPort"] = _splitPort(current["local"])
            current["peerAddress"], current["peerPort"] = _splitPort(current["peer"])
            current["childSas"] = []
            current["flows"] = []
            sas.append(current)
            continue
        if not line.startswith((" ", "\t")):
            current = None
            continue
        if current is None:
            continue
        m = _CHILDSA.match(line)
        if m:
            current["childSas"].append(m.groupdict())
            continue
        m = _FLOW.match(line)
        if m:
            current["flows"].append(m.groupdict())
    return sas

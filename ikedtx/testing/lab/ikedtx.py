# -*- test-case-name: tests.test_interop_charon -*-
"""
ikedtx itself as a peer in a namespace: the real daemon (C{iked -d}, the
console entry point) in a process of its own, driven and inspected over its
control socket.

    ours = IkedtxPeer(ns, directory, config, testCase=self)
    ours.setLocalKey(keyPair); ours.addCA(ca.cert); ours.addCertificate(cert)
    ours.start()
    ours.initiate("peer")         # blocks until the IKE SA is up
    ours.showSa()                 # [{"spiI": ..., "children": [...]}, ...]
    ours.ikeKeys()                # tshark decryption rows from --keylog
"""

import json
import os
import sys
import time

from ._util import ROOT, LabError, makeIkedTree, poll, readText, socketPath, stopProcess, writeFile
from .tshark import ENCRYPTION, INTEGRITY, IkeSaKeys


class IkedtxPeer:
    """
    One ikedtx daemon in a L{netns.Namespace}.

    @ivar etc: its private /etc/iked tree (C{--etc-dir}).
    @ivar socketPath: its control socket.
    @ivar keyLogPath: its test-only key log (C{--keylog}).
    """

    def __init__(self, namespace, directory, config=None, name="ikedtx", extraArgs=(), testCase=None,
                 ikePort=500, nattPort=4500, root=ROOT):
        self.namespace = namespace
        #: the source tree the daemon runs from (another checkout for
        #: before/after benchmarks).
        self.root = root
        self.directory = os.path.abspath(directory)
        self.name = name
        self.extraArgs = list(extraArgs)
        self.ikePort, self.nattPort = ikePort, nattPort
        self.process = None
        self.config = None
        self.etc = os.path.join(self.directory, "etc")
        self.socketPath = socketPath(self.directory, "ikedtx.sock")
        self.keyLogPath = os.path.join(self.directory, "keys.jsonl")
        makeIkedTree(self.etc)
        self._files = 0
        if config is not None:
            self.setConfig(config)
        if testCase is not None:
            testCase.addCleanup(self.stop)

    def __repr__(self):
        return "<IkedtxPeer %s in %s>" % (self.name, self.namespace.netns)

    @property
    def configPath(self):
        return os.path.join(self.directory, "iked.conf")

    @property
    def logPath(self):
        return os.path.join(self.directory, "ikedtx.log")

    # ---- files ----

    def setConfig(self, text):
        """
        Write iked.conf (mode 0600, as iked and ikedtx require).
        """
        self.config = text
        writeFile(self.configPath, text, 0o600)

    def _name(self, prefix):
        self._files += 1
        return "%s%d.pem" % (prefix, self._files)

    def setLocalKey(self, keyPair):
        writeFile(os.path.join(self.etc, "private", "local.key"), keyPair.privatePEM, 0o600)
        writeFile(os.path.join(self.etc, "local.pub"), keyPair.publicPEM)

    def addCA(self, certificate):
        writeFile(os.path.join(self.etc, "ca", self._name("ca")), certificate.certPEM)

    def addCertificate(self, certificate, withKey=True):
        writeFile(os.path.join(self.etc, "certs", self._name("cert")), certificate.certPEM)
        if withKey:
            self.setLocalKey(certificate.key)

    def addCRL(self, crl):
        writeFile(os.path.join(self.etc, "crls", self._name("crl")), crl.pem)

    def addPeerPublicKey(self, identity, keyPair):
        from .openiked import pubkeyPath

        writeFile(os.path.join(self.etc, pubkeyPath(identity)), keyPair.publicPEM)

    # ---- running ----

    def start(self, timeout=60.0, wait=True):
        """
        Start C{iked -d -f FILE ...} in the namespace and wait until its
        control socket answers (unless not C{wait}).
        """
        if self.config is None:
            raise LabError("IkedtxPeer.start: no config")
        for f in (self.socketPath, self.logPath):
            if os.path.exists(f):
                os.unlink(f)
        argv = [sys.executable, "-c", "from ikedtx.cli import iked; iked()", "-d", "-f", self.configPath,
                "-s", self.socketPath, "--etc-dir", self.etc, "--keylog", self.keyLogPath,
                "--ike-port", str(self.ikePort), "--natt-port", str(self.nattPort)] + self.extraArgs
        env = dict(os.environ, PYTHONPATH=self.root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        with open(self.logPath, "wb") as out:
            self.process = self.namespace.popen(argv, stdout=out, stderr=out, env=env, cwd=self.root)
        if not wait:
            return self

        def ready():
            if self.process.poll() is not None:
                raise LabError("ikedtx %s exited with %s\n%s" % (self.name, self.process.returncode, self.report()))
            if not os.path.exists(self.socketPath):
                return False
            try:
                self.showSa()
            except Exception:
                return False
            return True

        poll(ready, timeout, interval=0.05, what=lambda: "ikedtx %s to start\n%s" % (self.name, self.report()))
        return self

    def call(self, command, timeout=30.0, **arguments):
        from ikedtx.control.sync import callRemote

        return callRemote(self.socketPath, command, timeout=timeout, **arguments)

    def initiate(self, policy, timeout=30.0):
        """
        Initiate C{policy} and wait until its IKE SA and first Child SA are
        up; return C{(spiI, spiR)}. Raises L{ikedtx.control.sync.ControlError}
        with the daemon's reason if negotiation fails.
        """
        from ikedtx.control.commands import Initiate

        response = self.call(Initiate, timeout=timeout, policy=policy)
        return response["spiI"], response["spiR"]

    def createChildSA(self, spiI, timeout=30.0):
        """
        CREATE_CHILD_SA on the IKE SA C{spiI}; return C{(spiIn, spiOut)}.
        """
        from ikedtx.control.commands import CreateChildSA

        response = self.call(CreateChildSA, timeout=timeout, spiI=spiI)
        return response["spiIn"], response["spiOut"]

    def deleteChildSA(self, spiIn, timeout=30.0):
        from ikedtx.control.commands import DeleteChildSA

        self.call(DeleteChildSA, timeout=timeout, spiIn=spiIn)

    def deleteIkeSA(self, spiI, timeout=30.0):
        from ikedtx.control.commands import DeleteIkeSA

        self.call(DeleteIkeSA, timeout=timeout, spiI=spiI)

    def showSa(self):
        """
        Every IKE SA the daemon holds (dicts of L{ikedtx.control.commands.ShowSA}).
        """
        from ikedtx.control.sync import showSA

        return showSA(self.socketPath)

    def waitForIkeSa(self, state="VALID", timeout=10.0, child=False):
        def found():
            for sa in self.showSa():
                if sa["state"] == state and (not child or sa["children"]):
                    return sa
            return None

        return poll(found, timeout, interval=0.05, what=lambda: "an IKE SA %s on ikedtx %s\n%s" % (
            state, self.name, self.report()))

    def ikeKeys(self):
        """
        tshark decryption rows (L{IkeSaKeys}) for every IKE SA in the key log.
        """
        rows = []
        for line in readText(self.keyLogPath).splitlines():
            entry = json.loads(line)
            name = entry["encryption"]
            keyLength = str(entry["keyLength"]) if entry["keyLength"] else None
            encryption = ENCRYPTION.get(({"TRIPLE_DES": "3DES_CBC"}.get(name, name), keyLength))
            if name == "CHACHA20_POLY1305":
                encryption = "CHACHA20-POLY1305 [RFC7634]"
            rows.append(IkeSaKeys(entry["spiI"], entry["spiR"], entry["sk_ei"], entry["sk_er"], encryption,
                                  entry["sk_ai"], entry["sk_ar"], INTEGRITY[entry["integrity"]]))
        return rows

    def log(self):
        return readText(self.logPath)

    def logWith(self, text, timeout=10):
        """
        The log once it holds C{text}, or as it is after C{timeout} seconds
        (a privilege-separated worker's lines reach it through the parent,
        a moment after what caused them).
        """
        deadline = time.monotonic() + timeout
        log = self.log()
        while text not in log and time.monotonic() < deadline:
            time.sleep(0.05)
            log = self.log()
        return log

    def report(self, tail=200):
        lines = self.log().splitlines()
        return "---- ikedtx %s (%s) log, last %d lines ----\n%s\n---- iked.conf ----\n%s" % (
            self.name, self.directory, tail, "\n".join(lines[-tail:]), self.config)

    def stop(self, timeout=5.0):
        if self.process is None:
            return None
        status = stopProcess(self.process, timeout)
        self.process = None
        if os.path.exists(self.socketPath):
            os.unlink(self.socketPath)
        return status

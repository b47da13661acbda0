# -*- test-case-name: tests.test_lab_harness -*-
"""
The lab harness: network namespaces, real IKEv2 peers (strongSwan's charon,
openiked), certificates and packet captures, for integration tests.

Everything here is synchronous (test set-up); L{inThread} turns a blocking
object's methods into Deferreds for tests whose own daemon runs in the
test's reactor, and L{waitFor} polls without blocking it.

A typical test::

    class MyTest(LabMixin, TestCase):
        def test_something(self):
            net = self.network()
            a, b, link = net.pair()
            charon = self.charon(a, libipsec=True)
            charon.addConnection(pskConnection("peer", "192.0.2.1", "192.0.2.2",
                                               ["10.1.0.1/32"], ["10.2.0.1/32"]))
            charon.addSecret(Secret("psk", ids=["192.0.2.1", "192.0.2.2"]))
            charon.start()
            ...
            self.labAssert(ok, "initiate failed")   # appends every peer's log
"""

import os

from ._util import InThread, LabError, inThread, poll, run, waitFor
from .charon import Auth, CharonPeer, Child, Connection, Secret, parseIkeKeys, pskConnection
from .netns import LabProcess, Link, Namespace, Network, address
from .openiked import OpenIkedPeer, buildShim, parseShowSa
from .pki import CRL, Certificate, CertificateAuthority, KeyPair
from .report import ReportChannel, report
from .tshark import IkeSaKeys, TsharkCapture, ikeDecryptionTable
from .vici import ViciClient, ViciError

__all__ = [
    "Auth", "CRL", "Certificate", "CertificateAuthority", "CharonPeer", "Child", "Connection", "IkeSaKeys",
    "InThread", "KeyPair", "LabError", "LabMixin", "LabProcess", "Link", "Namespace", "Network",
    "OpenIkedPeer", "ReportChannel", "Secret", "TsharkCapture", "ViciClient", "ViciError", "address",
    "buildShim", "ikeDecryptionTable", "inThread", "parseIkeKeys", "parseShowSa", "poll", "pskConnection",
    "report", "run", "waitFor",
]


class LabMixin:
    """
    For trial test cases: factories that register cleanups, and assertions
    that append every peer's log to the failure message.

    @ivar labPeers: peers and captures made with the factories, for
        L{labReport}.
    """

    def _labDirectory(self, name):
        if not hasattr(self, "_labRoot"):
            self._labRoot = os.path.abspath(self.mktemp())
            os.makedirs(self._labRoot)
        path = os.path.join(self._labRoot, name)
        os.makedirs(path, exist_ok=True)
        return path

    def _labRegister(self, thing):
        if not hasattr(self, "labPeers"):
            self.labPeers = []
        self.labPeers.append(thing)
        return thing

    def network(self):
        """
        A L{Network}, deleted after the test.
        """
        return Network(self)

    def charon(self, namespace, name=None, **kwargs):
        """
        A L{CharonPeer} in C{namespace} (not started), stopped after the test.
        """
        name = name or "charon-" + namespace.name
        return self._labRegister(CharonPeer(namespace, self._labDirectory(name), name=name, testCase=self, **kwargs))

    def openiked(self, namespace, config=None, name=None, **kwargs):
        """
        An L{OpenIkedPeer} in C{namespace} (not started), stopped after the
        test.
        """
        name = name or "iked-" + namespace.name
        return self._labRegister(OpenIkedPeer(namespace, self._labDirectory(name), config=config, name=name,
                                              testCase=self, **kwargs))

    def ikedtx(self, namespace, config=None, name=None, **kwargs):
        """
        An L{IkedtxPeer} (our own daemon) in C{namespace}, not started,
        stopped after the test.
        """
        from .ikedtx import IkedtxPeer

        name = name or "ikedtx-" + namespace.name
        return self._labRegister(IkedtxPeer(namespace, self._labDirectory(name), config=config, name=name,
                                            testCase=self, **kwargs))

    def capture(self, namespace, interface, captureFilter=None, name="capture"):
        """
        A started L{TsharkCapture} on C{interface} in C{namespace}.
        """
        kwargs = {} if captureFilter is None else {"captureFilter": captureFilter}
        path = os.path.join(self._labDirectory("captures"), "%s-%s.pcapng" % (name, namespace.name))
        return TsharkCapture(namespace, interface, path, testCase=self, **kwargs).start()

    def labReport(self):
        """
        Every registered peer's report (logs), as one string.
        """
        return "\n".join(p.report() for p in getattr(self, "labPeers", []) if hasattr(p, "report"))

    def labAssert(self, condition, message=""):
        """
        Fail with C{message} and every peer's log unless C{condition}.
        """
        if not condition:
            self.fail("%s\n%s" % (message, self.labReport()))
        return condition

    def labAssertEqual(self, first, second, message=""):
        if first != second:
            self.fail("%r != %r %s\n%s" % (first, second, message, self.labReport()))

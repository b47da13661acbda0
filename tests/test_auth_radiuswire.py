"""
Tests for L{ikedtx.auth.radiuswire} and the per-policy choice of EAP
backend (L{ikedtx.core.tasks.eap.backendFor}); the live path through
charon and FreeRADIUS is tests.test_interop_eap_radius.
"""

from dataclasses import replace
from types import SimpleNamespace

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.logger import formatEvent
from twisted.trial.unittest import TestCase

from ikedtx.auth import radius, radiuswire
from ikedtx.auth.eapbackend import LocalMSCHAPv2Backend
from ikedtx.config import parseConfig
from ikedtx.core.tasks import eap as eaptask

from tests import test_core_eap
from tests.test_core_eap import PASSWORD, EAPTestCase, configs

RADIUS_LINES = 'radius server 192.0.2.9 secret "s1"\nradius accounting server 192.0.2.9 secret "s1"\n'
POLICIES = ('user "alice" "pw"\n'
            'ikev2 "viaRadius" passive esp from 10.2.0.0/24 to any eap "radius"\n'
            'ikev2 "local" passive esp from 10.3.0.0/24 to any eap "mschap-v2"\n')


def radiusConfigs(**kw):
    """
    L{configs} with the responder's policy on C{eap "radius"}.
    """
    a, b = configs(**kw)
    radiusAuth = lambda p: replace(p, auth=replace(p.auth, eapType=None, eapRadius=True))
    return a, replace(b, policies=tuple(radiusAuth(p) for p in b.policies))


class BackendForTests(TestCase):
    def core(self, text, **attributes):
        return SimpleNamespace(config=parseConfig(text), eapBackend=None, radiusBackend=None, **attributes)

    def policy(self, core, name):
        return next(p for p in core.config.policies if p.name == name)

    def test_perPolicy(self):
        """
        An C{eap "radius"} policy gets the RADIUS backend, an C{eap
        "mschap-v2"} policy of the same configuration the user lines.
        """
        core = self.core(RADIUS_LINES + POLICIES)
        core.radiusBackend = backend = object()
        self.assertIs(eaptask.backendFor(core, self.policy(core, "viaRadius")), backend)
        local = eaptask.backendFor(core, self.policy(core, "local"))
        self.assertIsInstance(local, LocalMSCHAPv2Backend)
        self.assertEqual(local.users, {"alice": "pw"})

    def test_radiusWithoutServer(self):
        """
        C{eap "radius"} without a RADIUS backend: L{None} (the responder
        refuses).
        """
        core = self.core(POLICIES)
        self.assertIsNone(eaptask.backendFor(core, self.policy(core, "viaRadius")))

    def test_overrideServesAll(self):
        core = self.core(POLICIES)
        core.eapBackend = override = object()
        self.assertIs(eaptask.backendFor(core, self.policy(core, "viaRadius")), override)
        self.assertIs(eaptask.backendFor(core, self.policy(core, "local")), override)

    def test_configProblems(self):
        self.assertEqual(radiuswire.configProblems(parseConfig(POLICIES)), [
            'policy viaRadius uses eap "radius" and no radius server is configured: its peers will be refused'])
        self.assertEqual(radiuswire.configProblems(parseConfig(RADIUS_LINES + POLICIES)), [])


class CoreRadiusPolicyTests(EAPTestCase):
    """
    The in-memory core with an C{eap "radius"} responder policy.
    """

    def setUp(self):
        EAPTestCase.setUp(self)
        self.patch(test_core_eap, "configs", radiusConfigs)

    def test_noServerRefused(self):
        """
        No RADIUS backend: AUTHENTICATION_FAILED with the reason logged,
        no traceback.
        """
        self.assertRefused(self.run_())
        text = [formatEvent(e) for e in self.logged]
        self.assertTrue(any('uses eap "radius" and no radius server is configured' in t for t in text), text)
        self.assertFalse([e for e in self.logged if e.get("log_failure") is not None])

    def test_radiusBackendUsed(self):
        """
        The core's radiusBackend carries the conversation for the policy.
        """
        requestId = self.negotiate()
        used = []

        class Recording(LocalMSCHAPv2Backend):
            def newSession(self, policy, peerIdentity):
                used.append(policy.name)
                return LocalMSCHAPv2Backend.newSession(self, policy, peerIdentity)

        self.b.core.radiusBackend = Recording({"alice": PASSWORD})
        self.network.pump()
        self.assertSucceeded(self.a, requestId)
        self.assertEqual(used, ["ba"])


class UDPReactor(Clock):
    """
    A clock that records listenUDP calls.
    """

    def __init__(self):
        Clock.__init__(self)
        self.udpPorts = []

    def listenUDP(self, port, protocol, interface=""):
        record = SimpleNamespace(protocol=protocol, interface=interface, listening=True)
        record.stopListening = lambda: setattr(record, "listening", False)
        self.udpPorts.append(record)
        return record


class FakeAccounting:
    def __init__(self):
        self.sent = []

    def start(self, session):
        self.sent.append(("start", session))
        return succeed(True)

    def stop(self, session, cause=None):
        self.sent.append(("stop", session))
        return succeed(True)


class RadiusWiringTests(TestCase):
    def wiring(self, text=RADIUS_LINES):
        reactor = UDPReactor()
        return reactor, radiuswire.RadiusWiring(parseConfig(text + POLICIES).radius, reactor)

    def radiusSA(self, wiring):
        session = wiring.backend.newSession(None, b"peer")
        session.userName = "alice"
        session.classAttributes = (b"c1",)
        return SimpleNamespace(eap=SimpleNamespace(session=session), peerVirtualIPs=["fd00::1", "10.77.0.1"],
                               peerId="peer.example", remote=("192.0.2.2", 500), local=("192.0.2.1", 500))

    def test_clientsListen(self):
        """
        One backend and one accounting, each client listening once.
        """
        reactor, wiring = self.wiring()
        self.assertIsInstance(wiring.backend, radius.RadiusEAPBackend)
        self.assertIsInstance(wiring.accounting, radius.RadiusAccounting)
        self.assertEqual(len(reactor.udpPorts), 2)

    def test_startStop(self):
        """
        Start when a RADIUS-authenticated IKE SA comes up (user, IPv4
        virtual address, Class echoed), Stop with the same session when it
        goes; once.
        """
        reactor, wiring = self.wiring()
        wiring.accounting = fake = FakeAccounting()
        wiring.up(b"\x01" * 8, b"\x02" * 8, self.radiusSA(wiring))
        [(what, session)] = fake.sent
        self.assertEqual((what, session.sessionId, session.userName, session.framedAddress, session.classAttributes),
                         ("start", "01" * 8 + "-" + "02" * 8, "alice", "10.77.0.1", (b"c1",)))
        wiring.down(b"\x01" * 8, b"\x02" * 8)
        wiring.down(b"\x01" * 8, b"\x02" * 8)
        self.assertEqual(fake.sent[1:], [("stop", session)])

    def test_stopCarriesUsage(self):
        """
        The Stop waits for the datapath's counters of the Child SAs removed
        with the IKE SA (inbound: input, outbound: output; summed over
        several Child SAs and rekeys), and carries them with our address as
        NAS-IP-Address.
        """
        from twisted.internet.defer import Deferred

        from ikedtx.kernel.interfaces import KernelSAUsage

        reactor, wiring = self.wiring()
        wiring.accounting = fake = FakeAccounting()
        spis = (b"\x01" * 8, b"\x02" * 8)
        wiring.up(*spis, self.radiusSA(wiring))
        self.assertTrue(wiring.accounts(*spis))
        self.assertFalse(wiring.accounts(b"\x09" * 8, b"\x02" * 8))
        later = Deferred()
        wiring.childUsage(*spis, True, succeed(KernelSAUsage(bytes=1000, packets=10)))
        wiring.childUsage(*spis, False, succeed(KernelSAUsage(bytes=2000, packets=20)))
        wiring.childUsage(*spis, True, later)
        wiring.down(*spis)
        self.assertEqual([what for what, _ in fake.sent], ["start"])
        later.callback(KernelSAUsage(bytes=5, packets=1))
        [(what, session)] = fake.sent[1:]
        self.assertEqual((what, session.inputOctets, session.inputPackets, session.outputOctets, session.outputPackets),
                         ("stop", 1005, 11, 2000, 20))
        self.assertEqual(session.nasAddress, "192.0.2.1")

    def test_usageQueryFails(self):
        """
        A counter the datapath cannot give (the SA already gone) is left
        out; the Stop still goes.
        """
        from twisted.internet.defer import fail

        from ikedtx.kernel.interfaces import KernelError

        reactor, wiring = self.wiring()
        wiring.accounting = fake = FakeAccounting()
        spis = (b"\x01" * 8, b"\x02" * 8)
        wiring.up(*spis, self.radiusSA(wiring))
        wiring.childUsage(*spis, True, fail(KernelError("gone")))
        wiring.down(*spis)
        [(what, session)] = fake.sent[1:]
        self.assertEqual((what, session.inputOctets, session.outputOctets), ("stop", None, None))

    def test_rekeyed(self):
        """
        After an IKE SA rekey the old SA's going sends no Stop; the new
        one's sends the Stop of the same session.
        """
        reactor, wiring = self.wiring()
        wiring.accounting = fake = FakeAccounting()
        wiring.up(b"\x01" * 8, b"\x02" * 8, self.radiusSA(wiring))
        wiring.rekeyed(b"\x01" * 8, b"\x02" * 8, b"\x03" * 8, b"\x04" * 8)
        self.assertIsNone(wiring.down(b"\x01" * 8, b"\x02" * 8))
        wiring.down(b"\x03" * 8, b"\x04" * 8)
        self.assertEqual([(what, s.sessionId) for what, s in fake.sent],
                         [("start", "01" * 8 + "-" + "02" * 8), ("stop", "01" * 8 + "-" + "02" * 8)])

    def test_notThroughRadius(self):
        """
        An IKE SA authenticated otherwise: no accounting.
        """
        reactor, wiring = self.wiring()
        wiring.accounting = fake = FakeAccounting()
        local = LocalMSCHAPv2Backend({}).newSession(None, b"")
        self.assertIsNone(wiring.up(b"\x01" * 8, b"\x02" * 8, SimpleNamespace(eap=SimpleNamespace(session=local))))
        self.assertIsNone(wiring.up(b"\x03" * 8, b"\x04" * 8, SimpleNamespace(eap=None)))
        self.assertIsNone(wiring.down(b"\x01" * 8, b"\x02" * 8))
        self.assertEqual(fake.sent, [])

    def test_withoutAccountingServer(self):
        reactor, wiring = self.wiring('radius server 192.0.2.9 secret "s1"\n')
        self.assertIsNone(wiring.accounting)
        self.assertIsNone(wiring.up(b"\x01" * 8, b"\x02" * 8, self.radiusSA(wiring)))

    def test_daeListens(self):
        """
        Each C{radius dae listen on} line is a DAE server on its address
        and port, knowing the C{radius dae client}s, asking the shell's
        callables; a reload that changes the lines listens again (the old
        sockets first, the new wiring may take the same port).
        """
        from ikedtx.auth import dae

        sessions, disconnected = [], []
        lines = ('radius dae listen on 127.0.0.1 port 3800\nradius dae listen on ::1\n'
                 'radius dae client 127.0.0.1 secret "d1"\n')
        reactor = UDPReactor()
        reactor.listenUDP = self.recordingListen(reactor)
        wiring = radiuswire.RadiusWiring(parseConfig(lines + POLICIES).radius, reactor,
                                         dae=(lambda: sessions, disconnected.append))
        self.assertIsNone(wiring.backend)
        self.assertEqual([(p.port, p.interface) for p in reactor.udpPorts], [(3800, "127.0.0.1"), (3799, "::1")])
        servers = [p.protocol for p in reactor.udpPorts]
        self.assertEqual([type(s) for s in servers], [dae.DynamicAuthorizationServer] * 2)
        self.assertEqual(servers[0].clients, {"127.0.0.1": b"d1"})
        servers[0].disconnect("sa")
        self.assertEqual(disconnected, ["sa"])
        new = wiring.replaced(parseConfig(lines.replace("3800", "3801") + POLICIES).radius)
        self.assertEqual([(p.port, p.listening) for p in reactor.udpPorts],
                         [(3800, False), (3799, False), (3801, True), (3799, True)])
        self.assertEqual(len(new.daeServers), 2)

    def recordingListen(self, reactor):
        def listenUDP(port, protocol, interface=""):
            record = SimpleNamespace(protocol=protocol, interface=interface, listening=True, port=port)
            record.stopListening = lambda: setattr(record, "listening", False)
            reactor.udpPorts.append(record)
            return record

        return listenUDP

    def test_reloadKeepsOrReplaces(self):
        """
        Unchanged C{radius} lines keep the clients; changed ones make new
        clients and carry the accounting sessions over.
        """
        reactor, wiring = self.wiring()
        self.assertIs(wiring.replaced(parseConfig(RADIUS_LINES + POLICIES).radius), wiring)
        wiring.sessions[(b"a", b"b")] = "session"
        new = wiring.replaced(parseConfig('radius server 192.0.2.10 secret "s2"\n' + POLICIES).radius)
        self.assertIsNot(new, wiring)
        self.assertEqual(new.sessions, {(b"a", b"b"): "session"})
        self.assertEqual([p.listening for p in reactor.udpPorts], [False, False, True])

"""
Tests for ikectl's daemon commands, in memory: two real cores and runners
negotiating over an in-memory UDP network on a L{task.Clock}, A's control
protocol connected to a client through L{iosim} (no socket), every command
and every typed error; and the ikectl grammar and output with a fake
blocking client.
"""

import io
import json
import os
from types import SimpleNamespace

from twisted.internet import task
from twisted.protocols import amp
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from ikedtx import cli, tap
from ikedtx.config import loadConfig
from ikedtx.control import commands as C
from ikedtx.control.client import ControlClient, _ClientProtocol
from ikedtx.control.events import EventHub
from ikedtx.control.ikectl import formatEvent, formatShowSA, parseCommand, parseOptions, IkectlUsage
from ikedtx.control.server import MAX_BOX_BYTES, ControlProtocol
from ikedtx.core.engine import IKECore
from ikedtx.core.timers import TimerKey
from ikedtx.kernel.decoupled import DecoupledKernel
from ikedtx.net.shell import CoreRunner, IKEDatagramProtocol
from tests.corehelpers import DeterministicRandom
from tests.test_core_exchanges import A_ADDR, B_ADDR, responderConfig
from tests.test_net_shell import MemoryUDP

A_CONF = '''ikev2 "ab" active esp from 10.1.0.0/24 to 10.2.0.0/24 local %s peer %s srcid a.example dstid b.example \\
    psk "secret"
''' % (A_ADDR, B_ADDR)


class FakeService:
    """
    What the control protocol needs of an L{IkedService}: core, runner,
    kernel, events, config, options, credentials, and a synchronous
    reload.
    """

    def __init__(self, core, runner, config, path):
        self.core = core
        self.runner = runner
        self.kernel = runner.kernel
        self.events = runner.events
        self.config = config
        self.options = {"config": path}
        self.credentials = None

    def reload(self, path=None):
        path = path or self.options["config"]
        config = loadConfig(path)
        self.config = config
        self.options["config"] = path
        self.runner.reload(config, {})
        return config

    def initiate(self, name):
        return self.runner.initiate(name)


class DaemonPair(SynchronousTestCase):
    """
    Daemon A (initiator, with a control connection) and daemon B
    (responder) over L{MemoryUDP}.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.udp = MemoryUDP(self.clock)
        self.runners = {}
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.confPath = os.path.join(self.dir, "iked.conf")
        self.writeConf(A_CONF)
        for address, config in ((A_ADDR, loadConfig(self.confPath)), (B_ADDR, responderConfig())):
            kernel = DecoupledKernel(randomBytes=DeterministicRandom(address.encode() + b"kernel"))
            core = IKECore(config, now=self.clock.seconds, randomBytes=DeterministicRandom(address.encode()),
                           localAddressFor=lambda peer, address=address: address)
            runner = CoreRunner(core, kernel, self.clock)
            runner.events = EventHub(clock=lambda: 1800000000.25)
            for number, natt in ((500, False), (4500, True)):
                runner.addPort(self.udp.port(address, number, IKEDatagramProtocol(runner, natt)), natt)
            self.runners[address] = runner
        self.a, self.b = self.runners[A_ADDR], self.runners[B_ADDR]
        self.service = FakeService(self.a.core, self.a, self.a.core.config, self.confPath)
        self.connect()

    def writeConf(self, text, path=None):
        path = path or self.confPath
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def connect(self):
        self.clientProtocol, self.server, self.pump = iosim.connectedServerAndClient(
            lambda: ControlProtocol(self.service), _ClientProtocol)
        self.client = ControlClient(self.clientProtocol)

    def advance(self, seconds):
        for _ in range(int(seconds * 1000)):
            self.clock.advance(0.001)
            self.pump.flush()

    def result(self, d):
        self.pump.flush()
        return self.successResultOf(d)

    def error(self, d, kind):
        # AMP logs an error answer nobody had an errback for when it came:
        # catch it before the answer arrives.
        failures = []
        d.addErrback(failures.append)
        self.pump.flush()
        self.assertEqual(len(failures), 1, "no error answer")
        self.assertTrue(failures[0].check(kind), failures[0])
        return failures[0].value

    def establish(self):
        d = self.a.initiate("ab")
        self.advance(0.1)
        return self.successResultOf(d)


class ShowTests(DaemonPair):
    def test_showSA(self):
        """
        show sa lists the IKE SA with both SPIs, addresses, IDs, algorithms
        and lifetimes, and its Child SA with both SPIs (the peer's mirror),
        flows, the datapath's counters and its remaining lifetime.
        """
        ikesa = self.establish()
        self.clock.advance(10)
        (sa,) = self.result(self.client.showSA())
        self.assertEqual((sa["spiI"], sa["spiR"]), (ikesa.spiI.hex(), ikesa.spiR.hex()))
        self.assertEqual((sa["state"], sa["initiator"], sa["policy"]), ("VALID", 1, "ab"))
        self.assertEqual(sa["peerId"], "FQDN/b.example")
        self.assertEqual(sa["localId"], "FQDN/a.example")
        self.assertTrue(sa["local"].startswith(A_ADDR + ":"))
        self.assertTrue(sa["remote"].startswith(B_ADDR + ":"))
        self.assertTrue(sa["encryption"] and sa["prf"] and sa["group"], sa)
        self.assertTrue(abs(sa["established"] - 10) < 0.5, sa["established"])
        (child,) = sa["children"]
        (bsa,) = self.b.core.ikeSAs.values()
        (bchild,) = bsa.children
        self.assertEqual((child["spiIn"], child["spiOut"]), ("%08x" % bchild.spiOut, "%08x" % bchild.spiIn))
        self.assertEqual(child["lifetime"], 10800)
        self.assertTrue(abs(child["lifetimeRemaining"] - (10800 - 10)) < 0.5, child["lifetimeRemaining"])
        self.assertTrue(child["loaded"])
        self.assertEqual((child["bytesIn"], child["packetsOut"]), (0, 0))
        self.assertEqual(sorted((f["direction"], f["source"], f["destination"]) for f in child["flows"]),
                         [("fwd", "10.2.0.0/24", "10.1.0.0/24"), ("in", "10.2.0.0/24", "10.1.0.0/24"),
                          ("out", "10.1.0.0/24", "10.2.0.0/24")])

    def test_showSAPacked(self):
        """
        The clients ask for packed pages (L{C.PackedJSON}): an IKE SA with
        its Child SA, flows and counters reads the same as from a page of
        AMP lists.
        """
        self.establish()
        self.clock.advance(10)
        packed = self.result(self.client.showSA())
        classic = self.result(self.client.call(C.ShowSA, offset=0, limit=C.SHOW_SA_PAGE))["sas"]
        self.assertEqual(packed, classic)
        self.assertEqual(len(packed[0]["children"][0]["flows"]), 3)
        self.assertEqual(packed[0]["children"][0]["bytesIn"], 0)

    def test_showSAText(self):
        """
        The text layout is iked's: the parser of openiked's C{ikectl show
        sa} output (the lab's) reads ours, with the same SPIs, endpoints,
        ID, state, role, Child SAs in both directions and flows; then come
        iked_activesas and iked_flows.
        """
        from ikedtx.testing.lab import parseShowSa

        ikesa = self.establish()
        text = formatShowSA(self.result(self.client.showSA()))
        (sa,) = parseShowSa(text)
        self.assertEqual((sa["ispi"], sa["rspi"]), (ikesa.spiI.hex(), ikesa.spiR.hex()))
        self.assertEqual((sa["localAddress"], sa["peerAddress"]), (A_ADDR, B_ADDR))
        self.assertEqual((sa["peerId"], sa["state"], sa["initiator"], sa["pol"]),
                         ("FQDN/b.example", "ESTABLISHED", True, "ab"))
        (child,) = ikesa.children
        self.assertEqual(sorted((c["protocol"], c["spi"], c["direction"], c["flags"], c["ikeSa"])
                                for c in sa["childSas"]),
                         sorted([("ESP", "%08x" % child.spiIn, "in", "L", sa["ptr"]),
                                 ("ESP", "%08x" % child.spiOut, "out", "L", sa["ptr"])]))
        # (Linux's forward policies show as "fwd" flows, which iked has not.)
        self.assertEqual(sorted((f["direction"], f["source"], f["destination"], f["ipproto"], f["flags"])
                                for f in sa["flows"]),
                         [("in", "10.2.0.0/24", "10.1.0.0/24", "0", "L"),
                          ("out", "10.1.0.0/24", "10.2.0.0/24", "0", "L")])
        lines = text.splitlines()
        self.assertEqual(len([line for line in lines if line.startswith("iked_activesas: ")]), 2)
        self.assertEqual(len([line for line in lines if line.startswith("iked_flows: ")]), 3)

    def test_showStats(self):
        """
        show stats counts what iked counts: IKE and Child SAs, messages.
        """
        self.establish()
        stats = self.result(self.client.showStats())
        values = {c["name"]: c["value"] for c in stats["counters"]}
        self.assertEqual(values["ikes_sa_established_total"], 1)
        self.assertEqual(values["ikes_sa_established_current"], 1)
        self.assertEqual(values["ikes_csa_created"], 1)
        self.assertEqual((values["ikes_msg_sent"], values["ikes_msg_rcvd"]), (2, 2))
        self.assertEqual((stats["passive"], stats["coupled"]), (False, True))

    def test_showStatsCoreCounters(self):
        """
        show stats adds what the core counts: the IKE SA created (exactly
        one, not established plus failed) and the rekeys.
        """
        ikesa = self.establish()
        (child,) = ikesa.children
        self.a.execute(self.a.core.timerExpired(TimerKey.childSoft(ikesa.localSPI, child.reqid)))
        self.advance(0.1)
        stats = self.result(self.client.showStats())
        values = {c["name"]: c["value"] for c in stats["counters"]}
        self.assertEqual(values["ikes_sa_created"], 1)
        self.assertEqual(values["ikedtx_csa_rekeyed"], 1)
        self.assertEqual(values["ikes_retransmit_request"], 0)

    def test_showCertstore(self):
        """
        show certstore lists what the credential store holds, and its
        root; a store larger than one AMP value is paged.
        """
        from ikedtx.auth.store import CredentialStore
        from ikedtx.testing.lab import CertificateAuthority

        os.makedirs(os.path.join(self.dir, "ca"))
        for i in range(C.SHOW_CERTSTORE_PAGE * 3 + 5):
            ca = CertificateAuthority("CA %d with a name long enough to fill pages" % (i,))
            with open(os.path.join(self.dir, "ca", "ca%d.pem" % (i,)), "wb") as f:
                f.write(ca.cert.certPEM if isinstance(ca.cert.certPEM, bytes) else ca.cert.certPEM.encode())
        self.service.credentials = CredentialStore(self.dir)
        store = self.result(self.client.showCertstore())
        self.assertEqual(store["root"], self.dir)
        self.assertEqual(len(store["entries"]), C.SHOW_CERTSTORE_PAGE * 3 + 5)
        self.assertEqual({e["kind"] for e in store["entries"]}, {"ca"})
        self.assertEqual(len({e["subject"] for e in store["entries"]}), C.SHOW_CERTSTORE_PAGE * 3 + 5)
        self.assertIn("CN=CA 0 with a name long enough to fill pages,O=ikedtx lab",
                      [e["subject"] for e in store["entries"]])
        self.assertTrue(all(e["notAfter"] for e in store["entries"]))


class ExtensionTests(DaemonPair):
    """
    ikedtx's own commands (initiate, Child SAs, IKE SA deletion), through
    the Deferred client.
    """

    def test_initiateCreateDelete(self):
        d = self.client.initiate("ab")
        self.advance(0.1)
        spiI, spiR = self.successResultOf(d)
        (ikesa,) = self.a.core.ikeSAs.values()
        self.assertEqual((spiI, spiR), (ikesa.spiI.hex(), ikesa.spiR.hex()))
        d = self.client.createChildSA(spiI)
        self.advance(0.1)
        spiIn, spiOut = self.successResultOf(d)
        self.assertEqual(len(ikesa.children), 2)
        d = self.client.deleteChildSA(spiIn)
        self.advance(0.1)
        self.successResultOf(d)
        self.assertEqual(len(ikesa.children), 1)
        (bsa,) = self.b.core.ikeSAs.values()
        self.assertEqual(len(bsa.children), 1)
        d = self.client.deleteIkeSA("0x" + spiI.upper())
        self.advance(0.1)
        self.successResultOf(d)
        self.assertEqual((self.a.core.ikeSAs, self.b.core.ikeSAs), ({}, {}))

    def test_initiateFails(self):
        """
        A policy that does not exist: CommandFailed with the reason.
        """
        e = self.error(self.client.initiate("nosuch"), C.CommandFailed)
        self.assertIn("no policy named 'nosuch'", str(e))


class ErrorTests(DaemonPair):
    def test_badOffset(self):
        """
        A negative or huge offset is BadArgument, not an internal error.
        """
        for offset in (-1, 2 ** 40):
            e = self.error(self.client.call(C.ShowSA, offset=offset), C.BadArgument)
            self.assertIn("offset", str(e))

    def test_badSpi(self):
        """
        A Child SA SPI that is not hex, or too long, is BadArgument; one
        that does not exist is NoSuchSA.
        """
        for spi in ("zz", "123456789", ""):
            self.error(self.client.deleteChildSA(spi), C.BadArgument)
        self.error(self.client.deleteChildSA("0x1234"), C.NoSuchSA)
        self.error(self.client.deleteIkeSA("nothex!"), C.BadArgument)
        self.error(self.client.deleteIkeSA("00112233"), C.NoSuchSA)

    def test_unparseableArgument(self):
        """
        An Integer argument that is not a number is answered with
        BAD_ARGUMENT, and the connection stays up (never AMP's Unknown
        Error, which closes it).
        """
        boxes = []
        self.clientProtocol.ampBoxReceived = boxes.append
        self.clientProtocol.boxSender.sendBox(amp.AmpBox({b"_command": b"ShowSA", b"_ask": b"7", b"offset": b"abc"}))
        self.pump.flush()
        (answer,) = boxes
        self.assertEqual(answer[b"_error_code"], b"BAD_ARGUMENT")
        self.assertIn(b"offset", answer[b"_error_description"])
        self.assertFalse(self.server.transport.disconnecting)

    def test_unknownCommand(self):
        boxes = []
        self.clientProtocol.ampBoxReceived = boxes.append
        self.clientProtocol.boxSender.sendBox(amp.AmpBox({b"_command": b"Nope", b"_ask": b"8"}))
        self.pump.flush()
        self.assertEqual(boxes[0][b"_error_code"], amp.UNHANDLED_ERROR_CODE)

    def test_oversizedBox(self):
        """
        A box that never ends (keys upon keys) is cut off once it passes
        MAX_BOX_BYTES: the connection is closed.
        """
        transport = self.clientProtocol.transport
        chunk = b"\x00\x01k\xff\xff" + b"v" * 0xffff
        for i in range(MAX_BOX_BYTES // 0xffff + 2):
            transport.write(chunk)
            self.pump.flush()
        self.assertTrue(self.server.transport is None or self.server.transport.disconnecting)
        lost = []
        self.clientProtocol.callRemote(C.ShowStats).addErrback(lost.append)
        self.pump.flush()
        self.assertEqual(len(lost), 1)

    def test_readOnly(self):
        """
        A read-only connection answers the show commands and monitor, and
        NotPermitted to the rest.
        """
        self.server.readOnly = True
        self.result(self.client.showSA())
        self.result(self.client.showStats())
        self.result(self.client.monitor(lambda e: None))
        for call in (lambda: self.client.reset("sa"), self.client.passive, self.client.reload,
                     lambda: self.client.log("verbose"), lambda: self.client.initiate("ab")):
            self.error(call(), C.NotPermitted)
        self.assertFalse(self.a.core.passive)

    def test_internalError(self):
        """
        A failure the responders did not foresee reaches the client as
        COMMAND_FAILED with a message, not Unknown Error.
        """
        from twisted.logger import LogLevel, formatEvent, globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.service.core = None
        e = self.error(self.client.showStats(), C.CommandFailed)
        self.assertIn("internal error", str(e))
        # One clear line at error level; the traceback only at debug level
        # (no logged failure an operator sees as a traceback).
        self.assertEqual(self.flushLoggedErrors(AttributeError), [])
        errors = [formatEvent(e) for e in events
                  if e.get("log_level") == LogLevel.error and e.get("log_namespace", "").startswith("ikedtx.control")]
        self.assertEqual(len(errors), 1)
        self.assertIn("ShowStats failed: internal error: ", errors[0])
        self.assertNotIn("Traceback", errors[0])
        self.assertNotIn("log_failure", [k for e in events if e.get("log_level") != LogLevel.debug for k in e])


class UnhandledErrorTests(DaemonPair):
    def test_unhandledError(self):
        """
        An error AMP could not hand to any command (a failure to send an
        answer, say) is one clear line in the log, not AMP's traceback,
        and the connection is closed.
        """
        from twisted.logger import LogLevel, formatEvent, globalLogPublisher
        from twisted.python.failure import Failure

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        try:
            raise ValueError("answer too long")
        except ValueError:
            failure = Failure()
        self.server.unhandledError(failure)
        self.assertEqual(self.flushLoggedErrors(ValueError), [])
        lines = [formatEvent(e) for e in events if e.get("log_level", LogLevel.debug) > LogLevel.debug]
        self.assertEqual(lines, ["control connection closed: unhandled error: ValueError: answer too long"])
        self.assertTrue(self.server.transport.disconnecting)


class ResetTests(DaemonPair):
    def test_resetSa(self):
        """
        reset sa deletes every IKE SA with a Delete: the peer's goes too.
        """
        self.establish()
        self.assertEqual(self.result(self.client.reset("sa")), 1)
        self.advance(0.1)
        self.assertEqual((self.a.core.ikeSAs, self.b.core.ikeSAs), ({}, {}))
        self.assertEqual((self.a.kernel.sas, self.b.kernel.sas), ({}, {}))

    def test_resetId(self):
        """
        reset id deletes only the IKE SAs of that peer ID (with or without
        its type).
        """
        self.establish()
        self.assertEqual(self.result(self.client.reset("id", "c.example")), 0)
        self.assertEqual(len(self.a.core.ikeSAs), 1)
        self.assertEqual(self.result(self.client.reset("id", "b.example")), 1)
        self.advance(0.1)
        self.assertEqual(self.b.core.ikeSAs, {})

    def test_resetErrors(self):
        self.error(self.client.reset("everything"), C.BadArgument)
        self.error(self.client.reset("id"), C.BadArgument)
        self.error(self.client.reset("sa", "x"), C.BadArgument)

    def test_resetPolicy(self):
        """
        reset policy flushes the policies: the SAs of the policies go with
        a Delete, and nothing can be initiated.
        """
        self.establish()
        self.result(self.client.reset("policy"))
        self.advance(0.1)
        self.assertEqual(self.b.core.ikeSAs, {})
        self.assertEqual(self.a.core.config.policies, ())

    def test_resetCaUserAll(self):
        reloads = []
        self.service.credentials = SimpleNamespace(reload=lambda: reloads.append(1))
        self.establish()
        self.assertEqual(self.result(self.client.reset("ca")), 0)
        self.assertEqual(self.result(self.client.reset("user")), 0)
        self.assertEqual(self.result(self.client.reset("all")), 1)
        self.assertEqual(len(reloads), 2)
        self.advance(0.1)
        self.assertEqual(self.b.core.ikeSAs, {})


class LoadTests(DaemonPair):
    def test_brokenFile(self):
        """
        load of a broken file is ConfigRejected with FILE: LINE, and the
        daemon keeps its configuration and SAs.
        """
        self.establish()
        broken = self.writeConf(A_CONF + "ikev2 \"x\" esp bogus\n", os.path.join(self.dir, "broken.conf"))
        e = self.error(self.client.load(broken), C.ConfigRejected)
        self.assertIn("%s: 3: syntax error" % (broken,), str(e))
        self.assertEqual(self.service.options["config"], self.confPath)
        self.assertEqual(len(self.a.core.ikeSAs), 1)
        self.error(self.client.load(os.path.join(self.dir, "missing.conf")), C.ConfigRejected)

    def test_reloadKeepsSAs(self):
        """
        reload keeps the SAs whose policy is still there; load of a file
        without it deletes them (with the peer).
        """
        self.establish()
        self.assertEqual(self.result(self.client.reload())["policies"], 1)
        self.advance(0.1)
        self.assertEqual(len(self.b.core.ikeSAs), 1)
        other = self.writeConf('ikev2 "other" passive esp from 10.9.0.0/24 to 10.8.0.0/24 peer 192.0.2.9 psk "x"\n',
                               os.path.join(self.dir, "other.conf"))
        self.assertEqual(self.result(self.client.load(other))["policies"], 1)
        self.advance(0.1)
        self.assertEqual((self.a.core.ikeSAs, self.b.core.ikeSAs), ({}, {}))
        self.assertEqual(self.service.options["config"], other)

    def test_badPath(self):
        self.error(self.client.load("a\0b"), C.BadArgument)


class ModeTests(DaemonPair):
    def test_decoupleCouple(self):
        """
        decouple takes every installed SA and flow out of the datapath,
        couple puts them back.
        """
        self.establish()
        sas, flows = dict(self.a.kernel.sas), list(self.a.kernel.flows)
        self.result(self.client.decouple())
        self.assertEqual((self.a.kernel.sas, self.a.kernel.flows), ({}, []))
        # Detached: the xfrm provider keeps their sequence numbers.
        self.assertEqual(sorted(sa.spi for operation, sa in self.a.kernel.log if operation == "detachSA"),
                         sorted(sa.spi for sa in sas.values()))
        (sa,) = self.result(self.client.showSA())
        self.assertFalse(sa["children"][0]["loaded"])
        self.result(self.client.couple())
        self.assertEqual(self.a.kernel.sas, sas)
        self.assertEqual(sorted(map(repr, self.a.kernel.flows)), sorted(map(repr, flows)))

    def test_decoupleStanding(self):
        """
        decouple also takes the trap flows and the IPv6 block out of the
        datapath (the xfrm provider's routes go with the flows); couple
        puts them back, with the traps of the policies in force then.
        """
        self.successResultOf(self.a.blockIPv6())
        self.successResultOf(self.a.startTraps())
        self.establish()
        traps = list(self.a.traps)
        self.assertTrue(traps)
        self.assertTrue(self.a.kernel.ipv6Blocked)
        self.result(self.client.decouple())
        self.assertEqual((self.a.kernel.flows, self.a.kernel.ipv6Blocked), ([], False))
        self.result(self.client.couple())
        self.assertTrue(self.a.kernel.ipv6Blocked)
        for trap in traps:
            self.assertIn(trap, self.a.kernel.flows)

    def test_reloadWhileDecoupled(self):
        """
        A reload while decoupled installs no trap; couple installs those of
        the policies then in force.
        """
        self.successResultOf(self.a.startTraps())
        self.result(self.client.decouple())
        self.assertEqual(self.a.kernel.flows, [])
        self.result(self.client.reload())
        self.assertEqual(self.a.kernel.flows, [])
        self.result(self.client.couple())
        self.assertEqual(self.a.kernel.flows, self.a.traps)
        self.assertTrue(self.a.traps)

    def test_decoupledNegotiation(self):
        """
        While decoupled, a new Child SA is negotiated but not installed.
        """
        self.result(self.client.decouple())
        ikesa = self.establish()
        self.assertTrue(ikesa.children)
        self.assertEqual(self.a.kernel.sas, {})

    def test_passiveActive(self):
        self.result(self.client.passive())
        self.assertTrue(self.a.core.passive)
        d = self.a.initiate("ab")
        self.failureResultOf(d)
        self.result(self.client.active())
        self.assertFalse(self.a.core.passive)
        # Going active initiates the active policies.
        self.advance(0.1)
        self.assertEqual(len(self.b.core.ikeSAs), 1)

    def test_badMode(self):
        self.error(self.client.call(C.SetMode, mode="sideways"), C.BadArgument)

    def test_log(self):
        """
        log verbose moves the daemon's log observers to debug, log brief
        back to info.
        """
        from twisted.logger import LogLevel

        self.patch(tap, "_levelPredicates", [])
        tap.levelFiltered(lambda event: None, LogLevel.info)
        self.result(self.client.log("verbose"))
        self.assertTrue(tap.isVerbose())
        self.result(self.client.log("brief"))
        self.assertFalse(tap.isVerbose())
        self.error(self.client.log("loud"), C.BadArgument)


class MonitorTests(DaemonPair):
    def test_events(self):
        """
        monitor streams ike-up and child-up when the SA comes, then
        child-down and ike-down with the reason, each with a time.
        """
        events = []
        self.result(self.client.monitor(events.append))
        ikesa = self.establish()
        kinds = [e["kind"] for e in events]
        self.assertEqual(kinds, ["child-up", "ike-up"] if kinds[0] == "child-up" else ["ike-up", "child-up"])
        up = [e for e in events if e["kind"] == "ike-up"][0]
        self.assertEqual((up["spiI"], up["policy"], up["peerId"]), (ikesa.spiI.hex(), "ab", "FQDN/b.example"))
        self.assertEqual(up["time"], 1800000000.25)
        del events[:]
        self.result(self.client.reset("sa"))
        self.advance(0.1)
        self.assertEqual([e["kind"] for e in events], ["child-down", "ike-down"])
        self.assertEqual(events[-1]["reason"], "reset sa")

    def test_rekeyed(self):
        """
        A Child SA rekey streams child-rekeyed with the new and the old
        inbound SPI; an IKE SA rekey streams ike-up for the new IKE SA,
        then ike-rekeyed with the new and old SPIs (RFC 7296 2.8, 2.18).
        """
        events = []
        self.result(self.client.monitor(events.append))
        ikesa = self.establish()
        (child,) = ikesa.children
        del events[:]
        self.a.execute(self.a.core.timerExpired(TimerKey.childSoft(ikesa.localSPI, child.reqid)))
        self.advance(0.1)
        (rekeyed,) = [e for e in events if e["kind"] == "child-rekeyed"]
        (new,) = [c for c in ikesa.children if c is not child]
        self.assertEqual((rekeyed["spi"], rekeyed["oldSpi"], rekeyed["policy"]),
                         ("%08x" % (new.spiIn,), "%08x" % (child.spiIn,), "ab"))
        self.assertIn("spi 0x%08x (was spi 0x%08x)" % (new.spiIn, child.spiIn), formatEvent(rekeyed))
        del events[:]
        self.a.execute(self.a.core.timerExpired(TimerKey.ikeRekey(ikesa.localSPI)))
        self.advance(0.1)
        (newIKE,) = self.a.core.ikeSAs.values()
        kinds = [e["kind"] for e in events]
        self.assertEqual(kinds[kinds.index("ike-up"):kinds.index("ike-up") + 2], ["ike-up", "ike-rekeyed"])
        (rekeyed,) = [e for e in events if e["kind"] == "ike-rekeyed"]
        self.assertEqual((rekeyed["spiI"], rekeyed["spiR"], rekeyed["oldSpiI"], rekeyed["oldSpiR"]),
                         (newIKE.spiI.hex(), newIKE.spiR.hex(), ikesa.spiI.hex(), ikesa.spiR.hex()))
        self.assertIn("(was ispi 0x%s rspi 0x%s)" % (ikesa.spiI.hex(), ikesa.spiR.hex()), formatEvent(rekeyed))

    def test_retransmitLimit(self):
        """
        A peer that never answers: retransmit-limit, then ike-down.
        """
        events = []
        self.result(self.client.monitor(events.append))
        self.udp.protocols.pop((B_ADDR, 500))
        d = self.a.initiate("ab")
        for _ in range(200):
            self.clock.advance(5)
            self.pump.flush()
        self.failureResultOf(d)
        self.assertIn("retransmit-limit", [e["kind"] for e in events])

    def test_authFailure(self):
        """
        A peer with the wrong PSK: the responder reports auth-failed.
        """
        events = []
        self.b.events.subscribe(events.append)
        self.b.core.reload(responderConfig(psk='"wrong"'), {})
        d = self.a.initiate("ab")
        self.advance(0.1)
        self.failureResultOf(d)
        self.assertIn("auth-failed", [e["kind"] for e in events])

    def test_closedMonitor(self):
        """
        A monitor that went away is unsubscribed.
        """
        self.result(self.client.monitor(lambda e: None))
        self.assertEqual(len(self.a.events.subscribers), 1)
        self.clientProtocol.transport.loseConnection()
        self.pump.flush()
        self.assertEqual(self.a.events.subscribers, [])

    def test_slowMonitor(self):
        """
        A monitor whose socket buffer is full misses events; past
        MAX_MISSED_EVENTS it is disconnected (the daemon's memory does not
        grow for it).
        """
        from ikedtx.control.server import MAX_MISSED_EVENTS

        self.result(self.client.monitor(lambda e: None))
        self.assertIs(self.server.transport.producer, self.server)
        self.server.pauseProducing()
        for i in range(MAX_MISSED_EVENTS):
            self.a.events.publish("mode", detail=str(i))
        self.assertEqual(self.server.missedEvents, MAX_MISSED_EVENTS)
        self.assertFalse(self.server.transport.disconnecting)
        self.server.resumeProducing()
        received = []
        self.clientProtocol.eventReceived = received.append
        self.a.events.publish("mode", detail="after")
        self.pump.flush()
        self.assertEqual([e["detail"] for e in received], ["after"])
        self.server.pauseProducing()
        for i in range(MAX_MISSED_EVENTS + 1):
            self.a.events.publish("mode", detail=str(i))
        self.assertTrue(self.server.transport is None or self.server.transport.disconnecting)
        self.assertEqual(self.a.events.subscribers, [])

    def test_acquireExpire(self):
        events = []
        self.a.events.subscribe(events.append)
        ikesa = self.establish()
        (child,) = ikesa.children
        self.a.expired(child.protocol, child.spiIn, A_ADDR, False)
        self.assertIn("expire", [e["kind"] for e in events])
        self.assertEqual([e for e in events if e["kind"] == "expire"][0]["spi"], "%08x" % child.spiIn)


class IkectlGrammarTests(SynchronousTestCase):
    def test_options(self):
        self.assertEqual(parseOptions(["-q", "-s", "/x.sock", "show", "sa", "--json"]),
                         ({"quiet": True, "socket": "/x.sock", "json": True}, ["show", "sa"]))
        self.assertRaises(IkectlUsage, parseOptions, ["-s"])
        self.assertRaises(IkectlUsage, parseOptions, ["-z", "show", "sa"])

    def test_commands(self):
        self.assertEqual(parseCommand(["show", "sa"]), ("show-sa", {}))
        self.assertEqual(parseCommand(["sh", "stat"]), ("show-stats", {}))
        self.assertEqual(parseCommand(["reset", "id", "FQDN/x"]), ("reset", {"what": "id", "ikeId": "FQDN/x"}))
        self.assertEqual(parseCommand(["decouple"]), ("mode", {"mode": "decouple"}))
        self.assertEqual(parseCommand(["load", "/etc/x.conf"]), ("load", {"filename": "/etc/x.conf"}))
        self.assertEqual(parseCommand(["log", "verbose"]), ("log", {"level": "verbose"}))
        for bad in (["reset"], ["reset", "id"], ["reset", "sa", "x"], ["show"], ["log", "loud"], ["load"],
                    ["frobnicate"], ["active", "now"]):
            self.assertRaises(IkectlUsage, parseCommand, bad)


class FakeClient:
    """
    The blocking client's functions, answering canned data.
    """

    ControlError = None

    def __init__(self, sas=(), events=()):
        self.sas = list(sas)
        self.events = list(events)
        self.calls = []

    def showSA(self, path):
        self.calls.append(("showSA", path))
        return self.sas

    def reset(self, path, what, ikeId=None):
        self.calls.append(("reset", path, what, ikeId))
        return 2

    def monitor(self, path):
        for event in self.events:
            yield event
        raise KeyboardInterrupt()


class IkectlOutputTests(SynchronousTestCase):
    def ikectl(self, *argv, client):
        out, err = io.StringIO(), io.StringIO()
        status = cli.runIkectl(list(argv), out, err, client=client)
        return status, out.getvalue(), err.getvalue()

    SA = {"spiI": "0011223344556677", "spiR": "8899aabbccddeeff", "initiator": 0, "state": "VALID", "policy": "p",
          "local": "192.0.2.1:500", "remote": "192.0.2.2:4500", "localId": "FQDN/a", "peerId": "FQDN/b",
          "proposal": "", "natt": 1, "udpencap": 1, "children": []}

    def test_showSaJson(self):
        client = FakeClient([self.SA])
        status, out, err = self.ikectl("-s", "/s", "--json", "show", "sa", client=client)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(json.loads(out), {"sas": [self.SA]})
        self.assertEqual(client.calls, [("showSA", "/s")])

    def test_showSaText(self):
        status, out, err = self.ikectl("show", "sa", client=FakeClient([self.SA]))
        self.assertEqual(out.splitlines()[0], "iked_sas: #1 rspi 0x8899aabbccddeeff ispi 0x0011223344556677 "
                                              "192.0.2.1:500->192.0.2.2:4500<FQDN/b>[] ESTABLISHED r natt udpencap "
                                              "nexti - pol p")

    def test_showSaVirtualAddress(self):
        """
        The address lent by a configuration payload goes between the
        brackets after the peer's identity, as iked prints it.
        """
        sa = dict(self.SA, vips="10.77.0.1")
        status, out, err = self.ikectl("show", "sa", client=FakeClient([sa]))
        self.assertIn("192.0.2.1:500->192.0.2.2:4500<FQDN/b>[10.77.0.1] ESTABLISHED", out.splitlines()[0])

    def test_reset(self):
        client = FakeClient()
        self.assertEqual(self.ikectl("reset", "sa", client=client), (0, "reset request sent. (2 IKE SAs)\n", ""))
        self.assertEqual(self.ikectl("-q", "reset", "id", "x", client=client), (0, "", ""))
        self.assertEqual(client.calls[-1], ("reset", "/var/run/iked.sock", "id", "x"))

    def test_monitorJson(self):
        """
        monitor --json writes one JSON document per event, a line each,
        until interrupted (status 0).
        """
        events = [{"time": 1.5, "kind": "ike-up", "spiI": "00"}, {"time": 2.0, "kind": "ike-down", "reason": "r"}]
        status, out, err = self.ikectl("monitor", "--json", client=FakeClient(events=events))
        self.assertEqual(status, 0)
        self.assertEqual([json.loads(line) for line in out.splitlines()], events)

    def test_monitorText(self):
        self.assertEqual(formatEvent({"time": 1800000000.25, "kind": "ike-down", "policy": "p", "reason": "why"}),
                         "2027-01-15T08:00:00.250Z ike-down policy p (why)\n")

    def test_usage(self):
        status, out, err = self.ikectl("reset", client=FakeClient())
        self.assertEqual(status, 1)
        self.assertIn("ikectl: reset needs one of", err)
        self.assertIn("usage: ikectl", err)

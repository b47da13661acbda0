"""
ikectl against ikedtx negotiating with strongSwan's charon, each in a
network namespace: show sa checked against what charon reports for the same
SAs, reset sa with the Delete seen by charon, monitor receiving the events
of a real negotiation (and of a refused one), and SIGTERM deleting the SAs
with charon before the daemon exits 0.
"""

import io
import json
import threading

from twisted.trial.unittest import TestCase

from ikedtx import cli
from ikedtx.control import sync
from ikedtx.testing.lab import parseShowSa, poll
from tests.interop import A, A_INNER, B, B_INNER, Credentials, ikedtxPolicy
from tests.test_interop_charon import IKEDTX_CHILD, CharonMixin
from tests.test_interop_openiked import CHILDSA, IKESA, OpenIkedMixin
from tests.test_interop_userspace import ESP, UserspaceMixin


class Monitor:
    """
    C{ikectl monitor}'s stream from a daemon, read in a thread until
    C{enough(events)}.
    """

    def __init__(self, ours, enough):
        self.events = []
        self.error = None
        self.stream = sync.monitor(ours.socketPath, timeout=60)
        self.thread = threading.Thread(target=self._read, args=(enough,), daemon=True)
        self.thread.start()
        poll(lambda: "control: a monitor subscribed" in ours.log(), 20, interval=0.05,
             what=lambda: "the monitor to subscribe\n" + ours.report())

    def _read(self, enough):
        try:
            for event in self.stream:
                self.events.append(event)
                if enough(self.events):
                    return
        except Exception as e:
            self.error = e

    def wait(self, timeout=30):
        self.thread.join(timeout)
        return self.events


def kinds(events):
    return [e["kind"] for e in events]


class IkectlCharonTests(CharonMixin, TestCase):
    def established(self):
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=IKEDTX_CHILD))
        ours.start()
        ours.initiate("peer")
        return ours, charon

    def ikectl(self, ours, *words):
        out, err = io.StringIO(), io.StringIO()
        status = cli.runIkectl(["-s", ours.socketPath] + list(words), out, err)
        return status, out.getvalue(), err.getvalue()

    def test_showSaMatchesCharon(self):
        """
        ikectl show sa --json shows what charon shows of the same SAs:
        SPIs, addresses, IDs, algorithms, NAT-T; the text output carries
        the same SPIs in iked's layout.
        """
        ours, charon = self.established()
        status, out, err = self.ikectl(ours, "--json", "show", "sa")
        self.assertEqual((status, err), (0, ""))
        (mine,) = json.loads(out)["sas"]
        theirs = self.charonOnlySa(charon)
        self.labAssertEqual((mine["spiI"], mine["spiR"]), (theirs["initiator-spi"], theirs["responder-spi"]))
        self.assertEqual(mine["local"].split(":")[0], theirs["remote-host"])
        self.assertEqual(mine["remote"].split(":")[0], theirs["local-host"])
        self.assertEqual(mine["remote"].split(":")[1], theirs["local-port"])
        self.assertEqual(mine["peerId"].split("/", 1)[1], theirs["local-id"])
        self.assertEqual(mine["localId"].split("/", 1)[1], theirs["remote-id"])
        self.assertEqual(mine["encryption"], "%s-%s" % (theirs["encr-alg"], theirs["encr-keysize"]))
        self.assertEqual("PRF_" + mine["prf"], theirs["prf-alg"])
        # IANA's names, which charon writes with more underscores.
        self.assertEqual(mine["group"].replace("_", ""), theirs["dh-group"].replace("_", ""))
        # charon fakes a NAT (libipsec), so both sides float to 4500.
        self.assertEqual(bool(mine["natRemote"]), theirs.get("nat-fake") == "yes" or theirs.get("nat-local") == "yes")
        (child,) = mine["children"]
        (theirChild,) = theirs["child-sas"]
        self.assertEqual((child["spiIn"], child["spiOut"]), (theirChild["spi-out"], theirChild["spi-in"]))
        self.assertEqual(child["encryption"], "%s-%s" % (theirChild["encr-alg"], theirChild["encr-keysize"]))
        self.assertEqual(child["mode"].upper(), theirChild["mode"])
        self.assertEqual(child["udpencap"], theirChild.get("encap") == "yes")
        self.assertEqual(sorted(f["direction"] for f in child["flows"]), ["fwd", "in", "out"])
        self.assertTrue(0 < child["lifetimeRemaining"] <= child["lifetime"])
        status, text, err = self.ikectl(ours, "show", "sa")
        (parsed,) = parseShowSa(text)
        self.assertEqual((parsed["ispi"], parsed["rspi"]), (theirs["initiator-spi"], theirs["responder-spi"]))
        self.assertEqual(sorted((c["direction"], c["spi"]) for c in parsed["childSas"]),
                         [("in", theirChild["spi-out"]), ("out", theirChild["spi-in"])])
        self.assertEqual((parsed["state"], parsed["initiator"]), ("ESTABLISHED", True))

    def test_resetSaDeletesAtCharon(self):
        """
        ikectl reset sa deletes the IKE SA with a Delete: charon receives
        it and drops its SA.
        """
        ours, charon = self.established()
        spiI = ours.showSa()[0]["spiI"]
        self.assertEqual(self.ikectl(ours, "reset", "sa"), (0, "reset request sent. (1 IKE SA)\n", ""))
        poll(lambda: not charon.ikeSas(), 10, interval=0.05, what=lambda: "charon to drop its SA\n" + charon.report())
        self.labAssert("received DELETE for IKE_SA" in charon.log(), "charon saw no Delete")
        poll(lambda: ours.showSa() == [], 10, interval=0.05, what=lambda: "ikedtx to drop its SA")
        self.assertIn("reset sa", ours.log())
        self.assertTrue(spiI)

    def test_resetIdDeletesAtCharon(self):
        ours, charon = self.established()
        self.assertEqual(self.ikectl(ours, "reset", "id", "198.51.100.7")[1], "reset request sent. (0 IKE SAs)\n")
        self.assertEqual(len(charon.ikeSas()), 1)
        self.assertEqual(self.ikectl(ours, "reset", "id", B)[1], "reset request sent. (1 IKE SA)\n")
        poll(lambda: not charon.ikeSas(), 10, interval=0.05, what=lambda: "charon to drop its SA\n" + charon.report())
        self.labAssert("received DELETE for IKE_SA" in charon.log(), "charon saw no Delete")

    def test_monitorNegotiation(self):
        """
        monitor streams the events of charon's negotiation with us (SA up,
        Child SA up with charon's SPIs) and of its deletion.
        """
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=IKEDTX_CHILD))
        ours.start()
        monitor = Monitor(ours, lambda events: "ike-down" in kinds(events))
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, output)
        theirs = self.charonOnlySa(charon)
        # charon is done when its IKE_AUTH is answered; our Child SA is up
        # (and reported) once the datapath has it, a moment later: the
        # deletion comes after that.
        poll(lambda: "child-up" in kinds(monitor.events), 20, interval=0.05,
             what=lambda: "the child-up event\n%r\n%s" % (monitor.events, ours.report()))
        charon.terminate(ike="peer")
        events = monitor.wait()
        self.assertIsNone(monitor.error)
        # As responder the IKE SA is up as IKE_AUTH is answered, the Child
        # SA once the datapath has it.
        self.assertEqual(kinds(events), ["ike-up", "child-up", "child-down", "ike-down"], events)
        up = events[0]
        self.assertEqual((up["spiI"], up["spiR"]), (theirs["initiator-spi"], theirs["responder-spi"]))
        self.assertEqual(up["peerId"], "IPV4/" + B)
        self.assertEqual(events[1]["spi"], theirs["child-sas"][0]["spi-out"])
        self.assertNotIn("reason", events[1])
        self.assertEqual(events[3]["reason"], "deleted by peer")
        self.assertTrue(all(e["time"] > 1.7e9 for e in events))

    def test_monitorAuthFailure(self):
        """
        charon with the wrong PSK: monitor reports the authentication
        failure.
        """
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials, psk="not-the-psk-0123456789")
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=IKEDTX_CHILD))
        ours.start()
        monitor = Monitor(ours, lambda events: "auth-failed" in kinds(events))
        ok, output = charon.initiate(child="net")
        self.assertFalse(ok)
        events = monitor.wait()
        self.assertIn("auth-failed", kinds(events), events)
        counters = {c["name"]: c["value"] for c in sync.showStats(ours.socketPath)["counters"]}
        self.assertEqual(counters["ikedtx_auth_failures"], 1)

    def test_sigtermDeletesAtCharon(self):
        """
        SIGTERM: the daemon deletes its SAs with charon and exits 0.
        """
        ours, charon = self.established()
        status = ours.stop(timeout=20)
        self.assertEqual(status, 0)
        poll(lambda: not charon.ikeSas(), 10, interval=0.05, what=lambda: "charon to drop its SA\n" + charon.report())
        self.labAssert("received DELETE for IKE_SA" in charon.log(), "charon saw no Delete")


class IkectlOpenIkedTests(OpenIkedMixin, TestCase):
    """
    ikectl show sa next to openiked's own ikectl for the same SA.
    """

    def _compare(self, ours, iked):
        status, text, err = IkectlCharonTests.ikectl(self, ours, "show", "sa")
        self.assertEqual((status, err), (0, ""))
        (mine,) = parseShowSa(text)
        (theirs,) = [sa for sa in iked.showSa() if sa["state"] == "ESTABLISHED"]
        # The same fields, in the same places, for the same SA seen from
        # its two ends.
        self.assertEqual(sorted(mine), sorted(theirs))
        self.assertEqual((mine["ispi"], mine["rspi"]), (theirs["ispi"].zfill(16), theirs["rspi"].zfill(16)))
        self.assertEqual((mine["state"], mine["initiator"]), (theirs["state"], not theirs["initiator"]))
        self.assertEqual((mine["localAddress"], mine["peerAddress"]), (theirs["peerAddress"], theirs["localAddress"]))
        self.assertEqual(mine["peerId"].split("/", 1)[0], theirs["peerId"].split("/", 1)[0])
        self.assertEqual(sorted((c["protocol"], c["direction"], c["spi"]) for c in mine["childSas"]),
                         sorted((c["protocol"], {"in": "out", "out": "in"}[c["direction"]], c["spi"].zfill(8))
                                for c in theirs["childSas"]))
        # Both print a flow source -> destination, its direction their
        # own: our out flow is iked's in flow.  iked 7.2 lists one more
        # (an out flow with its in flow's selectors).
        ours = {(f["direction"], f["source"], f["destination"]) for f in mine["flows"]}
        mirrored = {({"in": "out", "out": "in"}[f["direction"]], f["source"], f["destination"])
                    for f in theirs["flows"]}
        self.assertEqual(len(ours), 2)
        self.assertTrue(ours <= mirrored, (ours, mirrored))
        return text, iked.showSaText()

    def test_showSaLikeOpenIked(self):
        """
        ikedtx initiates to openiked; both ikectls show the SA: openiked's
        parser reads both, with mirrored SPIs, roles, endpoints and flows.
        """
        self.hosts()
        credentials = Credentials("psk")
        iked = self.startOpenIked(credentials, ike=IKESA["gcm-x25519"])
        ours = self.startIkedtx(ikedtxPolicy(credentials, ike=IKESA["gcm-x25519"], child=CHILDSA))
        ours.start()
        ours.initiate("peer")
        self._compare(ours, iked)


class IkectlCountersTests(UserspaceMixin, TestCase):
    """
    show sa's counters, from a datapath that carries traffic (the
    user-space one), against charon's.
    """

    def test_countersMatchCharon(self):
        """
        After pings both ways through ESP, ikectl show sa counts what
        charon counts, direction for direction.
        """
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials, esp=ESP["gcm"][0])
        ours = self.startOurs(self.a, ikedtxPolicy(credentials, child=ESP["gcm"][1]), A)
        ours.initiate("peer")
        self.assertPings([(self.a, A_INNER, B_INNER), (self.b, B_INNER, A_INNER)])

        def counted():
            (sa,) = json.loads(IkectlCharonTests.ikectl(self, ours, "--json", "show", "sa")[1])["sas"]
            child = sa["children"][0]
            return child if child.get("packetsIn", 0) >= 6 and child.get("packetsOut", 0) >= 6 else None

        mine = poll(counted, 10, interval=0.1, what=lambda: "ikedtx to count 6 packets each way")
        theirs = self.charonOnlySa(charon)["child-sas"][0]
        self.assertEqual((mine["packetsIn"], mine["packetsOut"]),
                         (int(theirs["packets-out"]), int(theirs["packets-in"])))
        self.assertEqual((mine["bytesIn"], mine["bytesOut"]), (int(theirs["bytes-out"]), int(theirs["bytes-in"])))
        self.assertEqual((mine["packetsIn"], mine["bytesIn"]), (6, 6 * 84))
        status, text, err = IkectlCharonTests.ikectl(self, ours, "show", "sa")
        self.assertIn("in 504 bytes 6 packets, out 504 bytes 6 packets", text)

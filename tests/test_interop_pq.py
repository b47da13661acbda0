"""
Post-quantum key exchange against the original: ikedtx and Debian's
openiked 7.2 (OpenBSD iked) with iked's hybrid C{sntrup761x25519}
(private-use transform id 1035), each in a network namespace.

 - ikedtx initiates and iked answers, and the other way round: the IKE SA
   authenticates (PSK), so both sides derived the same SKEYSEED from the
   same 64-byte shared secret; iked's own C{DHSECRET} (iked -vvvv) is
   64 bytes.
 - IKE_SA_INIT carries the 1190- and 1071-byte KE payloads in single,
   unfragmented datagrams over the veth link (RFC 7383 2.5: IKE_SA_INIT is
   never fragmented; here no IP fragment either), as a capture shows, over
   IPv4 and over IPv6 (40 bytes more of header, still below the link MTU).
 - A second Child SA with C{childsa group sntrup761x25519} (PFS) through
   CREATE_CHILD_SA, which ikedtx initiates (iked 7.2 only initiates
   CREATE_CHILD_SA to rekey).
"""

import re

from twisted.trial.unittest import TestCase

from tests.interop import PSK, Credentials, InteropMixin, ikedtxPolicy
from ikedtx.testing.lab import KeyPair
from tests.support import missing
from tests.test_interop_openiked import CHILDSA, ikedPolicy

IKESA = "ikesa enc aes-128-gcm prf hmac-sha2-256 group sntrup761x25519"
PFS = CHILDSA + " group sntrup761x25519"

# How ikedtx's control socket names transform 1035 in a proposal (the wire
# constants have no name for iked's private-use id).
_SNTRUP_NAME = r"DhId\(1035\)|(?i:sntrup761x25519)"

# iked's log of a received or sent IKE_SA_INIT, with its size.
_SA_INIT = re.compile(r"(recv|send) IKE_SA_INIT (req|res) 0 peer \S+ local \S+, (\d+) bytes")


class SntrupX25519Tests(InteropMixin, TestCase):
    def setUp(self):
        from ikedtx.crypto import sntrup

        if not sntrup.AVAILABLE:
            missing("the sntrup761 binding is not installed (pip install 'ikedtx[pq]')")

    def startOpenIked(self, credentials, **policy):
        # -vvvv: iked then prints its DHSECRET.
        iked = self.openiked(self.b, ikedPolicy(credentials, **policy), localKey=KeyPair.generate("ecdsa-p256"),
                             verbose=4)
        iked.start()
        return iked

    def sameSAs(self, ours, iked, children=1):
        """
        Both sides hold one IKE SA with the same SPIs and C{children}
        Child SAs; return (ours, iked's).
        """
        mine = self.ourOnlySa(ours)
        sas = [sa for sa in iked.showSa() if sa["state"] == "ESTABLISHED"]
        self.labAssertEqual(len(sas), 1, "iked should hold exactly one IKE SA:\n%s" % (iked.showSaText(),))
        theirs = sas[0]
        self.labAssertEqual((mine["spiI"], mine["spiR"]), (theirs["ispi"].zfill(16), theirs["rspi"].zfill(16)))
        self.labAssertEqual(len(mine["children"]), children)
        theirIn = sorted(c["spi"].zfill(8) for c in theirs["childSas"] if c["direction"] == "in")
        self.labAssertEqual(sorted(c["spiOut"] for c in mine["children"]), theirIn)
        return mine, theirs

    def assertIkedSecret(self, iked):
        """
        iked derived its keys from a 64-byte shared secret (SHA-512 of the
        sntrup761 key and the X25519 secret) and authenticated the peer.
        """
        log = iked.log()
        self.labAssert("DHSECRET with 64 bytes" in log, "iked's DHSECRET:\n" + iked.report())
        self.labAssert("authentication successful" in log, "iked's AUTH verdict:\n" + iked.report())

    def test_ikedtxInitiates(self):
        """
        ikedtx offers sntrup761x25519 (id 1035) and iked takes it; the
        IKE_SA_INIT request carries the 1190-byte KEi in one datagram that
        is not IP-fragmented, and the response the 1071-byte KEr.
        """
        self.hosts()
        credentials = Credentials("psk")
        iked = self.startOpenIked(credentials, ike=IKESA)
        ours = self.startIkedtx(ikedtxPolicy(credentials, ike=IKESA, child=CHILDSA))
        ours.start()
        capture = self.capture(self.a, "to-b")
        ours.initiate("peer")
        capture.stop()
        mine, theirs = self.sameSAs(ours, iked)
        self.assertFalse(theirs["initiator"])
        self.assertRegex(mine["proposal"], _SNTRUP_NAME)
        self.assertIkedSecret(iked)

        rows = capture.fields(["frame.len", "ip.flags.mf", "ip.frag_offset", "isakmp.exchangetype",
                               "isakmp.flags", "isakmp.length", "isakmp.key_exchange.dh_group", "isakmp.payloadlength"],
                              displayFilter="isakmp.exchangetype == 34")
        self.labAssertEqual(len(rows), 2, "IKE_SA_INIT request and response:\n" + capture.summary())
        for row in rows:
            self.assertEqual((row["ip.flags.mf"], row["ip.frag_offset"]), ("0", "0"), row)
            self.assertEqual(row["isakmp.key_exchange.dh_group"], "1035", row)
            self.assertLessEqual(int(row["frame.len"]), 1514, row)
        # The KE payload's length: 4 (generic header) + 4 (group, reserved) + data.
        self.assertIn(str(8 + 1190), rows[0]["isakmp.payloadlength"].split(","))
        self.assertIn(str(8 + 1071), rows[1]["isakmp.payloadlength"].split(","))
        sizes = dict(((direction, kind), int(n)) for direction, kind, n in _SA_INIT.findall(iked.log()))
        self.assertEqual(sizes[("recv", "req")], int(rows[0]["isakmp.length"]))

    def test_openikedInitiates(self):
        """
        iked initiates with sntrup761x25519 and ikedtx answers: ikedtx
        encapsulates to iked's sntrup761 key, and iked's decapsulation
        gives the same secret (its AUTH verifies ours).
        """
        self.hosts()
        credentials = Credentials("psk")
        ours = self.startIkedtx(ikedtxPolicy(credentials, ike=IKESA, child=CHILDSA))
        ours.start()
        iked = self.startOpenIked(credentials, mode="active", ike=IKESA)
        ours.waitForIkeSa(child=True, timeout=20)
        iked.waitForIkeSa(child=True)
        mine, theirs = self.sameSAs(ours, iked)
        self.assertTrue(theirs["initiator"])
        self.assertEqual(mine["initiator"], 0)
        self.assertRegex(mine["proposal"], _SNTRUP_NAME)
        self.assertIkedSecret(iked)
        sizes = dict(((direction, kind), int(n)) for direction, kind, n in _SA_INIT.findall(iked.log()))
        self.assertGreater(sizes[("send", "req")], 1190)
        self.assertGreater(sizes[("recv", "res")], 1071)

    def test_pfsChildSA(self):
        """
        RFC 7296 1.3.1 with a KEM-style group: ikedtx's CREATE_CHILD_SA
        request carries a 1190-byte KEi, iked answers with a 1071-byte KEr,
        and the new Child SA is installed on both sides with keys from the
        new shared secret.  The IKE SA itself uses X25519 here.
        """
        self.hosts()
        credentials = Credentials("psk")
        ike = "ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519"
        iked = self.startOpenIked(credentials, ike=ike, child=PFS)
        ours = self.startIkedtx(ikedtxPolicy(credentials, ike=ike, child=PFS))
        ours.start()
        spiI, spiR = ours.initiate("peer")
        spiIn, spiOut = ours.createChildSA(spiI)
        mine, theirs = self.sameSAs(ours, iked, children=2)
        self.assertIn(spiIn, [c["spi"].zfill(8) for c in theirs["childSas"] if c["direction"] == "out"])
        second = [c for c in mine["children"] if c["spiIn"] == spiIn][0]
        self.assertRegex(second["proposal"], _SNTRUP_NAME)
        log = iked.log()
        self.labAssert(re.search(r"CREATE_CHILD_SA", log), "no CREATE_CHILD_SA in iked's log:\n" + iked.report())

    def test_ipv6(self):
        """
        The same exchange between IPv6 addresses: the 1190-byte KEi still
        travels in one unfragmented IPv6 datagram (no Fragment header) and
        the IKE SA authenticates.
        """
        self.hosts()
        a6, b6 = "2001:db8:1::1", "2001:db8:1::2"
        policy = ('ikev2 "peer" %%s esp from fd00:1::1 to fd00:2::1 local %%s peer %%s %s %s '
                  'srcid %%s dstid %%s psk "%s"\n' % (IKESA, CHILDSA, PSK))
        iked = self.openiked(self.b, policy.replace("from fd00:1::1 to fd00:2::1", "from fd00:2::1 to fd00:1::1")
                             % ("passive", b6, a6, b6, a6), localKey=KeyPair.generate("ecdsa-p256"), verbose=4)
        iked.start()
        ours = self.ikedtx(self.a, policy % ("passive", a6, b6, a6, b6),
                           extraArgs=["--kernel", "decoupled", "--listen", a6])
        ours.start()
        capture = self.capture(self.a, "to-b")
        ours.initiate("peer")
        capture.stop()
        mine, theirs = self.sameSAs(ours, iked)
        self.assertRegex(mine["proposal"], _SNTRUP_NAME)
        self.assertIkedSecret(iked)
        rows = capture.fields(["frame.len", "ipv6.nxt", "isakmp.key_exchange.dh_group", "isakmp.length"],
                              displayFilter="isakmp.exchangetype == 34")
        self.labAssertEqual(len(rows), 2, "IKE_SA_INIT request and response:\n" + capture.summary())
        for row in rows:
            self.assertEqual(row["ipv6.nxt"], "17", row)
            self.assertEqual(row["isakmp.key_exchange.dh_group"], "1035", row)
            self.assertLessEqual(int(row["frame.len"]), 1514, row)
        self.assertGreater(int(rows[0]["isakmp.length"]), 1190)

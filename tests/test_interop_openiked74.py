"""
openiked 7.4 (Debian 13's, ikedtx/testing/trixie/setup.sh) as the peer:
iked and ikectl chrooted into the tree in a network namespace, with the
lab's PF_KEY shim (built by the host's gcc, loaded by the tree's newer
glibc).

 - The sntrup761x25519 tests of openiked 7.2 (tests.test_interop_pq:
   IKE SA both directions, IPv6, a PFS Child SA; tests.test_interop_pqrekey:
   IKE SA and PFS Child SA rekeys by either side) run again against 7.4.
 - What 7.4 adds to iked.conf(5) that ikedtx speaks: the C{natt} policy
   option (NAT-T forced without a NAT) and C{psk file PATH}.

openiked 7.4 has no ML-KEM (its only hybrid group is sntrup761x25519; no
mlkem768x25519 in its iked.conf(5)) and no RFC 9370 additional key
exchanges.
"""

import os

from twisted.trial.unittest import TestCase

from ikedtx.testing.lab._util import writeFile
from ikedtx.testing.lab.chroot import trixieRoot

from tests.interop import A, A_INNER, B, B_INNER, PSK, Credentials, ikedtxPolicy
from tests.test_interop_openiked import CHILDSA, IKESA, OpenIkedMixin, ikedPolicy
from tests import test_interop_pq as _pq
from tests import test_interop_pqrekey as _pqrekey


class OpenIked74Mixin:
    """
    The openiked of the tests is 7.4 from Debian 13's tree.
    """

    def openiked(self, namespace, config=None, name=None, **kwargs):
        kwargs.setdefault("root", trixieRoot())
        return super().openiked(namespace, config=config, name=name, **kwargs)


class VersionTests(OpenIked74Mixin, OpenIkedMixin, TestCase):
    def test_isSevenFour(self):
        """
        The tree's iked is openiked 7.4 and parses what it documents
        (C{natt}, C{psk file}).
        """
        root = trixieRoot()
        self.assertTrue(root.versions()["openiked"].startswith("7.4"), root.versions())
        self.hosts()
        iked = self.openiked(self.b)
        keyFile = os.path.join(iked.directory, "psk.hex")
        writeFile(keyFile, "00112233\n", 0o600)
        iked.setConfig('ikev2 "p" natt esp from 10.2.0.1 to 10.1.0.1 peer 192.0.2.1 psk file "%s"\n' % (keyFile,))
        iked.check()


class SntrupX25519Tests74(OpenIked74Mixin, _pq.SntrupX25519Tests):
    pass


class SntrupRekeyTests74(OpenIked74Mixin, _pqrekey.SntrupRekeyTests):
    pass


class NewInSevenFourTests(OpenIked74Mixin, OpenIkedMixin, TestCase):
    def test_nattForcedBothSides(self):
        """
        C{natt} on both sides (iked.conf(5) of 7.4: NAT-T negotiated after
        the handshake without a NAT): the IKE SA moves to port 4500 and
        the Child SAs are UDP-encapsulated on both sides.
        """
        self.hosts()
        credentials = Credentials("psk")
        iked = self.startOpenIked(credentials, mode="passive natt", ike=IKESA["gcm-x25519"], child=CHILDSA)
        ours = self.startIkedtx(ikedtxPolicy(credentials, mode="passive natt", ike=IKESA["gcm-x25519"], child=CHILDSA))
        ours.start()
        ours.initiate("peer")
        mine, theirs = self.assertSameSAs(ours, iked)
        self.assertNatt(mine, theirs, iked)

    def test_ikedForcesNatt(self):
        """
        Only iked says C{natt}, and initiates. iked 7.4 sends true NAT-D
        hashes in its IKE_SA_INIT request and distorts only its check of
        the response, so it alone "detects" a NAT: it moves to port 4500
        and encapsulates its Child SAs. ikedtx, which saw no NAT, follows
        to port 4500 without encapsulating, as iked 7.4's own responder does
        (L{test_ikedResponderToNatt}); with kernels that match the
        encapsulation, ESP then needs C{natt} on both sides.
        """
        self.hosts()
        credentials = Credentials("psk")
        ours = self.startIkedtx(ikedtxPolicy(credentials, ike=IKESA["gcm-x25519"], child=CHILDSA))
        ours.start()
        iked = self.startOpenIked(credentials, mode="active natt", ike=IKESA["gcm-x25519"], child=CHILDSA)
        ours.waitForIkeSa(child=True, timeout=20)
        iked.waitForIkeSa(child=True)
        mine, theirs = self.assertSameSAs(ours, iked)
        self.assertTrue(theirs["initiator"])
        self.labAssertEqual((theirs["localPort"], theirs["peerPort"]), (4500, 4500), iked.showSaText())
        self.labAssert("udpecap" in theirs["flags"], "iked's IKE SA flags: %r" % (theirs["flags"],))
        self.labAssertEqual((mine["local"], mine["remote"], mine["natt"], mine["udpencap"], mine["natLocal"],
                             mine["natRemote"]), (A + ":4500", B + ":4500", 1, 0, False, False), repr(mine))
        self.labAssert(not any(c["udpencap"] for c in mine["children"]), repr(mine))

    def test_ikedResponderToNatt(self):
        """
        The reference for L{test_ikedForcesNatt}: iked 7.4 without C{natt}
        answering iked 7.4 with it moves to port 4500 (flag C{natt}) but
        does not encapsulate (no C{udpecap}).
        """
        self.hosts()
        credentials = Credentials("psk")
        responder = self.openiked(self.a, (
            'ikev2 "peer" passive esp from %s to %s local %s peer %s %s %s srcid %s dstid %s psk "%s"\n' % (
                A_INNER, B_INNER, A, B, IKESA["gcm-x25519"], CHILDSA, A, B, PSK)), name="iked-responder")
        responder.start()
        iked = self.startOpenIked(credentials, mode="active natt", ike=IKESA["gcm-x25519"], child=CHILDSA)
        theirs = responder.waitForIkeSa(child=True, timeout=20)
        initiator = iked.waitForIkeSa(child=True)
        self.labAssert("udpecap" in initiator["flags"], "the initiator's flags: %r" % (initiator["flags"],))
        self.labAssertEqual((theirs["localPort"], theirs["peerPort"]), (4500, 4500), responder.showSaText())
        self.labAssertEqual(("natt" in theirs["flags"], "udpecap" in theirs["flags"]), (True, False),
                            responder.showSaText())

    def test_responderBehindNat(self):
        """
        ikedtx answers behind a real NAT (nftables masquerade with ports 500
        and 4500 forwarded to it), openiked 7.4 initiates from outside to
        the NAT's address (RFC 7296 2.23): ikedtx finds itself behind the
        NAT, iked finds its peer behind one; both move to port 4500 and
        encapsulate their Child SAs.
        """
        self.a, nat, self.b = self.network().natted(forward=(500, 4500))
        outside, natOutside = "198.51.100.2", "198.51.100.254"
        credentials = Credentials("psk")
        ours = self.startIkedtx(
            'ikev2 "peer" passive esp from %s to %s local %s peer %s %s %s srcid %s dstid %s psk "%s"\n' % (
                A_INNER, B_INNER, A, outside, IKESA["gcm-x25519"], CHILDSA, credentials.idA, credentials.idB, PSK))
        ours.start()
        iked = self.openiked(self.b, (
            'ikev2 "peer" active esp from %s to %s local %s peer %s %s %s srcid %s dstid %s psk "%s"\n' % (
                B_INNER, A_INNER, outside, natOutside, IKESA["gcm-x25519"], CHILDSA, credentials.idB,
                credentials.idA, PSK)))
        iked.start()
        ours.waitForIkeSa(child=True, timeout=20)
        iked.waitForIkeSa(child=True)
        mine, theirs = self.assertSameSAs(ours, iked)
        self.assertTrue(theirs["initiator"])
        self.labAssertEqual((mine["local"], mine["remote"], mine["natLocal"], mine["natRemote"]),
                            (A + ":4500", outside + ":4500", True, False), repr(mine))
        self.assertNatt(mine, theirs, iked)
        self.labAssert("4500" in nat.conntrack(), nat.conntrack())

    def assertNatt(self, mine, theirs, iked):
        """
        Both sides moved the IKE SA to port 4500 and encapsulate ESP in UDP.
        """
        self.labAssertEqual((theirs["localPort"], theirs["peerPort"]), (4500, 4500), iked.showSaText())
        self.labAssert("udpecap" in theirs["flags"], "iked's IKE SA flags: %r" % (theirs["flags"],))
        self.labAssertEqual((mine["local"].rsplit(":", 1)[-1], mine["remote"].rsplit(":", 1)[-1]), ("4500", "4500"),
                            repr(mine))
        self.labAssert(mine["udpencap"] and all(c["udpencap"] for c in mine["children"]), repr(mine))

    def test_pskFile(self):
        """
        C{psk file PATH} (a hex key, iked.conf(5) of 7.4) on iked's side,
        the same key as C{psk 0x...} on ours; ikedtx initiates.
        """
        self.hosts()
        credentials = Credentials("psk")
        key = "0123456789abcdef0123456789abcdef"
        iked = self.openiked(self.b)
        keyFile = os.path.join(iked.directory, "psk.hex")
        writeFile(keyFile, key + "\n", 0o600)
        iked.setConfig(ikedPolicy(credentials).replace(credentials.ikedtxAuth(), 'psk file "%s"' % (keyFile,)))
        iked.start()
        ours = self.startIkedtx(ikedtxPolicy(credentials).replace(credentials.ikedtxAuth(), "psk 0x" + key))
        ours.start()
        ours.initiate("peer")
        self.assertSameSAs(ours, iked)

"""
MOBIKE (RFC 4555) against strongSwan's charon 5.9.8 (kernel-libipsec) as
the MOBIKE client: charon initiates to ikedtx (user-space datapath), then
its host's address moves (a new address is added, the old one deleted);
charon sends UPDATE_SA_ADDRESSES from the new address, ikedtx moves the
IKE SA and the Child SA's ESP there, and pings through the tunnel keep
getting every reply.
"""

from twisted.trial.unittest import TestCase

from ikedtx.testing.lab import Auth, Child, Connection, Secret
from ikedtx.testing.lab._util import poll

from tests.interop import A, A_INNER, B, B_INNER, PSK
from tests.test_interop_charon import CHARON_ESP, IKEDTX_CHILD
from tests.test_interop_userspace import USERSPACE, UserspaceMixin, ping

MOVED = "192.0.2.3"


class CharonMobikeTests(UserspaceMixin, TestCase):
    def _established(self, mobike="mobike"):
        self.hosts()
        charon = self.charon(self.b, libipsec=True)
        charon.addSecret(Secret(PSK, ids=[A, "charon.example"]))
        charon.addConnection(Connection(
            "peer", remote_addrs=[A], proposals=["aes128gcm16-prfsha256-x25519"],
            local=Auth("psk", id="charon.example"), remote=Auth("psk", id=A), mobike="yes",
            children=[Child("net", local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"],
                            esp_proposals=[CHARON_ESP])]))
        charon.start()
        config = ('set %s\nikev2 "peer" passive esp from %s to %s local %s peer any %s '
                  'srcid %s dstid charon.example psk "%s"\n' % (mobike, A_INNER, B_INNER, A, IKEDTX_CHILD, A, PSK))
        ours = self.ikedtx(self.a, config, extraArgs=USERSPACE + ["--listen", A])
        ours.start()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        self.ourOnlySa(ours)
        self.labAssertEqual(ping(self.a, A_INNER, B_INNER, 3), 3, "ping before the move")
        return ours, charon

    def _move(self):
        interface = self.link.interface(self.b)
        # Deleting the primary address keeps the new one (a secondary in
        # the same subnet) only when secondaries are promoted.
        self.b.sysctl("net.ipv4.conf.%s.promote_secondaries" % (interface,), 1)
        self.b.addAddress(interface, MOVED + "/24")
        self.b.ip("addr", "del", B + "/24", "dev", interface)

    def test_charonMoves(self):
        """
        charon's address moves from 192.0.2.2 to 192.0.2.3: ikedtx follows
        its UPDATE_SA_ADDRESSES (same IKE SA), both sides agree on the new
        address, and every ping through the tunnel is answered afterwards.
        (charon with kernel-libipsec cannot move its ESP SAs, so it rekeys
        the Child SA after the update.)
        """
        ours, charon = self._established()
        before = self.ourOnlySa(ours)
        self._move()

        def moved():
            sas = ours.showSa()
            return sas and sas[0]["remote"].startswith(MOVED + ":") and sas[0]

        after = poll(moved, 30, interval=0.3, what=lambda: "ikedtx following charon\n%r\n%s\n%s" % (
            ours.showSa(), ours.report(), charon.report()))
        theirs = charon.ikeSas()
        self.labAssertEqual([sa["local-host"] for sa in theirs], [MOVED])
        self.assertEqual((after["spiI"], after["spiR"]), (before["spiI"], before["spiR"]))
        self.labAssert("N(UPD_SA_ADDR)" in charon.log(), "charon sent no UPDATE_SA_ADDRESSES")
        self.labAssert("UPDATE_SA_ADDRESSES applied: %s:4500 <-> %s:4500" % (A, MOVED) in ours.log(), "ikedtx did not apply the update")
        self.labAssertEqual(ping(self.a, A_INNER, B_INNER, 20), 20, "ping after the move")


A_MOVED = "192.0.2.4"


class IkedtxMobikeTests(UserspaceMixin, TestCase):
    def test_ikedtxMoves(self):
        """
        ikedtx (listening on every address) initiates to charon; its host's
        address moves from 192.0.2.1 to 192.0.2.4: the rtnetlink event
        makes it send UPDATE_SA_ADDRESSES from the new address, charon
        follows (same IKE SA), and every ping through the tunnel is
        answered afterwards.
        """
        self.hosts()
        charon = self.charon(self.b, libipsec=True)
        charon.addSecret(Secret(PSK, ids=["ikedtx.example", B]))
        charon.addConnection(Connection(
            "peer", local_addrs=[B], remote_addrs=["%any"], proposals=["aes128gcm16-prfsha256-x25519"],
            local=Auth("psk", id=B), remote=Auth("psk", id="ikedtx.example"), mobike="yes",
            children=[Child("net", local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"],
                            esp_proposals=[CHARON_ESP])]))
        charon.start()
        config = ('ikev2 "peer" passive esp from %s to %s peer %s %s '
                  'srcid ikedtx.example dstid %s psk "%s"\n' % (A_INNER, B_INNER, B, IKEDTX_CHILD, B, PSK))
        ours = self.ikedtx(self.a, config, extraArgs=USERSPACE)
        ours.start()
        ours.initiate("peer")
        before = self.ourOnlySa(ours)
        self.labAssertEqual(ping(self.a, A_INNER, B_INNER, 3), 3, "ping before the move")
        interface = self.link.interface(self.a)
        self.a.sysctl("net.ipv4.conf.%s.promote_secondaries" % (interface,), 1)
        self.a.addAddress(interface, A_MOVED + "/24")
        self.a.ip("addr", "del", A + "/24", "dev", interface)

        def followed():
            sas = charon.ikeSas()
            return len(sas) == 1 and sas[0]["remote-host"] == A_MOVED and sas[0]

        theirs = poll(followed, 30, interval=0.3, what=lambda: "charon following ikedtx\n%r\n%s\n%s" % (
            charon.listSas(), ours.report(), charon.report()))
        self.assertEqual((theirs["initiator-spi"], theirs["responder-spi"]), (before["spiI"], before["spiR"]))
        self.labAssert("parsed INFORMATIONAL request" in charon.log() and "N(UPD_SA_ADDR)" in charon.log(),
                       "charon received no UPDATE_SA_ADDRESSES")
        # charon follows when it gets the request, ikedtx logs when the answer arrives.
        poll(lambda: "peer accepted UPDATE_SA_ADDRESSES" in ours.log(), 10, interval=0.2,
             what=lambda: "ikedtx seeing charon's answer\n%s" % (ours.report(),))
        self.labAssertEqual(ours.showSa()[0]["local"].rsplit(":", 1)[0], A_MOVED)
        self.labAssertEqual(ping(self.a, A_INNER, B_INNER, 20), 20, "ping after the move")

"""
IKE fragmentation (RFC 7383) against strongSwan's charon through a path
that carries no IP fragments: ikedtx on host a and charon on host b, routed
through a middle namespace whose links have an MTU of 1280 and whose
nftables drop every IPv4 fragment (offset or MF set) and every IPv6
Fragment header before reassembly could happen.  Both sides authenticate
with RSA-4096 certificates under an RSA-4096 intermediate and root, so
each IKE_AUTH message carries a chain of about 4 KB and gets through only
in IKE fragments; ikedtx is the initiator in one test, the responder in the
other.
"""

from twisted.trial.unittest import TestCase

from ikedtx.testing.lab import Auth, CertificateAuthority, Child, Connection

from tests.interop import A_INNER, B_INNER, InteropMixin

A, B = "192.0.2.1", "198.51.100.2"
A6, B6 = "2001:db8:1::1", "2001:db8:2::2"
MTU = 1280
KEY = "rsa-4096"
DROP_FRAGMENTS = """
table inet fragmobike {
    chain pre {
        type filter hook prerouting priority -450; policy accept;
        ip frag-off & 0x3fff != 0 counter drop
        exthdr frag exists counter drop
    }
}
"""


class CharonFragmentationTests(InteropMixin, TestCase):
    def setUp(self):
        network = self.network()
        self.a = network.namespace("a")
        self.mid = network.namespace("mid")
        self.b = network.namespace("b")
        left = network.link(self.a, self.mid, [A + "/24", A6 + "/64"], ["192.0.2.254/24", "2001:db8:1::fe/64"])
        right = network.link(self.mid, self.b, ["198.51.100.254/24", "2001:db8:2::fe/64"], [B + "/24", B6 + "/64"])
        for ns, interface in ((self.a, left.leftInterface), (self.mid, left.rightInterface),
                              (self.mid, right.leftInterface), (self.b, right.rightInterface)):
            ns.ip("link", "set", "dev", interface, "mtu", str(MTU))
        self.a.addRoute("default", via="192.0.2.254")
        self.a.addRoute("default6", via="2001:db8:1::fe")
        self.b.addRoute("default", via="198.51.100.254")
        self.b.addRoute("default6", via="2001:db8:2::fe")
        self.a.addLoopbackAddress(A_INNER + "/32")
        self.b.addLoopbackAddress(B_INNER + "/32")
        self.mid.enableForwarding()
        self.mid.run(["nft", "-f", "-"], input=DROP_FRAGMENTS)

        root = CertificateAuthority("ikedtx fragmentation root", keyType=KEY)
        intermediate = root.subordinate("ikedtx fragmentation intermediate", keyType=KEY)
        self.root, self.intermediate = root, intermediate
        self.certA = intermediate.issue("moon", keyType=KEY, ips=[A], dns=["moon.example"])
        self.certB = intermediate.issue("sun", keyType=KEY, ips=[B], dns=["sun.example"])

    def droppedFragments(self):
        """
        The IP fragments the middle box dropped so far.
        """
        output = self.mid.run(["nft", "list", "table", "inet", "fragmobike"]).stdout
        return sum(int(word) for before, word in zip(output.split(), output.split()[1:]) if before == "packets")

    def assertPathDropsFragments(self, b=B):
        """
        The path is what the test claims: a datagram larger than the MTU
        (sent in IP fragments) does not arrive, a small one does.
        """
        self.a.run(["ping", "-c", "1", "-W", "2", "-s", "100", b])
        before = self.droppedFragments()
        result = self.a.run(["ping", "-c", "1", "-W", "2", "-M", "dont", "-s", "3000", b], check=False)
        self.labAssert(result.returncode != 0, "a 3000-octet ping crossed the path:\n" + result.stdout)
        self.labAssert(self.droppedFragments() > before, "the middle box dropped no fragment")

    def startCharon(self, a=A, b=B):
        charon = self.charon(self.b, libipsec=True)
        charon.addCA(self.root.cert)
        charon.addCA(self.intermediate.cert)
        charon.addCertificate(self.certB)
        charon.addConnection(Connection(
            "peer", local_addrs=[b], remote_addrs=[a], proposals=["aes128gcm16-prfsha256-x25519"],
            local=Auth("pubkey", id="sun.example", certs=[self.certB]),
            remote=Auth("pubkey", id="moon.example", cacerts=[self.root.cert]),
            fragmentation="yes",
            children=[Child("net", local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"],
                            esp_proposals=["aes128gcm16"])]))
        charon.start()
        return charon

    def startOurs(self, fragmentation="fragmentation", a=A, b=B):
        config = ('set %s\n'
                  'ikev2 "peer" passive esp from %s to %s local %s peer %s '
                  'ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 childsa enc aes-128-gcm '
                  'srcid moon.example dstid sun.example rsa\n' % (fragmentation, A_INNER, B_INNER, a, b))
        extra = ["-6"] if ":" in a else []
        ours = self.ikedtx(self.a, config, extraArgs=["--kernel", "decoupled", "--listen", a] + extra)
        ours.addCA(self.root.cert)
        ours.addCertificate(self.intermediate.cert, withKey=False)
        ours.addCertificate(self.certA)
        ours.start()
        return ours

    def assertFragmented(self, ours, charon):
        """
        Both sides hold the same SAs, and both sent their IKE_AUTH in IKE
        fragments (charon's log says so; ikedtx's chain is larger than
        any datagram the path carries whole).
        """
        mine = self.ourOnlySa(ours)
        theirs = [sa for sa in charon.listSas() if sa["state"] == "ESTABLISHED"]
        self.labAssertEqual(len(theirs), 1, "charon: %r" % (theirs,))
        self.labAssertEqual((mine["spiI"], mine["spiR"]), (theirs[0]["initiator-spi"], theirs[0]["responder-spi"]))
        log = charon.log()
        self.labAssert("splitting IKE message" in log, "charon sent no IKE fragments")
        self.labAssert("received fragment #1" in log, "charon received no IKE fragments from ikedtx")
        self.labAssert(len(self.certA.certDER) + len(self.intermediate.cert.certDER) > 2 * MTU,
                       "the chain is too small to need fragments")
        return mine, theirs[0]

    def test_ikedtxInitiates(self):
        """
        ikedtx initiates with its 4 KB chain; charon answers with its own;
        both arrive in IKE fragments of at most 576 octets (ikedtx) and
        1280 (charon), and the path dropped no IP fragment.
        """
        self.assertPathDropsFragments()
        charon = self.startCharon()
        ours = self.startOurs()
        before = self.droppedFragments()
        ours.initiate("peer")
        mine, theirs = self.assertFragmented(ours, charon)
        self.assertEqual(mine["initiator"], 1)
        self.assertEqual(self.droppedFragments(), before)

    def test_charonInitiates(self):
        """
        charon initiates; ikedtx, the responder, sends its chain in IKE
        fragments.
        """
        self.assertPathDropsFragments()
        charon = self.startCharon()
        ours = self.startOurs()
        before = self.droppedFragments()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        mine, theirs = self.assertFragmented(ours, charon)
        self.assertEqual(mine["initiator"], 0)
        self.assertEqual(self.droppedFragments(), before)

    def test_ikedtxInitiatesIPv6(self):
        """
        The same over IPv6 (ikedtx -6): the path drops every packet with a
        Fragment header, ikedtx's IKE fragments fit 1280-octet datagrams.
        """
        self.assertPathDropsFragments(B6)
        charon = self.startCharon(A6, B6)
        ours = self.startOurs(a=A6, b=B6)
        before = self.droppedFragments()
        ours.initiate("peer")
        mine, theirs = self.assertFragmented(ours, charon)
        self.assertEqual(mine["remote"].rsplit(":", 1)[0].strip("[]"), B6)
        self.assertEqual(self.droppedFragments(), before)

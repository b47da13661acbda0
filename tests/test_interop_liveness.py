"""
Keeping SAs alive against strongSwan's charon 5.9.8 (kernel-libipsec), each
in a network namespace: dead peer detection when charon is killed (and the
active policy negotiated again once it is back), INITIAL_CONTACT from a
restarted charon replacing its old IKE SA, and one IKE SA carrying the
Child SAs of three policies (charon with three children).
"""

from twisted.trial.unittest import TestCase

from ikedtx.testing.lab import Child, poll

from tests.interop import A, A_INNER, B, B_INNER, PSK, Credentials, ikedtxPolicy
from tests.test_interop_charon import IKEDTX_CHILD, CharonMixin
from tests.test_interop_userspace import ESP, UserspaceMixin

# Short retransmissions: a dead peer is given up after 0.5 + 1 + 2 s.
FAST_RETRANSMIT = ["--retransmit-timeout", "0.5", "--retransmit-tries", "3"]


class CharonLivenessTests(CharonMixin, TestCase):
    def kill(self, charon):
        """
        charon dies without a word (SIGKILL): no Delete reaches ikedtx.
        """
        charon.process.kill()
        charon.process.wait()

    def test_deadPeerDetection(self):
        """
        With C{set dpd_check_interval 2}, ikedtx checks a quiet charon with
        empty INFORMATIONALs; once charon is killed the check goes
        unanswered, the IKE SA and its Child SA are deleted (and logged),
        and the active policy is negotiated again when charon is back.
        """
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials)
        ours = self.startIkedtx("set dpd_check_interval 2\n" +
                                ikedtxPolicy(credentials, child=IKEDTX_CHILD, mode="active"),
                                extraArgs=FAST_RETRANSMIT)
        ours.start()
        charon.waitForIkeSa(child="net", timeout=20)
        first = ours.waitForIkeSa(child=True)
        # charon answers the liveness checks: the IKE SA stays.
        poll(lambda: charon.log().count("parsed INFORMATIONAL request") >= 2, 20,
             what=lambda: "ikedtx's liveness checks\n" + self.labReport())
        self.assertEqual(self.ourOnlySa(ours)["spiI"], first["spiI"])
        self.kill(charon)
        poll(lambda: ours.showSa() == [] or [sa for sa in ours.showSa() if sa["spiI"] != first["spiI"]], 30,
             what=lambda: "ikedtx to give up the dead peer\n" + self.labReport())
        log = ours.log()
        self.labAssert("checking liveness" in log, "no liveness check logged")
        self.labAssert("deleted (peer not responding)" in log, "the IKE SA's deletion is not logged")
        self.labAssert(first["spiI"] not in [sa["spiI"] for sa in ours.showSa()], "the old IKE SA is still there")
        # charon comes back: ikedtx's active policy establishes a new IKE SA.
        charon.start()
        theirs = charon.waitForIkeSa(child="net", timeout=30)
        mine = poll(lambda: [sa for sa in ours.showSa() if sa["state"] == "VALID" and sa["children"]], 20,
                    what=lambda: "ikedtx's new IKE SA\n" + self.labReport())[0]
        self.assertEqual((mine["spiI"], mine["spiR"]), (theirs["initiator-spi"], theirs["responder-spi"]))
        self.assertEqual(mine["initiator"], 1)

    def test_initialContactReplacesStaleSA(self):
        """
        charon is killed and restarted; it initiates again with
        INITIAL_CONTACT, and ikedtx deletes the old IKE SA of that identity
        (no DPD here), keeping only the new one.
        """
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials)
        ours = self.startIkedtx("set dpd_check_interval 0\n" + ikedtxPolicy(credentials, child=IKEDTX_CHILD))
        ours.start()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, output)
        old = self.ourOnlySa(ours)
        self.kill(charon)
        charon.start()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, output)
        self.labAssert("N(INIT_CONTACT)" in output, "charon sent no INITIAL_CONTACT:\n" + output)
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertNotEqual(mine["spiI"], old["spiI"])
        self.labAssert("INITIAL_CONTACT from" in ours.log(), "ikedtx logged no INITIAL_CONTACT")

    def test_restartedIkedtxSendsInitialContact(self):
        """
        ikedtx is killed and restarted; its active policy initiates with
        INITIAL_CONTACT (no other IKE SA to that peer), and charon replaces
        the IKE SA it still held with the new one.
        """
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials)
        config = "set dpd_check_interval 0\n" + ikedtxPolicy(credentials, child=IKEDTX_CHILD, mode="active")
        ours = self.startIkedtx(config)
        ours.start()
        old = charon.waitForIkeSa(child="net", timeout=20)
        ours.process.kill()
        ours.process.wait()
        ours.start()
        poll(lambda: [sa for sa in charon.ikeSas() if sa["initiator-spi"] != old["initiator-spi"]], 20,
             what=lambda: "charon's new IKE SA\n" + self.labReport())
        self.labAssert("N(INIT_CONTACT)" in charon.log(), "charon saw no INITIAL_CONTACT")
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertNotEqual(theirs["initiator-spi"], old["initiator-spi"])

    def test_threeChildren(self):
        """
        charon's connection has three children (UDP, TCP, ICMP) and ikedtx
        one policy for each, to the same peer and identity: the first Child
        SA comes in IKE_AUTH, the others with CREATE_CHILD_SA on the same
        IKE SA, and all three are established on both sides.
        """
        self.hosts()
        credentials = Credentials("psk")
        protocols = ("udp", "tcp", "icmp")
        children = [Child("net-" + proto, local_ts=["%s/32[%s]" % (B_INNER, proto)],
                          remote_ts=["%s/32[%s]" % (A_INNER, proto)], esp_proposals=["aes128gcm16"])
                    for proto in protocols]
        charon = self.startCharon(credentials, children=children)
        config = "".join(
            'ikev2 "%s" passive esp proto %s from %s to %s local %s peer %s %s srcid %s dstid %s psk "%s"\n' % (
                proto, proto, A_INNER, B_INNER, A, B, IKEDTX_CHILD, credentials.idA, credentials.idB, PSK)
            for proto in protocols)
        ours = self.startIkedtx(config)
        ours.start()
        for proto in protocols:
            ok, output = charon.initiate(child="net-" + proto)
            self.labAssert(ok, "charon's child %s failed:\n%s" % (proto, output))
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertEqual(sorted(c["name"] for c in theirs["child-sas"]), ["net-icmp", "net-tcp", "net-udp"])
        self.assertEqual(len(mine["children"]), 3)


    def test_threeActivePolicies(self):
        """
        ikedtx has three active policies to charon: three IKE SAs start
        together, only the first to authenticate carries INITIAL_CONTACT,
        and charon keeps all three (none is deleted, none initiated again).
        """
        self.hosts()
        credentials = Credentials("psk")
        protocols = ("udp", "tcp", "icmp")
        children = [Child("net-" + proto, local_ts=["%s/32[%s]" % (B_INNER, proto)],
                          remote_ts=["%s/32[%s]" % (A_INNER, proto)], esp_proposals=["aes128gcm16"])
                    for proto in protocols]
        charon = self.startCharon(credentials, children=children)
        config = "".join(
            'ikev2 "%s" active esp proto %s from %s to %s local %s peer %s %s srcid %s dstid %s psk "%s"\n' % (
                proto, proto, A_INNER, B_INNER, A, B, IKEDTX_CHILD, credentials.idA, credentials.idB, PSK)
            for proto in protocols)
        ours = self.startIkedtx(config)
        ours.start()
        poll(lambda: len([sa for sa in charon.ikeSas() if sa["child-sas"]]) == 3, 20,
             what=lambda: "charon's three IKE SAs\n" + self.labReport())
        mine = sorted((sa["spiI"], sa["spiR"]) for sa in ours.showSa() if sa["state"] == "VALID")
        theirs = sorted((sa["initiator-spi"], sa["responder-spi"]) for sa in charon.ikeSas())
        self.labAssertEqual(mine, theirs)
        log = charon.log()
        self.labAssertEqual(log.count("N(INIT_CONTACT)"), 1, "INITIAL_CONTACTs charon received")
        self.labAssertEqual(ours.log().count("initiating IKE SA"), 3, "ikedtx initiated again")


class CharonDuplicatingLinkTests(CharonMixin, TestCase):
    """
    ikedtx and charon on one Ethernet segment through a middle namespace
    whose nftables (netdev ingress, C{fwd} and C{dup}) deliver every IKE
    datagram from charon to ikedtx twice, as a lossy path with duplicates
    did when these bugs were found.
    """

    def duplicatingHosts(self):
        from ikedtx.testing import support

        support.requireExecutable("nft", "apt-get install nftables")
        network = self.network()
        self.a, middle, self.b = network.namespace("a"), network.namespace("m"), network.namespace("b")
        left = network.link(self.a, middle, ["192.0.2.1/24"], [])
        right = network.link(middle, self.b, [], ["192.0.2.2/24"])
        self.a.addLoopbackAddress(A_INNER + "/32")
        self.b.addLoopbackAddress(B_INNER + "/32")
        toA, toB = left.interface(middle), right.interface(middle)
        rules = (
            "table netdev wire {\n"
            "  chain fromA { type filter hook ingress device \"%(toA)s\" priority 0; fwd to \"%(toB)s\"; }\n"
            "  chain fromB {\n"
            "    type filter hook ingress device \"%(toB)s\" priority 0;\n"
            "    udp sport { 500, 4500 } dup to \"%(toA)s\"\n"
            "    fwd to \"%(toA)s\"\n"
            "  }\n"
            "}\n" % {"toA": toA, "toB": toB})
        middle.run(["nft", "-f", "-"], input=rules)
        return self.a, self.b

    def test_duplicatedInvalidKe(self):
        """
        ikedtx offers X25519 first, charon wants ECP-256: charon's
        INVALID_KE_PAYLOAD arrives twice; the copy answers the first
        request and is ignored, and the IKE SA is established.
        """
        self.duplicatingHosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials, ike="aes128gcm16-prfsha256-ecp256")
        ours = self.startIkedtx(ikedtxPolicy(
            credentials, ike="ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 group ecp256",
            child=IKEDTX_CHILD))
        ours.start()
        ours.initiate("peer")
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertEqual(theirs["dh-group"], "ECP_256")
        self.labAssert("answer to an earlier transmission of request 0 ignored" in ours.log(),
                       "the duplicated INVALID_KE_PAYLOAD did not arrive")

    def test_duplicatedAuthFragments(self):
        """
        Each fragment of charon's IKE_AUTH response (RSA certificates,
        fragmentation on both sides) arrives twice: the copies are dropped
        and the IKE SA is established on both sides.
        """
        self.duplicatingHosts()
        credentials = Credentials("rsa")
        charon = self.startCharon(credentials, fragmentation="yes")
        ours = self.startIkedtx("set fragmentation\n" + ikedtxPolicy(credentials, child=IKEDTX_CHILD))
        credentials.installIkedtx(ours)
        ours.start()
        ours.initiate("peer")
        self.assertSameSAs(ours, charon)
        self.labAssert("generating IKE_AUTH response 1 [ EF(1/" in charon.log(), "charon did not fragment")


class CharonSignatureHashTests(CharonMixin, TestCase):
    """
    An ecdsa256 policy announces SIGNATURE_HASH_ALGORITHMS (as iked), so
    both sides sign with RFC 7427's DIGITAL_SIGNATURE.
    """

    def _negotiate(self, initiator):
        self.hosts()
        credentials = Credentials("ecdsa")
        charon = self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=IKEDTX_CHILD))
        credentials.installIkedtx(ours)
        ours.start()
        if initiator == "ikedtx":
            ours.initiate("peer")
        else:
            ok, output = charon.initiate(child="net")
            self.labAssert(ok, output)
        self.assertSameSAs(ours, charon)
        lines = charon.log().splitlines()
        parsed = "parsed IKE_SA_INIT request" if initiator == "ikedtx" else "parsed IKE_SA_INIT response"
        ours = [line for line in lines if parsed in line]
        self.labAssert(ours and "N(HASH_ALG)" in ours[0], "ikedtx's IKE_SA_INIT without SIGNATURE_HASH_ALGORITHMS")
        auths = [line for line in lines if "authentication of" in line]
        self.labAssertEqual(len(auths), 2, repr(auths))
        self.labAssert(all("with ECDSA_WITH_SHA256_DER successful" in line for line in auths), repr(auths))

    def test_ikedtxInitiates(self):
        self._negotiate("ikedtx")

    def test_charonInitiates(self):
        self._negotiate("charon")


class UserspaceLivenessTests(UserspaceMixin, TestCase):
    """
    ikedtx with its user-space datapath against charon (kernel-libipsec).
    """

    def test_espIsLiveness(self):
        """
        While ESP from charon arrives (a ping through the tunnel) the
        datapath's counters show the peer alive and ikedtx sends no
        liveness check; once the tunnel is quiet it checks again.
        """
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials, esp=ESP["gcm"][0])
        ours = self.startOurs(self.a, "set dpd_check_interval 2\n" + ikedtxPolicy(credentials, child=ESP["gcm"][1]), A)
        ours.initiate("peer")
        self.assertSameSAs(ours, charon)

        def checks():
            return charon.log().count("parsed INFORMATIONAL request")

        before = checks()
        # 40 echoes 0.2 s apart: two intervals and more of traffic.
        self.assertPings([(self.b, B_INNER, A_INNER)], count=40)
        during = checks()
        self.labAssertEqual(during, before, "liveness checks while ESP arrived")
        poll(lambda: checks() > during, 20, what=lambda: "a liveness check once quiet\n" + self.labReport())
        self.ourOnlySa(ours)

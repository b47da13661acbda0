# -*- test-case-name: tests.test_lab_harness -*-
"""
The lab harness (L{ikedtx.testing.lab}) itself: its parsers and PKI without root, and
real daemons in network namespaces - two charons with ESP in user space,
charon and openiked both ways with PSK and with ECDSA certificates, a NAT
box, tshark decrypting IKE_AUTH with charon's logged keys, and a Python
process in a namespace reporting back to the test's reactor.
"""

import ipaddress

from cryptography import x509
from twisted.internet import defer, protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ikedtx.testing.lab import (
    Auth, CertificateAuthority, Child, Connection, LabMixin, ReportChannel, Secret, ikeDecryptionTable, inThread,
    parseIkeKeys, parseShowSa, poll, pskConnection, waitFor,
)
from ikedtx.testing.lab.vici import decode, encode

PSK = "lab-psk-0123456789"
A, B = "192.0.2.1", "192.0.2.2"
A_INNER, B_INNER = "10.1.0.1/32", "10.2.0.1/32"

# openiked 7.2 on Linux: no HMAC-SHA2-256 ESP SAs, and a GCM-only "childsa"
# is dropped by its parser (iked -n -v prints no childsa; NO_PROPOSAL_CHOSEN)
IKED_CHILDSA = "childsa enc aes-256 auth hmac-sha2-384"
CHARON_ESP = "aes256-sha384"
IKED_IKESA = "ikesa enc aes-256 prf hmac-sha2-256 auth hmac-sha2-256 group curve25519"
CHARON_IKE = "aes256-sha256-x25519"


def ikedPolicy(mode, local, peer, localTs, remoteTs, auth='psk "%s"' % (PSK,), srcid=None, dstid=None):
    """
    One iked.conf policy line between two hosts.
    """
    return (
        'ikev2 "peer" %s esp from %s to %s local %s peer %s \\\n'
        "    %s \\\n    %s \\\n    srcid %s dstid %s %s\n"
        % (mode, localTs, remoteTs, local, peer, IKED_IKESA, IKED_CHILDSA, srcid or local, dstid or peer, auth)
    )


class ViciCodecTests(SynchronousTestCase):
    """
    The vici message codec of the lab's vici client.
    """

    def test_roundTrip(self):
        """
        Sections, key/values and lists survive encode/decode; booleans become
        yes/no and C{None} values are left out.
        """
        message = {"a": "1", "s": {"k": "v", "l": ["x", "y"], "inner": {}}, "b": True, "n": None}
        self.assertEqual(decode(encode(message)), {"a": "1", "s": {"k": "v", "l": ["x", "y"], "inner": {}}, "b": "yes"})

    def test_encoding(self):
        """
        The bytes follow the element layout: type, 8-bit name length, name,
        16-bit value length, value.
        """
        self.assertEqual(encode({"ike": "peer"}), b"\x03\x03ike\x00\x04peer")
        self.assertEqual(encode({"l": ["a"]}), b"\x04\x01l\x05\x00\x01a\x06")


class ParserTests(SynchronousTestCase):
    """
    Parsers of the peers' output formats, on text captured from the real
    daemons.
    """

    def test_showSa(self):
        """
        C{ikectl show sa} (openiked 7.2) yields the iked_sas blocks with SPIs,
        endpoints, IDs, state, role, flags, Child SAs and flows.
        """
        text = (
            "iked_sas: 0x55768a09fb40 rspi 0x5734fcd86cfa0ab6 ispi 0xf6f62133610847a6 "
            "192.0.2.2:4500->192.0.2.1:4500<IPV4/192.0.2.1>[] ESTABLISHED r natt udpecap nexti (nil) pol 0x55768a0a1510\n"
            "  sa_childsas: 0x55768a0e3380 ESP 0x26887312 in 192.0.2.1:4500 -> 192.0.2.2:4500 (LA) B=(nil) P=0x55768a0e3430 @0x55768a09fb40\n"
            "  sa_childsas: 0x55768a0e3430 ESP 0x8bb3c596 out 192.0.2.2:4500 -> 192.0.2.1:4500 (L) B=(nil) P=0x55768a0e3380 @0x55768a09fb40\n"
            "  sa_flows: 0x55768a0e3140 ESP out 10.1.0.1/32 -> 10.2.0.1/32 [0]@-1 (L) @0x55768a09fb40\n"
            "iked_activesas: 0x55768a0e3380 ESP 0x26887312 in 192.0.2.1:4500 -> 192.0.2.2:4500 (LA) B=(nil) P=0x55768a0e3430 @0x55768a09fb40\n"
            "iked_flows: 0x55768a0e2f00 ESP in 10.1.0.1/32 -> 10.2.0.1/32 [0]@-1 (L) @0x55768a09fb40\n"
            "iked_dstid_sas: 0x55768a09fb40 rspi 0x5734fcd86cfa0ab6 ispi 0xf6f62133610847a6 "
            "192.0.2.2:4500->192.0.2.1:4500<IPV4/192.0.2.1>[] ESTABLISHED r natt udpecap nexti (nil) pol 0x55768a0a1510\n"
        )
        [sa] = parseShowSa(text)
        self.assertEqual(
            (sa["ispi"], sa["rspi"], sa["localAddress"], sa["localPort"], sa["peerAddress"], sa["peerId"],
             sa["state"], sa["initiator"], sa["flags"]),
            ("f6f62133610847a6", "5734fcd86cfa0ab6", "192.0.2.2", 4500, "192.0.2.1", "IPV4/192.0.2.1",
             "ESTABLISHED", False, ["natt", "udpecap"]),
        )
        self.assertEqual([(c["spi"], c["direction"]) for c in sa["childSas"]], [("26887312", "in"), ("8bb3c596", "out")])
        self.assertEqual([(f["direction"], f["source"], f["destination"]) for f in sa["flows"]],
                         [("out", "10.1.0.1/32", "10.2.0.1/32")])

    def test_showSaDistinguishedName(self):
        """
        A peer ID with spaces (an ASN.1 DN) stays whole.
        """
        text = ("iked_sas: 0x1 rspi 0x02 ispi 0x01 192.0.2.2:500->192.0.2.1:500<ASN1_DN//O=ikedtx lab/CN=moon>[] "
                "ESTABLISHED i nexti (nil) pol 0x2\n")
        [sa] = parseShowSa(text)
        self.assertEqual((sa["peerId"], sa["initiator"], sa["flags"]), ("ASN1_DN//O=ikedtx lab/CN=moon", True, []))

    def test_ikeKeys(self):
        """
        charon's C{ike = 4} key dumps are collected per IKE SA unique id.
        """
        log = (
            "20:49:04 13[IKE] <peer|1> Sk_ai secret => 20 bytes @ 0x7f00\n"
            "20:49:04 13[IKE] <peer|1>    0: 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 10  ................\n"
            "20:49:04 13[IKE] <peer|1>   16: 11 12 13 14                                      ....\n"
            "20:49:04 13[CFG] <peer|1> something else\n"
            "20:49:04 13[IKE] <other|2> Sk_ei secret => 4 bytes @ 0x7f00\n"
            "20:49:04 13[IKE] <other|2>    0: AA BB CC DD                                      ....\n"
        )
        self.assertEqual(parseIkeKeys(log), {"1": {"sk_ai": bytes(range(1, 21))}, "2": {"sk_ei": b"\xaa\xbb\xcc\xdd"}})

    def test_ikeKeysBeforeConnection(self):
        """
        A responder's keys are logged under C{<id>} alone until it picked a
        connection (charon 6 derives them again after each IKE_INTERMEDIATE,
        before IKE_AUTH names the connection); the last ones logged win.
        """
        log = (
            "14:06:41 16[IKE] <1> Sk_ei secret => 4 bytes @ 0x7f00\n"
            "14:06:41 16[IKE] <1>    0: 01 02 03 04                                      ....\n"
            "14:06:41 01[IKE] <1> Sk_ei secret => 4 bytes @ 0x7f00\n"
            "14:06:41 01[IKE] <1>    0: AA BB CC DD                                      ....\n"
            "14:06:41 01[IKE] <peer|1> SK_p => 32 bytes @ 0x5610\n"
        )
        self.assertEqual(parseIkeKeys(log), {"1": {"sk_ei": b"\xaa\xbb\xcc\xdd"}})


class PkiTests(SynchronousTestCase):
    """
    The PKI helpers make what the peers need.
    """

    def test_hostCertificate(self):
        """
        A host certificate carries the requested SANs, is signed by the CA
        and its key matches.
        """
        ca = CertificateAuthority("lab CA")
        host = ca.issue("moon", keyType="ecdsa-p256", ips=[A, "2001:db8:1::1"], dns=["moon.example"], emails=["moon@example"])
        san = host.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.IPAddress), [ipaddress.ip_address(A), ipaddress.ip_address("2001:db8:1::1")])
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["moon.example"])
        self.assertEqual(san.get_values_for_type(x509.RFC822Name), ["moon@example"])
        host.cert.verify_directly_issued_by(ca.cert.cert)
        self.assertEqual(host.cert.public_key().public_numbers(), host.key.public.public_numbers())
        self.assertEqual(host.subjectIKE, "/O=ikedtx lab/CN=moon")
        self.assertTrue(host.certPEM.startswith(b"-----BEGIN CERTIFICATE-----"))
        self.assertTrue(host.key.traditionalPEM.startswith(b"-----BEGIN EC PRIVATE KEY-----"))

    def test_rsaAndCrl(self):
        """
        RSA-2048 hosts work too, and a CRL lists the revoked serials.
        """
        ca = CertificateAuthority("lab CA", keyType="rsa-2048")
        host = ca.issue("sun", keyType="rsa-2048", dns=["sun.example"])
        self.assertEqual(host.key.public.key_size, 2048)
        crl = ca.crl([host]).crl
        self.assertIsNotNone(crl.get_revoked_certificate_by_serial_number(host.serial))
        self.assertTrue(crl.is_signature_valid(ca.key.public))


class NetworkTests(LabMixin, TestCase):
    """
    Namespaces, links, the NAT box, sockets for the test's reactor and
    Python processes in a namespace.
    """

    def test_pairPings(self):
        """
        The two hosts of L{Network.pair} reach each other over IPv4 and IPv6
        at once (no DAD wait).
        """
        a, b, link = self.network().pair()
        a.run(["ping", "-c", "1", "-W", "2", B])
        a.run(["ping", "-c", "1", "-W", "2", "2001:db8:1::2"])
        self.assertIn("10.1.0.1/32", a.ip("addr", "show", "dev", "lo").stdout)

    def test_natMasquerades(self):
        """
        Behind the NAT box, C{a}'s UDP reaches C{b} from the NAT's outside
        address and a port from the configured range.
        """
        a, nat, b = self.network().natted(ports="20000-20099")
        out = b.popen(["python3", "-c",
                       "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                       "s.bind(('198.51.100.2',500));print('ready',flush=True);d,p=s.recvfrom(100);print(p)"],
                      stdout=-1, text=True)
        self.assertEqual(out.stdout.readline().strip(), "ready")
        a.run(["python3", "-c",
               "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('192.0.2.1',500));"
               "s.sendto(b'x',('198.51.100.2',500))"])
        source = out.stdout.readline().strip()
        out.wait(5)
        address, port = eval(source)
        self.assertEqual(address, "198.51.100.254")
        self.assertTrue(20000 <= port <= 20099, source)

    @defer.inlineCallbacks
    def test_reactorSocketAndPythonProcess(self):
        """
        A UDP port bound inside namespace C{a} by the test's own reactor
        talks to a Twisted program started with C{spawnPython} in namespace
        C{b}, which reports back over a L{ReportChannel}.
        """
        net = self.network()
        a, b, link = net.pair()
        channel = ReportChannel(self.mktemp() + ".sock", self)
        # its own mount namespace and /run, as a daemon under test would want
        echo = b.spawnPython("ikedtx.testing.lab.udpecho", [B, "7777"], env=channel.env(),
                             mountNamespace="mount -t tmpfs tmpfs /run")
        self.addCleanup(echo.stop)
        try:
            ready = yield channel.expect("listening", timeout=15)
        except Exception:
            self.fail("udpecho did not report:\n" + echo.text())
        self.assertEqual(ready["port"], 7777)

        received = defer.Deferred()

        class Client(protocol.DatagramProtocol):
            def datagramReceived(self, data, address):
                received.callback((data, address))

        port = a.listenUDP(0, Client(), interface=A)
        self.addCleanup(port.stopListening)
        port.write(b"hello", (B, 7777))
        data, address = yield received
        self.assertEqual((data, address), (b"hello", (B, 7777)))
        echoed = yield channel.expect("echoed")
        self.assertEqual((echoed["data"], echoed["peer"][0]), ("hello", A))
        yield echo.stop()


    @defer.inlineCallbacks
    def test_inProcessResponderHearsCharon(self):
        """
        The pattern for a daemon running in the test's reactor: its UDP port
        500 is bound inside namespace C{a}, charon in C{b} initiates from a
        thread (L{inThread}) so the reactor keeps running, and the IKE_SA_INIT
        request arrives in the test's process.
        """
        a, b, link = self.network().pair()
        requests = []

        class Responder(protocol.DatagramProtocol):
            def datagramReceived(self, data, address):
                requests.append((data, address))

        port = a.listenUDP(500, Responder(), interface=A)
        self.addCleanup(port.stopListening)
        charon = self.charon(b)
        charon.addConnection(pskConnection("peer", B, A, proposals=[CHARON_IKE]))
        charon.addSecret(Secret(PSK, ids=[A, B]))
        charon.start()
        initiated = inThread(charon).initiate(ike="peer", timeout=1)
        yield waitFor(lambda: requests, timeout=5, what=lambda: "IKE_SA_INIT in the test's reactor\n" + self.labReport())
        ok, output = yield initiated
        self.assertFalse(ok, output)
        data, address = requests[0]
        self.assertEqual(address, (B, 500))
        # IKE header: exchange type 34 (IKE_SA_INIT), flags: initiator
        self.assertEqual((data[17], data[18], data[19]), (0x20, 34, 0x08))


class CharonPairTests(LabMixin, TestCase):
    """
    Two charons, both with kernel-libipsec (ESP in user space).
    """

    def setUp(self):
        self.net = self.network()

    def _pair(self, a, b, aAddr, bAddr, bSees=None):
        peers = []
        for ns, me, other, lts, rts, remoteAddrs in ((a, aAddr, bAddr, A_INNER, B_INNER, None),
                                                     (b, bAddr, aAddr, B_INNER, A_INNER, bSees)):
            charon = self.charon(ns, libipsec=True)
            charon.addConnection(pskConnection("peer", me, other, [lts], [rts], espProposals=["aes256gcm16"],
                                               remoteAddrs=remoteAddrs))
            charon.addSecret(Secret(PSK, ids=[me, other]))
            peers.append(charon)
        for charon in peers:
            charon.start()
        return peers

    def _initiateAndPing(self, a, left, right, aAddr, bAddr):
        ok, output = left.initiate(child="net", timeout=10)
        self.labAssert(ok, "initiate failed:\n" + output)
        a.run(["ping", "-c", "2", "-i", "0.2", "-W", "2", "-I", "10.1.0.1", "10.2.0.1"])
        [mine] = left.listSas()
        right.waitForIkeSa(child="net")
        [theirs] = right.listSas()
        self.assertEqual((mine["state"], theirs["state"]), ("ESTABLISHED", "ESTABLISHED"))
        self.assertEqual((mine["remote-host"], theirs["remote-host"]), (bAddr, aAddr))
        self.assertEqual((mine["initiator-spi"], mine["responder-spi"]), (theirs["initiator-spi"], theirs["responder-spi"]))
        [myChild], [theirChild] = mine["child-sas"], theirs["child-sas"]
        self.assertEqual((myChild["state"], myChild["encap"], myChild["encr-alg"]), ("INSTALLED", "yes", "AES_GCM_16"))
        self.assertEqual((myChild["spi-in"], myChild["spi-out"]), (theirChild["spi-out"], theirChild["spi-in"]))
        self.assertEqual((myChild["local-ts"], myChild["remote-ts"]), ([A_INNER], [B_INNER]))
        # the two pings went through ESP-in-UDP
        self.assertGreaterEqual(int(myChild["packets-out"]), 2)
        self.assertGreaterEqual(int(theirChild["packets-in"]), 2)
        return mine, theirs

    def test_pskPingThroughEsp(self):
        """
        An IKE SA and a Child SA with PSK, then a ping between the inner
        addresses passes through ESP-in-UDP in both directions; terminating
        the IKE SA removes it on both sides.
        """
        a, b, link = self.net.pair()
        left, right = self._pair(a, b, A, B)
        self._initiateAndPing(a, left, right, A, B)
        ok, output = left.terminate(ike="peer")
        self.labAssert(ok, "terminate failed:\n" + output)
        self.assertEqual(left.listSas(), [])
        poll(lambda: right.listSas() == [], 5, what=lambda: "the responder to delete its SAs\n" + self.labReport())

    def test_throughNat(self):
        """
        Across the NAT box: the initiator behind it sees itself behind NAT,
        the responder sees the NAT's outside address, and ESP-in-UDP passes.
        """
        a, nat, b = self.net.natted(ports="20000-20099")
        left, right = self._pair(a, b, A, "198.51.100.2", bSees=["%any"])
        ok, output = left.initiate(child="net", timeout=10)
        self.labAssert(ok, "initiate failed:\n" + output)
        a.run(["ping", "-c", "2", "-i", "0.2", "-W", "2", "-I", "10.1.0.1", "10.2.0.1"])
        [mine] = left.listSas()
        theirs = right.waitForIkeSa(child="net")
        self.assertEqual(mine.get("nat-local"), "yes")
        self.assertEqual(theirs["remote-host"], "198.51.100.254")
        self.assertTrue(20000 <= int(theirs["remote-port"]) <= 20099, theirs["remote-port"])
        self.assertGreaterEqual(int(theirs["child-sas"][0]["packets-in"]), 2)


class CharonOpenIkedTests(LabMixin, TestCase):
    """
    charon (with kernel-libipsec, so its Child SA installs) against openiked
    (PF_KEY shim, decoupled: IKE only) in the other namespace.
    """

    def setUp(self):
        self.a, self.b, link = self.network().pair()

    def _charon(self, start_action="none"):
        charon = self.charon(self.a, libipsec=True)
        connection = pskConnection("peer", A, B, [A_INNER], [B_INNER], proposals=[CHARON_IKE], espProposals=[CHARON_ESP])
        connection.children[0].options["start_action"] = start_action
        charon.addConnection(connection)
        charon.addSecret(Secret(PSK, ids=[A, B]))
        return charon

    def _assertBothSides(self, charon, iked, charonInitiated):
        ikeSa = charon.waitForIkeSa(child="net")
        sa = iked.waitForIkeSa(child=True)
        self.assertEqual((ikeSa["initiator-spi"], ikeSa["responder-spi"]), (sa["ispi"], sa["rspi"]))
        self.assertEqual(sa["initiator"], not charonInitiated)
        self.assertEqual((sa["peerAddress"], sa["localAddress"], sa["peerId"]), (A, B, "IPV4/%s" % (A,)))
        self.assertEqual((ikeSa["remote-id"], ikeSa["local-id"]), (B, A))
        [child] = ikeSa["child-sas"]
        self.assertEqual(sorted(c["spi"] for c in sa["childSas"]), sorted([child["spi-in"], child["spi-out"]]))
        self.assertEqual(child["integ-alg"], "HMAC_SHA2_384_192")

    def test_charonInitiatesPsk(self):
        """
        charon initiates, iked responds: both list the same IKE SA and the
        Child SA's SPIs.
        """
        charon = self._charon()
        iked = self.openiked(self.b, ikedPolicy("passive", B, A, B_INNER, A_INNER))
        charon.start()
        iked.start()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "initiate failed:\n" + output)
        self._assertBothSides(charon, iked, charonInitiated=True)

    def test_openIkedInitiatesPsk(self):
        """
        iked (C{active}) initiates by itself after about 2 s; charon
        responds.
        """
        charon = self._charon()
        iked = self.openiked(self.b, ikedPolicy("active", B, A, B_INNER, A_INNER))
        charon.start()
        iked.start()
        self._assertBothSides(charon, iked, charonInitiated=False)

    def test_ecdsaCertificates(self):
        """
        ECDSA P-256 certificates under one lab CA, FQDN IDs from the
        certificates' SANs, charon initiating.
        """
        ca = CertificateAuthority("ikedtx lab CA", keyType="ecdsa-p256")
        moon = ca.issue("moon", keyType="ecdsa-p256", ips=[A], dns=["moon.example"])
        sun = ca.issue("sun", keyType="ecdsa-p256", ips=[B], dns=["sun.example"])
        charon = self.charon(self.a, libipsec=True)
        charon.addCA(ca.cert)
        charon.addConnection(Connection(
            "peer", local_addrs=[A], remote_addrs=[B], proposals=[CHARON_IKE],
            local=Auth("pubkey", id="moon.example", certs=[moon]),
            remote=Auth("pubkey", id="sun.example", cacerts=[ca.cert]),
            children=[Child("net", local_ts=[A_INNER], remote_ts=[B_INNER], esp_proposals=[CHARON_ESP])]))
        iked = self.openiked(self.b, ikedPolicy("passive", B, A, B_INNER, A_INNER, auth="", srcid="sun.example",
                                                dstid="moon.example"))
        iked.addCA(ca.cert)
        iked.addCertificate(sun)
        charon.start()
        iked.start()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "initiate failed:\n" + output)
        ikeSa = charon.waitForIkeSa(child="net")
        sa = iked.waitForIkeSa(child=True)
        self.assertEqual((ikeSa["remote-id"], ikeSa["local-id"]), ("sun.example", "moon.example"))
        self.assertEqual(sa["peerId"], "FQDN/moon.example")
        self.assertEqual((ikeSa["initiator-spi"], ikeSa["responder-spi"]), (sa["ispi"], sa["rspi"]))
        self.labAssert("authentication of 'sun.example' with ECDSA" in output, "charon did not verify an ECDSA signature:\n" + output)


    def _revoked(self, revokeMoon, revokeSun):
        ca = CertificateAuthority("ikedtx lab CA", keyType="ecdsa-p256")
        moon = ca.issue("moon", ips=[A], dns=["moon.example"])
        sun = ca.issue("sun", ips=[B], dns=["sun.example"])
        crl = ca.crl([c for c, revoked in ((moon, revokeMoon), (sun, revokeSun)) if revoked])
        charon = self.charon(self.a, libipsec=True)
        charon.addCA(ca.cert)
        charon.addCRL(crl)
        charon.addConnection(Connection(
            "peer", local_addrs=[A], remote_addrs=[B], proposals=[CHARON_IKE],
            local=Auth("pubkey", id="moon.example", certs=[moon]),
            remote=Auth("pubkey", id="sun.example", cacerts=[ca.cert]),
            children=[Child("net", local_ts=[A_INNER], remote_ts=[B_INNER], esp_proposals=[CHARON_ESP])]))
        iked = self.openiked(self.b, ikedPolicy("passive", B, A, B_INNER, A_INNER, auth="", srcid="sun.example",
                                                dstid="moon.example"))
        iked.addCA(ca.cert)
        iked.addCRL(crl)
        iked.addCertificate(sun)
        charon.start()
        iked.start()
        ok, output = charon.initiate(child="net", timeout=5)
        self.assertFalse(ok, output)
        self.assertEqual([sa for sa in iked.showSa() if sa["state"] == "ESTABLISHED"], [])
        return charon, iked, output

    def test_ikedRefusesRevokedCertificate(self):
        """
        A CRL from the PKI helper in iked's crls/ makes it refuse charon's
        revoked certificate (AUTH_FAILED).
        """
        charon, iked, output = self._revoked(revokeMoon=True, revokeSun=False)
        self.labAssert("/CN=moon certificate revoked" in iked.log(), "iked did not find moon revoked")
        self.labAssert("AUTH_FAILED" in output, output)

    def test_charonRefusesRevokedCertificate(self):
        """
        A CRL (DER) in charon's x509crl/ makes it refuse iked's revoked
        certificate.
        """
        charon, iked, output = self._revoked(revokeMoon=False, revokeSun=True)
        self.labAssert("certificate was revoked" in charon.log(), "charon did not find sun revoked:\n" + output)


class TsharkTests(LabMixin, TestCase):
    """
    tshark sees the exchanges and, with the keys charon logs, decrypts
    IKE_AUTH and finds every ICV correct.
    """

    def _exchange(self, proposals):
        a, b, link = self.network().pair()
        capture = self.capture(a, link.leftInterface)
        peers = []
        for ns, me, other in ((a, A, B), (b, B, A)):
            charon = self.charon(ns)
            charon.addConnection(pskConnection("peer", me, other, proposals=proposals))
            charon.addSecret(Secret(PSK, ids=[me, other]))
            peers.append(charon.start())
        left, right = peers
        ok, output = left.initiate(ike="peer")
        self.labAssert(ok, "initiate failed:\n" + output)
        table = ikeDecryptionTable(left)
        self.labAssertEqual(len(table), 1, "keys of one IKE SA in charon's log: SAs %r, keys for %r" % (
            left.listSas(), sorted(left.ikeKeys())))
        capture.stop()
        rows = capture.fields(["isakmp.exchangetype", "isakmp.ispi", "isakmp.rspi", "isakmp.id.data.ipv4_addr"],
                              displayFilter="isakmp", ikeKeys=table)
        exchanges = [r["isakmp.exchangetype"] for r in rows]
        self.labAssertEqual(exchanges[:4], ["34", "34", "35", "35"], capture.summary())
        self.assertEqual(rows[2]["isakmp.ispi"], table[0].spii)
        self.assertEqual(rows[2]["isakmp.rspi"], table[0].spir)
        # decrypted IKE_AUTH: the IDs inside the SK payload
        self.assertEqual(rows[2]["isakmp.id.data.ipv4_addr"], "%s,%s" % (A, B))
        self.assertEqual(rows[3]["isakmp.id.data.ipv4_addr"], B)
        icvs = capture.icvResults(table)
        self.labAssert(len(icvs) >= 2 and set(icvs) == {"correct"}, "ICVs: %r" % (icvs,))
        # without the keys nothing is checked nor decrypted
        plain = capture.fields(["isakmp.id.data.ipv4_addr"], displayFilter="isakmp.exchangetype == 35")
        self.assertEqual([r["isakmp.id.data.ipv4_addr"] for r in plain], ["", ""])

    def test_decryptsIkeAuthCbc(self):
        """
        AES-CBC-256 with HMAC-SHA2-256-128.
        """
        self._exchange(["aes256-sha256-x25519"])

    def test_decryptsIkeAuthGcm(self):
        """
        AES-GCM-16 (the salt is part of SK_e; no integrity transform).
        """
        self._exchange(["aes256gcm16-prfsha256-x25519"])


class MoreInteropTests(LabMixin, TestCase):
    """
    Raw public keys and IPv6 between charon and openiked.
    """

    def setUp(self):
        self.a, self.b, link = self.network().pair()

    def test_rawPublicKeys(self):
        """
        Raw ECDSA public keys: charon trusts iked's local.pub, iked trusts
        charon's key in pubkeys/ipv4/192.0.2.1.
        """
        from ikedtx.testing.lab import KeyPair

        charonKey, ikedKey = KeyPair.generate("ecdsa-p256"), KeyPair.generate("ecdsa-p256")
        charon = self.charon(self.a, libipsec=True)
        charon.addConnection(Connection(
            "peer", local_addrs=[A], remote_addrs=[B], proposals=[CHARON_IKE],
            local=Auth("pubkey", id=A, pubkeys=[charonKey]), remote=Auth("pubkey", id=B, pubkeys=[ikedKey]),
            children=[Child("net", local_ts=[A_INNER], remote_ts=[B_INNER], esp_proposals=[CHARON_ESP])]))
        iked = self.openiked(self.b, ikedPolicy("passive", B, A, B_INNER, A_INNER, auth=""), localKey=ikedKey)
        iked.addPeerPublicKey(A, charonKey)
        charon.start()
        iked.start()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "initiate failed:\n" + output)
        sa = iked.waitForIkeSa(child=True)
        self.assertEqual(sa["peerId"], "IPV4/" + A)

    def test_ipv6(self):
        """
        PSK over IPv6 outer addresses (charon floats to port 4500 in
        IKE_AUTH even without a NAT, as both announce MOBIKE/NAT-T).
        """
        a6, b6 = "2001:db8:1::1", "2001:db8:1::2"
        charon = self.charon(self.a)
        charon.addConnection(pskConnection("peer", a6, b6, proposals=[CHARON_IKE]))
        charon.addSecret(Secret(PSK, ids=[a6, b6]))
        iked = self.openiked(self.b, ikedPolicy("passive", b6, a6, "2001:db8:2::/64", "2001:db8:3::/64"))
        charon.start()
        iked.start()
        ok, output = charon.initiate(ike="peer")
        self.labAssert(ok, "initiate failed:\n" + output)
        sa = iked.waitForIkeSa()
        self.assertEqual((sa["peerAddress"], sa["localAddress"], sa["peerPort"]), (a6, b6, 4500))
        self.assertEqual(sa["peerId"], "IPV6/" + a6)

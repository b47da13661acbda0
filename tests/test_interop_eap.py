"""
EAP-MSCHAPv2 in IKE_AUTH (RFC 7296 2.16) against strongSwan's charon 5.9.8
(eap-identity, eap-mschapv2 of libcharon-extra-plugins), in network
namespaces:

- charon as road warrior (eap-mschapv2, ikedtx's server certificate
  checked, a virtual IP and DNS requested) against ikedtx with C{eap
  "mschap-v2"} and C{user} lines: both hold the same SAs, the virtual IP
  pings through the user-space datapath; a wrong password is refused and
  counted;
- ikedtx as EAP client (the C{user} line named like its srcid) against
  charon as EAP server;
- charon set up as the Windows 10/11 native client: its default proposals
  (AES-CBC/3DES with SHA-1/SHA-256 and MODP-1024, ESP AES-CBC with SHA-1),
  its IP address as IDi, EAP-MSCHAPv2, a server certificate carrying
  serverAuth and the IKE intermediate EKU (1.3.6.1.5.5.8.2.2), IKE_AUTH in
  fragments;
- charon set up as macOS/iOS with the username (EAP) profile: Apple's
  proposals, an FQDN as IDi, no CERTREQ, MOBIKE.
"""

from twisted.trial.unittest import TestCase

from ikedtx.control import sync

from ikedtx.testing.lab import Auth, CertificateAuthority, Child, Connection, Secret, poll
from ikedtx.testing.lab.charon import PLUGINS

from tests.interop import A, A_FQDN, A_INNER, B, B_INNER
from tests.test_interop_clients import APPLE_ESP, APPLE_IKE
from tests.test_interop_userspace import UserspaceMixin, ping

POOL = "10.77.0.0/29"
DNS = "10.1.0.53"
USER, PASSWORD = "alice", "eap-pa55word-0123"
EAP_PLUGINS = ["eap-identity", "eap-mschapv2"]
IKE_INTERMEDIATE_EKU = "1.3.6.1.5.5.8.2.2"
#: Windows 10/11's default IKE and ESP proposals (strongSwan's Windows
#: client interoperability page: AES-CBC/3DES, SHA-1/SHA-256, DH group 2).
WINDOWS_IKE = ["aes256-sha1-modp1024", "aes128-sha1-modp1024", "3des-sha1-modp1024",
               "aes256-sha256-modp1024"]
WINDOWS_ESP = ["aes256-sha1", "aes128-sha1", "3des-sha1"]


def stats(ours):
    return {c["name"]: c["value"] for c in sync.showStats(ours.socketPath)["counters"]}


def serverConfig(users=((USER, PASSWORD),), ike="", child=""):
    lines = "".join('user "%s" "%s"\n' % u for u in users)
    return lines + ('ikev2 "rw" passive esp from %s to dynamic local %s %s %s srcid %s eap "mschap-v2" '
                    'config address %s config name-server %s\n' % (A_INNER, A, ike, child, A_FQDN, POOL, DNS))


class EAPMixin(UserspaceMixin):
    def credentials(self, keyType="ecdsa-p256", extraUsages=()):
        self.ca = CertificateAuthority("ikedtx EAP CA", keyType=keyType)
        self.certA = self.ca.issue("moon", keyType=keyType, ips=[A], dns=[A_FQDN], extraUsages=extraUsages)
        self.certB = self.ca.issue("sun", keyType=keyType, ips=[B], dns=["sun.example"])

    def startServer(self, config, extra=()):
        ours = self.ikedtx(self.a, config, extraArgs=["--kernel", "userspace", "--listen", A] + list(extra))
        ours.addCA(self.ca.cert)
        ours.addCertificate(self.certA)
        ours.start()
        return ours

    def startRoadWarrior(self, password=PASSWORD, proposals=("aes128gcm16-prfsha256-x25519",),
                         esp=("aes128gcm16",), identity="sun.example", **options):
        charon = self.charon(self.b, libipsec=True, plugins=["kernel-libipsec"] + PLUGINS + EAP_PLUGINS)
        charon.addCA(self.ca.cert)
        charon.addSecret(Secret(password, ids=[USER], kind="eap"))
        charon.addConnection(Connection(
            "rw", local_addrs=[B], remote_addrs=[A], proposals=list(proposals),
            local=Auth("eap-mschapv2", id=identity, eap_id=USER),
            remote=Auth("pubkey", id=A_FQDN, cacerts=[self.ca.cert]), vips=["0.0.0.0"],
            children=[Child("net", local_ts=["dynamic"], remote_ts=[A_INNER + "/32"], esp_proposals=list(esp))],
            **options))
        charon.start()
        return charon

    def assertUp(self, ours, charon):
        mine, theirs = self.assertSameSAs(ours, charon)
        self.labAssertEqual(theirs.get("local-vips"), ["10.77.0.1"], "charon's virtual IPs: %r" % (theirs,))
        self.labAssertEqual(ping(self.b, "10.77.0.1", A_INNER, 3), 3, "ping through the EAP-authenticated tunnel")
        return mine, theirs


class CharonRoadWarriorEAPTests(EAPMixin, TestCase):
    def test_mschapv2(self):
        """
        charon authenticates ikedtx's certificate, then itself with
        EAP-MSCHAPv2; it gets the pool's first address and the name server,
        and pings through; ikedtx counts one EAP success.
        """
        self.hosts()
        self.credentials()
        ours = self.startServer(serverConfig())
        charon = self.startRoadWarrior()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        mine, theirs = self.assertUp(ours, charon)
        self.labAssertEqual(theirs.get("remote-id"), A_FQDN, "charon's view: %r" % (theirs,))
        self.labAssertEqual(mine.get("eapId"), USER, "ikectl show sa: %r" % (mine,))
        self.labAssertEqual(stats(ours).get("ikedtx_eap_success"), 1, "ikedtx's stats")
        log = charon.log()
        # charon's view of the exchanges: our certificate AUTH with the
        # EAP-Identity Request, the MS-CHAPv2 rounds, the address and the
        # name server in the last IKE_AUTH response.
        for seen in ("[ IDr CERT AUTH EAP/REQ/ID ]", "EAP/REQ/MSCHAPV2", "EAP/SUCC", "CPRP(ADDR DNS)"):
            self.labAssert(seen in log, "charon's log does not show %s" % (seen,))

    def test_wrongPassword(self):
        """
        A wrong password: AUTHENTICATION_FAILED, no SA on either side, the
        failure counted, and the password in no log line of ikedtx.
        """
        self.hosts()
        self.credentials()
        ours = self.startServer(serverConfig())
        charon = self.startRoadWarrior(password="not-" + PASSWORD)
        ok, output = charon.initiate(child="net")
        self.labAssert(not ok, "charon's initiate succeeded with a wrong password:\n" + output)
        self.labAssertEqual(ours.showSa(), [], "ikedtx keeps an SA")
        self.labAssertEqual(stats(ours).get("ikedtx_eap_failures"), 1, "ikedtx's stats")
        self.labAssert(PASSWORD not in ours.log(), "ikedtx logged the password")
        # RFC 3748 4.2: charon got our EAP Failure (not only a Notify it
        # would have read first) and says so.
        log = charon.log()
        self.labAssert("received EAP_FAILURE, EAP authentication failed" in log,
                       "charon's log does not show the EAP Failure it received")
        self.labAssert("EAP/FAIL" in log, "charon's log shows no IKE_AUTH response with EAP/FAIL")
        self.labAssert("sending EAP Failure" in ours.logWith("sending EAP Failure"),
                       "ikedtx did not log its EAP Failure")


class WindowsClientEAPTests(EAPMixin, TestCase):
    def test_windowsProfile(self):
        """
        charon with Windows' proposals, IDi its IP address, EAP-MSCHAPv2,
        IKE fragmentation and a small fragment size; ikedtx's RSA server
        certificate carries serverAuth and the IKE intermediate EKU and
        the IKE_AUTH with it goes out in fragments.
        """
        self.hosts()
        self.credentials(keyType="rsa-2048", extraUsages=[IKE_INTERMEDIATE_EKU])
        config = "set fragmentation\n" + serverConfig(
            ike="ikesa enc aes-256 auth hmac-sha1 prf hmac-sha1 group modp1024",
            child="childsa enc aes-256 auth hmac-sha1")
        ours = self.startServer(config)
        charon = self.startRoadWarrior(proposals=WINDOWS_IKE, esp=WINDOWS_ESP, identity=B, fragmentation="yes")
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        mine, theirs = self.assertUp(ours, charon)
        self.labAssertEqual(theirs.get("encr-alg"), "AES_CBC", "charon's IKE SA: %r" % (theirs,))
        self.labAssertEqual(theirs.get("dh-group"), "MODP_1024", "charon's IKE SA: %r" % (theirs,))
        self.labAssert("received fragment #1" in charon.log(), "charon received no IKE fragments from ikedtx")


class AppleClientEAPTests(EAPMixin, TestCase):
    def test_appleUsernameProfile(self):
        """
        charon set up as macOS/iOS with the username profile
        (C{AuthenticationMethod = None}, C{ExtendedAuthEnabled = 1}): Apple's
        default IKE and ESP proposals, an FQDN as IDi, no CERTREQ, MOBIKE,
        EAP-MSCHAPv2 after ikedtx's RSA certificate: the first of Apple's
        proposals that iked's defaults accept is chosen, MOBIKE is
        negotiated, and the virtual address pings through.
        """
        self.hosts()
        self.credentials(keyType="rsa-2048")
        ours = self.startServer("set mobike\n" + serverConfig())
        charon = self.startRoadWarrior(proposals=APPLE_IKE, esp=APPLE_ESP, identity="iphone.example",
                                       mobike="yes", send_certreq="no")
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        mine, theirs = self.assertUp(ours, charon)
        self.labAssertEqual((theirs["encr-alg"], theirs.get("encr-keysize"), theirs["integ-alg"], theirs["dh-group"]),
                            ("AES_CBC", "256", "HMAC_SHA2_256_128", "MODP_2048"), "charon's IKE SA: %r" % (theirs,))
        (childSA,) = theirs["child-sas"]
        self.labAssertEqual((childSA["encr-alg"], childSA.get("encr-keysize"), childSA["integ-alg"]),
                            ("AES_CBC", "256", "HMAC_SHA2_256_128"), "charon's Child SA: %r" % (childSA,))
        self.labAssertEqual(mine.get("eapId"), USER, "ikectl show sa: %r" % (mine,))
        self.labAssert("peer supports MOBIKE" in charon.log(), "ikedtx announced no MOBIKE_SUPPORTED")


class IkedtxEAPClientTests(EAPMixin, TestCase):
    def charonServer(self):
        charon = self.charon(self.b, libipsec=True, plugins=["kernel-libipsec"] + PLUGINS + EAP_PLUGINS)
        charon.addCA(self.ca.cert)
        charon.addSecret(Secret(PASSWORD, ids=[USER], kind="eap"))
        charon.addConnection(Connection(
            "gw", local_addrs=[B], remote_addrs=[A], proposals=["aes128gcm16-prfsha256-x25519"],
            local=Auth("pubkey", id="sun.example", certs=[self.certB]),
            remote=Auth("eap-mschapv2", id="%any", eap_id="%any"),
            children=[Child("net", local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"],
                            esp_proposals=["aes128gcm16"])]))
        charon.start()
        return charon

    def test_clientTakesEAPFailure(self):
        """
        ikedtx as EAP client with a wrong password: charon answers with an
        EAP Failure; ikedtx logs it, keeps no SA, and initiates the active
        policy again after its backoff.
        """
        self.hosts()
        self.credentials()
        charon = self.charonServer()
        config = ('user "%s" "%s"\n'
                  'ikev2 "gw" active esp from %s to %s local %s peer %s '
                  'ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 childsa enc aes-128-gcm '
                  'srcid %s dstid sun.example eap "mschap-v2"\n' % (USER, "not-" + PASSWORD, A_INNER, B_INNER, A, B,
                                                                     USER))
        ours = self.ikedtx(self.a, config, extraArgs=["--kernel", "userspace", "--listen", A])
        ours.addCA(self.ca.cert)
        ours.start()
        log = ours.logWith("gw: initiating again in", timeout=20)
        self.labAssert("received EAP Failure" in log, "ikedtx did not log the EAP Failure it received")
        self.labAssert("gw: initiating again in" in log, "ikedtx does not initiate its active policy again")
        self.labAssertEqual(ours.showSa(), [], "ikedtx keeps an SA")
        self.labAssert("EAP/FAIL" in charon.log(), "charon's log shows no EAP Failure sent")
        self.labAssert(PASSWORD not in log, "ikedtx logged the password")

    def test_clientAgainstCharon(self):
        """
        ikedtx with C{eap "mschap-v2"} on an active policy and the C{user}
        line of its srcid authenticates to charon (eap-mschapv2 server,
        EAP-Identity asked) after checking charon's certificate.
        """
        self.hosts()
        self.credentials()
        charon = self.charonServer()
        config = ('user "%s" "%s"\n'
                  'ikev2 "gw" active esp from %s to %s local %s peer %s '
                  'ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 childsa enc aes-128-gcm '
                  'srcid %s dstid sun.example eap "mschap-v2"\n' % (USER, PASSWORD, A_INNER, B_INNER, A, B, USER))
        ours = self.ikedtx(self.a, config, extraArgs=["--kernel", "userspace", "--listen", A])
        ours.addCA(self.ca.cert)
        ours.start()
        charon.waitForIkeSa(child="net", timeout=20)
        self.assertSameSAs(ours, charon)
        self.labAssertEqual(ping(self.a, A_INNER, B_INNER, 3), 3, "ping through the tunnel ikedtx set up with EAP")


class IkedtxEAPClientOCSPTests(EAPMixin, TestCase):
    """
    ikedtx as EAP client with C{set ocsp}: charon's (the EAP server's)
    certificate is checked with an OpenSSL OCSP responder in ikedtx's
    namespace (the lab of L{tests.test_interop_ocsp}) before any EAP
    Response goes out.
    """

    def startResponder(self, revoked):
        from types import SimpleNamespace

        from tests.test_interop_ocsp import CharonOCSPTests

        CharonOCSPTests.startResponder(self, SimpleNamespace(ca=self.ca, certB=self.certB), revoked)

    def start(self, revoked):
        from tests.test_interop_ocsp import PORT

        self.hosts()
        self.credentials()
        self.startResponder(revoked)
        charon = IkedtxEAPClientTests.charonServer(self)
        config = ('set ocsp "http://%s:%d/" tolerate 300\n'
                  'user "%s" "%s"\n'
                  'ikev2 "gw" active esp from %s to %s local %s peer %s '
                  'ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519 childsa enc aes-128-gcm '
                  'srcid %s dstid sun.example eap "mschap-v2"\n' % (A, PORT, USER, PASSWORD, A_INNER, B_INNER, A, B,
                                                                     USER))
        ours = self.ikedtx(self.a, config, extraArgs=["--kernel", "userspace", "--listen", A])
        ours.addCA(self.ca.cert)
        ours.start()
        return ours, charon

    def test_good(self):
        """
        charon's certificate is good: EAP runs and the SAs come up on both
        sides; ikedtx logged the status.
        """
        ours, charon = self.start(revoked=False)
        charon.waitForIkeSa(child="net", timeout=20)
        self.assertSameSAs(ours, charon)
        self.labAssert("CN=sun,O=ikedtx lab is good" in ours.log(), "ikedtx logged no OCSP status")

    def test_revoked(self):
        """
        charon's certificate is revoked: ikedtx refuses it before sending
        any EAP Response (charon never sees one), keeps no SA and says why.
        """
        ours, charon = self.start(revoked=True)
        log = ours.logWith("refused: revoked", timeout=20)
        self.labAssert("refused: revoked" in log, "ikedtx did not log the revocation")
        poll(lambda: ours.showSa() == [], what=lambda: "ikedtx's SA gone: %r" % (ours.showSa(),))
        self.labAssert("EAP/RES" not in charon.log(), "ikedtx sent charon an EAP Response")

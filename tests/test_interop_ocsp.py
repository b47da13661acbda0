"""
OCSP against real peers in network namespaces: ikedtx (host a, C{set ocsp})
is the responder of IKE_AUTH to strongSwan's charon (host b), which
presents its certificate; an OpenSSL OCSP responder (C{openssl ocsp -index
... -port}, signing as the CA) runs in host a's namespace and says whether
charon's certificate is good or revoked. A responder that cannot be
reached refuses the peer too, as iked does. ikedtx as initiator checks
charon's certificate the same way; a road warrior gets its address after
the check; a responder signing with another CA's certificate is trusted
only when listed in ocsp/responder.crt.
"""

import datetime
import os

from twisted.trial.unittest import TestCase

from ikedtx.control.sync import ControlError
from ikedtx.testing.lab import Auth, CertificateAuthority, Child, Connection, poll
from ikedtx.testing.lab._util import readText, writeFile

from tests.interop import A, A_INNER, B, Credentials, ikedtxPolicy
from tests import test_interop_charon
from tests.test_interop_charon import IKEDTX_CHILD, CharonMixin

PORT = 8888


def indexLine(certificate, revoked=False):
    """
    One line of an OpenSSL CA index (C{index.txt}) for C{certificate}.
    """
    cert = certificate.cert
    expiry = cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    when = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)).strftime("%y%m%d%H%M%SZ")
    subject = "/" + "/".join(attribute.rfc4514_string() for attribute in cert.subject)
    return "%s\t%s\t%s\t%X\tunknown\t%s\n" % ("R" if revoked else "V", expiry, when if revoked else "",
                                              cert.serial_number, subject)


class CharonOCSPTests(CharonMixin, TestCase):
    assertNoSAs = test_interop_charon.CharonFailureTests.assertNoSAs

    def startResponder(self, credentials, revoked, signer=None):
        """
        C{openssl ocsp} on host a, port L{PORT}, knowing charon's
        certificate as good or revoked; it signs as the CA, or as
        C{signer} (a lab Certificate).
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        paths = {name: os.path.join(directory, name) for name in ("ca.pem", "ca.key", "index.txt", "log")}
        signer = signer or credentials.ca.cert
        paths["signer.pem"] = os.path.join(directory, "signer.pem")
        with open(paths["ca.pem"], "wb") as f:
            f.write(credentials.ca.cert.certPEM)
        with open(paths["signer.pem"], "wb") as f:
            f.write(signer.certPEM)
        with open(paths["ca.key"], "wb") as f:
            f.write(signer.key.privatePEM)
        with open(paths["index.txt"], "w") as f:
            f.write(indexLine(credentials.certB, revoked))
        log = open(paths["log"], "wb")
        self.addCleanup(log.close)
        self.a.popen(["openssl", "ocsp", "-index", paths["index.txt"], "-port", str(PORT), "-rsigner", paths["signer.pem"],
                      "-rkey", paths["ca.key"], "-CA", paths["ca.pem"], "-ndays", "1"], stdout=log, stderr=log)
        poll(lambda: "ACCEPT" in readText(paths["log"]) or "Waiting" in readText(paths["log"]), 10.0,
             what=lambda: "openssl ocsp did not start: " + readText(paths["log"]))
        self.responderLog = paths["log"]

    def start(self, revoked=False, responder=True, port=PORT, signer=None, trusted=()):
        self.hosts()
        credentials = Credentials("ecdsa")
        if responder:
            self.startResponder(credentials, revoked, signer)
        charon = self.startCharon(credentials)
        config = 'set ocsp "http://%s:%d/" tolerate 300\n' % (A, port) + ikedtxPolicy(credentials, child=IKEDTX_CHILD)
        ours = self.startIkedtx(config)
        credentials.installIkedtx(ours)
        if trusted:
            writeFile(os.path.join(ours.etc, "ocsp", "responder.crt"), b"".join(c.certPEM for c in trusted))
        ours.start()
        return ours, charon

    def test_good(self):
        """
        charon's certificate is good: the IKE SA and its Child SA come up
        on both sides, and ikedtx logged the status it got.
        """
        ours, charon = self.start()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        self.assertSameSAs(ours, charon)
        self.labAssert("CN=sun,O=ikedtx lab is good" in ours.log(), "ikedtx logged no OCSP status")

    def test_revoked(self):
        """
        charon's certificate is revoked: ikedtx answers AUTHENTICATION_FAILED,
        logs why, and neither side keeps an SA.
        """
        ours, charon = self.start(revoked=True)
        ok, output = charon.initiate(child="net")
        self.assertFalse(ok)
        self.labAssert("AUTHENTICATION_FAILED" in output, output)
        self.assertNoSAs(ours, charon)
        self.labAssert("refused: revoked" in ours.log(), "ikedtx did not log the revocation")

    def test_unreachable(self):
        """
        No responder listens: as iked, the certificate is not accepted
        (AUTHENTICATION_FAILED), and the reason is logged.
        """
        ours, charon = self.start(responder=False, port=PORT + 1)
        ok, output = charon.initiate(child="net")
        self.assertFalse(ok)
        self.labAssert("AUTHENTICATION_FAILED" in output, output)
        self.assertNoSAs(ours, charon)
        self.labAssert("refused: error" in ours.log(), "ikedtx did not log the unreachable responder")

    def test_initiatorGood(self):
        """
        ikedtx initiates: charon's certificate (as responder) is asked
        about and good; both sides hold the SAs.
        """
        ours, charon = self.start()
        ours.initiate("peer")
        self.assertSameSAs(ours, charon)
        self.labAssert("CN=sun,O=ikedtx lab is good" in ours.log(), "ikedtx logged no OCSP status")

    def test_initiatorRevoked(self):
        """
        ikedtx initiates to charon, whose certificate is revoked: the
        initiate fails, charon hears AUTHENTICATION_FAILED, no SA is left.
        """
        ours, charon = self.start(revoked=True)
        self.assertRaises(ControlError, ours.initiate, "peer")
        self.assertNoSAs(ours, charon)
        self.labAssert("refused: revoked" in ours.log(), "ikedtx did not log the revocation")

    def test_trustedResponder(self):
        """
        The responder signs with a certificate of another CA: refused,
        unless it is in ikedtx's ocsp/responder.crt (iked's trust list).
        """
        responder = CertificateAuthority("ikedtx OCSP responder CA").issue("responder")
        ours, charon = self.start(signer=responder)
        ok, output = charon.initiate(child="net")
        self.assertFalse(ok)
        self.labAssert("refused: error: responder certificate CN=responder,O=ikedtx lab not issued by" in ours.log(),
                       "ikedtx did not log the untrusted responder")
        self.assertNoSAs(ours, charon)

    def test_trustedResponderListed(self):
        """
        The same responder listed in ocsp/responder.crt: good, the SAs are up.
        """
        responder = CertificateAuthority("ikedtx OCSP responder CA").issue("responder")
        ours, charon = self.start(signer=responder, trusted=[responder])
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        self.assertSameSAs(ours, charon)

    def test_roadWarrior(self):
        """
        A road warrior with a good certificate asks for a virtual address:
        the CP reply comes after the status, with the pool's first address.
        """
        self.hosts()
        credentials = Credentials("ecdsa")
        self.startResponder(credentials, False)
        charon = self.charon(self.b, libipsec=True)
        charon.addCA(credentials.ca.cert)
        charon.addConnection(Connection(
            "rw", local_addrs=[B], remote_addrs=[A], proposals=["aes128gcm16-prfsha256-x25519"],
            local=Auth("pubkey", id=credentials.idB, certs=[credentials.certB]),
            remote=Auth("pubkey", id=credentials.idA, cacerts=[credentials.ca.cert]), vips=["0.0.0.0"],
            children=[Child("net", local_ts=["dynamic"], remote_ts=[A_INNER + "/32"], esp_proposals=["aes128gcm16"])]))
        charon.start()
        ours = self.startIkedtx('set ocsp "http://%s:%d/"\nikev2 "rw" passive esp from %s to dynamic local %s '
                                'srcid %s ecdsa256 config address 10.77.0.0/29\n' % (A, PORT, A_INNER, A, credentials.idA))
        credentials.installIkedtx(ours)
        ours.start()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        [theirs] = charon.ikeSas()
        self.labAssertEqual(theirs.get("local-vips"), ["10.77.0.1"], "charon's virtual IPs: %r" % (theirs,))
        self.labAssert("CN=sun,O=ikedtx lab is good" in ours.log(), "ikedtx logged no OCSP status")

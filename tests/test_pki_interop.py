"""
The round trip of C{ikectl ca ...} with real daemons in network namespaces:
a CA made with L{ikedtx.pki.command.runCa} (RSA-2048 keys, ikectl's
defaults), host certificates for two ikedtx daemons and for strongSwan's
charon, installed with C{ca NAME install PATH} and C{ca NAME certificate
HOST install PATH} (charon gets the same files in its swanctl
directories); the daemons negotiate with those certificates, then one host
is revoked, the new CRL installed, and its next negotiation is refused.
"""

import io
import os
import time
import tarfile

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.trial.unittest import TestCase

from ikedtx.control.commands import Reload
from ikedtx.control.sync import ControlError
from ikedtx.pki.ca import CertificateAuthority
from ikedtx.pki.command import runCa

from tests.interop import A, A_FQDN, A_INNER, B, B_FQDN, B_INNER, InteropMixin
from ikedtx.testing.lab import CRL, Auth, Certificate, Child, Connection, KeyPair

IKE = "ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519"
CHILD = "childsa enc aes-128-gcm"
CHARON_IKE = "aes128gcm16-prfsha256-x25519"
CHARON_ESP = "aes128gcm16"


def policy(local, peer, localInner, peerInner, srcid, dstid):
    """
    An iked.conf policy authenticating with RSA certificates.
    """
    return ('ikev2 "peer" passive esp from %s to %s local %s peer %s %s %s srcid %s dstid %s rsa\n' % (
        localInner, peerInner, local, peer, IKE, CHILD, srcid, dstid))


class PKIRoundTripMixin(InteropMixin):
    """
    A CA directory of the test and C{ikectl} run on it.
    """

    def setUpCA(self):
        self.sslDir = os.path.abspath(self.mktemp())
        os.makedirs(self.sslDir)
        self.ikectl("ca vpn create password capass")

    def ikectl(self, line):
        stdout, stderr = io.StringIO(), io.StringIO()
        status = runCa(line.split(), stdout, stderr, sslDir=self.sslDir, etcDir="/nonexistent/iked",
                       exportDir=self.sslDir)
        self.assertEqual((status, stderr.getvalue()), (0, ""), "ikectl %s: %s" % (line, stdout.getvalue()))
        return stdout.getvalue()

    def ca(self):
        return CertificateAuthority("vpn", sslDir=self.sslDir)

    def installInto(self, peer, host):
        """
        C{ca vpn install ETC} and C{ca vpn certificate HOST install ETC}
        into an ikedtx peer's iked tree.
        """
        self.ikectl("ca vpn install " + peer.etc)
        self.ikectl("ca vpn certificate %s install %s" % (host, peer.etc))

    def labCertificate(self, host):
        """
        C{host}'s certificate and key from the CA directory, as the lab's
        objects for charon.
        """
        ca = self.ca()
        with open(ca.hostKeyPath(host), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        return Certificate(ca.hostCertificate(host), KeyPair(key, "rsa-2048"))

    def labCA(self):
        return Certificate(self.ca().certificate(), None)

    def labCRL(self):
        with open(self.ca().crlPath, "rb") as f:
            return CRL(x509.load_pem_x509_crl(f.read()))

    def refreshCRL(self, ours):
        """
        Install the CA's current CRL into an ikedtx peer and make it reread
        its tree (C{ikectl reload}).
        """
        self.ikectl("ca vpn install " + ours.etc)
        ours.call(Reload)


class IkedtxPairTests(PKIRoundTripMixin, TestCase):
    """
    Two ikedtx daemons with certificates from C{ikectl ca}.
    """

    def test_negotiateThenRevoke(self):
        """
        moon's tree comes from C{install}, sun's from unpacking C{ca vpn
        certificate sun.example export} as ikectl(8)'s EXAMPLES do (C{tar
        -C /etc/iked -xzpf}); they negotiate, then sun is revoked and moon
        refuses its next negotiation.
        """
        self.hosts()
        self.setUpCA()
        self.ikectl("ca vpn certificate %s create" % (A_FQDN,))
        self.ikectl("ca vpn certificate %s create" % (B_FQDN,))
        moon = self.ikedtx(self.a, policy(A, B, A_INNER, B_INNER, A_FQDN, B_FQDN), name="moon",
                           extraArgs=["--kernel", "decoupled", "--listen", A])
        sun = self.ikedtx(self.b, policy(B, A, B_INNER, A_INNER, B_FQDN, A_FQDN), name="sun",
                          extraArgs=["--kernel", "decoupled", "--listen", B])
        self.installInto(moon, A_FQDN)
        out = self.ikectl("ca vpn certificate %s export peer %s password exportpw" % (B_FQDN, A))
        self.assertEqual(out, "exported files in %s\n" % (os.path.join(self.sslDir, B_FQDN + ".tgz"),))
        with tarfile.open(os.path.join(self.sslDir, B_FQDN + ".tgz")) as archive:
            archive.extractall(sun.etc, filter="data")
        moon.start()
        sun.start()

        spiI, spiR = moon.initiate("peer")
        mine = self.ourOnlySa(moon)
        theirs = self.ourOnlySa(sun)
        self.assertEqual((mine["spiI"], mine["spiR"]), (spiI, spiR))
        self.assertEqual((theirs["spiI"], theirs["spiR"]), (spiI, spiR))
        self.assertEqual(mine["peerId"], "FQDN/" + B_FQDN)
        self.assertEqual(theirs["peerId"], "FQDN/" + A_FQDN)
        moon.deleteIkeSA(spiI)

        self.ikectl("ca vpn certificate %s revoke" % (B_FQDN,))
        self.refreshCRL(moon)
        error = self.assertRaises(ControlError, moon.initiate, "peer")
        # The privilege-separated worker's line reaches the log a moment later.
        deadline = time.monotonic() + 10
        while "certificate revoked" not in moon.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.labAssert("certificate revoked" in moon.log(), "moon did not refuse sun's revoked certificate: %s"
                       % (error,))
        self.labAssertEqual([sa for sa in moon.showSa() if sa["state"] == "VALID"], [], "moon kept an IKE SA")


class CharonTests(PKIRoundTripMixin, TestCase):
    """
    ikedtx (moon) and charon (sun) with certificates from C{ikectl ca}.
    """

    def startPair(self):
        self.hosts()
        self.setUpCA()
        self.ikectl("ca vpn certificate %s create" % (A_FQDN,))
        self.ikectl("ca vpn certificate %s create" % (B_FQDN,))
        charon = self.charon(self.b, libipsec=True)
        charon.addCA(self.labCA())
        charon.addCRL(self.labCRL())
        charon.addConnection(Connection(
            "peer", local_addrs=[B], remote_addrs=[A], proposals=[CHARON_IKE],
            local=Auth("pubkey", id=B_FQDN, certs=[self.labCertificate(B_FQDN)]),
            remote=Auth("pubkey", id=A_FQDN, cacerts=[self.labCA()]),
            children=[Child("net", local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"],
                            esp_proposals=[CHARON_ESP])]))
        charon.start()
        ours = self.startIkedtx(policy(A, B, A_INNER, B_INNER, A_FQDN, B_FQDN))
        self.installInto(ours, A_FQDN)
        ours.start()
        return ours, charon

    def established(self, charon):
        return [sa for sa in charon.listSas() if sa["state"] == "ESTABLISHED"]

    def test_ikedtxRefusesRevokedCharon(self):
        """
        ikedtx initiates and verifies charon's certificate; after charon's
        certificate is revoked, the next negotiation is refused.
        """
        ours, charon = self.startPair()
        spiI, spiR = ours.initiate("peer")
        sas = self.established(charon)
        self.labAssertEqual(len(sas), 1, "charon should hold one IKE SA")
        self.assertEqual((sas[0]["local-id"], sas[0]["remote-id"]), (B_FQDN, A_FQDN))
        self.labAssert("authentication of 'moon.example' with RSA" in charon.log(),
                       "charon did not verify moon's certificate")
        ours.deleteIkeSA(spiI)

        self.ikectl("ca vpn certificate %s revoke" % (B_FQDN,))
        self.refreshCRL(ours)
        self.assertRaises(ControlError, ours.initiate, "peer")
        self.labAssert("certificate revoked" in ours.log(), "ikedtx did not refuse charon's revoked certificate")
        self.labAssertEqual(self.established(charon), [], "charon kept an IKE SA")

    def test_charonRefusesRevokedIkedtx(self):
        """
        charon initiates and verifies ikedtx's certificate (with the CA's
        CRL loaded); after ikedtx's certificate is revoked and charon has
        the new CRL, charon refuses it.
        """
        ours, charon = self.startPair()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        self.labAssert("authentication of 'moon.example' with RSA" in output, output)
        charon.terminate(ike="peer", force=True)

        self.ikectl("ca vpn certificate %s revoke" % (A_FQDN,))
        charon.addCRL(self.labCRL())
        charon.load()
        # charon's certificate cache still holds the first CRL, which it
        # would keep using while valid.
        charon.swanctl("--flush-certs")
        ok, output = charon.initiate(child="net")
        self.assertFalse(ok)
        self.labAssert("certificate was revoked" in output or "certificate was revoked" in charon.log(),
                       "charon did not refuse moon's revoked certificate:\n" + output)


OPENIKED_CHILD = "childsa enc aes-256 auth hmac-sha2-384"


class OpenIkedTests(PKIRoundTripMixin, TestCase):
    """
    ikedtx (moon) and openiked 7.2 (sun, with the lab's PF_KEY shim), both
    with certificates from C{ikectl ca} installed into their iked trees.
    """

    def startPair(self):
        self.hosts()
        self.setUpCA()
        self.ikectl("ca vpn certificate %s create" % (A_FQDN,))
        self.ikectl("ca vpn certificate %s create" % (B_FQDN,))
        ikedPolicy = policy(B, A, B_INNER, A_INNER, B_FQDN, A_FQDN).replace(CHILD, OPENIKED_CHILD)
        iked = self.openiked(self.b, ikedPolicy)
        self.installInto(iked, B_FQDN)
        iked.start()
        ours = self.startIkedtx(policy(A, B, A_INNER, B_INNER, A_FQDN, B_FQDN).replace(CHILD, OPENIKED_CHILD))
        self.installInto(ours, A_FQDN)
        ours.start()
        return ours, iked

    def negotiate(self, ours, iked):
        spiI, spiR = ours.initiate("peer")
        sas = [sa for sa in iked.showSa() if sa["state"] == "ESTABLISHED"]
        self.labAssertEqual(len(sas), 1, "iked should hold one IKE SA:\n%s" % (iked.showSaText(),))
        self.assertEqual(sas[0]["peerId"], "FQDN/" + A_FQDN)
        self.assertEqual(self.ourOnlySa(ours)["peerId"], "FQDN/" + B_FQDN)
        ours.deleteIkeSA(spiI)

    def test_ikedtxRefusesRevokedOpenIked(self):
        ours, iked = self.startPair()
        self.negotiate(ours, iked)
        self.ikectl("ca vpn certificate %s revoke" % (B_FQDN,))
        self.refreshCRL(ours)
        self.assertRaises(ControlError, ours.initiate, "peer")
        self.labAssert("certificate revoked" in ours.log(), "ikedtx did not refuse iked's revoked certificate")

    def test_openIkedRefusesRevokedIkedtx(self):
        ours, iked = self.startPair()
        self.negotiate(ours, iked)
        self.ikectl("ca vpn certificate %s revoke" % (A_FQDN,))
        self.ikectl("ca vpn install " + iked.etc)
        iked.stop()
        iked.start()
        self.assertRaises(ControlError, ours.initiate, "peer")
        self.labAssert("certificate revoked" in iked.log(), "iked did not refuse our revoked certificate")

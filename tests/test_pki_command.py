"""
Tests for L{ikedtx.pki.command.runCa}: the C{ikectl ca ...} and C{show ca
...} command lines of ikectl(8), each command and each error (one line on
standard error, exit status 1, never a traceback).
"""

import datetime
import io
import os
import stat
import tarfile

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.auth import keys
from ikedtx.pki.ca import CertificateAuthority
from ikedtx.pki.command import runCa

NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


class CommandMixin:
    """
    runCa on a temporary SSL directory, iked tree and export directory.
    """

    def setUp(self):
        base = os.path.abspath(self.mktemp())
        self.sslDir = os.path.join(base, "ssl")
        self.etc = os.path.join(base, "etc")
        self.out = os.path.join(base, "out")
        self.base = base
        for d in (self.sslDir, self.out):
            os.makedirs(d)

    def ikectl(self, line):
        """
        Run C{ikectl LINE}; return (status, stdout, stderr).
        """
        stdout, stderr = io.StringIO(), io.StringIO()
        status = runCa(line.split(), stdout, stderr, sslDir=self.sslDir, etcDir=self.etc, exportDir=self.out,
                       now=lambda: NOW, hostname="gw.example.com")
        return status, stdout.getvalue(), stderr.getvalue()

    def ok(self, line):
        status, out, err = self.ikectl(line)
        self.assertEqual((status, err), (0, ""), line)
        return out

    def fails(self, line, message):
        """
        C{ikectl LINE} fails with exactly C{ikectl: MESSAGE} on one line.
        """
        status, out, err = self.ikectl(line)
        self.assertEqual((status, err), (1, "ikectl: %s\n" % (message,)), line)
        return out

    def ca(self, name="vpn"):
        return CertificateAuthority(name, sslDir=self.sslDir)


class CACommandTests(CommandMixin, SynchronousTestCase):
    def test_create(self):
        out = self.ok("ca vpn create keytype ecdsa256")
        self.assertEqual(out, "CA 'vpn' created in %s\n" % (os.path.join(self.sslDir, "vpn"),))
        cert = self.ca().certificate()
        self.assertEqual(cert.public_key().curve.name, "secp256r1")
        self.assertEqual(cert.not_valid_before_utc, NOW)

    def test_createDefaultRSA(self):
        self.ok("ca vpn create")
        self.assertEqual(self.ca().certificate().public_key().key_size, 2048)
        self.assertFalse(os.path.exists(self.ca().passwordPath))

    def test_createPassword(self):
        self.ok("ca vpn create password pw keytype ecdsa256")
        with open(self.ca().keyPath, "rb") as f:
            self.assertIn(b"ENCRYPTED", f.read())
        with open(self.ca().passwordPath) as f:
            self.assertEqual(f.read(), "pw\n")

    def test_createErrors(self):
        self.ok("ca vpn create keytype ecdsa256")
        self.fails("ca vpn create keytype ecdsa256", "CA 'vpn' already exists (%s)" % (self.ca().path,))
        self.fails("ca other create keytype dsa", "unknown key type 'dsa' (one of rsa, ecdsa256, ecdsa384, ecdsa521)")
        self.fails("ca other create password", "missing value for password")
        self.fails("ca other create password a password b", "password given twice")
        self.fails("ca other create bogus", "unknown argument: bogus")
        self.assertFalse(self.ca("other").exists())

    def test_delete(self):
        self.ok("ca vpn create keytype ecdsa256")
        self.assertEqual(self.ok("ca vpn delete"), "CA 'vpn' deleted\n")
        self.assertFalse(os.path.exists(self.ca().path))
        self.fails("ca vpn delete", "CA 'vpn' does not exist")

    def test_install(self):
        """
        Without PATH into the configured iked tree, with PATH there; the
        messages are ikectl's.
        """
        self.ok("ca vpn create keytype ecdsa256")
        out = self.ok("ca vpn install")
        self.assertEqual(out, "certificate for CA 'vpn' installed into %s\nCRL for CA 'vpn' installed to %s\n" % (
            os.path.join(self.etc, "ca", "ca.crt"), os.path.join(self.etc, "crls", "ca.crl")))
        other = os.path.join(self.base, "other")
        self.ok("ca vpn install " + other)
        self.assertTrue(os.path.exists(os.path.join(other, "ca", "ca.crt")))

    def test_export(self):
        self.ok("ca vpn create keytype ecdsa256")
        out = self.ok("ca vpn export peer 192.0.2.254 password x")
        self.assertEqual(out, "exported files in %s\n" % (os.path.join(self.out, "ca.tgz"),))
        with tarfile.open(os.path.join(self.out, "ca.tgz")) as archive:
            self.assertEqual(archive.extractfile("./export/peer.txt").read(), b"192.0.2.254")

    def test_unknownCA(self):
        """
        Every command on a CA that does not exist: one line, status 1.
        """
        for line in ("ca nope delete", "ca nope install", "ca nope export", "ca nope certificate 192.0.2.1 create",
                     "ca nope certificate 192.0.2.1 revoke", "ca nope key h create", "show ca nope certificates"):
            self.fails(line, "CA 'nope' does not exist")

    def test_grammarErrors(self):
        self.fails("", "missing command")
        self.fails("bogus", "unknown argument: bogus")
        self.fails("ca", "missing CA name")
        self.fails("ca vpn", "missing command")
        self.fails("ca vpn frobnicate", "unknown argument: frobnicate")
        self.fails("ca vpn c", "ambiguous argument: c")
        self.fails("ca vpn delete now", "unknown argument: now")
        self.fails("ca ../x create", "invalid CA name '../x'")
        self.fails("show", "missing ca")
        self.fails("show ca vpn", "missing certificates")

    def test_unwritableSSLDirectory(self):
        """
        An operating system error is one line too.
        """
        blocker = os.path.join(self.base, "file")
        with open(blocker, "w") as f:
            f.write("x")
        stdout, stderr = io.StringIO(), io.StringIO()
        status = runCa(["ca", "vpn", "create", "keytype", "ecdsa256"], stdout, stderr, sslDir=blocker)
        self.assertEqual(status, 1)
        self.assertEqual(len(stderr.getvalue().splitlines()), 1)
        self.assertTrue(stderr.getvalue().startswith("ikectl: %s/vpn: " % (blocker,)), stderr.getvalue())


class CertificateCommandTests(CommandMixin, SynchronousTestCase):
    def setUp(self):
        CommandMixin.setUp(self)
        self.ok("ca vpn create keytype ecdsa256")

    def test_createAndAbbreviations(self):
        """
        Keywords may be abbreviated as far as they stay unambiguous.
        """
        out = self.ok("ca vpn cert 192.0.2.1 cr serv keytype ecdsa256")
        self.assertEqual(out, "certificate for '192.0.2.1' created (serial 1)\n")
        cert = self.ca().hostCertificate("192.0.2.1")
        eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        self.assertEqual(eku[0], ExtendedKeyUsageOID.SERVER_AUTH)
        self.assertNotIn(ExtendedKeyUsageOID.CLIENT_AUTH, eku)

    def test_usages(self):
        for i, (word, oid) in enumerate([("client", ExtendedKeyUsageOID.CLIENT_AUTH),
                                         ("ocsp", ExtendedKeyUsageOID.OCSP_SIGNING)]):
            host = "192.0.2.%d" % (i + 1,)
            self.ok("ca vpn certificate %s create %s keytype ecdsa256" % (host, word))
            cert = self.ca().hostCertificate(host)
            self.assertEqual(list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value), [oid])
        self.fails("ca vpn certificate 192.0.2.9 create server client", "only one of server, client")

    def test_createErrors(self):
        self.ok("ca vpn certificate 192.0.2.1 create keytype ecdsa256")
        self.fails("ca vpn certificate 192.0.2.1 create keytype ecdsa256",
                   "certificate for '192.0.2.1' already exists in CA 'vpn'")
        self.fails("ca vpn certificate bad! create", "'bad!' is not an address, a host name or user@host")
        self.fails("ca vpn certificate", "missing host")
        self.fails("ca vpn certificate 192.0.2.1", "missing certificate command")

    def test_revoke(self):
        self.ok("ca vpn certificate 192.0.2.1 create keytype ecdsa256")
        out = self.ok("ca vpn certificate 192.0.2.1 revoke")
        self.assertEqual(out, "certificate for '192.0.2.1' (serial 1) revoked; new CRL in %s\n" % (self.ca().crlPath,))
        self.assertEqual([r.serial_number for r in self.ca().crl()], [1])
        self.fails("ca vpn certificate 192.0.2.1 revoke", "certificate for '192.0.2.1' is already revoked")
        self.fails("ca vpn certificate 192.0.2.2 revoke", "no certificate for '192.0.2.2' in CA 'vpn'")

    def test_install(self):
        self.ok("ca vpn certificate moon.example create keytype ecdsa256")
        out = self.ok("ca vpn certificate moon.example install")
        self.assertEqual(out.splitlines(), ["installed " + os.path.join(self.etc, p) for p in (
            "certs/moon.example.crt", "private/local.key", "local.pub")])
        self.fails("ca vpn certificate sun.example install", "no certificate for 'sun.example' in CA 'vpn'")

    def test_export(self):
        self.ok("ca vpn certificate moon.example create keytype ecdsa256")
        out = self.ok("ca vpn certificate moon.example export peer 192.0.2.254 password pw")
        self.assertEqual(out, "exported files in %s\n" % (os.path.join(self.out, "moon.example.tgz"),))
        with tarfile.open(os.path.join(self.out, "moon.example.tgz")) as archive:
            key = keys.loadPrivateKey(archive.extractfile("./private/local.key").read())
        self.assertTrue(keys.samePublicKey(key, self.ca().hostCertificate("moon.example").public_key()))
        self.fails("ca vpn certificate sun.example export", "no certificate for 'sun.example' in CA 'vpn'")

    def test_delete(self):
        self.ok("ca vpn certificate moon.example create keytype ecdsa256")
        self.assertEqual(self.ok("ca vpn certificate moon.example delete"),
                         "certificate and key for 'moon.example' deleted\n")
        self.assertEqual(self.ca().hosts(), [])
        self.fails("ca vpn certificate moon.example delete", "no certificate or key for 'moon.example' in CA 'vpn'")


class KeyCommandTests(CommandMixin, SynchronousTestCase):
    def setUp(self):
        CommandMixin.setUp(self)
        self.ok("ca vpn create keytype ecdsa256")

    def test_lifecycle(self):
        self.assertEqual(self.ok("ca vpn key h.example create keytype ecdsa384"), "key for 'h.example' created\n")
        self.assertEqual(self.ok("ca vpn key h.example create"), "key for 'h.example' exists already\n")
        self.assertEqual(self.ca().hostKey("h.example").curve.name, "secp384r1")
        self.ok("ca vpn key h.example install")
        local = os.path.join(self.etc, "private", "local.key")
        self.assertEqual(stat.S_IMODE(os.stat(local).st_mode), 0o600)
        self.assertEqual(self.ok("ca vpn key h.example delete"), "key for 'h.example' deleted\n")
        self.fails("ca vpn key h.example delete", "key for 'h.example' does not exist")
        self.fails("ca vpn key h.example install", "key for 'h.example' does not exist")

    def test_import(self):
        self.ok("ca vpn key a.example create keytype ecdsa256")
        source = self.ca().hostKeyPath("a.example")
        out = self.ok("ca vpn key b.example import " + source)
        self.assertEqual(out, "key for 'b.example' imported from %s\n" % (source,))
        self.assertTrue(keys.samePublicKey(self.ca().hostKey("a.example"), self.ca().hostKey("b.example")))
        self.fails("ca vpn key b.example import", "missing key file")
        status, out, err = self.ikectl("ca vpn key c.example import /nonexistent/key")
        self.assertEqual(status, 1)
        self.assertTrue(err.startswith("ikectl: could not access keyfile /nonexistent/key"), err)
        self.assertEqual(len(err.splitlines()), 1)


class ShowCommandTests(CommandMixin, SynchronousTestCase):
    def test_show(self):
        self.ok("ca vpn create keytype ecdsa256")
        self.ok("ca vpn certificate 192.0.2.1 create keytype ecdsa256")
        listing = self.ok("show ca vpn certificates")
        self.assertIn("subject=/CN=192.0.2.1\nserial=01\nstatus=valid\n", listing)
        self.assertTrue(listing.startswith("subject=/OU=vpn/CN=VPN CA\n"), listing)
        details = self.ok("show ca vpn certificates 192.0.2.1")
        self.assertIn("subjectAltName=IP:192.0.2.1\n", details)
        self.fails("show ca vpn certificates 192.0.2.2", "no certificate for '192.0.2.2' in CA 'vpn'")
        self.fails("show ca vpn certificates 192.0.2.1 extra", "unknown argument: extra")

# -*- test-case-name: tests.test_bench -*-
"""
What is measured and how both sides are set up: the suites, the
addresses and identities, the credentials and the iked.conf files of the
generator and of an ikedtx responder.
"""

import os

from ikedtx.testing.lab._util import makeIkedTree, writeFile


GEN_ADDRESS = "192.0.2.1"
RESP_ADDRESS = "192.0.2.2"
GEN_NET = "10.1.0.0/24"
RESP_NET = "10.2.0.0/24"
RESP_INNER = "10.2.0.1/32"
RESP_ID = "resp.bench.example"
PSK = "ikebench pre-shared key"


class Suite:
    """
    One row group: how both sides authenticate and which IKE proposal they
    use. The Child SA is always AES-256-GCM (ESP, tunnel mode).

    @ivar auth: C{"psk"} or iked.conf's certificate method keyword.
    @ivar keyType: the certificates' key type (ikedtx.testing.lab.pki), or None.
    @ivar group: iked.conf's group keyword; C{charonGroup} strongSwan's.
    """

    def __init__(self, name, description, auth, group, charonGroup, keyType=None, charon6Group=None):
        # charonGroup None: charon 5.9 cannot negotiate it (no RFC 9370);
        # charon6Group: strongSwan 6's name where it differs.
        self.name = name
        self.description = description
        self.auth = auth
        self.group = group
        self.charonGroup = charonGroup
        self.charon6Group = charon6Group or charonGroup
        self.keyType = keyType

    @property
    def ikedIkesa(self):
        return "ikesa enc aes-256-gcm prf hmac-sha2-256 group %s" % (self.group,)

    @property
    def charonProposal(self):
        return "aes256gcm16-prfsha256-%s" % (self.charonGroup,)

    def charonProposalFor(self, charon6):
        """
        The IKE proposal of charon 5.9 (the host's) or of charon 6
        (C{charon6}: Debian 13's, which does RFC 9370 ML-KEM).
        """
        return "aes256gcm16-prfsha256-%s" % (self.charon6Group if charon6 else self.charonGroup,)

    def charonCan(self, charon6):
        return (self.charon6Group if charon6 else self.charonGroup) is not None


SUITES = {
    s.name: s
    for s in [
        Suite("psk-ecp256", "PSK, ECP-256, AES-256-GCM", "psk", "ecp256", "ecp256"),
        Suite("psk-x25519", "PSK, X25519, AES-256-GCM", "psk", "curve25519", "x25519"),
        Suite("psk-modp2048", "PSK, MODP-2048, AES-256-GCM", "psk", "modp2048", "modp2048"),
        Suite("ecdsa-p256", "ECDSA P-256 certificates (RFC 7427, SHA-256), ECP-256, AES-256-GCM", "rfc7427",
              "ecp256", "ecp256", "ecdsa-p256"),
        Suite("rsa-2048", "RSA-2048 certificates (RFC 7427, SHA-256), ECP-256, AES-256-GCM", "rfc7427",
              "ecp256", "ecp256", "rsa-2048"),
        Suite("psk-x25519-mlkem768", "PSK, X25519 + ML-KEM-768 (RFC 9370 ADDKE), AES-256-GCM", "psk",
              "curve25519 addke1 mlkem768", None, charon6Group="x25519-ke1_mlkem768"),
    ]
}

RESPONDERS = ("ikedtx", "charon", "charon-netlink", "charon6")
#: The generators: ikedtx's (bench/loadgen.py), charon 5.9's and charon
#: 6's (bench/charongen.py; charon6 from Debian 13's tree, chrooted).
GENERATORS = ("ikedtx", "charon", "charon6")


class Credentials:
    """
    For a certificate suite: one CA of the suite's key type, a certificate
    for the responder and C{ids} certificates for the generator's
    identities (SAN dNSName = the IKE ID), made with the lab PKI helpers.
    The generator's certificates all certify one key (ikedtx has one
    private/local.key per daemon).
    """

    def __init__(self, keyType, ids):
        from ikedtx.testing.lab.pki import CertificateAuthority, KeyPair

        self.ca = CertificateAuthority("ikebench CA " + keyType, keyType=keyType)
        key = KeyPair.generate(keyType)
        self.gens = [self.ca.issue("gen%d" % (i,), keyType=keyType, dns=[genId(i)], key=key) for i in range(ids)]
        self.resp = self.ca.issue("resp", keyType=keyType, dns=[RESP_ID])


def ikedTree(directory, certs, ca):
    """
    An /etc/iked tree (the lab's layout) with ca/ca.crt, certs/ and
    private/local.key for a certificate suite (empty for PSK).
    """
    makeIkedTree(directory)
    if certs:
        writeFile(os.path.join(directory, "ca", "ca.crt"), ca.cert.certPEM)
        for i, cert in enumerate(certs):
            writeFile(os.path.join(directory, "certs", "local%d.crt" % (i,)), cert.certPEM)
        writeFile(os.path.join(directory, "private", "local.key"), certs[0].key.privatePEM, 0o600)
    return directory


def ikedAuth(suite):
    return 'psk "%s"' % (PSK,) if suite.auth == "psk" else suite.auth


def genId(i):
    return "gen%d.bench.example" % (i,)


def generatorConfig(suite, ids):
    """
    The generator's iked.conf: C{ids} policies bench0..bench<ids-1>, the
    same but for their srcid (gen<i>.bench.example), initiated in turn.
    """
    policies = []
    for i in range(ids):
        policies.append(
            "ikev2 \"bench%d\" passive esp \\\n"
            "\tfrom %s to %s \\\n"
            "\tlocal %s peer %s \\\n"
            "\t%s \\\n"
            "\tchildsa enc aes-256-gcm \\\n"
            "\tsrcid %s dstid %s \\\n"
            "\t%s\n" % (i, GEN_NET, RESP_NET, GEN_ADDRESS, RESP_ADDRESS, suite.ikedIkesa, genId(i), RESP_ID,
                         ikedAuth(suite)))
    return "# ikebench load generator: each initiate makes a new IKE SA\nset decouple\n" + "".join(policies)


def ikedtxResponderConfig(suite, settings=()):
    """
    @param settings: extra C{set} lines (ikebench --ikedtx-set), e.g.
        C{"dpd_check_interval 0"}.
    """
    return (
        "# ikebench responder: accepts every initiator\n"
        "set decouple\n" + "".join("set %s\n" % (line,) for line in settings) +
        "ikev2 \"bench\" passive esp \\\n"
        "\tfrom %s to %s \\\n"
        "\tlocal %s peer any \\\n"
        "\t%s \\\n"
        "\tchildsa enc aes-256-gcm \\\n"
        "\tsrcid %s \\\n"
        "\t%s\n" % (RESP_NET, GEN_NET, RESP_ADDRESS, suite.ikedIkesa, RESP_ID, ikedAuth(suite))
    )

"""
What the interoperability tests share: two hosts in network namespaces, the
ikedtx daemon on host "a" (192.0.2.1, inner 10.1.0.1) and a real peer on host
"b" (192.0.2.2, inner 10.2.0.1), credentials for every authentication kind,
and checks that both sides see the same SAs.
"""

from ikedtx.testing.lab import CertificateAuthority, KeyPair, LabMixin

A, B = "192.0.2.1", "192.0.2.2"
A_INNER, B_INNER = "10.1.0.1", "10.2.0.1"
PSK = "interop-psk-0123456789"
A_FQDN, B_FQDN = "moon.example", "sun.example"


class Credentials:
    """
    One authentication set-up for both hosts.

    @ivar kind: C{"psk"}, C{"ecdsa"}, C{"rsa"} or C{"raw"}.
    @ivar idA: host a's identity, as written in configurations.
    @ivar idB: host b's identity.
    """

    def __init__(self, kind, untrustedB=False, untrustedA=False):
        self.kind = kind
        if kind == "psk":
            self.idA, self.idB = A, B
            return
        self.idA, self.idB = A_FQDN, B_FQDN
        keyType = {"ecdsa": "ecdsa-p256", "rsa": "rsa-2048", "raw": "ecdsa-p256"}[kind]
        if kind == "raw":
            self.keyA = KeyPair.generate(keyType)
            self.keyB = KeyPair.generate(keyType)
            return
        self.ca = CertificateAuthority("ikedtx interop CA", keyType=keyType)
        rogue = CertificateAuthority("rogue CA", keyType=keyType)
        self.certA = (rogue if untrustedA else self.ca).issue("moon", keyType=keyType, ips=[A], dns=[A_FQDN])
        self.certB = (rogue if untrustedB else self.ca).issue("sun", keyType=keyType, ips=[B], dns=[B_FQDN])

    def ikedtxAuth(self, psk=PSK):
        """
        The auth keyword of ikedtx's (and iked's) policy.
        """
        if self.kind == "psk":
            return 'psk "%s"' % (psk,)
        return {"ecdsa": "ecdsa256", "rsa": "rsa", "raw": ""}[self.kind]

    def installIkedtx(self, ours):
        if self.kind == "raw":
            ours.setLocalKey(self.keyA)
            ours.addPeerPublicKey(self.idB, self.keyB)
        elif self.kind != "psk":
            ours.addCA(self.ca.cert)
            ours.addCertificate(self.certA)


def ikedtxPolicy(credentials, ike="", child="", mode="passive", extra="", psk=PSK, dstid=None, lifetimes=""):
    """
    ikedtx's iked.conf on host a; C{lifetimes} (C{"ikelifetime 30 lifetime
    20"}) goes where iked.conf(5) wants it, after the IDs.
    """
    return ('ikev2 "peer" %s esp from %s to %s local %s peer %s %s %s %s srcid %s dstid %s %s %s\n' % (
        mode, A_INNER, B_INNER, A, B, extra, ike, child, credentials.idA, dstid or credentials.idB, lifetimes,
        credentials.ikedtxAuth(psk)))


class InteropMixin(LabMixin):
    """
    Host a runs ikedtx, host b the peer under test.
    """

    def hosts(self):
        self.a, self.b, self.link = self.network().pair()
        return self.a, self.b

    def startIkedtx(self, config, extraArgs=()):
        ours = self.ikedtx(self.a, config, extraArgs=["--kernel", "decoupled", "--listen", A] + list(extraArgs))
        return ours

    def ourOnlySa(self, ours, child=True):
        sas = ours.showSa()
        self.labAssertEqual(len(sas), 1, "ikedtx should hold exactly one IKE SA: %r" % (sas,))
        sa = sas[0]
        self.labAssertEqual(sa["state"], "VALID")
        if child:
            self.labAssert(sa["children"], "ikedtx has no Child SA: %r" % (sa,))
        return sa

"""
The native road-warrior clients with certificates, emulated by strongSwan's
charon (kernel-libipsec) on host b connecting to ikedtx (host a, the
user-space datapath) as gateway with a C{config address} pool:

  - macOS/iOS, certificate profile (C{AuthenticationMethod = Certificate},
    C{ExtendedAuthEnabled = 0}): the IKE and ESP proposals iOS 16.5
    sends by default as strongSwan's iOS interoperability page lists them
    (AES-CBC-256/SHA2-256 with MODP-2048, ECP-256, MODP-1536, then
    AES-CBC-128/SHA1 and 3DES/SHA1 with MODP-1024; ESP AES-CBC-256/SHA2-256,
    AES-CBC-128/SHA1, 3DES/SHA1), an FQDN as local identifier (Apple sends
    even a DN as FQDN), the server's FQDN as remote identifier, no CERTREQ
    (none is sent without ServerCertificateIssuerCommonName), MOBIKE on
    (Apple's C{DisableMOBIKE} defaults to 0), a virtual IPv4 address and
    the whole IPv4 space asked as traffic selectors;
  - Android's strongSwan VPN client, "IKEv2 Certificate": charon itself
    with its default proposals, the certificate's subject DN as identity
    (the app's default), the server's host name as remote identity, a
    virtual IPv4 and IPv6 address asked (ikedtx's pool is IPv4 only), MOBIKE.

What the emulation cannot show: the clients' own quirks beyond their
proposals and requests (Apple's CP attributes such as
INTERNAL_DNS_DOMAIN requests, Android's split tunnelling UI).
"""

from twisted.trial.unittest import TestCase

from ikedtx.testing.lab import Auth, Child, Connection, poll

from tests.interop import A, A_FQDN, A_INNER, B
from tests.test_interop_userspace import UserspaceMixin, ping
from ikedtx.testing.lab import CertificateAuthority

POOL = "10.77.0.0/29"
DNS = "10.1.0.53"
MOVED = "192.0.2.3"

APPLE_IKE = ["aes256-sha256-modp2048", "aes256-sha256-ecp256", "aes256-sha256-modp1536",
             "aes128-sha1-modp1024", "3des-sha1-modp1024"]
APPLE_ESP = ["aes256-sha256", "aes128-sha1", "3des-sha1"]


def gatewayPolicy():
    """
    ikedtx on host a as iked.conf(5) would serve road warriors with
    certificates: any peer identity signed by the CA, an address of the
    pool, a name server; iked's default proposals; MOBIKE on.
    """
    return ('set mobike\nikev2 "rw" passive esp from %s to dynamic local %s srcid %s '
            'config address %s config name-server %s\n' % (A_INNER, A, A_FQDN, POOL, DNS))


class NativeClientTests(UserspaceMixin, TestCase):
    def startGateway(self):
        self.hosts()
        self.ca = CertificateAuthority("ikedtx clients CA", keyType="rsa-2048")
        server = self.ca.issue("moon", keyType="rsa-2048", ips=[A], dns=[A_FQDN])
        ours = self.ikedtx(self.a, gatewayPolicy(), extraArgs=["--kernel", "userspace", "--listen", A])
        ours.addCA(self.ca.cert)
        ours.addCertificate(server)
        ours.start()
        return ours

    def assertRoadWarrior(self, ours, charon, child):
        """
        charon holds one IKE SA with the pool's first address and a Child
        SA from it to host a's inner address; ikedtx agrees; a ping from
        the address is answered.
        """
        ok, output = charon.initiate(child=child)
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        [theirs] = charon.ikeSas()
        mine = self.ourOnlySa(ours)
        self.labAssertEqual((mine["spiI"], mine["spiR"]), (theirs["initiator-spi"], theirs["responder-spi"]))
        self.labAssertEqual(theirs.get("local-vips"), ["10.77.0.1"], "charon's virtual IPs: %r" % (theirs,))
        (childSA,) = theirs["child-sas"]
        self.labAssertEqual((childSA["local-ts"], childSA["remote-ts"]), (["10.77.0.1/32"], [A_INNER + "/32"]),
                            "charon's Child SA: %r" % (childSA,))
        self.labAssertEqual(ping(self.b, "10.77.0.1", A_INNER, 3), 3, "ping 10.77.0.1 -> %s" % (A_INNER,))
        return mine, theirs

    def test_appleCertificate(self):
        """
        macOS/iOS certificate profile: the IKE SA is AES-CBC-256/SHA2-256
        with MODP-2048 (the first of Apple's proposals iked's defaults
        accept), ESP AES-CBC-256/SHA2-256, MOBIKE negotiated, a virtual
        address with a working tunnel; then the client moves to another
        address (Wi-Fi to cellular) and ikedtx follows it on the same IKE SA.
        """
        ours = self.startGateway()
        client = self.ca.issue("iphone", keyType="rsa-2048", dns=["iphone.example"])
        charon = self.charon(self.b, libipsec=True)
        charon.addCA(self.ca.cert)
        charon.addConnection(Connection(
            "apple", local_addrs=[B], remote_addrs=[A], proposals=APPLE_IKE, mobike="yes", send_certreq="no",
            local=Auth("pubkey", id="iphone.example", certs=[client]),
            remote=Auth("pubkey", id=A_FQDN, cacerts=[self.ca.cert]), vips=["0.0.0.0"],
            children=[Child("apple", local_ts=["0.0.0.0/0"], remote_ts=["0.0.0.0/0"], esp_proposals=APPLE_ESP)]))
        charon.start()
        mine, theirs = self.assertRoadWarrior(ours, charon, "apple")
        self.labAssertEqual((theirs["encr-alg"], theirs.get("encr-keysize"), theirs["integ-alg"], theirs["dh-group"]),
                            ("AES_CBC", "256", "HMAC_SHA2_256_128", "MODP_2048"), "charon's IKE SA: %r" % (theirs,))
        (childSA,) = theirs["child-sas"]
        self.labAssertEqual((childSA["encr-alg"], childSA.get("encr-keysize"), childSA["integ-alg"]),
                            ("AES_CBC", "256", "HMAC_SHA2_256_128"), "charon's Child SA: %r" % (childSA,))
        self.labAssert("peer supports MOBIKE" in charon.log(), "ikedtx announced no MOBIKE_SUPPORTED")
        interface = self.link.interface(self.b)
        self.b.sysctl("net.ipv4.conf.%s.promote_secondaries" % (interface,), 1)
        self.b.addAddress(interface, MOVED + "/24")
        self.b.ip("addr", "del", B + "/24", "dev", interface)

        def moved():
            sas = ours.showSa()
            return sas and sas[0]["remote"].startswith(MOVED + ":") and sas[0]

        after = poll(moved, 30, interval=0.3, what=lambda: "ikedtx following the client\n%r\n%s\n%s" % (
            ours.showSa(), ours.report(), charon.report()))
        self.labAssertEqual((after["spiI"], after["spiR"]), (mine["spiI"], mine["spiR"]))
        # ikedtx lists the new address when it has taken the
        # UPDATE_SA_ADDRESSES; both datapaths (charon's after our answer)
        # follow a moment later: the first reply marks the move done, then
        # every ping of a run must be answered.
        poll(lambda: ping(self.b, "10.77.0.1", A_INNER, 1) == 1, 15, interval=0.2,
             what=lambda: "a first ping after the move\n%s\n%s" % (ours.report(), charon.report()))
        self.labAssertEqual(ping(self.b, "10.77.0.1", A_INNER, 10), 10, "ping after the move")

    def test_androidCertificate(self):
        """
        Android's strongSwan client with a certificate: charon's default
        proposals, its certificate's subject DN as identity, IPv4 and IPv6
        virtual addresses asked: the IPv4 one is lent, the tunnel works.
        """
        ours = self.startGateway()
        client = self.ca.issue("android", keyType="rsa-2048", dns=["android.example"])
        charon = self.charon(self.b, libipsec=True)
        charon.addCA(self.ca.cert)
        charon.addConnection(Connection(
            "android", local_addrs=[B], remote_addrs=[A], mobike="yes",
            local=Auth("pubkey", id="O=ikedtx lab, CN=android", certs=[client]),
            remote=Auth("pubkey", id=A_FQDN, cacerts=[self.ca.cert]), vips=["0.0.0.0", "::"],
            children=[Child("android", local_ts=["0.0.0.0/0", "::/0"], remote_ts=["0.0.0.0/0", "::/0"])]))
        charon.start()
        mine, theirs = self.assertRoadWarrior(ours, charon, "android")
        self.labAssertEqual(theirs.get("remote-id"), A_FQDN)
        self.labAssertEqual(theirs.get("local-id"), "O=ikedtx lab, CN=android")

"""
ESP through ikedtx's user-space datapath (C{--kernel userspace}), in network
namespaces on this host, whose kernel has no ESP: ikedtx against
strongSwan's charon with kernel-libipsec (ESP in UDP on 4500, charon fakes
a NAT) and against another ikedtx (ESP in UDP with C{natt}, and raw ESP
without). Pings pass both ways between the inner addresses on C{lo}; both
sides count the traffic; tshark decrypts the captured ESP with the keys
the datapath was given (its test-only dump, C{KEYLOG.esp.json}) and finds
every ICV correct; forged, truncated, replayed and unknown-SPI packets sent
at the daemon are dropped and counted while pings go on.
"""

import json
import os
import socket
import struct

from twisted.trial.unittest import TestCase

from ikedtx.kernel.esp import EspSA
from ikedtx.wire.constants import EncrId, IntegId

from tests.interop import A, A_INNER, B, B_INNER, PSK, Credentials, ikedtxPolicy
from ikedtx.testing.lab import poll
from ikedtx.testing.lab._util import readText
from tests.test_interop_charon import CharonMixin
from tests.test_kernel_esp import ipv4

#: tshark 4.0's esp_sa names
TSHARK_ENCRYPTION = {
    EncrId.AES_GCM_16: "AES-GCM with 16 octet ICV [RFC4106]",
    EncrId.AES_CBC: "AES-CBC [RFC3602]",
}
TSHARK_INTEGRITY = {
    None: "NULL",
    IntegId.HMAC_SHA1_96: "HMAC-SHA-1-96 [RFC2404]",
    IntegId.HMAC_SHA2_256_128: "HMAC-SHA-256-128 [RFC4868]",
    IntegId.HMAC_SHA2_384_192: "HMAC-SHA-384-192 [RFC4868]",
    IntegId.HMAC_SHA2_512_256: "HMAC-SHA-512-256 [RFC4868]",
}

#: name -> (charon ESP proposal, ikedtx childsa transforms)
ESP = {
    "gcm": ("aes128gcm16", "childsa enc aes-128-gcm"),
    "cbc": ("aes256-sha256", "childsa enc aes-256 auth hmac-sha2-256"),
    "chacha": ("chacha20poly1305", "childsa enc chacha20-poly1305"),
}

USERSPACE = ["--kernel", "userspace"]


def espDump(ours):
    """
    What the daemon's user-space datapath dumped (C{--keylog} + C{.esp.json}):
    its SAs with keys and counters, and its drop counts.
    """
    path = ours.keyLogPath + ".esp.json"
    if not os.path.exists(path):
        return {"sas": [], "drops": {}}
    return json.loads(readText(path))


def pingsBothWays(test, ours, a, b):
    """
    Three pings each way between the inner networks through C{ours}'s
    user-space datapath (namespaces C{a} and C{b}): its one Child SA pair
    carried them, ESP in UDP, and dropped nothing.
    """
    test.assertEqual(ping(a, A_INNER, B_INNER, 3), 3)
    test.assertEqual(ping(b, B_INNER, A_INNER, 3), 3)

    def counted():
        dump = espDump(ours)
        return dump if sum(sa["packets"] for sa in dump["sas"]) >= 12 else None

    dump = poll(counted, 10.0, interval=0.1, what=lambda: "12 packets in %r\n%s" % (espDump(ours), ours.report()))
    test.assertEqual(sorted(sa["packets"] for sa in dump["sas"]), [6, 6])
    test.assertTrue(all(sa["encapsulation"] for sa in dump["sas"]), repr(dump))
    test.assertEqual(dump["drops"], {})


def ping(namespace, source, destination, count=3):
    """
    C{ping} in C{namespace}; the number of replies.
    """
    result = namespace.run(["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", "-I", source, destination],
                           check=False, timeout=30)
    for line in result.stdout.splitlines():
        if "received" in line:
            return int(line.split(",")[1].split()[0])
    return 0


class UserspaceMixin(CharonMixin):
    def startOurs(self, namespace, config, listen, extra=()):
        ours = self.ikedtx(namespace, config, extraArgs=USERSPACE + ["--listen", listen] + list(extra))
        ours.start()
        return ours

    def assertPings(self, pairs, count=3):
        """
        Every C{(namespace, source, destination)} ping gets all its replies.
        """
        for namespace, source, destination in pairs:
            got = ping(namespace, source, destination, count)
            self.labAssertEqual(got, count, "ping %s -> %s in %s" % (source, destination, namespace.name))

    def waitForDump(self, ours, predicate, what):
        """
        Poll the daemon's dump until C{predicate} holds for it; return it.
        """

        def check():
            dump = espDump(ours)
            return dump if predicate(dump) else None

        return poll(check, 5.0, interval=0.1,
                    what=lambda: "%s in %r\n%s" % (what, espDump(ours), self.labReport()))

    def tsharkRows(self, ours):
        """
        tshark C{esp_sa} rows for the SAs in the daemon's dump.
        """
        rows = []
        for sa in espDump(ours)["sas"]:
            rows.append('"IPv4","%s","%s","0x%s","%s","0x%s","%s","%s"' % (
                sa["source"], sa["destination"], sa["spi"], TSHARK_ENCRYPTION[sa["encryption"]], sa["encryptionKey"],
                TSHARK_INTEGRITY[sa["integrity"]], ("0x" + sa["integrityKey"]) if sa["integrityKey"] else ""))
        return rows

    def assertTsharkDecrypts(self, capture, ours, minimum, esn=False):
        """
        tshark, with the keys of the daemon's SAs, decrypts at least
        C{minimum} ESP packets each way, every ICV correct, each holding an
        ICMP packet between the inner addresses. With C{esn} the ICVs are
        not checked: tshark 4.0 does not know extended sequence numbers
        (the high half is in the ICV input, RFC 4303 2.2.1).
        """
        capture.stop()
        rows = self.tsharkRows(ours)
        fields = capture.fields(["esp.spi", "esp.icv_good", "ip.src", "ip.dst", "icmp.type"], displayFilter="esp",
                                espSas=rows)
        self.labAssert(fields, "tshark saw no ESP:\n" + capture.summary())
        directions = {}
        for row in fields:
            if not esn:
                self.labAssertEqual(row["esp.icv_good"], "1", "ICV of %r (%r)" % (row, rows))
            self.labAssertEqual(row["ip.src"].split(",")[-1:] + row["ip.dst"].split(",")[-1:] in (
                [A_INNER, B_INNER], [B_INNER, A_INNER]), True, "inner addresses of %r" % (row,))
            key = row["ip.src"].split(",")[-1]
            directions[key] = directions.get(key, 0) + 1
        self.labAssert(directions.get(A_INNER, 0) >= minimum and directions.get(B_INNER, 0) >= minimum,
                       "ESP each way: %r" % (directions,))


class CharonLibipsecTests(UserspaceMixin, TestCase):
    """
    ikedtx (user space) <-> charon (kernel-libipsec), PSK.
    """

    def _tunnel(self, name, initiator="ikedtx"):
        self.hosts()
        credentials = Credentials("psk")
        charonEsp, ourEsp = ESP[name]
        charon = self.startCharon(credentials, esp=charonEsp)
        ours = self.startOurs(self.a, ikedtxPolicy(credentials, child=ourEsp), A)
        if initiator == "ikedtx":
            ours.initiate("peer")
        else:
            ok, output = charon.initiate(child="net")
            self.labAssert(ok, "charon's initiate failed:\n" + output)
        mine, theirs = self.assertSameSAs(ours, charon)
        return ours, charon, mine, theirs

    def _traffic(self, name, initiator="ikedtx"):
        ours, charon, mine, theirs = self._tunnel(name, initiator)
        capture = self.capture(self.a, self.link.interface(self.a), "udp port 4500")
        self.assertPings([(self.a, A_INNER, B_INNER), (self.b, B_INNER, A_INNER)])
        # Both sides counted the 6 echo requests and 6 replies each way.
        dump = self.waitForDump(ours, lambda d: sum(sa["packets"] for sa in d["sas"]) >= 12, "12 packets counted")
        for sa in dump["sas"]:
            self.labAssertEqual(sa["packets"], 6, "packets of SA %s" % (sa["spi"],))
            self.labAssertEqual(sa["bytes"], 6 * 84, "bytes of SA %s (6 ICMP echoes of 84 octets)" % (sa["spi"],))
        child = self.charonOnlySa(charon)["child-sas"]
        child = list(child.values())[0] if isinstance(child, dict) else child[0]
        self.labAssertEqual((int(child["packets-in"]), int(child["packets-out"])), (6, 6), repr(child))
        self.labAssertEqual((int(child["bytes-in"]), int(child["bytes-out"])), (6 * 84, 6 * 84), repr(child))
        self.labAssertEqual(dump["drops"], {}, "drops")
        return ours, charon, capture

    def test_gcm(self):
        """
        AES-GCM-16 (RFC 4106): pings both ways, equal counters on both
        sides, and tshark decrypts every packet with correct ICVs.
        """
        ours, charon, capture = self._traffic("gcm")
        self.assertTsharkDecrypts(capture, ours, 6)

    def test_cbcSha256(self):
        """
        AES-CBC-256 with HMAC-SHA2-256-128 (RFC 3602, RFC 4868), charon
        initiating.
        """
        ours, charon, capture = self._traffic("cbc", initiator="charon")
        self.assertTsharkDecrypts(capture, ours, 6)

    def test_chacha20Poly1305(self):
        """
        ChaCha20-Poly1305 (RFC 7634); tshark 4.0 cannot decrypt it, so the
        counters on both sides are the check.
        """
        self._traffic("chacha")

    def test_badPacketsDropped(self):
        """
        ESP in UDP sent at the daemon's NAT-T port from host b - random
        bytes under the live inbound SPI (bad ICV), a truncated packet, an
        unknown SPI, and a correctly sealed copy of charon's first packet
        (a replay) - is dropped and counted by reason; pings go on.
        """
        ours, charon, mine, theirs = self._tunnel("gcm")
        self.assertPings([(self.a, A_INNER, B_INNER)])
        # The dump is written every half second: wait for the SA to be in it.
        dump = self.waitForDump(ours, lambda d: any(sa["destination"] == A for sa in d["sas"]), "the inbound SA")
        (inbound,) = [sa for sa in dump["sas"] if sa["destination"] == A]
        spi = int(inbound["spi"], 16)
        codec = EspSA(spi, inbound["encryption"], inbound["keyLength"], bytes.fromhex(inbound["encryptionKey"]),
                      inbound["integrity"], bytes.fromhex(inbound["integrityKey"]))
        replay = codec.seal(ipv4(socket.inet_aton(B_INNER), socket.inet_aton(A_INNER), 17, bytes(12)), 4)
        forged = struct.pack("!II", spi, 1000) + os.urandom(60)
        sender = self.b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for datagram in (forged, forged[:10], struct.pack("!II", spi ^ 0x5A5A5A5A, 3) + bytes(40), replay):
                sender.sendto(datagram, (A, 4500))
        finally:
            sender.close()
        dump = self.waitForDump(ours, lambda d: sum(d["drops"].values()) >= 4, "4 drops")
        self.labAssertEqual(dump["drops"], {"bad-icv": 1, "truncated": 1, "unknown-spi": 1, "replayed": 1})
        self.assertPings([(self.a, A_INNER, B_INNER), (self.b, B_INNER, A_INNER)])


class IkedtxPairTests(UserspaceMixin, TestCase):
    """
    Two ikedtx daemons, both with the user-space datapath.
    """

    def _pair(self, natt=False, esn=True):
        self.hosts()
        policy = 'ikev2 "peer" passive %sesp from %s to %s local %s peer %s %s srcid %s dstid %s psk "%s"\n'
        natt = "natt " if natt else ""
        child = ESP["gcm"][1] + ("" if esn else " noesn")
        ours = self.startOurs(self.a, policy % (natt, A_INNER, B_INNER, A, B, child, A, B, PSK), A)
        theirs = self.startOurs(self.b, policy % (natt, B_INNER, A_INNER, B, A, child, B, A, PSK), B)
        ours.initiate("peer")
        capture = self.capture(self.a, self.link.interface(self.a), "udp port 4500 or esp")
        self.assertPings([(self.a, A_INNER, B_INNER), (self.b, B_INNER, A_INNER)])
        for daemon in (ours, theirs):
            dump = self.waitForDump(daemon, lambda d: sum(sa["packets"] for sa in d["sas"]) >= 12, "12 packets")
            self.labAssertEqual(sorted(sa["packets"] for sa in dump["sas"]), [6, 6])
            self.labAssertEqual(dump["drops"], {})
        dump = espDump(ours)
        self.labAssertEqual([sa["esn"] for sa in dump["sas"]], [esn, esn], repr(dump))
        self.assertTsharkDecrypts(capture, ours, 6, esn=esn)
        return ours, theirs, capture

    def test_espInUdp(self):
        """
        With C{natt} the SAs are encapsulated and ESP goes in UDP 4500;
        without ESN, tshark checks every ICV.
        """
        ours, theirs, capture = self._pair(natt=True, esn=False)
        self.labAssert(all(sa["encapsulation"] for sa in espDump(ours)["sas"]), repr(espDump(ours)))

    def test_rawEsp(self):
        """
        Without a NAT, ESP goes as IP protocol 50 through raw sockets; both
        daemons negotiate extended sequence numbers (RFC 4303 2.2.1).
        """
        ours, theirs, capture = self._pair(esn=True)
        self.labAssert(not any(sa["encapsulation"] for sa in espDump(ours)["sas"]), repr(espDump(ours)))
        self.labAssert(capture.fields(["esp.spi"], displayFilter="ip.proto == 50"), "no raw ESP captured")

    def test_ipv6Inner(self):
        """
        IPv6 inner traffic (fd00:1::1 <-> fd00:2::1 on C{lo}) through IPv4
        outer addresses, ESP in UDP: the route to the remote /128 goes
        through the TUN device with the local inner address as source.
        """
        self.hosts()
        self.a.addLoopbackAddress("fd00:1::1/128")
        self.b.addLoopbackAddress("fd00:2::1/128")
        policy = 'ikev2 "peer" passive natt esp from %s to %s local %s peer %s %s srcid %s dstid %s psk "%s"\n'
        ours = self.startOurs(self.a, policy % ("fd00:1::1", "fd00:2::1", A, B, ESP["gcm"][1], A, B, PSK), A)
        theirs = self.startOurs(self.b, policy % ("fd00:2::1", "fd00:1::1", B, A, ESP["gcm"][1], B, A, PSK), B)
        ours.initiate("peer")
        routes = self.a.ip("-6", "route", "show", "dev", "ipsec0").stdout
        self.labAssert("fd00:2::1 " in routes and "src fd00:1::1" in routes, routes)
        self.assertPings([(self.a, "fd00:1::1", "fd00:2::1"), (self.b, "fd00:2::1", "fd00:1::1")])
        for daemon in (ours, theirs):
            dump = self.waitForDump(daemon, lambda d: sum(sa["packets"] for sa in d["sas"]) >= 12, "12 packets")
            # ICMPv6 echoes of 56 data octets: 40 + 8 + 56.
            self.labAssertEqual(sorted((sa["packets"], sa["bytes"]) for sa in dump["sas"]), [(6, 6 * 104)] * 2)
            self.labAssertEqual(dump["drops"], {})

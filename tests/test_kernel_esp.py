"""
Tests for L{ikedtx.kernel.esp}: the ESP codec of the user-space datapath
(RFC 4303), its ciphers (RFC 4106, RFC 7634, RFC 3602 with RFC 2404/4868),
the anti-replay window and extended sequence numbers (RFC 4303 3.4.3 and
Appendix A), and an independent check of the packets by tshark's ESP
dissector.
"""

import json
import os
import struct
import subprocess

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.kernel import esp
from ikedtx.kernel.esp import EspError, EspSA, ReplayWindow, spiOf
from ikedtx.wire.constants import EncrId, IntegId

from tests.support import requireExecutable

VECTORS = os.path.join(os.path.dirname(__file__), "vectors", "strongswan_test_vectors.json")

#: One SA per algorithm family: (name, encryption, key bits, key octets, integrity, integrity key octets)
ALGORITHMS = [
    ("aes128gcm16", EncrId.AES_GCM_16, 128, 20, None, 0),
    ("aes256gcm16", EncrId.AES_GCM_16, 256, 36, None, 0),
    ("chacha20poly1305", EncrId.CHACHA20_POLY1305, 256, 36, None, 0),
    ("aes128-sha1", EncrId.AES_CBC, 128, 16, IntegId.HMAC_SHA1_96, 20),
    ("aes256-sha256", EncrId.AES_CBC, 256, 32, IntegId.HMAC_SHA2_256_128, 32),
    ("aes192-sha384", EncrId.AES_CBC, 192, 24, IntegId.HMAC_SHA2_384_192, 48),
    ("aes256-sha512", EncrId.AES_CBC, 256, 32, IntegId.HMAC_SHA2_512_256, 64),
    ("null-sha256", EncrId.NULL, None, 0, IntegId.HMAC_SHA2_256_128, 32),
]


def makePair(algorithm, spi=0x1234, esn=False, replayWindow=128):
    """
    A sender and a receiver L{EspSA} with the same keys.
    """
    _, encr, bits, keyLength, integ, integLength = algorithm
    key = bytes((i * 7 + 3) & 0xFF for i in range(keyLength))
    integKey = bytes((i * 11 + 5) & 0xFF for i in range(integLength))
    make = lambda: EspSA(spi, encr, bits, key, integ, integKey, esn=esn, replayWindow=replayWindow)
    return make(), make()


def ipv4(src, dst, proto, payload):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, bytes(src), bytes(dst))
    total = sum(struct.unpack("!10H", header))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:] + payload


INNER = ipv4([10, 1, 0, 1], [10, 2, 0, 1], 17, struct.pack("!HHHH", 1234, 5678, 13, 0) + b"hello")


class Rfc7634VectorTests(SynchronousTestCase):
    """
    The ESP example of RFC 7634 appendix A (an ICMP echo in tunnel mode,
    SPI 0x01020304, sequence number 5), as strongSwan's test vectors
    transcribe it.
    """

    def setUp(self):
        with open(VECTORS) as f:
            vector = json.load(f)["chacha20poly1305"]["vectors"]["chacha20poly1305_3"]
        self.key = bytes.fromhex(vector["key"])
        self.iv = bytes.fromhex(vector["iv"])
        self.aad = bytes.fromhex(vector["adata"])
        self.plain = bytes.fromhex(vector["plain"])
        self.packet = self.aad + self.iv + bytes.fromhex(vector["cipher"])

    def test_open(self):
        """
        The example packet opens to the inner IPv4 packet, Next Header 4,
        sequence number 5, with its padding (1, 2; pad length 2) removed.
        """
        sa = EspSA(0x01020304, EncrId.CHACHA20_POLY1305, 256, self.key, None, b"")
        self.assertEqual(sa.open(self.packet), (4, self.plain[:-4], 5))
        self.assertEqual(sa.drops, {})

    def test_seal(self):
        """
        Sealing the inner packet as the fifth with the example's IV gives
        the example's bytes: padding to four octets, the AAD of SPI and
        sequence number, the salt from the end of the key material.
        """
        iv = self.iv

        class FixedIv(EspSA):
            def explicitIv(self, seq):
                return iv

        sa = FixedIv(0x01020304, EncrId.CHACHA20_POLY1305, 256, self.key, None, b"")
        sa.seq = 4
        self.assertEqual(sa.seal(self.plain[:-4], 4), self.packet)


class AlgorithmMixin:
    """
    Round trips and tampering for one algorithm (C{algorithm}).
    """

    algorithm = None

    def test_roundTrip(self):
        """
        Payloads of every length up to two blocks and more come back with
        their Next Header; the packets are aligned (RFC 4303 2.4) and carry
        sequence numbers 1, 2, ...
        """
        sender, receiver = makePair(self.algorithm)
        block = 16 if self.algorithm[1] == EncrId.AES_CBC else 4
        for n in range(0, 70):
            payload = bytes(range(n))
            packet = sender.seal(payload, 41 if n % 2 else 4)
            self.assertEqual(spiOf(packet), 0x1234)
            self.assertEqual(struct.unpack("!I", packet[4:8])[0], n + 1)
            self.assertEqual(receiver.open(packet), (41 if n % 2 else 4, payload, n + 1))
            ivLength, icvLength = receiver._ivLength, receiver._icvLength
            self.assertEqual((len(packet) - 8 - ivLength - icvLength) % block, 0)
        self.assertEqual(receiver.drops, {})

    def test_roundTripEsn(self):
        """
        With ESN the high half takes part in the ICV (RFC 4303 2.2.1, RFC
        4106 5): a receiver without ESN rejects a packet whose high half is
        not zero; one with ESN accepts it.
        """
        sender, receiver = makePair(self.algorithm, esn=True)
        plain = makePair(self.algorithm, esn=False)[1]
        sender.seq = (1 << 32) + 9
        receiver.window.top = (1 << 32) + 5
        packet = sender.seal(b"payload", 4)
        self.assertEqual(receiver.open(packet), (4, b"payload", (1 << 32) + 10))
        self.assertIsNone(plain.open(packet))
        self.assertEqual(plain.drops, {esp.BAD_ICV: 1})

    def test_tamperedBytes(self):
        """
        Flipping any bit of a packet after the SPI makes it a drop (bad ICV,
        or out of the window when the sequence number changes); it never
        raises, and the original still opens afterwards.
        """
        sender, receiver = makePair(self.algorithm)
        packet = sender.seal(INNER, 4)
        for i in range(4, len(packet)):
            for bit in (0x01, 0x80):
                bad = bytearray(packet)
                bad[i] ^= bit
                self.assertIsNone(receiver.open(bytes(bad)))
        self.assertEqual(set(receiver.drops) - {esp.BAD_ICV, esp.TOO_OLD}, set())
        self.assertGreater(receiver.drops[esp.BAD_ICV], 2 * (len(packet) - 12))
        self.assertEqual(receiver.open(packet), (4, INNER, 1))

    def test_truncated(self):
        """
        Every proper prefix of a packet is dropped.
        """
        sender, receiver = makePair(self.algorithm)
        packet = sender.seal(INNER, 4)
        for n in range(len(packet)):
            self.assertIsNone(receiver.open(packet[:n]))
        self.assertEqual(sum(receiver.drops.values()), len(packet))
        self.assertGreater(receiver.drops[esp.TRUNCATED], 0)

    def test_replayed(self):
        """
        A packet accepted once is dropped as a replay the second time.
        """
        sender, receiver = makePair(self.algorithm)
        first, second = sender.seal(b"a", 4), sender.seal(b"b", 4)
        self.assertEqual(receiver.open(second)[2], 2)
        self.assertEqual(receiver.open(first)[2], 1)
        self.assertIsNone(receiver.open(first))
        self.assertIsNone(receiver.open(second))
        self.assertEqual(receiver.drops, {esp.REPLAYED: 2})

    def test_badPadding(self):
        """
        A packet with a valid ICV whose padding is not 1, 2, 3, ... (RFC
        4303 2.4) or whose pad length exceeds the payload is dropped.
        """
        sender, receiver = makePair(self.algorithm)
        # Pad length 5 with only two octets before it.
        self.assertIsNone(receiver.open(_forge(sender, b"\x05\x04", align=False)))
        # Padding 2, 1 instead of 1, 2.
        self.assertIsNone(receiver.open(_forge(sender, b"\x02\x01\x02\x04")))
        # Right padding is accepted through the same forging path.
        opened = receiver.open(_forge(sender, b"ab\x01\x02\x02\x04"))
        self.assertEqual((opened[0], opened[1][-2:]), (4, b"ab"))
        self.assertEqual(receiver.drops, {esp.BAD_PADDING: 2})


def _forge(sender, plaintext, align=True):
    """
    An ESP packet from C{sender} whose decrypted payload and trailer are
    exactly C{plaintext} (with C{align}, after leading zeros up to the block
    size; the NULL and AEAD ciphers also take it unaligned), so that tests
    can present bad trailers with valid ICVs.
    """
    if align or sender._cbc is not None:
        plaintext = bytes((-len(plaintext)) % sender._align) + plaintext
    sender.seq += 1
    seq = sender.seq
    header = sender._spiBytes + struct.pack("!I", seq)
    if sender._aead is not None:
        iv = sender.explicitIv(seq)
        return header + iv + sender._aead.encrypt(sender._salt + iv, plaintext, header)
    import hmac

    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    if sender._cbc is not None:
        iv = bytes(16)
        encryptor = Cipher(sender._cbc, modes.CBC(iv)).encryptor()
        body = iv + encryptor.update(plaintext) + encryptor.finalize()
    else:
        body = plaintext
    mac = hmac.digest(sender._integrityKey, header + body, sender._hash)[:sender._icvLength]
    return header + body + mac


for _algorithm in ALGORITHMS:
    _name = "EspSA_%s_Tests" % (_algorithm[0].replace("-", "_"),)
    globals()[_name] = type(_name, (AlgorithmMixin, SynchronousTestCase), {"algorithm": _algorithm})
del _algorithm, _name


class CbcIvTests(SynchronousTestCase):
    def test_ivsDistinct(self):
        """
        Every AES-CBC packet carries a different IV (RFC 3602 2.3 wants
        them unpredictable: they come out of the cipher under the SA's key,
        never the bare sequence number), and a receiver opens them in any
        order.
        """
        sender, receiver = makePair(ALGORITHMS[4])
        packets = [sender.seal(b"x" * (i % 40), 4) for i in range(1000)]
        ivs = [p[8:24] for p in packets]
        self.assertEqual(len(set(ivs)), 1000)
        self.assertNotIn(bytes(8) + struct.pack("!Q", 1), ivs)
        for i in list(range(999, 871, -1)):
            self.assertEqual(receiver.open(packets[i]), (4, b"x" * (i % 40), i + 1))


class KeyCheckTests(SynchronousTestCase):
    def test_badKeys(self):
        """
        Wrong key lengths, AH and unsupported algorithms are refused when
        the SA is made, with L{EspError}.
        """
        for args in [
            (EncrId.AES_GCM_16, 128, bytes(16), None, b""),
            (EncrId.AES_GCM_16, 128, bytes(20), IntegId.HMAC_SHA2_256_128, bytes(32)),
            (EncrId.CHACHA20_POLY1305, 256, bytes(32), None, b""),
            (EncrId.AES_CBC, 128, bytes(16), None, b""),
            (EncrId.AES_CBC, 128, bytes(17), IntegId.HMAC_SHA1_96, bytes(20)),
            (EncrId.AES_CBC, 256, bytes(16), IntegId.HMAC_SHA1_96, bytes(20)),
            (EncrId.AES_CBC, 128, bytes(16), IntegId.HMAC_SHA1_96, bytes(19)),
            (EncrId.TRIPLE_DES, 192, bytes(24), IntegId.HMAC_SHA1_96, bytes(20)),
            (EncrId.AES_CBC, 128, bytes(16), IntegId.AES_XCBC_96, bytes(16)),
        ]:
            self.assertRaises(EspError, EspSA, 1, *args)


class ReplayWindowTests(SynchronousTestCase):
    """
    RFC 4303 3.4.3: a window of C{size} packets ending at the highest
    sequence number accepted; Appendix A for ESN.
    """

    def accept(self, window, seq):
        self.assertIsNone(window.check(seq), seq)
        window.accept(seq)

    def test_zeroNeverAccepted(self):
        self.assertEqual(ReplayWindow(64).check(0), esp.TOO_OLD)

    def test_edges(self):
        """
        With a 64-packet window at top 100: 37 (the window's lower edge) is
        accepted once, 36 is too old; after 37, a jump of exactly 64 leaves
        only the new top marked; a jump of 63 keeps 101 within.
        """
        window = ReplayWindow(64)
        self.accept(window, 100)
        self.assertEqual(window.check(36), esp.TOO_OLD)
        self.accept(window, 37)
        self.assertEqual(window.check(37), esp.REPLAYED)
        self.assertEqual(window.check(100), esp.REPLAYED)
        self.assertIsNone(window.check(99))
        self.accept(window, 163)
        self.assertEqual(window.check(100), esp.REPLAYED)
        self.assertEqual(window.check(99), esp.TOO_OLD)
        self.assertIsNone(window.check(101))
        self.accept(window, 163 + 64)
        self.assertEqual(window.bitmap, 1)
        self.assertIsNone(window.check(164))
        self.assertEqual(window.check(163), esp.TOO_OLD)

    def test_outOfOrder(self):
        """
        Any order within the window is accepted exactly once (128-packet
        default, as libipsec).
        """
        window = ReplayWindow()
        order = list(range(1, 129))
        order = order[::2] + order[1::2][::-1]
        for seq in order:
            self.accept(window, seq)
        for seq in range(1, 129):
            self.assertEqual(window.check(seq), esp.REPLAYED)
        self.assertEqual(window.top, 128)

    def test_noWindow(self):
        """
        A zero-size window (anti-replay off) accepts repeats.
        """
        window = ReplayWindow(0)
        self.accept(window, 5)
        self.accept(window, 5)
        self.accept(window, 1)

    def test_esnInference(self):
        """
        RFC 4303 A2.2: the high half is the window's, or one more when the
        low half is below the window (the counter wrapped), or one less
        when the window straddles a wrap and the low half is above it.
        """
        window = ReplayWindow(64)
        window.top = (5 << 32) | 1000
        self.assertEqual(window.infer(1000 - 63, True), (5 << 32) | 937)
        self.assertEqual(window.infer(2000, True), (5 << 32) | 2000)
        self.assertEqual(window.infer(936, True), (6 << 32) | 936)
        window.top = (5 << 32) | 10
        self.assertEqual(window.infer(0xFFFFFFF0, True), (4 << 32) | 0xFFFFFFF0)
        self.assertEqual(window.infer(5, True), (5 << 32) | 5)
        self.assertEqual(window.infer(50, True), (5 << 32) | 50)
        window.top = 10
        self.assertIsNone(window.infer(0xFFFFFFF0, True))
        self.assertEqual(window.infer(0xFFFFFFF0, False), 0xFFFFFFF0)


class SequenceNumberTests(SynchronousTestCase):
    def test_esnWrap(self):
        """
        An ESN sender crosses 2**32 without stopping; the receiver infers
        the high half across the wrap and accepts reordered packets from
        both sides of it.
        """
        sender, receiver = makePair(ALGORITHMS[0], esn=True)
        sender.seq = 0xFFFFFFFF - 4
        packets = [sender.seal(bytes([i]), 4) for i in range(8)]
        self.assertEqual([struct.unpack("!I", p[4:8])[0] for p in packets],
                         [0xFFFFFFFC, 0xFFFFFFFD, 0xFFFFFFFE, 0xFFFFFFFF, 0, 1, 2, 3])
        receiver.window.top = 0xFFFFFFF0
        order = [0, 5, 1, 4, 2, 7, 3, 6]
        results = [receiver.open(packets[i]) for i in order]
        self.assertEqual([r[2] for r in results], [0xFFFFFFFC + i for i in order])
        self.assertEqual(receiver.drops, {})
        self.assertEqual([receiver.open(packets[i]) for i in order], [None] * 8)
        self.assertEqual(receiver.drops, {esp.REPLAYED: 8})

    def test_overflow(self):
        """
        Without ESN the sender stops after 2**32 - 1 packets (RFC 4303
        3.3.3): no packet is sealed and the SA says it is exhausted.
        """
        sender, receiver = makePair(ALGORITHMS[3])
        sender.seq = 0xFFFFFFFE
        last = sender.seal(b"last", 4)
        self.assertEqual(receiver.open(last)[2], 0xFFFFFFFF)
        self.assertFalse(sender.exhausted)
        self.assertIsNone(sender.seal(b"one too many", 4))
        self.assertTrue(sender.exhausted)
        self.assertEqual(sender.drops, {esp.SEQUENCE_OVERFLOW: 1})
        self.assertEqual(sender.seq, 0xFFFFFFFF)


class CorruptionPropertyTests(SynchronousTestCase):
    """
    Whatever a peer sends, L{EspSA.open} returns a result or L{None} and
    never raises.
    """

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.sampled_from(ALGORITHMS), st.booleans(), st.binary(max_size=300), st.integers(0, 400),
           st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6), st.integers(0, 40))
    def test_corruptionNeverRaises(self, algorithm, esnOn, payload, cut, flips, garbage):
        sender, receiver = makePair(algorithm, esn=esnOn)
        packet = bytearray(sender.seal(payload, 4))
        for index, value in flips:
            if index < len(packet):
                packet[index] ^= value
        packet = bytes(packet[:cut] if cut < len(packet) else packet) + os.urandom(garbage)
        result = receiver.open(packet)
        if result is not None:
            self.assertEqual(result, (4, payload, 1))
        else:
            self.assertEqual(sum(receiver.drops.values()), 1)
            self.assertNotIn("error", receiver.drops)

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(ALGORITHMS), st.binary(max_size=200))
    def test_randomBytesNeverRaise(self, algorithm, data):
        _, receiver = makePair(algorithm)
        self.assertIsNone(receiver.open(data))
        self.assertNotIn("error", receiver.drops)


def pcap(packets):
    """
    A pcap file (LINKTYPE_RAW) of the IP packets C{packets}.
    """
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)]
    for i, p in enumerate(packets):
        out.append(struct.pack("<IIII", i, 0, len(p), len(p)) + p)
    return b"".join(out)


def espSaRow(spi, encryption, key, integrity="NULL", integrityKey=b""):
    """
    An C{esp_sa} row for tshark, from 192.0.2.1 to 192.0.2.2.
    """
    return '"IPv4","192.0.2.1","192.0.2.2","0x%08x","%s","0x%s","%s","%s"' % (
        spi, encryption, key.hex(), integrity, ("0x" + integrityKey.hex()) if integrityKey else "")


class TsharkCrossCheckTests(SynchronousTestCase):
    """
    tshark's ESP dissector, an implementation independent of ours, decrypts
    our AES-GCM and AES-CBC/HMAC packets with the keys, finds every ICV
    correct, and reads the inner packet and the padding we wrote.
    """

    TSHARK_ENCRYPTION = {
        EncrId.AES_GCM_16: "AES-GCM with 16 octet ICV [RFC4106]",
        EncrId.AES_CBC: "AES-CBC [RFC3602]",
        EncrId.NULL: "NULL",
    }
    TSHARK_INTEGRITY = {
        IntegId.HMAC_SHA1_96: "HMAC-SHA-1-96 [RFC2404]",
        IntegId.HMAC_SHA2_256_128: "HMAC-SHA-256-128 [RFC4868]",
        IntegId.HMAC_SHA2_384_192: "HMAC-SHA-384-192 [RFC4868]",
        IntegId.HMAC_SHA2_512_256: "HMAC-SHA-512-256 [RFC4868]",
    }

    def test_tsharkDecrypts(self):
        tshark = requireExecutable("tshark", "apt-get install tshark")
        packets, rows, expected = [], [], []
        for spi, algorithm in enumerate(ALGORITHMS, start=0x100):
            _, encr, bits, keyLength, integ, integLength = algorithm
            if encr not in self.TSHARK_ENCRYPTION:
                # tshark 4.0 has no ChaCha20-Poly1305 for ESP; RFC 7634's
                # example above covers it.
                continue
            key = os.urandom(keyLength)
            integKey = os.urandom(integLength)
            sa = EspSA(spi, encr, bits, key, integ, integKey)
            rows.append(espSaRow(spi, self.TSHARK_ENCRYPTION[encr], key, self.TSHARK_INTEGRITY.get(integ, "NULL"),
                                 integKey))
            for n in (0, 1, 15, 16, 17):
                inner = ipv4([10, 1, 0, 1], [10, 2, 0, 1], 17,
                             struct.pack("!HHHH", 1234, 5678, 8 + n + 5, 0) + b"hello" + bytes(n))
                packets.append(ipv4([192, 0, 2, 1], [192, 0, 2, 2], 50, sa.seal(inner, 4)))
                expected.append(("0x%08x" % spi, str(sa.seq), "1", inner.hex()))
        path = self.mktemp() + ".pcap"
        with open(path, "wb") as f:
            f.write(pcap(packets))
        argv = [tshark, "-n", "-r", path, "-o", "esp.enable_encryption_decode:TRUE",
                "-o", "esp.enable_authentication_check:TRUE"]
        for row in rows:
            argv += ["-o", "uat:esp_sa:" + row]
        argv += ["-T", "fields", "-E", "separator=\t", "-e", "esp.spi", "-e", "esp.sequence", "-e", "esp.icv_good",
                 "-e", "esp.contained_data"]
        result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        got = [tuple(line.split("\t")) for line in result.stdout.decode().splitlines()]
        self.assertEqual(len(got), len(expected))
        for g, e in zip(got, expected):
            self.assertEqual((g[0], g[1], g[2], g[3].replace(":", "")), e)

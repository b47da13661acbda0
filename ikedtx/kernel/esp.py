# -*- test-case-name: tests.test_kernel_esp -*-
"""
The ESP packet codec (RFC 4303) of the user-space datapath: one L{EspSA}
per unidirectional SA seals or opens packets, with the anti-replay window
and extended sequence numbers.

Ciphers: AES-GCM with a 16-octet ICV (RFC 4106), ChaCha20-Poly1305
(RFC 7634), AES-CBC (RFC 3602) and NULL (RFC 2410) with HMAC-SHA1-96
(RFC 2404) or HMAC-SHA2-256-128/384-192/512-256 (RFC 4868).

The codec is mode-agnostic: it protects a payload with a Next Header value
(4 or 41 for a whole inner IP packet in tunnel mode, the transport
protocol in transport mode). What it cannot accept it drops: C{open} and
C{seal} return L{None} and count the reason in C{drops}; they never raise
for anything a peer sends.
"""

import hmac as _hmac
import struct
from collections import Counter

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from twisted.logger import Logger

from ikedtx.wire.constants import EncrId, IntegId

#: Drop reasons, as counted in L{EspSA.drops} and by the provider.
TRUNCATED = "truncated"
BAD_ICV = "bad-icv"
REPLAYED = "replayed"
TOO_OLD = "too-old"
BAD_PADDING = "bad-padding"
SEQUENCE_OVERFLOW = "sequence-overflow"
UNKNOWN_SPI = "unknown-spi"
POLICY = "policy"
BAD_INNER = "bad-inner"

#: IANA Next Header values for a whole inner packet (tunnel mode).
NEXT_HEADER_IPV4 = 4
NEXT_HEADER_IPV6 = 41
#: RFC 4303 2.6: a dummy packet, to be discarded.
NEXT_HEADER_NONE = 59

_SPI_SEQ = struct.Struct("!II")
_HEADER_IV = struct.Struct("!IIQ")
_SEQ_HIGH = _SEQ_LOW = struct.Struct("!I")
_IV64 = struct.Struct("!Q")
_NONCE_PAD = bytes(8)
#: Self-describing padding (RFC 4303 2.4) by length, and the trailers
#: (padding, pad length, next header) by pad length and next header.
_PADS = [bytes(range(1, n + 1)) for n in range(256)]
_TRAILERS = [[_PADS[n] + bytes((n, nextHeader)) for nextHeader in range(256)] for n in range(16)]

#: integrity id -> (hashlib name, key length, truncated ICV length)
INTEGRITY = {
    IntegId.HMAC_SHA1_96: ("sha1", 20, 12),
    IntegId.HMAC_SHA2_256_128: ("sha256", 32, 16),
    IntegId.HMAC_SHA2_384_192: ("sha384", 48, 24),
    IntegId.HMAC_SHA2_512_256: ("sha512", 64, 32),
}

#: AEAD encryption ids -> (cryptography class, key lengths in octets)
AEAD = {
    EncrId.AES_GCM_16: (AESGCM, (16, 24, 32)),
    EncrId.CHACHA20_POLY1305: (ChaCha20Poly1305, (32,)),
}

SUPPORTED_ENCRYPTION = frozenset(AEAD) | {EncrId.AES_CBC, EncrId.NULL}

_SALT = 4


class EspError(ValueError):
    """
    An SA's algorithms or keys cannot be used (raised when an L{EspSA} is
    made, never for a packet).
    """


class ReplayWindow:
    """
    The receiver's anti-replay window (RFC 4303 3.4.3 and Appendix A), over
    64-bit sequence numbers.

    Packets are first L{check}ed (before the ICV is verified, which is the
    expensive part) and L{accept}ed once it has been. L{EspSA} does the
    same steps inline on its per-packet path (two calls less a packet);
    these methods stay the reference the tests hold both to.

    @ivar size: the window in packets (0: no replay check; the ESN high
        half is then still inferred, as Appendix A asks, with a window of
        2**31).
    @ivar top: the highest sequence number accepted (64 bits; 0: none).
    @ivar bitmap: bit C{i} set when C{top - i} was accepted.
    @ivar mask: C{2 ** size - 1}, what the bitmap keeps.
    """

    def __init__(self, size=128):
        self.size = size
        self.top = 0
        self.bitmap = 0
        self.mask = (1 << size) - 1

    def infer(self, low, esn):
        """
        The full sequence number of a packet carrying the low 32 bits
        C{low} (RFC 4303 Appendix A2.2); L{None} when it would fall before
        the first sub-space.
        """
        if not esn:
            return low
        window = self.size or 2 ** 31
        top = self.top
        topLow, topHigh = top & 0xFFFFFFFF, top >> 32
        if topLow >= window - 1:
            high = topHigh if low >= topLow - window + 1 else topHigh + 1
        else:
            high = topHigh - 1 if low >= (topLow - window + 1) & 0xFFFFFFFF else topHigh
        if high < 0 or high > 0xFFFFFFFF:
            return None
        return (high << 32) | low

    def check(self, seq):
        """
        L{None} if C{seq} may be accepted, else the drop reason.
        """
        if seq == 0:
            # Sequence number 0 is never sent (RFC 4303 3.3.3).
            return TOO_OLD
        if not self.size or seq > self.top:
            return None
        offset = self.top - seq
        if offset >= self.size:
            return TOO_OLD
        if (self.bitmap >> offset) & 1:
            return REPLAYED
        return None

    def accept(self, seq):
        """
        Record C{seq}, which passed L{check} and the ICV.
        """
        if not self.size:
            if seq > self.top:
                self.top = seq
            return
        if seq > self.top:
            shift = seq - self.top
            self.bitmap = ((self.bitmap << shift) | 1) & self.mask if shift < self.size else 1
            self.top = seq
        else:
            self.bitmap |= 1 << (self.top - seq)


class EspSA:
    """
    One ESP SA: keys made into cipher objects once, a sequence counter
    (outbound) or a replay window (inbound), and per-reason drop counts.

    @ivar spi: the SPI (int).
    @ivar esn: extended sequence numbers.
    @ivar seq: outbound: the last sequence number used (64 bits with ESN).
    @ivar window: inbound: the L{ReplayWindow}.
    @ivar drops: a C{Counter} of drop reasons.
    @ivar exhausted: the sequence number space is used up (RFC 4303 3.3.3:
        the SA must be rekeyed; no more packets are sealed).
    @ivar softSeq: the sequence number at which the SA should be rekeyed:
        a sixteenth of the space before the end.
    """

    _log = Logger()

    def __init__(self, spi, encryption, keyLength, encryptionKey, integrity, integrityKey, esn=False,
                 replayWindow=128):
        self.spi = spi
        self.esn = esn
        self.seq = 0
        self.window = ReplayWindow(replayWindow)
        self.drops = Counter()
        self.exhausted = False
        self._spiBytes = struct.pack("!I", spi)
        self._maxSeq = 0xFFFFFFFFFFFFFFFF if esn else 0xFFFFFFFF
        self.softSeq = self._maxSeq - (self._maxSeq >> 4)
        key = bytes(encryptionKey)
        self._aead = None
        self._cbc = None
        self._hash = None
        if encryption in AEAD:
            if integrity not in (None, IntegId.NONE):
                raise EspError("%s takes no integrity algorithm" % (EncrId(encryption).name,))
            cls, lengths = AEAD[encryption]
            if len(key) - _SALT not in lengths:
                raise EspError("%s: %d octets of key material" % (EncrId(encryption).name, len(key)))
            self._aead = cls(key[:-_SALT])
            self._salt = key[-_SALT:]
            # The IV is the sequence number unless a subclass says otherwise.
            self._sequenceIv = type(self).explicitIv is EspSA.explicitIv
            self._ivLength, self._icvLength, self._align = 8, 16, 4
        elif encryption in (EncrId.AES_CBC, EncrId.NULL):
            if integrity not in INTEGRITY:
                raise EspError("integrity algorithm %r is not supported" % (integrity,))
            self._hash, integLength, self._icvLength = INTEGRITY[integrity]
            if len(integrityKey) != integLength:
                raise EspError("%s: %d octets of key" % (IntegId(integrity).name, len(integrityKey)))
            self._integrityKey = bytes(integrityKey)
            if encryption == EncrId.AES_CBC:
                if len(key) not in (16, 24, 32) or (keyLength and keyLength != 8 * len(key)):
                    raise EspError("AES-CBC: %d octets of key" % (len(key),))
                # One CBC context each way for the SA's life, chained across
                # packets (cryptography fixes the IV of a context): a packet
                # is sealed by feeding a nonce block before it, whose output
                # E_K(nonce ^ previous block) is the packet's IV, which is
                # unpredictable without the key (NIST SP 800-38A appendix C);
                # it is opened by feeding its IV before its blocks and
                # dropping the first output block.
                self._cbc = algorithms.AES(key)
                self._cbcEncryptor = Cipher(self._cbc, modes.CBC(bytes(16))).encryptor()
                self._cbcDecryptor = Cipher(self._cbc, modes.CBC(bytes(16))).decryptor()
                self._ivLength, self._align = 16, 16
            else:
                self._ivLength, self._align = 0, 4
        else:
            raise EspError("encryption algorithm %r is not supported" % (encryption,))
        self.overhead = 8 + self._ivLength + 2 + self._icvLength + self._align - 1

    @classmethod
    def fromKernelSA(cls, sa, replayWindow=128):
        """
        The codec for the L{ikedtx.kernel.interfaces.KernelSA} C{sa}.
        """
        if sa.encryption is None:
            raise EspError("AH is not supported")
        encr, keyLength = sa.encryption
        return cls(sa.spi, encr, keyLength, sa.encryptionKey, sa.integrity, sa.integrityKey, esn=sa.esn,
                   replayWindow=replayWindow if sa.replayWindow else 0)

    # Outbound

    def explicitIv(self, seq):
        """
        The 8-octet IV of an AEAD packet: its 64-bit sequence number, which
        never repeats under one key (RFC 4106 3.1, RFC 7634 2).
        """
        return _IV64.pack(seq)

    def seal(self, payload, nextHeader):
        """
        The ESP packet carrying C{payload} (bytes) with C{nextHeader}, or
        L{None} once the sequence numbers are used up.
        """
        seq = self.seq
        if seq >= self._maxSeq:
            self.exhausted = True
            self.drops[SEQUENCE_OVERFLOW] += 1
            return None
        self.seq = seq = seq + 1
        trailer = _TRAILERS[(-(len(payload) + 2)) % self._align][nextHeader]
        aead = self._aead
        if aead is not None:
            if self._sequenceIv:
                header = _HEADER_IV.pack(self.spi, seq & 0xFFFFFFFF, seq)
            else:
                header = _SPI_SEQ.pack(self.spi, seq & 0xFFFFFFFF) + self.explicitIv(seq)
            aad = self._spiBytes + _SEQ_HIGH.pack(seq >> 32) + header[4:8] if self.esn else header[:8]
            return header + aead.encrypt(self._salt + header[8:], payload + trailer, aad)
        header = _SPI_SEQ.pack(self.spi, seq & 0xFFFFFFFF)
        if self._cbc is not None:
            body = self._cbcEncryptor.update(_NONCE_PAD + _IV64.pack(seq) + payload + trailer)
        else:
            body = payload + trailer
        signed = header + body
        mac = _hmac.digest(self._integrityKey, signed + _SEQ_HIGH.pack(seq >> 32) if self.esn else signed, self._hash)
        return signed + mac[:self._icvLength]

    # Inbound

    def open(self, packet):
        """
        C{(nextHeader, payload, seq)} of the ESP packet C{packet} (its SPI
        is this SA's), or L{None} if it is dropped.
        """
        try:
            return self._open(packet)
        except Exception:
            # Nothing a peer sends may raise; an unforeseen failure is a drop.
            self._log.failure("ESP SA {spi:08x}: unexpected error opening a packet", spi=self.spi)
            self.drops["error"] += 1
            return None

    def _drop(self, reason, seq=None):
        self.drops[reason] += 1
        self._log.debug("ESP SA {spi:08x}: dropped a packet ({reason}, seq {seq})", spi=self.spi, reason=reason,
                        seq=seq)
        return None

    def _open(self, packet):
        ivLength, icvLength = self._ivLength, self._icvLength
        length = len(packet)
        if length < 8 + ivLength + 2 + icvLength:
            return self._drop(TRUNCATED)
        low = _SEQ_LOW.unpack_from(packet, 4)[0]
        window = self.window
        top = window.top
        if self.esn:
            seq = window.infer(low, True)
            if seq is None:
                return self._drop(TOO_OLD, low)
        else:
            seq = low
        # The replay check (RFC 4303 3.4.3), before the expensive ICV.
        if seq == 0:
            # Sequence number 0 is never sent (RFC 4303 3.3.3).
            return self._drop(TOO_OLD, seq)
        size = window.size
        if size and seq <= top:
            offset = top - seq
            if offset >= size:
                return self._drop(TOO_OLD, seq)
            if (window.bitmap >> offset) & 1:
                return self._drop(REPLAYED, seq)
        aead = self._aead
        if aead is not None:
            if self.esn:
                aad = packet[:4] + _SEQ_HIGH.pack(seq >> 32) + packet[4:8]
            else:
                aad = packet[:8]
            try:
                plain = aead.decrypt(self._salt + packet[8:16], memoryview(packet)[16:], aad)
            except InvalidTag:
                return self._drop(BAD_ICV, seq)
        else:
            signed = packet[:-icvLength]
            mac = _hmac.digest(self._integrityKey, signed + _SEQ_HIGH.pack(seq >> 32) if self.esn else signed,
                               self._hash)
            if not _hmac.compare_digest(mac[:icvLength], packet[-icvLength:]):
                return self._drop(BAD_ICV, seq)
            if self._cbc is not None:
                encrypted = signed[8 + ivLength:]
                if not encrypted or len(encrypted) % 16:
                    return self._drop(TRUNCATED, seq)
                plain = self._cbcDecryptor.update(signed[8:])[16:]
            else:
                plain = signed[8:]
        padLength, nextHeader = plain[-2], plain[-1]
        end = len(plain) - 2 - padLength
        if end < 0 or (padLength and plain[end:-2] != _PADS[padLength]):
            # The ICV held, so the peer padded wrongly (RFC 4303 2.4).
            return self._drop(BAD_PADDING, seq)
        # Accepted: into the window.
        if size:
            if seq > top:
                shift = seq - top
                window.bitmap = ((window.bitmap << shift) | 1) & window.mask if shift < size else 1
                window.top = seq
            else:
                window.bitmap |= 1 << (top - seq)
        elif seq > top:
            window.top = seq
        return nextHeader, plain[:end], seq


def spiOf(packet):
    """
    The SPI of the ESP packet C{packet}, or L{None} if it is too short.
    """
    if len(packet) < 8:
        return None
    return _SEQ_HIGH.unpack_from(packet, 0)[0]

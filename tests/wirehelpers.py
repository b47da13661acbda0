# -*- test-case-name: tests.test_wire_message -*-
"""
Test doubles and builders shared by the wire tests.

The SK ciphers here are structural stand-ins for
C{ikedtx.crypto.interfaces.ISKCipher} (sealedLength, seal, open): the wire
layer is written against that contract, not against the crypto package.
L{CbcHmacCipher} is a real ENCR_AES_CBC + AUTH_HMAC_SHA2_256_128 transform
(RFC 3602, RFC 4868) so that tshark can decrypt what the codec builds and
check its ICVs; L{NullCipher} protects nothing but frames like one.
"""

import hashlib
import hmac
import ipaddress
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class IntegrityError(Exception):
    """
    Stand-in for C{ikedtx.crypto.errors.IntegrityError}.
    """


class CbcHmacCipher:
    """
    AES-CBC with HMAC-SHA2-256-128 (RFC 7296 3.14 framing).

    @ivar calls: a record of (method, aad) calls, to assert on.
    """

    blockSize = 16
    icvLength = 16

    def __init__(self, encryptionKey, integrityKey, ivs=None):
        self.encryptionKey = encryptionKey
        self.integrityKey = integrityKey
        self._counter = 0
        self._ivs = ivs
        self.calls = []

    def _nextIv(self):
        if self._ivs is not None:
            return self._ivs.pop(0)
        self._counter += 1
        return self._counter.to_bytes(16, "big")

    def sealedLength(self, n):
        return self.blockSize + (n // self.blockSize + 1) * self.blockSize + self.icvLength

    def seal(self, aad, plaintext):
        self.calls.append(("seal", bytes(aad)))
        iv = self._nextIv()
        padLength = self.blockSize - 1 - len(plaintext) % self.blockSize
        padded = bytes(plaintext) + bytes(range(1, padLength + 1)) + bytes([padLength])
        encryptor = Cipher(algorithms.AES(self.encryptionKey), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(padded) + encryptor.finalize()
        icv = hmac.new(self.integrityKey, aad + iv + ciphertext, hashlib.sha256).digest()
        return iv + ciphertext + icv[: self.icvLength]

    def open(self, aad, sealed):
        self.calls.append(("open", bytes(aad)))
        sealed = bytes(sealed)
        if len(sealed) < 2 * self.blockSize + self.icvLength or (
            len(sealed) - self.icvLength
        ) % self.blockSize:
            raise IntegrityError("sealed length %d" % (len(sealed),))
        iv = sealed[: self.blockSize]
        ciphertext = sealed[self.blockSize : -self.icvLength]
        icv = hmac.new(self.integrityKey, bytes(aad) + iv + ciphertext, hashlib.sha256).digest()
        if not hmac.compare_digest(icv[: self.icvLength], sealed[-self.icvLength :]):
            raise IntegrityError("ICV mismatch")
        decryptor = Cipher(algorithms.AES(self.encryptionKey), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        padLength = padded[-1]
        if padLength + 1 > len(padded):
            raise IntegrityError("pad length")
        return padded[: -padLength - 1]


class NullCipher:
    """
    Frames like a block cipher with an 8-octet IV and a 12-octet ICV, but
    the "ciphertext" is the plaintext and the ICV a truncated SHA-256 of
    aad + IV + ciphertext.
    """

    ivLength = 8
    icvLength = 12
    blockSize = 8

    def __init__(self):
        self.calls = []

    def sealedLength(self, n):
        return self.ivLength + (n // self.blockSize + 1) * self.blockSize + self.icvLength

    def seal(self, aad, plaintext):
        self.calls.append(("seal", bytes(aad)))
        padLength = self.blockSize - 1 - len(plaintext) % self.blockSize
        body = bytes(self.ivLength) + bytes(plaintext) + bytes(padLength) + bytes([padLength])
        return body + hashlib.sha256(bytes(aad) + body).digest()[: self.icvLength]

    def open(self, aad, sealed):
        self.calls.append(("open", bytes(aad)))
        sealed = bytes(sealed)
        if len(sealed) < self.ivLength + self.blockSize + self.icvLength:
            raise IntegrityError("short")
        body, icv = sealed[: -self.icvLength], sealed[-self.icvLength :]
        if not hmac.compare_digest(hashlib.sha256(bytes(aad) + body).digest()[: self.icvLength], icv):
            raise IntegrityError("ICV mismatch")
        padded = body[self.ivLength :]
        if (len(padded) % self.blockSize) or padded[-1] + 1 > len(padded):
            raise IntegrityError("padding")
        return padded[: -padded[-1] - 1]


# -- pcap ---------------------------------------------------------------------

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # Ethernet
_ETHERTYPE = {4: b"\x08\x00", 6: b"\x86\xdd"}


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udpFrame(source, destination, sourcePort, destinationPort, payload):
    """
    An Ethernet frame holding an IPv4 or IPv6 UDP datagram.
    """
    source = ipaddress.ip_address(source)
    destination = ipaddress.ip_address(destination)
    udpLength = 8 + len(payload)
    if source.version == 4:
        pseudo = source.packed + destination.packed + struct.pack("!BBH", 0, 17, udpLength)
    else:
        pseudo = source.packed + destination.packed + struct.pack("!I3xB", udpLength, 17)
    udp = struct.pack("!HHHH", sourcePort, destinationPort, udpLength, 0) + payload
    checksum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", checksum) + udp[8:]
    if source.version == 4:
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
            source.packed, destination.packed,
        )
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    else:
        ip = struct.pack("!IHBB16s16s", 0x60000000, len(udp), 17, 64, source.packed, destination.packed)
    ethernet = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + _ETHERTYPE[source.version]
    return ethernet + ip + udp


def writePcap(path, frames):
    """
    Write Ethernet C{frames} to a classic pcap file, one per second.
    """
    with open(path, "wb") as f:
        f.write(_PCAP_HEADER)
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i, 0, len(frame), len(frame)))
            f.write(frame)


def readPcap(path):
    """
    Read a classic (little- or big-endian, micro- or nanosecond) pcap file
    or a pcapng file's Enhanced/Simple Packet Blocks.

    @return: L{list} of C{(linktype, frame)}.
    """
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        return _readPcapng(data)
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError("not a pcap file")
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    frames = []
    offset = 24
    while offset + 16 <= len(data):
        _, _, captured, _ = struct.unpack_from(endian + "IIII", data, offset)
        offset += 16
        frames.append((linktype, data[offset : offset + captured]))
        offset += captured
    return frames


def _readPcapng(data):
    frames = []
    linktypes = []
    offset = 0
    endian = "<"
    while offset + 12 <= len(data):
        blockType = struct.unpack_from(endian + "I", data, offset)[0]
        if blockType == 0x0A0D0D0A:
            endian = "<" if data[offset + 8 : offset + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            linktypes = []
        blockType, length = struct.unpack_from(endian + "II", data, offset)
        if blockType == 1:
            linktypes.append(struct.unpack_from(endian + "H", data, offset + 8)[0])
        elif blockType == 6:
            interface, _, _, captured, _ = struct.unpack_from(endian + "IIIII", data, offset + 8)
            frames.append((linktypes[interface], data[offset + 28 : offset + 28 + captured]))
        offset += length
    return frames


def udpPayloads(frames):
    """
    Extract UDP datagrams from Ethernet (1), raw IP (101) or Linux cooked
    (113) frames.

    @return: L{list} of C{(source, destination, sourcePort,
        destinationPort, payload)}.
    """
    out = []
    for linktype, frame in frames:
        if linktype == 1:
            ethertype, ip = frame[12:14], frame[14:]
        elif linktype == 113:
            ethertype, ip = frame[14:16], frame[16:]
        elif linktype == 101:
            ethertype = b"\x08\x00" if frame[0] >> 4 == 4 else b"\x86\xdd"
            ip = frame
        else:
            continue
        if ethertype == b"\x08\x00":
            headerLength = (ip[0] & 0x0F) * 4
            if ip[9] != 17:
                continue
            source, destination = ipaddress.IPv4Address(ip[12:16]), ipaddress.IPv4Address(ip[16:20])
            totalLength = struct.unpack_from("!H", ip, 2)[0]
            udp = ip[headerLength:totalLength]
        elif ethertype == b"\x86\xdd":
            if ip[6] != 17:
                continue
            source, destination = ipaddress.IPv6Address(ip[8:24]), ipaddress.IPv6Address(ip[24:40])
            udp = ip[40 : 40 + struct.unpack_from("!H", ip, 4)[0]]
        else:
            continue
        sourcePort, destinationPort, length = struct.unpack_from("!HHH", udp)
        out.append((source, destination, sourcePort, destinationPort, udp[8:length]))
    return out

# -*- test-case-name: tests.test_auth_eap -*-
"""
MD4 (RFC 1320), which MS-CHAPv2's NtPasswordHash needs.

OpenSSL 3 keeps MD4 in its "legacy" provider, which is often not loaded, and
cryptography does not offer it, so here it is, small and tested against the
RFC 1320 test suite.  MD4 is broken; it is used only because MS-CHAPv2
requires it, never as a security primitive of ours.
"""

import struct

_MASK = 0xFFFFFFFF


def _rotl(x, n):
    x &= _MASK
    return ((x << n) | (x >> (32 - n))) & _MASK


def _f(x, y, z):
    return (x & y) | (~x & z)


def _g(x, y, z):
    return (x & y) | (x & z) | (y & z)


def _h(x, y, z):
    return x ^ y ^ z


# (word index, shift) per step of each round (RFC 1320 3.4).
_ROUND1 = [(k, (3, 7, 11, 19)[k % 4]) for k in range(16)]
_ROUND2 = [(k, (3, 5, 9, 13)[i % 4]) for i, k in enumerate([0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15])]
_ROUND3 = [(k, (3, 9, 11, 15)[i % 4]) for i, k in enumerate([0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15])]


def md4(data):
    """
    The MD4 digest (16 octets) of C{data}.
    """
    data = bytes(data)
    length = len(data)
    # Padding: 0x80, zeros to 56 mod 64, then the bit length, little-endian.
    message = data + b"\x80" + b"\x00" * ((55 - length) % 64) + struct.pack("<Q", (length * 8) & 0xFFFFFFFFFFFFFFFF)
    state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    for offset in range(0, len(message), 64):
        x = struct.unpack("<16I", message[offset : offset + 64])
        a, b, c, d = state
        for round_, function, constant in (
            (_ROUND1, _f, 0),
            (_ROUND2, _g, 0x5A827999),
            (_ROUND3, _h, 0x6ED9EBA1),
        ):
            for k, s in round_:
                a = _rotl(a + function(b, c, d) + x[k] + constant, s)
                a, b, c, d = d, a, b, c
        state = [(v + w) & _MASK for v, w in zip(state, (a, b, c, d))]
    return struct.pack("<4I", *state)

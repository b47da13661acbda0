# -*- test-case-name: tests.test_crypto_keymat -*-
"""
Small helpers shared by the crypto modules: wiping secrets and constant-time
comparison.
"""

import hmac
import os


def defaultRandom(n):
    """
    The default randomness source: C{os.urandom}.  Every function that needs
    randomness takes a C{random} callable with this signature instead, so that
    tests are deterministic.
    """
    return os.urandom(n)


def wipe(*buffers):
    """
    Overwrite each bytearray (or writable memoryview) with zeros.  Immutable
    objects and C{None} are skipped: only what we own can be wiped.
    """
    for buf in buffers:
        if isinstance(buf, bytearray):
            buf[:] = bytes(len(buf))
        elif isinstance(buf, memoryview) and not buf.readonly:
            buf[:] = bytes(buf.nbytes)


def constantTimeEqual(a, b):
    """
    Compare two byte strings without leaking where they differ.
    """
    return hmac.compare_digest(bytes(a), bytes(b))


def xorBytes(a, b):
    """
    XOR two equal-length byte strings.
    """
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def requireRandom(random, n):
    """
    Call C{random(n)} and insist that it returned exactly C{n} bytes: a
    broken randomness source must never silently shorten a nonce, IV or key.
    """
    data = random(n)
    if not isinstance(data, (bytes, bytearray)) or len(data) != n:
        raise ValueError("randomness source returned %r bytes, wanted %d" % (
            len(data) if isinstance(data, (bytes, bytearray)) else type(data), n))
    return bytes(data)

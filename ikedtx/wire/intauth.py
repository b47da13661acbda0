# -*- test-case-name: tests.test_wire_intauth -*-
"""
The parts of an IKE_INTERMEDIATE message that RFC 9242 3.3.2 authenticates.

    IntAuth_[i|r]N_A: the IKE header, the unencrypted payloads (if any) and
        the generic header of the Encrypted payload, the IKE header's Length
        and the Encrypted payload's Payload Length adjusted as if the IV,
        padding, Pad Length and ICV were not there;
    IntAuth_[i|r]N_P: the inner payloads, not yet encrypted.

A fragmented message (RFC 7383) is authenticated as if it had been sent
whole: its IKE header's Next Payload names the Encrypted payload.  The parts
do not depend on the cipher, so the sender computes them from the payloads
it encodes and the receiver from the plaintext it decrypted.
"""

from ikedtx.wire.constants import IKE_HEADER_LENGTH, PayloadType
from ikedtx.wire.header import packHeader
from ikedtx.wire.payloads import _GENERIC, encodePayloads

_SK_HEADER = 4


def intAuthParts(spiI, spiR, exchangeType, flags, messageId, innerType, inner, outer=(), minorVersion=0):
    """
    C{(IntAuth_A, IntAuth_P)} of one message.

    @param innerType: the type of the first inner payload.
    @param inner: the encoded inner payload chain.
    @param outer: the unencrypted payloads before the Encrypted payload.
    @return: two L{bytes}.
    """
    first, outerData = encodePayloads(list(outer), PayloadType.SK)
    inner = bytes(inner)
    authenticated = (
        packHeader(spiI, spiR, first, minorVersion, exchangeType, flags, messageId,
                   IKE_HEADER_LENGTH + len(outerData) + _SK_HEADER + len(inner))
        + outerData
        + _GENERIC.pack(innerType, 0, _SK_HEADER + len(inner))
    )
    return authenticated, inner


def intAuthPartsOfPayloads(header, payloads):
    """
    The parts of a message we send: its L{Header} (from the first datagram
    sent) and the inner payloads it was encoded from.
    """
    innerType, inner = encodePayloads(list(payloads))
    return intAuthParts(header.spiI, header.spiR, header.exchangeType, header.flags, header.messageId, innerType,
                        inner, minorVersion=header.minorVersion)


def intAuthPartsOfMessage(message):
    """
    The parts of a message we received and decrypted (or reassembled): a
    L{ikedtx.wire.message.Message} with its C{plaintext}.

    @raise ValueError: the message was not decrypted.
    """
    if message.plaintext is None:
        raise ValueError("the message has not been decrypted")
    outer = [] if message.isFragment else message.payloads[:-1]
    return intAuthParts(message.spiI, message.spiR, message.exchangeType, message.flags, message.messageId,
                        message.innerType, message.plaintext, outer, message.minorVersion)

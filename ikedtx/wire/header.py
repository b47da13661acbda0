# -*- test-case-name: tests.test_wire_message -*-
"""
The IKE header (RFC 7296 3.1).

                         1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                       IKE SA Initiator's SPI                  |
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                       IKE SA Responder's SPI                  |
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                          Message ID                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                            Length                             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
"""

import struct
from typing import NamedTuple

from ikedtx.wire.constants import IKE_HEADER_LENGTH, HeaderFlag
from ikedtx.wire.errors import InvalidMajorVersion, ShortDatagram

_HEADER = struct.Struct("!8s8sBBBBII")
# Plain ints: an int & an IntFlag member runs enum's Python __rand__.
_INITIATOR = int(HeaderFlag.INITIATOR)
_RESPONSE = int(HeaderFlag.RESPONSE)


class Header(NamedTuple):
    """
    A decoded IKE header.  Flags are kept whole (bits RFC 7296 reserves
    are ignored on receipt but survive a round trip).
    """

    spiI: bytes
    spiR: bytes
    nextPayload: int
    majorVersion: int
    minorVersion: int
    exchangeType: int
    flags: int
    messageId: int
    length: int

    @property
    def isInitiator(self):
        return bool(self.flags & _INITIATOR)

    @property
    def isResponse(self):
        return bool(self.flags & _RESPONSE)

    @classmethod
    def decode(cls, data):
        """
        Decode the first 28 octets of C{data}.

        @raise ShortDatagram: fewer than 28 octets.
        @raise InvalidMajorVersion: the major version is not 2 (the raised
            error carries the decoded header).
        """
        if len(data) < IKE_HEADER_LENGTH:
            raise ShortDatagram(
                "datagram of %d octets is shorter than an IKE header" % (len(data),)
            )
        spiI, spiR, nextPayload, version, exchangeType, flags, messageId, length = (
            _HEADER.unpack_from(data)
        )
        header = cls(
            spiI,
            spiR,
            nextPayload,
            version >> 4,
            version & 0x0F,
            exchangeType,
            flags,
            messageId,
            length,
        )
        if header.majorVersion != 2:
            raise InvalidMajorVersion(
                "IKE major version %d" % (header.majorVersion,),
                header.majorVersion,
                header,
            )
        return header

    def encode(self):
        return _HEADER.pack(
            self.spiI,
            self.spiR,
            self.nextPayload,
            (self.majorVersion << 4) | self.minorVersion,
            self.exchangeType,
            self.flags,
            self.messageId,
            self.length,
        )


def packHeader(spiI, spiR, nextPayload, minorVersion, exchangeType, flags, messageId, length):
    """
    Encode an IKEv2 header without building a L{Header}.
    """
    return _HEADER.pack(
        spiI,
        spiR,
        nextPayload,
        0x20 | minorVersion,
        exchangeType,
        flags,
        messageId,
        length,
    )

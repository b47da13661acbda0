# -*- test-case-name: tests.test_wire_payloads -*-
"""
The EAP payload (RFC 7296 3.16).
"""

import struct

from ikedtx.wire.constants import EapCode, PayloadType
from ikedtx.wire.errors import InvalidSyntax
from ikedtx.wire.payloads.base import _B, Payload, _bytes, _check, registerPayload


_EAP_HEADER = struct.Struct("!BBH")


@registerPayload
class EAP(Payload):
    """
    EAP payload (RFC 7296 3.16) holding one EAP message (RFC 3748 4):
    Code, Identifier, Length, and for Request/Response a Type and its
    data.  Other codes keep their octets after the header in C{typeData}
    with C{eapType} C{None}.
    """

    payloadType = PayloadType.EAP
    minimumBodyLength = 4
    compareAttributes = ("code", "identifier", "eapType", "typeData", "critical")

    def __init__(self, code, identifier, eapType=None, typeData=b"", critical=False):
        self.code = code
        self.identifier = identifier
        self.eapType = eapType
        self.typeData = _bytes(typeData, "typeData")
        self.critical = critical

    @property
    def message(self):
        """
        The whole EAP message octets (what EAP methods authenticate).
        """
        return self.encodeBody()

    def encodeBody(self):
        if self.eapType is None:
            rest = self.typeData
        else:
            rest = _B.pack(_check(self.eapType, 8, "EAP type")) + self.typeData
        length = _check(4 + len(rest), 16, "EAP length")
        return (
            _EAP_HEADER.pack(
                _check(self.code, 8, "EAP code"), _check(self.identifier, 8, "identifier"), length
            )
            + rest
        )

    @classmethod
    def decodeBody(cls, body):
        code, identifier, length = _EAP_HEADER.unpack_from(body)
        if length != len(body):
            raise InvalidSyntax(
                "EAP Length %d in a %d-octet EAP payload body" % (length, len(body))
            )
        if code in (EapCode.REQUEST, EapCode.RESPONSE):
            if length < 5:
                raise InvalidSyntax("EAP request/response without a Type")
            return cls(code, identifier, body[4], bytes(body[5:]))
        if code in (EapCode.SUCCESS, EapCode.FAILURE) and length != 4:
            raise InvalidSyntax("EAP success/failure of length %d" % (length,))
        return cls(code, identifier, None, bytes(body[4:]))

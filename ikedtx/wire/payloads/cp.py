# -*- test-case-name: tests.test_wire_payloads -*-
"""
The Configuration payload (RFC 7296 3.15) and its attributes.
"""

import ipaddress

from ikedtx.wire.constants import ConfigurationAttribute as CfgAttr, PayloadType, nameOf
from ikedtx.wire.errors import InvalidSyntax
from ikedtx.wire.payloads.base import (
    _B,
    _B3X,
    _HH,
    Payload,
    _Fields,
    _bytes,
    _check,
    registerPayload,
)


_CP_SIZES = {
    CfgAttr.INTERNAL_IP4_ADDRESS: (0, 4),
    CfgAttr.INTERNAL_IP4_NETMASK: (0, 4),
    CfgAttr.INTERNAL_IP4_DNS: (0, 4),
    CfgAttr.INTERNAL_IP4_NBNS: (0, 4),
    CfgAttr.INTERNAL_IP4_DHCP: (0, 4),
    CfgAttr.INTERNAL_IP6_ADDRESS: (0, 17),
    CfgAttr.INTERNAL_IP6_DNS: (0, 16),
    CfgAttr.INTERNAL_IP6_DHCP: (0, 16),
    CfgAttr.INTERNAL_IP4_SUBNET: (0, 8),
    CfgAttr.INTERNAL_IP6_SUBNET: (0, 17),
    CfgAttr.INTERNAL_IP6_PREFIX: (0, 17),
    CfgAttr.P_CSCF_IP4_ADDRESS: (0, 4),
    CfgAttr.P_CSCF_IP6_ADDRESS: (0, 16),
}
_CP_RESERVED_BIT = 0x8000


class ConfigurationAttribute(_Fields):
    """
    A configuration attribute (RFC 7296 3.15.1).  An empty value is a
    request for that attribute.
    """

    compareAttributes = ("attributeType", "value")

    def __init__(self, attributeType, value=b""):
        self.attributeType = attributeType
        self.value = _bytes(value, "value")

    @classmethod
    def fromAddress(cls, attributeType, address, prefixLength=None):
        """
        An attribute holding an address; IPv6 address and subnet attributes
        take a prefix length octet, INTERNAL_IP4_SUBNET a netmask.
        """
        address = ipaddress.ip_address(address)
        value = address.packed
        if prefixLength is not None:
            if address.version == 4:
                value += ipaddress.IPv4Network("0.0.0.0/%d" % (prefixLength,)).netmask.packed
            else:
                value += _B.pack(prefixLength)
        return cls(attributeType, value)

    @property
    def address(self):
        """
        The address at the head of an address attribute, or C{None} when
        empty or not an address.
        """
        if len(self.value) >= 16 and self.attributeType in (
            CfgAttr.INTERNAL_IP6_ADDRESS,
            CfgAttr.INTERNAL_IP6_DNS,
            CfgAttr.INTERNAL_IP6_DHCP,
            CfgAttr.INTERNAL_IP6_SUBNET,
            CfgAttr.INTERNAL_IP6_PREFIX,
            CfgAttr.P_CSCF_IP6_ADDRESS,
            CfgAttr.INTERNAL_IP6_SERVER,
        ):
            return ipaddress.IPv6Address(self.value[:16])
        if len(self.value) >= 4 and self.attributeType in (
            CfgAttr.INTERNAL_IP4_ADDRESS,
            CfgAttr.INTERNAL_IP4_NETMASK,
            CfgAttr.INTERNAL_IP4_DNS,
            CfgAttr.INTERNAL_IP4_NBNS,
            CfgAttr.INTERNAL_IP4_DHCP,
            CfgAttr.INTERNAL_IP4_SUBNET,
            CfgAttr.P_CSCF_IP4_ADDRESS,
            CfgAttr.INTERNAL_IP4_SERVER,
        ):
            return ipaddress.IPv4Address(self.value[:4])
        return None

    @property
    def prefixLength(self):
        """
        The prefix length of an INTERNAL_IP6_ADDRESS/SUBNET/PREFIX or
        INTERNAL_IP4_SUBNET, or C{None}.
        """
        if len(self.value) == 17:
            return self.value[16]
        if len(self.value) == 8 and self.attributeType == CfgAttr.INTERNAL_IP4_SUBNET:
            mask = int.from_bytes(self.value[4:], "big")
            return bin(mask).count("1")
        return None

    def encode(self):
        _check(self.attributeType, 15, "attribute type")
        _check(len(self.value), 16, "attribute length")
        return _HH.pack(self.attributeType, len(self.value)) + self.value


@registerPayload
class Configuration(Payload):
    """
    CP payload (RFC 7296 3.15).

    @ivar cfgType: a L{ikedtx.wire.constants.ConfigurationType}.
    @ivar attributes: L{list} of L{ConfigurationAttribute}.
    """

    payloadType = PayloadType.CP
    minimumBodyLength = 4
    compareAttributes = ("cfgType", "attributes", "critical")

    def __init__(self, cfgType, attributes=(), critical=False):
        self.cfgType = cfgType
        self.attributes = list(attributes)
        self.critical = critical

    def encodeBody(self):
        return _B3X.pack(_check(self.cfgType, 8, "CFG type")) + b"".join(
            a.encode() for a in self.attributes
        )

    @classmethod
    def decodeBody(cls, body):
        attributes = []
        offset = 4
        end = len(body)
        while offset < end:
            if end - offset < 4:
                raise InvalidSyntax("configuration attribute truncated")
            kind, length = _HH.unpack_from(body, offset)
            kind &= ~_CP_RESERVED_BIT
            offset += 4
            if length > end - offset:
                raise InvalidSyntax(
                    "configuration attribute %d of %d octets overruns its payload"
                    % (kind, length)
                )
            sizes = _CP_SIZES.get(kind)
            if sizes is not None and length not in sizes:
                raise InvalidSyntax(
                    "%s of %d octets" % (nameOf(CfgAttr, kind), length)
                )
            if kind == CfgAttr.SUPPORTED_ATTRIBUTES and length % 2:
                raise InvalidSyntax("SUPPORTED_ATTRIBUTES of odd length %d" % (length,))
            attributes.append(ConfigurationAttribute(kind, bytes(body[offset : offset + length])))
            offset += length
        return cls(body[0], attributes)

# -*- test-case-name: tests.test_wire_payloads -*-
"""
IKEv2 payloads (RFC 7296 section 3, RFC 7383 2.5): one class per payload
type, each with a symmetric C{encodeBody}/C{decodeBody}, registered by type
like the record types of L{twisted.names.dns}.

Every payload starts with the generic payload header (RFC 7296 3.2):

                         1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    | Next Payload  |C|  RESERVED   |         Payload Length        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

which belongs to the chain, not to the payload: L{encodePayloads} and
L{decodePayloads} write and read it, and the classes here see only the body.

Decoding checks every length before it slices and raises only
L{ikedtx.wire.errors.MalformedMessage} subclasses.  Fields RFC 7296 marks
RESERVED are sent as zero and ignored on receipt; everything else (the
critical bit, counts, SPI sizes, attribute formats, unknown types) is kept,
so that a conformant message re-encodes to the same octets.

The package is split along the payload families and re-exports every
name, so C{from ikedtx.wire import payloads as P; P.Notify} is the way in:

  - L{base}: the generic header, the registry, L{Payload}.
  - L{unknown}: L{UnknownPayload}.
  - L{sa}: SA, Proposal, Transform, Attribute.
  - L{ke_nonce}: KE and Nonce.
  - L{identity}: IDi/IDr, CERT, CERTREQ, AUTH.
  - L{notify}: Notify with its typed constructors and accessors.
  - L{delete}, L{vendor}: Delete and Vendor ID.
  - L{ts}: TSi/TSr and their selectors.
  - L{cp}: Configuration and its attributes.
  - L{eap}: EAP.
  - L{sk}: SK and SKF.
  - L{chain}: encoding and decoding payload chains.
"""

from ikedtx.wire.payloads.base import (
    _GENERIC,
    Payload,
    _Fields,
    payloadClass,
    registerPayload,
)
from ikedtx.wire.payloads.unknown import UnknownPayload
from ikedtx.wire.payloads.sa import Attribute, Proposal, SecurityAssociation, Transform
from ikedtx.wire.payloads.ke_nonce import NONCE_MAX, NONCE_MIN, KeyExchange, Nonce
from ikedtx.wire.payloads.identity import (
    Authentication,
    Certificate,
    CertificateRequest,
    IDi,
    IDr,
    IdentificationInitiator,
    IdentificationResponder,
)
from ikedtx.wire.payloads.notify import COOKIE_MAX, NAT_DETECTION_HASH_LENGTH, Notify
from ikedtx.wire.payloads.delete import Delete
from ikedtx.wire.payloads.vendor import VendorID
from ikedtx.wire.payloads.ts import (
    SecurityLabelSelector,
    TSi,
    TSr,
    TrafficSelector,
    TrafficSelectorsInitiator,
    TrafficSelectorsResponder,
    UnknownTrafficSelector,
)
from ikedtx.wire.payloads.cp import Configuration, ConfigurationAttribute
from ikedtx.wire.payloads.eap import EAP
from ikedtx.wire.payloads.sk import SKF_HEADER, _ENCRYPTED, Encrypted, EncryptedFragment
from ikedtx.wire.payloads.chain import decodeChain, decodePayloads, encodePayloads

__all__ = [
    "Payload",
    "payloadClass",
    "registerPayload",
    "UnknownPayload",
    "Attribute",
    "Proposal",
    "SecurityAssociation",
    "Transform",
    "KeyExchange",
    "NONCE_MAX",
    "NONCE_MIN",
    "Nonce",
    "Authentication",
    "Certificate",
    "CertificateRequest",
    "IDi",
    "IDr",
    "IdentificationInitiator",
    "IdentificationResponder",
    "COOKIE_MAX",
    "NAT_DETECTION_HASH_LENGTH",
    "Notify",
    "Delete",
    "VendorID",
    "SecurityLabelSelector",
    "TSi",
    "TSr",
    "TrafficSelector",
    "TrafficSelectorsInitiator",
    "TrafficSelectorsResponder",
    "UnknownTrafficSelector",
    "Configuration",
    "ConfigurationAttribute",
    "EAP",
    "Encrypted",
    "EncryptedFragment",
    "SKF_HEADER",
    "decodeChain",
    "decodePayloads",
    "encodePayloads",
    # Internals that wire.message, wire.fragments and wire.intauth import from here.
    "_ENCRYPTED",
    "_Fields",
    "_GENERIC",
]

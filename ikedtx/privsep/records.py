# -*- test-case-name: tests.test_privsep_commands -*-
"""
The datapath records (L{KernelSA}, L{KernelFlow}, L{KernelSelector},
L{KernelSAUsage}) as the unprivileged worker and the privileged parent pass
them over their socketpair: SAs and flows packed in octets (L{encodeSA},
L{encodeFlow}: every Child SA installs two SAs and their flows, and JSON
was a tenth of the parent's CPU per IKE SA); selectors and usage as JSON
objects of plain values.

The parent decodes what an unprivileged (and possibly compromised) worker
sent, so decoding is strict: exactly the record's fields (a packed record
ends where its last field does), each of its type and range, addresses of
one family that parse, keys of bounded size. What does not fit raises
L{RecordError}, which the parent answers as a refused command.
"""

import json
import struct
from dataclasses import fields
from ipaddress import ip_address

from ikedtx.kernel.interfaces import KernelFlow, KernelSA, KernelSAUsage, KernelSelector

#: The most bytes of one encoded record (an SA with its keys and
#: selectors is well under 4 KiB).
MAX_RECORD_BYTES = 16 * 1024
#: The most selector pairs one SA carries.
MAX_SELECTORS = 64
#: The longest key material (bytes) of one SA direction.
MAX_KEY_BYTES = 128

# ProtocolId AH and ESP (RFC 7296 3.3.1), as the core names them.
_PROTOCOLS = (2, 3)
_MODES = ("tunnel", "transport")
_DIRECTIONS = ("in", "out", "fwd")


class RecordError(ValueError):
    """
    A record from the other side does not fit its type; the message says
    which field and why.
    """


class AddressRefused(ValueError):
    """
    The parent will not put this virtual address on this interface; the
    message says why.
    """


#: Addresses parsed before, by their text (a flow's selectors and an SA's
#: peers come again and again; ipaddress's parser was a fifth of the
#: parent's CPU per SA). Immutable values; emptied when full.
_parsed = {}
_PARSED_MAX = 4096


def _address(value, name):
    if type(value) is not str or len(value) > 45:
        raise RecordError("%s: not an address" % (name,))
    address = _parsed.get(value)
    if address is None:
        try:
            address = ip_address(value)
        except ValueError:
            raise RecordError("%s: not an address: %r" % (name, value))
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()
        _parsed[value] = address
    return address


def _int(value, name, low, high):
    if type(value) is not int or not low <= value <= high:
        raise RecordError("%s: not an integer in [%d, %d]" % (name, low, high))
    return value












#: Each record type's field names (dataclasses.fields() walks the class
#: on every call).
_FIELDS = {cls: frozenset(f.name for f in fields(cls)) for cls in (KernelSelector, KernelSAUsage)}


def _fieldsOf(obj, cls, name):
    if type(obj) is not dict:
        raise RecordError("%s: not an object" % (name,))
    expected = _FIELDS[cls]
    if obj.keys() != expected:
        extra, missing = sorted(set(obj) - expected), sorted(expected - set(obj))
        raise RecordError("%s: fields %s%s" % (name, "unknown %s" % (extra,) if extra else "",
                                               " missing %s" % (missing,) if missing else ""))
    return obj


# Plain values

def selectorToPlain(s):
    return {"startAddress": str(s.startAddress), "endAddress": str(s.endAddress), "ipProtocol": s.ipProtocol,
            "startPort": s.startPort, "endPort": s.endPort}


def selectorFromPlain(obj, name="selector"):
    obj = _fieldsOf(obj, KernelSelector, name)
    start = _address(obj["startAddress"], name + ".startAddress")
    end = _address(obj["endAddress"], name + ".endAddress")
    if start.version != end.version or start > end:
        raise RecordError("%s: not an address range" % (name,))
    startPort = _int(obj["startPort"], name + ".startPort", 0, 65535)
    endPort = _int(obj["endPort"], name + ".endPort", 0, 65535)
    return KernelSelector(start, end, _int(obj["ipProtocol"], name + ".ipProtocol", 0, 255), startPort, endPort)






def usageToPlain(usage):
    return {"bytes": usage.bytes, "packets": usage.packets, "installed": usage.installed,
            "lastUsed": usage.lastUsed}


def usageFromPlain(obj):
    return KernelSAUsage(**_fieldsOf(obj, KernelSAUsage, "usage"))


# Bytes on the wire

def encode(plain):
    return json.dumps(plain, separators=(",", ":"), sort_keys=True).encode("ascii")


def decode(data, fromPlain):
    """
    The record C{fromPlain} makes of the JSON C{data}.

    @raise RecordError: C{data} is too long, not JSON or not the record.
    """
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError("record of %d bytes (at most %d)" % (len(data), MAX_RECORD_BYTES))
    try:
        plain = json.loads(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise RecordError("record is not JSON")
    return fromPlain(plain)


# SAs and flows in octets. An SA: version, SPI, protocol, flags (inbound,
# ESN, and which optional fields follow), mode, family of its addresses,
# number of selector pairs (struct _SA_HEAD); source and destination; the
# encryption transform and key length; the key (a length octet first); the
# integrity transform; its key; the UDP encapsulation ports; reqid and
# replay window; an octet telling which lifetimes follow, and they; the
# IPcomp CPI; the selectors (each: family, first and last address,
# protocol, ports). A flow: version, direction, protocol, mode, IPcomp,
# reqid (_FLOW_HEAD); its local and peer address (each: family, address);
# its source and destination selectors.

#: The first octet of a packed record.
PACKED_VERSION = 1
_FAMILIES = {4: 4, 6: 16}
_PACKED_FAMILY = {4: 4, 16: 6}
_SA_HEAD = struct.Struct("!BIBBBBB")
_FLOW_HEAD = struct.Struct("!BBBBBI")
_SELECTOR_TAIL = struct.Struct("!BHH")
_H = struct.Struct("!H")
_U16PAIR = struct.Struct("!HH")
_U32PAIR = struct.Struct("!II")
_Q = struct.Struct("!Q")
_SA_INBOUND, _SA_ESN, _SA_ENCRYPTION, _SA_KEY_LENGTH, _SA_INTEGRITY, _SA_ENCAPSULATION, _SA_IPCOMP = (
    1, 2, 4, 8, 16, 32, 64)
_SA_FLAGS = 127
_LIFETIMES = ("lifetimeSeconds", "lifetimeBytes", "softLifetimeSeconds", "softLifetimeBytes")
_MODE_CODES = {mode: i for i, mode in enumerate(_MODES)}
_DIRECTION_CODES = {direction: i for i, direction in enumerate(_DIRECTIONS)}
#: Addresses packed before, by their text or their octets (both ways).
_packedText = {}
_fromPacked = {}


def _pack(address):
    packed = getattr(address, "packed", None)
    if packed is None:
        packed = _packedText.get(address)
        if packed is None:
            packed = ip_address(address).packed
            if len(_packedText) >= _PARSED_MAX:
                _packedText.clear()
            _packedText[address] = packed
    return packed


def _packedAddress(packed):
    address = _fromPacked.get(packed)
    if address is None:
        address = ip_address(packed)
        if len(_fromPacked) >= _PARSED_MAX:
            _fromPacked.clear()
        _fromPacked[packed] = address
    return address


def _packSelector(s, out):
    start, end = _pack(s.startAddress), _pack(s.endAddress)
    if len(start) != len(end):
        raise ValueError("selector of two families")
    out += bytes((_PACKED_FAMILY[len(start)],))
    out += start
    out += end
    out += _SELECTOR_TAIL.pack(s.ipProtocol, s.startPort, s.endPort)


def encodeSA(sa):
    """
    The octets of the L{KernelSA} C{sa} (L{decodeSA}).
    """
    source, destination = _pack(sa.source), _pack(sa.destination)
    flags = (sa.inbound and _SA_INBOUND) | (sa.esn and _SA_ESN)
    if sa.encryption is not None:
        flags |= _SA_ENCRYPTION | (_SA_KEY_LENGTH if sa.encryption[1] is not None else 0)
    if sa.integrity is not None:
        flags |= _SA_INTEGRITY
    if sa.encapsulation is not None:
        flags |= _SA_ENCAPSULATION
    if sa.ipcompCpi is not None:
        flags |= _SA_IPCOMP
    out = bytearray(_SA_HEAD.pack(PACKED_VERSION, sa.spi, sa.protocol, flags, _MODE_CODES[sa.mode],
                                  _PACKED_FAMILY[len(source)], len(sa.selectors)))
    out += source
    out += destination
    if sa.encryption is not None:
        out += _H.pack(sa.encryption[0])
        if sa.encryption[1] is not None:
            out += _H.pack(sa.encryption[1])
    key = bytes(sa.encryptionKey)
    out += bytes((len(key),))
    out += key
    if sa.integrity is not None:
        out += _H.pack(sa.integrity)
    key = bytes(sa.integrityKey)
    out += bytes((len(key),))
    out += key
    if sa.encapsulation is not None:
        out += _U16PAIR.pack(*sa.encapsulation)
    out += _U32PAIR.pack(sa.reqid, sa.replayWindow)
    lifetimes = [getattr(sa, name) for name in _LIFETIMES]
    out += bytes((sum(1 << i for i, value in enumerate(lifetimes) if value is not None),))
    for value in lifetimes:
        if value is not None:
            out += _Q.pack(value)
    if sa.ipcompCpi is not None:
        out += _H.pack(sa.ipcompCpi)
    for ours, theirs in sa.selectors:
        _packSelector(ours, out)
        _packSelector(theirs, out)
    return bytes(out)


def _unpackAddress(data, offset, length, name):
    packed = data[offset:offset + length]
    if len(packed) != length:
        raise RecordError("%s: truncated" % (name,))
    return _packedAddress(packed), offset + length


def _unpackSelector(data, offset, name):
    if offset >= len(data):
        raise RecordError("%s: truncated" % (name,))
    length = _FAMILIES.get(data[offset])
    if length is None:
        raise RecordError("%s: address family %d" % (name, data[offset]))
    start, offset = _unpackAddress(data, offset + 1, length, name)
    end, offset = _unpackAddress(data, offset, length, name)
    if start > end:
        raise RecordError("%s: not an address range" % (name,))
    protocol, startPort, endPort = _SELECTOR_TAIL.unpack_from(data, offset)
    return KernelSelector(start, end, protocol, startPort, endPort), offset + _SELECTOR_TAIL.size


def _unpackKey(data, offset, name):
    if offset >= len(data):
        raise RecordError("%s: truncated" % (name,))
    length = data[offset]
    if length > MAX_KEY_BYTES:
        raise RecordError("%s: not key material of at most %d bytes" % (name, MAX_KEY_BYTES))
    key = data[offset + 1:offset + 1 + length]
    if len(key) != length:
        raise RecordError("%s: truncated" % (name,))
    return key, offset + 1 + length


def _checkEnd(data, offset, name):
    if offset != len(data):
        raise RecordError("%s: %d octets after the record" % (name, len(data) - offset))


def decodeSA(data, name="sa"):
    """
    The L{KernelSA} of the octets C{data} (L{encodeSA}).

    @raise RecordError: C{data} is too long, truncated, longer than the
        record, or a field does not fit.
    """
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError("record of %d bytes (at most %d)" % (len(data), MAX_RECORD_BYTES))
    try:
        version, spi, protocol, flags, mode, family, count = _SA_HEAD.unpack_from(data, 0)
        if version != PACKED_VERSION:
            raise RecordError("%s: not a packed record (version %d)" % (name, version))
        if protocol not in _PROTOCOLS:
            raise RecordError("%s.protocol: not AH (2) or ESP (3)" % (name,))
        if flags & ~_SA_FLAGS or (flags & _SA_KEY_LENGTH and not flags & _SA_ENCRYPTION):
            raise RecordError("%s: flags %#x" % (name, flags))
        if mode >= len(_MODES):
            raise RecordError("%s.mode: not one of %s" % (name, ", ".join(_MODES)))
        length = _FAMILIES.get(family)
        if length is None:
            raise RecordError("%s: address family %d" % (name, family))
        if count > MAX_SELECTORS:
            raise RecordError("%s.selectors: not a list of at most %d pairs" % (name, MAX_SELECTORS))
        source, offset = _unpackAddress(data, _SA_HEAD.size, length, name + ".source")
        destination, offset = _unpackAddress(data, offset, length, name + ".destination")
        encryption = None
        if flags & _SA_ENCRYPTION:
            (transform,) = _H.unpack_from(data, offset)
            offset += 2
            keyLength = None
            if flags & _SA_KEY_LENGTH:
                (keyLength,) = _H.unpack_from(data, offset)
                offset += 2
            encryption = (transform, keyLength)
        encryptionKey, offset = _unpackKey(data, offset, name + ".encryptionKey")
        integrity = None
        if flags & _SA_INTEGRITY:
            (integrity,) = _H.unpack_from(data, offset)
            offset += 2
        integrityKey, offset = _unpackKey(data, offset, name + ".integrityKey")
        encapsulation = None
        if flags & _SA_ENCAPSULATION:
            encapsulation = _U16PAIR.unpack_from(data, offset)
            offset += 4
            if not encapsulation[0] or not encapsulation[1]:
                raise RecordError("%s.encapsulation: not an integer in [1, 65535]" % (name,))
        reqid, replayWindow = _U32PAIR.unpack_from(data, offset)
        offset += 8
        if offset >= len(data):
            raise RecordError("%s: truncated" % (name,))
        present = data[offset]
        offset += 1
        if present > 15:
            raise RecordError("%s: lifetimes %#x" % (name, present))
        lifetimes = []
        for i in range(4):
            if present & (1 << i):
                lifetimes.append(_Q.unpack_from(data, offset)[0])
                offset += 8
            else:
                lifetimes.append(None)
        ipcompCpi = None
        if flags & _SA_IPCOMP:
            (ipcompCpi,) = _H.unpack_from(data, offset)
            offset += 2
        selectors = []
        for _ in range(count):
            ours, offset = _unpackSelector(data, offset, name + ".selectors")
            theirs, offset = _unpackSelector(data, offset, name + ".selectors")
            selectors.append((ours, theirs))
    except struct.error:
        raise RecordError("%s: truncated" % (name,))
    _checkEnd(data, offset, name)
    return KernelSA(
        spi=spi, protocol=protocol, inbound=bool(flags & _SA_INBOUND), source=source, destination=destination,
        mode=_MODES[mode], encryption=encryption, encryptionKey=encryptionKey, integrity=integrity,
        integrityKey=integrityKey, esn=bool(flags & _SA_ESN), encapsulation=encapsulation, reqid=reqid,
        lifetimeSeconds=lifetimes[0], lifetimeBytes=lifetimes[1], softLifetimeSeconds=lifetimes[2],
        softLifetimeBytes=lifetimes[3], replayWindow=replayWindow, ipcompCpi=ipcompCpi, selectors=tuple(selectors))


def encodeFlow(flow):
    """
    The octets of the L{KernelFlow} C{flow} (L{decodeFlow}).
    """
    local, peer = _pack(flow.localAddress), _pack(flow.peerAddress)
    out = bytearray(_FLOW_HEAD.pack(PACKED_VERSION, _DIRECTION_CODES[flow.direction], flow.protocol,
                                    _MODE_CODES[flow.mode], 1 if flow.ipcomp else 0, flow.reqid))
    out += bytes((_PACKED_FAMILY[len(local)],))
    out += local
    out += bytes((_PACKED_FAMILY[len(peer)],))
    out += peer
    _packSelector(flow.source, out)
    _packSelector(flow.destination, out)
    return bytes(out)


def decodeFlow(data, name="flow"):
    """
    The L{KernelFlow} of the octets C{data} (L{encodeFlow}).

    @raise RecordError: as L{decodeSA}.
    """
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError("record of %d bytes (at most %d)" % (len(data), MAX_RECORD_BYTES))
    try:
        version, direction, protocol, mode, ipcomp, reqid = _FLOW_HEAD.unpack_from(data, 0)
        if version != PACKED_VERSION:
            raise RecordError("%s: not a packed record (version %d)" % (name, version))
        if direction >= len(_DIRECTIONS):
            raise RecordError("%s.direction: not one of %s" % (name, ", ".join(_DIRECTIONS)))
        if protocol not in _PROTOCOLS:
            raise RecordError("%s.protocol: not AH (2) or ESP (3)" % (name,))
        if mode >= len(_MODES):
            raise RecordError("%s.mode: not one of %s" % (name, ", ".join(_MODES)))
        if ipcomp > 1:
            raise RecordError("%s.ipcomp: not a boolean" % (name,))
        offset = _FLOW_HEAD.size
        addresses = []
        for field in ("localAddress", "peerAddress"):
            if offset >= len(data):
                raise RecordError("%s.%s: truncated" % (name, field))
            length = _FAMILIES.get(data[offset])
            if length is None:
                raise RecordError("%s.%s: address family %d" % (name, field, data[offset]))
            address, offset = _unpackAddress(data, offset + 1, length, name + "." + field)
            addresses.append(address)
        source, offset = _unpackSelector(data, offset, name + ".source")
        destination, offset = _unpackSelector(data, offset, name + ".destination")
    except struct.error:
        raise RecordError("%s: truncated" % (name,))
    _checkEnd(data, offset, name)
    return KernelFlow(source, destination, _DIRECTIONS[direction], protocol, _MODES[mode], addresses[0],
                      addresses[1], reqid, bool(ipcomp))


# Several records in one command (L{ikedtx.privsep.commands.Batch})

#: The operations a batch carries, by their octet on the wire.
BATCH_OPS = {1: "addSA", 2: "deleteSA", 3: "detachSA", 4: "addFlow", 5: "deleteFlow"}
_BATCH_CODES = {name: code for code, name in BATCH_OPS.items()}
#: The most operations of one batch.
MAX_BATCH_OPS = 64
#: The most bytes of one batch (under AMP's 65,535 per value and the
#: parent's bound on a box).
MAX_BATCH_BYTES = 40000


def encodeBatch(operations):
    """
    The bytes of C{operations}, (name, encoded record) pairs: per
    operation its code (one octet), the record's length (two octets, big
    endian) and the record.
    """
    return b"".join(bytes((_BATCH_CODES[name], len(record) >> 8, len(record) & 0xFF)) + record
                    for name, record in operations)


def decodeBatch(data):
    """
    The (name, record bytes) pairs of a batch, in order; each record is
    still to be decoded (L{decode}).

    @raise RecordError: C{data} is too long, holds too many operations, an
        unknown operation or a record longer than what is left.
    """
    if len(data) > MAX_BATCH_BYTES:
        raise RecordError("batch of %d bytes (at most %d)" % (len(data), MAX_BATCH_BYTES))
    operations, offset, end = [], 0, len(data)
    while offset < end:
        if len(operations) == MAX_BATCH_OPS:
            raise RecordError("batch of more than %d operations" % (MAX_BATCH_OPS,))
        if end - offset < 3:
            raise RecordError("batch operation %d: truncated header" % (len(operations),))
        name = BATCH_OPS.get(data[offset])
        if name is None:
            raise RecordError("batch operation %d: unknown code %d" % (len(operations), data[offset]))
        length = (data[offset + 1] << 8) | data[offset + 2]
        offset += 3
        if length > end - offset:
            raise RecordError("batch operation %d: record of %d bytes, %d left" % (len(operations), length,
                                                                                  end - offset))
        operations.append((name, data[offset:offset + length]))
        offset += length
    if not operations:
        raise RecordError("empty batch")
    return operations

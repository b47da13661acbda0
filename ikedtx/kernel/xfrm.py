# -*- test-case-name: tests.test_kernel_xfrm -*-
"""
The Linux XFRM datapath: SAs and policies installed over C{NETLINK_XFRM}.

L{XfrmKernel} turns the core's L{KernelSA} and L{KernelFlow} records into
XFRM_MSG_* requests (the message classes are in L{ikedtx.kernel.xfrmmsg};
pyroute2 encodes them, sends them and reads the kernel's acknowledgement).
The kernel answers netlink requests while the request is being sent, so a
request costs a system call or two and no waiting: each operation runs at
once and returns an already-fired Deferred. The kernel's own events
(acquires for flows without an SA, soft and hard expires) arrive on a
second socket bound to the XFRMNLGRP_ACQUIRE and XFRMNLGRP_EXPIRE multicast
groups, read by the reactor (L{XfrmEventReader} is an C{IReadDescriptor}).

Everything this provider installs carries a reqid in its own range
(L{REQID_BASE} plus the core's reqid), so that L{XfrmKernel.flush} and the
start-up clean-up remove exactly what an ikedtx daemon installed, this one
or a crashed one before it, and nothing another IKE daemon owns.

L{bypassSocket} and L{enableEspInUdp} prepare the daemon's IKE sockets: the
first exempts them from the flows (IKE must not be caught by a
transport-mode flow between the same hosts), the second makes the NAT-T
socket decapsulate ESP in UDP (RFC 3948).
"""

import errno
import os
import socket
from collections import Counter
from ipaddress import ip_address, summarize_address_range

from twisted.internet.defer import fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from ikedtx.kernel import xfrmmsg as m
from ikedtx.kernel.interfaces import IKernel, KernelError, KernelSAUsage, KernelSelector, claimPosition
from ikedtx.wire.constants import EncrId, IntegId, ProtocolId

#: The kernel reqids of this provider: REQID_BASE + (core reqid modulo
#: REQID_SPAN). Anything with a reqid in the range is ours.
REQID_BASE = 0x69000000
REQID_SPAN = 0x01000000

#: At most this many kernel policies for one flow (address and port ranges
#: that are not one prefix each are split into several selectors).
MAX_SELECTORS = 64

#: Policy priorities: lower wins; more specific selectors get lower numbers.
PRIORITY_BASE = 0x4000

_NETLINK_ACK = 0x01 | 0x04  # NLM_F_REQUEST | NLM_F_ACK
_NETLINK_DUMP = 0x01 | 0x300  # NLM_F_REQUEST | NLM_F_DUMP
_NETLINK_CREATE = _NETLINK_ACK | 0x400 | 0x200  # | NLM_F_CREATE | NLM_F_EXCL

_IPPROTO = {ProtocolId.ESP: m.IPPROTO_ESP, ProtocolId.AH: m.IPPROTO_AH}
_PROTOCOL = {v: k for k, v in _IPPROTO.items()}

#: IKE ENCR ids -> (kernel name, salt bytes at the end of the key, ICV bits)
#: for AEAD ciphers (RFC 4106, 4309, 4543, 7634).
AEAD = {
    EncrId.AES_GCM_8: ("rfc4106(gcm(aes))", 4, 64),
    EncrId.AES_GCM_12: ("rfc4106(gcm(aes))", 4, 96),
    EncrId.AES_GCM_16: ("rfc4106(gcm(aes))", 4, 128),
    EncrId.AES_CCM_8: ("rfc4309(ccm(aes))", 3, 64),
    EncrId.AES_CCM_12: ("rfc4309(ccm(aes))", 3, 96),
    EncrId.AES_CCM_16: ("rfc4309(ccm(aes))", 3, 128),
    EncrId.NULL_AUTH_AES_GMAC: ("rfc4543(gcm(aes))", 4, 128),
    EncrId.CHACHA20_POLY1305: ("rfc7539esp(chacha20,poly1305)", 4, 128),
}

#: IKE ENCR ids -> kernel names of the other ciphers (RFC 3602, 3686, 2451).
CIPHERS = {
    EncrId.AES_CBC: "cbc(aes)",
    EncrId.AES_CTR: "rfc3686(ctr(aes))",
    EncrId.TRIPLE_DES: "cbc(des3_ede)",
    EncrId.BLOWFISH: "cbc(blowfish)",
    EncrId.CAST: "cbc(cast5)",
    EncrId.CAMELLIA_CBC: "cbc(camellia)",
    EncrId.NULL: "ecb(cipher_null)",
}

#: IKE INTEG ids -> (kernel name, truncated ICV bits).
INTEGRITY = {
    IntegId.HMAC_MD5_96: ("hmac(md5)", 96),
    IntegId.HMAC_SHA1_96: ("hmac(sha1)", 96),
    IntegId.HMAC_SHA2_256_128: ("hmac(sha256)", 128),
    IntegId.HMAC_SHA2_384_192: ("hmac(sha384)", 192),
    IntegId.HMAC_SHA2_512_256: ("hmac(sha512)", 256),
    IntegId.AES_XCBC_96: ("xcbc(aes)", 96),
    IntegId.AES_CMAC_96: ("cmac(aes)", 96),
}


def kernelReqid(reqid):
    """
    The kernel reqid for the core's C{reqid}.
    """
    return REQID_BASE + (reqid % REQID_SPAN)


def coreReqid(reqid):
    """
    The core's reqid for a kernel reqid of ours, or L{None} if not ours.
    """
    if REQID_BASE <= reqid < REQID_BASE + REQID_SPAN:
        return reqid - REQID_BASE
    return None


def _family(address):
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


def _packed(address):
    """
    An C{xfrm_address_t}: 16 bytes whatever the family.
    """
    return address.packed.ljust(16, b"\0")


def _unpacked(data, family):
    if family == socket.AF_INET:
        return ip_address(bytes(data[:4]))
    return ip_address(bytes(data[:16]))


def _describeSA(sa):
    return "%s SA %08x %s -> %s" % (ProtocolId(sa.protocol).name, sa.spi, sa.source, sa.destination)


def _describeFlow(flow):
    return "%s flow %s-%s -> %s-%s (reqid %d)" % (
        flow.direction, flow.source.startAddress, flow.source.endAddress,
        flow.destination.startAddress, flow.destination.endAddress, flow.reqid)


def _endpoints(flow):
    """
    The tunnel endpoints of C{flow}, as a route made for it remembers them.
    """
    return (ip_address(flow.localAddress), ip_address(flow.peerAddress))


def _kernelError(what, error):
    code = getattr(error, "code", None) or getattr(error, "errno", None)
    reason = os.strerror(code) if code else str(error)
    return KernelError("%s: %s (%s)" % (what, reason, errno.errorcode.get(code, code)))


def portMasks(start, end):
    """
    Split the port range C{start}-C{end} into C{(port, mask)} pairs, as
    XFRM selectors match ports (C{(0, 0)}: any port).
    """
    if start <= 0 and end >= 65535:
        return [(0, 0)]
    out = []
    while start <= end:
        size = 1
        while start % (size * 2) == 0 and start + size * 2 - 1 <= end and size < 65536:
            size *= 2
        out.append((start, (0xFFFF - (size - 1)) & 0xFFFF))
        start += size
    return out


def _icmpTypeCode(selector):
    """
    ICMP selectors carry type and code where ports are (RFC 7296 3.13.1):
    XFRM matches the type as the source port and the code as the
    destination port.
    """
    if selector.startPort == 0 and selector.endPort >= 65535:
        return (0, 0), (0, 0)
    if selector.startPort == selector.endPort:
        return (selector.startPort >> 8, 0xFFFF), (selector.startPort & 0xFF, 0xFFFF)
    if selector.startPort & 0xFF == 0 and selector.endPort & 0xFF == 0xFF and (
            selector.startPort >> 8 == selector.endPort >> 8):
        return (selector.startPort >> 8, 0xFFFF), (0, 0)
    return (0, 0), (0, 0)


def kernelSelectors(source, destination):
    """
    The C{xfrm_selector} field values (dicts) that together match the
    traffic from L{KernelSelector} C{source} to C{destination}.

    @raise KernelError: when that needs more than L{MAX_SELECTORS}.
    """
    proto = source.ipProtocol or destination.ipProtocol
    sources = list(summarize_address_range(ip_address(source.startAddress), ip_address(source.endAddress)))
    destinations = list(summarize_address_range(ip_address(destination.startAddress), ip_address(destination.endAddress)))
    if proto in (1, 58):
        (stype, smask), (dcode, dmask) = _icmpTypeCode(source)
        sports, dports = [(stype, smask)], [(dcode, dmask)]
    elif proto in (6, 17, 132, 33, 136):
        sports = portMasks(source.startPort, source.endPort)
        dports = portMasks(destination.startPort, destination.endPort)
    else:
        sports = dports = [(0, 0)]
    count = len(sources) * len(destinations) * len(sports) * len(dports)
    if count > MAX_SELECTORS:
        raise KernelError("flow %s-%s -> %s-%s needs %d kernel selectors (at most %d)" % (
            source.startAddress, source.endAddress, destination.startAddress, destination.endAddress,
            count, MAX_SELECTORS))
    out = []
    for s in sources:
        for d in destinations:
            for sport, smask in sports:
                for dport, dmask in dports:
                    out.append({
                        "sel_family": _family(s.network_address),
                        "sel_saddr": _packed(s.network_address), "sel_prefixlen_s": s.prefixlen,
                        "sel_daddr": _packed(d.network_address), "sel_prefixlen_d": d.prefixlen,
                        "sel_proto": proto,
                        "sel_sport": sport, "sel_sport_mask": smask,
                        "sel_dport": dport, "sel_dport_mask": dmask,
                    })
    return out


def _priority(selector):
    specific = selector["sel_prefixlen_s"] + selector["sel_prefixlen_d"]
    specific += 2 if selector["sel_proto"] else 0
    specific += bin(selector["sel_sport_mask"]).count("1") // 8 + bin(selector["sel_dport_mask"]).count("1") // 8
    return PRIORITY_BASE - specific


def algorithmAttributes(sa):
    """
    The C{XFRMA_ALG_*} attributes of L{KernelSA} C{sa}.

    @raise KernelError: for an algorithm or key length XFRM cannot take.
    """
    attrs = []
    if sa.protocol == ProtocolId.ESP:
        if sa.encryption is None:
            raise KernelError("%s: ESP without an encryption transform" % (_describeSA(sa),))
        encr, keyLength = sa.encryption
        key = bytes(sa.encryptionKey)
        if encr in AEAD:
            name, salt, icv = AEAD[encr]
            if keyLength is None:
                keyLength = (len(key) - salt) * 8
            if len(key) != keyLength // 8 + salt:
                raise KernelError("%s: %s needs %d key bytes (%d-bit key and %d-byte salt), got %d" % (
                    _describeSA(sa), name, keyLength // 8 + salt, keyLength, salt, len(key)))
            attrs.append(("XFRMA_ALG_AEAD", {
                "alg_name": name.encode(), "alg_key_len": len(key) * 8, "alg_icv_len": icv, "key": key}))
            return attrs
        if encr not in CIPHERS:
            raise KernelError("%s: encryption %s has no XFRM algorithm" % (_describeSA(sa), _name(EncrId, encr)))
        name = CIPHERS[encr]
        if encr == EncrId.AES_CTR and keyLength is not None and len(key) != keyLength // 8 + 4:
            raise KernelError("%s: %s needs %d key bytes (with the 4-byte nonce), got %d" % (
                _describeSA(sa), name, keyLength // 8 + 4, len(key)))
        attrs.append(("XFRMA_ALG_CRYPT", {"alg_name": name.encode(), "alg_key_len": len(key) * 8, "key": key}))
    if sa.integrity is None or sa.integrity == IntegId.NONE:
        if sa.protocol == ProtocolId.AH or sa.encryption[0] == EncrId.NULL:
            raise KernelError("%s: no integrity transform" % (_describeSA(sa),))
        return attrs
    if sa.integrity not in INTEGRITY:
        raise KernelError("%s: integrity %s has no XFRM algorithm" % (_describeSA(sa), _name(IntegId, sa.integrity)))
    name, trunc = INTEGRITY[sa.integrity]
    key = bytes(sa.integrityKey)
    attrs.append(("XFRMA_ALG_AUTH_TRUNC", {
        "alg_name": name.encode(), "alg_key_len": len(key) * 8, "alg_trunc_len": trunc, "key": key}))
    return attrs


def _name(enum, value):
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def saMessage(sa, mode=None, sequences=None):
    """
    The C{xfrm_usersa_info} message (with its attributes) that installs
    L{KernelSA} C{sa} (in C{mode} if given: an ESP SA under an IPcomp
    tunnel is a transport-mode SA).

    @param sequences: C{{oseq, seq, oseq_hi, seq_hi}} the SA starts from
        (an SA moved by L{XfrmKernel.updateSA}), in C{XFRMA_REPLAY_ESN_VAL}.
    """
    mode = mode or sa.mode
    source, destination = ip_address(sa.source), ip_address(sa.destination)
    family = _family(destination)
    msg = m.usersa_info()
    msg["id_daddr"] = _packed(destination)
    msg["id_spi"] = sa.spi
    msg["id_proto"] = _IPPROTO[sa.protocol]
    msg["saddr"] = _packed(source)
    msg["family"] = family
    msg["reqid"] = kernelReqid(sa.reqid)
    msg["mode"] = m.XFRM_MODE_TUNNEL if mode == "tunnel" else m.XFRM_MODE_TRANSPORT
    flags = 0
    if sa.mode == "tunnel":
        # The inner family may differ from the outer one; an ESP SA inside
        # an IPcomp tunnel matches the inner packets too, so its selector
        # is also left open.
        flags |= m.XFRM_STATE_AF_UNSPEC
    else:
        msg["sel_family"] = family
        msg["sel_saddr"] = _packed(source)
        msg["sel_daddr"] = _packed(destination)
        msg["sel_prefixlen_s"] = msg["sel_prefixlen_d"] = source.max_prefixlen
    attrs = algorithmAttributes(sa)
    window = max(0, sa.replayWindow or 0)
    if sa.esn or window > 32 or sequences is not None:
        if sa.esn:
            flags |= m.XFRM_STATE_ESN
        state = {"bmp_len": (window + 31) // 32, "replay_window": window}
        state.update(sequences or {})
        attrs.append(("XFRMA_REPLAY_ESN_VAL", state))
    else:
        msg["replay_window"] = window
    msg["flags"] = flags
    if sa.lifetimeSeconds:
        msg["lft_hard_add_expires_seconds"] = sa.lifetimeSeconds
    if sa.softLifetimeSeconds:
        msg["lft_soft_add_expires_seconds"] = sa.softLifetimeSeconds
    if sa.lifetimeBytes:
        msg["lft_hard_byte_limit"] = sa.lifetimeBytes
    if sa.softLifetimeBytes:
        msg["lft_soft_byte_limit"] = sa.softLifetimeBytes
    if sa.encapsulation is not None:
        sport, dport = sa.encapsulation
        attrs.append(("XFRMA_ENCAP", {
            "encap_type": m.UDP_ENCAP_ESPINUDP, "encap_sport": sport, "encap_dport": dport}))
    msg["attrs"] = attrs
    return msg


def ipcompMessage(sa):
    """
    The C{xfrm_usersa_info} message of the IPcomp SA (RFC 3173, DEFLATE)
    that goes with L{KernelSA} C{sa}: it has the Child SA's mode, the ESP or
    AH SA is then in transport mode inside it.
    """
    source, destination = ip_address(sa.source), ip_address(sa.destination)
    msg = m.usersa_info()
    msg["id_daddr"] = _packed(destination)
    msg["id_spi"] = sa.ipcompCpi
    msg["id_proto"] = m.IPPROTO_COMP
    msg["saddr"] = _packed(source)
    msg["family"] = _family(destination)
    msg["reqid"] = kernelReqid(sa.reqid)
    msg["mode"] = m.XFRM_MODE_TUNNEL if sa.mode == "tunnel" else m.XFRM_MODE_TRANSPORT
    msg["flags"] = m.XFRM_STATE_AF_UNSPEC if sa.mode == "tunnel" else 0
    if sa.lifetimeSeconds:
        msg["lft_hard_add_expires_seconds"] = sa.lifetimeSeconds
    msg["attrs"] = [("XFRMA_ALG_COMP", {"alg_name": b"deflate", "alg_key_len": 0})]
    return msg


def saIdMessage(protocol, spi, destination):
    """
    The C{xfrm_usersa_id} of the SA C{(protocol, spi, destination)}
    (C{protocol} an IP protocol number).
    """
    destination = ip_address(destination)
    msg = m.usersa_id()
    msg["daddr"] = _packed(destination)
    msg["spi"] = spi
    msg["family"] = _family(destination)
    msg["proto"] = protocol
    return msg


def _templates(flow):
    local, peer = ip_address(flow.localAddress), ip_address(flow.peerAddress)
    common = {
        "family": _family(local), "saddr": _packed(local), "id_daddr": _packed(peer),
        "reqid": kernelReqid(flow.reqid),
        "aalgos": 0xFFFFFFFF, "ealgos": 0xFFFFFFFF, "calgos": 0xFFFFFFFF,
    }
    mode = m.XFRM_MODE_TUNNEL if flow.mode == "tunnel" else m.XFRM_MODE_TRANSPORT
    templates = []
    if flow.ipcomp:
        # The IPcomp transform is applied first, in the Child SA's mode;
        # small packets go uncompressed, so it is optional inbound.
        templates.append(dict(common, id_proto=m.IPPROTO_COMP, mode=mode, optional=int(flow.direction != "out")))
        mode = m.XFRM_MODE_TRANSPORT
    templates.append(dict(common, id_proto=_IPPROTO[flow.protocol], mode=mode))
    return templates


_DIRECTIONS = {"in": m.XFRM_POLICY_IN, "out": m.XFRM_POLICY_OUT, "fwd": m.XFRM_POLICY_FWD}


def policyMessages(flow):
    """
    The C{xfrm_userpolicy_info} messages that install L{KernelFlow} C{flow}
    (one per kernel selector), each with its key: C{(direction, selector
    fields)}.
    """
    out = []
    templates = _templates(flow)
    for selector in kernelSelectors(flow.source, flow.destination):
        msg = m.userpolicy_info()
        for name, value in selector.items():
            msg[name] = value
        msg["dir"] = _DIRECTIONS[flow.direction]
        msg["action"] = m.XFRM_POLICY_ALLOW
        msg["priority"] = _priority(selector)
        msg["attrs"] = [("XFRMA_TMPL", {"templates": templates})]
        out.append(((flow.direction, tuple(sorted(selector.items()))), msg))
    return out


def policyIdMessage(key):
    """
    The C{xfrm_userpolicy_id} that names the policy with C{key} (from
    L{policyMessages}).
    """
    direction, selector = key
    msg = m.userpolicy_id()
    for name, value in selector:
        msg[name] = value
    msg["dir"] = _DIRECTIONS[direction]
    return msg


#: The IPv6 leak block (iked's default, lifted by C{-6}): policies for
#: C{::/0} that lose to every negotiated flow (those have priorities below
#: L{PRIORITY_BASE}; a lower number wins).
BLOCK_PRIORITY = PRIORITY_BASE + 0x1000

#: Neighbour discovery (RFC 4861: router and neighbour solicitations and
#: advertisements, redirects) passes the block, so that the host still
#: reaches its on-link peers and routers, IKE over IPv6 included.
PASS_PRIORITY = BLOCK_PRIORITY - 1
NEIGHBOUR_DISCOVERY = (133, 134, 135, 136, 137)


def _any6(**extra):
    selector = {
        "sel_family": socket.AF_INET6, "sel_saddr": _packed(ip_address("::")), "sel_prefixlen_s": 0,
        "sel_daddr": _packed(ip_address("::")), "sel_prefixlen_d": 0, "sel_proto": 0,
        "sel_sport": 0, "sel_sport_mask": 0, "sel_dport": 0, "sel_dport_mask": 0,
    }
    selector.update(extra)
    return selector


def ipv6BlockMessages():
    """
    The C{xfrm_userpolicy_info} messages of the IPv6 leak block, each with
    its key (as L{policyMessages}' keys): C{::/0} blocked in, out and
    forwarded at L{BLOCK_PRIORITY}; neighbour discovery and loopback
    (C{::1} to C{::1}) allowed in and out at L{PASS_PRIORITY}. No
    templates: nothing here asks for an SA.
    """
    out = []
    entries = [(direction, _any6(), m.XFRM_POLICY_BLOCK, BLOCK_PRIORITY) for direction in ("out", "in", "fwd")]
    # ::1 to ::1 never leaves the host: local IPv6 services keep working.
    loopback = _any6(sel_saddr=_packed(ip_address("::1")), sel_prefixlen_s=128,
                     sel_daddr=_packed(ip_address("::1")), sel_prefixlen_d=128)
    entries += [(direction, loopback, m.XFRM_POLICY_ALLOW, PASS_PRIORITY) for direction in ("out", "in")]
    for icmpType in NEIGHBOUR_DISCOVERY:
        # XFRM matches the ICMPv6 type as the source port.
        selector = _any6(sel_proto=58, sel_sport=icmpType, sel_sport_mask=0xFFFF)
        entries += [(direction, selector, m.XFRM_POLICY_ALLOW, PASS_PRIORITY) for direction in ("out", "in")]
    for direction, selector, action, priority in entries:
        msg = m.userpolicy_info()
        for name, value in selector.items():
            msg[name] = value
        msg["dir"] = _DIRECTIONS[direction]
        msg["action"] = action
        msg["priority"] = priority
        out.append(((direction, tuple(sorted(selector.items()))), msg))
    return out


def passMessages(flow):
    """
    The policies that let L{KernelFlow} C{flow}'s traffic through the IPv6
    block without asking for an SA (the user-space datapath protects it):
    L{policyMessages} without templates.
    """
    out = []
    for key, msg in policyMessages(flow):
        msg["attrs"] = []
        out.append((key, msg))
    return out


def _isBlockPolicy(policy):
    """
    Whether the kernel policy C{policy} (a dump entry) is one of the IPv6
    block's (an earlier ikedtx's, when this one has not installed it).
    """
    return (policy["sel_family"] == socket.AF_INET6 and policy["priority"] in (BLOCK_PRIORITY, PASS_PRIORITY)
            and not policy.get_attr("XFRMA_TMPL") and policy["sel_prefixlen_s"] in (0, 128)
            and policy["sel_prefixlen_d"] in (0, 128))


def socketPolicy(family, direction):
    """
    The bytes of a per-socket C{xfrm_userpolicy_info} that lets everything
    through in C{direction} (C{"in"} or C{"out"}).
    """
    msg = m.userpolicy_info()
    msg["sel_family"] = family
    msg["dir"] = _DIRECTIONS[direction]
    msg["action"] = m.XFRM_POLICY_ALLOW
    msg.encode()
    return bytes(msg.data[16:16 + m.structSize(m.userpolicy_info)])


def bypassSocket(sock):
    """
    Exempt the socket C{sock} from every XFRM policy in both directions
    (IP_XFRM_POLICY / IPV6_XFRM_POLICY), as the IKE sockets must be: a
    transport-mode flow between the two hosts would otherwise catch IKE.
    """
    family = sock.family
    if family == socket.AF_INET:
        level, option = socket.IPPROTO_IP, m.IP_XFRM_POLICY
    else:
        level, option = socket.IPPROTO_IPV6, m.IPV6_XFRM_POLICY
    for direction in ("in", "out"):
        sock.setsockopt(level, option, socketPolicy(family, direction))


def enableEspInUdp(sock):
    """
    Make the UDP socket C{sock} (the NAT-T port) take ESP in UDP (RFC 3948):
    the kernel decapsulates packets that are not IKE (no zero marker).
    """
    sock.setsockopt(socket.IPPROTO_UDP, m.UDP_ENCAP, m.UDP_ENCAP_ESPINUDP)


class NetlinkChannel:
    """
    The request side: one pyroute2 NETLINK_XFRM socket, with this module's
    message classes in its marshal.

    @ivar socket: the pyroute2 C{NetlinkSocket}.
    """

    def __init__(self, netns=None):
        from pyroute2.netlink.nlsocket import NetlinkSocket

        kwargs = {"netns": netns} if netns else {}
        self.socket = NetlinkSocket(family=m.NETLINK_XFRM, **kwargs)
        self.socket.marshal.msg_map.update(m.MESSAGE_CLASSES)

    def request(self, msg, msgType, flags):
        """
        Send C{msg} as C{msgType}; return the kernel's answers (a list), or
        raise pyroute2's C{NetlinkError} with the kernel's errno.
        """
        return [x for x in self.socket.nlm_request(msg, msg_type=msgType, msg_flags=flags)
                if x["header"]["type"] not in (2, 3)]

    def close(self):
        self.socket.close()


@implementer(IKernel)
class XfrmKernel:
    """
    An L{IKernel} on Linux XFRM.

    @ivar sas: the SAs installed, as L{KernelSA}s keyed by C{(protocol, spi,
        destination)}.
    @ivar policies: the kernel policies installed, by key (direction and
        selector), each with the L{KernelFlow}s that want it (newest last:
        the newest one's reqid is in the kernel; two Child SAs overlap while
        one rekeys the other).
    @ivar allocated: SPIs given out by the kernel (larval SAs) and not yet
        installed: C{(IP protocol, spi, destination)}.
    @ivar events: the L{IDatapathEvents} receiver.
    @ivar leftoversRemoved: how many SAs and policies of an earlier ikedtx
        were removed at start.
    """

    name = "xfrm"
    _log = Logger()

    def __init__(self, reactor=None, channel=None, eventSocket=None, cleanup=True, netns=None, routes=None):
        """
        @param channel: the request channel (a L{NetlinkChannel} by default).
        @param eventSocket: a pyroute2 socket bound to the acquire and
            expire groups, read in C{reactor} (by default one is made when
            C{reactor} is given or is the global reactor).
        @param cleanup: remove what an earlier ikedtx left in the kernel.
        @param netns: work in this named network namespace instead of the
            process's own (the sockets are made there).
        @param routes: where the routes of tunnel flows go (a
            L{ikedtx.kernel.routes.TunnelRoutes}, made in table 220 by
            default when C{channel} is not given; L{None} with a C{channel}:
            no routes).
        """
        if routes is None and channel is None:
            from ikedtx.kernel.routes import TunnelRoutes

            routes = TunnelRoutes(netns=netns)
        self.routes = routes
        self._routeUsers = Counter()
        self._routeArgs = {}
        self._flowRoutes = {}
        self.blocks = {}
        self._channel = channel if channel is not None else NetlinkChannel(netns)
        self.sas = {}
        self.policies = {}
        self.allocated = set()
        # Where detached SAs' sequence numbers stood (detachSA), until
        # they come back.
        self._detached = {}
        self.events = None
        self._reader = None
        self.leftoversRemoved = self.removeLeftovers() if cleanup else 0
        if cleanup and routes is not None:
            self.leftoversRemoved += self.removeLeftoverRoutes()
        if eventSocket is not None or channel is None:
            if reactor is None:
                from twisted.internet import reactor
            self._reader = XfrmEventReader(self, eventSocket, netns)
            reactor.addReader(self._reader)
            self._reactor = reactor

    def stop(self):
        """
        Stop reading events and close the sockets.
        """
        if self._reader is not None:
            self._reactor.removeReader(self._reader)
            self._reader.close()
            self._reader = None
        self._channel.close()

    def setEventReceiver(self, receiver):
        self.events = receiver

    def _request(self, msg, msgType, flags=_NETLINK_ACK):
        return self._channel.request(msg, msgType, flags)

    # SPIs

    def _allocateSpiNow(self, protocol, source, destination):
        """
        The kernel picks the SPI and holds a larval SA for it; netlink
        answers at once.

        @raise KernelError: the kernel refused.
        """
        source, destination = ip_address(source), ip_address(destination)
        if protocol == ProtocolId.NONE:
            # An IPcomp CPI (the core asks for one with protocol NONE): 16
            # bits, RFC 3173 3.3.
            proto, highest = m.IPPROTO_COMP, 0xFFFF
        elif protocol in _IPPROTO:
            proto, highest = _IPPROTO[protocol], 0xFFFFFFFF
        else:
            raise KernelError("SPI allocation for %s: not a protocol of this datapath" % (_name(ProtocolId, protocol),))
        msg = m.userspi_info()
        msg["id_daddr"] = _packed(destination)
        msg["id_proto"] = proto
        msg["saddr"] = _packed(source)
        msg["family"] = _family(destination)
        msg["min"] = 0x100
        msg["max"] = highest
        try:
            answers = self._request(msg, m.XFRM_MSG_ALLOCSPI, 0x01)
        except Exception as e:
            raise _kernelError("SPI allocation for %s %s -> %s" % (
                _name(ProtocolId, protocol), source, destination), e)
        spi = answers[0]["id_spi"]
        self.allocated.add((proto, spi, destination))
        return spi

    def allocateSpi(self, protocol, source, destination):
        try:
            return succeed(self._allocateSpiNow(protocol, source, destination))
        except KernelError:
            return fail()

    # SAs

    def _saKey(self, sa):
        return (sa.protocol, sa.spi, ip_address(sa.destination))

    def addSA(self, sa):
        try:
            self._installSA(sa)
        except KernelError:
            return fail()
        return succeed(None)

    def _installSA(self, sa, sequences=None):
        destination = ip_address(sa.destination)
        mode = sa.mode
        try:
            if sa.ipcompCpi is not None:
                # An allocated CPI is a larval SA: updated in place.
                comp = (m.IPPROTO_COMP, sa.ipcompCpi, destination)
                self._newOrUpdate(ipcompMessage(sa), comp in self.allocated)
                self.allocated.discard(comp)
                if mode == "tunnel":
                    mode = "transport"
            if sequences is None:
                # Where ikectl decouple left it (L{detachSA}).
                sequences = self._detached.pop(self._saKey(sa), None)
            msg = saMessage(sa, mode, sequences)
        except KernelError:
            raise
        except Exception as e:
            raise _kernelError("install of IPcomp SA %04x for %s" % (sa.ipcompCpi, _describeSA(sa)), e)
        larval = (_IPPROTO[sa.protocol], sa.spi, destination)
        try:
            self._newOrUpdate(msg, larval in self.allocated)
        except Exception as e:
            if sa.ipcompCpi is not None:
                self._deleteQuietly(m.IPPROTO_COMP, sa.ipcompCpi, destination)
            raise _kernelError("install of %s" % (_describeSA(sa),), e)
        self.allocated.discard(larval)
        self.sas[self._saKey(sa)] = sa
        self._log.debug("xfrm: installed {sa}", sa=_describeSA(sa))

    def _newOrUpdate(self, msg, larval):
        """
        Install the SA of C{msg}: an SPI from ALLOCSPI (C{larval}) is a
        larval SA, updated in place, unless the kernel already let it go
        (net.core.xfrm_acq_expires): then, as any other, it is new.
        """
        if larval:
            try:
                self._request(msg, m.XFRM_MSG_UPDSA, _NETLINK_ACK)
                return
            except Exception as e:
                if getattr(e, "code", None) != errno.ESRCH:
                    raise
        self._request(msg, m.XFRM_MSG_NEWSA, _NETLINK_CREATE)

    def _deleteQuietly(self, proto, spi, destination):
        try:
            self._request(saIdMessage(proto, spi, destination), m.XFRM_MSG_DELSA)
        except Exception as e:
            if getattr(e, "code", None) != errno.ESRCH:
                return e
        return None

    def _removeSA(self, sa):
        destination = ip_address(sa.destination)
        error = self._deleteQuietly(_IPPROTO[sa.protocol], sa.spi, destination)
        if sa.ipcompCpi is not None:
            self._deleteQuietly(m.IPPROTO_COMP, sa.ipcompCpi, destination)
            self.allocated.discard((m.IPPROTO_COMP, sa.ipcompCpi, destination))
        self.sas.pop(self._saKey(sa), None)
        self.allocated.discard((_IPPROTO[sa.protocol], sa.spi, destination))
        if error is not None:
            raise _kernelError("delete of %s" % (_describeSA(sa),), error)

    def deleteSA(self, sa):
        try:
            self._removeSA(sa)
        except KernelError:
            return fail()
        return succeed(None)

    def _readSequences(self, sa):
        """
        The sequence numbers and replay counters of the installed C{sa}
        (GETSA), as L{saMessage} takes them.

        @raise KernelError: the kernel did not tell them.
        """
        try:
            answers = self._request(
                saIdMessage(_IPPROTO[sa.protocol], sa.spi, sa.destination), m.XFRM_MSG_GETSA, 0x01)
            esn = answers[0].get_attr("XFRMA_REPLAY_ESN_VAL")
            if esn is not None:
                return {key: esn[key] for key in ("oseq", "seq", "oseq_hi", "seq_hi")}
            legacy = answers[0].get_attr("XFRMA_REPLAY_VAL")
            if legacy is not None:
                # struct xfrm_replay_state (oseq, seq, bitmap), as xfrmmsg decodes it.
                return {"oseq": legacy["oseq"], "seq": legacy["seq"], "oseq_hi": 0, "seq_hi": 0}
        except Exception as e:
            raise _kernelError("sequence numbers of %s" % (_describeSA(sa),), e)
        raise KernelError("sequence numbers of %s: the kernel sent no replay state" % (_describeSA(sa),))

    def detachSA(self, sa):
        """
        Take C{sa} out of the kernel (ikectl decouple), keeping where its
        sequence numbers stand (the kernel's replay state) for its next
        L{addSA}; a state that cannot be read is logged, and the SA goes
        all the same.
        """
        try:
            self._detached[self._saKey(sa)] = self._readSequences(sa)
        except KernelError as e:
            self._log.warn("xfrm: the sequence numbers of {sa} are lost: {error}", sa=_describeSA(sa), error=e)
        return self.deleteSA(sa)

    def updateSA(self, old, new):
        # XFRM keys SAs by destination and SPI, and an update does not
        # change keys or addresses: the SA is replaced, starting from the
        # old one's sequence numbers (the same key with a sequence number
        # again would repeat GCM's IVs, which the kernel derives from it).
        # When they cannot be read, the SA is left as it was.
        try:
            sequences = self._readSequences(old)
            self._removeSA(old)
            self._installSA(new, sequences)
        except KernelError:
            return fail()
        return succeed(None)

    def querySA(self, sa):
        try:
            answers = self._request(
                saIdMessage(_IPPROTO[sa.protocol], sa.spi, sa.destination), m.XFRM_MSG_GETSA, 0x01)
        except Exception as e:
            return fail(_kernelError("query of %s" % (_describeSA(sa),), e))
        info = answers[0]
        used = info["curlft_use_time"]
        return succeed(KernelSAUsage(
            bytes=info["curlft_bytes"], packets=info["curlft_packets"],
            installed=float(info["curlft_add_time"]), lastUsed=float(used) if used else None))

    # Flows

    def addFlow(self, flow):
        try:
            messages = policyMessages(flow)
        except KernelError:
            return fail()
        installed = []
        for key, msg in messages:
            claims = self.policies.get(key, [])
            position = claimPosition(claims, flow)
            if position == len(claims):
                # The kernel's policy for this selector is this flow's.
                try:
                    self._request(msg, m.XFRM_MSG_UPDPOLICY)
                except Exception as e:
                    for done in installed:
                        self._dropPolicy(done, flow)
                    return fail(_kernelError("install of %s" % (_describeFlow(flow),), e))
            self.policies.setdefault(key, []).insert(position, (flow, msg))
            installed.append(key)
        self._addRoutes(flow)
        return succeed(None)

    # Routes of tunnel flows (as strongSwan's, in a table of their own)

    def _addRoutes(self, flow):
        """
        Route the remote network of the outbound tunnel flow C{flow} with
        the local inner address as source, when this host has one; a route
        that cannot be made is logged, the flow stays.
        """
        if self.routes is None or not self.routes.table or flow.direction != "out" or flow.mode != "tunnel":
            return
        routes = []
        try:
            source = self.routes.localAddressIn(ip_address(flow.source.startAddress), ip_address(flow.source.endAddress))
            if source is None:
                return
            peer = ip_address(flow.peerAddress)
            for network in summarize_address_range(ip_address(flow.destination.startAddress),
                                                   ip_address(flow.destination.endAddress)):
                if peer.version == network.version and peer in network:
                    # The peer itself must stay outside the tunnel.
                    continue
                # One route per network (the kernel keys routes by
                # destination): the first flow's source stays.
                if self._routeUsers[network] == 0:
                    self.routes.addRoute(network, source, peer)
                    self._routeArgs[network] = (source, _endpoints(flow))
                    self._log.info("xfrm: {network} routed in table {table} (source {source})", network=network,
                                   table=self.routes.table, source=source)
                self._routeUsers[network] += 1
                routes.append(network)
        except Exception as e:
            self._log.warn("xfrm: no route for {flow}: {error}", flow=_describeFlow(flow), error=e)
        finally:
            if routes:
                self._flowRoutes.setdefault(flow, []).extend(routes)
        for network in routes:
            self._follow(network)

    def _deleteRoutes(self, flow):
        for network in self._flowRoutes.pop(flow, []):
            self._routeUsers[network] -= 1
            if self._routeUsers[network] > 0:
                self._follow(network)
                continue
            del self._routeUsers[network]
            source, (local, peer) = self._routeArgs.pop(network)
            try:
                self.routes.deleteRoute(network, source, peer)
            except Exception as e:
                self._log.warn("xfrm: removing the route to {network} failed: {error}", network=network, error=e)
        if not self._routeUsers and self.routes is not None and self.routes.rules:
            self.routes.removeRules()

    def _follow(self, network):
        """
        The route to C{network} follows the tunnel of the flow the datapath
        uses for it (L{claimPosition}: the newest Child SA's, else the
        newest trap's): when that flow's tunnel endpoints are not the ones
        the route was made for (MOBIKE moved this host or its peer; the
        Child SA under which a trap routed went), the route is made again,
        through the next hop towards the peer from where the host now is.
        A move of this host's address may have taken the old route with it
        (the kernel drops routes through a gateway no longer reachable).
        """
        source, endpoints = self._routeArgs[network]
        claims = []
        for f, networks in self._flowRoutes.items():
            if network in networks:
                claims.insert(claimPosition(claims, f), f)
        if not claims or _endpoints(claims[-1]) == endpoints:
            return
        owner = claims[-1]
        newPeer = ip_address(owner.peerAddress)
        try:
            self.routes.addRoute(network, source, newPeer)
        except Exception as e:
            self._log.warn("xfrm: the route to {network} did not follow the tunnel to {peer}: {error}",
                           network=network, peer=newPeer, error=e)
            return
        self._routeArgs[network] = (source, _endpoints(owner))
        self._log.info("xfrm: {network} now routed towards {peer} (from {local})", network=network, peer=newPeer,
                       local=owner.localAddress)

    # IPv6 leak block

    def blockIPv6(self):
        """
        Block IPv6 that no flow covers (iked's default unless C{-6}), until
        L{flush}; return a Deferred.
        """
        for key, msg in ipv6BlockMessages():
            self.blocks[key] = msg
            if self.policies.get(key):
                # A flow for all of IPv6 holds this selector; the block
                # comes back when it goes.
                continue
            try:
                self._request(msg, m.XFRM_MSG_UPDPOLICY)
            except Exception as e:
                return fail(_kernelError("install of the IPv6 block", e))
        self._log.info("xfrm: IPv6 blocked unless a flow covers it (-6 lifts this)")
        return succeed(None)

    def unblockIPv6(self):
        """
        Remove the block policies of L{blockIPv6}; a selector a flow holds
        stays the flow's. Return a Deferred.
        """
        blocks, self.blocks = self.blocks, {}
        for key in blocks:
            if self.policies.get(key):
                continue
            try:
                self._request(policyIdMessage(key), m.XFRM_MSG_DELPOLICY)
            except Exception as e:
                if getattr(e, "code", None) != errno.ENOENT:
                    return fail(_kernelError("removal of the IPv6 block", e))
        self._log.info("xfrm: IPv6 block lifted")
        return succeed(None)

    def _dropPolicy(self, key, flow):
        """
        Forget C{flow}'s claim on the policy C{key}; the kernel policy goes
        when no flow wants it, and is put back with the newest remaining
        flow's templates otherwise.
        """
        # One claim goes: a rekeyed Child SA's flows equal its successor's.
        wanted = list(self.policies.get(key, []))
        index = next((i for i, (f, _) in enumerate(wanted) if f == flow), None)
        if index is not None:
            del wanted[index]
        if wanted:
            self.policies[key] = wanted
            self._request(wanted[-1][1], m.XFRM_MSG_UPDPOLICY)
            return
        self.policies.pop(key, None)
        if key in self.blocks:
            # The flow replaced a block policy (same selector): put it back.
            self._request(self.blocks[key], m.XFRM_MSG_UPDPOLICY)
            return
        try:
            self._request(policyIdMessage(key), m.XFRM_MSG_DELPOLICY)
        except Exception as e:
            if getattr(e, "code", None) != errno.ENOENT:
                raise

    def deleteFlow(self, flow):
        try:
            keys = [key for key, _ in policyMessages(flow)]
        except KernelError:
            return fail()
        error = None
        for key in keys:
            try:
                self._dropPolicy(key, flow)
            except Exception as e:
                error = e
        self._deleteRoutes(flow)
        if error is not None:
            return fail(_kernelError("delete of %s" % (_describeFlow(flow),), error))
        return succeed(None)

    # Clean-up

    def flush(self):
        """
        Remove every policy and SA this provider installed (and the larval
        SAs of SPIs it allocated); nothing else.
        """
        errors = []
        blocks, self.blocks = self.blocks, {}
        for key in list(self.policies):
            self.policies[key] = []
            try:
                self._dropPolicy(key, None)
            except Exception as e:
                errors.append(e)
        for key in blocks:
            try:
                self._request(policyIdMessage(key), m.XFRM_MSG_DELPOLICY)
            except Exception as e:
                if getattr(e, "code", None) != errno.ENOENT:
                    errors.append(e)
        for flow in list(self._flowRoutes):
            self._deleteRoutes(flow)
        for sa in list(self.sas.values()):
            try:
                self._removeSA(sa)
            except KernelError as e:
                errors.append(e)
        for proto, spi, destination in list(self.allocated):
            self._deleteQuietly(proto, spi, destination)
        self.allocated.clear()
        self._detached.clear()
        if errors:
            return fail(KernelError("flush: %d operations failed, first: %s" % (len(errors), errors[0])))
        return succeed(None)

    def removeLeftovers(self):
        """
        Delete the SAs and policies with a reqid in this provider's range
        (an earlier ikedtx that did not flush); return how many went.
        """
        removed = 0
        try:
            policies = self._request(m.userpolicy_info(), m.XFRM_MSG_GETPOLICY, _NETLINK_DUMP)
            states = self._request(m.usersa_info(), m.XFRM_MSG_GETSA, _NETLINK_DUMP)
        except Exception as e:
            self._log.warn("xfrm: cannot list the kernel's SAs and policies: {error}", error=e)
            return 0
        for policy in policies:
            tmpl = policy.get_attr("XFRMA_TMPL")
            ours = tmpl and any(coreReqid(t["reqid"]) is not None for t in tmpl["templates"])
            if not ours and not _isBlockPolicy(policy):
                continue
            msg = m.userpolicy_id()
            for name, _ in m.SELECTOR:
                if not name.startswith("__"):
                    msg[name] = policy[name]
            msg["dir"] = policy["dir"]
            try:
                self._request(msg, m.XFRM_MSG_DELPOLICY)
                removed += 1
            except Exception as e:
                self._log.warn("xfrm: cannot remove a leftover policy: {error}", error=e)
        for state in states:
            if coreReqid(state["reqid"]) is None:
                continue
            msg = m.usersa_id()
            msg["daddr"] = state["id_daddr"]
            msg["spi"] = state["id_spi"]
            msg["family"] = state["family"]
            msg["proto"] = state["id_proto"]
            try:
                self._request(msg, m.XFRM_MSG_DELSA)
                removed += 1
            except Exception as e:
                self._log.warn("xfrm: cannot remove a leftover SA: {error}", error=e)
        if removed:
            self._log.info("xfrm: removed {n} SAs and policies left by an earlier ikedtx", n=removed)
        return removed

    def removeLeftoverRoutes(self):
        """
        Remove the routes an earlier ikedtx left in the routes' table
        (L{ikedtx.kernel.routes.TunnelRoutes.removeLeftovers}); how many
        went. A failure is logged.
        """
        try:
            return self.routes.removeLeftovers()
        except Exception as e:
            self._log.warn("xfrm: cannot remove the routes of an earlier ikedtx: {error}", error=e)
            return 0

    # Events

    def messageReceived(self, msg):
        """
        One XFRM multicast message: an acquire or an expire, given to the
        event receiver when it is about what this provider installed.
        """
        kind = msg["header"]["type"]
        if kind == m.XFRM_MSG_ACQUIRE:
            self._acquired(msg)
        elif kind == m.XFRM_MSG_EXPIRE:
            self._expired(msg)

    def _acquired(self, msg):
        tmpl = msg.get_attr("XFRMA_TMPL")
        reqids = [coreReqid(t["reqid"]) for t in (tmpl["templates"] if tmpl else [])]
        reqids = [r for r in reqids if r is not None]
        if not reqids:
            return
        family = msg["sel_family"]
        proto = msg["sel_proto"]

        def selector(addressField, port, mask):
            address = _unpacked(msg[addressField], family)
            if mask == 0xFFFF:
                return KernelSelector(address, address, proto, port, port)
            return KernelSelector(address, address, proto)

        source = selector("sel_saddr", msg["sel_sport"], msg["sel_sport_mask"])
        destination = selector("sel_daddr", msg["sel_dport"], msg["sel_dport_mask"])
        self._log.debug("xfrm: acquire for reqid {reqid}: {src} -> {dst}", reqid=reqids[0],
                        src=source.startAddress, dst=destination.startAddress)
        if self.events is not None:
            self.events.acquire(reqids[0], source, destination)

    def _expired(self, msg):
        proto = msg["state_id_proto"]
        if proto not in _PROTOCOL:
            return
        protocol = _PROTOCOL[proto]
        spi = msg["state_id_spi"]
        destination = _unpacked(msg["state_id_daddr"], msg["state_family"])
        key = (protocol, spi, destination)
        if key not in self.sas:
            if (proto, spi, destination) in self.allocated and msg["hard"]:
                self.allocated.discard((proto, spi, destination))
            return
        hard = bool(msg["hard"])
        if hard and self._stillInstalled(proto, spi, destination):
            # The larval SA of an allocated SPI expired, and its expire was
            # read only after the SA was installed under the same SPI (a
            # slow IKE_AUTH): not this SA's.
            self._log.debug("xfrm: hard expire of the larval SA {spi:08x} to {dst} after its install, ignored",
                            spi=spi, dst=destination)
            return
        if hard:
            # The kernel removed it (and its IPcomp SA stays until deleted).
            sa = self.sas.pop(key)
            if sa.ipcompCpi is not None:
                self._deleteQuietly(m.IPPROTO_COMP, sa.ipcompCpi, destination)
        self._log.info("xfrm: {kind} expire of {protocol} SA {spi:08x} to {dst}",
                       kind="hard" if hard else "soft", protocol=protocol.name, spi=spi, dst=destination)
        if self.events is not None:
            self.events.expired(protocol, spi, destination, hard)


    def _stillInstalled(self, proto, spi, destination):
        """
        Whether the kernel still holds the SA C{(proto, spi, destination)}.
        """
        try:
            return bool(self._request(saIdMessage(proto, spi, destination), m.XFRM_MSG_GETSA, 0x01))
        except Exception:
            return False


class XfrmEventReader:
    """
    The reactor's reader of the XFRM multicast groups (an
    C{IReadDescriptor}): acquires and expires go to L{XfrmKernel}.

    @ivar socket: the pyroute2 socket bound to the groups.
    """

    _log = Logger()

    def __init__(self, kernel, eventSocket=None, netns=None):
        if eventSocket is None:
            from pyroute2.netlink.nlsocket import NetlinkSocket

            kwargs = {"netns": netns} if netns else {}
            eventSocket = NetlinkSocket(family=m.NETLINK_XFRM, **kwargs)
            eventSocket.bind(groups=m.groupMask(m.XFRMNLGRP_ACQUIRE, m.XFRMNLGRP_EXPIRE))
        eventSocket.marshal.msg_map.update(m.MESSAGE_CLASSES)
        self.socket = eventSocket
        self._raw = eventSocket.asyncore.socket if hasattr(eventSocket, "asyncore") else eventSocket
        self._raw.setblocking(False)
        self._kernel = kernel

    def fileno(self):
        return self._raw.fileno()

    def logPrefix(self):
        return "XfrmEventReader"

    def doRead(self):
        while True:
            try:
                data = self._raw.recv(65536)
            except BlockingIOError:
                return
            except OSError as e:
                # ENOBUFS: events were lost; later ones still come.
                self._log.warn("xfrm: reading kernel events: {error}", error=e)
                return
            if not data:
                return
            try:
                messages = list(self.socket.marshal.parse(data))
            except Exception:
                self._log.failure("xfrm: undecodable kernel event")
                continue
            for msg in messages:
                try:
                    self._kernel.messageReceived(msg)
                except Exception:
                    self._log.failure("xfrm: handling kernel event {type}", type=msg["header"]["type"])

    def connectionLost(self, reason):
        pass

    def close(self):
        self.socket.close()

# -*- test-case-name: tests.test_kernel_xfrmmsg -*-
"""
The Linux XFRM netlink messages (linux/xfrm.h) as pyroute2 message classes.

pyroute2 0.9 speaks C{NETLINK_XFRM} but defines none of its SA or policy
messages; they are declared here as L{nlmsg} and L{nla} subclasses, so that
pyroute2 does the encoding, the acknowledgements, dumps and errors. pyroute2
packs each field on its own (no C alignment), so the C structures' padding
is spelled out as C{x} fields, and their nested structures (C{xfrm_selector},
C{xfrm_id}, the lifetimes) are flattened with a prefix. Every byte-string
field has an explicit all-zero default: pyroute2 would otherwise try to pack
the integer 0 into it.

The sizes, checked against linux/xfrm.h by L{tests.test_kernel_xfrmmsg}:
C{xfrm_selector} 56, C{xfrm_id} 24, C{xfrm_usersa_info} 224,
C{xfrm_userpolicy_info} 168, C{xfrm_user_tmpl} 64, C{xfrm_user_acquire} 280,
C{xfrm_user_expire} 232.
"""

import struct

from pyroute2.netlink import NETLINK_XFRM, nla, nlmsg

__all__ = ["NETLINK_XFRM"]

# Message types (enum in linux/xfrm.h, from XFRM_MSG_BASE 0x10).
XFRM_MSG_NEWSA = 0x10
XFRM_MSG_DELSA = 0x11
XFRM_MSG_GETSA = 0x12
XFRM_MSG_NEWPOLICY = 0x13
XFRM_MSG_DELPOLICY = 0x14
XFRM_MSG_GETPOLICY = 0x15
XFRM_MSG_ALLOCSPI = 0x16
XFRM_MSG_ACQUIRE = 0x17
XFRM_MSG_EXPIRE = 0x18
XFRM_MSG_UPDPOLICY = 0x19
XFRM_MSG_UPDSA = 0x1A
XFRM_MSG_POLEXPIRE = 0x1B
XFRM_MSG_FLUSHSA = 0x1C
XFRM_MSG_FLUSHPOLICY = 0x1D

MESSAGE_NAMES = {
    value: name for name, value in globals().items() if name.startswith("XFRM_MSG_")
}

# Multicast groups (enum xfrm_nlgroups) and their bind(2) bits.
XFRMNLGRP_ACQUIRE = 1
XFRMNLGRP_EXPIRE = 2


def groupMask(*groups):
    """
    The C{nl_groups} bit mask that subscribes to C{groups} (group N is bit
    N-1).
    """
    mask = 0
    for group in groups:
        mask |= 1 << (group - 1)
    return mask


# Modes, directions, actions, flags.
XFRM_MODE_TRANSPORT = 0
XFRM_MODE_TUNNEL = 1
XFRM_POLICY_IN = 0
XFRM_POLICY_OUT = 1
XFRM_POLICY_FWD = 2
XFRM_POLICY_ALLOW = 0
XFRM_POLICY_BLOCK = 1
XFRM_STATE_AF_UNSPEC = 32
XFRM_STATE_ESN = 128
XFRM_INF = 0xFFFFFFFFFFFFFFFF

# Per-socket policies (IP_XFRM_POLICY / IPV6_XFRM_POLICY).
IP_XFRM_POLICY = 17
IPV6_XFRM_POLICY = 35
# UDP_ENCAP socket option and its ESP-in-UDP type (linux/udp.h).
UDP_ENCAP = 100
UDP_ENCAP_ESPINUDP = 2

IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_COMP = 108

_ZERO16 = b"\0" * 16

_SELECTOR = (
    ("daddr", "16s"),
    ("saddr", "16s"),
    ("dport", ">H"),
    ("dport_mask", ">H"),
    ("sport", ">H"),
    ("sport_mask", ">H"),
    ("family", "H"),
    ("prefixlen_d", "B"),
    ("prefixlen_s", "B"),
    ("proto", "B"),
    ("__pad", "3x"),
    ("ifindex", "i"),
    ("user", "I"),
)

_ID = (
    ("daddr", "16s"),
    ("spi", ">I"),
    ("proto", "B"),
    ("__pad", "3x"),
)

_LIFETIME_CFG = (
    ("soft_byte_limit", "Q"),
    ("hard_byte_limit", "Q"),
    ("soft_packet_limit", "Q"),
    ("hard_packet_limit", "Q"),
    ("soft_add_expires_seconds", "Q"),
    ("hard_add_expires_seconds", "Q"),
    ("soft_use_expires_seconds", "Q"),
    ("hard_use_expires_seconds", "Q"),
)

_LIFETIME_CUR = (
    ("bytes", "Q"),
    ("packets", "Q"),
    ("add_time", "Q"),
    ("use_time", "Q"),
)

_STATS = (
    ("replay_window", "I"),
    ("replay", "I"),
    ("integrity_failed", "I"),
)


def _prefixed(prefix, fields):
    return tuple(
        ("__%s_%s" % (prefix, name[2:]) if name.startswith("__") else "%s_%s" % (prefix, name), fmt)
        for name, fmt in fields
    )


def _defaults(fields):
    """
    Explicit defaults: zero bytes for byte strings, 0 for numbers, and the
    kernel's "no limit" for lifetimes.
    """
    out = {}
    for name, fmt in fields:
        if fmt.endswith("s"):
            out[name] = b"\0" * int(fmt[:-1] or 0)
        elif not fmt.endswith("x"):
            # Byte and packet limits: XFRM_INF is none. Seconds: 0 is none
            # (the kernel adds them to the install time as signed values:
            # XFRM_INF there would be -1, an SA that expires at once).
            out[name] = XFRM_INF if name.startswith("lft_") and name.endswith("_limit") else 0
    return out


SELECTOR = _prefixed("sel", _SELECTOR)

USERSA_INFO = (
    SELECTOR
    + _prefixed("id", _ID)
    + (("saddr", "16s"),)
    + _prefixed("lft", _LIFETIME_CFG)
    + _prefixed("curlft", _LIFETIME_CUR)
    + _prefixed("stats", _STATS)
    + (
        ("seq", "I"),
        ("reqid", "I"),
        ("family", "H"),
        ("mode", "B"),
        ("replay_window", "B"),
        ("flags", "B"),
        ("__pad", "7x"),
    )
)

USERPOLICY_INFO = (
    SELECTOR
    + _prefixed("lft", _LIFETIME_CFG)
    + _prefixed("curlft", _LIFETIME_CUR)
    + (
        ("priority", "I"),
        ("index", "I"),
        ("dir", "B"),
        ("action", "B"),
        ("flags", "B"),
        ("share", "B"),
        ("__pad", "4x"),
    )
)

USER_TMPL = _prefixed("id", _ID) + (
    ("family", "H"),
    ("__pad1", "2x"),
    ("saddr", "16s"),
    ("reqid", "I"),
    ("mode", "B"),
    ("share", "B"),
    ("optional", "B"),
    ("__pad2", "x"),
    ("aalgos", "I"),
    ("ealgos", "I"),
    ("calgos", "I"),
)


#: The attributes: the C{XFRMA_*} numbering of linux/xfrm.h.
NLA_MAP = (
    ("XFRMA_UNSPEC", "none"),
    ("XFRMA_ALG_AUTH", "xfrm_algo"),
    ("XFRMA_ALG_CRYPT", "xfrm_algo"),
    ("XFRMA_ALG_COMP", "xfrm_algo"),
    ("XFRMA_ENCAP", "xfrm_encap_tmpl"),
    ("XFRMA_TMPL", "xfrm_user_tmpls"),
    ("XFRMA_SA", "hex"),
    ("XFRMA_POLICY", "hex"),
    ("XFRMA_SEC_CTX", "hex"),
    ("XFRMA_LTIME_VAL", "xfrm_lifetime_cur"),
    ("XFRMA_REPLAY_VAL", "xfrm_replay_state"),
    ("XFRMA_REPLAY_THRESH", "uint32"),
    ("XFRMA_ETIMER_THRESH", "uint32"),
    ("XFRMA_SRCADDR", "xfrm_address"),
    ("XFRMA_COADDR", "xfrm_address"),
    ("XFRMA_LASTUSED", "uint64"),
    ("XFRMA_POLICY_TYPE", "hex"),
    ("XFRMA_MIGRATE", "hex"),
    ("XFRMA_ALG_AEAD", "xfrm_algo_aead"),
    ("XFRMA_KMADDRESS", "hex"),
    ("XFRMA_ALG_AUTH_TRUNC", "xfrm_algo_auth"),
    ("XFRMA_MARK", "xfrm_mark"),
    ("XFRMA_TFCPAD", "uint32"),
    ("XFRMA_REPLAY_ESN_VAL", "xfrm_replay_state_esn"),
    ("XFRMA_SA_EXTRA_FLAGS", "uint32"),
    ("XFRMA_PROTO", "uint8"),
    ("XFRMA_ADDRESS_FILTER", "hex"),
    ("XFRMA_PAD", "hex"),
    ("XFRMA_OFFLOAD_DEV", "hex"),
    ("XFRMA_SET_MARK", "uint32"),
    ("XFRMA_SET_MARK_MASK", "uint32"),
    ("XFRMA_IF_ID", "uint32"),
    ("XFRMA_MTIMER_THRESH", "uint32"),
)


def _appendPadded(attribute, offset, diff, tail):
    """
    Append C{tail} (a key, a bitmap) after the fixed fields of
    C{attribute}, then pad the attribute to 4 bytes as netlink wants; the
    padding is not part of the attribute's length.
    """
    # pyroute2 pads the fixed fields (diff); the tail goes where they end.
    offset -= diff
    del attribute.data[offset:]
    attribute.data.extend(tail)
    offset += len(tail)
    pad = (4 - (offset - attribute.offset) % 4) % 4
    attribute.data.extend(b"\0" * pad)
    return offset + pad, pad


class _algo(nla):
    """
    A C{struct xfrm_algo*}: a name, lengths and the key after them
    (variable length, so the key is encoded and decoded by hand from
    the attribute's own length).
    """

    def ft_encode(self, offset):
        offset, diff = nla.ft_encode(self, offset)
        return _appendPadded(self, offset, diff, bytes(self.get("key") or b""))

    def ft_decode(self, offset):
        nla.ft_decode(self, offset)
        start = offset + sum(_size(fmt) for _, fmt in self.fields)
        self["key"] = bytes(self.data[start : self.offset + self.length])

class xfrm_algo(_algo):
    fields = (("alg_name", "64s"), ("alg_key_len", "I"))
    defaults = _defaults(fields)

class xfrm_algo_auth(_algo):
    fields = (("alg_name", "64s"), ("alg_key_len", "I"), ("alg_trunc_len", "I"))
    defaults = _defaults(fields)

class xfrm_algo_aead(_algo):
    fields = (("alg_name", "64s"), ("alg_key_len", "I"), ("alg_icv_len", "I"))
    defaults = _defaults(fields)

class xfrm_encap_tmpl(nla):
    fields = (
        ("encap_type", "H"),
        ("encap_sport", ">H"),
        ("encap_dport", ">H"),
        ("__pad", "2x"),
        ("encap_oa", "16s"),
    )
    defaults = _defaults(fields)

class xfrm_user_tmpls(nla):
    """
    C{XFRMA_TMPL}: one or more C{struct xfrm_user_tmpl} back to back,
    as a list of dicts under C{"templates"}.
    """

    fields = ()

    def ft_encode(self, offset):
        defaults = _defaults(USER_TMPL)
        for template in self["templates"]:
            for name, fmt in USER_TMPL:
                value = template.get(name)
                offset = self.encode_field(fmt, self.data, offset, defaults.get(name, 0) if value is None else value)
        return offset, 0

    def ft_decode(self, offset):
        templates = []
        size = sum(_size(fmt) for _, fmt in USER_TMPL)
        end = self.offset + self.length
        while offset + size <= end:
            template = {}
            for name, fmt in USER_TMPL:
                value, offset = self.decode_field(fmt, self.data, offset)
                if not name.startswith("__"):
                    template[name] = value
            templates.append(template)
        self["templates"] = templates

class xfrm_lifetime_cur(nla):
    fields = _LIFETIME_CUR

class xfrm_address(nla):
    fields = (("addr", "16s"),)
    defaults = {"addr": _ZERO16}

class xfrm_mark(nla):
    fields = (("value", "I"), ("mask", "I"))

class xfrm_replay_state(nla):
    fields = (("oseq", "I"), ("seq", "I"), ("bitmap", "I"))


class xfrm_replay_state_esn(nla):
    fields = (
        ("bmp_len", "I"),
        ("oseq", "I"),
        ("seq", "I"),
        ("oseq_hi", "I"),
        ("seq_hi", "I"),
        ("replay_window", "I"),
    )

    def ft_encode(self, offset):
        offset, diff = nla.ft_encode(self, offset)
        return _appendPadded(self, offset, diff, b"\0" * (4 * (self.get("bmp_len") or 0)))


def _size(fmt):
    return struct.calcsize("=" + fmt) if fmt[0] not in "<>=!@" else struct.calcsize(fmt)


class xfrm_msg(nlmsg):
    """
    Base of the XFRM messages: their attributes are C{XFRMA_*}.
    """

    nla_map = NLA_MAP
    xfrm_algo = xfrm_algo
    xfrm_algo_auth = xfrm_algo_auth
    xfrm_algo_aead = xfrm_algo_aead
    xfrm_encap_tmpl = xfrm_encap_tmpl
    xfrm_user_tmpls = xfrm_user_tmpls
    xfrm_lifetime_cur = xfrm_lifetime_cur
    xfrm_address = xfrm_address
    xfrm_mark = xfrm_mark
    xfrm_replay_state_esn = xfrm_replay_state_esn
    xfrm_replay_state = xfrm_replay_state


class usersa_info(xfrm_msg):
    """
    C{struct xfrm_usersa_info}: XFRM_MSG_NEWSA, UPDSA, and the answer to
    GETSA and to dumps.
    """

    fields = USERSA_INFO
    defaults = _defaults(USERSA_INFO)


class usersa_id(xfrm_msg):
    """
    C{struct xfrm_usersa_id}: XFRM_MSG_DELSA and GETSA.
    """

    fields = (("daddr", "16s"), ("spi", ">I"), ("family", "H"), ("proto", "B"), ("__pad", "x"))
    defaults = _defaults(fields)


class userspi_info(xfrm_msg):
    """
    C{struct xfrm_userspi_info}: XFRM_MSG_ALLOCSPI (a larval SA plus the SPI
    range to choose from).
    """

    fields = USERSA_INFO + (("min", "I"), ("max", "I"))
    defaults = _defaults(fields)


class userpolicy_info(xfrm_msg):
    """
    C{struct xfrm_userpolicy_info}: XFRM_MSG_NEWPOLICY, UPDPOLICY, dumps.
    """

    fields = USERPOLICY_INFO
    defaults = _defaults(USERPOLICY_INFO)


class userpolicy_id(xfrm_msg):
    """
    C{struct xfrm_userpolicy_id}: XFRM_MSG_DELPOLICY and GETPOLICY.
    """

    fields = SELECTOR + (("index", "I"), ("dir", "B"), ("__pad", "3x"))
    defaults = _defaults(fields)


class usersa_flush(xfrm_msg):
    """
    C{struct xfrm_usersa_flush}: XFRM_MSG_FLUSHSA (protocol 0: all).
    """

    fields = (("proto", "B"), ("__pad", "3x"))
    defaults = _defaults(fields)


class flushpolicy(xfrm_msg):
    """
    XFRM_MSG_FLUSHPOLICY: no body (attributes only).
    """

    fields = ()


class user_acquire(xfrm_msg):
    """
    C{struct xfrm_user_acquire}: the XFRMNLGRP_ACQUIRE multicast.
    """

    fields = (
        _prefixed("id", _ID)
        + (("saddr", "16s"),)
        + SELECTOR
        + _prefixed("policy", USERPOLICY_INFO)
        + (("aalgos", "I"), ("ealgos", "I"), ("calgos", "I"), ("seq", "I"))
    )
    defaults = _defaults(fields)


class user_expire(xfrm_msg):
    """
    C{struct xfrm_user_expire}: the XFRMNLGRP_EXPIRE multicast.
    """

    fields = _prefixed("state", USERSA_INFO) + (("hard", "B"), ("__pad", "7x"))
    defaults = _defaults(fields)


#: What arrives on an XFRM socket, by message type (pyroute2's marshal map):
#: the kernel answers GETSA and ALLOCSPI with NEWSA messages and GETPOLICY
#: with NEWPOLICY; the other types arrive only as the request an error
#: message quotes.
MESSAGE_CLASSES = {
    XFRM_MSG_NEWSA: usersa_info,
    XFRM_MSG_UPDSA: usersa_info,
    XFRM_MSG_DELSA: usersa_id,
    XFRM_MSG_GETSA: usersa_id,
    XFRM_MSG_ALLOCSPI: userspi_info,
    XFRM_MSG_NEWPOLICY: userpolicy_info,
    XFRM_MSG_UPDPOLICY: userpolicy_info,
    XFRM_MSG_DELPOLICY: userpolicy_id,
    XFRM_MSG_GETPOLICY: userpolicy_id,
    XFRM_MSG_ACQUIRE: user_acquire,
    XFRM_MSG_EXPIRE: user_expire,
    XFRM_MSG_FLUSHSA: usersa_flush,
    XFRM_MSG_FLUSHPOLICY: flushpolicy,
}


def structSize(cls):
    """
    The encoded size of message class C{cls}'s fixed part (its C structure).
    """
    return sum(_size(fmt) for _, fmt in cls.fields)

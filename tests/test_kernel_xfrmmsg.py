"""
Tests for L{ikedtx.kernel.xfrmmsg}: the XFRM netlink messages as pyroute2
classes, checked byte for byte against the C layouts of linux/xfrm.h
(packed here independently with the struct module and the C alignment),
in memory.
"""

import struct

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.kernel import xfrmmsg as m

# The C structures, packed with native alignment ("@" plus explicit tail
# padding where the C compiler pads the end of a structure).
SELECTOR = "@16s16sHHHHHBBBxxxiI"  # 56
ID = "@16sIBxxx"  # 24
LIFETIME_CFG = "@8Q"  # 64
LIFETIME_CUR = "@4Q"  # 32


def selector(daddr=b"\0" * 16, saddr=b"\0" * 16, dport=0, dmask=0, sport=0, smask=0, family=0, plend=0, plens=0,
             proto=0):
    return struct.pack(SELECTOR, daddr, saddr, struct.unpack("=H", struct.pack(">H", dport))[0],
                       struct.unpack("=H", struct.pack(">H", dmask))[0],
                       struct.unpack("=H", struct.pack(">H", sport))[0],
                       struct.unpack("=H", struct.pack(">H", smask))[0], family, plend, plens, proto, 0, 0)


def be32(value):
    return struct.unpack("=I", struct.pack(">I", value))[0]


def nla(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


INF = 0xFFFFFFFFFFFFFFFF


class StructSizeTests(SynchronousTestCase):
    """
    The fixed parts have the sizes of linux/xfrm.h's structures.
    """

    def test_sizes(self):
        self.assertEqual(struct.calcsize(SELECTOR), 56)
        self.assertEqual(m.structSize(m.usersa_info), 224)
        self.assertEqual(m.structSize(m.userpolicy_info), 168)
        self.assertEqual(m.structSize(m.userspi_info), 232)
        self.assertEqual(m.structSize(m.usersa_id), 24)
        self.assertEqual(m.structSize(m.userpolicy_id), 64)
        self.assertEqual(m.structSize(m.user_acquire), 280)
        self.assertEqual(m.structSize(m.user_expire), 232)
        self.assertEqual(sum(struct.calcsize("=" + fmt.lstrip(">")) for _, fmt in m.USER_TMPL), 64)

    def test_groups(self):
        """
        Multicast group N is bit N-1 of the bind(2) mask (XFRMGRP_ACQUIRE 1,
        XFRMGRP_EXPIRE 2 in linux/xfrm.h).
        """
        self.assertEqual(m.groupMask(m.XFRMNLGRP_ACQUIRE), 1)
        self.assertEqual(m.groupMask(m.XFRMNLGRP_ACQUIRE, m.XFRMNLGRP_EXPIRE), 3)


class EncodingTests(SynchronousTestCase):
    """
    Each message encodes to exactly the bytes the kernel expects.
    """

    def encode(self, msg, kind, flags=5, seq=7, pid=99):
        msg["header"]["type"] = kind
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = seq
        msg["header"]["pid"] = pid
        msg.encode()
        return bytes(msg.data)

    def header(self, length, kind, flags=5, seq=7, pid=99):
        return struct.pack("=IHHII", length, kind, flags, seq, pid)

    def test_newsa(self):
        """
        XFRM_MSG_NEWSA: xfrm_usersa_info (selector, id with the SPI in
        network order, lifetimes defaulting to XFRM_INF, family, mode,
        replay window, flags) then XFRMA_ALG_AEAD, XFRMA_ENCAP and
        XFRMA_REPLAY_ESN_VAL; XFRMA_SRCADDR is 16 bytes for IPv4 too.
        """
        a1, a2 = bytes([192, 0, 2, 1]) + b"\0" * 12, bytes([192, 0, 2, 2]) + b"\0" * 12
        key = bytes(range(20))
        msg = m.usersa_info()
        msg["id_daddr"] = a2
        msg["id_spi"] = 0xC0FFEE01
        msg["id_proto"] = 50
        msg["saddr"] = a1
        msg["lft_hard_add_expires_seconds"] = 3600
        msg["reqid"] = 0x69000001
        msg["family"] = 2
        msg["mode"] = 1
        msg["flags"] = 128 | 32
        msg["attrs"] = [
            ("XFRMA_ALG_AEAD", {"alg_name": b"rfc4106(gcm(aes))", "alg_key_len": 160, "alg_icv_len": 128, "key": key}),
            ("XFRMA_ENCAP", {"encap_type": 2, "encap_sport": 4500, "encap_dport": 4501}),
            ("XFRMA_REPLAY_ESN_VAL", {"bmp_len": 2, "replay_window": 64}),
            ("XFRMA_SRCADDR", {"addr": a1}),
        ]
        data = self.encode(msg, m.XFRM_MSG_NEWSA)
        body = (
            selector()
            + struct.pack(ID, a2, be32(0xC0FFEE01), 50)
            + a1
            + struct.pack(LIFETIME_CFG, INF, INF, INF, INF, 0, 3600, 0, 0)
            + struct.pack(LIFETIME_CUR, 0, 0, 0, 0)
            + struct.pack("@3I", 0, 0, 0)
            + struct.pack("@IIHBBB7x", 0, 0x69000001, 2, 1, 0, 160)
        )
        self.assertEqual(len(body), 224)
        attrs = (
            nla(18, b"rfc4106(gcm(aes))".ljust(64, b"\0") + struct.pack("=II", 160, 128) + key)
            + nla(4, struct.pack("=H", 2) + struct.pack(">HH", 4500, 4501) + b"\0\0" + b"\0" * 16)
            + nla(23, struct.pack("=6I", 2, 0, 0, 0, 0, 64) + b"\0" * 8)
            + nla(13, a1)
        )
        self.assertEqual(data, self.header(16 + 224 + len(attrs), 0x10) + body + attrs)
        self.assertEqual(len(nla(13, a1)), 20)

    def test_newsaRoundTrip(self):
        """
        What pyroute2 decodes from the encoded SA is what went in, keys of
        the variable-length algorithm attributes included.
        """
        msg = m.usersa_info()
        msg["id_spi"] = 0x1234
        msg["reqid"] = 5
        msg["attrs"] = [
            ("XFRMA_ALG_CRYPT", {"alg_name": b"cbc(aes)", "alg_key_len": 128, "key": b"e" * 16}),
            ("XFRMA_ALG_AUTH_TRUNC", {"alg_name": b"hmac(sha256)", "alg_key_len": 256, "alg_trunc_len": 128,
                                      "key": b"a" * 32}),
        ]
        decoded = m.usersa_info(self.encode(msg, m.XFRM_MSG_NEWSA))
        decoded.decode()
        self.assertEqual((decoded["id_spi"], decoded["reqid"]), (0x1234, 5))
        crypt = decoded.get_attr("XFRMA_ALG_CRYPT")
        auth = decoded.get_attr("XFRMA_ALG_AUTH_TRUNC")
        self.assertEqual((crypt["alg_name"].rstrip(b"\0"), crypt["key"]), (b"cbc(aes)", b"e" * 16))
        self.assertEqual((auth["alg_trunc_len"], auth["key"]), (128, b"a" * 32))

    def test_unalignedKey(self):
        """
        A key whose length is not a multiple of 4 (AES-192-GCM: 24 + 4 bytes
        is aligned, a 17-byte key plus salt is not) is padded to 4 bytes
        after the attribute, outside its length, so the next attribute
        starts aligned.
        """
        key = bytes(range(21))
        msg = m.usersa_info()
        msg["attrs"] = [
            ("XFRMA_ALG_AEAD", {"alg_name": b"rfc4106(gcm(aes))", "alg_key_len": 168, "alg_icv_len": 128, "key": key}),
            ("XFRMA_SRCADDR", {"addr": b"\x01" * 16}),
        ]
        data = self.encode(msg, m.XFRM_MSG_NEWSA)
        attrs = (struct.pack("=HH", 97, 18) + b"rfc4106(gcm(aes))".ljust(64, b"\0") + struct.pack("=II", 168, 128)
                 + key + b"\0\0\0" + nla(13, b"\x01" * 16))
        self.assertEqual(data[16 + 224:], attrs)
        self.assertEqual(struct.unpack_from("=I", data)[0], len(data))
        decoded = m.usersa_info(data)
        decoded.decode()
        self.assertEqual(decoded.get_attr("XFRMA_ALG_AEAD")["key"], key)
        self.assertEqual(decoded.get_attr("XFRMA_SRCADDR")["addr"], b"\x01" * 16)

    def test_newpolicy(self):
        """
        XFRM_MSG_NEWPOLICY: xfrm_userpolicy_info then XFRMA_TMPL holding two
        64-byte xfrm_user_tmpl back to back (IPcomp then ESP).
        """
        a1, a2 = bytes([192, 0, 2, 1]) + b"\0" * 12, bytes([192, 0, 2, 2]) + b"\0" * 12
        n1, n2 = bytes([10, 1, 0, 0]) + b"\0" * 12, bytes([10, 2, 0, 0]) + b"\0" * 12
        msg = m.userpolicy_info()
        msg["sel_saddr"], msg["sel_daddr"] = n1, n2
        msg["sel_prefixlen_s"], msg["sel_prefixlen_d"] = 16, 24
        msg["sel_family"] = 2
        msg["sel_proto"] = 6
        msg["sel_dport"], msg["sel_dport_mask"] = 443, 0xFFFF
        msg["priority"] = 1000
        msg["dir"] = 1
        common = {"family": 2, "saddr": a1, "id_daddr": a2, "reqid": 9, "aalgos": 0xFFFFFFFF,
                  "ealgos": 0xFFFFFFFF, "calgos": 0xFFFFFFFF}
        msg["attrs"] = [("XFRMA_TMPL", {"templates": [dict(common, id_proto=108, mode=1, optional=1),
                                                       dict(common, id_proto=50, mode=0)]})]
        data = self.encode(msg, m.XFRM_MSG_NEWPOLICY)
        body = (
            selector(daddr=n2, saddr=n1, dport=443, dmask=0xFFFF, family=2, plend=24, plens=16, proto=6)
            + struct.pack(LIFETIME_CFG, INF, INF, INF, INF, 0, 0, 0, 0)
            + struct.pack(LIFETIME_CUR, 0, 0, 0, 0)
            + struct.pack("@IIBBBB4x", 1000, 0, 1, 0, 0, 0)
        )
        self.assertEqual(len(body), 168)

        def tmpl(proto, mode, optional):
            return (struct.pack(ID, a2, 0, proto) + struct.pack("@H2x", 2) + a1
                    + struct.pack("@IBBBx3I", 9, mode, 0, optional, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF))

        self.assertEqual(len(tmpl(50, 0, 0)), 64)
        attrs = nla(5, tmpl(108, 1, 1) + tmpl(50, 0, 0))
        self.assertEqual(data, self.header(16 + 168 + 132, 0x13) + body + attrs)
        decoded = m.userpolicy_info(data)
        decoded.decode()
        templates = decoded.get_attr("XFRMA_TMPL")["templates"]
        self.assertEqual([(t["id_proto"], t["mode"], t["optional"], t["reqid"]) for t in templates],
                         [(108, 1, 1, 9), (50, 0, 0, 9)])

    def test_ids(self):
        """
        XFRM_MSG_DELSA/GETSA take an xfrm_usersa_id (24 bytes);
        XFRM_MSG_DELPOLICY an xfrm_userpolicy_id (64); XFRM_MSG_FLUSHSA an
        xfrm_usersa_flush (its one byte, padded to 4 by netlink).
        """
        a = b"\x20\x01\x0d\xb8" + b"\0" * 11 + b"\x01"
        msg = m.usersa_id()
        msg["daddr"], msg["spi"], msg["family"], msg["proto"] = a, 0x100, 10, 51
        self.assertEqual(self.encode(msg, m.XFRM_MSG_DELSA),
                         self.header(40, 0x11) + a + struct.pack(">I", 0x100) + struct.pack("=HBx", 10, 51))
        pol = m.userpolicy_id()
        pol["dir"] = 2
        self.assertEqual(self.encode(pol, m.XFRM_MSG_DELPOLICY),
                         self.header(80, 0x14) + selector() + struct.pack("=IB3x", 0, 2))
        flush = m.usersa_flush()
        flush["proto"] = 50
        self.assertEqual(self.encode(flush, m.XFRM_MSG_FLUSHSA), self.header(20, 0x1C) + b"\x32\0\0\0")

    def test_allocspi(self):
        """
        XFRM_MSG_ALLOCSPI: an xfrm_usersa_info followed by the SPI range.
        """
        msg = m.userspi_info()
        msg["min"], msg["max"] = 0x100, 0xFFFFFFFF
        data = self.encode(msg, m.XFRM_MSG_ALLOCSPI)
        self.assertEqual(len(data), 16 + 232)
        self.assertEqual(data[16 + 224:], struct.pack("=II", 0x100, 0xFFFFFFFF))


class DecodingTests(SynchronousTestCase):
    """
    The multicast messages decode from the kernel's layout.
    """

    def test_expire(self):
        """
        XFRM_MSG_EXPIRE: the SA's xfrm_usersa_info then the hard flag.
        """
        a = bytes([192, 0, 2, 1]) + b"\0" * 12
        state = (selector() + struct.pack(ID, a, be32(0xABCD0001), 50) + a
                 + struct.pack(LIFETIME_CFG, INF, INF, INF, INF, 0, 0, 0, 0) + struct.pack(LIFETIME_CUR, 10, 2, 0, 0)
                 + struct.pack("@3I", 0, 0, 0) + struct.pack("@IIHBBB7x", 0, 0x69000003, 2, 1, 32, 0))
        body = state + struct.pack("@B7x", 1)
        data = struct.pack("=IHHII", 16 + len(body), m.XFRM_MSG_EXPIRE, 0, 0, 0) + body
        msg = m.user_expire(data)
        msg.decode()
        self.assertEqual((msg["state_id_spi"], msg["state_id_proto"], msg["state_reqid"], msg["hard"],
                          msg["state_curlft_packets"]), (0xABCD0001, 50, 0x69000003, 1, 2))

    def test_acquire(self):
        """
        XFRM_MSG_ACQUIRE: the packet's selector and the policy's templates
        (XFRMA_TMPL) with their reqid.
        """
        a1, a2 = bytes([10, 1, 0, 1]) + b"\0" * 12, bytes([10, 2, 0, 1]) + b"\0" * 12
        policy = (selector() + struct.pack(LIFETIME_CFG, INF, INF, INF, INF, 0, 0, 0, 0) + struct.pack(LIFETIME_CUR, 0, 0, 0, 0)
                  + struct.pack("@IIBBBB4x", 0, 8, 1, 0, 0, 0))
        body = (struct.pack(ID, a2, 0, 50) + a1
                + selector(daddr=a2, saddr=a1, family=2, plend=32, plens=32, proto=1)
                + policy + struct.pack("@4I", 0, 0, 0, 77))
        tmpl = (struct.pack(ID, a2, 0, 50) + struct.pack("@H2x", 2) + a1
                + struct.pack("@IBBBx3I", 0x69000002, 1, 0, 0, 0, 0, 0))
        body += nla(5, tmpl)
        data = struct.pack("=IHHII", 16 + len(body), m.XFRM_MSG_ACQUIRE, 0, 0, 0) + body
        msg = m.user_acquire(data)
        msg.decode()
        self.assertEqual((msg["sel_saddr"][:4], msg["sel_daddr"][:4], msg["sel_proto"], msg["seq"]),
                         (bytes([10, 1, 0, 1]), bytes([10, 2, 0, 1]), 1, 77))
        self.assertEqual(msg.get_attr("XFRMA_TMPL")["templates"][0]["reqid"], 0x69000002)

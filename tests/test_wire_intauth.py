"""
Tests for L{ikedtx.wire.intauth}: the parts of an IKE_INTERMEDIATE message
RFC 9242 3.3.2 authenticates, as the sender computes them from its payloads
and as the receiver computes them from what it decrypted or reassembled.
"""

import struct

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.wire.constants import DhId, ExchangeType, HeaderFlag, NotifyType, PayloadType
from ikedtx.wire.fragments import Reassembler, fragmentMessage
from ikedtx.wire.header import Header
from ikedtx.wire.intauth import intAuthParts, intAuthPartsOfMessage, intAuthPartsOfPayloads
from ikedtx.wire.message import Message
from ikedtx.wire.payloads import KeyExchange, Notify, encodePayloads

from .wirehelpers import CbcHmacCipher

SPI_I, SPI_R = bytes(range(1, 9)), bytes(range(11, 19))


def intermediate(payloads, messageId=1, flags=HeaderFlag.INITIATOR):
    return Message(SPI_I, SPI_R, ExchangeType.IKE_INTERMEDIATE, flags, messageId, encrypted=payloads)


class IntAuthPartsTests(SynchronousTestCase):
    payloads = [KeyExchange(DhId.ML_KEM_768, b"\x42" * 1184), Notify(NotifyType.INITIAL_CONTACT)]

    def test_layout(self):
        """
        IntAuth_A is the IKE header with Next Payload SK (46) and the
        Length of header, SK header and inner payloads, then the SK generic
        header with the first inner type and 4 + inner length; IntAuth_P
        the inner payloads as encoded (RFC 9242 3.3.2, figure 1).
        """
        innerType, inner = encodePayloads(self.payloads)
        a, p = intAuthParts(SPI_I, SPI_R, ExchangeType.IKE_INTERMEDIATE, HeaderFlag.INITIATOR, 7, innerType, inner)
        self.assertEqual(p, inner)
        self.assertEqual(len(a), 28 + 4)
        self.assertEqual(a[:16], SPI_I + SPI_R)
        self.assertEqual(struct.unpack("!BBBBII", a[16:28]),
                         (PayloadType.SK, 0x20, ExchangeType.IKE_INTERMEDIATE, HeaderFlag.INITIATOR, 7,
                          28 + 4 + len(inner)))
        self.assertEqual(struct.unpack("!BBH", a[28:]), (PayloadType.KE, 0, 4 + len(inner)))

    def test_senderAndReceiverAgree(self):
        """
        The sender's parts (from its payloads and the header it sent) equal
        the receiver's (from the decrypted plaintext), whatever the cipher's
        IV, padding and ICV: they are left out.
        """
        cipher = CbcHmacCipher(b"k" * 32, b"i" * 32)
        message = intermediate(self.payloads)
        datagram = message.encode(cipher)
        sent = intAuthPartsOfPayloads(Header.decode(datagram), self.payloads)
        received = Message.decode(datagram)
        received.decrypt(cipher)
        self.assertEqual(intAuthPartsOfMessage(received), sent)
        self.assertNotEqual(len(datagram), len(sent[0]) + len(sent[1]))

    def test_fragmentedAsWhole(self):
        """
        RFC 9242 3.4: a fragmented message is authenticated as if it had
        not been fragmented; the reassembled message and its last fragment
        give the parts of the whole message.
        """
        cipher = CbcHmacCipher(b"k" * 32, b"i" * 32)
        whole = intermediate(self.payloads, flags=HeaderFlag.RESPONSE)
        expected = intAuthPartsOfPayloads(Header.decode(whole.encode(cipher)), self.payloads)
        fragments = fragmentMessage(intermediate(self.payloads, flags=HeaderFlag.RESPONSE), cipher, 500)
        self.assertGreater(len(fragments), 2)
        reassembler = Reassembler()
        for data in fragments:
            last = Message.decode(data)
            result = reassembler.add(last, cipher)
        self.assertEqual(intAuthPartsOfMessage(result), expected)
        self.assertEqual(intAuthPartsOfMessage(last), expected)

    def test_notDecrypted(self):
        """
        A message that was not decrypted has no parts to give.
        """
        datagram = intermediate(self.payloads).encode(CbcHmacCipher(b"k" * 32, b"i" * 32))
        self.assertRaises(ValueError, intAuthPartsOfMessage, Message.decode(datagram))

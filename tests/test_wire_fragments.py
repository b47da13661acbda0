# -*- test-case-name: tests.test_wire_fragments -*-
"""
Tests for L{ikedtx.wire.fragments}: RFC 7383 fragmentation and reassembly.
"""

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.wire import payloads as P
from ikedtx.wire.constants import ExchangeType, HeaderFlag, PayloadType
from ikedtx.wire.errors import FragmentDropped, InvalidSyntax, WireEncodeError
from ikedtx.wire.fragments import FRAGMENT_OVERHEAD, Reassembler, fragmentMessage, ikeMessageRoom
from ikedtx.wire.message import Message

from .test_wire_message import SPI_I, SPI_R, authMessage
from .wirehelpers import CbcHmacCipher, IntegrityError, NullCipher


def bigMessage(messageId=1, flags=HeaderFlag.INITIATOR):
    return authMessage(
        messageId=messageId,
        flags=flags,
        encrypted=[
            P.IDi.fromFQDN("a.example"),
            P.Certificate(4, bytes(range(256)) * 3),
            P.Authentication(14, b"\x01" + b"\x30" + b"S" * 200),
        ],
    )


class FragmentMessageTests(SynchronousTestCase):
    """
    L{fragmentMessage} (RFC 7383 2.5).
    """

    def test_fragments(self):
        """
        Every fragment fits the size, carries the message's header fields,
        numbers 1..N of N; fragment 1's Next Payload is the first inner
        type, the others' 0; each is sealed with its own aad (header, SKF
        header, Fragment Number, Total Fragments).
        """
        cipher = NullCipher()
        message = bigMessage()
        fragments = fragmentMessage(message, cipher, 300)
        self.assertGreater(len(fragments), 3)
        for index, data in enumerate(fragments):
            self.assertLessEqual(len(data), 300)
            decoded = Message.decode(data)
            self.assertEqual(
                (decoded.spiI, decoded.spiR, decoded.exchangeType, decoded.flags, decoded.messageId),
                (SPI_I, SPI_R, ExchangeType.IKE_AUTH, HeaderFlag.INITIATOR, 1),
            )
            fragment = decoded.sealedPayload
            self.assertIsInstance(fragment, P.EncryptedFragment)
            self.assertTrue(decoded.isFragment)
            self.assertEqual(fragment.fragmentNumber, index + 1)
            self.assertEqual(fragment.totalFragments, len(fragments))
            self.assertEqual(fragment.innerType, PayloadType.IDi if index == 0 else 0)
            self.assertEqual(decoded.aad, data[:FRAGMENT_OVERHEAD])
            self.assertEqual(cipher.calls[index], ("seal", data[:FRAGMENT_OVERHEAD]))
            self.assertEqual(Message.decode(data).encode(), data)
        # All but the last fragment are filled to the size.
        self.assertTrue(all(len(d) > 300 - 8 for d in fragments[:-1]))

    def test_ikeMessageRoom(self):
        """
        The IKE message room of a datagram size: IP and UDP headers and the
        non-ESP marker are subtracted.
        """
        self.assertEqual(ikeMessageRoom(1280, 6, True), 1280 - 40 - 8 - 4)
        self.assertEqual(ikeMessageRoom(576, 4, False), 576 - 20 - 8)

    def test_roundTrip(self):
        """
        Reassembling the fragments gives back the encrypted payloads.
        """
        cipher = CbcHmacCipher(b"k" * 32, b"i" * 32)
        message = bigMessage()
        reassembler = Reassembler()
        results = [reassembler.add(Message.decode(d), cipher) for d in fragmentMessage(message, cipher, 576)]
        self.assertEqual(results[:-1], [None] * (len(results) - 1))
        self.assertEqual(results[-1].encrypted, message.encrypted)
        self.assertEqual(results[-1].messageId, 1)
        self.assertEqual(results[-1].payloads, [])
        self.assertEqual(reassembler.bytesHeld, 0)
        self.assertEqual(reassembler.pendingMessages, 0)

    def test_outOfOrder(self):
        """
        Fragments may arrive in any order.
        """
        cipher = NullCipher()
        message = bigMessage()
        fragments = fragmentMessage(message, cipher, 400)
        reassembler = Reassembler()
        for data in reversed(fragments[1:]):
            self.assertIsNone(reassembler.add(Message.decode(data), cipher))
        self.assertEqual(reassembler.add(Message.decode(fragments[0]), cipher).encrypted, message.encrypted)

    def test_single(self):
        """
        A message that fits is one fragment of one.
        """
        cipher = NullCipher()
        [data] = fragmentMessage(authMessage(), cipher, 1280)
        fragment = Message.decode(data).sealedPayload
        self.assertEqual((fragment.fragmentNumber, fragment.totalFragments), (1, 1))
        self.assertEqual(Reassembler().add(Message.decode(data), cipher).encrypted, authMessage().encrypted)

    def test_empty(self):
        """
        An empty encrypted list is one empty fragment.
        """
        cipher = NullCipher()
        [data] = fragmentMessage(authMessage(encrypted=[]), cipher, 100)
        self.assertEqual(Reassembler().add(Message.decode(data), cipher).encrypted, [])

    def test_refusals(self):
        """
        Nothing to encrypt, unencrypted payloads, a size too small, too many
        fragments.
        """
        cipher = NullCipher()
        self.assertRaises(WireEncodeError, fragmentMessage, Message(SPI_I, SPI_R, 35, 8, 1), cipher, 500)
        self.assertRaises(
            WireEncodeError, fragmentMessage, authMessage(payloads=[P.VendorID(b"v")]), cipher, 500
        )
        self.assertRaises(WireEncodeError, fragmentMessage, authMessage(), cipher, FRAGMENT_OVERHEAD + 20)
        huge = authMessage(encrypted=[P.VendorID(b"v" * 60000)] * 20)
        self.assertRaises(WireEncodeError, fragmentMessage, huge, cipher, FRAGMENT_OVERHEAD + 29)


class ReassemblerTests(SynchronousTestCase):
    """
    L{Reassembler} (RFC 7383 2.6) and its limits.
    """

    def setUp(self):
        self.cipher = NullCipher()
        self.fragments = [Message.decode(d) for d in fragmentMessage(bigMessage(), self.cipher, 300)]
        self.total = len(self.fragments)

    def test_duplicate(self):
        """
        A duplicate fragment is dropped.
        """
        reassembler = Reassembler()
        reassembler.add(self.fragments[0], self.cipher)
        held = reassembler.bytesHeld
        e = self.assertRaises(FragmentDropped, reassembler.add, self.fragments[0], self.cipher)
        self.assertIsNone(e.notify)
        self.assertIn("duplicate", str(e))
        self.assertEqual(reassembler.bytesHeld, held)

    def test_integrityFirst(self):
        """
        A fragment failing its ICV is not kept.
        """
        reassembler = Reassembler()
        data = bytearray(self.fragments[0].encode())
        data[-1] ^= 1
        self.assertRaises(IntegrityError, reassembler.add, Message.decode(bytes(data)), self.cipher)
        self.assertEqual((reassembler.bytesHeld, reassembler.pendingMessages), (0, 0))

    def test_largerTotalRestarts(self):
        """
        RFC 7383 2.6.2: a fragment announcing more fragments than those
        held restarts the reassembly (the sender re-fragmented smaller).
        """
        reassembler = Reassembler()
        larger = [Message.decode(d) for d in fragmentMessage(bigMessage(), self.cipher, 200)]
        reassembler.add(self.fragments[0], self.cipher)
        reassembler.add(self.fragments[1], self.cipher)
        results = [reassembler.add(f, self.cipher) for f in larger]
        self.assertEqual(results[-1].encrypted, bigMessage().encrypted)

    def test_smallerTotalDropped(self):
        """
        A fragment announcing fewer fragments than those held is dropped.
        """
        reassembler = Reassembler()
        larger = [Message.decode(d) for d in fragmentMessage(bigMessage(), self.cipher, 200)]
        reassembler.add(larger[0], self.cipher)
        self.assertRaises(FragmentDropped, reassembler.add, self.fragments[1], self.cipher)

    def test_tooManyFragments(self):
        """
        Total Fragments above C{maxFragments} is dropped before decrypting.
        """
        reassembler = Reassembler(maxFragments=self.total - 1)
        self.assertRaises(FragmentDropped, reassembler.add, self.fragments[0], self.cipher)
        self.assertEqual(self.cipher.calls[-1][0], "seal")

    def test_byteLimit(self):
        """
        No more than C{maxBytes} are held.
        """
        reassembler = Reassembler(maxBytes=500)
        reassembler.add(self.fragments[0], self.cipher)
        reassembler.add(self.fragments[1], self.cipher)
        self.assertRaises(FragmentDropped, reassembler.add, self.fragments[2], self.cipher)
        self.assertLessEqual(reassembler.bytesHeld, 500)

    def test_messageLimit(self):
        """
        No more than C{maxMessages} messages are reassembled at once; a
        request and a response with the same Message ID are distinct.
        """
        reassembler = Reassembler(maxMessages=2)
        first = [Message.decode(d) for d in fragmentMessage(bigMessage(1), self.cipher, 300)]
        response = [
            Message.decode(d)
            for d in fragmentMessage(bigMessage(1, HeaderFlag.RESPONSE), self.cipher, 300)
        ]
        third = [Message.decode(d) for d in fragmentMessage(bigMessage(2), self.cipher, 300)]
        reassembler.add(first[0], self.cipher)
        reassembler.add(response[0], self.cipher)
        self.assertEqual(reassembler.pendingMessages, 2)
        self.assertRaises(FragmentDropped, reassembler.add, third[0], self.cipher)
        reassembler.discard(1, True)
        self.assertIsNone(reassembler.add(third[0], self.cipher))
        reassembler.clear()
        self.assertEqual((reassembler.bytesHeld, reassembler.pendingMessages), (0, 0))

    def test_differentExchange(self):
        """
        Fragments of one Message ID must agree on the exchange and SPIs.
        """
        reassembler = Reassembler()
        reassembler.add(self.fragments[0], self.cipher)
        other = Message.decode(fragmentMessage(bigMessage(), self.cipher, 300)[1])
        other.exchangeType = ExchangeType.CREATE_CHILD_SA
        self.assertRaises(FragmentDropped, reassembler.add, other, self.cipher)

    def test_notFragment(self):
        """
        Only SKF messages can be added.
        """
        self.assertRaises(ValueError, Reassembler().add, Message(SPI_I, SPI_R, 35, 8, 1), self.cipher)

    def test_malformedInner(self):
        """
        A reassembled inner chain that is malformed raises InvalidSyntax
        with the header, and nothing stays held.
        """
        cipher = NullCipher()
        message = authMessage(encrypted=[P.Nonce(b"x")])
        reassembler = Reassembler()
        [data] = fragmentMessage(message, cipher, 500)
        e = self.assertRaises(InvalidSyntax, reassembler.add, Message.decode(data), cipher)
        self.assertEqual(e.header.messageId, 1)
        self.assertEqual(reassembler.bytesHeld, 0)

# -*- test-case-name: tests.test_wire_fragments -*-
"""
Tests for L{ikedtx.wire.fragments}: RFC 7383 fragmentation and reassembly.
"""

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.wire import payloads as P
from ikedtx.wire.constants import ExchangeType, HeaderFlag, PayloadType
from ikedtx.wire.errors import FragmentDropped, InvalidSyntax, WireEncodeError
from ikedtx.wire.fragments import (
    FRAGMENT_OVERHEAD,
    Reassembler,
    fragmentMessage,
    fragmentSizeFor,
    ikeMessageRoom,
)
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

    def test_fragmentSizeFor(self):
        """
        RFC 7383 2.5.1 as iked: without a configured size, fragments fit
        576-octet IPv4 and 1280-octet IPv6 datagrams, less the non-ESP
        marker on the NAT-T port; a configured size wins.
        """
        from types import SimpleNamespace

        from ikedtx.core.settings import CoreSettings

        def sa(local, remote, natt=False):
            return SimpleNamespace(local=local, remote=remote, nattEnabled=natt)

        settings = CoreSettings()
        self.assertEqual(fragmentSizeFor(settings, sa(("192.0.2.1", 500), ("192.0.2.2", 500))), 548)
        self.assertEqual(fragmentSizeFor(settings, sa(("192.0.2.1", 4500), ("192.0.2.2", 4500))), 544)
        self.assertEqual(fragmentSizeFor(settings, sa(("2001:db8::1", 500), ("2001:db8::2", 500))), 1232)
        self.assertEqual(fragmentSizeFor(settings, sa(("2001:db8::1", 500), ("2001:db8::2", 500), True)), 1228)
        self.assertEqual(fragmentSizeFor(settings, sa(None, ("2001:db8::2", 500))), 1232)
        self.assertEqual(fragmentSizeFor(CoreSettings(fragmentSize=1000), sa(None, ("192.0.2.2", 500))), 1000)

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
        reassembler = Reassembler(maxMessages=1)
        first = [Message.decode(d) for d in fragmentMessage(bigMessage(1), self.cipher, 300)]
        response = [
            Message.decode(d)
            for d in fragmentMessage(bigMessage(1, HeaderFlag.RESPONSE), self.cipher, 300)
        ]
        reassembler.add(first[0], self.cipher)
        self.assertEqual(reassembler.pendingMessages, 1)
        self.assertRaises(FragmentDropped, reassembler.add, response[0], self.cipher)
        reassembler.discard(1, False)
        self.assertIsNone(reassembler.add(response[0], self.cipher))
        reassembler.clear()
        self.assertEqual((reassembler.bytesHeld, reassembler.pendingMessages), (0, 0))

    def test_laterMessageSupersedes(self):
        """
        With a window of one, a fragment of a later request frees what is
        held of an earlier request, and leaves the responses alone.
        """
        reassembler = Reassembler()
        first = [Message.decode(d) for d in fragmentMessage(bigMessage(1), self.cipher, 300)]
        response = [
            Message.decode(d)
            for d in fragmentMessage(bigMessage(1, HeaderFlag.RESPONSE), self.cipher, 300)
        ]
        second = [Message.decode(d) for d in fragmentMessage(bigMessage(2), self.cipher, 300)]
        reassembler.add(first[0], self.cipher)
        reassembler.add(response[0], self.cipher)
        self.assertEqual(reassembler.pendingMessages, 2)
        reassembler.add(second[0], self.cipher)
        self.assertEqual(sorted(reassembler._pending), [(1, True), (2, False)])
        self.assertEqual(reassembler.bytesHeld, sum(p.size for p in reassembler._pending.values()))
        results = [reassembler.add(f, self.cipher) for f in second[1:]]
        self.assertEqual(results[-1].encrypted, bigMessage(2).encrypted)

    def test_maxAge(self):
        """
        A message not complete C{maxAge} seconds after its first fragment
        is forgotten when the next fragment comes; one within the time is
        reassembled.
        """
        reassembler = Reassembler(maxAge=30)
        reassembler.add(self.fragments[0], self.cipher, now=100.0)
        held = reassembler.bytesHeld
        reassembler.add(self.fragments[1], self.cipher, now=130.0)
        self.assertGreater(reassembler.bytesHeld, held)
        # Too late: fragments 1 and 2 are gone, so 3 starts anew.
        reassembler.add(self.fragments[2], self.cipher, now=130.5)
        self.assertEqual(sorted(reassembler._pending[(1, False)].pieces), [3])
        results = [reassembler.add(f, self.cipher, now=131.0) for f in self.fragments[:2] + self.fragments[3:]]
        self.assertEqual(results[-1].encrypted, bigMessage().encrypted)
        self.assertEqual((reassembler.bytesHeld, reassembler.pendingMessages), (0, 0))

    def test_flood(self):
        """
        An authenticated peer flooding fragments of messages that never
        complete (each announcing 64 fragments, restarting with higher
        totals, for ever new Message IDs) holds at most C{maxBytes} and
        C{maxMessages}, and everything is freed once a message completes
        and the next one supersedes the rest.
        """
        reassembler = Reassembler()
        dropped = 0
        for messageId in range(1, 40):
            for size in (300, 250, 200, 150):
                for fragment in fragmentMessage(bigMessage(messageId), self.cipher, size)[:-1]:
                    try:
                        reassembler.add(Message.decode(fragment), self.cipher, now=float(messageId))
                    except FragmentDropped:
                        dropped += 1
                    self.assertLessEqual(reassembler.bytesHeld, reassembler.maxBytes)
                    self.assertLessEqual(reassembler.pendingMessages, 1)
        self.assertGreater(reassembler.bytesHeld, 0)
        whole = [Message.decode(d) for d in fragmentMessage(bigMessage(40), self.cipher, 300)]
        results = [reassembler.add(f, self.cipher, now=40.0) for f in whole]
        self.assertEqual(results[-1].encrypted, bigMessage(40).encrypted)
        self.assertEqual((reassembler.bytesHeld, reassembler.pendingMessages), (0, 0))

    def test_floodOneMessage(self):
        """
        Fragments for one message beyond C{maxBytes} are dropped and the
        bytes held stay capped.
        """
        reassembler = Reassembler(maxFragments=1000, maxBytes=2000)
        huge = authMessage(encrypted=[P.Certificate(4, b"c" * 20000)])
        fragments = [Message.decode(d) for d in fragmentMessage(huge, self.cipher, 300)]
        dropped = 0
        for fragment in fragments:
            try:
                self.assertIsNone(reassembler.add(fragment, self.cipher))
            except FragmentDropped as e:
                self.assertIn("would hold more than 2000", str(e))
                dropped += 1
        self.assertLessEqual(reassembler.bytesHeld, 2000)
        self.assertGreater(dropped, len(fragments) // 2)
        reassembler.discard(1, False)
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

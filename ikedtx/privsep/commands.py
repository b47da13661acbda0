# -*- test-case-name: tests.test_privsep_commands -*-
"""
The AMP commands between the privileged parent and the unprivileged
worker, over their socketpair.

Worker to parent: the datapath operations of L{ikedtx.kernel.interfaces.
IKernel} (inbound SPIs one at a time, or in blocks where the datapath
allows it: L{AllocateSpis}; SAs and flows as L{ikedtx.privsep.records}
packed records, checked by the parent; the SAs and flows of one reactor turn in one L{Batch}),
C{AddAddress} and C{RemoveAddress} (a virtual address a configuration
payload lent us, on an interface), C{Reload} and
C{FetchState} (the parent reads the configuration and the iked tree; the
worker fetches the result in chunks), C{Ready}. Parent to worker: the
datapath's events (C{Acquire}, C{Expired}), C{AdoptControl}, C{AdoptDAE}.

Every argument is typed and bounded: AMP limits a value to 65,535 bytes, a
record to L{ikedtx.privsep.records.MAX_RECORD_BYTES}; a record that does
not decode is refused with C{BAD_RECORD}, a datapath failure is
C{KERNEL_ERROR}, an address the parent will not put on an interface
C{ADDRESS_REFUSED}; each carries one line of text.
"""

from twisted.protocols import amp

from ikedtx.kernel.interfaces import KernelError
from ikedtx.privsep.records import AddressRefused, RecordError

#: The bytes of the state per L{FetchState} answer.
CHUNK = 60000

_ERRORS = {KernelError: b"KERNEL_ERROR", RecordError: b"BAD_RECORD"}


class AllocateSpi(amp.Command):
    arguments = [(b"protocol", amp.Integer()), (b"source", amp.Unicode()), (b"destination", amp.Unicode())]
    response = [(b"spi", amp.Integer())]
    errors = _ERRORS


#: The most SPIs one L{AllocateSpis} asks for, and the most a worker holds
#: lent and not yet installed or given back.
MAX_SPI_BLOCK = 64
MAX_LENT_SPIS = 256


class AllocateSpis(amp.Command):
    """
    C{count} inbound SPIs for C{protocol} (AH or ESP) ahead of need, from a
    datapath whose SPIs do not depend on the addresses (its C{spiBlocks}:
    the user-space and the decoupled ones; XFRM's ALLOCSPI makes a larval
    SA for one source and destination, which expires unused, so the worker
    asks L{AllocateSpi} there). Each is reserved in the datapath as one
    L{AllocateSpi} would be, and stays lent to the worker until an inbound
    SA installs it or a C{DeleteSA} gives it back; what a worker still
    holds when its channel ends is released.
    """

    arguments = [(b"protocol", amp.Integer()), (b"count", amp.Integer())]
    response = [(b"spis", amp.ListOf(amp.Integer()))]
    errors = _ERRORS


class _SACommand(amp.Command):
    arguments = [(b"sa", amp.String())]
    response = []
    errors = _ERRORS


class AddSA(_SACommand):
    pass


class DeleteSA(_SACommand):
    pass


class DetachSA(_SACommand):
    pass


class QuerySA(_SACommand):
    response = [(b"usage", amp.String())]


class UpdateSA(amp.Command):
    arguments = [(b"old", amp.String()), (b"new", amp.String())]
    response = []
    errors = _ERRORS


class AddFlow(amp.Command):
    arguments = [(b"flow", amp.String())]
    response = []
    errors = _ERRORS


class DeleteFlow(AddFlow):
    pass


class Batch(amp.Command):
    """
    Several of L{AddSA}, L{DeleteSA}, L{DetachSA}, L{AddFlow} and
    L{DeleteFlow} in one box (L{ikedtx.privsep.records.encodeBatch}), done
    in order; the answer has one entry per operation: empty when it
    succeeded, else C{CODE<TAB>text} (C{BAD_RECORD}, C{KERNEL_ERROR},
    C{UNKNOWN}). A batch that does not decode is refused whole with
    C{BAD_RECORD}, and none of it is done.
    """

    arguments = [(b"ops", amp.String())]
    response = [(b"errors", amp.ListOf(amp.Unicode()))]
    errors = _ERRORS


class BlockIPv6(amp.Command):
    arguments = []
    response = []
    errors = _ERRORS


class UnblockIPv6(BlockIPv6):
    pass


class Flush(BlockIPv6):
    pass


class AddAddress(amp.Command):
    """
    Put C{address} (lent us by the peer of an IKE SA, RFC 7296 2.19) on
    C{interface}: the parent does it only for an address that is the local
    selector of an SA the worker installed, on an interface a policy that
    requests an address names (or the datapath's own).
    """

    arguments = [(b"address", amp.Unicode()), (b"interface", amp.Unicode())]
    response = []
    errors = {**_ERRORS, AddressRefused: b"ADDRESS_REFUSED"}


class RemoveAddress(AddAddress):
    """
    Take C{address} off C{interface} again (nothing happens for one the
    parent did not put there).
    """


class Ready(amp.Command):
    """
    The worker has dropped its privileges and serves peers.
    """

    arguments = [(b"pid", amp.Integer())]
    response = []


class AdoptControl(amp.Command):
    """
    Parent to worker: a control connection the parent accepted and held
    while no worker was ready (L{ikedtx.privsep.gate}), unread; the worker
    serves it as one of its own (of the read-only socket if C{readOnly}).
    """

    arguments = [(b"descriptor", amp.Descriptor()), (b"readOnly", amp.Boolean())]
    response = []


class AdoptDAE(amp.Command):
    """
    Parent to worker: a UDP socket the parent bound for a C{radius dae
    listen on ADDRESS port PORT} line of a reloaded configuration (a port
    below 1024 needs root), for the worker to serve.
    """

    arguments = [(b"descriptor", amp.Descriptor()), (b"address", amp.Unicode()), (b"port", amp.Integer())]
    response = []


class SetVerbose(amp.Command):
    """
    ikectl log verbose|brief: the parent's log takes the worker's debug
    lines, or not.
    """

    arguments = [(b"verbose", amp.Boolean())]
    response = []


class Reload(amp.Command):
    """
    Read the configuration (C{path}, or the one in force when empty) and
    the iked tree again; the answer says how to fetch the new state.
    """

    arguments = [(b"path", amp.Unicode())]
    response = [(b"token", amp.Integer()), (b"size", amp.Integer())]
    errors = {ValueError: b"RELOAD_FAILED"}


class FetchState(amp.Command):
    arguments = [(b"token", amp.Integer()), (b"offset", amp.Integer())]
    response = [(b"data", amp.String())]
    errors = {KeyError: b"NO_SUCH_STATE"}


class Acquire(amp.Command):
    arguments = [(b"reqid", amp.Integer()), (b"source", amp.String()), (b"destination", amp.String())]
    response = []
    requiresAnswer = False


class Expired(amp.Command):
    arguments = [(b"protocol", amp.Integer()), (b"spi", amp.Integer()), (b"destination", amp.Unicode()),
                 (b"hard", amp.Boolean())]
    response = []
    requiresAnswer = False


#: The longest identity (its text, "FQDN/example.com") in L{InitialContact}
#: and L{ForgetPeer}.
MAX_IDENTITY = 1024


class InitialContact(amp.Command):
    """
    Worker to parent (one of several workers): a peer authenticated as
    C{peerId} to our C{localId} sent INITIAL_CONTACT (RFC 7296 2.4); the
    other workers forget their IKE SAs between the two (L{ForgetPeer}).
    """

    arguments = [(b"peerId", amp.Unicode()), (b"localId", amp.Unicode())]
    response = []
    requiresAnswer = False


class ForgetPeer(amp.Command):
    """
    Parent to worker: another worker received INITIAL_CONTACT from
    C{peerId} to C{localId}: the IKE SAs between them are stale.
    """

    arguments = [(b"peerId", amp.Unicode()), (b"localId", amp.Unicode())]
    response = []
    requiresAnswer = False

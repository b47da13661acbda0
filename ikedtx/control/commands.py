# -*- test-case-name: tests.test_control -*-
"""
The AMP commands of the control socket (ikectl(8)'s requests).
"""

from twisted.protocols.amp import AmpList, Command, Integer, ListOf, Unicode


class CommandFailed(Exception):
    """
    A control command could not be carried out; the message says why.
    """


_ERRORS = {CommandFailed: b"COMMAND_FAILED"}

_CHILD = [
    (b"protocol", Unicode()),
    (b"spiIn", Unicode()),
    (b"spiOut", Unicode()),
    (b"mode", Unicode()),
    (b"state", Unicode()),
    (b"local", ListOf(Unicode())),
    (b"remote", ListOf(Unicode())),
    (b"proposal", Unicode()),
]

_IKESA = [
    (b"spiI", Unicode()),
    (b"spiR", Unicode()),
    (b"initiator", Integer()),
    (b"state", Unicode()),
    (b"policy", Unicode()),
    (b"local", Unicode()),
    (b"remote", Unicode()),
    (b"localId", Unicode()),
    (b"peerId", Unicode()),
    (b"proposal", Unicode()),
    (b"natt", Integer()),
    (b"udpencap", Integer()),
    (b"children", AmpList(_CHILD)),
]


# An AMP value holds at most 65,535 bytes: SAs are listed a page at a time.
SHOW_SA_PAGE = 50


def showSAPages(pageSize=SHOW_SA_PAGE):
    """
    The paging of C{show sa}, for any client: a generator that yields the
    arguments of each L{ShowSA} request (C{offset} and C{limit}), is sent
    each response, and returns every SA once the daemon has listed them
    all (or answers an empty page, should SAs go away meanwhile).

    A client drives it::

        pages = showSAPages()
        request = next(pages)
        while True:
            response = callRemote(ShowSA, **request)
            try:
                request = pages.send(response)
            except StopIteration as done:
                return done.value
    """
    sas = []
    while True:
        response = yield {"offset": len(sas), "limit": pageSize}
        sas.extend(response["sas"])
        if not response["sas"] or len(sas) >= response["total"]:
            return sas


class ShowSA(Command):
    """
    ikectl show sa: the IKE SAs with their Child SAs, C{limit} of them
    from C{offset} on (in a stable order), and how many there are in all.
    """

    arguments = [(b"offset", Integer(optional=True)), (b"limit", Integer(optional=True))]
    response = [(b"sas", AmpList(_IKESA)), (b"total", Integer())]
    errors = _ERRORS


class Initiate(Command):
    """
    Start the IKE SA of a policy now and wait until it is up (an ikedtx
    extension; iked initiates active policies on its own).
    """

    arguments = [(b"policy", Unicode())]
    response = [(b"spiI", Unicode()), (b"spiR", Unicode())]
    errors = _ERRORS


class CreateChildSA(Command):
    """
    Negotiate one more Child SA on the IKE SA whose initiator SPI is
    C{spiI} (hex) with CREATE_CHILD_SA (an ikedtx extension).
    """

    arguments = [(b"spiI", Unicode())]
    response = [(b"spiIn", Unicode()), (b"spiOut", Unicode())]
    errors = _ERRORS


class DeleteChildSA(Command):
    """
    Delete the Child SA whose inbound SPI is C{spiIn} (hex) with an
    INFORMATIONAL exchange (an ikedtx extension).
    """

    arguments = [(b"spiIn", Unicode())]
    response = []
    errors = _ERRORS


class DeleteIkeSA(Command):
    """
    Delete the IKE SA whose initiator SPI is C{spiI} (hex) and its Child SAs
    (an ikedtx extension).
    """

    arguments = [(b"spiI", Unicode())]
    response = []
    errors = _ERRORS


class Reload(Command):
    """
    ikectl reload: read the configuration file again.
    """

    arguments = []
    response = []
    errors = _ERRORS

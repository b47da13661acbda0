# -*- test-case-name: tests.test_core_reauth -*-
"""
Reauthentication (RFC 7296 2.8.3) of an IKE SA whose policy says
C{ikelifetime TIME reauth} (an ikedtx extension: iked only rekeys):
make-before-break, as strongSwan's C{reauth_time} with
C{make_before_break}. At the jittered C{ikelifetime} we open a new IKE SA
for the policy with a full IKE_SA_INIT and IKE_AUTH (its first Child SA
recreates the policy's); once that Child SA is installed the old IKE SA is
deleted with a Delete, taking its Child SAs with it. The new IKE SA sends
no INITIAL_CONTACT, the old one being up (L{ikedtx.core.tasks.
initialcontact}). If the new IKE SA fails, the old one stays and tries
again later.

Only the Child SA of the IKE SA's own policy is recreated: Child SAs the
peer added for other policies go with the old IKE SA (their active
policies are initiated again; a peer that wants them back asks again).
"""

from twisted.logger import Logger

from ikedtx.core import lifetimes
from ikedtx.core.errors import NegotiationFailed
from ikedtx.core.states import IKEState
from ikedtx.core.tasks import ikerekey

_log = Logger()

# Seconds before the old IKE SA tries again when its successor failed.
RETRY_LOW, RETRY_HIGH = 30.0, 60.0


def reauthTime(core, ikeSA):
    """
    C{ikeSA} reached its C{ikelifetime} and its policy asks for
    reauthentication: start its successor, unless one is on its way or
    this IKE SA is being rekeyed, replaced or deleted; arm a retry in case
    the successor fails.
    """
    if ikeSA is None or core.passive or not ikeSA.isEstablished:
        return
    if ikeSA.rekeying is not None or ikeSA.rekeyedBy is not None:
        return
    successor = ikeSA.reauthBy
    if successor is not None and successor.state != IKEState.CLOSED:
        # Still on its way (its retransmissions take longer than the
        # retry delay): look again later.
        lifetimes.armIKE(core, ikeSA, delay=lifetimes.retryDelay(core, RETRY_LOW, RETRY_HIGH))
        return
    try:
        new = core._initiate(ikeSA.policy.name, None, keepUp=ikeSA.keepUp)
    except NegotiationFailed as e:
        _log.warn("{ikeSA}: cannot reauthenticate ({error}); rekeying instead", ikeSA=ikeSA, error=e)
        ikerekey.rekeyTime(core, ikeSA)
        return
    _log.info("{ikeSA}: reauthenticating with {new}", ikeSA=ikeSA, new=new)
    new.reauthOf = ikeSA
    ikeSA.reauthBy = new
    lifetimes.armIKE(core, ikeSA, delay=lifetimes.retryDelay(core, RETRY_LOW, RETRY_HIGH))


def childUp(core, ikeSA):
    """
    A Child SA of C{ikeSA} is installed: if C{ikeSA} reauthenticates
    another IKE SA that is still up, delete that one now (break after
    make).
    """
    old = ikeSA.reauthOf
    if old is None:
        return
    ikeSA.reauthOf = None
    if old.state != IKEState.VALID or old.reauthBy is not ikeSA:
        return
    _log.info("{old}: reauthenticated by {new}, deleting it", old=old, new=ikeSA)
    old.keepUp = False
    core._deleteIKESA(old, "reauthenticated")

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

Every Child SA the old IKE SA carried is recreated (2.8.3): the IKE_AUTH
of the new IKE SA makes one of its own policy's, then one CREATE_CHILD_SA
(L{RecreateChildTask}) for each other one, ours or the peer's, each for the
policy it belongs to. The old IKE SA is deleted once every recreation has
ended, installed or failed (a refused one does not keep the old IKE SA
up).
"""

from twisted.logger import Logger

from ikedtx.core import lifetimes
from ikedtx.core.errors import NegotiationFailed
from ikedtx.core.states import ChildState, IKEState
from ikedtx.core.tasks import ikerekey
from ikedtx.core.tasks.child import ChildCreateTask

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
    another IKE SA that is still up, recreate that one's other Child SAs on
    C{ikeSA}; once none is left to recreate, delete the old IKE SA (break
    after make).
    """
    old = ikeSA.reauthOf
    if old is None or ikeSA.recreating is not None:
        return
    if old.state != IKEState.VALID or old.reauthBy is not ikeSA:
        ikeSA.reauthOf = None
        return
    tasks = [RecreateChildTask(child.policy) for child in _toRecreate(old, ikeSA)]
    ikeSA.recreating = set(tasks)
    for task in tasks:
        ikeSA.taskManager.queueExchange([task])
    if tasks:
        _log.info("{new}: recreating {n} more Child SA(s) of {old}", new=ikeSA, n=len(tasks), old=old)
    _recreated(core, ikeSA, None)


def _toRecreate(old, new):
    """
    The Child SAs of C{old} still to be made on C{new}: every installed
    one not rekeyed already, less one of the policy whose Child SA the
    IKE_AUTH of C{new} made.
    """
    children = [c for c in old.children if c.state == ChildState.INSTALLED and c.rekeyedBy is None]
    made = [c.policy for c in new.children]
    out = []
    for child in children:
        policy = child.policy or old.policy
        if policy in made:
            made.remove(policy)
            continue
        out.append(child)
    return out


def _recreated(core, ikeSA, task):
    """
    C{task} (one of C{ikeSA}'s recreations) ended; when none is left,
    delete the IKE SA C{ikeSA} reauthenticates.
    """
    if ikeSA.recreating is None:
        return
    ikeSA.recreating.discard(task)
    if ikeSA.recreating:
        return
    old, ikeSA.reauthOf = ikeSA.reauthOf, None
    if old is None or old.state != IKEState.VALID or old.reauthBy is not ikeSA:
        return
    _log.info("{old}: reauthenticated by {new}, deleting it", old=old, new=ikeSA)
    old.keepUp = False
    core._deleteIKESA(old, "reauthenticated")


class RecreateChildTask(ChildCreateTask):
    """
    As the reauthenticating initiator: make on the new IKE SA the
    counterpart of one Child SA of the old one, for C{policy}.
    """

    def __init__(self, policy):
        ChildCreateTask.__init__(self, True, policy=policy)

    def childUp(self, core, ikeSA, child):
        ChildCreateTask.childUp(self, core, ikeSA, child)
        _recreated(core, ikeSA, self)

    def failed(self, core, ikeSA, error):
        _log.warn("{ikeSA}: a Child SA of the reauthenticated IKE SA was not recreated: {error}", ikeSA=ikeSA,
                  error=error)
        ChildCreateTask.failed(self, core, ikeSA, error)
        _recreated(core, ikeSA, self)

# -*- test-case-name: tests.test_core_taskmanager -*-
"""
Which tasks make an exchange: the responder tasks made for a peer's request
by its exchange type, and the initiator tasks of the exchanges we start.
A new exchange is a new entry here; a new concern of an existing exchange
is one more task in its lists.
"""

from ikedtx.core.tasks.auth import AuthTask
from ikedtx.core.tasks.capabilities import CapabilitiesTask
from ikedtx.core.tasks.certreq import CertreqTask
from ikedtx.core.tasks.child import ChildCreateTask
from ikedtx.core.tasks.config import ConfigTask
from ikedtx.core.tasks.delete import ChildDeleteTask, IKEDeleteTask
from ikedtx.core.tasks.followup import OrphanFollowupTask
from ikedtx.core.tasks.ikeinit import IKEInitTask
from ikedtx.core.tasks.inform import ErrorNotifyTask
from ikedtx.core.tasks.ikerekey import IKERekeyTask
from ikedtx.core.tasks.initialcontact import InitialContactTask
from ikedtx.core.tasks.intermediate import IntermediateGuardTask, IntermediateTask
from ikedtx.core.tasks.liveness import LivenessTask
from ikedtx.core.tasks.mobike import MobikeTask
from ikedtx.core.tasks.mobikeupdate import UpdateAddressesTask
from ikedtx.core.tasks.natd import NATDetectionTask
from ikedtx.wire.constants import ExchangeType


def initResponderTasks(screened):
    """
    The responder tasks of an IKE_SA_INIT request that passed
    L{ikedtx.core.tasks.ikeinit.screenRequest}, in the order their payloads
    go in the response.
    """
    return [IKEInitTask(False, screened), NATDetectionTask(False), CertreqTask(False), CapabilitiesTask(False),
            IntermediateTask(False)]


RESPONDERS = {
    ExchangeType.IKE_AUTH: lambda: [IntermediateGuardTask(False), AuthTask(False), InitialContactTask(False),
                                    ConfigTask(False), ChildCreateTask(False, inAuth=True), MobikeTask(False)],
    ExchangeType.CREATE_CHILD_SA: lambda: [IKERekeyTask(False), ChildCreateTask(False)],
    ExchangeType.IKE_FOLLOWUP_KE: lambda: [OrphanFollowupTask(False)],
    ExchangeType.INFORMATIONAL: lambda: [IKEDeleteTask(False), ChildDeleteTask(False), ErrorNotifyTask(False),
                                         LivenessTask(False), UpdateAddressesTask(False)],
}


def responderTasks(exchangeType):
    """
    New responder tasks for a request of C{exchangeType}, or L{None} when
    we do not implement that exchange.
    """
    factory = RESPONDERS.get(exchangeType)
    return None if factory is None else factory()


def establishTasks(requestId):
    """
    The initiator tasks of a new IKE SA: IKE_SA_INIT, the IKE_INTERMEDIATE
    exchanges of additional key exchanges (if any: the intermediate task
    comes right after IKE_SA_INIT's, so it leads the next rounds), then
    IKE_AUTH with the first Child SA; C{requestId} succeeds when that Child
    SA is installed.
    """
    return [IKEInitTask(True), IntermediateTask(True), NATDetectionTask(True), CapabilitiesTask(True), AuthTask(True),
            CertreqTask(True), InitialContactTask(True), ConfigTask(True),
            ChildCreateTask(True, requestId, inAuth=True), MobikeTask(True)]

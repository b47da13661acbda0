"""
Reauthentication (RFC 7296 2.8.3) against strongSwan's charon 5.9.8
(kernel-libipsec) in network namespaces, with a ping through ikedtx's
user-space datapath the whole time: charon reauthenticates (its
C{reauth_time}: a new IKE_SA_INIT and IKE_AUTH with the same identities,
then a Delete of the old IKE SA), and ikedtx does (C{ikelifetime 10
reauth}, an ikedtx extension). Each test waits until both sides hold one
IKE SA and one Child SA, both new and the same on both sides, and not one
ping reply was lost.
"""

from twisted.trial.unittest import TestCase

from tests import test_interop_rekey
from tests.test_interop_rekey import CharonRekeyMixin
from tests.test_interop_userspace import UserspaceMixin


class UserspaceReauthTests(UserspaceMixin, CharonRekeyMixin, TestCase):
    _startOurs = test_interop_rekey.UserspaceRekeyTests._startOurs
    _pingThrough = test_interop_rekey.UserspaceRekeyTests._pingThrough
    # charon 5.9.8 reauthenticates break-before-make by default (the old
    # IKE SA and its Child SA go before the new ones come): a ping loses a
    # reply there, whoever the responder.
    makeBeforeBreak = "yes"

    def charon(self, namespace, name=None, **kwargs):
        kwargs.setdefault("settings", {"make_before_break": self.makeBeforeBreak})
        return super().charon(namespace, name, **kwargs)

    def test_charonReauthenticates(self):
        """
        charon, the initiator, reauthenticates after 8 s: ikedtx answers
        the new IKE SA (not taking it for a reboot) and deletes the old one
        on charon's Delete, leaving exactly the new pair.
        """
        ours, charon, mine = self._established(charonInitiates=True, reauth_time="8s")
        after = self._pingThrough(ours, charon, mine, ikeRenewed=True)
        self.labAssert(after["children"][0]["spiIn"] != mine["children"][0]["spiIn"],
                       "the Child SA was not made again")
        self.labAssert("replaced: the peer sent INITIAL_CONTACT" not in ours.log(),
                       "charon's reauthentication was taken for a reboot")

    def test_charonReauthenticatesBreakBeforeMake(self):
        """
        With charon's default (break-before-make: its Delete first, then a
        new IKE SA with INITIAL_CONTACT), ikedtx ends with the new pair
        alone too.
        """
        self.makeBeforeBreak = "no"
        ours, charon, mine = self._established(charonInitiates=True, reauth_time="8s")
        after = self._settled(ours, charon, mine, ikeRenewed=True)
        self.assertEqual(after["initiator"], 0)

    def test_ikedtxReauthenticates(self):
        """
        ikedtx reauthenticates at C{ikelifetime 10 reauth}: the new IKE SA
        and Child SA are up before the old IKE SA is deleted.
        """
        ours, charon, mine = self._established(lifetimes="ikelifetime 10 reauth")
        after = self._pingThrough(ours, charon, mine, ikeRenewed=True)
        self.labAssert(after["children"][0]["spiIn"] != mine["children"][0]["spiIn"],
                       "the Child SA was not made again")
        self.labAssert("reauthenticating with" in ours.log(), "ikedtx did not reauthenticate")
        self.labAssert("rekeying the IKE SA" not in ours.log(), "ikedtx rekeyed instead")


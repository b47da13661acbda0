"""
Childless IKE SAs (RFC 6023) against strongSwan's charon 5.9.8 in network
namespaces, both roles: the initiator (charon with C{childless = force},
ikedtx with C{--childless force}) sends an IKE_AUTH without SA, TSi or TSr
to a responder that announced CHILDLESS_IKEV2_SUPPORTED, and the Child SA
comes next with CREATE_CHILD_SA.
"""

from twisted.trial.unittest import TestCase

from tests.interop import Credentials, ikedtxPolicy
from tests.test_interop_charon import IKEDTX_CHILD, CharonMixin


class CharonChildlessTests(CharonMixin, TestCase):
    def test_charonForcesChildless(self):
        """
        ikedtx, the responder, announces the extension and authenticates
        charon's childless IKE_AUTH; the Child SA charon asks for next with
        CREATE_CHILD_SA is the same on both sides.
        """
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials, childless="force")
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=IKEDTX_CHILD))
        credentials.installIkedtx(ours)
        ours.start()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertEqual(mine["initiator"], 0)
        self.labAssert("IKE_SA_INIT response 0 [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(CHDLESS_SUP)" in output, output)
        (authLine,) = [line for line in output.splitlines() if "generating IKE_AUTH request" in line]
        self.labAssert(" SA " not in authLine and "TSi" not in authLine, output)
        self.labAssert("CREATE_CHILD_SA request" in output, output)

    def test_ikedtxForcesChildless(self):
        """
        ikedtx with C{--childless force} initiates to charon (whose
        C{childless} is C{allow}): charon logs an IKE_AUTH without a Child
        SA, then the CREATE_CHILD_SA; both sides hold the same SAs.
        """
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials)
        ours = self.startIkedtx(ikedtxPolicy(credentials, child=IKEDTX_CHILD), extraArgs=["--childless", "force"])
        credentials.installIkedtx(ours)
        ours.start()
        ours.initiate("peer")
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertEqual(mine["initiator"], 1)
        log = charon.log()
        (authLine,) = [line for line in log.splitlines() if "parsed IKE_AUTH request" in line]
        self.labAssert(" SA " not in authLine and "TSi" not in authLine, authLine)
        self.labAssert("parsed CREATE_CHILD_SA request" in log, charon.report())

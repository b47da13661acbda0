"""
Rekeys with iked's hybrid C{sntrup761x25519} against openiked 7.2 (a
single key exchange: iked has no RFC 9370 multiple key exchanges), each
daemon in a network namespace: the IKE SA rekeyed by either side on its
own C{ikelifetime} timer, and a PFS Child SA rekeyed by ikedtx at its
C{lifetime}; the renewed SA's proposal names sntrup761x25519 (1035) and
both daemons agree on its SPIs.

iked has no Child SA lifetime timer of its own: it rekeys a Child SA when
the kernel sends PF_KEY SADB_EXPIRE (soft) for an SA it installed with its
policy's lifetimes. With C{set decouple} it installs nothing (the PF_KEY
shim sees only GETSPI), so for iked's own Child SA rekeys iked runs coupled
here and the lab's shim (no AF_KEY on this kernel) sends SADB_EXPIRE when
the soft addtime of an SA it was given runs out.
"""

from twisted.trial.unittest import TestCase

from tests.interop import Credentials, ikedtxPolicy
from tests.support import missing
from ikedtx.testing.lab.pki import KeyPair

from tests.test_interop_openiked import CHILDSA, OpenIkedMixin, ikedPolicy
from tests import test_interop_rekey as _rekey

IKESA = "ikesa enc aes-128-gcm prf hmac-sha2-256 group sntrup761x25519"
PFS = CHILDSA + " group sntrup761x25519"
_SNTRUP_NAME = r"DhId\(1035\)|(?i:sntrup761x25519)"


class SntrupRekeyTests(OpenIkedMixin, TestCase):
    _settled = _rekey.OpenIkedRekeyTests._settled

    def setUp(self):
        from ikedtx.crypto import sntrup

        if not sntrup.AVAILABLE:
            missing("the sntrup761 binding is not installed (pip install 'ikedtx[pq]')")

    def _established(self, ike=IKESA, child=CHILDSA, ours="", theirs="", coupled=False):
        self.hosts()
        credentials = Credentials("psk")
        if coupled:
            iked = self.openiked(self.b, ikedPolicy(credentials, ike=ike, child=child, lifetimes=theirs),
                                 localKey=KeyPair.generate("ecdsa-p256"), decouple=False)
            iked.start()
        else:
            iked = self.startOpenIked(credentials, ike=ike, child=child, lifetimes=theirs)
        ikedtx = self.startIkedtx(ikedtxPolicy(credentials, ike=ike, child=child, lifetimes=ours))
        ikedtx.start()
        ikedtx.initiate("peer")
        mine, _ = self.assertSameSAs(ikedtx, iked)
        return ikedtx, iked, mine

    def test_ikedtxRekeysIkeSA(self):
        """
        ikedtx rekeys the sntrup761x25519 IKE SA at C{ikelifetime 10}: iked
        logs the rekey, the new IKE SA uses sntrup761x25519 again.
        """
        ours, iked, mine = self._established(ours="ikelifetime 10")
        after = self._settled(ours, iked, mine, ikeRenewed=True)
        self.assertRegex(after["proposal"], _SNTRUP_NAME)
        self.labAssert("rekeying the IKE SA" in ours.log(), "ikedtx did not start the IKE SA rekey")
        self.labAssert("rekeyed as new IKESA" in iked.log(), "iked logged no IKE SA rekey:\n" + iked.report())

    def test_ikedRekeysIkeSA(self):
        """
        iked rekeys the sntrup761x25519 IKE SA at its C{ikelifetime 10};
        ikedtx answers (decapsulating iked's key) and moves the Child SA.
        """
        ours, iked, mine = self._established(theirs="ikelifetime 10")
        after = self._settled(ours, iked, mine, ikeRenewed=True)
        self.assertRegex(after["proposal"], _SNTRUP_NAME)
        self.labAssert("rekeyed as new IKESA" in iked.log(), "iked logged no IKE SA rekey:\n" + iked.report())
        self.labAssert("1 Child SA(s) moved" in ours.log(), "ikedtx logged no IKE SA rekey")

    def test_ikedtxRekeysPfsChild(self):
        """
        ikedtx rekeys the Child SA (C{childsa ... group sntrup761x25519},
        C{lifetime 10}) with a sntrup761x25519 KE in the CREATE_CHILD_SA;
        iked answers the rekey.
        """
        ours, iked, mine = self._established(ike="ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519",
                                             child=PFS, ours="lifetime 10")
        after = self._settled(ours, iked, mine, ikeRenewed=False)
        self.assertRegex(after["children"][0]["proposal"], _SNTRUP_NAME)
        self.labAssert("reached its soft lifetime; rekeying it" in ours.log(), "ikedtx did not start the rekey")
        self.labAssert("ikev2_resp_create_child_sa: rekey ESP" in iked.log(), "iked logged no Child SA rekey")

    def test_ikedRekeysPfsChild(self):
        """
        iked (coupled, C{lifetime 10}) rekeys the sntrup761x25519 PFS Child
        SA when the shim's soft expire arrives; ikedtx answers with its
        sntrup761x25519 KE and both end with the new Child SA.
        """
        ours, iked, mine = self._established(ike="ikesa enc aes-128-gcm prf hmac-sha2-256 group curve25519",
                                             child=PFS, theirs="lifetime 10", coupled=True)
        after = self._settled(ours, iked, mine, ikeRenewed=False)
        self.assertRegex(after["children"][0]["proposal"], _SNTRUP_NAME)
        self.labAssert("EXPIRE (soft)" in open(iked.shimLogPath).read(), "the shim sent no expire")
        self.labAssert("rekeyed by the peer" in ours.log(), "ikedtx logged no Child SA rekey by iked")

"""
Rekeying against strongSwan's charon 5.9.8 (kernel-libipsec) and openiked
7.2, each daemon in a network namespace: Child SA and IKE SA rekeys started by charon (its
C{rekey_time}) and by ikedtx (C{lifetime}, C{ikelifetime}), RFC 7296 1.3.2,
1.3.3. Each test waits until both sides hold one IKE SA and one Child SA
with new SPIs, the same on both sides (charon over vici, ikedtx over its
control socket), and the tunnel never went away.
"""

from twisted.trial.unittest import TestCase

from ikedtx.testing.lab import Child
from ikedtx.testing.lab._util import poll

from tests.interop import A, A_INNER, B_INNER, Credentials, ikedtxPolicy
from tests.test_interop_charon import CHARON_ESP, IKEDTX_CHILD, CharonMixin
from tests.test_interop_openiked import CHILDSA, IKESA, OpenIkedMixin
from tests.test_interop_userspace import USERSPACE, UserspaceMixin, ping

PFS_CHARON = "aes128gcm16-ecp256"
PFS_OURS = "childsa enc aes-128-gcm group ecp256"



# What ikectl show sa reports of a Child SA that moves with time, not with a rekey.
_CLOCKED = ("age", "lifetimeRemaining")


def _counters(ours):
    """
    C{show stats} of the daemon C{ours}: C{{name: value}}.
    """
    from ikedtx.control import sync

    return {c["name"]: c["value"] for c in sync.showStats(ours.socketPath)["counters"]}


def _lasting(children):
    """
    C{children} of a show sa answer without the fields that change as
    time passes: what must be the same after an IKE SA rekey moved them.
    """
    return [{key: value for key, value in child.items() if key not in _CLOCKED} for child in children]

class CharonRekeyMixin(CharonMixin):
    def _startOurs(self, config):
        return self.startIkedtx(config)

    def _established(self, lifetimes="", ikeRekey=None, childRekey=None, pfs=False, charonInitiates=False,
                     reauth_time=None):
        self.hosts()
        credentials = Credentials("psk")
        child = Child("net", local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"],
                      esp_proposals=[PFS_CHARON if pfs else CHARON_ESP], rekey_time=childRekey,
                      life_time="120s" if childRekey else None, rand_time="1s" if childRekey else None)
        # A short rekey_time comes with a hard lifetime 10% later: give the
        # rekeys time on a loaded machine.
        charon = self.startCharon(credentials, children=[child], rekey_time=ikeRekey,
                                  over_time="60s" if ikeRekey or reauth_time else None,
                                  rand_time="1s" if ikeRekey or reauth_time else None, reauth_time=reauth_time)
        ours = self._startOurs(ikedtxPolicy(credentials, child=PFS_OURS if pfs else IKEDTX_CHILD, lifetimes=lifetimes))
        ours.start()
        if charonInitiates:
            ok, output = charon.initiate(child="net")
            self.labAssert(ok, "charon's initiate failed:\n" + output)
        else:
            ours.initiate("peer")
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertEqual(mine["initiator"], 0 if charonInitiates else 1)
        # The datapath may still be installing the Child SA (asynchronously:
        # under privilege separation the parent installs it).
        spis = (mine["spiI"], mine["spiR"])

        def installed():
            for sa in ours.showSa():
                if (sa["spiI"], sa["spiR"]) == spis and sa["children"] and all(
                        child.get("state") == "INSTALLED" for child in sa["children"]):
                    return sa
            return None

        mine = poll(installed, 10, interval=0.1, what=lambda: "ikedtx's Child SA installed\n%r" % (ours.showSa(),))
        return ours, charon, mine

    def _settled(self, ours, charon, before, ikeRenewed, timeout=60.0):
        """
        Wait until both sides hold one IKE SA with one Child SA, the same on
        both sides, with Child SPIs (and IKE SPIs if C{ikeRenewed}) other
        than C{before}'s; return ikedtx's view.
        """
        oldChild = {(c["spiIn"], c["spiOut"]) for c in before["children"]}
        oldIke = (before["spiI"], before["spiR"])

        def renewed():
            sas = ours.showSa()
            theirs = charon.ikeSas()
            if len(sas) != 1 or len(theirs) != 1 or len(sas[0]["children"]) != 1:
                return None
            mine = sas[0]
            if (mine["spiI"], mine["spiR"]) != (theirs[0]["initiator-spi"], theirs[0]["responder-spi"]):
                return None
            if ikeRenewed and (mine["spiI"], mine["spiR"]) == oldIke:
                return None
            child = mine["children"][0]
            if not ikeRenewed and (child["spiIn"], child["spiOut"]) in oldChild:
                return None
            installed = [c for c in theirs[0]["child-sas"] if c.get("state") == "INSTALLED"]
            if [(c["spi-out"], c["spi-in"]) for c in installed] != [(child["spiIn"], child["spiOut"])]:
                return None
            return mine

        return poll(renewed, timeout, interval=0.2, what=lambda: "a renewed SA\nikedtx: %r\ncharon: %r\n%s\n%s" % (
            ours.showSa(), charon.listSas(), ours.report(), charon.report()))


class CharonRekeyTests(CharonRekeyMixin, TestCase):
    def test_charonRekeysChild(self):
        """
        charon rekeys the Child SA at its rekey_time (twice); ikedtx answers,
        installs the new pair, and removes the old one on charon's Delete.
        """
        ours, charon, mine = self._established(childRekey="5s")
        first = self._settled(ours, charon, mine, ikeRenewed=False)
        self._settled(ours, charon, first, ikeRenewed=False)
        self.assertEqual((first["spiI"], first["spiR"]), (mine["spiI"], mine["spiR"]))
        self.labAssert("rekeyed by the peer" in ours.log(), "ikedtx logged no Child SA rekey by charon")

    def test_charonRekeysChildWithPfs(self):
        ours, charon, mine = self._established(childRekey="5s", pfs=True)
        self._settled(ours, charon, mine, ikeRenewed=False)
        requests = [line for line in charon.log().splitlines() if "generating CREATE_CHILD_SA request" in line]
        self.labAssert(requests and all("N(REKEY_SA)" in line and " KE " in line for line in requests),
                       "charon's rekeys carried no KE: %r" % (requests,))

    def test_charonRekeysIkeSA(self):
        """
        charon rekeys the IKE SA at its rekey_time: ikedtx makes the new IKE
        SA, moves the Child SA and deletes the old IKE SA on charon's Delete
        (it used to answer NO_ADDITIONAL_SAS, and charon then tore the
        tunnel down).
        """
        ours, charon, mine = self._established(ikeRekey="5s")
        after = self._settled(ours, charon, mine, ikeRenewed=True)
        self.assertEqual(_lasting(after["children"]), _lasting(mine["children"]))
        self.labAssert("NO_ADDITIONAL_SAS" not in charon.log(), "charon saw NO_ADDITIONAL_SAS")

    def test_ikedtxRekeysChild(self):
        """
        ikedtx rekeys the Child SA at its soft lifetime (C{lifetime 10}:
        8.5 to 9.5 s); charon accepts, and the old pair goes.
        """
        ours, charon, mine = self._established(lifetimes="lifetime 10")
        first = self._settled(ours, charon, mine, ikeRenewed=False)
        self.labAssert("reached its soft lifetime; rekeying it" in ours.log(), "ikedtx did not start the rekey")
        self.assertEqual((first["spiI"], first["spiR"]), (mine["spiI"], mine["spiR"]))
        counters = _counters(ours)
        self.assertGreaterEqual(counters["ikedtx_csa_rekeyed"], 1)
        self.assertEqual((counters["ikes_sa_rekeyed"], counters["ikes_sa_created"]), (0, 1))

    def test_ikedtxRekeysChildWithPfs(self):
        ours, charon, mine = self._established(lifetimes="lifetime 10", pfs=True)
        self._settled(ours, charon, mine, ikeRenewed=False)
        self.labAssert("reached its soft lifetime; rekeying it" in ours.log(), "ikedtx did not start the rekey")

    def test_ikedtxRekeysIkeSA(self):
        """
        ikedtx rekeys the IKE SA at C{ikelifetime 10}; charon moves its
        Child SA to the new IKE SA, the old one is deleted on both sides.
        """
        ours, charon, mine = self._established(lifetimes="ikelifetime 10")
        after = self._settled(ours, charon, mine, ikeRenewed=True)
        self.assertEqual(_lasting(after["children"]), _lasting(mine["children"]))
        self.labAssert("rekeying the IKE SA" in ours.log(), "ikedtx did not start the IKE SA rekey")
        counters = _counters(ours)
        self.assertGreaterEqual(counters["ikes_sa_rekeyed"], 1)
        self.assertEqual(counters["ikes_sa_created"], 1 + counters["ikes_sa_rekeyed"])

    def test_charonInitiatesAndRekeysIkeSA(self):
        """
        The IKE SA's initiator (charon) rekeys it; ikedtx, its responder,
        answers and becomes the new IKE SA's responder.
        """
        ours, charon, mine = self._established(ikeRekey="5s", charonInitiates=True)
        after = self._settled(ours, charon, mine, ikeRenewed=True)
        self.assertEqual(_lasting(after["children"]), _lasting(mine["children"]))
        self.assertEqual(after["initiator"], 0)

    def test_charonInitiatesAndRekeysChild(self):
        ours, charon, mine = self._established(childRekey="5s", charonInitiates=True)
        self._settled(ours, charon, mine, ikeRenewed=False)

    def test_responderIkedtxRekeysIkeSA(self):
        """
        ikedtx, the IKE SA's responder, rekeys it (C{ikelifetime 10}) and
        becomes the new IKE SA's initiator (RFC 7296 2.18).
        """
        ours, charon, mine = self._established(lifetimes="ikelifetime 10", charonInitiates=True)
        after = self._settled(ours, charon, mine, ikeRenewed=True)
        self.assertEqual(_lasting(after["children"]), _lasting(mine["children"]))
        self.assertEqual(after["initiator"], 1)

    def test_responderIkedtxRekeysChild(self):
        ours, charon, mine = self._established(lifetimes="lifetime 10", charonInitiates=True)
        self._settled(ours, charon, mine, ikeRenewed=False)
        self.labAssert("reached its soft lifetime; rekeying it" in ours.log(), "ikedtx did not start the rekey")


class UserspaceRekeyTests(UserspaceMixin, CharonRekeyMixin, TestCase):
    """
    Rekeys while a ping runs through ikedtx's user-space datapath and
    charon's libipsec: not one reply is lost, since the new SAs are in
    place before the old ones go.
    """

    def _startOurs(self, config):
        return self.ikedtx(self.a, config, extraArgs=USERSPACE + ["--listen", A])

    def _pingThrough(self, ours, charon, mine, ikeRenewed, count=100):
        got = ping(self.a, A_INNER, B_INNER, count)
        after = self._settled(ours, charon, mine, ikeRenewed=ikeRenewed)
        self.labAssertEqual(got, count, "ping replies across the rekeys")
        return after

    def test_childAndIkeRekeysByIkedtx(self):
        """
        ikedtx rekeys the Child SA (C{lifetime 10}: soft at 8.5 to 9.5 s,
        from its timer and the datapath's soft expire) and the IKE SA
        (C{ikelifetime 14}) during 20 s of pings.
        """
        ours, charon, mine = self._established(lifetimes="ikelifetime 14 lifetime 10")
        after = self._pingThrough(ours, charon, mine, ikeRenewed=True)
        self.labAssert(_lasting(after["children"]) != _lasting(mine["children"]), "the Child SA was not rekeyed")
        self.labAssert("reached its soft lifetime; rekeying it" in ours.log(), "ikedtx did not start the rekey")

    def test_childAndIkeRekeysByCharon(self):
        ours, charon, mine = self._established(childRekey="6s", ikeRekey="11s", charonInitiates=True)
        after = self._pingThrough(ours, charon, mine, ikeRenewed=True)
        self.labAssert(_lasting(after["children"]) != _lasting(mine["children"]), "the Child SA was not rekeyed")


class OpenIkedRekeyTests(OpenIkedMixin, TestCase):
    """
    Rekeys against openiked 7.2 (with the lab's PF_KEY shim). iked rekeys
    its IKE SA on its own C{ikelifetime} timer, but a Child SA only on a
    PF_KEY soft expire of an SA it installed: with C{set decouple} it
    installs none, so for that test iked runs coupled and the shim sends
    the expire when the SA's soft addtime runs out.
    """

    def _established(self, ours="", theirs="", coupled=False):
        self.hosts()
        credentials = Credentials("psk")
        if coupled:
            from ikedtx.testing.lab.pki import KeyPair
            from tests.test_interop_openiked import ikedPolicy

            iked = self.openiked(self.b, ikedPolicy(credentials, lifetimes=theirs),
                                 localKey=KeyPair.generate("ecdsa-p256"), decouple=False)
            iked.start()
        else:
            iked = self.startOpenIked(credentials, lifetimes=theirs)
        ikedtx = self.startIkedtx(ikedtxPolicy(credentials, ike=IKESA["gcm-x25519"], child=CHILDSA, lifetimes=ours))
        ikedtx.start()
        ikedtx.initiate("peer")
        mine, _ = self.assertSameSAs(ikedtx, iked)
        return ikedtx, iked, mine

    def _settled(self, ours, iked, before, ikeRenewed, timeout=60.0):
        oldIke = (before["spiI"], before["spiR"])
        oldChild = [(c["spiIn"], c["spiOut"]) for c in before["children"]]

        def renewed():
            sas = ours.showSa()
            theirs = [sa for sa in iked.showSa() if sa["state"] == "ESTABLISHED"]
            if len(sas) != 1 or len(theirs) != 1 or len(sas[0]["children"]) != 1:
                return None
            mine = sas[0]
            if (mine["spiI"], mine["spiR"]) != (theirs[0]["ispi"].zfill(16), theirs[0]["rspi"].zfill(16)):
                return None
            if ikeRenewed and (mine["spiI"], mine["spiR"]) == oldIke:
                return None
            child = mine["children"][0]
            if not ikeRenewed and [(child["spiIn"], child["spiOut"])] == oldChild:
                return None
            theirIn = [c["spi"].zfill(8) for c in theirs[0]["childSas"] if c["direction"] == "in"]
            theirOut = [c["spi"].zfill(8) for c in theirs[0]["childSas"] if c["direction"] == "out"]
            if (theirIn, theirOut) != ([child["spiOut"]], [child["spiIn"]]):
                return None
            return mine

        return poll(renewed, timeout, interval=0.3, what=lambda: "a renewed SA\nikedtx: %r\niked:\n%s\n%s\n%s" % (
            ours.showSa(), iked.showSaText(), ours.report(), iked.report()))

    def test_ikedRekeysIkeSA(self):
        """
        iked rekeys the IKE SA at its C{ikelifetime 10}; ikedtx moves the
        Child SA to the new IKE SA and deletes the old one on iked's Delete.
        """
        ours, iked, mine = self._established(theirs="ikelifetime 10")
        after = self._settled(ours, iked, mine, ikeRenewed=True)
        self.assertEqual(_lasting(after["children"]), _lasting(mine["children"]))
        self.labAssert("rekeyed as new IKESA" in iked.log(), "iked logged no IKE SA rekey")
        self.labAssert("1 Child SA(s) moved" in ours.log(), "ikedtx logged no IKE SA rekey")

    def test_ikedtxRekeysIkeSA(self):
        ours, iked, mine = self._established(ours="ikelifetime 10")
        after = self._settled(ours, iked, mine, ikeRenewed=True)
        self.assertEqual(_lasting(after["children"]), _lasting(mine["children"]))
        self.labAssert("rekeying the IKE SA" in ours.log(), "ikedtx did not start the IKE SA rekey")
        self.labAssert("rekeyed as new IKESA" in iked.log(), "iked logged no IKE SA rekey")

    def test_ikedRekeysChild(self):
        """
        iked (coupled, C{lifetime 10}) rekeys the Child SA on the shim's
        soft expire; ikedtx answers, and both end with the new Child SA.
        """
        ours, iked, mine = self._established(theirs="lifetime 10", coupled=True)
        self._settled(ours, iked, mine, ikeRenewed=False)
        self.labAssert("EXPIRE (soft)" in open(iked.shimLogPath).read(), "the shim sent no expire")
        self.labAssert("rekeying CHILD SA" in iked.log(), "iked logged no Child SA rekey:\n" + iked.report())
        self.labAssert("rekeyed by the peer" in ours.log(), "ikedtx logged no Child SA rekey by iked")

    def test_ikedtxRekeysChild(self):
        ours, iked, mine = self._established(ours="lifetime 10")
        self._settled(ours, iked, mine, ikeRenewed=False)
        self.labAssert("reached its soft lifetime; rekeying it" in ours.log(), "ikedtx did not start the rekey")
        self.labAssert("ikev2_resp_create_child_sa: rekey ESP" in iked.log(), "iked logged no Child SA rekey")

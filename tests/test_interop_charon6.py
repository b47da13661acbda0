"""
RFC 9370 additional key exchanges (ML-KEM, FIPS 203) in IKE_INTERMEDIATE
exchanges (RFC 9242) against strongSwan 6's charon, the independent
implementation: Debian 13's tree (ikedtx/testing/trixie/setup.sh, charon
6.1 whose openssl plugin does ML-KEM), charon chrooted into it in a network
namespace with kernel-libipsec, ikedtx with its user-space datapath.

Each test checks that both sides derived the same keys, not only that they
say so: the IKE SA authenticates (AUTH covers the IntAuth chain, RFC 9242
3.3), later exchanges on the IKE SA are accepted (SK_* after every ADDKE),
both list the same IKE and Child SPIs (ikedtx's show sa, charon's
list-sas), and pings pass through ESP both ways (KEYMAT from SK_d and, for
PFS, every shared secret: RFC 9370 2.2.3). Rekeys of the IKE SA
(CREATE_CHILD_SA then IKE_FOLLOWUP_KE, RFC 9370 2.2.2) and of a PFS Child SA
are started by each side, after which the renewed SAs carry traffic again.
"""

import json
import re

from twisted.trial.unittest import TestCase

from ikedtx.testing.lab import Child, poll
from ikedtx.testing.lab._util import readText
from ikedtx.testing.lab.chroot import trixieRoot

from tests.interop import A, A_INNER, B_INNER, Credentials, ikedtxPolicy
from tests.test_interop_rekey import CharonRekeyMixin, _lasting
from tests.test_interop_userspace import USERSPACE, UserspaceMixin

#: name -> (charon's IKE proposal, ikedtx's ikesa)
IKE = {
    "mlkem768": ("aes256gcm16-prfsha256-x25519-ke1_mlkem768",
                 "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 addke1 mlkem768"),
    "mlkem1024": ("aes256gcm16-prfsha384-ecp384-ke1_mlkem1024",
                  "ikesa enc aes-256-gcm prf hmac-sha2-384 group ecp384 addke1 mlkem1024"),
    "two": ("aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke2_mlkem1024",
            "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 addke1 mlkem768 addke2 mlkem1024"),
    # The additional exchange optional (NONE acceptable, RFC 9370 2.2.1),
    # ikedtx's side absent or optional, and alternatives for ADDKE1.
    "optional": ("aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none",
                 "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 addke1 mlkem768 addke1 none"),
    "classic": ("aes256gcm16-prfsha256-x25519",
                "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519"),
    "choice": ("aes256gcm16-prfsha256-x25519-ke1_mlkem1024-ke1_mlkem768",
               "ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 addke1 mlkem768 addke1 mlkem1024"),
}
#: name -> (charon's ESP proposal, ikedtx's childsa)
ESP = {
    "plain": ("aes256gcm16", "childsa enc aes-256-gcm"),
    "pfs": ("aes256gcm16-x25519-ke1_mlkem768", "childsa enc aes-256-gcm group curve25519 addke1 mlkem768"),
}

# charon's summary of a selected proposal, e.g.
# IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519/KE1_ML_KEM_768
_SELECTED = re.compile(r"selected proposal: (IKE|ESP):(\S+)")


class Charon6Mixin(UserspaceMixin, CharonRekeyMixin):
    """
    The charon of the tests is strongSwan 6 from Debian 13's tree.
    """

    def charon(self, namespace, name=None, **kwargs):
        kwargs.setdefault("root", trixieRoot())
        return super().charon(namespace, name=name, **kwargs)

    def _startOurs(self, config):
        return self.ikedtx(self.a, config, extraArgs=USERSPACE + ["--listen", A])

    def tunnel(self, ike="mlkem768", esp="plain", initiator="ikedtx", lifetimes="", ikeRekey=None, childRekey=None,
               theirs=None):
        """
        Both daemons up with C{IKE[ike]} and C{ESP[esp]}, the IKE SA
        initiated by C{initiator}; return (ikedtx, charon, ikedtx's SA).

        @param theirs: charon's IKE proposal from C{IKE[theirs]} instead.
        """
        self.hosts()
        credentials = Credentials("psk")
        charonIke, ourIke = IKE[ike]
        if theirs is not None:
            charonIke = IKE[theirs][0]
        charonEsp, ourEsp = ESP[esp]
        child = Child("net", local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"], esp_proposals=[charonEsp],
                      rekey_time=childRekey, life_time="120s" if childRekey else None,
                      rand_time="1s" if childRekey else None)
        charon = self.startCharon(credentials, ike=charonIke, children=[child], rekey_time=ikeRekey,
                                  over_time="60s" if ikeRekey else None, rand_time="1s" if ikeRekey else None)
        ours = self._startOurs(ikedtxPolicy(credentials, ike=ourIke, child=ourEsp, lifetimes=lifetimes))
        ours.start()
        if initiator == "ikedtx":
            ours.initiate("peer")
        else:
            ok, output = charon.initiate(child="net")
            self.labAssert(ok, "charon's initiate failed:\n" + output)
        mine, theirs = self.assertSameSAs(ours, charon)
        self.assertEqual(mine["initiator"], 1 if initiator == "ikedtx" else 0)
        return ours, charon, mine

    def charonProposals(self, charon, kind="IKE"):
        """
        The proposals charon logged as selected, of C{kind} IKE or ESP.
        """
        return [p for k, p in _SELECTED.findall(charon.log()) if k == kind]

    def assertSameIkeKeys(self, ours, charon, stages=None):
        """
        The SK_e keys ikedtx derived last for its IKE SA (its key log) are
        keys charon logged (C{ike = 4}): both computed the same SKEYSEED
        from the same shared secrets in the same order. With C{stages},
        ikedtx logged that many distinct key sets for the SA (IKE_SA_INIT
        and one per additional exchange, RFC 9370 2.2.2).
        """
        sa = self.ourOnlySa(ours)

        def logged():
            entries = [json.loads(line) for line in readText(ours.keyLogPath).splitlines() if line.startswith("{")]
            mine = [e for e in entries if (e["spiI"], e["spiR"]) == (sa["spiI"], sa["spiR"])]
            return mine if stages is None or len(mine) >= stages else None

        mine = poll(logged, 5.0, what="ikedtx's key log for %s/%s" % (sa["spiI"], sa["spiR"]))
        if stages is not None:
            self.labAssertEqual(len({e["sk_ei"] for e in mine}), stages, "ikedtx's key sets: %r" % (mine,))
        final = (bytes.fromhex(mine[-1]["sk_ei"]), bytes.fromhex(mine[-1]["sk_er"]))
        theirs = [(k.get("sk_ei"), k.get("sk_er")) for k in charon.ikeKeys().values()]
        self.labAssert(final in theirs, "ikedtx's final SK_ei/SK_er %r are not among charon's %r" % (final, theirs))

    def assertTraffic(self, count=3):
        """
        Pings pass both ways through the Child SA.
        """
        self.assertPings([(self.a, A_INNER, B_INNER), (self.b, B_INNER, A_INNER)], count)


class MlKemTests(Charon6Mixin, TestCase):
    def test_ikedtxInitiatesMlKem768(self):
        """
        ikedtx initiates with X25519 and ML-KEM-768 as ADDKE1: charon
        selects it, the IKE_INTERMEDIATE exchange carries the ML-KEM KE
        payloads, both authenticate, and ESP flows.
        """
        ours, charon, mine = self.tunnel("mlkem768")
        self.assertIn("KE1_ML_KEM_768", self.charonProposals(charon)[0])
        self.labAssert("parsed IKE_INTERMEDIATE request 1 [ KE ]" in charon.log(),
                       "charon saw no IKE_INTERMEDIATE with a KE payload")
        self.assertSameIkeKeys(ours, charon, stages=2)
        self.assertTraffic()

    def test_charonInitiatesMlKem768(self):
        """
        charon initiates with ML-KEM-768 as ADDKE1 and ikedtx responds.
        """
        ours, charon, mine = self.tunnel("mlkem768", initiator="charon")
        self.assertIn("KE1_ML_KEM_768", self.charonProposals(charon)[0])
        self.assertSameIkeKeys(ours, charon, stages=2)
        self.assertTraffic()

    def test_ikedtxInitiatesMlKem1024(self):
        """
        ML-KEM-1024 (its 1568-byte encapsulation key, fragmented in the
        IKE_INTERMEDIATE request) after ECP-384, PRF-HMAC-SHA2-384.
        """
        ours, charon, mine = self.tunnel("mlkem1024")
        self.assertIn("KE1_ML_KEM_1024", self.charonProposals(charon)[0])
        self.assertSameIkeKeys(ours, charon, stages=2)
        self.assertTraffic()

    def test_charonInitiatesMlKem1024(self):
        ours, charon, mine = self.tunnel("mlkem1024", initiator="charon")
        self.assertIn("KE1_ML_KEM_1024", self.charonProposals(charon)[0])
        self.assertSameIkeKeys(ours, charon, stages=2)
        self.assertTraffic()

    def test_twoAdditionalExchanges(self):
        """
        ML-KEM-768 as ADDKE1 and ML-KEM-1024 as ADDKE2: two
        IKE_INTERMEDIATE exchanges, the keys updated after each (RFC 9370
        2.2.2), ikedtx initiating.
        """
        ours, charon, mine = self.tunnel("two")
        self.assertIn("KE1_ML_KEM_768/KE2_ML_KEM_1024", self.charonProposals(charon)[0])
        self.assertEqual(len(re.findall(r"parsed IKE_INTERMEDIATE request \d+ \[ KE \]", charon.log())), 2,
                         charon.report())
        self.assertSameIkeKeys(ours, charon, stages=3)
        self.assertTraffic()

    def test_twoAdditionalExchangesCharonInitiates(self):
        ours, charon, mine = self.tunnel("two", initiator="charon")
        self.assertIn("KE1_ML_KEM_768/KE2_ML_KEM_1024", self.charonProposals(charon)[0])
        self.assertEqual(len(re.findall(r"parsed IKE_INTERMEDIATE response \d+ \[ KE \]", charon.log())), 2,
                         charon.report())
        self.assertSameIkeKeys(ours, charon, stages=3)
        self.assertTraffic()


class OptionalTests(Charon6Mixin, TestCase):
    """
    Proposals that make the additional exchange optional (RFC 9370 2.2.1:
    NONE among the ADDKE1 transforms) or offer alternatives for it.
    """

    def test_charonOptionalIkedtxClassic(self):
        """
        charon offers ML-KEM-768 or NONE as ADDKE1, ikedtx has no ADDKE:
        ikedtx selects NONE, and no IKE_INTERMEDIATE exchange follows.
        """
        ours, charon, mine = self.tunnel("classic", theirs="optional", initiator="charon")
        self.assertNotIn("KE1_", self.charonProposals(charon)[0])
        self.assertNotIn("IKE_INTERMEDIATE", charon.log())
        self.assertSameIkeKeys(ours, charon, stages=1)
        self.assertTraffic()

    def test_ikedtxOptionalCharonClassic(self):
        """
        ikedtx offers ML-KEM-768 or NONE, charon none at all: charon takes
        the proposal without ADDKE1 (it ignores NONE transforms' absence)
        and the IKE SA is classic.
        """
        ours, charon, mine = self.tunnel("optional", theirs="classic")
        self.assertNotIn("KE1_", self.charonProposals(charon)[0])
        self.assertNotIn("IKE_INTERMEDIATE", charon.log())
        self.assertSameIkeKeys(ours, charon, stages=1)
        self.assertTraffic()

    def test_bothOptional(self):
        """
        Both make ML-KEM-768 optional: the responder (ikedtx) picks the
        initiator's first choice, ML-KEM-768.
        """
        ours, charon, mine = self.tunnel("optional", initiator="charon")
        self.assertIn("KE1_ML_KEM_768", self.charonProposals(charon)[0])
        self.assertSameIkeKeys(ours, charon, stages=2)

    def test_alternatives(self):
        """
        charon offers ML-KEM-1024 then ML-KEM-768 for ADDKE1; ikedtx accepts
        either and, as responder, takes the first it supports.
        """
        ours, charon, mine = self.tunnel("choice", initiator="charon")
        self.assertIn("KE1_ML_KEM_1024", self.charonProposals(charon)[0])
        self.assertSameIkeKeys(ours, charon, stages=2)
        self.assertTraffic()

    def test_requiredButNotOffered(self):
        """
        ikedtx requires ML-KEM-768 and charon offers no ADDKE: ikedtx, as
        responder, answers NO_PROPOSAL_CHOSEN and holds no IKE SA.
        """
        self.hosts()
        credentials = Credentials("psk")
        charon = self.startCharon(credentials, ike=IKE["classic"][0])
        ours = self._startOurs(ikedtxPolicy(credentials, ike=IKE["mlkem768"][1], child=ESP["plain"][1]))
        ours.start()
        ok, output = charon.initiate(child="net")
        self.assertFalse(ok)
        self.labAssert("N(NO_PROP)" in charon.log(), "charon got no NO_PROPOSAL_CHOSEN:\n" + charon.report())
        self.assertEqual(ours.showSa(), [])


class PfsTests(Charon6Mixin, TestCase):
    def test_ikedtxCreatesPfsChildSA(self):
        """
        A second Child SA through CREATE_CHILD_SA with X25519 and ML-KEM-768
        (RFC 9370 2.2.3: the ML-KEM exchange follows in IKE_FOLLOWUP_KE),
        ikedtx initiating; charon installs it with the same SPIs.
        """
        ours, charon, mine = self.tunnel("mlkem768", esp="pfs")
        spiIn, spiOut = ours.createChildSA(mine["spiI"])
        sa = self.charonOnlySa(charon)
        self.labAssertEqual(sorted((c["spi-in"], c["spi-out"]) for c in sa["child-sas"]
                                   if c.get("state") == "INSTALLED" and c["spi-out"] == spiIn),
                            [(spiOut, spiIn)], "charon's Child SAs: %r" % (sa["child-sas"],))
        self.assertIn("KE1_ML_KEM_768", self.charonProposals(charon, "ESP")[-1])
        self.labAssert("IKE_FOLLOWUP_KE" in charon.log(), "no IKE_FOLLOWUP_KE in charon's log")

    def test_charonCreatesPfsChildSA(self):
        """
        charon creates a second Child SA (X25519 and ML-KEM-768) on the IKE
        SA; ikedtx answers the CREATE_CHILD_SA and the IKE_FOLLOWUP_KE and
        installs it; pings between the second pair of inner addresses pass
        through it.
        """
        self.hosts()
        self.a.addLoopbackAddress("10.1.0.2/32")
        self.b.addLoopbackAddress("10.2.0.2/32")
        credentials = Credentials("psk")
        children = [Child("net", local_ts=[B_INNER + "/32"], remote_ts=[A_INNER + "/32"],
                          esp_proposals=[ESP["pfs"][0]]),
                    Child("net2", local_ts=["10.2.0.2/32"], remote_ts=["10.1.0.2/32"], esp_proposals=[ESP["pfs"][0]])]
        charon = self.startCharon(credentials, ike=IKE["mlkem768"][0], children=children)
        policy = ikedtxPolicy(credentials, ike=IKE["mlkem768"][1], child=ESP["pfs"][1])
        second = policy.replace('"peer"', '"peer2"').replace(A_INNER, "10.1.0.2").replace(B_INNER, "10.2.0.2")
        ours = self._startOurs(policy + second)
        ours.start()
        ok, output = charon.initiate(child="net")
        self.labAssert(ok, "charon's initiate failed:\n" + output)
        ok, output = charon.initiate(child="net2")
        self.labAssert(ok, "charon's second Child SA failed:\n" + output)
        self.labAssert("IKE_FOLLOWUP_KE" in output, "charon's second Child SA took no IKE_FOLLOWUP_KE:\n" + output)
        sas = ours.showSa()
        self.labAssertEqual(len(sas), 1, repr(sas))
        self.labAssertEqual(len(sas[0]["children"]), 2, repr(sas))
        self.assertIn("KE1_ML_KEM_768", self.charonProposals(charon, "ESP")[-1])
        self.assertPings([(self.a, "10.1.0.2", "10.2.0.2"), (self.b, "10.2.0.2", "10.1.0.2")])


class RekeyTests(Charon6Mixin, TestCase):
    def test_charonRekeysPfsChild(self):
        """
        charon rekeys the Child SA (C{rekey_time 5s}) with X25519 and
        ML-KEM-768; ikedtx answers the CREATE_CHILD_SA and the
        IKE_FOLLOWUP_KE; the new pair carries pings.
        """
        ours, charon, mine = self.tunnel("mlkem768", esp="pfs", childRekey="5s")
        self._settled(ours, charon, mine, ikeRenewed=False)
        self.labAssert("IKE_FOLLOWUP_KE" in charon.log(), "no IKE_FOLLOWUP_KE in charon's log")
        self.assertIn("KE1_ML_KEM_768", self.charonProposals(charon, "ESP")[-1])
        self.assertTraffic()

    def test_ikedtxRekeysPfsChild(self):
        ours, charon, mine = self.tunnel("mlkem768", esp="pfs", lifetimes="lifetime 10")
        self._settled(ours, charon, mine, ikeRenewed=False)
        self.labAssert("reached its soft lifetime; rekeying it" in ours.log(), "ikedtx did not start the rekey")
        self.assertIn("KE1_ML_KEM_768", self.charonProposals(charon, "ESP")[-1])
        self.assertTraffic()

    def test_charonRekeysIkeSA(self):
        """
        charon rekeys the ML-KEM IKE SA (C{rekey_time 5s}): ikedtx answers
        the CREATE_CHILD_SA and the IKE_FOLLOWUP_KE, and the new IKE SA's
        keys (SKEYSEED from SK_d and both shared secrets, RFC 9370 2.2.2)
        agree: the Child SA moved onto it is then rekeyed on it.
        """
        ours, charon, mine = self.tunnel("mlkem768", ikeRekey="5s", childRekey="12s")
        after = self._settled(ours, charon, mine, ikeRenewed=True)
        self.assertEqual(_lasting(after["children"]), _lasting(mine["children"]))
        self.assertIn("KE1_ML_KEM_768", self.charonProposals(charon)[-1])
        self.assertSameIkeKeys(ours, charon, stages=1)
        self._settled(ours, charon, after, ikeRenewed=False)
        self.assertTraffic()

    def test_ikedtxRekeysIkeSA(self):
        """
        ikedtx rekeys the ML-KEM IKE SA (C{ikelifetime 10}), then the Child
        SA on the new IKE SA (C{lifetime 16}): charon accepts both.
        """
        ours, charon, mine = self.tunnel("mlkem768", lifetimes="ikelifetime 10 lifetime 16")
        after = self._settled(ours, charon, mine, ikeRenewed=True)
        self.labAssert("rekeying the IKE SA" in ours.log(), "ikedtx did not start the IKE SA rekey")
        self.assertSameIkeKeys(ours, charon, stages=1)
        self._settled(ours, charon, after, ikeRenewed=False)
        self.assertTraffic()

    def test_charonInitiatesAndRekeysIkeSA(self):
        ours, charon, mine = self.tunnel("two", initiator="charon", ikeRekey="5s")
        after = self._settled(ours, charon, mine, ikeRenewed=True)
        self.assertEqual(after["initiator"], 0)
        self.assertIn("KE1_ML_KEM_768/KE2_ML_KEM_1024", self.charonProposals(charon)[-1])
        self.assertSameIkeKeys(ours, charon, stages=1)
        self.assertTraffic()

# -*- test-case-name: tests.test_config_printer -*-
"""
Tests for L{ikedtx.config.printer} and L{ikedtx.config.transforms}: the
text C{iked -n -v} prints, made from the model.
"""

import dataclasses

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.config import parseConfig, renderConfig
from ikedtx.config import transforms as xf
from ikedtx.config.model import TransformSpec
from ikedtx.config.printer import renderPolicy
from tests.test_config_parser import _localhost
from ikedtx.wire.constants import DhId, EncrId, ProtocolId, TransformType as T

IKE = (
    " ikesa enc aes-128-gcm enc aes-256-gcm prf hmac-sha2-256 prf hmac-sha2-384 prf hmac-sha2-512"
    " prf hmac-sha1 group curve25519 group ecp521 group ecp384 group ecp256 group modp4096 group modp3072"
    " group modp2048 group modp1536 group modp1024"
    " ikesa enc aes-256 enc aes-192 enc aes-128 enc 3des prf hmac-sha2-256 prf hmac-sha2-384"
    " prf hmac-sha2-512 prf hmac-sha1 auth hmac-sha2-256 auth hmac-sha2-384 auth hmac-sha2-512"
    " auth hmac-sha1 group curve25519 group ecp521 group ecp384 group ecp256 group modp4096 group modp3072"
    " group modp2048 group modp1536 group modp1024"
)
ESP = (
    " childsa enc aes-128-gcm enc aes-256-gcm group none esn noesn"
    " childsa enc aes-256 enc aes-192 enc aes-128 auth hmac-sha2-256 auth hmac-sha2-384"
    " auth hmac-sha2-512 auth hmac-sha1 group none esn noesn"
)


def render(text):
    return renderConfig(parseConfig(text))


class RenderTests(SynchronousTestCase):
    def test_minimal(self):
        """
        Every default is spelled out.
        """
        self.assertEqual(
            render("ikev2 esp from 10.0.0.1 to 10.0.0.2\n"),
            'ikev2 "policy1" passive tunnel esp inet from 10.0.0.1 to 10.0.0.2 local 10.0.0.1 peer 10.0.0.2'
            + IKE
            + ESP
            + " lifetime 10800 bytes 4294967296 signature\n",
        )

    def test_everything(self):
        """
        All the words, in iked's printing order (which puts C{proto} before
        C{inet}, unlike the grammar).
        """
        text = render(
            'ikev2 "x" quick active ipcomp transport natt esp inet proto { tcp, 47 } rdomain 2 '
            "from 10.0.0.1 port 22 to 10.0.0.0/24 peer 10.0.0.7 local 10.0.0.1 "
            "ikesa enc aes-256-gcm-12 group grp30 childsa enc aes-256 auth hmac-sha2-512 group ecp256 noesn "
            "srcid me@example.com dstid 10.0.0.7 ikelifetime 1h lifetime 5m bytes 1G psk 0x0102 "
            'config address 10.0.1.0/24 request name-server any iface lo tag "t-$name" tap enc3\n'
        )
        self.assertEqual(
            text,
            'ikev2 "x" quick active ipcomp natt transport esp proto { tcp, gre } inet rdomain 2'
            " from 10.0.0.1 port 22 to 10.0.0.0/24 from 10.0.0.1 port 22 to 10.0.0.0/24"
            " local 10.0.0.1 peer 10.0.0.7"
            " ikesa enc aes-256-gcm-12 prf hmac-sha2-256 prf hmac-sha2-384 prf hmac-sha2-512 prf hmac-sha1 group brainpool512"
            " childsa enc aes-256 auth hmac-sha2-512 group ecp256 noesn"
            " srcid me@example.com dstid 10.0.0.7 ikelifetime 3600 lifetime 300 bytes 1073741824 psk 0x0102"
            ' config address 10.0.1.0 request name-server any iface lo tag "t-$name" tap "enc3"\n',
        )

    def test_default(self):
        """
        A default policy prints no local/peer.
        """
        self.assertEqual(
            render("ikev2 default esp from any to any\n"),
            'ikev2 "policy1" default passive tunnel esp from 0.0.0.0/0 to 0.0.0.0/0 from ::/0 to ::/0'
            + IKE
            + ESP
            + " lifetime 10800 bytes 4294967296 signature\n",
        )

    def test_dynamicAndSrcNat(self):
        """
        C{dynamic} prints as the unspecified address; a source NAT network
        prints in parentheses (iked leaves it out).
        """
        text = render("ikev2 esp from dynamic to 10.2.0.0/16 from 10.1.1.1 (192.168.1.0/24) to 10.3.0.0/16 peer 1.2.3.4\n")
        self.assertIn(" from 0.0.0.0 to 10.2.0.0/16 from 10.1.1.1 (192.168.1.0/24) to 10.3.0.0/16 local any peer 1.2.3.4", text)

    def test_hostBitsAndNames(self):
        """
        An address prints as written (host bits kept), with its prefix only
        if one was written; a host name prints as its address.
        """
        text = render("ikev2 esp from 10.1.1.5/24 to 10.0.0.2 peer localhost local 10.0.0.9/16\n")
        self.assertIn(" from 10.1.1.5/24 to 10.0.0.2 local 10.0.0.9/16 peer %s " % (_localhost(),), text)

    def test_authMethods(self):
        for word, printed in [("rsa", " rsa"), ('eap "mschap-v2"', ' eap "MSCHAP_V2"'), ('psk "ab"', " psk 0x6162"), ("ecdsa", " ecdsa256")]:
            self.assertTrue(render("ikev2 esp from 10.0.0.1 to 10.0.0.2 %s\n" % (word,)).endswith(printed + "\n"), word)

    def test_usersInOrder(self):
        """
        Users print with their passwords, interleaved with the policies in
        file order.
        """
        text = render('user "a" "pw1"\nikev2 esp from 10.0.0.1 to 10.0.0.2\nuser b pw2\n')
        lines = text.splitlines()
        self.assertEqual((lines[0], lines[2]), ('user "a" "pw1"', 'user "b" "pw2"'))
        self.assertTrue(lines[1].startswith("ikev2"))

    def test_ah(self):
        self.assertIn(
            " childsa auth hmac-sha2-256 auth hmac-sha2-384 auth hmac-sha2-512 auth hmac-sha1 group none esn noesn ",
            render("ikev2 ah from 10.0.0.1 to 10.0.0.2\n"),
        )

    def test_fromModel(self):
        """
        The printer renders the model, not the text that was read.
        """
        policy = parseConfig("ikev2 esp from 10.0.0.1 to 10.0.0.2\n").policies[0]
        changed = dataclasses.replace(policy, name="changed", lifetime=60, ikeProposals=policy.ikeProposals[:1], childProposals=())
        self.assertEqual(
            renderPolicy(changed),
            'ikev2 "changed" passive tunnel esp inet from 10.0.0.1 to 10.0.0.2 local 10.0.0.1 peer 10.0.0.2'
            + IKE[: IKE.index(" ikesa enc aes-256 ")]
            + " lifetime 60 bytes 4294967296 signature",
        )


class TransformTableTests(SynchronousTestCase):
    def test_lookupPrefix(self):
        """
        Names are found by prefix, first row first, as iked's parse_xf().
        """
        self.assertEqual(xf.lookup("aes", xf.IKE_ENCRYPTION).name, "aes-128")
        self.assertEqual(xf.lookup("", xf.IKE_ENCRYPTION).name, "3des")
        self.assertEqual(xf.lookup("grp1", xf.GROUPS).name, "grp1")
        self.assertIsNone(xf.lookup("aes-128-gcm-12", xf.ESP_ENCRYPTION))

    def test_nameOf(self):
        """
        A transform prints under the first name with its id and key length.
        """
        self.assertEqual(xf.nameOf(TransformSpec(T.DH, DhId.BRAINPOOL_512), ProtocolId.IKE), "brainpool512")
        self.assertEqual(xf.nameOf(TransformSpec(T.ENCR, EncrId.TRIPLE_DES), ProtocolId.IKE), "3des")
        self.assertEqual(xf.nameOf(TransformSpec(T.ENCR, EncrId.AES_GCM_16, 192), ProtocolId.ESP), "aes-192-gcm")
        self.assertEqual(xf.nameOf(TransformSpec(T.ENCR, EncrId.CAMELLIA_CBC, 128), ProtocolId.ESP), "unknown")

    def test_linuxProfile(self):
        """
        The profile reproducing Debian's iked drops HMAC-SHA2-256 and ESN
        from the default ESP proposal, and the AES-GCM one.
        """
        proposals = xf.childProposals([], ProtocolId.ESP, xf.IKED_LINUX)
        self.assertEqual(len(proposals), 1)
        self.assertNotIn(TransformSpec(T.INTEG, 12), proposals[0].transforms)
        self.assertEqual(proposals[0].ofType(T.ESN), (TransformSpec(T.ESN, 0),))

# -*- test-case-name: tests.test_config_fuzz -*-
"""
Property tests: whatever the text, the parser answers with a L{Config} or a
L{ConfigError}, never another exception, and what it accepts renders.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from ikedtx.config import ConfigError, parseConfig, renderConfig
from ikedtx.config.lexer import KEYWORDS

_WORDS = sorted(KEYWORDS) + [
    "10.0.0.1", "10.0.0.0/8", "2001:db8::1", "::/0", "any", "tcp", "22", "-1", "0x12", "0xzz", "5m", "2g",
    "aes", "aes-256-gcm", "hmac-sha2-256", "ecp256", "none", "rsa", "mschap-v2", "address", "lo", "enc1",
    "$m", "$undefined", "{", "}", ",", "(", ")", "/", "=", "#", "\\\n", '"', "'", '"quoted text"', "\n",
    "\n", "\n", "ikev2 esp from 10.0.0.1 to 10.0.0.2", "99999999999999999999", "\x00", "é",
]  # fmt: skip

texts = st.lists(st.sampled_from(_WORDS), max_size=40).map(lambda words: 'm = "10.0.0.9"\n' + " ".join(words))


class ParserPropertyTests(SynchronousTestCase):
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(texts)
    def test_configOrError(self, text):
        try:
            config = parseConfig(text, filename="f")
        except ConfigError as e:
            self.assertTrue(e.errors)
            for problem in e.errors:
                self.assertEqual(problem.filename, "f")
        else:
            renderConfig(config)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def test_bytes(self, data):
        try:
            renderConfig(parseConfig(data, filename="f"))
        except ConfigError:
            pass

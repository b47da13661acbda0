"""
Tests for L{ikedtx.lean}: the daemon's start-up leaves out what it does not
use (C{http.cookiejar}'s dependencies, TLS, asyncio's C{ssl}, and ikedtx's
optional parts), and each of them still works when it is used.

The start-up is only lean in a process where Twisted was not imported yet,
so these tests run their checks in a fresh Python process that imports
L{ikedtx.cli} first, as the C{iked} command does.
"""

import importlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap

from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from ikedtx import lean

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def runLean(script, timeout=300):
    """
    Run C{script} in a new Python process after C{import ikedtx.cli} (the
    daemon's start-up); its standard output parsed as JSON.
    """
    code = "import ikedtx.cli\n" + textwrap.dedent(script)
    process = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if process.returncode != 0:
        raise AssertionError("exited with %d:\n%s" % (process.returncode, process.stderr.decode(errors="replace")))
    return json.loads(process.stdout.decode().strip().splitlines()[-1])


class StartupTests(SynchronousTestCase):
    """
    What the daemon's start-up imports, and what it leaves out.
    """

    def test_leftOut(self):
        """
        After the C{iked} command's imports and the daemon's (its service,
        the control server), neither pyOpenSSL nor C{ssl} nor
        C{urllib.request} nor the optional RADIUS and sntrup761 bindings are
        loaded; C{http.cookiejar} is a lazy module; the reactor offers no TLS.
        """
        facts = runLean("""
            import json, sys
            import ikedtx.service, ikedtx.control.server, ikedtx.tap
            from twisted.internet import reactor
            from twisted.internet.interfaces import IReactorSSL
            from ikedtx import lean
            print(json.dumps({
                "loaded": sorted(m for m in ("OpenSSL", "ssl", "_ssl", "urllib.request", "http.client", "pqcrypto",
                                             "pyrad", "ikedtx.auth.radius", "twisted.internet.ssl",
                                             "twisted.trial") if m in sys.modules),
                "cookiejarLazy": type(sys.modules["http.cookiejar"]).__name__,
                "reactorSSL": IReactorSSL.providedBy(reactor),
                "prepared": lean.prepared}))
        """)
        self.assertEqual(facts["loaded"], [])
        self.assertEqual(facts["cookiejarLazy"], "_LazyModule")
        self.assertFalse(facts["reactorSSL"])
        self.assertEqual(facts["prepared"]["lazy"], ["http.cookiejar"])
        self.assertEqual(facts["prepared"]["without"]["ssl"], ["asyncio"])
        self.assertEqual(facts["prepared"]["without"]["OpenSSL"],
                         ["twisted.internet.posixbase", "twisted.protocols.amp"])

    def test_leftOutStillWork(self):
        """
        What was left out imports and works when used: C{http.cookiejar}
        (and Twisted's deprecated alias of it), C{ssl}, pyOpenSSL.
        """
        facts = runLean("""
            import json, sys, warnings
            import http.cookiejar
            jar = http.cookiejar.CookieJar()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from twisted.python.compat import cookielib
            import ssl
            context = ssl.create_default_context()
            from OpenSSL import crypto
            store = crypto.X509Store()
            print(json.dumps({"jar": len(jar), "alias": cookielib.CookieJar is http.cookiejar.CookieJar,
                              "urllib": "urllib.request" in sys.modules,
                              "ssl": context.protocol == ssl.PROTOCOL_TLS_CLIENT}))
        """)
        self.assertEqual(facts, {"jar": 0, "alias": True, "urllib": True, "ssl": True})

    def test_featuresInLeanProcess(self):
        """
        The tests of the features whose modules the start-up leaves out
        pass in a process started as the daemon starts: certificate chains
        (pyOpenSSL), sntrup761 (pqcrypto), RADIUS, OCSP and the metrics
        over real HTTP (L{HTTPTests}), the config printer.
        """
        modules = ["tests.test_auth_store", "tests.test_crypto_sntrup", "tests.test_auth_radiuswire",
                   "tests.test_auth_radius", "tests.test_pki_ocsp", "tests.test_metrics", "tests.test_config_printer",
                   "tests.test_lean.HTTPTests"]
        workdir = tempfile.mkdtemp(prefix="ikedtx-lean-")
        facts = runLean("""
            import json, os, sys
            os.chdir(%r)
            from twisted.scripts import trial
            sys.argv = ["trial"] + %r
            try:
                trial.run()
            except SystemExit as e:
                print(json.dumps({"status": e.code}))
        """ % (workdir, modules), timeout=900)
        self.assertEqual(facts["status"], 0, "see %s/_trial_temp/test.log" % (workdir,))


class HTTPTests(TestCase):
    """
    OCSP and the metrics over real HTTP on the loopback (run in a lean
    process by L{StartupTests.test_featuresInLeanProcess}).
    """

    def listen(self, resource):
        from twisted.web.server import Site

        port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return "http://127.0.0.1:%d/" % (port.getHost().port,)

    @defer.inlineCallbacks
    def test_ocspOverHttp(self):
        """
        L{OCSPClient} with its default agent POSTs the request to the
        responder and judges its answer.
        """
        from twisted.web.resource import Resource

        from ikedtx.pki import ocsp
        from tests import pki
        from tests.ocsphelpers import response

        ca = pki.Authority.root(kind="p256", keyName="ocsp-root")
        peer = ca.issue(pki.name(CN="peer"), pki.key("ocsp-peer", "p256").public_key(), dns=["peer"])
        answer = response(peer, ca.certificate, ca.key)
        requests = []

        class Responder(Resource):
            isLeaf = True

            def render_POST(self, request):
                requests.append(request.content.read())
                request.setHeader(b"Content-Type", b"application/ocsp-response")
                return answer

        url = self.listen(Responder())
        verdict = yield ocsp.OCSPClient(reactor).check(peer, ca.certificate, url)
        self.assertEqual(requests, [ocsp.buildRequest(peer, ca.certificate)])
        self.assertEqual(verdict.status, "good" if verdict.good else verdict.status)
        self.assertTrue(verdict.good, verdict.reason)

    @defer.inlineCallbacks
    def test_metricsOverHttp(self):
        """
        The metrics service answers a scrape over HTTP.
        """
        from twisted.web.client import Agent, readBody

        from ikedtx.metrics import MetricsResource
        from tests.test_metrics import ExpositionTests

        # an IKE SA with its Child SA, made as the exposition tests make it
        exchanges = ExpositionTests("test_sasByState")
        exchanges.setUp()
        service, child = exchanges.service()
        url = self.listen(MetricsResource(service))
        response = yield Agent(reactor).request(b"GET", (url + "metrics").encode())
        body = yield readBody(response)
        self.assertEqual(response.code, 200)
        self.assertIn(b'ikedtx_ike_sas{state="VALID"} 1.0', body)


class LazyModuleTests(SynchronousTestCase):
    """
    L{lean.lazyModule} and L{lean.importWithout}, on modules of a temporary
    package.
    """

    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="ikedtx-lean-")
        package = os.path.join(self.directory, "leanpkg")
        os.mkdir(package)
        files = {
            "__init__.py": "",
            "heavy.py": "import leanpkg\nleanpkg.ran = getattr(leanpkg, 'ran', 0) + 1\nVALUE = 42\n",
            "optional.py": "VALUE = 'here'\n",
            "user.py": "try:\n    from leanpkg import optional\nexcept ImportError:\n    optional = None\n",
        }
        for name, text in files.items():
            with open(os.path.join(package, name), "w") as f:
                f.write(text)
        sys.path.insert(0, self.directory)
        self.addCleanup(sys.path.remove, self.directory)
        self.addCleanup(self.forget)

    def forget(self):
        for name in [n for n in sys.modules if n == "leanpkg" or n.startswith("leanpkg.")]:
            del sys.modules[name]

    def test_lazyRunsOnFirstUse(self):
        """
        A lazy module's code runs once, when an attribute is first read;
        C{from package import module} does not run it.
        """
        self.assertTrue(lean.lazyModule("leanpkg.heavy"))
        import leanpkg
        from leanpkg import heavy

        self.assertFalse(hasattr(leanpkg, "ran"))
        self.assertEqual(heavy.VALUE, 42)
        self.assertEqual(leanpkg.ran, 1)
        self.assertIs(sys.modules["leanpkg.heavy"], heavy)

    def test_lazyNotTwice(self):
        """
        A module imported already, or one that does not exist, is left alone.
        """
        importlib.import_module("leanpkg.heavy")
        self.assertFalse(lean.lazyModule("leanpkg.heavy"))
        self.assertFalse(lean.lazyModule("leanpkg.missing"))

    def test_importWithout(self):
        """
        The modules are imported as if the dependency were missing; the
        dependency imports afterwards.
        """
        self.assertEqual(lean.importWithout(["leanpkg.user"], "leanpkg.optional"), ["leanpkg.user"])
        import leanpkg.user

        self.assertIsNone(leanpkg.user.optional)
        from leanpkg import optional

        self.assertEqual(optional.VALUE, "here")

    def test_importWithoutAfterDependency(self):
        """
        With the dependency imported already, nothing is done.
        """
        importlib.import_module("leanpkg.optional")
        self.assertEqual(lean.importWithout(["leanpkg.user"], "leanpkg.optional"), [])
        self.assertNotIn("leanpkg.user", sys.modules)

    def test_trimHeap(self):
        self.assertTrue(lean.trimHeap())


class _Blocked:
    """
    Within C{with}: importing module C{name} (of package C{package}) raises
    ImportError, as for a module that is not there.
    """

    def __init__(self, package, child):
        self.package, self.child = package, child
        self.name = package.__name__ + "." + child

    def __enter__(self):
        self.module = sys.modules.get(self.name)
        self.attribute = self.package.__dict__.get(self.child)
        sys.modules[self.name] = None
        self.package.__dict__.pop(self.child, None)

    def __exit__(self, *exc):
        if self.module is None:
            del sys.modules[self.name]
        else:
            sys.modules[self.name] = self.module
        if self.attribute is not None:
            setattr(self.package, self.child, self.attribute)


class ShellRadiusTests(SynchronousTestCase):
    """
    The shell imports the RADIUS modules only for a configuration that has
    RADIUS (L{CoreRunner.configureRadius}).
    """

    def runner(self):
        from twisted.internet import task

        from ikedtx.kernel.decoupled import DecoupledKernel
        from ikedtx.net.shell import CoreRunner
        from tests.test_net_shell import FakeCore

        core = FakeCore()
        core.radiusBackend = "stale"
        return CoreRunner(core, DecoupledKernel(), task.Clock())

    def test_withoutRadius(self):
        import ikedtx.auth
        from ikedtx.config import parseConfig

        runner = self.runner()
        with _Blocked(ikedtx.auth, "radiuswire"):
            runner.configureRadius(parseConfig('ikev2 "p" passive esp from 10.2.0.0/24 to any psk "x"\n'))
        self.assertIsNone(runner.radius)
        self.assertIsNone(runner.core.radiusBackend)

    def test_withRadius(self):
        """
        A RADIUS server line, or an C{eap "radius"} policy alone, brings
        the RADIUS modules in.
        """
        import ikedtx.auth
        from ikedtx.config import parseConfig

        from tests.test_auth_radiuswire import POLICIES, RADIUS_LINES

        for text in (RADIUS_LINES + POLICIES, POLICIES):
            runner = self.runner()
            with _Blocked(ikedtx.auth, "radiuswire"):
                self.assertRaises(ImportError, runner.configureRadius, parseConfig(text))
        runner = self.runner()
        runner.reactor = FakeUDPReactor()
        runner.configureRadius(parseConfig(RADIUS_LINES + POLICIES))
        self.assertIsNotNone(runner.radius)
        self.assertIs(runner.core.radiusBackend, runner.radius.backend)


class FakeUDPReactor:
    def listenUDP(self, port, protocol, interface=""):
        from types import SimpleNamespace

        return SimpleNamespace(stopListening=lambda: None, getHost=lambda: SimpleNamespace(port=40000))


class WorkerImportTests(SynchronousTestCase):
    """
    What the privilege-separated worker imports before it gives up the file
    system (L{ikedtx.privsep.worker.importEverything}).
    """

    def test_workerModules(self):
        """
        Neither the parent's datapath providers (nor pyroute2 with them),
        nor TLS (OCSP's web client speaks plain HTTP),
        nor ikectl's clients, nor the certificate authority, nor - without
        C{--metrics} - the metrics modules; everything else of ikedtx, and
        what its modules import only when used (pyOpenSSL for certificate
        chains, the sntrup761 binding, pyrad, OCSP's HTTP client and what it
        needs when it sends, down to the charmap codec:
        tests.test_interop_ocsp failed with "unknown encoding: charmap"
        while the web modules were left to --metrics).
        """
        facts = runLean("""
            import json, pkgutil, sys
            import ikedtx
            from ikedtx.privsep.worker import NEVER_IN_WORKER, importEverything
            importEverything(metrics=False)
            withoutMetrics = sorted(m for m in ("pyroute2", "ikedtx.kernel.xfrm", "ikedtx.kernel.userspace",
                                                "twisted.internet.ssl", "service_identity",
                                                "ikedtx.control.client", "ikedtx.pki.ca", "ikedtx.privsep.parent",
                                                "ikedtx.metrics", "prometheus_client") if m in sys.modules)
            missing = sorted(i.name for i in pkgutil.walk_packages(ikedtx.__path__, "ikedtx.")
                             if not i.name.startswith(NEVER_IN_WORKER) and i.name != "ikedtx.metrics"
                             and i.name not in sys.modules)
            importEverything(metrics=True)
            lazy = sorted(m for m in ("OpenSSL.crypto", "pqcrypto.kem.sntrup_761", "pyrad.packet",
                                      "twisted.web.client", "twisted.web.server", "encodings.charmap")
                          if m not in sys.modules)
            print(json.dumps({"withoutMetrics": withoutMetrics, "missing": missing, "lazyMissing": lazy,
                              "metrics": "ikedtx.metrics" in sys.modules and "prometheus_client" in sys.modules}))
        """)
        self.assertEqual(facts, {"withoutMetrics": [], "missing": [], "lazyMissing": [], "metrics": True})

# -*- test-case-name: tests.test_testing -*-
"""
Test support shipped with ikedtx, like L{twisted.internet.testing}: the
lab harness (L{ikedtx.testing.lab}: network namespaces, real IKEv2 peers,
certificates, captures) and the prerequisite checks
(L{ikedtx.testing.support}), for ikedtx's own tests and for its benchmark
(C{bench/}).

The daemon never imports anything from here.
"""

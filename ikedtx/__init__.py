# -*- test-case-name: tests.test_tap -*-
"""
ikedtx: an IKEv2 daemon (RFC 7296) for Linux, a re-implementation of
OpenBSD's iked(8) on Twisted.
"""

__version__ = "0.1.0"

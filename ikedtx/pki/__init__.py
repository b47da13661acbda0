# -*- test-case-name: tests.test_headers -*-
"""ikedtx.pki"""

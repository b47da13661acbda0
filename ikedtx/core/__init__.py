# -*- test-case-name: tests.test_core_exchanges -*-
"""ikedtx.core"""

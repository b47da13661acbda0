# -*- test-case-name: tests.test_net_shell -*-
"""ikedtx.net"""

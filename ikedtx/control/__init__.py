# -*- test-case-name: tests.test_control -*-
"""ikedtx.control"""

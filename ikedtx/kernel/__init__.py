# -*- test-case-name: tests.test_kernel_decoupled -*-
"""ikedtx.kernel"""

"""ikedtx.core"""

"""ikedtx.crypto"""

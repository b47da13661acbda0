"""ikedtx.pki"""

"""ikedtx.auth"""

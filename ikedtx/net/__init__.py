"""ikedtx.net"""

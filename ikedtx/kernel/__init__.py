"""ikedtx.kernel"""

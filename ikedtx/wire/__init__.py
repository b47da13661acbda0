"""ikedtx.wire"""

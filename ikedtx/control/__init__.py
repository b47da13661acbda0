"""ikedtx.control"""

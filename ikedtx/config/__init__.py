"""ikedtx.config"""

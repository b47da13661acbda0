from twisted.application.service import ServiceMaker

Iked = ServiceMaker("ikedtx", "ikedtx.tap", "An IKEv2 daemon (OpenBSD iked on Twisted).", "iked")

# -*- test-case-name: tests.test_privsep_commands,tests.test_privsep_daemon -*-
"""
Privilege separation: a privileged parent (configuration, keys, sockets,
datapath) and an unprivileged worker that parses and answers peers; see
L{ikedtx.privsep.parent} and L{ikedtx.privsep.worker}.
"""

# -*- test-case-name: tests.test_bench -*-
"""
ikebench: the IKE SA set-up benchmark (run C{python3 bench/ikebench.py}).

  - L{bench.ikebench}: the command line.
  - L{bench.suites}: suites, addresses, credentials, configuration files.
  - L{bench.responders}: ikedtx and charon as the responder under test.
  - L{bench.generator}: the load generator (L{bench.loadgen}) over pipes.
  - L{bench.measure}: one measurement; L{bench.proc}: what it reads in
    /proc.
  - L{bench.introspect}: --gc-stats, --tracemalloc and --profile (py-spy).
  - L{bench.report}: the table and the Markdown report.
"""

import os

#: the checkout: the responders and the generator run with it as their
#: working directory and PYTHONPATH
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

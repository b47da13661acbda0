# -*- test-case-name: tests.test_config_parser -*-
"""
The iked.conf(5) parser, in three parts:

  - L{ikedtx.config.grammar}: the recursive descent parser proper
    (L{Parser}) and C{-D} definitions (L{splitDefine}).
  - L{ikedtx.config.policy}: an ikev2 rule checked and built into the
    immutable model.
  - L{ikedtx.config.files}: reading iked.conf, its included files and PSK
    files, with the permission check (L{secrecyProblem}).

This module keeps the names the rest of the daemon and the tests import.
"""

from ikedtx.config.files import readConfigFile
from ikedtx.config.grammar import Parser, splitDefine
from ikedtx.files import secrecyProblem

__all__ = ["Parser", "readConfigFile", "secrecyProblem", "splitDefine"]

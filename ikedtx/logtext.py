# -*- test-case-name: tests.test_logtext -*-
"""
Log lines as text, as Twisted's L{twisted.logger.textFileLogObserver}
writes them (C{"2026-12-03T17:15:17+0000 [namespace#info] message"}), for
less CPU per line: the time stamp is made once per second, and the message
by C{str.format_map} when that can format it. Every event this fast path
does not take as it is (a failure, a flattened event, a format with
Twisted's C{{callable()}} syntax, an error while formatting) is formatted by
Twisted itself, so the text is the same either way.

An established IKE SA with its Child SA logs two info lines: with Twisted's
formatting they were about a tenth of a responder's CPU per IKE SA.

L{levelPredicate}: Twisted's L{LogLevelFilterPredicate}, with the level of
each namespace looked up once (every event is filtered, debug ones
included).

L{Logger}: Twisted's L{twisted.logger.Logger}, which makes no event that
every observer of the global publisher would drop for its level (the
daemon's observers are level-filtered, L{ikedtx.tap.levelFiltered}, and
without -v a debug line was an event made, published and filtered out for
nothing). While any other observer listens (a test's, Twisted's buffer
before logging began), every event is made as before.
"""

import sys
from time import time

from twisted.logger import (
    FileLogObserver, LogLevel, LogLevelFilterPredicate, formatEvent, formatEventAsClassicLogText, formatTime,
    globalLogPublisher)
from twisted.logger import ILogObserver, PredicateResult
from twisted.logger import Logger as _TwistedLogger
from zope.interface import implementer
from twisted.logger._format import timeFormatRFC3339

_FLAT_KEYS = ("log_failure", "log_flattened")
_NO = PredicateResult.no


class _Stamp:
    """
    L{formatTime} of the time stamps of one second, made once: the text
    changes only at whole seconds (the format has none smaller, and local
    time offsets change at whole seconds).
    """

    def __init__(self, timeFormat):
        self.timeFormat = timeFormat
        self.second = None
        self.text = None

    def __call__(self, when):
        if when is None:
            return formatTime(when, self.timeFormat)
        second = int(when)
        # Near the end of a second, datetime's rounding to microseconds may
        # make it the next: those are made in full.
        if when - second >= 0.999:
            return formatTime(when, self.timeFormat)
        if second != self.second:
            self.text = formatTime(when, self.timeFormat)
            self.second = second
        return self.text


def messageText(event):
    """
    L{twisted.logger.formatEvent}C{(event)}: the same text.
    """
    format = event.get("log_format")
    if format.__class__ is str and "log_flattened" not in event:
        try:
            return format.format_map(event)
        except Exception:
            pass
    return formatEvent(event)


def classicText(event, stamp=None):
    """
    L{formatEventAsClassicLogText}C{(event)}: the same text, or None.

    @param stamp: formats the event's C{log_time}; L{formatTime} with the
        RFC 3339 format by default.
    """
    if stamp is None:
        stamp = _defaultStamp
    format = event.get("log_format")
    when = event.get("log_time")
    if format.__class__ is not str or when is None or any(key in event for key in _FLAT_KEYS):
        return formatEventAsClassicLogText(event, formatTime=stamp)
    try:
        text = format.format_map(event)
    except Exception:
        # Twisted's {callable()} syntax, or an event it reports as
        # unformattable: its own text.
        return formatEventAsClassicLogText(event, formatTime=stamp)
    if not text:
        return None
    system = event.get("log_system")
    if system is None:
        level = event.get("log_level")
        system = "%s#%s" % (event.get("log_namespace", "-"), "-" if level is None else level.name)
    else:
        try:
            system = str(system)
        except Exception:
            system = "UNFORMATTABLE"
    line = "%s [%s] %s\n" % (stamp(when), system, text)
    if "\n" in text:
        line = line[:-1].replace("\n", "\n\t") + "\n"
    return line


_defaultStamp = _Stamp(timeFormatRFC3339)


def textObserver(outFile=None, timeFormat=timeFormatRFC3339):
    """
    L{twisted.logger.textFileLogObserver}C{(outFile, timeFormat)}: the same
    lines, made faster.

    @param outFile: standard error by default (looked up now).
    """
    if outFile is None:
        outFile = sys.stderr
    stamp = _Stamp(timeFormat) if timeFormat is not None else (lambda when: "-")
    return FileLogObserver(outFile, lambda event: classicText(event, stamp))


class _CachedLevels(LogLevelFilterPredicate):
    """
    L{LogLevelFilterPredicate} remembering the level of each namespace
    until a level is set.
    """

    def __init__(self, defaultLogLevel):
        self._cache = {}
        LogLevelFilterPredicate.__init__(self, defaultLogLevel)

    @property
    def defaultLogLevel(self):
        return self._default

    @defaultLogLevel.setter
    def defaultLogLevel(self, level):
        self._default = level
        self._cache.clear()

    def logLevelForNamespace(self, namespace):
        level = self._cache.get(namespace)
        if level is None:
            level = self._cache[namespace] = LogLevelFilterPredicate.logLevelForNamespace(self, namespace)
        return level

    def setLogLevelForNamespace(self, namespace, level):
        LogLevelFilterPredicate.setLogLevelForNamespace(self, namespace, level)
        self._cache.clear()

    def clearLogLevels(self):
        LogLevelFilterPredicate.clearLogLevels(self)
        self._cache.clear()


@implementer(ILogObserver)
class LevelFiltered:
    """
    L{twisted.logger.FilteringLogObserver}C{(observer, [predicate])} for
    one L{LogLevelFilterPredicate}: C{observer} is given the events
    C{predicate} does not drop, with one call less per event.
    """

    def __init__(self, observer, predicate):
        self._observer = observer
        self.predicate = predicate

    def __call__(self, event):
        if self.predicate(event) is _NO:
            return
        if "log_trace" in event:
            event["log_trace"].append((self, self._observer))
        self._observer(event)


def levelPredicate(level):
    """
    A L{LogLevelFilterPredicate} with C{level} as its default level, which
    looks the level of a namespace up once.
    """
    return _CachedLevels(level)


#: {observer: predicate} of the level-filtered observers (levelFiltered).
_levelFilters = {}


def registerLevelFilter(observer, predicate):
    """
    C{observer} passes on only the events C{predicate} (a
    L{LogLevelFilterPredicate}) does not drop: L{Logger} may leave out
    the events it would drop.
    """
    _levelFilters[observer] = predicate


def dropped(level, namespace):
    """
    Whether every observer of the global log publisher would drop an event
    of C{level} in C{namespace} (there is at least one, and each is
    level-filtered).
    """
    # A private attribute of Twisted's LogPublisher: without it (another
    # Twisted), every event is made.
    observers = getattr(globalLogPublisher, "_observers", None)
    if not observers:
        return False
    for observer in observers:
        predicate = _levelFilters.get(observer)
        if predicate is None or level >= predicate.logLevelForNamespace(namespace):
            return False
    return True


_LEVELS = frozenset(LogLevel.iterconstants())


class Logger(_TwistedLogger):
    """
    L{twisted.logger.Logger} that makes no event no observer would keep
    (L{dropped}), and makes the others as Twisted does, with a cheaper
    check of the level (Twisted's walked the levels for each event, a third
    of the cost of an event).
    """

    def emit(self, level, format=None, **kwargs):
        observer = self.observer
        if observer is globalLogPublisher and dropped(level, self.namespace):
            return
        if level not in _LEVELS or "log_trace" in kwargs:
            _TwistedLogger.emit(self, level, format, **kwargs)
            return
        kwargs.update(log_logger=self, log_level=level, log_namespace=self.namespace, log_source=self.source,
                      log_format=format, log_time=time())
        observer(kwargs)

"""
Tests for L{ikedtx.logtext}: the same log lines as Twisted's text observer.
"""

import io

from twisted.logger import (
    Logger, LogLevel, LogLevelFilterPredicate, PredicateResult, formatEvent, formatEventAsClassicLogText, formatTime,
    textFileLogObserver)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from ikedtx import logtext, tap


class _Thing:
    spi = 0x1234abcd

    def __str__(self):
        return "a thing"

    def __repr__(self):
        return "<Thing>"

    def name(self):
        return "called"


def _events():
    when = 1764781517.25
    base = dict(log_time=when, log_namespace="ikedtx.core.engine.IKECore", log_level=LogLevel.info)
    try:
        1 / 0
    except ZeroDivisionError:
        failure = Failure()
    return [
        dict(base, log_format="plain"),
        dict(base, log_format="{a} and {b!r} and {c:08x}", a="x", b="y", c=255),
        dict(base, log_format="{thing} {thing!r} {thing.spi:08x} {thing!s}", thing=_Thing()),
        dict(base, log_format="{items[0]} {map[k]}", items=[7], map={"k": "v"}),
        # Twisted's own syntax: a callable called.
        dict(base, log_format="{thing.name()} {f()}", thing=_Thing(), f=lambda: "f"),
        # Unformattable: a missing key, a positional field, a bad spec.
        dict(base, log_format="{missing}"),
        dict(base, log_format="{}"),
        dict(base, log_format="{a:q}", a=1),
        dict(base, log_format="two\nlines {a}", a="x\ny"),
        dict(base, log_format=""),
        dict(base, log_format=None),
        dict(base, log_format=b"bytes {a}", a="x"),
        dict(base, log_format="with a system", log_system="sys"),
        dict(base, log_format="no level", log_level=None),
        dict(log_format="no time, no namespace"),
        dict(base, log_format="failed {a}", a=1, log_failure=failure),
        dict(base, log_format="braces {{literal}} {a}", a="x"),
        dict(base, log_format="end of a second", log_time=1764781517.9999999),
        dict(base, log_format="start of a second", log_time=1764781518.0),
    ]


class ClassicTextTests(SynchronousTestCase):
    def test_sameAsTwisted(self):
        """
        Each event gives the line Twisted's text observer writes.
        """
        for event in _events():
            expected = formatEventAsClassicLogText(dict(event))
            self.assertEqual(logtext.classicText(dict(event)), expected, event.get("log_format"))

    def test_messageSameAsTwisted(self):
        """
        L{logtext.messageText} is L{formatEvent}.
        """
        for event in _events():
            self.assertEqual(logtext.messageText(dict(event)), formatEvent(dict(event)), event.get("log_format"))

    def test_observerWrites(self):
        """
        L{logtext.textObserver} writes what L{textFileLogObserver} writes,
        time stamps of one second and of the next included.
        """
        ours, theirs = io.StringIO(), io.StringIO()
        mine, twisted = logtext.textObserver(ours), textFileLogObserver(theirs)
        for when in (100.0, 100.5, 100.9995, 101.0, 99.5, 3600.25):
            for event in _events():
                event = dict(event, log_time=when) if "log_time" in event else dict(event)
                mine(dict(event))
                twisted(dict(event))
        self.assertEqual(ours.getvalue(), theirs.getvalue())
        self.assertIn("[ikedtx.core.engine.IKECore#info] x and 'y' and 000000ff", ours.getvalue())

    def test_stampChangesWithTheSecond(self):
        """
        The time stamp is made again when the second changes.
        """
        stamp = logtext._Stamp("%Y-%m-%dT%H:%M:%S%z")
        for when in (0.5, 1.25, 1.75, 59.0, 60.0, 0.5):
            self.assertEqual(stamp(when), formatTime(when))


class LevelPredicateTests(SynchronousTestCase):
    def test_sameAsTwisted(self):
        """
        L{logtext.levelPredicate} filters as L{LogLevelFilterPredicate}, after
        the levels changed too.
        """
        ours, theirs = logtext.levelPredicate(LogLevel.info), LogLevelFilterPredicate(LogLevel.info)

        def check():
            for namespace in ("", "ikedtx", "ikedtx.core.engine.IKECore", "other.module"):
                for level in LogLevel.iterconstants():
                    event = dict(log_namespace=namespace, log_level=level)
                    self.assertEqual(ours(event), theirs(event), (namespace, level))

        check()
        for predicate in (ours, theirs):
            predicate.setLogLevelForNamespace("ikedtx.core", LogLevel.debug)
        check()
        for predicate in (ours, theirs):
            predicate.clearLogLevels()
        check()
        for predicate in (ours, theirs):
            predicate.defaultLogLevel = LogLevel.debug
            predicate.setLogLevelForNamespace("", LogLevel.debug)
        check()
        self.assertIs(ours(dict(log_namespace="ikedtx.x", log_level=LogLevel.debug)), PredicateResult.maybe)

    def test_setVerbose(self):
        """
        ikectl log verbose and brief change what an observer of
        L{tap.levelFiltered} is given, after events of the namespace were
        filtered already.
        """
        self.patch(tap, "_levelPredicates", [])
        seen = []
        log = Logger(namespace="ikedtx.core.engine.IKECore", observer=tap.levelFiltered(seen.append, LogLevel.info))
        log.debug("one")
        tap.setVerbose(True)
        log.debug("two")
        tap.setVerbose(False)
        log.debug("three")
        log.info("four")
        self.assertEqual([e["log_format"] for e in seen], ["two", "four"])


class QuietLoggerTests(SynchronousTestCase):
    def setUp(self):
        from twisted.logger import LogPublisher

        made = self.made = []

        class Counting(LogPublisher):
            # The events made reach the publisher: count them.
            def __call__(self, event):
                made.append(event["log_level"])
                LogPublisher.__call__(self, event)

        self.publisher = Counting()
        self.patch(tap, "_levelPredicates", [])
        self.kept = []
        self.filtered = tap.levelFiltered(self.kept.append, LogLevel.info)
        self.publisher.addObserver(self.filtered)
        self.patch(logtext, "globalLogPublisher", self.publisher)

    def log(self):
        logger = logtext.Logger(namespace="ikedtx.core.engine.IKECore", observer=self.publisher)
        del self.made[:]
        logger.debug("debug {a}", a=1)
        logger.info("info")
        return list(self.made)

    def test_droppedNotMade(self):
        """
        With only level-filtered observers, no event is made for a level
        all of them drop; the others are.
        """
        self.assertEqual(self.log(), [LogLevel.info])

    def test_verbose(self):
        """
        After ikectl log verbose the debug events are made.
        """
        tap.setVerbose(True)
        self.assertEqual(self.log(), [LogLevel.debug, LogLevel.info])

    def test_otherObserver(self):
        """
        While an observer that is not level-filtered listens (a test's),
        every event is made; with no observer at all too.
        """
        self.publisher.addObserver(lambda event: None)
        self.assertEqual(self.log(), [LogLevel.debug, LogLevel.info])
        for observer in list(self.publisher._observers):
            self.publisher.removeObserver(observer)
        self.assertEqual(self.log(), [LogLevel.debug, LogLevel.info])

    def test_ownObserver(self):
        """
        A logger with an observer of its own (not the global publisher)
        gives it every event.
        """
        seen = []
        logtext.Logger(namespace="x", observer=seen.append).debug("debug")
        self.assertEqual([e["log_format"] for e in seen], ["debug"])

    def test_lines(self):
        """
        What is kept reaches the observer as before.
        """
        logger = logtext.Logger(namespace="ikedtx.core.engine.IKECore", observer=self.publisher)
        logger.debug("debug")
        logger.info("info {a}", a=1)
        self.assertEqual([(e["log_format"], e["a"]) for e in self.kept], [("info {a}", 1)])


class LoggerEventTests(SynchronousTestCase):
    def test_sameEvents(self):
        """
        L{logtext.Logger} makes the events Twisted's Logger makes (but for
        their time), failures and a bad level included.
        """
        from twisted.logger import Logger

        ours, theirs = [], []
        for cls, events in ((logtext.Logger, ours), (Logger, theirs)):
            log = cls(namespace="ikedtx.x", source=self, observer=events.append)
            log.info("info {a}", a=1)
            log.debug("debug")
            log.warn("warn {b!r}", b="x")
            try:
                1 / 0
            except ZeroDivisionError:
                log.failure("failed {c}", c=2)
            log.emit("not a level", "bad")

        def comparable(event):
            event = dict(event)
            self.assertIsInstance(event.pop("log_time"), float)
            failure = event.pop("log_failure", None)
            if failure is not None:
                event["failure type"] = failure.type
            logger = event.pop("log_logger")
            event["logger"] = (type(logger).__mro__[-2], logger.namespace, logger.source)
            return sorted((k, repr(v)) for k, v in event.items())

        self.assertEqual([comparable(e) for e in ours], [comparable(e) for e in theirs])
        # info, debug, warn, failure and the report of the bad level.
        self.assertEqual(len(ours), 5)


class LevelFilteredTests(SynchronousTestCase):
    def test_sameAsTwisted(self):
        """
        L{logtext.LevelFiltered} passes on what Twisted's
        L{FilteringLogObserver} with the same predicate passes on.
        """
        from twisted.logger import FilteringLogObserver

        ours, theirs = [], []
        predicate = logtext.levelPredicate(LogLevel.info)
        mine, twisted = logtext.LevelFiltered(ours.append, predicate), FilteringLogObserver(theirs.append, [predicate])
        events = [dict(log_namespace=namespace, log_level=level, n=i)
                  for i, (namespace, level) in enumerate(
                      (namespace, level) for namespace in ("", "ikedtx.core", "x")
                      for level in list(LogLevel.iterconstants()) + [None])]
        events.append(dict(n="no keys"))
        for event in events:
            mine(dict(event))
            twisted(dict(event))
        self.assertEqual([e["n"] for e in ours], [e["n"] for e in theirs])
        self.assertEqual(len(ours), 8)
        trace = []
        mine(dict(log_namespace="x", log_level=LogLevel.warn, log_trace=trace))
        self.assertEqual(trace, [(mine, ours.append)])

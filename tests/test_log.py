"""Tests for L{twisted_mitm.log}."""

from __future__ import annotations

import logging

from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.log import ALERT, Log, install_logging_bridge


class BridgeTests(SynchronousTestCase):
    """Stdlib logging records at INFO and above reach twisted.logger."""

    def setUp(self) -> None:
        root = logging.getLogger()
        self.addCleanup(root.setLevel, root.level)
        handler = install_logging_bridge()
        self.addCleanup(root.removeHandler, handler)
        self.logger = logging.getLogger("tests.script")
        self.events = self.enterContext(capturedLogs())

    def test_levels(self) -> None:
        """Each stdlib level maps to the matching twisted level; DEBUG is not forwarded."""
        self.logger.debug("quiet")
        self.logger.info("info")
        self.logger.log(ALERT, "alert")
        self.logger.warning("warning")
        self.logger.error("error")
        self.logger.critical("critical")
        self.assertEqual(
            [(formatEvent(e), e["log_level"]) for e in self.events],
            [
                ("info", LogLevel.info),
                ("alert", LogLevel.warn),
                ("warning", LogLevel.warn),
                ("error", LogLevel.error),
                ("critical", LogLevel.critical),
            ],
        )

    def test_formatted_message_and_namespace(self) -> None:
        """The record's %-formatted message is kept verbatim, in the logger's namespace."""
        logging.info("{not a field} %s", "filled")
        self.logger.info("from %s", "script")
        self.assertEqual(
            [(e["log_namespace"], formatEvent(e)) for e in self.events],
            [("root", "{not a field} filled"), ("tests.script", "from script")],
        )

    def test_idempotent(self) -> None:
        """Installing twice keeps one bridge, so each record is logged once."""
        self.assertIs(install_logging_bridge(), install_logging_bridge())
        self.logger.warning("once")
        self.assertEqual(len(self.events), 1)

    def test_alert_level(self) -> None:
        """C{ALERT} is a level above WARNING (SPEC §3), with its name registered."""
        self.assertGreater(ALERT, logging.WARNING)
        self.assertLess(ALERT, logging.ERROR)
        self.assertEqual(logging.getLevelName(ALERT), "ALERT")


class LogTests(SynchronousTestCase):
    """C{ctx.log} logs in the caller's namespace."""

    def test_levels_and_namespace(self) -> None:
        """Each method logs its text at its level under the calling module's name."""
        log = Log()
        with capturedLogs() as events:
            log.debug("d")
            log.info("i {braces}")
            log.alert("a")
            log.warn("w")
            log.error("e")
        self.assertEqual(
            [(e["log_namespace"], e["log_level"], formatEvent(e)) for e in events],
            [
                (__name__, LogLevel.debug, "d"),
                (__name__, LogLevel.info, "i {braces}"),
                (__name__, LogLevel.warn, "a"),
                (__name__, LogLevel.warn, "w"),
                (__name__, LogLevel.error, "e"),
            ],
        )

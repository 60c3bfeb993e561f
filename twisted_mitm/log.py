# -*- test-case-name: tests.test_log -*-
"""
Logging for scripts: mitmproxy's C{ALERT} level, C{ctx.log}, and the bridge that carries
stdlib C{logging} records (what mitmproxy scripts mostly use) into twisted.logger.
"""

from __future__ import annotations

import logging
import sys

from twisted.logger import Logger, LogLevel

ALERT = logging.WARNING + 5
"""
The ALERT level, above WARNING (SPEC §3): for messages meant to catch the user's eye.
mitmproxy puts it just above INFO; scripts only log with it, so the number differs
harmlessly, and here an alert is never filtered out where warnings are shown.
"""
logging.addLevelName(ALERT, "ALERT")


def twisted_level(levelno: int) -> LogLevel:
    """The twisted.logger level for a stdlib logging level."""
    if levelno >= logging.CRITICAL:
        return LogLevel.critical
    if levelno >= logging.ERROR:
        return LogLevel.error
    if levelno >= logging.WARNING:
        return LogLevel.warn
    if levelno >= logging.INFO:
        return LogLevel.info
    return LogLevel.debug


class _TwistedHandler(logging.Handler):
    """Re-emits stdlib records in the logger's namespace, message formatted stdlib-style."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        level = twisted_level(record.levelno)
        Logger(namespace=record.name).emit(level, "{log_text}", log_text=text)


def install_logging_bridge() -> logging.Handler:
    """
    Route stdlib logging records at INFO and above into twisted.logger. Calling it again
    changes nothing.

    @return: the bridge handler on the root logger (tests remove it when done).
    """
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, _TwistedHandler):
            return handler
    handler = _TwistedHandler(logging.INFO)
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


class Log:
    """
    C{ctx.log}: mitmproxy's older script logging API. Each line is logged in the namespace of
    the calling module, so a script's lines carry its name.
    """

    def debug(self, text: object) -> None:
        """Log at debug level."""
        self._emit(LogLevel.debug, text)

    def info(self, text: object) -> None:
        """Log at info level."""
        self._emit(LogLevel.info, text)

    def alert(self, text: object) -> None:
        """Log at L{ALERT} level: as urgent as info, but shown like a warning."""
        self._emit(LogLevel.warn, text)

    def warn(self, text: object) -> None:
        """Log at warning level."""
        self._emit(LogLevel.warn, text)

    def error(self, text: object) -> None:
        """Log at error level."""
        self._emit(LogLevel.error, text)

    def _emit(self, level: LogLevel, text: object) -> None:
        caller = sys._getframe(2).f_globals.get("__name__", __name__)
        Logger(namespace=caller).emit(level, "{log_text}", log_text=str(text))

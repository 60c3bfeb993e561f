# -*- test-case-name: tests.test_addonmanager -*-
"""mitmproxy's C{@concurrent}: run a blocking hook in a thread while its flow waits."""

from __future__ import annotations

import functools
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread


def concurrent(fn: Callable[..., Any]) -> Callable[..., Deferred[Any]]:
    """
    Make a plain hook run in the reactor's thread pool. The flow waits for it as for any
    Deferred-returning hook, while other flows go on. The hook must not touch Twisted APIs
    (other than logging) from its thread.
    """

    @functools.wraps(fn)
    def in_thread(*args: Any) -> Deferred[Any]:
        return deferToThread(fn, *args)

    return in_thread

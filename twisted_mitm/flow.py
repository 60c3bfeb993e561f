# -*- test-case-name: tests.test_flow -*-
"""The flow base class and its L{Error}, as mitmproxy scripts know them.

L{twisted_mitm.http}, L{twisted_mitm.tcp} subclass L{Flow}; the proxy creates flows and
hands them to hooks. Pure data plus two signals, C{kill()} and C{intercept()}/C{resume()};
no I/O.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from twisted.internet.defer import Deferred, succeed

from twisted_mitm.connection import Client, Server
from twisted_mitm.exceptions import ControlException


@dataclass
class Error:
    """A failure outside HTTP itself: a lost connection, a timeout, a protocol error.

    An error response (say a 502) is a L{twisted_mitm.http.Response}, not an C{Error}.
    """

    msg: str
    """What went wrong."""
    timestamp: float = field(default_factory=time.time)
    """When it happened."""

    KILLED_MESSAGE: ClassVar[str] = "Connection killed."

    def __str__(self) -> str:
        return self.msg

    def __repr__(self) -> str:
        return self.msg


class Flow:
    """One exchange (or connection) between a client and a server.

    @ivar live: C{True} while the flow belongs to an active connection.
    @ivar metadata: free-form data for scripts to attach to the flow.
    @ivar is_replay: C{"request"} or C{"response"} for replayed flows; always C{None} here.
    @ivar intercepted: C{True} between L{intercept} and L{resume}: the proxy holds the flow.
    @ivar marked: the user's mark (a character or an emoji name); C{""} when unmarked.
    @ivar on_kill: internal, set by the proxy: called once by L{kill} so the proxy can
        drop the connection instead of forwarding anything. Scripts call C{kill()}.
    """

    type: ClassVar[str]
    """The flow type: C{"http"} or C{"tcp"}."""

    def __init__(self, client_conn: Client, server_conn: Server, live: bool = False) -> None:
        self.id = str(uuid.uuid4())
        self.client_conn = client_conn
        self.server_conn = server_conn
        self.live = live
        self.error: Error | None = None
        self.metadata: dict[str, Any] = {}
        self.is_replay: str | None = None
        self.intercepted = False
        self.marked: str = ""
        self.timestamp_created = time.time()
        self.on_kill: Callable[[], None] | None = None
        self._resume_waiters: list[Deferred[None]] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"

    @property
    def timestamp_start(self) -> float:
        """When the flow started; the client connection's start by default."""
        return self.client_conn.timestamp_start

    @property
    def killable(self) -> bool:
        """C{True} if L{kill} may be called: the flow is live and not killed yet."""
        return self.live and not (self.error and self.error.msg == Error.KILLED_MESSAGE)

    def kill(self) -> None:
        """Kill the flow: nothing more is forwarded and its connection is dropped.

        @raise ControlException: if the flow is not L{killable}.
        """
        if not self.killable:
            raise ControlException("Flow is not killable.")
        self.error = Error(Error.KILLED_MESSAGE)
        self.live = False
        self._release()
        if self.on_kill is not None:
            self.on_kill()

    def intercept(self) -> None:
        """Hold the flow: once the current hook has run, the proxy takes it no further
        until L{resume} (or L{kill}). A streamed body waits unread, its sender paused."""
        self.intercepted = True

    def resume(self) -> None:
        """Let an intercepted flow go on; does nothing if it is not intercepted."""
        if self.intercepted:
            self._release()

    async def wait_for_resume(self) -> None:
        """Wait until the flow is resumed or killed; returns at once if it is not intercepted."""
        waiting = self.resumed()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # run by Twisted's own coroutine driver, not asyncio
            await waiting
        else:
            await waiting.asFuture(loop)

    def resumed(self) -> Deferred[None]:
        """Fires when the flow is not intercepted: at once, or on L{resume} or L{kill}.

        The addon manager waits on it after every hook that carries the flow.
        """
        if not self.intercepted:
            return succeed(None)
        waiting: Deferred[None] = Deferred()
        self._resume_waiters.append(waiting)
        return waiting

    def _release(self) -> None:
        self.intercepted = False
        waiters, self._resume_waiters = self._resume_waiters, []
        for waiting in waiters:
            if not waiting.called:  # a waiter cancelled meanwhile has fired already
                waiting.callback(None)

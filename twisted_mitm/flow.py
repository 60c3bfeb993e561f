# -*- test-case-name: tests.test_flow -*-
"""The flow base class and its L{Error}, as mitmproxy scripts know them.

L{twisted_mitm.http}, L{twisted_mitm.tcp} subclass L{Flow}; the proxy creates flows and
hands them to hooks. Pure data plus the C{kill()} signal; no I/O.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

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

    @ivar metadata: free-form data for scripts to attach to the flow.
    @ivar is_replay: C{"request"} or C{"response"} for replayed flows; always C{None} here.
    @ivar on_kill: internal, set by the proxy: called once by L{kill} so the proxy can
        drop the connection instead of forwarding anything. Scripts call C{kill()}. It is
        a method of the object relaying the flow, which holds the flow in turn: dropping it
        when the flow stops being L{live} breaks that cycle, so an ended flow is freed as
        soon as nothing else holds it, not at the garbage collector's next full pass.
    """

    type: ClassVar[str]
    """The flow type: C{"http"} or C{"tcp"}."""

    def __init__(self, client_conn: Client, server_conn: Server, live: bool = False) -> None:
        self.id = str(uuid.uuid4())
        self.client_conn = client_conn
        self.server_conn = server_conn
        self.on_kill: Callable[[], None] | None = None
        self._live = live
        self.error: Error | None = None
        self.metadata: dict[str, Any] = {}
        self.is_replay: str | None = None
        self.timestamp_created = time.time()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"

    @property
    def live(self) -> bool:
        """C{True} while the flow belongs to an active connection."""
        return self._live

    @live.setter
    def live(self, live: bool) -> None:
        self._live = live
        if not live:
            self.on_kill = None

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
        on_kill = self.on_kill
        self.live = False
        if on_kill is not None:
            on_kill()

# -*- test-case-name: tests.test_flow -*-
"""The flow base class and its L{Error}, as mitmproxy scripts know them.

L{twisted_mitm.http}, L{twisted_mitm.tcp} subclass L{Flow}; the proxy creates flows and
hands them to hooks. Pure data plus two signals, C{kill()} and C{intercept()}/C{resume()};
no I/O. A flow's state is what mitmproxy 12 writes to a flow file (format
L{FLOW_FORMAT_VERSION}); L{twisted_mitm.io} reads and writes it.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from twisted.internet.defer import Deferred, succeed

from twisted_mitm.connection import Client, Server
from twisted_mitm.coretypes.serializable import Serializable, SerializableDataclass, State
from twisted_mitm.exceptions import ControlException
from twisted_mitm.version import FLOW_FORMAT_VERSION


@dataclass
class Error(SerializableDataclass):
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


class Flow(Serializable):
    """One exchange (or connection) between a client and a server.

    @ivar metadata: free-form data for scripts to attach to the flow; saved with it, so
        keep to plain values (str, bytes, numbers, lists, dicts).
    @ivar marked: a non-empty string marks the flow (C{":default:"} or an emoji name).
    @ivar comment: a free-form comment.
    @ivar is_replay: C{"request"} or C{"response"} for replayed flows, else C{None}.
    @ivar intercepted: C{True} between L{intercept} and L{resume}: the proxy holds the flow.
    @ivar on_kill: internal, set by the proxy: called once by L{kill} so the proxy can
        drop the connection instead of forwarding anything. Scripts call C{kill()}. It is
        a method of the object relaying the flow, which holds the flow in turn: dropping it
        when the flow stops being L{live} breaks that cycle, so an ended flow is freed as
        soon as nothing else holds it, not at the garbage collector's next full pass.
    """

    type: ClassVar[str]
    """The flow type: C{"http"} or C{"tcp"}."""

    _types: ClassVar[dict[str, type[Flow]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Flow._types[cls.type] = cls

    def __init__(self, client_conn: Client, server_conn: Server, live: bool = False) -> None:
        self.id = str(uuid.uuid4())
        self.client_conn = client_conn
        self.server_conn = server_conn
        self.on_kill: Callable[[], None] | None = None
        self._live = live
        self.error: Error | None = None
        self.metadata: dict[str, Any] = {}
        self.marked: str = ""
        self.comment: str = ""
        self.is_replay: str | None = None
        self.intercepted: bool = False
        self.timestamp_created = time.time()
        self._backup: State | None = None
        self._resume_waiters: list[Deferred[None]] = []

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
        self.intercepted = False
        on_kill = self.on_kill
        self.live = False
        self._release()
        if on_kill is not None:
            on_kill()

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

    # State, as mitmproxy 12 saves it.

    def get_state(self) -> State:
        return {
            "version": FLOW_FORMAT_VERSION,
            "type": self.type,
            "id": self.id,
            "error": self.error.get_state() if self.error else None,
            "client_conn": self.client_conn.get_state(),
            "server_conn": self.server_conn.get_state(),
            "intercepted": self.intercepted,
            "is_replay": self.is_replay,
            "marked": self.marked,
            "metadata": copy.deepcopy(self.metadata),
            "comment": self.comment,
            "timestamp_created": self.timestamp_created,
            "backup": copy.deepcopy(self._backup),
        }

    def set_state(self, state: State) -> None:
        """Take on a state of the current format version and of this flow's type.

        @raise ValueError: for another version or type, or a malformed state.
        """
        version, kind = state.pop("version", None), state.pop("type", None)
        if version != FLOW_FORMAT_VERSION or kind != self.type:
            raise ValueError(f"expected a {self.type} flow of version {FLOW_FORMAT_VERSION}, got {kind} {version}")
        try:
            self.id = state.pop("id")
            error = state.pop("error")
            self.error = Error.from_state(error) if error else None
            self.client_conn.set_state(state.pop("client_conn"))
            self.server_conn.set_state(state.pop("server_conn"))
            self.intercepted = state.pop("intercepted")
            self.is_replay = state.pop("is_replay")
            self.marked = state.pop("marked")
            self.metadata = state.pop("metadata")
            self.comment = state.pop("comment")
            self.timestamp_created = state.pop("timestamp_created")
        except KeyError as e:
            raise ValueError(f"{self.type} flow state has no {e.args[0]!r}") from None
        self._backup = state.pop("backup", None)
        if state:
            raise ValueError(f"{self.type} flow state has unknown fields: {', '.join(map(str, state))}")

    @classmethod
    def from_state(cls, state: State) -> Flow:
        """The flow of the type C{state} names (C{"http"}, C{"tcp"}).

        @raise ValueError: for an unknown flow type or a malformed state.
        """
        try:
            flow_class = Flow._types[state["type"]]
        except KeyError:
            raise ValueError(f"unsupported flow type: {state.get('type')!r}") from None
        flow = flow_class(Client(peername=("", 0), sockname=("", 0)), Server(address=None))
        flow.set_state(state)
        return flow

    def copy(self) -> Flow:
        """A copy of this flow with a new id; the copy is not live."""
        duplicate = super().copy()
        duplicate.live = False
        return duplicate

    def backup(self) -> None:
        """Save the current state, which L{revert} restores; an existing backup is kept."""
        if not self._backup:
            self._backup = self.get_state()

    def revert(self) -> None:
        """Go back to the state L{backup} saved, and drop the backup."""
        if self._backup:
            self.set_state(self._backup)
            self._backup = None

    def modified(self) -> bool:
        """C{True} if the flow changed since L{backup}; C{False} without a backup."""
        if not self._backup:
            return False
        return _without_backup(self._backup) != _without_backup(self.get_state())


def _without_backup(state: State) -> State:
    """A flow state without its own backup, for comparing what the flow is."""
    return {key: value for key, value in state.items() if key != "backup"}

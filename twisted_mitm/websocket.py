# -*- test-case-name: tests.test_flow -*-
"""WebSocket messages and per-connection data, as mitmproxy scripts know them.

A WebSocket connection is an L{twisted_mitm.http.HTTPFlow} whose C{websocket} attribute
holds a L{WebSocketData} after the upgrade; the relay appends a L{WebSocketMessage} for
each reassembled message before C{websocket_message} runs. Both save their state as
mitmproxy 12 does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import IntEnum

from twisted_mitm.coretypes.serializable import Serializable, SerializableDataclass, State


class Opcode(IntEnum):
    """RFC 6455 opcodes, with the values and names of wsproto's C{Opcode}."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class WebSocketMessage(Serializable):
    """One whole (reassembled) WebSocket message; C{content} is always bytes.

    @ivar dropped: C{True} if the message is not (or was not) forwarded to the other peer.
    @ivar injected: C{True} if a script injected the message.
    """

    def __init__(
        self,
        type: int | Opcode,
        from_client: bool,
        content: bytes,
        timestamp: float | None = None,
        dropped: bool = False,
        injected: bool = False,
    ) -> None:
        self.type = Opcode(type)
        self.from_client = from_client
        self.content = content
        self.timestamp: float = timestamp or time.time()
        self.dropped = dropped
        self.injected = injected

    @classmethod
    def from_state(cls, state: State) -> WebSocketMessage:
        """From C{(type, from_client, content, timestamp, dropped, injected)}."""
        try:
            return cls(*state)
        except TypeError as e:
            raise ValueError(f"invalid WebSocket message state: {e}") from None

    def get_state(self) -> State:
        return (int(self.type), self.from_client, self.content, self.timestamp, self.dropped, self.injected)

    def set_state(self, state: State) -> None:
        kind, self.from_client, self.content, self.timestamp, self.dropped, self.injected = state
        self.type = Opcode(kind)

    def __repr__(self) -> str:
        if self.is_text:
            return repr(self.content.decode(errors="replace"))
        return repr(self.content)

    @property
    def is_text(self) -> bool:
        """C{True} for a TEXT message, C{False} for a BINARY one."""
        return self.type == Opcode.TEXT

    def drop(self) -> None:
        """Do not forward this message to the other peer."""
        self.dropped = True

    def _require_text(self) -> None:
        if not self.is_text:
            raise AttributeError(
                f"{self.type.name.title()} WebSocket frames do not have a 'text' attribute."
            )

    @property
    def text(self) -> str:
        """The content decoded as UTF-8; only for TEXT messages (else C{AttributeError})."""
        self._require_text()
        return self.content.decode()

    @text.setter
    def text(self, value: str) -> None:
        self._require_text()
        self.content = value.encode()


@dataclass
class WebSocketData(SerializableDataclass):
    """Everything about one WebSocket connection (C{flow.websocket})."""

    messages: list[WebSocketMessage] = field(default_factory=list)
    """All messages so far, both directions, in order."""
    closed_by_client: bool | None = None
    """C{True}/C{False} once the client/server closed; C{None} while open."""
    close_code: int | None = None
    """The RFC 6455 close code."""
    close_reason: str | None = None
    """The close reason text."""
    timestamp_end: float | None = None
    """When the WebSocket connection closed."""

    def __repr__(self) -> str:
        return f"<WebSocketData ({len(self.messages)} messages)>"

# -*- test-case-name: tests.test_flow -*-
"""Raw TCP flows (inside CONNECT, neither TLS nor HTTP), as mitmproxy scripts know them.

The passthrough relay records each chunk it forwards as a L{TCPMessage} and runs the
C{tcp_*} hooks with the L{TCPFlow}. Both save their state as mitmproxy 12 does.
"""

from __future__ import annotations

import time

from twisted_mitm.connection import Client, Server
from twisted_mitm.coretypes.serializable import Serializable, State
from twisted_mitm.flow import Flow


class TCPMessage(Serializable):
    """One chunk of a TCP stream, as it arrived; do not rely on the boundaries."""

    def __init__(self, from_client: bool, content: bytes, timestamp: float | None = None) -> None:
        self.from_client = from_client
        self.content = content
        self.timestamp = timestamp or time.time()

    @classmethod
    def from_state(cls, state: State) -> TCPMessage:
        """From C{(from_client, content, timestamp)}."""
        try:
            return cls(*state)
        except TypeError as e:
            raise ValueError(f"invalid TCP message state: {e}") from None

    def get_state(self) -> State:
        return (self.from_client, self.content, self.timestamp)

    def set_state(self, state: State) -> None:
        self.from_client, self.content, self.timestamp = state

    def __repr__(self) -> str:
        return f"{'->' if self.from_client else '<-'} {self.content!r}"


class TCPFlow(Flow):
    """A TCP connection relayed by the proxy; C{messages[-1]} is the latest chunk."""

    type = "tcp"

    def __init__(self, client_conn: Client, server_conn: Server, live: bool = False) -> None:
        super().__init__(client_conn, server_conn, live)
        self.messages: list[TCPMessage] = []

    def __repr__(self) -> str:
        return f"<TCPFlow ({len(self.messages)} messages)>"

    def get_state(self) -> State:
        return {**super().get_state(), "messages": [message.get_state() for message in self.messages]}

    def set_state(self, state: State) -> None:
        try:
            messages = state.pop("messages")
        except KeyError:
            raise ValueError("tcp flow state has no 'messages'") from None
        self.messages = [TCPMessage.from_state(message) for message in messages]
        super().set_state(state)

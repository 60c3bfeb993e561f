# -*- test-case-name: tests.test_flow -*-
"""Raw TCP flows (inside CONNECT, neither TLS nor HTTP), as mitmproxy scripts know them.

The passthrough relay records each chunk it forwards as a L{TCPMessage} and runs the
C{tcp_*} hooks with the L{TCPFlow}.
"""

from __future__ import annotations

import time

from twisted_mitm.connection import Client, Server
from twisted_mitm.flow import Flow


class TCPMessage:
    """One chunk of a TCP stream, as it arrived; do not rely on the boundaries."""

    def __init__(self, from_client: bool, content: bytes, timestamp: float | None = None) -> None:
        self.from_client = from_client
        self.content = content
        self.timestamp = timestamp or time.time()

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

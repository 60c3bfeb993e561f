# -*- test-case-name: tests.test_modes -*-
"""A protocol that runs first on a connection, then hands it to another protocol.

Twisted gives a connection one protocol for life. Some connections need a short first
act before their real protocol: a connection opened eagerly that waits to be adopted,
a CONNECT handshake with an upstream proxy. L{Handover} is that first act: once
L{hand_over} names the next protocol, every event goes to it unchanged, half-closes
included.
"""

from __future__ import annotations

from twisted.internet import error as net_error
from twisted.internet.interfaces import IHalfCloseableProtocol, IProtocol, ITransport
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer


def pass_read_eof(inner: IProtocol | None, transport: ITransport) -> None:
    """The peer closed its side: tell C{inner} if it can take a half-close, else close."""
    half_closeable = IHalfCloseableProtocol(inner, None)
    if half_closeable is not None:
        half_closeable.readConnectionLost()
    else:
        transport.loseConnection()


@implementer(IHalfCloseableProtocol)
class Handover(Protocol):
    """Handles a connection until L{hand_over}, then forwards everything to the next protocol.

    Subclasses say what happens before: L{received_before} and L{lost_before}.
    """

    _next: IProtocol | None = None

    def hand_over(self, protocol: IProtocol, data: bytes = b"", lost: Failure | None = None) -> None:
        """From now on C{protocol} has the connection: it is connected, gets C{data}, and
        learns the connection is gone if it already is (C{lost})."""
        self._next = protocol
        protocol.makeConnection(self.transport)
        if data:
            protocol.dataReceived(data)
        if lost is not None:
            protocol.connectionLost(lost)

    def received_before(self, data: bytes) -> None:
        """Bytes that arrived before the hand-over."""
        raise NotImplementedError

    def lost_before(self, reason: Failure) -> None:
        """The connection ended before the hand-over."""

    def dataReceived(self, data: bytes) -> None:
        if self._next is None:
            self.received_before(data)
        else:
            self._next.dataReceived(data)

    def readConnectionLost(self) -> None:
        pass_read_eof(self._next, self.transport)

    def writeConnectionLost(self) -> None:
        half_closeable = IHalfCloseableProtocol(self._next, None)
        if half_closeable is not None:
            half_closeable.writeConnectionLost()

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        if self._next is None:
            self.lost_before(reason)
        else:
            self._next.connectionLost(reason)

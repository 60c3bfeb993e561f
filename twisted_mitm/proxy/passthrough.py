# -*- test-case-name: tests.test_passthrough -*-
"""A raw TCP relay for CONNECT tunnels that are not intercepted, with optional TCP flows.

The relay is Twisted's port-forward idiom done fully: each leg's reading (a L{Valve}
around its transport) is registered as the other leg's streaming producer, so a slow
reader on one side pauses the socket on the other, in both directions; a half-close
travels across, and the relay closes both legs once both directions have ended; and a
full close of either leg closes the other. When the tunnel is shown to scripts (raw TCP that is
neither TLS nor HTTP, or an ignored host with C{show_ignored_hosts}), every chunk
becomes a L{TCPMessage} and passes through the C{tcp_message} hook, which may change it,
before it goes on; the source is paused while the hook runs, so order and backpressure
hold.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from twisted.internet import error as net_error
from twisted.internet.endpoints import connectProtocol
from twisted.internet.interfaces import IHalfCloseableProtocol, ITransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mitm.connection import Client, Server
from twisted_mitm.proxy.pipe import Hold, Side, Valve
from twisted_mitm.proxy.serverside import ServerConnections
from twisted_mitm.hooks import TcpEndHook, TcpErrorHook, TcpMessageHook, TcpStartHook
from twisted_mitm.flow import Error
from twisted_mitm.tcp import TCPFlow, TCPMessage

if TYPE_CHECKING:
    from twisted_mitm.proxy.context import ProxyContext


@implementer(IHalfCloseableProtocol)
class _UpstreamLeg(Protocol):
    """The relay's connection to the server; reports everything to its L{TCPRelay}."""

    def __init__(self, relay: TCPRelay) -> None:
        self.relay = relay

    def connectionMade(self) -> None:
        self.relay.upstream_connected(self.transport)

    def dataReceived(self, data: bytes) -> None:
        self.relay.relay_data(data, Side.SERVER)

    def readConnectionLost(self) -> None:
        self.relay.half_closed(Side.SERVER)

    def writeConnectionLost(self) -> None:
        """The server will read nothing more; its FIN to us ends that direction."""

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        self.relay.leg_lost(reason, Side.SERVER)


@implementer(IHalfCloseableProtocol)
class TCPRelay(Protocol):
    """Relays a tunnel's bytes to C{host:port} untouched, or as a TCP flow with hooks.

    It is the tunnel's client-side protocol: the client transport is C{self.transport}.
    Bytes the client sends before the server leg is up wait in C{_early}; the client
    socket is paused meanwhile, so that is at most one read.

    @ivar flow: the TCP flow scripts see, or C{None} for a silent relay.
    """

    _log = Logger()

    #: most messages a TCP flow keeps (their bytes are bounded by C{tcp_max_stored_bytes});
    #: older messages leave C{flow.messages}, so that a long relay stays bounded in memory
    max_kept_messages = 1000

    def __init__(self, context: ProxyContext, client: Client, host: str, port: int, with_hooks: bool, upstreams: ServerConnections) -> None:
        self.context = context
        self.host = host
        self.port = port
        self._upstreams = upstreams
        self._parked = upstreams.take_parked()
        server = self._parked.server if self._parked is not None else Server(address=(host, port))
        self.flow: TCPFlow | None = TCPFlow(client, server, live=True) if with_hooks else None
        self._server_transport: ITransport | None = None
        self._early: list[bytes] = []
        self._client_eof = False
        # Which sides sent a FIN, and which of those FINs went on (after that side's data).
        self._fin_received: set[Side] = set()
        self._fin_sent: set[Side] = set()
        self._closed = False
        self._queue: list[tuple[bytes, Side]] = []
        self._hook_running = False
        self._stored = context.stored.for_flow(
            context.settings.tcp_max_stored_bytes, "tcp_max_stored_bytes", self._forget, self.max_kept_messages
        )
        # Each leg's reading.
        self._valves: dict[Side, Valve] = {}

    def connectionMade(self) -> None:
        self._valves[Side.CLIENT] = Valve(self.transport)
        self._valves[Side.CLIENT].hold(Hold.CONNECTING)
        if self.flow is not None:
            self.flow.on_kill = self._close_both
        if self._parked is not None:
            parked, self._parked = self._parked, None
            parked.adopt(_UpstreamLeg(self))
            return
        connecting = connectProtocol(self._upstreams.endpoint_to(self.host, self.port), _UpstreamLeg(self))
        connecting.addErrback(self._connect_failed)

    def _connect_failed(self, reason: Failure) -> None:
        self._log.info(
            "{host}:{port}: passthrough connection failed: {reason}", host=self.host, port=self.port, reason=reason.getErrorMessage()
        )
        self._closed = True
        self._end_flow(f"cannot connect to {self.host}:{self.port}: {reason.getErrorMessage()}")
        self.transport.loseConnection()

    def upstream_connected(self, transport: ITransport) -> None:
        """The server leg is up: pair the producers and let the client's bytes flow."""
        self._server_transport = transport
        if self._closed:
            transport.loseConnection()
            return
        self._valves[Side.SERVER] = Valve(transport)
        self.transport.registerProducer(self._valves[Side.SERVER], True)
        transport.registerProducer(self._valves[Side.CLIENT], True)
        started = self.context.addons.trigger(TcpStartHook(self.flow)) if self.flow is not None else None
        if started is not None:
            started.addCallback(lambda _: self._flush_early())
        else:
            self._flush_early()

    def _flush_early(self) -> None:
        early, self._early = self._early, []
        for data in early:
            self.relay_data(data, Side.CLIENT)
        if self._client_eof:
            self.half_closed(Side.CLIENT)
        self._valves[Side.CLIENT].release(Hold.CONNECTING)

    def dataReceived(self, data: bytes) -> None:
        if self._server_transport is None:
            self._early.append(data)
            return
        self.relay_data(data, Side.CLIENT)

    def readConnectionLost(self) -> None:
        self.half_closed(Side.CLIENT)

    def writeConnectionLost(self) -> None:
        """The client will read nothing more; its FIN to us ends that direction."""

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        self.leg_lost(reason, Side.CLIENT)

    # Both legs.

    def relay_data(self, data: bytes, source: Side) -> None:
        """Send C{data} to the other leg, through the C{tcp_message} hook when there is a flow."""
        if self._closed:
            return
        if self.flow is None:
            self._transport(source.other).write(data)
            return
        self._queue.append((data, source))
        self._valves[source].hold(Hold.HOOKS)
        if not self._hook_running:
            self._next_message()

    def _next_message(self) -> None:
        if not self._queue or self._closed:
            self._hook_running = False
            self._pass_fins()
            return
        assert self.flow is not None
        data, source = self._queue.pop(0)
        message = TCPMessage(source is Side.CLIENT, data, time.time())
        self.flow.messages.append(message)
        self._hook_running = True
        triggered = self.context.addons.trigger(TcpMessageHook(self.flow))
        triggered.addCallback(lambda _: self._message_done(message, source))

    def _forget(self, message: TCPMessage, size: int, option: str) -> None:
        """A budget is exceeded: the oldest kept message leaves the flow's list."""
        assert self.flow is not None
        messages = self.flow.messages
        if messages and messages[0] is message:
            del messages[0]
        elif message in messages:
            messages.remove(message)
        metadata = self.flow.metadata
        metadata["tcp_bytes_not_stored"] = metadata.get("tcp_bytes_not_stored", 0) + size

    def _message_done(self, message: TCPMessage, source: Side) -> None:
        if self._closed:
            return
        if message.content:
            self._transport(source.other).write(message.content)
        self._stored.keep(message, len(message.content))
        if not any(queued is source for _, queued in self._queue):
            self._valves[source].release(Hold.HOOKS)
        self._next_message()

    def half_closed(self, side: Side) -> None:
        """One side sent its FIN: pass it on after that side's data."""
        if side is Side.CLIENT and self._server_transport is None:
            self._client_eof = True
            return
        self._fin_received.add(side)
        self._pass_fins()

    def _pass_fins(self) -> None:
        """Pass on the FINs received, unless a message is still in a hook; close once both went.

        A half-closed socket is no longer read, so the relay itself must close both legs
        when both directions have ended, or neither would ever see the connection go.
        """
        if self._hook_running or self._closed:
            return
        for side in self._fin_received - self._fin_sent:
            self._fin_sent.add(side)
            destination = self._transport(side.other)
            if hasattr(destination, "loseWriteConnection"):
                destination.loseWriteConnection()
            else:
                destination.loseConnection()
        if len(self._fin_sent) == 2:
            for transport in (self.transport, self._server_transport):
                if transport is not None:
                    transport.loseConnection()

    def leg_lost(self, reason: Failure, side: Side) -> None:
        """One leg is gone: close the other and end the flow."""
        if self._closed:
            return
        self._closed = True
        other = self._server_transport if side is Side.CLIENT else self.transport
        if other is not None:
            other.loseConnection()
        self._end_flow(None if reason.check(net_error.ConnectionDone) else reason.getErrorMessage())

    def _end_flow(self, error: str | None) -> None:
        """Run C{tcp_end}, or C{tcp_error} with C{error}, and let go of the flow.

        The relay stays referenced from the tunnel's client-side protocol, which sits in a
        reference cycle: holding the flow past its end would keep it, with its messages,
        until the garbage collector's next full pass.
        """
        self._stored.release()
        flow, self.flow = self.flow, None
        if flow is None:
            return
        flow.live = False
        if error is None:
            self.context.addons.trigger(TcpEndHook(flow))
        else:
            flow.error = Error(error)
            self.context.addons.trigger(TcpErrorHook(flow))

    def _close_both(self) -> None:
        for transport in (self.transport, self._server_transport):
            if transport is not None:
                transport.abortConnection()

    def _transport(self, side: Side) -> ITransport:
        transport = self.transport if side is Side.CLIENT else self._server_transport
        assert transport is not None
        return transport

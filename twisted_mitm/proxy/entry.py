# -*- test-case-name: tests.test_modes -*-
"""Where connections to the modes that are not an HTTP proxy begin.

A regular or upstream listener speaks HTTP with the client from the first byte
(L{ClientSideProtocol}). The other modes first learn where the client wants to go — from
the mode itself (reverse), from the network (transparent), from a SOCKS5 handshake — and
then hand the connection to a L{Tunnel} to that target, which looks at the first bytes
as it does after a CONNECT: TLS is intercepted, HTTP becomes flows, anything else a TCP
flow. L{ModeEntry} is what they share: the client record and its hooks, the connection
opened eagerly to the target, and the hand-over.
"""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING

from twisted.internet import error as net_error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IHalfCloseableProtocol, IProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mitm.connection import Client
from twisted_mitm.mode_specs import ProxyMode, ReverseMode
from twisted_mitm.proxy.clientside import accept_client, inner_http_protocol, release_client
from twisted_mitm.proxy.handover import pass_read_eof
from twisted_mitm.proxy.serverside import ServerConnections
from twisted_mitm.proxy.tunnel import Tunnel, TunnelTarget

if TYPE_CHECKING:
    from twisted_mitm.proxy.context import ProxyContext


@implementer(IHalfCloseableProtocol)
class ModeEntry(Protocol):
    """The first protocol of a connection to a reverse, transparent or SOCKS5 listener.

    Subclasses find the target in L{begin} (and L{early_data}, for a handshake) and call
    L{open_tunnel}; from then on every byte goes to the tunnel.

    @ivar client: the client's connection record (C{flow.client_conn}).
    """

    _log = Logger()

    def __init__(self, context: ProxyContext, mode: ProxyMode) -> None:
        self.context = context
        self.mode = mode
        self.client: Client | None = None
        self._upstreams: ServerConnections | None = None
        self._inner: IProtocol | None = None
        self._gone = False

    def connectionMade(self) -> None:
        self.client, admitted = accept_client(self.context, self.transport, self.mode)
        self.transport.pauseProducing()
        admitted.addCallback(self._admitted)

    def _admitted(self, _: object) -> None:
        """A C{client_connected} hook may have refused the client (C{client.error})."""
        assert self.client is not None
        if self._gone:
            return
        if self.client.error is not None:
            self.transport.loseConnection()
            return
        self.transport.resumeProducing()
        self.begin()

    def begin(self) -> None:
        """The client is connected: find the target (or wait for a handshake)."""
        raise NotImplementedError

    def early_data(self, data: bytes) -> None:
        """Bytes that arrived before the tunnel was open (a handshake)."""
        raise NotImplementedError

    def connect_eagerly(self, host: str, port: int) -> Deferred[None]:
        """Connect to C{host:port} before the tunnel opens (C{connection_strategy=eager});
        fires at once under C{lazy}. Fails with a L{ProtocolError} saying why."""
        assert self.client is not None
        self._upstreams = ServerConnections(self.context, self.client, host)
        if not self.context.settings.connect_eagerly:
            return succeed(None)
        return self._upstreams.connect_eagerly(host, port)

    def open_tunnel(self, host: str, port: int, data: bytes = b"", upstream_scheme: bytes | None = None) -> None:
        """From now on the connection is a tunnel to C{host:port}; C{data} arrived for it already."""
        assert self.client is not None
        if self._upstreams is None:
            self._upstreams = ServerConnections(self.context, self.client, host)
        tunnel = Tunnel(self.context, self.client, (host, port), self._upstreams, self._inner_http, upstream_scheme)
        self._inner = tunnel
        tunnel.makeConnection(self.transport)
        if data:
            tunnel.dataReceived(data)

    def _inner_http(self, client: Client, target: TunnelTarget, alpn: bytes) -> IProtocol:
        assert self._upstreams is not None
        return inner_http_protocol(self.context, client, target, self._upstreams, alpn)

    def refuse(self, reason: str) -> None:
        """End the connection before a tunnel opened, with a log line."""
        self._log.info("{client} ({mode}): {reason}", client=_describe(self.client), mode=self.mode, reason=reason)
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.dataReceived(data)
        else:
            self.early_data(data)

    def readConnectionLost(self) -> None:
        pass_read_eof(self._inner, self.transport)

    def writeConnectionLost(self) -> None:
        """The inner protocol ends the connection when it is done."""

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        self._gone = True
        if self._inner is not None:
            self._inner.connectionLost(reason)
        if self._upstreams is not None:
            self._upstreams.close()
        if self.client is not None:
            release_client(self.context, self.client)


class ReverseEntry(ModeEntry):
    """A reverse proxy: every connection leads to the mode's server.

    Unlike mitmproxy, a server that cannot be reached when the client connects does not
    close the client's connection: requests then get a 502 saying why.
    """

    mode: ReverseMode

    def begin(self) -> None:
        self.transport.pauseProducing()
        connecting = self.connect_eagerly(self.mode.host, self.mode.port)
        connecting.addErrback(self._not_reachable_yet)
        connecting.addCallback(lambda _: self._open())

    def _not_reachable_yet(self, reason: Failure) -> None:
        self._log.info("{client} (reverse): {target} not reachable yet: {reason}", client=_describe(self.client), target=self.mode.full_spec, reason=reason.getErrorMessage())

    def _open(self) -> None:
        if self.transport.disconnecting:
            return
        self.open_tunnel(self.mode.host, self.mode.port, upstream_scheme=self.mode.scheme.encode())
        self.transport.resumeProducing()

    def early_data(self, data: bytes) -> None:
        """Not reached: reading is paused until the tunnel is open."""


class TransparentEntry(ModeEntry):
    """A connection the network redirected to the proxy (C{iptables ... REDIRECT}):
    its target is the connection's original destination."""

    def begin(self) -> None:
        try:
            host, port = original_destination(self.transport.getHandle())
        except OSError as error:
            self.refuse(f"no original destination for this connection ({error.strerror or error}); is it redirected by iptables?")
            return
        local = self.transport.getHost()
        if (host, port) == (local.host, local.port):
            self.refuse("the original destination is the proxy itself; connect through a redirect, not directly")
            return
        self.transport.pauseProducing()
        connecting = self.connect_eagerly(host, port)
        connecting.addCallbacks(lambda _: self._open(host, port), self._unreachable, errbackArgs=(host, port))

    def _open(self, host: str, port: int) -> None:
        if not self.transport.disconnecting:
            self.open_tunnel(host, port)
            self.transport.resumeProducing()

    def _unreachable(self, reason: Failure, host: str, port: int) -> None:
        self.refuse(f"{host}:{port}: {reason.getErrorMessage()}")

    def early_data(self, data: bytes) -> None:
        """Not reached: reading is paused until the tunnel is open."""


#: Linux's SO_ORIGINAL_DST (netfilter), for IPv4 and IPv6 sockets.
_SO_ORIGINAL_DST = 80


def original_destination(sock: socket.socket) -> tuple[str, int]:
    """Where a redirected connection was going before netfilter sent it here.

    @raise OSError: the connection was not redirected (or this is not Linux).
    """
    if sock.family == socket.AF_INET6:
        raw = sock.getsockopt(socket.IPPROTO_IPV6, _SO_ORIGINAL_DST, 28)
        port, address = struct.unpack_from("!H", raw, 2)[0], raw[8:24]
        return socket.inet_ntop(socket.AF_INET6, address), port
    raw = sock.getsockopt(socket.SOL_IP, _SO_ORIGINAL_DST, 16)
    port, address = struct.unpack_from("!H", raw, 2)[0], raw[4:8]
    return socket.inet_ntop(socket.AF_INET, address), port


def _describe(client: Client | None) -> str:
    if client is None:
        return "?"
    host, port = client.peername[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

# -*- test-case-name: tests.test_proxy -*-
"""The protocol that faces the client: requests, keep-alive, pipelining, CONNECT.

L{ClientSideProtocol} reads requests with L{http1.RequestReader} through a
L{ReaderPump} and starts one L{Exchange} per request, strictly one at a time, so
pipelined requests are answered in order. It owns the upstream connection it reuses
while the client keeps asking the same host. After a C{CONNECT} it turns into a
tunnel and hands the bytes to whatever the tunnel turns out to carry (see
L{twisted_mitm.proxy.tunnel}).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from twisted.internet import error as net_error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IHalfCloseableProtocol, IHandshakeListener, IProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mitm import http1
from twisted_mitm.connection import Client, Server
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.hooks import (
    ClientConnectedHook,
    ClientDisconnectedHook,
    HttpConnectHook,
    ServerConnectedHook,
    ServerConnectHook,
    ServerConnectionHookData,
    ServerDisconnectedHook,
)
from twisted_mitm.http import Headers, HTTPFlow, Request, Response
from twisted_mitm.proxy.exchange import Exchange, error_response
from twisted_mitm.proxy.framing import buffered_response
from twisted_mitm.proxy.pipe import BodySink, Hold, ReaderPump, tune_transport
from twisted_mitm.proxy.serverside import ServerSideProtocol, UpstreamKey, connect_upstream
from twisted_mitm.proxy.tls import log_client_tls_failure, upstream_creator
from twisted_mitm.proxy.tunnel import Tunnel

if TYPE_CHECKING:
    from twisted_mitm.proxy.context import ProxyContext


#: Where requests inside a CONNECT tunnel go: scheme, host, port.
TunnelTarget = tuple[bytes, str, int]


@implementer(IHalfCloseableProtocol, IHandshakeListener)
class ClientSideProtocol(Protocol):
    """One client connection, or the HTTP inside one of its CONNECT tunnels.

    @ivar client: the connection record scripts see as C{flow.client_conn}.
    @ivar tunnel_target: for the HTTP inside a tunnel, where its requests go; C{None}
        on the proxy's own port, where requests name their target in absolute form.
    @ivar pump: the request reader and its flow control.
    """

    _log = Logger()

    def __init__(self, context: ProxyContext, client: Client | None = None, tunnel_target: TunnelTarget | None = None) -> None:
        self.context = context
        self.client = client
        self.tunnel_target = tunnel_target
        self.pump = ReaderPump(http1.RequestReader(), self._event_received, self._protocol_error)
        self._exchange: Exchange | None = None
        self._body_sink: BodySink | None = None
        self._server: ServerSideProtocol | None = None
        self._tunnel: IProtocol | None = None
        self._closing = False
        self._timer: Any = None

    # Twisted callbacks.

    def connectionMade(self) -> None:
        self.pump.attach(self.transport)
        if self.client is None:
            peer, host = self.transport.getPeer(), self.transport.getHost()
            self.client = Client(peername=(peer.host, peer.port), sockname=(host.host, host.port))
            tune_transport(self.transport)
            self.pump.hold(Hold.ADMITTING)
            self.context.addons.trigger(ClientConnectedHook(self.client)).addCallback(self._admitted)
        self._wait_for_request()

    def _admitted(self, _: object) -> None:
        """As in mitmproxy, a C{client_connected} hook refuses the client by setting C{client.error}."""
        assert self.client is not None
        if self._closing:
            return
        if self.client.error is not None:
            self._closing = True
            self.transport.loseConnection()
        else:
            self.pump.release(Hold.ADMITTING)

    def dataReceived(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel.dataReceived(data)
            return
        self.pump.data_received(data)

    def readConnectionLost(self) -> None:
        if self._tunnel is not None:
            _half_close(self._tunnel)
            return
        self.pump.eof_received()

    def writeConnectionLost(self) -> None:
        """The client will read nothing more; the connection ends with its exchange."""
        self._closing = True

    def handshakeCompleted(self) -> None:
        """TLS with the client is up (inside an intercepted tunnel): record what was agreed."""
        assert self.client is not None
        connection = self.transport.getHandle()
        self.client.tls_established = True
        self.client.tls_version = connection.get_protocol_version_name()
        self.client.alpn = connection.get_alpn_proto_negotiated() or None

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        self._closing = True
        self._cancel_timer()
        self.pump.stop_watching()
        if self.tunnel_target is not None and self.tunnel_target[0] == b"https" and self.client is not None and not self.client.tls_established:
            ca_path = self.context.certstore.ca_cert_path if self.context.certstore else None
            log_client_tls_failure(_address(self.client), self.tunnel_target[1], reason, ca_path)
        if self._tunnel is not None:
            self._tunnel.connectionLost(reason)
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            exchange.client_gone()
        if self._server is not None:
            self._server.close()
        if self.tunnel_target is None and self.client is not None:
            self.client.timestamp_end = time.time()
            self._hook(ClientDisconnectedHook(self.client))

    # Used by the exchange.

    def write(self, data: bytes) -> None:
        """Send bytes to the client."""
        self.transport.write(data)

    def write_sequence(self, pieces: list[bytes]) -> None:
        """Send several pieces to the client without joining them."""
        self.transport.writeSequence(pieces)

    def abort(self) -> None:
        """Drop the client connection now (a response cannot be completed)."""
        self._closing = True
        self.transport.abortConnection()

    def read_request_body(self, sink: BodySink) -> None:
        """Send the body of the current request to C{sink} and start reading it.

        A client that then stops sending its body for C{connection_idle_timeout}
        seconds fails its exchange with a 408.
        """
        self._body_sink = sink
        framing = self.pump.reader.framing
        timeout = self.context.settings.idle_timeout
        if timeout is not None and framing is not None and framing.kind is not http1.FramingKind.NONE:
            self.pump.watch_silence(self.context.reactor, timeout, self._client_silent)
        self.pump.release(Hold.DECIDING)

    def _client_silent(self, timeout: float) -> None:
        if self._exchange is not None:
            self._exchange.client_silent(timeout)

    def exchange_done(self, exchange: Exchange, keep_alive: bool) -> None:
        """The exchange has answered the client: read the next request, or close."""
        if exchange is not self._exchange:
            return
        self._exchange = None
        self._body_sink = None
        self.pump.stop_watching()
        if keep_alive and not self._closing:
            self.pump.release(Hold.EXCHANGE)
            if self._exchange is None:
                self._wait_for_request()
        else:
            self._closing = True
            self.transport.loseConnection()

    def server_for(self, flow: HTTPFlow) -> Deferred[ServerSideProtocol]:
        """A connection to the flow's current upstream, reused when it is still good."""
        request = flow.request
        key: UpstreamKey = (request.data.scheme, request.host, request.port)
        current = self._server
        if current is not None and current.key == key and current.connected and current.reusable:
            return succeed(current)
        if current is not None:
            current.close()
            self._server = None
        server = Server(address=(request.host, request.port))
        if request.data.scheme == b"https":
            server.sni = self._upstream_sni(request.host)
        hook = self.context.addons.trigger(ServerConnectHook(ServerConnectionHookData(server, self.client)))
        return hook.addCallback(lambda _: self._open_upstream(key, server))

    def _upstream_sni(self, host: str) -> str:
        """The client's own SNI while the request still goes to the tunnel's host, else the host."""
        assert self.client is not None
        if self.tunnel_target is not None and host == self.tunnel_target[1] and self.client.sni:
            return self.client.sni
        return host

    def _open_upstream(self, key: UpstreamKey, server: Server) -> Deferred[ServerSideProtocol]:
        settings = self.context.settings
        tls_creator = None
        if server.sni is not None:
            tls_creator = upstream_creator(server.sni, verify=not settings.ssl_insecure, trusted_ca_path=settings.trusted_ca_path)
        connecting = connect_upstream(self.context.reactor, key, server, settings.connect_timeout, tls_creator)
        return connecting.addCallback(self._upstream_opened)

    def _upstream_opened(self, server: ServerSideProtocol) -> ServerSideProtocol:
        self._server = server
        data = ServerConnectionHookData(server.server, self.client)
        self._hook(ServerConnectedHook(data))
        server.lost.addCallback(lambda _: self._hook(ServerDisconnectedHook(data)))
        return server

    # Requests.

    def _event_received(self, event: object) -> None:
        if isinstance(event, http1.RequestHead):
            self._cancel_timer()
            self._request_head(event)
        elif isinstance(event, http1.Data):
            if self._body_sink is not None:
                self._body_sink.write(event)
        elif isinstance(event, http1.EndOfMessage):
            self.pump.stop_watching()
            self.pump.hold(Hold.EXCHANGE)
            sink, self._body_sink = self._body_sink, None
            if sink is not None:
                sink.finish(event.trailers)
        elif isinstance(event, http1.ConnectionClosed):
            self._closing = True
            if self._exchange is None:
                self.transport.loseConnection()

    def _request_head(self, head: http1.RequestHead) -> None:
        self.pump.hold(Hold.DECIDING)
        framing = self.pump.reader.framing
        assert framing is not None and self.client is not None
        try:
            request = self._make_request(head)
        except ProtocolError as error:
            self._refuse(error)
            return
        flow = HTTPFlow(self.client, Server(address=(request.host, request.port)), live=True)
        flow.request = request
        if head.method == b"CONNECT":
            self._connect_requested(flow)
            return
        self._exchange = Exchange(self.context, self, flow, framing)
        self._exchange.start()

    def _make_request(self, head: http1.RequestHead) -> Request:
        headers = Headers(head.headers)
        if head.method == b"CONNECT":
            if self.tunnel_target is not None:
                raise ProtocolError(400, "CONNECT inside a CONNECT tunnel is not supported")
            host, port = http1.parse_authority_form(head.target)
            return Request(host, port, b"CONNECT", b"", head.target, b"", head.http_version, headers, b"", None, time.time(), None)
        if head.target.startswith(b"/") or head.target == b"*":
            if self.tunnel_target is None:
                raise ProtocolError(400, "this is a proxy: request targets must be absolute URLs (http://host/path)")
            scheme, host, port = self.tunnel_target
            return Request(host, port, head.method, scheme, b"", head.target, head.http_version, headers, None, None, time.time(), None)
        scheme, host, port, path = http1.parse_absolute_form(head.target)
        authority = head.target.split(b"/", 3)[2]
        return Request(host, port, head.method, scheme, authority, path, head.http_version, headers, None, None, time.time(), None)

    def _protocol_error(self, error: ProtocolError) -> None:
        sink, self._body_sink = self._body_sink, None
        if sink is not None:
            sink.abort(Failure(error))
        elif self._exchange is not None:
            self._exchange.server_failed(error)
        else:
            self._refuse(error)

    def _refuse(self, error: ProtocolError) -> None:
        """Answer a request that never became a flow, and close."""
        self._log.info("{client}: {reason} ({status})", client=_address(self.client), reason=error.reason, status=error.status)
        self._answer_and_close(error_response(error.status, error.reason), b"HTTP/1.1")

    def _answer_and_close(self, response: Response, client_version: bytes) -> None:
        """Send a response made by the proxy or a hook, then close the connection."""
        headers, body = buffered_response(response, client_version, True)
        head = http1.assemble_response_head(response.data.http_version, response.status_code, response.data.reason, headers.fields)
        self.write_sequence([head, *body])
        self._closing = True
        self.transport.loseConnection()

    # CONNECT.

    def _connect_requested(self, flow: HTTPFlow) -> None:
        self._exchange = None
        triggered = self.context.addons.trigger(HttpConnectHook(flow))
        triggered.addCallback(lambda _: self._connect_answered(flow))

    def _connect_answered(self, flow: HTTPFlow) -> None:
        if self._closing:
            return
        if flow.error is not None:
            self.abort()
            return
        response = flow.response
        if response is not None and not 200 <= response.status_code < 300:
            self._answer_and_close(response, flow.request.data.http_version)
            return
        self.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.switch_protocols(Tunnel(self.context, self, flow))

    def switch_protocols(self, protocol: IProtocol, replay: bytes = b"", upstream: ServerSideProtocol | None = None) -> None:
        """Hand the connection to C{protocol}: it left HTTP/1 (CONNECT tunnel, WebSocket).

        C{protocol} gets C{replay}, then the bytes read past the last request, then all
        that follows. C{upstream}, if given, goes with it: this protocol no longer closes it.
        """
        if upstream is not None and upstream is self._server:
            self._server = None
        self._tunnel = protocol
        self.pump.hold(Hold.SWITCHED)
        self.pump.detach()
        data = replay + self.pump.reader.take_buffered()
        protocol.makeConnection(self.transport)
        if data:
            protocol.dataReceived(data)

    # Timeouts and hooks.

    def _wait_for_request(self) -> None:
        """Arm the timer that closes a connection idle, or slow to send its next head, too long."""
        timeout = self.context.settings.idle_timeout
        if self._timer is None and timeout is not None:
            self._timer = self.context.reactor.callLater(timeout, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self._exchange is not None or self._closing or self._tunnel is not None:
            return
        if self.pump.reader.pending:
            self._refuse(ProtocolError(408, "the request head did not arrive in time"))
        else:
            self._closing = True
            self.transport.loseConnection()

    def _hook(self, hook: object) -> None:
        self.context.addons.trigger(hook)


def _half_close(protocol: IProtocol) -> None:
    half_closeable = IHalfCloseableProtocol(protocol, None)
    if half_closeable is not None:
        half_closeable.readConnectionLost()
    else:
        protocol.connectionLost(Failure(net_error.ConnectionDone()))


def _address(client: Client | None) -> str:
    if client is None:
        return "?"
    host, port = client.peername[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ClientSideFactory(Factory):
    """Builds a L{ClientSideProtocol} for every accepted client connection."""

    noisy = False

    def __init__(self, context: ProxyContext) -> None:
        self.context = context

    def buildProtocol(self, addr: object) -> ClientSideProtocol:
        return ClientSideProtocol(self.context)

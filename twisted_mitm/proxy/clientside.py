# -*- test-case-name: tests.test_proxy -*-
"""The protocol that faces the client: requests, keep-alive, pipelining, CONNECT.

L{ClientSideProtocol} reads requests with L{http1.RequestReader} through a
L{ReaderPump} and starts one L{Exchange} per request, strictly one at a time, so
pipelined requests are answered in order; to each exchange it is the L{ClientStream}
(L{twisted_mitm.proxy.streams}), and its L{ServerConnections} give the exchange its
upstream. After a C{CONNECT} it turns into a tunnel and hands the bytes to whatever
the tunnel turns out to carry (see L{twisted_mitm.proxy.tunnel}).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet import error as net_error
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IHandshakeListener,
    IProtocol,
    IReactorTime,
    ISSLTransport,
    ITransport,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mitm import http1
from twisted_mitm.connection import Client, Server
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.flow import Error
from twisted_mitm.hooks import (
    ClientConnectedHook,
    ClientDisconnectedHook,
    ErrorHook,
    HttpConnectHook,
    TlsEstablishedClientHook,
    TlsFailedClientHook,
)
from twisted_mitm.http import Headers, HTTPFlow, Request, Response
from twisted_mitm.mode_specs import ProxyMode, RegularMode, ReverseMode
from twisted_mitm.proxy import framing
from twisted_mitm.http2 import ALPN_H2
from twisted_mitm.proxy.exchange import Exchange, error_response
from twisted_mitm.proxy.h2clientside import H2ClientSideProtocol
from twisted_mitm.proxy.framing import buffered_response
from twisted_mitm.proxy.pipe import BodySink, BodyWriter, Fields, Hold, PacedWriter, PumpSource, ReaderPump, tune_transport
from twisted_mitm.proxy.serverside import ServerConnections
from twisted_mitm.proxy.tls import describe_tls_failure, log_client_tls_failure, record_handshake
from twisted_mitm.proxy.tunnel import Tunnel, TunnelTarget
from twisted_mitm.tls import TlsData

if TYPE_CHECKING:
    from OpenSSL import SSL

    from twisted_mitm.proxy.context import ProxyContext
    from twisted_mitm.proxy.streams import Upstream


#: The mode of a plain HTTP proxy listener.
REGULAR = RegularMode("regular")


@implementer(IHalfCloseableProtocol, IHandshakeListener)
class ClientSideProtocol(PumpSource, Protocol):
    """One client connection, or the HTTP inside one of its CONNECT tunnels.

    @ivar client: the connection record scripts see as C{flow.client_conn}.
    @ivar tunnel_target: for the HTTP inside a tunnel, where its requests go; C{None}
        on the proxy's own port, where requests name their target in absolute form.
    @ivar pump: the request reader and its flow control.
    """

    _log = Logger()

    def __init__(
        self,
        context: ProxyContext,
        client: Client | None = None,
        tunnel_target: TunnelTarget | None = None,
        upstreams: ServerConnections | None = None,
        mode: ProxyMode = REGULAR,
    ) -> None:
        self.context = context
        self.mode = mode
        self.client = client
        self.tunnel_target = tunnel_target
        self.pump = ReaderPump(http1.RequestReader(), self._event_received, self._protocol_error)
        self._exchange: Exchange | None = None
        self._body_sink: BodySink | None = None
        self._upstreams = upstreams
        self._tunnel: IProtocol | None = None
        self._closing = False
        self._idle_timer: IDelayedCall | None = None
        self._head_timer: IDelayedCall | None = None
        #: a CONNECT whose http_connect hook is running
        self._connect_flow: HTTPFlow | None = None

    # Twisted callbacks.

    def connectionMade(self) -> None:
        self.pump.attach(self.transport)
        if self.client is None:
            self.client, admitted = accept_client(self.context, self.transport, self.mode)
            self.pump.hold(Hold.ADMITTING)
            admitted.addCallback(self._admitted)
        if self._upstreams is None:
            self._upstreams = ServerConnections(self.context, self.client)
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
        if self._waiting_for_head() and self.pump.reader.pending:
            self._start_head_deadline()

    def readConnectionLost(self) -> None:
        """The client closed its side. Between requests that ends the connection; in the
        middle of one, the client has gone away (as nginx and mitmproxy see it): its
        exchange is abandoned and both connections close at once."""
        if self._tunnel is not None:
            _half_close(self._tunnel)
            return
        self.pump.eof_received()
        if self.pump.holds and not self._closing:
            self.abort()

    def writeConnectionLost(self) -> None:
        """The client will read nothing more; the connection ends with its exchange."""
        self._closing = True

    def handshakeCompleted(self) -> None:
        """TLS with the client is up (inside an intercepted tunnel): record what was agreed."""
        assert self.client is not None
        connection = self.transport.getHandle()
        record_handshake(self.client, connection)
        self._hook(TlsEstablishedClientHook(self._tls_data(connection)))

    def _tls_data(self, connection: SSL.Connection | None) -> TlsData:
        """What the client's C{tls_*} hooks get about this tunnel's TLS."""
        assert self.client is not None and self.tunnel_target is not None
        _, host, port = self.tunnel_target
        context = self.context.connection_context(self.client, Server(address=(host, port)))
        return TlsData(self.client, context, connection)

    def _tls_failed(self, reason: Failure) -> None:
        """TLS with the client did not complete: log why, and run C{tls_failed_client}."""
        assert self.client is not None and self.tunnel_target is not None
        ca_path = self.context.certstore.ca_cert_path if self.context.certstore else None
        log_client_tls_failure(_address(self.client), self.tunnel_target[1], reason, ca_path)
        self.client.error = describe_tls_failure(reason)
        self._hook(TlsFailedClientHook(self._tls_data(self.transport.getHandle())))

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        self._closing = True
        self._idle_timer = _cancel(self._idle_timer)
        self._head_timer = _cancel(self._head_timer)
        self.pump.stop_watching()
        if ISSLTransport.providedBy(self.transport) and self.client is not None and not self.client.tls_established:
            self._tls_failed(reason)
        if self._tunnel is not None:
            self._tunnel.connectionLost(reason)
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            exchange.client_gone()
        if self._upstreams is not None:
            self._upstreams.close()
        if self.tunnel_target is None and self.client is not None:
            release_client(self.context, self.client)

    # The ClientStream an exchange sees (twisted_mitm.proxy.streams); its body source is PumpSource.

    def write(self, data: bytes) -> None:
        """Send bytes to the client."""
        self.transport.write(data)

    def write_sequence(self, pieces: list[bytes]) -> None:
        """Send several pieces to the client without joining them."""
        self.transport.writeSequence(pieces)

    def send_interim(self, status_code: int, reason: bytes, headers: Fields) -> None:
        """Send an informational (1xx) response."""
        self.write(http1.assemble_response_head(b"HTTP/1.1", status_code, reason, headers))

    def send_whole_response(self, request: Request, response: Response, has_body: bool, done: Callable[[], None]) -> None:
        """Send a response held in memory with an exact length; C{done()} once handed over."""
        headers, body = buffered_response(response, request.data.http_version, has_body)
        PacedWriter.write(self.transport, [framing.response_head(response, headers), *body], done)

    def start_response(
        self, request: Request, response: Response, source: http1.BodyFraming | None, transformed: bool
    ) -> tuple[BodyWriter, bool]:
        """Send the head of a streamed response; the writer frames its body (see L{framing.streamed_response})."""
        headers, make_writer, close = framing.streamed_response(response.headers, source, transformed, request.data.http_version)
        self.write(framing.response_head(response, headers))
        return framing.MessageTrailers(make_writer(self.transport), response), close or framing.closes(headers)

    def abort(self) -> None:
        """Drop the client connection now (a response cannot be completed)."""
        self._closing = True
        self.transport.abortConnection()

    def read_body(self, sink: BodySink) -> None:
        """Send the body of the current request to C{sink} and start reading it.

        A client that then stops sending its body for C{connection_idle_timeout}
        seconds fails its exchange with a 408.
        """
        self._body_sink = sink
        timeout = self.context.settings.idle_timeout
        if timeout is not None and self.framing is not None and self.framing.kind is not http1.FramingKind.NONE:
            self.pump.watch_silence(self.context.reactor, timeout, self._client_silent)
        self.pump.release(Hold.DECIDING)

    def _client_silent(self, timeout: float) -> None:
        if self._exchange is not None:
            self._exchange.client_silent(timeout)

    def exchange_done(self, exchange: object, keep_alive: bool) -> None:
        """The exchange has answered the client: read the next request, or close."""
        if exchange is not self._exchange:
            return
        self._exchange = None
        unread_body, self._body_sink = self._body_sink is not None, None
        self.pump.stop_watching()
        if keep_alive and not self._closing:
            self.pump.release(Hold.EXCHANGE)
            if self._exchange is None:
                self._wait_for_request()
        elif unread_body and not self._closing:
            self.switch_protocols(_Drain(self.context.reactor))
        else:
            self._closing = True
            self.transport.loseConnection()

    # Requests.

    def _event_received(self, event: object) -> None:
        if isinstance(event, http1.RequestHead):
            self._idle_timer = _cancel(self._idle_timer)
            self._head_timer = _cancel(self._head_timer)
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
        assert self.client is not None
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
        assert self._upstreams is not None
        self._exchange = Exchange(self.context, self, self._upstreams, flow)
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
            request = Request(host, port, head.method, scheme, b"", head.target, head.http_version, headers, None, None, time.time(), None)
            if isinstance(self.client.proxy_mode, ReverseMode) and not self.context.settings.keep_host_header:
                request.host_header = http1.hostport(scheme, host, port)
            return request
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
        self.write_sequence([framing.response_head(response, headers), *body])
        self._closing = True
        self.transport.loseConnection()

    # CONNECT.

    def _connect_requested(self, flow: HTTPFlow) -> None:
        self._exchange = None
        self._connect_flow = flow
        triggered = self.context.addons.trigger(HttpConnectHook(flow))
        triggered.addCallback(lambda _: self._connect_answered(flow))

    def _connect_answered(self, flow: HTTPFlow) -> None:
        self._connect_flow = None
        if self._closing:
            return
        if flow.error is not None:
            self.abort()
            return
        response = flow.response
        if response is not None and not 200 <= response.status_code < 300:
            self._answer_and_close(response, flow.request.data.http_version)
            return
        assert self.client is not None and self._upstreams is not None
        self._upstreams.close()
        self._upstreams = ServerConnections(self.context, self.client, flow.request.host)
        if self.context.settings.connect_eagerly:
            connecting = self._upstreams.connect_eagerly(flow.request.host, flow.request.port)
            connecting.addCallbacks(lambda _: self._open_tunnel(flow), self._tunnel_failed, errbackArgs=(flow,))
        else:
            self._open_tunnel(flow)

    def _open_tunnel(self, flow: HTTPFlow) -> None:
        if self._closing:
            return
        assert self.client is not None and self._upstreams is not None
        self.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        upstreams = self._upstreams
        target = (flow.request.host, flow.request.port)
        self.switch_protocols(Tunnel(self.context, self.client, target, upstreams, self._inner_http))

    def _tunnel_failed(self, reason: Failure, flow: HTTPFlow) -> None:
        """The CONNECT target cannot be reached: say why (mitmproxy's eager strategy)."""
        error = reason.value if isinstance(reason.value, ProtocolError) else ProtocolError(502, reason.getErrorMessage())
        flow.error = Error(error.reason)
        self._hook(ErrorHook(flow))
        if not self._closing:
            self._log.info("{client}: CONNECT {host}:{port}: {reason}", client=_address(self.client), host=flow.request.host, port=flow.request.port, reason=error.reason)
            self._answer_and_close(error_response(error.status, error.reason), flow.request.data.http_version)

    def _inner_http(self, client: Client, target: TunnelTarget, alpn: bytes) -> IProtocol:
        """The protocol for HTTP inside one of this connection's tunnels: its upstream
        connections are the tunnel's, starting with the one opened for the CONNECT."""
        assert self._upstreams is not None
        return inner_http_protocol(self.context, client, target, self._upstreams, alpn)

    def switch_protocols(self, protocol: IProtocol, replay: bytes = b"", upstream: Upstream | None = None) -> None:
        """Hand the connection to C{protocol}: it left HTTP/1 (CONNECT tunnel, WebSocket).

        C{protocol} gets C{replay}, then the bytes read past the last request, then all
        that follows. C{upstream}, if given, goes with it: this protocol no longer closes it.
        """
        if upstream is not None and self._upstreams is not None:
            self._upstreams.hand_over(upstream)
        self._tunnel = protocol
        self.pump.hold(Hold.SWITCHED)
        self.pump.detach()
        data = replay + self.pump.reader.take_buffered()
        protocol.makeConnection(self.transport)
        if data:
            protocol.dataReceived(data)

    # Timeouts and hooks.

    def _waiting_for_head(self) -> bool:
        """Whether the connection waits for the client's next request head."""
        return self._exchange is None and self._connect_flow is None and self._tunnel is None and not self._closing

    def _wait_for_request(self) -> None:
        """Arm the timer that closes a connection idle too long; the head deadline if a head has begun."""
        timeout = self.context.settings.idle_timeout
        if self._idle_timer is None and timeout is not None:
            self._idle_timer = self.context.reactor.callLater(timeout, self._idle_timed_out)
        if self.pump.reader.pending:
            self._start_head_deadline()

    def _start_head_deadline(self) -> None:
        """A request head has begun: it must be complete within C{request_head_timeout},
        however its bytes trickle in."""
        timeout = self.context.settings.head_timeout
        if self._head_timer is None and timeout is not None:
            self._head_timer = self.context.reactor.callLater(timeout, self._head_timed_out, timeout)

    def _head_timed_out(self, timeout: float) -> None:
        self._head_timer = None
        if self._waiting_for_head():
            self._refuse(ProtocolError(408, f"the request head did not arrive within {timeout:g} seconds"))

    def _idle_timed_out(self) -> None:
        self._idle_timer = None
        if not self._waiting_for_head():
            return
        if self.pump.reader.pending:
            self._refuse(ProtocolError(408, "the request head did not arrive in time"))
        else:
            self._closing = True
            self.transport.loseConnection()

    def _hook(self, hook: object) -> None:
        self.context.addons.trigger(hook)


@implementer(IHalfCloseableProtocol)
class _Drain(Protocol):
    """Ends a connection whose response went out before the request body was read whole.

    Closing at once would leave the rest of the upload unread in our socket, and the
    kernel answers unread data with a reset that can destroy the response before the
    client has read it. So this stops writing (a FIN after the response), reads and
    drops what the client still sends, and closes when the client does, or after
    L{seconds} at the most (nginx's lingering close).
    """

    seconds = 1.0

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self._timer = self._clock.callLater(self.seconds, self.transport.abortConnection)
        close_writing = getattr(self.transport, "loseWriteConnection", None)
        if close_writing is None:  # TLS: no half-close; close after the response
            self.transport.loseConnection()
        else:
            close_writing()

    def dataReceived(self, data: bytes) -> None:
        """Dropped: the request has been answered."""

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """Our FIN went out; wait for the client's."""

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        self._timer = _cancel(self._timer)


def inner_http_protocol(
    context: ProxyContext, client: Client, target: TunnelTarget, upstreams: ServerConnections, alpn: bytes
) -> IProtocol:
    """The protocol for the HTTP inside a tunnel to C{target}: HTTP/2 if ALPN agreed on it."""
    if alpn == ALPN_H2:
        return H2ClientSideProtocol(context, client, target, upstreams)
    return ClientSideProtocol(context, client, target, upstreams)


def accept_client(context: ProxyContext, transport: ITransport, mode: ProxyMode) -> tuple[Client, Deferred[None]]:
    """The record of a client that just connected to a listener in C{mode}, and the
    C{client_connected} hooks' Deferred: nothing may be read before it fires, and a hook
    refuses the client by setting C{client.error} (mitmproxy's way)."""
    peer, host = transport.getPeer(), transport.getHost()
    client = Client(peername=(peer.host, peer.port), sockname=(host.host, host.port), proxy_mode=mode)
    tune_transport(transport)
    return client, context.addons.trigger(ClientConnectedHook(client))


def release_client(context: ProxyContext, client: Client) -> None:
    """The client's connection is gone: C{client_disconnected} runs."""
    client.timestamp_end = time.time()
    context.addons.trigger(ClientDisconnectedHook(client))


def _cancel(call: IDelayedCall | None) -> None:
    """Cancel C{call} if it is still pending; returns C{None} to clear the caller's reference."""
    if call is not None and call.active():
        call.cancel()
    return None


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

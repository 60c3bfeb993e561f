# -*- test-case-name: tests.test_proxy_errors -*-
"""The protocol that faces the origin server, and how connections to it are opened.

L{ServerSideProtocol} writes request heads and bodies and parses responses with
L{http1.ResponseReader} through a L{ReaderPump}; it hands what it reads to the
L{ResponseReceiver} that sent the request (an exchange). L{connect_upstream} opens a
plain or TLS connection and fires once the connection can carry a request (after the TLS
handshake for HTTPS), translating the failures users meet into L{ProtocolError}s
with a readable reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Union

from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IHandshakeListener,
    IProtocol,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mitm import http1
from twisted_mitm.connection import Client, Server
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.http import Headers
from twisted_mitm.hooks import (
    ServerConnectedHook,
    ServerConnectHook,
    ServerConnectionHookData,
    ServerDisconnectedHook,
    TlsEstablishedServerHook,
    TlsFailedServerHook,
    TlsStartServerHook,
)
from twisted_mitm.http2 import ALPN_H2
from twisted_mitm.mode_specs import UpstreamMode
from twisted_mitm.proxy import framing
from twisted_mitm.proxy.h2serverside import H2ServerSideProtocol
from twisted_mitm.proxy.handover import Handover
from twisted_mitm.proxy.pipe import BodySink, BodyWriter, Fields, Hold, PacedWriter, PumpSource, ReaderPump, tune_transport
from twisted_mitm.proxy.tls import HTTP11, PreparedConnection, describe_tls_failure, record_handshake, upstream_creator
from twisted_mitm.proxy.upstreamproxy import ProxyConnectEndpoint, basic_credentials
from twisted_mitm.tls import TlsData

if TYPE_CHECKING:
    from twisted_mitm.http import HTTPFlow, Request
    from twisted_mitm.proxy.context import ProxyContext
    from twisted_mitm.proxy.streams import ResponseReceiver


#: The scheme part of the key of connections to an upstream proxy (absolute-form requests).
_VIA_PROXY = b"via-proxy"

#: Where an upstream connection goes: scheme (C{b"http"} or C{b"https"}), host, port.
UpstreamKey = tuple[bytes, str, int]


@implementer(IHandshakeListener)
class ServerSideProtocol(PumpSource, Protocol):
    """One connection to an origin server, carrying one exchange at a time.

    @ivar receiver: the exchange waiting for a response on this connection, if any.
    @ivar body_sink: where the body of the response being read goes.
    @ivar reusable: C{False} once this connection cannot carry another request.
    @ivar requests_sent: how many requests this connection has carried (more than one: reused).
    @ivar ready: fires when requests can be written (after TLS if any), or fails.
    @ivar lost: fires when the connection is gone.
    """

    _log = Logger()

    def __init__(self, key: UpstreamKey, server: Server, reactor: IReactorTime, tls: bool) -> None:
        self.key = key
        self.server = server
        self.receiver: ResponseReceiver | None = None
        self.body_sink: BodySink | None = None
        self.reusable = True
        self.requests_sent = 0
        self.connected = False
        self.ready: Deferred[ServerSideProtocol] = Deferred()
        self.lost: Deferred[None] = Deferred()
        self._reactor = reactor
        self.tls = tls
        self._absolute_form = False
        self._proxy_authorization: bytes | None = None
        self._interim = False
        self._switched: IProtocol | None = None
        self.pump = ReaderPump(http1.ResponseReader(), self._event_received, self._protocol_error)
        self.pump.on_stop = self.abort

    # Twisted callbacks.

    def connectionMade(self) -> None:
        self.connected = True
        self.server.timestamp_tcp_setup = time.time()
        peer = self.transport.getPeer()
        self.server.peername = (peer.host, peer.port)
        host = self.transport.getHost()
        self.server.sockname = (host.host, host.port)
        tune_transport(self.transport)
        self.pump.attach(self.transport)
        if not self.tls:
            self.ready.callback(self)

    def handshakeCompleted(self) -> None:
        record_handshake(self.server, self.transport.getHandle())
        self.ready.callback(self)

    def dataReceived(self, data: bytes) -> None:
        if self._switched is not None:
            self._switched.dataReceived(data)
            return
        self.pump.data_received(data)

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        self.connected = False
        self.reusable = False
        self.pump.stop_watching()
        self.server.timestamp_end = time.time()
        if not self.ready.called:
            self.ready.errback(reason)
        else:
            # The reader decides what the end means (a complete read-until-close body, a
            # truncated one, no response at all) once the pump gets to the bytes still
            # buffered: a response that is complete is never failed for a prompt close.
            self.pump.eof_received()
        if self._switched is not None:
            self._switched.connectionLost(reason)
        self.lost.callback(None)

    @property
    def available(self) -> bool:
        """Whether this connection can carry a new exchange now (HTTP/1: one at a time)."""
        return self.connected and self.reusable and self.receiver is None and self._switched is None

    def next_upstream(self) -> Deferred[ServerSideProtocol]:
        """This connection, as the upstream of the next exchange."""
        return succeed(self)

    # The Upstream an exchange sees (twisted_mitm.proxy.streams); its body source is PumpSource.

    def send_whole_request(self, request: Request, headers: Headers, receiver: ResponseReceiver, done: Callable[[], None]) -> None:
        """Send a request held in memory with an exact length, and expect its response."""
        headers, body = framing.buffered_request(request, headers)
        self._send_head(request, headers, receiver)
        PacedWriter.write(self.transport, body, done)

    def start_request(self, request: Request, source: http1.BodyFraming, transformed: bool, receiver: ResponseReceiver) -> BodyWriter:
        """Send the head of a streamed request; the writer frames its body (see L{framing.streamed_request})."""
        headers, make_writer = framing.streamed_request(request, source, transformed)
        self._send_head(request, headers, receiver)
        return framing.MessageTrailers(make_writer(self.transport), request)

    def via_proxy(self, proxy_authorization: bytes | None) -> None:
        """This connection leads to an upstream HTTP proxy: requests go in absolute form,
        with C{proxy_authorization} as their C{Proxy-Authorization} if given."""
        self._absolute_form = True
        self._proxy_authorization = proxy_authorization

    def _send_head(self, request: Request, headers: Headers, receiver: ResponseReceiver) -> None:
        if self._absolute_form:
            if self._proxy_authorization is not None:
                headers = Headers([*headers.fields, (b"Proxy-Authorization", self._proxy_authorization)])
            head = framing.request_head(request, headers, absolute_form=True)
        else:
            head = framing.request_head(request, headers)
        self.receiver = receiver
        self.requests_sent += 1
        self.pump.reader.expect_response(request.data.method)
        self.transport.write(head)

    def watch_silence(self, timeout: float, on_silence: Callable[[float], None]) -> None:
        """Call C{on_silence(timeout)} if the server sends nothing for C{timeout} seconds.

        Watching ends with L{release} or the connection; see L{ReaderPump.watch_silence}.
        """
        self.pump.watch_silence(self._reactor, timeout, on_silence)

    def read_body(self, sink: BodySink) -> None:
        """Send the body of the response just announced to C{sink}."""
        self.body_sink = sink
        self.pump.release(Hold.DECIDING)

    def release(self) -> None:
        """The exchange is over: this connection may serve the next request, or close."""
        self.receiver = None
        self.body_sink = None
        self.pump.stop_watching()
        if self.reusable:
            self.pump.release(Hold.EXCHANGE)
        else:
            self.close()

    def switch_to(self, protocol: IProtocol, head: bytes) -> None:
        """Hand the connection to C{protocol}, which is already connected (it left HTTP/1 after
        a 101): it gets C{head}, the bytes read past it, then everything that follows."""
        self.reusable = False
        self._switched = protocol
        self.pump.hold(Hold.SWITCHED)
        self.pump.stop_watching()
        self.pump.detach()
        protocol.dataReceived(head + self.pump.reader.take_buffered())

    def close(self) -> None:
        """Close cleanly (after pending writes)."""
        self.reusable = False
        if self.transport is not None:
            self.transport.loseConnection()

    def abort(self) -> None:
        """Drop the connection now; used when a stream must not look complete."""
        self.reusable = False
        if self.transport is not None:
            self.transport.abortConnection()

    # Events from the reader.

    def _event_received(self, event: object) -> None:
        if isinstance(event, http1.ResponseHead):
            self._interim = 100 <= event.status_code < 200 and event.status_code != 101
            if not self._interim:
                self.pump.hold(Hold.DECIDING)
                self.reusable = self.reusable and http1.keeps_alive(event.http_version, event.headers)
            if self.receiver is not None:
                self.receiver.response_head(event)
        elif isinstance(event, http1.Data):
            if self.body_sink is not None:
                self.body_sink.write(event)
        elif isinstance(event, http1.EndOfMessage):
            if self._interim:
                self._interim = False
                return
            self._end_of_response(event.trailers)
        elif isinstance(event, http1.ConnectionClosed):
            self.reusable = False

    def _end_of_response(self, trailers: Fields) -> None:
        if self.pump.reader.framing is not None and self.pump.reader.framing.kind is http1.FramingKind.UNTIL_CLOSE:
            self.reusable = False
        sink, receiver = self.body_sink, self.receiver
        self.pump.hold(Hold.EXCHANGE)
        # Release this connection before the sink ends the exchange: finishing may start
        # the client's next request on it, which must not be released with this one.
        if receiver is not None:
            receiver.response_complete()
        if sink is not None:
            sink.finish(trailers)

    def _protocol_error(self, error: ProtocolError) -> None:
        self.reusable = False
        self._fail_receiver(error)
        if self.transport is not None:
            self.transport.abortConnection()

    def _fail_receiver(self, error: ProtocolError) -> None:
        sink, receiver = self.body_sink, self.receiver
        self.body_sink = self.receiver = None
        if sink is not None:
            sink.abort(Failure(error))
        if receiver is not None:
            receiver.server_failed(error)


class ParkedConnection(Handover):
    """A connection to the server opened before anyone needs it (C{connection_strategy=eager}).

    It reads nothing while it waits (a server that speaks first, say SMTP, has its
    greeting kept for later), and hands itself over whole to the protocol that
    L{adopt}s it: a TCP relay, an HTTP upstream, or TLS with an HTTP upstream inside.

    @ivar server: the connection record the C{server_connect} hook saw.
    @ivar target: the C{(host, port)} the client asked for, before any hook changed it.
    @ivar lost: fires when the connection is gone.
    """

    def __init__(self, server: Server, target: tuple[str, int]) -> None:
        self.server = server
        self.target = target
        self.lost: Deferred[None] = Deferred()
        self._early: list[bytes] = []
        self._gone: Failure | None = None

    def connectionMade(self) -> None:
        self.server.timestamp_tcp_setup = time.time()
        peer, host = self.transport.getPeer(), self.transport.getHost()
        self.server.peername = (peer.host, peer.port)
        self.server.sockname = (host.host, host.port)
        self.transport.pauseProducing()

    def adopt(self, protocol: IProtocol) -> None:
        """Give the connection to C{protocol}: it is connected now, then gets what arrived meanwhile."""
        early, self._early = b"".join(self._early), []
        self.hand_over(protocol, early, self._gone)
        if self._gone is None:
            self.transport.resumeProducing()

    def received_before(self, data: bytes) -> None:
        self._early.append(data)

    def lost_before(self, reason: Failure) -> None:
        self._gone = reason

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        self.server.timestamp_end = time.time()
        super().connectionLost(reason)
        self.lost.callback(None)


@implementer(IHandshakeListener)
class NegotiatedProtocol(Protocol):
    """A TLS connection to the server that becomes HTTP/2 or HTTP/1 as ALPN decides.

    C{h2} was offered; once the handshake is done, the protocol for what the server
    chose is connected to the transport and gets everything read from then on.

    @ivar ready: fires with that protocol once it can carry requests, or fails.
    """

    #: always TLS: ALPN decides what runs inside
    tls = True

    def __init__(self, key: UpstreamKey, server: Server, reactor: IReactorTime) -> None:
        self.key = key
        self.server = server
        self.ready: Deferred[UpstreamConnection] = Deferred()
        self._reactor = reactor
        self._chosen: UpstreamConnection | None = None

    def connectionMade(self) -> None:
        self.server.timestamp_tcp_setup = time.time()

    def handshakeCompleted(self) -> None:
        record_handshake(self.server, self.transport.getHandle())
        alpn = self.server.alpn
        chosen: UpstreamConnection
        if alpn == ALPN_H2:
            chosen = H2ServerSideProtocol(self.key, self.server, self._reactor)
        else:
            chosen = ServerSideProtocol(self.key, self.server, self._reactor, tls=True)
        self._chosen = chosen
        chosen.ready.chainDeferred(self.ready)
        chosen.makeConnection(self.transport)
        if isinstance(chosen, ServerSideProtocol):
            chosen.handshakeCompleted()

    def dataReceived(self, data: bytes) -> None:
        if self._chosen is not None:
            self._chosen.dataReceived(data)

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        if self._chosen is not None:
            self._chosen.connectionLost(reason)
        elif not self.ready.called:
            self.ready.errback(reason)

    def abort(self) -> None:
        """Drop the connection now (connecting took too long)."""
        if self.transport is not None:
            self.transport.abortConnection()


#: An open upstream connection of either HTTP version.
UpstreamConnection = Union[ServerSideProtocol, H2ServerSideProtocol]


class ServerConnections:
    """The upstream connections of one client connection: opened, reused, closed.

    A connection is kept and reused while the client's requests go to the same place
    (an HTTP/1 connection carries one exchange at a time, an HTTP/2 one many); moving to
    another place closes the idle connections to the old one. A new connection runs the
    C{server_connect} hook first: a script may change C{data.server.address} to connect
    elsewhere, or set C{data.server.error} to refuse the connection (the client gets a
    502 saying so), as in mitmproxy.

    In upstream mode (C{client.proxy_mode} is C{upstream:URL}) every connection goes
    through that proxy: plain HTTP requests from the proxy port are sent to it in absolute
    form over kept connections; anything else reaches its server through the proxy's
    C{CONNECT} (L{ProxyConnectEndpoint}).

    @ivar offer_h2: offer C{h2} by ALPN to TLS servers (the client speaks HTTP/2 too).
    """

    def __init__(self, context: ProxyContext, client: Client, tunnel_host: str | None = None) -> None:
        self._context = context
        self._client = client
        self._tunnel_host = tunnel_host
        self._via = client.proxy_mode if isinstance(client.proxy_mode, UpstreamMode) else None
        self._kept: list[UpstreamConnection] = []
        self._parked: ParkedConnection | None = None
        self._closed = False
        self.offer_h2 = False
        self._alpn_offers: tuple[bytes, ...] = (ALPN_H2, HTTP11)

    def endpoint_to(self, host: str, port: int) -> IStreamClientEndpoint:
        """A TCP endpoint for C{host:port}: direct, or through the upstream proxy's C{CONNECT}."""
        timeout = self._context.settings.connect_timeout
        if self._via is None:
            return tcp_endpoint(self._context.reactor, host, port, timeout)
        return ProxyConnectEndpoint(self._proxy_endpoint(), self._via.url, host, port, self._context.settings.upstream_auth)

    def _proxy_endpoint(self) -> IStreamClientEndpoint:
        """An endpoint for the upstream proxy itself (TLS to it for an https:// proxy)."""
        assert self._via is not None
        reactor, settings = self._context.reactor, self._context.settings
        endpoint = tcp_endpoint(reactor, self._via.host, self._via.port, settings.connect_timeout)
        if self._via.scheme == "https":
            creator = upstream_creator(self._via.host, verify=not settings.ssl_insecure, trusted_ca_path=settings.trusted_ca_path)
            endpoint = wrapClientTLS(creator, endpoint, clock=reactor)
        return endpoint

    def connect_eagerly(self, host: str, port: int) -> Deferred[None]:
        """Open a connection to C{host:port} now, before anything asks for it (a CONNECT
        answered only once its target is reachable); fails with a L{ProtocolError}."""
        server = Server(address=(host, port))
        hook = self._context.addons.trigger(ServerConnectHook(ServerConnectionHookData(server, self._client)))
        return hook.addCallback(lambda _: self._park(server, (host, port)))

    def _park(self, server: Server, target: tuple[str, int]) -> Deferred[None]:
        _check_connectable(server)
        assert server.address is not None
        host, port = server.address
        timeout = self._context.settings.connect_timeout
        parked = ParkedConnection(server, target)
        server.timestamp_start = time.time()
        connecting = _bounded(self.endpoint_to(host, port).connect(_OneShotFactory(parked)), self._context.reactor, timeout, lambda: None)
        connecting.addErrback(_connect_failure, host, port, False)
        return connecting.addCallback(self._parked_opened)

    def _parked_opened(self, parked: ParkedConnection) -> None:
        self._announce(parked.server, parked.lost)
        if self._closed:
            parked.transport.loseConnection()
        else:
            self._parked = parked

    def take_parked(self) -> ParkedConnection | None:
        """The connection L{connect_eagerly} opened, for a relay to adopt; C{None} if there is none."""
        parked, self._parked = self._parked, None
        return parked

    def for_flow(self, flow: HTTPFlow) -> Deferred[Any]:
        """An upstream for the flow's current target: a kept connection (or a new stream
        on it) when one is free, else a new connection."""
        request = flow.request
        key: UpstreamKey = (request.data.scheme, request.host, request.port)
        if self._via is not None and self._tunnel_host is None and request.data.scheme == b"http":
            key = (_VIA_PROXY, *self._via.address)
        self._kept = [connection for connection in self._kept if connection.connected]
        for connection in self._kept:
            if connection.key == key and connection.available:
                return connection.next_upstream()
        self._drop_idle_except(key)
        return self._connect(key).addCallback(lambda connection: connection.next_upstream())

    def negotiate(self, host: str, port: int, offers: tuple[bytes, ...]) -> Deferred[bytes | None]:
        """Connect to the tunnel's server with TLS now, offering the client's C{offers} by ALPN;
        fires with what the server chose, so the client can be offered the same."""
        self.offer_h2 = ALPN_H2 in offers
        self._alpn_offers = offers
        connecting = self._connect((b"https", host, port))
        return connecting.addCallback(lambda connection: connection.server.alpn)

    def _connect(self, key: UpstreamKey) -> Deferred[UpstreamConnection]:
        """A new connection for C{key}: the one opened for the CONNECT if it goes there, else a new one."""
        scheme, host, port = key
        parked = self.take_parked()
        if parked is not None and parked.target == (host, port):
            return self._adopt(key, parked)
        if parked is not None:
            parked.transport.loseConnection()
        server = Server(address=(host, port))
        if scheme == b"https":
            server.sni = self._sni_for(host)
        hook = self._context.addons.trigger(ServerConnectHook(ServerConnectionHookData(server, self._client)))
        return hook.addCallback(lambda _: self._open(key, server))

    def _sni_for(self, host: str) -> str:
        """The client's own SNI while the request still goes to the tunnel's host, else the host."""
        if host == self._tunnel_host and self._client.sni:
            return self._client.sni
        return host

    def _open(self, key: UpstreamKey, server: Server) -> Deferred[UpstreamConnection]:
        _check_connectable(server)
        return self._start_tls(server).addCallback(self._dial, key, server)

    def _dial(self, tls: TlsData | None, key: UpstreamKey, server: Server) -> Deferred[UpstreamConnection]:
        """Connect to C{server} (to the upstream proxy for a C{via-proxy} key), with C{tls} if any."""
        assert server.address is not None
        reactor, settings = self._context.reactor, self._context.settings
        protocol = _upstream_protocol(key, server, reactor, tls is not None, self.offer_h2)
        if key[0] == _VIA_PROXY:
            endpoint = self._proxy_endpoint()
            protocol.via_proxy(basic_credentials(settings.upstream_auth) if settings.upstream_auth else None)
        else:
            endpoint = self.endpoint_to(*server.address)
        creator = _creator(tls)
        if creator is not None:
            endpoint = wrapClientTLS(creator, endpoint, clock=reactor)
        connecting = connect_upstream(reactor, protocol, endpoint, settings.connect_timeout)
        connecting.addBoth(self._tls_outcome, tls)
        connecting.addCallback(self._announce_opened)
        return connecting.addCallback(self._opened)

    def _adopt(self, key: UpstreamKey, parked: ParkedConnection) -> Deferred[UpstreamConnection]:
        """Carry the flow over the connection opened eagerly for its tunnel (TLS first, for HTTPS)."""
        server = parked.server
        if key[0] == b"https":
            server.sni = self._sni_for(key[1])
        starting = self._start_tls(server)
        starting.addErrback(_close_parked, parked)
        return starting.addCallback(self._adopt_with_tls, key, parked)

    def _adopt_with_tls(self, tls: TlsData | None, key: UpstreamKey, parked: ParkedConnection) -> Deferred[ServerSideProtocol]:
        server = parked.server
        reactor = self._context.reactor
        protocol = _upstream_protocol(key, server, reactor, tls is not None, self.offer_h2)
        if tls is None:
            parked.adopt(protocol)
        else:
            parked.adopt(TLSMemoryBIOFactory(_creator(tls), True, _OneShotFactory(protocol), clock=reactor).buildProtocol(None))
        assert server.address is not None
        ready = _bounded(protocol.ready, reactor, self._context.settings.connect_timeout, protocol.abort)
        ready.addErrback(_connect_failure, server.address[0], server.address[1], tls is not None)
        ready.addBoth(self._tls_outcome, tls)
        return ready.addCallback(self._opened)

    def _start_tls(self, server: Server) -> Deferred[TlsData | None]:
        """For a TLS server (one with an SNI to send), the connection TLS will run on, after
        the C{tls_start_server} hook had its say; C{None} for plain connections.

        Fails with a L{ProtocolError} (502) if a hook removed the connection.
        """
        if server.sni is None:
            return succeed(None)
        settings = self._context.settings
        alpn = self._alpn_offers if self.offer_h2 else (HTTP11,)
        creator = upstream_creator(server.sni, verify=not settings.ssl_insecure, trusted_ca_path=settings.trusted_ca_path, alpn=alpn)
        tls = TlsData(server, self._context.connection_context(self._client, server), creator.new_connection())
        return self._context.addons.trigger(TlsStartServerHook(tls)).addCallback(lambda _: _checked(tls))

    def _tls_outcome(self, result: Any, tls: TlsData | None) -> Any:
        """Run C{tls_established_server} or C{tls_failed_server} (TCP was up, TLS was not), then pass C{result} on."""
        if tls is None:
            return result
        if not isinstance(result, Failure):
            hook: TlsEstablishedServerHook | TlsFailedServerHook = TlsEstablishedServerHook(tls)
        elif tls.conn.timestamp_tcp_setup is not None:
            tls.conn.error = result.getErrorMessage()
            hook = TlsFailedServerHook(tls)
        else:
            return result
        return self._context.addons.trigger(hook).addCallback(lambda _: result)

    def _announce(self, server: Server, lost: Deferred[None]) -> None:
        """A connection to C{server} is up: C{server_connected} now, C{server_disconnected} when C{lost} fires."""
        data = ServerConnectionHookData(server, self._client)
        self._context.addons.trigger(ServerConnectedHook(data))
        lost.addCallback(lambda _: self._context.addons.trigger(ServerDisconnectedHook(data)))

    def _announce_opened(self, protocol: UpstreamConnection) -> UpstreamConnection:
        self._announce(protocol.server, protocol.lost)
        return protocol

    def _opened(self, protocol: UpstreamConnection) -> UpstreamConnection:
        if self._closed:
            # The client left while this connection was being opened: nobody will use it.
            protocol.close()
        else:
            self._kept.append(protocol)
        return protocol

    def hand_over(self, protocol: object) -> None:
        """C{protocol} now belongs to someone else (a WebSocket relay): forget it."""
        self._kept = [connection for connection in self._kept if connection is not protocol]

    def close(self) -> None:
        """Close the kept connections, and any that is still being opened."""
        self._closed = True
        kept, self._kept = self._kept, []
        for connection in kept:
            connection.close()
        parked = self.take_parked()
        if parked is not None:
            parked.transport.loseConnection()

    def _drop_idle_except(self, key: UpstreamKey) -> None:
        """Close the idle connections that go elsewhere than C{key} (the client moved on)."""
        for connection in list(self._kept):
            if connection.key != key and connection.available and _idle(connection):
                self._kept.remove(connection)
                connection.close()


def _idle(connection: UpstreamConnection) -> bool:
    return not isinstance(connection, H2ServerSideProtocol) or not connection.streams


def _upstream_protocol(key: UpstreamKey, server: Server, reactor: IReactorTime, tls: bool, offer_h2: bool) -> Any:
    """The protocol of a new upstream connection: one that follows ALPN when C{h2} is offered."""
    if tls and offer_h2:
        return NegotiatedProtocol(key, server, reactor)
    return ServerSideProtocol(key, server, reactor, tls=tls)


def _checked(tls: TlsData) -> TlsData:
    """@raise ProtocolError: (502) a C{tls_start_server} hook removed the connection."""
    if tls.ssl_conn is None:
        raise ProtocolError(502, "a tls_start_server hook removed the TLS connection")
    return tls


def _creator(tls: TlsData | None) -> PreparedConnection | None:
    """What Twisted's TLS gets: the connection the C{tls_start_server} hook left."""
    if tls is None:
        return None
    assert tls.ssl_conn is not None  # see _checked
    return PreparedConnection(tls.ssl_conn)


def _close_parked(reason: Failure, parked: ParkedConnection) -> Failure:
    """TLS cannot start on a parked connection: close it, and pass the failure on."""
    parked.transport.loseConnection()
    return reason


def _check_connectable(server: Server) -> None:
    """@raise ProtocolError: (502) a C{server_connect} hook refused the connection or removed its address."""
    if server.error is not None:
        raise ProtocolError(502, f"connection to the server refused by a script: {server.error}")
    if server.address is None:
        raise ProtocolError(502, "a script removed the server address")


def _bounded(waiting: Deferred[Any], reactor: Any, timeout: float | None, on_timeout: Callable[[], None]) -> Deferred[Any]:
    """C{waiting}, failed with C{CancelledError} (after calling C{on_timeout}) if it takes longer than C{timeout}."""
    if timeout is None:
        return waiting
    timer = reactor.callLater(timeout, lambda: (waiting.cancel(), on_timeout()))
    return waiting.addBoth(_cancel_timer, timer)


def connect_upstream(reactor: Any, protocol: Any, endpoint: IStreamClientEndpoint, timeout: float | None) -> Deferred[UpstreamConnection]:
    """Connect C{protocol} (a new upstream connection) through C{endpoint}; fires with it once
    it is ready for requests.

    Failures come as L{ProtocolError}: 502 for refused, unresolvable and TLS failures,
    504 when connecting (TCP and TLS together) took longer than C{timeout} seconds.
    """
    server = protocol.server
    assert server.address is not None
    host, port = server.address
    server.timestamp_start = time.time()
    connecting = endpoint.connect(_OneShotFactory(protocol))
    connecting.addCallback(lambda connected: connected.ready)
    connecting = _bounded(connecting, reactor, timeout, lambda: None)
    connecting.addErrback(_connect_failure, host, port, protocol.tls)
    return connecting


class _OneShotFactory(Factory):
    """Hands the endpoint one prepared protocol; quiet, unlike C{connectProtocol}'s, since every upstream connection has one."""

    noisy = False

    def __init__(self, protocol: IProtocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: object) -> IProtocol:
        return self._protocol


#: What "no limit" means for a connect timeout: Twisted's endpoints need a number.
UNLIMITED = 365 * 24 * 3600.0


def tcp_endpoint(reactor: Any, host: str, port: int, timeout: float | None) -> IStreamClientEndpoint:
    """An endpoint for C{host:port}: IP addresses are connected to at once, names resolved first.

    C{HostnameEndpoint} would resolve an IP address too, through a thread.
    """
    seconds = timeout or UNLIMITED
    if isIPv6Address(host):
        return TCP6ClientEndpoint(reactor, host, port, timeout=seconds)
    if isIPAddress(host):
        return TCP4ClientEndpoint(reactor, host, port, timeout=seconds)
    return HostnameEndpoint(reactor, host, port, timeout=seconds)


def _cancel_timer(result: object, timer: Any) -> object:
    if timer.active():
        timer.cancel()
    return result


def _connect_failure(reason: Failure, host: str, port: int, tls: bool) -> Failure:
    if reason.check(ProtocolError):
        return reason
    where = f"{host}:{port}"
    if reason.check(net_error.DNSLookupError):
        raise ProtocolError(502, f"cannot resolve host {host!r}")
    if reason.check(net_error.ConnectionRefusedError):
        raise ProtocolError(502, f"connection refused by {where}")
    if reason.check(net_error.TimeoutError, net_error.UserError, net_error.ConnectingCancelledError, CancelledError):
        raise ProtocolError(504, f"timed out connecting to {where}")
    if reason.check(net_error.ConnectError):
        raise ProtocolError(502, f"cannot connect to {where}: {reason.getErrorMessage()}")
    if not tls:
        raise ProtocolError(502, f"connecting to {where} failed: {reason.getErrorMessage()}")
    if reason.check(net_error.ConnectionDone, net_error.ConnectionLost):
        raise ProtocolError(502, f"{where} closed the connection during the TLS handshake")
    raise ProtocolError(502, f"TLS with {where} failed: {describe_tls_failure(reason)}")

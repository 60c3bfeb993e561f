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
from typing import TYPE_CHECKING, Any

from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IHandshakeListener,
    IProtocol,
    IPushProducer,
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
from twisted_mitm.hooks import (
    ServerConnectedHook,
    ServerConnectHook,
    ServerConnectionHookData,
    ServerDisconnectedHook,
    TlsEstablishedServerHook,
    TlsFailedServerHook,
    TlsStartServerHook,
)
from twisted_mitm.proxy.pipe import BodySink, Fields, Hold, ReaderPump, tune_transport
from twisted_mitm.proxy.tls import PreparedConnection, describe_tls_failure, upstream_creator
from twisted_mitm.tls import TlsData

if TYPE_CHECKING:
    from twisted_mitm.http import HTTPFlow
    from twisted_mitm.proxy.context import ProxyContext
    from twisted_mitm.proxy.streams import ResponseReceiver


#: Where an upstream connection goes: scheme (C{b"http"} or C{b"https"}), host, port.
UpstreamKey = tuple[bytes, str, int]


@implementer(IHandshakeListener)
class ServerSideProtocol(Protocol):
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
        self._tls = tls
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
        if not self._tls:
            self.ready.callback(self)

    def handshakeCompleted(self) -> None:
        self.server.tls_established = True
        self.server.timestamp_tls_setup = time.time()
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

    # The Upstream an exchange sees (twisted_mitm.proxy.streams).

    @property
    def framing(self) -> http1.BodyFraming | None:
        """How the body of the response just read is delimited."""
        return self.pump.reader.framing

    @property
    def producer(self) -> IPushProducer:
        """The response reader: pausing it pauses this connection's reading."""
        return self.pump

    @property
    def consumer(self) -> IConsumer:
        """Where request bytes are written."""
        return self.transport

    def hold_body(self) -> None:
        """Read nothing of the response body until L{read_body}."""
        self.pump.hold(Hold.DECIDING)

    def send_request(self, method: bytes, head: bytes, receiver: ResponseReceiver) -> None:
        """Write a request head and expect its response."""
        self.receiver = receiver
        self.requests_sent += 1
        self.pump.reader.expect_response(method)
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


@implementer(IHalfCloseableProtocol)
class ParkedConnection(Protocol):
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
        self._delegate: IProtocol | None = None
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
        self._delegate = protocol
        protocol.makeConnection(self.transport)
        early, self._early = self._early, []
        for data in early:
            protocol.dataReceived(data)
        if self._gone is not None:
            protocol.connectionLost(self._gone)
        else:
            self.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        if self._delegate is None:
            self._early.append(data)
        else:
            self._delegate.dataReceived(data)

    def readConnectionLost(self) -> None:
        half_closeable = IHalfCloseableProtocol(self._delegate, None)
        if half_closeable is not None:
            half_closeable.readConnectionLost()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        half_closeable = IHalfCloseableProtocol(self._delegate, None)
        if half_closeable is not None:
            half_closeable.writeConnectionLost()

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        self.server.timestamp_end = time.time()
        if self._delegate is None:
            self._gone = reason
        else:
            self._delegate.connectionLost(reason)
        self.lost.callback(None)


class ServerConnections:
    """The upstream connections of one client connection: opened, reused, closed.

    One connection is kept and reused while the client's requests go to the same
    place. A new one runs the C{server_connect} hook first: a script may change
    C{data.server.address} to connect elsewhere, or set C{data.server.error} to refuse
    the connection (the client gets a 502 saying so), as in mitmproxy.
    """

    def __init__(self, context: ProxyContext, client: Client, tunnel_host: str | None = None) -> None:
        self._context = context
        self._client = client
        self._tunnel_host = tunnel_host
        self._current: ServerSideProtocol | None = None
        self._parked: ParkedConnection | None = None
        self._closed = False

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
        connecting = tcp_endpoint(self._context.reactor, host, port, timeout).connect(_OneShotFactory(parked))
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

    def for_flow(self, flow: HTTPFlow) -> Deferred[ServerSideProtocol]:
        """A connection to the flow's current upstream, reused when it is still good."""
        request = flow.request
        key: UpstreamKey = (request.data.scheme, request.host, request.port)
        current = self._current
        if current is not None and current.key == key and current.connected and current.reusable:
            return succeed(current)
        self._drop_current()
        parked = self.take_parked()
        if parked is not None and parked.target == (request.host, request.port):
            return self._adopt(key, parked)
        if parked is not None:
            parked.transport.loseConnection()
        server = Server(address=(request.host, request.port))
        if request.data.scheme == b"https":
            server.sni = self._sni_for(request.host)
        hook = self._context.addons.trigger(ServerConnectHook(ServerConnectionHookData(server, self._client)))
        return hook.addCallback(lambda _: self._open(key, server))

    def _sni_for(self, host: str) -> str:
        """The client's own SNI while the request still goes to the tunnel's host, else the host."""
        if host == self._tunnel_host and self._client.sni:
            return self._client.sni
        return host

    def _open(self, key: UpstreamKey, server: Server) -> Deferred[ServerSideProtocol]:
        _check_connectable(server)
        return self._start_tls(server).addCallback(self._connect, key, server)

    def _connect(self, tls: TlsData | None, key: UpstreamKey, server: Server) -> Deferred[ServerSideProtocol]:
        settings = self._context.settings
        connecting = connect_upstream(self._context.reactor, key, server, settings.connect_timeout, _creator(tls))
        connecting.addBoth(self._tls_outcome, tls)
        connecting.addCallback(self._announce_opened)
        return connecting.addCallback(self._opened)

    def _adopt(self, key: UpstreamKey, parked: ParkedConnection) -> Deferred[ServerSideProtocol]:
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
        protocol = ServerSideProtocol(key, server, reactor, tls=tls is not None)
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
        creator = upstream_creator(server.sni, verify=not settings.ssl_insecure, trusted_ca_path=settings.trusted_ca_path)
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

    def _announce_opened(self, protocol: ServerSideProtocol) -> ServerSideProtocol:
        self._announce(protocol.server, protocol.lost)
        return protocol

    def _opened(self, protocol: ServerSideProtocol) -> ServerSideProtocol:
        if self._closed:
            # The client left while this connection was being opened: nobody will use it.
            protocol.close()
        else:
            self._current = protocol
        return protocol

    def hand_over(self, protocol: object) -> None:
        """C{protocol} now belongs to someone else (a WebSocket relay): forget it."""
        if protocol is self._current:
            self._current = None

    def close(self) -> None:
        """Close the kept connection, if any, and any that is still being opened."""
        self._closed = True
        self._drop_current()
        parked = self.take_parked()
        if parked is not None:
            parked.transport.loseConnection()

    def _drop_current(self) -> None:
        current, self._current = self._current, None
        if current is not None:
            current.close()


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


def connect_upstream(
    reactor: Any,
    key: UpstreamKey,
    server: Server,
    timeout: float | None,
    tls_creator: object | None = None,
) -> Deferred[ServerSideProtocol]:
    """Open a connection for C{key}; fires with a protocol ready for requests.

    Failures come as L{ProtocolError}: 502 for refused, unresolvable and TLS failures,
    504 when connecting (TCP and TLS together) took longer than C{timeout} seconds.
    """
    assert server.address is not None
    host, port = server.address
    endpoint = tcp_endpoint(reactor, host, port, timeout)
    if tls_creator is not None:
        endpoint = wrapClientTLS(tls_creator, endpoint, clock=reactor)
    protocol = ServerSideProtocol(key, server, reactor, tls=tls_creator is not None)
    server.timestamp_start = time.time()
    connecting = endpoint.connect(_OneShotFactory(protocol))
    connecting.addCallback(lambda connected: connected.ready)
    connecting = _bounded(connecting, reactor, timeout, lambda: None)
    connecting.addErrback(_connect_failure, host, port, tls_creator is not None)
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

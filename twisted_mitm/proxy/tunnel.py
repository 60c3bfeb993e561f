# -*- test-case-name: tests.test_tunnel -*-
"""What happens inside a tunnel, decided from its first bytes.

A tunnel is a client connection whose target is known before any request names it: a
CONNECT (regular mode), a SOCKS5 connection, a transparently redirected one, or any
connection to a reverse proxy.

  - the host is not intercepted (C{ignore_hosts} / C{allow_hosts}): a raw relay,
    decided at once, so the client talks to the server's own TLS;
  - a TLS ClientHello: TLS with a leaf certificate for its SNI (or the CONNECT host),
    then HTTP inside, as C{https} (unless the SNI is not intercepted, or a
    C{tls_clienthello} hook sets C{ignore_connection}: relay). A client that offers
    C{h2} (with the C{http2} option on) waits while the proxy connects to the server
    with TLS, offering what the client offered: the client is then offered what the
    server chose, HTTP/2 or HTTP/1.1 (mitmproxy's mirroring);
  - plain text, by mitmproxy's rule (its C{next_layer} addon): a first line with a space
    in it, starting with three letters (and not C{SSH}), is HTTP inside, as C{http}.
    Bytes with no line break yet are not HTTP for mitmproxy; here, bytes that may still
    grow into a request line wait L{Tunnel.request_line_grace} seconds for the rest of
    their line (a request line split across reads), then are a TCP flow. Behind a
    reverse proxy they are HTTP, which is all mitmproxy speaks there;
  - anything else: a TCP flow with the C{tcp_*} hooks;
  - nothing at all for L{Tunnel.server_first_delay} seconds: a protocol where the
    server speaks first (SMTP, SSH, MySQL...), relayed as a TCP flow so the server's
    greeting gets through.

A L{Tunnel} is the protocol the client-side connection forwards its bytes to once the
C{CONNECT} was answered; C{self.transport} is the client's transport.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet import error as net_error
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IHalfCloseableProtocol, IProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mitm.connection import Client, Server
from twisted_mitm.hooks import TlsClienthelloHook, TlsFailedClientHook, TlsStartClientHook
from twisted_mitm.http2 import ALPN_H2
from twisted_mitm.proxy.handover import pass_read_eof
from twisted_mitm.proxy.passthrough import TCPRelay
from twisted_mitm.proxy.serverside import ServerConnections
from twisted_mitm.proxy.tls import HTTP11, PreparedConnection, intercepting_server_creator
from twisted_mitm.tls import MAX_CLIENT_HELLO, ClientHello, ClientHelloData, TlsData, looks_like_tls, parse_client_hello

if TYPE_CHECKING:
    from twisted_mitm.proxy.context import ProxyContext

#: Where requests inside a CONNECT tunnel go: scheme, host, port.
TunnelTarget = tuple[bytes, str, int]

#: Builds the protocol that serves HTTP inside a tunnel, for this client and target, and
#: the application protocol agreed by ALPN (C{b"h2"}, or anything else for HTTP/1).
InnerHTTPFactory = Callable[[Client, TunnelTarget, bytes], IProtocol]

#: Past this many bytes without a line break, first bytes are not waited on as a request line.
MAX_REQUEST_LINE = 8192



class Plaintext(enum.Enum):
    """What a tunnel's first bytes (not TLS) are, by L{classify_plaintext}."""

    HTTP = "http"
    TCP = "tcp"
    UNFINISHED = "no line break yet, and it may still become a request line"


def classify_plaintext(data: bytes) -> Plaintext:
    """mitmproxy's rule for HTTP in clear: a first line holding a space, starting with
    three letters, not an SSH banner. Before any line break, bytes that may still become
    such a line are L{Plaintext.UNFINISHED}."""
    line_end = data.find(b"\n")
    starts_like_a_method = data[:3].isalpha() and not data.startswith(b"SSH")
    if line_end < 0:
        return Plaintext.UNFINISHED if starts_like_a_method and len(data) <= MAX_REQUEST_LINE else Plaintext.TCP
    if len(data) >= 3 and starts_like_a_method and 0 <= data.find(b" ") < line_end:
        return Plaintext.HTTP
    return Plaintext.TCP



@implementer(IHalfCloseableProtocol)
class Tunnel(Protocol):
    """Looks at a tunnel's first bytes and hands the connection to the right protocol."""

    _log = Logger()

    #: seconds of client silence after which the server is assumed to speak first
    server_first_delay = 1.0

    #: seconds that first bytes which may still become a request line wait for a line break
    request_line_grace = 0.1

    def __init__(
        self,
        context: ProxyContext,
        client: Client,
        target: tuple[str, int],
        upstreams: ServerConnections,
        inner_http: InnerHTTPFactory,
        upstream_scheme: bytes | None = None,
    ) -> None:
        """
        @param target: the C{(host, port)} the tunnel leads to.
        @param upstream_scheme: how requests inside go on (C{b"http"}, C{b"https"}); by
            default as the client spoke: HTTPS when it spoke TLS (a reverse proxy sets it).
        """
        self.context = context
        self.client = client
        self.host, self.port = target
        self._upstreams = upstreams
        self._inner_http = inner_http
        self._upstream_scheme = upstream_scheme
        self._buffer = b""
        self._inner: IProtocol | None = None
        self._waiting: IDelayedCall | None = None
        #: the grace for a request line split across reads (L{request_line_grace})
        self._line_grace: IDelayedCall | None = None
        #: the TLS hooks (and the server's ALPN choice) deciding about a ClientHello; bytes
        #: that arrive meanwhile wait in the buffer
        self._hooks: Deferred[None] | None = None
        self._closed = False
        self._opened_at = 0.0

    def connectionMade(self) -> None:
        settings = self.context.settings
        if not settings.intercepts(self.host, self.port):
            self._hand_over(self._relay(settings.show_ignored_hosts), b"")
        else:
            self._opened_at = self.context.reactor.seconds()
            self._waiting = self.context.reactor.callLater(self.server_first_delay, self._server_speaks_first)

    def _server_speaks_first(self) -> None:
        self._waiting = None
        if self._inner is not None or self._hooks is not None:
            return
        if not self._buffer:
            self._hand_over(self._relay(with_hooks=True), b"")
            return
        # Part of a ClientHello: it must be complete within the head deadline, or a client
        # could hold the tunnel open by never finishing it.
        timeout = self.context.settings.head_timeout
        if timeout is not None:
            left = self._opened_at + timeout - self.context.reactor.seconds()
            self._waiting = self.context.reactor.callLater(max(left, 0), self._undecided, timeout)

    def _undecided(self, timeout: float) -> None:
        self._waiting = None
        if self._inner is None and self._hooks is None:
            self._log.info(
                "{host}:{port}: the tunnel's first bytes were not a whole TLS ClientHello after {timeout:g} seconds; closed",
                host=self.host,
                port=self.port,
                timeout=timeout,
            )
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.dataReceived(data)
            return
        self._buffer += data
        if self._hooks is None:
            self._decide()

    def readConnectionLost(self) -> None:
        pass_read_eof(self._inner, self.transport)

    def writeConnectionLost(self) -> None:
        """Nothing to do: the inner protocol ends the connection when it is done."""

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        self._closed = True
        self._stop_waiting()
        if self._inner is not None:
            self._inner.connectionLost(reason)

    def _decide(self) -> None:
        data = self._buffer
        if looks_like_tls(data):
            self._start_tls(data)
            return
        kind = classify_plaintext(data)
        if kind is Plaintext.HTTP or (kind is Plaintext.UNFINISHED and self._upstream_scheme is not None):
            self._start_inner_http(b"http", data)
        elif kind is Plaintext.TCP:
            self._hand_over(self._relay(with_hooks=True), data)
        elif self._line_grace is None:
            self._stop_waiting()
            self._line_grace = self.context.reactor.callLater(self.request_line_grace, self._line_unfinished)

    def _line_unfinished(self) -> None:
        """No line break came within the grace: the bytes so far are a TCP flow, as in mitmproxy."""
        self._line_grace = None
        if self._inner is None and self._hooks is None:
            self._hand_over(self._relay(with_hooks=True), self._buffer)

    def _start_tls(self, data: bytes) -> None:
        try:
            hello = parse_client_hello(data)
        except ValueError as problem:
            self._log.info("{host}: not a valid TLS ClientHello ({problem}); relaying as TCP", host=self.host, problem=problem)
            self._hand_over(self._relay(with_hooks=True), data)
            return
        if hello is None:
            if len(data) > MAX_CLIENT_HELLO:
                self.transport.loseConnection()
            return
        settings = self.context.settings
        if hello.sni and not settings.intercepts(hello.sni, self.port):
            self._hand_over(self._relay(settings.show_ignored_hosts), data)
            return
        self.client.sni = hello.sni
        self.client.alpn_offers = hello.alpn_protocols
        hello_data = ClientHelloData(self.context.connection_context(self.client, Server(address=(self.host, self.port))), hello)
        self._stop_waiting()
        hooks = self._hooks = self.context.addons.trigger(TlsClienthelloHook(hello_data))
        hooks.addCallback(lambda _: self._client_hello_decided(hello_data))
        hooks.addErrback(self._hook_failed)

    def _client_hello_decided(self, hello_data: ClientHelloData) -> Deferred[None] | None:
        """The C{tls_clienthello} hook has run: relay the connection, or go on to TLS with the client."""
        if self._closed:
            return None
        if hello_data.ignore_connection:
            self._hand_over(self._relay(self.context.settings.show_ignored_hosts), self._buffer)
            return None
        offers = tuple(protocol for protocol in hello_data.client_hello.alpn_protocols if protocol in (ALPN_H2, HTTP11))
        if self.context.settings.http2 and ALPN_H2 in offers and self._upstream_scheme in (None, b"https"):
            negotiating = self._upstreams.negotiate(self.host, self.port, offers)
            # A server that cannot be reached: HTTP/1.1, whose first request gets the 502 saying why.
            negotiating.addErrback(lambda _: None)
            return negotiating.addCallback(self._negotiated, hello_data)
        return self._start_client_tls(hello_data, HTTP11)

    def _negotiated(self, alpn: bytes | None, hello_data: ClientHelloData) -> Deferred[None] | None:
        """The server chose C{alpn}: offer the client the same (HTTP/1.1 if it chose nothing)."""
        chosen = ALPN_H2 if alpn == ALPN_H2 else HTTP11
        self._upstreams.offer_h2 = chosen == ALPN_H2
        return self._start_client_tls(hello_data, chosen)

    def _start_client_tls(self, hello_data: ClientHelloData, alpn: bytes) -> Deferred[None] | None:
        """Run C{tls_start_client}, then TLS with the client selecting C{alpn}."""
        if self._closed:
            return None
        assert self.context.certstore is not None
        creator = intercepting_server_creator(self.context.certstore, self._certificate_names(hello_data.client_hello), alpn)
        tls = TlsData(self.client, hello_data.context, creator.new_connection())
        starting = self.context.addons.trigger(TlsStartClientHook(tls))
        return starting.addCallback(lambda _: self._tls_started(tls, alpn))

    def _certificate_names(self, hello: ClientHello) -> list[str]:
        """The names the leaf certificate is for: the SNI, and the CONNECT host."""
        names = [hello.sni] if hello.sni else []
        if self.host not in names:
            names.append(self.host)
        return names

    def _tls_started(self, tls: TlsData, alpn: bytes) -> Deferred[None] | None:
        """The C{tls_start_client} hook has run: TLS on its C{ssl_conn}, HTTP of the agreed version inside."""
        if self._closed:
            self.client.error = "the client disconnected before the TLS handshake"
            return self.context.addons.trigger(TlsFailedClientHook(tls))
        if tls.ssl_conn is None:
            self._log.warn("{host}: a tls_start_client hook removed the TLS connection; closing", host=self.host)
            self.transport.loseConnection()
            return None
        inner = self._inner_http(self.client, (self._upstream_scheme or b"https", self.host, self.port), alpn)
        factory = TLSMemoryBIOFactory(PreparedConnection(tls.ssl_conn), False, Factory.forProtocol(lambda: inner), clock=self.context.reactor)
        self._hand_over(factory.buildProtocol(self.transport.getPeer()), self._buffer)
        return None

    def _hook_failed(self, reason: Failure) -> None:
        self._log.failure("{host}: internal error while starting TLS", reason, host=self.host)
        self.transport.abortConnection()

    def _start_inner_http(self, scheme: bytes, data: bytes) -> None:
        self._hand_over(self._inner_http(self.client, (self._upstream_scheme or scheme, self.host, self.port), b""), data)

    def _relay(self, with_hooks: bool) -> TCPRelay:
        """A raw relay to the tunnel's target, over the connection opened for the CONNECT if there is one."""
        return TCPRelay(self.context, self.client, self.host, self.port, with_hooks, self._upstreams)

    def _stop_waiting(self) -> None:
        for timer in (self._waiting, self._line_grace):
            if timer is not None and timer.active():
                timer.cancel()
        self._waiting = self._line_grace = None

    def _hand_over(self, protocol: IProtocol, data: bytes) -> None:
        self._stop_waiting()
        self._hooks = None
        self._buffer = b""
        self._inner = protocol
        protocol.makeConnection(self.transport)
        if data:
            protocol.dataReceived(data)


# -*- test-case-name: tests.test_h2_inmemory -*-
"""The HTTP/2 connection that faces the client: one exchange per stream, all at once.

L{H2ClientSideProtocol} is what an intercepted TLS tunnel carries once the client and
the proxy agreed on C{h2} (see L{twisted_mitm.proxy.tunnel}). Every request stream
becomes an L{H2ClientStream}, the L{ClientStream} of its own L{Exchange}; streams run
concurrently, unlike HTTP/1's pipelined requests. Their upstreams come from the
tunnel's L{ServerConnections}, as for HTTP/1.

A connection without a stream for C{connection_idle_timeout} seconds is closed (GOAWAY).
A client that resets many streams it just opened (the "rapid reset" attack) makes the
proxy start exchanges it never finishes: more than L{RAPID_RESETS} resets of unanswered
streams within L{RAPID_RESET_SECONDS} end the connection with GOAWAY
C{ENHANCE_YOUR_CALM}.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import TYPE_CHECKING

import h2.events
from h2.errors import ErrorCodes
from twisted.internet import error as net_error
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener, IProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mitm import http1, http2
from twisted_mitm.connection import Client, Server
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.http import HTTPFlow, Request, Response
from twisted_mitm.proxy import framing
from twisted_mitm.proxy.exchange import Exchange, error_response
from twisted_mitm.proxy.h2connection import H2Connection, H2Stream, streamed_writer
from twisted_mitm.proxy.pipe import BodyWriter, Fields
from twisted_mitm.proxy.tls import record_handshake

if TYPE_CHECKING:
    from twisted_mitm.proxy.context import ProxyContext
    from twisted_mitm.proxy.serverside import ServerConnections
    from twisted_mitm.proxy.streams import Upstream

#: Resets of unanswered streams tolerated within L{RAPID_RESET_SECONDS}.
RAPID_RESETS = 100
RAPID_RESET_SECONDS = 10.0


@implementer(IHandshakeListener)
class H2ClientSideProtocol(H2Connection):
    """An HTTP/2 connection from a client, inside an intercepted TLS tunnel.

    @ivar client: the connection record scripts see as C{flow.client_conn}.
    @ivar target: where the tunnel's requests go: scheme, host, port.
    """

    def __init__(self, context: ProxyContext, client: Client, target: tuple[bytes, str, int], upstreams: ServerConnections) -> None:
        super().__init__(client_side=False, reactor=context.reactor)
        self.context = context
        self.client = client
        self.target = target
        self._upstreams = upstreams
        self._resets: collections.deque[float] = collections.deque()
        self._idle_timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._start_idle_timer()

    def handshakeCompleted(self) -> None:
        """TLS with the client is up: record what was agreed."""
        record_handshake(self.client, self.transport.getHandle())

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        self.connected = False
        self._stop_idle_timer()
        for stream in list(self.streams.values()):
            self.forget(stream)
            stream.client_gone()
        self._upstreams.close()

    def event_received(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request_received(event)
        else:
            super().event_received(event)

    def forget(self, stream: H2Stream) -> None:
        super().forget(stream)
        if not self.streams and self.connected:
            self._start_idle_timer()

    def _start_idle_timer(self) -> None:
        timeout = self.context.settings.idle_timeout
        if timeout is not None and self._idle_timer is None:
            self._idle_timer = self.reactor.callLater(timeout, self._idle_timed_out)

    def _stop_idle_timer(self) -> None:
        if self._idle_timer is not None and self._idle_timer.active():
            self._idle_timer.cancel()
        self._idle_timer = None

    def _idle_timed_out(self) -> None:
        self._idle_timer = None
        if not self.streams and self.connected:
            self.h2.close_connection()
            self.send_pending()
            self.close_transport()

    def _request_received(self, event: h2.events.RequestReceived) -> None:
        assert event.stream_id is not None and event.headers is not None
        self._stop_idle_timer()
        ends_stream = event.stream_ended is not None
        fields = tuple(event.headers)
        stream = H2ClientStream(self, event.stream_id, http2.body_framing(fields, ends_stream))
        self.streams[event.stream_id] = stream
        try:
            request = http2.request_from_block(fields, self.target)
        except ProtocolError as error:
            self._log.info("{client}: {reason} ({status})", client=self.peer_name(), reason=error.reason, status=error.status)
            stream.refuse(error)
            return
        flow = HTTPFlow(self.client, Server(address=(request.host, request.port)), live=True)
        flow.request = request
        stream.exchange = Exchange(self.context, stream, self._upstreams, flow)
        stream.exchange.start()

    def reset_by_client(self, stream: H2ClientStream) -> None:
        """Count a reset of an unanswered stream; too many too fast end the connection."""
        now = self.reactor.seconds()
        self._resets.append(now)
        while self._resets and self._resets[0] < now - RAPID_RESET_SECONDS:
            self._resets.popleft()
        if len(self._resets) > RAPID_RESETS and self.connected:
            self._log.warn("{client}: more than {count} streams reset within {seconds:g}s; closing the connection", client=self.peer_name(), count=RAPID_RESETS, seconds=RAPID_RESET_SECONDS)
            self.h2.close_connection(ErrorCodes.ENHANCE_YOUR_CALM)
            self.send_pending()
            self.close_transport()


class H2ClientStream(H2Stream):
    """One request stream from the client: the L{ClientStream} of its exchange.

    @ivar exchange: the exchange carrying this stream's flow.
    """

    def __init__(self, connection: H2ClientSideProtocol, stream_id: int, framing: http1.BodyFraming) -> None:
        super().__init__(connection, stream_id)
        self.exchange: Exchange | None = None
        self._framing: http1.BodyFraming | None = framing
        self._answered = False

    # ClientStream.

    def send_interim(self, status_code: int, reason: bytes, headers: Fields) -> None:
        self.send_headers(http2.interim_block(status_code, headers))

    def send_whole_response(self, request: Request, response: Response, has_body: bool, done: Callable[[], None]) -> None:
        block = http2.response_block(response, response.headers)
        if not has_body:
            self.send_headers(block, end_stream=True)
            self.output.closed = True
            done()
            return
        body = response.raw_content or b""
        trailers = response.trailers.fields if response.trailers is not None else ()
        self.send_whole(http2.with_length(block, len(body)), body, trailers, done)
        self._answered = True

    def start_response(
        self, request: Request, response: Response, source: http1.BodyFraming | None, transformed: bool
    ) -> tuple[BodyWriter, bool]:
        block, writer = streamed_writer(self.output, http2.response_block(response, response.headers), source, transformed)
        self.send_headers(block)
        self._answered = True
        return framing.MessageTrailers(writer, response), False

    def abort(self) -> None:
        """The response cannot be completed: reset the stream, so it never looks complete."""
        self.connection.reset(self, ErrorCodes.INTERNAL_ERROR)

    def exchange_done(self, exchange: object, keep_alive: bool) -> None:
        """The response went out; a request body still arriving is not wanted any more (RFC 9113 §8.1)."""
        if not self.input.finished:
            self.connection.reset(self, ErrorCodes.NO_ERROR)
        else:
            self.connection.forget(self)

    def switch_protocols(self, protocol: IProtocol, replay: bytes = b"", upstream: Upstream | None = None) -> None:
        """HTTP/2 streams do not switch protocols (no WebSocket over HTTP/2 here)."""
        self.abort()

    # Failures.

    def refuse(self, error: ProtocolError) -> None:
        """Answer a request that never became a flow."""
        response = error_response(error.status, error.reason)
        self.send_whole(http2.with_length(http2.response_block(response, response.headers), len(response.raw_content or b"")), response.raw_content or b"", (), lambda: self.connection.forget(self))

    def reset_by_peer(self, code: object) -> None:
        """The client reset the stream: its exchange is abandoned (the client went away)."""
        assert isinstance(self.connection, H2ClientSideProtocol)
        if not self._answered:
            self.connection.reset_by_client(self)
        self.fail(ProtocolError(499, "the client reset the stream"))

    def fail(self, error: ProtocolError) -> None:
        """The stream is gone: the exchange is abandoned first, so nothing answers it."""
        self.client_gone()
        super().fail(error)

    def client_gone(self) -> None:
        """The client will not read the response: give up the exchange."""
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.client_gone()

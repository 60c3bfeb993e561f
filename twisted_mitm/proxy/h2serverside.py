# -*- test-case-name: tests.test_h2_inmemory -*-
"""The HTTP/2 connection that faces the origin: an L{Upstream} per stream, many at once.

L{H2ServerSideProtocol} is one connection to a server that chose C{h2} by ALPN. Every
exchange sent there gets its own L{H2Upstream}, a stream of that connection, from
L{H2ServerSideProtocol.next_upstream}; when the server's C{SETTINGS_MAX_CONCURRENT_STREAMS}
(or the proxy's own L{MAX_STREAMS}) are all in use, the next exchange waits for one to end.
L{twisted_mitm.proxy.serverside.ServerConnections} opens, keeps and closes the connection
as it does HTTP/1 ones.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import TYPE_CHECKING

import h2.events
from h2.errors import ErrorCodes
from twisted.internet import error as net_error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IProtocol, IReactorTime
from twisted.python.failure import Failure

from twisted_mitm import http1, http2
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.proxy import framing
from twisted_mitm.proxy.h2connection import MAX_STREAMS, H2Connection, H2Stream, streamed_writer
from twisted_mitm.proxy.pipe import BodyWriter

if TYPE_CHECKING:
    from twisted_mitm.connection import Server
    from twisted_mitm.http import Headers, Request
    from twisted_mitm.proxy.streams import ResponseReceiver, Upstream


class H2ServerSideProtocol(H2Connection):
    """One HTTP/2 connection to an origin server, carrying many exchanges at once.

    @ivar key: where it goes: scheme, host, port.
    @ivar server: the connection record every flow on it shares.
    @ivar reusable: C{False} once it may carry no new stream (GOAWAY, a protocol error).
    @ivar ready: fires with this protocol once it can carry requests.
    @ivar lost: fires when the connection is gone.
    """

    def __init__(self, key: tuple[bytes, str, int], server: Server, reactor: IReactorTime) -> None:
        super().__init__(client_side=True, reactor=reactor)
        self.key = key
        self.server = server
        self.reusable = True
        self.ready: Deferred[H2ServerSideProtocol] = Deferred()
        self.lost: Deferred[None] = Deferred()
        self._in_use: set[H2Upstream] = set()
        self._waiting: collections.deque[Deferred[Upstream]] = collections.deque()

    def connectionMade(self) -> None:
        super().connectionMade()
        self.ready.callback(self)

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        self.reusable = False
        super().connectionLost(reason)
        self._fail_waiting()
        self.lost.callback(None)

    @property
    def available(self) -> bool:
        """Whether a new exchange can be given this connection (possibly after a wait)."""
        return self.connected and self.reusable

    def next_upstream(self) -> Deferred[Upstream]:
        """A new stream for one exchange, once the server's concurrency limit leaves room."""
        if len(self._in_use) < self._stream_limit():
            upstream = H2Upstream(self)
            self._in_use.add(upstream)
            return succeed(upstream)
        waiting: Deferred[Upstream] = Deferred()
        self._waiting.append(waiting)
        return waiting

    def _stream_limit(self) -> int:
        return min(self.h2.remote_settings.max_concurrent_streams, MAX_STREAMS)

    def released(self, upstream: H2Upstream) -> None:
        """C{upstream}'s exchange is over: its room goes to the next exchange waiting."""
        self._in_use.discard(upstream)
        while self._waiting and len(self._in_use) < self._stream_limit():
            waiting = self._waiting.popleft()
            if self.available:
                successor = H2Upstream(self)
                self._in_use.add(successor)
                waiting.callback(successor)
            else:
                waiting.errback(Failure(ProtocolError(502, "the HTTP/2 connection to the server closed")))

    def _fail_waiting(self) -> None:
        waiting, self._waiting = self._waiting, collections.deque()
        for each in waiting:
            each.errback(Failure(ProtocolError(502, "the HTTP/2 connection to the server closed")))

    def close(self) -> None:
        """Close cleanly (GOAWAY, then the connection)."""
        self.reusable = False
        if self.connected:
            self.h2.close_connection()
            self.send_pending()
            self.close_transport()

    def abort(self) -> None:
        """Drop the connection now."""
        self.reusable = False
        if self.transport is not None:
            self.transport.abortConnection()

    def event_received(self, event: h2.events.Event) -> None:
        stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, (h2.events.ResponseReceived, h2.events.InformationalResponseReceived)):
            if isinstance(stream, H2Upstream):
                stream.head_received(tuple(event.headers or ()), getattr(event, "stream_ended", None) is not None)
            return
        if isinstance(event, h2.events.ConnectionTerminated):
            self.reusable = False
        super().event_received(event)


class H2Upstream(H2Stream):
    """One exchange's stream to the server: the L{Upstream} of that exchange.

    @ivar receiver: the exchange waiting for this stream's response.
    """

    requests_sent = 1

    def __init__(self, connection: H2ServerSideProtocol) -> None:
        super().__init__(connection, 0)
        self.server = connection.server
        self.receiver: ResponseReceiver | None = None
        self._released = False

    @property
    def connected(self) -> bool:
        return self.connection.connected

    # Upstream: the request.

    def send_whole_request(self, request: Request, headers: Headers, receiver: ResponseReceiver, done: Callable[[], None]) -> None:
        body = request.raw_content or b""
        block = http2.request_block(request, headers)
        declared = any(name == b"content-length" for name, _ in block)
        trailers = request.trailers.fields if request.trailers is not None else ()
        self._open(receiver, lambda: self.send_whole(http2.with_length(block, len(body) if body or declared else None), body, trailers, done))

    def start_request(self, request: Request, source: http1.BodyFraming, transformed: bool, receiver: ResponseReceiver) -> BodyWriter:
        block, writer = streamed_writer(self.output, http2.request_block(request, request.headers), source, transformed)
        self._open(receiver, lambda: self.send_headers(block))
        return framing.MessageTrailers(writer, request)

    def _open(self, receiver: ResponseReceiver, send: Callable[[], None]) -> None:
        """Take the next stream id and send the request head on it."""
        connection = self.connection
        self.stream_id = connection.h2.get_next_available_stream_id()
        try:
            send()
        except ValueError:
            self.stream_id = 0
            raise
        self.receiver = receiver
        connection.streams[self.stream_id] = self
        self.input.on_end = self._response_complete

    def head_received(self, block: tuple[tuple[bytes, bytes], ...], ends_stream: bool) -> None:
        """A response head (interim or final) arrived on this stream."""
        try:
            head = http2.response_head_from_block(block)
        except ProtocolError as error:
            self.connection.reset(self, ErrorCodes.PROTOCOL_ERROR)
            self.fail(error)
            return
        if not 100 <= head.status_code < 200:
            self._framing = http2.body_framing(head.headers, ends_stream)
        if self.receiver is not None:
            self.receiver.response_head(head)

    def _response_complete(self) -> None:
        if self.receiver is not None:
            self.receiver.response_complete()

    def release(self) -> None:
        """The exchange is over: a stream still open is cancelled; its room is freed."""
        self.receiver = None
        if self.stream_id and self.stream_id in self.connection.streams and not self.input.finished:
            self.connection.reset(self, ErrorCodes.CANCEL)
        else:
            self.connection.forget(self)
        self._release_room()

    def abort(self) -> None:
        """Cancel this stream now (RST_STREAM), so neither side sees it complete."""
        if self.stream_id:
            self.connection.reset(self, ErrorCodes.CANCEL)
        self.output.stop()
        self._release_room()

    def _release_room(self) -> None:
        if not self._released:
            self._released = True
            assert isinstance(self.connection, H2ServerSideProtocol)
            self.connection.released(self)

    def switch_to(self, protocol: IProtocol, head: bytes) -> None:
        """HTTP/2 streams do not switch protocols: cancel the stream."""
        self.abort()

    def fail(self, error: ProtocolError) -> None:
        """The stream failed (reset by the server, connection lost): so does its exchange."""
        receiver, self.receiver = self.receiver, None
        super().fail(error)
        if receiver is not None:
            receiver.server_failed(error)
        self._release_room()

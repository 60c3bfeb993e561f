# -*- test-case-name: tests.test_h2_inmemory -*-
"""What both HTTP/2 legs share: one C{h2} connection on a transport, and its streams' two halves.

L{H2Connection} feeds the bytes it reads to C{h2}, hands the events to its streams and
writes what C{h2} has to send. Each stream has a L{StreamInput}, the body it receives
(the L{BodySource} half an exchange reads), and a L{StreamOutput}, the body it sends
(an C{IConsumer} a L{BodyPipe} writes to).

Flow control is the backpressure (docs/http2.md):

  - A L{StreamInput} acknowledges DATA (so C{h2} sends WINDOW_UPDATE) only once the
    body's destination has taken it. While the destination is full, or the hooks are
    deciding, the bytes wait unacknowledged, so the peer can send no more than the
    stream's window (L{STREAM_WINDOW}) on that stream, and only that stream stops.
  - The connection's own window is L{STREAM_WINDOW} times L{MAX_STREAMS}: a stalled
    stream can never use up the window the other streams need.
  - A L{StreamOutput} sends what the peer's window for its stream allows and keeps the
    rest; while it keeps anything it pauses its producer (the pipe), which stops the
    source. A full transport pauses every stream's producer.
  - A peer that does not read what it makes the proxy send (PING or SETTINGS floods,
    whose answers C{h2} writes on its own) cannot grow the transport's buffer without
    bound: past L{FLOOD_LIMIT} bytes written while the transport is full, the connection
    is dropped.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import TYPE_CHECKING

import h2.connection
import h2.events
import h2.exceptions
from h2.errors import ErrorCodes
from h2.settings import SettingCodes, Settings
from twisted.internet import error as net_error
from twisted.internet.interfaces import IConsumer, IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mitm import http1, http2
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.proxy.pipe import BodySink, Fields, tune_transport

if TYPE_CHECKING:
    from twisted_mitm.proxy.pipe import BodyWriter

#: Bytes a peer may send on one stream before the proxy has passed them on.
STREAM_WINDOW = 256 * 1024
#: Streams a peer may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
MAX_STREAMS = 100
#: The connection's receive window: every stream's window at once.
CONNECTION_WINDOW = STREAM_WINDOW * MAX_STREAMS
#: Largest decoded header block accepted (SETTINGS_MAX_HEADER_LIST_SIZE, enforced by HPACK).
MAX_HEADER_LIST = 64 * 1024
#: Bytes the proxy writes to a transport that is already full before it gives up on the peer.
FLOOD_LIMIT = 1024 * 1024
_DEFAULT_WINDOW = 65535


def local_settings(client_side: bool) -> Settings:
    """What the proxy announces to a peer: the limits above, and no server push."""
    values = {
        SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
        SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
        SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
    }
    if client_side:
        values[SettingCodes.ENABLE_PUSH] = 0
    return Settings(client=client_side, initial_values=values)


class H2Connection(Protocol):
    """One HTTP/2 connection, either leg; subclasses say what a new stream or head means.

    @ivar h2: the C{h2} state machine.
    @ivar streams: the streams still in use, by id.
    @ivar transport_full: the transport asked us to stop writing.
    """

    _log = Logger()

    def __init__(self, client_side: bool, reactor: IReactorTime) -> None:
        self.h2 = h2.connection.H2Connection(http2.connection_config(client_side))
        self.h2.local_settings = local_settings(client_side)
        self.reactor = reactor
        self.streams: dict[int, H2Stream] = {}
        self.transport_full = False
        self.connected = False
        self._written_while_full = 0

    # Twisted callbacks.

    def connectionMade(self) -> None:
        self.connected = True
        tune_transport(self.transport)
        self.transport.registerProducer(_TransportWatch(self), True)
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - _DEFAULT_WINDOW)
        self.send_pending()

    def dataReceived(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as error:
            self._log.info("{peer}: HTTP/2 protocol error: {error}", peer=self.peer_name(), error=error)
            self.send_pending()
            self.fail_all(ProtocolError(502, f"HTTP/2 protocol error: {error}"))
            self.close_transport()
            return
        for event in events:
            self.event_received(event)
        self.send_pending()

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:
        self.connected = False
        self.fail_all(ProtocolError(502, "the connection was lost"))

    # Events.

    def event_received(self, event: h2.events.Event) -> None:
        """Act on one C{h2} event; subclasses add the heads."""
        stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2.events.DataReceived):
            if stream is None:
                self.acknowledge(event.stream_id, event.flow_controlled_length)
            else:
                stream.input.receive(event.data, event.flow_controlled_length)
        elif isinstance(event, h2.events.TrailersReceived):
            if stream is not None:
                stream.input.trailers = tuple(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            if stream is not None:
                stream.input.end()
        elif isinstance(event, h2.events.StreamReset):
            if stream is not None:
                self.forget(stream)
                stream.reset_by_peer(event.error_code)
        elif isinstance(event, h2.events.WindowUpdated):
            self._window_opened(stream if event.stream_id else None)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._window_opened(None)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.terminated(event)

    def terminated(self, event: h2.events.ConnectionTerminated) -> None:
        """The peer sent GOAWAY: streams it did not take fail, the connection closes."""
        last = event.last_stream_id or 0
        for stream in list(self.streams.values()):
            if stream.stream_id > last:
                self.forget(stream)
                stream.fail(ProtocolError(502, f"the peer closed the HTTP/2 connection (GOAWAY {_code(event.error_code)})"))
        self.close_transport()

    def _window_opened(self, stream: H2Stream | None) -> None:
        streams = [stream] if stream is not None else list(self.streams.values())
        for each in streams:
            each.output.flush()

    # What streams ask for.

    def send_pending(self) -> None:
        """Write what C{h2} has to send."""
        data = self.h2.data_to_send()
        if not data or self.transport is None:
            return
        self.transport.write(data)
        if self.transport_full:
            self._written_while_full += len(data)
            if self._written_while_full > FLOOD_LIMIT and self.connected:
                self._log.warn("{peer}: the peer reads nothing of what it keeps asking for; dropping the connection", peer=self.peer_name())
                self.transport.abortConnection()

    def acknowledge(self, stream_id: int, size: int) -> None:
        """C{size} flow-controlled bytes of C{stream_id} were passed on: let the peer send more."""
        if size and self.connected:
            self.h2.acknowledge_received_data(size, stream_id)

    def reset(self, stream: H2Stream, code: ErrorCodes) -> None:
        """End C{stream} with RST_STREAM, and forget it."""
        self.forget(stream)
        if self.connected:
            try:
                self.h2.reset_stream(stream.stream_id, code)
            except h2.exceptions.StreamClosedError:
                pass
            self.send_pending()

    def forget(self, stream: H2Stream) -> None:
        """C{stream} is over: acknowledge what it still held, stop tracking it."""
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
        stream.input.discard()
        stream.stop_watching()

    def fail_all(self, error: ProtocolError) -> None:
        """The connection failed: so does every stream on it."""
        for stream in list(self.streams.values()):
            self.forget(stream)
            stream.fail(error)

    def transport_paused(self, paused: bool) -> None:
        """The transport is full (or drained): stop (or resume) sending stream data."""
        self.transport_full = paused
        self._written_while_full = 0
        for stream in list(self.streams.values()):
            stream.output.flush()

    def close_transport(self) -> None:
        """Close the connection once what was written went out (TLS waits for no producer)."""
        if self.transport is not None and self.connected:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def peer_name(self) -> str:
        """The peer's address, for log lines."""
        peer = self.transport.getPeer() if self.transport is not None else None
        return f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"


def _code(code: object) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return str(code)


@implementer(IPushProducer)
class _TransportWatch:
    """Registered on the connection's transport: tells the connection when it fills and drains."""

    def __init__(self, connection: H2Connection) -> None:
        self._connection = connection

    def pauseProducing(self) -> None:
        self._connection.transport_paused(True)

    def resumeProducing(self) -> None:
        self._connection.transport_paused(False)

    def stopProducing(self) -> None:
        """The connection ends through C{connectionLost}."""


class H2Stream:
    """One stream of an L{H2Connection}: the body it receives and the body it sends.

    Subclasses are the exchange's faces (a client's request stream, an upstream
    request); they say what a failure means to their exchange. The L{BodySource} face
    they share is here: the body received is read through L{input}, what is sent goes
    out through L{output}.
    """

    def __init__(self, connection: H2Connection, stream_id: int) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.input = StreamInput(self)
        self.output = StreamOutput(self)
        self._watchdog: IDelayedCall | None = None
        #: how the body received is delimited, once its head is known
        self._framing: http1.BodyFraming | None = None

    @property
    def framing(self) -> http1.BodyFraming | None:
        return self._framing

    @property
    def producer(self) -> IPushProducer:
        return self.input

    @property
    def consumer(self) -> IConsumer:
        return self.output

    def hold_body(self) -> None:
        self.input.hold()

    def read_body(self, sink: BodySink) -> None:
        self.input.read_body(sink)

    def send_headers(self, block: list[tuple[bytes, bytes]], end_stream: bool = False) -> None:
        """Send a header block on this stream.

        @raise ValueError: C{h2} refuses the block (a script made it invalid); nothing was sent.
        """
        try:
            self.connection.h2.send_headers(self.stream_id, block, end_stream=end_stream)
        except h2.exceptions.StreamClosedError:
            return
        except h2.exceptions.ProtocolError as error:
            raise ValueError(str(error) or type(error).__name__) from None
        self.connection.send_pending()

    def send_whole(self, block: list[tuple[bytes, bytes]], body: bytes, trailers: Fields, done: Callable[[], None]) -> None:
        """Send a message held in memory: its head, body and trailers; C{done()} once all went out."""
        if not body and not trailers:
            self.send_headers(block, end_stream=True)
            self.output.closed = True
            done()
            return
        self.send_headers(block)
        self.output.write(body)
        self.output.end(trailers, done)

    def reset_by_peer(self, code: object) -> None:
        """The peer reset this stream."""
        self.fail(ProtocolError(502, f"the peer reset the stream ({_code(code)})"))

    def fail(self, error: ProtocolError) -> None:
        """The stream cannot go on (reset, connection lost)."""
        self.output.stop()
        self.input.fail(error)

    def watch_silence(self, timeout: float, on_silence: Callable[[float], None]) -> None:
        """Call C{on_silence(timeout)} if the peer sends nothing on this stream for C{timeout} seconds,
        not counting time during which the proxy itself does not read it."""
        self.stop_watching()
        self.input.last_received = self.connection.reactor.seconds()
        self._watchdog = self.connection.reactor.callLater(timeout, self._check_silence, timeout, on_silence)

    def _check_silence(self, timeout: float, on_silence: Callable[[float], None]) -> None:
        now = self.connection.reactor.seconds()
        if self.input.holding:
            self.input.last_received = now
        silent_until = self.input.last_received + timeout
        if now < silent_until:
            self._watchdog = self.connection.reactor.callLater(silent_until - now, self._check_silence, timeout, on_silence)
            return
        self._watchdog = None
        on_silence(timeout)

    def stop_watching(self) -> None:
        """Cancel L{watch_silence}."""
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None


@implementer(IPushProducer)
class StreamInput:
    """The body a stream receives, handed to a sink only as fast as its destination takes it.

    Received DATA waits here, unacknowledged, while the body is held (hooks deciding) or
    its destination is full (L{pauseProducing}); it is acknowledged as it is passed on.
    The peer cannot send more than the stream's window, so that bounds what waits.

    @ivar trailers: the trailer fields, once received.
    @ivar last_received: when data last arrived (for a silence watchdog).
    @ivar on_end: called when the whole body was passed on, just before the sink is finished.
    """

    def __init__(self, stream: H2Stream) -> None:
        self._stream = stream
        self._waiting: collections.deque[tuple[bytes, int]] = collections.deque()
        self._sink: BodySink | None = None
        self._held = True
        self._paused = False
        self._ended = False
        self._delivering = False
        self._done = False
        self.trailers: Fields = ()
        self.last_received = 0.0
        self.on_end: Callable[[], None] | None = None

    @property
    def holding(self) -> bool:
        """Whether the proxy itself is not reading this body now (deciding, or pushed back)."""
        return self._held or self._paused

    def receive(self, data: bytes, flow_controlled: int) -> None:
        """DATA arrived (C{flow_controlled} counts its padding too)."""
        self.last_received = self._stream.connection.reactor.seconds()
        self._waiting.append((data, flow_controlled))
        self._deliver()

    def end(self) -> None:
        """The peer ended the stream: the body is complete once what waits was passed on."""
        self._ended = True
        self._deliver()

    def hold(self) -> None:
        """Pass nothing on until L{read_body}."""
        self._held = True

    def read_body(self, sink: BodySink) -> None:
        """Pass the body to C{sink}, from what already waits on."""
        self._sink = sink
        self._held = False
        self._deliver()

    def fail(self, error: ProtocolError) -> None:
        """The body will not complete: the sink is told so."""
        sink, self._sink = self._sink, None
        self._done = True
        if sink is not None:
            sink.abort(Failure(error))

    def discard(self) -> None:
        """The stream is over: acknowledge what still waits, so the connection's window is not lost."""
        waiting, self._waiting = self._waiting, collections.deque()
        for _, size in waiting:
            self._stream.connection.acknowledge(self._stream.stream_id, size)

    @property
    def finished(self) -> bool:
        """Whether the whole body was passed on."""
        return self._done

    def _deliver(self) -> None:
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._waiting and self._sink is not None and not self._held and not self._paused:
                data, size = self._waiting.popleft()
                if data:
                    self._sink.write(http1.Data(data))
                self._stream.connection.acknowledge(self._stream.stream_id, size)
            if self._ended and not self._waiting and self._sink is not None and not self._held and not self._done:
                sink, self._sink = self._sink, None
                self._done = True
                if self.on_end is not None:
                    self.on_end()
                sink.finish(self.trailers)
        finally:
            self._delivering = False
        self._stream.connection.send_pending()

    # IPushProducer: the body's destination pauses it.

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._deliver()

    def stopProducing(self) -> None:
        """The destination went away: read no more; the exchange's failure ends the stream."""
        self._paused = True


@implementer(IConsumer)
class StreamOutput:
    """The body a stream sends: as much as the peer's window allows, the rest kept.

    While anything is kept, the registered producer (a L{BodyPipe}) is paused, so what
    is kept is at most about one piece from the source.

    @ivar closed: the stream was ended or reset: nothing more goes out.
    """

    def __init__(self, stream: H2Stream) -> None:
        self._stream = stream
        self._kept: collections.deque[bytes] = collections.deque()
        self._offset = 0
        self._producer: IPushProducer | None = None
        self._producer_paused = False
        self._end: tuple[Fields, Callable[[], None]] | None = None
        self.closed = False

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        assert streaming, "an HTTP/2 stream takes streaming producers only"
        self._producer = producer
        self._producer_paused = False
        self._update_producer()

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        if data and not self.closed:
            self._kept.append(data)
            self.flush()

    def writeSequence(self, data: list[bytes]) -> None:
        for piece in data:
            self.write(piece)

    def end(self, trailers: Fields, done: Callable[[], None] = lambda: None) -> None:
        """End the stream once everything kept went out: with trailers if there are any."""
        self._end = (trailers, done)
        self.flush()

    def stop(self) -> None:
        """The stream is gone: drop what is kept, tell the producer."""
        self.closed = True
        self._kept.clear()
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.stopProducing()

    def flush(self) -> None:
        """Send what the windows and the transport allow."""
        connection = self._stream.connection
        if self.closed or not connection.connected:
            return
        while self._kept and not connection.transport_full:
            window = connection.h2.local_flow_control_window(self._stream.stream_id)
            if window <= 0:
                break
            piece = self._kept[0]
            size = min(window, connection.h2.max_outbound_frame_size, len(piece) - self._offset)
            connection.h2.send_data(self._stream.stream_id, piece[self._offset : self._offset + size])
            self._offset += size
            if self._offset == len(piece):
                self._kept.popleft()
                self._offset = 0
        if not self._kept and self._end is not None:
            self._finish(*self._end)
        connection.send_pending()
        self._update_producer()

    def _finish(self, trailers: Fields, done: Callable[[], None]) -> None:
        self._end = None
        self.closed = True
        block = http2.trailer_block(trailers)
        try:
            if block:
                self._stream.connection.h2.send_headers(self._stream.stream_id, block, end_stream=True)
            else:
                self._stream.connection.h2.end_stream(self._stream.stream_id)
        except h2.exceptions.StreamClosedError:
            return
        done()

    def _update_producer(self) -> None:
        if self._producer is None:
            return
        blocked = bool(self._kept) or self._stream.connection.transport_full
        if blocked != self._producer_paused:
            self._producer_paused = blocked
            if blocked:
                self._producer.pauseProducing()
            else:
                self._producer.resumeProducing()


class StreamBodyWriter:
    """Writes a streamed body to an HTTP/2 stream: DATA frames, then trailers or END_STREAM.

    With a declared length (the body passes untouched), a body that ends short or runs
    long is an error, as for HTTP/1's C{LengthWriter}: the stream is then reset, never
    ended cleanly.
    """

    def __init__(self, output: StreamOutput, length: int | None) -> None:
        self.transport: IConsumer = output
        self._output = output
        self._remaining = length

    def write_piece(self, piece: http1.Data) -> None:
        self.write(piece.data)

    def write(self, data: bytes) -> None:
        if self._remaining is not None:
            self._remaining -= len(data)
            if self._remaining < 0:
                raise ValueError("body longer than its Content-Length")
        self._output.write(data)

    def finish(self, trailers: Fields) -> None:
        if self._remaining:
            raise ValueError(f"body ended {self._remaining} bytes short of its Content-Length")
        self._output.end(trailers)


def streamed_writer(output: StreamOutput, fields: list[tuple[bytes, bytes]], source: http1.BodyFraming | None, transformed: bool) -> tuple[list[tuple[bytes, bytes]], BodyWriter]:
    """The header fields and body writer of a message streamed to an HTTP/2 peer: a body
    passed untouched keeps its declared length, any other has none."""
    length = source.length if source is not None and source.kind is http1.FramingKind.LENGTH and not transformed else None
    return http2.with_length(fields, length), StreamBodyWriter(output, length)

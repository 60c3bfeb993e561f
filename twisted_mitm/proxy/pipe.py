# -*- test-case-name: tests.test_pipe -*-
"""The streaming pipe: how body bytes get from one peer to the other.

Three pieces, each small:

  - L{ReaderPump} sits in a protocol between the socket and the HTTP/1 reader. It
    pulls parsed events out of the reader only while nobody holds it, and pauses the
    socket once the unread backlog passes L{ReaderPump.high_water}. It is also the
    C{IPushProducer} of the body being read: a full destination pauses it.
  - A body sink receives the pieces of one body: L{BufferSink} keeps them for the
    hooks, L{DiscardSink} drops them, L{BodyPipe} forwards them.
  - A body writer (L{LengthWriter}, L{ChunkedWriter}, L{CloseDelimitedWriter}) puts
    the framing around the bytes on the destination transport.

A L{BodyPipe} is registered as the streaming producer of the destination
transport: when that transport's buffer fills, Twisted calls C{pauseProducing} on the
pipe, which holds the source's pump, which pauses the source socket. Memory per
streamed direction is therefore bounded by the pump's high-water mark plus one socket
read plus the destination transport's own buffer (see docs/design.md).
"""

from __future__ import annotations

import enum
import io
from collections.abc import Callable, Iterable
from typing import Protocol

from twisted.internet.interfaces import IConsumer, IDelayedCall, IPullProducer, IPushProducer, IReactorTime, ITCPTransport, ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mitm import http1
from twisted_mitm.exceptions import ProtocolError

Fields = tuple[tuple[bytes, bytes], ...]


#: Bytes read per C{recv} and buffered per transport before it pushes back: four times
#: Twisted's default, which measurably cuts the per-chunk cost of streaming.
TRANSPORT_BUFFER = 256 * 1024


def tune_transport(transport: object) -> None:
    """Set up a TCP transport (TLS-wrapped or not) for relaying.

    Small writes go out at once (no Nagle delay: a proxy writes a head and then a body, a
    chunk header and then its data), and reads and the write buffer use
    L{TRANSPORT_BUFFER}.
    """
    tcp = ITCPTransport(transport, None)
    if tcp is not None:
        tcp.setTcpNoDelay(True)
        tcp.bufferSize = TRANSPORT_BUFFER


class Side(enum.Enum):
    """One of the two legs of a relay: the one facing the client, or the server."""

    CLIENT = "client"
    SERVER = "server"

    @property
    def other(self) -> Side:
        """The leg at the other end."""
        return Side.SERVER if self is Side.CLIENT else Side.CLIENT


class Hold(enum.Enum):
    """Why reading is paused: a L{ReaderPump} handing out no events, or a L{Valve} closed."""

    #: a new client: the C{client_connected} hooks have not yet let it in
    ADMITTING = enum.auto()
    #: a head was read and the hooks have not yet said where its body goes
    DECIDING = enum.auto()
    #: the body's destination is full (backpressure)
    CONSUMER = enum.auto()
    #: the message is read; the exchange it belongs to is not finished yet
    EXCHANGE = enum.auto()
    #: the connection has left HTTP/1 (CONNECT tunnel, WebSocket)
    SWITCHED = enum.auto()
    #: the other leg of a relay is still connecting
    CONNECTING = enum.auto()
    #: hooks are still busy with what was read before
    HOOKS = enum.auto()


class Reader(Protocol):
    """What L{ReaderPump} needs of L{http1.RequestReader} / L{http1.ResponseReader}."""

    def receive_data(self, data: bytes) -> None: ...
    def receive_eof(self) -> None: ...
    def next_event(self) -> object: ...
    @property
    def pending(self) -> int: ...


@implementer(IPushProducer)
class ReaderPump:
    """Moves events from an HTTP/1 reader to a handler, with flow control.

    The handler is called with each event while no L{Hold} is in force. The socket is
    paused while the reader holds more than C{high_water} unread bytes, and resumed when
    the backlog has been taken below it again: so a peer can neither make us buffer
    without bound nor lose us the end of a connection we still want to notice.

    @ivar holds: the reasons currently stopping the flow of events.
    """

    high_water = 256 * 1024

    def __init__(
        self,
        reader: Reader,
        handle_event: Callable[[object], None],
        handle_error: Callable[[ProtocolError], None],
    ) -> None:
        self.reader = reader
        self.holds: set[Hold] = set()
        self._handle_event = handle_event
        self._handle_error = handle_error
        self._transport: ITransport | None = None
        self._socket_paused = False
        self._clock: IReactorTime | None = None
        self._last_read = 0.0
        self._watchdog: IDelayedCall | None = None
        self._on_silence: Callable[[float], None] | None = None
        self._pumping = False
        #: the reader failed or the peer closed: nothing more will come out of it
        self._broken = False
        self.on_stop: Callable[[], None] | None = None

    def attach(self, transport: ITransport) -> None:
        """Start watching C{transport}'s backlog (called from C{connectionMade})."""
        self._transport = transport

    def detach(self) -> None:
        """Stop controlling the socket (the connection left HTTP/1); resume it if paused."""
        if self._transport is not None and self._socket_paused:
            self._transport.resumeProducing()
        self._socket_paused = False
        self._transport = None

    def data_received(self, data: bytes) -> None:
        """Feed bytes from the socket and hand out what can be handed out."""
        if self._clock is not None:
            self._last_read = self._clock.seconds()
        self.reader.receive_data(data)
        self.pump()

    def eof_received(self) -> None:
        """The peer closed its side; let the reader say what that means."""
        self.reader.receive_eof()
        self.pump()

    def hold(self, reason: Hold) -> None:
        """Stop handing out events for C{reason}."""
        self.holds.add(reason)

    def release(self, reason: Hold) -> None:
        """Lift C{reason}; resume handing out events once no hold is left."""
        self.holds.discard(reason)
        if not self.holds:
            self.pump()

    def pump(self) -> None:
        """Hand out events until a hold appears or the reader needs more bytes."""
        if self._pumping or self._broken:
            return
        self._pumping = True
        try:
            while not self.holds and not self._broken:
                try:
                    event = self.reader.next_event()
                except ProtocolError as error:
                    self._broken = True
                    self._handle_error(error)
                    return
                if event is http1.NEED_DATA:
                    break
                if isinstance(event, http1.ConnectionClosed):
                    self._broken = True
                self._handle_event(event)
        finally:
            self._pumping = False
            self._update_socket()

    def watch_silence(self, clock: IReactorTime, timeout: float, on_silence: Callable[[float], None]) -> None:
        """Call C{on_silence(timeout)} once if the peer sends nothing for C{timeout} seconds.

        Time during which the proxy itself does not want to read (a hook deciding, a full
        destination pushing back) does not count against the peer.
        """
        self.stop_watching()
        self._clock = clock
        self._on_silence = on_silence
        self._last_read = clock.seconds()
        self._watchdog = clock.callLater(timeout, self._check_silence, timeout)

    def stop_watching(self) -> None:
        """Cancel L{watch_silence}."""
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None
        self._on_silence = None
        self._clock = None

    def _check_silence(self, timeout: float) -> None:
        assert self._clock is not None
        now = self._clock.seconds()
        if self.holds & {Hold.DECIDING, Hold.CONSUMER}:
            self._last_read = now
        silent_until = self._last_read + timeout
        if now < silent_until:
            self._watchdog = self._clock.callLater(silent_until - now, self._check_silence, timeout)
            return
        on_silence = self._on_silence
        self.stop_watching()
        if on_silence is not None:
            on_silence(timeout)

    def _update_socket(self) -> None:
        if self._transport is None or self._broken:
            return
        backlog = self.reader.pending >= self.high_water
        if backlog and not self._socket_paused:
            self._socket_paused = True
            self._transport.pauseProducing()
        elif not backlog and self._socket_paused:
            self._socket_paused = False
            self._transport.resumeProducing()

    # IPushProducer, for the body currently being read.

    def pauseProducing(self) -> None:
        self.hold(Hold.CONSUMER)

    def resumeProducing(self) -> None:
        self.release(Hold.CONSUMER)

    def stopProducing(self) -> None:
        self.hold(Hold.CONSUMER)
        if self.on_stop is not None:
            self.on_stop()


class PumpSource:
    """The L{BodySource} face of a protocol that reads HTTP/1 through a L{ReaderPump}
    (the client side reads requests so, the server side responses)."""

    pump: ReaderPump
    transport: ITransport

    @property
    def framing(self) -> http1.BodyFraming | None:
        """How the body of the message just read is delimited."""
        return self.pump.reader.framing  # type: ignore[attr-defined, no-any-return]

    @property
    def producer(self) -> IPushProducer:
        """The reader: pausing it pauses reading from the peer."""
        return self.pump

    @property
    def consumer(self) -> IConsumer:
        """Where bytes for the peer are written."""
        return self.transport  # type: ignore[return-value]

    def hold_body(self) -> None:
        """Read nothing of the body until C{read_body} says where it goes."""
        self.pump.hold(Hold.DECIDING)


@implementer(IPushProducer)
class Valve:
    """Reading on one leg of a relay, paused while any reason to pause it holds.

    Registered as the streaming producer of the other leg's transport (Twisted's
    portforward idiom), so a full destination is one reason (L{Hold.CONSUMER}); a
    relay adds its own (L{Hold.HOOKS}, L{Hold.CONNECTING}). One reason ending must
    not resume a leg that another reason still holds.
    """

    def __init__(self, transport: IPushProducer) -> None:
        self.transport = transport
        self._reasons: set[Hold] = set()

    def hold(self, reason: Hold) -> None:
        """Pause reading for C{reason}."""
        if not self._reasons:
            self.transport.pauseProducing()
        self._reasons.add(reason)

    def release(self, reason: Hold) -> None:
        """Lift C{reason}; resume reading once no reason is left."""
        if reason in self._reasons:
            self._reasons.remove(reason)
            if not self._reasons:
                self.transport.resumeProducing()

    def pauseProducing(self) -> None:
        self.hold(Hold.CONSUMER)

    def resumeProducing(self) -> None:
        self.release(Hold.CONSUMER)

    def stopProducing(self) -> None:
        """The destination is gone; the relay closes this leg itself when a leg is lost."""


class BodySink(Protocol):
    """Where the pieces of one body go as they are read."""

    def write(self, piece: http1.Data) -> None: ...
    def finish(self, trailers: Fields) -> None: ...
    def abort(self, reason: Failure) -> None: ...


class BufferSink:
    """Keeps a body in memory for the hooks.

    C{overflow} is called once the body passes C{limit} bytes, after which this sink
    takes nothing more; C{done} gets the whole body at its end and C{failed} a failure
    of the source. With C{keep_pieces} the pieces read so far are kept as they came (with
    their chunk boundaries) and handed to C{overflow}, so they can be streamed on;
    otherwise the body goes straight into one growing buffer, so that holding a body
    costs about its size once, not twice. (The buffer is deliberately not sized from a
    declared Content-Length: a client could make the proxy allocate memory for a body
    it never sends.)
    """

    def __init__(
        self,
        done: Callable[[bytes, Fields], None],
        failed: Callable[[Failure], None],
        limit: int | None = None,
        overflow: Callable[[list[http1.Data]], None] | None = None,
        keep_pieces: bool = False,
    ) -> None:
        self._pieces: list[http1.Data] | None = [] if keep_pieces else None
        self._buffer = io.BytesIO()
        self._size = 0
        self._done = done
        self._failed = failed
        self._limit = limit
        self._overflow = overflow
        self._overflowed = False

    def write(self, piece: http1.Data) -> None:
        if self._overflowed:
            return
        if self._pieces is not None:
            self._pieces.append(piece)
        else:
            self._buffer.write(piece.data)
        self._size += len(piece.data)
        if self._limit is not None and self._size > self._limit and self._overflow is not None:
            self._overflowed = True
            pieces, self._pieces = self._pieces or [], None
            self._buffer = io.BytesIO()
            self._overflow(pieces)

    def finish(self, trailers: Fields) -> None:
        if self._overflowed:
            return
        if self._pieces is not None:
            body = b"".join(piece.data for piece in self._pieces)
        else:
            body = self._buffer.getvalue()
        self._pieces, self._buffer = None, io.BytesIO()
        self._done(body, trailers)

    def abort(self, reason: Failure) -> None:
        if not self._overflowed:
            self._failed(reason)


class DiscardSink:
    """Reads a body to its end and forgets it (a request answered by the proxy itself)."""

    def __init__(self, done: Callable[[], None] = lambda: None) -> None:
        self._done = done

    def write(self, piece: http1.Data) -> None:
        pass

    def finish(self, trailers: Fields) -> None:
        self._done()

    def abort(self, reason: Failure) -> None:
        pass


@implementer(IPullProducer)
class PacedWriter:
    """Writes a message held in memory to a transport a slice at a time, as it drains.

    Handing a large body to C{transport.write} at once would make the transport keep a
    second copy of it (and TLS encrypt all of it in one go); registered as a pull
    producer, this writes C{slice_size} bytes each time the transport asks for more.
    C{done} is called once everything was handed over.
    """

    slice_size = 256 * 1024

    def __init__(self, transport: IConsumer, pieces: list[bytes], done: Callable[[], None]) -> None:
        self._transport = transport
        self._pieces = [piece for piece in pieces if piece]
        self._offset = 0
        self._done = done
        self._stopped = False

    @classmethod
    def write(cls, transport: IConsumer, pieces: list[bytes], done: Callable[[], None]) -> None:
        """Write C{pieces}: at once when they are small, paced by the transport otherwise."""
        if sum(len(piece) for piece in pieces) <= cls.slice_size:
            transport.writeSequence(pieces)
            done()
            return
        transport.registerProducer(cls(transport, pieces, done), False)

    def resumeProducing(self) -> None:
        if self._stopped:
            return
        piece = self._pieces[0]
        end = self._offset + self.slice_size
        self._transport.write(piece[self._offset : end] if self._offset or end < len(piece) else piece)
        if end < len(piece):
            self._offset = end
            return
        self._pieces.pop(0)
        self._offset = 0
        if not self._pieces:
            self._stopped = True
            self._transport.unregisterProducer()
            self._done()

    def stopProducing(self) -> None:
        self._stopped = True


class BodyWriter(Protocol):
    """Frames body bytes onto a transport."""

    transport: IConsumer

    def write_piece(self, piece: http1.Data) -> None: ...
    def write(self, data: bytes) -> None: ...
    def finish(self, trailers: Fields) -> None: ...


class WrongBodyLength(Exception):
    """A body ended shorter or longer than its declared Content-Length."""


class LengthWriter:
    """Writes a body whose Content-Length was declared, and enforces it."""

    def __init__(self, transport: IConsumer, length: int) -> None:
        self.transport = transport
        self._remaining = length

    def write_piece(self, piece: http1.Data) -> None:
        self.write(piece.data)

    def write(self, data: bytes) -> None:
        self._remaining -= len(data)
        if self._remaining < 0:
            raise WrongBodyLength("body longer than its Content-Length")
        self.transport.write(data)

    def finish(self, trailers: Fields) -> None:
        if self._remaining:
            raise WrongBodyLength(f"body ended {self._remaining} bytes short of its Content-Length")


class ChunkedWriter:
    """Writes a body in chunked transfer coding.

    Pieces that carry the source's chunk boundaries (L{http1.Data.chunk_size}) are
    written with those same boundaries, without buffering; other data becomes one chunk
    per write.
    """

    def __init__(self, transport: IConsumer) -> None:
        self.transport = transport
        self._in_source_chunk = False

    def write_piece(self, piece: http1.Data) -> None:
        if piece.chunk_size is not None:
            self.transport.write(http1.chunk_header(piece.chunk_size))
            self._in_source_chunk = True
        elif not self._in_source_chunk:
            self.write(piece.data)
            return
        self.transport.write(piece.data)
        if piece.chunk_end:
            self.transport.write(http1.CHUNK_END)
            self._in_source_chunk = False

    def write(self, data: bytes) -> None:
        if data:
            self.transport.writeSequence([http1.chunk_header(len(data)), data, http1.CHUNK_END])

    def finish(self, trailers: Fields) -> None:
        self.transport.write(http1.last_chunk(trailers))


class CloseDelimitedWriter:
    """Writes a body whose end is the end of the connection (HTTP/1.0 style)."""

    def __init__(self, transport: IConsumer) -> None:
        self.transport = transport

    def write_piece(self, piece: http1.Data) -> None:
        self.transport.write(piece.data)

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def finish(self, trailers: Fields) -> None:
        """Nothing to write: the caller closes the connection after the body."""


class Transform(Protocol):
    """A C{.stream} callable, adapted: bytes in, bytes out, with flow control.

    C{start} gives it where its output goes, how to say that its input backlog is
    full (C{set_backlogged(True)}) or drained again (C{set_backlogged(False)}), and how to
    fail the body at any time (a transform running on its own may break before the end).
    """

    def start(
        self, emit: Callable[[bytes], None], set_backlogged: Callable[[bool], None], failed: Callable[[Failure], None]
    ) -> None: ...
    def feed(self, data: bytes) -> None: ...
    def end(self, done: Callable[[], None], failed: Callable[[Failure], None]) -> None: ...
    def pause_output(self) -> None: ...
    def resume_output(self) -> None: ...
    def cancel(self) -> None: ...


def _ended(*args: object) -> None:
    """What an ended L{BodyPipe} calls instead of its owner's callbacks: nothing."""


@implementer(IPushProducer)
class BodyPipe:
    """Forwards one body from a source pump to a destination writer as it arrives.

    It is registered as the streaming producer of the destination transport for as long
    as the body lasts. C{done} is called once the body was written whole; C{failed}
    once with the reason if either side failed, after which the pipe does nothing more.
    It then lets go of both callbacks and of the transform: their owner (the exchange)
    holds the pipe, and that cycle would keep the flow alive until the garbage
    collector's next full pass.

    @ivar size: body bytes received from the source so far.
    """

    _log = Logger()

    def __init__(
        self,
        source: IPushProducer,
        writer: BodyWriter,
        done: Callable[[], None],
        failed: Callable[[Failure], None],
        transform: Transform | None = None,
    ) -> None:
        self.size = 0
        self._source = source
        self._writer = writer
        self._done = done
        self._failed = failed
        self._transform = transform
        self._finished = False
        self._destination_full = False
        self._transform_backlogged = False
        self._source_paused = False
        writer.transport.registerProducer(self, True)
        if transform is not None:
            transform.start(self._write_transformed, self._set_transform_backlogged, self._fail)

    def write(self, piece: http1.Data) -> None:
        """Forward one piece read from the source."""
        if self._finished:
            return
        self.size += len(piece.data)
        try:
            if self._transform is None:
                self._writer.write_piece(piece)
            else:
                self._transform.feed(piece.data)
        except Exception:
            self._fail(Failure())

    def write_all(self, pieces: Iterable[http1.Data]) -> None:
        """Forward pieces that were buffered before streaming began."""
        for piece in pieces:
            self.write(piece)

    def finish(self, trailers: Fields) -> None:
        """The source's body ended cleanly: end it on the destination too."""
        if self._finished:
            return
        if self._transform is None:
            self._end(trailers)
        else:
            self._transform.end(lambda: self._end(trailers), self._fail)

    def abort(self, reason: Failure) -> None:
        """The source failed mid-body: the destination must not see a clean end."""
        self._fail(reason)

    def _write_transformed(self, data: bytes) -> None:
        if not self._finished:
            try:
                self._writer.write(data)
            except Exception:
                self._fail(Failure())

    def _end(self, trailers: Fields) -> None:
        if self._finished:
            return
        try:
            self._writer.finish(trailers)
        except Exception:
            self._fail(Failure())
            return
        done = self._done
        self._stop()
        done()

    def _fail(self, reason: Failure) -> None:
        if self._finished:
            return
        self._finished = True
        failed = self._failed
        if self._transform is not None:
            self._transform.cancel()
        self._stop()
        failed(reason)

    def _stop(self) -> None:
        """The body ended one way or the other: detach from both sides and from the owner."""
        self._finished = True
        self._writer.transport.unregisterProducer()
        self._release_source()
        self._done = _ended
        self._failed = _ended
        self._transform = None

    def _set_transform_backlogged(self, backlogged: bool) -> None:
        self._transform_backlogged = backlogged
        self._update_source()

    def _update_source(self) -> None:
        """Pause the source while the destination is full or the transform is behind."""
        should_pause = self._destination_full or self._transform_backlogged
        if should_pause != self._source_paused and not self._finished:
            self._source_paused = should_pause
            if should_pause:
                self._source.pauseProducing()
            else:
                self._source.resumeProducing()

    def _release_source(self) -> None:
        if self._source_paused:
            self._source_paused = False
            self._source.resumeProducing()

    # IPushProducer, towards the destination transport.

    def pauseProducing(self) -> None:
        self._destination_full = True
        if self._transform is not None:
            self._transform.pause_output()
        self._update_source()

    def resumeProducing(self) -> None:
        self._destination_full = False
        if self._transform is not None:
            self._transform.resume_output()
        self._update_source()

    def stopProducing(self) -> None:
        self._source.stopProducing()

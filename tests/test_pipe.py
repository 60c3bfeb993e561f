# -*- test-case-name: tests.test_pipe -*-
"""The streaming pipe in memory: L{ReaderPump}, L{BodyPipe} and the body writers."""

from __future__ import annotations

from twisted.internet.interfaces import IPullProducer, IPushProducer
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_mitm import http1
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.proxy.pipe import (
    PacedWriter,
    BodyPipe,
    BufferSink,
    ChunkedWriter,
    CloseDelimitedWriter,
    Hold,
    LengthWriter,
    ReaderPump,
    WrongBodyLength,
)

HEAD = b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n"


class PumpFixture:
    """A request reader pump on a StringTransport, recording events and errors."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.errors: list[ProtocolError] = []
        self.stopped: list[bool] = []
        self.source = StringTransport()
        self.pump = ReaderPump(http1.RequestReader(), self.events.append, self.errors.append)
        self.pump.on_stop = lambda: self.stopped.append(True)
        self.pump.attach(self.source)

    def data(self) -> bytes:
        """Body bytes handed out so far."""
        return b"".join(event.data for event in self.events if isinstance(event, http1.Data))


class ReaderPumpTests(SynchronousTestCase):
    """Events flow only without holds; the socket pauses on a large backlog."""

    def test_interface(self) -> None:
        """ReaderPump provides IPushProducer."""
        self.assertTrue(verifyObject(IPushProducer, PumpFixture().pump))

    def test_hold_stops_events_release_resumes(self) -> None:
        """A hold keeps events in the reader; releasing it hands them out in order."""
        fixture = PumpFixture()
        fixture.pump.hold(Hold.DECIDING)
        fixture.pump.data_received(HEAD % 3 + b"abc")
        self.assertEqual(fixture.events, [])
        fixture.pump.release(Hold.DECIDING)
        self.assertIsInstance(fixture.events[0], http1.RequestHead)
        self.assertEqual(fixture.data(), b"abc")
        self.assertIsInstance(fixture.events[-1], http1.EndOfMessage)

    def test_backlog_pauses_socket(self) -> None:
        """While held, a backlog past high_water pauses the source transport; taking it resumes it."""
        fixture = PumpFixture()
        size = ReaderPump.high_water * 2
        fixture.pump.data_received(HEAD % size)
        fixture.pump.pauseProducing()
        fixture.pump.data_received(b"x" * (ReaderPump.high_water + 1))
        self.assertEqual(fixture.source.producerState, "paused")
        fixture.pump.resumeProducing()
        self.assertEqual(fixture.source.producerState, "producing")
        self.assertEqual(len(fixture.data()), ReaderPump.high_water + 1)

    def test_small_backlog_does_not_pause(self) -> None:
        """A held backlog below high_water leaves the socket reading."""
        fixture = PumpFixture()
        fixture.pump.hold(Hold.EXCHANGE)
        fixture.pump.data_received(b"y" * 1000)
        self.assertEqual(fixture.source.producerState, "producing")

    def test_error_reported_once(self) -> None:
        """A protocol error goes to the error handler and nothing more comes out."""
        fixture = PumpFixture()
        fixture.pump.data_received(b"NOT HTTP\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        self.assertEqual([error.status for error in fixture.errors], [400])
        self.assertEqual(fixture.events, [])

    def test_stop_producing_calls_on_stop(self) -> None:
        """stopProducing holds the pump and calls on_stop (the protocol aborts its connection)."""
        fixture = PumpFixture()
        fixture.pump.stopProducing()
        self.assertEqual(fixture.stopped, [True])
        self.assertIn(Hold.CONSUMER, fixture.pump.holds)


class BodyPipeTests(SynchronousTestCase):
    """A pipe from a pump to a writer: registration, backpressure, clean and failed ends."""

    def setUp(self) -> None:
        self.fixture = PumpFixture()
        self.destination = StringTransport()
        self.done: list[bool] = []
        self.failed: list[Failure] = []

    def pipe(self, writer: object) -> BodyPipe:
        pipe = BodyPipe(self.fixture.pump, writer, lambda: self.done.append(True), self.failed.append)  # type: ignore[arg-type]
        self.fixture.events.clear()
        return pipe

    def feed_through(self, pipe: BodyPipe, data: bytes) -> None:
        """Hand the pump's body events to the pipe, as the protocol does."""
        self.fixture.pump.data_received(data)
        for event in self.fixture.events:
            if isinstance(event, http1.Data):
                pipe.write(event)
            elif isinstance(event, http1.EndOfMessage):
                pipe.finish(event.trailers)
        self.fixture.events.clear()

    def test_interface_and_registration(self) -> None:
        """The pipe is an IPushProducer registered as streaming producer of the destination until it ends."""
        pipe = self.pipe(LengthWriter(self.destination, 3))
        self.assertTrue(verifyObject(IPushProducer, pipe))
        self.assertIs(self.destination.producer, pipe)
        self.assertTrue(self.destination.streaming)
        pipe.write(http1.Data(b"abc"))
        pipe.finish(())
        self.assertIsNone(self.destination.producer)
        self.assertEqual((self.destination.value(), self.done), (b"abc", [True]))

    def test_destination_pause_propagates_to_source_socket(self) -> None:
        """A full destination pauses the pump; a backlog then pauses the source socket; resuming undoes both."""
        size = ReaderPump.high_water * 4
        self.fixture.pump.data_received(HEAD % size)
        pipe = self.pipe(LengthWriter(self.destination, size))
        self.destination.producer.pauseProducing()
        self.assertIn(Hold.CONSUMER, self.fixture.pump.holds)
        self.feed_through(pipe, b"z" * (ReaderPump.high_water + 10))
        self.assertEqual(self.destination.value(), b"")
        self.assertEqual(self.fixture.source.producerState, "paused")
        self.destination.producer.resumeProducing()
        for event in self.fixture.events:
            pipe.write(event)  # type: ignore[arg-type]
        self.assertEqual(self.fixture.source.producerState, "producing")
        self.assertEqual(len(self.destination.value()), ReaderPump.high_water + 10)

    def test_pause_resume_idempotent(self) -> None:
        """Pausing or resuming twice is the same as once."""
        pipe = self.pipe(CloseDelimitedWriter(self.destination))
        pipe.pauseProducing()
        pipe.pauseProducing()
        pipe.resumeProducing()
        pipe.resumeProducing()
        self.assertEqual(self.fixture.pump.holds, set())

    def test_stop_producing_stops_source(self) -> None:
        """The destination going away stops the source (its connection is aborted)."""
        pipe = self.pipe(CloseDelimitedWriter(self.destination))
        pipe.stopProducing()
        self.assertEqual(self.fixture.stopped, [True])

    def test_chunk_boundaries_mirrored(self) -> None:
        """A chunked source is written with the same chunk boundaries, piece by piece, as it arrives."""
        self.fixture.pump.data_received(b"POST http://e/ HTTP/1.1\r\nHost: e\r\nTransfer-Encoding: chunked\r\n\r\n")
        pipe = self.pipe(ChunkedWriter(self.destination))
        self.feed_through(pipe, b"5\r\nhel")
        self.assertEqual(self.destination.value(), b"5\r\nhel")
        self.feed_through(pipe, b"lo\r\n3\r\nabc\r\n")
        self.assertEqual(self.destination.value(), b"5\r\nhello\r\n3\r\nabc\r\n")
        self.feed_through(pipe, b"0\r\nX-T: 1\r\n\r\n")
        self.assertEqual(self.destination.value(), b"5\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n")
        self.assertEqual(self.done, [True])

    def test_length_too_long_fails(self) -> None:
        """Writing past the declared Content-Length fails the pipe instead of sending extra bytes."""
        pipe = self.pipe(LengthWriter(self.destination, 2))
        pipe.write(http1.Data(b"abc"))
        self.assertEqual(self.destination.value(), b"")
        self.assertTrue(self.failed[0].check(WrongBodyLength))
        self.assertIsNone(self.destination.producer)

    def test_length_too_short_fails(self) -> None:
        """Ending before the declared Content-Length fails the pipe, not a clean end."""
        pipe = self.pipe(LengthWriter(self.destination, 5))
        pipe.write(http1.Data(b"abc"))
        pipe.finish(())
        self.assertEqual(self.done, [])
        self.assertIn("2 bytes short", self.failed[0].getErrorMessage())

    def test_abort_fails_once(self) -> None:
        """An aborted source fails the pipe once; later writes and ends do nothing."""
        pipe = self.pipe(ChunkedWriter(self.destination))
        pipe.abort(Failure(ProtocolError(502, "gone")))
        pipe.write(http1.Data(b"late"))
        pipe.finish(())
        self.assertEqual((len(self.failed), self.done, self.destination.value()), (1, [], b""))


class WriterTests(SynchronousTestCase):
    """The body writers on their own."""

    def test_chunked_plain_writes(self) -> None:
        """Data without source chunk boundaries becomes one chunk per write; empty writes are skipped."""
        transport = StringTransport()
        writer = ChunkedWriter(transport)
        writer.write(b"ab")
        writer.write(b"")
        writer.finish(((b"T", b"v"),))
        self.assertEqual(transport.value(), b"2\r\nab\r\n0\r\nT: v\r\n\r\n")

    def test_length_exact(self) -> None:
        """A body of exactly the declared length passes through."""
        transport = StringTransport()
        writer = LengthWriter(transport, 4)
        writer.write(b"ab")
        writer.write_piece(http1.Data(b"cd"))
        writer.finish(())
        self.assertEqual(transport.value(), b"abcd")
        self.assertRaises(WrongBodyLength, writer.write, b"e")


class BufferSinkTests(SynchronousTestCase):
    """Buffering a body for the hooks."""

    def test_overflow_hands_over_pieces(self) -> None:
        """Past its limit, the sink hands the pieces so far to the overflow callback and keeps nothing more."""
        overflowed: list[list[http1.Data]] = []
        done: list[bytes] = []
        sink = BufferSink(lambda body, trailers: done.append(body), lambda reason: None, 3, overflowed.append, keep_pieces=True)
        sink.write(http1.Data(b"ab"))
        sink.write(http1.Data(b"cd"))
        sink.write(http1.Data(b"ef"))
        sink.finish(())
        self.assertEqual([[piece.data for piece in pieces] for pieces in overflowed], [[b"ab", b"cd"]])
        self.assertEqual(done, [])

    def test_whole_body_without_pieces(self) -> None:
        """Without keep_pieces the body is collected into one buffer and delivered whole at its end."""
        done: list[tuple[bytes, object]] = []
        sink = BufferSink(lambda body, trailers: done.append((body, trailers)), lambda reason: None)
        for piece in (b"ab", b"", b"cdef"):
            sink.write(http1.Data(piece))
        sink.finish(((b"x", b"1"),))
        self.assertEqual(done, [(b"abcdef", ((b"x", b"1"),))])

    def test_refusal_past_limit_without_pieces(self) -> None:
        """A refusing overflow is told once, without pieces, and the body is never delivered."""
        overflowed: list[list[http1.Data]] = []
        done: list[bytes] = []
        sink = BufferSink(lambda body, trailers: done.append(body), lambda reason: None, 3, overflowed.append)
        sink.write(http1.Data(b"abcd"))
        sink.write(http1.Data(b"ef"))
        sink.finish(())
        self.assertEqual((overflowed, done), ([[]], []))


class PacedWriterTests(SynchronousTestCase):
    """Writing a buffered message as the transport drains."""

    def test_small_message_written_at_once(self) -> None:
        """A message up to one slice is written immediately, with no producer."""
        transport = StringTransport()
        done: list[bool] = []
        PacedWriter.write(transport, [b"head", b"body"], lambda: done.append(True))
        self.assertEqual((transport.value(), transport.producer, done), (b"headbody", None, [True]))

    def test_large_message_written_slice_by_slice(self) -> None:
        """A large message is written one slice per resumeProducing, then the producer leaves."""
        transport = StringTransport()
        body = bytes(range(256)) * (PacedWriter.slice_size // 256 * 2 + 1)
        done: list[bool] = []
        PacedWriter.write(transport, [b"head", body], lambda: done.append(True))
        producer = transport.producer
        verifyObject(IPullProducer, producer)
        self.assertFalse(transport.streaming)
        for _ in range(10):
            written = len(transport.value())
            producer.resumeProducing()
            self.assertLessEqual(len(transport.value()) - written, PacedWriter.slice_size)
            if transport.producer is None:
                break
        self.assertEqual((transport.value(), done), (b"head" + body, [True]))

    def test_stopped_writer_writes_nothing_more(self) -> None:
        """After stopProducing (the connection is gone) nothing more is written and done is not called."""
        transport = StringTransport()
        done: list[bool] = []
        PacedWriter.write(transport, [b"x" * (PacedWriter.slice_size * 3)], lambda: done.append(True))
        producer = transport.producer
        producer.stopProducing()
        written = transport.value()
        producer.resumeProducing()
        self.assertEqual((transport.value(), done), (written, []))

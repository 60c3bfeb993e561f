"""Tests for L{twisted_mitm.http1}, the sans-io HTTP/1 codec."""

from __future__ import annotations

from typing import Callable, Iterable

from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.http1 import (
    CHUNK_END,
    NEED_DATA,
    BodyFraming,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    FramingKind,
    RequestHead,
    RequestReader,
    ResponseHead,
    ResponseReader,
    assemble_request_head,
    assemble_response_head,
    check_field,
    chunk_header,
    last_chunk,
    parse_absolute_form,
    parse_authority_form,
    request_framing,
    response_framing,
)

Reader = RequestReader | ResponseReader
_MAX_EVENTS = 100_000


def drain(reader: Reader) -> list[Event]:
    """All events the reader can give now, up to NEED_DATA or ConnectionClosed."""
    events: list[Event] = []
    for _ in range(_MAX_EVENTS):
        event = reader.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return events
    raise AssertionError("reader did not stop producing events")


def feed(reader: Reader, data: bytes, step: int | None = None, eof: bool = False) -> list[Event]:
    """Feed C{data} in pieces of C{step} bytes (whole if None), draining after each."""
    step = step or max(len(data), 1)
    events: list[Event] = []
    for start in range(0, len(data), step):
        reader.receive_data(data[start : start + step])
        events += drain(reader)
    if eof:
        reader.receive_eof()
        events += drain(reader)
    return events


def merge(events: Iterable[Event]) -> list[Event]:
    """Merge consecutive Data pieces of the same chunk (or of a non-chunked body) into one."""
    merged: list[Event] = []
    for event in events:
        previous = merged[-1] if merged else None
        if isinstance(event, Data) and isinstance(previous, Data) and not previous.chunk_end:
            merged[-1] = Data(previous.data + event.data, previous.chunk_size, event.chunk_end)
        else:
            merged.append(event)
    return merged


def request(data: bytes, **limits: int) -> list[Event]:
    """The events of C{data} sent by a client that then closes the connection."""
    return feed(RequestReader(**limits), data, eof=True)


def response(data: bytes, *methods: bytes, eof: bool = True) -> list[Event]:
    """The events of C{data} sent by a server answering requests with C{methods}."""
    reader = ResponseReader()
    for method in methods or (b"GET",):
        reader.expect_response(method)
    return feed(reader, data, eof=eof)


def request_head(*headers: tuple[bytes, bytes], version: bytes = b"HTTP/1.1") -> RequestHead:
    return RequestHead(b"POST", b"/", version, headers)


def response_head(status: int, *headers: tuple[bytes, bytes]) -> ResponseHead:
    return ResponseHead(b"HTTP/1.1", status, b"", headers)


CL = b"Content-Length"
TE = b"Transfer-Encoding"


class RequestFramingTests(SynchronousTestCase):
    """L{request_framing} follows RFC 9112 §6.3 and refuses ambiguous framing with 400."""

    def assertRefused(self, *headers: tuple[bytes, bytes], version: bytes = b"HTTP/1.1") -> str:
        error = self.assertRaises(
            ProtocolError, request_framing, request_head(*headers, version=version)
        )
        self.assertEqual(error.status, 400)
        return error.reason

    def test_no_body(self) -> None:
        """A request with neither Content-Length nor Transfer-Encoding has no body."""
        self.assertEqual(request_framing(request_head()), BodyFraming(FramingKind.NONE))

    def test_content_length(self) -> None:
        """Content-Length gives a body of that length."""
        self.assertEqual(
            request_framing(request_head((b"content-LENGTH", b"42"))),
            BodyFraming(FramingKind.LENGTH, 42),
        )

    def test_identical_repeated_lengths(self) -> None:
        """Identical Content-Length values, in a list or in repeated fields, are one length."""
        for headers in [((CL, b"5, 5"),), ((CL, b"5"), (CL, b"5"))]:
            self.assertEqual(
                request_framing(request_head(*headers)), BodyFraming(FramingKind.LENGTH, 5)
            )

    def test_differing_lengths(self) -> None:
        """Differing Content-Length values are refused."""
        self.assertIn("Content-Length", self.assertRefused((CL, b"5"), (CL, b"6")))
        self.assertIn("Content-Length", self.assertRefused((CL, b"5, 6")))

    def test_invalid_lengths(self) -> None:
        """Content-Length values other than 1*DIGIT of sane length are refused."""
        for value in [b"-1", b"+5", b"5a", b"0x10", b"", b"1 2", b"\xd9\xa3", b"9" * 40]:
            self.assertIn("Content-Length", self.assertRefused((CL, value)), value)

    def test_chunked(self) -> None:
        """Transfer-Encoding: chunked, in any letter case, gives a chunked body."""
        self.assertEqual(
            request_framing(request_head((TE, b"Chunked"))), BodyFraming(FramingKind.CHUNKED)
        )

    def test_length_with_transfer_encoding(self) -> None:
        """Content-Length together with Transfer-Encoding is refused, in either order."""
        self.assertRefused((CL, b"5"), (TE, b"chunked"))
        self.assertRefused((TE, b"chunked"), (b"content-length", b"5"))

    def test_codings_other_than_chunked(self) -> None:
        """Transfer-Encoding with codings other than exactly chunked is refused."""
        for value in [b"xchunked", b"chunked, identity", b"identity", b"gzip, chunked", b""]:
            self.assertIn("Transfer-Encoding", self.assertRefused((TE, value)), value)
        self.assertRefused((TE, b"chunked"), (TE, b"chunked"))

    def test_transfer_encoding_in_http10(self) -> None:
        """Transfer-Encoding in an HTTP/1.0 request is refused."""
        self.assertIn("HTTP/1.0", self.assertRefused((TE, b"chunked"), version=b"HTTP/1.0"))


class ResponseFramingTests(SynchronousTestCase):
    """L{response_framing} follows RFC 9112 §6.3 and refuses ambiguous framing with 502."""

    def kind(
        self, status: int, *headers: tuple[bytes, bytes], method: bytes = b"GET"
    ) -> FramingKind:
        """The framing kind of a response to C{method} with C{status} and C{headers}."""
        return response_framing(response_head(status, *headers), method).kind

    def test_no_body(self) -> None:
        """Responses to HEAD, 1xx, 204, 304 and 2xx to CONNECT have no body."""
        self.assertIs(self.kind(200, (CL, b"5"), method=b"HEAD"), FramingKind.NONE)
        for status in (100, 101, 103, 204, 304):
            self.assertIs(self.kind(status, (CL, b"5")), FramingKind.NONE)
        self.assertIs(self.kind(200, method=b"CONNECT"), FramingKind.NONE)

    def test_failed_connect(self) -> None:
        """A non-2xx answer to CONNECT is framed like any response."""
        self.assertEqual(
            response_framing(response_head(407, (CL, b"7")), b"CONNECT"),
            BodyFraming(FramingKind.LENGTH, 7),
        )

    def test_transfer_encoding(self) -> None:
        """Chunked last means chunked; other codings mean the body runs until close."""
        self.assertIs(self.kind(200, (TE, b"gzip, chunked")), FramingKind.CHUNKED)
        self.assertIs(
            self.kind(200, (TE, b"gzip"), (TE, b"CHUNKED")), FramingKind.CHUNKED
        )
        self.assertIs(self.kind(200, (TE, b"chunked, gzip")), FramingKind.UNTIL_CLOSE)
        self.assertIs(self.kind(200, (TE, b"identity")), FramingKind.UNTIL_CLOSE)

    def test_length(self) -> None:
        """Content-Length gives a body of that length; without it the body runs until close."""
        self.assertEqual(
            response_framing(response_head(200, (CL, b"0")), b"GET"),
            BodyFraming(FramingKind.LENGTH, 0),
        )
        self.assertIs(self.kind(200), FramingKind.UNTIL_CLOSE)

    def test_refused(self) -> None:
        """CL with TE, invalid or differing lengths are 502 errors."""
        for headers in [
            ((CL, b"5"), (TE, b"chunked")),
            ((CL, b"-5"),),
            ((CL, b"5"), (CL, b"7")),
        ]:
            error = self.assertRaises(ProtocolError, self.kind, 200, *headers)
            self.assertEqual(error.status, 502)


class RequestHeadTests(SynchronousTestCase):
    """L{RequestReader} parses request heads strictly."""

    def assertRefused(self, data: bytes, status: int = 400, **limits: int) -> str:
        reader = RequestReader(**limits)
        error = self.assertRaises(ProtocolError, feed, reader, data)
        self.assertEqual(error.status, status)
        return error.reason

    def test_head_as_received(self) -> None:
        """Header names keep their case, order and repeats; values lose surrounding OWS."""
        events = request(
            b"GET /a?b HTTP/1.1\r\nHost: example.com\r\nX-A:  1 \t\r\n"
            b"x-a:2\r\nEmpty:\r\nInner: a  b\r\n\r\n"
        )
        headers = ((b"Host", b"example.com"), (b"X-A", b"1"), (b"x-a", b"2"))
        headers += ((b"Empty", b""), (b"Inner", b"a  b"))
        head = RequestHead(b"GET", b"/a?b", b"HTTP/1.1", headers)
        self.assertEqual(events, [head, EndOfMessage(), ConnectionClosed()])

    def test_bare_lf(self) -> None:
        """Bare LF line ends are accepted in heads."""
        events = request(b"GET / HTTP/1.0\nA: b\n\n")
        self.assertEqual(events[0], RequestHead(b"GET", b"/", b"HTTP/1.0", ((b"A", b"b"),)))

    def test_leading_empty_lines(self) -> None:
        """A few empty lines before a request line are skipped; too many are refused."""
        events = request(b"\r\n\n\r\nGET / HTTP/1.1\r\n\r\n")
        self.assertEqual(events[0], RequestHead(b"GET", b"/", b"HTTP/1.1", ()))
        self.assertIn("empty lines", self.assertRefused(b"\r\n" * 100))

    def test_malformed_request_lines(self) -> None:
        """Request lines without exactly three single-space separated parts are refused."""
        for line in [
            b"GET /",
            b"GET  / HTTP/1.1",
            b"GET / HTTP/1.1 ",
            b"GET /a b HTTP/1.1",
            b" GET / HTTP/1.1",
            b"GET / http/1.1",
            b"GET / HTTP/1",
            b"GET /\x00 HTTP/1.1",
        ]:
            self.assertIn("request line", self.assertRefused(line + b"\r\n\r\n"), line)

    def test_invalid_method(self) -> None:
        """A method with characters outside token is refused."""
        self.assertIn("method", self.assertRefused(b"G(ET / HTTP/1.1\r\n\r\n"))

    def test_unsupported_version(self) -> None:
        """HTTP versions other than 1.0 and 1.1 are 505."""
        for version in [b"HTTP/2.0", b"HTTP/1.2", b"HTTP/0.9"]:
            self.assertRefused(b"GET / " + version + b"\r\n\r\n", 505)

    def test_bad_field_lines(self) -> None:
        """Malformed header lines are refused with a reason naming the problem."""
        for line, problem in [
            (b"Host : a", "whitespace between header name and colon"),
            (b"Host\t: a", "whitespace between header name and colon"),
            (b" folded", "folding"),
            (b"\tfolded", "folding"),
            (b"no colon", "colon"),
            (b"Ho(st: a", "header name"),
            (b": a", "header name"),
            (b"Host: a\x00b", "header value"),
            (b"Host: a\rb", "header value"),
            (b"Host: a\x7f", "header value"),
        ]:
            reason = self.assertRefused(b"GET / HTTP/1.1\r\nA: b\r\n" + line + b"\r\n\r\n")
            self.assertIn(problem, reason, line)

    def test_obs_text_in_value(self) -> None:
        """Octets above 0x7f are allowed in header values."""
        events = request(b"GET / HTTP/1.1\r\nA: caf\xc3\xa9\r\n\r\n")
        self.assertEqual(events[0].headers, ((b"A", b"caf\xc3\xa9"),))

    def test_head_too_large(self) -> None:
        """A head over max_head_size is 431 as soon as it is buffered, before its end."""
        reader = RequestReader(max_head_size=1024)
        reader.receive_data(b"GET / HTTP/1.1\r\nA: " + b"a" * 1000)
        self.assertIs(reader.next_event(), NEED_DATA)
        reader.receive_data(b"a" * 100)
        error = self.assertRaises(ProtocolError, reader.next_event)
        self.assertEqual(error.status, 431)

    def test_head_size_limit_with_body(self) -> None:
        """A head within the limit passes even when a large body follows in the same read."""
        head = b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"
        events = merge(request(head + b"x" * 5000, max_head_size=len(head)))
        self.assertEqual(events[1], Data(b"x" * 5000))
        self.assertRefused(head + b"x" * 5000, 431, max_head_size=len(head) - 1)

    def test_too_many_headers(self) -> None:
        """More than max_headers fields is 431, detected before the head ends."""
        fields = b"A: b\r\n" * 4
        events = request(b"GET / HTTP/1.1\r\n" + fields + b"\r\n", max_headers=4)
        self.assertEqual(len(events[0].headers), 4)
        self.assertRefused(b"GET / HTTP/1.1\r\n" + fields + b"A: b\r\n", 431, max_headers=4)

    def test_framing_error(self) -> None:
        """Ambiguous framing in a received request is refused with 400."""
        reason = self.assertRefused(
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        self.assertIn("Content-Length", reason)

    def test_error_is_final(self) -> None:
        """After an error the reader raises the same error again, whatever it is fed."""
        reader = RequestReader()
        reader.receive_data(b"BAD\r\n\r\n")
        first = self.assertRaises(ProtocolError, reader.next_event)
        reader.receive_data(b"GET / HTTP/1.1\r\n\r\n")
        self.assertIs(self.assertRaises(ProtocolError, reader.next_event), first)

    def test_dribbled_large_head(self) -> None:
        """A large head fed byte by byte parses to the same head as one fed whole."""
        fields = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 200) for i in range(200))
        data = b"GET / HTTP/1.1\r\n" + fields + b"\r\n"
        self.assertEqual(feed(RequestReader(), data, 1), feed(RequestReader(), data))


class RequestBodyTests(SynchronousTestCase):
    """L{RequestReader} delimits request bodies and passes body bytes through uncopied."""

    def test_length_body(self) -> None:
        """A Content-Length body comes as Data then EndOfMessage, with its framing exposed."""
        reader = RequestReader()
        events = feed(reader, b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
        self.assertEqual(events[1:], [Data(b"hello"), EndOfMessage()])
        self.assertEqual(reader.framing, BodyFraming(FramingKind.LENGTH, 5))

    def test_framing_after_head(self) -> None:
        """The framing of a message is available right after its head was returned."""
        reader = RequestReader()
        reader.receive_data(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.assertIsInstance(reader.next_event(), RequestHead)
        self.assertEqual(reader.framing, BodyFraming(FramingKind.CHUNKED))

    def test_identity_passthrough(self) -> None:
        """A received bytes object lying wholly inside a body is the Data event's very object."""
        reader = RequestReader()
        feed(reader, b"POST / HTTP/1.1\r\nContent-Length: 200000\r\n\r\n")
        pieces = [bytes([65 + i]) * 65536 for i in range(3)]
        for piece in pieces:
            reader.receive_data(piece)
            (event,) = drain(reader)
            self.assertIs(event.data, piece)
        last = b"z" * 10000
        reader.receive_data(last)
        self.assertEqual(drain(reader), [Data(last[: 200000 - 3 * 65536]), EndOfMessage()])

    def test_queued_pieces_keep_identity(self) -> None:
        """Pieces received before any event is taken still come out as the same objects."""
        reader = RequestReader()
        pieces = [b"a" * 1000, b"b" * 1000]
        reader.receive_data(b"POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n")
        for piece in pieces:
            reader.receive_data(piece)
        events = drain(reader)
        self.assertIs(events[1].data, pieces[0])
        self.assertIs(events[2].data, pieces[1])

    def test_pipelined(self) -> None:
        """Pipelined requests in one read come out in order, bodies sliced at the boundaries."""
        events = request(
            b"POST /1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /2 HTTP/1.1\r\n\r\n"
            b"POST /3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
        )
        self.assertEqual(
            [(type(e).__name__, getattr(e, "target", getattr(e, "data", None))) for e in events],
            [
                ("RequestHead", b"/1"),
                ("Data", b"abc"),
                ("EndOfMessage", None),
                ("RequestHead", b"/2"),
                ("EndOfMessage", None),
                ("RequestHead", b"/3"),
                ("Data", b"de"),
                ("EndOfMessage", None),
                ("ConnectionClosed", None),
            ],
        )

    def test_keep_alive(self) -> None:
        """Requests sent one after another on one connection each parse fully."""
        reader = RequestReader()
        for index in range(3):
            events = feed(reader, b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % index)
            self.assertEqual([type(e) for e in events], [RequestHead, EndOfMessage])
            self.assertEqual(events[0].target, b"/%d" % index)
            self.assertEqual(reader.pending, 0)

    def test_chunked(self) -> None:
        """Chunks come with their size on the first piece, extensions ignored, trailers parsed."""
        events = request(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=value\r\nhello\r\n"
            b"A ; a=b;c\r\n0123456789\r\n"
            b"0\r\nChecksum: abc\r\nX-T:  d \r\n\r\n"
        )
        self.assertEqual(
            events[1:],
            [
                Data(b"hello", 5, True),
                Data(b"0123456789", 10, True),
                EndOfMessage(((b"Checksum", b"abc"), (b"X-T", b"d"))),
                ConnectionClosed(),
            ],
        )

    def test_chunk_split_across_reads(self) -> None:
        """A chunk split across reads gives its size on the first piece and its end on the last."""
        reader = RequestReader()
        feed(reader, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        middle = b"b" * 4
        self.assertEqual(feed(reader, b"a\r\naaa"), [Data(b"aaa", 10)])
        reader.receive_data(middle)
        (event,) = drain(reader)
        self.assertIs(event.data, middle)
        self.assertEqual(event, Data(middle))
        self.assertEqual(
            feed(reader, b"ccc\r\n3\r\nxy"), [Data(b"ccc", None, True), Data(b"xy", 3)]
        )
        self.assertEqual(feed(reader, b"z\r\n0\r\n\r\n"), [Data(b"z", None, True), EndOfMessage()])

    def test_chunk_identity_passthrough(self) -> None:
        """A read lying wholly inside a chunk is the Data event's very object."""
        reader = RequestReader()
        feed(reader, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n20000\r\n")
        piece = b"p" * 65536
        reader.receive_data(piece)
        (event,) = drain(reader)
        self.assertIs(event.data, piece)
        self.assertEqual((event.chunk_size, event.chunk_end), (0x20000, False))

    def test_chunk_size_limits(self) -> None:
        """16 hex digits is the largest chunk size; more is an overflow."""
        head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        events = feed(RequestReader(), head + b"0000000000000003\r\nabc")
        self.assertEqual(events[1], Data(b"abc", 3, True))
        error = self.assertRaises(ProtocolError, request, head + b"1" + b"0" * 16 + b"\r\n")
        self.assertEqual((error.status, error.reason), (400, "chunk size overflow"))

    def test_chunk_errors(self) -> None:
        """Invalid sizes, long size lines and missing CRLF after chunk data are 400."""
        head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        for body, problem in [
            (b"xyz\r\n", "invalid chunk size"),
            (b"-1\r\n", "invalid chunk size"),
            (b"\r\n", "invalid chunk size"),
            (b" 5\r\n", "invalid chunk size"),
            (b"5\r\nhelloXY", "missing CRLF"),
            (b"5\r\nhello\n0\r\n\r\n", "missing CRLF"),
            (b"5;" + b"e" * 5000, "too long"),
            (b"5;" + b"e" * 5000 + b"\r\n", "too long"),
        ]:
            error = self.assertRaises(ProtocolError, request, head + body)
            self.assertEqual(error.status, 400)
            self.assertIn(problem, error.reason, body)

    def test_trailer_limits(self) -> None:
        """Trailers obey the head limits and field syntax."""
        head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        error = self.assertRaises(ProtocolError, request, head + b"A: b\r\n" * 3, max_headers=2)
        self.assertEqual(error.status, 431)
        error = self.assertRaises(ProtocolError, request, head + b"A : b\r\n\r\n")
        self.assertEqual(error.status, 400)

    def test_byte_at_a_time(self) -> None:
        """Feeding a byte at a time gives the same messages as feeding everything at once."""
        data = (
            b"\r\nPOST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
            b"POST /2 HTTP/1.1\nTransfer-Encoding: chunked\n\n"
            b"3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n"
            b"GET /3 HTTP/1.0\r\n\r\n"
        )
        whole = feed(RequestReader(), data, eof=True)
        for step in (1, 2, 7):
            self.assertEqual(merge(feed(RequestReader(), data, step, eof=True)), whole)

    def test_eof(self) -> None:
        """EOF between requests is ConnectionClosed; inside a request it is a 400."""
        self.assertEqual(request(b""), [ConnectionClosed()])
        for data in [
            b"GET / HTTP/1.1\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
        ]:
            error = self.assertRaises(ProtocolError, request, data)
            self.assertEqual(
                (error.status, error.reason),
                (400, "client closed the connection before the request was complete"),
            )

    def test_pending(self) -> None:
        """pending counts the bytes received but not yet returned in events."""
        reader = RequestReader()
        head = b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n"
        reader.receive_data(head)
        reader.receive_data(b"ab")
        self.assertEqual(reader.pending, len(head) + 2)
        reader.next_event()
        self.assertEqual(reader.pending, 2)
        reader.next_event()
        self.assertEqual(reader.pending, 0)

    def test_connect(self) -> None:
        """After a CONNECT request the reader stops; the tunnel's bytes are left to take."""
        reader = RequestReader()
        events = feed(reader, b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01")
        self.assertEqual([type(e) for e in events], [RequestHead, EndOfMessage])
        reader.receive_data(b"\x02\x00")
        self.assertIs(reader.next_event(), NEED_DATA)
        self.assertEqual(reader.take_buffered(), b"\x16\x03\x01\x02\x00")
        self.assertEqual(reader.pending, 0)
        self.assertEqual(reader.take_buffered(), b"")


class ResponseReaderTests(SynchronousTestCase):
    """L{ResponseReader} parses server responses against the requests' methods."""

    def assertRefused(self, data: bytes, *methods: bytes, eof: bool = True) -> str:
        error = self.assertRaises(ProtocolError, response, data, *methods, eof=eof)
        self.assertEqual(error.status, 502)
        return error.reason

    def test_length(self) -> None:
        """A Content-Length response comes as head, Data and EndOfMessage."""
        events = response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nA: b\r\n\r\nok", eof=False)
        head = ResponseHead(b"HTTP/1.1", 200, b"OK", ((CL, b"2"), (b"A", b"b")))
        self.assertEqual(events, [head, Data(b"ok"), EndOfMessage()])

    def test_status_line_forms(self) -> None:
        """The reason may be empty or missing, and may hold spaces."""
        for line, reason in [
            (b"HTTP/1.1 200", b""),
            (b"HTTP/1.1 200 ", b""),
            (b"HTTP/1.0 404 Not  Found", b"Not  Found"),
        ]:
            head = response(line + b"\r\nContent-Length: 0\r\n\r\n", eof=False)[0]
            self.assertEqual((head.status_code, head.reason), (int(line[9:12]), reason))

    def test_bad_status_lines(self) -> None:
        """Malformed status lines and versions other than 1.0/1.1 are 502."""
        for line in [
            b"HTTP/1.1 20 OK",
            b"HTTP/1.1 OK",
            b"HTTP/2 200 OK",
            b"HTTP/2.0 200 OK",
            b"ICY 200 OK",
        ]:
            self.assertRefused(line + b"\r\n\r\n")

    def test_head_errors_are_502(self) -> None:
        """Bad header lines and oversized heads from a server are 502."""
        self.assertIn("colon", self.assertRefused(b"HTTP/1.1 200 OK\r\nHost : a\r\n\r\n"))
        reader = ResponseReader(max_head_size=100)
        reader.expect_response(b"GET")
        data = b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 20
        error = self.assertRaises(ProtocolError, feed, reader, data)
        self.assertEqual(error.status, 502)

    def test_until_close(self) -> None:
        """A response without length ends at EOF, followed by ConnectionClosed."""
        reader = ResponseReader()
        reader.expect_response(b"GET")
        events = feed(reader, b"HTTP/1.0 200 OK\r\n\r\nsome")
        self.assertEqual(reader.framing, BodyFraming(FramingKind.UNTIL_CLOSE))
        piece = b"x" * 70000
        reader.receive_data(piece)
        events += drain(reader)
        self.assertIs(events[-1].data, piece)
        reader.receive_eof()
        self.assertEqual(drain(reader), [EndOfMessage(), ConnectionClosed()])
        self.assertEqual(events[1], Data(b"some"))

    def test_chunked(self) -> None:
        """A chunked response keeps its chunk boundaries and trailers."""
        events = response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"4\r\nabcd\r\n0\r\nEtag: x\r\n\r\n",
            eof=False,
        )
        self.assertEqual(events[1:], [Data(b"abcd", 4, True), EndOfMessage(((b"Etag", b"x"),))])

    def test_no_body(self) -> None:
        """Responses to HEAD and 204/304 responses have no body despite a Content-Length."""
        events = response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
            b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            b"HEAD",
            b"GET",
            b"GET",
        )
        self.assertEqual(
            [type(e) for e in events],
            [ResponseHead, EndOfMessage] * 3 + [ConnectionClosed],
        )

    def test_pipelined(self) -> None:
        """Responses to pipelined requests each consume one expected method in order."""
        events = response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nc\r\n0\r\n\r\n",
            b"GET",
            b"HEAD",
            b"GET",
        )
        self.assertEqual(
            [e.data for e in events if isinstance(e, Data)], [b"a", b"c"]
        )
        self.assertIsInstance(events[-1], ConnectionClosed)

    def test_interim_responses(self) -> None:
        """100-continue and 103 come as heads with EndOfMessage before the final response."""
        events = response(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            b"POST",
            eof=False,
        )
        self.assertEqual(
            [(type(e), getattr(e, "status_code", None)) for e in events],
            [
                (ResponseHead, 100),
                (EndOfMessage, None),
                (ResponseHead, 103),
                (EndOfMessage, None),
                (ResponseHead, 201),
                (EndOfMessage, None),
            ],
        )

    def test_interim_keeps_request_waiting(self) -> None:
        """After an interim response the reader still waits for the final one."""
        reader = ResponseReader()
        reader.expect_response(b"POST")
        feed(reader, b"HTTP/1.1 100 Continue\r\n\r\n")
        events = feed(reader, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
        self.assertEqual(events[1:], [Data(b"x"), EndOfMessage()])
        error = self.assertRaises(ProtocolError, feed, reader, b"HTTP/1.1 200 OK\r\n")
        self.assertEqual(error.status, 502)

    def test_switching_protocols(self) -> None:
        """A 101 ends HTTP/1: what follows is left for take_buffered."""
        reader = ResponseReader()
        reader.expect_response(b"GET")
        head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        events = feed(reader, head + b"\x81\x02")
        self.assertEqual([type(e) for e in events], [ResponseHead, EndOfMessage])
        reader.receive_data(b"hi")
        self.assertIs(reader.next_event(), NEED_DATA)
        self.assertEqual(reader.pending, 4)
        self.assertEqual(reader.take_buffered(), b"\x81\x02hi")

    def test_connect(self) -> None:
        """A 2xx to CONNECT ends HTTP/1; a refusal is an ordinary response."""
        reader = ResponseReader()
        reader.expect_response(b"CONNECT")
        events = feed(reader, b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03")
        self.assertEqual([type(e) for e in events], [ResponseHead, EndOfMessage])
        self.assertEqual(reader.take_buffered(), b"\x16\x03")
        events = response(
            b"HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\nno"
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            b"CONNECT",
            b"GET",
        )
        statuses = [e.status_code for e in events if isinstance(e, ResponseHead)]
        self.assertEqual(statuses, [407, 200])

    def test_unexpected_data(self) -> None:
        """Bytes from the server while no response is expected are a 502."""
        reader = ResponseReader()
        error = self.assertRaises(ProtocolError, feed, reader, b"HTTP/1.1 200 OK\r\n\r\n")
        self.assertEqual(error.status, 502)
        self.assertIn("no response", error.reason)

    def test_eof(self) -> None:
        """EOF while a response is expected or in a delimited body is 502, else it closes."""
        self.assertEqual(feed(ResponseReader(), b"", eof=True), [ConnectionClosed()])
        self.assertEqual(
            [type(e) for e in response(b"HTTP/1.1 204 No Content\r\n\r\n")],
            [ResponseHead, EndOfMessage, ConnectionClosed],
        )
        for data in [
            b"",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        ]:
            self.assertEqual(
                self.assertRefused(data),
                "server closed the connection before the response was complete",
            )

    def test_byte_at_a_time(self) -> None:
        """Feeding a byte at a time gives the same messages as feeding everything at once."""
        data = (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
            b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n5\r\nab\r\nc\r\n0\r\n\r\n"
            b"HTTP/1.1 200 OK\r\n\r\nuntil close"
        )
        methods = (b"POST", b"GET", b"GET")
        whole = response(data, *methods)
        for step in (1, 3):
            reader = ResponseReader()
            for method in methods:
                reader.expect_response(method)
            self.assertEqual(merge(feed(reader, data, step, eof=True)), whole)


class TargetFormTests(SynchronousTestCase):
    """L{parse_absolute_form} and L{parse_authority_form} split request targets."""

    def assertRefused(self, parse: Callable[[bytes], object], target: bytes) -> None:
        error = self.assertRaises(ProtocolError, parse, target)
        self.assertEqual(error.status, 400, target)

    def test_absolute_form(self) -> None:
        """Absolute URLs give scheme, host, port (default or explicit) and path."""
        for target, expected in [
            (b"http://example.com/a?b=c", (b"http", "example.com", 80, b"/a?b=c")),
            (b"https://example.com", (b"https", "example.com", 443, b"/")),
            (b"HTTP://Example.com:8080?q", (b"http", "Example.com", 8080, b"/?q")),
            (b"http://[::1]:8080/x", (b"http", "::1", 8080, b"/x")),
            (b"https://[2001:db8::1]/", (b"https", "2001:db8::1", 443, b"/")),
            (b"http://127.0.0.1:1/", (b"http", "127.0.0.1", 1, b"/")),
            (b"ws://h/chat", (b"ws", "h", 80, b"/chat")),
            (b"wss://h:9443/chat", (b"wss", "h", 9443, b"/chat")),
        ]:
            self.assertEqual(parse_absolute_form(target), expected)

    def test_absolute_form_refused(self) -> None:
        """Bad ports, missing hosts, userinfo, other schemes and fragments are 400."""
        for target in [
            b"/relative",
            b"example.com:80",
            b"ftp://example.com/",
            b"http:///path",
            b"http://:80/",
            b"http://user:pw@example.com/",
            b"http://example.com:0/",
            b"http://example.com:65536/",
            b"http://example.com:/",
            b"http://example.com:8o/",
            b"http://[::1/",
            b"http://[::g]/",
            b"http://example.com/#frag",
        ]:
            self.assertRefused(parse_absolute_form, target)

    def test_authority_form(self) -> None:
        """CONNECT targets give host and port; IPv6 hosts lose their brackets."""
        self.assertEqual(parse_authority_form(b"example.com:443"), ("example.com", 443))
        self.assertEqual(parse_authority_form(b"[::1]:8443"), ("::1", 8443))

    def test_authority_form_refused(self) -> None:
        """Targets without port, with paths, userinfo or bad addresses are 400."""
        for target in [
            b"example.com",
            b"example.com:",
            b"[::1]",
            b"::1:443",
            b"a:1/",
            b"u@a:1",
            b"",
            b"a:99999",
        ]:
            self.assertRefused(parse_authority_form, target)


class WriterTests(SynchronousTestCase):
    """The writers produce bytes the readers parse back to the same messages."""

    def test_request_round_trip(self) -> None:
        """An assembled request head parses back to the same head."""
        headers = ((b"Host", b"a"), (b"x-Dup", b"1"), (b"X-DUP", b"2"))
        data = assemble_request_head(b"GET", b"http://a/?x", b"HTTP/1.1", headers)
        self.assertTrue(data.endswith(b"X-DUP: 2\r\n\r\n"))
        self.assertEqual(
            request(data)[0], RequestHead(b"GET", b"http://a/?x", b"HTTP/1.1", headers)
        )

    def test_response_round_trip(self) -> None:
        """An assembled response head parses back, an empty reason included."""
        for reason in (b"OK", b""):
            data = assemble_response_head(b"HTTP/1.1", 200, reason, [(CL, b"0")])
            self.assertEqual(
                response(data, eof=False)[0], ResponseHead(b"HTTP/1.1", 200, reason, ((CL, b"0"),))
            )

    def test_chunked_round_trip(self) -> None:
        """chunk_header, CHUNK_END and last_chunk make a body that parses to the same chunks."""
        self.assertEqual(chunk_header(255), b"ff\r\n")
        self.assertEqual(last_chunk(), b"0\r\n\r\n")
        body = chunk_header(3) + b"abc" + CHUNK_END + chunk_header(16) + b"x" * 16 + CHUNK_END
        body += last_chunk([(b"T", b"v")])
        head = assemble_response_head(b"HTTP/1.1", 200, b"OK", [(TE, b"chunked")])
        events = response(head + body, eof=False)
        self.assertEqual(
            events[1:],
            [Data(b"abc", 3, True), Data(b"x" * 16, 16, True), EndOfMessage(((b"T", b"v"),))],
        )

    def test_injection_refused(self) -> None:
        """Parts that would split the head (CR, LF, NUL, bad names) raise ValueError."""
        for field in [(b"A", b"x\r\nB: y"), (b"A: b", b"c"), (b"", b"c"), (b"A", b"\x00")]:
            self.assertRaises(
                ValueError, assemble_request_head, b"GET", b"/", b"HTTP/1.1", [field]
            )
        self.assertRaises(ValueError, assemble_request_head, b"GET", b"/\r\n", b"HTTP/1.1", [])
        self.assertRaises(ValueError, assemble_response_head, b"HTTP/1.1", 200, b"OK\n", [])
        self.assertRaises(ValueError, last_chunk, [(b"T", b"\n")])

    def test_check_field_accepts(self) -> None:
        """Token names with values free of CR, LF and NUL pass, other controls and obs-text too."""
        for name, value in [(b"X-A", b"v 1"), (b"a!#$%&'*+-.^_`|~9", b""), (b"T", b"\t\x01\xff")]:
            self.assertIsNone(check_field(name, value))

    def test_check_field_refuses(self) -> None:
        """A name that is not a token, or CR, LF or NUL in a value, is a 502 naming the field."""
        for name, value in [(b"X", b"a\r\nB: c"), (b"X", b"a\nb"), (b"X", b"\r"), (b"X", b"a\x00")]:
            error = self.assertRaises(ProtocolError, check_field, name, value)
            self.assertEqual((error.status, error.reason), (502, "CR, LF or NUL in the value of header field b'X'"))
        for name in [b"", b"A B", b"A:", b"A\r\n", b"\xc3\xa9"]:
            error = self.assertRaises(ProtocolError, check_field, name, b"v")
            self.assertEqual((error.status, error.reason), (502, "invalid header field name %r" % (name,)))

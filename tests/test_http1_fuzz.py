# -*- test-case-name: tests.test_http1_fuzz -*-
"""Property-based tests of L{twisted_mitm.http1}: random, generated and mutated bytes.

Every property feeds a real reader and checks what comes out with L{_Observer}, an
account of what a well-formed event sequence is that does not reuse the codec's own
framing decisions. Generated messages carry the events they must parse to. The
hypothesis profile (fixed seed and bounded examples by default) is chosen in
C{tests/__init__.py}.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from hypothesis import assume, example, given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.test_http1 import merge
from twisted_mitm import http1
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
    Headers,
    RequestHead,
    RequestReader,
    ResponseHead,
    ResponseReader,
    assemble_request_head,
    assemble_response_head,
    check_field,
    chunk_header,
    last_chunk,
)

Reader = RequestReader | ResponseReader
Ending = tuple[object, ...]

_DEFAULT_HEAD_SIZE = 64 * 1024
_DEFAULT_HEADERS = 256
_MAX_EVENTS = 1_000_000
_BYTE_BY_BYTE_UP_TO = 4096
_SMALL_PIECE = 61
_REQUEST_STATUSES = frozenset({400, 431, 505})
_CTL_BUT_HTAB = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


# -- reading and checking -----------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """The side being read: a client's requests, or a server's responses to C{methods}."""

    methods: tuple[bytes, ...] | None = None
    max_head_size: int = _DEFAULT_HEAD_SIZE
    max_headers: int = _DEFAULT_HEADERS

    def reader(self) -> Reader:
        limits = {"max_head_size": self.max_head_size, "max_headers": self.max_headers}
        if self.methods is None:
            return RequestReader(**limits)
        reader = ResponseReader(**limits)
        for method in self.methods:
            reader.expect_response(method)
        return reader


@dataclass(frozen=True)
class Outcome:
    """What a reader made of some bytes: merged events, each head's framing, the ending.

    C{ending} is C{("error", status, reason)}, C{("closed",)}, C{("waiting", pending)}
    or C{("switched", bytes left for the next protocol)}.
    """

    events: tuple[Event, ...]
    framings: tuple[BodyFraming, ...]
    ending: Ending


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise SynchronousTestCase.failureException(problem)


class _Observer:
    """Checks each event of one reader against the rules of a well-formed sequence."""

    def __init__(self, reader: Reader, peer: Peer) -> None:
        self.reader = reader
        self.peer = peer
        self.methods = deque(peer.methods or ())
        self.events: list[Event] = []
        self.framings: list[BodyFraming] = []
        self.framing: BodyFraming | None = None  # of the message being read
        self.body_size = 0
        self.chunk_left = 0
        self.switches = False
        self.switched = False
        self.closed = False
        self.eof = False

    def drain(self) -> None:
        """Take events until the reader needs data or reports the connection closed."""
        for _ in range(_MAX_EVENTS):
            event = self.reader.next_event()
            if event is NEED_DATA:
                self._check_backlog()
                return
            self.observe(event)
            if self.closed:
                return
        raise SynchronousTestCase.failureException("the reader does not stop producing events")

    def observe(self, event: Event) -> None:
        _require(not (self.closed or self.switched), "event after the end: %r" % (event,))
        self.events.append(event)
        if isinstance(event, (RequestHead, ResponseHead)):
            self._head(event)
        elif isinstance(event, Data):
            self._data(event)
        elif isinstance(event, EndOfMessage):
            self._end(event)
        else:
            _require(self.framing is None, "connection closed inside a message")
            _require(self.eof and not self.methods, "connection closed before its end")
            self.closed = True

    def _head(self, head: RequestHead | ResponseHead) -> None:
        _require(self.framing is None, "head inside a message")
        _require(isinstance(head, RequestHead) == (self.peer.methods is None), "wrong head")
        framing = self.reader.framing
        assert framing is not None
        self.framing = framing
        self.framings.append(framing)
        self.body_size = self.chunk_left = 0
        if isinstance(head, RequestHead):
            self.switches = head.method == b"CONNECT"
            return
        _require(bool(self.methods), "a response that was not expected")
        method, status = self.methods[0], head.status_code
        if method == b"HEAD" or status < 200 or status in (204, 304):
            _require(framing.kind is FramingKind.NONE, "a body where none can be")
        if status < 200 and status != 101:
            self.switches = False
            return
        self.methods.popleft()
        self.switches = status == 101 or (method == b"CONNECT" and status < 300)

    def _data(self, data: Data) -> None:
        framing = self.framing
        _require(framing is not None and framing.kind is not FramingKind.NONE, "stray data")
        assert framing is not None
        _require(bool(data.data), "empty data")
        if framing.kind is FramingKind.CHUNKED:
            self._chunk_piece(data)
        else:
            _require(data.chunk_size is None and not data.chunk_end, "chunk marks")
        self.body_size += len(data.data)
        if framing.kind is FramingKind.LENGTH:
            _require(self.body_size <= (framing.length or 0), "body longer than declared")

    def _chunk_piece(self, data: Data) -> None:
        if self.chunk_left == 0:
            _require(data.chunk_size is not None and data.chunk_size > 0, "chunk without size")
            self.chunk_left = data.chunk_size or 0
        else:
            _require(data.chunk_size is None, "chunk size in the middle of a chunk")
        _require(len(data.data) <= self.chunk_left, "chunk longer than declared")
        self.chunk_left -= len(data.data)
        _require(data.chunk_end == (self.chunk_left == 0), "chunk end misplaced")

    def _end(self, end: EndOfMessage) -> None:
        framing = self.framing
        _require(framing is not None, "end outside a message")
        assert framing is not None
        if framing.kind is FramingKind.LENGTH:
            _require(self.body_size == framing.length, "body shorter than declared")
        if framing.kind is FramingKind.CHUNKED:
            _require(self.chunk_left == 0, "end inside a chunk")
        else:
            _require(end.trailers == (), "trailers without chunked coding")
        if framing.kind is FramingKind.UNTIL_CLOSE:
            _require(self.eof, "close-delimited body ended before the close")
        self.framing = None
        self.switched = self.switches

    def _check_backlog(self) -> None:
        if self.switched:
            return
        bound = max(self.peer.max_head_size, http1._MAX_CHUNK_SIZE_LINE)
        pending = self.reader.pending
        _require(pending <= bound, "%d bytes held back, more than %d" % (pending, bound))

    def ending(self) -> Ending:
        """How the input ended, once it has all been fed and drained."""
        if self.closed:
            _require(type(self.reader.next_event()) is ConnectionClosed, "close not final")
            return ("closed",)
        if self.switched:
            return ("switched", self.reader.take_buffered())
        _require(not self.eof, "the reader waits for data after the end of input")
        return ("waiting", self.reader.pending)

    def failed(self, error: ProtocolError) -> Ending:
        """Check an error the reader raised: its status, and that it is final."""
        statuses = _REQUEST_STATUSES if self.peer.methods is None else {502}
        _require(error.status in statuses, "status %d for %r" % (error.status, error.reason))
        try:
            self.reader.next_event()
        except ProtocolError as again:
            _require(again is error, "a different error the second time")
        else:
            raise SynchronousTestCase.failureException("the reader went on after an error")
        return ("error", error.status, error.reason)


def read(peer: Peer, pieces: Iterable[bytes], eof: bool) -> Outcome:
    """Feed C{pieces} to a new reader for C{peer}, draining after each, and check it all."""
    reader = peer.reader()
    observer = _Observer(reader, peer)
    try:
        for piece in pieces:
            reader.receive_data(piece)
            observer.drain()
        if eof:
            reader.receive_eof()
            observer.eof = True
        observer.drain()
        ending = observer.ending()
    except ProtocolError as error:
        ending = observer.failed(error)
    return Outcome(tuple(merge(observer.events)), tuple(observer.framings), ending)


def cut(data: bytes, positions: Iterable[int]) -> list[bytes]:
    """Split C{data} at C{positions} (taken modulo its length plus one)."""
    points = sorted({position % (len(data) + 1) for position in positions})
    return [data[start:end] for start, end in zip([0, *points], [*points, len(data)])]


def splits(data: bytes, positions: Iterable[int]) -> list[list[bytes]]:
    """Ways to receive C{data}: whole, cut at C{positions}, and byte by byte (in small
    pieces if it is long)."""
    step = 1 if len(data) <= _BYTE_BY_BYTE_UP_TO else _SMALL_PIECE
    return [[data], cut(data, positions), [data[i : i + step] for i in range(0, len(data), step)]]


def read_every_way(
    test: SynchronousTestCase, peer: Peer, data: bytes, eof: bool, positions: Iterable[int]
) -> Outcome:
    """Read C{data} whole and in pieces; the outcome must not depend on the pieces."""
    whole, *others = [read(peer, pieces, eof) for pieces in splits(data, positions)]
    for other in others:
        test.assertEqual(other, whole)
    return whole


def assemble(outcome: Outcome) -> bytes:
    """Serialize parsed events again with the codec's writers."""
    framings = iter(outcome.framings)
    chunked = False
    parts = []
    for event in outcome.events:
        if isinstance(event, RequestHead):
            parts.append(
                assemble_request_head(event.method, event.target, event.http_version, event.headers)
            )
            chunked = next(framings).kind is FramingKind.CHUNKED
        elif isinstance(event, ResponseHead):
            parts.append(
                assemble_response_head(
                    event.http_version, event.status_code, event.reason, event.headers
                )
            )
            chunked = next(framings).kind is FramingKind.CHUNKED
        elif isinstance(event, Data):
            if event.chunk_size is not None:
                parts.append(chunk_header(event.chunk_size))
            parts.append(event.data)
            if event.chunk_end:
                parts.append(CHUNK_END)
        elif isinstance(event, EndOfMessage) and chunked:
            parts.append(last_chunk(event.trailers))
    if outcome.ending[0] == "switched":
        parts.append(outcome.ending[1])  # type: ignore[arg-type]
    return b"".join(parts)


# -- generated messages -------------------------------------------------------------------

_TOKEN_BYTES = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VISIBLE_BYTES = [byte for byte in range(0x21, 0x100) if byte != 0x7F]  # VCHAR and obs-text
_FRAMING_NAMES = (b"content-length", b"transfer-encoding")

_REASON_BYTES = [0x09, *range(0x20, 0x7F), *range(0x80, 0x100)]


def over(alphabet: Sequence[int], min_size: int, max_size: int) -> st.SearchStrategy[bytes]:
    """Byte strings over C{alphabet}, drawn at once (one draw per byte is far slower)."""
    return st.binary(min_size=min_size, max_size=max_size).map(
        lambda data: bytes(alphabet[byte % len(alphabet)] for byte in data)
    )


tokens = over(_TOKEN_BYTES, 1, 10)
words = over(_VISIBLE_BYTES, 1, 8)
spaces = st.sampled_from([b" ", b"\t", b"  ", b" \t"])
optional_spaces = st.sampled_from([b"", b"", b" ", b"\t", b" \t "])
line_ends = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"])
field_names = st.one_of(
    st.sampled_from([b"Host", b"Accept", b"Connection", b"X-Forwarded-For", b"Trailer"]), tokens
).filter(lambda name: name.lower() not in _FRAMING_NAMES)
field_values = st.lists(st.tuples(spaces, words), max_size=3).map(
    lambda parts: b"".join(space + word for space, word in parts).lstrip(b" \t")
)
fields = st.lists(st.tuples(field_names, field_values), max_size=6)
bodies = st.binary(max_size=40)
chunks = st.lists(st.binary(min_size=1, max_size=24), max_size=4)
methods = st.one_of(
    st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"HEAD"]), tokens
).filter(lambda method: method != b"CONNECT")
targets = st.one_of(
    st.sampled_from([b"/", b"*", b"http://a.example/x?y=1", b"/%20?q", b"a.example:443"]),
    over(_VISIBLE_BYTES, 1, 24),
)
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"])
reasons = over(_REASON_BYTES, 0, 12)


@dataclass
class Message:
    """One generated message: its bytes, the events it parses to, and its limits.

    C{head_size} and C{head_fields} are what the head needs of C{max_head_size} and
    C{max_headers}; C{trailer_size} and C{trailer_fields} the same for its trailers.
    C{clean_ends} are the offsets where the peer may close the connection cleanly if
    every message before was complete: a request's start and the ends of the empty lines
    before it. C{body_start} is the offset of the body.
    """

    wire: bytes
    events: list[Event]
    head_size: int
    head_fields: int
    body_start: int
    trailer_size: int = 0
    trailer_fields: int = 0
    clean_ends: tuple[int, ...] = ()
    until_close: bool = False


@dataclass
class Stream:
    """Messages sent one after another on a connection, and how the connection ends."""

    messages: list[Message]
    eof: bool
    methods: tuple[bytes, ...] | None = None  # of the requests, when responses are read
    tunnel: bytes | None = None  # what follows a switch to another protocol
    wire: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.wire = b"".join(message.wire for message in self.messages) + (self.tunnel or b"")

    def peer(self, max_head_size: int = _DEFAULT_HEAD_SIZE, max_headers: int = _DEFAULT_HEADERS) -> Peer:
        return Peer(self.methods, max_head_size, max_headers)

    def ends_cleanly_at(self, offset: int) -> tuple[Event, ...] | None:
        """The events of the messages before C{offset} if a close there is clean, else None."""
        events: list[Event] = []
        start = 0
        for message in self.messages:
            if offset - start in message.clean_ends:
                return tuple(events)
            events += message.events
            start += len(message.wire)
        return None

    def expected(self) -> tuple[tuple[Event, ...], Ending]:
        """The events and the ending of reading the stream within generous limits."""
        events = [event for message in self.messages for event in message.events]
        if self.tunnel is not None:
            ending: Ending = ("switched", self.tunnel)
        else:
            ending = ("closed",) if self.eof else ("waiting", 0)
        if ending == ("closed",):
            events.append(ConnectionClosed())
        return tuple(events), ending


def _field_line(draw: st.DrawFn, name: bytes, value: bytes) -> bytes:
    """A field line as a peer may send it: optional whitespace, CRLF or a bare LF."""
    return b"%s:%s%s%s%s" % (name, draw(optional_spaces), value, draw(optional_spaces), draw(line_ends))


def _mixed_case(draw: st.DrawFn, word: bytes) -> bytes:
    flips = draw(st.integers(0, (1 << len(word)) - 1))
    return bytes(c ^ 0x20 if flips >> i & 1 and chr(c).isalpha() else c for i, c in enumerate(word))


@st.composite
def heads(
    draw: st.DrawFn, start_line: bytes, framing_fields: list[tuple[bytes, bytes]]
) -> tuple[bytes, Headers, int]:
    """A head: the start line, random fields with C{framing_fields} among them, an empty line.

    @return: its bytes, its fields as parsed, and its number of fields.
    """
    head_fields = draw(fields)
    for framing_field in framing_fields:
        head_fields.insert(draw(st.integers(0, len(head_fields))), framing_field)
    wire = start_line + draw(line_ends)
    wire += b"".join(_field_line(draw, name, value) for name, value in head_fields)
    wire += draw(line_ends)
    return wire, tuple(head_fields), len(head_fields)


def _length_fields(draw: st.DrawFn, length: int) -> list[tuple[bytes, bytes]]:
    """One or more Content-Length fields that agree on C{length}."""
    digits = b"0" * draw(st.integers(0, 2)) + b"%d" % length
    form = draw(st.sampled_from(["one", "one", "repeated", "list"]))
    name = _mixed_case(draw, b"Content-Length")
    if form == "repeated":
        return [(name, digits), (name, digits)]
    if form == "list":
        return [(name, b"%s, %s" % (digits, digits))]
    return [(name, digits)]


def _chunk_extension(draw: st.DrawFn) -> bytes:
    extensions = draw(
        st.lists(
            st.tuples(
                optional_spaces,
                tokens,
                st.one_of(
                    st.just(b""),
                    tokens.map(lambda value: b"=" + value),
                    words.map(lambda value: b'="%s"' % value.replace(b'"', b"").replace(b"\\", b"")),
                ),
            ),
            max_size=2,
        )
    )
    return b"".join(b"%s;%s%s" % extension for extension in extensions)


def _chunk_size_line(draw: st.DrawFn, size: int) -> bytes:
    digits = _mixed_case(draw, b"0" * draw(st.integers(0, 2)) + b"%x" % size)
    return digits + _chunk_extension(draw) + draw(line_ends)


@st.composite
def chunked_bodies(draw: st.DrawFn) -> tuple[bytes, list[Event], int, int]:
    """A chunked body with chunk extensions and trailers.

    @return: its bytes, its events, its trailer section's size and field count.
    """
    pieces = draw(chunks)
    wire = b"".join(_chunk_size_line(draw, len(piece)) + piece + b"\r\n" for piece in pieces)
    wire += _chunk_size_line(draw, 0)
    trailer_fields = draw(st.lists(st.tuples(tokens, field_values), max_size=3))
    trailers = b"".join(_field_line(draw, name, value) for name, value in trailer_fields)
    trailers += draw(line_ends)
    events: list[Event] = [Data(piece, len(piece), True) for piece in pieces]
    events.append(EndOfMessage(tuple(trailer_fields)))
    return wire + trailers, events, len(trailers), len(trailer_fields)


def _with_body(
    draw: st.DrawFn, start_line: bytes, head_event: type, head_args: tuple, kind: str,
    chunked_name: bytes = b"chunked",
) -> Message:
    """A message whose body has C{kind}: none, length, chunked or close-delimited; or
    "declared": none on the wire, though a Content-Length says otherwise (a bodiless
    response)."""
    framing_fields: list[tuple[bytes, bytes]] = []
    body, body_events = b"", [EndOfMessage()]
    trailer_size = trailer_fields = 0
    if kind == "declared":
        framing_fields = [(b"Content-Length", b"%d" % draw(st.integers(0, 10**9)))]
    elif kind == "length":
        body = draw(bodies)
        framing_fields = _length_fields(draw, len(body))
        body_events = ([Data(body)] if body else []) + body_events
    elif kind == "chunked":
        te = _mixed_case(draw, chunked_name)
        framing_fields = [(_mixed_case(draw, b"Transfer-Encoding"), te)]
        body, body_events, trailer_size, trailer_fields = draw(chunked_bodies())
    elif kind == "close":
        body = draw(bodies)
        body_events = ([Data(body)] if body else []) + body_events
    wire, headers, field_count = draw(heads(start_line, framing_fields))
    head = head_event(*head_args, headers)
    return Message(
        wire + body, [head, *body_events], len(wire), field_count, len(wire), trailer_size,
        trailer_fields, until_close=kind == "close",
    )


@st.composite
def requests(draw: st.DrawFn, method: bytes | None = None) -> Message:
    """A valid request, with up to two empty lines before it."""
    method = method or draw(methods)
    target, version = draw(targets), draw(versions)
    kinds = ["none", "length"] + (["chunked"] if version == b"HTTP/1.1" else [])
    start_line = b"%s %s %s" % (method, target, version)
    kind = draw(st.sampled_from(kinds))
    message = _with_body(draw, start_line, RequestHead, (method, target, version), kind)
    empty_lines = draw(st.lists(line_ends, max_size=2))
    message.wire = b"".join(empty_lines) + message.wire
    message.body_start += sum(map(len, empty_lines))
    message.clean_ends = tuple(itertools.accumulate(map(len, empty_lines), initial=0))
    return message


@st.composite
def request_streams(draw: st.DrawFn) -> Stream:
    """Pipelined requests, perhaps ending with a CONNECT and the start of its tunnel."""
    messages = draw(st.lists(requests(), min_size=1, max_size=4))
    tunnel = None
    if draw(st.integers(0, 3)) == 0:
        messages.append(draw(requests(b"CONNECT")))
        tunnel = draw(st.binary(max_size=24))
    return Stream(messages, draw(st.booleans()), tunnel=tunnel)


def _status_line(draw: st.DrawFn, version: bytes, status: int, reason: bytes) -> bytes:
    if not reason and draw(st.booleans()):
        return b"%s %d" % (version, status)
    return b"%s %d %s" % (version, status, reason)


def _response(draw: st.DrawFn, status: int, kind: str) -> Message:
    version, reason = draw(versions), draw(reasons)
    start_line = _status_line(draw, version, status, reason)
    chunked_name = draw(st.sampled_from([b"chunked", b"gzip, chunked"]))
    return _with_body(draw, start_line, ResponseHead, (version, status, reason), kind, chunked_name)


def _bodiless_response(draw: st.DrawFn, status: int) -> Message:
    """A response that has no body whatever its framing fields say."""
    return _response(draw, status, draw(st.sampled_from(["none", "declared"])))


@st.composite
def response_streams(draw: st.DrawFn) -> Stream:
    """Responses to pipelined requests: interim ones, bodiless ones, all framings, switches."""
    exchanges = draw(st.integers(1, 4))
    messages: list[Message] = []
    sent: list[bytes] = []
    for index in range(exchanges):
        method = draw(st.sampled_from([b"GET", b"POST", b"HEAD", b"CONNECT", b"PUT"]))
        sent.append(method)
        interim = st.sampled_from([100, 102, 103, 150, 199])
        for status in draw(st.lists(interim, max_size=draw(st.integers(0, 2)) // 2 + 1)):
            messages.append(_bodiless_response(draw, status))
        last = index == exchanges - 1
        finals = [200, 201, 204, 304, 404, 500, 599, 999] + ([101] if last else [])
        status = draw(st.sampled_from(finals))
        switches = status == 101 or (method == b"CONNECT" and 200 <= status < 300)
        if switches and not last:
            status = 404
            switches = False
        if method == b"HEAD" or status in (101, 204, 304) or switches:
            messages.append(_bodiless_response(draw, status))
        else:
            kind = draw(st.sampled_from(["length", "chunked"] + (["close"] if last else [])))
            messages.append(_response(draw, status, kind))
            if kind == "close":
                return Stream(messages, True, tuple(sent))
        if switches:
            return Stream(messages, draw(st.booleans()), tuple(sent), draw(st.binary(max_size=24)))
    return Stream(messages, draw(st.booleans()), tuple(sent))


# -- mutations ----------------------------------------------------------------------------

_SNIPPETS = [
    b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"\x00", b" ", b"\t", b":", b";", b",", b"\x7f", b"\xff",
    b" folded", b"\r\n folded", b"\r\n\tfolded",
    b"Content-Length: 3\r\n", b"Content-Length: 99999999999999999999\r\n",
    b"Content-Length: -1\r\n", b"Content-Length: 0x10\r\n", b"Content-Length: 1e3\r\n",
    b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip\r\n",
    b"Transfer-Encoding: chunked, identity\r\n", b"Transfer-Encoding:\r\n chunked\r\n",
    b"Transfer-Encoding : chunked\r\n", b"X: a\x00b\r\n",
    b"-5\r\n", b"0x5\r\n", b"5g\r\n", b"+5\r\n", b" 5\r\n", b"fffffffffffffffff\r\n",
    b"ffffffffffffffff\r\n", b"5;" + b"e" * 5000 + b"\r\n", b"X: " + b"a" * 5000 + b"\r\n",
    b"X: " + b"a" * 70_000, b"0\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n",
]
_LINE_END_REPLACEMENTS = [b"", b"\n", b"\r", b"\r\n\r\n", b"\n\r", b"\r\r\n"]


def _line_starts(data: bytes) -> list[int]:
    return [0] + [match.end() for match in re.finditer(b"\n", data)]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """C{data} with one to three mutations: flipped, inserted or removed bytes, changed
    line ends, lines replaced by hostile ones (smuggling shapes, bad sizes, huge lines).

    Places and byte values come from a seeded C{Random}: hypothesis favours its simplest
    values (0), which would put most mutations on the first byte.
    """
    where = draw(st.randoms(use_true_random=True))
    for _ in range(draw(st.integers(1, 3))):
        position = where.randrange(len(data) + 1)
        operation = draw(st.sampled_from(["flip", "insert", "delete", "line end", "line"]))
        if operation == "flip" and data:
            position %= len(data)
            data = data[:position] + bytes([where.randrange(256)]) + data[position + 1 :]
        elif operation == "insert":
            data = data[:position] + draw(st.sampled_from(_SNIPPETS)) + data[position:]
        elif operation == "delete":
            data = data[:position] + data[position + where.randrange(1, 9) :]
        elif operation == "line end":
            ends = [match.start() for match in re.finditer(b"\r?\n", data)]
            if ends:
                start = where.choice(ends)
                end = data.index(b"\n", start) + 1
                data = data[:start] + draw(st.sampled_from(_LINE_END_REPLACEMENTS)) + data[end:]
        else:
            start = where.choice(_line_starts(data))
            end = data.find(b"\n", start) + 1 or len(data)
            data = data[:start] + draw(st.sampled_from(_SNIPPETS)) + data[end:]
    return data


# -- smuggling shapes ---------------------------------------------------------------------


def _elements(values: Sequence[bytes]) -> list[bytes]:
    """The list elements of field values, as RFC 9110 §5.6.1 reads them."""
    elements = (element.strip(b" \t") for value in values for element in value.split(b","))
    return [element.lower() for element in elements if element]


@st.composite
def smuggling_fields(draw: st.DrawFn, request: bool) -> list[tuple[bytes, bytes]]:
    """Framing fields that make a message's length ambiguous."""
    lengths = st.integers(0, 10**6).map(lambda number: b"%d" % number)
    codings = st.sampled_from([b"chunked", b"gzip", b"identity", b"deflate", b"x-custom", b""])
    te_values = st.lists(codings, min_size=1, max_size=3).map(lambda values: b", ".join(values))
    te_name, cl_name = _mixed_case(draw, b"Transfer-Encoding"), _mixed_case(draw, b"Content-Length")
    shapes = ["length and coding", "differing lengths"] + (["bad coding"] if request else [])
    shape = draw(st.sampled_from(shapes))
    if shape == "length and coding":
        found = [(cl_name, draw(lengths)), (te_name, draw(te_values))]
        return found if draw(st.booleans()) else found[::-1]
    if shape == "differing lengths":
        first, second = draw(lengths), draw(lengths)
        assume(first != second)
        if draw(st.booleans()):
            return [(cl_name, b"%s, %s" % (first, second))]
        return [(cl_name, first), (_mixed_case(draw, b"Content-Length"), second)]
    values = draw(st.lists(te_values, min_size=1, max_size=2))
    if draw(st.booleans()):
        values[-1] += b", chunked"  # chunked last, but not alone
    assume(_elements(values) != [b"chunked"])
    return [(te_name, value) for value in values]


# -- the properties -----------------------------------------------------------------------


def _described(error: BaseException) -> str:
    lines = ["%s: %s" % (type(error).__name__, error), *getattr(error, "__notes__", ())]
    if isinstance(error, BaseExceptionGroup):
        lines += (_described(member) for member in error.exceptions)
    return "\n".join(lines)


def reported(test: Callable[..., None]) -> Callable[..., None]:
    """Put hypothesis's notes (the falsifying example) into the failure itself: trial's
    report shows neither exception notes nor the members of an exception group."""

    @functools.wraps(test)
    def run(*args: object, **kwargs: object) -> None:
        try:
            test(*args, **kwargs)
        except BaseExceptionGroup as group:
            raise SynchronousTestCase.failureException(_described(group)) from group
        except Exception as error:
            if getattr(error, "__notes__", None):
                error.args = (_described(error),)
            raise

    return run


positions = st.lists(st.integers(0, 1 << 20), max_size=8)
trailing = st.binary(max_size=40)  # what follows a head that must be refused
limits = st.tuples(st.integers(16, 2048), st.integers(1, 12))
response_methods = st.lists(st.sampled_from([b"GET", b"HEAD", b"CONNECT", b"POST"]), max_size=3)


class RandomBytesTests(SynchronousTestCase):
    """Whatever the bytes, readers raise nothing but L{ProtocolError} and stay well-formed."""

    @reported
    @given(st.binary(max_size=600), st.booleans(), positions, limits)
    def test_requests(self, data: bytes, eof: bool, cuts: list[int], sizes: tuple[int, int]) -> None:
        """Random bytes read as requests give well-formed events or an error, split or not."""
        read_every_way(self, Peer(None, *sizes), data, eof, cuts)

    @reported
    @given(st.binary(max_size=600), response_methods, st.booleans(), positions, limits)
    def test_responses(
        self, data: bytes, sent: list[bytes], eof: bool, cuts: list[int], sizes: tuple[int, int]
    ) -> None:
        """Random bytes read as responses give well-formed events or a 502, split or not."""
        read_every_way(self, Peer(tuple(sent), *sizes), data, eof, cuts)


class GeneratedMessageTests(SynchronousTestCase):
    """Valid messages parse to what was generated however they are split, and round-trip."""

    def assertParses(self, stream: Stream, cuts: list[int]) -> None:
        outcome = read_every_way(self, stream.peer(), stream.wire, stream.eof, cuts)
        self.assertEqual((outcome.events, outcome.ending), stream.expected())
        again = read(stream.peer(), [assemble(outcome)], stream.eof)
        self.assertEqual((again.events, again.ending), (outcome.events, outcome.ending))

    def assertTruncated(self, stream: Stream, data: st.DataObject) -> None:
        """A close inside a message is an error, after the events that came before it;
        only a close between requests is clean."""
        assume(not stream.messages[-1].until_close)
        where = data.draw(st.randoms(use_true_random=True))
        index = where.randrange(len(stream.messages))
        message = stream.messages[index]
        in_body = message.body_start < len(message.wire) and where.random() < 0.5
        low, high = (message.body_start, len(message.wire)) if in_body else (0, message.body_start)
        offset = sum(len(before.wire) for before in stream.messages[:index]) + where.randrange(low, high)
        outcome = read(stream.peer(), [stream.wire[:offset]], True)
        complete = stream.ends_cleanly_at(offset)
        if complete is not None:
            self.assertEqual(outcome.events, (*complete, ConnectionClosed()))
            self.assertEqual(outcome.ending, ("closed",))
            return
        self.assertEqual(outcome.ending[:2], ("error", 400 if stream.methods is None else 502))
        self.assertPrefix(outcome.events, stream.expected()[0])

    def assertPrefix(self, events: tuple[Event, ...], expected: tuple[Event, ...]) -> None:
        """C{events} are the first of C{expected}, the data of the last perhaps cut short."""
        if not events:
            return
        *whole, last = events
        self.assertEqual(tuple(whole), expected[: len(whole)])
        model = expected[len(whole)]
        if last != model:
            self.assertIsInstance(last, Data)
            self.assertIsInstance(model, Data)
            assert isinstance(last, Data) and isinstance(model, Data)  # for the type checker
            self.assertTrue(model.data.startswith(last.data))
            self.assertEqual((last.chunk_size, last.chunk_end), (model.chunk_size, False))

    @reported
    @given(request_streams(), positions)
    def test_requests(self, stream: Stream, cuts: list[int]) -> None:
        """Pipelined requests parse to their events and parse the same once reassembled."""
        self.assertParses(stream, cuts)

    @reported
    @given(response_streams(), positions)
    def test_responses(self, stream: Stream, cuts: list[int]) -> None:
        """Sequences of responses parse to their events and parse the same once reassembled."""
        self.assertParses(stream, cuts)

    @reported
    @given(request_streams(), st.data())
    def test_truncated_requests(self, stream: Stream, data: st.DataObject) -> None:
        """Requests cut short by a close are a 400 unless the close falls between requests."""
        self.assertTruncated(stream, data)

    @reported
    @given(response_streams(), st.data())
    def test_truncated_responses(self, stream: Stream, data: st.DataObject) -> None:
        """Responses cut short by a close are a 502, unless delimited by the close."""
        self.assertTruncated(stream, data)


class LimitTests(SynchronousTestCase):
    """Heads, trailers and chunk-size lines beyond the limits fail where they start."""

    def assertWithinLimits(self, stream: Stream, max_head_size: int, max_headers: int) -> None:
        """Messages beyond the limits end in a 431 (502 for responses) where they start."""
        events: list[Event] = []
        for message in stream.messages:
            if message.head_size > max_head_size or message.head_fields > max_headers:
                break
            if message.trailer_size > max_head_size or message.trailer_fields > max_headers:
                events += message.events[:-1]
                break
            events += message.events
        else:
            return
        outcome = read(stream.peer(max_head_size, max_headers), [stream.wire], stream.eof)
        self.assertEqual(outcome.events, tuple(events))
        self.assertEqual(outcome.ending[:2], ("error", 431 if stream.methods is None else 502))

    @reported
    @given(request_streams(), st.integers(16, 400), st.integers(0, 8))
    def test_request_limits(self, stream: Stream, max_head_size: int, max_headers: int) -> None:
        """A request whose head or trailers exceed a limit fails with 431 at that request."""
        self.assertWithinLimits(stream, max_head_size, max_headers)

    @reported
    @given(response_streams(), st.integers(16, 400), st.integers(0, 8))
    def test_response_limits(self, stream: Stream, max_head_size: int, max_headers: int) -> None:
        """A response whose head or trailers exceed a limit fails with 502 at that response."""
        self.assertWithinLimits(stream, max_head_size, max_headers)

    @reported
    @given(st.integers(0, 6000), line_ends, positions)
    def test_chunk_size_line(self, padding: int, line_end: bytes, cuts: list[int]) -> None:
        """A chunk-size line longer than 4 KiB is a 400 however it arrives; a shorter one is read."""
        line = b"5;x=" + b"y" * padding + line_end
        head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        outcome = read_every_way(self, Peer(), head + line + b"hello\r\n" + last_chunk(), True, cuts)
        if len(line) > http1._MAX_CHUNK_SIZE_LINE:
            self.assertEqual(len(outcome.events), 1)
            self.assertEqual(outcome.ending, ("error", 400, "chunk size line too long"))
        else:
            body = (Data(b"hello", 5, True), EndOfMessage(), ConnectionClosed())
            self.assertEqual(outcome.events[1:], body)


class MutationTests(SynchronousTestCase):
    """Damaged messages give well-formed events or an error, the same however split."""

    @reported
    @given(st.data(), request_streams(), positions, limits)
    def test_requests(
        self, data: st.DataObject, stream: Stream, cuts: list[int], sizes: tuple[int, int]
    ) -> None:
        """Mutated requests never raise anything but a 400, 431 or 505 L{ProtocolError}."""
        wire = data.draw(mutated(stream.wire))
        read_every_way(self, Peer(None, *sizes), wire, stream.eof, cuts)
        read_every_way(self, Peer(None), wire, stream.eof, cuts)

    @reported
    @given(st.data(), response_streams(), positions, limits)
    def test_responses(
        self, data: st.DataObject, stream: Stream, cuts: list[int], sizes: tuple[int, int]
    ) -> None:
        """Mutated responses never raise anything but a 502 L{ProtocolError}."""
        wire = data.draw(mutated(stream.wire))
        read_every_way(self, stream.peer(*sizes), wire, stream.eof, cuts)
        read_every_way(self, stream.peer(), wire, stream.eof, cuts)


class SmugglingTests(SynchronousTestCase):
    """Ambiguous framing is refused at the head that carries it, however the bytes arrive."""

    def assertRefused(self, stream: Stream, smuggler: bytes, status: int, cuts: list[int]) -> None:
        outcome = read_every_way(self, stream.peer(), stream.wire + smuggler, True, cuts)
        self.assertEqual(outcome.events, tuple(e for m in stream.messages for e in m.events))
        self.assertEqual(outcome.ending[:2], ("error", status))

    @reported
    @given(st.data(), st.lists(requests(), max_size=2), versions, trailing, positions)
    def test_requests(
        self, data: st.DataObject, before: list[Message], version: bytes, after: bytes, cuts: list[int]
    ) -> None:
        """CL with TE, differing CLs and any TE but chunked alone are a 400, never a body."""
        head, _, _ = data.draw(heads(b"POST / " + version, data.draw(smuggling_fields(True))))
        self.assertRefused(Stream(before, True), head + after, 400, cuts)

    @reported
    @given(st.data(), st.sampled_from([b"GET", b"POST"]), st.integers(200, 599), trailing, positions)
    def test_responses(
        self, data: st.DataObject, method: bytes, status: int, after: bytes, cuts: list[int]
    ) -> None:
        """CL with TE and differing CLs in a response with a body are a 502."""
        assume(status not in (204, 304))
        line = b"HTTP/1.1 %d OK" % status
        head, _, _ = data.draw(heads(line, data.draw(smuggling_fields(False))))
        self.assertRefused(Stream([], True, (method,)), head + after, 502, cuts)

    @reported
    @given(st.data(), trailing, positions)
    def test_transfer_encoding_in_http10(
        self, data: st.DataObject, after: bytes, cuts: list[int]
    ) -> None:
        """An HTTP/1.0 request with any Transfer-Encoding field is a 400."""
        coding = data.draw(st.sampled_from([b"chunked", b"gzip, chunked", b"identity"]))
        head, _, _ = data.draw(heads(b"POST / HTTP/1.0", [(b"Transfer-Encoding", coding)]))
        self.assertRefused(Stream([], True), head + after, 400, cuts)

    @reported
    @given(
        st.sampled_from([b"", b"-", b"+", b"0x", b" ", b"g", b";"]),
        over(b"0123456789abcdefABCDEF", 1, 20),
        st.sampled_from([b"", b"g", b" x", b"\x00", b"\r"]),
        line_ends,
        positions,
    )
    def test_bad_chunk_sizes(
        self, before: bytes, digits: bytes, after: bytes, line_end: bytes, cuts: list[int]
    ) -> None:
        """A chunk size with a sign, C{0x}, stray bytes or over 16 digits is a 400, not data."""
        assume(before or after or len(digits) > 16)
        head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        wire = head + before + digits + after + line_end + b"hello\r\n" + last_chunk()
        outcome = read_every_way(self, Peer(), wire, True, cuts)
        self.assertEqual(len(outcome.events), 1)
        self.assertEqual(outcome.ending[:2], ("error", 400))
        self.assertIn(outcome.ending[2], ("invalid chunk size", "chunk size overflow"))

    @reported
    @given(st.binary(min_size=1, max_size=16), st.binary(min_size=2, max_size=2), positions)
    def test_chunk_without_crlf(self, chunk: bytes, junk: bytes, cuts: list[int]) -> None:
        """Chunk data followed by anything but CRLF (a wrong chunk size) is a 400."""
        assume(junk != b"\r\n")
        head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        wire = head + chunk_header(len(chunk)) + chunk + junk + last_chunk()
        outcome = read_every_way(self, Peer(), wire, True, cuts)
        self.assertEqual(outcome.events[1:], (Data(chunk, len(chunk), True),))
        self.assertEqual(outcome.ending, ("error", 400, "missing CRLF after chunk data"))


# -- the writers --------------------------------------------------------------------------

hostile_bytes = st.one_of(
    st.binary(max_size=12),
    st.lists(st.sampled_from(b"\r\n\x00 \t:;,\x01\x7f\xffaZ0-"), max_size=12).map(bytes),
    st.tuples(tokens, st.sampled_from([b"\r\n", b"\n", b"\r", b"\x00", b"\r\nX: y"]), words).map(
        b"".join
    ),
)


class WriterTests(SynchronousTestCase):
    """What the writers accept parses back to the same message, never to another one."""

    def assertSameOrRefused(
        self,
        data: bytes,
        expected: tuple[Event, ...],
        peer: Peer,
        ending: Ending = ("waiting", 0),
        refused_after: int = 0,
    ) -> Outcome:
        """C{data} parses to C{expected} exactly, or is refused after its first
        C{refused_after} events (before the message the writer made)."""
        outcome = read(peer, [data], False)
        if outcome.ending[0] == "error":
            self.assertEqual(outcome.events, expected[:refused_after])
        else:
            self.assertEqual((outcome.events, outcome.ending), (expected, ending))
        return outcome

    @reported
    @given(hostile_bytes, hostile_bytes)
    def test_fields(self, name: bytes, value: bytes) -> None:
        """A field that L{check_field} refuses is refused by the writers too; any other
        field comes back with the same name and value (less surrounding whitespace), or
        its head is refused whole when the value holds a control character."""
        assume(name.lower() not in _FRAMING_NAMES)
        fields = [(b"A", b"1"), (name, value), (b"Z", b"2")]
        parsed = ((b"A", b"1"), (name, value.strip(b" \t")), (b"Z", b"2"))
        next_request = b"GET /next HTTP/1.1\r\n\r\n"
        try:
            check_field(name, value)
        except ProtocolError as error:
            self.assertEqual(error.status, 502)
            self.assertRaises(ValueError, assemble_request_head, b"GET", b"/", b"HTTP/1.1", fields)
            self.assertRaises(ValueError, assemble_response_head, b"HTTP/1.1", 200, b"OK", fields)
            self.assertRaises(ValueError, last_chunk, fields)
            return
        refused = _CTL_BUT_HTAB.search(value) is not None
        request = assemble_request_head(b"GET", b"/", b"HTTP/1.1", fields) + next_request
        outcome = self.assertSameOrRefused(
            request,
            (RequestHead(b"GET", b"/", b"HTTP/1.1", parsed), EndOfMessage(),
             RequestHead(b"GET", b"/next", b"HTTP/1.1", ()), EndOfMessage()),
            Peer(None),
        )
        self.assertEqual(outcome.ending[0] == "error", refused)
        chunked = ((b"Transfer-Encoding", b"chunked"),)
        outcome = self.assertSameOrRefused(
            assemble_response_head(b"HTTP/1.1", 200, b"OK", chunked) + last_chunk(fields),
            (ResponseHead(b"HTTP/1.1", 200, b"OK", chunked), EndOfMessage(parsed)),
            Peer((b"GET",)),
            refused_after=1,
        )
        self.assertEqual(outcome.ending[0] == "error", refused)

    @reported
    @given(hostile_bytes, hostile_bytes, hostile_bytes, st.integers(0, 1200))
    @example(b"CONNECT", b"!", b"", 0)  # found by the long profile
    def test_start_lines(self, method: bytes, target: bytes, reason: bytes, status: int) -> None:
        """A start line that the writers accept parses to the same head or is refused."""
        try:
            request = assemble_request_head(method, target, b"HTTP/1.1", [])
        except ValueError:
            self.assertRegex(method + target, b"[\r\n\x00]")
        else:
            self.assertSameOrRefused(
                request,
                (RequestHead(method, target, b"HTTP/1.1", ()), EndOfMessage()),
                Peer(None),
                ("switched", b"") if method == b"CONNECT" else ("waiting", 0),
            )
        empty = ((b"Content-Length", b"0"),)
        try:
            response = assemble_response_head(b"HTTP/1.1", status, reason, empty)
        except ValueError:
            self.assertRegex(reason, b"[\r\n\x00]")
        else:
            self.assertSameOrRefused(
                response,
                (ResponseHead(b"HTTP/1.1", status, reason, empty), EndOfMessage()),
                Peer((b"GET", b"GET")),
                ("switched", b"") if status == 101 else ("waiting", 0),
            )

    @reported
    @given(st.integers(1, 16**16 - 1), st.binary(min_size=1, max_size=8))
    def test_chunk_sizes(self, size: int, data: bytes) -> None:
        """Every chunk size the reader can take comes back from L{chunk_header} unchanged."""
        head = assemble_response_head(b"HTTP/1.1", 200, b"OK", [(b"Transfer-Encoding", b"chunked")])
        outcome = read(Peer((b"GET",)), [head, chunk_header(size), data], False)
        self.assertEqual(outcome.events[1:], (Data(data[:size], size, len(data) >= size),))

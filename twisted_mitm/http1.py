# -*- test-case-name: tests.test_http1 -*-
"""Sans-io HTTP/1.x codec (RFC 9112): bytes in, events out; no I/O and no Twisted.

L{RequestReader} parses what a client sends and L{ResponseReader} what a server answers;
both turn received bytes into L{RequestHead}/L{ResponseHead}, L{Data}, L{EndOfMessage} and
L{ConnectionClosed} events and raise L{ProtocolError} when a peer breaks the protocol.
L{request_framing} and L{response_framing} decide how a body is delimited, refusing the
ambiguous cases that allow request smuggling. The C{assemble_*}, L{chunk_header} and
L{last_chunk} writers produce the bytes the proxy sends, and L{check_field} says whether a
field can be sent at all. C{proxy/} drives all of this.

Body bytes are never copied when avoidable: a received C{bytes} object that lies wholly
inside a body is handed out as the very same object in a L{Data} event.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections import deque
from dataclasses import dataclass
from typing import Callable, Final, Iterable, Literal, Union

from twisted_mitm.exceptions import ProtocolError

Headers = tuple[tuple[bytes, bytes], ...]

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
_FIELD_LINE = re.compile(rb"(%s):([^\x00-\x08\x0a-\x1f\x7f]*)" % _TOKEN)
_REQUEST_LINE = re.compile(rb"(%s) ([^\x00-\x20\x7f]+) (HTTP/[0-9]\.[0-9])" % _TOKEN)
_STATUS_LINE = re.compile(rb"(HTTP/[0-9]\.[0-9]) ([1-9][0-9]{2})(?: ([\t\x20-\x7e\x80-\xff]*))?")
_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r?\n")
_ABSOLUTE_FORM = re.compile(rb"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([/?][^#]*)?")
_AUTHORITY = re.compile(
    rb"(?:\[([0-9A-Fa-f:.]+)\]|([-A-Za-z0-9._~!$&'()*+,;=%]+))(?::([0-9]{1,5}))?"
)
_UNSAFE_IN_HEAD = re.compile(rb"[\r\n\x00]")

_SUPPORTED_VERSIONS = frozenset({b"HTTP/1.0", b"HTTP/1.1"})
_DEFAULT_PORTS = {b"http": 80, b"https": 443, b"ws": 80, b"wss": 443}
_MAX_CONTENT_LENGTH_DIGITS = 18
_MAX_CHUNK_SIZE_DIGITS = 16
_MAX_CHUNK_SIZE_LINE = 4096
_MAX_EMPTY_LINES_BEFORE_HEAD = 8


# -- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A request line and its header fields, exactly as received (name case, order, repeats)."""

    method: bytes
    target: bytes
    http_version: bytes
    headers: Headers


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A status line and its header fields, exactly as received (name case, order, repeats)."""

    http_version: bytes
    status_code: int
    reason: bytes
    headers: Headers


@dataclass(frozen=True, slots=True)
class Data:
    """A piece of a message body.

    For chunked bodies, C{chunk_size} is the declared size of the chunk on the first piece
    of each chunk and C{chunk_end} is true on the piece that completes it (one piece may be
    both), so the chunk boundaries can be re-emitted downstream without buffering.
    """

    data: bytes
    chunk_size: int | None = None
    chunk_end: bool = False


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The body is complete; C{trailers} are the chunked trailer fields, if any."""

    trailers: Headers = ()


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the connection cleanly between messages."""


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = _NeedData.NEED_DATA
"""Returned by C{next_event} when more bytes must be received first."""

Event = Union[RequestHead, ResponseHead, Data, EndOfMessage, ConnectionClosed]
NextEvent = Union[Event, Literal[_NeedData.NEED_DATA]]


# -- framing ------------------------------------------------------------------------------


class FramingKind(enum.Enum):
    """How a message body is delimited (RFC 9112 §6)."""

    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until close"


@dataclass(frozen=True, slots=True)
class BodyFraming:
    """The delimitation of one body; C{length} is set for L{FramingKind.LENGTH} only."""

    kind: FramingKind
    length: int | None = None


_NO_BODY = BodyFraming(FramingKind.NONE)
_CHUNKED = BodyFraming(FramingKind.CHUNKED)
_UNTIL_CLOSE = BodyFraming(FramingKind.UNTIL_CLOSE)


# -- header knowledge shared by the whole proxy ---------------------------------------------


def field_elements(headers: Headers, name: bytes) -> list[bytes]:
    """The non-empty comma-separated elements of all fields called C{name} (lower case)."""
    elements = (
        element.strip(b" \t")
        for key, value in headers
        if key.lower() == name
        for element in value.split(b",")
    )
    return [element for element in elements if element]


def field_tokens(headers: Headers, name: bytes) -> set[bytes]:
    """The lower-cased list elements of all fields called C{name} (lower case)."""
    return {element.lower() for element in field_elements(headers, name)}


def keeps_alive(http_version: bytes, headers: Headers, *, to_proxy: bool = False) -> bool:
    """Whether the connection stays open after a message with these headers (RFC 9112 §9.3).

    HTTP/1.0 needs an explicit C{keep-alive}; HTTP/1.1 stays open unless told C{close}.
    With C{to_proxy}, a client's C{Proxy-Connection} counts as well as its C{Connection}.
    """
    tokens = field_tokens(headers, b"connection")
    if to_proxy:
        tokens |= field_tokens(headers, b"proxy-connection")
    if http_version == b"HTTP/1.0":
        return b"keep-alive" in tokens
    return b"close" not in tokens


def response_has_body(request_method: bytes, status_code: int) -> bool:
    """Whether a response with this status, to this method, carries a body (RFC 9112 §6.3)."""
    return request_method != b"HEAD" and status_code >= 200 and status_code not in (204, 304)


def _field_values(headers: Headers, name: bytes) -> list[bytes] | None:
    """All list elements of the fields called C{name} (lower case), or None if there are none."""
    if not any(key.lower() == name for key, _ in headers):
        return None
    return field_elements(headers, name)


def _content_length(headers: Headers, status: int) -> int | None:
    """The Content-Length of C{headers}; identical repeats count once."""
    values = _field_values(headers, b"content-length")
    if values is None:
        return None
    distinct = set(values)
    if len(distinct) > 1:
        raise ProtocolError(status, "conflicting Content-Length values")
    value = distinct.pop() if distinct else b""
    if not value.isdigit() or len(value) > _MAX_CONTENT_LENGTH_DIGITS:
        raise ProtocolError(status, "invalid Content-Length")
    return int(value)


def request_framing(head: RequestHead) -> BodyFraming:
    """Decide how the body of a request is delimited (RFC 9112 §6.3).

    @raise ProtocolError: 400 for every framing that is ambiguous or unsupported.
    """
    codings = _field_values(head.headers, b"transfer-encoding")
    if codings is not None:
        if head.http_version == b"HTTP/1.0":
            raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if _field_values(head.headers, b"content-length") is not None:
            raise ProtocolError(400, "both Transfer-Encoding and Content-Length")
        if [coding.lower() for coding in codings] != [b"chunked"]:
            raise ProtocolError(400, "unsupported Transfer-Encoding")
        return _CHUNKED
    length = _content_length(head.headers, 400)
    return _NO_BODY if length is None else BodyFraming(FramingKind.LENGTH, length)


def response_framing(head: ResponseHead, request_method: bytes) -> BodyFraming:
    """Decide how the body of a response to C{request_method} is delimited (RFC 9112 §6.3).

    @raise ProtocolError: 502 for an ambiguous or invalid length.
    """
    status = head.status_code
    if not response_has_body(request_method, status) or (request_method == b"CONNECT" and status < 300):
        return _NO_BODY
    codings = _field_values(head.headers, b"transfer-encoding")
    if codings is not None:
        if _field_values(head.headers, b"content-length") is not None:
            raise ProtocolError(502, "both Transfer-Encoding and Content-Length in a response")
        chunked = bool(codings) and codings[-1].lower() == b"chunked"
        return _CHUNKED if chunked else _UNTIL_CLOSE
    length = _content_length(head.headers, 502)
    return _UNTIL_CLOSE if length is None else BodyFraming(FramingKind.LENGTH, length)


# -- receive buffer -----------------------------------------------------------------------


class _ReceiveBuffer:
    """Received bytes as a queue of the original C{bytes} pieces, with an O(1) length.

    It also keeps a line scanner that resumes where it stopped, so a head received in many
    small pieces is scanned once, not once per piece. Taking bytes restarts the scan at
    the new front, which is always a line boundary for the readers.
    """

    __slots__ = (
        "_pieces",
        "_offset",
        "_length",
        "_scan_index",
        "_scan_pos",
        "_scanned",
        "_line_start",
        "_line_number",
        "_last_byte",
    )

    def __init__(self) -> None:
        self._pieces: deque[bytes] = deque()
        self._offset = 0  # consumed prefix of the first piece
        self._length = 0
        self._restart_scan()

    def __len__(self) -> int:
        return self._length

    def append(self, data: bytes) -> None:
        self._pieces.append(data)
        self._length += len(data)

    def take_piece(self, limit: int | None = None) -> bytes:
        """Remove and return up to C{limit} bytes from the first piece, uncopied if whole."""
        piece = self._pieces[0]
        start = self._offset
        available = len(piece) - start
        if limit is None or limit >= available:
            self._pieces.popleft()
            self._offset = 0
            self._length -= available
            result = piece if start == 0 else piece[start:]
        else:
            self._offset = start + limit
            self._length -= limit
            result = piece[start : start + limit]
        self._restart_scan()
        return result

    def take(self, size: int) -> bytes:
        """Remove and return exactly C{size} bytes; C{size} must not exceed the length."""
        parts = []
        while size:
            part = self.take_piece(size)
            parts.append(part)
            size -= len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def take_all(self) -> bytes:
        """Remove and return everything."""
        return self.take(self._length)

    def _restart_scan(self) -> None:
        self._scan_index = 0  # piece being scanned
        self._scan_pos = self._offset  # position in that piece
        self._scanned = 0  # bytes scanned from the front
        self._line_start = 0
        self._line_number = 0
        self._last_byte = -1

    def next_line(self) -> tuple[int, bool, int] | None:
        """Find the end of the next line, resuming the scan where it stopped.

        @return: the offset just past the line's LF, whether the line is empty (LF or
            CRLF) and its number since the front (from 0); None if no LF is buffered yet.
        """
        pieces = self._pieces
        while self._scan_index < len(pieces):
            piece = pieces[self._scan_index]
            pos = piece.find(b"\n", self._scan_pos)
            if pos < 0:
                if len(piece) > self._scan_pos:
                    self._last_byte = piece[-1]
                self._scanned += len(piece) - self._scan_pos
                self._scan_index += 1
                self._scan_pos = 0
                continue
            end = self._scanned + pos - self._scan_pos + 1
            line_length = end - 1 - self._line_start
            before = piece[pos - 1] if pos > self._scan_pos else self._last_byte
            empty = line_length == 0 or (line_length == 1 and before == 0x0D)
            number = self._line_number
            self._scan_pos = pos + 1
            self._scanned = end
            self._line_start = end
            self._line_number += 1
            self._last_byte = 0x0A
            return end, empty, number
        return None


# -- header sections ----------------------------------------------------------------------


def _find_block_end(buffer: _ReceiveBuffer, max_size: int, max_lines: int) -> int | None:
    """The length of the header block at the front of C{buffer}, up to its empty line.

    @return: None while the empty line has not arrived.
    @raise ProtocolError: 431 as soon as the block exceeds a limit.
    """
    while (line := buffer.next_line()) is not None:
        end, empty, number = line
        if end > max_size:
            break
        if empty:
            return end
        if number >= max_lines:
            raise ProtocolError(431, "too many header fields")
    if len(buffer) <= max_size:
        return None
    raise ProtocolError(431, "header section larger than %d bytes" % max_size)


def _split_lines(block: bytes) -> list[bytes]:
    """The lines of a header block without their ends; the final empty line is dropped."""
    lines = block.split(b"\n")[:-2]
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _field_line_problem(line: bytes) -> str:
    """Say what is wrong with a field line that did not parse."""
    if line[:1] in (b" ", b"\t"):
        return "obsolete line folding in header section"
    name, colon, _ = line.partition(b":")
    if not colon:
        return "header line without a colon"
    if name != name.rstrip(b" \t"):
        return "whitespace between header name and colon"
    if _TOKEN_RE.fullmatch(name) is None:
        return "invalid character in header name"
    return "invalid character in header value"


def _parse_fields(lines: list[bytes]) -> Headers:
    """Parse field lines into (name, value) pairs, values stripped of surrounding whitespace."""
    fields = []
    for line in lines:
        match = _FIELD_LINE.fullmatch(line)
        if match is None:
            raise ProtocolError(400, _field_line_problem(line))
        fields.append((match[1], match[2].strip(b" \t")))
    return tuple(fields)


def _parse_request_head(block: bytes) -> RequestHead:
    start_line, *field_lines = _split_lines(block)
    match = _REQUEST_LINE.fullmatch(start_line)
    if match is None:
        method = start_line.partition(b" ")[0]
        if method and _TOKEN_RE.fullmatch(method) is None:
            raise ProtocolError(400, "invalid request method")
        raise ProtocolError(400, "malformed request line")
    method, target, version = match.groups()
    if version not in _SUPPORTED_VERSIONS:
        raise ProtocolError(505, "HTTP version not supported")
    return RequestHead(method, target, version, _parse_fields(field_lines))


def _parse_response_head(block: bytes) -> ResponseHead:
    start_line, *field_lines = _split_lines(block)
    match = _STATUS_LINE.fullmatch(start_line)
    if match is None:
        raise ProtocolError(502, "malformed status line")
    version, status, reason = match.groups()
    if version not in _SUPPORTED_VERSIONS:
        raise ProtocolError(502, "HTTP version not supported")
    return ResponseHead(version, int(status), reason or b"", _parse_fields(field_lines))


# -- bodies -------------------------------------------------------------------------------

_BodyStep = Union[Data, EndOfMessage, Literal[_NeedData.NEED_DATA], None]


class _LengthBody:
    """A body of known length (zero for messages without one)."""

    __slots__ = ("_remaining",)

    def __init__(self, length: int) -> None:
        self._remaining = length

    def read(self, buffer: _ReceiveBuffer, eof: bool) -> Data | EndOfMessage | _NeedData:
        if not self._remaining:
            return EndOfMessage()
        if not buffer:
            return NEED_DATA
        data = buffer.take_piece(self._remaining)
        self._remaining -= len(data)
        return Data(data)


class _UntilCloseBody:
    """A response body that ends when the server closes the connection."""

    __slots__ = ()

    def read(self, buffer: _ReceiveBuffer, eof: bool) -> Data | EndOfMessage | _NeedData:
        if buffer:
            return Data(buffer.take_piece())
        return EndOfMessage() if eof else NEED_DATA


class _ChunkedBody:
    """A chunked body (RFC 9112 §7.1): size lines, chunk data, CRLFs, then trailers.

    C{_step} is the method that reads the next element; each returns an event, NEED_DATA,
    or None after moving on to the next element.
    """

    __slots__ = ("_max_size", "_max_lines", "_remaining", "_declared", "_step")

    def __init__(self, max_size: int, max_lines: int) -> None:
        self._max_size = max_size
        self._max_lines = max_lines
        self._remaining = 0
        self._declared: int | None = None
        self._step: Callable[[_ReceiveBuffer], _BodyStep] = self._read_size

    def read(self, buffer: _ReceiveBuffer, eof: bool) -> Data | EndOfMessage | _NeedData:
        while (event := self._step(buffer)) is None:
            pass
        return event

    def _read_size(self, buffer: _ReceiveBuffer) -> _BodyStep:
        line = buffer.next_line()
        end = None if line is None else line[0]
        if (end or len(buffer)) > _MAX_CHUNK_SIZE_LINE:
            raise ProtocolError(400, "chunk size line too long")
        if end is None:
            return NEED_DATA
        match = _CHUNK_SIZE_LINE.fullmatch(buffer.take(end))
        if match is None:
            raise ProtocolError(400, "invalid chunk size")
        if len(match[1]) > _MAX_CHUNK_SIZE_DIGITS:
            raise ProtocolError(400, "chunk size overflow")
        size = int(match[1], 16)
        self._remaining = self._declared = size
        self._step = self._read_chunk if size else self._read_trailers
        return None

    def _read_chunk(self, buffer: _ReceiveBuffer) -> _BodyStep:
        if not buffer:
            return NEED_DATA
        data = buffer.take_piece(self._remaining)
        self._remaining -= len(data)
        declared, self._declared = self._declared, None
        if self._remaining:
            return Data(data, declared)
        self._step = self._read_chunk_end
        return Data(data, declared, True)

    def _read_chunk_end(self, buffer: _ReceiveBuffer) -> _BodyStep:
        if len(buffer) < 2:
            return NEED_DATA
        if buffer.take(2) != b"\r\n":
            raise ProtocolError(400, "missing CRLF after chunk data")
        self._step = self._read_size
        return None

    def _read_trailers(self, buffer: _ReceiveBuffer) -> _BodyStep:
        end = _find_block_end(buffer, self._max_size, self._max_lines)
        if end is None:
            return NEED_DATA
        return EndOfMessage(_parse_fields(_split_lines(buffer.take(end))))


_Body = Union[_LengthBody, _UntilCloseBody, _ChunkedBody]


# -- readers ------------------------------------------------------------------------------


class _State(enum.Enum):
    HEAD = "awaiting a head"
    BODY = "reading a body"
    SWITCHED = "left HTTP/1"
    CLOSED = "closed"


class _Reader:
    """What both readers share: buffering, heads, bodies, EOF and failure.

    Subclasses parse the head and say what follows its message (L{_start_message}).
    """

    _truncated_reason: str
    _error_status: int | None = None  # imposed on every error, if set

    def __init__(self, *, max_head_size: int = 64 * 1024, max_headers: int = 256) -> None:
        self._max_head_size = max_head_size
        self._max_headers = max_headers
        self._buffer = _ReceiveBuffer()
        self._eof = False
        self._state = _State.HEAD
        self._state_after_message = _State.HEAD
        self._body: _Body = _LengthBody(0)
        self._empty_lines = 0
        self._failure: ProtocolError | None = None
        self.framing: BodyFraming | None = None

    @property
    def pending(self) -> int:
        """Bytes received but not yet returned in events."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        """Add bytes received from the peer."""
        if data:
            self._buffer.append(data)

    def receive_eof(self) -> None:
        """Note that the peer closed its side of the connection."""
        self._eof = True

    def take_buffered(self) -> bytes:
        """Return and forget all unconsumed bytes (the connection is leaving HTTP/1)."""
        return self._buffer.take_all()

    def next_event(self) -> NextEvent:
        """Return the next event, or L{NEED_DATA}.

        @raise ProtocolError: the peer broke the protocol; every later call raises it again.
        """
        if self._failure is not None:
            raise self._failure
        try:
            return self._next_event()
        except ProtocolError as error:
            if self._error_status not in (None, error.status):
                error = ProtocolError(self._error_status, error.reason)
            self._failure = error
            raise error from None

    def _next_event(self) -> NextEvent:
        if self._state is _State.BODY:
            event = self._body.read(self._buffer, self._eof)
            if event is NEED_DATA and self._eof:
                raise ProtocolError(400, self._truncated_reason)
            if type(event) is EndOfMessage:
                self._state = self._state_after_message
            return event
        if self._state is _State.HEAD:
            return self._read_head()
        if self._state is _State.CLOSED:
            return ConnectionClosed()
        return NEED_DATA

    def _read_head(self) -> RequestHead | ResponseHead | ConnectionClosed | _NeedData:
        buffer = self._buffer
        while buffer:
            end = _find_block_end(buffer, self._max_head_size, self._max_headers + 1)
            if end is None:
                break
            block = buffer.take(end)
            if end > 2:
                self._empty_lines = 0
                head, self.framing, self._state_after_message = self._start_message(block)
                self._body = _body_for(self.framing, self._max_head_size, self._max_headers)
                self._state = _State.BODY
                return head
            self._empty_lines += 1
            if self._empty_lines > _MAX_EMPTY_LINES_BEFORE_HEAD:
                raise ProtocolError(400, "too many empty lines before the start line")
        if not self._eof:
            return NEED_DATA
        if buffer:
            raise ProtocolError(400, self._truncated_reason)
        self._state = _State.CLOSED
        return ConnectionClosed()

    def _start_message(
        self, block: bytes
    ) -> tuple[RequestHead | ResponseHead, BodyFraming, _State]:
        """Parse a head; return it, its body's framing and the state after its message."""
        raise NotImplementedError


def _body_for(framing: BodyFraming, max_size: int, max_lines: int) -> _Body:
    if framing.kind is FramingKind.CHUNKED:
        return _ChunkedBody(max_size, max_lines)
    if framing.kind is FramingKind.UNTIL_CLOSE:
        return _UntilCloseBody()
    return _LengthBody(framing.length or 0)


class RequestReader(_Reader):
    """Parses the stream of requests a client sends, pipelined ones included.

    Errors are 400, 431 (header section too large) or 505 (HTTP version). After a CONNECT
    request has ended, the reader stops parsing: what follows belongs to the tunnel and is
    left for L{take_buffered}.
    """

    _truncated_reason = "client closed the connection before the request was complete"

    def _start_message(self, block: bytes) -> tuple[RequestHead, BodyFraming, _State]:
        head = _parse_request_head(block)
        after = _State.SWITCHED if head.method == b"CONNECT" else _State.HEAD
        return head, request_framing(head), after


class ResponseReader(_Reader):
    """Parses responses from a server; L{expect_response} tells it each request's method.

    Every error is a 502, EOF while a response is expected included. Interim responses
    (1xx but 101) come as a head and an L{EndOfMessage} and leave the request waiting for
    its final response. A 101, or a 2xx to CONNECT, ends HTTP/1 on this reader: what
    follows is left for L{take_buffered}.
    """

    _truncated_reason = "server closed the connection before the response was complete"
    _error_status = 502

    def __init__(self, *, max_head_size: int = 64 * 1024, max_headers: int = 256) -> None:
        super().__init__(max_head_size=max_head_size, max_headers=max_headers)
        self._methods: deque[bytes] = deque()

    def expect_response(self, request_method: bytes) -> None:
        """Queue the method of a request sent to the server, whose response comes next."""
        self._methods.append(request_method)

    def _read_head(self) -> RequestHead | ResponseHead | ConnectionClosed | _NeedData:
        if not self._methods:
            if self._buffer:
                raise ProtocolError(502, "server sent data while no response was expected")
        elif self._eof and not self._buffer:
            raise ProtocolError(502, self._truncated_reason)
        return super()._read_head()

    def _start_message(self, block: bytes) -> tuple[ResponseHead, BodyFraming, _State]:
        head = _parse_response_head(block)
        status = head.status_code
        method = self._methods[0]
        framing = response_framing(head, method)
        if status < 200 and status != 101:
            return head, framing, _State.HEAD
        self._methods.popleft()
        switching = status == 101 or (method == b"CONNECT" and status < 300)
        return head, framing, _State.SWITCHED if switching else _State.HEAD


# -- request targets ----------------------------------------------------------------------


def _parse_authority(authority: bytes, default_port: int | None) -> tuple[str, int]:
    if not authority:
        raise ProtocolError(400, "request target has no host")
    if b"@" in authority:
        raise ProtocolError(400, "userinfo in request target")
    match = _AUTHORITY.fullmatch(authority)
    if match is None:
        raise ProtocolError(400, "invalid host or port in request target")
    ipv6, name, port = match.groups()
    if ipv6 is not None:
        try:
            ipaddress.IPv6Address(ipv6.decode("ascii"))
        except ValueError:
            raise ProtocolError(400, "invalid IPv6 address in request target") from None
    host = (ipv6 or name).decode("ascii")
    if port is None:
        if default_port is None:
            raise ProtocolError(400, "request target has no port")
        return host, default_port
    number = int(port)
    if not 0 < number < 65536:
        raise ProtocolError(400, "invalid port in request target")
    return host, number


def parse_absolute_form(target: bytes) -> tuple[bytes, str, int, bytes]:
    """Split an absolute-form target (RFC 9112 §3.2.2) of an http, https, ws or wss URL.

    @return: the lower-case scheme, the host (IPv6 without brackets), the port (the
        scheme's default if absent) and the path with its query (C{b"/"} if empty).
    @raise ProtocolError: 400 for anything else.
    """
    match = _ABSOLUTE_FORM.fullmatch(target)
    if match is None:
        raise ProtocolError(400, "malformed absolute-form request target")
    scheme = match[1].lower()
    if scheme not in _DEFAULT_PORTS:
        raise ProtocolError(400, "unsupported scheme in request target")
    host, port = _parse_authority(match[2], _DEFAULT_PORTS[scheme])
    path = match[3] or b"/"
    if path.startswith(b"?"):
        path = b"/" + path
    return scheme, host, port, path


def hostport(scheme: bytes, host: str, port: int, *, always_port: bool = False) -> str:
    """C{host[:port]} as a Host header or an authority names it: IPv6 in brackets, and the
    port only when it is not the scheme's default (or always, for a CONNECT target)."""
    name = f"[{host}]" if ":" in host else host
    return name if port == _DEFAULT_PORTS.get(scheme) and not always_port else f"{name}:{port}"


def parse_authority_form(target: bytes) -> tuple[str, int]:
    """Split a CONNECT target C{host:port} (RFC 9112 §3.2.3); IPv6 hosts are in brackets.

    @raise ProtocolError: 400 if it is not of that form.
    """
    return _parse_authority(target, None)


# -- writers ------------------------------------------------------------------------------


def _field_problem(name: bytes, value: bytes) -> str | None:
    """Say why a field cannot be sent as it is, or None if it can."""
    if _TOKEN_RE.fullmatch(name) is None:
        return "invalid header field name %r" % (name,)
    if _UNSAFE_IN_HEAD.search(value):
        return "CR, LF or NUL in the value of header field %r" % (name,)
    return None


def check_field(name: bytes, value: bytes) -> None:
    """Check that a header or trailer field can be sent without changing the message.

    A name must be a token; a value must hold no CR, LF or NUL (RFC 9110 §5.5), which
    would end the field early and let the rest of the value pass for more fields, or
    for another message.

    @raise ProtocolError: 502, naming the field.
    """
    problem = _field_problem(name, value)
    if problem is not None:
        raise ProtocolError(502, problem)


def _field_lines(fields: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Serialize header or trailer fields.

    @raise ValueError: a field that L{check_field} refuses.
    """
    lines = []
    for name, value in fields:
        problem = _field_problem(name, value)
        if problem is not None:
            raise ValueError(problem)
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines)


def _head(start_line: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    if _UNSAFE_IN_HEAD.search(start_line):
        raise ValueError("invalid start line %r" % (start_line,))
    return b"%s\r\n%s\r\n" % (start_line, _field_lines(headers))


def assemble_request_head(
    method: bytes, target: bytes, http_version: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> bytes:
    """Serialize a request line and its header fields.

    @raise ValueError: a part would break the head's framing (CR, LF, NUL, bad name).
    """
    return _head(b"%s %s %s" % (method, target, http_version), headers)


def assemble_response_head(
    http_version: bytes, status_code: int, reason: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> bytes:
    """Serialize a status line and its header fields.

    @raise ValueError: a part would break the head's framing (CR, LF, NUL, bad name).
    """
    return _head(b"%s %d %s" % (http_version, status_code, reason), headers)


def chunk_header(size: int) -> bytes:
    """The size line that starts a chunk of C{size} bytes."""
    return b"%x\r\n" % size


CHUNK_END: Final = b"\r\n"
"""What follows the data of every chunk."""


def last_chunk(trailers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """The zero-size chunk, trailer fields and empty line that end a chunked body."""
    return b"0\r\n%s\r\n" % _field_lines(trailers)

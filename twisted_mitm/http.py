# -*- test-case-name: tests.test_http -*-
"""HTTP flows as mitmproxy scripts see them: L{Headers}, L{Request}, L{Response}, L{HTTPFlow}.

Pure models, no I/O. The HTTP/1 codec (L{twisted_mitm.http1}) builds them from the wire,
hooks read and change them, and the proxy writes them back out. Raw bytes are kept in
each message's C{data} record (L{RequestData}, L{ResponseData}); the properties are the
str views scripts use.

For the proxy: a request head goes upstream as C{request.data.method},
C{request.data.path} (origin-form), C{request.data.http_version} and C{headers.fields},
plus a Host field from C{host_header}/C{authority} when the request has none; connect to
C{request.host}, C{request.port}, with TLS when C{request.data.scheme == b"https"}. A
response head is C{data.http_version}, C{data.status_code}, C{data.reason} and
C{headers.fields}.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from email.utils import formatdate, mktime_tz, parsedate_tz
from http import HTTPStatus
from typing import Any, TypeVar

from twisted_mitm.connection import Client, Server
from twisted_mitm.coretypes.serializable import Serializable, State
from twisted_mitm.flow import Flow
from twisted_mitm.net import encoding
from twisted_mitm.net.http import multipart
from twisted_mitm.spool import SpooledBody
from twisted_mitm.utils.multidict import Fields, MultiDict, MultiDictView
from twisted_mitm.utils.strutils import always_bytes, always_str
from twisted_mitm.websocket import WebSocketData


# Header names and values should be ASCII, but UTF-8 is common; surrogateescape keeps
# any other byte intact through a str round trip.
def _native(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _always_bytes(data: str | bytes) -> bytes:
    return always_bytes(data, "utf-8", "surrogateescape")  # type: ignore[return-value]


class Headers(MultiDict):
    """HTTP header fields: an ordered multi-dict over raw C{(name, value)} byte pairs.

    Lookup is case-insensitive and takes str or bytes; values read as str. Several fields
    of one name read as one value joined with C{", "} (use L{get_all} for Set-Cookie).
    Setting a name replaces all its fields, at the place of the first. C{fields} keeps the
    original case, order and duplicates, and is what goes on the wire.

    C{Headers(host="example.com", content_type="text/html")}: keyword names have
    underscores turned into dashes.
    """

    fields: tuple[tuple[bytes, bytes], ...]

    def __init__(
        self, fields: Iterable[tuple[bytes, bytes]] | None = None, **headers: str | bytes
    ) -> None:
        super().__init__(fields or ())
        for name, value in self.fields:
            if not isinstance(name, bytes) or not isinstance(value, bytes):
                raise TypeError("Header fields must be bytes.")
        for key, value in headers.items():
            self[_always_bytes(key).replace(b"_", b"-")] = value

    @staticmethod
    def _kconv(key: bytes) -> bytes:
        return key.lower()

    @staticmethod
    def _reduce_values(values: list[str]) -> str:
        return ", ".join(values)

    def __bytes__(self) -> bytes:
        """The HTTP/1 header block, each field ending in CRLF (no blank line)."""
        return b"".join(name + b": " + value + b"\r\n" for name, value in self.fields)

    def __delitem__(self, key: str | bytes) -> None:
        super().__delitem__(_always_bytes(key))

    def __iter__(self) -> Iterator[str]:
        return (_native(key) for key in super().__iter__())

    def get_all(self, name: str | bytes) -> list[str]:
        """All values of C{name}, unjoined (for Set-Cookie and Cookie)."""
        return [_native(v) for v in super().get_all(_always_bytes(name))]

    def set_all(self, name: str | bytes, values: Iterable[str | bytes]) -> None:
        """Replace the fields of C{name} with one field per value."""
        super().set_all(_always_bytes(name), [_always_bytes(v) for v in values])

    def insert(self, index: int, name: str | bytes, value: str | bytes) -> None:
        """Insert a field at position C{index}."""
        super().insert(index, _always_bytes(name), _always_bytes(value))

    def items(self, multi: bool = False) -> Iterable[tuple[str, str]]:  # type: ignore[override]
        """C{(name, value)} str pairs; with C{multi}, one per field."""
        if multi:
            return tuple((_native(k), _native(v)) for k, v in self.fields)
        return super().items()


def _to_headers(headers: Any) -> Headers:
    """Accept L{Headers}, a dict of str/bytes, or an iterable of byte pairs."""
    if isinstance(headers, Headers):
        return headers
    if isinstance(headers, Mapping):
        return Headers((_always_bytes(k), _always_bytes(v)) for k, v in headers.items())
    if isinstance(headers, Iterable):
        return Headers(headers)
    raise TypeError(f"Expected headers to be an iterable or dict, not {type(headers).__name__}.")


# -- Content-Type and charsets -----------------------------------------------------------

def _parse_content_type(value: str) -> tuple[str, str, dict[str, str]] | None:
    """Split C{"text/html; charset=UTF-8"} into C{("text", "html", {"charset": "UTF-8"})}."""
    media_type, _, params = value.partition(";")
    main, slash, sub = media_type.partition("/")
    if not slash:
        return None
    parsed = {}
    for param in params.split(";"):
        key, eq, val = param.partition("=")
        if eq:
            parsed[key.strip()] = val.strip()
    return main.strip().lower(), sub.strip().lower(), parsed


def _assemble_content_type(main: str, sub: str, params: dict[str, str]) -> str:
    return "; ".join([f"{main}/{sub}", *(f"{k}={v}" for k, v in params.items())])


_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32be"),
    (b"\xff\xfe\x00\x00", "utf-32le"),
    (b"\xfe\xff", "utf-16be"),
    (b"\xff\xfe", "utf-16le"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
)
# Where a body may declare its own charset, and where UTF-8 is the default.
_DECLARED_CHARSETS = (
    ("html", re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([^"';>\s]+)""", re.I)),
    ("xml", re.compile(rb"""<\?xml[^?>]+encoding=["']([^"'?>]+)""", re.I)),
    ("text/css", re.compile(rb'@charset "([^"]+)";', re.I)),
)
_UTF8_TYPES = ("json", "html", "xml", "javascript", "ecmascript", "text/css")


def _declared_charset(content_type: str, content: bytes) -> str | None:
    """The charset the body declares, for types that can declare one."""
    for kind, pattern in _DECLARED_CHARSETS:
        if kind in content_type and (match := pattern.search(content)):
            return match.group(1).decode("ascii", "ignore")
    return None


def infer_charset(content_type: str, content: bytes = b"") -> str:
    """The text encoding of a body, as mitmproxy infers it.

    A BOM wins, then the Content-Type's charset, then what the body declares (HTML meta,
    XML declaration, CSS @charset), then UTF-8 for JSON, HTML, XML, JavaScript and CSS,
    else latin-1. GB2312 and GBK are read as their superset GB18030.
    """
    bom_charset = next((charset for bom, charset in _BOMS if content.startswith(bom)), None)
    parsed = _parse_content_type(content_type)
    header_charset = parsed[2].get("charset", "").strip("\"'") if parsed else ""
    charset = (
        bom_charset
        or header_charset
        or _declared_charset(content_type, content)
        or ("utf8" if any(t in content_type for t in _UTF8_TYPES) else "latin-1")
    )
    return "gb18030" if charset.lower() in ("gb2312", "gbk") else charset


# -- URLs --------------------------------------------------------------------------------

def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme)


def _hostport(scheme: str, host: str, port: int) -> str:
    """C{host[:port]} for a URL or Host header: IPv6 in brackets, default port left out."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if _default_port(scheme) == port else f"{host}:{port}"


_AUTHORITY = re.compile(r"^(?P<host>[^:]+|\[.+\])(?::(?P<port>\d+))?$")


def _split_authority(authority: str) -> tuple[str, int | None]:
    """C{("example.com", 8080)} from C{"example.com:8080"}; C{(authority, None)} if malformed."""
    match = _AUTHORITY.match(authority)
    if not match or (match["port"] and int(match["port"]) > 65535):
        return authority, None
    host = match["host"]
    if host.startswith("["):
        host = host[1:-1]
    return host, int(match["port"]) if match["port"] else None


def _parse_url(url: str) -> tuple[str, str, int, str]:
    """Split an absolute URL into C{(scheme, host, port, path)}; path includes the query.

    @raise ValueError: without a host, or with a bad port.
    """
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"No hostname given: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = urllib.parse.urlunsplit(("", "", parts.path, parts.query, parts.fragment))
    return parts.scheme, parts.hostname, port, path if path.startswith("/") else "/" + path


def _encode_host(host: str) -> bytes:
    try:
        return host.encode("idna")
    except UnicodeError:
        return host.encode("utf-8", "surrogateescape")


def _pairs(value: Any) -> Iterable[tuple[Any, Any]]:
    """The pairs of a multi-dict, a dict, or an iterable of pairs, for the writable views."""
    if isinstance(value, (MultiDict, MultiDictView)):
        return value.fields
    if isinstance(value, Mapping):
        return value.items()
    return value


def _urldecode(query: str) -> Fields:
    return tuple(urllib.parse.parse_qsl(query, keep_blank_values=True, errors="surrogateescape"))


def _urlencode(pairs: Iterable[tuple[str, str]], similar_to: str | None = None) -> str:
    """URL-encode C{pairs}; like C{similar_to}, drop C{=} of empty values if it does."""
    encoded = urllib.parse.urlencode(list(_pairs(pairs)), errors="surrogateescape")
    if similar_to and any("=" not in param for param in similar_to.split("&")):
        encoded = re.sub(r"=(&|$)", r"\1", encoded)
    return encoded


# -- Cookies -----------------------------------------------------------------------------

class CookieAttrs(MultiDict):
    """Attributes of a Set-Cookie: case-insensitive, the last value wins, flags are C{None}."""

    @staticmethod
    def _kconv(key: str) -> str:
        return key.lower()

    @staticmethod
    def _reduce_values(values: list[Any]) -> Any:
        return values[-1]


_COOKIE_PAIR = re.compile(r'([^=;]+)(=\s*("(?:[^"\\]|\\.)*"|[^;]*))?')


def _read_cookie_pairs(line: str) -> list[tuple[str, str | None]]:
    """C{name=value} pairs of a Cookie or Set-Cookie line; C{None} for a bare name."""
    pairs = []
    for match in _COOKIE_PAIR.finditer(line):
        name, value = match[1].strip(), match[3]
        if not name:
            continue
        if value is not None:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
        pairs.append((name, value))
    return pairs


def _format_cookie_pairs(pairs: Any, verbatim: tuple[str, ...] = ()) -> str:
    """Join pairs with C{"; "}, quoting values with special characters unless verbatim."""
    parts = []
    for name, value in _pairs(pairs):
        if value is None:
            parts.append(name)
            continue
        special = any(c in '",;\\' or not 0x21 <= ord(c) <= 0x7E for c in value)
        if special and name.lower() not in verbatim:
            value = '"' + re.sub(r'(["\\])', r"\\\1", value) + '"'
        parts.append(f"{name}={value}")
    return "; ".join(parts)


def _shift_http_date(value: str, delta: float) -> str | None:
    """The HTTP date C{value} moved by C{delta} seconds; C{None} if it is not a date."""
    parsed = parsedate_tz(value)
    if parsed is None:
        return None
    try:
        return formatdate(mktime_tz(parsed) + delta, usegmt=True)
    except (OverflowError, OSError, ValueError):
        return None


def _refresh_set_cookie(line: str, delta: float) -> str:
    """A Set-Cookie line with its C{expires} moved by C{delta} seconds.

    A line without an expires attribute, or that is no cookie, comes back unchanged.
    """
    pairs = _read_cookie_pairs(line)
    if not pairs or pairs[0][1] is None:
        return line
    (name, value), *attrs = pairs
    if not any(key.lower() == "expires" for key, _ in attrs):
        return line
    refreshed = []
    for key, attr in attrs:
        if key.lower() == "expires":
            attr = _shift_http_date(attr or "", delta)
            if attr is None:
                continue
        refreshed.append((key, attr))
    return _format_cookie_pairs([(name, value), *refreshed], ("expires", "path"))


# -- Messages ----------------------------------------------------------------------------

@dataclass
class MessageData:
    """The raw fields of a message, as they go on the wire."""

    http_version: bytes
    headers: Headers
    content: bytes | SpooledBody | None
    trailers: Headers | None
    timestamp_start: float
    timestamp_end: float | None

    def get_state(self) -> State:
        """The fields as mitmproxy saves them: headers and trailers as lists of byte pairs."""
        state = {field.name: getattr(self, field.name) for field in fields(self)}
        state["headers"] = self.headers.fields
        state["trailers"] = None if self.trailers is None else self.trailers.fields
        return state


@dataclass
class RequestData(MessageData):
    """The raw fields of a request; C{path} is origin-form."""

    host: str
    port: int
    method: bytes
    scheme: bytes
    authority: bytes
    path: bytes


@dataclass
class ResponseData(MessageData):
    """The raw fields of a response."""

    status_code: int
    reason: bytes


def _message_fields(
    http_version: str | bytes, headers: Any, content: bytes | None, trailers: Any
) -> dict[str, Any]:
    """Check and convert the constructor arguments L{Request} and L{Response} share."""
    if isinstance(content, str):
        raise ValueError(f"Content must be bytes, not {type(content).__name__}")
    return {
        "http_version": _always_bytes(http_version),
        "headers": _to_headers(headers),
        "content": content,
        "trailers": None if trailers is None else _to_headers(trailers),
    }


def _data_attr(name: str, doc: str) -> Any:
    """A property reading and writing C{self.data.<name>} as it is."""
    return property(
        lambda self: getattr(self.data, name),
        lambda self, value: setattr(self.data, name, value),
        doc=doc,
    )


def _str_view(
    name: str, doc: str, encoding: str = "utf-8", errors: str = "surrogateescape"
) -> Any:
    """A str property over the bytes in C{self.data.<name>}; accepts str or bytes."""
    return property(
        lambda self: getattr(self.data, name).decode(encoding, errors),
        lambda self, value: setattr(self.data, name, always_bytes(value, encoding, errors)),
        doc=doc,
    )


M = TypeVar("M", bound="Message")


class Message(Serializable):
    """What L{Request} and L{Response} share: version, headers, body, timestamps.

    The state is the C{data} record's fields; the constructor takes the same names.
    """

    data: MessageData

    stream: bool | Callable[..., Any] = False
    """Whether the body streams instead of being buffered (set it in the *headers hooks).

    C{False} buffers the body, C{True} forwards it as it arrives, a callable transforms
    each chunk on the way (see SPEC §4).
    """

    http_version = _str_view("http_version", "The HTTP version, e.g. C{\"HTTP/1.1\"}.")
    headers = _data_attr("headers", "The L{Headers}.")

    @property
    def trailers(self) -> Headers | None:
        """The trailer L{Headers} (sent after a chunked body), or C{None}.

        Setting accepts L{Headers}, a dict or byte pairs; for HTTP/1.1 the body must then
        go out chunked (C{Transfer-Encoding: chunked}), with the names announced in a
        C{Trailer} header.
        """
        return self.data.trailers

    @trailers.setter
    def trailers(self, value: Any) -> None:
        self.data.trailers = None if value is None else _to_headers(value)

    @property
    def raw_content(self) -> bytes | None:
        """The body as sent (maybe compressed); C{None} if missing (e.g. streamed).

        A streamed body kept on disk (C{store_streamed_bodies}) is read from its file each
        time this is read.
        """
        content = self.data.content
        return content.read() if isinstance(content, SpooledBody) else content

    @raw_content.setter
    def raw_content(self, value: bytes | SpooledBody | None) -> None:
        self.data.content = value

    timestamp_start = _data_attr("timestamp_start", "When the head was received.")
    timestamp_end = _data_attr("timestamp_end", "When the last byte was received.")

    @classmethod
    def from_state(cls: type[M], state: State) -> M:
        try:
            return cls(**state)
        except TypeError as e:
            raise ValueError(f"invalid {cls.__name__.lower()} state: {e}") from None

    def get_state(self) -> State:
        return self.data.get_state()

    def set_state(self, state: State) -> None:
        self.data = self.from_state(state).data

    @property
    def is_http10(self) -> bool:
        """C{True} for HTTP/1.0."""
        return self.data.http_version == b"HTTP/1.0"

    @property
    def is_http11(self) -> bool:
        """C{True} for HTTP/1.1."""
        return self.data.http_version == b"HTTP/1.1"

    @property
    def is_http2(self) -> bool:
        """C{True} for HTTP/2."""
        return self.data.http_version == b"HTTP/2.0"

    @property
    def is_http3(self) -> bool:
        """C{True} for HTTP/3."""
        return self.data.http_version == b"HTTP/3"

    @property
    def content(self) -> bytes | None:
        """The body with its Content-Encoding undone (every coding listed, in turn).

        Reading it raises C{ValueError} for an unsupported coding or a corrupt body (see
        L{get_content}). Setting it encodes per Content-Encoding and updates
        Content-Length (see L{set_content}).
        """
        return self.get_content()

    @content.setter
    def content(self, value: bytes | None) -> None:
        self.set_content(value)

    @property
    def text(self) -> str | None:
        """The body as str: C{content} decoded in the charset L{infer_charset} finds.

        Reading it raises C{ValueError} when C{content} does, or when the charset is
        unknown or does not fit the bytes (see L{get_text}).
        """
        return self.get_text()

    @text.setter
    def text(self, value: str | None) -> None:
        self.set_text(value)

    def get_content(self, strict: bool = True) -> bytes | None:
        """Like C{content}; with C{strict=False} a body that does not decode is returned raw."""
        raw = self.raw_content
        coding = self.headers.get("content-encoding")
        if raw is None or not coding:
            return raw
        try:
            return encoding.decode(raw, coding)
        except ValueError:
            if strict:
                raise
            return raw

    def set_content(self, value: bytes | None) -> None:
        """Set the body: encode it per Content-Encoding and set Content-Length.

        Under an unsupported Content-Encoding, that header is removed and the body stored
        as is. Content-Length is left alone when there is a Transfer-Encoding.
        """
        if value is None:
            self.raw_content = None
            return
        if not isinstance(value, bytes):
            raise TypeError(
                f"Message content must be bytes, not {type(value).__name__}. "
                "Please use .text if you want to assign a str."
            )
        try:
            self.raw_content = encoding.encode(value, self.headers.get("content-encoding", ""))
        except ValueError:
            del self.headers["content-encoding"]
            self.raw_content = value
        if "transfer-encoding" not in self.headers:
            self.headers["content-length"] = str(len(self.raw_content))

    def get_text(self, strict: bool = True) -> str | None:
        """Like C{text}; with C{strict=False} undecodable bytes come back surrogate-escaped."""
        content = self.get_content(strict)
        if content is None:
            return None
        charset = infer_charset(self.headers.get("content-type", ""), content)
        try:
            return content.decode(charset)
        except (LookupError, UnicodeError):
            if strict:
                raise ValueError(f"Cannot decode body as {charset!r}") from None
            return content.decode("utf-8", "surrogateescape")

    def set_text(self, text: str | None) -> None:
        """Set the body from str, in the Content-Type's charset.

        When that charset cannot encode the text, UTF-8 is used and the Content-Type's
        charset says so.
        """
        if text is None:
            self.content = None
            return
        content_type = self.headers.get("content-type", "")
        try:
            self.content = text.encode(infer_charset(content_type))
        except (LookupError, UnicodeError):
            main, sub, params = _parse_content_type(content_type) or ("text", "plain", {})
            params["charset"] = "utf-8"
            self.headers["content-type"] = _assemble_content_type(main, sub, params)
            self.content = text.encode("utf-8", "surrogateescape")

    def _set_any_content(self, content: bytes | str) -> None:
        """Set the body from bytes (C{content}) or str (C{text}), as C{make()} does."""
        if isinstance(content, bytes):
            self.content = content
        elif isinstance(content, str):
            self.text = content
        else:
            raise TypeError(f"Expected content to be str or bytes, not {type(content).__name__}.")

    def decode(self, strict: bool = True) -> None:
        """Undo the Content-Encoding and remove the header; nothing to do without a body.

        With C{strict=False}, a body that does not decode is kept as it is, and the header
        is removed all the same.

        @raise ValueError: if the body does not decode and C{strict} is set.
        """
        if not self.raw_content:
            return
        decoded = self.get_content(strict)
        self.headers.pop("content-encoding", None)
        self.content = decoded

    def encode(self, encoding: str) -> None:
        """Encode the body as it is now with C{encoding}: C{"gzip"}, C{"deflate"}, C{"br"},
        C{"zstd"}, C{"identity"}, or several in order (C{"gzip, br"}).

        The Content-Encoding header is replaced, not added to; the body is not decoded
        first.

        @raise ValueError: for an unsupported encoding (the header is then removed).
        """
        self.headers["content-encoding"] = encoding
        self.content = self.raw_content
        if "content-encoding" not in self.headers:
            raise ValueError(f"Invalid content encoding {encoding!r}")

    def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON (C{kwargs} go to C{json.loads}).

        @raise TypeError: if there is no body (e.g. it was streamed).
        """
        content = self.get_content(strict=False)
        if content is None:
            raise TypeError("Message content is not available.")
        return json.loads(content, **kwargs)


class Request(Message):
    """An HTTP request."""

    data: RequestData

    def __init__(
        self,
        host: str | bytes,
        port: int,
        method: str | bytes,
        scheme: str | bytes,
        authority: str | bytes,
        path: str | bytes,
        http_version: str | bytes,
        headers: Headers | Iterable[tuple[bytes, bytes]],
        content: bytes | None,
        trailers: Headers | Iterable[tuple[bytes, bytes]] | None,
        timestamp_start: float,
        timestamp_end: float | None,
    ) -> None:
        self.data = RequestData(
            host=always_str(host, "idna"),  # type: ignore[arg-type]
            port=port,
            method=_always_bytes(method),
            scheme=_always_bytes(scheme),
            authority=_always_bytes(authority),
            path=_always_bytes(path),
            timestamp_start=timestamp_start,
            timestamp_end=timestamp_end,
            **_message_fields(http_version, headers, content, trailers),
        )

    def __repr__(self) -> str:
        target = f"{self.host}:{self.port}" if self.host and self.port else ""
        return f"Request({self.method} {target}{self.path})"

    @classmethod
    def make(
        cls, method: str, url: str, content: bytes | str = b"", headers: Any = ()
    ) -> Request:
        """Build a request from a method, an absolute URL, a body and headers.

        C{headers} may be L{Headers}, a dict or byte pairs; a str body is set as C{text}.
        """
        now = time.time()
        request = cls(
            "", 0, method, b"", b"", b"", b"HTTP/1.1", _to_headers(headers), b"", None, now, now
        )
        request.url = url
        request._set_any_content(content)
        return request

    @property
    def first_line_format(self) -> str:
        """The request-target form: C{"authority"} (CONNECT), C{"absolute"} or C{"relative"}."""
        if self.method == "CONNECT":
            return "authority"
        return "absolute" if self.data.authority else "relative"

    @property
    def method(self) -> str:
        """The method, upper case, e.g. C{"GET"}."""
        return _native(self.data.method).upper()

    @method.setter
    def method(self, value: str | bytes) -> None:
        self.data.method = _always_bytes(value)

    scheme = _str_view("scheme", 'The scheme: C{"http"} or C{"https"}.')
    path = _str_view("path", 'The path with the query, e.g. C{"/index.html?a=b"}, or C{"*"}.')

    @property
    def authority(self) -> str:
        """The authority of an absolute-form or CONNECT request target; C{""} otherwise."""
        try:
            return self.data.authority.decode("idna")
        except UnicodeError:
            return _native(self.data.authority)

    @authority.setter
    def authority(self, value: str | bytes) -> None:
        self.data.authority = value if isinstance(value, bytes) else _encode_host(value)

    @property
    def host(self) -> str:
        """The server to send the request to.

        Setting it re-targets the request and rewrites the Host header and the authority
        where present.
        """
        return self.data.host

    @host.setter
    def host(self, value: str | bytes) -> None:
        self.data.host = always_str(value, "idna")  # type: ignore[assignment]
        self._update_host_and_authority()

    @property
    def port(self) -> int:
        """The server port; setting it updates the Host header and authority like C{host}."""
        return self.data.port

    @port.setter
    def port(self, value: int) -> None:
        if not isinstance(value, int):
            raise ValueError(f"Port must be an integer, not {value!r}.")
        self.data.port = value
        self._update_host_and_authority()

    def _update_host_and_authority(self) -> None:
        value = _hostport(self.scheme, self.host, self.port)
        if "Host" in self.headers:
            self.headers["Host"] = value
        if self.data.authority:
            self.authority = value

    @property
    def host_header(self) -> str | None:
        """The Host header, or C{None}; setting C{None} removes it.

        For HTTP/2 and HTTP/3 this is the C{:authority} (C{authority}), or the Host header
        without one; setting it sets the authority and replaces a Host header if present.
        """
        if self.is_http2 or self.is_http3:
            return self.authority or self.headers.get("Host")
        return self.headers.get("Host")

    @host_header.setter
    def host_header(self, value: str | bytes | None) -> None:
        multiplexed = self.is_http2 or self.is_http3
        if value is None:
            if multiplexed:
                self.data.authority = b""
            self.headers.pop("Host", None)
            return
        if multiplexed:
            self.authority = value
        if not multiplexed or "Host" in self.headers:
            self.headers["Host"] = value

    @property
    def url(self) -> str:
        """The full URL from scheme, host, port and path; setting it sets all four."""
        if self.first_line_format == "authority":
            return _hostport("", self.host, self.port)
        return f"{self.scheme}://{_hostport(self.scheme, self.host, self.port)}{self._url_path}"

    @url.setter
    def url(self, value: str | bytes) -> None:
        url = always_str(value, "utf-8", "surrogateescape")
        self.scheme, self.host, self.port, self.path = _parse_url(url)  # type: ignore[arg-type]

    @property
    def _url_path(self) -> str:
        return "" if self.path == "*" else self.path

    @property
    def pretty_host(self) -> str:
        """Like C{host}, but from the Host header when there is one (spoofable)."""
        host_header = self.host_header
        return _split_authority(host_header)[0] if host_header else self.host

    @property
    def pretty_url(self) -> str:
        """Like C{url}, but with the host and port of the Host header when there is one."""
        host_header = self.host_header
        if self.first_line_format == "authority" or not host_header:
            return self.url
        host, port = _split_authority(host_header)
        port = port or _default_port(self.scheme) or 443
        return f"{self.scheme}://{_hostport(self.scheme, host, port)}{self._url_path}"

    def _path_parts(self) -> tuple[str, str, str]:
        """C{(path, query, fragment)} of C{self.path}."""
        rest, _, fragment = self.path.partition("#")
        path, _, query = rest.partition("?")
        return path, query, fragment

    def _set_path_parts(self, path: str, query: str, fragment: str) -> None:
        self.path = path + (f"?{query}" if query else "") + (f"#{fragment}" if fragment else "")

    def _get_query(self) -> Fields:
        return _urldecode(self._path_parts()[1])

    def _set_query(self, fields: Iterable[tuple[str, str]]) -> None:
        path, _, fragment = self._path_parts()
        self._set_path_parts(path, _urlencode(fields), fragment)

    @property
    def query(self) -> MultiDictView:
        """The query string as a writable multi-dict; changes rewrite C{path}."""
        return MultiDictView(self._get_query, self._set_query)

    @query.setter
    def query(self, value: Iterable[tuple[str, str]]) -> None:
        self._set_query(value)

    @property
    def path_components(self) -> tuple[str, ...]:
        """The unquoted, non-empty segments of the path; setting them keeps the query."""
        path = self._path_parts()[0]
        unquote = urllib.parse.unquote
        return tuple(unquote(c, errors="surrogateescape") for c in path.split("/") if c)

    @path_components.setter
    def path_components(self, components: Iterable[str]) -> None:
        quote = urllib.parse.quote
        path = "/" + "/".join(quote(c, safe="", errors="surrogateescape") for c in components)
        _, query, fragment = self._path_parts()
        self._set_path_parts(path, query, fragment)

    def _get_cookies(self) -> Fields:
        return tuple(
            (name, value or "")
            for line in self.headers.get_all("cookie")
            for name, value in _read_cookie_pairs(line)
        )

    def _set_cookies(self, fields: Iterable[tuple[str, str]]) -> None:
        line = _format_cookie_pairs(fields)
        if line:
            self.headers["cookie"] = line
        else:
            self.headers.pop("cookie", None)

    @property
    def cookies(self) -> MultiDictView:
        """The Cookie header(s) as a writable multi-dict of C{name -> value}."""
        return MultiDictView(self._get_cookies, self._set_cookies)

    @cookies.setter
    def cookies(self, value: Iterable[tuple[str, str]]) -> None:
        self._set_cookies(value)

    def _get_urlencoded_form(self) -> Fields:
        if "application/x-www-form-urlencoded" not in self.headers.get("content-type", "").lower():
            return ()
        return _urldecode(self.get_text(strict=False) or "")

    def _set_urlencoded_form(self, fields: Iterable[tuple[str, str]]) -> None:
        self.headers["content-type"] = "application/x-www-form-urlencoded"
        self.content = _urlencode(fields, self.get_text(strict=False)).encode()

    @property
    def urlencoded_form(self) -> MultiDictView:
        """The URL-encoded form body as a writable multi-dict (empty for other types).

        Writing sets the body and the Content-Type.
        """
        return MultiDictView(self._get_urlencoded_form, self._set_urlencoded_form)

    @urlencoded_form.setter
    def urlencoded_form(self, value: Iterable[tuple[str, str]]) -> None:
        self._set_urlencoded_form(value)

    def anticache(self) -> None:
        """Remove the headers that let a server answer 304 Not Modified."""
        for name in ("if-modified-since", "if-none-match"):
            self.headers.pop(name, None)

    def anticomp(self) -> None:
        """Ask for an uncompressed response."""
        self.headers["accept-encoding"] = "identity"

    def constrain_encoding(self) -> None:
        """Keep in Accept-Encoding only the codings the proxy can decode.

        The client's order and parameters (q-values) stay; without an Accept-Encoding
        header nothing changes.
        """
        accept = self.headers.get("accept-encoding")
        if accept:
            self.headers["accept-encoding"] = ", ".join(
                item.strip()
                for item in accept.split(",")
                if encoding.is_supported(item.partition(";")[0])
            )

    def _get_multipart_form(self) -> Fields:
        content_type = self.headers.get("content-type", "")
        if "multipart/form-data" not in content_type.lower():
            return ()
        try:
            content = self.content
        except ValueError:
            return ()
        return tuple(multipart.decode_multipart(content_type, content or b""))

    def _set_multipart_form(self, fields: Iterable[tuple[bytes, bytes]]) -> None:
        form = [(_always_bytes(name), _always_bytes(value)) for name, value in _pairs(fields)]
        content_type = self.headers.get("content-type", "")
        is_form = content_type.lower().startswith("multipart/form-data")
        if is_form and multipart.boundary(content_type):
            like = multipart.read_parts(content_type, self.get_content(strict=False) or b"")
        else:
            boundary = f"----twisted-mitm-{secrets.token_hex(16)}"
            content_type = self.headers["content-type"] = f"multipart/form-data; boundary={boundary}"
            like = []
        self.content = multipart.encode_multipart(content_type, form, like)

    @property
    def multipart_form(self) -> MultiDictView:
        """The C{multipart/form-data} body as a writable multi-dict of C{name -> value} bytes.

        Empty for other types or a body that does not parse. Writing sets the body (and,
        unless it is already a form, a Content-Type with a new boundary); the parts of
        fields that stay keep their own headers (file name, type).
        """
        return MultiDictView(self._get_multipart_form, self._set_multipart_form)

    @multipart_form.setter
    def multipart_form(self, value: Iterable[tuple[bytes, bytes]]) -> None:
        self._set_multipart_form(value)


class Response(Message):
    """An HTTP response."""

    data: ResponseData

    body_file: str | None = None
    """A file whose bytes are the body of a response made by a hook (in C{requestheaders}
    or C{request}): the proxy reads it from disk as it sends it, so a large file never sits
    in memory (C{map_local} answers with large files this way). C{raw_content} stays
    empty; set Content-Length to the file's size. Ignored on responses from a server."""

    def __init__(
        self,
        http_version: str | bytes,
        status_code: int,
        reason: str | bytes,
        headers: Headers | Iterable[tuple[bytes, bytes]],
        content: bytes | None,
        trailers: Headers | Iterable[tuple[bytes, bytes]] | None,
        timestamp_start: float,
        timestamp_end: float | None,
    ) -> None:
        self.data = ResponseData(
            status_code=status_code,
            reason=always_bytes(reason, "iso-8859-1"),  # type: ignore[arg-type]
            timestamp_start=timestamp_start,
            timestamp_end=timestamp_end,
            **_message_fields(http_version, headers, content, trailers),
        )

    def __repr__(self) -> str:
        if not self.raw_content:
            return f"Response({self.status_code}, no content)"
        content_type = self.headers.get("content-type", "unknown content type")
        return f"Response({self.status_code}, {content_type}, {len(self.raw_content)} bytes)"

    @classmethod
    def make(
        cls, status_code: int = 200, content: bytes | str = b"", headers: Any = ()
    ) -> Response:
        """Build an HTTP/1.1 response with the standard reason phrase and a Content-Length.

        C{headers} may be L{Headers}, a dict or byte pairs; a str body is set as C{text}
        (in the Content-Type's charset, see L{Message.set_text}).
        """
        try:
            reason = HTTPStatus(status_code).phrase
        except ValueError:
            reason = ""
        now = time.time()
        response = cls(
            b"HTTP/1.1", status_code, reason, _to_headers(headers), None, None, now, now
        )
        response._set_any_content(content)
        return response

    status_code = _data_attr("status_code", "The status code, e.g. C{200}.")
    reason = _str_view(
        "reason", 'The reason phrase, e.g. C{"Not Found"} (latin-1).', "iso-8859-1", "strict"
    )

    def _get_cookies(self) -> Fields:
        cookies = []
        for line in self.headers.get_all("set-cookie"):
            pairs = _read_cookie_pairs(line)
            if pairs:
                (name, value), *attrs = pairs
                cookies.append((name, (value or "", CookieAttrs(attrs))))
        return tuple(cookies)

    def _set_cookies(self, fields: Any) -> None:
        self.headers.set_all(
            "set-cookie",
            [
                _format_cookie_pairs([(name, value), *_pairs(attrs)], ("expires", "path"))
                for name, (value, attrs) in _pairs(fields)
            ],
        )

    @property
    def cookies(self) -> MultiDictView:
        """The Set-Cookie headers as a writable multi-dict of C{name -> (value, attrs)}.

        C{attrs} is a L{CookieAttrs} (flags like HttpOnly have the value C{None}); change
        an attribute by assigning the whole tuple again. One cookie per Set-Cookie header.
        """
        return MultiDictView(self._get_cookies, self._set_cookies)

    @cookies.setter
    def cookies(self, value: Iterable[tuple[str, tuple[str, Any]]]) -> None:
        self._set_cookies(value)

    def refresh(self, now: float | None = None) -> None:
        """Move the response's dates forward as if it was received at C{now}, for replay.

        Date, Expires and Last-Modified, and each Set-Cookie's C{expires}, shift by
        C{now - timestamp_start} (C{now} defaults to the current time). Headers that do not
        hold a date stay as they are; a cookie C{expires} that is not a date is removed.
        """
        delta = (now or time.time()) - self.timestamp_start
        for name in ("date", "expires", "last-modified"):
            shifted = _shift_http_date(self.headers.get(name, ""), delta)
            if shifted is not None:
                self.headers[name] = shifted
        set_cookies = self.headers.get_all("set-cookie")
        if set_cookies:
            self.headers.set_all("set-cookie", [_refresh_set_cookie(c, delta) for c in set_cookies])


class HTTPFlow(Flow):
    """One HTTP request/response exchange; also a WebSocket connection after an upgrade.

    C{request} is set by the proxy as soon as the request head is parsed. Setting
    C{response} in C{requestheaders} or C{request} answers without asking the server.

    @ivar websocket: the L{WebSocketData} once the connection was upgraded, else C{None}.
    """

    type = "http"
    request: Request

    def __init__(self, client_conn: Client, server_conn: Server, live: bool = False) -> None:
        super().__init__(client_conn, server_conn, live)
        self.response: Response | None = None
        self.websocket: WebSocketData | None = None

    def __repr__(self) -> str:
        parts = (
            f"{name} = {value!r}"
            for name in ("request", "response", "websocket", "error")
            if (value := getattr(self, name, None))
        )
        return f"<HTTPFlow {', '.join(parts)}>"

    @property
    def timestamp_start(self) -> float:
        """When the request head arrived."""
        return self.request.timestamp_start

    def get_state(self) -> State:
        return {
            **super().get_state(),
            "request": self.request.get_state(),
            "response": self.response.get_state() if self.response else None,
            "websocket": self.websocket.get_state() if self.websocket else None,
        }

    def set_state(self, state: State) -> None:
        try:
            request, response, websocket = state.pop("request"), state.pop("response"), state.pop("websocket")
        except KeyError as e:
            raise ValueError(f"http flow state has no {e.args[0]!r}") from None
        self.request = Request.from_state(request)
        self.response = Response.from_state(response) if response else None
        self.websocket = WebSocketData.from_state(websocket) if websocket else None
        super().set_state(state)

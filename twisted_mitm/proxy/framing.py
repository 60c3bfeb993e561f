# -*- test-case-name: tests.test_framing -*-
"""How a message is framed when it leaves the proxy (RFC 9112 §6).

Pure decisions over headers: which framing headers go on the outgoing head, how the
body is encoded, and whether the connection must close after it. Buffered messages
get an exact Content-Length (or keep chunked coding with their trailers); streamed
messages keep their framing when bytes pass untouched, and switch to chunked coding
(or to close-delimited for an HTTP/1.0 client) when a transform may change the length,
so a Content-Length is never wrong. A streamed message always goes out with the framing
the proxy writes, whatever a script did to its Content-Length or Transfer-Encoding.
A streamed message's writer is wrapped in L{MessageTrailers}, so that the trailers that
end it are the message's own: those received, or those a hook set before the end.
A message that arrived over HTTP/2 goes out as HTTP/1.1: a C{Host} field from its
authority, its C{cookie} fields joined into one, a reason phrase from its status.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from twisted.internet.interfaces import IConsumer

from twisted_mitm import http1
from twisted_mitm.http import Headers, Request, Response
from twisted_mitm.proxy.pipe import BodyWriter, ChunkedWriter, CloseDelimitedWriter, Fields, LengthWriter

WriterFactory = Callable[[IConsumer], BodyWriter]

#: Hop-by-hop fields meant for the proxy itself, never forwarded.
PROXY_ONLY_FIELDS = ("proxy-connection", "proxy-authorization")


def is_websocket_upgrade(request: Request) -> bool:
    """Whether C{request} asks to switch to WebSocket (RFC 6455 §4.1)."""
    fields = request.headers.fields
    return (
        request.method == "GET"
        and b"websocket" in http1.field_tokens(fields, b"upgrade")
        and b"upgrade" in http1.field_tokens(fields, b"connection")
    )


def closes(headers: Headers) -> bool:
    """Whether these headers announce that the connection closes after the message."""
    return b"close" in http1.field_tokens(headers.fields, b"connection")


def client_keeps_alive(request: Request) -> bool:
    """Whether the client expects the connection to stay open after this exchange."""
    return http1.keeps_alive(request.data.http_version, request.headers.fields, to_proxy=True)


def expects_continue(headers: Headers) -> bool:
    """Whether the client waits for C{100 Continue} before sending its body."""
    return headers.get("expect", "").strip().lower() == "100-continue"


def _is_chunked(headers: Headers) -> bool:
    codings = http1.field_elements(headers.fields, b"transfer-encoding")
    return bool(codings) and codings[-1].lower() == b"chunked"


def _outgoing(headers: Headers) -> Headers:
    copy = Headers(headers.fields)
    for name in PROXY_ONLY_FIELDS:
        if name in copy:
            del copy[name]
    return copy


def _outgoing_request(request: Request, headers: Headers) -> Headers:
    """C{headers} as an HTTP/1 server must get them: with a C{Host}, one C{Cookie} field."""
    outgoing = _outgoing(headers)
    if "host" not in outgoing:
        outgoing.insert(0, "Host", request.host_header or request.authority or request.pretty_host)
    cookies = outgoing.get_all("cookie")
    if len(cookies) > 1:
        outgoing["Cookie"] = "; ".join(cookies)
    return outgoing


def _http1_version(version: bytes) -> bytes:
    """The version an HTTP/1 head says: a message read from HTTP/2 goes on as HTTP/1.1."""
    return version if version in (b"HTTP/1.0", b"HTTP/1.1") else b"HTTP/1.1"


def request_head(request: Request, headers: Headers, absolute_form: bool = False) -> bytes:
    """The HTTP/1 head of C{request} with C{headers}; with C{absolute_form}, its target is the
    whole URL (C{scheme://host[:port]/path}), as a proxy is asked.

    @raise ValueError: a part would break the head's framing (CR, LF, NUL, bad name).
    """
    data = request.data
    target = data.path
    if absolute_form:
        authority = http1.hostport(data.scheme, request.host, request.port)
        target = b"%s://%s%s" % (data.scheme, authority.encode("idna"), target)
    return http1.assemble_request_head(data.method, target, _http1_version(data.http_version), headers.fields)


def response_head(response: Response, headers: Headers) -> bytes:
    """The HTTP/1 head of C{response} with C{headers}; an HTTP/2 response (no reason
    phrase) gets the standard phrase of its status.

    @raise ValueError: a part would break the head's framing (CR, LF, NUL, bad name).
    """
    data = response.data
    reason = data.reason
    if not reason and data.http_version not in (b"HTTP/1.0", b"HTTP/1.1"):
        try:
            reason = HTTPStatus(response.status_code).phrase.encode()
        except ValueError:
            reason = b""
    return http1.assemble_response_head(_http1_version(data.http_version), response.status_code, reason, headers.fields)


def _set_length(headers: Headers, length: int) -> None:
    if "transfer-encoding" in headers:
        del headers["transfer-encoding"]
    headers["Content-Length"] = str(length)


def _set_chunked(headers: Headers) -> None:
    if "content-length" in headers:
        del headers["content-length"]
    if not _is_chunked(headers):
        headers["Transfer-Encoding"] = "chunked"


def framing_edited(headers: Headers, source: http1.BodyFraming | None) -> bool:
    """Whether C{headers} no longer describe the framing the body arrived with (a script
    changed Content-Length or Transfer-Encoding of a message it cannot change the body of)."""
    fields = headers.fields
    lengths = set(http1.field_elements(fields, b"content-length"))
    codings = [coding.lower() for coding in http1.field_elements(fields, b"transfer-encoding")]
    chunked = bool(codings) and codings[-1] == b"chunked"
    if source is None or source.kind is http1.FramingKind.NONE:
        return False
    if source.kind is http1.FramingKind.LENGTH:
        return bool(codings) or lengths != {b"%d" % (source.length or 0)}
    if source.kind is http1.FramingKind.CHUNKED:
        return bool(lengths) or not chunked
    return bool(lengths) or chunked


class MessageTrailers:
    """A streamed body's writer that ends the body with its message's trailers.

    Trailers received at the end of the body become the message's C{trailers} (as in
    mitmproxy, they replace what a hook set); then whatever the message holds is sent.
    So a hook that sets C{trailers} while the body still flows (C{requestheaders},
    C{responseheaders}) adds trailers to a body that came without. Only chunked coding
    carries them over HTTP/1.1; the other writers let them go.
    """

    def __init__(self, writer: BodyWriter, message: Request | Response) -> None:
        self._writer = writer
        self._message = message
        self.transport = writer.transport

    def write_piece(self, piece: http1.Data) -> None:
        self._writer.write_piece(piece)

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    def finish(self, trailers: Fields) -> None:
        if trailers:
            self._message.trailers = Headers(trailers)
        own = self._message.trailers
        self._writer.finish(own.fields if own is not None else ())


def _one_chunk(body: bytes, trailers: Headers | None) -> list[bytes]:
    fields = trailers.fields if trailers is not None else ()
    if not body:
        return [http1.last_chunk(fields)]
    return [http1.chunk_header(len(body)), body, http1.CHUNK_END, http1.last_chunk(fields)]


def buffered_request(request: Request, headers: Headers | None = None) -> tuple[Headers, list[bytes]]:
    """Headers and body pieces for a buffered request (with C{headers} instead of its own,
    if given) on its way to the server."""
    headers = _outgoing_request(request, request.headers if headers is None else headers)
    body = request.raw_content or b""
    if _is_chunked(headers):
        _set_chunked(headers)
        return headers, _one_chunk(body, request.trailers)
    if body or "content-length" in headers:
        _set_length(headers, len(body))
    return headers, [body] if body else []


def streamed_request(request: Request, source: http1.BodyFraming, transformed: bool) -> tuple[Headers, WriterFactory]:
    """Headers and body writer for a request streamed to the server."""
    outgoing = _outgoing_request(request, request.headers)
    if transformed or source.kind is not http1.FramingKind.LENGTH:
        _set_chunked(outgoing)
        return outgoing, ChunkedWriter
    length = source.length or 0
    _set_length(outgoing, length)
    return outgoing, lambda transport: LengthWriter(transport, length)


def buffered_response(response: Response, client_version: bytes, has_body: bool) -> tuple[Headers, list[bytes]]:
    """Headers and body pieces for a buffered response on its way to the client."""
    headers = Headers(response.headers.fields)
    if not has_body:
        return headers, []
    body = response.raw_content or b""
    if _is_chunked(headers) and client_version != b"HTTP/1.0":
        _set_chunked(headers)
        return headers, _one_chunk(body, response.trailers)
    _set_length(headers, len(body))
    return headers, [body] if body else []


def streamed_response(
    headers: Headers, source: http1.BodyFraming | None, transformed: bool, client_version: bytes
) -> tuple[Headers, WriterFactory, bool]:
    """Headers, body writer and whether to close afterwards, for a response streamed to the client."""
    outgoing = Headers(headers.fields)
    if not transformed and source is not None and source.kind is http1.FramingKind.LENGTH:
        length = source.length or 0
        _set_length(outgoing, length)
        return outgoing, lambda transport: LengthWriter(transport, length), False
    if client_version == b"HTTP/1.0":
        for name in ("content-length", "transfer-encoding"):
            if name in outgoing:
                del outgoing[name]
        return outgoing, CloseDelimitedWriter, True
    _set_chunked(outgoing)
    return outgoing, ChunkedWriter, False

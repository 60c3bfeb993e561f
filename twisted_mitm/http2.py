# -*- test-case-name: tests.test_http2 -*-
"""HTTP/2 header blocks in the proxy's terms (RFC 9113 §8); no I/O and no Twisted.

The C{h2} library does the framing, HPACK and flow-control bookkeeping; this module is
the thin translation beside L{twisted_mitm.http1}: a request header block becomes a
L{Request}, a response block an L{http1.ResponseHead}, and messages read from either
HTTP version become header blocks for an HTTP/2 peer: pseudo-header fields first,
C{Host} turned into C{:authority}, the connection-specific fields of HTTP/1 removed
(RFC 9113 §8.2.2). Going the other way, to an HTTP/1 peer, is L{twisted_mitm.proxy.framing}'s
job. Cookies need no code here: C{h2} joins the C{cookie} fields it receives and splits
the ones it sends (§8.2.3), see L{connection_config}.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from h2.config import H2Configuration

from twisted_mitm import http1
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.http import Headers, Request, Response

Fields = tuple[tuple[bytes, bytes], ...]

HTTP2 = b"HTTP/2.0"
#: The ALPN name of HTTP/2 over TLS.
ALPN_H2 = b"h2"

#: Fields that describe one HTTP/1 connection (RFC 9113 §8.2.2), or are meant for the
#: proxy itself: never sent to an HTTP/2 peer.
CONNECTION_SPECIFIC = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"transfer-encoding", b"upgrade"})

_DEFAULT_PORTS = {b"http": 80, b"https": 443}


def connection_config(client_side: bool) -> H2Configuration:
    """The C{h2} settings of every connection: bytes headers, validation both ways,
    inbound C{cookie} fields joined into one, outbound ones split per cookie."""
    return H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_inbound_headers=True,
        normalize_inbound_headers=True,
        validate_outbound_headers=True,
        normalize_outbound_headers=True,
        split_outbound_cookies=True,
    )


def _split_pseudo(block: Iterable[tuple[bytes, bytes]]) -> tuple[dict[bytes, bytes], Fields]:
    pseudo: dict[bytes, bytes] = {}
    fields = []
    for name, value in block:
        if name.startswith(b":"):
            pseudo[name] = value
        else:
            fields.append((name, value))
    return pseudo, tuple(fields)


def request_from_block(block: Iterable[tuple[bytes, bytes]], target: tuple[bytes, str, int]) -> Request:
    """The request a client's header block asks for, sent to C{target} (scheme, host, port).

    As for HTTP/1 inside a tunnel, the request goes where the tunnel goes; its
    C{:authority} is kept as the request's authority (what C{host_header} shows).

    @raise ProtocolError: 501 for C{CONNECT} (tunnels inside HTTP/2 are not supported),
        400 for a block without C{:method} or C{:path}.
    """
    pseudo, fields = _split_pseudo(block)
    method = pseudo.get(b":method", b"")
    if method == b"CONNECT":
        raise ProtocolError(501, "CONNECT inside HTTP/2 is not supported")
    path = pseudo.get(b":path")
    if not method or not path:
        raise ProtocolError(400, "request without :method or :path")
    scheme, host, port = target
    authority = pseudo.get(b":authority", b"")
    return Request(host, port, method, pseudo.get(b":scheme", scheme), authority, path, HTTP2, Headers(fields), None, None, time.time(), None)


def response_head_from_block(block: Iterable[tuple[bytes, bytes]]) -> http1.ResponseHead:
    """A server's response header block as a head like HTTP/1's (no reason phrase)."""
    pseudo, fields = _split_pseudo(block)
    status = pseudo.get(b":status", b"")
    if not status.isdigit() or len(status) != 3:
        raise ProtocolError(502, "response without a valid :status")
    return http1.ResponseHead(HTTP2, int(status), b"", fields)


def body_framing(fields: Fields, ends_stream: bool) -> http1.BodyFraming:
    """How the body after a header block is delimited: by the end of its stream,
    with a length the peer declared (C{h2} enforces it) or none."""
    if ends_stream:
        return http1.BodyFraming(http1.FramingKind.NONE)
    lengths = {value.strip() for name, value in fields if name == b"content-length"}
    if len(lengths) == 1:
        (length,) = lengths
        if length.isdigit():
            return http1.BodyFraming(http1.FramingKind.LENGTH, int(length))
    return http1.BodyFraming(http1.FramingKind.UNTIL_CLOSE)


def outgoing_fields(fields: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """C{fields} without what HTTP/2 forbids: connection-specific fields, the fields a
    C{Connection} header names, C{TE} other than C{trailers}, and any pseudo-header."""
    fields = list(fields)
    named = {token.lower() for token in http1.field_tokens(tuple(fields), b"connection")}
    kept = []
    for name, value in fields:
        lower = name.lower()
        if lower in CONNECTION_SPECIFIC or lower in named or lower.startswith(b":"):
            continue
        if lower == b"te" and value.strip().lower() != b"trailers":
            continue
        kept.append((lower, value))
    return kept


def request_block(request: Request, headers: Headers) -> list[tuple[bytes, bytes]]:
    """The header block that sends C{request} (with C{headers}) to an HTTP/2 server.

    C{:authority} is the request's authority, else its C{Host} field (which then is not
    sent), else its host and port.
    """
    fields = outgoing_fields(headers.fields)
    authority = request.data.authority
    if not authority:
        hosts = [value for name, value in fields if name == b"host"]
        authority = hosts[0] if hosts else _hostport(request)
    fields = [(name, value) for name, value in fields if name != b"host"]
    scheme = request.data.scheme or b"https"
    return [(b":method", request.data.method), (b":scheme", scheme), (b":authority", authority), (b":path", request.data.path or b"/"), *fields]


def _hostport(request: Request) -> bytes:
    host = request.host.encode("idna") if not request.host.isascii() else request.host.encode()
    if b":" in host:
        host = b"[%s]" % host
    if _DEFAULT_PORTS.get(request.data.scheme) == request.port:
        return host
    return b"%s:%d" % (host, request.port)


def response_block(response: Response, headers: Headers) -> list[tuple[bytes, bytes]]:
    """The header block that sends C{response} (with C{headers}) to an HTTP/2 client."""
    return [(b":status", b"%d" % response.status_code), *outgoing_fields(headers.fields)]


def interim_block(status_code: int, fields: Fields) -> list[tuple[bytes, bytes]]:
    """An informational (1xx) response's header block."""
    return [(b":status", b"%d" % status_code), *outgoing_fields(fields)]


def trailer_block(trailers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Trailer fields as HTTP/2 may carry them (no pseudo-header, nothing connection-specific)."""
    return outgoing_fields(trailers)


def with_length(fields: Iterable[tuple[bytes, bytes]], length: int | None) -> list[tuple[bytes, bytes]]:
    """C{fields} with their C{content-length} replaced by C{length} (removed when C{None})."""
    kept = [(name, value) for name, value in fields if name.lower() != b"content-length"]
    if length is not None:
        kept.append((b"content-length", b"%d" % length))
    return kept

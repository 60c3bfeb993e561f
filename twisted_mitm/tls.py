# -*- test-case-name: tests.test_tls_hooks -*-
"""TLS as scripts see it, under mitmproxy's names: the parsed L{ClientHello} and the data
objects of the C{tls_*} hooks (L{ClientHelloData}, L{TlsData}).

Pure: L{parse_client_hello} reads the first bytes of a CONNECT tunnel without any TLS
library; the proxy (L{twisted_mitm.proxy.tunnel}) decides with it what the tunnel carries.
The C{ssl_conn} the hooks see is pyOpenSSL's C{SSL.Connection}, which Twisted's TLS runs on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from OpenSSL import SSL

    from twisted_mitm.connection import Connection, Context

# A ClientHello larger than this is refused rather than waited for.
MAX_CLIENT_HELLO = 64 * 1024

_HANDSHAKE_RECORD = 0x16
_CLIENT_HELLO = 0x01
_MAX_RECORD = 2**14 + 2048
_SERVER_NAME = 0x0000
_ALPN = 0x0010


def looks_like_tls(data: bytes) -> bool:
    """Whether C{data} starts like a TLS handshake record (SSL 3.0 to TLS 1.3)."""
    return len(data) >= 3 and data[0] == _HANDSHAKE_RECORD and data[1] == 3 and data[2] <= 4


@dataclass(frozen=True)
class ClientHello:
    """The first message a client sends when it starts TLS (mitmproxy's C{tls.ClientHello})."""

    sni: str | None
    """The Server Name Indication: the host name the client wants, or C{None}."""
    alpn_protocols: tuple[bytes, ...]
    """The application protocols offered by ALPN, in the client's order."""
    cipher_suites: tuple[int, ...] = ()
    """The cipher suites offered, as numbers."""
    extensions: tuple[tuple[int, bytes], ...] = ()
    """Every extension as C{(type, raw body)}, in order."""


class _Reader:
    """Reads big-endian integers and length-prefixed vectors, refusing to overrun."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def at_end(self) -> bool:
        return self._offset == len(self._data)

    def take(self, length: int) -> bytes:
        end = self._offset + length
        if end > len(self._data):
            raise ValueError("truncated ClientHello")
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, size: int) -> _Reader:
        return _Reader(self.take(self.uint(size)))


def parse_client_hello(data: bytes) -> ClientHello | None:
    """Parse the ClientHello at the start of C{data}, which may span several records.

    @return: L{None} while more bytes are needed.
    @raise ValueError: C{data} does not start with a ClientHello, or it exceeds
        L{MAX_CLIENT_HELLO}.
    """
    message = _handshake_message(data)
    if message is None:
        return None
    reader = _Reader(message)
    reader.take(2 + 32)  # legacy_version, random
    reader.vector(1)  # legacy_session_id
    suites = reader.take(reader.uint(2))
    cipher_suites = tuple(int.from_bytes(suites[i : i + 2], "big") for i in range(0, len(suites) - 1, 2))
    reader.vector(1)  # legacy_compression_methods
    extensions: list[tuple[int, bytes]] = []
    if not reader.at_end():
        listed = reader.vector(2)
        while not listed.at_end():
            kind = listed.uint(2)
            extensions.append((kind, listed.take(listed.uint(2))))
    sni = alpn = None
    for kind, body in extensions:
        if kind == _SERVER_NAME:
            sni = _server_name(_Reader(body))
        elif kind == _ALPN:
            alpn = _alpn_protocols(_Reader(body))
    return ClientHello(sni, alpn or (), cipher_suites, tuple(extensions))


def _handshake_message(data: bytes) -> bytes | None:
    """Reassemble the first handshake message from records; L{None} if incomplete."""
    if data[:1] not in (b"", bytes([_HANDSHAKE_RECORD])):
        raise ValueError("not a TLS handshake record")
    payload = bytearray()
    offset = 0
    while len(data) - offset >= 5:
        if data[offset] != _HANDSHAKE_RECORD or data[offset + 1] != 3:
            raise ValueError("not a TLS handshake record")
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        if length == 0 or length > _MAX_RECORD:
            raise ValueError("bad TLS record length")
        if len(data) - offset - 5 < length:
            break
        payload += data[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if len(payload) >= 4:
            if payload[0] != _CLIENT_HELLO:
                raise ValueError("the first handshake message is not a ClientHello")
            size = int.from_bytes(payload[1:4], "big")
            if size > MAX_CLIENT_HELLO:
                raise ValueError("ClientHello too large")
            if len(payload) >= 4 + size:
                return bytes(payload[4 : 4 + size])
    if len(data) > MAX_CLIENT_HELLO:
        raise ValueError("no complete ClientHello in the first 64 KiB")
    return None


def _server_name(body: _Reader) -> str | None:
    names = body.vector(2)
    while not names.at_end():
        kind = names.uint(1)
        name = names.take(names.uint(2))
        if kind == 0:
            try:
                return name.decode("ascii")
            except UnicodeDecodeError:
                raise ValueError("server name is not ASCII") from None
    return None


def _alpn_protocols(body: _Reader) -> tuple[bytes, ...]:
    protocols = body.vector(2)
    offered = []
    while not protocols.at_end():
        offered.append(protocols.take(protocols.uint(1)))
    return tuple(offered)


@dataclass
class ClientHelloData:
    """What the C{tls_clienthello} hook receives."""

    context: Context
    """The connection: C{context.client} (its C{sni} is set already), C{context.server}."""
    client_hello: ClientHello
    """The client's ClientHello, parsed."""
    ignore_connection: bool = False
    """Set it to C{True} to pass the connection through untouched: the client does TLS with
    the server itself and sees the server's own certificate (as with C{ignore_hosts})."""
    establish_server_tls_first: bool = False
    """Accepted for mitmproxy's scripts, with no effect: the proxy always completes TLS with
    the client first, making its certificate from the SNI (or the CONNECT host)."""


@dataclass
class TlsData:
    """What the C{tls_start_*}, C{tls_established_*} and C{tls_failed_*} hooks receive."""

    conn: Connection
    """The connection TLS is for: C{context.client} or the server connection."""
    context: Context
    """The connection's context."""
    ssl_conn: SSL.Connection | None = None
    """The pyOpenSSL connection TLS runs on. The proxy has made it when C{tls_start_*}
    runs: a script may change its settings, or put another C{SSL.Connection} here."""
    is_dtls: bool = False
    """Always C{False}: the proxy does not speak DTLS."""

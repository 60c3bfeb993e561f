# -*- test-case-name: tests.test_soak -*-
"""A small HTTP/1.1 client on asyncio streams that says exactly how each body ended.

Off-the-shelf clients smooth over what the soak must see: whether a body ended by its
framing (the whole Content-Length, or the zero-size chunk) or by the connection going
away. L{read_reply} reports that as an L{Ending}; the rest opens connections through
the proxy, plain (absolute-form targets) or through a C{CONNECT} tunnel, with or without
TLS to the proxy's leaf certificate.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import socket
import ssl
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

from benchmarks.soak import content

READ_SIZE = 256 * 1024
HEAD_LIMIT = 1 << 20


class Ending(enum.Enum):
    """How a response body ended."""

    #: the framing said it was over: all of the Content-Length, or the zero-size chunk
    COMPLETE = "complete"
    #: the connection was closed cleanly (FIN) before the framing's end
    TRUNCATED = "truncated"
    #: the connection was reset before the framing's end
    RESET = "reset"
    #: neither a length nor chunked coding: only the close ended it (cannot be checked)
    UNTIL_CLOSE = "until close"


class NoResponse(Exception):
    """The connection ended, or the time ran out, before a whole response head arrived."""


@dataclass
class Reply:
    """A response as the client saw it; C{body} is kept only when asked for."""

    status: int
    headers: dict[str, str]
    size: int = 0
    sha256: str = ""
    ending: Ending = Ending.COMPLETE
    body: bytes = b""


@dataclass(frozen=True)
class Proxy:
    """Where the proxy listens, and a TLS context that trusts its CA."""

    port: int
    tls: ssl.SSLContext


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def client_tls(ca_path: str) -> ssl.SSLContext:
    """A client context trusting only C{ca_path} (the proxy's CA), offering http/1.1."""
    context = ssl.create_default_context(cafile=ca_path)
    context.set_alpn_protocols(["http/1.1"])
    return context


async def open_tunnel(proxy: Proxy, origin_port: int) -> socket.socket:
    """A non-blocking socket on which the proxy has answered C{CONNECT 127.0.0.1:origin_port}.

    @raise NoResponse: the proxy refused or closed the C{CONNECT}.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", proxy.port))
        authority = f"127.0.0.1:{origin_port}"
        await loop.sock_sendall(sock, f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            more = await loop.sock_recv(sock, 1)  # byte by byte: nothing past the head is ours
            if not more:
                raise NoResponse("the proxy closed the CONNECT")
            head += more
        if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
            raise NoResponse(f"CONNECT refused: {head[:60]!r}")
        return sock
    except BaseException:
        sock.close()
        raise


async def open_http(proxy: Proxy, scheme: str, origin_port: int) -> Streams:
    """Streams to send requests for C{scheme://127.0.0.1:origin_port} through the proxy."""
    if scheme == "http":
        return await asyncio.open_connection("127.0.0.1", proxy.port, limit=HEAD_LIMIT)
    sock = await open_tunnel(proxy, origin_port)
    return await asyncio.open_connection(sock=sock, ssl=proxy.tls, server_hostname="127.0.0.1", limit=HEAD_LIMIT)


def target(scheme: str, origin_port: int, path: str) -> str:
    """The request target: absolute-form to the proxy itself, origin-form inside a tunnel."""
    return f"http://127.0.0.1:{origin_port}{path}" if scheme == "http" else path


def request_head(method: str, request_target: str, origin_port: int, fields: Iterable[tuple[str, str]] = ()) -> bytes:
    """A request head with a Host field and C{fields}."""
    lines = [f"{method} {request_target} HTTP/1.1", f"Host: 127.0.0.1:{origin_port}"]
    lines += [f"{name}: {value}" for name, value in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status code and the header fields (lower-case names, last one wins) of a response head."""
    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise NoResponse(f"not a status line: {status_line[:60]!r}")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(code), headers


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """Read a final response head (interim 1xx heads are skipped).

    @raise NoResponse: the connection ended before a whole head.
    """
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as error:
            raise NoResponse(f"closed before a response head ({len(error.partial)} bytes of it)") from None
        except asyncio.LimitOverrunError:
            raise NoResponse("response head over 1 MiB") from None
        except (ConnectionError, ssl.SSLError) as error:
            raise NoResponse(f"reset before a response head ({error.__class__.__name__})") from None
        status, headers = parse_head(head)
        if not 100 <= status < 200:
            return status, headers


class _Body:
    """Counts, hashes and (if asked) keeps body bytes, reading at most C{rate} bytes/s."""

    def __init__(self, keep: bool, rate: float | None) -> None:
        self.size = 0
        self.hasher = hashlib.sha256()
        self.kept: list[bytes] | None = [] if keep else None
        self._rate = rate
        self._start = time.monotonic()

    async def add(self, data: bytes) -> None:
        self.size += len(data)
        self.hasher.update(data)
        if self.kept is not None:
            self.kept.append(data)
        if self._rate:
            ahead = self.size / self._rate - (time.monotonic() - self._start)
            if ahead > 0:
                await asyncio.sleep(ahead)

    def reply(self, status: int, headers: dict[str, str], ending: Ending) -> Reply:
        kept = b"".join(self.kept) if self.kept is not None else b""
        return Reply(status, headers, self.size, self.hasher.hexdigest(), ending, kept)


async def _read_length(reader: asyncio.StreamReader, body: _Body, length: int) -> Ending:
    while body.size < length:
        data = await reader.read(min(READ_SIZE, length - body.size))
        if not data:
            return Ending.TRUNCATED
        await body.add(data)
    return Ending.COMPLETE


async def _read_chunked(reader: asyncio.StreamReader, body: _Body) -> Ending:
    try:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailer fields
                return Ending.COMPLETE
            while size:
                data = await reader.read(min(READ_SIZE, size))
                if not data:
                    return Ending.TRUNCATED
                size -= len(data)
                await body.add(data)
            if await reader.readexactly(2) != b"\r\n":
                raise ValueError("no CRLF after chunk data")
    except asyncio.IncompleteReadError:
        return Ending.TRUNCATED


async def _read_until_close(reader: asyncio.StreamReader, body: _Body) -> Ending:
    while data := await reader.read(READ_SIZE):
        await body.add(data)
    return Ending.UNTIL_CLOSE


async def read_reply(reader: asyncio.StreamReader, method: str = "GET", keep: bool = False,
                     rate: float | None = None) -> Reply:
    """Read one response; its C{ending} says whether the framing or the connection ended it.

    @param keep: keep the body in C{Reply.body}.
    @param rate: read at most this many bytes per second (a slow client).
    @raise NoResponse: no whole head arrived.
    """
    status, headers = await read_head(reader)
    body = _Body(keep, rate)
    if method == "HEAD" or status in (204, 304):
        return body.reply(status, headers, Ending.COMPLETE)
    try:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            ending = await _read_chunked(reader, body)
        elif "content-length" in headers:
            ending = await _read_length(reader, body, int(headers["content-length"]))
        else:
            ending = await _read_until_close(reader, body)
    except (ConnectionError, ssl.SSLError):
        ending = Ending.RESET
    return body.reply(status, headers, ending)


async def send_body(writer: asyncio.StreamWriter, seed: int, size: int, chunked: bool,
                    stop_after: int | None = None) -> int:
    """Send the body for C{(seed, size)}, framed by the head already sent; returns the bytes sent.

    @param stop_after: stop once this many body bytes are sent (a client about to give up).
    """
    sent = 0
    for piece in content.pieces(seed, size):
        if stop_after is not None and sent + len(piece) > stop_after:
            piece = piece[: stop_after - sent]
        if chunked and piece:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        else:
            writer.write(piece)
        sent += len(piece)
        await writer.drain()
        if stop_after is not None and sent >= stop_after:
            return sent
    if chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    return sent


def reset(transport: asyncio.BaseTransport) -> None:
    """Abort the connection with a TCP reset (SO_LINGER 0), not a clean close."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.fileno() >= 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def close(writer: asyncio.StreamWriter) -> None:
    """Close cleanly, ignoring a peer that is already gone; waits at most 5 s."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 5)
    except (OSError, ssl.SSLError, asyncio.TimeoutError):
        pass

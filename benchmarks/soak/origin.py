# -*- test-case-name: tests.test_soak -*-
"""The soak's origin: C{python -m benchmarks.soak.origin --http PORT [--https PORT --ws PORT
--wss PORT --cert PEM --key PEM]}, one asyncio process, 127.0.0.1 only.

Routes (C{SEED}, C{SIZE} and C{AT} are integers; bodies come from L{content}):

  - C{GET /bytes/SEED/SIZE[?chunked=1][&rate=B][&close=1]}: the body, by Content-Length
    or chunked, at most C{B} bytes/s if given; with C{close}, the connection is closed
    right after it without a C{Connection: close} (as servers end idle keep-alive);
  - C{GET /drop/SEED/SIZE/AT[?chunked=1][&how=rst|fin]}: the head of that body, C{AT}
    bytes of it, then a reset (or a clean close): a server dying mid-body;
  - C{GET /hang/SEED}: reads the request and never answers;
  - C{PUT|POST /sink/SEED/SIZE[?drop_at=N][&rate=B]}: reads the body (Content-Length or
    chunked), answers C{{"size": N, "sha256": HEX}}; with C{drop_at}, resets the
    connection after reading that much instead;
  - C{* /smuggle/SEED}: a request that must never get here; counted;
  - C{GET /evil/KIND}: a malformed response (L{EVIL_RESPONSES});
  - C{GET /__soak/state}: what the origin saw, as JSON: completed and truncated
    uploads, smuggled requests, bodies cut by their client, and the connections open
    now with their last request line (so a connection the proxy left open can be named).

The WebSocket ports echo every message (C{websockets}).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from benchmarks.soak import content
from benchmarks.soak.wire import reset

HANG_LIMIT = 300.0

#: Responses that break HTTP/1 in the ways the proxy must refuse (502), by name.
EVIL_RESPONSES = {
    "garbage": b"\x16\x03\x01\x00\xff hello? \r\n\r\n",
    "cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "huge-head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (100 * 1024) + b"\r\nContent-Length: 0\r\n\r\n",
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
}


@dataclass
class Seen:
    """What the origin saw, for the driver's checks at the end."""

    uploads: dict[int, tuple[int, str]] = field(default_factory=dict)
    truncated_uploads: int = 0
    smuggled: list[int] = field(default_factory=list)
    downloads_cut_by_client: int = 0
    #: the last request line of every open connection, by the connection's client port
    open_connections: dict[int, str] = field(default_factory=dict)

    def as_json(self) -> bytes:
        return json.dumps({
            "uploads": {str(seed): list(done) for seed, done in self.uploads.items()},
            "truncated_uploads": self.truncated_uploads,
            "smuggled": self.smuggled,
            "downloads_cut_by_client": self.downloads_cut_by_client,
            "open_connections": sorted(self.open_connections.values()),
        }).encode()


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]

    def number(self, name: str, default: int | None = None) -> int | None:
        value = self.query.get(name)
        return int(value) if value is not None else default


class TruncatedBody(Exception):
    """The client went away before the end of its request body."""


def parse_request(head: bytes) -> Request:
    """The method, path, query and header fields (lower-case names) of a request head."""
    request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    url = urlsplit(target)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    query = {key: values[-1] for key, values in parse_qs(url.query).items()}
    return Request(method, url.path, query, headers)


def response_head(status: int, fields: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}"]
    lines += [f"{name}: {value}" for name, value in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Origin:
    """Serves one connection after another on each port; C{seen} is shared by all."""

    def __init__(self) -> None:
        self.seen = Seen()
        self.routes: dict[str, Callable[[Request, asyncio.StreamReader, asyncio.StreamWriter, list[str]], Awaitable[bool]]] = {
            "bytes": self.send_bytes,
            "drop": self.send_and_drop,
            "hang": self.hang,
            "sink": self.sink,
            "smuggle": self.smuggle,
            "evil": self.evil,
            "__soak": self.state,
        }

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one connection until it closes or a route ends it."""
        port = writer.get_extra_info("peername")[1]
        self.seen.open_connections[port] = "(no request yet)"
        try:
            keep_going = True
            while keep_going:
                head = await reader.readuntil(b"\r\n\r\n")
                request = parse_request(head)
                self.seen.open_connections[port] = head.split(b"\r\n", 1)[0].decode("latin-1")
                _, name, *args = request.path.split("/")
                route = self.routes.get(name)
                if route is None:
                    writer.write(response_head(404, {"Content-Length": "0"}))
                    continue
                keep_going = await route(request, reader, writer, args)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.LimitOverrunError):
            pass
        finally:
            del self.seen.open_connections[port]
            writer.close()

    async def send_bytes(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         args: list[str]) -> bool:
        seed, size = int(args[0]), int(args[1])
        try:
            await write_body(writer, seed, size, bool(request.number("chunked")), request.number("rate"), None)
        except ConnectionError:
            self.seen.downloads_cut_by_client += 1
            return False
        return not request.number("close")

    async def send_and_drop(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            args: list[str]) -> bool:
        seed, size, at = (int(arg) for arg in args[:3])
        await write_body(writer, seed, size, bool(request.number("chunked")), None, at)
        if request.query.get("how") == "fin":
            writer.close()
        else:
            reset(writer.transport)
        return False

    async def hang(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   args: list[str]) -> bool:
        try:
            await asyncio.wait_for(reader.read(), HANG_LIMIT)
        except asyncio.TimeoutError:
            pass
        return False

    async def sink(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   args: list[str]) -> bool:
        seed = int(args[0])
        try:
            size, sha256 = await read_body(reader, request, request.number("drop_at"), request.number("rate"))
        except TruncatedBody:
            self.seen.truncated_uploads += 1
            return False
        if size is None:
            reset(writer.transport)
            return False
        self.seen.uploads[seed] = (size, sha256)
        answer = json.dumps({"size": size, "sha256": sha256}).encode()
        writer.write(response_head(200, {"Content-Type": "application/json", "Content-Length": str(len(answer))}) + answer)
        return True

    async def smuggle(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      args: list[str]) -> bool:
        self.seen.smuggled.append(int(args[0]))
        writer.write(response_head(200, {"Content-Length": "0", "Connection": "close"}))
        return False

    async def evil(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   args: list[str]) -> bool:
        writer.write(EVIL_RESPONSES[args[0]])
        await writer.drain()
        return False

    async def state(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    args: list[str]) -> bool:
        answer = self.seen.as_json()
        writer.write(response_head(200, {"Content-Type": "application/json", "Content-Length": str(len(answer))}) + answer)
        return True


async def write_body(writer: asyncio.StreamWriter, seed: int, size: int, chunked: bool, rate: int | None,
                     stop_after: int | None) -> None:
    """Write a head and the body for C{(seed, size)}, at most C{rate} bytes/s, stopping
    after C{stop_after} body bytes if given."""
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(size)}
    writer.write(response_head(200, {"Content-Type": "application/octet-stream", **framing}))
    loop = asyncio.get_running_loop()
    start, sent = loop.time(), 0
    for piece in content.pieces(seed, size):
        if stop_after is not None and sent + len(piece) >= stop_after:
            piece = piece[: stop_after - sent]
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked and piece else piece)
        sent += len(piece)
        await writer.drain()
        if stop_after is not None and sent >= stop_after:
            return
        if rate and (ahead := sent / rate - (loop.time() - start)) > 0:
            await asyncio.sleep(ahead)
    if chunked:
        writer.write(b"0\r\n\r\n")
    await writer.drain()


async def read_body(reader: asyncio.StreamReader, request: Request, drop_at: int | None,
                    rate: int | None) -> tuple[int | None, str]:
    """Read and hash a request body; C{(None, "")} once C{drop_at} bytes are read.

    @raise TruncatedBody: the connection ended before the framing's end.
    """
    hasher, received = hashlib.sha256(), 0
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def take(length: int) -> bool:
        nonlocal received
        while length:
            data = await reader.read(min(length, 256 * 1024))
            if not data:
                raise TruncatedBody()
            hasher.update(data)
            received += len(data)
            length -= len(data)
            if drop_at is not None and received >= drop_at:
                return False
            if rate and (ahead := received / rate - (loop.time() - start)) > 0:
                await asyncio.sleep(ahead)
        return True

    try:
        if "chunked" in request.headers.get("transfer-encoding", "").lower():
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                if not await take(size):
                    return None, ""
                await reader.readexactly(2)
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
        elif not await take(int(request.headers.get("content-length", "0"))):
            return None, ""
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        raise TruncatedBody() from None
    return received, hasher.hexdigest()


async def echo(connection: ServerConnection) -> None:
    """Echo every WebSocket message until the client goes away, however it goes."""
    try:
        async for message in connection:
            await connection.send(message)
    except ConnectionClosed:
        pass


async def main(options: argparse.Namespace) -> None:
    origin = Origin()
    servers = [await asyncio.start_server(origin.serve, "127.0.0.1", options.http, limit=1 << 20)]
    tls = None
    if options.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(options.cert, options.key)
    if options.https:
        servers.append(await asyncio.start_server(origin.serve, "127.0.0.1", options.https, ssl=tls, limit=1 << 20))
    websockets = []
    for port, context in ((options.ws, None), (options.wss, tls)):
        if port:
            websockets.append(await serve(echo, "127.0.0.1", port, ssl=context, max_size=None))
    await asyncio.get_running_loop().create_future()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak.origin", description=__doc__)
    for name in ("http", "https", "ws", "wss"):
        parser.add_argument(f"--{name}", type=int, default=0, help=f"{name} port (0: none)")
    parser.add_argument("--cert", help="certificate chain (PEM) for the TLS ports")
    parser.add_argument("--key", help="its private key (PEM)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))

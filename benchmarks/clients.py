"""The clients: curl for bulk bodies and time to first byte, wrk for small plain requests,
a small asyncio load generator for small requests over TLS (wrk cannot CONNECT), and a
WebSocket client that reaches the echo server directly or through a CONNECT tunnel."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
from pathlib import Path

from websockets.asyncio.client import connect as ws_connect

from benchmarks.contenders import Route
from benchmarks.tools import run

MB = 1_000_000


def curl_download(route: Route, scheme: str, origin_port: int, path: str, size: int, timeout: float) -> float:
    """Download C{path} to /dev/null; returns MB/s (fails unless all C{size} bytes came with a 200)."""
    out = run(["curl", "-sS", "--max-time", str(timeout), "-o", "/dev/null",
               "-w", "%{http_code} %{size_download} %{time_total}", *route.curl_args(scheme, origin_port, path)],
              timeout + 5)
    code, got, seconds = out.split()
    if code != "200" or int(got) != size:
        raise RuntimeError(f"download got status {code} and {got} of {size} bytes")
    return size / float(seconds) / MB


def curl_upload(route: Route, origin_port: int, file: Path, timeout: float) -> float:
    """PUT C{file} (streamed by curl, no C{Expect}) to the sink; returns MB/s."""
    size = file.stat().st_size
    out = run(["curl", "-sS", "--max-time", str(timeout), "-T", str(file), "-H", "Expect:",
               "-w", "\n%{http_code} %{size_upload} %{time_total}", *route.curl_args("http", origin_port, "/upload")],
              timeout + 5)
    body, _, stats = out.rpartition("\n")
    code, sent, seconds = stats.split()
    if code != "200" or int(sent) != size or body.strip() != str(size):
        raise RuntimeError(f"upload got status {code}, sent {sent} of {size}, sink saw {body.strip()!r}")
    return size / float(seconds) / MB


def curl_ttfb(route: Route, origin_port: int, path: str) -> float:
    """Milliseconds from curl's start to the first response byte, on a new connection."""
    out = run(["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code} %{time_starttransfer}",
               *route.curl_args("http", origin_port, path)], 15)
    code, seconds = out.split()
    if code != "200":
        raise RuntimeError(f"status {code}")
    return float(seconds) * 1000


WRK_SCRIPT = """\
wrk.path = "{path}"
wrk.headers["Host"] = "127.0.0.1:{origin_port}"
{close}
"""


def wrk(route: Route, origin_port: int, path: str, keepalive: bool, seconds: float, connections: int,
        script_dir: Path) -> float:
    """Requests/s of wrk (1 thread) for C{path}; C{keepalive=False} sends C{Connection: close}."""
    script = script_dir / f"wrk-{route.connect_port}-{origin_port}-{int(keepalive)}.lua"
    target = f"http://127.0.0.1:{origin_port}{path}" if route.proxy else path
    close = "" if keepalive else 'wrk.headers["Connection"] = "close"'
    script.write_text(WRK_SCRIPT.format(path=target, origin_port=origin_port, close=close))
    out = run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s", "-s", str(script),
               f"http://127.0.0.1:{route.connect_port}"], seconds + 30)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate: {out[-500:]}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    completed = re.search(r"(\d+) requests in", out)
    failures = (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors and keepalive else 0)
    if completed is None or failures > int(completed.group(1)) // 100:
        raise RuntimeError(f"wrk saw {failures} failures: {out[-500:]}")
    return float(rate.group(1))


async def _open(route: Route, origin_port: int, tls: ssl.SSLContext | None
                ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", route.connect_port)
    if route.proxy and tls is not None:
        writer.write(f"CONNECT 127.0.0.1:{origin_port} HTTP/1.1\r\nHost: 127.0.0.1:{origin_port}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
            raise RuntimeError(f"CONNECT refused: {head[:100]!r}")
    if tls is not None:
        await writer.start_tls(tls, server_hostname="127.0.0.1")
    return reader, writer


async def _http_worker(route: Route, origin_port: int, path: str, tls: ssl.SSLContext | None, keepalive: bool,
                       deadline: float, done: list[int]) -> None:
    target = f"http://127.0.0.1:{origin_port}{path}" if route.proxy and tls is None else path
    request = (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{origin_port}\r\n"
               + ("" if keepalive else "Connection: close\r\n") + "\r\n").encode()
    connection = None
    while time.monotonic() < deadline:
        if connection is None:
            connection = await _open(route, origin_port, tls)
        reader, writer = connection
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        if not head.startswith(b"HTTP/1.1 200") or length is None:
            raise RuntimeError(f"unexpected response {head[:200]!r}")
        await reader.readexactly(int(length.group(1)))
        done[0] += 1
        if not keepalive:
            writer.close()
            connection = None
    if connection is not None:
        connection[1].close()


def load(route: Route, origin_port: int, path: str, tls: bool, keepalive: bool, seconds: float,
         connections: int) -> float:
    """Requests/s of C{connections} concurrent asyncio clients (this process) for C{seconds}."""
    context = ssl.create_default_context(cafile=str(route.ca_path)) if tls else None

    async def main() -> float:
        done = [0]
        start = time.monotonic()
        workers = [_http_worker(route, origin_port, path, context, keepalive, start + seconds, done)
                   for _ in range(connections)]
        await asyncio.wait_for(asyncio.gather(*workers), seconds + 30)
        return done[0] / (time.monotonic() - start)

    return asyncio.run(main())


def _tunnel(route: Route, origin_port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", route.connect_port), timeout=10)
    if route.proxy:
        sock.sendall(f"CONNECT 127.0.0.1:{origin_port} HTTP/1.1\r\nHost: 127.0.0.1:{origin_port}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            more = sock.recv(4096)
            if not more:
                raise RuntimeError("proxy closed the CONNECT")
            head += more
        if b" 200" not in head.split(b"\r\n")[0]:
            raise RuntimeError(f"CONNECT refused: {head[:100]!r}")
    sock.setblocking(False)
    return sock


def websocket_echo(route: Route, origin_port: int, seconds: float, size: int = 64, window: int = 32) -> float:
    """Echoed WebSocket messages/s: bursts of C{window} C{size}-byte text messages, then their echoes."""
    message = "x" * size

    async def main() -> float:
        sock = _tunnel(route, origin_port)
        async with ws_connect(f"ws://127.0.0.1:{origin_port}/", sock=sock, compression=None,
                              open_timeout=10, max_size=None) as connection:
            echoed = 0
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                for _ in range(window):
                    await connection.send(message)
                for _ in range(window):
                    if await asyncio.wait_for(connection.recv(), 10) != message:
                        raise RuntimeError("echo differs")
                echoed += window
            return echoed / (time.monotonic() - start)

    return asyncio.run(main())

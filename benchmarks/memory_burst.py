"""Does memory come back after a burst? C{python -m benchmarks.memory_burst [options]}.

Starts twisted_mitm as a child process (C{python -m twisted_mitm}, streaming bodies over
1 MiB), warms it up with one of each exchange below, then drives a burst through it:

  - keep-alive clients asking for a small (1 KiB) response, as fast as they can;
  - concurrent streamed transfers of 8-64 MiB, downloads and uploads in turn;
  - WebSocket sessions of 100 echoed messages of 1-250 KB each, one after another.

The proxy's resident set (C{VmRSS}, and the anonymous part of it from
C{/proc/PID/smaps_rollup}) is read before the burst, every half second during it (the
peak), and C{--settle} seconds after it ended. With C{--rounds N} the burst is repeated,
which shows memory that is never returned growing round after round. The run fails
(exit status 1) when memory after a round is more than C{--allowed} MiB above the level
before the first one. With C{--tracemalloc N} the proxy traces allocations
(C{TWISTED_MITM_TRACEMALLOC}) and logs its top allocation sites at the peak and after
settling (C{SIGUSR1}); the proxy's log is kept.

Everything (origin, clients, proxy) talks to 127.0.0.1 only; the origin and the clients
run in this process, on asyncio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection, serve

from benchmarks.tools import Child, free_port, log

MiB = 1 << 20
PIECE = 256 * 1024
FILLER = bytes(range(256)) * (PIECE // 256)
SMALL_BODY = b"s" * 1024


@dataclass
class Counts:
    """What the burst moved (every response and echo checked)."""

    small: int = 0
    transfers: int = 0
    transferred: int = 0
    sessions: int = 0
    messages: int = 0
    errors: list[str] = field(default_factory=list)


# The origin: HTTP/1.1 keep-alive and a WebSocket echo.


async def _serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """C{GET /small}, C{GET /bytes/N} (streamed in pieces) and C{PUT /upload} (read and counted)."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target = head.split(b" ", 2)[:2]
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if method == b"PUT":
                remaining = int(length.group(1)) if length else 0
                while remaining:
                    remaining -= len(await reader.read(min(remaining, PIECE)))
                body = str(int(length.group(1)) if length else 0).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            elif target.endswith(b"/small"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(SMALL_BODY), SMALL_BODY))
            else:
                size = int(target.rsplit(b"/", 1)[1])
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                while size:
                    piece = FILLER[: min(size, PIECE)]
                    writer.write(piece)
                    size -= len(piece)
                    await writer.drain()
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


# The clients, each going through the proxy until the deadline.


async def _open(proxy_port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy_port, limit=4 * PIECE)


async def _response(reader: asyncio.StreamReader) -> tuple[bytes, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if not head.startswith(b"HTTP/1.1 200") or length is None:
        raise RuntimeError(f"unexpected response {head[:120]!r}")
    return head, int(length.group(1))


async def small_client(proxy_port: int, origin_port: int, deadline: float, counts: Counts) -> None:
    """One keep-alive connection asking for C{/small} again and again."""
    reader, writer = await _open(proxy_port)
    request = b"GET http://127.0.0.1:%d/small HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (origin_port, origin_port)
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            _, length = await _response(reader)
            if await reader.readexactly(length) != SMALL_BODY:
                raise RuntimeError("small body differs")
            counts.small += 1
    finally:
        writer.close()


async def transfer_client(proxy_port: int, origin_port: int, deadline: float, counts: Counts, rng: random.Random,
                          upload: bool) -> None:
    """Streamed transfers of 8-64 MiB on one keep-alive connection, each checked by size."""
    reader, writer = await _open(proxy_port)
    try:
        while time.monotonic() < deadline:
            size = rng.randint(8 * MiB, 64 * MiB)
            if upload:
                writer.write(b"PUT http://127.0.0.1:%d/upload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n\r\n"
                             % (origin_port, origin_port, size))
                remaining = size
                while remaining:
                    piece = FILLER[: min(remaining, PIECE)]
                    writer.write(piece)
                    remaining -= len(piece)
                    await writer.drain()
                _, length = await _response(reader)
                if int(await reader.readexactly(length)) != size:
                    raise RuntimeError("the origin did not receive the whole upload")
            else:
                writer.write(b"GET http://127.0.0.1:%d/bytes/%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                             % (origin_port, size, origin_port))
                _, length = await _response(reader)
                remaining = length
                while remaining:
                    got = await reader.read(min(remaining, PIECE))
                    if not got:
                        raise RuntimeError("download cut short")
                    remaining -= len(got)
                if length != size:
                    raise RuntimeError(f"download of {length} bytes instead of {size}")
            counts.transfers += 1
            counts.transferred += size
    finally:
        writer.close()


async def websocket_session(proxy_url: str, ws_port: int, counts: Counts, rng: random.Random, messages: int) -> None:
    """One WebSocket session through the proxy: C{messages} echoes of 1-250 KB, then a clean close."""
    async with ws_connect(f"ws://127.0.0.1:{ws_port}/echo", proxy=proxy_url, compression=None, max_size=None,
                          open_timeout=30) as connection:
        for _ in range(messages):
            payload = os.urandom(rng.randint(1000, 250_000))
            await connection.send(payload)
            if await connection.recv() != payload:
                raise RuntimeError("WebSocket echo differs")
            counts.messages += 1
    counts.sessions += 1


async def websocket_client(proxy_url: str, ws_port: int, deadline: float, counts: Counts, rng: random.Random,
                           messages: int) -> None:
    """WebSocket sessions one after another until the deadline."""
    while time.monotonic() < deadline:
        await websocket_session(proxy_url, ws_port, counts, rng, messages)


# Reading the proxy's memory.


def memory_mib(pid: int) -> tuple[float, float]:
    """C{(resident, anonymous)} MiB of C{pid}, from C{/proc/PID/smaps_rollup}."""
    figures = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        figures[name] = int(value.split()[0]) / 1024
    return figures["Rss"], figures["Anonymous"]


@dataclass
class Round:
    """One burst's figures, in MiB."""

    before: tuple[float, float]
    peak: tuple[float, float]
    after: tuple[float, float]
    counts: Counts
    seconds: float


async def _guarded(name: str, counts: Counts, work: Awaitable[None]) -> None:
    try:
        await work
    except Exception as error:  # every failure is reported, none stops the burst
        counts.errors.append(f"{name}: {type(error).__name__}: {error}")


async def burst(settings: argparse.Namespace, proxy: Child, proxy_port: int, origin_port: int, ws_port: int,
                round_number: int) -> Round:
    """Run one burst and read the proxy's memory before, during and after it."""
    rng = random.Random(settings.seed + round_number)
    counts = Counts()
    before = memory_mib(proxy.pid)
    start = time.monotonic()
    deadline = start + settings.seconds
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    work: list[Awaitable[None]] = []
    work += [_guarded("small", counts, small_client(proxy_port, origin_port, deadline, counts))
             for _ in range(settings.small_clients)]
    work += [_guarded("transfer", counts, transfer_client(proxy_port, origin_port, deadline, counts,
                                                          random.Random(rng.random()), upload=index % 2 == 1))
             for index in range(settings.transfers)]
    work += [_guarded("websocket", counts, websocket_client(proxy_url, ws_port, deadline, counts,
                                                            random.Random(rng.random()), settings.messages))
             for _ in range(settings.websockets)]
    peak = before

    async def sample() -> None:
        nonlocal peak
        while True:
            await asyncio.sleep(0.5)
            now = memory_mib(proxy.pid)
            peak = max(peak, now)

    sampler = asyncio.ensure_future(sample())
    await asyncio.wait_for(asyncio.gather(*work), settings.seconds + 120)
    sampler.cancel()
    elapsed = time.monotonic() - start
    if settings.tracemalloc:
        os.kill(proxy.pid, signal.SIGUSR1)
    await asyncio.sleep(settings.settle)
    after = memory_mib(proxy.pid)
    if settings.tracemalloc:
        os.kill(proxy.pid, signal.SIGUSR1)
    return Round(before, peak, after, counts, elapsed)


async def warm_up(proxy_port: int, origin_port: int, ws_port: int) -> None:
    """One exchange of each kind, so that lazy imports (autobahn) are not counted as growth."""
    counts = Counts()
    deadline = time.monotonic()
    await small_client(proxy_port, origin_port, deadline + 0.5, counts)
    await websocket_session(f"http://127.0.0.1:{proxy_port}", ws_port, counts, random.Random(0), 3)
    await transfer_client(proxy_port, origin_port, deadline, counts, random.Random(0), upload=False)


async def run(settings: argparse.Namespace, directory: Path) -> list[Round]:
    http = await asyncio.start_server(_serve_http, "127.0.0.1", 0)
    origin_port = http.sockets[0].getsockname()[1]
    websocket = await serve(_echo, "127.0.0.1", 0, compression=None, max_size=None)
    ws_port = websocket.sockets[0].getsockname()[1]
    proxy_port = free_port()
    env = {"TWISTED_MITM_TRACEMALLOC": str(settings.tracemalloc)} if settings.tracemalloc else {}
    if settings.source:
        env["PYTHONPATH"] = str(Path(settings.source).resolve())
    argv = [sys.executable, "-m", "twisted_mitm", "--listen-host", "127.0.0.1", "-p", str(proxy_port), "-q",
            "--set", f"confdir={directory / 'confdir'}", "--set", "stream_large_bodies=1m", *settings.proxy_args]
    proxy = Child(argv, directory / "proxy.log", cwd=directory, port=proxy_port, env=env)
    rounds: list[Round] = []
    try:
        await warm_up(proxy_port, origin_port, ws_port)
        await asyncio.sleep(2)
        for number in range(settings.rounds):
            result = await burst(settings, proxy, proxy_port, origin_port, ws_port, number)
            rounds.append(result)
            _report_round(number + 1, result)
    finally:
        proxy.stop()
        http.close()
        websocket.close()
    return rounds


def _report_round(number: int, result: Round) -> None:
    counts = result.counts
    log(f"round {number}: {result.seconds:.0f} s, {counts.small} small requests, {counts.transfers} transfers "
        f"({counts.transferred / MiB:.0f} MiB), {counts.sessions} WebSocket sessions ({counts.messages} messages), "
        f"{len(counts.errors)} errors")
    for error in counts.errors[:5]:
        log(f"  error: {error}")
    print(f"| {number} | {result.before[0]:.1f} | {result.peak[0]:.1f} | {result.after[0]:.1f} "
          f"| {result.after[0] - result.before[0]:+.1f} | {result.before[1]:.1f} / {result.peak[1]:.1f} / "
          f"{result.after[1]:.1f} |", flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory_burst", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="length of each burst (default 30)")
    parser.add_argument("--rounds", type=int, default=1, help="bursts in a row (default 1)")
    parser.add_argument("--settle", type=float, default=10, help="seconds after a burst before reading (default 10)")
    parser.add_argument("--small-clients", type=int, default=200, help="keep-alive clients of small requests (200)")
    parser.add_argument("--transfers", type=int, default=50, help="concurrent streamed transfers of 8-64 MiB (50)")
    parser.add_argument("--websockets", type=int, default=20, help="concurrent WebSocket clients (20)")
    parser.add_argument("--messages", type=int, default=100, help="messages per WebSocket session (100)")
    parser.add_argument("--allowed", type=float, default=32, help="MiB allowed above the level before (32)")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="trace allocations in the proxy and log its top sites at the peak and after")
    parser.add_argument("--source", metavar="DIR",
                        help="run the twisted_mitm package in DIR (say, another commit's) instead of this checkout's")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("proxy_args", nargs="*", help="more arguments for the proxy, after --")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    settings = parse(argv)
    directory = Path(tempfile.mkdtemp(prefix="memory-burst-"))
    print("| round | RSS before (MiB) | peak | after | after - before | anonymous before / peak / after |")
    print("|---|---|---|---|---|---|", flush=True)
    rounds = asyncio.run(run(settings, directory))
    log(f"proxy log: {directory / 'proxy.log'}")
    growth = rounds[-1].after[0] - rounds[0].before[0]
    failed = growth > settings.allowed or any(result.counts.errors for result in rounds)
    log(f"{'FAILED' if failed else 'ok'}: RSS {growth:+.1f} MiB after the last round (allowed {settings.allowed:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

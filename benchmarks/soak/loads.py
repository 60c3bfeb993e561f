# -*- test-case-name: tests.test_soak -*-
"""The normal traffic of the soak, each kind a set of clients looping until the deadline.

  - L{small_requests}: keep-alive clients doing small GETs (plain, and inside TLS
    tunnels), each connection carrying a few hundred requests before it is replaced,
    while the origin now and then closes its side of a kept-alive connection; every
    latency is kept.
  - L{transfers}: lanes of large downloads and uploads (plain or TLS, Content-Length or
    chunked, some read or sunk slowly so that backpressure has to hold).
  - L{websocket_sessions}: echo sessions with messages of mixed sizes and types.

Every operation is bounded in time; every body is checked by hash.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import WebSocketException

from benchmarks.soak import content, wire
from benchmarks.soak.plan import MiB, Plan
from benchmarks.soak.tally import Tally, Verdict, judge_body, judge_upload

SMALL_SIZES = (0, 256, 1024, 1024, 4096, 16 * 1024)
SMALL_TIMEOUT = 15.0
#: A transfer may take this long plus its size at 4 MiB/s (TLS on a busy machine).
TRANSFER_TIMEOUT = 30.0
ECHO_TIMEOUT = 30.0
FAILURES = (wire.NoResponse, OSError, ssl.SSLError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError,
            WebSocketException)


def describe(error: BaseException) -> str:
    """A short description of why an operation failed."""
    text = str(error)
    return f"{type(error).__name__}: {text[:120]}" if text else type(error).__name__


def scheme_port(plan: Plan, scheme: str) -> int:
    return {"http": plan.http_port, "https": plan.https_port, "ws": plan.ws_port, "wss": plan.wss_port}[scheme]


async def small_requests(plan: Plan, proxy: wire.Proxy, tally: Tally, deadline: float) -> None:
    """Run the keep-alive clients until C{deadline} (a C{time.monotonic()} value)."""
    clients = [("http", n) for n in range(plan.small_clients)] + [("https", n) for n in range(plan.small_tls_clients)]
    await asyncio.gather(*(_small_client(plan, proxy, tally, deadline, scheme, plan.rng(f"small-{scheme}-{n}"))
                           for scheme, n in clients))


async def _small_client(plan: Plan, proxy: wire.Proxy, tally: Tally, deadline: float, scheme: str,
                        rng: random.Random) -> None:
    kind, port = f"small request ({scheme})", scheme_port(plan, scheme)
    while time.monotonic() < deadline:
        try:
            async with asyncio.timeout(SMALL_TIMEOUT):
                reader, writer = await wire.open_http(proxy, scheme, port)
        except FAILURES as error:
            tally.add(kind, Verdict.UNEXPECTED, f"connecting: {describe(error)}")
            await asyncio.sleep(0.5)
            continue
        try:
            for _ in range(rng.randint(50, 500)):
                if time.monotonic() >= deadline:
                    break
                if not await _small_request(kind, port, scheme, reader, writer, rng, tally):
                    break
                await asyncio.sleep(rng.uniform(0, plan.think_seconds))
        finally:
            await wire.close(writer)


async def _small_request(kind: str, port: int, scheme: str, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter, rng: random.Random, tally: Tally) -> bool:
    """One GET on a kept-alive connection; whether the connection is still usable."""
    seed, size = rng.getrandbits(48), rng.choice(SMALL_SIZES)
    # A quarter chunked; one in twenty closed by the origin afterwards, silently, as
    # servers end idle keep-alive connections: the proxy must open a new one.
    query = f"?chunked={int(rng.random() < 0.25)}&close={int(rng.random() < 0.05)}"
    started = time.monotonic()
    try:
        async with asyncio.timeout(SMALL_TIMEOUT):
            writer.write(wire.request_head("GET", wire.target(scheme, port, f"/bytes/{seed}/{size}{query}"), port))
            reply = await wire.read_reply(reader)
    except FAILURES as error:
        tally.add(kind, Verdict.UNEXPECTED, describe(error))
        return False
    verdict, detail = judge_body(reply, seed, size)
    tally.add(kind, verdict, detail)
    if verdict is not Verdict.OK:
        return False
    tally.latencies_ms.append(round((time.monotonic() - started) * 1000, 3))
    tally.bytes_moved += size
    return "close" not in reply.headers.get("connection", "").lower()


async def transfers(plan: Plan, proxy: wire.Proxy, tally: Tally, deadline: float) -> None:
    """Run the large-transfer lanes until C{deadline}."""
    await asyncio.gather(*(_transfer_lane(plan, proxy, tally, deadline, plan.rng(f"transfer-{n}"))
                           for n in range(plan.transfer_lanes)))


async def _transfer_lane(plan: Plan, proxy: wire.Proxy, tally: Tally, deadline: float, rng: random.Random) -> None:
    while time.monotonic() < deadline:
        upload = rng.random() < 0.4
        scheme = rng.choice(("http", "https"))
        seed, size = rng.getrandbits(48), rng.randint(plan.transfer_min, plan.transfer_max)
        chunked, slow = rng.random() < 0.3, rng.random() < 0.25
        kind = f"{'upload' if upload else 'download'} ({scheme})"
        variant = f"{size} bytes{', chunked' if chunked else ''}{', slow' if slow else ''}"
        transfer = _upload if upload else _download
        try:
            async with asyncio.timeout(TRANSFER_TIMEOUT + size / (4 * MiB)):
                verdict, detail = await transfer(plan, proxy, scheme, seed, size, chunked, slow)
        except FAILURES as error:
            verdict, detail = Verdict.UNEXPECTED, describe(error)
        tally.add(kind, verdict, f"{variant}: {detail}")
        if verdict is Verdict.OK:
            tally.bytes_moved += size


async def _download(plan: Plan, proxy: wire.Proxy, scheme: str, seed: int, size: int, chunked: bool,
                    slow: bool) -> tuple[Verdict, str]:
    port = scheme_port(plan, scheme)
    reader, writer = await wire.open_http(proxy, scheme, port)
    try:
        path = f"/bytes/{seed}/{size}" + ("?chunked=1" if chunked else "")
        writer.write(wire.request_head("GET", wire.target(scheme, port, path), port))
        reply = await wire.read_reply(reader, rate=plan.slow_rate if slow else None)
        return judge_body(reply, seed, size)
    finally:
        await wire.close(writer)


async def _upload(plan: Plan, proxy: wire.Proxy, scheme: str, seed: int, size: int, chunked: bool,
                  slow: bool) -> tuple[Verdict, str]:
    port = scheme_port(plan, scheme)
    reader, writer = await wire.open_http(proxy, scheme, port)
    try:
        path = f"/sink/{seed}/{size}" + (f"?rate={plan.slow_rate}" if slow else "")
        framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(size))
        writer.write(wire.request_head("PUT", wire.target(scheme, port, path), port, [framing]))
        try:
            await wire.send_body(writer, seed, size, chunked)
        except (OSError, ssl.SSLError) as error:
            # The proxy may have answered and closed already: its answer says why.
            try:
                reply = await asyncio.wait_for(wire.read_reply(reader, keep=True), 5)
            except FAILURES:
                return Verdict.UNEXPECTED, f"sending the body: {describe(error)}"
            return Verdict.UNEXPECTED, f"status {reply.status} while sending the body: {reply.body[:100]!r}"
        reply = await wire.read_reply(reader, keep=True)
        return judge_upload(reply, seed, size)
    finally:
        await wire.close(writer)


def _message_size(rng: random.Random) -> int:
    """A WebSocket message size: mostly small, some medium, a few up to 1 MiB."""
    draw = rng.random()
    if draw < 0.7:
        return rng.randint(0, 1024)
    if draw < 0.95:
        return rng.randint(1024, 64 * 1024)
    return rng.randint(64 * 1024, MiB)


async def websocket_sessions(plan: Plan, proxy: wire.Proxy, tally: Tally, deadline: float) -> None:
    """Run the WebSocket echo sessions until C{deadline}."""
    await asyncio.gather(*(_websocket_client(plan, proxy, tally, deadline, plan.rng(f"websocket-{n}"))
                           for n in range(plan.websocket_sessions)))


async def _websocket_client(plan: Plan, proxy: wire.Proxy, tally: Tally, deadline: float,
                            rng: random.Random) -> None:
    while time.monotonic() < deadline:
        scheme = rng.choice(("ws", "wss"))
        compression = rng.choice((None, "deflate"))
        try:
            verdict, detail = await _websocket_session(plan, proxy, tally, deadline, rng, scheme, compression)
        except FAILURES as error:
            verdict, detail = Verdict.UNEXPECTED, describe(error)
        tally.add(f"websocket session ({scheme})", verdict, f"{compression or 'no compression'}: {detail}")


async def _websocket_session(plan: Plan, proxy: wire.Proxy, tally: Tally, deadline: float, rng: random.Random,
                             scheme: str, compression: str | None) -> tuple[Verdict, str]:
    """One session: a few dozen echoed messages, then a clean close."""
    port = scheme_port(plan, scheme)
    async with asyncio.timeout(10):
        sock = await wire.open_tunnel(proxy, port)
    tls = {"ssl": proxy.tls, "server_hostname": "127.0.0.1"} if scheme == "wss" else {}
    async with ws_connect(f"{scheme}://127.0.0.1:{port}/", sock=sock, compression=compression, max_size=None,
                          open_timeout=10, close_timeout=5, ping_interval=None, **tls) as connection:
        for _ in range(rng.randint(20, 200)):
            if time.monotonic() >= deadline:
                break
            seed, size, is_text = rng.getrandbits(48), _message_size(rng), rng.random() < 0.5
            message: str | bytes = content.text(seed, size) if is_text else content.body(seed, size)
            await connection.send(message)
            echoed = await asyncio.wait_for(connection.recv(), ECHO_TIMEOUT)
            if echoed != message:
                tally.add("websocket message", Verdict.CORRUPTED,
                          f"{'text' if is_text else 'binary'} message of {size} came back as {len(echoed)} other")
                return Verdict.UNEXPECTED, "an echo differed"
            tally.add("websocket message", Verdict.OK)
            tally.bytes_moved += 2 * size
    return Verdict.OK, ""

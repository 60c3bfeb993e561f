# -*- test-case-name: tests.test_soak -*-
"""The hostile traffic: faults injected at seeded random moments while the load runs.

L{fault_schedule} draws the moments and kinds from the run's seed; L{run} starts each
fault at its moment (at most C{faults_in_flight} at once), every fault bounded in time.
Each fault says what it saw as a L{Verdict}: the threat model in docs/reliability.md
says what the proxy should do, and anything else is C{unexpected}. Faults that can only
be judged from the origin's side leave seeds in the tally for the driver's final check:
an aborted upload must never reach the sink whole, a smuggling attempt never the origin.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import connect as ws_connect

from benchmarks.soak import wire
from benchmarks.soak.loads import describe, scheme_port
from benchmarks.soak.origin import EVIL_RESPONSES
from benchmarks.soak.plan import MiB, Plan
from benchmarks.soak.tally import Tally, Verdict, judge_body, judge_cut_body, judge_upload
from benchmarks.tools import ROOT, free_port

#: How long a fault may take unless it says otherwise (seconds).
BOUND = 30.0
#: How long a connection the proxy should close is watched before it counts as kept open.
CLOSE_WAIT_BOUND = 15.0
#: Slack on the proxy's own timeouts before a late answer counts as unexpected (seconds).
SLACK = 5.0

Outcome = tuple[Verdict, str]


class FragileOrigin:
    """An origin process of its own, for the fault that kills one mid-body.

    It runs in the worker's process group, so it goes when the worker goes, however.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.lock = asyncio.Lock()
        self._process: asyncio.subprocess.Process | None = None

    async def ensure_running(self) -> None:
        if self._process is not None and self._process.returncode is None:
            return
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.soak.origin", "--http", str(self.port), cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
        raise RuntimeError(f"the fragile origin did not listen on {self.port}")

    async def kill(self) -> None:
        """SIGKILL: the kernel closes its connections, no goodbye."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()


@dataclass
class Env:
    """What every fault may use."""

    plan: Plan
    proxy: wire.Proxy
    tally: Tally
    fragile: FragileOrigin = field(default_factory=FragileOrigin)


async def _get(env: Env, scheme: str, path: str, **read: object) -> wire.Reply:
    """GET C{path} from the origin on C{scheme} through the proxy, and read the whole reply."""
    port = scheme_port(env.plan, scheme)
    reader, writer = await wire.open_http(env.proxy, scheme, port)
    try:
        writer.write(wire.request_head("GET", wire.target(scheme, port, path), port))
        return await wire.read_reply(reader, **read)  # type: ignore[arg-type]
    finally:
        await wire.close(writer)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the peer closes (or resets) the connection within C{seconds}, reading what comes."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except asyncio.TimeoutError:
        return False
    except (OSError, ssl.SSLError):
        pass
    return True


async def _refused(env: Env, scheme: str, head: bytes, statuses: tuple[int, ...], tail: bytes = b"") -> Outcome:
    """Send C{head + tail}; expect one of C{statuses} and the connection closed after it."""
    port = scheme_port(env.plan, scheme)
    reader, writer = await wire.open_http(env.proxy, scheme, port)
    try:
        writer.write(head + tail)
        try:
            await writer.drain()
            reply = await wire.read_reply(reader, keep=True)
        except (wire.NoResponse, OSError) as error:
            return Verdict.UNEXPECTED, f"no answer: {describe(error)}"
        if reply.status not in statuses:
            return Verdict.UNEXPECTED, f"status {reply.status} (expected {'/'.join(map(str, statuses))})"
        if not await _closed_within(reader, SLACK):
            return Verdict.UNEXPECTED, f"{reply.status}, then the connection was kept open"
        return Verdict.EXPECTED, f"{reply.status}: {reply.body.decode('latin-1').strip()[:80]}"
    finally:
        wire.reset(writer.transport)


# -- the origin misbehaves ----------------------------------------------------------------


async def origin_drops_mid_body(env: Env, rng: random.Random) -> Outcome:
    """The origin resets (or closes) its connection partway through a body."""
    scheme, chunked, how = rng.choice(("http", "https")), rng.random() < 0.5, rng.choice(("rst", "fin"))
    seed, size = rng.getrandbits(48), rng.randint(256 * 1024, 16 * MiB)
    at = rng.randint(size // 8, size * 7 // 8)
    try:
        reply = await _get(env, scheme, f"/drop/{seed}/{size}/{at}?how={how}" + ("&chunked=1" if chunked else ""))
    except wire.NoResponse as error:
        # The proxy had begun the response, and its abort dropped the head still queued.
        return Verdict.EXPECTED, f"aborted before any response byte: {error}"
    return judge_cut_body(reply, seed, size, may_complete=False)


async def origin_killed_mid_body(env: Env, rng: random.Random) -> Outcome:
    """The origin process is SIGKILLed while it sends a body, or while it reads an upload."""
    fragile = env.fragile
    upload, chunked = rng.random() < 0.4, rng.random() < 0.5
    seed, size = rng.getrandbits(48), rng.randint(32 * MiB, 64 * MiB)
    rate = 16 * MiB  # the origin is slow, so the kill lands mid-body
    kill_after = rng.uniform(0.3, 1.5)
    async with fragile.lock:
        await fragile.ensure_running()
        reader, writer = await wire.open_http(env.proxy, "http", fragile.port)
        try:
            if upload:
                framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(size))
                path = wire.target("http", fragile.port, f"/sink/{seed}/{size}?rate={rate}")
                writer.write(wire.request_head("PUT", path, fragile.port, [framing]))
                transfer = asyncio.create_task(_upload_then_reply(reader, writer, seed, size, chunked))
            else:
                path = wire.target("http", fragile.port, f"/bytes/{seed}/{size}?rate={rate}" + ("&chunked=1" if chunked else ""))
                writer.write(wire.request_head("GET", path, fragile.port))
                transfer = asyncio.create_task(wire.read_reply(reader))
            await asyncio.sleep(kill_after)
            await fragile.kill()
            try:
                reply = await asyncio.wait_for(transfer, BOUND)
            except (wire.NoResponse, OSError, ssl.SSLError) as error:
                return Verdict.EXPECTED, f"aborted before any response byte: {describe(error)}"
        finally:
            await wire.close(writer)
            await fragile.ensure_running()
    if upload:
        if reply.status == 200:
            verdict, detail = judge_upload(reply, seed, size)
            return (Verdict.UNEXPECTED, "the upload completed although the sink was killed") if verdict is Verdict.OK else (
                verdict, detail)
        return (Verdict.EXPECTED, f"status {reply.status}") if reply.status == 502 else (
            Verdict.UNEXPECTED, f"status {reply.status}")
    return judge_cut_body(reply, seed, size, may_complete=True)


async def _upload_then_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seed: int, size: int,
                             chunked: bool) -> wire.Reply:
    """Send the body, ignoring a connection cut while sending, then read the reply."""
    try:
        await wire.send_body(writer, seed, size, chunked)
    except (OSError, ssl.SSLError):
        pass
    return await wire.read_reply(reader, keep=True)


async def origin_never_answers(env: Env, rng: random.Random) -> Outcome:
    """The origin reads the request and stays silent: a 504 after C{upstream_read_timeout}."""
    scheme, started = rng.choice(("http", "https")), time.monotonic()
    bound = env.plan.read_timeout + SLACK
    try:
        reply = await asyncio.wait_for(_get(env, scheme, f"/hang/{rng.getrandbits(48)}", keep=True), bound)
    except asyncio.TimeoutError:
        return Verdict.UNEXPECTED, f"no answer after {bound:g} s"
    waited = time.monotonic() - started
    if reply.status != 504:
        return Verdict.UNEXPECTED, f"status {reply.status} after {waited:.1f} s"
    return Verdict.EXPECTED, f"504 after {waited:.1f} s"


async def sink_drops_upload(env: Env, rng: random.Random) -> Outcome:
    """The sink resets the connection partway through an upload: a 502 (or a reset), never a 200."""
    scheme, chunked = rng.choice(("http", "https")), rng.random() < 0.5
    seed, size = rng.getrandbits(48), rng.randint(2 * MiB, 16 * MiB)
    drop_at = rng.randint(64 * 1024, size - 1)
    port = scheme_port(env.plan, scheme)
    reader, writer = await wire.open_http(env.proxy, scheme, port)
    try:
        framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(size))
        writer.write(wire.request_head("PUT", wire.target(scheme, port, f"/sink/{seed}/{size}?drop_at={drop_at}"), port,
                                       [framing]))
        try:
            reply = await _upload_then_reply(reader, writer, seed, size, chunked)
        except (wire.NoResponse, OSError, ssl.SSLError) as error:
            return Verdict.EXPECTED, f"no reply: {describe(error)}"
    finally:
        await wire.close(writer)
    if reply.status == 200:
        verdict, detail = judge_upload(reply, seed, size)
        return (Verdict.UNEXPECTED, "a 200 for an upload the sink dropped") if verdict is Verdict.OK else (verdict, detail)
    return (Verdict.EXPECTED, f"status {reply.status}") if reply.status == 502 else (
        Verdict.UNEXPECTED, f"status {reply.status}")


async def malformed_response(env: Env, rng: random.Random) -> Outcome:
    """The origin answers with a broken response (garbage, CL+TE, two lengths...): a 502."""
    scheme, kind = rng.choice(("http", "https")), rng.choice(sorted(EVIL_RESPONSES))
    reply = await _get(env, scheme, f"/evil/{kind}", keep=True)
    if reply.status != 502:
        return Verdict.UNEXPECTED, f"{kind}: status {reply.status}"
    return Verdict.EXPECTED, f"{kind}: {reply.body.decode('latin-1').strip()[:80]}"


# -- the client misbehaves ----------------------------------------------------------------


async def client_aborts_upload(env: Env, rng: random.Random) -> Outcome:
    """A client sends part of a body, then resets or closes: the sink must never get it whole.

    A third of them leave right after the head, while the proxy is still connecting upstream.
    """
    scheme, chunked, how = rng.choice(("http", "https")), rng.random() < 0.5, rng.choice(("rst", "fin"))
    seed, size = rng.getrandbits(48), rng.randint(4 * MiB, 32 * MiB)
    stop_after = rng.randint(0, 16) if rng.random() < 1 / 3 else rng.randint(1, size - 1)
    port = scheme_port(env.plan, scheme)
    reader, writer = await wire.open_http(env.proxy, scheme, port)
    env.tally.seeds["aborted uploads"].append(seed)
    framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(size))
    writer.write(wire.request_head("PUT", wire.target(scheme, port, f"/sink/{seed}/{size}"), port, [framing]))
    try:
        sent = await wire.send_body(writer, seed, size, chunked, stop_after=stop_after)
    finally:
        if how == "rst":
            wire.reset(writer.transport)
        else:
            await wire.close(writer)
    return Verdict.EXPECTED, f"{how} after {sent} of {size} bytes"


async def client_aborts_download(env: Env, rng: random.Random) -> Outcome:
    """A client reads part of a large body, then resets or closes."""
    scheme, chunked, how = rng.choice(("http", "https")), rng.random() < 0.5, rng.choice(("rst", "fin"))
    seed, size = rng.getrandbits(48), rng.randint(16 * MiB, 64 * MiB)
    wanted = rng.randint(1, 8 * MiB)
    port = scheme_port(env.plan, scheme)
    reader, writer = await wire.open_http(env.proxy, scheme, port)
    try:
        path = f"/bytes/{seed}/{size}" + ("?chunked=1" if chunked else "")
        writer.write(wire.request_head("GET", wire.target(scheme, port, path), port))
        status, _ = await wire.read_head(reader)
        received = 0
        while received < wanted and (data := await reader.read(min(wire.READ_SIZE, wanted - received))):
            received += len(data)
    finally:
        if how == "rst":
            wire.reset(writer.transport)
        else:
            await wire.close(writer)
    if status != 200:
        return Verdict.UNEXPECTED, f"status {status}"
    return Verdict.EXPECTED, f"{how} after {received} bytes"


async def client_half_closes(env: Env, rng: random.Random) -> Outcome:
    """A client that shuts down its sending side right after its request: either the whole
    response, or the exchange abandoned at the FIN (mitmproxy's and nginx's reading, which
    the proxy adopts); either way the proxy must close its side (no CLOSE_WAIT)."""
    scheme = "http"  # a TLS half-close would be a close_notify, another story
    seed, size = rng.getrandbits(48), rng.choice((0, 1024, 256 * 1024, 4 * MiB))
    port = scheme_port(env.plan, scheme)
    reader, writer = await wire.open_http(env.proxy, scheme, port)
    try:
        writer.write(wire.request_head("GET", wire.target(scheme, port, f"/bytes/{seed}/{size}"), port))
        writer.write_eof()
        try:
            reply = await wire.read_reply(reader)
        except wire.NoResponse as error:
            return Verdict.EXPECTED, f"abandoned at the FIN: {error}"
        verdict, detail = judge_body(reply, seed, size)
        if verdict is Verdict.UNEXPECTED and reply.ending in (wire.Ending.TRUNCATED, wire.Ending.RESET):
            return Verdict.EXPECTED, f"abandoned at the FIN: {detail}"
        if verdict is not Verdict.OK:
            return verdict, detail
        if not await _closed_within(reader, SLACK):
            return Verdict.UNEXPECTED, f"{size} bytes, then the connection was kept open"
    finally:
        wire.reset(writer.transport)
    return Verdict.EXPECTED, f"{size} bytes, then closed"


async def slow_head(env: Env, rng: random.Random) -> Outcome:
    """A head sent one byte per second, never finished: shed after C{connection_idle_timeout}."""
    port, started = env.plan.http_port, time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", env.proxy.port)
    writer.write(f"GET http://127.0.0.1:{port}/bytes/{rng.getrandbits(48)}/16 HTTP/1.1\r\nX-Slow: ".encode())
    trickle = asyncio.create_task(_trickle(writer))
    bound = env.plan.idle_timeout + SLACK
    try:
        try:
            answer = await asyncio.wait_for(reader.read(4096), bound)
        except asyncio.TimeoutError:
            return Verdict.UNEXPECTED, f"slow head still open after {bound:g} s"
        except OSError as error:
            answer = describe(error).encode()
    finally:
        trickle.cancel()
        wire.reset(writer.transport)
    shed_after = time.monotonic() - started
    first_line = answer.split(b"\r\n")[0].decode("latin-1")[:40] or "closed"
    if first_line.startswith("HTTP/1.1 ") and not first_line.startswith("HTTP/1.1 408"):
        return Verdict.UNEXPECTED, f"{first_line} after {shed_after:.1f} s"
    return Verdict.EXPECTED, f"{first_line} after {shed_after:.1f} s"


async def _trickle(writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            await asyncio.sleep(1)
            writer.write(b"a")
            await writer.drain()
    except (OSError, RuntimeError):
        return


async def garbage_request(env: Env, rng: random.Random) -> Outcome:
    """Random bytes instead of a request head: a 400 and the connection closed."""
    scheme = rng.choice(("http", "https"))
    garbage = rng.randbytes(rng.randint(16, 4096)).replace(b"\n", b" ")
    return await _refused(env, scheme, garbage + b"\r\n\r\n", (400,))


async def oversized_head(env: Env, rng: random.Random) -> Outcome:
    """A head over the limits (one huge field, too many fields, a huge target): a 431."""
    scheme, variant = rng.choice(("http", "https")), rng.choice(("huge field", "many fields", "huge target"))
    port = scheme_port(env.plan, scheme)
    path = f"/bytes/{rng.getrandbits(48)}/16"
    if variant == "huge field":
        fields = [("X-Big", "b" * rng.randint(65 * 1024, 256 * 1024))]
    elif variant == "many fields":
        fields = [(f"X-Field-{n}", "v") for n in range(rng.randint(260, 1000))]
    else:
        fields, path = [], path + "?" + "q" * rng.randint(65 * 1024, 256 * 1024)
    verdict, detail = await _refused(env, scheme, wire.request_head("GET", wire.target(scheme, port, path), port, fields),
                                     (431,))
    return verdict, f"{variant}: {detail}"


#: Request heads with ambiguous framing, each followed by a second request hidden in its body.
SMUGGLING_FRAMINGS = {
    "CL+TE": [("Content-Length", "{length}"), ("Transfer-Encoding", "chunked")],
    "TE+CL": [("Transfer-Encoding", "chunked"), ("Content-Length", "{length}")],
    "two lengths": [("Content-Length", "0"), ("Content-Length", "{length}")],
    "length list": [("Content-Length", "0, {length}")],
    "TE chunked, identity": [("Transfer-Encoding", "chunked, identity")],
    "TE xchunked": [("Transfer-Encoding", "xchunked")],
    "TE space before colon": [("Transfer-Encoding ", "chunked")],
    "signed length": [("Content-Length", "+{length}")],
}


async def smuggling_attempt(env: Env, rng: random.Random) -> Outcome:
    """Ambiguous framing with a request hidden in the body: a 400, and neither request forwarded."""
    scheme, variant = rng.choice(("http", "https")), rng.choice(sorted(SMUGGLING_FRAMINGS))
    port = scheme_port(env.plan, scheme)
    outer, inner = rng.getrandbits(48), rng.getrandbits(48)
    env.tally.seeds["smuggled"] += [outer, inner]
    hidden = wire.request_head("GET", wire.target(scheme, port, f"/smuggle/{inner}"), port)
    body = b"0\r\n\r\n" + hidden
    fields = [(name, value.format(length=len(body))) for name, value in SMUGGLING_FRAMINGS[variant]]
    head = wire.request_head("POST", wire.target(scheme, port, f"/smuggle/{outer}"), port, fields)
    verdict, detail = await _refused(env, scheme, head, (400,), tail=body)
    return verdict, f"{variant}: {detail}"


# -- TLS and WebSocket misbehave ----------------------------------------------------------


async def garbage_after_connect(env: Env, rng: random.Random) -> Outcome:
    """Random bytes (half of them starting like a TLS record) after a CONNECT: closed soon."""
    garbage = rng.randbytes(rng.randint(64, 2048))
    if rng.random() < 0.5:
        garbage = b"\x16\x03\x01" + garbage
    sock = await wire.open_tunnel(env.proxy, env.plan.https_port)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(garbage)
        if not await _closed_within(reader, CLOSE_WAIT_BOUND):
            return Verdict.UNEXPECTED, f"{len(garbage)} bytes starting {garbage[:3]!r}: still open after {CLOSE_WAIT_BOUND:g} s"
    finally:
        wire.reset(writer.transport)
    return Verdict.EXPECTED, f"{len(garbage)} bytes starting {garbage[:3]!r}: closed"


def _client_hello() -> bytes:
    """The first flight of a real TLS client (a ClientHello), made in memory."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    connection = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        connection.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


async def tls_handshake_aborted(env: Env, rng: random.Random) -> Outcome:
    """A client that gives up during the TLS handshake: part of a ClientHello, or all of it
    and then nothing, then a reset or a close."""
    variant, how = rng.choice(("partial hello", "hello then leave")), rng.choice(("rst", "fin"))
    hello = _client_hello()
    sock = await wire.open_tunnel(env.proxy, env.plan.https_port)
    reader, writer = await asyncio.open_connection(sock=sock)
    detail = f"{variant}, {how}"
    try:
        if variant == "partial hello":
            writer.write(hello[: rng.randint(1, len(hello) - 1)])
            await writer.drain()
        else:
            writer.write(hello)
            try:
                answer = await asyncio.wait_for(reader.read(4096), SLACK)
            except asyncio.TimeoutError:
                return Verdict.UNEXPECTED, f"{detail}: no ServerHello within {SLACK:g} s"
            if not answer.startswith(b"\x16\x03"):
                return Verdict.UNEXPECTED, f"{detail}: the proxy answered {answer[:8]!r}"
    finally:
        if how == "rst":
            wire.reset(writer.transport)
        else:
            await wire.close(writer)
    return Verdict.EXPECTED, detail


async def websocket_aborted(env: Env, rng: random.Random) -> Outcome:
    """A WebSocket client that resets its connection in the middle of a large frame."""
    scheme = rng.choice(("ws", "wss"))
    port = scheme_port(env.plan, scheme)
    sock = await wire.open_tunnel(env.proxy, port)
    tls = {"ssl": env.proxy.tls, "server_hostname": "127.0.0.1"} if scheme == "wss" else {}
    async with ws_connect(f"{scheme}://127.0.0.1:{port}/", sock=sock, compression=None, max_size=None,
                          open_timeout=10, close_timeout=2, ping_interval=None, **tls) as connection:
        for _ in range(rng.randint(0, 5)):
            await connection.send(rng.randbytes(rng.randint(1, 4096)))
            await asyncio.wait_for(connection.recv(), BOUND)
        length = rng.randint(64 * 1024, MiB)
        mask = rng.randbytes(4)
        header = b"\x82\xff" + length.to_bytes(8, "big") + mask  # binary, final, masked, 64-bit length
        connection.transport.write(header + rng.randbytes(rng.randint(0, length - 1)))
        wire.reset(connection.transport)
    return Verdict.EXPECTED, f"{scheme}: reset inside a frame of {length} bytes"


#: Every fault, by the name the report uses, with how long it may take at most.
FAULTS: dict[str, tuple[Callable[[Env, random.Random], Awaitable[Outcome]], Callable[[Plan], float]]] = {
    "origin drops mid-body": (origin_drops_mid_body, lambda plan: BOUND),
    "origin killed mid-body": (origin_killed_mid_body, lambda plan: 2 * BOUND),
    "origin never answers": (origin_never_answers, lambda plan: plan.read_timeout + 2 * SLACK),
    "sink drops upload": (sink_drops_upload, lambda plan: BOUND),
    "malformed response": (malformed_response, lambda plan: BOUND),
    "client aborts upload": (client_aborts_upload, lambda plan: BOUND),
    "client aborts download": (client_aborts_download, lambda plan: BOUND),
    "client half-closes": (client_half_closes, lambda plan: BOUND),
    "slow head (1 byte/s)": (slow_head, lambda plan: plan.idle_timeout + 2 * SLACK),
    "garbage request": (garbage_request, lambda plan: BOUND),
    "oversized head": (oversized_head, lambda plan: BOUND),
    "smuggling attempt": (smuggling_attempt, lambda plan: BOUND),
    "garbage after CONNECT": (garbage_after_connect, lambda plan: BOUND),
    "TLS handshake aborted": (tls_handshake_aborted, lambda plan: BOUND),
    "WebSocket reset mid-frame": (websocket_aborted, lambda plan: BOUND),
}


def fault_schedule(rng: random.Random, seconds: float, interval: float) -> list[tuple[float, str]]:
    """When each fault starts (seconds into the run) and which: on average one per C{interval}."""
    names, schedule, at = sorted(FAULTS), [], rng.expovariate(1 / interval)
    while at < seconds:
        schedule.append((round(at, 3), rng.choice(names)))
        at += rng.expovariate(1 / interval)
    return schedule


async def run(plan: Plan, proxy: wire.Proxy, tally: Tally, deadline: float) -> None:
    """Inject the faults of L{fault_schedule} until C{deadline}, then wait for the last ones."""
    env = Env(plan, proxy, tally)
    started, slots = time.monotonic(), asyncio.Semaphore(plan.faults_in_flight)
    running = []
    try:
        for index, (at, name) in enumerate(fault_schedule(plan.rng("faults"), plan.seconds, plan.fault_interval)):
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            if time.monotonic() >= deadline:
                break
            await slots.acquire()
            running.append(asyncio.create_task(_one(env, name, plan.rng(f"fault-{index}"), slots)))
        await asyncio.gather(*running)
    finally:
        await env.fragile.kill()


async def _one(env: Env, name: str, rng: random.Random, slots: asyncio.Semaphore) -> None:
    fault, bound = FAULTS[name]
    try:
        async with asyncio.timeout(bound(env.plan)):
            verdict, detail = await fault(env, rng)
    except Exception as error:  # whatever it was, it is this fault's outcome
        verdict, detail = Verdict.UNEXPECTED, describe(error)
    finally:
        slots.release()
    env.tally.add(name, verdict, detail)

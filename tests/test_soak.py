# -*- test-case-name: tests.test_soak -*-
"""Tests for the soak instrument (C{benchmarks/soak}): the parts its verdicts rest on.

A soak that cannot tell a truncated body from a complete one, or whose origin does not
really fail, would report zero losses whatever the proxy does; these tests pin that down:
deterministic content, how the client reads endings, how bodies are judged, the
origin's faults, the C{/proc} readings, and a few faults run through a real proxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from benchmarks.soak import content, faults, wire
from benchmarks.soak.__main__ import origin_findings
from benchmarks.soak.origin import Origin
from benchmarks.soak.plan import MiB, Plan
from benchmarks.soak.probe import Sample, fd_kinds, sample, socket_inodes, socket_states
from benchmarks.soak.summary import FD_SLACK, Figures, markdown, percentiles
from benchmarks.soak.tally import Tally, Verdict, judge_body, judge_cut_body, judge_upload
from benchmarks.soak.wire import Ending, Reply
from tests.support import origin_certificate, start_proxy


def run(coroutine: Coroutine[Any, Any, Any], timeout: float = 10) -> Deferred[Any]:
    """Run an asyncio coroutine from a trial test, bounded by C{timeout} seconds."""
    return Deferred.fromFuture(asyncio.ensure_future(asyncio.wait_for(coroutine, timeout)))


def reply_with(seed: int, size: int, data: bytes | None = None, ending: Ending = Ending.COMPLETE,
               status: int = 200) -> Reply:
    """The reply a client would have read, carrying C{data} (by default the whole body)."""
    data = content.body(seed, size) if data is None else data
    return Reply(status, {}, len(data), hashlib.sha256(data).hexdigest(), ending, data)


class ContentTests(SynchronousTestCase):
    def test_same_seed_same_body(self) -> None:
        """A body is a function of its seed and size only."""
        self.assertEqual(content.body(7, 300_000), content.body(7, 300_000))
        self.assertEqual(len(content.body(7, 300_000)), 300_000)

    def test_pieces_differ(self) -> None:
        """No two pieces of a body, or of bodies with different seeds, are alike."""
        pieces = list(content.pieces(1, 4 * content.PIECE)) + list(content.pieces(2, 4 * content.PIECE))
        self.assertEqual(len(set(pieces)), 8)

    def test_digest(self) -> None:
        """The digest is the SHA-256 of the body, and reordered pieces change it."""
        body = content.body(3, 3 * content.PIECE + 5)
        self.assertEqual(content.digest(3, len(body)), hashlib.sha256(body).hexdigest())
        first, second = body[: content.PIECE], body[content.PIECE : 2 * content.PIECE]
        swapped = second + first + body[2 * content.PIECE :]
        self.assertNotEqual(hashlib.sha256(swapped).hexdigest(), content.digest(3, len(body)))

    def test_text(self) -> None:
        """Text messages are ASCII of the asked length."""
        text = content.text(5, 1001)
        self.assertEqual(len(text), 1001)
        self.assertTrue(text.isascii())


class JudgeTests(SynchronousTestCase):
    def test_complete_body(self) -> None:
        """The whole body, ended by its framing, is ok."""
        self.assertEqual(judge_body(reply_with(1, 5000), 1, 5000), (Verdict.OK, ""))

    def test_visible_failure_is_not_a_loss(self) -> None:
        """A body cut by a reset or a close is a visible failure, not a silent loss."""
        for ending in (Ending.TRUNCATED, Ending.RESET):
            verdict, _ = judge_body(reply_with(1, 5000, content.body(1, 5000)[:100], ending), 1, 5000)
            self.assertEqual(verdict, Verdict.UNEXPECTED)

    def test_short_body_ended_cleanly_is_lost(self) -> None:
        """A short body whose framing said it was complete (a fake zero-size chunk) is lost."""
        verdict, _ = judge_body(reply_with(1, 5000, content.body(1, 5000)[:100]), 1, 5000)
        self.assertEqual(verdict, Verdict.LOST)

    def test_other_bytes_are_corrupted(self) -> None:
        """A body of the right length with other bytes is corrupted."""
        verdict, _ = judge_body(reply_with(1, 5000, content.body(2, 5000)), 1, 5000)
        self.assertEqual(verdict, Verdict.CORRUPTED)

    def test_close_delimited_is_unexpected(self) -> None:
        """A body delimited only by the close cannot be checked, so it is not ok."""
        verdict, _ = judge_body(reply_with(1, 5000, ending=Ending.UNTIL_CLOSE), 1, 5000)
        self.assertEqual(verdict, Verdict.UNEXPECTED)

    def test_cut_body(self) -> None:
        """After an origin failure: a 502 or a visibly cut body is expected, a complete one lost."""
        cut = content.body(1, 5000)[:100]
        self.assertEqual(judge_cut_body(reply_with(1, 5000, b"x", status=502), 1, 5000, False)[0], Verdict.EXPECTED)
        self.assertEqual(judge_cut_body(reply_with(1, 5000, cut, Ending.RESET), 1, 5000, False)[0], Verdict.EXPECTED)
        self.assertEqual(judge_cut_body(reply_with(1, 5000, cut), 1, 5000, False)[0], Verdict.LOST)
        self.assertEqual(judge_cut_body(reply_with(1, 5000), 1, 5000, False)[0], Verdict.LOST)
        self.assertEqual(judge_cut_body(reply_with(1, 5000), 1, 5000, True)[0], Verdict.EXPECTED)
        self.assertEqual(judge_cut_body(reply_with(1, 5000, b"x", status=200 + 1), 1, 5000, True)[0], Verdict.UNEXPECTED)

    def test_upload(self) -> None:
        """An upload is judged by what the sink says it received."""
        def answer(size: int, seed: int = 1) -> Reply:
            return reply_with(0, 0, json.dumps({"size": size, "sha256": content.digest(seed, size)}).encode())

        self.assertEqual(judge_upload(answer(5000), 1, 5000)[0], Verdict.OK)
        self.assertEqual(judge_upload(answer(4000), 1, 5000)[0], Verdict.LOST)
        self.assertEqual(judge_upload(answer(5000, seed=2), 1, 5000)[0], Verdict.CORRUPTED)
        self.assertEqual(judge_upload(reply_with(0, 0, b"", status=502), 1, 5000)[0], Verdict.UNEXPECTED)


class ReadReplyTests(TestCase):
    """How the client tells a body's ending, from bytes fed to a stream reader."""

    async def read(self, data: bytes, eof: bool = True) -> Reply:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        if eof:
            reader.feed_eof()
        return await wire.read_reply(reader, keep=True)

    def test_chunked_complete(self) -> Deferred[None]:
        """The zero-size chunk (with trailers) ends a chunked body."""
        async def check() -> None:
            reply = await self.read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    b"3\r\nabc\r\n2;x=1\r\nde\r\n0\r\nT: 1\r\n\r\n")
            self.assertEqual((reply.ending, reply.body), (Ending.COMPLETE, b"abcde"))
        return run(check())

    def test_chunked_without_last_chunk(self) -> Deferred[None]:
        """A chunked body that stops at a chunk boundary is truncated, not complete."""
        async def check() -> None:
            reply = await self.read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            self.assertEqual((reply.ending, reply.size), (Ending.TRUNCATED, 3))
        return run(check())

    def test_short_length(self) -> Deferred[None]:
        """A body shorter than its Content-Length is truncated."""
        async def check() -> None:
            reply = await self.read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            self.assertEqual((reply.ending, reply.size), (Ending.TRUNCATED, 3))
        return run(check())

    def test_until_close(self) -> Deferred[None]:
        """A body with neither length nor chunking is marked as close-delimited."""
        async def check() -> None:
            reply = await self.read(b"HTTP/1.1 200 OK\r\n\r\nabc")
            self.assertEqual((reply.ending, reply.body), (Ending.UNTIL_CLOSE, b"abc"))
        return run(check())

    def test_interim_skipped(self) -> Deferred[None]:
        """A 100 Continue before the response is skipped."""
        async def check() -> None:
            reply = await self.read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", eof=False)
            self.assertEqual(reply.status, 204)
        return run(check())

    def test_no_head(self) -> Deferred[None]:
        """A connection closed before a whole head raises L{wire.NoResponse}."""
        async def check() -> None:
            with self.assertRaises(wire.NoResponse):
                await self.read(b"HTTP/1.1 200 OK\r\n")
        return run(check())


class ProbeTests(SynchronousTestCase):
    TABLE = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1\n"
        "   1: 0100007F:1F90 0100007F:D2C4 08 00000000:00000000 00:00000000 00000000     0        0 222 1\n"
        "   2: 0100007F:1F90 0100007F:D2C6 08 00000000:00000000 00:00000000 00000000     0        0 333 1\n"
        "   3: 0100007F:1F90 0100007F:D2C8 01 00000000:00000000 00:00000000 00000000     0        0 444 1\n"
        "   4: 0100007F:D2CA 0100007F:1F91 08 00000000:00000000 00:00000000 00000000     0        0 555 1\n"
    )

    def test_socket_states(self) -> None:
        """Only the process's own sockets count, by state (08 is CLOSE_WAIT) and peer."""
        self.assertEqual(socket_states([self.TABLE], {111, 222, 444, 555}, 8080, {0x1F91: "origin http"}),
                         {"LISTEN": 1, "CLOSE_WAIT from a client": 1, "ESTABLISHED from a client": 1,
                          "CLOSE_WAIT to origin http": 1})
        self.assertEqual(socket_states([self.TABLE, self.TABLE], {222, 333}, 8080, {}), {"CLOSE_WAIT from a client": 4})

    def test_own_process(self) -> None:
        """The readings of this very process: memory, descriptors, a socket it holds."""
        with socket.socket() as sock:
            reading = sample(os.getpid())
            self.assertGreater(reading.rss_mib, 0)
            self.assertGreater(reading.fds, 2)
            self.assertIn(os.fstat(sock.fileno()).st_ino, socket_inodes(os.getpid()))
            self.assertGreaterEqual(fd_kinds(os.getpid()).get("socket", 0), 1)


class PlanTests(SynchronousTestCase):
    def test_schedule_reproducible(self) -> None:
        """The same seed draws the same faults at the same moments; another seed does not."""
        plan = Plan.for_mode(True, None, 1)
        first = faults.fault_schedule(plan.rng("faults"), 60, 1.0)
        self.assertEqual(first, faults.fault_schedule(plan.rng("faults"), 60, 1.0))
        self.assertNotEqual(first, faults.fault_schedule(replace(plan, seed=2).rng("faults"), 60, 1.0))
        self.assertTrue(all(0 < at < 60 and name in faults.FAULTS for at, name in first))
        self.assertEqual([at for at, _ in first], sorted(at for at, _ in first))
        self.assertGreater(len(first), 30)

    def test_round_trip(self) -> None:
        """A plan survives its JSON file."""
        plan = replace(Plan.for_mode(False, 30, 4), proxy_port=1234, proxy_ca="/ca.pem")
        path = Path(self.mktemp())
        plan.write(path)
        self.assertEqual(Plan.read(path), plan)


class TallyTests(SynchronousTestCase):
    def test_merge_round_trip(self) -> None:
        """Tallies merge, and survive their JSON; only a few examples are kept."""
        one, two = Tally(), Tally()
        for n in range(10):
            one.add("garbage request", Verdict.UNEXPECTED, f"example {n}")
        two.add("garbage request", Verdict.EXPECTED, "fine")
        two.add("download (http)", Verdict.LOST, "short")
        two.latencies_ms.append(1.5)
        two.seeds["smuggled"].append(9)
        one.merge(Tally.from_json(json.loads(json.dumps(two.as_json()))))
        self.assertEqual(one.counts["garbage request"], {"unexpected": 10, "failed as expected": 1})
        self.assertEqual(len(one.examples["garbage request: unexpected"]), 5)
        self.assertEqual((one.latencies_ms, one.seeds["smuggled"]), ([1.5], [9]))
        self.assertEqual(one.total(Verdict.LOST, Verdict.CORRUPTED), 1)


class FiguresTests(SynchronousTestCase):
    def figures(self, tally: Tally | None = None, after_fds: int = 12, **changes: Any) -> Figures:
        plan = Plan.for_mode(True, None, 1)
        fields: dict[str, Any] = {"sockets_after": {"LISTEN": 1}, "fds_after": {"socket": 1}, "log_tracebacks": 0, **changes}
        return Figures("now", "make soak", "abc", plan, [], tally or Tally(), Sample(50, 12), Sample(90, 40),
                       Sample(60, after_fds), **fields)

    def test_pass(self) -> None:
        """Nothing lost, descriptors back: the run passes."""
        figures = self.figures()
        self.assertEqual(figures.failures(), [])
        self.assertIn("Verdict: **pass**", markdown(figures))

    def test_failures(self) -> None:
        """A lost body, a descriptor leak, a smuggled request or a hung worker each fail the run."""
        tally = Tally()
        tally.add("download (http)", Verdict.LOST, "short")
        self.assertEqual(len(self.figures(tally).failures()), 1)
        self.assertIn("**1**", markdown(self.figures(tally)))
        self.assertEqual(self.figures(after_fds=12 + FD_SLACK).failures(), [])
        self.assertEqual(len(self.figures(after_fds=13 + FD_SLACK).failures()), 1)
        self.assertEqual(len(self.figures(smuggled=1).failures()), 1)
        self.assertEqual(len(self.figures(hung_workers=["faults"]).failures()), 1)

    def test_close_wait(self) -> None:
        """Sockets in CLOSE_WAIT are counted whatever their peer."""
        figures = self.figures(sockets_after={"LISTEN": 1, "CLOSE_WAIT from a client": 2, "CLOSE_WAIT to origin http": 1})
        self.assertEqual(figures.close_wait, 3)
        self.assertIn("| proxy sockets in CLOSE_WAIT at the end | 3 (", markdown(figures))

    def test_leftover_connections_listed(self) -> None:
        """Origin connections left open are listed with their last request, without failing the run."""
        figures = self.figures(origin_open_after=["GET /hang/5 HTTP/1.1"])
        self.assertEqual(figures.failures(), [])
        self.assertIn("`GET /hang/5 HTTP/1.1`", markdown(figures))

    def test_origin_findings(self) -> None:
        """Aborted uploads the sink got whole are lost bodies; smuggled seeds seen are counted."""
        tally = Tally()
        tally.seeds["aborted uploads"] += [1, 2]
        tally.seeds["smuggled"] += [5, 6]
        lost, smuggled = origin_findings(tally, {"uploads": {"2": [10, "x"], "3": [5, "y"]}, "smuggled": [6, 7]})
        self.assertEqual((len(lost), smuggled), (1, 1))
        self.assertIn("seed 2", lost[0])
        self.assertEqual(self.figures(origin_findings=lost).bodies_lost_or_corrupted, 1)

    def test_percentiles(self) -> None:
        self.assertEqual(percentiles([float(n) for n in range(1, 101)]), (50.5, 99.01))
        self.assertEqual(percentiles([1.0]), (None, None))


def origin_tls(test: TestCase) -> ssl.SSLContext:
    """A server context with a test origin certificate for 127.0.0.1."""
    certificate = origin_certificate("127.0.0.1")
    path = test.mktemp()
    with open(path, "wb") as pem:
        pem.write(certificate.cert.public_bytes(serialization.Encoding.PEM))
        pem.write(certificate.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(path)
    return context


async def serve_origin(test: TestCase, origin: Origin, tls: ssl.SSLContext | None = None) -> int:
    """Serve C{origin} on 127.0.0.1 port 0 until the test ends; returns the port."""
    server = await asyncio.start_server(origin.serve, "127.0.0.1", 0, ssl=tls, limit=1 << 20)
    test.addCleanup(server.close)
    return server.sockets[0].getsockname()[1]


async def ask(port: int, head: bytes, body: Callable[[asyncio.StreamWriter], Awaitable[object]] | None = None,
              ) -> Reply:
    """Send C{head} (and a body) straight to an origin and read its reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        if body is not None:
            await body(writer)
        return await wire.read_reply(reader, keep=True)
    finally:
        await wire.close(writer)


class OriginTests(TestCase):
    """The origin really serves what the soak checks, and really fails where asked to."""

    def test_bytes(self) -> Deferred[None]:
        """C{/bytes} serves the body of its seed, by length or chunked."""
        async def check() -> None:
            port = await serve_origin(self, Origin())
            for query in ("", "?chunked=1"):
                reply = await ask(port, wire.request_head("GET", f"/bytes/4/200000{query}", port))
                self.assertEqual(judge_body(reply, 4, 200_000), (Verdict.OK, ""))
        return run(check())

    def test_drop(self) -> Deferred[None]:
        """C{/drop} never lets a body end as complete, reset or closed, by length or chunked."""
        async def check() -> None:
            port = await serve_origin(self, Origin())
            for query in ("how=rst", "how=fin", "how=rst&chunked=1", "how=fin&chunked=1"):
                reply = await ask(port, wire.request_head("GET", f"/drop/4/200000/70000?{query}", port))
                self.assertIn(reply.ending, (Ending.TRUNCATED, Ending.RESET), query)
                self.assertLessEqual(reply.size, 70_000)
        return run(check())

    def test_sink(self) -> Deferred[None]:
        """C{/sink} hashes and records whole uploads; with C{drop_at} it resets and records nothing."""
        async def check() -> None:
            origin = Origin()
            port = await serve_origin(self, origin)
            for seed, framing, chunked in ((1, ("Content-Length", "300000"), False), (2, ("Transfer-Encoding", "chunked"), True)):
                head = wire.request_head("PUT", f"/sink/{seed}/300000", port, [framing])
                reply = await ask(port, head, lambda writer: wire.send_body(writer, seed, 300_000, chunked))
                self.assertEqual(judge_upload(reply, seed, 300_000), (Verdict.OK, ""))
            head = wire.request_head("PUT", f"/sink/3/{3 * MiB}?drop_at=100000", port, [("Content-Length", str(3 * MiB))])
            with self.assertRaises((wire.NoResponse, OSError)):
                await ask(port, head, lambda writer: wire.send_body(writer, 3, 3 * MiB, chunked=False))
            self.assertEqual(sorted(origin.seen.uploads), [1, 2])
        return run(check())


    def test_open_connections(self) -> None:
        """The origin names its open connections by their last request line, and forgets closed ones."""
        async def check() -> None:
            origin = Origin()
            port = await serve_origin(self, origin)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(wire.request_head("GET", "/bytes/1/10", port))
            await wire.read_reply(reader)
            self.assertEqual(list(origin.seen.open_connections.values()), ["GET /bytes/1/10 HTTP/1.1"])
            await wire.close(writer)
            await asyncio.sleep(0.1)
            self.assertEqual(origin.seen.open_connections, {})
        return run(check())


class FaultsThroughProxyTests(TestCase):
    """A few faults run through a real proxy, as the soak runs them."""

    async def env(self) -> tuple[faults.Env, Origin]:
        origin = Origin()
        http_port = await serve_origin(self, origin)
        https_port = await serve_origin(self, origin, origin_tls(self))
        proxy = start_proxy(self, options=["ssl_insecure=true", "stream_large_bodies=1m"])
        plan = replace(Plan.for_mode(True, None, 1), proxy_port=proxy.port, proxy_ca=proxy.ca_path,
                       http_port=http_port, https_port=https_port)
        return faults.Env(plan, wire.Proxy(proxy.port, wire.client_tls(proxy.ca_path)), Tally()), origin

    def test_smuggling_refused(self) -> Deferred[None]:
        """Every smuggling variant gets a 400 and reaches the origin neither as itself nor hidden."""
        async def check() -> None:
            env, origin = await self.env()
            for n in range(16):
                verdict, detail = await faults.smuggling_attempt(env, random.Random(n))
                self.assertEqual(verdict, Verdict.EXPECTED, detail)
            self.assertEqual(origin.seen.smuggled, [])
            self.assertEqual(len(env.tally.seeds["smuggled"]), 32)
        return run(check(), 30)

    def test_origin_drop_never_complete(self) -> Deferred[None]:
        """A body the origin cuts short reaches the client as a failure, plain or TLS."""
        async def check() -> None:
            env, _ = await self.env()
            for n in range(6):
                verdict, detail = await faults.origin_drops_mid_body(env, random.Random(n))
                self.assertEqual(verdict, Verdict.EXPECTED, detail)
        return run(check(), 30)

# -*- test-case-name: tests.test_proxy_errors -*-
"""The proxy's answers to bad requests and failing upstreams, over loopback (SPEC §7)."""

from __future__ import annotations

import socket
import time
from typing import Any

from twisted.internet.defer import gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support import (
    HookRecorder,
    curl,
    raw_client,
    reactor,
    respond,
    start_proxy,
    start_raw_origin,
)


def status_of(data: bytes) -> int:
    """The status code of the first response in C{data}."""
    return int(data.split(b" ", 2)[1])


def free_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class BadRequestTests(TestCase):
    """Requests the proxy refuses by itself, without contacting any server."""

    async def _refused(self, request: bytes, options: tuple[str, ...] = ()) -> tuple[bytes, Any]:
        origin = start_raw_origin(self, respond(200, b"should not be reached"))
        proxy = start_proxy(self, options=options)
        client = await raw_client(self, proxy.port)
        client.send(request.replace(b"PORT", str(origin.port).encode()))
        data = await client.wait_closed()
        return data, origin

    async def test_malformed_request_line(self) -> None:
        """A request line that is not HTTP gets 400 and the connection is closed."""
        data, origin = await self._refused(b"THIS IS NOT HTTP\r\n\r\n")
        self.assertEqual(status_of(data), 400)
        self.assertEqual(origin.connections, [])

    async def test_huge_head(self) -> None:
        """A request head larger than the limit gets 431."""
        data, origin = await self._refused(b"GET http://127.0.0.1:PORT/ HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        self.assertEqual(status_of(data), 431)
        self.assertEqual(origin.connections, [])

    async def test_origin_form_request(self) -> None:
        """An origin-form request (path only) sent to the proxy gets 400 explaining the absolute form."""
        data, origin = await self._refused(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n\r\n")
        self.assertEqual(status_of(data), 400)
        self.assertIn(b"absolute", data)
        self.assertEqual(origin.connections, [])

    async def test_content_length_with_transfer_encoding_not_forwarded(self) -> None:
        """A request with both Content-Length and Transfer-Encoding gets 400 and never reaches the origin."""
        data, origin = await self._refused(
            b"POST http://127.0.0.1:PORT/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"
        )
        self.assertEqual(status_of(data), 400)
        self.assertEqual((origin.connections, origin.received), ([], []))

    async def test_body_size_limit_declared(self) -> None:
        """A request declaring a body over body_size_limit gets 413, an error hook call, and no upstream."""
        recorder = HookRecorder()
        origin = start_raw_origin(self, respond(200, b"no"))
        proxy = start_proxy(self, options=["body_size_limit=1k"], addons=[recorder])
        client = await raw_client(self, proxy.port)
        client.send(b"POST http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n" % origin.port)
        data = await client.wait_closed()
        self.assertEqual(status_of(data), 413)
        self.assertEqual(origin.connections, [])
        self.assertIn("error", recorder.names())

    async def test_body_size_limit_chunked(self) -> None:
        """A chunked request body growing past body_size_limit gets 413."""
        origin = start_raw_origin(self, respond(200, b"no"))
        proxy = start_proxy(self, options=["body_size_limit=1k"])
        client = await raw_client(self, proxy.port)
        client.send(b"POST http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" % origin.port)
        client.send((b"200\r\n" + b"z" * 0x200 + b"\r\n") * 4)
        data = await client.wait_closed()
        self.assertEqual(status_of(data), 413)
        self.assertEqual(origin.requests, [])


class UpstreamFailureTests(TestCase):
    """Upstream failures become readable 502/504 answers and an error hook call."""

    async def _get(self, url: str, options: tuple[str, ...] = ()) -> tuple[bytes, HookRecorder]:
        recorder = HookRecorder()
        proxy = start_proxy(self, options=options, addons=[recorder])
        out, err, code = await curl("-x", proxy.url, "-i", url)
        self.assertEqual(code, 0, err)
        return out, recorder

    def _assert_error_hook(self, recorder: HookRecorder, text: str) -> None:
        errors = [flow for name, flow in recorder.calls if name == "error"]
        self.assertEqual(len(errors), 1, recorder.names())
        self.assertIn(text, errors[0].error.msg)

    async def test_connection_refused(self) -> None:
        """Connection refused gives 502 with a body that says so."""
        port = free_port()
        out, recorder = await self._get(f"http://127.0.0.1:{port}/")
        self.assertEqual(status_of(out), 502)
        self.assertIn(b"connection refused by 127.0.0.1:%d" % port, out)
        self._assert_error_hook(recorder, "refused")

    async def test_unresolvable_host(self) -> None:
        """A host that does not resolve gives 502 with a body that names it."""
        out, recorder = await self._get("http://no-such-host.invalid/")
        self.assertEqual(status_of(out), 502)
        self.assertIn(b"cannot resolve host 'no-such-host.invalid'", out)
        self._assert_error_hook(recorder, "no-such-host.invalid")

    async def test_response_timeout_while_others_are_served(self) -> None:
        """A server that never answers gives 504 after upstream_read_timeout; another client is served meanwhile."""
        silent = start_raw_origin(self, None)
        good = start_raw_origin(self, respond(200, b"still serving"))
        recorder = HookRecorder()
        proxy = start_proxy(self, options=["upstream_read_timeout=1"], addons=[recorder])
        started = time.monotonic()
        finished: list[str] = []
        slow = curl("-x", proxy.url, "-i", silent.url + "/").addCallback(lambda r: finished.append("slow") or r)
        fast = curl("-x", proxy.url, good.url + "/").addCallback(lambda r: finished.append("fast") or r)
        (slow_out, slow_err, slow_code), (fast_out, _, _) = await gatherResults([slow, fast])
        self.assertEqual(slow_code, 0, slow_err)
        self.assertEqual(status_of(slow_out), 504)
        self.assertIn(b"the server sent nothing for 1 seconds", slow_out)
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.assertEqual((finished, fast_out), (["fast", "slow"], b"still serving"))
        self._assert_error_hook(recorder, "sent nothing")

    async def test_client_silent_mid_body(self) -> None:
        """A client that stops sending its request body gets a 408 after connection_idle_timeout."""
        origin = start_raw_origin(self, respond(200, b"never"))
        recorder = HookRecorder()
        proxy = start_proxy(self, options=["connection_idle_timeout=1"], addons=[recorder])
        client = await raw_client(self, proxy.port)
        started = time.monotonic()
        client.send(f"POST {origin.url}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789".encode())
        data = await client.wait_closed(timeout=10)
        self.assertEqual(status_of(data), 408)
        self.assertIn(b"the client sent nothing of its request body for 1 seconds", data)
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.assertEqual(origin.requests, [])
        self._assert_error_hook(recorder, "sent nothing of its request body")

    async def test_slow_heads_shed_while_others_are_served(self) -> None:
        """Clients trickling a request head a byte at a time get a 408 at request_head_timeout,
        however steadily they send, while a normal client keeps being served meanwhile."""
        origin = start_raw_origin(self, respond(200, b"served"))
        proxy = start_proxy(self, options=["request_head_timeout=1"])
        head = f"GET {origin.url}/ HTTP/1.1\r\nHost: x\r\nX-Padding: {'p' * 200}\r\n\r\n".encode()
        slow = [await raw_client(self, proxy.port) for _ in range(20)]
        started = time.monotonic()
        served = 0
        for step in range(12):
            for client in slow:
                if not client.closed.called:
                    client.send(head[step : step + 1])
            out, err, code = await curl("-x", proxy.url, origin.url + "/")
            self.assertEqual((code, out), (0, b"served"), err)
            served += 1
            await deferLater(reactor, 0.15, lambda: None)
        answers = await gatherResults([client.wait_closed(timeout=5) for client in slow])
        self.assertEqual([status_of(data) for data in answers], [408] * len(slow))
        self.assertIn(b"did not arrive within 1 seconds", answers[0])
        self.assertLess(time.monotonic() - started, 4)
        self.assertEqual(served, 12)
        self.assertEqual(len(origin.requests), 12)

    async def test_slow_client_is_not_server_silence(self) -> None:
        """While a slow client holds a streamed response back, the server's silence does not count."""
        body = b"y" * (8 * 1024 * 1024)
        origin = start_raw_origin(self, respond(200, body))
        proxy = start_proxy(self, options=["upstream_read_timeout=1", "stream_large_bodies=10"])
        client = await raw_client(self, proxy.port)
        client.send(f"GET {origin.url}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await client.receive_until(lambda data: len(data) > 100_000)
        client.transport.pauseProducing()
        await deferLater(reactor, 2.5, lambda: None)
        client.transport.resumeProducing()
        data = await client.receive_until(lambda data: data.endswith(body[-10:]) and len(data) > len(body), timeout=20)
        self.assertEqual(data.split(b"\r\n\r\n", 1)[1], body)

    async def test_server_silent_mid_body(self) -> None:
        """A server that stops sending in the middle of a streamed body is cut off after upstream_read_timeout."""

        def stall_mid_body(protocol: object, head: bytes) -> None:
            protocol.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)  # type: ignore[attr-defined]

        origin = start_raw_origin(self, stall_mid_body)
        recorder = HookRecorder()
        proxy = start_proxy(self, options=["upstream_read_timeout=1", "stream_large_bodies=10"], addons=[recorder])
        started = time.monotonic()
        out, err, code = await curl("-x", proxy.url, origin.url + "/")
        self.assertNotEqual(code, 0)
        self.assertEqual(out, b"x" * 100)
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self._assert_error_hook(recorder, "sent nothing for 1 seconds")

    async def test_connect_timeout(self) -> None:
        """A server whose accept queue is full makes the connection time out: 504."""
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(4):
            filler = socket.socket()
            self.addCleanup(filler.close)
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        out, recorder = await self._get(f"http://127.0.0.1:{port}/", options=("upstream_connect_timeout=1",))
        self.assertEqual(status_of(out), 504)
        self.assertIn(b"timed out connecting to 127.0.0.1:%d" % port, out)
        self._assert_error_hook(recorder, "timed out")

    async def test_server_dies_mid_body(self) -> None:
        """A server closing before its declared Content-Length is met gives 502, never a short 200."""

        def handler(protocol: Any, head: bytes) -> None:
            protocol.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
            protocol.transport.loseConnection()

        origin = start_raw_origin(self, handler)
        out, recorder = await self._get(origin.url + "/")
        self.assertEqual(status_of(out), 502)
        self.assertNotIn(b"only ten b", out)
        self._assert_error_hook(recorder, "closed the connection")

# -*- test-case-name: tests.test_examples -*-
"""The streaming examples in C{examples/complex}, loaded as C{-s} scripts into a real proxy."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import TestCase

from tests.support import curl, raw_client, reactor, respond, shared_confdir, start_proxy, start_raw_origin, wait_until
from tests.test_streaming import Holding, Spy, chunk, dechunk, get, header, split_response

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def example(name: str) -> str:
    """The path of an example script."""
    return os.path.join(ROOT, "examples", "complex", name)


class StreamExampleTests(TestCase):
    """C{examples/complex/stream.py} tags responses for streaming."""

    async def test_large_bodies_stream(self) -> None:
        """A binary response reaches the client while the origin still holds back the rest, and is not recorded."""
        holding = Holding(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 20000\r\n\r\n" + b"v" * 10000)
        origin = start_raw_origin(self, holding)
        spy = Spy(response=lambda flow: (flow.response.stream, flow.response.content))
        proxy = start_proxy(self, scripts=[example("stream.py")], addons=[spy])
        client = await raw_client(self, proxy.port)
        client.send(get(origin))
        await wait_until(lambda: split_response(client.data)[1] == b"v" * 10000, what="the first half")
        holding.write(b"w" * 10000)
        await wait_until(lambda: "response" in spy.calls, what="the response hook")
        self.assertEqual(split_response(client.data)[1], b"v" * 10000 + b"w" * 10000)
        self.assertEqual(spy.seen["response"], [(True, b"")])

    async def test_small_text_stays_buffered(self) -> None:
        """A small text document is buffered, so response hooks still see it."""
        origin = start_raw_origin(self, respond(200, b"<p>hi</p>", [("Content-Type", "text/html")]))
        spy = Spy(response=lambda flow: (flow.response.stream, flow.response.content))
        proxy = start_proxy(self, scripts=[example("stream.py")], addons=[spy])
        out, err, code = await curl("-x", proxy.url, origin.url + "/")
        self.assertEqual((code, out), (0, b"<p>hi</p>"), err)
        self.assertEqual(spy.seen["response"], [(False, b"<p>hi</p>")])


class StreamModifyExampleTests(TestCase):
    """C{examples/complex/stream_modify.py} rewrites a streamed body with a generator."""

    async def test_replaces_across_chunk_boundaries(self) -> None:
        """Every "foo" becomes "bar", including one split between two chunks, and the result is chunked."""
        pieces = [b"a foo, a f", b"o", b"o and fo", b"o!"]
        body = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(map(chunk, pieces)) + b"0\r\n\r\n"
        origin = start_raw_origin(self, lambda protocol, head: protocol.transport.write(body))
        proxy = start_proxy(self, scripts=[example("stream_modify.py")])
        client = await raw_client(self, proxy.port)
        client.send(get(origin))
        await wait_until(lambda: dechunk(split_response(client.data)[1])[1], what="the whole body")
        head, raw = split_response(client.data)
        self.assertEqual(b"".join(dechunk(raw)[0]), b"a bar, a bar and bar!")
        self.assertEqual(header(head, b"transfer-encoding"), b"chunked")

    async def test_http10_client_gets_close_delimited_body(self) -> None:
        """With curl over HTTP/1.0 the rewritten body is close-delimited and complete."""
        origin = start_raw_origin(self, respond(200, b"foo" * 1000))
        proxy = start_proxy(self, scripts=[example("stream_modify.py")])
        out, err, code = await curl("-0", "-D", "-", "-x", proxy.url, origin.url + "/")
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertEqual((code, body), (0, b"bar" * 1000), err)
        self.assertIsNone(header(head, b"content-length"))


class StreamChunksExampleTests(TestCase):
    """C{examples/complex/stream_chunks.py} hashes a body chunk by chunk."""

    async def test_body_unchanged_and_hashed(self) -> None:
        """The body passes unchanged and its SHA-256 is in flow.metadata when response runs."""
        body = os.urandom(300_000)
        origin = start_raw_origin(self, respond(200, body))
        spy = Spy(response=lambda flow: flow.metadata.get("sha256"))
        proxy = start_proxy(self, scripts=[example("stream_chunks.py")], addons=[spy])
        out, err, code = await curl("-x", proxy.url, origin.url + "/")
        self.assertEqual((code, out), (0, body), err)
        self.assertEqual(spy.seen["response"], [hashlib.sha256(body).hexdigest()])


class _Output(ProcessProtocol):
    """Collects a child's output and fires C{ended} when it exits."""

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)


class CommandLineTests(TestCase):
    """The example runs in a real C{python -m twisted_mitm -s ...} process."""

    async def test_stream_example_in_a_child_process(self) -> None:
        """python -m twisted_mitm -s examples/complex/stream.py relays a streamed download."""
        body = b"s" * 200_000
        origin = start_raw_origin(self, respond(200, body, [("Content-Type", "application/octet-stream")]))
        child = _Output()
        arguments = [sys.executable, "-m", "twisted_mitm", "-p", "0", "--set", f"confdir={shared_confdir()}", "-s", example("stream.py")]
        process = reactor.spawnProcess(child, sys.executable, arguments, env={**os.environ, "PYTHONPATH": ROOT}, path=ROOT)

        async def stop() -> None:
            if not child.ended.called:
                process.signalProcess("KILL")
                await child.ended

        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
        await wait_until(lambda: re.search(rb"listening on 127\.0\.0\.1:(\d+)", child.output) or child.ended.called, timeout=20, what="the proxy to listen")
        match = re.search(rb"listening on 127\.0\.0\.1:(\d+)", child.output)
        self.assertIsNotNone(match, child.output)
        assert match is not None
        out, err, code = await curl("-x", f"http://127.0.0.1:{int(match[1])}", origin.url + "/")
        self.assertEqual((code, out), (0, body), err)
        await wait_until(lambda: b"(streamed)" in child.output, what="the flow line")
        process.signalProcess("TERM")
        await child.ended

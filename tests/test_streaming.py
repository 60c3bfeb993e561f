# -*- test-case-name: tests.test_streaming -*-
"""Body streaming end to end over loopback (SPEC §4): the decision, both directions,
transforms, what is recorded, failures mid-stream, and the pipe's backpressure."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from tests.support import RawClient, curl, echo_body, raw_client, reactor, origin_ca_path, origin_certificate, respond, start_body_origin, start_proxy, start_raw_origin, wait_until
from twisted_mitm import http1
from twisted_mitm.proxy.pipe import BodyPipe, ChunkedWriter, LengthWriter, ReaderPump
from twisted_mitm.proxy.transform import GeneratorTransform

Flow = Any


class Spy:
    """An addon that records the hooks it sees and runs what a test asks it to."""

    name = "spy"

    def __init__(self, **actions: Callable[[Flow], object]) -> None:
        self.actions = actions
        self.calls: list[str] = []
        self.flows: list[Flow] = []
        self.seen: dict[str, list[object]] = {}

    def _run(self, hook: str, flow: Flow) -> None:
        self.calls.append(hook)
        if flow not in self.flows:
            self.flows.append(flow)
        action = self.actions.get(hook)
        if action is not None:
            self.seen.setdefault(hook, []).append(action(flow))

    def requestheaders(self, flow: Flow) -> None:
        self._run("requestheaders", flow)

    def request(self, flow: Flow) -> None:
        self._run("request", flow)

    def responseheaders(self, flow: Flow) -> None:
        self._run("responseheaders", flow)

    def response(self, flow: Flow) -> None:
        self._run("response", flow)

    def error(self, flow: Flow) -> None:
        self._run("error", flow)


def get(origin: Any, path: str = "/", version: bytes = b"HTTP/1.1", method: bytes = b"GET", extra: bytes = b"") -> bytes:
    """A raw request for C{path} on C{origin}, in absolute form for the proxy."""
    return b"%s %s%s %s\r\nHost: 127.0.0.1:%d\r\n%s\r\n" % (method, origin.url.encode(), path.encode(), version, origin.port, extra)


def split_response(raw: bytes) -> tuple[bytes, bytes]:
    """The head (without the blank line) and the raw body of the first final response in C{raw}."""
    while raw.startswith(b"HTTP/1.1 1"):
        raw = raw.partition(b"\r\n\r\n")[2]
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, body


def dechunk(body: bytes) -> tuple[list[bytes], bool]:
    """The chunks of a raw chunked body, and whether its terminating zero-chunk arrived."""
    chunks = []
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return chunks, rest.startswith(b"\r\n")
        chunks.append(rest[:size])
        body = rest[size + 2 :]
    return chunks, False


def header(head: bytes, name: bytes) -> bytes | None:
    """The value of the field C{name} in a raw head, if present."""
    match = re.search(rb"\r\n" + name + rb": *([^\r]*)", head, re.IGNORECASE)
    return match[1] if match else None


def length_response(body: bytes, extra: bytes = b"") -> bytes:
    """A raw 200 response with a Content-Length body."""
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def chunk(data: bytes) -> bytes:
    """One chunk of chunked transfer coding."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def captured_logs(test: TestCase) -> list[dict[str, Any]]:
    """Every log event emitted until the test ends."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    test.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


def log_text(events: list[dict[str, Any]]) -> str:
    """The formatted text of captured log events, one per line."""
    return "\n".join(formatEvent(event) for event in events)


class Holding:
    """An origin handler that keeps the connection so the test can write when it likes."""

    def __init__(self, first: bytes = b"") -> None:
        self.first = first
        self.protocols: list[Any] = []

    def __call__(self, protocol: Any, head: bytes) -> None:
        self.protocols.append(protocol)
        protocol.transport.write(self.first)

    def write(self, data: bytes) -> None:
        self.protocols[-1].transport.write(data)

    def close(self) -> None:
        self.protocols[-1].transport.loseConnection()

    def abort(self) -> None:
        self.protocols[-1].transport.abortConnection()


class DecisionTests(TestCase):
    """Which bodies stream (SPEC §4, stream_large_bodies)."""

    async def test_declared_large_bodies_stream_from_the_headers_hooks(self) -> None:
        """A Content-Length above SIZE makes .stream True before requestheaders/responseheaders run."""
        body = b"r" * 5000
        origin = start_raw_origin(self, respond(200, body))
        spy = Spy(
            requestheaders=lambda flow: flow.request.stream,
            responseheaders=lambda flow: flow.response.stream,
            request=lambda flow: flow.request.content,
            response=lambda flow: flow.response.content,
        )
        proxy = start_proxy(self, options=["stream_large_bodies=4k"], addons=[spy])
        out, err, code = await curl("-x", proxy.url, "--data-binary", "u" * 5000, origin.url + "/")
        self.assertEqual((code, out), (0, body), err)
        self.assertEqual(spy.seen["requestheaders"], [True])
        self.assertEqual(spy.seen["responseheaders"], [True])
        self.assertEqual(spy.seen["request"], [b""])
        self.assertEqual(spy.seen["response"], [b""])
        self.assertEqual(b"".join(origin.received).partition(b"\r\n\r\n")[2], b"u" * 5000)

    async def test_size_suffixes_and_boundary(self) -> None:
        """SIZE takes k/m/g suffixes and a body of exactly SIZE bytes is buffered."""
        origin = start_raw_origin(self, respond(200, b"x" * 1024))
        spy = Spy(responseheaders=lambda flow: flow.response.stream, response=lambda flow: flow.response.content)
        proxy = start_proxy(self, options=["stream_large_bodies=1k"], addons=[spy])
        out, err, code = await curl("-x", proxy.url, origin.url + "/")
        self.assertEqual((code, out), (0, b"x" * 1024), err)
        self.assertEqual(spy.seen["responseheaders"], [False])
        self.assertEqual(spy.seen["response"], [b"x" * 1024])
        self.assertEqual(proxy.master.options.stream_large_bodies, "1k")
        for value, expected in (("2K", 2048), ("3m", 3 << 20), ("1g", 1 << 30), ("1", 1)):
            proxy.master.options.update(stream_large_bodies=value)
            self.assertEqual(proxy.service.context.settings.stream_large_bodies, expected)

    async def test_hook_turns_streaming_off(self) -> None:
        """A responseheaders hook setting .stream = False gets the whole body in response, modifiable."""
        origin = start_raw_origin(self, respond(200, b"a" * 3000))

        def response(flow: Flow) -> bytes:
            content = flow.response.content
            flow.response.content = b"changed"
            return content

        spy = Spy(responseheaders=lambda flow: setattr(flow.response, "stream", False), response=response)
        proxy = start_proxy(self, options=["stream_large_bodies=1k"], addons=[spy])
        out, err, code = await curl("-x", proxy.url, origin.url + "/")
        self.assertEqual((code, out), (0, b"changed"), err)
        self.assertEqual(spy.seen["response"], [b"a" * 3000])

    async def test_hook_replaces_stream_with_transform(self) -> None:
        """A responseheaders hook may replace .stream = True with a transform."""
        origin = start_raw_origin(self, respond(200, b"abc" * 1000))
        spy = Spy(responseheaders=lambda flow: setattr(flow.response, "stream", bytes.upper))
        proxy = start_proxy(self, options=["stream_large_bodies=1k"], addons=[spy])
        out, err, code = await curl("-x", proxy.url, origin.url + "/")
        self.assertEqual((code, out), (0, b"ABC" * 1000), err)

    async def test_small_bodies_buffered_and_modifiable(self) -> None:
        """At or below SIZE bodies of every framing are buffered and the response hook can rewrite them."""
        answers = {
            b"/length": length_response(b"small"),
            b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"sm") + chunk(b"all") + b"0\r\n\r\n",
            b"/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsmall",
        }

        def handler(protocol: Any, head: bytes) -> None:
            path = head.split(b" ")[1]
            protocol.transport.write(answers[path])
            if path == b"/close":
                protocol.transport.loseConnection()

        origin = start_raw_origin(self, handler)

        def response(flow: Flow) -> bytes:
            content = flow.response.content
            flow.response.content = content.upper()
            return content

        spy = Spy(response=response)
        proxy = start_proxy(self, options=["stream_large_bodies=1k"], addons=[spy])
        for path in answers:
            out, err, code = await curl("-x", proxy.url, origin.url + path.decode())
            self.assertEqual((code, out), (0, b"SMALL"), (path, err))
        self.assertEqual(spy.seen["response"], [b"small"] * 3)

    async def test_unknown_length_buffered_until_size_then_streamed(self) -> None:
        """A chunked body is buffered until it passes SIZE, then what was buffered goes first and the rest streams."""
        origin = start_raw_origin(self, Holding(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
        spy = Spy(responseheaders=lambda flow: flow.response.stream, response=lambda flow: flow.response.content)
        proxy = start_proxy(self, options=["stream_large_bodies=1k"], addons=[spy])
        client = await raw_client(self, proxy.port)
        client.transport.write(get(origin))
        await wait_until(lambda: origin.connections, what="the request at the origin")
        handler = origin.connections[-1]
        handler.transport.write(chunk(b"a" * 600))
        await wait_until(lambda: spy.calls == ["requestheaders", "request", "responseheaders"], what="responseheaders")
        self.assertEqual(client.data, b"")
        handler.transport.write(chunk(b"b" * 600))
        await wait_until(lambda: b"b" * 600 in client.data, what="the streamed part")
        self.assertLess(client.data.index(b"a" * 600), client.data.index(b"b" * 600))
        self.assertNotIn("response", spy.calls)
        handler.transport.write(chunk(b"c" * 10) + b"0\r\n\r\n")
        await wait_until(lambda: "response" in spy.calls, what="the response hook")
        await wait_until(lambda: dechunk(split_response(client.data)[1])[1], what="the end of the body")
        chunks, complete = dechunk(split_response(client.data)[1])
        self.assertEqual(b"".join(chunks), b"a" * 600 + b"b" * 600 + b"c" * 10)
        self.assertEqual(spy.seen["responseheaders"], [False])
        self.assertEqual(spy.seen["response"], [b""])
        self.assertEqual(spy.flows[0].metadata["response_body_size"], 1210)
        self.assertTrue(spy.flows[0].response.stream)

    async def test_bodiless_request_tagged_for_streaming(self) -> None:
        """A GET without a body tagged .stream = True goes upstream without one, then the next request is served."""
        origin = start_raw_origin(self, respond(200, b"fine"))
        spy = Spy(requestheaders=lambda flow: setattr(flow.request, "stream", True))
        proxy = start_proxy(self, addons=[spy])
        for _ in range(2):
            out, err, code = await curl("-x", proxy.url, origin.url + "/")
            self.assertEqual((code, out), (0, b"fine"), err)
        for head in origin.requests:
            self.assertIsNone(header(head, b"transfer-encoding"), head)
            self.assertIsNone(header(head, b"content-length"), head)
        self.assertEqual(b"".join(origin.received), b"".join(origin.requests))

    async def test_bodiless_responses(self) -> None:
        """HEAD, 204, 304 and empty responses with a large Content-Length pass without waiting for a body."""

        def handler(protocol: Any, head: bytes) -> None:
            method, path = head.split(b" ")[:2]
            if path == b"/204":
                protocol.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            elif path == b"/304":
                protocol.transport.write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99999\r\n\r\n")
            elif path == b"/empty":
                protocol.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            else:
                protocol.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n")

        origin = start_raw_origin(self, handler)
        spy = Spy(response=lambda flow: flow.response.status_code)
        proxy = start_proxy(self, options=["stream_large_bodies=1k"], addons=[spy])
        client = await raw_client(self, proxy.port)
        client.transport.write(
            get(origin, "/head", method=b"HEAD") + get(origin, "/204") + get(origin, "/304") + get(origin, "/empty")
        )
        await wait_until(lambda: len(spy.calls) == 16 and client.data.count(b"HTTP/1.1") == 4, what="four responses")
        raw = client.data
        self.assertEqual([int(status) for status in re.findall(rb"HTTP/1.1 (\d+)", raw)], [200, 204, 304, 200])
        self.assertTrue(raw.endswith(b"Content-Length: 0\r\n\r\n"), raw)
        self.assertFalse(client.closed.called)


class ResponseStreamingTests(TestCase):
    """Response bodies reach the client while the server is still sending them."""

    async def test_first_bytes_arrive_before_the_origin_continues(self) -> None:
        """The client receives the first 64 KiB while the origin holds back the rest."""
        first, rest = b"1" * 65536, b"2" * 65536
        holding = Holding(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(first + rest), first))
        origin = start_raw_origin(self, holding)
        proxy = start_proxy(self, options=["stream_large_bodies=1m"], addons=[Spy(responseheaders=lambda f: setattr(f.response, "stream", True))])
        client = await raw_client(self, proxy.port)
        client.transport.write(get(origin))
        await wait_until(lambda: split_response(client.data)[1] == first, timeout=2, what="the first 64 KiB")
        holding.write(rest)
        await wait_until(lambda: len(split_response(client.data)[1]) == len(first + rest), what="the rest")
        self.assertEqual(split_response(client.data)[1], first + rest)

    async def test_chunks_forwarded_one_by_one_with_their_boundaries(self) -> None:
        """Each chunk reaches the client before the origin sends the next, with the origin's exact framing."""
        holding = Holding(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        origin = start_raw_origin(self, holding)
        spy = Spy(responseheaders=lambda flow: setattr(flow.response, "stream", True))
        proxy = start_proxy(self, addons=[spy])
        client = await raw_client(self, proxy.port)
        client.transport.write(get(origin))
        await wait_until(lambda: holding.protocols, what="the request at the origin")
        sent = b""
        for data in (b"hello", b"x" * 3000, b"y" * 300_000, b"z"):
            sent += chunk(data)
            holding.write(chunk(data))
            await wait_until(lambda: split_response(client.data)[1] == sent, what=f"a chunk of {len(data)}")
        holding.write(b"0\r\nX-Trailer: t\r\n\r\n")
        sent += b"0\r\nX-Trailer: t\r\n\r\n"
        await wait_until(lambda: split_response(client.data)[1] == sent, what="the last chunk and trailers")
        head = split_response(client.data)[0]
        self.assertEqual(header(head, b"transfer-encoding"), b"chunked")

    async def test_read_until_close_rechunked_for_http11(self) -> None:
        """A read-until-close body streams to an HTTP/1.1 client in chunked coding, complete at the end."""
        holding = Holding(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one,")
        origin = start_raw_origin(self, holding)
        proxy = start_proxy(self, addons=[Spy(responseheaders=lambda f: setattr(f.response, "stream", True))])
        client = await raw_client(self, proxy.port)
        client.transport.write(get(origin))
        await wait_until(lambda: b"part one," in client.data, what="the first part")
        holding.write(b" part two")
        holding.close()
        await wait_until(lambda: client.closed.called or dechunk(split_response(client.data)[1])[1], what="the end")
        head, body = split_response(client.data)
        self.assertEqual(header(head, b"transfer-encoding"), b"chunked")
        self.assertIsNone(header(head, b"content-length"))
        self.assertEqual(dechunk(body), ([b"part one,", b" part two"], True))

    async def test_read_until_close_close_delimited_for_http10(self) -> None:
        """To an HTTP/1.0 client a read-until-close body stays close-delimited."""
        holding = Holding(b"HTTP/1.1 200 OK\r\n\r\nfirst ")
        origin = start_raw_origin(self, holding)
        proxy = start_proxy(self, addons=[Spy(responseheaders=lambda f: setattr(f.response, "stream", True))])
        client = await raw_client(self, proxy.port)
        client.transport.write(get(origin, version=b"HTTP/1.0"))
        await wait_until(lambda: b"first " in client.data, what="the first part")
        holding.write(b"second")
        holding.close()
        await wait_until(lambda: client.closed.called, what="the connection's end")
        head, body = split_response(client.data)
        self.assertIsNone(header(head, b"transfer-encoding"))
        self.assertIsNone(header(head, b"content-length"))
        self.assertEqual(body, b"first second")


class RequestStreamingTests(TestCase):
    """Request bodies reach the server while the client is still sending them."""

    async def test_upload_reaches_origin_before_client_finishes(self) -> None:
        """The origin sees the first bytes of an upload while the client still holds back the rest."""
        received: list[bytes] = []

        def handler(protocol: Any, head: bytes) -> None:
            received.append(head)

        origin = start_raw_origin(self, handler)
        proxy = start_proxy(self, options=["stream_large_bodies=64k"])
        client = await raw_client(self, proxy.port)
        total = 1 << 20
        client.transport.write(get(origin, method=b"POST", extra=b"Content-Length: %d\r\n" % total) + b"u" * 100_000)
        await wait_until(lambda: received and len(origin.connections[0].buffer) >= 50_000, what="the first upload bytes at the origin")
        self.assertLess(len(origin.connections[0].buffer), total)
        client.transport.write(b"v" * (total - 100_000))
        await wait_until(lambda: len(origin.connections[0].buffer) == total, what="the whole upload")
        self.assertEqual(origin.connections[0].buffer, b"u" * 100_000 + b"v" * (total - 100_000))
        origin.connections[0].transport.write(length_response(b"stored"))
        await wait_until(lambda: client.data.endswith(b"stored"), what="the response")

    async def test_expect_100_continue_relayed(self) -> None:
        """The origin sees Expect: 100-continue and the client receives the origin's own 100 Continue."""
        holding = Holding(b"HTTP/1.1 100 Continue\r\nX-From: origin\r\n\r\n")
        origin = start_raw_origin(self, holding)
        proxy = start_proxy(self, options=["stream_large_bodies=1k"])
        client = await raw_client(self, proxy.port)
        client.transport.write(get(origin, method=b"PUT", extra=b"Content-Length: 5000\r\nExpect: 100-continue\r\n"))
        await wait_until(lambda: b"\r\n\r\n" in client.data, what="the interim response")
        self.assertTrue(client.data.startswith(b"HTTP/1.1 100 Continue\r\nX-From: origin\r\n\r\n"), client.data)
        self.assertEqual(header(origin.requests[0], b"expect"), b"100-continue")
        client.transport.write(b"e" * 5000)
        await wait_until(lambda: len(origin.connections[0].buffer) == 5000, what="the body at the origin")
        holding.write(length_response(b"done"))
        await wait_until(lambda: client.data.endswith(b"done"), what="the final response")

    async def test_early_response_ends_the_upload_cleanly(self) -> None:
        """A 413 sent before the upload ends reaches the client, its connection closes, and the proxy serves others."""

        def handler(protocol: Any, head: bytes) -> None:
            if head.startswith(b"POST"):
                protocol.transport.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!")
                protocol.transport.loseConnection()
            else:
                protocol.transport.write(length_response(b"still here"))

        origin = start_raw_origin(self, handler)
        spy = Spy()
        proxy = start_proxy(self, options=["stream_large_bodies=1k"], addons=[spy])
        client = await raw_client(self, proxy.port)
        client.transport.write(get(origin, method=b"POST", extra=b"Content-Length: 10000000\r\n") + b"p" * 200_000)
        await wait_until(lambda: b"too big!" in client.data, what="the early response")
        self.assertTrue(client.data.startswith(b"HTTP/1.1 413 "), client.data)
        for _ in range(20):
            if client.closed.called:
                break
            client.transport.write(b"p" * 65536)
            await wait_until(lambda: True)
        await wait_until(lambda: client.closed.called, what="the client connection to close")
        out, err, code = await curl("-x", proxy.url, origin.url + "/other")
        self.assertEqual((code, out), (0, b"still here"), err)

    async def test_early_response_with_curl(self) -> None:
        """curl uploading a large file gets the origin's early 413, not a connection error."""

        def handler(protocol: Any, head: bytes) -> None:
            protocol.transport.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!")
            protocol.transport.loseConnection()

        origin = start_raw_origin(self, handler)
        proxy = start_proxy(self, options=["stream_large_bodies=1k"])
        path = self.mktemp()
        with open(path, "wb") as upload:
            upload.write(b"q" * (8 << 20))
        out, err, code = await curl("-x", proxy.url, "-H", "Expect:", "--data-binary", "@" + path, "-w", "%{http_code}", origin.url + "/")
        self.assertEqual(out, b"too big!413", err)


def carry_over_replace(old: bytes, new: bytes) -> Callable[[Iterator[bytes]], Iterator[bytes]]:
    """A generator transform replacing C{old} with C{new}, even across chunk boundaries."""

    def modify(chunks: Iterator[bytes]) -> Iterator[bytes]:
        carry = b""
        for piece in chunks:
            data = (carry + piece).replace(old, new)
            keep = len(old) - 1
            data, carry = data[: len(data) - keep], data[len(data) - keep :]
            if data:
                yield data
        if carry:
            yield carry

    return modify


class TransformTests(TestCase):
    """.stream = callable rewrites a streamed body, with framing fixed."""

    async def _through(self, stream: object, pieces: list[bytes], version: bytes = b"HTTP/1.1", chunked: bool = True) -> tuple[bytes, bytes, RawClient]:
        """Send C{pieces} from the origin, one at a time, through a response transform; the client's head and body."""
        total = sum(map(len, pieces))
        start = b"HTTP/1.1 200 OK\r\n" + (b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: %d\r\n\r\n" % total)
        holding = Holding(start)
        origin = start_raw_origin(self, holding)
        spy = Spy(responseheaders=lambda flow: setattr(flow.response, "stream", stream))
        proxy = start_proxy(self, addons=[spy])
        client = await raw_client(self, proxy.port)
        client.transport.write(get(origin, version=version))
        await wait_until(lambda: holding.protocols, what="the request at the origin")
        for piece in pieces:
            holding.write(chunk(piece) if chunked else piece)
            await wait_until(lambda: True)
        if chunked:
            holding.write(b"0\r\n\r\n")
        await wait_until(lambda: "response" in spy.calls or "error" in spy.calls, what="the end of the flow")
        if version == b"HTTP/1.0":
            await wait_until(lambda: client.closed.called, what="the connection's end")
        head, body = split_response(client.data)
        return head, body, client

    async def test_generator_transform_with_carry_over(self) -> None:
        """The seed's generator form rewrites a pattern split across chunks; the client gets chunked coding."""
        head, body, _ = await self._through(carry_over_replace(b"foobar", b"FOO-BAR"), [b"xx foo", b"bar yy fo", b"obar", b" end"])
        self.assertEqual(header(head, b"transfer-encoding"), b"chunked")
        self.assertIsNone(header(head, b"content-length"))
        chunks, complete = dechunk(body)
        self.assertTrue(complete)
        self.assertEqual(b"".join(chunks), b"xx FOO-BAR yy FOO-BAR end")

    async def test_chunk_function_changes_length(self) -> None:
        """A per-chunk function on a Content-Length body is called with b"" at the end; the length becomes chunked."""
        calls: list[bytes] = []

        def double(data: bytes) -> bytes:
            calls.append(data)
            return data * 2 if data else b"!"

        head, body, _ = await self._through(double, [b"ab", b"cd"], chunked=False)
        self.assertEqual(header(head, b"transfer-encoding"), b"chunked")
        self.assertIsNone(header(head, b"content-length"))
        self.assertEqual((calls[-1], b"".join(calls)), (b"", b"abcd"))
        self.assertEqual(dechunk(body), ([data * 2 for data in calls[:-1]] + [b"!"], True))

    async def test_chunk_function_returning_iterable_to_http10(self) -> None:
        """A per-chunk function may return an iterable; an HTTP/1.0 client gets a close-delimited body."""
        head, body, client = await self._through(lambda data: [data, b"|"] if data else [b"<end>"], [b"one", b"two"], version=b"HTTP/1.0")
        self.assertIsNone(header(head, b"transfer-encoding"))
        self.assertIsNone(header(head, b"content-length"))
        self.assertEqual(body, b"one|two|<end>")
        self.assertTrue(client.closed.called)

    async def test_request_transforms(self) -> None:
        """Both forms rewrite uploads; the origin receives a chunked request with the new bytes."""
        transforms = {
            "/generator": carry_over_replace(b"secret", b"******"),
            "/function": lambda data: data.replace(b"s", b"$"),
        }
        origin = start_body_origin(self, echo_body)
        spy = Spy(requestheaders=lambda flow: setattr(flow.request, "stream", transforms[flow.request.path]))
        proxy = start_proxy(self, addons=[spy])
        outputs = []
        for path in transforms:
            out, err, code = await curl("-x", proxy.url, "--data-binary", "a secret: sss", origin.url + path)
            self.assertEqual(code, 0, err)
            outputs.append(out)
        self.assertEqual(outputs, [b"a ******: sss", b"a $ecret: $$$"])
        self.assertEqual([header(head, b"transfer-encoding") for head in origin.requests], [b"chunked", b"chunked"])
        self.assertEqual([header(head, b"content-length") for head in origin.requests], [None, None])

    async def test_failing_transform_aborts_only_its_flow(self) -> None:
        """A transform that raises cuts the client's connection short and calls error; other clients are served."""

        def explode(chunks: Iterator[bytes]) -> Iterator[bytes]:
            for index, piece in enumerate(chunks):
                if index == 3:
                    raise ValueError("transform broke")
                yield piece

        def broken_function(data: bytes) -> bytes:
            if b"3" in data:
                raise ValueError("function broke")
            return data

        def handler(protocol: Any, head: bytes) -> None:
            protocol.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for index in range(6):
                protocol.transport.write(chunk(b"%d" % index * 100))
            protocol.transport.write(b"0\r\n\r\n")

        origin = start_raw_origin(self, handler)
        transforms = {"/generator": explode, "/function": broken_function, "/plain": True}
        spy = Spy(responseheaders=lambda flow: setattr(flow.response, "stream", transforms[flow.request.path]), error=lambda flow: flow.error.msg)
        proxy = start_proxy(self, addons=[spy])
        for path in ("/generator", "/function"):
            out, err, code = await curl("-x", proxy.url, origin.url + path)
            self.assertIn(code, (18, 56), err)
            self.assertNotEqual(out, b"".join(b"%d" % index * 100 for index in range(6)))
        out, err, code = await curl("-x", proxy.url, origin.url + "/plain")
        self.assertEqual((code, out), (0, b"".join(b"%d" % index * 100 for index in range(6))), err)
        self.assertEqual(len(spy.seen["error"]), 2)
        self.assertIn("transform broke", spy.seen["error"][0])
        self.assertIn("function broke", spy.seen["error"][1])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 2)


    async def test_generator_failing_mid_body_fails_at_once(self) -> None:
        """A generator raising while the origin still holds the rest of the body cuts the flow without waiting for the end."""

        def explode(chunks: Iterator[bytes]) -> Iterator[bytes]:
            yield next(chunks)
            next(chunks)
            raise ValueError("gave up")

        holding = Holding(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"first"))
        origin = start_raw_origin(self, holding)
        spy = Spy(responseheaders=lambda flow: setattr(flow.response, "stream", explode), error=lambda flow: flow.error.msg)
        proxy = start_proxy(self, addons=[spy])
        client = await raw_client(self, proxy.port)
        client.send(get(origin))
        await wait_until(lambda: b"first" in client.data, what="the first chunk")
        holding.write(chunk(b"second"))
        await wait_until(lambda: client.closed.called, what="the client connection to be cut")
        await wait_until(lambda: origin.lost, what="the origin connection to close")
        self.assertEqual(dechunk(split_response(client.data)[1]), ([b"first"], False))
        self.assertIn("gave up", spy.seen["error"][0])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)


class RecordingTests(TestCase):
    """Streamed bodies are not recorded, but the flow keeps sizes, timings and hooks."""

    async def test_streamed_flow_hooks_sizes_and_log_line(self) -> None:
        """Hooks run after the stream with empty bodies, content changes are ignored with a warning, and sizes are kept."""
        events = captured_logs(self)
        origin = start_raw_origin(self, respond(200, b"d" * 7000))

        def response(flow: Flow) -> tuple[bytes, float | None]:
            flow.response.content = b"ignored"
            return flow.request.content, flow.response.timestamp_end

        spy = Spy(response=response, request=lambda flow: flow.request.content)
        proxy = start_proxy(self, options=["stream_large_bodies=2k"], addons=[spy])
        out, err, code = await curl("-x", proxy.url, "--data-binary", "q" * 3000, origin.url + "/")
        self.assertEqual((code, out), (0, b"d" * 7000), err)
        flow = spy.flows[0]
        self.assertEqual(spy.calls, ["requestheaders", "request", "responseheaders", "response"])
        self.assertEqual(spy.seen["request"], [b""])
        self.assertEqual(spy.seen["response"][0][0], b"")
        self.assertIsNotNone(spy.seen["response"][0][1])
        self.assertEqual((flow.metadata["request_body_size"], flow.metadata["response_body_size"]), (3000, 7000))
        self.assertEqual(flow.response.raw_content, b"")
        text = log_text(events)
        self.assertIn("streamed bodies cannot be modified", text)
        self.assertRegex(text, r"POST http://127\.0\.0\.1:\d+/ << 200 Whatever 6\.8k \(streamed\)")


class MidStreamFailureTests(TestCase):
    """A stream cut short never looks complete (SPEC §4)."""

    async def _origin_dies(self, start: bytes, sent: bytes) -> tuple[bytes, Spy]:
        holding = Holding(start + sent)
        origin = start_raw_origin(self, holding)
        spy = Spy(responseheaders=lambda flow: setattr(flow.response, "stream", True), error=lambda flow: flow.error.msg)
        proxy = start_proxy(self, addons=[spy])
        client = await raw_client(self, proxy.port)
        client.transport.write(get(origin))
        await wait_until(lambda: split_response(client.data)[1], what="the first body bytes")
        holding.abort()
        await wait_until(lambda: client.closed.called, what="the client connection to be cut")
        await wait_until(lambda: "error" in spy.calls, what="the error hook")
        return split_response(client.data)[1], spy

    async def test_origin_dies_mid_length_body(self) -> None:
        """The client's connection closes short of the declared Content-Length, and error runs."""
        body, spy = await self._origin_dies(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b"x" * 30000)
        self.assertEqual(body, b"x" * 30000)
        self.assertIn("closed", spy.seen["error"][0])

    async def test_origin_dies_mid_chunked_body(self) -> None:
        """The client gets no terminating zero-chunk, and error runs."""
        body, spy = await self._origin_dies(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunk(b"c" * 1000))
        self.assertEqual(dechunk(body), ([b"c" * 1000], False))
        self.assertEqual(len(spy.seen["error"]), 1)

    async def test_client_goes_away_mid_download(self) -> None:
        """When the client disconnects mid-body the origin connection is closed and error runs."""
        holding = Holding(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        origin = start_raw_origin(self, holding)
        spy = Spy(responseheaders=lambda flow: setattr(flow.response, "stream", True), error=lambda flow: flow.error.msg)
        proxy = start_proxy(self, addons=[spy])
        client = await raw_client(self, proxy.port)
        client.transport.write(get(origin))
        await wait_until(lambda: b"x" * 1000 in client.data, what="the first body bytes")
        client.transport.abortConnection()
        await wait_until(lambda: origin.lost, what="the origin connection to close")
        await wait_until(lambda: "error" in spy.calls, what="the error hook")
        self.assertIn("client disconnected", spy.seen["error"][0])

    async def test_client_goes_away_mid_upload(self) -> None:
        """When the client disconnects mid-upload the origin connection is closed and error runs."""
        origin = start_raw_origin(self, lambda protocol, head: None)
        spy = Spy(error=lambda flow: flow.error.msg)
        proxy = start_proxy(self, options=["stream_large_bodies=1k"], addons=[spy])
        client = await raw_client(self, proxy.port)
        client.transport.write(get(origin, method=b"POST", extra=b"Content-Length: 100000\r\n") + b"u" * 5000)
        await wait_until(lambda: origin.connections and len(origin.connections[0].buffer) == 5000, what="the first upload bytes")
        client.transport.abortConnection()
        await wait_until(lambda: origin.lost, what="the origin connection to close")
        await wait_until(lambda: "error" in spy.calls, what="the error hook")


class TLSStreamingTests(TestCase):
    """Streaming works the same inside an intercepted HTTPS tunnel."""

    def setUp(self) -> None:
        self.options = [f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}", "stream_large_bodies=1m"]
        self.tls = origin_certificate("localhost", "127.0.0.1")

    async def test_download(self) -> None:
        """A large HTTPS response streams to curl intact and unrecorded."""
        body = os.urandom(3 << 20)
        origin = start_raw_origin(self, respond(200, body), tls=self.tls)
        spy = Spy(responseheaders=lambda flow: flow.response.stream, response=lambda flow: flow.response.content)
        proxy = start_proxy(self, options=self.options, addons=[spy])
        out, err, code = await curl("--cacert", proxy.ca_path, "-x", proxy.url, f"https://localhost:{origin.port}/")
        self.assertEqual((code, len(out), out == body), (0, len(body), True), err)
        self.assertEqual((spy.seen["responseheaders"], spy.seen["response"]), ([True], [b""]))
        self.assertEqual(spy.flows[0].metadata["response_body_size"], len(body))

    async def test_upload_with_transform(self) -> None:
        """A large HTTPS upload streams through a per-chunk transform to the origin, chunked."""
        upload = self.mktemp()
        with open(upload, "wb") as f:
            f.write(b"abc" * (1 << 20))
        holding = Holding()
        origin = start_raw_origin(self, holding, tls=self.tls)
        spy = Spy(requestheaders=lambda flow: setattr(flow.request, "stream", bytes.upper))
        proxy = start_proxy(self, options=self.options, addons=[spy])
        result = curl("--cacert", proxy.ca_path, "-x", proxy.url, "--data-binary", "@" + upload, f"https://localhost:{origin.port}/")
        await wait_until(lambda: b"".join(origin.received).endswith(b"\r\n0\r\n\r\n"), timeout=10, what="the upload")
        head, _, body = b"".join(origin.received).partition(b"\r\n\r\n")
        self.assertEqual(header(head, b"transfer-encoding"), b"chunked")
        chunks, complete = dechunk(body)
        self.assertEqual((b"".join(chunks), complete), (b"ABC" * (1 << 20), True))
        holding.write(length_response(b"got it"))
        out, err, code = await result
        self.assertEqual((code, out), (0, b"got it"), err)


class _Source:
    """A push producer standing in for a source pump, recording pause/resume."""

    def __init__(self, transport: StringTransport) -> None:
        self.transport = transport

    def pauseProducing(self) -> None:
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self.transport.stopProducing()


class BackpressureTests(TestCase):
    """The pipe pauses its source when the destination pushes back (SPEC §4, backpressure)."""

    def _pipe(self, transform: Any = None) -> tuple[BodyPipe, StringTransport, StringTransport, list[object]]:
        source_transport, destination = StringTransport(), StringTransport()
        pump = ReaderPump(http1.ResponseReader(), lambda event: None, lambda error: None)
        pump.attach(source_transport)
        outcome: list[object] = []
        pipe = BodyPipe(pump, ChunkedWriter(destination), lambda: outcome.append("done"), outcome.append, transform)
        return pipe, source_transport, destination, outcome

    def test_destination_pause_pauses_the_source_socket(self) -> None:
        """pauseProducing on the pipe pauses the source transport once its backlog passes high water; resume lets it go."""
        source_transport = StringTransport()
        events: list[object] = []
        pump = ReaderPump(http1.ResponseReader(), events.append, lambda error: None)
        pump.attach(source_transport)
        pump.reader.expect_response(b"GET")
        destination = StringTransport()
        pipe = BodyPipe(pump, LengthWriter(destination, 10_000_000), lambda: None, lambda reason: None)
        self.assertIs(destination.producer, pipe)
        self.assertTrue(destination.streaming)
        pump.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
        pipe.pauseProducing()
        self.assertEqual(source_transport.producerState, "producing")
        pump.data_received(b"x" * ReaderPump.high_water)
        self.assertEqual(source_transport.producerState, "paused")
        pipe.resumeProducing()
        self.assertEqual(source_transport.producerState, "producing")

    def test_destination_pause_holds_events(self) -> None:
        """While the destination is full the pump hands out no body events; they flow again on resume."""
        source_transport = StringTransport()
        destination = StringTransport()
        pipe_box: list[BodyPipe] = []

        def handle(event: object) -> None:
            if isinstance(event, http1.Data):
                pipe_box[0].write(event)

        pump = ReaderPump(http1.ResponseReader(), handle, lambda error: None)
        pump.attach(source_transport)
        pump.reader.expect_response(b"GET")
        pipe_box.append(BodyPipe(pump, LengthWriter(destination, 6), lambda: None, lambda reason: None))
        pump.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc")
        self.assertEqual(destination.value(), b"abc")
        pipe_box[0].pauseProducing()
        pump.data_received(b"def")
        self.assertEqual(destination.value(), b"abc")
        pipe_box[0].resumeProducing()
        self.assertEqual(destination.value(), b"abcdef")

    def test_stop_producing_reaches_the_source(self) -> None:
        """stopProducing on the pipe (the destination went away) stops the source."""
        source_transport, destination = StringTransport(), StringTransport()
        pipe = BodyPipe(_Source(source_transport), LengthWriter(destination, 10), lambda: None, lambda reason: None)
        pipe.stopProducing()
        self.assertEqual(source_transport.producerState, "stopped")

    async def test_generator_backlog_pauses_the_source(self) -> None:
        """A generator transform that falls behind pauses the source until it catches up."""
        gate = threading.Event()

        def slow(chunks: Iterator[bytes]) -> Iterator[bytes]:
            for piece in chunks:
                gate.wait(5)
                yield piece

        source_transport, destination = StringTransport(), StringTransport()
        outcome: list[object] = []
        pipe = BodyPipe(
            _Source(source_transport), ChunkedWriter(destination), lambda: outcome.append("done"), outcome.append, GeneratorTransform(slow, reactor)
        )
        for _ in range(GeneratorTransform.max_backlog):
            pipe.write(http1.Data(b"x"))
        self.assertEqual(source_transport.producerState, "paused")
        gate.set()
        pipe.finish(())
        await wait_until(lambda: outcome == ["done"], what="the transform to finish")
        self.assertEqual(source_transport.producerState, "producing")
        self.assertEqual(dechunk(destination.value()), ([b"x"] * GeneratorTransform.max_backlog, True))

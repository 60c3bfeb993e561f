# -*- test-case-name: tests.test_modifybody -*-
"""Tests for L{twisted_mitm.addons.modifybody}: C{modify_body} on buffered and streamed bodies."""

from __future__ import annotations

import gzip
import os
import sys
from typing import Any

from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from tests.flows import request_flow, response_flow
from tests.support import curl, echo_body, listen, respond, rss, start_body_origin, start_proxy, start_raw_origin
from twisted_mitm.addons.modifybody import BodyRewriter, ModifyBody, parse_body_rule
from twisted_mitm.http import Headers, HTTPFlow, Response
from twisted_mitm.master import Master
from twisted_mitm.options import default_options


def live(flow: HTTPFlow) -> HTTPFlow:
    """The flow, marked as being under way (addons leave finished flows alone)."""
    flow.live = True
    return flow


def chunked_response_flow() -> HTTPFlow:
    """A live flow whose response announces a chunked body (length unknown), not read yet."""
    flow = live(request_flow())
    flow.response = Response(b"HTTP/1.1", 200, b"OK", Headers([(b"Transfer-Encoding", b"chunked")]), b"", None, 3.0, None)
    return flow


class ParseTests(SynchronousTestCase):
    """L{parse_body_rule}."""

    def test_bad_regex(self) -> None:
        """An invalid regex is refused with its reason."""
        with self.assertRaises(ValueError) as caught:
            parse_body_rule("/~s/[/x")
        self.assertIn("invalid regular expression '['", str(caught.exception))

    def test_bad_group_reference(self) -> None:
        """A replacement naming a group the regex lacks is refused at once."""
        with self.assertRaises(ValueError) as caught:
            parse_body_rule(r"/(a)/\\2")
        self.assertIn("invalid group reference 2", str(caught.exception))


class _AddonCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.master = Master(default_options(), shutdown=lambda: None)
        self.addon = ModifyBody()
        self.master.addons.add(self.addon)


class BufferedTests(_AddonCase):
    """Buffered bodies, rewritten in the request and response hooks as mitmproxy does."""

    def test_request_and_response(self) -> None:
        """A rule applies to the request in request and to the response in response, when its filter matches."""
        self.master.options.set("modify_body=/~q/content/CHANGED", "modify_body=/~s/message/REPLACED")
        request = live(request_flow())
        self.addon.request(request)
        response = live(response_flow())
        self.addon.response(response)
        self.assertEqual((request.request.content, response.response.content), (b"CHANGED", b"REPLACED"))
        self.assertEqual(response.response.headers["content-length"], "8")

    def test_rules_in_order(self) -> None:
        """Each rule works on what the previous ones left."""
        self.master.options.set("modify_body=/message/one", "modify_body=/one/two")
        flow = live(response_flow())
        self.addon.response(flow)
        self.assertEqual(flow.response.content, b"two")

    def test_group_reference(self) -> None:
        """The replacement is a template; the option text is unescaped first, so a group is C{\\\\1}."""
        self.master.options.set(r"modify_body=/(mes)(sage)/\\2\\1")
        flow = live(response_flow())
        self.addon.response(flow)
        self.assertEqual(flow.response.content, b"sagemes")

    def test_replacement_file_taken_literally(self) -> None:
        """An C{@path} replacement is the file's bytes, backslashes and all."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(rb"a\1\d")
        self.master.options.set(f"modify_body=|message|@{path}")
        flow = live(response_flow())
        self.addon.response(flow)
        self.assertEqual(flow.response.content, rb"a\1\d")

    def test_encoded_body(self) -> None:
        """A gzip body is decoded, rewritten and encoded again."""
        self.master.options.set("modify_body=/hello/bye")
        flow = live(response_flow())
        flow.response.headers["content-encoding"] = "gzip"
        flow.response.raw_content = gzip.compress(b"hello world")
        self.addon.response(flow)
        self.assertEqual(flow.response.headers["content-encoding"], "gzip")
        self.assertEqual(gzip.decompress(flow.response.raw_content), b"bye world")

    def test_no_match_leaves_body_as_sent(self) -> None:
        """When nothing matches, the body (and its encoding) are not touched."""
        self.master.options.set("modify_body=/absent/x")
        flow = live(response_flow())
        flow.response.headers["content-encoding"] = "gzip"
        raw = flow.response.raw_content = gzip.compress(b"hello", mtime=1)
        self.addon.response(flow)
        self.assertIs(flow.response.raw_content, raw)


class StreamedTests(_AddonCase):
    """Streamed bodies get a L{BodyRewriter} in the headers hooks."""

    def test_declared_large_body(self) -> None:
        """A response already marked to stream gets the matching rules as its transform."""
        self.master.options.set("modify_body=/~s/a/b", "modify_body=/~q/c/d", "modify_body=/~d address/e/f")
        flow = live(response_flow())
        flow.response.stream = True
        self.addon.responseheaders(flow)
        rewriter = flow.response.stream
        assert isinstance(rewriter, BodyRewriter)
        self.assertEqual(len(rewriter.substitutions), 2)
        self.assertEqual(rewriter(b"xa ce") + rewriter(b""), b"xb cf")

    def test_unknown_length_streams_through_rules(self) -> None:
        """With stream_large_bodies set, a chunked body gets the transform from its first byte."""
        self.master.options.set("modify_body=/a/b", "stream_large_bodies=1m")
        flow = chunked_response_flow()
        self.addon.responseheaders(flow)
        self.assertIsInstance(flow.response.stream, BodyRewriter)

    def test_chunked_request(self) -> None:
        """The same holds for a chunked request, in requestheaders."""
        self.master.options.set("modify_body=/a/b", "stream_large_bodies=1m")
        flow = live(request_flow())
        flow.request.headers = Headers([(b"Transfer-Encoding", b"chunked")])
        self.addon.requestheaders(flow)
        self.assertIsInstance(flow.request.stream, BodyRewriter)

    def test_buffered_bodies_stay_buffered(self) -> None:
        """No transform when nothing will stream: stream_large_bodies unset, or a declared small length."""
        self.master.options.set("modify_body=/a/b")
        unknown = chunked_response_flow()
        self.addon.responseheaders(unknown)
        self.master.options.set("stream_large_bodies=1m")
        small = live(response_flow())
        self.addon.responseheaders(small)
        self.assertEqual((unknown.response.stream, small.response.stream), (False, False))

    def test_no_matching_rule(self) -> None:
        """A streamed body no rule's filter matches streams untouched."""
        self.master.options.set("modify_body=/~d other/a/b")
        flow = live(response_flow())
        flow.response.stream = True
        self.addon.responseheaders(flow)
        self.assertIs(flow.response.stream, True)

    def test_encoded_stream_reported(self) -> None:
        """A gzip-encoded streamed body is not rewritten, and the response hook says why."""
        self.master.options.set("modify_body=/a/b")
        flow = live(response_flow())
        flow.response.headers["content-encoding"] = "gzip"
        flow.response.stream = True
        self.addon.responseheaders(flow)
        self.assertIs(flow.response.stream, True)
        with capturedLogs() as events:
            self.addon.response(flow)
        self.assertEqual(
            [formatEvent(e) for e in events],
            ["modify_body: http://address:22/path: the streamed response body was not modified: it is gzip-encoded (anticomp asks servers not to compress)"],
        )

    def test_rewritten_stream_not_touched_again(self) -> None:
        """After a body streamed through the rules, the response hook neither rewrites nor warns."""
        self.master.options.set("modify_body=/message/x")
        flow = live(response_flow())
        flow.response.stream = True
        self.addon.responseheaders(flow)
        with capturedLogs() as events:
            self.addon.response(flow)
        self.assertEqual((flow.response.raw_content, list(events)), (b"message", []))


CHUNK = 64 * 1024
CHUNKS = 128
NEEDLE = b"NEEDLE"


_FILLER = b"." * ((CHUNK - 12) // 2)
#: Each chunk of the 8 MiB body: a needle in the middle, and one cut in two at each end, so
#: that every chunk boundary splits a needle.
PLANTED_CHUNK = NEEDLE[3:] + _FILLER + NEEDLE + _FILLER + NEEDLE[:3]


@implementer(IPullProducer)
class ChunkedBody:
    """Writes the planted body in chunked coding, one chunk each time the transport asks."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.sent = 0
        transport.registerProducer(self, False)

    def resumeProducing(self) -> None:
        if self.sent == CHUNKS:
            self.transport.unregisterProducer()
            self.transport.write(b"0\r\n\r\n")
            return
        self.sent += 1
        self.transport.write(b"%x\r\n%s\r\n" % (len(PLANTED_CHUNK), PLANTED_CHUNK))

    def stopProducing(self) -> None:
        self.sent = CHUNKS


class PlantedOrigin(Protocol):
    """Answers a request with the planted 8 MiB chunked body, made as it is sent."""

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
            ChunkedBody(self.transport)


class Seen:
    """An addon keeping the flows it sees in response."""

    def __init__(self) -> None:
        self.flows: list[HTTPFlow] = []

    def response(self, flow: HTTPFlow) -> None:
        self.flows.append(flow)


class LoopbackTests(TestCase):
    """C{modify_body} with curl through the proxy."""

    async def test_buffered_response(self) -> None:
        """A buffered response is rewritten and gets its new Content-Length."""
        origin = start_raw_origin(self, respond(200, b"hello world"))
        proxy = start_proxy(self, options=["modify_body=/~s/world/there"])
        out, err, code = await curl("-i", "-x", proxy.url, origin.url + "/")
        self.assertEqual(code, 0, err)
        self.assertIn(b"\r\nContent-Length: 11\r\n", out)
        self.assertTrue(out.endswith(b"\r\n\r\nhello there"), out)

    async def test_buffered_request(self) -> None:
        """A buffered request body reaches the server rewritten."""
        origin = start_body_origin(self, echo_body)
        proxy = start_proxy(self, options=["modify_body=/~q/secret/*****"])
        out, err, code = await curl("-x", proxy.url, "--data-binary", "my secret", origin.url + "/")
        self.assertEqual((code, out), (0, b"my *****"), err)

    async def test_streamed_declared_length(self) -> None:
        """A response streamed for its declared length is rewritten on the fly and goes out chunked."""
        body = b"abc NEEDLE " * 1000
        origin = start_raw_origin(self, respond(200, body))
        seen = Seen()
        proxy = start_proxy(self, options=["stream_large_bodies=1k", "modify_body=/NEEDLE/pin"], addons=[seen])
        out, err, code = await curl("-i", "-x", proxy.url, origin.url + "/")
        self.assertEqual(code, 0, err)
        head, _, received = out.partition(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", head)
        self.assertEqual(received, b"abc pin " * 1000)
        self.assertEqual(seen.flows[0].response.raw_content, b"")

    async def test_streamed_chunked_8_mib(self) -> None:
        """An 8 MiB chunked response with a needle cut in two at every chunk boundary: every
        needle is replaced, the body streams (never held whole), and the process's RSS grows
        by less than half the body's size."""
        port = listen(self, Factory.forProtocol(PlantedOrigin))
        seen = Seen()
        proxy = start_proxy(self, options=["stream_large_bodies=1m", "modify_body=/~s/NEEDLE/pin"], addons=[seen])
        output = self.mktemp()
        before = peak = rss()

        def sample() -> None:
            nonlocal peak
            peak = max(peak, rss())

        sampler = LoopingCall(sample)
        sampler.start(0.02)
        self.addCleanup(lambda: sampler.running and sampler.stop())
        out, err, code = await curl("-x", proxy.url, "-o", output, f"http://127.0.0.1:{port}/planted")
        sampler.stop()
        self.assertEqual(code, 0, err)
        print(f"\nmodify_body over 8 MiB: RSS peak +{(peak - before) / 2**20:.1f} MiB", file=sys.stderr)
        with open(output, "rb") as f:
            received = f.read()
        os.remove(output)
        self.assertEqual(received.count(NEEDLE), 0)
        self.assertEqual(received.count(b"pin"), 2 * CHUNKS - 1)
        self.assertEqual(len(received), CHUNK * CHUNKS - (2 * CHUNKS - 1) * (len(NEEDLE) - 3))
        response = seen.flows[0].response
        self.assertIsInstance(response.stream, BodyRewriter)
        self.assertEqual((response.raw_content, seen.flows[0].metadata["response_body_size"]), (b"", CHUNK * CHUNKS))
        self.assertLess(peak - before, CHUNK * CHUNKS // 2)

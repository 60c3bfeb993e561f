# -*- test-case-name: tests.test_framing -*-
"""How messages are framed when they leave the proxy: L{twisted_mitm.proxy.framing}."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import RawOrigin, raw_client, start_proxy, start_raw_origin, wait_until
from twisted_mitm import http1
from twisted_mitm.http import Headers, HTTPFlow, Request, Response
from twisted_mitm.proxy import framing
from twisted_mitm.proxy.pipe import ChunkedWriter, CloseDelimitedWriter, LengthWriter


def request(
    fields: list[tuple[bytes, bytes]], body: bytes = b"", version: bytes = b"HTTP/1.1", authority: bytes = b"example.com:8000"
) -> Request:
    """A request to example.com:8000 with these raw header fields and body."""
    return Request("example.com", 8000, b"POST", b"http", authority, b"/", version, Headers(fields), body, None, 0.0, None)


def response(fields: list[tuple[bytes, bytes]], body: bytes = b"", trailers: list[tuple[bytes, bytes]] | None = None) -> Response:
    """A 200 response with these raw header fields, body and trailers."""
    return Response(b"HTTP/1.1", 200, b"OK", Headers(fields), body, Headers(trailers) if trailers else None, 0.0, None)


class KeepAliveTests(SynchronousTestCase):
    """Which connections stay open."""

    def test_http11_default_keeps_alive(self) -> None:
        """An HTTP/1.1 request keeps the connection unless it says close."""
        self.assertTrue(framing.client_keeps_alive(request([])))
        self.assertFalse(framing.client_keeps_alive(request([(b"Connection", b"Keep-Alive, Close")])))

    def test_http10_needs_keep_alive(self) -> None:
        """An HTTP/1.0 request keeps the connection only with keep-alive in Connection or Proxy-Connection."""
        self.assertFalse(framing.client_keeps_alive(request([], version=b"HTTP/1.0")))
        self.assertTrue(framing.client_keeps_alive(request([(b"Connection", b"keep-alive")], version=b"HTTP/1.0")))
        self.assertTrue(framing.client_keeps_alive(request([(b"Proxy-Connection", b"Keep-Alive")], version=b"HTTP/1.0")))

    def test_closes(self) -> None:
        """closes() finds a close token in any Connection field, any case."""
        self.assertTrue(framing.closes(Headers([(b"connection", b"foo"), (b"Connection", b" CLOSE ")])))
        self.assertFalse(framing.closes(Headers([(b"Connection", b"keep-alive")])))

    def test_expects_continue(self) -> None:
        """expects_continue() recognises Expect: 100-continue in any case."""
        self.assertTrue(framing.expects_continue(Headers([(b"Expect", b"100-Continue")])))
        self.assertFalse(framing.expects_continue(Headers([])))


class BufferedRequestTests(SynchronousTestCase):
    """Buffered requests on their way to the server."""

    def test_proxy_fields_dropped_others_kept(self) -> None:
        """Proxy-Connection and Proxy-Authorization go; other fields keep case, order and repeats."""
        fields = [(b"Host", b"h"), (b"proxy-connection", b"x"), (b"X-A", b"1"), (b"PROXY-AUTHORIZATION", b"y"), (b"x-a", b"2")]
        headers, body = framing.buffered_request(request(fields))
        self.assertEqual(headers.fields, ((b"Host", b"h"), (b"X-A", b"1"), (b"x-a", b"2")))
        self.assertEqual(body, [])

    def test_host_added_first(self) -> None:
        """A request without Host gets one from its authority, as the first field."""
        headers, _ = framing.buffered_request(request([(b"Accept", b"*/*")]))
        self.assertEqual(headers.fields[0], (b"Host", b"example.com:8000"))

    def test_length_matches_body(self) -> None:
        """A body changed by a hook is sent with a Content-Length that matches it, in the original field's place and case."""
        headers, body = framing.buffered_request(request([(b"Host", b"h"), (b"content-length", b"3"), (b"X", b"y")], b"longer body"))
        self.assertEqual(headers.fields, ((b"Host", b"h"), (b"content-length", b"11"), (b"X", b"y")))
        self.assertEqual(b"".join(body), b"longer body")

    def test_chunked_kept_with_trailers(self) -> None:
        """A chunked request stays chunked, as one chunk plus the trailers."""
        message = request([(b"Transfer-Encoding", b"chunked")], b"abc")
        message.trailers = Headers([(b"X-T", b"1")])
        headers, body = framing.buffered_request(message)
        self.assertNotIn("content-length", headers)
        self.assertEqual(b"".join(body), b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n")

    def test_no_length_for_empty_body_without_one(self) -> None:
        """A bodiless request without Content-Length gets none added."""
        headers, body = framing.buffered_request(request([(b"Host", b"h")]))
        self.assertNotIn("content-length", headers)
        self.assertEqual(body, [])


class BufferedResponseTests(SynchronousTestCase):
    """Buffered responses on their way to the client."""

    def test_no_body(self) -> None:
        """Without a body (HEAD, 204, 304) the headers are kept as they are, Content-Length included."""
        headers, body = framing.buffered_response(response([(b"Content-Length", b"99")]), b"HTTP/1.1", False)
        self.assertEqual((headers.fields, body), (((b"Content-Length", b"99"),), []))

    def test_length_added(self) -> None:
        """A body read until close is sent with a Content-Length (in canonical case)."""
        headers, body = framing.buffered_response(response([(b"Server", b"x")], b"hello"), b"HTTP/1.1", True)
        self.assertEqual(headers.fields, ((b"Server", b"x"), (b"Content-Length", b"5")))
        self.assertEqual(body, [b"hello"])

    def test_chunked_for_http11(self) -> None:
        """A chunked response stays chunked for an HTTP/1.1 client, trailers included."""
        message = response([(b"Transfer-Encoding", b"chunked")], b"hi", [(b"X-Sum", b"1")])
        headers, body = framing.buffered_response(message, b"HTTP/1.1", True)
        self.assertEqual(headers.fields, ((b"Transfer-Encoding", b"chunked"),))
        self.assertEqual(b"".join(body), b"2\r\nhi\r\n0\r\nX-Sum: 1\r\n\r\n")

    def test_chunked_becomes_length_for_http10(self) -> None:
        """An HTTP/1.0 client gets a chunked response with a Content-Length instead."""
        headers, body = framing.buffered_response(response([(b"Transfer-Encoding", b"chunked")], b"hi"), b"HTTP/1.0", True)
        self.assertEqual(headers.fields, ((b"Content-Length", b"2"),))
        self.assertEqual(body, [b"hi"])


class StreamedFramingTests(SynchronousTestCase):
    """Framing chosen for streamed bodies."""

    def test_untouched_length_kept(self) -> None:
        """An untransformed body with a Content-Length keeps it and gets a length-enforcing writer."""
        source = http1.BodyFraming(http1.FramingKind.LENGTH, 4)
        headers, make_writer = framing.streamed_request(request([(b"Host", b"h"), (b"Content-Length", b"4")]), source, False)
        self.assertEqual(headers.fields, ((b"Host", b"h"), (b"Content-Length", b"4")))
        self.assertIsInstance(make_writer(StringTransport()), LengthWriter)

    def test_transformed_becomes_chunked(self) -> None:
        """A transformed body may change length, so it goes chunked without Content-Length."""
        source = http1.BodyFraming(http1.FramingKind.LENGTH, 4)
        headers, make_writer = framing.streamed_request(request([(b"Host", b"h"), (b"Content-Length", b"4")]), source, True)
        self.assertEqual(headers.fields, ((b"Host", b"h"), (b"Transfer-Encoding", b"chunked")))
        self.assertIsInstance(make_writer(StringTransport()), ChunkedWriter)

    def test_response_to_http10_is_close_delimited(self) -> None:
        """A transformed response to an HTTP/1.0 client drops framing fields and closes after the body."""
        source = http1.BodyFraming(http1.FramingKind.CHUNKED)
        headers, make_writer, close = framing.streamed_response(
            Headers([(b"Transfer-Encoding", b"chunked"), (b"X", b"y")]), source, False, b"HTTP/1.0"
        )
        self.assertEqual((headers.fields, close), (((b"X", b"y"),), True))
        self.assertIsInstance(make_writer(StringTransport()), CloseDelimitedWriter)

    def test_chunked_response_stays_chunked(self) -> None:
        """A chunked response to an HTTP/1.1 client stays chunked and keeps the connection."""
        source = http1.BodyFraming(http1.FramingKind.CHUNKED)
        headers, make_writer, close = framing.streamed_response(Headers([(b"Transfer-Encoding", b"chunked")]), source, False, b"HTTP/1.1")
        self.assertEqual((headers.fields, close), (((b"Transfer-Encoding", b"chunked"),), False))
        self.assertIsInstance(make_writer(StringTransport()), ChunkedWriter)


class ScriptEditTests(SynchronousTestCase):
    """A script's edits to framing headers never reach the wire as they are."""

    def test_framing_edited(self) -> None:
        """Headers that no longer describe the body's arrival framing are recognised, in every kind."""
        length = http1.BodyFraming(http1.FramingKind.LENGTH, 5)
        chunked = http1.BodyFraming(http1.FramingKind.CHUNKED)
        until_close = http1.BodyFraming(http1.FramingKind.UNTIL_CLOSE)
        cases = [
            ([(b"Content-Length", b"5")], length, False),
            ([(b"Content-Length", b"5, 5")], length, False),
            ([(b"Content-Length", b"2")], length, True),
            ([], length, True),
            ([(b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")], length, True),
            ([(b"Transfer-Encoding", b"chunked")], chunked, False),
            ([(b"Transfer-Encoding", b"gzip, chunked")], chunked, False),
            ([(b"Transfer-Encoding", b"gzip")], chunked, True),
            ([(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"9")], chunked, True),
            ([], until_close, False),
            ([(b"Content-Length", b"9")], until_close, True),
            ([(b"Content-Length", b"9")], None, False),
        ]
        for fields, source, edited in cases:
            self.assertEqual(framing.framing_edited(Headers(fields), source), edited, (fields, source))

    def test_streamed_length_enforced(self) -> None:
        """A streamed Content-Length message goes out with its real length, whatever the headers say."""
        headers = Headers([(b"Content-Length", b"2"), (b"Transfer-Encoding", b"chunked")])
        streamed = request([(b"Host", b"h"), *headers.fields])
        outgoing, _ = framing.streamed_request(streamed, http1.BodyFraming(http1.FramingKind.LENGTH, 5000), transformed=False)
        self.assertEqual(outgoing.fields, ((b"Host", b"h"), (b"Content-Length", b"5000")))
        outgoing, _, close = framing.streamed_response(headers, http1.BodyFraming(http1.FramingKind.LENGTH, 7), False, b"HTTP/1.1")
        self.assertEqual((outgoing.fields, close), (((b"Content-Length", b"7"),), False))

    def test_buffered_chunked_drops_content_length(self) -> None:
        """A buffered message a script made chunked loses its Content-Length (never both)."""
        headers, _ = framing.buffered_response(response([(b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")], b"hello"), b"HTTP/1.1", True)
        self.assertEqual(headers.fields, ((b"Transfer-Encoding", b"chunked"),))
        headers, _ = framing.buffered_request(request([(b"Host", b"e"), (b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")], b"hello"))
        self.assertEqual(headers.fields, ((b"Host", b"e"), (b"Transfer-Encoding", b"chunked")))


class MessageTrailersTests(SynchronousTestCase):
    """L{framing.MessageTrailers}: a streamed body ends with its message's trailers."""

    def finish(self, message: Response, received: list[tuple[bytes, bytes]]) -> bytes:
        transport = StringTransport()
        writer = framing.MessageTrailers(ChunkedWriter(transport), message)
        writer.write(b"data")
        writer.finish(received)
        return transport.value()

    def test_received_trailers_recorded_and_sent(self) -> None:
        """Trailers that end the source body become the message's, and go out."""
        message = response([])
        self.assertEqual(self.finish(message, [(b"Grpc-Status", b"0")]), b"4\r\ndata\r\n0\r\nGrpc-Status: 0\r\n\r\n")
        self.assertEqual(message.trailers.fields, ((b"Grpc-Status", b"0"),))

    def test_hook_trailers_sent(self) -> None:
        """A body that came without trailers ends with those a hook set."""
        message = response([], trailers=[(b"X-Added", b"1")])
        self.assertEqual(self.finish(message, []), b"4\r\ndata\r\n0\r\nX-Added: 1\r\n\r\n")

    def test_none(self) -> None:
        """No trailers anywhere: the plain last chunk."""
        self.assertEqual(self.finish(response([]), []), b"4\r\ndata\r\n0\r\n\r\n")


EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
TRAILER = b"x-my-injected-trailer-header: foobar\r\n"


def ends_chunked(data: bytes) -> bool:
    """Whether C{data} holds a head and a whole chunked body (its last chunk and trailer section)."""
    head, _, body = data.partition(b"\r\n\r\n")
    return (body.startswith(b"0\r\n") or b"\r\n0\r\n" in body) and body.endswith(b"\r\n\r\n")


def answer(raw: bytes) -> Callable[[Any, bytes], None]:
    """A L{RawOrigin} handler writing C{raw} as the response."""
    return lambda protocol, head: protocol.transport.write(raw)


class TrailersTests(TestCase):
    """Trailers through a real proxy, with a raw client and origin (mitmproxy's http-trailers.py)."""

    async def exchange(self, origin: RawOrigin, proxy_port: int, request: bytes) -> tuple[bytes, bytes]:
        """Send C{request}; what the client got back, and what the origin received once its body ended."""
        client = await raw_client(self, proxy_port)
        client.send(request)
        received = await client.receive_until(ends_chunked)
        await wait_until(lambda: ends_chunked(b"".join(origin.received)), what="the request body at the origin")
        return received, b"".join(origin.received)

    async def test_example_injects_into_buffered_messages(self) -> None:
        """The example makes a Content-Length request and response chunked with its trailer; neither
        keeps a Content-Length beside the Transfer-Encoding."""
        origin = start_raw_origin(self, answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nworld"))
        proxy = start_proxy(self, scripts=[os.path.join(EXAMPLES, "http_trailers.py")])
        received, at_origin = await self.exchange(
            origin, proxy.port, b"POST %s/inject_trailers HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" % origin.url.encode()
        )
        self.assertTrue(at_origin.endswith(b"\r\n\r\n5\r\nhello\r\n0\r\n" + TRAILER + b"\r\n"), at_origin)
        self.assertNotIn(b"content-length", at_origin.lower())
        self.assertIn(b"trailer: x-my-injected-trailer-header", at_origin.lower())
        self.assertTrue(received.endswith(b"\r\n\r\n5\r\nworld\r\n0\r\n" + TRAILER + b"\r\n"), received)
        self.assertNotIn(b"content-length", received.lower())

    async def test_received_trailers_round_trip(self) -> None:
        """Trailers the client and the server send reach the other side, and the hooks see them."""
        seen: list[tuple[str, Headers | None]] = []

        class Look:
            def request(self, flow: HTTPFlow) -> None:
                seen.append(("request", flow.request.trailers))

            def response(self, flow: HTTPFlow) -> None:
                seen.append(("response", flow.response.trailers))

        origin = start_raw_origin(self, answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Server: two\r\n\r\n"))
        proxy = start_proxy(self, scripts=[os.path.join(EXAMPLES, "http_trailers.py")], addons=[Look()])
        received, at_origin = await self.exchange(
            origin, proxy.port,
            b"POST %s/other HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Client: one\r\n\r\n" % origin.url.encode(),
        )
        self.assertTrue(at_origin.endswith(b"3\r\nabc\r\n0\r\nX-Client: one\r\n\r\n"), at_origin)
        self.assertTrue(received.endswith(b"2\r\nok\r\n0\r\nX-Server: two\r\n\r\n"), received)
        self.assertEqual([(hook, trailers.fields) for hook, trailers in seen], [("request", ((b"X-Client", b"one"),)), ("response", ((b"X-Server", b"two"),))])

    async def test_streamed_bodies(self) -> None:
        """Streamed both ways: trailers a requestheaders/responseheaders hook sets are sent, received
        ones pass (through a .stream transform too) and the request/response hooks see them."""
        seen: list[tuple[str, Headers | None]] = []

        class AddTrailers:
            def requestheaders(self, flow: HTTPFlow) -> None:
                flow.request.trailers = Headers([(b"X-Added-Request", b"1")])

            def responseheaders(self, flow: HTTPFlow) -> None:
                assert flow.response is not None
                flow.response.stream = lambda data: data.upper()

            def request(self, flow: HTTPFlow) -> None:
                seen.append(("request", flow.request.trailers))

            def response(self, flow: HTTPFlow) -> None:
                seen.append(("response", flow.response.trailers))

        body = b"0123456789" * 10
        origin = start_raw_origin(self, answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\nX-Server: two\r\n\r\n" % (len(body), b"a" * len(body))))
        proxy = start_proxy(self, options=["stream_large_bodies=10"], addons=[AddTrailers()])
        received, at_origin = await self.exchange(
            origin, proxy.port,
            b"POST %s/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (origin.url.encode(), len(body), body),
        )
        self.assertTrue(at_origin.endswith(b"%s\r\n0\r\nX-Added-Request: 1\r\n\r\n" % body), at_origin)
        self.assertTrue(received.endswith(b"A" * len(body) + b"\r\n0\r\nX-Server: two\r\n\r\n"), received)
        self.assertEqual([(hook, trailers.fields) for hook, trailers in seen], [("request", ((b"X-Added-Request", b"1"),)), ("response", ((b"X-Server", b"two"),))])

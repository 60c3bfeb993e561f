# -*- test-case-name: tests.test_framing -*-
"""How messages are framed when they leave the proxy: L{twisted_mitm.proxy.framing}."""

from __future__ import annotations

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm import http1
from twisted_mitm.http import Headers, Request, Response
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

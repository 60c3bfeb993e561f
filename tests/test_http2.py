# -*- test-case-name: tests.test_http2 -*-
"""HTTP/2 header blocks in the proxy's terms: L{twisted_mitm.http2}."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm import http1, http2
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.http import Headers, Request, Response
from twisted_mitm.proxy import framing

TARGET = (b"https", "example.com", 443)


def http11_request(fields: list[tuple[bytes, bytes]], authority: bytes = b"") -> Request:
    """An HTTP/1.1 request to example.com:443 (inside a tunnel: no authority) with these fields."""
    return Request("example.com", 443, b"GET", b"https", authority, b"/a?b", b"HTTP/1.1", Headers(fields), b"", None, 0.0, None)


class RequestBlockTests(SynchronousTestCase):
    """A client's request header block becomes a request."""

    def test_pseudo_headers(self) -> None:
        """The pseudo-header fields fill method, scheme, authority and path; the rest are headers."""
        block = [(b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"example.com"), (b":path", b"/x"), (b"accept", b"*/*")]
        request = http2.request_from_block(block, TARGET)
        self.assertEqual((request.method, request.scheme, request.authority, request.path), ("POST", "https", "example.com", "/x"))
        self.assertEqual((request.host, request.port, request.http_version), ("example.com", 443, "HTTP/2.0"))
        self.assertEqual(request.headers.fields, ((b"accept", b"*/*"),))
        self.assertEqual(request.host_header, "example.com")

    def test_missing_path_is_400(self) -> None:
        """A block without :path is refused with a 400."""
        with self.assertRaises(ProtocolError) as caught:
            http2.request_from_block([(b":method", b"GET"), (b":scheme", b"https")], TARGET)
        self.assertEqual(caught.exception.status, 400)

    def test_connect_is_501(self) -> None:
        """CONNECT inside HTTP/2 is refused with a 501."""
        with self.assertRaises(ProtocolError) as caught:
            http2.request_from_block([(b":method", b"CONNECT"), (b":authority", b"a:1")], TARGET)
        self.assertEqual(caught.exception.status, 501)


class ResponseBlockTests(SynchronousTestCase):
    """A server's response header block becomes a head."""

    def test_status(self) -> None:
        """:status becomes the status code; there is no reason phrase."""
        head = http2.response_head_from_block([(b":status", b"204"), (b"server", b"x")])
        self.assertEqual(head, http1.ResponseHead(b"HTTP/2.0", 204, b"", ((b"server", b"x"),)))

    def test_bad_status_is_502(self) -> None:
        """A missing or malformed :status is a 502."""
        for block in ([], [(b":status", b"20")], [(b":status", b"abc")]):
            with self.assertRaises(ProtocolError) as caught:
                http2.response_head_from_block(block)
            self.assertEqual(caught.exception.status, 502)


class FramingTests(SynchronousTestCase):
    """How the body after a header block is delimited."""

    def test_kinds(self) -> None:
        """END_STREAM on the block: no body; a content-length: that length; otherwise the stream's end."""
        self.assertIs(http2.body_framing((), True).kind, http1.FramingKind.NONE)
        self.assertEqual(http2.body_framing(((b"content-length", b"12"),), False), http1.BodyFraming(http1.FramingKind.LENGTH, 12))
        self.assertIs(http2.body_framing((), False).kind, http1.FramingKind.UNTIL_CLOSE)


class OutgoingTests(SynchronousTestCase):
    """Messages read from either version become blocks for an HTTP/2 peer."""

    def test_connection_specific_fields_removed(self) -> None:
        """Connection, the fields it names, Keep-Alive, Transfer-Encoding, Upgrade and TE other than trailers go; names are lower-cased."""
        fields = [
            (b"Connection", b"keep-alive, X-Hop"), (b"X-Hop", b"1"), (b"Keep-Alive", b"5"), (b"Transfer-Encoding", b"chunked"),
            (b"Upgrade", b"h2c"), (b"TE", b"gzip"), (b"Accept", b"*/*"), (b"Proxy-Connection", b"x"),
        ]
        self.assertEqual(http2.outgoing_fields(fields), [(b"accept", b"*/*")])
        self.assertEqual(http2.outgoing_fields([(b"TE", b"trailers")]), [(b"te", b"trailers")])

    def test_host_becomes_authority(self) -> None:
        """An HTTP/1 request's Host becomes :authority (and is not sent as a field); pseudo-fields come first."""
        request = http11_request([(b"Host", b"example.com"), (b"Accept", b"*/*")])
        block = http2.request_block(request, request.headers)
        self.assertEqual(block, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"example.com"), (b":path", b"/a?b"), (b"accept", b"*/*")])

    def test_authority_from_request_or_address(self) -> None:
        """The request's own authority wins; without it or a Host, host and non-default port are used."""
        request = http11_request([(b"Host", b"other")], authority=b"example.com")
        self.assertIn((b":authority", b"example.com"), http2.request_block(request, request.headers))
        bare = Request("10.0.0.1", 8443, b"GET", b"https", b"", b"/", b"HTTP/1.1", Headers(), b"", None, 0.0, None)
        self.assertIn((b":authority", b"10.0.0.1:8443"), http2.request_block(bare, bare.headers))

    def test_response_and_trailers(self) -> None:
        """A response block starts with :status; trailers lose pseudo and connection fields."""
        response = Response(b"HTTP/1.1", 404, b"Not Found", Headers([(b"Connection", b"close"), (b"Server", b"s")]), b"", None, 0.0, None)
        self.assertEqual(http2.response_block(response, response.headers), [(b":status", b"404"), (b"server", b"s")])
        self.assertEqual(http2.trailer_block([(b"Grpc-Status", b"0"), (b":path", b"/")]), [(b"grpc-status", b"0")])

    def test_with_length(self) -> None:
        """with_length replaces every content-length with one, or removes them."""
        fields = [(b"content-length", b"1"), (b"x", b"y"), (b"Content-Length", b"1")]
        self.assertEqual(http2.with_length(fields, 5), [(b"x", b"y"), (b"content-length", b"5")])
        self.assertEqual(http2.with_length(fields, None), [(b"x", b"y")])


class ToHTTP1Tests(SynchronousTestCase):
    """An HTTP/2 message going to an HTTP/1 peer (L{framing}) is a valid HTTP/1.1 message."""

    def test_request_head(self) -> None:
        """It says HTTP/1.1, gets a Host from :authority and one Cookie field from several."""
        request = http2.request_from_block(
            [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"example.com"), (b":path", b"/"), (b"cookie", b"a=1"), (b"cookie", b"b=2")],
            TARGET,
        )
        headers, _ = framing.buffered_request(request)
        self.assertEqual(framing.request_head(request, headers), b"GET / HTTP/1.1\r\nHost: example.com\r\ncookie: a=1; b=2\r\n\r\n")

    def test_response_head(self) -> None:
        """It says HTTP/1.1 with the standard reason phrase of its status."""
        response = Response(b"HTTP/2.0", 404, b"", Headers([(b"server", b"s")]), b"", None, 0.0, None)
        self.assertEqual(framing.response_head(response, response.headers), b"HTTP/1.1 404 Not Found\r\nserver: s\r\n\r\n")

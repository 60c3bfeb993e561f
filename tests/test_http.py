"""Tests for L{twisted_mitm.http} and L{twisted_mitm.utils.multidict}."""

from __future__ import annotations

import gzip
import json
import time
import zlib
from email.utils import parsedate_to_datetime

import brotli  # type: ignore[import-untyped]
import zstandard

from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.connection import Client, Server
from twisted_mitm.flow import Error
from twisted_mitm.http import (
    CookieAttrs,
    Headers,
    HTTPFlow,
    Request,
    Response,
    infer_charset,
)
from twisted_mitm.utils.multidict import MultiDict
from twisted_mitm.websocket import WebSocketData


def make_request(**overrides: object) -> Request:
    """An origin-form GET for example.com with a Host header; fields may be overridden."""
    args: dict[str, object] = dict(
        host="example.com",
        port=80,
        method=b"GET",
        scheme=b"http",
        authority=b"",
        path=b"/index.html?a=1&b=2",
        http_version=b"HTTP/1.1",
        headers=Headers([(b"Host", b"example.com"), (b"Accept", b"*/*")]),
        content=b"",
        trailers=None,
        timestamp_start=1.0,
        timestamp_end=2.0,
    )
    args.update(overrides)
    return Request(**args)  # type: ignore[arg-type]


class MultiDictTests(SynchronousTestCase):
    """L{MultiDict} basics that Headers, query and cookies build on."""

    def test_first_value_and_order(self) -> None:
        """Lookup gives the first value; fields keep order and duplicates."""
        md = MultiDict([("a", "1"), ("b", "2"), ("a", "3")])
        self.assertEqual(md["a"], "1")
        self.assertEqual(md.get_all("a"), ["1", "3"])
        self.assertEqual(list(md), ["a", "b"])
        self.assertEqual(len(md), 2)
        self.assertEqual(list(md.items(multi=True)), [("a", "1"), ("b", "2"), ("a", "3")])
        self.assertEqual(list(md.values()), ["1", "2"])

    def test_set_all_in_place(self) -> None:
        """set_all fills existing places first, drops extra old fields, appends extra values."""
        md = MultiDict([("a", "1"), ("b", "2"), ("a", "3")])
        md.set_all("a", ["x"])
        self.assertEqual(md.fields, (("a", "x"), ("b", "2")))
        md.set_all("a", ["y", "z"])
        self.assertEqual(md.fields, (("a", "y"), ("b", "2"), ("a", "z")))

    def test_copy_is_detached(self) -> None:
        """A copy has equal fields and changes independently."""
        md = MultiDict([("a", "1")])
        other = md.copy()
        other["a"] = "2"
        self.assertEqual(md["a"], "1")
        self.assertNotEqual(md, other)


class HeadersTests(SynchronousTestCase):
    """L{Headers}."""

    def setUp(self) -> None:
        self.headers = Headers(
            [(b"Host", b"example.com"), (b"Accept", b"text/html"), (b"accept", b"application/xml")]
        )

    def test_case_insensitive(self) -> None:
        """Lookup, membership and get ignore case and accept str or bytes."""
        self.assertEqual(self.headers["HOST"], "example.com")
        self.assertEqual(self.headers[b"host"], "example.com")
        self.assertIn("hOsT", self.headers)
        self.assertNotIn("cookie", self.headers)
        self.assertEqual(self.headers.get("x-missing", "default"), "default")
        self.assertRaises(KeyError, lambda: self.headers["x-missing"])

    def test_join(self) -> None:
        """Several fields of one name read as one value joined with a comma."""
        self.assertEqual(self.headers["accept"], "text/html, application/xml")
        self.assertEqual(self.headers.get_all("ACCEPT"), ["text/html", "application/xml"])

    def test_fields_keep_case_order_duplicates(self) -> None:
        """fields keeps the raw pairs as given."""
        self.assertEqual(
            self.headers.fields,
            ((b"Host", b"example.com"), (b"Accept", b"text/html"), (b"accept", b"application/xml")),
        )

    def test_keys_items_len(self) -> None:
        """Keys are unique names in first-seen case; items(multi=True) lists every field."""
        self.assertEqual(list(self.headers), ["Host", "Accept"])
        self.assertEqual(list(self.headers.keys()), ["Host", "Accept"])
        self.assertEqual(len(self.headers), 2)
        self.assertEqual(
            list(self.headers.items()),
            [("Host", "example.com"), ("Accept", "text/html, application/xml")],
        )
        self.assertEqual(list(self.headers.items(multi=True))[2], ("accept", "application/xml"))

    def test_set_replaces_at_first_position(self) -> None:
        """Setting a name replaces all its fields, at the first one, keeping its case."""
        self.headers["ACCEPT"] = "*/*"
        self.assertEqual(self.headers.fields, ((b"Host", b"example.com"), (b"Accept", b"*/*")))

    def test_set_new_appends(self) -> None:
        """Setting a new name appends a field with the given case."""
        self.headers["X-New"] = "1"
        self.assertEqual(self.headers.fields[-1], (b"X-New", b"1"))

    def test_set_all_add_insert(self) -> None:
        """set_all, add and insert write raw fields where asked."""
        self.headers.set_all("Set-Cookie", ["a=1", "b=2"])
        self.assertEqual(self.headers.get_all("set-cookie"), ["a=1", "b=2"])
        self.headers.add("Accept", "text/plain")
        self.assertEqual(self.headers.fields[-1], (b"Accept", b"text/plain"))
        self.headers.insert(0, "Via", "1.1 proxy")
        self.assertEqual(self.headers.fields[0], (b"Via", b"1.1 proxy"))

    def test_delete(self) -> None:
        """Deleting a name removes all of its fields; a missing name is a KeyError."""
        del self.headers["ACCEPT"]
        self.assertEqual(self.headers.fields, ((b"Host", b"example.com"),))
        with self.assertRaises(KeyError):
            del self.headers["accept"]
        self.assertEqual(self.headers.pop("host"), "example.com")
        self.assertEqual(len(self.headers), 0)

    def test_kwargs(self) -> None:
        """Keyword names turn underscores into dashes and override fields."""
        headers = Headers([(b"Content-Type", b"text/plain")], content_type="text/html", x_a="1")
        self.assertEqual(headers.fields, ((b"Content-Type", b"text/html"), (b"x-a", b"1")))

    def test_fields_must_be_bytes(self) -> None:
        """Raw fields given as str are refused."""
        self.assertRaises(TypeError, Headers, [("Host", "example.com")])

    def test_str_encoding(self) -> None:
        """Str values are stored as UTF-8 and non-UTF-8 bytes survive as surrogates."""
        headers = Headers()
        headers["X-Name"] = "Jürgen"
        self.assertEqual(headers.fields, ((b"X-Name", b"J\xc3\xbcrgen"),))
        headers = Headers([(b"X-Raw", b"\xff")])
        self.assertEqual(headers["x-raw"], "\udcff")
        headers["X-Raw"] = headers["x-raw"]
        self.assertEqual(headers.fields, ((b"X-Raw", b"\xff"),))

    def test_equality_and_bytes(self) -> None:
        """Headers compare by fields and render as an HTTP/1 header block."""
        self.assertEqual(Headers(host="a"), Headers([(b"host", b"a")]))
        self.assertNotEqual(Headers(host="a"), Headers([(b"Host", b"a")]))
        self.assertEqual(bytes(Headers([(b"A", b"1"), (b"B", b"2")])), b"A: 1\r\nB: 2\r\n")
        self.assertEqual(bytes(Headers()), b"")


class ContentTests(SynchronousTestCase):
    """L{Message.content} and friends, through L{Response}."""

    def make(self, headers: list[tuple[bytes, bytes]], raw: bytes | None) -> Response:
        return Response(b"HTTP/1.1", 200, b"OK", headers, raw, None, 1.0, 2.0)

    def test_gzip_content(self) -> None:
        """content decodes gzip; setting it re-encodes and updates Content-Length."""
        response = self.make([(b"Content-Encoding", b"gzip")], gzip.compress(b"hello"))
        self.assertEqual(response.content, b"hello")
        response.content = b"goodbye"
        self.assertEqual(gzip.decompress(response.raw_content), b"goodbye")  # type: ignore[arg-type]
        self.assertEqual(response.headers["content-length"], str(len(response.raw_content)))  # type: ignore[arg-type]

    def test_invalid_gzip(self) -> None:
        """Invalid gzip raises in strict mode and comes back raw otherwise."""
        response = self.make([(b"Content-Encoding", b"gzip")], b"garbage")
        self.assertRaises(ValueError, lambda: response.content)
        self.assertEqual(response.get_content(strict=False), b"garbage")
        self.assertEqual(response.get_text(strict=False), "garbage")

    def test_content_length_sync(self) -> None:
        """Setting content updates an existing Content-Length in place."""
        response = self.make([(b"Content-Length", b"3"), (b"X", b"y")], b"abc")
        response.content = b"abcdef"
        self.assertEqual(response.headers.fields, ((b"Content-Length", b"6"), (b"X", b"y")))

    def test_chunked_has_no_content_length(self) -> None:
        """With a Transfer-Encoding, setting content adds no Content-Length."""
        response = self.make([(b"Transfer-Encoding", b"chunked")], b"")
        response.content = b"abc"
        self.assertNotIn("content-length", response.headers)

    def test_unknown_encoding_dropped_on_set(self) -> None:
        """Setting content under an unsupported Content-Encoding removes that header."""
        response = self.make([(b"Content-Encoding", b"compress")], b"x")
        response.content = b"plain"
        self.assertNotIn("content-encoding", response.headers)
        self.assertEqual(response.raw_content, b"plain")

    def test_content_must_be_bytes(self) -> None:
        """Assigning str to content is a TypeError that points to text."""
        response = self.make([], b"")
        self.assertRaises(TypeError, setattr, response, "content", "text")

    def test_none_content(self) -> None:
        """A missing body reads as None everywhere."""
        response = self.make([], None)
        self.assertIsNone(response.content)
        self.assertIsNone(response.text)

    def test_decode_encode(self) -> None:
        """decode() removes the encoding; encode() applies one and rejects unknown ones."""
        response = self.make([(b"Content-Encoding", b"gzip")], gzip.compress(b"data"))
        response.decode()
        self.assertEqual(response.raw_content, b"data")
        self.assertNotIn("content-encoding", response.headers)
        self.assertEqual(response.headers["content-length"], "4")
        response.encode("deflate")
        self.assertEqual(zlib.decompress(response.raw_content), b"data")  # type: ignore[arg-type]
        self.assertEqual(response.content, b"data")
        self.assertRaises(ValueError, response.encode, "compress")

    def test_json(self) -> None:
        """json() parses the decoded body."""
        response = self.make([(b"Content-Type", b"application/json")], b'{"a": [1]}')
        self.assertEqual(response.json(), {"a": [1]})
        self.assertRaises(TypeError, self.make([], None).json)


class EncodedContentTests(SynchronousTestCase):
    """L{Message.content}, C{text}, C{decode()} and C{encode()} over every content coding."""

    def make(self, coding: bytes, raw: bytes | None, content_type: bytes = b"text/html") -> Response:
        headers = [(b"Content-Type", content_type), (b"Content-Encoding", coding)]
        return Response(b"HTTP/1.1", 200, b"OK", headers, raw, None, 1.0, 2.0)

    def test_each_coding_reads_as_text(self) -> None:
        """content and text decode br, zstd, gzip and deflate bodies."""
        compressors = {
            b"br": brotli.compress,
            b"zstd": zstandard.ZstdCompressor().compress,
            b"gzip": gzip.compress,
            b"deflate": zlib.compress,
        }
        for coding, compress in compressors.items():
            with self.subTest(coding=coding):
                response = self.make(coding, compress("<p>é</p>".encode()))
                self.assertEqual(response.content, "<p>é</p>".encode())
                self.assertEqual(response.text, "<p>é</p>")

    def test_set_text_reencodes(self) -> None:
        """Setting text under br stores brotli bytes and a matching Content-Length."""
        response = self.make(b"br", brotli.compress(b"old"))
        response.text = "new text"
        self.assertEqual(brotli.decompress(response.raw_content), b"new text")  # type: ignore[arg-type]
        self.assertEqual(response.headers["content-length"], str(len(response.raw_content)))  # type: ignore[arg-type]
        self.assertEqual(response.headers["content-encoding"], "br")

    def test_stacked_codings(self) -> None:
        """Content-Encoding: gzip, br is undone in reverse and re-applied in order on set."""
        response = self.make(b"gzip, br", brotli.compress(gzip.compress(b"layers")))
        self.assertEqual(response.content, b"layers")
        response.content = b"changed"
        self.assertEqual(gzip.decompress(brotli.decompress(response.raw_content)), b"changed")  # type: ignore[arg-type]
        self.assertEqual(response.headers["content-encoding"], "gzip, br")

    def test_unchanged_content_keeps_sent_bytes(self) -> None:
        """Assigning the decoded body back keeps the server's compressed bytes as they were."""
        sent = gzip.compress(b"as sent", 9, mtime=42)
        response = self.make(b"gzip", sent)
        response.content = response.content
        self.assertEqual(response.raw_content, sent)

    def test_unknown_coding(self) -> None:
        """An unknown coding: strict reads raise, lenient reads give the raw bytes."""
        response = self.make(b"compress", b"raw bytes")
        self.assertRaises(ValueError, lambda: response.content)
        self.assertRaises(ValueError, lambda: response.text)
        self.assertEqual(response.get_content(strict=False), b"raw bytes")
        self.assertEqual(response.get_text(strict=False), "raw bytes")

    def test_corrupt_body(self) -> None:
        """A corrupt br body raises in strict mode and is raw otherwise; nothing is changed."""
        response = self.make(b"br", b"\x80\x81 not brotli")
        error = self.assertRaises(ValueError, lambda: response.text)
        self.assertIn("br", str(error))
        self.assertEqual(response.get_text(strict=False), "\udc80\udc81 not brotli")
        self.assertRaises(ValueError, response.decode)
        self.assertEqual(response.headers["content-encoding"], "br")
        self.assertEqual(response.raw_content, b"\x80\x81 not brotli")

    def test_lenient_decode_drops_header(self) -> None:
        """decode(strict=False) of an undecodable body removes the header and keeps the bytes."""
        response = self.make(b"zstd", b"not zstd")
        response.decode(strict=False)
        self.assertNotIn("content-encoding", response.headers)
        self.assertEqual(response.raw_content, b"not zstd")
        self.assertEqual(response.headers["content-length"], "8")

    def test_decode_then_encode(self) -> None:
        """decode() leaves plain bytes; encode() applies any coding or a list of them."""
        response = self.make(b"zstd", zstandard.ZstdCompressor().compress(b"data"))
        response.decode()
        self.assertEqual(response.raw_content, b"data")
        for coding in ("br", "zstd", "deflate, gzip"):
            with self.subTest(coding=coding):
                response.decode()
                response.encode(coding)
                self.assertEqual(response.headers["content-encoding"], coding)
                self.assertNotEqual(response.raw_content, b"data")
                self.assertEqual(response.content, b"data")

    def test_encode_unknown(self) -> None:
        """encode() of an unknown coding raises, removes the header and keeps the body."""
        response = self.make(b"identity", b"data")
        self.assertRaises(ValueError, response.encode, "compress")
        self.assertNotIn("content-encoding", response.headers)
        self.assertEqual(response.raw_content, b"data")

    def test_missing_or_empty_body(self) -> None:
        """A missing body is None under any coding; decode() leaves an empty one alone."""
        self.assertIsNone(self.make(b"br", None).content)
        response = self.make(b"gzip", b"")
        self.assertEqual(response.content, b"")
        response.decode()
        self.assertEqual(response.headers["content-encoding"], "gzip")


class TextTests(SynchronousTestCase):
    """Charset handling of L{Message.text}."""

    def make(self, content_type: bytes | None, raw: bytes = b"") -> Response:
        headers = [(b"Content-Type", content_type)] if content_type else []
        return Response(b"HTTP/1.1", 200, b"OK", headers, raw, None, 1.0, 2.0)

    def test_charset_param(self) -> None:
        """The Content-Type charset decodes and encodes the text."""
        response = self.make(b"text/plain; charset=utf-16-be", "hé".encode("utf-16-be"))
        self.assertEqual(response.text, "hé")
        response.text = "ok"
        self.assertEqual(response.raw_content, "ok".encode("utf-16-be"))

    def test_defaults(self) -> None:
        """Without a charset, HTML/JSON default to UTF-8 and anything else to latin-1."""
        self.assertEqual(infer_charset("text/html"), "utf8")
        self.assertEqual(infer_charset("application/json"), "utf8")
        self.assertEqual(infer_charset("text/plain"), "latin-1")
        self.assertEqual(infer_charset(""), "latin-1")
        self.assertEqual(self.make(b"text/plain", b"\xe9").text, "é")

    def test_declared_in_body(self) -> None:
        """A BOM or an HTML meta charset names the encoding; GBK is read as GB18030."""
        self.assertEqual(infer_charset("text/plain", b"\xef\xbb\xbfx"), "utf-8-sig")
        self.assertEqual(infer_charset("text/html", b'<meta charset="shift_jis">'), "shift_jis")
        self.assertEqual(infer_charset("text/html; charset=GBK"), "gb18030")

    def test_fallback_to_utf8(self) -> None:
        """Text the charset cannot hold is stored as UTF-8 and the Content-Type says so."""
        response = self.make(b"text/plain")
        response.text = "€"
        self.assertEqual(response.raw_content, "€".encode())
        self.assertEqual(response.headers["content-type"], "text/plain; charset=utf-8")
        self.assertEqual(response.text, "€")

    def test_bad_charset(self) -> None:
        """An undecodable body raises in strict mode and is surrogate-escaped otherwise."""
        response = self.make(b"text/plain; charset=utf-8", b"\xff")
        self.assertRaises(ValueError, lambda: response.text)
        self.assertEqual(response.get_text(strict=False), "\udcff")
        response = self.make(b"text/plain; charset=no-such-codec", b"x")
        self.assertRaises(ValueError, lambda: response.text)


class RequestTests(SynchronousTestCase):
    """L{Request} properties."""

    def test_views(self) -> None:
        """Raw bytes fields read as str."""
        request = make_request()
        self.assertEqual(request.method, "GET")
        self.assertEqual(request.scheme, "http")
        self.assertEqual(request.path, "/index.html?a=1&b=2")
        self.assertEqual(request.http_version, "HTTP/1.1")
        self.assertTrue(request.is_http11)
        self.assertFalse(request.is_http10)
        self.assertEqual(request.url, "http://example.com/index.html?a=1&b=2")
        self.assertEqual(request.first_line_format, "relative")
        self.assertEqual(request.timestamp_start, 1.0)

    def test_str_arguments(self) -> None:
        """The constructor accepts str where mitmproxy does, and dict headers."""
        request = make_request(method="post", scheme="https", path="/x", headers={"A": "b"})
        self.assertEqual(request.data.method, b"post")
        self.assertEqual(request.method, "POST")
        self.assertEqual(request.headers.fields, ((b"A", b"b"),))

    def test_setters_store_bytes(self) -> None:
        """Setting str views stores bytes in data."""
        request = make_request()
        request.method = "PUT"
        request.path = "/ü"
        request.http_version = "HTTP/1.0"
        self.assertEqual(
            (request.data.method, request.data.path, request.data.http_version),
            (b"PUT", b"/\xc3\xbc", b"HTTP/1.0"),
        )
        self.assertTrue(request.is_http10)

    def test_set_host_retargets(self) -> None:
        """Setting host changes the target and rewrites the Host header."""
        request = make_request()
        request.host = "other.test"
        self.assertEqual(request.host, "other.test")
        self.assertEqual(request.headers["Host"], "other.test")
        self.assertEqual(request.url, "http://other.test/index.html?a=1&b=2")
        request.port = 8080
        self.assertEqual(request.headers["Host"], "other.test:8080")

    def test_set_host_without_host_header(self) -> None:
        """Setting host adds no Host header, but updates an absolute-form authority."""
        request = make_request(headers=(), authority=b"example.com")
        self.assertEqual(request.first_line_format, "absolute")
        request.host = "other.test"
        self.assertNotIn("host", request.headers)
        self.assertEqual(request.authority, "other.test")

    def test_bad_port(self) -> None:
        """The port must be an int."""
        request = make_request()
        self.assertRaises(ValueError, setattr, request, "port", "80")

    def test_set_url(self) -> None:
        """Setting url sets scheme, host, port and path, and the Host header."""
        request = make_request()
        request.url = "https://new.test:8443/p?q=1"
        self.assertEqual(
            (request.scheme, request.host, request.port, request.path),
            ("https", "new.test", 8443, "/p?q=1"),
        )
        self.assertEqual(request.headers["host"], "new.test:8443")
        request.url = "https://new.test"
        self.assertEqual((request.port, request.path), (443, "/"))
        self.assertRaises(ValueError, setattr, request, "url", "/relative")

    def test_ipv6(self) -> None:
        """IPv6 hosts are bracketed in url, authority and Host, and unbracketed in host."""
        request = make_request(authority=b"x")
        request.url = "http://[::1]:8080/p"
        self.assertEqual(request.host, "::1")
        self.assertEqual(request.url, "http://[::1]:8080/p")
        self.assertEqual(request.authority, "[::1]:8080")
        self.assertEqual(request.headers["host"], "[::1]:8080")
        self.assertEqual(request.pretty_host, "::1")
        request.port = 80
        self.assertEqual(request.url, "http://[::1]/p")

    def test_pretty(self) -> None:
        """pretty_host and pretty_url prefer the Host header over the target."""
        request = make_request(host="10.0.0.1")
        request.headers["Host"] = "example.com:8080"
        self.assertEqual(request.pretty_host, "example.com")
        self.assertEqual(request.pretty_url, "http://example.com:8080/index.html?a=1&b=2")
        self.assertEqual(request.url, "http://10.0.0.1/index.html?a=1&b=2")
        request.host_header = None
        self.assertEqual(request.pretty_host, "10.0.0.1")
        self.assertIsNone(request.host_header)

    def test_connect(self) -> None:
        """A CONNECT request's url is its host and port."""
        request = make_request(method=b"CONNECT", authority=b"example.com:443", path=b"", port=443)
        self.assertEqual(request.first_line_format, "authority")
        self.assertEqual(request.url, "example.com:443")
        self.assertEqual(request.pretty_url, "example.com:443")

    def test_query(self) -> None:
        """query reads the path's query string, and writing it rewrites the path."""
        request = make_request()
        self.assertEqual(request.query["a"], "1")
        request.query["a"] = "x y"
        self.assertEqual(request.path, "/index.html?a=x+y&b=2")
        request.query.add("a", "2")
        self.assertEqual(request.query.get_all("a"), ["x y", "2"])
        del request.query["a"]
        self.assertEqual(request.path, "/index.html?b=2")
        request.query = [("k", "v")]
        self.assertEqual(request.path, "/index.html?k=v")
        request.query = {}
        self.assertEqual(request.path, "/index.html")

    def test_query_keeps_blank_values(self) -> None:
        """Blank query values are kept."""
        request = make_request(path=b"/?a=&b")
        self.assertEqual(list(request.query.items(multi=True)), [("a", ""), ("b", "")])

    def test_path_components(self) -> None:
        """path_components unquotes segments; setting them quotes and keeps the query."""
        request = make_request(path=b"/a%20b/c/?x=1")
        self.assertEqual(request.path_components, ("a b", "c"))
        request.path_components = ["d/e", "f"]
        self.assertEqual(request.path, "/d%2Fe/f?x=1")

    def test_cookies(self) -> None:
        """cookies reads every Cookie header and writing replaces them with one."""
        headers = Headers([(b"Cookie", b"a=1; b=\"x;y\""), (b"Cookie", b"c=3")])
        request = make_request(headers=headers)
        self.assertEqual(list(request.cookies.items(multi=True)), [("a", "1"), ("b", "x;y"), ("c", "3")])
        request.cookies["a"] = "new"
        self.assertEqual(request.headers.get_all("cookie"), ['a=new; b="x;y"; c=3'])
        request.cookies = [("only", "1")]
        self.assertEqual(request.headers["cookie"], "only=1")
        request.cookies = []
        self.assertNotIn("cookie", request.headers)

    def test_urlencoded_form(self) -> None:
        """The form reads a urlencoded body, and writing sets body, type and length."""
        request = make_request(
            method=b"POST",
            headers=Headers([(b"Content-Type", b"application/x-www-form-urlencoded")]),
            content=b"a=1&b=two+words",
        )
        self.assertEqual(request.urlencoded_form["b"], "two words")
        request.urlencoded_form["a"] = "é"
        self.assertEqual(request.content, b"a=%C3%A9&b=two+words")
        self.assertEqual(request.headers["content-length"], str(len(request.content)))

    def test_urlencoded_form_set_on_other_type(self) -> None:
        """Other content types read as an empty form; assigning one sets the type."""
        request = make_request(content=b"{}", headers={"Content-Type": "application/json"})
        self.assertEqual(len(request.urlencoded_form), 0)
        request.urlencoded_form = [("k", "v")]
        self.assertEqual(request.headers["content-type"], "application/x-www-form-urlencoded")
        self.assertEqual(request.content, b"k=v")

    def test_make(self) -> None:
        """make() builds a request from method, URL, body and headers."""
        request = Request.make("POST", "https://example.com:8443/x", "hi", {"X": "1"})
        self.assertEqual((request.method, request.scheme, request.host), ("POST", "https", "example.com"))
        self.assertEqual((request.port, request.path), (8443, "/x"))
        self.assertEqual(request.content, b"hi")
        self.assertEqual(request.headers.fields, ((b"X", b"1"), (b"content-length", b"2")))

    def test_anticomp_anticache(self) -> None:
        """anticomp asks for identity; anticache drops conditional headers."""
        request = make_request(headers={"If-None-Match": "x", "Accept-Encoding": "gzip"})
        request.anticomp()
        request.anticache()
        self.assertEqual(request.headers.fields, ((b"Accept-Encoding", b"identity"),))

    def test_multipart_form_read(self) -> None:
        """multipart_form reads the named parts of a form body as byte pairs."""
        body = (
            b"--XyZ\r\n"
            b'Content-Disposition: form-data; name="title"\r\n\r\n'
            b"Hello\r\n"
            b"--XyZ\r\n"
            b'Content-Disposition: form-data; name="file"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n"
            b"\x89PNG\r\n--XyZ not a boundary\r\n"
            b"--XyZ--\r\n"
        )
        request = make_request(headers={"Content-Type": 'multipart/form-data; boundary="XyZ"'}, content=body)
        self.assertEqual(
            request.multipart_form.fields, ((b"title", b"Hello"), (b"file", b"\x89PNG\r\n--XyZ not a boundary"))
        )
        self.assertEqual(request.multipart_form[b"title"], b"Hello")

    def test_multipart_form_other_types(self) -> None:
        """multipart_form is empty for other content types and for bodies that do not decode."""
        self.assertEqual(len(make_request(headers={"Content-Type": "text/plain"}, content=b"x").multipart_form), 0)
        broken = make_request(
            headers={"Content-Type": "multipart/form-data; boundary=b", "Content-Encoding": "gzip"},
            content=b"--b\r\nnot gzip",
        )
        self.assertEqual(len(broken.multipart_form), 0)

    def test_multipart_form_edit_keeps_part_headers(self) -> None:
        """Editing one field rewrites the body; other parts keep their file name and type."""
        body = (
            b"--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHello\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
            b"Content-Type: image/png\r\n\r\nPNGDATA\r\n--b--\r\n"
        )
        request = make_request(
            headers={"Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(len(body))}, content=body
        )
        request.multipart_form[b"title"] = b"Bye"
        request.multipart_form.add(b"new", b"1")
        self.assertEqual(
            request.content,
            b"--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nBye\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
            b"Content-Type: image/png\r\n\r\nPNGDATA\r\n"
            b"--b\r\nContent-Disposition: form-data; name=\"new\"\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n1\r\n--b--\r\n",
        )
        self.assertEqual(request.headers["content-length"], str(len(request.raw_content)))  # type: ignore[arg-type]

    def test_multipart_form_set_on_plain_request(self) -> None:
        """Setting a form on a request without one sets a multipart Content-Type with a fresh boundary."""
        request = make_request()
        request.multipart_form = [(b"a", b"1"), ("b", "two")]
        content_type = request.headers["content-type"]
        self.assertRegex(content_type, r"^multipart/form-data; boundary=\S{20,}$")
        self.assertEqual(request.multipart_form.fields, ((b"a", b"1"), (b"b", b"two")))
        other = make_request()
        other.multipart_form = [(b"a", b"1")]
        self.assertNotEqual(other.headers["content-type"], content_type)

    def test_multipart_form_refuses_boundary_in_value(self) -> None:
        """A value holding the form's boundary line raises ValueError instead of corrupting the form."""
        request = make_request(headers={"Content-Type": "multipart/form-data; boundary=b"}, content=b"")
        with self.assertRaises(ValueError):
            request.multipart_form = [(b"a", b"x\r\n--b\r\ny")]

    def test_constrain_encoding(self) -> None:
        """constrain_encoding keeps the codings we decode, in the client's order, with their q-values."""
        request = make_request(headers={"Accept-Encoding": "compress, br;q=1.0, gzip, *;q=0.1, zstd, identity;q=0"})
        request.constrain_encoding()
        self.assertEqual(request.headers["accept-encoding"], "br;q=1.0, gzip, zstd, identity;q=0")
        request.headers["Accept-Encoding"] = "compress"
        request.constrain_encoding()
        self.assertEqual(request.headers["accept-encoding"], "")

    def test_constrain_encoding_without_header(self) -> None:
        """Without Accept-Encoding, constrain_encoding adds nothing."""
        request = make_request()
        request.constrain_encoding()
        self.assertNotIn("accept-encoding", request.headers)

    def test_http2_host_header(self) -> None:
        """For HTTP/2, host_header is the authority (falling back to Host) and setting it sets both."""
        request = make_request(http_version=b"HTTP/2.0", authority=b"example.com:8443")
        self.assertTrue(request.is_http2)
        self.assertFalse(request.is_http3)
        self.assertEqual(request.host_header, "example.com:8443")
        request.host_header = "other.example"
        self.assertEqual((request.authority, request.headers["Host"]), ("other.example", "other.example"))
        request.headers.pop("Host")
        request.host_header = "third.example"
        self.assertNotIn("Host", request.headers)
        request.host_header = None
        self.assertEqual(request.data.authority, b"")
        self.assertIsNone(request.host_header)

    def test_trailers(self) -> None:
        """trailers read as Headers and accept Headers, byte pairs, a dict or None."""
        request = make_request(trailers=[(b"X-Checksum", b"abc")])
        self.assertEqual(request.trailers, Headers([(b"X-Checksum", b"abc")]))
        request.trailers = [(b"X-Sum", b"1")]
        self.assertIsInstance(request.trailers, Headers)
        request.trailers = {"x-sum": "2"}
        self.assertEqual(request.trailers["X-Sum"], "2")  # type: ignore[index]
        request.trailers = None
        self.assertIsNone(request.trailers)

    def test_content_must_not_be_str(self) -> None:
        """The constructor refuses a str body."""
        self.assertRaises(ValueError, make_request, content="text")


class ResponseTests(SynchronousTestCase):
    """L{Response}."""

    def test_make_defaults(self) -> None:
        """make() gives an HTTP/1.1 200 OK with an empty body and Content-Length 0."""
        response = Response.make()
        self.assertEqual((response.http_version, response.status_code, response.reason), ("HTTP/1.1", 200, "OK"))
        self.assertEqual(response.content, b"")
        self.assertEqual(response.headers.fields, ((b"content-length", b"0"),))
        self.assertIsNotNone(response.timestamp_end)

    def test_make_reason(self) -> None:
        """The reason comes from the standard phrases; unknown codes have none."""
        self.assertEqual(Response.make(404).reason, "Not Found")
        self.assertEqual(Response.make(599).reason, "")

    def test_make_str_content(self) -> None:
        """A str body is encoded per Content-Type, UTF-8 for HTML."""
        response = Response.make(200, "héllo €", {"Content-Type": "text/html"})
        self.assertEqual(response.raw_content, "héllo €".encode())
        self.assertEqual(response.headers["content-length"], str(len("héllo €".encode())))

    def test_make_headers_forms(self) -> None:
        """Headers may be a dict, a list of byte pairs or Headers."""
        for headers in ({"X-A": "1"}, [(b"X-A", b"1")], Headers(x_a="1")):
            response = Response.make(201, b"ab", headers)
            self.assertEqual(response.headers["x-a"], "1")
            self.assertEqual(response.headers["content-length"], "2")
        self.assertRaises(TypeError, Response.make, 200, b"", 42)
        self.assertRaises(TypeError, Response.make, 200, 42)

    def test_reason_latin1(self) -> None:
        """The reason is latin-1 both ways."""
        response = Response.make()
        response.reason = "Grüße"
        self.assertEqual(response.data.reason, "Grüße".encode("latin-1"))
        self.assertEqual(response.reason, "Grüße")

    def test_cookies(self) -> None:
        """cookies reads Set-Cookie headers as name -> (value, attrs) and writes them back."""
        response = Response.make(
            headers=[
                (b"Set-Cookie", b"sid=abc; Path=/; HttpOnly; Expires=Wed, 21 Oct 2037 07:28:00 GMT"),
                (b"Set-Cookie", b"lang=en"),
            ]
        )
        value, attrs = response.cookies["sid"]
        self.assertEqual(value, "abc")
        self.assertIsInstance(attrs, CookieAttrs)
        self.assertEqual(attrs["path"], "/")
        self.assertIsNone(attrs["httponly"])
        self.assertEqual(attrs["expires"], "Wed, 21 Oct 2037 07:28:00 GMT")
        response.cookies["lang"] = ("de", CookieAttrs([("Max-Age", "60")]))
        self.assertEqual(
            response.headers.get_all("set-cookie"),
            ["sid=abc; Path=/; HttpOnly; Expires=Wed, 21 Oct 2037 07:28:00 GMT", "lang=de; Max-Age=60"],
        )

    def test_refresh_dates(self) -> None:
        """refresh() shifts Date, Expires and Last-Modified by the time since the response came."""
        response = Response.make(
            headers={
                "Date": "Mon, 01 Jan 2024 00:00:00 GMT",
                "Expires": "Mon, 01 Jan 2024 01:00:00 GMT",
                "Last-Modified": "Sun, 31 Dec 2023 00:00:00 GMT",
                "Cache-Control": "max-age=60",
            }
        )
        response.timestamp_start = 1_000_000.0
        response.refresh(now=1_000_000.0 + 86400 + 30)
        self.assertEqual(response.headers["date"], "Tue, 02 Jan 2024 00:00:30 GMT")
        self.assertEqual(response.headers["expires"], "Tue, 02 Jan 2024 01:00:30 GMT")
        self.assertEqual(response.headers["last-modified"], "Mon, 01 Jan 2024 00:00:30 GMT")
        self.assertEqual(response.headers["cache-control"], "max-age=60")

    def test_refresh_leaves_non_dates(self) -> None:
        """An Expires that is not a date (like "0") stays as it is."""
        response = Response.make(headers={"Expires": "0"})
        response.refresh(now=response.timestamp_start + 100)
        self.assertEqual(response.headers["expires"], "0")

    def test_refresh_cookies(self) -> None:
        """refresh() shifts each cookie's expires, drops one that is no date, and leaves others alone."""
        lines = [
            "sid=abc; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT; HttpOnly",
            "lang=en; expires=soon",
            "plain=1; Max-Age=60",
            "novalue; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
        ]
        response = Response.make(headers=[(b"Set-Cookie", line.encode()) for line in lines])
        response.refresh(now=response.timestamp_start + 3600)
        self.assertEqual(
            response.headers.get_all("set-cookie"),
            ["sid=abc; Path=/; Expires=Wed, 21 Oct 2037 08:28:00 GMT; HttpOnly", "lang=en", *lines[2:]],
        )

    def test_refresh_defaults_to_now(self) -> None:
        """Without now, refresh() moves dates to the current time."""
        response = Response.make(headers={"Date": "Mon, 01 Jan 2024 00:00:00 GMT"})
        response.timestamp_start = 1704067200.0  # that same instant
        response.refresh()
        refreshed = parsedate_to_datetime(response.headers["date"]).timestamp()
        self.assertLess(abs(refreshed - time.time()), 5)

    def test_stream_default(self) -> None:
        """Messages do not stream unless told to, per instance."""
        response = Response.make()
        self.assertIs(response.stream, False)
        response.stream = True
        self.assertIs(Response.make().stream, False)


class HTTPFlowTests(SynchronousTestCase):
    """L{HTTPFlow}."""

    def test_flow(self) -> None:
        """An HTTP flow has type http, no response or websocket yet, and the request's start."""
        client = Client(("127.0.0.1", 5000), ("127.0.0.1", 8080))
        flow = HTTPFlow(client, Server(("example.com", 80)), live=True)
        flow.request = make_request()
        self.assertEqual(flow.type, "http")
        self.assertIsNone(flow.response)
        self.assertIsNone(flow.websocket)
        self.assertIsNone(flow.error)
        self.assertEqual(flow.timestamp_start, 1.0)
        flow.response = Response.make(204)
        flow.websocket = WebSocketData()
        flow.kill()
        self.assertEqual(flow.error, Error(Error.KILLED_MESSAGE, flow.error.timestamp))  # type: ignore[union-attr]
        self.assertIn("response = Response(204, no content)", repr(flow))

    def test_json_round_trip_of_views(self) -> None:
        """A script-built JSON response keeps its content type and body."""
        body = json.dumps({"ok": True})
        response = Response.make(200, body, {"Content-Type": "application/json"})
        self.assertEqual(response.json(), {"ok": True})

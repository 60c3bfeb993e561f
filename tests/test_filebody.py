# -*- test-case-name: tests.test_filebody -*-
"""Tests for L{twisted_mitm.proxy.filebody}: a hook-made response's body read from disk."""

from __future__ import annotations

from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from tests.support import curl, respond, start_proxy, start_raw_origin
from twisted_mitm import http1
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.http import HTTPFlow, Response
from twisted_mitm.proxy.filebody import FileBody, made_body_source
from twisted_mitm.proxy.pipe import Fields


class RecordingSink:
    """A body sink that records what it is given."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.finished = False
        self.failure: Failure | None = None

    def write(self, piece: http1.Data) -> None:
        self.pieces.append(piece.data)

    def finish(self, trailers: Fields) -> None:
        self.finished = True

    def abort(self, reason: Failure) -> None:
        self.failure = reason


class FileBodyTests(SynchronousTestCase):
    """L{FileBody} as a body source, driven by a fake clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.path = self.mktemp()
        self.write(b"abcdefghij")

    def write(self, data: bytes) -> None:
        with open(self.path, "wb") as f:
            f.write(data)

    def source(self) -> tuple[FileBody, RecordingSink]:
        body = FileBody.open(self.path, self.clock)
        body.piece_size = 4
        self.addCleanup(body.stopProducing)
        sink = RecordingSink()
        return body, sink

    def test_interface(self) -> None:
        """It is a push producer, framed by the file's size."""
        body, _ = self.source()
        self.assertTrue(verifyObject(IPushProducer, body.producer))
        self.assertEqual(body.framing, http1.BodyFraming(http1.FramingKind.LENGTH, 10))

    def test_reads_until_paused(self) -> None:
        """Nothing is read before read_body; then pieces follow, each on a later reactor turn,
        until a full destination pauses the source (as a transport does, from inside write)."""
        body, sink = self.source()
        body.hold_body()
        self.clock.advance(0)
        self.assertEqual(sink.pieces, [])
        sink.write = lambda piece: (sink.pieces.append(piece.data), body.pauseProducing())  # type: ignore[method-assign]
        body.read_body(sink)
        self.assertEqual(sink.pieces, [])
        self.clock.advance(0)
        self.assertEqual((sink.pieces, self.clock.getDelayedCalls()), ([b"abcd"], []))
        body.resumeProducing()
        self.clock.advance(0)
        self.assertEqual(sink.pieces, [b"abcd", b"efgh"])

    def test_whole_file(self) -> None:
        """Unpaused, the pieces run to the end of the file, then the body finishes."""
        body, sink = self.source()
        body.read_body(sink)
        self.clock.advance(0)
        self.assertEqual((sink.pieces, sink.finished), ([b"abcd", b"efgh", b"ij"], True))

    def test_stop(self) -> None:
        """Once stopped, the file is closed and nothing more is read."""
        body, sink = self.source()
        body.read_body(sink)
        body.stopProducing()
        body.resumeProducing()
        self.clock.advance(0)
        self.assertEqual((sink.pieces, sink.finished, self.clock.getDelayedCalls()), ([], False, []))

    def test_file_grows(self) -> None:
        """Bytes added after the file was opened are not sent: the body is as long as declared."""
        body, sink = self.source()
        self.write(b"abcdefghijKLMNOP")
        body.read_body(sink)
        for _ in range(5):
            self.clock.advance(0)
        self.assertEqual((b"".join(sink.pieces), sink.finished), (b"abcdefghij", True))

    def test_file_shrinks(self) -> None:
        """A file that ends early fails the body, with the reason."""
        body, sink = self.source()
        self.write(b"abc")
        body.read_body(sink)
        for _ in range(3):
            self.clock.advance(0)
        assert sink.failure is not None
        self.assertFalse(sink.finished)
        self.assertIn("ended 7 bytes early", sink.failure.value.reason)

    def test_made_body_source(self) -> None:
        """A response without body_file has no source of its own; one whose file is gone is a 502."""
        self.assertIsNone(made_body_source(Response.make(200, b"in memory"), self.clock))
        response = Response.make(200)
        response.body_file = self.path + ".gone"
        with self.assertRaises(ProtocolError) as caught:
            made_body_source(response, self.clock)
        self.assertEqual(caught.exception.status, 502)


class HookMadeFileResponseTests(TestCase):
    """A hook answering with C{body_file}, through the proxy."""

    async def test_served_from_disk(self) -> None:
        """The client gets the file's bytes with the declared length; the server is never asked;
        the response hook runs after the body was sent, which it sees empty."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"0123456789" * 100000)
        seen: list[bytes | None] = []

        class Answer:
            def request(self, flow: HTTPFlow) -> None:
                flow.response = Response.make(200)
                flow.response.headers["Content-Length"] = "1000000"
                flow.response.body_file = path

            def response(self, flow: HTTPFlow) -> None:
                assert flow.response is not None
                seen.append(flow.response.raw_content)

        origin = start_raw_origin(self, respond(200, b"origin"))
        proxy = start_proxy(self, addons=[Answer()])
        out, err, code = await curl("-i", "-x", proxy.url, origin.url + "/")
        self.assertEqual(code, 0, err)
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertIn(b"content-length: 1000000", head.lower())
        self.assertEqual(body, b"0123456789" * 100000)
        self.assertEqual((seen, origin.connections), ([b""], []))

    async def test_head_request(self) -> None:
        """A HEAD request gets the head only."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"x" * 5000)

        class Answer:
            def request(self, flow: HTTPFlow) -> None:
                flow.response = Response.make(200)
                flow.response.headers["Content-Length"] = "5000"
                flow.response.body_file = path

        proxy = start_proxy(self, addons=[Answer()])
        out, err, code = await curl("-I", "-x", proxy.url, "http://127.0.0.1:9/")
        self.assertEqual(code, 0, err)
        self.assertIn(b"content-length: 5000", out.lower())
        self.assertTrue(out.endswith(b"\r\n\r\n"), out)

# -*- test-case-name: tests.test_spool -*-
"""Tests for L{twisted_mitm.spool}, L{twisted_mitm.proxy.tee} and C{store_streamed_bodies}."""

from __future__ import annotations

import gc
import hashlib
import io
import os
import stat
import sys
from pathlib import Path
from typing import Any

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import curl, listen, reactor, respond, rss, start_proxy, start_raw_origin, wait_until
from tests.test_flow import make_http_flow
from tests.test_io import read_flows
from tests.test_streaming_memory import BLOCK, BUDGET, TOTAL, Counter, DownloadOrigin, Peak
from twisted_mitm import http1
from twisted_mitm.http import HTTPFlow, Response
from twisted_mitm.io import FlowReader, FlowWriter, tnetstring
from twisted_mitm.proxy.tee import TeeWriter
from twisted_mitm.spool import SpoolDirectory, SpooledBody


def spooled(test: SynchronousTestCase, data: bytes) -> SpooledBody:
    """A L{SpooledBody} holding C{data}, in a folder removed after the test."""
    directory = SpoolDirectory()
    test.addCleanup(directory.remove)
    spool = directory.new_spool()
    spool.write(data)
    return spool.close()


class SpoolTests(SynchronousTestCase):
    """A body written to a spool reads back whole, from a private file that does not outlive it."""

    def test_round_trip(self) -> None:
        """What was written in pieces reads back whole, and in pieces of at most READ_SIZE."""
        directory = SpoolDirectory()
        self.addCleanup(directory.remove)
        spool = directory.new_spool()
        for piece in (b"abc", b"", b"x" * 300_000):
            spool.write(piece)
        body = spool.close()
        self.assertEqual((len(body), body.read()), (300_003, b"abc" + b"x" * 300_000))
        self.assertEqual([len(chunk) for chunk in body.chunks()], [262144, 37859])

    def test_private_files(self) -> None:
        """Spool files are mode 0600 in a folder of mode 0700."""
        body = spooled(self, b"secret")
        self.assertEqual(stat.S_IMODE(os.stat(body.path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(body.path)).st_mode), 0o700)

    def test_deleted_when_freed(self) -> None:
        """The file goes when the last reference to its body does."""
        body = spooled(self, b"data")
        path = body.path
        del body
        gc.collect()
        self.assertFalse(os.path.exists(path))

    def test_discard(self) -> None:
        """A failed body's file is removed at once."""
        directory = SpoolDirectory()
        self.addCleanup(directory.remove)
        spool = directory.new_spool()
        spool.write(b"half")
        spool.discard()
        self.assertFalse(os.path.exists(spool.path))

    def test_directory_removed(self) -> None:
        """Removing the directory takes the files still in it (the proxy stops)."""
        directory = SpoolDirectory()
        body = directory.new_spool().close()
        directory.remove()
        self.assertFalse(os.path.exists(os.path.dirname(body.path)))

    def test_short_file(self) -> None:
        """A file cut behind the body's back is an error, never a short body."""
        body = spooled(self, b"0123456789")
        with open(body.path, "r+b") as file:
            file.truncate(4)
        self.assertRaises(ValueError, list, body.chunks())


class SpooledMessageTests(SynchronousTestCase):
    """A message holding a spooled body reads and saves like one holding the bytes."""

    def test_content_reads_the_file(self) -> None:
        """C{raw_content} and C{content} read the body from its file; setting them replaces it."""
        response = Response.make(200, b"")
        response.raw_content = spooled(self, b"on disk")
        self.assertEqual((response.raw_content, response.content, response.text), (b"on disk", b"on disk", "on disk"))
        response.content = b"replaced"
        self.assertEqual(response.data.content, b"replaced")

    def test_tnetstring_streams_the_file(self) -> None:
        """The encoding of a value holding a spooled body is that of the same value holding its bytes."""
        data = b"x" * 600_000 + b"end"
        value = {"content": spooled(self, data), "other": [1, "two"]}
        expected = tnetstring.dumps({"content": data, "other": [1, "two"]})
        self.assertEqual(tnetstring.dumps(value), expected)
        written = io.BytesIO()
        tnetstring.dump(value, written)
        self.assertEqual(written.getvalue(), expected)

    def test_flow_file(self) -> None:
        """A flow whose response body is spooled is saved with that body and reads back with it."""
        flow = HTTPFlow.from_state(_flow_state())
        assert flow.response is not None
        flow.response.raw_content = spooled(self, b"kept body")
        saved = io.BytesIO()
        FlowWriter(saved).add(flow)
        saved.seek(0)
        (loaded,) = FlowReader(saved).stream()
        self.assertEqual(loaded.response.raw_content, b"kept body")

    def test_copy_shares_the_file(self) -> None:
        """C{flow.copy()} keeps the spooled body without reading it."""
        flow = HTTPFlow.from_state(_flow_state())
        assert flow.response is not None
        body = flow.response.raw_content = spooled(self, b"kept body")
        self.assertIs(flow.copy().response.data.content, body)  # type: ignore[union-attr]


def _flow_state() -> dict[str, Any]:
    flow = make_http_flow()
    flow.response = Response.make(200, b"")
    return flow.get_state()


class RecordingWriter:
    """A body writer that records what it is asked to write."""

    transport: Any = None

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def write_piece(self, piece: http1.Data) -> None:
        self.calls.append(("piece", piece.data))

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def finish(self, trailers: Any) -> None:
        self.calls.append(("finish", trailers))


class TeeWriterTests(SynchronousTestCase):
    """L{TeeWriter} writes through and copies the body bytes, not the framing."""

    def test_copies_pieces_and_writes(self) -> None:
        """Pieces and transformed data reach both the writer and the copy; the end reaches the writer."""
        writer, copied = RecordingWriter(), []
        tee = TeeWriter(writer, copied.append)
        tee.write_piece(http1.Data(b"ab", chunk_size=2, chunk_end=True))
        tee.write(b"cd")
        tee.finish(((b"x", b"y"),))
        self.assertEqual(writer.calls, [("piece", b"ab"), ("write", b"cd"), ("finish", ((b"x", b"y"),))])
        self.assertEqual(copied, [b"ab", b"cd"])


class Shout:
    """An addon that streams every response through an upper-casing transform and records what the
    C{response} hook saw."""

    def __init__(self) -> None:
        self.seen: list[bytes | None] = []

    def responseheaders(self, flow: HTTPFlow) -> None:
        assert flow.response is not None
        flow.response.stream = lambda chunk: chunk.upper()

    def response(self, flow: HTTPFlow) -> None:
        assert flow.response is not None
        self.seen.append(flow.response.content)


class StoreStreamedBodiesTests(TestCase):
    """With C{store_streamed_bodies}, streamed bodies reach hooks and flow files from disk."""

    timeout = 60

    def setUp(self) -> None:
        self.path = Path(self.mktemp()).absolute()

    async def test_transformed_body_is_kept(self) -> None:
        """The transform's output is what the response hook and the flow file get; the request body too."""
        body = b"streamed body " * 10_000
        origin = start_raw_origin(self, respond(200, body))
        shout = Shout()
        proxy = start_proxy(
            self,
            options=["stream_large_bodies=1k", "store_streamed_bodies=true", f"save_stream_file={self.path}"],
            addons=[shout],
        )
        upload = b"u" * 5000
        out, _, _ = await curl("-x", proxy.url, "--data-binary", upload.decode(), f"{origin.url}/")
        self.assertEqual(out, body.upper())
        self.assertEqual(shout.seen, [body.upper()])
        await wait_until(lambda: self.path.exists() and read_flows(self.path), what="the saved flow")
        (flow,) = read_flows(self.path)
        self.assertEqual((flow.request.content, flow.response.content), (upload, body.upper()))

    async def test_off_by_default(self) -> None:
        """Without the option, a streamed body is not kept (SPEC §4)."""
        body = b"streamed body " * 10_000
        origin = start_raw_origin(self, respond(200, body))
        shout = Shout()
        proxy = start_proxy(self, options=["stream_large_bodies=1k"], addons=[shout])
        await curl("-x", proxy.url, f"{origin.url}/")
        self.assertEqual(shout.seen, [b""])

    async def test_large_download_bounded_memory(self) -> None:
        """A kept 256 MiB streamed download grows RSS by less than the streaming budget, and the
        saved flow's body has the origin body's hash."""
        port = listen(self, Factory.forProtocol(DownloadOrigin))
        proxy = start_proxy(self, options=["stream_large_bodies=1m", "store_streamed_bodies=true", f"save_stream_file={self.path}"])
        counter = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port, timeout=5), Counter())
        self.addCleanup(counter.transport.abortConnection)
        before = rss()
        peak = Peak(self)
        counter.send(b"GET http://127.0.0.1:%d/big HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port))
        await wait_until(lambda: counter.count >= TOTAL, timeout=40, what="the whole body")
        await wait_until(lambda: self.path.exists() and self.path.stat().st_size > TOTAL, timeout=10, what="the saved flow")
        peak.stop()
        print(f"\nkept download: RSS peak +{(peak.peak - before) / (1 << 20):.1f} MiB", file=sys.stderr)
        self.assertLess(peak.peak - before, BUDGET)
        self.assertEqual(_saved_body_hash(self.path), _origin_body_hash())


def _origin_body_hash() -> str:
    digest = hashlib.sha256()
    for _ in range(TOTAL // len(BLOCK)):
        digest.update(BLOCK)
    return digest.hexdigest()


def _saved_body_hash(path: Path) -> str:
    """The response body's hash of the one flow in C{path} (read into memory once, after the measurement)."""
    with path.open("rb") as file:
        (flow,) = FlowReader(file).stream()
    return hashlib.sha256(flow.response.raw_content).hexdigest()


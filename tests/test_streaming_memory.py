# -*- test-case-name: tests.test_streaming_memory -*-
"""Memory stays bounded while a 256 MiB body streams to or from a stalled peer (SPEC §4).

The proxy, the origin and the client all run in this process, so the process's RSS
bounds the proxy's: the origin and the client make and count their bytes lazily and
never hold more than one block.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.support import RawClient, listen, raw_client, reactor, rss, start_proxy, wait_until

TOTAL = 256 << 20
BLOCK = b"m" * (256 << 10)
#: How much the process's RSS may grow while the body streams.
BUDGET = 32 << 20
STALL = 3.0


@implementer(IPullProducer)
class LazyBody:
    """Writes C{total} bytes to a transport one block at a time, as the transport asks for them."""

    def __init__(self, transport: Any, total: int) -> None:
        self.transport = transport
        self.remaining = total
        transport.registerProducer(self, False)

    def resumeProducing(self) -> None:
        block = BLOCK if self.remaining >= len(BLOCK) else BLOCK[: self.remaining]
        self.remaining -= len(block)
        self.transport.write(block)
        if not self.remaining:
            self.transport.unregisterProducer()

    def stopProducing(self) -> None:
        self.remaining = 0


class Counter(RawClient):
    """A raw client that keeps only the response head and counts the body bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" not in self.data:
            self.data += data
            head, _, body = self.data.partition(b"\r\n\r\n")
            if _:
                self.data = head + b"\r\n\r\n"
                self.count = len(body)
        else:
            self.count += len(data)
        self._check()


class DownloadOrigin(Protocol):
    """Answers the first request with a lazily produced 256 MiB body."""

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % TOTAL)
            LazyBody(self.transport, TOTAL)


class UploadOrigin(Protocol):
    """Stalls on an upload for a while after its head, then counts the body and answers."""

    def __init__(self, stalled: list[bool]) -> None:
        self.stalled = stalled
        self.count = -1

    def dataReceived(self, data: bytes) -> None:
        if self.count < 0:
            head, _, body = data.partition(b"\r\n\r\n")
            self.count = len(body)
            self.transport.pauseProducing()
            self.stalled.append(True)
            reactor.callLater(STALL, self.transport.resumeProducing)
        else:
            self.count += len(data)
        if self.count == TOTAL:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


class Peak:
    """Samples RSS every 20 ms while it runs; C{peak} is the highest sample."""

    def __init__(self, test: TestCase) -> None:
        self.peak = rss()
        self._loop = LoopingCall(self._sample)
        self._loop.start(0.02)
        test.addCleanup(self.stop)

    def _sample(self) -> None:
        self.peak = max(self.peak, rss())

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()


class MemoryTests(TestCase):
    """A 256 MiB stream to or from a stalled peer costs the proxy a small constant."""

    timeout = 60

    def report(self, direction: str, before: int, stalled: int, peak: int) -> None:
        mib = 1 << 20
        print(
            f"\n{direction}: RSS before {before / mib:.1f} MiB, at the stall +{(stalled - before) / mib:.1f} MiB, "
            f"peak +{(peak - before) / mib:.1f} MiB",
            file=sys.stderr,
        )

    async def test_download_to_stalled_reader(self) -> None:
        """Streaming 256 MiB to a client that stops reading for 3 s grows RSS by less than 32 MiB."""
        port = listen(self, Factory.forProtocol(DownloadOrigin))
        proxy = start_proxy(self, options=["stream_large_bodies=1m"])
        counter = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port, timeout=5), Counter())
        self.addCleanup(counter.transport.abortConnection)
        before = rss()
        peak = Peak(self)
        counter.send(b"GET http://127.0.0.1:%d/big HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port))
        await wait_until(lambda: counter.count >= 1 << 20, what="the first MiB")
        counter.transport.pauseProducing()
        await deferLater(reactor, STALL, lambda: None)
        stalled = rss()
        self.assertLess(counter.count, TOTAL // 2)
        counter.transport.resumeProducing()
        await wait_until(lambda: counter.count >= TOTAL, timeout=40, what="the whole body")
        peak.stop()
        self.report("download", before, stalled, peak.peak)
        self.assertEqual(counter.count, TOTAL)
        self.assertIn(b"Content-Length: %d" % TOTAL, counter.data)
        self.assertLess(stalled - before, BUDGET)
        self.assertLess(peak.peak - before, BUDGET)

    async def test_upload_to_stalled_origin(self) -> None:
        """Streaming a 256 MiB upload to an origin that stops reading for 3 s grows RSS by less than 32 MiB."""
        stalled_flags: list[bool] = []
        origins: list[UploadOrigin] = []

        def build() -> UploadOrigin:
            origins.append(UploadOrigin(stalled_flags))
            return origins[-1]

        port = listen(self, Factory.forProtocol(build))
        self.addCleanup(lambda: [origin.transport.abortConnection() for origin in origins])
        proxy = start_proxy(self, options=["stream_large_bodies=1m"])
        client = await raw_client(self, proxy.port)
        before = rss()
        peak = Peak(self)
        client.send(b"PUT http://127.0.0.1:%d/up HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n\r\n" % (port, port, TOTAL))
        body = LazyBody(client.transport, TOTAL)
        await wait_until(lambda: stalled_flags, what="the origin to stall")
        await deferLater(reactor, STALL - 0.5, lambda: None)
        stalled = rss()
        self.assertLess(TOTAL - body.remaining, TOTAL // 2)
        await wait_until(lambda: client.data.endswith(b"\r\n\r\nok"), timeout=40, what="the origin's answer")
        peak.stop()
        self.report("upload", before, stalled, peak.peak)
        self.assertEqual(origins[0].count, TOTAL)
        self.assertLess(stalled - before, BUDGET)
        self.assertLess(peak.peak - before, BUDGET)

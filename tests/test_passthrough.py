"""Hosts that are not intercepted (C{ignore_hosts}, C{allow_hosts}): a raw relay, over loopback.

The client sees the origin's own certificate; no hooks run unless C{show_ignored_hosts} is
set; and the relay passes large transfers through byte for byte with backpressure both
ways, so the proxy's memory does not grow with the transfer.
"""

from __future__ import annotations

import hashlib
import random
import socket
import threading
import time
from collections.abc import Iterator

from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.support import (
    listen,
    origin_ca,
    origin_ca_path,
    origin_certificate,
    reactor,
    respond,
    rss,
    start_proxy,
    start_raw_origin,
    wait_until,
)
from tests.test_tls_proxy import TIMEOUT, Recorder, client_context, connect_tunnel, fetch_over_tls
from twisted_mitm.tcp import TCPFlow

MiB = 1024 * 1024
LARGE = 64 * MiB
CHUNK = 64 * 1024
# How much the proxy's resident memory may grow while relaying LARGE bytes.
RSS_GROWTH_LIMIT = 32 * MiB
# How long the slow side sits still before it reads at all.
STALL = 1.0


class IgnoredHostTests(TestCase):
    """A CONNECT to a host that is not intercepted reaches the origin's own TLS."""

    def setUp(self) -> None:
        self.origin = start_raw_origin(self, respond(200, b"straight from origin"), tls=origin_certificate("localhost", "127.0.0.1"))
        self.recorder = Recorder()
        self.trust_origin = client_context(origin_ca_path(self))

    def _proxy(self, *options: str) -> int:
        return start_proxy(self, options=list(options), addons=[self.recorder]).port

    async def _fetch(self, proxy_port: int, host: str = "localhost") -> bytes:
        result = await deferToThread(fetch_over_tls, proxy_port, host, self.origin.port, self.trust_origin)
        self.assertEqual(result.certificate.issuer, origin_ca()[1].subject)
        return result.response

    async def test_ignore_hosts(self) -> None:
        """ignore_hosts matching host:port: the client gets the origin's certificate, and no hook runs past http_connect."""
        response = await self._fetch(self._proxy(f"ignore_hosts=^localhost:{self.origin.port}$"))
        self.assertTrue(response.endswith(b"straight from origin"), response)
        await wait_until(lambda: self.origin.lost, TIMEOUT, "the origin connection to close")
        self.assertEqual(self.recorder.names(), ["http_connect"])

    async def test_allow_hosts(self) -> None:
        """With allow_hosts, a host that matches none of them is passed through."""
        response = await self._fetch(self._proxy(r"allow_hosts=^example\.com:"))
        self.assertTrue(response.endswith(b"straight from origin"), response)
        self.assertEqual(self.recorder.names(), ["http_connect"])

    async def test_ignored_by_sni(self) -> None:
        """A CONNECT to an IP address whose TLS SNI names an ignored host is passed through."""

        def fetch() -> bytes:
            with connect_tunnel(proxy_port, f"127.0.0.1:{self.origin.port}") as raw:
                with self.trust_origin.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    return tls.recv(65536)

        proxy_port = self._proxy("ignore_hosts=^localhost:")
        response = await deferToThread(fetch)
        self.assertTrue(response.startswith(b"HTTP/1.1 200"), response)
        self.assertEqual(self.recorder.names(), ["http_connect"])

    async def test_show_ignored_hosts(self) -> None:
        """show_ignored_hosts=true shows an ignored host as a TCP flow with the tcp_* hooks."""
        response = await self._fetch(self._proxy("ignore_hosts=^localhost:", "show_ignored_hosts=true"))
        self.assertTrue(response.endswith(b"straight from origin"), response)
        await wait_until(lambda: "tcp_end" in self.recorder.names(), TIMEOUT, "tcp_end")
        names = self.recorder.names()
        self.assertEqual((names[:2], names[-1]), (["http_connect", "tcp_start"], "tcp_end"))
        self.assertIn("tcp_message", names)
        flow = self.recorder.flows("tcp_end")[0]
        assert isinstance(flow, TCPFlow)
        self.assertTrue(flow.messages[0].from_client)
        self.assertEqual(flow.messages[0].content[:1], b"\x16")


def chunks(count: int, seed: int) -> Iterator[bytes]:
    """C{count} chunks of pseudo-random bytes, each tagged with its index, the same for a seed."""
    block = random.Random(seed).randbytes(CHUNK)
    for index in range(count):
        yield index.to_bytes(8, "big") + block[8:]


def digest_of(count: int, seed: int) -> str:
    digest = hashlib.sha256()
    for chunk in chunks(count, seed):
        digest.update(chunk)
    return digest.hexdigest()


class _MemoryWatch:
    """Samples L{rss} from a thread until stopped; C{peak} is the highest sample."""

    def __init__(self) -> None:
        self.baseline = rss()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss())

    def stop(self) -> int:
        """Stop sampling; return the growth over the baseline."""
        self._stop.set()
        self._thread.join(TIMEOUT)
        return self.peak - self.baseline


@implementer(IPullProducer)
class _Source(Protocol):
    """Sends L{chunks} as fast as the connection takes them, and closes."""

    def __init__(self, count: int, seed: int) -> None:
        self._chunks = chunks(count, seed)
        self.sent = 0

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, False)

    def resumeProducing(self) -> None:
        chunk = next(self._chunks, None)
        if chunk is None:
            self.transport.unregisterProducer()
            self.transport.loseConnection()
        else:
            self.sent += len(chunk)
            self.transport.write(chunk)

    def stopProducing(self) -> None:
        self._chunks = iter(())


class _SlowSink(Protocol):
    """Hashes what it reads; stops reading for L{STALL} seconds first."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0
        self.ended = False

    def connectionMade(self) -> None:
        self.transport.pauseProducing()
        reactor.callLater(STALL, self.transport.resumeProducing)

    def dataReceived(self, data: bytes) -> None:
        self.hash.update(data)
        self.size += len(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.ended = True


def download_slowly(proxy_port: int, authority: str) -> tuple[str, int]:
    """Through a tunnel, sit still for L{STALL} seconds, then read to EOF in small reads (blocking)."""
    digest = hashlib.sha256()
    size = 0
    with connect_tunnel(proxy_port, authority) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        time.sleep(STALL)
        while chunk := sock.recv(16 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def upload(proxy_port: int, authority: str, count: int, seed: int) -> None:
    """Through a tunnel, send L{chunks} and half-close, then wait for the close (blocking)."""
    with connect_tunnel(proxy_port, authority) as sock:
        for chunk in chunks(count, seed):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)


class LargeTransferTests(TestCase):
    """A large relay through a slow reader: byte-identical, bounded memory."""

    async def test_download_to_slow_client(self) -> None:
        """64 MiB from the origin reach a client that stalls first, unchanged, without the proxy buffering them."""
        count = LARGE // CHUNK
        port = listen(self, Factory.forProtocol(lambda: _Source(count, seed=1)))
        proxy = start_proxy(self, options=["ignore_hosts=.*"])
        watch = _MemoryWatch()
        try:
            digest, size = await deferToThread(download_slowly, proxy.port, f"127.0.0.1:{port}")
        finally:
            growth = watch.stop()
        self.assertEqual(size, LARGE)
        self.assertEqual(digest, digest_of(count, seed=1))
        self.assertLess(growth, RSS_GROWTH_LIMIT, f"RSS grew by {growth / MiB:.1f} MiB")

    async def test_upload_to_slow_origin(self) -> None:
        """64 MiB from the client reach an origin that stalls first, unchanged, without the proxy buffering them."""
        count = LARGE // CHUNK
        sinks: list[_SlowSink] = []
        port = listen(self, Factory.forProtocol(lambda: sinks.append(_SlowSink()) or sinks[-1]))
        proxy = start_proxy(self, options=["ignore_hosts=.*"])
        watch = _MemoryWatch()
        try:
            await deferToThread(upload, proxy.port, f"127.0.0.1:{port}", count, 2)
            await wait_until(lambda: sinks and sinks[0].ended, TIMEOUT, "the origin to see the end")
        finally:
            growth = watch.stop()
        self.assertEqual(sinks[0].size, LARGE)
        self.assertEqual(sinks[0].hash.hexdigest(), digest_of(count, seed=2))
        self.assertLess(growth, RSS_GROWTH_LIMIT, f"RSS grew by {growth / MiB:.1f} MiB")

    async def test_tcp_flow_keeps_backpressure(self) -> None:
        """Shown as a TCP flow (show_ignored_hosts), the relay still stops reading the origin while the client stalls."""
        count = LARGE // CHUNK
        sources: list[_Source] = []
        port = listen(self, Factory.forProtocol(lambda: sources.append(_Source(count, seed=3)) or sources[-1]))
        proxy = start_proxy(self, options=["ignore_hosts=.*", "show_ignored_hosts=true"])
        downloading = deferToThread(download_slowly, proxy.port, f"127.0.0.1:{port}")
        await wait_until(lambda: sources, TIMEOUT, "the origin connection")
        await deferLater(reactor, STALL * 0.8, lambda: None)
        sent_while_stalled = sources[0].sent
        digest, size = await downloading
        self.assertLess(sent_while_stalled, LARGE // 4, "the origin was read while the client stalled")
        self.assertEqual((size, digest), (LARGE, digest_of(count, seed=3)))

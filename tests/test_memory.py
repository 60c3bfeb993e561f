# -*- test-case-name: tests.test_memory -*-
"""L{twisted_mitm.memory}: freed memory goes back to the system; the memory report.

The loopback test measures this very process (the proxy runs in it), so its burst is
large next to what the rest of the test run leaves behind, and its bound generous.
"""

from __future__ import annotations

import os
import tracemalloc
from typing import Any

from twisted.trial.unittest import SynchronousTestCase, TestCase
from websockets.asyncio.client import connect

from tests.support import rss, start_proxy, wait_until
from tests.test_websocket import aio, echo, start_server
from twisted_mitm import memory
from twisted_mitm.service import MitmService

MiB = 1 << 20

SMAPS_ROLLUP = """\
55d0c0000000-7ffd00000000 ---p 00000000 00:00 0                          [rollup]
Rss:               57344 kB
Pss:               50000 kB
Anonymous:         40960 kB
Swap:                  0 kB
"""


class TracingFramesTests(SynchronousTestCase):
    """C{TWISTED_MITM_TRACEMALLOC} says how many frames to trace; unset means no tracing."""

    def test_values(self) -> None:
        """A number is taken as it is (below 1: none); any other text traces one frame; empty or unset, none."""
        cases = {"": 0, " ": 0, "25": 25, "0": 0, "-3": 0, "yes": 1}
        for text, frames in cases.items():
            self.assertEqual(memory.tracing_frames({memory.TRACEMALLOC_ENV: text}), frames, text)
        self.assertEqual(memory.tracing_frames({}), 0)


class ReportTests(SynchronousTestCase):
    """The report: /proc figures, garbage collector counts, and the top allocation sites when tracing."""

    def test_resident_figures(self) -> None:
        """Rss and Anonymous are read from smaps_rollup, in MiB; a missing file gives nothing."""
        path = self.mktemp()
        with open(path, "w") as file:
            file.write(SMAPS_ROLLUP)
        self.assertEqual(memory.resident_mib(path), {"Rss": 56.0, "Anonymous": 40.0})
        self.assertEqual(memory.resident_mib(path + ".missing"), {})

    def test_without_tracing(self) -> None:
        """Without tracing, the report gives the sizes and says how to turn tracing on."""
        self.assertFalse(tracemalloc.is_tracing())
        lines = memory.memory_report()
        self.assertRegex(lines[0], r"^memory: RSS [0-9.]+ MiB, anonymous [0-9.]+ MiB; gc counts")
        self.assertIn(memory.TRACEMALLOC_ENV, lines[1])

    def test_with_tracing(self) -> None:
        """While tracing, the report lists where the memory was allocated, largest first."""
        tracemalloc.start(3)
        self.addCleanup(tracemalloc.stop)
        held = [bytes(1 << 20) for _ in range(4)]
        lines = memory.memory_report()
        self.assertRegex(lines[1], r"^memory: traced [0-9.]+ MiB")
        self.assertIn("test_memory.py", lines[2])
        self.assertRegex(lines[2], r"^ +4\.[0-9] MiB in +[0-9]+ blocks: .*test_memory\.py")
        self.assertEqual(len(held), 4)


class ReleaseTests(SynchronousTestCase):
    """On glibc, memory freed in the middle of the heap goes back to the system."""

    def setUp(self) -> None:
        if not memory.can_release_free_memory():
            raise self.skipTest("not glibc: malloc_trim is not available")

    def test_heap_holes_returned(self) -> None:
        """After freeing 120 MiB of 60 KB objects below a live one, release_free_memory returns most of it."""
        blocks = [os.urandom(60_000) for _ in range(2000)]
        pin = os.urandom(60_000)
        grown = rss()
        del blocks
        memory.release_free_memory()
        self.assertLess(rss(), grown - 80 * MiB)
        self.assertEqual(len(pin), 60_000)


class ProxyReleaseTests(TestCase):
    """The running proxy gives the memory of ended flows back: RSS returns near where it was."""

    async def test_rss_returns_after_websocket_burst(self) -> None:
        """80 MB of WebSocket messages through the proxy; once the flows ended, RSS is back within 24 MiB."""
        if not memory.can_release_free_memory():
            raise self.skipTest("not glibc: malloc_trim is not available")
        self.patch(MitmService, "free_memory_interval", 0.2)
        ended: list[Any] = []

        class Ends:
            def websocket_end(self, flow: Any) -> None:
                ended.append(flow.id)

        proxy = start_proxy(self, addons=[Ends()])
        payloads = [os.urandom(size) for size in (200_000, 150_000, 100_000, 50_000)]

        peak = [0]
        # What other connections would allocate meanwhile and keep: small objects between
        # the payloads in the heap, so that the space the payloads leave is not at its top.
        survivors: list[bytes] = []

        async def session(port: int, rounds: int) -> None:
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url, compression=None, max_size=None) as websocket:
                for _ in range(rounds):
                    for payload in payloads:
                        await websocket.send(payload)
                        await websocket.recv()
                        survivors.append(os.urandom(4000))
                peak[0] = rss()

        port = await aio(start_server(self, echo, compression=None, max_size=None))
        await aio(session(port, 1))
        await wait_until(lambda: len(ended) == 1, what="the warm-up session to end")
        memory.release_free_memory()
        before = rss()
        await aio(session(port, 80))
        await wait_until(lambda: len(ended) == 2, what="the burst session to end")
        await wait_until(lambda: rss() < before + 24 * MiB, timeout=3, what="RSS to come back")
        self.assertGreater(peak[0], before + 50 * MiB)
        self.assertEqual(len(survivors), 4 * 81)

# -*- test-case-name: tests.test_clientplayback -*-
"""Client replay (C{-C}, C{replay.client}): recorded requests sent again, hooks and all."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import HookRecorder, curl, echo_body, start_body_origin, start_proxy, wait_until
from tests.test_io import read_flows
from twisted_mitm import http1
from twisted_mitm.http import Headers, Request
from twisted_mitm.proxy.pipe import BufferSink
from twisted_mitm.proxy.replay import ReplayClientStream


class ReplayStreamTests(SynchronousTestCase):
    """L{ReplayClientStream} hands over the recorded body as a client would send it."""

    def test_body_and_framing(self) -> None:
        """A recorded body becomes a Content-Length body read at once; no body, no framing."""
        request = Request("h", 80, b"POST", b"http", b"", b"/", b"HTTP/1.1", Headers(), b"recorded", None, 0.0, None)
        ended: list[bool] = []
        stream = ReplayClientStream(request, lambda: ended.append(True))
        self.assertEqual(stream.framing, http1.BodyFraming(http1.FramingKind.LENGTH, 8))
        got: list[bytes] = []
        stream.read_body(BufferSink(lambda body, trailers: got.append(body), lambda reason: None))
        self.assertEqual(got, [b"recorded"])
        stream.exchange_done(object(), True)
        stream.abort()
        self.assertEqual(ended, [True])
        empty = Request("h", 80, b"GET", b"http", b"", b"/", b"HTTP/1.1", Headers(), b"", None, 0.0, None)
        self.assertEqual(ReplayClientStream(empty, lambda: None).framing, http1.BodyFraming(http1.FramingKind.NONE))


class ClientReplayTests(TestCase):
    """Recorded with -w, replayed with -C: the origin gets the requests again, hooks see them."""

    async def record(self) -> tuple[str, object]:
        """Record a GET and a POST through a proxy; the flow file's path and the origin."""
        origin = start_body_origin(self, echo_body)
        path = os.path.abspath(self.mktemp()) + ".mitm"
        recording = start_proxy(self, options=[f"save_stream_file={path}"])
        await curl("-x", recording.url, f"{origin.url}/get?x=1")
        await curl("-x", recording.url, "--data-binary", "posted body", f"{origin.url}/post")
        await wait_until(lambda: os.path.exists(path) and len(read_flows(path)) == 2, what="two recorded flows")
        return path, origin

    async def test_replay_from_option(self) -> None:
        """-C replays each request in order through the hooks (is_replay == "request"), then stops the proxy."""
        path, origin = await self.record()
        recorded_requests = len(origin.requests)  # type: ignore[attr-defined]
        recorder = HookRecorder()
        proxy = start_proxy(self, options=[f"client_replay={path}"], addons=[recorder])
        await wait_until(lambda: proxy.shutdowns, what="the proxy to stop after the replay")
        replayed = origin.requests[recorded_requests:]  # type: ignore[attr-defined]
        self.assertEqual([head.split(b" ")[1] for head in replayed], [b"/get?x=1", b"/post"])
        self.assertEqual(origin.bodies[-1], b"posted body")  # type: ignore[attr-defined]
        responses = [flow for name, flow in recorder.calls if name == "response"]
        self.assertEqual([flow.is_replay for flow in responses], ["request", "request"])
        self.assertEqual(responses[1].response.content, b"posted body")

    async def test_keepserving(self) -> None:
        """With keepserving the proxy stays up after replaying."""
        path, origin = await self.record()
        count = len(origin.requests)  # type: ignore[attr-defined]
        proxy = start_proxy(self, options=[f"client_replay={path}", "keepserving=true"])
        await wait_until(lambda: len(origin.requests) == count + 2, what="the replayed requests")  # type: ignore[attr-defined]
        self.assertEqual(proxy.shutdowns, [])

    async def test_command(self) -> None:
        """replay.client replays flows a script holds; replay.client.count says what is left."""
        path, origin = await self.record()
        count = len(origin.requests)  # type: ignore[attr-defined]
        proxy = start_proxy(self)
        commands = proxy.master.commands
        commands.call("replay.client", read_flows(path))
        await wait_until(lambda: len(origin.requests) == count + 2, what="the replayed requests")  # type: ignore[attr-defined]
        await wait_until(lambda: commands.call("replay.client.count") == 0, what="the replays to end")
        self.assertEqual(proxy.shutdowns, [])

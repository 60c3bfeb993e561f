# -*- test-case-name: tests.test_flow_release -*-
"""Ended flows are released: once no addon holds a flow, nothing of the proxy keeps it.

Real traffic goes through the in-process proxy; an addon takes only a weak reference to
the flow in its last hook. The garbage collector is off during each test, so a flow that
only a collection could free (one caught in a reference cycle) counts as kept: in a busy
proxy full collections can be hours apart, and the issue's WebSocket flows (with all
their messages) waited for one.
"""

from __future__ import annotations

import gc
import os
import weakref
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from websockets.asyncio.client import connect

from tests.support import curl, echo_body, respond, start_body_origin, start_echo_origin, start_proxy, start_raw_origin, wait_until
from tests.test_tunnel import converse, unused_port
from tests.test_websocket import aio, echo, start_server


class WeakKeeper:
    """An addon keeping a weak reference to every flow that reaches its last hook."""

    def __init__(self) -> None:
        self.refs: list[weakref.ref[Any]] = []

    def _keep(self, flow: Any) -> None:
        self.refs.append(weakref.ref(flow))

    response = error = websocket_end = tcp_end = tcp_error = _keep


class FlowReleaseTests(TestCase):
    """HTTP (buffered, streamed, failed), WebSocket and TCP flows are freed when they end."""

    def setUp(self) -> None:
        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)
        self.keeper = WeakKeeper()

    async def assert_released(self, count: int = 1) -> None:
        """Wait for C{count} flows to end, then for every one of them to be freed."""
        keeper = self.keeper
        await wait_until(lambda: len(keeper.refs) >= count, what=f"{count} flows to end")
        await wait_until(lambda: all(ref() is None for ref in keeper.refs), timeout=2, what="the ended flows to be freed")
        self.assertEqual([ref() for ref in keeper.refs], [None] * len(keeper.refs))

    async def test_buffered_http(self) -> None:
        """A buffered request and response: the flow is freed once the response is out."""
        proxy = start_proxy(self, addons=[self.keeper])
        origin = start_raw_origin(self, respond(200, b"x" * 100_000))
        out, _, code = await curl("-x", proxy.url, origin.url + "/a")
        self.assertEqual((code, len(out)), (0, 100_000))
        await self.assert_released()

    async def test_streamed_http(self) -> None:
        """A streamed upload and a streamed response body: the flow is freed too."""
        path = self.mktemp()
        with open(path, "wb") as file:
            file.write(os.urandom(300_000))
        proxy = start_proxy(self, addons=[self.keeper], options=["stream_large_bodies=10k"])
        origin = start_body_origin(self, echo_body)
        out, _, code = await curl("-x", proxy.url, "--data-binary", "@" + path, origin.url + "/echo")
        with open(path, "rb") as file:
            self.assertEqual((code, out), (0, file.read()))
        await self.assert_released()

    async def test_failed_http(self) -> None:
        """A flow that ends in the error hook (the origin refuses the connection) is freed."""
        proxy = start_proxy(self, addons=[self.keeper])
        out, _, code = await curl("-x", proxy.url, "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{unused_port()}/")
        self.assertEqual((code, out), (0, b"502"))
        await self.assert_released()

    async def _websocket_session(self, options: list[str]) -> None:
        proxy = start_proxy(self, addons=[self.keeper], options=options)

        async def run() -> None:
            port = await start_server(self, echo, max_size=None)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url, max_size=None) as websocket:
                for size in (10, 70_000, 200_000):
                    payload = os.urandom(size)
                    await websocket.send(payload)
                    self.assertEqual(await websocket.recv(), payload)

        await aio(run())
        await self.assert_released()

    async def test_websocket(self) -> None:
        """A WebSocket flow and all its stored messages are freed once both connections closed."""
        await self._websocket_session([])

    async def test_streamed_websocket(self) -> None:
        """With stream_websockets, the flow is freed as well."""
        await self._websocket_session(["stream_websockets=true"])

    async def test_tcp(self) -> None:
        """A TCP flow (raw bytes inside CONNECT) is freed once both connections closed."""
        echo_origin = start_echo_origin(self)
        proxy = start_proxy(self, addons=[self.keeper])
        messages = [b"\x00" + os.urandom(50_000), b"\x01" + os.urandom(10)]
        replies = await deferToThread(converse, proxy.port, f"127.0.0.1:{echo_origin.port}", messages)
        self.assertEqual(replies, [*messages, b""])
        await self.assert_released()

    async def test_many_flows(self) -> None:
        """Many HTTP flows on one keep-alive connection are freed one after another."""
        proxy = start_proxy(self, addons=[self.keeper])
        origin = start_raw_origin(self, respond(200, b"y" * 1000))
        urls = [origin.url + f"/{index}" for index in range(5)]
        out, _, code = await curl("-x", proxy.url, *urls)
        self.assertEqual((code, len(out)), (0, 5000))
        await self.assert_released(count=5)

# -*- test-case-name: tests.test_websocket_examples -*-
"""The WebSocket examples in C{examples/}, loaded as C{-s} scripts into a real proxy.

A C{websockets} client reaches a C{websockets} server through the proxy, as in
L{tests.test_websocket}.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase
from websockets.asyncio.client import connect

from tests.support import start_proxy
from tests.test_websocket import Recorder, aio, echo, start_server
from twisted_mitm.log import install_logging_bridge

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def example(name: str) -> str:
    """The path of an example script."""
    return os.path.join(ROOT, "examples", name)


def collect_into(seen: list[Any]) -> Any:
    """A server handler that keeps what the client sends in C{seen}."""

    async def handler(websocket: Any) -> None:
        async for message in websocket:
            seen.append(message)

    return handler


class SimpleExampleTests(TestCase):
    """C{examples/websocket_simple.py} logs every message and rewrites client messages."""

    def setUp(self) -> None:
        handler = install_logging_bridge()
        self.addCleanup(logging.getLogger().removeHandler, handler)

    async def test_rewrites_drops_and_logs(self) -> None:
        """Client messages starting with "Hello" arrive as "HAPPY...", FOOBAR ones not at all, and all are logged."""
        recorder = Recorder()
        proxy = start_proxy(self, scripts=[example("websocket_simple.py")], addons=[recorder])
        seen: list[Any] = []

        async def handler(websocket: Any) -> None:
            async for message in websocket:
                seen.append(message)
                if message == "say Hello":
                    await websocket.send("Hello from the server")

        async def run() -> Any:
            port = await start_server(self, handler)
            async with connect(f"ws://127.0.0.1:{port}/chat", proxy=proxy.url) as websocket:
                for text in ("Hello world", "FOOBAR secret", "Hello again", "say Hello"):
                    await websocket.send(text)
                reply = await websocket.recv()
            await recorder.end()
            return port, reply

        with capturedLogs() as events:
            port, reply = await aio(run())
        self.assertEqual(seen, ["HAPPY world", "HAPPY again", "say Hello"])
        self.assertEqual(reply, "Hello from the server")
        self.assertEqual([m.dropped for m in recorder.flow.websocket.messages], [False, True, False, False, False])
        logged = [formatEvent(event) for event in events]
        for line in (
            f"WebSocket open: http://127.0.0.1:{port}/chat",
            "client sent 'Hello world'",
            "client sent 'FOOBAR secret'",
            "server sent 'Hello from the server'",
            "WebSocket closed by the client: code 1000 '' (5 messages)",
        ):
            self.assertIn(line, logged)

    async def test_stream_mode_only_logs(self) -> None:
        """With stream_websockets the example still logs messages but no longer changes or drops them."""
        recorder = Recorder()
        proxy = start_proxy(
            self, options=["stream_websockets=true"], scripts=[example("websocket_simple.py")], addons=[recorder]
        )
        seen: list[Any] = []

        async def run() -> None:
            port = await start_server(self, collect_into(seen))
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                await websocket.send("Hello world")
                await websocket.send("FOOBAR secret")
            await recorder.end()

        with capturedLogs() as events:
            await aio(run())
        self.assertEqual(seen, ["Hello world", "FOOBAR secret"])
        self.assertIn("client sent 'FOOBAR secret'", [formatEvent(event) for event in events])


class InjectExampleTests(TestCase):
    """C{examples/websocket_inject.py} answers "secret" itself and greets the client every second."""

    async def test_secret_answered_towards_client(self) -> None:
        """A client text message containing "secret" never reaches the server; the client gets "ssssh" instead."""
        recorder = Recorder()
        proxy = start_proxy(self, scripts=[example("websocket_inject.py")], addons=[recorder])
        seen: list[Any] = []

        async def run() -> list[Any]:
            port = await start_server(self, collect_into(seen))
            received = []
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                await websocket.send("my secret password")
                await websocket.send("public")
                await websocket.send(b"binary secret")
                while "ssssh" not in received:
                    received.append(await websocket.recv())
            await recorder.end()
            return received

        received = await aio(run())
        self.assertEqual(seen, ["public", b"binary secret"])
        self.assertEqual(set(received) - {"hello from the proxy! "}, {"ssssh"})
        injected = [(m.from_client, m.content) for m in recorder.flow.websocket.messages if m.injected]
        self.assertIn((False, b"ssssh"), injected)

    async def test_greeting_every_second_until_the_end(self) -> None:
        """The client is greeted at once and again a second later with the greeting rotated; the task ends with the connection."""
        recorder = Recorder()
        path = example("websocket_inject.py")
        proxy = start_proxy(self, scripts=[path], addons=[recorder])
        script = next(addon for addon in proxy.master.addons.chain if getattr(addon, "__file__", None) == path)

        async def run() -> list[tuple[float, Any]]:
            port = await start_server(self, echo)
            received = []
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                for _ in range(2):
                    message = await websocket.recv()
                    received.append((time.monotonic(), message))
                task = script.greeters[recorder.flow.id]
            await recorder.end()
            await asyncio.sleep(0)
            self.assertTrue(task.cancelled())
            return received

        (first_at, first), (second_at, second) = await aio(run(), timeout=10)
        self.assertEqual((first, second), ("hello from the proxy! ", "ello from the proxy! h"))
        self.assertGreater(second_at - first_at, 0.8)
        self.assertEqual(script.greeters, {})

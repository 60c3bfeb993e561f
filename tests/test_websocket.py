# -*- test-case-name: tests.test_websocket -*-
"""WebSocket interception, end to end: C{websockets} clients and servers through the proxy.

Clients reach the origin through the proxy with C{CONNECT} (C{websockets}' own proxy
support), which is how they tunnel ws:// and wss:// alike.
"""

from __future__ import annotations

import asyncio
import gc
import ssl
import tracemalloc
from http import HTTPStatus
from typing import Any

from cryptography.hazmat.primitives import serialization
from twisted.internet.defer import Deferred
from twisted.logger import capturedLogs
from twisted.trial.unittest import TestCase
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.client import ClientProtocol
from websockets.uri import parse_uri
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support import origin_ca_path, origin_certificate, start_proxy, wait_until
from twisted_mitm import ctx


def aio(coroutine: Any, timeout: float = 20) -> Deferred[Any]:
    """Run an asyncio coroutine from a trial test, bounded by C{timeout} seconds."""
    return Deferred.fromFuture(asyncio.ensure_future(asyncio.wait_for(coroutine, timeout)))


class Recorder:
    """An addon that keeps the WebSocket hooks it sees; C{ended} fires at C{websocket_end}."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.flow: Any = None
        self.ended: Deferred[Any] = Deferred()

    def websocket_start(self, flow: Any) -> None:
        self.flow = flow
        self.events.append("start")

    def websocket_message(self, flow: Any) -> None:
        self.events.append("message")

    def websocket_end(self, flow: Any) -> None:
        self.events.append("end")
        self.ended.callback(flow)

    async def end(self) -> Any:
        """Wait for C{websocket_end} from asyncio code."""
        return await self.ended.asFuture(asyncio.get_running_loop())

    def contents(self) -> list[tuple[bool, bytes]]:
        return [(message.from_client, message.content) for message in self.flow.websocket.messages]


async def start_server(test: TestCase, handler: Any, **kwargs: Any) -> int:
    """Start a C{websockets} server on 127.0.0.1 port 0 until the test ends; return its port."""
    server = await serve(handler, "127.0.0.1", 0, **kwargs)

    async def close() -> None:
        server.close()
        await server.wait_closed()

    test.addCleanup(lambda: aio(close()))
    return server.sockets[0].getsockname()[1]


def server_tls(test: TestCase) -> ssl.SSLContext:
    """TLS for an origin at 127.0.0.1, with a certificate from the test origin CA."""
    certificate = origin_certificate("127.0.0.1")
    path = test.mktemp() + ".pem"
    with open(path, "wb") as f:
        f.write(certificate.cert.public_bytes(serialization.Encoding.PEM))
        f.write(certificate.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(path)
    return context


async def echo(websocket: Any) -> None:
    async for message in websocket:
        await websocket.send(message)


class MessageModeTests(TestCase):
    """Messages are buffered whole, recorded, and may be changed, dropped or injected."""

    def test_text_and_binary(self) -> Deferred[None]:
        """Text and binary messages go both ways and are recorded in order, with the hooks in order."""
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])

        async def run() -> list[Any]:
            port = await start_server(self, echo)
            async with connect(f"ws://127.0.0.1:{port}/chat", proxy=proxy.url) as websocket:
                await websocket.send("hello")
                text = await websocket.recv()
                await websocket.send(b"\x00\x01binary")
                binary = await websocket.recv()
            await recorder.end()
            return [text, binary]

        def check(received: list[Any]) -> None:
            self.assertEqual(received, ["hello", b"\x00\x01binary"])
            messages = recorder.flow.websocket.messages
            self.assertEqual([(m.from_client, m.is_text, m.content) for m in messages], [
                (True, True, b"hello"), (False, True, b"hello"),
                (True, False, b"\x00\x01binary"), (False, False, b"\x00\x01binary"),
            ])
            self.assertEqual(recorder.events, ["start"] + ["message"] * 4 + ["end"])
            self.assertEqual(recorder.flow.response.status_code, 101)
            self.assertIsNotNone(recorder.flow.websocket.timestamp_end)
            self.assertFalse(recorder.flow.live)

        return aio(run()).addCallback(check)

    def test_fragmented_message(self) -> Deferred[None]:
        """A message sent in fragments reaches the server whole and is recorded whole."""
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])

        async def run() -> Any:
            port = await start_server(self, echo)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                await websocket.send(["frag-one ", "frag-two ", "frag-three"])
                return await websocket.recv()

        def check(received: str) -> None:
            self.assertEqual(received, "frag-one frag-two frag-three")
            self.assertEqual(recorder.contents()[0], (True, b"frag-one frag-two frag-three"))

        return aio(run()).addCallback(check)

    def test_modify_and_drop(self) -> Deferred[None]:
        """C{websocket_message} may rewrite a message or drop it; what goes on is the changed message."""

        class Rewrite:
            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                if message.from_client and b"FOOBAR" in message.content:
                    message.drop()
                elif message.from_client:
                    message.content = message.content.replace(b"Hello", b"HAPPY")

        recorder = Recorder()
        proxy = start_proxy(self, addons=[Rewrite(), recorder])
        seen: list[str] = []

        async def collect(websocket: Any) -> None:
            async for message in websocket:
                seen.append(message)

        async def run() -> None:
            port = await start_server(self, collect)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                await websocket.send("Hello world")
                await websocket.send("FOOBAR secret")
                await websocket.send("Hello again")
            await recorder.end()

        def check(_: None) -> None:
            self.assertEqual(seen, ["HAPPY world", "HAPPY again"])
            self.assertEqual([m.dropped for m in recorder.flow.websocket.messages], [False, True, False])

        return aio(run()).addCallback(check)

    def test_inject_from_hook_and_task(self) -> Deferred[None]:
        """C{inject.websocket} sends messages both ways, from a hook and from an asyncio task."""

        class Injector:
            def websocket_start(self, flow: Any) -> None:
                asyncio.create_task(self.later(flow))

            async def later(self, flow: Any) -> None:
                await asyncio.sleep(0.05)
                ctx.master.commands.call("inject.websocket", flow, True, b"from a task")

            def websocket_message(self, flow: Any) -> None:
                message = flow.websocket.messages[-1]
                if message.from_client and message.content == b"secret":
                    message.drop()
                    ctx.master.commands.call("inject.websocket", flow, False, b"ssssh", is_text=False)

        recorder = Recorder()
        proxy = start_proxy(self, addons=[Injector(), recorder])

        async def run() -> list[Any]:
            port = await start_server(self, echo)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                first = await websocket.recv()
                await websocket.send("secret")
                second = await websocket.recv()
            await recorder.end()
            return [first, second]

        def check(received: list[Any]) -> None:
            self.assertEqual(received, ["from a task", b"ssssh"])
            injected = [(m.from_client, m.content) for m in recorder.flow.websocket.messages if m.injected]
            self.assertEqual(injected, [(False, b"from a task"), (True, b"ssssh")])

        return aio(run()).addCallback(check)

    async def test_message_too_big(self) -> None:
        """A message over C{websocket_max_message_size} closes with 1009 and says so in the log."""
        recorder = Recorder()
        proxy = start_proxy(self, options=["websocket_max_message_size=1k"], addons=[recorder])
        server_closed: list[int | None] = []

        async def handler(websocket: Any) -> None:
            try:
                await websocket.recv()
            except ConnectionClosed as closed:
                server_closed.append(closed.rcvd.code if closed.rcvd else None)

        async def run() -> int | None:
            port = await start_server(self, handler)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                await websocket.send(b"x" * 2048)
                try:
                    await websocket.recv()
                except ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd else None
            await recorder.end()
            return code

        with capturedLogs() as logs:
            code = await aio(run())
        self.assertEqual(code, 1009)
        self.assertEqual(server_closed, [1001])
        self.assertEqual(recorder.flow.websocket.close_code, 1009)
        self.assertTrue(any("websocket_max_message_size" in event.get("log_format", "") for event in logs))

    def test_hook_error_passes_message(self) -> Deferred[None]:
        """A C{websocket_message} hook that raises is logged, and the message goes on unchanged."""

        class Broken:
            def websocket_message(self, flow: Any) -> None:
                raise ValueError("broken script")

        proxy = start_proxy(self, addons=[Broken()])

        async def run() -> list[Any]:
            port = await start_server(self, echo)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                await websocket.send("one")
                first = await websocket.recv()
                await websocket.send(b"two")
                return [first, await websocket.recv()]

        def check(received: list[Any]) -> None:
            self.assertEqual(received, ["one", b"two"])
            self.assertEqual(len(self.flushLoggedErrors(ValueError)), 4)

        return aio(run()).addCallback(check)

    def test_burst_while_a_hook_waits(self) -> Deferred[None]:
        """Thousands of messages that queue up behind a slow hook all go on, in order, once it is done."""

        class SlowResponse:
            async def response(self, flow: Any) -> None:
                await asyncio.sleep(0.1)

        proxy = start_proxy(self, addons=[SlowResponse()])
        count = 3000

        async def burst(websocket: Any) -> None:
            for number in range(count):
                await websocket.send(str(number))
            await websocket.wait_closed()

        async def run() -> list[Any]:
            port = await start_server(self, burst)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                return [await websocket.recv() for _ in range(count)]

        return aio(run(), timeout=10).addCallback(self.assertEqual, [str(number) for number in range(count)])


class HandshakeTests(TestCase):
    """The client sees the server's own answer; each leg negotiates its own extensions."""

    def test_refusal_is_relayed(self) -> Deferred[None]:
        """A server that refuses the upgrade with 403 gives the client that 403 and its body."""
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])

        def refuse(connection: Any, request: Any) -> Any:
            return connection.respond(HTTPStatus.FORBIDDEN, "not for you\n")

        async def run() -> Any:
            port = await start_server(self, echo, process_request=refuse)
            try:
                async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url):
                    pass
            except InvalidStatus as refused:
                return refused.response
            raise AssertionError("the handshake succeeded")

        def check(response: Any) -> None:
            self.assertEqual(response.status_code, 403)
            self.assertEqual(response.body, b"not for you\n")
            self.assertEqual(recorder.events, [])

        return aio(run()).addCallback(check)

    def test_subprotocol_and_headers(self) -> Deferred[None]:
        """The client gets the server's chosen subprotocol and its other response headers."""
        proxy = start_proxy(self)

        def add_header(connection: Any, request: Any, response: Any) -> None:
            response.headers["Set-Cookie"] = "session=42"

        async def run() -> Any:
            port = await start_server(self, echo, subprotocols=["superchat", "chat"], process_response=add_header)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url, subprotocols=["chat", "other"]) as websocket:
                return websocket.subprotocol, websocket.response.headers.get("Set-Cookie")

        def check(result: Any) -> None:
            self.assertEqual(result, ("chat", "session=42"))

        return aio(run()).addCallback(check)

    def test_deflate_towards_server_only(self) -> Deferred[None]:
        """With permessage-deflate on the server leg only, both peers get plain messages and the flow the decompressed ones."""
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])
        server_extensions: list[Any] = []

        async def handler(websocket: Any) -> None:
            server_extensions.append(websocket.response.headers.get("Sec-WebSocket-Extensions"))
            await echo(websocket)

        async def run() -> Any:
            port = await start_server(self, handler)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url, compression=None) as websocket:
                await websocket.send("squeeze " * 100)
                reply = await websocket.recv()
                client_extensions = websocket.response.headers.get("Sec-WebSocket-Extensions")
            await recorder.end()
            return reply, client_extensions

        def check(result: Any) -> None:
            reply, client_extensions = result
            self.assertEqual(reply, "squeeze " * 100)
            self.assertIsNone(client_extensions)
            self.assertIn("permessage-deflate", server_extensions[0])
            self.assertEqual(recorder.contents(), [(True, b"squeeze " * 100), (False, b"squeeze " * 100)])

        return aio(run()).addCallback(check)

    def test_deflate_towards_client_only(self) -> Deferred[None]:
        """With permessage-deflate on the client leg only, messages still pass and are recorded decompressed."""
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])

        async def run() -> Any:
            port = await start_server(self, echo, compression=None)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                await websocket.send(b"\x00" * 5000)
                reply = await websocket.recv()
                extensions = websocket.response.headers.get("Sec-WebSocket-Extensions")
            await recorder.end()
            return reply, extensions

        def check(result: Any) -> None:
            reply, extensions = result
            self.assertEqual(reply, b"\x00" * 5000)
            self.assertIn("permessage-deflate", extensions)
            self.assertEqual(recorder.contents()[0], (True, b"\x00" * 5000))

        return aio(run()).addCallback(check)


class CloseTests(TestCase):
    """Closes are relayed with code and reason; an abrupt end of one leg ends the other."""

    def test_client_closes(self) -> Deferred[None]:
        """The client's close code and reason reach the server; the flow says the client closed."""
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])
        server_saw: list[Any] = []

        async def handler(websocket: Any) -> None:
            try:
                await websocket.recv()
            except ConnectionClosed as closed:
                server_saw.append((closed.rcvd.code, closed.rcvd.reason))

        async def run() -> None:
            port = await start_server(self, handler)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                await websocket.close(4000, "client says bye")
            await recorder.end()

        def check(_: None) -> None:
            self.assertEqual(server_saw, [(4000, "client says bye")])
            websocket = recorder.flow.websocket
            self.assertEqual((websocket.close_code, websocket.close_reason, websocket.closed_by_client), (4000, "client says bye", True))
            self.assertEqual(recorder.events.count("end"), 1)

        return aio(run()).addCallback(check)

    def test_server_closes(self) -> Deferred[None]:
        """The server's close code and reason reach the client; the flow says the server closed."""
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])

        async def handler(websocket: Any) -> None:
            await websocket.close(4001, "server says bye")

        async def run() -> Any:
            port = await start_server(self, handler)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                try:
                    await websocket.recv()
                except ConnectionClosed as closed:
                    result = (closed.rcvd.code, closed.rcvd.reason)
            await recorder.end()
            return result

        def check(result: Any) -> None:
            self.assertEqual(result, (4001, "server says bye"))
            websocket = recorder.flow.websocket
            self.assertEqual((websocket.close_code, websocket.close_reason, websocket.closed_by_client), (4001, "server says bye", False))

        return aio(run()).addCallback(check)

    async def test_slow_reader_gets_everything_before_close(self) -> None:
        """A client that reads slowly still gets all the data and then the server's close, however long it takes."""
        proxy = start_proxy(self)
        chunk = b"\x00" * (64 * 1024)
        count = 64

        async def handler(websocket: Any) -> None:
            for _ in range(count):
                await websocket.send(chunk)
            await websocket.close(1000, "done")

        async def run() -> Any:
            port = await start_server(self, handler, compression=None)
            received = 0
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url, compression=None, max_queue=1) as websocket:
                try:
                    while True:
                        received += len(await websocket.recv())
                        await asyncio.sleep(0.025)
                except ConnectionClosed as closed:
                    return received, closed.rcvd and (closed.rcvd.code, closed.rcvd.reason)

        self.assertEqual(await aio(run()), (len(chunk) * count, (1000, "done")))

    def test_server_drops(self) -> Deferred[None]:
        """When the server's connection drops without a close, the client's is dropped too (1006)."""
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])

        async def handler(websocket: Any) -> None:
            await websocket.recv()
            websocket.transport.abort()

        async def run() -> Any:
            port = await start_server(self, handler)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                await websocket.send("bye")
                try:
                    await websocket.recv()
                except ConnectionClosed as closed:
                    result = closed.rcvd
            await recorder.end()
            return result

        def check(received_close: Any) -> None:
            self.assertIsNone(received_close)
            websocket = recorder.flow.websocket
            self.assertEqual((websocket.close_code, websocket.closed_by_client), (1006, False))
            self.assertEqual(recorder.events.count("end"), 1)

        return aio(run()).addCallback(check)

    async def test_kill(self) -> None:
        """C{flow.kill()} in C{websocket_message} drops both connections (1006), forwards nothing more and ends the flow once."""

        class Killer:
            def websocket_message(self, flow: Any) -> None:
                if flow.websocket.messages[-1].content == b"kill":
                    flow.kill()

        recorder = Recorder()
        proxy = start_proxy(self, addons=[Killer(), recorder])
        server_saw: list[Any] = []

        async def handler(websocket: Any) -> None:
            try:
                async for message in websocket:
                    server_saw.append(message)
                    await websocket.send(message)
            except ConnectionClosed as closed:
                server_saw.append(closed.rcvd)

        async def run() -> Any:
            port = await start_server(self, handler)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                await websocket.send("before")
                await websocket.recv()
                await websocket.send("kill")
                try:
                    await websocket.recv()
                except ConnectionClosed as closed:
                    result = (closed.rcvd, websocket.close_code)
            await recorder.end()
            return result

        self.assertEqual(await aio(run()), (None, 1006))
        await wait_until(lambda: len(server_saw) == 2, what="the server connection to end")
        self.assertEqual(server_saw, ["before", None])
        self.assertEqual(recorder.events.count("end"), 1)
        self.assertEqual(recorder.flow.error.msg, "Connection killed.")
        self.assertEqual(recorder.flow.websocket.close_code, 1006)
        self.assertFalse(recorder.flow.live)

    def test_ping_reaches_server(self) -> Deferred[None]:
        """A client's ping is answered by the server, through the proxy."""
        proxy = start_proxy(self)

        async def run() -> float:
            port = await start_server(self, echo)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                waiter = await websocket.ping(b"are you there")
                return await waiter

        return aio(run()).addCallback(lambda latency: self.assertGreaterEqual(latency, 0))


class StreamModeTests(TestCase):
    """With C{stream_websockets}, frames are forwarded as they arrive and only observed."""

    def test_fragment_arrives_before_message_ends(self) -> Deferred[None]:
        """The first fragment reaches the server while the client has not yet sent the rest."""
        recorder = Recorder()
        proxy = start_proxy(self, options=["stream_websockets=true"], addons=[recorder])
        first_seen = asyncio.Event()
        fragments: list[str] = []

        async def handler(websocket: Any) -> None:
            async for fragment in websocket.recv_streaming():
                fragments.append(fragment)
                first_seen.set()

        async def pieces() -> Any:
            yield "first "
            await asyncio.wait_for(first_seen.wait(), 5)
            yield "second"

        async def run() -> None:
            port = await start_server(self, handler)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                await websocket.send(pieces())
            await recorder.end()

        def check(_: None) -> None:
            self.assertEqual("".join(fragments), "first second")
            self.assertEqual(recorder.contents(), [(True, b"first second")])
            self.assertEqual(recorder.events, ["start", "message", "end"])

        return aio(run()).addCallback(check)

    def test_changes_are_not_applied(self) -> Deferred[None]:
        """In stream mode a hook observes each message but cannot change it."""

        class Rewrite:
            def websocket_message(self, flow: Any) -> None:
                flow.websocket.messages[-1].content = b"changed"

        proxy = start_proxy(self, options=["stream_websockets=true"], addons=[Rewrite()])

        async def run() -> Any:
            port = await start_server(self, echo)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                await websocket.send("original")
                return await websocket.recv()

        return aio(run()).addCallback(self.assertEqual, "original")

    def test_large_message_bounded_memory(self) -> Deferred[None]:
        """A 64 MiB binary message streams through with bounded memory; what is not stored is marked."""
        recorder = Recorder()
        proxy = start_proxy(
            self, options=["stream_websockets=true", "websocket_max_stored_bytes=1m"], addons=[recorder]
        )
        chunk = b"\xab" * (256 * 1024)
        count = 256
        received = [0]

        async def handler(websocket: Any) -> None:
            async for fragment in websocket.recv_streaming():
                received[0] += len(fragment)
            await websocket.send("done")

        async def pieces() -> Any:
            for _ in range(count):
                yield chunk

        async def run() -> int:
            port = await start_server(self, handler, max_size=None, compression=None)
            gc.collect()
            tracemalloc.start()
            try:
                async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url, compression=None, max_size=None) as websocket:
                    await websocket.send(pieces())
                    await websocket.recv()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            await recorder.end()
            return peak

        def check(peak: int) -> None:
            self.assertEqual(received[0], len(chunk) * count)
            self.assertLess(peak, 24 * 1024 * 1024)
            first = recorder.flow.websocket.messages[0]
            self.assertEqual(first.content, b"[twisted_mitm: 67108864 bytes not stored (websocket_max_stored_bytes)]")
            self.assertEqual(recorder.flow.metadata["websocket_bytes_not_stored"], 64 * 1024 * 1024)

        return aio(run(), timeout=120).addCallback(check)


class StoredMessagesTests(TestCase):
    """What flows keep is bounded per flow and across all live flows; relaying never changes."""

    async def test_total_budget_across_flows(self) -> None:
        """Past total_max_stored_bytes the oldest payloads of any live flow become markers naming it."""
        flows: list[Any] = []

        class Starts:
            def websocket_start(self, flow: Any) -> None:
                flows.append(flow)

        proxy = start_proxy(self, options=["total_max_stored_bytes=100k"], addons=[Starts()])
        first, second = b"a" * 60_000, b"b" * 30_000

        async def run() -> list[bytes]:
            port = await start_server(self, echo, compression=None)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url, compression=None) as one:
                await one.send(first)
                echoes = [await one.recv()]
                async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url, compression=None) as two:
                    await two.send(second)
                    echoes.append(await two.recv())
            return echoes

        self.assertEqual(await aio(run()), [first, second])
        marker = b"[twisted_mitm: 60000 bytes not stored (total_max_stored_bytes)]"
        self.assertEqual([m.content for m in flows[0].websocket.messages], [marker, marker])
        self.assertEqual([m.content for m in flows[1].websocket.messages], [second, second])
        self.assertEqual(flows[0].metadata["websocket_bytes_not_stored"], 120_000)

    async def test_forwarded_and_hooked_whole(self) -> None:
        """A message over every budget still reaches the peer, and its hook, whole; only the record is a marker."""
        seen: list[bytes] = []

        class Observe:
            def websocket_message(self, flow: Any) -> None:
                seen.append(flow.websocket.messages[-1].content)

        recorder = Recorder()
        proxy = start_proxy(
            self, options=["websocket_max_stored_bytes=10", "total_max_stored_bytes=20"], addons=[Observe(), recorder]
        )
        payload = b"p" * 1000

        async def run() -> bytes:
            port = await start_server(self, echo)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as websocket:
                await websocket.send(payload)
                echoed: bytes = await websocket.recv()
            await recorder.end()
            return echoed

        self.assertEqual(await aio(run()), payload)
        self.assertEqual(seen, [payload, payload])
        marker = b"[twisted_mitm: 1000 bytes not stored (websocket_max_stored_bytes)]"
        self.assertEqual(recorder.contents(), [(True, marker), (False, marker)])


class BackpressureTests(TestCase):
    """A peer that stops reading pauses the other peer's socket, in both modes and both directions."""

    limit = 32 * 1024 * 1024
    chunk = b"\x00" * (64 * 1024)

    async def stall(self, options: list[str], towards_server: bool) -> tuple[int, int]:
        """Send 64 KiB messages towards a peer that reads nothing until the sender has made no progress
        for half a second, then let it read. Return the bytes sent before the stall and the bytes received."""
        proxy = start_proxy(self, options=options)
        reading = asyncio.Event()
        counts = {"sent": 0, "received": 0}
        limits = {"compression": None, "max_size": None, "max_queue": 1}

        async def send(websocket: Any) -> None:
            while counts["sent"] < self.limit:
                await websocket.send(self.chunk)
                counts["sent"] += len(self.chunk)

        async def receive(websocket: Any) -> None:
            await reading.wait()
            while counts["received"] < self.limit:
                counts["received"] += len(await websocket.recv())

        async def stalled() -> int:
            last = -1
            while counts["sent"] != last:
                last = counts["sent"]
                await asyncio.sleep(0.5)
            reading.set()
            return last

        async def run() -> tuple[int, int]:
            port = await start_server(self, send if not towards_server else receive, **limits)
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url, **limits) as websocket:
                peer = asyncio.ensure_future((send if towards_server else receive)(websocket))
                before = await stalled()
                await peer
                while counts["received"] < self.limit:
                    await asyncio.sleep(0.01)
            return before, counts["received"]

        return await aio(run())

    async def test_message_mode(self) -> None:
        """In message mode a server that stops reading stops the client's sends; nothing is lost."""
        before, received = await self.stall([], towards_server=True)
        self.assertLess(before, self.limit // 2)
        self.assertEqual(received, self.limit)

    async def test_stream_mode(self) -> None:
        """With stream_websockets a client that stops reading stops the server's sends; nothing is lost."""
        before, received = await self.stall(["stream_websockets=true"], towards_server=False)
        self.assertLess(before, self.limit // 2)
        self.assertEqual(received, self.limit)


class TransportTests(TestCase):
    """ws:// and wss:// through CONNECT, intercepted or passed through."""

    def test_ws_absolute_form(self) -> Deferred[None]:
        """ws:// sent to the proxy as an absolute-form request (no CONNECT) is intercepted too."""
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])

        async def run() -> Any:
            port = await start_server(self, echo)
            protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/abs"))
            request = protocol.connect()
            request.path = f"http://127.0.0.1:{port}/abs"
            protocol.send_request(request)
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            try:
                events = []
                for send in (lambda: None, lambda: protocol.send_text(b"absolute")):
                    send()
                    writer.writelines(protocol.data_to_send())
                    received = []
                    while not received:
                        protocol.receive_data(await reader.read(65536))
                        received = protocol.events_received()
                    events += received
                protocol.send_close(1000)
                writer.writelines(protocol.data_to_send())
                await recorder.end()
                return events[0].status_code, events[1].data
            finally:
                writer.close()

        def check(result: Any) -> None:
            self.assertEqual(result, (101, b"absolute"))
            self.assertEqual(recorder.flow.request.path, "/abs")

        return aio(run()).addCallback(check)

    def test_wss_intercepted(self) -> Deferred[None]:
        """wss:// through CONNECT is intercepted: the proxy's certificate, messages recorded."""
        recorder = Recorder()
        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"], addons=[recorder])
        client_tls = ssl.create_default_context(cafile=proxy.ca_path)

        async def run() -> Any:
            port = await start_server(self, echo, ssl=server_tls(self))
            async with connect(f"wss://127.0.0.1:{port}/", proxy=proxy.url, ssl=client_tls) as websocket:
                await websocket.send("over tls")
                reply = await websocket.recv()
            await recorder.end()
            return reply

        def check(reply: str) -> None:
            self.assertEqual(reply, "over tls")
            self.assertEqual(recorder.flow.request.scheme, "https")
            self.assertEqual(recorder.contents(), [(True, b"over tls"), (False, b"over tls")])

        return aio(run()).addCallback(check)

    def test_wss_passthrough(self) -> Deferred[None]:
        """wss:// to an ignored host is relayed untouched: the origin's own certificate, no hooks."""
        recorder = Recorder()
        proxy = start_proxy(self, options=["ignore_hosts=^127\\.0\\.0\\.1:"], addons=[recorder])
        client_tls = ssl.create_default_context(cafile=origin_ca_path(self))

        async def run() -> Any:
            port = await start_server(self, echo, ssl=server_tls(self))
            async with connect(f"wss://127.0.0.1:{port}/", proxy=proxy.url, ssl=client_tls) as websocket:
                await websocket.send("untouched")
                return await websocket.recv()

        def check(reply: str) -> None:
            self.assertEqual(reply, "untouched")
            self.assertEqual(recorder.events, [])

        return aio(run()).addCallback(check)

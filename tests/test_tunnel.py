"""What the proxy does with a CONNECT tunnel that carries no TLS, over loopback.

Plain HTTP inside a tunnel is proxied as HTTP; other bytes become a TCP flow with the
C{tcp_*} hooks (SPEC §3, §5). TLS inside a tunnel is covered by L{tests.test_tls_proxy}.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from twisted.internet.threads import deferToThread
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.memorynet import MemoryClient, MemoryNetwork
from tests.support import RawOrigin, curl, respond, start_echo_origin, start_proxy, start_raw_origin, wait_until
from tests.test_inmemory import ORIGIN, network_with_origin
from tests.test_tls_proxy import Recorder, connect_tunnel
from twisted_mitm.proxy.tunnel import MAX_REQUEST_LINE, Plaintext, Tunnel, classify_plaintext
from twisted_mitm.log import install_logging_bridge
from twisted_mitm.tcp import TCPFlow

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def converse(proxy_port: int, authority: str, messages: list[bytes]) -> list[bytes]:
    """Through a CONNECT tunnel, send each message and read back as many bytes (blocking)."""
    replies = []
    with connect_tunnel(proxy_port, authority) as sock:
        for message in messages:
            sock.sendall(message)
            replies.append(read_exactly(sock, len(message)))
        sock.shutdown(socket.SHUT_WR)
        replies.append(sock.recv(1))
    return replies


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


class PlainHTTPInTunnelTests(TestCase):
    """HTTP/1.1 spoken in clear inside CONNECT."""

    async def test_proxied_as_http(self) -> None:
        """curl --proxytunnel with an http:// URL is proxied as HTTP: hooks run with scheme http."""
        origin = start_raw_origin(self, respond(200, b"plain inside"))
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])
        out, err, code = await curl("--proxytunnel", "-x", proxy.url, f"{origin.url}/in/tunnel")
        self.assertEqual((code, out), (0, b"plain inside"), err)
        self.assertEqual(recorder.names(), ["http_connect", "requestheaders", "request", "response"])
        flow = recorder.flows("response")[0]
        self.assertEqual(flow.request.scheme, "http")
        self.assertEqual(flow.request.pretty_url, f"{origin.url}/in/tunnel")
        self.assertTrue(origin.requests[0].startswith(b"GET /in/tunnel HTTP/1.1\r\n"), origin.requests[0])


class TCPFlowTests(TestCase):
    """Bytes that are neither TLS nor HTTP become a TCP flow."""

    async def test_hooks_and_messages(self) -> None:
        """An echo conversation runs tcp_start, tcp_message per chunk and tcp_end, with every message recorded."""
        echo = start_echo_origin(self)
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])
        messages = [b"\x00\x01binary hello", b"\x02second"]
        replies = await deferToThread(converse, proxy.port, f"127.0.0.1:{echo.port}", messages)
        self.assertEqual(replies, [*messages, b""])
        self.assertEqual(b"".join(echo.received), b"".join(messages))
        await wait_until(lambda: "tcp_end" in recorder.names())
        names = recorder.names()
        self.assertEqual((names[0], names[1], names[-1]), ("http_connect", "tcp_start", "tcp_end"))
        self.assertNotIn("tcp_error", names)
        flow = recorder.flows("tcp_end")[0]
        assert isinstance(flow, TCPFlow)
        sent = b"".join(m.content for m in flow.messages if m.from_client)
        received = b"".join(m.content for m in flow.messages if not m.from_client)
        self.assertEqual((sent, received), (b"".join(messages), b"".join(messages)))
        self.assertEqual(flow.server_conn.address, ("127.0.0.1", echo.port))
        self.assertFalse(flow.live)

    async def test_kept_messages_bounded_in_bytes(self) -> None:
        """A TCP flow keeps only its latest messages once they pass tcp_max_stored_bytes; relaying is unaffected."""
        echo = start_echo_origin(self)
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder], options=["tcp_max_stored_bytes=20"])
        messages = [b"\x00first message.", b"\x01second message", b"\x02third message."]
        replies = await deferToThread(converse, proxy.port, f"127.0.0.1:{echo.port}", messages)
        self.assertEqual(replies, [*messages, b""])
        await wait_until(lambda: "tcp_end" in recorder.names())
        kept = recorder.flows("tcp_end")[0].messages
        self.assertLessEqual(sum(len(m.content) for m in kept), 20)
        self.assertEqual(kept[-1].content, messages[-1])
        not_stored = recorder.flows("tcp_end")[0].metadata["tcp_bytes_not_stored"]
        self.assertEqual(not_stored + sum(len(m.content) for m in kept), 2 * len(b"".join(messages)))

    async def test_tcp_message_rewrites(self) -> None:
        """A tcp_message hook that rewrites flow.messages[-1].content changes what the origin receives (tcp-simple)."""

        class Rewrite:
            def tcp_message(self, flow: TCPFlow) -> None:
                message = flow.messages[-1]
                if message.from_client:
                    message.content = message.content.replace(b"foo", b"barbaz")

        echo = start_echo_origin(self)
        proxy = start_proxy(self, addons=[Rewrite()])
        replies = await deferToThread(converse, proxy.port, f"127.0.0.1:{echo.port}", [b"\x00say foo"])
        self.assertEqual(b"".join(echo.received), b"\x00say barbaz")
        self.assertEqual(replies[0], b"\x00say bar")

    async def test_slow_hook_keeps_data_before_fin(self) -> None:
        """Bytes still in a slow tcp_message hook when the client half-closes reach the origin before the FIN."""

        class Slow:
            async def tcp_message(self, flow: TCPFlow) -> None:
                await asyncio.sleep(0.05)

        echo = start_echo_origin(self)
        proxy = start_proxy(self, addons=[Slow()])
        reply = await deferToThread(send_and_half_close, proxy.port, f"127.0.0.1:{echo.port}", b"\x00last words")
        self.assertEqual(b"".join(echo.received), b"\x00last words")
        self.assertEqual(reply, b"\x00last words")

    async def test_unreachable(self) -> None:
        """With connection_strategy=lazy, a TCP flow to a closed port ends with tcp_error (not tcp_end) and closes the client."""
        port = unused_port()
        recorder = Recorder()
        proxy = start_proxy(self, options=["connection_strategy=lazy"], addons=[recorder])
        replies = await deferToThread(converse_closed, proxy.port, f"127.0.0.1:{port}")
        self.assertEqual(replies, b"")
        await wait_until(lambda: "tcp_error" in recorder.names())
        self.assertNotIn("tcp_end", recorder.names())
        self.assertIn("cannot connect", str(recorder.flows("tcp_error")[0].error))


class ConnectionStrategyTests(TestCase):
    """connection_strategy=eager (the default): a CONNECT is answered once its target is reached."""

    async def test_unreachable_target_gets_502(self) -> None:
        """A CONNECT to a closed port gets a 502 saying why, and the error hook runs; no 200 first."""
        port = unused_port()
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])
        reply = await deferToThread(connect_reply, proxy.port, f"127.0.0.1:{port}")
        self.assertTrue(reply.startswith(b"HTTP/1.1 502 "), reply)
        self.assertIn(b"connection refused by 127.0.0.1:%d" % port, reply)
        self.assertIn("error", recorder.names())
        self.assertNotIn("tcp_start", recorder.names())

    async def test_lazy_answers_first(self) -> None:
        """With connection_strategy=lazy, the same CONNECT is answered 200 before any connecting."""
        proxy = start_proxy(self, options=["connection_strategy=lazy"])
        reply = await deferToThread(connect_reply, proxy.port, f"127.0.0.1:{unused_port()}")
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 "), reply)

    async def test_one_connection_serves_the_tunnel(self) -> None:
        """The connection opened for the CONNECT carries what the tunnel holds: the origin sees
        exactly one connection, whether the tunnel carries HTTP or raw TCP."""
        origin = start_raw_origin(self, respond(200, b"plain inside"))
        proxy = start_proxy(self)
        out, err, code = await curl("--proxytunnel", "-x", proxy.url, f"{origin.url}/in/tunnel")
        self.assertEqual((code, out), (0, b"plain inside"), err)
        self.assertEqual(len(origin.connections), 1)
        echo = start_echo_origin(self)
        replies = await deferToThread(converse, proxy.port, f"127.0.0.1:{echo.port}", [b"\x00raw bytes"])
        self.assertEqual(replies, [b"\x00raw bytes", b""])
        self.assertEqual(len(echo.connections), 1)


def connect_reply(proxy_port: int, authority: str) -> bytes:
    """Send a CONNECT and read the proxy's answer head (blocking, bounded)."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as sock:
        sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        reply = b""
        while b"\r\n\r\n" not in reply and (chunk := sock.recv(4096)):
            reply += chunk
        if reply.startswith(b"HTTP/1.1 502"):
            while chunk := sock.recv(4096):
                reply += chunk
        return reply


class ClassifyTests(SynchronousTestCase):
    """L{classify_plaintext}: mitmproxy's rule for HTTP in clear, and the bytes still waiting for it."""

    def test_http(self) -> None:
        """A first line with a space, starting with three letters, is HTTP, even if it ends there."""
        for data in (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"say foo please\n", b"OPTIONS * HTTP/1.1\r\n"):
            self.assertIs(classify_plaintext(data), Plaintext.HTTP, data)

    def test_tcp(self) -> None:
        """Binary starts, a space only after the line break, an SSH banner, short lines: TCP."""
        for data in (b"\x00say foo", b"1say foo\n", b"hello\nworld foo", b"SSH-2.0-OpenSSH_9.6\r\n", b"GE\n", b"GET\n", b"SSH-2.0"):
            self.assertIs(classify_plaintext(data), Plaintext.TCP, data)

    def test_unfinished(self) -> None:
        """Letters with no line break yet may still become a request line, up to a bound."""
        for data in (b"G", b"GE", b"GET / HT", b"say foo please"):
            self.assertIs(classify_plaintext(data), Plaintext.UNFINISHED, data)
        self.assertIs(classify_plaintext(b"GET /" + b"a" * MAX_REQUEST_LINE), Plaintext.TCP)


class FirstBytesTests(SynchronousTestCase):
    """In memory, with the clock: when line-less first bytes become TCP, and when they wait for their line."""

    def open_tunnel(self) -> tuple[MemoryNetwork, RawOrigin, MemoryClient, Recorder]:
        recorder = Recorder()
        network, origin = network_with_origin(respond(200, b"http answer"), addons=[recorder])
        client = network.connect_client()
        client.send(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (ORIGIN[0].encode(), ORIGIN[1], ORIGIN[0].encode(), ORIGIN[1]))
        network.pump()
        self.assertTrue(client.received.startswith(b"HTTP/1.1 200 "), client.received)
        client.received = b""
        return network, origin, client, recorder

    def test_line_less_text_is_tcp(self) -> None:
        """A client speaking first with no line break is relayed as TCP once the grace is over."""
        network, origin, client, recorder = self.open_tunnel()
        client.send(b"say foo please")
        network.pump()
        network.advance(Tunnel.request_line_grace * 0.5)
        self.assertEqual(origin.received, [])
        network.advance(Tunnel.request_line_grace)
        self.assertEqual(origin.received, [b"say foo please"])
        self.assertEqual(recorder.names()[1:], ["tcp_start", "tcp_message"])

    def test_request_line_split_across_reads(self) -> None:
        """A request line whose two halves arrive within the grace is HTTP."""
        network, origin, client, recorder = self.open_tunnel()
        client.send(b"GET /split HT")
        network.pump()
        network.advance(Tunnel.request_line_grace * 0.5)
        client.send(b"TP/1.1\r\nHost: 10.0.0.1\r\n\r\n")
        network.pump()
        self.assertEqual(origin.requests, [b"GET /split HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n"])
        self.assertTrue(client.received.endswith(b"http answer"), client.received)
        self.assertEqual(recorder.names()[1:], ["requestheaders", "request", "response"])

    def test_request_line_too_slow_is_tcp(self) -> None:
        """A request line still unfinished after the grace is TCP, as mitmproxy decides at once."""
        network, origin, client, recorder = self.open_tunnel()
        client.send(b"GET /slow HTTP/1.1")
        network.pump()
        network.advance(Tunnel.request_line_grace * 1.5)
        client.send(b"\r\nHost: 10.0.0.1\r\n\r\n")
        network.pump()
        self.assertEqual(b"".join(origin.received), b"GET /slow HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n")
        self.assertEqual(recorder.names()[1:3], ["tcp_start", "tcp_message"])
        self.assertNotIn("requestheaders", recorder.names())


class TCPSimpleExampleTests(TestCase):
    """examples/tcp_simple.py (mitmproxy's tcp-simple.py) on a client that speaks first."""

    async def test_client_speaking_first(self) -> None:
        """A client's "say foo please" with no line break reaches tcp_message and the server as "say bar please"."""
        root = logging.getLogger()
        self.addCleanup(root.setLevel, root.level)
        self.addCleanup(root.removeHandler, install_logging_bridge())
        echo = start_echo_origin(self)
        proxy = start_proxy(self, scripts=[os.path.join(EXAMPLES, "tcp_simple.py")])
        with capturedLogs() as events:
            replies = await deferToThread(converse, proxy.port, f"127.0.0.1:{echo.port}", [b"say foo please"])
        self.assertEqual(b"".join(echo.received), b"say bar please")
        self.assertEqual(replies[0], b"say bar please")
        lines = [formatEvent(event) for event in events if "tcp_message[" in formatEvent(event)]
        self.assertIn("tcp_message[from_client=True), content=say bar please]", lines)


class ServerSpeaksFirstTests(TestCase):
    """A protocol whose server talks first (SMTP, SSH...) through a tunnel that is not ignored."""

    async def test_greeting_reaches_silent_client(self) -> None:
        """A client that sends nothing still gets the server's greeting, as a TCP flow."""
        greeting = b"220 smtp.test ESMTP ready\r\n"
        origin = start_raw_origin(self, None)
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])
        reply = deferToThread(read_greeting, proxy.port, f"127.0.0.1:{origin.port}", len(greeting))
        await wait_until(lambda: origin.connections, timeout=5, what="the proxy connecting to the server")
        origin.connections[0].transport.write(greeting)
        self.assertEqual(await reply, greeting)
        self.assertIn("tcp_start", recorder.names())


def read_greeting(proxy_port: int, authority: str, size: int) -> bytes:
    """Open a tunnel, send nothing, and read C{size} bytes (blocking, bounded by a timeout)."""
    with connect_tunnel(proxy_port, authority) as sock:
        sock.settimeout(10)
        return read_exactly(sock, size)


def send_and_half_close(proxy_port: int, authority: str, data: bytes) -> bytes:
    """Through a tunnel, send C{data}, half-close at once, and read to EOF (blocking)."""
    reply = b""
    with connect_tunnel(proxy_port, authority) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def converse_closed(proxy_port: int, authority: str) -> bytes:
    """Send non-HTTP bytes through a tunnel to a dead port and read until EOF (blocking)."""
    with connect_tunnel(proxy_port, authority) as sock:
        sock.sendall(b"\x00anyone?")
        return sock.recv(100)


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]



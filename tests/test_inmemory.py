# -*- test-case-name: tests.test_inmemory -*-
"""Whole exchanges, client to proxy to origin, driven in memory (L{tests.memorynet}).

Every test runs on a memory reactor: no socket, no thread, no real time, so each one is
deterministic and takes milliseconds. Assertions are about the bytes on the wire, the
hooks an addon saw and the transports' producer state, never the proxy's internals.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import capturedLogs, formatEvent
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as WebSocketRequest
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from tests.memorynet import MemoryClient, MemoryNetwork
from tests.support import HookRecorder, RawOrigin, echo_body, origin_ca_path, origin_certificate, respond, shared_confdir
from twisted_mitm.certs import CertStore
from twisted_mitm.http import HTTPFlow

ORIGIN = ("10.0.0.1", 80)

Handler = Callable[[Any, bytes], None]


def request(method: bytes = b"GET", path: bytes = b"/", extra: bytes = b"") -> bytes:
    """A proxy-form request head to L{ORIGIN}; C{extra} holds further header lines."""
    return b"%s http://10.0.0.1%s HTTP/1.1\r\nHost: 10.0.0.1\r\n%s\r\n" % (method, path, extra)


def response(body: bytes, reason: bytes = b"OK") -> bytes:
    """A 200 response with a Content-Length body."""
    return b"HTTP/1.1 200 %s\r\nContent-Length: %d\r\n\r\n%s" % (reason, len(body), body)


def hold(protocol: Any, head: bytes) -> None:
    """A L{RawOrigin} handler that answers nothing: the test writes the answer itself."""


def network_with_origin(
    handler: Handler, options: Sequence[str] = (), addons: Sequence[object] = (), read_bodies: bool = False
) -> tuple[MemoryNetwork, RawOrigin]:
    """A proxy with C{options} and C{addons}, and a L{RawOrigin} at L{ORIGIN} answering with C{handler}."""
    network = MemoryNetwork(options, addons)
    origin = RawOrigin(handler)
    network.add_origin(*ORIGIN, origin.factory(read_bodies))
    return network, origin


def error_messages(recorder: HookRecorder) -> list[str]:
    """The C{flow.error} messages of the C{error} hooks C{recorder} saw."""
    return [flow.error.msg for name, flow in recorder.calls if name == "error"]


def body_of(data: bytes) -> bytes:
    """What follows the first head in C{data}."""
    return data.partition(b"\r\n\r\n")[2]


class KeepAliveTests(SynchronousTestCase):
    """One client connection carries many requests, in order, over one upstream connection."""

    def test_sequential_requests_reuse_the_upstream(self) -> None:
        """Three requests in turn on one client connection are answered over one upstream connection."""
        network, origin = network_with_origin(respond(200, b"ok"))
        client = network.connect_client()
        for path in (b"/a", b"/b", b"/c"):
            client.send(request(path=path))
            network.pump()
        self.assertEqual(client.received, b"HTTP/1.1 200 Whatever\r\nContent-Length: 2\r\n\r\nok" * 3)
        self.assertEqual([head.split(b" ")[1] for head in origin.requests], [b"/a", b"/b", b"/c"])
        self.assertEqual(len(network.upstreams), 1)
        self.assertIsNone(client.lost)

    def test_pipelined_requests_answered_in_order(self) -> None:
        """Two requests sent at once reach the origin one after the other and are answered in order."""
        network, origin = network_with_origin(hold)
        client = network.connect_client()
        client.send(request(path=b"/first") + request(path=b"/second"))
        network.pump()
        self.assertEqual([head.split(b" ")[1] for head in origin.requests], [b"/first"])
        origin.connections[0].transport.write(response(b"one"))
        network.pump()
        self.assertEqual([head.split(b" ")[1] for head in origin.requests], [b"/first", b"/second"])
        origin.connections[0].transport.write(response(b"two"))
        network.pump()
        self.assertEqual(client.received, response(b"one") + response(b"two"))
        self.assertEqual(len(network.upstreams), 1)

    def test_client_fin_while_waiting_abandons_the_exchange(self) -> None:
        """A client that sends its FIN while its request waits for the origin has gone away (as
        mitmproxy and nginx read a FIN): the upstream connection is closed at once, error runs."""
        recorder = HookRecorder()
        network, origin = network_with_origin(hold, addons=[recorder])
        client = network.connect_client()
        client.send(request())
        network.pump()
        self.assertEqual(len(origin.requests), 1)
        client.half_close()
        network.pump()
        self.assertTrue(network.upstreams[0].proxy_end.aborted)
        self.assertEqual(origin.lost, origin.connections)
        self.assertEqual(error_messages(recorder), ["the client disconnected"])
        self.assertIsNotNone(client.lost)

    def test_client_fin_between_requests_closes_quietly(self) -> None:
        """A FIN after a complete exchange just closes the connection: nothing is abandoned."""
        recorder = HookRecorder()
        network, _ = network_with_origin(respond(200, b"bye"), addons=[recorder])
        client = network.connect_client()
        client.send(request())
        network.pump()
        client.half_close()
        network.pump()
        self.assertEqual(client.received, b"HTTP/1.1 200 Whatever\r\nContent-Length: 3\r\n\r\nbye")
        assert client.lost is not None
        self.assertTrue(client.lost.check(ConnectionDone))
        self.assertEqual(error_messages(recorder), [])


class Rewriter:
    """An addon that changes a buffered request and its buffered response."""

    def request(self, flow: HTTPFlow) -> None:
        flow.request.content = (flow.request.content or b"").upper()
        flow.request.headers["X-Rewritten"] = "request"

    def response(self, flow: HTTPFlow) -> None:
        assert flow.response is not None
        flow.response.content = (flow.response.content or b"") + b", seen by the proxy"
        flow.response.headers["X-Rewritten"] = "response"


class BufferedTests(SynchronousTestCase):
    """Bodies within the limits are buffered whole, and what the hooks change is what goes on."""

    def test_hooks_change_request_and_response(self) -> None:
        """The origin gets the request as the request hook left it; the client the response as the response hook left it."""
        network, origin = network_with_origin(echo_body, addons=[Rewriter()], read_bodies=True)
        client = network.connect_client()
        client.send(request(b"POST", extra=b"Content-Length: 5\r\n") + b"hello")
        network.pump()
        self.assertEqual(origin.bodies, [b"HELLO"])
        self.assertIn(b"\r\nContent-Length: 5\r\n", origin.requests[0])
        self.assertIn(b"\r\nX-Rewritten: request\r\n", origin.requests[0])
        self.assertEqual(
            client.received, b"HTTP/1.1 200 OK\r\nContent-Length: 24\r\nX-Rewritten: response\r\n\r\nHELLO, seen by the proxy"
        )

    def test_chunked_request_with_trailers(self) -> None:
        """A buffered chunked request reaches the hooks with its trailers and the origin as one chunk plus the trailers."""
        recorder = HookRecorder()
        network, origin = network_with_origin(hold, addons=[recorder])
        client = network.connect_client()
        client.send(request(b"POST", extra=b"Transfer-Encoding: chunked\r\n") + b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n")
        network.pump()
        flow = recorder.calls[recorder.names().index("request")][1]
        self.assertEqual((flow.request.content, flow.request.trailers.fields), (b"hello world", ((b"X-Sum", b"42"),)))
        self.assertEqual(body_of(b"".join(origin.received)), b"b\r\nhello world\r\n0\r\nX-Sum: 42\r\n\r\n")


def stream_response(flow: HTTPFlow) -> None:
    """A C{responseheaders} hook that streams every response."""
    assert flow.response is not None
    flow.response.stream = True


class Streamer:
    """An addon that streams every response."""

    responseheaders = staticmethod(stream_response)


class StreamingTests(SynchronousTestCase):
    """Streamed bodies flow as they arrive, and a paused reader pauses the writer end to end."""

    def test_paused_client_pauses_the_origin(self) -> None:
        """While the client's transport is full the proxy stops reading the origin; resumed, the body flows on intact."""
        body = os.urandom(1 << 20)
        network, origin = network_with_origin(hold, options=["stream_large_bodies=64k"])
        client = network.connect_client()
        client.send(request())
        network.pump()
        origin_transport = origin.connections[0].transport
        origin_transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:100_000])
        network.pump()
        self.assertEqual(body_of(client.received), body[:100_000])
        network.clients[0].proxy_end.producer.pauseProducing()
        origin_transport.write(body[100_000:])
        network.pump()
        self.assertEqual(network.upstreams[0].proxy_end.producer_state, "paused")
        self.assertEqual(body_of(client.received), body[:100_000])
        self.assertTrue(origin_transport.stream, "the origin's bytes wait unread")
        network.clients[0].proxy_end.producer.resumeProducing()
        network.pump()
        self.assertEqual(network.upstreams[0].proxy_end.producer_state, "producing")
        self.assertTrue(body_of(client.received) == body, "the body arrives byte for byte")

    def test_paused_origin_pauses_the_client(self) -> None:
        """While the origin's transport is full the proxy stops reading the client's upload; resumed, it flows on intact."""
        upload = os.urandom(1 << 20)
        network, origin = network_with_origin(hold, options=["stream_large_bodies=64k"])
        client = network.connect_client()
        client.send(request(b"POST", extra=b"Content-Length: %d\r\n" % len(upload)) + upload[:100_000])
        network.pump()
        self.assertEqual(body_of(b"".join(origin.received)), upload[:100_000])
        network.upstreams[0].proxy_end.producer.pauseProducing()
        client.send(upload[100_000:])
        network.pump()
        self.assertEqual(network.clients[0].proxy_end.producer_state, "paused")
        self.assertEqual(body_of(b"".join(origin.received)), upload[:100_000])
        network.upstreams[0].proxy_end.producer.resumeProducing()
        network.pump()
        self.assertEqual(network.clients[0].proxy_end.producer_state, "producing")
        self.assertTrue(body_of(b"".join(origin.received)) == upload, "the upload arrives byte for byte")
        origin.connections[0].transport.write(response(b"stored"))
        network.pump()
        self.assertEqual(client.received, response(b"stored"))

    def test_chunked_response_relayed_chunk_for_chunk(self) -> None:
        """A streamed chunked response reaches the client with the origin's chunks and trailers unchanged."""
        network, origin = network_with_origin(hold, addons=[Streamer()])
        client = network.connect_client()
        client.send(request())
        network.pump()
        sent = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\nX-Checksum: 8\r\n\r\n"
        origin.connections[0].transport.write(sent)
        network.pump()
        self.assertEqual(client.received, sent)


class FailureTests(SynchronousTestCase):
    """Failures become error responses before the response starts, and cut connections after."""

    def test_connection_refused(self) -> None:
        """A request to an address where nothing listens gets a 502 that says the connection was refused."""
        network = MemoryNetwork()
        client = network.connect_client()
        client.send(b"GET http://10.0.0.9/ HTTP/1.1\r\nHost: 10.0.0.9\r\n\r\n")
        network.pump()
        self.assertTrue(client.received.startswith(b"HTTP/1.1 502 "), client.received)
        self.assertEqual(body_of(client.received), b"twisted_mitm: connection refused by 10.0.0.9:80\n")
        self.assertIsNotNone(client.lost)

    def _origin_dies(self, head: bytes, sent: bytes) -> tuple[MemoryNetwork, MemoryClient, HookRecorder]:
        """The origin sends C{head} and C{sent} of a streamed response, then its connection is reset."""
        recorder = HookRecorder()
        network, origin = network_with_origin(hold, options=["stream_large_bodies=1k"], addons=[recorder])
        client = network.connect_client()
        client.send(request())
        network.pump()
        origin.connections[0].transport.write(head + sent)
        network.pump()
        origin.connections[0].transport.abortConnection()
        network.pump()
        return network, client, recorder

    def test_origin_dies_mid_length_body(self) -> None:
        """The client's connection is cut short of the declared Content-Length, and error runs."""
        network, client, recorder = self._origin_dies(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b"x" * 30000)
        self.assertEqual(body_of(client.received), b"x" * 30000)
        assert client.lost is not None
        self.assertTrue(client.lost.check(ConnectionLost))
        self.assertTrue(network.clients[0].proxy_end.aborted)
        self.assertEqual(error_messages(recorder), ["server closed the connection before the response was complete"])

    def test_origin_dies_mid_chunked_body(self) -> None:
        """The client's connection is cut without the terminating zero-chunk, and error runs."""
        network, client, recorder = self._origin_dies(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"7d0\r\n" + b"c" * 2000 + b"\r\n")
        self.assertEqual(body_of(client.received), b"7d0\r\n" + b"c" * 2000 + b"\r\n")
        assert client.lost is not None
        self.assertTrue(client.lost.check(ConnectionLost))
        self.assertEqual(error_messages(recorder), ["server closed the connection before the response was complete"])

    def test_client_goes_away_mid_response(self) -> None:
        """When the client disconnects mid-body the origin connection is closed, and error runs."""
        recorder = HookRecorder()
        network, origin = network_with_origin(hold, options=["stream_large_bodies=1k"], addons=[recorder])
        client = network.connect_client()
        client.send(request())
        network.pump()
        origin.connections[0].transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        network.pump()
        self.assertEqual(body_of(client.received), b"x" * 1000)
        client.abort()
        network.pump()
        self.assertEqual(origin.lost, origin.connections)
        self.assertEqual(error_messages(recorder), ["the client disconnected"])

    def test_silent_upstream_times_out(self) -> None:
        """An origin that answers nothing for upstream_read_timeout seconds gets the client a 504."""
        network, origin = network_with_origin(hold, options=["upstream_read_timeout=5"])
        client = network.connect_client()
        client.send(request())
        network.pump()
        network.advance(4.9)
        self.assertEqual(client.received, b"")
        network.advance(0.2)
        self.assertTrue(client.received.startswith(b"HTTP/1.1 504 "), client.received)
        self.assertEqual(body_of(client.received), b"twisted_mitm: the server sent nothing for 5 seconds\n")
        self.assertEqual(origin.lost, origin.connections)

    def test_idle_client_closed(self) -> None:
        """A client connection that sends nothing for connection_idle_timeout seconds is closed without a word."""
        network = MemoryNetwork(("connection_idle_timeout=3",))
        client = network.connect_client()
        network.advance(2.9)
        self.assertIsNone(client.lost)
        network.advance(0.2)
        assert client.lost is not None
        self.assertTrue(client.lost.check(ConnectionDone))
        self.assertEqual(client.received, b"")


class SlowClientTests(SynchronousTestCase):
    """A client cannot hold a connection by trickling its head, nor lose a response by uploading on."""

    def test_trickled_head_gets_408_at_the_deadline(self) -> None:
        """Bytes of a head arriving every half second do not extend request_head_timeout."""
        network, origin = network_with_origin(respond(200, b"never"), options=["request_head_timeout=3"])
        client = network.connect_client()
        head = request()
        for byte in range(5):
            client.send(head[byte : byte + 1])
            network.advance(0.5)
        self.assertIsNone(client.lost)
        for byte in range(5, 8):
            client.send(head[byte : byte + 1])
            network.advance(0.5)
        self.assertTrue(client.received.startswith(b"HTTP/1.1 408 "), client.received)
        self.assertIn(b"did not arrive within 3 seconds", client.received)
        self.assertIsNotNone(client.lost)
        self.assertEqual(origin.requests, [])

    def test_early_response_then_the_upload_is_drained(self) -> None:
        """An origin answering before the upload ended: the client gets the response, then our FIN
        (not a close that would reset the connection over its unread upload), and the connection
        ends cleanly when the client closes."""

        def refuse(protocol: Any, head: bytes) -> None:
            protocol.transport.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno!")

        network, _ = network_with_origin(refuse, options=["stream_large_bodies=1k"])
        client = network.connect_client()
        client.send(request(b"POST", extra=b"Content-Length: 100000\r\n") + b"x" * 5000)
        network.pump()
        self.assertTrue(client.received.endswith(b"\r\n\r\nno!"), client.received)
        proxy_end = network.clients[0].proxy_end
        self.assertTrue(proxy_end.write_closed)
        self.assertFalse(proxy_end.aborted)
        assert client.lost is not None
        self.assertTrue(client.lost.check(ConnectionDone))

    def test_client_gone_while_the_upstream_is_being_opened(self) -> None:
        """A client that leaves while server_connect still runs: the connection opened after it is closed."""
        connecting: list[Deferred[None]] = []

        class SlowConnect:
            def server_connect(self, data: object) -> Deferred[None]:
                connecting.append(Deferred())
                return connecting[0]

        network, origin = network_with_origin(hold, addons=[SlowConnect()])
        client = network.connect_client()
        client.send(request())
        network.pump()
        client.abort()
        network.pump()
        connecting[0].callback(None)
        network.pump()
        self.assertEqual(len(origin.connections), 1)
        self.assertEqual(origin.lost, origin.connections)
        self.assertEqual(origin.requests, [])


class Editor:
    """An addon whose hooks are given as keyword functions."""

    def __init__(self, **hooks: Callable[[HTTPFlow], None]) -> None:
        for name, hook in hooks.items():
            setattr(self, name, hook)


class ScriptSafetyTests(SynchronousTestCase):
    """What a script does to a message can change it, never the wire's framing."""

    def test_streamed_request_keeps_its_real_length(self) -> None:
        """A script that edits Content-Length of a streamed request: the origin gets the real length
        and the whole body as one request, and the log says the edit was ignored."""

        def shrink(flow: HTTPFlow) -> None:
            flow.request.headers["Content-Length"] = "2"

        network, origin = network_with_origin(echo_body, options=["stream_large_bodies=1k"], addons=[Editor(requestheaders=shrink)], read_bodies=True)
        client = network.connect_client()
        body = os.urandom(5000)
        with capturedLogs() as events:
            client.send(request(b"POST", extra=b"Content-Length: 5000\r\n") + body)
            network.pump()
        self.assertEqual(origin.bodies, [body])
        self.assertIn(b"\r\nContent-Length: 5000\r\n", origin.requests[0])
        self.assertEqual(body_of(client.received), body)
        self.assertTrue(any("the change is ignored" in formatEvent(event) for event in events))

    def test_streamed_response_keeps_its_real_length(self) -> None:
        """A script adding Transfer-Encoding to a streamed Content-Length response does not reach the client."""

        def chunk_it(flow: HTTPFlow) -> None:
            assert flow.response is not None
            flow.response.headers["Transfer-Encoding"] = "chunked"

        body = os.urandom(5000)
        network, _ = network_with_origin(respond(200, body), options=["stream_large_bodies=1k"], addons=[Editor(responseheaders=chunk_it)])
        client = network.connect_client()
        client.send(request())
        network.pump()
        head, _, received = client.received.partition(b"\r\n\r\n")
        self.assertNotIn(b"transfer-encoding", head.lower())
        self.assertIn(b"\r\nContent-Length: 5000", head)
        self.assertEqual(received, body)

    def test_crlf_in_a_response_header_is_a_502(self) -> None:
        """A response header with CR/LF set by a script: the client gets a 502 naming the problem."""
        recorder = HookRecorder()

        def inject(flow: HTTPFlow) -> None:
            assert flow.response is not None
            flow.response.headers["X-Evil"] = "a\r\nSet-Cookie: stolen=1"

        network, _ = network_with_origin(respond(200, b"ok"), addons=[Editor(response=inject), recorder])
        client = network.connect_client()
        client.send(request())
        network.pump()
        self.assertTrue(client.received.startswith(b"HTTP/1.1 502 "), client.received)
        self.assertNotIn(b"stolen", client.received.partition(b"\r\n\r\n")[0])
        self.assertIn(b"response head unsendable", client.received)
        self.assertEqual(len(error_messages(recorder)), 1)

    def test_crlf_in_a_request_header_is_a_502(self) -> None:
        """A request header with CR/LF set by a script never reaches the origin: the client gets a 502."""

        def inject(flow: HTTPFlow) -> None:
            flow.request.headers["X-Evil"] = "a\r\n\r\nGET /smuggled HTTP/1.1"

        network, origin = network_with_origin(respond(200, b"ok"), addons=[Editor(request=inject)])
        client = network.connect_client()
        client.send(request())
        network.pump()
        self.assertTrue(client.received.startswith(b"HTTP/1.1 502 "), client.received)
        self.assertIn(b"request head unsendable", client.received)
        self.assertEqual(origin.requests, [])

    def test_kill_ends_in_one_error_hook(self) -> None:
        """flow.kill() in a hook drops the client and runs error once, with mitmproxy's message."""
        recorder = HookRecorder()
        network, origin = network_with_origin(respond(200, b"ok"), addons=[Editor(request=lambda flow: flow.kill()), recorder])
        client = network.connect_client()
        client.send(request())
        network.pump()
        self.assertEqual(error_messages(recorder), ["Connection killed."])
        self.assertIsNotNone(client.lost)
        self.assertEqual(origin.requests, [])

    def test_h2c_upgrade_offer_removed(self) -> None:
        """An Upgrade: h2c offer and its HTTP2-Settings never reach the origin (mitmproxy's disable_h2c)."""
        network, origin = network_with_origin(respond(200, b"ok"))
        client = network.connect_client()
        client.send(request(extra=b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"))
        network.pump()
        head = origin.requests[0].lower()
        for removed in (b"upgrade", b"http2-settings", b"h2c"):
            self.assertNotIn(removed, head)
        self.assertTrue(client.received.startswith(b"HTTP/1.1 200 "))


class TunnelDeadlineTests(SynchronousTestCase):
    """What a tunnel's first bytes must become, they must become in time."""

    def test_unfinished_client_hello_closed_at_the_head_deadline(self) -> None:
        """A TLS record header whose ClientHello never completes: the tunnel closes at request_head_timeout."""
        network, origin = network_with_origin(hold, options=["request_head_timeout=3"])
        client = network.connect_client()
        client.send(b"CONNECT 10.0.0.1:80 HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n")
        network.pump()
        self.assertTrue(client.received.startswith(b"HTTP/1.1 200 "), client.received)
        client.send(b"\x16\x03\x01\x02\x00\x01")
        network.pump()
        network.advance(2.5)
        self.assertIsNone(client.lost)
        network.advance(1)
        self.assertIsNotNone(client.lost)
        self.assertEqual(origin.lost, origin.connections)


class TLSTests(SynchronousTestCase):
    """CONNECT and TLS interception run in memory, on both legs."""

    def setUp(self) -> None:
        self.certstore = CertStore.from_confdir(shared_confdir())
        self.network = MemoryNetwork((f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}",), certstore=self.certstore)

    def test_request_inside_intercepted_tls(self) -> None:
        """A client trusting the proxy's CA gets the TLS origin's answer to a request sent inside CONNECT."""
        network = self.network
        origin = RawOrigin(respond(200, b"secret"))
        origin_tls = origin_certificate("10.0.0.2").options()
        network.add_origin("10.0.0.2", 443, TLSMemoryBIOFactory(origin_tls, False, origin.factory(), clock=network.reactor))
        client = network.connect_client()
        client.send(b"CONNECT 10.0.0.2:443 HTTP/1.1\r\nHost: 10.0.0.2:443\r\n\r\n")
        network.pump()
        self.assertEqual(client.received, b"HTTP/1.1 200 Connection established\r\n\r\n")
        proxy_ca = Certificate.loadPEM(self.certstore.ca_cert.public_bytes(Encoding.PEM))
        inside = client.start_tls(optionsForClientTLS("10.0.0.2", trustRoot=proxy_ca))
        inside.send(b"GET /vault HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n")
        network.pump()
        self.assertEqual(inside.received, b"HTTP/1.1 200 Whatever\r\nContent-Length: 6\r\n\r\nsecret")
        self.assertEqual(origin.requests, [b"GET /vault HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n"])
        self.assertEqual([upstream.address for upstream in network.upstreams], [("10.0.0.2", 443)])


class WebSocketOrigin(Protocol):
    """An origin that accepts a WebSocket upgrade (the C{websockets} sans-I/O server) and keeps the text it receives."""

    def __init__(self) -> None:
        self.websocket = ServerProtocol()
        self.texts: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.websocket.receive_data(data)
        for event in self.websocket.events_received():
            if isinstance(event, WebSocketRequest):
                self.websocket.send_response(self.websocket.accept(event))
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.texts.append(event.data)
        self.flush()

    def flush(self) -> None:
        """Write what the WebSocket protocol has to send."""
        for data in self.websocket.data_to_send():
            self.transport.write(data)


class WebSocketLog:
    """An addon keeping C{(from_client, content)} of each WebSocket message the proxy relays."""

    def __init__(self) -> None:
        self.messages: list[tuple[bool, bytes]] = []

    def websocket_message(self, flow: HTTPFlow) -> None:
        assert flow.websocket is not None
        message = flow.websocket.messages[-1]
        self.messages.append((message.from_client, message.content))


class WebSocketTests(SynchronousTestCase):
    """A WebSocket upgrade through the proxy, and messages relayed both ways."""

    def test_one_message_each_way(self) -> None:
        """After the origin's 101, a text message from each side reaches the other unchanged."""
        log = WebSocketLog()
        network = MemoryNetwork(addons=(log,))
        network.add_origin("10.0.0.3", 80, Factory.forProtocol(WebSocketOrigin))
        websocket = ClientProtocol(parse_uri("ws://10.0.0.3/chat"))
        websocket.send_request(websocket.connect())
        handshake = b"".join(websocket.data_to_send())
        client = network.connect_client()
        client.send(handshake.replace(b"GET /chat ", b"GET http://10.0.0.3/chat ", 1))
        network.pump()
        self.assertTrue(client.received.startswith(b"HTTP/1.1 101 "), client.received)
        websocket.receive_data(client.received)
        self.assertEqual([event.status_code for event in websocket.events_received()], [101])
        websocket.send_text(b"hello from the client")
        client.send(b"".join(websocket.data_to_send()))
        network.pump()
        origin = network.upstreams[0].peer
        self.assertEqual(origin.texts, [b"hello from the client"])
        origin.websocket.send_text(b"hello from the origin")
        origin.flush()
        seen = len(client.received)
        network.pump()
        websocket.receive_data(client.received[seen:])
        self.assertEqual([(event.opcode, event.data) for event in websocket.events_received()], [(Opcode.TEXT, b"hello from the origin")])
        self.assertEqual(log.messages, [(True, b"hello from the client"), (False, b"hello from the origin")])

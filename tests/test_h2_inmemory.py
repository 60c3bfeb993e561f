# -*- test-case-name: tests.test_h2_inmemory -*-
"""HTTP/2 through the proxy, in memory: client and origin speak C{h2} (L{tests.h2peers}).

Each test opens a CONNECT tunnel to an origin at 10.0.0.2:443, starts TLS offering ALPN
protocols, and drives HTTP/2 (or HTTP/1) inside it. Assertions are about what each peer
received, the hooks an addon saw, and how far each peer could send, which is what the
proxy's flow-control windows allow.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.serialization import Encoding
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.h2peers import Answer, H2Origin, H2TestClient, h2_tls_options
from tests.memorynet import MemoryClient, MemoryNetwork
from tests.support import HookRecorder, RawOrigin, origin_ca_path, origin_certificate, respond, shared_confdir
from twisted_mitm.certs import CertStore
from twisted_mitm.http import Headers, HTTPFlow
from twisted_mitm.proxy.h2clientside import RAPID_RESETS
from twisted_mitm.proxy.h2connection import MAX_HEADER_LIST, MAX_STREAMS, STREAM_WINDOW, H2Connection, H2Stream

ORIGIN = ("10.0.0.2", 443)


def answer_with(body: bytes, headers: Sequence[tuple[bytes, bytes]] = (), trailers: Sequence[tuple[bytes, bytes]] = ()) -> Answer:
    return Answer(200, list(headers), body, list(trailers))


class H2Setup:
    """A proxy with an HTTP/2 (or HTTP/1) TLS origin at L{ORIGIN}, and a client tunnelled to it."""

    def __init__(self, test: SynchronousTestCase, origin_protocols: tuple[bytes, ...] = (b"h2",), options: Sequence[str] = (), addons: Sequence[object] = ()) -> None:
        self.certstore = CertStore.from_confdir(shared_confdir())
        self.network = MemoryNetwork((f"ssl_verify_upstream_trusted_ca={origin_ca_path(test)}", *options), addons, certstore=self.certstore)
        self.origin = H2Origin(lambda request: answer_with(b"hello " + (request.header(b":path") or b"")))
        self.raw_origin = RawOrigin(respond(200, b"from http/1.1"))
        factory = self.origin.factory() if b"h2" in origin_protocols else self.raw_origin.factory()
        tls = h2_tls_options(origin_certificate("10.0.0.2"), origin_protocols)
        self.network.add_origin(*ORIGIN, TLSMemoryBIOFactory(tls, False, factory, clock=self.network.reactor))
        self._read = 0

    def tunnel(self, offers: Sequence[bytes] = (b"h2", b"http/1.1")) -> MemoryClient:
        """CONNECT to the origin and start TLS offering C{offers}; the client inside."""
        network = self.network
        client = network.connect_client()
        client.send(b"CONNECT 10.0.0.2:443 HTTP/1.1\r\nHost: 10.0.0.2:443\r\n\r\n")
        network.pump()
        assert client.received == b"HTTP/1.1 200 Connection established\r\n\r\n", client.received
        proxy_ca = Certificate.loadPEM(self.certstore.ca_cert.public_bytes(Encoding.PEM))
        self.inside = client.start_tls(optionsForClientTLS("10.0.0.2", trustRoot=proxy_ca, acceptableProtocols=list(offers)))
        network.pump()
        return self.inside

    def h2_client(self, window: int = 65535) -> H2TestClient:
        """An HTTP/2 client inside a tunnel that agreed on h2."""
        inside = self.tunnel()
        self.client = H2TestClient(inside.send, window)
        self.settle()
        return self.client

    def settle(self) -> None:
        """Pump and let the client read until nothing moves any more."""
        for _ in range(500):
            self.network.pump()
            new = self.inside.received[self._read :]
            if not new:
                return
            self._read += len(new)
            self.client.receive(new)
        raise AssertionError("the HTTP/2 exchange never settled")

    @property
    def agreed(self) -> bytes | None:
        """The protocol the client and the proxy agreed on by ALPN."""
        return self.inside.transport.negotiatedProtocol


class NegotiationTests(SynchronousTestCase):
    """The client is offered h2 only where the server agreed to it (mitmproxy's mirroring)."""

    def test_h2_on_both_legs(self) -> None:
        """Client and origin both offer h2: they get it, and the request reaches the origin as HTTP/2."""
        recorder = HookRecorder()
        setup = H2Setup(self, addons=(recorder,))
        client = setup.h2_client()
        self.assertEqual(setup.agreed, b"h2")
        stream = client.request(b"/page")
        setup.settle()
        response = client.responses[stream]
        self.assertEqual((response.status, response.body, response.ended), (200, b"hello /page", True))
        request = setup.origin.requests[0]
        self.assertEqual((request.header(b":method"), request.header(b":authority"), request.header(b":path")), (b"GET", b"10.0.0.2", b"/page"))
        flow: HTTPFlow = next(argument for name, argument in recorder.calls if name == "response")
        self.assertEqual((flow.request.http_version, flow.response.http_version), ("HTTP/2.0", "HTTP/2.0"))
        self.assertEqual(flow.server_conn.alpn, b"h2")
        self.assertEqual(flow.request.pretty_url, "https://10.0.0.2/page")

    def test_http11_origin_makes_http11_client(self) -> None:
        """The origin chose http/1.1: the client, which offered h2 too, is given http/1.1."""
        setup = H2Setup(self, origin_protocols=(b"http/1.1",))
        inside = setup.tunnel()
        self.assertEqual(setup.agreed, b"http/1.1")
        inside.send(b"GET /x HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n")
        setup.network.pump()
        self.assertTrue(inside.received.endswith(b"\r\n\r\nfrom http/1.1"), inside.received)

    def test_http2_off(self) -> None:
        """With http2=false the client gets http/1.1 though the origin speaks h2."""
        setup = H2Setup(self, origin_protocols=(b"h2", b"http/1.1"), options=("http2=false",))
        setup.tunnel()
        self.assertEqual(setup.agreed, b"http/1.1")

    def test_client_without_h2_offer(self) -> None:
        """A client offering only http/1.1 gets it, as before."""
        setup = H2Setup(self, origin_protocols=(b"h2", b"http/1.1"))
        setup.tunnel(offers=(b"http/1.1",))
        self.assertEqual(setup.agreed, b"http/1.1")


class MessageTests(SynchronousTestCase):
    """Messages cross HTTP/2 whole: bodies, trailers, concurrent streams."""

    def test_post_body_and_trailers(self) -> None:
        """A request body reaches the origin; the response's trailers reach the client."""
        setup = H2Setup(self)
        setup.origin.handler = lambda request: answer_with(request.body[::-1], trailers=[(b"grpc-status", b"0")])
        client = setup.h2_client()
        stream = client.request(b"/echo", method=b"POST", body=b"abcdef", headers=[(b"content-length", b"6")])
        setup.settle()
        response = client.responses[stream]
        self.assertEqual((response.body, response.trailers, response.ended), (b"fedcba", [(b"grpc-status", b"0")], True))
        self.assertEqual(setup.origin.requests[0].body, b"abcdef")

    def test_streamed_trailers_set_by_hooks(self) -> None:
        """Streamed over HTTP/2 both ways, trailers set in requestheaders/responseheaders end the bodies."""

        class AddTrailers:
            def requestheaders(self, flow: HTTPFlow) -> None:
                flow.request.trailers = Headers([(b"x-request-trailer", b"1")])

            def responseheaders(self, flow: HTTPFlow) -> None:
                assert flow.response is not None
                flow.response.trailers = Headers([(b"x-response-trailer", b"2")])

        setup = H2Setup(self, options=["stream_large_bodies=1"], addons=(AddTrailers(),))
        setup.origin.handler = lambda request: answer_with(request.body[::-1])
        client = setup.h2_client()
        stream = client.request(b"/echo", method=b"POST", body=b"abcdef", headers=[(b"content-length", b"6")])
        setup.settle()
        response = client.responses[stream]
        self.assertEqual((response.body, response.trailers, response.ended), (b"fedcba", [(b"x-response-trailer", b"2")], True))
        self.assertEqual((setup.origin.requests[0].body, setup.origin.requests[0].trailers), (b"abcdef", [(b"x-request-trailer", b"1")]))

    def test_streams_run_concurrently(self) -> None:
        """Ten requests sent at once are all answered over one upstream connection."""
        setup = H2Setup(self)
        client = setup.h2_client()
        streams = [client.request(b"/%d" % number) for number in range(10)]
        setup.settle()
        self.assertEqual([client.responses[stream].body for stream in streams], [b"hello /%d" % number for number in range(10)])
        self.assertEqual(len(setup.network.upstreams), 1)

    def test_hook_changes_buffered_response(self) -> None:
        """A response hook's change to a buffered HTTP/2 response is what the client gets, with the new length."""

        class Upper:
            def response(self, flow: HTTPFlow) -> None:
                flow.response.content = flow.response.content.upper() + b"!"

        setup = H2Setup(self, addons=(Upper(),))
        client = setup.h2_client()
        stream = client.request(b"/x")
        setup.settle()
        response = client.responses[stream]
        self.assertEqual(response.body, b"HELLO /X!")
        self.assertIn((b"content-length", b"9"), response.headers)

    def test_h2_client_to_http11_server(self) -> None:
        """A request a script sends to a plain HTTP/1.1 server goes there as HTTP/1.1, with Host from :authority."""
        http11 = RawOrigin(respond(200, b"from elsewhere"))

        class Redirect:
            def request(self, flow: HTTPFlow) -> None:
                flow.request.scheme, flow.request.host, flow.request.port = "http", "10.0.0.3", 80

        setup = H2Setup(self, addons=(Redirect(),))
        setup.network.add_origin("10.0.0.3", 80, http11.factory())
        client = setup.h2_client()
        stream = client.request(b"/moved", headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2")])
        setup.settle()
        self.assertEqual((client.responses[stream].status, client.responses[stream].body), (200, b"from elsewhere"))
        head = http11.requests[0]
        self.assertTrue(head.startswith(b"GET /moved HTTP/1.1\r\n"), head)
        self.assertIn(b"\r\nHost: 10.0.0.3\r\n", head)
        self.assertIn(b"\r\ncookie: a=1; b=2\r\n", head)


class BackpressureTests(SynchronousTestCase):
    """Each stream's window is its backpressure: a stalled stream stops only itself."""

    def test_stalled_stream_does_not_stop_another(self) -> None:
        """A client that stops reading one stream stops only that stream: the origin can send it
        no more than the proxy's window plus the client's; another stream completes meanwhile;
        reading again brings the rest, byte for byte."""
        big = bytes(range(256)) * (4 * 1024 * 4)  # 4 MiB
        setup = H2Setup(self, options=("stream_large_bodies=64k",))
        setup.origin.handler = lambda request: answer_with(big if request.header(b":path") == b"/big" else b"small and fast")
        client = setup.h2_client()
        client.stalled.add(1)
        slow = client.request(b"/big")
        fast = client.request(b"/fast")
        setup.settle()
        self.assertEqual(slow, 1)
        self.assertEqual((client.responses[fast].body, client.responses[fast].ended), (b"small and fast", True))
        self.assertEqual(len(client.responses[slow].body), 65535)
        # What the proxy holds for the stalled stream is bounded by its own window (plus frames in flight).
        held = setup.origin.sent[1] - len(client.responses[slow].body)
        self.assertLessEqual(held, STREAM_WINDOW + 16 * 1024)
        self.assertLess(setup.origin.sent[1], len(big))
        client.resume(slow)
        for _ in range(100):
            setup.settle()
            if client.responses[slow].ended:
                break
            client.resume(slow)
        self.assertEqual(client.responses[slow].body, big)

    def test_streamed_body_with_stream_large_bodies(self) -> None:
        """A response above stream_large_bodies is streamed: hooks see no body, the client gets all of it."""
        body = b"x" * 300_000
        recorder = HookRecorder()
        setup = H2Setup(self, options=("stream_large_bodies=100k",), addons=(recorder,))
        setup.origin.handler = lambda request: answer_with(body, headers=[(b"content-length", b"%d" % len(body))])
        client = setup.h2_client()
        stream = client.request(b"/large")
        setup.settle()
        self.assertEqual(client.responses[stream].body, body)
        flow = next(argument for name, argument in recorder.calls if name == "response")
        self.assertTrue(flow.response.stream)
        self.assertEqual(flow.response.raw_content, b"")
        self.assertEqual(flow.metadata["response_body_size"], len(body))


class FailureTests(SynchronousTestCase):
    """Errors end the stream they belong to, visibly; attacks end the connection."""

    def test_server_reset_mid_body_resets_client_stream(self) -> None:
        """The origin resets a streamed response: the client's stream is reset, never ended, and error runs."""
        recorder = HookRecorder()
        setup = H2Setup(self, options=("stream_large_bodies=10k",), addons=(recorder,))
        big = b"y" * 1_000_000
        setup.origin.handler = lambda request: answer_with(big)
        client = setup.h2_client()
        client.stalled.add(1)
        stream = client.request(b"/cut")
        setup.settle()
        setup.origin.connections[0].reset(1)
        setup.settle()
        response = client.responses[stream]
        self.assertFalse(response.ended)
        self.assertIsNotNone(response.reset)
        self.assertEqual(recorder.names("error"), ["error"])

    def test_client_reset_cancels_upstream_stream(self) -> None:
        """A client resetting its stream has the proxy cancel the upstream stream; error runs once."""
        recorder = HookRecorder()
        setup = H2Setup(self, options=("stream_large_bodies=10k",), addons=(recorder,))
        setup.origin.handler = lambda request: answer_with(b"z" * 500_000)
        client = setup.h2_client()
        client.stalled.add(1)
        stream = client.request(b"/abandoned")
        setup.settle()
        client.reset(stream)
        setup.settle()
        self.assertEqual(setup.origin.resets, [1])
        self.assertEqual(recorder.names("error"), ["error"])

    def test_unreachable_server_is_502_on_the_stream(self) -> None:
        """A request a script sends to an unreachable server gets a 502 on its stream; the connection stays usable."""

        class Elsewhere:
            def request(self, flow: HTTPFlow) -> None:
                if flow.request.path == "/nowhere":
                    flow.request.host = "10.0.0.9"

        setup = H2Setup(self, addons=(Elsewhere(),))
        client = setup.h2_client()
        lost = client.request(b"/nowhere")
        fine = client.request(b"/fine")
        setup.settle()
        self.assertEqual(client.responses[lost].status, 502)
        self.assertIn(b"connection refused", client.responses[lost].body)
        self.assertEqual(client.responses[fine].body, b"hello /fine")

    def test_rapid_reset_ends_connection(self) -> None:
        """A client resetting more than RAPID_RESETS fresh streams gets GOAWAY ENHANCE_YOUR_CALM."""
        setup = H2Setup(self)
        setup.origin.handler = lambda request: None
        client = setup.h2_client()
        for _ in range(RAPID_RESETS + 1):
            client.reset(client.request(b"/r"))
        setup.settle()
        self.assertEqual(client.terminated, ErrorCodes.ENHANCE_YOUR_CALM)

    def test_too_many_streams(self) -> None:
        """Opening more than MAX_STREAMS streams at once is refused by GOAWAY."""
        setup = H2Setup(self)
        setup.origin.handler = lambda request: None
        client = setup.h2_client()
        # The test client ignores the proxy's limit, as an attacker would.
        client.conn.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = MAX_STREAMS * 2
        client.conn.remote_settings.acknowledge()
        for _ in range(MAX_STREAMS + 1):
            client.request(b"/s", end=False)
        setup.settle()
        self.assertEqual(client.terminated, ErrorCodes.PROTOCOL_ERROR)

    def test_header_list_too_large(self) -> None:
        """A header block larger than MAX_HEADER_LIST decoded is a connection error."""
        setup = H2Setup(self)
        client = setup.h2_client()
        client.request(b"/h", headers=[(b"x-big", b"a" * (MAX_HEADER_LIST + 1))])
        setup.settle()
        self.assertIsNotNone(client.terminated)
        self.assertEqual(setup.origin.requests, [])


class IdleTests(SynchronousTestCase):
    """An HTTP/2 connection without streams does not stay open forever."""

    def test_idle_connection_closed(self) -> None:
        """After connection_idle_timeout seconds without a stream, the proxy sends GOAWAY and closes TLS."""
        setup = H2Setup(self, options=("connection_idle_timeout=30",))
        client = setup.h2_client()
        stream = client.request(b"/once")
        setup.settle()
        self.assertTrue(client.responses[stream].ended)
        setup.network.advance(29)
        setup.settle()
        self.assertIsNone(client.terminated)
        setup.network.advance(2)
        setup.settle()
        self.assertEqual(client.terminated, ErrorCodes.NO_ERROR)
        self.assertIsNotNone(setup.inside.lost)
        self.assertTrue(setup.network.clients[0].proxy_end.disconnected)


class InterfaceTests(SynchronousTestCase):
    """A stream's halves provide the Twisted interfaces the pipe relies on."""

    def test_stream_halves(self) -> None:
        """StreamInput is an IPushProducer (what a full destination pauses), StreamOutput an IConsumer."""
        stream = H2Stream(H2Connection(client_side=False, reactor=MemoryReactorClock()), 1)
        self.assertTrue(verifyObject(IPushProducer, stream.input))
        self.assertTrue(verifyObject(IConsumer, stream.output))

"""HTTP/2 peers for tests, built on the C{h2} library: an origin server and a test-driven client.

L{H2Origin} is a Twisted protocol (give L{H2Origin.factory} to a listening port or to
L{tests.memorynet.MemoryNetwork.add_origin}, under TLS with L{h2_tls_options}); it answers
each request once its body is complete and sends bodies as its peer's flow-control window
allows. L{H2TestClient} speaks HTTP/2 over any transport-like object with C{send}; a test
feeds it what was received and it keeps every stream's response. Its acknowledgements are
under the test's control: a stream in C{stalled} gets no WINDOW_UPDATE, as a reader that
stopped reading, so its window runs out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
from cryptography.hazmat.primitives import serialization
from h2.settings import SettingCodes
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions, PrivateCertificate

from tests.support import OriginCertificate

Block = list[tuple[bytes, bytes]]


def h2_tls_options(certificate: OriginCertificate, protocols: tuple[bytes, ...] = (b"h2",)) -> CertificateOptions:
    """Server-side TLS options presenting C{certificate} and selecting among C{protocols} by ALPN."""
    key_pem = certificate.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    private = PrivateCertificate.loadPEM(certificate.cert.public_bytes(serialization.Encoding.PEM) + key_pem)
    return CertificateOptions(privateKey=private.privateKey.original, certificate=private.original, acceptableProtocols=list(protocols))


@dataclass
class Answer:
    """What an L{H2Origin} sends back: status, fields, body, trailers."""

    status: int = 200
    headers: Block = field(default_factory=list)
    body: bytes = b""
    trailers: Block = field(default_factory=list)


@dataclass
class ReceivedRequest:
    """A request as an L{H2Origin} read it."""

    stream_id: int
    headers: Block
    body: bytes = b""
    trailers: Block = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


class H2Origin:
    """An HTTP/2 origin: C{handler(request)} answers each complete request.

    @ivar requests: every request read, in order of completion.
    @ivar sent: body bytes sent per stream id.
    @ivar resets: stream ids the proxy reset.
    """

    def __init__(self, handler: Callable[[ReceivedRequest], Answer | None]) -> None:
        self.handler = handler
        self.requests: list[ReceivedRequest] = []
        self.sent: dict[int, int] = {}
        self.resets: list[int] = []
        self.connections: list[_H2OriginProtocol] = []
        self.lost: list[_H2OriginProtocol] = []

    def factory(self) -> Factory:
        return Factory.forProtocol(lambda: _H2OriginProtocol(self))

    def abort_connections(self) -> None:
        """Drop every connection still open (a test's cleanup)."""
        for connection in self.connections:
            if connection not in self.lost:
                connection.transport.abortConnection()


class _H2OriginProtocol(Protocol):
    def __init__(self, origin: H2Origin) -> None:
        self.origin = origin
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        self._reading: dict[int, ReceivedRequest] = {}
        self._sending: dict[int, tuple[bytes, Block]] = {}

    def connectionMade(self) -> None:
        self.origin.connections.append(self)
        self.conn.initiate_connection()
        self.flush()

    def connectionLost(self, reason: object = None) -> None:
        self.origin.lost.append(self)

    def dataReceived(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                self._reading[event.stream_id] = ReceivedRequest(event.stream_id, list(event.headers))
            elif isinstance(event, h2.events.DataReceived):
                self._reading[event.stream_id].body += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                self._reading[event.stream_id].trailers = list(event.headers)
            elif isinstance(event, h2.events.StreamEnded):
                self._answer(self._reading.pop(event.stream_id))
            elif isinstance(event, h2.events.StreamReset):
                self.origin.resets.append(event.stream_id)
                self._sending.pop(event.stream_id, None)
        self.send_bodies()

    def _answer(self, request: ReceivedRequest) -> None:
        self.origin.requests.append(request)
        answer = self.origin.handler(request)
        if answer is None:
            return
        headers = [(b":status", b"%d" % answer.status), *answer.headers]
        self.conn.send_headers(request.stream_id, headers, end_stream=not answer.body and not answer.trailers)
        if answer.body or answer.trailers:
            self._sending[request.stream_id] = (answer.body, answer.trailers)
            self.origin.sent[request.stream_id] = 0

    def send_bodies(self) -> None:
        """Send what the proxy's windows allow of every body under way."""
        for stream_id in list(self._sending):
            body, trailers = self._sending[stream_id]
            sent = self.origin.sent[stream_id]
            while sent < len(body):
                size = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size, len(body) - sent)
                if size <= 0:
                    break
                self.conn.send_data(stream_id, body[sent : sent + size])
                sent += size
            self.origin.sent[stream_id] = sent
            if sent == len(body):
                del self._sending[stream_id]
                if trailers:
                    self.conn.send_headers(stream_id, trailers, end_stream=True)
                else:
                    self.conn.end_stream(stream_id)
        self.flush()

    def reset(self, stream_id: int) -> None:
        """Reset a stream from the origin's side."""
        self._sending.pop(stream_id, None)
        self.conn.reset_stream(stream_id)
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.transport.write(data)


@dataclass
class ReceivedResponse:
    """A response as an L{H2TestClient} read it."""

    headers: Block = field(default_factory=list)
    body: bytes = b""
    trailers: Block = field(default_factory=list)
    ended: bool = False
    reset: int | None = None

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])


class H2TestClient:
    """An HTTP/2 client a test drives: it sends through C{send} and is fed with L{receive}.

    @ivar responses: each stream's response so far, by stream id.
    @ivar stalled: streams whose DATA is not acknowledged (a reader that stopped reading).
    @ivar terminated: the GOAWAY error code, once the proxy sent one.
    """

    def __init__(self, send: Callable[[bytes], None], window: int = 65535) -> None:
        self._send = send
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values={SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.conn.initiate_connection()
        # a connection window that never binds: each stream's window is what a test controls
        self.conn.increment_flow_control_window(2**30)
        self.responses: dict[int, ReceivedResponse] = {}
        self.stalled: set[int] = set()
        self.unacknowledged: dict[int, int] = {}
        self.terminated: int | None = None
        self.flush()

    def request(self, path: bytes, method: bytes = b"GET", authority: bytes = b"10.0.0.2", headers: Block = (), body: bytes = b"", end: bool = True) -> int:
        """Send a request; return its stream id."""
        stream_id = self.conn.get_next_available_stream_id()
        block = [(b":method", method), (b":scheme", b"https"), (b":authority", authority), (b":path", path), *headers]
        self.conn.send_headers(stream_id, block, end_stream=end and not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=end)
        self.responses[stream_id] = ReceivedResponse()
        self.flush()
        return stream_id

    def reset(self, stream_id: int) -> None:
        self.conn.reset_stream(stream_id)
        self.flush()

    def resume(self, stream_id: int) -> None:
        """Start reading a stalled stream again: acknowledge what it received."""
        self.stalled.discard(stream_id)
        size = self.unacknowledged.pop(stream_id, 0)
        if size:
            self.conn.acknowledge_received_data(size, stream_id)
        self.flush()

    def receive(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            response = self.responses.get(getattr(event, "stream_id", None) or 0)
            if isinstance(event, h2.events.ResponseReceived):
                response.headers = list(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                response.body += event.data
                if event.stream_id in self.stalled:
                    self.unacknowledged[event.stream_id] = self.unacknowledged.get(event.stream_id, 0) + event.flow_controlled_length
                else:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                response.trailers = list(event.headers)
            elif isinstance(event, h2.events.StreamEnded):
                response.ended = True
            elif isinstance(event, h2.events.StreamReset):
                response.reset = event.error_code
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.terminated = event.error_code
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self._send(data)

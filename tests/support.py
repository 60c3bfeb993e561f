"""Shared fixtures for integration tests: an in-process proxy, origins, real clients.

The proxy runs in the test's own reactor (trial's, the asyncio reactor), listening on
127.0.0.1 port 0, so clients must not block the reactor: curl runs as a child process
(L{curl}), blocking clients such as C{http.client} run in a thread (C{deferToThread}).
Every port and connection is closed by a cleanup registered on the test case.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions, PrivateCertificate
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from tests.test_certs import make_ca
from twisted_mitm.addonmanager import load_script
from twisted_mitm.addons.defaults import addons_after_scripts, default_addons
from twisted_mitm.certs import CertStore
from twisted_mitm.master import Master
from twisted_mitm.options import default_options
from twisted_mitm.service import MitmService

reactor: Any = _reactor

_CONFDIR: str | None = None


def shared_confdir() -> str:
    """A confdir with a CA, made once per test run (CA generation is the slow part)."""
    global _CONFDIR
    if _CONFDIR is None:
        _CONFDIR = tempfile.mkdtemp(prefix="twisted_mitm_tests_")
        CertStore.from_confdir(_CONFDIR)
    return _CONFDIR


@dataclass
class RunningProxy:
    """A proxy started by L{start_proxy}."""

    service: MitmService
    master: Master
    port: int
    confdir: str
    shutdowns: list[bool] = field(default_factory=list)
    """One item per call of C{master.shutdown()} (the proxy itself keeps running)."""

    @property
    def url(self) -> str:
        """The proxy URL to give clients (C{curl -x}, C{HTTP_PROXY})."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ca_path(self) -> str:
        """The CA certificate clients must trust for intercepted TLS."""
        return os.path.join(self.confdir, "mitmproxy-ca-cert.pem")


def start_proxy(
    test: TestCase,
    *,
    options: Sequence[str] = (),
    scripts: Sequence[str] = (),
    addons: Iterable[object] = (),
    confdir: str | None = None,
) -> RunningProxy:
    """Start a proxy on 127.0.0.1 port 0 with C{--set}-style C{options}, scripts and addon objects.

    @param confdir: where the CA lives; by default one shared by the whole test run.
    """
    confdir = confdir or shared_confdir()
    shutdowns: list[bool] = []
    master = make_master(["listen_port=0", f"confdir={confdir}", *options], addons, scripts, lambda: shutdowns.append(True))
    service = MitmService(master, CertStore.from_confdir(confdir), reactor)
    service.startService()
    test.addCleanup(service.stopService)
    return RunningProxy(service, master, service.port.getHost().port, confdir, shutdowns)


def make_master(
    options: Sequence[str] = (),
    addons: Iterable[object] = (),
    scripts: Sequence[str] = (),
    on_shutdown: Callable[[], None] = lambda: None,
) -> Master:
    """A master with the built-in addons, then C{addons} and C{scripts}, and C{--set}-style C{options}.

    Options are applied after the scripts load, so a script's own options can be set.
    """
    registry = default_options()
    registry.set(*options, defer=True)
    master = Master(registry, shutdown=on_shutdown)
    master.addons.add(*default_addons())
    for addon in addons:
        master.addons.add(addon)
    for path in scripts:
        master.addons.add(load_script(path))
    master.addons.add(*addons_after_scripts())
    registry.process_deferred()
    return master


def listen(test: TestCase, factory: Factory) -> int:
    """Listen on 127.0.0.1 port 0 until the test ends; return the port."""
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    test.addCleanup(port.stopListening)
    return port.getHost().port


class _ScriptedOrigin(Protocol):
    """Reads one request head at a time and lets a function answer it."""

    def __init__(self, origin: RawOrigin) -> None:
        self.origin = origin
        self.buffer = b""

    def connectionMade(self) -> None:
        self.origin.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        self.origin.received.append(data)
        while b"\r\n\r\n" in self.buffer and self.origin.handler is not None:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            self.buffer = rest
            self.origin.requests.append(head + b"\r\n\r\n")
            self.origin.handler(self, head + b"\r\n\r\n")

    def connectionLost(self, reason: object = None) -> None:
        self.origin.lost.append(self)


@dataclass
class RawOrigin:
    """An origin whose answers are raw bytes written by a test's handler.

    C{handler(protocol, head)} is called for each request head (the body, if any, stays
    in C{protocol.buffer} / arrives in C{received}); it writes whatever it wants to
    C{protocol.transport}.
    """

    handler: Callable[[_ScriptedOrigin, bytes], None] | None
    port: int = 0
    scheme: str = "http"
    requests: list[bytes] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)
    connections: list[_ScriptedOrigin] = field(default_factory=list)
    lost: list[_ScriptedOrigin] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def factory(self, read_bodies: bool = False) -> Factory:
        """Protocols serving this origin on any transport; with C{read_bodies}, as L{start_body_origin}'s."""
        protocol = _BodyReadingOrigin if read_bodies else _ScriptedOrigin
        return Factory.forProtocol(lambda: protocol(self))


def start_raw_origin(
    test: TestCase, handler: Callable[[Any, bytes], None] | None, tls: OriginCertificate | None = None
) -> RawOrigin:
    """Start a L{RawOrigin} on 127.0.0.1 port 0; with C{tls}, it speaks TLS with that certificate."""
    origin = RawOrigin(handler, scheme="http" if tls is None else "https")
    factory = origin.factory()
    if tls is not None:
        factory = TLSMemoryBIOFactory(tls.options(), False, factory)
    origin.port = listen(test, factory)

    def close_connections() -> None:
        for connection in origin.connections:
            if connection.transport is not None and connection not in origin.lost:
                connection.transport.abortConnection()

    test.addCleanup(close_connections)
    return origin


@dataclass(frozen=True)
class OriginCertificate:
    """A test origin's certificate and key, signed by L{origin_ca}, never by the proxy's CA."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    def options(self) -> CertificateOptions:
        """Server-side TLS options presenting this certificate and selecting http/1.1 by ALPN.

        The ALPN protocol is explicit because Twisted's server fails the handshake with
        an internal error when a client offers ALPN and the server lists no protocols.
        """
        key_pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        private = PrivateCertificate.loadPEM(self.cert.public_bytes(serialization.Encoding.PEM) + key_pem)
        return CertificateOptions(
            privateKey=private.privateKey.original, certificate=private.original, acceptableProtocols=[b"http/1.1"]
        )


@functools.cache
def origin_ca() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """The CA that signs test origins' certificates, made once per test run."""
    return make_ca("twisted_mitm test origin CA")


def origin_ca_path(test: TestCase) -> str:
    """Write L{origin_ca}'s certificate to a PEM file for this test (C{ssl_verify_upstream_trusted_ca}, C{--cacert})."""
    path = test.mktemp() + "-origin-ca.pem"
    with open(path, "wb") as f:
        f.write(origin_ca()[1].public_bytes(serialization.Encoding.PEM))
    return path


@functools.cache
def origin_certificate(*names: str) -> OriginCertificate:
    """A server certificate for C{names} (DNS names or IP literals, all in the SAN), signed by L{origin_ca}."""
    ca_key, ca_cert = origin_ca()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    san: list[x509.GeneralName] = []
    for name in names:
        try:
            san.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            san.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return OriginCertificate(key, cert)


@implementer(IHalfCloseableProtocol)
class _Echo(Protocol):
    """Sends back what it reads; a client that reads slowly pauses its reading (backpressure).

    At the client's FIN it closes once everything read has been sent back.
    """

    def __init__(self, origin: EchoOrigin) -> None:
        self.origin = origin

    def connectionMade(self) -> None:
        self.origin.connections.append(self)
        self.transport.registerProducer(self.transport, True)

    def dataReceived(self, data: bytes) -> None:
        self.origin.received.append(data)
        self.transport.write(data)

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """Nothing to do: the echo ends when the client does."""


@dataclass
class EchoOrigin:
    """A TCP echo server; C{received} holds every chunk read, in order."""

    port: int = 0
    received: list[bytes] = field(default_factory=list)
    connections: list[_Echo] = field(default_factory=list)


def start_echo_origin(test: TestCase) -> EchoOrigin:
    """Start an L{EchoOrigin} on 127.0.0.1 port 0."""
    origin = EchoOrigin()
    origin.port = listen(test, Factory.forProtocol(lambda: _Echo(origin)))

    def close_connections() -> None:
        for connection in origin.connections:
            connection.transport.abortConnection()

    test.addCleanup(close_connections)
    return origin


def respond(status: int = 200, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()) -> Callable[[Any, bytes], None]:
    """A L{RawOrigin} handler answering every request with one Content-Length response."""

    def handler(protocol: Any, head: bytes) -> None:
        lines = [f"HTTP/1.1 {status} Whatever".encode()]
        lines += [f"{name}: {value}".encode() for name, value in headers]
        lines.append(f"Content-Length: {len(body)}".encode())
        protocol.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)

    return handler


def curl(*args: str, timeout: float = 30) -> Deferred[tuple[bytes, bytes, int]]:
    """Run curl without blocking the reactor; fires with (stdout, stderr, exit code)."""
    command = ["--silent", "--show-error", "--max-time", str(timeout), *args]
    return getProcessOutputAndValue("curl", command, env=_without_proxy_env(), reactor=reactor)


def _without_proxy_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if "proxy" not in name.lower()}


async def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll C{predicate} every 10 ms until it is true; fail after C{timeout} seconds."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await deferLater(reactor, 0.01, lambda: None)


class _BodyReadingOrigin(_ScriptedOrigin):
    """A L{_ScriptedOrigin} that reads each request's body before calling the handler."""

    head: bytes | None = None

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        self.origin.received.append(data)
        while self.origin.handler is not None:
            if self.head is None:
                head, found, rest = self.buffer.partition(b"\r\n\r\n")
                if not found:
                    return
                self.head, self.buffer = head + b"\r\n\r\n", rest
                self.origin.requests.append(self.head)
            body = self._take_body(self.head)
            if body is None:
                return
            self.origin.bodies.append(body)
            head, self.head = self.head, None
            self.origin.handler(self, head)

    def _take_body(self, head: bytes) -> bytes | None:
        """Take a whole body (Content-Length or chunked) off the buffer; C{None} while incomplete."""
        lowered = head.lower()
        if b"\r\ntransfer-encoding: chunked" not in lowered:
            match = re.search(rb"\r\ncontent-length: *([0-9]+)", lowered)
            length = int(match.group(1)) if match else 0
            if len(self.buffer) < length:
                return None
            body, self.buffer = self.buffer[:length], self.buffer[length:]
            return body
        body, position = b"", 0
        while True:
            line_end = self.buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(self.buffer[position:line_end].split(b";")[0], 16)
            if size == 0:
                end = self.buffer.find(b"\r\n\r\n", line_end - 2)
                if end < 0:
                    return None
                self.buffer = self.buffer[end + 4 :]
                return body
            if len(self.buffer) < line_end + 4 + size:
                return None
            body += self.buffer[line_end + 2 : line_end + 2 + size]
            position = line_end + 4 + size


def start_body_origin(test: TestCase, handler: Callable[[Any, bytes], None]) -> RawOrigin:
    """Start a L{RawOrigin} that calls C{handler} once a request's body is read whole (kept in C{bodies})."""
    origin = RawOrigin(handler)
    origin.port = listen(test, origin.factory(read_bodies=True))
    test.addCleanup(lambda: [c.transport.abortConnection() for c in origin.connections])
    return origin


def echo_body(protocol: Any, head: bytes) -> None:
    """A L{start_body_origin} handler answering with the body it just read."""
    body = protocol.origin.bodies[-1]
    protocol.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


class RawClient(Protocol):
    """A client speaking raw bytes to the proxy: sends what a test writes, keeps what comes back.

    @ivar data: every byte received so far.
    @ivar closed: fires with C{data} when the connection is gone.
    """

    def __init__(self) -> None:
        self.data = b""
        self.closed: Deferred[bytes] = Deferred()
        self._waiting: list[tuple[Callable[[bytes], bool], Deferred[bytes]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        self._check()

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(self.data)
        waiting, self._waiting = self._waiting, []
        for _, deferred in waiting:
            if not deferred.called:
                deferred.callback(self.data)

    def send(self, data: bytes) -> None:
        """Write raw bytes to the proxy."""
        self.transport.write(data)

    def receive_until(self, predicate: Callable[[bytes], bool], timeout: float = 10) -> Deferred[bytes]:
        """Fire with all data received once C{predicate(data)} holds or the connection closed."""
        deferred: Deferred[bytes] = Deferred()
        deferred.addTimeout(timeout, reactor)
        self._waiting.append((predicate, deferred))
        self._check()
        if self.closed.called and not deferred.called:
            deferred.callback(self.data)
        return deferred

    def wait_closed(self, timeout: float = 10) -> Deferred[bytes]:
        """Fire with all data received once the proxy closed the connection."""
        return self.receive_until(lambda _: False, timeout)

    def _check(self) -> None:
        for entry in list(self._waiting):
            predicate, deferred = entry
            if predicate(self.data):
                self._waiting.remove(entry)
                if not deferred.called:
                    deferred.callback(self.data)


async def raw_client(test: TestCase, port: int) -> RawClient:
    """Connect a L{RawClient} to 127.0.0.1:C{port}; it is aborted when the test ends."""
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

    client = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5), RawClient())
    test.addCleanup(client.transport.abortConnection)
    return client


def http_exchanges(
    proxy_port: int, requests: Sequence[tuple[str, str, bytes | None, dict[str, str]]]
) -> Deferred[list[tuple[int, list[tuple[str, str]], bytes]]]:
    """Send C{(method, absolute url, body, headers)} requests on one http.client connection to the proxy, in a thread.

    Fires with C{(status, headers, body)} per request.
    """
    import http.client

    from twisted.internet.threads import deferToThreadPool

    def run() -> list[tuple[int, list[tuple[str, str]], bytes]]:
        connection = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
        try:
            results = []
            for method, url, body, headers in requests:
                connection.request(method, url, body=body, headers=headers)
                response = connection.getresponse()
                results.append((response.status, response.getheaders(), response.read()))
            return results
        finally:
            connection.close()

    return deferToThreadPool(reactor, reactor.getThreadPool(), run)


class HookRecorder:
    """An addon recording each hook it receives as C{(name, argument)} in C{calls}."""

    hook_names = (
        "client_connected", "client_disconnected", "server_connect", "server_connected",
        "server_disconnected", "requestheaders", "request", "responseheaders", "response", "error",
    )

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        for name in self.hook_names:
            setattr(self, name, functools.partial(self._record, name))

    def _record(self, name: str, argument: Any) -> None:
        self.calls.append((name, argument))

    def names(self, *only: str) -> list[str]:
        """The names of the hooks received, in order; only those in C{only} if given."""
        return [name for name, _ in self.calls if not only or name in only]


def rss() -> int:
    """This process's resident set size in bytes (Linux); the in-process proxy counts in it."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")

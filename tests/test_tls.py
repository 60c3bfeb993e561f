"""Tests for L{twisted_mitm.proxy.tls}: real handshakes between Python's C{ssl} and Twisted.

The peer is Python's C{ssl} module on memory BIOs, so each side of a handshake is an
independent TLS implementation; bytes move by hand between it and a
C{TLSMemoryBIOProtocol} on a C{StringTransport}.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.test_certs import make_ca
from twisted_mitm.certs import CertStore
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.proxy.tls import (
    NoCommonProtocol,
    describe_tls_failure,
    intercepting_server_creator,
    upstream_creator,
)
from twisted_mitm.tls import looks_like_tls, parse_client_hello

# Rounds of byte exchange a handshake may take before the test gives up.
MAX_ROUNDS = 32
DAY = datetime.timedelta(days=1)


@implementer(IHandshakeListener)
class _Recorder(Protocol):
    """The application protocol inside TLS; records what Twisted tells it."""

    def __init__(self) -> None:
        self.handshake_done = False
        self.lost: Failure | None = None

    def handshakeCompleted(self) -> None:
        self.handshake_done = True

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.lost = reason


@dataclass
class _TwistedSide:
    """A TLS protocol on a string transport, with the application protocol inside it."""

    protocol: TLSMemoryBIOProtocol
    app: _Recorder
    transport: StringTransport = field(default_factory=StringTransport)

    @classmethod
    def build(cls, creator: object, is_client: bool) -> _TwistedSide:
        factory = TLSMemoryBIOFactory(
            creator, is_client, Factory.forProtocol(_Recorder), clock=Clock()
        )
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4433))
        side = cls(protocol, protocol.wrappedProtocol)
        protocol.makeConnection(side.transport)
        return side


@dataclass
class _PythonSide:
    """Python's C{ssl} on memory BIOs."""

    context: ssl.SSLContext
    server_hostname: str | None = None
    server_side: bool = False
    error: ssl.SSLError | None = None

    def __post_init__(self) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = self.context.wrap_bio(
            self.incoming,
            self.outgoing,
            server_side=self.server_side,
            server_hostname=self.server_hostname,
        )

    def step(self) -> bytes:
        """Advance the handshake as far as the received bytes allow; return what to send."""
        if self.error is None:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as e:
                self.error = e
        return self.outgoing.read()


def _exchange(python: _PythonSide, twisted: _TwistedSide) -> None:
    """Move bytes both ways until neither side has anything to say, then close."""
    for _ in range(MAX_ROUNDS):
        pending = twisted.transport.value()
        twisted.transport.clear()
        if pending:
            python.incoming.write(pending)
        sent = python.step()
        if sent and not twisted.transport.disconnecting:
            twisted.protocol.dataReceived(sent)
        if not pending and not sent:
            break
    else:
        raise AssertionError("the TLS handshake did not settle")
    if twisted.transport.disconnecting:
        twisted.protocol.connectionLost(Failure(ConnectionLost()))


def _exchange_twisted(client: _TwistedSide, server: _TwistedSide) -> None:
    """Like L{_exchange}, with Twisted on both sides."""
    for _ in range(MAX_ROUNDS):
        moved = False
        for source, sink in ((client, server), (server, client)):
            data = source.transport.value()
            source.transport.clear()
            if data and not sink.transport.disconnecting:
                sink.protocol.dataReceived(data)
                moved = True
        if not moved:
            break
    else:
        raise AssertionError("the TLS handshake did not settle")
    for side in (client, server):
        if side.transport.disconnecting:
            side.protocol.connectionLost(Failure(ConnectionLost()))


def client_hello(server_hostname: str, alpn: list[str] | None = None) -> bytes:
    """The first bytes a real Python C{ssl} client sends."""
    context = ssl.create_default_context()
    if alpn:
        context.set_alpn_protocols(alpn)
    return _PythonSide(context, server_hostname).step()


def _records(message: bytes, size: int) -> bytes:
    """Re-frame a handshake message into TLS records of at most C{size} bytes."""
    return b"".join(
        b"\x16\x03\x01" + len(chunk).to_bytes(2, "big") + chunk
        for chunk in (message[i : i + size] for i in range(0, len(message), size))
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def issue_leaf(
    ca: tuple[rsa.RSAPrivateKey, x509.Certificate],
    hostname: str,
    san: x509.GeneralName,
    valid: tuple[datetime.datetime, datetime.datetime] | None = None,
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """An origin's certificate, built independently of L{twisted_mitm.certs}."""
    ca_key, ca_cert = ca
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = valid or (now - DAY, now + 30 * DAY)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


class LooksLikeTLSTests(SynchronousTestCase):
    """L{looks_like_tls} tells a TLS handshake from other tunnel traffic."""

    def test_client_hello(self) -> None:
        """A real ClientHello looks like TLS."""
        self.assertTrue(looks_like_tls(client_hello("example.test")))

    def test_other_bytes(self) -> None:
        """Plain HTTP, short input, and unknown record versions do not."""
        for data in (b"GET / HTTP/1.1\r\n", b"\x16\x03", b"\x16\x03\x05", b"\x17\x03\x03", b""):
            self.assertFalse(looks_like_tls(data), data)


class ParseClientHelloTests(SynchronousTestCase):
    """L{parse_client_hello} reads SNI and ALPN from real ClientHellos."""

    def test_sni_and_alpn(self) -> None:
        """The server name and the offered protocols, in order; the cipher suites and every extension."""
        hello = parse_client_hello(client_hello("example.test", ["h2", "http/1.1"]))
        assert hello is not None
        self.assertEqual((hello.sni, hello.alpn_protocols), ("example.test", (b"h2", b"http/1.1")))
        self.assertIn(0x1301, hello.cipher_suites)  # TLS_AES_128_GCM_SHA256, offered by every TLS 1.3 client
        self.assertEqual([kind for kind, _ in hello.extensions][:1], [0x0000])
        self.assertIn((0x0010, b"\x00\x0c\x02h2\x08http/1.1"), hello.extensions)

    def test_ip_address(self) -> None:
        """A client connecting to an IP literal sends no SNI; no ALPN was offered."""
        hello = parse_client_hello(client_hello("127.0.0.1"))
        assert hello is not None
        self.assertEqual((hello.sni, hello.alpn_protocols), (None, ()))

    def test_partial(self) -> None:
        """Every proper prefix of a ClientHello asks for more bytes."""
        data = client_hello("example.test", ["http/1.1"])
        for length in range(len(data)):
            self.assertIsNone(parse_client_hello(data[:length]), length)

    def test_trailing_bytes(self) -> None:
        """Bytes after the ClientHello are ignored."""
        data = client_hello("example.test")
        self.assertEqual(parse_client_hello(data + b"\x17\x03\x03").sni, "example.test")

    def test_several_records(self) -> None:
        """A ClientHello split over several records is reassembled."""
        data = client_hello("split.example.test", ["http/1.1"])
        split = _records(data[5:], 100)
        self.assertGreater(len(split), len(data) + 5)
        self.assertIsNone(parse_client_hello(split[:150]))
        hello = parse_client_hello(split)
        assert hello is not None
        self.assertEqual((hello.sni, hello.alpn_protocols), ("split.example.test", (b"http/1.1",)))

    def test_garbage(self) -> None:
        """Bytes that are not a ClientHello raise ValueError."""
        server_hello = _records(b"\x02\x00\x00\x02\x03\x03", 100)
        truncated_inside = _records(b"\x01\x00\x00\x04\x03\x03\x00\x00", 100)
        for data in (b"GET / HTTP/1.1\r\n\r\n", b"G", server_hello, truncated_inside):
            self.assertRaises(ValueError, parse_client_hello, data)

    def test_too_large(self) -> None:
        """A ClientHello announcing more than 64 KiB is refused at once."""
        data = _records(b"\x01\x02\x00\x00" + b"\x00" * 100, 200)
        self.assertRaises(ValueError, parse_client_hello, data)


def _trusting_client(ca_path: Path, alpn: list[str] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_path))
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


class InterceptingServerTests(SynchronousTestCase):
    """A client that trusts only the CA accepts the proxy's leaf."""

    def setUp(self) -> None:
        self.store = CertStore.from_confdir(self.mktemp())

    def _connect(
        self, connect_host: str, alpn: list[str] | None = None
    ) -> tuple[_PythonSide, _TwistedSide]:
        """Do what the proxy does: read the ClientHello, pick names, then hand it to TLS."""
        client = _PythonSide(
            _trusting_client(self.store.ca_cert_path, alpn), server_hostname=connect_host
        )
        first_bytes = client.step()
        hello = parse_client_hello(first_bytes)
        creator = intercepting_server_creator(self.store, [hello.sni or connect_host])
        server = _TwistedSide.build(creator, is_client=False)
        server.protocol.dataReceived(first_bytes)
        _exchange(client, server)
        return client, server

    def test_interface(self) -> None:
        """The creator provides IOpenSSLServerConnectionCreator."""
        creator = intercepting_server_creator(self.store, ["localhost"])
        verifyObject(IOpenSSLServerConnectionCreator, creator)

    def test_localhost(self) -> None:
        """The handshake completes for a DNS name, http/1.1 is selected over h2."""
        client, server = self._connect("localhost", ["h2", "http/1.1"])
        self.assertIsNone(client.error)
        self.assertTrue(server.app.handshake_done)
        self.assertIn(("DNS", "localhost"), client.tls.getpeercert()["subjectAltName"])
        self.assertEqual(client.tls.selected_alpn_protocol(), "http/1.1")
        self.assertEqual(server.protocol.negotiatedProtocol, b"http/1.1")

    def test_ip_address(self) -> None:
        """Without SNI the CONNECT host's IP goes into the SAN as an IP address."""
        client, server = self._connect("127.0.0.1", ["http/1.1"])
        self.assertIsNone(client.error)
        self.assertTrue(server.app.handshake_done)
        self.assertIn(("IP Address", "127.0.0.1"), client.tls.getpeercert()["subjectAltName"])

    def test_chain(self) -> None:
        """The server sends the leaf then the CA, which our own upstream side verifies."""
        server = _TwistedSide.build(
            intercepting_server_creator(self.store, ["localhost"]), is_client=False
        )
        client = _TwistedSide.build(
            upstream_creator("localhost", trusted_ca_path=str(self.store.ca_cert_path)),
            is_client=True,
        )
        _exchange_twisted(client, server)
        self.assertTrue(client.app.handshake_done)
        chain = client.protocol.getHandle().get_peer_cert_chain(as_cryptography=True)
        self.assertEqual(chain[1:], [self.store.ca_cert])

    def test_without_alpn(self) -> None:
        """A client that offers no ALPN gets none and the handshake succeeds."""
        client, server = self._connect("localhost")
        self.assertIsNone(client.error)
        self.assertIsNone(server.protocol.negotiatedProtocol)

    def test_h2_only(self) -> None:
        """A client offering only h2 fails the handshake, and the log says why."""
        with capturedLogs() as events:
            client, server = self._connect("localhost", ["h2"])
        self.assertIsInstance(client.error, ssl.SSLError)
        self.assertIsInstance(server.app.lost.value, NoCommonProtocol)
        self.assertIn("offered only h2", describe_tls_failure(server.app.lost))
        lines = [formatEvent(event) for event in events]
        self.assertIn(
            "TLS client for localhost offered only h2 via ALPN; the proxy speaks http/1.1",
            lines,
        )

    def test_context_reused(self) -> None:
        """Connections for the same names share one OpenSSL context."""
        _, first = self._connect("localhost")
        context = first.protocol.getHandle().get_context()
        second = _TwistedSide.build(
            intercepting_server_creator(self.store, ["localhost"]), is_client=False
        )
        self.assertIs(second.protocol.getHandle().get_context(), context)


class UpstreamTests(SynchronousTestCase):
    """The client side verifies the origin's chain and name and explains failures."""

    def setUp(self) -> None:
        self.ca = make_ca("Origin Test CA")
        self.ca_path = self._write("ca.pem", _pem(self.ca[1]))

    def _write(self, name: str, data: bytes) -> str:
        folder = Path(self.mktemp())
        folder.mkdir()
        path = folder / name
        path.write_bytes(data)
        return str(path)

    def _origin(
        self, key: rsa.RSAPrivateKey, cert: x509.Certificate, server_names: list[str | None]
    ) -> _PythonSide:
        """A Python C{ssl} server presenting C{cert}; SNI values go into C{server_names}."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        context.load_cert_chain(self._write("cert.pem", _pem(cert)), self._write("key.pem", key_pem))
        context.set_alpn_protocols(["http/1.1"])
        context.sni_callback = lambda tls, name, ctx: server_names.append(name)
        return _PythonSide(context, server_side=True)

    def _connect(
        self,
        hostname: str,
        cert_name: str = "foo.test",
        valid: tuple[datetime.datetime, datetime.datetime] | None = None,
        **options: object,
    ) -> tuple[_TwistedSide, list[str | None]]:
        key, cert = issue_leaf(self.ca, cert_name, _general_name(cert_name), valid)
        server_names: list[str | None] = []
        origin = self._origin(key, cert, server_names)
        client = _TwistedSide.build(upstream_creator(hostname, **options), is_client=True)
        _exchange(origin, client)
        return client, server_names

    def assert_fails_with(self, client: _TwistedSide, description: str) -> None:
        """The connection was lost for the described reason."""
        self.assertFalse(client.app.handshake_done)
        self.assertIsNotNone(client.app.lost)
        self.assertEqual(describe_tls_failure(client.app.lost), description)

    def test_interface(self) -> None:
        """The creator provides IOpenSSLClientConnectionCreator."""
        verifyObject(IOpenSSLClientConnectionCreator, upstream_creator("foo.test"))

    def test_trusted(self) -> None:
        """A chain from the trusted CA with the right name verifies; SNI and ALPN are sent."""
        client, server_names = self._connect("foo.test", trusted_ca_path=self.ca_path)
        self.assertTrue(client.app.handshake_done)
        self.assertIsNone(client.app.lost)
        self.assertEqual(server_names, ["foo.test"])
        self.assertEqual(client.protocol.negotiatedProtocol, b"http/1.1")

    def test_ip_address(self) -> None:
        """An IP literal is checked against IP SANs and sent without SNI."""
        client, server_names = self._connect(
            "127.0.0.1", cert_name="127.0.0.1", trusted_ca_path=self.ca_path
        )
        self.assertTrue(client.app.handshake_done)
        self.assertEqual(server_names, [None])

    def test_untrusted(self) -> None:
        """A chain from an unknown CA fails, and the description says it is not trusted."""
        client, _ = self._connect("foo.test")
        self.assert_fails_with(
            client,
            "certificate verify failed: unable to get local issuer certificate"
            " (the server's certificate is not trusted)",
        )

    def test_untrusted_with_trusted_ca_path(self) -> None:
        """With C{trusted_ca_path}, only that CA is trusted."""
        other = self._write("other.pem", _pem(make_ca("Other CA")[1]))
        client, _ = self._connect("foo.test", trusted_ca_path=other)
        self.assertIn("not trusted", describe_tls_failure(client.app.lost))

    def test_hostname_mismatch(self) -> None:
        """A trusted certificate for another name fails with both names in the description."""
        client, _ = self._connect("bar.test", trusted_ca_path=self.ca_path)
        self.assert_fails_with(
            client, "hostname mismatch: the certificate is valid for 'foo.test', not 'bar.test'"
        )

    def test_ip_mismatch(self) -> None:
        """An IP literal does not match a DNS-only certificate."""
        client, _ = self._connect("127.0.0.1", trusted_ca_path=self.ca_path)
        self.assert_fails_with(
            client, "hostname mismatch: the certificate is valid for 'foo.test', not '127.0.0.1'"
        )

    def test_expired(self) -> None:
        """An expired certificate fails with OpenSSL's reason."""
        now = datetime.datetime.now(datetime.timezone.utc)
        client, _ = self._connect(
            "foo.test", valid=(now - 30 * DAY, now - DAY), trusted_ca_path=self.ca_path
        )
        self.assert_fails_with(client, "certificate verify failed: certificate has expired")

    def test_verify_false(self) -> None:
        """With C{verify=False} an untrusted, expired certificate for another name is accepted."""
        now = datetime.datetime.now(datetime.timezone.utc)
        client, _ = self._connect("bar.test", valid=(now - 30 * DAY, now - DAY), verify=False)
        self.assertTrue(client.app.handshake_done)
        self.assertIsNone(client.app.lost)

    def test_not_tls(self) -> None:
        """A server that answers in plain HTTP gives a 'TLS handshake failed' description."""
        client = _TwistedSide.build(upstream_creator("foo.test"), is_client=True)
        client.protocol.dataReceived(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        client.protocol.connectionLost(Failure(ConnectionLost()))
        description = describe_tls_failure(client.app.lost)
        self.assertTrue(description.startswith("TLS handshake failed: "), description)

    def test_bad_trusted_ca_path(self) -> None:
        """An unreadable trusted CA bundle raises OptionsError naming it."""
        missing = str(Path(self.mktemp()) / "missing.pem")
        error = self.assertRaises(OptionsError, upstream_creator, "foo.test", trusted_ca_path=missing)
        self.assertIn(missing, str(error))

    def test_system_store(self) -> None:
        """The default trust store holds the system's roots (Debian's /etc/ssl/certs)."""
        bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        if not bundle.exists():
            self.skipTest("no Debian CA bundle on this machine")
        now = datetime.datetime.now(datetime.timezone.utc)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # some system roots have odd serial numbers
            roots = x509.load_pem_x509_certificates(bundle.read_bytes())
        root = next(r for r in roots if r.not_valid_before_utc < now < r.not_valid_after_utc)
        client = _TwistedSide.build(upstream_creator("foo.test"), is_client=True)
        store = client.protocol.getHandle().get_context().get_cert_store()
        crypto.X509StoreContext(store, crypto.X509.from_cryptography(root)).verify_certificate()


class DescribeTLSFailureTests(SynchronousTestCase):
    """L{describe_tls_failure} turns other failures into a sentence too."""

    def test_openssl_error(self) -> None:
        """pyOpenSSL's error list becomes its reason strings."""
        error = SSL.Error([("SSL routines", "", "wrong version number")])
        self.assertEqual(
            describe_tls_failure(Failure(error)), "TLS handshake failed: wrong version number"
        )

    def test_connection_lost(self) -> None:
        """A connection closed during the handshake says so."""
        self.assertEqual(
            describe_tls_failure(ConnectionLost()),
            "TLS handshake failed: the connection was closed",
        )

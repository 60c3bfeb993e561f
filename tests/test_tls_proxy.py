"""TLS interception end to end over loopback: curl and Python's C{ssl} through the proxy.

The origin speaks real TLS with a certificate from a test CA (L{tests.support.origin_ca});
the proxy trusts that CA through C{ssl_verify_upstream_trusted_ca} unless a test wants the
origin to be untrusted. Clients trust the proxy's CA (C{RunningProxy.ca_path}).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase

from tests.support import (
    HookRecorder,
    RunningProxy,
    curl,
    origin_ca_path,
    origin_certificate,
    reactor,
    respond,
    start_proxy,
    start_raw_origin,
)
from tests.test_certs import FILES, make_ca, mitmproxy_ca_pem
from tests.test_h2_loopback import greet, start_h2_origin
from twisted_mitm.http import HTTPFlow, Response

# Bound on every blocking socket operation a test thread makes.
TIMEOUT = 10.0


class Recorder:
    """An addon that records the hooks it sees, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def flows(self, name: str) -> list[HTTPFlow]:
        return [flow for hook, flow in self.events if hook == name]  # type: ignore[misc]

    def http_connect(self, flow: HTTPFlow) -> None:
        self.events.append(("http_connect", flow))

    def requestheaders(self, flow: HTTPFlow) -> None:
        self.events.append(("requestheaders", flow))

    def request(self, flow: HTTPFlow) -> None:
        self.events.append(("request", flow))

    def response(self, flow: HTTPFlow) -> None:
        self.events.append(("response", flow))

    def error(self, flow: HTTPFlow) -> None:
        self.events.append(("error", flow))

    def tcp_start(self, flow: object) -> None:
        self.events.append(("tcp_start", flow))

    def tcp_message(self, flow: object) -> None:
        self.events.append(("tcp_message", flow))

    def tcp_end(self, flow: object) -> None:
        self.events.append(("tcp_end", flow))

    def tcp_error(self, flow: object) -> None:
        self.events.append(("tcp_error", flow))


@dataclass
class TLSResult:
    """What a Python C{ssl} client saw through a CONNECT tunnel."""

    certificate: x509.Certificate
    alpn: str | None
    response: bytes
    cipher: str
    version: str


def connect_tunnel(proxy_port: int, authority: str) -> socket.socket:
    """Open a CONNECT tunnel through the proxy (blocking; run it in a thread)."""
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=TIMEOUT)
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"the proxy closed the tunnel: {head!r}")
        head += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"CONNECT refused: {head!r}")
    return sock


def fetch_over_tls(
    proxy_port: int,
    host: str,
    port: int,
    context: ssl.SSLContext,
    path: str = "/",
) -> TLSResult:
    """CONNECT, TLS with C{context} for C{host}, one GET, read to the end (blocking)."""
    with connect_tunnel(proxy_port, f"{host}:{port}") as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
            tls.sendall(request.encode())
            cipher, version, _ = tls.cipher()
            return TLSResult(x509.load_der_x509_certificate(der), tls.selected_alpn_protocol(), read_response(tls), cipher, version)


def read_response(sock: socket.socket) -> bytes:
    """Read one response with a Content-Length, or up to EOF without one (blocking)."""
    response = b""
    while (chunk := sock.recv(65536)) and not _complete(response := response + chunk):
        pass
    return response


def _complete(response: bytes) -> bool:
    head, separator, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:] if separator else ():
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def client_context(ca_path: str, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A verifying Python C{ssl} client context that trusts only C{ca_path}."""
    context = ssl.create_default_context(cafile=ca_path)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    return context


def san_of(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def proxy_ca(proxy: RunningProxy) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(proxy.ca_path).read_bytes())


def log_text(events: list[dict]) -> str:
    return "\n".join(formatEvent(event) for event in events)


class InterceptionTests(TestCase):
    """CONNECT to an intercepted HTTPS origin: a leaf from our CA, then HTTP inside."""

    def setUp(self) -> None:
        self.origin = start_raw_origin(self, respond(200, b"hello over tls"), tls=origin_certificate("localhost", "127.0.0.1"))
        self.recorder = Recorder()
        self.proxy = start_proxy(
            self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"], addons=[self.recorder]
        )

    async def test_curl_localhost(self) -> None:
        """curl trusting the proxy CA reaches https://localhost:PORT/ through the proxy, and hooks see https."""
        with capturedLogs() as events:
            out, err, code = await curl("--cacert", self.proxy.ca_path, "-x", self.proxy.url, f"https://localhost:{self.origin.port}/x?y=1")
        self.assertEqual((code, out), (0, b"hello over tls"), err)
        self.assertTrue(self.origin.requests[0].startswith(b"GET /x?y=1 HTTP/1.1\r\n"), self.origin.requests[0])
        self.assertEqual(self.recorder.names(), ["http_connect", "requestheaders", "request", "response"])
        flow = self.recorder.flows("response")[0]
        self.assertEqual((flow.request.scheme, flow.request.host, flow.request.port), ("https", "localhost", self.origin.port))
        self.assertEqual(flow.client_conn.sni, "localhost")
        self.assertTrue(flow.server_conn.tls_established)
        self.assertIn(f"GET https://localhost:{self.origin.port}/x?y=1 << 200", log_text(events))

    async def test_eager_connection_carries_the_tls(self) -> None:
        """The connection opened for the CONNECT (connection_strategy=eager) is the one TLS runs over:
        the origin sees a single connection, and server_connect ran once."""
        hooks = HookRecorder()
        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"], addons=[hooks])
        out, err, code = await curl("--cacert", proxy.ca_path, "-x", proxy.url, f"https://localhost:{self.origin.port}/")
        self.assertEqual((code, out), (0, b"hello over tls"), err)
        self.assertEqual(len(self.origin.connections), 1)
        self.assertEqual(hooks.names("server_connect", "server_connected"), ["server_connect", "server_connected"])
        flow = [flow for name, flow in hooks.calls if name == "response"][0]
        self.assertEqual((flow.server_conn.sni, flow.server_conn.tls_established), ("localhost", True))

    async def test_curl_ip_address(self) -> None:
        """curl reaches https://127.0.0.1:PORT/ (no SNI): the leaf carries the IP address."""
        out, err, code = await curl("--cacert", self.proxy.ca_path, "-x", self.proxy.url, f"https://127.0.0.1:{self.origin.port}/")
        self.assertEqual((code, out), (0, b"hello over tls"), err)
        flow = self.recorder.flows("response")[0]
        self.assertEqual((flow.request.scheme, flow.request.host), ("https", "127.0.0.1"))

    async def test_python_ssl_leaf(self) -> None:
        """Python's ssl sees a leaf for the DNS name, issued by the proxy CA, and gets the origin's answer."""
        context = client_context(self.proxy.ca_path)
        result = await deferToThread(fetch_over_tls, self.proxy.port, "localhost", self.origin.port, context)
        self.assertTrue(result.response.startswith(b"HTTP/1.1 200"), result.response)
        self.assertTrue(result.response.endswith(b"hello over tls"), result.response)
        self.assertEqual(san_of(result.certificate).get_values_for_type(x509.DNSName), ["localhost"])
        self.assertEqual(result.certificate.issuer, proxy_ca(self.proxy).subject)
        proxy_ca(self.proxy).public_key().verify(  # type: ignore[call-arg]
            result.certificate.signature,
            result.certificate.tbs_certificate_bytes,
            *_rsa_verify_args(result.certificate),
        )

    async def test_python_ssl_ip_leaf(self) -> None:
        """For an IP address the leaf's SAN has that IP address."""
        context = client_context(self.proxy.ca_path)
        result = await deferToThread(fetch_over_tls, self.proxy.port, "127.0.0.1", self.origin.port, context)
        self.assertTrue(result.response.endswith(b"hello over tls"), result.response)
        self.assertEqual(san_of(result.certificate).get_values_for_type(x509.IPAddress), [ipaddress.ip_address("127.0.0.1")])
        self.assertEqual(result.certificate.issuer, proxy_ca(self.proxy).subject)

    async def test_leaf_cached(self) -> None:
        """A second connection for the same host gets the same leaf (same serial number)."""
        context = client_context(self.proxy.ca_path)
        first = await deferToThread(fetch_over_tls, self.proxy.port, "localhost", self.origin.port, context)
        second = await deferToThread(fetch_over_tls, self.proxy.port, "localhost", self.origin.port, context)
        self.assertEqual(first.certificate.serial_number, second.certificate.serial_number)


def _rsa_verify_args(cert: x509.Certificate) -> tuple[object, object]:
    assert cert.signature_hash_algorithm is not None
    return padding.PKCS1v15(), cert.signature_hash_algorithm


class UpstreamVerificationTests(TestCase):
    """The proxy verifies the origin's certificate; a failure is a 502 that says why."""

    async def _get(self, proxy: RunningProxy, port: int) -> tuple[bytes, bytes, int]:
        return await curl("--cacert", proxy.ca_path, "-x", proxy.url, "--include", f"https://localhost:{port}/")

    async def test_untrusted_origin(self) -> None:
        """Without trusting the test CA the origin is refused with a 502 naming the reason, and error runs."""
        origin = start_raw_origin(self, respond(200, b"secret"), tls=origin_certificate("localhost", "127.0.0.1"))
        recorder = Recorder()
        proxy = start_proxy(self, addons=[recorder])
        out, err, code = await self._get(proxy, origin.port)
        self.assertEqual(code, 0, err)
        self.assertIn(b"\r\n\r\nHTTP/1.1 502 Bad Gateway\r\n", out)
        self.assertIn(b"certificate verify failed", out)
        self.assertIn(b"not trusted", out)
        self.assertNotIn(b"secret", out)
        self.assertEqual(origin.requests, [])
        [flow] = recorder.flows("error")
        self.assertIn("certificate verify failed", str(flow.error))

    async def test_hostname_mismatch(self) -> None:
        """An origin certificate for another name gives a 502 saying hostname mismatch."""
        origin = start_raw_origin(self, respond(200, b"secret"), tls=origin_certificate("other.example"))
        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"])
        out, err, code = await self._get(proxy, origin.port)
        self.assertEqual(code, 0, err)
        self.assertIn(b"\r\n\r\nHTTP/1.1 502 Bad Gateway\r\n", out)
        self.assertIn(b"hostname mismatch", out)
        self.assertIn(b"'other.example'", out)
        self.assertEqual(origin.requests, [])

    async def test_ssl_insecure(self) -> None:
        """ssl_insecure=true accepts an untrusted origin for another name."""
        origin = start_raw_origin(self, respond(200, b"insecure ok"), tls=origin_certificate("other.example"))
        proxy = start_proxy(self, options=["ssl_insecure=true"])
        out, err, code = await curl("--cacert", proxy.ca_path, "-x", proxy.url, f"https://localhost:{origin.port}/")
        self.assertEqual((code, out), (0, b"insecure ok"), err)


class ALPNTests(TestCase):
    """The proxy speaks http/1.1 on both legs and says so by ALPN."""

    def setUp(self) -> None:
        self.origin = start_raw_origin(self, respond(200, b"alpn"), tls=origin_certificate("localhost", "127.0.0.1"))
        self.proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"])

    async def test_h2_and_http11(self) -> None:
        """A client offering h2 and http/1.1 gets http/1.1."""
        context = client_context(self.proxy.ca_path, ["h2", "http/1.1"])
        result = await deferToThread(fetch_over_tls, self.proxy.port, "localhost", self.origin.port, context)
        self.assertEqual(result.alpn, "http/1.1")
        self.assertTrue(result.response.endswith(b"alpn"), result.response)

    async def test_curl_http2(self) -> None:
        """curl --http2 (offering h2 and http/1.1) falls back to HTTP/1.1 and works."""
        out, err, code = await curl("--http2", "--cacert", self.proxy.ca_path, "-x", self.proxy.url, f"https://localhost:{self.origin.port}/")
        self.assertEqual((code, out), (0, b"alpn"), err)

    async def test_h2_only(self) -> None:
        """A client offering only h2 fails the handshake, and a log line says why."""
        context = client_context(self.proxy.ca_path, ["h2"])
        with capturedLogs() as events:
            with self.assertRaises(ssl.SSLError) as caught:
                await deferToThread(fetch_over_tls, self.proxy.port, "localhost", self.origin.port, context)
            await _settle()
        self.assertIn("no application protocol", str(caught.exception))
        lines = [formatEvent(event) for event in events if "TLS" in formatEvent(event)]
        self.assertEqual(lines, ["TLS client for localhost offered only h2 via ALPN; the proxy speaks http/1.1"])
        self.assertEqual(self.origin.requests, [])


class ConnectionRecordTests(TestCase):
    """After the handshakes, the flow's connection records say what TLS agreed, as mitmproxy's do."""

    def start(self, *options: str) -> tuple[RunningProxy, HookRecorder]:
        recorder = HookRecorder()
        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}", *options], addons=[recorder])
        return proxy, recorder

    async def test_http1_both_sides(self) -> None:
        """Python's ssl through CONNECT: the client record has the version, cipher, ALPN and offers the
        client saw and the leaf it was shown; the server record has the origin's certificate."""
        origin_cert = origin_certificate("localhost", "127.0.0.1")
        origin = start_raw_origin(self, respond(200, b"records"), tls=origin_cert)
        proxy, recorder = self.start()
        context = client_context(proxy.ca_path, ["http/1.1"])
        result = await deferToThread(fetch_over_tls, proxy.port, "localhost", origin.port, context)
        self.assertTrue(result.response.endswith(b"records"), result.response)
        [flow] = [argument for name, argument in recorder.calls if name == "response"]
        client, server = flow.client_conn, flow.server_conn
        self.assertEqual((client.tls_version, client.cipher, client.alpn), (result.version, result.cipher, b"http/1.1"))
        self.assertEqual(list(client.alpn_offers), [b"http/1.1"])
        self.assertEqual(client.mitmcert.to_cryptography(), result.certificate)
        self.assertEqual(client.certificate_list, [])
        self.assertTrue(server.tls_version.startswith("TLSv1."), server.tls_version)
        self.assertIsInstance(server.cipher, str)
        self.assertEqual(server.alpn, b"http/1.1")
        self.assertEqual(server.certificate_list[0].to_cryptography(), origin_cert.cert)
        self.assertEqual(server.certificate_list[0].cn, "localhost")
        self.assertEqual([str(name.value) for name in server.certificate_list[0].altnames], ["localhost", "127.0.0.1"])
        cert = self.assertWarns(DeprecationWarning, "Server.cert is deprecated, use Server.certificate_list instead.", __file__, lambda: server.cert)
        self.assertIs(cert, server.certificate_list[0])
        self.assertIsNotNone(server.timestamp_start)
        self.assertLessEqual(server.timestamp_start, server.timestamp_tls_setup)

    async def test_http2_both_sides(self) -> None:
        """curl --http2 to an h2 origin: both records say h2, and the server's carries its certificate."""
        origin, port = start_h2_origin(self, greet)
        proxy, recorder = self.start()
        out, err, code = await curl("--http2", "-x", proxy.url, "--cacert", proxy.ca_path, f"https://127.0.0.1:{port}/", timeout=10)
        self.assertEqual(code, 0, err)
        [flow] = [argument for name, argument in recorder.calls if name == "response"]
        client, server = flow.client_conn, flow.server_conn
        self.assertEqual((client.alpn, server.alpn), (b"h2", b"h2"))
        self.assertEqual(list(client.alpn_offers), [b"h2", b"http/1.1"])
        self.assertTrue(client.tls_version.startswith("TLSv1.") and client.cipher, (client.tls_version, client.cipher))
        self.assertEqual(client.mitmcert.cn, "127.0.0.1")
        self.assertEqual(server.certificate_list[0].to_cryptography(), origin_certificate("127.0.0.1").cert)


class CATests(TestCase):
    """The proxy's CA in its confdir (SPEC §5), seen from a real client."""

    async def test_fresh_confdir(self) -> None:
        """A proxy started on an empty confdir writes mitmproxy's CA files, key files mode 0600, and signs with that CA."""
        confdir = os.path.join(self.mktemp(), "conf")
        origin = start_raw_origin(self, respond(200, b"fresh"), tls=origin_certificate("localhost", "127.0.0.1"))
        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"], confdir=confdir)
        self.assertEqual(sorted(os.listdir(confdir)), sorted(FILES))
        for name in ("mitmproxy-ca.pem", "mitmproxy-ca.p12"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(confdir, name)).st_mode), 0o600, name)
        result = await deferToThread(fetch_over_tls, proxy.port, "localhost", origin.port, client_context(proxy.ca_path))
        self.assertEqual(result.certificate.issuer, proxy_ca(proxy).subject)

    async def test_existing_ca_reused(self) -> None:
        """A CA already in the confdir (mitmproxy's layout) is used as it is: the leaf is signed by it."""
        confdir = Path(self.mktemp())
        confdir.mkdir()
        key, cert = make_ca("Pre-existing mitmproxy CA")
        ca_file = confdir / "mitmproxy-ca.pem"
        ca_file.write_bytes(mitmproxy_ca_pem(key, cert))
        before = ca_file.read_bytes()
        origin = start_raw_origin(self, respond(200, b"reused"), tls=origin_certificate("localhost", "127.0.0.1"))
        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"], confdir=str(confdir))
        trust = self.mktemp()
        Path(trust).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        result = await deferToThread(fetch_over_tls, proxy.port, "localhost", origin.port, client_context(trust))
        self.assertTrue(result.response.endswith(b"reused"), result.response)
        self.assertEqual(result.certificate.issuer, cert.subject)
        self.assertEqual(ca_file.read_bytes(), before)
        self.assertEqual(Path(proxy.ca_path).read_bytes(), cert.public_bytes(serialization.Encoding.PEM))


class DiagnosticsTests(TestCase):
    """What the proxy says when a client does not trust its certificate."""

    async def test_client_rejects_certificate(self) -> None:
        """curl without --cacert fails, and one log line says the client did not complete TLS and names the CA file."""
        origin = start_raw_origin(self, respond(200, b"never"), tls=origin_certificate("localhost", "127.0.0.1"))
        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"])
        with capturedLogs() as events:
            out, err, code = await curl("-x", proxy.url, f"https://localhost:{origin.port}/")
            await _settle()
        self.assertEqual(code, 60, err)
        lines = [formatEvent(event) for event in events if proxy.ca_path in formatEvent(event)]
        self.assertEqual(len(lines), 1, log_text(events))
        self.assertIn("the client rejected the proxy's certificate for localhost (TLS handshake failed: tlsv1 alert unknown ca)", lines[0])
        self.assertEqual(origin.requests, [])

    async def test_no_warning_after_success(self) -> None:
        """A tunnel whose TLS handshake succeeded ends without a TLS warning, and the client record says TLS was up."""
        recorder = Recorder()
        origin = start_raw_origin(self, respond(200, b"fine"), tls=origin_certificate("localhost", "127.0.0.1"))
        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"], addons=[recorder])
        with capturedLogs() as events:
            result = await deferToThread(fetch_over_tls, proxy.port, "localhost", origin.port, client_context(proxy.ca_path, ["http/1.1"]))
            await _settle()
        self.assertTrue(result.response.endswith(b"fine"), result.response)
        self.assertNotIn("TLS", log_text(events))
        client = recorder.flows("response")[0].client_conn
        self.assertTrue(client.tls_established)
        self.assertEqual((client.alpn, client.tls_version), (b"http/1.1", "TLSv1.3"))


class ConnectHookTests(TestCase):
    """An http_connect hook can refuse a tunnel."""

    async def test_refused_with_response(self) -> None:
        """A non-2xx flow.response set in http_connect is sent instead of 200, and no tunnel opens."""
        origin = start_raw_origin(self, respond(200, b"never"), tls=origin_certificate("localhost", "127.0.0.1"))

        class Refuse:
            def http_connect(self, flow: HTTPFlow) -> None:
                flow.response = Response.make(403, b"tunnel forbidden", {"X-Why": "policy"})

        proxy = start_proxy(self, addons=[Refuse()])
        out, err, code = await curl("--cacert", proxy.ca_path, "-x", proxy.url, "-v", f"https://localhost:{origin.port}/")
        self.assertNotEqual(code, 0)
        self.assertIn(b"< HTTP/1.1 403", err)
        self.assertIn(b"< X-Why: policy", err)
        self.assertEqual(origin.connections, [])


async def _settle() -> None:
    """Let the proxy notice a closed connection (a few reactor turns, bounded)."""
    await deferLater(reactor, 0.2, lambda: None)

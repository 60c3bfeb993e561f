# -*- test-case-name: tests.test_tls_hooks -*-
"""The C{tls_*} hooks through a real proxy (curl and Python's C{ssl} over CONNECT), and
L{twisted_mitm.tls}'s data objects."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from OpenSSL import SSL
from twisted.internet.threads import deferToThread
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase

from tests.support import curl, origin_ca, origin_ca_path, origin_certificate, respond, start_proxy, start_raw_origin
from tests.test_tls_proxy import _settle, client_context, fetch_over_tls
from twisted_mitm.connection import Client, Server
from twisted_mitm.tls import ClientHelloData, TlsData

TLS_HOOKS = (
    "tls_clienthello", "tls_start_client", "tls_established_client", "tls_failed_client",
    "tls_start_server", "tls_established_server", "tls_failed_server",
)


class TLSRecorder:
    """Records the TLS hooks (with their data) and a few others, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        for name in (*TLS_HOOKS, "http_connect", "server_connect", "server_connected", "requestheaders", "response", "error", "tcp_start"):
            setattr(self, name, lambda argument, name=name: self.calls.append((name, argument)))

    def names(self, *only: str) -> list[str]:
        return [name for name, _ in self.calls if not only or name in only]

    def data(self, name: str) -> Any:
        [found] = [argument for hook, argument in self.calls if hook == name]
        return found


class HookOrderTests(TestCase):
    """An intercepted HTTPS request runs every TLS hook once, in mitmproxy's order per side."""

    async def test_h2_offer_meets_the_server_first(self) -> None:
        """A client offering h2 (http2 on, the default): after its ClientHello the proxy does TLS
        with the server first, to learn what it speaks, then TLS with the client."""
        origin = start_raw_origin(self, respond(200, b"hooked"), tls=origin_certificate("localhost", "127.0.0.1"))
        recorder = TLSRecorder()
        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"], addons=[recorder])
        out, err, code = await curl("--http2", "--cacert", proxy.ca_path, "-x", proxy.url, f"https://localhost:{origin.port}/")
        self.assertEqual((code, out), (0, b"hooked"), err)
        self.assertEqual(
            recorder.names(*TLS_HOOKS),
            ["tls_clienthello", "tls_start_server", "tls_established_server", "tls_start_client", "tls_established_client"],
        )

    async def test_curl(self) -> None:
        """curl through CONNECT, HTTP/1.1 only (http2=false): ClientHello, client TLS, then server
        TLS once the request needs the server."""
        origin = start_raw_origin(self, respond(200, b"hooked"), tls=origin_certificate("localhost", "127.0.0.1"))
        recorder = TLSRecorder()
        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}", "http2=false"], addons=[recorder])
        out, err, code = await curl("--cacert", proxy.ca_path, "-x", proxy.url, f"https://localhost:{origin.port}/")
        self.assertEqual((code, out), (0, b"hooked"), err)
        self.assertEqual(
            recorder.names(),
            [
                "http_connect", "server_connect", "server_connected",
                "tls_clienthello", "tls_start_client", "tls_established_client",
                "requestheaders", "tls_start_server", "tls_established_server", "response",
            ],
        )
        hello: ClientHelloData = recorder.data("tls_clienthello")
        self.assertEqual(hello.client_hello.sni, "localhost")
        self.assertIn(b"http/1.1", hello.client_hello.alpn_protocols)
        self.assertFalse(hello.ignore_connection)
        client = recorder.data("response").client_conn
        self.assertIs(hello.context.client, client)
        self.assertEqual(hello.context.server.address, ("localhost", origin.port))
        started: TlsData = recorder.data("tls_start_client")
        established: TlsData = recorder.data("tls_established_client")
        self.assertIs(started.conn, client)
        self.assertIsInstance(started.ssl_conn, SSL.Connection)
        self.assertIs(established.ssl_conn, started.ssl_conn)
        server_start: TlsData = recorder.data("tls_start_server")
        self.assertIsInstance(server_start.conn, Server)
        self.assertIs(recorder.data("tls_established_server").ssl_conn, server_start.ssl_conn)
        self.assertEqual(server_start.conn.sni, "localhost")
        self.assertTrue(server_start.conn.tls_established)
        self.assertIsInstance(client, Client)


class IgnoreConnectionTests(TestCase):
    """tls_clienthello's data.ignore_connection passes the connection through untouched."""

    async def test_async_hook_ignores(self) -> None:
        """An async tls_clienthello is awaited; ignoring makes the client see the origin's own certificate."""
        origin = start_raw_origin(self, respond(200, b"direct"), tls=origin_certificate("localhost", "127.0.0.1"))

        class Ignore:
            async def tls_clienthello(self, data: ClientHelloData) -> None:
                await asyncio.sleep(0.05)
                data.ignore_connection = data.client_hello.sni == "localhost"

        recorder = TLSRecorder()
        proxy = start_proxy(self, addons=[Ignore(), recorder])
        result = await deferToThread(fetch_over_tls, proxy.port, "localhost", origin.port, client_context(origin_ca_path(self)))
        self.assertTrue(result.response.endswith(b"direct"), result.response)
        self.assertEqual(result.certificate.issuer, origin_ca()[1].subject)
        self.assertEqual(recorder.names(), ["http_connect", "server_connect", "server_connected", "tls_clienthello"])
        self.assertEqual(len(origin.connections), 1)

    async def test_other_hosts_still_intercepted(self) -> None:
        """A connection the hook leaves alone is intercepted as usual (the proxy's certificate)."""
        origin = start_raw_origin(self, respond(200, b"intercepted"), tls=origin_certificate("localhost", "127.0.0.1"))

        class IgnoreOthers:
            def tls_clienthello(self, data: ClientHelloData) -> None:
                data.ignore_connection = data.client_hello.sni == "elsewhere.example"

        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"], addons=[IgnoreOthers()])
        result = await deferToThread(fetch_over_tls, proxy.port, "localhost", origin.port, client_context(proxy.ca_path))
        self.assertTrue(result.response.endswith(b"intercepted"), result.response)
        self.assertNotEqual(result.certificate.issuer, origin_ca()[1].subject)


class StartHookTests(TestCase):
    """tls_start_client and tls_start_server hand scripts the pyOpenSSL connection to tweak."""

    async def test_server_verification_turned_off_by_script(self) -> None:
        """A tls_start_server hook may change the connection: with verification off, an untrusted origin is reached."""
        origin = start_raw_origin(self, respond(200, b"untrusted but allowed"), tls=origin_certificate("localhost", "127.0.0.1"))

        class Trusting:
            def tls_start_server(self, data: TlsData) -> None:
                assert data.ssl_conn is not None
                data.ssl_conn.set_verify(SSL.VERIFY_NONE, lambda *args: True)

        proxy = start_proxy(self, addons=[Trusting()])
        out, err, code = await curl("--cacert", proxy.ca_path, "-x", proxy.url, f"https://localhost:{origin.port}/")
        self.assertEqual((code, out), (0, b"untrusted but allowed"), err)

    async def test_client_certificate_required_by_script(self) -> None:
        """A tls_start_client hook asking for a client certificate makes a client without one fail:
        tls_failed_client runs with the reason in client.error, and no request is made."""
        origin = start_raw_origin(self, respond(200, b"never"), tls=origin_certificate("localhost", "127.0.0.1"))

        class RequireCertificate:
            def tls_start_client(self, data: TlsData) -> None:
                assert data.ssl_conn is not None
                data.ssl_conn.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True)

        recorder = TLSRecorder()
        proxy = start_proxy(self, addons=[RequireCertificate(), recorder])
        with capturedLogs():
            with self.assertRaises((ssl.SSLError, ConnectionError)):
                await deferToThread(fetch_over_tls, proxy.port, "localhost", origin.port, client_context(proxy.ca_path))
            await _settle()
        self.assertEqual(recorder.names(*TLS_HOOKS), ["tls_clienthello", "tls_start_client", "tls_failed_client"])
        failed: TlsData = recorder.data("tls_failed_client")
        self.assertIn("certificate", failed.conn.error or "")
        self.assertEqual(origin.requests, [])


class RemovedConnectionTests(TestCase):
    """A tls_start_* hook that sets data.ssl_conn to None ends that connection, cleanly."""

    async def test_server_side(self) -> None:
        """Without a connection for the server the client gets a 502 saying so, and the
        connection opened for the CONNECT is closed."""
        origin = start_raw_origin(self, respond(200, b"never"), tls=origin_certificate("localhost", "127.0.0.1"))

        class Remove:
            def tls_start_server(self, data: TlsData) -> None:
                data.ssl_conn = None

        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"], addons=[Remove()])
        with capturedLogs():
            out, err, code = await curl("--cacert", proxy.ca_path, "-x", proxy.url, "--include", f"https://localhost:{origin.port}/")
            await _settle()
        self.assertIn(b"HTTP/1.1 502 Bad Gateway", out)
        self.assertIn(b"a tls_start_server hook removed the TLS connection", out)
        self.assertEqual(origin.requests, [])
        self.assertEqual(len(origin.lost), len(origin.connections))

    async def test_client_side(self) -> None:
        """Without a connection for the client, its connection is closed with a warning."""
        origin = start_raw_origin(self, respond(200, b"never"), tls=origin_certificate("localhost", "127.0.0.1"))

        class Remove:
            def tls_start_client(self, data: TlsData) -> None:
                data.ssl_conn = None

        proxy = start_proxy(self, addons=[Remove()])
        with capturedLogs() as events:
            out, err, code = await curl("--cacert", proxy.ca_path, "-x", proxy.url, f"https://localhost:{origin.port}/")
        self.assertNotEqual(code, 0)
        self.assertIn("localhost: a tls_start_client hook removed the TLS connection; closing", [formatEvent(e) for e in events])


class FailedHookTests(TestCase):
    """Failed handshakes run tls_failed_client / tls_failed_server with the reason in conn.error."""

    async def test_client_does_not_trust_proxy(self) -> None:
        """curl without the proxy's CA aborts the handshake: tls_failed_client says unknown ca."""
        origin = start_raw_origin(self, respond(200, b"never"), tls=origin_certificate("localhost", "127.0.0.1"))
        recorder = TLSRecorder()
        proxy = start_proxy(self, options=["http2=false"], addons=[recorder])
        with capturedLogs():
            out, err, code = await curl("-x", proxy.url, f"https://localhost:{origin.port}/")
            await _settle()
        self.assertEqual(code, 60, err)
        self.assertEqual(recorder.names(*TLS_HOOKS), ["tls_clienthello", "tls_start_client", "tls_failed_client"])
        failed: TlsData = recorder.data("tls_failed_client")
        self.assertIs(failed.conn, recorder.data("tls_clienthello").context.client)
        self.assertIn("unknown ca", failed.conn.error or "")

    async def test_untrusted_server(self) -> None:
        """An origin whose certificate does not verify: tls_failed_server says why, then the client's 502 and error."""
        origin = start_raw_origin(self, respond(200, b"never"), tls=origin_certificate("localhost", "127.0.0.1"))
        recorder = TLSRecorder()
        proxy = start_proxy(self, options=["http2=false"], addons=[recorder])
        with capturedLogs():
            out, err, code = await curl("--cacert", proxy.ca_path, "-x", proxy.url, "--include", f"https://localhost:{origin.port}/")
        self.assertEqual(code, 0, err)
        self.assertIn(b"HTTP/1.1 502 Bad Gateway", out)
        self.assertEqual(
            recorder.names(*TLS_HOOKS, "error"),
            ["tls_clienthello", "tls_start_client", "tls_established_client", "tls_start_server", "tls_failed_server", "error"],
        )
        failed: TlsData = recorder.data("tls_failed_server")
        self.assertIn("certificate verify failed", failed.conn.error or "")
        self.assertIn(failed.conn.error.encode(), out)  # type: ignore[union-attr]

    async def test_hook_failure_contained(self) -> None:
        """A tls_clienthello hook that raises is logged with its line; the connection is intercepted as usual."""
        origin = start_raw_origin(self, respond(200, b"still fine"), tls=origin_certificate("localhost", "127.0.0.1"))

        class Broken:
            def tls_clienthello(self, data: ClientHelloData) -> None:
                raise RuntimeError("broken hook")

        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"], addons=[Broken()])
        with capturedLogs() as events:
            out, err, code = await curl("--cacert", proxy.ca_path, "-x", proxy.url, f"https://localhost:{origin.port}/")
        self.assertEqual((code, out), (0, b"still fine"), err)
        self.assertTrue(any("error in tls_clienthello hook: RuntimeError: broken hook" in formatEvent(e) for e in events))
        self.flushLoggedErrors(RuntimeError)

# -*- test-case-name: tests.test_h2_loopback -*-
"""HTTP/2 through a real listening proxy: curl (nghttp2) to an HTTP/2 origin over loopback TLS."""

from __future__ import annotations

from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import TestCase

from tests.h2peers import Answer, H2Origin, ReceivedRequest, h2_tls_options
from tests.support import HookRecorder, curl, listen, origin_ca_path, origin_certificate, start_proxy


def start_h2_origin(test: TestCase, handler: object, protocols: tuple[bytes, ...] = (b"h2",)) -> tuple[H2Origin, int]:
    """An L{H2Origin} on 127.0.0.1 port 0 behind TLS selecting among C{protocols}."""
    origin = H2Origin(handler)  # type: ignore[arg-type]
    tls = h2_tls_options(origin_certificate("127.0.0.1"), protocols)
    port = listen(test, TLSMemoryBIOFactory(tls, False, origin.factory()))
    test.addCleanup(origin.abort_connections)
    return origin, port


def greet(request: ReceivedRequest) -> Answer:
    return Answer(200, [(b"content-type", b"text/plain")], b"h2 says hi to " + (request.header(b":path") or b""))


class CurlTests(TestCase):
    """curl --http2 through the proxy negotiates h2 with it when the origin speaks h2."""

    async def test_curl_http2_end_to_end(self) -> None:
        """curl gets the origin's answer over HTTP/2, and the flow says HTTP/2.0 on both messages."""
        origin, port = start_h2_origin(self, greet)
        recorder = HookRecorder()
        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"], addons=[recorder])
        out, err, code = await curl(
            "--http2", "-x", proxy.url, "--cacert", proxy.ca_path, "-w", "\n%{http_version}", f"https://127.0.0.1:{port}/hello", timeout=10
        )
        self.assertEqual(code, 0, err)
        self.assertEqual(out, b"h2 says hi to /hello\n2")
        flow = next(argument for name, argument in recorder.calls if name == "response")
        self.assertEqual((flow.request.http_version, flow.response.http_version), ("HTTP/2.0", "HTTP/2.0"))
        self.assertEqual(origin.requests[0].header(b":authority"), f"127.0.0.1:{port}".encode())

    async def test_streamed_download(self) -> None:
        """A 4 MiB body streamed (stream_large_bodies) over HTTP/2 on both legs arrives whole."""
        body = bytes(range(256)) * (16 * 1024)
        origin, port = start_h2_origin(self, lambda request: Answer(200, [(b"content-length", b"%d" % len(body))], body))
        proxy = start_proxy(self, options=[f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}", "stream_large_bodies=64k"])
        out, err, code = await curl(
            "--http2", "-x", proxy.url, "--cacert", proxy.ca_path, "-o", "/dev/null", "-w", "%{size_download} %{http_version}",
            f"https://127.0.0.1:{port}/big", timeout=20,
        )
        self.assertEqual(code, 0, err)
        self.assertEqual(out, b"%d 2" % len(body))

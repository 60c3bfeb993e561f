# -*- test-case-name: tests.test_modes -*-
"""Proxy modes (issue 13): the mode syntax, SOCKS5's handshake, and each mode over loopback.

The same streaming, backpressure, timeout and failure checks run in every mode a client
reaches through curl (L{ModeCase} and its subclasses), so a mode is not only a smoke test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from twisted.internet.protocol import Factory, Protocol

from tests.support import (
    HookRecorder,
    listen,
    RunningProxy,
    curl,
    respond,
    rss,
    shared_confdir,
    start_body_origin,
    echo_body,
    start_proxy,
    start_raw_origin,
)
from twisted_mitm.mode_specs import ProxyMode, RegularMode, ReverseMode, Socks5Mode, TransparentMode, UpstreamMode
from tests.test_streaming_memory import LazyBody, Peak
from twisted_mitm.proxy.socks5 import Credentials, Reply, Socks5Error, Socks5Handshake, Target, reply


class ModeSpecTests(SynchronousTestCase):
    """mitmproxy 12's mode syntax: C{mode[:data][@[host:]port]}."""

    def test_valid(self) -> None:
        """Each kind, with and without a listen address."""
        cases: dict[str, tuple[type[ProxyMode], str | None, int | None]] = {
            "regular": (RegularMode, None, None),
            "regular@8081": (RegularMode, None, 8081),
            "socks5@127.0.0.1:1080": (Socks5Mode, "127.0.0.1", 1080),
            "transparent@[::1]:8082": (TransparentMode, "::1", 8082),
            "reverse:https://example.com@8443": (ReverseMode, None, 8443),
            "upstream:http://proxy.corp:3128": (UpstreamMode, None, None),
        }
        for spec, (kind, host, port) in cases.items():
            mode = ProxyMode.parse(spec)
            self.assertEqual((type(mode), mode.listen_host, mode.listen_port, str(mode)), (kind, host, port, spec), spec)

    def test_server_data(self) -> None:
        """reverse: and upstream: carry a server; the port defaults to the scheme's."""
        reverse = ProxyMode.parse("reverse:https://example.com")
        assert isinstance(reverse, ReverseMode)
        self.assertEqual((reverse.scheme, reverse.address, reverse.url), ("https", ("example.com", 443), "https://example.com:443"))
        upstream = ProxyMode.parse("upstream:http://[::1]:3128@9000")
        assert isinstance(upstream, UpstreamMode)
        self.assertEqual((upstream.address, upstream.listen_port), (("::1", 3128), 9000))
        self.assertEqual(ProxyMode.parse("reverse:example.com").address, ("example.com", 80))  # type: ignore[attr-defined]

    def test_invalid(self) -> None:
        """Mistakes are one clear ValueError each."""
        cases = {
            "bogus": "unknown mode 'bogus'",
            "reverse": "reverse needs a server",
            "socks5:x": "socks5 takes no ':' data",
            "reverse:ftp://x": "must be http://host[:port] or https://host[:port]",
            "regular@port": "'port' is not [host:]port",
            "regular@70000": "'70000' is not [host:]port",
            "upstream:http://h:0": "0 is not a port number",
        }
        for spec, message in cases.items():
            error = self.assertRaises(ValueError, ProxyMode.parse, spec)
            self.assertIn(message, str(error), spec)

    def test_state(self) -> None:
        """A mode is saved in flow files as its spec and read back as the same mode."""
        mode = ProxyMode.parse("reverse:http://127.0.0.1:3000@8081")
        self.assertEqual(ProxyMode.from_state(mode.get_state()), mode)


def connect_request(host: bytes, port: int, atyp: int = 3) -> bytes:
    """A SOCKS5 CONNECT request for a domain name (or an IPv4/IPv6 address, raw)."""
    address = bytes([len(host)]) + host if atyp == 3 else host
    return bytes([5, 1, 0, atyp]) + address + struct.pack("!H", port)


class Socks5HandshakeTests(SynchronousTestCase):
    """L{Socks5Handshake}: RFC 1928 and 1929, byte by byte."""

    def test_no_authentication(self) -> None:
        """Greeting, then a CONNECT to a domain name: the method choice, then the target and the bytes after it."""
        handshake = Socks5Handshake(False)
        self.assertEqual(handshake.receive(b"\x05\x02\x00\x02" + connect_request(b"example.com", 443) + b"GET"), b"\x05\x00")
        self.assertEqual(handshake.pending(), Target("example.com", 443, b"GET"))

    def test_byte_by_byte(self) -> None:
        """The same handshake arriving one byte at a time gives the same steps."""
        handshake = Socks5Handshake(False)
        data = b"\x05\x01\x00" + connect_request(b"example.com", 443)
        steps = [step for index in range(len(data)) if (step := handshake.receive(data[index : index + 1])) is not None]
        self.assertEqual(steps, [b"\x05\x00", Target("example.com", 443, b"")])

    def test_addresses(self) -> None:
        """IPv4 and IPv6 targets are read as addresses."""
        for atyp, raw, host in ((1, socket.inet_aton("10.1.2.3"), "10.1.2.3"), (4, socket.inet_pton(socket.AF_INET6, "::1"), "::1")):
            handshake = Socks5Handshake(False)
            self.assertEqual(handshake.receive(b"\x05\x01\x00"), b"\x05\x00")
            self.assertEqual(handshake.receive(connect_request(raw, 80, atyp)), Target(host, 80, b""))

    def test_username_password(self) -> None:
        """With credentials required: method 2, the sub-negotiation, its answer, then the target."""
        handshake = Socks5Handshake(True)
        self.assertEqual(handshake.receive(b"\x05\x01\x02"), b"\x05\x02")
        self.assertEqual(handshake.receive(b"\x01\x04user\x04pass"), Credentials("user", "pass"))
        self.assertEqual(handshake.authenticated(True), b"\x01\x00")
        self.assertEqual(handshake.receive(connect_request(b"h", 1)), Target("h", 1, b""))

    def test_refusals(self) -> None:
        """Each malformed handshake gets the reply the RFC gives for it (or none) and an error."""
        cases: list[tuple[bool, bytes, bytes, str]] = [
            (False, b"GET / HTTP/1.1\r\n", b"", "an HTTP request?"),
            (False, b"\x04\x01\x00\x50", b"", "not SOCKS5"),
            (True, b"\x05\x01\x00", b"\x05\xff", "does not offer username/password"),
            (False, b"\x05\x01\x02", b"\x05\xff", "does not offer no authentication"),
            (False, b"\x05\x01\x00\x05\x02\x00\x01" + b"\x00" * 6, reply(Reply.COMMAND_NOT_SUPPORTED), "only CONNECT"),
            (False, b"\x05\x01\x00\x05\x01\x00\x09\x00", reply(Reply.ADDRESS_TYPE_NOT_SUPPORTED), "address type"),
            (False, b"\x05\x01\x00\x05\x01\x01\x01\x00", reply(Reply.GENERAL_FAILURE), "malformed request"),
        ]
        for require, data, answer, reason in cases:
            handshake = Socks5Handshake(require)
            with self.subTest(data=data):
                error = self.assertRaises(Socks5Error, lambda: [handshake.receive(data), handshake.pending()])
                self.assertEqual(error.answer, answer)
                self.assertIn(reason, error.reason)

    def test_wrong_credentials(self) -> None:
        """Credentials found invalid: the failure answer (RFC 1929 status 1) and an error."""
        handshake = Socks5Handshake(True)
        handshake.receive(b"\x05\x01\x02")
        handshake.receive(b"\x01\x01u\x01p")
        error = self.assertRaises(Socks5Error, handshake.authenticated, False)
        self.assertEqual(error.answer, b"\x01\x01")


# -- every mode over loopback ---------------------------------------------------------------


class ModeCase:
    """How a client reaches an origin through the proxy in one mode (curl's arguments)."""

    mode = "regular"
    kind: type[ProxyMode] = RegularMode

    def start(self, test: TestCase, origin_url: str, options: list[str]) -> RunningProxy:
        return start_proxy(test, options=[f"mode={self.mode}", *options])

    def curl_args(self, proxy: RunningProxy, url: str) -> list[str]:
        return ["-x", proxy.url, url]


class ReverseCase(ModeCase):
    """Clients talk to the proxy as if it were the origin."""

    kind = ReverseMode

    def start(self, test: TestCase, origin_url: str, options: list[str]) -> RunningProxy:
        return start_proxy(test, options=[f"mode=reverse:{origin_url}", *options])

    def curl_args(self, proxy: RunningProxy, url: str) -> list[str]:
        path = "/" + url.split("/", 3)[3]
        return [proxy.url + path]


class UpstreamCase(ModeCase):
    """The proxy sends everything on through another proxy (here a second, regular one)."""

    kind = UpstreamMode

    def start(self, test: TestCase, origin_url: str, options: list[str]) -> RunningProxy:
        corporate = start_proxy(test, options=[*options])
        return start_proxy(test, options=[f"mode=upstream:{corporate.url}", *options])


class Socks5Case(ModeCase):
    """Clients speak SOCKS5 to the proxy (curl --socks5-hostname)."""

    mode = "socks5"
    kind = Socks5Mode

    def curl_args(self, proxy: RunningProxy, url: str) -> list[str]:
        return ["--socks5-hostname", f"127.0.0.1:{proxy.port}", url]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _EveryMode:
    """Streaming, backpressure, timeouts and failures, the same in every mode (issue 13.6)."""

    case: ModeCase

    async def test_streamed_download(self) -> None:
        """A streamed 24 MiB body arrives whole and byte-identical."""
        body = os.urandom(24 << 20)
        origin = start_raw_origin(self, respond(200, body))  # type: ignore[arg-type]
        proxy = self.case.start(self, origin.url, ["stream_large_bodies=1m"])  # type: ignore[arg-type]
        out, err, code = await curl(*self.case.curl_args(proxy, origin.url + "/big"))
        self.assertEqual((code, len(out), sha(out)), (0, len(body), sha(body)), err)  # type: ignore[attr-defined]

    async def test_streamed_upload(self) -> None:
        """A streamed 8 MiB upload reaches the origin whole (it echoes it back)."""
        origin = start_body_origin(self, echo_body)  # type: ignore[arg-type]
        proxy = self.case.start(self, origin.url, ["stream_large_bodies=64k"])  # type: ignore[arg-type]
        path = self.mktemp()  # type: ignore[attr-defined]
        data = os.urandom(8 << 20)
        with open(path, "wb") as upload:
            upload.write(data)
        out, err, code = await curl("-H", "Expect:", "--data-binary", "@" + path, *self.case.curl_args(proxy, origin.url + "/up"))
        self.assertEqual((code, sha(out)), (0, sha(data)), err)  # type: ignore[attr-defined]

    async def test_slow_reader_holds_memory(self) -> None:
        """A client reading a streamed 48 MiB body at 12 MiB/s from an origin that writes as fast
        as it is let: the proxy's memory stays bounded (the origin is paused, not buffered)."""
        total = 48 << 20
        port = listen(self, Factory.forProtocol(lambda: LazyOrigin(total)))  # type: ignore[arg-type]
        origin_url = f"http://127.0.0.1:{port}"
        proxy = self.case.start(self, origin_url, ["stream_large_bodies=1m"])  # type: ignore[arg-type]
        before = rss()
        peak = Peak(self)  # type: ignore[arg-type]
        out, err, code = await curl("--limit-rate", "12M", "-o", "/dev/null", "-w", "%{size_download}", *self.case.curl_args(proxy, origin_url + "/slow"), timeout=60)
        peak.stop()
        self.assertEqual((code, out), (0, b"%d" % total), err)  # type: ignore[attr-defined]
        self.assertLess(peak.peak - before, 24 << 20)  # type: ignore[attr-defined]

    async def test_silent_origin_gets_504(self) -> None:
        """An origin that never answers: a 504 after upstream_read_timeout."""
        origin = start_raw_origin(self, None)  # type: ignore[arg-type]
        proxy = self.case.start(self, origin.url, ["upstream_read_timeout=1"])  # type: ignore[arg-type]
        out, err, code = await curl("-i", *self.case.curl_args(proxy, origin.url + "/silent"))
        self.assertEqual(code, 0, err)  # type: ignore[attr-defined]
        self.assertIn(b" 504 ", out.split(b"\r\n", 1)[0])  # type: ignore[attr-defined]

    async def test_origin_dies_mid_body(self) -> None:
        """An origin that dies mid-body: curl sees a transfer cut short, never a complete body."""

        def half(protocol: Any, head: bytes) -> None:
            protocol.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 500_000)
            protocol.transport.loseConnection()

        origin = start_raw_origin(self, half)  # type: ignore[arg-type]
        proxy = self.case.start(self, origin.url, ["stream_large_bodies=64k"])  # type: ignore[arg-type]
        out, err, code = await curl(*self.case.curl_args(proxy, origin.url + "/dies"))
        self.assertIn(code, (18, 56, 52), err)  # type: ignore[attr-defined]
        self.assertLess(len(out), 2_000_000)  # type: ignore[attr-defined]

    async def test_flows_name_their_mode(self) -> None:
        """Scripts see which mode a flow came through in flow.client_conn.proxy_mode."""
        recorder = HookRecorder()
        origin = start_raw_origin(self, respond(200, b"ok"))  # type: ignore[arg-type]
        proxy = self.case.start(self, origin.url, [])  # type: ignore[arg-type]
        proxy.master.addons.add(recorder)
        out, err, code = await curl(*self.case.curl_args(proxy, origin.url + "/m"))
        self.assertEqual((code, out), (0, b"ok"), err)  # type: ignore[attr-defined]
        flow = [flow for name, flow in recorder.calls if name == "response"][0]
        self.assertIs(type(flow.client_conn.proxy_mode), self.case.kind)  # type: ignore[attr-defined]


class LazyOrigin(Protocol):
    """Answers every request with C{total} bytes, written only as fast as the connection takes them."""

    def __init__(self, total: int) -> None:
        self.total = total

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.total)
            LazyBody(self.transport, self.total)


class RegularModeTests(_EveryMode, TestCase):
    case = ModeCase()


class ReverseModeTests(_EveryMode, TestCase):
    case = ReverseCase()

    async def test_host_rewritten(self) -> None:
        """The origin gets Host set to the reverse target, unless keep_host_header."""
        origin = start_raw_origin(self, respond(200, b"ok"))
        proxy = start_proxy(self, options=[f"mode=reverse:{origin.url}"])
        await curl("-H", "Host: public.example", f"{proxy.url}/x")
        self.assertIn(b"\r\nHost: 127.0.0.1:%d\r\n" % origin.port, origin.requests[0])
        kept = start_proxy(self, options=[f"mode=reverse:{origin.url}", "keep_host_header=true"])
        await curl("-H", "Host: public.example", f"{kept.url}/y")
        self.assertIn(b"\r\nHost: public.example\r\n", origin.requests[1])

    async def test_tls_client(self) -> None:
        """A client may speak TLS to the reverse proxy: it gets a leaf for the target's name."""
        origin = start_raw_origin(self, respond(200, b"over tls"))
        proxy = start_proxy(self, options=[f"mode=reverse:{origin.url}"])
        out, err, code = await curl("--cacert", proxy.ca_path, "--resolve", f"127.0.0.1:{proxy.port}:127.0.0.1", f"https://127.0.0.1:{proxy.port}/t")
        self.assertEqual((code, out), (0, b"over tls"), err)
        self.assertTrue(origin.requests[0].startswith(b"GET /t HTTP/1.1\r\n"))

    async def test_proxyauth_asks_as_a_server(self) -> None:
        """With proxyauth, a reverse proxy answers 401 with WWW-Authenticate, and takes Authorization."""
        origin = start_raw_origin(self, respond(200, b"let in"))
        proxy = start_proxy(self, options=[f"mode=reverse:{origin.url}", "proxyauth=user:pass"])
        out, err, code = await curl("-i", f"{proxy.url}/a")
        self.assertIn(b" 401 ", out.split(b"\r\n", 1)[0])
        self.assertIn(b'WWW-Authenticate: Basic realm="twisted_mitm"', out)
        out, err, code = await curl("-u", "user:pass", f"{proxy.url}/a")
        self.assertEqual((code, out), (0, b"let in"), err)
        self.assertNotIn(b"authorization", origin.requests[-1].lower())

    async def test_unreachable_target_is_a_502(self) -> None:
        """A target that is down: each request gets a 502 saying why (the connection stays usable)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proxy = start_proxy(self, options=[f"mode=reverse:http://127.0.0.1:{port}"])
        out, err, code = await curl("-i", f"{proxy.url}/down")
        self.assertEqual(code, 0, err)
        self.assertIn(b" 502 ", out.split(b"\r\n", 1)[0])
        self.assertIn(b"connection refused", out)


class UpstreamModeTests(_EveryMode, TestCase):
    case = UpstreamCase()

    async def test_absolute_form_and_credentials(self) -> None:
        """Plain requests reach the upstream proxy in absolute form, with upstream_auth."""
        origin = start_raw_origin(self, respond(200, b"via corp"))
        corporate = start_raw_origin(self, None)

        def answer(protocol: Any, head: bytes) -> None:
            protocol.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nvia corp")

        corporate.handler = answer
        proxy = start_proxy(self, options=[f"mode=upstream:{corporate.url}", "upstream_auth=me:secret"])
        out, err, code = await curl("-x", proxy.url, f"{origin.url}/abs?q=1")
        self.assertEqual((code, out), (0, b"via corp"), err)
        head = corporate.requests[0]
        self.assertTrue(head.startswith(f"GET {origin.url}/abs?q=1 HTTP/1.1\r\n".encode()), head)
        self.assertIn(b"\r\nProxy-Authorization: Basic bWU6c2VjcmV0\r\n", head)
        self.assertEqual(origin.requests, [])

    async def test_https_through_connect(self) -> None:
        """HTTPS goes through the upstream proxy's CONNECT and is still intercepted here."""
        from tests.support import origin_ca_path, origin_certificate

        origin = start_raw_origin(self, respond(200, b"secure via corp"), tls=origin_certificate("localhost"))
        recorder = HookRecorder()
        corporate = start_proxy(self, options=["ignore_hosts=.*"], addons=[recorder])
        proxy = start_proxy(self, options=[f"mode=upstream:{corporate.url}", f"ssl_verify_upstream_trusted_ca={origin_ca_path(self)}"])
        out, err, code = await curl("--cacert", proxy.ca_path, "-x", proxy.url, f"https://localhost:{origin.port}/s")
        self.assertEqual((code, out), (0, b"secure via corp"), err)
        addresses = [data.server.address for name, data in recorder.calls if name == "server_connect"]
        self.assertEqual(addresses, [("localhost", origin.port)])

    async def test_refused_connect_is_a_clear_502(self) -> None:
        """An upstream proxy that wants credentials (407): the client's CONNECT gets a 502 that says so."""
        from tests.test_tunnel import connect_reply

        corporate = start_proxy(self, options=["proxyauth=boss:pw"])
        proxy = start_proxy(self, options=[f"mode=upstream:{corporate.url}"])
        reply_bytes = await deferToThread(connect_reply, proxy.port, "localhost:9")
        self.assertTrue(reply_bytes.startswith(b"HTTP/1.1 502 "), reply_bytes)
        self.assertIn(b"407", reply_bytes)
        self.assertIn(b"upstream_auth", reply_bytes)


class Socks5ModeTests(_EveryMode, TestCase):
    case = Socks5Case()

    async def test_credentials(self) -> None:
        """With proxyauth, SOCKS5 asks for username/password: right ones pass, wrong ones are refused."""
        origin = start_raw_origin(self, respond(200, b"authenticated"))
        proxy = start_proxy(self, options=["mode=socks5", "proxyauth=user:pass"])
        out, err, code = await curl("-x", f"socks5h://user:pass@127.0.0.1:{proxy.port}", origin.url + "/a")
        self.assertEqual((code, out), (0, b"authenticated"), err)
        out, err, code = await curl("-x", f"socks5h://user:wrong@127.0.0.1:{proxy.port}", origin.url + "/a")
        self.assertNotEqual(code, 0)

    async def test_unreachable_target(self) -> None:
        """A target nothing listens on: the SOCKS5 reply says connection refused."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proxy = start_proxy(self, options=["mode=socks5"])
        answer = await deferToThread(_socks5_connect, proxy.port, port)
        self.assertEqual(answer[:2], b"\x05\x05")

    async def test_garbage_gets_closed(self) -> None:
        """Bytes that are not SOCKS5 (an HTTP request) close the connection without a traceback."""
        proxy = start_proxy(self, options=["mode=socks5"])
        out, err, code = await curl("-x", proxy.url, "http://127.0.0.1:9/")
        self.assertNotEqual(code, 0)
        self.assertEqual(self.flushLoggedErrors(), [])


def _socks5_connect(proxy_port: int, target_port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as sock:
        sock.sendall(b"\x05\x01\x00")
        assert sock.recv(2) == b"\x05\x00"
        sock.sendall(connect_request(socket.inet_aton("127.0.0.1"), target_port, atyp=1))
        return sock.recv(10)


class SeveralModesTests(TestCase):
    """Several modes in one process: one CA, one addon chain, one listener each."""

    async def test_regular_and_socks5_and_reverse(self) -> None:
        """regular@0, socks5@0 and reverse@0 each listen on their own port and serve the same origin."""
        origin = start_raw_origin(self, respond(200, b"shared"))
        recorder = HookRecorder()
        proxy = start_proxy(self, options=["mode=regular@0", "mode=socks5@0", f"mode=reverse:{origin.url}@0"], addons=[recorder])
        regular, socks, reverse = (port.getHost().port for port in proxy.service.ports)
        self.assertEqual(len({regular, socks, reverse}), 3)
        for args in (
            ["-x", f"http://127.0.0.1:{regular}", origin.url + "/r"],
            ["--socks5-hostname", f"127.0.0.1:{socks}", origin.url + "/s"],
            [f"http://127.0.0.1:{reverse}/v"],
        ):
            out, err, code = await curl(*args)
            self.assertEqual((code, out), (0, b"shared"), err)
        modes = [type(flow.client_conn.proxy_mode) for name, flow in recorder.calls if name == "response"]
        self.assertEqual(modes, [RegularMode, Socks5Mode, ReverseMode])


class TransparentModeTests(TestCase):
    """Transparent mode with a real iptables REDIRECT, inside a network namespace of its own."""

    def setUp(self) -> None:
        if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables") is None:
            raise SkipTest(
                "TRANSPARENT MODE NOT TESTED: needs root, iproute2 and iptables "
                "(apt-get install iptables) to set up a REDIRECT in a private network namespace"
            )
        self.namespace = f"tmitm{os.getpid()}"
        if subprocess.run(["ip", "netns", "add", self.namespace], capture_output=True).returncode != 0:
            raise SkipTest("TRANSPARENT MODE NOT TESTED: this machine does not allow network namespaces")
        self.addCleanup(subprocess.run, ["ip", "netns", "delete", self.namespace], capture_output=True)
        self.run_in("ip", "link", "set", "lo", "up")

    def run_in(self, *command: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["ip", "netns", "exec", self.namespace, *command], capture_output=True, timeout=30)

    def spawn_in(self, *command: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(["ip", "netns", "exec", self.namespace, *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(process.wait, 10)
        self.addCleanup(process.kill)
        return process

    def test_redirected_request_is_a_flow(self) -> None:
        """curl to an origin, redirected by iptables to the proxy: the origin answers, the flow is logged."""
        origin = self.spawn_in(sys.executable, "-c", _ORIGIN)
        proxy = self.spawn_in(
            sys.executable, "-m", "twisted_mitm", "--mode", "transparent@127.0.0.1:18080",
            "--set", f"confdir={shared_confdir()}", "--set", "block_global=false",
        )
        # Only the client's packets (from 127.0.0.3) are redirected, not the proxy's own.
        rule = [
            "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-s", "127.0.0.3", "-d", "127.0.0.2",
            "--dport", "18000", "-j", "REDIRECT", "--to-ports", "18080",
        ]
        self.assertEqual(self.run_in(*rule).returncode, 0, "iptables refused the rule")
        client = ["curl", "--silent", "--max-time", "5", "--interface", "127.0.0.3", "http://127.0.0.2:18000/transparent"]
        deadline = time.monotonic() + 15
        result = self.run_in(*client)
        while result.stdout != b"redirected" and time.monotonic() < deadline:
            time.sleep(0.3)
            result = self.run_in(*client)
        self.assertEqual(result.stdout, b"redirected", result.stderr)
        proxy.kill()
        log = proxy.communicate(timeout=10)[0]
        self.assertIn(b"GET http://127.0.0.2:18000/transparent", log)
        origin.kill()


#: A tiny origin on 127.0.0.2:18000 (inside the namespace) that answers "redirected".
_ORIGIN = """
import http.server, socket, subprocess
subprocess.run(["ip", "addr", "add", "127.0.0.2/8", "dev", "lo"], capture_output=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "10"); self.end_headers(); self.wfile.write(b"redirected")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.2", 18000), H).serve_forever()
"""

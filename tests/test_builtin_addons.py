# -*- test-case-name: tests.test_builtin_addons -*-
"""The built-in addons: proxy authentication and the HAR dump."""

from __future__ import annotations

import base64
import json
import os
import stat
from typing import Any

import brotli  # type: ignore[import-untyped]
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import curl, raw_client, reactor, respond, start_proxy, start_raw_origin
from twisted_mitm.addons.block import Block, open_proxy_warning
from twisted_mitm.addons.defaults import addons_after_scripts, default_addons
from twisted_mitm.addons.har import har_entry
from twisted_mitm.addons.proxyauth import credentials_from
from twisted_mitm.connection import Client, Server
from twisted_mitm.http import HTTPFlow, Request, Response
from twisted_mitm.master import Master
from twisted_mitm.options import default_options


class CredentialsTests(SynchronousTestCase):
    """Parsing C{Proxy-Authorization} values."""

    def test_basic(self) -> None:
        """A Basic header yields C{user:pass}."""
        self.assertEqual(credentials_from("Basic dXNlcjpwYXNz"), "user:pass")

    def test_other_schemes_and_garbage(self) -> None:
        """Other schemes and undecodable values yield nothing."""
        self.assertIsNone(credentials_from("Bearer abc"))
        self.assertIsNone(credentials_from("Basic !!!"))
        self.assertIsNone(credentials_from(""))


class DefaultAddonsTests(SynchronousTestCase):
    """The chain of built-in addons."""

    def test_mitmproxy_order(self) -> None:
        """The core commands first, then the built-ins in the order of mitmproxy's default_addons()
        (block, who may connect, first), the flow log, the HAR dump, the flow file reader,
        interception, and the script loader; the flow file writer after the scripts."""
        names = [type(addon).__name__ for addon in default_addons()]
        self.assertEqual(
            names,
            ["Core", "LiveFlows", "Block", "BlockList", "AntiCache", "AntiComp", "DisableH2C", "ProxyAuth", "ServerPlayback",
             "MapRemote", "MapLocal", "ModifyBody", "ModifyHeaders", "StickyAuth", "StickyCookie", "FlowLog",
             "HarDump", "ReadFile", "Intercept", "ScriptLoader"],
        )
        self.assertEqual([type(addon).__name__ for addon in addons_after_scripts()], ["Save"])


class ProxyAuthTests(TestCase):
    """C{proxyauth=user:pass} with real curl."""

    async def test_plain_request_needs_credentials(self) -> None:
        """Without credentials curl gets 407 with a challenge; with them, the origin's answer."""
        origin = start_raw_origin(self, respond(200, b"secret"))
        proxy = start_proxy(self, options=["proxyauth=user:pass"])
        out, err, code = await curl("-i", "-x", proxy.url, origin.url + "/")
        self.assertIn(b"407", out.split(b"\r\n", 1)[0])
        self.assertIn(b'Proxy-Authenticate: Basic realm="twisted_mitm"', out)
        self.assertEqual(origin.requests, [])
        out, err, code = await curl("-x", proxy.url, "--proxy-user", "user:pass", origin.url + "/")
        self.assertEqual((code, out), (0, b"secret"), err)
        self.assertNotIn(b"proxy-authorization", origin.requests[0].lower())

    async def test_wrong_password(self) -> None:
        """Wrong credentials are refused like missing ones."""
        origin = start_raw_origin(self, respond(200, b"secret"))
        proxy = start_proxy(self, options=["proxyauth=user:pass"])
        out, err, code = await curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", proxy.url, "--proxy-user", "user:nope", origin.url + "/")
        self.assertEqual(out, b"407")

    async def test_connect_needs_credentials(self) -> None:
        """A CONNECT without credentials is refused with 407 and no tunnel."""
        proxy = start_proxy(self, options=["proxyauth=user:pass"])
        out, err, code = await curl("-s", "-o", "/dev/null", "-w", "%{http_connect}", "-p", "-x", proxy.url, "http://127.0.0.1:9/")
        self.assertEqual(out, b"407")


def flow_with_response(headers: dict[str, str], raw: bytes) -> HTTPFlow:
    """A finished GET flow whose response has C{headers} and the body C{raw} as sent."""
    flow = HTTPFlow(Client(("127.0.0.1", 5000), ("127.0.0.1", 8080)), Server(("example.com", 80)))
    flow.request = Request.make("GET", "http://example.com/")
    fields = [(name.encode(), value.encode()) for name, value in headers.items()]
    flow.response = Response(b"HTTP/1.1", 200, b"OK", fields, raw, None, 1.0, 2.0)
    return flow


class HarEntryTests(SynchronousTestCase):
    """L{har_entry} and content encodings."""

    def test_encoded_body_decoded(self) -> None:
        """A br body is recorded decoded, its size as sent."""
        raw = brotli.compress(b"hello har")
        content = har_entry(flow_with_response({"Content-Encoding": "br"}, raw))["response"]["content"]
        self.assertEqual((content["text"], content["size"]), ("hello har", len(raw)))
        self.assertNotIn("comment", content)

    def test_undecodable_body_recorded_raw_with_reason(self) -> None:
        """A body whose encoding is unknown or corrupt is recorded as sent, with a comment saying why."""
        for coding, raw in (("compress", b"\x1f\x9d\x90raw"), ("gzip", b"not gzip")):
            with self.subTest(coding=coding):
                content = har_entry(flow_with_response({"Content-Encoding": coding}, raw))["response"]["content"]
                self.assertIn("body as sent, not decoded", content["comment"])
                self.assertIn(coding, content["comment"])
                recorded = base64.b64decode(content["text"]) if content.get("encoding") == "base64" else content["text"].encode()
                self.assertEqual(recorded, raw)


    async def test_credentials_removed_once_checked(self) -> None:
        """Accepted credentials leave the request before any later hook (CONNECT and plain), as in mitmproxy."""
        seen: list[tuple[str, str | None, object]] = []

        class Look:
            def http_connect(self, flow: Any) -> None:
                seen.append(("http_connect", flow.request.headers.get("proxy-authorization"), flow.metadata.get("proxyauth")))

            def request(self, flow: Any) -> None:
                seen.append(("request", flow.request.headers.get("proxy-authorization"), flow.metadata.get("proxyauth")))

        origin = start_raw_origin(self, respond(200, b"secret"))
        proxy = start_proxy(self, options=["proxyauth=user:pass"], addons=[Look()])
        out, err, code = await curl("-x", proxy.url, "--proxy-user", "user:pass", origin.url + "/plain")
        self.assertEqual((code, out), (0, b"secret"), err)
        out, err, code = await curl("-p", "-x", proxy.url, "--proxy-user", "user:pass", origin.url + "/tunnelled")
        self.assertEqual((code, out), (0, b"secret"), err)
        self.assertEqual(seen, [
            ("request", None, ("user", "pass")),
            ("http_connect", None, ("user", "pass")),
            ("request", None, ("user", "pass")),
        ])


class BlockTests(SynchronousTestCase):
    """C{block_global} and C{block_private} on the C{client_connected} hook, as mitmproxy decides."""

    def setUp(self) -> None:
        self.options = default_options()
        Master(self.options, shutdown=lambda: None)
        self.events = self.enterContext(capturedLogs())

    def refused(self, host: str, *settings: str) -> str | None:
        """C{client.error} after the hook, for a client at C{host} with C{settings} applied."""
        if settings:
            self.options.set(*settings)
        client = Client(peername=(host, 50000), sockname=("0.0.0.0", 8080))
        Block().client_connected(client)
        return client.error

    def test_defaults(self) -> None:
        """By default public clients are refused (IPv4, IPv6, IPv4-mapped); loopback and private ones are served."""
        for host in ("8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.4.4"):
            self.assertEqual(self.refused(host), "Connection killed by block_global.", host)
        for host in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "192.168.0.7", "fe80::1%eth0", "100.64.0.1"):
            self.assertIsNone(self.refused(host), host)

    def test_block_private(self) -> None:
        """block_private refuses private (and link-local) clients, never loopback ones."""
        for host in ("10.1.2.3", "172.16.0.1", "192.168.0.7", "fd00::1", "fe80::1%eth0"):
            self.assertEqual(self.refused(host, "block_private=true"), "Connection killed by block_private.", host)
        for host in ("127.0.0.1", "::1"):
            self.assertIsNone(self.refused(host), host)

    def test_off_or_authenticated(self) -> None:
        """block_global=false serves public clients; so does proxyauth (credentials keep strangers out)."""
        self.assertIsNone(self.refused("8.8.8.8", "block_global=false"))
        self.assertIsNone(self.refused("8.8.8.8", "block_global=true", "proxyauth=user:pass"))

    def test_refusal_logged(self) -> None:
        """A refusal is one warning naming the client and the option."""
        self.refused("8.8.8.8")
        [event] = [e for e in self.events if e["log_level"] == LogLevel.warn]
        self.assertEqual(formatEvent(event), "Client connection from 8.8.8.8 refused by block_global (set block_global=false to serve it)")

    def test_unparsable_address(self) -> None:
        """A peer that is not an IP address (a UNIX socket, say) is left alone."""
        self.assertIsNone(self.refused("/run/proxy.sock"))


class OpenProxyWarningTests(SynchronousTestCase):
    """Listening beyond loopback without proxyauth earns a warning at start-up."""

    def test_loopback_or_authenticated(self) -> None:
        """Loopback addresses, or any address with proxyauth, need no warning."""
        for host in ("127.0.0.1", "::1", "127.0.0.2"):
            self.assertIsNone(open_proxy_warning(host, proxyauth=False, block_global=True), host)
        self.assertIsNone(open_proxy_warning("0.0.0.0", proxyauth=True, block_global=False))

    def test_open(self) -> None:
        """All interfaces or a public address without proxyauth: a warning that says who gets in."""
        warning = open_proxy_warning("0.0.0.0", proxyauth=False, block_global=True)
        assert warning is not None
        self.assertIn("listening on 0.0.0.0 without proxyauth: clients from private networks can use this proxy", warning)
        warning = open_proxy_warning("203.0.113.5", proxyauth=False, block_global=False)
        assert warning is not None
        self.assertIn("public addresses included (block_global is off)", warning)


class ClientRefusalTests(TestCase):
    """A C{client_connected} hook that sets C{client.error} closes the connection before anything is read."""

    async def test_refused_client_closed(self) -> None:
        """The refused client gets no answer and a closed connection; the origin sees nothing."""

        class Refuse:
            def client_connected(self, client: Client) -> None:
                client.error = "Connection killed by a test."

        origin = start_raw_origin(self, respond(200, b"never"))
        proxy = start_proxy(self, addons=[Refuse()])
        client = await raw_client(self, proxy.port)
        client.send(b"GET %s/ HTTP/1.1\r\nHost: x\r\n\r\n" % origin.url.encode())
        self.assertEqual(await client.wait_closed(timeout=5), b"")
        self.assertEqual(origin.requests, [])

    async def test_slow_hook_holds_the_request(self) -> None:
        """A request sent while client_connected still runs waits for it, then is served."""
        admit: Deferred[None] = Deferred()

        class Slow:
            def client_connected(self, client: Client) -> Deferred[None]:
                return admit

        origin = start_raw_origin(self, respond(200, b"served"))
        proxy = start_proxy(self, addons=[Slow()])
        client = await raw_client(self, proxy.port)
        client.send(b"GET %s/ HTTP/1.1\r\nHost: x\r\n\r\n" % origin.url.encode())
        await deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(origin.requests, [])
        admit.callback(None)
        answer = await client.receive_until(lambda data: data.endswith(b"served"), timeout=5)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer)
        self.assertEqual(len(origin.requests), 1)

    async def test_loopback_served_by_default(self) -> None:
        """With the built-in block addon on (block_global, block_private), a loopback client is served;
        listening on loopback warns of nothing."""
        origin = start_raw_origin(self, respond(200, b"local"))
        with capturedLogs() as events:
            proxy = start_proxy(self, options=["block_private=true"])
            out, err, code = await curl("-x", proxy.url, origin.url + "/")
        self.assertEqual((code, out), (0, b"local"), err)
        self.assertEqual([e for e in events if e["log_level"] == LogLevel.warn], [])


class HarDumpTests(TestCase):
    """C{hardump=PATH} writes HAR 1.2 when the proxy stops."""

    async def test_entries_written_at_stop(self) -> None:
        """Each flow becomes an entry with its request, response and buffered body."""
        path = os.path.join(self.mktemp() + "-dir", "session.har")
        os.makedirs(os.path.dirname(path))
        origin = start_raw_origin(self, respond(201, b"created", [("Content-Type", "text/plain")]))
        proxy = start_proxy(self, options=[f"hardump={path}"])
        out, err, code = await curl("-x", proxy.url, "-d", "a=1", origin.url + "/submit?x=2")
        self.assertEqual(code, 0, err)
        await proxy.service.stopService()
        with open(path, encoding="utf-8") as file:
            har = json.load(file)
        self.assertEqual(har["log"]["version"], "1.2")
        [entry] = har["log"]["entries"]
        self.assertEqual(entry["request"]["method"], "POST")
        self.assertEqual(entry["request"]["url"], origin.url + "/submit?x=2")
        self.assertEqual(entry["request"]["queryString"], [{"name": "x", "value": "2"}])
        self.assertEqual(entry["request"]["postData"]["text"], "a=1")
        self.assertEqual(entry["response"]["status"], 201)
        self.assertEqual(entry["response"]["content"]["text"], "created")
        self.assertEqual(entry["response"]["content"]["size"], 7)

    async def test_streamed_body_recorded_as_size(self) -> None:
        """A streamed response is recorded with its size and without its body."""
        path = os.path.join(self.mktemp() + "-dir", "session.har")
        os.makedirs(os.path.dirname(path))
        origin = start_raw_origin(self, respond(200, b"x" * 5000))
        proxy = start_proxy(self, options=[f"hardump={path}", "stream_large_bodies=1k"])
        out, err, code = await curl("-x", proxy.url, origin.url + "/big")
        self.assertEqual(len(out), 5000, err)
        await proxy.service.stopService()
        with open(path, encoding="utf-8") as file:
            [entry] = json.load(file)["log"]["entries"]
        self.assertEqual(entry["response"]["content"]["size"], 5000)
        self.assertNotIn("text", entry["response"]["content"])

    async def test_private_file(self) -> None:
        """The recording is mode 0600, also when it replaces a world-readable file."""
        path = os.path.join(self.mktemp() + "-dir", "session.har")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as file:
            file.write("old")
        os.chmod(path, 0o644)
        origin = start_raw_origin(self, respond(200, b"body"))
        proxy = start_proxy(self, options=[f"hardump={path}", "proxyauth=user:pass"])
        out, err, code = await curl("-x", proxy.url, "--proxy-user", "user:pass", origin.url + "/")
        self.assertEqual((code, out), (0, b"body"), err)
        await proxy.service.stopService()
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path, encoding="utf-8") as file:
            recorded = file.read()
        self.assertNotIn("proxy-authorization", recorded.lower())
        self.assertEqual(len(json.loads(recorded)["log"]["entries"]), 1)

# -*- test-case-name: tests.test_builtin_addons -*-
"""The built-in addons: proxy authentication and the HAR dump."""

from __future__ import annotations

import base64
import json
import os

import brotli  # type: ignore[import-untyped]
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import curl, respond, start_proxy, start_raw_origin
from twisted_mitm.addons.defaults import default_addons
from twisted_mitm.addons.har import har_entry
from twisted_mitm.addons.proxyauth import credentials_from
from twisted_mitm.connection import Client, Server
from twisted_mitm.http import HTTPFlow, Request, Response


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
        """The built-ins run in the order of mitmproxy's default_addons(), then the flow log and the HAR dump."""
        names = [type(addon).__name__ for addon in default_addons()]
        self.assertEqual(
            names,
            ["BlockList", "AntiCache", "AntiComp", "DisableH2C", "ProxyAuth", "MapRemote", "MapLocal",
             "ModifyBody", "ModifyHeaders", "StickyAuth", "StickyCookie", "FlowLog", "HarDump"],
        )


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

# -*- test-case-name: tests.test_builtin_addons -*-
"""The built-in addons: proxy authentication and the HAR dump."""

from __future__ import annotations

import json
import os
import stat
from typing import Any

from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import curl, respond, start_proxy, start_raw_origin
from twisted_mitm.addons.proxyauth import credentials_from


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

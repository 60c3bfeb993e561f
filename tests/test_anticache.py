# -*- test-case-name: tests.test_anticache -*-
"""Tests for L{twisted_mitm.addons.anticache}."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.flows import request_flow
from tests.support import curl, respond, start_proxy, start_raw_origin
from twisted_mitm.addons.anticache import AntiCache
from twisted_mitm.master import Master
from twisted_mitm.options import default_options


class AntiCacheTests(SynchronousTestCase):
    """The request hook, off and on."""

    def test_option(self) -> None:
        """Conditional headers stay while anticache is off and go once it is on."""
        master = Master(default_options(), shutdown=lambda: None)
        addon = AntiCache()
        master.addons.add(addon)
        flow = request_flow()
        flow.request.headers["If-None-Match"] = '"etag"'
        flow.request.headers["If-Modified-Since"] = "Mon, 01 Jan 2024 00:00:00 GMT"
        addon.request(flow)
        self.assertIn("if-none-match", flow.request.headers)
        master.options.set("anticache=true")
        addon.request(flow)
        self.assertNotIn("if-none-match", flow.request.headers)
        self.assertNotIn("if-modified-since", flow.request.headers)


class LoopbackTests(TestCase):
    """C{anticache} with curl through the proxy."""

    async def test_conditional_headers_removed(self) -> None:
        """The origin never sees If-None-Match or If-Modified-Since."""
        origin = start_raw_origin(self, respond(200, b"fresh"))
        proxy = start_proxy(self, options=["anticache=true"])
        out, err, code = await curl("-x", proxy.url, "-H", 'If-None-Match: "x"', "-H", "If-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT", origin.url + "/")
        self.assertEqual((code, out), (0, b"fresh"), err)
        self.assertNotIn(b"if-", origin.requests[0].lower())

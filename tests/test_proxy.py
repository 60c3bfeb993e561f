# -*- test-case-name: tests.test_proxy -*-
"""The proxy end to end over loopback: real origin, real clients."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from tests.support import curl, respond, start_proxy, start_raw_origin


class PlainHTTPTests(TestCase):
    """Plain HTTP/1.1 through the proxy with curl."""

    async def test_curl_gets_origin_body(self) -> None:
        """curl -x through the proxy returns the origin's body unchanged."""
        origin = start_raw_origin(self, respond(200, b"hello from origin"))
        proxy = start_proxy(self)
        out, err, code = await curl("-x", proxy.url, origin.url + "/path?q=1")
        self.assertEqual((code, out), (0, b"hello from origin"), err)
        self.assertTrue(origin.requests[0].startswith(b"GET /path?q=1 HTTP/1.1\r\n"), origin.requests[0])

# -*- test-case-name: tests.test_stickycookie -*-
"""Tests for L{twisted_mitm.addons.stickycookie}."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.flows import response_flow
from tests.support import curl, start_proxy, start_raw_origin
from twisted_mitm.addons.stickycookie import StickyCookie, domain_match, is_expired
from twisted_mitm.http import CookieAttrs, HTTPFlow, Request
from twisted_mitm.master import Master
from twisted_mitm.options import default_options


def flow_to(url: str, *set_cookies: str) -> HTTPFlow:
    """A flow for a GET of C{url} whose response sets these cookies."""
    flow = response_flow()
    flow.request = Request.make("GET", url)
    for line in set_cookies:
        flow.response.headers.add(b"Set-Cookie", line.encode())
    return flow


class HelperTests(SynchronousTestCase):
    """Cookie matching and expiry."""

    def test_domain_match(self) -> None:
        """A cookie domain matches itself and its subdomains, with or without a leading dot."""
        self.assertTrue(domain_match("www.example.com", ".example.com"))
        self.assertTrue(domain_match("example.com", ".example.com"))
        self.assertFalse(domain_match("example.org", "example.com"))

    def test_expiry(self) -> None:
        """A past Expires or a Max-Age of 0 expires a cookie; others do not."""
        self.assertTrue(is_expired(CookieAttrs([("expires", "Thu, 01 Jan 1970 00:00:00 GMT")])))
        self.assertTrue(is_expired(CookieAttrs([("Max-Age", "0")])))
        self.assertFalse(is_expired(CookieAttrs([("expires", "Thu, 01 Jan 2099 00:00:00 GMT")])))
        self.assertFalse(is_expired(CookieAttrs([("max-age", "nonsense")])))


class StickyCookieTests(SynchronousTestCase):
    """The response and request hooks."""

    def setUp(self) -> None:
        self.master = Master(default_options(), shutdown=lambda: None)
        self.addon = StickyCookie()
        self.master.addons.add(self.addon)
        self.master.options.set("stickycookie=.")

    def request_after(self, url: str) -> HTTPFlow:
        flow = flow_to(url)
        self.addon.request(flow)
        return flow

    def test_cookies_sent_back(self) -> None:
        """Cookies set by a host go with later requests to it, replacing their Cookie header."""
        self.addon.response(flow_to("http://example.com/", "a=1", "b=two words; Path=/"))
        flow = flow_to("http://example.com/page")
        flow.request.headers["Cookie"] = "client=own"
        self.addon.request(flow)
        self.assertEqual(flow.request.headers["cookie"], 'a=1; b="two words"')
        self.assertEqual(flow.metadata, {"stickycookie": True})

    def test_path_port_and_host(self) -> None:
        """A cookie goes only to its path, port and domain."""
        self.addon.response(flow_to("http://example.com/", "a=1; Path=/app"))
        self.assertNotIn("cookie", self.request_after("http://example.com/other").request.headers)
        self.assertNotIn("cookie", self.request_after("http://example.com:8080/app").request.headers)
        self.assertNotIn("cookie", self.request_after("http://example.org/app").request.headers)
        self.assertEqual(self.request_after("http://example.com/app/x").request.headers["cookie"], "a=1")

    def test_expired_cookie_removed(self) -> None:
        """A Set-Cookie that expires a cookie takes it out of the jar."""
        self.addon.response(flow_to("http://example.com/", "a=1"))
        self.addon.response(flow_to("http://example.com/", "a=; Max-Age=0"))
        self.assertNotIn("cookie", self.request_after("http://example.com/").request.headers)
        self.assertEqual(dict(self.addon.jar), {})

    def test_foreign_domain_ignored(self) -> None:
        """A cookie for a domain the responding host is not in is not kept."""
        self.addon.response(flow_to("http://example.com/", "a=1; Domain=other.org"))
        self.assertEqual(dict(self.addon.jar), {})

    def test_filter(self) -> None:
        """Requests the filter does not match get nothing; with the option unset, nothing is collected."""
        self.addon.response(flow_to("http://example.com/", "a=1"))
        self.master.options.set("stickycookie=~m POST")
        self.assertNotIn("cookie", self.request_after("http://example.com/").request.headers)
        self.master.options.set("stickycookie=")
        self.addon.response(flow_to("http://example.org/", "b=2"))
        self.assertNotIn(("example.org", 80, "/"), self.addon.jar)


class LoopbackTests(TestCase):
    """C{stickycookie} with curl through the proxy."""

    async def test_cookie_replayed(self) -> None:
        """A cookie set on a first request is sent by the proxy with the second."""

        def handler(protocol: object, head: bytes) -> None:
            protocol.transport.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: session=42\r\nContent-Length: 2\r\n\r\nok")  # type: ignore[attr-defined]

        origin = start_raw_origin(self, handler)
        proxy = start_proxy(self, options=["stickycookie=."])
        await curl("-x", proxy.url, origin.url + "/login")
        out, err, code = await curl("-x", proxy.url, origin.url + "/next")
        self.assertEqual((code, out), (0, b"ok"), err)
        self.assertIn(b"\r\ncookie: session=42\r\n", origin.requests[1].lower())

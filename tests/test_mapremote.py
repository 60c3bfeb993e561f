# -*- test-case-name: tests.test_mapremote -*-
"""Tests for L{twisted_mitm.addons.mapremote}: re-targeting requests by URL."""

from __future__ import annotations

from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.flows import request_flow
from tests.support import curl, respond, start_proxy, start_raw_origin
from twisted_mitm.addons.mapremote import MapRemote, parse_map_remote_spec
from twisted_mitm.http import HTTPFlow, Request
from twisted_mitm.master import Master
from twisted_mitm.options import default_options


def get(url: str, **headers: str) -> HTTPFlow:
    """A live flow for a GET of C{url} (its Host header, if given, is made to match the URL)."""
    flow = request_flow()
    flow.request = Request.make("GET", url, headers=headers)
    flow.live = True
    return flow


class MapRemoteTests(SynchronousTestCase):
    """The request hook."""

    def setUp(self) -> None:
        self.master = Master(default_options(), shutdown=lambda: None)
        self.addon = MapRemote()
        self.master.addons.add(self.addon)

    def mapped(self, flow: HTTPFlow, *rules: str) -> HTTPFlow:
        self.master.options.set(*(f"map_remote={rule}" for rule in rules))
        self.addon.request(flow)
        return flow

    def test_retarget(self) -> None:
        """The regex is replaced in the URL and the request goes to the new one; the Host header follows."""
        flow = self.mapped(get("https://example.com/api/v1?x=1", host="example.com"), "|example.com/api|localhost:8081/test")
        self.assertEqual((flow.request.url, flow.request.host, flow.request.port), ("https://localhost:8081/test/v1?x=1", "localhost", 8081))
        self.assertEqual(flow.request.headers["host"], "localhost:8081")

    def test_scheme_and_groups(self) -> None:
        """The whole URL may change, scheme included, and groups can be used."""
        flow = self.mapped(get("https://a.example.com/x"), r"|https://(\w+)\.example\.com|http://\1.test")
        self.assertEqual(flow.request.url, "http://a.test/x")

    def test_rules_in_order(self) -> None:
        """Each rule sees the URL the previous ones made."""
        flow = self.mapped(get("http://one/"), "|one|two", "|two|three")
        self.assertEqual(flow.request.host, "three")

    def test_filter(self) -> None:
        """A rule whose filter does not match leaves the request alone."""
        flow = self.mapped(get("http://example.com/"), "|~m POST|example.com|other.com")
        self.assertEqual(flow.request.host, "example.com")

    def test_unchanged_url_untouched(self) -> None:
        """When the replacement gives the same URL, nothing is set (the Host header keeps its form)."""
        flow = get("http://example.com/")
        flow.request.headers["host"] = "EXAMPLE.com"
        self.mapped(flow, "|nothing-here|x")
        self.assertEqual(flow.request.headers["host"], "EXAMPLE.com")

    def test_not_a_url(self) -> None:
        """A replacement that makes no URL leaves the request as it was, with a warning."""
        with capturedLogs() as events:
            flow = self.mapped(get("http://example.com/"), "|^http.*|nonsense")
        self.assertEqual(flow.request.url, "http://example.com/")
        self.assertIn("map_remote: http://example.com/ became nonsense, which is not a URL", formatEvent(list(events)[0]))

    def test_bad_rules(self) -> None:
        """Bad regexes and templates are refused when parsed."""
        self.assertRaises(ValueError, parse_map_remote_spec, "|(|x")
        self.assertRaises(ValueError, parse_map_remote_spec, r"|a|\1")


class LoopbackTests(TestCase):
    """C{map_remote} with curl through the proxy."""

    async def test_request_goes_elsewhere(self) -> None:
        """A request for one host is answered by the origin the rule points at."""
        origin = start_raw_origin(self, respond(200, b"mapped"))
        proxy = start_proxy(self, options=[f"map_remote=|//example.com/|//127.0.0.1:{origin.port}/new/"])
        out, err, code = await curl("-x", proxy.url, "http://example.com/path")
        self.assertEqual((code, out), (0, b"mapped"), err)
        self.assertTrue(origin.requests[0].startswith(b"GET /new/path HTTP/1.1\r\n"), origin.requests[0])
        self.assertIn(b"\r\nHost: 127.0.0.1:%d\r\n" % origin.port, origin.requests[0])

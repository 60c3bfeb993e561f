# -*- test-case-name: tests.test_blocklist -*-
"""Tests for L{twisted_mitm.addons.blocklist}: C{block_list} rules, 444 included."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.flows import request_flow
from tests.support import HookRecorder, curl, respond, start_proxy, start_raw_origin
from twisted_mitm.addons.blocklist import BlockList, parse_block_spec
from twisted_mitm.master import Master
from twisted_mitm.options import default_options


class ParseTests(SynchronousTestCase):
    """L{parse_block_spec}."""

    def test_valid(self) -> None:
        """A filter and a status, any separator; 444 and 499 are accepted as in mitmproxy."""
        self.assertEqual(parse_block_spec(":~d example.com:404").status_code, 404)
        self.assertEqual(parse_block_spec("/~q/444").status_code, 444)
        self.assertEqual(parse_block_spec("/~q/499").status_code, 499)

    def test_mistakes(self) -> None:
        """Too many parts, a bad filter, a status that is not one: one line each."""
        for rule, expected in [
            ("/~u index.html/TOOMANY/300", "expected /filter/status"),
            (":~d ~d ~d:200", "Invalid filter expression"),
            ("/~u index.html/999", "999 is not an HTTP status code"),
            ("/~u index.html/abc", "'abc' is not an HTTP status code"),
        ]:
            with self.assertRaises(ValueError) as caught:
                parse_block_spec(rule)
            self.assertIn(expected, str(caught.exception))


class BlockListTests(SynchronousTestCase):
    """The request hook."""

    def setUp(self) -> None:
        self.master = Master(default_options(), shutdown=lambda: None)
        self.addon = BlockList()
        self.master.addons.add(self.addon)

    def test_status_response(self) -> None:
        """A matching request gets an empty response with the status, and is marked blocklisted."""
        self.master.options.set("block_list=/~d address/403")
        flow = request_flow()
        flow.live = True
        self.addon.request(flow)
        assert flow.response is not None
        self.assertEqual((flow.response.status_code, flow.response.content, flow.metadata["blocklisted"]), (403, b"", True))

    def test_no_match(self) -> None:
        """Other requests pass."""
        self.master.options.set("block_list=/~d other/403")
        flow = request_flow()
        flow.live = True
        self.addon.request(flow)
        self.assertEqual((flow.response, flow.metadata), (None, {}))


class LoopbackTests(TestCase):
    """C{block_list} with curl through the proxy."""

    async def test_blocked_with_status(self) -> None:
        """curl gets the status; the origin is never asked."""
        origin = start_raw_origin(self, respond(200, b"origin"))
        proxy = start_proxy(self, options=["block_list=/~u blocked/418"])
        out, err, code = await curl("-x", proxy.url, "-o", "/dev/null", "-w", "%{http_code}", origin.url + "/blocked")
        self.assertEqual((code, out, origin.connections), (0, b"418", []), err)
        out, err, code = await curl("-x", proxy.url, origin.url + "/fine")
        self.assertEqual((code, out), (0, b"origin"), err)

    async def test_444_closes_without_response(self) -> None:
        """Status 444 closes the connection without an answer (curl: empty reply or reset); the flow ends in error."""
        recorder = HookRecorder()
        origin = start_raw_origin(self, respond(200, b"origin"))
        proxy = start_proxy(self, options=["block_list=/~u blocked/444"], addons=[recorder])
        out, err, code = await curl("-x", proxy.url, origin.url + "/blocked")
        self.assertIn(code, (52, 56))  # empty reply / connection reset
        self.assertEqual((out, origin.connections), (b"", []))
        self.assertEqual(recorder.names("response", "error"), ["error"])

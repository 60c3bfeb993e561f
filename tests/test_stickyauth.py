# -*- test-case-name: tests.test_stickyauth -*-
"""Tests for L{twisted_mitm.addons.stickyauth}."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.flows import request_flow
from tests.support import curl, respond, start_proxy, start_raw_origin
from twisted_mitm.addons.stickyauth import StickyAuth
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.master import Master
from twisted_mitm.options import default_options


class StickyAuthTests(SynchronousTestCase):
    """The request hook."""

    def setUp(self) -> None:
        self.master = Master(default_options(), shutdown=lambda: None)
        self.addon = StickyAuth()
        self.master.addons.add(self.addon)

    def test_remembered_and_added(self) -> None:
        """The Authorization a host was sent is added to later matching requests to it without one."""
        self.master.options.set("stickyauth=.")
        first = request_flow()
        first.request.headers["Authorization"] = "Basic abc"
        self.addon.request(first)
        second = request_flow()
        self.addon.request(second)
        self.assertEqual(second.request.headers["authorization"], "Basic abc")

    def test_off_and_filtered(self) -> None:
        """Nothing is remembered while the option is unset; a request the filter does not match gets nothing."""
        first = request_flow()
        first.request.headers["Authorization"] = "Basic abc"
        self.addon.request(first)
        self.assertEqual(self.addon.hosts, {})
        self.master.options.set("stickyauth=~m GET")
        self.addon.request(first)
        post = request_flow()
        self.addon.request(post)
        self.assertNotIn("authorization", post.request.headers)

    def test_bad_filter(self) -> None:
        """A filter that does not parse is refused."""
        self.assertRaises(OptionsError, self.master.options.set, "stickyauth=~nope")


class LoopbackTests(TestCase):
    """C{stickyauth} with curl through the proxy."""

    async def test_second_request_authenticated(self) -> None:
        """After one request with credentials, a request without them reaches the origin with them."""
        origin = start_raw_origin(self, respond(200, b"ok"))
        proxy = start_proxy(self, options=["stickyauth=."])
        await curl("-x", proxy.url, "-u", "joe:secret", origin.url + "/one")
        out, err, code = await curl("-x", proxy.url, origin.url + "/two")
        self.assertEqual((code, out), (0, b"ok"), err)
        self.assertIn(b"\r\nauthorization: Basic am9lOnNlY3JldA==\r\n", origin.requests[1])

# -*- test-case-name: tests.test_anticomp -*-
"""Tests for L{twisted_mitm.addons.anticomp}."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.flows import request_flow
from tests.support import curl, respond, start_proxy, start_raw_origin
from twisted_mitm.addons.anticomp import AntiComp
from twisted_mitm.master import Master
from twisted_mitm.options import default_options


class AntiCompTests(SynchronousTestCase):
    """The request hook, off and on."""

    def test_option(self) -> None:
        """Accept-Encoding is left alone while anticomp is off, and becomes identity once it is on."""
        master = Master(default_options(), shutdown=lambda: None)
        addon = AntiComp()
        master.addons.add(addon)
        flow = request_flow()
        flow.request.headers["Accept-Encoding"] = "gzip, br"
        addon.request(flow)
        self.assertEqual(flow.request.headers["accept-encoding"], "gzip, br")
        master.options.set("anticomp=true")
        addon.request(flow)
        self.assertEqual(flow.request.headers["accept-encoding"], "identity")


class LoopbackTests(TestCase):
    """C{anticomp} with curl through the proxy."""

    async def test_identity_asked(self) -> None:
        """The origin is asked for an uncompressed response."""
        origin = start_raw_origin(self, respond(200, b"plain"))
        proxy = start_proxy(self, options=["anticomp=true"])
        out, err, code = await curl("-x", proxy.url, "--compressed", origin.url + "/")
        self.assertEqual((code, out), (0, b"plain"), err)
        self.assertIn(b"\r\naccept-encoding: identity\r\n", origin.requests[0].lower())

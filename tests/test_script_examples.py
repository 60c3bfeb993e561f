# -*- test-case-name: tests.test_script_examples -*-
"""The example scripts in examples/ (outside examples/complex) do what their docs say."""

from __future__ import annotations

import os
import sys
import time

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.utils import getProcessOutput
from twisted.trial.unittest import TestCase

from tests.support import curl, reactor, respond, start_proxy, start_raw_origin

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def example(name: str) -> str:
    return os.path.join(EXAMPLES, name)


class AddHeaderTests(TestCase):
    """examples/add_header.py."""

    async def test_header_added(self) -> None:
        """Every response carries the x-seen-by header."""
        origin = start_raw_origin(self, respond(200, b"ok"))
        proxy = start_proxy(self, scripts=[example("add_header.py")])
        out, err, code = await curl("-i", "-x", proxy.url, origin.url + "/")
        self.assertIn(b"x-seen-by: twisted_mitm", out)


class RewriteAndBlockTests(TestCase):
    """examples/rewrite_and_block.py, the example of docs/scripts.md."""

    def setUp(self) -> None:
        html = b"<h1>Example page</h1>"
        self.origin = start_raw_origin(self, respond(200, html, [("Content-Type", "text/html; charset=utf-8")]))
        self.proxy = start_proxy(self, scripts=[example("rewrite_and_block.py")], options=["blocked_path=/ads"])

    async def test_blocked_path_answered_by_proxy(self) -> None:
        """The script's option blocks a path with 403 and the origin is never asked."""
        out, err, code = await curl("-i", "-x", self.proxy.url, self.origin.url + "/ads/banner")
        self.assertTrue(out.startswith(b"HTTP/1.1 403"), out)
        self.assertEqual(self.origin.requests, [])

    async def test_html_rewritten(self) -> None:
        """HTML responses are rewritten, with a correct Content-Length."""
        out, err, code = await curl("-x", self.proxy.url, self.origin.url + "/")
        self.assertEqual((code, out), (0, b"<h1>Rewritten example page</h1>"), err)

    async def test_slow_hook_holds_only_its_flow(self) -> None:
        """A request waiting in the async hook does not delay another client's request."""
        finished: list[str] = []

        async def fetch(name: str, url: str) -> None:
            out, err, code = await curl("-x", self.proxy.url, url)
            self.assertEqual(code, 0, err)
            finished.append(name)

        start = time.monotonic()
        await gatherResults(
            [
                Deferred.fromCoroutine(fetch("slow", self.origin.url + "/?slow=1.0")),
                Deferred.fromCoroutine(fetch("fast", self.origin.url + "/")),
            ]
        )
        self.assertEqual(finished, ["fast", "slow"])
        self.assertGreaterEqual(time.monotonic() - start, 1.0)


class FlowFileExampleTests(TestCase):
    """examples/io_write_flow_file.py and examples/io_read_saved_flows.py."""

    async def test_write_then_read(self) -> None:
        """The script writes only the error flows; the reader prints them."""
        path = os.path.abspath(self.mktemp())
        ok = start_raw_origin(self, respond(200, b"fine"))
        missing = start_raw_origin(self, respond(404, b"missing"))
        proxy = start_proxy(self, scripts=[example("io_write_flow_file.py")], options=[f"error_flows_file={path}"])
        for url in (ok.url + "/fine", missing.url + "/missing"):
            out, err, code = await curl("-x", proxy.url, url)
            self.assertEqual(code, 0, err)
        await proxy.service.stopService()
        printed = await getProcessOutput(sys.executable, [example("io_read_saved_flows.py"), path], env=os.environ, reactor=reactor)
        self.assertEqual(printed.decode(), f"GET {missing.url}/missing -> 404\n")

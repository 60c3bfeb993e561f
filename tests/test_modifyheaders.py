# -*- test-case-name: tests.test_modifyheaders -*-
"""Tests for L{twisted_mitm.addons.modifyheaders}: C{modify_headers} rules."""

from __future__ import annotations

import os

from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.flows import request_flow, response_flow
from tests.support import curl, respond, start_proxy, start_raw_origin
from twisted_mitm.addons.modifyheaders import ModifyHeaders, parse_modify_spec
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.http import HTTPFlow
from twisted_mitm.master import Master
from twisted_mitm.options import default_options


def live(flow: HTTPFlow) -> HTTPFlow:
    """The flow, marked as being under way (addons leave finished flows alone)."""
    flow.live = True
    return flow


class ParseTests(SynchronousTestCase):
    """L{parse_modify_spec}."""

    def test_escapes(self) -> None:
        """Name and value are unescaped (C{\\x41} is C{A}); the value is read as bytes."""
        spec = parse_modify_spec(r"/~q/X-\x41/a\tb", False)
        self.assertEqual((spec.subject, spec.read_replacement()), (b"X-A", b"a\tb"))

    def test_value_from_file(self) -> None:
        """C{@path} reads the value from the file."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"from file")
        self.assertEqual(parse_modify_spec(f"|~q|X|@{path}", False).read_replacement(), b"from file")

    def test_missing_file(self) -> None:
        """A C{@path} that cannot be read is refused at once."""
        with self.assertRaises(ValueError) as caught:
            parse_modify_spec("|~q|X|@/no/such/file", False)
        self.assertEqual(str(caught.exception), "cannot read '/no/such/file': No such file or directory")

    def test_regex_checked_only_for_bodies(self) -> None:
        """A header name is not a regex; a body rule's subject is."""
        parse_modify_spec("/~q/[/x", False)
        self.assertRaises(ValueError, parse_modify_spec, "/~q/[/x", True)


class ModifyHeadersTests(SynchronousTestCase):
    """The addon on flows built by hand."""

    def setUp(self) -> None:
        self.master = Master(default_options(), shutdown=lambda: None)
        self.addon = ModifyHeaders()
        self.master.addons.add(self.addon)

    def test_request_and_response(self) -> None:
        """Requests are changed in requestheaders, responses in responseheaders, each by the rules that match."""
        self.master.options.set("modify_headers=/~q/X-Req/1", "modify_headers=/~s/X-Resp/2")
        request = live(request_flow())
        self.addon.requestheaders(request)
        self.assertEqual((request.request.headers.get("x-req"), request.request.headers.get("x-resp")), ("1", None))
        response = live(response_flow())
        self.addon.responseheaders(response)
        self.assertEqual((response.response.headers.get("x-req"), response.response.headers.get("x-resp")), (None, "2"))

    def test_replace_and_remove(self) -> None:
        """A value replaces every field of the name; an empty value removes them."""
        self.master.options.set("modify_headers=/Header/new", "modify_headers=/Content-Length/")
        flow = live(request_flow())
        self.addon.requestheaders(flow)
        self.assertEqual(flow.request.headers.fields, ((b"Header", b"new"),))

    def test_several_values(self) -> None:
        """Two rules for one name give two fields, in rule order."""
        self.master.options.set("modify_headers=/X/a", "modify_headers=/X/b")
        flow = live(request_flow())
        self.addon.requestheaders(flow)
        self.assertEqual(flow.request.headers.get_all("x"), ["a", "b"])

    def test_filters_see_the_unchanged_flow(self) -> None:
        """Every filter is checked before any rule changes the headers."""
        self.master.options.set("modify_headers=/Header/", "modify_headers=/~h Header/X-Had-Header/yes")
        flow = live(request_flow())
        self.addon.requestheaders(flow)
        self.assertEqual(flow.request.headers.get("x-had-header"), "yes")

    def test_answered_or_finished_flows_untouched(self) -> None:
        """A request already answered, a failed flow or a flow not live is left alone."""
        self.master.options.set("modify_headers=/X/a")
        answered = live(response_flow())
        self.addon.requestheaders(answered)
        finished = response_flow()
        self.addon.responseheaders(finished)
        self.assertEqual((answered.request.headers.get("x"), finished.response.headers.get("x")), (None, None))

    def test_file_read_each_time(self) -> None:
        """An C{@path} value is read whenever it applies; once the file is gone, a warning and no change."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("one")
        self.master.options.set(f"modify_headers=|X|@{path}")
        with open(path, "w") as f:
            f.write("two")
        flow = live(request_flow())
        self.addon.requestheaders(flow)
        self.assertEqual(flow.request.headers.get("x"), "two")
        os.remove(path)
        flow = live(request_flow())
        with capturedLogs() as events:
            self.addon.requestheaders(flow)
        self.assertEqual(flow.request.headers.get("x"), None)
        self.assertEqual([formatEvent(e) for e in events], [f"modify_headers: cannot read {path}: No such file or directory"])

    def test_bad_rule_refused(self) -> None:
        """A bad rule is an OptionsError naming the option and the rule; the rules in force stay."""
        self.master.options.set("modify_headers=/X/a")
        with self.assertRaises(OptionsError) as caught:
            self.master.options.set("modify_headers=/~bad/X/a")
        self.assertIn("modify_headers: cannot parse '/~bad/X/a': ", str(caught.exception))
        self.assertEqual(len(self.addon.replacements), 1)


class LoopbackTests(TestCase):
    """C{modify_headers} with curl through the proxy."""

    async def test_request_and_response_headers(self) -> None:
        """The origin sees the request rule's header and not the removed one; curl sees the response rule's."""
        origin = start_raw_origin(self, respond(200, b"ok", [("X-Origin", "1")]))
        proxy = start_proxy(self, options=["modify_headers=/~q/X-Added/yes", "modify_headers=/~q/User-Agent/", "modify_headers=/~s/X-Origin/changed"])
        out, err, code = await curl("-i", "-x", proxy.url, origin.url + "/")
        self.assertEqual(code, 0, err)
        request = origin.requests[0].lower()
        self.assertIn(b"\r\nx-added: yes\r\n", request)
        self.assertNotIn(b"user-agent", request)
        self.assertIn(b"\r\nX-Origin: changed\r\n", out)

    async def test_streamed_response(self) -> None:
        """Rules apply in responseheaders, so a streamed response gets them too."""
        origin = start_raw_origin(self, respond(200, b"x" * 4096))
        proxy = start_proxy(self, options=["stream_large_bodies=1k", "modify_headers=/~s/X-Streamed/yes"])
        out, err, code = await curl("-i", "-x", proxy.url, origin.url + "/")
        self.assertEqual(code, 0, err)
        self.assertIn(b"\r\nX-Streamed: yes\r\n", out)
        self.assertTrue(out.endswith(b"\r\n\r\n" + b"x" * 4096))

# -*- test-case-name: tests.test_flowlog -*-
"""Tests for L{twisted_mitm.addons.flowlog}: mitmdump's output at each C{flow_detail}.

Flows are built from the real models and handed to the addon's hooks; what it logs is
captured and compared whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from tests.flows import request_flow, response_flow, tcp_flow, websocket_flow
from twisted_mitm.addons.flowlog import FlowLog, format_address, hexdump, pretty_size
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.flow import Error
from twisted_mitm.http import Headers
from twisted_mitm.master import Master
from twisted_mitm.options import default_options
from twisted_mitm.websocket import Opcode, WebSocketMessage

REQUEST_LINE = "127.0.0.1:22: POST http://address:22/path"
REQUEST_HEADERS = "    Header: qvalue\n    Content-Length: 7"
RESPONSE_HEADERS = "    Header-Response: svalue\n    Content-Length: 7"


class _FlowLogCase(SynchronousTestCase):
    """Runs a L{FlowLog} with options and collects the text of what it logs."""

    def setUp(self) -> None:
        self.master = Master(default_options(), shutdown=lambda: None)
        self.addon = FlowLog()
        self.master.addons.add(self.addon)

    def logged(self, hook: Callable[[Any], None], flow: Any, *options: str) -> list[tuple[str, str]]:
        """C{(level, text)} of each event C{hook(flow)} logs with these C{--set} options."""
        self.master.options.set(*options)
        with capturedLogs() as events:
            hook(flow)
        return [(event["log_level"].name, formatEvent(event)) for event in events if event["log_namespace"] == "twisted_mitm.addons.flowlog"]

    def texts(self, hook: Callable[[Any], None], flow: Any, *options: str) -> list[str]:
        """The text of each event only."""
        return [text for _, text in self.logged(hook, flow, *options)]


class HTTPDetailTests(_FlowLogCase):
    """What each flow_detail level logs for an HTTP flow."""

    def test_level_0(self) -> None:
        """Nothing for a completed flow; a failed one is still logged, as a warning."""
        self.assertEqual(self.logged(self.addon.response, response_flow(), "flow_detail=0"), [])
        flow = request_flow()
        flow.error = Error("connection lost")
        self.assertEqual(self.logged(self.addon.error, flow), [("warn", f"{REQUEST_LINE} << error: connection lost")])

    def test_level_1(self) -> None:
        """One line: client, method, URL, status, reason and response size."""
        self.assertEqual(self.texts(self.addon.response, response_flow()), [f"{REQUEST_LINE} << 200 OK 7b"])

    def test_level_2(self) -> None:
        """The request line and headers, then the response line and headers."""
        expected = f"{REQUEST_LINE}\n{REQUEST_HEADERS}\n << 200 OK 7b\n{RESPONSE_HEADERS}"
        self.assertEqual(self.texts(self.addon.response, response_flow(), "flow_detail=2"), [expected])

    def test_level_3(self) -> None:
        """Bodies follow the headers between blank lines."""
        expected = (
            f"{REQUEST_LINE}\n{REQUEST_HEADERS}\n\n    content\n\n << 200 OK 7b\n{RESPONSE_HEADERS}\n\n    message"
        )
        self.assertEqual(self.texts(self.addon.response, response_flow(), "flow_detail=3"), [expected])

    def test_level_3_cuts_long_bodies(self) -> None:
        """Text beyond content_view_lines_cutoff lines is cut, and said to be."""
        flow = response_flow()
        flow.response.set_content(b"one\ntwo\nthree\n")
        [text] = self.texts(self.addon.response, flow, "flow_detail=3", "content_view_lines_cutoff=2")
        self.assertTrue(text.endswith("\n    one\n    two\n    (cut off)"), text)
        [text] = self.texts(self.addon.response, flow, "flow_detail=4")
        self.assertTrue(text.endswith("\n    one\n    two\n    three"), text)

    def test_binary_bodies(self) -> None:
        """A binary body is summarised at level 3 and dumped in hex at level 4."""
        flow = response_flow()
        flow.response.set_content(bytes(range(20)))
        [text] = self.texts(self.addon.response, flow, "flow_detail=3")
        self.assertTrue(text.endswith("\n\n    (binary content: 20b)"), text)
        [text] = self.texts(self.addon.response, flow, "flow_detail=4")
        self.assertTrue(text.endswith("\n\n    " + "\n    ".join(hexdump(bytes(range(20))))), text)

    def test_streamed_and_missing_bodies(self) -> None:
        """A streamed body is marked with its size in transit; a missing one is said to be."""
        flow = response_flow()
        flow.response.stream = True
        flow.response.raw_content = b""
        flow.metadata["response_body_size"] = 3 * 1024 * 1024
        [text] = self.texts(self.addon.response, flow, "flow_detail=3")
        self.assertIn(" << 200 OK 3.0m (streamed)\n", text)
        self.assertTrue(text.endswith("\n\n    (streamed, not recorded: 3.0m)"), text)
        flow.request.raw_content = None
        [text] = self.texts(self.addon.response, flow, "flow_detail=3")
        self.assertIn(f"{REQUEST_HEADERS}\n\n    (content missing)\n\n << ", text)

    def test_trailers_and_escapes(self) -> None:
        """Trailers follow the body; control characters in headers and URLs are escaped."""
        flow = response_flow()
        flow.response.trailers = Headers([(b"Checksum", b"a\x00b")])
        flow.request.path = "/p\x1bath"
        [text] = self.texts(self.addon.response, flow, "flow_detail=2")
        self.assertTrue(text.startswith("127.0.0.1:22: POST http://address:22/p.ath\n"), text)
        self.assertTrue(text.endswith(f"{RESPONSE_HEADERS}\n    --- HTTP Trailers\n    Checksum: a\\x00b"), text)

    def test_versions_and_replays(self) -> None:
        """HTTP versions show when the two sides differ; replayed parts say so."""
        flow = response_flow()
        flow.response.http_version = "HTTP/1.0"
        flow.is_replay = "response"
        self.assertEqual(
            self.texts(self.addon.response, flow),
            [f"{REQUEST_LINE} HTTP/1.1 [replay] << HTTP/1.0 200 OK 7b"],
        )
        flow.is_replay = "request"
        self.assertEqual(self.texts(self.addon.response, flow)[0][:30], "[replay]: POST http://address:")

    def test_error_details(self) -> None:
        """At level 2 a failed flow's request headers come before the error."""
        flow = request_flow()
        flow.error = Error("timed out")
        self.assertEqual(
            self.texts(self.addon.error, flow, "flow_detail=2"),
            [f"{REQUEST_LINE}\n{REQUEST_HEADERS}\n << error: timed out"],
        )


class FilterTests(_FlowLogCase):
    """dumper_filter limits what is logged, errors included."""

    def test_filter(self) -> None:
        """Only matching flows are logged; unsetting the filter shows all again."""
        flow = response_flow()
        self.assertEqual(self.texts(self.addon.response, flow, "dumper_filter=~m GET"), [])
        self.assertEqual(len(self.texts(self.addon.response, flow, "dumper_filter=~m POST & ~c 200")), 1)
        failed = request_flow()
        failed.error = Error("reset")
        self.assertEqual(self.texts(self.addon.error, failed, "dumper_filter=~s"), [])
        self.assertEqual(len(self.texts(self.addon.error, failed, "dumper_filter=")), 1)

    def test_bad_filter_is_refused(self) -> None:
        """A bad filter is refused naming the option, and the previous one stays."""
        self.master.options.set("dumper_filter=~q")
        with self.assertRaises(OptionsError) as caught:
            self.master.options.set("dumper_filter=~q &&& (")
        self.assertIn("dumper_filter: Invalid filter expression: '~q &&& ('", str(caught.exception))
        self.assertEqual(self.master.options.dumper_filter, "~q")
        self.assertEqual(self.texts(self.addon.response, response_flow()), [])


class MessageFlowTests(_FlowLogCase):
    """WebSocket and TCP messages get one line each, with their content from level 3."""

    def test_websocket_messages(self) -> None:
        """Each message is a line naming its direction and kind; level 3 adds the content."""
        flow = websocket_flow()
        self.assertEqual(
            self.texts(self.addon.websocket_message, flow),
            ["127.0.0.1:22 <- WebSocket binary message <- address:22/ws"],
        )
        flow.websocket.messages.append(WebSocketMessage(Opcode.TEXT, True, b"hi\nthere"))
        self.assertEqual(
            self.texts(self.addon.websocket_message, flow, "flow_detail=3"),
            ["127.0.0.1:22 -> WebSocket text message -> address:22/ws\n\n    hi\n    there"],
        )

    def test_websocket_end(self) -> None:
        """A normal close is a line at level 1; an abnormal one a warning at any level."""
        flow = websocket_flow()
        flow.websocket.close_code, flow.websocket.close_reason, flow.websocket.closed_by_client = 1000, "bye", True
        self.assertEqual(self.logged(self.addon.websocket_end, flow), [("info", "WebSocket connection closed by client: 1000 bye")])
        self.assertEqual(self.logged(self.addon.websocket_end, flow, "flow_detail=0"), [])
        flow.websocket.close_code, flow.websocket.close_reason = 1009, "too big"
        self.assertEqual(
            self.logged(self.addon.websocket_end, flow),
            [("warn", "Error in WebSocket connection to address:22: WebSocket Error: MESSAGE_TOO_BIG (reason: too big)")],
        )

    def test_tcp(self) -> None:
        """Each chunk is a line, binary content summarised at level 3; the end and errors too."""
        flow = tcp_flow()
        self.assertEqual(self.texts(self.addon.tcp_message, flow), ["127.0.0.1:22 <- tcp <- address:22"])
        flow.messages[-1].content = b"\x00\x01\x02\x03"
        self.assertEqual(
            self.texts(self.addon.tcp_message, flow, "flow_detail=3"),
            ["127.0.0.1:22 <- tcp <- address:22\n\n    (binary content: 4b)"],
        )
        self.assertEqual(self.texts(self.addon.tcp_end, flow), ["127.0.0.1:22: TCP address:22 2 messages"])
        flow.error = Error("reset")
        self.assertEqual(self.logged(self.addon.tcp_error, flow, "flow_detail=0"), [("warn", "127.0.0.1:22: TCP address:22 << error: reset")])
        self.assertEqual(self.texts(self.addon.tcp_message, flow, "dumper_filter=~http"), [])


class FormattingTests(SynchronousTestCase):
    """Sizes, addresses and hex dumps as mitmdump prints them."""

    def test_pretty_size(self) -> None:
        """At most five characters: bytes, then one decimal below 100, none above."""
        sizes = {0: "0b", 1023: "1023b", 1024: "1.0k", 1536: "1.5k", 102300: "99.9k", 153600: "150k", 3 * 1024**2: "3.0m", 5 * 1024**4: "5.0t"}
        self.assertEqual({size: pretty_size(size) for size in sizes}, sizes)

    def test_format_address(self) -> None:
        """IPv6 in brackets, IPv4-mapped as IPv4, the unspecified address as *, names as they are."""
        addresses = {
            ("127.0.0.1", 80): "127.0.0.1:80",
            ("::1", 80): "[::1]:80",
            ("::ffff:10.0.0.1", 80): "10.0.0.1:80",
            ("::", 80): "*:80",
            ("example.com", 443): "example.com:443",
        }
        self.assertEqual({address: format_address(address) for address in addresses}, addresses)
        self.assertEqual(format_address(None), "<no address>")

    def test_hexdump(self) -> None:
        """Offset, sixteen bytes in hex, the printable ones as text."""
        self.assertEqual(
            list(hexdump(b"hello\x00world, this is it")),
            [
                "00000000  68 65 6c 6c 6f 00 77 6f 72 6c 64 2c 20 74 68 69  hello.world, thi",
                "00000010  73 20 69 73 20 69 74                             s is it",
            ],
        )

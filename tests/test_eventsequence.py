# -*- test-case-name: tests.test_eventsequence -*-
"""Tests for L{twisted_mitm.eventsequence}: the hooks of a finished flow, in order."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.test_flow import make_connections, make_http_flow
from twisted_mitm import eventsequence
from twisted_mitm.flow import Error, Flow
from twisted_mitm.tcp import TCPFlow, TCPMessage
from twisted_mitm.websocket import WebSocketData, WebSocketMessage


def hook_names(flow: Flow) -> list[str]:
    return [hook.name for hook in eventsequence.iterate(flow)]


class SequenceTests(SynchronousTestCase):
    """Each kind of flow gets the hooks it would have got live."""

    def test_http_with_response(self) -> None:
        """Request and response hooks, in wire order."""
        self.assertEqual(hook_names(make_http_flow()), ["requestheaders", "request", "responseheaders", "response"])

    def test_http_with_error(self) -> None:
        """A flow without a response ends with error."""
        flow = make_http_flow()
        flow.response = None
        flow.error = Error("refused")
        self.assertEqual(hook_names(flow), ["requestheaders", "request", "error"])

    def test_websocket(self) -> None:
        """After the upgrade, each message is last in the list when its hook runs."""
        flow = make_http_flow()
        flow.error = Error("ignored: a WebSocket flow ends with websocket_end")
        flow.websocket = WebSocketData(messages=[WebSocketMessage(1, True, b"a"), WebSocketMessage(2, False, b"b")])
        seen = []
        for hook in eventsequence.iterate(flow):
            seen.append((hook.name, [m.content for m in flow.websocket.messages]))
        self.assertEqual(seen, [
            ("requestheaders", [b"a", b"b"]), ("request", [b"a", b"b"]),
            ("responseheaders", [b"a", b"b"]), ("response", [b"a", b"b"]),
            ("websocket_start", []), ("websocket_message", [b"a"]), ("websocket_message", [b"a", b"b"]),
            ("websocket_end", [b"a", b"b"]),
        ])

    def test_tcp(self) -> None:
        """tcp_start, one tcp_message per message (each last in the list), then tcp_end or tcp_error."""
        flow = TCPFlow(*make_connections())
        flow.messages = [TCPMessage(True, b"1"), TCPMessage(False, b"2")]
        seen = [(hook.name, len(flow.messages)) for hook in eventsequence.iterate(flow)]
        self.assertEqual(seen, [("tcp_start", 0), ("tcp_message", 1), ("tcp_message", 2), ("tcp_end", 2)])
        flow.error = Error("reset")
        self.assertEqual(hook_names(flow)[-1], "tcp_error")

    def test_unknown_flow(self) -> None:
        """A flow of another kind is a TypeError."""

        class OtherFlow(Flow):
            type = "other"

        self.addCleanup(Flow._types.pop, "other")
        self.assertRaises(TypeError, eventsequence.iterate, OtherFlow(*make_connections()))

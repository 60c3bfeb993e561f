# -*- test-case-name: tests.test_clientside -*-
"""The client-facing protocol in memory: timeouts, refusals and pipelining order."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.http import HTTPFlow, Response
from twisted_mitm.master import Master
from twisted_mitm.options import default_options
from twisted_mitm.proxy.clientside import ClientSideProtocol
from twisted_mitm.proxy.context import ProxyContext


class _Answerer:
    """Answers every request from requestheaders, when the test fires the Deferred for it."""

    def __init__(self) -> None:
        self.pending: list[tuple[HTTPFlow, Deferred[None]]] = []

    def requestheaders(self, flow: HTTPFlow) -> Deferred[None]:
        waiting: Deferred[None] = Deferred()
        self.pending.append((flow, waiting))
        return waiting

    def answer(self, index: int) -> None:
        flow, waiting = self.pending[index]
        flow.response = Response.make(200, flow.request.path.encode())
        waiting.callback(None)


def connect(*addons: Any, options: tuple[str, ...] = ()) -> tuple[ClientSideProtocol, StringTransport, MemoryReactorClock]:
    """A ClientSideProtocol on a StringTransport, with a fake clock and these addons."""
    registry = default_options()
    registry.set(*options)
    master = Master(registry, shutdown=lambda: None)
    for addon in addons:
        master.addons.add(addon)
    clock = MemoryReactorClock()
    protocol = ClientSideProtocol(ProxyContext(master, clock))
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, clock


def status(transport: StringTransport) -> int:
    """The status code of the first response written."""
    return int(transport.value().split(b" ", 2)[1])


class TimeoutTests(SynchronousTestCase):
    """Idle connections and slow heads cannot hold a connection forever."""

    def test_idle_connection_closed(self) -> None:
        """A connection that sends nothing is closed after connection_idle_timeout, without an answer."""
        _, transport, clock = connect(options=("connection_idle_timeout=5",))
        clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.2)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")

    def test_slow_head_gets_408(self) -> None:
        """A request head still incomplete after the timeout gets 408 and the connection closes."""
        protocol, transport, clock = connect(options=("connection_idle_timeout=5",))
        protocol.dataReceived(b"GET http://example.com/ HTTP/1.1\r\nHost: exa")
        clock.advance(5)
        self.assertEqual(status(transport), 408)
        self.assertTrue(transport.disconnecting)

    def test_zero_disables(self) -> None:
        """connection_idle_timeout=0 never closes an idle connection."""
        _, transport, clock = connect(options=("connection_idle_timeout=0",))
        clock.advance(10_000)
        self.assertFalse(transport.disconnecting)

    def test_not_while_answering(self) -> None:
        """The idle timer does not cut a connection whose request is being handled, and restarts after it."""
        answerer = _Answerer()
        protocol, transport, clock = connect(answerer, options=("connection_idle_timeout=5",))
        protocol.dataReceived(b"GET http://example.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n")
        clock.advance(10)
        self.assertFalse(transport.disconnecting)
        answerer.answer(0)
        self.assertEqual(status(transport), 200)
        clock.advance(5)
        self.assertTrue(transport.disconnecting)


class RefusalTests(SynchronousTestCase):
    """Requests answered with an error by the client side itself."""

    def test_malformed_400(self) -> None:
        """A malformed request line gets 400 with a readable body, then the connection closes."""
        protocol, transport, _ = connect()
        protocol.dataReceived(b"GET\r\n\r\n")
        self.assertEqual(status(transport), 400)
        self.assertIn(b"twisted_mitm: ", transport.value())
        self.assertTrue(transport.disconnecting)

    def test_huge_head_431(self) -> None:
        """A head over the size limit gets 431 even before it ends."""
        protocol, transport, _ = connect()
        protocol.dataReceived(b"GET http://example.com/ HTTP/1.1\r\n" + b"X: " + b"a" * 200_000)
        self.assertEqual(status(transport), 431)
        self.assertTrue(transport.disconnecting)

    def test_origin_form_400(self) -> None:
        """A path-only target on the proxy's own port gets 400."""
        protocol, transport, _ = connect()
        protocol.dataReceived(b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n")
        self.assertEqual(status(transport), 400)

    def test_ambiguous_length_400(self) -> None:
        """Content-Length together with Transfer-Encoding gets 400, and no flow is started."""
        answerer = _Answerer()
        protocol, transport, _ = connect(answerer)
        protocol.dataReceived(b"POST http://e/ HTTP/1.1\r\nHost: e\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.assertEqual(status(transport), 400)
        self.assertEqual(answerer.pending, [])


class PipeliningTests(SynchronousTestCase):
    """Pipelined requests are handled one at a time, answered in order."""

    def test_second_waits_for_first(self) -> None:
        """A second pipelined request is not even looked at until the first is answered."""
        answerer = _Answerer()
        protocol, transport, _ = connect(answerer)
        request = b"GET http://example.com/%s HTTP/1.1\r\nHost: example.com\r\n\r\n"
        protocol.dataReceived(request % b"first" + request % b"second")
        self.assertEqual(len(answerer.pending), 1)
        self.assertEqual(transport.value(), b"")
        answerer.answer(0)
        self.assertEqual(len(answerer.pending), 2)
        answerer.answer(1)
        responses = transport.value().split(b"HTTP/1.1 200 OK")[1:]
        self.assertEqual([response.rsplit(b"\r\n\r\n", 1)[1] for response in responses], [b"/first", b"/second"])
        self.assertFalse(transport.disconnecting)

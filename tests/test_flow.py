"""Tests for L{twisted_mitm.flow}, L{twisted_mitm.connection}, L{twisted_mitm.tcp} and
L{twisted_mitm.websocket}."""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.connection import Client, Server
from twisted_mitm.exceptions import ControlException
from twisted_mitm.flow import Error, Flow
from twisted_mitm.tcp import TCPFlow, TCPMessage
from twisted_mitm.websocket import Opcode, WebSocketData, WebSocketMessage


def make_connections() -> tuple[Client, Server]:
    """A client from 127.0.0.1:5000 and a server record for example.com:443."""
    return Client(("127.0.0.1", 5000), ("127.0.0.1", 8080), 1.0), Server(("example.com", 443))


class ConnectionTests(SynchronousTestCase):
    """L{Client} and L{Server} records."""

    def test_client(self) -> None:
        """A client has a uuid, its peername as address, and no TLS yet."""
        client, _ = make_connections()
        self.assertEqual(len(client.id), 36)
        self.assertEqual(client.address, ("127.0.0.1", 5000))
        self.assertEqual(client.sockname, ("127.0.0.1", 8080))
        self.assertEqual(client.timestamp_start, 1.0)
        self.assertFalse(client.tls_established)
        self.assertIsNone(client.sni)

    def test_ids_differ(self) -> None:
        """Each connection gets its own id, and records compare by identity."""
        first, _ = make_connections()
        second, _ = make_connections()
        self.assertNotEqual(first.id, second.id)
        self.assertNotEqual(first, second)
        self.assertEqual(len({first, second}), 2)

    def test_server(self) -> None:
        """A server record starts with only its address; the proxy fills in the rest."""
        _, server = make_connections()
        self.assertEqual(server.address, ("example.com", 443))
        self.assertIsNone(server.peername)
        self.assertIsNone(server.timestamp_start)
        server.peername = ("93.184.216.34", 443)
        server.sni = "example.com"
        self.assertEqual(server.peername, ("93.184.216.34", 443))

    def test_tls_established(self) -> None:
        """tls_established follows timestamp_tls_setup, and setting it stamps or clears it."""
        client, _ = make_connections()
        client.tls_established = True
        self.assertIsNotNone(client.timestamp_tls_setup)
        self.assertTrue(client.tls_established)
        client.tls_established = False
        self.assertIsNone(client.timestamp_tls_setup)


class ErrorTests(SynchronousTestCase):
    """L{Error}."""

    def test_error(self) -> None:
        """An error shows as its message and is timestamped at creation."""
        error = Error("timeout", 5.0)
        self.assertEqual(str(error), "timeout")
        self.assertEqual(repr(error), "timeout")
        self.assertEqual(error.timestamp, 5.0)
        self.assertGreater(Error("x").timestamp, 0)
        self.assertEqual(Error.KILLED_MESSAGE, "Connection killed.")


class FlowTests(SynchronousTestCase):
    """L{Flow} identity, metadata and killing."""

    def test_fields(self) -> None:
        """A new flow has an id, empty metadata, no error, and the client's start time."""
        client, server = make_connections()
        flow = Flow(client, server, live=True)
        self.assertEqual(len(flow.id), 36)
        self.assertEqual(flow.metadata, {})
        self.assertIsNone(flow.error)
        self.assertIs(flow.client_conn, client)
        self.assertIs(flow.server_conn, server)
        self.assertEqual(flow.timestamp_start, 1.0)
        self.assertGreater(flow.timestamp_created, 0)

    def test_kill_calls_back(self) -> None:
        """kill() records the killed error, ends liveness and calls the proxy's callback once."""
        flow = Flow(*make_connections(), live=True)
        calls: list[str] = []
        flow.on_kill = lambda: calls.append("killed")
        self.assertTrue(flow.killable)
        flow.kill()
        self.assertEqual(calls, ["killed"])
        self.assertEqual(flow.error.msg, Error.KILLED_MESSAGE)  # type: ignore[union-attr]
        self.assertFalse(flow.live)
        self.assertFalse(flow.killable)

    def test_kill_without_callback(self) -> None:
        """A live flow can be killed before the proxy registers a callback."""
        flow = Flow(*make_connections(), live=True)
        flow.kill()
        self.assertEqual(str(flow.error), Error.KILLED_MESSAGE)

    def test_not_killable(self) -> None:
        """Killing a flow that is not live, or twice, raises and does not call back."""
        flow = Flow(*make_connections())
        calls: list[str] = []
        flow.on_kill = lambda: calls.append("killed")
        self.assertFalse(flow.killable)
        self.assertRaises(ControlException, flow.kill)
        flow.live = True
        flow.kill()
        self.assertRaises(ControlException, flow.kill)
        self.assertEqual(calls, ["killed"])


class InterceptTests(SynchronousTestCase):
    """L{Flow.intercept}, L{Flow.resume} and waiting for the resume."""

    def test_intercept_and_resume(self) -> None:
        """intercept() holds the flow until resume(); what waited is released once."""
        flow = Flow(*make_connections(), live=True)
        self.assertEqual((flow.intercepted, flow.marked), (False, ""))
        self.assertIsNone(self.successResultOf(flow.resumed()))
        flow.intercept()
        flow.intercept()
        waiting = flow.resumed()
        self.assertNoResult(waiting)
        flow.resume()
        self.assertFalse(flow.intercepted)
        self.assertIsNone(self.successResultOf(waiting))
        flow.resume()

    def test_kill_releases(self) -> None:
        """Killing an intercepted flow releases it, killed."""
        flow = Flow(*make_connections(), live=True)
        flow.intercept()
        waiting = flow.resumed()
        flow.kill()
        self.assertFalse(flow.intercepted)
        self.successResultOf(waiting)
        self.assertEqual(str(flow.error), Error.KILLED_MESSAGE)

    def test_wait_for_resume(self) -> None:
        """wait_for_resume() is a coroutine that ends when the flow is resumed (at once if not intercepted)."""
        flow = Flow(*make_connections(), live=True)
        self.successResultOf(Deferred.fromCoroutine(flow.wait_for_resume()))
        flow.intercept()
        waiting = Deferred.fromCoroutine(flow.wait_for_resume())
        self.assertNoResult(waiting)
        flow.resume()
        self.successResultOf(waiting)

    def test_cancelled_waiter(self) -> None:
        """A waiter cancelled before the resume does not break the resume of the others."""
        flow = Flow(*make_connections(), live=True)
        flow.intercept()
        cancelled, kept = flow.resumed(), flow.resumed()
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        flow.resume()
        self.successResultOf(kept)


class TCPTests(SynchronousTestCase):
    """L{TCPFlow} and L{TCPMessage}."""

    def test_flow(self) -> None:
        """A TCP flow is of type tcp and collects messages in order."""
        flow = TCPFlow(*make_connections(), live=True)
        self.assertEqual(flow.type, "tcp")
        flow.messages.append(TCPMessage(True, b"ping", 2.0))
        flow.messages.append(TCPMessage(False, b"pong"))
        self.assertEqual([m.content for m in flow.messages], [b"ping", b"pong"])
        self.assertEqual(flow.messages[0].timestamp, 2.0)
        self.assertGreater(flow.messages[1].timestamp, 0)
        self.assertEqual(repr(flow.messages[0]), "-> b'ping'")
        self.assertEqual(repr(flow), "<TCPFlow (2 messages)>")


class WebSocketTests(SynchronousTestCase):
    """L{WebSocketMessage} and L{WebSocketData}."""

    def test_text_message(self) -> None:
        """A text message reads and writes its content as UTF-8 text."""
        message = WebSocketMessage(Opcode.TEXT, True, "héllo".encode())
        self.assertTrue(message.is_text)
        self.assertEqual(message.text, "héllo")
        message.text = "bye €"
        self.assertEqual(message.content, "bye €".encode())
        self.assertGreater(message.timestamp, 0)

    def test_type_from_int(self) -> None:
        """The type accepts a plain opcode number and compares with Opcode members."""
        message = WebSocketMessage(2, False, b"\x00")
        self.assertEqual(message.type, Opcode.BINARY)
        self.assertIs(message.type, Opcode.BINARY)
        self.assertFalse(message.is_text)

    def test_binary_has_no_text(self) -> None:
        """A binary message has no text attribute to read or write."""
        message = WebSocketMessage(Opcode.BINARY, False, b"\xff")
        self.assertRaises(AttributeError, lambda: message.text)
        with self.assertRaises(AttributeError):
            message.text = "x"

    def test_drop(self) -> None:
        """drop() marks the message as not forwarded."""
        message = WebSocketMessage(Opcode.TEXT, True, b"x")
        self.assertFalse(message.dropped)
        message.drop()
        self.assertTrue(message.dropped)

    def test_data(self) -> None:
        """WebSocket data starts open and empty; the relay fills in the close details."""
        data = WebSocketData()
        self.assertEqual(data.messages, [])
        self.assertIsNone(data.closed_by_client)
        data.messages.append(WebSocketMessage(Opcode.TEXT, True, b"x"))
        data.closed_by_client, data.close_code, data.close_reason = True, 1000, "bye"
        self.assertEqual(repr(data), "<WebSocketData (1 messages)>")
        self.assertIsNot(WebSocketData().messages, data.messages)

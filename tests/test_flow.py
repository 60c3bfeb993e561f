# -*- test-case-name: tests.test_flow -*-
"""Tests for L{twisted_mitm.flow}, L{twisted_mitm.connection}, L{twisted_mitm.tcp} and
L{twisted_mitm.websocket}."""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase

from tests.test_certs import make_ca
from twisted_mitm.certs import Cert
from twisted_mitm.connection import Client, Server
from twisted_mitm.exceptions import ControlException
from twisted_mitm.flow import Error, Flow
from twisted_mitm.http import HTTPFlow, Request, Response
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


def make_http_flow() -> HTTPFlow:
    """A finished GET to example.com with a 200 response."""
    client, server = make_connections()
    flow = HTTPFlow(client, server, live=True)
    flow.request = Request.make("GET", "https://example.com/path")
    flow.response = Response.make(200, b"body")
    return flow


class FlowStateTests(SynchronousTestCase):
    """Flow state, copies, backups and mitmproxy 12's user fields."""

    def test_user_fields(self) -> None:
        """marked, comment, is_replay and intercepted start as in mitmproxy 12 and are saved."""
        flow = make_http_flow()
        self.assertEqual((flow.marked, flow.comment, flow.is_replay, flow.intercepted), ("", "", None, False))
        flow.marked, flow.comment, flow.is_replay = ":default:", "look", "request"
        loaded = Flow.from_state(flow.get_state())
        self.assertEqual((loaded.marked, loaded.comment, loaded.is_replay), (":default:", "look", "request"))

    def test_from_state_picks_the_type(self) -> None:
        """from_state builds an HTTPFlow or a TCPFlow as the state says; loaded flows are not live."""
        tcp = TCPFlow(*make_connections(), live=True)
        tcp.messages.append(TCPMessage(True, b"x", 5.0))
        self.assertIsInstance(Flow.from_state(tcp.get_state()), TCPFlow)
        loaded = Flow.from_state(make_http_flow().get_state())
        self.assertIsInstance(loaded, HTTPFlow)
        self.assertFalse(loaded.live)

    def test_set_state_checks_type_and_version(self) -> None:
        """A state of another flow type or format version is refused with ValueError."""
        flow = make_http_flow()
        tcp_state = TCPFlow(*make_connections()).get_state()
        self.assertRaises(ValueError, flow.set_state, tcp_state)
        old = flow.get_state()
        old["version"] = 20
        self.assertRaises(ValueError, flow.set_state, old)

    def test_copy(self) -> None:
        """A copy has a new id, is not live, and changing it leaves the original alone."""
        flow = make_http_flow()
        duplicate = flow.copy()
        assert isinstance(duplicate, HTTPFlow)
        self.assertNotEqual(duplicate.id, flow.id)
        self.assertFalse(duplicate.live)
        self.assertEqual(duplicate.request.url, flow.request.url)
        duplicate.request.path = "/other"
        self.assertEqual(flow.request.path, "/path")
        self.assertEqual(duplicate.client_conn.id, flow.client_conn.id)

    def test_backup_and_revert(self) -> None:
        """modified() tells a change since backup(); revert() undoes it and drops the backup."""
        flow = make_http_flow()
        self.assertFalse(flow.modified())
        flow.backup()
        self.assertFalse(flow.modified())  # mitmproxy 12 says True here
        flow.request.path = "/changed"
        flow.response.status_code = 404
        self.assertTrue(flow.modified())
        flow.backup()  # an existing backup is kept
        flow.revert()
        self.assertEqual((flow.request.path, flow.response.status_code), ("/path", 200))
        self.assertFalse(flow.modified())
        self.assertIsNone(flow.get_state()["backup"])

    def test_backup_is_saved(self) -> None:
        """A backup travels in the state, so a loaded flow can still be reverted."""
        flow = make_http_flow()
        flow.backup()
        flow.request.path = "/changed"
        loaded = Flow.from_state(flow.get_state())
        self.assertTrue(loaded.modified())
        loaded.revert()
        assert isinstance(loaded, HTTPFlow)
        self.assertEqual(loaded.request.path, "/path")

    def test_kill_clears_interception(self) -> None:
        """Killing an intercepted flow leaves it not intercepted."""
        flow = make_http_flow()
        flow.intercepted = True
        flow.kill()
        self.assertFalse(flow.intercepted)


class MessageStateTests(SynchronousTestCase):
    """Requests, responses and messages save mitmproxy's state shapes."""

    def test_request_state(self) -> None:
        """A request's state is its raw fields; headers are byte pairs; it loads back equal."""
        request = Request.make("POST", "http://example.com:8080/x?y=1", b"data", {"X-A": "b"})
        state = request.get_state()
        self.assertEqual(state["headers"], ((b"X-A", b"b"), (b"content-length", b"4")))
        self.assertEqual((state["host"], state["port"], state["method"], state["path"]), ("example.com", 8080, b"POST", b"/x?y=1"))
        loaded = Request.from_state(state)
        self.assertEqual((loaded.url, loaded.raw_content, loaded.headers["x-a"]), (request.url, b"data", "b"))

    def test_response_set_state_and_copy(self) -> None:
        """set_state replaces a response's fields; copy() is independent."""
        response = Response.make(200, b"one")
        response.set_state(Response.make(404, b"two").get_state())
        self.assertEqual((response.status_code, response.content), (404, b"two"))
        duplicate = response.copy()
        duplicate.content = b"three"
        self.assertEqual(response.content, b"two")

    def test_bad_message_state(self) -> None:
        """A state with an unknown field is a ValueError."""
        state = Response.make(200).get_state()
        state["surprise"] = 1
        self.assertRaises(ValueError, Response.from_state, state)

    def test_message_tuples(self) -> None:
        """WebSocket and TCP messages save as mitmproxy's tuples and load back."""
        message = WebSocketMessage(Opcode.BINARY, False, b"\x00", 3.0, dropped=True, injected=True)
        self.assertEqual(message.get_state(), (2, False, b"\x00", 3.0, True, True))
        loaded = WebSocketMessage.from_state(list(message.get_state()))
        self.assertEqual((loaded.type, loaded.content, loaded.dropped, loaded.injected), (Opcode.BINARY, b"\x00", True, True))
        loaded.set_state((1, True, b"hi", 4.0, False, False))
        self.assertEqual((loaded.is_text, loaded.text), (True, "hi"))
        self.assertEqual(TCPMessage(True, b"x", 1.0).get_state(), (True, b"x", 1.0))
        self.assertEqual(TCPMessage.from_state([False, b"y", 2.0]).content, b"y")
        self.assertRaises(ValueError, TCPMessage.from_state, [True])


class ConnectionStateTests(SynchronousTestCase):
    """Connection records save exactly mitmproxy 12's fields."""

    CLIENT_FIELDS = [
        "peername", "sockname", "id", "transport_protocol", "error", "tls", "certificate_list", "alpn",
        "alpn_offers", "cipher", "cipher_list", "tls_version", "sni", "timestamp_start", "timestamp_end",
        "timestamp_tls_setup", "mitmcert", "proxy_mode",
    ]

    def test_client_fields(self) -> None:
        """A client's state has mitmproxy 12's fields, in its order."""
        client, _ = make_connections()
        self.assertEqual(list(client.get_state()), self.CLIENT_FIELDS)

    def test_server_fields(self) -> None:
        """A server's state has mitmproxy 12's fields, in its order."""
        _, server = make_connections()
        expected = [*self.CLIENT_FIELDS[:-2], "address", "timestamp_tcp_setup", "via"]
        self.assertEqual(list(server.get_state()), expected)

    def test_tls_established_sets_tls(self) -> None:
        """Recording a TLS handshake also records that the connection uses TLS."""
        client, _ = make_connections()
        self.assertFalse(client.tls)
        client.tls_established = True
        self.assertTrue(client.tls)
        self.assertTrue(client.get_state()["tls"])

    def test_certificates(self) -> None:
        """Certificates are saved as PEM and load back equal."""
        _, server = make_connections()
        server.certificate_list = [Cert(make_ca("State Test CA")[1])]
        state = server.get_state()
        self.assertTrue(state["certificate_list"][0].startswith(b"-----BEGIN CERTIFICATE-----"))
        loaded = Server.from_state(state)
        self.assertEqual(loaded.certificate_list, server.certificate_list)
        self.assertEqual(loaded.certificate_list[0].cn, "State Test CA")

# -*- test-case-name: tests.test_proxy -*-
"""The proxy end to end over loopback, plain HTTP: real origins, real clients.

Methods and bodies, header fidelity, keep-alive and connection reuse, pipelining and
message framing (SPEC §1, §7; issue 3 point 4). Errors are in L{tests.test_proxy_errors},
addons and the flow log in L{tests.test_proxy_addons}.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support import (
    HookRecorder,
    curl,
    echo_body,
    http_exchanges,
    raw_client,
    reactor,
    respond,
    start_body_origin,
    start_proxy,
    start_raw_origin,
)


def complete_responses(count: int) -> Any:
    """A predicate: C{count} responses with a Content-Length body have fully arrived."""

    def predicate(data: bytes) -> bool:
        seen, rest = 0, data
        while seen < count:
            head, found, rest = rest.partition(b"\r\n\r\n")
            if not found:
                return False
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return False
            rest = rest[length:]
            seen += 1
        return True

    return predicate


def echo_path(protocol: Any, head: bytes) -> None:
    """An origin handler answering with the request's method and target."""
    method, target = head.split(b" ")[:2]
    body = method + b" " + target
    protocol.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


class MethodsAndBodiesTests(TestCase):
    """Absolute-form requests of every common method, bodies byte-identical both ways."""

    async def test_curl_gets_origin_body(self) -> None:
        """curl -x through the proxy returns the origin's body unchanged."""
        origin = start_raw_origin(self, respond(200, b"hello from origin"))
        proxy = start_proxy(self)
        out, err, code = await curl("-x", proxy.url, origin.url + "/path?q=1")
        self.assertEqual((code, out), (0, b"hello from origin"), err)
        self.assertTrue(origin.requests[0].startswith(b"GET /path?q=1 HTTP/1.1\r\n"), origin.requests[0])

    async def test_post_and_put_bodies_round_trip(self) -> None:
        """POST and PUT bodies reach the origin unchanged, and its echo reaches the client unchanged."""
        origin = start_body_origin(self, echo_body)
        proxy = start_proxy(self)
        body = bytes(range(256)) * 64
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(body)
        for method in ("POST", "PUT"):
            out, err, code = await curl("-x", proxy.url, "-X", method, "--data-binary", "@" + path, origin.url + "/up")
            self.assertEqual((code, out), (0, body), err)
        self.assertEqual(origin.bodies, [body, body])
        self.assertEqual([head.split(b" ")[0] for head in origin.requests], [b"POST", b"PUT"])

    async def test_large_binary_body_is_identical(self) -> None:
        """A 5 MiB random binary body is buffered and relayed byte for byte, both ways."""
        origin = start_body_origin(self, echo_body)
        proxy = start_proxy(self)
        body = os.urandom(5 * 1024 * 1024)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(body)
        out, err, code = await curl("-x", proxy.url, "--data-binary", "@" + path, origin.url + "/big")
        self.assertEqual(code, 0, err)
        self.assertEqual(len(out), len(body))
        self.assertTrue(out == body, "response body differs")
        self.assertTrue(origin.bodies[0] == body, "request body differs")

    async def test_head_gets_headers_without_body(self) -> None:
        """HEAD is forwarded as HEAD and the client gets the origin's headers, no body."""
        origin = start_raw_origin(self, lambda p, h: p.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"))
        proxy = start_proxy(self)
        out, err, code = await curl("-x", proxy.url, "-I", origin.url + "/h")
        self.assertEqual(code, 0, err)
        self.assertIn(b"Content-Length: 1234", out)
        self.assertTrue(origin.requests[0].startswith(b"HEAD /h HTTP/1.1\r\n"))


class HeaderFidelityTests(TestCase):
    """Header case, order and duplicates survive both legs; proxy-only fields stay behind."""

    async def test_request_headers_kept_and_proxy_fields_dropped(self) -> None:
        """The origin sees the client's fields in order, case and multiplicity, minus Proxy-Connection/Proxy-Authorization."""
        origin = start_raw_origin(self, respond(200, b"ok"))
        proxy = start_proxy(self)
        client = await raw_client(self, proxy.port)
        client.send(
            b"GET http://127.0.0.1:%d/x HTTP/1.1\r\n"
            b"Host: 127.0.0.1:%d\r\n"
            b"X-MiXeD-Case: one\r\n"
            b"Proxy-Connection: keep-alive\r\n"
            b"x-dup: a\r\n"
            b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"
            b"X-Dup: b\r\n"
            b"x-dup: c\r\n"
            b"\r\n" % (origin.port, origin.port)
        )
        await client.receive_until(complete_responses(1))
        head = origin.requests[0]
        self.assertEqual(
            head.split(b"\r\n")[1:6],
            [b"Host: 127.0.0.1:%d" % origin.port, b"X-MiXeD-Case: one", b"x-dup: a", b"X-Dup: b", b"x-dup: c"],
        )
        self.assertNotIn(b"proxy-", head.lower())

    async def test_response_headers_kept(self) -> None:
        """The client sees the origin's response fields in order, case and multiplicity."""
        raw = b"HTTP/1.1 200 Fine Thanks\r\nSet-Cookie: a=1\r\nX-CaSe: v\r\nset-cookie: b=2\r\nContent-Length: 2\r\n\r\nok"
        origin = start_raw_origin(self, lambda p, h: p.transport.write(raw))
        proxy = start_proxy(self)
        client = await raw_client(self, proxy.port)
        client.send(b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % origin.port)
        data = await client.receive_until(complete_responses(1))
        self.assertEqual(data, raw)

    async def test_host_added_for_http10_client(self) -> None:
        """An HTTP/1.0 request without Host reaches the origin with a Host field naming the target."""
        origin = start_raw_origin(self, respond(200, b"ok"))
        proxy = start_proxy(self)
        client = await raw_client(self, proxy.port)
        client.send(b"GET http://127.0.0.1:%d/old HTTP/1.0\r\n\r\n" % origin.port)
        data = await client.wait_closed()
        self.assertTrue(data.endswith(b"\r\n\r\nok"), data)
        self.assertIn(b"\r\nHost: 127.0.0.1:%d\r\n" % origin.port, origin.requests[0])


class KeepAliveTests(TestCase):
    """Connections on both legs stay open while they can, and are reused."""

    async def test_upstream_reused_for_same_host(self) -> None:
        """Three requests on one client connection to one origin use one client and one server connection."""
        origin = start_raw_origin(self, echo_path)
        recorder = HookRecorder()
        proxy = start_proxy(self, addons=[recorder])
        results = await http_exchanges(proxy.port, [("GET", f"{origin.url}/{n}", None, {}) for n in range(3)])
        self.assertEqual([body for _, _, body in results], [b"GET /0", b"GET /1", b"GET /2"])
        self.assertEqual(len(origin.connections), 1)
        self.assertEqual(recorder.names("client_connected"), ["client_connected"])

    async def test_new_upstream_when_host_changes(self) -> None:
        """Asking another host:port opens a new server connection; the old one is closed."""
        first = start_raw_origin(self, respond(200, b"first"))
        second = start_raw_origin(self, respond(200, b"second"))
        proxy = start_proxy(self)
        urls = [first.url + "/", second.url + "/", first.url + "/"]
        results = await http_exchanges(proxy.port, [("GET", url, None, {}) for url in urls])
        self.assertEqual([body for _, _, body in results], [b"first", b"second", b"first"])
        self.assertEqual((len(first.connections), len(second.connections)), (2, 1))
        await deferLater(reactor, 0.05, lambda: None)
        self.assertIn(first.connections[0], first.lost)

    async def test_http10_client_without_keep_alive_is_closed(self) -> None:
        """An HTTP/1.0 client that did not ask for keep-alive gets its response, then the connection closes."""
        origin = start_raw_origin(self, respond(200, b"ok"))
        proxy = start_proxy(self)
        client = await raw_client(self, proxy.port)
        client.send(b"GET http://127.0.0.1:%d/ HTTP/1.0\r\n\r\n" % origin.port)
        data = await client.wait_closed()
        self.assertTrue(client.closed.called)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data)

    async def test_http10_client_with_keep_alive_stays_open(self) -> None:
        """An HTTP/1.0 client sending Connection: keep-alive can send a second request on the same connection."""
        origin = start_raw_origin(self, echo_path)
        proxy = start_proxy(self)
        client = await raw_client(self, proxy.port)
        request = b"GET http://127.0.0.1:%d/%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        client.send(request % (origin.port, 1))
        await client.receive_until(complete_responses(1))
        self.assertFalse(client.closed.called)
        client.send(request % (origin.port, 2))
        data = await client.receive_until(complete_responses(2))
        self.assertTrue(data.endswith(b"GET /2"), data)

    async def test_connection_close_honoured(self) -> None:
        """A client's Connection: close gets its response and then the proxy closes the connection."""
        origin = start_raw_origin(self, respond(200, b"bye"))
        proxy = start_proxy(self)
        client = await raw_client(self, proxy.port)
        client.send(b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % origin.port)
        data = await client.wait_closed()
        self.assertTrue(client.closed.called)
        self.assertTrue(data.endswith(b"\r\n\r\nbye"), data)

    async def test_pipelined_requests_answered_in_order(self) -> None:
        """Three requests sent at once are answered in order even when the first answer is slowest."""

        def handler(protocol: Any, head: bytes) -> None:
            delay = 0.2 if b"/slow " in head else 0
            reactor.callLater(delay, echo_path, protocol, head)

        origin = start_raw_origin(self, handler)
        proxy = start_proxy(self)
        client = await raw_client(self, proxy.port)
        request = b"GET http://127.0.0.1:%d/%s HTTP/1.1\r\nHost: x\r\n\r\n"
        client.send(b"".join(request % (origin.port, path) for path in (b"slow", b"b", b"c")))
        data = await client.receive_until(complete_responses(3))
        bodies = [part.split(b"\r\n\r\n")[1] for part in data.split(b"HTTP/1.1 200 OK")[1:]]
        self.assertEqual(bodies, [b"GET /slow", b"GET /b", b"GET /c"])


class FramingTests(TestCase):
    """RFC 9112 message framing on both legs."""

    async def test_chunked_response_with_trailers(self) -> None:
        """A chunked response with trailers reaches an HTTP/1.1 client chunked, with its trailers."""
        raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n"
        origin = start_raw_origin(self, lambda p, h: p.transport.write(raw))
        proxy = start_proxy(self)
        client = await raw_client(self, proxy.port)
        client.send(b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % origin.port)
        data = await client.receive_until(lambda d: d.endswith(b"\r\n\r\n") and b"X-Sum: 42" in d)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", head)
        self.assertNotIn(b"content-length", head.lower())
        self.assertEqual(body, b"b\r\nhello world\r\n0\r\nX-Sum: 42\r\n\r\n")

    async def test_chunked_request_with_trailers(self) -> None:
        """A chunked request with trailers reaches the origin chunked, with the same body and trailers."""
        origin = start_body_origin(self, respond(200, b"ok"))
        proxy = start_proxy(self)
        client = await raw_client(self, proxy.port)
        client.send(
            b"POST http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Check: yes\r\n\r\n" % origin.port
        )
        await client.receive_until(complete_responses(1))
        self.assertEqual(origin.bodies, [b"abcde"])
        received = b"".join(origin.received)
        self.assertIn(b"Transfer-Encoding: chunked", received)
        self.assertIn(b"\r\n0\r\nX-Check: yes\r\n\r\n", received)

    async def test_read_until_close_response(self) -> None:
        """An HTTP/1.0 origin that ends its body by closing still delivers the whole body, with a length."""

        def handler(protocol: Any, head: bytes) -> None:
            protocol.transport.write(b"HTTP/1.0 200 OK\r\nX-Old: yes\r\n\r\nuntil the end")
            protocol.transport.loseConnection()

        origin = start_raw_origin(self, handler)
        proxy = start_proxy(self)
        client = await raw_client(self, proxy.port)
        client.send(b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % origin.port)
        data = await client.receive_until(complete_responses(1))
        self.assertIn(b"\r\nContent-Length: 13\r\n", data)
        self.assertTrue(data.endswith(b"\r\n\r\nuntil the end"), data)

    async def test_no_body_for_head_204_304(self) -> None:
        """HEAD, 204 and 304 responses carry no body to the client even with a Content-Length, and the connection goes on."""
        answers = {
            b"HEAD": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            b"GET /204": b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
            b"GET /304": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            b"GET /end": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nend",
        }

        def handler(protocol: Any, head: bytes) -> None:
            for prefix, answer in answers.items():
                if head.startswith(prefix):
                    protocol.transport.write(answer)

        origin = start_raw_origin(self, handler)
        proxy = start_proxy(self)
        client = await raw_client(self, proxy.port)
        for request in (b"HEAD /h", b"GET /204", b"GET /304", b"GET /end"):
            method, path = request.split(b" ")
            client.send(b"%s http://127.0.0.1:%d%s HTTP/1.1\r\nHost: x\r\n\r\n" % (method, origin.port, path))
        data = await client.receive_until(lambda d: d.endswith(b"end"))
        self.assertEqual(data, b"".join(answers.values()))

    async def test_expect_continue_answered_by_proxy(self) -> None:
        """For a buffered body the proxy sends 100 Continue itself and the origin never sees Expect."""
        origin = start_body_origin(self, echo_body)
        proxy = start_proxy(self)
        client = await raw_client(self, proxy.port)
        client.send(
            b"POST http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n" % origin.port
        )
        interim = await client.receive_until(lambda d: d.endswith(b"\r\n\r\n"))
        self.assertEqual(interim, b"HTTP/1.1 100 Continue\r\n\r\n")
        self.assertEqual(origin.requests, [])
        client.send(b"body")
        data = await client.receive_until(lambda d: d.endswith(b"body"))
        self.assertTrue(data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), data)
        self.assertNotIn(b"expect", origin.requests[0].lower())
        self.assertEqual(origin.bodies, [b"body"])


class HttpClientTests(TestCase):
    """A stdlib http.client (in a thread) through the proxy."""

    async def test_http_client_post(self) -> None:
        """http.client POSTs through the proxy and reads the echoed body and the origin's headers."""
        origin = start_body_origin(self, echo_body)
        proxy = start_proxy(self)
        [(status, headers, body)] = await http_exchanges(proxy.port, [("POST", origin.url + "/p", b"x" * 1000, {"X-A": "1"})])
        self.assertEqual((status, body), (200, b"x" * 1000))
        self.assertIn(("Content-Length", "1000"), headers)
        self.assertIn(b"\r\nX-A: 1\r\n", origin.requests[0])



class StaleConnectionTests(TestCase):
    """A reused upstream connection that the server closed meanwhile."""

    async def test_retried_once_on_fresh_connection(self) -> None:
        """A buffered request whose reused connection closes without a response is sent again on a new one."""
        answered: dict[Any, int] = {}

        def handler(protocol: Any, head: bytes) -> None:
            answered[protocol] = answered.get(protocol, 0) + 1
            if answered[protocol] == 2:
                protocol.transport.loseConnection()
            else:
                echo_path(protocol, head)

        origin = start_body_origin(self, handler)
        proxy = start_proxy(self)
        results = await http_exchanges(proxy.port, [("POST", origin.url + "/1", b"a", {}), ("POST", origin.url + "/2", b"b", {})])
        self.assertEqual([(status, body) for status, _, body in results], [(200, b"POST /1"), (200, b"POST /2")])
        self.assertEqual(len(origin.connections), 2)
        self.assertEqual(origin.bodies, [b"a", b"b", b"b"])

    async def test_not_retried_twice(self) -> None:
        """When the fresh connection closes too, the client gets a 502."""
        answered: list[Any] = []

        def handler(protocol: Any, head: bytes) -> None:
            answered.append(protocol)
            if len(answered) == 1:
                echo_path(protocol, head)
            else:
                protocol.transport.loseConnection()

        origin = start_raw_origin(self, handler)
        proxy = start_proxy(self)
        results = await http_exchanges(proxy.port, [("GET", origin.url + "/1", None, {}), ("GET", origin.url + "/2", None, {})])
        self.assertEqual([status for status, _, _ in results], [200, 502])
        self.assertEqual(len(origin.connections), 2)

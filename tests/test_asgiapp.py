# -*- test-case-name: tests.test_asgiapp -*-
"""Tests for L{twisted_mitm.addons.asgiapp}: apps answering inside the proxy, with curl."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.flows import request_flow
from tests.support import curl, respond, start_proxy, start_raw_origin
from tests.test_proxy_errors import free_port
from twisted_mitm.addons.asgiapp import ASGIApp, WSGIApp, asgi_scope, wsgi_environ
from twisted_mitm.http import Request


def hello_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A WSGI app echoing what it was asked, from the thread it runs in."""
    body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-App", "wsgi")])
    where = "main" if threading.current_thread() is threading.main_thread() else "worker"
    return [f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}?{environ['QUERY_STRING']} ".encode(), body, f" {where}".encode()]


async def hello_asgi(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """An ASGI app that awaits asyncio before echoing the request in two body events."""
    event = await receive()
    await asyncio.sleep(0.01)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain"), (b"x-app", b"asgi")]})
    await send({"type": "http.response.body", "body": f"{scope['method']} {scope['path']}?".encode() + scope["query_string"], "more_body": True})
    await send({"type": "http.response.body", "body": b" " + event["body"]})


def failing_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    raise ValueError("the app broke")


async def silent_asgi(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """An ASGI app that ends without answering."""


class EnvironmentTests(SynchronousTestCase):
    """What the apps are given about the request."""

    def setUp(self) -> None:
        self.flow = request_flow()
        self.flow.request = Request.make("POST", "http://app.test:8000/a%20b/c?x=1&y=%41", b"body", {"Content-Type": "text/plain", "Accept": "*/*"})
        self.flow.request.headers.add("Accept", "text/html")
        self.flow.live = True

    def test_wsgi_environ(self) -> None:
        """PEP 3333 keys: decoded path, raw query, HTTP_* headers (repeats joined), the body as input."""
        environ = wsgi_environ(self.flow)
        self.assertEqual(
            {key: environ[key] for key in ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT", "CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_ACCEPT", "wsgi.url_scheme")},
            {
                "REQUEST_METHOD": "POST", "PATH_INFO": "/a b/c", "QUERY_STRING": "x=1&y=%41", "SERVER_NAME": "app.test",
                "SERVER_PORT": "8000", "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "4", "HTTP_ACCEPT": "*/*,text/html",
                "wsgi.url_scheme": "http",
            },
        )
        self.assertEqual(environ["wsgi.input"].read(), b"body")
        self.assertNotIn("HTTP_CONTENT_TYPE", environ)

    def test_asgi_scope(self) -> None:
        """The ASGI http scope: decoded path, raw path and query as bytes, lower-case header names."""
        scope = asgi_scope(self.flow)
        self.assertEqual(
            {key: scope[key] for key in ("type", "http_version", "method", "scheme", "path", "raw_path", "query_string", "server")},
            {
                "type": "http", "http_version": "1.1", "method": "POST", "scheme": "http", "path": "/a b/c",
                "raw_path": b"/a%20b/c", "query_string": b"x=1&y=%41", "server": ("app.test", 8000),
            },
        )
        self.assertIn((b"accept", b"text/html"), scope["headers"])

    def test_which_flows(self) -> None:
        """Only the app's host and port, and only while the flow has no response."""
        self.assertTrue(WSGIApp(hello_wsgi, "app.test", 8000).should_serve(self.flow))
        self.assertTrue(WSGIApp(hello_wsgi, "app.test", None).should_serve(self.flow))
        self.assertFalse(WSGIApp(hello_wsgi, "app.test", 80).should_serve(self.flow))
        self.assertFalse(WSGIApp(hello_wsgi, "other.test", 8000).should_serve(self.flow))
        self.assertEqual(WSGIApp(hello_wsgi, "app.test", 8000).name, "asgiapp:app.test:8000")


class ServedTests(TestCase):
    """Through a real proxy: the app answers, the origin at that address never hears of it."""

    def setUp(self) -> None:
        self.origin = start_raw_origin(self, respond(200, b"from the network"))

    async def test_wsgi_app(self) -> None:
        """A WSGI app answers in a worker thread, with its status, headers and body."""
        proxy = start_proxy(self, addons=[WSGIApp(hello_wsgi, "127.0.0.1", self.origin.port)])
        out, err, code = await curl("-s", "-i", "-x", proxy.url, "--data-binary", "sent", f"{self.origin.url}/hello?x=1")
        self.assertEqual(code, 0, err)
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 201 Created"), head)
        self.assertIn(b"X-App: wsgi", head)
        self.assertEqual(body, b"POST /hello?x=1 sent worker")
        self.assertEqual(self.origin.connections, [])

    async def test_asgi_app(self) -> None:
        """An ASGI app is awaited on the asyncio loop; its body events are joined."""
        proxy = start_proxy(self, addons=[ASGIApp(hello_asgi, "127.0.0.1", self.origin.port)])
        out, err, code = await curl("-s", "-i", "-x", proxy.url, "--data-binary", "sent", f"{self.origin.url}/hi?y=2")
        self.assertEqual(code, 0, err)
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertIn(b"x-app: asgi", head)
        self.assertIn(b"content-length: 17", head.lower())
        self.assertEqual(body, b"POST /hi?y=2 sent")
        self.assertEqual(self.origin.connections, [])

    async def test_https_without_a_server(self) -> None:
        """Over HTTPS with connection_strategy=lazy, the app answers inside the tunnel with no server at all."""
        port = free_port()
        proxy = start_proxy(self, options=["connection_strategy=lazy"], addons=[WSGIApp(hello_wsgi, "localhost", port)])
        out, err, code = await curl("-s", "--cacert", proxy.ca_path, "-x", proxy.url, f"https://localhost:{port}/tls")
        self.assertEqual((code, out), (0, b"GET /tls?  worker"), err)

    async def test_other_hosts_go_on(self) -> None:
        """Requests for another port reach the network as usual."""
        proxy = start_proxy(self, addons=[WSGIApp(hello_wsgi, "127.0.0.1", self.origin.port + 1)])
        out, err, code = await curl("-s", "-x", proxy.url, f"{self.origin.url}/")
        self.assertEqual((code, out), (0, b"from the network"), err)

    async def test_failing_apps(self) -> None:
        """An app that raises, or answers nothing, gives a 500 and a logged error."""
        for app in (WSGIApp(failing_wsgi, "127.0.0.1", self.origin.port), ASGIApp(silent_asgi, "127.0.0.1", self.origin.port)):
            proxy = start_proxy(self, addons=[app])
            out, err, code = await curl("-s", "-w", " %{http_code}", "-x", proxy.url, f"{self.origin.url}/")
            self.assertEqual((code, out), (0, b"ASGI Error. 500"), err)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.origin.connections, [])

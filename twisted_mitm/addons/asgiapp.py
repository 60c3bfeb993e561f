# -*- test-case-name: tests.test_asgiapp -*-
"""Serve an ASGI or WSGI web app from inside the proxy, at one host and port.

L{ASGIApp} and L{WSGIApp} are addons, as mitmproxy's C{addons.asgiapp}: in the C{request}
hook, a live flow for the app's host (and port, unless it is C{None}) that has no response
yet is answered by the app, and never reaches the network. The request body the app reads
is the buffered one (a streamed request body was not kept: the app sees it empty); the
app's response is collected whole, then sent.

ASGI apps (the C{http} scope; no lifespan, no WebSocket) run on the asyncio loop the
proxy runs on. WSGI apps are called in a thread from the reactor's pool, so a slow app
does not hold up other flows. An app that raises, or ends without a response, gives a
500 and a log entry with the traceback.
"""

from __future__ import annotations

import asyncio
import io
import sys
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_mitm import ctx
from twisted_mitm.http import HTTPFlow, Request, Response

_log = Logger()

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApplication = Callable[[Scope, Receive, Send], Awaitable[None]]
WSGIApplication = Callable[[dict[str, Any], Callable[..., Callable[[bytes], object]]], Iterable[bytes]]

#: What the proxy answers when the app fails (mitmproxy's words, for WSGI apps too).
APP_ERROR = b"ASGI Error."

_HTTP_VERSIONS = {"HTTP/1.0": "1.0", "HTTP/1.1": "1.1", "HTTP/2.0": "2"}


class _AppAddon:
    """What both kinds of app share: which flows they answer."""

    def __init__(self, host: str, port: int | None) -> None:
        self.host = host
        self.port = port

    @property
    def name(self) -> str:
        """The addon's name, as mitmproxy gives it: C{asgiapp:HOST:PORT}."""
        return f"asgiapp:{self.host}:{self.port}"

    def should_serve(self, flow: HTTPFlow) -> bool:
        """Whether the app answers C{flow}: its host and port, live, no error or response yet."""
        return bool(
            flow.request.pretty_host == self.host
            and (self.port is None or flow.request.port == self.port)
            and flow.live
            and not flow.error
            and not flow.response
        )

    def _failed(self, flow: HTTPFlow, reason: Failure) -> None:
        _log.failure("{app}: the app failed on {url}", reason, app=self.name, url=flow.request.pretty_url)
        flow.response = Response.make(500, APP_ERROR)


class ASGIApp(_AppAddon):
    """Answers requests for C{host}:C{port} with an ASGI 3 app (HTTP only)."""

    def __init__(self, asgi_app: ASGIApplication, host: str, port: int | None) -> None:
        super().__init__(host, port)
        self.asgi_app = asgi_app

    async def request(self, flow: HTTPFlow) -> None:
        if self.should_serve(flow):
            try:
                flow.response = await _serve_asgi(self.asgi_app, flow)
            except Exception:
                self._failed(flow, Failure())


class WSGIApp(_AppAddon):
    """Answers requests for C{host}:C{port} with a WSGI (PEP 3333) app, called in a thread."""

    def __init__(self, wsgi_app: WSGIApplication, host: str, port: int | None) -> None:
        super().__init__(host, port)
        self.wsgi_app = wsgi_app

    def request(self, flow: HTTPFlow) -> Deferred[None] | None:
        if not self.should_serve(flow):
            return None
        calling = deferToThread(_call_wsgi, self.wsgi_app, wsgi_environ(flow))
        calling.addCallback(lambda response: setattr(flow, "response", response))
        calling.addErrback(lambda reason: self._failed(flow, reason))
        return calling


def asgi_scope(flow: HTTPFlow) -> Scope:
    """The ASGI C{http} connection scope for C{flow}'s request."""
    request = flow.request
    raw_path = request.data.path
    path, _, query = raw_path.partition(b"?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": _HTTP_VERSIONS.get(request.http_version, "1.1"),
        "method": request.method,
        "scheme": request.scheme,
        "path": urllib.parse.unquote_to_bytes(path).decode("utf-8", "replace"),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in request.headers.fields],
        "client": flow.client_conn.peername,
        "server": (request.host, request.port),
        # No master outside a running proxy (an app called on its own).
        "extensions": {"mitmproxy.master": getattr(ctx, "master", None)},
    }


async def _serve_asgi(app: ASGIApplication, flow: HTTPFlow) -> Response:
    """Run C{app} on C{flow}'s request and collect its response."""
    finished = asyncio.Event()
    body_taken = False
    start: MutableMapping[str, Any] | None = None
    body: list[bytes] = []
    complete = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal body_taken
        if not body_taken:
            body_taken = True
            return {"type": "http.request", "body": flow.request.raw_content or b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(event: MutableMapping[str, Any]) -> None:
        nonlocal start, complete
        if event["type"] == "http.response.start":
            start = event
        elif event["type"] == "http.response.body" and start is not None:
            body.append(bytes(event.get("body", b"")))
            complete = not event.get("more_body", False)
        else:
            raise RuntimeError(f"unexpected ASGI event {event['type']!r}")

    try:
        await app(asgi_scope(flow), receive, send)
    finally:
        finished.set()
    if start is None or not complete:
        raise RuntimeError("the app sent no complete response")
    return _response(start["status"], start.get("headers", []), b"".join(body))


def wsgi_environ(flow: HTTPFlow) -> dict[str, Any]:
    """The PEP 3333 environment for C{flow}'s request (headers as latin-1 native strings)."""
    request = flow.request
    path, _, query = request.data.path.partition(b"?")
    body = request.raw_content or b""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": urllib.parse.unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "SERVER_NAME": request.host,
        "SERVER_PORT": str(request.port),
        "SERVER_PROTOCOL": request.http_version,
        "REMOTE_ADDR": flow.client_conn.peername[0],
        "REMOTE_PORT": str(flow.client_conn.peername[1]),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": request.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    environ.update(_wsgi_headers(request))
    return environ


def _wsgi_headers(request: Request) -> dict[str, str]:
    """The request headers as C{HTTP_*} keys (C{CONTENT_TYPE} bare); repeated fields joined by commas."""
    headers: dict[str, str] = {}
    for name in request.headers:
        key = name.upper().replace("-", "_")
        if key == "CONTENT_LENGTH":
            continue  # set from the body
        if key != "CONTENT_TYPE":
            key = "HTTP_" + key
        headers[key] = ",".join(request.headers.get_all(name)).encode("utf-8", "surrogateescape").decode("latin-1")
    return headers


def _call_wsgi(app: WSGIApplication, environ: dict[str, Any]) -> Response:
    """Call C{app} (in a thread) and collect its whole response."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    body: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> Callable[[bytes], object]:
        started[:] = [(status, headers)]
        return body.append

    chunks = app(environ, start_response)
    try:
        body.extend(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if not started:
        raise RuntimeError("the app did not call start_response")
    status, headers = started[0]
    fields = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    return _response(int(status.split(None, 1)[0]), fields, b"".join(body))


def _response(status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> Response:
    """The app's response with its body as the app encoded it, and a matching Content-Length."""
    response = Response.make(status, b"", [(bytes(name), bytes(value)) for name, value in headers])
    response.raw_content = body
    if "transfer-encoding" not in response.headers:
        response.headers["content-length"] = str(len(body))
    return response

# -*- test-case-name: tests.test_proxy -*-
"""One request and its response: hook order, buffer-or-stream, upstream, errors.

An L{Exchange} is created by the client side for every request head. It runs the
hooks in mitmproxy's order, decides for each body whether it is buffered (visible and
editable) or streamed through a L{BodyPipe}, opens or reuses the upstream connection,
and turns every failure into either an error response or, once the response has begun,
an aborted connection that cannot be mistaken for a complete one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_mitm import http1
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.flow import Error
from twisted_mitm.hooks import (
    ErrorHook,
    RequestHook,
    RequestheadersHook,
    ResponseHook,
    ResponseheadersHook,
)
from twisted_mitm.http import Headers, HTTPFlow, Message, Response
from twisted_mitm.proxy import framing
from twisted_mitm.proxy.pipe import BodyPipe, BufferSink, DiscardSink, Fields, Hold, PacedWriter
from twisted_mitm.proxy.serverside import ServerSideProtocol
from twisted_mitm.proxy.transform import make_transform

if TYPE_CHECKING:
    from twisted_mitm.proxy.clientside import ClientSideProtocol
    from twisted_mitm.proxy.context import ProxyContext
    from twisted_mitm.proxy.wsrelay import WebSocketRelay


def error_response(status: int, reason: str) -> Response:
    """A short plain-text response that says what went wrong."""
    return Response.make(
        status,
        f"twisted_mitm: {reason}\n",
        {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"},
    )


class Exchange:
    """Carries one HTTP flow from its request head to the end of its response.

    @ivar server: the upstream connection carrying this exchange, once there is one.
    """

    _log = Logger()

    def __init__(self, context: ProxyContext, client_side: ClientSideProtocol, flow: HTTPFlow, request_framing: http1.BodyFraming) -> None:
        self.context = context
        self.client_side = client_side
        self.flow = flow
        self.server: ServerSideProtocol | None = None
        self._request_framing = request_framing
        self._response_framing: http1.BodyFraming | None = None
        self._request_read = False
        self._response_sent = False
        self._response_started = False
        self._done = False
        self._close_client = False
        self._relay_continue = False
        self._retried = False
        self._request_pipe: BodyPipe | None = None
        self._response_pipe: BodyPipe | None = None
        self._websocket: WebSocketRelay | None = None
        flow.on_kill = self._killed

    # The request.

    def start(self) -> None:
        """Run the request head through the hooks; called once the head is read."""
        request = self.flow.request
        request.stream = self._declares_large_body(self._request_framing)
        self._hook(RequestheadersHook(self.flow), self._requestheaders_done)

    def _requestheaders_done(self) -> None:
        request = self.flow.request
        if self.flow.response is not None:
            self.client_side.read_request_body(DiscardSink(self._request_body_read))
            self._send_buffered_response()
        elif request.stream and self._request_framing.kind is not http1.FramingKind.NONE:
            self._stream_request([])
        else:
            self._buffer_request()

    def _buffer_request(self) -> None:
        request = self.flow.request
        limit = self.context.settings.body_size_limit
        declared = self._request_framing.length
        if limit is not None and declared is not None and declared > limit:
            self._fail(ProtocolError(413, f"request body of {declared} bytes exceeds body_size_limit ({limit} bytes)"))
            return
        if framing.expects_continue(request.headers):
            del request.headers["expect"]
            self.client_side.write(http1.assemble_response_head(b"HTTP/1.1", 100, b"Continue", ()))
        self.client_side.read_request_body(self._buffer_sink(self._request_framing, self._request_buffered, self._stream_request))

    def _request_buffered(self, body: bytes, trailers: Fields) -> None:
        request = self.flow.request
        request.raw_content = body
        request.trailers = Headers(trailers) if trailers else None
        request.timestamp_end = time.time()
        self._request_body_read()
        self._hook(RequestHook(self.flow), self._request_done)

    def _request_done(self) -> None:
        if self.flow.response is not None:
            self._send_buffered_response()
            return
        self._connect(self._send_buffered_request)

    def _send_buffered_request(self, server: ServerSideProtocol) -> None:
        request = self.flow.request
        headers, body = framing.buffered_request(request)
        if framing.is_websocket_upgrade(request):
            # autobahn is imported on the first upgrade, not at start-up: it costs about
            # 8 MiB of resident memory that a proxy without WebSocket traffic never needs.
            from twisted_mitm.proxy.wsrelay import WebSocketRelay

            self._websocket = WebSocketRelay(self.context, self.flow)
            headers = self._websocket.upstream_headers(headers, server)
        server.send_request(request.data.method, self._request_head(headers), self)
        PacedWriter.write(server.transport, body, self._start_response_timer)

    def _stream_request(self, buffered: list[http1.Data]) -> None:
        self.client_side.pump.hold(Hold.DECIDING)
        self.flow.request.stream = self.flow.request.stream or True
        self._relay_continue = framing.expects_continue(self.flow.request.headers)
        self._connect(self._send_streamed_request, buffered)

    def _send_streamed_request(self, server: ServerSideProtocol, buffered: list[http1.Data]) -> None:
        request = self.flow.request
        transform = make_transform(request.stream, self.context.reactor)
        headers, make_writer = framing.streamed_request(request.headers, self._request_framing, transform is not None)
        request.raw_content = b""
        server.send_request(request.data.method, self._request_head(headers), self)
        pipe = BodyPipe(self.client_side.pump, make_writer(server.transport), self._request_streamed, self._source_failed, transform)
        self._request_pipe = pipe
        pipe.write_all(buffered)
        self.client_side.read_request_body(pipe)

    def _request_streamed(self) -> None:
        assert self._request_pipe is not None
        self.flow.metadata["request_body_size"] = self._request_pipe.size
        self.flow.request.timestamp_end = time.time()
        self._request_body_read()
        self._start_response_timer()
        self._hook(RequestHook(self.flow), self._check_unchanged, self.flow.request)

    def _request_body_read(self) -> None:
        self._request_read = True
        self._maybe_finish()

    def _request_head(self, headers: Headers) -> bytes:
        request = self.flow.request
        return http1.assemble_request_head(request.data.method, request.data.path, request.data.http_version, headers.fields)

    # The upstream connection.

    def _connect(self, then: Callable[..., None], *args: object) -> None:
        """Get an upstream connection for the request as it is now, then call C{then(server, *args)}."""
        connecting = self.client_side.server_for(self.flow)
        connecting.addCallbacks(self._connected, self._source_failed, callbackArgs=(then, args))
        connecting.addErrback(self._internal_error)

    def _connected(self, server: ServerSideProtocol, then: Callable[..., None], args: tuple[object, ...]) -> None:
        if self._done:
            server.release()
            return
        self.server = server
        self.flow.server_conn = server.server
        then(server, *args)

    def _start_response_timer(self) -> None:
        """From now on (the request is sent whole), a server silent for too long fails the exchange."""
        timeout = self.context.settings.response_timeout
        if self.server is not None and timeout is not None and not self._done:
            self.server.watch_silence(timeout, self._server_silent)

    def _server_silent(self, timeout: float) -> None:
        self._fail(ProtocolError(504, f"the server sent nothing for {timeout:g} seconds"))

    def client_silent(self, timeout: float) -> None:
        """The client stopped sending its request body for C{timeout} seconds."""
        self._fail(ProtocolError(408, f"the client sent nothing of its request body for {timeout:g} seconds"))

    # The response (ResponseReceiver, called by the server side).

    def response_head(self, head: http1.ResponseHead) -> None:
        """A response head arrived from the server."""
        if 100 <= head.status_code < 200 and head.status_code != 101:
            self._relay_interim(head)
            return
        assert self.server is not None
        self._response_framing = self.server.pump.reader.framing
        response = Response(
            head.http_version, head.status_code, head.reason, Headers(head.headers), None, None, time.time(), None
        )
        self.flow.response = response
        response.stream = self._declares_large_body(self._response_framing)
        self._hook(ResponseheadersHook(self.flow), self._responseheaders_done)

    def _relay_interim(self, head: http1.ResponseHead) -> None:
        if head.status_code == 100 and not self._relay_continue:
            return
        self.client_side.write(http1.assemble_response_head(head.http_version, head.status_code, head.reason, head.headers))

    def _responseheaders_done(self) -> None:
        assert self.server is not None
        response = self.flow.response
        assert response is not None
        if response.stream and self._response_has_body():
            self._stream_response([])
            return
        self.server.read_body(self._buffer_sink(self._response_framing, self._response_buffered, self._stream_response))

    def _response_buffered(self, body: bytes, trailers: Fields) -> None:
        response = self.flow.response
        assert response is not None
        response.raw_content = body
        response.trailers = Headers(trailers) if trailers else None
        response.timestamp_end = time.time()
        self._hook(ResponseHook(self.flow), self._send_buffered_response)

    def _send_buffered_response(self) -> None:
        if self._done:
            return
        response = self.flow.response
        assert response is not None
        if self._websocket is not None and response.status_code == 101:
            self._switch_to_websocket(self._websocket)
            return
        headers, body = framing.buffered_response(response, self._client_version(), self._response_has_body())
        self._close_client = self._close_client or framing.closes(headers)
        self._response_started = True
        PacedWriter.write(self.client_side.transport, [self._response_head(headers), *body], self._buffered_response_sent)

    def _buffered_response_sent(self) -> None:
        self._response_sent = True
        self._maybe_finish()

    def _switch_to_websocket(self, relay: WebSocketRelay) -> None:
        """The server accepted the upgrade: both connections now belong to the WebSocket relay."""
        try:
            relay.start(self.client_side)
        except ProtocolError as error:
            self._fail(error)
            return
        self._done = True
        self._response_started = self._response_sent = True

    def _stream_response(self, buffered: list[http1.Data]) -> None:
        assert self.server is not None and self.flow.response is not None
        response = self.flow.response
        self.server.pump.hold(Hold.DECIDING)
        response.stream = response.stream or True
        transform = make_transform(response.stream, self.context.reactor)
        headers, make_writer, close = framing.streamed_response(
            response.headers, self._response_framing, transform is not None, self._client_version()
        )
        self._close_client = self._close_client or close or framing.closes(headers)
        response.raw_content = b""
        self.client_side.write(self._response_head(headers))
        self._response_started = True
        pipe = BodyPipe(self.server.pump, make_writer(self.client_side.transport), self._response_streamed, self._source_failed, transform)
        self._response_pipe = pipe
        pipe.write_all(buffered)
        self.server.read_body(pipe)

    def _response_streamed(self) -> None:
        response = self.flow.response
        assert response is not None and self._response_pipe is not None
        self.flow.metadata["response_body_size"] = self._response_pipe.size
        response.timestamp_end = time.time()
        self._hook(ResponseHook(self.flow), self._response_streamed_done)

    def _response_streamed_done(self) -> None:
        assert self.flow.response is not None
        self._check_unchanged(self.flow.response)
        self._response_sent = True
        self._maybe_finish()

    def _response_head(self, headers: Headers) -> bytes:
        response = self.flow.response
        assert response is not None
        return http1.assemble_response_head(response.data.http_version, response.status_code, response.data.reason, headers.fields)

    def response_complete(self) -> None:
        """The server finished sending the response body."""
        if self.server is not None:
            self.server.release()

    def server_failed(self, error: ProtocolError) -> None:
        """The server broke the protocol or went away before the response was complete."""
        if self._may_retry():
            self._retried = True
            self._connect(self._send_buffered_request)
            return
        self._fail(error)

    def _may_retry(self) -> bool:
        """Whether a reused connection closed before any response (the server timed it out
        meanwhile), so a buffered request can be sent once more on a fresh one."""
        server = self.server
        return (
            not self._retried
            and server is not None
            and not server.connected
            and server.requests_sent > 1
            and self.flow.response is None
            and self._request_read
            and self._request_pipe is None
        )

    # Shared decisions.

    def _declares_large_body(self, body_framing: http1.BodyFraming | None) -> bool:
        threshold = self.context.settings.stream_large_bodies
        return (
            threshold is not None
            and body_framing is not None
            and body_framing.length is not None
            and body_framing.length > threshold
        )

    def _buffer_sink(
        self, body_framing: http1.BodyFraming | None, done: Callable[[bytes, Fields], None], stream: Callable[[list[http1.Data]], None]
    ) -> BufferSink:
        """A sink that buffers a body, and what happens past the limits: stream it on or refuse it."""
        settings = self.context.settings
        unknown_length = body_framing is None or body_framing.length is None
        stream_at = settings.stream_large_bodies if unknown_length else None
        limit_to = settings.body_size_limit
        if stream_at is not None and (limit_to is None or stream_at <= limit_to):
            return BufferSink(done, self._source_failed, stream_at, stream, keep_pieces=True)
        if limit_to is not None:
            return BufferSink(done, self._source_failed, limit_to, lambda _: self._body_too_large(limit_to))
        return BufferSink(done, self._source_failed)

    def _body_too_large(self, limit: int) -> None:
        if self.flow.response is None:
            self._fail(ProtocolError(413, f"request body exceeds body_size_limit ({limit} bytes)"))
        else:
            self._fail(ProtocolError(502, f"response body exceeds body_size_limit ({limit} bytes)"))

    def _response_has_body(self) -> bool:
        """Whether the response as it is now carries a body (RFC 9112 §6.3), even if a hook replaced it."""
        assert self.flow.response is not None
        status = self.flow.response.status_code
        return self.flow.request.data.method != b"HEAD" and status >= 200 and status not in (204, 304)

    def _client_version(self) -> bytes:
        return self.flow.request.data.http_version

    def _check_unchanged(self, message: Message) -> None:
        if message.raw_content:
            self._log.warn(
                "{url}: a script changed the content of a streamed {kind}; streamed bodies cannot be modified, the change is ignored",
                url=self.flow.request.pretty_url,
                kind=type(message).__name__.lower(),
            )
            message.raw_content = b""

    def _hook(self, hook: object, then: Callable[..., None] | None = None, *args: object) -> None:
        """Trigger C{hook}; then, unless the exchange ended meanwhile, call C{then(*args)}."""
        triggered = self.context.addons.trigger(hook)
        if then is None:
            triggered.addErrback(self._internal_error)
        elif triggered.called:
            # Every addon answered at once (the common case): go on without Deferred callbacks.
            try:
                self._after_hook(None, then, args)
            except Exception:
                self._internal_error(Failure())
        else:
            triggered.addCallback(self._after_hook, then, args).addErrback(self._internal_error)

    def _after_hook(self, _: object, then: Callable[..., None], args: tuple[object, ...]) -> None:
        if not self._done:
            then(*args)

    def _internal_error(self, reason: Failure) -> None:
        self._log.failure("{url}: internal error", reason, url=self.flow.request.pretty_url)
        self._fail(ProtocolError(502, f"internal error: {reason.getErrorMessage()}"))

    # Ending.

    def _maybe_finish(self) -> None:
        if self._done or not self._response_sent:
            return
        if not self._request_read:
            self._close_client = True
            if self.server is not None:
                self.server.abort()
        self._finish()

    def _finish(self) -> None:
        self._done = True
        self.flow.live = False
        self.client_side.exchange_done(self, keep_alive=not self._close_client and framing.client_keeps_alive(self.flow.request))

    def _source_failed(self, reason: Failure) -> None:
        self._fail(reason.value if reason.check(ProtocolError) else reason)

    def client_gone(self) -> None:
        """The client disconnected: give up the exchange and the upstream connection."""
        if not self._done:
            self._fail(ProtocolError(499, "the client disconnected"), client_gone=True)

    def _killed(self) -> None:
        if not self._done:
            self._abandon()
            self.client_side.abort()

    def _fail(self, problem: ProtocolError | Failure | BaseException, client_gone: bool = False) -> None:
        """End the exchange on an error: answer it if nothing was sent yet, else cut the stream."""
        if self._done:
            return
        message = self._describe(problem)
        self.flow.error = Error(message)
        self._abandon()
        if client_gone:
            pass
        elif self._response_started:
            self.client_side.abort()
        else:
            status = problem.status if isinstance(problem, ProtocolError) else 502
            self.flow.response = error_response(status, message)
            self._close_client = True
            self._send_error_response()
        self._hook(ErrorHook(self.flow))

    def _send_error_response(self) -> None:
        response = self.flow.response
        assert response is not None
        headers, body = framing.buffered_response(response, self._client_version(), self._response_has_body())
        self.client_side.write_sequence([self._response_head(headers), *body])
        self.client_side.exchange_done(self, keep_alive=False)

    def _abandon(self) -> None:
        self._done = True
        self.flow.live = False
        for pipe in (self._request_pipe, self._response_pipe):
            if pipe is not None:
                pipe.abort(Failure(ProtocolError(502, "exchange abandoned")))
        if self.server is not None:
            self.server.receiver = None
            self.server.abort()

    def _describe(self, problem: ProtocolError | Failure | BaseException) -> str:
        if isinstance(problem, ProtocolError):
            return problem.reason
        if isinstance(problem, Failure):
            if not problem.check(ProtocolError):
                self._log.failure("{url}: unexpected failure", problem, url=self.flow.request.pretty_url)
            return problem.getErrorMessage()
        return str(problem)

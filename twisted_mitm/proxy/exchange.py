# -*- test-case-name: tests.test_proxy -*-
"""One request and its response: hook order, buffer-or-stream, upstream, errors.

An L{Exchange} carries one HTTP flow between a L{ClientStream} and an L{Upstream}
(L{twisted_mitm.proxy.streams}); it knows nothing of the wire beneath them. Each
direction is a L{Transfer} (L{RequestTransfer}, L{ResponseTransfer}): it runs the
message's headers hook, decides whether the body is buffered (visible and editable) or
streamed through a L{BodyPipe}, runs the body hook and delivers the message. The
exchange ties the two together: it obtains the upstream, and turns every failure into
either an error response or, once the response has begun, an aborted connection that
cannot be mistaken for a complete one.
"""

from __future__ import annotations

import enum
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_mitm import http1
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.flow import Error
from twisted_mitm.hooks import (
    ErrorHook,
    Hook,
    RequestHook,
    RequestheadersHook,
    ResponseHook,
    ResponseheadersHook,
)
from twisted_mitm.http import Headers, HTTPFlow, Message, Request, Response
from twisted_mitm.proxy import framing
from twisted_mitm.proxy.filebody import made_body_source
from twisted_mitm.proxy.pipe import BodyPipe, BodyWriter, BufferSink, DiscardSink, Fields
from twisted_mitm.proxy.tee import TeeWriter
from twisted_mitm.proxy.transform import make_transform

if TYPE_CHECKING:
    from twisted_mitm.proxy.context import ProxyContext
    from twisted_mitm.spool import BodySpool, SpooledBody
    from twisted_mitm.proxy.streams import BodySource, ClientStream, Upstream, UpstreamSource
    from twisted_mitm.proxy.wsrelay import WebSocketRelay


T = TypeVar("T")


def error_response(status: int, reason: str) -> Response:
    """A short plain-text response that says what went wrong."""
    return Response.make(
        status,
        f"twisted_mitm: {reason}\n",
        {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"},
    )


class Stage(enum.Enum):
    """Where an exchange is."""

    #: the request or the response is still under way
    OPEN = enum.auto()
    #: the server accepted a WebSocket upgrade; the relay owns both connections now
    SWITCHED = enum.auto()
    #: the response was delivered whole
    FINISHED = enum.auto()
    #: the exchange ended on an error
    FAILED = enum.auto()


class Phase(enum.Enum):
    """Where one direction (request or response) of an exchange is."""

    #: no head yet (a response not arrived)
    PENDING = enum.auto()
    #: the head was read; its headers hook runs
    HEADERS = enum.auto()
    #: the body is read and thrown away (a request the proxy answers itself)
    DISCARDING = enum.auto()
    #: the body is read into memory
    BUFFERING = enum.auto()
    #: the body is in memory; the body hook runs, nothing was sent yet
    HOOK = enum.auto()
    #: the whole message is being written to its destination
    SENDING = enum.auto()
    #: the head was written; the body flows through a pipe
    STREAMING = enum.auto()
    #: the streamed body passed whole; the body hook runs
    STREAMED = enum.auto()
    #: delivered whole, hooks done
    DONE = enum.auto()


#: Phases in which a message's body has been read whole from its source.
_READ_WHOLE = frozenset({Phase.HOOK, Phase.SENDING, Phase.STREAMED, Phase.DONE})
#: Phases in which the message's head has gone out to its destination.
_HEAD_SENT = frozenset({Phase.SENDING, Phase.STREAMING, Phase.STREAMED, Phase.DONE})


class Transfer:
    """One direction of an exchange: a message from its source to its destination.

    The same steps serve the request and the response: the headers hook, the decision to
    buffer or stream, the body hook, delivery. Subclasses say what differs: where the
    message lives on the flow, how its head is written, what limits mean.

    @ivar phase: where this direction is.
    @ivar pipe: the pipe of a streamed body.
    @ivar spool: where a streamed body is kept while it passes (C{store_streamed_bodies}).
    @ivar exchange: the exchange this direction belongs to, held weakly: the exchange
        holds its transfers, and a strong reference back would make every exchange (and
        its flow, bodies included) a cycle that only the garbage collector's full passes
        free. Whatever may still call a transfer (hooks, pipes, sinks) holds the exchange.
    """

    headers_hook: type[Hook]
    body_hook: type[Hook]
    #: the flow metadata key for the size of a streamed body
    size_key: str

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = weakref.ref(exchange)
        self.phase = Phase.PENDING
        self.pipe: BodyPipe | None = None
        self.spool: BodySpool | None = None
        self._kept: SpooledBody | None = None
        self.body_framing: http1.BodyFraming | None = None

    @property
    def exchange(self) -> Exchange:
        exchange = self._exchange()
        assert exchange is not None, "a transfer outlived its exchange"
        return exchange

    @property
    def message(self) -> Message:
        """The message this direction carries."""
        raise NotImplementedError

    @property
    def source(self) -> BodySource:
        """Where the body comes from."""
        raise NotImplementedError

    @property
    def kind(self) -> str:
        """C{"request"} or C{"response"}, for messages to users."""
        return type(self.message).__name__.lower()

    @property
    def read_whole(self) -> bool:
        """Whether the body was read whole from its source."""
        return self.phase in _READ_WHOLE

    @property
    def head_sent(self) -> bool:
        """Whether the head went out to the destination."""
        return self.phase in _HEAD_SENT

    # The steps.

    def begin(self) -> None:
        """The head was read: run the headers hook, then decide where the body goes."""
        self.body_framing = self.source.framing
        self.phase = Phase.HEADERS
        self.message.stream = self._declares_large_body()
        self.exchange.hook(self.headers_hook(self.exchange.flow), self._decide)

    def _decide(self) -> None:
        if self.message.stream and self._has_body():
            self._stream([])
        else:
            self._buffer()

    def _buffer(self) -> None:
        self.phase = Phase.BUFFERING
        self.source.read_body(self._buffer_sink())

    def _buffered(self, body: bytes, trailers: Fields) -> None:
        message = self.message
        message.raw_content = body
        message.trailers = Headers(trailers) if trailers else None
        message.timestamp_end = time.time()
        self.phase = Phase.HOOK
        self.exchange.read_whole(self)
        self.exchange.hook(self.body_hook(self.exchange.flow), self._deliver_buffered)

    def _deliver_buffered(self) -> None:
        """Write the whole (buffered or hook-made) message to its destination."""
        raise NotImplementedError

    def _stream(self, buffered: list[http1.Data]) -> None:
        """Stream the body on, after the pieces C{buffered} so far."""
        self.source.hold_body()
        self.message.stream = self.message.stream or True
        self._when_destination_ready(self._start_pipe, buffered)

    def _when_destination_ready(self, then: Callable[[list[http1.Data]], None], buffered: list[http1.Data]) -> None:
        raise NotImplementedError

    def _start_pipe(self, buffered: list[http1.Data]) -> None:
        transform = make_transform(self.message.stream, self.exchange.context.reactor)
        if framing.framing_edited(self.message.headers, self.body_framing):
            self.exchange.log.warn(
                "{url}: a script changed Content-Length or Transfer-Encoding of a streamed {kind}; "
                "the proxy frames streamed bodies itself, the change is ignored",
                url=self.exchange.flow.request.pretty_url,
                kind=self.kind,
            )
        writer = self._sent_or_failed(lambda: self._write_streamed_head(transform is not None), Phase.STREAMING)
        if writer is None:
            return
        self.message.raw_content = b""
        self.spool = self.exchange.context.spool_for_stream()
        if self.spool is not None:
            writer = TeeWriter(writer, self.spool.write)
        self.pipe = BodyPipe(self.source.producer, writer, self._streamed, self.exchange.source_failed, transform)
        self.pipe.write_all(buffered)
        self.source.read_body(self.pipe)

    def _write_streamed_head(self, transformed: bool) -> BodyWriter:
        """Write the head of a streamed message; return the writer that frames its body.

        @raise ValueError: a script made the head unsendable.
        """
        raise NotImplementedError

    def _sent_or_failed(self, send: Callable[[], T], phase: Phase) -> T | None:
        """What C{send} (which sends a head, in C{phase}) returns; C{None} when a script made
        the head unsendable (CR, LF or NUL in a field, a bad name), after failing the exchange
        with a 502 that says so (nothing was sent then)."""
        before, self.phase = self.phase, phase
        try:
            return send()
        except (ValueError, ProtocolError) as problem:
            self.phase = before
            reason = problem.reason if isinstance(problem, ProtocolError) else str(problem)
            self.exchange.log.warn(
                "{url}: the {kind} head cannot be sent: {reason}", url=self.exchange.flow.request.pretty_url, kind=self.kind, reason=reason
            )
            self.exchange.fail(ProtocolError(502, f"a script made the {self.kind} head unsendable: {reason}"))
            return None
        except ProtocolError as problem:
            self._unsendable(problem)
            return None

    def _unsendable(self, problem: ProtocolError) -> None:
        self.exchange.log.warn(
            "{url}: the {kind} head cannot be sent: {reason}", url=self.exchange.flow.request.pretty_url, kind=self.kind, reason=problem.reason
        )
        self.exchange.fail(ProtocolError(502, f"a script made the {self.kind} head unsendable: {problem.reason}"))

    def _streamed(self) -> None:
        assert self.pipe is not None
        self.exchange.flow.metadata[self.size_key] = self.pipe.size
        if self.spool is not None:
            self._kept = self.message.raw_content = self.spool.close()
            self.spool = None
        self.message.timestamp_end = time.time()
        self.phase = Phase.STREAMED
        self.exchange.read_whole(self)
        self.exchange.hook(self.body_hook(self.exchange.flow), self._streamed_hook_done)

    def _streamed_hook_done(self) -> None:
        self._check_unchanged()
        self.delivered()

    def abandon(self) -> None:
        """The exchange failed: a body still flowing is cut."""
        if self.pipe is not None:
            self.pipe.abort(Failure(ProtocolError(502, "exchange abandoned")))
        if self.spool is not None:
            self.spool.discard()
            self.spool = None

    def delivered(self) -> None:
        """The message reached its destination whole and its hooks are done."""
        self.phase = Phase.DONE
        self.exchange.delivered(self)

    # Shared decisions.

    def _has_body(self) -> bool:
        return True

    def _declares_large_body(self) -> bool:
        threshold = self.exchange.context.settings.stream_large_bodies
        length = self.body_framing.length if self.body_framing is not None else None
        return threshold is not None and length is not None and length > threshold

    def _buffer_sink(self) -> BufferSink:
        """A sink that buffers the body, and what happens past the limits: stream it on or refuse it."""
        settings = self.exchange.context.settings
        unknown_length = self.body_framing is None or self.body_framing.length is None
        stream_at = settings.stream_large_bodies if unknown_length else None
        limit_to = settings.body_size_limit
        failed = self.exchange.source_failed
        if stream_at is not None and (limit_to is None or stream_at <= limit_to):
            return BufferSink(self._buffered, failed, stream_at, self._stream, keep_pieces=True)
        if limit_to is not None:
            return BufferSink(self._buffered, failed, limit_to, lambda _: self.exchange.fail(self._too_large(limit_to)))
        return BufferSink(self._buffered, failed)

    def _too_large(self, limit: int) -> ProtocolError:
        raise NotImplementedError

    def _check_unchanged(self) -> None:
        message = self.message
        kept = self._kept if self._kept is not None else b""
        if message.data.content is not kept and message.data.content != kept:
            self.exchange.log.warn(
                "{url}: a script changed the content of a streamed {kind}; streamed bodies cannot be modified, the change is ignored",
                url=self.exchange.flow.request.pretty_url,
                kind=self.kind,
            )
            message.raw_content = kept


class RequestTransfer(Transfer):
    """The request, from the client to the server."""

    headers_hook = RequestheadersHook
    body_hook = RequestHook
    size_key = "request_body_size"

    @property
    def message(self) -> Request:
        return self.exchange.flow.request

    @property
    def source(self) -> BodySource:
        return self.exchange.client

    @property
    def relays_continue(self) -> bool:
        """Whether the client's C{Expect: 100-continue} is for the server to answer."""
        return self.pipe is not None and framing.expects_continue(self.message.headers)

    def _decide(self) -> None:
        if self.exchange.flow.response is not None:
            self.phase = Phase.DISCARDING
            self.source.read_body(DiscardSink(self._discarded))
            self.exchange.respond()
            return
        super()._decide()

    def _discarded(self) -> None:
        self.phase = Phase.DONE
        self.exchange.read_whole(self)

    def _has_body(self) -> bool:
        return self.body_framing is not None and self.body_framing.kind is not http1.FramingKind.NONE

    def _buffer(self) -> None:
        limit = self.exchange.context.settings.body_size_limit
        declared = self.body_framing.length if self.body_framing is not None else None
        if limit is not None and declared is not None and declared > limit:
            self.exchange.fail(ProtocolError(413, f"request body of {declared} bytes exceeds body_size_limit ({limit} bytes)"))
            return
        if framing.expects_continue(self.message.headers):
            del self.message.headers["expect"]
            self.exchange.client.send_interim(100, b"Continue", ())
        super()._buffer()

    def _too_large(self, limit: int) -> ProtocolError:
        return ProtocolError(413, f"request body exceeds body_size_limit ({limit} bytes)")

    def _deliver_buffered(self) -> None:
        if self.exchange.flow.response is not None:
            self.exchange.respond()
            return
        self.exchange.connect(self._send_buffered)

    def _send_buffered(self, upstream: Upstream) -> None:
        headers = self.exchange.prepare_upgrade(self.message.headers, upstream)
        self._sent_or_failed(lambda: upstream.send_whole_request(self.message, headers, self.exchange, self._sent), Phase.SENDING)

    def _sent(self) -> None:
        self.exchange.start_response_timer()
        self.phase = Phase.DONE

    def resend(self, upstream: Upstream) -> None:
        """Send the buffered request once more, on a fresh connection."""
        self._send_buffered(upstream)

    def _when_destination_ready(self, then: Callable[[list[http1.Data]], None], buffered: list[http1.Data]) -> None:
        self.exchange.connect(lambda upstream: then(buffered))

    def _write_streamed_head(self, transformed: bool) -> BodyWriter:
        assert self.body_framing is not None and self.exchange.server is not None
        return self.exchange.server.start_request(self.message, self.body_framing, transformed, self.exchange)

    def _streamed(self) -> None:
        super()._streamed()
        self.exchange.start_response_timer()


class ResponseTransfer(Transfer):
    """The response, from the server (or a hook, or the proxy) to the client.

    @ivar closes_connection: whether the client connection must close after this response.
    """

    headers_hook = ResponseheadersHook
    body_hook = ResponseHook
    size_key = "response_body_size"

    def __init__(self, exchange: Exchange) -> None:
        super().__init__(exchange)
        self.closes_connection = False
        #: the body of a hook-made response that is not in memory (a file)
        self._made_source: BodySource | None = None

    @property
    def message(self) -> Response:
        response = self.exchange.flow.response
        assert response is not None
        return response

    @property
    def source(self) -> BodySource:
        if self._made_source is not None:
            return self._made_source
        assert self.exchange.server is not None
        return self.exchange.server

    def _has_body(self) -> bool:
        return http1.response_has_body(self.exchange.flow.request.data.method, self.message.status_code)

    def _too_large(self, limit: int) -> ProtocolError:
        return ProtocolError(502, f"response body exceeds body_size_limit ({limit} bytes)")

    def _deliver_buffered(self) -> None:
        if self.message.status_code == 101 and self.exchange.switch_to_websocket():
            return
        self.closes_connection = self.closes_connection or framing.closes(self.message.headers)
        self._sent_or_failed(
            lambda: self.exchange.client.send_whole_response(self.exchange.flow.request, self.message, self._has_body(), self.delivered),
            Phase.SENDING,
        )

    def deliver_made(self) -> None:
        """Deliver a response a hook made (the server was never asked): from memory, or
        streamed from its own body source (C{Response.body_file}), then C{response} runs."""
        try:
            self._made_source = made_body_source(self.message, self.exchange.context.reactor) if self._has_body() else None
        except ProtocolError as problem:
            self.exchange.fail(problem)
            return
        if self._made_source is None:
            self.phase = Phase.HOOK
            self._deliver_buffered()
            return
        self.body_framing = self._made_source.framing
        self._stream([])

    def abandon(self) -> None:
        super().abandon()
        if self._made_source is not None:
            self._made_source.producer.stopProducing()

    def send_error(self, response: Response) -> None:
        """Answer with C{response} made by the proxy, and close."""
        self.exchange.flow.response = response
        self.closes_connection = True
        self.phase = Phase.DONE
        self.exchange.client.send_whole_response(self.exchange.flow.request, response, self._has_body(), lambda: None)

    def _when_destination_ready(self, then: Callable[[list[http1.Data]], None], buffered: list[http1.Data]) -> None:
        then(buffered)

    def _write_streamed_head(self, transformed: bool) -> BodyWriter:
        writer, closes = self.exchange.client.start_response(self.exchange.flow.request, self.message, self.body_framing, transformed)
        self.closes_connection = self.closes_connection or closes
        return writer


class Exchange:
    """Carries one HTTP flow from its request head to the end of its response.

    @ivar stage: where the exchange is.
    @ivar server: the upstream carrying this exchange, once there is one.
    """

    log = Logger()

    def __init__(self, context: ProxyContext, client: ClientStream, upstreams: UpstreamSource, flow: HTTPFlow) -> None:
        self.context = context
        self.client = client
        self.flow = flow
        self.stage = Stage.OPEN
        self.server: Upstream | None = None
        self.request_transfer = RequestTransfer(self)
        self.response_transfer = ResponseTransfer(self)
        self._upstreams = upstreams
        self._attempts = 0
        self._websocket: WebSocketRelay | None = None
        flow.on_kill = self._killed

    def start(self) -> None:
        """Run the request head through the hooks; called once the head is read."""
        self.request_transfer.begin()

    # Called by the transfers.

    def hook(self, hook: Hook, then: Callable[[], None] | None = None) -> None:
        """Trigger C{hook}; then, unless the exchange ended meanwhile, call C{then()}."""
        triggered = self.context.addons.trigger(hook)
        if then is None:
            triggered.addErrback(self._internal_error)
        elif triggered.called:
            # Every addon answered at once (the common case): go on without Deferred callbacks.
            try:
                self._after_hook(None, then)
            except Exception:
                self._internal_error(Failure())
        else:
            triggered.addCallback(self._after_hook, then).addErrback(self._internal_error)

    def _after_hook(self, _: object, then: Callable[[], None]) -> None:
        if self.stage is Stage.OPEN:
            then()

    def connect(self, then: Callable[[Upstream], None]) -> None:
        """Get an upstream for the request as it is now, then call C{then(upstream)}."""
        self._attempts += 1
        connecting = self._upstreams.for_flow(self.flow)
        connecting.addCallbacks(self._connected, self.source_failed, callbackArgs=(then,))
        connecting.addErrback(self._internal_error)

    def _connected(self, upstream: Upstream, then: Callable[[Upstream], None]) -> None:
        if self.stage is not Stage.OPEN:
            upstream.release()
            return
        self.server = upstream
        self.flow.server_conn = upstream.server
        then(upstream)

    def prepare_upgrade(self, headers: Headers, upstream: Upstream) -> Headers:
        """The headers a buffered request goes upstream with: a WebSocket upgrade gets its relay's."""
        if not framing.is_websocket_upgrade(self.flow.request):
            return headers
        # autobahn is imported on the first upgrade, not at start-up: it costs about
        # 8 MiB of resident memory that a proxy without WebSocket traffic never needs.
        from twisted_mitm.proxy.wsrelay import WebSocketRelay

        self._websocket = WebSocketRelay(self.context, self.flow)
        return self._websocket.upstream_headers(headers, upstream)

    def switch_to_websocket(self) -> bool:
        """The server accepted an upgrade: both connections go to the WebSocket relay, if there is one."""
        if self._websocket is None:
            return False
        try:
            self._websocket.start(self.client)
        except ProtocolError as error:
            self.fail(error)
            return True
        self.stage = Stage.SWITCHED
        return True

    def start_response_timer(self) -> None:
        """From now on (the request is sent whole), a server silent for too long fails the exchange."""
        timeout = self.context.settings.response_timeout
        if self.server is not None and timeout is not None and self.stage is Stage.OPEN:
            self.server.watch_silence(timeout, self._server_silent)

    def _server_silent(self, timeout: float) -> None:
        self.fail(ProtocolError(504, f"the server sent nothing for {timeout:g} seconds"))

    def client_silent(self, timeout: float) -> None:
        """The client stopped sending its request body for C{timeout} seconds."""
        self.fail(ProtocolError(408, f"the client sent nothing of its request body for {timeout:g} seconds"))

    def respond(self) -> None:
        """A hook answered the request itself: deliver that response."""
        self.response_transfer.deliver_made()

    def read_whole(self, transfer: Transfer) -> None:
        """A transfer read its body whole."""
        if transfer is self.request_transfer:
            self._maybe_finish()

    def delivered(self, transfer: Transfer) -> None:
        """A transfer delivered its message whole."""
        if transfer is self.response_transfer:
            self._maybe_finish()

    # The response (ResponseReceiver, called by the upstream).

    def response_head(self, head: http1.ResponseHead) -> None:
        """A response head arrived from the server."""
        if self.stage is not Stage.OPEN:
            return
        if 100 <= head.status_code < 200 and head.status_code != 101:
            self._relay_interim(head)
            return
        self.flow.response = Response(
            head.http_version, head.status_code, head.reason, Headers(head.headers), None, None, time.time(), None
        )
        self.response_transfer.begin()

    def _relay_interim(self, head: http1.ResponseHead) -> None:
        if head.status_code == 100 and not self.request_transfer.relays_continue:
            return
        self.client.send_interim(head.status_code, head.reason, head.headers)

    def response_complete(self) -> None:
        """The server finished sending the response body."""
        if self.server is not None:
            self.server.release()

    def server_failed(self, error: ProtocolError) -> None:
        """The server broke the protocol or went away before the response was complete."""
        if self.stage is not Stage.OPEN:
            return
        if self._may_retry():
            self.connect(self.request_transfer.resend)
            return
        self.fail(error)

    def _may_retry(self) -> bool:
        """Whether a reused connection closed before any response (the server timed it out
        meanwhile), so a buffered request can be sent once more on a fresh one."""
        server = self.server
        return (
            self._attempts == 1
            and server is not None
            and not server.connected
            and server.requests_sent > 1
            and self.flow.response is None
            and self.request_transfer.read_whole
            and self.request_transfer.pipe is None
        )

    # Ending.

    def _maybe_finish(self) -> None:
        if self.stage is not Stage.OPEN or self.response_transfer.phase is not Phase.DONE:
            return
        if not self.request_transfer.read_whole:
            self.response_transfer.closes_connection = True
            if self.server is not None:
                self.server.abort()
        self.stage = Stage.FINISHED
        self.flow.live = False
        keep_alive = not self.response_transfer.closes_connection and framing.client_keeps_alive(self.flow.request)
        self.client.exchange_done(self, keep_alive)

    def source_failed(self, reason: Failure) -> None:
        """A body's source failed, or an upstream could not be had."""
        self.fail(reason.value if reason.check(ProtocolError) else reason)

    def client_gone(self) -> None:
        """The client disconnected: give up the exchange and the upstream connection."""
        if self.stage is Stage.OPEN:
            self.fail(ProtocolError(499, "the client disconnected"), client_gone=True)

    def _killed(self) -> None:
        """C{flow.kill()}: drop both connections; the flow ends in its one C{error} hook."""
        if self.stage is Stage.OPEN:
            self._abandon()
            self.client.abort()
            self.hook(ErrorHook(self.flow))

    def _internal_error(self, reason: Failure) -> None:
        self.log.failure("{url}: internal error", reason, url=self.flow.request.pretty_url)
        self.fail(ProtocolError(502, f"internal error: {reason.getErrorMessage()}"))

    def fail(self, problem: ProtocolError | Failure | BaseException, client_gone: bool = False) -> None:
        """End the exchange on an error: answer it if nothing was sent yet, else cut the stream."""
        if self.stage is not Stage.OPEN:
            return
        message = self._describe(problem)
        self.flow.error = Error(message)
        self._abandon()
        if client_gone:
            pass
        elif self.response_transfer.head_sent:
            self.client.abort()
        else:
            status = problem.status if isinstance(problem, ProtocolError) else 502
            self.response_transfer.send_error(error_response(status, message))
            self.client.exchange_done(self, keep_alive=False)
        self.hook(ErrorHook(self.flow))

    def _abandon(self) -> None:
        self.stage = Stage.FAILED
        self.flow.live = False
        for transfer in (self.request_transfer, self.response_transfer):
            transfer.abandon()
        if self.server is not None:
            self.server.abort()

    def _describe(self, problem: ProtocolError | Failure | BaseException) -> str:
        if isinstance(problem, ProtocolError):
            return problem.reason
        if isinstance(problem, Failure):
            if not problem.check(ProtocolError):
                self.log.failure("{url}: unexpected failure", problem, url=self.flow.request.pretty_url)
            return problem.getErrorMessage()
        return str(problem)

# -*- test-case-name: tests.test_clientplayback -*-
"""Client replay: recorded requests sent again through the normal hook chain (mitmproxy's C{-C}).

A replayed request needs no socket on the client's side: L{ReplayClientStream} stands
where a client connection stands for an L{Exchange} (it is a L{ClientStream}), hands the
recorded body over as the request body, and takes the response as a client would, so
every hook runs as for a live flow and the server side (connections, modes, TLS) is the
one live requests use. L{ClientPlayback} is the addon behind the C{client_replay}
option (C{-C PATH}) and the C{replay.client} commands.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer, IProtocol
from twisted.logger import Logger
from zope.interface import implementer

from twisted_mitm import ctx, http1
from twisted_mitm.command import command
from twisted_mitm.exceptions import CommandError, FlowReadException, OptionsError
from twisted_mitm.flow import Flow
from twisted_mitm.http import HTTPFlow, Request, Response
from twisted_mitm.io import read_flows_from_paths
from twisted_mitm.proxy.exchange import Exchange
from twisted_mitm.proxy.pipe import BodySink, Fields
from twisted_mitm.proxy.serverside import ServerConnections

if TYPE_CHECKING:
    from twisted_mitm.proxy.context import ProxyContext
    from twisted_mitm.proxy.streams import Upstream

_log = Logger()


@implementer(IPushProducer, IConsumer)
class ReplayClientStream:
    """The client of a replayed request: the recorded body goes in, the response is taken and dropped.

    The exchange records the response on the flow as for any client (buffered bodies
    whole, streamed ones as sizes, or spooled with C{store_streamed_bodies}).
    """

    def __init__(self, request: Request, done: Callable[[], None]) -> None:
        self._body = request.raw_content or b""
        self._done = done
        self._ended = False
        chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
        if chunked:
            self.framing: http1.BodyFraming | None = http1.BodyFraming(http1.FramingKind.CHUNKED)
        elif self._body or "content-length" in request.headers:
            self.framing = http1.BodyFraming(http1.FramingKind.LENGTH, len(self._body))
        else:
            self.framing = http1.BodyFraming(http1.FramingKind.NONE)

    # BodySource: the recorded body, at once.

    @property
    def producer(self) -> IPushProducer:
        return self

    def hold_body(self) -> None:
        """Nothing to hold: the body is read only when L{read_body} asks."""

    def read_body(self, sink: BodySink) -> None:
        if self._body:
            sink.write(http1.Data(self._body))
        sink.finish(())

    def pauseProducing(self) -> None:
        """The body is in memory already: nothing to pause."""

    def resumeProducing(self) -> None:
        """See L{pauseProducing}."""

    def stopProducing(self) -> None:
        self._end()

    # ClientStream: the response is taken and dropped.

    @property
    def consumer(self) -> IConsumer:
        return self

    def write(self, data: bytes) -> None:
        """Response bytes: dropped (the flow has what the hooks saw)."""

    def writeSequence(self, data: Sequence[bytes]) -> None:
        """See L{write}."""

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Nothing ever fills up here: the producer is never paused."""

    def unregisterProducer(self) -> None:
        """Nothing to let go of."""

    def send_interim(self, status_code: int, reason: bytes, headers: Fields) -> None:
        """1xx responses: nothing to tell."""

    def send_whole_response(self, request: Request, response: Response, has_body: bool, done: Callable[[], None]) -> None:
        done()

    def start_response(self, request: Request, response: Response, source: http1.BodyFraming | None, transformed: bool) -> tuple[Any, bool]:
        return _DroppingWriter(self), False

    def abort(self) -> None:
        self._end()

    def exchange_done(self, exchange: object, keep_alive: bool) -> None:
        self._end()

    def switch_protocols(self, protocol: IProtocol, replay: bytes = b"", upstream: Upstream | None = None) -> None:
        """A replayed WebSocket upgrade is not relayed: the replay ends with the 101."""
        self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._done()


class _DroppingWriter:
    """The body writer of a streamed response to a replayed request: counts nothing, drops all."""

    def __init__(self, transport: IConsumer) -> None:
        self.transport = transport

    def write_piece(self, piece: http1.Data) -> None:
        """Dropped."""

    def write(self, data: bytes) -> None:
        """Dropped."""

    def finish(self, trailers: Fields) -> None:
        """Nothing to end."""


def replay_request(context: ProxyContext, recorded: HTTPFlow) -> Deferred[HTTPFlow]:
    """Send a copy of C{recorded}'s request through the hook chain and upstream; fires with
    the new flow (C{is_replay == "request"}) once it has its response or its error."""
    flow = recorded.copy()
    assert isinstance(flow, HTTPFlow)
    flow.response = None
    flow.error = None
    flow.websocket = None
    flow.is_replay = "request"
    flow.live = True
    flow.client_conn = copy.copy(flow.client_conn)
    finished: Deferred[HTTPFlow] = Deferred()
    upstreams = ServerConnections(context, flow.client_conn)

    def done() -> None:
        upstreams.close()
        finished.callback(flow)

    stream = ReplayClientStream(flow.request, done)
    Exchange(context, stream, upstreams, flow).start()
    return finished


class ClientPlayback:
    """C{client_replay} / C{-C}: replay recorded requests once the proxy runs, then stop
    (unless C{keepserving}); the C{replay.client} commands queue more.

    Requests are replayed C{client_replay_concurrency} at a time (1 by default, in order).
    """

    def __init__(self, context: ProxyContext) -> None:
        self._context = context
        self._queue: deque[HTTPFlow] = deque()
        self._running = 0
        self._from_option = False
        self._loaded: list[Flow] = []

    def configure(self, updated: set[str]) -> None:
        if "client_replay" in updated and ctx.options.client_replay:
            try:
                self._loaded = read_flows_from_paths(ctx.options.client_replay)
            except FlowReadException as error:
                raise OptionsError(f"client_replay: {error}") from None

    def running(self) -> None:
        if ctx.options.client_replay:
            self._from_option = True
            self.start_replay(self._loaded)

    @command("replay.client")
    def start_replay(self, flows: Sequence[Flow]) -> None:
        """Replay the requests of C{flows} (HTTP flows; others are skipped with a warning)."""
        for flow in flows:
            if not isinstance(flow, HTTPFlow) or flow.request is None:
                _log.warn("replay.client: {flow!r} is not an HTTP flow; skipped", flow=flow)
                continue
            if flow.live:
                raise CommandError("replay.client: a live flow cannot be replayed while it runs")
            self._queue.append(flow)
        self._next()

    @command("replay.client.file")
    def load_file(self, path: str) -> None:
        """Replay the requests of a flow file."""
        try:
            flows = read_flows_from_paths([path])
        except FlowReadException as error:
            raise CommandError(f"replay.client.file: {error}") from None
        self.start_replay(flows)

    @command("replay.client.count")
    def count(self) -> int:
        """How many requests are waiting or under way."""
        return len(self._queue) + self._running

    @command("replay.client.stop")
    def stop_replay(self) -> None:
        """Forget the requests still waiting (those under way finish)."""
        self._queue.clear()

    def _next(self) -> None:
        limit = ctx.options.client_replay_concurrency
        while self._queue and (limit < 0 or self._running < max(limit, 1)):
            recorded = self._queue.popleft()
            self._running += 1
            replaying = replay_request(self._context, recorded)
            replaying.addBoth(self._replayed)
        if not self._queue and not self._running and self._from_option:
            self._from_option = False
            if not ctx.options.keepserving:
                ctx.master.shutdown()

    def _replayed(self, result: object) -> None:
        self._running -= 1
        if isinstance(result, HTTPFlow) and result.error is not None:
            _log.warn("replay.client: {url}: {error}", url=result.request.pretty_url, error=result.error)
        self._next()

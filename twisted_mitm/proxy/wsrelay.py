# -*- test-case-name: tests.test_websocket -*-
"""WebSocket interception: an autobahn protocol on each leg, messages relayed between them.

How a connection gets here (docs/design.md, "WebSocket relay"):

  1. The upgrade request is an ordinary flow in L{Exchange}. Just before it goes
     upstream, L{WebSocketRelay.upstream_headers} builds the server leg, an autobahn
     client protocol whose handshake writes are captured instead of sent, and puts its
     C{Sec-WebSocket-Key} and extension offers on the request.
  2. Our HTTP/1 codec reads the answer, so a refusal is relayed like any response.
  3. A 101 that passed the hooks goes to L{WebSocketRelay.start}: the server leg checks
     it (accept key, extensions, subprotocol). Its C{onConnect} then hands the client
     connection to the client leg, an autobahn server protocol fed the client's own
     request, whose C{onConnect} answers with the server's subprotocol and headers.
     The server leg's C{onConnect} Deferred fires once the client leg is open.

Each leg negotiates its own permessage-deflate, so payloads are always seen
decompressed. Messages (or, with C{stream_websockets}, frames) go from one leg to the
other; hooks run one at a time, in arrival order, through one queue per relay.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from autobahn.websocket.compress import (
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
    PerMessageDeflateResponseAccept,
)
from twisted.internet import error as net_error
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mitm import http1
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.flow import Error
from twisted_mitm.hooks import WebsocketEndHook, WebsocketMessageHook, WebsocketStartHook
from twisted_mitm.http import Headers, HTTPFlow
from twisted_mitm.proxy.pipe import Hold, Side, Valve
from twisted_mitm.websocket import Opcode, WebSocketData, WebSocketMessage

if TYPE_CHECKING:
    from twisted_mitm.proxy.context import ProxyContext
    from twisted_mitm.proxy.streams import ClientStream, Upstream

#: Fields of a 101 that each leg writes for itself; the others are relayed to the client.
_HANDSHAKE_FIELDS = frozenset(
    {
        "upgrade",
        "connection",
        "sec-websocket-accept",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "content-length",
        "transfer-encoding",
    }
)

#: The option bounding what one flow keeps.
_PER_FLOW_OPTION = "websocket_max_stored_bytes"

#: Hook waits (observation hooks in stream mode) allowed before the sockets are paused.
_STREAM_QUEUE_LIMIT = 32


@implementer(ITransport)
class _CapturingTransport:
    """The server leg's transport: keeps what autobahn writes before the upgrade, then passes through.

    autobahn composes its own upgrade request; we only take its key and extension
    offers from it (L{WebSocketRelay.upstream_headers}) and send the client's request.
    """

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.captured = b""
        self.capturing = True

    def write(self, data: bytes) -> None:
        if self.capturing:
            self.captured += data
        else:
            self._transport.write(data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self._transport.loseConnection()

    def abortConnection(self) -> None:
        self._transport.abortConnection()

    def getPeer(self) -> Any:
        return self._transport.getPeer()

    def getHost(self) -> Any:
        return self._transport.getHost()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._transport.unregisterProducer()


class _Leg:
    """What both autobahn protocols do: report to the relay, and relay control frames.

    In stream mode the frame-level callbacks forward data as it arrives and nothing is
    accumulated; in message mode autobahn's defaults reassemble whole messages.
    """

    side: Side
    _lost = False

    def __init__(self, relay: WebSocketRelay) -> None:
        super().__init__()
        self.relay = relay

    # Data.

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.relay.message_received(self, payload, not isBinary)

    def onMessageBegin(self, isBinary: bool) -> None:
        super().onMessageBegin(isBinary)  # type: ignore[misc]
        if self.relay.streaming:
            self.relay.stream_begin(self, not isBinary)

    def onMessageFrameBegin(self, length: int) -> None:
        if not self.relay.streaming:
            super().onMessageFrameBegin(length)  # type: ignore[misc]

    def onMessageFrameData(self, payload: bytes) -> None:
        if self.relay.streaming:
            self.relay.stream_data(self, payload)
        else:
            super().onMessageFrameData(payload)  # type: ignore[misc]

    def onMessageFrameEnd(self) -> None:
        if not self.relay.streaming:
            super().onMessageFrameEnd()  # type: ignore[misc]

    def onMessageEnd(self) -> None:
        if self.relay.streaming:
            self.relay.stream_end(self)
        else:
            super().onMessageEnd()  # type: ignore[misc]

    # Control frames: pings and pongs go end to end.

    def onPing(self, payload: bytes) -> None:
        if not self.relay.relay_control(self, payload, ping=True):
            super().onPing(payload)  # type: ignore[misc]

    def onPong(self, payload: bytes) -> None:
        self.relay.relay_control(self, payload, ping=False)

    def onCloseFrame(self, code: int | None, reasonRaw: bytes | None) -> bool | None:
        opened = self.state == self.STATE_OPEN  # type: ignore[attr-defined]
        stop = super().onCloseFrame(code, reasonRaw)  # type: ignore[misc]
        if opened and not stop:
            self.relay.close_received(self, self.remoteCloseCode, self.remoteCloseReason)  # type: ignore[attr-defined]
        return stop

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.relay.leg_closed(self, wasClean, code, reason)

    def connectionLost(self, reason: Failure = net_error.ConnectionDone) -> None:  # type: ignore[assignment]
        """Tolerates a second call (a half-close followed by the real end)."""
        if not self._lost:
            self._lost = True
            super().connectionLost(reason)  # type: ignore[misc]

    @property
    def can_send(self) -> bool:
        """Whether messages can still be sent to this leg's peer."""
        return self.state == self.STATE_OPEN  # type: ignore[attr-defined]


class ServerLeg(_Leg, WebSocketClientProtocol):
    """Faces the server: an autobahn client whose handshake we send through our own codec.

    @ivar handshake_failure: why the server's 101 was not acceptable, if it was not.
    """

    side = Side.SERVER
    handshake_failure: str | None = None

    def onConnect(self, response: Any) -> Deferred[None]:
        return self.relay.server_accepted(response)

    def failHandshake(self, reason: str) -> None:
        self.handshake_failure = reason
        super().failHandshake(reason)


class ClientLeg(_Leg, WebSocketServerProtocol):
    """Faces the client: an autobahn server fed the client's upgrade request."""

    side = Side.CLIENT

    def onConnect(self, request: Any) -> tuple[str | None, dict[str, list[str]]]:
        return self.relay.client_connecting()

    def onOpen(self) -> None:
        self.relay.client_open()

    def failHandshake(self, reason: str, code: int = 400, responseHeaders: Any = None) -> None:
        self.relay.client_refused(reason)
        super().failHandshake(reason, code, responseHeaders)


def not_stored(size: int, option: str) -> bytes:
    """The marker left in place of a payload that C{option}'s budget did not leave room for."""
    return b"[twisted_mitm: %d bytes not stored (%s)]" % (size, option.encode())


class _Streamed:
    """One message being streamed from a leg: its type and as much payload as may be kept."""

    def __init__(self, is_text: bool, budget: int) -> None:
        self.is_text = is_text
        self.size = 0
        self.frames_sent = 0
        self._budget = budget
        self._pieces: list[bytes] | None = []

    def add(self, payload: bytes) -> None:
        self.size += len(payload)
        if self._pieces is not None:
            if self.size > self._budget:
                self._pieces = None
            else:
                self._pieces.append(payload)

    def message(self, source: Side) -> tuple[WebSocketMessage, int | None]:
        """The finished message, and its size if its payload was not kept."""
        opcode = Opcode.TEXT if self.is_text else Opcode.BINARY
        from_client = source is Side.CLIENT
        if self._pieces is None:
            return WebSocketMessage(opcode, from_client, not_stored(self.size, _PER_FLOW_OPTION)), self.size
        return WebSocketMessage(opcode, from_client, b"".join(self._pieces)), None


class WebSocketRelay:
    """Both legs of one intercepted WebSocket connection and what passes between them.

    @ivar streaming: C{stream_websockets} as it was when the connection opened.
    """

    _log = Logger()

    def __init__(self, context: ProxyContext, flow: HTTPFlow) -> None:
        settings = context.settings
        self.context = context
        self.flow = flow
        self.streaming = settings.stream_websockets
        self._max_message = settings.websocket_max_message_size
        self._stored = context.stored.for_flow(settings.websocket_max_stored_bytes, _PER_FLOW_OPTION, self._forget)
        self._server_leg: ServerLeg | None = None
        self._client_leg: ClientLeg | None = None
        self._client_side: ClientStream | None = None
        self._server_side: Upstream | None = None
        self._client_open: Deferred[None] = Deferred()
        self._valves: dict[Side, Valve] = {}
        self._queue: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._busy = False
        self._draining = False
        self._started = False
        self._ended = False
        self._gone: set[Side] = set()
        self._closing: set[Side] = set()
        self._streams: dict[Side, _Streamed] = {}
        self._waiting: dict[Side, list[WebSocketMessage]] = {Side.CLIENT: [], Side.SERVER: []}

    # The handshake.

    def upstream_headers(self, headers: Headers, server: Upstream) -> Headers:
        """Build the server leg on C{server}; return C{headers} with its key and offers."""
        protocols = [token.decode("latin-1") for token in http1.field_elements(headers.fields, b"sec-websocket-protocol")]
        factory = WebSocketClientFactory(reactor=self.context.reactor, protocols=protocols, useragent=None)
        factory.setProtocolOptions(
            perMessageCompressionOffers=[PerMessageDeflateOffer()],
            perMessageCompressionAccept=PerMessageDeflateResponseAccept,
            **self._leg_options(),
        )
        leg = ServerLeg(self)
        leg.factory = factory
        capture = _CapturingTransport(server.consumer)
        leg.makeConnection(capture)
        self._server_leg = leg
        self._server_side = server
        offer = _parse_request_fields(capture.captured)
        outgoing = Headers(headers.fields)
        outgoing["Sec-WebSocket-Key"] = offer.get("sec-websocket-key", "")
        if "sec-websocket-extensions" in outgoing:
            del outgoing["sec-websocket-extensions"]
        extensions = offer.get("sec-websocket-extensions")
        if extensions:
            outgoing["Sec-WebSocket-Extensions"] = extensions
        capture.capturing = False
        return outgoing

    def _leg_options(self) -> dict[str, Any]:
        return {
            "openHandshakeTimeout": 0,
            "autoPingInterval": 0,
            "echoCloseCodeReason": True,
            "failByDrop": False,
            "maxMessagePayloadSize": 0 if self.streaming else self._max_message,
            "maxFramePayloadSize": 0,
        }

    def start(self, client_side: ClientStream) -> None:
        """The server's 101 passed the hooks: open both legs, then run C{websocket_start}.

        @raise ProtocolError: (502) the server's 101 is not a valid WebSocket answer.
        """
        assert self._server_leg is not None and self._server_side is not None and self.flow.response is not None
        self._client_side = client_side
        self.flow.websocket = WebSocketData()
        response = self.flow.response
        head = http1.assemble_response_head(b"HTTP/1.1", 101, response.data.reason, response.headers.fields)
        self._server_side.switch_to(self._server_leg, head)
        if self._server_leg.handshake_failure is not None:
            self.flow.websocket = None
            raise ProtocolError(502, f"the server's WebSocket handshake is not valid: {self._server_leg.handshake_failure}")
        if self._client_leg is None or not self._client_leg.can_send:
            return
        self.flow.on_kill = self.kill
        self.context.websockets.add(self.flow, self)
        self._pair_transports(self._client_leg.transport, self._server_side.consumer)
        self._update_valves()
        self._hook(WebsocketStartHook(self.flow), self._started_hooks)

    def server_accepted(self, response: Any) -> Deferred[None]:
        """The server leg took the 101: open the client leg; the server leg opens after it."""
        assert self._client_side is not None and self.flow.response is not None
        leg = ClientLeg(self)
        factory = WebSocketServerFactory(reactor=self.context.reactor, server=None)
        factory.setProtocolOptions(
            perMessageCompressionAccept=_accept_deflate,
            allowNullOrigin=True,
            **self._leg_options(),
        )
        leg.factory = factory
        self._client_leg = leg
        request = self.flow.request
        replay = http1.assemble_request_head(request.data.method, request.data.path, b"HTTP/1.1", request.headers.fields)
        self._client_side.switch_protocols(leg, replay, self._server_side)
        return self._client_open

    def client_connecting(self) -> tuple[str | None, dict[str, list[str]]]:
        """What the client leg answers: the server's subprotocol and its other headers."""
        assert self._server_leg is not None and self.flow.response is not None
        extra: dict[str, list[str]] = {}
        for name, value in self.flow.response.headers.items(multi=True):
            if name.lower() not in _HANDSHAKE_FIELDS:
                extra.setdefault(name, []).append(value)
        return self._server_leg.websocket_protocol_in_use, extra

    def client_open(self) -> None:
        self._client_open.callback(None)

    def client_refused(self, reason: str) -> None:
        """The client leg rejected the client's request (autobahn answers it with a 400)."""
        self.flow.error = Error(f"the client's WebSocket handshake is not valid: {reason}")
        if not self._client_open.called:
            self._client_open.errback(Failure(ProtocolError(400, reason)))

    def _pair_transports(self, client: Any, server: Any) -> None:
        """Each leg's socket is paused while the other's is full (the portforward idiom)."""
        self._valves[Side.CLIENT] = Valve(client)
        self._valves[Side.SERVER] = Valve(server)
        server.registerProducer(self._valves[Side.CLIENT], True)
        client.registerProducer(self._valves[Side.SERVER], True)

    def _started_hooks(self) -> None:
        self._started = True
        self._run_queue()

    # Messages.

    def message_received(self, leg: _Leg, payload: bytes, is_text: bool) -> None:
        """A whole message arrived (message mode): it waits for its hook, then goes on."""
        message = WebSocketMessage(Opcode.TEXT if is_text else Opcode.BINARY, leg.side is Side.CLIENT, payload)
        self._enqueue(self._message_hook, message, True)

    def inject(self, to_client: bool, content: bytes, is_text: bool) -> None:
        """Send a message of our own towards the client or the server, after its hook."""
        message = WebSocketMessage(Opcode.TEXT if is_text else Opcode.BINARY, not to_client, content, injected=True)
        self._enqueue(self._message_hook, message, True)

    def _message_hook(self, message: WebSocketMessage, forward: bool) -> Deferred[None]:
        self._record(message)
        waiting = self.context.addons.trigger(WebsocketMessageHook(self.flow))
        if forward:
            waiting.addCallback(lambda _: self._send_whole(message))
        return waiting

    def _send_whole(self, message: WebSocketMessage) -> None:
        """Send a message that passed its hook (unless dropped), then let the store keep it."""
        source = Side.CLIENT if message.from_client else Side.SERVER
        if source in self._streams and not message.dropped:
            self._waiting[source].append(message)
            return
        destination = self._leg(source.other)
        if not message.dropped and destination is not None and destination.can_send:
            try:
                destination.sendMessage(message.content, isBinary=not message.is_text)
            except Exception:
                self._log.failure("{url}: cannot send a WebSocket message", url=self.flow.request.pretty_url)
        self._stored.keep(message, len(message.content))

    def stream_begin(self, leg: _Leg, is_text: bool) -> None:
        """A message starts (stream mode): start it on the other leg at once."""
        self._streams[leg.side] = _Streamed(is_text, self._stored.budget)
        destination = self._leg(leg.side.other)
        if destination is not None:
            destination.beginMessage(isBinary=not is_text)

    def stream_data(self, leg: _Leg, payload: bytes) -> None:
        """Message data arrived (stream mode): send it as a frame, keep what the budget allows."""
        streamed = self._streams[leg.side]
        streamed.add(payload)
        destination = self._leg(leg.side.other)
        if destination is not None:
            destination.sendMessageFrame(payload)
            streamed.frames_sent += 1

    def stream_end(self, leg: _Leg) -> None:
        """The message ended (stream mode): end it on the other leg and let hooks observe it."""
        streamed = self._streams.pop(leg.side)
        destination = self._leg(leg.side.other)
        if destination is not None:
            if not streamed.frames_sent:
                destination.sendMessageFrame(b"")
            destination.endMessage()
        message, size = streamed.message(leg.side)
        self._enqueue(self._observe, message, size)
        waiting, self._waiting[leg.side] = self._waiting[leg.side], []
        for queued in waiting:
            self._send_whole(queued)

    def _observe(self, message: WebSocketMessage, not_kept: int | None) -> Deferred[None]:
        """Record a streamed message and run its hook; C{not_kept}: the size of a payload not kept."""
        self._record(message)
        if not_kept is not None:
            self._count_not_stored(not_kept)
        waiting = self.context.addons.trigger(WebsocketMessageHook(self.flow))
        if not_kept is None:
            waiting.addCallback(lambda _: self._stored.keep(message, len(message.content)))
        return waiting

    # What is kept.

    def _record(self, message: WebSocketMessage) -> None:
        assert self.flow.websocket is not None
        self.flow.websocket.messages.append(message)

    def _forget(self, message: WebSocketMessage, size: int, option: str) -> None:
        """A budget is exceeded: the message stays in the list, its payload becomes a marker."""
        message.content = not_stored(size, option)
        self._count_not_stored(size)

    def _count_not_stored(self, size: int) -> None:
        metadata = self.flow.metadata
        metadata["websocket_bytes_not_stored"] = metadata.get("websocket_bytes_not_stored", 0) + size

    def relay_control(self, leg: _Leg, payload: bytes, ping: bool) -> bool:
        """Pass a ping or pong to the other peer; C{False} if the other leg is not open."""
        destination = self._leg(leg.side.other)
        if destination is None or not destination.can_send:
            return False
        if ping:
            destination.sendPing(payload)
        else:
            destination.sendPong(payload)
        return True

    # Closing.

    def close_received(self, leg: _Leg, code: int | None, reason: str | None) -> None:
        """A peer started the closing handshake: pass its code and reason on, in order."""
        self._record_close(leg.side, 1005 if code is None else code, reason or "")
        self._closing.add(leg.side.other)
        self._enqueue(self._close_other, leg.side, code, reason)

    def _close_other(self, source: Side, code: int | None, reason: str | None) -> None:
        destination = self._leg(source.other)
        if destination is not None and destination.can_send:
            # No close-handshake timer: the peer answers once it has read all that came
            # before the close, and a slow reader must not be cut off before the end.
            destination.closeHandshakeTimeout = 0  # type: ignore[attr-defined]
            destination.sendCloseFrame(code, reason.encode() if reason else None)

    def leg_closed(self, leg: _Leg, was_clean: bool, code: int | None, reason: str | None) -> None:
        """A leg's connection is gone: end the other one the same way, then the flow."""
        self._gone.add(leg.side)
        if not self._started and self._client_leg is None:
            return
        if getattr(leg, "wasMaxMessagePayloadSizeExceeded", False):
            self._log.warn(
                "{url}: the {peer} sent a WebSocket message larger than websocket_max_message_size "
                "({limit} bytes); closed with 1009",
                url=self.flow.request.pretty_url,
                peer=leg.side.value,
                limit=self._max_message,
            )
        if leg.failedByMe and leg.localCloseCode is not None:  # type: ignore[attr-defined]
            code, reason = leg.localCloseCode, (leg.localCloseReason or b"").decode()  # type: ignore[attr-defined]
        self._record_close(leg.side, code if code is not None else 1006, reason or "")
        other = leg.side.other
        if other not in self._gone and other not in self._closing:
            self._closing.add(other)
            abrupt = not was_clean and not leg.failedByMe  # type: ignore[attr-defined]
            self._enqueue(self._end_other, other, abrupt, leg.side.value)
        self._maybe_end()

    def _end_other(self, other: Side, abrupt: bool, peer: str) -> None:
        """The peer dropped its connection: drop the other one; the proxy closed it: close the other."""
        destination = self._leg(other)
        if destination is None or other in self._gone:
            return
        if not abrupt and destination.can_send:
            destination.sendCloseFrame(1001, f"the {peer} connection was closed".encode())
        else:
            destination.dropConnection(abort=True)

    def _record_close(self, source: Side, code: int, reason: str) -> None:
        websocket = self.flow.websocket
        if websocket is not None and websocket.closed_by_client is None:
            websocket.closed_by_client = source is Side.CLIENT
            websocket.close_code = code
            websocket.close_reason = reason

    def kill(self) -> None:
        """C{flow.kill()}: drop both connections, forward nothing more."""
        self._queue.clear()
        for leg in (self._client_leg, self._server_leg):
            if leg is not None:
                leg.dropConnection(abort=True)

    def _maybe_end(self) -> None:
        if self._ended or len(self._gone) < 2 or self._busy or self._queue:
            return
        self._ended = True
        self.context.websockets.remove(self.flow)
        self._stored.release()
        websocket = self.flow.websocket
        assert websocket is not None
        websocket.timestamp_end = time.time()
        self.flow.live = False
        if self._started:
            self.context.addons.trigger(WebsocketEndHook(self.flow))
        self._detach_legs()

    def _detach_legs(self) -> None:
        """Both connections are gone and nothing more will be reported: the legs let go of the relay.

        The legs stay referenced from the protocols they took over from, which sit in
        reference cycles (and autobahn holds each leg in a cycle of its own Deferreds); as
        long as a leg held the relay, the relay and the flow with all its stored messages
        lived until the garbage collector's next full pass, which may be hours away.
        """
        for leg in (self._client_leg, self._server_leg):
            if leg is not None:
                del leg.relay

    # The queue: hooks one at a time, in arrival order.

    def _enqueue(self, action: Callable[..., Any], *args: Any) -> None:
        self._queue.append((action, args))
        self._run_queue()

    def _run_queue(self) -> None:
        """Run queued actions in order; an action's Deferred holds the rest until it fires.

        A call made while the loop is running (an action that finished at once, or that
        queued another) returns at once and the running loop carries on, so a long queue
        of quick hooks does not recurse.
        """
        if self._draining:
            return
        self._draining = True
        try:
            while self._started and not self._busy and self._queue:
                action, args = self._queue.popleft()
                waiting = action(*args)
                if isinstance(waiting, Deferred):
                    self._busy = True
                    waiting.addCallback(self._action_done)
                    waiting.addErrback(self._internal_error)
        finally:
            self._draining = False
        self._update_valves()
        self._maybe_end()

    def _action_done(self, _: object) -> None:
        self._busy = False
        self._run_queue()

    def _internal_error(self, reason: Failure) -> None:
        self._log.failure("{url}: WebSocket relay error", reason, url=self.flow.request.pretty_url)
        self._busy = False
        self.kill()

    def _update_valves(self) -> None:
        limit = _STREAM_QUEUE_LIMIT if self.streaming else 0
        behind = len(self._queue) + self._busy > limit
        for valve in self._valves.values():
            if behind:
                valve.hold(Hold.HOOKS)
            else:
                valve.release(Hold.HOOKS)

    def _leg(self, side: Side) -> _Leg | None:
        return self._client_leg if side is Side.CLIENT else self._server_leg

    def _hook(self, hook: object, then: Callable[[], None]) -> None:
        triggered = self.context.addons.trigger(hook)
        triggered.addCallback(lambda _: then())
        triggered.addErrback(self._internal_error)


def _accept_deflate(offers: list[Any]) -> PerMessageDeflateOfferAccept | None:
    """The client leg accepts the client's first permessage-deflate offer."""
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


def _parse_request_fields(head: bytes) -> dict[str, str]:
    """The fields of a request head autobahn wrote, by lower-cased name."""
    reader = http1.RequestReader()
    reader.receive_data(head)
    event = reader.next_event()
    assert isinstance(event, http1.RequestHead)
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in event.headers}

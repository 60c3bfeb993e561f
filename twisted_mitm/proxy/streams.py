# -*- test-case-name: tests.test_proxy -*-
"""The two narrow faces an L{Exchange} talks to, whatever the wire beneath them.

An exchange reads a request from a L{ClientStream} and writes the response back to
it; it sends the request to an L{Upstream} obtained from an L{UpstreamSource} and reads
the response from there. Today an HTTP/1 client connection
(L{twisted_mitm.proxy.clientside}) and an HTTP/1 server connection
(L{twisted_mitm.proxy.serverside}) stand behind them; an HTTP/2 stream, a replayed
request or a mode that reaches the server another way can stand there as well.

Both faces are also a L{BodySource}: a message head is read and held until the exchange
has decided where its body goes (L{BodySource.read_body}); the C{producer} is what a
full destination pauses.

Each face writes the messages it is given in its own wire's terms: the exchange hands
over a L{Request} or L{Response} and gets back a L{BodyWriter} for a streamed body, so
an HTTP/1 connection frames it (Content-Length, chunked) and an HTTP/2 stream sends it
as DATA frames and trailers within its flow-control window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IConsumer, IProtocol, IPushProducer

    from twisted_mitm import http1
    from twisted_mitm.connection import Server
    from twisted_mitm.exceptions import ProtocolError
    from twisted_mitm.http import Headers, HTTPFlow, Request, Response
    from twisted_mitm.proxy.pipe import BodySink, BodyWriter, Fields


class BodySource(Protocol):
    """Where the body of the message just read comes from."""

    @property
    def framing(self) -> http1.BodyFraming | None:
        """How the body of the message just read is delimited."""

    @property
    def producer(self) -> IPushProducer:
        """Pausing this stops the body (and everything after it) from being read."""

    def hold_body(self) -> None:
        """Read nothing more until L{read_body} says where it goes."""

    def read_body(self, sink: BodySink) -> None:
        """Send the body of the message just read to C{sink}, and read it."""


class ClientStream(BodySource, Protocol):
    """The client's side of one exchange: its request comes from here, its response goes here."""

    @property
    def consumer(self) -> IConsumer:
        """Where response bytes are written."""

    def send_interim(self, status_code: int, reason: bytes, headers: Fields) -> None:
        """Send an informational (1xx) response."""

    def send_whole_response(self, request: Request, response: Response, has_body: bool, done: Callable[[], None]) -> None:
        """Send a response whose body is in memory; C{done()} once it was all handed over.

        @raise ValueError: the head cannot be sent (a script put CR, LF or NUL in it); nothing was sent.
        """

    def start_response(
        self, request: Request, response: Response, source: http1.BodyFraming | None, transformed: bool
    ) -> tuple[BodyWriter, bool]:
        """Send the head of a response whose body follows as it is read from C{source}
        (changed by a transform if C{transformed}); return the writer for the body and
        whether the connection must close after it.

        @raise ValueError: the head cannot be sent; nothing was sent.
        """

    def abort(self) -> None:
        """Drop the client's connection: the response cannot be completed."""

    def exchange_done(self, exchange: object, keep_alive: bool) -> None:
        """The exchange has answered the client."""

    def switch_protocols(self, protocol: IProtocol, replay: bytes = b"", upstream: Upstream | None = None) -> None:
        """Hand the client's connection to C{protocol} (it left HTTP, e.g. for WebSocket)."""


class ResponseReceiver(Protocol):
    """What an L{Upstream} tells the exchange whose request it carries."""

    def response_head(self, head: http1.ResponseHead) -> None:
        """A response head (interim or final) arrived."""

    def response_complete(self) -> None:
        """The response body ended cleanly."""

    def server_failed(self, error: ProtocolError) -> None:
        """The server broke the protocol or went away before the response was complete."""


class Upstream(BodySource, Protocol):
    """The server's side of one exchange: the request goes here, the response comes from here."""

    server: Server
    connected: bool
    requests_sent: int

    @property
    def consumer(self) -> IConsumer:
        """Where request bytes are written."""

    def send_whole_request(self, request: Request, headers: Headers, receiver: ResponseReceiver, done: Callable[[], None]) -> None:
        """Send C{request} with C{headers} and its body in memory, and expect its response;
        C{done()} once it was all handed over.

        @raise ValueError: the head cannot be sent (a script put CR, LF or NUL in it); nothing was sent.
        """

    def start_request(self, request: Request, source: http1.BodyFraming, transformed: bool, receiver: ResponseReceiver) -> BodyWriter:
        """Send the head of C{request}, whose body follows as it is read from C{source}, and
        expect its response; return the writer for the body.

        @raise ValueError: the head cannot be sent; nothing was sent.
        """

    def watch_silence(self, timeout: float, on_silence: Callable[[float], None]) -> None:
        """Call C{on_silence(timeout)} if the server sends nothing for C{timeout} seconds."""

    def release(self) -> None:
        """The exchange is over: serve the next request, or close."""

    def abort(self) -> None:
        """Drop the connection now: a stream must not look complete."""

    def switch_to(self, protocol: IProtocol, head: bytes) -> None:
        """Hand the connection to C{protocol} after a 101, with C{head} first."""


class UpstreamSource(Protocol):
    """Gives an exchange a connection to where its request goes."""

    def for_flow(self, flow: HTTPFlow) -> Deferred[Upstream]:
        """An upstream for the flow's request as it is now; fails with a L{ProtocolError}."""

# -*- test-case-name: tests.test_websocket_spike -*-
"""The spike behind the WebSocket relay's design (docs/design.md, "WebSocket relay").

Plain autobahn, in memory, no proxy code: what its client side does with a refusal,
whether its handshake can be captured and answered through someone else's HTTP codec,
and whether its server side can be fed an already-read request and held open by an
C{onConnect} Deferred. Each test pins one fact the relay relies on.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept, PerMessageDeflateResponseAccept
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from tests.support import reactor
from twisted_mitm import http1

_MAGIC = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class _Transport(StringTransport):
    """A StringTransport that, like Twisted's sockets, accepts C{unregisterProducer} with none
    registered: autobahn's C{dropConnection} always calls it."""

    def unregisterProducer(self) -> None:
        self.producer = None


def _client(**options: Any) -> tuple[WebSocketClientProtocol, StringTransport]:
    factory = WebSocketClientFactory("ws://origin.test/chat", reactor=reactor, protocols=["chat"])
    factory.protocol = WebSocketClientProtocol
    factory.setProtocolOptions(openHandshakeTimeout=0, **options)
    protocol = factory.buildProtocol(None)
    transport = _Transport()
    protocol.makeConnection(transport)
    return protocol, transport


def _request_fields(head: bytes) -> dict[bytes, bytes]:
    reader = http1.RequestReader()
    reader.receive_data(head)
    event = reader.next_event()
    assert isinstance(event, http1.RequestHead)
    return {name.lower(): value for name, value in event.headers}


def _accept(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _MAGIC).digest())


class ClientSideSpike(SynchronousTestCase):
    """autobahn's client protocol, which the relay uses to face the server."""

    def test_refusal_is_dropped(self) -> None:
        """Left to talk to the origin itself, autobahn drops a 403: its status and body never surface.

        This is why the relay does not let autobahn perform the upstream handshake: the
        client must see a refusal as the server sent it.
        """
        protocol, transport = _client()
        seen: list[Any] = []
        protocol.onConnect = seen.append  # type: ignore[method-assign]
        protocol.dataReceived(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 11\r\n\r\nnot for you")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(seen, [])

    def test_handshake_can_be_captured(self) -> None:
        """Its request is written at connect time: key and extension offers can be taken from it."""
        _, transport = _client(
            perMessageCompressionOffers=[PerMessageDeflateOffer()],
            perMessageCompressionAccept=PerMessageDeflateResponseAccept,
        )
        fields = _request_fields(transport.value())
        self.assertEqual(len(base64.b64decode(fields[b"sec-websocket-key"])), 16)
        self.assertIn(b"permessage-deflate", fields[b"sec-websocket-extensions"])

    def test_101_read_by_another_codec_opens_it(self) -> None:
        """A 101 read elsewhere and fed to it opens it, with the subprotocol and deflate agreed."""
        protocol, transport = _client(
            perMessageCompressionOffers=[PerMessageDeflateOffer()],
            perMessageCompressionAccept=PerMessageDeflateResponseAccept,
        )
        key = _request_fields(transport.value())[b"sec-websocket-key"]
        opened: Deferred[None] = Deferred()
        protocol.onConnect = lambda response: opened  # type: ignore[method-assign]
        protocol.dataReceived(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + _accept(key) + b"\r\nSec-WebSocket-Protocol: chat\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        )
        self.assertEqual(protocol.websocket_protocol_in_use, "chat")
        self.assertEqual([extension.EXTENSION_NAME for extension in protocol.websocket_extensions_in_use], ["permessage-deflate"])
        self.assertFalse(protocol.is_open.called)
        opened.callback(None)
        self.assertTrue(protocol.is_open.called)


class ServerSideSpike(SynchronousTestCase):
    """autobahn's server protocol, which the relay uses to face the client."""

    def test_fed_request_answers_with_other_legs_headers(self) -> None:
        """Fed an already-read request, it answers only when C{onConnect}'s Deferred fires, with what it carries."""
        factory = WebSocketServerFactory(reactor=reactor, server=None)
        factory.protocol = WebSocketServerProtocol
        factory.setProtocolOptions(openHandshakeTimeout=0)
        protocol = factory.buildProtocol(None)
        answer: Deferred[Any] = Deferred()
        protocol.onConnect = lambda request: answer  # type: ignore[method-assign]
        transport = _Transport()
        protocol.makeConnection(transport)
        protocol.dataReceived(
            b"GET /chat HTTP/1.1\r\nHost: origin.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: chat, superchat\r\n\r\n"
        )
        self.assertEqual(transport.value(), b"")
        answer.callback(("superchat", {"Set-Cookie": ["a=1", "b=2"]}))
        head = transport.value()
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "))
        self.assertIn(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", head)
        self.assertIn(b"Sec-WebSocket-Protocol: superchat\r\n", head)
        self.assertIn(b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n", head)
        self.assertNotIn(b"Server:", head)

    def test_begin_message_frame_does_not_compress(self) -> None:
        """With deflate agreed, C{beginMessageFrame}/C{sendMessageFrameData} send raw bytes under RSV1; C{sendMessageFrame} compresses.

        So the streaming relay forwards with C{beginMessage}/C{sendMessageFrame}/C{endMessage}.
        """
        factory = WebSocketServerFactory(reactor=reactor, server=None)
        factory.protocol = WebSocketServerProtocol
        factory.setProtocolOptions(openHandshakeTimeout=0, perMessageCompressionAccept=lambda offers: PerMessageDeflateOfferAccept(offers[0]))
        protocol = factory.buildProtocol(None)
        transport = _Transport()
        protocol.makeConnection(transport)
        protocol.dataReceived(
            b"GET / HTTP/1.1\r\nHost: origin.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        )
        self.assertIn(b"Sec-WebSocket-Extensions: permessage-deflate", transport.value())
        payload = b"a" * 1000
        for send in ("raw", "compressed"):
            transport.clear()
            protocol.beginMessage(isBinary=True)
            if send == "raw":
                protocol.beginMessageFrame(len(payload))
                protocol.sendMessageFrameData(payload)
            else:
                protocol.sendMessageFrame(payload)
            protocol.endMessage()
            sent = transport.value()
            self.assertEqual(sent[0] & 0x40, 0x40)
            if send == "raw":
                self.assertIn(payload, sent)
            else:
                self.assertNotIn(payload, sent)
                self.assertLess(len(sent), 100)

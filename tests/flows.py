"""Small flows built from the real models, for tests of code that reads flows."""

from __future__ import annotations

from twisted_mitm.connection import Client, Server
from twisted_mitm.flow import Error
from twisted_mitm.http import Headers, HTTPFlow, Request, Response
from twisted_mitm.tcp import TCPFlow, TCPMessage
from twisted_mitm.websocket import Opcode, WebSocketData, WebSocketMessage


def connections() -> tuple[Client, Server]:
    """A client at 127.0.0.1:22 and a server record for address:22."""
    return Client(("127.0.0.1", 22), ("127.0.0.1", 8080)), Server(("address", 22))


def request_flow() -> HTTPFlow:
    """A POST to http://address:22/path with a body and a request header, no response yet."""
    flow = HTTPFlow(*connections())
    flow.request = Request(
        "address", 22, b"POST", b"http", b"address:22", b"/path", b"HTTP/1.1",
        Headers([(b"Header", b"qvalue"), (b"Content-Length", b"7")]), b"content", None, 1.0, 2.0,
    )
    return flow


def response_flow() -> HTTPFlow:
    """L{request_flow} with a 200 response carrying a body and a response header."""
    flow = request_flow()
    flow.response = Response(
        b"HTTP/1.1", 200, b"OK",
        Headers([(b"Header-Response", b"svalue"), (b"Content-Length", b"7")]), b"message", None, 3.0, 4.0,
    )
    return flow


def error_flow() -> HTTPFlow:
    """L{request_flow} that failed."""
    flow = request_flow()
    flow.error = Error("connection lost")
    return flow


def websocket_flow() -> HTTPFlow:
    """An upgraded flow to ws://example.com/ws with one message each way."""
    flow = HTTPFlow(*connections())
    flow.request = Request(
        "example.com", 80, b"GET", b"http", b"", b"/ws", b"HTTP/1.1",
        Headers([(b"Host", b"example.com"), (b"Upgrade", b"websocket")]), b"", None, 1.0, 2.0,
    )
    flow.response = Response(b"HTTP/1.1", 101, b"Switching Protocols", Headers([(b"Upgrade", b"websocket")]), b"", None, 3.0, 4.0)
    flow.websocket = WebSocketData(
        messages=[WebSocketMessage(Opcode.TEXT, True, b"hello text"), WebSocketMessage(Opcode.BINARY, False, b"it's me")]
    )
    return flow


def tcp_flow() -> TCPFlow:
    """A TCP flow with one chunk each way."""
    flow = TCPFlow(*connections())
    flow.messages = [TCPMessage(True, b"hello"), TCPMessage(False, b"it's me")]
    return flow


def tcp_error_flow() -> TCPFlow:
    """L{tcp_flow} that failed."""
    flow = tcp_flow()
    flow.error = Error("reset")
    return flow

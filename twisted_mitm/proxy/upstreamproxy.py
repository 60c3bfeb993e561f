# -*- test-case-name: tests.test_modes -*-
"""Reaching servers through another HTTP proxy (C{mode=upstream:URL}).

Plain HTTP requests go to the upstream proxy in absolute form, over one kept
connection (L{ServerConnections} decides that). Everything else — HTTPS, the contents of
a tunnel, raw TCP — needs a byte stream to the server, which the upstream proxy opens
with C{CONNECT}: L{ProxyConnectEndpoint} is a Twisted endpoint that connects to the
proxy, sends the C{CONNECT} (with C{upstream_auth} as Basic C{Proxy-Authorization}),
and only hands the connection to the caller's protocol once the proxy said 2xx. A
refusal (407 asking for credentials, 403, 502 from the proxy...) fails the connection
with a L{ProtocolError} that names the upstream proxy's answer.
"""

from __future__ import annotations

import base64
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mitm import http1
from twisted_mitm.exceptions import ProtocolError
from twisted_mitm.proxy.handover import Handover


def basic_credentials(user_pass: str) -> bytes:
    """The value of a Basic C{Proxy-Authorization} header for C{user:pass}."""
    return b"Basic " + base64.b64encode(user_pass.encode())


def connect_request(host: str, port: int, user_pass: str | None) -> bytes:
    """The C{CONNECT} request head for C{host:port}."""
    authority = http1.hostport(b"https", host, port, always_port=True).encode("idna")
    fields = [(b"Host", authority)]
    if user_pass is not None:
        fields.append((b"Proxy-Authorization", basic_credentials(user_pass)))
    return http1.assemble_request_head(b"CONNECT", authority, b"HTTP/1.1", fields)


class _ConnectHandshake(Handover):
    """Asks the upstream proxy to CONNECT, then hands the tunnel to the caller's protocol."""

    def __init__(self, factory: IProtocolFactory, host: str, port: int, user_pass: str | None) -> None:
        self._caller_factory = factory
        self.host = host
        self.port = port
        self.user_pass = user_pass
        self.tunnel: Deferred[IProtocol] = Deferred()
        self._reader = http1.ResponseReader()
        self._reader.expect_response(b"CONNECT")

    def connectionMade(self) -> None:
        self.transport.write(connect_request(self.host, self.port, self.user_pass))

    def received_before(self, data: bytes) -> None:
        self._reader.receive_data(data)
        try:
            event = self._reader.next_event()
        except ProtocolError as error:
            self._refused(f"the upstream proxy's answer to CONNECT is not HTTP ({error.reason})")
            return
        if not isinstance(event, http1.ResponseHead):
            return
        if not 200 <= event.status_code < 300:
            self._refused(self._describe(event))
            return
        protocol = self._caller_factory.buildProtocol(self.transport.getPeer())
        if protocol is None:
            self.transport.loseConnection()
            return
        self.hand_over(protocol, self._reader.take_buffered())
        self.tunnel.callback(protocol)

    def _describe(self, head: http1.ResponseHead) -> str:
        answer = f"{head.status_code} {head.reason.decode('latin-1')}".strip()
        target = f"{self.host}:{self.port}"
        if head.status_code == 407:
            wanted = "other credentials (upstream_auth)" if self.user_pass else "credentials: set upstream_auth=user:pass"
            return f"the upstream proxy refused CONNECT {target}: {answer}; it wants {wanted}"
        return f"the upstream proxy refused CONNECT {target}: {answer}"

    def _refused(self, reason: str) -> None:
        self.transport.loseConnection()
        if not self.tunnel.called:
            self.tunnel.errback(Failure(ProtocolError(502, reason)))

    def lost_before(self, reason: Failure) -> None:
        if not self.tunnel.called:
            self.tunnel.errback(Failure(ProtocolError(502, f"the upstream proxy closed the connection before answering CONNECT {self.host}:{self.port}")))


@implementer(IStreamClientEndpoint)
class ProxyConnectEndpoint:
    """An endpoint for C{host:port} reached through an HTTP proxy's C{CONNECT}.

    @param proxy: the endpoint of the upstream proxy itself (TCP, or TLS for an https:// proxy).
    """

    def __init__(self, proxy: IStreamClientEndpoint, proxy_name: str, host: str, port: int, user_pass: str | None) -> None:
        self._proxy = proxy
        self._proxy_name = proxy_name
        self._host = host
        self._port = port
        self._user_pass = user_pass

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        handshake = _ConnectHandshake(factory, self._host, self._port, self._user_pass)
        handshake_factory = Factory.forProtocol(lambda: handshake)
        handshake_factory.noisy = False
        connecting = self._proxy.connect(handshake_factory)
        connecting.addErrback(self._unreachable)
        return connecting.addCallback(lambda _: handshake.tunnel)

    def _unreachable(self, reason: Failure) -> None:
        if reason.check(CancelledError):
            reason.raiseException()
        raise ProtocolError(502, f"cannot reach the upstream proxy {self._proxy_name}: {reason.getErrorMessage()}")

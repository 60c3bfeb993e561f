# -*- test-case-name: tests.test_addonmanager -*-
"""
The hook catalogue: one small dataclass per event that addons and scripts can handle.

A hook's name is what an addon defines to handle it (C{def request(flow)}); its fields are
the arguments, in order; its docstring is the user documentation. L{all_hooks} maps names
to classes. The proxy builds hook objects and hands them to
L{twisted_mitm.addonmanager.AddonManager.trigger}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

if TYPE_CHECKING:
    from twisted_mitm.loader import Loader
    from twisted_mitm.connection import Client, Server
    from twisted_mitm.flow import Flow
    from twisted_mitm.http import HTTPFlow
    from twisted_mitm.tcp import TCPFlow
    from twisted_mitm.tls import ClientHelloData, TlsData

all_hooks: dict[str, type[Hook]] = {}
"""Every hook class by name."""

mitmproxy_hooks = frozenset(
    {
        # lifecycle
        "load", "running", "configure", "done", "update",
        # connections
        "client_connected", "client_disconnected", "server_connect", "server_connected",
        "server_disconnected", "server_connect_error",
        # HTTP
        "http_connect", "http_connect_upstream", "http_connected", "http_connect_error",
        "requestheaders", "request", "responseheaders", "response", "error",
        # DNS
        "dns_request", "dns_response", "dns_error",
        # TCP and UDP
        "tcp_start", "tcp_message", "tcp_end", "tcp_error",
        "udp_start", "udp_message", "udp_end", "udp_error",
        # QUIC and TLS
        "quic_start_client", "quic_start_server",
        "tls_clienthello", "tls_start_client", "tls_start_server", "tls_established_client",
        "tls_established_server", "tls_failed_client", "tls_failed_server",
        # WebSocket
        "websocket_start", "websocket_message", "websocket_end",
        # SOCKS5 and layers
        "socks5_auth", "next_layer",
    }
)
"""Every hook mitmproxy 12 calls. An addon handling one of them that is not in L{all_hooks}
gets a warning when it loads: this proxy will never call that handler."""


class Hook:
    """Base of all hooks: subclasses are dataclasses whose fields are the hook's arguments."""

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            words = cls.__name__.removesuffix("Hook")
            cls.name = re.sub(r"(?<!^)([A-Z])", r"_\1", words).lower()
        all_hooks[cls.name] = cls

    def args(self) -> list[Any]:
        """The arguments handlers receive, in field order."""
        names = type(self).__dict__.get("_arg_names")
        if names is None:
            names = tuple(field.name for field in fields(self))  # type: ignore[arg-type]
            type(self)._arg_names = names  # type: ignore[attr-defined]
        return [getattr(self, name) for name in names]


# Lifecycle


@dataclass
class LoadHook(Hook):
    """
    Called once when an addon is loaded, before C{configure}. The loader declares the
    addon's options (C{loader.add_option(name, typespec, default, help)}) and commands.
    Must not be C{async}.
    """

    loader: Loader


@dataclass
class ConfigureHook(Hook):
    """
    Called when options change, with the set of changed option names. Right after C{load}
    it is called with the names of all options. Raising C{OptionsError} refuses the change
    (at start-up: start-up stops with that message). Must not be C{async}.
    """

    updated: set[str]


@dataclass
class RunningHook(Hook):
    """Called once the proxy is listening: all addons are loaded and all options set."""


@dataclass
class DoneHook(Hook):
    """Called when the addon is removed or the proxy shuts down; the last hook it sees."""


@dataclass
class UpdateHook(Hook):
    """
    Flows were changed from outside their own hooks: by a command such as C{flow.mark},
    C{flow.kill} or C{flow.resume}.
    """

    flows: Sequence[Flow]


# Connections


@dataclass
class ClientConnectedHook(Hook):
    """A client has connected to the proxy. One connection may carry many requests."""

    client: Client


@dataclass
class ClientDisconnectedHook(Hook):
    """A client connection has closed (by either side)."""

    client: Client


@dataclass
class Socks5AuthData:
    """What the C{socks5_auth} hook receives."""

    client_conn: Client
    """The client that is authenticating."""
    username: str
    password: str
    valid: bool = False
    """Set it to C{True} to accept the credentials."""


@dataclass
class Socks5AuthHook(Hook):
    """A SOCKS5 client sent a username and password (RFC 1929); an addon decides whether
    they are valid by setting C{data.valid}. Offered only when C{proxyauth} is set."""

    data: Socks5AuthData


@dataclass
class ServerConnectionHookData:
    """What the server connection hooks receive."""

    server: Server
    """The connection to the server this hook is about."""
    client: Client
    """The client on whose behalf it is made."""


@dataclass
class ServerConnectHook(Hook):
    """The proxy is about to connect to a server. One connection may carry many requests."""

    data: ServerConnectionHookData


@dataclass
class ServerConnectedHook(Hook):
    """The proxy has connected to a server (TCP, and TLS where used)."""

    data: ServerConnectionHookData


@dataclass
class ServerDisconnectedHook(Hook):
    """A server connection has closed (by either side)."""

    data: ServerConnectionHookData


# HTTP


@dataclass
class HttpConnectHook(Hook):
    """
    An HTTP CONNECT request was received. CONNECT is addressed to the proxy itself and is
    not forwarded; the requests that later travel inside the tunnel get the usual HTTP hooks.
    Setting a non-2xx C{flow.response} sends it to the client and refuses the tunnel.
    """

    flow: HTTPFlow


@dataclass
class RequestheadersHook(Hook):
    """
    The request head (line and headers) has been read; the body has not. C{flow.request.stream}
    is already C{True} when C{stream_large_bodies} is set and the declared Content-Length
    exceeds it: a handler may turn streaming off, or set a callable to transform the body
    while it streams. Setting C{flow.response} answers without contacting the server.
    """

    flow: HTTPFlow


@dataclass
class RequestHook(Hook):
    """
    The whole request has been read and may be modified before it is sent. Setting
    C{flow.response} answers without contacting the server. For a streamed request body
    this runs after the body was streamed to the server: the body here is empty and
    changing it has no effect.
    """

    flow: HTTPFlow


@dataclass
class ResponseheadersHook(Hook):
    """
    The response head (status line and headers) has been read; the body has not.
    C{flow.response.stream} is already C{True} when C{stream_large_bodies} is set and the
    declared Content-Length exceeds it: a handler may turn streaming off, or set a callable
    to transform the body while it streams.
    """

    flow: HTTPFlow


@dataclass
class ResponseHook(Hook):
    """
    The whole response has been read and may be modified before it is sent to the client.
    For a streamed response body this runs after the body was streamed to the client: the
    body here is empty and changing it has no effect.
    """

    flow: HTTPFlow


@dataclass
class ErrorHook(Hook):
    """
    The HTTP exchange failed: an unreachable or misbehaving server, a timeout, or a
    connection lost mid-message (C{flow.error} says which). An HTTP error status from the
    server is a normal response, not an error. Every flow gets C{error} or C{response};
    a stream cut short gets C{error}, even after C{responseheaders}.
    """

    flow: HTTPFlow


# WebSocket


@dataclass
class WebsocketStartHook(Hook):
    """A WebSocket connection has been established after an HTTP upgrade."""

    flow: HTTPFlow


@dataclass
class WebsocketMessageHook(Hook):
    """
    A WebSocket message from the client or the server is complete; it is
    C{flow.websocket.messages[-1]}. Unless C{stream_websockets} is set, the message may be
    changed or dropped (C{message.drop()}) and what remains is sent on. With
    C{stream_websockets} the frames were already forwarded: this is for observation only.
    """

    flow: HTTPFlow


@dataclass
class WebsocketEndHook(Hook):
    """
    A WebSocket connection has ended; C{flow.websocket.close_code} and C{close_reason} say
    why, and C{closed_by_client} who closed it.
    """

    flow: HTTPFlow


# Raw TCP


@dataclass
class TcpStartHook(Hook):
    """
    A raw TCP relay has started: a CONNECT tunnel carrying neither TLS nor HTTP, or an ignored
    host when C{show_ignored_hosts} is set.
    """

    flow: TCPFlow


@dataclass
class TcpMessageHook(Hook):
    """
    A raw TCP relay received data; the newest chunk is C{flow.messages[-1]}. Chunks are as the
    network delivered them, not application messages.
    """

    flow: TCPFlow


@dataclass
class TcpEndHook(Hook):
    """A raw TCP relay has ended. Every TCP flow gets C{tcp_end} or C{tcp_error}, not both."""

    flow: TCPFlow


@dataclass
class TcpErrorHook(Hook):
    """
    A raw TCP relay failed (C{flow.error} says why). Every TCP flow gets C{tcp_end} or
    C{tcp_error}, not both.
    """

    flow: TCPFlow


# TLS


@dataclass
class TlsClienthelloHook(Hook):
    """
    A client inside an intercepted CONNECT tunnel sent its TLS ClientHello
    (C{data.client_hello}); no TLS has run yet. Setting C{data.ignore_connection = True}
    passes the connection through untouched, as C{ignore_hosts} would. The hook may be
    C{async}: the ClientHello waits for it. Hosts excluded by C{ignore_hosts} or
    C{allow_hosts} get no TLS hooks.
    """

    data: ClientHelloData


@dataclass
class TlsStartClientHook(Hook):
    """
    TLS with the client is about to start. C{data.ssl_conn} is the pyOpenSSL connection the
    proxy made, with a certificate for the SNI (or the CONNECT host): a handler may change
    its settings or replace it. If a handler sets it to C{None}, the connection is closed.
    """

    data: TlsData


@dataclass
class TlsStartServerHook(Hook):
    """
    TLS with the server is about to start. C{data.ssl_conn} is the pyOpenSSL connection the
    proxy made (SNI set, verification armed unless C{ssl_insecure}): a handler may change
    its settings or replace it. If a handler sets it to C{None}, the connection fails.
    """

    data: TlsData


@dataclass
class TlsEstablishedClientHook(Hook):
    """The TLS handshake with the client has completed."""

    data: TlsData


@dataclass
class TlsEstablishedServerHook(Hook):
    """The TLS handshake with the server has completed (its certificate was verified)."""

    data: TlsData


@dataclass
class TlsFailedClientHook(Hook):
    """
    The TLS handshake with the client failed or was abandoned; C{data.conn.error} says why
    (for instance, the client does not trust the proxy's CA).
    """

    data: TlsData


@dataclass
class TlsFailedServerHook(Hook):
    """
    The TLS handshake with the server failed; C{data.conn.error} says why (for instance, a
    certificate that does not verify). The client gets a 502 with the same reason.
    """

    data: TlsData

# -*- test-case-name: tests.test_proxy -*-
"""What every connection of one proxy shares: addons, settings, certificates, reactor.

L{ProxySettings} is the options as the hot path needs them, parsed once whenever they
change (sizes as ints, regexes compiled), so no request ever parses an option string.
L{WebSocketRelays} knows the live WebSocket relays, for the C{inject.websocket} command;
the relay itself (and autobahn) is only imported on the first upgrade. The
L{MessageStore} bounds the messages all live WebSocket and TCP flows keep; the
L{SpoolDirectory} holds the streamed bodies kept with C{store_streamed_bodies}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from twisted.logger import Logger

from twisted_mitm.connection import Client, Context, Server
from twisted_mitm.options import Options, parse_size
from twisted_mitm.proxy.messagestore import MessageStore
from twisted_mitm.spool import BodySpool, SpoolDirectory

if TYPE_CHECKING:
    from twisted_mitm.addonmanager import AddonManager
    from twisted_mitm.certs import CertStore
    from twisted_mitm.http import HTTPFlow
    from twisted_mitm.master import Master


def _size(value: str | None) -> int | None:
    return None if value in (None, "") else parse_size(value)


def _seconds(value: int) -> float | None:
    """A timeout option in seconds; 0 means no limit."""
    return float(value) if value > 0 else None


@dataclass(frozen=True)
class ProxySettings:
    """The options the proxy core reads per connection or per request."""

    stream_large_bodies: int | None
    store_streamed_bodies: bool
    body_size_limit: int | None
    ssl_insecure: bool
    trusted_ca_path: str | None
    ignore_hosts: tuple[re.Pattern[str], ...]
    allow_hosts: tuple[re.Pattern[str], ...]
    show_ignored_hosts: bool
    stream_websockets: bool
    websocket_max_message_size: int
    websocket_max_stored_bytes: int
    tcp_max_stored_bytes: int
    total_max_stored_bytes: int
    connect_timeout: float | None
    response_timeout: float | None
    idle_timeout: float | None
    head_timeout: float | None
    connect_eagerly: bool
    keep_host_header: bool
    upstream_auth: str | None
    http2: bool

    @classmethod
    def from_options(cls, options: Options) -> ProxySettings:
        """Parse the options the core needs."""
        return cls(
            stream_large_bodies=_size(options.stream_large_bodies),
            store_streamed_bodies=options.store_streamed_bodies,
            body_size_limit=_size(options.body_size_limit),
            ssl_insecure=options.ssl_insecure,
            trusted_ca_path=options.ssl_verify_upstream_trusted_ca or None,
            ignore_hosts=tuple(re.compile(pattern, re.IGNORECASE) for pattern in options.ignore_hosts),
            allow_hosts=tuple(re.compile(pattern, re.IGNORECASE) for pattern in options.allow_hosts),
            show_ignored_hosts=options.show_ignored_hosts,
            stream_websockets=options.stream_websockets,
            websocket_max_message_size=parse_size(options.websocket_max_message_size),
            websocket_max_stored_bytes=parse_size(options.websocket_max_stored_bytes),
            tcp_max_stored_bytes=parse_size(options.tcp_max_stored_bytes),
            total_max_stored_bytes=parse_size(options.total_max_stored_bytes),
            connect_timeout=_seconds(options.upstream_connect_timeout),
            response_timeout=_seconds(options.upstream_read_timeout),
            idle_timeout=_seconds(options.connection_idle_timeout),
            head_timeout=_seconds(options.request_head_timeout),
            connect_eagerly=options.connection_strategy == "eager",
            keep_host_header=options.keep_host_header,
            upstream_auth=options.upstream_auth,
            http2=options.http2,
        )

    def intercepts(self, host: str, port: int) -> bool:
        """Whether a CONNECT to C{host:port} is intercepted (SPEC §5), or passed through."""
        address = f"{host}:{port}"
        if self.allow_hosts:
            return any(pattern.search(address) for pattern in self.allow_hosts)
        return not any(pattern.search(address) for pattern in self.ignore_hosts)


class ProxyContext:
    """Shared by all connections of one proxy; rebuilt settings follow option changes.

    @ivar reactor: the reactor every connection uses (injected, never imported).
    @ivar certstore: the CA and leaf certificates; C{None} until TLS is configured.
    @ivar stored: the messages live flows keep, within C{total_max_stored_bytes}.
    @ivar spools: where streamed bodies are kept; removed when the proxy stops.
    """

    def __init__(self, master: Master, reactor: Any, certstore: CertStore | None = None) -> None:
        self.master = master
        self.reactor = reactor
        self.certstore = certstore
        self.settings = ProxySettings.from_options(master.options)
        self.stored = MessageStore(self.settings.total_max_stored_bytes)
        self.spools = SpoolDirectory()
        master.options.subscribe(self._options_changed)
        self.websockets = WebSocketRelays()
        master.commands.add("inject.websocket", self.websockets.inject)

    @property
    def addons(self) -> AddonManager:
        """The addon chain that hooks are triggered on."""
        return self.master.addons

    def spool_for_stream(self) -> BodySpool | None:
        """Where a streamed body is kept as it passes (C{store_streamed_bodies}), else C{None}."""
        return self.spools.new_spool() if self.settings.store_streamed_bodies else None

    def connection_context(self, client: Client, server: Server) -> Context:
        """What connection-level hooks (the C{tls_*} hooks) are told about a connection."""
        return Context(client, server, self.master.options)

    def _options_changed(self, updated: set[str]) -> None:
        self.settings = ProxySettings.from_options(self.master.options)
        self.stored.set_budget(self.settings.total_max_stored_bytes)


class LiveWebSocket(Protocol):
    """What the C{inject.websocket} command needs of a live relay."""

    def inject(self, to_client: bool, content: bytes, is_text: bool) -> None:
        """Send C{content} to the client (or the server)."""


class WebSocketRelays:
    """The live relays of one proxy, by flow id; provides the C{inject.websocket} command."""

    _log = Logger()

    def __init__(self) -> None:
        self._relays: dict[str, LiveWebSocket] = {}

    def add(self, flow: HTTPFlow, relay: LiveWebSocket) -> None:
        self._relays[flow.id] = relay

    def remove(self, flow: HTTPFlow) -> None:
        self._relays.pop(flow.id, None)

    def inject(self, flow: HTTPFlow, to_client: bool, message: bytes | str, is_text: bool = True) -> None:
        """C{inject.websocket}: send C{message} to the client (or the server) of a live WebSocket flow."""
        relay = self._relays.get(flow.id)
        if relay is None:
            self._log.warn("inject.websocket: {flow!r} is not a live WebSocket connection", flow=flow)
            return
        content = message.encode() if isinstance(message, str) else bytes(message)
        relay.inject(to_client, content, is_text)

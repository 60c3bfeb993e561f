# -*- test-case-name: tests.test_flow -*-
"""Records of the proxy's two connections, as scripts see them (mitmproxy's names).

The proxy (L{twisted_mitm.proxy}) creates and fills these in; flows and the
C{client_connected}/C{server_connect} hooks hand them to scripts. Pure data, no I/O.
Their state (L{SerializableDataclass}) has exactly mitmproxy 12's fields, in its order, so
flow files carry them both ways; fields the proxy does not fill keep mitmproxy's defaults.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal

from twisted_mitm.certs import Cert
from twisted_mitm.coretypes.serializable import SerializableDataclass
from twisted_mitm.mode_specs import ProxyMode

Address = tuple[str, int]


@dataclass(eq=False)
class Connection(SerializableDataclass):
    """Fields shared by L{Client} and L{Server}; compared and hashed by identity."""

    _: KW_ONLY
    peername: Address | None = None
    """The peer's C{(ip, port)}."""
    sockname: Address | None = None
    """Our local C{(ip, port)} of the connection."""
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    """A unique id (uuid4)."""
    transport_protocol: Literal["tcp", "udp"] = "tcp"
    """The transport: always C{"tcp"} here."""
    error: str | None = None
    """Why connections to this peer should not be tried again (e.g. a bad certificate)."""
    tls: bool = False
    """C{True} if the connection is (to be) protected by TLS; see L{tls_established}."""
    certificate_list: Sequence[Cert] = ()
    """The peer's TLS certificates, its own first."""
    alpn: bytes | None = None
    """The application protocol negotiated with ALPN."""
    alpn_offers: Sequence[bytes] = ()
    """The ALPN protocols the ClientHello offered."""
    cipher: str | None = None
    """The negotiated cipher's OpenSSL name."""
    cipher_list: Sequence[str] = ()
    """The ciphers the proxy accepted on this connection."""
    tls_version: str | None = None
    """The TLS version in use, e.g. C{"TLSv1.3"}."""
    sni: str | None = None
    """The Server Name Indication of the TLS ClientHello."""
    timestamp_start: float | None = None
    """Connection started."""
    timestamp_end: float | None = None
    """Connection closed."""
    timestamp_tls_setup: float | None = None
    """TLS handshake completed; C{None} without TLS."""

    @property
    def tls_established(self) -> bool:
        """C{True} once a TLS handshake has completed (C{timestamp_tls_setup} is set).

        Assigning C{True} sets C{tls} and stamps the current time unless a time is
        already set; assigning C{False} clears the time.
        """
        return self.timestamp_tls_setup is not None

    @tls_established.setter
    def tls_established(self, established: bool) -> None:
        if not established:
            self.timestamp_tls_setup = None
            return
        self.tls = True
        if self.timestamp_tls_setup is None:
            self.timestamp_tls_setup = time.time()


@dataclass(eq=False)
class Client(Connection):
    """The connection between a client and the proxy."""

    peername: Address
    """The client's C{(ip, port)}."""
    sockname: Address
    """The local C{(ip, port)} the client connected to."""
    timestamp_start: float = field(default_factory=time.time)
    """TCP connection accepted."""
    mitmcert: Cert | None = None
    """The certificate the proxy presented to the client."""
    proxy_mode: ProxyMode = field(default_factory=lambda: ProxyMode.parse("regular"))
    """The mode of the listener the client connected to (C{str()} gives its spec)."""

    @property
    def address(self) -> Address:
        """The client's C{(ip, port)}: an alias of C{peername}."""
        return self.peername

    @address.setter
    def address(self, address: Address) -> None:
        self.peername = address


@dataclass(eq=False)
class Server(Connection):
    """The connection between the proxy and an upstream server."""

    address: Address | None
    """The C{(host, port)} to connect to; the host may be a name or an IP address."""
    _: KW_ONLY
    peername: Address | None = None
    """The server's resolved C{(ip, port)}, once connected."""
    sockname: Address | None = None
    """Our local C{(ip, port)} of the connection."""
    timestamp_start: float | None = None
    """Connection attempt started."""
    timestamp_tcp_setup: float | None = None
    """TCP connection established."""
    via: tuple[str, Address] | None = None
    """The upstream proxy the connection goes through, as C{(scheme, (host, port))}."""

    @property
    def cert(self) -> Cert | None:
        """The server's own certificate: the first of C{certificate_list}, or C{None}.

        Deprecated in mitmproxy (as there, reading or setting it warns); kept for old scripts.
        """
        warnings.warn("Server.cert is deprecated, use Server.certificate_list instead.", DeprecationWarning, stacklevel=2)
        return self.certificate_list[0] if self.certificate_list else None

    @cert.setter
    def cert(self, cert: Cert | None) -> None:
        warnings.warn("Server.cert is deprecated, use Server.certificate_list instead.", DeprecationWarning, stacklevel=2)
        self.certificate_list = [cert] if cert is not None else []


@dataclass(eq=False)
class Context:
    """A connection as connection-level hooks see it (mitmproxy's C{proxy.context.Context})."""

    client: Client
    """The client's connection."""
    server: Server
    """The server the connection goes to (its address may still change before connecting)."""
    options: Any
    """The proxy's options (C{ctx.options})."""

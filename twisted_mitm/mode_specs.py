# -*- test-case-name: tests.test_mode_specs -*-
"""Proxy mode specifications, in mitmproxy 12's syntax: C{mode[:data][@[host:]port]}.

  - C{regular}: an explicit HTTP proxy (absolute-form requests, CONNECT for HTTPS);
  - C{reverse:http[s]://host[:port]}: clients talk to the proxy as if it were that server;
  - C{upstream:http[s]://host[:port]}: a regular proxy that sends everything on through
    another HTTP proxy;
  - C{socks5}: a SOCKS5 proxy (RFC 1928);
  - C{transparent}: connections redirected to the proxy by the network (Linux
    C{iptables ... REDIRECT}); the target is the connection's original destination.

C{@port} or C{@host:port} sets where that mode listens; without it a mode listens on
C{listen_host:listen_port}. Pure parsing, no I/O: L{twisted_mitm.service} starts one
listener per mode.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import ClassVar

from twisted_mitm.coretypes.serializable import Serializable, State

_DEFAULT_PORTS = {"http": 80, "https": 443}
_SERVER_SPEC = re.compile(r"(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[^:/@\[\]]+)(?::(?P<port>[0-9]+))?/?")


@dataclass(frozen=True)
class ProxyMode(Serializable):
    """One proxy mode and where it listens; its state (in flow files) is its spec.

    @ivar full_spec: the text it was parsed from.
    @ivar listen_host: the address from C{@host:port}, or C{None} for C{listen_host}.
    @ivar listen_port: the port from C{@port}, or C{None} for C{listen_port}.
    """

    type_name: ClassVar[str]
    full_spec: str
    listen_host: str | None = None
    listen_port: int | None = None

    def __str__(self) -> str:
        return self.full_spec

    @classmethod
    def from_state(cls, state: State) -> ProxyMode:
        return ProxyMode.parse(state)

    def get_state(self) -> State:
        return self.full_spec

    def set_state(self, state: State) -> None:
        raise dataclasses.FrozenInstanceError("a proxy mode cannot be changed")

    @staticmethod
    def parse(spec: str) -> ProxyMode:
        """Parse a mode specification.

        @raise ValueError: the text is not a valid mode, with a message that says why.
        """
        head, at, listen = spec.rpartition("@") if "@" in spec else (spec, "", "")
        listen_host, listen_port = _parse_listen(listen, spec) if at else (None, None)
        kind, colon, data = head.partition(":")
        mode_class = _MODES.get(kind)
        if mode_class is None:
            raise ValueError(f"invalid mode {spec!r}: unknown mode {kind!r} (known: {', '.join(_MODES)})")
        return mode_class.from_data(spec, data if colon else None, listen_host, listen_port)

    @classmethod
    def from_data(cls, spec: str, data: str | None, listen_host: str | None, listen_port: int | None) -> ProxyMode:
        if data is not None:
            raise ValueError(f"invalid mode {spec!r}: {cls.type_name} takes no ':' data")
        return cls(spec, listen_host, listen_port)


@dataclass(frozen=True)
class RegularMode(ProxyMode):
    """An explicit HTTP proxy."""

    type_name = "regular"


@dataclass(frozen=True)
class Socks5Mode(ProxyMode):
    """A SOCKS5 proxy."""

    type_name = "socks5"


@dataclass(frozen=True)
class TransparentMode(ProxyMode):
    """Connections redirected by the network; the target is their original destination."""

    type_name = "transparent"


@dataclass(frozen=True)
class _ServerMode(ProxyMode):
    """A mode with a server in its data: C{scheme://host[:port]}."""

    scheme: str = "http"
    host: str = ""
    port: int = 80

    @classmethod
    def from_data(cls, spec: str, data: str | None, listen_host: str | None, listen_port: int | None) -> ProxyMode:
        if not data:
            raise ValueError(f"invalid mode {spec!r}: {cls.type_name} needs a server, as in {cls.type_name}:https://example.com")
        scheme, host, port = _parse_server(data, spec)
        return cls(spec, listen_host, listen_port, scheme, host, port)

    @property
    def address(self) -> tuple[str, int]:
        """The server's C{(host, port)}."""
        return self.host, self.port

    @property
    def url(self) -> str:
        """The server as C{scheme://host:port}."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class ReverseMode(_ServerMode):
    """Clients talk to the proxy as if it were the server in the mode's data."""

    type_name = "reverse"


@dataclass(frozen=True)
class UpstreamMode(_ServerMode):
    """A regular proxy that sends everything on through another HTTP proxy."""

    type_name = "upstream"


_MODES: dict[str, type[ProxyMode]] = {
    mode.type_name: mode for mode in (RegularMode, ReverseMode, UpstreamMode, Socks5Mode, TransparentMode)
}


def _parse_server(data: str, spec: str) -> tuple[str, str, int]:
    match = _SERVER_SPEC.fullmatch(data)
    scheme = (match.group("scheme") or "http").lower() if match else ""
    if match is None or scheme not in _DEFAULT_PORTS:
        raise ValueError(f"invalid mode {spec!r}: the server must be http://host[:port] or https://host[:port]")
    host = match.group("host").strip("[]")
    port = int(match.group("port")) if match.group("port") else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise ValueError(f"invalid mode {spec!r}: {port} is not a port number")
    return scheme, host, port


def _parse_listen(listen: str, spec: str) -> tuple[str | None, int]:
    host, colon, port_text = listen.rpartition(":")
    if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ValueError(f"invalid mode {spec!r}: {listen!r} is not [host:]port")
    return (host.strip("[]") or None) if colon else None, int(port_text)

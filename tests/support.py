"""Shared fixtures for integration tests: an in-process proxy, origins, real clients.

The proxy runs in the test's own reactor (trial's, the asyncio reactor), listening on
127.0.0.1 port 0, so clients must not block the reactor: curl runs as a child process
(L{curl}), blocking clients such as C{http.client} run in a thread (C{deferToThread}).
Every port and connection is closed by a cleanup registered on the test case.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from twisted_mitm.addonmanager import load_script
from twisted_mitm.addons.flowlog import FlowLog
from twisted_mitm.certs import CertStore
from twisted_mitm.master import Master
from twisted_mitm.options import default_options
from twisted_mitm.service import MitmService

reactor: Any = _reactor

_CONFDIR: str | None = None


def shared_confdir() -> str:
    """A confdir with a CA, made once per test run (CA generation is the slow part)."""
    global _CONFDIR
    if _CONFDIR is None:
        _CONFDIR = tempfile.mkdtemp(prefix="twisted_mitm_tests_")
        CertStore.from_confdir(_CONFDIR)
    return _CONFDIR


@dataclass
class RunningProxy:
    """A proxy started by L{start_proxy}."""

    service: MitmService
    master: Master
    port: int
    confdir: str

    @property
    def url(self) -> str:
        """The proxy URL to give clients (C{curl -x}, C{HTTP_PROXY})."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ca_path(self) -> str:
        """The CA certificate clients must trust for intercepted TLS."""
        return os.path.join(self.confdir, "mitmproxy-ca-cert.pem")


def start_proxy(
    test: TestCase,
    *,
    options: Sequence[str] = (),
    scripts: Sequence[str] = (),
    addons: Iterable[object] = (),
) -> RunningProxy:
    """Start a proxy on 127.0.0.1 port 0 with C{--set}-style C{options}, scripts and addon objects."""
    confdir = shared_confdir()
    registry = default_options()
    registry.set("listen_port=0", f"confdir={confdir}", *options, defer=True)
    stopped: list[bool] = []
    master = Master(registry, shutdown=lambda: stopped.append(True))
    master.addons.add(FlowLog())
    for addon in addons:
        master.addons.add(addon)
    for path in scripts:
        master.addons.add(load_script(path))
    registry.process_deferred()
    service = MitmService(master, CertStore.from_confdir(confdir), reactor)
    service.startService()
    test.addCleanup(service.stopService)
    return RunningProxy(service, master, service.port.getHost().port, confdir)


def listen(test: TestCase, factory: Factory) -> int:
    """Listen on 127.0.0.1 port 0 until the test ends; return the port."""
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    test.addCleanup(port.stopListening)
    return port.getHost().port


class _ScriptedOrigin(Protocol):
    """Reads one request head at a time and lets a function answer it."""

    def __init__(self, origin: RawOrigin) -> None:
        self.origin = origin
        self.buffer = b""

    def connectionMade(self) -> None:
        self.origin.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        self.origin.received.append(data)
        while b"\r\n\r\n" in self.buffer and self.origin.handler is not None:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            self.buffer = rest
            self.origin.requests.append(head + b"\r\n\r\n")
            self.origin.handler(self, head + b"\r\n\r\n")

    def connectionLost(self, reason: object = None) -> None:
        self.origin.lost.append(self)


@dataclass
class RawOrigin:
    """An origin whose answers are raw bytes written by a test's handler.

    C{handler(protocol, head)} is called for each request head (the body, if any, stays
    in C{protocol.buffer} / arrives in C{received}); it writes whatever it wants to
    C{protocol.transport}.
    """

    handler: Callable[[_ScriptedOrigin, bytes], None] | None
    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)
    connections: list[_ScriptedOrigin] = field(default_factory=list)
    lost: list[_ScriptedOrigin] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_raw_origin(test: TestCase, handler: Callable[[Any, bytes], None] | None) -> RawOrigin:
    """Start a L{RawOrigin} on 127.0.0.1 port 0."""
    origin = RawOrigin(handler)
    origin.port = listen(test, Factory.forProtocol(lambda: _ScriptedOrigin(origin)))

    def close_connections() -> None:
        for connection in origin.connections:
            if connection.transport is not None:
                connection.transport.abortConnection()

    test.addCleanup(close_connections)
    return origin


def respond(status: int = 200, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()) -> Callable[[Any, bytes], None]:
    """A L{RawOrigin} handler answering every request with one Content-Length response."""

    def handler(protocol: Any, head: bytes) -> None:
        lines = [f"HTTP/1.1 {status} Whatever".encode()]
        lines += [f"{name}: {value}".encode() for name, value in headers]
        lines.append(f"Content-Length: {len(body)}".encode())
        protocol.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)

    return handler


def curl(*args: str, timeout: float = 30) -> Deferred[tuple[bytes, bytes, int]]:
    """Run curl without blocking the reactor; fires with (stdout, stderr, exit code)."""
    command = ["--silent", "--show-error", "--max-time", str(timeout), *args]
    return getProcessOutputAndValue("curl", command, env=_without_proxy_env(), reactor=reactor)


def _without_proxy_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if "proxy" not in name.lower()}

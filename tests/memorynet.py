# -*- test-case-name: tests.test_inmemory -*-
"""Client, proxy and origin servers wired together in memory (the second test layer).

L{MemoryNetwork} runs the proxy exactly as the service does, a L{ProxyFactory}
over a L{ProxyContext}, but on a C{MemoryReactorClock}: nothing touches a socket and
time moves only when a test says so. Test clients (L{MemoryClient}) connect to it; when
the proxy connects upstream (C{connectTCP} through Twisted's endpoints, TLS included),
the network builds the origin the test registered for that C{(host, port)}, or refuses
the connection. L{MemoryNetwork.pump} moves bytes over every connection until nothing
moves, the way C{twisted.test.iosim} does, with three things iosim leaves out:

  - a transport whose reading was paused (C{pauseProducing}) is not given data, so a
    proxy that applies backpressure really stops reading, and its peer's bytes wait;
  - a read delivers at most L{Link.read_size} bytes, as a socket read would;
  - C{loseWriteConnection} (half-close) reaches the peer as C{readConnectionLost}, and
    C{abortConnection} as a lost connection (C{ConnectionLost}) with the bytes still
    unsent dropped.

Nothing pushes back on its own: a transport's buffer never fills. To test backpressure,
do what a full transport does and call C{pauseProducing()} on its C{producer}, then read
the other side's L{MemoryTransport.producer_state}.

Host names are resolved by C{MemoryReactorClock}'s resolver, to 127.0.0.1: register
origins by IP address and use IP addresses in requests.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from twisted.internet.abstract import isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, IOPump

from tests.support import make_master
from twisted_mitm.certs import CertStore
from twisted_mitm.mode_specs import ProxyMode
from twisted_mitm.proxy.modes import ProxyFactory
from twisted_mitm.proxy.context import ProxyContext

#: Where clients find the proxy (only reported by C{getHost}; nothing listens).
PROXY_ADDRESS = ("127.0.0.1", 8080)

#: Most rounds L{MemoryNetwork.pump} makes before it gives up on a network that never settles.
MAX_ROUNDS = 2000


def _address(host: str, port: int) -> IPv4Address | IPv6Address:
    return IPv6Address("TCP", host, port) if isIPv6Address(host) else IPv4Address("TCP", host, port)


class MemoryTransport(FakeTransport):
    """An iosim transport that also records what a test needs to see.

    @ivar producer_state: C{"paused"} while its protocol has paused reading (as
        C{StringTransport}'s), else C{"producing"}.
    @ivar aborted: whether its protocol called C{abortConnection}.
    @ivar write_closed: whether its protocol half-closed (C{loseWriteConnection}).
    @ivar eof_delivered: whether the peer was told of that half-close.
    """

    producer_state = "producing"
    aborted = False
    write_closed = False
    eof_delivered = False

    def pauseProducing(self) -> None:
        self.producer_state = "paused"

    def resumeProducing(self) -> None:
        self.producer_state = "producing"

    def abortConnection(self) -> None:
        self.aborted = True
        self.stream = []
        self.disconnecting = True

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def take(self, limit: int) -> bytes:
        """Remove and return up to C{limit} of the bytes written so far."""
        data = b"".join(self.stream)
        self.stream = [data[limit:]] if len(data) > limit else []
        return data[:limit]


class Link(IOPump):
    """One in-memory TCP connection; each L{pump} is one read in each direction."""

    #: bytes one read delivers at most
    read_size = 64 * 1024

    clientIO: MemoryTransport
    serverIO: MemoryTransport

    def pump(self, debug: bool = False, advanceClock: bool = True) -> bool:
        """Run due timers, then move bytes, a half-close or a close; return whether anything moved."""
        if advanceClock:
            self.clock.advance(0)
        moved = False
        for source, destination in ((self.clientIO, self.serverIO), (self.serverIO, self.clientIO)):
            moved = self._read(source, destination) or moved
        if moved:
            return True
        return any(
            self._deliver_eof(source, destination) or self._deliver_close(source, destination)
            for source, destination in ((self.clientIO, self.serverIO), (self.serverIO, self.clientIO))
        )

    def _read(self, source: MemoryTransport, destination: MemoryTransport) -> bool:
        if not source.stream:
            source._checkProducer()  # a pull producer writes more once the buffer is drained
        if destination.disconnected or destination.producer_state == "paused":
            return False
        data = source.take(self.read_size)
        if data:
            destination.protocol.dataReceived(data)
        return bool(data)

    def _deliver_eof(self, source: MemoryTransport, destination: MemoryTransport) -> bool:
        """After a half-close, once its bytes are read, the peer reads the end of the stream."""
        if not source.write_closed or source.eof_delivered or source.stream or source.disconnected:
            return False
        source.eof_delivered = True
        half_closeable = IHalfCloseableProtocol(destination.protocol, None)
        if half_closeable is None:
            source.loseConnection()
        else:
            half_closeable.readConnectionLost()
        return True

    def _deliver_close(self, source: MemoryTransport, destination: MemoryTransport) -> bool:
        """After C{loseConnection} (once its bytes are read) or C{abortConnection} (at once), both ends learn the connection is gone."""
        if not source.disconnecting or source.disconnected or (source.stream and not source.aborted):
            return False
        source.disconnected = destination.disconnected = True
        destination.disconnecting = True
        destination.protocol.connectionLost(Failure(ConnectionLost() if source.aborted else ConnectionDone()))
        source.protocol.connectionLost(Failure(ConnectionAborted() if source.aborted else ConnectionDone()))
        return True


P = TypeVar("P")


@dataclass(frozen=True)
class Connection(Generic[P]):
    """Both ends of one in-memory connection between the proxy and a peer.

    @ivar peer: the protocol at the far end: a test client, or an origin server.
    @ivar peer_end: C{peer}'s transport.
    @ivar proxy_end: the proxy's transport; a test pauses the proxy's writes with
        C{proxy_end.producer.pauseProducing()} and sees whether the proxy stopped
        reading in C{proxy_end.producer_state}.
    @ivar address: the origin's C{(host, port)}, or the client's.
    @ivar link: what moves the bytes between the two ends.
    """

    peer: P
    peer_end: MemoryTransport
    proxy_end: MemoryTransport
    address: tuple[str, int]
    link: Link


class MemoryClient(Protocol):
    """A client that a test drives byte by byte.

    @ivar received: every byte received so far (inside TLS, see L{start_tls}).
    @ivar lost: why the connection ended, once it has.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.received = b""
        self.lost: Failure | None = None
        self._clock = clock
        self._tls: IProtocol | None = None

    def dataReceived(self, data: bytes) -> None:
        if self._tls is not None:
            self._tls.dataReceived(data)
        else:
            self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = reason
        if self._tls is not None:
            self._tls.connectionLost(reason)

    def send(self, data: bytes) -> None:
        """Write bytes to the proxy."""
        self.transport.write(data)

    def half_close(self) -> None:
        """Send nothing more (FIN) while still reading."""
        self.transport.loseWriteConnection()

    def abort(self) -> None:
        """Drop the connection at once."""
        self.transport.abortConnection()

    def start_tls(self, creator: IOpenSSLClientConnectionCreator) -> MemoryClient:
        """Speak TLS from now on (after a C{CONNECT} was answered); return the client inside it."""
        inner = MemoryClient(self._clock)
        factory = TLSMemoryBIOFactory(creator, True, Factory.forProtocol(lambda: inner), clock=self._clock)
        self._tls = factory.buildProtocol(None)
        self._tls.makeConnection(self.transport)
        return inner


class MemoryNetwork:
    """The proxy on a memory reactor, its clients and the origins it may connect to.

    @ivar reactor: the clock and reactor the proxy runs on; L{advance} moves its time.
    @ivar context: the proxy's context; C{context.master.addons} is its addon chain.
    @ivar clients: the client connections, in the order they were made.
    @ivar upstreams: the connections the proxy opened to origins, in order.
    """

    def __init__(
        self, options: Sequence[str] = (), addons: Iterable[object] = (), certstore: CertStore | None = None, mode: str = "regular"
    ) -> None:
        """
        @param options: C{--set}-style options (C{"stream_large_bodies=1k"}).
        @param addons: addon objects, after the built-in ones.
        @param certstore: the CA for TLS interception; needed only for C{CONNECT} to TLS.
        @param mode: the listener's mode spec (C{"reverse:http://10.0.0.1"}, C{"socks5"}, ...).
        """
        self.reactor = MemoryReactorClock()
        self.context = ProxyContext(make_master(options, addons), self.reactor, certstore)
        self.clients: list[Connection[MemoryClient]] = []
        self.upstreams: list[Connection[Any]] = []
        self._factory = ProxyFactory(self.context, ProxyMode.parse(mode))
        self._origins: dict[tuple[str, int], IProtocolFactory] = {}
        self._connects_seen = 0
        self._ports = itertools.count(40000)

    def add_origin(self, host: str, port: int, factory: IProtocolFactory) -> None:
        """Serve connections to C{host:port} with protocols from C{factory}; other addresses are refused."""
        self._origins[(host, port)] = factory

    def connect_client(self) -> MemoryClient:
        """Open a new client connection to the proxy (already pumped once)."""
        client = MemoryClient(self.reactor)
        client_address = ("127.0.0.1", next(self._ports))
        proxy_protocol = self._factory.buildProtocol(_address(*client_address))
        self.clients.append(self._connect(client, proxy_protocol, client_address, PROXY_ADDRESS, proxy_is_server=True))
        self.pump()
        return client

    def pump(self) -> None:
        """Connect what the proxy asked to connect and move bytes until nothing moves."""
        for _ in range(MAX_ROUNDS):
            connected = self._complete_connects()
            moved = [link.pump() for link in self._links()]
            if not connected and not any(moved):
                return
        raise AssertionError(f"the network still moves after {MAX_ROUNDS} rounds")

    def advance(self, seconds: float) -> None:
        """Let C{seconds} pass on the proxy's clock, then pump."""
        self.reactor.advance(seconds)
        self.pump()

    def _links(self) -> list[Link]:
        return [connection.link for connection in (*self.clients, *self.upstreams)]

    def _complete_connects(self) -> bool:
        """Connect, or refuse, every C{connectTCP} made since the last call."""
        pending = list(zip(self.reactor.tcpClients, self.reactor.connectors))[self._connects_seen :]
        self._connects_seen += len(pending)
        for (host, port, factory, _timeout, _bind), connector in pending:
            if connector.stoppedConnecting:
                continue
            origin_factory = self._origins.get((host, port))
            if origin_factory is None:
                factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
                continue
            proxy_address = ("127.0.0.1", next(self._ports))
            proxy_protocol = factory.buildProtocol(_address(host, port))
            origin = origin_factory.buildProtocol(_address(*proxy_address))
            self.upstreams.append(self._connect(origin, proxy_protocol, (host, port), proxy_address, proxy_is_server=False))
        return bool(pending)

    def _connect(
        self, peer: P, proxy: IProtocol, peer_address: tuple[str, int], proxy_address: tuple[str, int], proxy_is_server: bool
    ) -> Connection[P]:
        """Connect two protocols with a L{Link}: the accepting side first, as iosim does."""
        peer_end = MemoryTransport(peer, not proxy_is_server, _address(*peer_address), _address(*proxy_address))
        proxy_end = MemoryTransport(proxy, proxy_is_server, _address(*proxy_address), _address(*peer_address))
        if proxy_is_server:
            link = Link(peer, proxy, peer_end, proxy_end, False, clock=self.reactor)
        else:
            link = Link(proxy, peer, proxy_end, peer_end, False, clock=self.reactor)
        link.server.makeConnection(link.serverIO)
        link.client.makeConnection(link.clientIO)
        return Connection(peer, peer_end, proxy_end, peer_address, link)

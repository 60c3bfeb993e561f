# -*- test-case-name: tests.test_modes -*-
"""SOCKS5 (RFC 1928), with username/password authentication (RFC 1929) when C{proxyauth} is set.

The handshake is parsed by L{Socks5Handshake}, a small sans-io state machine: bytes in,
the bytes to answer and, at the end, the target. L{Socks5Entry} drives it on a client
connection, runs the C{socks5_auth} hook for credentials, connects to the target
(C{connection_strategy=eager}: the reply says whether that worked) and hands the
connection to a L{Tunnel}, which treats what follows as after a CONNECT. Only the
CONNECT command exists here, as in mitmproxy; anything malformed gets the reply the RFC
gives for it, if there is one, and the connection is closed.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_mitm.hooks import Socks5AuthData, Socks5AuthHook
from twisted_mitm.proxy.entry import ModeEntry

VERSION = 0x05
AUTH_VERSION = 0x01
NO_AUTHENTICATION = 0x00
USERNAME_PASSWORD = 0x02
NO_ACCEPTABLE_METHOD = 0xFF
CONNECT = 0x01
ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6 = 0x01, 0x03, 0x04


class Reply(enum.IntEnum):
    """The REP field of a SOCKS5 reply (RFC 1928 §6)."""

    SUCCEEDED = 0x00
    GENERAL_FAILURE = 0x01
    HOST_UNREACHABLE = 0x04
    CONNECTION_REFUSED = 0x05
    COMMAND_NOT_SUPPORTED = 0x07
    ADDRESS_TYPE_NOT_SUPPORTED = 0x08


def reply(code: Reply) -> bytes:
    """A reply with an all-zero IPv4 bound address, as proxies commonly send."""
    return bytes([VERSION, code, 0x00, ATYP_IPV4]) + b"\x00" * 6


class Socks5Error(Exception):
    """The client broke the handshake.

    @ivar answer: the bytes to send before closing (may be empty).
    @ivar reason: what went wrong, for the log.
    """

    def __init__(self, reason: str, answer: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.answer = answer


@dataclass(frozen=True)
class Credentials:
    """Username and password from an RFC 1929 sub-negotiation."""

    username: str
    password: str


@dataclass(frozen=True)
class Target:
    """Where the client asked to connect; C{rest} arrived after the request."""

    host: str
    port: int
    rest: bytes


class _Stage(enum.Enum):
    GREETING = enum.auto()
    AUTHENTICATION = enum.auto()
    REQUEST = enum.auto()
    DONE = enum.auto()


class Socks5Handshake:
    """Parses a SOCKS5 handshake from bytes as they come.

    L{receive} returns what to do next: bytes to send, L{Credentials} to check (answer
    them with L{authenticated}), a L{Target}, or C{None} when more bytes are needed.
    """

    #: the longest handshake message (a request with a 255-byte domain name)
    max_message = 4 + 1 + 255 + 2

    def __init__(self, require_credentials: bool) -> None:
        self._method = USERNAME_PASSWORD if require_credentials else NO_AUTHENTICATION
        self._stage = _Stage.GREETING
        self._buffer = b""

    def receive(self, data: bytes) -> bytes | Credentials | Target | None:
        """Take C{data}; return the next step, or C{None} for more bytes.

        @raise Socks5Error: the client broke the protocol.
        """
        self._buffer += data
        if self._stage is _Stage.GREETING:
            return self._greeting()
        if self._stage is _Stage.AUTHENTICATION:
            return self._credentials()
        if self._stage is _Stage.REQUEST:
            return self._request()
        raise Socks5Error("data after the handshake ended")

    def authenticated(self, valid: bool) -> bytes:
        """The answer to the credentials L{receive} returned.

        @raise Socks5Error: (with the failure answer) they were not valid.
        """
        if not valid:
            raise Socks5Error("authentication failed", bytes([AUTH_VERSION, 0x01]))
        self._stage = _Stage.REQUEST
        return bytes([AUTH_VERSION, 0x00])

    def pending(self) -> bytes | Target | None:
        """After an answer was sent, whatever the bytes already received complete."""
        return self.receive(b"")

    def _take(self, size: int) -> bytes | None:
        if len(self._buffer) < size:
            if len(self._buffer) > self.max_message:
                raise Socks5Error("handshake message too long")
            return None
        message, self._buffer = self._buffer[:size], self._buffer[size:]
        return message

    def _greeting(self) -> bytes | None:
        if len(self._buffer) < 2:
            return None
        if self._buffer[0] != VERSION:
            hint = " (an HTTP request? this port speaks SOCKS5)" if self._buffer[:3].isupper() else ""
            raise Socks5Error(f"not SOCKS5: version byte {self._buffer[0]:#04x}{hint}")
        count = self._buffer[1]
        greeting = self._take(2 + count)
        if greeting is None:
            return None
        if self._method not in greeting[2:]:
            wanted = "username/password" if self._method == USERNAME_PASSWORD else "no"
            raise Socks5Error(f"the client does not offer {wanted} authentication", bytes([VERSION, NO_ACCEPTABLE_METHOD]))
        self._stage = _Stage.AUTHENTICATION if self._method == USERNAME_PASSWORD else _Stage.REQUEST
        return bytes([VERSION, self._method])

    def _credentials(self) -> Credentials | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        if buffer[0] != AUTH_VERSION:
            raise Socks5Error(f"bad authentication version {buffer[0]:#04x}", bytes([AUTH_VERSION, 0x01]))
        user_end = 2 + buffer[1]
        if len(buffer) <= user_end:
            return None
        message = self._take(user_end + 1 + buffer[user_end])
        if message is None:
            return None
        username = message[2:user_end].decode("utf-8", "backslashreplace")
        password = message[user_end + 1 :].decode("utf-8", "backslashreplace")
        return Credentials(username, password)

    def _request(self) -> Target | None:
        buffer = self._buffer
        if len(buffer) < 5:
            return None
        if buffer[0] != VERSION or buffer[2] != 0x00:
            raise Socks5Error(f"malformed request {buffer[:4]!r}", reply(Reply.GENERAL_FAILURE))
        if buffer[1] != CONNECT:
            raise Socks5Error(f"command {buffer[1]:#04x} is not supported (only CONNECT)", reply(Reply.COMMAND_NOT_SUPPORTED))
        address_sizes = {ATYP_IPV4: 4, ATYP_IPV6: 16, ATYP_DOMAIN: 1 + buffer[4]}
        if buffer[3] not in address_sizes:
            raise Socks5Error(f"address type {buffer[3]:#04x} is not supported", reply(Reply.ADDRESS_TYPE_NOT_SUPPORTED))
        request = self._take(4 + address_sizes[buffer[3]] + 2)
        if request is None:
            return None
        address, (port,) = request[4:-2], struct.unpack("!H", request[-2:])
        if buffer[3] == ATYP_DOMAIN:
            host = address[1:].decode("idna") if address[1:] else ""
        else:
            host = str(ipaddress.ip_address(address))
        if not host:
            raise Socks5Error("empty host name", reply(Reply.GENERAL_FAILURE))
        self._stage = _Stage.DONE
        rest, self._buffer = self._buffer, b""
        return Target(host, port, rest)


class Socks5Entry(ModeEntry):
    """A connection to the SOCKS5 listener: the handshake, then a tunnel to its target."""

    _log = Logger()

    def begin(self) -> None:
        self._handshake = Socks5Handshake(require_credentials=bool(self.context.master.options.proxyauth))

    def early_data(self, data: bytes) -> None:
        try:
            self._step(self._handshake.receive(data))
        except (Socks5Error, UnicodeError) as error:
            self._broken(error)

    def _step(self, step: bytes | Credentials | Target | None) -> None:
        while isinstance(step, bytes):
            self.transport.write(step)
            step = self._handshake.pending()
        if isinstance(step, Credentials):
            self._check(step)
        elif isinstance(step, Target):
            self._connect(step)

    def _check(self, credentials: Credentials) -> None:
        assert self.client is not None
        self.transport.pauseProducing()
        data = Socks5AuthData(self.client, credentials.username, credentials.password)
        checked = self.context.addons.trigger(Socks5AuthHook(data))
        checked.addCallback(lambda _: self._checked(data.valid))

    def _checked(self, valid: bool) -> None:
        self.transport.resumeProducing()
        try:
            self.transport.write(self._handshake.authenticated(valid))
            self._step(self._handshake.pending())
        except Socks5Error as error:
            self._broken(error)

    def _connect(self, target: Target) -> None:
        self.transport.pauseProducing()
        connecting = self.connect_eagerly(target.host, target.port)
        connecting.addCallbacks(lambda _: self._connected(target), self._unreachable, errbackArgs=(target,))

    def _connected(self, target: Target) -> None:
        if self.transport.disconnecting:
            return
        self.transport.write(reply(Reply.SUCCEEDED))
        self.open_tunnel(target.host, target.port, target.rest)
        self.transport.resumeProducing()

    def _unreachable(self, reason: Failure, target: Target) -> None:
        message = reason.getErrorMessage()
        code = Reply.CONNECTION_REFUSED if "refused" in message else Reply.HOST_UNREACHABLE
        self._broken(Socks5Error(f"{target.host}:{target.port}: {message}", reply(code)))

    def _broken(self, error: Exception) -> None:
        if isinstance(error, Socks5Error) and error.answer:
            self.transport.write(error.answer)
        self.refuse(f"SOCKS5: {error}")

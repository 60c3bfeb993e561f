# -*- test-case-name: tests.test_tls -*-
"""TLS glue between L{twisted_mitm.certs} and Twisted's C{TLSMemoryBIOFactory}.

Facing the client: L{looks_like_tls} and L{parse_client_hello} read the first bytes of a
CONNECT tunnel, and L{intercepting_server_creator} presents a leaf for the names found.
Facing the origin: L{upstream_creator} verifies the server's chain and name. Handshake
failures surface as L{TLSFailure} subclasses, and L{describe_tls_failure} turns any
failure into the sentence that goes into a 502 body and the log.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import service_identity
from cryptography import x509
from OpenSSL import SSL
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet.error import ConnectionClosed
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_mitm.certs import CertStore, Leaf
from twisted_mitm.exceptions import OptionsError

log = Logger()

HTTP11 = b"http/1.1"
H2 = b"h2"
# A ClientHello larger than this is refused rather than waited for.
MAX_CLIENT_HELLO = 64 * 1024

_HANDSHAKE_RECORD = 0x16
_CLIENT_HELLO = 0x01
_MAX_RECORD = 2**14 + 2048
_SERVER_NAME = 0x0000
_ALPN = 0x0010

# OpenSSL's X509_V_ERR_* codes whose numbers have been stable for decades, with
# OpenSSL's own wording; other codes are reported by number.
_VERIFY_ERRORS = {
    2: "unable to get issuer certificate",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    22: "certificate chain too long",
    23: "certificate revoked",
    25: "path length constraint exceeded",
    26: "unsupported certificate purpose",
    27: "certificate not trusted",
    28: "certificate rejected",
}
_UNTRUSTED = frozenset({2, 18, 19, 20, 21, 27})


def looks_like_tls(data: bytes) -> bool:
    """Whether C{data} starts like a TLS handshake record (SSL 3.0 to TLS 1.3)."""
    return len(data) >= 3 and data[0] == _HANDSHAKE_RECORD and data[1] == 3 and data[2] <= 4


@dataclass(frozen=True)
class ClientHello:
    """What the proxy needs from a client's first handshake message."""

    sni: str | None
    alpn_protocols: tuple[bytes, ...]


class _Reader:
    """Reads big-endian integers and length-prefixed vectors, refusing to overrun."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def at_end(self) -> bool:
        return self._offset == len(self._data)

    def take(self, length: int) -> bytes:
        end = self._offset + length
        if end > len(self._data):
            raise ValueError("truncated ClientHello")
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, size: int) -> _Reader:
        return _Reader(self.take(self.uint(size)))


def parse_client_hello(data: bytes) -> ClientHello | None:
    """Parse the ClientHello at the start of C{data}, which may span several records.

    @return: L{None} while more bytes are needed.
    @raise ValueError: C{data} does not start with a ClientHello, or it exceeds
        L{MAX_CLIENT_HELLO}.
    """
    message = _handshake_message(data)
    if message is None:
        return None
    reader = _Reader(message)
    reader.take(2 + 32)  # legacy_version, random
    reader.vector(1)  # legacy_session_id
    reader.vector(2)  # cipher_suites
    reader.vector(1)  # legacy_compression_methods
    sni = None
    alpn: tuple[bytes, ...] = ()
    if not reader.at_end():
        extensions = reader.vector(2)
        while not extensions.at_end():
            kind = extensions.uint(2)
            body = extensions.vector(2)
            if kind == _SERVER_NAME:
                sni = _server_name(body)
            elif kind == _ALPN:
                alpn = _alpn_protocols(body)
    return ClientHello(sni, alpn)


def _handshake_message(data: bytes) -> bytes | None:
    """Reassemble the first handshake message from records; L{None} if incomplete."""
    if data[:1] not in (b"", bytes([_HANDSHAKE_RECORD])):
        raise ValueError("not a TLS handshake record")
    payload = bytearray()
    offset = 0
    while len(data) - offset >= 5:
        if data[offset] != _HANDSHAKE_RECORD or data[offset + 1] != 3:
            raise ValueError("not a TLS handshake record")
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        if length == 0 or length > _MAX_RECORD:
            raise ValueError("bad TLS record length")
        if len(data) - offset - 5 < length:
            break
        payload += data[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if len(payload) >= 4:
            if payload[0] != _CLIENT_HELLO:
                raise ValueError("the first handshake message is not a ClientHello")
            size = int.from_bytes(payload[1:4], "big")
            if size > MAX_CLIENT_HELLO:
                raise ValueError("ClientHello too large")
            if len(payload) >= 4 + size:
                return bytes(payload[4 : 4 + size])
    if len(data) > MAX_CLIENT_HELLO:
        raise ValueError("no complete ClientHello in the first 64 KiB")
    return None


def _server_name(body: _Reader) -> str | None:
    names = body.vector(2)
    while not names.at_end():
        kind = names.uint(1)
        name = names.take(names.uint(2))
        if kind == 0:
            try:
                return name.decode("ascii")
            except UnicodeDecodeError:
                raise ValueError("server name is not ASCII") from None
    return None


def _alpn_protocols(body: _Reader) -> tuple[bytes, ...]:
    protocols = body.vector(2)
    offered = []
    while not protocols.at_end():
        offered.append(protocols.take(protocols.uint(1)))
    return tuple(offered)


class TLSFailure(SSL.Error):
    """A handshake failure that twisted_mitm diagnosed; C{str()} is the readable reason."""

    def __init__(self, message: str) -> None:
        # Keep pyOpenSSL's shape, a list of (library, function, reason), which
        # TLSMemoryBIOProtocol inspects.
        super().__init__([("twisted_mitm", "", message)])
        self.message = message

    def __str__(self) -> str:
        return self.message


class CertificateVerifyError(TLSFailure):
    """The server's certificate chain did not verify.

    @ivar code: OpenSSL's C{X509_V_ERR_*} number.
    """

    def __init__(self, code: int) -> None:
        self.code = code
        reason = _VERIFY_ERRORS.get(code, f"verification error {code}")
        if code in _UNTRUSTED:
            reason += " (the server's certificate is not trusted)"
        super().__init__(f"certificate verify failed: {reason}")


class HostnameMismatch(TLSFailure):
    """The server's certificate is valid, but not for the host we asked for."""

    def __init__(self, hostname: str, valid_for: Sequence[str]) -> None:
        self.hostname = hostname
        self.valid_for = tuple(valid_for)
        names = ", ".join(repr(name) for name in self.valid_for) or "no host name"
        super().__init__(
            f"hostname mismatch: the certificate is valid for {names}, not {hostname!r}"
        )


class NoCommonProtocol(TLSFailure):
    """The client offered ALPN protocols, none of which the proxy speaks."""

    def __init__(self, offered: Sequence[bytes], spoken: bytes = HTTP11) -> None:
        self.offered = tuple(offered)
        names = ", ".join(p.decode("ascii", "replace") for p in self.offered)
        super().__init__(
            f"no common application protocol: the client offered only {names} via ALPN, "
            f"the proxy speaks {spoken.decode()}"
        )


def describe_tls_failure(reason: Failure | BaseException) -> str:
    """One readable sentence saying why a TLS connection failed."""
    error = reason.value if isinstance(reason, Failure) else reason
    if isinstance(error, TLSFailure):
        return str(error)
    if isinstance(error, SSL.Error):
        return f"TLS handshake failed: {_openssl_reasons(error)}"
    if isinstance(error, ConnectionClosed):
        return "TLS handshake failed: the connection was closed"
    return f"TLS handshake failed: {error or type(error).__name__}"


# What OpenSSL calls the alerts a client sends when it does not accept a certificate.
_CERTIFICATE_ALERTS = ("unknown ca", "bad certificate", "certificate unknown", "unsupported certificate")


def log_client_tls_failure(client: str, host: str, reason: Failure, ca_path: object) -> None:
    """Log one line for a client that did not complete TLS with the proxy.

    A client that refused the proxy's certificate is told which CA file to trust; a client
    refused for its ALPN offer was already logged when the offer was refused.
    """
    if reason.check(NoCommonProtocol):
        return
    description = describe_tls_failure(reason)
    if any(alert in description for alert in _CERTIFICATE_ALERTS):
        what = "the client rejected the proxy's certificate for {host} ({reason}); make it trust"
    else:
        what = "the client did not complete TLS for {host} ({reason}); if it rejected the proxy's certificate, make it trust"
    log.warn("{client}: " + what + " the CA in {ca}", client=client, host=host, reason=description, ca=ca_path)


def _openssl_reasons(error: SSL.Error) -> str:
    """The reason strings from pyOpenSSL's C{[(lib, func, reason), ...]} error list."""
    stack = error.args[0] if error.args else None
    if isinstance(stack, list) and stack:
        return "; ".join(str(entry[-1]) for entry in stack)
    return str(error) or type(error).__name__


@implementer(IOpenSSLServerConnectionCreator)
class _ServerCreator:
    """Server-side connections that all share one OpenSSL context."""

    def __init__(self, context: SSL.Context) -> None:
        self._context = context

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        return SSL.Connection(self._context, None)


# One context per leaf and ALPN choice, freed when the certificate store lets go of the leaf.
_server_contexts: weakref.WeakKeyDictionary[Leaf, dict[bytes, SSL.Context]] = weakref.WeakKeyDictionary()


def intercepting_server_creator(
    certstore: CertStore, hostnames: Sequence[str], alpn: bytes = HTTP11
) -> IOpenSSLServerConnectionCreator:
    """Present a leaf for C{hostnames} (chained to the CA) and select C{alpn} by ALPN
    (C{h2} where the server agreed to it, else http/1.1).

    A client that offers ALPN without that protocol fails the handshake with
    L{NoCommonProtocol}.
    """
    leaf = certstore.get_leaf(hostnames)
    contexts = _server_contexts.setdefault(leaf, {})
    context = contexts.get(alpn)
    if context is None:
        context = contexts[alpn] = _server_context(leaf, alpn)
    return _ServerCreator(context)


def _server_context(leaf: Leaf, alpn: bytes) -> SSL.Context:
    context = _base_context()
    context.use_certificate(leaf.cert)
    for cert in leaf.chain:
        context.add_extra_chain_cert(cert)
    context.use_privatekey(leaf.key)
    context.check_privatekey()
    context.set_alpn_select_callback(functools.partial(_select_protocol, alpn))
    return context


def _select_protocol(chosen: bytes, connection: SSL.Connection, offered: list[bytes]) -> bytes:
    if chosen in offered:
        return chosen
    servername = connection.get_servername()
    log.warn(
        "TLS client for {sni} offered only {offered} via ALPN; the proxy speaks {chosen}",
        sni=servername.decode("ascii", "replace") if servername else "(no SNI)",
        offered=", ".join(p.decode("ascii", "replace") for p in offered),
        chosen=chosen.decode("ascii", "replace"),
    )
    raise NoCommonProtocol(offered, chosen)


@implementer(IOpenSSLClientConnectionCreator)
class _UpstreamCreator:
    """Client-side connections that send SNI and verify the server for one host.

    Verification runs in a per-connection callback that, on failure, hands the
    L{TLSFailure} to the TLS protocol as its C{connectionLost} reason (as Twisted's
    own L{optionsForClientTLS} does for name mismatches).
    """

    def __init__(self, hostname: str, context: SSL.Context, verify: bool) -> None:
        self._hostname = hostname
        self._context = context
        self._verify = verify
        self._is_ip = _is_ip_address(hostname)

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        if not self._is_ip:
            connection.set_tlsext_host_name(_idna(self._hostname))
        if self._verify:
            connection.set_verify(
                SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                self._verify_callback(tlsProtocol),
            )
        return connection

    def _verify_callback(
        self, tlsProtocol: TLSMemoryBIOProtocol
    ) -> Callable[[SSL.Connection, object, int, int, int], bool]:
        def verify(
            connection: SSL.Connection, cert: object, code: int, depth: int, ok: int
        ) -> bool:
            failure: TLSFailure | None = None
            if not ok:
                failure = CertificateVerifyError(code)
            elif depth == 0:
                failure = self._check_identity(cert.to_cryptography())  # type: ignore[attr-defined]
            if failure is None:
                return bool(ok)
            tlsProtocol.failVerification(Failure(failure))
            return False

        return verify

    def _check_identity(self, cert: x509.Certificate) -> HostnameMismatch | None:
        try:
            if self._is_ip:
                verify_certificate_ip_address(cert, self._hostname)
            else:
                verify_certificate_hostname(cert, self._hostname)
        except (service_identity.VerificationError, service_identity.CertificateError):
            return HostnameMismatch(self._hostname, _names_in(cert))
        return None


def upstream_creator(
    hostname: str,
    *,
    verify: bool = True,
    trusted_ca_path: str | None = None,
    alpn: Sequence[bytes] = (HTTP11,),
) -> IOpenSSLClientConnectionCreator:
    """Connect to C{hostname} over TLS 1.2+, verifying its chain and name unless told not to.

    @param trusted_ca_path: a PEM bundle (or a hashed directory) to trust instead of
        the system's store.
    @raise OptionsError: C{trusted_ca_path} cannot be loaded.
    """
    context = _client_context(verify, trusted_ca_path, tuple(alpn))
    return _UpstreamCreator(hostname, context, verify)


@functools.lru_cache(maxsize=16)
def _client_context(
    verify: bool, trusted_ca_path: str | None, alpn: tuple[bytes, ...]
) -> SSL.Context:
    """A shared client context; loading a trust store is too slow to do per connection."""
    context = _base_context()
    if alpn:
        context.set_alpn_protos(list(alpn))
    if verify:
        _load_trust(context, trusted_ca_path)
    return context


def _load_trust(context: SSL.Context, trusted_ca_path: str | None) -> None:
    """Trust C{trusted_ca_path} only, or the system store.

    pyOpenSSL falls back to the usual Linux locations (Debian's /etc/ssl/certs among
    them) when the OpenSSL bundled with cryptography knows no store of its own.
    """
    if trusted_ca_path is None:
        context.set_default_verify_paths()
        return
    try:
        if os.path.isdir(trusted_ca_path):
            context.load_verify_locations(None, trusted_ca_path)
        else:
            context.load_verify_locations(trusted_ca_path)
    except SSL.Error as e:
        raise OptionsError(
            f"{trusted_ca_path}: cannot load trusted CA certificates: {_openssl_reasons(e)}"
        ) from e


def _base_context() -> SSL.Context:
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    return context


def _is_ip_address(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def _idna(hostname: str) -> bytes:
    return hostname.encode("ascii" if hostname.isascii() else "idna")


def _names_in(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate's SAN lists."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    addresses = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return san.get_values_for_type(x509.DNSName) + addresses

# -*- test-case-name: tests.test_tls -*-
"""TLS glue between L{twisted_mitm.certs} and Twisted's C{TLSMemoryBIOFactory}.

Facing the client: L{intercepting_server_creator} presents a leaf for the names the
ClientHello asked for (L{twisted_mitm.tls} parses it). Facing the origin:
L{upstream_creator} verifies the server's chain and name. Both make their
C{SSL.Connection} on request (C{new_connection}), so that a C{tls_start_*} hook can see
and change it before L{PreparedConnection} hands it to Twisted's TLS. Handshake
failures surface as L{TLSFailure} subclasses, and L{describe_tls_failure} turns any
failure into the sentence that goes into a 502 body and the log.
L{record_handshake} copies what a completed handshake agreed onto a connection record.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import time
import weakref
from collections.abc import Sequence

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

from twisted_mitm.certs import Cert, CertStore, Leaf
from twisted_mitm.connection import Client, Connection
from twisted_mitm.exceptions import OptionsError

log = Logger()

HTTP11 = b"http/1.1"
H2 = b"h2"


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


def record_handshake(conn: Connection, ssl_connection: SSL.Connection) -> None:
    """Fill C{conn}'s TLS fields from a connection whose handshake has just completed.

    As mitmproxy does: version, cipher, ALPN, the peer's certificates (its own first) and
    the time; for a client, also the leaf the proxy presented (C{mitmcert}).
    """
    conn.timestamp_tls_setup = time.time()
    conn.tls = True
    conn.tls_version = ssl_connection.get_protocol_version_name()
    conn.cipher = ssl_connection.get_cipher_name()
    conn.alpn = ssl_connection.get_alpn_proto_negotiated() or None
    conn.certificate_list = _peer_certificates(ssl_connection, isinstance(conn, Client))
    if isinstance(conn, Client):
        presented = ssl_connection.get_certificate(as_cryptography=True)
        conn.mitmcert = Cert(presented) if presented is not None else None


def _peer_certificates(ssl_connection: SSL.Connection, peer_is_client: bool) -> list[Cert]:
    """The peer's chain, its own certificate first.

    OpenSSL leaves a client's own certificate out of the chain it reports on the server
    side of a connection, so it is added from C{get_peer_certificate}.
    """
    chain = ssl_connection.get_peer_cert_chain(as_cryptography=True) or []
    if peer_is_client:
        own = ssl_connection.get_peer_certificate(as_cryptography=True)
        if own is not None:
            chain.insert(0, own)
    return [Cert(cert) for cert in chain]


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLClientConnectionCreator)
class PreparedConnection:
    """Hands Twisted's TLS one C{SSL.Connection} made in advance (and maybe changed by a hook)."""

    def __init__(self, connection: SSL.Connection) -> None:
        self.connection = connection

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        return self._for(tlsProtocol)

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        return self._for(tlsProtocol)

    def _for(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        # The verification callback finds the protocol to fail through the app data.
        self.connection.set_app_data(tlsProtocol)
        return self.connection


@implementer(IOpenSSLServerConnectionCreator)
class ServerCreator:
    """Server-side connections that all share one OpenSSL context."""

    def __init__(self, context: SSL.Context) -> None:
        self._context = context

    def new_connection(self) -> SSL.Connection:
        """A connection presenting this context's certificate."""
        return SSL.Connection(self._context, None)

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        return self.new_connection()


# One context per leaf and ALPN choice, freed when the certificate store lets go of the leaf.
_server_contexts: weakref.WeakKeyDictionary[Leaf, dict[bytes, SSL.Context]] = weakref.WeakKeyDictionary()


def intercepting_server_creator(certstore: CertStore, hostnames: Sequence[str], alpn: bytes = HTTP11) -> ServerCreator:
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
    return ServerCreator(context)


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
class UpstreamCreator:
    """Client-side connections that send SNI and verify the server for one host.

    Verification runs in a per-connection callback that, on failure, hands the
    L{TLSFailure} to the TLS protocol (the connection's app data) as its
    C{connectionLost} reason, as Twisted's own L{optionsForClientTLS} does for name
    mismatches.
    """

    def __init__(self, hostname: str, context: SSL.Context, verify: bool) -> None:
        self._hostname = hostname
        self._context = context
        self._verify = verify
        self._is_ip = _is_ip_address(hostname)

    def new_connection(self) -> SSL.Connection:
        """A connection for this host: its SNI set, verification armed."""
        connection = SSL.Connection(self._context, None)
        if not self._is_ip:
            connection.set_tlsext_host_name(_idna(self._hostname))
        if self._verify:
            connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify_callback)
        return connection

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        return PreparedConnection(self.new_connection()).clientConnectionForTLS(tlsProtocol)

    def _verify_callback(self, connection: SSL.Connection, cert: object, code: int, depth: int, ok: int) -> bool:
        failure: TLSFailure | None = None
        if not ok:
            failure = CertificateVerifyError(code)
        elif depth == 0:
            failure = self._check_identity(cert.to_cryptography())  # type: ignore[attr-defined]
        if failure is None:
            return bool(ok)
        connection.get_app_data().failVerification(Failure(failure))
        return False

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
) -> UpstreamCreator:
    """Connect to C{hostname} over TLS 1.2+, verifying its chain and name unless told not to.

    @param trusted_ca_path: a PEM bundle (or a hashed directory) to trust instead of
        the system's store.
    @raise OptionsError: C{trusted_ca_path} cannot be loaded.
    """
    context = _client_context(verify, trusted_ca_path, tuple(alpn))
    return UpstreamCreator(hostname, context, verify)


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

# -*- test-case-name: tests.test_certs -*-
"""The interception CA and the leaf certificates it signs.

L{CertStore} creates or loads the CA in a confdir laid out the way mitmproxy lays it out,
so a CA that browsers already trust keeps working, and signs one leaf per set of
hostnames, cached. Pure: cryptography objects in and out, no transports; the
TLS glue in L{twisted_mitm.proxy.tls} turns a L{Leaf} into an OpenSSL context.
L{Cert} is a certificate as connection records keep it and flow files save it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
)
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from twisted_mitm.coretypes.serializable import Serializable
from twisted_mitm.exceptions import OptionsError

KEY_SIZE = 2048
CA_VALIDITY = datetime.timedelta(days=10 * 365)
# Under the 398-day ceiling that browsers enforce for leaf certificates.
LEAF_VALIDITY = datetime.timedelta(days=365)
# Tolerates clients whose clock is a little behind ours.
BACKDATE = datetime.timedelta(days=2)
# RFC 5280 ub-common-name: a longer first hostname goes into the SAN only.
MAX_COMMON_NAME = 64

_PRIVATE = 0o600
_PUBLIC = 0o644


@dataclass(frozen=True, eq=False)
class Leaf:
    """A leaf certificate for some hostnames, its private key, and the chain above it.

    @ivar chain: the certificates to send after C{cert}, the CA first.
    """

    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    chain: tuple[x509.Certificate, ...]


class Cert(Serializable):
    """A TLS certificate as connection records keep it (mitmproxy's C{certs.Cert}).

    Its state is the PEM text, so flow files carry certificates the way mitmproxy's do.
    """

    def __init__(self, cert: x509.Certificate) -> None:
        self._cert = cert

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cert) and self.fingerprint() == other.fingerprint()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        return f"<Cert(cn={self.cn!r}, altnames={[str(name.value) for name in self.altnames]!r})>"

    @classmethod
    def from_pem(cls, data: bytes) -> Cert:
        """Load a PEM certificate.

        @raise ValueError: if C{data} is not one.
        """
        return cls(x509.load_pem_x509_certificate(data))

    def to_pem(self) -> bytes:
        """The certificate in PEM."""
        return _pem(self._cert)

    def to_cryptography(self) -> x509.Certificate:
        """The C{cryptography} certificate object."""
        return self._cert

    @classmethod
    def from_state(cls, state: bytes) -> Cert:
        return cls.from_pem(state)

    def get_state(self) -> bytes:
        return self.to_pem()

    def set_state(self, state: bytes) -> None:
        self._cert = x509.load_pem_x509_certificate(state)

    def fingerprint(self) -> bytes:
        """The SHA-256 digest of the DER certificate."""
        return self._cert.fingerprint(hashes.SHA256())

    @property
    def cn(self) -> str | None:
        """The subject's first common name, if any."""
        names = self._cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else None

    @property
    def altnames(self) -> x509.GeneralNames:
        """The subject alternative names (empty without the extension)."""
        try:
            extension = self._cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return x509.GeneralNames([])
        return x509.GeneralNames(list(extension.value))

    @property
    def notbefore(self) -> datetime.datetime:
        """Start of validity (UTC)."""
        return self._cert.not_valid_before_utc

    @property
    def notafter(self) -> datetime.datetime:
        """End of validity (UTC)."""
        return self._cert.not_valid_after_utc


class CertStore:
    """The CA of one confdir and a bounded cache of the leaves it has signed.

    All leaves share one private key, generated on first use, so signing a new leaf costs
    one signature rather than a key generation.

    @ivar ca_cert_path: the file users install as a trusted root.
    @ivar max_leaves: how many leaves the cache keeps; the least recently used goes first.
    """

    max_leaves = 1000

    def __init__(
        self,
        ca_key: CertificateIssuerPrivateKeyTypes,
        ca_chain: Sequence[x509.Certificate],
        ca_cert_path: Path,
    ) -> None:
        self.ca_key = ca_key
        self.ca_cert = ca_chain[0]
        self.ca_cert_path = ca_cert_path
        self._chain = tuple(ca_chain)
        self._leaves: OrderedDict[tuple[str, ...], Leaf] = OrderedDict()

    @classmethod
    def from_confdir(
        cls, confdir: str | os.PathLike[str], *, basename: str = "mitmproxy"
    ) -> CertStore:
        """Load the CA from C{confdir}, creating it (and the folder) on first use.

        An existing C{<basename>-ca.pem} is never rewritten; public files missing beside
        it are written from it.

        @raise OptionsError: a CA file cannot be read, parsed or written.
        """
        files = _CAFiles(Path(confdir).expanduser(), basename)
        _create_folder(files.folder)
        if not files.key_and_cert.exists():
            key, cert = create_ca(basename)
            files.write_private(key, cert)
            chain = [cert]
        else:
            key, chain = _load_ca(files.key_and_cert)
        files.write_public(chain[0])
        return cls(key, chain, files.cert_pem)

    @cached_property
    def leaf_key(self) -> rsa.RSAPrivateKey:
        """The private key of every leaf this store signs."""
        return rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)

    def get_leaf(self, hostnames: Sequence[str]) -> Leaf:
        """Return a leaf whose CN is the first hostname and whose SAN lists them all.

        @param hostnames: DNS names or IP literals, at least one.
        """
        names = tuple(hostnames)
        if not names:
            raise ValueError("a leaf certificate needs at least one hostname")
        leaf = self._leaves.get(names)
        if leaf is None:
            leaf = Leaf(self._sign_leaf(names), self.leaf_key, self._chain)
            self._leaves[names] = leaf
            while len(self._leaves) > self.max_leaves:
                self._leaves.popitem(last=False)
        else:
            self._leaves.move_to_end(names)
        return leaf

    def _sign_leaf(self, hostnames: tuple[str, ...]) -> x509.Certificate:
        common_name = hostnames[0]
        has_cn = len(common_name) <= MAX_COMMON_NAME
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if has_cn else []
        now = datetime.datetime.now(datetime.timezone.utc)
        public_key = self.leaf_key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self.ca_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + LEAF_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True, key_encipherment=True), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            # RFC 5280 4.2.1.6: the SAN is critical when the subject is empty.
            .add_extension(
                x509.SubjectAlternativeName([_general_name(h) for h in hostnames]),
                critical=not has_cn,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(_authority_key_identifier(self.ca_cert), critical=False)
        )
        return builder.sign(self.ca_key, hashes.SHA256())


def create_ca(name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """Create a self-signed CA named like mitmproxy's: CN and O are both C{name}."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
        ]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    )
    return key, builder.sign(key, hashes.SHA256())


@dataclass(frozen=True)
class _CAFiles:
    """The names of the CA files in a confdir, and how each is written."""

    folder: Path
    basename: str

    @property
    def key_and_cert(self) -> Path:
        return self.folder / f"{self.basename}-ca.pem"

    @property
    def cert_pem(self) -> Path:
        return self.folder / f"{self.basename}-ca-cert.pem"

    def write_private(self, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> None:
        """Write the key-holding files: PEM key + cert, and PKCS12 key + cert."""
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        _write_new(self.key_and_cert, key_pem + _pem(cert), _PRIVATE)
        _write_new(self.folder / f"{self.basename}-ca.p12", self._pkcs12(cert, key), _PRIVATE)

    def write_public(self, cert: x509.Certificate) -> None:
        """Write whichever of the certificate-only files are missing."""
        contents = {
            self.cert_pem: _pem(cert),
            # Android wants the same PEM under a .cer name.
            self.folder / f"{self.basename}-ca-cert.cer": _pem(cert),
            self.folder / f"{self.basename}-ca-cert.p12": self._pkcs12(cert, None),
        }
        for path, data in contents.items():
            if not path.exists():
                _write_new(path, data, _PUBLIC)

    def _pkcs12(self, cert: x509.Certificate, key: rsa.RSAPrivateKey | None) -> bytes:
        return pkcs12.serialize_key_and_certificates(
            self.basename.encode(), key, cert, None, serialization.NoEncryption()
        )


def _load_ca(
    path: Path,
) -> tuple[CertificateIssuerPrivateKeyTypes, list[x509.Certificate]]:
    """Read a key + certificate(s) PEM file, the CA certificate first."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise OptionsError(f"{path}: cannot read the CA file: {e.strerror}") from e
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except TypeError as e:
        raise OptionsError(f"{path}: the CA private key is encrypted") from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise OptionsError(f"{path}: no usable CA private key in the file") from e
    try:
        chain = x509.load_pem_x509_certificates(raw)
    except ValueError as e:
        raise OptionsError(f"{path}: no usable CA certificate in the file") from e
    if chain[0].public_key() != key.public_key():
        raise OptionsError(f"{path}: the private key does not match the CA certificate")
    return key, chain  # type: ignore[return-value]


def _create_folder(folder: Path) -> None:
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise OptionsError(f"{folder}: cannot create the confdir: {e.strerror}") from e


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create C{path} with C{mode} from the start; never overwrite a file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as e:
        raise OptionsError(f"{path}: cannot write the CA file: {e.strerror}") from e


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _general_name(hostname: str) -> x509.GeneralName:
    """An IP literal becomes an IPAddress entry, anything else a DNSName (IDNA A-labels)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        pass
    if not hostname.isascii():
        hostname = hostname.encode("idna").decode("ascii")
    return x509.DNSName(hostname)


def _authority_key_identifier(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """Point at the CA's own SKI when it has one, so chain building finds it."""
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)


def _key_usage(**allowed: bool) -> x509.KeyUsage:
    usages = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    return x509.KeyUsage(**{**usages, **allowed})

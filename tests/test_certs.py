"""Tests for L{twisted_mitm.certs}."""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.certs import CertStore
from twisted_mitm.exceptions import OptionsError

FILES = (
    "mitmproxy-ca.pem",
    "mitmproxy-ca-cert.pem",
    "mitmproxy-ca-cert.cer",
    "mitmproxy-ca-cert.p12",
    "mitmproxy-ca.p12",
)


def make_ca(common_name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A minimal self-signed CA, built independently of the code under test."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def mitmproxy_ca_pem(key: rsa.RSAPrivateKey, cert: x509.Certificate) -> bytes:
    """The content of mitmproxy's C{mitmproxy-ca.pem}: key PEM, then certificate PEM."""
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


@functools.cache
def _leaf_test_ca() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return make_ca("Leaf Test CA")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


class CreateCATests(SynchronousTestCase):
    """A confdir without a CA gets one, in mitmproxy's layout."""

    def setUp(self) -> None:
        self.confdir = Path(self.mktemp()) / "conf"
        self.store = CertStore.from_confdir(self.confdir)

    def test_files_and_modes(self) -> None:
        """All five files exist; the folder is 0700 and the key-holding files 0600."""
        self.assertEqual(sorted(os.listdir(self.confdir)), sorted(FILES))
        self.assertEqual(_mode(self.confdir), 0o700)
        self.assertEqual(_mode(self.confdir / "mitmproxy-ca.pem"), 0o600)
        self.assertEqual(_mode(self.confdir / "mitmproxy-ca.p12"), 0o600)

    def test_file_contents(self) -> None:
        """The PEM holds key then cert; .cer equals the cert PEM; the p12s hold what they should."""
        pem = self.store.ca_cert.public_bytes(serialization.Encoding.PEM)
        raw = (self.confdir / "mitmproxy-ca.pem").read_bytes()
        self.assertTrue(raw.startswith(b"-----BEGIN RSA PRIVATE KEY-----"))
        self.assertTrue(raw.endswith(pem))
        self.assertEqual((self.confdir / "mitmproxy-ca-cert.pem").read_bytes(), pem)
        self.assertEqual((self.confdir / "mitmproxy-ca-cert.cer").read_bytes(), pem)
        key, cert, others = pkcs12.load_key_and_certificates(
            (self.confdir / "mitmproxy-ca-cert.p12").read_bytes(), None
        )
        self.assertIsNone(key)
        self.assertEqual([c for c in [cert, *others] if c], [self.store.ca_cert])
        key, cert, _ = pkcs12.load_key_and_certificates(
            (self.confdir / "mitmproxy-ca.p12").read_bytes(), None
        )
        self.assertEqual(cert, self.store.ca_cert)
        self.assertEqual(key.public_key(), self.store.ca_cert.public_key())

    def test_ca_cert_path(self) -> None:
        """C{ca_cert_path} names the certificate users install."""
        self.assertEqual(self.store.ca_cert_path, self.confdir / "mitmproxy-ca-cert.pem")

    def test_ca_certificate(self) -> None:
        """The CA is named like mitmproxy's, is an RSA 2048 CA for ten years, and may sign."""
        ca = self.store.ca_cert
        self.assertEqual(ca.subject.rfc4514_string(), "O=mitmproxy,CN=mitmproxy")
        self.assertEqual(ca.issuer, ca.subject)
        self.assertEqual(ca.public_key().key_size, 2048)
        constraints = _extension(ca, x509.BasicConstraints)
        self.assertTrue(constraints.critical)
        self.assertTrue(constraints.value.ca)
        usage = _extension(ca, x509.KeyUsage).value
        self.assertTrue(usage.key_cert_sign and usage.crl_sign)
        self.assertFalse(usage.digital_signature)
        _extension(ca, x509.SubjectKeyIdentifier)
        lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
        self.assertGreater(lifetime, datetime.timedelta(days=9 * 365))
        ca.verify_directly_issued_by(ca)

    def test_reload_is_identical(self) -> None:
        """A second load uses the same CA and leaves every file byte-identical."""
        before = {name: (self.confdir / name).read_bytes() for name in FILES}
        again = CertStore.from_confdir(self.confdir)
        self.assertEqual(again.ca_cert, self.store.ca_cert)
        self.assertEqual({name: (self.confdir / name).read_bytes() for name in FILES}, before)

    def test_missing_public_file_rewritten(self) -> None:
        """A deleted certificate file is written again from the CA, the others untouched."""
        (self.confdir / "mitmproxy-ca-cert.cer").unlink()
        key_file = (self.confdir / "mitmproxy-ca.pem").read_bytes()
        CertStore.from_confdir(self.confdir)
        self.assertEqual(
            (self.confdir / "mitmproxy-ca-cert.cer").read_bytes(),
            self.store.ca_cert.public_bytes(serialization.Encoding.PEM),
        )
        self.assertEqual((self.confdir / "mitmproxy-ca.pem").read_bytes(), key_file)

    def test_basename(self) -> None:
        """C{basename} names the files and the CA."""
        confdir = Path(self.mktemp())
        store = CertStore.from_confdir(confdir, basename="other")
        self.assertEqual(store.ca_cert_path, confdir / "other-ca-cert.pem")
        self.assertTrue((confdir / "other-ca.pem").exists())
        self.assertEqual(store.ca_cert.subject.rfc4514_string(), "O=other,CN=other")


class LoadCATests(SynchronousTestCase):
    """An existing CA is used as it is, and a broken one stops start-up clearly."""

    def setUp(self) -> None:
        self.confdir = Path(self.mktemp())
        self.confdir.mkdir()
        self.ca_file = self.confdir / "mitmproxy-ca.pem"

    def test_home_is_expanded(self) -> None:
        """A confdir starting with C{~} is created under the home directory."""
        home = Path(self.mktemp())
        home.mkdir()
        self.patch(os, "environ", {**os.environ, "HOME": str(home)})
        store = CertStore.from_confdir("~/.mitm")
        self.assertEqual(store.ca_cert_path, home / ".mitm" / "mitmproxy-ca-cert.pem")

    def test_mitmproxy_ca_used_unchanged(self) -> None:
        """A CA in mitmproxy's layout is loaded as it is and signs the leaves."""
        key, cert = make_ca("Existing CA")
        original = mitmproxy_ca_pem(key, cert)
        self.ca_file.write_bytes(original)
        store = CertStore.from_confdir(self.confdir)
        self.assertEqual(store.ca_cert, cert)
        self.assertEqual(self.ca_file.read_bytes(), original)
        self.assertEqual(
            store.ca_cert_path.read_bytes(), cert.public_bytes(serialization.Encoding.PEM)
        )
        leaf = store.get_leaf(["example.test"]).cert
        self.assertEqual(leaf.issuer, cert.subject)
        leaf.verify_directly_issued_by(cert)

    def test_corrupt_file(self) -> None:
        """A CA file with no key in it raises OptionsError naming the file."""
        self.ca_file.write_bytes(b"not a pem file\n")
        error = self.assertRaises(OptionsError, CertStore.from_confdir, self.confdir)
        self.assertIn(str(self.ca_file), str(error))
        self.assertIn("private key", str(error))
        self.assertNotIn("\n", str(error))

    def test_key_without_certificate(self) -> None:
        """A CA file with a key but no certificate raises OptionsError saying so."""
        key, cert = make_ca("Half CA")
        pem = mitmproxy_ca_pem(key, cert)
        self.ca_file.write_bytes(pem[: pem.index(b"-----BEGIN CERTIFICATE-----")])
        error = self.assertRaises(OptionsError, CertStore.from_confdir, self.confdir)
        self.assertIn(str(self.ca_file), str(error))
        self.assertIn("certificate", str(error))

    def test_mismatched_key(self) -> None:
        """A key that does not belong to the certificate raises OptionsError."""
        key, _ = make_ca("One")
        _, cert = make_ca("Two")
        self.ca_file.write_bytes(mitmproxy_ca_pem(key, cert))
        error = self.assertRaises(OptionsError, CertStore.from_confdir, self.confdir)
        self.assertIn("does not match", str(error))


class LeafTests(SynchronousTestCase):
    """Leaves name the requested hosts, chain to the CA and are cached."""

    def setUp(self) -> None:
        self.ca_key, self.ca_cert = _leaf_test_ca()
        self.store = CertStore(self.ca_key, [self.ca_cert], Path("unused.pem"))

    def test_subject_alternative_names(self) -> None:
        """DNS names become DNSName entries, IPv4/IPv6 literals IPAddress entries; CN is the first."""
        cert = self.store.get_leaf(["example.test", "127.0.0.1", "::1", "*.example.test"]).cert
        san = _extension(cert, x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["example.test", "*.example.test"])
        self.assertEqual(
            san.get_values_for_type(x509.IPAddress),
            [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")],
        )
        self.assertEqual(
            cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "example.test"
        )

    def test_long_name(self) -> None:
        """A first hostname too long for a CN appears in a critical SAN only."""
        name = "a" * 60 + ".example.test"
        cert = self.store.get_leaf([name]).cert
        self.assertEqual(len(cert.subject), 0)
        san = _extension(cert, x509.SubjectAlternativeName)
        self.assertTrue(san.critical)
        self.assertEqual(san.value.get_values_for_type(x509.DNSName), [name])

    def test_signed_by_ca(self) -> None:
        """The leaf's issuer is the CA's subject and its signature verifies with the CA key."""
        leaf = self.store.get_leaf(["example.test"])
        self.assertEqual(leaf.cert.issuer, self.ca_cert.subject)
        leaf.cert.verify_directly_issued_by(self.ca_cert)
        self.assertEqual(leaf.chain, (self.ca_cert,))

    def test_extensions(self) -> None:
        """A server-auth end-entity certificate with key identifiers linking it to the CA."""
        cert = self.store.get_leaf(["example.test"]).cert
        self.assertFalse(_extension(cert, x509.BasicConstraints).value.ca)
        usage = _extension(cert, x509.KeyUsage).value
        self.assertTrue(usage.digital_signature and usage.key_encipherment)
        self.assertFalse(usage.key_cert_sign)
        self.assertEqual(
            list(_extension(cert, x509.ExtendedKeyUsage).value),
            [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH],
        )
        self.assertEqual(
            _extension(cert, x509.SubjectKeyIdentifier).value,
            x509.SubjectKeyIdentifier.from_public_key(cert.public_key()),
        )
        self.assertEqual(
            _extension(cert, x509.AuthorityKeyIdentifier).value.key_identifier,
            x509.SubjectKeyIdentifier.from_public_key(self.ca_cert.public_key()).digest,
        )

    def test_validity(self) -> None:
        """Valid from two days ago for at most 397 days: what browsers and curl accept."""
        cert = self.store.get_leaf(["example.test"]).cert
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(cert.not_valid_before_utc, now - datetime.timedelta(days=1))
        self.assertGreater(cert.not_valid_before_utc, now - datetime.timedelta(days=3))
        self.assertLessEqual(cert.not_valid_after_utc - now, datetime.timedelta(days=397))
        self.assertGreater(cert.not_valid_after_utc - now, datetime.timedelta(days=300))

    def test_shared_key(self) -> None:
        """Every leaf uses the store's one leaf key, which is not the CA key."""
        first = self.store.get_leaf(["one.test"])
        second = self.store.get_leaf(["two.test"])
        self.assertIs(first.key, second.key)
        self.assertEqual(first.cert.public_key(), first.key.public_key())
        self.assertNotEqual(first.key.public_key(), self.ca_cert.public_key())
        self.assertNotEqual(first.cert.serial_number, second.cert.serial_number)

    def test_cached(self) -> None:
        """The same names give the same leaf object; other names another."""
        leaf = self.store.get_leaf(["example.test", "127.0.0.1"])
        self.assertIs(self.store.get_leaf(("example.test", "127.0.0.1")), leaf)
        self.assertIsNot(self.store.get_leaf(["example.test"]), leaf)

    def test_cache_bounded(self) -> None:
        """The cache keeps C{max_leaves} leaves and evicts the least recently used."""
        self.store.max_leaves = 2
        a = self.store.get_leaf(["a.test"])
        b = self.store.get_leaf(["b.test"])
        self.assertIs(self.store.get_leaf(["a.test"]), a)
        self.store.get_leaf(["c.test"])
        self.assertIs(self.store.get_leaf(["a.test"]), a)
        self.assertIsNot(self.store.get_leaf(["b.test"]), b)

    def test_no_hostnames(self) -> None:
        """A leaf needs at least one name."""
        self.assertRaises(ValueError, self.store.get_leaf, [])

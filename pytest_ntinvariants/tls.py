"""A throwaway PKI for tests: a CA, server certificates, and deliberately broken ones.

The fake API server's optional TLS and the fake delivery endpoints (``sinks``) serve with
these. The seed project classifies every TLS certificate error as a permanent delivery
failure (BR-NOT-058), and its suite probed self-signed, expired and wrong-host servers;
this module makes each of those in a millisecond, so a test can ask for one by name.

Keys are EC P-256: generating one takes well under a millisecond, where RSA-4096 takes
hundreds, and every client we target (OpenSSL, Go's crypto/tls) accepts them.
Certificates carry the extensions that strict verifiers insist on (Python 3.13 turns on
``VERIFY_X509_STRICT`` by default): key identifiers, key usage, and a critical
``basicConstraints``, so a "valid" certificate fails only when a test means it to.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._files import write_private

__all__ = [
    "DEFAULT_HOSTS",
    "WRONG_HOST",
    "CertificateAuthority",
    "KeyPair",
    "self_signed",
]

#: The names a loopback test server is reached by.
DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost")

#: The only name in a wrong-host certificate; ``.invalid`` can never resolve (RFC 2606).
WRONG_HOST = "wrong-host.invalid"

# Allow for clocks that disagree a little (a client in a container, a CI runner):
# a certificate minted "now" must already be valid when the handshake checks it.
_CLOCK_SKEW = datetime.timedelta(minutes=5)
_DEFAULT_LIFETIME = datetime.timedelta(days=1)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _validity(
    not_before: datetime.datetime | None, not_after: datetime.datetime | None
) -> tuple[datetime.datetime, datetime.datetime]:
    now = _now()
    start = not_before if not_before is not None else now - _CLOCK_SKEW
    end = not_after if not_after is not None else now + _DEFAULT_LIFETIME
    if end <= start:
        raise ValueError(f"not_after ({end.isoformat()}) must be after not_before ({start})")
    return start, end


def _leaf(
    *,
    hosts: Sequence[str],
    common_name: str | None,
    key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: datetime.datetime | None,
    not_after: datetime.datetime | None,
) -> x509.Certificate:
    if not hosts:
        raise ValueError("a certificate needs at least one host")
    start, end = _validity(not_before, not_after)
    public = key.public_key()
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name if common_name else hosts[0])]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        # No issuer name means self-issued: the subject signs itself.
        .issuer_name(issuer_name if issuer_name is not None else subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # Both usages, so the same pair can serve or act as a client certificate (mTLS).
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, PEM-encoded.

    ``chain_pem`` is the issuing CA's certificate (empty for a self-signed pair); it is
    what a client should trust to verify ``cert_pem``.
    """

    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes = field(default=b"", repr=False)

    @property
    def certificate(self) -> x509.Certificate:
        """The parsed certificate (for assertions on names and dates)."""
        return x509.load_pem_x509_certificate(self.cert_pem)

    def write(self, directory: str | os.PathLike[str], stem: str = "server") -> tuple[Path, Path]:
        """Write ``<stem>.crt`` and ``<stem>.key`` into ``directory``; return both paths.

        The key file is readable by its owner only (mode 0600, even where an older file of
        another mode stood), as clients such as ``kubectl`` and Go programs expect of a
        private key.
        """
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        cert_path = target / f"{stem}.crt"
        key_path = target / f"{stem}.key"
        cert_path.write_bytes(self.cert_pem)
        write_private(key_path, self.key_pem)
        return cert_path, key_path

    def server_ssl_context(self) -> ssl.SSLContext:
        """An ``ssl.SSLContext`` that serves this certificate (TLS 1.2 or later)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        _load_chain(context, self)
        return context

    def client_ssl_context(self, ca: CertificateAuthority) -> ssl.SSLContext:
        """A client context that trusts ``ca`` and presents this pair (for mutual TLS)."""
        context = ca.client_ssl_context()
        _load_chain(context, self)
        return context


def _load_chain(context: ssl.SSLContext, pair: KeyPair) -> None:
    # The ssl module loads certificate chains only from files: write them to a private
    # temporary directory and remove it at once (the context keeps the parsed copies).
    directory = tempfile.mkdtemp(prefix="ntinv-tls-")
    try:
        cert_path, key_path = pair.write(directory)
        context.load_cert_chain(cert_path, key_path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class CertificateAuthority:
    """A self-signed CA that issues server certificates for tests.

    Create one with ``CertificateAuthority.generate()``; clients trust it through
    ``cert_pem``, ``write()`` (a CA bundle file) or ``client_ssl_context()``.
    """

    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self._certificate = certificate
        self._key = key
        self.cert_pem: bytes = certificate.public_bytes(serialization.Encoding.PEM)
        """The CA certificate, PEM: the bundle clients should trust."""
        self.key_pem: bytes = _key_pem(key)
        """The CA's private key, PEM (for tools that sign with it, e.g. a Go test binary)."""

    @classmethod
    def generate(
        cls,
        name: str = "pytest-ntinvariants test CA",
        *,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> CertificateAuthority:
        """Make a new CA with a fresh P-256 key, valid from a little before now for a day."""
        key = _new_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        start, end = _validity(not_before, not_after)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @property
    def certificate(self) -> x509.Certificate:
        """The parsed CA certificate."""
        return self._certificate

    def issue(
        self,
        hosts: Sequence[str] = DEFAULT_HOSTS,
        *,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        common_name: str | None = None,
    ) -> KeyPair:
        """Issue a server certificate for ``hosts`` (IP literals become IP SANs).

        ``not_before`` / ``not_after`` default to "a few minutes ago" and "in a day";
        ``common_name`` defaults to the first host (verifiers only look at the SANs).
        """
        key = _new_key()
        certificate = _leaf(
            hosts=hosts,
            common_name=common_name,
            key=key,
            issuer_name=self._certificate.subject,
            issuer_key=self._key,
            not_before=not_before,
            not_after=not_after,
        )
        return KeyPair(
            cert_pem=certificate.public_bytes(serialization.Encoding.PEM),
            key_pem=_key_pem(key),
            chain_pem=self.cert_pem,
        )

    def issue_expired(self, hosts: Sequence[str] = DEFAULT_HOSTS) -> KeyPair:
        """Issue a certificate for ``hosts`` that expired yesterday (otherwise valid)."""
        now = _now()
        return self.issue(
            hosts, not_before=now - datetime.timedelta(days=2), not_after=now - _DEFAULT_LIFETIME
        )

    def issue_wrong_host(self, hosts: Sequence[str] = (WRONG_HOST,)) -> KeyPair:
        """Issue a certificate valid in every way except that it names other hosts.

        A client that connects to 127.0.0.1 or localhost fails hostname verification.
        """
        return self.issue(hosts)

    def write(self, directory: str | os.PathLike[str], filename: str = "ca.crt") -> Path:
        """Write the CA certificate (a CA bundle) into ``directory``; return its path."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        path = target / filename
        path.write_bytes(self.cert_pem)
        return path

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts only this CA and verifies host names."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_verify_locations(cadata=self.cert_pem.decode("ascii"))
        return context

    def __repr__(self) -> str:
        return f"CertificateAuthority({self._certificate.subject.rfc4514_string()!r})"


def self_signed(
    hosts: Sequence[str] = DEFAULT_HOSTS,
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> KeyPair:
    """A certificate for ``hosts`` signed by its own key, issued by no CA.

    Clients that trust any CA (or the system store) reject it; a client that trusts this
    very certificate (``cadata=pair.cert_pem``) accepts it.
    """
    key = _new_key()
    certificate = _leaf(
        hosts=hosts,
        common_name=None,
        key=key,
        issuer_name=None,
        issuer_key=key,
        not_before=not_before,
        not_after=not_after,
    )
    return KeyPair(
        cert_pem=certificate.public_bytes(serialization.Encoding.PEM), key_pem=_key_pem(key)
    )

"""The test PKI: real TLS handshakes on 127.0.0.1 for the good certificate and each bad kind."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from pytest_ntinvariants.tls import (
    DEFAULT_HOSTS,
    WRONG_HOST,
    CertificateAuthority,
    KeyPair,
    self_signed,
)

GREETING = b"hello"


def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str = "127.0.0.1"
) -> bytes:
    """Serve one TLS connection on 127.0.0.1 and connect to it; return what the client read.

    The client's error propagates; the server thread's own error (the peer's alert) is
    expected on failures and ignored. The server thread is always joined before return.
    """
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                try:
                    with server.wrap_socket(conn, server_side=True) as tls:
                        tls.sendall(GREETING)
                        # Wait for the client's close so TLS 1.3 client-certificate
                        # rejections reach the client before the connection ends.
                        tls.recv(1)
                except OSError:  # ssl.SSLError included: the client hung up on a bad cert
                    pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client.wrap_socket(raw, server_hostname=server_hostname) as tls,
            ):
                return tls.recv(len(GREETING))
        finally:
            thread.join(10)
            assert not thread.is_alive()


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.generate(name="test_tls CA")


def sans(pair: KeyPair) -> x509.SubjectAlternativeName:
    return pair.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_ca_is_a_p256_certificate_authority(ca: CertificateAuthority) -> None:
    constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    key = ca.certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert ca.cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY" in ca.key_pem
    assert "test_tls CA" in repr(ca)


def test_issue_makes_ip_and_dns_sans(ca: CertificateAuthority) -> None:
    pair = ca.issue(("127.0.0.1", "::1", "localhost", "sink.example"), common_name="sink")
    names = sans(pair)
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "sink.example"]
    assert pair.certificate.issuer == ca.certificate.subject
    cn = pair.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert cn[0].value == "sink"
    assert pair.chain_pem == ca.cert_pem


@pytest.mark.parametrize("host", DEFAULT_HOSTS)
def test_valid_certificate_verifies(ca: CertificateAuthority, host: str) -> None:
    pair = ca.issue()
    assert handshake(pair.server_ssl_context(), ca.client_ssl_context(), host) == GREETING


def test_valid_certificate_passes_strict_x509_checks(ca: CertificateAuthority) -> None:
    # Python 3.13 enables VERIFY_X509_STRICT in default contexts; the PKI must pass it.
    client = ca.client_ssl_context()
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    assert handshake(ca.issue().server_ssl_context(), client) == GREETING


def test_self_signed_fails_verification(ca: CertificateAuthority) -> None:
    pair = self_signed()
    assert pair.chain_pem == b""
    assert pair.certificate.issuer == pair.certificate.subject
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed"):
        handshake(pair.server_ssl_context(), ca.client_ssl_context())


def test_self_signed_is_accepted_by_a_client_that_trusts_it() -> None:
    pair = self_signed()
    client = ssl.create_default_context(cadata=pair.cert_pem.decode("ascii"))
    assert handshake(pair.server_ssl_context(), client) == GREETING


def test_expired_fails_verification(ca: CertificateAuthority) -> None:
    pair = ca.issue_expired()
    assert pair.certificate.not_valid_after_utc < datetime.datetime.now(datetime.UTC)
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        handshake(pair.server_ssl_context(), ca.client_ssl_context())


def test_not_yet_valid_fails_verification(ca: CertificateAuthority) -> None:
    now = datetime.datetime.now(datetime.UTC)
    pair = ca.issue(not_before=now + datetime.timedelta(days=1), not_after=now.replace(year=9999))
    with pytest.raises(ssl.SSLCertVerificationError, match="not yet valid"):
        handshake(pair.server_ssl_context(), ca.client_ssl_context())


@pytest.mark.parametrize(("host", "message"), [("127.0.0.1", "IP address"), ("localhost", "")])
def test_wrong_host_fails_verification(ca: CertificateAuthority, host: str, message: str) -> None:
    pair = ca.issue_wrong_host()
    assert sans(pair).get_values_for_type(x509.DNSName) == [WRONG_HOST]
    with pytest.raises(ssl.SSLCertVerificationError, match=f"{message}.*mismatch"):
        handshake(pair.server_ssl_context(), ca.client_ssl_context(), host)


def test_certificate_from_another_ca_fails_verification(ca: CertificateAuthority) -> None:
    other = CertificateAuthority.generate(name="someone else")
    with pytest.raises(ssl.SSLCertVerificationError, match="local issuer"):
        handshake(other.issue().server_ssl_context(), ca.client_ssl_context())


def test_mutual_tls(ca: CertificateAuthority) -> None:
    server = ca.issue().server_ssl_context()
    server.load_verify_locations(cadata=ca.cert_pem.decode("ascii"))
    server.verify_mode = ssl.CERT_REQUIRED
    client_pair = ca.issue(("replica-a",))
    assert handshake(server, client_pair.client_ssl_context(ca)) == GREETING
    # Without a client certificate the server refuses (with TLS 1.3 the client learns of
    # it only when it reads, which handshake() does).
    with pytest.raises(ssl.SSLError):
        handshake(server, ca.client_ssl_context())


def test_files_are_written_and_loadable(ca: CertificateAuthority, tmp_path: Path) -> None:
    pair = ca.issue()
    cert_path, key_path = pair.write(tmp_path / "certs", stem="sink")
    assert (cert_path.name, key_path.name) == ("sink.crt", "sink.key")
    assert cert_path.read_bytes() == pair.cert_pem and key_path.read_bytes() == pair.key_pem
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    ca_path = ca.write(tmp_path / "certs")
    assert ca_path.read_bytes() == ca.cert_pem

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(ca_path))
    assert handshake(server, client) == GREETING


def test_a_key_file_is_private_even_over_a_readable_one(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    # An earlier key written 0644 (by hand, or by an older version) must not keep its
    # mode when the new key replaces it, whatever the umask.
    stale = tmp_path / "server.key"
    stale.write_bytes(b"old key")
    stale.chmod(0o644)
    pair = ca.issue()
    previous = os.umask(0)
    try:
        _, key_path = pair.write(tmp_path)
    finally:
        os.umask(previous)
    assert key_path == stale and key_path.read_bytes() == pair.key_pem
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.crt", "server.key"]


def test_bad_arguments_are_rejected(ca: CertificateAuthority) -> None:
    now = datetime.datetime.now(datetime.UTC)
    with pytest.raises(ValueError, match="must be after"):
        ca.issue(not_before=now, not_after=now)
    with pytest.raises(ValueError, match="at least one host"):
        ca.issue(())
    with pytest.raises(ValueError, match="at least one host"):
        self_signed(())

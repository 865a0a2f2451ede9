"""mTLS: a local CA and one certificate per service, generated with `cryptography` on first run.

Certificates carry the service name as Common Name and as a SPIFFE-style URI SAN
(`spiffe://clearhouse/<service>`), plus localhost/127.0.0.1 SANs for loopback. Servers require
client certificates; handlers read the caller's service identity from the TLS auth context.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import pathlib

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "Clearhouse local CA"
CERT_VALIDITY_DAYS = 825
# Every process that holds a certificate; `tools` is for operators and tests calling services.
SERVICE_IDENTITIES = ("gateway", "payments", "vault", "ledger", "provider", "tools")


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """PEM material of one service: its key, its certificate and the CA to trust."""

    name: str
    private_key_pem: bytes
    certificate_pem: bytes
    ca_pem: bytes


def _write_private(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    temporary.replace(path)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ensure_ca(certs_dir: pathlib.Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = certs_dir / "ca.key", certs_dir / "ca.pem"
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def ensure_identity(certs_dir: pathlib.Path, service: str) -> Identity:
    """Load the service's key and certificate, creating the CA and them on first use.

    When the certificate, its key and ca.pem are all present (mounted from a Secret in
    Kubernetes) the CA key is neither needed nor read: a pod must not hold the key that could
    mint any identity, so only issuing a missing certificate touches it.
    """
    key_path, cert_path = certs_dir / f"{service}.key", certs_dir / f"{service}.pem"
    if not (key_path.exists() and cert_path.exists() and (certs_dir / "ca.pem").exists()):
        ca_key, ca_cert = _ensure_ca(certs_dir)
        key = _new_key()
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CERT_VALIDITY_DAYS))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.DNSName(service),
                        x509.DNSName(f"{service}.clearhouse"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                        x509.UniformResourceIdentifier(f"spiffe://clearhouse/{service}"),
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(key_path, _key_pem(key))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Identity(
        name=service,
        private_key_pem=key_path.read_bytes(),
        certificate_pem=cert_path.read_bytes(),
        ca_pem=(certs_dir / "ca.pem").read_bytes(),
    )


def ensure_all(certs_dir: pathlib.Path) -> None:
    """Create the CA and every service certificate (what `make run` does on first run)."""
    for service in SERVICE_IDENTITIES:
        ensure_identity(certs_dir, service)


def server_credentials(identity: Identity, *, require_client_auth: bool = True) -> grpc.ServerCredentials:
    """Server credentials that present the service's certificate and verify callers' ones."""
    return grpc.ssl_server_credentials(
        [(identity.private_key_pem, identity.certificate_pem)],
        root_certificates=identity.ca_pem,
        require_client_auth=require_client_auth,
    )


def channel_credentials(identity: Identity) -> grpc.ChannelCredentials:
    """Client credentials that present the service's certificate and trust the local CA."""
    return grpc.ssl_channel_credentials(
        root_certificates=identity.ca_pem,
        private_key=identity.private_key_pem,
        certificate_chain=identity.certificate_pem,
    )


def peer_service(context: grpc.aio.ServicerContext) -> str | None:
    """The caller's service name from its verified client certificate, or None (plaintext)."""
    auth = context.auth_context()
    names = auth.get("x509_common_name") or []
    if not names:
        return None
    name = names[0]
    return name.decode() if isinstance(name, bytes) else str(name)

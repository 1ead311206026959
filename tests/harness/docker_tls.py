"""Certificates for a dockerd that listens with TLS: a CA, the daemon's certificate, and a client's, as `docker`
expects them. The client's files are ca.pem, cert.pem and key.pem in one folder, the layout of DOCKER_CERT_PATH."""
from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 3650
_CA_KEY_USAGE = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                              encipher_only=False, decipher_only=False)


@dataclasses.dataclass(frozen=True)
class DockerTLSFiles:
    """The daemon's files (--tlscacert, --tlscert, --tlskey) and the client's folder (DOCKER_CERT_PATH)."""

    ca: pathlib.Path
    server_cert: pathlib.Path
    server_key: pathlib.Path
    client_dir: pathlib.Path

    @property
    def client_cert(self) -> pathlib.Path:
        return self.client_dir / "cert.pem"

    @property
    def client_key(self) -> pathlib.Path:
        return self.client_dir / "key.pem"


def ensure_docker_tls(directory: pathlib.Path) -> DockerTLSFiles:
    """The files under `directory`, made once: a new CA signs a server certificate for 127.0.0.1 and a client's."""
    files = DockerTLSFiles(ca=directory / "client" / "ca.pem", server_cert=directory / "server-cert.pem",
                           server_key=directory / "server-key.pem", client_dir=directory / "client")
    if all(path.exists() for path in (files.ca, files.server_cert, files.server_key, files.client_cert, files.client_key)):
        return files
    files.client_dir.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("arvados.cluster tests docker CA")
    ca_cert = _builder(ca_name, ca_name, ca_key.public_key(), ca_key).add_extension(
        x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(_CA_KEY_USAGE, critical=True).sign(
        ca_key, hashes.SHA256())
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _builder(_name("dockerd"), ca_name, server_key.public_key(), ca_key).add_extension(
        x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False,
    ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False).sign(ca_key, hashes.SHA256())
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _builder(_name("docker client"), ca_name, client_key.public_key(), ca_key).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False).sign(ca_key, hashes.SHA256())
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.client_cert.write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(files.server_key, server_key)
    _write_key(files.client_key, client_key)
    return files


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             issuer_key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    """Key identifiers included: Python 3.13 verifies strictly (VERIFY_X509_STRICT) and rejects certificates without."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False))


def _write_key(path: pathlib.Path, key: ec.EllipticCurvePrivateKey) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

"""The web server's certificate: the self-signed one made on first start, an uploaded one, and the TLS context.

Files in ``[web] cert_dir``: ``selfsigned.pem``/``selfsigned.key`` (made when absent, or on request) and
``custom.pem``/``custom.key`` (an uploaded certificate and its key, used while they are there). Keys are written
with mode 0600, atomically. An upload is checked before anything is written: the certificate parses, the key
parses, the key is the certificate's, the certificate is valid now. The TLS context is one object for the
server's whole life: ``reload`` loads the chain in use into it, so new connections get the new certificate
without a restart.
"""
from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from firmware.storage.atomic import atomic_write
from hal.errors import ConfigError

SELF_SIGNED = "selfsigned"
CUSTOM = "custom"
SELF_SIGNED_DAYS = 3650          # the meter outlives a short certificate; a site that cares uploads its own
MIN_RSA_BITS = 2048              # NIST SP 800-131A: RSA below 2048 bits is disallowed
MAX_PEM_BYTES = 64 * 1024        # a certificate chain and key; more is not a certificate


@dataclass(frozen=True)
class CertInfo:
    kind: str                    # "selfsigned" or "custom"
    subject: str
    issuer: str
    not_before: str
    not_after: str
    sha256: str
    names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "names": list(self.names)}


def cert_dir(config: Any) -> Path:
    """``[web] cert_dir``, relative to ``[meter] data_dir`` unless absolute."""
    path = Path(config["web"].cert_dir)
    return path if path.is_absolute() else Path(config.meter.data_dir) / path


def _describe(kind: str, cert: x509.Certificate) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(str(n.value) for n in san)
    except x509.ExtensionNotFound:
        names = ()
    return CertInfo(kind, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                    cert.not_valid_before_utc.isoformat(), cert.not_valid_after_utc.isoformat(),
                    cert.fingerprint(hashes.SHA256()).hex(":"), names)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def self_signed(common_name: str, addresses: list[str], days: int = SELF_SIGNED_DAYS,
                now: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM): EC P-256, the meter's name and the given addresses as subject names."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = now or datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "meter"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OpenMeter (self-signed)")])
    alt: list[x509.GeneralName] = [x509.DNSName("localhost")]
    host = socket.gethostname()
    if host and host != "localhost":
        alt.append(x509.DNSName(host))
    for text in dict.fromkeys(["127.0.0.1", *addresses]):
        ip = ipaddress.ip_address(text)
        if not ip.is_unspecified:
            alt.append(x509.IPAddress(ip))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def check_upload(cert_pem: bytes, key_pem: bytes, now: datetime.datetime | None = None) -> x509.Certificate:
    """The leaf certificate of an uploaded chain, or ConfigError saying what is wrong with the upload."""
    if len(cert_pem) > MAX_PEM_BYTES or len(key_pem) > MAX_PEM_BYTES:
        raise ConfigError(f"certificate upload: each PEM text may be at most {MAX_PEM_BYTES} bytes")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise ConfigError("certificate upload: the certificate is not PEM text (-----BEGIN CERTIFICATE-----); "
                          "export it from your CA as PEM") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError("certificate upload: the key is not an unencrypted PEM private key "
                          "(-----BEGIN PRIVATE KEY-----); remove its pass phrase first "
                          "(openssl pkey -in key.pem -out plain.pem)") from None
    leaf = chain[0]
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ConfigError("certificate upload: the key must be RSA or EC (ECDSA)")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        raise ConfigError(f"certificate upload: an RSA key of {key.key_size} bits is too weak; "
                          f"at least {MIN_RSA_BITS} bits")
    own = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, own)
            != leaf.public_key().public_bytes(serialization.Encoding.DER, own)):
        raise ConfigError("certificate upload: the key does not belong to the certificate (their public keys "
                          "differ); upload the key the certificate was issued for")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise ConfigError(f"certificate upload: the certificate is valid from {leaf.not_valid_before_utc:%Y-%m-%d} "
                          f"to {leaf.not_valid_after_utc:%Y-%m-%d}, not now; check the meter's clock or renew it")
    return leaf


class Certificates:
    def __init__(self, directory: Path, common_name: str, addresses: list[str]) -> None:
        self.dir = Path(directory)
        self.common_name = common_name
        self.addresses = addresses
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        # TLS 1.2: forward-secret AEAD suites only (no CBC); TLS 1.3 suites are all AEAD
        self.context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")

    def _paths(self, kind: str) -> tuple[Path, Path]:
        return self.dir / f"{kind}.pem", self.dir / f"{kind}.key"

    def _write(self, kind: str, cert_pem: bytes, key_pem: bytes) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = self._paths(kind)
        atomic_write(key_path, key_pem, mode=0o600)
        atomic_write(cert_path, cert_pem)

    def active(self) -> str:
        cert, key = self._paths(CUSTOM)
        return CUSTOM if cert.exists() and key.exists() else SELF_SIGNED

    def ensure(self) -> None:
        """Make the self-signed certificate when there is none (first start, or after a device wipe)."""
        cert, key = self._paths(SELF_SIGNED)
        if not (cert.exists() and key.exists()):
            self.regenerate()

    def regenerate(self) -> CertInfo:
        self._write(SELF_SIGNED, *self_signed(self.common_name, self.addresses))
        return self.info(SELF_SIGNED)

    def upload(self, cert_pem: bytes, key_pem: bytes) -> CertInfo:
        check_upload(cert_pem, key_pem)
        self._write(CUSTOM, cert_pem, key_pem)
        return self.info(CUSTOM)

    def delete_custom(self) -> bool:
        found = False
        for path in self._paths(CUSTOM):
            if path.exists():
                path.unlink()
                found = True
        return found

    def info(self, kind: str | None = None) -> CertInfo:
        kind = kind or self.active()
        cert = x509.load_pem_x509_certificates(self._paths(kind)[0].read_bytes())[0]
        return _describe(kind, cert)

    def reload(self) -> CertInfo:
        """Load the certificate in use into the TLS context (new connections use it at once)."""
        self.ensure()
        kind = self.active()
        cert, key = self._paths(kind)
        try:
            self.context.load_cert_chain(str(cert), str(key))
        except ssl.SSLError as exc:
            raise ConfigError(f"web certificate {cert}: cannot be used ({exc}); delete the uploaded certificate "
                              "or regenerate the self-signed one") from None
        return self.info(kind)

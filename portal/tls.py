"""The portal's certificate: a configured one, or a self-signed one made at first start.

Clients validate the certificate of the RFC 8908 API (RFC 8908 section 4.1):
with the self-signed one they do not trust it and fall back to probing, so a
site that wants the API used installs a real certificate for portal.hostname
(docs/portal.md says how).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from passerelle.errors import UserError

log = logging.getLogger("passerelle.portal")

CERT_NAME = "portal-cert.pem"
KEY_NAME = "portal-key.pem"
LIFETIME = dt.timedelta(days=825)  # the longest a browser accepts for a server certificate
RENEW_BEFORE = dt.timedelta(days=30)


def make_self_signed(hostname: str, now: dt.datetime) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for ``hostname``, valid from ``now``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # a client clock a little behind
        .not_valid_after(now + LIFETIME)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                     content_commitment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _usable(cert_path: Path, hostname: str, now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    return (hostname in names.value.get_values_for_type(x509.DNSName)
            and cert.not_valid_after_utc - RENEW_BEFORE > now)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def ensure_certificate(hostname: str, state_dir: Path, cert_file: Path | None = None,
                       key_file: Path | None = None,
                       now: dt.datetime | None = None) -> tuple[Path, Path]:
    """The (certificate, key) paths to serve: the configured pair, or the
    self-signed pair in ``state_dir``, made (or remade, for a new hostname or
    near its end) when needed."""
    if cert_file is not None and key_file is not None:
        for path in (cert_file, key_file):
            if not path.is_file():
                raise UserError(f"portal certificate: {path} does not exist")
        return cert_file, key_file
    now = now or dt.datetime.now(dt.UTC)
    cert_path, key_path = state_dir / CERT_NAME, state_dir / KEY_NAME
    if key_path.is_file() and _usable(cert_path, hostname, now):
        return cert_path, key_path
    state_dir.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = make_self_signed(hostname, now)
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert_pem, 0o644)
    log.info("made a self-signed certificate for %s in %s", hostname, cert_path)
    return cert_path, key_path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"portal certificate: cannot load {cert_path} with {key_path}: "
                        f"{exc}") from None
    return context

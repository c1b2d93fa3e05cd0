"""`passerelle gateway enroll`: the box fetches its identity from the centre.

The box makes its own key (it never leaves the box), sends a certificate
request with the one-time code over HTTPS, and on success writes what the
centre returned: the configuration skeleton, the RADIUS secret (0600), its
key (0600), its certificate and the centre's CA. Nothing is written before
the centre said yes, and each file is written whole (a temporary file, then
rename), so a refused code changes nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from passerelle.errors import UserError

log = logging.getLogger("passerelle.gateway")

TIMEOUT = 20.0
SERVICES = ("passerelle-gateway", "passerelle-portal")


@dataclass(frozen=True)
class Paths:
    etc: Path

    @property
    def config(self) -> Path:
        return self.etc / "gateway.toml"

    @property
    def secret(self) -> Path:
        return self.etc / "radius.secret"

    @property
    def tls(self) -> Path:
        return self.etc / "tls"

    @property
    def key(self) -> Path:
        return self.tls / "box.key"

    @property
    def cert(self) -> Path:
        return self.tls / "box.pem"

    @property
    def ca(self) -> Path:
        return self.tls / "centre-ca.pem"


def config_text(bundle: dict[str, object], centre_host: str, paths: Paths) -> str:
    """The box's TOML skeleton: what enrolment knows; the rest is detected
    at start (see docs/gateway.md) or added by the technician."""
    return (
        f"# Written by `passerelle gateway enroll` for {bundle['identifier']}\n"
        f"# (site {bundle['site']}, network {bundle['network']}).\n"
        "[box]\n"
        f"identifier = {json.dumps(bundle['identifier'])}\n\n"
        "# RADIUS over TLS with the enrolment certificate (docs/radsec.md).\n"
        "[radius]\n"
        'transport = "radsec"\n'
        f"tls_cert = {json.dumps(str(paths.cert))}\n"
        f"tls_key = {json.dumps(str(paths.key))}\n"
        f"tls_ca = {json.dumps(str(paths.ca))}\n\n"
        "[[radius.servers]]\n"
        f"host = {json.dumps(centre_host)}\n"
        f"secret_file = {json.dumps(str(paths.secret))}\n\n"
        "[dae]\n"
        f"port = {int(str(bundle['coa_port']))}\n"
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _request(url: str, body: dict[str, str], ca_file: Path | None) -> dict[str, object]:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT, context=context) as answer:
            data = json.loads(answer.read(1 << 20))
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read(1 << 16)).get("message") or exc.reason
        except ValueError:
            message = exc.reason
        raise UserError(f"the centre refused: {message}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise UserError(f"the centre's certificate is not trusted ({reason.verify_message}):"
                            " give its CA with --ca-file") from None
        raise UserError(f"cannot reach the centre at {url}: {reason}") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot reach the centre at {url}: {exc}") from None
    if not isinstance(data, dict):
        raise UserError("the centre's answer is not an enrolment")
    return data


def enroll(code: str, centre: str, paths: Paths, *, ca_file: Path | None = None,
           force: bool = False, start: bool = True) -> dict[str, object]:
    """Enrol this box; UserError (nothing written) when it cannot."""
    parts = urlsplit(centre)
    if parts.scheme != "https" or not parts.hostname:
        raise UserError(f"--centre must be an https:// URL, not {centre!r}: the code and the "
                        "secret must not cross the internet in clear")
    if paths.config.exists() and not force:
        raise UserError(f"this box is already enrolled ({paths.config} exists): "
                        "add --force to enrol it again")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "passerelle-box")]))
           .sign(key, hashes.SHA256()))
    bundle = _request(centre.rstrip("/") + "/enrol/v1",
                      {"code": code, "csr": csr.public_bytes(serialization.Encoding.PEM).decode()},
                      ca_file)
    needed = ("identifier", "site", "network", "secret", "coa_port", "certificate",
              "ca_certificate")
    if any(not isinstance(bundle.get(k), str | int) for k in needed):
        raise UserError("the centre's answer lacks part of the enrolment")
    paths.etc.mkdir(mode=0o755, parents=True, exist_ok=True)
    paths.tls.mkdir(mode=0o700, exist_ok=True)
    os.chmod(paths.tls, 0o700)
    if paths.config.exists():
        shutil.copy2(paths.config, paths.config.with_suffix(".toml.bak"))
    _write(paths.key, key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()), 0o600)
    _write(paths.cert, str(bundle["certificate"]).encode(), 0o644)
    _write(paths.ca, str(bundle["ca_certificate"]).encode(), 0o644)
    _write(paths.secret, str(bundle["secret"]).encode(), 0o600)
    _write(paths.config, config_text(bundle, parts.hostname, paths).encode(), 0o644)
    log.info("enrolled as %s (site %s)", bundle["identifier"], bundle["site"])
    if start:
        _start_services()
    return {k: bundle[k] for k in ("identifier", "site", "network")}


def _start_services() -> None:
    if shutil.which("systemctl") is None:
        raise UserError("enrolled, but systemctl is not here: start the services by hand "
                        f"({', '.join(SERVICES)})")
    done = subprocess.run(["systemctl", "enable", "--now", *SERVICES], capture_output=True,
                          text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise UserError(f"enrolled, but the services did not start: {done.stderr.strip()}")

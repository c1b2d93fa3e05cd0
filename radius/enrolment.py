"""Enrolment: a new box trades a one-time code for its identity.

Ops ask for a code for a gateway they created (`passerelle admin gateway
code`); the technician types it on the box (`passerelle gateway enroll`),
which sends it with a certificate signing request over HTTPS. The centre
checks the code (known, unused, not expired), marks it used in the same
transaction, signs the box's key with its small CA and returns what the box
needs: its identity, site, RADIUS secret and certificate.

The code is shown once and only its SHA-256 is stored. ``verdict()`` is the
pure rule; the rest reads and writes the database.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select, update
from sqlalchemy.orm import Session as DB

from passerelle.errors import UserError

from .models import CertificateAuthority, EnrolmentCode, Gateway, GatewayCertificate

# Crockford's base 32 without I, L, O, U: nothing to misread on a phone call.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_GROUPS = 4  # of 4 characters: 80 bits
DEFAULT_TTL = timedelta(hours=48)
MAX_TTL = timedelta(days=30)
CERT_DAYS = 825
CA_DAYS = 3650


class Verdict(enum.Enum):
    OK = "ok"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"

    def words(self) -> str:
        return {
            Verdict.OK: "enrolled",
            Verdict.UNKNOWN: "this code is not known: check what you typed, or ask ops "
                             "for a new one",
            Verdict.USED: "this code was already used: ask ops for a new one",
            Verdict.EXPIRED: "this code has expired: ask ops for a new one",
            Verdict.REVOKED: "this code was withdrawn: ask ops for a new one",
        }[self]


class EnrolmentRefused(UserError):
    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.words())
        self.verdict = verdict


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(4 * CODE_GROUPS))
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def normal_code(typed: str) -> str:
    """The code as issued from what a person typed: case, spaces, dashes and
    the look-alikes Crockford's alphabet folds (O→0, I/L→1) forgiven."""
    folded = typed.upper().translate(str.maketrans("OIL", "011"))
    raw = "".join(c for c in folded if c in ALPHABET)
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def code_hash(code: str) -> str:
    return hashlib.sha256(normal_code(code).encode()).hexdigest()


def verdict(row: EnrolmentCode | None, now: datetime) -> Verdict:
    if row is None:
        return Verdict.UNKNOWN
    if row.used is not None:
        return Verdict.USED
    if now >= row.expires:
        return Verdict.EXPIRED
    return Verdict.OK


def issue_code(db: DB, gateway: Gateway, now: datetime,
               ttl: timedelta = DEFAULT_TTL) -> tuple[str, EnrolmentCode]:
    """A new code for ``gateway``; its earlier unused codes are withdrawn."""
    if not timedelta(minutes=1) <= ttl <= MAX_TTL:
        raise UserError(f"a code lasts between 1 minute and {MAX_TTL.days} days")
    withdraw_codes(db, gateway, now)
    code = new_code()
    row = EnrolmentCode(gateway_id=gateway.id, code_hash=code_hash(code), created=now,
                        expires=now + ttl, used=None, used_from="")
    db.add(row)
    db.flush()
    return code, row


def withdraw_codes(db: DB, gateway: Gateway, now: datetime) -> int:
    """Mark every unused code of ``gateway`` used: none can enrol any more."""
    done = db.execute(update(EnrolmentCode)
                      .where(EnrolmentCode.gateway_id == gateway.id,
                             EnrolmentCode.used.is_(None))
                      .values(used=now, used_from="withdrawn"))
    return int(getattr(done, "rowcount", 0) or 0)


# --- the CA ----------------------------------------------------------------------


def _authority(db: DB, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    row = db.scalars(select(CertificateAuthority).order_by(CertificateAuthority.id)).first()
    if row is None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Passerelle centre CA")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5))
                .not_valid_after(now + timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .sign(key, hashes.SHA256()))
        row = CertificateAuthority(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            key_pem=key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode(),
            created=now)
        db.add(row)
        db.flush()
    cert = x509.load_pem_x509_certificate(row.cert_pem.encode())
    loaded = serialization.load_pem_private_key(row.key_pem.encode(), None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    return cert, loaded


def ca_certificate(db: DB, now: datetime) -> str:
    cert, _ = _authority(db, now)
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sign(db: DB, gateway: Gateway, csr_pem: str, now: datetime) -> tuple[str, GatewayCertificate]:
    """A client certificate for ``gateway`` on the key of ``csr_pem``. The
    subject is the gateway's identifier whatever the request says."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise UserError("the certificate request is not a PEM CSR") from None
    if not csr.is_signature_valid:
        raise UserError("the certificate request's signature is wrong")
    public = csr.public_key()
    strong = (isinstance(public, ec.EllipticCurvePublicKey) and public.key_size >= 256) or \
        (isinstance(public, rsa.RSAPublicKey) and public.key_size >= 2048)
    if not strong:
        raise UserError("the certificate request's key must be EC P-256 or better, "
                        "or RSA of 2048 bits or more")
    ca_cert, ca_key = _authority(db, now)
    serial = x509.random_serial_number()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway.identifier)])
    not_after = now + timedelta(days=CERT_DAYS)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_cert.subject)
            .public_key(public).serial_number(serial)
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    row = GatewayCertificate(gateway_id=gateway.id, serial=f"{serial:x}", issued=now,
                             not_after=not_after, revoked=None)
    db.add(row)
    db.flush()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), row


@dataclass(frozen=True)
class Bundle:
    """What a box receives when it enrols."""

    identifier: str
    site: str
    network: str
    secret: str = field(repr=False)
    coa_port: int
    certificate: str
    ca_certificate: str

    def to_json(self) -> dict[str, object]:
        return {"identifier": self.identifier, "site": self.site, "network": self.network,
                "secret": self.secret, "coa_port": self.coa_port,
                "certificate": self.certificate, "ca_certificate": self.ca_certificate}


def redeem(db: DB, code: str, csr_pem: str, now: datetime, source: str) -> Bundle:
    """Trade ``code`` for the box's bundle; EnrolmentRefused (nothing changed) when
    the code is not good. The code is spent by a conditional UPDATE, so two
    boxes racing with one code cannot both win."""
    row = db.scalars(select(EnrolmentCode)
                     .where(EnrolmentCode.code_hash == code_hash(code))).first()
    judged = verdict(row, now)
    if judged is not Verdict.OK:
        if row is not None and row.used_from == "withdrawn":
            judged = Verdict.REVOKED
        raise EnrolmentRefused(judged)
    assert row is not None
    spent = db.execute(update(EnrolmentCode)
                       .where(EnrolmentCode.id == row.id, EnrolmentCode.used.is_(None))
                       .values(used=now, used_from=source[:45]))
    if not getattr(spent, "rowcount", 0):
        raise EnrolmentRefused(Verdict.USED)
    gateway = db.get(Gateway, row.gateway_id)
    assert gateway is not None
    certificate, _ = sign(db, gateway, csr_pem, now)
    return Bundle(identifier=gateway.identifier, site=gateway.site.name,
                  network=gateway.site.network.name, secret=gateway.secret,
                  coa_port=gateway.coa_port, certificate=certificate,
                  ca_certificate=ca_certificate(db, now))


def revoke(db: DB, gateway: Gateway, now: datetime) -> int:
    """A stolen box: its certificates revoked, its codes withdrawn and its
    RADIUS secret replaced (so what it holds opens nothing). The number of
    certificates revoked."""
    withdraw_codes(db, gateway, now)
    done = db.execute(update(GatewayCertificate)
                      .where(GatewayCertificate.gateway_id == gateway.id,
                             GatewayCertificate.revoked.is_(None))
                      .values(revoked=now))
    gateway.secret = secrets.token_urlsafe(24)
    return int(getattr(done, "rowcount", 0) or 0)

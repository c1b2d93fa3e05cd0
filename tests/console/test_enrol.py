"""Enrolment of a box: the codes (pure rule, then on both databases through
the console's endpoint), the CA's certificate, and the box's command over
real HTTPS with the files it writes."""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.gateway.config import Interfaces, parse
from passerelle.portal import server
from passerelle.radius import admin, enrolment
from passerelle.radius.db import transaction
from passerelle.radius.models import EnrolmentCode, Gateway, GatewayCertificate

from .conftest import NOW, SECRET, Clock, World

BIN = Path(sys.executable).parent / "passerelle"


def _csr(cn: str = "anything") -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def _code(factory: sessionmaker[DB], gateway: str = "axis-gw",
          ttl: timedelta = timedelta(hours=48)) -> str:
    with transaction(factory) as db:
        code, _ = enrolment.issue_code(db, admin.get_gateway(db, gateway), NOW, ttl)
    return code


# -- the pure rule ----------------------------------------------------------------


def test_the_code_rule() -> None:
    row = EnrolmentCode(gateway_id=1, code_hash="x", created=NOW,
                        expires=NOW + timedelta(hours=1), used=None, used_from="")
    assert enrolment.verdict(None, NOW) is enrolment.Verdict.UNKNOWN
    assert enrolment.verdict(row, NOW) is enrolment.Verdict.OK
    assert enrolment.verdict(row, NOW + timedelta(hours=1)) is enrolment.Verdict.EXPIRED
    row.used = NOW
    assert enrolment.verdict(row, NOW) is enrolment.Verdict.USED


def test_codes_forgive_how_they_are_typed() -> None:
    code = enrolment.new_code()
    assert len(code) == 19 and code.count("-") == 3
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert enrolment.code_hash(typed) == enrolment.code_hash(code)
    assert enrolment.code_hash("0000-0000-0000-0000") != enrolment.code_hash(code)


# -- the endpoint, on SQLite and PostgreSQL -----------------------------------------


def _post(client: FlaskClient, code: str, csr: str | None = None) -> tuple[int, dict[str, str]]:
    answer = client.post("/enrol/v1", json={"code": code, "csr": csr or _csr()[0]})
    return answer.status_code, answer.get_json()


def test_a_good_code_enrols_once(client: FlaskClient, factory: sessionmaker[DB],
                                 world: World) -> None:
    code = _code(factory)
    csr, key = _csr("a name the box chose")
    status, bundle = _post(client, code, csr)
    assert status == 200, bundle
    assert (bundle["identifier"], bundle["site"], bundle["network"]) == \
        ("axis-gw", "Axis Parc", "wallonia")
    assert bundle["secret"] == SECRET
    cert = x509.load_pem_x509_certificate(bundle["certificate"].encode())
    ca = x509.load_pem_x509_certificate(bundle["ca_certificate"].encode())
    # Signed by the CA, for the box's own key, named by the centre, client auth only.
    cert.verify_directly_issued_by(ca)
    assert cert.public_key() == key.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "axis-gw"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with factory() as db:
        issued = db.scalars(select(GatewayCertificate)).one()
        assert issued.serial == f"{cert.serial_number:x}" and issued.revoked is None

    status, refused = _post(client, code)
    assert status == 409 and refused["error"] == "used"
    assert "already used" in refused["message"]


def test_unknown_expired_and_withdrawn_codes_change_nothing(
        client: FlaskClient, factory: sessionmaker[DB], world: World, clock: Clock) -> None:
    status, answer = _post(client, "ABCD-EFGH-JKMN-PQRS")
    assert status == 403 and answer["error"] == "unknown" and "not known" in answer["message"]

    old = _code(factory, ttl=timedelta(minutes=10))
    newer = _code(factory)  # the older code is withdrawn by the newer one
    status, answer = _post(client, old)
    assert status == 410 and answer["error"] == "revoked"

    clock.advance(49 * 3600)
    status, answer = _post(client, newer)
    assert status == 410 and answer["error"] == "expired"
    with factory() as db:
        assert db.scalars(select(GatewayCertificate)).all() == []
        assert db.scalars(select(EnrolmentCode).where(
            EnrolmentCode.used_from.not_in(["", "withdrawn"]))).all() == []


def test_a_bad_request_keeps_the_code(client: FlaskClient, factory: sessionmaker[DB],
                                      world: World) -> None:
    code = _code(factory)
    status, answer = _post(client, code, "-----BEGIN CERTIFICATE REQUEST-----\nnope\n")
    assert status == 400 and "not a PEM CSR" in answer["message"]
    for body in (None, {"code": 12}, {"code": "x" * 65, "csr": "y"}, ["code"]):
        assert client.post("/enrol/v1", json=body).status_code == 400
    assert client.post("/enrol/v1", data="{not json",
                       content_type="application/json").status_code == 400
    assert _post(client, code)[0] == 200  # the failed attempts did not spend it


def test_guessing_codes_is_throttled(client: FlaskClient, world: World) -> None:
    statuses = [_post(client, f"AAAA-AAAA-AAAA-{n:04d}")[0] for n in range(25)]
    assert statuses[0] == 403 and statuses[-1] == 429


def test_a_stolen_box_is_revoked_in_one_step(client: FlaskClient, factory: sessionmaker[DB],
                                             world: World) -> None:
    code = _code(factory)
    assert _post(client, code)[0] == 200
    pending = _code(factory)
    with transaction(factory) as db:
        gateway = admin.get_gateway(db, "axis-gw")
        assert enrolment.revoke(db, gateway, NOW) == 1
    with factory() as db:
        gateway = db.scalars(select(Gateway).where(Gateway.identifier == "axis-gw")).one()
        assert gateway.secret != SECRET and len(gateway.secret) >= 16
        assert db.scalars(select(GatewayCertificate)).one().revoked == NOW
    assert _post(client, pending)[1]["error"] == "revoked"


# -- the box's command, over real HTTPS ----------------------------------------------


@pytest.fixture
def centre(app: Flask, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The console served over TLS on 127.0.0.1 by the production server."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    pem = tmp_path / "centre.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile = tmp_path / "centre.key"
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem, keyfile)
    app.testing = False
    srv = server.bind(app, [server.Listener("127.0.0.1", 0, True)], tls=context)
    srv.start()
    try:
        yield f"https://127.0.0.1:{srv.port}", pem
    finally:
        srv.stop()


def _enroll(code: str, url: str, etc: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), "gateway", "enroll", "--code", code, "--centre", url,
                           "--etc", str(etc), "--no-start", *extra],
                          capture_output=True, text=True, check=False, timeout=60)


def test_the_box_enrols_over_https(centre: tuple[str, Path], factory: sessionmaker[DB],
                                   world: World, tmp_path: Path) -> None:
    url, ca = centre
    etc = tmp_path / "etc"
    refused = _enroll("ABCD-EFGH-JKMN-PQRS", url, etc, "--ca-file", str(ca))
    assert refused.returncode != 0 and "not known" in refused.stderr, refused
    assert not etc.exists()  # a refused code changes nothing

    untrusted = _enroll(_code(factory), url, etc)
    assert untrusted.returncode != 0 and "--ca-file" in untrusted.stderr, untrusted
    assert not etc.exists()

    code = _code(factory)
    done = _enroll(code, url, etc, "--ca-file", str(ca))
    assert done.returncode == 0, done.stderr
    assert "enrolled as axis-gw (site Axis Parc, network wallonia)" in done.stdout
    mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (etc / "tls").iterdir()}
    assert mode == {"box.key": 0o600, "box.pem": 0o644, "centre-ca.pem": 0o644}
    assert stat.S_IMODE((etc / "tls").stat().st_mode) == 0o700
    assert stat.S_IMODE((etc / "radius.secret").stat().st_mode) == 0o600
    assert (etc / "radius.secret").read_text() == SECRET
    # The key never left the box: the certificate is for it.
    key = serialization.load_pem_private_key((etc / "tls" / "box.key").read_bytes(), None)
    cert = x509.load_pem_x509_certificate((etc / "tls" / "box.pem").read_bytes())
    assert cert.public_key() == key.public_key()
    # The configuration it wrote is one the box reads.
    machine = Interfaces("wan0", ("wan0", "lan0"),
                         {"wan0": ("203.0.113.2/24",), "lan0": ("198.51.100.1/24",)})
    config = parse((etc / "gateway.toml").read_text(), etc, machine)
    assert config.identifier == "axis-gw"
    assert [(s.host, s.secret) for s in config.servers] == [("127.0.0.1", SECRET.encode())]

    again = _enroll(_code(factory), url, etc, "--ca-file", str(ca))
    assert again.returncode != 0 and "--force" in again.stderr
    forced = _enroll(_code(factory), url, etc, "--ca-file", str(ca), "--force")
    assert forced.returncode == 0, forced.stderr
    assert (etc / "gateway.toml.bak").exists()
    assert cert != x509.load_pem_x509_certificate((etc / "tls" / "box.pem").read_bytes())


def test_plain_http_is_refused(tmp_path: Path) -> None:
    out = _enroll("ABCD-EFGH-JKMN-PQRS", "http://192.0.2.10", tmp_path / "etc")
    assert out.returncode != 0 and "must be an https:// URL" in out.stderr
    assert not (tmp_path / "etc").exists()


def test_the_admin_commands(db_url: str, key_file: Path, world_cli: None) -> None:
    env = {**os.environ, "PASSERELLE_KEY_FILE": str(key_file)}
    out = subprocess.run([str(BIN), "admin", "gateway", "code", "axis-gw", "--hours", "2",
                          "--db", db_url], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert "enrolment code for axis-gw: " in out.stdout and "valid once, until" in out.stdout
    out = subprocess.run([str(BIN), "admin", "gateway", "revoke", "axis-gw", "--db", db_url],
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0 and "revoked" in out.stdout, out.stderr
    out = subprocess.run([str(BIN), "admin", "gateway", "code", "nope-gw", "--db", db_url],
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode != 0 and "nope-gw" in out.stderr


@pytest.fixture
def world_cli(factory: sessionmaker[DB]) -> None:
    with transaction(factory) as db:
        admin.add_network(db, "wallonia")
        admin.add_site(db, "Axis Parc", "wallonia")
        admin.add_gateway(db, "axis-gw", "Axis Parc", "127.0.0.1", SECRET)

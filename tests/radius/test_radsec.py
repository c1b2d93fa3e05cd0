"""RadSec (radius/radsec.py): framing, and the centre's TLS listener for real:
a `passerelle radius serve --radsec-port` process, boxes with certificates
from the centre's CA (radius/enrolment.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.radius import enrolment
from passerelle.radius import messages as m
from passerelle.radius.db import make_sessionmaker
from passerelle.radius.models import Gateway, GatewayCertificate
from passerelle.radius.radsec import BadLength, Framer, port_of

from . import seed
from .conftest import Server, start_server

RADSEC = b"radsec"


# -- framing ------------------------------------------------------------------------


def _packet(code: int = 1, ident: int = 7, length: int = 20) -> bytes:
    return bytes([code, ident]) + length.to_bytes(2, "big") + bytes(length - 4)


def test_framer_cuts_packets_whatever_the_read_boundaries() -> None:
    stream = _packet(ident=1) + _packet(ident=2, length=38) + _packet(ident=3)
    for step in (1, 3, 4, 5, 19, 20, 21, len(stream)):
        framer, got = Framer(), []
        for i in range(0, len(stream), step):
            got += framer.feed(stream[i:i + step])
        assert [p[1] for p in got] == [1, 2, 3] and [len(p) for p in got] == [20, 38, 20]
        assert framer.pending == 0


def test_framer_keeps_an_incomplete_packet() -> None:
    framer = Framer()
    assert framer.feed(_packet(length=30)[:25]) == []
    assert framer.pending == 25


@pytest.mark.parametrize("length", [0, 4, 19, 4097, 65535])
def test_framer_refuses_a_length_radius_does_not_allow(length: int) -> None:
    header = bytes([1, 1]) + length.to_bytes(2, "big")
    with pytest.raises(BadLength, match=f"announces {length} octets"):
        Framer().feed(_packet() + header)


def test_accounting_goes_to_the_accounting_port_the_rest_to_authentication() -> None:
    assert port_of(_packet(code=4)) == "acct"
    assert {port_of(_packet(code=c)) for c in (1, 12)} == {"auth"}


# -- the listener ------------------------------------------------------------------------


@dataclass
class Box:
    key: Path
    cert: Path
    ca: Path
    serial: str


def enrol_box(factory: sessionmaker[DB], tmp_path: Path, name: str = "box") -> Box:
    """The box's key and certificate as enrolment makes them (enrolment.sign)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
           .sign(key, hashes.SHA256()))
    now = datetime.now(UTC).replace(tzinfo=None)
    with factory() as db, db.begin():
        gateway = db.scalars(select(Gateway).where(Gateway.identifier == "axis-gw")).one()
        pem, row = enrolment.sign(db, gateway, csr.public_bytes(
            serialization.Encoding.PEM).decode(), now)
        ca = enrolment.ca_certificate(db, now)
        serial = row.serial
    box = Box(tmp_path / f"{name}.key", tmp_path / f"{name}.pem", tmp_path / "ca.pem", serial)
    box.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    box.cert.write_text(pem)
    box.ca.write_text(ca)
    return box


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The centre's server, its RadSec port, and the world it serves.
RadsecCentre = tuple[Server, int, seed.World]


@pytest.fixture
def radsec_server(db_url: str, engine: Engine, key_file: Path,
                  tmp_path: Path) -> Iterator[RadsecCentre]:
    # The gateway's registered address is not the one the box comes from:
    # over TLS the certificate tells who it is.
    world = seed.build(make_sessionmaker(engine), gateway_ip="192.0.2.77")
    port = free_port()
    srv = start_server(db_url, tmp_path, extra=("--radsec-port", str(port),
                                                "--radsec-name", "127.0.0.1"))
    yield srv, port, world
    srv.stop()


def tls_connect(box: Box, port: int) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(box.ca))
    context.load_cert_chain(str(box.cert), str(box.key))
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def read_packet(sock: ssl.SSLSocket) -> bytes:
    framer = Framer()
    while True:
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("closed")
        got = framer.feed(data)
        if got:
            return got[0]


def access_request(login: str) -> bytes:
    return m.AccessRequest(user_name=login, credential=m.Password(seed.PASSWORD),
                           calling_station_id="02-00-00-00-00-01",
                           framed_ip_address="198.51.100.20", nas_identifier="axis-gw",
                           nas_ip_address="192.0.2.77").encode(RADSEC)


def test_a_box_checks_in_and_accounts_over_tls_known_by_its_certificate(
        radsec_server: RadsecCentre, factory: sessionmaker[DB], tmp_path: Path) -> None:
    srv, port, _ = radsec_server
    box = enrol_box(factory, tmp_path)
    with tls_connect(box, port) as tls:
        sent = access_request("alice@acme.example")
        tls.sendall(sent)
        reply = m.decode_reply(read_packet(tls), RADSEC, sent)
        assert isinstance(reply, m.AccessAccept)
        start = m.AccountingRequest(status=m.AcctStatus.START, session_id="RS01",
                                    user_name="alice@acme.example", nas_identifier="axis-gw",
                                    framed_ip_address="198.51.100.20").encode(RADSEC)
        status = m.StatusServer(nas_identifier="axis-gw").encode(RADSEC)
        tls.sendall(start + status)  # two packets in one write
        answers = {p[1]: p for p in (read_packet(tls), read_packet(tls))}
        assert isinstance(m.decode_reply(answers[start[1]], RADSEC, start),
                          m.AccountingResponse)
        assert isinstance(m.decode_reply(answers[status[1]], RADSEC, status), m.AccessAccept)
    assert "is gateway axis-gw" in srv.logs()


def test_a_revoked_certificate_is_refused_with_a_log_line(
        radsec_server: RadsecCentre, factory: sessionmaker[DB], tmp_path: Path) -> None:
    srv, port, _ = radsec_server
    box = enrol_box(factory, tmp_path)
    with factory() as db, db.begin():
        gateway = db.scalars(select(Gateway).where(Gateway.identifier == "axis-gw")).one()
        enrolment.revoke(db, gateway, datetime.now(UTC).replace(tzinfo=None))
    with tls_connect(box, port) as tls:
        tls.sendall(access_request("alice@acme.example"))
        with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
            read_packet(tls)
    assert _wait_for(srv, "certificate revoked on")
    assert box.serial in srv.logs()


def test_a_certificate_from_another_ca_fails_the_handshake(
        radsec_server: RadsecCentre, factory: sessionmaker[DB], tmp_path: Path) -> None:
    srv, port, _ = radsec_server
    box = enrol_box(factory, tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "axis-gw")])
    now = datetime.now(UTC).replace(tzinfo=None)
    own = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(int(box.serial, 16))
           .not_valid_before(now).not_valid_after(now.replace(year=now.year + 1))
           .sign(key, hashes.SHA256()))
    box.cert.write_bytes(own.public_bytes(serialization.Encoding.PEM))
    box.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    with pytest.raises((ConnectionError, ssl.SSLError, OSError)), tls_connect(box, port) as tls:
        tls.sendall(access_request("alice@acme.example"))
        read_packet(tls)
    assert _wait_for(srv, "TLS handshake failed")


def test_a_malformed_length_closes_the_connection_with_a_log_line(
        radsec_server: RadsecCentre, factory: sessionmaker[DB], tmp_path: Path) -> None:
    srv, port, _ = radsec_server
    box = enrol_box(factory, tmp_path)
    with tls_connect(box, port) as tls:
        tls.sendall(bytes([1, 1, 0, 3]) + bytes(16))
        with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
            read_packet(tls)
    assert _wait_for(srv, "announces 3 octets")


def _wait_for(srv: Server, text: str) -> bool:
    for _ in range(50):
        if text in srv.logs():
            return True
        time.sleep(0.1)
    logging.getLogger(__name__).error("server log: %s", srv.logs())
    return False


def test_a_certificate_of_our_ca_that_is_not_recorded_is_refused(
        radsec_server: RadsecCentre, factory: sessionmaker[DB], tmp_path: Path) -> None:
    srv, port, _ = radsec_server
    box = enrol_box(factory, tmp_path)
    with factory() as db, db.begin():
        db.execute(delete(GatewayCertificate).where(GatewayCertificate.serial == box.serial))
    with tls_connect(box, port) as tls:
        tls.sendall(access_request("alice@acme.example"))
        with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
            read_packet(tls)
    assert _wait_for(srv, f"unknown certificate (serial {box.serial})")


def test_two_workers_share_the_tls_port(db_url: str, engine: Engine, key_file: Path,
                                        factory: sessionmaker[DB], tmp_path: Path) -> None:
    seed.build(make_sessionmaker(engine), gateway_ip="192.0.2.77")
    port = free_port()
    srv = start_server(db_url, tmp_path, workers=2,
                       extra=("--radsec-port", str(port), "--radsec-name", "127.0.0.1"))
    try:
        box = enrol_box(factory, tmp_path)
        for _ in range(6):  # the kernel spreads the connections over both workers
            with tls_connect(box, port) as tls:
                sent = access_request("alice@acme.example")
                tls.sendall(sent)
                assert isinstance(m.decode_reply(read_packet(tls), RADSEC, sent),
                                  m.AccessAccept)
    finally:
        srv.stop()

"""`passerelle gateway doctor` on a RadSec box: the box's TLS client
certificate, each node's radsecproxy on the loopback (a line each, naming
its node), and each centre asked directly by
Status-Server over TLS (radsecproxy answers a Status-Server itself, so it
cannot tell whether a centre is reachable). The box's heartbeat takes the
same way (gateway/tls_status.py).

The verdicts with a fixed clock; the certificate probe on real files; the
TLS probe against a real `passerelle radius serve --radsec-port`, healthy
and broken one way at a time."""

from __future__ import annotations

import dataclasses
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle import __version__
from passerelle.gateway import doctor as d
from passerelle.gateway import heartbeat
from passerelle.gateway.config import Config, Radsec
from passerelle.gateway.peers import RadiusServer
from passerelle.gateway.radclient import NasIdentity
from passerelle.gateway.radsecproxy import Centre
from passerelle.gateway.reverse_coa import Credentials
from passerelle.gateway.tls_status import TlsStatus
from passerelle.radius import enrolment
from passerelle.radius.models import Gateway
from tests.boxlab import BIN, wait_for
from tests.gateway.test_doctor import HEALTHY, NOW, config  # noqa: F401  (a fixture)
from tests.gateway.test_radsec_lab import CENTRE as LAB_CENTRE
from tests.gateway.test_radsec_lab import Site, site  # noqa: F401  (a fixture)
from tests.radius.test_radsec import (  # noqa: F401  (radsec_server: the fixture)
    Box,
    RadsecCentre,
    enrol_box,
    free_port,
    radsec_server,
)

TLS_CENTRE = "192.0.2.10:2083 over TLS"
RADSEC_HEALTHY = dataclasses.replace(
    HEALTHY, centre={TLS_CENTRE: None}, radsecproxy={11812: None},
    box_cert=d.BoxCert(not_before=datetime(2026, 1, 1), not_after=datetime(2028, 4, 5)))


@pytest.fixture
def radsec_config(config: Config, tmp_path: Path) -> Config:  # noqa: F811
    tls = Radsec(cert=tmp_path / "tls" / "box.pem", key=tmp_path / "tls" / "box.key",
                 ca=tmp_path / "tls" / "centre-ca.pem")
    return dataclasses.replace(config, radsec=tls)


def checks(cfg: Config, **seen: Any) -> dict[str, d.Check]:
    return {c.name: c for c in d.verdicts(cfg, dataclasses.replace(RADSEC_HEALTHY, **seen),
                                          NOW)}


def test_a_healthy_radsec_box_is_all_ok(radsec_config: Config) -> None:
    found = checks(radsec_config)
    assert all(c.ok and not c.warn for c in found.values()), \
        [c.line() for c in found.values() if not c.ok]
    assert found["TLS client certificate"].line() == \
        "OK   TLS client certificate: valid until 2028-04-05"
    assert found["radsecproxy to 192.0.2.10"].detail == "answers on 127.0.0.1:11812"
    assert found[f"centre {TLS_CENTRE}"].detail == "answered Status-Server"
    assert d.report(list(found.values()))[1] == 0


def test_a_udp_box_has_no_tls_lines(config: Config) -> None:  # noqa: F811
    names = {c.name for c in d.verdicts(config, HEALTHY, NOW)}
    assert "TLS client certificate" not in names
    assert not [n for n in names if n.startswith("radsecproxy")]


@pytest.mark.parametrize(("seen", "name", "advice"), [
    ({"box_cert": d.BoxCert(problem="cannot read it (No such file or directory)")},
     "TLS client certificate", "box.pem: cannot read it (No such file or directory): ask ops "
                               "for an enrolment code and run passerelle gateway enroll"),
    ({"box_cert": d.BoxCert(datetime(2024, 1, 1), datetime(2026, 11, 30))},
     "TLS client certificate", "expired on 2026-11-30: the centre refuses the box; ask ops"),
    ({"box_cert": d.BoxCert(datetime(2026, 12, 24), datetime(2029, 1, 1))},
     "TLS client certificate", "not valid before 2026-12-24 00:00 UTC: check the clock"),
    ({"box_cert": d.BoxCert(datetime(2026, 1, 1), datetime(2027, 1, 1),
                            problem="its key box.key is not the certificate's")},
     "TLS client certificate", "is not the certificate's: ask ops for an enrolment code"),
    ({"radsecproxy": {11812: "no answer to Status-Server (or the shared secret differs)"}},
     "radsecproxy to 192.0.2.10", "on 127.0.0.1:11812: restart the gateway service"),
    ({"radsecproxy": {}}, "radsecproxy to 192.0.2.10", "not looked at on 127.0.0.1:11812"),
    ({"centre": {TLS_CENTRE: "no TCP connection to port 2083 (Connection refused)"}},
     f"centre {TLS_CENTRE}", "lets TCP out to port 2083"),
])
def test_each_broken_tls_thing_is_named_with_what_to_do(
        radsec_config: Config, seen: dict[str, Any], name: str, advice: str) -> None:
    found = checks(radsec_config, **seen)
    bad = {n: c.detail for n, c in found.items() if not c.ok}
    assert list(bad) == [name] and advice in bad[name], bad
    lines, status = d.report(list(found.values()))
    assert status == 1 and lines[-1] == "1 problem(s): fix them in the order shown"


def test_one_line_per_node_proxy_on_its_own_port(radsec_config: Config) -> None:
    two = dataclasses.replace(
        radsec_config, servers=(*radsec_config.servers,
                                RadiusServer("radius2.example.net", b"another-secret")))
    assert two.radsec is not None
    two = dataclasses.replace(two, radsec=dataclasses.replace(two.radsec, local_port=11900))
    found = checks(two, radsecproxy={11900: None, 11901: "no answer to Status-Server"})
    lines = [c.line() for c in found.values() if c.name.startswith("radsecproxy")]
    assert lines == [
        "OK   radsecproxy to 192.0.2.10: answers on 127.0.0.1:11900",
        "FAIL radsecproxy to radius2.example.net: no answer to Status-Server on "
        "127.0.0.1:11901: restart the gateway service (it runs radsecproxy), then see "
        "journalctl -u passerelle-gateway"]


def test_a_certificate_expiring_within_14_days_is_a_warning(radsec_config: Config) -> None:
    found = checks(radsec_config, box_cert=d.BoxCert(datetime(2024, 12, 1),
                                                     datetime(2026, 12, 7, 18, 0)))
    cert = found["TLS client certificate"]
    assert cert.ok and cert.warn
    assert cert.line().startswith("WARN TLS client certificate: expires in 6 days "
                                  "(2026-12-07): before then, ask ops for an enrolment code")
    lines, status = d.report(list(found.values()))
    assert status == 0 and lines[-1] == "all good for now; 1 warning(s) to act on soon"


# -- the certificate probe, on real files ---------------------------------------------


def _self_signed(path: Path, days: int, key: ec.EllipticCurvePrivateKey | None = None
                 ) -> ec.EllipticCurvePrivateKey:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "axis-gw")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=days))
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def test_the_certificate_probe_reads_dates_and_finds_what_is_wrong(tmp_path: Path) -> None:
    tls = Radsec(cert=tmp_path / "box.pem", key=tmp_path / "box.key", ca=tmp_path / "ca.pem")
    assert "cannot read it" in d._box_cert_seen(tls).problem  # nothing there yet
    key = _self_signed(tls.cert, days=10)
    assert "cannot read its key" in d._box_cert_seen(tls).problem
    _write_key(tls.key, key)
    seen = d._box_cert_seen(tls)
    assert seen.problem == "" and seen.not_after is not None and seen.not_before is not None
    # Ten days left: the verdict is a warning, with today's real clock.
    verdict = d._box_cert(tls, seen, d.now_utc())
    assert verdict.ok and verdict.warn and "expires in 9 days" in verdict.detail
    _write_key(tls.key, ec.generate_private_key(ec.SECP256R1()))
    assert d._box_cert_seen(tls).problem.endswith("is not the certificate's")
    tls.key.write_text("garbage")
    assert d._box_cert_seen(tls).problem.endswith("is not a PEM key")
    tls.cert.write_text("garbage")
    assert d._box_cert_seen(tls).problem == "not a PEM certificate"


# -- the TLS probe, against a real centre ---------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_tls_probe_against_a_real_centre_then_broken_one_way_at_a_time(
        radsec_server: RadsecCentre, factory: sessionmaker[DB], tmp_path: Path) -> None:  # noqa: F811
    _, port, _ = radsec_server
    box = enrol_box(factory, tmp_path)
    tls = Radsec(cert=box.cert, key=box.key, ca=box.ca, port=port)
    told = {"NAS-Identifier": "axis-gw", "Passerelle-Software-Version": __version__,
            "Passerelle-Spool-Depth": 7}
    assert d._tls_status("127.0.0.1", tls, told) is None
    with factory() as db:
        gateway = db.scalars(select(Gateway).where(Gateway.identifier == "axis-gw")).one()
        # Doctor's probe is a heartbeat like the box's: it leaves the row true.
        assert (gateway.software_version, gateway.spool_depth) == (__version__, 7)

    # The box's heartbeat on a RadSec box takes the same way, to every centre.
    beat = TlsStatus([Centre("127.0.0.1", port), Centre("127.0.0.1", free_port())],
                     Credentials(box.cert, box.key, box.ca),
                     NasIdentity(identifier="axis-gw", ipv4="203.0.113.2"), timeout=1.0)
    assert beat.status(heartbeat.attributes("9.9.9", 3)) == 1
    with factory() as db:
        gateway = db.scalars(select(Gateway).where(Gateway.identifier == "axis-gw")).one()
        assert (gateway.software_version, gateway.spool_depth) == ("9.9.9", 3)

    # The name the box dials is not in the centre's certificate.
    assert "does not check out" in (d._tls_status("localhost", tls, told) or "")
    # Nothing listens there.
    closed = free_port()
    assert "no TCP connection to port" in (d._tls_status(
        "127.0.0.1", dataclasses.replace(tls, port=closed), told) or "")
    # The box holds another centre's CA.
    other = tmp_path / "other-ca.pem"
    _self_signed(other, days=30)
    assert "does not check out" in (d._tls_status(
        "127.0.0.1", dataclasses.replace(tls, ca=other), told) or "")
    # A certificate the centre did not issue.
    own_cert, own_key = tmp_path / "own.pem", tmp_path / "own.key"
    _write_key(own_key, _self_signed(own_cert, days=30))
    refused = d._tls_status("127.0.0.1", dataclasses.replace(tls, cert=own_cert, key=own_key),
                            told) or ""
    assert "refused the TLS connection" in refused or "closed the connection" in refused, \
        refused
    # A stolen box, revoked.
    with factory() as db, db.begin():
        gateway = db.scalars(select(Gateway).where(Gateway.identifier == "axis-gw")).one()
        enrolment.revoke(db, gateway, datetime.now(UTC).replace(tzinfo=None))
    revoked = d._tls_status("127.0.0.1", tls, told) or ""
    print(f"own certificate: {refused}\nrevoked: {revoked}")
    assert "closed the connection" in revoked or "refused" in revoked, revoked



# -- the real command on a RadSec box behind NAT (tests/gateway/test_radsec_lab.py) ----


def _told_version(lab_box: Site) -> bool:
    with lab_box.factory() as db:
        gateway = db.scalars(select(Gateway).where(Gateway.identifier == "axis-gw")).one()
        return gateway.software_version == __version__ and gateway.last_status is not None


def _doctor(lab_box: Site) -> dict[str, str]:
    out = lab_box.lab.run("gw", str(BIN), "gateway", "doctor", "--config",
                          str(lab_box.box.cert.parent / "gateway.toml"), check=False,
                          timeout=60)
    return {line[5:].split(": ", 1)[0]: line[:4].strip() + " " + line[5:].split(": ", 1)[-1]
            for line in out.stdout.splitlines() if line[:4] in ("OK  ", "WARN", "FAIL")}


def test_doctor_on_a_radsec_lab_box_then_revoked_then_its_proxy_hung(
        site: Site) -> None:  # noqa: F811
    centre = f"centre {LAB_CENTRE}:2083 over TLS"
    # Before doctor says anything: the box's heartbeat reached the centre
    # over TLS (radsecproxy would have answered it itself).
    wait_for(lambda: _told_version(site), what="the heartbeat at the centre",
             logs=site.read_logs)
    seen = wait_for(lambda: (s := _doctor(site)) and s.get(centre, "").startswith("OK") and s,
                    what="doctor seeing the centre", logs=site.read_logs)
    assert seen["TLS client certificate"].startswith("OK valid until"), seen
    assert seen[f"radsecproxy to {LAB_CENTRE}"] == "OK answers on 127.0.0.1:11812", seen

    hung = [pid for pid in site.lab.pids("gw")
            if Path(f"/proc/{pid}/comm").read_text().strip() == "radsecproxy"]
    assert hung
    for pid in hung:
        os.kill(pid, signal.SIGSTOP)
    try:
        assert _doctor(site)[f"radsecproxy to {LAB_CENTRE}"].startswith(
            "FAIL no answer to Status-Server")
    finally:
        for pid in hung:
            os.kill(pid, signal.SIGCONT)

    with site.factory() as db, db.begin():
        gateway = db.scalars(select(Gateway).where(Gateway.identifier == "axis-gw")).one()
        enrolment.revoke(db, gateway, datetime.now(UTC).replace(tzinfo=None))
    assert "does not take the box's certificate" in _doctor(site)[centre]

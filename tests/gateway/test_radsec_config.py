"""[radius] transport: RadSec by default once the box holds its enrolment
certificate, UDP otherwise; the box's RADIUS client then talks to
radsecproxy on the loopback; a missing file is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from passerelle.gateway.config import ConfigError, parse
from passerelle.gateway.service import radius_client
from tests.gateway.test_config import MACHINE, MINIMAL


def enrolment_files(base: Path) -> None:
    (base / "tls").mkdir()
    for name in ("box.pem", "box.key", "centre-ca.pem"):
        (base / "tls" / name).write_text("x")


def test_udp_without_an_enrolment_certificate(tmp_path: Path) -> None:
    cfg = parse(MINIMAL, tmp_path, MACHINE)
    assert cfg.radsec is None and cfg.checkin_budget is None and not cfg.status_server
    assert [s.host for s in radius_client(cfg).servers] == ["192.0.2.10"]


def test_radsec_once_the_box_is_enrolled(tmp_path: Path) -> None:
    enrolment_files(tmp_path)
    cfg = parse(MINIMAL, tmp_path, MACHINE)
    assert cfg.radsec is not None and cfg.radsec.cert == tmp_path / "tls" / "box.pem"
    assert (cfg.radsec.port, cfg.radsec.local_port) == (2083, 11812)
    assert cfg.status_server and cfg.checkin_budget == cfg.radius_timeout
    client = radius_client(cfg)
    assert [(s.host, s.auth_port, s.acct_port, s.secret) for s in client.servers] == \
        [("127.0.0.1", 11812, 11812, b"s3cret-for-tests")]
    # radsecproxy tracks the centres: no dead time nor probe of the loopback.
    assert not client.probe and client.dead_time == 0 and client.checkin_budget == 2.0


def test_udp_can_be_asked_for_and_a_budget_set(tmp_path: Path) -> None:
    enrolment_files(tmp_path)
    text = MINIMAL.replace("[[radius.servers]]", '[radius]\ntransport = "udp"\n'
                           'checkin_budget = 3\nstatus_server = true\n\n[[radius.servers]]')
    cfg = parse(text, tmp_path, MACHINE)
    assert cfg.radsec is None and cfg.checkin_budget == 3.0 and cfg.status_server


@pytest.mark.parametrize(("radius", "error"), [
    ('transport = "tls"', 'radius.transport: \'tls\' is neither "radsec" nor "udp"'),
    ('transport = "radsec"', "radius.tls_cert: "),
    ('transport = "radsec"\ntls_cert = "elsewhere.pem"', "radius.tls_cert: "),
    ("checkin_budget = 60", "radius.checkin_budget: 60.0 is not between"),
])
def test_mistakes_name_the_key(tmp_path: Path, radius: str, error: str) -> None:
    text = MINIMAL.replace("[[radius.servers]]", f"[radius]\n{radius}\n\n[[radius.servers]]")
    with pytest.raises(ConfigError) as caught:
        parse(text, tmp_path, MACHINE)
    assert str(caught.value).startswith(error), caught.value

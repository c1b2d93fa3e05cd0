"""[radius] transport: RadSec by default once the box holds its enrolment
certificate, UDP otherwise; the box's RADIUS client then talks to one
radsecproxy per central node on consecutive loopback ports; a missing file
or a port range past 65535 is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from passerelle.gateway.config import ConfigError, parse
from passerelle.gateway.radsec_probe import NodeProbe
from passerelle.gateway.radsecproxy import Centre
from passerelle.gateway.service import nas_identity, radius_client, radsec_parts
from tests.gateway.test_config import MACHINE, MINIMAL
from tests.gateway.test_radsec import Sessions


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
    # The box's client chooses the node: UDP's dead time, budget and probe,
    # the probe asking the node itself over TLS.
    assert client.probe and client.dead_time == 30.0 and client.checkin_budget == 2.0
    assert isinstance(client.prober, NodeProbe)
    assert client.prober.nodes == {client.servers[0]: Centre("192.0.2.10", 2083)}


TWO_NODES = MINIMAL + """
[[radius.servers]]
host = "192.0.2.11"
secret = "an-other-s3cret-for-tests"
"""


def test_one_loopback_port_per_node_in_order(tmp_path: Path) -> None:
    enrolment_files(tmp_path)
    text = TWO_NODES.replace("[[radius.servers]]", "[radius]\nlocal_port = 11900\n"
                             "dead_time = 7\n\n[[radius.servers]]", 1)
    cfg = parse(text, tmp_path, MACHINE)
    assert cfg.radsec is not None and list(cfg.radsec.local_ports(2)) == [11900, 11901]
    client = radius_client(cfg)
    # Both proxies take the first server's secret: it never leaves the loopback.
    assert [(s.host, s.auth_port, s.acct_port, s.secret) for s in client.servers] == \
        [("127.0.0.1", 11900, 11900, b"s3cret-for-tests"),
         ("127.0.0.1", 11901, 11901, b"s3cret-for-tests")]
    assert client.dead_time == 7.0
    assert isinstance(client.prober, NodeProbe)
    assert [client.prober.nodes[s] for s in client.servers] == \
        [Centre("192.0.2.10", 2083), Centre("192.0.2.11", 2083)]
    parts = radsec_parts(cfg, nas_identity(cfg), Sessions())
    assert parts is not None
    assert [(p.config.local_port, p.config.centre, p.conf_path.name) for p in parts.proxies] \
        == [(11900, Centre("192.0.2.10", 2083), "radsecproxy-1.conf"),
            (11901, Centre("192.0.2.11", 2083), "radsecproxy-2.conf")]
    assert parts.reverse.centres == (Centre("192.0.2.10", 2083), Centre("192.0.2.11", 2083))
    # The last port a box can take: 65534 and 65535 for two nodes.
    assert parse(TWO_NODES.replace("[[radius.servers]]", "[radius]\nlocal_port = 65534\n\n"
                                   "[[radius.servers]]", 1), tmp_path, MACHINE).radsec


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
    ('transport = "radsec"\nlocal_port = 70000', "radius.local_port: 70000 is not between"),
    ('transport = "radsec"\nlocal_port = 65535',
     "radius.local_port: 65535 is the first of 2 loopback ports (one radsecproxy per "
     "radius.servers entry), which would go past 65535"),
])
def test_mistakes_name_the_key(tmp_path: Path, radius: str, error: str) -> None:
    if "local_port" in radius:
        enrolment_files(tmp_path)
    text = TWO_NODES.replace("[[radius.servers]]", f"[radius]\n{radius}\n\n[[radius.servers]]",
                             1)
    with pytest.raises(ConfigError) as caught:
        parse(text, tmp_path, MACHINE)
    assert str(caught.value).startswith(error), caught.value

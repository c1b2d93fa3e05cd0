"""The box's RadSec leg on the loopback: the box's RADIUS client → Debian's
radsecproxy (TLS, the enrolment certificate) → the centre's RadSec listener
(a real `passerelle radius serve`), and a Disconnect from the centre back
over the box's reverse connection. The centre knows the gateway by a
registered address the box never uses: only the certificate can tell.
The NAT lab is tests/gateway/test_radsec_lab.py."""

from __future__ import annotations

import dataclasses
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.gateway import radsecproxy as rsp
from passerelle.gateway.acct import AccountingRecord
from passerelle.gateway.config import Config, parse
from passerelle.gateway.dae_server import CoaChange, Selector
from passerelle.gateway.peers import RadiusServer
from passerelle.gateway.radclient import NasIdentity, RadiusClient
from passerelle.gateway.reverse_coa import Credentials, ReverseCoa
from passerelle.gateway.service import radius_client, radsec_parts
from passerelle.radius import messages as m
from passerelle.radius.db import make_sessionmaker
from tests.gateway.test_config import MACHINE
from tests.need import tool
from tests.radius import seed
from tests.radius.conftest import Server, start_server
from tests.radius.test_radsec import Box, enrol_box, free_port

LOCAL_SECRET = "loopback-secret-4-tests"
MAC = "02:11:22:33:44:55"
IP = "198.51.100.23"
NAS = NasIdentity(identifier="axis-gw", ipv4="198.51.100.1")


class Sessions:
    """The daemon's side of RFC 5176, recorded (the core in front is real)."""

    def __init__(self) -> None:
        self.cut: list[Selector] = []
        self.event = threading.Event()

    def disconnect(self, selector: Selector) -> int:
        self.cut.append(selector)
        self.event.set()
        return 1

    def change(self, selector: Selector, change: CoaChange) -> int:
        return 0


@pytest.fixture
def centre(db_url: str, engine: Engine, key_file: Path,
           tmp_path: Path) -> Iterator[tuple[Server, int]]:
    seed.build(make_sessionmaker(engine), gateway_ip="192.0.2.77")
    port = free_port()
    srv = start_server(db_url, tmp_path, extra=("--radsec-port", str(port),
                                                "--radsec-name", "127.0.0.1"))
    yield srv, port
    srv.stop()


def proxy_config(box: Box, port: int, local_port: int) -> rsp.ProxyConfig:
    return rsp.ProxyConfig(centre=rsp.Centre("127.0.0.1", port), cert=box.cert,
                           key=box.key, ca=box.ca, local_secret=LOCAL_SECRET,
                           local_port=local_port, log_file=box.cert.parent / "radsecproxy.log")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_check_in_accounting_and_a_disconnect_through_radsec(
        centre: tuple[Server, int], factory: sessionmaker[DB], tmp_path: Path) -> None:
    tool("radsecproxy", "radsecproxy")
    srv, port = centre
    box = enrol_box(factory, tmp_path)
    local = free_udp_port()
    proxy = rsp.Proxy(proxy_config(box, port, local), tmp_path / "radsecproxy.conf")
    sessions = Sessions()
    reverse = ReverseCoa((rsp.Centre("127.0.0.1", port),), Credentials(box.cert, box.key, box.ca),
                         NAS, sessions)
    proxy.start()
    reverse.start()
    try:
        client = RadiusClient([RadiusServer("127.0.0.1", LOCAL_SECRET.encode(), auth_port=local,
                                            acct_port=local)], NAS, timeout=2.0, tries=3)
        result = _retry(lambda: client.authenticate("ivan@acme.example", seed.PASSWORD,
                                                    mac=MAC, ipv4=IP))
        assert result.accepted
        client.account(AccountingRecord(m.AcctStatus.START, session_id="RS10",
                                        username="ivan@acme.example", mac=MAC, ipv4=IP,
                                        class_=result.class_, event_time=time.time()))
        for _ in range(50):
            if reverse.connected[rsp.Centre("127.0.0.1", port)]:
                break
            time.sleep(0.1)
        # ivan has two minutes of credit: ten used up, the centre cuts him,
        # over the reverse connection (his gateway's registered address is not ours).
        client.account(AccountingRecord(m.AcctStatus.INTERIM_UPDATE, session_id="RS10",
                                        username="ivan@acme.example", mac=MAC, ipv4=IP,
                                        class_=result.class_, session_time=600,
                                        event_time=time.time()))
        assert sessions.event.wait(10), srv.logs()
        assert sessions.cut[0].acct_session_id == "RS10"
        assert re.search(r"disconnect \d+ to axis-gw for RS10: ACK", _wait(srv, "disconnect "))
    finally:
        reverse.stop()
        proxy.stop()


def test_radsecproxy_configuration_refuses_what_it_cannot_hold(tmp_path: Path) -> None:
    base = rsp.ProxyConfig(centre=rsp.Centre("centre.example.net"), cert=tmp_path / "c",
                           key=tmp_path / "k", ca=tmp_path / "a", local_secret="ok-secret")
    text = rsp.render(base)
    assert "secret radsec" in text and "StatusServer on" in text and "port 2083" in text
    for bad in ("has space", 'quo"te', "br{ace", "hash#"):
        with pytest.raises(ValueError, match="cannot hold"):
            rsp.render(dataclasses.replace(base, local_secret=bad))
    with pytest.raises(ValueError, match=r"centre host 'a b'.*cannot hold"):
        rsp.render(dataclasses.replace(base, centre=rsp.Centre("a b")))
    with pytest.raises(ValueError, match=r"log file.*cannot hold"):
        rsp.render(dataclasses.replace(base, log_file=tmp_path / "my log"))


def test_each_proxy_carries_to_its_one_node_for_both_kinds(tmp_path: Path) -> None:
    text = rsp.render(rsp.ProxyConfig(
        centre=rsp.Centre("2001:db8::1", 2084), cert=tmp_path / "c", key=tmp_path / "k",
        ca=tmp_path / "a", local_secret="s", local_port=11813))
    assert "ListenUDP 127.0.0.1:11813" in text
    assert re.findall(r"^server \S+", text, re.M) == ["server centre"]
    assert "host [2001:db8::1]" in text and "port 2084" in text
    realm = text[text.index("realm *"):]
    assert realm.split("\n")[1:3] == ["    server centre", "    accountingServer centre"]


TWO_NODES = """
[box]
identifier = "axis-gw"
state_dir = "state"

[radius]
transport = "radsec"
radsec_port = {port}
local_port = {local}
dead_time = 30

[[radius.servers]]
host = "127.0.0.2"
secret = "{secret}"

[[radius.servers]]
host = "127.0.0.1"
secret = "{secret}"
"""


def free_udp_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback UDP ports."""
    for _ in range(50):
        first = free_udp_port()
        if first + count - 1 > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError(f"no {count} consecutive free UDP ports on 127.0.0.1")


def enrolled_config(factory: sessionmaker[DB], tmp_path: Path, template: str,
                    **values: object) -> Config:
    """A box's configuration as `passerelle gateway enroll` leaves it (the
    enrolment files beside it), from ``template``."""
    (tmp_path / "tls").mkdir()
    box = enrol_box(factory, tmp_path / "tls", name="box")
    (tmp_path / "tls" / "ca.pem").rename(tmp_path / "tls" / "centre-ca.pem")
    cfg = parse(template.format(secret=seed.SECRET, **values), tmp_path, MACHINE)
    assert cfg.radsec is not None and cfg.radsec.cert == box.cert
    cfg.state_dir.mkdir()
    return cfg


def test_the_box_fails_over_between_its_proxies_in_order(
        centre: tuple[Server, int], factory: sessionmaker[DB], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Two nodes, one radsecproxy each, as `passerelle gateway run` builds
    them: the first node does not listen; the box's client asks the first
    proxy, gets no answer within its share of the budget, and the second
    proxy's node accepts; from then on the first is skipped while dead,
    and its probe goes to the node over TLS."""
    tool("radsecproxy", "radsecproxy")
    caplog.set_level(logging.INFO, logger="passerelle.gateway")
    srv, port = centre
    local = free_udp_ports(2)
    cfg = enrolled_config(factory, tmp_path, TWO_NODES, port=port, local=local)
    client = radius_client(cfg)
    parts = radsec_parts(cfg, NAS, Sessions())
    assert parts is not None
    assert [p.config.centre.host for p in parts.proxies] == ["127.0.0.2", "127.0.0.1"]
    # The single proxy's configuration an earlier version left: removed at start.
    (cfg.state_dir / "radsecproxy.conf").write_text("client box { secret old }\n")
    parts.start()
    assert not (cfg.state_dir / "radsecproxy.conf").exists()
    try:
        assert all(p.alive() for p in parts.proxies)
        # A proxy connects to its node on its first request: warm the second up.
        second = RadiusClient([client.servers[1]], NAS, timeout=2.0, tries=3)
        assert _retry(lambda: second.authenticate("ivan@acme.example", seed.PASSWORD,
                                                  mac=MAC, ipv4=IP)).accepted
        started = time.monotonic()
        assert client.authenticate("ivan@acme.example", seed.PASSWORD, mac=MAC,
                                   ipv4=IP).accepted
        failed_over = time.monotonic() - started
        assert f"RADIUS server 127.0.0.1:{local} did not answer authentication" in caplog.text
        started = time.monotonic()
        assert client.authenticate("ivan@acme.example", seed.PASSWORD, mac=MAC,
                                   ipv4=IP).accepted
        skipped = time.monotonic() - started
        # Within the budget (2 s), half of it on the first proxy.
        assert 0.8 < failed_over < 2.0 and skipped < 0.5, (failed_over, skipped)
        # The probe asks each node itself, over TLS: radsecproxy would answer.
        assert client.prober is not None
        assert not client.prober(client.servers[0], 1.0)
        assert client.prober(client.servers[1], 2.0), srv.logs()
        assert "centre 127.0.0.2:" in caplog.text and "still out: no TCP connection" in \
            caplog.text
    finally:
        parts.stop()
    assert not any(p.alive() for p in parts.proxies)
    print(f"failover between proxies: {failed_over:.2f} s, then {skipped * 1000:.0f} ms")


T = TypeVar("T")


def _retry(call: Callable[[], T]) -> T:
    # radsecproxy connects to the centre on the first request it has.
    for _ in range(2):
        try:
            return call()
        except Exception:
            time.sleep(1)
    return call()  # the third try: its failure is the test's


def _wait(srv: Server, text: str) -> str:
    for _ in range(50):
        if text in srv.logs():
            break
        time.sleep(0.1)
    return srv.logs()

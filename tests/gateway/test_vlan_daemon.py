"""The daemon's VLAN decision, against a real centre (`passerelle radius
serve` on 127.0.0.1, real UDP, SQLite and PostgreSQL): who may check in on
which VLAN, and the VLAN a session keeps.

The kernel's side is a recording stand-in, and the client's MAC is given:
this runs on any machine. tests/gateway/test_vlan_lab.py does the whole of
it with real VLAN interfaces, nftables and dnsmasq.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from passerelle.gateway.clients import Clients
from passerelle.gateway.config import Interfaces, parse
from passerelle.gateway.daemon import Daemon, Refused
from passerelle.gateway.service import radius_client
from passerelle.gateway.session_table import SessionTable
from passerelle.gateway.spool import Spool
from passerelle.radius.models import Company
from passerelle.refusal import Refusal
from tests.radius import seed
from tests.radius.conftest import Server, start_server

MACHINE = Interfaces(default_route_if="wan0", up=("wan0", "lan0"),
                     ipv4={"wan0": ("203.0.113.2/24",), "lan0": ("198.51.100.1/24",)})
CONFIG = """
[box]
identifier = "axis-gw"
state_dir = "state"

[[radius.servers]]
host = "127.0.0.1"
secret = "{secret}"
auth_port = {port}

[radius]
timeout = 1
tries = 2

[[vlans.networks]]
id = 101
address = "192.0.2.129/27"

[[vlans.networks]]
id = 102
address = "192.0.2.161/27"
"""
ON_101, ON_102, UNTAGGED = "192.0.2.140", "192.0.2.170", "198.51.100.10"
MAC = "02:50:00:00:01:01"


class Kernel:
    """Records what the daemon asks of the kernel."""

    def __init__(self) -> None:
        self.allowed: list[str] = []

    def apply(self) -> None:
        return None

    def allow(self, mac: str, ipv4: str, ipv6: Sequence[str] = (), timeout: int = 3600,
              rate_up: int | None = None, rate_down: int | None = None) -> None:
        self.allowed.append(ipv4)

    def revoke(self, mac: str, ipv4: str, ipv6: Sequence[str] = ()) -> None:
        self.allowed.remove(ipv4)

    # The rest of the DataPlane protocol: no session here has its timeout or
    # rates changed.
    def set_timeout(self, mac: str, ipv4: str, ipv6: Sequence[str], timeout: int) -> None:
        raise NotImplementedError

    def set_rates(self, mac: str, ipv4: str, ipv6: Sequence[str], rate_up: int | None,
                  rate_down: int | None) -> None:
        raise NotImplementedError

    def clients(self) -> Sequence[Any]:
        return []


class Here:
    """Every address is the one device ``MAC``, present, without IPv6."""

    def mac_of(self, ip: str) -> str:
        return MAC

    def ipv6_of(self, mac: str) -> tuple[str, ...]:
        return ()

    def present(self, ip: str, mac: str) -> bool:
        return True


@pytest.fixture
def centre(db_url: str, factory: sessionmaker[DB], key_file: Path,
           tmp_path: Path) -> Iterator[Server]:
    seed.build(factory)
    with factory() as s, s.begin():
        s.scalars(select(Company).where(Company.name == "Slowco")).one().vlan = 102
    server = start_server(db_url, tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def daemon(centre: Server, tmp_path: Path) -> Iterator[tuple[Daemon, Kernel]]:
    config = parse(CONFIG.format(secret=seed.SECRET, port=centre.auth_port), tmp_path, MACHINE)
    kernel = Kernel()
    store = SessionTable(config.sessions_path)
    built = Daemon(config, firewall=kernel, radius=radius_client(config),
                   spool=Spool(config.spool_path), store=store,
                   clients=cast(Clients, Here()))
    try:
        yield built, kernel
    finally:
        store.close()


@pytest.mark.db
def test_a_company_s_people_check_in_on_its_vlan_and_keep_it(
        daemon: tuple[Daemon, Kernel]) -> None:
    box, kernel = daemon
    granted = box.check_in(ON_101, "alice@acme.example", seed.PASSWORD)
    assert granted["vlan"] == 101 and kernel.allowed == [ON_101]
    (session,) = box.store.open_sessions()
    assert session.terms.vlan == 101, "kept in the session table"
    assert box.check_in(ON_102, "bob@slowco.example", seed.PASSWORD)["vlan"] == 102
    # The access points put each person's stations on the session's VLAN.
    assert sorted((k.person, k.vlan) for k in box.keys_for_ap()) == [
        ("alice@acme.example", 101), ("bob@slowco.example", 102)]


@pytest.mark.db
def test_another_company_s_vlan_is_refused_and_nothing_is_opened(
        daemon: tuple[Daemon, Kernel], caplog: pytest.LogCaptureFixture) -> None:
    box, kernel = daemon
    for ip, login in ((ON_102, "alice@acme.example"), (ON_101, "bob@slowco.example")):
        with pytest.raises(Refused) as refused:
            box.check_in(ip, login, seed.PASSWORD)
        assert refused.value.refusal is Refusal.wrong_vlan
    assert kernel.allowed == [] and box.store.open_sessions() == []
    assert box.spool.pending() == 0, "no Accounting-Start: nothing charged"
    assert ("check-in of alice@acme.example at 192.0.2.170 refused: the client is on VLAN "
            "102, its company has VLAN 101 (wrong-vlan)") in caplog.text


@pytest.mark.db
def test_a_company_without_vlan_checks_in_on_the_untagged_lan_only(
        daemon: tuple[Daemon, Kernel], factory: sessionmaker[DB]) -> None:
    box, kernel = daemon
    with factory() as s, s.begin():
        s.scalars(select(Company).where(Company.name == "Acme")).one().vlan = None
    with pytest.raises(Refused) as refused:
        box.check_in(ON_101, "alice@acme.example", seed.PASSWORD)
    assert refused.value.refusal is Refusal.wrong_vlan
    granted = box.check_in(UNTAGGED, "alice@acme.example", seed.PASSWORD)
    assert granted["vlan"] is None and kernel.allowed == [UNTAGGED]

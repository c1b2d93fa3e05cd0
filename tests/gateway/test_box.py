"""The whole box in the lab: `passerelle gateway run` in the gw namespace,
`passerelle radius serve` as the centre in the up namespace (192.0.2.10),
clients on the LAN. Real nftables, real dnsmasq, real RADIUS, real SQLite.

The tests of this module run in order and share one box; each leaves no
session open behind it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from passerelle.gateway.control import ControlError
from passerelle.radius import ledger
from passerelle.radius.models import CreditEntry
from tests.boxlab import BIN, IDLE, Box, site, wait_for
from tests.gateway.conftest import require_lab
from tests.radius import seed


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    require_lab()
    with site(tmp_path_factory.mktemp("box")) as built:
        yield built


def test_check_config_in_the_lab_detects_lan_and_wan(box: Box) -> None:
    out = box.lab.run("gw", str(BIN), "gateway", "check-config", "--config", str(box.config))
    assert "detected: WAN interface wan: it carries the default route" in out.stderr
    assert "detected: LAN interface lan: the only other interface that is up" in out.stderr
    assert "private SSID: the key is the identity (tap), joining does not check in" in out.stdout
    assert "configuration OK" in out.stdout


def test_captive_then_check_in_then_check_out(box: Box) -> None:
    assert box.curl("client").startswith("portal"), "plain HTTP goes to the portal first"
    who = box.control.who("198.51.100.10")
    assert who["mac"] == box.lab.mac["client"] and who["session"] is None

    with pytest.raises(ControlError) as refused:
        box.control.check_in("198.51.100.10", "carol@gone.example", seed.PASSWORD)
    assert refused.value.code == "company-suspended"
    with pytest.raises(ControlError) as refused:
        box.control.check_in("198.51.100.10", "alice@acme.example", "wrong")
    assert refused.value.code == "bad-credentials"
    assert box.curl("client").startswith("portal")

    result = box.control.check_in("198.51.100.10", "alice@acme.example", seed.PASSWORD)
    assert result["wifi_key"] and result["seconds_left"] > 0
    # The credit the centre's Accept told, which caps the Session-Timeout.
    assert 0 < result["seconds_left"] <= result["credit_seconds_left"] <= 600 * 60
    assert box.curl("client") == "upstream 203.0.113.2", "forwarded and masqueraded"
    assert box.curl("client2").startswith("portal"), "the other client is still captive"
    (row,) = wait_for(lambda: box.sessions("alice@acme.example"), what="Accounting-Start")
    assert row.acctsessionid == result["session_id"] and row.acctstoptime is None
    assert row.callingstationid.lower().replace("-", ":") == box.lab.mac["client"]
    assert row.framedipaddress == "198.51.100.10"

    box.control.check_out("198.51.100.10")
    assert box.curl("client").startswith("portal")
    row = wait_for(lambda: [r for r in box.sessions("alice@acme.example") if r.acctstoptime],
                   what="Accounting-Stop")[0]
    assert row.acctterminatecause == "User-Request"
    assert row.acctinputoctets > 0 and row.acctoutputoctets > 0
    assert box.control.status()["sessions"] == 0


def test_session_timeout_cuts_at_the_credit(box: Box) -> None:
    with box.factory() as s, s.begin():
        ledger.top_up(s, box.world.people["grace"], 3, seed.now())
    result = box.control.check_in("198.51.100.11", "grace@acme.example", seed.PASSWORD)
    assert result["seconds_left"] <= 3
    assert box.curl("client2") == "upstream 203.0.113.2"
    row = wait_for(lambda: [r for r in box.sessions("grace@acme.example") if r.acctstoptime],
                   what="Stop after Session-Timeout", logs=box.read_logs)[0]
    assert row.acctterminatecause == "Session-Timeout"
    assert row.acctsessiontime <= 3
    assert box.curl("client2").startswith("portal")
    assert box.charged("grace") == row.acctsessiontime


def test_idle_timeout_cuts_a_silent_client(box: Box) -> None:
    box.control.check_in("198.51.100.10", "bob@slowco.example", seed.PASSWORD)
    assert box.curl("client") == "upstream 203.0.113.2"
    row = wait_for(lambda: [r for r in box.sessions("bob@slowco.example") if r.acctstoptime],
                   timeout=IDLE + 10, what="Stop after Idle-Timeout", logs=box.read_logs)[0]
    assert row.acctterminatecause == "Idle-Timeout"
    assert row.acctsessiontime < IDLE, "the idle minutes are not charged"


def test_disconnect_from_the_centre_cuts_the_session(box: Box) -> None:
    result = box.control.check_in("198.51.100.10", "alice@acme.example", seed.PASSWORD)
    wait_for(lambda: box.sessions("alice@acme.example"), what="Start")
    out = box.lab.run("up", str(BIN), "radius", "disconnect", result["session_id"],
                      "--db", box.db_url)
    assert "ACK" in out.stdout + out.stderr
    row = wait_for(lambda: [r for r in box.sessions("alice@acme.example")
                            if r.acctsessionid == result["session_id"] and r.acctstoptime],
                   what="Stop after Disconnect")[0]
    assert row.acctterminatecause == "Admin-Reset"
    assert box.curl("client").startswith("portal")
    again = box.lab.run("up", str(BIN), "radius", "disconnect", result["session_id"],
                        "--db", box.db_url, check=False)
    assert "503" in again.stdout + again.stderr or again.returncode != 0


def test_kill_9_keeps_enforcing_and_restores_the_session(box: Box) -> None:
    result = box.control.check_in("198.51.100.10", "alice@acme.example", seed.PASSWORD)
    assert box.curl("client") == "upstream 203.0.113.2"
    box.kill_daemon()
    assert box.curl("client") == "upstream 203.0.113.2", "the kernel keeps enforcing"
    assert box.curl("client2").startswith("error") or box.curl("client2").startswith("portal")
    box.start_daemon()
    (restored,) = box.control.sessions()
    assert restored["session_id"] == result["session_id"]
    assert box.curl("client") == "upstream 203.0.113.2"
    box.control.check_out("198.51.100.10")
    stops = wait_for(lambda: [r for r in box.sessions("alice@acme.example")
                              if r.acctsessionid == result["session_id"] and r.acctstoptime],
                     what="Stop after restart")
    assert len(stops) == 1 and stops[0].acctterminatecause == "User-Request"
    assert stops[0].acctinputoctets > 0


def test_centre_down_the_spool_holds_then_drains_once(box: Box) -> None:
    result = box.control.check_in("198.51.100.10", "alice@acme.example", seed.PASSWORD)
    wait_for(lambda: [r for r in box.sessions("alice@acme.example")
                      if r.acctsessionid == result["session_id"]], what="Start")
    box.stop_centre()
    try:
        assert box.curl("client") == "upstream 203.0.113.2"
        box.control.check_out("198.51.100.10")
        wait_for(lambda: box.control.status()["spool_pending"] >= 1, what="a spooled Stop")
        time.sleep(2)
        assert box.control.status()["spool_pending"] >= 1
    finally:
        box.start_centre()
    wait_for(lambda: box.control.status()["spool_pending"] == 0, timeout=40,
             what="the spool to drain", logs=box.read_logs)
    rows = [r for r in box.sessions("alice@acme.example")
            if r.acctsessionid == result["session_id"]]
    assert len(rows) == 1 and rows[0].acctterminatecause == "User-Request"
    with box.factory() as s:
        charges = s.scalars(select(CreditEntry).where(
            CreditEntry.session_id == rows[0].radacctid)).all()
    assert sum(-c.seconds for c in charges) == rows[0].acctsessiontime


def test_ipv6_follows_the_session_and_never_bypasses_the_portal(box: Box) -> None:
    web6 = f"http://[{box.lab.web_ipv6}]/"
    assert "upstream" not in box.curl("client", web6), "captive over IPv6 too"
    box.control.check_in("198.51.100.10", "alice@acme.example", seed.PASSWORD)
    # The upstream host sees the client's own address (IPv6 is routed, not
    # masqueraded): the static one or one it made from the box's RA.
    answer = wait_for(lambda: (a := box.curl("client", web6)).startswith("upstream") and a,
                      what="IPv6 through after check-in",
                      logs=lambda: box.read_logs() + box.lab.run("client", "ip", "-6", "addr")
                      .stdout + box.lab.run("gw", "ip", "-6", "neigh").stdout)
    assert answer.split()[1].startswith("2001:db8:1:")
    box.control.check_out("198.51.100.10")
    assert "upstream" not in box.curl("client", web6)


def test_a_client_that_left_ends_as_lost_carrier(box: Box) -> None:
    result = box.control.check_in("198.51.100.11", "alice@acme.example", seed.PASSWORD)
    assert box.curl("client2") == "upstream 203.0.113.2"
    # Unplug client2 at the switch: no lease (static address), no ARP answer.
    box.lab.run("sw", "ip", "link", "set", "p-client2", "down")
    try:
        row = wait_for(lambda: [r for r in box.sessions("alice@acme.example")
                                if r.acctsessionid == result["session_id"] and r.acctstoptime],
                       timeout=20, what="Stop after the client left", logs=box.read_logs)[0]
    finally:
        box.lab.run("sw", "ip", "link", "set", "p-client2", "up")
    assert row.acctterminatecause == "Lost-Carrier"
    assert box.curl("client2").startswith("portal")


def test_a_session_that_expires_while_the_daemon_is_down(box: Box) -> None:
    with box.factory() as s, s.begin():
        ledger.top_up(s, box.world.people["grace"], 3, seed.now())
    result = box.control.check_in("198.51.100.11", "grace@acme.example", seed.PASSWORD)
    assert box.curl("client2") == "upstream 203.0.113.2"
    box.kill_daemon()
    time.sleep(4)
    assert box.curl("client2").startswith("portal"), "the kernel's timeout ended it"
    box.start_daemon()
    row = wait_for(lambda: [r for r in box.sessions("grace@acme.example")
                            if r.acctsessionid == result["session_id"] and r.acctstoptime],
                   what="Stop for the session that expired meanwhile", logs=box.read_logs)[0]
    assert row.acctterminatecause == "Session-Timeout"
    assert row.acctsessiontime <= 3
    assert (row.acctstoptime - row.acctstarttime).total_seconds() <= 4
    assert box.control.status()["sessions"] == 0

"""The box's metrics in the lab: `passerelle gateway run` with `[metrics]
listen` on its WAN address, the centre in the up namespace, real check-ins,
an access point's requests from the LAN, a DHCP lease from dhclient; the
page scraped over HTTP from the box itself and read with Prometheus's
parser. The LAN (and the internet) cannot reach the listener: the nftables
table refuses the port.

The tests of this module run in order and share one box.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from passerelle.gateway.control import ControlError
from tests.boxlab import CENTRE, Box, site, wait_for
from tests.gateway.conftest import require_lab
from tests.radius import seed
from tests.scrape import Page, dashboard_metrics, parse

LISTEN = "203.0.113.2:9464"  # the lab box's WAN address
URL = f"http://{LISTEN}/metrics"
AP_SECRET = "0123456789abcdef-ap"

EXTRA = f"""
[metrics]
listen = "{LISTEN}"

[wifi]
ssid = "Passerelle-Private"

[[access_points]]
address = "198.51.100.11"
secret = "{AP_SECRET}"
vendor = "hostapd"
"""

# An access point's Access-Request for a station, from the LAN (client2 is the AP).
AP_REQUEST = """
import socket, sys
from passerelle.radius import messages as m
request = m.AccessRequest(user_name="02aabbccdd01", calling_station_id="02-AA-BB-CC-DD-01",
                          called_station_id="02-00-00-00-00-0A:Passerelle-Private")
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(2)
sock.sendto(request.encode(sys.argv[1].encode()), ("198.51.100.1", 1812))
try:
    print(sock.recv(4096)[0])
except TimeoutError:
    print("none")
"""


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    require_lab()
    with site(tmp_path_factory.mktemp("metrics"), extra_config=EXTRA) as built:
        yield built


def scrape(box: Box) -> Page:
    out = box.lab.run("gw", "curl", "-s", "-f", "-m", "5", URL, check=False)
    assert out.returncode == 0, f"curl {URL}: {out.returncode}\n{box.read_logs()}"
    return parse(out.stdout)


def checkins(page: Page, outcome: str) -> float:
    return page.value("passerelle_gateway_checkins_total", outcome=outcome)


def test_the_page_has_every_metric_the_dashboard_asks_for(box: Box) -> None:
    page = scrape(box)
    assert dashboard_metrics("passerelle_gateway_") <= page.names()
    assert page.value("passerelle_gateway_sessions") == 0
    assert page.value("passerelle_gateway_nft_set_elements", set="allowed4") == 0
    assert checkins(page, "accepted") == 0
    assert page.get("process_resident_memory_bytes") is not None


def test_check_ins_sessions_sets_and_radius_are_counted(box: Box) -> None:
    for login, password in (("carol@gone.example", seed.PASSWORD),
                            ("alice@acme.example", "wrong")):
        with pytest.raises(ControlError):
            box.control.check_in("198.51.100.10", login, password)
    box.control.check_in("198.51.100.10", "alice@acme.example", seed.PASSWORD)
    wait_for(lambda: box.sessions("alice@acme.example"), what="Accounting-Start")

    page = wait_for(lambda: _delivered(box), what="the spool empty", logs=box.read_logs)
    assert checkins(page, "accepted") == 1
    assert checkins(page, "company-suspended") == 1
    assert checkins(page, "bad-credentials") == 1
    assert checkins(page, "no-credit") == 0
    assert page.value("passerelle_gateway_sessions") == 1
    assert page.value("passerelle_gateway_nft_set_elements", set="allowed4") == 1
    auth = {"server": f"{CENTRE}:1812", "type": "Access-Request"}
    assert page.value("passerelle_gateway_radius_requests_total", **auth) == 3
    assert page.value("passerelle_gateway_radius_seconds_count", **auth) == 3
    assert 0 < page.value("passerelle_gateway_radius_seconds_sum", **auth) < 3
    assert page.value("passerelle_gateway_radius_requests_total", server=f"{CENTRE}:1813",
                      type="Accounting-Request") >= 1  # the Start (and Accounting-On)
    assert page.total("passerelle_gateway_radius_failures_total") == 0

    box.control.check_out("198.51.100.10")
    page = scrape(box)
    assert page.value("passerelle_gateway_sessions") == 0
    assert page.value("passerelle_gateway_nft_set_elements", set="allowed4") == 0


def _delivered(box: Box) -> Page | None:
    page = scrape(box)
    return page if page.value("passerelle_gateway_spool_depth") == 0 else None


def test_an_access_points_requests_by_outcome(box: Box) -> None:
    before = scrape(box)
    answers = [box.lab.run("client2", sys.executable, "-c", AP_REQUEST, secret).stdout.strip()
               for secret in (AP_SECRET, "not-the-ap-secret-at-all")]
    assert answers == ["3", "none"]  # Access-Reject (no key for it); dropped
    page = scrape(box)
    for outcome, more in (("reject", 1), ("dropped", 1), ("accept", 0)):
        assert page.value("passerelle_gateway_ap_requests_total", outcome=outcome) == \
            before.value("passerelle_gateway_ap_requests_total", outcome=outcome) + more


def test_a_dhcp_lease_is_counted(box: Box) -> None:
    assert scrape(box).value("passerelle_gateway_dhcp_leases") == 0
    box.lab.add_client("laptop", "02:50:00:00:00:21")
    tmp = box.tmp
    box.lab.popen("laptop", "dhclient", "-4", "-1", "-d", "-lf", str(tmp / "dhclient.leases"),
                  "-pf", str(tmp / "dhclient.pid"), "-sf", "/bin/true", "eth0")
    page = wait_for(lambda: _leases(box), what="a lease counted", logs=box.read_logs)
    assert page.value("passerelle_gateway_dhcp_leases") == 1


def _leases(box: Box) -> Page | None:
    page = scrape(box)
    return page if page.value("passerelle_gateway_dhcp_leases") else None


def test_the_lan_and_the_internet_cannot_reach_the_listener(box: Box) -> None:
    # The box's own scrape works (above); from the LAN the same address and
    # port are refused by the table's input chain (a TCP reset: curl's 7),
    # and from the internet dropped (the WAN answers nothing: curl's 28).
    for ns, error in (("client", 7), ("up", 28)):
        out = box.lab.run(ns, "curl", "-s", "-m", "3", URL, check=False)
        assert out.returncode == error, (ns, out.returncode, out.stdout)
    nft = box.lab.run("gw", "nft", "list", "chain", "inet", "passerelle", "lan_in").stdout
    assert "9464" not in nft


def test_a_silent_centre_counts_failures_and_the_spool_grows(box: Box, tmp_path: Path) -> None:
    box.control.check_in("198.51.100.10", "alice@acme.example", seed.PASSWORD)
    box.stop_centre()
    try:
        with pytest.raises(ControlError) as refused:
            box.control.check_in("198.51.100.11", "bob@slowco.example", seed.PASSWORD)
        assert refused.value.code == "centre-unreachable"
        box.control.check_out("198.51.100.10")  # its Stop waits in the spool
        time.sleep(0.5)
        page = scrape(box)
        assert checkins(page, "centre-unreachable") == 1
        assert page.value("passerelle_gateway_radius_failures_total",
                          server=f"{CENTRE}:1812", type="Access-Request") >= 1
        assert page.value("passerelle_gateway_spool_depth") >= 1
    finally:
        box.start_centre()

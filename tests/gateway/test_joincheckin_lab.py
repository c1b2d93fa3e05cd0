"""Joining the private SSID is checking in, in the namespace lab (issue 14,
"every later visit"), with the real box, portal, console and centre.

The companies' VLANs reach the box untagged, each on an interface of its own
(as tests/gateway/test_vlan_lab.py's ``untagged`` mode: this kernel needs no
802.1Q for it). An access point on the LAN (FreeRADIUS's ``radclient`` in
its own namespace) asks the box about a station joining the private SSID,
with the station's 4-way handshake; the box pulls the people's keys from
the console. Then:

- the station, on its company's VLAN, opens the portal, is greeted by name,
  taps "Check in" (no password) and reaches the internet;
- once the person's key is revoked, the portal gives the ordinary form with
  the reason;
- with ``join_checks_in``, the station reaches the internet without the
  portal; a forged request (wrong secret, no Message-Authenticator) binds
  nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from passerelle.gateway.control import ControlError
from passerelle.radius import keys
from passerelle.radius.models import Company
from tests.boxlab import BIN, CENTRE, Box, site, wait_for
from tests.gateway.conftest import require_lab
from tests.gateway.test_ap_server import _attrs, _message2
from tests.gateway.test_vlan_lab import OWN_INTERFACES, dhcp, own_links, untagged_station
from tests.need import tool
from tests.portal.test_lab import RUN
from tests.radius import seed

AP_IP, AP_MAC = "198.51.100.2", "02:50:00:00:00:a1"
AP_SECRET = "joincheckin-lab-secret"
CONSOLE_PORT = 8091
MAC101, MAC102, MAC103 = "02:50:00:00:01:01", "02:50:00:00:01:02", "02:50:00:00:01:03"
ALICE, BOB = "alice@acme.example", "bob@slowco.example"
WEB = "http://192.0.2.80/"
PORTAL = "http://portal.passerelle.internal"

EXTRA = OWN_INTERFACES + f"""
[wifi]
ssid = "Passerelle-Private"

[[access_points]]
address = "{AP_IP}"
secret = "{AP_SECRET}"

[keys]
url = "http://{CENTRE}:{CONSOLE_PORT}"
allow_plain_http = true
interval = 1
"""
PORTAL_TABLE = "[portal]\nhttp_port = 8080\n"


def portal_settings(box: Box, *, join: bool) -> None:
    """The [portal] table: plain HTTP (curl is the browser), and joining."""
    text = re.sub(r"\[portal\]\n(?:[a-z_]+ = .*\n)*", PORTAL_TABLE, box.config.read_text())
    box.config.write_text(text.replace(PORTAL_TABLE, PORTAL_TABLE + "allow_plain_http = true\n"
                                       f"join_checks_in = {'true' if join else 'false'}\n"))


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    require_lab()
    tool("radclient", "freeradius-utils")
    tool("curl", "curl")
    tmp = tmp_path_factory.mktemp("joincheckin")
    with site(tmp, portal=False, extra_config=EXTRA, before_start=own_links) as built:
        with built.factory() as s, s.begin():
            s.scalars(select(Company).where(Company.name == "Slowco")).one().vlan = 102
            for who in ("alice", "bob", "grace"):
                keys.issue_if_missing(s, built.world.people[who], seed.now())
        lab = built.lab
        with built._log("console") as console:
            lab.popen("up", str(BIN), "console", "run", "--db", built.db_url, "--listen",
                      f"{CENTRE}:{CONSOLE_PORT}", stdout=console, stderr=console,
                      env={**os.environ, "PASSERELLE_KEY_FILE": str(tmp / "server.key")})
        lab.add_client("ap", AP_MAC, AP_IP)
        portal_settings(built, join=False)
        with built._log("portal") as log:
            portal = lab.popen("gw", sys.executable, "-c", RUN, "-v", "portal", "run",
                               "--config", str(built.config), stderr=log)
        assert portal.stdout is not None
        assert "portal listening" in portal.stdout.readline(), built.read_logs()
        yield built


def passphrase(box: Box, who: str) -> str:
    with box.factory() as s:
        key = keys.current(s, box.world.people[who])
        assert key is not None
        return key.passphrase


def join(box: Box, station: str, key: str, *, secret: str = AP_SECRET,
         ma: bool = True) -> str:
    """The access point asks the box about ``station`` joining with ``key``
    (its 4-way handshake); radclient's verdict, or "none" (no answer)."""
    out = box.lab.run("ap", "radclient", "-x", "-r", "1", "-t", "2", "-D",
                      "/usr/share/freeradius", f"{box.lab.box_ipv4}:1812", "auth", secret,
                      input=_attrs(station, eapol=_message2(key, station), ma=ma), check=False)
    found = re.search(r"^Received (\S+) Id", out.stdout + out.stderr, re.M)
    if found and found.group(1) == "Access-Accept":
        assert "Tunnel-Private-Group-Id:1 = " in out.stdout
    return found.group(1) if found else "none"


def station(box: Box, role: str, mac: str, vlan: int) -> str:
    """A station on ``vlan``'s own switch, with what DHCP gave it; its IPv4."""
    got = dhcp(box.lab, role, untagged_station(box.lab, role, mac, vlan))
    box.lab.ipv4[role] = got["new_ip_address"]
    return got["new_ip_address"]


def browse(box: Box, role: str, *args: str) -> subprocess.CompletedProcess[str]:
    jar = str(box.tmp / f"cookies-{role}")
    return box.lab.run(role, "curl", "-sS", "-m", "10", "-c", jar, "-b", jar, *args,
                       check=False)


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_a_station_known_by_its_key_taps_in_and_reaches_the_internet(box: Box) -> None:
    ip = station(box, "c101", MAC101, 101)
    key = passphrase(box, "alice")
    wait_for(lambda: join(box, MAC101, key) == "Access-Accept",
             what="the box holding alice's key", logs=box.read_logs)
    # The captive station opens the portal the way its OS does: any plain page.
    page = browse(box, "c101", "-L", WEB).stdout
    assert f"Welcome back to axis-gw, {ALICE}." in page, page
    assert 'action="/check-in/key"' in page
    tapped = browse(box, "c101", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                    "-d", f"csrf_token={csrf(page)}", f"{PORTAL}/check-in/key")
    assert tapped.stdout.startswith(f"303 {PORTAL}/welcome"), (tapped, box.read_logs())
    assert box.curl("c101", WEB) == "upstream 203.0.113.2"
    session = box.control.who(ip)["session"]
    assert session["login"] == ALICE and session["vlan"] == 101
    assert wait_for(lambda: box.sessions(ALICE), what="the session at the centre")


def test_a_clone_on_the_open_network_gets_no_tap(box: Box) -> None:
    """A device on the open check-in network wearing a MAC seen on the
    private SSID (MACs travel in clear): the key does not speak for it."""
    open_ip, open_mac = "198.51.100.10", box.lab.mac["client"]
    assert join(box, open_mac, passphrase(box, "alice")) == "Access-Accept"
    assert box.control.call("GET", f"/v1/offer/{open_ip}")["login"] is None
    with pytest.raises(ControlError) as refused:
        box.control.call("POST", "/v1/check-in/key", {"ip": open_ip})
    assert refused.value.code == "unknown-client"
    assert box.control.who(open_ip)["session"] is None


def test_a_revoked_key_gets_the_form_with_the_reason(box: Box) -> None:
    ip = box.lab.ipv4["c101"]
    if box.control.who(ip)["session"] is not None:
        box.control.check_out(ip)
    with box.factory() as s, s.begin():
        keys.revoke(s, box.world.people["alice"], seed.now())
    wait_for(lambda: box.control.call("GET", f"/v1/offer/{ip}")["refusal"] ==
             "key-not-current", what="the revocation at the box", logs=box.read_logs)
    page = browse(box, "c101", "-L", WEB).stdout
    assert "no longer your current key" in page, page
    assert "/check-in/key" not in page and 'name="password"' in page
    assert box.curl("c101", WEB) != "upstream 203.0.113.2", "captive again"


def test_with_join_checks_in_the_station_needs_no_portal(box: Box) -> None:
    portal_settings(box, join=True)
    box.kill_daemon()
    box.start_daemon()
    ip = station(box, "c102", MAC102, 102)
    key = passphrase(box, "bob")
    # Forged: the wrong secret, or no Message-Authenticator: no answer, nothing bound.
    assert join(box, MAC102, key, secret="not-the-access-point-secret") == "none"
    assert join(box, MAC102, key, ma=False) == "none"
    time.sleep(2)
    assert box.control.who(ip)["session"] is None
    assert box.control.call("GET", f"/v1/offer/{ip}")["login"] is None
    assert box.curl("c102", WEB) != "upstream 203.0.113.2"
    # The access point's genuine request: the association checks bob in.
    wait_for(lambda: join(box, MAC102, key) == "Access-Accept",
             what="the box holding bob's key", logs=box.read_logs)
    wait_for(lambda: box.curl("c102", WEB) == "upstream 203.0.113.2",
             what="bob's station on the internet", logs=box.read_logs)
    session = box.control.who(ip)["session"]
    assert session["login"] == BOB and session["vlan"] == 102
    assert "check-in on joining of bob@slowco.example" in box.read_logs()


def test_joining_refused_by_the_policy_stays_captive_and_the_portal_says_why(
        box: Box) -> None:
    """Grace (Acme, VLAN 101) has no credit: her association is no session."""
    ip = station(box, "c103", MAC103, 101)
    wait_for(lambda: join(box, MAC103, passphrase(box, "grace")) == "Access-Accept",
             what="the box holding grace's key", logs=box.read_logs)
    wait_for(lambda: box.control.call("GET", f"/v1/offer/{ip}")["refusal"] == "no-credit",
             what="the refusal on joining", logs=box.read_logs)
    assert box.control.who(ip)["session"] is None
    assert box.curl("c103", WEB) != "upstream 203.0.113.2"
    page = browse(box, "c103", "-L", WEB).stdout
    assert "Welcome back to axis-gw, grace@acme.example." in page
    assert "You have no telework credit left." in page, page

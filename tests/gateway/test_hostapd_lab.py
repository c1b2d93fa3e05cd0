"""Real hostapd (Debian 12's 2.10) as the access point, in the namespace
lab: the box's RFC 5176 Disconnect-Request deauthorises the station when its
session ends; hostapd's Disconnect-ACK and its Accounting-Stop reach the box.

hostapd's ``driver=wired`` has no WPA-PSK: the station authenticates with
802.1X (wpa_supplicant ``-D wired``, EAP-MD5) against hostapd's own EAP
server, on its own link to the access point (a bridge would not pass the
PAE group address). The box is the access point's accounting server (on its
access points' RADIUS port) and its Dynamic Authorization Client: the part
of the private-SSID path this test is about. The station uses the MAC the
laptop checked in with, so the box ties the association to that session.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.boxlab import Box, site, wait_for
from tests.gateway.conftest import require_lab
from tests.need import tool
from tests.radius import seed

AP_IP = "198.51.100.2"
AP_SECRET = "hostapd-lab-secret-0123"
AP_MAC = "02:50:00:00:00:a1"
LOGIN = "alice@acme.example"

EXTRA = f"""
[wifi]
ssid = "Passerelle-Private"

[[access_points]]
address = "{AP_IP}"
secret = "{AP_SECRET}"
disconnect = true
"""

HOSTAPD = """\
interface=port0
driver=wired
ctrl_interface={ctrl}
ieee8021x=1
use_pae_group_addr=1
eap_reauth_period=0
eap_server=1
eap_user_file={users}
own_ip_addr={ap}
nas_identifier=ap1
acct_server_addr={box}
acct_server_port=1812
acct_server_shared_secret={secret}
radius_das_port=3799
radius_das_client={box} {secret}
radius_das_require_event_timestamp=1
"""

SUPPLICANT = """\
ap_scan=0
network={{
    key_mgmt=IEEE8021X
    eap=MD5
    identity="{login}"
    password="lab-8021x-password"
    eapol_flags=0
}}
"""


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    require_lab()
    for name in ("hostapd", "hostapd_cli"):
        tool(name, "hostapd")
    tool("wpa_supplicant", "wpasupplicant")
    tool("radclient", "freeradius-utils")
    with site(tmp_path_factory.mktemp("hostapd"), extra_config=EXTRA) as built:
        yield built


def _box_log(box: Box) -> str:
    return box.read_logs()


def _stations(box: Box, ctrl: Path) -> str:
    out = box.lab.run("ap", "hostapd_cli", "-p", str(ctrl), "-i", "port0", "all_sta",
                      check=False)
    return out.stdout


def test_the_box_disconnect_deauthorises_the_station_at_hostapd(box: Box) -> None:
    lab, tmp = box.lab, box.tmp
    lab.add_client("ap", AP_MAC, AP_IP)
    station_mac = lab.mac["client"]  # a device with one MAC on both networks
    lab.add_station("sta", "ap", station_mac)
    result = box.control.check_in("198.51.100.10", LOGIN, seed.PASSWORD)
    session_id = result["session_id"]

    ctrl = tmp / "hostapd-ctrl"
    (tmp / "eap_users").write_text(f'"{LOGIN}" MD5 "lab-8021x-password"\n')
    conf = tmp / "hostapd.conf"
    conf.write_text(HOSTAPD.format(ctrl=ctrl, users=tmp / "eap_users", ap=AP_IP,
                                   box=lab.box_ipv4, secret=AP_SECRET))
    ap_log = tmp / "hostapd.log"
    with ap_log.open("w") as out:
        lab.popen("ap", "hostapd", str(conf), stdout=out, stderr=subprocess.STDOUT)

    def logs() -> str:
        return f"{_box_log(box)}\n--- hostapd\n{ap_log.read_text()}"

    # hostapd's Accounting-On reached the box and was answered.
    wait_for(lambda: f"Accounting-On from access point {AP_IP}" in _box_log(box),
             what="hostapd's Accounting-On at the box", logs=logs)
    supplicant = tmp / "supplicant.conf"
    supplicant.write_text(SUPPLICANT.format(login=LOGIN))
    with (tmp / "supplicant.log").open("w") as out:
        lab.popen("sta", "wpa_supplicant", "-D", "wired", "-i", "eth0", "-c", str(supplicant),
                  stdout=out, stderr=subprocess.STDOUT)
    wait_for(lambda: "[AUTHORIZED]" in _stations(box, ctrl), what="the station authorized",
             logs=logs)
    assert station_mac in _stations(box, ctrl)
    # The access point's Accounting-Start, tied to the laptop's session on the box.
    started = wait_for(lambda: re.search(
        rf"Accounting Start from {AP_IP} for {station_mac} of {LOGIN}, Acct-Session-Id "
        rf"([0-9A-F]{{16}}), session {session_id}", _box_log(box)),
        what="the Accounting-Start at the box", logs=logs)

    box.control.check_out("198.51.100.10")
    wait_for(lambda: f"access point {AP_IP}:3799 for {station_mac} ({LOGIN}): Disconnect-ACK"
             in _box_log(box), what="hostapd's Disconnect-ACK", logs=logs)
    wait_for(lambda: re.search(rf"Accounting Stop from {AP_IP} for {station_mac} of {LOGIN}, "
                               rf"Acct-Session-Id {started.group(1)}", _box_log(box)),
             what="hostapd's Accounting-Stop at the box", logs=logs)
    # hostapd keeps the entry a few seconds, no longer authorized, then removes it.
    left = _stations(box, ctrl)
    assert "[AUTHORIZED]" not in left and (station_mac not in left or "timeout_next=REMOVE"
                                           in left), left
    said = ap_log.read_text()
    assert f"AP-STA-DISCONNECTED {station_mac}" in said, said
    assert f"stopped accounting session {started.group(1)}" in said, said


def test_hostapd_nak_is_logged_in_words(box: Box) -> None:
    """The box believes the access point holds a station it does not (its
    accounting said so): hostapd answers NAK 503, and the box says why."""
    ghost = box.lab.mac["client2"]
    box.control.check_in("198.51.100.11", "bob@slowco.example", seed.PASSWORD)
    attrs = (f'Acct-Status-Type = Start\nAcct-Session-Id = "0123456789ABCDEF"\n'
             f'Calling-Station-Id = "{ghost.replace(":", "-").upper()}"\n'
             f'NAS-Identifier = "ap1"\nNAS-IP-Address = {AP_IP}\n')
    sent = box.lab.run("ap", "radclient", "-x", "-r", "1", "-t", "2",
                       f"{box.lab.box_ipv4}:1812", "acct", AP_SECRET, input=attrs, check=False)
    assert "Received Accounting-Response" in sent.stdout, sent.stdout + sent.stderr
    box.control.check_out("198.51.100.11")
    wait_for(lambda: f"access point {AP_IP}:3799 for {ghost}" in _box_log(box) and
             "Disconnect-NAK, Error-Cause 503 Session-Context-Not-Found: no such session"
             in _box_log(box), what="hostapd's NAK 503 in the box's log", logs=box.read_logs)

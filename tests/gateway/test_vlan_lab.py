"""Companies apart, in the lab: the box carries two companies' VLANs.

`passerelle gateway run` runs in the gw namespace; `passerelle radius serve`
is the centre, where Acme's people get VLAN 101 and Slowco's VLAN 102. Every
test runs for each way the VLANs reach the box (``Mode``):

- ``untagged``: each VLAN arrives untagged on an interface of its own
  (``tagged = false``): a veth ``vlan101`` from the box to a bridge of its
  own in the switch namespace, as a switch port or a NIC per VLAN would be.
  The box sets its address on it. Each station is a client namespace on
  that VLAN's bridge. This kernel needs nothing for it: it runs everywhere,
  CI included.
- ``8021q``: the box makes the 802.1Q sub-interfaces ``lan.101`` and
  ``lan.102`` of its LAN veth; each station has its own sub-interface
  (``eth0.101``: what an access point does for a station it put on VLAN
  101) on the site's one switch. Only where the kernel has 802.1Q.

Past the interface both are the same code: DHCP from the box, captive state,
check-in, isolation. Real nftables, dnsmasq, RADIUS; check-in through the
control socket, as the portal does.

The tests run in order and share one box per mode.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from passerelle.gateway.control import ControlError
from passerelle.radius.models import Company
from tests.boxlab import Box, site, wait_for
from tests.gateway.conftest import require_lab
from tests.gateway.test_dnsmasq import DIG
from tests.lab import Lab
from tests.radius import seed

SUBINTERFACES = """
[vlans]

[[vlans.networks]]
id = 101
address = "192.0.2.129/27"

[[vlans.networks]]
id = 102
address = "192.0.2.161/27"
"""
OWN_INTERFACES = """
[vlans]

[[vlans.networks]]
id = 101
address = "192.0.2.129/27"
interface = "vlan101"
tagged = false

[[vlans.networks]]
id = 102
address = "192.0.2.161/27"
interface = "vlan102"
tagged = false
"""
NO_8021Q = "this kernel has no 802.1Q (CONFIG_VLAN_8021Q): the sub-interface path cannot run here"
BOX101, BOX102 = "192.0.2.129", "192.0.2.161"
NET101, NET102 = ipaddress.ip_network("192.0.2.128/27"), ipaddress.ip_network("192.0.2.160/27")
MAC101, MAC102 = "02:50:00:00:01:01", "02:50:00:00:01:02"
WEB = "http://192.0.2.80/"

# dhclient's hook: the address and the default route it was given.
DHCLIENT_SCRIPT = """\
#!/bin/sh
env > "{dump}.$reason"
case "$reason" in
BOUND|RENEW|REBIND|REBOOT)
    ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
    ip route replace default via "$new_routers" dev "$interface" ;;
esac
"""


# One UDP datagram: host port payload.
SEND = ("import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto("
        "sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))")


def kernel_has_8021q() -> str | None:
    """Why this kernel cannot carry VLANs, or None (tried in a scratch namespace)."""
    name = f"psl-vlanprobe-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "name", "probe", "type", "veth",
                        "peer", "name", "peer"], check=True, capture_output=True)
        out = subprocess.run(["ip", "-n", name, "link", "add", "link", "probe", "name",
                              "probe.101", "type", "vlan", "id", "101"], capture_output=True,
                             text=True, check=False)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    if out.returncode != 0:
        return (f"this kernel cannot make an 802.1Q interface ({out.stderr.strip()}): "
                "CONFIG_VLAN_8021Q / the 8021q module")
    return None


def require_8021q() -> None:
    """Skip a test of the 802.1Q sub-interfaces on a kernel without them.

    The one skip allowed under CI, hence a plain pytest.skip and not
    tests.need.unavailable: CI runs on a kernel built without 802.1Q, which
    no package installs. What the sub-interface path adds (making the
    interface) is unit-tested in test_vlan.py's plan; everything past the
    interface runs in CI through the untagged mode."""
    if kernel_has_8021q() is not None:
        pytest.skip(NO_8021Q)


def tagged_station(lab: Lab, role: str, mac: str, vlan: int) -> str:
    """A station the access point put on ``vlan``: a client namespace on the
    switch whose frames carry the tag (``eth0.<vlan>``). Its interface."""
    lab.add_client(role, mac)
    iface = f"eth0.{vlan}"
    lab.run(role, "ip", "link", "add", "link", "eth0", "name", iface, "type", "vlan", "id",
            str(vlan))
    lab.run(role, "ip", "link", "set", iface, "up")
    return iface


def own_links(lab: Lab) -> None:
    """Each VLAN's own switch (a bridge ``br<id>`` in the switch namespace)
    and the box's untagged port on it (``vlan<id>``, no address, down: the
    box sets both)."""
    for vlan in (101, 102):
        lab.run("sw", "ip", "link", "add", f"br{vlan}", "type", "bridge")
        lab.run("sw", "ip", "link", "set", f"br{vlan}", "up")
        lab.run("gw", "ip", "link", "add", f"vlan{vlan}", "type", "veth", "peer", "name",
                f"p-gw{vlan}", "netns", lab.ns["sw"])
        lab.run("sw", "ip", "link", "set", f"p-gw{vlan}", "master", f"br{vlan}", "up")


def untagged_station(lab: Lab, role: str, mac: str, vlan: int) -> str:
    """A station on VLAN ``vlan``'s own switch: its frames carry no tag."""
    lab.add_client(role, mac)
    lab.run("sw", "ip", "link", "set", f"p-{role}"[:15], "master", f"br{vlan}")
    return "eth0"


@dataclass(frozen=True)
class Mode:
    """How the VLANs reach the box."""

    name: str
    config: str
    interface: Callable[[int], str]  # the box's interface of a VLAN
    station: Callable[[Lab, str, str, int], str]
    before_start: Callable[[Lab], None] | None = None


MODES = {
    "untagged": Mode("untagged", OWN_INTERFACES, lambda vlan: f"vlan{vlan}", untagged_station,
                     own_links),
    "8021q": Mode("8021q", SUBINTERFACES, lambda vlan: f"lan.{vlan}", tagged_station),
}


def dhcp(lab: Lab, role: str, iface: str) -> dict[str, str]:
    """Run dhclient on ``iface`` until it is bound; what the box gave."""
    dump, script = lab.tmp / f"dhcp-{role}", lab.tmp / f"dhclient-hook-{role}"
    script.write_text(DHCLIENT_SCRIPT.format(dump=dump))
    script.chmod(0o755)
    lab.popen(role, "dhclient", "-4", "-1", "-d", "-lf", str(lab.tmp / f"{role}.leases"),
              "-pf", str(lab.tmp / f"{role}.pid"), "-sf", str(script), iface,
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bound = Path(f"{dump}.BOUND")
    deadline = time.monotonic() + 30
    while not bound.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bound.exists(), f"{role} got no lease on {iface}"
    return dict(line.split("=", 1) for line in bound.read_text().splitlines() if "=" in line)


def checked_in(box: Box, role: str, login: str) -> None:
    """``role`` has a session (the centre's Idle-Timeout is short here) and
    reaches the internet."""
    ip = box.lab.ipv4[role]
    if box.control.who(ip)["session"] is None:
        box.control.check_in(ip, login, seed.PASSWORD)
    assert box.curl(role, WEB) == "upstream 203.0.113.2", role


def dig(box: Box, role: str, server: str, name: str) -> str:
    return box.lab.run(role, sys.executable, "-c", DIG, server, name).stdout.strip()


@pytest.fixture(scope="module", params=list(MODES))
def mode(request: pytest.FixtureRequest) -> Mode:
    require_lab()
    if request.param == "8021q":
        require_8021q()
    return MODES[request.param]


@pytest.fixture(scope="module")
def box(mode: Mode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with site(tmp_path_factory.mktemp(f"vlan-{mode.name}"), extra_config=mode.config,
              before_start=mode.before_start) as built:
        with built.factory() as s, s.begin():
            s.scalars(select(Company).where(Company.name == "Slowco")).one().vlan = 102
        yield built


@pytest.fixture(scope="module")
def stations(box: Box, mode: Mode) -> dict[str, dict[str, str]]:
    """Two stations, one on each company's VLAN, with what DHCP gave them."""
    got = {}
    for role, mac, vlan in (("c101", MAC101, 101), ("c102", MAC102, 102)):
        got[role] = dhcp(box.lab, role, mode.station(box.lab, role, mac, vlan))
        box.lab.ipv4[role] = got[role]["new_ip_address"]
    return got


def test_the_box_set_up_its_vlan_interfaces(box: Box, mode: Mode) -> None:
    links = {link["ifname"]: link for link in json.loads(
        box.lab.run("gw", "ip", "-j", "-d", "addr", "show").stdout)}
    for vlan, address in ((101, BOX101), (102, BOX102)):
        link = links[mode.interface(vlan)]
        assert [a["local"] for a in link["addr_info"] if a["family"] == "inet"] == [address]
        assert "UP" in link["flags"]
        if mode.name == "8021q":  # made and marked by the box
            assert link["linkinfo"]["info_kind"] == "vlan"
            assert link["linkinfo"]["info_data"]["id"] == vlan and link["link"] == "lan"
            assert link["ifalias"] == "passerelle vlan"
        else:  # given: the box marks nothing it did not make
            assert link["linkinfo"]["info_kind"] == "veth" and "ifalias" not in link


def test_each_vlan_gets_its_own_dhcp(stations: dict[str, dict[str, str]]) -> None:
    for role, net, router in (("c101", NET101, BOX101), ("c102", NET102, BOX102)):
        got = stations[role]
        assert ipaddress.ip_address(got["new_ip_address"]) in net
        assert got["new_routers"] == router and got["new_domain_name_servers"] == router


def test_a_station_not_checked_in_is_captive_on_its_vlan(
        box: Box, stations: dict[str, dict[str, str]]) -> None:
    ip101 = box.lab.ipv4["c101"]
    # Plain HTTP anywhere gets the portal (the stand-in answers "portal <peer>").
    assert box.curl("c101", WEB) == f"portal {ip101}"
    assert box.curl("c102", WEB) == f"portal {box.lab.ipv4['c102']}"
    # DNS: any name, to any server, is the captive view's: it leads to the box.
    for server in (BOX101, "192.0.2.80"):
        assert dig(box, "c101", server, "x7f3k.example.net") == f"rcode=0 {box.lab.box_ipv4}"
    assert dig(box, "c101", BOX101, "portal.passerelle.internal") == \
        f"rcode=0 {box.lab.box_ipv4}"
    who = box.control.who(ip101)
    assert who["mac"] == MAC101 and who["session"] is None


def test_check_in_on_the_company_vlan_reaches_the_internet(
        box: Box, stations: dict[str, dict[str, str]]) -> None:
    ip101, ip102 = box.lab.ipv4["c101"], box.lab.ipv4["c102"]
    granted = box.control.check_in(ip101, "alice@acme.example", seed.PASSWORD)
    assert granted["vlan"] == 101
    assert box.curl("c101", WEB) == "upstream 203.0.113.2", "forwarded and masqueraded"
    assert box.curl("c102", WEB) == f"portal {ip102}", "the other VLAN is still captive"
    granted = box.control.check_in(ip102, "bob@slowco.example", seed.PASSWORD)
    assert granted["vlan"] == 102
    assert box.curl("c102", WEB) == "upstream 203.0.113.2"


def test_neither_vlan_reaches_the_other(box: Box,
                                        stations: dict[str, dict[str, str]]) -> None:
    ip101, ip102 = box.lab.ipv4["c101"], box.lab.ipv4["c102"]
    heard = {}
    for role, ip in (("c101", ip101), ("c102", ip102), ("client", "198.51.100.10")):
        box.lab.serve(role, "http", ip, 80, "200", role)
        heard[ip] = box.tmp / f"heard-{role}"
        heard[ip].touch()
        box.lab.serve(role, "udp", ip, 9999, str(heard[ip]))
    checked_in(box, "c101", "alice@acme.example")
    checked_in(box, "c102", "bob@slowco.example")
    # Both checked in, both reach the internet, and still not each other,
    # nor the untagged LAN, nor back (a captive client gets the portal):
    # neither TCP nor UDP.
    for role, target in (("c101", ip102), ("c102", ip101), ("c101", "198.51.100.10"),
                         ("client", ip101)):
        answer = box.curl(role, f"http://{target}/")
        assert answer.startswith(("error", "portal ")), (role, target, answer)
        box.lab.run(role, sys.executable, "-c", SEND, target, "9999", f"from-{role}")
    time.sleep(1)
    assert {ip: path.read_text() for ip, path in heard.items()} == dict.fromkeys(heard, "")


def test_a_clone_from_the_other_vlan_gets_nothing(
        box: Box, mode: Mode, stations: dict[str, dict[str, str]]) -> None:
    """A station on VLAN 102 that takes c101's MAC and IP (checked in on
    VLAN 101): the kernel ties them to VLAN 101's interface, so nothing it sends crosses
    the box (not even one way, on the victim's account), and it gets no
    internet and no DNS. rp_filter is off, so it is the table that says no."""
    ip101 = box.lab.ipv4["c101"]
    heard = box.tmp / "udp-heard"
    heard.touch()
    box.lab.serve("up", "udp", "192.0.2.80", 9999, str(heard))
    on102 = mode.interface(102)
    box.lab.run("gw", "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0",
                f"net.ipv4.conf.{on102.replace('.', '/')}.rp_filter=0")
    iface = mode.station(box.lab, "clone", MAC101, 102)
    box.lab.run("clone", "ip", "addr", "add", f"{ip101}/27", "dev", iface)
    box_mac = json.loads(box.lab.run("gw", "ip", "-j", "link", "show", on102).stdout)[0][
        "address"]
    box.lab.run("clone", "ip", "neigh", "replace", BOX102, "lladdr", box_mac, "dev", iface)
    box.lab.run("clone", "ip", "route", "add", "default", "via", BOX102, "dev", iface, "onlink")
    try:
        # The victim's datagram goes out (sent again until heard: its session,
        # idle for a while here, may end on the lab's short Idle-Timeout right
        # after the check; ``checked_in`` then checks it in again).
        wait_for(lambda: victim_sends(box), what="the victim's datagram")
        # The victim stays busy meanwhile, so that its session is not idle
        # when the check below looks at it.
        busy = box.lab.popen("c101", "ping", "-q", "-i", "0.5", "192.0.2.80",
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        box.lab.run("clone", sys.executable, "-c", SEND, "192.0.2.80", "9999", "clone")
        assert box.curl("clone", WEB).startswith("error")
        assert "clone" not in heard.read_text(), "the clone's datagram went out"
        assert dig(box, "clone", BOX102, "x7f3k.example.net") == "timeout"
        assert dig(box, "clone", "192.0.2.80", "x7f3k.example.net") == "timeout"
        session = box.control.who(ip101)["session"]["session_id"]
    finally:
        box.lab.run("clone", "ip", "link", "set", iface, "down")
    # The victim keeps its session (its frames teach the switch its port again).
    try:
        wait_for(lambda: box.curl("c101", WEB) == "upstream 203.0.113.2",
                 what="the victim's internet", logs=box.read_logs)
        assert box.control.who(ip101)["session"]["session_id"] == session
    finally:
        busy.kill()
        busy.wait()


def victim_sends(box: Box) -> bool:
    """c101, checked in, sends one datagram upstream; whether it was heard."""
    heard = box.tmp / "udp-heard"
    checked_in(box, "c101", "alice@acme.example")
    box.lab.run("c101", sys.executable, "-c", SEND, "192.0.2.80", "9999", "c101")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if "c101" in heard.read_text():
            return True
        time.sleep(0.1)
    return False


def test_a_restart_keeps_the_vlan_interfaces_and_their_sessions(
        box: Box, stations: dict[str, dict[str, str]]) -> None:
    """kill -9 and start again: the interfaces are the same ones (not made
    again, the LAN still detected beside them), the VLAN session is restored
    with its VLAN and the kernel kept letting it through."""
    def indexes() -> dict[str, int]:
        return {link["ifname"]: link["ifindex"] for link in json.loads(
            box.lab.run("gw", "ip", "-j", "link", "show").stdout)}

    checked_in(box, "c101", "alice@acme.example")
    before = indexes()
    box.kill_daemon()
    assert box.curl("c101", WEB) == "upstream 203.0.113.2", "the kernel keeps enforcing"
    box.start_daemon()
    assert indexes() == before
    (restored,) = [s for s in box.control.sessions() if s["ip"] == box.lab.ipv4["c101"]]
    assert restored["vlan"] == 101
    assert box.curl("c101", WEB) == "upstream 203.0.113.2"


def test_check_in_from_another_company_s_vlan_is_refused(
        box: Box, stations: dict[str, dict[str, str]]) -> None:
    ip101, ip102 = box.lab.ipv4["c101"], box.lab.ipv4["c102"]
    for ip in (ip101, ip102):
        if box.control.who(ip)["session"] is not None:
            box.control.check_out(ip)
    with pytest.raises(ControlError) as refused:
        box.control.check_in(ip102, "alice@acme.example", seed.PASSWORD)
    assert refused.value.code == "wrong-vlan"
    with pytest.raises(ControlError) as refused:
        box.control.check_in(ip101, "bob@slowco.example", seed.PASSWORD)
    assert refused.value.code == "wrong-vlan"
    assert box.curl("c102", WEB) == f"portal {ip102}"
    assert box.control.sessions() == []
    assert "wrong-vlan" in box.read_logs(), "the daemon says why"


def test_the_untagged_lan_stays_the_open_check_in_network(box: Box) -> None:
    """Anyone checks in on the open SSID's untagged LAN; the session keeps
    the company's VLAN (for the private SSID's access points)."""
    granted = box.control.check_in("198.51.100.10", "alice@acme.example", seed.PASSWORD)
    assert granted["vlan"] == 101
    assert box.curl("client") == "upstream 203.0.113.2"
    box.control.check_out("198.51.100.10")
    assert box.curl("client").startswith("portal")

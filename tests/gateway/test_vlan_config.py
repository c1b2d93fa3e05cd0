"""The ``[vlans]`` section, and what it becomes: the nftables ruleset (also
applied for real in a scratch namespace), dnsmasq's configuration (checked by
``dnsmasq --test``), and the VLAN a session keeps in the session table."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest

from passerelle.gateway.config import (
    ConfigError,
    Interfaces,
    dhcp_plan,
    dnsmasq_test,
    firewall_plan,
    parse,
)
from passerelle.gateway.dnsmasq import render, render_captive
from passerelle.gateway.nft import Firewall, ruleset
from passerelle.gateway.session_table import SessionTable, from_json, to_json
from passerelle.gateway.sessions import Session, Terms
from tests.gateway.conftest import require_lab
from tests.need import tool

MACHINE = Interfaces(
    default_route_if="wan0",
    up=("wan0", "lan0"),
    ipv4={"wan0": ("203.0.113.2/24",), "lan0": ("198.51.100.1/24",)},
)
MINIMAL = """
[box]
identifier = "axis-gw"
state_dir = "state"

[[radius.servers]]
host = "192.0.2.10"
secret = "s3cret-for-tests"
"""
VLANS = MINIMAL + """
[vlans]
ids = "201-203"
network = "10.128.0.0/16"
prefix = 24

[[vlans.networks]]
id = 101
address = "192.0.2.129/27"

[[vlans.networks]]
id = 102
address = "192.0.2.161/27"
dhcp_start = "192.0.2.170"
dhcp_end = "192.0.2.180"
interface = "vl102"
"""


def rules(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_vlans_from_the_scheme_and_the_list(tmp_path: Path) -> None:
    cfg = parse(VLANS, tmp_path, MACHINE)
    assert [(v.id, v.interface, str(v.address), str(v.dhcp_start), str(v.dhcp_end))
            for v in cfg.vlans] == [
        (201, "lan0.201", "10.128.0.1/24", "10.128.0.10", "10.128.0.254"),
        (202, "lan0.202", "10.128.1.1/24", "10.128.1.10", "10.128.1.254"),
        (203, "lan0.203", "10.128.2.1/24", "10.128.2.10", "10.128.2.254"),
        (101, "lan0.101", "192.0.2.129/27", "192.0.2.138", "192.0.2.158"),
        (102, "vl102", "192.0.2.161/27", "192.0.2.170", "192.0.2.180")]
    vlan = cfg.vlan_of("10.128.1.77")
    assert vlan is not None and vlan.id == 202
    assert cfg.vlan_of("198.51.100.10") is None  # the untagged LAN: the open network
    assert parse(MINIMAL, tmp_path, MACHINE).vlans == ()


def test_detection_takes_the_box_s_own_vlan_interfaces_as_part_of_its_lan(
        tmp_path: Path) -> None:
    after_a_start = Interfaces(
        default_route_if="wan0", up=("wan0", "lan0", "lan0.101", "lan0.102"),
        ipv4={"wan0": ("203.0.113.2/24",), "lan0": ("198.51.100.1/24",),
              "lan0.101": ("192.0.2.129/27",)})
    assert parse(VLANS, tmp_path, after_a_start).lan_if == "lan0"
    two = Interfaces(default_route_if="wan0", up=("wan0", "lan0", "eth2"), ipv4={})
    with pytest.raises(ConfigError, match="the interfaces up besides the WAN are lan0, eth2"):
        parse(MINIMAL, tmp_path, two)


ONE = '\n[vlans]\n[[vlans.networks]]\n'
OWN = MINIMAL + ONE + 'id = 301\naddress = "10.30.0.1/24"\ninterface = "eth2"\ntagged = false\n'
# eth2 is down (no cable yet): still an interface the box may use.
WITH_ETH2 = Interfaces(default_route_if="wan0", up=("wan0", "lan0"),
                       ipv4=MACHINE.ipv4, present=("lo", "wan0", "lan0", "eth2"))


def test_a_vlan_on_an_interface_of_its_own(tmp_path: Path) -> None:
    (vlan,) = parse(OWN, tmp_path, WITH_ETH2).vlans
    assert (vlan.id, vlan.interface, vlan.tagged, str(vlan.address)) == (
        301, "eth2", False, "10.30.0.1/24")
    # Up, it is not a second LAN candidate: it is the VLAN's.
    up = Interfaces(default_route_if="wan0", up=("wan0", "lan0", "eth2"), ipv4=MACHINE.ipv4)
    assert parse(OWN, tmp_path, up).lan_if == "lan0"
    # The same rules as a sub-interface's: one code path past the interface.
    lines = rules(ruleset(firewall_plan(parse(OWN, tmp_path, WITH_ETH2))))
    assert 'iifname { "lan0", "eth2" } oifname { "lan0", "eth2" } drop' in lines
    assert 'iifname "eth2" ip saddr != { 0.0.0.0, 10.30.0.0/24 } drop' in lines
    assert "interface=eth2" in render(dhcp_plan(parse(OWN, tmp_path, WITH_ETH2))).splitlines()


@pytest.mark.parametrize(("extra", "message"), [
    ('id = 5\naddress = "10.0.0.1/24"\ntagged = false', r"vlans.networks\[0\].interface: "
     r"required with tagged = false \(the interface VLAN 5 arrives on untagged\)"),
    ('id = 5\naddress = "10.0.0.1/24"\ninterface = "eth7"\ntagged = false',
     r"vlans.networks\[0\].interface: eth7 is not an interface of this machine \(with tagged "
     r"= false the VLAN arrives untagged on it; the box makes none\)"),
    ('id = 5\naddress = "10.0.0.1/24"\ninterface = "wan0"\ntagged = false',
     r"vlans.networks\[0\].interface: wan0 is the WAN interface; a VLAN needs an interface of "
     "its own"),
    ('id = 5\naddress = "10.0.0.1/24"\ninterface = "lan0"\ntagged = false',
     r"vlans.networks\[0\].interface: lan0 is the LAN interface"),
    ('id = 5\naddress = "10.0.0.1/24"\ninterface = "lan0"', r"vlans.networks\[0\].interface: "
     "lan0 is the LAN interface"),
    ('id = 5\naddress = "10.0.0.1/24"\ninterface = "eth2"\ntagged = "no"',
     r"vlans.networks\[0\].tagged: expected bool, got 'no'"),
    ('id = 5\naddress = "10.0.0.1/24"\ninterface = "eth2"\ntagged = false\n'
     '[[vlans.networks]]\nid = 6\naddress = "10.0.1.1/24"\ninterface = "eth2"\n'
     'tagged = false', "vlans: VLAN 6: interface eth2 is used twice"),
])
def test_each_own_interface_mistake_names_its_key(tmp_path: Path, extra: str,
                                                   message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(MINIMAL + ONE + extra, tmp_path, WITH_ETH2)


@pytest.mark.parametrize(("extra", "message"), [
    ('[vlans]\nids = "101-110"', "vlans.ids: set ids and network together"),
    ('[vlans]\nnetwork = "10.0.0.0/16"', "vlans.ids: set ids and network together"),
    ('[vlans]\nids = "110-101"\nnetwork = "10.0.0.0/16"', "vlans.ids: '110-101': VLAN ids run "
     "from 1 to 4094, the first not after the last"),
    ('[vlans]\nids = "5000"\nnetwork = "10.0.0.0/16"', "vlans.ids: '5000': VLAN ids run"),
    ('[vlans]\nids = 101\nnetwork = "10.0.0.0/16"', "vlans.ids: expected str, got 101"),
    ('[vlans]\nids = "1-300"\nnetwork = "10.0.0.0/16"', "vlans.network: 10.0.0.0/16 holds 256 "
     "subnets of /24, not the 300 VLANs of 1-300"),
    ('[vlans]\nids = "1-3"\nnetwork = "10.0.0.1/16"', "vlans.network: '10.0.0.1/16' is not an "
     "IPv4 network"),
    ('[vlans]\nids = "1-3"\nnetwork = "10.0.0.0/16"\nprefix = 30', "vlans.prefix: /30 must be "
     "between /16 \\(the network\\) and /29"),
    ('[vlans]\nids = "1-3"\nnetwork = "198.51.100.0/24"\nprefix = 26', "vlans: VLAN 1: its "
     "network 198.51.100.0/26 overlaps the LAN 198.51.100.0/24"),
    ('[vlans]\nids = "1-3"\nnetwork = "203.0.113.0/24"\nprefix = 26', "overlaps the WAN "
     "203.0.113.0/24"),
    # The centre's address on a VLAN would be routed to the VLAN, not upstream.
    ('[vlans]\nids = "1-3"\nnetwork = "192.0.2.0/25"\nprefix = 27', "vlans: VLAN 1: its "
     "network 192.0.2.0/27 overlaps radius.servers host 192.0.2.10/32"),
    ('[ntp]\nservers = ["10.9.0.1"]\n[vlans]\nids = "1-3"\nnetwork = "10.9.0.0/16"',
     "vlans: VLAN 1: its network 10.9.0.0/24 overlaps ntp.servers 10.9.0.1/32"),
    ('[vlans]\ncolour = "blue"', "vlans.colour: unknown key"),
    ('[vlans]\nnetworks = ["x"]', r"vlans.networks\[0\]: expected a table"),
    (ONE + 'address = "10.0.0.1/24"', r"vlans.networks\[0\].id: required"),
    (ONE + 'id = 5', r"vlans.networks\[0\].address: required"),
    (ONE + 'id = 5\naddress = "10.0.0.1/24"\nname = "x"', r"vlans.networks\[0\].name: "
     "unknown key"),
    (ONE + 'id = 4095\naddress = "10.0.0.1/24"', r"vlans.networks\[0\].id: 4095 is not a VLAN "
     "id"),
    (ONE + 'id = "5"\naddress = "10.0.0.1/24"', r"vlans.networks\[0\].id: expected int"),
    (ONE + 'id = 5\naddress = "10.0.0.1"', r"vlans.networks\[0\].address: 10.0.0.1/32 is too "
     "small"),
    (ONE + 'id = 5\naddress = "10.0.0.1/24"\ndhcp_start = "10.0.1.5"',
     r"vlans.networks\[0\].dhcp_start: 10.0.1.5 is outside VLAN 5's network 10.0.0.0/24"),
    (ONE + 'id = 5\naddress = "10.0.0.1/24"\ndhcp_start = "10.0.0.1"\ndhcp_end = "10.0.0.9"',
     r"vlans.networks\[0\].dhcp_start: the range 10.0.0.1-10.0.0.9 holds the box's own "
     "address"),
    (ONE + 'id = 5\naddress = "10.0.0.1/24"\ninterface = "much-too-long.55"',
     r"vlans.networks\[0\].interface: 'much-too-long.55' is not an interface name"),
    (ONE + 'id = 5\naddress = "10.0.0.1/24"\n' + '[[vlans.networks]]\nid = 5\n'
     'address = "10.1.0.1/24"', "vlans: VLAN 5 is listed twice"),
    ('[vlans]\nids = "5-6"\nnetwork = "10.0.0.0/16"\n[[vlans.networks]]\nid = 9\n'
     'address = "10.0.1.1/24"', "vlans: VLAN 9: its network 10.0.1.0/24 overlaps VLAN 6's"),
])
def test_each_vlan_mistake_names_its_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(MINIMAL + extra, tmp_path, MACHINE)


# -- the ruleset -----------------------------------------------------------------


def test_every_lan_rule_names_each_vlan_interface(tmp_path: Path) -> None:
    plan = firewall_plan(parse(VLANS, tmp_path, MACHINE))
    assert plan.lan_net4 == "198.51.100.0/24" and len(plan.vlans) == 5
    lines = rules(ruleset(plan))
    lans = '{ "lan0", "lan0.201", "lan0.202", "lan0.203", "lan0.101", "vl102" }'
    # The portal and the captive state on each (DNAT to the box's LAN
    # address, where the portal and the captive view listen) ...
    assert (f"iifname {lans} ip daddr 198.51.100.1 tcp dport 80 dnat ip to "
            "198.51.100.1:8080") in lines
    assert f"iifname {lans} jump captive_nat" in lines
    # ... forwarding to the internet, masqueraded, and nothing between them.
    fwd = lines[lines.index("chain forward {") + 2:][:3]
    assert fwd == [f"iifname {lans} oifname {lans} drop", f"iifname {lans} jump from_lan",
                   f"oifname {lans} jump to_lan"]
    assert f'iifname {lans} oifname "wan0" meta nfproto ipv4 masquerade' in lines
    assert f"iifname {lans} jump lan_in" in lines
    # Each interface takes only its own subnet's sources: an admitted (MAC,
    # IP) works only where it checked in.
    guard = lines[lines.index("chain lan_guard {") + 1:]
    assert guard[:4] == [
        "type filter hook prerouting priority raw; policy accept;",
        'iifname "lan0" ip saddr != { 0.0.0.0, 198.51.100.0/24 } drop',
        'iifname "lan0.201" ip saddr != { 0.0.0.0, 10.128.0.0/24 } drop',
        'iifname "lan0.202" ip saddr != { 0.0.0.0, 10.128.1.0/24 } drop']
    assert 'iifname "vl102" ip saddr != { 0.0.0.0, 192.0.2.160/27 } drop' in guard
    assert 'iifname "vl102" ip6 saddr != { ::, fe80::/10 } drop' in guard
    assert 'iifname "lan0" ip6' not in " ".join(guard), "the LAN keeps its IPv6"


def test_without_vlans_the_ruleset_is_the_flat_lan_s(tmp_path: Path) -> None:
    lines = rules(ruleset(firewall_plan(parse(MINIMAL, tmp_path, MACHINE))))
    assert 'iifname "lan0" oifname "lan0" drop' in lines
    guard = lines[lines.index("chain lan_guard {") + 1:]
    assert guard[:2] == ["type filter hook prerouting priority raw; policy accept;", "}"]


def test_the_kernel_takes_the_ruleset_with_vlans(tmp_path: Path) -> None:
    require_lab()
    name = f"psl-vlanrules-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        fw = Firewall(firewall_plan(parse(VLANS, tmp_path, MACHINE)), netns=name)
        fw.apply()
        fw.apply()  # a second start replaces the rules in place
        listing = json.loads(subprocess.run(
            ["ip", "netns", "exec", name, "nft", "-j", "list", "chain", "inet", "passerelle",
             "lan_guard"], capture_output=True, text=True, check=True).stdout)
        assert sum("rule" in item for item in listing["nftables"]) == 1 + 5 + 5
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


# -- dnsmasq -----------------------------------------------------------------------


def test_dhcp_and_dns_on_each_vlan(tmp_path: Path) -> None:
    cfg = parse(VLANS, tmp_path, MACHINE)
    plan = dhcp_plan(cfg)
    main = render(plan).splitlines()
    for name in ("lan0", "lan0.201", "lan0.101", "vl102"):
        assert f"interface={name}" in main
        assert f"interface={name}" in render_captive(plan, ("192.0.2.53",)).splitlines()
    assert "dhcp-range=set:vlan101,192.0.2.138,192.0.2.158,255.255.255.224,3600" in main
    # The VLAN's own box address as router and DNS server, over the LAN's.
    assert "dhcp-option=tag:vlan101,option:router,192.0.2.129" in main
    assert "dhcp-option=tag:vlan102,option:dns-server,192.0.2.161" in main
    assert "dhcp-option=option:router,198.51.100.1" in main
    tool("dnsmasq", "dnsmasq")
    dnsmasq_test(cfg)  # dnsmasq itself takes both files


# -- the session keeps its company's VLAN -------------------------------------------


def test_the_session_table_keeps_the_vlan_and_reads_old_rows(tmp_path: Path) -> None:
    session = Session("S1", "alice@acme.example", "02:50:00:00:01:01", "192.0.2.140",
                      1_800_000_000.0, Terms(session_timeout=600, vlan=101))
    table = SessionTable(tmp_path / "sessions.db")
    table.save(session)
    assert table.get("S1") == session
    old = json.loads(to_json(session))
    del old["terms"]["vlan"]  # a row saved before the field existed
    assert from_json(json.dumps(old)).terms.vlan is None
    table.close()

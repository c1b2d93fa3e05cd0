"""gateway/vlan.py: a VLAN as configured, the range scheme, and the plan
that makes the kernel's interfaces match, for 802.1Q sub-interfaces and for
VLANs on interfaces of their own; then the executor with real ``ip`` in a
scratch namespace."""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from passerelle.gateway.vlan import (
    ALIAS,
    AddAddress,
    AddLink,
    DeleteAddress,
    DeleteLink,
    Link,
    Links,
    SetUp,
    Vlan,
    VlanError,
    check_apart,
    parse_ids,
    parse_links,
    plan,
    scheme,
    vlan_of,
)
from tests.gateway.conftest import require_lab
from tests.gateway.test_vlan_lab import kernel_has_8021q, require_8021q

V101 = Vlan.make("lan", 101, "192.0.2.129/27")
V102 = Vlan.make("lan", 102, "192.0.2.161/27", "192.0.2.170", "192.0.2.180")
OWN = Vlan.make("lan", 103, "192.0.2.193/27", interface="eth2", tagged=False)


# -- one VLAN --------------------------------------------------------------------


def test_a_vlan_takes_the_lan_s_defaults() -> None:
    assert (V101.id, V101.interface, V101.box_ipv4) == (101, "lan.101", "192.0.2.129")
    assert V101.network == ipaddress.IPv4Network("192.0.2.128/27")
    # As on the LAN: the box first, DHCP from the tenth host to the last.
    assert (str(V101.dhcp_start), str(V101.dhcp_end)) == ("192.0.2.138", "192.0.2.158")
    assert (str(V102.dhcp_start), str(V102.dhcp_end)) == ("192.0.2.170", "192.0.2.180")
    small = Vlan.make("lan", 7, "198.51.100.1/29")
    assert (str(small.dhcp_start), str(small.dhcp_end)) == ("198.51.100.5", "198.51.100.6")
    assert Vlan.make("lan", 7, "198.51.100.1/29", interface="vl7").interface == "vl7"
    assert V101.tagged and (OWN.interface, OWN.tagged) == ("eth2", False)
    with pytest.raises(ValueError, match=r"interface: required with tagged = false \(the "
                                         r"interface VLAN 9 arrives on untagged\)"):
        Vlan.make("lan", 9, "198.51.100.1/29", tagged=False)


@pytest.mark.parametrize("args, message", [
    ((0, "192.0.2.129/27"), r"id: 0 is not a VLAN id \(1 to 4094"),
    ((4095, "192.0.2.129/27"), "id: 4095 is not a VLAN id"),
    ((True, "192.0.2.129/27"), "id: True is not a VLAN id"),
    ((101, "192.0.2.300/27"), "address: '192.0.2.300/27' is not an IPv4 address/prefix"),
    ((101, "2001:db8::1/64"), "address: .* is not an IPv4 address/prefix"),
    ((101, "192.0.2.129/30"), "address: 192.0.2.128/30 is too small for clients"),
    ((101, "192.0.2.128/27"), "address: 192.0.2.128 is not a host address"),
    ((101, "192.0.2.129/27", "192.0.2.100"),
     "dhcp_start: 192.0.2.100 is outside VLAN 101's network 192.0.2.128/27"),
    ((101, "192.0.2.129/27", "192.0.2.140", "192.0.2.159"),
     "dhcp_end: 192.0.2.159 is not a host address"),
    ((101, "192.0.2.129/27", "192.0.2.150", "192.0.2.140"),
     "dhcp_start: 192.0.2.150 is after dhcp_end 192.0.2.140"),
    ((101, "192.0.2.140/27", "192.0.2.130", "192.0.2.150"),
     "holds the box's own address 192.0.2.140"),
    ((101, "192.0.2.129/27", "x"), "dhcp_start: 'x' is not an IPv4 address"),
    ((101, "192.0.2.129/27", None, None, "a-very-long-name.101"),
     "interface: 'a-very-long-name.101' is not an interface name"),
])
def test_a_bad_vlan_names_the_field(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Vlan.make("lan", *args)


def test_parse_ids() -> None:
    assert parse_ids("101-103") == range(101, 104)
    assert parse_ids("7") == range(7, 8)
    for bad in ("0-3", "5-4094x", "20-10", "4090-4095", "a-b", ""):
        with pytest.raises(ValueError, match="VLAN id"):
            parse_ids(bad)


def test_the_range_scheme_cuts_one_subnet_per_vlan() -> None:
    vlans = scheme("lan", range(101, 104), "10.128.0.0/16", 24)
    assert [(v.id, v.interface, str(v.address)) for v in vlans] == [
        (101, "lan.101", "10.128.0.1/24"), (102, "lan.102", "10.128.1.1/24"),
        (103, "lan.103", "10.128.2.1/24")]
    assert (str(vlans[2].dhcp_start), str(vlans[2].dhcp_end)) == ("10.128.2.10", "10.128.2.254")
    with pytest.raises(ValueError, match=r"network: 10.128.0.0/23 holds 2 subnets of /24, "
                                         r"not the 3 VLANs of 101-103"):
        scheme("lan", range(101, 104), "10.128.0.0/23", 24)
    with pytest.raises(ValueError, match=r"prefix: /30 must be between /16"):
        scheme("lan", range(101, 104), "10.128.0.0/16", 30)
    with pytest.raises(ValueError, match=r"prefix: /8 must be between /16"):
        scheme("lan", range(101, 104), "10.128.0.0/16", 8)
    with pytest.raises(ValueError, match=r"network: '10.128.0.1/16' is not an IPv4 network"):
        scheme("lan", range(101, 104), "10.128.0.1/16", 24)


def test_vlans_stay_apart() -> None:
    lan = {"the LAN": ("198.51.100.0/24",), "the WAN": ("203.0.113.2/24", "2001:db8::2/64")}
    check_apart([V101, V102], lan)
    with pytest.raises(ValueError, match="VLAN 101 is listed twice"):
        check_apart([V101, Vlan.make("lan", 101, "10.0.0.1/24")], lan)
    with pytest.raises(ValueError, match=r"interface lan.101 is used twice"):
        check_apart([V101, Vlan.make("lan", 5, "10.0.0.1/24", interface="lan.101")], lan)
    with pytest.raises(ValueError, match=r"VLAN 9: its network 198.51.100.0/25 overlaps "
                                         r"the LAN 198.51.100.0/24"):
        check_apart([Vlan.make("lan", 9, "198.51.100.1/25")], lan)
    with pytest.raises(ValueError, match=r"overlaps the WAN 203.0.113.0/24"):
        check_apart([Vlan.make("lan", 9, "203.0.113.129/25")], lan)
    with pytest.raises(ValueError, match=r"VLAN 9: its network 192.0.2.128/26 overlaps VLAN "
                                         r"101's network"):
        check_apart([V101, Vlan.make("lan", 9, "192.0.2.129/26")], lan)


def test_vlan_of_an_address() -> None:
    assert vlan_of([V101, V102], "192.0.2.140") is V101
    assert vlan_of([V101, V102], "192.0.2.190") is V102
    assert vlan_of([V101, V102], "198.51.100.10") is None  # the untagged LAN
    assert vlan_of([V101, V102], "not an address") is None


# -- the plan --------------------------------------------------------------------

# What `ip -j -d addr show` says of a LAN and one VLAN of ours (iproute2 6.1).
LISTING = [
    {"ifindex": 2, "ifname": "lan", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
     "linkinfo": {"info_kind": "veth"},
     "addr_info": [{"family": "inet", "local": "198.51.100.1", "prefixlen": 24,
                    "scope": "global"}]},
    {"ifindex": 5, "ifname": "lan.101", "link": "lan", "ifalias": ALIAS,
     "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
     "linkinfo": {"info_kind": "vlan",
                  "info_data": {"protocol": "802.1Q", "id": 101, "flags": ["REORDER_HDR"]}},
     "addr_info": [{"family": "inet", "local": "192.0.2.129", "prefixlen": 27},
                   {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]},
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "addr_info": []},
]


def links(**changes: dict[str, Any]) -> dict[str, Link]:
    found = parse_links(LISTING)
    for name, change in changes.items():
        found[name.replace("_", ".")] = Link(**{**found[name.replace("_", ".")].__dict__,
                                               **change})
    return found


def test_parse_links() -> None:
    found = parse_links(LISTING)
    assert found["lan.101"] == Link("lan.101", "vlan", "lan", 101, ALIAS, True,
                                    ("192.0.2.129/27",))
    assert found["lan"] == Link("lan", "veth", "", None, "", True, ("198.51.100.1/24",))
    assert parse_links("garbage") == {}


def test_plan_makes_what_is_missing_and_nothing_more() -> None:
    assert plan("lan", [V101], links()) == []
    assert plan("lan", [V101, V102], links()) == [
        AddLink("lan", V102), AddAddress("lan.102", "192.0.2.161/27"), SetUp("lan.102")]
    assert plan("lan", [V101], links(lan_101={"up": False})) == [SetUp("lan.101")]
    # A wrong address on an interface of ours goes; the configured one comes.
    assert plan("lan", [V101], links(lan_101={"ipv4": ("10.0.0.1/24",)})) == [
        DeleteAddress("lan.101", "10.0.0.1/24"), AddAddress("lan.101", "192.0.2.129/27")]


def test_plan_removes_its_own_interfaces_no_longer_configured() -> None:
    assert plan("lan", [], links()) == [DeleteLink("lan.101")]
    assert plan("lan", [V102], links()) == [
        DeleteLink("lan.101"), AddLink("lan", V102), AddAddress("lan.102", "192.0.2.161/27"),
        SetUp("lan.102")]
    # Ours, but another VLAN id under that name: made again.
    assert plan("lan", [V101], links(lan_101={"vlan_id": 7})) == [
        DeleteLink("lan.101"), AddLink("lan", V101), AddAddress("lan.101", "192.0.2.129/27"),
        SetUp("lan.101")]


def test_plan_never_changes_an_interface_it_did_not_make() -> None:
    by_hand = links(lan_101={"alias": ""})
    assert plan("lan", [], by_hand) == []  # not removed
    # Made by hand as the right VLAN: used as it is, its own addresses kept.
    assert plan("lan", [V101], links(lan_101={"alias": "", "ipv4": ("10.0.0.1/24",)})) == [
        AddAddress("lan.101", "192.0.2.129/27")]
    for change in ({"kind": "veth"}, {"vlan_id": 7}, {"parent": "wan"}):
        with pytest.raises(VlanError, match=r"lan.101 exists and is not VLAN 101 of lan; the "
                                            r"box does not change an interface it did not make"):
            plan("lan", [V101], links(lan_101={"alias": "", **change}))
    with pytest.raises(VlanError, match="LAN interface eth9 not found"):
        plan("eth9", [V101], links())
    assert plan("eth9", [], {}) == []  # no VLANs: nothing to ask of the LAN


# What `ip -j -d addr show` says of an interface of its own: a NIC, no address.
ETH2 = {"ifindex": 7, "ifname": "eth2", "flags": ["BROADCAST", "MULTICAST"],
        "addr_info": [{"family": "inet", "local": "10.9.9.9", "prefixlen": 24}]}


def test_plan_uses_an_interface_of_its_own_as_it_is_given() -> None:
    given = parse_links([*LISTING, ETH2])
    # Its address added and up; its other addresses are not the box's to remove.
    assert plan("lan", [V101, OWN], given) == [AddAddress("eth2", "192.0.2.193/27"),
                                               SetUp("eth2")]
    done = {**given, "eth2": Link("eth2", up=True, ipv4=("10.9.9.9/24", "192.0.2.193/27"))}
    assert plan("lan", [V101, OWN], done) == []
    # No longer configured: left as it is (the box made it not).
    assert plan("lan", [V101], done) == []
    # No LAN needed when no VLAN is made on it.
    assert plan("eth9", [OWN], {"eth2": done["eth2"]}) == []


def test_plan_says_when_an_interface_of_its_own_is_not_there() -> None:
    with pytest.raises(VlanError, match=r"VLAN 103: interface eth2 not found; with tagged = "
                                        r"false the VLAN arrives untagged on an interface the "
                                        r"box is given, and the box makes none"):
        plan("lan", [OWN], links())
    # A sub-interface of ours under that name would go once unlisted: not used.
    ours = Vlan.make("lan", 101, "192.0.2.129/27", interface="lan.101", tagged=False)
    with pytest.raises(VlanError, match=r"VLAN 101: lan.101 is an 802.1Q sub-interface the "
                                        r"box made; remove it"):
        plan("lan", [ours], links())


# -- the executor, with real `ip` ------------------------------------------------


@pytest.fixture
def netns() -> Iterator[str]:
    """A scratch namespace with a veth pair, ``lan`` and its peer ``sw``."""
    require_lab()
    name = f"psl-vlan-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "lan", "type", "veth", "peer", "name",
                        "sw"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_links_refuses_a_name_taken_by_another_interface(netns: str) -> None:
    subprocess.run(["ip", "-n", netns, "link", "add", "lan.101", "type", "veth", "peer", "name",
                    "other"], check=True)
    with pytest.raises(VlanError, match=r"lan.101 exists and is not VLAN 101 of lan"):
        Links(netns).apply("lan", [V101])
    assert "lan.101" in Links(netns).read()


def test_links_sets_up_an_interface_of_its_own_and_never_removes_it(netns: str) -> None:
    subprocess.run(["ip", "-n", netns, "link", "add", "eth2", "type", "veth", "peer", "name",
                    "sw2"], check=True)
    ip = Links(netns)
    ip.apply("lan", [OWN])
    eth2 = ip.read()["eth2"]
    assert (eth2.kind, eth2.alias, eth2.up, eth2.ipv4) == ("veth", "", True,
                                                          ("192.0.2.193/27",))
    assert plan("lan", [OWN], ip.read()) == [], "a second start changes nothing"
    ip.apply("lan", [])
    assert ip.read()["eth2"].ipv4 == ("192.0.2.193/27",), "never removed nor changed"
    subprocess.run(["ip", "-n", netns, "link", "del", "eth2"], check=True)
    with pytest.raises(VlanError, match="VLAN 103: interface eth2 not found"):
        ip.apply("lan", [OWN])


def test_links_makes_keeps_and_removes_its_vlans(netns: str) -> None:
    require_8021q()
    ip = Links(netns)
    ip.apply("lan", [V101, V102])
    found = ip.read()
    for v in (V101, V102):
        link = found[v.interface]
        assert (link.kind, link.parent, link.vlan_id, link.alias, link.up, link.ipv4) == (
            "vlan", "lan", v.id, ALIAS, True, (str(v.address),))
    assert plan("lan", [V101, V102], found) == [], "a second start changes nothing"
    # One made by hand is left alone; ours no longer configured goes.
    subprocess.run(["ip", "-n", netns, "link", "add", "link", "lan", "name", "lan.5", "type",
                    "vlan", "id", "5"], check=True)
    ip.apply("lan", [V101])
    names = {link["ifname"] for link in json.loads(subprocess.run(
        ["ip", "-n", netns, "-j", "link", "show"], capture_output=True, text=True,
        check=True).stdout)}
    assert {"lan.101", "lan.5"} <= names and "lan.102" not in names


def test_links_says_when_the_kernel_cannot_carry_vlans(netns: str) -> None:
    if kernel_has_8021q() is None:
        pytest.skip("this kernel makes 802.1Q interfaces: the message shows only without")
    with pytest.raises(VlanError, match=r"VLAN 101: this kernel cannot make 802.1Q interfaces "
                                        r"\(load the 8021q module\)"):
        Links(netns).apply("lan", [V101])

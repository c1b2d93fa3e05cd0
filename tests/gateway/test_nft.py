"""The nftables table: the script (pure), the client scripts, reading the
kernel's answer back; and in the lab, the paths the data-plane tests do not
take (an old table rebuilt, the portable timeout update)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from passerelle.gateway.nft import (
    PORTAL_CONNS_PER_DEVICE,
    Allowed,
    Element,
    Firewall,
    FirewallPlan,
    NftError,
    NotAllowed,
    allow_script,
    blocked_nets,
    check_plan,
    create_script,
    join_clients,
    limit_stmt,
    normal_mac,
    parse_networks,
    parse_sets,
    revoke_script,
    ruleset,
    timeout_script,
)
from passerelle.gateway.sessions import KERNEL_MAX, kernel_timeout
from passerelle.portal.gunicorn_worker import PER_ADDRESS
from tests.lab import Lab

PLAN = FirewallPlan(lan_if="lan0", wan_if="wan0", box_ipv4="198.51.100.1",
            garden4=("192.0.2.0/28", "192.0.2.5", "192.0.2.16/28"))
MAC = "02:50:00:00:00:10"


def rules(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


# -- the ruleset ------------------------------------------------------------------


def test_ruleset_touches_only_our_table_and_keeps_elements() -> None:
    text = ruleset(PLAN)
    lines = rules(text)
    # Rules are replaced, sets (the clients) kept: flush table, never delete it.
    assert lines[:3] == ["add table inet passerelle", "flush table inet passerelle",
                         "table inet passerelle {"]
    assert "delete table" not in text
    for line in lines:
        if re.match(r"^(add|flush|delete|table)\b", line):
            assert "inet passerelle" in line, line


def test_before_checkin_rules() -> None:
    lines = rules(ruleset(PLAN))
    assert ('iifname "lan0" ip daddr 198.51.100.1 tcp dport 80 '
            'dnat ip to 198.51.100.1:8080') in lines
    # In captive_nat, in this order: checked-in clients leave, DNS (to any
    # address, the box included) goes to the box's captive view, NTP to the
    # box, the garden is left alone, plain HTTP goes to the portal.
    nat = lines[lines.index("chain captive_nat {") + 1:]
    assert nat[:7] == [
        "ether saddr . ip saddr @allowed4 return",
        "ether saddr . ip6 saddr @allowed6 return",
        "meta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 dnat ip to "
        "198.51.100.1:5300",
        "meta nfproto ipv4 udp dport 123 dnat ip to 198.51.100.1:123",
        "ip daddr @garden4 return",
        "ip daddr @garden_dns4 return",
        "tcp dport 80 meta nfproto ipv4 dnat ip to 198.51.100.1:8080",
    ]
    refuse = lines[lines.index("chain refuse {") + 1:][:3]
    assert refuse == ["meta l4proto tcp reject with tcp reset",
                      "meta l4proto udp reject with icmpx port-unreachable",
                      "reject with icmpx admin-prohibited"]
    lan_in = lines[lines.index("chain lan_in {") + 1:][:8]
    # The captive view's rate limit comes first: established queries too.
    assert lan_in[0] == ("meta l4proto { tcp, udp } th dport 5300 update @dns_rate "
                         "{ ether saddr limit rate over 30/second burst 90 packets } drop")
    assert "udp dport { 67, 547 } accept" in lan_in
    assert "meta l4proto { icmp, ipv6-icmp } accept" in lan_in  # ND and RA keep working
    assert "tcp dport { 8080, 8443 } accept" in lan_in


def test_portal_connections_are_capped_per_device_before_they_are_accepted() -> None:
    """Issue 13, finding 5: in lan_in, after the DNAT of port 80 (the portal's
    own ports), a new connection over the cap per client MAC is reset, before
    the portal's ports are accepted; the cap is the worker's per address."""
    plan = dataclasses.replace(PLAN, box_ipv6="2001:db8:1::1", portal_http_port=8081,
                               portal_https_port=8444)
    lines = rules(ruleset(plan))
    assert PORTAL_CONNS_PER_DEVICE == PER_ADDRESS == 32
    assert "set portal_conns { type ether_addr; size 65535; flags dynamic; }" in lines
    lan_in = lines[lines.index("chain lan_in {") + 1:lines.index("chain wan_in {")]
    cap = ("tcp dport { 8081, 8444 } ct state new add @portal_conns "
           "{ ether saddr ct count over 32 } jump refuse")
    assert lan_in.index(cap) + 1 == lan_in.index("tcp dport { 8081, 8444 } accept")
    assert sum("@portal_conns" in line for line in lines) == 1


def test_forward_rules_count_once_and_isolate_clients() -> None:
    lines = rules(ruleset(PLAN))
    fwd = lines[lines.index("chain forward {") + 1:][:4]
    assert fwd[1:] == ['iifname "lan0" oifname "lan0" drop', 'iifname "lan0" jump from_lan',
                       'oifname "lan0" jump to_lan']
    from_lan = lines[lines.index("chain from_lan {") + 1:][:7]
    assert from_lan == ['oifname != "wan0" jump refuse',
                        "ip daddr @private4 jump refuse",
                        "ip6 daddr @private6 jump refuse",
                        "ether saddr . ip saddr @rate_up4 drop",
                        "ether saddr . ip6 saddr @rate_up6 drop",
                        "ether saddr . ip saddr @up4 accept",
                        "ether saddr . ip6 saddr @up6 accept"]
    # Downstream counted by destination, on established traffic only.
    assert "ct state established,related ip daddr @down4 accept" in lines
    # The counting sets are looked up in the forward path only: no double count.
    assert sum("@up4" in line for line in lines) == 1
    assert sum("@down4" in line for line in lines) == 1


def test_captive_ntp_is_answered_by_the_box_or_the_configured_servers() -> None:
    """Never forwarded where the client sent it (issue 13, finding 1)."""
    lines = rules(ruleset(PLAN))
    from_lan = lines[lines.index("chain from_lan {") + 1:lines.index("chain to_lan {")]
    assert not any("123" in line for line in from_lan)
    assert "meta nfproto ipv4 udp dport 123 dnat ip to 198.51.100.1:123" in lines
    plan = dataclasses.replace(PLAN, box_ipv6="2001:db8:1::1",
                               ntp_servers=("2001:db8:ff::123", "192.0.2.123", "192.0.2.124"))
    lines = rules(ruleset(plan))
    assert "meta nfproto ipv4 udp dport 123 dnat ip to 192.0.2.123:123" in lines
    assert "meta nfproto ipv6 udp dport 123 dnat ip6 to [2001:db8:ff::123]:123" in lines
    # Forwarded only as DNAT-ed, and only its answers come back.
    assert "ct status dnat udp dport 123 accept" in lines
    assert "ct status dnat ct state established,related udp sport 123 accept" in lines
    off = ruleset(dataclasses.replace(plan, captive_ntp=False))
    assert "dport 123 dnat" not in off and "ct status dnat" not in off


def test_private_destinations_are_blocked_but_what_the_site_opens() -> None:
    """RFC 1918, 100.64/10, link-local, ULA and the WAN's subnets; minus the
    site's open ranges and the walled garden (issue 13, finding 6)."""
    plan = dataclasses.replace(PLAN, wan_nets=("192.168.1.0/24", "203.0.113.0/24",
                                               "2001:db8:2::/64"),
                               open_private=("10.1.0.0/16", "fd00:1::/64"),
                               garden4=("172.16.5.5/32",))
    assert blocked_nets(plan, 4) == [
        "10.0.0.0/16", "10.2.0.0/15", "10.4.0.0/14", "10.8.0.0/13", "10.16.0.0/12",
        "10.32.0.0/11", "10.64.0.0/10", "10.128.0.0/9", "100.64.0.0/10", "169.254.0.0/16",
        "172.16.0.0/22", "172.16.4.0/24", "172.16.5.0/30", "172.16.5.4/32", "172.16.5.6/31",
        "172.16.5.8/29", "172.16.5.16/28", "172.16.5.32/27", "172.16.5.64/26",
        "172.16.5.128/25", "172.16.6.0/23", "172.16.8.0/21", "172.16.16.0/20",
        "172.16.32.0/19", "172.16.64.0/18", "172.16.128.0/17", "172.17.0.0/16",
        "172.18.0.0/15", "172.20.0.0/14", "172.24.0.0/13", "192.168.0.0/16",
        "203.0.113.0/24"]
    six = blocked_nets(plan, 6)
    assert "2001:db8:2::/64" in six and "fe80::/10" in six and "fd00:1::/64" not in six
    assert blocked_nets(dataclasses.replace(PLAN, open_private=("10.0.0.0/8",)), 4) == [
        "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"]
    lines = rules(ruleset(PLAN))
    assert ("add element inet passerelle private4 { 10.0.0.0/8, 100.64.0.0/10, "
            "169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16 }") in lines
    assert "add element inet passerelle private6 { fc00::/7, fe80::/10 }" in lines


def test_wan_side_takes_replies_dae_from_the_centre_and_named_services() -> None:
    plan = dataclasses.replace(PLAN, dae_clients=("192.0.2.10", "2001:db8::10"),
                               dae_port=3799, wan_open=("tcp/22", "udp/51820", "tcp/2222"))
    lines = rules(ruleset(plan))
    wan_in = lines[lines.index("chain wan_in {") + 1:lines.index("chain refuse {") - 1]
    assert wan_in == [
        "ct state established,related accept",
        "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept",
        "udp sport 67 udp dport 68 accept",
        "udp sport 547 udp dport 546 accept",
        "ip saddr { 192.0.2.10 } udp dport 3799 accept",
        "ip6 saddr { 2001:db8::10 } udp dport 3799 accept",
        "tcp dport { 22, 2222 } accept",
        "udp dport { 51820 } accept",
        "drop",
    ]
    assert 'iifname "wan0" jump wan_in' in lines
    closed = rules(ruleset(dataclasses.replace(PLAN, wan_open=())))
    assert not any("dport 3799" in line or "tcp dport {" in line
                   for line in closed[closed.index("chain wan_in {"):])


def test_parse_networks_reads_global_subnets() -> None:
    listing = [{"ifname": "wan", "addr_info": [
        {"family": "inet", "local": "203.0.113.2", "prefixlen": 24, "scope": "global"},
        {"family": "inet6", "local": "2001:db8:2::2", "prefixlen": 64, "scope": "global"},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]}]
    assert parse_networks(listing) == ("203.0.113.0/24", "2001:db8:2::/64")
    assert parse_networks([]) == ()


def test_masquerade_and_ipv6_follow_the_plan() -> None:
    masq = 'iifname "lan0" oifname "wan0" meta nfproto ipv4 masquerade'
    assert masq in rules(ruleset(PLAN))
    assert masq not in rules(ruleset(dataclasses.replace(PLAN, masquerade=False)))
    assert "dnat ip6" not in ruleset(PLAN)
    six = rules(ruleset(dataclasses.replace(PLAN, box_ipv6="2001:db8:1::1",
                                            garden6=("2001:db8:ff::/64",))))
    assert "tcp dport 80 meta nfproto ipv6 dnat ip6 to [2001:db8:1::1]:8080" in six
    # Port 80 of the box's own IPv6 address (its name's AAAA) is the portal's, for everyone.
    assert ('iifname "lan0" ip6 daddr 2001:db8:1::1 tcp dport 80 dnat ip6 to '
            '[2001:db8:1::1]:8080') in six
    assert "add element inet passerelle garden6 { 2001:db8:ff::/64 }" in six


def test_garden_is_collapsed_for_nft() -> None:
    lines = rules(ruleset(PLAN))
    assert "flush set inet passerelle garden4" in lines
    assert "add element inet passerelle garden4 { 192.0.2.0/27 }" in lines
    assert not any(line.startswith("add element inet passerelle garden6") for line in lines)


@pytest.mark.parametrize(("change", "message"), [
    ({"lan_if": "lan0; flush ruleset"}, "lan_if"),
    ({"wan_if": "lan0"}, "same interface"),
    ({"box_ipv4": "2001:db8::1"}, "IPv4"),
    ({"box_ipv6": "198.51.100.1"}, "IPv6"),
    ({"portal_http_port": 0}, "portal_http_port"),
    ({"garden4": ("2001:db8::/32",)}, "IPv4 network"),
    ({"garden6": ("nonsense",)}, "not a network"),
    ({"captive_dns_port": 53}, "captive_dns_port"),
    ({"captive_dns_port": 8080}, "captive_dns_port"),
    ({"captive_dns_rate": 0}, "captive_dns_rate"),
    ({"open_private": ("10.0.0.0/33",)}, "open_private"),
    ({"ntp_servers": ("pool.ntp.org",)}, "ntp_servers"),
    ({"dae_clients": ("centre",)}, "dae_clients"),
    ({"wan_open": ("ssh",)}, "wan_open"),
    ({"wan_open": ("tcp/70000",)}, "wan_open"),
])
def test_bad_plans_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_plan(dataclasses.replace(PLAN, **change))


# -- clients --------------------------------------------------------------------


def test_allow_script_replaces_every_element_of_the_pair() -> None:
    lines = rules(allow_script("02-50-00-00-00-10", "198.51.100.10", ["2001:db8:1::10"], 90))
    key = f"{MAC} . 198.51.100.10"
    assert lines[:3] == [f"add element inet passerelle allowed4 {{ {key} }}",
                         f"delete element inet passerelle allowed4 {{ {key} }}",
                         f"add element inet passerelle allowed4 {{ {key} timeout 90s }}"]
    added = [line for line in lines if "timeout" in line]
    assert [line.split()[4] for line in added] == ["allowed4", "up4", "down4", "allowed6",
                                                  "up6", "down6"]
    # No cap asked: any old cap is removed, none added.
    assert not any("limit" in line for line in lines)
    assert f"delete element inet passerelle rate_up4 {{ {key} }}" in lines


def test_allow_script_with_caps() -> None:
    lines = rules(allow_script(MAC, "198.51.100.10", [], 90, rate_up=8_000_000,
                               rate_down=None))
    assert (f"add element inet passerelle rate_up4 {{ {MAC} . 198.51.100.10 limit rate over "
            "1000000 bytes/second burst 250000 bytes timeout 90s }") in lines
    assert not any("rate_down4 { 198.51.100.10 limit" in line for line in lines)
    assert limit_stmt(1_000_000) == "limit rate over 125000 bytes/second burst 131072 bytes"
    with pytest.raises(ValueError, match="bandwidth"):
        limit_stmt(0)


def test_revoke_script_is_safe_when_absent() -> None:
    lines = rules(revoke_script(MAC, "198.51.100.10", []))
    assert lines[0] == f"add element inet passerelle allowed4 {{ {MAC} . 198.51.100.10 }}"
    assert lines[1] == f"delete element inet passerelle allowed4 {{ {MAC} . 198.51.100.10 }}"
    assert not any("timeout" in line for line in lines)


@pytest.mark.parametrize(("mac", "ipv4", "timeout", "message"), [
    ("02:50:00:00:00", "198.51.100.10", 10, "MAC"),
    ("02:50:00:00:00:zz", "198.51.100.10", 10, "MAC"),
    (MAC, "198.51.100.300", 10, "IPv4"),
    (MAC, "2001:db8::1", 10, "IPv4"),
    (MAC, "198.51.100.10", 0, "timeout"),
    (MAC, "198.51.100.10", 1.5, "timeout"),
])
def test_bad_client_input(mac: str, ipv4: str, timeout: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        allow_script(mac, ipv4, [], timeout)


def test_normal_mac() -> None:
    assert normal_mac("02-50-00-00-00-1A") == "02:50:00:00:00:1a"
    assert normal_mac("0250.0000.001a") == "02:50:00:00:00:1a"
    with pytest.raises(ValueError):
        normal_mac("02:50:00:00:00:1a:ff")


def test_timeout_script_in_place_and_portable() -> None:
    present = [Element("up4", (MAC, "198.51.100.10"), 50.0, 60.0, 7, 900, counted=True),
               Element("rate_up4", (MAC, "198.51.100.10"), 50.0, 60.0,
                       limit="limit rate over 1000 bytes/second burst 128 kbytes")]
    assert rules(timeout_script(present, 300)) == [
        f"add element inet passerelle up4 {{ {MAC} . 198.51.100.10 timeout 300s expires 300s }}",
        f"add element inet passerelle rate_up4 {{ {MAC} . 198.51.100.10 timeout 300s "
        "expires 300s }"]
    portable = rules(timeout_script(present, 300, in_place=False))
    assert (f"add element inet passerelle up4 {{ {MAC} . 198.51.100.10 counter packets 7 "
            "bytes 900 timeout 300s }") in portable
    assert (f"add element inet passerelle rate_up4 {{ {MAC} . 198.51.100.10 limit rate over "
            "1000 bytes/second burst 128 kbytes timeout 300s }") in portable


def _set(name: str, elems: list[dict[str, object]]) -> dict[str, object]:
    return {"set": {"family": "inet", "name": name, "table": "passerelle", "elem": elems}}


def test_parse_and_join_counts_both_directions_and_families() -> None:
    def elem(val: object, expires: int, packets: int, octets: int) -> dict[str, object]:
        return {"elem": {"val": val, "timeout": 600, "expires": expires,
                         "counter": {"packets": packets, "bytes": octets}}}

    listing = {"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        _set("up4", [elem({"concat": [MAC, "198.51.100.10"]}, 500, 10, 1000)]),
        _set("down4", [elem("198.51.100.10", 500, 20, 20000)]),
        _set("up6", [elem({"concat": [MAC, "2001:db8:1::10"]}, 500, 1, 100)]),
        _set("down6", [elem("2001:db8:1::10", 500, 2, 2000)]),
        _set("garden4", [{"prefix": {"addr": "192.0.2.0", "len": 28}}]),
    ]}
    # Round-trip through JSON text, as nft prints it.
    sets = parse_sets(json.loads(json.dumps(listing)))
    assert "garden4" not in sets
    assert join_clients(sets) == [Allowed(mac=MAC, ipv4="198.51.100.10",
                                          ipv6=("2001:db8:1::10",), expires_in=500.0,
                                          bytes_up=1100, bytes_down=22000, packets_up=11,
                                          packets_down=22)]


# -- in the lab: the paths traffic tests do not take --------------------------------


@pytest.fixture
def fw(lab: Lab) -> Iterator[Firewall]:
    firewall = Firewall(FirewallPlan(lan_if=lab.lan_if, wan_if=lab.wan_if, box_ipv4=lab.box_ipv4),
                        netns=lab.ns["gw"])
    try:
        yield firewall
    finally:
        firewall.remove()


def test_apply_twice_is_the_same_table(lab: Lab, fw: Firewall) -> None:
    fw.apply()
    first = lab.run("gw", "nft", "list", "table", "inet", "passerelle").stdout
    fw.apply()
    assert lab.run("gw", "nft", "list", "table", "inet", "passerelle").stdout == first


def test_an_old_incompatible_table_is_rebuilt_with_its_clients(lab: Lab, fw: Firewall) -> None:
    fw.apply()
    fw.allow(MAC, "198.51.100.10", ["2001:db8:1::10"], 600, rate_down=8_000_000)
    # Give the client some counts, then make the table look like an older
    # version's: a base chain at another priority and a leftover chain.
    fw._script(f"add element inet passerelle up4 {{ {MAC} . 198.51.100.10 }}\n"
               f"delete element inet passerelle up4 {{ {MAC} . 198.51.100.10 }}\n"
               f"add element inet passerelle up4 {{ {MAC} . 198.51.100.10 counter packets 3 "
               "bytes 456 timeout 600s expires 500s }\n"
               "delete chain inet passerelle input\n"
               "add chain inet passerelle input { type filter hook input priority 10; }\n"
               "add chain inet passerelle old_stuff\n")
    fw.apply()
    text = lab.run("gw", "nft", "list", "table", "inet", "passerelle").stdout
    assert "old_stuff" not in text
    assert "type filter hook input priority filter; policy accept;" in text
    [client] = fw.clients()
    assert (client.ipv4, client.ipv6, client.bytes_up, client.packets_up) == (
        "198.51.100.10", ("2001:db8:1::10",), 456, 3)
    assert 490 < client.expires_in <= 500
    rate = lab.run("gw", "nft", "list", "set", "inet", "passerelle", "rate_down4").stdout
    assert "198.51.100.10 limit rate over 1000000 bytes/second" in rate


def test_portable_timeout_update_keeps_counters(lab: Lab, fw: Firewall) -> None:
    fw.apply()
    fw.allow(MAC, "198.51.100.10", [], 60)
    fw._script("add element inet passerelle down4 { 198.51.100.10 }\n"
               "delete element inet passerelle down4 { 198.51.100.10 }\n"
               "add element inet passerelle down4 { 198.51.100.10 counter packets 9 "
               "bytes 9000 timeout 60s }\n")
    present = fw._client_elements(MAC, "198.51.100.10", [])
    fw._script(timeout_script(present, 900, in_place=False))
    [client] = fw.clients()
    assert (client.bytes_down, client.packets_down) == (9000, 9)
    assert client.expires_in > 890
    fw.revoke(MAC, "198.51.100.10")
    with pytest.raises(NotAllowed):
        fw.set_timeout(MAC, "198.51.100.10", [], 10)
    with pytest.raises(NotAllowed):
        fw.set_rates(MAC, "198.51.100.10", [], 1_000_000, None)
    assert fw.clients() == []


def test_create_script_adds_every_element_at_once() -> None:
    script = create_script("02:50:00:00:00:10", "198.51.100.10", ["2001:db8:1::10"], 60)
    lines = script.splitlines()
    assert len(lines) == 6 and all(line.startswith("create element inet passerelle ")
                                   for line in lines)
    assert "allowed4 { 02:50:00:00:00:10 . 198.51.100.10 timeout 60s }" in script
    assert "down6 { 2001:db8:1::10 timeout 60s }" in script
    with pytest.raises(ValueError):
        create_script("02:50:00:00:00:10", "198.51.100.10", (), 0)


def test_allow_twice_replaces_the_entry(lab: Lab) -> None:
    """The second allow of a client finds its elements (create fails) and
    replaces them: counters from zero, the new timeout."""
    fw = Firewall(FirewallPlan(lan_if=lab.lan_if, wan_if=lab.wan_if, box_ipv4=lab.box_ipv4),
                  netns=lab.ns["gw"])
    fw.apply()
    try:
        fw.allow(lab.mac["client"], lab.ipv4["client"], timeout=100)
        fw.allow(lab.mac["client"], lab.ipv4["client"], timeout=50)
        (entry,) = fw.clients()
        assert 45 <= entry.expires_in <= 50
    finally:
        fw.remove()


def test_the_longest_kernel_timeout_is_one_nft_takes(lab: Lab) -> None:
    """A Session-Timeout of years (a person with years of credit) reaches
    the kernel as ``sessions.kernel_timeout`` cuts it, which nft accepts;
    uncut, nft refuses it and the check-in would fail."""
    fw = Firewall(FirewallPlan(lan_if=lab.lan_if, wan_if=lab.wan_if, box_ipv4=lab.box_ipv4),
                  netns=lab.ns["gw"])
    fw.apply()
    try:
        with pytest.raises(NftError):
            fw.allow(lab.mac["client"], lab.ipv4["client"], timeout=10**8)
        fw.allow(lab.mac["client"], lab.ipv4["client"], timeout=kernel_timeout(10**8))
        (entry,) = fw.clients()
        assert entry.expires_in > KERNEL_MAX - 60
    finally:
        fw.remove()

"""The data plane in the lab: real nftables in the box's namespace, real
traffic from the client namespaces to the upstream hosts (tests/lab.py)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from passerelle.gateway.nft import Allowed, Firewall, FirewallPlan, NotAllowed
from tests.lab import Lab

PORTAL = "http://portal.lab/"  # what the portal stub answers (302 Location, and body)

# Connect from a namespace and say how it went: ok / refused / timeout / error.
CONNECT = r"""
import socket, sys, time
host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
t = time.monotonic()
try:
    socket.create_connection((host, port), timeout=wait).close()
    how = "ok"
except ConnectionRefusedError:
    how = "refused"
except (TimeoutError, socket.timeout):
    how = "timeout"
except OSError as exc:
    how = f"error:{exc.errno}"
print(how, time.monotonic() - t)
"""

# A UDP datagram from the client namespace, or a forged frame with scapy.
SEND_UDP = r"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
"""
FORGE = r"""
import sys
from scapy.all import Ether, IP, IPv6, UDP, Raw, sendp
src_mac, dst_mac, src_ip, dst_ip, port, payload = sys.argv[1:7]
net = IPv6(src=src_ip, dst=dst_ip) if ":" in src_ip else IP(src=src_ip, dst=dst_ip)
frame = (Ether(src=src_mac, dst=dst_mac) / net
         / UDP(sport=40000, dport=int(port)) / Raw(payload.encode()))
sendp(frame, iface="eth0", count=3, verbose=False)
"""


@pytest.fixture(scope="module")
def site(lab: Lab) -> Lab:
    """The lab with the internet's hosts and a portal stub on the box."""
    lab.start_internet()
    lab.serve("gw", "http", lab.box_ipv4, 8080, "302", PORTAL)
    lab.serve("gw", "http", lab.box_ipv6, 8080, "302", PORTAL)
    lab.serve("up", "udp", lab.web_ipv4, 9999, str(lab.tmp / "udp.log"))
    lab.serve("up", "udp", lab.web_ipv6, 9999, str(lab.tmp / "udp.log"))
    lab.serve("up", "udp", lab.web_ipv4, 123, str(lab.tmp / "udp.log"))
    return lab


def plan(lab: Lab, **changes: Any) -> FirewallPlan:
    base = FirewallPlan(lan_if=lab.lan_if, wan_if=lab.wan_if, box_ipv4=lab.box_ipv4,
                box_ipv6=lab.box_ipv6, garden4=(f"{lab.garden_ipv4}/32",),
                garden6=(f"{lab.garden_ipv6}/128",))
    return dataclasses.replace(base, **changes)


@pytest.fixture
def fw(site: Lab) -> Iterator[Firewall]:
    firewall = Firewall(plan(site), netns=site.ns["gw"])
    firewall.apply()
    try:
        yield firewall
    finally:
        firewall.remove()


def http(lab: Lab, ns: str, url: str) -> tuple[str, str]:
    """(status code, body) of a GET, or ("000", curl's error) when it failed."""
    out = lab.run(ns, "curl", "-sS", "-m", "3", "-o", "-", "-w", "\n%{http_code}", url,
                  check=False)
    body, _, code = out.stdout.rpartition("\n")
    return code, body.strip() or out.stderr.strip()


def connect(lab: Lab, ns: str, host: str, port: int, wait: float = 2.0) -> tuple[str, float]:
    out = lab.run(ns, sys.executable, "-c", CONNECT, host, str(port), str(wait))
    how, elapsed = out.stdout.split()
    return how, float(elapsed)


def allow(fw: Firewall, lab: Lab, role: str = "client", timeout: int = 600,
          v6: bool = False) -> None:
    fw.allow(lab.mac[role], lab.ipv4[role], [lab.ipv6[role]] if v6 else [], timeout)


def entry(fw: Firewall, lab: Lab, role: str = "client") -> list[Allowed]:
    return [c for c in fw.clients() if c.ipv4 == lab.ipv4[role]]


def test_before_checkin_http_goes_to_the_portal(site: Lab, fw: Firewall) -> None:
    code, body = http(site, "client", f"http://{site.web_ipv4}/")
    assert code == "302"
    assert body == f"{PORTAL} {site.ipv4['client']}"  # the box's stub saw the client itself
    code, body = http(site, "client", f"http://[{site.web_ipv6}]/")
    assert code == "302" and body.startswith(PORTAL)


def test_before_checkin_https_and_the_rest_fail_fast(site: Lab, fw: Firewall) -> None:
    how, elapsed = connect(site, "client", site.web_ipv4, 443)
    assert how == "refused" and elapsed < 0.5  # a TCP reset from the box, no timeout
    start = time.monotonic()
    out = site.run("client", "curl", "-sS", "-m", "5", f"https://{site.web_ipv4}/", check=False)
    assert out.returncode == 7, out.stderr  # curl: could not connect
    assert time.monotonic() - start < 1.0
    how, elapsed = connect(site, "client", site.web_ipv6, 443)
    assert how == "refused" and elapsed < 0.5
    # The box's own services other than DHCP, DNS and the portal are closed to the LAN.
    how, elapsed = connect(site, "client", site.box_ipv4, 22)
    assert how == "refused" and elapsed < 0.5


def test_walled_garden_before_checkin(site: Lab, fw: Firewall) -> None:
    assert http(site, "client", f"http://{site.garden_ipv4}/") == (
        "200", f"upstream {site.wan_ipv4}")
    assert http(site, "client", f"http://[{site.garden_ipv6}]/") == (
        "200", f"upstream {site.ipv6['client']}")  # IPv6 is routed, not masqueraded


def test_captive_ntp_is_not_forwarded_to_the_host(site: Lab) -> None:
    """A captive client's NTP is answered by the box (or the configured
    servers: tests/gateway/test_hardening.py), never forwarded to the host it
    was sent to, where a tunnel could answer; nothing else on UDP gets out."""
    firewall = Firewall(plan(site), netns=site.ns["gw"])
    firewall.apply()
    try:
        site.run("client", sys.executable, "-c", SEND_UDP, site.web_ipv4, "123", "ntp-on")
        site.run("client", sys.executable, "-c", SEND_UDP, site.web_ipv4, "9999", "other-udp")
        firewall = Firewall(plan(site, captive_ntp=False), netns=site.ns["gw"])
        firewall.apply()
        site.run("client", sys.executable, "-c", SEND_UDP, site.web_ipv4, "123", "ntp-off")
        allow(firewall, site)
        site.run("client", sys.executable, "-c", SEND_UDP, site.web_ipv4, "123", "checked-in")
        time.sleep(0.3)
        log = _udp_log(site)
        assert f"{site.wan_ipv4} checked-in" in log
        assert "ntp-on" not in log and "other-udp" not in log and "ntp-off" not in log
    finally:
        firewall.remove()


def test_allow_forwards_with_masquerade_and_revoke_ends_it(site: Lab, fw: Firewall) -> None:
    allow(fw, site, v6=True)
    assert http(site, "client", f"http://{site.web_ipv4}/") == ("200", f"upstream {site.wan_ipv4}")
    assert http(site, "client", f"http://[{site.web_ipv6}]/") == (
        "200", f"upstream {site.ipv6['client']}")
    assert connect(site, "client", site.web_ipv4, 443)[0] == "ok"
    # client2 is not checked in: still captive.
    assert http(site, "client2", f"http://{site.web_ipv4}/")[0] == "302"

    fw.revoke(site.mac["client"], site.ipv4["client"], [site.ipv6["client"]])
    fw.revoke(site.mac["client"], site.ipv4["client"], [site.ipv6["client"]])  # idempotent
    assert entry(fw, site) == []
    assert http(site, "client", f"http://{site.web_ipv4}/")[0] == "302"
    assert connect(site, "client", site.web_ipv4, 443)[0] == "refused"
    assert connect(site, "client", site.web_ipv6, 443)[0] == "refused"


def test_masquerade_off_routes_the_client_address(site: Lab) -> None:
    firewall = Firewall(plan(site, masquerade=False), netns=site.ns["gw"])
    firewall.apply()
    try:
        allow(firewall, site)
        # No NAT: the upstream host sees the client's address, and has no
        # route back to the LAN, so the request gets no answer.
        assert http(site, "client", f"http://{site.web_ipv4}/")[0] == "000"
        site.run("up", "ip", "route", "add", site.lan_net, "via", site.wan_ipv4)
        try:
            assert http(site, "client", f"http://{site.web_ipv4}/") == (
                "200", f"upstream {site.ipv4['client']}")
        finally:
            site.run("up", "ip", "route", "del", site.lan_net)
    finally:
        firewall.remove()


def test_entry_expires_by_itself(site: Lab, fw: Firewall) -> None:
    allow(fw, site, timeout=2)
    assert http(site, "client", f"http://{site.web_ipv4}/")[0] == "200"
    [before] = entry(fw, site)
    assert 0 < before.expires_in <= 2
    time.sleep(2.5)
    assert entry(fw, site) == []
    assert http(site, "client", f"http://{site.web_ipv4}/")[0] == "302"


def test_set_timeout_keeps_counters(site: Lab, fw: Firewall) -> None:
    allow(fw, site, timeout=2)
    assert http(site, "client", f"http://{site.web_ipv4}/")[0] == "200"
    [before] = entry(fw, site)
    assert before.bytes_up > 0 and before.bytes_down > 0
    fw.set_timeout(site.mac["client"], site.ipv4["client"], [], 300)
    [after] = entry(fw, site)
    assert after.expires_in > 200
    assert (after.bytes_up, after.bytes_down) == (before.bytes_up, before.bytes_down)
    time.sleep(2.5)  # past the first timeout: still allowed
    assert http(site, "client", f"http://{site.web_ipv4}/")[0] == "200"
    with pytest.raises(NotAllowed):
        fw.set_timeout(site.mac["client2"], site.ipv4["client2"], [], 300)


def test_reapply_keeps_clients_counters_and_timeouts(site: Lab, fw: Firewall) -> None:
    allow(fw, site, timeout=600, v6=True)
    assert http(site, "client", f"http://{site.web_ipv4}/")[0] == "200"
    [before] = entry(fw, site)
    fw.apply()
    Firewall(plan(site, portal_https_port=9443), netns=site.ns["gw"]).apply()  # a new plan
    fw.apply()
    [after] = entry(fw, site)
    assert after.ipv6 == (site.ipv6["client"],)
    assert (after.bytes_up, after.packets_up) == (before.bytes_up, before.packets_up)
    assert (after.bytes_down, after.packets_down) == (before.bytes_down, before.packets_down)
    assert 590 < after.expires_in <= before.expires_in
    assert http(site, "client", f"http://{site.web_ipv4}/")[0] == "200"


def test_allow_again_starts_a_new_session(site: Lab, fw: Firewall) -> None:
    allow(fw, site)
    assert http(site, "client", f"http://{site.web_ipv4}/")[0] == "200"
    assert entry(fw, site)[0].bytes_up > 0
    allow(fw, site, timeout=100)
    [fresh] = entry(fw, site)
    assert (fresh.bytes_up, fresh.bytes_down, fresh.packets_up) == (0, 0, 0)
    assert fresh.expires_in <= 100


def _iperf(lab: Lab, *args: str) -> tuple[int, int]:
    """(bytes sent, bytes received) of one 32 MiB iperf3 transfer.

    iperf3 stops the receiver at the end of the test, which can discard what
    is still in the socket buffers; a 64 KiB window keeps that (the gap
    between sent and received) well under 1 % of the transfer."""
    out = lab.run("client", "iperf3", "-c", lab.web_ipv4, "-n", "32M", "-w", "64K", "-J",
                  *args, timeout=60)
    end = json.loads(out.stdout)["end"]
    return int(end["sum_sent"]["bytes"]), int(end["sum_received"]["bytes"])


# Every forwarded TCP packet of iperf3 carries 20 octets of IPv4 header and 32
# of TCP header (20 + the 12-octet timestamp option Linux uses by default).
HEADERS = 52


def test_counters_match_iperf3_both_ways(site: Lab, fw: Firewall) -> None:
    """The set counters count IP-layer octets per kernel packet; iperf3 reports
    TCP payload. Like with like: payload = counted octets - packets x headers
    (exact even when GSO/GRO hands the box 64 KiB packets: one header each)."""
    allow(fw, site)
    [c0] = entry(fw, site)
    sent_up = _iperf(site)
    [c1] = entry(fw, site)
    sent_down = _iperf(site, "-R")
    [c2] = entry(fw, site)

    payload_up = (c1.bytes_up - c0.bytes_up) - (c1.packets_up - c0.packets_up) * HEADERS
    for moved in sent_up:
        assert abs(payload_up - moved) <= 0.01 * moved, (payload_up, sent_up)
    # Upload: what comes back is ACKs and iperf3's control messages, no bulk.
    assert c1.bytes_down - c0.bytes_down < 0.05 * sent_up[0]

    payload_down = (c2.bytes_down - c1.bytes_down) - (c2.packets_down - c1.packets_down) * HEADERS
    for moved in sent_down:
        assert abs(payload_down - moved) <= 0.01 * moved, (payload_down, sent_down)
    assert c2.bytes_up - c1.bytes_up < 0.05 * sent_down[0]


def _udp_log(lab: Lab) -> str:
    path = lab.tmp / "udp.log"
    return path.read_text() if path.exists() else ""


def test_forged_source_gets_nothing_through(site: Lab, fw: Firewall) -> None:
    """client2 sends frames with client's IPv4 or IPv6 address and its own MAC
    (scapy): nothing reaches the internet, and client's counters do not move."""
    allow(fw, site, v6=True)
    site.run("client", sys.executable, "-c", SEND_UDP, site.web_ipv4, "9999", "genuine4")
    site.run("client", sys.executable, "-c", SEND_UDP, site.web_ipv6, "9999", "genuine6")
    box_mac = site.run("gw", "cat", f"/sys/class/net/{site.lan_if}/address").stdout.strip()
    [before] = entry(fw, site)
    for src, dst in ((site.ipv4["client"], site.web_ipv4),
                     (site.ipv6["client"], site.web_ipv6)):
        site.run("client2", sys.executable, "-c", FORGE, site.mac["client2"], box_mac,
                 src, dst, "9999", "forged")
    time.sleep(0.5)
    log = _udp_log(site)
    assert f"{site.wan_ipv4} genuine4" in log
    assert f"{site.ipv6['client']} genuine6" in log
    assert "forged" not in log
    [after] = entry(fw, site)
    assert (after.packets_up, after.bytes_up) == (before.packets_up, before.bytes_up)


def test_client_to_client_through_the_box_is_dropped(site: Lab, fw: Firewall) -> None:
    allow(fw, site)
    allow(fw, site, "client2")
    site.serve("client2", "tcp", site.ipv4["client2"], 7000)
    # Directly on the switch it works (the AP's isolation is not the box's job) ...
    assert connect(site, "client", site.ipv4["client2"], 7000)[0] == "ok"
    # ... through the box it does not. No ICMP redirect may teach the client the short way.
    site.run("client", "sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0",
             "net.ipv4.conf.eth0.accept_redirects=0")
    site.run("client", "ip", "route", "add", f"{site.ipv4['client2']}/32", "via", site.box_ipv4)
    try:
        assert connect(site, "client", site.ipv4["client2"], 7000, wait=1.0)[0] == "timeout"
    finally:
        site.run("client", "ip", "route", "del", f"{site.ipv4['client2']}/32")


def test_only_our_table_and_the_box_untouched(site: Lab) -> None:
    """Other tables are left as they are; the box's own traffic on the WAN
    (SSH, the DAE port) still works with the table in place."""
    site.run("gw", "nft", "add table inet other; add chain inet other c; "
             "add rule inet other c counter accept")
    other = site.run("gw", "nft", "list", "table", "inet", "other").stdout
    site.serve("gw", "tcp", site.wan_ipv4, 22)
    firewall = Firewall(plan(site), netns=site.ns["gw"])
    try:
        firewall.apply()
        firewall.apply()
        assert connect(site, "up", site.wan_ipv4, 22)[0] == "ok"
        assert http(site, "gw", f"http://{site.web_ipv4}/") == ("200", f"upstream {site.wan_ipv4}")
        firewall.remove()
        firewall.remove()  # idempotent
        assert not firewall.exists()
        assert site.run("gw", "nft", "list", "table", "inet", "other").stdout == other
    finally:
        firewall.remove()
        site.run("gw", "nft", "delete table inet other")


def _moved(lab: Lab, fw: Firewall, *args: str) -> tuple[int, float]:
    """(octets the box forwarded to the server, or with -R to the client;
    seconds) for a 3-second iperf3 run, from the set counters."""
    field = "bytes_down" if "-R" in args else "bytes_up"
    [before] = entry(fw, lab)
    start = time.monotonic()
    lab.run("client", "iperf3", "-c", lab.web_ipv4, "-t", "3", *args, timeout=30)
    elapsed = time.monotonic() - start
    [after] = entry(fw, lab)
    return getattr(after, field) - getattr(before, field), elapsed


def _within_cap(moved: tuple[int, float], bits: int) -> bool:
    """A policer lets through at most its rate over the time, plus its bucket:
    nft's starts full with one second of the rate plus the burst (2 s: margin
    for the burst and a loaded machine). And TCP under it still gets a fair
    share of the rate."""
    octets, seconds = moved
    return 0.3 * bits / 8 * seconds < octets < bits / 8 * (seconds + 2)


def test_bandwidth_caps_per_client(site: Lab, fw: Firewall) -> None:
    """WISPr Bandwidth-Max-Up/Down (bit/s) as per-element policers."""
    up, down = 8_000_000, 16_000_000
    fw.allow(site.mac["client"], site.ipv4["client"], [], 600, rate_up=up, rate_down=down)
    assert _within_cap(_moved(site, fw), up)
    assert _within_cap(_moved(site, fw, "-R"), down)
    # A new Session-Timeout keeps the caps; lifting them (CoA) frees the client.
    fw.set_timeout(site.mac["client"], site.ipv4["client"], [], 300)
    listing = site.run("gw", "nft", "list", "set", "inet", "passerelle", "rate_down4").stdout
    assert "limit rate over 2000000 bytes/second" in listing and "expires 4m" in listing
    fw.set_rates(site.mac["client"], site.ipv4["client"], [], None, None)
    octets, seconds = _moved(site, fw, "-R")
    assert octets > 10 * down / 8 * seconds
    assert entry(fw, site)[0].expires_in > 250  # the session itself is untouched

"""The box's data plane against a hostile client (docs/security.md): in the
lab, real nftables and the real dnsmasq on the box, a client that has not
checked in trying every way out, and the same client once checked in.

The upstream namespace plays the internet (192.0.2.0/24, 203.0.113.0/24,
2001:db8::/32: documentation ranges, public for the box) and, for these
tests, a private network beside it (10.99.0.1 and fd99::1 on its loopback:
the site's own LAN or its firewall's admin page).
"""

from __future__ import annotations

import dataclasses
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from passerelle.gateway.dnsmasq import DhcpPlan, Dnsmasq
from passerelle.gateway.nft import PORTAL_CONNS_PER_DEVICE, Firewall, FirewallPlan
from tests.lab import Lab

PORTAL = "http://portal.lab/"
API = "https://portal.lab:8443/api/captive"
PRIVATE4, PRIVATE6 = "10.99.0.1", "fd99::1"
RANDOM_NAME = "x7f3k.example.net"

# A UDP echo: answers each datagram with "echo <its own address> <payload>".
ECHO = r"""
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(b"echo " + addr.encode() + b" " + data, peer)
"""

# One datagram (optionally from a given source address), then the first
# answer within a second: prints it, or "nothing".
ASK_UDP = r"""
import socket, sys
host, port, payload, source = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
if source != "-":
    s.bind((source, 0))
s.settimeout(1)
s.sendto(payload.encode(), (host, port))
try:
    print(s.recvfrom(65535)[0].decode(errors="replace"))
except (TimeoutError, ConnectionRefusedError, OSError):
    print("nothing")
"""

# The internet's DNS: logs "<qname> <qtype>" per query to a file, answers
# A from the records given as name=address (anything else: 192.0.2.80),
# every other type with an empty answer.
UPSTREAM_DNS = r"""
import socket, struct, sys
addr, log, records = sys.argv[1], sys.argv[2], dict(a.split("=") for a in sys.argv[3:])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, 53))
print("ready", flush=True)
with open(log, "a") as out:
    while True:
        data, peer = s.recvfrom(4096)
        pos, labels = 12, []
        while data[pos]:
            labels.append(data[pos + 1:pos + 1 + data[pos]].decode()); pos += data[pos] + 1
        qtype = struct.unpack("!H", data[pos + 1:pos + 3])[0]
        question = data[12:pos + 5]
        name = ".".join(labels).lower()
        out.write(f"{name} {qtype}\n"); out.flush()
        answer = b""
        if qtype == 1:
            answer = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4)
                      + socket.inet_aton(records.get(name, "192.0.2.80")))
        head = struct.pack("!HHHHHH", struct.unpack("!H", data[:2])[0], 0x8180, 1,
                           1 if answer else 0, 0, 0)
        s.sendto(head + question + answer, peer)
"""

# DNS from a client: COUNT queries for NAME (type QTYPE) to SERVER:53 sent at
# once from one socket; prints "answered=<n> rcode=<first rcode> <A addresses>",
# or with FLOOD "answered=<n> seconds=<from the first query to the last answer>".
ASK_DNS = r"""
import random, socket, struct, sys, time
server, name, qtype, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
ids = random.sample(range(65536), count)
start = last = time.monotonic()
for qid in ids:
    s.sendto(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname
             + struct.pack("!HH", qtype, 1), (server, 53))
answers, deadline = {}, time.monotonic() + (1.5 if count > 1 else 2)
while time.monotonic() < deadline:
    s.settimeout(max(deadline - time.monotonic(), 0.01))
    try:
        data = s.recv(4096)
    except (TimeoutError, socket.timeout):
        break
    qid = struct.unpack("!H", data[:2])[0]
    if qid in ids and qid not in answers:
        answers[qid] = data
        last = time.monotonic()
if count > 1:
    print(f"answered={len(answers)} seconds={last - start:.3f}"); sys.exit()
if not answers:
    print("answered=0"); sys.exit()
data = next(iter(answers.values()))
flags, _qd, an = struct.unpack("!HHH", data[2:8])
pos = 12 + len(qname) + 4
addrs = []
for _ in range(an):
    pos += 2  # a compressed name: dnsmasq and the stub always compress
    rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", data[pos:pos + 10])
    pos += 10
    if rtype == 1:
        addrs.append(socket.inet_ntoa(data[pos:pos + 4]))
    pos += rdlen
print(f"answered={len(answers)} rcode={flags & 15}", *addrs)
"""

# An ICMP echo request; prints "reply" or "nothing" (no ping on the lab hosts).
PING = r"""
import os, socket, struct, sys
host = sys.argv[1]
six = ":" in host
s = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_RAW,
                  socket.IPPROTO_ICMPV6 if six else socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF
body = struct.pack("!HH", ident, 1) + b"passerelle"
kind = 128 if six else 8
head = struct.pack("!BBH", kind, 0, 0) + body
if not six:  # the kernel sums ICMPv6 itself
    total = sum(struct.unpack(f"!{len(head) // 2}H", head))
    total = (total >> 16) + (total & 0xFFFF)
    head = struct.pack("!BBH", kind, 0, ~(total + (total >> 16)) & 0xFFFF) + body
s.settimeout(1)
s.sendto(head, (host, 0))
try:
    while True:
        data = s.recv(2048)
        icmp = data if six else data[(data[0] & 15) * 4:]
        if icmp[0] == (129 if six else 0) and struct.unpack("!H", icmp[4:6])[0] == ident:
            print("reply"); break
except (TimeoutError, socket.timeout):
    print("nothing")
"""

CONNECT = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
    print("ok")
except ConnectionRefusedError:
    print("refused")
except (TimeoutError, socket.timeout):
    print("timeout")
except OSError as exc:
    print(f"error:{exc.errno}")
"""

# Connections held open: one per "source,host,port" argument, made in turn
# (at most 2 s each); prints "ok=<n> reset=<n> timeout=<n>", then keeps the
# open ones until its standard input closes.
HOLD = r"""
import socket, sys
held, seen = [], {"ok": 0, "reset": 0, "timeout": 0}
for target in sys.argv[1:]:
    source, host, port = target.split(",")
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.bind((source, 0))
    s.settimeout(2)
    try:
        s.connect((host, int(port)))
        held.append(s); seen["ok"] += 1
    except ConnectionRefusedError:
        s.close(); seen["reset"] += 1
    except (TimeoutError, socket.timeout):
        s.close(); seen["timeout"] += 1
print(" ".join(f"{k}={v}" for k, v in seen.items()), flush=True)
sys.stdin.read()
"""


def start(lab: Lab, ns: str, script: str, *args: str) -> subprocess.Popen[str]:
    """One of the scripts above as a server in ``ns``, once it is ready."""
    proc = lab.popen(ns, sys.executable, "-c", script, *args, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    assert ready and proc.stdout.readline().strip() == "ready", f"{args} did not start"
    return proc


def py(lab: Lab, ns: str, script: str, *args: str) -> str:
    return lab.run(ns, sys.executable, "-c", script, *args, timeout=30).stdout.strip()


def udp(lab: Lab, ns: str, host: str, port: int, payload: str, source: str = "-") -> str:
    return py(lab, ns, ASK_UDP, host, str(port), payload, source)


def dns(lab: Lab, ns: str, server: str, name: str, qtype: int = 1, count: int = 1) -> str:
    return py(lab, ns, ASK_DNS, server, name, str(qtype), str(count))


def http(lab: Lab, ns: str, url: str) -> str:
    """The status code of a GET ("000": no connection)."""
    return lab.run(ns, "curl", "-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", url,
                   check=False).stdout


def connect(lab: Lab, ns: str, host: str, port: int) -> str:
    return py(lab, ns, CONNECT, host, str(port))


def upstream_queries(lab: Lab) -> list[str]:
    path = lab.tmp / "upstream-dns.log"
    return path.read_text().splitlines() if path.exists() else []


def base_plan(lab: Lab) -> FirewallPlan:
    return FirewallPlan(lan_if=lab.lan_if, wan_if=lab.wan_if, box_ipv4=lab.box_ipv4,
                box_ipv6=lab.box_ipv6, garden4=(f"{lab.garden_ipv4}/32",),
                garden6=(f"{lab.garden_ipv6}/128",))


@pytest.fixture(scope="module")
def site(lab: Lab) -> Lab:
    """The internet's hosts (HTTP on every upstream address, a UDP echo on
    port 123, a DNS server that counts queries), a private network upstream,
    and the portal stub on the box."""
    lab.start_internet()
    for addr in (lab.web_ipv4, lab.web_ipv6):
        start(lab, "up", ECHO, addr, "123")
    start(lab, "up", UPSTREAM_DNS, lab.up_ipv4, str(lab.tmp / "upstream-dns.log"),
          f"garden.example={lab.garden_ipv4}")
    lab.run("up", "ip", "addr", "add", f"{PRIVATE4}/32", "dev", "lo")
    lab.run("up", "ip", "addr", "add", f"{PRIVATE6}/128", "dev", "lo")
    lab.serve("gw", "http", lab.box_ipv4, 8080, "302", PORTAL)
    lab.serve("gw", "http", lab.box_ipv6, 8080, "302", PORTAL)
    return lab


@pytest.fixture(scope="module")
def resolver(site: Lab) -> Iterator[Dnsmasq]:
    """The box's dnsmasq, forwarding to the internet's DNS server."""
    plan = DhcpPlan(lan_if=site.lan_if, box_ipv4=site.box_ipv4, range_start="198.51.100.100",
                    range_end="198.51.100.150", netmask="255.255.255.0",
                    portal_api_url=API, garden_domains=("garden.example",),
                    upstream_dns=(site.up_ipv4,))  # no RA: the clients keep their IPv6
    dnsmasq = Dnsmasq(plan, site.tmp / "box", netns=site.ns["gw"])
    dnsmasq.start()
    try:
        yield dnsmasq
    finally:
        dnsmasq.stop()


def firewall(lab: Lab, **changes: Any) -> Firewall:
    fw = Firewall(dataclasses.replace(base_plan(lab), **changes), netns=lab.ns["gw"])
    fw.apply()
    return fw


@pytest.fixture
def fw(site: Lab, resolver: Dnsmasq) -> Iterator[Firewall]:
    table = firewall(site)
    try:
        yield table
    finally:
        table.remove()


def check_in(fw: Firewall, lab: Lab, role: str = "client") -> None:
    fw.allow(lab.mac[role], lab.ipv4[role], [lab.ipv6[role]], 600)


# -- 1. nothing but the box before check-in ------------------------------------------


def test_captive_ntp_reaches_no_internet_host(site: Lab, fw: Firewall) -> None:
    """A VPN on UDP/123 is not free internet: before check-in the echo upstream
    never answers, over IPv4 or IPv6; after check-in it does."""
    for host in (site.web_ipv4, site.web_ipv6):
        assert udp(site, "client", host, 123, "tunnel") == "nothing", host
    check_in(fw, site)
    assert udp(site, "client", site.web_ipv4, 123, "ntp") == f"echo {site.web_ipv4} ntp"
    assert udp(site, "client", site.web_ipv6, 123, "ntp") == f"echo {site.web_ipv6} ntp"


def test_captive_ntp_goes_to_the_configured_server(site: Lab, resolver: Dnsmasq) -> None:
    """With NTP servers configured, a captive client's NTP to any address is
    answered by them (DNAT): the clock can be set, nothing else gets out."""
    table = firewall(site, ntp_servers=(site.web_ipv4, site.web_ipv6))
    try:
        assert udp(site, "client", site.up_ipv4, 123, "t") == f"echo {site.web_ipv4} t"
        assert udp(site, "client", "192.0.2.99", 123, "t") == f"echo {site.web_ipv4} t"
        assert udp(site, "client", site.up_ipv6, 123, "t") == f"echo {site.web_ipv6} t"
    finally:
        table.remove()


SWEEP = ("tcp 22", "tcp 443", "tcp 8080", "udp 53", "udp 123", "udp 51820", "icmp")


def test_captive_sweep_reaches_nothing_but_the_box(site: Lab, fw: Firewall) -> None:
    """Every port and protocol a tunnel could use, over IPv4 and IPv6, from a
    captive client to an internet host: nothing arrives there (counted by
    nftables in the upstream namespace), while DNS from the box and the
    portal answer."""
    site.run("up", "nft", f"add table inet probe; add chain inet probe c {{ type filter hook "
             f"prerouting priority -300; }}; add rule inet probe c iifname eth0 ip daddr "
             f"{site.web_ipv4} counter; add rule inet probe c iifname eth0 ip6 daddr "
             f"{site.web_ipv6} counter")
    try:
        for host in (site.web_ipv4, site.web_ipv6):
            for probe in SWEEP:
                kind, _, port = probe.partition(" ")
                if kind == "tcp":
                    assert connect(site, "client", host, int(port)) != "ok", (host, probe)
                elif kind == "udp" and port == "53":
                    # Another resolver: the box answers in its place.
                    assert dns(site, "client", host, "portal.lab") == (
                        f"answered=1 rcode=0 {site.box_ipv4}"), host
                elif kind == "udp":
                    assert udp(site, "client", host, int(port), "x") == "nothing", (host, probe)
                else:
                    assert py(site, "client", PING, host) == "nothing", host
        counted = site.run("up", "nft", "list", "table", "inet", "probe").stdout
        assert counted.count("counter packets 0 bytes 0") == 2, counted
    finally:
        site.run("up", "nft", "delete table inet probe")
    assert dns(site, "client", site.box_ipv4, "portal.lab") == (
        f"answered=1 rcode=0 {site.box_ipv4}")
    assert http(site, "client", f"http://{site.web_ipv4}/") == "302"
    assert http(site, "client", f"http://[{site.web_ipv6}]/") == "302"


# -- 2. no DNS tunnel before check-in ---------------------------------------------------


def test_captive_dns_keeps_other_names_on_the_box(site: Lab, fw: Firewall) -> None:
    """A random name (any type) never reaches the internet's DNS before
    check-in: its address is the box's, which leads to the portal. The OS
    probes and the walled garden resolve for real. After check-in, the same
    random name resolves upstream."""
    before = len(upstream_queries(site))
    assert dns(site, "client", site.box_ipv4, RANDOM_NAME) == f"answered=1 rcode=0 {site.box_ipv4}"
    dns(site, "client", site.box_ipv4, f"data.{RANDOM_NAME}", qtype=16)  # TXT
    dns(site, "client", site.box_ipv4, f"more.{RANDOM_NAME}", qtype=28)  # AAAA
    dns(site, "client", site.up_ipv4, f"direct.{RANDOM_NAME}")  # another resolver
    assert dns(site, "client", site.box_ipv4, "captive.apple.com") == (
        f"answered=1 rcode=0 {site.web_ipv4}")
    assert dns(site, "client", site.box_ipv4, "garden.example") == (
        f"answered=1 rcode=0 {site.garden_ipv4}")
    seen = upstream_queries(site)[before:]
    assert not [q for q in seen if RANDOM_NAME in q], seen
    assert "captive.apple.com 1" in seen and "garden.example 1" in seen

    check_in(fw, site)
    assert dns(site, "client", site.box_ipv4, RANDOM_NAME) == f"answered=1 rcode=0 {site.web_ipv4}"
    assert f"{RANDOM_NAME} 1" in upstream_queries(site)[before:]


def test_captive_dns_flood_is_limited_per_client(site: Lab, fw: Firewall) -> None:
    """400 queries at once from one captive client: no more are answered than
    the limit lets through (its burst, then its rate), and another client is
    still served."""
    out = dns(site, "client", site.box_ipv4, RANDOM_NAME, count=400)
    answered, seconds = (float(field.split("=")[1]) for field in out.split())
    rate = 30  # the plan's default captive_dns_rate, queries per second (burst: 3 s)
    assert 0 < answered <= 3 * rate + rate * seconds + 5 and answered < 250, out
    assert dns(site, "client2", site.box_ipv4, RANDOM_NAME).startswith("answered=1 rcode=0")


# -- 5. the portal: connections per device -----------------------------------------


def test_one_device_gets_its_share_of_the_portal_whatever_its_addresses(
        site: Lab, fw: Firewall) -> None:
    """One MAC with three IPv4 and three IPv6 addresses opens 60 connections
    to the portal (port 80 DNAT-ed, its HTTP and HTTPS ports, both families): the
    kernel lets the cap through and resets the rest, whatever the source
    address; another device still gets the portal at once; once the first
    lets go, it is served again."""
    extra4, extra6 = ("198.51.100.20", "198.51.100.21"), ("2001:db8:1::20", "2001:db8:1::21")
    # The HTTPS port held by a plain listener: the kernel sees only TCP.
    https = [site.serve("gw", "http", box, 8443, "200", "tls") for box in
             (site.box_ipv4, site.box_ipv6)]
    for addr in (*(f"{a}/24" for a in extra4), *(f"{a}/64" for a in extra6)):
        site.run("client", "ip", "addr", "add", addr, "dev", "eth0")
    try:
        targets = []
        for source in (site.ipv4["client"], *extra4, site.ipv6["client"], *extra6):
            box = site.box_ipv4 if ":" not in source else site.box_ipv6
            targets += [f"{source},{box},{(80, 8080, 8443)[i % 3]}" for i in range(10)]
        hold = site.popen("client", sys.executable, "-c", HOLD, *targets,
                          stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert hold.stdout is not None and hold.stdin is not None
        ready, _, _ = select.select([hold.stdout], [], [], 60)
        seen = hold.stdout.readline().strip() if ready else "no answer"
        cap = PORTAL_CONNS_PER_DEVICE
        try:
            assert seen == f"ok={cap} reset={len(targets) - cap} timeout=0", seen
            started = time.monotonic()
            assert http(site, "client2", f"http://{site.box_ipv4}/") == "302"
            assert http(site, "client2", f"http://[{site.web_ipv6}]/") == "302"  # an OS probe
            assert time.monotonic() - started < 2
            assert http(site, "client", f"http://{site.box_ipv4}/") == "000"
        finally:
            hold.stdin.close()
            hold.wait(timeout=10)
        # Closed connections stop counting as conntrack sees them close.
        deadline = time.monotonic() + 5
        while http(site, "client", f"http://{site.box_ipv4}/") != "302":
            assert time.monotonic() < deadline, "the device is still over its cap"
            time.sleep(0.2)
    finally:
        for addr in (*(f"{a}/24" for a in extra4), *(f"{a}/64" for a in extra6)):
            site.run("client", "ip", "addr", "del", addr, "dev", "eth0", check=False)
        for proc in https:
            proc.kill()
            proc.wait(timeout=10)


# -- 6. no private network upstream; nothing in from the WAN ------------------------


def test_checked_in_clients_reach_no_private_network_upstream(site: Lab, fw: Firewall) -> None:
    check_in(fw, site)
    assert http(site, "client", f"http://{site.web_ipv4}/") == "200"
    assert http(site, "client", f"http://[{site.web_ipv6}]/") == "200"
    assert http(site, "client", f"http://{PRIVATE4}/") == "000"
    assert http(site, "client", f"http://[{PRIVATE6}]/") == "000"
    # The WAN's own subnet: the site's router and its neighbours.
    assert http(site, "client", f"http://{site.up_ipv4}/") == "000"
    assert http(site, "client", f"http://[{site.up_ipv6}]/") == "000"


def test_a_listed_private_range_is_reachable(site: Lab, resolver: Dnsmasq) -> None:
    table = firewall(site, open_private=("10.99.0.0/24",))
    try:
        check_in(table, site)
        assert http(site, "client", f"http://{PRIVATE4}/") == "200"
        assert http(site, "client", f"http://[{PRIVATE6}]/") == "000"
    finally:
        table.remove()


def test_wan_side_reaches_the_box_only_for_replies_and_dae(site: Lab, fw: Firewall) -> None:
    """A service of the box listening on every address is closed to the WAN;
    the box's own traffic out (its answers come back) still works."""
    site.serve("gw", "tcp", "0.0.0.0", 7777)
    assert connect(site, "up", site.wan_ipv4, 7777) == "timeout"
    assert connect(site, "up", site.wan_ipv6, 7777) == "timeout"
    assert connect(site, "client", site.box_ipv4, 7777) == "refused"
    assert http(site, "gw", f"http://{site.web_ipv4}/") == "200"


def test_dae_only_from_the_centre(site: Lab, resolver: Dnsmasq) -> None:
    table = firewall(site, dae_clients=(site.web_ipv4,), dae_port=3799, wan_open=("tcp/22",))
    try:
        start(site, "gw", ECHO, site.wan_ipv4, "3799")
        assert udp(site, "up", site.wan_ipv4, 3799, "dae", site.web_ipv4) == (
            f"echo {site.wan_ipv4} dae")
        assert udp(site, "up", site.wan_ipv4, 3799, "dae", site.garden_ipv4) == "nothing"
        site.serve("gw", "tcp", site.wan_ipv4, 22)
        assert connect(site, "up", site.wan_ipv4, 22) == "ok"  # named in wan_open
    finally:
        table.remove()

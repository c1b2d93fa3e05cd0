"""dnsmasq: the configuration it gets (pure), and in the lab a real dnsmasq on
the box serving a real dhclient, DNS and the walled garden's nftables set."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from passerelle.gateway import ra
from passerelle.gateway.dnsmasq import (
    DhcpPlan,
    Dnsmasq,
    DnsmasqError,
    Lease,
    parse_leases,
    parse_resolv_conf,
    portal_host,
    render,
    render_captive,
)
from passerelle.gateway.nft import Firewall, FirewallPlan
from tests.lab import Lab
from tests.nd import ASK_RA, HEAR_RA
from tests.need import stop

API = "https://portal.lab:8443/api/captive"
PLAN = DhcpPlan(lan_if="lan", box_ipv4="198.51.100.1", range_start="198.51.100.100",
                range_end="198.51.100.150", netmask="255.255.255.0", lease_seconds=600,
                portal_api_url=API, garden_domains=("garden.example", "idp.example."),
                upstream_dns=("203.0.113.1",), state_dir="/var/lib/passerelle")


def lines(text: str) -> set[str]:
    return set(text.splitlines())


# -- pure: the configuration ---------------------------------------------------


def test_render_serves_the_lan_only_with_its_own_files() -> None:
    conf = lines(render(PLAN))
    assert {"interface=lan", "except-interface=lo", "bind-dynamic",
            "dhcp-leasefile=/var/lib/passerelle/dnsmasq.leases",
            "pid-file=/var/lib/passerelle/dnsmasq.pid",
            "dhcp-range=lan,198.51.100.100,198.51.100.150,255.255.255.0,600",
            "dhcp-option=option:router,198.51.100.1",
            "dhcp-option=option:dns-server,198.51.100.1"} <= conf
    assert not any(line.startswith(("conf-dir", "conf-file", "addn-hosts")) for line in conf)


def test_render_captive_portal_options_and_host() -> None:
    conf = lines(render(PLAN))
    assert f'dhcp-option=114,"{API}"' in conf
    assert "host-record=portal.lab,198.51.100.1" in conf  # RFC 8910: a name, not a literal
    assert not any("option6" in line or "enable-ra" in line for line in conf)
    six = lines(render(DhcpPlan(**{**PLAN.__dict__, "box_ipv6": "2001:db8:1::1"})))
    assert {f'dhcp-option=option6:103,"{API}"',
            "dhcp-range=lan,::,constructor:lan,static,64,600",
            "host-record=portal.lab,198.51.100.1,2001:db8:1::1"} <= six
    # The box sends the router advertisements itself (gateway/ra.py): option 37.
    assert not any(line == "enable-ra" or ",ra-" in line for line in six)
    assert "host-record=portal.lab,198.51.100.1" not in six
    captive6 = lines(render_captive(DhcpPlan(**{**PLAN.__dict__, "box_ipv6": "2001:db8:1::1"}),
                                    ("203.0.113.1",)))
    assert {"address=/#/198.51.100.1", "address=/#/2001:db8:1::1",
            "host-record=portal.lab,198.51.100.1,2001:db8:1::1"} <= captive6
    assert portal_host("https://198.51.100.1:8443/api") is None
    assert not any(line.startswith("dhcp-option=114") for line in
                   lines(render(DhcpPlan(**{**PLAN.__dict__, "portal_api_url": ""}))))


def test_render_upstream_servers_or_resolv_conf() -> None:
    conf = lines(render(PLAN))
    assert {"no-resolv", "server=203.0.113.1"} <= conf
    default = lines(render(DhcpPlan(**{**PLAN.__dict__, "upstream_dns": ()})))
    assert "resolv-file=/etc/resolv.conf" in default and "no-resolv" not in default


def test_render_garden_domains_feed_the_nft_sets() -> None:
    assert ("nftset=/garden.example/idp.example/4#inet#passerelle#garden_dns4,"
            "6#inet#passerelle#garden_dns6") in lines(render(PLAN))
    bare = render(DhcpPlan(**{**PLAN.__dict__, "garden_domains": ()}))
    assert "nftset" not in bare


def test_render_captive_forwards_only_the_allowed_names() -> None:
    """The captive view (issue 13, finding 2): no default server, every other
    name answered with the box's address; the portal's, the OS probes' and
    the garden's names forwarded to the upstream servers given."""
    text = render_captive(PLAN, ("203.0.113.1", "2001:db8:2::1"))
    conf = text.splitlines()
    assert {"port=5300", "no-resolv", "address=/#/198.51.100.1", "interface=lan",
            "except-interface=lo", "bind-dynamic", "no-hosts",
            "pid-file=/var/lib/passerelle/dnsmasq-captive.pid",
            "host-record=portal.lab,198.51.100.1"} <= set(conf)
    servers = [line for line in conf if line.startswith("server=")]
    assert [line.rsplit("/", 1)[1] for line in servers] == ["203.0.113.1", "2001:db8:2::1"]
    names = servers[0].split("/")[1:-1]
    assert {"captive.apple.com", "connectivitycheck.gstatic.com", "www.msftconnecttest.com",
            "detectportal.firefox.com", "garden.example", "idp.example"} <= set(names)
    assert not any(line.startswith(("dhcp", "enable-ra", "resolv-file")) for line in conf)
    assert ("nftset=/garden.example/idp.example/4#inet#passerelle#garden_dns4,"
            "6#inet#passerelle#garden_dns6") in conf
    # Without upstream servers nothing is forwarded at all.
    assert "server=" not in render_captive(PLAN, ())


def test_parse_resolv_conf() -> None:
    text = ("# generated\nnameserver 127.0.0.53\nnameserver  2001:db8::53\n"
            "nameserver fe80::1%eth0\noptions edns0\nsearch lan\n")
    assert parse_resolv_conf(text) == ("127.0.0.53", "2001:db8::53")


@pytest.mark.parametrize(("change", "message"), [
    ({"range_start": "198.51.101.5"}, "range_start"),
    ({"range_start": "198.51.100.200"}, "range_start is after range_end"),
    ({"box_ipv4": "198.51.100.120"}, "inside the DHCP range"),
    ({"portal_api_url": "http://portal.lab/api"}, "portal_api_url"),
    ({"portal_api_url": "https://portal.lab/" + "a" * 250}, "option 114"),
    ({"garden_domains": ("bad domain",)}, "garden_domains"),
    ({"garden_domains": ("*.example.com",)}, "garden_domains"),
    ({"garden_domains": ("#",)}, "garden_domains"),
    ({"captive_dns_port": 53}, "captive_dns_port"),
    ({"upstream_dns": ("dns.example",)}, "upstream_dns"),
    ({"lan_if": "lan; rm"}, "lan_if"),
    ({"lease_seconds": 60}, "lease_seconds"),
])
def test_render_refuses_bad_plans(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render(DhcpPlan(**{**PLAN.__dict__, **change}))


def test_parse_leases(caplog: pytest.LogCaptureFixture) -> None:
    text = (
        "1764072000 02:50:00:00:00:20 198.51.100.101 laptop 01:02:50:00:00:00:20\n"
        "0 02:50:00:00:00:21 198.51.100.102 * *\n"
        "duid 00:01:00:01:2c:1d:8e:1f:02:50:00:00:00:01\n"
        "1764072000 1234 2001:db8:1::99 phone 00:01:00:01\n"
        "garbage\n"
    )
    with caplog.at_level(logging.WARNING, logger="passerelle.gateway"):
        leases = parse_leases(text)
    assert leases == [
        Lease("02:50:00:00:00:20", "198.51.100.101", "laptop",
              datetime(2025, 11, 25, 12, 0, tzinfo=UTC)),
        Lease("02:50:00:00:00:21", "198.51.100.102", "", None),
    ]
    assert "line 5 skipped" in caplog.text


def test_command_runs_in_the_foreground_with_our_file_only(tmp_path: Path) -> None:
    d = Dnsmasq(PLAN, tmp_path, netns="psl-x-gw")
    assert d.command() == ["ip", "netns", "exec", "psl-x-gw", "dnsmasq", "--keep-in-foreground",
                           f"--conf-file={tmp_path / 'dnsmasq.conf'}"]
    assert d.lease_path == tmp_path / "dnsmasq.leases"  # in the state directory ...
    d1 = Dnsmasq(DhcpPlan(**{**PLAN.__dict__, "lease_file": "/srv/l"}), tmp_path)
    assert d1.lease_path == Path("/srv/l")  # ... unless the plan names one
    d2 = Dnsmasq(PLAN, tmp_path)
    assert d2.lease_path == tmp_path / "dnsmasq.leases"
    assert f"pid-file={tmp_path / 'dnsmasq.pid'}" in render(d2.plan)
    assert not d2.alive() and not d2.restart_if_dead() and d2.leases() == []


# -- in the lab -----------------------------------------------------------------

# A DNS query for an A record: prints "rcode=N addr..." or "timeout".
DIG = r"""
import random, socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
qid = random.randrange(65536)
query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
query += struct.pack("!HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(query, (server, 53))
try:
    while True:
        data, _ = s.recvfrom(4096)
        if struct.unpack("!H", data[:2])[0] == qid:
            break
except (TimeoutError, socket.timeout):
    print("timeout")
    sys.exit()
flags, qd, an = struct.unpack("!HHH", data[2:8])
pos = 12
while data[pos]:
    pos += data[pos] + 1
pos += 5
addrs = []
for _ in range(an):
    if data[pos] & 0xC0 == 0xC0:
        pos += 2
    else:
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", data[pos:pos + 10])
    pos += 10
    if rtype == 1:
        addrs.append(socket.inet_ntoa(data[pos:pos + 4]))
    pos += rdlen
print(f"rcode={flags & 15}", *addrs)
"""

DHCLIENT_CONF = """\
option captive-portal code 114 = text;
send host-name "laptop";
request subnet-mask, broadcast-address, routers, domain-name-servers, captive-portal;
"""

# dhclient's hook: record what it was given, configure the address (the
# Debian dhclient-script would also rewrite /etc/resolv.conf).
DHCLIENT_SCRIPT = """\
#!/bin/sh
env > "{dump}.$reason"
case "$reason" in
BOUND|RENEW|REBIND|REBOOT)
    ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
esac
"""


# The box's router advertisements (gateway/ra_sender.py) in the gw namespace,
# as the daemon sends them beside dnsmasq; SIGTERM sends the last one.
ADVERTISE = r"""
import ipaddress, signal, sys, threading
from passerelle.gateway.ra import Advert
from passerelle.gateway.ra_sender import RouterAdvertiser
lan_if, box_ipv6, url = sys.argv[1:4]
sender = RouterAdvertiser(lan_if, Advert(prefix=ipaddress.IPv6Interface(box_ipv6 + "/64").network,
                                         dns=(box_ipv6,), captive_url=url, lifetime=600))
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
sender.start()
print("ready", flush=True)
done.wait()
sender.stop()
print(sender.sent)
"""


def dig(lab: Lab, ns: str, server: str, name: str) -> str:
    return lab.run(ns, sys.executable, "-c", DIG, server, name).stdout.strip()


@pytest.fixture(scope="module")
def box(lab: Lab) -> Iterator[Dnsmasq]:
    """The lab's box running dnsmasq (upstream DNS in ``up``) behind the table."""
    lab.start_internet()
    lab.start_upstream_dns({"garden.example": lab.garden_ipv4, "www.example": lab.web_ipv4})
    lab.serve("gw", "http", lab.box_ipv4, 8080, "302", "http://portal.lab/")
    firewall = Firewall(FirewallPlan(lan_if=lab.lan_if, wan_if=lab.wan_if, box_ipv4=lab.box_ipv4,
                             box_ipv6=lab.box_ipv6), netns=lab.ns["gw"])
    firewall.apply()
    plan = DhcpPlan(lan_if=lab.lan_if, box_ipv4=lab.box_ipv4, range_start="198.51.100.100",
                    range_end="198.51.100.150", netmask="255.255.255.0", lease_seconds=600,
                    portal_api_url=API, garden_domains=("garden.example",),
                    upstream_dns=(lab.up_ipv4,), box_ipv6=lab.box_ipv6)
    dnsmasq = Dnsmasq(plan, lab.tmp / "box", netns=lab.ns["gw"])
    dnsmasq.start()
    adverts = lab.popen("gw", sys.executable, "-c", ADVERTISE, lab.lan_if, lab.box_ipv6, API)
    assert adverts.stdout is not None and adverts.stdout.readline() == "ready\n", \
        adverts.communicate()
    try:
        yield dnsmasq
    finally:
        stop(adverts)
        dnsmasq.stop()
        firewall.remove()


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_dhclient_gets_an_address_and_the_portal_uri(lab: Lab, box: Dnsmasq) -> None:
    mac = "02:50:00:00:00:20"
    lab.add_client("laptop", mac)
    conf, dump, script = lab.tmp / "dhclient.conf", lab.tmp / "dhcp", lab.tmp / "dhclient-hook"
    conf.write_text(DHCLIENT_CONF)
    script.write_text(DHCLIENT_SCRIPT.format(dump=dump))
    script.chmod(0o755)
    lab.popen("laptop", "dhclient", "-4", "-1", "-d", "-cf", str(conf),
              "-lf", str(lab.tmp / "dhclient.leases"), "-pf", str(lab.tmp / "dhclient.pid"),
              "-sf", str(script), "eth0")
    bound = Path(f"{dump}.BOUND")
    deadline = time.monotonic() + 20
    while not bound.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bound.exists(), "dhclient got no lease"
    env = dict(line.split("=", 1) for line in bound.read_text().splitlines() if "=" in line)
    assert env["new_captive_portal"] == API  # option 114, asked for and given
    assert env["new_routers"] == lab.box_ipv4
    assert env["new_domain_name_servers"] == lab.box_ipv4
    address = env["new_ip_address"]
    assert 100 <= int(address.rsplit(".", 1)[1]) <= 150
    # dhclient writes its leases file after the hook ran: wait for it.
    leases = lab.tmp / "dhclient.leases"
    while time.monotonic() < deadline and "captive-portal" not in _text(leases):
        time.sleep(0.1)
    assert f'option captive-portal "{API}";' in _text(leases)

    [lease] = [x for x in box.leases() if x.mac == mac]
    assert (lease.ipv4, lease.hostname) == (address, "laptop")
    assert lease.expires is not None
    assert 500 < (lease.expires - datetime.now(UTC)).total_seconds() <= 600

    # IPv6: router advertisements and neighbour discovery work through the table.
    lab.run("laptop", "ip", "link", "set", "eth0", "down")
    lab.run("laptop", "ip", "link", "set", "eth0", "up")  # sends a router solicitation
    deadline = time.monotonic() + 10
    slaac = ""
    while time.monotonic() < deadline and "2001:db8:1:" not in slaac:
        slaac = lab.run("laptop", "ip", "-6", "addr", "show", "dev", "eth0", "scope",
                        "global").stdout
        time.sleep(0.1)
    assert "2001:db8:1:" in slaac, "no SLAAC address from the box's router advertisements"


def test_dns_answers_and_other_resolvers_are_redirected(lab: Lab, box: Dnsmasq) -> None:
    assert dig(lab, "client", lab.box_ipv4, "portal.lab") == f"rcode=0 {lab.box_ipv4}"
    # Before check-in a name that is not allowed leads to the portal (the
    # captive view; tests/gateway/test_hardening.py has the rest).
    assert dig(lab, "client", lab.box_ipv4, "www.example") == f"rcode=0 {lab.box_ipv4}"
    # A captive client asking another resolver gets the box's answer.
    assert dig(lab, "client", lab.up_ipv4, "portal.lab") == f"rcode=0 {lab.box_ipv4}"
    assert dig(lab, "client", lab.web_ipv4, "www.example") == f"rcode=0 {lab.box_ipv4}"
    # The box itself asks upstream as usual.
    assert dig(lab, "gw", lab.box_ipv4, "www.example") == f"rcode=0 {lab.web_ipv4}"


def test_garden_domain_lands_in_the_set_and_is_reachable(lab: Lab, box: Dnsmasq) -> None:
    def garden_set() -> str:
        return lab.run("gw", "nft", "list", "set", "inet", "passerelle", "garden_dns4").stdout

    assert lab.garden_ipv4 not in garden_set()
    assert lab.run("client", "curl", "-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}",
                   f"http://{lab.garden_ipv4}/", check=False).stdout == "302"
    assert dig(lab, "client", lab.box_ipv4, "garden.example") == f"rcode=0 {lab.garden_ipv4}"
    assert lab.garden_ipv4 in garden_set()
    out = lab.run("client", "curl", "-sS", "-m", "3", f"http://{lab.garden_ipv4}/").stdout
    assert out.strip() == f"upstream {lab.wan_ipv4}"  # forwarded, before any check-in
    assert lab.run("client", "curl", "-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}",
                   f"http://{lab.web_ipv4}/", check=False).stdout == "302"


def test_serves_the_lan_only(lab: Lab, box: Dnsmasq) -> None:
    sockets = lab.run("gw", "ss", "-Hlnup").stdout + lab.run("gw", "ss", "-Hlntp").stdout
    local = [line.split()[3] for line in sockets.splitlines() if "dnsmasq" in line]
    assert local
    for addr in local:
        assert addr.startswith((f"{lab.box_ipv4}:", f"[{lab.box_ipv6}]:", "0.0.0.0%lan:",
                                "[::]%lan:")) or "]%lan:" in addr, addr
    assert dig(lab, "up", lab.wan_ipv4, "portal.lab") == "timeout"


def test_restarted_when_it_dies(lab: Lab, box: Dnsmasq) -> None:
    assert not box.restart_if_dead()
    pid = box.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while box.alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not box.alive()
    assert box.restart_if_dead()
    assert box.alive() and box.pid != pid
    assert dig(lab, "client", lab.box_ipv4, "portal.lab") == f"rcode=0 {lab.box_ipv4}"


def test_start_failure_is_a_clear_error(lab: Lab, box: Dnsmasq) -> None:
    second = Dnsmasq(box.plan, lab.tmp / "second", netns=lab.ns["gw"])
    with pytest.raises(DnsmasqError, match="dnsmasq exited"):
        second.start()  # the first one holds the ports
    assert not second.alive()


def test_the_captive_view_is_supervised_too(lab: Lab, box: Dnsmasq) -> None:
    """The second dnsmasq (the captive view of DNS) is restarted when it dies,
    and a daemon killed with -9 leaves no dnsmasq holding the ports: the next
    start ends both (they are named by their pid files) and starts afresh."""
    pid = box.captive_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while box.alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert box.restart_if_dead()
    assert box.captive_pid not in (None, pid)
    assert dig(lab, "client", lab.box_ipv4, "portal.lab") == f"rcode=0 {lab.box_ipv4}"

    orphans = (box.pid, box.captive_pid)
    fresh = Dnsmasq(box.plan, box.state_dir, netns=lab.ns["gw"])
    try:
        fresh.start()
        assert fresh.alive() and not box.alive()
        assert {fresh.pid, fresh.captive_pid}.isdisjoint(orphans)
        assert dig(lab, "client", lab.box_ipv4, "portal.lab") == f"rcode=0 {lab.box_ipv4}"
    finally:
        fresh.stop()


def test_a_stopping_box_says_it_is_no_longer_a_router(lab: Lab, box: Dnsmasq) -> None:
    """A sender advertises at start, answers a Router Solicitation at once
    (its next unsolicited one is 16 s away) and, stopping cleanly, sends a
    last advertisement with router lifetime 0 (RFC 4861 6.2.5)."""
    hear = lab.popen("client", sys.executable, "-c", HEAR_RA)
    assert hear.stdout is not None and hear.stdout.readline() == "ready\n"
    adverts = lab.popen("gw", sys.executable, "-c", ADVERTISE, lab.lan_if, lab.box_ipv6, API)
    assert adverts.stdout is not None and adverts.stdout.readline() == "ready\n"
    # Asked 3 s after the first one, it answers within 0.5 s (the fixture's
    # sender may answer first: the count below is this one's).
    time.sleep(ra.MIN_DELAY_BETWEEN_RAS + 0.2)
    lab.run("client", sys.executable, "-c", ASK_RA, timeout=20)
    time.sleep(ra.MAX_RA_DELAY_TIME + 0.5)
    stop(adverts)
    sent, _ = adverts.communicate()
    assert adverts.returncode == 0
    assert sent.split() == ["3"], "at start, the answer, the last"
    out, err = hear.communicate(timeout=20)
    lifetimes = [int(x) for x in out.split()]
    assert lifetimes[-1:] == [0], (out, err)
    assert 1800 in lifetimes, out

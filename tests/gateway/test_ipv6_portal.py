"""The portal over IPv6, in the lab with the real daemon, dnsmasq and portal.

The box's LAN has 2001:db8:1::1/64 (detected, so ``lan.address6``): the
portal listens there too, its name has an AAAA record, captive IPv6 HTTP is
redirected to it, DHCPv6 carries the RFC 8908 API URL (option 103), and
nothing else leaves before check-in. The client speaks IPv6 only to the
portal and the internet; it has an IPv4 address the box knows (sessions are
kept by IPv4 address), which it never uses here but for one
datagram to the box.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator

import pytest
from scapy.layers.inet6 import (
    ICMPv6ND_RA,
    ICMPv6NDOptCaptivePortal,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
)

from passerelle.gateway.control import ControlError
from tests.boxlab import Box, site, wait_for
from tests.gateway.conftest import require_lab
from tests.nd import ASK_RA, HEAR_RA
from tests.need import stop
from tests.radius import seed

HOST = "portal.passerelle.internal"  # the configuration's default portal.hostname
API = f"https://{HOST}:8443/api/captive"
THIEF_MAC = "02:50:00:00:00:66"
THIEF_IPV4 = "198.51.100.12"

# `passerelle portal run` (the portal's CLI group, registered on the root CLI).
RUN = """
import sys
from passerelle.cli import main, cli
from passerelle.portal.cli import register
register(cli)
sys.argv[0] = "passerelle"
main()
"""

# A DNS query over IPv6 (UDP): the addresses of the answer, one a line.
ASK_AAAA = r"""
import socket, sys
from scapy.layers.dns import DNS, DNSQR
server, name = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(bytes(DNS(id=7, rd=1, qd=DNSQR(qname=name, qtype="AAAA"))), (server, 53))
answer = DNS(s.recv(4096))
for i in range(answer.ancount):
    print(answer.an[i].rdata)
"""

# A DHCPv6 Information-Request (RFC 8415 section 18.2.6) from the link-local
# address, asking for DNS servers (23) and the captive-portal URI (103);
# prints each option of the Reply as "code value".
ASK_DHCP6 = r"""
import os, socket, struct, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 546))
s.settimeout(5)
trid = os.urandom(3)
oro = struct.pack("!HH", 6, 4) + struct.pack("!HH", 23, 103)
elapsed = struct.pack("!HHH", 8, 2, 0)
s.sendto(bytes([11]) + trid + oro + elapsed, ("ff02::1:2", 547, 0, socket.if_nametoindex("eth0")))
while True:
    data = s.recv(4096)
    if data[0] == 7 and data[1:4] == trid:  # REPLY to this request
        break
at = 4
while at + 4 <= len(data):
    code, length = struct.unpack("!HH", data[at:at + 4])
    value = data[at + 4:at + 4 + length]
    print(code, value.decode() if code == 103 else value.hex())
    at += 4 + length
"""

# A datagram over IPv6 to host:port.
SEND_UDP = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
"""

SEND_UDP4 = SEND_UDP.replace("AF_INET6", "AF_INET")


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    require_lab()
    tmp = tmp_path_factory.mktemp("ipv6")
    with site(tmp, portal=False) as built:
        lab = built.lab
        lab.serve("up", "tcp", lab.web_ipv6, 443)
        for port in (123, 9999):
            lab.serve("up", "udp", lab.web_ipv6, port, str(tmp / f"udp{port}.log"))
        log = (tmp / "portal.log").open("w")
        built.logs.append(tmp / "portal.log")
        try:
            portal = lab.popen("gw", sys.executable, "-c", RUN, "-v", "portal", "run",
                               "--config", str(built.config), stderr=log)
            assert portal.stdout is not None
            line = portal.stdout.readline()
            assert "portal listening" in line, built.read_logs()
            assert f"[{lab.box_ipv6}]:8443" in line, line
            # The box learns the client's MAC at its IPv4 address (the one
            # its session is kept by) from one ARP exchange: a datagram to
            # the discard port (on a real LAN, DHCPv4 did it).
            lab.run("client", sys.executable, "-c", SEND_UDP4, lab.box_ipv4, "9", "hello")
            yield built
        finally:
            log.close()


def curl6(box: Box, url: str, *args: str) -> str:
    """``curl -6``'s "code location body" for ``url`` from the client."""
    out = box.lab.run("client", "curl", "-6", "-s", "-k", "-m", "5", *args,
                      "-w", "\n%{http_code} %{redirect_url}", url, check=False)
    return out.stdout


def portal6(box: Box, *args: str, path: str = "/") -> str:
    """A page of the HTTPS portal over IPv6 (the client's cookies kept)."""
    jar = str(box.tmp / "client.cookies")
    return curl6(box, f"https://[{box.lab.box_ipv6}]:8443{path}", "-b", jar, "-c", jar,
                 "-H", f"Host: {HOST}", *args)


def source6(box: Box) -> str:
    """The IPv6 address the client speaks from."""
    out = box.lab.run("client", "ip", "-6", "route", "get", box.lab.web_ipv6).stdout.split()
    return out[out.index("src") + 1]


def udp_log(box: Box, port: int) -> str:
    path = box.tmp / f"udp{port}.log"
    return path.read_text() if path.exists() else ""


def send_udp(box: Box, port: int, payload: str) -> None:
    box.lab.run("client", sys.executable, "-c", SEND_UDP, box.lab.web_ipv6, str(port), payload)


def test_captive_ipv6_http_is_redirected_to_the_portal(box: Box) -> None:
    out = curl6(box, f"http://[{box.lab.web_ipv6}]/")
    code, location = out.rsplit("\n", 1)[1].split(" ", 1)
    assert code == "302" and location.startswith(f"https://{HOST}"), out
    # Port 80 of the box's IPv6 address is the portal too (its name's AAAA).
    assert curl6(box, f"http://[{box.lab.box_ipv6}]/").rsplit("\n", 1)[1].startswith("302")


def test_the_portal_answers_over_ipv6_on_its_https_port(box: Box) -> None:
    page = curl6(box, f"https://[{box.lab.box_ipv6}]:8443/", "-H", f"Host: {HOST}")
    assert page.rsplit("\n", 1)[1].startswith("200"), page
    assert "password" in page.lower(), "the check-in form"
    api = curl6(box, f"https://[{box.lab.box_ipv6}]:8443/api/captive", "-H", f"Host: {HOST}")
    assert json.loads(api.rsplit("\n", 1)[0])["captive"] is True, api


def test_the_portal_name_resolves_to_the_box_over_ipv6(box: Box) -> None:
    lab = box.lab
    # Before check-in the query is DNAT-ed to the captive view (after: below).
    out = lab.run("client", sys.executable, "-c", ASK_AAAA, lab.box_ipv6, HOST).stdout
    assert out.split() == [lab.box_ipv6], out
    # Any other name leads to the portal before check-in, AAAA included.
    out = lab.run("client", sys.executable, "-c", ASK_AAAA, lab.box_ipv6, "example.com").stdout
    assert out.split() == [lab.box_ipv6], out


def test_dhcpv6_carries_the_captive_portal_api_url(box: Box) -> None:
    out = box.lab.run("client", sys.executable, "-c", ASK_DHCP6, timeout=15).stdout
    options = dict(line.split(" ", 1) for line in out.splitlines())
    assert options.get("103") == API, out
    assert options.get("23") == "20010db8000100000000000000000001", "the box as DNS server"


def test_a_router_solicitation_gets_the_prefix_dns_and_the_portal_api(box: Box) -> None:
    """The box's own router advertisement (gateway/ra.py) answers: from its
    link-local address with hop limit 255, the /64 for SLAAC, O=1 (stateless
    DHCPv6), the box as DNS server (RDNSS) and the RFC 8908 API URL in
    option 37 (RFC 8910 section 2.3), the one option 103 above carries."""
    out = box.lab.run("client", sys.executable, "-c", ASK_RA, timeout=20).stdout
    source, hops, took, message = out.split()
    assert source.startswith("fe80:") and hops == "255", out
    assert float(took) < 4, "answered at once (at most 3 s after the last one)"
    ra = ICMPv6ND_RA(bytes.fromhex(message))
    assert (ra.M, ra.O) == (0, 1) and ra.routerlifetime > 0
    prefix = ra[ICMPv6NDOptPrefixInfo]
    assert (prefix.prefix, prefix.prefixlen, prefix.A, prefix.L) == ("2001:db8:1::", 64, 1, 1)
    assert list(ra[ICMPv6NDOptRDNSS].dns) == [box.lab.box_ipv6]
    assert ra[ICMPv6NDOptCaptivePortal].URI.rstrip(b"\0").decode() == API


def test_nothing_else_passes_over_ipv6_before_check_in_then_the_internet(box: Box) -> None:
    lab = box.lab
    https = lab.run("client", "curl", "-6", "-s", "-k", "-m", "3", f"https://[{lab.web_ipv6}]/",
                    check=False)
    assert https.returncode == 7, "HTTPS refused (a reset), as over IPv4"
    send_udp(box, 123, "ntp-before")
    send_udp(box, 9999, "udp-before")

    # The check-in form, over IPv6: the portal sees the client's IPv6
    # address (a SLAAC one, from the box's router advertisements).
    page = portal6(box)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, page
    done = portal6(box, "-X", "POST", "-d", f"csrf_token={token[1]}",
                   "-d", "login=alice@acme.example", "-d", f"password={seed.PASSWORD}",
                   "-d", "accept=y", path="/check-in")
    assert done.rsplit("\n", 1)[1].startswith("303"), done
    src = source6(box)
    try:
        (session,) = box.control.sessions()
        assert session["ip"] == lab.ipv4["client"], "the session is the device's IPv4's"
        assert "alice@acme.example" in portal6(box), "the status page, found over IPv6"
        assert 'class="wifi-key"' in portal6(box, path="/welcome"), "the key page over IPv6"
        assert box.control.who(src)["session"]["session_id"] == session["session_id"]
        with pytest.raises(ControlError) as refused:
            box.control.check_in(src, "alice@acme.example", seed.PASSWORD)
        assert refused.value.code == "already-checked-in"

        def through() -> str:
            out = curl6(box, f"http://[{lab.web_ipv6}]/")
            return out if out.startswith(f"upstream {src}") else ""

        wait_for(through, what="IPv6 to the internet after check-in", logs=box.read_logs)
        # Checked in, DNS is the box's main dnsmasq: the portal's AAAA there too.
        out = lab.run("client", sys.executable, "-c", ASK_AAAA, lab.box_ipv6, HOST).stdout
        assert out.split() == [lab.box_ipv6], out
        send_udp(box, 9999, "udp-after")
        send_udp(box, 123, "ntp-after")
        wait_for(lambda: "udp-after" in udp_log(box, 9999) and "ntp-after" in udp_log(box, 123),
                 what="UDP over IPv6 after check-in")
        assert "before" not in udp_log(box, 9999) + udp_log(box, 123), \
            "a datagram left the box before check-in"
    finally:
        box.control.check_out(src)
    assert box.control.sessions() == []
    out = curl6(box, f"http://[{lab.web_ipv6}]/")
    assert out.rsplit("\n", 1)[1].startswith("302"), "captive again after check-out"


def test_an_ipv6_address_no_device_holds_has_no_session(box: Box) -> None:
    who = box.control.who("2001:db8:1::99")
    assert who == {"ip": "2001:db8:1::99", "mac": None, "session": None}
    with pytest.raises(ControlError) as refused:
        box.control.check_in("2001:db8:1::99", "alice@acme.example", seed.PASSWORD)
    assert refused.value.code == "unknown-client"


def test_another_device_at_the_clients_ipv6_address_gets_no_session(box: Box) -> None:
    """Issue 13, finding 3, over IPv6: a second device (its own MAC) takes
    the address a checked-in client speaks from. The box's kernel then has
    the thief's MAC there, and the daemon maps it to the thief's own IPv4
    address: neither the victim's status page nor its check-out."""
    lab = box.lab
    granted = box.control.check_in(lab.ipv4["client"], "alice@acme.example", seed.PASSWORD)
    src = source6(box)
    try:
        assert "alice@acme.example" in portal6(box), "the victim sees its page over IPv6"
        lab.add_client("thief", THIEF_MAC)
        lab.run("thief", "ip", "addr", "add", f"{THIEF_IPV4}/24", "dev", "eth0")
        lab.run("thief", "ip", "addr", "add", f"{src}/64", "dev", "eth0", "nodad")
        lab.run("thief", sys.executable, "-c", SEND_UDP4, lab.box_ipv4, "9", "hello")
        # Its neighbour solicitation for the box tells the box its MAC at ``src``.
        seen = lab.run("thief", "curl", "-6", "-s", "-k", "-m", "5", "--interface", src,
                       "-H", f"Host: {HOST}", f"https://[{lab.box_ipv6}]:8443/",
                       check=False).stdout
        assert THIEF_MAC in lab.run("gw", "ip", "-6", "neigh", "show", src).stdout
        assert "alice@acme.example" not in seen, "the victim's login shown to another device"
        assert box.control.who(src) == {"ip": THIEF_IPV4, "mac": THIEF_MAC, "session": None}
        with pytest.raises(ControlError) as refused:
            box.control.check_out(src)
        assert refused.value.code == "no-session"
        assert [s["session_id"] for s in box.control.sessions()] == [granted["session_id"]]
    finally:
        lab.run("thief", "ip", "link", "set", "eth0", "down", check=False)
        box.control.check_out(lab.ipv4["client"])


def test_a_daemon_stopping_cleanly_says_it_is_no_longer_a_router(box: Box) -> None:
    """RFC 4861 6.2.5: the daemon's last advertisement has router lifetime 0;
    started again, it advertises the box as a router again."""
    hear = box.lab.popen("client", sys.executable, "-c", HEAR_RA)
    assert hear.stdout is not None and hear.stdout.readline() == "ready\n"
    assert box.daemon is not None
    stop(box.daemon)
    assert box.daemon.returncode == 0, box.read_logs()
    out, err = hear.communicate(timeout=20)
    assert out.split()[-1:] == ["0"], (out, err)
    box.start_daemon()
    out = box.lab.run("client", sys.executable, "-c", ASK_RA, timeout=20).stdout
    assert ICMPv6ND_RA(bytes.fromhex(out.split()[-1])).routerlifetime == 1800, out

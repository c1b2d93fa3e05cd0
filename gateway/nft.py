"""The box's data plane: one nftables table, ``inet passerelle``.

``ruleset()`` is the pure part: from a ``FirewallPlan`` to the nft script, tested
without root. ``Firewall`` is the thin adapter that feeds it to ``nft -f -``
(optionally inside a network namespace) and adds, removes and reads the
authorised clients. No client packet ever passes through Python.

Sets (docs/dataplane.md shows how to inspect them):

- ``allowed4`` (ether_addr . ipv4_addr) and ``allowed6`` (ether_addr .
  ipv6_addr): who is checked in, for the decisions taken once per connection
  (no portal redirect, no DNS redirect). No counters: the NAT hook sees only
  the first packet of a connection and would count it twice.
- ``up4``/``up6`` (same keys, per-element ``counter``): looked up on every
  forwarded packet from the LAN; the lookup both authorises and counts, so
  upstream bytes are exact. A packet with another client's IP and its own
  MAC matches no element.
- ``down4``/``down6`` (ipv4_addr / ipv6_addr, per-element ``counter``):
  downstream packets carry no client MAC, so they are counted by destination
  address, only for established/related connections.
- ``garden4``/``garden6``: walled-garden CIDRs from the plan;
  ``garden_dns4``/``garden_dns6``: addresses dnsmasq adds (``nftset=``) when
  it resolves a walled-garden domain, kept one day after the last answer.

- ``rate_up4``/``rate_up6``/``rate_down4``/``rate_down6``: bandwidth caps,
  one ``limit`` per element, only for capped clients.
- ``private4``/``private6``: destinations no LAN client reaches through the
  box (private, shared and link-local ranges and the WAN's own subnets), less
  the ranges the site opens and the walled garden.
- ``dns_rate``: one DNS rate limiter per client MAC, for the captive view.
- ``portal_conns``: the portal's connections open per client MAC (``ct
  count``), so that one device with many addresses holds no more of the
  portal than one with a single address.

With VLANs (gateway/vlan.py), every rule that names the LAN names each
VLAN's sub-interface too: the same sets, the same captive state (DNS, NTP
and plain HTTP DNAT-ed to the box's LAN address, where the portal and the
captive view listen), the same forwarding to the WAN. The forward chain
drops whatever goes from one LAN interface to another or back out of the
one it came in by, and ``lan_guard`` ties each interface to its subnet.

All the client sets carry a kernel timeout, equal for every element of one
client: the kernel ends the session even when the daemon is down. Counters
are IP-layer octets (the IP header included), as most NASes report them in
RADIUS accounting; packets are kernel packets (GSO/GRO can merge frames).
``expires_in`` has the whole-second precision of ``nft -j``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from passerelle.portal.limits import CONNECTIONS_PER_CLIENT
from passerelle.radius.mac import parse as normal_mac

from .vlan import Vlan

log = logging.getLogger("passerelle.gateway")

TABLE = "passerelle"
FAMILY = "inet"
CLIENT_SETS4 = ("allowed4", "up4", "down4")
CLIENT_SETS6 = ("allowed6", "up6", "down6")
RATE_SETS = ("rate_up4", "rate_down4", "rate_up6", "rate_down6")
# Chains this code creates; any other chain in our table is a leftover of an
# older version and is deleted on apply.
CHAINS = ("pre_nat", "captive_nat", "post_nat", "forward", "from_lan", "to_lan",
          "lan_in", "wan_in", "input", "refuse", "lan_guard")
GARDEN_DNS_TIMEOUT = "1d"
# The captive view of DNS (a second dnsmasq, see gateway/dnsmasq.py): every
# DNS query of a client that has not checked in is DNAT-ed to this port.
CAPTIVE_DNS_PORT = 5300
# Queries per second per client to the captive view (three seconds' burst):
# an OS joining a network asks a few dozen names in its first second.
CAPTIVE_DNS_RATE = 30
# New connections to the portal's ports open at once per client MAC; over it,
# a reset. The worker's cap per address, in the kernel per device: one device
# can use many addresses (IPv6 privacy addresses, any address of the /64),
# which the worker cannot tell apart, and would then hold its whole pool.
PORTAL_CONNS_PER_DEVICE = CONNECTIONS_PER_CLIENT
# Never reached through the box unless the site opens them: RFC 1918, shared
# address space (RFC 6598), link-local (RFC 3927, RFC 4291), unique local
# (RFC 4193). The WAN's own subnets are added when the table is applied.
PRIVATE4 = ("10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12",
            "192.168.0.0/16")
PRIVATE6 = ("fc00::/7", "fe80::/10")
_WAN_OPEN = re.compile(r"^(tcp|udp)/([0-9]{1,5})$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.@:-]{1,15}$")


class NftError(RuntimeError):
    """nft refused a command; the message carries nft's own words."""


class NotAllowed(LookupError):
    """The client has no entry in the kernel's sets (never allowed, revoked or expired)."""


@dataclass(frozen=True)
class FirewallPlan:
    """Everything the ruleset depends on."""

    lan_if: str
    wan_if: str
    box_ipv4: str  # the box's LAN address (portal, DNS, DHCP)
    box_ipv6: str | None = None
    portal_http_port: int = 8080  # plain HTTP from captive clients is DNAT-ed here
    portal_https_port: int = 8443  # RFC 8908 API and portal over TLS
    garden4: tuple[str, ...] = ()  # CIDRs reachable before check-in
    garden6: tuple[str, ...] = ()
    masquerade: bool = True
    # A captive client's NTP (to any address) is answered by the box or by
    # ``ntp_servers`` (RFC 8908 section 2: a client needs the right time to
    # validate the portal's certificate); never forwarded where it was sent.
    captive_ntp: bool = True
    ntp_servers: tuple[str, ...] = ()  # the first of each family; none: the box itself
    open_private: tuple[str, ...] = ()  # private ranges the site lets clients reach
    wan_nets: tuple[str, ...] = ()  # the WAN's subnets; Firewall.apply() adds the detected ones
    captive_dns_port: int = CAPTIVE_DNS_PORT
    captive_dns_rate: int = CAPTIVE_DNS_RATE  # queries/second per client MAC
    # From the WAN side the box takes replies, RFC 5176 requests from these
    # addresses on ``dae_port``, and the ``wan_open`` services ("tcp/22").
    dae_port: int = 3799
    dae_clients: tuple[str, ...] = ()
    wan_open: tuple[str, ...] = ("tcp/22",)
    # From the LAN side: the access points (IPv4 CIDRs) asking for Wi-Fi keys.
    access_points: tuple[str, ...] = ()
    ap_port: int = 1812
    # The companies' VLANs (gateway/vlan.py): each sub-interface is a LAN
    # interface like ``lan_if``, with the same sets and rules; nothing
    # crosses the box between two of them. ``lan_net4``: the untagged LAN's
    # subnet, which its clients' addresses must be in once there are VLANs.
    vlans: tuple[Vlan, ...] = ()
    lan_net4: str | None = None

    @property
    def lan_ifs(self) -> tuple[str, ...]:
        return (self.lan_if, *(v.interface for v in self.vlans))


@dataclass(frozen=True)
class Allowed:
    """One authorised client as the kernel holds it."""

    mac: str
    ipv4: str
    ipv6: tuple[str, ...]
    expires_in: float  # seconds
    bytes_up: int
    bytes_down: int
    packets_up: int
    packets_down: int


def _ip(value: str, version: int) -> str:
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"not an IPv{version} address: {value!r}") from None
    if addr.version != version:
        raise ValueError(f"not an IPv{version} address: {value!r}")
    return str(addr)


def _nets(cidrs: Iterable[str], version: int) -> list[str]:
    """Collapsed networks: nft refuses overlapping intervals in one set."""
    nets = []
    for cidr in cidrs:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"not a network: {cidr!r}") from None
        if net.version != version:
            raise ValueError(f"not an IPv{version} network: {cidr!r}")
        nets.append(net)
    return [str(n) for n in ipaddress.collapse_addresses(nets)]  # type: ignore[type-var]


def _by_family(values: Iterable[str], version: int) -> list[str]:
    return [v for v in values if ipaddress.ip_network(v, strict=False).version == version]


def blocked_nets(plan: FirewallPlan, version: int) -> list[str]:
    """The destinations LAN clients do not reach through the box: the private
    ranges and the WAN's subnets, less the site's open ranges and garden."""
    private = PRIVATE4 if version == 4 else PRIVATE6
    garden = plan.garden4 if version == 4 else plan.garden6
    blocked = [ipaddress.ip_network(n) for n in
               _nets((*private, *_by_family(plan.wan_nets, version)), version)]
    holes = _nets((*_by_family(plan.open_private, version), *garden), version)
    for hole in (ipaddress.ip_network(h) for h in holes):
        kept: list[Any] = []
        for net in blocked:
            if hole.subnet_of(net):  # type: ignore[arg-type]
                kept += net.address_exclude(hole)  # type: ignore[arg-type]
            elif not net.subnet_of(hole):  # type: ignore[arg-type]
                kept.append(net)
        blocked = kept
    return [str(n) for n in ipaddress.collapse_addresses(blocked)]  # type: ignore[type-var]


def wan_ports(plan: FirewallPlan) -> dict[str, list[int]]:
    """``wan_open`` as protocol -> ports."""
    out: dict[str, list[int]] = {"tcp": [], "udp": []}
    for entry in plan.wan_open:
        match = _WAN_OPEN.match(entry)
        if not match or not 0 < int(match[2]) < 65536:
            raise ValueError(f"wan_open: not protocol/port (tcp/22, udp/51820): {entry!r}")
        out[match[1]].append(int(match[2]))
    return out


def check_plan(plan: FirewallPlan) -> None:
    """Raise ValueError naming what is wrong; nft would give a worse message."""
    for name in ("lan_if", "wan_if"):
        if not _IFNAME.match(getattr(plan, name)):
            raise ValueError(f"{name}: not an interface name: {getattr(plan, name)!r}")
    if plan.lan_if == plan.wan_if:
        raise ValueError("lan_if and wan_if are the same interface")
    if len(set(plan.lan_ifs)) != len(plan.lan_ifs) or plan.wan_if in plan.lan_ifs:
        raise ValueError(f"vlans: an interface is named twice: {', '.join(plan.lan_ifs)}")
    if plan.vlans and plan.lan_net4 is None:
        raise ValueError("lan_net4: required with VLANs (the untagged LAN's subnet)")
    if plan.lan_net4 is not None:
        _nets((plan.lan_net4,), 4)
    _ip(plan.box_ipv4, 4)
    if plan.box_ipv6:
        _ip(plan.box_ipv6, 6)
    for name in ("portal_http_port", "portal_https_port", "captive_dns_port", "dae_port"):
        port = getattr(plan, name)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"{name}: not a port: {port!r}")
    if plan.captive_dns_port in (53, plan.portal_http_port, plan.portal_https_port):
        raise ValueError(f"captive_dns_port: {plan.captive_dns_port} is taken")
    if not isinstance(plan.captive_dns_rate, int) or plan.captive_dns_rate < 1:
        raise ValueError(f"captive_dns_rate: not a rate: {plan.captive_dns_rate!r}")
    _nets(plan.garden4, 4)
    _nets(plan.garden6, 6)
    _nets(plan.access_points, 4)
    if not isinstance(plan.ap_port, int) or not 0 < plan.ap_port < 65536:
        raise ValueError(f"ap_port: not a port: {plan.ap_port!r}")
    for name in ("open_private", "wan_nets"):
        for value in getattr(plan, name):
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{name}: not a network: {value!r}") from None
    for name in ("ntp_servers", "dae_clients"):
        for value in getattr(plan, name):
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"{name}: not an address: {value!r}") from None
    wan_ports(plan)


def _sets() -> str:
    client = "flags timeout;"
    # Each element carries its own limit; nft wants the kind declared on the set.
    rate = "limit rate over 1 bytes/second;"
    return f"""\
	set allowed4 {{ type ether_addr . ipv4_addr; {client} }}
	set allowed6 {{ type ether_addr . ipv6_addr; {client} }}
	set up4 {{ type ether_addr . ipv4_addr; {client} counter; }}
	set up6 {{ type ether_addr . ipv6_addr; {client} counter; }}
	set down4 {{ type ipv4_addr; {client} counter; }}
	set down6 {{ type ipv6_addr; {client} counter; }}
	set rate_up4 {{ type ether_addr . ipv4_addr; {client} {rate} }}
	set rate_up6 {{ type ether_addr . ipv6_addr; {client} {rate} }}
	set rate_down4 {{ type ipv4_addr; {client} {rate} }}
	set rate_down6 {{ type ipv6_addr; {client} {rate} }}
	set garden4 {{ type ipv4_addr; flags interval; }}
	set garden6 {{ type ipv6_addr; flags interval; }}
	set garden_dns4 {{ type ipv4_addr; flags timeout; timeout {GARDEN_DNS_TIMEOUT}; }}
	set garden_dns6 {{ type ipv6_addr; flags timeout; timeout {GARDEN_DNS_TIMEOUT}; }}
	set private4 {{ type ipv4_addr; flags interval; }}
	set private6 {{ type ipv6_addr; flags interval; }}
	set dns_rate {{ type ether_addr; size 65535; flags dynamic,timeout; timeout 1m; }}
	set portal_conns {{ type ether_addr; size 65535; flags dynamic; }}
"""


def _first(addresses: Iterable[str], version: int) -> str | None:
    return next((a for a in addresses if ipaddress.ip_address(a).version == version), None)


def _captive6(plan: FirewallPlan) -> str:
    """The IPv6 half of ``captive_nat`` (only with an IPv6 address on the box)."""
    if not plan.box_ipv6:
        return ""
    box6, cport = plan.box_ipv6, plan.captive_dns_port
    ntp6 = _first(plan.ntp_servers, 6) or box6
    ntp = (f"\t\tmeta nfproto ipv6 udp dport 123 dnat ip6 to [{ntp6}]:123\n"
           if plan.captive_ntp else "")
    return f"""\
		meta nfproto ipv6 meta l4proto {{ tcp, udp }} th dport 53 dnat ip6 to [{box6}]:{cport}
{ntp}\t\tip6 daddr @garden6 return
		ip6 daddr @garden_dns6 return
		tcp dport 80 meta nfproto ipv6 dnat ip6 to [{box6}]:{plan.portal_http_port}
"""


def _box_http6(plan: FirewallPlan, lan: str) -> str:
    """Port 80 of the box's LAN IPv6 address to the portal, for every
    client: the portal's name has an AAAA record (gateway/dnsmasq.py)."""
    if not plan.box_ipv6:
        return ""
    box6, http = plan.box_ipv6, plan.portal_http_port
    return f"\t\tiifname {lan} ip6 daddr {box6} tcp dport 80 dnat ip6 to [{box6}]:{http}\n"


def _wan_in(plan: FirewallPlan) -> str:
    """What the box takes from the WAN side: replies, neighbour discovery and
    its own DHCP answers, RFC 5176 from the centre, the services named."""
    lines = [
        "ct state established,related accept",
        # IPv6 on the WAN needs neighbour discovery and router advertisements.
        "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept",
        "udp sport 67 udp dport 68 accept",
        "udp sport 547 udp dport 546 accept",
    ]
    for version, match in ((4, "ip saddr"), (6, "ip6 saddr")):
        clients = [str(ipaddress.ip_address(a)) for a in plan.dae_clients
                   if ipaddress.ip_address(a).version == version]
        if clients:
            lines.append(f"{match} {{ {', '.join(clients)} }} udp dport {plan.dae_port} accept")
    for proto, ports in wan_ports(plan).items():
        if ports:
            lines.append(f"{proto} dport {{ {', '.join(map(str, sorted(set(ports))))} }} accept")
    lines.append("drop")
    return "".join(f"\t\t{line}\n" for line in lines)


def _guard(plan: FirewallPlan) -> str:
    """With VLANs, each LAN interface takes only sources of its own subnet:
    an admitted client's (MAC, IP) is then good only on the interface it
    checked in from, and a clone of it on another VLAN gets nothing. Before
    conntrack and NAT (priority raw). No IPv6 is served on a VLAN."""
    if not plan.vlans:
        return ""
    nets = [(plan.lan_if, plan.lan_net4)] + [(v.interface, str(v.network)) for v in plan.vlans]
    lines = [f'iifname "{name}" ip saddr != {{ 0.0.0.0, {net} }} drop' for name, net in nets]
    lines += [f'iifname "{v.interface}" ip6 saddr != {{ ::, fe80::/10 }} drop'
              for v in plan.vlans]
    return "".join(f"\t\t{line}\n" for line in lines)


def _chains(plan: FirewallPlan) -> str:
    # The LAN's interfaces: the untagged LAN and each VLAN's sub-interface.
    lan = f'"{plan.lan_if}"' if not plan.vlans else \
        "{ " + ", ".join(f'"{name}"' for name in plan.lan_ifs) + " }"
    wan, box = f'"{plan.wan_if}"', plan.box_ipv4
    http, https, cport = plan.portal_http_port, plan.portal_https_port, plan.captive_dns_port
    masq = (f"\t\tiifname {lan} oifname {wan} meta nfproto ipv4 masquerade\n"
            if plan.masquerade else "")
    ntp4 = _first(plan.ntp_servers, 4) or box
    ntp_nat = (f"\t\tmeta nfproto ipv4 udp dport 123 dnat ip to {ntp4}:123\n"
               if plan.captive_ntp else "")
    # Captive NTP DNAT-ed to a configured server is forwarded, to it only.
    to_ntp = plan.captive_ntp and bool(plan.ntp_servers)
    ntp_out = "\t\tct status dnat udp dport 123 accept\n" if to_ntp else ""
    ntp_back = ("\t\tct status dnat ct state established,related udp sport 123 accept\n"
                if to_ntp else "")
    rate = plan.captive_dns_rate
    aps = (f"ip saddr {{ {', '.join(plan.access_points)} }} udp dport {plan.ap_port} accept\n\t\t"
           if plan.access_points else "")
    # Before the established/related accept: one UDP socket's queries after
    # the first are "established" for conntrack.
    dns_rate = (f"meta l4proto {{ tcp, udp }} th dport {cport} update @dns_rate "
                f"{{ ether saddr limit rate over {rate}/second burst {3 * rate} packets }} drop")
    # After the DNAT of port 80, so the ports are the portal's own; a
    # closed connection stops counting when conntrack sees it close.
    portal_cap = (f"tcp dport {{ {http}, {https} }} ct state new add @portal_conns "
                  f"{{ ether saddr ct count over {PORTAL_CONNS_PER_DEVICE} }} jump refuse")
    return f"""\
	chain pre_nat {{
		type nat hook prerouting priority dstnat; policy accept;
		iifname {lan} ip daddr {box} tcp dport 80 dnat ip to {box}:{http}
{_box_http6(plan, lan)}		iifname {lan} jump captive_nat
	}}
	chain captive_nat {{
		ether saddr . ip saddr @allowed4 return
		ether saddr . ip6 saddr @allowed6 return
		meta nfproto ipv4 meta l4proto {{ tcp, udp }} th dport 53 dnat ip to {box}:{cport}
{ntp_nat}\t\tip daddr @garden4 return
		ip daddr @garden_dns4 return
		tcp dport 80 meta nfproto ipv4 dnat ip to {box}:{http}
{_captive6(plan)}\t}}
	chain post_nat {{
		type nat hook postrouting priority srcnat; policy accept;
{masq}\t}}
	chain forward {{
		type filter hook forward priority filter; policy accept;
		iifname {lan} oifname {lan} drop
		iifname {lan} jump from_lan
		oifname {lan} jump to_lan
	}}
	chain from_lan {{
		oifname != {wan} jump refuse
{ntp_out}\t\tip daddr @private4 jump refuse
		ip6 daddr @private6 jump refuse
		ether saddr . ip saddr @rate_up4 drop
		ether saddr . ip6 saddr @rate_up6 drop
		ether saddr . ip saddr @up4 accept
		ether saddr . ip6 saddr @up6 accept
		ip daddr @garden4 accept
		ip daddr @garden_dns4 accept
		ip6 daddr @garden6 accept
		ip6 daddr @garden_dns6 accept
		jump refuse
	}}
	chain to_lan {{
		iifname != {wan} drop
		ip daddr @rate_down4 drop
		ip6 daddr @rate_down6 drop
		ct state established,related ip daddr @down4 accept
		ct state established,related ip6 daddr @down6 accept
		ct state established,related ip saddr @garden4 accept
		ct state established,related ip saddr @garden_dns4 accept
		ct state established,related ip6 saddr @garden6 accept
		ct state established,related ip6 saddr @garden_dns6 accept
{ntp_back}\t\tdrop
	}}
	chain input {{
		type filter hook input priority filter; policy accept;
		iifname {lan} jump lan_in
		iifname {wan} jump wan_in
	}}
	chain lan_in {{
		{dns_rate}
		ct state established,related accept
		udp dport {{ 67, 547 }} accept
		meta l4proto {{ tcp, udp }} th dport {{ 53, {cport} }} accept
		udp dport 123 accept
		{portal_cap}
		tcp dport {{ {http}, {https} }} accept
		meta l4proto {{ icmp, ipv6-icmp }} accept
		{aps}jump refuse
	}}
	chain wan_in {{
{_wan_in(plan)}\t}}
	chain refuse {{
		meta l4proto tcp reject with tcp reset
		meta l4proto udp reject with icmpx port-unreachable
		reject with icmpx admin-prohibited
	}}
	chain lan_guard {{
		type filter hook prerouting priority raw; policy accept;
{_guard(plan)}\t}}
"""


def ruleset(plan: FirewallPlan) -> str:
    """The nft script for ``plan``: valid on a fresh kernel and on one that
    already has the table, where it keeps the clients' elements (and their
    counters and timeouts) and replaces every rule in one transaction."""
    check_plan(plan)
    lines = [
        f"add table {FAMILY} {TABLE}",
        # Rules only: set elements (the authorised clients) survive.
        f"flush table {FAMILY} {TABLE}",
        f"table {FAMILY} {TABLE} {{",
        _sets() + _chains(plan) + "}",
    ]
    for name, nets in (("garden4", _nets(plan.garden4, 4)), ("garden6", _nets(plan.garden6, 6)),
                       ("private4", blocked_nets(plan, 4)), ("private6", blocked_nets(plan, 6))):
        lines.append(f"flush set {FAMILY} {TABLE} {name}")
        if nets:
            lines.append(f"add element {FAMILY} {TABLE} {name} {{ {', '.join(nets)} }}")
    return "\n".join(lines) + "\n"


def _key4(mac: str, ipv4: str) -> str:
    return f"{mac} . {ipv4}"


def _elements(mac: str, ipv4: str, ipv6: Sequence[str]) -> list[tuple[str, str]]:
    """(set, element key) for every element of one client that must exist."""
    out = [("allowed4", _key4(mac, ipv4)), ("up4", _key4(mac, ipv4)), ("down4", ipv4)]
    for addr in ipv6:
        out += [("allowed6", f"{mac} . {addr}"), ("up6", f"{mac} . {addr}"), ("down6", addr)]
    return out


def _rate_elements(mac: str, ipv4: str, ipv6: Sequence[str]) -> list[tuple[str, str, str]]:
    """(set, element key, direction) of the client's bandwidth caps, if it has any."""
    out = [("rate_up4", _key4(mac, ipv4), "up"), ("rate_down4", ipv4, "down")]
    for addr in ipv6:
        out += [("rate_up6", f"{mac} . {addr}", "up"), ("rate_down6", addr, "down")]
    return out


def limit_stmt(bits_per_second: int) -> str:
    """A policer for a WISPr bandwidth (bit/s). The burst is at least 128 KiB
    because with GSO/GRO one kernel packet can carry 64 KiB: a smaller bucket
    would drop every such packet."""
    if not isinstance(bits_per_second, int) or bits_per_second < 8:
        raise ValueError(f"bandwidth must be a whole number of bit/s >= 8: {bits_per_second!r}")
    rate = bits_per_second // 8
    return f"limit rate over {rate} bytes/second burst {max(rate // 4, 131072)} bytes"


def _client(mac: str, ipv4: str, ipv6: Sequence[str]) -> tuple[str, str, list[str]]:
    return normal_mac(mac), _ip(ipv4, 4), [_ip(a, 6) for a in ipv6]


def _timeout(timeout: int) -> int:
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
        raise ValueError(f"timeout must be a whole number of seconds >= 1: {timeout!r}")
    return timeout


def _replace(name: str, key: str, stmt: str, secs: int) -> list[str]:
    ref = f"element {FAMILY} {TABLE} {name} {{ {key} }}"
    # add-then-delete makes the delete safe when the element is absent.
    lines = [f"add {ref}", f"delete {ref}"]
    if secs:
        lines.append(f"add element {FAMILY} {TABLE} {name} {{ {key}{stmt} timeout {secs}s }}")
    return lines


def _rates(mac: str, ipv4: str, ipv6: Sequence[str], secs: int, rate_up: int | None,
           rate_down: int | None) -> list[str]:
    lines = []
    for name, key, direction in _rate_elements(mac, ipv4, ipv6):
        rate = rate_up if direction == "up" else rate_down
        stmt = f" {limit_stmt(rate)}" if rate is not None else ""
        lines += _replace(name, key, stmt, secs if rate is not None else 0)
    return lines


def create_script(mac: str, ipv4: str, ipv6: Sequence[str], timeout: int) -> str:
    """One transaction that adds a client with no entry yet; it fails as a
    whole ("File exists") when one of its elements is already there."""
    mac, ipv4, v6 = _client(mac, ipv4, ipv6)
    secs = _timeout(timeout)
    return "".join(f"create element {FAMILY} {TABLE} {name} {{ {key} timeout {secs}s }}\n"
                   for name, key in _elements(mac, ipv4, v6))


def allow_script(mac: str, ipv4: str, ipv6: Sequence[str], timeout: int,
                 rate_up: int | None = None, rate_down: int | None = None) -> str:
    """One transaction that (re)places a client: a new session, new counters,
    and its bandwidth caps (bit/s, None: no cap)."""
    mac, ipv4, v6 = _client(mac, ipv4, ipv6)
    secs = _timeout(timeout)
    lines = []
    for name, key in _elements(mac, ipv4, v6):
        lines += _replace(name, key, "", secs)
    lines += _rates(mac, ipv4, v6, secs, rate_up, rate_down)
    return "\n".join(lines) + "\n"


def revoke_script(mac: str, ipv4: str, ipv6: Sequence[str]) -> str:
    mac, ipv4, v6 = _client(mac, ipv4, ipv6)
    lines = []
    for name, key in _elements(mac, ipv4, v6):
        lines += _replace(name, key, "", 0)
    for name, key, _direction in _rate_elements(mac, ipv4, v6):
        lines += _replace(name, key, "", 0)
    return "\n".join(lines) + "\n"


def rates_script(mac: str, ipv4: str, ipv6: Sequence[str], timeout: int,
                 rate_up: int | None, rate_down: int | None) -> str:
    """New bandwidth caps for an allowed client, expiring with it (``timeout``:
    the seconds it has left)."""
    mac, ipv4, v6 = _client(mac, ipv4, ipv6)
    return "\n".join(_rates(mac, ipv4, v6, _timeout(timeout), rate_up, rate_down)) + "\n"


def timeout_script(present: Sequence[Element], timeout: int, in_place: bool = True) -> str:
    """A new timeout for the elements of one client (``present``: as read).

    In place: re-adding an existing element with a timeout and an expiry
    updates them (Linux >= 6.10), counters and limits untouched. Otherwise the
    portable form: delete and re-add, carrying the counters and limits read
    just before; the packets forwarded between that read and this transaction
    are then not counted.
    """
    secs = _timeout(timeout)
    lines = []
    for e in present:
        key = " . ".join(e.key)
        if in_place:
            lines.append(f"add element {FAMILY} {TABLE} {e.set} "
                         f"{{ {key} timeout {secs}s expires {secs}s }}")
            continue
        stmt = f" counter packets {e.packets} bytes {e.bytes}" if e.counted else ""
        if e.limit:
            stmt += f" {e.limit}"
        lines += _replace(e.set, key, stmt, secs)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Element:
    """One element of a client set as ``nft -j`` shows it."""

    set: str
    key: tuple[str, ...]
    expires: float | None
    timeout: float | None
    packets: int = 0
    bytes: int = 0
    counted: bool = False  # it has a counter (up*/down* sets)
    limit: str = ""  # its limit statement, in nft syntax (rate_* sets)


def _limit(data: Any) -> str:
    if not isinstance(data, dict) or "rate" not in data:
        return ""
    over = "over " if data.get("inv") else ""
    text = (f"limit rate {over}{data['rate']} {data.get('rate_unit', 'bytes')}/"
            f"{data.get('per', 'second')}")
    if data.get("burst"):
        text += f" burst {data['burst']} {data.get('burst_unit', 'bytes')}"
    return text


def parse_networks(listing: Any) -> tuple[str, ...]:
    """The global subnets of an interface from ``ip -j addr show dev X``."""
    out = []
    for link in listing if isinstance(listing, list) else []:
        for info in link.get("addr_info", []):
            if info.get("scope") == "global" and "local" in info:
                net = ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
                out.append(str(net))
    return tuple(dict.fromkeys(out))


def parse_sets(listing: dict[str, Any]) -> dict[str, list[Element]]:
    """Client and rate sets from ``nft -j list table``: set name -> elements."""
    out: dict[str, list[Element]] = {}
    for item in listing.get("nftables", []):
        data = item.get("set")
        if not data or data.get("name") not in CLIENT_SETS4 + CLIENT_SETS6 + RATE_SETS:
            continue
        name = data["name"]
        elems = out.setdefault(name, [])
        for raw in data.get("elem", []):
            elem = raw.get("elem", raw) if isinstance(raw, dict) else raw
            if not isinstance(elem, dict):  # a bare value: no timeout, no counter
                elems.append(Element(name, _key(elem), None, None))
                continue
            counter = elem.get("counter")
            elems.append(Element(name, _key(elem.get("val")), _num(elem.get("expires")),
                                 _num(elem.get("timeout")),
                                 int((counter or {}).get("packets", 0)),
                                 int((counter or {}).get("bytes", 0)),
                                 counted=counter is not None, limit=_limit(elem.get("limit"))))
    return out


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _key(val: Any) -> tuple[str, ...]:
    if isinstance(val, dict) and "concat" in val:
        return tuple(str(v) for v in val["concat"])
    return (str(val),)


def join_clients(sets: dict[str, list[Element]]) -> list[Allowed]:
    """Allowed clients from the client sets: up4 holds who, down4 and the v6
    sets add the other direction and the IPv6 addresses (by MAC)."""
    down4 = {e.key[0]: e for e in sets.get("down4", [])}
    down6 = {e.key[0]: e for e in sets.get("down6", [])}
    v6_by_mac: dict[str, list[Element]] = {}
    for e in sets.get("up6", []):
        v6_by_mac.setdefault(e.key[0], []).append(e)
    out = []
    for up in sorted(sets.get("up4", []), key=lambda e: e.key):
        mac, ipv4 = up.key
        down = down4.get(ipv4)
        v6 = sorted(v6_by_mac.get(mac, []), key=lambda e: e.key)
        bytes_up, packets_up = up.bytes, up.packets
        bytes_down = down.bytes if down else 0
        packets_down = down.packets if down else 0
        for e in v6:
            bytes_up += e.bytes
            packets_up += e.packets
            d6 = down6.get(e.key[1])
            if d6:
                bytes_down += d6.bytes
                packets_down += d6.packets
        out.append(Allowed(mac=mac, ipv4=ipv4, ipv6=tuple(e.key[1] for e in v6),
                           expires_in=up.expires if up.expires is not None else float("inf"),
                           bytes_up=bytes_up, bytes_down=bytes_down,
                           packets_up=packets_up, packets_down=packets_down))
    return out


class Firewall:
    """The table in the kernel, in this namespace or ``netns``."""

    def __init__(self, plan: FirewallPlan, netns: str | None = None) -> None:
        check_plan(plan)
        self.plan = plan
        self.netns = netns

    def _run(self, args: Sequence[str], script: str | None = None, tool: str = "nft") -> str:
        cmd = [tool, *args]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        try:
            out = subprocess.run(cmd, input=script, capture_output=True, text=True,
                                 check=False, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NftError(f"cannot run {tool}: {exc}") from exc
        if out.returncode != 0:
            raise NftError(f"{tool} {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def wan_networks(self) -> tuple[str, ...]:
        """The WAN interface's subnets now (none while it does not exist)."""
        try:
            text = self._run(["-j", "addr", "show", "dev", self.plan.wan_if], tool="ip")
        except NftError as exc:
            if "does not exist" in str(exc):
                log.warning("WAN interface %s not found: its subnet is not blocked",
                            self.plan.wan_if)
                return ()
            raise
        return parse_networks(json.loads(text))

    def _script(self, script: str) -> None:
        self._run(["-f", "-"], script)

    def _listing(self) -> dict[str, Any] | None:
        try:
            text = self._run(["-j", "list", "table", FAMILY, TABLE])
        except NftError as exc:
            if "No such file or directory" in str(exc):
                return None
            raise
        data: dict[str, Any] = json.loads(text)
        return data

    def apply(self) -> None:
        """Install or replace the rules in one transaction; clients stay. The
        WAN's subnets are read now: clients do not reach the site's network."""
        plan = dataclasses.replace(self.plan, wan_nets=self.plan.wan_nets + self.wan_networks())
        script = ruleset(plan)
        listing = self._listing()
        stale = []
        if listing is not None:
            for item in listing.get("nftables", []):
                chain = item.get("chain")
                if chain and chain.get("name") not in CHAINS:
                    stale.append(chain["name"])
        # Leftover chains of an older version go after the flush, in the same transaction.
        cleanup = "".join(f"delete chain {FAMILY} {TABLE} {name}\n" for name in stale)
        try:
            self._script(script + cleanup)
        except NftError as exc:
            if listing is None:
                raise
            # A set or base chain defined differently by an older version
            # cannot be redefined in place: rebuild, carrying the clients over.
            log.warning("rebuilding table %s %s: %s", FAMILY, TABLE, exc)
            self._script(rebuild_script(script, parse_sets(listing)))
        log.info("nftables table %s %s applied (lan %s, wan %s)", FAMILY, TABLE,
                 self.plan.lan_if, self.plan.wan_if)

    def allow(self, mac: str, ipv4: str, ipv6: Sequence[str] = (), timeout: int = 3600,
              rate_up: int | None = None, rate_down: int | None = None) -> None:
        """Let the client through for ``timeout`` seconds, counters from zero,
        capped at ``rate_up``/``rate_down`` bit/s when given."""
        created = False
        if rate_up is None and rate_down is None:
            # The common case, a new client: one `create` transaction, which
            # needs no look at the sets (3-12 ms instead of 15-18 ms; it runs
            # under the daemon's lock, so it bounds the check-in rate).
            try:
                self._script(create_script(mac, ipv4, ipv6, timeout))
                created = True
            except NftError as exc:
                if "File exists" not in str(exc):
                    raise
        if not created:
            self._script(allow_script(mac, ipv4, ipv6, timeout, rate_up, rate_down))
        log.info("allowed %s %s %s for %ss", normal_mac(mac), ipv4, " ".join(ipv6), timeout)

    def revoke(self, mac: str, ipv4: str, ipv6: Sequence[str] = ()) -> None:
        """Remove the client; nothing to remove is not an error."""
        self._script(revoke_script(mac, ipv4, ipv6))
        log.info("revoked %s %s %s", normal_mac(mac), ipv4, " ".join(ipv6))

    def set_timeout(self, mac: str, ipv4: str, ipv6: Sequence[str], timeout: int) -> None:
        """A new time left for an allowed client (CoA), counters kept.

        Raises NotAllowed when the client has no entry. The kernel updates
        the timeout in place when it can (Linux >= 6.10: counters exact);
        otherwise the elements are re-added with the counters just read.
        """
        mac, ipv4, v6 = _client(mac, ipv4, ipv6)
        secs = _timeout(timeout)
        present = self._client_elements(mac, ipv4, v6)
        if any(e.expires is not None and e.expires < 1 for e in present):
            # Re-adding an element the kernel removes meanwhile would bring it
            # back as a new one: a session the kernel just ended, revived.
            raise NotAllowed(f"{mac} {ipv4}: expiring now")
        self._script(timeout_script(present, secs))
        after = self._client_elements(mac, ipv4, v6)
        if all(e.timeout == secs for e in after):
            return
        log.info("kernel cannot update timeouts in place; re-adding %s %s with its counters",
                 mac, ipv4)
        self._script(timeout_script(after, secs, in_place=False))

    def set_rates(self, mac: str, ipv4: str, ipv6: Sequence[str], rate_up: int | None,
                  rate_down: int | None) -> None:
        """New bandwidth caps (bit/s; None: no cap) for an allowed client (CoA)."""
        mac, ipv4, v6 = _client(mac, ipv4, ipv6)
        present = self._client_elements(mac, ipv4, v6)
        left = min(int(e.expires or 0) for e in present)
        self._script(rates_script(mac, ipv4, v6, max(left, 1), rate_up, rate_down))

    def _client_elements(self, mac: str, ipv4: str, ipv6: Sequence[str]) -> list[Element]:
        """The client's elements; NotAllowed when a required one is missing."""
        listing = self._listing()
        sets = parse_sets(listing) if listing else {}
        found = []
        for name, key in _elements(mac, ipv4, ipv6):
            want = tuple(key.split(" . "))
            match = [e for e in sets.get(name, []) if e.key == want]
            if not match:
                raise NotAllowed(f"{mac} {ipv4}: no element {key} in set {name}")
            found.append(match[0])
        for name, key, _direction in _rate_elements(mac, ipv4, ipv6):
            want = tuple(key.split(" . "))
            found += [e for e in sets.get(name, []) if e.key == want]
        return found

    def clients(self) -> list[Allowed]:
        """Every allowed client, with time left and counters."""
        listing = self._listing()
        return join_clients(parse_sets(listing)) if listing else []

    def exists(self) -> bool:
        return self._listing() is not None

    def remove(self) -> None:
        """Delete the table and everything in it (idempotent)."""
        self._script(f"add table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n")
        log.info("nftables table %s %s removed", FAMILY, TABLE)

    def set_sizes(self) -> dict[str, int]:
        """How many elements each client set holds (for the metrics); empty
        without the table."""
        listing = self._listing()
        sets = parse_sets(listing) if listing else {}
        return {name: len(sets.get(name, [])) for name in CLIENT_SETS4 + CLIENT_SETS6}


def rebuild_script(script: str, sets: dict[str, list[Element]]) -> str:
    """Delete the table and apply ``script``, re-adding the elements read
    before (counters, limits, time left) in the same transaction."""
    lines = [f"add table {FAMILY} {TABLE}", f"delete table {FAMILY} {TABLE}", script]
    for elems in sets.values():
        for e in elems:
            if e.expires is None or e.expires < 1:
                continue  # permanent elements are nothing this code adds; expiring ones are gone
            stmt = f" counter packets {e.packets} bytes {e.bytes}" if e.counted else ""
            if e.limit:
                stmt += f" {e.limit}"
            timeout = int(max(e.timeout or 0, e.expires))
            lines.append(f"add element {FAMILY} {TABLE} {e.set} {{ {' . '.join(e.key)}{stmt}"
                         f" timeout {timeout}s expires {int(e.expires)}s }}")
    return "\n".join(lines) + "\n"

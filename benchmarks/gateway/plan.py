"""The benchmark's pure parts: addresses, nft scripts, statistics.

Addresses: the clients that send packets sit on the lab's LAN
(198.51.100.0/24). The sets' bulk (10,000 entries, 5,000 sessions, 500
check-ins) needs more addresses than a /24 holds; it takes them from
198.18.0.0/15, the range RFC 2544 sets aside for benchmarks. Those entries
never carry a packet.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence

from passerelle.gateway.nft import FAMILY, TABLE

BULK_NET = ipaddress.IPv4Network("198.18.0.0/15")
# The plain-routing comparison: masquerade only, in a table of its own.
PLAIN_TABLE = "psl_bench_plain"
CHUNK = 1000  # elements per "add element" line: one netlink batch either way


def bulk_clients(count: int, first: int = 1, mac_prefix: int = 0xB0) -> list[tuple[str, str]]:
    """``count`` distinct (MAC, IPv4) pairs from BULK_NET, starting at host ``first``."""
    if first < 1 or first + count >= BULK_NET.num_addresses:
        raise ValueError(f"{count} clients from host {first} do not fit in {BULK_NET}")
    out = []
    for n in range(first, first + count):
        ip = BULK_NET.network_address + n
        mac = f"02:{mac_prefix:02x}:{(n >> 24) & 0xFF:02x}:{(n >> 16) & 0xFF:02x}:" \
              f"{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"
        out.append((mac, str(ip)))
    return out


def lan_clients(count: int, first_host: int = 20) -> list[tuple[str, str]]:
    """``count`` distinct (MAC, IPv4) pairs on the lab's LAN 198.51.100.0/24."""
    if first_host < 2 or first_host + count > 255:
        raise ValueError(f"{count} clients from .{first_host} do not fit in 198.51.100.0/24")
    return [(f"02:50:01:00:00:{h:02x}", f"198.51.100.{h}")
            for h in range(first_host, first_host + count)]


def fill_script(clients: Sequence[tuple[str, str]], timeout: int) -> str:
    """The elements ``Firewall.allow`` would add for each client (allowed4,
    up4, down4; no IPv6, no caps), as a few bulk "add element" commands."""
    lines = []
    for start in range(0, len(clients), CHUNK):
        part = clients[start:start + CHUNK]
        pairs = ", ".join(f"{mac} . {ip} timeout {timeout}s" for mac, ip in part)
        addrs = ", ".join(f"{ip} timeout {timeout}s" for _mac, ip in part)
        for name in ("allowed4", "up4"):
            lines.append(f"add element {FAMILY} {TABLE} {name} {{ {pairs} }}")
        lines.append(f"add element {FAMILY} {TABLE} down4 {{ {addrs} }}")
    return "\n".join(lines) + "\n"


def plain_script(lan_if: str, wan_if: str) -> str:
    """Plain routing's only rule: masquerade from the LAN out of the WAN."""
    return (f"table ip {PLAIN_TABLE} {{\n"
            f"\tchain post_nat {{\n"
            f"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
            f'\t\tiifname "{lan_if}" oifname "{wan_if}" masquerade\n'
            f"\t}}\n}}\n")


def remove_plain_script() -> str:
    return f"add table ip {PLAIN_TABLE}\ndelete table ip {PLAIN_TABLE}\n"


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    if not values:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

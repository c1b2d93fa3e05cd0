"""The LAN's IPv6 router advertisements, as bytes (RFC 4861 section 4.2).

The box sends them itself, not dnsmasq, because dnsmasq cannot add the
captive-portal option (RFC 8910 section 2.3, type 37). What they carry is
what dnsmasq's did: M=0, O=1 (stateless DHCPv6 for option 103), the /64
with the L and A flags (SLAAC), the box as DNS server (RDNSS, RFC 8106),
the link's MTU and the box's link-layer address; plus option 37 with the
portal's RFC 8908 API URL, the one DHCPv6 option 103 carries.

Pure: ``build`` gives the ICMPv6 message (checksum 0: the kernel fills it in
on a raw ICMPv6 socket), ``interval`` the wait before the next unsolicited
one, ``is_solicitation`` checks a received Router Solicitation.
gateway/ra_sender.py sends them.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import dataclass

ROUTER_ADVERTISEMENT = 134
ROUTER_SOLICITATION = 133
ND_HOP_LIMIT = 255  # RFC 4861 6.1.1: a neighbour discovery message must arrive with 255

# RFC 4861 6.2.1 and 10: unsolicited ones every 150..250 s (200 s on average;
# MinRtrAdvInterval at most 0.75 MaxRtrAdvInterval), the first three at most
# 16 s apart, answers to solicitations at most every 3 s, after 0..0.5 s.
MIN_RTR_ADV_INTERVAL = 150.0
MAX_RTR_ADV_INTERVAL = 250.0
MAX_INITIAL_RTR_ADVERTISEMENTS = 3
MAX_INITIAL_RTR_ADVERT_INTERVAL = 16.0
MIN_DELAY_BETWEEN_RAS = 3.0
MAX_RA_DELAY_TIME = 0.5

ROUTER_LIFETIME = 1800  # s, dnsmasq's default (3 x 600 s), at least MaxRtrAdvInterval

_OPT_SOURCE_LLADDR = 1
_OPT_PREFIX = 3
_OPT_MTU = 5
_OPT_RDNSS = 25
_OPT_CAPTIVE_PORTAL = 37
_FLAG_O = 0x40
_FLAG_L, _FLAG_A = 0x80, 0x40


@dataclass(frozen=True)
class Advert:
    prefix: ipaddress.IPv6Network  # the LAN's /64
    lladdr: str = ""  # the box's MAC on the LAN, "aa:bb:..."; "" to leave it out
    mtu: int | None = None  # None: no MTU option
    dns: tuple[str, ...] = ()  # RDNSS addresses
    captive_url: str = ""  # RFC 8910 option 37; "" to leave it out
    lifetime: int = 3600  # s: the prefix's valid and preferred lifetimes, and the RDNSS's
    router_lifetime: int = ROUTER_LIFETIME  # 0 in the last one (RFC 4861 6.2.5)
    hop_limit: int = 64  # the Cur Hop Limit clients should use


def _option(kind: int, body: bytes) -> bytes:
    """Type, length in units of 8 octets, body padded with zeros to fit."""
    size = -(-(2 + len(body)) // 8) * 8
    return struct.pack("!BB", kind, size // 8) + body.ljust(size - 2, b"\0")


def build(advert: Advert) -> bytes:
    """The Router Advertisement for ``advert``; ValueError when it cannot be one."""
    if advert.prefix.prefixlen != 64:
        raise ValueError(f"prefix: SLAAC needs a /64, not {advert.prefix}")
    if not 0 <= advert.router_lifetime <= 9000:  # RFC 4861 6.2.1 AdvDefaultLifetime
        raise ValueError(f"router_lifetime: {advert.router_lifetime} is not 0..9000")
    url = advert.captive_url.encode()
    if url and (not url.startswith(b"https://") or len(url) > 255 * 8 - 2):  # 8-bit length
        raise ValueError(f"captive_url: not an https URL that fits: {advert.captive_url!r}")
    message = struct.pack("!BBHBBHII", ROUTER_ADVERTISEMENT, 0, 0, advert.hop_limit, _FLAG_O,
                          advert.router_lifetime, 0, 0)
    message += _option(_OPT_PREFIX, struct.pack(
        "!BBIII16s", 64, _FLAG_L | _FLAG_A, advert.lifetime, advert.lifetime, 0,
        advert.prefix.network_address.packed))
    if advert.mtu is not None:
        message += _option(_OPT_MTU, struct.pack("!HI", 0, advert.mtu))
    if advert.lladdr:
        message += _option(_OPT_SOURCE_LLADDR, bytes.fromhex(advert.lladdr.replace(":", "")))
    if advert.dns:
        message += _option(_OPT_RDNSS, struct.pack("!HI", 0, advert.lifetime) + b"".join(
            ipaddress.IPv6Address(a).packed for a in advert.dns))
    if url:
        message += _option(_OPT_CAPTIVE_PORTAL, url)
    return message


def interval(sent: int, rng: random.Random) -> float:
    """Seconds until the next unsolicited advertisement, ``sent`` having
    gone out so far (RFC 4861 6.2.4: uniformly random, shorter at first)."""
    wait = rng.uniform(MIN_RTR_ADV_INTERVAL, MAX_RTR_ADV_INTERVAL)
    if sent < MAX_INITIAL_RTR_ADVERTISEMENTS:
        return min(wait, MAX_INITIAL_RTR_ADVERT_INTERVAL)
    return wait


def is_solicitation(message: bytes, hop_limit: int) -> bool:
    """Whether ``message`` is a valid Router Solicitation (RFC 4861 6.1.1),
    ``hop_limit`` being the one it arrived with."""
    return (hop_limit == ND_HOP_LIMIT and len(message) >= 8
            and message[0] == ROUTER_SOLICITATION and message[1] == 0)


def answer_at(now: float, last_sent: float, rng: random.Random) -> float:
    """When to multicast the answer to a solicitation received at ``now``,
    the last advertisement having gone at ``last_sent`` (RFC 4861 6.2.6)."""
    return max(now + rng.uniform(0, MAX_RA_DELAY_TIME), last_sent + MIN_DELAY_BETWEEN_RAS)

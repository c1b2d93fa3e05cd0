"""The box's router advertisements (gateway/ra.py), decoded by scapy's parser."""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest
from scapy.layers.inet6 import (
    ICMPv6ND_RA,
    ICMPv6NDOptCaptivePortal,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptSrcLLAddr,
)

from passerelle.gateway import ra

API = "https://portal.passerelle.internal:8443/api/captive"
ADVERT = ra.Advert(prefix=ipaddress.IPv6Network("2001:db8:1::/64"), lladdr="02:50:00:00:00:01",
                   mtu=1500, dns=("2001:db8:1::1",), captive_url=API, lifetime=600)


def test_the_advertisement_carries_what_dnsmasqs_did_and_option_37() -> None:
    message = ra.build(ADVERT)
    decoded = ICMPv6ND_RA(message)
    assert (decoded.type, decoded.code, decoded.chlim) == (134, 0, 64)
    assert (decoded.M, decoded.O, decoded.routerlifetime) == (0, 1, 1800)
    prefix = decoded[ICMPv6NDOptPrefixInfo]
    assert (prefix.prefix, prefix.prefixlen, prefix.L, prefix.A) == ("2001:db8:1::", 64, 1, 1)
    assert (prefix.validlifetime, prefix.preferredlifetime) == (600, 600)
    assert decoded[ICMPv6NDOptMTU].mtu == 1500
    assert decoded[ICMPv6NDOptSrcLLAddr].lladdr == "02:50:00:00:00:01"
    rdnss = decoded[ICMPv6NDOptRDNSS]
    assert (list(rdnss.dns), rdnss.lifetime) == (["2001:db8:1::1"], 600)
    portal = decoded[ICMPv6NDOptCaptivePortal]
    # RFC 8910 2.3: the URI, padded with NULs to a multiple of 8 octets.
    assert portal.URI.rstrip(b"\0").decode() == API
    assert portal.len == 7, "53 octets of type, length and URI: 7 units of 8"
    assert message.endswith(bytes([37, 7]) + API.encode() + b"\0" * 3)
    assert len(message) % 8 == 0


def test_a_last_advertisement_and_a_box_without_portal() -> None:
    plain = ra.Advert(prefix=ADVERT.prefix, router_lifetime=0)
    decoded = ICMPv6ND_RA(ra.build(plain))
    assert decoded.routerlifetime == 0
    assert ICMPv6NDOptPrefixInfo in decoded
    for absent in (ICMPv6NDOptCaptivePortal, ICMPv6NDOptRDNSS, ICMPv6NDOptMTU,
                   ICMPv6NDOptSrcLLAddr):
        assert absent not in decoded


@pytest.mark.parametrize("bad", [
    {"prefix": ipaddress.IPv6Network("2001:db8::/48")},
    {"router_lifetime": 9001},
    {"captive_url": "http://portal.lab/api"},
    {"captive_url": "https://portal.lab/" + "a" * 2020},  # 2039 octets: no 8-bit length fits
])
def test_what_cannot_be_advertised_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ra.build(ra.Advert(**{**ADVERT.__dict__, **bad}))


def test_intervals_are_jittered_and_shorter_at_first() -> None:
    rng = random.Random(7)
    first = [ra.interval(n, rng) for n in range(3)]
    later = [ra.interval(3, rng) for _ in range(200)]
    assert all(0 < w <= ra.MAX_INITIAL_RTR_ADVERT_INTERVAL for w in first)
    assert all(ra.MIN_RTR_ADV_INTERVAL <= w <= ra.MAX_RTR_ADV_INTERVAL for w in later)
    assert len({round(w) for w in later}) > 20, "jittered"
    assert 180 < sum(later) / len(later) < 220, "every 200 s on average"


def test_solicitations_are_checked_and_answers_spaced() -> None:
    rs = struct.pack("!BBHI", 133, 0, 0, 0)
    assert ra.is_solicitation(rs, 255)
    assert not ra.is_solicitation(rs, 64), "from off the link"
    assert not ra.is_solicitation(rs[:6], 255)
    assert not ra.is_solicitation(struct.pack("!BBHI", 133, 1, 0, 0), 255)
    rng = random.Random(1)
    assert 100 <= ra.answer_at(100, 0, rng) <= 100 + ra.MAX_RA_DELAY_TIME
    assert ra.answer_at(100, 99, rng) == 99 + ra.MIN_DELAY_BETWEEN_RAS


def test_the_longest_url_option_37_can_carry() -> None:
    url = "https://portal.lab/" + "a" * 2019  # 2038 octets: 255 units of 8 with type, length
    decoded = ICMPv6ND_RA(ra.build(ra.Advert(prefix=ADVERT.prefix, captive_url=url)))
    assert decoded[ICMPv6NDOptCaptivePortal].len == 255

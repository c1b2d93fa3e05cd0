"""radius/mac.py: one strict parser, the named spellings."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from passerelle.radius import mac


@pytest.mark.parametrize("spelling", [
    "aa:bb:cc:0d:ee:ff", "AA:BB:CC:0D:EE:FF", "Aa:bB:cC:0d:Ee:fF",
    "aa-bb-cc-0d-ee-ff", "AA-BB-CC-0D-EE-FF",       # RFC 3580 Calling-Station-Id
    "aabb.cc0d.eeff", "AABB.CC0D.EEFF",             # Cisco
    "aabbcc0deeff", "AABBCC0DEEFF",                 # hostapd's MAC-auth User-Name
    " aa:bb:cc:0d:ee:ff\n",                         # surrounding white space
])
def test_every_spelling_of_a_mac(spelling: str) -> None:
    assert mac.parse(spelling) == "aa:bb:cc:0d:ee:ff"
    assert mac.dashed(spelling) == "aa-bb-cc-0d-ee-ff"
    assert mac.calling_station_id(spelling) == "AA-BB-CC-0D-EE-FF"


GARBAGE = [
    "", "   ", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "aabbccddeef", "aabbccddeeff0",
    "gg:hh:ii:jj:kk:ll", "aabbccddeeffgg", "xaabbccddeeff", "0xaabbccddeeff",
    "aa:bb-cc:dd-ee:ff",   # mixed separators
    "aa:bb:cc:dd:ee:f", "a:b:c:d:e:f", "aa::bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff:",
    "aabb.ccdd.ee.ff", "aab.bccd.deeff", "aa bb cc dd ee ff", "aa:bb:cc:dd:ee:ff;drop",
    "aa.bb.cc.dd.ee.ff", "aabb:ccdd:eeff", "aa:bb:cc:dd:ee:ff\x00",
    "\uff41\uff41:bb:cc:dd:ee:ff",  # full-width letters are not hex digits
    "\u0661\u0661:bb:cc:dd:ee:ff",  # nor are Arabic-Indic digits
]


@pytest.mark.parametrize("garbage", GARBAGE)
@pytest.mark.parametrize("spell", [mac.parse, mac.dashed, mac.calling_station_id])
def test_garbage_is_not_a_mac(spell: Callable[[str], str], garbage: str) -> None:
    with pytest.raises(ValueError, match="not a MAC address"):
        spell(garbage)

"""Whose personal Wi-Fi key a joining station uses: the pure core of the
access points' RADIUS server. Keys, bindings and a request's facts in, a
``Decision`` out; no I/O, no clock.

Three ways, tried in this order:

1. By handshake, when the access point sends the ANonce and EAPoL-Key
   message 2 (hostapd >= 2.11 ``wpa_psk_radius=3``, Ruckus DPSK): the key
   among the people allowed here whose PMK yields the message's MIC. The
   station's bound key, if any, is tried first. A MIC is proof; a MAC alone
   is not, so with a handshake the MAC only orders the search.
2. By MAC, without a handshake (hostapd 2.10 ``wpa_psk_radius=2``, Cisco
   iPSK, Aruba MPSK, MikroTik): a binding learned at an earlier join, or the
   MAC the person checked in with.
3. As a candidate list, for an unknown MAC when the site allows it: every
   key allowed here, at most ``candidates_max``, all on one VLAN (the VLAN
   applies to the station, not per key); the access point tries each.

Otherwise: ``Reject`` with the reason for the log.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import psk


@dataclass(frozen=True, slots=True)
class HeldKey:
    """One key the box holds, its PMK derived once for the network's SSID."""

    person: str
    key_id: str
    passphrase: str
    pmk: bytes
    vlan: int | None = None
    mac: str | None = None  # the station MAC seen at check-in, aa:bb:cc:dd:ee:ff
    # The PMK's HMAC states, made with the key (psk.hmac_sha1_states).
    states: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "states", psk.hmac_sha1_states(self.pmk))

    def __repr__(self) -> str:  # never a key in a log line
        return f"HeldKey({self.person!r}, {self.key_id!r}, vlan={self.vlan})"


@dataclass(frozen=True)
class Held:
    """The keys of the people allowed here, indexed once per change so that
    a known station costs a dictionary look-up, not a scan."""

    keys: tuple[HeldKey, ...]
    by_id: Mapping[str, HeldKey] = field(repr=False)
    by_mac: Mapping[str, HeldKey] = field(repr=False)

    @classmethod
    def of(cls, keys: Iterable[HeldKey], allowed: Collection[str] | None = None) -> Held:
        """``allowed``: the people allowed at this site (None: whoever holds a key)."""
        here = tuple(k for k in keys if allowed is None or k.person in allowed)
        return cls(here, {k.key_id: k for k in here},
                   {k.mac: k for k in here if k.mac is not None})


@dataclass(frozen=True, slots=True)
class Join:
    """What an access point's request says about a joining station."""

    station: str  # aa:bb:cc:dd:ee:ff
    bssid: str | None = None  # aa:bb:cc:dd:ee:ff, from Called-Station-Id
    ssid: str | None = None
    anonce: bytes | None = None
    eapol: bytes | None = None  # EAPoL-Key message 2 from its 802.1X header on


@dataclass(frozen=True, slots=True)
class Accept:
    """``keys``: one key (found), or several (a candidate list: ``person``
    None). ``learn``: remember station -> key id (a handshake proved it)."""

    person: str | None
    keys: tuple[HeldKey, ...]
    vlan: int | None
    how: str  # "handshake", "mac" or "candidates"
    learn: bool = False


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str


Decision = Accept | Reject


def find(join: Join, held: Held, bindings: Mapping[str, str], *, ssid: str,
         candidates_max: int) -> Decision:
    """Decide for ``join``; ``bindings``: station MAC -> key id."""
    if join.ssid is not None and join.ssid != ssid:
        return Reject(f"SSID {join.ssid!r} is not the private network {ssid!r}")
    here = held.keys
    bound = bindings.get(join.station)
    if join.anonce is not None or join.eapol is not None:
        return _by_handshake(join, held, bound)
    # A binding to a key no longer held (rotated, revoked) says nothing.
    known = held.by_id.get(bound) if bound is not None else held.by_mac.get(join.station)
    if known is not None:
        return Accept(known.person, (known,), known.vlan, "mac")
    if not here:
        return Reject(f"no key of a person allowed here for {join.station}")
    if candidates_max <= 0:
        return Reject(f"{join.station} is unknown and this site sends no candidate list")
    if len(here) > candidates_max:
        return Reject(f"{join.station} is unknown and {len(here)} keys are allowed here, "
                      f"more than the {candidates_max} a candidate list may hold")
    vlans = {k.vlan for k in here}
    if len(vlans) > 1:
        return Reject(f"{join.station} is unknown and the candidate keys span "
                      f"{len(vlans)} VLANs")
    return Accept(None, tuple(here), vlans.pop(), "candidates")


def _by_handshake(join: Join, held: Held, bound: str | None) -> Decision:
    if join.anonce is None or join.eapol is None:
        return Reject("a handshake needs both the ANonce and EAPoL-Key message 2")
    if len(join.anonce) != psk.NONCE_LEN:
        return Reject(f"ANonce of {len(join.anonce)} octets, not {psk.NONCE_LEN}")
    if join.bssid is None:
        return Reject("no BSSID (Called-Station-Id) to check the handshake with")
    try:
        message = psk.parse_message2(join.eapol)
    except psk.MalformedEapol as exc:
        return Reject(f"EAPoL-Key message 2: {exc}")
    holds = psk.Handshake(message, _octets(join.bssid), _octets(join.station),
                          join.anonce).holds_states
    # The bound key first: a returning station costs one check.
    first = held.by_id.get(bound) if bound is not None else None
    if first is not None and holds(first.states):
        return Accept(first.person, (first,), first.vlan, "handshake")
    # The scan is the hot loop of the whole server (see the benchmark).
    found = next((k for k in held.keys if holds(k.states)), None)
    if found is not None:
        return Accept(found.person, (found,), found.vlan, "handshake", learn=True)
    return Reject(f"none of the {len(held.keys)} keys allowed here yields the MIC of "
                  f"{join.station}'s message 2")


def _octets(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))

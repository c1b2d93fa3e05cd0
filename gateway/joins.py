"""Joining the private SSID and checking in (issue 14, "every later visit"):
the pure core. No I/O, no clock of its own.

The access point's Access-Request told the box which person's key a station
uses (``Identity``, kept by the access points' server); DHCP on the VLAN
tells which address that station has. From these:

- ``offer``: what the portal offers a station that has no session: the
  person's name and one "Check in" button (``tap``), their name and the
  password field (``password``, a site setting), or the ordinary form,
  with the reason when there is one (the key is no longer the person's
  current key, or the last check-in the box tried for this association was
  refused);
- ``due``: with "joining is checking in", the stations to check in now:
  found by key, with exactly one address, no session, and not tried yet for
  this association (a check-out, a refusal or the end of a session is not
  undone behind the person's back: the next association tries again).

The check-in itself is the one-tap path (``Daemon.check_in_by_key``): the
centre decides by its policy, with the key as the proof.

The key proves who a station is only where the station could not be there
without it: on the VLAN the key's Access-Accept put it on (``at_home``). On
the open check-in network anyone may take a MAC seen on the private SSID
(MACs travel in clear over the air), so there a station always gets the
ordinary form, and a company without a VLAN gets no one-tap check-in.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from passerelle.refusal import Refusal


class Identities(Protocol):
    """Who the stations are (the access points' server, ``ApServer``)."""

    def identity(self, mac: str) -> Identity | None: ...
    def identities(self, since: float) -> dict[str, Identity]: ...


# A station gets its address within seconds of joining: "joining is checking
# in" looks at the joins of the last JOIN_WINDOW seconds only.
JOIN_WINDOW = 600.0


class KeyIsIdentity(enum.StrEnum):
    """What the portal asks of a station found by its key (``[portal]
    key_is_identity``)."""

    TAP = "tap"  # the key says who it is: one button, no password
    PASSWORD = "password"  # the name is shown, the password is asked


@dataclass(frozen=True, slots=True)
class Identity:
    """Whose key opened a station, as the access point's request showed."""

    person: str
    key_id: str  # the centre's key id (a pulled key); proof of a one-tap check-in
    vlan: int | None
    joined: float  # when the box answered the access point's Access-Request
    current: bool = True  # the key is still one the box holds for this site

    @property
    def provable(self) -> bool:
        """Whether the centre can check this key: a pulled key has the
        centre's id; a first check-in's key, held until the next pull, not."""
        return self.current and self.key_id.isdigit()


@dataclass(frozen=True, slots=True)
class Tried:
    """The check-in the box last tried for a station on joining."""

    key_id: str
    joined: float  # the association it was for (Identity.joined)
    refusal: Refusal | None  # None: checked in


@dataclass(frozen=True, slots=True)
class Offer:
    """What the portal's check-in page shows a station without a session."""

    login: str | None  # greeted by name; None: the ordinary form
    mode: KeyIsIdentity
    refusal: Refusal | None = None  # why, when the form comes with a reason

    @property
    def tap(self) -> bool:
        return self.login is not None and self.mode is KeyIsIdentity.TAP

    def document(self) -> dict[str, str | None]:
        return {"login": self.login, "mode": self.mode.value,
                "refusal": self.refusal.value if self.refusal else None}


@dataclass(frozen=True, slots=True)
class CheckIn:
    """Action: check ``mac`` at ``ip`` in, with its key as the proof."""

    mac: str
    ip: str
    identity: Identity


def at_home(identity: Identity, here: int | None) -> bool:
    """Whether the station's key may stand for its person: a key the centre
    can check, and the station on the VLAN (``here``, None: the untagged
    LAN) that key's Accept gave it."""
    return identity.provable and identity.vlan is not None and here == identity.vlan


def offer(identity: Identity | None, tried: Tried | None, mode: KeyIsIdentity,
          here: int | None) -> Offer:
    """What the portal offers the station (no session) on VLAN ``here``.
    ``tried``: the box's last check-in on joining for it, if any."""
    if identity is None:
        return Offer(None, mode)
    if not identity.current:
        return Offer(None, mode, Refusal.key_not_current)
    if not at_home(identity, here):
        return Offer(None, mode)
    refusal = None
    if tried is not None and _same(tried, identity):
        refusal = tried.refusal
        if refusal is Refusal.key_not_current:
            return Offer(None, mode, refusal)
    return Offer(identity.person, mode, refusal)


def due(identities: Mapping[str, Identity], tried: Mapping[str, Tried],
        addresses: Mapping[str, Collection[str]], open_macs: Collection[str],
        vlan_of: Callable[[str], int | None]) -> list[CheckIn]:
    """With "joining is checking in": the check-ins to make now.
    ``identities``: station MAC -> whose key; ``addresses``: MAC -> its IPv4
    addresses on the box's networks; ``open_macs``: the MACs with a session;
    ``vlan_of``: the VLAN of an address (None: the untagged LAN)."""
    out = []
    for mac, identity in identities.items():
        if mac in open_macs or not identity.provable:
            continue
        last = tried.get(mac)
        if last is not None and _same(last, identity):
            continue  # once per association
        ips = addresses.get(mac, ())
        if len(ips) != 1:
            continue  # no address yet (DHCP), or two: not ours to choose
        ip = next(iter(ips))
        if at_home(identity, vlan_of(ip)):
            out.append(CheckIn(mac, ip, identity))
    return out


def _same(tried: Tried, identity: Identity) -> bool:
    """Whether ``tried`` was for this very association of the station."""
    return tried.key_id == identity.key_id and tried.joined >= identity.joined

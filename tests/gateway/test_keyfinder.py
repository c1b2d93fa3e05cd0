"""The key look-up core with handshakes built here for many people: the
right person is found; a wrong, rotated or revoked key and a person not
allowed here are refused; MAC bindings and candidate lists."""

from __future__ import annotations

import pytest

from passerelle.gateway import psk
from passerelle.gateway.keyfinder import Accept, Held, HeldKey, Join, Reject, find

SSID = "Passerelle-Private"
BSSID = "02:aa:00:00:00:01"
STATION = "02:5e:00:00:00:07"
ANONCE = bytes(range(100, 132))
SNONCE = bytes(range(10, 42))


def _held(person: str, passphrase: str, vlan: int | None = 100,
          mac: str | None = None) -> HeldKey:
    return HeldKey(person, f"k-{person}-{passphrase[-4:]}", passphrase,
                   psk.pmk(passphrase, SSID), vlan, mac)


# 60 people; PMKs derived once for the whole module (as the box does).
PEOPLE = [_held(f"p{i:02d}@acme.example", f"key-of-person-{i:04d}", vlan=100 + i % 3)
          for i in range(60)]


def _handshake(passphrase: str, station: str = STATION, ssid: str = SSID) -> Join:
    frame = psk.build_message2(psk.pmk(passphrase, ssid), bytes.fromhex(BSSID.replace(":", "")),
                               bytes.fromhex(station.replace(":", "")), ANONCE, SNONCE)
    return Join(station=station, bssid=BSSID, ssid=ssid, anonce=ANONCE, eapol=frame)


def _find(join: Join, keys: list[HeldKey] = PEOPLE, allowed: set[str] | None = None,
          bindings: dict[str, str] | None = None, cap: int = 4) -> Accept | Reject:
    return find(join, Held.of(keys, allowed), bindings or {}, ssid=SSID,
                candidates_max=cap)


@pytest.mark.parametrize("who", [0, 17, 59])
def test_the_handshake_finds_the_right_person_among_many(who: int) -> None:
    decision = _find(_handshake(f"key-of-person-{who:04d}"))
    assert isinstance(decision, Accept)
    assert decision.person == f"p{who:02d}@acme.example"
    assert decision.keys == (PEOPLE[who],)
    assert decision.vlan == 100 + who % 3
    assert decision.how == "handshake" and decision.learn


def test_a_bound_station_is_checked_first_and_not_learnt_again() -> None:
    key = PEOPLE[33]
    decision = _find(_handshake(key.passphrase), bindings={STATION: key.key_id})
    assert isinstance(decision, Accept) and decision.person == key.person
    assert not decision.learn


def test_a_wrong_key_is_refused() -> None:
    decision = _find(_handshake("nobody-has-this-key"))
    assert isinstance(decision, Reject) and "MIC" in decision.reason


def test_a_rotated_key_is_refused_and_the_new_one_works() -> None:
    old = PEOPLE[5]
    new = _held(old.person, "rotated-key-0005r")
    keys = [*PEOPLE[:5], new, *PEOPLE[6:]]
    # The station still bound to the old key id: the binding does not help.
    assert isinstance(_find(_handshake(old.passphrase), keys,
                            bindings={STATION: old.key_id}), Reject)
    decision = _find(_handshake("rotated-key-0005r"), keys, bindings={STATION: old.key_id})
    assert isinstance(decision, Accept) and decision.person == old.person and decision.learn


def test_a_revoked_key_is_refused() -> None:
    keys = [k for k in PEOPLE if k.person != PEOPLE[9].person]
    assert isinstance(_find(_handshake(PEOPLE[9].passphrase), keys), Reject)


def test_a_person_not_allowed_here_is_refused_even_with_the_right_key() -> None:
    allowed = {k.person for k in PEOPLE} - {PEOPLE[12].person}
    decision = _find(_handshake(PEOPLE[12].passphrase), allowed=allowed)
    assert isinstance(decision, Reject)
    # ... and also by MAC or in a candidate list.
    bound = {STATION: PEOPLE[12].key_id}
    assert isinstance(_find(Join(STATION), allowed=allowed, bindings=bound, cap=0), Reject)
    assert isinstance(_find(Join(STATION), [PEOPLE[12]], allowed=set(), cap=4), Reject)


def test_another_ssid_is_refused() -> None:
    decision = _find(_handshake(PEOPLE[0].passphrase, ssid="Other"))
    assert isinstance(decision, Reject) and "SSID" in decision.reason


@pytest.mark.parametrize(("change", "words"), [
    ({"anonce": None}, "both"),
    ({"anonce": b"short"}, "ANonce"),
    ({"bssid": None}, "BSSID"),
    ({"eapol": b"\x02\x03\x00\x05hello"}, "EAPoL-Key"),
])
def test_an_unusable_handshake_is_refused_with_its_reason(change: dict[str, object],
                                                          words: str) -> None:
    good = _handshake(PEOPLE[0].passphrase)
    join = Join(**{**{f: getattr(good, f) for f in good.__slots__}, **change})
    decision = _find(join)
    assert isinstance(decision, Reject) and words in decision.reason


def test_by_mac_a_binding_or_the_check_in_mac() -> None:
    bound = _find(Join(STATION), bindings={STATION: PEOPLE[3].key_id}, cap=0)
    assert isinstance(bound, Accept) and bound.person == PEOPLE[3].person
    assert bound.how == "mac" and not bound.learn
    seen = _held("walkin@acme.example", "walk-in-key-01", mac=STATION)
    decision = _find(Join(STATION), [*PEOPLE, seen], cap=0)
    assert isinstance(decision, Accept) and decision.person == seen.person


def test_a_binding_to_a_key_no_longer_held_is_not_used() -> None:
    decision = _find(Join(STATION), bindings={STATION: "k-gone"}, cap=0)
    assert isinstance(decision, Reject) and "no candidate list" in decision.reason


def test_candidate_list_within_the_cap_on_one_vlan() -> None:
    few = [_held(f"c{i}@acme.example", f"candidate-key-{i}", vlan=200) for i in range(3)]
    decision = _find(Join(STATION), few, cap=3)
    assert isinstance(decision, Accept)
    assert decision.person is None and decision.how == "candidates"
    assert decision.keys == tuple(few) and decision.vlan == 200


def test_candidate_list_over_the_cap_is_refused() -> None:
    decision = _find(Join(STATION), PEOPLE, cap=8)
    assert isinstance(decision, Reject) and "more than the 8" in decision.reason


def test_candidates_on_several_vlans_are_refused() -> None:
    decision = _find(Join(STATION), PEOPLE[:3], cap=8)
    assert isinstance(decision, Reject) and "VLANs" in decision.reason


def test_no_key_at_all_is_refused() -> None:
    assert isinstance(_find(Join(STATION), [], cap=8), Reject)


def test_a_held_key_never_shows_its_passphrase() -> None:
    assert PEOPLE[0].passphrase not in repr(PEOPLE[0])

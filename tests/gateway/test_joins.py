"""Joining the private SSID and checking in: the pure core (gateway/joins.py)
and the access points' server telling who a station is, with a fixed clock
and no sockets; the configuration's two settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from passerelle.gateway.ap_server import ApKey
from passerelle.gateway.config import ConfigError, parse
from passerelle.gateway.joins import (
    CheckIn,
    Identity,
    KeyIsIdentity,
    Offer,
    Tried,
    due,
    offer,
)
from passerelle.radius import messages as m
from passerelle.refusal import Refusal
from tests.gateway.test_ap_server import BASE, MACHINE, NOW, STATION, Keys, _ask, _core, _hostapd

ALICE = Identity("alice@acme.example", "17", 101, NOW)
MAC, IP = "02:50:00:00:01:01", "192.0.2.140"
OPEN_LAN_IP = "198.51.100.10"


def vlan_of(ip: str) -> int | None:  # Config.vlan_of, as ids
    return 101 if ip.startswith("192.0.2.") else None


# -- offer: what the check-in page shows ----------------------------------------------

def test_a_station_found_by_its_key_is_greeted_with_one_tap() -> None:
    made = offer(ALICE, None, KeyIsIdentity.TAP, 101)
    assert made == Offer("alice@acme.example", KeyIsIdentity.TAP) and made.tap
    assert made.document() == {"login": "alice@acme.example", "mode": "tap", "refusal": None}


def test_the_site_may_ask_for_the_password() -> None:
    made = offer(ALICE, None, KeyIsIdentity.PASSWORD, 101)
    assert made.login == "alice@acme.example" and not made.tap


def test_an_unknown_station_gets_the_form() -> None:
    assert offer(None, None, KeyIsIdentity.TAP, 101) == Offer(None, KeyIsIdentity.TAP)


def test_a_key_no_longer_held_gets_the_form_with_the_reason() -> None:
    stale = Identity("alice@acme.example", "17", 101, NOW, current=False)
    assert offer(stale, None, KeyIsIdentity.TAP, 101) == \
        Offer(None, KeyIsIdentity.TAP, Refusal.key_not_current)


def test_a_first_check_in_s_key_is_no_proof() -> None:
    """Held from the Accept until the next pull, under the session's id:
    the centre cannot check it, so no tap (and no reason either)."""
    first = Identity("alice@acme.example", "6925A1B0-0A1B2C3D", 101, NOW)
    assert offer(first, None, KeyIsIdentity.TAP, 101) == Offer(None, KeyIsIdentity.TAP)


def test_a_refusal_on_joining_is_told_for_this_association_only() -> None:
    refused = Tried("17", NOW, Refusal.no_credit)
    assert offer(ALICE, refused, KeyIsIdentity.TAP, 101) == \
        Offer("alice@acme.example", KeyIsIdentity.TAP, Refusal.no_credit)
    rejoined = Identity("alice@acme.example", "17", 101, NOW + 60)
    assert offer(rejoined, refused, KeyIsIdentity.TAP, 101).refusal is None
    # The centre said the key is not current: no tap for it.
    assert offer(ALICE, Tried("17", NOW, Refusal.key_not_current), KeyIsIdentity.TAP, 101) == \
        Offer(None, KeyIsIdentity.TAP, Refusal.key_not_current)


def test_the_key_stands_for_its_person_on_its_own_vlan_only() -> None:
    """On the open check-in network (or another VLAN) anyone may wear a MAC
    seen on the private SSID: the ordinary form there, and no tap for a
    company without a VLAN."""
    assert offer(ALICE, None, KeyIsIdentity.TAP, None) == Offer(None, KeyIsIdentity.TAP)
    assert offer(ALICE, None, KeyIsIdentity.TAP, 102) == Offer(None, KeyIsIdentity.TAP)
    no_vlan = Identity("alice@acme.example", "17", None, NOW)
    assert offer(no_vlan, None, KeyIsIdentity.TAP, None).login is None
    assert due({MAC: ALICE}, {}, {MAC: {OPEN_LAN_IP}}, set(), vlan_of) == []
    assert due({MAC: no_vlan}, {}, {MAC: {OPEN_LAN_IP}}, set(), vlan_of) == []


# -- due: "joining is checking in" --------------------------------------------------

def test_a_station_is_checked_in_once_it_has_an_address() -> None:
    assert due({MAC: ALICE}, {}, {}, set(), vlan_of) == [], "no address yet: DHCP first"
    assert due({MAC: ALICE}, {}, {MAC: {IP}}, set(), vlan_of) == [CheckIn(MAC, IP, ALICE)]


def test_not_again_for_the_same_association() -> None:
    """Checked in then out, refused, or its session over: the box does not
    start another behind the person's back; the next association does."""
    for refusal in (None, Refusal.no_credit):
        tried = {MAC: Tried("17", NOW, refusal)}
        assert due({MAC: ALICE}, tried, {MAC: {IP}}, set(), vlan_of) == []
        later = Identity("alice@acme.example", "17", 101, NOW + 1)
        assert due({MAC: later}, tried, {MAC: {IP}}, set(), vlan_of) == [CheckIn(MAC, IP, later)]
    # A new key (rotated) is a new try too.
    rotated = Identity("alice@acme.example", "18", 101, NOW)
    assert due({MAC: rotated}, {MAC: Tried("17", NOW, None)}, {MAC: {IP}}, set(), vlan_of) == \
        [CheckIn(MAC, IP, rotated)]


def test_nothing_for_a_session_two_addresses_or_a_stale_key() -> None:
    assert due({MAC: ALICE}, {}, {MAC: {IP}}, {MAC}, vlan_of) == []
    assert due({MAC: ALICE}, {}, {MAC: {IP, "192.0.2.141"}}, set(), vlan_of) == []
    stale = Identity("alice@acme.example", "17", 101, NOW, current=False)
    assert due({MAC: stale}, {}, {MAC: {IP}}, set(), vlan_of) == []


# -- the access points' server tells who a station is ---------------------------------

def _pulled() -> Keys:
    """Keys as pulled from the centre: the centre's ids."""
    keys = Keys()
    keys.held[0] = ApKey("alice@acme.example", "17", "alice-key-0001", vlan=101)
    keys.held[1] = ApKey("bob@slowco.example", "18", "bob-key-0002", vlan=102)
    return keys


def test_the_accept_tells_whose_key_opened_the_station() -> None:
    keys = _pulled()
    core = _core(keys=keys)
    assert core.identity(STATION) is None
    reply = _ask(core, _hostapd(handshake="bob-key-0002"))
    assert isinstance(reply, m.AccessAccept)
    assert core.identity(STATION) == Identity("bob@slowco.example", "18", 102, NOW)
    # Bob's key is rotated (the pull no longer holds id 18): still known, not current.
    keys.held.pop()
    core.refresh()
    found = core.identity(STATION)
    assert found is not None and not found.current and not found.provable


def test_a_rejected_or_forged_request_binds_nothing() -> None:
    core = _core(keys=_pulled())
    assert isinstance(_ask(core, _hostapd(handshake="not-the-key-000")), m.AccessReject)
    assert _ask(core, _hostapd(handshake="bob-key-0002"), secret=b"wrong-secret-0123456") \
        is None
    assert _ask(core, _hostapd(handshake="bob-key-0002"), with_ma=False) is None
    assert core.identity(STATION) is None and core.identities == {}


def test_a_candidate_list_names_nobody() -> None:
    keys = _pulled()
    keys.held[1] = ApKey("bob@slowco.example", "18", "bob-key-0002", vlan=101)
    core = _core(keys=keys, cap=4)
    assert isinstance(_ask(core, _hostapd()), m.AccessAccept)
    assert core.identity(STATION) is None


# -- configuration --------------------------------------------------------------------

def test_config_defaults_and_settings(tmp_path: Path) -> None:
    config = parse(BASE, tmp_path, MACHINE)
    assert (config.key_is_identity, config.join_checks_in) == (KeyIsIdentity.TAP, False)
    config = parse(BASE + '\n[portal]\nkey_is_identity = "password"\njoin_checks_in = true\n',
                   tmp_path, MACHINE)
    assert (config.key_is_identity, config.join_checks_in) == (KeyIsIdentity.PASSWORD, True)


@pytest.mark.parametrize(("extra", "words"), [
    ('\n[portal]\nkey_is_identity = "key"\n', "portal.key_is_identity: 'key' is neither"),
    ('\n[portal]\njoin_checks_in = "yes"\n', "portal.join_checks_in"),
])
def test_config_mistakes_are_named(tmp_path: Path, extra: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse(BASE + extra, tmp_path, MACHINE)


def test_joining_looks_at_recent_joins_only() -> None:
    """``ApServer.identities(since)``: the joins after ``since``, newest
    first, without a scan of every station ever seen (no socket: not started)."""
    import ipaddress

    from passerelle.gateway.ap_server import ApServer
    from passerelle.gateway.peers import AccessPoint, Vendor
    from tests.gateway.test_ap_server import SECRET, SSID

    server = ApServer("127.0.0.1", 0, [AccessPoint(ipaddress.ip_network("127.0.0.0/8"),
                                                   SECRET, Vendor.HOSTAPD)],
                      _pulled(), ssid=SSID)
    other = "02:5e:00:00:00:08"
    server.core.refresh()  # what start() does first
    _ask(server.core, _hostapd(handshake="bob-key-0002"), now=NOW)
    _ask(server.core, _hostapd(other, handshake="alice-key-0001"), now=NOW + 700)
    assert set(server.identities(NOW + 100)) == {other}
    assert set(server.identities(NOW)) == {STATION, other}
    assert server.identity(STATION) == Identity("bob@slowco.example", "18", 102, NOW)

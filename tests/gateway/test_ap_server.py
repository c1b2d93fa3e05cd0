"""The access points' RADIUS server: the core with a fixed clock, its
configuration, then over real UDP with FreeRADIUS's radclient sending what
each access point sends and decoding the reply with the shared secret."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from passerelle.gateway import psk
from passerelle.gateway import sessions as sm
from passerelle.gateway.ap_server import ApCore, ApKey, ApServer, KeyRing, station_of
from passerelle.gateway.config import ConfigError, Interfaces, firewall_plan, parse
from passerelle.gateway.nft import ruleset
from passerelle.gateway.peers import AccessPoint, Vendor
from passerelle.gateway.service import Box
from passerelle.gateway.sessions import Terms
from passerelle.radius import messages as m
from tests.radius.peers import Answer, radclient

SECRET = b"ap-secret-0123456789"
OTHER_SECRET = b"other-ap-secret-9876"
SSID = "Passerelle-Private"
NOW = 1_790_000_000.0
AP = ("127.0.0.1", 40001)
BSSID = "02:aa:00:00:00:01"
STATION = "02:5e:00:00:00:07"
ANONCE = bytes(range(32))
SNONCE = bytes(range(32, 64))
RSN_IE = bytes.fromhex("30140100000fac040100000fac040100000fac020000")


@dataclass
class Keys:
    """The daemon's side: the keys it holds, and how often it was asked."""

    held: list[ApKey] = field(default_factory=lambda: [
        ApKey("alice@acme.example", "s-alice", "alice-key-0001", vlan=101,
              mac="02:11:22:33:44:55"),
        ApKey("bob@slowco.example", "s-bob", "bob-key-0002", vlan=102),
    ])
    asked: int = 0

    def keys_for_ap(self) -> Sequence[ApKey]:
        self.asked += 1
        return list(self.held)


def _core(vendor: Vendor = Vendor.HOSTAPD, keys: Keys | None = None,
          cap: int = 0) -> ApCore:
    core = ApCore([AccessPoint(ipaddress.ip_network("127.0.0.0/8"), SECRET, vendor),
                   AccessPoint(ipaddress.ip_network("127.0.0.9/32"), OTHER_SECRET, vendor)],
                  keys or Keys(), ssid=SSID, candidates_max=cap)
    core.refresh()
    return core


def _message2(passphrase: str, station: str = STATION) -> bytes:
    return psk.build_message2(psk.pmk(passphrase, SSID), bytes.fromhex(BSSID.replace(":", "")),
                              bytes.fromhex(station.replace(":", "")), ANONCE, SNONCE,
                              key_data=RSN_IE)


def _hostapd(station: str = STATION, *, handshake: str | None = None,
             **fields: Any) -> m.AccessRequest:
    """What hostapd sends for a joining station (macaddr_acl=2)."""
    bare = station.replace(":", "")
    # Any: the message's fields, each of its own type.
    base: dict[str, Any] = dict(
        user_name=bare, credential=m.Password(bare),
        calling_station_id=station.replace(":", "-").upper(),
        called_station_id=f"{BSSID.replace(':', '-').upper()}:{SSID}",
        nas_port_type=19, nas_identifier="ap1")
    if handshake is not None:
        base.update(anonce=ANONCE, eapol_key=_message2(handshake, station),
                    akm_suite=0x000FAC02)
    base.update(fields)
    return m.AccessRequest(**base)


def _ask(core: ApCore, request: m.AccessRequest, *, secret: bytes = SECRET,
         source: tuple[str, int] = AP, with_ma: bool = True,
         now: float = NOW) -> m.Reply | None:
    sent = request.encode(secret, with_ma=with_ma)
    answer = core.handle(sent, source, now)
    if answer is None:
        return None
    assert answer[20] == 80  # Message-Authenticator first
    return m.decode_reply(answer, secret, sent)


# -- the core -------------------------------------------------------------------------


def test_handshake_finds_the_key_and_learns_the_station() -> None:
    core = _core()
    reply = _ask(core, _hostapd(handshake="bob-key-0002"))
    assert isinstance(reply, m.AccessAccept)
    assert reply.tunnel_passwords == ("bob-key-0002",) and reply.vlan == 102
    assert core.bindings == {STATION: "s-bob"}
    # Next time hostapd 2.10 asks by MAC only: the binding answers.
    again = _ask(core, _hostapd())
    assert isinstance(again, m.AccessAccept) and again.tunnel_passwords == ("bob-key-0002",)


def test_a_wrong_key_in_the_handshake_is_rejected(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "passerelle.gateway"):
        assert isinstance(_ask(_core(), _hostapd(handshake="nobody-key-0000")),
                          m.AccessReject)
    assert "yields the MIC" in caplog.text


def test_the_check_in_mac_answers_without_a_handshake() -> None:
    reply = _ask(_core(), _hostapd("02:11:22:33:44:55"))
    assert isinstance(reply, m.AccessAccept)
    assert reply.tunnel_passwords == ("alice-key-0001",) and reply.vlan == 101


def test_candidate_list_within_the_cap_on_one_vlan() -> None:
    keys = Keys([ApKey(f"p{i}@acme.example", f"s{i}", f"candidate-key-{i}", vlan=101)
                 for i in range(3)])
    reply = _ask(_core(keys=keys, cap=3), _hostapd())
    assert isinstance(reply, m.AccessAccept)
    assert sorted(reply.tunnel_passwords) == [f"candidate-key-{i}" for i in range(3)]
    # A one-key vendor cannot take a candidate list.
    assert isinstance(_ask(_core(Vendor.CISCO, keys, cap=3), _hostapd()), m.AccessReject)


def test_oversized_candidate_list_is_rejected(caplog: pytest.LogCaptureFixture) -> None:
    keys = Keys([ApKey(f"p{i}@acme.example", f"s{i}", f"candidate-key-{i:02d}", vlan=101)
                 for i in range(9)])
    with caplog.at_level(logging.INFO, "passerelle.gateway"):
        assert isinstance(_ask(_core(keys=keys, cap=8), _hostapd()), m.AccessReject)
    assert "more than the 8" in caplog.text


def test_malformed_eapol_is_rejected_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    request = _hostapd(anonce=ANONCE, eapol_key=b"\x02\x03\x00\x5f" + bytes(20))
    with caplog.at_level(logging.INFO, "passerelle.gateway"):
        assert isinstance(_ask(_core(), request), m.AccessReject)
    assert "EAPoL-Key message 2" in caplog.text


@pytest.mark.parametrize(("case", "words"), [
    ("unknown source", "not a configured access point"),
    ("no MA", "no Message-Authenticator"),
    ("wrong secret", "wrong secret"),
    ("disconnect", "only Access-Request and Accounting-Request"),
    ("garbage", "dropped a request"),
])
def test_drops_are_silent_and_logged(case: str, words: str,
                                     caplog: pytest.LogCaptureFixture) -> None:
    core = _core()
    request = _hostapd(handshake="bob-key-0002")
    with caplog.at_level(logging.INFO, "passerelle.gateway"):
        match case:
            case "unknown source":
                assert core.handle(request.encode(SECRET), ("192.0.2.77", 1812), NOW) is None
            case "no MA":
                assert _ask(core, request, with_ma=False) is None
            case "wrong secret":
                assert _ask(core, request, secret=b"not-the-secret-of-it") is None
            case "disconnect":
                dae = m.DisconnectRequest(acct_session_id="1")
                assert core.handle(dae.encode(SECRET), AP, NOW) is None
            case "garbage":
                assert core.handle(b"\x01\x02\x00\x10hello", AP, NOW) is None
    assert words in caplog.text
    assert core.bindings == {}


def test_the_most_specific_access_point_gives_the_secret() -> None:
    core = _core()
    request = _hostapd(handshake="bob-key-0002")
    assert isinstance(_ask(core, request, secret=OTHER_SECRET, source=("127.0.0.9", 1)),
                      m.AccessAccept)
    assert _ask(core, request, secret=SECRET, source=("127.0.0.9", 1)) is None


def test_a_retransmission_gets_the_very_same_reply() -> None:
    core = _core()
    sent = _hostapd(handshake="bob-key-0002").encode(SECRET)
    first = core.handle(sent, AP, NOW)
    # The key went away meanwhile: the duplicate is still answered as before.
    core.source = Keys([])
    core.refresh()
    assert first is not None and core.handle(sent, AP, NOW + 5) == first
    assert isinstance(m.decode_reply(core.handle(sent, AP, NOW + 31) or b"", SECRET, sent),
                      m.AccessReject)


def test_keys_are_derived_once_and_bindings_go_with_their_key() -> None:
    keys = Keys()
    core = _core(keys=keys)
    before = core.ring.keys()
    core.refresh()
    assert all(a is b for a, b in zip(before, core.ring.keys(), strict=True))
    assert isinstance(_ask(core, _hostapd(handshake="bob-key-0002")), m.AccessAccept)
    # Bob's key rotates: the binding goes, the old key no longer opens.
    keys.held[1] = ApKey("bob@slowco.example", "s-bob-2", "bob-key-0003", vlan=102)
    core.refresh()
    assert core.bindings == {}
    assert isinstance(_ask(core, _hostapd(handshake="bob-key-0002")), m.AccessReject)
    assert isinstance(_ask(core, _hostapd(handshake="bob-key-0003")), m.AccessAccept)


def test_the_ring_does_not_read_again_the_list_it_took_last() -> None:
    """A source gives the same list when nothing changed (KeySource): the
    ring's work is then nothing, however many keys it holds."""
    ring = KeyRing(SSID)
    given = Keys().held
    assert ring.update(given) == set()
    index = ring.held
    given.clear()  # never done by a source; shows the list is not read again
    assert ring.update(given) == set() and ring.held is index
    assert ring.update([]) == {"s-alice", "s-bob"}  # a new list is taken
    assert ring.held.keys == ()


def test_a_person_not_allowed_here_is_rejected() -> None:
    keys = Keys([ApKey("bob@slowco.example", "s-bob", "bob-key-0002", allowed=False)])
    assert isinstance(_ask(_core(keys=keys), _hostapd(handshake="bob-key-0002")),
                      m.AccessReject)


def test_an_unusable_key_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    keys = Keys([ApKey("eve@acme.example", "s-eve", "short")])
    with caplog.at_level(logging.WARNING, "passerelle.gateway"):
        core = _core(keys=keys)
    assert core.ring.keys() == [] and "not usable" in caplog.text
    assert "short" not in caplog.text


def test_station_of_reads_hostapd_and_refuses_a_non_mac() -> None:
    station = station_of(_hostapd())
    assert (station.mac, station.bssid, station.ssid) == (STATION, BSSID, SSID)
    with pytest.raises(ValueError, match="not a MAC"):
        station_of(_hostapd(calling_station_id="someone"))
    assert isinstance(_ask(_core(), _hostapd(calling_station_id="someone")), m.AccessReject)


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="16"):
        ApCore([AccessPoint(ipaddress.ip_network("127.0.0.1/32"), b"short", Vendor.HOSTAPD)],
               Keys(), ssid=SSID)


# -- configuration ----------------------------------------------------------------------

MACHINE = Interfaces(default_route_if="wan0", up=("wan0", "lan0"),
                     ipv4={"wan0": ("203.0.113.2/24",), "lan0": ("198.51.100.1/24",)})
BASE = """
[box]
identifier = "axis-gw"
state_dir = "state"

[[radius.servers]]
host = "192.0.2.10"
secret = "s3cret-for-tests"
"""
GOOD = BASE + """
[wifi]
ssid = "Passerelle-Private"
candidates_max = 4

[[access_points]]
address = "198.51.100.16/28"
secret = "0123456789abcdef0123"
vendor = "hostapd"

[[access_points]]
address = "198.51.100.40"
secret_file = "ap.secret"
vendor = "cisco"
"""


def test_config_access_points(tmp_path: Path) -> None:
    (tmp_path / "ap.secret").write_text("cisco-secret-0123456789\n")
    cfg = parse(GOOD, tmp_path, MACHINE)
    assert [(str(a.network), a.secret, a.vendor) for a in cfg.access_points] == [
        ("198.51.100.16/28", b"0123456789abcdef0123", Vendor.HOSTAPD),
        ("198.51.100.40/32", b"cisco-secret-0123456789", Vendor.CISCO)]
    assert (cfg.wifi_ssid, cfg.wifi_candidates_max) == ("Passerelle-Private", 4)
    assert (cfg.wifi_listen, cfg.wifi_port) == ("198.51.100.1", 1812)
    plan = firewall_plan(cfg)
    assert plan.access_points == ("198.51.100.16/28", "198.51.100.40/32")
    assert ("ip saddr { 198.51.100.16/28, 198.51.100.40/32 } udp dport 1812 accept"
            in ruleset(plan))
    assert "secret" not in repr(cfg.access_points) and "0123" not in repr(cfg.access_points)


def test_config_without_access_points_runs_no_server(tmp_path: Path) -> None:
    cfg = parse(BASE, tmp_path, MACHINE)
    assert cfg.access_points == () and firewall_plan(cfg).access_points == ()


@pytest.mark.parametrize(("change", "message"), [
    (('ssid = "Passerelle-Private"\n', ""), "wifi.ssid: required"),
    (('ssid = "Passerelle-Private"', 'ssid = "Passerelle"'), "also portal.ssid"),
    (('ssid = "Passerelle-Private"', 'ssid = "' + "S" * 33 + '"'), "1 to 32 octets"),
    (("candidates_max = 4", "candidates_max = 99"), "wifi.candidates_max"),
    (("candidates_max = 4", "port = 3799"), "wifi.port: 3799 is also dae.port"),
    (("candidates_max = 4", "listen = \"lan\""), "wifi.listen"),
    (('"198.51.100.16/28"', '"198.51.100.17/28"'), "access_points[0].address"),
    (('"198.51.100.16/28"', '"192.0.2.16/28"'), "outside the LAN"),
    (('"198.51.100.40"', '"198.51.100.16/28"'), "listed twice"),
    (('address = "198.51.100.40"\n', ""), "access_points[1].address: required"),
    (('"0123456789abcdef0123"', '"short"'), "access_points[0].secret: 5 octets"),
    (('secret_file = "ap.secret"', 'secret_file = "none"'), "access_points[1].secret_file"),
    (('secret_file = "ap.secret"', 'secret_file = "ap.secret"\nsecret = "x"'),
     "exactly one"),
    (('vendor = "cisco"', 'vendor = "netgear"'), "access_points[1].vendor: 'netgear'"),
    (('vendor = "cisco"', 'colour = "red"'), "access_points[1].colour: unknown key"),
])
def test_config_mistakes_are_named(tmp_path: Path, change: tuple[str, str],
                                   message: str) -> None:
    (tmp_path / "ap.secret").write_text("cisco-secret-0123456789\n")
    assert change[0] in GOOD
    with pytest.raises(ConfigError) as caught:
        parse(GOOD.replace(change[0], change[1], 1), tmp_path, MACHINE)
    assert message in str(caught.value)


def test_config_access_points_must_be_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="access_points: expected"):
        parse("access_points = 3\n" + BASE, tmp_path, MACHINE)


# -- over UDP, with radclient as the access point ------------------------------------

RADCLIENT_DICT = ("-D", "/usr/share/freeradius")


def _serve(vendor: Vendor, keys: Keys | None = None, cap: int = 0,
           network: str = "127.0.0.0/8") -> ApServer:
    srv = ApServer("127.0.0.1", 0,
                   [AccessPoint(ipaddress.ip_network(network), SECRET, vendor)],
                   keys or Keys(), ssid=SSID, candidates_max=cap)
    srv.start()
    return srv


def _attrs(station: str = STATION, *, handshake: str | None = None, ruckus: bool = False,
           ma: bool = True, eapol: bytes | None = None) -> str:
    bare = station.replace(":", "")
    lines = [f'User-Name = "{bare}"', f'User-Password = "{bare}"',
             f'Calling-Station-Id = "{station.replace(":", "-").upper()}"',
             f'Called-Station-Id = "{BSSID.replace(":", "-").upper()}:{SSID}"',
             "NAS-Port-Type = Wireless-802.11", 'NAS-Identifier = "ap1"',
             'Connect-Info = "CONNECT 54Mbps 802.11g"']
    if ma:
        lines.append("Message-Authenticator = 0x00")
    if handshake is not None or eapol is not None:
        frame = eapol if eapol is not None else _message2(handshake or "")
        if ruckus:
            lines += ["Ruckus-DPSK-AKM-Suite = 0x000fac02", "Ruckus-DPSK-Cipher = 4",
                      f"Ruckus-DPSK-Anonce = 0x{ANONCE.hex()}",
                      f"Ruckus-DPSK-EAPOL-Key-Frame = 0x{frame.hex()}"]
        else:
            lines += ["WLAN-AKM-Suite = 1027074",  # 00-0F-AC:2, PSK
                      f"FreeRADIUS-802.1X-Anonce = 0x{ANONCE.hex()}",
                      f"FreeRADIUS-802.1X-EAPoL-Key-Msg = 0x{frame.hex()}"]
    return "\n".join(lines) + "\n"


def _send(srv: ApServer, attrs: str, secret: str = SECRET.decode()) -> Answer:
    return radclient(srv.port, "auth", secret, attrs, extra=RADCLIENT_DICT, timeout=1.0)


def _vlan(answer: Answer, vlan: int) -> None:
    assert answer.one("Tunnel-Type:1") == "VLAN"
    assert answer.one("Tunnel-Medium-Type:1") == "IEEE-802"
    assert answer.one("Tunnel-Private-Group-Id:1") == str(vlan)


def test_radclient_hostapd_handshake() -> None:
    srv = _serve(Vendor.HOSTAPD)
    try:
        answer = _send(srv, _attrs(handshake="bob-key-0002"))
        assert answer.code == "Access-Accept", answer.output
        assert answer.attrs[0][0] == "Message-Authenticator"
        assert answer.one("Tunnel-Password:0") == "bob-key-0002"  # decrypted by radclient
        _vlan(answer, 102)
        # hostapd 2.10 MAC-auth form for the same station: the binding answers.
        again = _send(srv, _attrs())
        assert again.code == "Access-Accept" and again.one("Tunnel-Password:0") == "bob-key-0002"
    finally:
        srv.stop()


def test_radclient_hostapd_long_message2_in_fragments() -> None:
    srv = _serve(Vendor.HOSTAPD)
    try:
        frame = psk.build_message2(psk.pmk("alice-key-0001", SSID),
                                   bytes.fromhex(BSSID.replace(":", "")),
                                   bytes.fromhex(STATION.replace(":", "")), ANONCE, SNONCE,
                                   key_data=RSN_IE + bytes(250))
        answer = _send(srv, _attrs(eapol=frame))
        assert answer.code == "Access-Accept", answer.output
        assert answer.one("Tunnel-Password:0") == "alice-key-0001"
    finally:
        srv.stop()


def test_radclient_hostapd_candidate_list() -> None:
    keys = Keys([ApKey(f"p{i}@acme.example", f"s{i}", f"candidate-key-{i}", vlan=101)
                 for i in range(3)])
    srv = _serve(Vendor.HOSTAPD, keys, cap=3)
    try:
        answer = _send(srv, _attrs())
        assert answer.code == "Access-Accept", answer.output
        assert sorted(answer.get("Tunnel-Password:0")) == [f"candidate-key-{i}"
                                                           for i in range(3)]
    finally:
        srv.stop()


@pytest.mark.parametrize("vendor", [Vendor.CISCO, Vendor.ARUBA, Vendor.MIKROTIK])
def test_radclient_mac_only_vendors(vendor: Vendor) -> None:
    srv = _serve(vendor)
    try:
        answer = _send(srv, _attrs("02:11:22:33:44:55"))
        assert answer.code == "Access-Accept", answer.output
        _vlan(answer, 101)
        match vendor:
            case Vendor.CISCO:
                assert answer.get("Cisco-AVPair") == ["psk-mode=ascii", "psk=alice-key-0001"]
            case Vendor.ARUBA:  # octets: radclient shows the decrypted value in hex
                assert answer.one("Aruba-MPSK-Passphrase") == "0x" + b"alice-key-0001".hex()
            case Vendor.MIKROTIK:
                assert answer.one("Mikrotik-Wireless-PSK") == "alice-key-0001"
        assert _send(srv, _attrs()).code == "Access-Reject"  # an unknown MAC
    finally:
        srv.stop()


def test_radclient_ruckus_dpsk() -> None:
    srv = _serve(Vendor.RUCKUS)
    try:
        answer = _send(srv, _attrs(handshake="bob-key-0002", ruckus=True))
        assert answer.code == "Access-Accept", answer.output
        assert answer.one("Ruckus-Dpsk") == "0x00" + psk.pmk("bob-key-0002", SSID).hex()
        _vlan(answer, 102)
        wrong = _send(srv, _attrs(handshake="bob-key-9999", ruckus=True))
        assert wrong.code == "Access-Reject"
    finally:
        srv.stop()


def test_radclient_bad_input() -> None:
    keys = Keys([ApKey(f"p{i}@acme.example", f"s{i}", f"candidate-key-{i:02d}", vlan=101)
                 for i in range(9)])
    srv = _serve(Vendor.HOSTAPD, keys, cap=8)
    try:
        assert _send(srv, _attrs(ma=False)).code is None
        assert _send(srv, _attrs(), secret="not-the-secret-at-all").code is None
        assert _send(srv, _attrs(eapol=b"\x02\x03\x00\x05hello")).code == "Access-Reject"
        assert _send(srv, _attrs()).code == "Access-Reject"  # 9 candidates, cap 8
    finally:
        srv.stop()
    stranger = _serve(Vendor.HOSTAPD, network="192.0.2.0/24")
    try:
        assert _send(stranger, _attrs(handshake="bob-key-0002")).code is None
    finally:
        stranger.stop()


def test_the_box_runs_the_server_only_with_access_points(tmp_path: Path) -> None:
    (tmp_path / "ap.secret").write_text("cisco-secret-0123456789\n")
    box = Box(parse(GOOD, tmp_path, MACHINE))
    try:
        assert box.access_points is not None
        assert (box.access_points.listen, box.access_points.port) == ("198.51.100.1", 1812)
        assert box.access_points.core.source is box.gateway
        assert box.access_points.core.candidates_max == 4
        assert box.gateway.keys_for_ap() == []
        # An open session with the key the centre returned at check-in.
        session, _ = sm.check_in("S1", "alice@acme.example", "02:50:00:00:00:10",
                                 "198.51.100.10", Terms(session_timeout=3600), NOW)
        box.gateway._open["S1"] = session
        box.gateway._keys["S1"] = "alice-key-0001"
        box.gateway._open["S2"] = session  # a session without a key gives none
        assert box.gateway.keys_for_ap() == [
            ApKey("alice@acme.example", "S1", "alice-key-0001", mac="02:50:00:00:00:10")]
        box.access_points.core.refresh()
        reply = _ask(box.access_points.core, _hostapd(handshake="alice-key-0001"),
                     secret=b"0123456789abcdef0123", source=("198.51.100.17", 1812))
        assert isinstance(reply, m.AccessAccept)
        assert reply.tunnel_passwords == ("alice-key-0001",)
    finally:
        box.store.close()
    plain = Box(parse(BASE, tmp_path / "plain", MACHINE))
    plain.store.close()
    assert plain.access_points is None

"""Which access point holds which station, the access points' accounting
folded into the box's sessions, and the RFC 5176 Disconnect-Request to the
access point when a session ends: the pure core with a fixed clock, the
access points' server with radclient as the access point over real UDP,
the sender against a peer that loses datagrams, and the daemon's executor.
(tests/gateway/test_hostapd_lab.py runs the real hostapd as the peer.)"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from passerelle.gateway import ap_dae
from passerelle.gateway import sessions as sm
from passerelle.gateway.ap_server import ApCore, ApServer
from passerelle.gateway.config import ConfigError, parse
from passerelle.gateway.peers import AccessPoint, Vendor
from passerelle.gateway.service import Box
from passerelle.gateway.sessions import Cause, Terms
from passerelle.radius import messages as m
from passerelle.radius.exchange import Backoff
from tests.gateway.test_ap_server import (
    BASE,
    MACHINE,
    RADCLIENT_DICT,
    SECRET,
    SSID,
    STATION,
    Keys,
    _ask,
    _hostapd,
)
from tests.gateway.test_daemon_executor import Rig, rig  # noqa: F401 (a fixture)
from tests.radius.peers import Answer, radclient

NOW = 1_790_000_000.0
AP_IP = "127.0.0.1"
AP = (AP_IP, 40001)
CALLING = STATION.replace(":", "-").upper()


@dataclass
class Open:
    """The daemon's side for the tie: its open sessions, (id, login, mac)."""

    sessions: list[tuple[str, str, str]] = field(default_factory=lambda: [
        ("S-bob", "bob@slowco.example", "02:50:00:00:00:10")])

    def session_of(self, person: str | None, mac: str) -> tuple[str, str] | None:
        for sid, login, at in self.sessions:
            if at == mac:
                return sid, login
        for sid, login, _ in self.sessions:
            if login == person:
                return sid, login
        return None


def _core(disconnect: bool = True, sessions: Open | None = None) -> ApCore:
    core = ApCore([AccessPoint(ipaddress.ip_network("127.0.0.0/8"), SECRET, Vendor.HOSTAPD,
                               disconnect, 3799)],
                  Keys(), ssid=SSID, sessions=sessions or Open())
    core.refresh()
    return core


def _acct(status: m.AcctStatus, *, station: str = CALLING, acct_id: str = "ED1C34795B5EF16B",
          **fields: Any) -> m.AccountingRequest:
    """What hostapd 2.10 sends for an association (as seen from hostapd in the lab)."""
    # Any: the message's fields, each of its own type.
    base: dict[str, Any] = dict(
        status=status, session_id=acct_id, user_name=station.replace("-", "").lower(),
        calling_station_id=station, called_station_id=f"02-AA-00-00-00-01:{SSID}",
        nas_identifier="ap1", nas_ip_address="198.51.100.2", nas_port_type=19)
    base.update(fields)
    return m.AccountingRequest(**base)


def _account(core: ApCore, request: m.AccountingRequest, now: float = NOW,
             secret: bytes = SECRET, source: tuple[str, int] = AP) -> m.Reply | None:
    sent = request.encode(secret)
    answer = core.handle(sent, source, now)
    return None if answer is None else m.decode_reply(answer, secret, sent)


def _ended(login: str = "bob@slowco.example", mac: str = "02:50:00:00:00:10",
           still_open: frozenset[str] = frozenset()) -> ap_dae.Ended:
    return ap_dae.Ended("S-bob", login, mac, still_open)


# -- the core ---------------------------------------------------------------------------


def test_the_accept_then_the_accounting_tie_the_station_to_the_person_and_session(
        caplog: pytest.LogCaptureFixture) -> None:
    core = _core()
    assert isinstance(_ask(core, _hostapd(handshake="bob-key-0002")), m.AccessAccept)
    held = core.stations.get(STATION)
    assert held is not None and (held.ap, held.person, held.calling_station_id) == \
        (AP_IP, "bob@slowco.example", CALLING)
    with caplog.at_level(logging.INFO, "passerelle.gateway"):
        assert isinstance(_account(core, _acct(m.AcctStatus.START)), m.AccountingResponse)
        assert isinstance(_account(core, _acct(
            m.AcctStatus.INTERIM_UPDATE, session_time=60, input_octets=5 * 2**32 + 7,
            output_octets=900), NOW + 60), m.AccountingResponse)
    held = core.stations.get(STATION)
    assert held is not None
    # bob's key opened it (the Accept), bob's open session holds it (the daemon).
    assert (held.person, held.session_id, held.acct_session_id, held.started) == \
        ("bob@slowco.example", "S-bob", "ED1C34795B5EF16B", NOW)
    assert (held.session_time, held.input_octets, held.output_octets) == (60, 5 * 2**32 + 7, 900)
    assert "session S-bob" in caplog.text and "charge this traffic" in caplog.text
    assert _account(core, _acct(m.AcctStatus.STOP, session_time=90), NOW + 90) is not None
    stopped = core.stations.get(STATION)
    assert stopped is not None and stopped.stopped == NOW + 90 and stopped.session_time == 90
    assert core.stations.to_release(_ended()) == []  # nothing left to let go


def test_a_station_known_only_by_its_check_in_mac_is_tied_by_the_daemon() -> None:
    # An 802.1X station (hostapd's own EAP server): no Access-Request reached the box,
    # User-Name is the MAC; the daemon has a session checked in with this MAC.
    core = _core(sessions=Open([("S-eve", "eve@acme.example", STATION)]))
    _account(core, _acct(m.AcctStatus.START))
    held = core.stations.get(STATION)
    assert held is not None and (held.person, held.session_id) == ("eve@acme.example", "S-eve")


def test_a_late_stop_from_the_access_point_left_behind_changes_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    core = _core()
    _account(core, _acct(m.AcctStatus.START, acct_id="AAAAAAAAAAAAAAAA"), source=AP)
    # The station roams to the access point at 127.0.0.2, then the first one's Stop arrives.
    _account(core, _acct(m.AcctStatus.START, acct_id="BBBBBBBBBBBBBBBB"), source=("127.0.0.2", 1))
    with caplog.at_level(logging.INFO, "passerelle.gateway"):
        reply = _account(core, _acct(m.AcctStatus.STOP, acct_id="AAAAAAAAAAAAAAAA"), NOW + 5)
    assert isinstance(reply, m.AccountingResponse)  # answered, so the AP stops resending
    held = core.stations.get(STATION)
    assert held is not None and (held.ap, held.stopped) == ("127.0.0.2", None)
    assert "not about the association held" in caplog.text


def test_accounting_on_forgets_what_the_access_point_held() -> None:
    core = _core()
    _account(core, _acct(m.AcctStatus.START))
    reply = _account(core, m.AccountingRequest(status=m.AcctStatus.ACCOUNTING_ON,
                                               nas_identifier="ap1"))
    assert isinstance(reply, m.AccountingResponse) and core.stations.all() == []


@pytest.mark.parametrize(("request_", "words"), [
    (_acct(m.AcctStatus.START, station="", user_name=None), "neither Calling-Station-Id"),
    (_acct(m.AcctStatus.START, station="someone", user_name=None), "not a MAC"),
    (m.AccountingRequest(status=15, calling_station_id=CALLING), "Acct-Status-Type 15"),
])
def test_accounting_that_records_nothing_is_dropped_with_a_reason(
        request_: m.AccountingRequest, words: str, caplog: pytest.LogCaptureFixture) -> None:
    core = _core()
    with caplog.at_level(logging.INFO, "passerelle.gateway"):
        assert _account(core, request_) is None
    assert words in caplog.text and core.stations.all() == []


def test_accounting_with_a_wrong_secret_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "passerelle.gateway"):
        assert _account(_core(), _acct(m.AcctStatus.START), secret=b"not-the-secret-of-it") \
            is None
    assert "wrong secret" in caplog.text


def test_an_ended_session_takes_its_mac_and_its_person_along() -> None:
    stations = ap_dae.Stations()
    stations.joined(AP_IP, CALLING, STATION, "bob@slowco.example", "ap1", None, NOW)
    stations.joined(AP_IP, "02-50-00-00-00-10", "02:50:00:00:00:10", None, "ap1", None, NOW)
    stations.joined(AP_IP, "02-77-00-00-00-01", "02:77:00:00:00:01", "eve@acme.example",
                    "ap1", None, NOW)
    macs = sorted(a.mac for a in stations.to_release(_ended()))
    assert macs == ["02:50:00:00:00:10", STATION]
    # bob still has a session open on the box (another device): his key's station stays.
    kept = stations.to_release(_ended(still_open=frozenset({"bob@slowco.example"})))
    assert [a.mac for a in kept] == ["02:50:00:00:00:10"]


def test_stations_are_capped_and_forgotten_when_nobody_speaks_of_them() -> None:
    stations = ap_dae.Stations(capacity=2, max_age=100)
    for i in range(3):
        stations.joined(AP_IP, f"02-00-00-00-00-0{i}", f"02:00:00:00:00:0{i}", None, None,
                        None, NOW + i)
    assert [a.mac for a in stations.all()] == ["02:00:00:00:00:01", "02:00:00:00:00:02"]
    stations.joined(AP_IP, "02-00-00-00-00-09", "02:00:00:00:00:09", None, None, None,
                    NOW + 102)
    assert [a.mac for a in stations.all()] == ["02:00:00:00:00:02", "02:00:00:00:00:09"]


def test_the_disconnect_request_names_the_station_as_the_access_point_does() -> None:
    core = _core()
    _ask(core, _hostapd(handshake="bob-key-0002", nas_ip_address="198.51.100.2"))
    _account(core, _acct(m.AcctStatus.START))
    [one] = core.releases(_ended(mac="02:99:00:00:00:00"), NOW + 10)
    assert one.address == (AP_IP, 3799) and one.secret == SECRET
    assert one.request == m.DisconnectRequest(
        identifier=one.request.identifier, authenticator=one.request.authenticator,
        calling_station_id=CALLING, acct_session_id="ED1C34795B5EF16B",
        nas_identifier="ap1", nas_ip_address="198.51.100.2", event_timestamp=int(NOW + 10))
    assert one.request.user_name is None  # hostapd would match it against an 802.1X identity
    assert "ap-secret" not in repr(one)


def test_an_access_point_without_disconnect_is_left_alone(
        caplog: pytest.LogCaptureFixture) -> None:
    core = _core(disconnect=False)
    _ask(core, _hostapd(handshake="bob-key-0002"))
    with caplog.at_level(logging.INFO, "passerelle.gateway"):
        assert core.releases(_ended(), NOW) == []
    assert "no disconnect set" in caplog.text


@pytest.mark.parametrize(("reply", "words"), [
    (m.DisconnectAck(), "Disconnect-ACK"),
    (m.DisconnectNak(error_cause=m.ErrorCause.SESSION_CONTEXT_NOT_FOUND),
     "Error-Cause 503 Session-Context-Not-Found: no such session"),
    (m.DisconnectNak(error_cause=m.ErrorCause.NAS_IDENTIFICATION_MISMATCH),
     "Error-Cause 403 NAS-Identification-Mismatch"),
    (m.DisconnectNak(error_cause=999), "Error-Cause 999 (not one RFC 5176 names)"),
    (m.DisconnectNak(), "without an Error-Cause"),
])
def test_the_answer_in_words(reply: m.Reply, words: str) -> None:
    assert words in ap_dae.outcome(reply)


# -- configuration ----------------------------------------------------------------------

WITH_AP = BASE + """
[wifi]
ssid = "Passerelle-Private"

[[access_points]]
address = "198.51.100.2"
secret = "0123456789abcdef0123"
"""


def test_config_disconnect_and_dae_port(tmp_path: Path) -> None:
    plain = parse(WITH_AP, tmp_path, MACHINE).access_points[0]
    assert (plain.disconnect, plain.dae_port) == (False, 3799)
    told = parse(WITH_AP + "disconnect = true\ndae_port = 13799\n", tmp_path, MACHINE)
    assert (told.access_points[0].disconnect, told.access_points[0].dae_port) == (True, 13799)


@pytest.mark.parametrize(("extra", "message"), [
    ('disconnect = "yes"\n', "access_points[0].disconnect: expected bool"),
    ("disconnect = true\ndae_port = 0\n", "access_points[0].dae_port: 0 is not between"),
    ("dae_port = 3799\n", "access_points[0].dae_port: set, but disconnect is not true"),
])
def test_config_disconnect_mistakes_are_named(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse(WITH_AP + extra, tmp_path, MACHINE)


def test_the_box_wires_the_daemon_and_the_access_points_both_ways(tmp_path: Path) -> None:
    box = Box(parse(WITH_AP + "disconnect = true\n", tmp_path, MACHINE))
    try:
        assert box.access_points is not None
        assert box.gateway.stations is box.access_points
        assert box.access_points.core.sessions is box.gateway
        session, _ = sm.check_in("S1", "alice@acme.example", STATION, "198.51.100.10",
                                 Terms(), NOW)
        box.gateway._open["S1"] = session
        assert box.gateway.session_of(None, STATION) == ("S1", "alice@acme.example")
        assert box.gateway.session_of("alice@acme.example", "02:00:00:00:00:01") == \
            ("S1", "alice@acme.example")
        assert box.gateway.session_of("bob@slowco.example", "02:00:00:00:00:01") is None
    finally:
        box.store.close()
    plain = Box(parse(BASE, tmp_path / "plain", MACHINE))
    plain.store.close()
    assert plain.gateway.stations is None


# -- over UDP: radclient as the access point's accounting -------------------------------


@pytest.fixture
def server() -> Iterator[ApServer]:
    srv = ApServer("127.0.0.1", 0, [AccessPoint(ipaddress.ip_network("127.0.0.0/8"), SECRET,
                                                Vendor.HOSTAPD, True, 3799)],
                   Keys(), ssid=SSID, sessions=Open([("S-eve", "eve@acme.example", STATION)]))
    srv.start()
    yield srv
    srv.stop()


def _radclient_acct(srv: ApServer, status: str, extra: str = "",
                    secret: str = SECRET.decode()) -> Answer:
    attrs = (f'Acct-Status-Type = {status}\nAcct-Session-Id = "ED1C34795B5EF16B"\n'
             f'User-Name = "{STATION.replace(":", "")}"\nCalling-Station-Id = "{CALLING}"\n'
             f'Called-Station-Id = "02-AA-00-00-00-01:{SSID}"\nNAS-Identifier = "ap1"\n'
             f"NAS-IP-Address = 127.0.0.1\nNAS-Port-Type = Wireless-802.11\n{extra}")
    return radclient(srv.port, "acct", secret, attrs, extra=RADCLIENT_DICT, timeout=1.0)


def test_radclient_start_interim_stop_are_answered_and_folded_in(server: ApServer) -> None:
    assert _radclient_acct(server, "Start").code == "Accounting-Response"
    interim = _radclient_acct(server, "Interim-Update", "Acct-Session-Time = 60\n"
                              "Acct-Input-Octets = 1000\nAcct-Output-Octets = 2000\n")
    assert interim.code == "Accounting-Response"
    with server.lock:
        held = server.core.stations.get(STATION)
    assert held is not None
    assert (held.person, held.session_id, held.input_octets, held.output_octets) == \
        ("eve@acme.example", "S-eve", 1000, 2000)
    stop = _radclient_acct(server, "Stop", "Acct-Session-Time = 75\n"
                           "Acct-Terminate-Cause = User-Request\n")
    assert stop.code == "Accounting-Response"
    with server.lock:
        held = server.core.stations.get(STATION)
    assert held is not None and held.stopped is not None and held.session_time == 75
    assert _radclient_acct(server, "Accounting-On").code == "Accounting-Response"
    with server.lock:
        assert server.core.stations.all() == []


def test_radclient_accounting_with_a_wrong_secret_gets_no_answer(server: ApServer) -> None:
    assert _radclient_acct(server, "Start", secret="not-the-secret-at-all").code is None
    with server.lock:
        assert server.core.stations.all() == []


# -- the sender, against an access point that loses datagrams ----------------------------


class LossyAp:
    """An access point's RFC 5176 side on 127.0.0.1: drops the first
    ``lose`` Disconnect-Requests, then answers ``reply`` (None: never)."""

    def __init__(self, reply: m.Reply | None, lose: int = 0) -> None:
        self.reply = reply
        self.lose = lose
        self.received: list[m.Request] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            request = m.decode_request(data, SECRET)
            self.received.append(request)
            if len(self.received) <= self.lose or self.reply is None:
                continue
            self.sock.sendto(self.reply.encode(SECRET, request), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


FAST = Backoff(initial=0.2, tries=3, maximum=0.4)


def _order(port: int) -> ap_dae.Order:
    held = ap_dae.Association(STATION, "127.0.0.1", CALLING, "bob@slowco.example",
                              nas_identifier="ap1", acct_session_id="ED1C34795B5EF16B")
    return ap_dae.order(held, port, SECRET, NOW)


@pytest.mark.parametrize(("reply", "lose", "words"), [
    (m.DisconnectAck(), 1, "Disconnect-ACK: the station is let go"),
    (m.DisconnectNak(error_cause=m.ErrorCause.SESSION_CONTEXT_NOT_FOUND), 0,
     "Session-Context-Not-Found: no such session"),
    (None, 0, "did not answer the Disconnect-Request for 02:5e:00:00:00:07 "
              "(bob@slowco.example) after 3 tries"),
])
def test_the_sender_retries_until_an_answer_and_says_it(
        reply: m.Reply | None, lose: int, words: str,
        caplog: pytest.LogCaptureFixture) -> None:
    peer = LossyAp(reply, lose)
    sender = ap_dae.Disconnector(lambda ended: [], FAST)
    try:
        with caplog.at_level(logging.INFO, "passerelle.gateway"):
            answer = sender.send(_order(peer.port))
    finally:
        peer.close()
    assert words in caplog.text
    assert type(answer) is (type(reply) if reply is not None else type(None))
    expected = 3 if reply is None else lose + 1
    assert len(peer.received) == expected
    # A retransmission is the very same request (RFC 5080 section 2.2.1).
    assert len({(r.identifier, r.authenticator) for r in peer.received}) == 1
    if lose:
        assert "try 2" in caplog.text
    first = peer.received[0]
    assert isinstance(first, m.DisconnectRequest) and first.message_authenticator
    assert (first.calling_station_id, first.acct_session_id, first.nas_identifier) == \
        (CALLING, "ED1C34795B5EF16B", "ap1")


def test_the_server_sends_what_an_ended_session_needs(caplog: pytest.LogCaptureFixture) -> None:
    peer = LossyAp(m.DisconnectAck())
    answered = threading.Event()
    srv = ApServer("127.0.0.1", 0, [AccessPoint(ipaddress.ip_network("127.0.0.0/8"), SECRET,
                                                Vendor.HOSTAPD, True, peer.port)],
                   Keys(), ssid=SSID, backoff=FAST)
    srv.disconnector.on_answer = lambda order, reply: answered.set()
    srv.start()
    try:
        with srv.lock:
            _ask(srv.core, _hostapd(handshake="bob-key-0002"))
        session, _ = sm.check_in("S-bob", "bob@slowco.example", "02:50:00:00:00:10",
                                 "198.51.100.10", Terms(), NOW)
        with caplog.at_level(logging.INFO, "passerelle.gateway"):
            srv.release(session, [session])  # its own session does not count as another
            assert answered.wait(5)
    finally:
        srv.stop()
        peer.close()
    [request] = peer.received
    assert isinstance(request, m.DisconnectRequest) and request.calling_station_id == CALLING
    assert "Disconnect-ACK" in caplog.text


# -- the daemon's executor -----------------------------------------------------------------


@dataclass
class Released:
    calls: list[tuple[str, frozenset[str]]] = field(default_factory=list)

    def release(self, session: sm.Session, still_open: Iterable[sm.Session]) -> None:
        self.calls.append((session.session_id, frozenset(s.login for s in still_open)))

    def keys_changed(self) -> None:
        pass


def test_the_executor_hands_every_ended_session_over_after_the_kernel(rig: Rig) -> None:  # noqa: F811
    released = Released()
    rig.gateway.stations = released
    for sid, login in (("S1", "alice"), ("S2", "alice"), ("S3", "bob")):
        session, actions = sm.check_in(sid, login, f"02:50:00:00:00:1{sid[1]}", "198.51.100.1"
                                       + sid[1], Terms(), NOW)
        rig.gateway._carry_out(session, actions)
    assert released.calls == []
    rig.effects.clear()
    rig.gateway.end_session("S1", Cause.USER_REQUEST)
    # The sessions still open go along: alice's second device keeps her key's stations.
    assert released.calls == [("S1", frozenset({"alice", "bob"}))]
    assert rig.effects[:3] == ["spool Stop", "table stopped", "kernel revoke 198.51.100.11"]

"""The RFC 5176 server: the pure core with a fixed clock, then over UDP with
FreeRADIUS's radclient and the centre's own client as senders."""

from __future__ import annotations

import hashlib
import logging
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from pyrad import packet as rp

from passerelle.gateway.dae_server import (
    Answer,
    Apply,
    CoaChange,
    DaeCore,
    DaeServer,
    Discard,
    Selector,
)
from passerelle.gateway.radclient import NasIdentity
from passerelle.radius import codec, dae
from passerelle.radius import messages as m
from tests.radius.peers import radclient

SECRET = b"dae-secret"
NOW = 1_790_000_000.0
NAS = NasIdentity("axis-gw", "198.51.100.1")
CENTRE = ("127.0.0.1", 40000)


@dataclass
class Table:
    """The daemon's side, as a list of live sessions."""

    live: list[dict[str, str]] = field(default_factory=lambda: [
        dict(id="0001", user="alice@acme.example", mac="02:11:22:33:44:55",
             ip="198.51.100.23"),
        dict(id="0002", user="bob@slowco.example", mac="02:11:22:33:44:66",
             ip="198.51.100.24"),
    ])
    cut: list[Selector] = field(default_factory=list)
    changed: list[tuple[str, CoaChange]] = field(default_factory=list)

    def _match(self, s: Selector) -> list[dict[str, str]]:
        return [x for x in self.live
                if s.acct_session_id in (None, x["id"]) and s.user_name in (None, x["user"])
                and s.calling_station_id in (None, x["mac"]) and s.framed_ip in (None, x["ip"])]

    def disconnect(self, selector: Selector) -> int:
        found = self._match(selector)
        self.cut.append(selector)
        self.live = [x for x in self.live if x not in found]
        return len(found)

    def change(self, selector: Selector, change: CoaChange) -> int:
        found = self._match(selector)
        self.changed.extend((x["id"], change) for x in found)
        return len(found)


def unstamped(changed: list[tuple[str, CoaChange]]) -> list[tuple[str, CoaChange]]:
    """The changes a real sender made, without their Event-Timestamp (now, to
    the second), which reaches the daemon with each change."""
    for _, change in changed:
        assert change.event_timestamp is not None
        assert abs(change.event_timestamp - time.time()) < 10
    return [(sid, replace(change, event_timestamp=None)) for sid, change in changed]


def request(code: int, attrs: dict[str, Any], *, ma: bool = True, stamp: float | None = NOW,
            secret: bytes = SECRET) -> rp.CoAPacket:
    pkt = rp.CoAPacket(code=code, secret=secret, dict=codec.dictionary())
    pkt.id = 7
    if ma:
        pkt.add_message_authenticator()
    for name, value in attrs.items():
        pkt.AddAttribute(name, value)
    if stamp is not None:
        pkt.AddAttribute("Event-Timestamp", int(stamp))
    return pkt


def signed(raw: bytes, secret: bytes = SECRET) -> bytes:
    """A crafted request with a correct Request Authenticator."""
    raw = raw[:2] + struct.pack("!H", len(raw)) + bytes(16) + raw[20:]
    return raw[:4] + hashlib.md5(raw[:4] + bytes(16) + raw[20:] + secret).digest() + raw[20:]


@pytest.fixture
def table() -> Table:
    return Table()


@pytest.fixture
def box(table: Table) -> DaeServer:
    """The server without its socket: the core and the executor."""
    return DaeServer("127.0.0.1", 0, {"127.0.0.1": SECRET}, NAS, table, window=300)


def ask(box: DaeServer, pkt: rp.CoAPacket, now: float = NOW) -> dae.Result | None:
    """Send ``pkt`` to the server; the verified result, or None if dropped."""
    sent = pkt.RequestPacket()
    reply = box.respond(sent, CENTRE, now)
    if reply is None:
        return None
    result = dae.parse_reply(sent, reply, pkt.secret)  # raises if it does not verify
    assert 80 in pkt.CreateReply(packet=reply)  # Message-Authenticator
    return result


D, C = m.Code.DISCONNECT_REQUEST, m.Code.COA_REQUEST


# -- the core ------------------------------------------------------------------------------


@pytest.mark.parametrize("attrs", [
    {"Acct-Session-Id": "0001"},
    {"User-Name": "alice@acme.example"},
    {"Calling-Station-Id": "02-11-22-33-44-55"},
    {"Calling-Station-Id": "02:11:22:33:44:55", "Framed-IP-Address": "198.51.100.23"},
    {"Framed-IP-Address": "198.51.100.23", "NAS-Identifier": "axis-gw",
     "NAS-IP-Address": "198.51.100.1"},
])
def test_disconnect_by_any_selector_is_acked(box: DaeServer, table: Table,
                                             attrs: dict[str, Any]) -> None:
    assert ask(box, request(D, attrs)) == dae.Result(acked=True)
    assert [x["id"] for x in table.live] == ["0002"]


def test_selector_fields_reach_the_daemon_normalised(box: DaeServer, table: Table) -> None:
    ask(box, request(D, {"Calling-Station-Id": "02-11-22-33-44-55", "User-Name": "alice",
                          "Framed-IP-Address": "198.51.100.23", "Acct-Session-Id": "x"}))
    assert table.cut == [Selector("x", "alice", "02:11:22:33:44:55", "198.51.100.23")]


def test_coa_changes_timeout_and_bandwidth(box: DaeServer, table: Table) -> None:
    result = ask(box, request(C, {"User-Name": "bob@slowco.example", "Session-Timeout": 900,
                                   "WISPr-Bandwidth-Max-Up": 1_000_000,
                                   "ChilliSpot-Bandwidth-Max-Down": 4000}))
    assert result == dae.Result(acked=True)
    assert table.changed == [("0002", CoaChange(900, 1_000_000, 4_000_000, NOW))]
    assert len(table.live) == 2


@pytest.mark.parametrize("code, attrs, cause", [
    (D, {"Acct-Session-Id": "nope"}, 503),
    (D, {"Calling-Station-Id": "02-11-22-33-44-99"}, 503),
    (D, {"Acct-Session-Id": "0001", "Session-Timeout": 10}, 401),
    (D, {"Acct-Session-Id": "0001", "Reply-Message": "bye"}, 401),
    (C, {"Acct-Session-Id": "0001", "Idle-Timeout": 10}, 401),
    (D, {"Acct-Session-Id": "0001", "NAS-Identifier": "other-gw"}, 403),
    (D, {"Acct-Session-Id": "0001", "NAS-IP-Address": "198.51.100.2"}, 403),
    (D, {"Acct-Session-Id": "0001", "NAS-IPv6-Address": "2001:db8::1"}, 403),
    (D, {"NAS-Identifier": "axis-gw"}, 402),
    (C, {"Acct-Session-Id": "0001"}, 402),
    (D, {"Calling-Station-Id": "not a mac"}, 407),
    (C, {"Acct-Session-Id": "0001", "Session-Timeout": 0}, 407),
    (C, {"Acct-Session-Id": "0001", "WISPr-Bandwidth-Max-Up": 1000,
         "ChilliSpot-Bandwidth-Max-Up": 2}, 407),
])
def test_naks_carry_the_right_error_cause(box: DaeServer, table: Table, code: int,
                                          attrs: dict[str, Any], cause: int,
                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "passerelle.gateway"):
        result = ask(box, request(code, attrs))
    assert result == dae.Result(acked=False, error_cause=cause)
    assert len(table.live) == 2 and table.changed == []  # nothing applied
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"dae: NAK {cause} ")


def test_bad_value_sizes_are_naked_407(box: DaeServer) -> None:
    pkt = request(C, {"Acct-Session-Id": "0001"})
    pkt[27] = [b"\x00\x10"]  # Session-Timeout of 2 octets
    assert ask(box, pkt) == dae.Result(acked=False, error_cause=407)
    pkt = request(D, {"Acct-Session-Id": "0001"})
    pkt[1] = [b"\xff\xfe"]  # User-Name that is not UTF-8
    assert ask(box, pkt) == dae.Result(acked=False, error_cause=407)


@pytest.mark.parametrize("why, pkt, now", [
    ("no Message-Authenticator", request(D, {"Acct-Session-Id": "0001"}, ma=False), NOW),
    ("no Event-Timestamp", request(D, {"Acct-Session-Id": "0001"}, stamp=None), NOW),
    ("stale", request(D, {"Acct-Session-Id": "0001"}, stamp=NOW - 301), NOW),
    ("from the future", request(D, {"Acct-Session-Id": "0001"}, stamp=NOW + 301), NOW),
    ("wrong secret", request(D, {"Acct-Session-Id": "0001"}, secret=b"guess"), NOW),
])
def test_untrusted_requests_are_dropped_silently(box: DaeServer, table: Table, why: str,
                                                 pkt: rp.CoAPacket, now: float,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "passerelle.gateway"):
        assert ask(box, pkt, now) is None
    assert table.cut == [] and len(table.live) == 2
    assert len(caplog.records) == 1 and "dropped" in caplog.records[0].getMessage()


def test_window_edge_is_accepted(box: DaeServer) -> None:
    assert ask(box, request(D, {"Acct-Session-Id": "0001"}, stamp=NOW - 300)) == (
        dae.Result(acked=True))


def test_bad_message_authenticator_is_dropped(box: DaeServer) -> None:
    pkt = request(D, {"Acct-Session-Id": "0001"})
    raw = bytearray(pkt.RequestPacket())
    raw[22] ^= 1  # inside Message-Authenticator, first attribute
    assert box.respond(signed(bytes(raw)), CENTRE, NOW) is None


def test_unknown_source_is_dropped_before_anything(table: Table) -> None:
    box = DaeServer("127.0.0.1", 0, {"192.0.2.10": SECRET}, NAS, table)
    assert box.respond(request(D, {"Acct-Session-Id": "0001"}).RequestPacket(), CENTRE,
                       NOW) is None
    assert table.cut == []


def test_a_retransmission_gets_the_cached_reply_without_a_second_cut(
        box: DaeServer, table: Table) -> None:
    data = request(D, {"Acct-Session-Id": "0001"}).RequestPacket()
    first = box.respond(data, CENTRE, NOW)
    again = box.respond(data, CENTRE, NOW + 5)
    assert first is not None and again == first
    assert len(table.cut) == 1
    # A new request (new Identifier) for a session already gone: NAK 503.
    pkt = request(D, {"Acct-Session-Id": "0001"})
    pkt.id = 8
    assert ask(box, pkt, NOW + 6) == dae.Result(acked=False, error_cause=503)


def test_proxy_state_is_echoed_in_order(box: DaeServer) -> None:
    pkt = request(D, {"Acct-Session-Id": "0001", "Proxy-State": [b"one", b"two"]})
    reply = box.respond(pkt.RequestPacket(), CENTRE, NOW)
    assert reply is not None
    assert pkt.CreateReply(packet=reply)[33] == [b"one", b"two"]


# -- the pure core: decisions, no sessions -------------------------------------------------


def test_the_core_decides_and_the_answer_comes_after_the_sessions() -> None:
    core = DaeCore({"127.0.0.1": SECRET}, NAS, window=300)
    data = request(C, {"User-Name": "bob", "Session-Timeout": 60}).RequestPacket()
    decision = core.handle(data, CENTRE, NOW)
    assert isinstance(decision, Apply)
    assert decision.selector == Selector(None, "bob", None, None)
    assert decision.change == CoaChange(session_timeout=60, event_timestamp=NOW)
    ack = core.answer(decision, 2, NOW)
    assert dae.parse_reply(data, ack.datagram, SECRET) == dae.Result(acked=True)
    # The answer is kept: the same request again is not applied twice.
    assert core.handle(data, CENTRE, NOW + 1) == Answer(ack.datagram, ANY_NOTE)
    other = request(D, {"User-Name": "nobody"})
    other.id = 9
    sent = other.RequestPacket()
    decision = core.handle(sent, CENTRE, NOW)
    assert isinstance(decision, Apply) and decision.change is None
    nak = core.answer(decision, 0, NOW)
    assert dae.parse_reply(sent, nak.datagram, SECRET) == dae.Result(acked=False,
                                                                     error_cause=503)
    assert core.handle(sent, CENTRE, NOW + 1) == Answer(nak.datagram, ANY_NOTE)


def test_the_core_discards_and_refuses_without_sessions() -> None:
    core = DaeCore({"127.0.0.1": SECRET}, NAS, window=300)
    stale = request(D, {"Acct-Session-Id": "0001"}, stamp=NOW - 301).RequestPacket()
    assert isinstance(core.handle(stale, CENTRE, NOW), Discard)
    assert core.handle(stale, ("192.0.2.7", 3799), NOW) == Discard(
        "192.0.2.7 is not a configured client")
    sent = request(D, {"Acct-Session-Id": "0001", "NAS-Identifier": "other-gw"}).RequestPacket()
    refused = core.handle(sent, CENTRE, NOW)
    assert isinstance(refused, Answer) and refused.note.startswith("NAK 403 ")
    assert dae.parse_reply(sent, refused.datagram, SECRET).error_cause == 403


class _AnyNote(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str)

    __hash__ = str.__hash__


ANY_NOTE = _AnyNote()


def test_the_executor_fails_loudly_on_a_decision_it_does_not_know(
        box: DaeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(box.core, "handle", lambda *_: "carry on")
    with pytest.raises(AssertionError):
        box.respond(b"", CENTRE, NOW)


# -- replays: a captured request sent again while its Event-Timestamp is current --------------


def test_a_replay_inside_the_timestamp_window_is_never_acted_on_again(
        box: DaeServer, table: Table) -> None:
    data = request(D, {"User-Name": "alice@acme.example"}).RequestPacket()
    first = box.respond(data, CENTRE, NOW)
    assert first is not None and [x["id"] for x in table.live] == ["0002"]
    # Alice checks in again; the old Disconnect, captured, is sent again
    # from anywhere until its Event-Timestamp leaves the 300 s window.
    table.live.append(dict(id="0003", user="alice@acme.example", mac="02:11:22:33:44:55",
                           ip="198.51.100.23"))
    for later, port in ((31, 40000), (200, 40001), (300, 5555)):
        assert box.respond(data, ("127.0.0.1", port), NOW + later) == first
    assert len(table.cut) == 1 and [x["id"] for x in table.live] == ["0002", "0003"]
    # Past the window it is stale: the kept reply or silence, never acted on.
    assert box.respond(data, CENTRE, NOW + 301) in (first, None)
    assert box.respond(data, CENTRE, NOW + 700) is None
    assert len(table.cut) == 1 and [x["id"] for x in table.live] == ["0002", "0003"]


def test_a_request_stamped_ahead_of_our_clock_is_covered_until_it_is_stale(
        box: DaeServer, table: Table) -> None:
    # The centre's clock is 300 s ahead: the stamp is current for 600 s here.
    data = request(D, {"User-Name": "alice@acme.example"}, stamp=NOW + 300).RequestPacket()
    first = box.respond(data, CENTRE, NOW)
    assert first is not None
    table.live.append(dict(id="0003", user="alice@acme.example", mac="02:11:22:33:44:55",
                           ip="198.51.100.23"))
    assert box.respond(data, CENTRE, NOW + 599) == first
    assert box.respond(data, CENTRE, NOW + 601) is None
    assert len(table.cut) == 1 and [x["id"] for x in table.live] == ["0002", "0003"]


HEADER = bytes([40, 1, 0, 20]) + bytes(16)
MALFORMED = [
    b"",
    b"\x28\x01\x00",
    HEADER[:19],
    bytes([40, 1, 0, 19]) + bytes(16),  # Length below 20
    bytes([40, 1, 0x10, 0x01]) + bytes(16),  # Length above 4096
    bytes([40, 1, 0, 60]) + bytes(16),  # shorter than Length
    signed(HEADER + b"\x01\x01"),  # attribute length 1
    signed(HEADER + b"\x01\x00"),  # attribute length 0
    signed(HEADER + b"\x01\x09abc"),  # attribute past the end
    signed(HEADER + b"\x50\x05abc"),  # Message-Authenticator of 3 octets
    signed(bytes([1, 1, 0, 20]) + bytes(16)),  # an Access-Request
    signed(bytes([41, 1, 0, 20]) + bytes(16)),  # an ACK sent to us
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_datagrams_are_dropped(box: DaeServer, data: bytes) -> None:
    assert box.respond(data, CENTRE, NOW) is None


# -- over UDP ---------------------------------------------------------------------------------


@pytest.fixture
def server(table: Table) -> Iterator[DaeServer]:
    srv = DaeServer("127.0.0.1", 0, {"127.0.0.1": SECRET}, NasIdentity("axis-gw", "127.0.0.1"),
                    table)
    srv.start()
    yield srv
    srv.stop()


def test_malformed_datagrams_over_udp_leave_the_server_answering(
        server: DaeServer, table: Table, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, \
            caplog.at_level(logging.WARNING, "passerelle.gateway"):
        sock.connect(("127.0.0.1", server.port))
        sock.settimeout(0.3)
        for data in MALFORMED:
            sock.send(data)
        result = dae.disconnect(dae.Target("127.0.0.1", server.port, SECRET),
                                {"Acct-Session-Id": "0001"}, timeout=1.0)
        with pytest.raises(TimeoutError):
            sock.recv(4096)  # none of the malformed ones was answered
    assert result.acked
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == len(MALFORMED)


class Broken(Table):
    def disconnect(self, selector: Selector) -> int:
        raise RuntimeError("the session table is gone")


def test_a_failing_daemon_gets_no_answer_and_the_server_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    broken = Broken()
    srv = DaeServer("127.0.0.1", 0, {"127.0.0.1": SECRET}, NasIdentity("axis-gw", "127.0.0.1"),
                    broken)
    srv.start()
    target = dae.Target("127.0.0.1", srv.port, SECRET)
    try:
        with caplog.at_level(logging.ERROR, "passerelle.gateway"):
            lost = dae.disconnect(target, {"Acct-Session-Id": "0001"}, timeout=0.3, tries=1)
        changed = dae.change(target, {"Acct-Session-Id": "0001", "Session-Timeout": 5},
                             timeout=1.0)
    finally:
        srv.stop()
    assert not lost.answered and "not answered" in caplog.text
    assert changed.acked and unstamped(broken.changed) == [("0001", CoaChange(session_timeout=5))]


def test_an_unknown_source_gets_no_answer_over_udp(table: Table) -> None:
    srv = DaeServer("127.0.0.1", 0, {"192.0.2.10": SECRET}, NasIdentity("axis-gw", "127.0.0.1"),
                    table)
    srv.start()
    try:
        result = dae.disconnect(dae.Target("127.0.0.1", srv.port, SECRET),
                                {"Acct-Session-Id": "0001"}, timeout=0.3, tries=1)
    finally:
        srv.stop()
    assert not result.answered and table.cut == []


def test_the_centres_own_client(server: DaeServer, table: Table) -> None:
    target = dae.Target("127.0.0.1", server.port, SECRET)
    assert dae.disconnect(target, {"Acct-Session-Id": "0001", "NAS-Identifier": "axis-gw"},
                          timeout=1.0).acked
    missing = dae.disconnect(target, {"Acct-Session-Id": "0001"}, timeout=1.0)
    assert (missing.acked, missing.error_cause) == (False, 503)
    assert dae.change(target, {"Framed-IP-Address": "198.51.100.24", "Session-Timeout": 60},
                      timeout=1.0).acked
    assert unstamped(table.changed) == [("0002", CoaChange(session_timeout=60))]
    wrong = dae.disconnect(dae.Target("127.0.0.1", server.port, b"guess"),
                           {"Acct-Session-Id": "0002"}, timeout=0.3, tries=1)
    assert not wrong.answered and len(table.live) == 1


# -- with FreeRADIUS's radclient ----------------------------------------------------------------

MA = "Message-Authenticator = 0x00"


def send(server: DaeServer, kind: str, attrs: str, secret: bytes = SECRET,
         timeout: float = 1.5) -> Any:
    return radclient(server.port, kind, secret.decode(), attrs, timeout=timeout)


def stamp(offset: int = 0) -> str:
    return f"Event-Timestamp = {int(time.time()) + offset}"


@pytest.mark.integration
def test_radclient_disconnect_match_is_acked(server: DaeServer, table: Table) -> None:
    answer = send(server, "disconnect",
                  f'Acct-Session-Id = "0001", NAS-Identifier = "axis-gw", {stamp()}, {MA}')
    assert answer.code == "Disconnect-ACK", answer.output
    assert [x["id"] for x in table.live] == ["0002"]


@pytest.mark.integration
@pytest.mark.parametrize("attrs, secret", [
    ('Acct-Session-Id = "0001", {stamp}', SECRET),  # no Message-Authenticator
    ('Acct-Session-Id = "0001", {ma}', SECRET),  # no Event-Timestamp
    ('Acct-Session-Id = "0001", {stale}, {ma}', SECRET),  # 1000 s old
    ('Acct-Session-Id = "0001", {stamp}, {ma}', b"wrong-secret"),
])
def test_radclient_untrusted_requests_get_no_answer(server: DaeServer, table: Table, attrs: str,
                                                    secret: bytes) -> None:
    text = attrs.format(stamp=stamp(), stale=stamp(-1000), ma=MA)
    answer = send(server, "disconnect", text, secret, timeout=0.5)
    assert answer.code is None, answer.output
    assert len(table.live) == 2


@pytest.mark.integration
@pytest.mark.parametrize("kind, attrs, code, cause", [
    ("disconnect", 'Calling-Station-Id = "02-11-22-33-44-99"', "Disconnect-NAK",
     "Session-Context-Not-Found"),
    ("disconnect", 'Acct-Session-Id = "0001", Session-Timeout = 60', "Disconnect-NAK",
     "Unsupported-Attribute"),
    ("disconnect", 'Acct-Session-Id = "0001", NAS-Identifier = "elsewhere"', "Disconnect-NAK",
     "NAS-Identification-Mismatch"),
    ("disconnect", 'NAS-Identifier = "axis-gw"', "Disconnect-NAK", "Missing-Attribute"),
    ("coa", 'User-Name = "nobody"', "CoA-NAK", "Missing-Attribute"),
    ("coa", 'User-Name = "nobody", Session-Timeout = 60', "CoA-NAK",
     "Session-Context-Not-Found"),
])
def test_radclient_naks(server: DaeServer, table: Table, kind: str, attrs: str, code: str,
                        cause: str) -> None:
    answer = send(server, kind, f"{attrs}, {stamp()}, {MA}")
    assert answer.code == code, answer.output
    assert answer.one("Error-Cause") == cause
    assert answer.attrs[0][0] == "Message-Authenticator"
    assert len(table.live) == 2 and table.changed == []


@pytest.mark.integration
def test_radclient_coa_is_applied(server: DaeServer, table: Table) -> None:
    answer = send(server, "coa", f'Calling-Station-Id = "02-11-22-33-44-55", '
                                 f'Session-Timeout = 1200, WISPr-Bandwidth-Max-Down = 5000000, '
                                 f'{stamp()}, {MA}')
    assert answer.code == "CoA-ACK", answer.output
    assert unstamped(table.changed) == [("0001", CoaChange(1200, None, 5_000_000))]

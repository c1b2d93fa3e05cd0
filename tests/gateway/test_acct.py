"""Accounting records: the attributes they become, with a fixed clock."""

from __future__ import annotations

from typing import Any

import pytest
from pyrad import packet as rp

from passerelle.gateway.acct import AccountingRecord
from passerelle.radius import codec
from passerelle.radius import messages as m

EVENT = 1_790_000_000.0
CLASS = b"psl1:\x00\xff binary class"


def interim(**kw: Any) -> AccountingRecord:
    # Any: each field has its own type, and a test may pass a wrong one.
    fields: dict[str, Any] = dict(
        status=m.AcctStatus.INTERIM_UPDATE, session_id="0001-abc", username="alice@acme.example",
        mac="aa:bb:cc:dd:ee:ff", ipv4="198.51.100.23", class_=CLASS, session_time=600,
        input_octets=1000, output_octets=2000, input_packets=10, output_packets=20,
        event_time=EVENT)
    fields.update(kw)
    return AccountingRecord(**fields)


# RFC 2866 section 5.13: never in an Accounting-Request.
NOT_IN_ACCOUNTING = ("User-Password", "CHAP-Password", "Reply-Message", "State")


def as_packet(record: AccountingRecord, now: float) -> rp.AcctPacket:
    """Encode with the message layer, decode with pyrad (an independent reader)."""
    return rp.AcctPacket(packet=record.request(now).encode(b"k"), secret=b"k",
                         dict=codec.dictionary())


def first(pkt: rp.Packet, name: str) -> Any:
    # Any: pyrad's value, of the type the dictionary gives the attribute.
    return pkt[name][0]


def octets(pkt: rp.Packet, low: str, high: str) -> int:
    """A 64-bit counter from its 32-bit value and its Gigawords (RFC 2869)."""
    return int(pkt.get(high, [0])[0]) * 2**32 + int(pkt[low][0])


def test_start_carries_identity_class_and_time() -> None:
    rec = interim(status=m.AcctStatus.START, session_time=0, input_octets=0, output_octets=0,
                  input_packets=0, output_packets=0)
    pkt = as_packet(rec, EVENT)
    assert first(pkt, "Acct-Status-Type") == "Start"
    assert first(pkt, "Acct-Session-Id") == "0001-abc"
    assert first(pkt, "Calling-Station-Id") == "AA-BB-CC-DD-EE-FF"
    assert first(pkt, "Framed-IP-Address") == "198.51.100.23"
    assert pkt[25] == [CLASS]  # echoed unmodified
    assert first(pkt, "Event-Timestamp") == int(EVENT)
    assert first(pkt, "Acct-Delay-Time") == 0
    # Counters belong to Interim and Stop only.
    assert "Acct-Input-Octets" not in pkt and "Acct-Terminate-Cause" not in pkt
    for name in NOT_IN_ACCOUNTING:
        assert name not in pkt


def test_late_send_carries_the_delay_and_keeps_the_event_time() -> None:
    pkt = as_packet(interim(), EVENT + 125.7)
    assert first(pkt, "Acct-Delay-Time") == 125
    assert first(pkt, "Event-Timestamp") == int(EVENT)


def test_delay_is_never_negative_when_the_clock_steps_back() -> None:
    assert interim().delay(EVENT - 50) == 0


@pytest.mark.parametrize("total", [0, 2**32 - 1, 2**32, 2**32 + 5, 5 * 2**32 + 123_456])
def test_octets_over_4_gib_use_gigawords(total: int) -> None:
    pkt = as_packet(interim(input_octets=total, output_octets=total + 1), EVENT)
    assert octets(pkt, "Acct-Input-Octets", "Acct-Input-Gigawords") == total
    assert octets(pkt, "Acct-Output-Octets", "Acct-Output-Gigawords") == total + 1
    assert first(pkt, "Acct-Input-Octets") < 2**32
    assert ("Acct-Input-Gigawords" in pkt) == (total >= 2**32)


def test_upload_is_input_in_the_nas_view() -> None:
    pkt = as_packet(interim(input_octets=111, output_octets=222), EVENT)
    assert first(pkt, "Acct-Input-Octets") == 111
    assert first(pkt, "Acct-Output-Octets") == 222


def test_packet_counters_wrap_at_32_bits() -> None:
    pkt = as_packet(interim(input_packets=2**32 + 3), EVENT)
    assert first(pkt, "Acct-Input-Packets") == 3


@pytest.mark.parametrize("cause, code", [("User-Request", 1), ("Lost-Carrier", 2),
                                         ("Idle-Timeout", 4), ("Session-Timeout", 5),
                                         ("Admin-Reset", 6), ("Admin-Reboot", 7),
                                         ("NAS-Request", 10), ("NAS-Reboot", 11)])
def test_stop_carries_its_terminate_cause(cause: str, code: int) -> None:
    member = m.TerminateCause(code)
    assert member.label == cause
    pkt = as_packet(interim(status=m.AcctStatus.STOP, terminate_cause=member), EVENT)
    assert pkt[49] == [code.to_bytes(4, "big")]
    assert first(pkt, "Acct-Terminate-Cause") == cause
    assert first(pkt, "Acct-Session-Time") == 600


def test_accounting_on_needs_no_session() -> None:
    pkt = as_packet(AccountingRecord(m.AcctStatus.ACCOUNTING_ON, event_time=EVENT), EVENT + 2)
    assert first(pkt, "Acct-Status-Type") == "Accounting-On"
    assert first(pkt, "Acct-Session-Id") == f"accounting-on-{int(EVENT)}"
    assert "Acct-Session-Time" not in pkt and "Acct-Input-Octets" not in pkt
    assert first(pkt, "Acct-Delay-Time") == 2


@pytest.mark.parametrize("kw, message", [
    (dict(status="Interim-Update"), "Acct-Status-Type"),  # a name, not the member
    (dict(status=3), "Acct-Status-Type"),
    (dict(status=m.AcctStatus.STOP), "terminate_cause"),
    (dict(terminate_cause=m.TerminateCause.USER_REQUEST), "Stop only"),
    (dict(status=m.AcctStatus.STOP, terminate_cause="Quota"), "Acct-Terminate-Cause"),
    (dict(status=m.AcctStatus.STOP, terminate_cause=1), "Acct-Terminate-Cause"),
    (dict(session_id=""), "session_id"),
    (dict(mac="not-a-mac"), "MAC"),
    (dict(ipv4="198.51.100.300"), "IPv4"),
    (dict(input_octets=-1), "out of range"),
    (dict(class_=b""), "Class"),
])
def test_bad_records_are_refused_with_a_reason(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        interim(**kw)


def test_json_round_trip_keeps_binary_class() -> None:
    rec = interim(status=m.AcctStatus.STOP, terminate_cause=m.TerminateCause.IDLE_TIMEOUT,
                  input_octets=7 * 2**32)
    assert AccountingRecord.from_json(rec.to_json()) == rec
    none = interim(class_=None)
    assert AccountingRecord.from_json(none.to_json()) == none


# What the box wrote to its spool before the message layer (status and cause
# as their RFC names, "" for no cause): an upgraded box must still send it.
EARLIER: list[dict[str, Any]] = [
    {"status": "Stop", "session_id": "0001-abc", "username": "alice@acme.example",
     "mac": "aa:bb:cc:dd:ee:ff", "ipv4": "198.51.100.23", "class_": "cHNsMToA/yBiaW5hcnk=",
     "session_time": 600, "input_octets": 5 * 2**32 + 1, "output_octets": 2000,
     "input_packets": 10, "output_packets": 20, "terminate_cause": "Lost-Carrier",
     "event_time": EVENT},
    {"status": "Accounting-On", "session_id": "", "username": "", "mac": "", "ipv4": "",
     "class_": None, "session_time": 0, "input_octets": 0, "output_octets": 0,
     "input_packets": 0, "output_packets": 0, "terminate_cause": "", "event_time": EVENT},
]


def test_records_of_the_earlier_spool_form_are_read() -> None:
    stop, on = (AccountingRecord.from_json(data) for data in EARLIER)
    assert stop.status is m.AcctStatus.STOP
    assert stop.terminate_cause is m.TerminateCause.LOST_CARRIER
    assert stop.class_ == b"psl1:\x00\xff binary"
    assert (on.status, on.terminate_cause) == (m.AcctStatus.ACCOUNTING_ON, None)
    # The form written today is the same one: an older box reads it too.
    assert [stop.to_json(), on.to_json()] == EARLIER


@pytest.mark.parametrize("data", [
    {"status": "Bogus"}, {"status": 2, "terminate_cause": 1},
    {"status": "Stop", "session_id": "s", "terminate_cause": "Quota"},
    {"status": "Stop", "session_id": "s"}, {"status": "Start"}, {},
])
def test_unreadable_stored_records_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        AccountingRecord.from_json(data)

"""The message layer's Wi-Fi additions: an access point's handshake
attributes (FreeRADIUS Extended-Vendor-Specific-5 with RFC 6929 fragments,
Ruckus-DPSK-Params), WLAN-AKM-Suite, and the vendor key replies."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.radius import messages as m
from passerelle.radius.codec import MalformedPacket, build, codec, parse

SECRET = b"ap-secret-0123456789"
ANONCE = bytes(range(32))


def _request(**fields: Any) -> m.AccessRequest:
    sent = m.AccessRequest(user_name="025e00000007", nas_identifier="ap1",
                           **fields).encode(SECRET)
    request = m.decode_request(sent, SECRET)
    assert isinstance(request, m.AccessRequest)
    return request


@pytest.mark.parametrize("size", [0, 95, 246, 247, 251, 600])
def test_handshake_attributes_round_trip_in_fragments(size: int) -> None:
    frame = bytes(i % 251 for i in range(size))
    request = _request(anonce=ANONCE, eapol_key=frame, akm_suite=0x000FAC02)
    assert request.anonce == ANONCE
    assert request.eapol_key == frame
    assert request.akm_suite == 0x000FAC02
    assert request.problems == ()


def test_fragments_carry_the_vendor_only_in_the_first() -> None:
    datagram = _request(eapol_key=b"\xee" * 300).encode(SECRET)
    pkt = parse(datagram)
    assert [k for k, _ in pkt.attributes if isinstance(k, tuple)] == [(245, 11344, 2)]
    fragments, pos = [], 20
    while pos < len(datagram):
        if datagram[pos] == 245:
            fragments.append(datagram[pos:pos + datagram[pos + 1]])
        pos += datagram[pos + 1]
    assert [(f[1], f[2], f[3]) for f in fragments] == [(255, 26, 0x80), (4 + 305 - 251, 26, 0)]
    assert fragments[0][4:9] == (11344).to_bytes(4, "big") + b"\x02"
    assert fragments[1][4:] == b"\xee" * (305 - 251)  # the value goes on, no vendor


def _with_attrs(body: bytes) -> bytes:
    # An Access-Request whose attributes are ``body`` (raw), with a valid MA.
    head = build(1, 7, [], SECRET, kind="random", authenticator=bytes(16), with_ma=False)
    return head[:2] + (20 + len(body)).to_bytes(2, "big") + head[4:20] + body


@pytest.mark.parametrize(("body", "words"), [
    (bytes([245, 9, 26, 0x80]) + bytes(5), "no continuation"),
    (bytes([245, 9, 26, 0x80]) + bytes(5) + bytes([1, 3, 120]), "not continued"),
    (bytes([245, 9, 26, 0x80]) + bytes(5) + bytes([245, 5, 1, 0, 9]), "continued by another"),
    (bytes([245, 6, 26, 0, 0, 0]), "without its vendor"),
    (bytes([245, 3, 26]), "shorter than its header"),
])
def test_bad_long_extended_attributes_are_malformed(body: bytes, words: str) -> None:
    with pytest.raises(MalformedPacket, match=words):
        parse(_with_attrs(body))


def test_another_extended_type_is_kept_raw() -> None:
    pkt = parse(_with_attrs(bytes([245, 6, 1, 0, 0xAB, 0xCD])))
    assert pkt.attributes == ((245, bytes([1, 0, 0xAB, 0xCD])),)


def test_ruckus_dpsk_params_give_the_handshake() -> None:
    tlv = bytes([1, 6]) + (0x000FAC02).to_bytes(4, "big") + bytes([2, 3, 4])
    tlv += bytes([3, 34]) + ANONCE + bytes([4, 101]) + bytes(99)
    request = _request(other=(codec().raw("Ruckus-DPSK-Params", tlv),))
    assert request.anonce == ANONCE and request.eapol_key == bytes(99)
    assert request.akm_suite == 0x000FAC02
    broken = _request(other=(codec().raw("Ruckus-DPSK-Params", tlv + b"\x03\x50"),))
    assert any("Ruckus-DPSK-Params" in p for p in broken.problems)


def test_vendor_key_replies_round_trip() -> None:
    request = _request()
    pmk = bytes(range(32))
    accept = m.AccessAccept(cisco_avpairs=("psk-mode=ascii", "psk=alice-key-01"),
                            aruba_mpsk_passphrase="alice-key-01",
                            mikrotik_wireless_psk="alice-key-01", ruckus_dpsk=pmk, vlan=101)
    datagram = accept.encode(SECRET, request)
    sent = request.encode(SECRET)
    back = m.decode_reply(datagram, SECRET, sent)
    assert isinstance(back, m.AccessAccept)
    assert back.cisco_avpairs == accept.cisco_avpairs
    assert back.aruba_mpsk_passphrase == "alice-key-01"
    assert back.mikrotik_wireless_psk == "alice-key-01"
    assert back.ruckus_dpsk == pmk and back.vlan == 101
    # Aruba's value is hidden, untagged: salt (top bit set) and 16n octets.
    raw = dict(parse(datagram).attributes)[(14823, 44)]
    assert raw[0] & 0x80 and len(raw) % 16 == 2 and b"alice" not in raw
    assert b"\x00" + pmk == dict(parse(datagram).attributes)[(25053, 142)]


def test_a_bad_ruckus_dpsk_is_a_problem_not_a_key() -> None:
    request = _request()
    accept = m.AccessAccept(other=(codec().raw("Ruckus-Dpsk", bytes(5)),))
    back = m.decode_reply(accept.encode(SECRET, request), SECRET, request.encode(SECRET))
    assert isinstance(back, m.AccessAccept) and back.ruckus_dpsk is None
    assert any("Ruckus-Dpsk" in p for p in back.problems)

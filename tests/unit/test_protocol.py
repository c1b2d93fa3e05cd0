"""protocol.py without sockets: header checks (RFC 2865 section 3), the
attribute walk, Message-Authenticator presence, 64-bit counters (RFC 2869
section 5.1/5.2), the shipped dictionaries."""

from __future__ import annotations

import random
import struct

import pytest
from pyrad import packet as rp

from passerelle.radius import protocol
from passerelle.radius.protocol import MalformedPacket, check_header, decode_request

SECRET = b"unit-test secret"
AUTH = bytes(range(16))


def raw(code: int, attrs: bytes = b"", ident: int = 7, length: int | None = None) -> bytes:
    """A datagram built octet by octet; ``length`` overrides the Length field."""
    total = 20 + len(attrs) if length is None else length
    return struct.pack("!BBH", code, ident, total) + AUTH + attrs


def attr(code: int, value: bytes) -> bytes:
    return bytes([code, len(value) + 2]) + value


USER = attr(1, b"alice@acme.example")


# -- header -----------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 4, 19])
def test_shorter_than_a_header(size: int) -> None:
    with pytest.raises(MalformedPacket, match="shorter than a header"):
        check_header(raw(1, USER)[:size])


def test_header_fields() -> None:
    assert check_header(raw(4, USER, ident=200)) == (4, 200, 20 + len(USER))
    assert check_header(raw(1)) == (1, 7, 20)  # no attributes at all


@pytest.mark.parametrize("length", [0, 1, 19])
def test_length_field_below_20(length: int) -> None:
    with pytest.raises(MalformedPacket, match="outside 20-4096"):
        check_header(raw(1, USER, length=length))


@pytest.mark.parametrize("length", [4097, 8192, 65535])
def test_length_field_above_4096(length: int) -> None:
    data = raw(1, bytes(length), length=length)  # the datagram really is that long
    with pytest.raises(MalformedPacket, match="outside 20-4096"):
        check_header(data)
    with pytest.raises(MalformedPacket):
        decode_request(data, SECRET)


def test_length_of_exactly_4096_is_accepted() -> None:
    # 15 attributes of 255 octets and one of 251: 20 + 3825 + 251 = 4096.
    attrs = attr(33, bytes(253)) * 15 + attr(33, bytes(249))
    pkt = decode_request(raw(1, attrs), SECRET)
    assert len(pkt.raw_packet) == 4096
    assert len(protocol.raw_values(pkt, 33)) == 16


def test_datagram_shorter_than_its_length_is_dropped() -> None:
    data = raw(1, USER, length=20 + len(USER) + 1)
    with pytest.raises(MalformedPacket, match="shorter than Length"):
        check_header(data)
    with pytest.raises(MalformedPacket):
        decode_request(data, SECRET)


def test_octets_past_length_are_padding() -> None:
    data = raw(1, USER)
    # The padding is not a valid attribute: it must not even be looked at.
    pkt = decode_request(data + b"\x01\x00\xff\xff" + bytes(40), SECRET)
    assert pkt.raw_packet == data
    assert protocol.first(pkt, "User-Name") == "alice@acme.example"
    # A Length that cuts the last attribute short leaves a bad attribute.
    with pytest.raises(MalformedPacket, match="bad length"):
        decode_request(raw(1, USER, length=20 + len(USER) - 1) + b"\x00", SECRET)


# -- attribute walk ---------------------------------------------------------


@pytest.mark.parametrize("attrs, message", [
    (USER + b"\x01\x00", "bad length 0"),             # zero-length attribute
    (USER + b"\x1f\x01", "bad length 1"),             # length below the 2-octet header
    (USER + b"\x01\x09ab", "bad length 9"),           # runs past the end
    (b"\x01\xffabc", "bad length 255"),
    (USER + b"\x01", "truncated attribute header"),  # one octet left
    (attr(80, bytes(15)), "Message-Authenticator is not 16 octets"),
    (attr(80, bytes(17)), "Message-Authenticator is not 16 octets"),
    (attr(80, bytes(16)) + USER + attr(80, bytes(16)), "more than one Message-Authenticator"),
])
def test_bad_attributes(attrs: bytes, message: str) -> None:
    with pytest.raises(MalformedPacket, match=message):
        decode_request(raw(1, attrs), SECRET)


def test_empty_attribute_value_is_well_formed() -> None:
    pkt = decode_request(raw(1, USER + attr(33, b"")), SECRET)
    assert protocol.raw_values(pkt, 33) == [b""]


def test_vendor_attribute_with_bad_inner_lengths_is_kept_raw() -> None:
    vsa = attr(26, struct.pack("!L", 14122) + b"\x07\x09\x00")  # sub-attribute overruns
    pkt = decode_request(raw(1, USER + vsa), SECRET)
    assert protocol.raw_values(pkt, 26) == [vsa[2:]]


@pytest.mark.parametrize("code", [0, 2, 3, 5, 11, 41, 99, 255])
def test_codes_a_server_does_not_take(code: int) -> None:
    with pytest.raises(MalformedPacket, match=f"unexpected packet code {code}"):
        decode_request(raw(code, USER), SECRET)


@pytest.mark.parametrize("code, on_acct, cls", [
    (protocol.ACCESS_REQUEST, False, rp.AuthPacket),
    (protocol.ACCOUNTING_REQUEST, False, rp.AcctPacket),
    (protocol.DISCONNECT_REQUEST, False, rp.CoAPacket),
    (protocol.COA_REQUEST, False, rp.CoAPacket),
    (protocol.STATUS_SERVER, False, rp.AuthPacket),
    (protocol.STATUS_SERVER, True, rp.AcctPacket),  # RFC 5997: answered per port
])
def test_request_classes(code: int, on_acct: bool, cls: type[rp.Packet]) -> None:
    pkt = decode_request(raw(code, USER), SECRET, status_on_acct=on_acct)
    assert type(pkt) is cls and pkt.code == code and pkt.id == 7


def test_first_counts_an_undecodable_value_as_absent() -> None:
    bad_ip = attr(8, b"\xc0\x00\x02")  # Framed-IP-Address of 3 octets
    bad_int = attr(27, b"\x00\x01")    # Session-Timeout of 2 octets
    bad_text = attr(1, b"\xff\xfe")    # User-Name that is not UTF-8
    pkt = decode_request(raw(1, bad_ip + bad_int + bad_text), SECRET)
    assert protocol.first(pkt, "Framed-IP-Address", "none") == "none"
    assert protocol.first(pkt, "Session-Timeout") is None
    assert protocol.first(pkt, "User-Name", "") == ""
    assert protocol.first(pkt, "Calling-Station-Id", "absent") == "absent"


def test_raw_values_keep_order_and_bytes() -> None:
    states = attr(33, b"\x00first") + attr(25, b"psl1:x") + attr(33, b"second\xff")
    pkt = decode_request(raw(1, states), SECRET)
    assert protocol.raw_values(pkt, 33) == [b"\x00first", b"second\xff"]
    assert protocol.raw_values(pkt, 25) == [b"psl1:x"]
    assert protocol.raw_values(pkt, 24) == []


# -- Message-Authenticator presence ----------------------------------------


def _access_request(ma: bool) -> bytes:
    pkt = rp.AuthPacket(secret=SECRET, dict=protocol.dictionary(), authenticator=AUTH, id=9)
    pkt.AddAttribute("User-Name", "alice@acme.example")
    if ma:
        pkt.add_message_authenticator()
    return pkt.RequestPacket()


def test_has_message_authenticator() -> None:
    with_ma = decode_request(_access_request(True), SECRET)
    without = decode_request(_access_request(False), SECRET)
    assert protocol.has_message_authenticator(with_ma)
    assert not protocol.has_message_authenticator(without)
    # Anywhere in the packet, not only first.
    late = decode_request(raw(1, USER + attr(80, bytes(16))), SECRET)
    assert protocol.has_message_authenticator(late)
    # Another attribute holding 16 octets is not one.
    assert not protocol.has_message_authenticator(
        decode_request(raw(1, USER + attr(24, bytes(16))), SECRET))


# -- 64-bit counters ----------------------------------------------------------


def _accounting(**attrs: int) -> rp.Packet:
    pkt = rp.AcctPacket(secret=SECRET, dict=protocol.dictionary(), id=3)
    pkt.AddAttribute("Acct-Status-Type", "Interim-Update")
    pkt.AddAttribute("Acct-Session-Id", "5F2A0001")
    for name, value in attrs.items():
        pkt.AddAttribute(name.replace("_", "-"), value)
    return decode_request(pkt.RequestPacket(), SECRET)


@pytest.mark.parametrize("gigawords, low", [
    (0, 0), (0, 1), (0, 2**32 - 1), (1, 0), (1, 5), (3, 2**32 - 1), (2**32 - 1, 2**32 - 1),
])
def test_octets_with_gigawords(gigawords: int, low: int) -> None:
    pkt = _accounting(Acct_Input_Octets=low, Acct_Input_Gigawords=gigawords,
                      Acct_Output_Octets=low, Acct_Output_Gigawords=gigawords)
    total = gigawords * 2**32 + low
    assert protocol.octets(pkt, "Acct-Input-Octets", "Acct-Input-Gigawords") == total
    assert protocol.octets(pkt, "Acct-Output-Octets", "Acct-Output-Gigawords") == total
    assert protocol.split_octets(total) == (gigawords, low)


def test_octets_without_gigawords_or_at_all() -> None:
    pkt = _accounting(Acct_Input_Octets=12345)
    assert protocol.octets(pkt, "Acct-Input-Octets", "Acct-Input-Gigawords") == 12345
    assert protocol.octets(pkt, "Acct-Output-Octets", "Acct-Output-Gigawords") == 0
    only_high = _accounting(Acct_Output_Gigawords=2)
    assert protocol.octets(only_high, "Acct-Output-Octets", "Acct-Output-Gigawords") == 2**33


def test_the_4_gib_wrap() -> None:
    before = _accounting(Acct_Input_Octets=2**32 - 1)
    after = _accounting(Acct_Input_Octets=0, Acct_Input_Gigawords=1)
    assert (protocol.octets(after, "Acct-Input-Octets", "Acct-Input-Gigawords")
            - protocol.octets(before, "Acct-Input-Octets", "Acct-Input-Gigawords")) == 1


def test_split_octets_round_trip() -> None:
    for total in (0, 1, 2**32 - 1, 2**32, 2**32 + 1, 5 * 2**32 + 7, 2**64 - 1):
        high, low = protocol.split_octets(total)
        assert 0 <= low < 2**32 and high * 2**32 + low == total


# -- dictionaries --------------------------------------------------------------


@pytest.mark.parametrize("name, vendor, code", [
    ("WISPr-Location-ID", 14122, 1), ("WISPr-Bandwidth-Max-Up", 14122, 7),
    ("WISPr-Bandwidth-Max-Down", 14122, 8), ("WISPr-Session-Terminate-Time", 14122, 9),
    ("ChilliSpot-Max-Input-Octets", 14559, 1), ("ChilliSpot-Bandwidth-Max-Down", 14559, 5),
    ("ChilliSpot-Max-Total-Gigawords", 14559, 23),
    ("Message-Authenticator", 0, 80), ("Tunnel-Password", 0, 69), ("Error-Cause", 0, 101),
    ("Acct-Input-Gigawords", 0, 52), ("Event-Timestamp", 0, 55), ("Operator-Name", 0, 126),
])
def test_dictionary_codes(name: str, vendor: int, code: int) -> None:
    d = protocol.dictionary()
    attribute = d.attributes[name]
    assert attribute.code == code
    assert (d.vendors.GetForward(attribute.vendor) if attribute.vendor else 0) == vendor


def test_tunnel_attributes_are_tagged_and_the_password_salted() -> None:
    d = protocol.dictionary()
    assert d.attributes["Tunnel-Password"].has_tag
    assert d.attributes["Tunnel-Password"].encrypt == 2
    assert d.attributes["User-Password"].encrypt == 1
    for name in ("Tunnel-Type", "Tunnel-Medium-Type", "Tunnel-Private-Group-Id"):
        assert d.attributes[name].has_tag, name


# -- no crash on hostile input ------------------------------------------------

# Every attribute the handler reads with first().
HANDLER_READS = (
    "User-Name", "Calling-Station-Id", "NAS-Identifier", "Acct-Delay-Time", "Acct-Session-Id",
    "Acct-Session-Time", "Acct-Terminate-Cause", "Framed-IP-Address", "Framed-IPv6-Address",
    "Called-Station-Id", "NAS-Port-Id", "NAS-Port-Type", "Service-Type", "Framed-Protocol",
    "Acct-Authentic", "Acct-Interim-Interval", "Connect-Info", "Error-Cause",
)


def _seed_packets() -> list[bytes]:
    acct = rp.AcctPacket(secret=SECRET, dict=protocol.dictionary(), id=1)
    for name, value in (("Acct-Status-Type", "Stop"), ("Acct-Session-Id", "5F2A0001"),
                        ("User-Name", "alice@acme.example"), ("Acct-Session-Time", 900),
                        ("Acct-Input-Octets", 5), ("Acct-Input-Gigawords", 1),
                        ("Framed-IP-Address", "192.0.2.10"), ("Acct-Terminate-Cause", 1),
                        ("Calling-Station-Id", "AA-BB-CC-DD-EE-FF"),
                        ("WISPr-Location-ID", "axis")):
        acct.AddAttribute(name, value)
    return [_access_request(True), acct.RequestPacket()]


def test_mutated_packets_decode_or_are_malformed_never_crash() -> None:
    rng = random.Random(2865)  # fixed: the same 4,000 packets every run
    checked = 0
    for _ in range(2000):
        for seed in _seed_packets():
            data = bytearray(seed)
            for _ in range(rng.randint(1, 4)):
                kind = rng.random()
                pos = rng.randrange(len(data))
                if kind < 0.6:
                    data[pos] = rng.randrange(256)
                elif kind < 0.8:
                    del data[pos:pos + rng.randint(1, 6)]
                else:
                    data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
            if len(data) >= 4 and rng.random() < 0.5:
                data[2:4] = struct.pack("!H", len(data))  # keep Length consistent
            try:
                pkt = decode_request(bytes(data), SECRET, status_on_acct=rng.random() < 0.5)
            except MalformedPacket:
                continue
            checked += 1
            for name in HANDLER_READS:
                protocol.first(pkt, name)
            protocol.octets(pkt, "Acct-Input-Octets", "Acct-Input-Gigawords")
            protocol.has_message_authenticator(pkt)
    assert checked > 1000, checked  # enough mutants got past the checks to exercise first()

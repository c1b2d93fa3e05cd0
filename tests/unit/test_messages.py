"""The typed message layer (messages.py, codec.py), checked against the RFC
formulas computed here by hand (the helpers of test_packets.py) and against
pyrad as a second opinion. No sockets."""

from __future__ import annotations

import hmac
import random
import struct
from typing import Any

import pytest
from pyrad import packet as rp

from passerelle.radius import accounting, codec
from passerelle.radius import messages as m
from tests.unit.test_packets import (
    REQUEST_AUTH,
    SECRET,
    attr,
    header,
    ma_zeroed,
    md5,
    message_authenticator,
    password_of,
    rfc2865_hide,
    rfc2868_decrypt,
    walk,
)

GIGA = 2**32


def vsa(vendor: int, sub: int, value: bytes) -> bytes:
    return attr(26, struct.pack("!I", vendor) + bytes([sub, len(value) + 2]) + value)


def signed_request(code: int, attrs: bytes, ident: int = 9, secret: bytes = SECRET) -> bytes:
    """An Accounting/Disconnect/CoA request with its RFC 2866 authenticator."""
    data = header(code, ident, attrs, bytes(16))
    return data[:4] + md5(data[:4], bytes(16), data[20:], secret) + data[20:]


def access_request(**fields: Any) -> m.AccessRequest:
    # Any: the message's fields, each of its own type.
    base: dict[str, Any] = dict(user_name="alice@acme.example", nas_identifier="axis-gw",
                                   credential=m.Password("secret"), authenticator=REQUEST_AUTH)
    base.update(fields)
    return m.AccessRequest(**base)


# -- vocabulary ---------------------------------------------------------------------------


def test_the_vocabulary() -> None:
    assert [c.label for c in m.TerminateCause][:2] == ["User-Request", "Lost-Carrier"]
    assert [int(c) for c in m.TerminateCause] == list(range(1, 19))
    assert m.TerminateCause.NAS_ERROR.label == "NAS-Error"
    assert m.AcctStatus.INTERIM_UPDATE.label == "Interim-Update"
    assert accounting.Status is m.AcctStatus
    assert accounting.Status(7) is accounting.Status.ACCOUNTING_ON
    assert accounting.TERMINATE_CAUSES[18] == "Host-Request"
    assert m.ErrorCause(503).label == "Session-Context-Not-Found"
    assert all(cause.words for cause in m.ErrorCause)
    assert m.Code.COA_NAK == 45 and m.Code.DISCONNECT_REQUEST.label == "Disconnect-Request"


# -- User-Password (RFC 2865 section 5.2) ------------------------------------------------


@pytest.mark.parametrize("length", [1, 15, 16, 17, 127, 128])
def test_user_password_every_boundary(length: int) -> None:
    password = password_of(length).decode()
    data = access_request(credential=m.Password(password)).encode(SECRET)
    hidden = dict(walk(data[20:]))[2]
    assert hidden == rfc2865_hide(password.encode(), SECRET, REQUEST_AUTH)
    assert len(hidden) == 16 * ((length + 15) // 16)
    decoded = m.decode_request(data, SECRET)
    assert isinstance(decoded, m.AccessRequest)
    assert decoded.credential == m.Password(password)
    # pyrad's decoder, a second opinion.
    pkt = rp.AuthPacket(packet=data, secret=SECRET, dict=codec.dictionary())
    assert pkt.PwDecrypt(hidden) == password and pkt.verify_message_authenticator()


def test_user_password_of_129_octets_is_refused() -> None:
    with pytest.raises(ValueError):
        access_request(credential=m.Password("x" * 129)).encode(SECRET)
    hidden = rfc2865_hide(b"y" * 129, SECRET, REQUEST_AUTH)  # 144 octets on the wire
    with pytest.raises(m.MalformedPacket):
        m.decode_request(header(1, 1, attr(32, b"gw") + attr(2, hidden), REQUEST_AUTH), SECRET)
    with pytest.raises(m.MalformedPacket):  # not 16n octets
        m.decode_request(header(1, 1, attr(32, b"gw") + attr(2, bytes(17)), REQUEST_AUTH),
                         SECRET)


def test_a_password_that_is_not_text_is_refused_not_mangled() -> None:
    hidden = rfc2865_hide(b"pass\xffword", SECRET, REQUEST_AUTH)
    decoded = m.decode_request(header(1, 1, attr(32, b"gw") + attr(2, hidden), REQUEST_AUTH),
                               SECRET)
    assert isinstance(decoded, m.AccessRequest) and decoded.credential == m.Password(None)


# -- CHAP ------------------------------------------------------------------------------------


def test_chap_with_and_without_a_challenge() -> None:
    chap = m.Chap.answer("s3same")
    decoded = m.decode_request(access_request(credential=chap).encode(SECRET), SECRET)
    assert isinstance(decoded, m.AccessRequest) and isinstance(decoded.credential, m.Chap)
    assert decoded.credential.verify("s3same") and not decoded.credential.verify("other")
    # No CHAP-Challenge: the Request Authenticator is the challenge.
    response = md5(b"\x07", b"s3same", REQUEST_AUTH)
    data = header(1, 3, attr(32, b"gw") + attr(3, b"\x07" + response), REQUEST_AUTH)
    bare = m.decode_request(data, SECRET)
    assert isinstance(bare, m.AccessRequest) and isinstance(bare.credential, m.Chap)
    assert bare.credential.verify("s3same")


def test_both_passwords_is_a_problem_and_neither_is_used() -> None:
    data = header(1, 3, attr(32, b"gw") + attr(2, bytes(16)) + attr(3, bytes(17)),
                  REQUEST_AUTH)
    decoded = m.decode_request(data, SECRET)
    assert isinstance(decoded, m.AccessRequest)
    assert decoded.credential is None
    assert any("both User-Password and CHAP-Password" in p for p in decoded.problems)


# -- Access-Request and its replies ------------------------------------------------------


def test_access_request_message_authenticator_and_fields() -> None:
    req = access_request(calling_station_id="02-11-22-33-44-55", nas_ip_address="198.51.100.1",
                         service_type="Login-User", nas_port_type="Wireless-802.11",
                         framed_ip_address="198.51.100.23", state=b"\x00st")
    data = req.encode(SECRET)
    assert data[4:20] == REQUEST_AUTH and data[20] == 80
    assert message_authenticator(data) == hmac.new(SECRET, ma_zeroed(data, REQUEST_AUTH),
                                                   "md5").digest()
    decoded = m.decode_request(data, SECRET)
    assert decoded == m.AccessRequest(
        identifier=req.identifier, authenticator=REQUEST_AUTH, message_authenticator=True,
        user_name="alice@acme.example", nas_identifier="axis-gw",
        credential=m.Password("secret"), calling_station_id="02-11-22-33-44-55",
        nas_ip_address="198.51.100.1", service_type=1, nas_port_type=19,
        framed_ip_address="198.51.100.23", state=b"\x00st")
    assert decoded.problems == ()


def test_access_request_problems_and_missing_ma() -> None:
    data = header(1, 3, attr(1, b"alice"), REQUEST_AUTH)
    decoded = m.decode_request(data, SECRET)
    assert not decoded.message_authenticator  # the caller's policy decides
    assert any("NAS-IP-Address or NAS-Identifier" in p for p in decoded.problems)
    with pytest.raises(m.BadAuthenticator):
        m.decode_request(access_request().encode(b"another secret"), SECRET)


def test_accept_ma_first_then_response_authenticator_and_proxy_state_in_order() -> None:
    req = access_request(proxy_state=(b"first", b"second"))
    sent = req.encode(SECRET)
    decoded = m.decode_request(sent, SECRET)
    assert decoded.proxy_state == (b"first", b"second")
    accept = m.AccessAccept(session_timeout=3600, idle_timeout=600, acct_interim_interval=300,
                            class_=b"psl1:\xffraw", tunnel_passwords=("wifi-key-1",), vlan=42,
                            bandwidth_up=2_000_000, bandwidth_down=8_000_000,
                            reply_message="Welcome")
    data = accept.encode(SECRET, decoded)
    attrs = list(walk(data[20:]))
    assert attrs[0][0] == 80 and data[1] == sent[1]
    assert [v for c, v in attrs if c == 33] == [b"first", b"second"]
    # RFC 3579 3.2: MA over the reply with the Request Authenticator in place...
    assert attrs[0][1] == hmac.new(SECRET, ma_zeroed(data, REQUEST_AUTH), "md5").digest()
    # ...then the Response Authenticator over the reply with the MA filled in.
    assert data[4:20] == md5(data[:4], REQUEST_AUTH, data[20:], SECRET)
    tunnel = [v for c, v in attrs if c == 69]
    assert len(tunnel[0]) % 16 == 3  # tag, salt, 16n: what hostapd checks
    assert rfc2868_decrypt(tunnel[0], SECRET, REQUEST_AUTH)[2] == b"wifi-key-1"
    reply = m.decode_reply(data, SECRET, sent)
    assert reply == m.AccessAccept(**{**{f: getattr(accept, f) for f in (
        "session_timeout", "idle_timeout", "acct_interim_interval", "class_",
        "tunnel_passwords", "vlan", "bandwidth_up", "bandwidth_down", "reply_message")},
        "identifier": sent[1], "authenticator": data[4:20], "message_authenticator": True,
        "proxy_state": (b"first", b"second")})
    # pyrad, a second opinion on the reply.
    pyrad_req = rp.AuthPacket(packet=sent, secret=SECRET, dict=codec.dictionary())
    assert pyrad_req.VerifyReply(pyrad_req.CreateReply(packet=data), data)


def test_reject_and_replies_that_do_not_answer() -> None:
    sent = access_request(proxy_state=(b"ps",)).encode(SECRET)
    req = m.decode_request(sent, SECRET)
    reject = m.AccessReject(reply_message="x" * 300).encode(SECRET, req)
    assert m.decode_reply(reject, SECRET, sent) == m.AccessReject(
        identifier=sent[1], authenticator=reject[4:20], message_authenticator=True,
        proxy_state=(b"ps",), reply_message="x" * 300)
    with pytest.raises(m.BadAuthenticator):
        m.decode_reply(reject, b"another secret", sent)
    with pytest.raises(m.NotAnAnswer):
        m.decode_reply(reject[:1] + bytes([(sent[1] + 1) % 256]) + reject[2:], SECRET, sent)
    other = m.decode_request(access_request(proxy_state=(b"xx",), identifier=sent[1])
                             .encode(SECRET), SECRET)
    with pytest.raises(m.NotAnAnswer, match="Proxy-State"):
        m.decode_reply(m.AccessAccept().encode(SECRET, other), SECRET, sent)
    with pytest.raises(m.NotAnAnswer):
        m.decode_reply(m.CoAAck().encode(SECRET, req), SECRET, sent)


def test_tunnel_password_round_trips_and_salts_are_unique() -> None:
    sent = access_request().encode(SECRET)
    req = m.decode_request(sent, SECRET)
    keys = tuple(password_of(n).decode() for n in (1, 15, 16, 17, 63))
    data = m.AccessAccept(tunnel_passwords=keys).encode(SECRET, req)
    values = [v for c, v in walk(data[20:]) if c == 69]
    salts = [v[1:3] for v in values]
    assert all(s[0] & 0x80 for s in salts) and len(set(salts)) == len(salts)
    assert all(len(v) % 16 == 3 for v in values)
    reply = m.decode_reply(data, SECRET, sent)
    assert isinstance(reply, m.AccessAccept) and reply.tunnel_passwords == keys
    with pytest.raises(codec.BadValue):
        codec.reveal_tunnel_password(values[0], b"another secret", REQUEST_AUTH)


# -- Accounting-Request ----------------------------------------------------------------------


@pytest.mark.parametrize("total", [0, GIGA - 1, GIGA, GIGA + 1, 5 * GIGA + 7, 2**64 - 1])
def test_gigawords_wrap(total: int) -> None:
    data = m.AccountingRequest(status=m.AcctStatus.INTERIM_UPDATE, session_id="S1",
                               input_octets=total, output_octets=3).encode(SECRET)
    attrs = dict(walk(data[20:]))
    assert int.from_bytes(attrs[42], "big") == total % GIGA
    assert int.from_bytes(attrs.get(52, bytes(4)), "big") == total // GIGA
    decoded = m.decode_request(data, SECRET)
    assert isinstance(decoded, m.AccountingRequest)
    assert (decoded.input_octets, decoded.output_octets) == (total, 3)
    pyrad = rp.AcctPacket(packet=data, secret=SECRET, dict=codec.dictionary())
    assert pyrad.get("Acct-Input-Gigawords", [0])[0] * GIGA + pyrad["Acct-Input-Octets"][0] \
        == total


def test_gigawords_without_octets_and_octets_without_gigawords() -> None:
    attrs = attr(40, struct.pack("!I", 3)) + attr(44, b"S1")
    only_high = m.decode_request(signed_request(4, attrs + attr(53, struct.pack("!I", 2))),
                                 SECRET)
    assert isinstance(only_high, m.AccountingRequest)
    assert (only_high.input_octets, only_high.output_octets) == (None, 2 * GIGA)
    only_low = m.decode_request(signed_request(4, attrs + attr(42, struct.pack("!I", 12345))),
                                SECRET)
    assert isinstance(only_low, m.AccountingRequest) and only_low.input_octets == 12345


def test_accounting_request_authenticator_and_every_field() -> None:
    stop = m.AccountingRequest(
        status=m.AcctStatus.STOP, session_id="5F2A0001", user_name="alice@acme.example",
        calling_station_id="02-11-22-33-44-55", called_station_id="axis-ssid",
        framed_ip_address="198.51.100.23", framed_ipv6_address="2001:db8::1",
        class_=b"psl1:abc", session_time=900, input_octets=GIGA + 5, output_octets=7,
        input_packets=10, output_packets=20, terminate_cause=m.TerminateCause.IDLE_TIMEOUT,
        event_timestamp=1_780_000_000, delay_time=4, nas_identifier="axis-gw",
        nas_ip_address="198.51.100.1", nas_port_id="wlan0", nas_port_type=19, service_type=1,
        framed_protocol=1, acct_authentic=1, acct_interim_interval=300,
        connect_info="802.11ax", identifier=77)
    data = stop.encode(SECRET)
    assert data[4:20] == md5(data[:4], bytes(16), data[20:], SECRET)  # RFC 2866 section 3
    assert 80 not in dict(walk(data[20:]))
    assert rp.AcctPacket(packet=data, secret=SECRET, dict=codec.dictionary()).VerifyAcctRequest()
    decoded = m.decode_request(data, SECRET)
    assert decoded == m.AccountingRequest(**{**{f: getattr(stop, f) for f in (
        "status", "session_id", "user_name", "calling_station_id", "called_station_id",
        "framed_ip_address", "framed_ipv6_address", "class_", "session_time", "input_octets",
        "output_octets", "input_packets", "output_packets", "terminate_cause",
        "event_timestamp", "delay_time", "nas_identifier", "nas_ip_address", "nas_port_id",
        "nas_port_type", "service_type", "framed_protocol", "acct_authentic",
        "acct_interim_interval", "connect_info")}, "identifier": 77,
        "authenticator": data[4:20]})
    assert decoded.problems == ()
    with pytest.raises(m.BadAuthenticator):
        m.decode_request(data, b"another secret")
    answer = m.AccountingResponse().encode(SECRET, decoded)
    assert isinstance(m.decode_reply(answer, SECRET, data), m.AccountingResponse)


def test_accounting_problems_are_reported_not_swallowed() -> None:
    attrs = (attr(40, struct.pack("!I", 3)) + attr(44, b"S1") + attr(1, b"caf\xe9")
             + attr(46, b"\x00\x01\x02") + attr(49, struct.pack("!I", 1))
             + attr(2, bytes(16)) + attr(18, b"hi") + attr(24, b"st") + attr(49, bytes(4)))
    decoded = m.decode_request(signed_request(4, attrs), SECRET)
    assert isinstance(decoded, m.AccountingRequest)
    assert decoded.status is m.AcctStatus.INTERIM_UPDATE
    assert decoded.user_name is None and decoded.session_time is None  # absent, and said
    text = " | ".join(decoded.problems)
    for needle in ("User-Name: not UTF-8", "Acct-Session-Time: 3 octets",
                   "Acct-Terminate-Cause outside a Stop", "carries User-Password",
                   "carries Reply-Message", "carries State"):
        assert needle in text, text
    assert "carries CHAP-Password" not in text


def test_accounting_status_missing_or_unknown() -> None:
    with pytest.raises(m.MalformedPacket):
        m.decode_request(signed_request(4, attr(44, b"S1")), SECRET)
    with pytest.raises(m.MalformedPacket):
        m.decode_request(signed_request(4, attr(40, b"\x00\x01")), SECRET)
    tunnel = m.decode_request(signed_request(4, attr(40, struct.pack("!I", 9))), SECRET)
    assert isinstance(tunnel, m.AccountingRequest) and tunnel.status == 9
    assert not isinstance(tunnel.status, m.AcctStatus)


def test_unknown_and_vendor_attributes_are_kept_in_order() -> None:
    unknown = [attr(250, b"\x01\x02"), vsa(9, 1, b"cisco-avpair"), vsa(14122, 9, b"2026"),
               attr(26, b"\x00\x00\x00\x09\x01")]  # not in sub-attribute form: kept whole
    data = signed_request(4, attr(40, struct.pack("!I", 1)) + attr(44, b"S1")
                          + b"".join(unknown))
    decoded = m.decode_request(data, SECRET)
    assert decoded.other == ((250, b"\x01\x02"), ((9, 1), b"cisco-avpair"),
                             ((14122, 9), b"2026"), (26, b"\x00\x00\x00\x09\x01"))
    again = m.decode_request(decoded.encode(SECRET), SECRET)
    assert again.other == decoded.other
    assert codec.codec().name((14122, 9)) == "WISPr-Session-Terminate-Time"


# -- RFC 5176 and Status-Server ------------------------------------------------------------


def test_coa_request_with_vendor_changes() -> None:
    coa = m.CoARequest(acct_session_id="S1", calling_station_id="02-11-22-33-44-55",
                       nas_identifier="axis-gw", event_timestamp=1_780_000_000,
                       session_timeout=60, bandwidth_up=2_000_000, chilli_bandwidth_down=8000)
    data = coa.encode(SECRET)
    assert message_authenticator(data) == hmac.new(SECRET, ma_zeroed(data, bytes(16)),
                                                   "md5").digest()
    assert data[4:20] == md5(data[:4], bytes(16), data[20:], SECRET)
    decoded = m.decode_request(data, SECRET)
    assert decoded == m.CoARequest(
        identifier=coa.identifier, authenticator=data[4:20], message_authenticator=True,
        acct_session_id="S1", calling_station_id="02-11-22-33-44-55", nas_identifier="axis-gw",
        event_timestamp=1_780_000_000, session_timeout=60, bandwidth_up=2_000_000,
        chilli_bandwidth_down=8000)
    nak = m.CoANak(error_cause=m.ErrorCause.UNSUPPORTED_ATTRIBUTE).encode(SECRET, decoded)
    reply = m.decode_reply(nak, SECRET, data)
    assert isinstance(reply, m.CoANak) and reply.error_cause is m.ErrorCause.UNSUPPORTED_ATTRIBUTE
    bad_ma = bytearray(data)
    bad_ma[22] ^= 1
    bad_ma[4:20] = md5(bytes(bad_ma[:4]), bytes(16), bytes(bad_ma[20:]), SECRET)
    with pytest.raises(m.BadAuthenticator, match="Message-Authenticator"):
        m.decode_request(bytes(bad_ma), SECRET)


def test_status_server_needs_a_message_authenticator() -> None:
    sent = m.StatusServer(nas_identifier="axis-gw").encode(SECRET)
    decoded = m.decode_request(sent, SECRET)
    assert isinstance(decoded, m.StatusServer)
    assert isinstance(m.decode_reply(m.AccessAccept().encode(SECRET, decoded), SECRET, sent),
                      m.AccessAccept)
    with pytest.raises(m.MalformedPacket, match="RFC 5997"):
        m.decode_request(m.StatusServer().encode(SECRET, with_ma=False), SECRET)


# -- the packet walk -----------------------------------------------------------------------


GOOD = header(1, 5, attr(1, b"alice") + attr(32, b"gw"), REQUEST_AUTH)


@pytest.mark.parametrize("data, why", [
    (b"", "shorter than a header"),
    (GOOD[:19], "shorter than a header"),
    (GOOD[:-1], "shorter than Length"),
    (GOOD[:2] + struct.pack("!H", 19) + GOOD[4:], "outside 20-4096"),
    (GOOD[:2] + struct.pack("!H", 4097) + GOOD[4:] + bytes(4097), "outside 20-4096"),
    (header(1, 5, b"\x01\x01x", REQUEST_AUTH), "bad length"),
    (header(1, 5, b"\x01\x09abc", REQUEST_AUTH), "bad length"),
    (header(1, 5, b"\x01", REQUEST_AUTH), "truncated attribute header"),
    (header(1, 5, attr(80, bytes(16)) + attr(80, bytes(16)), REQUEST_AUTH),
     "more than one Message-Authenticator"),
    (header(1, 5, attr(80, bytes(15)), REQUEST_AUTH), "not 16 octets"),
    (header(1, 5, attr(80, bytes(17)), REQUEST_AUTH), "not 16 octets"),
    (header(1, 5, attr(1, b"alice") + b"\x01\x00", REQUEST_AUTH), "bad length 0"),
    (header(1, 5, b"\x01\xffabc", REQUEST_AUTH), "bad length 255"),
    # A Length that cuts the last attribute short: the octet after it is padding.
    (GOOD[:2] + struct.pack("!H", len(GOOD) - 1) + GOOD[4:], "bad length"),
    *((header(code, 5, b"", REQUEST_AUTH), f"unexpected packet code {code}")
      for code in (0, 2, 3, 5, 11, 13, 41, 255)),
])
def test_malformed_datagrams(data: bytes, why: str) -> None:
    with pytest.raises(m.MalformedPacket, match=why):
        m.decode_request(data, SECRET)


def test_octets_past_length_are_padding() -> None:
    decoded = m.decode_request(GOOD + b"\x01\x09padding", SECRET)
    assert isinstance(decoded, m.AccessRequest) and decoded.user_name == "alice"


def test_integer_of_the_wrong_length_is_absent_and_said() -> None:
    data = header(1, 5, attr(32, b"gw") + attr(61, b"\x00\x13"), REQUEST_AUTH)
    decoded = m.decode_request(data, SECRET)
    assert isinstance(decoded, m.AccessRequest)
    assert decoded.nas_port_type is None
    assert decoded.problems == ("NAS-Port-Type: 2 octets, not 4; taken as absent",)


@pytest.mark.parametrize("raw, field_, problem", [
    (attr(8, b"\xc0\x00\x02"), "framed_ip_address", "IPv4 address of 3 octets"),
    (attr(1, b"\xff\xfe"), "user_name", "not UTF-8 text"),
    (attr(61, b""), "nas_port_type", "0 octets, not 4"),
])
def test_a_value_that_does_not_decode_is_absent_and_said(raw: bytes, field_: str,
                                                         problem: str) -> None:
    decoded = m.decode_request(header(1, 5, attr(32, b"gw") + raw, REQUEST_AUTH), SECRET)
    assert getattr(decoded, field_) is None
    assert len(decoded.problems) == 1 and problem in decoded.problems[0]


def test_empty_values_and_a_vendor_attribute_not_in_sub_attribute_form() -> None:
    # Sub-attribute 7 claims 9 octets where 3 are left: the whole value is kept.
    broken = struct.pack("!I", 14122) + b"\x07\x09\x00"
    data = header(1, 5, attr(32, b"gw") + attr(33, b"") + attr(26, broken), REQUEST_AUTH)
    decoded = m.decode_request(data, SECRET)
    assert decoded.proxy_state == (b"",)
    assert decoded.other == ((26, broken),)


def test_a_message_authenticator_anywhere_in_the_request_is_checked() -> None:
    body = attr(1, b"alice") + attr(32, b"gw") + attr(80, bytes(16))
    data = header(1, 5, body, REQUEST_AUTH)
    data = data[:-16] + hmac.new(SECRET, data, "md5").digest()  # computed with zeros in it
    decoded = m.decode_request(data, SECRET)
    assert isinstance(decoded, m.AccessRequest)
    assert decoded.message_authenticator and decoded.user_name == "alice"
    with pytest.raises(m.BadAuthenticator, match="Message-Authenticator"):
        m.decode_request(data[:-1] + bytes([data[-1] ^ 1]), SECRET)
    # Another attribute of 16 octets is not one.
    other = m.decode_request(header(1, 5, attr(32, b"gw") + attr(24, bytes(16)),
                                    REQUEST_AUTH), SECRET)
    assert not other.message_authenticator


def test_no_packet_over_4096_octets_is_built() -> None:
    """Finding 13: the Proxy-States of a request of 4,096 octets come back in
    the reply, with the reply's own attributes: more than 4,096 octets."""
    # 18 (MA) + 15 x 255 + 2 + 171 = 4096 - 20 - room for the fields below.
    req = access_request(credential=None, user_name=None, nas_identifier=None,
                         proxy_state=(b"p" * 253,) * 15 + (b"q" * 231,))
    sent = req.encode(SECRET)
    assert len(sent) == 4096  # a request may be that long
    decoded = m.decode_request(sent, SECRET)
    with pytest.raises(m.TooLong, match="4096"):
        m.AccessAccept(session_timeout=3600, class_=b"c" * 32).encode(SECRET, decoded)
    assert m.AccessReject().encode(SECRET, decoded)  # MA and Proxy-States: it fits
    with pytest.raises(m.TooLong):
        access_request(proxy_state=(b"p" * 253,) * 17).encode(SECRET)


# -- the shipped dictionary ------------------------------------------------------------------


@pytest.mark.parametrize("name, key", [
    ("WISPr-Location-ID", (14122, 1)), ("WISPr-Bandwidth-Max-Up", (14122, 7)),
    ("WISPr-Bandwidth-Max-Down", (14122, 8)), ("WISPr-Session-Terminate-Time", (14122, 9)),
    ("ChilliSpot-Max-Input-Octets", (14559, 1)), ("ChilliSpot-Bandwidth-Max-Down", (14559, 5)),
    ("ChilliSpot-Max-Total-Gigawords", (14559, 23)),
    ("Message-Authenticator", 80), ("Tunnel-Password", 69), ("Error-Cause", 101),
    ("Acct-Input-Gigawords", 52), ("Event-Timestamp", 55), ("Operator-Name", 126),
])
def test_dictionary_keys(name: str, key: codec.Key) -> None:
    assert codec.codec().key(name) == key
    assert codec.codec().name(key) == name


def test_tunnel_attributes_are_tagged() -> None:
    for name in ("Tunnel-Password", "Tunnel-Type", "Tunnel-Medium-Type",
                 "Tunnel-Private-Group-Id"):
        assert codec.codec().spec(name).tagged, name
    assert codec.codec().raw("Tunnel-Type:1", 13) == (64, b"\x01\x00\x00\x0d")
    assert not codec.codec().spec("User-Name").tagged


# -- no crash on hostile input ----------------------------------------------------------------


def _mutant(seed: bytes, rng: random.Random) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        kind, pos = rng.random(), rng.randrange(len(data))
        if kind < 0.6:
            data[pos] = rng.randrange(256)
        elif kind < 0.8:
            del data[pos:pos + rng.randint(1, 6)]
        else:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
    if len(data) >= 4 and rng.random() < 0.5:
        data[2:4] = struct.pack("!H", len(data))  # keep Length consistent
    if len(data) >= 20 and data[0] == 4:
        # Signed again, so the mutant reaches the attribute walk and the fields.
        length = int.from_bytes(data[2:4], "big")
        data[4:20] = md5(bytes(data[:4]), bytes(16), bytes(data[20:length]), SECRET)
    return bytes(data)


def test_mutated_requests_decode_or_are_dropped_never_crash() -> None:
    seeds = [
        access_request(calling_station_id="AA-BB-CC-DD-EE-FF", framed_ip_address="192.0.2.10",
                       proxy_state=(b"ps",)).encode(SECRET, with_ma=False),
        m.AccountingRequest(status=m.AcctStatus.STOP, session_id="5F2A0001",
                            user_name="alice@acme.example", session_time=900,
                            input_octets=GIGA + 5, framed_ip_address="192.0.2.10",
                            terminate_cause=m.TerminateCause.USER_REQUEST,
                            calling_station_id="AA-BB-CC-DD-EE-FF",
                            other=(codec.codec().raw("WISPr-Location-ID", "axis"),)
                            ).encode(SECRET),
    ]
    rng = random.Random(2865)  # fixed: the same 4,000 datagrams every run
    decoded = 0
    for _ in range(2000):
        for seed in seeds:
            try:
                m.decode_request(_mutant(seed, rng), SECRET)
            except m.Drop:
                continue
            decoded += 1
    assert decoded > 1000, decoded  # enough got past the checks to exercise the fields

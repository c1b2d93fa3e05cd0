"""Packet cryptography and what the centre answers, checked against
independent implementations of the RFC formulas written here: User-Password
hiding (RFC 2865 section 5.2), CHAP (RFC 1994 section 4.1, RFC 2865 section
2.2), Tunnel-Password salt encryption (RFC 2868 section 3.5),
Message-Authenticator (RFC 3579 section 3.2), Request and Response
Authenticators (RFC 2865, 2866, 5176), with pyrad as a second opinion. No
sockets: requests are decoded as the handler decodes them
(messages.decode_request), replies built by the handler's pure functions
(answers.py, accounting.session_record), Disconnect-Requests by dae.py."""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from pyrad import packet as rp

from passerelle.radius import accounting, answers, codec, dae, policy
from passerelle.radius import messages as m
from passerelle.radius.messages import Drop, ErrorCause

SECRET = b"s3cret-for-the-unit-tests"
REQUEST_AUTH = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")


def md5(*parts: bytes) -> bytes:
    return hashlib.md5(b"".join(parts)).digest()


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def walk(attrs: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos < len(attrs):
        code, length = attrs[pos], attrs[pos + 1]
        yield code, attrs[pos + 2:pos + length]
        pos += length


def attr(code: int, value: bytes) -> bytes:
    return bytes([code, len(value) + 2]) + value


def header(code: int, ident: int, attrs: bytes, authenticator: bytes) -> bytes:
    return struct.pack("!BBH", code, ident, 20 + len(attrs)) + authenticator + attrs


# -- RFC formulas, written from the RFC text ----------------------------------


def rfc2865_hide(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """c(1) = p(1) xor MD5(S + RA), c(i) = p(i) xor MD5(S + c(i-1))."""
    padded = password + bytes(-len(password) % 16 or (16 if not password else 0))
    out, chain = b"", authenticator
    for i in range(0, len(padded), 16):
        block = xor(padded[i:i + 16], md5(secret, chain))
        out, chain = out + block, block
    return out


def rfc2865_unhide(hidden: bytes, secret: bytes, authenticator: bytes) -> bytes:
    out, chain = b"", authenticator
    for i in range(0, len(hidden), 16):
        out += xor(hidden[i:i + 16], md5(secret, chain))
        chain = hidden[i:i + 16]
    return out.rstrip(b"\x00")


def rfc2868_decrypt(value: bytes, secret: bytes, authenticator: bytes) -> tuple[int, bytes, bytes]:
    """(tag, salt, password) of a Tunnel-Password value: Tag, Salt(2), then
    b(1) = MD5(S + R + A), b(i) = MD5(S + c(i-1)), over length byte + data."""
    tag, salt, cipher = value[0], value[1:3], value[3:]
    assert len(cipher) % 16 == 0 and cipher
    plain, chain = b"", authenticator + salt
    for i in range(0, len(cipher), 16):
        plain += xor(cipher[i:i + 16], md5(secret, chain))
        chain = cipher[i:i + 16]
    length = plain[0]
    if length > len(plain) - 1 or plain[1 + length:] != bytes(len(plain) - 1 - length):
        raise ValueError("length byte or NUL padding is wrong")
    return tag, salt, plain[1:1 + length]


def ma_zeroed(packet: bytes, authenticator: bytes) -> bytes:
    """The packet with ``authenticator`` in place and the MA value zeroed."""
    out, pos = packet[:4] + authenticator, 20
    while pos < len(packet):
        code, length = packet[pos], packet[pos + 1]
        out += packet[pos:pos + 2] + (bytes(16) if code == 80 else packet[pos + 2:pos + length])
        pos += length
    return out


def message_authenticator(packet: bytes) -> bytes:
    for code, value in walk(packet[20:]):
        if code == 80:
            return value
    raise AssertionError("no Message-Authenticator")


# -- User-Password (RFC 2865 section 5.2) -----------------------------------


def password_of(length: int) -> bytes:
    """A printable password of ``length`` octets, different at every length."""
    return bytes(33 + (i * 7 + length) % 94 for i in range(length))


def request_with_password(hidden: bytes, secret: bytes = SECRET) -> m.AccessRequest:
    data = header(1, 42, attr(1, b"alice@acme.example") + attr(2, hidden), REQUEST_AUTH)
    request = m.decode_request(data, secret)
    assert isinstance(request, m.AccessRequest)
    return request


@pytest.mark.parametrize("length", range(1, 129))
def test_user_password_hiding_matches_the_rfc(length: int) -> None:
    password = password_of(length)
    hidden = codec.hide_password(password.decode(), SECRET, REQUEST_AUTH)
    assert hidden == rfc2865_hide(password, SECRET, REQUEST_AUTH)
    assert len(hidden) == 16 * ((length + 15) // 16)
    # What the server reads from the request.
    assert request_with_password(hidden).credential == m.Password(password.decode())
    assert rfc2865_unhide(hidden, SECRET, REQUEST_AUTH) == password


def test_user_password_utf8_and_wrong_secret() -> None:
    hidden = rfc2865_hide("Grüße, 東京!".encode(), SECRET, REQUEST_AUTH)
    assert request_with_password(hidden).credential == m.Password("Grüße, 東京!")
    other = request_with_password(hidden, b"another secret").credential
    assert other != m.Password("Grüße, 東京!")


@pytest.mark.parametrize("size", [0, 1, 15, 17, 31, 144])
def test_user_password_of_a_wrong_length_drops_the_request(size: int) -> None:
    # The handler drops what decode_request refuses, with this reason in its log.
    with pytest.raises(m.MalformedPacket, match=f"User-Password of {size} octets"):
        request_with_password(bytes(size))
    with pytest.raises(ValueError, match="128"):
        codec.hide_password(password_of(129).decode(), SECRET, REQUEST_AUTH)


def test_user_password_octets_that_are_not_text_are_refused() -> None:
    hidden = rfc2865_hide(b"pass\xffword", SECRET, REQUEST_AUTH)
    # pyrad's decoder drops the octet and would see "password".
    pkt = rp.AuthPacket(secret=SECRET, authenticator=REQUEST_AUTH, dict=codec.dictionary())
    assert pkt.PwDecrypt(hidden) == "password"
    assert request_with_password(hidden).credential == m.Password(None)


# -- CHAP (RFC 1994 section 4.1, RFC 2865 section 2.2) -----------------------

PASSWORD = b"correct horse"


def chap_request(ident: int, response: bytes, challenge: bytes | None) -> m.Chap | None:
    attrs = attr(1, b"alice@acme.example") + attr(3, bytes([ident]) + response)
    if challenge is not None:
        attrs += attr(60, challenge)
    request = m.decode_request(header(1, 9, attrs, REQUEST_AUTH), SECRET)
    assert isinstance(request, m.AccessRequest)
    assert request.credential is None or isinstance(request.credential, m.Chap)
    return request.credential


def chap_ok(ident: int, response: bytes, challenge: bytes | None, password: bytes) -> bool:
    chap = chap_request(ident, response, challenge)
    return chap is not None and chap.verify(password.decode())


@pytest.mark.parametrize("challenge", [None, bytes(range(16)), b"\xaa" * 8, b"\x55" * 32])
def test_chap_with_and_without_challenge(challenge: bytes | None) -> None:
    ident = 0x4D
    # Without CHAP-Challenge the Request Authenticator is the challenge.
    used = REQUEST_AUTH if challenge is None else challenge
    response = md5(bytes([ident]), PASSWORD, used)
    assert chap_ok(ident, response, challenge, PASSWORD)
    assert not chap_ok(ident, response, challenge, b"correct horse!")
    assert not chap_ok(ident ^ 1, response, challenge, PASSWORD)
    flipped = bytes([response[0] ^ 0x80]) + response[1:]
    assert not chap_ok(ident, flipped, challenge, PASSWORD)


def test_chap_challenge_takes_precedence_over_the_authenticator() -> None:
    ident, challenge = 7, b"\x01" * 16
    with_authenticator = md5(bytes([ident]), PASSWORD, REQUEST_AUTH)
    assert not chap_ok(ident, with_authenticator, challenge, PASSWORD)


def test_chap_password_of_the_wrong_length_is_no_credential() -> None:
    response = md5(b"\x07", PASSWORD, REQUEST_AUTH)
    assert chap_request(7, response[:15], None) is None
    assert chap_request(7, response + b"\x00", None) is None


# -- Access-Accept / Access-Reject: answers.access_reply ---------------------


def access_request(*extra: bytes) -> tuple[bytes, m.AccessRequest]:
    """A signed Access-Request (pyrad builds it: an independent encoder) and
    what the handler decodes from it; ``extra``: Proxy-States a proxy appended."""
    pkt = rp.AuthPacket(id=77, secret=SECRET, authenticator=REQUEST_AUTH,
                        dict=codec.dictionary())
    pkt.AddAttribute("User-Name", "alice@acme.example")
    pkt.AddAttribute("NAS-Identifier", "axis-gw")
    pkt.add_message_authenticator()
    data = pkt.RequestPacket()
    for value in extra:  # Proxy-State, appended by a proxy after signing
        data += attr(33, value)
    data = data[:2] + struct.pack("!H", len(data)) + data[4:]
    if extra:  # re-sign: the proxy owns the MA of what it forwards
        mac = hmac.new(SECRET, ma_zeroed(data, REQUEST_AUTH), "md5").digest()
        pos = data.index(bytes([80, 18])) + 2
        data = data[:pos] + mac + data[pos + 16:]
    request = m.decode_request(data, SECRET)
    assert isinstance(request, m.AccessRequest) and request.message_authenticator
    return data, request


TERMS = policy.Decision(True, session_timeout=3600, idle_timeout=900, interim_interval=300,
                        bandwidth_up=2_000_000, bandwidth_down=10_000_000, vlan=42)
CLASS = "psl1:0123456789abcdef"


def accept(key: str = "abcd-efgh-jkmn-pqrs", decision: policy.Decision = TERMS,
           *extra: bytes) -> tuple[bytes, bytes]:
    """(request, reply) datagrams: the reply as the handler builds it."""
    sent, request = access_request(*extra)
    return sent, answers.access_reply(decision, CLASS, key).encode(SECRET, request)


def check_signed_reply(data: bytes, sent: bytes) -> list[tuple[int, bytes]]:
    """Response Authenticator and Message-Authenticator, by the formulas and
    by pyrad as the client."""
    assert data[1] == sent[1] and len(data) == struct.unpack("!H", data[2:4])[0]
    attrs = list(walk(data[20:]))
    assert attrs[0][0] == 80 and len(attrs[0][1]) == 16  # MA first (BlastRADIUS)
    # RFC 3579 3.2: HMAC-MD5 with the Request Authenticator and MA zeroed.
    expected_ma = hmac.new(SECRET, ma_zeroed(data, REQUEST_AUTH), "md5").digest()
    assert hmac.compare_digest(message_authenticator(data), expected_ma)
    # RFC 2865 3: MD5(Code+ID+Length+RequestAuth+Attributes+Secret), after the MA.
    assert data[4:20] == md5(data[:4], REQUEST_AUTH, data[20:], SECRET)
    request = rp.AuthPacket(packet=sent, secret=SECRET, dict=codec.dictionary())
    assert request.VerifyReply(request.CreateReply(packet=data), data, enforce_ma=True)
    return attrs


def test_access_accept_is_signed_and_carries_the_terms() -> None:
    sent, data = accept()
    assert data[0] == m.Code.ACCESS_ACCEPT
    attrs = check_signed_reply(data, sent)
    values = dict(attrs)
    assert values[27] == struct.pack("!I", 3600)
    assert values[28] == struct.pack("!I", 900)
    assert values[85] == struct.pack("!I", 300)
    assert values[25] == CLASS.encode()
    # Tagged tunnel attributes (RFC 2868 3.1, 3.2, 3.6): tag 1 for one tunnel.
    assert values[64] == b"\x01\x00\x00\x0d"  # Tunnel-Type VLAN (13)
    assert values[65] == b"\x01\x00\x00\x06"  # Tunnel-Medium-Type IEEE-802 (6)
    assert values[81] == b"\x01" + b"42"      # Tunnel-Private-Group-Id
    vsas = [v for code, v in attrs if code == 26]
    assert struct.pack("!IBBI", 14122, 7, 6, 2_000_000) in vsas
    assert struct.pack("!IBBI", 14122, 8, 6, 10_000_000) in vsas
    assert 18 not in values  # no Reply-Message


def test_an_accept_without_caps_or_vlan_carries_none() -> None:
    plain = policy.Decision(True, session_timeout=60, idle_timeout=900, interim_interval=300,
                            bandwidth_up=0, bandwidth_down=None, vlan=None)
    sent, data = accept(decision=plain)
    codes = [code for code, _ in check_signed_reply(data, sent)]
    assert sorted(codes) == [25, 27, 28, 69, 80, 85]


@pytest.mark.parametrize("credit, sent_value", [(0, 0), (7_260, 7_260), (-5, 0),
                                                 (2**32 - 1, 2**32 - 1), (10**12, 2**32 - 1)])
def test_the_credit_left_is_a_capped_vendor_attribute_that_decodes_back(
        credit: int, sent_value: int) -> None:
    sent, request = access_request()
    data = answers.access_reply(TERMS, CLASS, "abcd-efgh-jkmn-pqrs",
                                credit).encode(SECRET, request)
    vsas = [v for code, v in check_signed_reply(data, sent) if code == 26]
    # Vendor 32473 (ours), attribute 3, 4 octets: what the dictionary says.
    assert struct.pack("!IBBI", 32473, 3, 6, sent_value) in vsas
    reply = m.decode_reply(data, SECRET, sent)
    assert isinstance(reply, m.AccessAccept) and reply.credit_left == sent_value
    assert reply.other == () and reply.problems == ()


def test_no_credit_given_no_attribute_and_a_bad_one_is_named() -> None:
    sent, data = accept()
    assert 32473 not in [struct.unpack("!I", v[:4])[0]
                         for code, v in check_signed_reply(data, sent) if code == 26]
    reply = m.decode_reply(data, SECRET, sent)
    assert isinstance(reply, m.AccessAccept) and reply.credit_left is None
    _, request = access_request()
    odd = m.AccessAccept(other=((codec.codec().key("Passerelle-Credit-Left"), b"\x01"),))
    reply = m.decode_reply(odd.encode(SECRET, request), SECRET, sent)
    assert isinstance(reply, m.AccessAccept) and reply.credit_left is None
    assert any("Passerelle-Credit-Left" in p for p in reply.problems)


def test_an_accept_needs_its_class_and_key() -> None:
    with pytest.raises(ValueError):
        answers.access_reply(TERMS, "", "abcd-efgh-jkmn-pqrs")
    with pytest.raises(ValueError):
        answers.access_reply(TERMS, CLASS, None)
    with pytest.raises(ValueError):
        answers.access_reply(policy.Decision(False))


KEYS = ["12345678", "abcd-efgh-jkmn-pqrs", "k" * 15, "x" * 16, "y" * 17, "z" * 63,
        "0123456789abcdef" * 4, "é-clé-wifi-ünïcode"]


@pytest.mark.parametrize("key", KEYS)
def test_tunnel_password_salt_encryption(key: str) -> None:
    sent, data = accept(key)
    values = [v for code, v in walk(data[20:]) if code == 69]
    assert len(values) == 1
    value = values[0]
    # Tag + salt + 16n: hostapd skips a Tunnel-Password of any other length.
    assert len(value) % 16 == 3
    tag, salt, password = rfc2868_decrypt(value, SECRET, REQUEST_AUTH)
    assert tag == 0
    assert salt[0] & 0x80, "the salt's most significant bit must be set"
    assert password == key.encode()
    # A client decodes it with pyrad, given the request's authenticator.
    request = rp.AuthPacket(packet=sent, secret=SECRET, dict=codec.dictionary())
    reply = request.CreateReply(packet=data)
    reply.request_authenticator = REQUEST_AUTH
    assert reply["Tunnel-Password"] == [key]


def test_tunnel_password_with_another_secret_does_not_decrypt() -> None:
    _, data = accept()
    value = next(v for code, v in walk(data[20:]) if code == 69)
    try:
        _, _, password = rfc2868_decrypt(value, b"not the secret", REQUEST_AUTH)
    except ValueError:
        return  # garbage length or padding: detected
    assert password != b"abcd-efgh-jkmn-pqrs"


# The refusals the centre sends (the others are the box's own, never in a Reject).
@pytest.mark.parametrize("reason", list(policy.MESSAGES))
def test_access_reject_is_signed_and_echoes_proxy_state(reason: policy.Reason) -> None:
    sent, request = access_request(b"\x00proxy-one", b"proxy-two")
    data = answers.access_reply(policy.Decision(False, reason)).encode(SECRET, request)
    assert data[0] == m.Code.ACCESS_REJECT
    attrs = check_signed_reply(data, sent)
    assert [v for code, v in attrs if code == 33] == [b"\x00proxy-one", b"proxy-two"]
    assert (18, policy.reply_message(reason).encode()) in attrs
    assert {code for code, _ in attrs} == {18, 33, 80}


def test_a_forged_reply_is_refused_by_the_client() -> None:
    sent, reply = accept()
    data = bytearray(reply)
    data[0] = m.Code.ACCESS_REJECT  # flip Accept to Reject: authenticators break
    request = rp.AuthPacket(packet=sent, secret=SECRET, dict=codec.dictionary())
    forged = rp.AuthPacket(packet=bytes(data), secret=SECRET, dict=codec.dictionary())
    assert not request.VerifyReply(forged, bytes(data))
    with pytest.raises(m.BadAuthenticator):
        m.decode_reply(bytes(data), SECRET, sent)


# -- request authentication, as the handler checks it ------------------------


def test_access_request_message_authenticator_is_verified() -> None:
    pkt = rp.AuthPacket(id=5, secret=SECRET, authenticator=REQUEST_AUTH,
                        dict=codec.dictionary())
    pkt.AddAttribute("User-Name", "alice@acme.example")
    pkt.add_message_authenticator()
    data = pkt.RequestPacket()
    assert data[20] == 80  # first, and by the formula
    assert message_authenticator(data) == hmac.new(SECRET, ma_zeroed(data, REQUEST_AUTH),
                                                   "md5").digest()
    decoded = m.decode_request(data, SECRET)
    assert isinstance(decoded, m.AccessRequest) and decoded.message_authenticator
    with pytest.raises(m.BadAuthenticator, match="Message-Authenticator"):
        m.decode_request(data, b"wrong secret")
    tampered = data[:-1] + bytes([data[-1] ^ 1])  # last octet of User-Name
    with pytest.raises(m.BadAuthenticator, match="Message-Authenticator"):
        m.decode_request(tampered, SECRET)


def accounting_datagram(attrs: bytes, secret: bytes = SECRET) -> bytes:
    unsigned = header(4, 12, attrs, bytes(16))
    # RFC 2866 3: MD5(Code+ID+Length+16 zero octets+Attributes+Secret).
    return unsigned[:4] + md5(unsigned, secret) + unsigned[20:]


def test_accounting_request_authenticator() -> None:
    attrs = (attr(40, struct.pack("!I", 1)) + attr(44, b"5F2A0001")
             + attr(1, b"alice@acme.example"))
    data = accounting_datagram(attrs)
    decoded = m.decode_request(data, SECRET)
    assert isinstance(decoded, m.AccountingRequest) and decoded.session_id == "5F2A0001"
    with pytest.raises(m.BadAuthenticator, match="Request Authenticator"):
        m.decode_request(data, b"wrong secret")
    with pytest.raises(m.BadAuthenticator):
        m.decode_request(data[:-1] + b"X", SECRET)
    # And pyrad, as the gateway has used it, produces the same authenticator.
    pkt = rp.AcctPacket(id=12, secret=SECRET, dict=codec.dictionary())
    pkt.AddAttribute("Acct-Status-Type", "Start")
    pkt.AddAttribute("Acct-Session-Id", "5F2A0001")
    pkt.AddAttribute("User-Name", "alice@acme.example")
    assert pkt.RequestPacket() == data


# -- Accounting-Response and the answers to Status-Server --------------------


def test_accounting_response_has_no_message_authenticator() -> None:
    # RFC 2866 defines none; FreeRADIUS sends none, and its clients (like
    # pyrad) check one with 16 zero octets, not the Request Authenticator.
    data = accounting_datagram(attr(40, struct.pack("!I", 1)) + attr(44, b"S1"))
    request = m.decode_request(data, SECRET)
    answer = answers.ACCOUNTING_RESPONSE.encode(SECRET, request)
    assert answer == header(5, 12, b"", md5(header(5, 12, b"", data[4:20]), SECRET))
    pyrad = rp.AcctPacket(packet=data, secret=SECRET, dict=codec.dictionary())
    assert pyrad.VerifyReply(pyrad.CreateReply(packet=answer), answer)
    assert isinstance(m.decode_reply(answer, SECRET, data), m.AccountingResponse)


def test_an_accounting_response_signed_as_freeradius_does_is_believed() -> None:
    data = accounting_datagram(attr(40, struct.pack("!I", 1)) + attr(44, b"S1"))

    def response(vector: bytes) -> bytes:
        body = header(5, 12, attr(80, bytes(16)), vector)
        mac = hmac.new(SECRET, body, "md5").digest()
        body = body[:22] + mac
        return body[:4] + md5(body[:4], data[4:20], body[20:], SECRET) + body[20:]

    assert isinstance(m.decode_reply(response(bytes(16)), SECRET, data), m.AccountingResponse)
    with pytest.raises(m.BadAuthenticator):
        m.decode_reply(response(data[4:20]), SECRET, data)


@pytest.mark.parametrize(("on_acct", "code"), [(False, 2), (True, 5)])
def test_status_server_answers_carry_a_message_authenticator(on_acct: bool, code: int) -> None:
    sent = m.StatusServer(nas_identifier="axis-gw", authenticator=REQUEST_AUTH).encode(SECRET)
    request = m.decode_request(sent, SECRET)
    data = answers.status_reply(on_acct).encode(SECRET, request)
    assert data[0] == code
    # RFC 5997 section 3: the MA with the Status-Server's authenticator.
    assert message_authenticator(data) == hmac.new(SECRET, ma_zeroed(data, REQUEST_AUTH),
                                                   "md5").digest()
    assert data[4:20] == md5(data[:4], REQUEST_AUTH, data[20:], SECRET)
    pyrad = rp.Packet(packet=sent, secret=SECRET, dict=codec.dictionary())
    assert pyrad.VerifyReply(pyrad.CreateReply(packet=data), data, enforce_ma=True)


# -- Accounting-Request -> session record: accounting.session_record ---------

RECEIVED = datetime(2026, 3, 2, 9, 30, 0)


def accounting_request(**fields: Any) -> m.AccountingRequest:
    """What the handler decodes from a gateway's datagram."""
    # Any: the message's fields, each of its own type.
    base: dict[str, Any] = dict(status=m.AcctStatus.INTERIM_UPDATE, session_id="5F2A0001",
                                   nas_identifier="axis-gw")
    base.update(fields)
    data = m.AccountingRequest(**base).encode(SECRET)
    request = m.decode_request(data, SECRET)
    assert isinstance(request, m.AccountingRequest)
    return request


def test_a_stop_becomes_a_session_record() -> None:
    rec = accounting.session_record(accounting_request(
        status=m.AcctStatus.STOP, user_name="alice@acme.example", class_=b"psl1:abc",
        session_time=900, input_octets=2**32 + 5, output_octets=7,
        terminate_cause=m.TerminateCause.IDLE_TIMEOUT, delay_time=4,
        calling_station_id="02-11-22-33-44-55", called_station_id="axis-ssid",
        framed_ip_address="198.51.100.23", framed_ipv6_address="2001:db8::1",
        nas_port_id="wlan0", nas_port_type=19, service_type=2, framed_protocol=1,
        acct_authentic=1, acct_interim_interval=300, connect_info="802.11ax"), RECEIVED)
    assert rec == accounting.Record(
        status=accounting.Status.STOP, session_id="5F2A0001",
        # Acct-Delay-Time (RFC 2866 section 5.2): the event was 4 s earlier.
        event_time=RECEIVED - timedelta(seconds=4),
        username="alice@acme.example", session_time=900, input_octets=2**32 + 5,
        output_octets=7, terminate_cause="Idle-Timeout", class_="psl1:abc",
        extra={"framedipaddress": "198.51.100.23", "framedipv6address": "2001:db8::1",
               "callingstationid": "02-11-22-33-44-55", "calledstationid": "axis-ssid",
               "nasportid": "wlan0", "nasporttype": "Wireless-802.11",
               "servicetype": "Framed-User", "framedprotocol": "PPP",
               "acctauthentic": "RADIUS", "acctinterval": 300,
               "connectinfo_stop": "802.11ax"})


def test_a_bare_start_and_values_the_dictionary_does_not_name() -> None:
    rec = accounting.session_record(accounting_request(
        status=m.AcctStatus.START, nas_port_type=77, connect_info="x" * 80,
        session_id="s" * 80, class_=b"\xff" * 80), RECEIVED)
    assert rec is not None
    assert (rec.status, rec.event_time, rec.session_time) == (
        accounting.Status.START, RECEIVED, None)
    assert (rec.input_octets, rec.output_octets, rec.terminate_cause) == (0, 0, "")
    assert rec.extra["nasporttype"] == "77" and rec.extra["servicetype"] == ""
    assert rec.extra["connectinfo_start"] == "x" * 64 and "connectinfo_stop" not in rec.extra
    assert (len(rec.session_id), rec.username, len(rec.class_)) == (64, "", 64)
    assert rec.class_ == "\ufffd" * 64  # not ASCII: replaced, not refused
    assert rec.extra["acctinterval"] is None


def test_no_session_id_no_record_and_on_off_are_not_records() -> None:
    assert accounting.session_record(accounting_request(session_id=None), RECEIVED) is None
    for status in (m.AcctStatus.ACCOUNTING_ON, m.AcctStatus.ACCOUNTING_OFF):
        request = accounting_request(status=status, delay_time=30)
        with pytest.raises(ValueError):
            accounting.session_record(request, RECEIVED)
        assert accounting.event_time(request, RECEIVED) == RECEIVED - timedelta(seconds=30)


# -- the RFC 5176 client (dae.py) ---------------------------------------------

NOW = 1_780_000_000


def disconnect_request() -> bytes:
    request = dae.build_request(m.Code.DISCONNECT_REQUEST,
                                {"Acct-Session-Id": "5F2A0001", "User-Name": "alice@acme.example",
                                 "NAS-Identifier": "axis-gw"}, now=NOW)
    return request.encode(SECRET)


def test_disconnect_request_authenticators() -> None:
    data = disconnect_request()
    assert data[0] == m.Code.DISCONNECT_REQUEST
    attrs = list(walk(data[20:]))
    assert attrs[0][0] == 80
    assert (55, struct.pack("!I", NOW)) in attrs  # Event-Timestamp (RFC 5176 6.3)
    assert (44, b"5F2A0001") in attrs
    # RFC 5176 3.4: MA with the Request Authenticator and the MA zeroed...
    assert message_authenticator(data) == hmac.new(SECRET, ma_zeroed(data, bytes(16)),
                                                   "md5").digest()
    # ...then the Request Authenticator as for accounting (RFC 5176 3.3).
    assert data[4:20] == md5(data[:4], bytes(16), data[20:], SECRET)
    decoded = m.decode_request(data, SECRET)
    assert isinstance(decoded, m.DisconnectRequest) and decoded.message_authenticator
    assert (decoded.acct_session_id, decoded.event_timestamp) == ("5F2A0001", NOW)


def gateway_answer(request_data: bytes, code: int, *extra: bytes, ident: int | None = None,
                   secret: bytes = SECRET, with_ma: bool = True) -> bytes:
    """An ACK or NAK as a NAS builds it: MA with the request's authenticator
    (RFC 5176 3.4), then the Response Authenticator (RFC 2865 3)."""
    ident = request_data[1] if ident is None else ident
    request_auth = request_data[4:20]
    attrs = (attr(80, bytes(16)) if with_ma else b"") + b"".join(extra)
    data = header(code, ident, attrs, request_auth)
    if with_ma:
        mac = hmac.new(secret, data, "md5").digest()
        data = data[:22] + mac + data[38:]
    return data[:4] + md5(data[:4], request_auth, data[20:], secret) + data[20:]


def test_parse_ack_and_nak() -> None:
    data = disconnect_request()
    assert dae.parse_reply(data, gateway_answer(data, m.Code.DISCONNECT_ACK), SECRET) \
        == dae.Result(acked=True)
    nak = gateway_answer(data, m.Code.DISCONNECT_NAK, attr(101, struct.pack("!I", 503)))
    result = dae.parse_reply(data, nak, SECRET)
    assert result == dae.Result(acked=False, error_cause=503)
    assert result.error_cause is ErrorCause.SESSION_CONTEXT_NOT_FOUND
    assert str(result) == "NAK (Session-Context-Not-Found, 503)"
    assert result.words == "refused: no such session on the gateway"
    bare_nak = gateway_answer(data, m.Code.DISCONNECT_NAK)
    assert dae.parse_reply(data, bare_nak, SECRET) == dae.Result(acked=False, error_cause=None)
    odd = dae.parse_reply(data, gateway_answer(data, m.Code.DISCONNECT_NAK,
                                               attr(101, struct.pack("!I", 999))), SECRET)
    assert (odd.error_cause, str(odd)) == (999, "NAK (unknown, 999)")


def test_invalid_answers_are_not_believed() -> None:
    data = disconnect_request()
    good = gateway_answer(data, m.Code.DISCONNECT_ACK)
    bad_ma = bytearray(good)
    bad_ma[22] ^= 1
    bad_ma[4:20] = md5(bytes(bad_ma[:4]), data[4:20], bytes(bad_ma[20:]), SECRET)
    for answer in (
        gateway_answer(data, m.Code.DISCONNECT_ACK, ident=(data[1] + 1) % 256),
        gateway_answer(data, m.Code.DISCONNECT_ACK, secret=b"other secret"),
        bytes(bad_ma),
        good[:4] + bytes(16) + good[20:],  # Response Authenticator zeroed
        gateway_answer(data, m.Code.ACCESS_ACCEPT),  # not an answer to a Disconnect
        good[:19],
        b"",
    ):
        with pytest.raises(Drop):
            dae.parse_reply(data, answer, SECRET)


def test_a_coa_ack_does_not_answer_a_disconnect_request() -> None:
    data = disconnect_request()
    with pytest.raises(Drop):
        dae.parse_reply(data, gateway_answer(data, m.Code.COA_ACK), SECRET)

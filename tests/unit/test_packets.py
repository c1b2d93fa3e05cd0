"""Packet cryptography, checked against independent implementations of the
RFC formulas written here: User-Password hiding (RFC 2865 section 5.2),
CHAP (RFC 1994 section 4.1, RFC 2865 section 2.2), Tunnel-Password salt
encryption (RFC 2868 section 3.5), Message-Authenticator (RFC 3579 section
3.2), Request and Response Authenticators (RFC 2865, 2866, 5176), and the
RFC 5176 client in dae.py. No sockets: packets are built and parsed the way
handler.py and dae.py build and parse them."""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterator

import pytest
from pyrad import packet as rp

from passerelle.radius import dae, protocol
from passerelle.radius.messages import Drop, ErrorCause
from passerelle.radius.protocol import decode_request

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


def request_with_password(hidden: bytes) -> rp.AuthPacket:
    data = header(1, 42, attr(1, b"alice@acme.example") + attr(2, hidden), REQUEST_AUTH)
    pkt = decode_request(data, SECRET)
    assert isinstance(pkt, rp.AuthPacket)
    return pkt


@pytest.mark.parametrize("length", range(1, 129))
def test_user_password_hiding_matches_the_rfc(length: int) -> None:
    password = password_of(length)
    pkt = rp.AuthPacket(secret=SECRET, authenticator=REQUEST_AUTH, dict=protocol.dictionary())
    hidden = pkt.PwCrypt(password)
    assert hidden == rfc2865_hide(password, SECRET, REQUEST_AUTH)
    assert len(hidden) == 16 * ((length + 15) // 16)
    # What the server does with it: the raw value of a decoded request.
    request = request_with_password(hidden)
    assert request.PwDecrypt(protocol.raw_values(request, 2)[0]) == password.decode()
    assert rfc2865_unhide(hidden, SECRET, REQUEST_AUTH) == password


def test_user_password_utf8_and_wrong_secret() -> None:
    password = "Grüße, 東京!".encode()
    hidden = rfc2865_hide(password, SECRET, REQUEST_AUTH)
    assert request_with_password(hidden).PwDecrypt(hidden) == "Grüße, 東京!"
    other = decode_request(header(1, 42, attr(2, hidden), REQUEST_AUTH), b"another secret")
    assert isinstance(other, rp.AuthPacket)
    assert other.PwDecrypt(hidden) != "Grüße, 東京!"


def test_user_password_longer_than_128_octets_is_refused() -> None:
    pkt = rp.AuthPacket(secret=SECRET, authenticator=REQUEST_AUTH, dict=protocol.dictionary())
    with pytest.raises(ValueError, match="128"):
        pkt.PwCrypt(password_of(129))


@pytest.mark.parametrize("size", [1, 15, 17, 31])
def test_user_password_not_a_multiple_of_16_is_refused(size: int) -> None:
    request = request_with_password(bytes(size))
    with pytest.raises(rp.PacketError):
        request.PwDecrypt(protocol.raw_values(request, 2)[0])


# -- CHAP (RFC 1994 section 4.1, RFC 2865 section 2.2) -----------------------

PASSWORD = b"correct horse"


def chap_request(ident: int, response: bytes, challenge: bytes | None) -> rp.AuthPacket:
    attrs = attr(1, b"alice@acme.example") + attr(3, bytes([ident]) + response)
    if challenge is not None:
        attrs += attr(60, challenge)
    pkt = decode_request(header(1, 9, attrs, REQUEST_AUTH), SECRET)
    assert isinstance(pkt, rp.AuthPacket)
    return pkt


@pytest.mark.parametrize("challenge", [None, bytes(range(16)), b"\xaa" * 8, b"\x55" * 32])
def test_chap_with_and_without_challenge(challenge: bytes | None) -> None:
    ident = 0x4D
    # Without CHAP-Challenge the Request Authenticator is the challenge.
    used = REQUEST_AUTH if challenge is None else challenge
    response = md5(bytes([ident]), PASSWORD, used)
    assert chap_request(ident, response, challenge).VerifyChapPasswd(PASSWORD)
    assert not chap_request(ident, response, challenge).VerifyChapPasswd(b"correct horse!")
    assert not chap_request(ident ^ 1, response, challenge).VerifyChapPasswd(PASSWORD)
    flipped = bytes([response[0] ^ 0x80]) + response[1:]
    assert not chap_request(ident, flipped, challenge).VerifyChapPasswd(PASSWORD)


def test_chap_challenge_takes_precedence_over_the_authenticator() -> None:
    ident, challenge = 7, b"\x01" * 16
    with_authenticator = md5(bytes([ident]), PASSWORD, REQUEST_AUTH)
    assert not chap_request(ident, with_authenticator, challenge).VerifyChapPasswd(PASSWORD)


def test_chap_password_of_the_wrong_length_fails() -> None:
    response = md5(b"\x07", PASSWORD, REQUEST_AUTH)
    assert not chap_request(7, response[:15], None).VerifyChapPasswd(PASSWORD)
    assert not chap_request(7, response + b"\x00", None).VerifyChapPasswd(PASSWORD)


# -- Access-Accept / Access-Reject as handler.py builds them ----------------


def access_request(*extra: bytes) -> rp.AuthPacket:
    pkt = rp.AuthPacket(id=77, secret=SECRET, authenticator=REQUEST_AUTH,
                        dict=protocol.dictionary())
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
    request = decode_request(data, SECRET)
    assert isinstance(request, rp.AuthPacket)
    assert request.verify_message_authenticator()
    return request


def accept(request: rp.AuthPacket, key: str, vlan: int | None = 42) -> bytes:
    """The handler's sequence in Handler._access, decision already taken."""
    reply = request.CreateReply()
    reply.code = protocol.ACCESS_ACCEPT
    reply.AddAttribute("Session-Timeout", 3600)
    reply.AddAttribute("Idle-Timeout", 900)
    reply.AddAttribute("Acct-Interim-Interval", 300)
    reply.AddAttribute("Class", b"psl1:0123456789abcdef")
    reply.AddAttribute("Tunnel-Password", key)
    reply.AddAttribute("WISPr-Bandwidth-Max-Up", 2_000_000)
    reply.AddAttribute("WISPr-Bandwidth-Max-Down", 10_000_000)
    if vlan:
        reply.AddAttribute("Tunnel-Type:1", "VLAN")
        reply.AddAttribute("Tunnel-Medium-Type:1", "IEEE-802")
        reply.AddAttribute("Tunnel-Private-Group-Id:1", str(vlan))
    data: bytes = reply.ReplyPacket()
    return data


def check_signed_reply(data: bytes, request: rp.AuthPacket) -> list[tuple[int, bytes]]:
    """Response Authenticator and Message-Authenticator, by the formulas."""
    protocol.check_header(data)
    assert data[1] == request.id
    attrs = list(walk(data[20:]))
    assert attrs[0][0] == 80 and len(attrs[0][1]) == 16  # MA first (BlastRADIUS)
    # RFC 3579 3.2: HMAC-MD5 with the Request Authenticator and MA zeroed.
    expected_ma = hmac.new(SECRET, ma_zeroed(data, REQUEST_AUTH), "md5").digest()
    assert hmac.compare_digest(message_authenticator(data), expected_ma)
    # RFC 2865 3: MD5(Code+ID+Length+RequestAuth+Attributes+Secret), after the MA.
    assert data[4:20] == md5(data[:4], REQUEST_AUTH, data[20:], SECRET)
    assert request.VerifyReply(rp.AuthPacket(packet=data, secret=SECRET,
                                             dict=protocol.dictionary()), data, enforce_ma=True)
    return attrs


def test_access_accept_is_signed_and_carries_the_terms() -> None:
    request = access_request()
    data = accept(request, "abcd-efgh-jkmn-pqrs")
    assert data[0] == protocol.ACCESS_ACCEPT
    attrs = check_signed_reply(data, request)
    values = dict(attrs)
    assert values[27] == struct.pack("!I", 3600)
    assert values[28] == struct.pack("!I", 900)
    assert values[85] == struct.pack("!I", 300)
    assert values[25] == b"psl1:0123456789abcdef"
    # Tagged tunnel attributes (RFC 2868 3.1, 3.2, 3.6): tag 1 for one tunnel.
    assert values[64] == b"\x01\x00\x00\x0d"  # Tunnel-Type VLAN (13)
    assert values[65] == b"\x01\x00\x00\x06"  # Tunnel-Medium-Type IEEE-802 (6)
    assert values[81] == b"\x01" + b"42"      # Tunnel-Private-Group-Id
    vsas = [v for code, v in attrs if code == 26]
    assert struct.pack("!IBBI", 14122, 7, 6, 2_000_000) in vsas
    assert struct.pack("!IBBI", 14122, 8, 6, 10_000_000) in vsas


KEYS = ["12345678", "abcd-efgh-jkmn-pqrs", "k" * 15, "x" * 16, "y" * 17, "z" * 63,
        "0123456789abcdef" * 4, "é-clé-wifi-ünïcode"]


@pytest.mark.parametrize("key", KEYS)
def test_tunnel_password_salt_encryption(key: str) -> None:
    request = access_request()
    data = accept(request, key)
    values = [v for code, v in walk(data[20:]) if code == 69]
    assert len(values) == 1
    value = values[0]
    # Tag + salt + 16n: hostapd skips a Tunnel-Password of any other length.
    assert len(value) % 16 == 3
    tag, salt, password = rfc2868_decrypt(value, SECRET, REQUEST_AUTH)
    assert tag == 0
    assert salt[0] & 0x80, "the salt's most significant bit must be set"
    assert password == key.encode()
    # A client (the gateway) decodes it with pyrad, given the request's authenticator.
    reply = request.CreateReply(packet=data)
    reply.request_authenticator = REQUEST_AUTH
    assert reply["Tunnel-Password"] == [key]


def test_tunnel_password_with_another_secret_does_not_decrypt() -> None:
    data = accept(access_request(), "abcd-efgh-jkmn-pqrs")
    value = next(v for code, v in walk(data[20:]) if code == 69)
    try:
        _, _, password = rfc2868_decrypt(value, b"not the secret", REQUEST_AUTH)
    except ValueError:
        return  # garbage length or padding: detected
    assert password != b"abcd-efgh-jkmn-pqrs"


def test_access_reject_is_signed_and_echoes_proxy_state() -> None:
    request = access_request(b"\x00proxy-one", b"proxy-two")
    reply = request.CreateReply()
    reply.code = protocol.ACCESS_REJECT
    reply.AddAttribute("Reply-Message", "no-credit: No credit left")
    data = reply.ReplyPacket()
    assert data[0] == protocol.ACCESS_REJECT
    attrs = check_signed_reply(data, request)
    assert [v for code, v in attrs if code == 33] == [b"\x00proxy-one", b"proxy-two"]
    assert (18, b"no-credit: No credit left") in attrs


def test_a_forged_reply_is_refused_by_the_client() -> None:
    request = access_request()
    data = bytearray(accept(request, "abcd-efgh-jkmn-pqrs"))
    data[0] = protocol.ACCESS_REJECT  # flip Accept to Reject: authenticators break
    forged = rp.AuthPacket(packet=bytes(data), secret=SECRET, dict=protocol.dictionary())
    assert not request.VerifyReply(forged, bytes(data))


# -- request authentication, as handler.py checks it -------------------------


def test_access_request_message_authenticator_is_verified() -> None:
    pkt = rp.AuthPacket(id=5, secret=SECRET, authenticator=REQUEST_AUTH,
                        dict=protocol.dictionary())
    pkt.AddAttribute("User-Name", "alice@acme.example")
    pkt.add_message_authenticator()
    data = pkt.RequestPacket()
    assert data[20] == 80  # first, and by the formula
    assert message_authenticator(data) == hmac.new(SECRET, ma_zeroed(data, REQUEST_AUTH),
                                                   "md5").digest()
    assert decode_request(data, SECRET).verify_message_authenticator()
    assert not decode_request(data, b"wrong secret").verify_message_authenticator()
    tampered = data[:-1] + bytes([data[-1] ^ 1])  # last octet of User-Name
    assert not decode_request(tampered, SECRET).verify_message_authenticator()


def test_accounting_request_authenticator() -> None:
    attrs = (attr(40, struct.pack("!I", 1)) + attr(44, b"5F2A0001")
             + attr(1, b"alice@acme.example"))
    unsigned = header(4, 12, attrs, bytes(16))
    # RFC 2866 3: MD5(Code+ID+Length+16 zero octets+Attributes+Secret).
    data = unsigned[:4] + md5(unsigned, SECRET) + unsigned[20:]
    assert decode_request(data, SECRET).VerifyAcctRequest()
    assert not decode_request(data, b"wrong secret").VerifyAcctRequest()
    tampered = data[:-1] + b"X"
    assert not decode_request(tampered, SECRET).VerifyAcctRequest()
    # And pyrad, as the gateway uses it, produces the same authenticator.
    pkt = rp.AcctPacket(id=12, secret=SECRET, dict=protocol.dictionary())
    pkt.AddAttribute("Acct-Status-Type", "Start")
    pkt.AddAttribute("Acct-Session-Id", "5F2A0001")
    pkt.AddAttribute("User-Name", "alice@acme.example")
    assert pkt.RequestPacket() == data


# -- the RFC 5176 client (dae.py) ---------------------------------------------

NOW = 1_780_000_000


def disconnect_request() -> bytes:
    request = dae.build_request(protocol.DISCONNECT_REQUEST,
                                {"Acct-Session-Id": "5F2A0001", "User-Name": "alice@acme.example",
                                 "NAS-Identifier": "axis-gw"}, now=NOW)
    return request.encode(SECRET)


def test_disconnect_request_authenticators() -> None:
    data = disconnect_request()
    assert data[0] == protocol.DISCONNECT_REQUEST
    attrs = list(walk(data[20:]))
    assert attrs[0][0] == 80
    assert (55, struct.pack("!I", NOW)) in attrs  # Event-Timestamp (RFC 5176 6.3)
    assert (44, b"5F2A0001") in attrs
    # RFC 5176 3.4: MA with the Request Authenticator and the MA zeroed...
    assert message_authenticator(data) == hmac.new(SECRET, ma_zeroed(data, bytes(16)),
                                                   "md5").digest()
    # ...then the Request Authenticator as for accounting (RFC 5176 3.3).
    assert data[4:20] == md5(data[:4], bytes(16), data[20:], SECRET)
    decoded = decode_request(data, SECRET)
    assert isinstance(decoded, rp.CoAPacket) and decoded.VerifyCoARequest()


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
    assert dae.parse_reply(data, gateway_answer(data, protocol.DISCONNECT_ACK), SECRET) \
        == dae.Result(acked=True)
    nak = gateway_answer(data, protocol.DISCONNECT_NAK, attr(101, struct.pack("!I", 503)))
    result = dae.parse_reply(data, nak, SECRET)
    assert result == dae.Result(acked=False, error_cause=503)
    assert result.error_cause is ErrorCause.SESSION_CONTEXT_NOT_FOUND
    assert str(result) == "NAK (Session-Context-Not-Found, 503)"
    assert result.words == "refused: no such session on the gateway"
    bare_nak = gateway_answer(data, protocol.DISCONNECT_NAK)
    assert dae.parse_reply(data, bare_nak, SECRET) == dae.Result(acked=False, error_cause=None)
    odd = dae.parse_reply(data, gateway_answer(data, protocol.DISCONNECT_NAK,
                                               attr(101, struct.pack("!I", 999))), SECRET)
    assert (odd.error_cause, str(odd)) == (999, "NAK (unknown, 999)")


def test_invalid_answers_are_not_believed() -> None:
    data = disconnect_request()
    good = gateway_answer(data, protocol.DISCONNECT_ACK)
    bad_ma = bytearray(good)
    bad_ma[22] ^= 1
    bad_ma[4:20] = md5(bytes(bad_ma[:4]), data[4:20], bytes(bad_ma[20:]), SECRET)
    for answer in (
        gateway_answer(data, protocol.DISCONNECT_ACK, ident=(data[1] + 1) % 256),
        gateway_answer(data, protocol.DISCONNECT_ACK, secret=b"other secret"),
        bytes(bad_ma),
        good[:4] + bytes(16) + good[20:],  # Response Authenticator zeroed
        gateway_answer(data, protocol.ACCESS_ACCEPT),  # not an answer to a Disconnect
        good[:19],
        b"",
    ):
        with pytest.raises(Drop):
            dae.parse_reply(data, answer, SECRET)


def test_a_coa_ack_does_not_answer_a_disconnect_request() -> None:
    data = disconnect_request()
    with pytest.raises(Drop):
        dae.parse_reply(data, gateway_answer(data, protocol.COA_ACK), SECRET)


@pytest.mark.parametrize("password", [b"p", b"x" * 15, b"y" * 16, b"z" * 17, "é€".encode(),
                                      b"w" * 128])
def test_decrypt_user_password_round_trip(password: bytes) -> None:
    secret, auth = b"s3cret", bytes(range(16))
    pkt = rp.AuthPacket(secret=secret, authenticator=auth, dict=protocol.dictionary())
    raw = pkt.PwCrypt(password.decode())
    assert protocol.decrypt_user_password(raw, secret, auth) == password.decode()


def test_decrypt_user_password_refuses_what_is_not_text() -> None:
    secret, auth = b"s3cret", bytes(range(16))
    pkt = rp.AuthPacket(secret=secret, authenticator=auth, dict=protocol.dictionary())
    raw = pkt.PwCrypt(b"pass\xffword")  # type: ignore[arg-type]
    assert pkt.PwDecrypt(raw) == "password", "pyrad's own decoding loses the octet"
    assert protocol.decrypt_user_password(raw, secret, auth) is None
    assert protocol.decrypt_user_password(b"", secret, auth) is None
    assert protocol.decrypt_user_password(b"x" * 17, secret, auth) is None

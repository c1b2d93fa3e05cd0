"""The message layer's fast paths give what the general code gives: HMAC-MD5
with the secret's blocks hashed once against the hmac module, the direct
attribute encoding against the RFC's layout written out here, a decoded
message against the dataclass built the ordinary way, and the same refusals
for an Accounting-Request as for an Access-Request. No sockets."""

from __future__ import annotations

import dataclasses
import hmac
import os
import struct
from typing import TYPE_CHECKING, Any

import pytest

from passerelle.radius import codec
from passerelle.radius import messages as m
from passerelle.radius.store import integer_array, text_array
from tests.unit.test_messages import signed_request, vsa
from tests.unit.test_packets import REQUEST_AUTH, SECRET, attr, header

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@pytest.mark.parametrize("key_size", [0, 1, 16, 63, 64, 65, 200])
@pytest.mark.parametrize("data_size", [0, 1, 64, 4096])
def test_hmac_md5_is_rfc_2104s(key_size: int, data_size: int) -> None:
    key, data = os.urandom(key_size), os.urandom(data_size)
    assert codec.hmac_md5(key, data) == hmac.new(key, data, "md5").digest()


def test_hmac_md5_states_are_not_shared_between_calls() -> None:
    first = codec.hmac_md5(b"k", b"one")
    codec.hmac_md5(b"k", b"two")
    assert codec.hmac_md5(b"k", b"one") == first == hmac.new(b"k", b"one", "md5").digest()


def test_attributes_are_laid_out_as_the_rfcs_say() -> None:
    evs_value = bytes(300)  # two Long Extended fragments
    encoded = codec.encode_attributes([
        (1, b"alice"), ((14122, 7), b"\x00\x00\x03\xe8"), ((245, 11344, 1), evs_value)])
    whole = struct.pack("!I", 11344) + b"\x01" + evs_value
    expected = (attr(1, b"alice") + vsa(14122, 7, b"\x00\x00\x03\xe8")
                + bytes([245, 255, 26, 0x80]) + whole[:251]
                + bytes([245, len(whole) - 251 + 4, 26, 0]) + whole[251:])
    assert encoded == expected
    with pytest.raises(ValueError, match="at most 253"):
        codec.encode_attributes([(1, bytes(254))])
    with pytest.raises(ValueError, match="vendor attribute"):
        codec.encode_attributes([((14122, 7), bytes(248))])


@pytest.mark.parametrize("value", [0, 1, 3600, 2**32 - 1, True, m.AcctStatus.STOP])
def test_integers_encode_as_four_octets_whatever_their_python_type(value: int) -> None:
    spec = codec.codec().spec("Session-Timeout")
    assert spec.encode(value) == struct.pack("!I", int(value))
    with pytest.raises(struct.error):
        spec.encode(2**32)


def test_tagged_and_named_integers_keep_their_rules() -> None:
    c = codec.codec()
    assert c.raw("Tunnel-Type:1", 13) == (64, b"\x01\x00\x00\x0d")
    assert c.spec("NAS-Port-Type").encode("Wireless-802.11") == struct.pack("!I", 19)


def test_salts_have_the_top_bit_and_are_unique() -> None:
    for _ in range(200):
        salts = codec.new_salts(5)
        assert len(set(salts)) == 5
        assert all(len(s) == 2 and s[0] & 0x80 for s in salts)


def _every_field(message: DataclassInstance) -> dict[str, Any]:
    # Any: the fields of whichever message class, each of its own type.
    return {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}


@pytest.mark.parametrize("status", list(m.AcctStatus))
def test_a_decoded_accounting_request_is_the_ordinary_dataclass(status: m.AcctStatus) -> None:
    sent = m.AccountingRequest(
        status=status, session_id="5F2A0001", user_name="alice@acme.example",
        calling_station_id="02-00-00-00-00-01", framed_ip_address="198.51.100.7",
        input_octets=5 * 2**32 + 7, output_octets=12, session_time=300, event_timestamp=1,
        nas_identifier="axis-gw", class_=b"psl1:x", proxy_state=(b"p",),
        other=((99, b"kept"),)).encode(SECRET)
    decoded = m.decode_request(sent, SECRET)
    rebuilt = m.AccountingRequest(**_every_field(decoded))
    assert decoded == rebuilt and type(decoded) is m.AccountingRequest
    assert decoded.status is status and decoded.other == ((99, b"kept"),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.session_id = "other"  # type: ignore[misc]


def test_every_message_class_decodes_to_its_ordinary_dataclass() -> None:
    request = m.AccessRequest(user_name="alice", nas_identifier="gw",
                              credential=m.Password("pw"), authenticator=REQUEST_AUTH)
    sent = request.encode(SECRET)
    decoded = m.decode_request(sent, SECRET)
    assert decoded == m.AccessRequest(**_every_field(decoded))
    for reply in (m.AccessAccept(session_timeout=60, tunnel_passwords=("k" * 12,), vlan=12),
                  m.AccessReject(reply_message="no-credit: none left"),
                  m.AccessChallenge(state=b"s")):
        answer = m.decode_reply(reply.encode(SECRET, decoded), SECRET, sent)
        assert answer == type(answer)(**_every_field(answer))
        assert _every_field(answer) | {"identifier": 0, "authenticator": b"",
                                       "message_authenticator": False} \
            == _every_field(reply) | {"identifier": 0, "authenticator": b"",
                                      "message_authenticator": False}
    for cls in (m.StatusServer, m.DisconnectRequest, m.CoARequest):
        sent = cls(nas_identifier="gw").encode(SECRET)
        decoded = m.decode_request(sent, SECRET)
        assert type(decoded) is cls and decoded == cls(**_every_field(decoded))
    assert set(m._MAKERS) >= set(m._REQUESTS.values()) | set(m._REPLIES.values())


STATUS = struct.pack("!I", 1)
GOOD = attr(40, STATUS) + attr(44, b"5F2A0001")


@pytest.mark.parametrize("attrs, why", [
    (GOOD + b"\x01", "truncated attribute header"),
    (GOOD + b"\x01\x00", "bad length 0"),
    (GOOD + b"\x01\x01", "bad length 1"),
    (GOOD + b"\x01\x09abc", "bad length 9"),
    (GOOD + attr(80, bytes(15)), "not 16 octets"),
    (GOOD + attr(80, bytes(16)) + attr(80, bytes(16)), "more than one Message-Authenticator"),
    (attr(44, b"5F2A0001"), "without a valid Acct-Status-Type"),
    (attr(40, b"\x00\x01") + attr(44, b"5F2A0001"), "without a valid Acct-Status-Type"),
])
def test_a_malformed_accounting_request_is_refused(attrs: bytes, why: str) -> None:
    with pytest.raises(m.MalformedPacket, match=why):
        m.decode_request(signed_request(4, attrs), SECRET)


def test_an_accounting_request_with_a_bad_authenticator_is_refused() -> None:
    good = signed_request(4, GOOD)
    assert isinstance(m.decode_request(good, SECRET), m.AccountingRequest)
    with pytest.raises(m.BadAuthenticator, match="Request Authenticator"):
        m.decode_request(good, b"another secret")
    with pytest.raises(m.BadAuthenticator, match="Request Authenticator"):
        m.decode_request(good[:-1] + bytes([good[-1] ^ 1]), SECRET)


def test_an_accounting_request_with_a_bad_message_authenticator_is_refused() -> None:
    # Signed over the packet with 16 zero octets in place of both (RFC 5176
    # section 3.4, as for Accounting-Requests by the peers that send one).
    unsigned = header(4, 9, attr(80, bytes(16)) + GOOD, bytes(16))
    mac = hmac.new(SECRET, unsigned, "md5").digest()
    body = unsigned[20:22] + mac + unsigned[38:]
    good = signed_request(4, body)
    decoded = m.decode_request(good, SECRET)
    assert isinstance(decoded, m.AccountingRequest) and decoded.message_authenticator
    forged = signed_request(4, body[:2] + bytes([body[2] ^ 1]) + body[3:])
    with pytest.raises(m.BadAuthenticator, match="bad Message-Authenticator"):
        m.decode_request(forged, SECRET)


def test_array_literals_quote_what_postgresql_would_misread() -> None:
    assert text_array([]) == "{}"
    assert text_array(["ab", 'a"b', "a\\b", "x,y", "{}", "", "NULL"]) \
        == '{"ab","a\\"b","a\\\\b","x,y","{}","","NULL"}'
    assert integer_array([3, 1]) == "{3,1}" and integer_array([]) == "{}"

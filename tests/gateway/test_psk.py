"""WPA2-Personal arithmetic against published known answers: the PBKDF2
passphrase vectors of IEEE 802.11-2016 J.4.2 and the PRF-SHA1 vectors of
J.3 (also in hostapd's test vectors), then message 2's MIC both ways."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest

from passerelle.gateway import psk

AA = bytes.fromhex("020000000001")
SPA = bytes.fromhex("020000000002")
ANONCE = bytes(range(32))
SNONCE = bytes(range(32, 64))


@pytest.mark.parametrize(("passphrase", "ssid", "expected"), [
    ("password", "IEEE",
     "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"),
    ("ThisIsAPassword", "ThisIsASSID",
     "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"),
    ("a" * 32, "Z" * 32,
     "becb93866bb8c3832cb777c2f559807c8c59afcb6eae734885001300a981cc62"),
])
def test_pmk_known_answers(passphrase: str, ssid: str, expected: str) -> None:
    assert psk.pmk(passphrase, ssid).hex() == expected


def test_a_64_hex_digit_key_is_the_pmk() -> None:
    raw = "ab" * 32
    assert psk.pmk(raw, "anything") == bytes.fromhex(raw)


@pytest.mark.parametrize("bad", ["short", "x" * 64, "é" * 10, "tab\there!"])
def test_keys_that_are_not_wpa_keys_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        psk.pmk(bad, "IEEE")


def test_ssid_length_is_checked() -> None:
    with pytest.raises(ValueError):
        psk.pmk("password", "S" * 33)


@pytest.mark.parametrize(("key", "data", "expected"), [
    (b"\x0b" * 20, b"Hi There",
     "bcd4c650b30b9684951829e0d75f9d54b862175ed9f00606e17d8da35402ffee"
     "75df78c3d31e0f889f012120c0862beb67753e7439ae242edb8373698356cf5a"),
    (b"Jefe", b"what do ya want for nothing?",
     "51f4de5b33f249adf81aeb713a3c20f4fe631446fabdfa58244759ae58ef9009"
     "a99abf4eac2ca5fa87e692c440eb40023e7babb206d61de7b92f41529092b8fc"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "e1ac546ec4cb636f9976487be5c86be17a0252ca5d8d8df12cfb0473525249ce"
     "9dd8d177ead710bc9b590547239107aef7b4abd43d87f0a68f1cbd9e2b6f7607"),
])
def test_prf_sha1_known_answers(key: bytes, data: bytes, expected: str) -> None:
    assert psk.prf_sha1(key, b"prefix", data, 64).hex() == expected


def test_kck_is_the_first_sixteen_octets_of_the_ptk_whatever_the_order() -> None:
    pmk = psk.pmk("password", "IEEE")
    full = psk.ptk(pmk, AA, SPA, ANONCE, SNONCE)
    assert len(full) == 48
    assert psk.kck(pmk, AA, SPA, ANONCE, SNONCE) == full[:16]
    # min/max ordering: the station's view gives the same keys.
    assert psk.ptk(pmk, SPA, AA, SNONCE, ANONCE) == full


@pytest.mark.parametrize("version", [psk.HMAC_MD5_RC4, psk.HMAC_SHA1_AES])
def test_message2_mic_checks_out_and_fails_with_another_key(version: int) -> None:
    pmk = psk.pmk("correct horse", "Passerelle")
    frame = psk.build_message2(pmk, AA, SPA, ANONCE, SNONCE, version=version,
                               key_data=bytes.fromhex("30140100000fac040100000fac040100000fac020000"))
    message = psk.parse_message2(frame)
    assert message.snonce == SNONCE
    assert message.version == version
    # The MIC, computed here independently from the standard's definition.
    kck = psk.ptk(pmk, AA, SPA, ANONCE, SNONCE)[:16]
    zeroed = frame[:81] + bytes(16) + frame[97:]
    digest = hmac.new(kck, zeroed, hashlib.md5 if version == 1 else hashlib.sha1).digest()
    assert frame[81:97] == digest[:16]
    assert psk.verifies(pmk, message, AA, SPA, ANONCE)
    assert not psk.verifies(psk.pmk("wrong horse", "Passerelle"), message, AA, SPA, ANONCE)
    assert not psk.verifies(pmk, message, AA, SPA, bytes(32))  # another ANonce


def test_a_flipped_bit_breaks_the_mic() -> None:
    pmk = psk.pmk("correct horse", "Passerelle")
    frame = bytearray(psk.build_message2(pmk, AA, SPA, ANONCE, SNONCE))
    frame[20] ^= 1
    assert not psk.verifies(pmk, psk.parse_message2(bytes(frame)), AA, SPA, ANONCE)


def _good() -> bytes:
    return psk.build_message2(psk.pmk("password", "IEEE"), AA, SPA, ANONCE, SNONCE)


@pytest.mark.parametrize(("mangle", "words"), [
    (lambda f: f[:60], "shorter"),
    (lambda f: f[:1] + b"\x00" + f[2:], "not EAPoL-Key"),
    (lambda f: f[:2] + (500).to_bytes(2, "big") + f[4:], "does not fit"),
    (lambda f: f[:4] + b"\x07" + f[5:], "descriptor type"),
    (lambda f: f[:5] + (0x008a).to_bytes(2, "big") + f[7:], "not that of message 2"),
    (lambda f: f[:5] + (0x010b).to_bytes(2, "big") + f[7:], "version 3"),
    (lambda f: f[:97] + (4).to_bytes(2, "big") + f[99:], "Key Data length"),
])
def test_malformed_frames_are_named(mangle: Callable[[bytes], bytes], words: str) -> None:
    with pytest.raises(psk.MalformedEapol, match=words):
        psk.parse_message2(mangle(_good()))


def test_padding_past_the_8021x_length_is_ignored() -> None:
    frame = _good()
    assert psk.parse_message2(frame + b"\x00" * 6) == psk.parse_message2(frame)

"""WPA2-Personal key arithmetic, without I/O: the PMK of a passphrase, the
802.11 PRF, the KCK of a 4-way handshake and the MIC of its message 2.

The chain (IEEE 802.11-2016 sections 12.7.1.2, 12.7.1.3 and J.4):

- PMK = PBKDF2-HMAC-SHA1(passphrase, SSID, 4096 iterations, 32 octets); a
  64-hex-digit key is the PMK itself. The PBKDF2 is the whole cost: the box
  derives it once per key for the network's SSID, never per request.
- PTK = PRF-SHA1(PMK, "Pairwise key expansion", min(AA, SPA) || max(AA,
  SPA) || min(ANonce, SNonce) || max(ANonce, SNonce)), where PRF-SHA1 joins
  HMAC-SHA1(K, label || 0x00 || data || i) for i = 0, 1, ...; KCK = PTK[0:16],
  so only the first HMAC block is needed to check a MIC.
- EAPoL-Key message 2, from its 802.1X header on: SNonce at offset 17, MIC
  at 81 (16 octets); MIC = HMAC-MD5 (key descriptor version 1) or
  HMAC-SHA1[:16] (version 2) of the KCK over the frame with the MIC zeroed.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from dataclasses import dataclass
from typing import Any

PMK_LEN = 32
NONCE_LEN = 32
MIC_LEN = 16
KCK_LEN = 16
PTK_LABEL = b"Pairwise key expansion"

# EAPoL-Key frame layout (IEEE 802.11-2016 figure 12-32), offsets from the
# start of the 802.1X header.
EAPOL_KEY = 3  # 802.1X packet type
NONCE_AT = 17
MIC_AT = 81
KEY_DATA_LENGTH_AT = 97
HEADER_LEN = 99  # everything before Key Data
# Key Information bits.
VERSION_MASK = 0x0007
PAIRWISE = 0x0008
INSTALL = 0x0040
ACK = 0x0080
MIC_BIT = 0x0100
HMAC_MD5_RC4, HMAC_SHA1_AES = 1, 2  # key descriptor versions we check
DESCRIPTOR_RSN, DESCRIPTOR_WPA = 2, 254

_HEX = set(string.hexdigits)
# RFC 2104: the key XOR ipad / opad, as translation tables (one C call each).
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_BLOCK = 64  # SHA-1 and MD5 block size

HmacStates = tuple[Any, Any]  # hashlib objects: inner and outer, key absorbed


class MalformedEapol(ValueError):
    """The octets are not an EAPoL-Key message 2 we can check."""


def check_passphrase(key: str) -> None:
    """ValueError unless ``key`` is a WPA key: 8-63 printable ASCII
    characters, or 64 hex digits (IEEE 802.11-2016 J.4.1)."""
    if len(key) == 64 and set(key) <= _HEX:
        return
    if not 8 <= len(key) <= 63:
        raise ValueError(f"a Wi-Fi key has 8 to 63 characters (or 64 hex digits), not "
                         f"{len(key)}")
    if not all(" " <= c <= "~" for c in key):
        raise ValueError("a Wi-Fi key is printable ASCII")


def pmk(passphrase: str, ssid: str | bytes) -> bytes:
    """The PMK of ``passphrase`` on the network ``ssid`` (about 5 ms)."""
    check_passphrase(passphrase)
    if len(passphrase) == 64:
        return bytes.fromhex(passphrase)
    raw_ssid = ssid.encode("utf-8") if isinstance(ssid, str) else ssid
    if not 1 <= len(raw_ssid) <= 32:
        raise ValueError(f"an SSID has 1 to 32 octets, not {len(raw_ssid)}")
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode("ascii"), raw_ssid, 4096, PMK_LEN)


def prf_sha1(key: bytes, label: bytes, data: bytes, length: int) -> bytes:
    """PRF-SHA1 (IEEE 802.11-2016 section 12.7.1.2): ``length`` octets."""
    out = bytearray()
    prefix = label + b"\x00" + data
    i = 0
    while len(out) < length:
        out += hmac.digest(key, prefix + bytes([i]), "sha1")
        i += 1
    return bytes(out[:length])


def _ptk_data(aa: bytes, spa: bytes, anonce: bytes, snonce: bytes) -> bytes:
    return min(aa, spa) + max(aa, spa) + min(anonce, snonce) + max(anonce, snonce)


def ptk(pmk_: bytes, aa: bytes, spa: bytes, anonce: bytes, snonce: bytes,
        length: int = 48) -> bytes:
    """The PTK (48 octets for CCMP: KCK, KEK, TK)."""
    return prf_sha1(pmk_, PTK_LABEL, _ptk_data(aa, spa, anonce, snonce), length)


def kck(pmk_: bytes, aa: bytes, spa: bytes, anonce: bytes, snonce: bytes) -> bytes:
    """PTK[0:16], from the first PRF block only (the look-up's hot path)."""
    block = PTK_LABEL + b"\x00" + _ptk_data(aa, spa, anonce, snonce) + b"\x00"
    return hmac.digest(pmk_, block, "sha1")[:KCK_LEN]


@dataclass(frozen=True, slots=True)
class Message2:
    """An EAPoL-Key message 2 as far as the MIC check needs it."""

    version: int  # key descriptor version: 1 HMAC-MD5, 2 HMAC-SHA1
    snonce: bytes
    mic: bytes
    zeroed: bytes  # the frame (to its 802.1X length) with the MIC zeroed


def parse_message2(frame: bytes) -> Message2:
    """Parse message 2 of the 4-way handshake; MalformedEapol says why not."""
    if len(frame) < HEADER_LEN:
        raise MalformedEapol(f"{len(frame)} octets, shorter than an EAPoL-Key frame "
                             f"({HEADER_LEN})")
    if frame[1] != EAPOL_KEY:
        raise MalformedEapol(f"802.1X packet type {frame[1]}, not EAPoL-Key ({EAPOL_KEY})")
    body = int.from_bytes(frame[2:4], "big")
    end = 4 + body
    if end < HEADER_LEN or end > len(frame):
        raise MalformedEapol(f"802.1X body length {body} does not fit the "
                             f"{len(frame)} octets given")
    if frame[4] not in (DESCRIPTOR_RSN, DESCRIPTOR_WPA):
        raise MalformedEapol(f"key descriptor type {frame[4]} is neither RSN nor WPA")
    info = int.from_bytes(frame[5:7], "big")
    if not info & MIC_BIT or info & ACK or info & INSTALL or not info & PAIRWISE:
        raise MalformedEapol(f"Key Information 0x{info:04x} is not that of message 2")
    version = info & VERSION_MASK
    if version not in (HMAC_MD5_RC4, HMAC_SHA1_AES):
        raise MalformedEapol(f"key descriptor version {version} (only 1 and 2, the "
                             "WPA2-PSK ones, are checked)")
    data_length = int.from_bytes(frame[KEY_DATA_LENGTH_AT:HEADER_LEN], "big")
    if HEADER_LEN + data_length != end:
        raise MalformedEapol(f"Key Data length {data_length} does not match the frame")
    frame = frame[:end]
    zeroed = frame[:MIC_AT] + bytes(MIC_LEN) + frame[MIC_AT + MIC_LEN:]
    return Message2(version, frame[NONCE_AT:NONCE_AT + NONCE_LEN],
                    frame[MIC_AT:MIC_AT + MIC_LEN], zeroed)


def mic(kck_: bytes, version: int, zeroed: bytes) -> bytes:
    """The MIC of a frame whose MIC field is zero."""
    if version == HMAC_MD5_RC4:
        return hmac.digest(kck_, zeroed, "md5")
    if version == HMAC_SHA1_AES:
        return hmac.digest(kck_, zeroed, "sha1")[:MIC_LEN]
    raise ValueError(f"key descriptor version {version}")


def hmac_sha1_states(key: bytes) -> HmacStates:
    """HMAC-SHA1's inner and outer hashes with ``key`` absorbed (RFC 2104
    section 2). Kept with each PMK, they are copied per message: OpenSSL's
    one-shot HMAC sets the key up anew each time, at twice the cost."""
    if len(key) > _BLOCK:
        key = hashlib.sha1(key).digest()
    padded = key.ljust(_BLOCK, b"\x00")
    return hashlib.sha1(padded.translate(_IPAD)), hashlib.sha1(padded.translate(_OPAD))


class Handshake:
    """One message 2 to check against many PMKs: what does not depend on
    the PMK (the PRF's input, the MIC's hash) is computed once."""

    __slots__ = ("_block", "_mic", "_new", "_zeroed")

    def __init__(self, message: Message2, aa: bytes, spa: bytes, anonce: bytes) -> None:
        if message.version not in (HMAC_MD5_RC4, HMAC_SHA1_AES):
            raise ValueError(f"key descriptor version {message.version}")
        self._block = (PTK_LABEL + b"\x00" + _ptk_data(aa, spa, anonce, message.snonce)
                       + b"\x00")
        self._new = hashlib.md5 if message.version == HMAC_MD5_RC4 else hashlib.sha1
        self._mic = message.mic
        self._zeroed = message.zeroed

    def holds(self, pmk_: bytes) -> bool:
        """Whether the station holds ``pmk_``: its MIC checks out (constant time)."""
        return self.holds_states(hmac_sha1_states(pmk_))

    def holds_states(self, states: HmacStates) -> bool:
        """``holds`` for a PMK given by its ``hmac_sha1_states`` (the hot path)."""
        inner, outer = states[0].copy(), states[1].copy()
        inner.update(self._block)
        outer.update(inner.digest())
        # The KCK (16 octets, under one block) as an HMAC key for the MIC.
        padded = outer.digest()[:KCK_LEN].ljust(_BLOCK, b"\x00")
        mic_inner = self._new(padded.translate(_IPAD))
        mic_inner.update(self._zeroed)
        expected = self._new(padded.translate(_OPAD) + mic_inner.digest()).digest()[:MIC_LEN]
        return hmac.compare_digest(expected, self._mic)


def verifies(pmk_: bytes, message: Message2, aa: bytes, spa: bytes, anonce: bytes) -> bool:
    """Whether the station that sent ``message`` holds ``pmk_`` (constant time)."""
    return Handshake(message, aa, spa, anonce).holds(pmk_)


def build_message2(pmk_: bytes, aa: bytes, spa: bytes, anonce: bytes, snonce: bytes, *,
                   version: int = HMAC_SHA1_AES, replay_counter: int = 1,
                   key_data: bytes = b"") -> bytes:
    """Message 2 as a station holding ``pmk_`` sends it (tests, benchmarks,
    the demo): RSN descriptor, Pairwise and MIC set, SNonce, Key Data
    (normally the station's RSN element), MIC computed."""
    info = MIC_BIT | PAIRWISE | version
    body = (bytes([DESCRIPTOR_RSN]) + info.to_bytes(2, "big") + bytes(2)
            + replay_counter.to_bytes(8, "big") + snonce + bytes(16 + 8 + 8)
            + bytes(MIC_LEN) + len(key_data).to_bytes(2, "big") + key_data)
    frame = bytes([2, EAPOL_KEY]) + len(body).to_bytes(2, "big") + body
    sealed = mic(kck(pmk_, aa, spa, anonce, snonce), version, frame)
    return frame[:MIC_AT] + sealed + frame[MIC_AT + MIC_LEN:]

"""RADIUS attributes and packets, without sockets: the dictionary, the value
types, the attribute walk and every authenticator rule.

Attributes are named as in the shipped dictionary ("User-Name",
"WISPr-Bandwidth-Max-Up"); a *key* is the code of a standard attribute,
(vendor id, vendor type) of a vendor-specific one, or (245, vendor id,
vendor type) of an Extended-Vendor-Specific-5 one (RFC 6929 section 2.4),
its fragments joined (``EVS5_KEYS`` names the ones we know). The typed messages in
messages.py are built on this module; callers rarely need it directly.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, NamedTuple

from pyrad.dictionary import Dictionary

Key = int | tuple[int, int] | tuple[int, int, int]
Raw = tuple[Key, bytes]

MIN_LENGTH = 20
MAX_LENGTH = 4096  # RFC 2865 section 3
VENDOR_SPECIFIC = 26
PROXY_STATE = 33
MESSAGE_AUTHENTICATOR = 80
LONG_EXTENDED_5 = 245  # RFC 6929 section 2.2: Type, Length, Extended-Type, Flags
EVS = 26  # the Extended-Type of Extended-Vendor-Specific (RFC 6929 section 2.4)
MORE = 0x80  # the M flag: the next attribute continues this one
LONG_EXTENDED_CHUNK = 255 - 4  # after Type, Length, Extended-Type and Flags
FREERADIUS = 11344
# Extended-Vendor-Specific-5 attributes in FreeRADIUS's dictionary that
# hostapd sends (``wpa_psk_radius=3``): the 4-way handshake's message 1 ANonce
# and the whole EAPoL-Key message 2.
EVS5_KEYS: dict[str, tuple[int, int, int]] = {
    "FreeRADIUS-802.1X-Anonce": (LONG_EXTENDED_5, FREERADIUS, 1),
    "FreeRADIUS-802.1X-EAPoL-Key-Msg": (LONG_EXTENDED_5, FREERADIUS, 2),
}
MAX_PASSWORD = 128  # RFC 2865 section 5.2
# RFC 2865 section 3: a shared secret should be at least 16 octets. Section 5.2
# hides the User-Password (and RFC 2868 the Wi-Fi key) with it, so a short one
# is guessed offline from one captured request.
MIN_SECRET = 16


class Drop(Exception):
    """A datagram to drop without an answer; the message is the log reason.
    The subclass says whose fault it is."""


class MalformedPacket(Drop):
    """The peer sent something that is not a valid RADIUS packet."""


class BadAuthenticator(Drop):
    """The authenticators do not check out: wrong shared secret or forgery."""


class NotAnAnswer(Drop):
    """A well-formed packet that does not answer the request we sent."""


class TooLong(ValueError):
    """A packet we were asked to build would be over 4,096 octets (RFC 2865
    section 3): it is never sent. A ValueError: the caller's mistake."""


class BadValue(ValueError):
    """One attribute's value does not decode (wrong length, not UTF-8)."""


@lru_cache(maxsize=1)
def dictionary() -> Dictionary:
    """The shipped dictionary (RFC attributes, WISPr, ChilliSpot)."""
    path = resources.files("passerelle.radius") / "dictionaries" / "dictionary"
    with resources.as_file(path) as real:
        return Dictionary(str(real))


# -- value types ----------------------------------------------------------------


def _u32(raw: bytes) -> int:
    if len(raw) != 4:
        raise BadValue(f"{len(raw)} octets, not 4")
    return int.from_bytes(raw, "big")


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadValue("not UTF-8 text") from None


def _ipv4(raw: bytes) -> str:
    if len(raw) != 4:
        raise BadValue(f"IPv4 address of {len(raw)} octets")
    return socket.inet_ntoa(raw)  # ipaddress's str() costs ten times more


def _ipv6(raw: bytes) -> str:
    if len(raw) != 16:
        raise BadValue(f"IPv6 address of {len(raw)} octets")
    return str(ipaddress.IPv6Address(raw))


def _octets(raw: bytes) -> bytes:
    return raw


def _tagged_u32(raw: bytes) -> int:
    # RFC 2868 section 3.1: one tag octet, then a 24-bit value.
    if len(raw) != 4:
        raise BadValue(f"{len(raw)} octets, not 4")
    return int.from_bytes(raw[1:], "big")


def _tagged_text(raw: bytes) -> str:
    # The tag is optional on strings: a first octet above 0x1F is text.
    return _text(raw[1:] if raw and raw[0] <= 0x1F else raw)


_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "string": _text, "octets": _octets, "integer": _u32, "date": _u32,
    "ipaddr": _ipv4, "ipv6addr": _ipv6,
}


_U32 = struct.Struct("!I")
_NUMBERS = ("integer", "date")


def _enc_u32(value: Any) -> bytes:
    return _U32.pack(int(value))


def _enc_text(value: Any) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "string": _enc_text, "octets": bytes, "integer": _enc_u32, "date": _enc_u32,
    "ipaddr": lambda v: ipaddress.IPv4Address(v).packed,
    "ipv6addr": lambda v: ipaddress.IPv6Address(v).packed,
}


@dataclass(frozen=True, slots=True)
class Spec:
    """One dictionary attribute, resolved once."""

    name: str
    key: Key
    type: str
    tagged: bool
    values: dict[str, int]  # the dictionary's VALUE names
    decode: Callable[[bytes], Any]

    def encode(self, value: Any, tag: int = 0) -> bytes:
        if value.__class__ is int and not self.tagged and self.type in _NUMBERS:
            # The commonest case (Session-Timeout, counters): no name to look up.
            return _U32.pack(value)
        if isinstance(value, str) and self.type == "integer":
            try:
                value = self.values[value]
            except KeyError:
                raise ValueError(f"{self.name}: no value named {value!r}") from None
        if self.tagged and self.type == "integer":
            return bytes([tag]) + struct.pack("!I", int(value))[1:]
        raw = _ENCODERS.get(self.type, bytes)(value)
        return bytes([tag]) + raw if self.tagged and tag else raw


class Codec:
    """Names to keys and value types, computed once from a pyrad dictionary."""

    def __init__(self, d: Dictionary) -> None:
        self._by_name: dict[str, Spec] = {}
        self._by_key: dict[Key, Spec] = {}
        for name, attr in d.attributes.items():
            key: Key = (d.vendors.GetForward(attr.vendor), attr.code) if attr.vendor \
                else attr.code
            values = {k: int.from_bytes(v, "big") for k, v in attr.values.forward.items()}
            decode: Callable[[bytes], Any]
            if attr.has_tag:
                decode = _tagged_u32 if attr.type == "integer" else _tagged_text
            else:
                decode = _DECODERS.get(attr.type, _octets)
            if attr.encrypt:
                decode = _octets  # hidden values need the secret: see below
            spec = Spec(name, key, attr.type, bool(attr.has_tag), values, decode)
            self._by_name[name] = spec
            self._by_key[key] = spec

    def spec(self, name: str) -> Spec:
        try:
            return self._by_name[name]
        except KeyError:
            raise ValueError(f"no attribute named {name!r} in the dictionary") from None

    def key(self, name: str) -> Key:
        return self.spec(name).key

    def name(self, key: Key) -> str:
        spec = self._by_key.get(key)
        if spec is not None:
            return spec.name
        for name, evs in EVS5_KEYS.items():
            if evs == key:
                return name
        if isinstance(key, tuple):
            return f"Vendor-{key[-2]}-Attr-{key[-1]}"
        return f"Attr-{key}"

    def raw(self, name: str, value: Any) -> Raw:
        """``(key, octets)`` of a named attribute; "Tunnel-Type:1" gives a tag."""
        base, _, tag = name.partition(":")
        spec = self.spec(base)
        return spec.key, spec.encode(value, int(tag) if tag else 0)

    def value(self, key: Key, raw: bytes) -> Any:
        """The decoded value of one attribute; BadValue if it does not decode."""
        spec = self._by_key.get(key)
        return raw if spec is None else spec.decode(raw)


@lru_cache(maxsize=1)
def codec() -> Codec:
    return Codec(dictionary())


# -- the packet -------------------------------------------------------------------


class Packet(NamedTuple):
    """A datagram split into header and attributes; no secret checked yet.
    ``data`` is the packet without the padding past Length. (A named tuple:
    one is made for every datagram, and a frozen dataclass's __init__
    costs three times as much.)"""

    code: int
    identifier: int
    authenticator: bytes
    attributes: tuple[Raw, ...]
    data: bytes
    ma_offset: int  # where Message-Authenticator's value starts; 0 if absent


def parse(datagram: bytes) -> Packet:
    """Header, Length and attribute walk (RFC 2865 sections 3 and 5), or
    MalformedPacket. Octets past Length are padding; a datagram shorter than
    Length is dropped; at most one Message-Authenticator, of 16 octets.
    Long Extended fragments (RFC 6929 section 2.2: the M flag on all but the
    last; the vendor id and type only in the first) are joined; a fragment
    not followed by its continuation is malformed."""
    size = len(datagram)
    if size < MIN_LENGTH:
        raise MalformedPacket(f"datagram of {size} octets is shorter than a header")
    length = (datagram[2] << 8) | datagram[3]
    if length < MIN_LENGTH or length > MAX_LENGTH:
        raise MalformedPacket(f"Length field {length} is outside 20-4096")
    if size < length:
        raise MalformedPacket(f"datagram of {size} octets is shorter than Length {length}")
    data = datagram[:length] if size > length else datagram
    attrs: list[Raw] = []
    append = attrs.append
    pos, ma = MIN_LENGTH, 0
    pending: tuple[int, bytearray] | None = None  # a Long Extended value, continued
    while pos < length:
        if pos + 2 > length:
            raise MalformedPacket("truncated attribute header")
        code, alen = data[pos], data[pos + 1]
        end = pos + alen
        if alen < 2 or end > length:
            raise MalformedPacket(f"attribute {code} has a bad length {alen}")
        if pending is not None and code != LONG_EXTENDED_5:
            raise MalformedPacket("a fragmented attribute is not continued (RFC 6929 "
                                  "section 2.2)")
        if code == LONG_EXTENDED_5:
            pending = _long_extended(data[pos + 2:end], pending, append)
        elif code == VENDOR_SPECIFIC:
            attrs.extend(_vendor(data[pos + 2:end]))
        else:
            if code == MESSAGE_AUTHENTICATOR:
                if alen != 18:
                    raise MalformedPacket("Message-Authenticator is not 16 octets")
                if ma:
                    raise MalformedPacket("more than one Message-Authenticator")
                ma = pos + 2
            append((code, data[pos + 2:end]))
        pos = end
    if pending is not None:
        raise MalformedPacket("the last attribute has the M flag but no continuation "
                              "(RFC 6929 section 2.2)")
    return Packet(data[0], data[1], data[4:20], tuple(attrs), data, ma)


def _long_extended(value: bytes, pending: tuple[int, bytearray] | None,
                   append: Callable[[Raw], None]) -> tuple[int, bytearray] | None:
    """One attribute of type 245 (Extended-Type, Flags, data): a fragment or
    a whole value. Fragments' data are joined first; an
    Extended-Vendor-Specific value then starts with its vendor id and type.
    Another Extended-Type is kept raw under key 245."""
    if len(value) < 2:
        raise MalformedPacket("Long Extended attribute shorter than its header")
    ext = value[0]
    if pending is not None:
        if pending[0] != ext:
            raise MalformedPacket("a fragmented attribute is continued by another")
        joined = pending[1]
        joined.extend(value[2:])
    else:
        joined = bytearray(value[2:])
    if value[1] & MORE:
        return ext, joined
    if ext != EVS:
        append((LONG_EXTENDED_5, bytes([ext, 0]) + joined))
    elif len(joined) < 5:
        raise MalformedPacket("Extended-Vendor-Specific attribute without its vendor")
    else:
        append(((LONG_EXTENDED_5, int.from_bytes(joined[:4], "big"), joined[4]),
                bytes(joined[5:])))
    return None


def _vendor(value: bytes) -> list[Raw]:
    """Sub-attributes of a Vendor-Specific in the usual one-octet type and
    length format (RFC 2865 section 5.26); kept whole when not in it."""
    if len(value) < 6:
        return [(VENDOR_SPECIFIC, value)]
    vendor = int.from_bytes(value[:4], "big")
    out: list[Raw] = []
    pos = 4
    while pos < len(value):
        if pos + 2 > len(value) or value[pos + 1] < 2 or pos + value[pos + 1] > len(value):
            return [(VENDOR_SPECIFIC, value)]
        out.append(((vendor, value[pos]), value[pos + 2:pos + value[pos + 1]]))
        pos += value[pos + 1]
    return out


def encode_attributes(attrs: Iterable[Raw]) -> bytes:
    out = bytearray()
    for key, value in attrs:
        if isinstance(key, int):  # a standard attribute: most of them
            if len(value) > 253:
                raise ValueError(f"attribute {key} of {len(value)} octets (at most 253)")
            out.append(key)
            out.append(len(value) + 2)
            out += value
        elif len(key) == 3:
            out += _evs_fragments(key[1], key[2], value)
        else:
            vendor, sub = key
            if len(value) > 247:
                raise ValueError(f"vendor attribute {key} of {len(value)} octets")
            out += bytes([VENDOR_SPECIFIC, len(value) + 8]) + vendor.to_bytes(4, "big")
            out += bytes([sub, len(value) + 2]) + value
    return bytes(out)


def _evs_fragments(vendor: int, sub: int, value: bytes) -> bytes:
    """An Extended-Vendor-Specific-5 attribute: the vendor id, type and
    value split in fragments of at most 255 octets, the M flag on all but
    the last (RFC 6929 sections 2.2, 2.4)."""
    whole = vendor.to_bytes(4, "big") + bytes([sub]) + value
    chunks = [whole[i:i + LONG_EXTENDED_CHUNK]
              for i in range(0, len(whole), LONG_EXTENDED_CHUNK)]
    out = bytearray()
    for i, chunk in enumerate(chunks):
        flags = MORE if i < len(chunks) - 1 else 0
        out += bytes([LONG_EXTENDED_5, len(chunk) + 4, EVS, flags]) + chunk
    return bytes(out)


# HMAC-MD5 (RFC 2104) with the key's two padded blocks hashed once per
# secret: hmac.new() sets them up again for every packet, which cost as much
# as the hashing of the packet itself.
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


@lru_cache(maxsize=1024)
def _hmac_md5_states(secret: bytes) -> tuple[Any, Any]:
    key = hashlib.md5(secret).digest() if len(secret) > 64 else secret
    key = key.ljust(64, b"\0")
    return hashlib.md5(key.translate(_IPAD)), hashlib.md5(key.translate(_OPAD))


def hmac_md5(secret: bytes, data: bytes) -> bytes:
    """HMAC-MD5 of ``data`` (Message-Authenticator, RFC 3579 section 3.2)."""
    inner, outer = _hmac_md5_states(secret)
    inner, outer = inner.copy(), outer.copy()
    inner.update(data)
    outer.update(inner.digest())
    return outer.digest()


# How the authenticator field of a packet we send is made.
RANDOM, ZEROED, RESPONSE = "random", "zeroed", "response"


def build(code: int, identifier: int, attrs: Sequence[Raw], secret: bytes, *, kind: str,
          authenticator: bytes, with_ma: bool) -> bytes:
    """The datagram. ``kind``: RANDOM (Access-Request, Status-Server: the
    given authenticator as is), ZEROED (Accounting, Disconnect and CoA
    requests: MD5 over the packet with 16 zero octets, RFC 2866 section 3,
    RFC 5176 section 3.3), RESPONSE (``authenticator`` is the request's:
    MD5(Code|ID|Length|RequestAuth|Attributes|Secret), RFC 2865 section 3).

    Message-Authenticator goes first; it is computed before the
    authenticator, over the packet with it zeroed and the authenticator field
    holding the random one, 16 zero octets (RFC 5176 section 3.4) or the
    request's (RFC 3579 section 3.2)."""
    body = encode_attributes(attrs)
    if with_ma:
        body = bytes([MESSAGE_AUTHENTICATOR, 18]) + bytes(16) + body
    length = MIN_LENGTH + len(body)
    if length > MAX_LENGTH:
        raise TooLong(f"packet of {length} octets (at most {MAX_LENGTH})")
    head = struct.pack("!BBH", code, identifier, length)
    field = bytes(16) if kind == ZEROED else authenticator
    if with_ma:
        mac = hmac_md5(secret, head + field + body)
        body = body[:2] + mac + body[18:]
    if kind == RANDOM:
        return head + authenticator + body
    return head + hashlib.md5(head + field + body + secret).digest() + body


def check_request_authenticator(pkt: Packet, secret: bytes) -> bool:
    """Accounting, Disconnect and CoA requests (RFC 2866 section 3)."""
    data = pkt.data
    digest = hashlib.md5(data[:4] + bytes(16) + data[20:] + secret).digest()
    return hmac.compare_digest(digest, pkt.authenticator)


def check_response_authenticator(pkt: Packet, request_authenticator: bytes,
                                 secret: bytes) -> bool:
    data = pkt.data
    digest = hashlib.md5(data[:4] + request_authenticator + data[20:] + secret).digest()
    return hmac.compare_digest(digest, pkt.authenticator)


def check_message_authenticator(pkt: Packet, secret: bytes, authenticator: bytes) -> bool:
    """HMAC-MD5 over the packet with the MA zeroed and ``authenticator`` in
    the authenticator field (the packet's own for Access-Request and
    Status-Server, 16 zero octets for the other requests, the request's for a
    reply). False if there is none."""
    at = pkt.ma_offset
    if not at:
        return False
    data = pkt.data
    zeroed = data[:4] + authenticator + data[20:at] + bytes(16) + data[at + 16:]
    mac = hmac_md5(secret, zeroed)
    return hmac.compare_digest(mac, data[at:at + 16])


# -- hidden values -------------------------------------------------------------------


def hide_password(password: str, secret: bytes, authenticator: bytes) -> bytes:
    """User-Password (RFC 2865 section 5.2): padded with zeros to 16n octets,
    at most 128 (ValueError past that); an empty one is 16 zero octets."""
    clear = password.encode("utf-8")
    if len(clear) > MAX_PASSWORD:
        raise ValueError(f"a User-Password is at most {MAX_PASSWORD} octets, not {len(clear)}")
    clear = clear + bytes(-len(clear) % 16) if clear else bytes(16)
    return _chain(clear, secret, authenticator, encrypt=True)


def reveal_password(raw: bytes, secret: bytes, authenticator: bytes) -> str | None:
    """The clear User-Password, or None when it is not UTF-8 text (refuse it:
    a lenient decoder would let "pass\\xffword" pass for "password").
    BadValue when the length is not 16n octets, 16 to 128."""
    if not raw or len(raw) % 16 or len(raw) > MAX_PASSWORD:
        raise BadValue(f"User-Password of {len(raw)} octets")
    clear = _chain(raw, secret, authenticator, encrypt=False)
    try:
        return clear.rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError:
        return None


def _chain(data: bytes, secret: bytes, first: bytes, *, encrypt: bool) -> bytes:
    # b(1) = MD5(S + first), c(i) = p(i) xor b(i), b(i) = MD5(S + c(i-1)).
    out = bytearray()
    last = first
    for i in range(0, len(data), 16):
        block = data[i:i + 16]
        pad = hashlib.md5(secret + last).digest()
        # One XOR of two 128-bit integers (a generator over the octets
        # cost several times more: each Access-Request and Accept runs this).
        done = (int.from_bytes(block) ^ int.from_bytes(pad)).to_bytes(16)
        out += done
        last = done if encrypt else block
    return bytes(out)


def new_salts(count: int) -> list[bytes]:
    """Tunnel-Password salts: top bit set, unique in one packet (RFC 2868
    section 3.5)."""
    salts: list[bytes] = []
    while len(salts) < count:
        # Two random octets, the top bit set: 15 random bits, as RFC 2868 asks.
        raw = secrets.token_bytes(2)
        salt = bytes((raw[0] | 0x80, raw[1]))
        if salt not in salts:
            salts.append(salt)
    return salts


def hide_tunnel_password(password: str, secret: bytes, request_authenticator: bytes,
                         salt: bytes, tag: int = 0) -> bytes:
    """Tag, salt, then a length octet, the password and zero padding to 16n,
    hidden with MD5(S + RequestAuth + Salt) chaining (RFC 2868 section 3.5)."""
    clear = password.encode("utf-8")
    if len(clear) > 249 or not salt[0] & 0x80:
        raise ValueError("Tunnel-Password too long, or a salt without its top bit")
    plain = bytes([len(clear)]) + clear
    plain += bytes(-len(plain) % 16)
    return bytes([tag]) + salt + _chain(plain, secret, request_authenticator + salt,
                                        encrypt=True)


def reveal_tunnel_password(raw: bytes, secret: bytes, request_authenticator: bytes) -> str:
    """The clear Tunnel-Password; BadValue if it is not a valid one."""
    body = raw if len(raw) % 16 == 2 else raw[1:]  # the tag octet, when there is one
    if len(body) < 18 or (len(body) - 2) % 16 or not body[0] & 0x80:
        raise BadValue(f"Tunnel-Password of {len(raw)} octets is malformed")
    salt = body[:2]
    clear = _chain(body[2:], secret, request_authenticator + salt, encrypt=False)
    if clear[0] > len(clear) - 1:
        raise BadValue("Tunnel-Password length octet is past its end (wrong secret?)")
    return _text(clear[1:1 + clear[0]])


def chap_response(ident: int, password: bytes, challenge: bytes) -> bytes:
    """MD5(CHAP ID | secret | challenge) (RFC 1994 section 4.1)."""
    return hashlib.md5(bytes([ident]) + password + challenge).digest()

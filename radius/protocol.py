"""RADIUS helpers on pyrad packets, for the gateway code not yet moved onto
the typed message layer (messages.py, codec.py): a request decoded the way a
server must, attribute readers, 64-bit counters, MAC address spelling.
The rules themselves live in codec.py; the centre's server uses messages.py.
"""

from __future__ import annotations

import struct
from typing import Any

from pyrad import packet as rp

from . import mac
from .codec import (
    MAX_LENGTH,
    MESSAGE_AUTHENTICATOR,
    MIN_LENGTH,
    PROXY_STATE,
    MalformedPacket,
    dictionary,
    parse,
)
from .messages import Code

__all__ = ["MAX_LENGTH", "MESSAGE_AUTHENTICATOR", "MIN_LENGTH", "PROXY_STATE",
           "MalformedPacket", "dictionary"]

# Packet codes (RFC 2865, 2866, 5176, 5997), from the one vocabulary.
ACCESS_REQUEST: int = Code.ACCESS_REQUEST
ACCESS_ACCEPT: int = Code.ACCESS_ACCEPT
ACCESS_REJECT: int = Code.ACCESS_REJECT
ACCOUNTING_REQUEST: int = Code.ACCOUNTING_REQUEST
ACCOUNTING_RESPONSE: int = Code.ACCOUNTING_RESPONSE
STATUS_SERVER: int = Code.STATUS_SERVER
DISCONNECT_REQUEST: int = Code.DISCONNECT_REQUEST
DISCONNECT_ACK: int = Code.DISCONNECT_ACK
DISCONNECT_NAK: int = Code.DISCONNECT_NAK
COA_REQUEST: int = Code.COA_REQUEST
COA_ACK: int = Code.COA_ACK
COA_NAK: int = Code.COA_NAK

GIGA = 2**32

# Attributes that never belong in an Accounting-Request (RFC 2866 section 5.13).
NOT_IN_ACCOUNTING = ("User-Password", "CHAP-Password", "Reply-Message", "State")


def check_header(data: bytes) -> tuple[int, int, int]:
    """Code, Identifier and Length of a datagram, or MalformedPacket.

    Octets past Length are padding; a datagram shorter than Length is
    discarded (RFC 2865 section 3)."""
    if len(data) < MIN_LENGTH:
        raise MalformedPacket(f"datagram of {len(data)} octets is shorter than a header")
    code, ident, length = struct.unpack("!BBH", data[:4])
    if length < MIN_LENGTH or length > MAX_LENGTH:
        raise MalformedPacket(f"Length field {length} is outside 20-4096")
    if len(data) < length:
        raise MalformedPacket(f"datagram of {len(data)} octets is shorter than Length {length}")
    return code, ident, length


def _check_attributes(data: bytes) -> None:
    """Attribute lengths and at most one Message-Authenticator of 16 octets."""
    parse(data)


_PACKET_CLASS: dict[int, type[rp.Packet]] = {
    ACCESS_REQUEST: rp.AuthPacket,
    STATUS_SERVER: rp.AuthPacket,
    ACCOUNTING_REQUEST: rp.AcctPacket,
    DISCONNECT_REQUEST: rp.CoAPacket,
    COA_REQUEST: rp.CoAPacket,
}


def decode_request(data: bytes, secret: bytes, status_on_acct: bool = False) -> rp.Packet:
    """Decode a request the way a server must, or raise MalformedPacket."""
    code, _, length = check_header(data)
    data = data[:length]
    _check_attributes(data)
    cls = _PACKET_CLASS.get(code)
    if cls is None:
        raise MalformedPacket(f"unexpected packet code {code}")
    if code == STATUS_SERVER and status_on_acct:
        cls = rp.AcctPacket
    try:
        return cls(packet=data, secret=secret, dict=dictionary())
    except (rp.PacketError, ValueError, KeyError, IndexError, struct.error) as exc:
        raise MalformedPacket(f"cannot decode: {exc}") from exc


def has_message_authenticator(pkt: rp.Packet) -> bool:
    return dict.__contains__(pkt, MESSAGE_AUTHENTICATOR)


def first(pkt: rp.Packet, name: str, default: Any = None) -> Any:
    """The first value of an attribute, decoded, or ``default``.

    A value that does not decode (a bad IPv4 length, bad UTF-8) counts as
    absent rather than crashing the packet loop."""
    try:
        values = pkt.get(name)
    except (ValueError, KeyError, struct.error, UnicodeDecodeError, rp.PacketError):
        return default
    if not values:
        return default
    value = values[0]
    # pyrad hands back a text attribute that is not UTF-8 as bytes; callers
    # expect str, and bytes would fail later (in SQL) far from the cause.
    if isinstance(value, bytes) and _is_text(pkt, name):
        return default
    return value


def _is_text(pkt: rp.Packet, name: str) -> bool:
    attribute = pkt.dict.attributes.get(name.partition(":")[0]) if pkt.dict else None
    return attribute is not None and attribute.type == "string"


def raw_values(pkt: rp.Packet, code: int) -> list[bytes]:
    """Raw values of a standard attribute, as sent (Class, State, Proxy-State)."""
    return list(dict.get(pkt, code, []))


def octets(pkt: rp.Packet, low: str, high: str) -> int:
    """A 64-bit counter from its 32-bit value and its Gigawords (RFC 2869)."""
    return int(first(pkt, high, 0) or 0) * GIGA + int(first(pkt, low, 0) or 0)


def split_octets(total: int) -> tuple[int, int]:
    """(gigawords, low 32 bits) of a 64-bit counter."""
    return total // GIGA, total % GIGA


# The centre's spelling, aa-bb-cc-dd-ee-ff; the one parser is mac.py.
normalise_mac = mac.dashed

"""RADIUS requests built by hand for the load generator.

pyrad is too slow to build hundreds of thousands of requests in a few
seconds; the wire format of the few attributes the benchmark sends is simple
enough to write directly (RFC 2865 section 5, RFC 2866, RFC 3579 section 3.2).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT = 1, 2, 3
ACCOUNTING_REQUEST, ACCOUNTING_RESPONSE = 4, 5
START, STOP, INTERIM = 1, 2, 3


def attr(code: int, value: bytes) -> bytes:
    if len(value) > 253:
        raise ValueError(f"attribute {code} value of {len(value)} octets is too long")
    return bytes((code, len(value) + 2)) + value


def integer(code: int, value: int) -> bytes:
    return attr(code, struct.pack("!I", value))


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """User-Password hiding (RFC 2865 section 5.2)."""
    padded = password + b"\x00" * (-len(password) % 16 or (16 if not password else 0))
    out = b""
    last = authenticator
    for i in range(0, len(padded), 16):
        key = hashlib.md5(secret + last).digest()
        last = bytes(a ^ b for a, b in zip(padded[i:i + 16], key, strict=True))
        out += last
    return out


def access_request(ident: int, secret: bytes, login: str, password: str,
                   nas_ip: str, nas_id: str, calling: str) -> bytes:
    """A PAP Access-Request with Message-Authenticator as its first attribute."""
    authenticator = os.urandom(16)
    attrs = (attr(80, bytes(16)) + attr(1, login.encode())
             + attr(2, hide_password(password.encode(), secret, authenticator))
             + attr(4, socket.inet_aton(nas_ip)) + attr(32, nas_id.encode())
             + attr(31, calling.encode()) + integer(61, 19))  # NAS-Port-Type Wireless-802.11
    head = struct.pack("!BBH", ACCESS_REQUEST, ident, 20 + len(attrs))
    unsigned = head + authenticator + attrs
    mac = hmac.new(secret, unsigned, hashlib.md5).digest()
    return head + authenticator + attrs[:2] + mac + attrs[18:]


def accounting_request(ident: int, secret: bytes, *, status: int, session_id: str,
                       login: str, nas_ip: str, nas_id: str, calling: str, framed_ip: str,
                       session_time: int, octets_in: int, octets_out: int,
                       event_time: int, class_: bytes = b"") -> bytes:
    """An Accounting-Request; its Request Authenticator as RFC 2866 section 3.
    ``class_``: the Class of the Access-Accept, which a NAS sends back in
    every accounting record of the session (RFC 2865 section 5.25)."""
    attrs = (integer(40, status) + attr(44, session_id.encode()) + attr(1, login.encode())
             + attr(4, socket.inet_aton(nas_ip)) + attr(32, nas_id.encode())
             + attr(31, calling.encode()) + attr(8, socket.inet_aton(framed_ip))
             + integer(61, 19) + integer(55, event_time))
    if class_:
        attrs += attr(25, class_)
    if status != START:
        attrs += (integer(46, session_time) + integer(42, octets_in)
                  + integer(43, octets_out))
    if status == STOP:
        attrs += integer(49, 1)  # User-Request
    head = struct.pack("!BBH", ACCOUNTING_REQUEST, ident, 20 + len(attrs))
    authenticator = hashlib.md5(head + bytes(16) + attrs + secret).digest()
    return head + authenticator + attrs


def reply_ok(reply: bytes, request_authenticator: bytes, secret: bytes) -> bool:
    """The Response Authenticator is right (RFC 2865 section 3)."""
    if len(reply) < 20:
        return False
    expected = hashlib.md5(reply[:4] + request_authenticator + reply[20:] + secret).digest()
    return hmac.compare_digest(expected, reply[4:20])

"""Dynamic Authorization client (RFC 5176): tell a gateway to cut a session
(Disconnect-Request) or change it (CoA-Request).

Every request carries Event-Timestamp (the NAS drops stale ones, §6.3) and
Message-Authenticator; the reply is checked (Response Authenticator and
Message-Authenticator) before it is believed.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from pyrad import packet as rp

from . import protocol

log = logging.getLogger("passerelle.radius")

ERROR_CAUSES = {
    201: "Residual-Context-Removed", 202: "Invalid-EAP-Packet",
    401: "Unsupported-Attribute", 402: "Missing-Attribute",
    403: "NAS-Identification-Mismatch", 404: "Invalid-Request",
    405: "Unsupported-Service", 406: "Unsupported-Extension",
    407: "Invalid-Attribute-Value", 501: "Administratively-Prohibited",
    502: "Request-Not-Routable", 503: "Session-Context-Not-Found",
    504: "Session-Context-Not-Removable", 505: "Other-Proxy-Processing-Error",
    506: "Resources-Unavailable", 507: "Request-Initiated",
    508: "Multiple-Session-Selection-Unsupported",
}


@dataclass(frozen=True)
class Target:
    """Where and how to reach a gateway's RFC 5176 server."""

    host: str
    port: int
    secret: bytes


@dataclass(frozen=True)
class Result:
    acked: bool
    error_cause: int | None = None
    answered: bool = True

    def __str__(self) -> str:
        if not self.answered:
            return "no answer"
        if self.acked:
            return "ACK"
        if self.error_cause is None:
            return "NAK"
        name = ERROR_CAUSES.get(self.error_cause, "unknown")
        return f"NAK ({name}, {self.error_cause})"


ANSWERS = {
    protocol.DISCONNECT_REQUEST: (protocol.DISCONNECT_ACK, protocol.DISCONNECT_NAK),
    protocol.COA_REQUEST: (protocol.COA_ACK, protocol.COA_NAK),
}


def build_request(code: int, secret: bytes, attributes: dict[str, Any],
                  now: float | None = None) -> rp.CoAPacket:
    pkt = rp.CoAPacket(code=code, secret=secret, dict=protocol.dictionary())
    pkt.id = pkt.CreateID()
    pkt.add_message_authenticator()
    for name, value in attributes.items():
        pkt.AddAttribute(name, value)
    pkt.AddAttribute("Event-Timestamp", int(now if now is not None else time.time()))
    return pkt


def parse_reply(request: rp.CoAPacket, data: bytes) -> Result | None:
    """The result carried by ``data``, or None if it is not a valid reply
    to ``request`` (wrong id, authenticator or Message-Authenticator)."""
    try:
        protocol.check_header(data)
        reply = request.CreateReply(packet=data)
    except (protocol.MalformedPacket, rp.PacketError, ValueError, KeyError):
        return None
    if not request.VerifyReply(reply, data):
        return None
    # Only the answers to this request's code: a CoA-ACK does not say that
    # a Disconnect-Request was carried out.
    ack, nak = ANSWERS.get(request.code, (None, None))
    if reply.code == ack:
        return Result(acked=True)
    if reply.code == nak:
        cause = protocol.first(reply, "Error-Cause")
        code = None
        if cause is not None:
            raw = protocol.raw_values(reply, 101)
            code = int.from_bytes(raw[0], "big") if raw else None
        return Result(acked=False, error_cause=code)
    return None


def send(target: Target, code: int, attributes: dict[str, Any], *,
         timeout: float = 2.0, tries: int = 3) -> Result:
    """Send a Disconnect- or CoA-Request and wait for its answer.

    A retransmission repeats the same packet (same Identifier and
    authenticator) so the NAS can recognise it as a duplicate."""
    request = build_request(code, target.secret, attributes)
    data = request.RequestPacket()
    family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((target.host, target.port))
        for attempt in range(tries):
            sock.send(data)
            deadline = time.monotonic() + timeout * (2**attempt)
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    answer = sock.recv(4096)
                except TimeoutError:
                    break
                except ConnectionRefusedError:
                    # ICMP port unreachable: nobody listens; wait out the try.
                    time.sleep(min(left, 0.2))
                    continue
                result = parse_reply(request, answer)
                if result is not None:
                    return result
                log.warning("dae: dropped an invalid answer from %s:%d", target.host, target.port)
    return Result(acked=False, answered=False)


def disconnect(target: Target, attributes: dict[str, Any], **kwargs: Any) -> Result:
    return send(target, protocol.DISCONNECT_REQUEST, attributes, **kwargs)


def change(target: Target, attributes: dict[str, Any], **kwargs: Any) -> Result:
    return send(target, protocol.COA_REQUEST, attributes, **kwargs)

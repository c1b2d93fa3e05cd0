"""Dynamic Authorization client (RFC 5176): tell a gateway to cut a session
(Disconnect-Request) or change it (CoA-Request).

Every request carries Event-Timestamp (the NAS drops stale ones, section
6.3) and Message-Authenticator; the reply is checked (Identifier, Response
Authenticator, Message-Authenticator) before it is believed. Retransmission
is the shared loop of exchange.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import messages as m
from .exchange import Backoff, exchange

log = logging.getLogger("passerelle.radius")

DaeRequest = m.DisconnectRequest | m.CoARequest
_KINDS: dict[int, type[DaeRequest]] = {
    m.Code.DISCONNECT_REQUEST: m.DisconnectRequest, m.Code.COA_REQUEST: m.CoARequest}


@dataclass(frozen=True)
class Target:
    """Where and how to reach a gateway's RFC 5176 server."""

    host: str
    port: int
    secret: bytes = field(repr=False)
    gateway: str = ""  # its identifier: the key of its RadSec reverse path, if any


@dataclass(frozen=True)
class Result:
    acked: bool
    error_cause: m.ErrorCause | int | None = None  # an int: one RFC 5176 does not name
    answered: bool = True

    def __str__(self) -> str:
        if not self.answered:
            return "no answer"
        if self.acked:
            return "ACK"
        if self.error_cause is None:
            return "NAK"
        name = self.error_cause.label if isinstance(self.error_cause, m.ErrorCause) \
            else "unknown"
        return f"NAK ({name}, {int(self.error_cause)})"

    @property
    def words(self) -> str:
        """What happened, in plain words for an operator."""
        if not self.answered:
            return "the gateway did not answer"
        if self.acked:
            return "done"
        if isinstance(self.error_cause, m.ErrorCause):
            return f"refused: {self.error_cause.words}"
        if self.error_cause is None:
            return "refused, without a reason"
        return f"refused for reason {self.error_cause}, which RFC 5176 does not define"


def build_request(code: int, attributes: dict[str, Any], now: float | None = None) -> DaeRequest:
    """A Disconnect- or CoA-Request (``code``) from attribute names and values."""
    return _KINDS[code].of(attributes, event_timestamp=int(now if now is not None
                                                           else time.time()))


def result_of(reply: m.Reply) -> Result:
    match reply:
        case m.DisconnectAck() | m.CoAAck():
            return Result(acked=True)
        case m.DisconnectNak(error_cause=cause) | m.CoANak(error_cause=cause):
            return Result(acked=False, error_cause=cause)
    # decode_reply lets through only the answers to the code we sent.
    raise m.NotAnAnswer(f"{reply.CODE.label} does not answer a Disconnect- or CoA-Request")


def parse_reply(sent: bytes, data: bytes, secret: bytes) -> Result:
    """The result carried by ``data``, an answer to the datagram ``sent``;
    m.Drop when it is not a valid one (wrong Identifier, authenticator,
    Message-Authenticator, or an answer to the other kind of request)."""
    return result_of(m.decode_reply(data, secret, sent))


class ReversePaths(Protocol):
    """The boxes' open RadSec reverse connections (radsec.ReversePaths)."""

    def has(self, gateway: str) -> bool: ...

    def exchange(self, gateway: str, packet: bytes, timeout: float) -> bytes | None: ...


# Set by the RADIUS service when it listens for RadSec: this process's paths.
_reverse: ReversePaths | None = None
RADSEC_SECRET = b"radsec"  # RFC 6614 section 2.3


def use_reverse_paths(paths: ReversePaths | None) -> None:
    global _reverse
    _reverse = paths


def send(target: Target, code: int, attributes: dict[str, Any], *,
         timeout: float = 2.0, tries: int = 3) -> Result:
    """Send a Disconnect- or CoA-Request and wait for its answer (first
    wait ``timeout``, doubling, ``tries`` sends): over the gateway's RadSec
    reverse connection when it has one open (a box behind NAT), else UDP."""
    paths = _reverse
    if target.gateway and paths is not None and paths.has(target.gateway):
        result = _send_reverse(paths, target.gateway, code, attributes, timeout * tries)
        if result is not None:
            return result
        log.warning("dae: no answer from %s over its reverse connection; trying UDP",
                    target.gateway)
    sent = build_request(code, attributes).encode(target.secret)
    backoff = Backoff(initial=timeout, tries=tries, maximum=max(16.0, timeout))
    try:
        return exchange((target.host, target.port), sent,
                        lambda data: parse_reply(sent, data, target.secret), backoff,
                        on_drop=_log_drop)
    except TimeoutError:
        return Result(acked=False, answered=False)


def _send_reverse(paths: ReversePaths, gateway: str, code: int, attributes: dict[str, Any],
                  timeout: float) -> Result | None:
    # TLS delivers or fails the connection: one send, no retransmission
    # (RFC 6613: no retransmission over a reliable transport), with the TLS secret.
    sent = build_request(code, attributes).encode(RADSEC_SECRET)
    answer = paths.exchange(gateway, sent, timeout)
    if answer is None:
        return None
    try:
        return parse_reply(sent, answer, RADSEC_SECRET)
    except m.Drop as why:
        log.warning("dae: dropped an invalid answer from %s over RadSec: %s", gateway, why)
        return None


def _log_drop(address: tuple[str, int], why: str) -> None:
    log.warning("dae: dropped an invalid answer from %s:%d: %s", address[0], address[1], why)


def disconnect(target: Target, attributes: dict[str, Any], **kwargs: Any) -> Result:
    return send(target, m.Code.DISCONNECT_REQUEST, attributes, **kwargs)


def change(target: Target, attributes: dict[str, Any], **kwargs: Any) -> Result:
    return send(target, m.Code.COA_REQUEST, attributes, **kwargs)

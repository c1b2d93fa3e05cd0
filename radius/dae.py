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
from dataclasses import dataclass
from typing import Any

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
    secret: bytes


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


def send(target: Target, code: int, attributes: dict[str, Any], *,
         timeout: float = 2.0, tries: int = 3) -> Result:
    """Send a Disconnect- or CoA-Request and wait for its answer (first
    wait ``timeout``, doubling, ``tries`` sends)."""
    sent = build_request(code, attributes).encode(target.secret)
    backoff = Backoff(initial=timeout, tries=tries, maximum=max(16.0, timeout))
    try:
        return exchange((target.host, target.port), sent,
                        lambda data: parse_reply(sent, data, target.secret), backoff,
                        on_drop=_log_drop)
    except TimeoutError:
        return Result(acked=False, answered=False)


def _log_drop(address: tuple[str, int], why: str) -> None:
    log.warning("dae: dropped an invalid answer from %s:%d: %s", address[0], address[1], why)


def disconnect(target: Target, attributes: dict[str, Any], **kwargs: Any) -> Result:
    return send(target, m.Code.DISCONNECT_REQUEST, attributes, **kwargs)


def change(target: Target, attributes: dict[str, Any], **kwargs: Any) -> Result:
    return send(target, m.Code.COA_REQUEST, attributes, **kwargs)

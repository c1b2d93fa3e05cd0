"""Dynamic Authorization server (RFC 5176): Disconnect-Request and
CoA-Request from the centre, on UDP 3799.

``DaeCore`` is the whole protocol, pure: ``handle(datagram, source, now)``
returns a ``Decision``: ``Discard`` (no answer), ``Answer`` (a reply to
send) or ``Apply`` (a valid request: end or change the sessions it selects,
then ``answer(apply, count, now)`` gives the ACK, or the NAK 503 when no
session matched). ``DaeServer`` is the adapter: one thread reading one UDP
socket, the one executor of those decisions.

Rules, in the order they apply:

1. A source that is not a configured client: dropped, never answered.
2. A request already answered (the same bytes from the same client address,
   whatever the port: a retransmission, or a replay): the same reply again,
   never acted on twice. Replies are kept as long as the request's
   Event-Timestamp can pass rule 3, up to twice ``window`` after it arrived
   (a request stamped ``window`` ahead of our clock is current until then):
   RFC 5176 section 6.3 asks the duplicate window to cover the
   Event-Timestamp window, or a captured request replayed inside it would
   be carried out again.
3. Malformed, wrong code, bad Request Authenticator, Message-Authenticator
   missing or bad (RFC 5176 section 3.4), Event-Timestamp missing or more
   than ``window`` seconds from our clock: dropped (section 6.3: an answer
   would only help a forger).
4. NAS-Identifier / NAS-IP-Address / NAS-IPv6-Address not ours: NAK 403.
5. An attribute we do not act on (Session-Timeout in a Disconnect, anything
   unknown): NAK 401. A value that does not decode, or an attribute given
   twice: NAK 407.
6. No session selector (Acct-Session-Id, User-Name, Calling-Station-Id,
   Framed-IP-Address): NAK 402. A CoA with nothing to change: NAK 402.
7. No session matches: NAK 503. Otherwise ACK. A CoA is applied by the
   daemon whole or not at all (``Sessions.change``; RFC 5176 section 2.3).

Every reply carries Message-Authenticator (first), the request's
Proxy-States, and the Response Authenticator computed over the request's
authenticator (the message layer, radius/messages.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeAlias, assert_never

from passerelle.radius import mac
from passerelle.radius import messages as m
from passerelle.radius.codec import codec
from passerelle.radius.replies import ReplyCache

from .radclient import NasIdentity
from .udp_server import UdpServer

log = logging.getLogger("passerelle.gateway")

DaeRequest: TypeAlias = m.DisconnectRequest | m.CoARequest
_NAS_ATTRIBUTES = ("NAS-Identifier", "NAS-IP-Address", "NAS-IPv6-Address")


@dataclass(frozen=True)
class Selector:
    """Which sessions a request is about; every field given must match.
    ``calling_station_id`` is a MAC in the box's ``aa:bb:cc:dd:ee:ff`` form."""

    acct_session_id: str | None
    user_name: str | None
    calling_station_id: str | None
    framed_ip: str | None


@dataclass(frozen=True)
class CoaChange:
    session_timeout: int | None = None
    bandwidth_up: int | None = None  # bit/s
    bandwidth_down: int | None = None  # bit/s
    # The request's Event-Timestamp: the Session-Timeout runs from it, so a
    # late or replayed CoA cannot lengthen a session.
    event_timestamp: float | None = None


class Sessions(Protocol):
    """What the daemon provides: the number of sessions ended or changed."""

    def disconnect(self, selector: Selector) -> int: ...

    def change(self, selector: Selector, change: CoaChange) -> int: ...


# -- the decisions of the core -----------------------------------------------------


@dataclass(frozen=True)
class Discard:
    """Send nothing; ``why`` is for the log."""

    why: str


@dataclass(frozen=True)
class Answer:
    """Send ``datagram`` back; ``note`` (at ``level``) is for the log."""

    datagram: bytes = field(repr=False)
    note: str
    level: int = logging.INFO


@dataclass(frozen=True)
class Apply:
    """End (``change`` None) or change the sessions ``selector`` picks, then
    ask the core for the answer."""

    request: DaeRequest
    selector: Selector
    change: CoaChange | None
    source: tuple[str, int]
    key: bytes = field(repr=False)  # where the answer is kept (rule 2)


Decision = Discard | Answer | Apply


@dataclass(frozen=True)
class _Refusal:
    cause: m.ErrorCause
    why: str


class DaeCore:
    """The protocol, without sockets or sessions. Not thread-safe: one
    reader calls it."""

    def __init__(self, clients: Mapping[str, bytes], nas: NasIdentity, *,
                 window: int = 300) -> None:
        for ip, secret in clients.items():
            if not secret:
                raise ValueError(f"DAE client {ip}: the shared secret is empty")
        self.clients = {str(ipaddress.ip_address(ip)): secret for ip, secret in clients.items()}
        self.nas = nas
        self.nas_ipv4 = str(ipaddress.IPv4Address(nas.ipv4))
        self.window = window
        self.replies = ReplyCache(2 * window)

    def handle(self, data: bytes, source: tuple[str, int], now: float) -> Decision:
        """What to do with ``data`` received from ``source`` at ``now``."""
        ip, port = source
        secret = self.clients.get(ip)
        if secret is None:
            return Discard(f"{ip} is not a configured client")
        key = hashlib.sha256(ip.encode() + b"|" + data).digest()
        kept = self.replies.get(key, now)
        if kept is not None:
            return Answer(kept, f"{ip}:{port} sent a request already answered (a "
                                "retransmission or a replay): the same reply again")
        try:
            request = m.decode_request(data, secret)
        except m.Drop as why:
            return Discard(str(why))
        if not isinstance(request, (m.DisconnectRequest, m.CoARequest)):
            return Discard(f"a {request.CODE.label} is neither a Disconnect- nor a CoA-Request")
        if not request.message_authenticator:
            return Discard("no Message-Authenticator")
        stamp = request.event_timestamp
        if stamp is None:
            return Discard(next((p for p in request.problems if p.startswith("Event-Timestamp")),
                                "no Event-Timestamp"))
        if abs(now - stamp) > self.window:
            return Discard(f"Event-Timestamp {stamp} is {now - stamp:+.0f} s from now "
                           f"(window {self.window} s)")
        judged = self._judge(request)
        if isinstance(judged, _Refusal):
            reply = _nak(request, judged.cause).encode(secret, request)
            self.replies.put(key, reply, now)
            return Answer(reply, f"NAK {int(judged.cause)} to {_said(request, ip)}: "
                                 f"{judged.why}", logging.WARNING)
        selector, change = judged
        return Apply(request, selector, change, source, key)

    def answer(self, apply: Apply, count: int, now: float) -> Answer:
        """The reply to ``apply``'s request once ``count`` sessions were ended
        or changed: ACK, or NAK 503 when there were none. Kept for rule 2."""
        request = apply.request
        said = _said(request, apply.source[0])
        if count:
            ack = m.DisconnectAck() if isinstance(request, m.DisconnectRequest) else m.CoAAck()
            reply = ack.encode(self.clients[apply.source[0]], request)
            answer = Answer(reply, f"ACK to {said} ({count} session(s))")
        else:
            cause = m.ErrorCause.SESSION_CONTEXT_NOT_FOUND
            reply = _nak(request, cause).encode(self.clients[apply.source[0]], request)
            answer = Answer(reply, f"NAK {int(cause)} to {said}: no session matches "
                                   f"{apply.selector}", logging.WARNING)
        self.replies.put(apply.key, reply, now)
        return answer

    # -- rules 4 to 6: a NAK, or what to do -----------------------------------------

    def _judge(self, request: DaeRequest) -> _Refusal | tuple[Selector, CoaChange | None]:
        refused = self._identity(request)
        if refused is not None:
            return refused
        if request.other:
            names = ", ".join(dict.fromkeys(codec().name(key) for key, _ in request.other))
            return _Refusal(m.ErrorCause.UNSUPPORTED_ATTRIBUTE,
                            f"unsupported attribute(s) {names}")
        if request.problems:
            return _Refusal(m.ErrorCause.INVALID_ATTRIBUTE_VALUE, "; ".join(request.problems))
        calling = request.calling_station_id
        if calling is not None:
            try:
                calling = mac.parse(calling)
            except ValueError:
                return _Refusal(m.ErrorCause.INVALID_ATTRIBUTE_VALUE,
                                f"Calling-Station-Id {calling!r} is not a MAC address")
        selector = Selector(request.acct_session_id, request.user_name, calling,
                            request.framed_ip_address)
        if selector == Selector(None, None, None, None):
            return _Refusal(m.ErrorCause.MISSING_ATTRIBUTE,
                            "no session selector (Acct-Session-Id, User-Name, "
                            "Calling-Station-Id or Framed-IP-Address)")
        if isinstance(request, m.DisconnectRequest):
            return selector, None
        change = _change(request)
        if isinstance(change, _Refusal):
            return change
        return selector, change

    def _identity(self, request: DaeRequest) -> _Refusal | None:
        mismatch = m.ErrorCause.NAS_IDENTIFICATION_MISMATCH
        if request.nas_identifier is not None and request.nas_identifier != self.nas.identifier:
            return _Refusal(mismatch, f"NAS-Identifier {request.nas_identifier!r} is not "
                                      f"{self.nas.identifier!r}")
        if request.nas_ip_address is not None and request.nas_ip_address != self.nas_ipv4:
            return _Refusal(mismatch, f"NAS-IP-Address {request.nas_ip_address} is not "
                                      f"{self.nas_ipv4}")
        if request.nas_ipv6_address is not None:
            return _Refusal(mismatch, "NAS-IPv6-Address: this NAS has none")
        # An identity that does not decode, or is given twice, is not plainly ours.
        for problem in request.problems:
            if problem.startswith(_NAS_ATTRIBUTES):
                return _Refusal(mismatch, problem)
        return None


def _change(request: m.CoARequest) -> CoaChange | _Refusal:
    invalid = m.ErrorCause.INVALID_ATTRIBUTE_VALUE
    if request.session_timeout == 0:
        return _Refusal(invalid, "Session-Timeout 0")
    rates = []
    for bits, kbits, name in ((request.bandwidth_up, request.chilli_bandwidth_up, "up"),
                              (request.bandwidth_down, request.chilli_bandwidth_down, "down")):
        if bits is not None and kbits is not None and bits != kbits * 1000:
            return _Refusal(invalid, f"WISPr and ChilliSpot bandwidth {name} disagree")
        rate = bits if bits is not None else (kbits * 1000 if kbits is not None else None)
        if rate == 0:
            return _Refusal(invalid, f"bandwidth {name} 0")
        rates.append(rate)
    change = CoaChange(session_timeout=request.session_timeout, bandwidth_up=rates[0],
                       bandwidth_down=rates[1])
    if change == CoaChange():
        return _Refusal(m.ErrorCause.MISSING_ATTRIBUTE, "CoA-Request with nothing to change")
    return replace(change, event_timestamp=request.event_timestamp)


def _nak(request: DaeRequest, cause: m.ErrorCause) -> m.DisconnectNak | m.CoANak:
    if isinstance(request, m.DisconnectRequest):
        return m.DisconnectNak(error_cause=cause)
    return m.CoANak(error_cause=cause)


def _said(request: DaeRequest, ip: str) -> str:
    return f"{request.CODE.label} id {request.identifier} from {ip}"


class DaeServer:
    """The UDP adapter: one thread, one socket, the core in between, and the
    daemon's sessions acted on."""

    def __init__(self, listen: str, port: int, clients: Mapping[str, bytes], nas: NasIdentity,
                 sessions: Sessions, *, window: int = 300,
                 clock: Callable[[], float] = time.time) -> None:
        self.core = DaeCore(clients, nas, window=window)
        self.sessions = sessions
        self.clock = clock
        self.udp = UdpServer("dae", listen, port,
                             lambda data, source: self.respond(data, source, self.clock()))

    @property
    def listen(self) -> str:
        return self.udp.listen

    @property
    def port(self) -> int:
        return self.udp.port

    def respond(self, data: bytes, source: tuple[str, int], now: float) -> bytes | None:
        """Carry out the core's decision on ``data``: the reply to send, or None."""
        decision = self.core.handle(data, source, now)
        match decision:
            case Discard(why=why):
                log.warning("dae: dropped a request from %s:%d: %s", source[0], source[1], why)
                return None
            case Answer():
                answer = decision
            case Apply(selector=selector, change=change):
                count = self.sessions.disconnect(selector) if change is None \
                    else self.sessions.change(selector, change)
                answer = self.core.answer(decision, count, now)
            case _:
                assert_never(decision)
        log.log(answer.level, "dae: %s", answer.note)
        return answer.datagram

    def start(self) -> None:
        self.udp.start()
        log.info("dae: listening on %s:%d", self.listen, self.port)

    def stop(self) -> None:
        self.udp.stop()

"""Dynamic Authorization server (RFC 5176): Disconnect-Request and
CoA-Request from the centre, on UDP 3799.

``DaeCore`` is the whole protocol, without a socket: a datagram, its source
and ``now`` in, the reply datagram (or None: silently dropped) out.
``DaeServer`` is the thin adapter, a thread reading one UDP socket.

Rules, in the order they apply (PROTOCOLS.md, "Dynamic Authorization"):

1. A source that is not a configured client: dropped, never answered.
2. A retransmission (same source, bytes) within ``duplicate_window``: the
   cached reply again, not processed twice.
3. Malformed, wrong code, bad Request Authenticator, Message-Authenticator
   missing or bad, Event-Timestamp missing or outside ``window``: dropped
   (RFC 5176 section 6.3: no answer helps a forger).
4. NAS-Identifier / NAS-IP-Address / NAS-IPv6-Address not ours: NAK 403.
5. An attribute we do not act on (Session-Timeout in a Disconnect,
   anything unknown): NAK 401. A value that does not parse: NAK 407.
6. No session selector (Acct-Session-Id, User-Name, Calling-Station-Id,
   Framed-IP-Address): NAK 402. A CoA with nothing to change: NAK 402.
7. No session matches: NAK 503. Otherwise ACK. A CoA is applied by the
   daemon whole or not at all (``Sessions.change``).

Every reply carries Message-Authenticator (first) and the Response
Authenticator computed over the request's authenticator.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from pyrad import packet as rp

from passerelle.radius import protocol

from .nft import normal_mac
from .radclient import NasIdentity

log = logging.getLogger("passerelle.gateway")

# Error-Cause values (RFC 5176 section 3.5).
UNSUPPORTED_ATTRIBUTE = 401
MISSING_ATTRIBUTE = 402
NAS_IDENTIFICATION_MISMATCH = 403
INVALID_ATTRIBUTE_VALUE = 407
SESSION_CONTEXT_NOT_FOUND = 503
RESOURCES_UNAVAILABLE = 506

# Attribute codes.
USER_NAME, NAS_IP_ADDRESS, FRAMED_IP_ADDRESS, SESSION_TIMEOUT = 1, 4, 8, 27
CALLING_STATION_ID, NAS_IDENTIFIER, PROXY_STATE = 31, 32, 33
ACCT_SESSION_ID, EVENT_TIMESTAMP, MESSAGE_AUTHENTICATOR = 44, 55, 80
NAS_IPV6_ADDRESS = 95
WISPR_UP, WISPR_DOWN = (14122, 7), (14122, 8)
CHILLI_UP, CHILLI_DOWN = (14559, 4), (14559, 5)  # kbit/s

COMMON: set[object] = {
    USER_NAME, NAS_IP_ADDRESS, FRAMED_IP_ADDRESS, CALLING_STATION_ID, NAS_IDENTIFIER,
    PROXY_STATE, ACCT_SESSION_ID, EVENT_TIMESTAMP, MESSAGE_AUTHENTICATOR,
    NAS_IPV6_ADDRESS}
CHANGES: set[object] = {SESSION_TIMEOUT, WISPR_UP, WISPR_DOWN, CHILLI_UP, CHILLI_DOWN}
ALLOWED: dict[int, set[object]] = {
    protocol.DISCONNECT_REQUEST: COMMON,
    protocol.COA_REQUEST: COMMON | CHANGES,
}
NAK_OF = {protocol.DISCONNECT_REQUEST: protocol.DISCONNECT_NAK,
          protocol.COA_REQUEST: protocol.COA_NAK}
NAME_OF = {protocol.DISCONNECT_REQUEST: "Disconnect-Request",
           protocol.COA_REQUEST: "CoA-Request"}


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


@dataclass(frozen=True)
class Outcome:
    ack: bool
    error_cause: int | None = None


ACK = Outcome(True)


def NAK(error_cause: int) -> Outcome:
    return Outcome(False, error_cause)


class Sessions(Protocol):
    """What the daemon provides."""

    def disconnect(self, selector: Selector) -> int: ...

    def change(self, selector: Selector, change: CoaChange) -> int: ...


class Drop(Exception):
    """Not answered; the message says why, for the log."""


class Refuse(Exception):
    """Answered with a NAK carrying ``cause``."""

    def __init__(self, cause: int, why: str) -> None:
        super().__init__(why)
        self.cause = cause


class DuplicateCache:
    """Replies by request, kept ``window`` seconds (RFC 5176 section 2.3)."""

    def __init__(self, window: float, size: int = 4096) -> None:
        self.window = window
        self.size = size
        self._entries: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()

    def get(self, key: bytes, now: float) -> bytes | None:
        while self._entries:
            first, (expires, _) = next(iter(self._entries.items()))
            if expires > now and len(self._entries) <= self.size:
                break
            del self._entries[first]
        entry = self._entries.get(key)
        return entry[1] if entry else None

    def put(self, key: bytes, reply: bytes, now: float) -> None:
        self._entries[key] = (now + self.window, reply)


class DaeCore:
    """The protocol, without sockets. Not thread-safe: one reader calls it."""

    def __init__(self, clients: Mapping[str, bytes], nas: NasIdentity, sessions: Sessions, *,
                 window: int = 300, duplicate_window: float = 30.0) -> None:
        for ip, secret in clients.items():
            if not secret:
                raise ValueError(f"DAE client {ip}: the shared secret is empty")
        self.clients = {str(ipaddress.ip_address(ip)): secret for ip, secret in clients.items()}
        self.nas = nas
        self.sessions = sessions
        self.window = window
        self.duplicates = DuplicateCache(duplicate_window)
        protocol.dictionary()  # parse it now, not while the first request waits

    def handle(self, data: bytes, addr: tuple[str, int], now: float) -> bytes | None:
        """The reply to send back to ``addr``, or None to drop ``data``."""
        ip, port = addr[0], addr[1]
        secret = self.clients.get(ip)
        if secret is None:
            log.warning("dae: dropped a datagram from %s:%d, not a configured client", ip, port)
            return None
        key = hashlib.sha256(f"{ip}|{port}|".encode() + data).digest()
        cached = self.duplicates.get(key, now)
        if cached is not None:
            log.info("dae: retransmission from %s:%d: sent the cached reply", ip, port)
            return cached
        try:
            request = self._admit(data, secret, now)
        except Drop as why:
            log.warning("dae: dropped a request from %s:%d: %s", ip, port, why)
            return None
        name = NAME_OF[request.code]
        try:
            outcome = self._apply(request)
        except Refuse as refused:
            log.warning("dae: NAK %d to %s id %d from %s: %s", refused.cause, name,
                        request.id, ip, refused)
            outcome = NAK(refused.cause)
        else:
            log.info("dae: ACK to %s id %d from %s", name, request.id, ip)
        reply = self._reply(request, outcome)
        self.duplicates.put(key, reply, now)
        return reply

    # -- checks that end in silence ----------------------------------------------

    def _admit(self, data: bytes, secret: bytes, now: float) -> rp.Packet:
        try:
            code, _, length = protocol.check_header(data)
        except protocol.MalformedPacket as exc:
            raise Drop(f"malformed: {exc}") from exc
        if code not in ALLOWED:
            raise Drop(f"packet code {code} is neither Disconnect- nor CoA-Request")
        data = data[:length]
        digest = hashlib.md5(data[:4] + bytes(16) + data[20:] + secret).digest()
        if not hmac.compare_digest(digest, data[4:20]):
            raise Drop("bad Request Authenticator (wrong secret?)")
        try:
            request = protocol.decode_request(data, secret)
        except protocol.MalformedPacket as exc:
            raise Drop(f"malformed: {exc}") from exc
        if not protocol.has_message_authenticator(request):
            raise Drop("no Message-Authenticator")
        if not request.verify_message_authenticator():
            raise Drop("bad Message-Authenticator")
        stamps = dict.get(request, EVENT_TIMESTAMP, [])
        if not stamps:
            raise Drop("no Event-Timestamp")
        if len(stamps[0]) != 4:
            raise Drop("Event-Timestamp is not 4 octets")
        stamp = int.from_bytes(stamps[0], "big")
        if abs(now - stamp) > self.window:
            raise Drop(f"Event-Timestamp {stamp} is {now - stamp:+.0f} s from now "
                       f"(window {self.window} s)")
        return request

    # -- checks that end in a NAK, then the action ----------------------------------

    def _apply(self, request: rp.Packet) -> Outcome:
        self._check_identity(request)
        unknown = [k for k in dict.keys(request) if k not in ALLOWED[request.code]]
        if unknown:
            raise Refuse(UNSUPPORTED_ATTRIBUTE, f"unsupported attribute(s) {_names(unknown)}")
        selector = _selector(request)
        if selector == Selector(None, None, None, None):
            raise Refuse(MISSING_ATTRIBUTE, "no session selector (Acct-Session-Id, User-Name, "
                                            "Calling-Station-Id or Framed-IP-Address)")
        if request.code == protocol.DISCONNECT_REQUEST:
            count = self.sessions.disconnect(selector)
        else:
            change = _change(request)
            if change == CoaChange():
                raise Refuse(MISSING_ATTRIBUTE, "CoA-Request with nothing to change")
            count = self.sessions.change(selector, change)
        if count == 0:
            raise Refuse(SESSION_CONTEXT_NOT_FOUND, f"no session matches {selector}")
        return ACK

    def _check_identity(self, request: rp.Packet) -> None:
        for raw in dict.get(request, NAS_IDENTIFIER, []):
            if raw != self.nas.identifier.encode():
                raise Refuse(NAS_IDENTIFICATION_MISMATCH,
                             f"NAS-Identifier {raw!r} is not {self.nas.identifier!r}")
        for raw in dict.get(request, NAS_IP_ADDRESS, []):
            if raw != ipaddress.IPv4Address(self.nas.ipv4).packed:
                shown = str(ipaddress.IPv4Address(raw)) if len(raw) == 4 else repr(raw)
                raise Refuse(NAS_IDENTIFICATION_MISMATCH,
                             f"NAS-IP-Address {shown} is not {self.nas.ipv4}")
        if dict.get(request, NAS_IPV6_ADDRESS):
            raise Refuse(NAS_IDENTIFICATION_MISMATCH, "NAS-IPv6-Address: this NAS has none")

    def _reply(self, request: rp.Packet, outcome: Outcome) -> bytes:
        reply = request.CreateReply()
        if not outcome.ack:
            reply.code = NAK_OF[request.code]
            assert outcome.error_cause is not None
            reply.AddAttribute("Error-Cause", outcome.error_cause)
        reply.message_authenticator = True
        data: bytes = reply.ReplyPacket()
        return data


def _names(keys: list[object]) -> str:
    names = []
    for key in keys:
        try:
            names.append(str(protocol.dictionary().attrindex.GetBackward(key)))
        except KeyError:
            names.append(str(key))
    return ", ".join(names)


def _one(request: rp.Packet, key: object, name: str) -> bytes | None:
    values = dict.get(request, key, [])
    if len(values) > 1:
        raise Refuse(INVALID_ATTRIBUTE_VALUE, f"{name} given {len(values)} times")
    return values[0] if values else None


def _text(request: rp.Packet, key: int, name: str) -> str | None:
    raw = _one(request, key, name)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refuse(INVALID_ATTRIBUTE_VALUE, f"{name} is not UTF-8") from exc


def _u32(request: rp.Packet, key: object, name: str) -> int | None:
    raw = _one(request, key, name)
    if raw is None:
        return None
    if len(raw) != 4:
        raise Refuse(INVALID_ATTRIBUTE_VALUE, f"{name} is {len(raw)} octets, not 4")
    return int.from_bytes(raw, "big")


def _selector(request: rp.Packet) -> Selector:
    calling = _text(request, CALLING_STATION_ID, "Calling-Station-Id")
    if calling is not None:
        try:
            calling = normal_mac(calling)
        except ValueError as exc:
            raise Refuse(INVALID_ATTRIBUTE_VALUE, f"Calling-Station-Id {calling!r} is not "
                                                  "a MAC address") from exc
    framed = _one(request, FRAMED_IP_ADDRESS, "Framed-IP-Address")
    if framed is not None and len(framed) != 4:
        raise Refuse(INVALID_ATTRIBUTE_VALUE, "Framed-IP-Address is not 4 octets")
    return Selector(
        acct_session_id=_text(request, ACCT_SESSION_ID, "Acct-Session-Id"),
        user_name=_text(request, USER_NAME, "User-Name"),
        calling_station_id=calling,
        framed_ip=str(ipaddress.IPv4Address(framed)) if framed is not None else None,
    )


def _change(request: rp.Packet) -> CoaChange:
    timeout = _u32(request, SESSION_TIMEOUT, "Session-Timeout")
    if timeout == 0:
        raise Refuse(INVALID_ATTRIBUTE_VALUE, "Session-Timeout 0")
    rates = []
    for wispr, chilli, name in ((WISPR_UP, CHILLI_UP, "up"), (WISPR_DOWN, CHILLI_DOWN, "down")):
        bits = _u32(request, wispr, f"WISPr-Bandwidth-Max-{name}")
        kbits = _u32(request, chilli, f"ChilliSpot-Bandwidth-Max-{name}")
        if bits is not None and kbits is not None and bits != kbits * 1000:
            raise Refuse(INVALID_ATTRIBUTE_VALUE, f"WISPr and ChilliSpot bandwidth {name} "
                                                  "disagree")
        rate = bits if bits is not None else (kbits * 1000 if kbits is not None else None)
        if rate == 0:
            raise Refuse(INVALID_ATTRIBUTE_VALUE, f"bandwidth {name} 0")
        rates.append(rate)
    return CoaChange(session_timeout=timeout, bandwidth_up=rates[0], bandwidth_down=rates[1])


class DaeServer:
    """The UDP adapter: one thread, one socket, the core in between."""

    def __init__(self, listen: str, port: int, clients: Mapping[str, bytes], nas: NasIdentity,
                 sessions: Sessions, *, window: int = 300,
                 clock: Callable[[], float] = time.time) -> None:
        self.core = DaeCore(clients, nas, sessions, window=window)
        self.listen = listen
        self.port = port
        self.clock = clock
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.listen else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.listen, self.port))
        except OSError:
            sock.close()
            raise
        sock.settimeout(0.2)  # how soon stop() is noticed
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dae-server", daemon=True)
        self._thread.start()
        log.info("dae: listening on %s:%d", self.listen, self.port)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(protocol.MAX_LENGTH + 1)
            except TimeoutError:
                continue
            except OSError as exc:
                log.warning("dae: receive failed: %s", exc)
                continue
            try:
                reply = self.core.handle(data, (addr[0], addr[1]), self.clock())
            except Exception:  # the packet loop is the boundary: log, keep serving
                log.exception("dae: request from %s:%d failed; not answered", addr[0], addr[1])
                continue
            if reply is not None:
                try:
                    sock.sendto(reply, addr)
                except OSError as exc:
                    log.warning("dae: cannot answer %s:%d: %s", addr[0], addr[1], exc)

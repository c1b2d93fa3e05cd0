"""The box's RADIUS client: Access-Request and Accounting-Request to the
centre, with retransmission, failover and a dead time.

Synchronous and thread-safe: each exchange has its own UDP socket (so its
own source port and Identifier space), and the only shared state, which
server is dead until when, sits behind a lock.

Replies are believed only after their Response Authenticator and
Message-Authenticator check out (constant-time comparisons). A reply to an
Access-Request without Message-Authenticator is dropped unless the server is
configured ``require_message_authenticator=False`` (BlastRADIUS,
CVE-2024-3596; Debian 12's FreeRADIUS 3.2.1 does not send one by default).

Retransmission follows RFC 5080 section 2.2.1: the first wait is
``timeout``, each next one doubles (plus or minus 10 % jitter) up to
``max_timeout``, ``tries`` sends in all, and a pure retransmission repeats
the very same datagram (same Identifier, same authenticator) so the server
can recognise the duplicate. A server that does not answer is dead for
``dead_time`` seconds and the next one is tried; an accounting record sent
to another server is a new packet (new Identifier, fresh Acct-Delay-Time).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pyrad import packet as rp

from passerelle.radius import protocol
from passerelle.radius.exchange import Backoff

from .acct import AccountingRecord, calling_station_id

log = logging.getLogger("passerelle.gateway")

MAX_PASSWORD = 128  # RFC 2865 section 5.2


@dataclass(frozen=True)
class RadiusServer:
    host: str
    secret: bytes
    auth_port: int = 1812
    acct_port: int = 1813
    require_message_authenticator: bool = True

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError(f"RADIUS server {self.host}: the shared secret is empty")


@dataclass(frozen=True)
class NasIdentity:
    identifier: str
    ipv4: str
    called_station_id: str = ""
    operator_name: str = ""


@dataclass(frozen=True)
class AuthResult:
    accepted: bool
    reply_message: str = ""
    session_timeout: int | None = None
    idle_timeout: int | None = None
    interim_interval: int | None = None
    class_: bytes | None = None
    bandwidth_up: int | None = None  # bit/s
    bandwidth_down: int | None = None  # bit/s
    wifi_key: str | None = None  # Tunnel-Password, decrypted
    vlan: int | None = None  # Tunnel-Private-Group-Id


class NoServer(Exception):
    """No configured server answered (all dead, or every try timed out)."""


AUTH_TRIES = 3


class _Dropped(Exception):
    """A datagram that is not a valid answer to our request: ignore it."""


class RadiusClient:
    def __init__(self, servers: Sequence[RadiusServer], nas: NasIdentity, *,
                 timeout: float = 2.0, tries: int = 5, max_timeout: float = 16.0,
                 dead_time: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        if not servers:
            raise ValueError("at least one RADIUS server is needed")
        if tries < 1 or timeout <= 0 or max_timeout < timeout:
            raise ValueError("need tries >= 1 and 0 < timeout <= max_timeout")
        ipaddress.IPv4Address(nas.ipv4)
        self.servers = tuple(servers)
        self.nas = nas
        self.backoff = Backoff(timeout, tries, max_timeout)
        # A person waits at the portal for a check-in: at most three sends per
        # server (2 + 4 + 8 s by default) before the next server is asked.
        # Accounting waits in the spool and takes every try.
        self.auth_backoff = Backoff(timeout, min(tries, AUTH_TRIES), max_timeout)
        self.dead_time = dead_time
        self.clock = clock
        self.wall_clock = wall_clock
        self._lock = threading.Lock()
        self._dead_until: dict[RadiusServer, float] = {}
        self._warned_no_ma: set[RadiusServer] = set()

    # -- the two operations -------------------------------------------------

    def authenticate(self, login: str, password: str, *, mac: str, ipv4: str,
                     chap: bool = False) -> AuthResult:
        """Ask the centre whether ``login`` may check in. Raises NoServer if
        no server answers; ValueError for a password RADIUS cannot carry
        (over 128 octets) or a MAC or IPv4 address that is not one."""
        if len(password.encode()) > MAX_PASSWORD:
            raise ValueError(f"a RADIUS password is at most {MAX_PASSWORD} octets")
        calling = calling_station_id(mac)
        ipaddress.IPv4Address(ipv4)
        for server in self._alive():
            request = self._access_request(server, login, password, calling, ipv4, chap)
            try:
                reply = self._exchange(server, server.auth_port, request, self.auth_backoff)
            except TimeoutError:
                self._mark_dead(server, "authentication")
                continue
            self._mark_alive(server)
            return _auth_result(request, reply, server)
        raise NoServer("no RADIUS server answered the Access-Request")

    def account(self, record: AccountingRecord) -> None:
        """Send one Accounting-Request until a server answers it."""
        for server in self._alive():
            request = self._accounting_request(server, record)
            try:
                self._exchange(server, server.acct_port, request)
            except TimeoutError:
                self._mark_dead(server, "accounting")
                continue
            self._mark_alive(server)
            return
        raise NoServer(f"no RADIUS server answered the accounting {record.status} of "
                       f"session {record.session_id!r}")

    # -- dead time ------------------------------------------------------------

    def _alive(self) -> list[RadiusServer]:
        now = self.clock()
        with self._lock:
            return [s for s in self.servers if self._dead_until.get(s, 0.0) <= now]

    def _mark_dead(self, server: RadiusServer, what: str) -> None:
        with self._lock:
            self._dead_until[server] = self.clock() + self.dead_time
        log.warning("RADIUS server %s did not answer %s after %d tries; dead for %.0f s",
                    server.host, what, self.backoff.tries, self.dead_time)

    def _mark_alive(self, server: RadiusServer) -> None:
        with self._lock:
            self._dead_until.pop(server, None)

    # -- packets ----------------------------------------------------------------

    def _access_request(self, server: RadiusServer, login: str, password: str,
                        calling: str, ipv4: str, chap: bool) -> rp.AuthPacket:
        pkt = rp.AuthPacket(secret=server.secret, dict=protocol.dictionary())
        pkt.id = secrets.randbelow(256)
        pkt.authenticator = secrets.token_bytes(16)
        pkt.add_message_authenticator()
        pkt.AddAttribute("User-Name", login)
        if chap:
            challenge = secrets.token_bytes(16)
            chap_id = secrets.randbelow(256).to_bytes(1, "big")
            digest = hashlib.md5(chap_id + password.encode() + challenge).digest()
            pkt.AddAttribute("CHAP-Password", chap_id + digest)
            pkt.AddAttribute("CHAP-Challenge", challenge)
        else:
            pkt.AddAttribute("User-Password", pkt.PwCrypt(password))
        self._add_nas(pkt)
        pkt.AddAttribute("Calling-Station-Id", calling)
        pkt.AddAttribute("Framed-IP-Address", ipv4)
        pkt.AddAttribute("Service-Type", "Login-User")
        pkt.AddAttribute("NAS-Port-Type", "Wireless-802.11")
        return pkt

    def _accounting_request(self, server: RadiusServer,
                            record: AccountingRecord) -> rp.AcctPacket:
        pkt = rp.AcctPacket(secret=server.secret, dict=protocol.dictionary())
        pkt.id = secrets.randbelow(256)
        for name, value in record.to_attributes(self.wall_clock()):
            pkt.AddAttribute(name, value)
        self._add_nas(pkt)
        pkt.AddAttribute("NAS-Port-Type", "Wireless-802.11")
        return pkt

    def _add_nas(self, pkt: rp.Packet) -> None:
        pkt.AddAttribute("NAS-Identifier", self.nas.identifier)
        pkt.AddAttribute("NAS-IP-Address", self.nas.ipv4)
        if self.nas.called_station_id:
            pkt.AddAttribute("Called-Station-Id", self.nas.called_station_id)
        if self.nas.operator_name:
            pkt.AddAttribute("Operator-Name", self.nas.operator_name)

    # -- one exchange with one server --------------------------------------------

    def _exchange(self, server: RadiusServer, port: int, request: rp.Packet,
                  backoff: Backoff | None = None) -> rp.Packet:
        """Send ``request`` (retransmitting it unchanged) until a valid reply
        arrives; TimeoutError after the last try."""
        data = request.RequestPacket()
        family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((server.host, port))
            for attempt, wait in enumerate((backoff or self.backoff).waits()):
                if attempt:
                    log.info("retransmitting id %d to %s:%d (try %d)", request.id,
                             server.host, port, attempt + 1)
                try:
                    sock.send(data)
                except OSError as exc:  # e.g. no route: same as no answer
                    log.warning("cannot send to %s:%d: %s", server.host, port, exc)
                deadline = time.monotonic() + wait
                while (left := deadline - time.monotonic()) > 0:
                    sock.settimeout(left)
                    try:
                        answer = sock.recv(protocol.MAX_LENGTH + 1)
                    except TimeoutError:
                        break
                    except ConnectionRefusedError:
                        # ICMP port unreachable: nothing listens; wait out the try.
                        time.sleep(min(left, 0.1))
                        continue
                    try:
                        return self._check_reply(server, port, request, answer)
                    except _Dropped as why:
                        self._log_drop(server, port, request, str(why))
        raise TimeoutError(f"{server.host}:{port} did not answer")

    def _log_drop(self, server: RadiusServer, port: int, request: rp.Packet, why: str) -> None:
        if why.startswith("no Message-Authenticator"):
            # One line per server is enough to tell the operator what to change.
            with self._lock:
                first = server not in self._warned_no_ma
                self._warned_no_ma.add(server)
            if not first:
                log.debug("dropped a reply from %s:%d: %s", server.host, port, why)
                return
            why += ("; set require_message_authenticator = false for this server only if "
                    "it cannot send one (this warning is logged once)")
        log.warning("dropped a reply from %s:%d to id %d: %s", server.host, port,
                    request.id, why)

    @staticmethod
    def _check_reply(server: RadiusServer, port: int, request: rp.Packet,
                     data: bytes) -> rp.Packet:
        try:
            code, ident, length = protocol.check_header(data)
        except protocol.MalformedPacket as exc:
            raise _Dropped(str(exc)) from exc
        data = data[:length]
        if ident != request.id:
            raise _Dropped(f"Identifier {ident} does not match")
        expected = {
            protocol.ACCESS_REQUEST: (protocol.ACCESS_ACCEPT, protocol.ACCESS_REJECT,
                                      rp.AccessChallenge),
            protocol.ACCOUNTING_REQUEST: (protocol.ACCOUNTING_RESPONSE,),
        }[request.code]
        if code not in expected:
            raise _Dropped(f"unexpected code {code}")
        digest = hashlib.md5(data[:4] + request.authenticator + data[20:]
                             + server.secret).digest()
        if not hmac.compare_digest(digest, data[4:20]):
            raise _Dropped("bad Response Authenticator (wrong secret?)")
        try:
            reply = request.CreateReply(packet=data)
        except (rp.PacketError, ValueError, KeyError, IndexError, struct.error) as exc:
            raise _Dropped(f"cannot decode: {exc}") from exc
        if protocol.has_message_authenticator(reply):
            try:
                valid = reply.verify_message_authenticator(
                    secret=server.secret, original_authenticator=request.authenticator,
                    original_code=request.code)
            except (ValueError, struct.error):
                valid = False
            if not valid:
                raise _Dropped("bad Message-Authenticator")
        elif request.code == protocol.ACCESS_REQUEST and server.require_message_authenticator:
            raise _Dropped("no Message-Authenticator (BlastRADIUS protection)")
        proxy_sent = protocol.raw_values(request, protocol.PROXY_STATE)
        if protocol.raw_values(reply, protocol.PROXY_STATE) != proxy_sent:
            raise _Dropped("Proxy-State we did not send")
        return reply


# -- reading an answer --------------------------------------------------------


def _u32(raw: bytes) -> int | None:
    return int.from_bytes(raw, "big") if len(raw) == 4 else None


def _int(reply: rp.Packet, key: Any, name: str) -> int | None:
    values = dict.get(reply, key) or []
    if not values:
        return None
    value = _u32(values[0])
    if value is None:
        log.warning("ignored %s of %d octets in a reply", name, len(values[0]))
    return value


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def tunnel_password(request: rp.Packet, raw: bytes, secret: bytes) -> str:
    """Decrypt a Tunnel-Password (RFC 2868 section 3.5) sent in answer to
    ``request``; ValueError if it is not a valid one."""
    # Tag byte, then salt and 16n octets; an untagged value is 2 + 16n.
    body = raw if len(raw) % 16 == 2 else raw[1:]
    if len(body) < 18 or (len(body) - 2) % 16 or not body[0] & 0x80:
        raise ValueError(f"Tunnel-Password of {len(raw)} octets is malformed")
    salt, rest = body[:2], body[2:]
    clear = b""
    last = request.authenticator + salt
    while rest:
        block, rest = rest[:16], rest[16:]
        key = hashlib.md5(secret + last).digest()
        clear += bytes(a ^ b for a, b in zip(block, key, strict=True))
        last = block
    length = clear[0]
    if length > len(clear) - 1:
        raise ValueError("Tunnel-Password length byte is past its end (wrong secret?)")
    return clear[1:1 + length].decode("utf-8")


def _auth_result(request: rp.Packet, reply: rp.Packet, server: RadiusServer) -> AuthResult:
    messages = [_text(v) for v in dict.get(reply, 18, [])]
    message = "".join(messages)
    if reply.code != protocol.ACCESS_ACCEPT:
        if reply.code == rp.AccessChallenge:
            log.warning("Access-Challenge from %s: not supported, taken as a reject",
                        server.host)
        return AuthResult(accepted=False, reply_message=message)
    classes = dict.get(reply, 25, [])
    wifi_key = None
    for raw in dict.get(reply, 69, []):
        try:
            wifi_key = tunnel_password(request, raw, server.secret)
            break
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("ignored a Tunnel-Password from %s: %s", server.host, exc)
    vlan = None
    for raw in dict.get(reply, 81, []):
        text = raw[1:] if raw and raw[0] <= 0x1F else raw
        try:
            vlan = int(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            log.warning("ignored Tunnel-Private-Group-Id %r from %s", raw, server.host)
            continue
        if not 1 <= vlan <= 4094:
            log.warning("ignored VLAN %d from %s", vlan, server.host)
            vlan = None
            continue
        break
    return AuthResult(
        accepted=True,
        reply_message=message,
        session_timeout=_int(reply, 27, "Session-Timeout"),
        idle_timeout=_int(reply, 28, "Idle-Timeout"),
        interim_interval=_int(reply, 85, "Acct-Interim-Interval"),
        class_=classes[0] if classes else None,
        bandwidth_up=_int(reply, (14122, 7), "WISPr-Bandwidth-Max-Up"),
        bandwidth_down=_int(reply, (14122, 8), "WISPr-Bandwidth-Max-Down"),
        wifi_key=wifi_key,
        vlan=vlan,
    )

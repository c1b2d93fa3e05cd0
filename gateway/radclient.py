"""The box's RADIUS client: Access-Request and Accounting-Request to the
centre, with retransmission, failover and a dead time.

Synchronous and thread-safe: each exchange has its own UDP socket (so its
own source port and Identifier space), and the only shared state, which
server is dead until when, sits behind a lock.

Requests are built and replies read by the shared message layer
(radius/messages.py): a reply is believed only after its Identifier, code,
Response Authenticator and Message-Authenticator check out (constant-time
comparisons) and it carries back no Proxy-State we did not send. A reply to
an Access-Request without Message-Authenticator is dropped unless the
server is configured ``require_message_authenticator=False`` (BlastRADIUS,
CVE-2024-3596; Debian 12's FreeRADIUS 3.2.1 does not send one by default).

Retransmission is the shared loop (radius/exchange.py, RFC 5080 section
2.2.1): the first wait is ``timeout``, each next one doubles (plus or minus
10 % jitter) up to ``max_timeout``, ``tries`` sends in all, and a pure
retransmission repeats the very same datagram (same Identifier, same
authenticator) so the server can recognise the duplicate. A server that does
not answer is dead for ``dead_time`` seconds and the next one is tried; an
accounting record sent to another server is a new packet (new Identifier,
fresh Acct-Delay-Time).

With ``probe=True`` (RFC 5997, what the box's configuration turns on) a dead
server gets no request until a Status-Server to it is answered: once its
dead time is over, the first request that finds it sends one Status-Server
(one wait of ``timeout``) and, if it stays silent, it is dead for another
``dead_time``. With ``checkin_budget`` a check-in waits at most that long in
all, shared among the servers still alive (each gets its share, two sends
within it), so a silent centre costs a person at most one budget, and
nothing at all while every server is dead (NoServer at once: the portal
says the centre cannot be reached).

A ``prober`` replaces that Status-Server when the server's port cannot
tell: a RadSec box's servers are radsecproxy on the loopback, one per
central node, and radsecproxy answers a Status-Server itself whatever its
node does; the prober asks the node (``prober(server, timeout)``: whether
it answered within ``timeout`` seconds).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from passerelle.radius import mac as macs
from passerelle.radius import messages as m
from passerelle.radius.codec import MAX_PASSWORD, codec
from passerelle.radius.exchange import Backoff, exchange

from . import metrics
from .acct import AccountingRecord
from .peers import RadiusServer

log = logging.getLogger("passerelle.gateway")

_LOGIN_USER = codec().spec("Service-Type").values["Login-User"]
_WIRELESS = codec().spec("NAS-Port-Type").values["Wireless-802.11"]
_NO_MA = "no Message-Authenticator (BlastRADIUS protection)"


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
    credit_left: int | None = None  # Passerelle-Credit-Left: seconds, at the Accept


# Whether the node behind ``server`` answers, within the float's seconds.
Prober = Callable[[RadiusServer, float], bool]


class NoServer(Exception):
    """No configured server answered (all dead, or every try timed out)."""


AUTH_TRIES = 3


class _Unsigned(m.Drop):
    """An answer to an Access-Request without Message-Authenticator."""


class RadiusClient:
    def __init__(self, servers: Sequence[RadiusServer], nas: NasIdentity, *,
                 timeout: float = 2.0, tries: int = 5, max_timeout: float = 16.0,
                 dead_time: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, probe: bool = False,
                 checkin_budget: float | None = None, prober: Prober | None = None) -> None:
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
        self.status_backoff = Backoff(timeout, 2, max_timeout)
        self.dead_time = dead_time
        self.probe = probe
        self.prober = prober
        if checkin_budget is not None and checkin_budget <= 0:
            raise ValueError("checkin_budget must be positive")
        self.checkin_budget = checkin_budget
        self.clock = clock
        self.wall_clock = wall_clock
        self._lock = threading.Lock()
        self._dead_until: dict[RadiusServer, float] = {}
        self._warned_no_ma: set[RadiusServer] = set()

    # -- the two operations -------------------------------------------------

    def authenticate(self, login: str, password: str, *, mac: str, ipv4: str,
                     chap: bool = False, key_id: int | None = None) -> AuthResult:
        """Ask the centre whether ``login`` may check in. Raises NoServer if
        no server answers; ValueError for a password RADIUS cannot carry
        (over 128 octets) or a MAC or IPv4 address that is not one.
        ``key_id``: a one-tap check-in, the person's key the box found for
        the station as the proof (Passerelle-Key-Id), no password sent."""
        if len(password.encode()) > MAX_PASSWORD:
            raise ValueError(f"a RADIUS password is at most {MAX_PASSWORD} octets")
        calling = macs.calling_station_id(mac)
        ipaddress.IPv4Address(ipv4)
        alive = self._alive()
        deadline = time.monotonic() + (self.checkin_budget or 0.0)
        for n, server in enumerate(alive):
            backoff = self.auth_backoff
            if self.checkin_budget is not None:
                share = (deadline - time.monotonic()) / (len(alive) - n)
                if share <= 0:
                    break
                backoff = _within(share)
            if not self._revived(server, backoff):
                continue
            credential = None if key_id is not None else \
                m.Chap.answer(password) if chap else m.Password(password)
            request = m.AccessRequest(
                user_name=login, credential=credential, calling_station_id=calling,
                framed_ip_address=ipv4, service_type=_LOGIN_USER, nas_port_type=_WIRELESS,
                nas_identifier=self.nas.identifier, nas_ip_address=self.nas.ipv4,
                called_station_id=self.nas.called_station_id or None,
                operator_name=self.nas.operator_name or None,
                other=() if key_id is None else (codec().raw("Passerelle-Key-Id", key_id),))
            try:
                reply = self._send(server, server.auth_port, request.encode(server.secret),
                                   backoff)
            except TimeoutError:
                self._mark_dead(server, "authentication")
                continue
            self._mark_alive(server)
            return _auth_result(reply, server)
        raise NoServer("no RADIUS server answered the Access-Request")

    def account(self, record: AccountingRecord) -> None:
        """Send one Accounting-Request until a server answers it."""
        for server in self._alive():
            if not self._revived(server, Backoff(self.backoff.initial, 1,
                                                 self.backoff.initial)):
                continue
            request = self._accounting_request(record)
            try:
                self._send(server, server.acct_port, request.encode(server.secret),
                           self.backoff)
            except TimeoutError:
                self._mark_dead(server, "accounting")
                continue
            self._mark_alive(server)
            return
        raise NoServer(f"no RADIUS server answered the accounting {record.status.label} of "
                       f"session {record.session_id!r}")

    def status(self, attributes: dict[str, Any]) -> int:
        """A Status-Server (RFC 5997) with the box's identity and
        ``attributes`` to every server, alive or dead (a heartbeat, and a
        probe of a dead one); how many answered. Two sends each at most."""
        answered = 0
        for server in self.servers:
            request = m.StatusServer.of(attributes, nas_identifier=self.nas.identifier,
                                        nas_ip_address=self.nas.ipv4)
            try:
                self._send(server, server.auth_port, request.encode(server.secret),
                           self.status_backoff)
            except TimeoutError:
                log.info("RADIUS server %s did not answer a Status-Server", server.host)
                continue
            answered += 1
        return answered

    # -- dead time ------------------------------------------------------------

    def _alive(self) -> list[RadiusServer]:
        now = self.clock()
        with self._lock:
            return [s for s in self.servers if self._dead_until.get(s, 0.0) <= now]

    def _mark_dead(self, server: RadiusServer, what: str) -> None:
        with self._lock:
            self._dead_until[server] = self.clock() + self.dead_time
        log.warning("RADIUS server %s did not answer %s after %d tries; dead for %.0f s",
                    _name(server), what, self.backoff.tries, self.dead_time)

    def _revived(self, server: RadiusServer, backoff: Backoff) -> bool:
        """Whether ``server`` may get a request: yes unless probing is on and
        it was dead; then a Status-Server must be answered first (RFC 5997
        section 4). Meanwhile it counts as dead, so other threads skip it."""
        if not self.probe:
            return True
        with self._lock:
            if server not in self._dead_until:
                return True
            self._dead_until[server] = self.clock() + self.dead_time
        if not self._answers_probe(server, backoff.initial, backoff.maximum):
            log.warning("RADIUS server %s is still silent (Status-Server); dead for %.0f s",
                        _name(server), self.dead_time)
            return False
        log.info("RADIUS server %s answered a Status-Server: alive again", _name(server))
        self._mark_alive(server)
        return True

    def _answers_probe(self, server: RadiusServer, wait: float, maximum: float) -> bool:
        """One Status-Server, to the node itself through the prober if there
        is one, else to the server's port; one wait of ``wait`` seconds."""
        if self.prober is not None:
            return self.prober(server, wait)
        probe = m.StatusServer(nas_identifier=self.nas.identifier, nas_ip_address=self.nas.ipv4)
        try:
            self._send(server, server.auth_port, probe.encode(server.secret),
                       Backoff(wait, 1, maximum))
        except TimeoutError:
            return False
        return True

    def _mark_alive(self, server: RadiusServer) -> None:
        with self._lock:
            self._dead_until.pop(server, None)

    # -- packets ----------------------------------------------------------------

    def _accounting_request(self, record: AccountingRecord) -> m.AccountingRequest:
        request = record.request(self.wall_clock())
        operator = (codec().raw("Operator-Name", self.nas.operator_name),) \
            if self.nas.operator_name else ()
        return dataclasses.replace(
            request, nas_identifier=self.nas.identifier, nas_ip_address=self.nas.ipv4,
            called_station_id=self.nas.called_station_id or None, nas_port_type=_WIRELESS,
            other=request.other + operator)

    # -- one exchange with one server --------------------------------------------

    def _send(self, server: RadiusServer, port: int, sent: bytes,
              backoff: Backoff) -> m.Reply:
        """Send ``sent`` (retransmitting it unchanged) until a valid reply
        arrives; TimeoutError after the last try."""
        ident = sent[1]

        def check(answer: bytes) -> m.Reply:
            reply = m.decode_reply(answer, server.secret, sent)
            if (sent[0] == m.Code.ACCESS_REQUEST and not reply.message_authenticator
                    and server.require_message_authenticator):
                raise _Unsigned(_NO_MA)
            return reply

        def retry(attempt: int) -> None:
            log.info("retransmitting id %d to %s:%d (try %d)", ident, server.host, port,
                     attempt)

        def dropped(address: tuple[str, int], why: str) -> None:
            self._log_drop(server, port, ident, why)

        with metrics.radius_exchange(server.host, port, sent):
            return exchange((server.host, port), sent, check, backoff, on_drop=dropped,
                            on_retry=retry)

    def _log_drop(self, server: RadiusServer, port: int, ident: int, why: str) -> None:
        if why == _NO_MA:
            # One line per server is enough to tell the operator what to change.
            with self._lock:
                first = server not in self._warned_no_ma
                self._warned_no_ma.add(server)
            if not first:
                log.debug("dropped a reply from %s:%d: %s", server.host, port, why)
                return
            why += ("; set require_message_authenticator = false for this server only if "
                    "it cannot send one (this warning is logged once)")
        log.warning("dropped a reply from %s:%d to id %d: %s", server.host, port, ident, why)


def _name(server: RadiusServer) -> str:
    # Several servers on one host (a RadSec box's proxies): the port tells them apart.
    if server.auth_port == server.acct_port:
        return f"{server.host}:{server.auth_port}"
    return f"{server.host} ({server.auth_port}/{server.acct_port})"


def _within(budget: float) -> Backoff:
    """Two sends whose waits add up to at most ``budget`` (jitter included)."""
    first = budget / 3.3
    return Backoff(first, 2, 2.2 * first)


# -- reading an answer --------------------------------------------------------


def _auth_result(reply: m.Reply, server: RadiusServer) -> AuthResult:
    for problem in reply.problems:
        log.warning("in a reply from %s: %s", server.host, problem)
    match reply:
        case m.AccessAccept():
            return AuthResult(
                accepted=True,
                reply_message=reply.reply_message or "",
                session_timeout=reply.session_timeout,
                idle_timeout=reply.idle_timeout,
                interim_interval=reply.acct_interim_interval,
                class_=reply.class_,
                bandwidth_up=reply.bandwidth_up,
                bandwidth_down=reply.bandwidth_down,
                wifi_key=reply.tunnel_passwords[0] if reply.tunnel_passwords else None,
                vlan=reply.vlan,
                credit_left=reply.credit_left,
            )
        case m.AccessReject(reply_message=text):
            return AuthResult(accepted=False, reply_message=text or "")
        case m.AccessChallenge(reply_message=text):
            log.warning("Access-Challenge from %s: not supported, taken as a reject",
                        server.host)
            return AuthResult(accepted=False, reply_message=text or "")
    # decode_reply lets through only the answers to an Access-Request.
    raise m.NotAnAnswer(f"{reply.CODE.label} does not answer an Access-Request")

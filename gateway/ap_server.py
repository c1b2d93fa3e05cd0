"""The access points' RADIUS server, on the box's LAN: a joining station's
personal Wi-Fi key, found by ``keyfinder`` among the keys the box holds.

``ApCore`` is the protocol without a socket: a datagram, its source and
``now`` in, the reply datagram (or None: dropped) out. ``ApServer`` is the
thin adapter, one thread reading one UDP socket.

Rules, in the order they apply:

1. The shared secret is the one of the configured access point whose
   address or subnet holds the source (the most specific wins); any other
   source is dropped, never answered.
2. A retransmission (same source, port and octets) within 30 s gets the
   cached reply (RFC 5080 section 2.2.2), not a second look-up.
3. A datagram that is not a valid Access-Request or Accounting-Request, or
   an Access-Request without a valid Message-Authenticator, is dropped (RFC
   3579 section 3.2; the BlastRADIUS rule): one log line says why.
4. The station's MAC is Calling-Station-Id (or User-Name, hostapd's 12 hex
   digits); the BSSID and SSID come from Called-Station-Id
   ``AA-BB-CC-DD-EE-FF:SSID``. No usable MAC: Access-Reject.
5. ``keyfinder.find`` decides; the Accept is written in the access point's
   vendor dialect, Message-Authenticator first (hostapd >= 2.11 requires it).
   The station is then held by that access point (``ap_dae.Stations``).
6. Accounting-Request (on the same port): the access point's Start, Interim
   and Stop for an association are tied to the person and to their open
   session on the box, if any (``ap_dae.SessionFinder``), and answered; the
   access point's counters stay on the association and in the log, never in
   a second accounting record: the box's own counters already count that
   traffic, and charge it once. Accounting-On/Off: the access point
   restarted, its associations are gone. A Start, Interim or Stop without a
   station MAC is dropped (nothing to record, so no answer: RFC 2866 4.1).
7. When a session ends (``release``), the access points configured with
   ``disconnect = true`` that hold its stations get an RFC 5176
   Disconnect-Request on their ``dae_port``, sent by ``ap_dae.Disconnector``.

Keys come from a ``KeySource`` (the daemon). Their PMKs for the network's
SSID are derived once, when a key first appears (``refresh``), never per
request; a key that disappears (rotated, revoked, session ended) takes its
PMK and the MAC bindings to it along.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, assert_never

from passerelle.radius import messages as m
from passerelle.radius.codec import MIN_SECRET
from passerelle.radius.exchange import Backoff
from passerelle.radius.mac import parse as normal_mac
from passerelle.radius.replies import ReplyCache

from . import ap_dae, joins, keyfinder, metrics, psk
from .peers import AccessPoint, Vendor
from .sessions import Session
from .udp_server import UdpServer

log = logging.getLogger("passerelle.gateway")

MAX_BINDINGS = 65536


@dataclass(frozen=True)
class ApKey:
    """A key the box holds, as its source gives it (no PMK yet)."""

    person: str
    key_id: str
    passphrase: str
    vlan: int | None = None
    mac: str | None = None  # the MAC the person checked in with, aa:bb:cc:dd:ee:ff
    allowed: bool = True  # whether the person may join at this site

    def __repr__(self) -> str:
        return f"ApKey({self.person!r}, {self.key_id!r}, vlan={self.vlan})"


class KeySource(Protocol):
    """What the daemon provides: every key the box holds now. The same
    sequence object again when nothing changed (the ring then does no work;
    it is taken every second and may hold thousands of keys), so a source
    never changes a sequence it has given."""

    def keys_for_ap(self) -> Sequence[ApKey]: ...


class KeyRing:
    """The held keys with their PMKs for ``ssid``, each derived once."""

    def __init__(self, ssid: str) -> None:
        self.ssid = ssid
        self._held: dict[tuple[str, str], tuple[keyfinder.HeldKey, bool]] = {}
        self.held = keyfinder.Held.of(())
        self._taken: Sequence[ApKey] | None = None

    def update(self, keys: Sequence[ApKey]) -> set[str]:
        """Take the source's keys now; the key ids that went away. The
        index is rebuilt only when something changed; the sequence taken
        last time is not read again (KeySource)."""
        if keys is self._taken:
            return set()
        held: dict[tuple[str, str], tuple[keyfinder.HeldKey, bool]] = {}
        changed = False
        for key in keys:
            ident = (key.key_id, key.passphrase)
            known = self._held.get(ident)
            if known is not None and (known[0].person, known[0].vlan, known[0].mac) == \
                    (key.person, key.vlan, key.mac):
                held[ident] = (known[0], key.allowed)
                changed = changed or known[1] != key.allowed
                continue
            try:
                pmk = known[0].pmk if known is not None else psk.pmk(key.passphrase, self.ssid)
            except ValueError as exc:
                log.warning("wifi: key %s of %s is not usable: %s", key.key_id, key.person, exc)
                continue
            held[ident] = (keyfinder.HeldKey(key.person, key.key_id, key.passphrase, pmk,
                                             key.vlan, key.mac), key.allowed)
            changed = True
        gone = {ident[0] for ident in self._held} - {ident[0] for ident in held}
        if changed or held.keys() != self._held.keys():
            self.held = keyfinder.Held.of(
                (k for k, _ in held.values()),
                {k.person for k, allowed in held.values() if allowed})
        self._held = held
        self._taken = keys  # taken whole: an update that failed is done again
        return gone

    def keys(self) -> list[keyfinder.HeldKey]:
        return [key for key, _ in self._held.values()]


@dataclass(frozen=True)
class Station:
    """Who asks, from the request's attributes."""

    mac: str
    bssid: str | None
    ssid: str | None


def station_of(request: m.AccessRequest | m.AccountingRequest) -> Station:
    """ValueError when no MAC address identifies the station."""
    raw = request.calling_station_id or request.user_name
    if raw is None:
        raise ValueError("neither Calling-Station-Id nor User-Name")
    try:
        mac = normal_mac(raw)
    except ValueError:
        raise ValueError(f"station {raw!r} is not a MAC address") from None
    bssid = ssid = None
    called = request.called_station_id
    if called:
        head, sep, tail = called[:17], called[17:18], called[18:]
        try:
            bssid = normal_mac(head)
        except ValueError:
            bssid = None
        if sep == ":":
            ssid = tail
    return Station(mac, bssid, ssid)


def accept_for(vendor: Vendor, decision: keyfinder.Accept) -> m.AccessAccept | None:
    """The Access-Accept in ``vendor``'s dialect; None when the dialect
    cannot carry the decision (several keys for a one-key vendor)."""
    keys = decision.keys
    if vendor is Vendor.HOSTAPD:
        return m.AccessAccept(tunnel_passwords=tuple(k.passphrase for k in keys),
                              vlan=decision.vlan)
    if len(keys) != 1:
        return None
    key = keys[0]
    match vendor:
        case Vendor.CISCO:
            mode = "hex" if len(key.passphrase) == 64 else "ascii"
            return m.AccessAccept(cisco_avpairs=(f"psk-mode={mode}", f"psk={key.passphrase}"),
                                  vlan=decision.vlan)
        case Vendor.ARUBA:
            return m.AccessAccept(aruba_mpsk_passphrase=key.passphrase, vlan=decision.vlan)
        case Vendor.MIKROTIK:
            return m.AccessAccept(mikrotik_wireless_psk=key.passphrase, vlan=decision.vlan)
        case Vendor.RUCKUS:
            return m.AccessAccept(ruckus_dpsk=key.pmk, vlan=decision.vlan)
        case _:
            assert_never(vendor)


class ApCore:
    """The protocol, without sockets. Not thread-safe: ApServer holds a lock around it."""

    def __init__(self, access_points: Sequence[AccessPoint], source: KeySource, *, ssid: str,
                 candidates_max: int = 0, duplicate_window: float = 30.0,
                 sessions: ap_dae.SessionFinder | None = None) -> None:
        for ap in access_points:
            if len(ap.secret) < MIN_SECRET:
                raise ValueError(f"access point {ap.network}: the shared secret has fewer "
                                 f"than {MIN_SECRET} octets")
        # Most specific first, so a single AP inside a listed subnet keeps its own secret.
        self.access_points = sorted(access_points, key=lambda ap: -ap.network.prefixlen)
        self.source = source
        self.ring = KeyRing(ssid)
        self.ssid = ssid
        self.candidates_max = candidates_max
        self.duplicates = ReplyCache(duplicate_window)
        self.bindings: OrderedDict[str, str] = OrderedDict()  # station MAC -> key id
        self.sessions = sessions
        self.stations = ap_dae.Stations()
        # Station MAC -> whose key the box told its access point (one key found):
        # who a station on the private network is, for the portal (joins.py).
        self.identities: OrderedDict[str, joins.Identity] = OrderedDict()

    def refresh(self) -> None:
        """Take the source's keys; derive the PMKs of new ones."""
        gone = self.ring.update(self.source.keys_for_ap())
        if gone:
            for mac in [mac for mac, key_id in self.bindings.items() if key_id in gone]:
                del self.bindings[mac]

    def access_point(self, ip: str) -> AccessPoint | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for ap in self.access_points:
            if addr.version == ap.network.version and addr in ap.network:
                return ap
        return None

    def handle(self, data: bytes, addr: tuple[str, int], now: float) -> bytes | None:
        """The reply to send back to ``addr``, or None to drop ``data``."""
        ip, port = addr[0], addr[1]
        ap = self.access_point(ip)
        if ap is None:
            log.warning("wifi: dropped a datagram from %s:%d, not a configured access point",
                        ip, port)
            return None
        key = hashlib.sha256(f"{ip}|{port}|".encode() + data).digest()
        cached = self.duplicates.get(key, now)
        if cached is not None:
            log.info("wifi: retransmission from %s:%d: sent the cached reply", ip, port)
            return cached
        try:
            request = m.decode_request(data, ap.secret)
        except m.Drop as why:
            log.warning("wifi: dropped a request from %s:%d: %s", ip, port, why)
            return None
        if isinstance(request, m.AccountingRequest):
            answer = self._account(request, ip, now)
            if answer is None:
                return None
            datagram = answer.encode(ap.secret, request)
            self.duplicates.put(key, datagram, now)
            return datagram
        if not isinstance(request, m.AccessRequest):
            log.warning("wifi: dropped a %s from %s:%d: only Access-Request and "
                        "Accounting-Request are served here", request.CODE.label, ip, port)
            return None
        if not request.message_authenticator:
            log.warning("wifi: dropped an Access-Request from %s:%d: no "
                        "Message-Authenticator (RFC 3579 section 3.2)", ip, port)
            return None
        reply = self._answer(request, ap, ip, now)
        datagram = reply.encode(ap.secret, request)
        self.duplicates.put(key, datagram, now)
        return datagram

    def _answer(self, request: m.AccessRequest, ap: AccessPoint, ip: str,
                now: float) -> m.AccessAccept | m.AccessReject:
        try:
            station = station_of(request)
        except ValueError as exc:
            log.warning("wifi: Access-Reject to %s: %s", ip, exc)
            return m.AccessReject()
        join = keyfinder.Join(station=station.mac, bssid=station.bssid, ssid=station.ssid,
                              anonce=request.anonce, eapol=request.eapol_key)
        cap = self.candidates_max if ap.vendor is Vendor.HOSTAPD else 0
        decision = keyfinder.find(join, self.ring.held, self.bindings, ssid=self.ssid,
                                  candidates_max=cap)
        match decision:
            case keyfinder.Reject(reason=reason):
                log.info("wifi: Access-Reject to %s (%s) for %s: %s", ip, ap.vendor,
                         station.mac, reason)
                return m.AccessReject()
            case keyfinder.Accept():
                accept = accept_for(ap.vendor, decision)
                if accept is None:
                    log.info("wifi: Access-Reject to %s (%s) for %s: %d candidate keys and "
                             "this vendor takes one", ip, ap.vendor, station.mac,
                             len(decision.keys))
                    return m.AccessReject()
                if decision.learn:
                    self._learn(station.mac, decision.keys[0].key_id)
                if decision.person is not None:
                    self._identify(station.mac, decision, now)
                self.stations.joined(ip, request.calling_station_id or station.mac, station.mac,
                                     decision.person, request.nas_identifier,
                                     request.nas_ip_address, now)
                log.info("wifi: Access-Accept to %s (%s) for %s: %s by %s, VLAN %s", ip,
                         ap.vendor, station.mac, decision.person or
                         f"{len(decision.keys)} candidates", decision.how, decision.vlan)
                return accept
            case _:
                assert_never(decision)

    def _account(self, request: m.AccountingRequest, ip: str,
                 now: float) -> m.AccountingResponse | None:
        """An access point's accounting: tie, record, answer (rule 6)."""
        status = request.status
        if status in (m.AcctStatus.ACCOUNTING_ON, m.AcctStatus.ACCOUNTING_OFF):
            gone = self.stations.restarted(ip)
            log.info("wifi: %s from access point %s: it restarted, %d association(s) it held "
                     "are gone", m.AcctStatus(status).label, ip, gone)
            return m.AccountingResponse()
        if status not in (m.AcctStatus.START, m.AcctStatus.INTERIM_UPDATE, m.AcctStatus.STOP):
            log.warning("wifi: dropped an Accounting-Request from %s: Acct-Status-Type %d is "
                        "not one an access point sends", ip, int(status))
            return None
        label = m.AcctStatus(status).label
        try:
            station = station_of(request)
        except ValueError as exc:
            log.warning("wifi: dropped an Accounting %s from %s: %s", label, ip, exc)
            return None
        person = self._person_of(station.mac)
        tie = None
        if self.sessions is not None:
            tie = self.sessions.session_of(person or request.user_name, station.mac)
        session_id, login = tie if tie is not None else (None, None)
        held = self.stations.accounted(ip, request, station.mac, person or login, session_id,
                                       now)
        if held is None:
            log.info("wifi: Accounting Stop from %s for %s (Acct-Session-Id %s) is not about "
                     "the association held (%s): nothing to end", ip, station.mac,
                     request.session_id, self._where(station.mac))
            return m.AccountingResponse()
        log.info("wifi: Accounting %s from %s for %s of %s, Acct-Session-Id %s, session %s: "
                 "%d s, %d octets in, %d out (the box's own counters charge this traffic)",
                 label, ip, station.mac, held.person or "an unknown person",
                 held.acct_session_id, held.session_id or "none open", held.session_time,
                 held.input_octets, held.output_octets)
        return m.AccountingResponse()

    def _where(self, mac: str) -> str:
        held = self.stations.get(mac)
        if held is None:
            return "none"
        return f"access point {held.ap}, Acct-Session-Id {held.acct_session_id}"

    def _person_of(self, mac: str) -> str | None:
        """Whose key opened ``mac``: the Accept the box gave, a binding, the
        check-in MAC of a held key."""
        known = self.stations.get(mac)
        if known is not None and known.person is not None:
            return known.person
        bound = self.bindings.get(mac)
        key = self.ring.held.by_id.get(bound) if bound is not None else None
        key = key or self.ring.held.by_mac.get(mac)
        return key.person if key is not None else None

    def releases(self, ended: ap_dae.Ended, now: float) -> list[ap_dae.Order]:
        """The Disconnect-Requests for the stations ``ended`` takes along,
        to the access points whose setting says so (rule 7)."""
        orders = []
        for held in self.stations.to_release(ended):
            ap = self.access_point(held.ap)
            if ap is None or not ap.disconnect:
                log.info("wifi: session %s ended; access point %s keeps %s (no disconnect "
                         "set for it)", ended.session_id, held.ap, held.mac)
                continue
            orders.append(ap_dae.order(held, ap.dae_port, ap.secret, now))
        return orders

    def _identify(self, mac: str, decision: keyfinder.Accept, now: float) -> None:
        assert decision.person is not None
        self.identities[mac] = joins.Identity(decision.person, decision.keys[0].key_id,
                                              decision.vlan, now)
        self.identities.move_to_end(mac)
        while len(self.identities) > MAX_BINDINGS:
            self.identities.popitem(last=False)

    def identity(self, mac: str) -> joins.Identity | None:
        """Whose key opened ``mac`` at its last join; ``current`` says
        whether the box still holds that key for this site (rotated,
        revoked, or its person no longer allowed: not)."""
        known = self.identities.get(mac)
        if known is None:
            return None
        return replace(known, current=known.key_id in self.ring.held.by_id)

    def _learn(self, mac: str, key_id: str) -> None:
        self.bindings[mac] = key_id
        self.bindings.move_to_end(mac)
        while len(self.bindings) > MAX_BINDINGS:
            self.bindings.popitem(last=False)


class ApServer:
    """The UDP adapter: one thread, one socket, the core in between. The
    held keys are taken from the source every ``refresh_interval`` seconds."""

    def __init__(self, listen: str, port: int, access_points: Sequence[AccessPoint],
                 source: KeySource, *, ssid: str, candidates_max: int = 0,
                 refresh_interval: float = 1.0,
                 clock: Callable[[], float] = time.time,
                 sessions: ap_dae.SessionFinder | None = None,
                 backoff: Backoff = ap_dae.BACKOFF) -> None:
        self.core = ApCore(access_points, source, ssid=ssid, candidates_max=candidates_max,
                           sessions=sessions)
        # The core is read by the Disconnector's thread too. Lock order: this
        # lock, then the daemon's (session_of); the daemon never waits for it.
        self.lock = threading.Lock()
        self.disconnector = ap_dae.Disconnector(self._orders, backoff)
        self.refresh_interval = refresh_interval
        self.clock = clock
        self.udp = UdpServer("wifi", listen, port, self._answer, tick=self._tick)
        self._refreshed = float("-inf")

    @property
    def listen(self) -> str:
        return self.udp.listen

    @property
    def port(self) -> int:
        return self.udp.port

    def start(self) -> None:
        self._refresh()
        self.udp.start()
        self.disconnector.start()
        log.info("wifi: access points' RADIUS on %s:%d for SSID %r", self.listen, self.port,
                 self.core.ssid)

    def stop(self) -> None:
        self.disconnector.stop()
        self.udp.stop()

    def keys_changed(self) -> None:
        """Take the held keys again before the next request, not at the
        next refresh: a station may join the moment its owner checked in."""
        self._refreshed = float("-inf")

    def release(self, session: Session, still_open: Iterable[Session]) -> None:
        """``ap_dae.Releaser``: queue the Disconnect-Requests ``session`` needs."""
        self.disconnector.release(ap_dae.ended(session, still_open))

    def _orders(self, ended: ap_dae.Ended) -> list[ap_dae.Order]:
        with self.lock:
            return self.core.releases(ended, self.clock())

    def identity(self, mac: str) -> joins.Identity | None:
        """``joins.Identities``: whose key opened ``mac`` (the keys taken first)."""
        self._tick()
        with self.lock:
            return self.core.identity(mac)

    def identities(self, since: float) -> dict[str, joins.Identity]:
        """The stations the box found a key for at a join after ``since``, as
        ``identity`` gives each (newest first: the table is in join order)."""
        self._tick()
        with self.lock:
            found = {}
            for mac in reversed(self.core.identities):
                known = self.core.identity(mac)
                if known is None or known.joined < since:
                    break
                found[mac] = known
            return found

    def _refresh(self) -> None:
        self._refreshed = time.monotonic()
        with self.lock:
            self.core.refresh()

    def _tick(self) -> None:
        if time.monotonic() - self._refreshed >= self.refresh_interval:
            try:
                self._refresh()
            except Exception:  # the loop is the boundary: log, keep the old keys
                log.exception("wifi: taking the held keys failed")

    def _answer(self, data: bytes, source: tuple[str, int]) -> bytes | None:
        self._tick()  # keys changed while the socket waited are taken first
        with self.lock:
            return metrics.ap_answered(self.core.handle(data, source, self.clock()))

"""Which access point holds which station of the private SSID, and the
RFC 5176 Disconnect-Request that lets the station go when its session ends.

``Stations`` is the pure core: what the access points tell the box (the
Access-Accepts it gave them, their Accounting Start, Interim, Stop, On and
Off) goes in with ``now``; asked which associations an ended session takes
along (``to_release``), it answers from what it holds. ``order`` writes the
Disconnect-Request for one of them. ``Disconnector`` is the adapter: one
thread that sends each request with the shared retransmit loop
(radius/exchange.py) and logs the answer, ACK or NAK with its Error-Cause in
words. The box never waits for an access point: the executor only queues.

Rules, in the order they apply:

1. A station (its MAC) is held by one access point at a time: the last one
   that asked for it (Access-Request) or accounted for it (Start, Interim).
2. A Stop ends the association only when it comes from the access point
   that holds it, with its Acct-Session-Id when one is known: a late Stop
   from the access point a station roamed away from changes nothing.
3. Accounting-On or -Off from an access point: it (re)started, so every
   association it held is gone.
4. When a session ends, the associations it takes along are those of its
   MAC, and those of its person when that person has no other session open
   on the box (a person's second device keeps the private network).
5. The Disconnect-Request names the station as the access point spelled it
   (Calling-Station-Id), its Acct-Session-Id when an Accounting-Start gave
   one, the access point's own NAS-Identifier and NAS-IP-Address as it sent
   them (hostapd refuses a request naming another NAS with a NAK 403), and
   Event-Timestamp. No User-Name: hostapd compares it with the station's
   802.1X identity, and a station of a personal-key network has none.
6. Associations nobody mentioned for ``max_age`` seconds are forgotten, and
   no more than ``capacity`` are held (the oldest news goes first).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from passerelle.radius import messages as m
from passerelle.radius.exchange import Backoff, exchange

from .sessions import Session

log = logging.getLogger("passerelle.gateway")

CAPACITY = 65536
MAX_AGE = 2 * 86400.0  # an access point reports at least every interim interval
# About 1 + 2 + 4 + 8 + 8 s before giving up: a station let go late is still let go.
BACKOFF = Backoff(initial=1.0, tries=5, maximum=8.0)


@dataclass(frozen=True)
class Association:
    """One station as the access point that holds it reports it."""

    mac: str  # aa:bb:cc:dd:ee:ff
    ap: str  # the address the access point's requests come from
    calling_station_id: str  # the station as the access point spells it
    person: str | None = None  # whose key opened it, when known
    session_id: str | None = None  # the box's session it is tied to, when one is open
    nas_identifier: str | None = None
    nas_ip_address: str | None = None
    acct_session_id: str | None = None  # the access point's, from its Accounting-Start
    started: float | None = None  # its Accounting-Start
    seen: float = 0.0
    # The access point's own counters for the association (its last Interim or Stop).
    session_time: int = 0
    input_octets: int = 0
    output_octets: int = 0
    stopped: float | None = None


@dataclass(frozen=True)
class Ended:
    """A session that ended, as the executor hands it over."""

    session_id: str
    login: str
    mac: str
    still_open: frozenset[str]  # the logins with a session still open on the box


@dataclass(frozen=True)
class Order:
    """One Disconnect-Request to send to an access point."""

    address: tuple[str, int]
    secret: bytes
    request: m.DisconnectRequest
    association: Association

    def __repr__(self) -> str:  # never the secret in a log line
        return f"Order({self.address}, {self.association.mac})"


class Stations:
    """The associations the access points reported. Not thread-safe: the
    adapter holds one lock around it."""

    def __init__(self, *, capacity: int = CAPACITY, max_age: float = MAX_AGE) -> None:
        self.capacity = capacity
        self.max_age = max_age
        self._held: OrderedDict[str, Association] = OrderedDict()

    def get(self, mac: str) -> Association | None:
        return self._held.get(mac)

    def all(self) -> list[Association]:
        return list(self._held.values())

    def _put(self, association: Association, now: float) -> Association:
        self._held[association.mac] = association
        self._held.move_to_end(association.mac)
        while self._held and (len(self._held) > self.capacity
                              or next(iter(self._held.values())).seen < now - self.max_age):
            self._held.popitem(last=False)
        return association

    def joined(self, ap: str, calling_station_id: str, mac: str, person: str | None,
               nas_identifier: str | None, nas_ip_address: str | None,
               now: float) -> Association:
        """The box answered ``ap``'s Access-Request for ``mac`` with an Accept."""
        known = self._held.get(mac)
        if known is not None and known.ap == ap and known.stopped is None:
            return self._put(replace(known, person=person or known.person, seen=now), now)
        return self._put(Association(mac, ap, calling_station_id, person,
                                     nas_identifier=nas_identifier,
                                     nas_ip_address=nas_ip_address, seen=now), now)

    def accounted(self, ap: str, request: m.AccountingRequest, mac: str,
                  person: str | None, session_id: str | None,
                  now: float) -> Association | None:
        """A Start, Interim-Update or Stop from ``ap`` for ``mac``: the
        association as it now stands, or None for a Stop that is not about
        the association held (rule 2)."""
        known = self._held.get(mac)
        stopping = request.status == m.AcctStatus.STOP
        ours = (known is not None and known.ap == ap
                and (request.session_id is None or known.acct_session_id is None
                     or known.acct_session_id == request.session_id))
        if stopping and not ours:
            return None
        base = known if ours and known is not None and known.stopped is None else \
            Association(mac, ap, request.calling_station_id or mac)
        now_held = replace(
            base, ap=ap, calling_station_id=request.calling_station_id or base.calling_station_id,
            person=person or base.person, session_id=session_id or base.session_id,
            nas_identifier=request.nas_identifier or base.nas_identifier,
            nas_ip_address=request.nas_ip_address or base.nas_ip_address,
            acct_session_id=request.session_id or base.acct_session_id,
            started=base.started if base.started is not None or
            request.status != m.AcctStatus.START else now,
            seen=now,
            session_time=request.session_time or base.session_time,
            input_octets=request.input_octets or base.input_octets,
            output_octets=request.output_octets or base.output_octets,
            stopped=now if stopping else None)
        return self._put(now_held, now)

    def restarted(self, ap: str) -> int:
        """Accounting-On/Off from ``ap``: the associations it held are gone."""
        gone = [mac for mac, a in self._held.items() if a.ap == ap]
        for mac in gone:
            del self._held[mac]
        return len(gone)

    def to_release(self, ended: Ended) -> list[Association]:
        """The live associations ``ended`` takes along (rule 4)."""
        person_gone = ended.login not in ended.still_open
        return [a for a in self._held.values() if a.stopped is None
                and (a.mac == ended.mac or (person_gone and a.person == ended.login))]


def order(association: Association, port: int, secret: bytes, now: float) -> Order:
    """The Disconnect-Request for ``association`` (rule 5)."""
    request = m.DisconnectRequest(calling_station_id=association.calling_station_id,
                                  acct_session_id=association.acct_session_id,
                                  nas_identifier=association.nas_identifier,
                                  nas_ip_address=association.nas_ip_address,
                                  event_timestamp=int(now))
    return Order((association.ap, port), secret, request, association)


def outcome(reply: m.Reply) -> str:
    """The answer of an access point in words, for the log."""
    match reply:
        case m.DisconnectAck():
            return "Disconnect-ACK: the station is let go"
        case m.DisconnectNak(error_cause=m.ErrorCause() as cause):
            return f"Disconnect-NAK, Error-Cause {int(cause)} {cause.label}: {cause.words}"
        case m.DisconnectNak(error_cause=None):
            return "Disconnect-NAK without an Error-Cause"
        case m.DisconnectNak(error_cause=cause):
            return f"Disconnect-NAK, Error-Cause {cause} (not one RFC 5176 names)"
        case _:
            return f"{reply.CODE.label}, which does not answer a Disconnect-Request"


class SessionFinder(Protocol):
    """What the daemon tells the access points' server: the open session a
    station belongs to (the one checked in with its MAC, else one of its
    person's), as (session id, login)."""

    def session_of(self, person: str | None, mac: str) -> tuple[str, str] | None: ...


class Releaser(Protocol):
    """What the daemon calls on the access points' server: when a session
    ends, and when the keys it holds changed (a check-in brings its key)."""

    def release(self, session: Session, still_open: Iterable[Session]) -> None: ...

    def keys_changed(self) -> None: ...


def ended(session: Session, still_open: Iterable[Session]) -> Ended:
    return Ended(session.session_id, session.login, session.mac,
                 frozenset(s.login for s in still_open if s.session_id != session.session_id))


class Disconnector:
    """One thread sending the Disconnect-Requests ``orders`` gives for each
    ended session, one at a time, each retried with back-off (RFC 5080)."""

    def __init__(self, orders: Callable[[Ended], Collection[Order]], backoff: Backoff,
                 *, on_answer: Callable[[Order, m.Reply | None], None] = lambda o, r: None,
                 ) -> None:
        self.orders = orders
        self.backoff = backoff
        self.on_answer = on_answer
        self._queue: queue.Queue[Ended | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def release(self, ended: Ended) -> None:
        self._queue.put(ended)

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="ap-dae", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the request under way (its tries), skip what is queued: a
        stopping box does not hold up its shutdown for access points."""
        if self._thread is not None:
            self._stopping.set()
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._stopping.is_set():
                    log.warning("wifi: stopping: the stations of session %s are not let go at "
                                "their access points", item.session_id)
                    continue
                for one in self.orders(item):
                    self.send(one)
            except Exception:  # the worker is the boundary: log, keep serving
                log.exception("wifi: letting the stations of session %s go failed",
                              item.session_id if item else "?")
            finally:
                self._queue.task_done()

    def send(self, one: Order) -> m.Reply | None:
        """Send ``one`` until the access point answers; log what it said."""
        a = one.association
        who = f"{a.mac} ({a.person or 'person unknown'})"
        sent = one.request.encode(one.secret)
        started = time.monotonic()
        try:
            reply = exchange(one.address, sent, lambda data: m.decode_reply(data, one.secret, sent),
                             self.backoff, on_drop=_dropped,
                             on_retry=lambda n: log.info(
                                 "wifi: Disconnect-Request to %s:%d for %s: try %d", *one.address,
                                 who, n))
        except TimeoutError:
            log.warning("wifi: access point %s:%d did not answer the Disconnect-Request for %s "
                        "after %d tries (%.1f s): the station keeps its association until the "
                        "access point drops it", *one.address, who, self.backoff.tries,
                        time.monotonic() - started)
            self.on_answer(one, None)
            return None
        level = logging.INFO if isinstance(reply, m.DisconnectAck) else logging.WARNING
        log.log(level, "wifi: access point %s:%d for %s: %s", *one.address, who, outcome(reply))
        self.on_answer(one, reply)
        return reply


def _dropped(address: tuple[str, int], why: str) -> None:
    log.warning("wifi: dropped an answer from access point %s:%d: %s", address[0], address[1],
                why)

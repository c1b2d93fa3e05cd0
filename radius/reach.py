"""Changes reach the sites: which live sessions a change of the data
touches, the outbox of RFC 5176 requests queued for them, and the courier
that sends that outbox until every request is answered.

A suspended or closed company, a deactivated or removed person, a revoked
key: their open sessions get a Disconnect-Request (``after_change``). A new
bandwidth cap: a CoA-Request with the new WISPr caps (``push_bandwidth``).
The console's Disconnect button queues one too (``enqueue``). Requests are
rows of ``dae_request``, written in the caller's transaction, so a change
and its Disconnects commit together; the courier in the RADIUS server
(``Courier``) sends them, and outbox.py decides when to send again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, assert_never

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import sessionmaker

from . import dae, outbox
from . import mac as macs
from . import messages as m
from .models import DaeRequest, DaeState, Gateway, Person, Radacct

log = logging.getLogger("passerelle.radius")

DISCONNECT, COA = "disconnect", "coa"
CODES = {DISCONNECT: m.Code.DISCONNECT_REQUEST, COA: m.Code.COA_REQUEST}

# Send = dae.send's shape: (target, code, attributes) -> result.
Send = Callable[[dae.Target, int, dict[str, Any]], dae.Result]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# -- which sessions -------------------------------------------------------------------

def sessions_to_cut(db: DB, *, person_ids: Iterable[int] = (),
                    company_ids: Iterable[int] = ()) -> list[Radacct]:
    """The open sessions of these people and of these companies' people."""
    people, companies = sorted(set(person_ids)), sorted(set(company_ids))
    if not people and not companies:
        return []
    whose = []
    if people:
        whose.append(Radacct.person_id.in_(people))
    if companies:
        whose.append(Radacct.person_id.in_(
            select(Person.id).where(Person.company_id.in_(companies))))
    return list(db.scalars(select(Radacct).where(Radacct.acctstoptime.is_(None), or_(*whose))
                           .order_by(Radacct.radacctid)))


def device(calling_station_id: str | None) -> str:
    """One spelling of a device's MAC (as given when it is none)."""
    text = (calling_station_id or "").strip()
    try:
        return macs.dashed(text)
    except ValueError:
        return text.lower()


def open_devices(db: DB, person_ids: Iterable[int]) -> dict[int, set[str]]:
    """The devices (MACs) each of these people has an open session on (the
    per-plan limit of sessions at once counts them)."""
    people = sorted(set(person_ids))
    found: dict[int, set[str]] = {p: set() for p in people}
    if people:
        for person, calling in db.execute(
                select(Radacct.person_id, Radacct.callingstationid)
                .where(Radacct.person_id.in_(people), Radacct.acctstoptime.is_(None))):
            if person is not None:
                found[person].add(device(calling))
    return found


def selector(session: Radacct) -> dict[str, Any]:
    """The attributes that name ``session`` to its box (RFC 5176 section 3):
    the box matches every one given; NAS-Identifier says the request is for it."""
    attributes: dict[str, Any] = {"Acct-Session-Id": session.acctsessionid}
    if session.username:
        attributes["User-Name"] = session.username
    if session.nasidentifier:
        attributes["NAS-Identifier"] = session.nasidentifier
    return attributes


def gateway_of(db: DB, session: Radacct) -> Gateway | None:
    if session.gateway_id is not None:
        return db.get(Gateway, session.gateway_id)
    return db.scalar(select(Gateway).where(Gateway.ip_address == session.nasipaddress))


# -- the outbox ------------------------------------------------------------------------

def enqueue(db: DB, session: Radacct, kind: str, now: datetime, *, reason: str,
            actor: str = "", extra: dict[str, Any] | None = None,
            held: float = 0.0) -> DaeRequest | None:
    """Queue a request about ``session``; None when no box is known for it.
    It is due at once, or ``held`` seconds later when the caller sends it
    itself first (``send_due`` with its id): couriers leave it alone until
    then, so it is not sent twice. A Disconnect already waiting for the
    session is reused: pressing twice sends one."""
    gateway = gateway_of(db, session)
    if gateway is None:
        log.warning("session %d (%s) has no known gateway: no %s sent", session.radacctid,
                    session.acctsessionid, kind)
        return None
    if kind == DISCONNECT:
        waiting = db.scalar(select(DaeRequest).where(
            DaeRequest.radacct_id == session.radacctid, DaeRequest.kind == DISCONNECT,
            DaeRequest.state == DaeState.pending))
        if waiting is not None:
            return waiting
    return queue(db, gateway.id, session.radacctid, kind,
                 {**selector(session), **(extra or {})}, now, reason=reason, actor=actor,
                 held=held)


def queue(db: DB, gateway_id: int, radacct_id: int | None, kind: str,
          attributes: dict[str, Any], now: datetime, *, reason: str,
          actor: str = "", held: float = 0.0) -> DaeRequest:
    """A request row, due at once (or ``held`` seconds later: see enqueue)."""
    request = DaeRequest(gateway_id=gateway_id, radacct_id=radacct_id, kind=kind,
                         attributes=json.dumps(attributes), state=DaeState.pending,
                         attempts=0, next_try=now + timedelta(seconds=held), created=now,
                         reason=reason[:64],
                         actor=actor[:253])
    db.add(request)
    db.flush()
    return request


def after_change(db: DB, *, person_ids: Iterable[int] = (), company_ids: Iterable[int] = (),
                 reason: str, actor: str = "", now: datetime | None = None) -> int:
    """Queue a Disconnect for every open session of these people and
    companies (they may no longer be on). Returns how many were queued."""
    now = now or utcnow()
    queued = [enqueue(db, s, DISCONNECT, now, reason=reason, actor=actor)
              for s in sessions_to_cut(db, person_ids=person_ids, company_ids=company_ids)]
    count = sum(1 for q in queued if q is not None)
    if count:
        log.info("%s: %d open session(s) to disconnect", reason, count)
    return count


def push_bandwidth(db: DB, company_id: int, up: int | None, down: int | None, *,
                   actor: str = "", now: datetime | None = None) -> int:
    """Queue a CoA with the company's new caps for each of its open sessions.
    A cap taken away is not sent (a box takes no rate 0): it goes with the
    session's end, and the next session has none."""
    now = now or utcnow()
    caps = {name: value for name, value in (("WISPr-Bandwidth-Max-Up", up),
                                            ("WISPr-Bandwidth-Max-Down", down)) if value}
    if not caps:
        return 0
    queued = [enqueue(db, s, COA, now, reason="bandwidth", actor=actor, extra=caps)
              for s in sessions_to_cut(db, company_ids=[company_id])]
    count = sum(1 for q in queued if q is not None)
    if count:
        log.info("new bandwidth cap: %d open session(s) to change", count)
    return count


@dataclass(frozen=True)
class Due:
    """A request to send now, with what its sending needs."""

    id: int
    gateway: str
    target: dae.Target
    code: int
    attributes: dict[str, Any]
    attempts: int  # sends before this one


def claim(db: DB, now: datetime, lease: float, limit: int,
          ids: Iterable[int] | None = None) -> list[Due]:
    """The pending requests due by ``now`` (or those of ``ids``), each held
    for ``lease`` seconds so that another courier does not send it too."""
    query = (select(DaeRequest, Gateway).join(Gateway, DaeRequest.gateway_id == Gateway.id)
             .where(DaeRequest.state == DaeState.pending)
             .order_by(DaeRequest.next_try, DaeRequest.id).limit(limit)
             .with_for_update(of=DaeRequest, skip_locked=True))
    query = query.where(DaeRequest.id.in_(sorted(ids))) if ids is not None \
        else query.where(DaeRequest.next_try <= now)
    due = []
    for request, gateway in db.execute(query).all():
        request.next_try = now + timedelta(seconds=lease)
        due.append(Due(request.id, gateway.identifier,
                       dae.Target(gateway.ip_address, gateway.coa_port, gateway.secret.encode(),
                                  gateway=gateway.identifier),  # its RadSec reverse path
                       CODES[request.kind], json.loads(request.attributes), request.attempts))
    db.flush()
    return due


def record(db: DB, due: Due, result: dae.Result, now: datetime, retry: outbox.Retry) -> None:
    """Write what the send of ``due`` came to, as outbox.after decides."""
    request = db.get(DaeRequest, due.id)
    if request is None:
        return  # its gateway was removed meanwhile
    attempts = due.attempts + 1
    request.attempts = attempts
    step = outbox.after(result, attempts, now, retry)
    match step:
        case outbox.Answered(state=state, error_cause=cause):
            request.state, request.error_cause, request.answered = state, cause, now
            log.info("%s %d to %s for %s: %s", request.kind, due.id, due.gateway,
                     due.attributes.get("Acct-Session-Id"), result)
        case outbox.Again(when=when, error_cause=cause):
            request.next_try, request.error_cause = when, cause
            log.info("%s %d to %s: %s after try %d; next try at %s", request.kind, due.id,
                     due.gateway, result, attempts, when.isoformat(timespec="seconds"))
        case outbox.GiveUp(error_cause=cause):
            request.state, request.error_cause = DaeState.gave_up, cause
            log.warning("%s %d to %s for %s: gave up after %d tries without an answer",
                        request.kind, due.id, due.gateway,
                        due.attributes.get("Acct-Session-Id"), attempts)
        case _:
            assert_never(step)
    db.flush()


def send_due(factory: sessionmaker[DB], send: Send, retry: outbox.Retry, *,
             clock: Callable[[], datetime] = utcnow, lease: float = 30.0, limit: int = 64,
             ids: Iterable[int] | None = None,
             pool: ThreadPoolExecutor | None = None) -> int:
    """One round: claim what is due, send it (in ``pool``'s threads when
    given: a silent box must not hold up the others), record the answers.
    Returns how many were sent. No transaction is open while packets wait."""
    with factory() as db, db.begin():
        due = claim(db, clock(), lease, limit, ids)
    if not due:
        return 0

    def one(item: Due) -> dae.Result:
        try:
            return send(item.target, item.code, item.attributes)
        except OSError as exc:  # no route to the box, say: like no answer, tried again
            log.warning("%s %d to %s (%s port %d) not sent: %s", item.code, item.id,
                        item.gateway, item.target.host, item.target.port, exc)
            return dae.Result(acked=False, answered=False)

    results = [one(item) for item in due] if pool is None else list(pool.map(one, due))
    # One transaction for the round's answers: the courier holds one
    # database connection at most, whatever the number of boxes it waits for.
    with factory() as db, db.begin():
        now = clock()
        for item, result in zip(due, results, strict=True):
            record(db, item, result, now, retry)
    return len(due)


def prune(db: DB, now: datetime, keep: float) -> int:
    """Forget the answered and given-up requests older than ``keep`` seconds
    (the outbox must not grow for ever)."""
    done = db.execute(delete(DaeRequest).where(
        DaeRequest.state != DaeState.pending,
        DaeRequest.created < now - timedelta(seconds=keep)))
    return int(getattr(done, "rowcount", 0) or 0)


def one_try(target: dae.Target, code: int, attributes: dict[str, Any]) -> dae.Result:
    """A single send (the outbox does the retrying), waiting 2 s for the answer."""
    return dae.send(target, code, attributes, timeout=2.0, tries=1)


def disconnect_once(target: dae.Target, attributes: dict[str, Any]) -> dae.Result:
    return one_try(target, m.Code.DISCONNECT_REQUEST, attributes)


class Courier:
    """The RADIUS server's thread that empties the outbox: every ``poll``
    seconds it sends what is due; once an hour it forgets old answers."""

    def __init__(self, factory: sessionmaker[DB], *, send: Send = one_try,
                 retry: outbox.Retry | None = None, poll: float = 0.5,
                 keep: float = 7 * 86400) -> None:
        self.factory = factory
        self.send = send
        self.retry = retry or outbox.Retry()
        self.poll = poll
        self.keep = keep
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dae")
        self._thread = threading.Thread(target=self._run, name="dae-courier", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=True)

    def _run(self) -> None:
        pruned = -1e18
        while not self._stop.is_set():
            try:
                send_due(self.factory, self.send, self.retry, pool=self._pool)
                if time.monotonic() - pruned > 3600:
                    with self.factory() as db, db.begin():
                        gone = prune(db, utcnow(), self.keep)
                    if gone:
                        log.info("outbox: forgot %d answered requests", gone)
                    pruned = time.monotonic()
            except Exception:  # the database may be away for a moment: try again
                log.exception("outbox round failed")
            self._stop.wait(self.poll)

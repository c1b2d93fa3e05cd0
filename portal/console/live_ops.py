"""Live sessions: every open session (a ``radacct`` row without a stop time)
the operator's scope covers, and the Disconnect-Request that ends one.

A Disconnect is queued in the centre's outbox (radius/reach.py), tried once
at once by the console after the transaction (so the answer is on the page
in the common case), and sent again by the RADIUS server's courier until the
box answers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, assert_never

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session as DB

from passerelle.errors import UserError
from passerelle.radius import dae, reach
from passerelle.radius import messages as m
from passerelle.radius.models import (
    AuthLog,
    Company,
    DaeRequest,
    DaeState,
    Gateway,
    Person,
    Radacct,
    Site,
)

from .filters import like_pattern, optional_id, search_text
from .scope import Scope

log = logging.getLogger("passerelle.portal")

# radacct's key is a BIGINT on PostgreSQL: larger is no session, not an error.
MAX_SESSION_ID = 2**63 - 1


@dataclass(frozen=True)
class LiveFilter:
    site: int | None = None
    company: int | None = None
    person: int | None = None
    search: str = ""

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> LiveFilter:
        """From a query string; ``UserError`` names the bad one."""
        return cls(site=optional_id(args, "site"), company=optional_id(args, "company"),
                   person=optional_id(args, "person"), search=search_text(args))

    def query(self) -> dict[str, str]:
        """The filter as query-string arguments (to link back to this view)."""
        found = {"site": self.site, "company": self.company, "person": self.person,
                 "q": self.search or None}
        return {k: str(v) for k, v in found.items() if v is not None}


@dataclass(frozen=True)
class LiveRow:
    id: int
    acct_session_id: str
    login: str
    person_id: int | None
    person_name: str
    company: str
    site: str
    gateway: str
    mac: str
    ip: str
    started: datetime | None
    updated: datetime | None  # the last accounting the centre has of it
    duration: int | None  # seconds
    time_left: int | None  # seconds, when the decision's Session-Timeout is known
    bytes_up: int  # from the client (Acct-Input-Octets)
    bytes_down: int  # to the client (Acct-Output-Octets)
    idle: int | None  # seconds since the last accounting


@dataclass(frozen=True)
class Choice:
    id: int
    name: str


# A page's cursor in the address: 20261201T093000.000000-4711, or none-4711
# (a session without a start time).
_CURSOR = re.compile(r"(none|\d{8}T\d{6}\.\d{6})-(\d{1,19})", re.ASCII)


@dataclass(frozen=True)
class Cursor:
    """Where a page of the live view starts: just after this row in the
    newest-first order (start time, then id; a session without a start time
    comes first). Keyset, not offset: a page costs the same however deep,
    and sessions that end meanwhile do not shift the next page."""

    started: datetime | None
    id: int

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        """From the page argument; ``UserError`` when it is not one of ours."""
        if not text:
            return None
        found = _CURSOR.fullmatch(text)
        if found is None or int(found.group(2)) > MAX_SESSION_ID:
            raise UserError(f"bad page {text[:40]!r}: start again from the newest")
        stamp, number = found.groups()
        try:
            started = None if stamp == "none" else datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f")
        except ValueError:
            raise UserError(f"bad page {text[:40]!r}: start again from the newest") from None
        return cls(started, int(number))

    def __str__(self) -> str:
        stamp = "none" if self.started is None else self.started.strftime("%Y%m%dT%H%M%S.%f")
        return f"{stamp}-{self.id}"


@dataclass(frozen=True)
class LiveView:
    rows: list[LiveRow]
    total: int  # how many match, on every page
    first: int  # the position of rows[0] among them, from 1
    next: Cursor | None  # where the next page starts; None on the last
    sites: list[Choice]
    companies: list[Choice]
    person: str  # the person filtered on, for the heading

    @property
    def last(self) -> int:
        """The position of the last row shown."""
        return self.first + len(self.rows) - 1


def seconds_between(start: datetime | None, end: datetime) -> int | None:
    return None if start is None else max(0, int((end - start).total_seconds()))


def time_left(start: datetime | None, session_timeout: int | None, now: datetime) -> int | None:
    """Seconds until the session's Session-Timeout, when both are known."""
    elapsed = seconds_between(start, now)
    if elapsed is None or session_timeout is None:
        return None
    return max(0, session_timeout - elapsed)


def _scoped(query: Select[*tuple[Any, ...]], scope: Scope) -> Select[*tuple[Any, ...]]:
    if scope.sites is not None:
        query = query.where(Radacct.site_id.in_(sorted(scope.sites)))
    if scope.company is not None:
        query = query.where(Person.company_id == scope.company)
    return query


def _open(scope: Scope, *columns: Any) -> Select[*tuple[Any, ...]]:
    """``columns`` of the open sessions ``scope`` covers, joined to who and where."""
    query = (select(*columns)
             .select_from(Radacct)
             .outerjoin(Person, Radacct.person_id == Person.id)
             .outerjoin(Company, Person.company_id == Company.id)
             .outerjoin(Site, Radacct.site_id == Site.id)
             .outerjoin(Gateway, Radacct.gateway_id == Gateway.id)
             .where(Radacct.acctstoptime.is_(None)))
    return _scoped(query, scope)


def _filtered(query: Select[*tuple[Any, ...]], wanted: LiveFilter) -> Select[*tuple[Any, ...]]:
    if wanted.site is not None:
        query = query.where(Radacct.site_id == wanted.site)
    if wanted.company is not None:
        query = query.where(Person.company_id == wanted.company)
    if wanted.person is not None:
        query = query.where(Radacct.person_id == wanted.person)
    if wanted.search:
        # A MAC is stored as the box wrote it: try both separators.
        texts = dict.fromkeys([wanted.search, wanted.search.replace(":", "-"),
                               wanted.search.replace("-", ":")])
        columns = (Radacct.username, Person.name, Company.name, Site.name,
                   Radacct.callingstationid, Radacct.framedipaddress, Radacct.acctsessionid)
        query = query.where(or_(*[column.ilike(like_pattern(t), escape="\\")
                                  for column in columns for t in texts]))
    return query


def _choices(db: DB, scope: Scope) -> tuple[list[Choice], list[Choice]]:
    sites = select(Site.id, Site.name).order_by(Site.name)
    if scope.sites is not None:
        sites = sites.where(Site.id.in_(sorted(scope.sites)))
    companies = select(Company.id, Company.name).order_by(Company.name)
    if scope.company is not None:
        companies = companies.where(Company.id == scope.company)
    return ([Choice(i, n) for i, n in db.execute(sites)],
            [Choice(i, n) for i, n in db.execute(companies)])


def _after(cursor: Cursor) -> ColumnElement[bool]:
    """The rows that come after ``cursor`` in the newest-first order."""
    if cursor.started is None:
        return or_(and_(Radacct.acctstarttime.is_(None), Radacct.radacctid < cursor.id),
                   Radacct.acctstarttime.is_not(None))
    # A row value: the index on (acctstarttime, radacctid) answers it as a range.
    return tuple_(Radacct.acctstarttime, Radacct.radacctid) < tuple_(cursor.started, cursor.id)


# Only what the page shows: plain tuples, no ORM objects.
_SHOWN = (Radacct.radacctid, Radacct.acctsessionid, Radacct.username, Radacct.person_id,
          Person.login, Person.name, Company.name, Site.name, Gateway.identifier,
          Radacct.nasidentifier, Radacct.nasipaddress, Radacct.callingstationid,
          Radacct.framedipaddress, Radacct.acctstarttime, Radacct.acctupdatetime,
          Radacct.acctsessiontime, Radacct.acctinputoctets, Radacct.acctoutputoctets)


def live_sessions(db: DB, scope: Scope, wanted: LiveFilter, now: datetime,
                  limit: int, after: Cursor | None = None) -> LiveView:
    """One page of ``limit`` open sessions, newest first, from just after
    ``after`` (from the newest without), and how many match in all."""
    # The Session-Timeout the Accept granted (its log line, by the session's Class).
    granted = (select(AuthLog.sessiontimeout).where(AuthLog.class_ == Radacct.class_,
                                                    Radacct.class_ != "")
               .limit(1).scalar_subquery())
    query = _filtered(_open(scope, *_SHOWN, granted), wanted)
    if after is not None:
        query = query.where(_after(after))
    # One more than a page: whether there is a next one.
    found = db.execute(query.order_by(Radacct.acctstarttime.desc().nulls_first(),
                                      Radacct.radacctid.desc()).limit(limit + 1)).all()
    if after is None and len(found) <= limit:
        # The whole view is on this page: its rows are the count (a filtered
        # view reads its matches once, not twice).
        total, first = len(found), 1
    else:
        counted: list[ColumnElement[int]] = [func.count()]
        if after is not None:
            counted.append(func.count().filter(_after(after)))
        total, *rest = db.execute(_filtered(_open(scope, *counted), wanted)).one()
        first = 1 if after is None else total - rest[0] + 1
    rows = []
    for (id_, session, username, person_id, login, name, company, site, gateway, nas_id,
         nas_ip, mac, ip, started, updated, session_time, up, down, timeout) in found[:limit]:
        updated = updated or started
        duration = seconds_between(started, now)
        rows.append(LiveRow(
            id=id_, acct_session_id=session, login=login or username, person_id=person_id,
            person_name=name or "", company=company or "", site=site or "",
            gateway=gateway or nas_id or nas_ip, mac=mac, ip=ip, started=started,
            updated=updated, duration=duration if duration is not None else session_time,
            time_left=time_left(started, timeout, now), bytes_up=up, bytes_down=down,
            idle=seconds_between(updated, now)))
    following = (Cursor(rows[-1].started, rows[-1].id)
                 if len(found) > limit and rows else None)
    # Named from the rows only: looking the id up would tell a login outside the scope.
    person = ""
    if wanted.person is not None:
        person = rows[0].login if rows else f"person {wanted.person}"
    sites, companies = _choices(db, scope)
    return LiveView(rows, int(total), first, following, sites, companies, person)


# -- Disconnect ---------------------------------------------------------------------

CONSOLE_FIRST_TRY = 30.0  # seconds the courier leaves a console's Disconnect to the console

def queue_disconnect(db: DB, scope: Scope, session_id: int, now: datetime,
                     operator: str) -> int | None:
    """Queue the Disconnect-Request that ends open session ``session_id``;
    its outbox id, or None when the operator's scope has no such open
    session, or no box is known for it."""
    found = db.execute(_open(scope, Radacct)
                       .where(Radacct.radacctid == session_id)).first()
    if found is None:
        return None
    # The console sends it once itself at once (live.disconnect): the
    # RADIUS server's courier, polling the outbox, would otherwise send it
    # too in between, and the page would show the box's NAK to the second.
    queued = reach.enqueue(db, found[0], reach.DISCONNECT, now, reason="console",
                           actor=operator, held=CONSOLE_FIRST_TRY)
    return None if queued is None else queued.id


@dataclass(frozen=True)
class RequestRow:
    """A queued Disconnect- or CoA-Request as the console shows it."""

    id: int
    kind: str
    session_id: int | None
    login: str
    site: str
    gateway: str
    host: str
    port: int
    state: DaeState
    attempts: int
    error_cause: int | None
    reason: str
    actor: str
    created: datetime
    answered: datetime | None


def _requests(scope: Scope) -> Select[*tuple[Any, ...]]:
    query = (select(DaeRequest, Gateway.identifier, Gateway.ip_address, Gateway.coa_port,
                    Radacct.username, Person.login, Site.name)
             .join(Gateway, DaeRequest.gateway_id == Gateway.id)
             .join(Site, Gateway.site_id == Site.id)
             .outerjoin(Radacct, DaeRequest.radacct_id == Radacct.radacctid)
             .outerjoin(Person, Radacct.person_id == Person.id))
    if scope.sites is not None:
        query = query.where(Gateway.site_id.in_(sorted(scope.sites)))
    if scope.company is not None:
        query = query.where(Person.company_id == scope.company)
    return query


def _row(found: Any) -> RequestRow:
    r, gateway, host, port, username, login, site = found
    return RequestRow(id=r.id, kind=r.kind, session_id=r.radacct_id,
                      login=login or username or "", site=site, gateway=gateway, host=host,
                      port=port, state=r.state, attempts=r.attempts, error_cause=r.error_cause,
                      reason=r.reason, actor=r.actor, created=r.created, answered=r.answered)


def request_row(db: DB, scope: Scope, request_id: int) -> RequestRow | None:
    found = db.execute(_requests(scope).where(DaeRequest.id == request_id)).first()
    return None if found is None else _row(found)


def recent_requests(db: DB, scope: Scope, now: datetime, within: float = 3600,
                    limit: int = 20) -> list[RequestRow]:
    """The requests of the last ``within`` seconds the scope covers, newest first."""
    query = (_requests(scope).where(DaeRequest.created >= now - timedelta(seconds=within))
             .order_by(DaeRequest.created.desc(), DaeRequest.id.desc()).limit(limit))
    return [_row(found) for found in db.execute(query)]


# What a NAK's Error-Cause (RFC 5176 section 3.5) means for the operator.
PLAIN_CAUSES = {
    401: "the box does not support an attribute of the request",
    402: "the request lacked an attribute the box needs",
    403: "the box says the request was meant for another box",
    404: "the box found the request invalid",
    405: "the box does not offer this service",
    407: "the box found a value of the request invalid",
    501: "the box refuses: administratively prohibited",
    502: "the box could not route the request",
    503: "the box has no such session: it has probably ended already",
    504: "the box cannot remove this session",
    506: "the box is short of resources; try again",
}


@dataclass(frozen=True)
class RequestStatus:
    """Where a Disconnect or CoA request stands, in the operator's words."""

    ok: bool | None  # None: no answer yet, still trying
    message: str


def _nak(cause: int | None) -> dae.Result:
    if cause is not None and cause in m.ErrorCause._value2member_map_:
        return dae.Result(acked=False, error_cause=m.ErrorCause(cause))
    return dae.Result(acked=False, error_cause=cause)


def describe(row: RequestRow) -> RequestStatus:
    """Where a request stands, in plain words, for the page."""
    who = row.login or (f"session {row.session_id}" if row.session_id else "the session")
    where = f"{row.gateway} ({row.host} port {row.port})"
    what = "is disconnected" if row.kind == reach.DISCONNECT else "has the new settings"
    tries = f"{row.attempts} tr{'y' if row.attempts == 1 else 'ies'}"
    match row.state:
        case DaeState.acked:
            return RequestStatus(True, f"ACK from {row.gateway}: {who} {what}.")
        case DaeState.naked:
            plain = PLAIN_CAUSES.get(row.error_cause or 0,
                                     "the box refused without saying why")
            return RequestStatus(False, f"NAK from {row.gateway}: {plain} "
                                        f"({_nak(row.error_cause)}).")
        case DaeState.gave_up:
            return RequestStatus(False, f"Gave up: no answer from {where} after {tries}; "
                                  f"{who} may still be connected.")
        case DaeState.pending if row.attempts == 0:
            return RequestStatus(None, f"Queued for {row.gateway}: not sent yet.")
        case DaeState.pending:
            return RequestStatus(None, f"No answer yet from {where}: the box may be down or "
                                 f"unreachable; the centre keeps trying ({tries} so far).")
        case _:
            assert_never(row.state)

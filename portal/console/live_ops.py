"""Live sessions: every open session (a ``radacct`` row without a stop time)
the operator's scope covers, and the Disconnect-Request that ends one.

Reads only; the packet is sent by the caller after the transaction, with
``send_disconnect``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session as DB

from passerelle.radius import dae
from passerelle.radius.models import Company, Gateway, Person, Radacct, Site

from .filters import like_pattern, optional_id, search_text
from .scope import Scope
from .state import Disconnect

log = logging.getLogger("passerelle.portal")


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


@dataclass(frozen=True)
class LiveView:
    rows: list[LiveRow]
    total: int  # how many match; rows holds the first ``limit``
    sites: list[Choice]
    companies: list[Choice]
    person: str  # the person filtered on, for the heading

    @property
    def truncated(self) -> bool:
        return self.total > len(self.rows)


def seconds_between(start: datetime | None, end: datetime) -> int | None:
    return None if start is None else max(0, int((end - start).total_seconds()))


def time_left(start: datetime | None, session_timeout: int | None, now: datetime) -> int | None:
    """Seconds until the session's Session-Timeout, when both are known."""
    elapsed = seconds_between(start, now)
    if elapsed is None or session_timeout is None:
        return None
    return max(0, session_timeout - elapsed)


def _scoped(query: Select[Any], scope: Scope) -> Select[Any]:
    if scope.sites is not None:
        query = query.where(Radacct.site_id.in_(sorted(scope.sites)))
    if scope.company is not None:
        query = query.where(Person.company_id == scope.company)
    return query


def _open(scope: Scope) -> Select[Any]:
    """The open sessions ``scope`` covers, joined to who and where."""
    query = (select(Radacct, Person.login, Person.name, Company.name, Site.name,
                    Gateway.identifier)
             .select_from(Radacct)
             .outerjoin(Person, Radacct.person_id == Person.id)
             .outerjoin(Company, Person.company_id == Company.id)
             .outerjoin(Site, Radacct.site_id == Site.id)
             .outerjoin(Gateway, Radacct.gateway_id == Gateway.id)
             .where(Radacct.acctstoptime.is_(None)))
    return _scoped(query, scope)


def _filtered(query: Select[Any], wanted: LiveFilter) -> Select[Any]:
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


def live_sessions(db: DB, scope: Scope, wanted: LiveFilter, now: datetime,
                  limit: int) -> LiveView:
    query = _filtered(_open(scope), wanted)
    total = int(db.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = []
    ordered = query.order_by(Radacct.acctstarttime.desc(), Radacct.radacctid.desc()).limit(limit)
    for s, login, name, company, site, gateway in db.execute(ordered):
        updated = s.acctupdatetime or s.acctstarttime
        duration = seconds_between(s.acctstarttime, now)
        rows.append(LiveRow(
            id=s.radacctid, acct_session_id=s.acctsessionid, login=login or s.username,
            person_id=s.person_id, person_name=name or "", company=company or "",
            site=site or "", gateway=gateway or s.nasidentifier or s.nasipaddress,
            mac=s.callingstationid, ip=s.framedipaddress, started=s.acctstarttime,
            updated=updated, duration=duration if duration is not None else s.acctsessiontime,
            # The decision's Session-Timeout is not recorded with the session
            # yet: the column stays blank until it is.
            time_left=time_left(s.acctstarttime, None, now),
            bytes_up=s.acctinputoctets, bytes_down=s.acctoutputoctets,
            idle=seconds_between(updated, now)))
    # Named from the rows only: looking the id up would tell a login outside the scope.
    person = ""
    if wanted.person is not None:
        person = rows[0].login if rows else f"person {wanted.person}"
    sites, companies = _choices(db, scope)
    return LiveView(rows, total, sites, companies, person)


# -- Disconnect ---------------------------------------------------------------------

@dataclass(frozen=True)
class DisconnectOrder:
    """A Disconnect-Request to send: to which box, about which session."""

    session_id: int
    login: str
    gateway: str
    target: dae.Target
    attributes: dict[str, Any]


def disconnect_order(db: DB, scope: Scope, session_id: int) -> DisconnectOrder | None:
    """The request that ends open session ``session_id``, or None when the
    operator's scope has no such open session, or no box is known for it."""
    query = _open(scope).where(Radacct.radacctid == session_id)
    found = db.execute(query).first()
    if found is None:
        return None
    s: Radacct = found[0]
    gateway = db.get(Gateway, s.gateway_id) if s.gateway_id is not None else db.scalar(
        select(Gateway).where(Gateway.ip_address == s.nasipaddress))
    if gateway is None:
        return None
    # The session's own identifiers (RFC 5176 section 3): the box matches
    # every one given. NAS-Identifier tells the box the request is for it.
    attributes: dict[str, Any] = {"Acct-Session-Id": s.acctsessionid}
    if s.username:
        attributes["User-Name"] = s.username
    if s.nasidentifier:
        attributes["NAS-Identifier"] = s.nasidentifier
    return DisconnectOrder(session_id=s.radacctid, login=found[1] or s.username,
                           gateway=gateway.identifier,
                           target=dae.Target(gateway.ip_address, gateway.coa_port,
                                             gateway.secret.encode()),
                           attributes=attributes)


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
class Outcome:
    ok: bool
    message: str


def describe(order: DisconnectOrder, result: dae.Result) -> Outcome:
    """The answer in plain words, for the page."""
    who = order.login or f"session {order.session_id}"
    if not result.answered:
        return Outcome(False, f"No answer from {order.gateway} ({order.target.host} port "
                              f"{order.target.port}): the box may be down or unreachable; "
                              f"{who} may still be connected.")
    if result.acked:
        return Outcome(True, f"ACK from {order.gateway}: {who} is disconnected.")
    plain = PLAIN_CAUSES.get(result.error_cause or 0, "the box refused without saying why")
    return Outcome(False, f"NAK from {order.gateway}: {plain} ({result}).")


def send_disconnect(order: DisconnectOrder, disconnect: Disconnect, operator: str) -> Outcome:
    result = disconnect(order.target, order.attributes)
    log.info("console: %s sent Disconnect-Request for session %d (%s) to %s: %s", operator,
             order.session_id, order.attributes.get("Acct-Session-Id"), order.gateway, result)
    return describe(order, result)

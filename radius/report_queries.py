"""The SQL side of the reports: the session intervals and ledger sums a
report needs, fetched once per report for its range and its scope.

Reads only. ``Limits`` is what the operator's role lets them see (their
sites, their company) intersected with what they asked for; every query
here applies it, so no parameter widens it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session as DB
from sqlalchemy.orm import aliased

from .models import (
    Company,
    CompanyNetwork,
    CreditEntry,
    CreditKind,
    Network,
    Person,
    Radacct,
    Site,
)
from .reports import Interval, Range


@dataclass(frozen=True)
class Limits:
    """None is "no limit". ``sites`` and ``company`` come from the role,
    the rest from the form; all apply together."""

    sites: frozenset[int] | None = None
    company: int | None = None
    site: int | None = None
    network: int | None = None
    chosen_company: int | None = None
    person: int | None = None


HomeNetwork = aliased(Network, name="home_network")

Query = TypeVar("Query", bound=Select[*tuple[Any, ...]])


def _limited(query: Query, limits: Limits) -> Query:
    if limits.sites is not None:
        query = query.where(Radacct.site_id.in_(sorted(limits.sites)))
    if limits.company is not None:
        query = query.where(Person.company_id == limits.company)
    if limits.chosen_company is not None:
        query = query.where(Person.company_id == limits.chosen_company)
    if limits.site is not None:
        query = query.where(Radacct.site_id == limits.site)
    if limits.network is not None:
        query = query.where(Site.network_id == limits.network)
    if limits.person is not None:
        query = query.where(Radacct.person_id == limits.person)
    return query


def _overlapping(query: Query, span: Range, longest: timedelta | None) -> list[Query]:
    """Sessions with time within the UTC bounds that hold the range's local
    days. Knowing the longest finished session, the start time bounds the
    search from both sides (an index range); the open sessions begun before
    are found by their stop time (NULL)."""
    low, high = span.utc_bounds()
    alive = or_(Radacct.acctstoptime.is_(None), Radacct.acctstoptime > low)
    if longest is None:
        return [query.where(Radacct.acctstarttime.is_not(None), Radacct.acctstarttime < high,
                            alive)]
    return [query.where(Radacct.acctstarttime >= low - longest, Radacct.acctstarttime < high,
                        alive),
            query.where(Radacct.acctstarttime < low - longest, Radacct.acctstoptime.is_(None))]


def longest_session(db: DB) -> timedelta:
    """The longest finished session (stop minus start), once per roll-up."""
    if db.get_bind().dialect.name == "postgresql":
        found = db.scalar(select(func.max(Radacct.acctstoptime - Radacct.acctstarttime)))
        return found if isinstance(found, timedelta) else timedelta()
    days = db.scalar(select(func.max(func.julianday(Radacct.acctstoptime)
                                     - func.julianday(Radacct.acctstarttime))))
    # julianday is a float of days: a second more covers its rounding.
    return timedelta(days=float(days or 0)) + timedelta(seconds=1)


def intervals(db: DB, limits: Limits, span: Range,
              longest: timedelta | None = None) -> list[Interval]:
    """Every session of the scope with time in the range, with who and where;
    ``longest`` (``longest_session``) makes the search an index range."""
    query = (select(Radacct.radacctid, Radacct.username, Radacct.person_id,
                    Radacct.acctstarttime, Radacct.acctstoptime,
                    Person.login, Company.id, Company.name, Site.id, Site.name, Site.timezone,
                    Network.id, Network.name, HomeNetwork.id, HomeNetwork.name)
             .select_from(Radacct)
             .join(Site, Radacct.site_id == Site.id)
             .join(Network, Site.network_id == Network.id)
             .outerjoin(Person, Radacct.person_id == Person.id)
             .outerjoin(Company, Person.company_id == Company.id)
             .outerjoin(CompanyNetwork, CompanyNetwork.company_id == Company.id)
             .outerjoin(HomeNetwork, CompanyNetwork.network_id == HomeNetwork.id))
    found: list[Interval] = []
    for part in _overlapping(_limited(query, limits), span, longest):
        found += _rows(db.execute(part.order_by(Radacct.radacctid)))
    return found


def _rows(result: Any) -> Iterator[Interval]:
    for (sid, username, person_id, start, stop, login, company_id, company, site_id, site,
         zone, network_id, network, home_id, home) in result:
        yield Interval(session_id=sid, login=login or username, person_id=person_id,
                       company_id=company_id, company=company or "", site_id=site_id,
                       site=site, timezone=zone, network_id=network_id, network=network,
                       start=start, stop=stop, home_network_id=home_id,
                       home_network=home or "")


def capacities(db: DB) -> dict[int, int]:
    return {site_id: capacity for site_id, capacity in db.execute(select(Site.id, Site.capacity))}


def credit_by_company_site(db: DB, limits: Limits, low: datetime,
                           high: datetime) -> dict[tuple[str, str], int]:
    """Seconds charged to the ledger in [low, high) (naive UTC), per
    (company, site) of the session each charge pays for."""
    query = (select(Company.name, Site.name, func.sum(CreditEntry.seconds))
             .select_from(CreditEntry)
             .join(Radacct, CreditEntry.session_id == Radacct.radacctid)
             .join(Site, Radacct.site_id == Site.id)
             .join(Person, CreditEntry.person_id == Person.id)
             .join(Company, Person.company_id == Company.id)
             .where(CreditEntry.kind == CreditKind.charge, CreditEntry.created >= low,
                    CreditEntry.created < high)
             .group_by(Company.name, Site.name))
    return {(company, site): -int(total or 0)
            for company, site, total in db.execute(_limited(query, limits))}


@dataclass(frozen=True)
class StatementLine:
    session_id: int
    login: str
    name: str
    site: str
    start: datetime  # naive UTC
    stop: datetime | None
    seconds: int  # within the month, up to now for an open session
    credit: int  # seconds charged for it within the month


def statement_lines(db: DB, company_id: int, low: datetime, high: datetime,
                    now: datetime) -> list[StatementLine]:
    """The company's people's sessions with time in [low, high) (naive UTC),
    oldest first, with what the ledger charged for each in that window."""
    charged = (select(CreditEntry.session_id, func.sum(CreditEntry.seconds).label("total"))
               .where(CreditEntry.kind == CreditKind.charge, CreditEntry.created >= low,
                      CreditEntry.created < high, CreditEntry.session_id.is_not(None))
               .group_by(CreditEntry.session_id).subquery())
    query = (select(Radacct.radacctid, Person.login, Person.name, Site.name,
                    Radacct.acctstarttime, Radacct.acctstoptime, charged.c.total)
             .select_from(Radacct)
             .join(Person, Radacct.person_id == Person.id)
             .join(Site, Radacct.site_id == Site.id)
             .outerjoin(charged, charged.c.session_id == Radacct.radacctid)
             .where(Person.company_id == company_id, Radacct.acctstarttime.is_not(None),
                    Radacct.acctstarttime < high,
                    or_(Radacct.acctstoptime.is_(None), Radacct.acctstoptime > low))
             .order_by(Radacct.acctstarttime, Radacct.radacctid))
    lines = []
    for sid, login, name, site, start, stop, total in db.execute(query):
        inside_start, inside_stop = max(start, low), min(stop or now, high)
        seconds = max(0, int((inside_stop - inside_start).total_seconds()))
        lines.append(StatementLine(sid, login, name, site, start, stop, seconds,
                                   -int(total or 0)))
    return lines


def company_credit_used(db: DB, company_id: int, low: datetime, high: datetime) -> int:
    """Every charge to the company's people in [low, high), sessions or not."""
    total = db.scalar(select(func.coalesce(func.sum(CreditEntry.seconds), 0))
                      .select_from(CreditEntry)
                      .join(Person, CreditEntry.person_id == Person.id)
                      .where(Person.company_id == company_id,
                             CreditEntry.kind == CreditKind.charge,
                             and_(CreditEntry.created >= low, CreditEntry.created < high)))
    return -int(total or 0)

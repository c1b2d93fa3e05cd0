"""The reports' sums, in SQL, over the day rows and hourly peaks of a range.

A report reads the roll-up's stored whole months (``report_month``) and
days (``report_day``, ``report_hour``) and, for the days the roll-up does
not hold (today, yesterday, anything not rolled up yet), rows computed from
the sessions by the core (``reports.day_rows``, ``reports.occupancy``), put
for the request in two temporary tables. Every sum runs over the union of
them, and is written once, here:

- sessions with time in the range: each session counted on its first day
  (or month) in the range, so a session over several days counts once
  (``carried`` says a row's session began before its day or month);
- people: distinct logins; time connected: the sum of the rows; days with a
  session: the days marked in a person's rows (a month row marks its days);
- a day's peak: the highest of its hourly peaks (never from the months:
  peaks do not add up).

The database does the sums, so a year of a large network costs what its
groups cost, not what its sessions cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Date,
    DateTime,
    Integer,
    MetaData,
    Select,
    String,
    Subquery,
    Table,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.orm import Session as DB

from . import report_queries, reports, reports_rollup
from .models import (
    Company,
    CompanyNetwork,
    Network,
    ReportDay,
    ReportHour,
    ReportMonth,
    Site,
)
from .report_queries import Limits
from .reports import NO_COMPANY, DailyPeak, Exchange, Intensive, Occupancy, Range, Use, WorkDay

# Temporary tables: each connection has its own, emptied for each report.
_TEMPORARY = MetaData()
TAIL_DAY = Table(
    "report_tail_day", _TEMPORARY,
    Column("site_id", Integer), Column("day", Date), Column("login", String(253)),
    Column("person_id", Integer), Column("company_id", Integer), Column("sessions", Integer),
    Column("carried", Integer), Column("connected", Integer), Column("first_in", DateTime),
    Column("last_out", DateTime), Column("open", Boolean),
    prefixes=["TEMPORARY"])
TAIL_HOUR = Table(
    "report_tail_hour", _TEMPORARY,
    Column("site_id", Integer), Column("day", Date), Column("hour", Integer),
    Column("peak", Integer),
    prefixes=["TEMPORARY"])
SEPARATOR = "\x1f"  # between site ids in one working day's list
Q = TypeVar("Q", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class Source:
    """The rows of one report: its range, and its rows within the
    operator's limits. ``days`` mixes the whole months the roll-up holds
    (``report_month``, ``day`` their first day) with day rows for the rest,
    for the sums that add up across days; ``daily`` is day rows only (what
    is per day: working time), as parts that share no day (the stored days,
    the days computed from the sessions), each read in its own query (the
    stored one in the order of an index); ``hours`` the hourly peaks
    (occupancy, whose peaks cannot be added up)."""

    span: Range
    days: Subquery
    daily: list[Subquery]
    hours: Subquery


def _by_people(limits: Limits) -> bool:
    """Occupancy limited to some people (a company, a person) is not the
    site's: the roll-up's peaks count everyone, so it is computed from the
    sessions of those people."""
    return limits.company is not None or limits.chosen_company is not None or \
        limits.person is not None


def _empty_tails(db: DB) -> None:
    for table in (TAIL_DAY, TAIL_HOUR):
        table.create(db.connection(), checkfirst=True)
        db.execute(delete(table))


def _where(query: Q, site: Any, company: Any | None, person: Any | None,
           limits: Limits) -> Q:
    if limits.sites is not None:
        query = query.where(site.in_(sorted(limits.sites)))
    if limits.site is not None:
        query = query.where(site == limits.site)
    if limits.network is not None:
        query = query.where(site.in_(select(Site.id).where(Site.network_id == limits.network)))
    if company is not None:
        for chosen in (limits.company, limits.chosen_company):
            if chosen is not None:
                query = query.where(company == chosen)
    if person is not None and limits.person is not None:
        query = query.where(person == limits.person)
    return query


def prepare(db: DB, limits: Limits, span: Range, now: datetime) -> Source:
    """The rows of ``span`` within ``limits``: stored where the roll-up holds
    the day (or the whole month), computed from the sessions elsewhere."""
    _empty_tails(db)
    stored, live = reports_rollup.split(span, reports_rollup.rolled(db))
    months, stored_days = reports_rollup.by_month(db, stored)
    live_hours = [span] if _by_people(limits) else live
    for part in live:
        rows = reports.day_rows(report_queries.intervals(db, limits, part), part, now)
        if rows:
            db.execute(insert(TAIL_DAY), [vars(r) for r in rows])
    for part in live_hours:
        peaks = reports.occupancy(report_queries.intervals(db, limits, part), part, now, {})
        if peaks:
            db.execute(insert(TAIL_HOUR), [
                {"site_id": h.site_id, "day": h.day, "hour": h.hour, "peak": h.peak}
                for h in peaks])
    # ``days``: the day bits of a row (see _distinct_days); a day row's is any one bit.
    tail: Any = select(*[TAIL_DAY.c[name] for name in (
        "site_id", "day", "login", "person_id", "company_id", "sessions", "carried",
        "connected", "first_in", "last_out", "open")], literal(1).label("days"))
    days, daily = tail, [tail.subquery("tail")]
    hours: Any = select(TAIL_HOUR.c.site_id, TAIL_HOUR.c.day, TAIL_HOUR.c.hour,
                        TAIL_HOUR.c.peak)
    if stored is not None:
        def kept(parts: list[Range]) -> Any:
            within = or_(*[ReportDay.day.between(p.first, p.last) for p in parts])
            query = select(ReportDay.site_id, ReportDay.day, ReportDay.login,
                           ReportDay.person_id, ReportDay.company_id, ReportDay.sessions,
                           ReportDay.carried, ReportDay.connected, ReportDay.first_in,
                           ReportDay.last_out, false().label("open"),
                           literal(1).label("days")).where(within)
            return _where(query, ReportDay.site_id, ReportDay.company_id,
                          ReportDay.person_id, limits)

        daily.insert(0, kept([stored]).subquery("stored"))
        parts = [kept(stored_days)] if stored_days else []
        if months:
            m = ReportMonth
            parts.append(_where(
                select(m.site_id, m.month.label("day"), m.login, m.person_id, m.company_id,
                       m.sessions, m.carried, m.connected, m.first_in, m.last_out,
                       false().label("open"), m.days)
                .where(or_(*[m.month == p.first for p in months])),
                m.site_id, m.company_id, m.person_id, limits))
        days = union_all(*parts, tail)
        if not _by_people(limits):
            kept_hours = select(ReportHour.site_id, ReportHour.day, ReportHour.hour,
                                ReportHour.peak
                                ).where(ReportHour.day.between(stored.first, stored.last))
            hours = union_all(_where(kept_hours, ReportHour.site_id, None, None, limits), hours)
    return Source(span, days.subquery("days"), daily, hours.subquery("hours"))


def _distinct_days(db: DB, days: Subquery) -> ColumnElement[Any]:
    """Per group of rows of one person and one ``day`` of ``days``, how many
    different days they had a session: a month row's ``days`` has bit n set
    for a session on day n + 1, so the days of a month at several sites are
    the bits set in any of its rows; a day row's is one bit."""
    if db.get_bind().dialect.name == "postgresql":
        bits = cast(cast(func.bit_or(days.c.days), BIT(31)), String)
        return func.length(func.replace(bits, "0", ""))
    # SQLite has no bitwise aggregate: each bit's maximum.
    return sum((func.max(days.c.days.op(">>")(bit).op("&")(1)) for bit in range(31)),
               literal(0))


def _sessions(days: Subquery, first: date) -> ColumnElement[Any]:
    return func.sum(days.c.sessions - days.c.carried) + func.sum(
        case((days.c.day == first, days.c.carried), else_=0))


def _names(db: DB, table: Any) -> dict[int, str]:
    return {i: n for i, n in db.execute(select(table.id, table.name))}


def session_count(db: DB, src: Source) -> int:
    return int(db.scalar(select(_sessions(src.days, src.span.first))) or 0)


def use(db: DB, src: Source, credit: dict[tuple[str, str], int]) -> list[Use]:
    """Per company and site; ``credit`` maps (company, site) names to the
    seconds the ledger charged (report_queries.credit_by_company_site)."""
    d = src.days
    companies, sites = _names(db, Company), _names(db, Site)
    out = []
    for company_id, site_id, people, sessions, seconds in db.execute(
            select(d.c.company_id, d.c.site_id, func.count(d.c.login.distinct()),
                   _sessions(d, src.span.first), func.sum(d.c.connected))
            .group_by(d.c.company_id, d.c.site_id)):
        company = companies.get(company_id, NO_COMPANY) if company_id else NO_COMPANY
        site = sites[site_id]
        out.append(Use(company, site, int(people), int(sessions), int(seconds),
                       credit.get((company, site), 0)))
    return sorted(out, key=lambda u: (u.company, u.site))


def intensive(db: DB, src: Source, limit: int) -> list[Intensive]:
    """The people connected longest in the range, longest first (ties by login)."""
    d = src.days
    companies = _names(db, Company)
    connected = func.sum(d.c.connected)
    top = db.execute(select(d.c.login, func.max(d.c.company_id), _sessions(d, src.span.first),
                            connected)
                     .group_by(d.c.login).order_by(connected.desc(), d.c.login)
                     .limit(limit)).all()
    per_day = (select(d.c.login, _distinct_days(db, d).label("n"))
               .where(d.c.login.in_([login for login, *_ in top]))
               .group_by(d.c.login, d.c.day).subquery())
    days = {login: n for login, n in db.execute(
        select(per_day.c.login, func.sum(per_day.c.n)).group_by(per_day.c.login))}
    return [Intensive(login, companies.get(company_id, NO_COMPANY) if company_id else NO_COMPANY,
                      int(days[login]), int(sessions), int(seconds))
            for login, company_id, sessions, seconds in top]


def partner_balance(db: DB, src: Source) -> list[Exchange]:
    """Members of one network (people of its companies) at another network's
    sites, per month, both ways; a session in two months counts in each."""
    d = src.days
    networks = _names(db, Network)
    home, host = CompanyNetwork.network_id, Site.network_id
    out = []
    for month in reports.months(src.span):
        query = (select(home, host, func.count(d.c.login.distinct()), _sessions(d, month.first),
                        func.sum(d.c.connected))
                 .select_from(d)
                 .join(CompanyNetwork, CompanyNetwork.company_id == d.c.company_id)
                 .join(Site, Site.id == d.c.site_id)
                 .where(d.c.day.between(month.first, month.last), home != host)
                 .group_by(home, host))
        out += [Exchange(month.first.strftime("%Y-%m"), networks[h], networks[g], int(people),
                         int(sessions), int(seconds))
                for h, g, people, sessions, seconds in db.execute(query)]
    return sorted(out, key=lambda x: (x.month, x.home, x.host))


def _site_list(db: DB, column: Any) -> ColumnElement[Any]:
    """The ids of a group's sites in one text (repeats and all)."""
    text_id = cast(column, String)
    if db.get_bind().dialect.name == "postgresql":
        return func.string_agg(text_id, literal(SEPARATOR))
    return func.group_concat(text_id, SEPARATOR)


def working_time(db: DB, src: Source, limit: int | None = None) -> tuple[list[WorkDay], int]:
    """Per person and local day, "as if at the office": the first
    check-in to the last check-out, and the time connected; the first
    ``limit`` (by login and day), and how many there are."""
    companies, sites = _names(db, Company), _names(db, Site)
    zones = {i: z for i, z in db.execute(select(Site.id, Site.timezone))}
    # Each part's first groups (the stored part's by its index on login and
    # day), then the first of them all, in the database's order.
    parts = []
    for d in src.daily:
        part = (select(d.c.login, d.c.day, func.max(d.c.company_id).label("company_id"),
                       _site_list(db, d.c.site_id).label("site_ids"),
                       func.min(d.c.site_id).label("site_id"),
                       func.min(d.c.first_in).label("first_in"),
                       func.max(d.c.last_out).label("last_out"),
                       func.sum(d.c.connected).label("connected"),
                       func.max(case((d.c.open, 1), else_=0)).label("still_open"))
                .group_by(d.c.login, d.c.day).order_by(d.c.login, d.c.day))
        parts.append(select(part.limit(limit).subquery() if limit is not None
                            else part.subquery()))
    every = union_all(*parts).subquery("work")
    query = select(every).order_by(every.c.login, every.c.day)
    rows = db.execute(query.limit(limit) if limit is not None else query).all()
    # How many there are: counted on the monthly rows where they serve.
    groups = (select(_distinct_days(db, src.days).label("n"))
              .group_by(src.days.c.login, src.days.c.day).subquery())
    total = int(db.scalar(select(func.sum(groups.c.n))) or 0)
    out = []
    for (login, day, company_id, site_ids, site_id, first_in, last_out, connected,
         still_open) in rows:
        names = sorted({sites[int(i)] for i in str(site_ids).split(SEPARATOR)})
        zone = zones[site_id]
        out.append(WorkDay(login=login, company=companies.get(company_id, NO_COMPANY)
                           if company_id else NO_COMPANY, day=day, sites=", ".join(names),
                           first_in=reports.local(first_in, zone),
                           last_out=reports.local(last_out, zone), still_open=bool(still_open),
                           present=int((last_out - first_in).total_seconds()),
                           connected=int(connected)))
    return out, total


def occupancy(db: DB, src: Source, limit: int | None = None) -> tuple[list[Occupancy], int]:
    """Per site, local day and hour, the peak of people at once (hours with
    nobody left out): the first ``limit`` by site, day and hour, and how many."""
    h = src.hours
    # Grouped on numbers first; the sites' names join the groups, not the hours.
    peaks = (select(h.c.site_id, h.c.day, h.c.hour, func.max(h.c.peak).label("peak"))
             .group_by(h.c.site_id, h.c.day, h.c.hour).subquery("peaks"))
    query = (select(peaks.c.site_id, Site.name, peaks.c.day, peaks.c.hour, peaks.c.peak,
                    Site.capacity)
             .join(Site, Site.id == peaks.c.site_id)
             .order_by(Site.name, peaks.c.day, peaks.c.hour))
    total = int(db.scalar(select(func.count()).select_from(h)) or 0)
    rows = db.execute(query.limit(limit) if limit is not None else query)
    return [Occupancy(*row) for row in rows], total


def daily_peaks(db: DB, src: Source) -> list[DailyPeak]:
    """Per site and local day, the day's highest hourly peak."""
    h = src.hours
    peaks = (select(h.c.site_id, h.c.day, func.max(h.c.peak).label("peak"))
             .group_by(h.c.site_id, h.c.day).subquery("peaks"))
    query = (select(peaks.c.site_id, Site.name, peaks.c.day, peaks.c.peak, Site.capacity)
             .join(Site, Site.id == peaks.c.site_id)
             .order_by(Site.name, peaks.c.day))
    return [DailyPeak(*row) for row in db.execute(query)]
